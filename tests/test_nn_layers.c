/* test_nn_layers.c — the Gluon-style layers and initializers: every layer's
 * output, input gradient and parameter gradients against torch.nn with the
 * same weights (eager, then hybridized: both must match PyTorch), batch
 * norm's running statistics, finite-difference gradients in f64, deferred
 * sizes and their errors, sharing, freezing, the trainable list, parameter
 * maps through a safetensors file, and the initializers' distributions,
 * orthogonality, seeding and errors. */
#include "harness.h"

#include "golden/nn_layers.h"

#include <stdlib.h>
#include <unistd.h>

/* ---------------------------------------------------------------- helpers */
static int param_index(kn_block *b, const char *name)
{
    for (int i = 0; i < kn_block_num_params(b); i++)
        if (!strcmp(kn_block_param_name(b, i), name)) return i;
    return -1;
}

/* max |a - b| over two tensors of one shape (inf when either is missing). */
static kn_tensor *param(kn_block *b, const char *name)
{
    int i = param_index(b, name);
    return i < 0 ? NULL : kn_block_param_at(b, i);
}

/* Copies a golden array into parameter `name` (shapes must agree). */
static bool set_param(kn_block *b, const char *name, const kt_array *a)
{
    kn_tensor *p = param(b, name);
    KT_CHECK(p != NULL, "no parameter '%s'", name);
    if (!p) return false;
    kn_tensor *v = kt_from_array(a, kn_tensor_dtype(p));
    kn_no_grad_begin();
    kn_status s = kn_tensor_copy_(p, v);
    kn_no_grad_end();
    kn_tensor_unref(v);
    KT_OK(s);
    return s == KN_OK;
}

static void load_case(kn_block *b, const nn_case *c)
{
    for (int i = 0; i < c->n_params; i++) {
        set_param(b, c->params[i].name, c->params[i].value);
        kn_tensor *p = param(b, c->params[i].name);
        if (p) kn_tensor_zero_grad(p);
    }
}

/* Forward (recording), loss = sum(y * g), backward; checks y, dx, the
 * parameter grads and the running statistics after. */
static void check_case(const char *op, kn_block *b, const nn_case *c, const kt_array *const *after,
                       double rtol, double atol)
{
    load_case(b, c);
    kn_tensor *x = kt_from_array(c->x, KN_F32), *g = kt_from_array(c->g, KN_F32), *y = NULL;
    kn_tensor_set_requires_grad(x, true);
    kn_autograd_record(true);
    KT_OK(kn_block_forward(b, 1, &x, 1, &y));
    kn_tensor *yg = y ? kn_mul(y, g) : NULL;
    kn_tensor *loss = yg ? kn_sum(yg, 0, NULL, false) : NULL;
    kn_autograd_record(false);
    if (loss) KT_OK(kn_backward(loss, NULL));
    if (y) {
        kt_check_array(op, y, c->y, rtol, atol);
        kn_tensor *dx = kn_tensor_grad(x);
        KT_CHECK(dx != NULL, "%s: no input grad", op);
        if (dx) kt_check_array(op, dx, c->dx, rtol, atol);
        for (int i = 0; i < c->n_params; i++) {
            kn_tensor *p = param(b, c->params[i].name);
            if (!p) continue;
            if (c->params[i].grad) {
                KT_CHECK(kn_tensor_grad(p) != NULL, "%s: no grad for %s", op, c->params[i].name);
                if (kn_tensor_grad(p))
                    kt_check_array(op, kn_tensor_grad(p), c->params[i].grad, rtol, atol);
            } else if (after && after[i]) {
                kt_check_array(op, p, after[i], rtol, atol);
            }
        }
    }
    kn_autograd_tape_free();
    kn_tensor_unref(x), kn_tensor_unref(g), kn_tensor_unref(y), kn_tensor_unref(yg),
        kn_tensor_unref(loss);
}

/* Eager, then hybridized (traced once, run twice): both against PyTorch. */
static void check_both(const char *op, kn_block *b, const nn_case *c, const kt_array *const *after,
                       bool training)
{
    KT_NOTNULL(b);
    if (!b) return;
    kn_block_set_training(b, training);
    check_case(op, b, c, after, 1e-4, 2e-5);
    KT_OK(kn_block_hybridize(b, KN_HYBRIDIZE_ON));
    check_case(op, b, c, after, 1e-4, 2e-5);
    check_case(op, b, c, after, 1e-4, 2e-5);
    KT_CHECK(kn_block_num_traces(b) == 1, "%s: traced %lld times", op,
             (long long)kn_block_num_traces(b));
    kn_block_free(b);
}

static kn_block *conv(kn_conv_layer l)
{
    return kn_nn_conv(&l);
}

/* ---------------------------------------------------------------- golden layers */
static void test_dense_conv_golden(void)
{
    check_both("nn_dense", kn_nn_dense(5, 4, true, KN_ACT_TANH), &dense_tanh, NULL, true);
    check_both("nn_dense", kn_nn_dense(5, 4, false, KN_ACT_RELU), &dense_3d, NULL, true);
    check_both("nn_conv", kn_nn_conv2d(3, 4, 3, 2, 1, KN_ACT_RELU), &conv2d, NULL, true);
    check_both("nn_conv",
               conv((kn_conv_layer){.ndim = 2,
                                    .in_channels = 3,
                                    .channels = 4,
                                    .kernel = {3, 3},
                                    .stride = {2, 2},
                                    .padding = {1, 1},
                                    .act = KN_ACT_RELU,
                                    .layout = KN_LAYOUT_NHWC}),
               &conv2d_nhwc, NULL, true);
    check_both("nn_conv",
               conv((kn_conv_layer){.ndim = 2,
                                    .in_channels = 4,
                                    .channels = 6,
                                    .kernel = {3, 3},
                                    .padding = {2, 2},
                                    .dilation = {2, 2},
                                    .groups = 2,
                                    .no_bias = true}),
               &conv2d_gd, NULL, true);
    check_both("nn_conv",
               conv((kn_conv_layer){.ndim = 1,
                                    .in_channels = 4,
                                    .channels = 3,
                                    .kernel = {3},
                                    .stride = {2},
                                    .padding = {1}}),
               &conv1d, NULL, true);
    check_both(
        "nn_conv",
        conv((kn_conv_layer){
            .ndim = 3, .in_channels = 2, .channels = 3, .kernel = {3, 3, 3}, .padding = {1, 1, 1}}),
        &conv3d, NULL, true);
    check_both("nn_conv",
               conv((kn_conv_layer){.ndim = 2,
                                    .in_channels = 4,
                                    .channels = 3,
                                    .kernel = {3, 3},
                                    .stride = {2, 2},
                                    .padding = {1, 1},
                                    .output_padding = {1, 1},
                                    .transposed = true}),
               &convt, NULL, true);
    check_both("nn_conv",
               conv((kn_conv_layer){.ndim = 2,
                                    .in_channels = 4,
                                    .channels = 6,
                                    .kernel = {3, 3},
                                    .stride = {2, 2},
                                    .groups = 2,
                                    .transposed = true}),
               &convt_grp, NULL, true);
    check_both("nn_conv",
               conv((kn_conv_layer){.ndim = 1,
                                    .in_channels = 4,
                                    .channels = 3,
                                    .kernel = {3},
                                    .stride = {2},
                                    .padding = {1},
                                    .output_padding = {1},
                                    .transposed = true}),
               &convt1d, NULL, true);
    check_both("nn_conv",
               conv((kn_conv_layer){.ndim = 1,
                                    .in_channels = 4,
                                    .channels = 6,
                                    .kernel = {2},
                                    .stride = {3},
                                    .padding = {1},
                                    .dilation = {2},
                                    .output_padding = {2},
                                    .groups = 2,
                                    .transposed = true,
                                    .layout = KN_LAYOUT_NHWC}),
               &convt1d_nlc, NULL, true);
    check_both("nn_conv",
               conv((kn_conv_layer){.ndim = 3,
                                    .in_channels = 2,
                                    .channels = 3,
                                    .kernel = {2, 3, 2},
                                    .stride = {2, 1, 2},
                                    .padding = {0, 1, 1},
                                    .output_padding = {1, 0, 1},
                                    .transposed = true}),
               &convt3d, NULL, true);
    check_both("nn_conv",
               conv((kn_conv_layer){.ndim = 3,
                                    .in_channels = 4,
                                    .channels = 2,
                                    .kernel = {2, 2, 2},
                                    .stride = {2, 2, 2},
                                    .groups = 2,
                                    .no_bias = true,
                                    .transposed = true,
                                    .act = KN_ACT_RELU,
                                    .layout = KN_LAYOUT_NHWC}),
               &convt3d_ndhwc, NULL, true);
}

