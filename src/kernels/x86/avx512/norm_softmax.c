/* norm_softmax.c (AVX-512) — softmax and log_softmax along one axis, f32 or
 * bf16 in and out, f32 math. x is seen as (O, L, I): L the axis, O and I the
 * merged dims before and after it; y is contiguous.
 *   I = 1: each row of L unit-stride elements: max, then sum of exp(x - max)
 *          in 2x16 f32 lanes (lanes summed in double, fixed order), then
 *          y = exp(x - max) / sum or x - max - log(sum).
 *   I > 1: 16 neighbouring inner columns go together down the axis, one
 *          column per lane (each a sequential f32 sum).
 * A row (or block of columns) holding NaN or +-inf takes a scalar path in
 * double that mirrors the reference. Parallel over rows / column blocks:
 * every output is one fixed sequence of operations, whatever the threads. */
#include "../../norm_fast.h"
#include "reduce_simd.h"

#include <math.h>

#define ALWAYS_INLINE static inline __attribute__((always_inline))

typedef struct sgeo {
    int64_t O, L, I, sO, sL, sI;
} sgeo;

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

static bool softmax_geo(const kn_tensor *x, int axis, sgeo *g)
{
    if (x->ndim == 0) {
        *g = (sgeo){1, 1, 1, 0, 1, 0};
        return true;
    }
    if (axis < 0) axis += x->ndim;
    g->L = x->shape[axis], g->sL = x->shape[axis] == 1 ? 1 : x->strides[axis];
    if (!merge_dims(x, 0, axis, &g->O, &g->sO) || !merge_dims(x, axis + 1, x->ndim, &g->I, &g->sI))
        return false;
    return g->I > 1 ? g->sI == 1 : g->sL == 1;
}

bool kn__softmax_avx512_accepts(const kn_tensor *x, int axis)
{
    sgeo g;
    return (x->dtype == KN_F32 || x->dtype == KN_BF16) && softmax_geo(x, axis, &g);
}

typedef struct sctx {
    sgeo g;
    const char *x;
    char *y;
    bool bf, log;
    int64_t es, nblk; /* column blocks of 16 per outer index (I > 1) */
} sctx;

static double ld(const sctx *c, const char *p)
{
    if (!c->bf) return *(const float *)p;
    uint16_t h;
    memcpy(&h, p, 2);
    return kn_bf16_to_f32(h);
}

static void st(const sctx *c, char *p, double v)
{
    if (!c->bf)
        *(float *)p = (float)v;
    else {
        uint16_t h = kn_f32_to_bf16((float)v);
        memcpy(p, &h, 2);
    }
}

/* The reference's arithmetic, for rows with NaN or infinities: x at p with
 * stride sx (elements), y at q with stride sy. */
static void scalar_row(const sctx *c, const char *p, int64_t sx, char *q, int64_t sy)
{
    double mx = -INFINITY, sum = 0;
    for (int64_t i = 0; i < c->g.L; i++) {
        double v = ld(c, p + i * sx * c->es);
        if (v > mx || isnan(v)) mx = v;
    }
    if (isinf(mx) && mx < 0) mx = 0;
    for (int64_t i = 0; i < c->g.L; i++)
        sum += exp(ld(c, p + i * sx * c->es) - mx);
    double lse = log(sum);
    for (int64_t i = 0; i < c->g.L; i++) {
        double v = ld(c, p + i * sx * c->es) - mx;
        st(c, q + i * sy * c->es, c->log ? v - lse : exp(v) / sum);
    }
}

ALWAYS_INLINE void row_one(const sctx *c, int64_t o, bool bf)
{
    int64_t L = c->g.L, es = bf ? 2 : 4;
    const char *p = c->x + o * c->g.sO * es;
    char *q = c->y + o * L * es;
    __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0;
    __mmask16 bad = 0;
    int64_t i = 0;
    for (; i + 32 <= L; i += 32) {
        __m512 v0 = load16(p + i * es, bf, 0xffff), v1 = load16(p + (i + 16) * es, bf, 0xffff);
        bad |= _mm512_cmp_ps_mask(v0, v0, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(v1, v1, _CMP_UNORD_Q);
        m0 = _mm512_max_ps(m0, v0), m1 = _mm512_max_ps(m1, v1);
    }
    for (; i < L; i += 16) {
        __mmask16 k = tail_mask(L - i);
        __m512 v = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), k, load16(p + i * es, bf, k));
        bad |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        m0 = _mm512_max_ps(m0, v);
    }
    float mx = _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
    if (bad || isinf(mx)) {
        scalar_row(c, p, 1, q, 1);
        return;
    }
    __m512 vm = _mm512_set1_ps(mx), s0 = _mm512_setzero_ps(), s1 = s0;
    bool keep = !bf && !c->log; /* f32 softmax: exp goes to y, then scaled */
    for (i = 0; i + 32 <= L; i += 32) {
        __m512 e0 = exp16(_mm512_sub_ps(load16(p + i * es, bf, 0xffff), vm));
        __m512 e1 = exp16(_mm512_sub_ps(load16(p + (i + 16) * es, bf, 0xffff), vm));
        if (keep) _mm512_storeu_ps((float *)q + i, e0), _mm512_storeu_ps((float *)q + i + 16, e1);
        s0 = _mm512_add_ps(s0, e0), s1 = _mm512_add_ps(s1, e1);
    }
    for (; i < L; i += 16) {
        __mmask16 k = tail_mask(L - i);
        __m512 e = _mm512_maskz_mov_ps(k, exp16(_mm512_sub_ps(load16(p + i * es, bf, k), vm)));
        if (keep) _mm512_mask_storeu_ps((float *)q + i, k, e);
        s0 = _mm512_add_ps(s0, e);
    }
    double sum = hsum_d(_mm512_add_ps(s0, s1));
    __m512 scale = _mm512_set1_ps((float)(1.0 / sum)), sh = _mm512_set1_ps((float)(mx + log(sum)));
    for (i = 0; i < L; i += 16) {
        __mmask16 k = tail_mask(L - i);
        __m512 v;
        if (c->log)
            v = _mm512_sub_ps(load16(p + i * es, bf, k), sh);
        else if (keep)
            v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, (float *)q + i), scale);
        else
            v = _mm512_mul_ps(exp16(_mm512_sub_ps(load16(p + i * es, bf, k), vm)), scale);
        store16(q + i * es, bf, k, v);
    }
}

