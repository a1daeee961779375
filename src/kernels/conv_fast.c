/* conv_fast.c — the portable driver of the fast convolution paths (see
 * conv_fast.h): im2col / col2im in tiles of output rows, weight repacking,
 * and the GEMM calls; depthwise problems go to the AVX-512 kernels.
 * Relies on kn__gemm (src/kernels/gemm.h) for all the arithmetic of the
 * GEMM paths, so their results inherit its thread-count independence:
 * tiles are fixed by the shape alone and processed in a fixed order. */
#include "conv_fast.h"
#include "conv_dw.h"
#include "conv_nhwc.h"

#include <stdatomic.h>

#include <string.h>

/* Bytes of im2col buffer aimed for per tile (fits L2 with room to spare),
 * and the fewest rows a tile gets (so weights are not repacked too often). */
#define TILE_BYTES ((int64_t)1 << 20)
#define TILE_MIN_ROWS 256

/* ---------------------------------------------------------------- helpers */
struct kn_conv_packed {
    kn_conv_nhwc_w *nhwc; /* for the direct NHWC kernel */
    float *dw;            /* for the NHWC depthwise kernel (kn__conv_dw_nhwc_pack) */
    int64_t dw_c, dw_kh, dw_kw; /* the geometry dw was packed for */
};

bool kn__conv_fast_dtypes(kn_dtype x, kn_dtype w, kn_dtype y)
{
    return (x == KN_F32 || x == KN_BF16) && (w == KN_F32 || w == KN_BF16) && y == x;
}

bool kn__conv_is_depthwise(const kn_conv_geom *g)
{
    return g->groups == g->cin && g->cout == g->cin && g->in[0] == 1 && g->k[0] == 1 &&
           g->out[0] == 1;
}

static int64_t taps(const kn_conv_geom *g)
{
    return g->k[0] * g->k[1] * g->k[2];
}

static bool is_pointwise(const kn_conv_geom *g)
{
    for (int j = 0; j < 3; j++)
        if (g->k[j] != 1 || g->s[j] != 1 || g->pb[j] || g->pe[j]) return false;
    return true;
}

/* Output positions o in [*lo, *hi) of dim j whose input o*s - pb + off is
 * inside [0, in). */
static void tap_range(const kn_conv_geom *g, int j, int64_t off, int64_t *lo, int64_t *hi)
{
    int64_t num = g->pb[j] - off; /* lo = ceil(num / s), clamped at 0 */
    int64_t l = num <= 0 ? 0 : (num + g->s[j] - 1) / g->s[j];
    int64_t top = g->in[j] - 1 + g->pb[j] - off; /* hi = floor(top / s) + 1 */
    int64_t h = top < 0 ? 0 : top / g->s[j] + 1;
    *lo = l;
    *hi = h > g->out[j] ? g->out[j] : h;
    if (*hi < *lo) *hi = *lo;
}

/* Copies n elements src (stride ss elements, dtype sdt) to contiguous dst
 * (dtype ddt), converting f32 <-> bf16 with round to nearest even. */
static void copy_elems(char *dst, kn_dtype ddt, const char *src, kn_dtype sdt, int64_t ss,
                       int64_t n)
{
    if (sdt == ddt && ss == 1) {
        memcpy(dst, src, (size_t)n * kn_dtype_size(sdt));
    } else if (sdt == ddt && sdt == KN_F32) {
        for (int64_t i = 0; i < n; i++)
            ((float *)dst)[i] = ((const float *)src)[i * ss];
    } else if (sdt == ddt) {
        for (int64_t i = 0; i < n; i++)
            ((uint16_t *)dst)[i] = ((const uint16_t *)src)[i * ss];
    } else if (ddt == KN_BF16) {
        for (int64_t i = 0; i < n; i++)
            ((uint16_t *)dst)[i] = kn_f32_to_bf16(((const float *)src)[i * ss]);
    } else {
        for (int64_t i = 0; i < n; i++)
            ((float *)dst)[i] = kn_bf16_to_f32(((const uint16_t *)src)[i * ss]);
    }
}

/* dst[i * ds] += src[i] for n f32 values. */
static void add_f32(float *dst, int64_t ds, const float *src, int64_t n)
{
    if (ds == 1)
        for (int64_t i = 0; i < n; i++)
            dst[i] += src[i];
    else
        for (int64_t i = 0; i < n; i++)
            dst[i * ds] += src[i];
}

static float load_f(const char *p, kn_dtype dt)
{
    return dt == KN_F32 ? *(const float *)p : kn_bf16_to_f32(*(const uint16_t *)p);
}

static void store_f(char *p, kn_dtype dt, float v)
{
    if (dt == KN_F32)
        *(float *)p = v;
    else
        *(uint16_t *)p = kn_f32_to_bf16(v);
}

/* Uniform rows: an activation whose (n, d, h, w) positions are rows with one
 * stride and whose channels are contiguous (NHWC-like); *ld gets the row
 * stride. Spatial size-1 dims do not constrain. */
static bool uniform_rows(const kn_conv_act *a, const int64_t *sp, int64_t n, int64_t *ld)
{
    if (a->sc != 1) return false;
    int64_t want = a->ss[2], size = 1;
    *ld = want;
    for (int j = 2; j >= 0; j--) {
        if (sp[j] != 1 && a->ss[j] != want * size) return false;
        size *= sp[j];
    }
    return n == 1 || a->sn == want * size;
}

/* Contiguous planes: spatial positions of a channel are contiguous (NCHW
 * like); each (n, c) plane starts at n*sn + c*sc. */
static bool plane_contig(const kn_conv_act *a, const int64_t *sp)
{
    int64_t size = 1;
    for (int j = 2; j >= 0; j--) {
        if (sp[j] != 1 && a->ss[j] != size) return false;
        size *= sp[j];
    }
    return true;
}

/* The per-channel epilogue over rows of f32 values: row r is channel c0 + r
 * (NCHW tiles) with `cols` values; writes to y (dtype ydt, row stride ldy);
 * the residual (if any) is read at the same element offsets as y: res
 * points at the first element. */
static void epilogue_rows(const kn_epilogue *ep, int64_t c0, int64_t rows, int64_t cols,
                          const float *acc, int64_t lda, char *y, kn_dtype ydt, int64_t ldy,
                          const char *res)
{
    size_t yes = kn_dtype_size(ydt), res_es = res ? kn_dtype_size(ep->residual_dtype) : 0;
    bool simple = ydt == KN_F32 && !res && ep && !ep->scale && !ep->shift &&
                  (ep->act == KN_ACT_NONE || ep->act == KN_ACT_RELU);
    for (int64_t r = 0; simple && r < rows; r++) { /* bias [+ relu]: a loop that vectorizes */
        const float *a = acc + r * lda;
        float *yr = (float *)y + r * ldy, b = ep->bias ? ep->bias[c0 + r] : 0.0f;
        if (ep->act == KN_ACT_RELU)
            for (int64_t j = 0; j < cols; j++)
                yr[j] = a[j] + b > 0 ? a[j] + b : 0;
        else
            for (int64_t j = 0; j < cols; j++)
                yr[j] = a[j] + b;
    }
    for (int64_t r = 0; !simple && r < rows; r++) {
        const float *a = acc + r * lda;
        char *yr = y + r * ldy * (int64_t)yes;
        const char *rr = res ? res + r * ldy * (int64_t)res_es : NULL;
        float b = ep && ep->bias ? ep->bias[c0 + r] : 0.0f;
        float sc = ep && ep->scale ? ep->scale[c0 + r] : 1.0f;
        float sh = ep && ep->shift ? ep->shift[c0 + r] : 0.0f;
        bool has_scale = ep && (ep->scale || ep->shift);
        kn_act act = ep ? ep->act : KN_ACT_NONE;
        for (int64_t j = 0; j < cols; j++) {
            float v = a[j] + b;
            if (has_scale) v = v * sc + sh;
            if (rr) v += load_f(rr + j * (int64_t)res_es, ep->residual_dtype);
            if (act == KN_ACT_RELU)
                v = v > 0 ? v : 0;
            else if (act != KN_ACT_NONE)
                v = kn__act_ref(act, v);
            if (ydt == KN_F32)
                ((float *)yr)[j] = v;
            else
                store_f(yr + j * (int64_t)yes, ydt, v);
        }
    }
}

/* epilogue_rows over channel rows [r0, r1), for kn_parallel_for. */
typedef struct ep_job {
    const kn_epilogue *ep;
    int64_t cols, lda, ldy;
    const float *acc;
    char *y;
    kn_dtype ydt;
    const char *res;
} ep_job;

static void ep_range(int64_t r0, int64_t r1, void *arg)
{
    const ep_job *j = arg;
    int64_t yes = (int64_t)kn_dtype_size(j->ydt);
    int64_t res_es = j->res ? (int64_t)kn_dtype_size(j->ep->residual_dtype) : 0;
    epilogue_rows(j->ep, r0, r1 - r0, j->cols, j->acc + r0 * j->lda, j->lda, j->y + r0 * j->ldy * yes,
                  j->ydt, j->ldy, j->res ? j->res + r0 * j->ldy * res_es : NULL);
}

/* The epilogue of a whole tile, split over channels (each element is
 * computed the same way whatever the split). */
static void epilogue_parallel(const kn_epilogue *ep, int64_t rows, int64_t cols, const float *acc,
                              int64_t lda, char *y, kn_dtype ydt, int64_t ldy, const char *res)
{
    ep_job j = {ep, cols, lda, ldy, acc, y, ydt, res};
    int64_t grain = cols > 0 ? 16384 / cols : 1;
    kn_parallel_for(rows, grain < 1 ? 1 : grain, ep_range, &j);
}

