/* test_linalg.c — matmul (NumPy rules, transposes, batch broadcasting,
 * strided views, zero-size dims), linear and addmm: values against PyTorch
 * (tests/golden/linalg.h), f32/f16/bf16, gradients by finite differences,
 * bad inputs, and an allocation-failure walk. */
#include "harness.h"

#include "golden/linalg.h"

#include <stdlib.h>

#define LEN(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Compares t with ref (any float dtypes, same shape). */
static void check_close(const char *op, const kn_tensor *t, const kn_tensor *ref, double rtol,
                        double atol)
{
    KT_NOTNULL(ref);
    if (!ref) return;
    int64_t n = kn_tensor_numel(ref);
    double *buf = malloc(sizeof(double) * (size_t)(n ? n : 1));
    KT_OK(kn_tensor_copy_to(ref, KN_F64, buf, sizeof(double) * (size_t)n));
    kt_check_values(op, t, kn_tensor_ndim(ref), kn_tensor_shape(ref), buf, rtol, atol);
    free(buf);
}

typedef struct mm_case {
    const char *name;
    const kt_array *a, *b, *y;
    bool ta, tb;
} mm_case;

static const mm_case mm_cases[] = {
    {"2d", &mm_2d_a, &mm_2d_b, &mm_2d_y, false, false},
    {"vec.vec", &mm_vv_a, &mm_vv_b, &mm_vv_y, false, false},
    {"vec.mat", &mm_vm_a, &mm_vm_b, &mm_vm_y, false, false},
    {"mat.vec", &mm_mv_a, &mm_mv_b, &mm_mv_y, false, false},
    {"batch broadcast", &mm_bcast_a, &mm_bcast_b, &mm_bcast_y, false, false},
    {"vec.batch", &mm_vb_a, &mm_vb_b, &mm_vb_y, false, false},
    {"ta tb", &mm_tt_a, &mm_tt_b, &mm_tt_y, true, true},
    {"ta batch", &mm_ta_a, &mm_ta_b, &mm_ta_y, true, false},
    {"tb batch", &mm_tb_a, &mm_tb_b, &mm_tb_y, false, true},
    {"odd 5x17x13", &mm_odd_a, &mm_odd_b, &mm_odd_y, false, false},
    {"k = 0", &mm_k0_a, &mm_k0_b, &mm_k0_y, false, false},
    {"m = 0", &mm_m0_a, &mm_m0_b, &mm_m0_y, false, false},
    {"1x7x1", &mm_one_a, &mm_one_b, &mm_one_y, false, false},
};

static void test_matmul_values(void)
{
    for (int i = 0; i < LEN(mm_cases); i++) {
        const mm_case *c = &mm_cases[i];
        kn_tensor *a = kt_from_array(c->a, KN_F64), *b = kt_from_array(c->b, KN_F64);
        kn_tensor *y = kn_matmul_t(a, b, c->ta, c->tb);
        if (!kt_check_array("matmul", y, c->y, 1e-12, 1e-12))
            fprintf(stderr, "  case %s\n", c->name);
        kn_tensor_unref(y), kn_tensor_unref(a), kn_tensor_unref(b);
        a = kt_from_array(c->a, KN_F32), b = kt_from_array(c->b, KN_F32);
        y = kn_matmul_t(a, b, c->ta, c->tb);
        KT_CHECK(y && kn_tensor_dtype(y) == KN_F32, "f32 in, f32 out");
        if (!kt_check_array("matmul", y, c->y, 1e-5, 1e-5))
            fprintf(stderr, "  case %s (f32)\n", c->name);
        kn_tensor_unref(y), kn_tensor_unref(a), kn_tensor_unref(b);
    }
    /* kn_matmul is matmul_t without transposes */
    kn_tensor *a = kt_from_array(&mm_bcast_a, KN_F64), *b = kt_from_array(&mm_bcast_b, KN_F64);
    kn_tensor *y = kn_matmul(a, b);
    kt_check_array("matmul", y, &mm_bcast_y, 1e-12, 1e-12);
    kn_tensor_unref(y), kn_tensor_unref(a), kn_tensor_unref(b);
}

/* f16/bf16 against the f64 kernel run on the same (rounded) inputs: only the
 * output rounding remains, since they compute in f32. */
