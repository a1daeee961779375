/* gemm.c — reference GEMM (see gemm.h). For each row i of C: clear it, then
 * for p in 0..k-1 add A[i][p] * B[p][:] to it, so the inner loop streams one
 * contiguous row of B and one of C (auto-vectorizable, cache friendly). */
#include "gemm.h"

/* C (i1-i0 rows, n) = A (rows, k) · B (k, n); see gemm.h for strides. */
void kn__gemm_ref_f32(int64_t i0, int64_t i1, int64_t n, int64_t k, const float *a, int64_t sam,
                      int64_t sak, const float *b, int64_t ldb, float *c, int64_t ldc)
{
    for (int64_t i = i0; i < i1; i++) {
        float *restrict crow = c + i * ldc;
        const float *arow = a + i * sam;
        for (int64_t j = 0; j < n; j++)
            crow[j] = 0.0f;
        for (int64_t p = 0; p < k; p++) {
            const float av = arow[p * sak];
            const float *restrict brow = b + p * ldb;
            for (int64_t j = 0; j < n; j++)
                crow[j] += av * brow[j];
        }
    }
}

/* The same in f64. */
void kn__gemm_ref_f64(int64_t i0, int64_t i1, int64_t n, int64_t k, const double *a, int64_t sam,
                      int64_t sak, const double *b, int64_t ldb, double *c, int64_t ldc)
{
    for (int64_t i = i0; i < i1; i++) {
        double *restrict crow = c + i * ldc;
        const double *arow = a + i * sam;
        for (int64_t j = 0; j < n; j++)
            crow[j] = 0.0;
        for (int64_t p = 0; p < k; p++) {
            const double av = arow[p * sak];
            const double *restrict brow = b + p * ldb;
            for (int64_t j = 0; j < n; j++)
                crow[j] += av * brow[j];
        }
    }
}
