/* pool.c (AVX-512) — 2-D max/avg pooling and the max-pool gradient.
 *   NHWC: x (N, H, W, C), C unit-stride: each output pixel folds its window
 *         taps 16 channels at a time (masked tail); parallel over (n, oh).
 *   NCHW: x (N, C, H, W), W unit-stride: each output row (n, c, oh) takes 16
 *         neighbouring outputs per vector where the window lies inside the
 *         input (stride 1 loads, stride 2 deinterleaved pairs of loads; f32),
 *         scalar f32 elsewhere; parallel over rows.
 *   max_pool_grad (f32): per (n, 16-channel block) in NHWC or per plane in
 *         NCHW, grad_x is zeroed, then each output adds grad_y at its
 *         window's first maximum (last NaN), outputs in order.
 * Max propagates NaN like the reference; averages sum in f32 then scale. */
#include "../../pool_fast.h"
#include "reduce_simd.h"

#include <math.h>

#define ALWAYS_INLINE static inline __attribute__((always_inline))

typedef struct pgeo {
    int64_t N, C, H, W, OH, OW;
    int64_t xs[4], ys[4]; /* n, c, h, w strides (elements) of x and y (or gy) */
} pgeo;

static void geo_of(const kn_tensor *t, bool nhwc, int64_t *size, int64_t *st)
{
    static const int nchw[4] = {0, 1, 2, 3}, nhwc_[4] = {0, 3, 1, 2};
    const int *m = nhwc ? nhwc_ : nchw;
    for (int i = 0; i < 4; i++)
        size[i] = t->shape[m[i]], st[i] = t->strides[m[i]];
}

static void make_geo(const kn_pool2d_job *j, const kn_tensor *out, pgeo *g)
{
    int64_t xsz[4], ysz[4];
    geo_of(j->x, j->nhwc, xsz, g->xs);
    geo_of(out, j->nhwc, ysz, g->ys);
    g->N = xsz[0], g->C = xsz[1], g->H = xsz[2], g->W = xsz[3], g->OH = ysz[2], g->OW = ysz[3];
}

static bool dtype_ok(kn_dtype dt)
{
    return dt == KN_F32 || dt == KN_BF16;
}

bool kn__pool2d_avx512_accepts(const kn_pool2d_job *j)
{
    if (j->x->ndim != 4 || !dtype_ok(j->x->dtype) || !kn_tensor_is_contiguous(j->y)) return false;
    /* the last dim, C (NHWC) or W (NCHW), is unit-stride */
    return j->x->shape[3] == 1 || j->x->strides[3] == 1;
}

/* Window of output o along one dim: [a, b) and the count for the average. */
static inline int64_t window(const kn_pool2d_job *j, int d, int64_t o, int64_t in, int64_t *a,
                             int64_t *b)
{
    int64_t st = o * j->s[d] - j->pb[d], en = st + j->k[d];
    if (en > in + j->pe[d]) en = in + j->pe[d];
    int64_t padded = en - st;
    if (st < 0) st = 0;
    if (en > in) en = in;
    *a = st, *b = en;
    return j->include_pad ? padded : en - st;
}

typedef struct pctx {
    const kn_pool2d_job *j;
    pgeo g;
    const char *x, *gy;
    char *y;
    int64_t es, nblk;
} pctx;

static float ldf(const char *p, bool bf)
{
    if (!bf) return *(const float *)p;
    uint16_t h;
    memcpy(&h, p, 2);
    return kn_bf16_to_f32(h);
}

static void stf(char *p, bool bf, float v)
{
    if (!bf)
        *(float *)p = v;
    else {
        uint16_t h = kn_f32_to_bf16(v);
        memcpy(p, &h, 2);
    }
}

