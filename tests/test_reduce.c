/* test_reduce.c — reductions (sum, mean, prod, max, min, argmax, argmin,
 * logsumexp, var, std, norm, all, any) and the ops along one axis (cumsum,
 * sort, argsort, topk) against PyTorch (tests/golden/reduce.h from
 * tests/gen/gen_reduce.py): axes sets, keepdim, negative axes, strided and
 * broadcast inputs, zero-size and size-1 dims, integer and f16/bf16 inputs,
 * NaN, thread-count determinism of big reductions, f64 gradchecks, bad
 * inputs and an allocation-failure walk. */
#include "harness.h"

#include "golden/reduce.h"

#include <stdlib.h>

#define LEN(a) ((int)(sizeof(a) / sizeof((a)[0])))

typedef kn_tensor *(*red_fn)(kn_tensor *, int, const int *, bool);

static double tol_of(kn_dtype dt)
{
    switch (dt) {
    case KN_F64:
        return 1e-9;
    case KN_F32:
        return 1e-5;
    case KN_F16:
        return 1e-2;
    default:
        return 5e-2;
    }
}

static kn_tensor *xa_of(kn_dtype dt, bool transposed)
{
    kn_tensor *x = kt_from_array(&xa, dt);
    if (!transposed) return x;
    kn_tensor *t = kn_transpose(x, 1, 2);
    kn_tensor_unref(x);
    return t;
}

/* Checks op(x, axes, keepdim) against a golden array; the dtype of the
 * result must be want_dt. */
static void check_red(const char *op, red_fn fn, kn_tensor *x, int n, const int *axes, bool keep,
                      const kt_array *want, kn_dtype want_dt, double tol)
{
    kn_tensor *y = fn(x, n, axes, keep);
    if (!kt_check_array(op, y, want, tol, tol))
        fprintf(stderr, "  (%s of %s, %d axes, keepdim %d)\n", op,
                kn_dtype_name(kn_tensor_dtype(x)), n, keep);
    if (y)
        KT_CHECK(kn_tensor_dtype(y) == want_dt, "%s: dtype %s", op,
                 kn_dtype_name(kn_tensor_dtype(y)));
    kn_tensor_unref(y);
}

static const kn_dtype float_dtypes[] = {KN_F64, KN_F32, KN_F16, KN_BF16};

/* -------------------------------------------------------- forward values */
static void test_sum_mean(void)
{
    for (int k = 0; k < 4; k++) {
        kn_dtype dt = float_dtypes[k];
        double tol = tol_of(dt) * 8; /* sums of up to 60 rounded values */
        kn_tensor *x = xa_of(dt, false), *xt = xa_of(dt, true);
        check_red("sum", kn_sum, x, 0, NULL, false, &sum_all, dt, tol);
        check_red("sum", kn_sum, x, 1, (int[]){1}, false, &sum_1, dt, tol);
        check_red("sum", kn_sum, x, 2, (int[]){0, 2}, true, &sum_02k, dt, tol);
        check_red("sum", kn_sum, x, 1, (int[]){-1}, false, &sum_m1, dt, tol);
        check_red("sum", kn_sum, xt, 1, (int[]){1}, false, &sum_t1, dt, tol);
        check_red("mean", kn_mean, x, 0, NULL, false, &mean_all, dt, tol);
        check_red("mean", kn_mean, x, 1, (int[]){1}, false, &mean_1, dt, tol);
        check_red("mean", kn_mean, x, 2, (int[]){0, -1}, true, &mean_0m1k, dt, tol);
        check_red("mean", kn_mean, xt, 2, (int[]){0, 2}, false, &mean_t02, dt, tol);
        kn_tensor_unref(x), kn_tensor_unref(xt);
    }
    /* integers sum exactly into i64; bool counts */
    kn_tensor *xi32 = kt_from_array(&xi, KN_I32);
    check_red("sum", kn_sum, xi32, 1, (int[]){1}, false, &sum_i1, KN_I64, 0);
    kn_tensor_unref(xi32);
    int64_t s2[1] = {2};
    kn_tensor *big = kt_tensor(KN_I64, 1, s2, (double[]){0, 0});
    int64_t *d = kn_tensor_data(big);
    d[0] = ((int64_t)1 << 62) + 1, d[1] = 3; /* not exact in a double */
    kn_tensor *sb = kn_sum(big, 0, NULL, false);
    KT_CHECK(sb && *(int64_t *)kn_tensor_data(sb) == ((int64_t)1 << 62) + 4, "exact i64 sum");
    kn_tensor_unref(sb), kn_tensor_unref(big);
    kn_tensor *b = kt_from_array(&xb, KN_BOOL);
    kn_tensor *sbool = kn_sum(b, 0, NULL, false);
    kt_check_values("sum", sbool, 0, NULL, (double[]){7}, 0, 0);
    KT_CHECK(sbool && kn_tensor_dtype(sbool) == KN_I64, "sum of bool is i64");
    kn_tensor_unref(sbool), kn_tensor_unref(b);
    /* a broadcast (stride 0) input: (3,1,5) expanded to (3,4,5) */
    int64_t s315[3] = {3, 1, 5}, s345[3] = {3, 4, 5};
    kn_tensor *small = kt_rand(3, s315, -1, 1, 7), *e = kn_expand(small, 3, s345);
    kn_tensor *me = kn_mean(e, 1, (int[]){1}, true), *se = kn_sum(e, 1, (int[]){1}, true);
    double vals[15], sums[15];
    kn_tensor_copy_to(small, KN_F64, vals, sizeof vals);
    for (int i = 0; i < 15; i++)
        sums[i] = 4 * vals[i];
    kt_check_values("mean", me, 3, s315, vals, 1e-12, 1e-12);
    kt_check_values("sum", se, 3, s315, sums, 1e-12, 1e-12);
    kn_tensor_unref(me), kn_tensor_unref(se), kn_tensor_unref(e), kn_tensor_unref(small);
}

