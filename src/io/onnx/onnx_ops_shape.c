/* onnx_ops_shape.c — ONNX node converters for shape, indexing and
 * rearranging ops (Reshape, Slice, Gather*, Scatter*, Pad, TopK, ...) over
 * opsets 7 to 17; see onnx_internal.h. Index inputs may be graph values:
 * negative indices are wrapped with kiln ops (where(i < 0, i + dim, i)).
 * Inputs that decide an output's shape (Reshape's shape, Slice's starts,
 * Pad's pads, ...) must be concrete; NonZero, Compress and Unique need
 * concrete data, since a graph cannot hold data-dependent shapes. */
#if KILN_HAVE_ONNX
#include "onnx_internal.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

#define IN(n, i) ((i) < (n)->n_in ? (n)->in[i] : NULL)
#define MAX_PARTS 1024 /* the most Split outputs */

/* ================================================================ load-time checks */
static const Onnx__AttributeProto *pattr(const Onnx__NodeProto *p, const char *name)
{
    for (size_t i = 0; i < p->n_attribute; i++)
        if (p->attribute[i]->name && !strcmp(p->attribute[i]->name, name)) return p->attribute[i];
    return NULL;
}

static bool why_not(char *why, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool why_not(char *why, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (why && size) vsnprintf(why, size, fmt, ap);
    va_end(ap);
    return false;
}

/* The string attribute equals one of the allowed values (NULL-ended), or is
 * absent; otherwise false with the reason. */
static bool check_string(const Onnx__NodeProto *p, const char *name, const char *const *allowed,
                         char *why, size_t size)
{
    const Onnx__AttributeProto *a = pattr(p, name);
    if (!a) return true;
    for (int i = 0; allowed[i]; i++)
        if (a->has_s && a->s.len == strlen(allowed[i]) && !memcmp(a->s.data, allowed[i], a->s.len))
            return true;
    int len = a->has_s && a->s.len < 64 ? (int)a->s.len : 0;
    return why_not(why, size, "%s '%.*s' is not supported", name, len,
                   len ? (const char *)a->s.data : "");
}

static bool has_input(const Onnx__NodeProto *p, size_t i)
{
    return i < p->n_input && p->input[i] && p->input[i][0];
}

static bool check_pad(const Onnx__NodeProto *p, int opset, char *why, size_t size)
{
    static const char *const modes[] = {"constant", "reflect", "edge", NULL};
    if (has_input(p, 3)) return why_not(why, size, "input 'axes' (opset 18) is not supported");
    (void)opset;
    return check_string(p, "mode", modes, why, size);
}

static bool check_reduction(const Onnx__NodeProto *p, int opset, char *why, size_t size)
{
    static const char *const reductions[] = {"none", "add", "mul", NULL};
    (void)opset;
    return check_string(p, "reduction", reductions, why, size);
}

static bool check_depth_to_space(const Onnx__NodeProto *p, int opset, char *why, size_t size)
{
    static const char *const modes[] = {"DCR", "CRD", NULL};
    (void)opset;
    return check_string(p, "mode", modes, why, size);
}

static bool check_dtype_attr(const Onnx__NodeProto *p, const char *name, char *why, size_t size)
{
    const Onnx__AttributeProto *a = pattr(p, name);
    kn_dtype dt;
    if (a && !kn__onnx_dtype((int32_t)a->i, &dt))
        return why_not(why, size, "%s %lld (an ONNX data type kiln lacks)", name, (long long)a->i);
    return true;
}

static bool check_eye_like(const Onnx__NodeProto *p, int opset, char *why, size_t size)
{
    (void)opset;
    return check_dtype_attr(p, "dtype", why, size);
}

static bool check_constant_of_shape(const Onnx__NodeProto *p, int opset, char *why, size_t size)
{
    const Onnx__AttributeProto *a = pattr(p, "value");
    kn_dtype dt;
    (void)opset;
    if (a && a->t && !kn__onnx_dtype(a->t->data_type, &dt))
        return why_not(why, size, "value of ONNX data type %d, which kiln lacks",
                       (int)a->t->data_type);
    return true;
}

static bool check_split(const Onnx__NodeProto *p, int opset, char *why, size_t size)
{
    (void)opset;
    if (pattr(p, "num_outputs")) return why_not(why, size, "attribute num_outputs (opset 18)");
    if (p->n_output > MAX_PARTS)
        return why_not(why, size, "%zu outputs, the most is %d", p->n_output, MAX_PARTS);
    return true;
}

/* ================================================================ converter helpers */
static kn_status missing(const kn_onnx_node *n, int i, const char *what)
{
    return kn__onnx_fail(n, KN_ERR_ARG, "input %d (%s) is missing", i, what);
}

/* Stores t as output i (taking the reference); an output past n_out is
 * dropped. NULL t: the error of the op that failed. */
static kn_status set_out(kn_onnx_node *n, int i, kn_tensor *t)
{
    if (!t) return kn_last_status() != KN_OK ? kn_last_status() : KN_ERR_INTERNAL;
    if (i >= n->n_out) {
        kn_tensor_unref(t);
        return KN_OK;
    }
    kn_tensor_unref(n->out[i]);
    n->out[i] = t;
    return KN_OK;
}

/* The only element of a concrete input, whatever its dtype. */
static kn_status const_scalar(const kn_onnx_node *n, int i, const char *what, double *v)
{
    kn_tensor *t = IN(n, i);
    if (!t) return missing(n, i, what);
    if (!kn__onnx_is_const(t))
        return kn__onnx_fail(n, KN_ERR_UNSUPPORTED,
                             "input %d (%s) must be a constant (an initializer or computed from "
                             "them), not a value of the graph",
                             i, what);
    if (kn_tensor_numel(t) != 1)
        return kn__onnx_fail(n, KN_ERR_SHAPE, "input %d (%s) has %lld elements, expected 1", i,
                             what, (long long)kn_tensor_numel(t));
    return kn_tensor_item(t, v);
}

/* Integer values given by attribute `name` before opset `since` and by
 * input i from it: *count gets their number, or -1 when absent. */
static kn_status ints_arg(const kn_onnx_node *n, int since, const char *name, int i, int64_t *out,
                          int max, int *count)
{
    if (n->opset < since) {
        int c = kn__onnx_attr_ints(n, name, out, max);
        if (c > max)
            return kn__onnx_fail(n, KN_ERR_ARG, "attribute %s has %d values, the most is %d", name,
                                 c, max);
        *count = c;
        return KN_OK;
    }
    if (!IN(n, i)) {
        *count = -1;
        return KN_OK;
    }
    return kn__onnx_const_ints(n, i, out, max, count);
}

static int64_t numel_of(int nd, const int64_t *shape)
{
    int64_t p = 1;
    for (int i = 0; i < nd; i++)
        p *= shape[i];
    return p;
}

/* A concrete 1-D i64 tensor holding v[0..count). */
static kn_tensor *i64_vector(int64_t count, const int64_t *v)
{
    static const int64_t none = 0;
    return kn_tensor_from_data(KN_I64, 1, &count, count ? (const void *)v : (const void *)&none);
}

/* idx as i64 with negative entries wrapped: where(idx < 0, idx + dims, idx);
 * dims broadcasts against idx (a 0-d tensor for one axis). */
static kn_tensor *wrap_index(kn_scratch *s, kn_tensor *idx, kn_tensor *dims)
{
    kn_tensor *i =
        kn__keep(s, kn_tensor_dtype(idx) == KN_I64 ? kn_tensor_ref(idx) : kn_cast(idx, KN_I64));
    kn_tensor *zero = kn__keep(s, kn_tensor_scalar(KN_I64, 0));
    kn_tensor *neg = kn__keep(s, kn_lt(i, zero));
    kn_tensor *up = kn__keep(s, kn_add(i, dims));
    return kn__keep(s, kn_where(neg, up, i));
}

static kn_tensor *wrap_index_dim(kn_scratch *s, kn_tensor *idx, int64_t dim)
{
    return wrap_index(s, idx, kn__keep(s, kn_tensor_scalar(KN_I64, (double)dim)));
}

/* t reshaped (kept in s), or t itself when it has that shape already. */
static kn_tensor *reshape_to(kn_scratch *s, kn_tensor *t, int nd, const int64_t *shape)
{
    if (t && kn_tensor_ndim(t) == nd &&
        !memcmp(kn_tensor_shape(t), shape, sizeof(int64_t) * (size_t)nd))
        return t;
    return kn__keep(s, kn_reshape(t, nd, shape));
}

/* Ends a converter that used a scratch list: out (kept in s) becomes output
 * 0 with its own reference. */
static kn_status finish(kn_onnx_node *n, kn_scratch *s, kn_tensor *out)
{
    kn_status st = set_out(n, 0, out ? kn_tensor_ref(out) : NULL);
    kn__scratch_free(s);
    return st;
}

/* Copies t's elements as doubles into a new buffer (kn_free it). */
static double *as_doubles(kn_tensor *t)
{
    int64_t cnt = kn_tensor_numel(t);
    double *b = kn_alloc((size_t)(cnt > 0 ? cnt : 1) * sizeof *b);
    if (b && kn_tensor_copy_to(t, KN_F64, b, (size_t)cnt * sizeof *b)) {
        kn_free(b);
        return NULL;
    }
    return b;
}

/* ================================================================ reshaping */
/* Reshape: shape from input 1 (opset 5+); 0 copies the input's dim unless
 * allowzero (opset 14) is set; one -1 is inferred. */
static kn_status cv_reshape(kn_onnx_node *n)
{
    kn_tensor *x = IN(n, 0);
    int64_t shape[KN_MAX_DIMS];
    int cnt;
    if (!x) return missing(n, 0, "data");
    if (ints_arg(n, 5, "shape", 1, shape, KN_MAX_DIMS, &cnt)) return kn_last_status();
    if (cnt < 0) return missing(n, 1, "shape");
    bool allowzero = n->opset >= 14 && kn__onnx_attr_int(n, "allowzero", 0) != 0;
    int nd = kn_tensor_ndim(x);
    for (int i = 0; i < cnt; i++) {
        if (shape[i] == 0 && !allowzero) {
            if (i >= nd)
                return kn__onnx_fail(n, KN_ERR_SHAPE,
                                     "shape[%d] is 0 (copy the input's dim) but the input has %d "
                                     "dims",
                                     i, nd);
            shape[i] = kn_tensor_shape(x)[i];
        } else if (shape[i] < -1) {
            return kn__onnx_fail(n, KN_ERR_SHAPE, "shape[%d] is %lld, expected >= -1", i,
                                 (long long)shape[i]);
        }
    }
    return set_out(n, 0, kn_reshape(x, cnt, shape));
}

/* Flatten: (prod(dims[:axis]), prod(dims[axis:])); axis in [-r, r]. */
static kn_status cv_flatten(kn_onnx_node *n)
{
    kn_tensor *x = IN(n, 0);
    if (!x) return missing(n, 0, "input");
    int nd = kn_tensor_ndim(x);
    int64_t axis = kn__onnx_attr_int(n, "axis", 1);
    if (axis < 0) axis += nd;
    if (axis < 0 || axis > nd)
        return kn__onnx_fail(n, KN_ERR_ARG, "axis %lld is out of range for %d dims",
                             (long long)kn__onnx_attr_int(n, "axis", 1), nd);
    const int64_t *sh = kn_tensor_shape(x);
    int64_t shape[2] = {numel_of((int)axis, sh), numel_of(nd - (int)axis, sh + axis)};
    return set_out(n, 0, kn_reshape(x, 2, shape));
}

/* Transpose: perm defaults to the reversed axes. */
static kn_status cv_transpose(kn_onnx_node *n)
{
    kn_tensor *x = IN(n, 0);
    if (!x) return missing(n, 0, "data");
    int nd = kn_tensor_ndim(x), perm[KN_MAX_DIMS];
    int64_t p[KN_MAX_DIMS];
    int cnt = kn__onnx_attr_ints(n, "perm", p, KN_MAX_DIMS);
    if (cnt < 0) {
        for (int i = 0; i < nd; i++)
            perm[i] = nd - 1 - i;
    } else {
        if (cnt != nd)
            return kn__onnx_fail(n, KN_ERR_ARG, "perm has %d entries, the input has %d dims", cnt,
                                 nd);
        for (int i = 0; i < nd; i++)
            if (kn__onnx_axis(n, p[i], nd, &perm[i])) return kn_last_status();
    }
    return set_out(n, 0, kn_permute(x, nd, perm));
}

/* Squeeze: axes attribute before opset 13, input from it; none: every
 * size-1 dim. */
static kn_status cv_squeeze(kn_onnx_node *n)
{
    kn_tensor *x = IN(n, 0);
    if (!x) return missing(n, 0, "data");
    int64_t a[KN_MAX_DIMS];
    int cnt, axes[KN_MAX_DIMS], nd = kn_tensor_ndim(x);
    if (ints_arg(n, 13, "axes", 1, a, KN_MAX_DIMS, &cnt)) return kn_last_status();
    for (int i = 0; i < cnt; i++) {
        if (kn__onnx_axis(n, a[i], nd, &axes[i])) return kn_last_status();
        if (kn_tensor_shape(x)[axes[i]] != 1)
            return kn__onnx_fail(n, KN_ERR_SHAPE, "axis %d has size %lld, expected 1", axes[i],
                                 (long long)kn_tensor_shape(x)[axes[i]]);
    }
    if (cnt <= 0) {
        /* kn_squeeze with no axes drops every size-1 dim */
        return set_out(n, 0, kn_squeeze(x, 0, NULL));
    }
    return set_out(n, 0, kn_squeeze(x, cnt, axes));
}

/* Unsqueeze: axes (attribute before 13, input from 13) index the output. */
static kn_status cv_unsqueeze(kn_onnx_node *n)
{
    kn_tensor *x = IN(n, 0);
    if (!x) return missing(n, 0, "data");
    int64_t a[KN_MAX_DIMS], shape[KN_MAX_DIMS];
    int cnt, nd = kn_tensor_ndim(x);
    if (ints_arg(n, 13, "axes", 1, a, KN_MAX_DIMS, &cnt)) return kn_last_status();
    if (cnt < 0) return kn__onnx_fail(n, KN_ERR_ARG, "axes are missing");
    int out_nd = nd + cnt;
    if (out_nd > KN_MAX_DIMS)
        return kn__onnx_fail(n, KN_ERR_SHAPE, "the output would have %d dims, the most is %d",
                             out_nd, KN_MAX_DIMS);
    bool inserted[KN_MAX_DIMS] = {false};
    for (int i = 0; i < cnt; i++) {
        int ax;
        if (kn__onnx_axis(n, a[i], out_nd, &ax)) return kn_last_status();
        if (inserted[ax])
            return kn__onnx_fail(n, KN_ERR_ARG, "axis %lld is given twice", (long long)a[i]);
        inserted[ax] = true;
    }
    for (int d = 0, j = 0; d < out_nd; d++)
        shape[d] = inserted[d] ? 1 : kn_tensor_shape(x)[j++];
    return set_out(n, 0, kn_reshape(x, out_nd, shape));
}

/* kn_concat of any number of inputs: groups of at most 64 (kiln's limit),
 * then their results. */
static kn_tensor *concat_many(int n, kn_tensor *const *xs, int ax)
{
    enum { GROUP = 64 };
    if (n <= GROUP) return kn_concat(n, xs, ax);
    int np = (n + GROUP - 1) / GROUP;
    kn_tensor **parts = kn_alloc(sizeof *parts * (size_t)np), *r = NULL;
    if (!parts) return NULL;
    int made = 0;
    for (; made < np; made++) {
        int k = n - made * GROUP < GROUP ? n - made * GROUP : GROUP;
        if (!(parts[made] = kn_concat(k, xs + made * GROUP, ax))) break;
    }
    if (made == np) r = concat_many(np, parts, ax);
    for (int i = 0; i < made; i++)
        kn_tensor_unref(parts[i]);
    kn_free(parts);
    return r;
}

/* Concat along axis (negative from opset 11). */
static kn_status cv_concat(kn_onnx_node *n)
{
    if (n->n_in < 1 || !n->in[0]) return missing(n, 0, "inputs");
    for (int i = 0; i < n->n_in; i++)
        if (!n->in[i]) return missing(n, i, "inputs");
    int ax;
    if (kn__onnx_axis(n, kn__onnx_attr_int(n, "axis", 0), kn_tensor_ndim(n->in[0]), &ax))
        return kn_last_status();
    if (n->n_in == 1) return set_out(n, 0, kn_tensor_ref(n->in[0]));
    return set_out(n, 0, concat_many(n->n_in, n->in, ax));
}

/* Split: sizes from the split attribute (before 13) or input (from 13),
 * else equal parts, one per output. */
static kn_status cv_split(kn_onnx_node *n)
{
    kn_tensor *x = IN(n, 0);
    if (!x) return missing(n, 0, "input");
    int ax, cnt, parts = n->n_out;
    if (kn__onnx_axis(n, kn__onnx_attr_int(n, "axis", 0), kn_tensor_ndim(x), &ax))
        return kn_last_status();
    int64_t dim = kn_tensor_shape(x)[ax];
    int64_t sizes[MAX_PARTS];
    if (parts < 1 || parts > MAX_PARTS)
        return kn__onnx_fail(n, KN_ERR_ARG, "%d outputs, expected 1..%d", parts, MAX_PARTS);
    if (ints_arg(n, 13, "split", 1, sizes, MAX_PARTS, &cnt)) return kn_last_status();
    if (cnt < 0) {
        if (dim % parts)
            return kn__onnx_fail(n, KN_ERR_SHAPE,
                                 "axis %d of size %lld does not split into %d "
                                 "equal parts",
                                 ax, (long long)dim, parts);
        for (int i = 0; i < parts; i++)
            sizes[i] = dim / parts;
    } else if (cnt != parts) {
        return kn__onnx_fail(n, KN_ERR_ARG, "split has %d sizes for %d outputs", cnt, parts);
    }
    int64_t total = 0;
    for (int i = 0; i < parts; i++) {
        if (sizes[i] < 0)
            return kn__onnx_fail(n, KN_ERR_ARG, "split[%d] is %lld, expected >= 0", i,
                                 (long long)sizes[i]);
        total += sizes[i];
    }
    if (total != dim)
        return kn__onnx_fail(n, KN_ERR_SHAPE, "split sizes add up to %lld, axis %d has %lld",
                             (long long)total, ax, (long long)dim);
    if (parts <= 64) {
        kn_tensor *outs[64] = {NULL};
        if (kn_split(x, parts, sizes, ax, outs)) return kn_last_status();
        for (int i = 0; i < parts; i++)
            set_out(n, i, outs[i]);
        return KN_OK;
    }
    int64_t start = 0;
    for (int i = 0; i < parts; start += sizes[i], i++)
        if (set_out(n, i, kn_narrow(x, ax, start, sizes[i]))) return kn_last_status();
    return KN_OK;
}

/* One axis of Slice: ONNX clamping, then a strided view for positive steps
 * or an index_select of the picked positions for negative ones. */
static kn_tensor *slice_axis(kn_tensor *x, int ax, int64_t start, int64_t end, int64_t step)
{
    int64_t d = kn_tensor_shape(x)[ax];
    if (start < 0) start += d;
    if (end < 0) end += d;
    if (step > 0) {
        start = start < 0 ? 0 : start > d ? d : start;
        end = end < 0 ? 0 : end > d ? d : end;
        return kn_slice(x, ax, start, end > start ? end : start, step);
    }
    start = start < 0 ? 0 : start > d - 1 ? d - 1 : start;
    end = end < -1 ? -1 : end > d - 1 ? d - 1 : end;
    if (d == 0 || start <= end) return kn_slice(x, ax, 0, 0, 1);
    int64_t count = (start - end - 1) / -step + 1;
    int64_t *pos = kn_alloc((size_t)count * sizeof *pos);
    if (!pos) return NULL;
    for (int64_t i = 0; i < count; i++)
        pos[i] = start + i * step;
    kn_tensor *idx = i64_vector(count, pos);
    kn_free(pos);
    kn_tensor *r = idx ? kn_index_select(x, ax, idx) : NULL;
    kn_tensor_unref(idx);
    return r;
}

/* Slice: starts/ends/axes attributes before opset 10, inputs (with steps)
 * from it. */
static kn_status cv_slice(kn_onnx_node *n)
{
    kn_tensor *x = IN(n, 0);
    if (!x) return missing(n, 0, "data");
    int64_t starts[KN_MAX_DIMS], ends[KN_MAX_DIMS], axes[KN_MAX_DIMS], steps[KN_MAX_DIMS];
    int ns, ne, na, nst, nd = kn_tensor_ndim(x);
    if (ints_arg(n, 10, "starts", 1, starts, KN_MAX_DIMS, &ns) ||
        ints_arg(n, 10, "ends", 2, ends, KN_MAX_DIMS, &ne) ||
        ints_arg(n, 10, "axes", 3, axes, KN_MAX_DIMS, &na))
        return kn_last_status();
    if (n->opset < 10)
        nst = -1;
    else if (ints_arg(n, 10, "steps", 4, steps, KN_MAX_DIMS, &nst))
        return kn_last_status();
    if (ns < 0 || ne < 0) return kn__onnx_fail(n, KN_ERR_ARG, "starts or ends are missing");
    if (ns != ne || (na >= 0 && na != ns) || (nst >= 0 && nst != ns))
        return kn__onnx_fail(n, KN_ERR_ARG,
                             "starts, ends, axes and steps have %d, %d, %d and %d values "
                             "(expected equal)",
                             ns, ne, na, nst);
    bool seen[KN_MAX_DIMS] = {false};
    int ax[KN_MAX_DIMS];
    for (int i = 0; i < ns; i++) {
        if (kn__onnx_axis(n, na >= 0 ? axes[i] : i, nd, &ax[i])) return kn_last_status();
        if (seen[ax[i]]) return kn__onnx_fail(n, KN_ERR_ARG, "axis %d is sliced twice", ax[i]);
        seen[ax[i]] = true;
        if (nst >= 0 && steps[i] == 0) return kn__onnx_fail(n, KN_ERR_ARG, "steps[%d] is 0", i);
    }
    kn_tensor *y = kn_tensor_ref(x);
    for (int i = 0; i < ns && y; i++) {
        kn_tensor *t = slice_axis(y, ax[i], starts[i], ends[i], nst >= 0 ? steps[i] : 1);
        kn_tensor_unref(y);
        y = t;
    }
    return set_out(n, 0, y);
}

/* Expand: NumPy broadcast of the input with the given shape. */
static kn_status cv_expand(kn_onnx_node *n)
{
    kn_tensor *x = IN(n, 0);
    if (!x) return missing(n, 0, "input");
    int64_t want[KN_MAX_DIMS], shape[KN_MAX_DIMS];
    int cnt, nd = kn_tensor_ndim(x);
    if (kn__onnx_const_ints(n, 1, want, KN_MAX_DIMS, &cnt)) return kn_last_status();
    int out_nd = cnt > nd ? cnt : nd;
    for (int d = 0; d < out_nd; d++) {
        int i = d - (out_nd - nd), j = d - (out_nd - cnt);
        int64_t a = i >= 0 ? kn_tensor_shape(x)[i] : 1, b = j >= 0 ? want[j] : 1;
        if (a != b && a != 1 && b != 1)
            return kn__onnx_fail(n, KN_ERR_SHAPE,
                                 "dim %d of the input (%lld) does not broadcast with %lld", i,
                                 (long long)a, (long long)b);
        if (b < 0) return kn__onnx_fail(n, KN_ERR_SHAPE, "shape has %lld", (long long)b);
        shape[d] = a == 1 ? b : a;
    }
    return set_out(n, 0, kn_expand(x, out_nd, shape));
}

/* Tile: repeats (input 1, opset 6+) for every axis. */
static kn_status cv_tile(kn_onnx_node *n)
{
    kn_tensor *x = IN(n, 0);
    if (!x) return missing(n, 0, "input");
    int64_t reps[KN_MAX_DIMS];
    int cnt;
    if (kn__onnx_const_ints(n, 1, reps, KN_MAX_DIMS, &cnt)) return kn_last_status();
    if (cnt != kn_tensor_ndim(x))
        return kn__onnx_fail(n, KN_ERR_ARG, "repeats has %d values, the input has %d dims", cnt,
                             kn_tensor_ndim(x));
    return set_out(n, 0, kn_tile(x, cnt, reps));
}

/* Constant padding by a value of the graph: where(inside, pad(y, 0), v). */
static kn_tensor *pad_graph_value(const kn_onnx_node *n, kn_tensor *y, const int64_t *pads,
                                  kn_tensor *v)
{
    if (kn_tensor_numel(v) != 1) {
        kn__onnx_fail(n, KN_ERR_SHAPE, "constant_value has %lld elements, expected 1",
                      (long long)kn_tensor_numel(v));
        return NULL;
    }
    kn_scratch s = {0};
    kn_tensor *in = kn__keep(&s, kn_tensor_ones(KN_BOOL, kn_tensor_ndim(y), kn_tensor_shape(y)));
    in = kn__keep(&s, kn_pad(in, pads, KN_PAD_CONSTANT, 0));
    kn_tensor *p = kn__keep(&s, kn_pad(y, pads, KN_PAD_CONSTANT, 0));
    v = kn__keep(&s, kn_reshape(kn__keep(&s, kn_cast(v, kn_tensor_dtype(y))), 0, NULL));
    kn_tensor *r = kn_where(in, p, v);
    kn__scratch_free(&s);
    return r;
}

/* Pad: pads/value attributes before opset 11, inputs from it. Negative
 * pads crop (a slice first). */
static kn_status cv_pad(kn_onnx_node *n)
{
    kn_tensor *x = IN(n, 0);
    if (!x) return missing(n, 0, "data");
    int nd = kn_tensor_ndim(x), cnt;
    int64_t pads[2 * KN_MAX_DIMS], kp[2 * KN_MAX_DIMS];
    double value = 0;
    if (ints_arg(n, 11, "pads", 1, pads, 2 * KN_MAX_DIMS, &cnt)) return kn_last_status();
    if (cnt != 2 * nd)
        return kn__onnx_fail(n, KN_ERR_ARG, "pads has %d values, expected %d for %d dims", cnt,
                             2 * nd, nd);
    if (n->opset < 11)
        value = kn__onnx_attr_float(n, "value", 0.0f);
    else if (IN(n, 2) && kn__onnx_is_const(IN(n, 2)) &&
             const_scalar(n, 2, "constant_value", &value))
        return kn_last_status();
    char buf[16];
    const char *m = kn__onnx_attr_string(n, "mode", "constant", buf, sizeof buf);
    kn_pad_mode mode = !strcmp(m, "reflect") ? KN_PAD_REFLECT
                       : !strcmp(m, "edge")  ? KN_PAD_EDGE
                                             : KN_PAD_CONSTANT;
    if (strcmp(m, "reflect") && strcmp(m, "edge") && strcmp(m, "constant"))
        return kn__onnx_fail(n, KN_ERR_UNSUPPORTED, "mode '%s' is not supported", m);
    kn_tensor *y = kn_tensor_ref(x);
    bool any = false;
    for (int d = 0; d < nd && y; d++) {
        int64_t b = pads[d], e = pads[nd + d], size = kn_tensor_shape(y)[d];
        if (b < 0 || e < 0) {
            int64_t start = b < 0 ? -b : 0, stop = size + (e < 0 ? e : 0);
            if (stop < start) stop = start;
            kn_tensor *t = kn_slice(y, d, start, stop, 1);
            kn_tensor_unref(y);
            y = t;
        }
        kp[2 * d] = b > 0 ? b : 0;
        kp[2 * d + 1] = e > 0 ? e : 0;
        any |= b > 0 || e > 0;
    }
    if (!y || !any) return set_out(n, 0, y);
    kn_tensor *cv = n->opset >= 11 ? IN(n, 2) : NULL, *r;
    if (mode == KN_PAD_CONSTANT && cv && !kn__onnx_is_const(cv))
        r = pad_graph_value(n, y, kp, cv);
    else
        r = kn_pad(y, kp, mode, value);
    kn_tensor_unref(y);
    return set_out(n, 0, r);
}

/* DepthToSpace (mode DCR or CRD, opset 11+) and SpaceToDepth on NCHW:
 * reshape to 6 dims, permute, reshape. */
static kn_status rearrange(kn_onnx_node *n, const int64_t *s6, const int *perm, const int64_t *s4)
{
    kn_scratch s = {0};
    kn_tensor *t = kn__keep(&s, kn_reshape(n->in[0], 6, s6));
    t = kn__keep(&s, kn_permute(t, 6, perm));
    t = kn__keep(&s, kn_reshape(t, 4, s4));
    return finish(n, &s, t);
}

static kn_status block_input(kn_onnx_node *n, int64_t *b, const int64_t **sh)
{
    kn_tensor *x = IN(n, 0);
    if (!x) return missing(n, 0, "input");
    if (kn_tensor_ndim(x) != 4)
        return kn__onnx_fail(n, KN_ERR_SHAPE, "input has %d dims, expected 4 (N, C, H, W)",
                             kn_tensor_ndim(x));
    *b = kn__onnx_attr_int(n, "blocksize", 0);
    if (*b < 1)
        return kn__onnx_fail(n, KN_ERR_ARG, "blocksize is %lld, expected >= 1", (long long)*b);
    *sh = kn_tensor_shape(x);
    return KN_OK;
}

static kn_status cv_depth_to_space(kn_onnx_node *n)
{
    int64_t b = 1;
    const int64_t *sh = NULL;
    if (block_input(n, &b, &sh) || !sh) return kn_last_status();
    int64_t N = sh[0], C = sh[1], H = sh[2], W = sh[3];
    if (C % (b * b))
        return kn__onnx_fail(n, KN_ERR_SHAPE, "%lld channels do not divide by blocksize^2 = %lld",
                             (long long)C, (long long)(b * b));
    char buf[8];
    const char *mode =
        n->opset >= 11 ? kn__onnx_attr_string(n, "mode", "DCR", buf, sizeof buf) : "DCR";
    int64_t s4[4] = {N, C / (b * b), H * b, W * b};
    if (!strcmp(mode, "CRD")) {
        int64_t s6[6] = {N, C / (b * b), b, b, H, W};
        static const int perm[6] = {0, 1, 4, 2, 5, 3};
        return rearrange(n, s6, perm, s4);
    }
    if (strcmp(mode, "DCR")) return kn__onnx_fail(n, KN_ERR_UNSUPPORTED, "mode '%s'", mode);
    int64_t s6[6] = {N, b, b, C / (b * b), H, W};
    static const int perm[6] = {0, 3, 4, 1, 5, 2};
    return rearrange(n, s6, perm, s4);
}

static kn_status cv_space_to_depth(kn_onnx_node *n)
{
    int64_t b = 1;
    const int64_t *sh = NULL;
    if (block_input(n, &b, &sh) || !sh) return kn_last_status();
    int64_t N = sh[0], C = sh[1], H = sh[2], W = sh[3];
    if (H % b || W % b)
        return kn__onnx_fail(n, KN_ERR_SHAPE,
                             "spatial size %lldx%lld does not divide by blocksize %lld",
                             (long long)H, (long long)W, (long long)b);
    int64_t s6[6] = {N, C, H / b, b, W / b, b}, s4[4] = {N, C * b * b, H / b, W / b};
    static const int perm[6] = {0, 3, 5, 1, 2, 4};
    return rearrange(n, s6, perm, s4);
}

/* ================================================================ shape values */
/* Shape: the input's dims as a concrete i64 vector; start/end (opset 15)
 * pick a range, clamped. */
static kn_status cv_shape(kn_onnx_node *n)
{
    kn_tensor *x = IN(n, 0);
    if (!x) return missing(n, 0, "data");
    int64_t nd = kn_tensor_ndim(x), start = 0, end = nd;
    if (n->opset >= 15) {
        start = kn__onnx_attr_int(n, "start", 0);
        end = kn__onnx_attr_int(n, "end", nd);
    }
    if (start < 0) start += nd;
    if (end < 0) end += nd;
    start = start < 0 ? 0 : start > nd ? nd : start;
    end = end < 0 ? 0 : end > nd ? nd : end;
    return set_out(n, 0, i64_vector(end > start ? end - start : 0, kn_tensor_shape(x) + start));
}

static kn_status cv_size(kn_onnx_node *n)
{
    kn_tensor *x = IN(n, 0);
    if (!x) return missing(n, 0, "data");
    int64_t v = kn_tensor_numel(x);
    return set_out(n, 0, kn_tensor_from_data(KN_I64, 0, NULL, &v));
}

/* ConstantOfShape: a concrete tensor of the given shape filled with the
 * one-element `value` (float 0 by default). */
static kn_status cv_constant_of_shape(kn_onnx_node *n)
{
    int64_t shape[KN_MAX_DIMS];
    int cnt;
    if (kn__onnx_const_ints(n, 0, shape, KN_MAX_DIMS, &cnt)) return kn_last_status();
    for (int i = 0; i < cnt; i++)
        if (shape[i] < 0)
            return kn__onnx_fail(n, KN_ERR_SHAPE, "shape[%d] is %lld, expected >= 0", i,
                                 (long long)shape[i]);
    kn_scratch s = {0};
    kn_tensor *v = NULL;
    if (kn__onnx_attr(n, "value")) {
        v = kn__keep(&s, kn__onnx_attr_tensor(n, "value"));
        int64_t count = v ? kn_tensor_numel(v) : 1;
        if (count != 1) {
            kn__scratch_free(&s); /* frees v: its count was read before */
            return kn__onnx_fail(n, KN_ERR_ARG, "value has %lld elements, expected 1",
                                 (long long)count);
        }
        v = kn__keep(&s, kn_reshape(v, 0, NULL));
    } else {
        v = kn__keep(&s, kn_tensor_scalar(KN_F32, 0));
    }
    kn_tensor *y = v ? kn__keep(&s, kn_tensor_empty(kn_tensor_dtype(v), cnt, shape)) : NULL;
    if (y && kn_tensor_copy_(y, v)) y = NULL;
    return finish(n, &s, y);
}

/* Range: concrete scalars start, limit, delta; max(ceil((limit - start) /
 * delta), 0) values start + i * delta, of their dtype. */
static kn_status cv_range(kn_onnx_node *n)
{
    double start, limit, delta;
    if (const_scalar(n, 0, "start", &start) || const_scalar(n, 1, "limit", &limit) ||
        const_scalar(n, 2, "delta", &delta))
        return kn_last_status();
    kn_dtype dt = kn_tensor_dtype(n->in[0]);
    if (delta == 0) return kn__onnx_fail(n, KN_ERR_ARG, "delta is 0");
    double c = ceil((limit - start) / delta);
    if (!(c < 1e12)) c = c > 0 ? 1e12 : 0;
    int64_t count = c > 0 ? (int64_t)c : 0;
    if (count > ((int64_t)1 << 31))
        return kn__onnx_fail(n, KN_ERR_ARG, "range of %lld values is too long", (long long)count);
    bool is_int = !kn_dtype_is_float(dt);
    kn_tensor *t = kn_tensor_empty(is_int ? KN_I64 : KN_F64, 1, &count);
    if (!t) return kn_last_status();
    void *p = kn_tensor_data(t);
    for (int64_t i = 0; i < count; i++) {
        if (is_int)
            ((int64_t *)p)[i] = (int64_t)start + i * (int64_t)delta;
        else
            ((double *)p)[i] = start + (double)i * delta;
    }
    kn_tensor *y = kn_cast(t, dt);
    kn_tensor_unref(t);
    return set_out(n, 0, y);
}

/* EyeLike: a concrete 2-D tensor shaped like the input with ones on
 * diagonal k; dtype attribute or the input's. */
static kn_status cv_eye_like(kn_onnx_node *n)
{
    kn_tensor *x = IN(n, 0);
    if (!x) return missing(n, 0, "input");
    if (kn_tensor_ndim(x) != 2)
        return kn__onnx_fail(n, KN_ERR_SHAPE, "input has %d dims, expected 2", kn_tensor_ndim(x));
    kn_dtype dt = kn_tensor_dtype(x);
    if (kn__onnx_attr(n, "dtype") &&
        !kn__onnx_dtype((int32_t)kn__onnx_attr_int(n, "dtype", 1), &dt))
        return kn__onnx_fail(n, KN_ERR_DTYPE, "dtype %lld is not supported",
                             (long long)kn__onnx_attr_int(n, "dtype", 1));
    int64_t k = kn__onnx_attr_int(n, "k", 0);
    const int64_t *sh = kn_tensor_shape(x);
    kn_tensor *y = kn_tensor_zeros(dt, 2, sh);
    for (int64_t i = 0; y && i < sh[0]; i++) {
        int64_t ij[2] = {i, i + k};
        if (ij[1] >= 0 && ij[1] < sh[1] && kn_tensor_set(y, ij, 1.0)) {
            kn_tensor_unref(y);
            y = NULL;
        }
    }
    return set_out(n, 0, y);
}

/* ================================================================ indexing */
/* Gather: data.shape[:axis] + indices.shape + data.shape[axis+1:], by an
 * index_select with the flattened (wrapped) indices. */
static kn_status cv_gather(kn_onnx_node *n)
{
    kn_tensor *x = IN(n, 0), *idx = IN(n, 1);
    if (!x || !idx) return missing(n, x ? 1 : 0, x ? "indices" : "data");
    int ax, nd = kn_tensor_ndim(x), ni = kn_tensor_ndim(idx);
    if (kn__onnx_axis(n, kn__onnx_attr_int(n, "axis", 0), nd, &ax)) return kn_last_status();
    if (nd - 1 + ni > KN_MAX_DIMS)
        return kn__onnx_fail(n, KN_ERR_SHAPE, "the output would have %d dims, the most is %d",
                             nd - 1 + ni, KN_MAX_DIMS);
    const int64_t *xs = kn_tensor_shape(x), *is = kn_tensor_shape(idx);
    int64_t shape[KN_MAX_DIMS], flat = kn_tensor_numel(idx);
    int o = 0;
    for (int d = 0; d < ax; d++)
        shape[o++] = xs[d];
    for (int d = 0; d < ni; d++)
        shape[o++] = is[d];
    for (int d = ax + 1; d < nd; d++)
        shape[o++] = xs[d];
    kn_scratch s = {0};
    kn_tensor *i = wrap_index_dim(&s, idx, xs[ax]);
    i = reshape_to(&s, i, 1, &flat);
    kn_tensor *y = kn__keep(&s, kn_index_select(x, ax, i));
    return finish(n, &s, reshape_to(&s, y, o, shape));
}

/* GatherElements: torch.gather with wrapped indices. */
static kn_status cv_gather_elements(kn_onnx_node *n)
{
    kn_tensor *x = IN(n, 0), *idx = IN(n, 1);
    if (!x || !idx) return missing(n, x ? 1 : 0, x ? "indices" : "data");
    int ax;
    if (kn__onnx_axis(n, kn__onnx_attr_int(n, "axis", 0), kn_tensor_ndim(x), &ax))
        return kn_last_status();
    kn_scratch s = {0};
    kn_tensor *i = wrap_index_dim(&s, idx, kn_tensor_shape(x)[ax]);
    return finish(n, &s, kn__keep(&s, kn_gather(x, ax, i)));
}

/* The flat row of each index tuple of GatherND/ScatterND: data viewed as
 * (B * P, R) where B covers the b batch dims, P the k indexed dims and R
 * the rest; returns the linear rows, shaped like indices.shape[:-1]. */
static kn_tensor *nd_rows(kn_onnx_node *n, kn_scratch *s, kn_tensor *x, kn_tensor *idx, int b,
                          int64_t *P, int64_t *R)
{
    int nd = kn_tensor_ndim(x), ni = kn_tensor_ndim(idx);
    const int64_t *xs = kn_tensor_shape(x), *is = kn_tensor_shape(idx);
    if (ni < 1 || nd < 1) {
        kn__onnx_fail(n, KN_ERR_SHAPE, "data and indices need >= 1 dim");
        return NULL;
    }
    int64_t k = is[ni - 1];
    if (b < 0 || b >= (ni < nd ? ni : nd) || k < 1 || k > nd - b) {
        kn__onnx_fail(n, KN_ERR_SHAPE,
                      "indices' last dim %lld with batch_dims %d does not fit data of %d dims",
                      (long long)k, b, nd);
        return NULL;
    }
    for (int d = 0; d < b; d++)
        if (xs[d] != is[d]) {
            kn__onnx_fail(n, KN_ERR_SHAPE, "batch dim %d is %lld in data, %lld in indices", d,
                          (long long)xs[d], (long long)is[d]);
            return NULL;
        }
    int64_t dims[KN_MAX_DIMS], strides[KN_MAX_DIMS], p = 1;
    for (int j = (int)k - 1; j >= 0; j--) {
        dims[j] = xs[b + j];
        strides[j] = p;
        p *= dims[j];
    }
    *P = p;
    *R = numel_of(nd - b - (int)k, xs + b + k);
    kn_tensor *dt = kn__keep(s, i64_vector(k, dims)), *st = kn__keep(s, i64_vector(k, strides));
    kn_tensor *i = wrap_index(s, idx, dt);
    int last = ni - 1;
    kn_tensor *lin = kn__keep(s, kn_sum(kn__keep(s, kn_mul(i, st)), 1, &last, false));
    if (b == 0 || !lin) return lin;
    /* + batch * P, the batch number broadcast over the tuple dims */
    int64_t B = numel_of(b, xs), bshape[KN_MAX_DIMS];
    kn_tensor *off = kn__keep(s, kn_tensor_arange(KN_I64, 0, (double)B, 1));
    off = kn__keep(s, kn_mul_scalar(off, (double)p));
    for (int d = 0; d < ni - 1; d++)
        bshape[d] = d < b ? is[d] : 1;
    off = kn__keep(s, kn_reshape(off, ni - 1, bshape));
    return kn__keep(s, kn_add(lin, off));
}

static kn_status cv_gather_nd(kn_onnx_node *n)
{
    kn_tensor *x = IN(n, 0), *idx = IN(n, 1);
    if (!x || !idx) return missing(n, x ? 1 : 0, x ? "indices" : "data");
    int b = n->opset >= 12 ? (int)kn__onnx_attr_int(n, "batch_dims", 0) : 0;
    kn_scratch s = {0};
    int64_t P, R;
    kn_tensor *lin = nd_rows(n, &s, x, idx, b, &P, &R);
    if (!lin) {
        kn__scratch_free(&s);
        return kn_last_status();
    }
    int nd = kn_tensor_ndim(x), ni = kn_tensor_ndim(idx);
    const int64_t *xs = kn_tensor_shape(x), *is = kn_tensor_shape(idx);
    int64_t k = is[ni - 1], rows = kn_tensor_numel(lin), shape[KN_MAX_DIMS];
    int o = 0;
    if (ni - 1 + nd - b - (int)k > KN_MAX_DIMS) {
        kn__scratch_free(&s);
        return kn__onnx_fail(n, KN_ERR_SHAPE, "the output has too many dims");
    }
    for (int d = 0; d < ni - 1; d++)
        shape[o++] = is[d];
    for (int d = b + (int)k; d < nd; d++)
        shape[o++] = xs[d];
    int64_t s2[2] = {numel_of(b, xs) * P, R};
    kn_tensor *x2 = reshape_to(&s, x, 2, s2);
    lin = reshape_to(&s, lin, 1, &rows);
    kn_tensor *y = kn__keep(&s, kn_index_select(x2, 0, lin));
    return finish(n, &s, reshape_to(&s, y, o, shape));
}

/* Scatter with reduction "mul": one slice of the index axis at a time (no
 * duplicates within a slice), each multiplying a ones tensor scattered
 * with the updates. */
static kn_tensor *scatter_mul(kn_tensor *x, int ax, kn_tensor *idx, kn_tensor *upd)
{
    kn_tensor *ones = kn_tensor_ones(kn_tensor_dtype(x), kn_tensor_ndim(x), kn_tensor_shape(x));
    kn_tensor *y = ones ? kn_tensor_ref(x) : NULL;
    int64_t K = kn_tensor_shape(idx)[ax];
    for (int64_t k = 0; k < K && y; k++) {
        kn_tensor *ik = kn_narrow(idx, ax, k, 1), *uk = kn_narrow(upd, ax, k, 1);
        kn_tensor *f = kn_scatter(ones, ax, ik, uk);
        kn_tensor *t = kn_mul(y, f);
        kn_tensor_unref(ik);
        kn_tensor_unref(uk);
        kn_tensor_unref(f);
        kn_tensor_unref(y);
        y = t;
    }
    kn_tensor_unref(ones);
    return y;
}

static kn_tensor *scatter_reduce(kn_onnx_node *n, kn_tensor *x, int ax, kn_tensor *idx,
                                 kn_tensor *upd)
{
    char buf[8];
    const char *r =
        n->opset >= 16 ? kn__onnx_attr_string(n, "reduction", "none", buf, sizeof buf) : "none";
    if (!strcmp(r, "add")) return kn_scatter_add(x, ax, idx, upd);
    if (!strcmp(r, "mul")) return scatter_mul(x, ax, idx, upd);
    if (strcmp(r, "none")) {
        kn__onnx_fail(n, KN_ERR_UNSUPPORTED, "reduction '%s' is not supported", r);
        return NULL;
    }
    return kn_scatter(x, ax, idx, upd);
}

/* ScatterElements (and Scatter, opsets 9-10): torch.scatter with wrapped
 * indices; reduction add/mul from opset 16. */
static kn_status cv_scatter_elements(kn_onnx_node *n)
{
    kn_tensor *x = IN(n, 0), *idx = IN(n, 1), *upd = IN(n, 2);
    if (!x || !idx || !upd) return missing(n, !x ? 0 : !idx ? 1 : 2, "data/indices/updates");
    int ax;
    if (kn__onnx_axis(n, kn__onnx_attr_int(n, "axis", 0), kn_tensor_ndim(x), &ax))
        return kn_last_status();
    kn_scratch s = {0};
    kn_tensor *i = wrap_index_dim(&s, idx, kn_tensor_shape(x)[ax]);
    return finish(n, &s, i ? kn__keep(&s, scatter_reduce(n, x, ax, i, upd)) : NULL);
}

/* ScatterND: data as (P, R) rows, updates as (N, R), each row index
 * repeated over R, scattered on axis 0. */
static kn_status cv_scatter_nd(kn_onnx_node *n)
{
    kn_tensor *x = IN(n, 0), *idx = IN(n, 1), *upd = IN(n, 2);
    if (!x || !idx || !upd) return missing(n, !x ? 0 : !idx ? 1 : 2, "data/indices/updates");
    kn_scratch s = {0};
    int64_t P, R;
    kn_tensor *lin = nd_rows(n, &s, x, idx, 0, &P, &R);
    if (!lin) {
        kn__scratch_free(&s);
        return kn_last_status();
    }
    int64_t N = kn_tensor_numel(lin);
    if (kn_tensor_numel(upd) != N * R) {
        kn__scratch_free(&s);
        return kn__onnx_fail(n, KN_ERR_SHAPE, "updates have %lld elements, expected %lld",
                             (long long)kn_tensor_numel(upd), (long long)(N * R));
    }
    int64_t sx[2] = {P, R}, su[2] = {N, R}, sl[2] = {N, 1};
    kn_tensor *x2 = reshape_to(&s, x, 2, sx);
    kn_tensor *u2 = reshape_to(&s, upd, 2, su);
    lin = reshape_to(&s, lin, 2, sl);
    lin = kn__keep(&s, kn_expand(lin, 2, su));
    kn_tensor *y = lin && x2 && u2 ? kn__keep(&s, scatter_reduce(n, x2, 0, lin, u2)) : NULL;
    return finish(n, &s, reshape_to(&s, y, kn_tensor_ndim(x), kn_tensor_shape(x)));
}

/* OneHot: where(unsqueeze(wrap(indices), axis) == arange(depth), on, off);
 * indices outside [-depth, depth) give all off. */
static kn_status cv_one_hot(kn_onnx_node *n)
{
    kn_tensor *idx = IN(n, 0), *values = IN(n, 2);
    double dv;
    if (!idx) return missing(n, 0, "indices");
    if (!values) return missing(n, 2, "values");
    if (const_scalar(n, 1, "depth", &dv)) return kn_last_status();
    int64_t depth = (int64_t)dv;
    if (depth < 1)
        return kn__onnx_fail(n, KN_ERR_ARG, "depth is %lld, expected >= 1", (long long)depth);
    if (kn_tensor_numel(values) != 2)
        return kn__onnx_fail(n, KN_ERR_SHAPE, "values has %lld elements, expected 2",
                             (long long)kn_tensor_numel(values));
    int r = kn_tensor_ndim(idx), ax;
    if (r + 1 > KN_MAX_DIMS) return kn__onnx_fail(n, KN_ERR_SHAPE, "indices have too many dims");
    if (kn__onnx_axis(n, kn__onnx_attr_int(n, "axis", -1), r + 1, &ax)) return kn_last_status();
    int64_t ar_shape[KN_MAX_DIMS], two = 2;
    for (int d = 0; d <= r; d++)
        ar_shape[d] = d == ax ? depth : 1;
    kn_scratch s = {0};
    kn_tensor *i = kn__keep(&s, kn_cast(idx, KN_I64)); /* floats truncate */
    i = wrap_index_dim(&s, i, depth);
    i = kn__keep(&s, kn_unsqueeze(i, ax));
    kn_tensor *ar = kn__keep(&s, kn_tensor_arange(KN_I64, 0, (double)depth, 1));
    ar = kn__keep(&s, kn_reshape(ar, r + 1, ar_shape));
    kn_tensor *mask = kn__keep(&s, kn_eq(i, ar));
    kn_tensor *v = kn__keep(&s, kn_reshape(values, 1, &two));
    kn_tensor *off = kn__keep(&s, kn_reshape(kn__keep(&s, kn_narrow(v, 0, 0, 1)), 0, NULL));
    kn_tensor *on = kn__keep(&s, kn_reshape(kn__keep(&s, kn_narrow(v, 0, 1, 1)), 0, NULL));
    return finish(n, &s, kn__keep(&s, kn_where(mask, on, off)));
}

/* TopK: k attribute before opset 10, input from it; largest/sorted from 11
 * (kiln always sorts, which sorted=0 allows). */
static kn_status cv_top_k(kn_onnx_node *n)
{
    kn_tensor *x = IN(n, 0);
    if (!x) return missing(n, 0, "X");
    int64_t k;
    if (n->opset < 10) {
        k = kn__onnx_attr_int(n, "k", -1);
    } else {
        int cnt;
        if (kn__onnx_const_ints(n, 1, &k, 1, &cnt)) return kn_last_status();
        if (cnt != 1) return kn__onnx_fail(n, KN_ERR_SHAPE, "K has %d values, expected 1", cnt);
    }
    int ax;
    if (kn__onnx_axis(n, kn__onnx_attr_int(n, "axis", -1), kn_tensor_ndim(x), &ax))
        return kn_last_status();
    bool largest = n->opset < 11 || kn__onnx_attr_int(n, "largest", 1) != 0;
    bool sorted = n->opset < 11 || kn__onnx_attr_int(n, "sorted", 1) != 0;
    kn_tensor *v = NULL, *i = NULL;
    if (kn_topk(x, k, ax, largest, sorted, &v, &i)) return kn_last_status();
    set_out(n, 0, v);
    return set_out(n, 1, i);
}

/* Trilu (opset 14): where(mask, x, 0) with an (N, M) mask keeping
 * j - i >= k (upper) or j - i <= k (lower); k may be a graph value. */
static kn_status cv_trilu(kn_onnx_node *n)
{
    kn_tensor *x = IN(n, 0), *kt = IN(n, 1);
    if (!x) return missing(n, 0, "input");
    int nd = kn_tensor_ndim(x);
    if (nd < 2) return kn__onnx_fail(n, KN_ERR_SHAPE, "input has %d dims, expected >= 2", nd);
    if (kt && kn_tensor_numel(kt) != 1)
        return kn__onnx_fail(n, KN_ERR_SHAPE, "k has %lld elements, expected 1",
                             (long long)kn_tensor_numel(kt));
    int64_t N = kn_tensor_shape(x)[nd - 2], M = kn_tensor_shape(x)[nd - 1], ms[2] = {N, M};
    bool upper = kn__onnx_attr_int(n, "upper", 1) != 0;
    kn_scratch s = {0};
    kn_tensor *diff = kn__keep(&s, kn_tensor_empty(KN_I64, 2, ms)); /* j - i */
    if (diff && N * M > 0) {
        int64_t *d = kn_tensor_data(diff);
        for (int64_t i = 0; i < N; i++)
            for (int64_t j = 0; j < M; j++)
                d[i * M + j] = j - i;
    }
    kn_tensor *k = kt ? kn__keep(&s, kn_reshape(kn__keep(&s, kn_cast(kt, KN_I64)), 0, NULL))
                      : kn__keep(&s, kn_tensor_scalar(KN_I64, 0));
    kn_tensor *mask = kn__keep(&s, upper ? kn_ge(diff, k) : kn_le(diff, k));
    kn_tensor *zero = kn__keep(&s, kn_tensor_scalar(kn_tensor_dtype(x), 0));
    return finish(n, &s, kn__keep(&s, kn_where(mask, x, zero)));
}

/* ReverseSequence: gather along the time axis with index
 * where(t < len[b], len[b] - 1 - t, t). */
static kn_status cv_reverse_sequence(kn_onnx_node *n)
{
    kn_tensor *x = IN(n, 0), *lens = IN(n, 1);
    if (!x || !lens) return missing(n, x ? 1 : 0, x ? "sequence_lens" : "input");
    int nd = kn_tensor_ndim(x), ta, ba;
    if (nd < 2) return kn__onnx_fail(n, KN_ERR_SHAPE, "input has %d dims, expected >= 2", nd);
    if (kn__onnx_axis(n, kn__onnx_attr_int(n, "time_axis", 0), nd, &ta) ||
        kn__onnx_axis(n, kn__onnx_attr_int(n, "batch_axis", 1), nd, &ba))
        return kn_last_status();
    if (ta == ba || ta > 1 || ba > 1)
        return kn__onnx_fail(n, KN_ERR_ARG, "time_axis %d and batch_axis %d must be 0 and 1", ta,
                             ba);
    const int64_t *xs = kn_tensor_shape(x);
    if (kn_tensor_numel(lens) != xs[ba])
        return kn__onnx_fail(n, KN_ERR_SHAPE, "sequence_lens has %lld values, batch is %lld",
                             (long long)kn_tensor_numel(lens), (long long)xs[ba]);
    if (kn__onnx_is_const(lens)) {
        double *v = as_doubles(lens);
        if (!v) return kn_last_status();
        for (int64_t b = 0; b < xs[ba]; b++)
            if (v[b] < 0 || v[b] > (double)xs[ta]) {
                double bad = v[b];
                kn_free(v);
                return kn__onnx_fail(n, KN_ERR_ARG,
                                     "sequence_lens[%lld] is %g, expected 0..%lld (the time axis)",
                                     (long long)b, bad, (long long)xs[ta]);
            }
        kn_free(v);
    }
    int64_t ts[KN_MAX_DIMS], bs[KN_MAX_DIMS];
    for (int d = 0; d < nd; d++) {
        ts[d] = d == ta ? xs[ta] : 1;
        bs[d] = d == ba ? xs[ba] : 1;
    }
    kn_scratch s = {0};
    kn_tensor *t = kn__keep(&s, kn_tensor_arange(KN_I64, 0, (double)xs[ta], 1));
    t = kn__keep(&s, kn_reshape(t, nd, ts));
    kn_tensor *L = kn__keep(&s, kn_cast(lens, KN_I64));
    L = kn__keep(&s, kn_reshape(L, nd, bs));
    kn_tensor *rev = kn__keep(&s, kn_sub(kn__keep(&s, kn_add_scalar(L, -1)), t));
    kn_tensor *idx = kn__keep(&s, kn_where(kn__keep(&s, kn_lt(t, L)), rev, t));
    idx = kn__keep(&s, kn_expand(idx, nd, xs));
    return finish(n, &s, kn__keep(&s, kn_gather(x, ta, idx)));
}

/* ================================================================ data-dependent shapes */
static kn_status need_const(const kn_onnx_node *n, int i, const char *what)
{
    kn_tensor *t = IN(n, i);
    if (!t) return missing(n, i, what);
    if (!kn__onnx_is_const(t))
        return kn__onnx_fail(n, KN_ERR_UNSUPPORTED,
                             "input %d (%s) is a value of the graph: the output's shape depends "
                             "on its data, which a kiln graph cannot express (only constant "
                             "inputs are supported)",
                             i, what);
    return KN_OK;
}

/* NonZero: (rank, count) i64 coordinates of the non-zero elements, in
 * row-major order (concrete input only). */
static kn_status cv_non_zero(kn_onnx_node *n)
{
    if (need_const(n, 0, "X")) return kn_last_status();
    kn_tensor *x = n->in[0];
    int nd = kn_tensor_ndim(x), r = nd ? nd : 1;
    int64_t total = kn_tensor_numel(x), count = 0;
    double *v = as_doubles(x);
    if (!v) return kn_last_status();
    for (int64_t i = 0; i < total; i++)
        count += v[i] != 0;
    int64_t shape[2] = {r, count};
    kn_tensor *y = kn_tensor_empty(KN_I64, 2, shape);
    if (y && count) {
        int64_t *o = kn_tensor_data(y), c = 0;
        for (int64_t i = 0; i < total; i++) {
            if (v[i] == 0) continue;
            for (int64_t d = r - 1, rest = i; d >= 0; d--) {
                int64_t dim = nd ? kn_tensor_shape(x)[d] : 1;
                o[d * count + c] = rest % dim;
                rest /= dim;
            }
            c++;
        }
    }
    kn_free(v);
    return set_out(n, 0, y);
}

/* Compress: index_select of the positions where the (concrete) condition
 * is true; no axis: of the flattened input. */
static kn_status cv_compress(kn_onnx_node *n)
{
    kn_tensor *x = IN(n, 0);
    if (!x) return missing(n, 0, "input");
    if (need_const(n, 1, "condition")) return kn_last_status();
    kn_scratch s = {0};
    int ax = 0;
    if (kn__onnx_attr(n, "axis")) {
        if (kn__onnx_axis(n, kn__onnx_attr_int(n, "axis", 0), kn_tensor_ndim(x), &ax))
            return kn_last_status();
    } else {
        int64_t all = kn_tensor_numel(x);
        x = kn__keep(&s, kn_reshape(x, 1, &all));
        if (!x) return finish(n, &s, NULL);
    }
    kn_tensor *cond = n->in[1];
    int64_t len = kn_tensor_numel(cond), dim = kn_tensor_shape(x)[ax], count = 0;
    double *c = as_doubles(cond);
    int64_t *pos = c ? kn_alloc((size_t)(len > 0 ? len : 1) * sizeof *pos) : NULL;
    if (!pos) {
        kn_free(c);
        return finish(n, &s, NULL);
    }
    for (int64_t i = 0; i < len; i++)
        if (c[i] != 0) pos[count++] = i;
    kn_free(c);
    if (count && pos[count - 1] >= dim) {
        int64_t bad = pos[count - 1];
        kn_free(pos);
        kn__scratch_free(&s);
        return kn__onnx_fail(n, KN_ERR_SHAPE, "condition selects index %lld of an axis of %lld",
                             (long long)bad, (long long)dim);
    }
    kn_tensor *idx = kn__keep(&s, i64_vector(count, pos));
    kn_free(pos);
    return finish(n, &s, kn__keep(&s, kn_index_select(x, ax, idx)));
}

/* ---- Unique (concrete input only): slices along axis (or elements of
 * the flattened input) compared lexicographically. */
typedef struct uniq {
    const void *v; /* rows of R values: double or int64 */
    bool is_float;
    int64_t R;
} uniq;

static int row_cmp(const uniq *u, int64_t a, int64_t b)
{
    for (int64_t j = 0; j < u->R; j++) {
        if (u->is_float) {
            double x = ((const double *)u->v)[a * u->R + j],
                   y = ((const double *)u->v)[b * u->R + j];
            if (x != y) return x < y ? -1 : 1;
        } else {
            int64_t x = ((const int64_t *)u->v)[a * u->R + j],
                    y = ((const int64_t *)u->v)[b * u->R + j];
            if (x != y) return x < y ? -1 : 1;
        }
    }
    return 0;
}

/* Stable merge sort of the row numbers in ord (tmp: scratch of the same size). */
static void row_sort(const uniq *u, int64_t *ord, int64_t *tmp, int64_t n)
{
    for (int64_t w = 1; w < n; w *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * w) {
            int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int64_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                tmp[k++] = row_cmp(u, ord[j], ord[i]) < 0 ? ord[j++] : ord[i++];
            while (i < mid)
                tmp[k++] = ord[i++];
            while (j < hi)
                tmp[k++] = ord[j++];
        }
        memcpy(ord, tmp, (size_t)n * sizeof *ord);
    }
}