/* ---------------------------------------------------------------- NHWC */
ALWAYS_INLINE void nhwc_row(const pctx *c, int64_t r, bool bf)
{
    const pgeo *g = &c->g;
    const kn_pool2d_job *j = c->j;
    int64_t n = r / g->OH, oh = r % g->OH, h0, h1, w0, w1, es = bf ? 2 : 4;
    int64_t ch = window(j, 0, oh, g->H, &h0, &h1);
    const char *xn = c->x + n * g->xs[0] * es;
    char *yr = c->y + (r * g->OW) * g->C * es;
    for (int64_t ow = 0; ow < g->OW; ow++) {
        int64_t cw = window(j, 1, ow, g->W, &w0, &w1);
        __m512 inv = _mm512_set1_ps(1.0f / (float)(ch * cw));
        for (int64_t c0 = 0; c0 < g->C; c0 += 16) {
            __mmask16 k = tail_mask(g->C - c0), nanm = 0;
            __m512 acc = _mm512_set1_ps(j->is_max ? -INFINITY : 0.0f);
            for (int64_t ih = h0; ih < h1; ih++)
                for (int64_t iw = w0; iw < w1; iw++) {
                    __m512 v = load16(xn + (ih * g->xs[2] + iw * g->xs[3] + c0) * es, bf, k);
                    if (j->is_max) {
                        nanm |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
                        acc = _mm512_max_ps(acc, v);
                    } else {
                        acc = _mm512_add_ps(acc, v);
                    }
                }
            acc = j->is_max ? _mm512_mask_mov_ps(acc, nanm, _mm512_set1_ps(NAN))
                            : _mm512_mul_ps(acc, inv);
            store16(yr + (ow * g->C + c0) * es, bf, k, acc);
        }
    }
}

static void nhwc_range(int64_t begin, int64_t end, void *arg)
{
    const pctx *c = arg;
    for (int64_t r = begin; r < end; r++) {
        if (c->es == 2)
            nhwc_row(c, r, true);
        else
            nhwc_row(c, r, false);
    }
}

/* ---------------------------------------------------------------- NCHW */
static float nchw_one(const pctx *c, const char *xp, int64_t h0, int64_t h1, int64_t ow, int64_t ch,
                      bool bf)
{
    const pgeo *g = &c->g;
    int64_t w0, w1, es = bf ? 2 : 4;
    int64_t cw = window(c->j, 1, ow, g->W, &w0, &w1);
    float acc = c->j->is_max ? -INFINITY : 0.0f;
    bool nan = false;
    for (int64_t ih = h0; ih < h1; ih++)
        for (int64_t iw = w0; iw < w1; iw++) {
            float v = ldf(xp + (ih * g->xs[2] + iw) * es, bf);
            if (c->j->is_max) {
                nan |= isnan(v);
                acc = v > acc ? v : acc;
            } else {
                acc += v;
            }
        }
    return c->j->is_max ? (nan ? NAN : acc) : acc * (1.0f / (float)(ch * cw));
}

/* 16 outputs from ow whose windows lie inside the row (f32, stride 1 or 2). */
static __m512 nchw_vec(const pctx *c, const float *xp, int64_t h0, int64_t h1, int64_t ow,
                       int64_t ch)
{
    const pgeo *g = &c->g;
    const kn_pool2d_job *j = c->j;
    int64_t s = j->s[1], kw = j->k[1];
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    __m512 acc = _mm512_set1_ps(j->is_max ? -INFINITY : 0.0f);
    __mmask16 nanm = 0;
    for (int64_t ih = h0; ih < h1; ih++) {
        const float *row = xp + ih * g->xs[2] + ow * s - j->pb[1];
        for (int64_t t = 0; t < kw; t++) {
            __m512 v;
            if (s == 1)
                v = _mm512_loadu_ps(row + t);
            else
                v = _mm512_permutex2var_ps(_mm512_loadu_ps(row + t), even,
                                           _mm512_maskz_loadu_ps(0x7fff, row + t + 16));
            if (j->is_max) {
                nanm |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
                acc = _mm512_max_ps(acc, v);
            } else {
                acc = _mm512_add_ps(acc, v);
            }
        }
    }
    if (j->is_max) return _mm512_mask_mov_ps(acc, nanm, _mm512_set1_ps(NAN));
    return _mm512_mul_ps(acc, _mm512_set1_ps(1.0f / (float)(ch * kw)));
}

ALWAYS_INLINE void nchw_row(const pctx *c, int64_t r, bool bf)
{
    const pgeo *g = &c->g;
    const kn_pool2d_job *j = c->j;
    int64_t oh = r % g->OH, nc = r / g->OH, n = nc / g->C, cc = nc % g->C, h0, h1, es = bf ? 2 : 4;
    int64_t ch = window(j, 0, oh, g->H, &h0, &h1);
    const char *xp = c->x + (n * g->xs[0] + cc * g->xs[1]) * es;
    char *yr = c->y + r * g->OW * es;
    int64_t s = j->s[1], lo = g->OW, hi = 0; /* [lo, hi): outputs fully inside */
    if (!bf && (s == 1 || s == 2) && g->W + j->pb[1] >= j->k[1]) {
        lo = (j->pb[1] + s - 1) / s;
        hi = (g->W + j->pb[1] - j->k[1]) / s + 1;
        if (hi > g->OW) hi = g->OW;
    }
    for (int64_t ow = 0; ow < g->OW;) {
        if (ow >= lo && ow + 16 <= hi) {
            _mm512_storeu_ps((float *)yr + ow, nchw_vec(c, (const float *)xp, h0, h1, ow, ch));
            ow += 16;
        } else {
            stf(yr + ow * es, bf, nchw_one(c, xp, h0, h1, ow, ch, bf));
            ow++;
        }
    }
}