static bool ep_empty(const kn_epilogue *ep)
{
    return !ep || (!ep->bias && !ep->scale && !ep->shift && !ep->residual && !ep->act);
}

/* Rows per tile for rows of `row_elems` elements of `es` bytes. */
static int64_t tile_rows(int64_t row_elems, size_t es, int64_t total, int64_t align)
{
    int64_t r = TILE_BYTES / (row_elems * (int64_t)es + 1);
    if (r < TILE_MIN_ROWS) r = TILE_MIN_ROWS;
    r = (r + align - 1) / align * align;
    return r < total ? r : total;
}

/* Output rows (of OW pixels) per NCHW tile with row_elems per pixel. */
static int64_t q_tile(int64_t row_elems, size_t es, int64_t OW, int64_t Q)
{
    int64_t q = TILE_BYTES / (row_elems * (int64_t)es * OW + 1);
    int64_t min_q = (TILE_MIN_ROWS + OW - 1) / OW;
    if (q < min_q) q = min_q;
    return q < Q ? q : Q;
}

/* ------------------------------------------------------- weight repacking */
/* Weights (C_out, C_in/G, taps) to wp[oc][tap][c] in dtype dt: the B
 * operand (transposed) of the NHWC GEMM. */
static void pack_w_tap_c(const kn_conv_geom *g, const kn_conv_wgt *w, char *wp, kn_dtype dt)
{
    int64_t cing = g->cin / g->groups, kk = taps(g);
    size_t wes = kn_dtype_size(w->dt), es = kn_dtype_size(dt);
    for (int64_t oc = 0; oc < g->cout; oc++)
        for (int64_t t = 0; t < kk; t++) {
            int64_t kd = t / (g->k[1] * g->k[2]), kh = t / g->k[2] % g->k[1], kw = t % g->k[2];
            const char *src =
                w->p + (oc * w->s0 + kd * w->sk[0] + kh * w->sk[1] + kw * w->sk[2]) * (int64_t)wes;
            copy_elems(wp + (oc * kk + t) * cing * (int64_t)es, dt, src, w->dt, w->s1, cing);
        }
}

/* Weights to contiguous (C_out, C_in/G, taps) in dtype dt (natural order). */
static void pack_w_c_tap(const kn_conv_geom *g, const kn_conv_wgt *w, char *wp, kn_dtype dt)
{
    int64_t cing = g->cin / g->groups, kk = taps(g);
    size_t wes = kn_dtype_size(w->dt), es = kn_dtype_size(dt);
    for (int64_t oc = 0; oc < g->cout; oc++)
        for (int64_t c = 0; c < cing; c++)
            for (int64_t t = 0; t < kk; t++) {
                int64_t kd = t / (g->k[1] * g->k[2]), kh = t / g->k[2] % g->k[1], kw = t % g->k[2];
                const char *src = w->p + (oc * w->s0 + c * w->s1 + kd * w->sk[0] +
                                          kh * w->sk[1] + kw * w->sk[2]) *
                                             (int64_t)wes;
                copy_elems(wp + ((oc * cing + c) * kk + t) * (int64_t)es, dt, src, w->dt, 1, 1);
            }
}

/* True when w already is contiguous (C_out, C_in/G, taps). */
static bool w_natural(const kn_conv_geom *g, const kn_conv_wgt *w)
{
    int64_t kk = taps(g);
    return w->sk[2] == 1 && (g->k[1] == 1 || w->sk[1] == g->k[2]) &&
           (g->k[0] == 1 || w->sk[0] == g->k[1] * g->k[2]) &&
           (g->cin / g->groups == 1 || w->s1 == kk) && (g->cout == 1 || w->s0 == kk * (g->cin / g->groups));
}

/* ------------------------------------------------------------ im2col NHWC */
/* Rows m of (N, OD, OH, OW) flattened; a col row is (g, kd, kh, kw, c). */
typedef struct nhwc_job {
    const kn_conv_geom *g;
    const kn_conv_act *x; /* x (forward, weight grad) or dx accumulator */
    int64_t m0;
    char *col;
    kn_dtype cdt;
    int64_t ldcol;
    float *dx; /* col2im: f32 NHWC accumulator with row stride cin */
    int64_t c_lo, c_chunk;
    int64_t rows;
    bool ctap; /* col rows ordered (g, c, kd, kh, kw): the weights' own order */
} nhwc_job;

static void m_to_pos(const kn_conv_geom *g, int64_t m, int64_t *n, int64_t *od, int64_t *oh,
                     int64_t *ow)
{
    *ow = m % g->out[2];
    m /= g->out[2];
    *oh = m % g->out[1];
    m /= g->out[1];
    *od = m % g->out[0];
    *n = m / g->out[0];
}

/* One col row in (g, c, tap) order: channel runs of each tap are written
 * with stride kk (the row stays in L1), so the weights need no repacking. */
static void im2col_row_ctap(const kn_conv_geom *g, const kn_conv_act *x, int64_t n, int64_t od,
                            int64_t oh, int64_t ow, char *dst, kn_dtype cdt)
{
    int64_t kk = taps(g), C = g->cin;
    size_t es = kn_dtype_size(cdt), xes = kn_dtype_size(x->dt);
    for (int64_t t = 0; t < kk; t++) {
        int64_t kd = t / (g->k[1] * g->k[2]), kh = t / g->k[2] % g->k[1], kw = t % g->k[2];
        int64_t id = od * g->s[0] - g->pb[0] + kd * g->d[0];
        int64_t ih = oh * g->s[1] - g->pb[1] + kh * g->d[1];
        int64_t iw = ow * g->s[2] - g->pb[2] + kw * g->d[2];
        bool in = id >= 0 && id < g->in[0] && ih >= 0 && ih < g->in[1] && iw >= 0 &&
                  iw < g->in[2];
        const char *src =
            in ? x->p + (n * x->sn + id * x->ss[0] + ih * x->ss[1] + iw * x->ss[2]) * (int64_t)xes
               : NULL;
        if (cdt == KN_F32 && x->dt == KN_F32) {
            float *d = (float *)dst + t;
            const float *sp = (const float *)src;
            for (int64_t c = 0; c < C; c++)
                d[c * kk] = in ? sp[c * x->sc] : 0.0f;
        } else if (cdt == x->dt) {
            uint16_t *d = (uint16_t *)dst + t;
            const uint16_t *sp = (const uint16_t *)src;
            for (int64_t c = 0; c < C; c++)
                d[c * kk] = in ? sp[c * x->sc] : 0;
        } else {
            for (int64_t c = 0; c < C; c++)
                store_f(dst + (c * kk + t) * (int64_t)es, cdt,
                        in ? load_f(src + c * x->sc * (int64_t)xes, x->dt) : 0.0f);
        }
    }
}

static void im2col_nhwc(int64_t b, int64_t e, void *arg)
{
    const nhwc_job *j = arg;
    const kn_conv_geom *g = j->g;
    const kn_conv_act *x = j->x;
    int64_t cing = g->cin / g->groups;
    size_t es = kn_dtype_size(j->cdt), xes = kn_dtype_size(x->dt);
    for (int64_t r = b; r < e; r++) {
        int64_t n, od, oh, ow;
        m_to_pos(g, j->m0 + r, &n, &od, &oh, &ow);
        char *dst = j->col + r * j->ldcol * (int64_t)es;
        if (j->ctap) {
            im2col_row_ctap(g, x, n, od, oh, ow, dst, j->cdt);
            continue;
        }
        for (int64_t gi = 0; gi < g->groups; gi++)
            for (int64_t kd = 0; kd < g->k[0]; kd++) {
                int64_t id = od * g->s[0] - g->pb[0] + kd * g->d[0];
                for (int64_t kh = 0; kh < g->k[1]; kh++) {
                    int64_t ih = oh * g->s[1] - g->pb[1] + kh * g->d[1];
                    for (int64_t kw = 0; kw < g->k[2]; kw++) {
                        int64_t iw = ow * g->s[2] - g->pb[2] + kw * g->d[2];
                        if (id < 0 || id >= g->in[0] || ih < 0 || ih >= g->in[1] || iw < 0 ||
                            iw >= g->in[2])
                            memset(dst, 0, (size_t)cing * es);
                        else
                            copy_elems(dst, j->cdt,
                                       x->p + (n * x->sn + gi * cing * x->sc + id * x->ss[0] +
                                               ih * x->ss[1] + iw * x->ss[2]) *
                                                  (int64_t)xes,
                                       x->dt, x->sc, cing);
                        dst += cing * (int64_t)es;
                    }
                }
            }
    }
}

/* col2im for channel chunks [b, e) (of c_chunk channels each): adds the f32
 * col rows into the NHWC accumulator; per element in row, then tap order. */
static void col2im_nhwc(int64_t b, int64_t e, void *arg)
{
    const nhwc_job *j = arg;
    const kn_conv_geom *g = j->g;
    int64_t cing = g->cin / g->groups, kk = taps(g);
    int64_t c0 = b * j->c_chunk, c1 = e * j->c_chunk > g->cin ? g->cin : e * j->c_chunk;
    for (int64_t r = 0; r < j->rows; r++) {
        int64_t n, od, oh, ow;
        m_to_pos(g, j->m0 + r, &n, &od, &oh, &ow);
        const float *src = (const float *)j->col + r * j->ldcol;
        for (int64_t t = 0; t < kk; t++) {
            int64_t kd = t / (g->k[1] * g->k[2]), kh = t / g->k[2] % g->k[1], kw = t % g->k[2];
            int64_t id = od * g->s[0] - g->pb[0] + kd * g->d[0];
            int64_t ih = oh * g->s[1] - g->pb[1] + kh * g->d[1];
            int64_t iw = ow * g->s[2] - g->pb[2] + kw * g->d[2];
            if (id < 0 || id >= g->in[0] || ih < 0 || ih >= g->in[1] || iw < 0 || iw >= g->in[2])
                continue;
            float *dst = j->dx + (((n * g->in[0] + id) * g->in[1] + ih) * g->in[2] + iw) * g->cin;
            /* channel c of group gi sits at col (gi, t, c % cing) */
            for (int64_t c = c0; c < c1;) {
                int64_t gi = c / cing, cg = c % cing, run = cing - cg;
                if (run > c1 - c) run = c1 - c;
                add_f32(dst + c, 1, src + (gi * kk + t) * cing + cg, run);
                c += run;
            }
        }
    }
}