static void test_batch_norm_golden(void)
{
    /* hybridized runs start again from the golden statistics (load_case), so
     * the statistics after one step are the same each time */
    check_both("nn_batch_norm", kn_nn_batch_norm(3, 0.1, 1e-5, KN_LAYOUT_NCHW), &bn4d,
               (const kt_array *const[]){NULL, NULL, &bn4d_s_running_mean_after,
                                         &bn4d_s_running_var_after},
               true);
    check_both("nn_batch_norm", kn_nn_batch_norm(6, 0.2, 1e-3, KN_LAYOUT_NCHW), &bn_nc,
               (const kt_array *const[]){NULL, NULL, &bn_nc_s_running_mean_after,
                                         &bn_nc_s_running_var_after},
               true);
    check_both("nn_batch_norm", kn_nn_batch_norm(3, 0.1, 1e-5, KN_LAYOUT_NHWC), &bn_nhwc,
               (const kt_array *const[]){NULL, NULL, &bn_nhwc_s_running_mean_after,
                                         &bn_nhwc_s_running_var_after},
               true);
    check_both("nn_batch_norm", kn_nn_batch_norm(3, 0.1, 1e-5, KN_LAYOUT_NCHW), &bn_eval,
               (const kt_array *const[]){NULL, NULL, &bn_eval_s_running_mean_after,
                                         &bn_eval_s_running_var_after},
               false);
}

static void test_pool_golden(void)
{
    check_both("nn_max_pool", kn_nn_max_pool(3, 2, 1, KN_LAYOUT_NCHW), &maxpool, NULL, true);
    check_both("nn_avg_pool", kn_nn_avg_pool(3, 2, 1, KN_LAYOUT_NCHW), &avgpool, NULL, true);
    check_both("nn_max_pool", kn_nn_max_pool(2, 0, 0, KN_LAYOUT_NCHW), &maxpool1d, NULL, true);
    check_both("nn_avg_pool", kn_nn_avg_pool(2, 0, 0, KN_LAYOUT_NHWC), &avgpool_nhwc, NULL, true);
    check_both("nn_global_avg_pool", kn_nn_global_avg_pool(KN_LAYOUT_NCHW, true), &gap, NULL, true);
    check_both("nn_global_max_pool", kn_nn_global_max_pool(KN_LAYOUT_NCHW, false), &gmp, NULL,
               true);
}

static void test_residual_sequential_golden(void)
{
    check_both("nn_residual",
               kn_nn_residual(kn_nn_dense(5, 5, true, KN_ACT_NONE), NULL, KN_ACT_RELU), &residual,
               NULL, true);
    check_both("nn_residual",
               kn_nn_residual(kn_nn_dense(5, 4, true, KN_ACT_NONE),
                              kn_nn_dense(5, 4, false, KN_ACT_NONE), KN_ACT_NONE),
               &residual_sc, NULL, true);
    kn_block *s = kn_nn_sequential();
    KT_OK(kn_sequential_add(s, kn_nn_conv2d(1, 4, 3, 1, 1, KN_ACT_NONE)));
    KT_OK(kn_sequential_add(s, kn_nn_batch_norm(4, 0.1, 1e-5, KN_LAYOUT_NCHW)));
    KT_OK(kn_sequential_add(s, kn_nn_activation(KN_ACT_RELU)));
    KT_OK(kn_sequential_add(s, kn_nn_max_pool(2, 0, 0, KN_LAYOUT_NCHW)));
    KT_OK(kn_sequential_add(s, kn_nn_flatten()));
    KT_OK(kn_sequential_add(s, kn_nn_dense(36, 5, true, KN_ACT_NONE)));
    KT_CHECK(kn_block_num_children(s) == 6 && !strcmp(kn_block_child_name(s, 5), "5"),
             "children 0..5");
    check_both("nn_sequential", s, &seq, NULL, true);
}

static void test_activations(void)
{
    static const kn_act acts[] = {KN_ACT_RELU,     KN_ACT_RELU6,   KN_ACT_LEAKY_RELU,
                                  KN_ACT_ELU,      KN_ACT_GELU,    KN_ACT_GELU_TANH,
                                  KN_ACT_SILU,     KN_ACT_SIGMOID, KN_ACT_TANH,
                                  KN_ACT_SOFTPLUS, KN_ACT_MISH,    KN_ACT_HARDSWISH};
    int64_t n = act_x.n;
    for (int k = 0; k < (int)(sizeof acts / sizeof acts[0]); k++) {
        kn_tensor *x = kt_from_array(&act_x, KN_F64);
        kn_tensor_set_requires_grad(x, true);
        kn_autograd_record(true);
        kn_tensor *y = kn_activate(x, acts[k]);
        kn_tensor *l = y ? kn_sum(y, 0, NULL, false) : NULL;
        kn_autograd_record(false);
        KT_NOTNULL(l);
        if (l) KT_OK(kn_backward(l, NULL));
        if (y) kt_check_values("activate", y, 1, &n, act_y.data + k * n, 1e-12, 1e-12);
        if (kn_tensor_grad(x))
            kt_check_values("activate", kn_tensor_grad(x), 1, &n, act_dx.data + k * n, 1e-10,
                            1e-12);
        kn_tensor_unref(x), kn_tensor_unref(y), kn_tensor_unref(l);
    }
    /* NONE is the input itself; the block form; bad acts */
    kn_tensor *x = kt_from_array(&act_x, KN_F32);
    kn_tensor *y = kn_activate(x, KN_ACT_NONE);
    KT_CHECK(y == x, "KN_ACT_NONE returns x's reference");
    kn_tensor_unref(y);
    kn_block *b = kn_nn_activation(KN_ACT_RELU6);
    y = NULL;
    KT_OK(kn_block_forward(b, 1, &x, 1, &y));
    if (y) kt_check_values("nn_activation", y, 1, &n, act_y.data + n, 1e-6, 1e-6);
    kn_tensor_unref(y);
    kt_expect_fail("activate", kn_activate(x, (kn_act)99), "not a kn_act");
    kt_expect_fail("activate", kn_activate(NULL, KN_ACT_RELU), "NULL");
    KT_CHECK(kn_nn_activation((kn_act)-1) == NULL, "bad act");
    kt_expect_fail_status("nn_activation", kn_last_status(), "not a kn_act");
    kn_tensor *two[2] = {x, x};
    kt_expect_fail_status("activation", kn_block_forward(b, 2, two, 1, &y), "expected 1 input");
    kn_block_free(b);
    kn_tensor_unref(x);
}

/* ---------------------------------------------------------------- finite differences */
static kn_tensor *through_block(kn_tensor *const *in, void *ctx)
{
    kn_tensor *y = NULL;
    return kn_block_forward(ctx, 1, in, 1, &y) ? NULL : y;
}

static void gradcheck_block(const char *op, kn_block *b, int ndim, const int64_t *shape,
                            uint64_t seed)
{
    KT_NOTNULL(b);
    if (!b) return;
    kn_block_set_training(b, true);
    kn_tensor *x = kt_rand(ndim, shape, -1, 1, seed);
    kn_tensor *y = through_block(&x, b); /* deferred sizes: parameters appear in f64 */
    KT_NOTNULL(y);
    kn_tensor_unref(y);
    kt_gradcheck(op, through_block, 1, &x, b, 1e-6, 1e-5);
    kn_tensor_unref(x);
    kn_block_free(b);
}

