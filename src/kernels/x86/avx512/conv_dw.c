/* conv_dw.c — AVX-512 depthwise convolution (C_in/groups == C_out/groups ==
 * 1), f32 or bf16 activations, f32 accumulation, per-channel epilogue.
 * NHWC vectorizes over channels (16 per vector, masked tail), NCHW over
 * output width through a zero-padded, stride-phase-split copy of the input
 * plane. Each output is acc = 0; acc += x*w over (kh, kw) ascending, taps
 * outside the input skipped (NHWC) or read as zeros (NCHW columns); then the
 * epilogue — the same sequence whatever the thread split. */
#include "../../conv_dw.h"

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
/* Work is cut into units of (image, channel chunk, band of output rows)
 * (kn__conv_dw_nhwc). A unit runs row by row; a row is cut into blocks of
 * NB <= 8 adjacent output pixels (sizes as even as possible), and each
 * block runs over the unit's channels 16 at a time (NB accumulators).
 * Chunks are all channels, or, when an image's input fits L2, as many as
 * keep three input rows in L1 across the unit's rows.
 *   3x3 kernels with dilation 1 and stride 1 or 2 in W (k3_*): each input
 * pixel of a block is loaded once per kernel row and feeds the taps it
 * meets; at the row's ends the taps outside the input are left out by
 * clamping the block's input range (only its first and last two input
 * pixels can be outside), so edge pixels run the same block code.
 *   Other kernels (gen_*): interior blocks over any taps, edge pixels alone
 * with each tap checked.
 * Every output runs acc = 0; for kh, kw ascending, taps inside the input:
 * acc += x*w; then the epilogue — one sequence whatever the cut. */
#define ALWAYS inline __attribute__((always_inline))
#define LD(p, m) (bf16 ? load16((p), KN_BF16, (m)) : _mm512_maskz_loadu_ps((m), (p)))

typedef struct nhwc_ctx {
    const kn_conv_geom *g;
    const kn_conv_act *x, *y;
    const float *wp;
    int64_t ldw;           /* wp[tap*ldw + c] */
    const kn_epilogue *ep; /* NULL when it does nothing */
    int64_t pix, xrow;     /* bytes between input pixels, input rows */
    int64_t ystep;         /* elements between output pixels */
    int k3;                /* 1 or 2: the 3x3 path with that W stride; 0: generic */
} nhwc_ctx;

static ALWAYS __mmask16 tail_mask(int64_t left)
{
    return left >= 16 ? (__mmask16)0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
}

static ALWAYS epi16 epi_load(const kn_epilogue *ep, int64_t c, __mmask16 m)
{
    epi16 e = {0};
    if (ep) {
        e.has_bias = ep->bias, e.has_scale = ep->scale, e.has_shift = ep->shift;
        if (ep->bias) e.bias = _mm512_maskz_loadu_ps(m, ep->bias + c);
        if (ep->scale) e.scale = _mm512_maskz_loadu_ps(m, ep->scale + c);
        if (ep->shift) e.shift = _mm512_maskz_loadu_ps(m, ep->shift + c);
    }
    return e;
}

/* y element o (16 channels, masked) = epilogue(v). y has x's dtype. */
static ALWAYS void out_store(const nhwc_ctx *k, const epi16 *e, __m512 v, int64_t o, __mmask16 m,
                             const bool bf16)
{
    const kn_epilogue *ep = k->ep;
    if (ep) {
        const char *res = ep->residual ? (const char *)ep->residual +
                                             o * (int64_t)kn_dtype_size(ep->residual_dtype)
                                       : NULL;
        v = epilogue16(v, e, ep, res, m);
    }
    if (bf16)
        _mm256_mask_storeu_epi16(k->y->p + 2 * o, m, to_bf16(v));
    else
        _mm512_mask_storeu_ps((float *)k->y->p + o, m, v);
}

/* NB output pixels of one row from the one whose first tap reads input
 * pixel iw0 (>= -1), 16 channels of mask m at byte cb of a pixel: rows[kh]
 * is input row kh (NULL when outside the input), wk[(kh*3 + kw) * ldw] the
 * weights, o the first output element. Input pixel
 * iw0 + j, j < J = (NB-1)*S + 3, feeds output b at kw = j - S*b; j == 0 is
 * outside when iw0 < 0, and j >= J-2 when iw0 + j >= W (k3_usable). */