/* ------------------------------------------------------------ im2col NCHW */
/* Tile: image n, flattened output rows q in [q0, q1) of (OD, OH); a col row
 * is (ic, kd, kh, kw) = the weight's natural order, P = (q1-q0)*OW columns. */
typedef struct nchw_job {
    const kn_conv_geom *g;
    const kn_conv_act *x;
    int64_t n, q0, q1;
    char *col;
    kn_dtype cdt;
    int64_t ldcol;
    float *dx; /* col2im: f32 NCHW accumulator (contiguous) */
} nchw_job;

static void im2col_nchw(int64_t b, int64_t e, void *arg)
{
    const nchw_job *j = arg;
    const kn_conv_geom *g = j->g;
    const kn_conv_act *x = j->x;
    int64_t kk = taps(g), OW = g->out[2];
    size_t es = kn_dtype_size(j->cdt), xes = kn_dtype_size(x->dt);
    for (int64_t kr = b; kr < e; kr++) {
        int64_t ic = kr / kk, t = kr % kk;
        int64_t kd = t / (g->k[1] * g->k[2]), kh = t / g->k[2] % g->k[1], kw = t % g->k[2];
        int64_t lo, hi;
        tap_range(g, 2, kw * g->d[2], &lo, &hi);
        char *dst = j->col + kr * j->ldcol * (int64_t)es;
        if (j->cdt == KN_F32 && x->dt == KN_F32 && g->s[2] == 1 && x->ss[2] == 1) {
            /* f32, unit stride along W: plain loops (rows are often only a
             * few elements, too short for memcpy/memset calls to pay) */
            float *d = (float *)dst;
            const float *plane = (const float *)x->p + j->n * x->sn + ic * x->sc;
            int64_t shift = kw * g->d[2] - g->pb[2];
            /* (od, oh) stepped along q: no divisions per row */
            int64_t od = j->q0 / g->out[1], oh = j->q0 % g->out[1];
            for (int64_t q = j->q0; q < j->q1; q++, d += OW) {
                int64_t id = od * g->s[0] - g->pb[0] + kd * g->d[0];
                int64_t ih = oh * g->s[1] - g->pb[1] + kh * g->d[1];
                if (++oh == g->out[1]) oh = 0, od++;
                bool row_in = id >= 0 && id < g->in[0] && ih >= 0 && ih < g->in[1];
                int64_t from = row_in ? lo : OW, to = row_in ? hi : OW;
                for (int64_t ow = 0; ow < from; ow++)
                    d[ow] = 0;
                if (from < to) {
                    const float *src = plane + id * x->ss[0] + ih * x->ss[1] + (from + shift);
                    for (int64_t ow = from; ow < to; ow++)
                        d[ow] = src[ow - from];
                }
                for (int64_t ow = to; ow < OW; ow++)
                    d[ow] = 0;
            }
            continue;
        }
        for (int64_t q = j->q0; q < j->q1; q++, dst += OW * (int64_t)es) {
            int64_t od = q / g->out[1], oh = q % g->out[1];
            int64_t id = od * g->s[0] - g->pb[0] + kd * g->d[0];
            int64_t ih = oh * g->s[1] - g->pb[1] + kh * g->d[1];
            if (id < 0 || id >= g->in[0] || ih < 0 || ih >= g->in[1] || hi == lo) {
                memset(dst, 0, (size_t)OW * es);
                continue;
            }
            memset(dst, 0, (size_t)lo * es);
            int64_t iw = lo * g->s[2] - g->pb[2] + kw * g->d[2];
            copy_elems(dst + lo * (int64_t)es, j->cdt,
                       x->p + (j->n * x->sn + ic * x->sc + id * x->ss[0] + ih * x->ss[1] +
                               iw * x->ss[2]) *
                                  (int64_t)xes,
                       x->dt, g->s[2] * x->ss[2], hi - lo);
            memset(dst + hi * (int64_t)es, 0, (size_t)(OW - hi) * es);
        }
    }
}

/* col2im NCHW over input channels [b, e): each owns its kk col rows. */
static void col2im_nchw(int64_t b, int64_t e, void *arg)
{
    const nchw_job *j = arg;
    const kn_conv_geom *g = j->g;
    int64_t kk = taps(g), OW = g->out[2];
    for (int64_t ic = b; ic < e; ic++)
        for (int64_t t = 0; t < kk; t++) {
            int64_t kd = t / (g->k[1] * g->k[2]), kh = t / g->k[2] % g->k[1], kw = t % g->k[2];
            int64_t lo, hi;
            tap_range(g, 2, kw * g->d[2], &lo, &hi);
            const float *src = (const float *)j->col + (ic * kk + t) * j->ldcol;
            for (int64_t q = j->q0; q < j->q1; q++, src += OW) {
                int64_t od = q / g->out[1], oh = q % g->out[1];
                int64_t id = od * g->s[0] - g->pb[0] + kd * g->d[0];
                int64_t ih = oh * g->s[1] - g->pb[1] + kh * g->d[1];
                if (id < 0 || id >= g->in[0] || ih < 0 || ih >= g->in[1] || hi == lo) continue;
                int64_t iw = lo * g->s[2] - g->pb[2] + kw * g->d[2];
                float *dst = j->dx + (((j->n * g->cin + ic) * g->in[0] + id) * g->in[1] + ih) *
                                         g->in[2] +
                             iw;
                add_f32(dst, g->s[2], src + lo, hi - lo);
            }
        }
}

static int64_t grain_rows(int64_t row_work)
{
    return row_work >= 4096 ? 1 : 4096 / (row_work + 1) + 1;
}

/* ---------------------------------------------------------------- forward */
typedef struct dw_job {
    const kn_conv_geom *g;
    const kn_conv_act *x, *y;
    const float *wp;
    const kn_epilogue *ep;
    float *scratch; /* per chunk: scratch_elems floats each */
    int64_t scratch_elems, grain;
} dw_job;

#if KILN_X86
static void dw_nhwc_task(int64_t b, int64_t e, void *arg)
{
    const dw_job *j = arg;
    kn__conv_dw_nhwc_avx512(j->g, j->x, j->wp, j->y, j->ep, b, e);
}

static void dw_nchw_task(int64_t b, int64_t e, void *arg)
{
    const dw_job *j = arg;
    kn__conv_dw_nchw_avx512(j->g, j->x, j->wp, j->y, j->ep, b, e,
                            j->scratch + (b / j->grain) * j->scratch_elems);
}
#endif

static kn_status conv_fwd_depthwise(const kn_conv_geom *g, const kn_conv_act *x,
                                    const kn_conv_wgt *w, const kn_conv_act *y,
                                    const kn_epilogue *ep)
{
#if KILN_X86
    if (g->nhwc) {
        const kn_conv_packed *pk = w->packed;
        bool fits = pk && pk->dw && pk->dw_c == g->cin && pk->dw_kh == g->k[1] &&
                    pk->dw_kw == g->k[2];
        return kn__conv_dw_nhwc(g, x, w, fits ? pk->dw : NULL, y, ep);
    }
    int64_t C = g->cin, kk = g->k[1] * g->k[2];
    float *wp = kn_alloc(sizeof(float) * (size_t)(C * kk));
    if (!wp) return KN_ERR_NOMEM;
    size_t wes = kn_dtype_size(w->dt);
    for (int64_t c = 0; c < C; c++)
        for (int64_t t = 0; t < kk; t++) {
            const char *src =
                w->p + (c * w->s0 + t / g->k[2] * w->sk[1] + t % g->k[2] * w->sk[2]) * (int64_t)wes;
            /* NHWC wants [tap][c], NCHW [c][tap] */
            wp[g->nhwc ? t * C + c : c * kk + t] = load_f(src, w->dt);
        }
    dw_job j = {.g = g, .x = x, .y = y, .wp = wp, .ep = ep_empty(ep) ? NULL : ep};
    kn_status s = KN_OK;
    if (g->nhwc) {
        int64_t rows = g->n * g->out[1];
        kn_parallel_for(rows, grain_rows(g->out[2] * C * kk), dw_nhwc_task, &j);
    } else {
        int64_t planes = g->n * C;
        j.grain = grain_rows(g->out[1] * g->out[2] * kk);
        /* kn_parallel_for chunks are multiples of grain: with at most 256
         * chunks of at least `grain` planes, chunk b / grain indexes a slot */
        int64_t chunk = (planes + 255) / 256;
        if (chunk < j.grain) chunk = j.grain;
        j.grain = chunk;
        int64_t n_chunks = (planes + chunk - 1) / chunk;
        j.scratch_elems = (kn__conv_dw_nchw_scratch(g) + 15) / 16 * 16;
        j.scratch = kn_alloc(sizeof(float) * (size_t)(j.scratch_elems * n_chunks));
        if (!j.scratch)
            s = KN_ERR_NOMEM;
        else
            kn_parallel_for(planes, chunk, dw_nchw_task, &j);
        kn_free(j.scratch);
    }
    kn_free(wp);
    return s;
#else
    (void)g, (void)x, (void)w, (void)y, (void)ep;
    return KN_ERR_UNSUPPORTED;
#endif
}

