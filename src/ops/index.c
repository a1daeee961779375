/* index.c — indexing ops with torch semantics: gather, scatter, scatter_add,
 * index_select, take (flat, numpy-style negative indices), one_hot,
 * embedding and masked_fill. Index tensors are i64 or i32; every index is
 * range-checked before anything is written. Gradients scatter_add into zeros. */
#include "shape.h"

static const kn_attr_desc axis_attr_schema[] = {KN_ATTR(kn_index_attrs, axis, KN_ATTR_INT)};
static const kn_attr_desc one_hot_attr_schema[] = {
    KN_ATTR(kn_index_attrs, depth, KN_ATTR_INT),
    KN_ATTR(kn_index_attrs, dtype, KN_ATTR_DTYPE),
};
static const kn_attr_desc fill_attr_schema[] = {KN_ATTR(kn_index_attrs, value, KN_ATTR_FLOAT)};

extern const kn_op_def kn_op_scatter_add; /* also declared by ops.def once listed */

/* ------------------------------------------------------------ helpers */
static kn_status done(kn_tensor **slot, kn_tensor *t)
{
    *slot = t;
    return t ? KN_OK : kn_last_status();
}

static kn_status check_index_dtype(const char *op, const kn_tensor *idx)
{
    if (idx->dtype != KN_I64 && idx->dtype != KN_I32)
        return kn__error(KN_ERR_DTYPE, "%s: index has dtype %s, expected i64 or i32", op,
                         kn_dtype_name(idx->dtype));
    return KN_OK;
}

static int64_t index_at(const kn_tensor *idx, int64_t off)
{
    const char *p = kn__tensor_ptr(idx) + off * (int64_t)kn_dtype_size(idx->dtype);
    return idx->dtype == KN_I64 ? *(const int64_t *)p : *(const int32_t *)p;
}

/* Every index must lie in [lo, hi); checked before any output is written.
 * `what` describes the bound for the message. */
static kn_status check_range(const char *op, const kn_tensor *idx, int64_t lo, int64_t hi,
                             const char *what)
{
    int64_t n = kn_tensor_numel(idx);
    for (int64_t i = 0; i < n; i++) {
        int64_t v = index_at(idx, kn__strided_offset(idx, i));
        if (v < lo || v >= hi)
            return kn__error(KN_ERR_ARG, "%s: index %lld is out of range [%lld, %lld) %s", op,
                             (long long)v, (long long)lo, (long long)hi, what);
    }
    return KN_OK;
}

static kn_status check_axis_range(const char *op, const kn_tensor *idx, const kn_tensor *x, int ax)
{
    char what[64];
    snprintf(what, sizeof what, "for axis %d of size %lld", ax, (long long)x->shape[ax]);
    return check_range(op, idx, 0, x->shape[ax], what);
}

static void unravel(int64_t i, int nd, const int64_t *shape, int64_t *c)
{
    for (int d = nd - 1; d >= 0; d--) {
        c[d] = i % shape[d];
        i /= shape[d];
    }
}

static int64_t dot(int nd, const int64_t *c, const int64_t *strides)
{
    int64_t off = 0;
    for (int d = 0; d < nd; d++)
        off += c[d] * strides[d];
    return off;
}

static int attr_axis(const void *attrs, int ndim)
{
    int64_t ax = ((const kn_index_attrs *)attrs)->axis;
    return (int)(ax < 0 ? ax + ndim : ax);
}

/* index and x (and src) have the same rank; index fits x on every axis
 * but `ax` (and fits src on every axis). */
static kn_status check_fits(const char *op, const kn_tensor *idx, const kn_tensor *x, int ax,
                            const char *xname)
{
    if (idx->ndim != x->ndim)
        return kn__error(KN_ERR_SHAPE, "%s: index has %d dims, %s has %d (expected equal)", op,
                         idx->ndim, xname, x->ndim);
    for (int d = 0; d < x->ndim; d++)
        if (d != ax && idx->shape[d] > x->shape[d])
            return kn__error(KN_ERR_SHAPE, "%s: index has size %lld on axis %d, %s only %lld", op,
                             (long long)idx->shape[d], d, xname, (long long)x->shape[d]);
    return KN_OK;
}

