/* conv.c — convolution: conv1d/conv2d/conv3d and conv_transpose1d/2d/3d
 * (one N-d implementation), and the internal gradient ops conv_grad_input and
 * conv_grad_weight (each differentiable, written with the others). Direct
 * reference kernels over any strides, activations NCHW or NHWC, weights
 * (C_out, C_in/groups, k...). f16/bf16 compute in f32. */
#include "op.h"

#include "../kernels/conv_fast.h"

#include <limits.h>

/* ------------------------------------------------------------- attributes */
/* kn_conv_params with kn_ints fields (one value per spatial dim, n == 0
 * means all defaults); `shape` is the shape a gradient op produces. */
typedef struct conv_attrs {
    kn_ints stride, pad_begin, pad_end, dilation, output_padding;
    int64_t groups;
    bool pad_same;
    int64_t layout;
    kn_ints shape;
} conv_attrs;

#define CONV_ATTR_SCHEMA                                                                           \
    KN_ATTR(conv_attrs, stride, KN_ATTR_INTS), KN_ATTR(conv_attrs, pad_begin, KN_ATTR_INTS),       \
        KN_ATTR(conv_attrs, pad_end, KN_ATTR_INTS), KN_ATTR(conv_attrs, dilation, KN_ATTR_INTS),   \
        KN_ATTR(conv_attrs, groups, KN_ATTR_INT),                                                  \
        KN_ATTR(conv_attrs, output_padding, KN_ATTR_INTS),                                         \
        KN_ATTR(conv_attrs, pad_same, KN_ATTR_BOOL), KN_ATTR(conv_attrs, layout, KN_ATTR_INT)
static const kn_attr_desc conv_schema[] = {CONV_ATTR_SCHEMA};
static const kn_attr_desc grad_schema[] = {CONV_ATTR_SCHEMA,
                                           KN_ATTR(conv_attrs, shape, KN_ATTR_INTS)};

/* What an op entry's .data says about it. */
typedef enum conv_kind { K_CONV, K_TRANSPOSE, K_GRAD_INPUT, K_GRAD_WEIGHT } conv_kind;
typedef struct conv_info {
    conv_kind kind;
    int nsp; /* spatial dims; 0: from the inputs' rank (gradient ops) */
} conv_info;

/* Limit on stride, pad, dilation and output_padding values, so that size
 * arithmetic on them cannot overflow. */
#define ATTR_MAX ((int64_t)1 << 32)

/* ---------------------------------------------------------------- geometry */
/* A problem in conv orientation: x (N, C_in, in...) -> y (N, C_out, out...).
 * Spatial arrays have 3 entries; the first 3 - nsp are size-1 dims. */
typedef kn_conv_geom geom; /* shared with the fast paths (conv_fast.h) */

static const char *dims_name(int nsp, bool nhwc)
{
    static const char *nchw[] = {"", "(N, C, L)", "(N, C, H, W)", "(N, C, D, H, W)"};
    static const char *nhwc_[] = {"", "(N, L, C)", "(N, H, W, C)", "(N, D, H, W, C)"};
    return nhwc ? nhwc_[nsp] : nchw[nsp];
}

static const char *wdims_name(int nsp, bool transpose)
{
    static const char *conv[] = {"", "(C_out, C_in/groups, kL)", "(C_out, C_in/groups, kH, kW)",
                                 "(C_out, C_in/groups, kD, kH, kW)"};
    static const char *tr[] = {"", "(C_in, C_out/groups, kL)", "(C_in, C_out/groups, kH, kW)",
                               "(C_in, C_out/groups, kD, kH, kW)"};
    return transpose ? tr[nsp] : conv[nsp];
}

/* Channel count and spatial dims of an activation shape. */
static int64_t act_channels(const int64_t *shape, int ndim, bool nhwc)
{
    return nhwc ? shape[ndim - 1] : shape[1];
}

static int64_t act_spatial(const int64_t *shape, int ndim, bool nhwc, int i)
{
    return shape[(nhwc ? 1 : 2) + i];
}

static void act_shape(const geom *g, int64_t c, const int64_t *sp, int64_t *shape)
{
    int nd = g->nsp + 2, o = 3 - g->nsp;
    shape[0] = g->n;
    shape[g->nhwc ? nd - 1 : 1] = c;
    for (int i = 0; i < g->nsp; i++)
        shape[(g->nhwc ? 1 : 2) + i] = sp[o + i];
}

static int64_t ints_at(const kn_ints *v, int i, int64_t dflt)
{
    return v->n ? v->v[i] : dflt;
}

/* Checks the attrs that do not depend on shapes; fills s, d, pb, pe. */
static kn_status check_attrs(const char *who, const conv_attrs *at, int nsp, bool transpose,
                             geom *g)
{
    if (at->layout != KN_LAYOUT_NCHW && at->layout != KN_LAYOUT_NHWC)
        return kn__error(KN_ERR_ARG,
                         "%s: layout %lld is not KN_LAYOUT_NCHW (0) or KN_LAYOUT_NHWC (1)", who,
                         (long long)at->layout);
    if (at->groups < 1 || at->groups > ATTR_MAX)
        return kn__error(KN_ERR_ARG, "%s: groups = %lld, expected >= 1", who,
                         (long long)at->groups);
    const kn_ints *lists[5] = {&at->stride, &at->pad_begin, &at->pad_end, &at->dilation,
                               &at->output_padding};
    static const char *names[5] = {"stride", "pad_begin", "pad_end", "dilation", "output_padding"};
    for (int l = 0; l < 5; l++) {
        if (lists[l]->n != 0 && lists[l]->n != nsp)
            return kn__error(KN_ERR_ARG, "%s: %s has %d values, expected %d (one per spatial dim)",
                             who, names[l], lists[l]->n, nsp);
        int64_t lo = l == 0 || l == 3 ? 1 : 0;
        for (int i = 0; i < lists[l]->n; i++)
            if (lists[l]->v[i] < lo || lists[l]->v[i] > ATTR_MAX)
                return kn__error(KN_ERR_ARG, "%s: %s[%d] = %lld, expected %s", who, names[l], i,
                                 (long long)lists[l]->v[i], lo ? ">= 1" : ">= 0 and < 2^32");
    }
    g->nsp = nsp;
    g->nhwc = at->layout == KN_LAYOUT_NHWC;
    g->groups = at->groups;
    for (int j = 0; j < 3; j++) {
        int i = j - (3 - nsp);
        bool real = i >= 0;
        g->s[j] = real ? ints_at(&at->stride, i, 1) : 1;
        g->d[j] = real ? ints_at(&at->dilation, i, 1) : 1;
        g->pb[j] = real ? ints_at(&at->pad_begin, i, 0) : 0;
        g->pe[j] = real ? ints_at(&at->pad_end, i, 0) : 0;
        int64_t op = real ? ints_at(&at->output_padding, i, 0) : 0;
        if (!transpose && op)
            return kn__error(KN_ERR_ARG,
                             "%s: output_padding[%d] = %lld; it is for conv_transpose only", who, i,
                             (long long)op);
        if (transpose && op >= g->s[j])
            return kn__error(KN_ERR_ARG,
                             "%s: output_padding[%d] = %lld must be smaller than stride %lld", who,
                             i, (long long)op, (long long)g->s[j]);
    }
    if (transpose && at->pad_same)
        return kn__error(KN_ERR_UNSUPPORTED,
                         "%s: pad_same is not supported; give pad_begin/pad_end", who);
    return KN_OK;
}

