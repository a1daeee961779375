/* reduce.c (AVX-512) — sum / max / min / sum of squared deviations of f32 or
 * bf16 x over a set of dims, one double per kept element (see
 * src/kernels/reduce_fast.h for the (A, C, B) view and the two modes).
 *   rows:    segment = one row (a, c) of B unit-stride elements, cut into
 *            chunks of KN_RED_CHUNK; 4x16 f32 lanes per chunk, lanes summed
 *            in a fixed tree to double; segments of c combined in order.
 *   columns: x is (A, C), C unit-stride; segment = KN_RED_ROWS rows x 64
 *            channels, each channel folded down the rows in one f32 lane;
 *            segments of a channel combined in double in row order.
 * Segments are computed in parallel into a scratch array, then combined by
 * one fixed loop: the bits never depend on the thread count. */
#include "../../reduce_fast.h"
#include "reduce_simd.h"

#include <math.h>

typedef struct rgeo {
    int64_t A, C, B, sA, sC, sB;
} rgeo;

/* Merges dims [d0, d1) of t (size-1 dims dropped) into one (n, stride). */
static bool merge(const kn_tensor *t, int d0, int d1, int64_t *n, int64_t *s)
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

static bool red_geo(const kn_tensor *x, const bool *mask, rgeo *g)
{
    int nd = x->ndim, kf = -1, kl = -1;
    for (int d = 0; d < nd; d++)
        if (!mask[d] && x->shape[d] != 1) {
            if (kf < 0) kf = d;
            kl = d;
        }
    if (kf < 0) kf = nd, kl = nd - 1;
    for (int d = kf; d <= kl; d++)
        if (mask[d] && x->shape[d] != 1) return false;
    if (!merge(x, 0, kf, &g->A, &g->sA) || !merge(x, kf, kl + 1, &g->C, &g->sC) ||
        !merge(x, kl + 1, nd, &g->B, &g->sB))
        return false;
    if (g->C == 1 && g->B == 1) g->B = g->A, g->sB = g->sA, g->A = 1, g->sA = 0;
    if (g->B > 1) return g->sB == 1;
    return g->C == 1 || g->sC == 1;
}

bool kn__reduce_avx512_accepts(const kn_tensor *x, const bool *mask)
{
    rgeo g;
    if (x->dtype != KN_F32 && x->dtype != KN_BF16) return false;
    if (!red_geo(x, mask, &g) || g.A * g.B * g.C == 0) return false;
    return g.B > 1 ? g.B >= 8 : true; /* short rows: the reference is as good */
}

typedef struct rjob {
    rgeo g;
    const char *x;
    int64_t es, nk, ncb, nr;
    bool bf16;
    int kind;
    const float *cf; /* SQDEV centres, f32 */
    double *parts;
} rjob;

static double comb(int kind, double a, double b)
{
    if (kind == KN_RED_SUM || kind == KN_RED_SQDEV) return a + b;
    if (isnan(a)) return a;
    if (isnan(b)) return b;
    return kind == KN_RED_MAX ? (b > a ? b : a) : (b < a ? b : a);
}

