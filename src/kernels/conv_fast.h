/* conv_fast.h — fast convolution paths behind src/ops/conv.c's impl entries:
 * GEMM-based forward (1×1 as a plain GEMM, k×k through im2col in tiles that
 * fit L2), backward data and weight gradients as GEMMs, and the AVX-512
 * depthwise kernels. Relies on src/kernels/gemm.h and src/base. */
#ifndef KILN_KERNELS_CONV_FAST_H
#define KILN_KERNELS_CONV_FAST_H

#include "../base/base.h"
#include "gemm.h"

/* A problem in conv orientation: x (N, C_in, in...) -> y (N, C_out, out...),
 * weights (C_out, C_in/groups, k...). Spatial arrays have 3 entries; the
 * first 3 - nsp are size-1 dims (so 1-d and 2-d problems are 3-d ones).
 * This is the struct conv.c resolves every op into. */
typedef struct kn_conv_geom {
    int nsp;
    bool nhwc;
    int64_t n, cin, cout, groups;
    int64_t in[3], out[3], k[3], s[3], d[3], pb[3], pe[3];
} kn_conv_geom;

/* An activation operand (x, y, dx or dy): base pointer, dtype and element
 * strides of N, C and the three (padded) spatial dims — any layout. */
typedef struct kn_conv_act {
    char *p;
    kn_dtype dt;
    int64_t sn, sc, ss[3];
} kn_conv_act;

/* A weight operand (C_out, C_in/groups, k...): pointer, dtype, strides. */
typedef struct kn_conv_wgt {
    char *p;
    kn_dtype dt;
    int64_t s0, s1, sk[3];
    const struct kn_conv_packed *packed; /* from kn__conv_pack for this problem, or NULL */
} kn_conv_wgt;

/* Weights packed ahead of time for the forward path that will run this
 * problem (e.g. once per compiled graph node), so calls skip the packing. */
typedef struct kn_conv_packed kn_conv_packed;
/* NULL with KN_OK in *status when no path takes packed weights for g. */
kn_conv_packed *kn__conv_pack(const kn_conv_geom *g, const kn_conv_wgt *w, kn_dtype compute,
                              const kn_conv_act *x, const kn_conv_act *y, kn_status *status);
void kn__conv_packed_free(kn_conv_packed *p);

/* True when the fast paths handle these dtypes (f32 or bf16 activations and
 * weights; the output has the activations' dtype). */
bool kn__conv_fast_dtypes(kn_dtype x, kn_dtype w, kn_dtype y);
/* True for a depthwise problem (C_in/groups == 1 and C_out/groups == 1)
 * with 2-d-or-less spatial dims that the AVX-512 depthwise kernel takes. */
bool kn__conv_is_depthwise(const kn_conv_geom *g);

/* Forward: y = conv(x, w), then the epilogue per output channel: bias,
 * scale/shift, residual (a tensor of y's shape, dtype ep->residual_dtype,
 * with y's element strides; ep->ldr is ignored), activation. ep may be NULL.
 * compute is KN_F32 or KN_BF16 (operands rounded to bf16, f32 sums).
 * Depthwise problems go to the AVX-512 kernel when allow_dw and the ISA has
 * it, everything else through kn__gemm. Every output element is computed by
 * one fixed sequence of operations whatever the thread count. */
kn_status kn__conv_fwd(const kn_conv_geom *g, const kn_conv_act *x, const kn_conv_wgt *w,
                       const kn_conv_act *y, kn_dtype compute, const kn_epilogue *ep,
                       bool allow_dw);

/* Data gradient (the transposed convolution): dx = conv_transposeᵀ(dy, w),
 * plus bias[c] per input channel when bias != NULL (conv_transpose). */
kn_status kn__conv_bwd_data(const kn_conv_geom *g, const kn_conv_act *dy, const kn_conv_wgt *w,
                            const kn_conv_act *dx, kn_dtype compute, const void *bias,
                            kn_dtype bias_dt);

/* Weight gradient: dw (C_out, C_in/groups, k...) = sum over n and output
 * positions of dy · x, accumulated in f32 in a fixed order. */
kn_status kn__conv_bwd_weight(const kn_conv_geom *g, const kn_conv_act *x, const kn_conv_act *dy,
                              const kn_conv_wgt *dw, kn_dtype compute);

