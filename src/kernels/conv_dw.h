/* conv_dw.h — the whole-problem entry of the AVX-512 NHWC depthwise kernel
 * (src/kernels/x86/avx512/conv_dw.c): weights packed once as
 * wp[tap * ld + c] (ld = C rounded up to 16, zeros past C), work split
 * into (image, row band, channel chunk) units over kn_parallel_for. Every
 * output element is one fixed sequence of operations whatever the split. */
#ifndef KILN_KERNELS_CONV_DW_H
#define KILN_KERNELS_CONV_DW_H

#include "conv_fast.h"

#if KILN_X86
/* Floats of the packed weights for g (k[1]*k[2] taps x C rounded to 16). */
int64_t kn__conv_dw_nhwc_wsize(const kn_conv_geom *g);
/* wp (kn__conv_dw_nhwc_wsize(g) floats) = w (C, 1, kH, kW), f32 or bf16,
 * any strides, as f32 [tap][C rounded to 16]. */
void kn__conv_dw_nhwc_pack(const kn_conv_geom *g, const kn_conv_wgt *w, float *wp);
/* y = epilogue(depthwise conv(x, w)) for a depthwise NHWC problem
 * (kn__conv_is_depthwise, x->sc == y->sc == 1, x and y both f32 or both
 * bf16; ep may be NULL). wp: w packed by kn__conv_dw_nhwc_pack, or NULL to
 * pack it here for this call. Needs the AVX-512 ISA. */
kn_status kn__conv_dw_nhwc(const kn_conv_geom *g, const kn_conv_act *x, const kn_conv_wgt *w,
                           const float *wp, const kn_conv_act *y, const kn_epilogue *ep);
#endif

#endif