static kn_status check_rank(const char *who, const char *what, int ndim, int nsp, const char *dims)
{
    if (ndim != nsp + 2)
        return kn__error(KN_ERR_SHAPE, "%s: %s has %d dims, expected %d %s", who, what, ndim,
                         nsp + 2, dims);
    return KN_OK;
}

/* Kernel extent d*(k-1)+1, or -1 on overflow. */
static int64_t extent(int64_t k, int64_t d)
{
    int64_t e;
    return kn__mul_overflow(d, k - 1, &e) || e == INT64_MAX ? -1 : e + 1;
}

/* Fills out[] (conv direction) from in[], k[], pads; pad_same computes pads. */
static kn_status conv_spatial(const char *who, geom *g, bool pad_same)
{
    for (int j = 3 - g->nsp; j < 3; j++) {
        int i = j - (3 - g->nsp);
        int64_t ext = extent(g->k[j], g->d[j]);
        if (ext < 0)
            return kn__error(KN_ERR_SHAPE, "%s: kernel extent overflows in spatial dim %d", who, i);
        if (g->in[j] > INT64_MAX / 2 || ext > INT64_MAX / 2)
            return kn__error(KN_ERR_SHAPE, "%s: spatial dim %d is too large", who, i);
        if (pad_same) {
            int64_t out = g->in[j] / g->s[j] + (g->in[j] % g->s[j] != 0);
            int64_t total = out > 0 ? (out - 1) * g->s[j] + ext - g->in[j] : 0;
            if (total < 0) total = 0;
            g->pb[j] = total / 2, g->pe[j] = total - total / 2;
        }
        int64_t padded = g->in[j] + g->pb[j] + g->pe[j]; /* pads < 2^32: no overflow */
        if (ext > padded)
            return kn__error(
                KN_ERR_SHAPE,
                "%s: kernel extent %lld (k = %lld, dilation = %lld) is larger "
                "than the padded input %lld (size %lld + pads %lld + %lld) in spatial dim %d",
                who, (long long)ext, (long long)g->k[j], (long long)g->d[j], (long long)padded,
                (long long)g->in[j], (long long)g->pb[j], (long long)g->pe[j], i);
        g->out[j] = (padded - ext) / g->s[j] + 1;
    }
    return KN_OK;
}

/* The geometry of a convolution of x by w (conv orientation). */
static kn_status conv_geometry(const char *who, const conv_attrs *at, int nsp, const int64_t *xs,
                               int xnd, const int64_t *ws, int wnd, geom *g)
{
    kn_status s = check_attrs(who, at, nsp, false, g);
    if (!s) s = check_rank(who, "input", xnd, nsp, dims_name(nsp, g->nhwc));
    if (!s) s = check_rank(who, "weight", wnd, nsp, wdims_name(nsp, false));
    if (s) return s;
    int64_t c = act_channels(xs, xnd, g->nhwc);
    g->n = xs[0], g->cout = ws[0];
    if (c % g->groups)
        return kn__error(KN_ERR_SHAPE,
                         "%s: groups = %lld does not divide the input's %lld channels", who,
                         (long long)g->groups, (long long)c);
    if (g->cout % g->groups)
        return kn__error(KN_ERR_SHAPE, "%s: groups = %lld does not divide C_out = %lld", who,
                         (long long)g->groups, (long long)g->cout);
    int64_t cw;
    if (kn__mul_overflow(ws[1], g->groups, &cw) || c != cw)
        return kn__error(KN_ERR_SHAPE,
                         "%s: input has %lld channels but weight expects %lld "
                         "(C_in/groups = %lld, groups = %lld)",
                         who, (long long)c, (long long)cw, (long long)ws[1], (long long)g->groups);
    g->cin = c;
    for (int j = 0; j < 3; j++) {
        int i = j - (3 - nsp);
        g->in[j] = i >= 0 ? act_spatial(xs, xnd, g->nhwc, i) : 1;
        g->k[j] = i >= 0 ? ws[2 + i] : 1;
        g->out[j] = 1; /* set by conv_spatial for the real dims */
        if (g->k[j] < 1)
            return kn__error(KN_ERR_SHAPE, "%s: kernel size %lld in spatial dim %d, expected >= 1",
                             who, (long long)g->k[j], i);
    }
    return conv_spatial(who, g, at->pad_same);
}

/* The geometry of conv_transpose of x (N, C_in, in...) by w (C_in,
 * C_out/groups, k...), expressed as the conv it is the transpose of. */
static kn_status transpose_geometry(const char *who, const conv_attrs *at, int nsp,
                                    const kn_tensor *x, const kn_tensor *w, geom *g)
{
    kn_status s = check_attrs(who, at, nsp, true, g);
    if (!s) s = check_rank(who, "input", x->ndim, nsp, dims_name(nsp, g->nhwc));
    if (!s) s = check_rank(who, "weight", w->ndim, nsp, wdims_name(nsp, true));
    if (s) return s;
    int64_t c = act_channels(x->shape, x->ndim, g->nhwc);
    if (c % g->groups)
        return kn__error(KN_ERR_SHAPE,
                         "%s: groups = %lld does not divide the input's %lld channels", who,
                         (long long)g->groups, (long long)c);
    if (c != w->shape[0])
        return kn__error(KN_ERR_SHAPE,
                         "%s: input has %lld channels but weight expects %lld "
                         "(weight dim 0 = C_in, groups = %lld)",
                         who, (long long)c, (long long)w->shape[0], (long long)g->groups);
    int64_t cout;
    if (kn__mul_overflow(w->shape[1], g->groups, &cout))
        return kn__error(KN_ERR_SHAPE, "%s: C_out overflows", who);
    g->n = x->shape[0], g->cout = c, g->cin = cout;
    for (int j = 0; j < 3; j++) {
        int i = j - (3 - nsp);
        int64_t xin = i >= 0 ? act_spatial(x->shape, x->ndim, g->nhwc, i) : 1;
        g->k[j] = i >= 0 ? w->shape[2 + i] : 1;
        int64_t ext = extent(g->k[j], g->d[j]), prod;
        if (g->k[j] < 1 || ext < 0)
            return kn__error(KN_ERR_SHAPE, "%s: kernel size %lld in spatial dim %d, expected >= 1",
                             who, (long long)g->k[j], i);
        if (xin < 1)
            return kn__error(KN_ERR_SHAPE, "%s: input has size 0 in spatial dim %d", who, i);
        int64_t op = i >= 0 ? ints_at(&at->output_padding, i, 0) : 0;
        if (kn__mul_overflow(xin - 1, g->s[j], &prod) || prod > INT64_MAX / 4 ||
            ext > INT64_MAX / 4)
            return kn__error(KN_ERR_SHAPE, "%s: output size overflows in spatial dim %d", who, i);
        g->out[j] = xin;
        g->in[j] = prod + ext + op - g->pb[j] - g->pe[j];
        if (g->in[j] < 1)
            return kn__error(KN_ERR_SHAPE,
                             "%s: padding %lld + %lld leaves an output of size %lld in "
                             "spatial dim %d",
                             who, (long long)g->pb[j], (long long)g->pe[j], (long long)g->in[j], i);
    }
    return KN_OK;
}

