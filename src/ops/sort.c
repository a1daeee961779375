/* sort.c — ops along one axis: cumsum, sort (stable), argsort and topk.
 * Each line along the axis is handled whole by one thread, in a fixed
 * order, so results never depend on the thread count. NaN sorts as the
 * largest value (as in PyTorch). Attribute structs live in reduce.h. */
#include "reduce.h"

#include <math.h>

/* Declared here too, so this file compiles whichever ops ops.def lists. */
extern const kn_op_def kn_op_cumsum, kn_op_sort, kn_op_argsort, kn_op_topk;

static const kn_attr_desc cumsum_attr_schema[] = {
    KN_ATTR(kn_cumsum_attrs, axis, KN_ATTR_INT),
    KN_ATTR(kn_cumsum_attrs, reverse, KN_ATTR_BOOL),
};
static const kn_attr_desc sort_attr_schema[] = {
    KN_ATTR(kn_sort_attrs, axis, KN_ATTR_INT),
    KN_ATTR(kn_sort_attrs, descending, KN_ATTR_BOOL),
};
static const kn_attr_desc topk_attr_schema[] = {
    KN_ATTR(kn_topk_attrs, k, KN_ATTR_INT),
    KN_ATTR(kn_topk_attrs, axis, KN_ATTR_INT),
    KN_ATTR(kn_topk_attrs, largest, KN_ATTR_BOOL),
    KN_ATTR(kn_topk_attrs, sorted, KN_ATTR_BOOL),
};

/* ---- lines: x seen as (outer, len, inner) around `axis`, any strides */
typedef struct lines {
    const char *xbase;
    kn_dtype dt;
    int64_t es, len, stride; /* stride along the axis, in elements */
    int64_t inner, n;        /* n = outer * inner lines */
    int n_other;
    int64_t other_shape[KN_MAX_DIMS], other_stride[KN_MAX_DIMS];
} lines;

/* axis is normalized; a 0-d tensor is one line of length 1. */
static void lines_init(lines *l, const kn_tensor *x, int axis)
{
    l->xbase = kn__tensor_ptr(x);
    l->dt = x->dtype;
    l->es = (int64_t)kn_dtype_size(x->dtype);
    l->len = x->ndim ? x->shape[axis] : 1;
    l->stride = x->ndim ? x->strides[axis] : 0;
    l->inner = 1;
    l->n = 1;
    l->n_other = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (d == axis) continue;
        l->other_shape[l->n_other] = x->shape[d];
        l->other_stride[l->n_other++] = x->strides[d];
        l->n *= x->shape[d];
        if (d > axis) l->inner *= x->shape[d];
    }
}

/* Element offset in x of line i's first element. */
static int64_t line_offset(const lines *l, int64_t i)
{
    int64_t off = 0;
    for (int d = l->n_other - 1; d >= 0; d--) {
        off += (i % l->other_shape[d]) * l->other_stride[d];
        i /= l->other_shape[d];
    }
    return off;
}

/* Offset of element j of line i in a contiguous output whose axis has m. */
static int64_t out_offset(const lines *l, int64_t i, int64_t j, int64_t m)
{
    return ((i / l->inner) * m + j) * l->inner + i % l->inner;
}

static kn_status norm_axis(const char *who, int64_t axis, int ndim, int *out)
{
    int a = (int)axis;
    if (ndim == 0 && (axis == 0 || axis == -1)) {
        *out = 0;
        return KN_OK;
    }
    if (a != axis || !kn__norm_axis(&a, ndim))
        return kn__error(KN_ERR_ARG, "%s: axis %lld out of range for %d dims", who, (long long)axis,
                         ndim);
    *out = a;
    return KN_OK;
}

static kn_status check_dtype(const kn_op_args *a)
{
    if (!(a->def->dtypes & KN_DT(a->in[0]->dtype)))
        return kn__error(KN_ERR_DTYPE, "%s: dtype %s is not supported", a->def->name,
                         kn_dtype_name(a->in[0]->dtype));
    return KN_OK;
}