static ALWAYS void k3_block(const nhwc_ctx *k, const char *const *rows, int64_t cb, const float *wk,
                            const epi16 *e, int64_t iw0, int64_t o, __mmask16 m, const int NB,
                            const int S, const bool bf16)
{
    const int J = (NB - 1) * S + 3;
    const int64_t pix = k->pix, jhi = k->g->in[2] - iw0;
    const bool left = iw0 < 0;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
/* clang-format off */
#define TAP(b, j)                                                                                  \
    do {                                                                                           \
        const int kw_ = (j) - S * (b);                                                             \
        if ((b) < NB && kw_ >= 0 && kw_ < 3)                                                       \
            a##b = _mm512_fmadd_ps(xv, kw_ == 0 ? wa : kw_ == 1 ? wb : wc, a##b);                  \
    } while (0)
#define STEP(j)                                                                                    \
    if ((j) < J && ((j) == 0 ? !left : (j) < J - 2 || (j) < jhi)) {                                \
        __m512 xv = LD(xr + cb + (iw0 + (j)) * pix, m);                                            \
        TAP(0, j);                                                                                 \
        TAP(1, j);                                                                                 \
        TAP(2, j);                                                                                 \
        TAP(3, j);                                                                                 \
        TAP(4, j);                                                                                 \
        TAP(5, j);                                                                                 \
        TAP(6, j);                                                                                 \
        TAP(7, j);                                                                                 \
    }
#define KROW(kh)                                                                                   \
    if (rows[kh]) {                                                                                \
        const char *xr = rows[kh];                                                                 \
        const __m512 wa = _mm512_maskz_loadu_ps(m, wk + 3 * (kh) * k->ldw),                       \
                     wb = _mm512_maskz_loadu_ps(m, wk + (3 * (kh) + 1) * k->ldw),                 \
                     wc = _mm512_maskz_loadu_ps(m, wk + (3 * (kh) + 2) * k->ldw);                 \
        STEP(0) STEP(1) STEP(2) STEP(3) STEP(4) STEP(5) STEP(6) STEP(7) STEP(8)                    \
        STEP(9) STEP(10) STEP(11) STEP(12) STEP(13) STEP(14) STEP(15) STEP(16)                     \
    }
    KROW(0) KROW(1) KROW(2)
    /* clang-format on */
#undef KROW
#undef STEP
#undef TAP
        const int64_t ys = k->ystep;
    out_store(k, e, a0, o, m, bf16);
    if (NB > 1) out_store(k, e, a1, o + ys, m, bf16);
    if (NB > 2) out_store(k, e, a2, o + 2 * ys, m, bf16);
    if (NB > 3) out_store(k, e, a3, o + 3 * ys, m, bf16);
    if (NB > 4) out_store(k, e, a4, o + 4 * ys, m, bf16);
    if (NB > 5) out_store(k, e, a5, o + 5 * ys, m, bf16);
    if (NB > 6) out_store(k, e, a6, o + 6 * ys, m, bf16);
    if (NB > 7) out_store(k, e, a7, o + 7 * ys, m, bf16);
}

/* clang-format off */
#define K3_SWITCH(nb, ...)                                                                         \
    switch (nb) {                                                                                  \
    case 8: k3_block(__VA_ARGS__, 8, S, bf16); break;                                              \
    case 7: k3_block(__VA_ARGS__, 7, S, bf16); break;                                              \
    case 6: k3_block(__VA_ARGS__, 6, S, bf16); break;                                              \
    case 5: k3_block(__VA_ARGS__, 5, S, bf16); break;                                              \
    case 4: k3_block(__VA_ARGS__, 4, S, bf16); break;                                              \
    case 3: k3_block(__VA_ARGS__, 3, S, bf16); break;                                              \
    case 2: k3_block(__VA_ARGS__, 2, S, bf16); break;                                              \
    default: k3_block(__VA_ARGS__, 1, S, bf16); break;                                             \
    }
/* clang-format on */