/* ----------------------------------------------------------- shared infer */
static kn_status check_dtypes(const kn_op_args *a)
{
    for (int i = 0; i < a->n_in; i++) {
        kn_status s = kn__check_float(a, i);
        if (!s && i) s = kn__check_same_dtype(a, 0, i);
        if (s) return s;
    }
    return KN_OK;
}

static kn_status check_bias(const char *who, const kn_tensor *b, int64_t c)
{
    if (b && (b->ndim != 1 || b->shape[0] != c)) {
        char sb[96];
        return kn__error(KN_ERR_SHAPE, "%s: bias has shape %s, expected (%lld)", who,
                         kn__shape_str(b->ndim, b->shape, sb, sizeof sb), (long long)c);
    }
    return KN_OK;
}

static kn_status finish_meta(const char *who, const geom *g, bool out_is_x, kn_dtype dt,
                             kn_out_meta *out)
{
    out->dtype = dt;
    out->ndim = g->nsp + 2;
    if (out_is_x)
        act_shape(g, g->cin, g->in, out->shape);
    else
        act_shape(g, g->cout, g->out, out->shape);
    if (kn__shape_too_big(out->ndim, out->shape)) {
        char so[96];
        return kn__error(KN_ERR_SHAPE, "%s: output shape %s overflows", who,
                         kn__shape_str(out->ndim, out->shape, so, sizeof so));
    }
    return KN_OK;
}

static kn_status check_same_shape(const char *who, const char *what, const kn_tensor *t, int ndim,
                                  const int64_t *shape)
{
    if (t->ndim != ndim || memcmp(t->shape, shape, sizeof(int64_t) * (size_t)ndim)) {
        char sa[96], sb[96];
        return kn__error(KN_ERR_SHAPE, "%s: %s has shape %s, expected %s", who, what,
                         kn__shape_str(t->ndim, t->shape, sa, sizeof sa),
                         kn__shape_str(ndim, shape, sb, sizeof sb));
    }
    return KN_OK;
}

/* Resolves the geometry of any of the four kinds from its inputs. */
static kn_status op_geometry(const kn_op_def *def, const conv_attrs *at, kn_tensor *const *in,
                             geom *g)
{
    const conv_info *info = def->data;
    const char *who = def->name;
    int nsp = info->nsp ? info->nsp : in[0]->ndim - 2;
    if (nsp < 1 || nsp > 3)
        return kn__error(KN_ERR_SHAPE, "%s: input has %d dims, expected 3 to 5", who, in[0]->ndim);
    kn_status s;
    switch (info->kind) {
    case K_CONV:
        return conv_geometry(who, at, nsp, in[0]->shape, in[0]->ndim, in[1]->shape, in[1]->ndim, g);
    case K_TRANSPOSE:
        return transpose_geometry(who, at, nsp, in[0], in[1], g);
    case K_GRAD_INPUT: /* in: gy, w; shape: x */
        if (at->shape.n != nsp + 2)
            return kn__error(KN_ERR_ARG, "%s: shape attr has %d dims, expected %d", who,
                             at->shape.n, nsp + 2);
        if ((s = conv_geometry(who, at, nsp, at->shape.v, at->shape.n, in[1]->shape, in[1]->ndim,
                               g)))
            return s;
        break;
    case K_GRAD_WEIGHT: /* in: x, gy; shape: w */
        if (at->shape.n != nsp + 2)
            return kn__error(KN_ERR_ARG, "%s: shape attr has %d dims, expected %d", who,
                             at->shape.n, nsp + 2);
        if ((s = conv_geometry(who, at, nsp, in[0]->shape, in[0]->ndim, at->shape.v, at->shape.n,
                               g)))
            return s;
        break;
    }
    int64_t yshape[KN_MAX_DIMS];
    act_shape(g, g->cout, g->out, yshape);
    return check_same_shape(who, "gradient of the output", in[info->kind == K_GRAD_INPUT ? 0 : 1],
                            nsp + 2, yshape);
}

static kn_status conv_infer(const kn_op_args *a, kn_out_meta *out)
{
    const conv_info *info = a->def->data;
    geom g;
    kn_status s = check_dtypes(a);
    if (!s) s = op_geometry(a->def, a->attrs, a->in, &g);
    if (s) return s;
    switch (info->kind) {
    case K_CONV:
        if ((s = check_bias(a->def->name, a->in[2], g.cout))) return s;
        return finish_meta(a->def->name, &g, false, a->in[0]->dtype, out);
    case K_TRANSPOSE:
        if ((s = check_bias(a->def->name, a->in[2], g.cin))) return s;
        return finish_meta(a->def->name, &g, true, a->in[0]->dtype, out);
    case K_GRAD_INPUT:
        return finish_meta(a->def->name, &g, true, a->in[0]->dtype, out);
    case K_GRAD_WEIGHT: {
        const conv_attrs *at = a->attrs;
        out->dtype = a->in[0]->dtype;
        out->ndim = at->shape.n;
        memcpy(out->shape, at->shape.v, sizeof(int64_t) * (size_t)at->shape.n);
        return KN_OK;
    }
    }
    return KN_ERR_INTERNAL;
}

/* ---------------------------------------------------------------- kernels */
/* Element primitives of the compute type (f32 or f64); strides in elements. */
typedef struct prim {
    size_t es;
    double (*load)(const char *p);
    void (*store)(char *p, double v);
    void (*axpy)(int64_t n, double a, const char *x, int64_t xs, char *y, int64_t ys);
    double (*dot)(int64_t n, const char *x, int64_t xs, const char *y, int64_t ys);
} prim;

static double load_f32(const char *p)
{
    return *(const float *)p;
}
static double load_f64(const char *p)
{
    return *(const double *)p;
}
static void store_f32(char *p, double v)
{
    *(float *)p = (float)v;
}
static void store_f64(char *p, double v)
{
    *(double *)p = v;
}

/* y[i*ys] += a * x[i*xs] for i < n, in the element type. */
static void axpy_f32(int64_t n, double a, const char *x, int64_t xs, char *y, int64_t ys)
{
    const float av = (float)a, *xp = (const float *)x;
    float *yp = (float *)y;
    for (int64_t i = 0; i < n; i++)
        yp[i * ys] += av * xp[i * xs];
}

static void axpy_f64(int64_t n, double a, const char *x, int64_t xs, char *y, int64_t ys)
{
    const double *xp = (const double *)x;
    double *yp = (double *)y;
    for (int64_t i = 0; i < n; i++)
        yp[i * ys] += a * xp[i * xs];
}

/* Sum of x[i*xs] * y[i*ys] in double. */
static double dot_f32(int64_t n, const char *x, int64_t xs, const char *y, int64_t ys)
{
    const float *xp = (const float *)x, *yp = (const float *)y;
    double acc = 0;
    for (int64_t i = 0; i < n; i++)
        acc += (double)xp[i * xs] * (double)yp[i * ys];
    return acc;
}

