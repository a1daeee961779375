/* shape.c — shape ops: reshape, expand, contiguous, cast, ... Most are views
 * (they share the input's storage); gradients are shape ops themselves. */
#include "shape.h"

static const kn_attr_desc shape_attr_schema[] = {
    KN_ATTR(kn_shape_attrs, shape, KN_ATTR_INTS),
};

/* ---- reshape */
static kn_status reshape_infer(const kn_op_args *a, kn_out_meta *out)
{
    const kn_shape_attrs *at = a->attrs;
    const kn_tensor *x = a->in[0];
    int64_t known = 1;
    int infer_at = -1;
    if (at->shape.n < 0 || at->shape.n > KN_MAX_DIMS)
        return kn__error(KN_ERR_ARG, "reshape: ndim %d out of range [0, %d]", at->shape.n, KN_MAX_DIMS);
    for (int i = 0; i < at->shape.n; i++) {
        int64_t d = at->shape.v[i];
        if (d == -1) {
            if (infer_at >= 0) return kn__error(KN_ERR_ARG, "reshape: more than one -1 in shape");
            infer_at = i;
        } else if (d < 0) {
            return kn__error(KN_ERR_ARG, "reshape: dim %d is %lld, expected >= 0 or -1", i, (long long)d);
        } else if (kn__mul_overflow(known, d, &known)) {
            return kn__error(KN_ERR_SHAPE, "reshape: shape overflows");
        }
        out->shape[i] = d;
    }
    int64_t n = kn_tensor_numel(x);
    if (infer_at >= 0) {
        if (known == 0 || n % known)
            return kn__error(KN_ERR_SHAPE, "reshape: cannot infer -1 for %lld elements from known size %lld",
                             (long long)n, (long long)known);
        out->shape[infer_at] = n / known;
        known = n;
    }
    if (known != n) {
        char sa[96], sb[96];
        return kn__error(KN_ERR_SHAPE, "reshape: cannot reshape %s (%lld elements) into %s",
                         kn__shape_str(x->ndim, x->shape, sa, sizeof sa), (long long)n,
                         kn__shape_str(at->shape.n, at->shape.v, sb, sizeof sb));
    }
    out->ndim = at->shape.n;
    out->dtype = x->dtype;
    return KN_OK;
}

/* A view when the input is contiguous, else a contiguous copy. */
static kn_status reshape_view(const kn_op_args *a)
{
    kn_out_meta m;
    kn_status s = reshape_infer(a, &m);
    if (s) return s;
    kn_tensor *x = a->in[0], *src = x;
    if (!kn_tensor_is_contiguous(x) && !(src = kn_tensor_clone(x))) return kn_last_status();
    int64_t strides[KN_MAX_DIMS];
    kn__contiguous_strides(m.ndim, m.shape, strides);
    a->out[0] = kn__tensor_view(src, m.ndim, m.shape, strides, src->offset);
    if (src != x) kn_tensor_unref(src);
    return a->out[0] ? KN_OK : kn_last_status();
}

static kn_tensor *reshape_like(kn_tensor *g, const kn_tensor *x)
{
    return kn_reshape(g, x->ndim, x->shape);
}

static kn_status reshape_grad(const kn_grad_args *g)
{
    g->grad_in[0] = reshape_like(g->grad_out[0], g->in[0]);
    return g->grad_in[0] ? KN_OK : kn_last_status();
}

const kn_op_def kn_op_reshape = {
    .name = "reshape", .n_in = 1, .n_out = 1, .attrs = shape_attr_schema, .n_attrs = 1,
    .attrs_size = sizeof(kn_shape_attrs), .dtypes = KN_DTYPES_ALL, .infer = reshape_infer,
    .view = reshape_view, .grad = reshape_grad, .layout = KN_LAYOUT_FIXED,
};

static kn_status fill_ints(const char *who, kn_ints *dst, int n, const int64_t *v)
{
    if (n < 0 || n > KN_MAX_DIMS)
        return kn__error(KN_ERR_ARG, "%s: ndim %d out of range [0, %d]", who, n, KN_MAX_DIMS);
    if (n > 0 && !v) return kn__error(KN_ERR_ARG, "%s: shape is NULL", who);
    dst->n = n;
    for (int i = 0; i < n; i++) dst->v[i] = v[i];
    return KN_OK;
}

kn_tensor *kn_reshape(kn_tensor *x, int ndim, const int64_t *shape)
{
    kn_shape_attrs at;
    if (fill_ints("reshape", &at.shape, ndim, shape)) return NULL;
    kn_tensor *in[1] = {x};
    return kn__op_call1(&kn_op_reshape, 1, in, &at);
}

/* ---- expand (broadcast view: stride 0 on expanded dims) */
static kn_status expand_infer(const kn_op_args *a, kn_out_meta *out)
{
    const kn_shape_attrs *at = a->attrs;
    const kn_tensor *x = a->in[0];
    int n = at->shape.n, lead = n - x->ndim;
    if (n > KN_MAX_DIMS || lead < 0)
        return kn__error(KN_ERR_SHAPE, "expand: target has %d dims, input has %d", n, x->ndim);
    for (int i = 0; i < n; i++) {
        int64_t want = at->shape.v[i], have = i < lead ? 1 : x->shape[i - lead];
        if (want == -1 && i >= lead) want = have;
        if (want < 0 || (have != 1 && have != want))
            return kn__error(KN_ERR_SHAPE, "expand: dim %d of size %lld cannot expand to %lld", i,
                             (long long)have, (long long)want);
        out->shape[i] = want;
    }
    out->ndim = n;
    out->dtype = x->dtype;
    return KN_OK;
}