/* y rows [m0, m0+mt) (row stride ldy) = A (mt rows, group gi at
 * a + gi*a_g) · B_giᵀ (B rows of group gi start at row gi*coutg), one GEMM
 * per group so the per-channel epilogue is offset to the group's columns. */
static kn_status gemm_nhwc_groups(const kn_conv_geom *g, kn_dtype compute, int64_t mt,
                                  const char *a, kn_dtype adt, int64_t lda, int64_t a_g,
                                  const char *b, kn_dtype bdt, int64_t ldb, const kn_conv_act *y,
                                  int64_t ldy, int64_t m0, const kn_epilogue *ep)
{
    int64_t G = g->groups, coutg = g->cout / G;
    size_t yes = kn_dtype_size(y->dt), aes = kn_dtype_size(adt), bes = kn_dtype_size(bdt);
    if (ep_empty(ep)) /* one batched call */
        return kn__gemm_batched(compute, false, true, mt, coutg, ldb, a, adt, lda, b, bdt, ldb,
                                0.0f, y->p + m0 * ldy * (int64_t)yes, y->dt, ldy, NULL, G, a_g,
                                coutg * ldb, coutg);
    kn_status s = KN_OK;
    for (int64_t gi = 0; gi < G && !s; gi++) {
        int64_t c0 = gi * coutg, off = m0 * ldy + c0;
        kn_epilogue e = *ep;
        if (e.bias) e.bias += c0;
        if (e.scale) e.scale += c0;
        if (e.shift) e.shift += c0;
        if (e.residual)
            e.residual = (const char *)e.residual + off * (int64_t)kn_dtype_size(e.residual_dtype);
        e.ldr = ldy, e.stride_r = 0;
        s = kn__gemm(compute, false, true, mt, coutg, ldb, a + gi * a_g * (int64_t)aes, adt, lda,
                     b + c0 * ldb * (int64_t)bes, bdt, ldb, 0.0f, y->p + off * (int64_t)yes,
                     y->dt, ldy, &e);
    }
    return s;
}

/* NHWC: y rows (N*OD*OH*OW, C_out) = col (rows, G*Kg) · wpᵀ per group. */
static kn_status conv_fwd_nhwc(const kn_conv_geom *g, const kn_conv_act *x,
                               const kn_conv_wgt *w, const kn_conv_act *y, kn_dtype compute,
                               const kn_epilogue *ep)
{
    if (kn__conv_nhwc_usable(g, x, y, compute)) {
        const kn_conv_nhwc_w *given = w->packed ? w->packed->nhwc : NULL;
        if (given && given->dt == compute && kn__conv_nhwc_matches(given, g))
            return kn__conv_nhwc_run(g, x, given, y, ep);
        /* Packing per call (eager) costs about as much as ~256 output
         * pixels' worth of products: fewer pixels take the GEMM path, whose
         * packing of the weights is vectorized. */
        if (g->n * g->out[0] * g->out[1] * g->out[2] >= 256) {
            kn_conv_nhwc_w *pw;
            kn_status s = kn__conv_nhwc_pack(g, w, compute, &pw);
            if (!s) s = kn__conv_nhwc_run(g, x, pw, y, ep);
            kn__conv_nhwc_free(pw);
            return s;
        }
    }
    int64_t G = g->groups, cing = g->cin / G, kk = taps(g);
    int64_t Kg = kk * cing, M = g->n * g->out[0] * g->out[1] * g->out[2], ldy = 0, ldx = 0;
    bool ok_y = uniform_rows(y, g->out, g->n, &ldy);
    assert(ok_y);
    (void)ok_y;
    kn_dtype cdt = compute == KN_BF16 ? KN_BF16 : x->dt;
    /* B: weights as (C_out, taps*cing) rows */
    const char *wb = w->p;
    kn_dtype wdt = w->dt;
    char *wp = NULL, *col = NULL;
    bool w_ok = kk == 1 && w->s1 == 1 && (g->cout == 1 || w->s0 == cing);
    /* few output rows: write im2col in the weights' (c, tap) order rather
     * than repack C_out*K weights on every call */
    bool ctap = !w_ok && w_natural(g, w) && M < 2 * g->cout && !is_pointwise(g);
    if (!w_ok && !ctap) {
        wdt = compute == KN_BF16 ? KN_BF16 : w->dt;
        if (!(wp = kn_alloc(kn_dtype_size(wdt) * (size_t)(g->cout * Kg)))) return KN_ERR_NOMEM;
        pack_w_tap_c(g, w, wp, wdt);
        wb = wp;
    }
    kn_status s = KN_OK;
    if (is_pointwise(g) && uniform_rows(x, g->in, g->n, &ldx)) {
        /* 1x1: the input rows are the A operand as they are */
        s = gemm_nhwc_groups(g, compute, M, x->p, x->dt, ldx, cing, wb, wdt, Kg, y, ldy, 0, ep);
    } else {
        int64_t K = G * Kg, rows = tile_rows(K, kn_dtype_size(cdt), M, 16);
        if (!(col = kn_alloc(kn_dtype_size(cdt) * (size_t)(rows * K)))) s = KN_ERR_NOMEM;
        for (int64_t m0 = 0; !s && m0 < M; m0 += rows) {
            int64_t mt = M - m0 < rows ? M - m0 : rows;
            nhwc_job j = {.g = g, .x = x, .m0 = m0, .col = col, .cdt = cdt, .ldcol = K,
                          .ctap = ctap};
            kn_parallel_for(mt, grain_rows(K), im2col_nhwc, &j);
            s = gemm_nhwc_groups(g, compute, mt, col, cdt, K, Kg, wb, wdt, Kg, y, ldy, m0, ep);
        }
    }
    kn_free(col);
    kn_free(wp);
    return s;
}

kn_conv_packed *kn__conv_pack(const kn_conv_geom *g, const kn_conv_wgt *w, kn_dtype compute,
                              const kn_conv_act *x, const kn_conv_act *y, kn_status *status)
{
    *status = KN_OK;
#if KILN_X86
    if (kn__conv_is_depthwise(g) && g->nhwc && kn_isa_max() >= KN_ISA_AVX512 && x->sc == 1 &&
        y->sc == 1) {
        kn_conv_packed *p = kn_alloc(sizeof *p);
        float *wp = p ? kn_alloc(sizeof(float) * (size_t)kn__conv_dw_nhwc_wsize(g)) : NULL;
        if (!wp) {
            kn_free(p);
            *status = KN_ERR_NOMEM;
            return NULL;
        }
        kn__conv_dw_nhwc_pack(g, w, wp);
        *p = (kn_conv_packed){.dw = wp, .dw_c = g->cin, .dw_kh = g->k[1], .dw_kw = g->k[2]};
        return p;
    }
#endif
    if (!kn__conv_nhwc_usable(g, x, y, compute) || kn__conv_is_depthwise(g)) return NULL;
    kn_conv_packed *p = kn_alloc(sizeof *p);
    if (!p) {
        *status = KN_ERR_NOMEM;
        return NULL;
    }
    *p = (kn_conv_packed){0};
    if ((*status = kn__conv_nhwc_pack(g, w, compute, &p->nhwc))) {
        kn_free(p);
        return NULL;
    }
    return p;
}

void kn__conv_packed_free(kn_conv_packed *p)
{
    if (!p) return;
    kn__conv_nhwc_free(p->nhwc);
    kn_free(p->dw);
    kn_free(p);
}

/* ------------------------------------------- no-pack product (AVX-512) */
/* y (m × pt, row stride ldy) = w (m × k) · b (k × pt), split into items of
 * (a chunk of mc rows) × (64 columns); each element is computed the same
 * way whatever the split (see conv_direct.c). */
typedef struct np_job {
    int64_t k, m, pt, mc, nmc;
    const float *w, *b;
    int64_t ldw, ldb, ldy;
    float *y;
    const kn_np_epi *e;
} np_job;

#if KILN_X86
static void np_task(int64_t b, int64_t e, void *arg)
{
    const np_job *j = arg;
    for (int64_t it = b; it < e; it++) {
        int64_t pb = it / j->nmc, mi = it % j->nmc;
        int64_t m0 = mi * j->mc, m1 = m0 + j->mc < j->m ? m0 + j->mc : j->m;
        int64_t p0 = pb * 64, p1 = p0 + 64 < j->pt ? p0 + 64 : j->pt;
        kn__conv_np_f32_avx512(j->k, j->w, j->ldw, j->b, j->ldb, j->y, j->ldy, m0, m1, p0, p1,
                               j->e);
    }
}
#endif

static void np_product(int64_t m, int64_t pt, int64_t k, const float *w, int64_t ldw,
                       const float *b, int64_t ldb, float *y, int64_t ldy, const kn_np_epi *e)
{
#if KILN_X86
    int64_t nmc = (m + 95) / 96, mc = ((m + nmc - 1) / nmc + 5) / 6 * 6;
    nmc = (m + mc - 1) / mc;
    np_job j = {.k = k, .m = m, .pt = pt, .mc = mc, .nmc = nmc, .w = w, .b = b, .ldw = ldw,
                .ldb = ldb, .ldy = ldy, .y = y, .e = e};
    int64_t items = nmc * ((pt + 63) / 64);
    int64_t work = mc * 64 * k; /* FMAs per item */
    kn_parallel_for(items, work >= (1 << 16) ? 1 : (1 << 16) / work + 1, np_task, &j);
#else
    (void)m, (void)pt, (void)k, (void)w, (void)ldw, (void)b, (void)ldb, (void)y, (void)ldy, (void)e;
#endif
}