static double dot_f64(int64_t n, const char *x, int64_t xs, const char *y, int64_t ys)
{
    const double *xp = (const double *)x, *yp = (const double *)y;
    double acc = 0;
    for (int64_t i = 0; i < n; i++)
        acc += xp[i * xs] * yp[i * ys];
    return acc;
}

static const prim prim_f32 = {sizeof(float), load_f32, store_f32, axpy_f32, dot_f32};
static const prim prim_f64 = {sizeof(double), load_f64, store_f64, axpy_f64, dot_f64};

/* An activation tensor's base pointer and element strides, 3-d padded. */
typedef struct act {
    char *p;
    int64_t sn, sc, ss[3];
} act;

static act act_of(const kn_tensor *t, const geom *g)
{
    act a = {t->storage ? kn__tensor_ptr(t) : NULL, t->strides[0], t->strides[g->nhwc ? t->ndim - 1 : 1], {0, 0, 0}};
    for (int i = 0; i < g->nsp; i++)
        a.ss[3 - g->nsp + i] = t->strides[(g->nhwc ? 1 : 2) + i];
    return a;
}

/* A weight's base pointer and strides (dim 0, dim 1, kernel dims 3-d padded). */
typedef struct wgt {
    char *p;
    int64_t s0, s1, sk[3];
} wgt;

static wgt wgt_of(const kn_tensor *t, const geom *g)
{
    wgt w = {kn__tensor_ptr(t), t->strides[0], t->strides[1], {0, 0, 0}};
    for (int i = 0; i < g->nsp; i++)
        w.sk[3 - g->nsp + i] = t->strides[2 + i];
    return w;
}

static int64_t floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Outputs o in [*lo, *hi) whose input o*s - pb + off lies in [0, in). */
static void tap_range(const geom *g, int j, int64_t off, int64_t *lo, int64_t *hi)
{
    int64_t l = -floordiv(off - g->pb[j], g->s[j]); /* ceil((pb - off) / s) */
    int64_t h = floordiv(g->in[j] - 1 + g->pb[j] - off, g->s[j]) + 1;
    *lo = l < 0 ? 0 : l;
    *hi = h > g->out[j] ? g->out[j] : h;
    if (*hi < *lo) *hi = *lo;
}

typedef struct conv_task {
    const geom *g;
    const prim *pr;
    act x, y;
    wgt w;
    const char *bias; /* contiguous (C), or NULL */
} conv_task;

/* Forward: x (N, C_in, in...) * w (C_out, C_in/G, k...) -> y (N, C_out,
 * out...); one task per output row (n, oc, od, oh); each element sums over
 * (ic, kd, kh, kw) in that order, then adds the bias. */
static void conv_fwd_rows(int64_t begin, int64_t end, void *arg)
{
    const conv_task *t = arg;
    const geom *g = t->g;
    const prim *pr = t->pr;
    int64_t es = (int64_t)pr->es, cing = g->cin / g->groups, coutg = g->cout / g->groups;
    for (int64_t r = begin; r < end; r++) {
        int64_t oh = r % g->out[1], od = r / g->out[1] % g->out[0];
        int64_t oc = r / (g->out[1] * g->out[0]) % g->cout,
                n = r / (g->out[1] * g->out[0] * g->cout);
        char *yrow = t->y.p + (n * t->y.sn + oc * t->y.sc + od * t->y.ss[0] + oh * t->y.ss[1]) * es;
        for (int64_t ow = 0; ow < g->out[2]; ow++)
            pr->store(yrow + ow * t->y.ss[2] * es, 0);
        for (int64_t icg = 0; icg < cing; icg++) {
            int64_t ic = oc / coutg * cing + icg;
            for (int64_t kd = 0; kd < g->k[0]; kd++) {
                int64_t id = od * g->s[0] - g->pb[0] + kd * g->d[0];
                if (id < 0 || id >= g->in[0]) continue;
                for (int64_t kh = 0; kh < g->k[1]; kh++) {
                    int64_t ih = oh * g->s[1] - g->pb[1] + kh * g->d[1];
                    if (ih < 0 || ih >= g->in[1]) continue;
                    const char *xrow =
                        t->x.p +
                        (n * t->x.sn + ic * t->x.sc + id * t->x.ss[0] + ih * t->x.ss[1]) * es;
                    const char *wk =
                        t->w.p +
                        (oc * t->w.s0 + icg * t->w.s1 + kd * t->w.sk[0] + kh * t->w.sk[1]) * es;
                    for (int64_t kw = 0; kw < g->k[2]; kw++) {
                        int64_t lo, hi, off = kw * g->d[2];
                        tap_range(g, 2, off, &lo, &hi);
                        if (hi == lo) continue;
                        pr->axpy(hi - lo, pr->load(wk + kw * t->w.sk[2] * es),
                                 xrow + (lo * g->s[2] - g->pb[2] + off) * t->x.ss[2] * es,
                                 g->s[2] * t->x.ss[2], yrow + lo * t->y.ss[2] * es, t->y.ss[2]);
                    }
                }
            }
        }
        if (t->bias) {
            double b = pr->load(t->bias + oc * es);
            for (int64_t ow = 0; ow < g->out[2]; ow++) {
                char *p = yrow + ow * t->y.ss[2] * es;
                pr->store(p, pr->load(p) + b);
            }
        }
    }
}

/* Input gradient (the transposed conv): gy (N, C_out, out...) and w give
 * dx (N, C_in, in...); one task per dx row (n, ic, id, ih); each element sums
 * over (oc, kd, kh, kw) in that order, then adds the bias (conv_transpose).
 * Here t->y is gy and t->x is dx. */
