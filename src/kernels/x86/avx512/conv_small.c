/* conv_small.c — AVX-512 direct f32 NCHW convolution for small channel
 * counts (LeNet-sized layers), with no im2col: for each output row, every
 * (c_in, kh, kw) tap loads the input row segment it needs as vectors over
 * output columns (edges masked) and accumulates it, times each output
 * channel's weight (broadcast), into a block of output channels × columns
 * held in registers. Each output element is bias (or 0) then
 * acc += w·x over (c_in, kh, kw) ascending with f32 FMA: one fixed order
 * whatever the thread split. The portable twin is the reference conv. */
#include "../../conv_fast.h"

#if KILN_X86
#include <immintrin.h>
#include <string.h>

/* Lanes l of the 16-column block at output column c0 whose output column
 * exists (< OW) and whose input column c0 + l + shift is inside [0, W). */
static inline __mmask16 cols_mask(int64_t c0, int64_t shift, int64_t OW, int64_t W)
{
    __m512i l = _mm512_add_epi32(_mm512_set1_epi32((int)c0),
                                 _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0));
    __m512i in = _mm512_add_epi32(l, _mm512_set1_epi32((int)shift));
    __mmask16 m = _mm512_cmplt_epi32_mask(l, _mm512_set1_epi32((int)OW));
    m &= _mm512_cmpge_epi32_mask(in, _mm512_setzero_si512());
    return m & _mm512_cmplt_epi32_mask(in, _mm512_set1_epi32((int)W));
}

typedef struct small_args {
    const kn_conv_geom *g;
    const float *x; /* image base */
    int64_t xsc, xsh;
    const float *wp; /* [(ic*KH + kh)*KW + kw][ocp] */
    int64_t ocp;
    const float *bias;
    bool relu;
    float *y; /* image base */
    int64_t ysc, ysh;
} small_args;

/* Output channels [oc0, oc0 + OCB) × columns [c0, c0 + 16·CB) of row oh. */
static inline __attribute__((always_inline)) void tile(const int OCB, const int CB, const small_args *a,
                                                      int64_t oc0, int64_t oh, int64_t c0)
{
    const kn_conv_geom *g = a->g;
    int64_t KH = g->k[1], KW = g->k[2], W = g->in[2], OW = g->out[2];
    __m512 acc[16][2];
    for (int o = 0; o < OCB; o++) {
        float b = a->bias && oc0 + o < g->cout ? a->bias[oc0 + o] : 0.0f;
        for (int c = 0; c < CB; c++)
            acc[o][c] = _mm512_set1_ps(b);
    }
    __mmask16 masks[16][2];
    for (int64_t kw = 0; kw < KW; kw++)
        for (int c = 0; c < CB; c++)
            masks[kw][c] = cols_mask(c0 + 16 * c, kw * g->d[2] - g->pb[2], OW, W);
    for (int64_t ic = 0; ic < g->cin; ic++)
        for (int64_t kh = 0; kh < KH; kh++) {
            int64_t ih = oh * g->s[1] - g->pb[1] + kh * g->d[1];
            if (ih < 0 || ih >= g->in[1]) continue;
            const float *row = a->x + ic * a->xsc + ih * a->xsh;
            const float *wt = a->wp + (ic * KH + kh) * KW * a->ocp + oc0;
            for (int64_t kw = 0; kw < KW; kw++, wt += a->ocp) {
                int64_t shift = kw * g->d[2] - g->pb[2];
                __m512 xv[2];
                for (int c = 0; c < CB; c++) /* masked lanes are not read */
                    xv[c] = _mm512_maskz_loadu_ps(masks[kw][c], row + (c0 + 16 * c + shift));
                for (int o = 0; o < OCB; o++) {
                    __m512 wv = _mm512_set1_ps(wt[o]);
                    for (int c = 0; c < CB; c++)
                        acc[o][c] = _mm512_fmadd_ps(wv, xv[c], acc[o][c]);
                }
            }
        }
    for (int o = 0; o < OCB && oc0 + o < g->cout; o++)
        for (int c = 0; c < CB; c++) {
            __m512 v = a->relu ? _mm512_max_ps(acc[o][c], _mm512_setzero_ps()) : acc[o][c];
            __mmask16 m = cols_mask(c0 + 16 * c, 0, OW, OW);
            _mm512_mask_storeu_ps(a->y + (oc0 + o) * a->ysc + oh * a->ysh + c0 + 16 * c, m, v);
        }
}