/* The no-pack path takes f32 NCHW problems with one group on AVX-512. */
static bool np_usable(const kn_conv_geom *g, const kn_conv_act *x, kn_dtype wdt,
                      const kn_conv_act *y, kn_dtype compute, const kn_epilogue *ep)
{
#if KILN_X86
    if (kn_isa_max() < KN_ISA_AVX512 || compute != KN_F32 || x->dt != KN_F32 ||
        wdt != KN_F32 || y->dt != KN_F32 || g->groups != 1)
        return false;
    if (ep && ep->residual) { /* a residual aliasing y would be overwritten by partial sums */
        const char *r = ep->residual, *yp = y->p;
        int64_t span = ((g->n - 1) * y->sn + (g->cout - 1) * y->sc +
                        g->out[0] * g->out[1] * g->out[2]) * 4;
        size_t res_span = (size_t)span / (ep->residual_dtype == KN_F32 ? 1 : 2);
        if (r < yp + span && yp < r + res_span) return false;
    }
    return true;
#else
    (void)g, (void)x, (void)wdt, (void)y, (void)compute, (void)ep;
    return false;
#endif
}

/* NCHW: y[n] (C_out, P) = w (C_out, K) · col (K, P) per group, in tiles of
 * output rows; with an epilogue the GEMM writes an f32 tile that the
 * per-channel epilogue then stores. */
/* Small images (LeNet-sized): whole images per thread beat splitting each
 * image's small im2col and GEMM, whose parallel regions then cost more than
 * their work. Nested kn_parallel_for calls run inline, so the per-image code
 * is the same either way; the choice depends on the shape only. */
static bool per_image_parallel(const kn_conv_geom *g, int64_t K, int64_t P, int64_t cout)
{
    return g->n >= 4 && 2 * K * P * cout < ((int64_t)4 << 20);
}

/* A parallel task's failure: the first one is kept for the caller. */
static void keep_first_error(_Atomic int *status, kn_status s)
{
    int ok = KN_OK;
    if (s) atomic_compare_exchange_strong(status, &ok, (int)s);
}

/* acc = the per-chunk weight-gradient sums added in chunk order (so the
 * result does not depend on which thread ran which chunk). */
static void sum_chunks(float *acc, const float *partial, int64_t chunks, int64_t per)
{
    for (int64_t c = 0; c < chunks; c++)
        for (int64_t i = 0; i < per; i++)
            acc[i] = c ? acc[i] + partial[c * per + i] : partial[i];
}

static int64_t image_grain(int64_t n)
{
    return n / 8 > 1 ? n / 8 : 1;
}

/* Everything conv_fwd_nchw decides once, for running images [n0, n1). */
typedef struct fwd_nchw_plan {
    const kn_conv_geom *g;
    const kn_conv_act *x, *y;
    const kn_epilogue *ep;
    kn_dtype compute, cdt, wdt;
    const char *wa;
    int64_t G, cing, coutg, Kg, K, Q, OW, qt;
    bool direct, np, np_ep, in_place, via_tile;
    _Atomic int status; /* first error of a parallel run */
} fwd_nchw_plan;

static const char *residual_at(const fwd_nchw_plan *p, int64_t n, int64_t q0)
{
    const kn_epilogue *ep = p->ep;
    if (!ep || !ep->residual) return NULL;
    return (const char *)ep->residual +
           (n * p->y->sn + q0 * p->OW) * (int64_t)kn_dtype_size(ep->residual_dtype);
}

static kn_status fwd_nchw_images(fwd_nchw_plan *p, int64_t n0, int64_t n1)
{
    const kn_conv_geom *g = p->g;
    const kn_conv_act *x = p->x, *y = p->y;
    const kn_epilogue *ep = p->ep;
    int64_t OW = p->OW, Q = p->Q, qt = p->qt, K = p->K, Kg = p->Kg, P = qt * OW;
    char *col = NULL;
    float *tmp = NULL;
    kn_status s = KN_OK;
    if (!p->direct && !(col = kn_alloc(kn_dtype_size(p->cdt) * (size_t)(K * P)))) s = KN_ERR_NOMEM;
    if (!s && p->via_tile && !(tmp = kn_alloc(sizeof(float) * (size_t)(g->cout * P)))) s = KN_ERR_NOMEM;
    size_t xes = kn_dtype_size(x->dt), yes = kn_dtype_size(y->dt);
    for (int64_t n = n0; !s && n < n1; n++)
        for (int64_t q0 = 0; !s && q0 < Q; q0 += qt) {
            int64_t q1 = Q - q0 < qt ? Q : q0 + qt, pt = (q1 - q0) * OW;
            const char *b;
            kn_dtype bdt;
            int64_t ldb, sb;
            if (p->direct) {
                b = x->p + (n * x->sn + q0 * OW) * (int64_t)xes, bdt = x->dt;
                ldb = x->sc, sb = p->cing * x->sc;
            } else {
                nchw_job j = {.g = g, .x = x, .n = n, .q0 = q0, .q1 = q1, .col = col, .cdt = p->cdt,
                              .ldcol = pt};
                kn_parallel_for(K, grain_rows(pt), im2col_nchw, &j);
                b = col, bdt = p->cdt, ldb = pt, sb = Kg * pt;
            }
            char *yt = y->p + (n * y->sn + q0 * OW) * (int64_t)yes;
            const char *res = residual_at(p, n, q0);
            if (p->np) {
                kn_np_epi e = {0};
                if (p->np_ep)
                    e = (kn_np_epi){ep->bias, ep->scale, ep->shift, res, ep->residual_dtype, y->sc,
                                    ep->act};
                np_product(g->cout, pt, K, (const float *)p->wa, K, (const float *)b, ldb,
                           (float *)yt, y->sc, p->np_ep ? &e : NULL);
                if (p->in_place)
                    epilogue_parallel(ep, g->cout, pt, (const float *)yt, y->sc, yt, KN_F32, y->sc, res);
            } else if (!p->via_tile) {
                s = kn__gemm_batched(p->compute, false, false, p->coutg, pt, Kg, p->wa, p->wdt, Kg, b,
                                     bdt, ldb, 0.0f, yt, y->dt, y->sc, NULL, p->G, p->coutg * Kg, sb,
                                     p->coutg * y->sc);
                if (!s && p->in_place)
                    epilogue_parallel(ep, g->cout, pt, (const float *)yt, y->sc, yt, KN_F32, y->sc, res);
            } else {
                s = kn__gemm_batched(p->compute, false, false, p->coutg, pt, Kg, p->wa, p->wdt, Kg, b,
                                     bdt, ldb, 0.0f, tmp, KN_F32, pt, NULL, p->G, p->coutg * Kg, sb,
                                     p->coutg * pt);
                if (!s) epilogue_parallel(ep, g->cout, pt, tmp, pt, yt, y->dt, y->sc, res);
            }
        }
    kn_free(tmp);
    kn_free(col);
    return s;
}

static void fwd_nchw_task(int64_t b, int64_t e, void *arg)
{
    fwd_nchw_plan *p = arg;
    kn_status s = fwd_nchw_images(p, b, e);
    keep_first_error(&p->status, s);
}

/* ---- small NCHW problems: the direct AVX-512 kernel (no im2col, whose
 * short rows cost more than the products at LeNet sizes) */
static bool small_usable(const kn_conv_geom *g, const kn_conv_act *x, const kn_conv_act *y,
                         kn_dtype compute)
{
#if KILN_X86
    return kn_isa_max() >= KN_ISA_AVX512 && !g->nhwc && g->groups == 1 && g->n >= 2 &&
           compute == KN_F32 && x->dt == KN_F32 && y->dt == KN_F32 && g->in[0] == 1 &&
           g->k[0] == 1 && g->s[2] == 1 && g->k[2] <= 16 && x->ss[2] == 1 && y->ss[2] == 1 &&
           g->out[2] >= 8 && g->cin * g->k[1] * g->k[2] <= 512 && g->cout <= 64;
#else
    (void)g, (void)x, (void)y, (void)compute;
    return false;
#endif
}

typedef struct small_job {
    const kn_conv_geom *g;
    const kn_conv_act *x, *y;
    const float *wp, *bias;
    int64_t ocp;
    bool relu;
} small_job;

static void small_task(int64_t b, int64_t e, void *arg)
{
#if KILN_X86
    const small_job *j = arg;
    kn__conv_small_nchw_avx512(j->g, j->x, j->wp, j->ocp, j->bias, j->relu, j->y, b, e);
#else
    (void)b, (void)e, (void)arg;
#endif
}

/* Runs the direct kernel; wp is packed [((ic*KH + kh)*KW + kw)*ocp + oc]. */
static void small_run(const kn_conv_geom *g, const kn_conv_act *x, const float *wp, int64_t ocp,
                      const float *bias, bool relu, const kn_conv_act *y)
{
    small_job j = {g, x, y, wp, bias, ocp, relu};
    kn_parallel_for(g->n, image_grain(g->n), small_task, &j);
}

static int64_t round16(int64_t v)
{
    return (v + 15) / 16 * 16;
}

/* Forward through the direct kernel when it takes the problem and the
 * epilogue is at most bias + relu; false (nothing done) otherwise. */