static void nchw_range(int64_t begin, int64_t end, void *arg)
{
    const pctx *c = arg;
    for (int64_t r = begin; r < end; r++) {
        if (c->es == 2)
            nchw_row(c, r, true);
        else
            nchw_row(c, r, false);
    }
}

/* ---- 2×2 stride-2 max pooling, NCHW f32 (LeNet, VGG): each output row
 * takes up to 16 outputs per step from two input rows, loaded as pairs of
 * vectors (the tail masked) and split into even and odd columns. */
static bool is_pool22(const kn_pool2d_job *j, const pgeo *g)
{
    return !j->nhwc && j->is_max && j->k[0] == 2 && j->k[1] == 2 && j->s[0] == 2 && j->s[1] == 2 &&
           !j->pb[0] && !j->pb[1] && !j->pe[0] && !j->pe[1] && 2 * g->OW <= g->W &&
           2 * g->OH <= g->H && g->xs[3] == 1 && j->x->dtype == KN_F32;
}

/* Even and odd columns of the 2v floats at p (v <= 16 outputs). */
ALWAYS_INLINE void split_pairs(const float *p, int64_t v, __m512 *even, __m512 *odd)
{
    const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    int64_t f = 2 * v;
    __mmask16 mlo = f >= 16 ? 0xffff : (__mmask16)((1u << f) - 1);
    __mmask16 mhi = f <= 16 ? 0 : f >= 32 ? 0xffff : (__mmask16)((1u << (f - 16)) - 1);
    __m512 lo = _mm512_maskz_loadu_ps(mlo, p), hi = _mm512_maskz_loadu_ps(mhi, p + 16);
    *even = _mm512_permutex2var_ps(lo, ie, hi);
    *odd = _mm512_permutex2var_ps(lo, io, hi);
}

/* The reference's running maximum: b replaces a when greater or NaN. */
ALWAYS_INLINE __mmask16 takes(__m512 a, __m512 b)
{
    return _mm512_cmp_ps_mask(b, a, _CMP_GT_OQ) | _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q);
}

static void pool22_rows(int64_t begin, int64_t end, void *arg)
{
    const pctx *c = arg;
    const pgeo *g = &c->g;
    for (int64_t r = begin; r < end; r++) {
        int64_t n = r / (g->C * g->OH), ch = r / g->OH % g->C, oh = r % g->OH;
        const float *x0 = (const float *)c->x + n * g->xs[0] + ch * g->xs[1] + 2 * oh * g->xs[2];
        const float *x1 = x0 + g->xs[2];
        float *y = (float *)c->y + n * g->ys[0] + ch * g->ys[1] + oh * g->ys[2];
        for (int64_t ow = 0; ow < g->OW; ow += 16) {
            int64_t v = g->OW - ow < 16 ? g->OW - ow : 16;
            __m512 a, b, d, e;
            split_pairs(x0 + 2 * ow, v, &a, &b);
            split_pairs(x1 + 2 * ow, v, &d, &e);
            __m512 best = _mm512_mask_mov_ps(a, takes(a, b), b);
            best = _mm512_mask_mov_ps(best, takes(best, d), d);
            best = _mm512_mask_mov_ps(best, takes(best, e), e);
            _mm512_mask_storeu_ps(y + ow, (__mmask16)((1u << v) - 1), best);
        }
    }
}

/* Gradient: dx is zeroed, then each output's gy goes to its window's first
 * maximum (the last NaN), as the reference. */