static void test_gradcheck(void)
{
    gradcheck_block("nn_dense", kn_nn_dense(0, 3, true, KN_ACT_TANH), 2, (int64_t[]){2, 4}, 1);
    gradcheck_block("nn_conv", kn_nn_conv2d(0, 3, 3, 2, 1, KN_ACT_SIGMOID), 4,
                    (int64_t[]){1, 2, 5, 5}, 2);
    gradcheck_block(
        "nn_conv",
        conv((kn_conv_layer){
            .ndim = 2, .channels = 2, .kernel = {2, 3}, .stride = {2, 1}, .transposed = true}),
        4, (int64_t[]){1, 2, 3, 3}, 3);
    gradcheck_block("nn_conv",
                    conv((kn_conv_layer){.ndim = 1,
                                         .channels = 4,
                                         .kernel = {3},
                                         .stride = {2},
                                         .padding = {1},
                                         .output_padding = {1},
                                         .groups = 2,
                                         .transposed = true,
                                         .act = KN_ACT_TANH,
                                         .layout = KN_LAYOUT_NHWC}),
                    3, (int64_t[]){2, 4, 2}, 11);
    gradcheck_block("nn_conv",
                    conv((kn_conv_layer){.ndim = 3,
                                         .channels = 2,
                                         .kernel = {2, 1, 2},
                                         .stride = {1, 2, 2},
                                         .dilation = {2, 1, 1},
                                         .output_padding = {0, 1, 0},
                                         .transposed = true}),
                    5, (int64_t[]){1, 3, 2, 2, 2}, 12);
    gradcheck_block(
        "nn_conv",
        conv((kn_conv_layer){.ndim = 1, .channels = 2, .kernel = {3}, .layout = KN_LAYOUT_NHWC}), 3,
        (int64_t[]){2, 6, 3}, 4);
    gradcheck_block("nn_batch_norm", kn_nn_batch_norm(0, 0.1, 1e-5, KN_LAYOUT_NCHW), 4,
                    (int64_t[]){3, 2, 2, 2}, 5);
    gradcheck_block("nn_avg_pool", kn_nn_avg_pool(2, 1, 1, KN_LAYOUT_NCHW), 4,
                    (int64_t[]){1, 2, 3, 3}, 6);
    gradcheck_block("nn_global_avg_pool", kn_nn_global_avg_pool(KN_LAYOUT_NHWC, true), 4,
                    (int64_t[]){2, 2, 2, 3}, 7);
    gradcheck_block("nn_residual",
                    kn_nn_residual(kn_nn_dense(0, 3, true, KN_ACT_TANH), NULL, KN_ACT_SOFTPLUS), 2,
                    (int64_t[]){2, 3}, 8);
}

/* ---------------------------------------------------------------- deferred sizes */
static kn_status chain_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                               kn_tensor **out, void *user)
{
    kn_tensor *x = kn_tensor_ref(in[0]);
    for (int i = 0; i < kn_block_num_children(b); i++) {
        kn_tensor *y = NULL;
        kn_status s = kn_block_forward(kn_block_child_at(b, i), 1, &x, 1, &y);
        kn_tensor_unref(x);
        if (s) return s;
        x = y;
    }
    out[0] = x;
    return KN_OK;
}

static kn_tensor *run(kn_block *b, kn_tensor *x)
{
    kn_tensor *y = NULL;
    return kn_block_forward(b, 1, &x, 1, &y) ? NULL : y;
}

