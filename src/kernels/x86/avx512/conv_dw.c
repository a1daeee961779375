/* conv_dw.c — AVX-512 depthwise convolution (C_in/groups == C_out/groups ==
 * 1), f32 or bf16 activations, f32 accumulation, per-channel epilogue.
 * NHWC vectorizes over channels (16 per vector, masked tail), NCHW over
 * output width through a zero-padded, stride-phase-split copy of the input
 * plane. Each output is acc = 0; acc += x*w over (kh, kw) ascending, taps
 * outside the input skipped (NHWC) or read as zeros (NCHW columns); then the
 * epilogue — the same sequence whatever the thread split. */
#include "../../conv_fast.h"

#if KILN_X86
#include <immintrin.h>

/* ---------------------------------------------------------- vector helpers */
static inline __m512 load16(const char *p, kn_dtype dt, __mmask16 m)
{
    if (dt == KN_F32) return _mm512_maskz_loadu_ps(m, p);
    __m256i h = _mm256_maskz_loadu_epi16(m, p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* f32 -> bf16 round to nearest even, NaN kept quiet (as kn_f32_to_bf16). */
static inline __m256i to_bf16(__m512 v)
{
    __m512i u = _mm512_castps_si512(v);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
    return _mm512_cvtepi32_epi16(r);
}

static inline void store16(char *p, kn_dtype dt, __m512 v, __mmask16 m)
{
    if (dt == KN_F32)
        _mm512_mask_storeu_ps(p, m, v);
    else
        _mm256_mask_storeu_epi16(p, m, to_bf16(v));
}

/* The epilogue on 16 lanes: v + bias, *scale + shift, + residual, act.
 * par holds the per-lane bias/scale/shift vectors (or NULL pointers). */
typedef struct epi16 {
    __m512 bias, scale, shift;
    bool has_bias, has_scale, has_shift;
} epi16;

static inline __m512 apply_act(kn_act act, __m512 v)
{
    switch (act) {
    case KN_ACT_NONE:
        return v;
    case KN_ACT_RELU:
        return _mm512_max_ps(v, _mm512_setzero_ps());
    case KN_ACT_RELU6:
        return _mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), _mm512_set1_ps(6.0f));
    default: {
        float t[16];
        _mm512_storeu_ps(t, v);
        for (int i = 0; i < 16; i++)
            t[i] = kn__act_ref(act, t[i]);
        return _mm512_loadu_ps(t);
    }
    }
}

static inline __m512 epilogue16(__m512 v, const epi16 *e, const kn_epilogue *ep, const char *res,
                                __mmask16 m)
{
    if (e->has_bias) v = _mm512_add_ps(v, e->bias);
    if (e->has_scale) v = _mm512_mul_ps(v, e->scale);
    if (e->has_shift) v = _mm512_add_ps(v, e->shift);
    if (res) v = _mm512_add_ps(v, load16(res, ep->residual_dtype, m));
    return ep ? apply_act(ep->act, v) : v;
}

/* ------------------------------------------------------------------ NHWC */
/* A row (n, oh) is cut into blocks of NB = 8 or 4 adjacent output pixels
 * whose taps all lie inside the input in W (computed 16 channels at a time,
 * NB accumulators), and single edge pixels (64 channels at a time, taps
 * checked). Every output runs acc = 0; for kh, kw ascending: acc += x*w —
 * the same sequence in all three. 3-wide kernels with dilation 1 and stride
 * 1 or 2 load each input pixel once per kh and reuse it across kw. */
#define LD(p, m) (bf16 ? load16((p), KN_BF16, (m)) : _mm512_maskz_loadu_ps((m), (p)))

typedef struct nhwc_ctx {
    const kn_conv_geom *g;
    const kn_conv_act *x, *y;
    const float *wp;
    const kn_epilogue *ep;
    int64_t pix, xrow, ystep; /* bytes between input pixels, rows; y pixel stride (elements) */
} nhwc_ctx;

/* Stores nb accumulators of channels [c, c+16) at y element offset o, pixel
 * stride ystep, with the epilogue. */