static void pool22_grad_planes(int64_t begin, int64_t end, void *arg)
{
    const pctx *c = arg;
    const pgeo *g = &c->g;
    const __m512i il = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i ih = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    for (int64_t pl = begin; pl < end; pl++) {
        int64_t n = pl / g->C, ch = pl % g->C;
        const float *xp = (const float *)c->x + n * g->xs[0] + ch * g->xs[1];
        const float *gp = (const float *)c->gy + n * g->ys[0] + ch * g->ys[1];
        float *dp = (float *)c->y + pl * g->H * g->W;
        memset(dp, 0, sizeof(float) * (size_t)(g->H * g->W));
        for (int64_t oh = 0; oh < g->OH; oh++) {
            const float *x0 = xp + 2 * oh * g->xs[2], *x1 = x0 + g->xs[2];
            float *d0 = dp + 2 * oh * g->W, *d1 = d0 + g->W;
            for (int64_t ow = 0; ow < g->OW; ow += 16) {
                int64_t v = g->OW - ow < 16 ? g->OW - ow : 16, f = 2 * v;
                __mmask16 mv = (__mmask16)((1u << v) - 1);
                __m512 a, b, d, e;
                split_pairs(x0 + 2 * ow, v, &a, &b);
                split_pairs(x1 + 2 * ow, v, &d, &e);
                __mmask16 at1 = takes(a, b);
                __m512 best = _mm512_mask_mov_ps(a, at1, b);
                __mmask16 at2 = takes(best, d);
                best = _mm512_mask_mov_ps(best, at2, d);
                __mmask16 at3 = takes(best, e);
                /* the winner: the last tap that took over */
                __mmask16 w3 = at3, w2 = at2 & ~w3, w1 = at1 & ~at2 & ~w3, w0 = ~(at1 | at2 | at3);
                __m512 gv = _mm512_maskz_loadu_ps(mv, gp + oh * g->ys[2] + ow * g->ys[3]);
                __m512 g0 = _mm512_maskz_mov_ps(w0, gv), g1 = _mm512_maskz_mov_ps(w1, gv);
                __m512 g2 = _mm512_maskz_mov_ps(w2, gv), g3 = _mm512_maskz_mov_ps(w3, gv);
                __mmask16 mlo = f >= 16 ? 0xffff : (__mmask16)((1u << f) - 1);
                __mmask16 mhi = f <= 16 ? 0 : f >= 32 ? 0xffff : (__mmask16)((1u << (f - 16)) - 1);
                _mm512_mask_storeu_ps(d0 + 2 * ow, mlo, _mm512_permutex2var_ps(g0, il, g1));
                _mm512_mask_storeu_ps(d0 + 2 * ow + 16, mhi, _mm512_permutex2var_ps(g0, ih, g1));
                _mm512_mask_storeu_ps(d1 + 2 * ow, mlo, _mm512_permutex2var_ps(g2, il, g3));
                _mm512_mask_storeu_ps(d1 + 2 * ow + 16, mhi, _mm512_permutex2var_ps(g2, ih, g3));
            }
        }
    }
}

void kn__pool2d_avx512_run(const kn_pool2d_job *j)
{
    pctx c = {.j = j, .x = kn__tensor_ptr(j->x), .y = kn__tensor_ptr(j->y)};
    make_geo(j, j->y, &c.g);
    c.es = (int64_t)kn_dtype_size(j->x->dtype);
    const pgeo *g = &c.g;
    if (kn_tensor_numel(j->y) == 0) return;
    int64_t taps = j->k[0] * j->k[1];
    if (is_pool22(j, g)) {
        int64_t grain = 65536 / (g->OW * taps + 1);
        kn_parallel_for(g->N * g->C * g->OH, grain < 1 ? 1 : grain, pool22_rows, &c);
    } else if (j->nhwc) {
        int64_t grain = 65536 / (g->OW * g->C * taps + 1);
        kn_parallel_for(g->N * g->OH, grain < 1 ? 1 : grain, nhwc_range, &c);
    } else {
        int64_t grain = 65536 / (g->OW * taps + 1);
        kn_parallel_for(g->N * g->C * g->OH, grain < 1 ? 1 : grain, nchw_range, &c);
    }
}

/* ---------------------------------------------------------------- max_pool_grad */
bool kn__maxpool2d_grad_avx512_accepts(const kn_pool2d_job *j)
{
    const kn_tensor *x = j->x, *gy = j->gy;
    if (x->ndim != 4 || x->dtype != KN_F32 || gy->dtype != KN_F32 || j->y->dtype != KN_F32 ||
        !kn_tensor_is_contiguous(j->y))
        return false;
    if (!(x->shape[3] == 1 || (x->strides[3] == 1 && gy->strides[3] == 1))) return false;
    int64_t plane = x->shape[1] * x->shape[2] * x->shape[3];
    return plane < ((int64_t)1 << 31);
}

