/* norm.c (AVX-512) — the `normalize` kernel: statistics over the reduced dims
 * and y = (x - mean) * rstd [* gamma + beta], f32 or bf16 in, f32 math.
 * x is seen as (A, C, B): A and B reduced (before and after the kept dims
 * C), B unit-stride. Two shapes of work:
 *   rows    (B > 1: layer norm, group norm, NCHW batch norm): per kept c, A
 *           rows of B contiguous elements; two passes (mean, then squared
 *           deviations) with 4x16 f32 lanes per row, rows summed in double;
 *           parallel over c.
 *   columns (B = 1: NHWC batch norm): x is (A, C) with C unit-stride; fixed
 *           chunks of rows (by A alone) fold x - K and (x - K)^2 into f32
 *           lanes per channel (K = the first row, a shift against
 *           cancellation), chunks combine in double in chunk order.
 * Every statistic is a fixed sequence of operations, whatever the threads. */
#include "../../norm_fast.h"
#include "reduce_simd.h"

#include <math.h>

#define ALWAYS_INLINE static inline __attribute__((always_inline))

typedef struct geo {
    int64_t A, C, B, sA, sC, sB; /* elements of x */
} geo;

/* Merges dims [d0, d1) of t (size-1 dims dropped) into one (n, stride). */
static bool merge_dims(const kn_tensor *t, int d0, int d1, int64_t *n, int64_t *s)
{
    *n = 1, *s = 0;
    for (int d = d1 - 1; d >= d0; d--) {
        if (t->shape[d] == 1) continue;
        if (*n == 1)
            *s = t->strides[d];
        else if (t->strides[d] != *s * *n)
            return false;
        *n *= t->shape[d];
    }
    return true;
}

static bool norm_geo(const kn_tensor *x, const bool *mask, geo *g)
{
    int nd = x->ndim, kf = -1, kl = -1;
    for (int d = 0; d < nd; d++)
        if (!mask[d] && x->shape[d] != 1) {
            if (kf < 0) kf = d;
            kl = d;
        }
    if (kf < 0) kf = nd, kl = nd - 1; /* nothing kept: all in A */
    for (int d = kf; d <= kl; d++)
        if (mask[d] && x->shape[d] != 1) return false;
    if (!merge_dims(x, 0, kf, &g->A, &g->sA) || !merge_dims(x, kf, kl + 1, &g->C, &g->sC) ||
        !merge_dims(x, kl + 1, nd, &g->B, &g->sB))
        return false;
    if (g->C == 1 && g->B == 1) g->B = g->A, g->sB = g->sA, g->A = 1, g->sA = 0;
    if (g->B > 1) return g->sB == 1;
    return g->C == 1 || g->sC == 1;
}

bool kn__norm_avx512_accepts(const kn_norm_job *j)
{
    geo g;
    kn_dtype dt = j->x->dtype;
    if ((dt != KN_F32 && dt != KN_BF16) || j->y->dtype != dt || !kn_tensor_is_contiguous(j->y))
        return false;
    if (!norm_geo(j->x, j->mask, &g) || g.A * g.B == 0) return false;
    if (j->affine == KN_NORM_AFFINE_INNER && (g.B == 1 || g.A != 1)) return false;
    return true;
}

typedef struct nctx {
    const kn_norm_job *j;
    geo g;
    const char *x;
    char *y;
    int64_t es, chunk, n_chunks;
    float *part;        /* columns: per chunk 2*C partial sums */
    float *colm, *colk; /* columns: per channel mean and scale */
    const float *colb;  /* columns: per channel shift (beta) or NULL */
} nctx;

