/* norm_grad.c (AVX-512) — the backward of `normalize` through y:
 * dx = rstd * (gy - mean(gy) - y * mean(gy * y)), f32 or bf16 gy, y and dx
 * (contiguous, one shape), f32 math. y is seen as (A, C, B) as in norm.c:
 * A and B reduced around the kept dims C, B unit-stride.
 *   rows    (B > 1: layer, group, NCHW batch norm): per c, A rows of B;
 *           sums of gy and gy*y in 2x16 f32 lanes per row, rows summed in
 *           double; then one elementwise pass. Parallel over c.
 *   columns (B = 1: NHWC batch norm): y is (A, C), C unit-stride; fixed
 *           chunks of KN_NG_ROWS rows x 64 channels fold gy and gy*y in f32
 *           lanes, chunks combine in double in chunk order; then one
 *           elementwise pass parallel over rows.
 * Every sum is a fixed sequence of operations, whatever the threads. */
#include "../../norm_fast.h"
#include "reduce_simd.h"

#define KN_NG_ROWS 256

typedef struct ggeo {
    int64_t A, C, B, sA, sC;
} ggeo;

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

/* y contiguous: only the placement of the kept dims matters. */
static bool grad_geo(const kn_tensor *y, const bool *mask, ggeo *g)
{
    int nd = y->ndim, kf = -1, kl = -1;
    int64_t sB;
    for (int d = 0; d < nd; d++)
        if (!mask[d] && y->shape[d] != 1) {
            if (kf < 0) kf = d;
            kl = d;
        }
    if (kf < 0) kf = nd, kl = nd - 1;
    for (int d = kf; d <= kl; d++)
        if (mask[d] && y->shape[d] != 1) return false;
    if (!merge(y, 0, kf, &g->A, &g->sA) || !merge(y, kf, kl + 1, &g->C, &g->sC) ||
        !merge(y, kl + 1, nd, &g->B, &sB))
        return false;
    if (g->C == 1 && g->B == 1) g->B = g->A, g->A = 1, g->sA = 0;
    return true;
}

bool kn__norm_grad_avx512_accepts(const kn_norm_grad_job *j)
{
    kn_dtype dt = j->y->dtype;
    ggeo g;
    if ((dt != KN_F32 && dt != KN_BF16) || j->gy->dtype != dt || j->dx->dtype != dt) return false;
    if (!kn_tensor_is_contiguous(j->y) || !kn_tensor_is_contiguous(j->gy) ||
        !kn_tensor_is_contiguous(j->dx) || j->gy->ndim != j->y->ndim)
        return false;
    for (int d = 0; d < j->y->ndim; d++)
        if (j->gy->shape[d] != j->y->shape[d]) return false;
    return grad_geo(j->y, j->mask, &g) && g.A * g.B * g.C > 0;
}

typedef struct gctx {
    const kn_norm_grad_job *j;
    ggeo g;
    const char *gy, *y;
    char *dx;
    int64_t es, nr, ncb;
    bool bf;
    double *part;        /* columns: per chunk 2*C sums */
    float *cm, *cq;      /* columns: per channel mean(gy), mean(gy*y) */
} gctx;

static void rows_range(int64_t begin, int64_t end, void *arg)
{
    const gctx *c = arg;
    const ggeo *g = &c->g;
    int64_t es = c->es, B = g->B;
    bool bf = c->bf, center = c->j->center;
    for (int64_t ci = begin; ci < end; ci++) {
        double sg = 0, sq = 0;
        for (int64_t a = 0; a < g->A; a++) {
            int64_t off = (a * g->sA + ci * g->sC) * es;
            const char *pg = c->gy + off, *py = c->y + off;
            __m512 g0 = _mm512_setzero_ps(), g1 = g0, q0 = g0, q1 = g0;
            int64_t i = 0;
            for (; i + 32 <= B; i += 32) {
                __m512 a0 = load16(pg + i * es, bf, 0xffff), a1 = load16(pg + (i + 16) * es, bf, 0xffff);
                __m512 b0 = load16(py + i * es, bf, 0xffff), b1 = load16(py + (i + 16) * es, bf, 0xffff);
                g0 = _mm512_add_ps(g0, a0), g1 = _mm512_add_ps(g1, a1);
                q0 = _mm512_fmadd_ps(a0, b0, q0), q1 = _mm512_fmadd_ps(a1, b1, q1);
            }
            for (; i < B; i += 16) {
                __mmask16 m = tail_mask(B - i);
                __m512 a0 = load16(pg + i * es, bf, m), b0 = load16(py + i * es, bf, m);
                g0 = _mm512_add_ps(g0, a0), q0 = _mm512_fmadd_ps(a0, b0, q0);
            }
            sg += hsum_d(_mm512_add_ps(g0, g1)), sq += hsum_d(_mm512_add_ps(q0, q1));
        }
        double inv = 1.0 / (double)(g->A * B);
        __m512 r = _mm512_set1_ps(c->j->rstd[ci]);
        __m512 mg = _mm512_set1_ps(center ? (float)(sg * inv) : 0.0f);
        __m512 mq = _mm512_set1_ps((float)(sq * inv));
        for (int64_t a = 0; a < g->A; a++) {
            int64_t off = (a * g->sA + ci * g->sC) * es;
            const char *pg = c->gy + off, *py = c->y + off;
            char *pd = c->dx + off;
            for (int64_t i = 0; i < B; i += 16) {
                __mmask16 m = tail_mask(B - i);
                __m512 gv = load16(pg + i * es, bf, m), yv = load16(py + i * es, bf, m);
                __m512 t = _mm512_fnmadd_ps(yv, mq, _mm512_sub_ps(gv, mg));
                store16(pd + i * es, bf, m, _mm512_mul_ps(t, r));
            }
        }
    }
}

