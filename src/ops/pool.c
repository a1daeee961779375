/* pool.c — pooling and resampling over 1 to 3 spatial dims, NCHW or NHWC.
 * Every op acts on each spatial dim separately: an output index reads a list
 * of input "taps" per dim (a window, an adaptive bin, a nearest or bilinear
 * source). Linear ops (avg, adaptive avg, nearest, bilinear) weight the taps,
 * so their gradient is the same gather with the taps transposed; max ops pick
 * the largest tap and scatter back through max_pool_grad. */
#include "pool.h"

#if KILN_X86
#include "../kernels/pool_fast.h"
#endif

#include <math.h>

enum {
    K_MAX = KN_POOL_MAX,
    K_AVG = KN_POOL_AVG,
    K_ADAPTIVE_MAX = KN_POOL_ADAPTIVE_MAX,
    K_ADAPTIVE_AVG = KN_POOL_ADAPTIVE_AVG,
    K_NEAREST = KN_POOL_NEAREST,
    K_BILINEAR = KN_POOL_BILINEAR,
    K_COUNT = KN_POOL_KIND_COUNT
};
static const char *const kind_names[K_COUNT] = {
    "max_pool",           "avg_pool",           "adaptive_max_pool2d", "adaptive_avg_pool2d",
    "upsample_nearest2d", "upsample_bilinear2d"};
static const int kinds[K_COUNT] = {K_MAX,          K_AVG,     K_ADAPTIVE_MAX,
                                   K_ADAPTIVE_AVG, K_NEAREST, K_BILINEAR};
typedef kn_pool_attrs pool_attrs;

#define PA(field, type) KN_ATTR(pool_attrs, field, type)
static const kn_attr_desc window_schema[] = {
    PA(kernel, KN_ATTR_INTS),  PA(stride, KN_ATTR_INTS),    PA(pad_begin, KN_ATTR_INTS),
    PA(pad_end, KN_ATTR_INTS), PA(ceil_mode, KN_ATTR_BOOL), PA(count_include_pad, KN_ATTR_BOOL),
    PA(layout, KN_ATTR_INT)};
static const kn_attr_desc global_schema[] = {PA(layout, KN_ATTR_INT)};
static const kn_attr_desc resize_schema[] = {PA(out_size, KN_ATTR_INTS), PA(layout, KN_ATTR_INT),
                                             PA(align_corners, KN_ATTR_BOOL)};
static const kn_attr_desc grad_schema[] = {
    PA(kernel, KN_ATTR_INTS),  PA(stride, KN_ATTR_INTS),    PA(pad_begin, KN_ATTR_INTS),
    PA(pad_end, KN_ATTR_INTS), PA(ceil_mode, KN_ATTR_BOOL), PA(count_include_pad, KN_ATTR_BOOL),
    PA(layout, KN_ATTR_INT),   PA(out_size, KN_ATTR_INTS),  PA(align_corners, KN_ATTR_BOOL),
    PA(kind, KN_ATTR_INT)};

static int op_kind(const kn_op_def *def, const pool_attrs *at)
{
    return def->data ? *(const int *)def->data : (int)at->kind;
}

static bool kind_is_max(int k)
{
    return k == K_MAX || k == K_ADAPTIVE_MAX;
}

/* ------------------------------------------------------------ geometry */
/* x seen as (N, C, S0, S1, S2): sizes and strides, missing spatial dims 1. */
typedef struct geom {
    int nsp;
    int64_t size[5], stride[5];
} geom;

static void logical(const kn_tensor *t, int64_t layout, geom *g)
{
    int nsp = t->ndim - 2;
    g->nsp = nsp;
    int c_axis = layout == KN_LAYOUT_NHWC ? t->ndim - 1 : 1, sp0 = layout == KN_LAYOUT_NHWC ? 1 : 2;
    g->size[0] = t->shape[0], g->stride[0] = t->strides[0];
    g->size[1] = t->shape[c_axis], g->stride[1] = t->strides[c_axis];
    for (int d = 0; d < 3; d++) {
        g->size[2 + d] = d < nsp ? t->shape[sp0 + d] : 1;
        g->stride[2 + d] = d < nsp ? t->strides[sp0 + d] : 0;
    }
}

static void physical_shape(int64_t layout, int nsp, int64_t n, int64_t c, const int64_t *sp,
                           kn_out_meta *out)
{
    out->ndim = nsp + 2;
    out->shape[0] = n;
    int sp0 = layout == KN_LAYOUT_NHWC ? 1 : 2;
    out->shape[layout == KN_LAYOUT_NHWC ? nsp + 1 : 1] = c;
    for (int d = 0; d < nsp; d++)
        out->shape[sp0 + d] = sp[d];
}

/* One spatial dim of one op. */
typedef struct dim_spec {
    int kind;
    int64_t in, out, k, s, pb, pe;
    bool include_pad, align_corners, single; /* single: bilinear math in float */
} dim_spec;

/* PyTorch's pooling output size with ceil_mode: the last window must start
 * inside the input or the left padding. */
static int64_t window_out(int64_t in, int64_t k, int64_t s, int64_t pb, int64_t pe, bool ceil_mode)
{
    int64_t span = in + pb + pe - k;
    int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (out - 1) * s >= in + pb) out--;
    return out;
}