/* Input row pointers (pixel 0, channel 0) of output row oh of image n. */
static ALWAYS void k3_rows(const nhwc_ctx *k, int64_t n, int64_t oh, const char **rows)
{
    const kn_conv_geom *g = k->g;
    const char *xn = k->x->p + n * k->x->sn * (int64_t)kn_dtype_size(k->x->dt);
    for (int kh = 0; kh < 3; kh++) {
        int64_t ih = oh * g->s[1] - g->pb[1] + kh * g->d[1];
        rows[kh] = ih >= 0 && ih < g->in[1] ? xn + ih * k->xrow : NULL;
    }
}

/* Rows [oh0, oh1) of image n, each in blocks, each block over channels
 * [c0, c1) (so the input is read in runs of whole pixels). */
static ALWAYS void k3_rows_blocks(const nhwc_ctx *k, int64_t n, int64_t oh0, int64_t oh1,
                                  int64_t c0, int64_t c1, const int S, const bool bf16)
{
    const kn_conv_geom *g = k->g;
    const int64_t OW = g->out[2], nblk = (OW + 7) / 8, base = OW / nblk, rem = OW % nblk;
    for (int64_t oh = oh0; oh < oh1; oh++) {
        const char *rows[3];
        k3_rows(k, n, oh, rows);
        const int64_t o = n * k->y->sn + oh * k->y->ss[1];
        for (int64_t b = 0, ow0 = 0; b < nblk; b++) {
            const int nb = (int)(base + (b < rem));
            const int64_t iw0 = ow0 * S - g->pb[2], ob = o + ow0 * k->ystep;
            for (int64_t c = c0; c < c1; c += 16) {
                const __mmask16 m = tail_mask(c1 - c);
                const epi16 e = epi_load(k->ep, c, m);
                K3_SWITCH(nb, k, rows, c * (bf16 ? 2 : 4), k->wp + c, &e, iw0, ob + c, m)
            }
            ow0 += nb;
        }
    }
}
#undef K3_SWITCH

/* The four variants: stride 1 or 2, f32 or bf16. */
#define K3_VARIANT(name, S, bf16)                                                                  \
    static __attribute__((noinline)) void name(const nhwc_ctx *k, int64_t n, int64_t oh0,          \
                                               int64_t oh1, int64_t c0, int64_t c1)                \
    {                                                                                              \
        k3_rows_blocks(k, n, oh0, oh1, c0, c1, S, bf16);                                           \
    }
K3_VARIANT(k3_s1_f32, 1, false)
K3_VARIANT(k3_s2_f32, 2, false)
K3_VARIANT(k3_s1_bf16, 1, true)
K3_VARIANT(k3_s2_bf16, 2, true)
#undef K3_VARIANT

/* The 3x3 path takes W stride 1 or 2, W dilation 1, at most one pad
 * column before, and at most two taps past the input after the last
 * output (any H geometry). Returns the stride, or 0. */
static int k3_usable(const kn_conv_geom *g)
{
    const int64_t S = g->s[2];
    if (g->k[1] != 3 || g->k[2] != 3 || g->d[2] != 1 || (S != 1 && S != 2) || g->pb[2] > 1 ||
        g->out[2] < 1)
        return 0;
    int64_t last = (g->out[2] - 1) * S - g->pb[2] + 2; /* last input pixel read */
    return last - (g->in[2] - 1) <= 2 ? (int)S : 0;
}

/* Generic kernels: NB interior pixels from ow0 (all taps inside the input
 * in W), channels of mask m from c. */