static void test_deferred(void)
{
    kn_block *d = kn_nn_dense(0, 3, true, KN_ACT_NONE);
    KT_CHECK(kn_block_num_params(d) == 0, "deferred: no parameters before the first call");
    kn_tensor *x = kn_tensor_ones(KN_F32, 2, (int64_t[]){4, 7});
    kn_tensor *y = run(d, x);
    KT_NOTNULL(y);
    kn_tensor *w = param(d, "weight");
    KT_CHECK(w && kn_tensor_ndim(w) == 2 && kn_tensor_dim(w, 0) == 3 && kn_tensor_dim(w, 1) == 7,
             "weight (3, 7)");
    KT_CHECK(kn_tensor_dtype(w) == KN_F32 && kn_tensor_requires_grad(w), "f32, requires grad");
    kn_tensor_unref(y), kn_tensor_unref(x);
    x = kn_tensor_ones(KN_F32, 2, (int64_t[]){2, 8});
    kt_expect_fail("dense", run(d, x), "dense: input (2, 8) has in_units 8, expected 7");
    kn_tensor_unref(x);
    kn_block_free(d);

    /* the error names the layer's path and the shape it saw */
    kn_block *net = kn_block_new("net", chain_forward, NULL);
    kn_block *features = kn_nn_sequential();
    for (int i = 0; i < 3; i++)
        KT_OK(kn_sequential_add(features, kn_nn_activation(KN_ACT_RELU)));
    KT_OK(kn_sequential_add(features, kn_nn_dense(400, 10, true, KN_ACT_NONE)));
    KT_OK(kn_block_add_child(net, "features", features));
    x = kn_tensor_ones(KN_F32, 3, (int64_t[]){8, 7, 5});
    kt_expect_fail("dense", run(net, x),
                   "dense 'features.3': input (8, 7, 5) has in_units 5, expected 400");
    KT_OK(kn_block_hybridize(net, KN_HYBRIDIZE_ON));
    kt_expect_fail("dense", run(net, x),
                   "dense 'features.3': input (8, 7, 5) has in_units 5, expected 400");
    kn_tensor_unref(x);
    kn_block_free(net);

    /* conv and batch norm take channels from the input; bad ranks */
    kn_block *c = kn_nn_conv2d(0, 4, 3, 1, 1, KN_ACT_NONE);
    x = kn_tensor_ones(KN_F64, 4, (int64_t[]){2, 5, 6, 6});
    y = run(c, x);
    KT_CHECK(y && kn_tensor_dim(y, 1) == 4 && kn_tensor_dtype(y) == KN_F64,
             "conv output (2, 4, 6, 6) f64");
    w = param(c, "weight");
    KT_CHECK(w && kn_tensor_dim(w, 1) == 5 && kn_tensor_dtype(w) == KN_F64,
             "weight (4, 5, 3, 3) in f64");
    kn_tensor_unref(y), kn_tensor_unref(x);
    x = kn_tensor_ones(KN_F64, 3, (int64_t[]){2, 5, 6});
    kt_expect_fail("conv", run(c, x), "conv: input (2, 5, 6) has 3 dims, expected 4 (N, C, H, W)");
    kn_tensor_unref(x);
    x = kn_tensor_ones(KN_F64, 4, (int64_t[]){2, 3, 6, 6});
    kt_expect_fail("conv", run(c, x), "has 3 channels, expected 5");
    kn_tensor_unref(x);
    kn_block_free(c);

    /* transposed 1-D and 3-D: weight (in, out/groups, k...) from the input */
    c = conv((kn_conv_layer){
        .ndim = 3, .channels = 6, .kernel = {1, 2, 3}, .groups = 3, .transposed = true});
    x = kn_tensor_ones(KN_F64, 5, (int64_t[]){2, 9, 2, 3, 4});
    y = run(c, x);
    w = param(c, "weight");
    KT_CHECK(y && kn_tensor_ndim(y) == 5 && kn_tensor_dim(y, 1) == 6 && kn_tensor_dim(y, 2) == 2 &&
                 kn_tensor_dim(y, 3) == 4 && kn_tensor_dim(y, 4) == 6,
             "conv_transpose3d output (2, 6, 2, 4, 6)");
    KT_CHECK(w && kn_tensor_ndim(w) == 5 && kn_tensor_dim(w, 0) == 9 && kn_tensor_dim(w, 1) == 2 &&
                 kn_tensor_dim(w, 4) == 3,
             "weight (9, 2, 1, 2, 3)");
    kn_tensor_unref(y), kn_tensor_unref(x);
    x = kn_tensor_ones(KN_F64, 4, (int64_t[]){2, 9, 3, 4});
    kt_expect_fail("conv", run(c, x),
                   "conv: input (2, 9, 3, 4) has 4 dims, expected 5 (N, C, D, H, W)");
    kn_tensor_unref(x);
    x = kn_tensor_ones(KN_F64, 5, (int64_t[]){2, 6, 2, 3, 4});
    kt_expect_fail("conv", run(c, x), "has 6 channels, expected 9");
    kn_tensor_unref(x);
    kn_block_free(c);
    c = conv((kn_conv_layer){.ndim = 1,
                             .in_channels = 3,
                             .channels = 2,
                             .kernel = {3},
                             .stride = {2},
                             .transposed = true,
                             .layout = KN_LAYOUT_NHWC});
    x = kn_tensor_ones(KN_F32, 3, (int64_t[]){2, 5, 3});
    y = run(c, x);
    w = param(c, "weight");
    KT_CHECK(y && kn_tensor_ndim(y) == 3 && kn_tensor_dim(y, 1) == 11 && kn_tensor_dim(y, 2) == 2,
             "conv_transpose1d NLC output (2, 11, 2)");
    KT_CHECK(w && kn_tensor_ndim(w) == 3 && kn_tensor_dim(w, 0) == 3 && kn_tensor_dim(w, 1) == 2,
             "weight (3, 2, 3)");
    kn_tensor_unref(y), kn_tensor_unref(x);
    x = kn_tensor_ones(KN_F32, 3, (int64_t[]){2, 3, 5});
    kt_expect_fail("conv", run(c, x), "conv: input (2, 3, 5) has 5 channels, expected 3");
    kn_tensor_unref(x);
    kn_block_free(c);

    kn_block *bnl = kn_nn_batch_norm(0, 0.1, 1e-5, KN_LAYOUT_NCHW);
    kn_block_set_training(bnl, true);
    x = kt_rand(2, (int64_t[]){6, 5}, -1, 1, 9);
    y = run(bnl, x);
    KT_NOTNULL(y);
    KT_CHECK(kn_block_num_params(bnl) == 4, "weight, bias, running_mean, running_var");
    kn_tensor *rm = param(bnl, "running_mean");
    KT_CHECK(rm && kn_tensor_dim(rm, 0) == 5 && !kn_tensor_requires_grad(rm),
             "running_mean (5), no grad");
    kn_tensor_unref(y), kn_tensor_unref(x);
    x = kn_tensor_ones(KN_F32, 1, (int64_t[]){5});
    kt_expect_fail("batch_norm", run(bnl, x), "expected (N, C, ...)");
    kn_tensor_unref(x);
    kn_block_free(bnl);

    /* deferred layers hybridized: the first (traced) call creates the
     * parameters; then eager and hybridized agree */
    kn_block *s = kn_nn_sequential();
    KT_OK(kn_sequential_add(s, kn_nn_conv2d(0, 3, 3, 1, 1, KN_ACT_RELU)));
    KT_OK(kn_sequential_add(s, kn_nn_batch_norm(0, 0.1, 1e-5, KN_LAYOUT_NCHW)));
    KT_OK(kn_sequential_add(s, kn_nn_global_avg_pool(KN_LAYOUT_NCHW, true)));
    KT_OK(kn_sequential_add(s, kn_nn_dense(0, 2, true, KN_ACT_NONE)));
    KT_OK(kn_block_hybridize(s, KN_HYBRIDIZE_ON));
    x = kt_rand(4, (int64_t[]){2, 4, 5, 5}, -1, 1, 10);
    kn_tensor *y1 = run(s, x);
    KT_NOTNULL(y1);
    KT_CHECK(kn_block_num_params(s) == 8, "8 parameters after the traced call, got %d",
             kn_block_num_params(s));
    KT_OK(kn_block_hybridize(s, KN_HYBRIDIZE_OFF));
    kn_tensor *y2 = run(s, x);
    KT_CHECK(kt_max_abs_diff(y1, y2) < 1e-12,
             "eager == hybridized after a traced deferred init: %g", kt_max_abs_diff(y1, y2));
    kn_tensor_unref(y1), kn_tensor_unref(y2), kn_tensor_unref(x);
    kn_block_free(s);

    /* kn_block_init_shapes: symbolic examples create every parameter
     * without computing, so an optimizer can collect them first */
    s = kn_nn_sequential();
    KT_OK(kn_sequential_add(s, kn_nn_conv2d(0, 6, 5, 1, 2, KN_ACT_NONE)));
    KT_OK(kn_sequential_add(s, kn_nn_batch_norm(0, 0.1, 1e-5, KN_LAYOUT_NCHW)));
    KT_OK(kn_sequential_add(s, kn_nn_max_pool(2, 0, 0, KN_LAYOUT_NCHW)));
    KT_OK(kn_sequential_add(s, kn_nn_flatten()));
    KT_OK(kn_sequential_add(s, kn_nn_dense(0, 10, true, KN_ACT_NONE)));
    kn_tensor *sym = kn_tensor_symbolic(KN_F32, 4, (int64_t[]){8, 3, 12, 12});
    KT_OK(kn_block_init_shapes(s, 1, &sym));
    w = param(s, "4.weight");
    KT_CHECK(w && kn_tensor_dim(w, 1) == 6 * 6 * 6 && !kn_tensor_is_symbolic(w),
             "4.weight (10, 216) with data");
    KT_CHECK(kn_block_trainable_params(s, 0, NULL) == 6, "6 trainable after init_shapes");
    kn_tensor_unref(sym);
    sym = kn_tensor_symbolic(KN_F32, 4, (int64_t[]){8, 4, 12, 12});
    kt_expect_fail_status("conv", kn_block_init_shapes(s, 1, &sym),
                          "conv '0': input (8, 4, 12, 12) has 4 channels, expected 3");
    kn_tensor_unref(sym);
    kn_block_free(s);
}