static void conv_bwd_input_rows(int64_t begin, int64_t end, void *arg)
{
    const conv_task *t = arg;
    const geom *g = t->g;
    const prim *pr = t->pr;
    int64_t es = (int64_t)pr->es, cing = g->cin / g->groups, coutg = g->cout / g->groups;
    for (int64_t r = begin; r < end; r++) {
        int64_t ih = r % g->in[1], id = r / g->in[1] % g->in[0];
        int64_t ic = r / (g->in[1] * g->in[0]) % g->cin, n = r / (g->in[1] * g->in[0] * g->cin);
        char *xrow = t->x.p + (n * t->x.sn + ic * t->x.sc + id * t->x.ss[0] + ih * t->x.ss[1]) * es;
        for (int64_t iw = 0; iw < g->in[2]; iw++)
            pr->store(xrow + iw * t->x.ss[2] * es, 0);
        int64_t icg = ic % cing;
        for (int64_t ocg = 0; ocg < coutg; ocg++) {
            int64_t oc = ic / cing * coutg + ocg;
            for (int64_t kd = 0; kd < g->k[0]; kd++) {
                int64_t nd = id + g->pb[0] - kd * g->d[0];
                if (nd < 0 || nd % g->s[0] || nd / g->s[0] >= g->out[0]) continue;
                for (int64_t kh = 0; kh < g->k[1]; kh++) {
                    int64_t nh = ih + g->pb[1] - kh * g->d[1];
                    if (nh < 0 || nh % g->s[1] || nh / g->s[1] >= g->out[1]) continue;
                    int64_t od = nd / g->s[0], oh = nh / g->s[1];
                    const char *gyrow =
                        t->y.p +
                        (n * t->y.sn + oc * t->y.sc + od * t->y.ss[0] + oh * t->y.ss[1]) * es;
                    const char *wk =
                        t->w.p +
                        (oc * t->w.s0 + icg * t->w.s1 + kd * t->w.sk[0] + kh * t->w.sk[1]) * es;
                    for (int64_t kw = 0; kw < g->k[2]; kw++) {
                        int64_t lo, hi, off = kw * g->d[2];
                        tap_range(g, 2, off, &lo, &hi);
                        if (hi == lo) continue;
                        pr->axpy(hi - lo, pr->load(wk + kw * t->w.sk[2] * es),
                                 gyrow + lo * t->y.ss[2] * es, t->y.ss[2],
                                 xrow + (lo * g->s[2] - g->pb[2] + off) * t->x.ss[2] * es,
                                 g->s[2] * t->x.ss[2]);
                    }
                }
            }
        }
        if (t->bias) {
            double b = pr->load(t->bias + ic * es);
            for (int64_t iw = 0; iw < g->in[2]; iw++) {
                char *p = xrow + iw * t->x.ss[2] * es;
                pr->store(p, pr->load(p) + b);
            }
        }
    }
}

/* Weight gradient: x (N, C_in, in...) and gy (N, C_out, out...) give dw
 * (C_out, C_in/G, k...); one task per (oc, icg, kd, kh); each element sums
 * over (n, od, oh, ow) in that order, in double. t->y is gy, t->w is dw. */
static void conv_bwd_weight_rows(int64_t begin, int64_t end, void *arg)
{
    const conv_task *t = arg;
    const geom *g = t->g;
    const prim *pr = t->pr;
    int64_t es = (int64_t)pr->es, cing = g->cin / g->groups, coutg = g->cout / g->groups;
    for (int64_t r = begin; r < end; r++) {
        int64_t kh = r % g->k[1], kd = r / g->k[1] % g->k[0];
        int64_t icg = r / (g->k[1] * g->k[0]) % cing, oc = r / (g->k[1] * g->k[0] * cing);
        int64_t ic = oc / coutg * cing + icg, dlo, dhi, hlo, hhi;
        tap_range(g, 0, kd * g->d[0], &dlo, &dhi);
        tap_range(g, 1, kh * g->d[1], &hlo, &hhi);
        char *wk = t->w.p + (oc * t->w.s0 + icg * t->w.s1 + kd * t->w.sk[0] + kh * t->w.sk[1]) * es;
        for (int64_t kw = 0; kw < g->k[2]; kw++) {
            int64_t lo, hi, off = kw * g->d[2];
            tap_range(g, 2, off, &lo, &hi);
            double acc = 0;
            for (int64_t n = 0; n < g->n && hi > lo; n++)
                for (int64_t od = dlo; od < dhi; od++)
                    for (int64_t oh = hlo; oh < hhi; oh++) {
                        int64_t id = od * g->s[0] - g->pb[0] + kd * g->d[0];
                        int64_t ih = oh * g->s[1] - g->pb[1] + kh * g->d[1];
                        const char *gyrow =
                            t->y.p +
                            (n * t->y.sn + oc * t->y.sc + od * t->y.ss[0] + oh * t->y.ss[1]) * es;
                        const char *xrow =
                            t->x.p +
                            (n * t->x.sn + ic * t->x.sc + id * t->x.ss[0] + ih * t->x.ss[1]) * es;
                        acc += pr->dot(hi - lo, gyrow + lo * t->y.ss[2] * es, t->y.ss[2],
                                       xrow + (lo * g->s[2] - g->pb[2] + off) * t->x.ss[2] * es,
                                       g->s[2] * t->x.ss[2]);
                    }
            pr->store(wk + kw * t->w.sk[2] * es, acc);
        }
    }
}

/* A copy of t in dtype dt (contiguous), or a new reference when it is one. */
static kn_tensor *as_dtype(kn_tensor *t, kn_dtype dt)
{
    if (!t || t->dtype == dt) return t ? kn_tensor_ref(t) : NULL;
    kn_tensor *c = kn__tensor_new(dt, t->ndim, t->shape);
    if (c && kn__copy_into(c, t)) {
        kn_tensor_unref(c);
        return NULL;
    }
    return c;
}

static int64_t grain_for(int64_t work)
{
    return work >= 16384 ? 1 : 16384 / (work + 1);
}

/* Runs the kernel of the op's kind in the compute type (f32 for f32, f16
 * and bf16; f64 for f64), converting inputs and output as needed. */
static kn_status conv_ref(const kn_op_args *a)
{
    const conv_info *info = a->def->data;
    geom g;
    kn_status s = op_geometry(a->def, a->attrs, a->in, &g);
    if (s) return s;
    kn_tensor *out = a->out[0];
    kn_dtype ct = out->dtype == KN_F64 ? KN_F64 : KN_F32;
    kn_tensor *in[3] = {NULL, NULL, NULL}, *o = NULL;
    for (int i = 0; i < a->n_in && !s; i++)
        if (a->in[i] && !(in[i] = as_dtype(a->in[i], ct))) s = kn_last_status();
    if (!s &&
        !(o = out->dtype == ct ? kn_tensor_ref(out) : kn__tensor_new(ct, out->ndim, out->shape)))
        s = kn_last_status();
    if (!s && kn_tensor_numel(out) > 0) {
        conv_task t = {.g = &g, .pr = ct == KN_F64 ? &prim_f64 : &prim_f32};
        int64_t cing = g.cin / g.groups, coutg = g.cout / g.groups, kk = g.k[0] * g.k[1] * g.k[2];
        switch (info->kind) {
        case K_CONV:
            t.x = act_of(in[0], &g), t.w = wgt_of(in[1], &g), t.y = act_of(o, &g);
            t.bias = in[2] ? kn__tensor_ptr(in[2]) : NULL;
            kn_parallel_for(g.n * g.cout * g.out[0] * g.out[1], grain_for(cing * kk * g.out[2]),
                            conv_fwd_rows, &t);
            break;
        case K_TRANSPOSE:
        case K_GRAD_INPUT:
            t.y = act_of(in[0], &g), t.w = wgt_of(in[1], &g), t.x = act_of(o, &g);
            t.bias = info->kind == K_TRANSPOSE && in[2] ? kn__tensor_ptr(in[2]) : NULL;
            kn_parallel_for(g.n * g.cin * g.in[0] * g.in[1], grain_for(coutg * kk * g.in[2]),
                            conv_bwd_input_rows, &t);
            break;
        case K_GRAD_WEIGHT:
            t.x = act_of(in[0], &g), t.y = act_of(in[1], &g), t.w = wgt_of(o, &g);
            kn_parallel_for(g.cout * cing * g.k[0] * g.k[1],
                            grain_for(g.n * g.out[0] * g.out[1] * g.out[2] * g.k[2]),
                            conv_bwd_weight_rows, &t);
            break;
        }
    }
    if (!s && o != out) s = kn__copy_into(out, o);
    for (int i = 0; i < 3; i++)
        kn_tensor_unref(in[i]);
    kn_tensor_unref(o);
    return s;
}