/* ------------------------------------------------------------- gather */
static kn_status gather_infer(const kn_op_args *a, kn_out_meta *m)
{
    const kn_tensor *x = a->in[0], *idx = a->in[1];
    int ax;
    if (check_index_dtype("gather", idx) ||
        kn__shape_axis("gather", ((const kn_index_attrs *)a->attrs)->axis, x->ndim, &ax) ||
        check_fits("gather", idx, x, ax, "input"))
        return kn_last_status();
    m->dtype = x->dtype;
    m->ndim = idx->ndim;
    memcpy(m->shape, idx->shape, sizeof(int64_t) * (size_t)idx->ndim);
    return KN_OK;
}

typedef struct gather_ctx {
    const kn_tensor *x, *idx;
    kn_tensor *y;
    int ax;
} gather_ctx;

/* y[c] = x[c with c[ax] = index[c]]; y, index shaped alike */
static void gather_range(int64_t begin, int64_t end, void *arg)
{
    const gather_ctx *g = arg;
    const kn_tensor *x = g->x, *idx = g->idx;
    size_t es = kn_dtype_size(x->dtype);
    const char *xb = kn__tensor_ptr(x);
    char *yb = kn__tensor_ptr(g->y);
    for (int64_t i = begin; i < end; i++) {
        int64_t c[KN_MAX_DIMS];
        unravel(i, idx->ndim, idx->shape, c);
        int64_t v = index_at(idx, dot(idx->ndim, c, idx->strides));
        c[g->ax] = v;
        memcpy(yb + i * (int64_t)es, xb + dot(x->ndim, c, x->strides) * (int64_t)es, es);
    }
}

static kn_status gather_ref(const kn_op_args *a)
{
    gather_ctx g = {a->in[0], a->in[1], a->out[0], attr_axis(a->attrs, a->in[0]->ndim)};
    kn_status s = check_axis_range("gather", g.idx, g.x, g.ax);
    if (s) return s;
    kn_parallel_for(kn_tensor_numel(g.y), 4096, gather_range, &g);
    return KN_OK;
}
static const kn_impl gather_impls[] = {{"ref", KN_ISA_REF, NULL, gather_ref}, {0}};

static kn_status gather_grad(const kn_grad_args *g)
{
    const kn_tensor *x = g->in[0];
    kn_tensor *gy = g->grad_out[0];
    kn_tensor *z = kn_tensor_zeros(gy->dtype, x->ndim, x->shape);
    kn_tensor *r = z ? kn_scatter_add(z, attr_axis(g->attrs, x->ndim), g->in[1], gy) : NULL;
    kn_tensor_unref(z);
    return done(&g->grad_in[0], r);
}

const kn_op_def kn_op_gather = {
    .name = "gather",
    .n_in = 2,
    .n_out = 1,
    .nondiff_in = 1u << 1,
    .attrs = axis_attr_schema,
    .n_attrs = 1,
    .attrs_size = sizeof(kn_index_attrs),
    .dtypes = KN_DTYPES_ALL,
    .infer = gather_infer,
    .impls = gather_impls,
    .grad = gather_grad,
    .layout = KN_LAYOUT_FIXED,
};

kn_tensor *kn_gather(kn_tensor *x, int axis, kn_tensor *index)
{
    kn_index_attrs at = {.axis = axis};
    kn_tensor *in[2] = {x, index};
    return kn__op_call1(&kn_op_gather, 2, in, &at);
}

