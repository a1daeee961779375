/* gemm_s8.h — int8 GEMM for quantized inference (internal API; the int8
 * ops will call it): C (m×n) = requant(A (m×k, u8) · B (k×n, s8)) with s32
 * accumulation, AVX512_VNNI (vpdpbusd) when the CPU has it and KILN_ISA
 * allows avx512bf16, a portable path otherwise, and kn__gemm_s8_ref as the
 * reference twin (plain loops over the unpacked B). All paths give the same
 * bits: integer sums are exact (wrapping mod 2^32 like vpdpbusd's s32
 * accumulator; k <= KN_GEMM_S8_MAX_K keeps them exact), and the epilogue
 * does the same f32 operations in the same order. Relies on src/base. */
#ifndef KILN_KERNELS_GEMM_S8_H
#define KILN_KERNELS_GEMM_S8_H

#include "../base/base.h"

#include <math.h>

/* 255 * 128 * k < 2^31: no s32 overflow for any u8/s8 data */
#define KN_GEMM_S8_MAX_K 65535
#define KN_GEMM_S8_NR 64 /* columns per packed panel */

/* B packed for the kernels: panels of 64 columns; in a panel, k is grouped
 * in quads and element (p, j) sits at [(p/4)*256 + j*4 + p%4] (one zmm holds
 * 16 columns × 4 consecutive k). Zero-padded to k_pad = 4*ceil(k/4) and to
 * n_pad = 64*ceil(n/64). col_sum[j] = sum_p B[p][j] (s32, n_pad entries). */
typedef struct kn_gemm_s8_b {
    int64_t k, n, k_pad, n_pad;
    int8_t *data;
    int32_t *col_sum;
} kn_gemm_s8_b;

/* Packs B: k×n row-major with leading dim ldb, or n×k when trans_b (the
 * usual weight layout, (out, in)). KN_ERR_ARG / KN_ERR_NOMEM on failure. */
kn_status kn__gemm_s8_pack_b(kn_gemm_s8_b *pb, const int8_t *b, int64_t ldb, bool trans_b,
                             int64_t k, int64_t n);
void kn__gemm_s8_b_free(kn_gemm_s8_b *pb);

/* The requantization epilogue. With acc[i][j] = sum_p (A[i][p] - a_zero) *
 * (B[p][j] - b_zero) + bias[j] (s32, wrapping):
 *   KN_I32:        C = acc
 *   KN_F32:        C = (float)acc * s_j
 *   KN_I8 / KN_U8: C = sat(rne((float)acc * s_j) + c_zero)
 * where s_j = scale[j] (per output column) or scale_all when scale is NULL,
 * (float)acc rounds to nearest even, rne is round half to even and sat
 * clamps to [-128, 127] / [0, 255]. Scales must be finite. */
typedef struct kn_requant {
    int32_t a_zero;      /* A's zero point (u8 activations), 0..255 */
    int32_t b_zero;      /* B's zero point (per tensor; usually 0) */
    const int32_t *bias; /* n entries or NULL */
    const float *scale;  /* n entries, or NULL: scale_all */
    float scale_all;
    int32_t c_zero; /* output zero point (KN_I8 / KN_U8) */
    kn_dtype out;   /* KN_I32, KN_F32, KN_I8 or KN_U8 */
} kn_requant;

/* C (m×n, leading dim ldc in elements of rq->out) = requant(A·B); A is u8
 * m×k with leading dim lda. Parallel over tiles through kn_parallel_for
 * (each C element computed by one fixed sequence: thread-count
 * independent). Uses the VNNI kernel when allowed, else a portable loop. */
kn_status kn__gemm_s8(int64_t m, const uint8_t *a, int64_t lda, const kn_gemm_s8_b *pb,
                      const kn_requant *rq, void *c, int64_t ldc);

/* The reference twin: same result from the unpacked B (layout as in
 * kn__gemm_s8_pack_b), plain loops, one thread. */
kn_status kn__gemm_s8_ref(int64_t m, int64_t n, int64_t k, const uint8_t *a, int64_t lda,
                          const int8_t *b, int64_t ldb, bool trans_b, const kn_requant *rq, void *c,
                          int64_t ldc);

/* The requantization of one s32 value for column j (shared by every path). */
static inline void kn__requant_store(const kn_requant *rq, int64_t j, int32_t acc, void *c,
                                     int64_t idx)
{
    float s = rq->scale ? rq->scale[j] : rq->scale_all;
    switch (rq->out) {
    case KN_I32:
        ((int32_t *)c)[idx] = acc;
        break;
    case KN_F32:
        ((float *)c)[idx] = (float)acc * s;
        break;
    default: {
        float lo = rq->out == KN_I8 ? -128.0f : 0.0f, hi = rq->out == KN_I8 ? 127.0f : 255.0f;
        float f = (float)acc * s, flo = lo - (float)rq->c_zero, fhi = hi - (float)rq->c_zero;
        f = f < flo ? flo : f > fhi ? fhi : f; /* exact: the bounds are integers */
        int32_t q = (int32_t)nearbyintf(f) + rq->c_zero;
        if (rq->out == KN_I8)
            ((int8_t *)c)[idx] = (int8_t)q;
        else
            ((uint8_t *)c)[idx] = (uint8_t)q;
    }
    }
}

#if KILN_X86
/* VNNI tile kernel: rows [i0, i1) of C, panel `panel` of pb (64 columns,
 * masked to n). comp[j] = bias[j] - a_zero*col_sum[j] + k*a_zero*b_zero and
 * row_comp[i] = -b_zero * rowsum_A[i] (NULL when b_zero == 0), both s32.
 * Rows of A are read in whole k-quads (k_pad bytes). */
void kn__gemm_s8_tile_vnni(int64_t i0, int64_t i1, int64_t panel, const uint8_t *a, int64_t lda,
                           const kn_gemm_s8_b *pb, const int32_t *comp, const int32_t *row_comp,
                           const kn_requant *rq, void *c, int64_t ldc);
#endif

#endif