/* Fused entry for the graph layer: y = epilogue(conv2d(x, w)) with the
 * geometry of kn_conv2d(x, w, NULL, p). bias, scale, shift have C_out f32
 * values; the residual has y's shape and layout (contiguous) in
 * ep->residual_dtype. out: a contiguous tensor of y's shape and x's dtype
 * to write into, or NULL to allocate one. compute: KN_F32 or KN_BF16.
 * packed: from kn__conv2d_prepack for these shapes, or NULL.
 * Returns y (a new reference) or NULL with an error. Defined in conv.c. */
kn_tensor *kn__conv2d_fused(kn_tensor *x, kn_tensor *w, const kn_conv_params *p,
                            const kn_epilogue *ep, kn_dtype compute, kn_tensor *out,
                            const kn_conv_packed *packed);
/* w packed for kn__conv2d_fused(x, w, p, ..., compute, ...) with inputs
 * shaped like x (x's data is not read); NULL when nothing to pack or on
 * error (kn_last_status() tells). Defined in conv.c. */
kn_conv_packed *kn__conv2d_prepack(kn_tensor *x, kn_tensor *w, const kn_conv_params *p,
                                   kn_dtype compute);

/* Per-row epilogue of the no-pack product (rows are output channels):
 * v + bias[row], *scale[row] + shift[row], + res (dtype res_dt, at the same
 * (row, col) as y with row stride ldr), then act (NONE, RELU or RELU6 only). */
typedef struct kn_np_epi {
    const float *bias, *scale, *shift;
    const void *res;
    kn_dtype res_dt;
    int64_t ldr;
    kn_act act;
} kn_np_epi;

/* ---- ISA kernels (src/kernels/x86/avx512/conv_dw.c, conv_direct.c) */
#if KILN_X86
/* y rows [m0, m1) × columns [p0, p1) (p1 - p0 <= 64) of y (M×P, row stride
 * ldy) = W (M×k, row stride ldw) · B (k×P, row stride ldb), f32, no packing;
 * e (or NULL) applied after the last k. */
/* Direct NCHW f32 convolution of images [n0, n1) for small channel counts
 * (kn__conv_small_usable): weights packed wp[((ic*KH + kh)*KW + kw)*ocp + oc]
 * with ocp >= C_out rounded up to 16 (zero padded); bias per output channel
 * or NULL; relu after. */
void kn__conv_small_nchw_avx512(const kn_conv_geom *g, const kn_conv_act *x, const float *wp,
                                int64_t ocp, const float *bias, bool relu, const kn_conv_act *y,
                                int64_t n0, int64_t n1);
/* Weight gradient of the same problems over images [n0, n1): dw (C_out,
 * C_in, KH, KW) contiguous f32, overwritten; scratch holds
 * kn__conv_small_wgrad_scratch(g) floats. */
void kn__conv_small_wgrad_avx512(const kn_conv_geom *g, const kn_conv_act *x, const kn_conv_act *dy,
                                 int64_t n0, int64_t n1, float *dw, float *scratch);
int64_t kn__conv_small_wgrad_scratch(const kn_conv_geom *g);
/* The weight-gradient kernel's own limit (output width <= 128). */
bool kn__conv_small_wgrad_accepts(const kn_conv_geom *g);
void kn__conv_np_f32_avx512(int64_t k, const float *w, int64_t ldw, const float *b, int64_t ldb,
                            float *y, int64_t ldy, int64_t m0, int64_t m1, int64_t p0, int64_t p1,
                            const kn_np_epi *e);
/* Depthwise NHWC, f32 or bf16 activations, f32 weights packed as
 * wp[(kh*kW + kw)*C + c]: output rows r in [r0, r1) of (N*OH) — each row is
 * all OW pixels × all C channels — with the per-channel epilogue. */
void kn__conv_dw_nhwc_avx512(const kn_conv_geom *g, const kn_conv_act *x, const float *wp,
                             const kn_conv_act *y, const kn_epilogue *ep, int64_t r0, int64_t r1);
/* Depthwise NCHW: planes p in [p0, p1) of (N*C), each the whole OH×OW
 * output of one channel; weights packed wp[c*kH*kW + kh*kW + kw]. `scratch`
 * holds kn__conv_dw_nchw_scratch(g) floats. */
void kn__conv_dw_nchw_avx512(const kn_conv_geom *g, const kn_conv_act *x, const float *wp,
                             const kn_conv_act *y, const kn_epilogue *ep, int64_t p0, int64_t p1,
                             float *scratch);
#endif
int64_t kn__conv_dw_nchw_scratch(const kn_conv_geom *g);

#endif
