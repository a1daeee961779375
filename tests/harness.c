/* harness.c — see harness.h. */
#include "harness.h"

#include <stdlib.h>
#include <sys/stat.h>

int kt_failures, kt_checks;
const char *kt_current = "";
static int n_tests;

void kt_run(const char *name, void (*fn)(void))
{
    kt_current = name;
    int before_failures = kt_failures;
    size_t live = kn_alloc_live_bytes();
    kn_clear_error();
    fn();
    kn_autograd_record(false);
    kn_autograd_tape_free();
    size_t after = kn_alloc_live_bytes();
    KT_CHECK(after == live, "leaked %zd bytes of kiln memory", (ssize_t)(after - live));
    n_tests++;
    printf("%s %s\n", kt_failures == before_failures ? "ok  " : "FAIL", name);
    fflush(stdout);
}

int kt_finish(void)
{
    printf("%d tests, %d checks, %d failures\n", n_tests, kt_checks, kt_failures);
    return kt_failures ? 1 : 0;
}

void kt_mark(const char *op, int kinds)
{
    const char *path = getenv("KILN_COVERAGE_FILE");
    if (!path || !op) return;
    FILE *f = fopen(path, "a");
    if (!f) return;
    /* one "name kinds" pair per line: a label with spaces ("lstm 'x'") is
     * written with underscores so the reader never loses its place */
    for (const char *c = op; *c; c++)
        fputc(*c == ' ' || *c == '\t' || *c == '\n' ? '_' : *c, f);
    fprintf(f, " %d\n", kinds);
    fclose(f);
}

/* A string tensor of the values printed with %g. */
static kn_tensor *string_tensor(int ndim, const int64_t *shape, const double *values)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= shape[d];
    char (*text)[32] = malloc(sizeof *text * (size_t)(n ? n : 1));
    const char **strs = malloc(sizeof *strs * (size_t)(n ? n : 1));
    kn_tensor *t = NULL;
    if (text && strs) {
        for (int64_t i = 0; i < n; i++)
            snprintf(text[i], sizeof text[i], "%g", values[i]), strs[i] = text[i];
        t = kn_tensor_from_strings(ndim, shape, strs);
    }
    free(text), free(strs);
    return t;
}

kn_tensor *kt_tensor(kn_dtype dt, int ndim, const int64_t *shape, const double *values)
{
    if (dt == KN_STRING) return string_tensor(ndim, shape, values);
    kn_tensor *t = kn_tensor_empty(dt, ndim, shape);
    if (!t) return NULL;
    int64_t n = kn_tensor_numel(t), index[KN_MAX_DIMS];
    for (int64_t i = 0; i < n; i++) {
        int64_t rem = i;
        for (int d = ndim - 1; d >= 0; d--) {
            index[d] = rem % shape[d];
            rem /= shape[d];
        }
        kn_tensor_set(t, index, values[i]);
    }
    return t;
}

kn_tensor *kt_from_array(const kt_array *a, kn_dtype dt)
{
    return kt_tensor(dt, a->ndim, a->shape, a->data);
}

static void unravel(int64_t i, int ndim, const int64_t *shape, int64_t *index)
{
    for (int d = ndim - 1; d >= 0; d--) {
        index[d] = shape[d] ? i % shape[d] : 0;
        if (shape[d]) i /= shape[d];
    }
}

static bool close_enough(double v, double e, double rtol, double atol)
{
    if (isnan(e)) return isnan(v);
    if (isinf(e)) return v == e;
    return fabs(v - e) <= atol + rtol * fabs(e);
}

bool kt_check_values(const char *op, const kn_tensor *t, int ndim, const int64_t *shape,
                     const double *expected, double rtol, double atol)
{
    KT_CHECK(t != NULL, "%s: result is NULL: %s", op, kn_last_error());
    if (!t) return false;
    bool same_shape = kn_tensor_ndim(t) == ndim;
    for (int d = 0; same_shape && d < ndim; d++)
        same_shape = kn_tensor_shape(t)[d] == shape[d];
    KT_CHECK(same_shape, "%s: result shape differs from the expected one", op);
    if (!same_shape) return false;
    int64_t n = kn_tensor_numel(t), index[KN_MAX_DIMS];
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double v;
        unravel(i, ndim, shape, index);
        kn_tensor_get(t, index, &v);
        if (!close_enough(v, expected[i], rtol, atol)) {
            if (bad++ < 5)
                fprintf(stderr, "  %s: element %lld is %.9g, expected %.9g\n", op, (long long)i, v,
                        expected[i]);
        }
    }
    KT_CHECK(bad == 0, "%s: %d of %lld elements differ", op, bad, (long long)n);
    kt_mark(op, KT_FWD);
    return bad == 0;
}