static bool small_forward(const kn_conv_geom *g, const kn_conv_act *x, const kn_conv_wgt *w,
                          const kn_conv_act *y, kn_dtype compute, const kn_epilogue *ep,
                          kn_status *s)
{
    if (!small_usable(g, x, y, compute) || w->dt != KN_F32) return false;
    if (ep && (ep->scale || ep->shift || ep->residual || (ep->act != KN_ACT_NONE && ep->act != KN_ACT_RELU)))
        return false;
    int64_t KH = g->k[1], KW = g->k[2], ocp = round16(g->cout);
    float *wp = kn_alloc(sizeof(float) * (size_t)(g->cin * KH * KW * ocp));
    if (!wp) {
        *s = KN_ERR_NOMEM;
        return true;
    }
    for (int64_t ic = 0; ic < g->cin; ic++)
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++)
                for (int64_t oc = 0; oc < ocp; oc++)
                    wp[((ic * KH + kh) * KW + kw) * ocp + oc] =
                        oc < g->cout ? *(const float *)(w->p + (oc * w->s0 + ic * w->s1 + kh * w->sk[1] +
                                                                kw * w->sk[2]) * 4)
                                     : 0.0f;
    small_run(g, x, wp, ocp, ep ? ep->bias : NULL, ep && ep->act == KN_ACT_RELU, y);
    kn_free(wp);
    *s = KN_OK;
    return true;
}

/* Data gradient of a stride-1 problem as the direct convolution of dy with
 * the flipped, transposed weights and the complementary padding. */
static bool small_backward_data(const kn_conv_geom *g, const kn_conv_act *dy, const kn_conv_wgt *w,
                                const kn_conv_act *dx, kn_dtype compute, const float *bias,
                                kn_status *s)
{
    kn_conv_geom t = *g;
    t.cin = g->cout, t.cout = g->cin;
    for (int i = 0; i < 3; i++) {
        t.in[i] = g->out[i], t.out[i] = g->in[i];
        t.pb[i] = g->d[i] * (g->k[i] - 1) - g->pb[i];
        t.pe[i] = g->d[i] * (g->k[i] - 1) - g->pe[i];
        if (g->s[i] != 1 || t.pb[i] < 0 || t.pe[i] < 0) return false;
    }
    if (!small_usable(&t, dy, dx, compute) || w->dt != KN_F32) return false;
    int64_t KH = g->k[1], KW = g->k[2], icp = round16(g->cin);
    float *wp = kn_alloc(sizeof(float) * (size_t)(g->cout * KH * KW * icp));
    if (!wp) {
        *s = KN_ERR_NOMEM;
        return true;
    }
    for (int64_t oc = 0; oc < g->cout; oc++)
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++)
                for (int64_t ic = 0; ic < icp; ic++)
                    wp[((oc * KH + kh) * KW + kw) * icp + ic] =
                        ic < g->cin ? *(const float *)(w->p + (oc * w->s0 + ic * w->s1 +
                                                               (KH - 1 - kh) * w->sk[1] +
                                                               (KW - 1 - kw) * w->sk[2]) * 4)
                                    : 0.0f;
    small_run(&t, dy, wp, icp, bias, false, dx);
    kn_free(wp);
    *s = KN_OK;
    return true;
}

typedef struct small_wgrad_job {
    const kn_conv_geom *g;
    const kn_conv_act *x, *dy;
    int64_t chunk;
    float *partial; /* one (C_out, C_in, KH, KW) sum per image chunk */
    float *scratch; /* the kernel's vector sums, per chunk */
} small_wgrad_job;

static void small_wgrad_task(int64_t b, int64_t e, void *arg)
{
#if KILN_X86
    const small_wgrad_job *j = arg;
    int64_t per = j->g->cout * j->g->cin * j->g->k[1] * j->g->k[2];
    int64_t c = b / j->chunk;
    kn__conv_small_wgrad_avx512(j->g, j->x, j->dy, b, e, j->partial + c * per,
                                j->scratch + c * kn__conv_small_wgrad_scratch(j->g));
#else
    (void)b, (void)e, (void)arg;
#endif
}

/* Weight gradient by the direct kernel into acc (C_out, C_in·taps) f32:
 * per fixed image chunk, then the chunks summed in order. */
static bool small_backward_weight(const kn_conv_geom *g, const kn_conv_act *x, const kn_conv_act *dy,
                                  kn_dtype compute, float *acc, kn_status *s)
{
    if (!small_usable(g, x, dy, compute)) return false;
#if KILN_X86
    if (!kn__conv_small_wgrad_accepts(g)) return false;
#endif
    small_wgrad_job j = {g, x, dy, image_grain(g->n), NULL, NULL};
    int64_t chunks = (g->n + j.chunk - 1) / j.chunk, per = g->cout * g->cin * g->k[1] * g->k[2];
#if KILN_X86
    j.scratch = kn_alloc(sizeof(float) * (size_t)(chunks * kn__conv_small_wgrad_scratch(g)));
#endif
    j.partial = j.scratch ? kn_alloc(sizeof(float) * (size_t)(chunks * per)) : NULL;
    if (!j.partial) {
        kn_free(j.scratch);
        *s = KN_ERR_NOMEM;
        return true;
    }
    kn_parallel_for(g->n, j.chunk, small_wgrad_task, &j);
    sum_chunks(acc, j.partial, chunks, per);
    kn_free(j.partial), kn_free(j.scratch);
    *s = KN_OK;
    return true;
}

static kn_status conv_fwd_nchw(const kn_conv_geom *g, const kn_conv_act *x,
                               const kn_conv_wgt *w, const kn_conv_act *y, kn_dtype compute,
                               const kn_epilogue *ep)
{
    kn_status small_status;
    if (small_forward(g, x, w, y, compute, ep, &small_status)) return small_status;
    fwd_nchw_plan p = {.g = g, .x = x, .y = y, .ep = ep, .compute = compute};
    p.G = g->groups, p.cing = g->cin / p.G, p.coutg = g->cout / p.G;
    p.Kg = taps(g) * p.cing, p.K = p.G * p.Kg, p.Q = g->out[0] * g->out[1], p.OW = g->out[2];
    p.cdt = compute == KN_BF16 ? KN_BF16 : x->dt;
    p.direct = is_pointwise(g) && plane_contig(x, g->in);
    p.wa = w->p, p.wdt = w->dt;
    char *wp = NULL;
    if (!w_natural(g, w)) {
        p.wdt = compute == KN_BF16 ? KN_BF16 : w->dt;
        if (!(wp = kn_alloc(kn_dtype_size(p.wdt) * (size_t)(g->cout * p.Kg)))) return KN_ERR_NOMEM;
        pack_w_c_tap(g, w, wp, p.wdt);
        p.wa = wp;
    }
    bool fused = !ep_empty(ep);
    p.np = np_usable(g, x, p.wdt, y, compute, ep);
    /* the no-pack kernel applies bias/scale/shift/residual/relu(6) itself */
    p.np_ep = p.np && fused && (ep->act == KN_ACT_NONE || ep->act == KN_ACT_RELU || ep->act == KN_ACT_RELU6);
    /* an f32 output takes the epilogue in place after a plain GEMM (keeps
     * the GEMM whole); other dtypes go through an f32 tile */
    p.in_place = fused && y->dt == KN_F32 && !p.np_ep;
    p.via_tile = fused && !p.in_place && !p.np_ep;
    /* tile: whole output rows, about TILE_BYTES of col (or of f32 output) */
    int64_t per_q = (p.direct ? 0 : p.K * (int64_t)kn_dtype_size(p.cdt)) + (p.via_tile ? g->cout * 4 : 0);
    int64_t qt = per_q ? TILE_BYTES / (per_q * p.OW) : p.Q;
    int64_t min_q = (TILE_MIN_ROWS + p.OW - 1) / p.OW;
    if (qt < min_q) qt = min_q;
    if (qt > p.Q) qt = p.Q;
    p.qt = qt;
    kn_status s;
    if (per_image_parallel(g, p.K, p.Q * p.OW, g->cout)) {
        atomic_init(&p.status, KN_OK);
        kn_parallel_for(g->n, image_grain(g->n), fwd_nchw_task, &p);
        s = (kn_status)atomic_load(&p.status);
    } else {
        s = fwd_nchw_images(&p, 0, g->n);
    }
    kn_free(wp);
    return s;
}

kn_status kn__conv_fwd(const kn_conv_geom *g, const kn_conv_act *x, const kn_conv_wgt *w,
                       const kn_conv_act *y, kn_dtype compute, const kn_epilogue *ep,
                       bool allow_dw)
{
    int64_t ld;
    if (allow_dw && kn__conv_is_depthwise(g) && kn_isa_max() >= KN_ISA_AVX512 &&
        (g->nhwc ? x->sc == 1 && y->sc == 1 : y->ss[2] == 1))
        return conv_fwd_depthwise(g, x, w, y, ep);
    if (g->nhwc && uniform_rows(y, g->out, g->n, &ld)) return conv_fwd_nhwc(g, x, w, y, compute, ep);
    if (!g->nhwc && plane_contig(y, g->out)) return conv_fwd_nchw(g, x, w, y, compute, ep);
    return kn__error(KN_ERR_INTERNAL, "conv: fast path given an output it does not take");
}

/* --------------------------------------------------------------- backward */
/* A contiguous copy of an activation (N, C, sp) in the geometry's layout
 * (f32 or its own dtype), for the rare operand the GEMMs cannot stride. */