static void test_matmul_low_precision(void)
{
    const kn_dtype dts[2] = {KN_F16, KN_BF16};
    const double rtol[2] = {1.0 / 1024, 1.0 / 128};
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < LEN(mm_cases); i++) {
            const mm_case *c = &mm_cases[i];
            kn_tensor *a = kt_from_array(c->a, dts[d]), *b = kt_from_array(c->b, dts[d]);
            kn_tensor *a64 = kn_cast(a, KN_F64), *b64 = kn_cast(b, KN_F64);
            kn_tensor *y = kn_matmul_t(a, b, c->ta, c->tb),
                      *ref = kn_matmul_t(a64, b64, c->ta, c->tb);
            KT_CHECK(y && kn_tensor_dtype(y) == dts[d], "low precision in, same out");
            check_close("matmul", y, ref, rtol[d], 1e-4);
            kn_tensor_unref(y), kn_tensor_unref(ref), kn_tensor_unref(a), kn_tensor_unref(b);
            kn_tensor_unref(a64), kn_tensor_unref(b64);
        }
}

/* Transposed views instead of flags, broadcast (stride 0) views, and a B
 * whose rows are not contiguous (the kernel packs it). */
static void test_matmul_strided(void)
{
    const kn_dtype dts[2] = {KN_F64, KN_F32};
    for (int d = 0; d < 2; d++) {
        kn_tensor *at = kt_from_array(&mm_tt_a, dts[d]), *bt = kt_from_array(&mm_tt_b, dts[d]);
        kn_tensor *a = kn_transpose(at, 0, 1), *b = kn_transpose(bt, 0, 1);
        KT_CHECK(a && b && !kn_tensor_is_contiguous(a) && !kn_tensor_is_contiguous(b), "views");
        kn_tensor *y = kn_matmul(a, b);
        kt_check_array("matmul", y, &mm_tt_y, 1e-5, 1e-5);
        kn_tensor_unref(y);
        /* transposed view and flag cancel out */
        y = kn_matmul_t(at, b, true, false);
        kt_check_array("matmul", y, &mm_tt_y, 1e-5, 1e-5);
        kn_tensor_unref(y);
        kn_tensor_unref(a), kn_tensor_unref(b), kn_tensor_unref(at), kn_tensor_unref(bt);
    }
    /* a batch of 4 identical (3,4) matrices as a stride-0 view */
    kn_tensor *a = kt_from_array(&mm_2d_a, KN_F64), *b = kt_from_array(&mm_2d_b, KN_F64);
    kn_tensor *ae = kn_expand(a, 3, (int64_t[]){4, 3, 4});
    kn_tensor *y = kn_matmul(ae, b), *y0 = kn_matmul(a, b);
    kn_tensor *ye = kn_expand(y0, 3, (int64_t[]){4, 3, 5});
    check_close("matmul", y, ye, 0, 0);
    kn_tensor_unref(y), kn_tensor_unref(y0), kn_tensor_unref(ye), kn_tensor_unref(ae);
    kn_tensor_unref(a), kn_tensor_unref(b);
}

/* The same bits whatever the number of threads. */
static void test_matmul_thread_invariance(void)
{
    int64_t sa[3] = {3, 37, 29}, sb[2] = {29, 41};
    kn_tensor *a64 = kt_rand(3, sa, -1, 1, 5), *b64 = kt_rand(2, sb, -1, 1, 6);
    kn_tensor *a = kn_cast(a64, KN_F32), *b = kn_cast(b64, KN_F32);
    int old = kn_get_num_threads();
    kn_set_num_threads(1);
    kn_tensor *y1 = kn_matmul(a, b);
    kn_set_num_threads(4);
    kn_tensor *y4 = kn_matmul(a, b);
    kn_set_num_threads(old);
    KT_CHECK(kt_equal_bits(y1, y4), "1 and 4 threads give the same bits");
    kn_tensor_unref(y1), kn_tensor_unref(y4), kn_tensor_unref(a), kn_tensor_unref(b);
    kn_tensor_unref(a64), kn_tensor_unref(b64);
}

/* ---- gradients */
typedef struct mm_grad_ctx {
    bool ta, tb;
} mm_grad_ctx;

