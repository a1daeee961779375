/* gemm.h — the portable reference GEMM: the twin that fast ISA kernels are
 * compared with. Row-blocked i-k-j loops; the caller splits rows over threads.
 * Relies on nothing but the C library. */
#ifndef KILN_KERNELS_REF_GEMM_H
#define KILN_KERNELS_REF_GEMM_H

#include <stdint.h>

/* Rows [i0, i1) of C (m, n) = A (m, k) · B (k, n).
 * A may have any element strides (sam, sak); B's rows are contiguous with
 * leading dimension ldb; C's rows are contiguous with leading dimension ldc.
 * Each C[i][j] is summed over p = 0..k-1 in ascending order in the element
 * type (f32 accumulates in f32), so results never depend on the row split. */
void kn__gemm_ref_f32(int64_t i0, int64_t i1, int64_t n, int64_t k, const float *a, int64_t sam,
                      int64_t sak, const float *b, int64_t ldb, float *c, int64_t ldc);
void kn__gemm_ref_f64(int64_t i0, int64_t i1, int64_t n, int64_t k, const double *a, int64_t sam,
                      int64_t sak, const double *b, int64_t ldb, double *c, int64_t ldc);

#endif