static void rows_range(int64_t begin, int64_t end, void *arg)
{
    const sctx *c = arg;
    for (int64_t o = begin; o < end; o++) {
        if (c->bf)
            row_one(c, o, true);
        else
            row_one(c, o, false);
    }
}

/* I > 1: block b = (o, 16 inner columns from i0). */
ALWAYS_INLINE void cols_one(const sctx *c, int64_t b, bool bf)
{
    const sgeo *g = &c->g;
    int64_t o = b / c->nblk, i0 = (b % c->nblk) * 16, es = bf ? 2 : 4;
    __mmask16 k = tail_mask(g->I - i0);
    const char *p = c->x + (o * g->sO + i0) * es;
    char *q = c->y + (o * g->L * g->I + i0) * es;
    __m512 vm = _mm512_set1_ps(-INFINITY), s = _mm512_setzero_ps();
    __mmask16 bad = 0;
    for (int64_t l = 0; l < g->L; l++) {
        __m512 v = load16(p + l * g->sL * es, bf, k);
        bad |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        vm = _mm512_max_ps(vm, v);
    }
    bad |= _mm512_mask_cmp_ps_mask(k, _mm512_abs_ps(vm), _mm512_set1_ps(INFINITY), _CMP_EQ_OQ);
    if (bad & k) {
        for (int64_t j = 0; j < 16 && i0 + j < g->I; j++)
            scalar_row(c, p + j * es, g->sL, q + j * es, g->I);
        return;
    }
    for (int64_t l = 0; l < g->L; l++)
        s = _mm512_add_ps(s, exp16(_mm512_sub_ps(load16(p + l * g->sL * es, bf, k), vm)));
    float sv[16], lv[16];
    _mm512_storeu_ps(sv, s);
    for (int j = 0; j < 16; j++)
        lv[j] = (float)log((double)sv[j]);
    __m512 scale = _mm512_div_ps(_mm512_set1_ps(1.0f), s),
           sh = _mm512_add_ps(vm, _mm512_loadu_ps(lv));
    for (int64_t l = 0; l < g->L; l++) {
        __m512 v = load16(p + l * g->sL * es, bf, k);
        v = c->log ? _mm512_sub_ps(v, sh) : _mm512_mul_ps(exp16(_mm512_sub_ps(v, vm)), scale);
        store16(q + l * g->I * es, bf, k, v);
    }
}

static void cols_range(int64_t begin, int64_t end, void *arg)
{
    const sctx *c = arg;
    for (int64_t b = begin; b < end; b++) {
        if (c->bf)
            cols_one(c, b, true);
        else
            cols_one(c, b, false);
    }
}

void kn__softmax_avx512_run(const kn_tensor *x, kn_tensor *y, int axis, bool log)
{
    sctx c = {
        .x = kn__tensor_ptr(x), .y = kn__tensor_ptr(y), .bf = x->dtype == KN_BF16, .log = log};
    bool ok = softmax_geo(x, axis, &c.g);
    assert(ok && "accepted by kn__softmax_avx512_accepts");
    (void)ok;
    c.es = c.bf ? 2 : 4;
    if (c.g.O * c.g.L * c.g.I == 0) return;
    if (c.g.I == 1) {
        int64_t grain = 8192 / c.g.L;
        kn_parallel_for(c.g.O, grain < 1 ? 1 : grain, rows_range, &c);
        return;
    }
    c.nblk = (c.g.I + 15) / 16;
    int64_t grain = 512 / c.g.L;
    kn_parallel_for(c.g.O * c.nblk, grain < 1 ? 1 : grain, cols_range, &c);
}