static kn_status expand_view(const kn_op_args *a)
{
    kn_out_meta m;
    kn_status s = expand_infer(a, &m);
    if (s) return s;
    kn_tensor *x = a->in[0];
    int lead = m.ndim - x->ndim;
    int64_t strides[KN_MAX_DIMS];
    for (int i = 0; i < m.ndim; i++)
        strides[i] = i < lead || x->shape[i - lead] != m.shape[i] ? 0 : x->strides[i - lead];
    a->out[0] = kn__tensor_view(x, m.ndim, m.shape, strides, x->offset);
    return a->out[0] ? KN_OK : kn_last_status();
}

static kn_status expand_grad(const kn_grad_args *g)
{
    g->grad_in[0] = kn__sum_to_shape(g->grad_out[0], g->in[0]->ndim, g->in[0]->shape);
    return g->grad_in[0] ? KN_OK : kn_last_status();
}

const kn_op_def kn_op_expand = {
    .name = "expand", .n_in = 1, .n_out = 1, .attrs = shape_attr_schema, .n_attrs = 1,
    .attrs_size = sizeof(kn_shape_attrs), .dtypes = KN_DTYPES_ALL, .infer = expand_infer,
    .view = expand_view, .grad = expand_grad, .layout = KN_LAYOUT_FIXED,
};

kn_tensor *kn_expand(kn_tensor *x, int ndim, const int64_t *shape)
{
    kn_shape_attrs at;
    if (fill_ints("expand", &at.shape, ndim, shape)) return NULL;
    kn_tensor *in[1] = {x};
    return kn__op_call1(&kn_op_expand, 1, in, &at);
}

/* ---- contiguous: the input itself (a view) when already contiguous */
static kn_status same_infer(const kn_op_args *a, kn_out_meta *out)
{
    const kn_tensor *x = a->in[0];
    out->dtype = x->dtype;
    out->ndim = x->ndim;
    memcpy(out->shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    return KN_OK;
}

static kn_status contiguous_view(const kn_op_args *a)
{
    kn_tensor *x = a->in[0];
    a->out[0] = kn_tensor_is_contiguous(x) ? kn__tensor_view(x, x->ndim, x->shape, x->strides, x->offset)
                                           : kn_tensor_clone(x);
    return a->out[0] ? KN_OK : kn_last_status();
}

static kn_status identity_grad(const kn_grad_args *g)
{
    g->grad_in[0] = kn_tensor_ref(g->grad_out[0]);
    return KN_OK;
}

const kn_op_def kn_op_contiguous = {
    .name = "contiguous", .n_in = 1, .n_out = 1, .dtypes = KN_DTYPES_ALL, .infer = same_infer,
    .view = contiguous_view, .grad = identity_grad, .layout = KN_LAYOUT_AGNOSTIC,
};

kn_tensor *kn_contiguous(kn_tensor *x)
{
    kn_tensor *in[1] = {x};
    return kn__op_call1(&kn_op_contiguous, 1, in, NULL);
}

/* ---- cast (always a new tensor) */
static const kn_attr_desc cast_attr_schema[] = {KN_ATTR(kn_cast_attrs, dtype, KN_ATTR_DTYPE)};

static kn_status cast_infer(const kn_op_args *a, kn_out_meta *out)
{
    const kn_cast_attrs *at = a->attrs;
    if ((unsigned)at->dtype >= KN_DTYPE_COUNT)
        return kn__error(KN_ERR_DTYPE, "cast: dtype %d is not a kn_dtype", (int)at->dtype);
    same_infer(a, out);
    out->dtype = at->dtype;
    return KN_OK;
}

static kn_status cast_ref(const kn_op_args *a) { return kn__copy_into(a->out[0], a->in[0]); }
static const kn_impl cast_impls[] = {{"ref", KN_ISA_REF, NULL, cast_ref}, {0}};

static kn_status cast_grad(const kn_grad_args *g)
{
    if (!kn_dtype_is_float(g->in[0]->dtype)) return KN_OK; /* no gradient into ints */
    return identity_grad(g); /* the engine casts it back to the input's dtype */
}

const kn_op_def kn_op_cast = {
    .name = "cast", .n_in = 1, .n_out = 1, .attrs = cast_attr_schema, .n_attrs = 1,
    .attrs_size = sizeof(kn_cast_attrs), .dtypes = KN_DTYPES_ALL, .infer = cast_infer,
    .impls = cast_impls, .grad = cast_grad, .layout = KN_LAYOUT_AGNOSTIC,
};

kn_tensor *kn_cast(kn_tensor *x, kn_dtype dt)
{
    kn_cast_attrs at = {dt};
    kn_tensor *in[1] = {x};
    return kn__op_call1(&kn_op_cast, 1, in, &at);
}
