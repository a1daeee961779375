/* gemm.h — kiln's GEMM entry point for ops (matmul, linear, convolution):
 * f32 and bf16 operands, f32 or bf16 compute, a fused epilogue, dispatch to
 * the fastest ISA path allowed by kn_isa_max() (AVX-512 BF16 → AVX-512 →
 * AVX2+FMA → portable reference). Relies on src/base.
 *
 * Note for callers (conv helper): the signatures below are stable. Results
 * never depend on the thread count: every element of C is computed by one
 * fixed sequence of operations (no split-K across threads). */
#ifndef KILN_KERNELS_GEMM_H
#define KILN_KERNELS_GEMM_H

#include "../base/base.h"

/* Epilogue activations: the public kn_act values up to KN_ACT_TANH. */
#define KN_ACT_COUNT (KN_ACT_TANH + 1)

typedef struct kn_epilogue { /* applied in this order after accumulation */
    const float *bias;          /* per output column n, or NULL */
    const float *scale, *shift; /* per column: y = y*scale + shift (folded batch norm); each may be NULL */
    const void *residual;       /* m×n, added after scale/shift, before act; or NULL */
    kn_dtype residual_dtype;    /* KN_F32 or KN_BF16 */
    int64_t ldr;                /* residual row stride in elements */
    int64_t stride_r;           /* batched: elements between batches' residuals (0 = shared) */
    kn_act act;
} kn_epilogue;

/* C (m×n, row stride ldc, dtype c_dt: f32 or bf16) = beta*C + op(A)·op(B),
 * then the epilogue (ep may be NULL). beta == 0 does not read C.
 * A is m×k (or k×m if trans_a), B is k×n (or n×k if trans_b), row-major with
 * leading dims lda/ldb; a_dt and b_dt are KN_F32 or KN_BF16 (independently).
 * compute: KN_F32 (f32 FMA; bf16 operands are widened exactly) or KN_BF16
 * (operands rounded to bf16 when packed, products summed in f32).
 * The residual may alias C (same element, same stride). Runs in parallel
 * through kn_parallel_for; returns KN_ERR_NOMEM / KN_ERR_ARG with a message. */
kn_status kn__gemm(kn_dtype compute, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                   const void *a, kn_dtype a_dt, int64_t lda, const void *b, kn_dtype b_dt,
                   int64_t ldb, float beta, void *c, kn_dtype c_dt, int64_t ldc,
                   const kn_epilogue *ep);

/* `batch` independent GEMMs; matrix i uses a + i*stride_a, b + i*stride_b,
 * c + i*stride_c (element strides; 0 = the same matrix for every i) and, with
 * a residual, residual + i*ep->stride_r. C matrices must not overlap. */
kn_status kn__gemm_batched(kn_dtype compute, bool trans_a, bool trans_b, int64_t m, int64_t n,
                           int64_t k, const void *a, kn_dtype a_dt, int64_t lda, const void *b,
                           kn_dtype b_dt, int64_t ldb, float beta, void *c, kn_dtype c_dt,
                           int64_t ldc, const kn_epilogue *ep, int64_t batch, int64_t stride_a,
                           int64_t stride_b, int64_t stride_c);