/* ------------------------------------------------- scatter, scatter_add */
static kn_status scatter_infer(const kn_op_args *a, kn_out_meta *m)
{
    const char *op = a->def->name;
    const kn_tensor *x = a->in[0], *idx = a->in[1], *src = a->in[2];
    int ax;
    if (check_index_dtype(op, idx) ||
        kn__shape_axis(op, ((const kn_index_attrs *)a->attrs)->axis, x->ndim, &ax) ||
        check_fits(op, idx, x, ax, "input") || check_fits(op, idx, src, -1, "src") ||
        kn__check_same_dtype(a, 0, 2))
        return kn_last_status();
    if (a->def == &kn_op_scatter_add && x->dtype == KN_BOOL)
        return kn__error(KN_ERR_DTYPE, "scatter_add: bool tensors cannot be added");
    m->dtype = x->dtype;
    m->ndim = x->ndim;
    memcpy(m->shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    return KN_OK;
}

typedef struct scatter_ctx {
    const kn_tensor *idx, *src;
    kn_tensor *y;
    int ax;
    bool add;
    int64_t col_shape[KN_MAX_DIMS]; /* index's shape with the axis set to 1 */
} scatter_ctx;

/* One column (all coordinates but the axis) per task, walked along the
 * axis in order: columns write disjoint parts of y, so the result does not
 * depend on the thread count and the last duplicate index wins. */
static void scatter_range(int64_t begin, int64_t end, void *arg)
{
    const scatter_ctx *s = arg;
    const kn_tensor *idx = s->idx, *src = s->src;
    kn_dtype dt = s->y->dtype;
    int64_t es = (int64_t)kn_dtype_size(dt), K = idx->shape[s->ax];
    const char *sb = kn__tensor_ptr(src);
    char *yb = kn__tensor_ptr(s->y);
    for (int64_t col = begin; col < end; col++) {
        int64_t c[KN_MAX_DIMS];
        unravel(col, idx->ndim, s->col_shape, c);
        int64_t ioff = dot(idx->ndim, c, idx->strides), soff = dot(idx->ndim, c, src->strides);
        int64_t yoff = dot(idx->ndim, c, s->y->strides);
        for (int64_t k = 0; k < K; k++) {
            int64_t v = index_at(idx, ioff + k * idx->strides[s->ax]);
            char *yp = yb + (yoff + v * s->y->strides[s->ax]) * es;
            const char *sp = sb + (soff + k * src->strides[s->ax]) * es;
            if (!s->add)
                memcpy(yp, sp, (size_t)es);
            else if (kn_dtype_is_float(dt))
                kn__store(dt, yp, kn__load(dt, yp) + kn__load(dt, sp));
            else
                kn__store_i64(
                    dt, yp,
                    (int64_t)((uint64_t)kn__load_i64(dt, yp) + (uint64_t)kn__load_i64(dt, sp)));
        }
    }
}

static kn_status scatter_ref(const kn_op_args *a)
{
    scatter_ctx s = {a->in[1],
                     a->in[2],
                     a->out[0],
                     attr_axis(a->attrs, a->in[0]->ndim),
                     a->def == &kn_op_scatter_add,
                     {0}};
    kn_status st = check_axis_range(a->def->name, s.idx, a->in[0], s.ax);
    if (st || (st = kn__copy_into(s.y, a->in[0]))) return st;
    memcpy(s.col_shape, s.idx->shape, sizeof(int64_t) * (size_t)s.idx->ndim);
    s.col_shape[s.ax] = 1;
    int64_t cols = kn__shape_numel(s.idx->ndim, s.col_shape);
    if (s.idx->shape[s.ax] > 0) kn_parallel_for(cols, 256, scatter_range, &s);
    return KN_OK;
}
static const kn_impl scatter_impls[] = {{"ref", KN_ISA_REF, NULL, scatter_ref}, {0}};

/* gather(g, index) brought to src's shape (src may be larger than index) */
static kn_tensor *src_grad(kn_tensor *gy, const kn_grad_args *g)
{
    const kn_tensor *idx = g->in[1], *src = g->in[2];
    kn_tensor *t = kn_gather(gy, attr_axis(g->attrs, idx->ndim), g->in[1]);
    int64_t pads[2 * KN_MAX_DIMS];
    bool pad = false;
    for (int d = 0; d < src->ndim; d++) {
        pads[2 * d] = 0;
        pads[2 * d + 1] = src->shape[d] - idx->shape[d];
        pad |= pads[2 * d + 1] != 0;
    }
    if (!t || !pad) return t;
    kn_tensor *r = kn_pad(t, pads, KN_PAD_CONSTANT, 0);
    kn_tensor_unref(t);
    return r;
}

static kn_status scatter_grad(const kn_grad_args *g)
{
    kn_tensor *gy = g->grad_out[0];
    if (g->needs_grad[2] && !(g->grad_in[2] = src_grad(gy, g))) return kn_last_status();
    if (!g->needs_grad[0]) return KN_OK;
    if (g->def == &kn_op_scatter_add) return done(&g->grad_in[0], kn_tensor_ref(gy));
    /* overwritten positions get no gradient: scatter zeros over them */
    const kn_tensor *src = g->in[2];
    kn_tensor *z = kn_tensor_zeros(gy->dtype, src->ndim, src->shape);
    kn_tensor *r = z ? kn_scatter(gy, attr_axis(g->attrs, src->ndim), g->in[1], z) : NULL;
    kn_tensor_unref(z);
    return done(&g->grad_in[0], r);
}

const kn_op_def kn_op_scatter = {
    .name = "scatter",
    .n_in = 3,
    .n_out = 1,
    .nondiff_in = 1u << 1,
    .attrs = axis_attr_schema,
    .n_attrs = 1,
    .attrs_size = sizeof(kn_index_attrs),
    .dtypes = KN_DTYPES_ALL,
    .infer = scatter_infer,
    .impls = scatter_impls,
    .grad = scatter_grad,
    .layout = KN_LAYOUT_FIXED,
};

const kn_op_def kn_op_scatter_add = {
    .name = "scatter_add",
    .n_in = 3,
    .n_out = 1,
    .nondiff_in = 1u << 1,
    .attrs = axis_attr_schema,
    .n_attrs = 1,
    .attrs_size = sizeof(kn_index_attrs),
    .dtypes = KN_DTYPES_FLOAT | KN_DTYPES_INT,
    .infer = scatter_infer,
    .impls = scatter_impls,
    .grad = scatter_grad,
    .layout = KN_LAYOUT_FIXED,
};

kn_tensor *kn_scatter(kn_tensor *x, int axis, kn_tensor *index, kn_tensor *src)
{
    kn_index_attrs at = {.axis = axis};
    kn_tensor *in[3] = {x, index, src};
    return kn__op_call1(&kn_op_scatter, 3, in, &at);
}

kn_tensor *kn_scatter_add(kn_tensor *x, int axis, kn_tensor *index, kn_tensor *src)
{
    kn_index_attrs at = {.axis = axis};
    kn_tensor *in[3] = {x, index, src};
    return kn__op_call1(&kn_op_scatter_add, 3, in, &at);
}

/* ------------------------------------------------------- index_select */
static kn_status index_select_infer(const kn_op_args *a, kn_out_meta *m)
{
    const kn_tensor *x = a->in[0], *idx = a->in[1];
    int ax;
    if (check_index_dtype("index_select", idx) ||
        kn__shape_axis("index_select", ((const kn_index_attrs *)a->attrs)->axis, x->ndim, &ax))
        return kn_last_status();
    if (idx->ndim > 1)
        return kn__error(KN_ERR_SHAPE, "index_select: index has %d dims, expected 0 or 1",
                         idx->ndim);
    m->dtype = x->dtype;
    m->ndim = x->ndim;
    memcpy(m->shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    m->shape[ax] = kn_tensor_numel(idx);
    return KN_OK;
}

/* y (x's shape, axis -> K) = x[..., index[k], ...] */
static void index_select_range(int64_t begin, int64_t end, void *arg)
{
    const gather_ctx *g = arg;
    const kn_tensor *x = g->x, *idx = g->idx, *y = g->y;
    size_t es = kn_dtype_size(x->dtype);
    int64_t istride = idx->ndim ? idx->strides[0] : 0;
    const char *xb = kn__tensor_ptr(x);
    char *yb = kn__tensor_ptr(y);
    for (int64_t i = begin; i < end; i++) {
        int64_t c[KN_MAX_DIMS];
        unravel(i, y->ndim, y->shape, c);
        c[g->ax] = index_at(idx, c[g->ax] * istride);
        memcpy(yb + i * (int64_t)es, xb + dot(x->ndim, c, x->strides) * (int64_t)es, es);
    }
}

static kn_status index_select_ref(const kn_op_args *a)
{
    gather_ctx g = {a->in[0], a->in[1], a->out[0], attr_axis(a->attrs, a->in[0]->ndim)};
    kn_status s = check_axis_range("index_select", g.idx, g.x, g.ax);
    if (s) return s;
    kn_parallel_for(kn_tensor_numel(g.y), 4096, index_select_range, &g);
    return KN_OK;
}
static const kn_impl index_select_impls[] = {{"ref", KN_ISA_REF, NULL, index_select_ref}, {0}};

/* scatter_add of g (shape y) into zeros shaped `shape`, along ax, with the
 * 1-d index broadcast over g's other axes. */
static kn_tensor *index_add_zeros(kn_tensor *gy, int ax, kn_tensor *index, int ndim,
                                  const int64_t *shape)
{
    kn_scratch s = {0};
    int64_t ishape[KN_MAX_DIMS];
    for (int d = 0; d < gy->ndim; d++)
        ishape[d] = d == ax ? gy->shape[d] : 1;
    kn_tensor *i1 = kn__keep(&s, kn_reshape(index, gy->ndim, ishape));
    kn_tensor *ie = kn__keep(&s, kn_expand(i1, gy->ndim, gy->shape));
    kn_tensor *z = kn__keep(&s, ie ? kn_tensor_zeros(gy->dtype, ndim, shape) : NULL);
    kn_tensor *r = z ? kn_scatter_add(z, ax, ie, gy) : NULL;
    kn__scratch_free(&s);
    return r;
}

static kn_status index_select_grad(const kn_grad_args *g)
{
    const kn_tensor *x = g->in[0];
    return done(&g->grad_in[0], index_add_zeros(g->grad_out[0], attr_axis(g->attrs, x->ndim),
                                                g->in[1], x->ndim, x->shape));
}

const kn_op_def kn_op_index_select = {
    .name = "index_select",
    .n_in = 2,
    .n_out = 1,
    .nondiff_in = 1u << 1,
    .attrs = axis_attr_schema,
    .n_attrs = 1,
    .attrs_size = sizeof(kn_index_attrs),
    .dtypes = KN_DTYPES_ALL,
    .infer = index_select_infer,
    .impls = index_select_impls,
    .grad = index_select_grad,
    .layout = KN_LAYOUT_FIXED,
};

kn_tensor *kn_index_select(kn_tensor *x, int axis, kn_tensor *index)
{
    kn_index_attrs at = {.axis = axis};
    kn_tensor *in[2] = {x, index};
    return kn__op_call1(&kn_op_index_select, 2, in, &at);
}

/* --------------------------------------------------------------- take */
static kn_status take_infer(const kn_op_args *a, kn_out_meta *m)
{
    const kn_tensor *x = a->in[0], *idx = a->in[1];
    if (check_index_dtype("take", idx)) return kn_last_status();
    m->dtype = x->dtype;
    m->ndim = idx->ndim;
    memcpy(m->shape, idx->shape, sizeof(int64_t) * (size_t)idx->ndim);
    return KN_OK;
}

/* y (index's shape) = x.flat[index], negative indices from the end */
static void take_range(int64_t begin, int64_t end, void *arg)
{
    const gather_ctx *g = arg;
    const kn_tensor *x = g->x, *idx = g->idx;
    size_t es = kn_dtype_size(x->dtype);
    int64_t n = kn_tensor_numel(x);
    const char *xb = kn__tensor_ptr(x);
    char *yb = kn__tensor_ptr(g->y);
    for (int64_t i = begin; i < end; i++) {
        int64_t v = index_at(idx, kn__strided_offset(idx, i));
        if (v < 0) v += n;
        memcpy(yb + i * (int64_t)es, xb + kn__strided_offset(x, v) * (int64_t)es, es);
    }
}

static kn_status take_ref(const kn_op_args *a)
{
    gather_ctx g = {a->in[0], a->in[1], a->out[0], 0};
    int64_t n = kn_tensor_numel(g.x);
    char what[64];
    snprintf(what, sizeof what, "for an input of %lld elements", (long long)n);
    kn_status s = check_range("take", g.idx, -n, n, what);
    if (s) return s;
    kn_parallel_for(kn_tensor_numel(g.y), 4096, take_range, &g);
    return KN_OK;
}
static const kn_impl take_impls[] = {{"ref", KN_ISA_REF, NULL, take_ref}, {0}};

/* Indices in [-n, n) are shifted to [0, 2n) and added into a buffer of 2n,
 * whose halves are then summed: no data-dependent step, so it also traces. */
static kn_status take_grad(const kn_grad_args *g)
{
    kn_scratch s = {0};
    const kn_tensor *x = g->in[0];
    kn_tensor *gy = g->grad_out[0];
    int64_t n = kn_tensor_numel(x), n2 = 2 * n, flat = -1;
    kn_tensor *i2 = kn__keep(&s, kn_add_scalar(g->in[1], (double)n));
    kn_tensor *i1 = kn__keep(&s, kn_reshape(i2, 1, &flat));
    kn_tensor *g1 = kn__keep(&s, kn_reshape(gy, 1, &flat));
    kn_tensor *z = kn__keep(&s, g1 ? kn_tensor_zeros(gy->dtype, 1, &n2) : NULL);
    kn_tensor *acc = kn__keep(&s, z ? kn_scatter_add(z, 0, i1, g1) : NULL);
    kn_tensor *lo = kn__keep(&s, acc ? kn_narrow(acc, 0, 0, n) : NULL);
    kn_tensor *hi = kn__keep(&s, acc ? kn_narrow(acc, 0, n, n) : NULL);
    kn_tensor *sum = kn__keep(&s, hi ? kn_add(lo, hi) : NULL);
    kn_tensor *r = sum ? kn_reshape(sum, x->ndim, x->shape) : NULL;
    kn__scratch_free(&s);
    return done(&g->grad_in[0], r);
}

const kn_op_def kn_op_take = {
    .name = "take",
    .n_in = 2,
    .n_out = 1,
    .nondiff_in = 1u << 1,
    .dtypes = KN_DTYPES_ALL,
    .infer = take_infer,
    .impls = take_impls,
    .grad = take_grad,
    .layout = KN_LAYOUT_FIXED,
};

kn_tensor *kn_take(kn_tensor *x, kn_tensor *index)
{
    kn_tensor *in[2] = {x, index};
    return kn__op_call1(&kn_op_take, 2, in, NULL);
}

/* ------------------------------------------------------------ one_hot */
static kn_status one_hot_infer(const kn_op_args *a, kn_out_meta *m)
{
    const kn_index_attrs *at = a->attrs;
    const kn_tensor *idx = a->in[0];
    if (check_index_dtype("one_hot", idx)) return kn_last_status();
    if (at->depth < 1)
        return kn__error(KN_ERR_ARG, "one_hot: depth is %lld, expected >= 1", (long long)at->depth);
    if ((unsigned)at->dtype >= KN_DTYPE_COUNT)
        return kn__error(KN_ERR_DTYPE, "one_hot: dtype %d is not a kn_dtype", (int)at->dtype);
    if (idx->ndim >= KN_MAX_DIMS)
        return kn__error(KN_ERR_SHAPE, "one_hot: index has %d dims, the most is %d", idx->ndim,
                         KN_MAX_DIMS - 1);
    m->dtype = at->dtype;
    m->ndim = idx->ndim + 1;
    memcpy(m->shape, idx->shape, sizeof(int64_t) * (size_t)idx->ndim);
    m->shape[idx->ndim] = at->depth;
    return kn__check_shape("one_hot", m->ndim, m->shape);
}

/* y (index's shape, depth) = 1 where the last coordinate equals index */
static kn_status one_hot_ref(const kn_op_args *a)
{
    const kn_index_attrs *at = a->attrs;
    const kn_tensor *idx = a->in[0];
    kn_tensor *y = a->out[0];
    char what[64];
    snprintf(what, sizeof what, "for depth %lld", (long long)at->depth);
    kn_status s = check_range("one_hot", idx, 0, at->depth, what);
    if (s) return s;
    int64_t n = kn_tensor_numel(idx), es = (int64_t)kn_dtype_size(y->dtype);
    char *yb = kn__tensor_ptr(y);
    memset(yb, 0, (size_t)(n * at->depth * es));
    for (int64_t i = 0; i < n; i++)
        kn__store(y->dtype, yb + (i * at->depth + index_at(idx, kn__strided_offset(idx, i))) * es,
                  1.0);
    return KN_OK;
}
static const kn_impl one_hot_impls[] = {{"ref", KN_ISA_REF, NULL, one_hot_ref}, {0}};

const kn_op_def kn_op_one_hot = {
    .name = "one_hot",
    .n_in = 1,
    .n_out = 1,
    .nondiff_in = 1u << 0,
    .attrs = one_hot_attr_schema,
    .n_attrs = 2,
    .attrs_size = sizeof(kn_index_attrs),
    .dtypes = KN_DT(KN_I64) | KN_DT(KN_I32),
    .infer = one_hot_infer,
    .impls = one_hot_impls,
    .layout = KN_LAYOUT_FIXED,
};

kn_tensor *kn_one_hot(kn_tensor *index, int64_t depth, kn_dtype dt)
{
    kn_index_attrs at = {.depth = depth, .dtype = dt};
    kn_tensor *in[1] = {index};
    return kn__op_call1(&kn_op_one_hot, 1, in, &at);
}

/* ---------------------------------------------------------- embedding */
static kn_status embedding_infer(const kn_op_args *a, kn_out_meta *m)
{
    const kn_tensor *w = a->in[0], *idx = a->in[1];
    if (w->ndim != 2)
        return kn__error(KN_ERR_SHAPE, "embedding: weight has %d dims, expected 2 (V, D)", w->ndim);
    if (check_index_dtype("embedding", idx)) return kn_last_status();
    if (idx->ndim >= KN_MAX_DIMS)
        return kn__error(KN_ERR_SHAPE, "embedding: index has %d dims, the most is %d", idx->ndim,
                         KN_MAX_DIMS - 1);
    m->dtype = w->dtype;
    m->ndim = idx->ndim + 1;
    memcpy(m->shape, idx->shape, sizeof(int64_t) * (size_t)idx->ndim);
    m->shape[idx->ndim] = w->shape[1];
    return kn__check_shape("embedding", m->ndim, m->shape);
}

/* y (..., D) = weight (V, D) rows picked by index (...) */
static void embedding_range(int64_t begin, int64_t end, void *arg)
{
    const gather_ctx *g = arg;
    const kn_tensor *w = g->x, *idx = g->idx;
    int64_t D = w->shape[1], es = (int64_t)kn_dtype_size(w->dtype);
    const char *wb = kn__tensor_ptr(w);
    char *yb = kn__tensor_ptr(g->y);
    for (int64_t i = begin; i < end; i++) {
        int64_t v = index_at(idx, kn__strided_offset(idx, i));
        for (int64_t j = 0; j < D; j++)
            memcpy(yb + (i * D + j) * es, wb + (v * w->strides[0] + j * w->strides[1]) * es,
                   (size_t)es);
    }
}

static kn_status embedding_ref(const kn_op_args *a)
{
    gather_ctx g = {a->in[0], a->in[1], a->out[0], 0};
    char what[64];
    snprintf(what, sizeof what, "for a weight of %lld rows", (long long)g.x->shape[0]);
    kn_status s = check_range("embedding", g.idx, 0, g.x->shape[0], what);
    if (s) return s;
    int64_t D = g.x->shape[1];
    kn_parallel_for(kn_tensor_numel(g.idx), D > 0 ? 1 + 4096 / D : 4096, embedding_range, &g);
    return KN_OK;
}
static const kn_impl embedding_impls[] = {{"ref", KN_ISA_REF, NULL, embedding_ref}, {0}};

static kn_status embedding_grad(const kn_grad_args *g)
{
    kn_scratch s = {0};
    const kn_tensor *w = g->in[0];
    int64_t s2[2] = {-1, w->shape[1]}, flat = -1;
    kn_tensor *g2 = kn__keep(&s, kn_reshape(g->grad_out[0], 2, s2));
    kn_tensor *i1 = kn__keep(&s, kn_reshape(g->in[1], 1, &flat));
    kn_tensor *r = g2 && i1 ? index_add_zeros(g2, 0, i1, 2, w->shape) : NULL;
    kn__scratch_free(&s);
    return done(&g->grad_in[0], r);
}

const kn_op_def kn_op_embedding = {
    .name = "embedding",
    .n_in = 2,
    .n_out = 1,
    .nondiff_in = 1u << 1,
    .dtypes = KN_DTYPES_ALL,
    .infer = embedding_infer,
    .impls = embedding_impls,
    .grad = embedding_grad,
    .layout = KN_LAYOUT_FIXED,
};

kn_tensor *kn_embedding(kn_tensor *weight, kn_tensor *index)
{
    kn_tensor *in[2] = {weight, index};
    return kn__op_call1(&kn_op_embedding, 2, in, NULL);
}

/* -------------------------------------------------------- masked_fill */
static kn_status masked_fill_infer(const kn_op_args *a, kn_out_meta *m)
{
    const kn_tensor *x = a->in[0], *mask = a->in[1];
    if (mask->dtype != KN_BOOL)
        return kn__error(KN_ERR_DTYPE, "masked_fill: mask has dtype %s, expected bool",
                         kn_dtype_name(mask->dtype));
    m->dtype = x->dtype;
    return kn__broadcast_shapes("masked_fill", x->ndim, x->shape, mask->ndim, mask->shape, &m->ndim,
                                m->shape);
}

typedef struct fill_ctx {
    size_t es;
    char value[16];
} fill_ctx;

/* y = mask ? value : x, all three broadcast to y's shape */
static void masked_fill_loop(char **p, const int64_t *st, int64_t n, void *arg)
{
    const fill_ctx *f = arg;
    for (int64_t i = 0; i < n; i++)
        memcpy(p[0] + i * st[0], *(const bool *)(p[2] + i * st[2]) ? f->value : p[1] + i * st[1],
               f->es);
}

static kn_status masked_fill_ref(const kn_op_args *a)
{
    kn_tensor *y = a->out[0];
    fill_ctx f = {kn_dtype_size(y->dtype), {0}};
    kn__store(y->dtype, f.value, ((const kn_index_attrs *)a->attrs)->value);
    kn_iter it;
    const kn_tensor *ops[3] = {y, a->in[0], a->in[1]};
    kn__iter_init(&it, 3, ops, y->ndim, y->shape);
    kn__iter_run(&it, masked_fill_loop, &f, true);
    return KN_OK;
}
static const kn_impl masked_fill_impls[] = {{"ref", KN_ISA_REF, NULL, masked_fill_ref}, {0}};

static kn_status masked_fill_grad(const kn_grad_args *g)
{
    return done(&g->grad_in[0], kn_masked_fill(g->grad_out[0], g->in[1], 0));
}

const kn_op_def kn_op_masked_fill = {
    .name = "masked_fill",
    .n_in = 2,
    .n_out = 1,
    .nondiff_in = 1u << 1,
    .attrs = fill_attr_schema,
    .n_attrs = 1,
    .attrs_size = sizeof(kn_index_attrs),
    .dtypes = KN_DTYPES_ALL,
    .infer = masked_fill_infer,
    .impls = masked_fill_impls,
    .grad = masked_fill_grad,
    .layout = KN_LAYOUT_AGNOSTIC,
};

kn_tensor *kn_masked_fill(kn_tensor *x, kn_tensor *mask, double value)
{
    kn_index_attrs at = {.value = value};
    kn_tensor *in[2] = {x, mask};
    return kn__op_call1(&kn_op_masked_fill, 2, in, &at);
}