static void test_prod_max_min(void)
{
    for (int k = 0; k < 4; k++) {
        kn_dtype dt = float_dtypes[k];
        double tol = tol_of(dt) * 8;
        kn_tensor *p = kt_from_array(&xp, dt), *x = xa_of(dt, false), *xt = xa_of(dt, true);
        check_red("prod", kn_prod, p, 1, (int[]){2}, false, &prod_2, dt, tol);
        check_red("prod", kn_prod, p, 2, (int[]){0, 1}, true, &prod_01k, dt, tol);
        /* max/min pick an input element: exact in every dtype once rounded */
        double t = dt == KN_F64 ? 0 : tol_of(dt);
        check_red("max", kn_max, x, 0, NULL, false, &max_all, dt, t);
        check_red("max", kn_max, x, 2, (int[]){0, 2}, true, &max_02k, dt, t);
        check_red("max", kn_max, x, 1, (int[]){1}, false, &max_1, dt, t);
        check_red("max", kn_max, xt, 2, (int[]){0, 2}, false, &max_t02, dt, t);
        check_red("min", kn_min, x, 0, NULL, false, &min_all, dt, t);
        check_red("min", kn_min, x, 2, (int[]){0, 2}, true, &min_02k, dt, t);
        check_red("min", kn_min, x, 1, (int[]){-2}, false, &min_1, dt, t);
        kn_tensor_unref(p), kn_tensor_unref(x), kn_tensor_unref(xt);
    }
    kn_tensor *i = kt_from_array(&xi, KN_I32);
    check_red("prod", kn_prod, i, 1, (int[]){1}, false, &prod_i1, KN_I64, 0);
    check_red("max", kn_max, i, 1, (int[]){0}, false, &max_i0, KN_I32, 0);
    check_red("min", kn_min, i, 1, (int[]){1}, false, &min_i1, KN_I32, 0);
    kn_tensor_unref(i);
    /* NaN propagates */
    kn_tensor *n = kt_from_array(&xn, KN_F32);
    kn_tensor *mx = kn_max(n, 0, NULL, false), *mn = kn_min(n, 0, NULL, false);
    kt_check_values("max", mx, 0, NULL, (double[]){NAN}, 0, 0);
    kt_check_values("min", mn, 0, NULL, (double[]){NAN}, 0, 0);
    kn_tensor_unref(mx), kn_tensor_unref(mn), kn_tensor_unref(n);
}

static kn_tensor *argmax_wrap(kn_tensor *x, int axis, bool keep)
{
    return kn_argmax(x, axis, keep);
}
static kn_tensor *argmin_wrap(kn_tensor *x, int axis, bool keep)
{
    return kn_argmin(x, axis, keep);
}

static void check_arg(const char *op, kn_tensor *(*fn)(kn_tensor *, int, bool), kn_tensor *x,
                      int axis, bool keep, const kt_array *want)
{
    kn_tensor *y = fn(x, axis, keep);
    kt_check_array(op, y, want, 0, 0);
    if (y) KT_CHECK(kn_tensor_dtype(y) == KN_I64, "%s gives i64", op);
    kn_tensor_unref(y);
}

static void test_argmax_argmin(void)
{
    for (int k = 0; k < 2; k++) {
        kn_dtype dt = float_dtypes[k];
        kn_tensor *x = xa_of(dt, false), *xt = xa_of(dt, true), *s = kt_from_array(&xs, dt);
        check_arg("argmax", argmax_wrap, x, 1, false, &argmax_1);
        check_arg("argmax", argmax_wrap, x, -1, true, &argmax_m1k);
        check_arg("argmax", argmax_wrap, xt, 1, false, &argmax_t1);
        check_arg("argmin", argmin_wrap, x, 0, false, &argmin_0);
        check_arg("argmin", argmin_wrap, x, 1, true, &argmin_1k);
        check_arg("argmax", argmax_wrap, s, 1, false, &argmax_s1); /* ties: first */
        check_arg("argmin", argmin_wrap, s, 1, false, &argmin_s1);
        kn_tensor_unref(x), kn_tensor_unref(xt), kn_tensor_unref(s);
    }
    kn_tensor *i = kt_from_array(&xi, KN_I64);
    check_arg("argmax", argmax_wrap, i, 0, false, &argmax_i0);
    kn_tensor_unref(i);
    kn_tensor *n = kt_from_array(&xn, KN_F64);
    kn_tensor *a = kn_argmax(n, 0, false), *b = kn_argmin(n, 0, false);
    kt_check_values("argmax", a, 0, NULL, (double[]){1}, 0, 0); /* the first NaN */
    kt_check_values("argmin", b, 0, NULL, (double[]){1}, 0, 0);
    kn_tensor_unref(a), kn_tensor_unref(b), kn_tensor_unref(n);
    /* f16/bf16 inputs (values exact there), size-1 axis, 0-d input */
    for (int k = 2; k < 4; k++) {
        kn_tensor *h = kt_from_array(&xq, float_dtypes[k]);
        check_arg("argmax", argmax_wrap, h, 1, false, &argmax_q1);
        check_arg("argmin", argmin_wrap, h, 0, false, &argmin_q0);
        kn_tensor_unref(h);
    }
    int64_t s141[3] = {1, 4, 1};
    kn_tensor *one = kt_rand(3, s141, -1, 1, 3), *r = kn_argmax(one, 2, false);
    kt_check_values("argmax", r, 2, (int64_t[]){1, 4}, (double[]){0, 0, 0, 0}, 0, 0);
    kn_tensor_unref(r), kn_tensor_unref(one);
    kn_tensor *sc = kn_tensor_scalar(KN_F32, 5), *r0 = kn_argmin(sc, 0, false);
    kt_check_values("argmin", r0, 0, NULL, (double[]){0}, 0, 0);
    kn_tensor_unref(r0), kn_tensor_unref(sc);
}

static kn_tensor *var_u(kn_tensor *x, int n, const int *a, bool k)
{
    return kn_var(x, n, a, true, k);
}
static kn_tensor *var_b(kn_tensor *x, int n, const int *a, bool k)
{
    return kn_var(x, n, a, false, k);
}
static kn_tensor *std_u(kn_tensor *x, int n, const int *a, bool k)
{
    return kn_std(x, n, a, true, k);
}
static kn_tensor *std_b(kn_tensor *x, int n, const int *a, bool k)
{
    return kn_std(x, n, a, false, k);
}
static kn_tensor *norm1(kn_tensor *x, int n, const int *a, bool k)
{
    return kn_norm(x, 1, n, a, k);
}
static kn_tensor *norm2(kn_tensor *x, int n, const int *a, bool k)
{
    return kn_norm(x, 2, n, a, k);
}