static ALWAYS void gen_block(const nhwc_ctx *k, int64_t n, int64_t oh, int64_t ow0, int64_t c,
                             __mmask16 m, const int NB, const bool bf16)
{
    const kn_conv_geom *g = k->g;
    const int64_t kH = g->k[1], kW = g->k[2], pix = k->pix;
    const int64_t step_b = g->s[2] * pix, step_kw = g->d[2] * pix;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    const char *xn = k->x->p + (n * k->x->sn + c) * (bf16 ? 2 : 4);
    const int64_t iw0 = ow0 * g->s[2] - g->pb[2], ih0 = oh * g->s[1] - g->pb[1];
#define GEN(b)                                                                                     \
    if ((b) < NB) a##b = _mm512_fmadd_ps(LD(xp + (b)*step_b, m), wv, a##b)
    for (int64_t kh = 0; kh < kH; kh++) {
        int64_t ih = ih0 + kh * g->d[1];
        if (ih < 0 || ih >= g->in[1]) continue;
        const char *xp = xn + ih * k->xrow + iw0 * pix;
        const float *wk = k->wp + kh * kW * k->ldw + c;
        for (int64_t kw = 0; kw < kW; kw++, xp += step_kw, wk += k->ldw) {
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
#undef GEN
    const epi16 e = epi_load(k->ep, c, m);
    const int64_t o = n * k->y->sn + oh * k->y->ss[1] + ow0 * k->ystep + c, ys = k->ystep;
    __m512 acc[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
    for (int b = 0; b < NB; b++)
        out_store(k, &e, acc[b], o + b * ys, m, bf16);
}

/* One edge pixel ow, channels [c, min(c+64, c1)), taps checked. */
static ALWAYS void gen_edge(const nhwc_ctx *k, int64_t n, int64_t oh, int64_t ow, int64_t c,
                            int64_t c1, const bool bf16)
{
    const kn_conv_geom *g = k->g;
    const int64_t kH = g->k[1], kW = g->k[2];
    __mmask16 mv[4];
    __m512 acc[4];
    for (int v = 0; v < 4; v++) {
        mv[v] = tail_mask(c1 - c - 16 * v);
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
            const float *wk = k->wp + (kh * kW + kw) * k->ldw + c;
            for (int v = 0; v < 4; v++)
                acc[v] = _mm512_fmadd_ps(LD(xp + v * 16 * (bf16 ? 2 : 4), mv[v]),
                                         _mm512_maskz_loadu_ps(mv[v], wk + 16 * v), acc[v]);
        }
    }
    int64_t o = n * k->y->sn + oh * k->y->ss[1] + ow * k->ystep + c;
    for (int v = 0; v < 4 && mv[v]; v++) {
        const epi16 e = epi_load(k->ep, c + 16 * v, mv[v]);
        out_store(k, &e, acc[v], o + 16 * v, mv[v], bf16);
    }
}

/* Row oh of image n, channels [c0, c1), generic kernel; output columns
 * [lo, hi) have all their taps inside the input in W. */
static ALWAYS void gen_row(const nhwc_ctx *k, int64_t n, int64_t oh, int64_t c0, int64_t c1,
                           int64_t lo, int64_t hi, const bool bf16)
{
    const int64_t OW = k->g->out[2];
    for (int64_t ow0 = 0; ow0 < OW;) {
        int nb = ow0 >= lo && ow0 + 8 <= hi ? 8 : ow0 >= lo && ow0 + 4 <= hi ? 4 : 1;
        if (nb == 1) {
            for (int64_t c = c0; c < c1; c += 64)
                gen_edge(k, n, oh, ow0, c, c1, bf16);
        } else {
            for (int64_t c = c0; c < c1; c += 16) {
                __mmask16 m = tail_mask(c1 - c);
                if (nb == 8)
                    gen_block(k, n, oh, ow0, c, m, 8, bf16);
                else
                    gen_block(k, n, oh, ow0, c, m, 4, bf16);
            }
        }
        ow0 += nb;
    }
}

static __attribute__((noinline)) void gen_rows(const nhwc_ctx *k, int64_t n, int64_t oh0,
                                               int64_t oh1, int64_t c0, int64_t c1)
{
    const kn_conv_geom *g = k->g;
    const int64_t OW = g->out[2], sw = g->s[2];
    /* output columns [lo, hi) whose taps all lie inside the input in W */
    int64_t lo = (g->pb[2] + sw - 1) / sw;
    int64_t hi = g->in[2] - 1 + g->pb[2] - (g->k[2] - 1) * g->d[2]; /* last ow*sw <= hi */
    hi = hi < 0 ? 0 : hi / sw + 1;
    if (hi > OW) hi = OW;
    for (int64_t oh = oh0; oh < oh1; oh++) {
        if (k->x->dt == KN_BF16)
            gen_row(k, n, oh, c0, c1, lo, hi, true);
        else
            gen_row(k, n, oh, c0, c1, lo, hi, false);
    }
}
#undef LD

/* Rows [oh0, oh1) of image n, channels [c0, c1) (c0 a multiple of 16). */
static void nhwc_unit(const nhwc_ctx *k, int64_t n, int64_t oh0, int64_t oh1, int64_t c0,
                      int64_t c1)
{
    if (!k->k3) {
        gen_rows(k, n, oh0, oh1, c0, c1);
        return;
    }
    const bool bf16 = k->x->dt == KN_BF16;
    if (k->k3 == 1)
        (bf16 ? k3_s1_bf16 : k3_s1_f32)(k, n, oh0, oh1, c0, c1);
    else
        (bf16 ? k3_s2_bf16 : k3_s2_f32)(k, n, oh0, oh1, c0, c1);
}

static nhwc_ctx nhwc_setup(const kn_conv_geom *g, const kn_conv_act *x, const float *wp,
                           int64_t ldw, const kn_conv_act *y, const kn_epilogue *ep)
{
    const int64_t xes = (int64_t)kn_dtype_size(x->dt);
    if (ep && !ep->bias && !ep->scale && !ep->shift && !ep->residual && ep->act == KN_ACT_NONE)
        ep = NULL;
    nhwc_ctx k = {.g = g,
                  .x = x,
                  .y = y,
                  .wp = wp,
                  .ldw = ldw,
                  .ep = ep,
                  .pix = x->ss[2] * xes,
                  .xrow = x->ss[1] * xes,
                  .ystep = y->ss[2],
                  .k3 = k3_usable(g)};
    return k;
}

void kn__conv_dw_nhwc_avx512(const kn_conv_geom *g, const kn_conv_act *x, const float *wp,
                             const kn_conv_act *y, const kn_epilogue *ep, int64_t r0, int64_t r1)
{
    const nhwc_ctx k = nhwc_setup(g, x, wp, g->cin, y, ep);
    const int64_t OH = g->out[1];
    for (int64_t r = r0; r < r1;) { /* runs of rows of one image */
        int64_t n = r / OH, oh0 = r % OH, oh1 = OH;
        if (r1 - r < oh1 - oh0) oh1 = oh0 + (r1 - r);
        nhwc_unit(&k, n, oh0, oh1, 0, g->cin);
        r += oh1 - oh0;
    }
}

/* ---- whole-problem entry (conv_dw.h) */
int64_t kn__conv_dw_nhwc_wsize(const kn_conv_geom *g)
{
    return g->k[1] * g->k[2] * ((g->cin + 15) / 16 * 16);
}

void kn__conv_dw_nhwc_pack(const kn_conv_geom *g, const kn_conv_wgt *w, float *wp)
{
    const int64_t C = g->cin, kW = g->k[2], kk = g->k[1] * kW, ld = (C + 15) / 16 * 16;
    const size_t wes = kn_dtype_size(w->dt);
    /* contiguous (C, 1, kH, kW): taps of 16 channels gathered at stride kk */
    const bool contig =
        kk >= 2 && kk <= (1 << 20) && w->s0 == kk && w->sk[1] == kW && w->sk[2] == 1;
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i idx = _mm512_mullo_epi32(lane, _mm512_set1_epi32((int)kk));
    for (int64_t c = 0; c < ld; c += 16) {
        __mmask16 m = tail_mask(C - c);
        for (int64_t t = 0; t < kk; t++) {
            __m512 v;
            if (contig && w->dt == KN_F32) {
                v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx,
                                             (const float *)w->p + c * kk + t, 4);
            } else if (contig) {
                /* bf16: 32-bit gathers that stay inside the channel's taps:
                 * tap 0 is the low half at its own address, tap t > 0 the
                 * high half one element earlier */
                const char *b = w->p + 2 * (c * kk + t) - (t ? 2 : 0);
                __m512i u = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, idx, b, 2);
                u = t ? _mm512_and_si512(u, _mm512_set1_epi32((int)0xffff0000u))
                      : _mm512_slli_epi32(u, 16);
                v = _mm512_castsi512_ps(u);
            } else {
                float t16[16] = {0};
                for (int i = 0; i < 16 && c + i < C; i++) {
                    const char *src =
                        w->p +
                        ((c + i) * w->s0 + t / kW * w->sk[1] + t % kW * w->sk[2]) * (int64_t)wes;
                    t16[i] = w->dt == KN_F32 ? *(const float *)src
                                             : kn_bf16_to_f32(*(const uint16_t *)src);
                }
                v = _mm512_loadu_ps(t16);
            }
            _mm512_storeu_ps(wp + t * ld + c, v);
        }
    }
}

