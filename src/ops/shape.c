/* shape.c — view ops (reshape when strides allow, flatten, squeeze,
 * unsqueeze, permute, transpose, slice, narrow, expand, contiguous) and cast.
 * Views share the input's storage; their gradients are the inverse view.
 * The copying shape ops live in shape_copy.c. */
#include "shape.h"

static const kn_attr_desc shape_attr_schema[] = {
    KN_ATTR(kn_shape_attrs, shape, KN_ATTR_INTS),
};
static const kn_attr_desc axes2_attr_schema[] = {
    KN_ATTR(kn_axes2_attrs, axis0, KN_ATTR_INT),
    KN_ATTR(kn_axes2_attrs, axis1, KN_ATTR_INT),
};
static const kn_attr_desc axis_attr_schema[] = {
    {"axis", KN_ATTR_INT, offsetof(kn_axes2_attrs, axis0)},
};
static const kn_attr_desc flatten_attr_schema[] = {
    {"start_axis", KN_ATTR_INT, offsetof(kn_axes2_attrs, axis0)},
    {"end_axis", KN_ATTR_INT, offsetof(kn_axes2_attrs, axis1)},
};
static const kn_attr_desc axes_attr_schema[] = {
    {"axes", KN_ATTR_INTS, offsetof(kn_shape_attrs, shape)},
};
static const kn_attr_desc perm_attr_schema[] = {
    {"perm", KN_ATTR_INTS, offsetof(kn_shape_attrs, shape)},
};
static const kn_attr_desc slice_attr_schema[] = {
    KN_ATTR(kn_slice_attrs, axis, KN_ATTR_INT),
    KN_ATTR(kn_slice_attrs, start, KN_ATTR_INT),
    KN_ATTR(kn_slice_attrs, stop, KN_ATTR_INT),
    KN_ATTR(kn_slice_attrs, step, KN_ATTR_INT),
};

/* ------------------------------------------------------------ helpers */
kn_status kn__shape_axis(const char *op, int64_t v, int ndim, int *axis)
{
    int a = (int)v;
    if ((int64_t)a != v || !kn__norm_axis(&a, ndim))
        return kn__error(KN_ERR_ARG, "%s: axis %lld out of range for %d dims", op, (long long)v,
                         ndim);
    *axis = a;
    return KN_OK;
}

void kn__borrowed_narrow(kn_tensor *view, const kn_tensor *t, int axis, int64_t start, int64_t len)
{
    memcpy(view, t, sizeof *view);
    view->shape[axis] = len;
    view->offset += start * t->strides[axis];
}

int64_t kn__strided_offset(const kn_tensor *t, int64_t i)
{
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        off += (i % t->shape[d]) * t->strides[d];
        i /= t->shape[d];
    }
    return off;
}

static kn_status fill_ints(const char *who, kn_ints *dst, int n, const int64_t *v)
{
    if (n < 0 || n > KN_MAX_DIMS)
        return kn__error(KN_ERR_ARG, "%s: ndim %d out of range [0, %d]", who, n, KN_MAX_DIMS);
    if (n > 0 && !v) return kn__error(KN_ERR_ARG, "%s: shape is NULL", who);
    dst->n = n;
    for (int i = 0; i < n; i++)
        dst->v[i] = v[i];
    return KN_OK;
}

