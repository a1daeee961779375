/* shape_copy.c — shape ops that write a new tensor: concat, stack, split,
 * chunk (variadic), pad, tile and repeat. Pad/tile/repeat share one kernel
 * that maps every output index to an input index dim by dim. Gradients are
 * slices, concats, sums and (reflect/edge pad) scatter_add. */
#include "shape.h"

static const kn_attr_desc axis_attr_schema[] = {
    {"axis", KN_ATTR_INT, offsetof(kn_axes2_attrs, axis0)},
};

static kn_status done(kn_tensor **slot, kn_tensor *t)
{
    *slot = t;
    return t ? KN_OK : kn_last_status();
}

static kn_status check_count(const char *op, const char *what, int n)
{
    if (n < 1 || n > KN_SPLIT_MAX)
        return kn__error(KN_ERR_ARG, "%s: %d %s, expected 1..%d", op, n, what, KN_SPLIT_MAX);
    return KN_OK;
}

/* ------------------------------------------------------------- concat */
static kn_status concat_infer(const kn_op_args *a, kn_out_meta *m)
{
    const kn_axes2_attrs *at = a->attrs;
    int ax;
    if (check_count("concat", "inputs", a->n_in)) return kn_last_status();
    const kn_tensor *x0 = a->in[0];
    if (x0->ndim == 0) return kn__error(KN_ERR_SHAPE, "concat: input 0 is 0-d, expected >= 1 dim");
    if (kn__shape_axis("concat", at->axis0, x0->ndim, &ax)) return kn_last_status();
    int64_t total = 0;
    kn_dtype dt = x0->dtype;
    for (int i = 0; i < a->n_in; i++) {
        const kn_tensor *xi = a->in[i];
        bool same = xi->ndim == x0->ndim;
        for (int d = 0; same && d < x0->ndim; d++)
            same = d == ax || xi->shape[d] == x0->shape[d];
        if (!same) {
            char s0[96], si[96];
            return kn__error(KN_ERR_SHAPE,
                             "concat: input %d has shape %s but input 0 has %s (only "
                             "axis %d may differ)",
                             i, kn__shape_str(xi->ndim, xi->shape, si, sizeof si),
                             kn__shape_str(x0->ndim, x0->shape, s0, sizeof s0), ax);
        }
        if (__builtin_add_overflow(total, xi->shape[ax], &total))
            return kn__error(KN_ERR_SHAPE, "concat: size along axis %d overflows", ax);
        dt = kn_dtype_promote(dt, xi->dtype);
    }
    m->dtype = dt;
    m->ndim = x0->ndim;
    memcpy(m->shape, x0->shape, sizeof(int64_t) * (size_t)x0->ndim);
    m->shape[ax] = total;
    return kn__check_shape("concat", m->ndim, m->shape);
}

static kn_status concat_ref(const kn_op_args *a)
{
    const kn_axes2_attrs *at = a->attrs;
    int ax = (int)(at->axis0 < 0 ? at->axis0 + a->out[0]->ndim : at->axis0);
    int64_t off = 0;
    for (int i = 0; i < a->n_in; i++) {
        kn_tensor part;
        kn__borrowed_narrow(&part, a->out[0], ax, off, a->in[i]->shape[ax]);
        kn_status s = kn__copy_into(&part, a->in[i]);
        if (s) return s;
        off += a->in[i]->shape[ax];
    }
    return KN_OK;
}
static const kn_impl concat_impls[] = {{"ref", KN_ISA_REF, NULL, concat_ref}, {0}};

static kn_status concat_grad(const kn_grad_args *g)
{
    const kn_axes2_attrs *at = g->attrs;
    int ax = (int)(at->axis0 < 0 ? at->axis0 + g->out[0]->ndim : at->axis0);
    int64_t off = 0;
    for (int i = 0; i < g->n_in; i++) {
        int64_t len = g->in[i]->shape[ax];
        if (g->needs_grad[i] && !(g->grad_in[i] = kn_narrow(g->grad_out[0], ax, off, len)))
            return kn_last_status();
        off += len;
    }
    return KN_OK;
}