static void same_shape(const kn_tensor *x, kn_out_meta *out, kn_dtype dt)
{
    out->dtype = dt;
    out->ndim = x->ndim;
    memcpy(out->shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
}

/* ------------------------------------------------------------- cumsum */
static kn_status cumsum_infer(const kn_op_args *a, kn_out_meta *out)
{
    const kn_tensor *x = a->in[0];
    int axis = 0;
    kn_status s = check_dtype(a);
    if (s || (s = norm_axis("cumsum", ((const kn_cumsum_attrs *)a->attrs)->axis, x->ndim, &axis)))
        return s;
    same_shape(x, out, kn_dtype_is_float(x->dtype) ? x->dtype : KN_I64);
    return KN_OK;
}

typedef struct cumsum_ctx {
    lines l;
    bool reverse;
    kn_tensor *y;
} cumsum_ctx;

/* x (outer, len, inner) -> y of the same shape (contiguous); floats sum in
 * double, integers exactly in int64 (wrapping). */
static void cumsum_range(int64_t begin, int64_t end, void *arg)
{
    const cumsum_ctx *c = arg;
    const lines *l = &c->l;
    kn_dtype ydt = c->y->dtype;
    int64_t ys = (int64_t)kn_dtype_size(ydt);
    char *ybase = kn__tensor_ptr(c->y);
    bool fl = kn_dtype_is_float(l->dt);
    for (int64_t i = begin; i < end; i++) {
        const char *p = l->xbase + line_offset(l, i) * l->es;
        double s = 0;
        uint64_t si = 0;
        for (int64_t t = 0; t < l->len; t++) {
            int64_t j = c->reverse ? l->len - 1 - t : t;
            const char *q = p + j * l->stride * l->es;
            char *o = ybase + out_offset(l, i, j, l->len) * ys;
            if (fl) {
                s += kn__load(l->dt, q);
                kn__store(ydt, o, s);
            } else {
                si += (uint64_t)kn__load_i64(l->dt, q);
                kn__store_i64(ydt, o, (int64_t)si);
            }
        }
    }
}

static kn_status cumsum_ref(const kn_op_args *a)
{
    const kn_cumsum_attrs *at = a->attrs;
    cumsum_ctx c = {.reverse = at->reverse, .y = a->out[0]};
    int axis = 0;
    norm_axis("cumsum", at->axis, a->in[0]->ndim, &axis);
    lines_init(&c.l, a->in[0], axis);
    int64_t grain = 4096 / (c.l.len > 0 ? c.l.len : 1);
    kn_parallel_for(c.l.n, grain < 1 ? 1 : grain, cumsum_range, &c);
    return KN_OK;
}
static const kn_impl cumsum_impls[] = {{"ref", KN_ISA_REF, NULL, cumsum_ref}, {0}};

static kn_tensor *cumsum_call(kn_tensor *x, int64_t axis, bool reverse);

static kn_status cumsum_grad(const kn_grad_args *g) /* a reversed cumsum of g */
{
    const kn_cumsum_attrs *at = g->attrs;
    g->grad_in[0] = cumsum_call(g->grad_out[0], at->axis, !at->reverse);
    return g->grad_in[0] ? KN_OK : kn_last_status();
}

const kn_op_def kn_op_cumsum = {
    .name = "cumsum",
    .n_in = 1,
    .n_out = 1,
    .attrs = cumsum_attr_schema,
    .n_attrs = 2,
    .attrs_size = sizeof(kn_cumsum_attrs),
    .dtypes = KN_DTYPES_ALL,
    .infer = cumsum_infer,
    .impls = cumsum_impls,
    .grad = cumsum_grad,
    .amp = KN_AMP_FP32,
    .layout = KN_LAYOUT_FIXED,
};

static kn_tensor *cumsum_call(kn_tensor *x, int64_t axis, bool reverse)
{
    kn_cumsum_attrs at = {axis, reverse};
    kn_tensor *in[1] = {x};
    return kn__op_call1(&kn_op_cumsum, 1, in, &at);
}

kn_tensor *kn_cumsum(kn_tensor *x, int axis)
{
    return cumsum_call(x, axis, false);
}

/* --------------------------------------------------------- sort engine
 * Stable bottom-up merge sort of (key, index) pairs. Every dtype maps to an
 * unsigned key with the same order: floats by their bits (sign flipped,
 * -0 as +0, every NaN as one NaN above +inf), integers with the sign bit
 * flipped; descending sorts the complemented keys, so ties keep their
 * original order both ways. */
typedef struct sort_item {
    uint64_t key;
    int64_t idx;
} sort_item;

static uint64_t sort_key(kn_dtype dt, const char *q, bool desc)
{
    uint64_t u;
    if (kn_dtype_is_float(dt)) {
        double v = kn__load(dt, q);
        if (v == 0) v = 0.0;
        if (isnan(v)) v = NAN;
        memcpy(&u, &v, sizeof u);
        u = u >> 63 ? ~u : u | ((uint64_t)1 << 63);
    } else {
        u = (uint64_t)kn__load_i64(dt, q) ^ ((uint64_t)1 << 63);
    }
    return desc ? ~u : u;
}

/* Sorts a[0..n) (scratch tmp[0..n)); the result ends in a. */
static void merge_sort(sort_item *a, sort_item *tmp, int64_t n)
{
    sort_item *src = a, *dst = tmp;
    for (int64_t w = 1; w < n; w *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * w) {
            int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int64_t i = lo, j = mid, o = lo;
            while (i < mid && j < hi) { /* branch-free: random keys defeat prediction */
                int64_t take_j = src[j].key < src[i].key;
                dst[o++] = src[take_j ? j : i];
                j += take_j;
                i += 1 - take_j;
            }
            while (i < mid)
                dst[o++] = src[i++];
            while (j < hi)
                dst[o++] = src[j++];
        }
        sort_item *t = src;
        src = dst;
        dst = t;
    }
    if (src != a) memcpy(a, src, (size_t)n * sizeof *a);
}

