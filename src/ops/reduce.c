/* reduce.c — reductions over any set of axes with keepdim. The reference
 * kernel gives each output element to one thread, which walks its reduced
 * elements in a fixed order, so results never depend on the thread count. */
#include "reduce.h"

static const kn_attr_desc reduce_attr_schema[] = {
    KN_ATTR(kn_reduce_attrs, axes, KN_ATTR_INTS),
    KN_ATTR(kn_reduce_attrs, keepdim, KN_ATTR_BOOL),
};

kn_status kn__reduce_attrs(const char *who, kn_reduce_attrs *at, int n_axes, const int *axes,
                           bool keepdim)
{
    if (n_axes < 0 || n_axes > KN_MAX_DIMS || (n_axes > 0 && !axes))
        return kn__error(KN_ERR_ARG, "%s: %d axes given (expected 0..%d and a non-NULL list)", who,
                         n_axes, KN_MAX_DIMS);
    at->axes.n = n_axes;
    for (int i = 0; i < n_axes; i++) at->axes.v[i] = axes[i];
    at->keepdim = keepdim;
    return KN_OK;
}

kn_status kn__reduce_mask(const char *who, const kn_reduce_attrs *at, int ndim, bool *mask)
{
    for (int d = 0; d < ndim; d++) mask[d] = at->axes.n == 0;
    for (int i = 0; i < at->axes.n; i++) {
        int axis = (int)at->axes.v[i];
        if (at->axes.v[i] != axis || !kn__norm_axis(&axis, ndim))
            return kn__error(KN_ERR_ARG, "%s: axis %lld out of range for %d dims", who,
                             (long long)at->axes.v[i], ndim);
        if (mask[axis]) return kn__error(KN_ERR_ARG, "%s: axis %d given twice", who, axis);
        mask[axis] = true;
    }
    return KN_OK;
}

void kn__reduce_shape(int ndim, const int64_t *shape, const bool *mask, bool keepdim,
                      kn_out_meta *out)
{
    int n = 0;
    for (int d = 0; d < ndim; d++) {
        if (!mask[d]) out->shape[n++] = shape[d];
        else if (keepdim) out->shape[n++] = 1;
    }
    out->ndim = n;
}

void kn__keepdim_shape(const kn_tensor *x, const kn_reduce_attrs *at, int64_t *shape)
{
    bool mask[KN_MAX_DIMS];
    kn_status s = kn__reduce_mask("reduce", at, x->ndim, mask);
    assert(s == KN_OK && "attrs were validated by infer");
    (void)s;
    for (int d = 0; d < x->ndim; d++) shape[d] = mask[d] ? 1 : x->shape[d];
}

/* ---- the generic reference kernel: one output element per task */
typedef double (*reduce_step)(double acc, double v);
typedef struct reduce_plan {
    const kn_tensor *x;
    kn_tensor *y;
    int n_kept, n_red;
    int64_t kept_shape[KN_MAX_DIMS], kept_stride[KN_MAX_DIMS]; /* in x, elements */
    int64_t red_shape[KN_MAX_DIMS], red_stride[KN_MAX_DIMS];
    int64_t red_count;
    double init;
    reduce_step step;
    double (*finish)(double acc, int64_t count);
} reduce_plan;

static void reduce_range(int64_t begin, int64_t end, void *arg)
{
    const reduce_plan *p = arg;
    size_t xs = kn_dtype_size(p->x->dtype), ys = kn_dtype_size(p->y->dtype);
    const char *xbase = kn__tensor_ptr(p->x);
    char *ybase = kn__tensor_ptr(p->y);
    for (int64_t o = begin; o < end; o++) {
        int64_t off = 0, rem = o;
        for (int d = p->n_kept - 1; d >= 0; d--) {
            off += (rem % p->kept_shape[d]) * p->kept_stride[d];
            rem /= p->kept_shape[d];
        }
        double acc = p->init;
        for (int64_t r = 0; r < p->red_count; r++) {
            int64_t roff = 0, rr = r;
            for (int d = p->n_red - 1; d >= 0; d--) {
                roff += (rr % p->red_shape[d]) * p->red_stride[d];
                rr /= p->red_shape[d];
            }
            acc = p->step(acc, kn__load(p->x->dtype, xbase + (off + roff) * (int64_t)xs));
        }
        if (p->finish) acc = p->finish(acc, p->red_count);
        kn__store(p->y->dtype, ybase + o * (int64_t)ys, acc);
    }
    (void)ys;
}

