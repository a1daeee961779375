/* transpose.h — layout conversion by blocked transposes: the fast path of
 * copies whose source is a permuted view (NCHW <-> NHWC and any other
 * permutation that reduces to a batch of 2-D transposes). The generic strided
 * copy (src/tensor/access.c) is its reference twin. Relies on src/base only
 * (raw pointers), so the tensor layer can call it. */
#ifndef KILN_KERNELS_TRANSPOSE_H
#define KILN_KERNELS_TRANSPOSE_H

#include "kiln.h"

/* dst (rows, cols) row-major, leading dim ldd (elements); dst[i][j] =
 * src[j * lds + i]. 32-bit or 16-bit elements. */
#if KILN_X86
void kn__transpose32_avx512(const void *src, int64_t lds, void *dst, int64_t ldd, int64_t rows,
                            int64_t cols);
void kn__transpose16_avx512(const void *src, int64_t lds, void *dst, int64_t ldd, int64_t rows,
                            int64_t cols);
#endif

/* Runs a same-dtype copy over `nd` merged dims (shape; byte strides sd of
 * the contiguous destination dst and ss of the source src) as a batch of
 * blocked transposes when it has that form, the ISA allows it and it is big
 * enough to pay; returns false (nothing written) otherwise. */
bool kn__copy_transposed(int nd, const int64_t *shape, const int64_t *sd, const int64_t *ss,
                         char *dst, const char *src, size_t elem_size);

#endif