/* ---------------------------------------------------------------- rows */
ALWAYS_INLINE double row_fold(const char *p, int64_t n, bool bf, float shift, bool sq)
{
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, vs = _mm512_set1_ps(shift);
    int64_t es = bf ? 2 : 4, i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512 v0 = _mm512_sub_ps(load16(p + i * es, bf, 0xffff), vs);
        __m512 v1 = _mm512_sub_ps(load16(p + (i + 16) * es, bf, 0xffff), vs);
        __m512 v2 = _mm512_sub_ps(load16(p + (i + 32) * es, bf, 0xffff), vs);
        __m512 v3 = _mm512_sub_ps(load16(p + (i + 48) * es, bf, 0xffff), vs);
        if (sq) {
            a0 = _mm512_fmadd_ps(v0, v0, a0), a1 = _mm512_fmadd_ps(v1, v1, a1);
            a2 = _mm512_fmadd_ps(v2, v2, a2), a3 = _mm512_fmadd_ps(v3, v3, a3);
        } else {
            a0 = _mm512_add_ps(a0, v0), a1 = _mm512_add_ps(a1, v1);
            a2 = _mm512_add_ps(a2, v2), a3 = _mm512_add_ps(a3, v3);
        }
    }
    for (; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 v = _mm512_maskz_sub_ps(m, load16(p + i * es, bf, m), vs);
        a0 = sq ? _mm512_fmadd_ps(v, v, a0) : _mm512_add_ps(a0, v);
    }
    return hsum_d(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

/* y row = ((x - m) * r) * g + b; g, b per element (gv, bv) or scalars. */
ALWAYS_INLINE void row_apply(const char *p, char *q, int64_t n, bool bf, float m, float r,
                             const float *gv, const float *bv, float gs, float bs)
{
    __m512 vm = _mm512_set1_ps(m), vr = _mm512_set1_ps(r), vg = _mm512_set1_ps(gs),
           vb = _mm512_set1_ps(bs);
    int64_t es = bf ? 2 : 4;
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask(n - i);
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(load16(p + i * es, bf, k), vm), vr);
        if (gv) vg = _mm512_maskz_loadu_ps(k, gv + i);
        if (bv) vb = _mm512_maskz_loadu_ps(k, bv + i);
        store16(q + i * es, bf, k, _mm512_fmadd_ps(v, vg, vb));
    }
}

ALWAYS_INLINE void rows_one(const nctx *c, int64_t ch, bool bf)
{
    const kn_norm_job *j = c->j;
    const geo *g = &c->g;
    int64_t n = g->A * g->B;
    float m = 0, r;
    if (j->in_mean) {
        m = j->in_mean[ch], r = j->in_rstd[ch];
    } else {
        double sum = 0, ssq = 0;
        for (int64_t a = 0; j->center && a < g->A; a++)
            sum += row_fold(c->x + (a * g->sA + ch * g->sC) * c->es, g->B, bf, 0, false);
        m = (float)(j->center && n ? sum / (double)n : 0.0);
        for (int64_t a = 0; a < g->A; a++)
            ssq += row_fold(c->x + (a * g->sA + ch * g->sC) * c->es, g->B, bf, m, true);
        r = (float)(1.0 / sqrt(ssq / (double)n + j->eps));
        if (j->mean) j->mean[ch] = m, j->rstd[ch] = r;
    }
    bool inner = j->affine == KN_NORM_AFFINE_INNER;
    float gs = j->gamma && !inner ? j->gamma[ch] : 1.0f, bs = j->beta && !inner ? j->beta[ch] : 0;
    const float *gv = inner ? j->gamma : NULL, *bv = inner ? j->beta : NULL;
    for (int64_t a = 0; a < g->A; a++)
        row_apply(c->x + (a * g->sA + ch * g->sC) * c->es, c->y + ((a * g->C + ch) * g->B) * c->es,
                  g->B, bf, m, r, gv, bv, gs, bs);
}

static void rows_range(int64_t begin, int64_t end, void *arg)
{
    const nctx *c = arg;
    bool bf = c->j->x->dtype == KN_BF16;
    for (int64_t ch = begin; ch < end; ch++) {
        if (bf)
            rows_one(c, ch, true);
        else
            rows_one(c, ch, false);
    }
}

/* ---------------------------------------------------------------- columns */
ALWAYS_INLINE void col_fold(const nctx *c, int64_t ck, bool bf)
{
    const geo *g = &c->g;
    int64_t a0 = ck * c->chunk, a1 = a0 + c->chunk < g->A ? a0 + c->chunk : g->A;
    float *s1 = c->part + ck * 2 * g->C, *s2 = s1 + g->C;
    bool center = c->j->center;
    for (int64_t i = 0; i < 2 * g->C; i++)
        s1[i] = 0;
    for (int64_t a = a0; a < a1; a++) {
        const char *p = c->x + a * g->sA * c->es;
        for (int64_t i = 0; i < g->C; i += 16) {
            __mmask16 k = tail_mask(g->C - i);
            __m512 v = load16(p + i * c->es, bf, k);
            if (center) v = _mm512_sub_ps(v, load16(c->x + i * c->es, bf, k)); /* shift: row 0 */
            _mm512_mask_storeu_ps(s1 + i, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, s1 + i), v));
            _mm512_mask_storeu_ps(s2 + i, k,
                                  _mm512_fmadd_ps(v, v, _mm512_maskz_loadu_ps(k, s2 + i)));
        }
    }
}