static kn_tensor *f_matmul(kn_tensor *const *in, void *ctx)
{
    const mm_grad_ctx *c = ctx;
    return kn_matmul_t(in[0], in[1], c->ta, c->tb);
}

static void test_matmul_grad(void)
{
    static const struct {
        int na, nb;
        int64_t sa[4], sb[4];
        bool ta, tb;
    } cases[] = {
        {2, 2, {3, 4}, {4, 5}, false, false},
        {1, 1, {4}, {4}, false, false},
        {1, 2, {4}, {4, 5}, false, false},
        {2, 1, {3, 4}, {4}, false, false},
        {4, 3, {2, 1, 3, 4}, {3, 4, 2}, false, false},
        {1, 3, {4}, {2, 4, 3}, false, false},
        {3, 1, {2, 3, 4}, {4}, false, false},
        {2, 2, {4, 3}, {5, 4}, true, true},
        {3, 2, {2, 4, 3}, {4, 5}, true, false},
        {2, 3, {3, 4}, {2, 5, 4}, false, true},
        {3, 3, {2, 4, 3}, {1, 5, 4}, true, true},
        {1, 2, {4}, {5, 4}, true, true}, /* transpose of a vector: no effect */
    };
    for (int i = 0; i < LEN(cases); i++) {
        kn_tensor *in[2] = {kt_rand(cases[i].na, cases[i].sa, -1, 1, 10 + i),
                            kt_rand(cases[i].nb, cases[i].sb, -1, 1, 50 + i)};
        mm_grad_ctx c = {cases[i].ta, cases[i].tb};
        if (!kt_gradcheck("matmul", f_matmul, 2, in, &c, 1e-6, 1e-7))
            fprintf(stderr, "  case %d\n", i);
        kn_tensor_unref(in[0]), kn_tensor_unref(in[1]);
    }
}

/* ---- linear */
static void test_linear_values(void)
{
    const kn_dtype dts[2] = {KN_F64, KN_F32};
    for (int d = 0; d < 2; d++) {
        double tol = d ? 1e-5 : 1e-12;
        kn_tensor *x = kt_from_array(&lin_x, dts[d]), *w = kt_from_array(&lin_w, dts[d]);
        kn_tensor *b = kt_from_array(&lin_b, dts[d]), *xv = kt_from_array(&lin_xv, dts[d]);
        kn_tensor *y = kn_linear(x, w, b);
        kt_check_array("linear", y, &lin_y, tol, tol);
        kn_tensor_unref(y);
        y = kn_linear(x, w, NULL);
        kt_check_array("linear", y, &lin_y_nobias, tol, tol);
        kn_tensor_unref(y);
        y = kn_linear(xv, w, b);
        kt_check_array("linear", y, &lin_yv, tol, tol);
        kn_tensor_unref(y);
        /* a non-contiguous x: (3,2,4) contiguous seen as (2,3,4) */
        kn_tensor *xt = kn_transpose(x, 0, 1), *xc = kn_contiguous(xt),
                  *xs = kn_transpose(xc, 0, 1);
        KT_CHECK(xs && !kn_tensor_is_contiguous(xs), "strided x");
        y = kn_linear(xs, w, b);
        kt_check_array("linear", y, &lin_y, tol, tol);
        kn_tensor_unref(y), kn_tensor_unref(xt), kn_tensor_unref(xc), kn_tensor_unref(xs);
        kn_tensor_unref(x), kn_tensor_unref(w), kn_tensor_unref(b), kn_tensor_unref(xv);
    }
    kn_tensor *x = kt_from_array(&lin_x, KN_BF16), *w = kt_from_array(&lin_w, KN_BF16);
    kn_tensor *b = kt_from_array(&lin_b, KN_BF16);
    kn_tensor *x64 = kn_cast(x, KN_F64), *w64 = kn_cast(w, KN_F64), *b64 = kn_cast(b, KN_F64);
    kn_tensor *y = kn_linear(x, w, b), *ref = kn_linear(x64, w64, b64);
    KT_CHECK(y && kn_tensor_dtype(y) == KN_BF16, "bf16 out");
    /* two roundings: after the matmul and after the bias add */
    check_close("linear", y, ref, 2.0 / 128, 1e-2);
    kn_tensor_unref(y), kn_tensor_unref(ref), kn_tensor_unref(x), kn_tensor_unref(w);
    kn_tensor_unref(b), kn_tensor_unref(x64), kn_tensor_unref(w64), kn_tensor_unref(b64);
}