static void test_lse_var_std_norm(void)
{
    for (int k = 0; k < 4; k++) {
        kn_dtype dt = float_dtypes[k];
        double tol = tol_of(dt) * 8;
        kn_tensor *x = xa_of(dt, false), *xt = xa_of(dt, true);
        check_red("logsumexp", kn_logsumexp, x, 2, (int[]){1, 2}, false, &lse_12, dt, tol);
        check_red("logsumexp", kn_logsumexp, x, 1, (int[]){0}, true, &lse_0k, dt, tol);
        check_red("logsumexp", kn_logsumexp, xt, 1, (int[]){2}, false, &lse_t2, dt, tol);
        check_red("var", var_u, x, 1, (int[]){1}, false, &var_u1, dt, tol);
        check_red("var", var_b, x, 0, NULL, false, &var_ball, dt, tol);
        check_red("var", var_u, x, 2, (int[]){0, 2}, true, &var_u02k, dt, tol);
        check_red("var", var_u, xt, 1, (int[]){2}, false, &var_t2, dt, tol);
        check_red("std", std_u, x, 1, (int[]){1}, false, &std_u1, dt, tol);
        check_red("std", std_b, x, 0, NULL, false, &std_ball, dt, tol);
        check_red("std", std_b, x, 2, (int[]){0, 2}, true, &std_b02k, dt, tol);
        check_red("norm", norm1, x, 1, (int[]){2}, false, &norm1_2, dt, tol);
        check_red("norm", norm2, x, 0, NULL, false, &norm2_all, dt, tol);
        check_red("norm", norm2, x, 2, (int[]){0, 1}, true, &norm2_01k, dt, tol);
        check_red("norm", norm2, xt, 1, (int[]){1}, false, &norm2_t1, dt, tol);
        kn_tensor_unref(x), kn_tensor_unref(xt);
    }
    /* logsumexp is stable and handles infinities */
    int64_t s3[1] = {3};
    kn_tensor *big = kt_tensor(KN_F32, 1, s3, (double[]){1000, 1000, -INFINITY});
    kn_tensor *l = kn_logsumexp(big, 0, NULL, false);
    kt_check_values("logsumexp", l, 0, NULL, (double[]){1000 + log(2.0)}, 1e-6, 0);
    kn_tensor_unref(l), kn_tensor_unref(big);
    kn_tensor *ninf = kt_tensor(KN_F64, 1, s3, (double[]){-INFINITY, -INFINITY, -INFINITY});
    kn_tensor *pinf = kt_tensor(KN_F64, 1, s3, (double[]){1, INFINITY, 2});
    kn_tensor *ln = kn_logsumexp(ninf, 0, NULL, false), *lp = kn_logsumexp(pinf, 0, NULL, false);
    kt_check_values("logsumexp", ln, 0, NULL, (double[]){-INFINITY}, 0, 0);
    kt_check_values("logsumexp", lp, 0, NULL, (double[]){INFINITY}, 0, 0);
    kn_tensor_unref(ln), kn_tensor_unref(lp), kn_tensor_unref(ninf), kn_tensor_unref(pinf);
    /* one element: unbiased var is nan (0/0), biased is 0 */
    int64_t s1[1] = {1};
    kn_tensor *o = kt_tensor(KN_F64, 1, s1, (double[]){4});
    kn_tensor *vu = kn_var(o, 0, NULL, true, false), *vb = kn_var(o, 0, NULL, false, false);
    kt_check_values("var", vu, 0, NULL, (double[]){NAN}, 0, 0);
    kt_check_values("var", vb, 0, NULL, (double[]){0}, 0, 0);
    kn_tensor_unref(vu), kn_tensor_unref(vb), kn_tensor_unref(o);
}

static void test_all_any(void)
{
    const kn_dtype dts[] = {KN_F32, KN_BOOL, KN_I8, KN_F16};
    for (int k = 0; k < 4; k++) {
        kn_tensor *b = kt_from_array(&xb, dts[k]);
        check_red("all", kn_all, b, 1, (int[]){1}, false, &all_1, KN_BOOL, 0);
        check_red("any", kn_any, b, 1, (int[]){1}, false, &any_1, KN_BOOL, 0);
        check_red("all", kn_all, b, 1, (int[]){-2}, false, &all_0, KN_BOOL, 0);
        check_red("any", kn_any, b, 1, (int[]){0}, false, &any_0, KN_BOOL, 0);
        kn_tensor_unref(b);
    }
    kn_tensor *n = kt_from_array(&xn, KN_F64); /* NaN is true */
    kn_tensor *a = kn_all(n, 0, NULL, false);
    kt_check_values("all", a, 0, NULL, (double[]){1}, 0, 0);
    kn_tensor_unref(a), kn_tensor_unref(n);
}

/* zero-size and size-1 dims, 0-d inputs, following PyTorch */
static void test_empty_and_size1(void)
{
    int64_t s203[3] = {2, 0, 3}, s23[2] = {2, 3}, s20[2] = {2, 0};
    kn_tensor *e = kn_tensor_zeros(KN_F32, 3, s203);
    double z6[6] = {0}, o6[6] = {1, 1, 1, 1, 1, 1}, nan6[6], ninf6[6];
    for (int i = 0; i < 6; i++)
        nan6[i] = NAN, ninf6[i] = -INFINITY;
    const int ax1[1] = {1}, ax2[1] = {2};
    kn_tensor *y;
    kt_check_values("sum", y = kn_sum(e, 1, ax1, false), 2, s23, z6, 0, 0), kn_tensor_unref(y);
    kt_check_values("mean", y = kn_mean(e, 1, ax1, false), 2, s23, nan6, 0, 0), kn_tensor_unref(y);
    kt_check_values("prod", y = kn_prod(e, 1, ax1, false), 2, s23, o6, 0, 0), kn_tensor_unref(y);
    kt_check_values("var", y = kn_var(e, 1, ax1, true, false), 2, s23, nan6, 0, 0),
        kn_tensor_unref(y);
    kt_check_values("std", y = kn_std(e, 1, ax1, false, false), 2, s23, nan6, 0, 0),
        kn_tensor_unref(y);
    kt_check_values("logsumexp", y = kn_logsumexp(e, 1, ax1, false), 2, s23, ninf6, 0, 0),
        kn_tensor_unref(y);
    kt_check_values("norm", y = kn_norm(e, 2, 1, ax1, false), 2, s23, z6, 0, 0), kn_tensor_unref(y);
    kt_check_values("all", y = kn_all(e, 1, ax1, false), 2, s23, o6, 0, 0), kn_tensor_unref(y);
    kt_check_values("any", y = kn_any(e, 1, ax1, false), 2, s23, z6, 0, 0), kn_tensor_unref(y);
    /* max over a non-empty axis of an empty tensor is fine; over the empty one, an error */
    kt_check_values("max", y = kn_max(e, 1, ax2, false), 2, s20, NULL, 0, 0), kn_tensor_unref(y);
    kt_check_values("min", y = kn_min(e, 1, ax2, false), 2, s20, NULL, 0, 0), kn_tensor_unref(y);
    kt_check_values("argmax", y = kn_argmax(e, 2, false), 2, s20, NULL, 0, 0), kn_tensor_unref(y);
    kt_expect_fail("max", kn_max(e, 1, ax1, false), "size 0");
    kt_expect_fail("min", kn_min(e, 0, NULL, false), "size 0");
    kt_expect_fail("argmax", kn_argmax(e, 1, false), "size 0");
    kt_expect_fail("argmin", kn_argmin(e, -2, true), "size 0");
    kt_check_values("cumsum", y = kn_cumsum(e, 1), 3, s203, NULL, 0, 0), kn_tensor_unref(y);
    kn_tensor *v, *ix;
    KT_OK(kn_sort(e, 1, false, &v, &ix));
    kt_check_values("sort", v, 3, s203, NULL, 0, 0);
    kn_tensor_unref(v), kn_tensor_unref(ix);
    KT_OK(kn_topk(e, 0, 1, true, true, &v, &ix));
    kt_check_values("topk", v, 3, s203, NULL, 0, 0);
    kn_tensor_unref(v), kn_tensor_unref(ix);
    kn_tensor_unref(e);
    /* size-1 dims and 0-d tensors */
    int64_t s141[3] = {1, 4, 1}, s4[1] = {4};
    kn_tensor *x = kt_tensor(KN_F64, 3, s141, (double[]){1, -2, 3, 0.5});
    kt_check_values("sum", y = kn_sum(x, 2, (int[]){0, 2}, false), 1, s4, (double[]){1, -2, 3, 0.5},
                    0, 0);
    kn_tensor_unref(y);
    kt_check_values("var", y = kn_var(x, 2, (int[]){2, 0}, false, true), 3, s141,
                    (double[]){0, 0, 0, 0}, 0, 0);
    kn_tensor_unref(y), kn_tensor_unref(x);
    kn_tensor *sc = kn_tensor_scalar(KN_F64, 2.5);
    kt_check_values("sum", y = kn_sum(sc, 1, (int[]){0}, true), 0, NULL, (double[]){2.5}, 0, 0);
    kn_tensor_unref(y);
    kt_check_values("cumsum", y = kn_cumsum(sc, -1), 0, NULL, (double[]){2.5}, 0, 0);
    kn_tensor_unref(y), kn_tensor_unref(sc);
}