static inline __attribute__((always_inline)) void
store_px(const nhwc_ctx *k, const __m512 *acc, int nb, int64_t c, int64_t o, __mmask16 m)
{
    const kn_epilogue *ep = k->ep;
    if (!ep && k->y->dt == KN_F32) {
        float *yp = (float *)k->y->p + o;
        for (int b = 0; b < nb; b++)
            _mm512_mask_storeu_ps(yp + b * k->ystep, m, acc[b]);
        return;
    }
    epi16 e = {0};
    if (ep) {
        e.has_bias = ep->bias, e.has_scale = ep->scale, e.has_shift = ep->shift;
        if (ep->bias) e.bias = _mm512_maskz_loadu_ps(m, ep->bias + c);
        if (ep->scale) e.scale = _mm512_maskz_loadu_ps(m, ep->scale + c);
        if (ep->shift) e.shift = _mm512_maskz_loadu_ps(m, ep->shift + c);
    }
    size_t yes = kn_dtype_size(k->y->dt);
    size_t res_es = ep && ep->residual ? kn_dtype_size(ep->residual_dtype) : 0;
    for (int b = 0; b < nb; b++) {
        int64_t ob = o + b * k->ystep;
        const char *res = res_es ? (const char *)ep->residual + ob * (int64_t)res_es : NULL;
        __m512 v = ep ? epilogue16(acc[b], &e, ep, res, m) : acc[b];
        store16(k->y->p + ob * (int64_t)yes, k->y->dt, v, m);
    }
}

/* NB interior pixels from ow0, channels [c, c+16); S > 0: the 3-wide,
 * dilation-1 kernel with stride S; S == 0: any kW, stride, dilation. */
static inline __attribute__((always_inline)) void
dw_block(const nhwc_ctx *k, int64_t n, int64_t oh, int64_t ow0, int64_t c, __mmask16 m,
         const int NB, const int S, const bool bf16)
{
    const kn_conv_geom *g = k->g;
    const int64_t C = g->cin, kH = g->k[1], kW = g->k[2];
    const int64_t step_b = g->s[2] * k->pix, step_kw = g->d[2] * k->pix;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
           a7 = a0;
    const char *xb = k->x->p + (n * k->x->sn + c) * (bf16 ? 2 : 4) +
                     (ow0 * g->s[2] - g->pb[2]) * k->pix;
    const int64_t pix = k->pix;
    int64_t ih0 = oh * g->s[1] - g->pb[1];
    /* a##b += x * w[kw] where input pixel j of the block feeds output b at kw = j - S*b */
#define TAP(b, j)                                                                                  \
    do {                                                                                           \
        int kw_ = (j) - S * (b);                                                                   \
        if ((b) < NB && kw_ >= 0 && kw_ < 3)                                                       \
            a##b = _mm512_fmadd_ps(xv, kw_ == 0 ? w0 : kw_ == 1 ? w1 : w2, a##b);                 \
    } while (0)
#define STEP(j)                                                                                    \
    if ((j) < (NB - 1) * S + 3) {                                                                  \
        __m512 xv = LD(xp + (j) * pix, m);                                                         \
        TAP(0, j); TAP(1, j); TAP(2, j); TAP(3, j); TAP(4, j); TAP(5, j); TAP(6, j); TAP(7, j);    \
    }
#define GEN(b)                                                                                     \
    if ((b) < NB) a##b = _mm512_fmadd_ps(LD(xp + (b) * step_b, m), wv, a##b)
    for (int64_t kh = 0; kh < kH; kh++) {
        int64_t ih = ih0 + kh * g->d[1];
        if (ih < 0 || ih >= g->in[1]) continue;
        const char *xp = xb + ih * k->xrow;
        const float *wk = k->wp + kh * kW * C + c;
        if (S) {
            __m512 w0 = _mm512_maskz_loadu_ps(m, wk), w1 = _mm512_maskz_loadu_ps(m, wk + C),
                   w2 = _mm512_maskz_loadu_ps(m, wk + 2 * C);
            STEP(0) STEP(1) STEP(2) STEP(3) STEP(4) STEP(5) STEP(6) STEP(7) STEP(8)
            STEP(9) STEP(10) STEP(11) STEP(12) STEP(13) STEP(14) STEP(15) STEP(16)
        } else {
            for (int64_t kw = 0; kw < kW; kw++, xp += step_kw, wk += C) {
                __m512 wv = _mm512_maskz_loadu_ps(m, wk);
                GEN(0);
                GEN(1);
                GEN(2);
                GEN(3);
                GEN(4);
                GEN(5);
                GEN(6);
                GEN(7);
            }
        }
    }
#undef TAP
#undef STEP
#undef GEN
    __m512 acc[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
    store_px(k, acc, NB, c, n * k->y->sn + oh * k->y->ss[1] + ow0 * k->ystep + c, m);
}

/* One edge pixel ow, channels [c, c+64) (masked past C), taps checked. */
static inline __attribute__((always_inline)) void
dw_edge(const nhwc_ctx *k, int64_t n, int64_t oh, int64_t ow, int64_t c, const bool bf16)
{
    const kn_conv_geom *g = k->g;
    const int64_t C = g->cin, kH = g->k[1], kW = g->k[2];
    __mmask16 mv[4];
    __m512 acc[4];
    for (int v = 0; v < 4; v++) {
        int64_t left = C - c - 16 * v;
        mv[v] = left >= 16 ? (__mmask16)0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
        acc[v] = _mm512_setzero_ps();
    }
    const char *xn = k->x->p + (n * k->x->sn + c) * (bf16 ? 2 : 4);
    int64_t ih0 = oh * g->s[1] - g->pb[1], iw0 = ow * g->s[2] - g->pb[2];
    for (int64_t kh = 0; kh < kH; kh++) {
        int64_t ih = ih0 + kh * g->d[1];
        if (ih < 0 || ih >= g->in[1]) continue;
        for (int64_t kw = 0; kw < kW; kw++) {
            int64_t iw = iw0 + kw * g->d[2];
            if (iw < 0 || iw >= g->in[2]) continue;
            const char *xp = xn + ih * k->xrow + iw * k->pix;
            const float *wk = k->wp + (kh * kW + kw) * C + c;
            for (int v = 0; v < 4; v++)
                acc[v] = _mm512_fmadd_ps(LD(xp + v * 16 * (bf16 ? 2 : 4), mv[v]),
                                         _mm512_maskz_loadu_ps(mv[v], wk + 16 * v), acc[v]);
        }
    }
    int64_t o = n * k->y->sn + oh * k->y->ss[1] + ow * k->ystep + c;
    for (int v = 0; v < 4 && mv[v]; v++)
        store_px(k, &acc[v], 1, c + 16 * v, o + 16 * v, mv[v]);
}

static inline __attribute__((always_inline)) void
dw_nhwc_row(const nhwc_ctx *k, int64_t n, int64_t oh, int64_t lo, int64_t hi, const int S,
            const bool bf16)
{
    const int64_t C = k->g->cin, OW = k->g->out[2];
    for (int64_t ow0 = 0; ow0 < OW;) {
        int nb = ow0 >= lo && ow0 + 8 <= hi ? 8 : ow0 >= lo && ow0 + 4 <= hi ? 4 : 1;
        if (nb == 1) {
            for (int64_t c = 0; c < C; c += 64)
                dw_edge(k, n, oh, ow0, c, bf16);
        } else {
            for (int64_t c = 0; c < C; c += 16) {
                __mmask16 m = C - c >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (C - c)) - 1);
                if (nb == 8)
                    dw_block(k, n, oh, ow0, c, m, 8, S, bf16);
                else
                    dw_block(k, n, oh, ow0, c, m, 4, S, bf16);
            }
        }
        ow0 += nb;
    }
}
#undef LD

