/* access.c — element reads and writes, copies between dtypes and layouts,
 * and NumPy-like printing. */
#include "tensor.h"

#include "../kernels/transpose.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

static kn_status check_data(const char *who, const kn_tensor *t)
{
    if (!t) return kn__error(KN_ERR_ARG, "%s: tensor is NULL", who);
    if (!t->storage)
        return kn__error(KN_ERR_STATE,
                         "%s: the tensor is symbolic (traced) and has no data; "
                         "data-dependent control flow is not captured by tracing",
                         who);
    if (t->dtype == KN_STRING) /* its elements point into its own storage */
        return kn__error(KN_ERR_DTYPE, "%s: a string tensor holds text, not numbers; read it "
                                       "with kn_tensor_string", who);
    return KN_OK;
}

static void copy_loop(char **p, const int64_t *s, int64_t n, void *ctx)
{
    const kn_dtype *dts = ctx; /* dst, src */
    size_t es = kn_dtype_size(dts[0]);
    if (dts[0] == dts[1] && s[0] == (int64_t)es && s[1] == (int64_t)es) {
        memcpy(p[0], p[1], (size_t)n * es);
        return;
    }
    if (dts[0] == dts[1]) {
        for (int64_t i = 0; i < n; i++)
            memcpy(p[0] + i * s[0], p[1] + i * s[1], es);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        kn__store(dts[0], p[0] + i * s[0], kn__load(dts[1], p[1] + i * s[1]));
}

kn_status kn__copy_into(kn_tensor *dst, const kn_tensor *src)
{
    if (dst->dtype == KN_STRING || src->dtype == KN_STRING)
        return kn__error(KN_ERR_DTYPE, "copy: string tensors are not copied element-wise");
    int nd;
    int64_t shape[KN_MAX_DIMS];
    kn_status s =
        kn__broadcast_shapes("copy", dst->ndim, dst->shape, src->ndim, src->shape, &nd, shape);
    if (s) return s;
    if (nd != dst->ndim || memcmp(shape, dst->shape, sizeof(int64_t) * (size_t)nd) != 0) {
        char a[96], b[96];
        return kn__error(KN_ERR_SHAPE, "copy: source shape %s does not broadcast to destination %s",
                         kn__shape_str(src->ndim, src->shape, a, sizeof a),
                         kn__shape_str(dst->ndim, dst->shape, b, sizeof b));
    }
    kn_iter it;
    const kn_tensor *ops[2] = {dst, src};
    kn__iter_init(&it, 2, ops, dst->ndim, dst->shape);
    /* permuted views (NCHW <-> NHWC, ...): blocked transposes when possible */
    if (dst->dtype == src->dtype &&
        kn__copy_transposed(it.ndim, it.shape, it.strides[0], it.strides[1], it.base[0], it.base[1],
                            kn_dtype_size(dst->dtype)))
        return KN_OK;
    kn_dtype dts[2] = {dst->dtype, src->dtype};
    kn__iter_run(&it, copy_loop, dts, true);
    return KN_OK;
}

kn_status kn_tensor_copy_(kn_tensor *dst, const kn_tensor *src)
{
    if (check_data("tensor_copy_", dst) || check_data("tensor_copy_", src)) return kn_last_status();
    kn_status s = kn__copy_into(dst, src);
    if (!s) kn__bump_version(dst);
    return s;
}

/* A string tensor's copy: the same text in a storage of its own. */
static kn_tensor *clone_strings(const kn_tensor *t)
{
    int64_t n = kn_tensor_numel(t);
    const char **strs = kn_alloc(sizeof(char *) * (size_t)(n ? n : 1));
    if (!strs) return NULL;
    for (int64_t i = 0; i < n; i++)
        strs[i] = kn_tensor_string(t, i);
    kn_tensor *c = kn_tensor_from_strings(t->ndim, t->shape, strs);
    kn_free(strs);
    return c;
}

kn_tensor *kn_tensor_clone(const kn_tensor *t)
{
    if (t && t->storage && t->dtype == KN_STRING) return clone_strings(t);
    if (check_data("tensor_clone", t)) return NULL;
    kn_tensor *c = kn__tensor_new(t->dtype, t->ndim, t->shape);
    if (c && kn__copy_into(c, t)) {
        kn_tensor_unref(c);
        return NULL;
    }
    return c;
}

kn_status kn_tensor_fill_(kn_tensor *t, double value)
{
    if (check_data("tensor_fill_", t)) return kn_last_status();
    kn_tensor *v = kn_tensor_scalar(t->dtype, value);
    if (!v) return kn_last_status();
    kn_status s = kn__copy_into(t, v);
    kn_tensor_unref(v);
    if (!s) kn__bump_version(t);
    return s;
}

kn_status kn_tensor_copy_to(const kn_tensor *t, kn_dtype dt, void *buf, size_t nbytes)
{
    if (check_data("tensor_copy_to", t)) return kn_last_status();
    if ((unsigned)dt >= KN_DTYPE_COUNT)
        return kn__error(KN_ERR_DTYPE, "tensor_copy_to: dtype %d is not a kn_dtype", (int)dt);
    size_t need = (size_t)kn_tensor_numel(t) * kn_dtype_size(dt);
    if (nbytes < need)
        return kn__error(KN_ERR_ARG, "tensor_copy_to: buffer has %zu bytes, expected %zu", nbytes,
                         need);
    if (need == 0) return KN_OK;
    if (!buf) return kn__error(KN_ERR_ARG, "tensor_copy_to: buffer is NULL");
    kn_tensor *dst = kn_tensor_from_buffer(dt, t->ndim, t->shape, buf, NULL, NULL);
    if (!dst) return kn_last_status();
    kn_status s = kn__copy_into(dst, t);
    kn_tensor_unref(dst);
    return s;
}

static kn_status element_ptr(const char *who, const kn_tensor *t, const int64_t *index, char **p)
{
    if (check_data(who, t)) return kn_last_status();
    if (t->ndim > 0 && !index) return kn__error(KN_ERR_ARG, "%s: index is NULL", who);
    int64_t off = t->offset;
    for (int d = 0; d < t->ndim; d++) {
        if (index[d] < 0 || index[d] >= t->shape[d])
            return kn__error(KN_ERR_ARG, "%s: index %lld out of range [0, %lld) on axis %d", who,
                             (long long)index[d], (long long)t->shape[d], d);
        off += index[d] * t->strides[d];
    }
    *p = (char *)t->storage->data + off * (int64_t)kn_dtype_size(t->dtype);
    return KN_OK;
}

kn_status kn_tensor_get(const kn_tensor *t, const int64_t *index, double *value)
{
    char *p;
    if (!value) return kn__error(KN_ERR_ARG, "tensor_get: value is NULL");
    kn_status s = element_ptr("tensor_get", t, index, &p);
    if (!s) *value = kn__load(t->dtype, p);
    return s;
}

kn_status kn_tensor_set(kn_tensor *t, const int64_t *index, double value)
{
    char *p;
    kn_status s = element_ptr("tensor_set", t, index, &p);
    if (!s) {
        kn__store(t->dtype, p, value);
        kn__bump_version(t);
    }
    return s;
}

kn_status kn_tensor_item(const kn_tensor *t, double *value)
{
    if (check_data("tensor_item", t)) return kn_last_status();
    if (kn_tensor_numel(t) != 1)
        return kn__error(KN_ERR_SHAPE, "tensor_item: tensor has %lld elements, expected 1",
                         (long long)kn_tensor_numel(t));
    int64_t zeros[KN_MAX_DIMS] = {0};
    return kn_tensor_get(t, zeros, value);
}

/* ---- printing */
typedef struct printer {
    char *buf;
    size_t cap, len;
    const kn_tensor *t;
    bool integral, is_float;
    int width;
} printer;

static void put(printer *pr, const char *fmt, ...) KN_PRINTF(2, 3);
static void put(printer *pr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *dst = pr->len < pr->cap ? pr->buf + pr->len : NULL;
    int n = vsnprintf(dst, dst ? pr->cap - pr->len : 0, fmt, ap);
    va_end(ap);
    if (n > 0) pr->len += (size_t)n;
}

#define EDGE 3 /* items shown at each end of an elided dim */
#define SUMMARIZE 1000

static void format_value(printer *pr, double v, char *out, size_t n)
{
    if (pr->t->dtype == KN_BOOL)
        snprintf(out, n, "%s", v != 0 ? "True" : "False");
    else if (!pr->is_float)
        snprintf(out, n, "%.0f", v);
    else if (isnan(v))
        snprintf(out, n, "nan");
    else if (isinf(v))
        snprintf(out, n, v > 0 ? "inf" : "-inf");
    else if (pr->integral)
        snprintf(out, n, "%.0f.", v);
    else
        snprintf(out, n, "%.4f", v);
}

static void print_dim(printer *pr, int d, int64_t offset, bool summarize, int indent)
{
    const kn_tensor *t = pr->t;
    size_t es = kn_dtype_size(t->dtype);
    if (d == t->ndim) {
        char s[64];
        format_value(pr, kn__load(t->dtype, (char *)t->storage->data + offset * (int64_t)es), s,
                     sizeof s);
        put(pr, "%*s", pr->width, s);
        return;
    }
    put(pr, "[");
    int64_t n = t->shape[d];
    for (int64_t i = 0; i < n; i++) {
        if (summarize && n > 2 * EDGE && i == EDGE) {
            put(pr, d == t->ndim - 1 ? "..., " : "...,\n%*s", indent + 1, "");
            i = n - EDGE;
        }
        print_dim(pr, d + 1, offset + i * t->strides[d], summarize, indent + 1);
        if (i + 1 < n) put(pr, d == t->ndim - 1 ? ", " : ",\n%*s", indent + 1, "");
    }
    put(pr, "]");
}

/* Calls fn on every element (for the integral check and the column width). */
static void visit(printer *pr, int d, int64_t offset, void (*fn)(printer *, double))
{
    const kn_tensor *t = pr->t;
    if (d == t->ndim) {
        fn(pr, kn__load(t->dtype,
                        (char *)t->storage->data + offset * (int64_t)kn_dtype_size(t->dtype)));
        return;
    }
    for (int64_t i = 0; i < t->shape[d]; i++)
        visit(pr, d + 1, offset + i * t->strides[d], fn);
}

static void check_integral(printer *pr, double v)
{
    if (isfinite(v) && v != floor(v)) pr->integral = false;
}

static void measure_width(printer *pr, double v)
{
    char s[64];
    format_value(pr, v, s, sizeof s);
    if ((int)strlen(s) > pr->width) pr->width = (int)strlen(s);
}

size_t kn_tensor_to_string(const kn_tensor *t, char *buf, size_t n)
{
    if (!t) {
        if (n) snprintf(buf, n, "(null)");
        return 6;
    }
    printer pr = {
        .buf = buf, .cap = n, .t = t, .integral = true, .is_float = kn_dtype_is_float(t->dtype)};
    char shape[160];
    kn__shape_str(t->ndim, t->shape, shape, sizeof shape);
    if (!t->storage) {
        put(&pr, "tensor(<symbolic>, shape=%s, dtype=%s)", shape, kn_dtype_name(t->dtype));
        return pr.len;
    }
    if (t->dtype == KN_STRING) { /* the elements in C order, quoted, as one flat list */
        int64_t count = kn_tensor_numel(t);
        put(&pr, "tensor([");
        for (int64_t i = 0; i < count && i < SUMMARIZE; i++)
            put(&pr, "%s\"%s\"", i ? ", " : "", kn_tensor_string(t, i));
        put(&pr, "%s], shape=%s, dtype=string)", count > SUMMARIZE ? ", ..." : "", shape);
        if (n && pr.len >= n) buf[n - 1] = '\0';
        return pr.len;
    }
    bool summarize = kn_tensor_numel(t) > SUMMARIZE;
    if (summarize)
        pr.integral = false;
    else
        visit(&pr, 0, t->offset, check_integral);
    if (!summarize) visit(&pr, 0, t->offset, measure_width);
    put(&pr, "tensor(");
    if (kn_tensor_numel(t) == 0)
        put(&pr, "[]");
    else
        print_dim(&pr, 0, t->offset, summarize, 7);
    put(&pr, ", shape=%s, dtype=%s)", shape, kn_dtype_name(t->dtype));
    if (n && pr.len >= n) buf[n - 1] = '\0';
    return pr.len;
}

kn_status kn_tensor_print(const kn_tensor *t, FILE *f)
{
    if (!f) return kn__error(KN_ERR_ARG, "tensor_print: file is NULL");
    size_t need = kn_tensor_to_string(t, NULL, 0) + 1;
    char *s = kn_alloc(need);
    if (!s) return kn_last_status();
    kn_tensor_to_string(t, s, need);
    fprintf(f, "%s\n", s);
    kn_free(s);
    return KN_OK;
}