static void test_cumsum(void)
{
    for (int k = 0; k < 4; k++) {
        kn_dtype dt = float_dtypes[k];
        double tol = tol_of(dt) * 8;
        kn_tensor *x = xa_of(dt, false), *xt = xa_of(dt, true), *y;
        kt_check_array("cumsum", y = kn_cumsum(x, 1), &cumsum_1, tol, tol), kn_tensor_unref(y);
        kt_check_array("cumsum", y = kn_cumsum(x, -1), &cumsum_m1, tol, tol), kn_tensor_unref(y);
        kt_check_array("cumsum", y = kn_cumsum(xt, 1), &cumsum_t1, tol, tol), kn_tensor_unref(y);
        kn_tensor_unref(x), kn_tensor_unref(xt);
    }
    kn_tensor *i = kt_from_array(&xi, KN_I8), *y = kn_cumsum(i, 0);
    kt_check_array("cumsum", y, &cumsum_i0, 0, 0);
    KT_CHECK(y && kn_tensor_dtype(y) == KN_I64, "cumsum of ints is i64");
    kn_tensor_unref(y), kn_tensor_unref(i);
}

typedef struct sort_case {
    const kt_array *x;
    bool transposed;
    int axis;
    bool desc;
    const kt_array *v, *i;
    kn_dtype dt;
} sort_case;

static void test_sort_argsort(void)
{
    const sort_case cases[] = {
        {&xs, false, 1, false, &sort_s1_v, &sort_s1_i, KN_F32},
        {&xs, false, 1, true, &sort_s1d_v, &sort_s1d_i, KN_F64},
        {&xs, false, 0, false, &sort_s0_v, &sort_s0_i, KN_BF16},
        {&xa, false, 0, false, &sort_a0_v, &sort_a0_i, KN_F64},
        {&xa, true, 1, true, &sort_t1d_v, &sort_t1d_i, KN_F32},
        {&xn, false, 0, false, &sort_n_v, &sort_n_i, KN_F32},
        {&xn, false, -1, true, &sort_nd_v, &sort_nd_i, KN_F16},
        {&xi, false, 1, true, &sort_i1_v, &sort_i1_i, KN_I32},
    };
    for (int c = 0; c < LEN(cases); c++) {
        const sort_case *sc = &cases[c];
        kn_tensor *x = kt_from_array(sc->x, sc->dt), *v = NULL, *ix = NULL;
        if (sc->transposed) {
            kn_tensor *t = kn_transpose(x, 1, 2);
            kn_tensor_unref(x);
            x = t;
        }
        KT_OK(kn_sort(x, sc->axis, sc->desc, &v, &ix));
        double tol = kn_dtype_is_float(sc->dt) ? tol_of(sc->dt) : 0;
        if (!kt_check_array("sort", v, sc->v, tol, tol) || !kt_check_array("sort", ix, sc->i, 0, 0))
            fprintf(stderr, "  sort case %d\n", c);
        kn_tensor *a = kn_argsort(x, sc->axis, sc->desc);
        kt_check_array("argsort", a, sc->i, 0, 0);
        KT_CHECK(a && kn_tensor_dtype(a) == KN_I64 && v && kn_tensor_dtype(v) == sc->dt, "dtypes");
        kn_tensor_unref(a), kn_tensor_unref(v), kn_tensor_unref(ix), kn_tensor_unref(x);
    }
    for (int k = 2; k < 4; k++) { /* f16/bf16, no ties */
        kn_tensor *q = kt_from_array(&xq, float_dtypes[k]), *v = NULL, *ix = NULL;
        KT_OK(kn_topk(q, 3, 1, true, true, &v, &ix));
        kt_check_array("topk", v, &topk_q31_v, 0, 0), kt_check_array("topk", ix, &topk_q31_i, 0, 0);
        kn_tensor_unref(v), kn_tensor_unref(ix);
        KT_OK(kn_topk(q, 2, 0, false, false, &v, &ix));
        kt_check_array("topk", v, &topk_q20s_v, 0, 0),
            kt_check_array("topk", ix, &topk_q20s_i, 0, 0);
        kn_tensor_unref(v), kn_tensor_unref(ix), kn_tensor_unref(q);
    }
    kn_tensor *s = kt_from_array(&xs, KN_F32), *a = kn_argsort(s, 1, true);
    kt_check_array("argsort", a, &argsort_s1d, 0, 0);
    kn_tensor_unref(a), kn_tensor_unref(s);
}