const kn_op_def kn_op_concat = {
    .name = "concat",
    .n_in = -1,
    .n_out = 1,
    .attrs = axis_attr_schema,
    .n_attrs = 1,
    .attrs_size = sizeof(kn_axes2_attrs),
    .dtypes = KN_DTYPES_ALL,
    .infer = concat_infer,
    .impls = concat_impls,
    .grad = concat_grad,
    .amp = KN_AMP_WIDEST,
    .layout = KN_LAYOUT_CHANNEL_AXIS,
};

kn_tensor *kn_concat(int n, kn_tensor *const *xs, int axis)
{
    kn_axes2_attrs at = {axis, 0};
    if (check_count("concat", "inputs", n)) return NULL;
    return kn__op_call1(&kn_op_concat, n, xs, &at);
}

/* -------------------------------------------------------------- stack */
static kn_status stack_infer(const kn_op_args *a, kn_out_meta *m)
{
    const kn_axes2_attrs *at = a->attrs;
    int ax;
    if (check_count("stack", "inputs", a->n_in)) return kn_last_status();
    const kn_tensor *x0 = a->in[0];
    if (x0->ndim >= KN_MAX_DIMS)
        return kn__error(KN_ERR_SHAPE, "stack: inputs have %d dims, the most is %d", x0->ndim,
                         KN_MAX_DIMS - 1);
    if (kn__shape_axis("stack", at->axis0, x0->ndim + 1, &ax)) return kn_last_status();
    kn_dtype dt = x0->dtype;
    for (int i = 1; i < a->n_in; i++) {
        const kn_tensor *xi = a->in[i];
        if (xi->ndim != x0->ndim ||
            memcmp(xi->shape, x0->shape, sizeof(int64_t) * (size_t)x0->ndim) != 0) {
            char s0[96], si[96];
            return kn__error(KN_ERR_SHAPE, "stack: input %d has shape %s but input 0 has %s", i,
                             kn__shape_str(xi->ndim, xi->shape, si, sizeof si),
                             kn__shape_str(x0->ndim, x0->shape, s0, sizeof s0));
        }
        dt = kn_dtype_promote(dt, xi->dtype);
    }
    m->dtype = dt;
    m->ndim = x0->ndim + 1;
    for (int d = 0, k = 0; d < m->ndim; d++)
        m->shape[d] = d == ax ? a->n_in : x0->shape[k++];
    return kn__check_shape("stack", m->ndim, m->shape);
}

static kn_status stack_ref(const kn_op_args *a)
{
    const kn_axes2_attrs *at = a->attrs;
    const kn_tensor *y = a->out[0];
    int ax = (int)(at->axis0 < 0 ? at->axis0 + y->ndim : at->axis0);
    for (int i = 0; i < a->n_in; i++) {
        kn_tensor part; /* y with the stacked axis fixed at i (borrowed geometry) */
        memcpy(&part, y, sizeof part);
        part.ndim = y->ndim - 1;
        for (int d = ax; d < part.ndim; d++) {
            part.shape[d] = y->shape[d + 1];
            part.strides[d] = y->strides[d + 1];
        }
        part.offset += i * y->strides[ax];
        kn_status s = kn__copy_into(&part, a->in[i]);
        if (s) return s;
    }
    return KN_OK;
}
static const kn_impl stack_impls[] = {{"ref", KN_ISA_REF, NULL, stack_ref}, {0}};

static kn_status stack_grad(const kn_grad_args *g)
{
    const kn_axes2_attrs *at = g->attrs;
    int ax = (int)(at->axis0 < 0 ? at->axis0 + g->out[0]->ndim : at->axis0);
    for (int i = 0; i < g->n_in; i++) {
        if (!g->needs_grad[i]) continue;
        kn_tensor *n = kn_narrow(g->grad_out[0], ax, i, 1);
        g->grad_in[i] = n ? kn_reshape(n, g->in[i]->ndim, g->in[i]->shape) : NULL;
        kn_tensor_unref(n);
        if (!g->grad_in[i]) return kn_last_status();
    }
    return KN_OK;
}

const kn_op_def kn_op_stack = {
    .name = "stack",
    .n_in = -1,
    .n_out = 1,
    .attrs = axis_attr_schema,
    .n_attrs = 1,
    .attrs_size = sizeof(kn_axes2_attrs),
    .dtypes = KN_DTYPES_ALL,
    .infer = stack_infer,
    .impls = stack_impls,
    .grad = stack_grad,
    .amp = KN_AMP_WIDEST,
    .layout = KN_LAYOUT_FIXED,
};