/* ------------------------------------------------------------ fast paths */
/* The GEMM and depthwise paths of src/kernels/conv_fast.c for f32 and bf16
 * (bf16 tensors compute in bf16 with f32 sums); everything else runs ref. */
static kn_conv_act fast_act(const kn_tensor *t, const geom *g)
{
    act a = act_of(t, g);
    return (kn_conv_act){a.p, t->dtype, a.sn, a.sc, {a.ss[0], a.ss[1], a.ss[2]}};
}

static kn_conv_wgt fast_wgt(const kn_tensor *t, const geom *g)
{
    wgt w = wgt_of(t, g);
    return (kn_conv_wgt){w.p, t->dtype, w.s0, w.s1, {w.sk[0], w.sk[1], w.sk[2]}, NULL};
}

static bool fast_accepts(const kn_op_args *a)
{
    kn_dtype dt = a->in[0]->dtype;
    return kn__conv_fast_dtypes(dt, a->in[1]->dtype, a->out[0]->dtype) &&
           kn_tensor_numel(a->out[0]) > 0;
}

/* Depthwise forward with activations the AVX-512 kernel takes. */
static bool dw_accepts(const kn_op_args *a)
{
    const conv_info *info = a->def->data;
    geom g;
    if (info->kind != K_CONV || !fast_accepts(a)) return false;
    if (op_geometry(a->def, a->attrs, a->in, &g)) return false;
    kn_conv_act x = fast_act(a->in[0], &g), y = fast_act(a->out[0], &g);
    return kn__conv_is_depthwise(&g) && (g.nhwc ? x.sc == 1 && y.sc == 1 : y.ss[2] == 1);
}

/* A bias (C) as f32 values: the tensor's own data when it is contiguous f32,
 * else a converted copy in *buf (kn_free it). */
static kn_status bias_f32(const kn_tensor *b, float **buf, const float **out)
{
    *buf = NULL, *out = NULL;
    if (!b) return KN_OK;
    if (b->dtype == KN_F32 && b->strides[0] == 1) {
        *out = (const float *)kn__tensor_ptr(b);
        return KN_OK;
    }
    if (!(*buf = kn_alloc(sizeof(float) * (size_t)(b->shape[0] + 1)))) return kn_last_status();
    for (int64_t i = 0; i < b->shape[0]; i++)
        (*buf)[i] = (float)kn__load(b->dtype, kn__tensor_ptr(b) + i * b->strides[0] *
                                                                 (int64_t)kn_dtype_size(b->dtype));
    *out = *buf;
    return KN_OK;
}

static kn_status conv_fast_run(const kn_op_args *a, bool allow_dw)
{
    const conv_info *info = a->def->data;
    geom g;
    kn_status s = op_geometry(a->def, a->attrs, a->in, &g);
    if (s) return s;
    kn_dtype compute = a->in[0]->dtype == KN_BF16 ? KN_BF16 : KN_F32;
    kn_conv_wgt w;
    kn_conv_act x, y;
    float *buf = NULL;
    const float *bias = NULL;
    switch (info->kind) {
    case K_CONV:
        x = fast_act(a->in[0], &g), w = fast_wgt(a->in[1], &g), y = fast_act(a->out[0], &g);
        w.packed = a->prepacked;
        if ((s = bias_f32(a->in[2], &buf, &bias))) return s;
        s = kn__conv_fwd(&g, &x, &w, &y, compute, bias ? &(kn_epilogue){.bias = bias} : NULL,
                         allow_dw);
        break;
    case K_TRANSPOSE:
    case K_GRAD_INPUT:
        y = fast_act(a->in[0], &g), w = fast_wgt(a->in[1], &g), x = fast_act(a->out[0], &g);
        if (info->kind == K_TRANSPOSE && (s = bias_f32(a->in[2], &buf, &bias))) return s;
        s = kn__conv_bwd_data(&g, &y, &w, &x, compute, bias, KN_F32);
        break;
    case K_GRAD_WEIGHT:
        x = fast_act(a->in[0], &g), y = fast_act(a->in[1], &g), w = fast_wgt(a->out[0], &g);
        s = kn__conv_bwd_weight(&g, &x, &y, &w, compute);
        break;
    }
    kn_free(buf);
    return s;
}

static kn_status conv_dw_run(const kn_op_args *a)
{
    return conv_fast_run(a, true);
}

static kn_status conv_gemm_run(const kn_op_args *a)
{
    return conv_fast_run(a, false);
}

static const kn_impl conv_impls[] = {{"avx512_depthwise", KN_ISA_AVX512, dw_accepts, conv_dw_run},
                                     {"gemm", KN_ISA_AVX2, fast_accepts, conv_gemm_run},
                                     {"ref", KN_ISA_REF, NULL, conv_ref},
                                     {0}};

/* -------------------------------------------------------------- gradients */
/* Declared here too, so this file compiles before its ops.def lines exist. */
extern const kn_op_def kn_op_conv1d, kn_op_conv2d, kn_op_conv3d, kn_op_conv_transpose2d;
extern const kn_op_def kn_op_conv_grad_input, kn_op_conv_grad_weight;

static const kn_op_def *conv_op(int nsp)
{
    return nsp == 1 ? &kn_op_conv1d : nsp == 2 ? &kn_op_conv2d : &kn_op_conv3d;
}

/* attrs with the geometry's pads written out (no pad_same, no
 * output_padding) and `shape` set, for the ops a gradient calls. */
static conv_attrs resolved(const conv_attrs *at, const geom *g, int nd, const int64_t *shape)
{
    conv_attrs r = *at;
    r.pad_same = false;
    r.pad_begin.n = r.pad_end.n = r.output_padding.n = g->nsp;
    for (int i = 0; i < g->nsp; i++) {
        r.pad_begin.v[i] = g->pb[3 - g->nsp + i];
        r.pad_end.v[i] = g->pe[3 - g->nsp + i];
        r.output_padding.v[i] = 0;
    }
    r.shape.n = nd;
    for (int i = 0; shape && i < nd; i++)
        r.shape.v[i] = shape[i];
    return r;
}

static kn_tensor *call(const kn_op_def *def, kn_tensor *a, kn_tensor *b, const conv_attrs *at)
{
    kn_tensor *in[3] = {a, b, NULL};
    return kn__op_call1(
        def, def == &kn_op_conv_grad_input || def == &kn_op_conv_grad_weight ? 2 : 3, in, at);
}

/* Bias gradient: gy summed over N and the spatial dims. */
static kn_tensor *bias_grad(kn_tensor *gy, const geom *g)
{
    int axes[KN_MAX_DIMS], n = 0;
    for (int d = 0; d < g->nsp + 2; d++)
        if (d != (g->nhwc ? g->nsp + 1 : 1)) axes[n++] = d;
    return kn_sum(gy, n, axes, false);
}