static void test_topk(void)
{
    struct {
        bool transposed;
        int64_t k;
        int axis;
        bool largest;
        const kt_array *v, *i;
    } cases[] = {
        {false, 2, 1, true, &topk_a21_v, &topk_a21_i},
        {false, 3, -1, false, &topk_a3m1s_v, &topk_a3m1s_i},
        {true, 2, 0, true, &topk_t20_v, &topk_t20_i},
    };
    for (int k = 0; k < 2; k++) {
        kn_dtype dt = float_dtypes[k];
        for (int c = 0; c < 3; c++) {
            kn_tensor *x = xa_of(dt, cases[c].transposed), *v = NULL, *ix = NULL;
            KT_OK(kn_topk(x, cases[c].k, cases[c].axis, cases[c].largest, true, &v, &ix));
            kt_check_array("topk", v, cases[c].v, tol_of(dt), tol_of(dt));
            kt_check_array("topk", ix, cases[c].i, 0, 0);
            kn_tensor_unref(v), kn_tensor_unref(ix), kn_tensor_unref(x);
        }
    }
}

/* ------------------------------------------------------------ determinism */
/* one temporary kept for the end of a test */
static kn_tensor *kept_t;
static kn_tensor *keep_tmp(kn_tensor *t)
{
    return kept_t = t;
}
static void free_tmp(void)
{
    kn_tensor_unref(kept_t), kept_t = NULL;
}

static kn_tensor *red_var(kn_tensor *x)
{
    return kn_var(x, 0, NULL, true, false);
}
static kn_tensor *red_sum(kn_tensor *x)
{
    return kn_sum(x, 0, NULL, false);
}
static kn_tensor *red_mean(kn_tensor *x)
{
    return kn_mean(x, 0, NULL, false);
}
static kn_tensor *red_sum_rows(kn_tensor *x)
{
    return kn_sum(x, 1, (int[]){1}, false);
}

static void test_thread_determinism(void)
{
    int old = kn_get_num_threads();
    int64_t n = (int64_t)1 << 22, s[1] = {n}, s2[2] = {2, n / 2};
    kn_manual_seed(99);
    kn_tensor *x = kn_tensor_rand_uniform(KN_F32, 1, s, -1, 3);
    kn_tensor *x2 = kn_reshape(x, 2, s2);
    kn_tensor *(*fns[4])(kn_tensor *) = {red_sum, red_mean, red_var, red_sum_rows};
    const char *names[4] = {"sum", "mean", "var", "sum"};
    for (int f = 0; f < 4; f++) {
        kn_tensor *in = f == 3 ? x2 : x;
        kn_set_num_threads(1);
        kn_tensor *a = fns[f](in);
        kn_set_num_threads(2);
        kn_tensor *b = fns[f](in);
        kn_set_num_threads(4);
        kn_tensor *c = fns[f](in);
        KT_CHECK(kt_equal_bits(a, b) && kt_equal_bits(a, c), "%s: same bits on 1, 2 and 4 threads",
                 names[f]);
        kn_tensor_unref(a), kn_tensor_unref(b), kn_tensor_unref(c);
    }
    kn_set_num_threads(old);
    /* the reference engine's column mode (outputs side by side) gives the
     * bits of one-output walks (the AVX-512 kernels fold rows and columns
     * in different f32 lanes: tests/test_kernels_reduce.c bounds them) */
    kn_isa isa_was = kn_isa_max();
    kn_set_isa(KN_ISA_REF);
    kn_tensor *tc = kn_contiguous(keep_tmp(kn_transpose(x2, 0, 1)));
    kn_tensor *cols = kn_sum(x2, 1, (int[]){0}, false), *rows = kn_sum(tc, 1, (int[]){1}, false);
    KT_CHECK(kt_equal_bits(cols, rows), "sum over rows and over columns of the transpose agree");
    kn_tensor *vc = kn_var(x2, 1, (int[]){0}, true, false),
              *vr = kn_var(tc, 1, (int[]){1}, true, false);
    KT_CHECK(kt_equal_bits(vc, vr), "var over rows and over columns of the transpose agree");
    kn_tensor_unref(vc), kn_tensor_unref(vr), kn_tensor_unref(cols), kn_tensor_unref(rows);
    kn_tensor_unref(tc), free_tmp();
    kn_set_isa(isa_was);
    /* and the values are right: compare with a plain double loop */
    const float *d = kn_tensor_data(x);
    double sum = 0, sq = 0, row0 = 0;
    for (int64_t i = 0; i < n; i++)
        sum += d[i], row0 += i < n / 2 ? d[i] : 0;
    double mean = sum / (double)n;
    for (int64_t i = 0; i < n; i++)
        sq += (d[i] - mean) * (d[i] - mean);
    kn_tensor *y;
    kt_check_values("sum", y = red_sum(x), 0, NULL, &sum, 1e-6, 0), kn_tensor_unref(y);
    kt_check_values("mean", y = red_mean(x), 0, NULL, &mean, 1e-6, 0), kn_tensor_unref(y);
    kt_check_values("var", y = red_var(x), 0, NULL, (double[]){sq / (double)(n - 1)}, 1e-6, 0);
    kn_tensor_unref(y);
    kt_check_values("sum", y = red_sum_rows(x2), 1, (int64_t[]){2}, (double[]){row0, sum - row0},
                    1e-6, 0);
    kn_tensor_unref(y), kn_tensor_unref(x2), kn_tensor_unref(x);
}

/* Long reductions are split into chunks: the chunk partials must combine
 * like one pass (first index of ties, NaN, exact integers). */
static void test_split_combine(void)
{
    int64_t n = (int64_t)1 << 20, s[1] = {n};
    kn_tensor *x = kn_tensor_zeros(KN_F64, 1, s), *y;
    kn_tensor_set(x, (int64_t[]){300001}, 5), kn_tensor_set(x, (int64_t[]){900001}, 5);
    kn_tensor_set(x, (int64_t[]){700000}, -3), kn_tensor_set(x, (int64_t[]){20}, -3);
    kt_check_values("argmax", y = kn_argmax(x, 0, false), 0, NULL, (double[]){300001}, 0, 0),
        kn_tensor_unref(y);
    kt_check_values("argmin", y = kn_argmin(x, 0, false), 0, NULL, (double[]){20}, 0, 0),
        kn_tensor_unref(y);
    kt_check_values("max", y = kn_max(x, 0, NULL, false), 0, NULL, (double[]){5}, 0, 0),
        kn_tensor_unref(y);
    kt_check_values("min", y = kn_min(x, 0, NULL, false), 0, NULL, (double[]){-3}, 0, 0),
        kn_tensor_unref(y);
    kt_check_values("logsumexp", y = kn_logsumexp(x, 0, NULL, false), 0, NULL,
                    (double[]){log((double)(n - 4) + 2 * exp(5.0) + 2 * exp(-3.0))}, 1e-12, 0);
    kn_tensor_unref(y);
    kt_check_values("all", y = kn_all(x, 0, NULL, false), 0, NULL, (double[]){0}, 0, 0),
        kn_tensor_unref(y);
    kt_check_values("any", y = kn_any(x, 0, NULL, false), 0, NULL, (double[]){1}, 0, 0),
        kn_tensor_unref(y);
    kn_tensor_set(x, (int64_t[]){800000}, NAN);
    kt_check_values("argmax", y = kn_argmax(x, 0, false), 0, NULL, (double[]){800000}, 0, 0),
        kn_tensor_unref(y);
    kt_check_values("max", y = kn_max(x, 0, NULL, false), 0, NULL, (double[]){NAN}, 0, 0),
        kn_tensor_unref(y);
    kn_tensor_unref(x);
    kn_tensor *ints = kn_tensor_full(KN_I32, 1, s, 3);
    kn_tensor_set(ints, (int64_t[]){999999}, 7);
    kt_check_values("sum", y = kn_sum(ints, 0, NULL, false), 0, NULL,
                    (double[]){3.0 * (double)n + 4}, 0, 0);
    kn_tensor_unref(y);
    kt_check_values("argmax", y = kn_argmax(ints, 0, false), 0, NULL, (double[]){999999}, 0, 0),
        kn_tensor_unref(y);
    kt_check_values("max", y = kn_max(ints, 0, NULL, false), 0, NULL, (double[]){7}, 0, 0),
        kn_tensor_unref(y);
    kn_tensor_unref(ints);
}

