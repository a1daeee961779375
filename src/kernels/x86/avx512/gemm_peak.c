/* gemm_peak.c — the machine's f32 FMA peak for bench/kernels: `iters` steps
 * of 24 independent zmm FMA chains (24 × 16 × 2 flops per step). */
#include "../../gemm.h"

#if KILN_X86
#include <immintrin.h>

#define REP24(X)                                                                                   \
    X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15) X(16)    \
    X(17) X(18) X(19) X(20) X(21) X(22) X(23)

float kn__peak_fma_avx512(int64_t iters)
{
    __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-7f);
#define D(i) __m512 c##i = _mm512_set1_ps((float)i);
#define F(i) c##i = _mm512_fmadd_ps(c##i, a, b);
#define S(i) s = _mm512_add_ps(s, c##i);
    REP24(D)
    for (int64_t it = 0; it < iters; it++) {
        REP24(F)
        __asm__ volatile("" : : : "memory");
    }
    __m512 s = _mm512_setzero_ps();
    REP24(S)
    return _mm512_reduce_add_ps(s);
}

#endif