static kn_status check_window(const char *who, const pool_attrs *at, int nsp, const int64_t *in,
                              int64_t *out)
{
    const kn_ints *f[4] = {&at->kernel, &at->stride, &at->pad_begin, &at->pad_end};
    static const char *names[4] = {"kernel", "stride", "pad_begin", "pad_end"};
    for (int i = 0; i < 4; i++)
        if (f[i]->n != nsp)
            return kn__error(KN_ERR_ARG, "%s: %s has %d values, expected %d (one per spatial dim)",
                             who, names[i], f[i]->n, nsp);
    for (int d = 0; d < nsp; d++) {
        int64_t k = at->kernel.v[d], s = at->stride.v[d] ? at->stride.v[d] : k;
        int64_t pb = at->pad_begin.v[d], pe = at->pad_end.v[d];
        if (k < 1 || k > (INT64_MAX >> 4))
            return kn__error(KN_ERR_ARG, "%s: kernel[%d] is %lld, expected >= 1", who, d,
                             (long long)k);
        if (s < 1 || s > (INT64_MAX >> 4))
            return kn__error(KN_ERR_ARG, "%s: stride[%d] is %lld, expected >= 1 (0 = kernel)", who,
                             d, (long long)at->stride.v[d]);
        if (pb < 0 || pe < 0 || pb >= k || pe >= k)
            return kn__error(KN_ERR_ARG,
                             "%s: pads[%d] are (%lld, %lld), expected 0 <= pad < kernel %lld", who,
                             d, (long long)pb, (long long)pe, (long long)k);
        if (in[d] < 1)
            return kn__error(KN_ERR_SHAPE, "%s: spatial dim %d has size %lld, expected >= 1", who,
                             d, (long long)in[d]);
        if (in[d] + pb + pe < k)
            return kn__error(KN_ERR_SHAPE,
                             "%s: kernel[%d] %lld is larger than the padded input %lld", who, d,
                             (long long)k, (long long)(in[d] + pb + pe));
        out[d] = window_out(in[d], k, s, pb, pe, at->ceil_mode);
    }
    return KN_OK;
}

static kn_status check_resize(const char *who, const pool_attrs *at, const int64_t *in,
                              int64_t *out)
{
    if (at->out_size.n != 2)
        return kn__error(KN_ERR_ARG, "%s: output size has %d values, expected 2 (out_h, out_w)",
                         who, at->out_size.n);
    for (int d = 0; d < 2; d++) {
        int64_t o = at->out_size.v[d], prod;
        if (o < 1)
            return kn__error(KN_ERR_ARG, "%s: output size %lld, expected >= 1", who, (long long)o);
        if (in[d] < 1)
            return kn__error(KN_ERR_SHAPE, "%s: spatial dim %d has size %lld, expected >= 1", who,
                             d, (long long)in[d]);
        if (kn__mul_overflow(o, in[d], &prod) || kn__mul_overflow(prod, 4, &prod))
            return kn__error(KN_ERR_SHAPE, "%s: output size %lld overflows", who, (long long)o);
        out[d] = o;
    }
    return KN_OK;
}

/* Validates x and attrs for op kind `kind`; fills x's logical geometry and
 * the output spatial sizes. */
static kn_status pool_check(const char *who, int kind, const kn_tensor *x, const pool_attrs *at,
                            geom *g, int64_t *out_sp)
{
    if (!kn_dtype_is_float(x->dtype))
        return kn__error(KN_ERR_DTYPE, "%s: input has dtype %s, expected a float dtype", who,
                         kn_dtype_name(x->dtype));
    bool windowed = kind == K_MAX || kind == K_AVG;
    if (windowed ? (x->ndim < 3 || x->ndim > 5) : x->ndim != 4)
        return kn__error(KN_ERR_SHAPE, "%s: input has %d dims, expected %s", who, x->ndim,
                         windowed ? "3 to 5 (N, C, 1 to 3 spatial dims)" : "4 (N, C, H, W)");
    if (at->layout != KN_LAYOUT_NCHW && at->layout != KN_LAYOUT_NHWC)
        return kn__error(KN_ERR_ARG, "%s: layout %lld is not NCHW (0) or NHWC (1)", who,
                         (long long)at->layout);
    logical(x, at->layout, g);
    return windowed ? check_window(who, at, g->nsp, g->size + 2, out_sp)
                    : check_resize(who, at, g->size + 2, out_sp);
}

static kn_status pool_infer(const kn_op_args *a, kn_out_meta *out)
{
    const pool_attrs *at = a->attrs;
    int kind = op_kind(a->def, at);
    geom g;
    int64_t sp[3];
    kn_status s = pool_check(a->def->name, kind, a->in[0], at, &g, sp);
    if (s) return s;
    physical_shape(at->layout, g.nsp, g.size[0], g.size[1], sp, out);
    out->dtype = a->in[0]->dtype;
    if (kn__shape_numel(out->ndim, out->shape) < 0)
        return kn__error(KN_ERR_SHAPE, "%s: output shape overflows", a->def->name);
    return KN_OK;
}

/* ------------------------------------------------------------ taps */
/* Taps of output index o along one dim: input indices and weights. Returns
 * the count; writes only when idx != NULL. */
static int64_t window_taps(const dim_spec *d, int64_t o, int64_t *idx, double *w)
{
    int64_t start = o * d->s - d->pb, end = start + d->k;
    if (end > d->in + d->pe) end = d->in + d->pe;
    int64_t padded = end - start;
    if (start < 0) start = 0;
    if (end > d->in) end = d->in;
    int64_t n = end - start;
    double wt = 1.0 / (double)(d->include_pad ? padded : n);
    for (int64_t i = 0; idx && i < n; i++)
        idx[i] = start + i, w[i] = wt;
    return n;
}