/* ------------------------------------------------------------- gradients */
typedef struct red_case {
    red_fn fn;
    int n;
    int axes[3];
    bool keep;
} red_case;

static kn_tensor *apply_red(kn_tensor *const *in, void *ctx)
{
    const red_case *c = ctx;
    return c->fn(in[0], c->n, c->axes, c->keep);
}

static void gradcheck_red(const char *op, red_fn fn, kn_tensor *x, int n, const int *axes,
                          bool keep)
{
    red_case c = {fn, n, {0}, keep};
    for (int i = 0; i < n; i++)
        c.axes[i] = axes[i];
    kn_tensor *in[1] = {x};
    kt_gradcheck(op, apply_red, 1, in, &c, 1e-6, 1e-6);
}

static void test_grad_reductions(void)
{
    int64_t s[3] = {2, 3, 4};
    kn_tensor *x = kt_rand(3, s, -1, 1, 11), *pos = kt_rand(3, s, 0.5, 1.5, 12);
    kn_tensor *xt = kn_transpose(x, 0, 2); /* strided */
    gradcheck_red("sum", kn_sum, x, 2, (int[]){0, 2}, false);
    gradcheck_red("sum", kn_sum, xt, 0, NULL, false);
    gradcheck_red("mean", kn_mean, x, 1, (int[]){1}, true);
    gradcheck_red("mean", kn_mean, xt, 2, (int[]){0, -1}, false);
    gradcheck_red("prod", kn_prod, pos, 1, (int[]){2}, false);
    gradcheck_red("prod", kn_prod, x, 0, NULL, true);
    gradcheck_red("max", kn_max, x, 2, (int[]){0, 2}, false);
    gradcheck_red("max", kn_max, xt, 1, (int[]){1}, true);
    gradcheck_red("min", kn_min, x, 1, (int[]){1}, false);
    gradcheck_red("min", kn_min, x, 0, NULL, false);
    gradcheck_red("logsumexp", kn_logsumexp, x, 2, (int[]){1, 2}, false);
    gradcheck_red("logsumexp", kn_logsumexp, xt, 1, (int[]){0}, true);
    gradcheck_red("var", var_u, x, 1, (int[]){1}, false);
    gradcheck_red("var", var_b, xt, 0, NULL, true);
    gradcheck_red("std", std_u, x, 2, (int[]){0, 2}, true);
    gradcheck_red("std", std_b, x, 1, (int[]){-1}, false);
    gradcheck_red("norm", norm1, x, 1, (int[]){2}, false);
    gradcheck_red("norm", norm2, x, 0, NULL, false);
    gradcheck_red("norm", norm2, xt, 2, (int[]){0, 1}, true);
    kn_tensor_unref(xt), kn_tensor_unref(x), kn_tensor_unref(pos);
}

/* grad of a reduction of x from ones upstream, checked against want */
static void check_grad_values(const char *op, red_fn fn, kn_tensor *x, int n, const int *axes,
                              const double *want)
{
    kn_tensor_set_requires_grad(x, true);
    kn_autograd_record(true);
    kn_tensor *y = fn(x, n, axes, false), *l = kn_sum(y, 0, NULL, false);
    kn_autograd_record(false);
    KT_OK(kn_backward(l, NULL));
    kt_check_values(op, kn_tensor_grad(x), kn_tensor_ndim(x), kn_tensor_shape(x), want, 1e-12,
                    1e-12);
    kn_tensor_zero_grad(x);
    kn_tensor_set_requires_grad(x, false);
    kn_tensor_unref(y), kn_tensor_unref(l);
}

static void test_grad_special(void)
{
    int64_t s4[1] = {4}, s24[2] = {2, 4};
    /* ties: the gradient is split evenly (torch.amax) */
    kn_tensor *t = kt_tensor(KN_F64, 1, s4, (double[]){1, 3, 3, 2});
    check_grad_values("max", kn_max, t, 0, NULL, (double[]){0, 0.5, 0.5, 0});
    kn_tensor_unref(t);
    t = kt_tensor(KN_F64, 2, s24, (double[]){-1, 5, -1, -1, 2, 0, 0, 7});
    check_grad_values("min", kn_min, t, 1, (int[]){1},
                      (double[]){1.0 / 3, 0, 1.0 / 3, 1.0 / 3, 0, 0.5, 0.5, 0});
    kn_tensor_unref(t);
    /* prod with one zero (grad = product of the others there) and two zeros */
    t = kt_tensor(KN_F64, 2, s24, (double[]){2, 0, 3, 4, 0, 5, 0, 6});
    check_grad_values("prod", kn_prod, t, 1, (int[]){1}, (double[]){0, 24, 0, 0, 0, 0, 0, 0});
    kn_tensor_unref(t);
    int64_t s3[2] = {3, 3};
    kn_tensor *z = kt_rand(2, s3, 0.5, 1.5, 5);
    kn_tensor_set(z, (int64_t[]){0, 1}, 0);
    kn_tensor_set(z, (int64_t[]){1, 0}, 0), kn_tensor_set(z, (int64_t[]){1, 2}, 0);
    gradcheck_red("prod", kn_prod, z, 1, (int[]){1}, false); /* finite differences at zeros */
    kn_tensor_unref(z);
    /* the 2-norm of a zero vector has gradient 0, as in PyTorch */
    t = kt_tensor(KN_F64, 2, s24, (double[]){0, 0, 0, 0, 3, 0, 4, 0});
    check_grad_values("norm", norm2, t, 1, (int[]){1}, (double[]){0, 0, 0, 0, 0.6, 0, 0.8, 0});
    kn_tensor_unref(t);
    /* second derivative of logsumexp through create_graph: d2/dx2 = s(1-s) */
    int64_t s2[1] = {2};
    kn_tensor *x = kt_tensor(KN_F64, 1, s2, (double[]){0.3, -0.4});
    kn_tensor_set_requires_grad(x, true);
    kn_autograd_record(true);
    kn_tensor *y = kn_logsumexp(x, 0, NULL, false);
    KT_OK(kn_backward_ex(y, NULL, KN_BACKWARD_CREATE_GRAPH));
    kn_tensor *g = kn_tensor_ref(kn_tensor_grad(x));
    kn_tensor *g0 = kn_slice(g, 0, 0, 1, 1), *g0s = kn_sum(g0, 0, NULL, false);
    kn_tensor_zero_grad(x);
    KT_OK(kn_backward(g0s, NULL));
    kn_autograd_record(false);
    double s0 = 1 / (1 + exp(-0.7));
    kt_check_values("logsumexp", kn_tensor_grad(x), 1, s2,
                    (double[]){s0 * (1 - s0), -s0 * (1 - s0)}, 1e-9, 1e-12);
    kn_tensor_unref(g0s), kn_tensor_unref(g0), kn_tensor_unref(g), kn_tensor_unref(y),
        kn_tensor_unref(x);
}

