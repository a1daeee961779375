/* test_autograd.c — the eager tape: recording, backward through chains and
 * broadcasting, accumulation, retain/free, no_grad, detach, version checks,
 * non-scalar outputs, create_graph (second derivatives). */
#include "harness.h"

static kn_tensor *f_chain(kn_tensor *const *in, void *ctx)
{
    (void)ctx;
    /* exp(a * b) + log(a) / b, with b broadcast over rows */
    kn_tensor *ab = kn_mul(in[0], in[1]);
    kn_tensor *e = kn_exp(ab);
    kn_tensor *l = kn_log(in[0]);
    kn_tensor *q = kn_div(l, in[1]);
    kn_tensor *y = kn_add(e, q);
    kn_tensor *z = kn_sub(y, in[1]);
    kn_tensor_unref(ab), kn_tensor_unref(e), kn_tensor_unref(l), kn_tensor_unref(q),
        kn_tensor_unref(y);
    return z;
}

static void test_chain_gradcheck(void)
{
    int64_t sa[2] = {3, 4}, sb[1] = {4};
    kn_tensor *in[2] = {kt_rand(2, sa, 0.5, 1.5, 1), kt_rand(1, sb, 0.5, 1.5, 2)};
    kt_gradcheck("mul", f_chain, 2, in, NULL, 1e-6, 1e-6);
    kt_mark("add", KT_GRAD), kt_mark("sub", KT_GRAD), kt_mark("div", KT_GRAD);
    kt_mark("exp", KT_GRAD), kt_mark("log", KT_GRAD), kt_mark("expand", KT_GRAD);
    kn_tensor_unref(in[0]), kn_tensor_unref(in[1]);
}

static void test_simple_values(void)
{
    int64_t s[1] = {3};
    kn_tensor *x = kt_tensor(KN_F32, 1, s, (double[]){1, 2, 3});
    kn_tensor_set_requires_grad(x, true);
    kn_autograd_record(true);
    kn_tensor *y = kn_mul(x, x);              /* x^2 */
    kn_tensor *l = kn_sum(y, 0, NULL, false); /* sum x^2 */
    kn_autograd_record(false);
    KT_CHECK(kn_tensor_requires_grad(l), "output requires grad");
    KT_OK(kn_backward(l, NULL));
    kt_check_values("backward", kn_tensor_grad(x), 1, s, (double[]){2, 4, 6}, 0, 1e-6);
    KT_CHECK(kn_autograd_tape_size() == 0, "tape freed after backward");
    /* a second backward through the freed graph is an error */
    kt_expect_fail_status("backward", kn_backward(l, NULL), "does not require");
    kn_tensor_unref(y), kn_tensor_unref(l), kn_tensor_unref(x);
}

static void test_accumulate_and_retain(void)
{
    int64_t s[1] = {2};
    kn_tensor *x = kt_tensor(KN_F64, 1, s, (double[]){1, -1});
    kn_tensor_set_requires_grad(x, true);
    kn_autograd_record(true);
    kn_tensor *y = kn_mul(x, x), *l = kn_sum(y, 0, NULL, false);
    kn_autograd_record(false);
    KT_OK(kn_backward_ex(l, NULL, KN_BACKWARD_RETAIN_GRAPH));
    KT_CHECK(kn_autograd_tape_size() == 2, "retained");
    KT_OK(kn_backward(l, NULL));
    kt_check_values("backward", kn_tensor_grad(x), 1, s, (double[]){4, -4}, 0, 1e-12);
    kn_tensor_zero_grad(x);
    KT_CHECK(kn_tensor_grad(x) == NULL, "zeroed");
    kn_tensor_unref(y), kn_tensor_unref(l), kn_tensor_unref(x);
}