/* ---------------------------------------------------------------- construction errors */
static void test_bad_arguments(void)
{
    KT_CHECK(!kn_nn_dense(4, 0, true, KN_ACT_NONE), "units 0");
    kt_expect_fail_status("nn_dense", kn_last_status(), "units 0 must be > 0");
    KT_CHECK(!kn_nn_dense(4, 2, true, (kn_act)77), "bad act");
    kt_expect_fail_status("nn_dense", kn_last_status(), "not a kn_act");
    KT_CHECK(!kn_nn_conv(&(kn_conv_layer){.ndim = 4, .channels = 2, .kernel = {1, 1, 1}}),
             "ndim 4");
    kt_expect_fail_status("nn_conv", kn_last_status(), "ndim 4 must be 1, 2 or 3");
    KT_CHECK(!kn_nn_conv(&(kn_conv_layer){.ndim = 3,
                                          .channels = 2,
                                          .kernel = {3, 3, 3},
                                          .stride = {2, 1, 1},
                                          .dilation = {1, 2, 1},
                                          .output_padding = {0, 1, 0},
                                          .transposed = true}),
             "transposed 3-D output_padding >= stride");
    kt_expect_fail_status("nn_conv", kn_last_status(),
                          "dim 1: output_padding 1 must be smaller than stride 1");
    KT_CHECK(!kn_nn_conv(&(kn_conv_layer){
                 .ndim = 2, .in_channels = 3, .channels = 4, .kernel = {3, 3}, .groups = 2}),
             "groups");
    kt_expect_fail_status("nn_conv", kn_last_status(), "divide");
    KT_CHECK(!kn_nn_conv(&(kn_conv_layer){.ndim = 2, .channels = 4, .kernel = {3, 0}}), "kernel 0");
    kt_expect_fail_status("nn_conv", kn_last_status(), "kernel 0 must be > 0");
    KT_CHECK(!kn_nn_conv(&(kn_conv_layer){
                 .ndim = 2, .channels = 4, .kernel = {3, 3}, .output_padding = {1, 1}}),
             "output_padding");
    kt_expect_fail_status("nn_conv", kn_last_status(), "output_padding");
    KT_CHECK(!kn_nn_conv(NULL), "NULL cfg");
    KT_CHECK(!kn_nn_batch_norm(3, 1.5, 1e-5, KN_LAYOUT_NCHW), "momentum");
    kt_expect_fail_status("nn_batch_norm", kn_last_status(), "momentum 1.5");
    KT_CHECK(!kn_nn_batch_norm(3, 0.1, 0, KN_LAYOUT_NCHW), "eps");
    KT_CHECK(!kn_nn_max_pool(0, 1, 0, KN_LAYOUT_NCHW), "kernel 0");
    kt_expect_fail_status("nn_max_pool", kn_last_status(), "kernel 0 must be > 0");
    KT_CHECK(!kn_nn_avg_pool(2, 1, 3, KN_LAYOUT_NCHW), "padding > kernel/2");
    KT_CHECK(!kn_nn_global_avg_pool((kn_layout)5, true), "layout");
    kt_expect_fail_status("nn_global_avg_pool", kn_last_status(), "layout 5");

    /* ownership on error: the layer is freed (the leak check sees it) */
    kn_block *notseq = kn_nn_flatten();
    kt_expect_fail_status("sequential_add",
                          kn_sequential_add(notseq, kn_nn_dense(2, 2, true, KN_ACT_NONE)),
                          "not a sequential");
    kt_expect_fail_status("sequential_add", kn_sequential_add(NULL, kn_nn_flatten()), "NULL");
    KT_CHECK(!kn_nn_residual(NULL, kn_nn_dense(2, 2, true, KN_ACT_NONE), KN_ACT_NONE), "NULL body");
    kt_expect_fail_status("nn_residual", kn_last_status(), "body is NULL");
    KT_CHECK(!kn_nn_residual(kn_nn_flatten(), kn_nn_flatten(), (kn_act)40), "bad act");
    kt_expect_fail_status("nn_residual", kn_last_status(), "not a kn_act");
    /* a layer that already has a parent is not freed on error */
    kn_block *s = kn_nn_sequential();
    kn_block *f = kn_nn_flatten();
    KT_OK(kn_sequential_add(s, f));
    kn_block *s2 = kn_nn_sequential();
    kt_expect_fail_status("sequential_add", kn_sequential_add(s2, f), "'flatten' already belongs");
    kt_expect_fail_status("sequential_add", kn_sequential_add(s2, s2), "cannot contain itself");
    KT_CHECK(kn_block_num_children(s) == 1, "still attached");
    kn_block_free(s), kn_block_free(s2), kn_block_free(notseq);

    /* pool and flatten on bad ranks; forward with two outputs */
    kn_block *p = kn_nn_max_pool(2, 0, 0, KN_LAYOUT_NCHW);
    kn_tensor *x = kn_tensor_ones(KN_F32, 2, (int64_t[]){2, 3});
    kt_expect_fail("max_pool", run(p, x), "max_pool: input (2, 3) has 2 dims");
    kn_tensor *outs[2];
    kt_expect_fail_status("max_pool", kn_block_forward(p, 1, &x, 2, outs), "1 output");
    kn_block_free(p);
    kn_block *fl = kn_nn_flatten();
    kn_tensor *y = run(fl, x);
    KT_CHECK(y && kn_tensor_ndim(y) == 2 && kn_tensor_dim(y, 1) == 3,
             "flatten (2, 3) stays (2, 3)");
    kn_tensor_unref(y);
    kn_tensor *x4 = kn_tensor_ones(KN_F32, 4, (int64_t[]){2, 3, 4, 5});
    y = run(fl, x4);
    KT_CHECK(y && kn_tensor_ndim(y) == 2 && kn_tensor_dim(y, 1) == 60,
             "flatten (2, 3, 4, 5) -> (2, 60)");
    kn_tensor_unref(y), kn_tensor_unref(x4);
    kn_tensor *sc = kn_tensor_scalar(KN_F32, 1);
    kt_expect_fail("flatten", run(fl, sc), "scalar");
    kn_tensor_unref(sc), kn_tensor_unref(x);
    kn_block_free(fl);
}

/* ---------------------------------------------------------------- parameters */
static void test_share_freeze_trainable(void)
{
    kn_block *net = kn_block_new("net", chain_forward, NULL);
    kn_block *a = kn_nn_dense(4, 4, false, KN_ACT_NONE), *b = kn_nn_dense(4, 4, true, KN_ACT_NONE);
    KT_OK(kn_block_add_child(net, "a", a));
    KT_OK(kn_block_add_child(net, "b", b));
    KT_OK(kn_block_add_child(net, "bn", kn_nn_batch_norm(4, 0.1, 1e-5, KN_LAYOUT_NCHW)));
    KT_OK(kn_block_share_param(b, "weight", a, "weight"));
    KT_CHECK(param(net, "a.weight") == param(net, "b.weight"), "shared: one tensor");
    KT_CHECK(kn_block_trainable_params(net, 0, NULL) == 4,
             "a.weight, b.bias, bn.weight, bn.bias: %d", kn_block_trainable_params(net, 0, NULL));
    int i_rm = param_index(net, "bn.running_mean");
    KT_CHECK(i_rm >= 0 && kn_block_param_is_state(net, i_rm), "running_mean is state");
    KT_CHECK(!kn_block_param_is_state(net, param_index(net, "bn.weight")),
             "bn.weight is not state");
    kt_expect_fail_status("block_share_param", kn_block_share_param(b, "bias", a, "weight"),
                          "shape");

    /* a gradient through both uses accumulates in the shared weight */
    kn_block_set_training(net, true);
    kn_tensor *x = kt_rand(2, (int64_t[]){3, 4}, -1, 1, 11);
    kn_tensor *xf = kn_cast(x, KN_F32);
    kn_autograd_record(true);
    kn_tensor *y = run(net, xf), *l = y ? kn_sum(y, 0, NULL, false) : NULL;
    kn_autograd_record(false);
    KT_NOTNULL(l);
    if (l) KT_OK(kn_backward(l, NULL));
    KT_CHECK(kn_tensor_grad(param(net, "a.weight")) != NULL, "shared weight has a grad");
    kn_tensor_unref(y), kn_tensor_unref(l);

    /* freezing: no grad, out of the trainable list; unfreezing restores */
    KT_OK(kn_block_freeze(net, "bn.*", true));
    KT_CHECK(kn_block_param_is_frozen(net, param_index(net, "bn.weight")), "bn.weight frozen");
    KT_CHECK(!kn_tensor_requires_grad(param(net, "bn.weight")), "frozen: no requires_grad");
    kn_tensor *list[8] = {0};
    int n = kn_block_trainable_params(net, 8, list);
    KT_CHECK(n == 2, "2 trainable after freezing bn, got %d", n);
    for (int i = 0; i < n; i++)
        KT_CHECK(list[i] != param(net, "bn.weight") && list[i] != param(net, "bn.bias"),
                 "bn left out");
    kn_tensor_zero_grad(param(net, "bn.weight"));
    kn_tensor_zero_grad(param(net, "b.bias"));
    kn_autograd_record(true);
    y = run(net, xf), l = y ? kn_sum(y, 0, NULL, false) : NULL;
    kn_autograd_record(false);
    if (l) KT_OK(kn_backward(l, NULL));
    KT_CHECK(kn_tensor_grad(param(net, "bn.weight")) == NULL, "frozen: no grad");
    KT_CHECK(kn_tensor_grad(param(net, "b.bias")) != NULL, "the others still get one");
    kn_tensor_unref(y), kn_tensor_unref(l);
    KT_OK(kn_block_freeze(net, NULL, false));
    KT_CHECK(kn_block_trainable_params(net, 0, NULL) == 4, "unfrozen: 4 again");
    kn_autograd_tape_free();
    kn_tensor_unref(x), kn_tensor_unref(xf);
    kn_block_free(net);
}