kn_tensor *kn_stack(int n, kn_tensor *const *xs, int axis)
{
    kn_axes2_attrs at = {axis, 0};
    if (check_count("stack", "inputs", n)) return NULL;
    return kn__op_call1(&kn_op_stack, n, xs, &at);
}

/* ------------------------------------------------------ split, chunk */
static int split_axis(const kn_op_def *def, const void *attrs, int ndim)
{
    int64_t ax = def == &kn_op_split ? ((const kn_split_attrs *)attrs)->axis
                                     : ((const kn_chunk_attrs *)attrs)->axis;
    return (int)(ax < 0 ? ax + ndim : ax);
}

/* Outputs are x cut along the axis into the outputs' sizes. */
static kn_status split_ref(const kn_op_args *a)
{
    const kn_tensor *x = a->in[0];
    int ax = split_axis(a->def, a->attrs, x->ndim);
    int64_t off = 0;
    for (int i = 0; i < a->n_out; i++) {
        kn_tensor part;
        kn__borrowed_narrow(&part, x, ax, off, a->out[i]->shape[ax]);
        kn_status s = kn__copy_into(a->out[i], &part);
        if (s) return s;
        off += a->out[i]->shape[ax];
    }
    return KN_OK;
}
static const kn_impl split_impls[] = {{"ref", KN_ISA_REF, NULL, split_ref}, {0}};

/* The gradient is the outputs' gradients put back together; outputs that
 * got none contribute zeros. */
static kn_status split_grad(const kn_grad_args *g)
{
    int ax = split_axis(g->def, g->attrs, g->in[0]->ndim);
    kn_tensor *parts[KN_SPLIT_MAX], *zeros[KN_SPLIT_MAX] = {0};
    kn_dtype dt = g->in[0]->dtype;
    for (int i = 0; i < g->n_out; i++)
        if (g->grad_out[i]) dt = g->grad_out[i]->dtype;
    kn_status s = KN_OK;
    for (int i = 0; i < g->n_out && !s; i++) {
        parts[i] = g->grad_out[i];
        if (!parts[i] &&
            !(parts[i] = zeros[i] = kn_tensor_zeros(dt, g->out[i]->ndim, g->out[i]->shape)))
            s = kn_last_status();
    }
    if (!s) s = done(&g->grad_in[0], kn_concat(g->n_out, parts, ax));
    for (int i = 0; i < g->n_out; i++)
        kn_tensor_unref(zeros[i]);
    return s;
}