/* The outputs of Unique over the M rows of u, into w (6*M int64): the
 * first occurrence and count of each unique row in output order, and each
 * row's output position (inverse). Returns the number of unique rows. */
static int64_t unique_rows(const uniq *u, int64_t M, bool sorted, int64_t *w, int64_t **first,
                           int64_t **count, int64_t **inverse)
{
    int64_t *ord = w, *tmp = w + M, *grp = w + 2 * M, *fst = w + 3 * M, *cnt = w + 4 * M, G = 0;
    for (int64_t i = 0; i < M; i++)
        ord[i] = i;
    row_sort(u, ord, tmp, M);
    /* groups in sorted order; the sort is stable, so a group's first row
     * is its first occurrence */
    for (int64_t i = 0; i < M; i++) {
        if (i == 0 || row_cmp(u, ord[i - 1], ord[i])) {
            fst[G] = ord[i];
            cnt[G++] = 0;
        }
        cnt[G - 1]++;
        grp[ord[i]] = G - 1;
    }
    int64_t *rank = tmp, *of = ord, *oc = w + 5 * M; /* ord and tmp are free again */
    if (sorted) {
        for (int64_t g = 0; g < G; g++)
            rank[g] = g;
    } else { /* in order of first occurrence */
        for (int64_t i = 0, p = 0; i < M; i++)
            if (fst[grp[i]] == i) rank[grp[i]] = p++;
    }
    for (int64_t g = 0; g < G; g++) {
        of[rank[g]] = fst[g];
        oc[rank[g]] = cnt[g];
    }
    for (int64_t i = 0; i < M; i++)
        grp[i] = rank[grp[i]];
    *first = of, *count = oc, *inverse = grp;
    return G;
}