static kn_tensor *apply_cumsum(kn_tensor *const *in, void *ctx)
{
    return kn_cumsum(in[0], *(int *)ctx);
}

typedef struct sort_ctx_t {
    int axis;
    bool desc;
    int64_t k; /* 0: sort */
} sort_ctx_t;

static kn_tensor *apply_sort_values(kn_tensor *const *in, void *ctx)
{
    const sort_ctx_t *c = ctx;
    kn_tensor *v = NULL, *i = NULL;
    if (c->k)
        kn_topk(in[0], c->k, c->axis, !c->desc, true, &v, &i);
    else
        kn_sort(in[0], c->axis, c->desc, &v, &i);
    kn_tensor_unref(i);
    return v;
}

static void test_grad_axis_ops(void)
{
    int64_t s[3] = {2, 3, 4};
    kn_tensor *x = kt_rand(3, s, -1, 1, 21), *xt = kn_transpose(x, 1, 2);
    kn_tensor *in[1] = {x}, *int_[1] = {xt};
    int axes[3] = {1, -1, 0};
    for (int a = 0; a < 3; a++)
        kt_gradcheck("cumsum", apply_cumsum, 1, in, &axes[a], 1e-6, 1e-6);
    kt_gradcheck("cumsum", apply_cumsum, 1, int_, &axes[0], 1e-6, 1e-6);
    if (kn_op_find("sort")) {
        sort_ctx_t cs[] = {{1, false, 0}, {-1, true, 0}, {0, false, 0}};
        for (int c = 0; c < 3; c++)
            kt_gradcheck("sort", apply_sort_values, 1, in, &cs[c], 1e-6, 1e-6);
        kt_gradcheck("sort", apply_sort_values, 1, int_, &cs[0], 1e-6, 1e-6);
    }
    if (kn_op_find("topk")) {
        sort_ctx_t ct[] = {{1, true, 2}, {-1, false, 3}};
        for (int c = 0; c < 2; c++)
            kt_gradcheck("topk", apply_sort_values, 1, in, &ct[c], 1e-6, 1e-6);
        kt_gradcheck("topk", apply_sort_values, 1, int_, &ct[0], 1e-6, 1e-6);
    }
    kn_tensor_unref(xt), kn_tensor_unref(x);
}

/* argmax, argmin, argsort, all, any: no gradient flows */
static void test_no_grad_ops(void)
{
    int64_t s[2] = {3, 4};
    kn_tensor *x = kt_rand(2, s, -1, 1, 31);
    kn_tensor_set_requires_grad(x, true);
    kn_autograd_record(true);
    kn_tensor *outs[5] = {kn_argmax(x, 1, false), kn_argmin(x, 0, true), kn_argsort(x, 1, false),
                          kn_all(x, 0, NULL, false), kn_any(x, 1, (int[]){1}, false)};
    const char *names[5] = {"argmax", "argmin", "argsort", "all", "any"};
    kn_autograd_record(false);
    for (int i = 0; i < 5; i++) {
        KT_CHECK(outs[i] && !kn_tensor_requires_grad(outs[i]), "%s output has no gradient",
                 names[i]);
        kt_mark(names[i], KT_GRAD);
        kn_tensor_unref(outs[i]);
    }
    KT_CHECK(kn_autograd_tape_size() == 0, "nothing recorded");
    /* sort's indices output carries no gradient either */
    kn_tensor *v = NULL, *ix = NULL;
    kn_autograd_record(true);
    KT_OK(kn_sort(x, 1, false, &v, &ix));
    kn_autograd_record(false);
    KT_CHECK(ix && !kn_tensor_requires_grad(ix), "indices have no gradient");
    kn_tensor_unref(v), kn_tensor_unref(ix), kn_tensor_unref(x);
}