bool kt_check_array(const char *op, const kn_tensor *t, const kt_array *e, double rtol, double atol)
{
    return kt_check_values(op, t, e->ndim, e->shape, e->data, rtol, atol);
}

bool kt_equal_bits(const kn_tensor *a, const kn_tensor *b)
{
    if (!a || !b || kn_tensor_dtype(a) != kn_tensor_dtype(b) ||
        kn_tensor_ndim(a) != kn_tensor_ndim(b))
        return false;
    int64_t n = kn_tensor_numel(a);
    if (n != kn_tensor_numel(b)) return false;
    if (kn_tensor_dtype(a) == KN_STRING) {
        for (int64_t i = 0; i < n; i++) {
            const char *x = kn_tensor_string(a, i), *y = kn_tensor_string(b, i);
            if (!x || !y || strcmp(x, y)) return false;
        }
        return true;
    }
    size_t bytes = (size_t)n * kn_dtype_size(kn_tensor_dtype(a));
    char *x = malloc(bytes + 1), *y = malloc(bytes + 1);
    bool same = x && y && !kn_tensor_copy_to(a, kn_tensor_dtype(a), x, bytes) &&
                !kn_tensor_copy_to(b, kn_tensor_dtype(b), y, bytes) && memcmp(x, y, bytes) == 0;
    free(x);
    free(y);
    return same;
}

bool kt_expect_fail_status(const char *op, kn_status s, const char *needle)
{
    const char *msg = kn_last_error();
    bool ok = s != KN_OK && strstr(msg, op) != NULL && (!needle || strstr(msg, needle));
    KT_CHECK(ok, "%s: expected an error naming the op%s%s, got status %d '%s'", op,
             needle ? " and containing " : "", needle ? needle : "", (int)s, msg);
    kt_mark(op, KT_BAD);
    kn_clear_error();
    return ok;
}

bool kt_expect_fail(const char *op, kn_tensor *t, const char *needle)
{
    kn_status s = t ? KN_OK : kn_last_status();
    if (t) kn_tensor_unref(t);
    if (!t && s == KN_OK) s = KN_ERR_INTERNAL; /* NULL without a status is still a failure */
    return kt_expect_fail_status(op, s, needle);
}

kn_tensor *kt_rand(int ndim, const int64_t *shape, double lo, double hi, uint64_t seed)
{
    uint64_t old_seed = kn_rng_seed(), old_offset = kn_rng_offset();
    kn_manual_seed(seed);
    kn_tensor *t = kn_tensor_rand_uniform(KN_F64, ndim, shape, lo, hi);
    kn_manual_seed(old_seed);
    kn_rng_set_offset(old_offset);
    return t;
}

/* sum(f(x) * w), evaluated without recording. */
static double weighted_output(kt_fn fn, kn_tensor *const *inputs, void *ctx, kn_tensor *w)
{
    kn_tensor *y = fn(inputs, ctx);
    if (!y) return NAN;
    double total = 0;
    int64_t n = kn_tensor_numel(y), index[KN_MAX_DIMS];
    for (int64_t i = 0; i < n; i++) {
        double a, b;
        unravel(i, kn_tensor_ndim(y), kn_tensor_shape(y), index);
        kn_tensor_get(y, index, &a);
        kn_tensor_get(w, index, &b);
        total += a * b;
    }
    kn_tensor_unref(y);
    return total;
}

static int check_input_grad(const char *op, kt_fn fn, kn_tensor *const *inputs, void *ctx,
                            kn_tensor *w, int i, double eps, double tol)
{
    kn_tensor *x = inputs[i], *g = kn_tensor_grad(x);
    int64_t n = kn_tensor_numel(x), index[KN_MAX_DIMS];
    int bad = 0;
    for (int64_t j = 0; j < n; j++) {
        double x0, ana = 0;
        unravel(j, kn_tensor_ndim(x), kn_tensor_shape(x), index);
        kn_tensor_get(x, index, &x0);
        if (g) kn_tensor_get(g, index, &ana);
        kn_tensor_set(x, index, x0 + eps);
        double fp = weighted_output(fn, inputs, ctx, w);
        kn_tensor_set(x, index, x0 - eps);
        double fm = weighted_output(fn, inputs, ctx, w);
        kn_tensor_set(x, index, x0);
        double num = (fp - fm) / (2 * eps);
        if (!(fabs(num - ana) <= tol * (1 + fabs(num)))) {
            if (bad++ < 5)
                fprintf(stderr, "  %s: d/d input %d [%lld]: analytic %.9g, numeric %.9g\n", op, i,
                        (long long)j, ana, num);
        }
    }
    return bad;
}