/* Unique: outputs Y, indices, inverse_indices, counts (concrete input). */
static kn_status cv_unique(kn_onnx_node *n)
{
    if (need_const(n, 0, "X")) return kn_last_status();
    kn_tensor *x = n->in[0];
    kn_scratch s = {0};
    int ax = 0, nd = kn_tensor_ndim(x), perm[KN_MAX_DIMS];
    if (kn__onnx_attr(n, "axis")) {
        if (kn__onnx_axis(n, kn__onnx_attr_int(n, "axis", 0), nd, &ax)) return kn_last_status();
    } else {
        int64_t all = kn_tensor_numel(x);
        if (!(x = kn__keep(&s, kn_reshape(x, 1, &all)))) return finish(n, &s, NULL);
        nd = 1;
    }
    perm[0] = ax;
    for (int d = 0, j = 1; d < nd; d++)
        if (d != ax) perm[j++] = d;
    kn_tensor *rows = kn__keep(&s, kn_permute(x, nd, perm));
    int64_t M = kn_tensor_shape(x)[ax], total = kn_tensor_numel(x), G = 0;
    uniq u = {NULL, kn_dtype_is_float(kn_tensor_dtype(x)), M ? total / M : 0};
    void *vals = rows ? kn_alloc((size_t)(total > 0 ? total : 1) * 8) : NULL;
    int64_t *w = vals ? kn_alloc((size_t)(M > 0 ? M : 1) * 6 * 8) : NULL, *fst, *cnt, *inv;
    kn_tensor *yi = NULL, *yc = NULL, *yv = NULL;
    if (w && !kn_tensor_copy_to(rows, u.is_float ? KN_F64 : KN_I64, vals, (size_t)total * 8)) {
        u.v = vals;
        G = unique_rows(&u, M, kn__onnx_attr_int(n, "sorted", 1) != 0, w, &fst, &cnt, &inv);
        yi = kn__keep(&s, i64_vector(G, fst));
        yc = kn__keep(&s, i64_vector(G, cnt));
        yv = kn__keep(&s, i64_vector(M, inv));
    }
    kn_free(vals);
    kn_free(w);
    kn_tensor *y = yi && yc && yv ? kn_index_select(x, ax, yi) : NULL;
    kn_status st = set_out(n, 0, y);
    if (!st) {
        set_out(n, 1, kn_tensor_ref(yi));
        set_out(n, 2, kn_tensor_ref(yv));
        set_out(n, 3, kn_tensor_ref(yc));
    }
    kn__scratch_free(&s);
    return st;
}