static void test_no_grad_and_detach(void)
{
    int64_t s[1] = {2};
    kn_tensor *x = kt_tensor(KN_F64, 1, s, (double[]){1, 2});
    kn_tensor_set_requires_grad(x, true);
    kn_autograd_record(true);
    kn_no_grad_begin();
    kn_tensor *a = kn_mul(x, x);
    kn_no_grad_end();
    KT_CHECK(!kn_tensor_requires_grad(a) && kn_autograd_tape_size() == 0,
             "nothing recorded in no_grad");
    kn_tensor *d = kn_detach(x);
    KT_CHECK(!kn_tensor_requires_grad(d) && kn_tensor_shares_storage(d, x),
             "detach shares storage");
    kn_tensor *b = kn_mul(d, x); /* gradient flows only through x */
    kn_tensor *l = kn_sum(b, 0, NULL, false);
    kn_autograd_record(false);
    KT_OK(kn_backward(l, NULL));
    kt_check_values("detach", kn_tensor_grad(x), 1, s, (double[]){1, 2}, 0, 1e-12);
    kn_tensor_unref(a), kn_tensor_unref(d), kn_tensor_unref(b), kn_tensor_unref(l),
        kn_tensor_unref(x);
}

static void test_inplace_detected(void)
{
    int64_t s[1] = {2};
    kn_tensor *x = kt_tensor(KN_F64, 1, s, (double[]){1, 2});
    kn_tensor *w = kt_tensor(KN_F64, 1, s, (double[]){3, 4});
    kn_tensor_set_requires_grad(x, true);
    kn_autograd_record(true);
    kn_tensor *y = kn_mul(x, w), *l = kn_sum(y, 0, NULL, false);
    kn_autograd_record(false);
    KT_OK(kn_tensor_fill_(w, 0)); /* w is saved for mul's gradient */
    kt_expect_fail_status("backward", kn_backward(l, NULL), "modified in place");
    kn_tensor_unref(y), kn_tensor_unref(l), kn_tensor_unref(x), kn_tensor_unref(w);
}

static void test_nonscalar_needs_grad(void)
{
    int64_t s[1] = {2};
    kn_tensor *x = kt_tensor(KN_F64, 1, s, (double[]){1, 2});
    kn_tensor_set_requires_grad(x, true);
    kn_autograd_record(true);
    kn_tensor *y = kn_exp(x);
    kn_autograd_record(false);
    kt_expect_fail_status("backward", kn_backward(y, NULL), "upstream gradient");
    kn_tensor *g = kt_tensor(KN_F64, 1, s, (double[]){1, 10});
    KT_OK(kn_backward(y, g));
    kt_check_values("backward", kn_tensor_grad(x), 1, s, (double[]){exp(1), 10 * exp(2)}, 1e-12, 0);
    kn_tensor_unref(g), kn_tensor_unref(y), kn_tensor_unref(x);
    int64_t s3[1] = {3};
    kn_tensor *z = kn_tensor_zeros(KN_I32, 1, s3);
    kt_expect_fail_status("set_requires_grad", kn_tensor_set_requires_grad(z, true), "float");
    kn_tensor_unref(z);
}

static void test_second_derivative(void)
{
    /* y = x^3 via x*x*x; dy/dx = 3x^2, d2y/dx2 = 6x through create_graph */
    int64_t s[1] = {1};
    kn_tensor *x = kt_tensor(KN_F64, 1, s, (double[]){0.7});
    kn_tensor_set_requires_grad(x, true);
    kn_autograd_record(true);
    kn_tensor *x2 = kn_mul(x, x), *y = kn_mul(x2, x);
    KT_OK(kn_backward_ex(y, NULL, KN_BACKWARD_CREATE_GRAPH));
    kn_tensor *g = kn_tensor_ref(kn_tensor_grad(x));
    kt_check_values("backward", g, 1, s, (double[]){3 * 0.49}, 1e-12, 0);
    KT_CHECK(kn_tensor_requires_grad(g), "gradient is differentiable under create_graph");
    kn_tensor_zero_grad(x);
    KT_OK(kn_backward(g, NULL));
    kn_autograd_record(false);
    kt_check_values("backward", kn_tensor_grad(x), 1, s, (double[]){6 * 0.7}, 1e-12, 0);
    kn_tensor_unref(g), kn_tensor_unref(x2), kn_tensor_unref(y), kn_tensor_unref(x);
}

int main(void)
{
    KT_RUN(test_chain_gradcheck);
    KT_RUN(test_simple_values);
    KT_RUN(test_accumulate_and_retain);
    KT_RUN(test_no_grad_and_detach);
    KT_RUN(test_inplace_detected);
    KT_RUN(test_nonscalar_needs_grad);
    KT_RUN(test_second_derivative);
    return kt_finish();
}