/* Sets grad_in[i] = t when input i needs a gradient; false on failure. */
static bool give(const kn_grad_args *ga, int i, kn_tensor *t)
{
    ga->grad_in[i] = t;
    return t != NULL;
}

static kn_status conv_grad(const kn_grad_args *ga)
{
    const conv_info *info = ga->def->data;
    const conv_attrs *at = ga->attrs;
    kn_tensor *const *in = ga->in, *G = ga->grad_out[0];
    geom g;
    kn_status s = op_geometry(ga->def, at, in, &g);
    if (s) return s;
    const kn_op_def *conv = conv_op(g.nsp);
    const kn_op_def *gin = &kn_op_conv_grad_input, *gw = &kn_op_conv_grad_weight;
    const bool *need = ga->needs_grad;
    bool ok = true;
    conv_attrs ax, aw; /* attrs producing x's shape, w's shape */
    switch (info->kind) {
    case K_CONV: /* y = conv(x, w) + b */
        ax = resolved(at, &g, in[0]->ndim, in[0]->shape);
        aw = resolved(at, &g, in[1]->ndim, in[1]->shape);
        if (need[0]) ok = give(ga, 0, call(gin, G, in[1], &ax));
        if (ok && need[1]) ok = give(ga, 1, call(gw, in[0], G, &aw));
        if (ok && need[2]) ok = give(ga, 2, bias_grad(G, &g));
        break;
    case K_TRANSPOSE: /* y = conv_grad_input(x, w) + b */
        aw = resolved(at, &g, in[1]->ndim, in[1]->shape);
        if (need[0]) ok = give(ga, 0, call(conv, G, in[1], &aw));
        if (ok && need[1]) ok = give(ga, 1, call(gw, G, in[0], &aw));
        if (ok && need[2]) ok = give(ga, 2, bias_grad(G, &g));
        break;
    case K_GRAD_INPUT: /* dx = gin(gy, w): d gy = conv(G, w), d w = gw(G, gy) */
        aw = resolved(at, &g, in[1]->ndim, in[1]->shape);
        if (need[0]) ok = give(ga, 0, call(conv, G, in[1], &aw));
        if (ok && need[1]) ok = give(ga, 1, call(gw, G, in[0], &aw));
        break;
    case K_GRAD_WEIGHT: /* dw = gw(x, gy): d x = gin(gy, G), d gy = conv(x, G) */
        ax = resolved(at, &g, in[0]->ndim, in[0]->shape);
        if (need[0]) ok = give(ga, 0, call(gin, in[1], G, &ax));
        if (ok && need[1]) ok = give(ga, 1, call(conv, in[0], G, &ax));
        break;
    }
    return ok ? KN_OK : kn_last_status();
}

/* ------------------------------------------------------------- op entries */
static void *conv_prepack(const kn_op_args *a);
static void conv_prepack_free(void *p);

#define CONV_DEF(op_name, kind_, nsp_, n_in_, optional_, schema)                                   \
    static const conv_info op_name##_info = {kind_, nsp_};                                         \
    const kn_op_def kn_op_##op_name = {.name = #op_name,                                           \
                                       .n_in = n_in_,                                              \
                                       .n_out = 1,                                                 \
                                       .optional_in = optional_,                                   \
                                       .attrs = schema,                                            \
                                       .n_attrs = KN_ARRAY_LEN(schema),                            \
                                       .attrs_size = sizeof(conv_attrs),                           \
                                       .dtypes = KN_DTYPES_FLOAT,                                  \
                                       .infer = conv_infer,                                        \
                                       .impls = conv_impls,                                        \
                                       .grad = conv_grad,                                          \
                                       .data = &op_name##_info,                                    \
                                       .amp = KN_AMP_LOWP,                                         \
                                       .layout = KN_LAYOUT_FIXED,                                  \
                                       .prepack = conv_prepack,                                    \
                                       .prepack_free = conv_prepack_free,                          \
                                       .prepack_in = 1}

CONV_DEF(conv1d, K_CONV, 1, 3, 1u << 2, conv_schema);
CONV_DEF(conv2d, K_CONV, 2, 3, 1u << 2, conv_schema);
CONV_DEF(conv3d, K_CONV, 3, 3, 1u << 2, conv_schema);
CONV_DEF(conv_transpose1d, K_TRANSPOSE, 1, 3, 1u << 2, conv_schema);
CONV_DEF(conv_transpose2d, K_TRANSPOSE, 2, 3, 1u << 2, conv_schema);
CONV_DEF(conv_transpose3d, K_TRANSPOSE, 3, 3, 1u << 2, conv_schema);
CONV_DEF(conv_grad_input, K_GRAD_INPUT, 0, 2, 0, grad_schema);
CONV_DEF(conv_grad_weight, K_GRAD_WEIGHT, 0, 2, 0, grad_schema);

/* Public params -> attrs: zero stride/dilation/groups take their defaults;
 * anything else is passed on for infer to check. */
static void to_attrs(const kn_conv_params *p, int nsp, conv_attrs *at)
{
    static const kn_conv_params defaults;
    if (!p) p = &defaults;
    memset(at, 0, sizeof *at);
    at->stride.n = at->pad_begin.n = at->pad_end.n = at->dilation.n = at->output_padding.n = nsp;
    for (int i = 0; i < nsp; i++) {
        at->stride.v[i] = p->stride[i] ? p->stride[i] : 1;
        at->dilation.v[i] = p->dilation[i] ? p->dilation[i] : 1;
        at->pad_begin.v[i] = p->pad_begin[i];
        at->pad_end.v[i] = p->pad_end[i];
        at->output_padding.v[i] = p->output_padding[i];
    }
    at->groups = p->groups ? p->groups : 1;
    at->pad_same = p->pad_same;
    at->layout = (int64_t)p->layout;
}

static kn_tensor *conv_call(const kn_op_def *def, int nsp, kn_tensor *x, kn_tensor *w,
                            kn_tensor *bias, const kn_conv_params *p)
{
    conv_attrs at;
    to_attrs(p, nsp, &at);
    kn_tensor *in[3] = {x, w, bias};
    return kn__op_call1(def, 3, in, &at);
}

kn_tensor *kn_conv1d(kn_tensor *x, kn_tensor *w, kn_tensor *bias, const kn_conv_params *p)
{
    return conv_call(&kn_op_conv1d, 1, x, w, bias, p);
}

kn_tensor *kn_conv2d(kn_tensor *x, kn_tensor *w, kn_tensor *bias, const kn_conv_params *p)
{
    return conv_call(&kn_op_conv2d, 2, x, w, bias, p);
}

kn_tensor *kn_conv3d(kn_tensor *x, kn_tensor *w, kn_tensor *bias, const kn_conv_params *p)
{
    return conv_call(&kn_op_conv3d, 3, x, w, bias, p);
}

kn_tensor *kn_conv_transpose1d(kn_tensor *x, kn_tensor *w, kn_tensor *bias, const kn_conv_params *p)
{
    return conv_call(&kn_op_conv_transpose1d, 1, x, w, bias, p);
}

kn_tensor *kn_conv_transpose2d(kn_tensor *x, kn_tensor *w, kn_tensor *bias, const kn_conv_params *p)
{
    return conv_call(&kn_op_conv_transpose2d, 2, x, w, bias, p);
}