/* n (1..KN_RED_CHUNK) unit-stride elements at p folded to one double. */
static double fold_row(const rjob *j, const char *p, int64_t n, float cf)
{
    bool bf = j->bf16;
    int64_t es = j->es;
    if (j->kind == KN_RED_SUM || j->kind == KN_RED_SQDEV) {
        bool sq = j->kind == KN_RED_SQDEV;
        __m512 c = _mm512_set1_ps(cf);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        int64_t i = 0;
        for (; i + 64 <= n; i += 64) {
            __m512 v0 = load16(p + i * es, bf, 0xffff), v1 = load16(p + (i + 16) * es, bf, 0xffff);
            __m512 v2 = load16(p + (i + 32) * es, bf, 0xffff);
            __m512 v3 = load16(p + (i + 48) * es, bf, 0xffff);
            if (sq) {
                v0 = _mm512_sub_ps(v0, c), v1 = _mm512_sub_ps(v1, c);
                v2 = _mm512_sub_ps(v2, c), v3 = _mm512_sub_ps(v3, c);
                a0 = _mm512_fmadd_ps(v0, v0, a0), a1 = _mm512_fmadd_ps(v1, v1, a1);
                a2 = _mm512_fmadd_ps(v2, v2, a2), a3 = _mm512_fmadd_ps(v3, v3, a3);
            } else {
                a0 = _mm512_add_ps(a0, v0), a1 = _mm512_add_ps(a1, v1);
                a2 = _mm512_add_ps(a2, v2), a3 = _mm512_add_ps(a3, v3);
            }
        }
        for (; i < n; i += 16) {
            __mmask16 m = tail_mask(n - i);
            __m512 v = load16(p + i * es, bf, m);
            if (sq) {
                v = _mm512_maskz_sub_ps(m, v, c);
                a0 = _mm512_fmadd_ps(v, v, a0);
            } else {
                a0 = _mm512_add_ps(a0, v);
            }
        }
        return hsum_d(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    }
    bool mx = j->kind == KN_RED_MAX;
    __m512 fill = _mm512_set1_ps(mx ? -INFINITY : INFINITY), a0 = fill, a1 = fill;
    __mmask16 nan = 0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 v0 = load16(p + i * es, bf, 0xffff), v1 = load16(p + (i + 16) * es, bf, 0xffff);
        nan |= _mm512_cmp_ps_mask(v0, v1, _CMP_UNORD_Q);
        a0 = mx ? _mm512_max_ps(a0, v0) : _mm512_min_ps(a0, v0);
        a1 = mx ? _mm512_max_ps(a1, v1) : _mm512_min_ps(a1, v1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 v = _mm512_mask_mov_ps(fill, m, load16(p + i * es, bf, m));
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        a0 = mx ? _mm512_max_ps(a0, v) : _mm512_min_ps(a0, v);
    }
    if (nan) return NAN;
    a0 = mx ? _mm512_max_ps(a0, a1) : _mm512_min_ps(a0, a1);
    return mx ? _mm512_reduce_max_ps(a0) : _mm512_reduce_min_ps(a0);
}

static void rows_range(int64_t begin, int64_t end, void *arg)
{
    const rjob *j = arg;
    for (int64_t s = begin; s < end; s++) {
        int64_t k = s % j->nk, ac = s / j->nk, a = ac % j->g.A, c = ac / j->g.A;
        int64_t b0 = k * KN_RED_CHUNK, n = j->g.B - b0 < KN_RED_CHUNK ? j->g.B - b0 : KN_RED_CHUNK;
        const char *p = j->x + (c * j->g.sC + a * j->g.sA + b0) * j->es;
        j->parts[s] = fold_row(j, p, n, j->cf ? j->cf[c] : 0.0f);
    }
}

/* Columns: rows [r*ROWS, ...) x channels [cb*64, ...) into parts[r*C + c]. */
static void cols_range(int64_t begin, int64_t end, void *arg)
{
    const rjob *j = arg;
    bool bf = j->bf16, mx = j->kind == KN_RED_MAX, sq = j->kind == KN_RED_SQDEV;
    bool ext = j->kind == KN_RED_MAX || j->kind == KN_RED_MIN;
    int64_t C = j->g.C, es = j->es;
    for (int64_t s = begin; s < end; s++) {
        int64_t cb = s % j->ncb, r = s / j->ncb, c0 = cb * 64, a0 = r * KN_RED_ROWS;
        int64_t na = j->g.A - a0 < KN_RED_ROWS ? j->g.A - a0 : KN_RED_ROWS;
        int nv = (int)((C - c0 + 15) / 16 < 4 ? (C - c0 + 15) / 16 : 4);
        __m512 acc[4], cen[4];
        __mmask16 m[4], nan[4] = {0, 0, 0, 0};
        for (int v = 0; v < nv; v++) {
            m[v] = tail_mask(C - c0 - 16 * v);
            acc[v] = ext ? _mm512_set1_ps(mx ? -INFINITY : INFINITY) : _mm512_setzero_ps();
            cen[v] = sq ? _mm512_maskz_loadu_ps(m[v], j->cf + c0 + 16 * v) : _mm512_setzero_ps();
        }
        const char *p = j->x + (a0 * j->g.sA + c0) * es;
        for (int64_t a = 0; a < na; a++, p += j->g.sA * es)
            for (int v = 0; v < nv; v++) {
                __m512 x = load16(p + 16 * v * es, bf, m[v]);
                if (ext) {
                    nan[v] |= _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
                    acc[v] = mx ? _mm512_max_ps(acc[v], x) : _mm512_min_ps(acc[v], x);
                } else if (sq) {
                    x = _mm512_sub_ps(x, cen[v]);
                    acc[v] = _mm512_fmadd_ps(x, x, acc[v]);
                } else {
                    acc[v] = _mm512_add_ps(acc[v], x);
                }
            }
        for (int v = 0; v < nv; v++) {
            if (ext) acc[v] = _mm512_mask_mov_ps(acc[v], nan[v], _mm512_set1_ps(NAN));
            double *o = j->parts + r * C + c0 + 16 * v;
            __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(acc[v]));
            __m512d hi = _mm512_cvtps_pd(
                _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[v]), 1)));
            _mm512_mask_storeu_pd(o, (__mmask8)m[v], lo);
            _mm512_mask_storeu_pd(o + 8, (__mmask8)(m[v] >> 8), hi);
        }
    }
}