static kn_tensor *f_linear(kn_tensor *const *in, void *ctx)
{
    (void)ctx;
    return kn_linear(in[0], in[1], in[2]);
}

static void test_linear_grad(void)
{
    int64_t sx[3] = {2, 3, 4}, sw[2] = {5, 4}, sb[1] = {5}, sv[1] = {4};
    kn_tensor *in[3] = {kt_rand(3, sx, -1, 1, 1), kt_rand(2, sw, -1, 1, 2),
                        kt_rand(1, sb, -1, 1, 3)};
    kt_gradcheck("linear", f_linear, 3, in, NULL, 1e-6, 1e-7);
    kn_tensor *nob[3] = {in[0], in[1], NULL};
    kt_gradcheck("linear", f_linear, 3, nob, NULL, 1e-6, 1e-7);
    kn_tensor *v[3] = {kt_rand(1, sv, -1, 1, 4), in[1], in[2]};
    kt_gradcheck("linear", f_linear, 3, v, NULL, 1e-6, 1e-7);
    kn_tensor_unref(v[0]);
    for (int i = 0; i < 3; i++)
        kn_tensor_unref(in[i]);
}

/* ---- addmm */
static void test_addmm_values(void)
{
    const kn_dtype dts[2] = {KN_F64, KN_F32};
    for (int d = 0; d < 2; d++) {
        double tol = d ? 1e-5 : 1e-12;
        kn_tensor *c = kt_from_array(&addmm_c, dts[d]), *a = kt_from_array(&addmm_a, dts[d]);
        kn_tensor *b = kt_from_array(&addmm_b, dts[d]), *cf = kt_from_array(&addmm_cf, dts[d]);
        kn_tensor *y = kn_addmm(c, a, b, 0.5, 2.0);
        kt_check_array("addmm", y, &addmm_y, tol, tol);
        kn_tensor_unref(y);
        y = kn_addmm(cf, a, b, 1, 1);
        kt_check_array("addmm", y, &addmm_yf, tol, tol);
        kn_tensor_unref(y);
        /* beta = 0 ignores c, even its NaNs */
        kn_tensor *cn = kn_tensor_full(dts[d], 2, (int64_t[]){3, 5}, NAN);
        y = kn_addmm(cn, a, b, 0, -1.5);
        kt_check_array("addmm", y, &addmm_y0, tol, tol);
        kn_tensor_unref(y), kn_tensor_unref(cn);
        kn_tensor_unref(c), kn_tensor_unref(a), kn_tensor_unref(b), kn_tensor_unref(cf);
    }
    kn_tensor *c = kt_from_array(&addmm_c, KN_F16), *a = kt_from_array(&addmm_a, KN_F16);
    kn_tensor *b = kt_from_array(&addmm_b, KN_F16);
    kn_tensor *c64 = kn_cast(c, KN_F64), *a64 = kn_cast(a, KN_F64), *b64 = kn_cast(b, KN_F64);
    kn_tensor *y = kn_addmm(c, a, b, 0.5, 2.0), *ref = kn_addmm(c64, a64, b64, 0.5, 2.0);
    KT_CHECK(y && kn_tensor_dtype(y) == KN_F16, "f16 out");
    check_close("addmm", y, ref, 4.0 / 1024, 4e-3); /* rounded after each of 4 steps */
    kn_tensor_unref(y), kn_tensor_unref(ref), kn_tensor_unref(c), kn_tensor_unref(a);
    kn_tensor_unref(b), kn_tensor_unref(c64), kn_tensor_unref(a64), kn_tensor_unref(b64);
}

static kn_tensor *f_addmm(kn_tensor *const *in, void *ctx)
{
    const double *ba = ctx;
    return kn_addmm(in[0], in[1], in[2], ba[0], ba[1]);
}