void kn__conv_dw_nhwc_avx512(const kn_conv_geom *g, const kn_conv_act *x, const float *wp,
                             const kn_conv_act *y, const kn_epilogue *ep, int64_t r0, int64_t r1)
{
    const int64_t OW = g->out[2], sw = g->s[2], dw = g->d[2], kW = g->k[2];
    const int64_t xes = (int64_t)kn_dtype_size(x->dt);
    nhwc_ctx k = {g, x, y, wp, ep, x->ss[2] * xes, x->ss[1] * xes, y->ss[2]};
    /* Output columns [lo, hi) whose taps all lie inside the input in W. */
    int64_t lo = (g->pb[2] + sw - 1) / sw;
    int64_t hi = g->in[2] - 1 + g->pb[2] - (kW - 1) * dw; /* last ow*sw <= hi */
    hi = hi < 0 ? 0 : hi / sw + 1;
    if (hi > OW) hi = OW;
    int S = kW == 3 && dw == 1 && (sw == 1 || sw == 2) ? (int)sw : 0;
    bool bf16 = x->dt == KN_BF16;
    for (int64_t r = r0; r < r1; r++) {
        int64_t oh = r % g->out[1], n = r / g->out[1];
        if (S == 1 && !bf16)
            dw_nhwc_row(&k, n, oh, lo, hi, 1, false);
        else if (S == 2 && !bf16)
            dw_nhwc_row(&k, n, oh, lo, hi, 2, false);
        else if (S == 0 && !bf16)
            dw_nhwc_row(&k, n, oh, lo, hi, 0, false);
        else if (S == 1)
            dw_nhwc_row(&k, n, oh, lo, hi, 1, true);
        else if (S == 2)
            dw_nhwc_row(&k, n, oh, lo, hi, 2, true);
        else
            dw_nhwc_row(&k, n, oh, lo, hi, 0, true);
    }
}

