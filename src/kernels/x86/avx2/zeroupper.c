/* zeroupper.c — clears the upper halves of the vector registers after an
 * ISA kernel ran, so later SSE code (libm, scalar reference kernels called
 * through function pointers) does not pay the AVX-SSE transition penalty
 * (seen: 10x slower scalar elementwise code after AVX kernels). */
#include <immintrin.h>

void kn__vzeroupper(void);

void kn__vzeroupper(void) { _mm256_zeroupper(); }