static int64_t adaptive_taps(const dim_spec *d, int64_t o, int64_t *idx, double *w)
{
    int64_t start = o * d->in / d->out, end = ((o + 1) * d->in + d->out - 1) / d->out;
    int64_t n = end - start;
    for (int64_t i = 0; idx && i < n; i++)
        idx[i] = start + i, w[i] = 1.0 / (double)n;
    return n;
}

/* PyTorch 'nearest': src = floor(dst * (in / out)), computed in float. */
static int64_t nearest_taps(const dim_spec *d, int64_t o, int64_t *idx, double *w)
{
    int64_t src;
    if (d->in == d->out)
        src = o;
    else if (d->out == 2 * d->in)
        src = o >> 1;
    else {
        float scale = (float)d->in / (float)d->out;
        src = (int64_t)floorf((float)o * scale);
        if (src > d->in - 1) src = d->in - 1;
    }
    if (idx) idx[0] = src, w[0] = 1.0;
    return 1;
}

/* Bilinear source index and weights as PyTorch computes them (in float for
 * single precision inputs, double for f64). */
static int64_t bilinear_taps(const dim_spec *d, int64_t o, int64_t *idx, double *w)
{
    int64_t i0;
    double l1;
    if (d->in == d->out) {
        i0 = o, l1 = 0;
    } else if (d->single) {
        float scale = d->align_corners
                          ? (d->out > 1 ? (float)(d->in - 1) / (float)(d->out - 1) : 0.f)
                          : (float)d->in / (float)d->out;
        float src = d->align_corners ? scale * (float)o : scale * ((float)o + 0.5f) - 0.5f;
        if (src < 0) src = 0;
        i0 = (int64_t)floorf(src);
        if (i0 > d->in - 1) i0 = d->in - 1;
        float lf = src - (float)i0;
        l1 = lf < 0 ? 0 : lf > 1 ? 1 : lf;
    } else {
        double scale = d->align_corners
                           ? (d->out > 1 ? (double)(d->in - 1) / (double)(d->out - 1) : 0)
                           : (double)d->in / (double)d->out;
        double src = d->align_corners ? scale * (double)o : scale * ((double)o + 0.5) - 0.5;
        if (src < 0) src = 0;
        i0 = (int64_t)floor(src);
        if (i0 > d->in - 1) i0 = d->in - 1;
        l1 = src - (double)i0;
        l1 = l1 < 0 ? 0 : l1 > 1 ? 1 : l1;
    }
    int64_t i1 = i0 + (i0 < d->in - 1 ? 1 : 0);
    if (idx) {
        idx[0] = i0, w[0] = d->single ? (double)(1.f - (float)l1) : 1.0 - l1;
        idx[1] = i1, w[1] = l1;
    }
    return 2;
}

static int64_t dim_taps(const dim_spec *d, int64_t o, int64_t *idx, double *w)
{
    switch (d->kind) {
    case K_MAX:
    case K_AVG:
        return window_taps(d, o, idx, w);
    case K_ADAPTIVE_MAX:
    case K_ADAPTIVE_AVG:
        return adaptive_taps(d, o, idx, w);
    case K_NEAREST:
        return nearest_taps(d, o, idx, w);
    default:
        return bilinear_taps(d, o, idx, w);
    }
}

/* Taps of one dim in CSR form: those of output o are [off[o], off[o+1]). */
typedef struct taps {
    int64_t n_out;
    int64_t *off, *idx;
    double *w;
} taps;

_Static_assert(sizeof(double) == sizeof(int64_t), "taps share one int64_t buffer");

/* All three dims' taps (and their transposes) in one allocation. */
typedef struct plan {
    taps t[3];
    void *mem;
} plan;

static void plan_free(plan *p)
{
    kn_free(p->mem);
}

static void specs_from(int kind, const pool_attrs *at, const geom *gx, const int64_t *out_sp,
                       kn_dtype dt, dim_spec *ds)
{
    for (int d = 0; d < 3; d++) {
        dim_spec s = {.kind = kind,
                      .in = gx->size[2 + d],
                      .out = d < gx->nsp ? out_sp[d] : 1,
                      .k = 1,
                      .s = 1,
                      .single = dt != KN_F64};
        if (d < gx->nsp && (kind == K_MAX || kind == K_AVG)) {
            s.k = at->kernel.v[d];
            s.s = at->stride.v[d] ? at->stride.v[d] : s.k;
            s.pb = at->pad_begin.v[d], s.pe = at->pad_end.v[d];
            s.include_pad = at->count_include_pad;
        }
        if (d >= gx->nsp) s.kind = K_AVG; /* a unit dim: one tap of weight 1 */
        s.align_corners = at->align_corners;
        ds[d] = s;
    }
}

/* Builds the taps of the three dims; with `transpose`, lists for each input
 * index the (output, weight) pairs that read it, outputs ascending. */