/* ------------------------------------------------------------------ NCHW */
/* Scratch layout for one plane: s phases × in_H rows × JW floats, where
 * phase q of row ih holds xpad[ih][q + s*j] (xpad: the row with pb zeros in
 * front and zeros after), so output ow, tap kw reads phase (kw*d) % s at
 * j = ow + (kw*d) / s — contiguous for any stride. */
static int64_t dw_jw(const kn_conv_geom *g)
{
    int64_t ow16 = (g->out[2] + 15) / 16 * 16;
    return ow16 + ((g->k[2] - 1) * g->d[2]) / g->s[2] + 16;
}

int64_t kn__conv_dw_nchw_scratch(const kn_conv_geom *g)
{
    return g->s[2] * g->in[1] * dw_jw(g);
}

void kn__conv_dw_nchw_avx512(const kn_conv_geom *g, const kn_conv_act *x, const float *wp,
                             const kn_conv_act *y, const kn_epilogue *ep, int64_t p0, int64_t p1,
                             float *scratch)
{
    const int64_t C = g->cin, H = g->in[1], W = g->in[2], s = g->s[2], JW = dw_jw(g);
    const int64_t kH = g->k[1], kW = g->k[2], OW = g->out[2];
    const size_t xes = kn_dtype_size(x->dt), yes = kn_dtype_size(y->dt);
    const size_t res_es = ep && ep->residual ? kn_dtype_size(ep->residual_dtype) : 0;
    for (int64_t p = p0; p < p1; p++) {
        int64_t c = p % C, n = p / C;
        /* split the plane into phases */
        const char *xp = x->p + (n * x->sn + c * x->sc) * (int64_t)xes;
        for (int64_t ih = 0; ih < H; ih++) {
            const char *xr = xp + ih * x->ss[1] * (int64_t)xes;
            for (int64_t q = 0; q < s; q++) {
                float *dst = scratch + (q * H + ih) * JW;
                for (int64_t j = 0; j < JW; j++) {
                    int64_t iw = q + s * j - g->pb[2];
                    float v = 0;
                    if (iw >= 0 && iw < W) {
                        const char *src = xr + iw * x->ss[2] * (int64_t)xes;
                        if (x->dt == KN_F32)
                            v = *(const float *)src;
                        else
                            v = kn_bf16_to_f32(*(const uint16_t *)src);
                    }
                    dst[j] = v;
                }
            }
        }
        const float *wc = wp + c * kH * kW;
        epi16 e = {0};
        if (ep) {
            e.has_bias = ep->bias, e.has_scale = ep->scale, e.has_shift = ep->shift;
            if (ep->bias) e.bias = _mm512_set1_ps(ep->bias[c]);
            if (ep->scale) e.scale = _mm512_set1_ps(ep->scale[c]);
            if (ep->shift) e.shift = _mm512_set1_ps(ep->shift[c]);
        }
        for (int64_t oh = 0; oh < g->out[1]; oh++) {
            int64_t yrow = n * y->sn + c * y->sc + oh * y->ss[1];
            for (int64_t ow0 = 0; ow0 < OW; ow0 += 64) {
                int64_t nv = (OW - ow0 + 15) / 16; /* vectors in this block */
                __m512 acc[4];
                for (int v = 0; v < 4; v++)
                    acc[v] = _mm512_setzero_ps();
                for (int64_t kh = 0; kh < kH; kh++) {
                    int64_t ih = oh * g->s[1] - g->pb[1] + kh * g->d[1];
                    if (ih < 0 || ih >= H) continue;
                    for (int64_t kw = 0; kw < kW; kw++) {
                        int64_t off = kw * g->d[2];
                        const float *src = scratch + ((off % s) * H + ih) * JW + off / s + ow0;
                        __m512 wv = _mm512_set1_ps(wc[kh * kW + kw]);
                        for (int v = 0; v < 4; v++)
                            if (v < nv)
                                acc[v] = _mm512_fmadd_ps(_mm512_loadu_ps(src + 16 * v), wv, acc[v]);
                    }
                }
                for (int v = 0; v < 4 && v < nv; v++) {
                    int64_t ow = ow0 + 16 * v, left = OW - ow;
                    __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
                    int64_t o = yrow + ow * y->ss[2];
                    const char *res =
                        res_es ? (const char *)ep->residual + o * (int64_t)res_es : NULL;
                    store16(y->p + o * (int64_t)yes, y->dt, epilogue16(acc[v], &e, ep, res, m), m);
                }
            }
        }
    }
}
#endif