static void grad_nhwc(int64_t begin, int64_t end, void *arg)
{
    const pctx *c = arg;
    const pgeo *g = &c->g;
    const kn_pool2d_job *j = c->j;
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int64_t b = begin; b < end; b++) {
        int64_t n = b / c->nblk, c0 = (b % c->nblk) * 16, h0, h1, w0, w1;
        __mmask16 k = tail_mask(g->C - c0);
        const float *xn = (const float *)c->x + n * g->xs[0] + c0;
        const float *gn = (const float *)c->gy + n * g->ys[0] + c0;
        float *dn = (float *)c->y + n * g->H * g->W * g->C + c0;
        for (int64_t i = 0; i < g->H * g->W; i++)
            _mm512_mask_storeu_ps(dn + i * g->C, k, _mm512_setzero_ps());
        for (int64_t oh = 0; oh < g->OH; oh++) {
            window(j, 0, oh, g->H, &h0, &h1);
            for (int64_t ow = 0; ow < g->OW; ow++) {
                window(j, 1, ow, g->W, &w0, &w1);
                __m512 best = _mm512_setzero_ps();
                __m512i amax = _mm512_setzero_si512();
                bool first = true;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) {
                        __m512 v = _mm512_maskz_loadu_ps(k, xn + ih * g->xs[2] + iw * g->xs[3]);
                        __m512i pos = _mm512_set1_epi32((int)((ih * g->W + iw) * g->C));
                        __mmask16 up = first ? (__mmask16)0xffff
                                             : _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) |
                                                   _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
                        best = _mm512_mask_mov_ps(best, up, v);
                        amax = _mm512_mask_mov_epi32(amax, up, pos);
                        first = false;
                    }
                __m512 gv = _mm512_maskz_loadu_ps(k, gn + oh * g->ys[2] + ow * g->ys[3]);
                __m512i idx = _mm512_add_epi32(amax, lane);
                __m512 cur = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, idx, dn, 4);
                _mm512_mask_i32scatter_ps(dn, k, idx, _mm512_add_ps(cur, gv), 4);
            }
        }
    }
}

static void grad_nchw(int64_t begin, int64_t end, void *arg)
{
    const pctx *c = arg;
    const pgeo *g = &c->g;
    const kn_pool2d_job *j = c->j;
    for (int64_t pl = begin; pl < end; pl++) {
        int64_t n = pl / g->C, cc = pl % g->C, h0, h1, w0, w1;
        const float *xp = (const float *)c->x + n * g->xs[0] + cc * g->xs[1];
        const float *gp = (const float *)c->gy + n * g->ys[0] + cc * g->ys[1];
        float *dp = (float *)c->y + pl * g->H * g->W;
        memset(dp, 0, sizeof(float) * (size_t)(g->H * g->W));
        for (int64_t oh = 0; oh < g->OH; oh++) {
            window(j, 0, oh, g->H, &h0, &h1);
            for (int64_t ow = 0; ow < g->OW; ow++) {
                window(j, 1, ow, g->W, &w0, &w1);
                float best = 0;
                int64_t at = -1;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) {
                        float v = xp[ih * g->xs[2] + iw];
                        if (at < 0 || v > best || isnan(v)) best = v, at = ih * g->W + iw;
                    }
                if (at >= 0) dp[at] += gp[oh * g->ys[2] + ow * g->ys[3]];
            }
        }
    }
}

void kn__maxpool2d_grad_avx512_run(const kn_pool2d_job *j)
{
    pctx c = {
        .j = j, .x = kn__tensor_ptr(j->x), .gy = kn__tensor_ptr(j->gy), .y = kn__tensor_ptr(j->y)};
    int64_t xsz[4], ysz[4];
    geo_of(j->x, j->nhwc, xsz, c.g.xs);
    geo_of(j->gy, j->nhwc, ysz, c.g.ys);
    c.g.N = xsz[0], c.g.C = xsz[1], c.g.H = xsz[2], c.g.W = xsz[3], c.g.OH = ysz[2],
    c.g.OW = ysz[3];
    c.es = 4;
    if (kn_tensor_numel(j->x) == 0) return;
    if (j->nhwc) {
        c.nblk = (c.g.C + 15) / 16;
        kn_parallel_for(c.g.N * c.nblk, 1, grad_nhwc, &c);
    } else if (is_pool22(j, &c.g) && c.g.ys[3] == 1) {
        kn_parallel_for(c.g.N * c.g.C, 1, pool22_grad_planes, &c);
    } else {
        kn_parallel_for(c.g.N * c.g.C, 1, grad_nchw, &c);
    }
}