static kn_status split_infer(const kn_op_args *a, kn_out_meta *m)
{
    const kn_split_attrs *at = a->attrs;
    const kn_tensor *x = a->in[0];
    int ax;
    if (kn__shape_axis("split", at->axis, x->ndim, &ax)) return kn_last_status();
    if (at->n < 1 || at->n > KN_SPLIT_MAX || at->n != a->n_out)
        return kn__error(KN_ERR_ARG, "split: %lld sizes for %d outputs (expected 1..%d, equal)",
                         (long long)at->n, a->n_out, KN_SPLIT_MAX);
    int64_t total = 0;
    for (int i = 0; i < a->n_out; i++) {
        if (at->sizes[i] < 0 || at->sizes[i] > x->shape[ax] - total)
            return kn__error(KN_ERR_SHAPE,
                             "split: sizes do not add up to %lld along axis %d "
                             "(part %d has size %lld)",
                             (long long)x->shape[ax], ax, i, (long long)at->sizes[i]);
        total += at->sizes[i];
        m[i].dtype = x->dtype;
        m[i].ndim = x->ndim;
        memcpy(m[i].shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
        m[i].shape[ax] = at->sizes[i];
    }
    if (total != x->shape[ax])
        return kn__error(KN_ERR_SHAPE, "split: sizes add up to %lld, axis %d has %lld",
                         (long long)total, ax, (long long)x->shape[ax]);
    return KN_OK;
}

static const kn_attr_desc split_attr_schema[] = {
    KN_ATTR(kn_split_attrs, axis, KN_ATTR_INT), KN_ATTR(kn_split_attrs, n, KN_ATTR_INT),
    /* sizes[KN_SPLIT_MAX] has no schema type yet (KN_ATTR_INTS holds 8) */
};

const kn_op_def kn_op_split = {
    .name = "split",
    .n_in = 1,
    .n_out = -1,
    .attrs = split_attr_schema,
    .n_attrs = 2,
    .attrs_size = sizeof(kn_split_attrs),
    .dtypes = KN_DTYPES_ALL,
    .infer = split_infer,
    .impls = split_impls,
    .grad = split_grad,
    .layout = KN_LAYOUT_CHANNEL_AXIS,
};

kn_status kn_split(kn_tensor *x, int n, const int64_t *sizes, int axis, kn_tensor **outs)
{
    kn_split_attrs at = {.axis = axis, .n = n};
    if (check_count("split", "parts", n)) return kn_last_status();
    if (!sizes || !outs) return kn__error(KN_ERR_ARG, "split: sizes or outs is NULL");
    for (int i = 0; i < n; i++)
        at.sizes[i] = sizes[i];
    kn_tensor *in[1] = {x};
    return kn__op_call(&kn_op_split, 1, in, &at, n, outs);
}

/* torch.chunk: parts of ceil(n / chunks); fewer parts when that covers the
 * axis sooner; `chunks` empty parts for an empty axis. */
static kn_status chunk_plan(const kn_tensor *x, const kn_chunk_attrs *at, int *ax, int64_t *size,
                            int64_t *count)
{
    if (kn__shape_axis("chunk", at->axis, x->ndim, ax)) return kn_last_status();
    if (at->chunks < 1 || at->chunks > KN_SPLIT_MAX)
        return kn__error(KN_ERR_ARG, "chunk: chunks is %lld, expected 1..%d", (long long)at->chunks,
                         KN_SPLIT_MAX);
    int64_t n = x->shape[*ax];
    *size = n == 0 ? 0 : (n + at->chunks - 1) / at->chunks;
    *count = n == 0 ? at->chunks : (n + *size - 1) / *size;
    return KN_OK;
}

static kn_status chunk_infer(const kn_op_args *a, kn_out_meta *m)
{
    const kn_tensor *x = a->in[0];
    int ax;
    int64_t size = 0, count = 0;
    if (chunk_plan(x, a->attrs, &ax, &size, &count)) return kn_last_status();
    if (count != a->n_out)
        return kn__error(KN_ERR_ARG, "chunk: %d outputs requested, the axis gives %lld", a->n_out,
                         (long long)count);
    for (int i = 0; i < a->n_out; i++) {
        m[i].dtype = x->dtype;
        m[i].ndim = x->ndim;
        memcpy(m[i].shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
        m[i].shape[ax] = i < count - 1 ? size : x->shape[ax] - size * (count - 1);
    }
    return KN_OK;
}

static const kn_attr_desc chunk_attr_schema[] = {
    KN_ATTR(kn_chunk_attrs, chunks, KN_ATTR_INT),
    KN_ATTR(kn_chunk_attrs, axis, KN_ATTR_INT),
};

const kn_op_def kn_op_chunk = {
    .name = "chunk",
    .n_in = 1,
    .n_out = -1,
    .attrs = chunk_attr_schema,
    .n_attrs = 2,
    .attrs_size = sizeof(kn_chunk_attrs),
    .dtypes = KN_DTYPES_ALL,
    .infer = chunk_infer,
    .impls = split_impls,
    .grad = split_grad,
    .layout = KN_LAYOUT_CHANNEL_AXIS,
};

kn_status kn_chunk(kn_tensor *x, int chunks, int axis, kn_tensor **outs, int *n_out)
{
    kn_chunk_attrs at = {chunks, axis};
    int ax;
    int64_t size = 0, count = 0;
    if (!outs || !n_out) return kn__error(KN_ERR_ARG, "chunk: outs or n_out is NULL");
    *n_out = 0;
    if (!x) return kn__error(KN_ERR_ARG, "chunk: input 0 is NULL");
    if (chunk_plan(x, &at, &ax, &size, &count)) return kn_last_status();
    kn_tensor *in[1] = {x};
    kn_status s = kn__op_call(&kn_op_chunk, 1, in, &at, (int)count, outs);
    if (!s) *n_out = (int)count;
    return s;
}

/* --------------------------------------- index-map kernel (pad, tile, repeat) */
/* y[o] = x[src(o)] where src maps each output dim on its own: table[d][o_d]
 * is an element offset into x, or NO_SRC (y gets the fill value). */
#define NO_SRC INT64_MIN
typedef int64_t (*src_index_fn)(const kn_op_args *a, int d, int64_t o); /* -1: fill */

typedef struct map_plan {
    const kn_tensor *x;
    kn_tensor *y;
    const int64_t *table[KN_MAX_DIMS];
    char fill[16];
} map_plan;

/* y (any shape, contiguous) from x (any strides) through the tables */
static void map_range(int64_t begin, int64_t end, void *arg)
{
    const map_plan *p = arg;
    const kn_tensor *y = p->y;
    int nd = y->ndim;
    size_t es = kn_dtype_size(y->dtype);
    int64_t idx[KN_MAX_DIMS], rem = begin;
    for (int d = nd - 1; d >= 0; d--) {
        idx[d] = rem % y->shape[d];
        rem /= y->shape[d];
    }
    const char *xb = kn__tensor_ptr(p->x);
    char *yb = kn__tensor_ptr(y);
    for (int64_t i = begin; i < end; i++) {
        int64_t off = 0;
        bool fill = false;
        for (int d = 0; d < nd; d++) {
            int64_t t = p->table[d][idx[d]];
            if (t == NO_SRC)
                fill = true;
            else
                off += t;
        }
        memcpy(yb + i * (int64_t)es, fill ? p->fill : xb + off * (int64_t)es, es);
        for (int d = nd - 1; d >= 0; d--) {
            if (++idx[d] < y->shape[d]) break;
            idx[d] = 0;
        }
    }
}

/* Output dims beyond x's (tile's leading dims) read x at offset 0. */
static kn_status map_run(const kn_op_args *a, src_index_fn src, double fill)
{
    const kn_tensor *x = a->in[0];
    kn_tensor *y = a->out[0];
    int64_t n = kn_tensor_numel(y), total = 0;
    if (n == 0) return KN_OK;
    for (int d = 0; d < y->ndim; d++)
        total += y->shape[d];
    int64_t *buf = kn_alloc(sizeof(int64_t) * (size_t)(total ? total : 1));
    if (!buf) return kn_last_status();
    map_plan p = {.x = x, .y = y};
    kn__store(y->dtype, p.fill, fill);
    int lead = y->ndim - x->ndim;
    for (int d = 0, at = 0; d < y->ndim; d++) {
        p.table[d] = buf + at;
        for (int64_t o = 0; o < y->shape[d]; o++) {
            int64_t s = src(a, d, o);
            buf[at++] = s < 0 ? NO_SRC : d < lead ? 0 : s * x->strides[d - lead];
        }
    }
    kn_parallel_for(n, 4096, map_range, &p);
    kn_free(buf);
    return KN_OK;
}

/* ---------------------------------------------------------------- pad */
static const kn_attr_desc pad_attr_schema[] = {
    KN_ATTR(kn_pad_attrs, before, KN_ATTR_INTS),
    KN_ATTR(kn_pad_attrs, after, KN_ATTR_INTS),
    KN_ATTR(kn_pad_attrs, mode, KN_ATTR_INT),
    KN_ATTR(kn_pad_attrs, value, KN_ATTR_FLOAT),
};

static kn_status pad_infer(const kn_op_args *a, kn_out_meta *m)
{
    const kn_pad_attrs *at = a->attrs;
    const kn_tensor *x = a->in[0];
    if (at->before.n != x->ndim || at->after.n != x->ndim)
        return kn__error(KN_ERR_ARG, "pad: %d/%d pads for an input of %d dims", at->before.n,
                         at->after.n, x->ndim);
    if (at->mode < KN_PAD_CONSTANT || at->mode > KN_PAD_EDGE)
        return kn__error(KN_ERR_ARG, "pad: mode %lld is not a kn_pad_mode", (long long)at->mode);
    for (int d = 0; d < x->ndim; d++) {
        int64_t b = at->before.v[d], e = at->after.v[d], n = x->shape[d];
        if (b < 0 || e < 0)
            return kn__error(KN_ERR_ARG,
                             "pad: axis %d has pads (%lld, %lld), expected >= 0 (crop "
                             "with slice or narrow)",
                             d, (long long)b, (long long)e);
        if (at->mode == KN_PAD_REFLECT && (b > n - 1 || e > n - 1) && (b || e))
            return kn__error(KN_ERR_ARG,
                             "pad: reflect pads (%lld, %lld) on axis %d must be < its "
                             "size %lld",
                             (long long)b, (long long)e, d, (long long)n);
        if (at->mode == KN_PAD_EDGE && n == 0 && (b || e))
            return kn__error(KN_ERR_ARG, "pad: edge padding of axis %d, which is empty", d);
        if (__builtin_add_overflow(n, b, &m->shape[d]) ||
            __builtin_add_overflow(m->shape[d], e, &m->shape[d]))
            return kn__error(KN_ERR_SHAPE, "pad: axis %d overflows", d);
    }
    m->dtype = x->dtype;
    m->ndim = x->ndim;
    return kn__check_shape("pad", m->ndim, m->shape);
}

static int64_t pad_src(const kn_op_args *a, int d, int64_t o)
{
    const kn_pad_attrs *at = a->attrs;
    int64_t n = a->in[0]->shape[d], i = o - at->before.v[d];
    if (i >= 0 && i < n) return i;
    if (at->mode == KN_PAD_CONSTANT) return -1;
    if (at->mode == KN_PAD_EDGE) return i < 0 ? 0 : n - 1;
    return i < 0 ? -i : 2 * (n - 1) - i; /* reflect, pads < n */
}

static kn_status pad_ref(const kn_op_args *a)
{
    return map_run(a, pad_src, ((const kn_pad_attrs *)a->attrs)->value);
}
static const kn_impl pad_impls[] = {{"ref", KN_ISA_REF, NULL, pad_ref}, {0}};

/* Adjoint of reflect/edge padding along axis d (g padded, x size n there):
 * every padded position adds into the x position it was read from. */
static kn_tensor *fold_axis(kn_tensor *g, int d, int64_t n, int64_t before, kn_pad_mode mode)
{
    kn_scratch s = {0};
    int64_t ishape[KN_MAX_DIMS], zshape[KN_MAX_DIMS], P = g->shape[d];
    for (int k = 0; k < g->ndim; k++)
        ishape[k] = k == d ? P : 1, zshape[k] = k == d ? n : g->shape[k];
    kn_tensor *idx = kn__keep(&s, kn_tensor_empty(KN_I64, g->ndim, ishape));
    if (idx) {
        int64_t *v = kn_tensor_data(idx);
        for (int64_t p = 0; p < P; p++) {
            int64_t i = p - before;
            v[p] = i >= 0 && i < n       ? i
                   : mode == KN_PAD_EDGE ? (i < 0 ? 0 : n - 1)
                   : i < 0               ? -i
                                         : 2 * (n - 1) - i;
        }
    }
    kn_tensor *e = kn__keep(&s, idx ? kn_expand(idx, g->ndim, g->shape) : NULL);
    kn_tensor *z = kn__keep(&s, e ? kn_tensor_zeros(g->dtype, g->ndim, zshape) : NULL);
    kn_tensor *r = z ? kn_scatter_add(z, d, e, g) : NULL;
    kn__scratch_free(&s);
    return r;
}

static kn_status pad_grad(const kn_grad_args *g)
{
    const kn_pad_attrs *at = g->attrs;
    const kn_tensor *x = g->in[0];
    kn_tensor *t = kn_tensor_ref(g->grad_out[0]);
    for (int d = 0; d < x->ndim && t; d++) {
        int64_t b = at->before.v[d], n = x->shape[d];
        if (b == 0 && at->after.v[d] == 0) continue;
        kn_tensor *next = at->mode == KN_PAD_CONSTANT
                              ? kn_narrow(t, d, b, n)
                              : fold_axis(t, d, n, b, (kn_pad_mode)at->mode);
        kn_tensor_unref(t);
        t = next;
    }
    return done(&g->grad_in[0], t);
}

const kn_op_def kn_op_pad = {
    .name = "pad",
    .n_in = 1,
    .n_out = 1,
    .attrs = pad_attr_schema,
    .n_attrs = 4,
    .attrs_size = sizeof(kn_pad_attrs),
    .dtypes = KN_DTYPES_ALL,
    .infer = pad_infer,
    .impls = pad_impls,
    .grad = pad_grad,
    .layout = KN_LAYOUT_FIXED,
};

kn_tensor *kn_pad(kn_tensor *x, const int64_t *pads, kn_pad_mode mode, double value)
{
    kn_pad_attrs at = {.mode = mode, .value = value};
    int nd = x ? x->ndim : 0;
    if (nd > 0 && !pads) return kn__error_null(KN_ERR_ARG, "pad: pads is NULL");
    at.before.n = at.after.n = nd;
    for (int d = 0; d < nd; d++)
        at.before.v[d] = pads[2 * d], at.after.v[d] = pads[2 * d + 1];
    kn_tensor *in[1] = {x};
    return kn__op_call1(&kn_op_pad, 1, in, &at);
}

/* --------------------------------------------------------------- tile */
static const kn_attr_desc tile_attr_schema[] = {
    {"reps", KN_ATTR_INTS, offsetof(kn_shape_attrs, shape)},
};

/* numpy.tile: x and reps are aligned on the right, the shorter padded
 * with leading 1s. */
static kn_status tile_infer(const kn_op_args *a, kn_out_meta *m)
{
    const kn_shape_attrs *at = a->attrs;
    const kn_tensor *x = a->in[0];
    int n = at->shape.n;
    if (n < 0 || n > KN_MAX_DIMS)
        return kn__error(KN_ERR_ARG, "tile: %d reps, expected 0..%d", n, KN_MAX_DIMS);
    m->ndim = n > x->ndim ? n : x->ndim;
    for (int d = 0; d < m->ndim; d++) {
        int xd = d - (m->ndim - x->ndim), rd = d - (m->ndim - n);
        int64_t size = xd < 0 ? 1 : x->shape[xd], r = rd < 0 ? 1 : at->shape.v[rd];
        if (r < 0)
            return kn__error(KN_ERR_ARG, "tile: reps[%d] is %lld, expected >= 0", rd, (long long)r);
        if (kn__mul_overflow(size, r, &m->shape[d]))
            return kn__error(KN_ERR_SHAPE, "tile: output dim %d overflows", d);
    }
    m->dtype = x->dtype;
    return kn__check_shape("tile", m->ndim, m->shape);
}

static int64_t tile_src(const kn_op_args *a, int d, int64_t o)
{
    const kn_tensor *x = a->in[0];
    int xd = d - (a->out[0]->ndim - x->ndim);
    return xd < 0 ? 0 : o % x->shape[xd];
}

static kn_status tile_ref(const kn_op_args *a)
{
    return map_run(a, tile_src, 0);
}
static const kn_impl tile_impls[] = {{"ref", KN_ISA_REF, NULL, tile_ref}, {0}};

/* g viewed as (P, reps, size, S) and summed over reps, one axis at a time */
static kn_tensor *sum_blocks(kn_tensor *t, int d, int64_t size, bool interleaved, int nd,
                             int64_t *cur)
{
    int64_t P = 1, S = 1, r = size ? cur[d] / size : 0;
    for (int k = 0; k < d; k++)
        P *= cur[k];
    for (int k = d + 1; k < nd; k++)
        S *= cur[k];
    int64_t s4[4] = {P, interleaved ? size : r, interleaved ? r : size, S};
    int axis = interleaved ? 2 : 1;
    kn_tensor *v = kn_reshape(t, 4, s4);
    kn_tensor *sum = v ? kn_sum(v, 1, &axis, false) : NULL;
    cur[d] = size;
    kn_tensor *r3 = sum ? kn_reshape(sum, nd, cur) : NULL;
    kn_tensor_unref(v);
    kn_tensor_unref(sum);
    return r3;
}

static kn_status tile_grad(const kn_grad_args *g)
{
    const kn_tensor *x = g->in[0], *y = g->out[0];
    int nd = y->ndim, lead = nd - x->ndim;
    int64_t cur[KN_MAX_DIMS];
    memcpy(cur, y->shape, sizeof(int64_t) * (size_t)nd);
    kn_tensor *t = kn_tensor_ref(g->grad_out[0]);
    for (int d = 0; d < nd && t; d++) {
        int64_t size = d < lead ? 1 : x->shape[d - lead];
        if (cur[d] == size) continue;
        kn_tensor *next = sum_blocks(t, d, size, false, nd, cur);
        kn_tensor_unref(t);
        t = next;
    }
    kn_tensor *r = t ? kn_reshape(t, x->ndim, x->shape) : NULL;
    kn_tensor_unref(t);
    return done(&g->grad_in[0], r);
}

const kn_op_def kn_op_tile = {
    .name = "tile",
    .n_in = 1,
    .n_out = 1,
    .attrs = tile_attr_schema,
    .n_attrs = 1,
    .attrs_size = sizeof(kn_shape_attrs),
    .dtypes = KN_DTYPES_ALL,
    .infer = tile_infer,
    .impls = tile_impls,
    .grad = tile_grad,
    .layout = KN_LAYOUT_FIXED,
};

kn_tensor *kn_tile(kn_tensor *x, int n, const int64_t *reps)
{
    kn_shape_attrs at = {{0}};
    if (n < 0 || n > KN_MAX_DIMS || (n > 0 && !reps))
        return kn__error_null(KN_ERR_ARG, "tile: %d reps (expected 0..%d and a list)", n,
                              KN_MAX_DIMS);
    at.shape.n = n;
    for (int i = 0; i < n; i++)
        at.shape.v[i] = reps[i];
    kn_tensor *in[1] = {x};
    return kn__op_call1(&kn_op_tile, 1, in, &at);
}

/* ------------------------------------------------------------- repeat */
static const kn_attr_desc repeat_attr_schema[] = {
    KN_ATTR(kn_repeat_attrs, repeats, KN_ATTR_INT),
    KN_ATTR(kn_repeat_attrs, axis, KN_ATTR_INT),
};

/* numpy.repeat(x, repeats, axis): each element repeated along the axis */
static kn_status repeat_infer(const kn_op_args *a, kn_out_meta *m)
{
    const kn_repeat_attrs *at = a->attrs;
    const kn_tensor *x = a->in[0];
    int ax;
    if (kn__shape_axis("repeat", at->axis, x->ndim, &ax)) return kn_last_status();
    if (at->repeats < 0)
        return kn__error(KN_ERR_ARG, "repeat: repeats is %lld, expected >= 0",
                         (long long)at->repeats);
    m->dtype = x->dtype;
    m->ndim = x->ndim;
    memcpy(m->shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    if (kn__mul_overflow(x->shape[ax], at->repeats, &m->shape[ax]))
        return kn__error(KN_ERR_SHAPE, "repeat: axis %d overflows", ax);
    return kn__check_shape("repeat", m->ndim, m->shape);
}

static int64_t repeat_src(const kn_op_args *a, int d, int64_t o)
{
    const kn_repeat_attrs *at = a->attrs;
    int ax = (int)(at->axis < 0 ? at->axis + a->in[0]->ndim : at->axis);
    return d == ax ? o / at->repeats : o;
}

static kn_status repeat_ref(const kn_op_args *a)
{
    return map_run(a, repeat_src, 0);
}
static const kn_impl repeat_impls[] = {{"ref", KN_ISA_REF, NULL, repeat_ref}, {0}};

static kn_status repeat_grad(const kn_grad_args *g)
{
    const kn_repeat_attrs *at = g->attrs;
    const kn_tensor *x = g->in[0];
    int ax = (int)(at->axis < 0 ? at->axis + x->ndim : at->axis);
    int64_t cur[KN_MAX_DIMS];
    memcpy(cur, g->out[0]->shape, sizeof(int64_t) * (size_t)x->ndim);
    return done(&g->grad_in[0], sum_blocks(g->grad_out[0], ax, x->shape[ax], true, x->ndim, cur));
}

const kn_op_def kn_op_repeat = {
    .name = "repeat",
    .n_in = 1,
    .n_out = 1,
    .attrs = repeat_attr_schema,
    .n_attrs = 2,
    .attrs_size = sizeof(kn_repeat_attrs),
    .dtypes = KN_DTYPES_ALL,
    .infer = repeat_infer,
    .impls = repeat_impls,
    .grad = repeat_grad,
    .layout = KN_LAYOUT_FIXED,
};

kn_tensor *kn_repeat(kn_tensor *x, int64_t repeats, int axis)
{
    kn_repeat_attrs at = {repeats, axis};
    kn_tensor *in[1] = {x};
    return kn__op_call1(&kn_op_repeat, 1, in, &at);
}