static kn_status plan_build(const dim_spec *ds, bool transpose, plan *p)
{
    int64_t count[3], total = 0;
    for (int d = 0; d < 3; d++) {
        count[d] = 0;
        for (int64_t o = 0; o < ds[d].out; o++)
            count[d] += dim_taps(&ds[d], o, NULL, NULL);
        total += ds[d].out + 1 + 2 * count[d] + (transpose ? ds[d].in + 1 + 2 * count[d] : 0);
    }
    p->mem = kn_alloc((size_t)total * sizeof(int64_t));
    if (!p->mem) return kn_last_status();
    int64_t *cur = p->mem;
    for (int d = 0; d < 3; d++) {
        const dim_spec *s = &ds[d];
        taps *t = &p->t[d];
        int64_t *off = cur, *idx = cur + s->out + 1;
        double *w = (double *)(idx + count[d]);
        cur = (int64_t *)(w + count[d]);
        off[0] = 0;
        for (int64_t o = 0; o < s->out; o++)
            off[o + 1] = off[o] + dim_taps(s, o, idx + off[o], w + off[o]);
        *t = (taps){s->out, off, idx, w};
        if (!transpose) continue;
        /* counting sort of the taps by input index */
        int64_t *toff = cur, *tidx = cur + s->in + 1;
        double *tw = (double *)(tidx + count[d]);
        cur = (int64_t *)(tw + count[d]);
        memset(toff, 0, sizeof(int64_t) * (size_t)(s->in + 1));
        for (int64_t j = 0; j < count[d]; j++)
            toff[idx[j] + 1]++;
        for (int64_t i = 0; i < s->in; i++)
            toff[i + 1] += toff[i];
        for (int64_t o = 0; o < s->out; o++)
            for (int64_t j = off[o]; j < off[o + 1]; j++) {
                int64_t i = idx[j], at = toff[i]++;
                tidx[at] = o, tw[at] = w[j];
            }
        for (int64_t i = s->in; i > 0; i--)
            toff[i] = toff[i - 1]; /* undo the fill shift */
        toff[0] = 0;
        *t = (taps){s->in, toff, tidx, tw};
    }
    return KN_OK;
}

/* ------------------------------------------------------------ kernels */
/* Gather: dst (N, C, D0, D1, D2) from src (N, C, S0, S1, S2), both in any
 * strides; dst[n,c,o] = sum or max over the taps of o (per dim) of src. */
typedef struct gather_ctx {
    const kn_tensor *src;
    kn_tensor *dst;
    geom gs, gd;
    const plan *p;
    bool is_max;
} gather_ctx;

static double gather_one(const gather_ctx *c, const char *sbase, size_t es, const int64_t *o)
{
    const taps *t = c->p->t;
    double acc = c->is_max ? -INFINITY : 0.0;
    for (int64_t j0 = t[0].off[o[0]]; j0 < t[0].off[o[0] + 1]; j0++) {
        const char *p0 = sbase + t[0].idx[j0] * c->gs.stride[2] * (int64_t)es;
        for (int64_t j1 = t[1].off[o[1]]; j1 < t[1].off[o[1] + 1]; j1++) {
            const char *p1 = p0 + t[1].idx[j1] * c->gs.stride[3] * (int64_t)es;
            double w01 = t[0].w[j0] * t[1].w[j1];
            for (int64_t j2 = t[2].off[o[2]]; j2 < t[2].off[o[2] + 1]; j2++) {
                double v =
                    kn__load(c->src->dtype, p1 + t[2].idx[j2] * c->gs.stride[4] * (int64_t)es);
                if (!c->is_max)
                    acc += w01 * t[2].w[j2] * v;
                else if (v > acc || isnan(v))
                    acc = v;
            }
        }
    }
    return acc;
}

static void gather_rows(int64_t begin, int64_t end, void *arg)
{
    const gather_ctx *c = arg;
    size_t es = kn_dtype_size(c->src->dtype), ed = kn_dtype_size(c->dst->dtype);
    const char *sb = kn__tensor_ptr(c->src);
    char *db = kn__tensor_ptr(c->dst);
    const int64_t *ds = c->gd.size;
    for (int64_t r = begin; r < end; r++) { /* r indexes (n, c, o0) */
        int64_t o[3] = {r % ds[2], 0, 0}, nc = r / ds[2];
        int64_t n = nc / ds[1], ch = nc % ds[1];
        const char *sbase = sb + (n * c->gs.stride[0] + ch * c->gs.stride[1]) * (int64_t)es;
        char *dbase = db + (n * c->gd.stride[0] + ch * c->gd.stride[1] + o[0] * c->gd.stride[2]) *
                               (int64_t)ed;
        for (o[1] = 0; o[1] < ds[3]; o[1]++)
            for (o[2] = 0; o[2] < ds[4]; o[2]++)
                kn__store(c->dst->dtype,
                          dbase + (o[1] * c->gd.stride[3] + o[2] * c->gd.stride[4]) * (int64_t)ed,
                          gather_one(c, sbase, es, o));
    }
}

static void gather_run(const kn_tensor *src, kn_tensor *dst, int64_t layout, const plan *p,
                       bool is_max)
{
    gather_ctx c = {src, dst, {0}, {0}, p, is_max};
    logical(src, layout, &c.gs);
    logical(dst, layout, &c.gd);
    int64_t rows = c.gd.size[0] * c.gd.size[1] * c.gd.size[2];
    int64_t per_row = c.gd.size[3] * c.gd.size[4] + 1;
    int64_t grain = 4096 / per_row;
    if (rows > 0) kn_parallel_for(rows, grain < 1 ? 1 : grain, gather_rows, &c);
}