static kn_block *small_net(void)
{
    kn_block *s = kn_nn_sequential();
    kn_sequential_add(s, kn_nn_conv2d(2, 3, 3, 1, 1, KN_ACT_NONE));
    kn_sequential_add(s, kn_nn_batch_norm(3, 0.1, 1e-5, KN_LAYOUT_NCHW));
    kn_sequential_add(s, kn_nn_activation(KN_ACT_RELU));
    kn_sequential_add(s, kn_nn_flatten());
    kn_sequential_add(s, kn_nn_dense(48, 4, true, KN_ACT_NONE));
    return s;
}

static void test_param_map_round_trip(void)
{
    char dir[] = "/tmp/kiln_nn_XXXXXX";
    KT_CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[96];
    snprintf(path, sizeof path, "%s/net.safetensors", dir);
    kn_manual_seed(1);
    kn_block *a = small_net();
    kn_block_set_training(a, true);
    kn_tensor *x = kt_rand(4, (int64_t[]){2, 2, 4, 4}, -1, 1, 12), *xf = kn_cast(x, KN_F32);
    kn_tensor *y = run(a, xf); /* moves the running statistics */
    kn_tensor_unref(y);
    kn_tensor_map *m = kn_block_param_map(a);
    KT_NOTNULL(m);
    KT_CHECK(m && kn_tensor_map_size(m) == 8, "8 tensors (with running stats)");
    KT_CHECK(m && kn_tensor_map_get(m, "1.running_var") != NULL, "names by path");
    if (m) KT_OK(kn_safetensors_save(path, m));
    kn_tensor_map_free(m);

    kn_manual_seed(2);
    kn_block *b = small_net();
    kn_tensor_map *loaded = kn_safetensors_load(path);
    KT_NOTNULL(loaded);
    if (loaded) KT_OK(kn_block_load_param_map(b, loaded));
    kn_block_set_training(a, false), kn_block_set_training(b, false);
    kn_tensor *ya = run(a, xf), *yb = run(b, xf);
    KT_CHECK(ya && yb && kt_equal_bits(ya, yb), "same outputs after the round trip");
    kn_tensor_unref(ya), kn_tensor_unref(yb);

    /* a map with one wrong shape (the last entry) changes nothing */
    kn_tensor_map *bad = kn_tensor_map_new();
    kn_tensor *w = kn_tensor_zeros(KN_F32, 2, (int64_t[]){4, 47});
    for (int i = 0; i < kn_block_num_params(a); i++) {
        const char *name = kn_block_param_name(a, i);
        kn_tensor *v = strcmp(name, "4.weight")
                           ? kn_tensor_zeros(KN_F32, kn_tensor_ndim(kn_block_param_at(a, i)),
                                             kn_tensor_shape(kn_block_param_at(a, i)))
                           : kn_tensor_ref(w);
        kn_tensor_map_set(bad, name, v);
        kn_tensor_unref(v);
    }
    kn_tensor *before = kn_tensor_clone(param(b, "0.weight"));
    kt_expect_fail_status("block_load_param_map", kn_block_load_param_map(b, bad), "4.weight");
    KT_CHECK(kt_equal_bits(before, param(b, "0.weight")), "nothing copied on error");
    kn_tensor_unref(w), kn_tensor_unref(before);
    kn_tensor_map_free(bad), kn_tensor_map_free(loaded);
    kn_tensor_unref(x), kn_tensor_unref(xf);
    kn_block_free(a), kn_block_free(b);
    unlink(path);
    rmdir(dir);
}

/* ---------------------------------------------------------------- initializers */
static void moments(const kn_tensor *t, double *mean, double *sd, double *lo, double *hi)
{
    int64_t n = kn_tensor_numel(t);
    double *v = malloc(sizeof(double) * (size_t)n), s = 0, s2 = 0;
    kn_tensor_copy_to(t, KN_F64, v, sizeof(double) * (size_t)n);
    *lo = INFINITY, *hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        s += v[i];
        *lo = v[i] < *lo ? v[i] : *lo, *hi = v[i] > *hi ? v[i] : *hi;
    }
    *mean = s / (double)n;
    for (int64_t i = 0; i < n; i++)
        s2 += (v[i] - *mean) * (v[i] - *mean);
    *sd = sqrt(s2 / (double)(n - 1));
    free(v);
}

/* Fills a fresh tensor and checks its mean, std and (uniform) bounds. */
static void check_dist(const char *what, kn_dtype dt, int ndim, const int64_t *shape, kn_init init,
                       double want_sd, double bound)
{
    kn_tensor *t = kn_tensor_full(dt, ndim, shape, 99);
    KT_OK(kn_init_tensor(t, &init));
    double mean, sd, lo, hi;
    moments(t, &mean, &sd, &lo, &hi);
    double n = (double)kn_tensor_numel(t), tol = 4 * want_sd / sqrt(n) + 1e-12;
    KT_CHECK(fabs(mean) < tol, "%s: mean %g (tol %g)", what, mean, tol);
    KT_CHECK(fabs(sd - want_sd) < 0.02 * want_sd, "%s: std %g, expected %g", what, sd, want_sd);
    if (bound > 0)
        KT_CHECK(lo >= -bound && hi <= bound && lo < -0.99 * bound && hi > 0.99 * bound,
                 "%s: range [%g, %g], bound %g", what, lo, hi, bound);
    kn_tensor_unref(t);
}

static void test_init_distributions(void)
{
    kn_manual_seed(3);
    int64_t big[2] = {300, 400};
    check_dist("uniform", KN_F32, 2, big,
               (kn_init){.kind = KN_INIT_UNIFORM, .low = -0.5, .high = 0.5}, 1 / sqrt(12.0), 0.5);
    check_dist("normal", KN_F64, 2, big, (kn_init){.kind = KN_INIT_NORMAL, .std = 0.3}, 0.3, 0);
    /* xavier: fan_in 400, fan_out 300 */
    double xs = sqrt(2.0 / 700);
    check_dist("xavier_uniform", KN_F32, 2, big, (kn_init){.kind = KN_INIT_XAVIER_UNIFORM}, xs,
               sqrt(3.0) * xs);
    check_dist("xavier_normal", KN_F32, 2, big, (kn_init){.kind = KN_INIT_XAVIER_NORMAL, .gain = 2},
               2 * xs, 0);
    /* kaiming over a conv weight (128, 64, 3, 3): fan_in 576, fan_out 1152 */
    int64_t cw[4] = {128, 64, 3, 3};
    double kin = sqrt(2.0 / 576), kout = sqrt(2.0 / 1152);
    check_dist("kaiming_uniform", KN_F32, 4, cw, (kn_init){.kind = KN_INIT_KAIMING_UNIFORM}, kin,
               sqrt(3.0) * kin);
    check_dist(
        "kaiming_normal", KN_F32, 4, cw,
        (kn_init){.kind = KN_INIT_KAIMING_NORMAL, .mode = KN_FAN_OUT, .nonlinearity = "relu"}, kout,
        0);
    /* PyTorch's Linear/Conv default: leaky_relu a = sqrt(5): bound 1/sqrt(fan_in) */
    check_dist(
        "kaiming_uniform", KN_F32, 4, cw,
        (kn_init){.kind = KN_INIT_KAIMING_UNIFORM, .a = sqrt(5.0), .nonlinearity = "leaky_relu"},
        1 / sqrt(3.0 * 576), 1 / sqrt(576.0));
    check_dist("kaiming_normal", KN_F64, 4, cw,
               (kn_init){.kind = KN_INIT_KAIMING_NORMAL, .nonlinearity = "tanh"}, 5.0 / 3 / 24, 0);
    check_dist("kaiming_normal", KN_F64, 4, cw,
               (kn_init){.kind = KN_INIT_KAIMING_NORMAL, .nonlinearity = "selu"}, 0.75 / 24, 0);
    check_dist("kaiming_normal", KN_F64, 4, cw,
               (kn_init){.kind = KN_INIT_KAIMING_NORMAL, .nonlinearity = "linear"}, 1.0 / 24, 0);
    /* half-precision storage */
    check_dist("uniform", KN_BF16, 2, big, (kn_init){.kind = KN_INIT_UNIFORM, .low = -2, .high = 2},
               4 / sqrt(12.0), 2);
    check_dist("normal", KN_F16, 2, big, (kn_init){.kind = KN_INIT_NORMAL, .std = 1}, 1, 0);

    /* constants */
    kn_tensor *t = kn_tensor_empty(KN_F32, 2, (int64_t[]){3, 4});
    double mean, sd, lo, hi;
    KT_OK(kn_init_tensor(t, &(kn_init){.kind = KN_INIT_CONSTANT, .value = 0.25}));
    moments(t, &mean, &sd, &lo, &hi);
    KT_CHECK(lo == 0.25 && hi == 0.25, "constant");
    KT_OK(kn_init_tensor(t, &(kn_init){.kind = KN_INIT_ONES}));
    moments(t, &mean, &sd, &lo, &hi);
    KT_CHECK(lo == 1 && hi == 1, "ones");
    KT_OK(kn_init_tensor(t, &(kn_init){.kind = KN_INIT_ZEROS}));
    moments(t, &mean, &sd, &lo, &hi);
    KT_CHECK(lo == 0 && hi == 0, "zeros");
    kn_tensor_unref(t);
}