static void test_addmm_grad(void)
{
    int64_t sc[1] = {5}, sf[2] = {3, 5}, sa[2] = {3, 4}, sb[2] = {4, 5};
    kn_tensor *in[3] = {kt_rand(1, sc, -1, 1, 1), kt_rand(2, sa, -1, 1, 2),
                        kt_rand(2, sb, -1, 1, 3)};
    double ba[2] = {0.5, 2.0}, ones[2] = {1, 1}, zero_beta[2] = {0, -0.7};
    kt_gradcheck("addmm", f_addmm, 3, in, ba, 1e-6, 1e-7);
    kt_gradcheck("addmm", f_addmm, 3, in, zero_beta, 1e-6, 1e-7);
    kn_tensor *full[3] = {kt_rand(2, sf, -1, 1, 4), in[1], in[2]};
    kt_gradcheck("addmm", f_addmm, 3, full, ones, 1e-6, 1e-7);
    kn_tensor_unref(full[0]);
    for (int i = 0; i < 3; i++)
        kn_tensor_unref(in[i]);
}

/* ---- bad inputs */
static kn_tensor *sym(kn_dtype dt, int nd, const int64_t *shape)
{
    return kn_tensor_symbolic(dt, nd, shape);
}

static void test_bad_inputs(void)
{
    int64_t s34[2] = {3, 4}, s45[2] = {4, 5}, s56[2] = {5, 6}, s234[3] = {2, 3, 4},
            s345[3] = {3, 4, 5};
    int64_t s4[1] = {4}, s5[1] = {5}, s3[1] = {3}, s135[3] = {3, 1, 5};
    kn_tensor *a = kn_tensor_zeros(KN_F32, 2, s34), *b = kn_tensor_zeros(KN_F32, 2, s45);
    kn_tensor *c = kn_tensor_zeros(KN_F32, 2, s56), *a3 = kn_tensor_zeros(KN_F32, 3, s234);
    kn_tensor *b3 = kn_tensor_zeros(KN_F32, 3, s345), *a64 = kn_tensor_zeros(KN_F64, 2, s34);
    kn_tensor *ai = kn_tensor_zeros(KN_I32, 2, s34), *bi = kn_tensor_zeros(KN_I32, 2, s45);
    kn_tensor *sc = kn_tensor_scalar(KN_F32, 1), *v4 = kn_tensor_zeros(KN_F32, 1, s4);
    kn_tensor *v5 = kn_tensor_zeros(KN_F32, 1, s5), *v3 = kn_tensor_zeros(KN_F32, 1, s3);
    kn_tensor *v5d = kn_tensor_zeros(KN_F64, 1, s5), *c135 = kn_tensor_zeros(KN_F32, 3, s135);
    int64_t big_a[2] = {(int64_t)1 << 40, 2}, big_b[2] = {2, (int64_t)1 << 40};
    kn_tensor *ha = sym(KN_F32, 2, big_a), *hb = sym(KN_F32, 2, big_b);

    kt_expect_fail("matmul", kn_matmul(NULL, b), "input 0 is NULL");
    kt_expect_fail("matmul", kn_matmul(a, NULL), "input 1 is NULL");
    kt_expect_fail("matmul", kn_matmul(sc, b), "0-d");
    kt_expect_fail("matmul", kn_matmul(a, c), "inner dims differ");
    kt_expect_fail("matmul", kn_matmul_t(a, b, true, false), "(transposed)");
    kt_expect_fail("matmul", kn_matmul(a3, b3), "do not broadcast");
    kt_expect_fail("matmul", kn_matmul(a64, b), "is f64 but");
    kt_expect_fail("matmul", kn_matmul(ai, bi), "float");
    kt_expect_fail("matmul", kn_matmul(v4, v5), "inner dims");
    kt_expect_fail("matmul", kn_matmul(ha, hb), "overflows");
    /* symbolic inputs of a fitting size infer a symbolic output */
    kn_tensor *sa = sym(KN_F32, 2, big_a), *sb = sym(KN_F32, 2, (int64_t[]){2, 3});
    kn_tensor *sy = kn_matmul(sa, sb);
    KT_CHECK(sy && kn_tensor_is_symbolic(sy) && kn_tensor_shape(sy)[0] == big_a[0] &&
                 kn_tensor_shape(sy)[1] == 3,
             "symbolic matmul infers (2^40, 3)");
    kn_tensor_unref(sa), kn_tensor_unref(sb), kn_tensor_unref(sy);

    kt_expect_fail("linear", kn_linear(NULL, b, NULL), "input 0 is NULL");
    kt_expect_fail("linear", kn_linear(a, v4, NULL), "weight has 1 dims");
    kt_expect_fail("linear", kn_linear(a, c, NULL), "x has 4 features");
    kt_expect_fail("linear", kn_linear(sc, c, NULL), "0-d");
    kt_expect_fail("linear", kn_linear(v4, b3, NULL), "weight has 3 dims");
    kn_tensor *w54 = kn_tensor_zeros(KN_F32, 2, (int64_t[]){5, 4});
    kt_expect_fail("linear", kn_linear(a, w54, v4), "bias has shape (4)");
    kt_expect_fail("linear", kn_linear(a, w54, v5d), "is f32 but");
    kt_expect_fail("linear", kn_linear(ai, w54, NULL), "float");

    kt_expect_fail("addmm", kn_addmm(NULL, a, b, 1, 1), "input 0 is NULL");
    kt_expect_fail("addmm", kn_addmm(v5, a3, b, 1, 1), "must be 2-D");
    kt_expect_fail("addmm", kn_addmm(v5, a, c, 1, 1), "inner dims differ");
    kt_expect_fail("addmm", kn_addmm(v3, a, b, 1, 1), "broadcast");
    kt_expect_fail("addmm", kn_addmm(c135, a, b, 1, 1), "does not broadcast");
    kt_expect_fail("addmm", kn_addmm(v5d, a, b, 1, 1), "is f64 but");
    kt_expect_fail("addmm", kn_addmm(v5, ai, bi, 1, 1), "float");
    kt_expect_fail("addmm", kn_addmm(sc, ha, hb, 1, 1), "overflows");

    kn_tensor *all[] = {a, b, c, a3, b3, a64, ai, bi, sc, v4, v5, v3, v5d, c135, ha, hb, w54};
    for (int i = 0; i < LEN(all); i++)
        kn_tensor_unref(all[i]);
}