static void copy_meta(kn_out_meta *m, const kn_tensor *x)
{
    m->dtype = x->dtype;
    m->ndim = x->ndim;
    memcpy(m->shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
}

static kn_tensor *call1(const kn_op_def *def, kn_tensor *x, const void *attrs)
{
    kn_tensor *in[1] = {x};
    return kn__op_call1(def, 1, in, attrs);
}

static kn_status done(kn_tensor **slot, kn_tensor *t)
{
    *slot = t;
    return t ? KN_OK : kn_last_status();
}

/* Geometry of a pure view: output meta, strides and offset from x + attrs.
 * Each view op has one; infer and view are both derived from it. */
typedef kn_status (*geom_fn)(const kn_op_args *a, kn_out_meta *m, int64_t *strides,
                             int64_t *offset);

static kn_status view_from_geom(const kn_op_args *a, geom_fn geom)
{
    kn_out_meta m;
    int64_t strides[KN_MAX_DIMS] = {0}, offset = 0;
    kn_status s = geom(a, &m, strides, &offset);
    if (s) return s;
    a->out[0] = kn__tensor_view(a->in[0], m.ndim, m.shape, strides, offset);
    return a->out[0] ? KN_OK : kn_last_status();
}

#define VIEW_FNS(op)                                                                               \
    static kn_status op##_infer(const kn_op_args *a, kn_out_meta *m)                               \
    {                                                                                              \
        int64_t strides[KN_MAX_DIMS], offset = 0;                                                  \
        return op##_geom(a, m, strides, &offset);                                                  \
    }                                                                                              \
    static kn_status op##_view(const kn_op_args *a)                                                \
    {                                                                                              \
        return view_from_geom(a, op##_geom);                                                       \
    }

/* Gradient of a view that only regroups dims: reshape back to x's shape. */
static kn_status reshape_back_grad(const kn_grad_args *g)
{
    return done(&g->grad_in[0], kn_reshape(g->grad_out[0], g->in[0]->ndim, g->in[0]->shape));
}

/* ---------------------------------------------------------- reshape */
/* Strides that let a (ndim, shape) view walk x's elements in row-major
 * order without a copy (the torch.view rule: a run of x's dims that is
 * contiguous in memory may be split or merged freely). False if none. */
static bool view_strides(const kn_tensor *x, int ndim, const int64_t *shape, int64_t *out)
{
    if (x->ndim == 0 || kn_tensor_numel(x) == 0) {
        kn__contiguous_strides(ndim, shape, out);
        return true;
    }
    int vd = ndim - 1;
    int64_t base = x->strides[x->ndim - 1], tn = 1, vn = 1;
    for (int td = x->ndim - 1; td >= 0; td--) {
        tn *= x->shape[td];
        bool chunk_end = td == 0 || (x->shape[td - 1] != 1 && x->strides[td - 1] != tn * base);
        if (!chunk_end) continue;
        while (vd >= 0 && (vn < tn || shape[vd] == 1)) {
            out[vd] = vn * base;
            vn *= shape[vd];
            vd--;
        }
        if (vn != tn) return false;
        if (td > 0) {
            base = x->strides[td - 1];
            tn = vn = 1;
        }
    }
    return vd == -1;
}

static kn_status reshape_infer(const kn_op_args *a, kn_out_meta *out)
{
    const kn_shape_attrs *at = a->attrs;
    const kn_tensor *x = a->in[0];
    int64_t known = 1;
    int infer_at = -1;
    if (at->shape.n < 0 || at->shape.n > KN_MAX_DIMS)
        return kn__error(KN_ERR_ARG, "reshape: ndim %d out of range [0, %d]", at->shape.n,
                         KN_MAX_DIMS);
    for (int i = 0; i < at->shape.n; i++) {
        int64_t d = at->shape.v[i];
        if (d == -1) {
            if (infer_at >= 0) return kn__error(KN_ERR_ARG, "reshape: more than one -1 in shape");
            infer_at = i;
        } else if (d < 0) {
            return kn__error(KN_ERR_ARG, "reshape: dim %d is %lld, expected >= 0 or -1", i,
                             (long long)d);
        } else if (kn__mul_overflow(known, d, &known)) {
            return kn__error(KN_ERR_SHAPE, "reshape: shape overflows");
        }
        out->shape[i] = d;
    }
    int64_t n = kn_tensor_numel(x);
    if (infer_at >= 0) {
        if (known == 0 || n % known)
            return kn__error(KN_ERR_SHAPE,
                             "reshape: cannot infer -1 for %lld elements from known size %lld",
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

/* x seen with shape m: a view when the strides allow it, else a copy. */
static kn_status regroup(const kn_op_args *a, const kn_out_meta *m)
{
    kn_tensor *x = a->in[0], *src = x;
    int64_t strides[KN_MAX_DIMS];
    if (!view_strides(x, m->ndim, m->shape, strides)) {
        if (!(src = kn_tensor_clone(x))) return kn_last_status();
        kn__contiguous_strides(m->ndim, m->shape, strides);
    }
    a->out[0] = kn__tensor_view(src, m->ndim, m->shape, strides, src->offset);
    if (src != x) kn_tensor_unref(src);
    return a->out[0] ? KN_OK : kn_last_status();
}

static kn_status reshape_view(const kn_op_args *a)
{
    kn_out_meta m;
    kn_status s = reshape_infer(a, &m);
    return s ? s : regroup(a, &m);
}

const kn_op_def kn_op_reshape = {
    .name = "reshape",
    .n_in = 1,
    .n_out = 1,
    .attrs = shape_attr_schema,
    .n_attrs = 1,
    .attrs_size = sizeof(kn_shape_attrs),
    .dtypes = KN_DTYPES_ALL,
    .infer = reshape_infer,
    .view = reshape_view,
    .grad = reshape_back_grad,
    .layout = KN_LAYOUT_FIXED,
};

kn_tensor *kn_reshape(kn_tensor *x, int ndim, const int64_t *shape)
{
    kn_shape_attrs at;
    if (fill_ints("reshape", &at.shape, ndim, shape)) return NULL;
    return call1(&kn_op_reshape, x, &at);
}

/* ---------------------------------------------------------- flatten */
/* torch.flatten: dims start..end merged into one; a 0-d input gives (1). */
static kn_status flatten_infer(const kn_op_args *a, kn_out_meta *m)
{
    const kn_axes2_attrs *at = a->attrs;
    const kn_tensor *x = a->in[0];
    int nd = x->ndim ? x->ndim : 1, s, e;
    if (kn__shape_axis("flatten", at->axis0, nd, &s) ||
        kn__shape_axis("flatten", at->axis1, nd, &e))
        return kn_last_status();
    if (s > e) return kn__error(KN_ERR_ARG, "flatten: start axis %d is after end axis %d", s, e);
    m->dtype = x->dtype;
    if (x->ndim == 0) {
        m->ndim = 1;
        m->shape[0] = 1;
        return KN_OK;
    }
    m->ndim = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (d <= s || d > e)
            m->shape[m->ndim++] = x->shape[d];
        else
            m->shape[m->ndim - 1] *= x->shape[d]; /* x's numel is valid: no overflow */
    }
    return KN_OK;
}

static kn_status flatten_view(const kn_op_args *a)
{
    kn_out_meta m;
    kn_status s = flatten_infer(a, &m);
    return s ? s : regroup(a, &m);
}

const kn_op_def kn_op_flatten = {
    .name = "flatten",
    .n_in = 1,
    .n_out = 1,
    .attrs = flatten_attr_schema,
    .n_attrs = 2,
    .attrs_size = sizeof(kn_axes2_attrs),
    .dtypes = KN_DTYPES_ALL,
    .infer = flatten_infer,
    .view = flatten_view,
    .grad = reshape_back_grad,
    .layout = KN_LAYOUT_FIXED,
};

kn_tensor *kn_flatten(kn_tensor *x, int start_axis, int end_axis)
{
    kn_axes2_attrs at = {start_axis, end_axis};
    return call1(&kn_op_flatten, x, &at);
}

/* ---------------------------------------------------------- squeeze */
/* Drops the listed size-1 axes (all size-1 axes when none are listed);
 * like torch, a listed axis whose size is not 1 is kept. */
static kn_status squeeze_geom(const kn_op_args *a, kn_out_meta *m, int64_t *st, int64_t *off)
{
    const kn_shape_attrs *at = a->attrs;
    const kn_tensor *x = a->in[0];
    bool drop[KN_MAX_DIMS] = {false};
    if (at->shape.n < 0 || at->shape.n > KN_MAX_DIMS)
        return kn__error(KN_ERR_ARG, "squeeze: %d axes given, expected 0..%d", at->shape.n,
                         KN_MAX_DIMS);
    for (int i = 0; i < at->shape.n; i++) {
        int ax;
        if (kn__shape_axis("squeeze", at->shape.v[i], x->ndim, &ax)) return kn_last_status();
        if (drop[ax]) return kn__error(KN_ERR_ARG, "squeeze: axis %d given twice", ax);
        drop[ax] = true;
    }
    m->dtype = x->dtype;
    m->ndim = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (x->shape[d] == 1 && (at->shape.n == 0 || drop[d])) continue;
        st[m->ndim] = x->strides[d];
        m->shape[m->ndim++] = x->shape[d];
    }
    *off = x->offset;
    return KN_OK;
}
VIEW_FNS(squeeze)

const kn_op_def kn_op_squeeze = {
    .name = "squeeze",
    .n_in = 1,
    .n_out = 1,
    .attrs = axes_attr_schema,
    .n_attrs = 1,
    .attrs_size = sizeof(kn_shape_attrs),
    .dtypes = KN_DTYPES_ALL,
    .infer = squeeze_infer,
    .view = squeeze_view,
    .grad = reshape_back_grad,
    .layout = KN_LAYOUT_FIXED,
};

kn_tensor *kn_squeeze(kn_tensor *x, int n_axes, const int *axes)
{
    kn_shape_attrs at = {{0}};
    if (n_axes < 0 || n_axes > KN_MAX_DIMS || (n_axes > 0 && !axes))
        return kn__error_null(KN_ERR_ARG, "squeeze: %d axes given (expected 0..%d and a list)",
                              n_axes, KN_MAX_DIMS);
    at.shape.n = n_axes;
    for (int i = 0; i < n_axes; i++)
        at.shape.v[i] = axes[i];
    return call1(&kn_op_squeeze, x, &at);
}

/* -------------------------------------------------------- unsqueeze */
static kn_status unsqueeze_geom(const kn_op_args *a, kn_out_meta *m, int64_t *st, int64_t *off)
{
    const kn_axes2_attrs *at = a->attrs;
    const kn_tensor *x = a->in[0];
    int ax;
    if (x->ndim >= KN_MAX_DIMS)
        return kn__error(KN_ERR_SHAPE, "unsqueeze: input has %d dims, the most is %d", x->ndim,
                         KN_MAX_DIMS);
    if (kn__shape_axis("unsqueeze", at->axis0, x->ndim + 1, &ax)) return kn_last_status();
    m->dtype = x->dtype;
    m->ndim = x->ndim + 1;
    for (int d = 0, k = 0; d < m->ndim; d++) {
        if (d == ax) {
            m->shape[d] = 1;
            st[d] = ax < x->ndim ? x->shape[ax] * x->strides[ax] : 1;
        } else {
            m->shape[d] = x->shape[k];
            st[d] = x->strides[k++];
        }
    }
    *off = x->offset;
    return KN_OK;
}
VIEW_FNS(unsqueeze)

const kn_op_def kn_op_unsqueeze = {
    .name = "unsqueeze",
    .n_in = 1,
    .n_out = 1,
    .attrs = axis_attr_schema,
    .n_attrs = 1,
    .attrs_size = sizeof(kn_axes2_attrs),
    .dtypes = KN_DTYPES_ALL,
    .infer = unsqueeze_infer,
    .view = unsqueeze_view,
    .grad = reshape_back_grad,
    .layout = KN_LAYOUT_FIXED,
};

kn_tensor *kn_unsqueeze(kn_tensor *x, int axis)
{
    kn_axes2_attrs at = {axis, 0};
    return call1(&kn_op_unsqueeze, x, &at);
}

/* ---------------------------------------------------------- permute */
static kn_status permute_geom(const kn_op_args *a, kn_out_meta *m, int64_t *st, int64_t *off)
{
    const kn_shape_attrs *at = a->attrs;
    const kn_tensor *x = a->in[0];
    bool seen[KN_MAX_DIMS] = {false};
    if (at->shape.n != x->ndim)
        return kn__error(KN_ERR_ARG, "permute: perm has %d entries, input has %d dims", at->shape.n,
                         x->ndim);
    for (int d = 0; d < x->ndim; d++) {
        int ax;
        if (kn__shape_axis("permute", at->shape.v[d], x->ndim, &ax)) return kn_last_status();
        if (seen[ax]) return kn__error(KN_ERR_ARG, "permute: axis %d appears twice in perm", ax);
        seen[ax] = true;
        m->shape[d] = x->shape[ax];
        st[d] = x->strides[ax];
    }
    m->dtype = x->dtype;
    m->ndim = x->ndim;
    *off = x->offset;
    return KN_OK;
}
VIEW_FNS(permute)

static kn_status permute_grad(const kn_grad_args *g)
{
    const kn_shape_attrs *at = g->attrs;
    int n = at->shape.n, inv[KN_MAX_DIMS];
    for (int d = 0; d < n; d++) {
        int ax = (int)at->shape.v[d];
        inv[ax < 0 ? ax + n : ax] = d;
    }
    return done(&g->grad_in[0], kn_permute(g->grad_out[0], n, inv));
}

const kn_op_def kn_op_permute = {
    .name = "permute",
    .n_in = 1,
    .n_out = 1,
    .attrs = perm_attr_schema,
    .n_attrs = 1,
    .attrs_size = sizeof(kn_shape_attrs),
    .dtypes = KN_DTYPES_ALL,
    .infer = permute_infer,
    .view = permute_view,
    .grad = permute_grad,
    .layout = KN_LAYOUT_FIXED,
};

kn_tensor *kn_permute(kn_tensor *x, int ndim, const int *perm)
{
    kn_shape_attrs at = {{0}};
    if (ndim < 0 || ndim > KN_MAX_DIMS || (ndim > 0 && !perm))
        return kn__error_null(KN_ERR_ARG, "permute: perm of %d entries (expected 0..%d and a list)",
                              ndim, KN_MAX_DIMS);
    at.shape.n = ndim;
    for (int i = 0; i < ndim; i++)
        at.shape.v[i] = perm[i];
    return call1(&kn_op_permute, x, &at);
}

/* -------------------------------------------------------- transpose */
static kn_status transpose_geom(const kn_op_args *a, kn_out_meta *m, int64_t *st, int64_t *off)
{
    const kn_axes2_attrs *at = a->attrs;
    const kn_tensor *x = a->in[0];
    int a0, a1;
    if (kn__shape_axis("transpose", at->axis0, x->ndim, &a0) ||
        kn__shape_axis("transpose", at->axis1, x->ndim, &a1))
        return kn_last_status();
    copy_meta(m, x);
    memcpy(st, x->strides, sizeof(int64_t) * (size_t)x->ndim);
    m->shape[a0] = x->shape[a1], m->shape[a1] = x->shape[a0];
    st[a0] = x->strides[a1], st[a1] = x->strides[a0];
    *off = x->offset;
    return KN_OK;
}
VIEW_FNS(transpose)

static kn_status transpose_grad(const kn_grad_args *g)
{
    const kn_axes2_attrs *at = g->attrs;
    return done(&g->grad_in[0], kn_transpose(g->grad_out[0], (int)at->axis0, (int)at->axis1));
}

const kn_op_def kn_op_transpose = {
    .name = "transpose",
    .n_in = 1,
    .n_out = 1,
    .attrs = axes2_attr_schema,
    .n_attrs = 2,
    .attrs_size = sizeof(kn_axes2_attrs),
    .dtypes = KN_DTYPES_ALL,
    .infer = transpose_infer,
    .view = transpose_view,
    .grad = transpose_grad,
    .layout = KN_LAYOUT_FIXED,
};

kn_tensor *kn_transpose(kn_tensor *x, int axis0, int axis1)
{
    kn_axes2_attrs at = {axis0, axis1};
    return call1(&kn_op_transpose, x, &at);
}

/* ------------------------------------------------------ slice, narrow */
/* Python slicing of [0, n): negative bounds count from the end, then both
 * are clamped; the result is start and the element count. */
static void slice_bounds(const kn_slice_attrs *at, int64_t n, int64_t *start, int64_t *len)
{
    int64_t b = at->start, e = at->stop;
    if (b < 0) b = b < -n ? 0 : b + n;
    if (e < 0) e = e < -n ? 0 : e + n;
    if (b > n) b = n;
    if (e > n) e = n;
    *start = b;
    *len = e > b ? (e - b - 1) / at->step + 1 : 0;
}

static kn_status slice_geom(const kn_op_args *a, kn_out_meta *m, int64_t *st, int64_t *off)
{
    const kn_slice_attrs *at = a->attrs;
    const kn_tensor *x = a->in[0];
    int ax;
    if (kn__shape_axis("slice", at->axis, x->ndim, &ax)) return kn_last_status();
    if (at->step <= 0)
        return kn__error(KN_ERR_ARG, "slice: step is %lld, expected > 0", (long long)at->step);
    int64_t start, len;
    slice_bounds(at, x->shape[ax], &start, &len);
    copy_meta(m, x);
    memcpy(st, x->strides, sizeof(int64_t) * (size_t)x->ndim);
    m->shape[ax] = len;
    st[ax] = x->strides[ax] * at->step;
    *off = x->offset + start * x->strides[ax];
    return KN_OK;
}
VIEW_FNS(slice)

/* Gradient of picking [start, start + len*step) every step along an axis of
 * size n: g goes to (P, len, 1, S), is padded to (P, len, step, S), merged to
 * (P, len*step, S), padded by start in front and cut to (P, n, S). */
static kn_tensor *unslice(kn_tensor *g, const kn_tensor *x, int ax, int64_t start, int64_t step)
{
    kn_scratch s = {0};
    int64_t P = 1, S = 1, len = g->shape[ax], n = x->shape[ax];
    for (int d = 0; d < ax; d++)
        P *= x->shape[d];
    for (int d = ax + 1; d < x->ndim; d++)
        S *= x->shape[d];
    int64_t s4[4] = {P, len, 1, S}, s3[3] = {P, len * step, S};
    kn_tensor *t = kn__keep(&s, kn_reshape(g, 4, s4));
    if (step > 1) {
        int64_t pads[8] = {0, 0, 0, 0, 0, step - 1, 0, 0};
        t = kn__keep(&s, kn_pad(t, pads, KN_PAD_CONSTANT, 0));
    }
    t = kn__keep(&s, kn_reshape(t, 3, s3));
    int64_t after = n - start - len * step;
    int64_t pads[6] = {0, 0, start, after > 0 ? after : 0, 0, 0};
    t = kn__keep(&s, kn_pad(t, pads, KN_PAD_CONSTANT, 0));
    if (after < 0) t = kn__keep(&s, kn_narrow(t, 1, 0, n));
    kn_tensor *r = t ? kn_reshape(t, x->ndim, x->shape) : NULL;
    kn__scratch_free(&s);
    return r;
}

static kn_status slice_grad(const kn_grad_args *g)
{
    const kn_slice_attrs *at = g->attrs;
    const kn_tensor *x = g->in[0];
    int ax = (int)(at->axis < 0 ? at->axis + x->ndim : at->axis);
    int64_t start, len;
    slice_bounds(at, x->shape[ax], &start, &len);
    return done(&g->grad_in[0], unslice(g->grad_out[0], x, ax, start, at->step));
}

const kn_op_def kn_op_slice = {
    .name = "slice",
    .n_in = 1,
    .n_out = 1,
    .attrs = slice_attr_schema,
    .n_attrs = 4,
    .attrs_size = sizeof(kn_slice_attrs),
    .dtypes = KN_DTYPES_ALL,
    .infer = slice_infer,
    .view = slice_view,
    .grad = slice_grad,
    .layout = KN_LAYOUT_CHANNEL_AXIS,
};

kn_tensor *kn_slice(kn_tensor *x, int axis, int64_t start, int64_t stop, int64_t step)
{
    kn_slice_attrs at = {axis, start, stop, step};
    return call1(&kn_op_slice, x, &at);
}

/* torch.narrow: start may be negative (from the end); the range must fit. */
static kn_status narrow_geom(const kn_op_args *a, kn_out_meta *m, int64_t *st, int64_t *off)
{
    const kn_slice_attrs *at = a->attrs;
    const kn_tensor *x = a->in[0];
    int ax;
    if (kn__shape_axis("narrow", at->axis, x->ndim, &ax)) return kn_last_status();
    int64_t n = x->shape[ax], start = at->start < 0 ? at->start + n : at->start;
    int64_t len = at->stop;
    if (start < 0 || start > n || len < 0 || len > n - start)
        return kn__error(KN_ERR_ARG,
                         "narrow: start %lld, length %lld do not fit axis %d of size %lld",
                         (long long)at->start, (long long)len, ax, (long long)n);
    copy_meta(m, x);
    memcpy(st, x->strides, sizeof(int64_t) * (size_t)x->ndim);
    m->shape[ax] = len;
    *off = x->offset + start * x->strides[ax];
    return KN_OK;
}
VIEW_FNS(narrow)

static kn_status narrow_grad(const kn_grad_args *g)
{
    const kn_slice_attrs *at = g->attrs;
    const kn_tensor *x = g->in[0];
    int ax = (int)(at->axis < 0 ? at->axis + x->ndim : at->axis);
    int64_t start = at->start < 0 ? at->start + x->shape[ax] : at->start;
    return done(&g->grad_in[0], unslice(g->grad_out[0], x, ax, start, 1));
}

static const kn_attr_desc narrow_attr_schema[] = {
    KN_ATTR(kn_slice_attrs, axis, KN_ATTR_INT),
    KN_ATTR(kn_slice_attrs, start, KN_ATTR_INT),
    {"length", KN_ATTR_INT, offsetof(kn_slice_attrs, stop)},
};

const kn_op_def kn_op_narrow = {
    .name = "narrow",
    .n_in = 1,
    .n_out = 1,
    .attrs = narrow_attr_schema,
    .n_attrs = 3,
    .attrs_size = sizeof(kn_slice_attrs),
    .dtypes = KN_DTYPES_ALL,
    .infer = narrow_infer,
    .view = narrow_view,
    .grad = narrow_grad,
    .layout = KN_LAYOUT_CHANNEL_AXIS,
};

kn_tensor *kn_narrow(kn_tensor *x, int axis, int64_t start, int64_t length)
{
    kn_slice_attrs at = {axis, start, length, 1};
    return call1(&kn_op_narrow, x, &at);
}

/* ---- expand (broadcast view: stride 0 on expanded dims) */
static kn_status expand_geom(const kn_op_args *a, kn_out_meta *m, int64_t *st, int64_t *off)
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
        m->shape[i] = want;
        st[i] = i < lead || have != want ? 0 : x->strides[i - lead];
    }
    m->ndim = n;
    m->dtype = x->dtype;
    *off = x->offset;
    return KN_OK;
}
VIEW_FNS(expand)

static kn_status expand_grad(const kn_grad_args *g)
{
    return done(&g->grad_in[0], kn__sum_to_shape(g->grad_out[0], g->in[0]->ndim, g->in[0]->shape));
}

const kn_op_def kn_op_expand = {
    .name = "expand",
    .n_in = 1,
    .n_out = 1,
    .attrs = shape_attr_schema,
    .n_attrs = 1,
    .attrs_size = sizeof(kn_shape_attrs),
    .dtypes = KN_DTYPES_ALL,
    .infer = expand_infer,
    .view = expand_view,
    .grad = expand_grad,
    .layout = KN_LAYOUT_FIXED,
};

kn_tensor *kn_expand(kn_tensor *x, int ndim, const int64_t *shape)
{
    kn_shape_attrs at;
    if (fill_ints("expand", &at.shape, ndim, shape)) return NULL;
    return call1(&kn_op_expand, x, &at);
}

/* ---- contiguous: the input itself (a view) when already contiguous */
static kn_status same_infer(const kn_op_args *a, kn_out_meta *out)
{
    copy_meta(out, a->in[0]);
    return KN_OK;
}

static kn_status contiguous_view(const kn_op_args *a)
{
    kn_tensor *x = a->in[0];
    a->out[0] = kn_tensor_is_contiguous(x)
                    ? kn__tensor_view(x, x->ndim, x->shape, x->strides, x->offset)
                    : kn_tensor_clone(x);
    return a->out[0] ? KN_OK : kn_last_status();
}

static kn_status identity_grad(const kn_grad_args *g)
{
    g->grad_in[0] = kn_tensor_ref(g->grad_out[0]);
    return KN_OK;
}

const kn_op_def kn_op_contiguous = {
    .name = "contiguous",
    .n_in = 1,
    .n_out = 1,
    .dtypes = KN_DTYPES_ALL,
    .infer = same_infer,
    .view = contiguous_view,
    .grad = identity_grad,
    .layout = KN_LAYOUT_AGNOSTIC,
};

kn_tensor *kn_contiguous(kn_tensor *x)
{
    return call1(&kn_op_contiguous, x, NULL);
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

static kn_status cast_ref(const kn_op_args *a)
{
    return kn__copy_into(a->out[0], a->in[0]);
}
static const kn_impl cast_impls[] = {{"ref", KN_ISA_REF, NULL, cast_ref}, {0}};

static kn_status cast_grad(const kn_grad_args *g)
{
    if (!kn_dtype_is_float(g->in[0]->dtype)) return KN_OK; /* no gradient into ints */
    return identity_grad(g); /* the engine casts it back to the input's dtype */
}

const kn_op_def kn_op_cast = {
    .name = "cast",
    .n_in = 1,
    .n_out = 1,
    .attrs = cast_attr_schema,
    .n_attrs = 1,
    .attrs_size = sizeof(kn_cast_attrs),
    .dtypes = KN_DTYPES_ALL,
    .infer = cast_infer,
    .impls = cast_impls,
    .grad = cast_grad,
    .layout = KN_LAYOUT_AGNOSTIC,
};

kn_tensor *kn_cast(kn_tensor *x, kn_dtype dt)
{
    kn_cast_attrs at = {dt};
    return call1(&kn_op_cast, x, &at);
}