/* max |WᵀW - g²I| over the smaller side of a (rows, cols) weight. */
static double orthogonality_error(const kn_tensor *t, double gain)
{
    int64_t rows = kn_tensor_dim(t, 0), cols = kn_tensor_numel(t) / rows;
    double *v = malloc(sizeof(double) * (size_t)(rows * cols)), err = 0;
    kn_tensor_copy_to(t, KN_F64, v, sizeof(double) * (size_t)(rows * cols));
    bool by_rows = rows <= cols; /* the short side is orthonormal */
    int64_t k = by_rows ? rows : cols, len = by_rows ? cols : rows;
    for (int64_t i = 0; i < k; i++)
        for (int64_t j = 0; j < k; j++) {
            double dot = 0;
            for (int64_t e = 0; e < len; e++)
                dot +=
                    by_rows ? v[i * cols + e] * v[j * cols + e] : v[e * cols + i] * v[e * cols + j];
            double want = i == j ? gain * gain : 0;
            err = fmax(err, fabs(dot - want));
        }
    free(v);
    return err;
}

static void test_init_orthogonal(void)
{
    kn_manual_seed(4);
    struct {
        kn_dtype dt;
        int ndim;
        int64_t shape[4];
        double gain, tol;
    } cases[] = {{KN_F64, 2, {20, 50}, 1, 1e-12},    {KN_F64, 2, {50, 20}, 1, 1e-12},
                 {KN_F64, 2, {33, 33}, 2, 1e-11},    {KN_F32, 4, {8, 3, 2, 2}, 1, 1e-6},
                 {KN_F32, 3, {16, 2, 3}, 0.5, 1e-6}, {KN_F64, 2, {1, 7}, 1, 1e-12}};
    for (int c = 0; c < (int)(sizeof cases / sizeof cases[0]); c++) {
        kn_tensor *t = kn_tensor_zeros(cases[c].dt, cases[c].ndim, cases[c].shape);
        KT_OK(kn_init_tensor(t, &(kn_init){.kind = KN_INIT_ORTHOGONAL, .gain = cases[c].gain}));
        double err = orthogonality_error(t, cases[c].gain);
        KT_CHECK(err < cases[c].tol, "orthogonal case %d: error %g", c, err);
        kt_mark("init_tensor", KT_FWD);
        kn_tensor_unref(t);
    }
}

static void test_init_seeding_errors(void)
{
    int64_t shape[2] = {16, 9};
    kn_tensor *a = kn_tensor_zeros(KN_F32, 2, shape), *b = kn_tensor_zeros(KN_F32, 2, shape);
    kn_init inits[] = {{.kind = KN_INIT_XAVIER_UNIFORM},
                       {.kind = KN_INIT_ORTHOGONAL},
                       {.kind = KN_INIT_KAIMING_NORMAL},
                       {.kind = KN_INIT_NORMAL, .std = 1}};
    for (int i = 0; i < 4; i++) {
        kn_manual_seed(42);
        KT_OK(kn_init_tensor(a, &inits[i]));
        kn_manual_seed(42);
        KT_OK(kn_init_tensor(b, &inits[i]));
        KT_CHECK(kt_equal_bits(a, b), "init %d: same seed, same values", i);
        KT_OK(kn_init_tensor(b, &inits[i]));
        KT_CHECK(!kt_equal_bits(a, b), "init %d: the stream moves on", i);
    }
    /* errors */
    kn_tensor *v = kn_tensor_zeros(KN_F32, 1, (int64_t[]){5});
    kt_expect_fail_status("init_tensor",
                          kn_init_tensor(v, &(kn_init){.kind = KN_INIT_XAVIER_UNIFORM}),
                          "at least 2 dims");
    kt_expect_fail_status("init_tensor", kn_init_tensor(v, &(kn_init){.kind = KN_INIT_ORTHOGONAL}),
                          "at least 2 dims, got (5)");
    kt_expect_fail_status("init_tensor", kn_init_tensor(v, &(kn_init){.kind = KN_INIT_DEFAULT}),
                          "depends on the layer");
    kt_expect_fail_status(
        "init_tensor", kn_init_tensor(v, &(kn_init){.kind = KN_INIT_UNIFORM, .low = 1, .high = 0}),
        "low <= high");
    kt_expect_fail_status("init_tensor",
                          kn_init_tensor(v, &(kn_init){.kind = KN_INIT_NORMAL, .std = -1}),
                          "std >= 0");
    kt_expect_fail_status("init_tensor", kn_init_tensor(v, &(kn_init){.kind = (kn_init_kind)50}),
                          "not a kn_init_kind");
    kt_expect_fail_status(
        "init_tensor",
        kn_init_tensor(a, &(kn_init){.kind = KN_INIT_KAIMING_UNIFORM, .nonlinearity = "swish"}),
        "unknown nonlinearity 'swish'");
    kt_expect_fail_status(
        "init_tensor",
        kn_init_tensor(a, &(kn_init){.kind = KN_INIT_KAIMING_UNIFORM, .mode = (kn_fan_mode)3}),
        "mode 3");
    kn_tensor *ints = kn_tensor_zeros(KN_I32, 2, shape);
    kt_expect_fail_status("init_tensor", kn_init_tensor(ints, &(kn_init){.kind = KN_INIT_ONES}),
                          "not a float type");
    kn_tensor *sym = kn_tensor_symbolic(KN_F32, 2, shape);
    kt_expect_fail_status("init_tensor", kn_init_tensor(sym, &(kn_init){.kind = KN_INIT_ONES}),
                          "symbolic");
    kt_expect_fail_status("init_tensor", kn_init_tensor(NULL, &(kn_init){.kind = KN_INIT_ONES}),
                          "NULL");
    kn_tensor *empty = kn_tensor_zeros(KN_F32, 2, (int64_t[]){0, 4});
    KT_OK(kn_init_tensor(empty, &(kn_init){.kind = KN_INIT_KAIMING_UNIFORM}));
    KT_OK(kn_init_tensor(empty, &(kn_init){.kind = KN_INIT_ORTHOGONAL}));
    kn_tensor_unref(empty), kn_tensor_unref(ints), kn_tensor_unref(sym), kn_tensor_unref(v);
    kn_tensor_unref(a), kn_tensor_unref(b);
}