typedef struct sort_ctx {
    lines l;
    bool desc;
    int64_t m;         /* outputs per line (len, or k for topk) */
    kn_tensor *values; /* may be NULL (argsort) */
    kn_tensor *indices;
    char *scratch; /* per block: 2 len sort_items */
    int64_t n_blocks;
} sort_ctx;

/* line i of x (len elements, any stride) -> m values and indices along the
 * axis of the contiguous outputs */
static void sort_one(const sort_ctx *c, int64_t i, char *scratch)
{
    const lines *l = &c->l;
    int64_t len = l->len;
    sort_item *a = (sort_item *)scratch, *tmp = a + len;
    const char *p = l->xbase + line_offset(l, i) * l->es;
    for (int64_t j = 0; j < len; j++) {
        a[j].key = sort_key(l->dt, p + j * l->stride * l->es, c->desc);
        a[j].idx = j;
    }
    merge_sort(a, tmp, len);
    int64_t vs = c->values ? (int64_t)kn_dtype_size(c->values->dtype) : 0;
    for (int64_t j = 0; j < c->m; j++) {
        int64_t o = out_offset(l, i, j, c->m);
        ((int64_t *)kn__tensor_ptr(c->indices))[o] = a[j].idx;
        if (c->values) /* same dtype: copy the bits */
            memcpy(kn__tensor_ptr(c->values) + o * vs, p + a[j].idx * l->stride * l->es,
                   (size_t)vs);
    }
}

static void sort_blocks(int64_t begin, int64_t end, void *arg)
{
    const sort_ctx *c = arg;
    size_t per = (size_t)c->l.len * 2 * sizeof(sort_item);
    for (int64_t b = begin; b < end; b++) {
        int64_t first = b * c->l.n / c->n_blocks, last = (b + 1) * c->l.n / c->n_blocks;
        for (int64_t i = first; i < last; i++)
            sort_one(c, i, c->scratch + (size_t)b * per);
    }
}