kn_status kn__reduce_avx512_run(const kn_tensor *x, const bool *mask, int kind,
                                const double *centre, double *out)
{
    rjob j = {.x = kn__tensor_ptr(x),
              .es = (int64_t)kn_dtype_size(x->dtype),
              .bf16 = x->dtype == KN_BF16,
              .kind = kind};
    red_geo(x, mask, &j.g);
    int64_t C = j.g.C, n_parts;
    float *cf = NULL;
    if (kind == KN_RED_SQDEV) {
        cf = kn_alloc(sizeof(float) * (size_t)C);
        if (!cf) return kn_last_status();
        for (int64_t c = 0; c < C; c++)
            cf[c] = (float)centre[c];
        j.cf = cf;
    }
    bool rows = j.g.B > 1;
    if (rows) {
        j.nk = (j.g.B + KN_RED_CHUNK - 1) / KN_RED_CHUNK;
        n_parts = C * j.g.A * j.nk;
    } else {
        j.ncb = (C + 63) / 64, j.nr = (j.g.A + KN_RED_ROWS - 1) / KN_RED_ROWS;
        n_parts = j.nr * C;
    }
    j.parts = kn_alloc(sizeof(double) * (size_t)n_parts);
    if (!j.parts) {
        kn_free(cf);
        return kn_last_status();
    }
    if (rows) {
        int64_t len = j.g.B < KN_RED_CHUNK ? j.g.B : KN_RED_CHUNK, grain = 16384 / len;
        kn_parallel_for(n_parts, grain < 1 ? 1 : grain, rows_range, &j);
        int64_t per = j.g.A * j.nk;
        for (int64_t c = 0; c < C; c++) {
            const double *p = j.parts + c * per;
            double acc = p[0];
            for (int64_t s = 1; s < per; s++)
                acc = comb(kind, acc, p[s]);
            out[c] = acc;
        }
    } else {
        int64_t work = (j.g.A < KN_RED_ROWS ? j.g.A : KN_RED_ROWS) * 64;
        int64_t grain = 16384 / work;
        kn_parallel_for(j.nr * j.ncb, grain < 1 ? 1 : grain, cols_range, &j);
        for (int64_t c = 0; c < C; c++) {
            double acc = j.parts[c];
            for (int64_t r = 1; r < j.nr; r++)
                acc = comb(kind, acc, j.parts[r * C + c]);
            out[c] = acc;
        }
    }
    kn_free(j.parts);
    kn_free(cf);
    return KN_OK;
}