static kn_status contig_copy(const kn_conv_geom *g, const kn_conv_act *a, const int64_t *sp,
                             int64_t c, kn_conv_act *out)
{
    int64_t S = sp[0] * sp[1] * sp[2];
    size_t es = kn_dtype_size(a->dt);
    char *p = kn_alloc(es * (size_t)(g->n * c * S + 1));
    if (!p) return KN_ERR_NOMEM;
    *out = (kn_conv_act){p, a->dt, c * S, g->nhwc ? 1 : S, {0, 0, 0}};
    int64_t step = g->nhwc ? c : 1;
    out->ss[2] = step, out->ss[1] = step * sp[2], out->ss[0] = step * sp[2] * sp[1];
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t ch = 0; ch < c; ch++)
            for (int64_t i = 0; i < S; i++) {
                int64_t d = i / (sp[1] * sp[2]), h = i / sp[2] % sp[1], w = i % sp[2];
                const char *src =
                    a->p + (n * a->sn + ch * a->sc + d * a->ss[0] + h * a->ss[1] + w * a->ss[2]) *
                               (int64_t)es;
                memcpy(p + (n * out->sn + ch * out->sc + d * out->ss[0] + h * out->ss[1] +
                            w * out->ss[2]) *
                               (int64_t)es,
                       src, es);
            }
    return KN_OK;
}

/* The form the GEMMs read an activation in: uniform rows (NHWC) or
 * contiguous planes (NCHW); otherwise a contiguous copy (*tmp, kn_free it). */
static kn_status gemm_form(const kn_conv_geom *g, const kn_conv_act *a, const int64_t *sp,
                           int64_t c, kn_conv_act *out, char **tmp)
{
    int64_t ld;
    *tmp = NULL;
    *out = *a;
    if (g->nhwc ? uniform_rows(a, sp, g->n, &ld) : plane_contig(a, sp)) return KN_OK;
    kn_status s = contig_copy(g, a, sp, c, out);
    if (!s) *tmp = out->p;
    return s;
}

/* Writes the f32 accumulator (contiguous, the geometry's layout) into dx,
 * adding bias[c] when given; in place when acc is dx's own storage. */
static void store_acc(const kn_conv_geom *g, const float *acc, const kn_conv_act *dx,
                      const float *bias)
{
    int64_t S = g->in[0] * g->in[1] * g->in[2], C = g->cin;
    size_t es = kn_dtype_size(dx->dt);
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t i = 0; i < S; i++) {
            int64_t d = i / (g->in[1] * g->in[2]), h = i / g->in[2] % g->in[1], w = i % g->in[2];
            char *row = dx->p + (n * dx->sn + d * dx->ss[0] + h * dx->ss[1] + w * dx->ss[2]) *
                                    (int64_t)es;
            for (int64_t c = 0; c < C; c++) {
                float v = acc[g->nhwc ? (n * S + i) * C + c : (n * C + c) * S + i];
                store_f(row + c * dx->sc * (int64_t)es, dx->dt, bias ? v + bias[c] : v);
            }
        }
}

/* NCHW data gradient of images [n0, n1): dcol tiles by GEMM, scattered
 * into the f32 accumulator (images own disjoint parts of it). */
typedef struct bwd_nchw_plan {
    const kn_conv_geom *g;
    const kn_conv_act *dy, *x;
    const char *wp;
    kn_dtype wdt, compute, cdt;
    float *acc;
    int64_t qt;
    int64_t chunk;  /* weight gradient: images per partial sum */
    float *partial; /* weight gradient: one (cout, Kg) sum per chunk */
    _Atomic int status;
} bwd_nchw_plan;

static kn_status bwd_data_images(bwd_nchw_plan *p, int64_t n0, int64_t n1)
{
    const kn_conv_geom *g = p->g;
    const kn_conv_act *dy = p->dy;
    int64_t G = g->groups, cing = g->cin / G, coutg = g->cout / G, kk = taps(g), Kg = kk * cing;
    int64_t K = G * Kg, Q = g->out[0] * g->out[1], OW = g->out[2], qt = p->qt;
    size_t dyes = kn_dtype_size(dy->dt);
    float *col = kn_alloc(sizeof(float) * (size_t)(K * qt * OW));
    kn_status s = col ? KN_OK : KN_ERR_NOMEM;
    for (int64_t n = n0; !s && n < n1; n++)
        for (int64_t q0 = 0; !s && q0 < Q; q0 += qt) {
            int64_t q1 = Q - q0 < qt ? Q : q0 + qt, pt = (q1 - q0) * OW;
            s = kn__gemm_batched(p->compute, true, false, Kg, pt, coutg, p->wp, p->wdt, Kg,
                                 dy->p + (n * dy->sn + q0 * OW) * (int64_t)dyes, dy->dt, dy->sc, 0.0f,
                                 col, KN_F32, pt, NULL, G, coutg * Kg, coutg * dy->sc, Kg * pt);
            if (s) break;
            nchw_job j = {.g = g, .n = n, .q0 = q0, .q1 = q1, .col = (char *)col, .ldcol = pt,
                          .dx = p->acc};
            kn_parallel_for(g->cin, grain_rows(kk * pt), col2im_nchw, &j);
        }
    kn_free(col);
    return s;
}

static void bwd_data_task(int64_t b, int64_t e, void *arg)
{
    bwd_nchw_plan *p = arg;
    kn_status s = bwd_data_images(p, b, e);
    keep_first_error(&p->status, s);
}

kn_status kn__conv_bwd_data(const kn_conv_geom *g, const kn_conv_act *dy_in,
                            const kn_conv_wgt *w, const kn_conv_act *dx, kn_dtype compute,
                            const void *bias_p, kn_dtype bias_dt)
{
    assert(!bias_p || bias_dt == KN_F32);
    (void)bias_dt;
    const float *bias = bias_p;
    int64_t G = g->groups, cing = g->cin / G, coutg = g->cout / G, kk = taps(g);
    int64_t Kg = kk * cing, K = G * Kg, ld = 0, ldx = 0;
    kn_conv_act dy;
    char *dy_tmp = NULL, *wp = NULL, *col = NULL;
    float *acc = NULL;
    kn_status s = gemm_form(g, dy_in, g->out, g->cout, &dy, &dy_tmp);
    if (s) return s;
    kn_dtype wdt = compute == KN_BF16 ? KN_BF16 : w->dt;
    size_t dyes = kn_dtype_size(dy.dt), xes = kn_dtype_size(dx->dt);
    bool pw = is_pointwise(g);
    if (g->nhwc && pw && uniform_rows(dx, g->in, g->n, &ldx)) {
        /* dx rows (M, C_in) = dy rows (M, C_out) · w (C_out, C_in), per group */
        int64_t M = g->n * g->in[0] * g->in[1] * g->in[2];
        uniform_rows(&dy, g->out, g->n, &ld);
        if (!(wp = kn_alloc(kn_dtype_size(wdt) * (size_t)(g->cout * Kg)))) s = KN_ERR_NOMEM;
        if (!s) pack_w_tap_c(g, w, wp, wdt);
        size_t wes = kn_dtype_size(wdt);
        for (int64_t gi = 0; gi < G && !s; gi++) {
            kn_epilogue e = {.bias = bias ? bias + gi * cing : NULL};
            s = kn__gemm(compute, false, false, M, cing, coutg, dy.p + gi * coutg * (int64_t)dyes,
                         dy.dt, ld, wp + gi * coutg * cing * (int64_t)wes, wdt, cing, 0.0f,
                         dx->p + gi * cing * (int64_t)xes, dx->dt, ldx, bias ? &e : NULL);
        }
        goto done;
    }
    if (!g->nhwc && pw && plane_contig(dx, g->in) && (!bias || dx->dt == KN_F32)) {
        /* dx[n] (C_in, P) = wᵀ (C_in, C_out) · dy[n] (C_out, P), per group */
        if (!(wp = kn_alloc(kn_dtype_size(wdt) * (size_t)(g->cout * Kg)))) s = KN_ERR_NOMEM;
        if (!s) pack_w_c_tap(g, w, wp, wdt);
        int64_t P = g->in[0] * g->in[1] * g->in[2];
        for (int64_t n = 0; n < g->n && !s; n++) {
            s = kn__gemm_batched(compute, true, false, cing, P, coutg, wp, wdt, cing,
                                 dy.p + n * dy.sn * (int64_t)dyes, dy.dt, dy.sc, 0.0f,
                                 dx->p + n * dx->sn * (int64_t)xes, dx->dt, dx->sc, NULL, G,
                                 coutg * cing, coutg * dy.sc, cing * dx->sc);
            for (int64_t c = 0; bias && !s && c < g->cin; c++) {
                float *row = (float *)dx->p + n * dx->sn + c * dx->sc;
                for (int64_t i = 0; i < P; i++)
                    row[i] += bias[c];
            }
        }
        goto done;
    }
    if (!g->nhwc && small_backward_data(g, &dy, w, dx, compute, bias, &s)) goto done;
    /* general: dcol tiles by GEMM, scattered into an f32 accumulator */
    int64_t S = g->in[0] * g->in[1] * g->in[2], nx = g->n * g->cin * S;
    bool in_place = dx->dt == KN_F32 && (g->nhwc ? uniform_rows(dx, g->in, g->n, &ldx) &&
                                                       ldx == g->cin
                                                 : plane_contig(dx, g->in) && dx->sc == S &&
                                                       (g->n == 1 || dx->sn == g->cin * S));
    acc = in_place ? (float *)dx->p : kn_alloc(sizeof(float) * (size_t)nx);
    if (!acc) {
        s = KN_ERR_NOMEM;
        goto done;
    }
    memset(acc, 0, sizeof(float) * (size_t)nx);
    if (!(wp = kn_alloc(kn_dtype_size(wdt) * (size_t)(g->cout * Kg)))) {
        s = KN_ERR_NOMEM;
        goto done;
    }
    if (g->nhwc) {
        int64_t M = g->n * g->out[0] * g->out[1] * g->out[2];
        int64_t rows = tile_rows(K, sizeof(float), M, 16);
        uniform_rows(&dy, g->out, g->n, &ld);
        pack_w_tap_c(g, w, wp, wdt);
        if (!(col = kn_alloc(sizeof(float) * (size_t)(rows * K)))) s = KN_ERR_NOMEM;
        for (int64_t m0 = 0; !s && m0 < M; m0 += rows) {
            int64_t mt = M - m0 < rows ? M - m0 : rows;
            s = kn__gemm_batched(compute, false, false, mt, Kg, coutg,
                                 dy.p + m0 * ld * (int64_t)dyes, dy.dt, ld, wp, wdt, Kg, 0.0f,
                                 col, KN_F32, K, NULL, G, coutg, coutg * Kg, Kg);
            if (s) break;
            int64_t chunk = 16;
            nhwc_job j = {.g = g, .m0 = m0, .col = col, .ldcol = K, .dx = acc, .c_chunk = chunk,
                          .rows = mt};
            kn_parallel_for((g->cin + chunk - 1) / chunk, 1, col2im_nhwc, &j);
        }
    } else {
        int64_t Q = g->out[0] * g->out[1], OW = g->out[2];
        pack_w_c_tap(g, w, wp, wdt);
        bwd_nchw_plan p = {.g = g, .dy = &dy, .wp = wp, .wdt = wdt, .compute = compute, .acc = acc,
                           .qt = q_tile(K, sizeof(float), OW, Q)};
        if (per_image_parallel(g, K, Q * OW, g->cout)) {
            atomic_init(&p.status, KN_OK);
            kn_parallel_for(g->n, image_grain(g->n), bwd_data_task, &p);
            s = (kn_status)atomic_load(&p.status);
        } else {
            s = bwd_data_images(&p, 0, g->n);
        }
    }
    if (!s && (!in_place || bias)) store_acc(g, acc, dx, bias);
done:
    if (acc && (char *)acc != dx->p) kn_free(acc);
    kn_free(col);
    kn_free(wp);
    kn_free(dy_tmp);
    return s;
}