#define SORT_SCRATCH_BYTES ((int64_t)1 << 24)

/* Sorts every line of x; each line's result is the same however lines are
 * grouped into blocks, so the block count may follow memory limits. */
static kn_status sort_run(kn_tensor *x, int64_t axis, bool desc, int64_t m, kn_tensor *values,
                          kn_tensor *indices)
{
    int ax = 0;
    norm_axis("sort", axis, x->ndim, &ax);
    sort_ctx c = {.desc = desc, .m = m, .values = values, .indices = indices};
    lines_init(&c.l, x, ax);
    if (c.l.n == 0 || m == 0) return KN_OK;
    int64_t per = c.l.len * 2 * (int64_t)sizeof(sort_item);
    int64_t blocks = SORT_SCRATCH_BYTES / per;
    if (blocks > 64) blocks = 64;
    if (blocks > c.l.n) blocks = c.l.n;
    if (blocks < 1) blocks = 1;
    c.n_blocks = blocks;
    c.scratch = kn_alloc((size_t)(blocks * per));
    if (!c.scratch) return kn_last_status();
    kn_parallel_for(blocks, 1, sort_blocks, &c);
    kn_free(c.scratch);
    return KN_OK;
}

/* ---- sort: values and i64 indices */
static kn_status sort_infer(const kn_op_args *a, kn_out_meta *out)
{
    const kn_tensor *x = a->in[0];
    int axis = 0;
    kn_status s = check_dtype(a);
    if (s || (s = norm_axis(a->def->name, ((const kn_sort_attrs *)a->attrs)->axis, x->ndim, &axis)))
        return s;
    if (a->def == &kn_op_argsort) {
        same_shape(x, &out[0], KN_I64);
        return KN_OK;
    }
    same_shape(x, &out[0], x->dtype);
    same_shape(x, &out[1], KN_I64);
    return KN_OK;
}

static kn_status sort_ref(const kn_op_args *a)
{
    const kn_sort_attrs *at = a->attrs;
    kn_tensor *x = a->in[0];
    int64_t len = x->ndim ? kn_tensor_dim(x, (int)at->axis) : 1;
    if (a->def == &kn_op_argsort)
        return sort_run(x, at->axis, at->descending, len, NULL, a->out[0]);
    return sort_run(x, at->axis, at->descending, len, a->out[0], a->out[1]);
}
static const kn_impl sort_impls[] = {{"ref", KN_ISA_REF, NULL, sort_ref}, {0}};

/* Gradient of values taken along an axis by indices: the upstream gradient
 * scattered back into zeros shaped like x. */
static kn_status take_along_grad(const kn_grad_args *g, int64_t axis)
{
    kn_tensor *x = g->in[0], *gv = g->grad_out[0];
    if (!gv) return KN_OK;
    kn_tensor *z = kn_tensor_zeros(gv->dtype, x->ndim, x->shape);
    if (!z) return kn_last_status();
    g->grad_in[0] = kn_scatter_add(z, (int)axis, g->out[1], gv);
    kn_tensor_unref(z);
    return g->grad_in[0] ? KN_OK : kn_last_status();
}

static kn_status sort_grad(const kn_grad_args *g)
{
    return take_along_grad(g, ((const kn_sort_attrs *)g->attrs)->axis);
}

const kn_op_def kn_op_sort = {
    .name = "sort",
    .n_in = 1,
    .n_out = 2,
    .attrs = sort_attr_schema,
    .n_attrs = 2,
    .attrs_size = sizeof(kn_sort_attrs),
    .dtypes = KN_DTYPES_ALL,
    .infer = sort_infer,
    .impls = sort_impls,
    .grad = sort_grad,
    .amp = KN_AMP_NONE,
    .layout = KN_LAYOUT_FIXED,
};