static void image(const small_args *a)
{
    const kn_conv_geom *g = a->g;
    int64_t OW = g->out[2], OH = g->out[1];
    /* one column block: 16 channels per tile (8 when there are no more),
     * else 8 channels × 2 column blocks */
    bool narrow = OW <= 16, few = g->cout <= 8;
    int64_t ocb = narrow && !few ? 16 : 8;
    for (int64_t oc0 = 0; oc0 < g->cout; oc0 += ocb)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t c0 = 0; c0 < OW; c0 += narrow ? 16 : 32) {
                if (!narrow) tile(8, 2, a, oc0, oh, c0);
                else if (few) tile(8, 1, a, oc0, oh, c0);
                else tile(16, 1, a, oc0, oh, c0);
            }
}

/* Weight gradient of image n, output channels [oc0, oc0 + OCB) of one tap
 * (ic, kh, kw): lane-wise sums of dy · x along rows and column blocks added
 * to the OCB vectors at accm (kept in memory between images, so each
 * image's dy and x stay in L1 while all its taps run). */
static inline __attribute__((always_inline)) void
wgrad_tap(const int OCB, const kn_conv_geom *g, const kn_conv_act *x, const kn_conv_act *dy,
          int64_t n, int64_t oc0, int64_t ic, int64_t kh, int64_t kw, float *accm)
{
    int64_t OH = g->out[1], OW = g->out[2], W = g->in[2];
    int64_t shift = kw * g->d[2] - g->pb[2];
    int64_t noc = g->cout - oc0 < OCB ? g->cout - oc0 : OCB, sc = dy->sc;
    __m512 acc[16];
    for (int o = 0; o < OCB; o++)
        acc[o] = _mm512_loadu_ps(accm + 16 * o);
    const float *xn = (const float *)x->p + n * x->sn + ic * x->sc;
    const float *dyn = (const float *)dy->p + n * dy->sn + oc0 * sc;
    for (int64_t oh = 0; oh < OH; oh++) {
        int64_t ih = oh * g->s[1] - g->pb[1] + kh * g->d[1];
        if (ih < 0 || ih >= g->in[1]) continue;
        const float *row = xn + ih * x->ss[1], *d0 = dyn + oh * dy->ss[1];
        for (int64_t c0 = 0; c0 < OW; c0 += 16) {
            __mmask16 m = cols_mask(c0, shift, OW, W);
            __m512 xv = _mm512_maskz_loadu_ps(m, row + (c0 + shift));
            for (int o = 0; o < OCB; o++)
                if (o < noc)
                    acc[o] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, d0 + o * sc + c0), xv, acc[o]);
        }
    }
    for (int o = 0; o < OCB; o++)
        _mm512_storeu_ps(accm + 16 * o, acc[o]);
}

int64_t kn__conv_small_wgrad_scratch(const kn_conv_geom *g)
{
    int64_t blocks = (g->cout + 15) / 16;
    return g->cin * g->k[1] * g->k[2] * blocks * 16 * 16;
}

void kn__conv_small_wgrad_avx512(const kn_conv_geom *g, const kn_conv_act *x, const kn_conv_act *dy,
                                 int64_t n0, int64_t n1, float *dw, float *scratch)
{
    int64_t KH = g->k[1], KW = g->k[2], blocks = (g->cout + 15) / 16;
    memset(scratch, 0, sizeof(float) * (size_t)kn__conv_small_wgrad_scratch(g));
    for (int64_t n = n0; n < n1; n++) {
        float *accm = scratch;
        for (int64_t ic = 0; ic < g->cin; ic++)
            for (int64_t kh = 0; kh < KH; kh++)
                for (int64_t kw = 0; kw < KW; kw++)
                    for (int64_t b = 0; b < blocks; b++, accm += 256) {
                        if (g->cout - 16 * b <= 8) wgrad_tap(8, g, x, dy, n, 16 * b, ic, kh, kw, accm);
                        else wgrad_tap(16, g, x, dy, n, 16 * b, ic, kh, kw, accm);
                    }
    }
    const float *accm = scratch;
    for (int64_t ic = 0; ic < g->cin; ic++)
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++)
                for (int64_t b = 0; b < blocks; b++, accm += 256)
                    for (int64_t o = 0; o < 16 && 16 * b + o < g->cout; o++)
                        dw[(((16 * b + o) * g->cin + ic) * KH + kh) * KW + kw] =
                            _mm512_reduce_add_ps(_mm512_loadu_ps(accm + 16 * o));
}

void kn__conv_small_nchw_avx512(const kn_conv_geom *g, const kn_conv_act *x, const float *wp,
                                int64_t ocp, const float *bias, bool relu, const kn_conv_act *y,
                                int64_t n0, int64_t n1)
{
    for (int64_t n = n0; n < n1; n++) {
        small_args a = {g, (const float *)x->p + n * x->sn, x->sc, x->ss[1], wp, ocp, bias, relu,
                        (float *)y->p + n * y->sn, y->sc, y->ss[1]};
        image(&a);
    }
}
#endif