/* ================================================================ table */
const kn_onnx_op kn__onnx_ops_shape[] = {
    {"", "Reshape", 5, cv_reshape, NULL},
    {"", "Flatten", 1, cv_flatten, NULL},
    {"", "Transpose", 1, cv_transpose, NULL},
    {"", "Squeeze", 1, cv_squeeze, NULL},
    {"", "Unsqueeze", 1, cv_unsqueeze, NULL},
    {"", "Concat", 4, cv_concat, NULL},
    {"", "Split", 2, cv_split, check_split},
    {"", "Slice", 1, cv_slice, NULL},
    {"", "Expand", 8, cv_expand, NULL},
    {"", "Tile", 6, cv_tile, NULL},
    {"", "Pad", 2, cv_pad, check_pad},
    {"", "DepthToSpace", 1, cv_depth_to_space, check_depth_to_space},
    {"", "SpaceToDepth", 1, cv_space_to_depth, NULL},
    {"", "Shape", 1, cv_shape, NULL},
    {"", "Size", 1, cv_size, NULL},
    {"", "ConstantOfShape", 9, cv_constant_of_shape, check_constant_of_shape},
    {"", "Range", 11, cv_range, NULL},
    {"", "EyeLike", 9, cv_eye_like, check_eye_like},
    {"", "Gather", 1, cv_gather, NULL},
    {"", "GatherElements", 11, cv_gather_elements, NULL},
    {"", "GatherND", 11, cv_gather_nd, NULL},
    {"", "Scatter", 9, cv_scatter_elements, NULL},
    {"", "ScatterElements", 11, cv_scatter_elements, check_reduction},
    {"", "ScatterND", 11, cv_scatter_nd, check_reduction},
    {"", "OneHot", 9, cv_one_hot, NULL},
    {"", "TopK", 1, cv_top_k, NULL},
    {"", "Trilu", 14, cv_trilu, NULL},
    {"", "ReverseSequence", 10, cv_reverse_sequence, NULL},
    {"", "NonZero", 9, cv_non_zero, NULL},
    {"", "Compress", 9, cv_compress, NULL},
    {"", "Unique", 11, cv_unique, NULL},
    {NULL, NULL, 0, NULL, NULL},
};
#endif