const kn_op_def kn_op_argsort = {
    .name = "argsort",
    .n_in = 1,
    .n_out = 1,
    .attrs = sort_attr_schema,
    .n_attrs = 2,
    .attrs_size = sizeof(kn_sort_attrs),
    .dtypes = KN_DTYPES_ALL,
    .infer = sort_infer,
    .impls = sort_impls,
    .amp = KN_AMP_NONE,
    .layout = KN_LAYOUT_FIXED,
};

static kn_status two_outputs(const char *who, kn_tensor **values, kn_tensor **indices)
{
    if (!values || !indices)
        return kn__error(KN_ERR_ARG, "%s: values and indices must not be NULL", who);
    *values = *indices = NULL;
    return KN_OK;
}

kn_status kn_sort(kn_tensor *x, int axis, bool descending, kn_tensor **values, kn_tensor **indices)
{
    kn_status s = two_outputs("sort", values, indices);
    if (s) return s;
    kn_sort_attrs at = {axis, descending};
    kn_tensor *in[1] = {x}, *out[2];
    s = kn__op_call(&kn_op_sort, 1, in, &at, 2, out);
    if (!s) *values = out[0], *indices = out[1];
    return s;
}

kn_tensor *kn_argsort(kn_tensor *x, int axis, bool descending)
{
    kn_sort_attrs at = {axis, descending};
    kn_tensor *in[1] = {x};
    return kn__op_call1(&kn_op_argsort, 1, in, &at);
}

/* ---- topk: the k largest (or smallest) along axis, always sorted; ties
 * keep the lower index first */
static kn_status topk_infer(const kn_op_args *a, kn_out_meta *out)
{
    const kn_topk_attrs *at = a->attrs;
    const kn_tensor *x = a->in[0];
    int axis = 0;
    kn_status s = check_dtype(a);
    if (s || (s = norm_axis("topk", at->axis, x->ndim, &axis))) return s;
    int64_t len = x->ndim ? x->shape[axis] : 1;
    if (at->k < 0 || at->k > len)
        return kn__error(KN_ERR_ARG, "topk: k is %lld, expected 0..%lld (the size of axis %d)",
                         (long long)at->k, (long long)len, axis);
    same_shape(x, &out[0], x->dtype);
    if (x->ndim) out[0].shape[axis] = at->k;
    same_shape(x, &out[1], KN_I64);
    if (x->ndim) out[1].shape[axis] = at->k;
    return KN_OK;
}

static kn_status topk_ref(const kn_op_args *a)
{
    const kn_topk_attrs *at = a->attrs;
    return sort_run(a->in[0], at->axis, at->largest, at->k, a->out[0], a->out[1]);
}
static const kn_impl topk_impls[] = {{"ref", KN_ISA_REF, NULL, topk_ref}, {0}};

static kn_status topk_grad(const kn_grad_args *g)
{
    return take_along_grad(g, ((const kn_topk_attrs *)g->attrs)->axis);
}

const kn_op_def kn_op_topk = {
    .name = "topk",
    .n_in = 1,
    .n_out = 2,
    .attrs = topk_attr_schema,
    .n_attrs = 4,
    .attrs_size = sizeof(kn_topk_attrs),
    .dtypes = KN_DTYPES_ALL,
    .infer = topk_infer,
    .impls = topk_impls,
    .grad = topk_grad,
    .amp = KN_AMP_NONE,
    .layout = KN_LAYOUT_FIXED,
};

kn_status kn_topk(kn_tensor *x, int64_t k, int axis, bool largest, bool sorted, kn_tensor **values,
                  kn_tensor **indices)
{
    kn_status s = two_outputs("topk", values, indices);
    if (s) return s;
    kn_topk_attrs at = {k, axis, largest, sorted};
    kn_tensor *in[1] = {x}, *out[2];
    s = kn__op_call(&kn_op_topk, 1, in, &at, 2, out);
    if (!s) *values = out[0], *indices = out[1];
    return s;
}
