/* conv_nhwc.h — direct NHWC convolution (groups 1, 1-d or 2-d) on
 * AVX-512: no im2col; output tiles of up to 14 pixels × 32 channels read
 * the input where it is (or from a zero-padded copy when the convolution
 * pads) and weights packed once per (weights, compute dtype) — callers may
 * keep the packed weights across calls. f32 compute uses AVX-512 FMA,
 * bf16 compute vdpbf16ps with f32 sums. Relies on conv_fast.h, gemm.h. */
#ifndef KILN_KERNELS_CONV_NHWC_H
#define KILN_KERNELS_CONV_NHWC_H

#include "conv_fast.h"

#define KN_CONV_NHWC_MR 14 /* output pixels per tile */
#define KN_CONV_NHWC_NR 32 /* output channels per tile (one packed block) */

/* Weights packed for the kernel: per block of 32 output channels, per tap
 * (kh, kw), per input channel (f32: [cin][32]) or channel pair (bf16:
 * [cin/2][32][2], cin rounded up to even); channels past C_out are zero. */
typedef struct kn_conv_nhwc_w {
    kn_dtype dt; /* KN_F32 or KN_BF16: the compute dtype */
    kn_isa isa;  /* the ISA it was packed for */
    int64_t cout, cin, cinp, kh, kw, nblk, blk_elems;
    void *p;
} kn_conv_nhwc_w;

/* True when the direct kernel takes the problem: NHWC, groups 1, at most
 * 2 spatial dims, channel-contiguous x and y, f32 or bf16 compute on a CPU
 * with AVX-512 (bf16: AVX512_BF16). */
bool kn__conv_nhwc_usable(const kn_conv_geom *g, const kn_conv_act *x, const kn_conv_act *y,
                          kn_dtype compute);
/* Packs w for compute dtype `compute`; *out is kn_alloc'd (free with
 * kn__conv_nhwc_free). */
kn_status kn__conv_nhwc_pack(const kn_conv_geom *g, const kn_conv_wgt *w, kn_dtype compute,
                             kn_conv_nhwc_w **out);
void kn__conv_nhwc_free(kn_conv_nhwc_w *w);
/* True when packed weights fit this geometry at the current ISA. */
bool kn__conv_nhwc_matches(const kn_conv_nhwc_w *w, const kn_conv_geom *g);
/* y = epilogue(conv(x, w)); y's pixels at a uniform stride (channels
 * contiguous). ep may be NULL. */
kn_status kn__conv_nhwc_run(const kn_conv_geom *g, const kn_conv_act *x, const kn_conv_nhwc_w *w,
                            const kn_conv_act *y, const kn_epilogue *ep);

#if KILN_X86
/* One output tile: mr (<= 14) pixels, the first at x (input elements, tap
 * (0, 0)), the next ones xs elements apart; tap k at x + toff[k]; cin
 * channels per tap (bf16: even); w one packed block; pf (or NULL) a block
 * of the same size to fetch towards L2 meanwhile; nr (<= 32) valid
 * output channels; t describes the C tile (pixel rows, channel columns,
 * first = last = true, beta 0) and its epilogue. */
void kn__conv_nhwc_f32_avx512(const float *x, int64_t xs, const int64_t *toff, int ntaps,
                              int64_t cin, const float *w, const void *pf, int mr, int nr,
                              const kn_gemm_tile *t);
void kn__conv_nhwc_bf16_avx512bf16(const uint16_t *x, int64_t xs, const int64_t *toff, int ntaps,
                                   int64_t cin, const uint16_t *w, const void *pf, int mr, int nr,
                                   const kn_gemm_tile *t);
#endif

#endif