/* The forward of every pool op: y from x with the op's taps. */
static kn_status pool_ref(const kn_op_args *a)
{
    const pool_attrs *at = a->attrs;
    int kind = op_kind(a->def, at);
    geom gx, gy;
    logical(a->in[0], at->layout, &gx);
    logical(a->out[0], at->layout, &gy);
    dim_spec ds[3];
    specs_from(kind, at, &gx, gy.size + 2, a->in[0]->dtype, ds);
    plan p;
    if (plan_build(ds, false, &p)) return kn_last_status();
    gather_run(a->in[0], a->out[0], at->layout, &p, kind_is_max(kind));
    plan_free(&p);
    return KN_OK;
}

#if KILN_X86
/* ---- AVX-512 2-D max/avg pooling and max_pool_grad (src/kernels/x86/avx512/pool.c) */
static bool pool2d_job(const kn_op_args *a, int kind, kn_pool2d_job *j)
{
    const pool_attrs *at = a->attrs;
    if ((kind != K_MAX && kind != K_AVG) || a->in[0]->ndim != 4) return false;
    *j = (kn_pool2d_job){.x = a->in[0],
                         .gy = a->n_in > 1 ? a->in[1] : NULL,
                         .y = a->out[0],
                         .nhwc = at->layout == KN_LAYOUT_NHWC,
                         .is_max = kind == K_MAX,
                         .include_pad = at->count_include_pad};
    for (int d = 0; d < 2; d++) {
        j->k[d] = at->kernel.v[d], j->s[d] = at->stride.v[d] ? at->stride.v[d] : at->kernel.v[d];
        j->pb[d] = at->pad_begin.v[d], j->pe[d] = at->pad_end.v[d];
    }
    return true;
}

static bool pool_avx512_accepts(const kn_op_args *a)
{
    kn_pool2d_job j;
    return pool2d_job(a, op_kind(a->def, a->attrs), &j) && kn__pool2d_avx512_accepts(&j);
}

static kn_status pool_avx512(const kn_op_args *a)
{
    kn_pool2d_job j;
    pool2d_job(a, op_kind(a->def, a->attrs), &j);
    kn__pool2d_avx512_run(&j);
    return KN_OK;
}

static bool max_pool_grad_avx512_accepts(const kn_op_args *a)
{
    kn_pool2d_job j;
    return pool2d_job(a, (int)((const pool_attrs *)a->attrs)->kind, &j) &&
           kn__maxpool2d_grad_avx512_accepts(&j);
}

static kn_status max_pool_grad_avx512(const kn_op_args *a)
{
    kn_pool2d_job j;
    pool2d_job(a, K_MAX, &j);
    kn__maxpool2d_grad_avx512_run(&j);
    return KN_OK;
}
#endif

static const kn_impl pool_impls[] = {
#if KILN_X86
    {"avx512", KN_ISA_AVX512, pool_avx512_accepts, pool_avx512},
#endif
    {"ref", KN_ISA_REF, NULL, pool_ref},
    {0}};

/* ---- gradient ops: inputs (x, grad_y), output grad_x shaped like x */
static kn_status grad_infer(const kn_op_args *a, kn_out_meta *out)
{
    const pool_attrs *at = a->attrs;
    const char *who = a->def->name;
    int kind = (int)at->kind;
    bool want_max = a->def == &kn_op_max_pool_grad;
    if (at->kind < 0 || at->kind >= K_COUNT || kind_is_max(kind) != want_max)
        return kn__error(KN_ERR_ARG, "%s: kind %lld is not %s", who, (long long)at->kind,
                         want_max ? "max_pool (0) or adaptive_max_pool2d (2)"
                                  : "avg_pool (1), adaptive_avg_pool2d (3), upsample_nearest2d (4) "
                                    "or upsample_bilinear2d (5)");
    geom g;
    int64_t sp[3];
    kn_status s = pool_check(who, kind, a->in[0], at, &g, sp);
    if (s) return s;
    kn_out_meta want;
    physical_shape(at->layout, g.nsp, g.size[0], g.size[1], sp, &want);
    const kn_tensor *gy = a->in[1];
    if (gy->ndim != want.ndim ||
        memcmp(gy->shape, want.shape, sizeof(int64_t) * (size_t)want.ndim)) {
        char sa[96], sb[96];
        return kn__error(KN_ERR_SHAPE, "%s: grad_out has shape %s, expected %s (the %s output)",
                         who, kn__shape_str(gy->ndim, gy->shape, sa, sizeof sa),
                         kn__shape_str(want.ndim, want.shape, sb, sizeof sb), kind_names[kind]);
    }
    if ((s = kn__check_same_dtype(a, 0, 1))) return s;
    out->dtype = a->in[0]->dtype;
    out->ndim = a->in[0]->ndim;
    memcpy(out->shape, a->in[0]->shape, sizeof(int64_t) * (size_t)out->ndim);
    return KN_OK;
}

/* resample_grad: grad_x = the transposed taps gathered over grad_y. */
static kn_status resample_grad_ref(const kn_op_args *a)
{
    const pool_attrs *at = a->attrs;
    geom gx, gy;
    logical(a->in[0], at->layout, &gx);
    logical(a->in[1], at->layout, &gy);
    dim_spec ds[3];
    specs_from((int)at->kind, at, &gx, gy.size + 2, a->in[0]->dtype, ds);
    plan p;
    if (plan_build(ds, true, &p)) return kn_last_status();
    gather_run(a->in[1], a->out[0], at->layout, &p, false);
    plan_free(&p);
    return KN_OK;
}

/* max_pool_grad: each plane (n, c) of grad_x accumulates, in output order,
 * grad_y at the first maximum of each window (the last NaN, like PyTorch). */