static kn_status reduce_run(const kn_op_args *a, double init, reduce_step step,
                            double (*finish)(double, int64_t))
{
    const kn_reduce_attrs *at = a->attrs;
    reduce_plan p = {.x = a->in[0], .y = a->out[0], .init = init, .step = step, .finish = finish};
    bool mask[KN_MAX_DIMS];
    kn__reduce_mask(a->def->name, at, p.x->ndim, mask);
    p.red_count = 1;
    for (int d = 0; d < p.x->ndim; d++) {
        if (mask[d]) {
            p.red_shape[p.n_red] = p.x->shape[d];
            p.red_stride[p.n_red++] = p.x->strides[d];
            p.red_count *= p.x->shape[d];
        } else {
            p.kept_shape[p.n_kept] = p.x->shape[d];
            p.kept_stride[p.n_kept++] = p.x->strides[d];
        }
    }
    int64_t n_out = kn_tensor_numel(p.y);
    int64_t grain = p.red_count > 0 ? 16384 / p.red_count : 16384;
    kn_parallel_for(n_out, grain < 1 ? 1 : grain, reduce_range, &p);
    return KN_OK;
}

static kn_status reduce_infer(const kn_op_args *a, kn_out_meta *out)
{
    const kn_tensor *x = a->in[0];
    bool mask[KN_MAX_DIMS];
    if (!(a->def->dtypes & KN_DT(x->dtype)))
        return kn__error(KN_ERR_DTYPE, "%s: dtype %s is not supported", a->def->name,
                         kn_dtype_name(x->dtype));
    kn_status s = kn__reduce_mask(a->def->name, a->attrs, x->ndim, mask);
    if (s) return s;
    kn__reduce_shape(x->ndim, x->shape, mask, ((const kn_reduce_attrs *)a->attrs)->keepdim, out);
    out->dtype = kn_dtype_is_float(x->dtype) ? x->dtype : KN_I64;
    return KN_OK;
}

static kn_tensor *reduce_call(const kn_op_def *def, kn_tensor *x, int n_axes, const int *axes,
                              bool keepdim)
{
    kn_reduce_attrs at;
    if (kn__reduce_attrs(def->name, &at, n_axes, axes, keepdim)) return NULL;
    kn_tensor *in[1] = {x};
    return kn__op_call1(def, 1, in, &at);
}

/* Gradient helper: g (reduced shape) brought back to x's shape. */
static kn_tensor *expand_back(kn_tensor *g, const kn_tensor *x, const kn_reduce_attrs *at)
{
    int64_t kshape[KN_MAX_DIMS];
    kn__keepdim_shape(x, at, kshape);
    kn_tensor *r = kn_reshape(g, x->ndim, kshape);
    kn_tensor *e = kn_expand(r, x->ndim, x->shape);
    kn_tensor_unref(r);
    return e;
}

/* ---- sum */
static double sum_step(double acc, double v) { return acc + v; }
static kn_status sum_ref(const kn_op_args *a) { return reduce_run(a, 0.0, sum_step, NULL); }
static const kn_impl sum_impls[] = {{"ref", KN_ISA_REF, NULL, sum_ref}, {0}};

static kn_status sum_grad(const kn_grad_args *g)
{
    g->grad_in[0] = expand_back(g->grad_out[0], g->in[0], g->attrs);
    return g->grad_in[0] ? KN_OK : kn_last_status();
}

const kn_op_def kn_op_sum = {
    .name = "sum", .n_in = 1, .n_out = 1, .attrs = reduce_attr_schema, .n_attrs = 2,
    .attrs_size = sizeof(kn_reduce_attrs), .dtypes = KN_DTYPES_ALL, .infer = reduce_infer,
    .impls = sum_impls, .grad = sum_grad, .amp = KN_AMP_FP32, .layout = KN_LAYOUT_FIXED,
};

kn_tensor *kn_sum(kn_tensor *x, int n_axes, const int *axes, bool keepdim)
{
    return reduce_call(&kn_op_sum, x, n_axes, axes, keepdim);
}

kn_tensor *kn__sum_to_shape(kn_tensor *g, int ndim, const int64_t *shape)
{
    int lead = g->ndim - ndim, axes[KN_MAX_DIMS], n = 0;
    if (lead < 0) return kn__error_null(KN_ERR_SHAPE, "sum_to_shape: gradient has fewer dims than its input");
    for (int d = 0; d < g->ndim; d++)
        if (d < lead || (shape[d - lead] == 1 && g->shape[d] != 1)) axes[n++] = d;
    if (n == 0 && lead == 0) return kn_tensor_ref(g);
    kn_tensor *s = kn_sum(g, n, axes, true);
    kn_tensor *r = s ? kn_reshape(s, ndim, shape) : NULL;
    kn_tensor_unref(s);
    return r;
}