/* ---- pre-packed operands (weights packed once, used by many calls).
 * kn__gemm_pack_b packs op(B) (k×n; given as n×k when trans_b, e.g. a
 * linear weight (out, in) or an NHWC conv weight (C_out, kh*kw*C_in)) for
 * the compute dtype and the ISA allowed at that moment; kn__gemm_pack_a
 * does the same for op(A) (m×k; e.g. an NCHW conv weight (C_out,
 * C_in*kh*kw), which is the A side of out = W · im2col). The packed copy
 * does not refer to the source afterwards. kn__gemm_packed /
 * _packed_batched then take a packed operand instead of the raw one
 * (pa or pb non-NULL: a/a_dt/lda or b/b_dt/ldb and their trans flag and
 * batch stride are ignored; the packed operand is shared by every batch
 * entry). Results are bitwise those of kn__gemm with the raw operand at the
 * same ISA (any thread count), except for m <= 4 where kn__gemm takes its
 * small-m path (same tolerance, other summation order); when kn_isa_max() changed since packing, the
 * operand is unpacked to f32 for the call (slow, still correct). The
 * compute dtype and sizes must match the packing (else KN_ERR_ARG).
 *
 * Conv usage (NCHW, per image or batched over images with stride_b):
 *   kn_gemm_packed *w;  kn__gemm_pack_a(&w, KN_F32, false, C_out, K, weight, KN_F32, K);
 *   kn__gemm_packed_batched(KN_F32, false, false, C_out, HW, K, NULL, KN_F32, 0, w,
 *                           cols, KN_F32, HW, NULL, 0.0f, out, KN_F32, HW, &ep,
 *                           N, 0, K * HW, C_out * HW);
 *   kn__gemm_packed_free(w);
 * Memory: kn_alloc'd (counted live until kn__gemm_packed_free). */
typedef struct kn_gemm_packed kn_gemm_packed;
kn_status kn__gemm_pack_a(kn_gemm_packed **out, kn_dtype compute, bool trans_a, int64_t m,
                          int64_t k, const void *a, kn_dtype a_dt, int64_t lda);
kn_status kn__gemm_pack_b(kn_gemm_packed **out, kn_dtype compute, bool trans_b, int64_t k,
                          int64_t n, const void *b, kn_dtype b_dt, int64_t ldb);
void kn__gemm_packed_free(kn_gemm_packed *p);
kn_status kn__gemm_packed(kn_dtype compute, bool trans_a, bool trans_b, int64_t m, int64_t n,
                          int64_t k, const void *a, kn_dtype a_dt, int64_t lda,
                          const kn_gemm_packed *pa, const void *b, kn_dtype b_dt, int64_t ldb,
                          const kn_gemm_packed *pb, float beta, void *c, kn_dtype c_dt,
                          int64_t ldc, const kn_epilogue *ep);
kn_status kn__gemm_packed_batched(kn_dtype compute, bool trans_a, bool trans_b, int64_t m,
                                  int64_t n, int64_t k, const void *a, kn_dtype a_dt, int64_t lda,
                                  const kn_gemm_packed *pa, const void *b, kn_dtype b_dt,
                                  int64_t ldb, const kn_gemm_packed *pb, float beta, void *c,
                                  kn_dtype c_dt, int64_t ldc, const kn_epilogue *ep, int64_t batch,
                                  int64_t stride_a, int64_t stride_b, int64_t stride_c);

/* The portable reference twin of kn__gemm_batched (what KILN_ISA=ref runs):
 * each C element is the ascending-k f32 sum, then beta*C, then the epilogue
 * evaluated with libm in double. Tests compare the fast paths with it. */
kn_status kn__gemm_ref_batched(kn_dtype compute, bool trans_a, bool trans_b, int64_t m, int64_t n,
                               int64_t k, const void *a, kn_dtype a_dt, int64_t lda, const void *b,
                               kn_dtype b_dt, int64_t ldb, float beta, void *c, kn_dtype c_dt,
                               int64_t ldc, const kn_epilogue *ep, int64_t batch,
                               int64_t stride_a, int64_t stride_b, int64_t stride_c);

/* One activation in f32 via libm (the reference for the vector versions). */
float kn__act_ref(kn_act act, float x);
/* Applies the epilogue to row i, columns [j0, j1), of an f32 accumulator row
 * `acc` (acc[0] is column j0, already beta-combined) and stores it to
 * crow (column j0 of row i of C, dtype c_dt). Reference; used by tails. */
void kn__epilogue_row_ref(const kn_epilogue *ep, int64_t i, int64_t j0, int64_t j1, float *acc,
                          void *crow, kn_dtype c_dt);