typedef struct maxgrad_ctx {
    const kn_tensor *x, *gy;
    kn_tensor *gx;
    geom g_x, g_y, g_gx;
    const plan *p;
    double *acc; /* N*C*S0*S1*S2, logical order */
} maxgrad_ctx;

static int64_t argmax_one(const maxgrad_ctx *c, const char *xbase, size_t es, const int64_t *o)
{
    const taps *t = c->p->t;
    double best = -INFINITY;
    int64_t arg = -1;
    for (int64_t j0 = t[0].off[o[0]]; j0 < t[0].off[o[0] + 1]; j0++)
        for (int64_t j1 = t[1].off[o[1]]; j1 < t[1].off[o[1] + 1]; j1++)
            for (int64_t j2 = t[2].off[o[2]]; j2 < t[2].off[o[2] + 1]; j2++) {
                int64_t i0 = t[0].idx[j0], i1 = t[1].idx[j1], i2 = t[2].idx[j2];
                const char *px = xbase + (i0 * c->g_x.stride[2] + i1 * c->g_x.stride[3] +
                                          i2 * c->g_x.stride[4]) *
                                             (int64_t)es;
                double v = kn__load(c->x->dtype, px);
                if (v > best || isnan(v) || arg < 0) {
                    if (v > best || isnan(v)) best = v;
                    arg = (i0 * c->g_x.size[3] + i1) * c->g_x.size[4] + i2;
                }
            }
    return arg;
}

static void maxgrad_planes(int64_t begin, int64_t end, void *arg)
{
    const maxgrad_ctx *c = arg;
    size_t es = kn_dtype_size(c->x->dtype);
    const int64_t *ys = c->g_y.size, *xs = c->g_x.size;
    int64_t plane = xs[2] * xs[3] * xs[4];
    for (int64_t pl = begin; pl < end; pl++) {
        int64_t n = pl / xs[1], ch = pl % xs[1];
        double *acc = c->acc + pl * plane;
        for (int64_t i = 0; i < plane; i++)
            acc[i] = 0;
        const char *xbase =
            kn__tensor_ptr(c->x) + (n * c->g_x.stride[0] + ch * c->g_x.stride[1]) * (int64_t)es;
        const char *gbase =
            kn__tensor_ptr(c->gy) + (n * c->g_y.stride[0] + ch * c->g_y.stride[1]) * (int64_t)es;
        int64_t o[3];
        for (o[0] = 0; o[0] < ys[2]; o[0]++)
            for (o[1] = 0; o[1] < ys[3]; o[1]++)
                for (o[2] = 0; o[2] < ys[4]; o[2]++) {
                    int64_t at = argmax_one(c, xbase, es, o);
                    const char *pg = gbase + (o[0] * c->g_y.stride[2] + o[1] * c->g_y.stride[3] +
                                              o[2] * c->g_y.stride[4]) *
                                                 (int64_t)es;
                    if (at >= 0) acc[at] += kn__load(c->gy->dtype, pg);
                }
        char *obase =
            kn__tensor_ptr(c->gx) + (n * c->g_gx.stride[0] + ch * c->g_gx.stride[1]) * (int64_t)es;
        for (int64_t i = 0; i < plane; i++) {
            int64_t i2 = i % xs[4], i1 = (i / xs[4]) % xs[3], i0 = i / (xs[4] * xs[3]);
            kn__store(
                c->gx->dtype,
                obase + (i0 * c->g_gx.stride[2] + i1 * c->g_gx.stride[3] + i2 * c->g_gx.stride[4]) *
                            (int64_t)es,
                acc[i]);
        }
    }
}

static kn_status max_pool_grad_ref(const kn_op_args *a)
{
    const pool_attrs *at = a->attrs;
    maxgrad_ctx c = {a->in[0], a->in[1], a->out[0], {0}, {0}, {0}, NULL, NULL};
    logical(c.x, at->layout, &c.g_x);
    logical(c.gy, at->layout, &c.g_y);
    logical(c.gx, at->layout, &c.g_gx);
    dim_spec ds[3];
    specs_from((int)at->kind, at, &c.g_x, c.g_y.size + 2, c.x->dtype, ds);
    plan p;
    if (plan_build(ds, false, &p)) return kn_last_status();
    int64_t n = kn_tensor_numel(c.x);
    c.p = &p;
    c.acc = kn_alloc((size_t)(n ? n : 1) * sizeof(double));
    if (!c.acc) {
        plan_free(&p);
        return kn_last_status();
    }
    int64_t planes = c.g_x.size[0] * c.g_x.size[1];
    if (n > 0) kn_parallel_for(planes, 1, maxgrad_planes, &c);
    kn_free(c.acc);
    plan_free(&p);
    return KN_OK;
}

static const kn_impl resample_grad_impls[] = {{"ref", KN_ISA_REF, NULL, resample_grad_ref}, {0}};
static const kn_impl max_pool_grad_impls[] = {
#if KILN_X86
    {"avx512", KN_ISA_AVX512, max_pool_grad_avx512_accepts, max_pool_grad_avx512},
#endif
    {"ref", KN_ISA_REF, NULL, max_pool_grad_ref},
    {0}};

/* ------------------------------------------------------------ gradients */
static const kn_op_def *forward_def(int kind)
{
    switch (kind) {
    case K_AVG:
        return &kn_op_avg_pool;
    case K_ADAPTIVE_AVG:
        return &kn_op_adaptive_avg_pool2d;
    case K_NEAREST:
        return &kn_op_upsample_nearest2d;
    default:
        return &kn_op_upsample_bilinear2d;
    }
}