/* NCHW weight gradient over images [n0, n1) into acc (coutg, Kg) per group:
 * acc_g = sum over images of dy_g (coutg, pt) · col_gᵀ (pt, Kg), col (c, kd, kh, kw). */
static kn_status bwd_weight_images(bwd_nchw_plan *p, int64_t n0, int64_t n1, float *acc)
{
    const kn_conv_geom *g = p->g;
    const kn_conv_act *dy = p->dy, *x = p->x;
    int64_t G = g->groups, cing = g->cin / G, coutg = g->cout / G, kk = taps(g), Kg = kk * cing;
    int64_t K = G * Kg, Q = g->out[0] * g->out[1], OW = g->out[2], qt = p->qt;
    size_t dyes = kn_dtype_size(dy->dt), xes = kn_dtype_size(x->dt), ces = kn_dtype_size(p->cdt);
    bool pw = is_pointwise(g);
    char *col = pw ? NULL : kn_alloc(ces * (size_t)(K * qt * OW));
    kn_status s = pw || col ? KN_OK : KN_ERR_NOMEM;
    for (int64_t n = n0; !s && n < n1; n++)
        for (int64_t q0 = 0; !s && q0 < Q; q0 += qt) {
            int64_t q1 = Q - q0 < qt ? Q : q0 + qt, pt = (q1 - q0) * OW;
            const char *b = col;
            kn_dtype bdt = p->cdt;
            int64_t ldb = pt, sb = Kg * pt;
            if (pw) {
                b = x->p + (n * x->sn + q0 * OW) * (int64_t)xes, bdt = x->dt;
                ldb = x->sc, sb = cing * x->sc;
            } else {
                nchw_job j = {.g = g, .x = x, .n = n, .q0 = q0, .q1 = q1, .col = col, .cdt = p->cdt,
                              .ldcol = pt};
                kn_parallel_for(K, grain_rows(pt), im2col_nchw, &j);
            }
            s = kn__gemm_batched(p->compute, false, true, coutg, Kg, pt,
                                 dy->p + (n * dy->sn + q0 * OW) * (int64_t)dyes, dy->dt, dy->sc, b, bdt,
                                 ldb, n > n0 || q0 ? 1.0f : 0.0f, acc, KN_F32, Kg, NULL, G,
                                 coutg * dy->sc, sb, coutg * Kg);
        }
    kn_free(col);
    return s;
}

static void bwd_weight_task(int64_t b, int64_t e, void *arg)
{
    bwd_nchw_plan *p = arg;
    float *acc = p->partial + b / p->chunk * (p->g->cout * taps(p->g) * (p->g->cin / p->g->groups));
    kn_status s = bwd_weight_images(p, b, e, acc);
    keep_first_error(&p->status, s);
}

kn_status kn__conv_bwd_weight(const kn_conv_geom *g, const kn_conv_act *x_in,
                              const kn_conv_act *dy_in, const kn_conv_wgt *dw, kn_dtype compute)
{
    int64_t G = g->groups, cing = g->cin / G, coutg = g->cout / G, kk = taps(g);
    int64_t Kg = kk * cing, K = G * Kg, ldy = 0, ldx = 0;
    kn_conv_act x, dy;
    char *x_tmp = NULL, *dy_tmp = NULL, *col = NULL;
    float *acc = NULL;
    kn_dtype cdt = compute == KN_BF16 ? KN_BF16 : x_in->dt;
    bool pw = is_pointwise(g);
    kn_status s = gemm_form(g, dy_in, g->out, g->cout, &dy, &dy_tmp);
    if (!s && pw) s = gemm_form(g, x_in, g->in, g->cin, &x, &x_tmp);
    if (!pw) x = *x_in;
    if (!s && !(acc = kn_alloc(sizeof(float) * (size_t)(g->cout * Kg)))) s = KN_ERR_NOMEM;
    size_t dyes = kn_dtype_size(dy.dt), xes = kn_dtype_size(x.dt), ces = kn_dtype_size(cdt);
    if (!s && g->nhwc) {
        /* acc_g (coutg, Kg) += dy_gᵀ (coutg, mt) · col_g (mt, Kg), col (kd, kh, kw, c) */
        int64_t M = g->n * g->out[0] * g->out[1] * g->out[2];
        uniform_rows(&dy, g->out, g->n, &ldy);
        if (pw) uniform_rows(&x, g->in, g->n, &ldx);
        int64_t rows = pw ? M : tile_rows(K, ces, M, 16);
        if (!pw && !(col = kn_alloc(ces * (size_t)(rows * K)))) s = KN_ERR_NOMEM;
        for (int64_t m0 = 0; !s && m0 < M; m0 += rows) {
            int64_t mt = M - m0 < rows ? M - m0 : rows;
            const char *b = pw ? x.p + m0 * ldx * (int64_t)xes : col;
            kn_dtype bdt = pw ? x.dt : cdt;
            int64_t ldb = pw ? ldx : K;
            if (!pw) {
                nhwc_job j = {.g = g, .x = &x, .m0 = m0, .col = col, .cdt = cdt, .ldcol = K};
                kn_parallel_for(mt, grain_rows(K), im2col_nhwc, &j);
            }
            s = kn__gemm_batched(compute, true, false, coutg, Kg, mt,
                                 dy.p + m0 * ldy * (int64_t)dyes, dy.dt, ldy, b, bdt, ldb,
                                 m0 ? 1.0f : 0.0f, acc, KN_F32, Kg, NULL, G, coutg, Kg,
                                 coutg * Kg);
        }
    } else if (!s && small_backward_weight(g, &x, &dy, compute, acc, &s)) {
        /* done by the direct kernel (acc in (oc, c, tap) order) */
    } else if (!s) {
        int64_t Q = g->out[0] * g->out[1], OW = g->out[2];
        bwd_nchw_plan p = {.g = g, .dy = &dy, .x = &x, .compute = compute, .cdt = cdt, .acc = acc,
                           .qt = pw ? Q : q_tile(K, ces, OW, Q)};
        if (per_image_parallel(g, K, Q * OW, g->cout)) {
            /* fixed chunks of images, each summed on its own, then added in
             * chunk order: the same bits on any thread count */
            p.chunk = image_grain(g->n);
            int64_t chunks = (g->n + p.chunk - 1) / p.chunk, per = g->cout * Kg;
            if (!(p.partial = kn_alloc(sizeof(float) * (size_t)(chunks * per)))) s = KN_ERR_NOMEM;
            atomic_init(&p.status, KN_OK);
            if (!s) kn_parallel_for(g->n, p.chunk, bwd_weight_task, &p);
            if (!s) s = (kn_status)atomic_load(&p.status);
            if (!s) sum_chunks(acc, p.partial, chunks, per);
            kn_free(p.partial);
        } else {
            s = bwd_weight_images(&p, 0, g->n, acc);
        }
    }
    if (!s) {
        /* acc order: NHWC (oc, tap, c), NCHW (oc, c, tap) -> dw (oc, c, taps) */
        size_t wes = kn_dtype_size(dw->dt);
        for (int64_t oc = 0; oc < g->cout; oc++)
            for (int64_t c = 0; c < cing; c++)
                for (int64_t t = 0; t < kk; t++) {
                    int64_t kd = t / (g->k[1] * g->k[2]), kh = t / g->k[2] % g->k[1],
                            kw = t % g->k[2];
                    float v = acc[g->nhwc ? (oc * kk + t) * cing + c : (oc * cing + c) * kk + t];
                    store_f(dw->p + (oc * dw->s0 + c * dw->s1 + kd * dw->sk[0] + kh * dw->sk[1] +
                                     kw * dw->sk[2]) *
                                        (int64_t)wes,
                            dw->dt, v);
                }
    }
    kn_free(acc);
    kn_free(col);
    kn_free(x_tmp);
    kn_free(dy_tmp);
    return s;
}