/* ---- allocation failures: a packed f16 matmul and linear + backward */
static kn_status walk_linear(void *ctx)
{
    (void)ctx;
    int64_t sx[3] = {2, 3, 4}, sw[2] = {4, 5}, sb[1] = {5};
    kn_status s = KN_OK;
    kn_tensor *x = kn_tensor_ones(KN_F32, 3, sx), *wt = kn_tensor_ones(KN_F16, 2, sw);
    kn_tensor *b = kn_tensor_ones(KN_F32, 1, sb);
    kn_tensor *w = kn_transpose(wt, 0, 1); /* (5, 4), strided */
    kn_tensor *x16 = kn_cast(x, KN_F16), *y16 = kn_matmul_t(x16, w, false, true);
    kn_tensor *w32 = kn_cast(w, KN_F32), *y = NULL, *l = NULL;
    if (!y16 || !w32) s = kn_last_status();
    if (!s && (s = kn_tensor_set_requires_grad(x, true)) == KN_OK) {
        kn_autograd_record(true);
        y = kn_linear(x, w32, b);
        l = kn_sum(y, 0, NULL, false);
        kn_autograd_record(false);
        s = l ? kn_backward(l, NULL) : kn_last_status();
    }
    kn_tensor *all[] = {x, wt, b, w, x16, y16, w32, y, l};
    for (int i = 0; i < LEN(all); i++)
        kn_tensor_unref(all[i]);
    return s;
}

static void test_alloc_walk(void)
{
    int n = kt_alloc_walk("linear", walk_linear, NULL);
    KT_CHECK(n > 5 && n < 1000, "walked %d failure points, then succeeded", n);
}

int main(void)
{
    KT_RUN(test_matmul_values);
    KT_RUN(test_matmul_low_precision);
    KT_RUN(test_matmul_strided);
    KT_RUN(test_matmul_thread_invariance);
    KT_RUN(test_matmul_grad);
    KT_RUN(test_linear_values);
    KT_RUN(test_linear_grad);
    KT_RUN(test_addmm_values);
    KT_RUN(test_addmm_grad);
    KT_RUN(test_bad_inputs);
    KT_RUN(test_alloc_walk);
    return kt_finish();
}