/* Columns, fold: segment s = (row chunk r, channel block cb) into part[r][2C]. */
static void cols_fold_range(int64_t begin, int64_t end, void *arg)
{
    const gctx *c = arg;
    int64_t C = c->g.C, es = c->es;
    bool bf = c->bf;
    for (int64_t s = begin; s < end; s++) {
        int64_t cb = s % c->ncb, r = s / c->ncb, c0 = cb * 64, a0 = r * KN_NG_ROWS;
        int64_t na = c->g.A - a0 < KN_NG_ROWS ? c->g.A - a0 : KN_NG_ROWS;
        int nv = (int)((C - c0 + 15) / 16 < 4 ? (C - c0 + 15) / 16 : 4);
        __m512 ag[4], aq[4];
        __mmask16 m[4];
        for (int v = 0; v < nv; v++)
            m[v] = tail_mask(C - c0 - 16 * v), ag[v] = aq[v] = _mm512_setzero_ps();
        int64_t off = (a0 * c->g.sA + c0) * es;
        for (int64_t a = 0; a < na; a++, off += c->g.sA * es)
            for (int v = 0; v < nv; v++) {
                __m512 gv = load16(c->gy + off + 16 * v * es, bf, m[v]);
                __m512 yv = load16(c->y + off + 16 * v * es, bf, m[v]);
                ag[v] = _mm512_add_ps(ag[v], gv), aq[v] = _mm512_fmadd_ps(gv, yv, aq[v]);
            }
        for (int v = 0; v < nv; v++)
            for (int h = 0; h < 2; h++) {
                __m512 acc = h ? aq[v] : ag[v];
                double *o = c->part + r * 2 * C + h * C + c0 + 16 * v;
                __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(acc));
                __m512d hi = _mm512_cvtps_pd(
                    _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1)));
                _mm512_mask_storeu_pd(o, (__mmask8)m[v], lo);
                _mm512_mask_storeu_pd(o + 8, (__mmask8)(m[v] >> 8), hi);
            }
    }
}

static void cols_apply_range(int64_t begin, int64_t end, void *arg)
{
    const gctx *c = arg;
    int64_t C = c->g.C, es = c->es;
    bool bf = c->bf;
    for (int64_t a = begin; a < end; a++) {
        int64_t off = a * c->g.sA * es;
        for (int64_t c0 = 0; c0 < C; c0 += 16) {
            __mmask16 m = tail_mask(C - c0);
            __m512 gv = load16(c->gy + off + c0 * es, bf, m), yv = load16(c->y + off + c0 * es, bf, m);
            __m512 mg = _mm512_maskz_loadu_ps(m, c->cm + c0), mq = _mm512_maskz_loadu_ps(m, c->cq + c0);
            __m512 r = _mm512_maskz_loadu_ps(m, c->j->rstd + c0);
            __m512 t = _mm512_fnmadd_ps(yv, mq, _mm512_sub_ps(gv, mg));
            store16(c->dx + off + c0 * es, bf, m, _mm512_mul_ps(t, r));
        }
    }
}

kn_status kn__norm_grad_avx512_run(const kn_norm_grad_job *j)
{
    gctx c = {.j = j,
              .gy = kn__tensor_ptr(j->gy),
              .y = kn__tensor_ptr(j->y),
              .dx = kn__tensor_ptr(j->dx),
              .es = (int64_t)kn_dtype_size(j->y->dtype),
              .bf = j->y->dtype == KN_BF16};
    grad_geo(j->y, j->mask, &c.g);
    const ggeo *g = &c.g;
    if (g->B > 1) {
        int64_t grain = 16384 / (g->A * g->B);
        kn_parallel_for(g->C, grain < 1 ? 1 : grain, rows_range, &c);
        return KN_OK;
    }
    int64_t C = g->C;
    c.nr = (g->A + KN_NG_ROWS - 1) / KN_NG_ROWS, c.ncb = (C + 63) / 64;
    c.part = kn_alloc(sizeof(double) * 2 * (size_t)(C * c.nr));
    c.cm = kn_alloc(sizeof(float) * 2 * (size_t)C);
    if (!c.part || !c.cm) {
        kn_free(c.part), kn_free(c.cm);
        return kn_last_status();
    }
    c.cq = c.cm + C;
    kn_parallel_for(c.nr * c.ncb, 1, cols_fold_range, &c);
    double inv = 1.0 / (double)g->A;
    for (int64_t ch = 0; ch < C; ch++) {
        double sg = c.part[ch], sq = c.part[C + ch];
        for (int64_t r = 1; r < c.nr; r++)
            sg += c.part[r * 2 * C + ch], sq += c.part[r * 2 * C + C + ch];
        c.cm[ch] = j->center ? (float)(sg * inv) : 0.0f, c.cq[ch] = (float)(sq * inv);
    }
    int64_t grain = 16384 / (C ? C : 1);
    kn_parallel_for(g->A, grain < 1 ? 1 : grain, cols_apply_range, &c);
    kn_free(c.part), kn_free(c.cm);
    return KN_OK;
}