bool kt_gradcheck(const char *op, kt_fn fn, int n, kn_tensor *const *inputs, void *ctx, double eps,
                  double tol)
{
    for (int i = 0; i < n; i++)
        if (inputs[i] && kn_tensor_dtype(inputs[i]) == KN_F64) {
            kn_tensor_zero_grad(inputs[i]);
            kn_tensor_set_requires_grad(inputs[i], true);
        }
    bool prev = kn_autograd_record(true);
    kn_tensor *y = fn(inputs, ctx);
    KT_CHECK(y != NULL, "%s: forward failed: %s", op, kn_last_error());
    if (!y) {
        kn_autograd_record(prev);
        return false;
    }
    kn_tensor *w = kt_rand(kn_tensor_ndim(y), kn_tensor_shape(y), -1, 1, 1234);
    kn_tensor *yw = kn_mul(y, w);
    kn_tensor *loss = kn_sum(yw, 0, NULL, false);
    kn_autograd_record(prev);
    kn_status s = kn_backward(loss, NULL);
    KT_OK(s);
    kn_tensor_unref(loss);
    kn_tensor_unref(yw);
    kn_tensor_unref(y);
    int bad = 0;
    for (int i = 0; i < n && !s; i++)
        if (inputs[i] && kn_tensor_requires_grad(inputs[i]))
            bad += check_input_grad(op, fn, inputs, ctx, w, i, eps, tol);
    for (int i = 0; i < n; i++)
        if (inputs[i] && kn_tensor_dtype(inputs[i]) == KN_F64) {
            kn_tensor_zero_grad(inputs[i]);
            kn_tensor_set_requires_grad(inputs[i], false);
        }
    kn_tensor_unref(w);
    kn_autograd_tape_free();
    KT_CHECK(bad == 0, "%s: %d gradient elements differ from finite differences", op, bad);
    kt_mark(op, KT_GRAD);
    return bad == 0 && !s;
}

int kt_alloc_walk(const char *what, kt_alloc_fn fn, void *ctx)
{
    int k;
    for (k = 1; k < 100000; k++) {
        size_t live = kn_alloc_live_bytes();
        kn_clear_error();
        kn_alloc_fail_after(k);
        kn_status s = fn(ctx);
        kn_alloc_fail_after(0);
        kn_autograd_tape_free();
        size_t after = kn_alloc_live_bytes();
        KT_CHECK(after == live, "%s: failing allocation %d leaked %zd bytes", what, k,
                 (ssize_t)(after - live));
        if (s == KN_OK) break;
        KT_CHECK(kn_last_error()[0] != '\0', "%s: failure at allocation %d left no message", what,
                 k);
    }
    return k - 1;
}

double kt_max_abs_diff(const kn_tensor *a, const kn_tensor *b)
{
    if (!a || !b || kn_tensor_numel(a) != kn_tensor_numel(b)) return INFINITY;
    int64_t n = kn_tensor_numel(a);
    double *va = malloc(sizeof(double) * (size_t)(2 * n + 1)), *vb = va + n, d = 0;
    if (!va) return INFINITY;
    kn_tensor_copy_to(a, KN_F64, va, sizeof(double) * (size_t)n);
    kn_tensor_copy_to(b, KN_F64, vb, sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        d = fmax(d, fabs(va[i] - vb[i]));
    free(va);
    return d;
}

double kt_max_rel_diff(const kn_tensor *a, const kn_tensor *b)
{
    if (!a || !b || kn_tensor_ndim(a) != kn_tensor_ndim(b)) return INFINITY;
    for (int d = 0; d < kn_tensor_ndim(a); d++)
        if (kn_tensor_dim(a, d) != kn_tensor_dim(b, d)) return INFINITY;
    int64_t n = kn_tensor_numel(a);
    double *x = malloc(sizeof(double) * (size_t)(2 * n + 1)), *y = x ? x + n : NULL, worst = 0;
    if (!x) return INFINITY;
    kn_tensor_copy_to(a, KN_F64, x, sizeof(double) * (size_t)n);
    kn_tensor_copy_to(b, KN_F64, y, sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(x[i] - y[i]) / (1 + fabs(y[i]));
        if (!(d <= worst)) worst = d; /* a NaN sticks */
    }
    free(x);
    return worst;
}

bool kt_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool kt_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

char *kt_read_file(const char *path, size_t *len)
{
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) free(buf), buf = NULL;
    fclose(f);
    if (buf) buf[n] = 0, *len = (size_t)n;
    return buf;
}