/* ------------------------------------------------------------ bad inputs */
static void test_bad_inputs(void)
{
    int64_t s[3] = {2, 3, 4}, huge[2] = {(int64_t)1 << 29, (int64_t)1 << 29};
    kn_tensor *x = kt_rand(3, s, -1, 1, 41), *xi32 = kn_tensor_zeros(KN_I32, 3, s);
    kn_tensor *xbool = kn_tensor_zeros(KN_BOOL, 3, s);
    red_fn fns[] = {kn_sum, kn_mean, kn_prod, kn_max, kn_min, kn_logsumexp,
                    var_u,  std_b,   norm2,   kn_all, kn_any};
    const char *names[] = {"sum", "mean", "prod", "max", "min", "logsumexp",
                           "var", "std",  "norm", "all", "any"};
    for (int f = 0; f < LEN(fns); f++) {
        const char *op = names[f];
        kt_expect_fail(op, fns[f](NULL, 0, NULL, false), "NULL");
        kt_expect_fail(op, fns[f](x, 1, (int[]){3}, false), "out of range");
        kt_expect_fail(op, fns[f](x, 1, (int[]){-4}, false), "out of range");
        kt_expect_fail(op, fns[f](x, 2, (int[]){1, -2}, false), "twice");
        kt_expect_fail(op, fns[f](x, 9, (int[]){0, 1, 2, 0, 1, 2, 0, 1, 2}, false), "axes");
        kt_expect_fail(op, fns[f](x, 2, NULL, false), "axes");
        /* a huge symbolic input only infers: no data is touched */
        kn_tensor *sym = kn_tensor_symbolic(KN_F32, 2, huge);
        kn_tensor *y = fns[f](sym, 1, (int[]){1}, true);
        KT_CHECK(y && kn_tensor_is_symbolic(y) && kn_tensor_shape(y)[0] == huge[0], "%s: symbolic",
                 op);
        kn_tensor_unref(y);
        kt_expect_fail(op, fns[f](sym, 1, (int[]){2}, true), "out of range");
        kn_tensor_unref(sym);
        /* a shape that overflows cannot be made, and the op reports the NULL */
        int64_t over[2] = {(int64_t)1 << 40, (int64_t)1 << 40};
        kt_expect_fail(op, fns[f](kn_tensor_symbolic(KN_F32, 2, over), 0, NULL, false), "NULL");
    }
    red_fn float_only[] = {kn_mean, kn_logsumexp, var_u, std_u, norm1};
    const char *fo_names[] = {"mean", "logsumexp", "var", "std", "norm"};
    for (int f = 0; f < 5; f++) {
        kt_expect_fail(fo_names[f], float_only[f](xi32, 0, NULL, false), "i32");
        kt_expect_fail(fo_names[f], float_only[f](xbool, 0, NULL, false), "float");
    }
    kt_expect_fail("norm", kn_norm(x, 3, 0, NULL, false), "expected 1 or 2");
    kt_expect_fail("norm", kn_norm(x, 0, 0, NULL, false), "p is 0");
    /* argmax, argmin */
    const char *arg_names[2] = {"argmax", "argmin"};
    kn_tensor *(*args[2])(kn_tensor *, int, bool) = {argmax_wrap, argmin_wrap};
    for (int f = 0; f < 2; f++) {
        kt_expect_fail(arg_names[f], args[f](NULL, 0, false), "NULL");
        kt_expect_fail(arg_names[f], args[f](x, 3, false), "out of range");
        kt_expect_fail(arg_names[f], args[f](x, -4, true), "out of range");
        kt_expect_fail(arg_names[f], args[f](xbool, 0, false), "bool");
    }
    /* cumsum, sort, argsort, topk */
    kn_tensor *v, *ix;
    kt_expect_fail("cumsum", kn_cumsum(NULL, 0), "NULL");
    kt_expect_fail("cumsum", kn_cumsum(x, 3), "out of range");
    kt_expect_fail("cumsum", kn_cumsum(x, -4), "out of range");
    kt_expect_fail_status("sort", kn_sort(NULL, 0, false, &v, &ix), "NULL");
    kt_expect_fail_status("sort", kn_sort(x, 5, false, &v, &ix), "out of range");
    kt_expect_fail_status("sort", kn_sort(x, 0, false, NULL, &ix), "NULL");
    kt_expect_fail("argsort", kn_argsort(x, -5, false), "out of range");
    kt_expect_fail("argsort", kn_argsort(NULL, 0, false), "NULL");
    kt_expect_fail_status("topk", kn_topk(x, 5, 1, true, true, &v, &ix), "k is 5");
    kt_expect_fail_status("topk", kn_topk(x, -1, 1, true, true, &v, &ix), "k is -1");
    kt_expect_fail_status("topk", kn_topk(x, 1, 3, true, true, &v, &ix), "out of range");
    kt_expect_fail_status("topk", kn_topk(x, 1, 0, true, true, &v, NULL), "NULL");
    kt_expect_fail_status("topk", kn_topk(NULL, 1, 0, true, true, &v, &ix), "NULL");
    kn_tensor *sym = kn_tensor_symbolic(KN_F32, 2, huge);
    KT_OK(kn_topk(sym, 3, 1, true, true, &v, &ix));
    KT_CHECK(v && kn_tensor_is_symbolic(v) && kn_tensor_shape(v)[1] == 3, "symbolic topk");
    kn_tensor_unref(v), kn_tensor_unref(ix);
    kt_expect_fail("cumsum", kn_cumsum(sym, 2), "out of range");
    kn_tensor_unref(sym);
    kn_tensor_unref(x), kn_tensor_unref(xi32), kn_tensor_unref(xbool);
}

/* ------------------------------------------------------ allocation walk */
static kn_status walk_std_backward(void *ctx)
{
    (void)ctx;
    int64_t s[2] = {3, 5};
    kn_tensor *x = kn_tensor_full(KN_F64, 2, s, 1.5), *y = NULL, *l = NULL;
    kn_status st = x ? kn_tensor_set_requires_grad(x, true) : kn_last_status();
    if (!st) {
        kn_tensor_set(x, (int64_t[]){0, 0}, 0.25);
        kn_autograd_record(true);
        y = kn_std(x, 1, (int[]){1}, true, false);
        l = y ? kn_logsumexp(y, 0, NULL, false) : NULL;
        kn_autograd_record(false);
        st = l ? kn_backward(l, NULL) : kn_last_status();
    }
    kn_tensor_unref(l), kn_tensor_unref(y), kn_tensor_unref(x);
    return st;
}

static kn_status walk_sort(void *ctx)
{
    (void)ctx;
    int64_t s[2] = {4, 7};
    kn_tensor *x = kn_tensor_arange(KN_F32, 28, 0, -1), *r = x ? kn_reshape(x, 2, s) : NULL;
    kn_tensor *v = NULL, *ix = NULL;
    kn_status st = r ? kn_sort(r, 1, false, &v, &ix) : kn_last_status();
    kn_tensor *c = st ? NULL : kn_cumsum(v, 0);
    if (!st && !c) st = kn_last_status();
    kn_tensor_unref(c), kn_tensor_unref(v), kn_tensor_unref(ix), kn_tensor_unref(r),
        kn_tensor_unref(x);
    return st;
}

static void test_alloc_walk(void)
{
    int n = kt_alloc_walk("std+logsumexp backward", walk_std_backward, NULL);
    KT_CHECK(n > 5, "walked %d failure points", n);
    n = kt_alloc_walk("sort+cumsum", walk_sort, NULL);
    KT_CHECK(n > 3, "walked %d failure points", n);
}

int main(void)
{
    KT_RUN(test_sum_mean);
    KT_RUN(test_prod_max_min);
    KT_RUN(test_argmax_argmin);
    KT_RUN(test_lse_var_std_norm);
    KT_RUN(test_all_any);
    KT_RUN(test_empty_and_size1);
    KT_RUN(test_cumsum);
    KT_RUN(test_sort_argsort);
    KT_RUN(test_topk);
    KT_RUN(test_thread_determinism);
    KT_RUN(test_split_combine);
    KT_RUN(test_grad_reductions);
    KT_RUN(test_grad_special);
    KT_RUN(test_grad_axis_ops);
    KT_RUN(test_no_grad_ops);
    KT_RUN(test_bad_inputs);
    KT_RUN(test_alloc_walk);
    return kt_finish();
}