static void cols_fold_range(int64_t begin, int64_t end, void *arg)
{
    const nctx *c = arg;
    for (int64_t ck = begin; ck < end; ck++) {
        if (c->j->x->dtype == KN_BF16)
            col_fold(c, ck, true);
        else
            col_fold(c, ck, false);
    }
}

ALWAYS_INLINE void col_apply(const nctx *c, int64_t a, bool bf)
{
    const geo *g = &c->g;
    const char *p = c->x + a * g->sA * c->es;
    char *q = c->y + a * g->C * c->es;
    for (int64_t i = 0; i < g->C; i += 16) {
        __mmask16 k = tail_mask(g->C - i);
        __m512 v =
            _mm512_sub_ps(load16(p + i * c->es, bf, k), _mm512_maskz_loadu_ps(k, c->colm + i));
        __m512 b = c->colb ? _mm512_maskz_loadu_ps(k, c->colb + i) : _mm512_setzero_ps();
        store16(q + i * c->es, bf, k, _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(k, c->colk + i), b));
    }
}

static void cols_apply_range(int64_t begin, int64_t end, void *arg)
{
    const nctx *c = arg;
    for (int64_t a = begin; a < end; a++) {
        if (c->j->x->dtype == KN_BF16)
            col_apply(c, a, true);
        else
            col_apply(c, a, false);
    }
}

static float bf_or_f(const char *p, bool bf)
{
    if (!bf) return *(const float *)p;
    uint16_t h;
    memcpy(&h, p, 2);
    return kn_bf16_to_f32(h);
}

static kn_status run_columns(nctx *c)
{
    const kn_norm_job *j = c->j;
    const geo *g = &c->g;
    int64_t C = g->C;
    /* colm, colk: C each; part: n_chunks * 2 * C */
    c->chunk = (g->A + 127) / 128;
    if (c->chunk < 32) c->chunk = 32;
    c->n_chunks = (g->A + c->chunk - 1) / c->chunk;
    float *mem = kn_alloc(sizeof(float) * (size_t)(C * (2 + (j->in_mean ? 0 : 2 * c->n_chunks))));
    if (!mem) return kn_last_status();
    c->colm = mem, c->colk = mem + C, c->part = mem + 2 * C;
    if (j->in_mean) {
        for (int64_t i = 0; i < C; i++)
            c->colm[i] = j->in_mean[i], c->colk[i] = j->in_rstd[i];
    } else {
        kn_parallel_for(c->n_chunks, 1, cols_fold_range, c);
        bool bf = j->x->dtype == KN_BF16;
        double n = (double)g->A;
        for (int64_t i = 0; i < C; i++) {
            double s1 = 0, s2 = 0;
            for (int64_t ck = 0; ck < c->n_chunks; ck++)
                s1 += c->part[ck * 2 * C + i], s2 += c->part[ck * 2 * C + C + i];
            double k = j->center ? bf_or_f(c->x + i * c->es, bf) : 0.0;
            double d = j->center ? s1 / n : 0.0, var = s2 / n - d * d;
            if (var < 0) var = 0;
            c->colm[i] = (float)(k + d);
            c->colk[i] = (float)(1.0 / sqrt(var + j->eps));
            if (j->mean) j->mean[i] = c->colm[i], j->rstd[i] = c->colk[i];
        }
    }
    for (int64_t i = 0; j->gamma && i < C; i++)
        c->colk[i] *= j->gamma[i];
    c->colb = j->beta;
    int64_t grain = 16384 / (C ? C : 1);
    kn_parallel_for(g->A, grain < 1 ? 1 : grain, cols_apply_range, c);
    kn_free(mem);
    return KN_OK;
}

kn_status kn__norm_avx512_run(const kn_norm_job *j)
{
    nctx c = {.j = j, .x = kn__tensor_ptr(j->x), .y = kn__tensor_ptr(j->y)};
    c.es = (int64_t)kn_dtype_size(j->x->dtype);
    bool ok = norm_geo(j->x, j->mask, &c.g);
    assert(ok && "accepted by kn__norm_avx512_accepts");
    (void)ok;
    if (c.g.A * c.g.B * c.g.C == 0) return KN_OK;
    if (c.g.B == 1 && c.g.C > 1) return run_columns(&c);
    int64_t grain = 32768 / (c.g.A * c.g.B);
    kn_parallel_for(c.g.C, grain < 1 ? 1 : grain, rows_range, &c);
    return KN_OK;
}