kn_tensor *kn_conv_transpose3d(kn_tensor *x, kn_tensor *w, kn_tensor *bias, const kn_conv_params *p)
{
    return conv_call(&kn_op_conv_transpose3d, 3, x, w, bias, p);
}

/* ------------------------------------------------ fused entry (graph layer) */
/* The per-channel epilogue over a contiguous y, in portable code, for the
 * problems the fast paths do not take (ref ISA cap, f16, f64). */
static void epilogue_ref(const geom *g, kn_tensor *y, const kn_epilogue *ep)
{
    int64_t n = kn_tensor_numel(y), S = g->out[0] * g->out[1] * g->out[2];
    size_t es = kn_dtype_size(y->dtype), res_es = kn_dtype_size(ep->residual_dtype);
    char *p = kn__tensor_ptr(y);
    for (int64_t i = 0; i < n; i++) {
        int64_t c = g->nhwc ? i % g->cout : i / S % g->cout;
        float v = (float)kn__load(y->dtype, p + i * (int64_t)es);
        if (ep->bias) v += ep->bias[c];
        if (ep->scale || ep->shift)
            v = v * (ep->scale ? ep->scale[c] : 1.0f) + (ep->shift ? ep->shift[c] : 0.0f);
        if (ep->residual)
            v += (float)kn__load(ep->residual_dtype, (const char *)ep->residual + i * (int64_t)res_es);
        kn__store(y->dtype, p + i * (int64_t)es, kn__act_ref(ep->act, v));
    }
}

/* w packed for the forward of op `def` with attrs `at` on inputs shaped
 * like x (contiguous, as the graph gives them); NULL when no path packs. */
static kn_conv_packed *prepack_with(const kn_op_def *def, const conv_attrs *at, kn_tensor *x,
                                    kn_tensor *w, kn_dtype compute)
{
    if (kn_isa_max() < KN_ISA_AVX2 || !kn__conv_fast_dtypes(x->dtype, w->dtype, x->dtype))
        return NULL;
    kn_tensor *in[3] = {x, w, NULL};
    kn_op_args a = {.def = def, .in = in, .n_in = 3, .attrs = at, .n_out = 1};
    kn_out_meta meta;
    geom g;
    if (conv_infer(&a, &meta) || op_geometry(def, at, in, &g)) return NULL;
    kn_tensor xv = {.dtype = x->dtype, .ndim = x->ndim}, yv = {.dtype = meta.dtype, .ndim = meta.ndim};
    memcpy(xv.shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    memcpy(yv.shape, meta.shape, sizeof(int64_t) * (size_t)meta.ndim);
    kn__contiguous_strides(xv.ndim, xv.shape, xv.strides);
    kn__contiguous_strides(yv.ndim, yv.shape, yv.strides);
    kn_conv_act xa = fast_act(&xv, &g), ya = fast_act(&yv, &g);
    kn_conv_wgt wa = fast_wgt(w, &g);
    kn_status s;
    kn_conv_packed *pk = kn__conv_pack(&g, &wa, compute, &xa, &ya, &s);
    if (s) kn__error(s, "%s: out of memory packing the weights", def->name);
    return pk;
}

kn_conv_packed *kn__conv2d_prepack(kn_tensor *x, kn_tensor *w, const kn_conv_params *p,
                                   kn_dtype compute)
{
    if (!x || !w || !w->storage || (compute != KN_F32 && compute != KN_BF16))
        return kn__error_null(KN_ERR_ARG, "conv2d_prepack: x, w (with data) and an f32 or bf16 compute dtype expected");
    conv_attrs at;
    to_attrs(p, 2, &at);
    return prepack_with(&kn_op_conv2d, &at, x, w, compute);
}

/* def->prepack of the forward convolutions (graph executor). */
static void *conv_prepack(const kn_op_args *a)
{
    const conv_info *info = a->def->data;
    if (info->kind != K_CONV) return NULL;
    kn_dtype compute = a->in[0]->dtype == KN_BF16 ? KN_BF16 : KN_F32;
    return prepack_with(a->def, a->attrs, a->in[0], a->in[1], compute);
}

static void conv_prepack_free(void *p) { kn__conv_packed_free(p); }

kn_tensor *kn__conv2d_fused(kn_tensor *x, kn_tensor *w, const kn_conv_params *p,
                            const kn_epilogue *ep, kn_dtype compute, kn_tensor *out,
                            const kn_conv_packed *packed)
{
    static const char *who = "conv2d_fused";
    if (!x || !w || !x->storage || !w->storage)
        return kn__error_null(KN_ERR_ARG, "%s: x and w must be tensors with data", who);
    if (compute != KN_F32 && compute != KN_BF16)
        return kn__error_null(KN_ERR_ARG, "%s: compute dtype must be f32 or bf16", who);
    conv_attrs at;
    to_attrs(p, 2, &at);
    kn_tensor *in[3] = {x, w, NULL}, *y = NULL;
    kn_op_args a = {.def = &kn_op_conv2d, .in = in, .n_in = 3, .attrs = &at, .n_out = 1};
    kn_out_meta meta;
    geom g;
    kn_status s = conv_infer(&a, &meta);
    if (!s) s = op_geometry(a.def, &at, in, &g);
    if (s) return NULL;
    if (ep && ep->residual && ep->residual_dtype != KN_F32 && ep->residual_dtype != KN_BF16)
        return kn__error_null(KN_ERR_ARG, "%s: residual dtype must be f32 or bf16", who);
    if (out) {
        int64_t st[KN_MAX_DIMS];
        kn__contiguous_strides(meta.ndim, meta.shape, st);
        if (out->dtype != meta.dtype || out->ndim != meta.ndim || !out->storage ||
            memcmp(out->shape, meta.shape, sizeof(int64_t) * (size_t)meta.ndim) ||
            memcmp(out->strides, st, sizeof(int64_t) * (size_t)meta.ndim))
            return kn__error_null(KN_ERR_ARG, "%s: out must be a contiguous %s tensor of shape %s",
                                  who, kn_dtype_name(meta.dtype),
                                  kn__shape_str(meta.ndim, meta.shape, (char[96]){0}, 96));
        y = kn_tensor_ref(out);
    } else if (!(y = kn__tensor_new(meta.dtype, meta.ndim, meta.shape))) {
        return NULL;
    }
    a.out = &y;
    if (kn_tensor_numel(y) == 0) return y;
    if (kn_isa_max() >= KN_ISA_AVX2 && kn__conv_fast_dtypes(x->dtype, w->dtype, y->dtype)) {
        kn_conv_act xa = fast_act(x, &g), ya = fast_act(y, &g);
        kn_conv_wgt wa = fast_wgt(w, &g);
        wa.packed = packed;
        s = kn__conv_fwd(&g, &xa, &wa, &ya, compute, ep, true);
    } else {
        s = conv_ref(&a);
        if (!s && ep) epilogue_ref(&g, y, ep);
    }
    if (s) {
        kn_tensor_unref(y);
        return NULL;
    }
    kn__bump_version(y);
    return y;
}