/* Units aimed for per thread; an image's input small enough to stay in L2
 * is cut into channel chunks whose three input rows take at most
 * DW_L1_BYTES (larger ones keep whole pixels, read in address order). */
#define DW_UNITS_PER_THREAD 4
#define DW_L2_BYTES ((int64_t)1 << 20)
#define DW_L1_BYTES ((int64_t)24 << 10)

typedef struct dw_units {
    const nhwc_ctx *k;
    int64_t nband, band, nchunk, chunk; /* rows per band; channels per chunk */
} dw_units;

static void dw_units_task(int64_t b, int64_t e, void *arg)
{
    const dw_units *u = arg;
    const kn_conv_geom *g = u->k->g;
    for (int64_t i = b; i < e; i++) {
        int64_t bi = i % u->nband, ci = i / u->nband % u->nchunk, n = i / u->nband / u->nchunk;
        int64_t oh0 = bi * u->band, oh1 = oh0 + u->band < g->out[1] ? oh0 + u->band : g->out[1];
        int64_t c0 = ci * u->chunk, c1 = c0 + u->chunk < g->cin ? c0 + u->chunk : g->cin;
        nhwc_unit(u->k, n, oh0, oh1, c0, c1);
    }
}

kn_status kn__conv_dw_nhwc(const kn_conv_geom *g, const kn_conv_act *x, const kn_conv_wgt *w,
                           const float *wp, const kn_conv_act *y, const kn_epilogue *ep)
{
    if (!g->nhwc || x->sc != 1 || y->sc != 1 || x->dt != y->dt ||
        (x->dt != KN_F32 && x->dt != KN_BF16))
        return kn__error(KN_ERR_INTERNAL,
                         "conv_dw_nhwc: expected NHWC f32 or bf16 x and y (same dtype) with "
                         "contiguous channels");
    if (g->n <= 0 || g->cin <= 0 || g->out[1] <= 0 || g->out[2] <= 0) return KN_OK;
    float *own = NULL;
    if (!wp) {
        own = kn_alloc(sizeof(float) * (size_t)kn__conv_dw_nhwc_wsize(g));
        if (!own) return KN_ERR_NOMEM;
        kn__conv_dw_nhwc_pack(g, w, own);
        wp = own;
    }
    const nhwc_ctx k = nhwc_setup(g, x, wp, (g->cin + 15) / 16 * 16, y, ep);
    /* units (image, channel chunk, row band); the cut changes no result,
     * only how the work is shared and how well it caches */
    const int64_t OH = g->out[1], vecs = (g->cin + 15) / 16;
    const int64_t xes = (int64_t)kn_dtype_size(x->dt);
    int64_t chunk = vecs; /* in vectors */
    if (g->in[1] * g->in[2] * g->cin * xes <= DW_L2_BYTES) {
        /* the image stays in L2: chunks whose three input rows stay in L1 */
        chunk = DW_L1_BYTES / (3 * g->in[2] * 16 * xes);
        chunk = chunk < 1 ? 1 : chunk > vecs ? vecs : chunk;
    }
    int64_t nchunk = (vecs + chunk - 1) / chunk;
    chunk = (vecs + nchunk - 1) / nchunk;
    nchunk = (vecs + chunk - 1) / chunk;
    int64_t want = DW_UNITS_PER_THREAD * (int64_t)kn_get_num_threads();
    int64_t nband = (want + g->n * nchunk - 1) / (g->n * nchunk);
    nband = nband > OH ? OH : nband;
    int64_t band = (OH + nband - 1) / nband;
    nband = (OH + band - 1) / band;
    dw_units u = {.k = &k, .nband = nband, .band = band, .nchunk = nchunk, .chunk = chunk * 16};
    kn_parallel_for(g->n * nband * nchunk, 1, dw_units_task, &u);
    kn_free(own);
    return KN_OK;
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
