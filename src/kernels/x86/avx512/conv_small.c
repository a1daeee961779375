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

/* Output channels [oc0, oc0 + OCB) × columns [c0, c0 + 16·CB) of row oh.
 * The accumulators are named variables (a0.., and b0.. for a second column
 * block), generated per block shape, so they live in registers. */
#define REP8(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)
#define REP16(M) REP8(M) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define BIAS(o) (a->bias && oc0 + (o) < g->cout ? a->bias[oc0 + (o)] : 0.0f)
#define INIT_A(o) __m512 a##o = _mm512_set1_ps(BIAS(o));
#define INIT_B(o) __m512 b##o = _mm512_set1_ps(BIAS(o));
#define FMA_A(o) a##o = _mm512_fmadd_ps(_mm512_set1_ps(wt[o]), x0, a##o);
#define FMA_AB(o)                                                                                  \
    {                                                                                              \
        __m512 w_ = _mm512_set1_ps(wt[o]);                                                         \
        a##o = _mm512_fmadd_ps(w_, x0, a##o);                                                      \
        b##o = _mm512_fmadd_ps(w_, x1, b##o);                                                      \
    }
#define STORE_A(o) if (oc0 + (o) < g->cout) put(a, a##o, oc0 + (o), oh, c0);
#define STORE_AB(o)                                                                                \
    if (oc0 + (o) < g->cout) put(a, a##o, oc0 + (o), oh, c0), put(a, b##o, oc0 + (o), oh, c0 + 16);

static inline void put(const small_args *a, __m512 v, int64_t oc, int64_t oh, int64_t c0)
{
    if (a->relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
    __mmask16 m = cols_mask(c0, 0, a->g->out[2], a->g->out[2]);
    _mm512_mask_storeu_ps(a->y + oc * a->ysc + oh * a->ysh + c0, m, v);
}

/* The tap loop shared by every tile shape: LOADS fills x0 (and x1), STEP
 * accumulates one tap into every channel. */
#define TAP_LOOP(LOADS, STEP)                                                                      \
    for (int64_t ic = 0; ic < g->cin; ic++)                                                        \
        for (int64_t kh = 0; kh < KH; kh++) {                                                      \
            int64_t ih = oh * g->s[1] - g->pb[1] + kh * g->d[1];                                   \
            if (ih < 0 || ih >= g->in[1]) continue;                                                \
            const float *row = a->x + ic * a->xsc + ih * a->xsh;                                   \
            const float *wt = a->wp + (ic * KH + kh) * KW * a->ocp + oc0;                          \
            for (int64_t kw = 0; kw < KW; kw++, wt += a->ocp) {                                    \
                const float *src = row + (c0 + kw * g->d[2] - g->pb[2]);                           \
                LOADS;                                                                             \
                STEP                                                                               \
            }                                                                                      \
        }

/* Masks of the input columns each kw reads, for column blocks c0 and c0 + 16. */
static inline void tap_masks(const kn_conv_geom *g, int64_t c0, __mmask16 *m0, __mmask16 *m1)
{
    for (int64_t kw = 0; kw < g->k[2]; kw++) {
        int64_t shift = kw * g->d[2] - g->pb[2];
        m0[kw] = cols_mask(c0, shift, g->out[2], g->in[2]);
        m1[kw] = cols_mask(c0 + 16, shift, g->out[2], g->in[2]);
    }
}

static void tile_16x1(const small_args *a, int64_t oc0, int64_t oh, int64_t c0)
{
    const kn_conv_geom *g = a->g;
    int64_t KH = g->k[1], KW = g->k[2];
    __mmask16 m0[16], m1[16];
    tap_masks(g, c0, m0, m1);
    REP16(INIT_A)
    TAP_LOOP(__m512 x0 = _mm512_maskz_loadu_ps(m0[kw], src), REP16(FMA_A))
    REP16(STORE_A)
}

static void tile_8x1(const small_args *a, int64_t oc0, int64_t oh, int64_t c0)
{
    const kn_conv_geom *g = a->g;
    int64_t KH = g->k[1], KW = g->k[2];
    __mmask16 m0[16], m1[16];
    tap_masks(g, c0, m0, m1);
    REP8(INIT_A)
    TAP_LOOP(__m512 x0 = _mm512_maskz_loadu_ps(m0[kw], src), REP8(FMA_A))
    REP8(STORE_A)
}

static void tile_8x2(const small_args *a, int64_t oc0, int64_t oh, int64_t c0)
{
    const kn_conv_geom *g = a->g;
    int64_t KH = g->k[1], KW = g->k[2];
    __mmask16 m0[16], m1[16];
    tap_masks(g, c0, m0, m1);
    REP8(INIT_A)
    REP8(INIT_B)
    TAP_LOOP(__m512 x0 = _mm512_maskz_loadu_ps(m0[kw], src);
             __m512 x1 = _mm512_maskz_loadu_ps(m1[kw], src + 16), REP8(FMA_AB))
    REP8(STORE_AB)
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
                if (!narrow) tile_8x2(a, oc0, oh, c0);
                else if (few) tile_8x1(a, oc0, oh, c0);
                else tile_16x1(a, oc0, oh, c0);
            }
}

/* ---- weight gradient. For one image, one (ic, kh), a block of up to 5
 * taps along kw and 4 output channels, 20 accumulators stay in registers
 * over all output rows and column blocks: each step loads 5 shifted input
 * vectors and 4 dy vectors for 20 FMAs. The lane-wise sums carry over
 * images in memory (accm) and are summed across lanes at the end. */
#define WK 5 /* taps along kw per block */
#define WO 4 /* output channels per block */
#define MAX_CBLK 8 /* column blocks with precomputed masks: OW <= 128 */
#define K5(M, o) M(0, o) M(1, o) M(2, o) M(3, o) M(4, o)
#define ALL20(M) K5(M, 0) K5(M, 1) K5(M, 2) K5(M, 3)
#define O4(M) M(0) M(1) M(2) M(3)
#define K5X(M) M(0) M(1) M(2) M(3) M(4)
#define ACC_LOAD(k, o) __m512 a##k##o = _mm512_loadu_ps(accm + 16 * ((k) * WO + (o)));
#define ACC_FMA(k, o) a##k##o = _mm512_fmadd_ps(x##k, d##o, a##k##o);
#define ACC_STORE(k, o) _mm512_storeu_ps(accm + 16 * ((k) * WO + (o)), a##k##o);
#define LOAD_D(o)                                                                                  \
    __m512 d##o = (o) < noc ? _mm512_maskz_loadu_ps(mo, drow + (o) * dy->sc + c0) : _mm512_setzero_ps();
#define LOAD_X(k)                                                                                  \
    __m512 x##k = (k) < kwn ? _mm512_maskz_loadu_ps(mx[cb][k], row + (c0 + shift[k]))             \
                            : _mm512_setzero_ps();

static void wgrad_block(const kn_conv_geom *g, const kn_conv_act *x, const kn_conv_act *dy, int64_t n,
                        int64_t ic, int64_t kh, int64_t kw0, int64_t oc0, float *accm)
{
    int64_t OH = g->out[1], OW = g->out[2], W = g->in[2];
    int64_t kwn = g->k[2] - kw0 < WK ? g->k[2] - kw0 : WK, noc = g->cout - oc0 < WO ? g->cout - oc0 : WO;
    int64_t shift[WK] = {0};
    __mmask16 mx[MAX_CBLK][WK], mo_all[MAX_CBLK];
    for (int64_t cb = 0; cb * 16 < OW; cb++) {
        mo_all[cb] = cols_mask(16 * cb, 0, OW, OW);
        for (int k = 0; k < WK; k++) {
            shift[k] = (kw0 + k) * g->d[2] - g->pb[2];
            mx[cb][k] = k < kwn ? cols_mask(16 * cb, shift[k], OW, W) : 0;
        }
    }
    ALL20(ACC_LOAD)
    const float *xn = (const float *)x->p + n * x->sn + ic * x->sc;
    const float *dn = (const float *)dy->p + n * dy->sn + oc0 * dy->sc;
    for (int64_t oh = 0; oh < OH; oh++) {
        int64_t ih = oh * g->s[1] - g->pb[1] + kh * g->d[1];
        if (ih < 0 || ih >= g->in[1]) continue;
        const float *row = xn + ih * x->ss[1], *drow = dn + oh * dy->ss[1];
        for (int64_t cb = 0, c0 = 0; c0 < OW; cb++, c0 += 16) {
            __mmask16 mo = mo_all[cb];
            O4(LOAD_D)
            K5X(LOAD_X)
            ALL20(ACC_FMA)
        }
    }
    ALL20(ACC_STORE)
}

static int64_t wgrad_blocks(const kn_conv_geom *g, int64_t *kwb, int64_t *ocb)
{
    *kwb = (g->k[2] + WK - 1) / WK, *ocb = (g->cout + WO - 1) / WO;
    return g->cin * g->k[1] * *kwb * *ocb;
}

bool kn__conv_small_wgrad_accepts(const kn_conv_geom *g)
{
    return g->out[2] <= 16 * MAX_CBLK;
}

int64_t kn__conv_small_wgrad_scratch(const kn_conv_geom *g)
{
    int64_t kwb, ocb;
    return wgrad_blocks(g, &kwb, &ocb) * WK * WO * 16;
}

void kn__conv_small_wgrad_avx512(const kn_conv_geom *g, const kn_conv_act *x, const kn_conv_act *dy,
                                 int64_t n0, int64_t n1, float *dw, float *scratch)
{
    int64_t KH = g->k[1], KW = g->k[2], kwb, ocb;
    int64_t blocks = wgrad_blocks(g, &kwb, &ocb);
    memset(scratch, 0, sizeof(float) * (size_t)kn__conv_small_wgrad_scratch(g));
    for (int64_t n = n0; n < n1; n++) {
        float *accm = scratch;
        for (int64_t ic = 0; ic < g->cin; ic++)
            for (int64_t kh = 0; kh < KH; kh++)
                for (int64_t b = 0; b < kwb * ocb; b++, accm += WK * WO * 16)
                    wgrad_block(g, x, dy, n, ic, kh, b / ocb * WK, b % ocb * WO, accm);
    }
    const float *accm = scratch;
    for (int64_t i = 0; i < blocks; i++, accm += WK * WO * 16) {
        int64_t b = i % (kwb * ocb), ic = i / (kwb * ocb) / KH, kh = i / (kwb * ocb) % KH;
        int64_t kw0 = b / ocb * WK, oc0 = b % ocb * WO;
        for (int64_t k = 0; k < WK && kw0 + k < KW; k++)
            for (int64_t o = 0; o < WO && oc0 + o < g->cout; o++)
                dw[(((oc0 + o) * g->cin + ic) * KH + kh) * KW + kw0 + k] =
                    _mm512_reduce_add_ps(_mm512_loadu_ps(accm + 16 * (k * WO + o)));
    }
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