static void test_block_init_params(void)
{
    kn_manual_seed(5);
    kn_block *net = kn_block_new("net", chain_forward, NULL);
    kn_block *features = kn_nn_sequential();
    KT_OK(kn_sequential_add(features, kn_nn_conv2d(3, 8, 3, 1, 1, KN_ACT_RELU)));
    KT_OK(kn_sequential_add(features, kn_nn_batch_norm(8, 0.1, 1e-5, KN_LAYOUT_NCHW)));
    KT_OK(kn_block_add_child(net, "features", features));
    KT_OK(kn_block_add_child(net, "fc", kn_nn_dense(400, 120, true, KN_ACT_NONE)));

    /* PyTorch's defaults at creation: weight and bias within 1/sqrt(fan_in) */
    double mean, sd, lo, hi;
    moments(param(net, "fc.weight"), &mean, &sd, &lo, &hi);
    KT_CHECK(lo >= -0.05 && hi <= 0.05 && hi > 0.049, "fc.weight in +-1/sqrt(400): [%g, %g]", lo,
             hi);
    KT_CHECK(fabs(sd - 0.05 / sqrt(3.0)) < 0.002, "fc.weight std %g", sd);
    moments(param(net, "fc.bias"), &mean, &sd, &lo, &hi);
    KT_CHECK(lo >= -0.05 && hi <= 0.05 && hi - lo > 0.05, "fc.bias in +-1/sqrt(400)");
    moments(param(net, "features.0.bias"), &mean, &sd, &lo, &hi);
    KT_CHECK(lo >= -1 / sqrt(27.0) && hi <= 1 / sqrt(27.0), "conv bias in +-1/sqrt(27)");
    moments(param(net, "features.1.weight"), &mean, &sd, &lo, &hi);
    KT_CHECK(lo == 1 && hi == 1, "bn weight 1");

    /* patterns */
    KT_OK(kn_block_init_params(net, "*.bias", &(kn_init){.kind = KN_INIT_CONSTANT, .value = 3}));
    moments(param(net, "fc.bias"), &mean, &sd, &lo, &hi);
    KT_CHECK(lo == 3 && hi == 3, "fc.bias = 3");
    moments(param(net, "features.1.bias"), &mean, &sd, &lo, &hi);
    KT_CHECK(lo == 3 && hi == 3, "features.1.bias = 3");
    moments(param(net, "fc.weight"), &mean, &sd, &lo, &hi);
    KT_CHECK(hi < 1, "fc.weight untouched");
    KT_OK(kn_block_init_params(net, "features.*", &(kn_init){.kind = KN_INIT_ZEROS}));
    moments(param(net, "features.1.running_var"), &mean, &sd, &lo, &hi);
    KT_CHECK(lo == 1 && hi == 1, "state untouched");
    moments(param(net, "features.0.weight"), &mean, &sd, &lo, &hi);
    KT_CHECK(lo == 0 && hi == 0, "features.0.weight zeroed");
    /* KN_INIT_DEFAULT runs each layer's own rule again */
    KT_OK(kn_block_init_params(net, NULL, &(kn_init){.kind = KN_INIT_DEFAULT}));
    moments(param(net, "features.0.weight"), &mean, &sd, &lo, &hi);
    KT_CHECK(hi > 0 && hi <= 1 / sqrt(27.0), "conv weight back to its default");
    moments(param(net, "features.1.bias"), &mean, &sd, &lo, &hi);
    KT_CHECK(lo == 0 && hi == 0, "bn bias back to 0");
    moments(param(net, "fc.bias"), &mean, &sd, &lo, &hi);
    KT_CHECK(lo >= -0.05 && hi <= 0.05, "fc.bias back to its default");
    /* orthogonal through the tree */
    KT_OK(kn_block_init_params(net, "fc.weight", &(kn_init){.kind = KN_INIT_ORTHOGONAL}));
    KT_CHECK(orthogonality_error(param(net, "fc.weight"), 1) < 1e-5, "fc.weight orthogonal");
    /* seeded: the same seed gives the same parameters */
    kn_tensor *before = kn_tensor_clone(param(net, "features.0.weight"));
    kn_manual_seed(77);
    KT_OK(kn_block_init_params(net, "*0.weight", &(kn_init){.kind = KN_INIT_XAVIER_NORMAL}));
    kn_tensor *first = kn_tensor_clone(param(net, "features.0.weight"));
    kn_manual_seed(77);
    KT_OK(kn_block_init_params(net, "*0.weight", &(kn_init){.kind = KN_INIT_XAVIER_NORMAL}));
    KT_CHECK(kt_equal_bits(first, param(net, "features.0.weight")), "reproducible");
    KT_CHECK(!kt_equal_bits(before, first), "changed");
    kn_tensor_unref(before), kn_tensor_unref(first);
    /* errors */
    kt_expect_fail_status("block_init_params",
                          kn_block_init_params(net, "nothing.*", &(kn_init){.kind = KN_INIT_ONES}),
                          "no parameter of 'net' matches 'nothing.*'");
    kt_expect_fail_status(
        "block_init_params",
        kn_block_init_params(net, "*.weight", &(kn_init){.kind = KN_INIT_XAVIER_UNIFORM}),
        "'features.1.weight'");
    kt_expect_fail_status("block_init_params", kn_block_init_params(net, NULL, NULL), "NULL");
    kn_block *custom = kn_block_new("mine", chain_forward, NULL);
    kn_tensor *p = kn_tensor_zeros(KN_F32, 1, (int64_t[]){3});
    KT_OK(kn_block_add_param(custom, "scale", p));
    kt_expect_fail_status("block_init_params",
                          kn_block_init_params(custom, NULL, &(kn_init){.kind = KN_INIT_DEFAULT}),
                          "no default initializer");
    kn_tensor_unref(p);
    kn_block_free(custom);
    kn_block_free(net);
}

/* ---------------------------------------------------------------- allocation failures */
static kn_status build_and_run(void *ctx)
{
    (void)ctx;
    kn_block *s = kn_nn_sequential();
    kn_status st = s ? KN_OK : kn_last_status();
    if (!st) st = kn_sequential_add(s, kn_nn_conv2d(0, 3, 3, 1, 1, KN_ACT_RELU));
    if (!st) st = kn_sequential_add(s, kn_nn_batch_norm(0, 0.1, 1e-5, KN_LAYOUT_NCHW));
    if (!st) st = kn_sequential_add(s, kn_nn_max_pool(2, 0, 0, KN_LAYOUT_NCHW));
    if (!st) st = kn_sequential_add(s, kn_nn_residual(kn_nn_flatten(), NULL, KN_ACT_NONE));
    if (!st) st = kn_sequential_add(s, kn_nn_dense(0, 2, true, KN_ACT_TANH));
    if (!st) kn_block_set_training(s, true);
    kn_tensor *x = st ? NULL : kn_tensor_ones(KN_F32, 4, (int64_t[]){2, 2, 4, 4});
    if (!st && !x) st = kn_last_status();
    kn_tensor *y = NULL;
    if (!st) st = kn_block_forward(s, 1, &x, 1, &y);
    if (!st)
        st = kn_block_init_params(s, "0.weight", &(kn_init){.kind = KN_INIT_ORTHOGONAL, .gain = 1});
    kn_tensor_unref(x), kn_tensor_unref(y);
    kn_block_free(s);
    return st;
}

static void test_alloc_failures(void)
{
    int n = kt_alloc_walk("nn_layers", build_and_run, NULL);
    KT_CHECK(n > 20, "walked %d allocation failures", n);
}

int main(void)
{
    KT_RUN(test_dense_conv_golden);
    KT_RUN(test_batch_norm_golden);
    KT_RUN(test_pool_golden);
    KT_RUN(test_residual_sequential_golden);
    KT_RUN(test_activations);
    KT_RUN(test_gradcheck);
    KT_RUN(test_deferred);
    KT_RUN(test_bad_arguments);
    KT_RUN(test_share_freeze_trainable);
    KT_RUN(test_param_map_round_trip);
    KT_RUN(test_init_distributions);
    KT_RUN(test_init_orthogonal);
    KT_RUN(test_init_seeding_errors);
    KT_RUN(test_block_init_params);
    KT_RUN(test_alloc_failures);
    return kt_finish();
}