/* Forward ops: grad_x = max_pool_grad or resample_grad (x, grad_y). */
static kn_status pool_grad(const kn_grad_args *g)
{
    pool_attrs at = *(const pool_attrs *)g->attrs;
    at.kind = op_kind(g->def, &at);
    kn_tensor *in[2] = {g->in[0], g->grad_out[0]};
    const kn_op_def *def = kind_is_max((int)at.kind) ? &kn_op_max_pool_grad : &kn_op_resample_grad;
    g->grad_in[0] = kn__op_call1(def, 2, in, &at);
    return g->grad_in[0] ? KN_OK : kn_last_status();
}

/* resample_grad is linear in grad_y; its adjoint is the forward op. */
static kn_status resample_grad_grad(const kn_grad_args *g)
{
    const pool_attrs *at = g->attrs;
    if (!g->needs_grad[1]) return KN_OK;
    kn_tensor *in[1] = {g->grad_out[0]};
    g->grad_in[1] = kn__op_call1(forward_def((int)at->kind), 1, in, at);
    return g->grad_in[1] ? KN_OK : kn_last_status();
}

/* ------------------------------------------------------------ op entries */
#define POOL_OP(op_name, kind_, schema)                                                            \
    const kn_op_def kn_op_##op_name = {.name = #op_name,                                           \
                                       .n_in = 1,                                                  \
                                       .n_out = 1,                                                 \
                                       .attrs = schema,                                            \
                                       .n_attrs = KN_ARRAY_LEN(schema),                            \
                                       .attrs_size = sizeof(pool_attrs),                           \
                                       .dtypes = KN_DTYPES_FLOAT,                                  \
                                       .infer = pool_infer,                                        \
                                       .impls = pool_impls,                                        \
                                       .grad = pool_grad,                                          \
                                       .data = &kinds[kind_],                                      \
                                       .amp = KN_AMP_NONE,                                         \
                                       .layout = KN_LAYOUT_FIXED}

POOL_OP(max_pool, K_MAX, window_schema);
POOL_OP(avg_pool, K_AVG, window_schema);
POOL_OP(adaptive_max_pool2d, K_ADAPTIVE_MAX, resize_schema);
POOL_OP(adaptive_avg_pool2d, K_ADAPTIVE_AVG, resize_schema);
POOL_OP(upsample_nearest2d, K_NEAREST, resize_schema);
POOL_OP(upsample_bilinear2d, K_BILINEAR, resize_schema);

/* Internal: gradient of max_pool and adaptive_max_pool2d (attrs.kind says
 * which). Not differentiable: its value is piecewise constant in x, and
 * its gradient in grad_y would need the argmax positions as a tensor. */
const kn_op_def kn_op_max_pool_grad = {
    .name = "max_pool_grad",
    .n_in = 2,
    .n_out = 1,
    .nondiff_in = 3u,
    .attrs = grad_schema,
    .n_attrs = KN_ARRAY_LEN(grad_schema),
    .attrs_size = sizeof(pool_attrs),
    .dtypes = KN_DTYPES_FLOAT,
    .infer = grad_infer,
    .impls = max_pool_grad_impls,
    .amp = KN_AMP_NONE,
    .layout = KN_LAYOUT_FIXED,
};

/* Internal: gradient of the linear ops (avg_pool, adaptive_avg_pool2d,
 * upsample_nearest2d, upsample_bilinear2d; attrs.kind says which). x gives
 * only the shape. Its own gradient is the forward op. */
const kn_op_def kn_op_resample_grad = {
    .name = "resample_grad",
    .n_in = 2,
    .n_out = 1,
    .nondiff_in = 1u,
    .attrs = grad_schema,
    .n_attrs = KN_ARRAY_LEN(grad_schema),
    .attrs_size = sizeof(pool_attrs),
    .dtypes = KN_DTYPES_FLOAT,
    .infer = grad_infer,
    .impls = resample_grad_impls,
    .grad = resample_grad_grad,
    .amp = KN_AMP_NONE,
    .layout = KN_LAYOUT_FIXED,
};

/* ---- wrappers */
static void fill3(kn_ints *dst, int n, const int64_t *v)
{
    dst->n = n;
    for (int i = 0; i < n; i++)
        dst->v[i] = v[i];
}

static kn_tensor *window_call(const kn_op_def *def, kn_tensor *x, const kn_pool_params *p)
{
    if (!p) return kn__error_null(KN_ERR_ARG, "%s: params is NULL", def->name);
    pool_attrs at = {
        .ceil_mode = p->ceil_mode, .count_include_pad = p->count_include_pad, .layout = p->layout};
    int nsp = x && x->ndim >= 3 && x->ndim <= 5 ? x->ndim - 2 : 3;
    fill3(&at.kernel, nsp, p->kernel);
    fill3(&at.stride, nsp, p->stride);
    fill3(&at.pad_begin, nsp, p->pad_begin);
    fill3(&at.pad_end, nsp, p->pad_end);
    kn_tensor *in[1] = {x};
    return kn__op_call1(def, 1, in, &at);
}

kn_tensor *kn_max_pool(kn_tensor *x, const kn_pool_params *p)
{
    return window_call(&kn_op_max_pool, x, p);
}
kn_tensor *kn_avg_pool(kn_tensor *x, const kn_pool_params *p)
{
    return window_call(&kn_op_avg_pool, x, p);
}