/* ---- internals shared by the driver (gemm.c) and the ISA micro-kernels.
 * Packed operands: A in panels of MR rows, element (r, p) of a panel at
 * [p*MR + r] (f32) or, for bf16, pairs of k: [(p/2)*MR*2 + r*2 + p%2];
 * B in panels of NR columns the same way ([p*NR + c] / [(p/2)*NR*2 + c*2 +
 * p%2]). Panels are zero-padded to MR/NR and, for bf16, to an even k. */
typedef struct kn_gemm_tile {
    void *c; /* C at the tile's (i0, j0) */
    int64_t ldc;
    kn_dtype c_dt;
    float beta;
    float *w; /* f32 partial sums between k blocks, at (i0, j0); row stride ldw */
    int64_t ldw;
    bool first, last; /* first / last k block: w is read unless first, written unless last */
    float wbeta;      /* first, non-last block only: w += wbeta*w_old (w is C itself, beta folded) */
    const float *bias, *scale, *shift; /* at column j0, or NULL */
    const void *res;                    /* residual at (i0, j0), or NULL */
    int64_t ldr;
    kn_dtype res_dt;
    kn_act act;
} kn_gemm_tile;
/* C tile (mr×nr, mr <= MR, nr <= NR) from kc steps of packed A and B (kc even
 * for bf16 except in the last block); pointers at the block's first k. */
typedef void (*kn_gemm_ukernel)(int64_t kc, const void *pa, const void *pb, int mr, int nr,
                                const kn_gemm_tile *t);

/* Finishes cnt lanes (columns j.. of row i of the tile) the way the vector
 * kernels do: partial sums, beta, epilogue, store. Portable, for tails. */
void kn__gemm_finish_scalar(const kn_gemm_tile *t, int i, int j, const float *acc, int cnt);

#if KILN_X86
void kn__gemm_f32_avx512_ukernel(int64_t kc, const void *pa, const void *pb, int mr, int nr,
                                 const kn_gemm_tile *t); /* MR 14, NR 32 */
void kn__gemm_f32_avx2_ukernel(int64_t kc, const void *pa, const void *pb, int mr, int nr,
                               const kn_gemm_tile *t); /* MR 6, NR 16 */
void kn__gemm_bf16_avx512bf16_ukernel(int64_t kc, const void *pa, const void *pb, int mr, int nr,
                                      const kn_gemm_tile *t); /* MR 14, NR 32, k pairs */
/* AVX-512 packing (gemm_pack.c): 4-byte elements (f32, or bf16 k pairs),
 * byte strides; lane r, step p at src + r*rs + p*ps → dst[p*width + r];
 * needs rs == 4 or ps == 4; lanes >= cnt zeroed; writes `steps` steps. */
void kn__gemm_pack32_avx512(void *dst, int width, const void *src, int64_t rs, int64_t ps, int cnt,
                            int64_t steps);
/* bf16 row-major B (lanes contiguous, row stride ps elements) into k pairs,
 * the odd last pair completed with zero. */
void kn__gemm_pack_bf16_rows_avx512(void *dst, int width, const void *src, int64_t ps, int cnt,
                                    int64_t k);
/* Small m (<= 4): C columns [j0, j1) from m contiguous f32 A rows of
 * length k and the caller's B (f32 or bf16, k×n or, b_trans, n×k; round_b
 * rounds f32 B to bf16). t0 describes C at column 0 (first = last = true). */
void kn__gemm_smallm_avx512(int m, int64_t k, const float *a, const void *b, bool b_bf16,
                            bool b_trans, bool round_b, int64_t ldb, int64_t j0, int64_t j1,
                            const kn_gemm_tile *t0);
/* Peak loops for bench/kernels: iters × 24 zmm FMAs / vdpbf16ps. */
float kn__peak_fma_avx512(int64_t iters);
float kn__peak_dpbf16_avx512bf16(int64_t iters);
#endif

#endif