static kn_tensor *resize_call(const kn_op_def *def, kn_tensor *x, int64_t oh, int64_t ow,
                              bool align_corners, kn_layout layout)
{
    pool_attrs at = {.align_corners = align_corners, .layout = layout};
    fill3(&at.out_size, 2, (const int64_t[]){oh, ow});
    kn_tensor *in[1] = {x};
    return kn__op_call1(def, 1, in, &at);
}

kn_tensor *kn_adaptive_avg_pool2d(kn_tensor *x, int64_t out_h, int64_t out_w, kn_layout layout)
{
    return resize_call(&kn_op_adaptive_avg_pool2d, x, out_h, out_w, false, layout);
}
kn_tensor *kn_adaptive_max_pool2d(kn_tensor *x, int64_t out_h, int64_t out_w, kn_layout layout)
{
    return resize_call(&kn_op_adaptive_max_pool2d, x, out_h, out_w, false, layout);
}
kn_tensor *kn_upsample_nearest2d(kn_tensor *x, int64_t out_h, int64_t out_w, kn_layout layout)
{
    return resize_call(&kn_op_upsample_nearest2d, x, out_h, out_w, false, layout);
}
kn_tensor *kn_upsample_bilinear2d(kn_tensor *x, int64_t out_h, int64_t out_w, bool align_corners,
                                  kn_layout layout)
{
    return resize_call(&kn_op_upsample_bilinear2d, x, out_h, out_w, align_corners, layout);
}

/* ---- global pools: max_pool / avg_pool with the whole spatial extent as
 * the window (composites, so gradients come from those ops). */
static kn_status global_params(const kn_op_args *a, kn_pool_params *p)
{
    const pool_attrs *at = a->attrs;
    const kn_tensor *x = a->in[0];
    const char *who = a->def->name;
    if (!kn_dtype_is_float(x->dtype))
        return kn__error(KN_ERR_DTYPE, "%s: input has dtype %s, expected a float dtype", who,
                         kn_dtype_name(x->dtype));
    if (x->ndim < 3 || x->ndim > 5)
        return kn__error(KN_ERR_SHAPE,
                         "%s: input has %d dims, expected 3 to 5 (N, C, 1 to 3 spatial dims)", who,
                         x->ndim);
    if (at->layout != KN_LAYOUT_NCHW && at->layout != KN_LAYOUT_NHWC)
        return kn__error(KN_ERR_ARG, "%s: layout %lld is not NCHW (0) or NHWC (1)", who,
                         (long long)at->layout);
    geom g;
    logical(x, at->layout, &g);
    *p = (kn_pool_params){.layout = (kn_layout)at->layout};
    for (int d = 0; d < g.nsp; d++) {
        if (g.size[2 + d] < 1)
            return kn__error(KN_ERR_SHAPE, "%s: spatial dim %d has size 0, expected >= 1", who, d);
        p->kernel[d] = g.size[2 + d];
    }
    return KN_OK;
}

static kn_status global_infer(const kn_op_args *a, kn_out_meta *out)
{
    kn_pool_params p = {0};
    kn_status s = global_params(a, &p);
    if (s) return s;
    const kn_tensor *x = a->in[0];
    out->dtype = x->dtype;
    out->ndim = x->ndim;
    for (int d = 0; d < x->ndim; d++)
        out->shape[d] = x->shape[d];
    int sp0 = p.layout == KN_LAYOUT_NHWC ? 1 : 2;
    for (int d = 0; d < x->ndim - 2; d++)
        out->shape[sp0 + d] = 1;
    return KN_OK;
}

static kn_status global_compose(const kn_op_args *a)
{
    kn_pool_params p = {0};
    kn_status s = global_params(a, &p);
    if (s) return s;
    a->out[0] =
        a->def == &kn_op_global_max_pool ? kn_max_pool(a->in[0], &p) : kn_avg_pool(a->in[0], &p);
    return a->out[0] ? KN_OK : kn_last_status();
}

const kn_op_def kn_op_global_avg_pool = {
    .name = "global_avg_pool",
    .n_in = 1,
    .n_out = 1,
    .attrs = global_schema,
    .n_attrs = 1,
    .attrs_size = sizeof(pool_attrs),
    .dtypes = KN_DTYPES_FLOAT,
    .infer = global_infer,
    .compose = global_compose,
    .amp = KN_AMP_NONE,
    .layout = KN_LAYOUT_FIXED,
};
const kn_op_def kn_op_global_max_pool = {
    .name = "global_max_pool",
    .n_in = 1,
    .n_out = 1,
    .attrs = global_schema,
    .n_attrs = 1,
    .attrs_size = sizeof(pool_attrs),
    .dtypes = KN_DTYPES_FLOAT,
    .infer = global_infer,
    .compose = global_compose,
    .amp = KN_AMP_NONE,
    .layout = KN_LAYOUT_FIXED,
};

static kn_tensor *global_call(const kn_op_def *def, kn_tensor *x, kn_layout layout)
{
    pool_attrs at = {.layout = layout};
    kn_tensor *in[1] = {x};
    return kn__op_call1(def, 1, in, &at);
}

kn_tensor *kn_global_avg_pool(kn_tensor *x, kn_layout layout)
{
    return global_call(&kn_op_global_avg_pool, x, layout);
}
kn_tensor *kn_global_max_pool(kn_tensor *x, kn_layout layout)
{
    return global_call(&kn_op_global_max_pool, x, layout);
}
