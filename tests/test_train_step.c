/* test_train_step.c — kn_train_step: the hybridized step (forward + loss +
 * backward as one compiled graph, then the trainer) follows the same
 * trajectory as eager autograd; a custom loss; a smaller last batch gets
 * its own graph; bad input. */
#include "harness.h"

static kn_status net_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out, kn_tensor **out,
                             void *user)
{
    (void)n_in, (void)n_out, (void)user;
    kn_tensor *h = kn_linear(in[0], kn_block_param(b, "w1"), kn_block_param(b, "b1"));
    kn_tensor *n = kn_batch_norm(h, kn_block_param(b, "gamma"), kn_block_param(b, "beta"),
                                 kn_block_param(b, "running_mean"), kn_block_param(b, "running_var"),
                                 kn_block_is_training(b), 0.1, 1e-5, KN_LAYOUT_NCHW);
    kn_tensor *r = kn_relu(n);
    out[0] = kn_linear(r, kn_block_param(b, "w2"), NULL);
    kn_tensor_unref(h), kn_tensor_unref(n), kn_tensor_unref(r);
    return out[0] ? KN_OK : kn_last_status();
}

static void add(kn_block *b, const char *name, kn_tensor *t, bool state)
{
    if (state) kn_block_add_state(b, name, t);
    else kn_block_add_param(b, name, t);
    kn_tensor_unref(t);
}

static kn_block *make_net(void)
{
    kn_manual_seed(11);
    kn_block *b = kn_block_new("net", net_forward, NULL);
    int64_t s1[2] = {16, 6}, s2[2] = {3, 16}, c = 16;
    add(b, "w1", kn_tensor_rand_uniform(KN_F32, 2, s1, -0.4, 0.4), false);
    add(b, "b1", kn_tensor_rand_uniform(KN_F32, 1, &c, -0.1, 0.1), false);
    add(b, "gamma", kn_tensor_ones(KN_F32, 1, &c), false);
    add(b, "beta", kn_tensor_zeros(KN_F32, 1, &c), false);
    add(b, "running_mean", kn_tensor_zeros(KN_F32, 1, &c), true);
    add(b, "running_var", kn_tensor_ones(KN_F32, 1, &c), true);
    add(b, "w2", kn_tensor_rand_uniform(KN_F32, 2, s2, -0.4, 0.4), false);
    kn_block_set_training(b, true);
    return b;
}

typedef struct run {
    kn_block *net;
    kn_optimizer *opt;
    kn_trainer *trainer;
    kn_train_step *step;
} run;

static run start(bool hybridize, kn_loss_fn loss_fn)
{
    run r = {make_net(), NULL, NULL, NULL};
    if (hybridize) kn_block_hybridize(r.net, KN_HYBRIDIZE_ON);
    kn_tensor *ps[8];
    int n = kn_block_trainable_params(r.net, 8, ps);
    kn_optim_config oc = kn_optim_defaults(KN_OPTIM_SGD);
    oc.lr = 0.1, oc.momentum = 0.9;
    r.opt = kn_optimizer_new(KN_OPTIM_SGD, &oc);
    kn_optimizer_add_group(r.opt, n, ps, NULL);
    r.trainer = kn_trainer_new(r.opt, NULL, 0);
    r.step = kn_train_step_new(r.net, r.trainer, loss_fn, NULL);
    return r;
}

static void finish(run *r)
{
    kn_train_step_free(r->step);
    kn_trainer_free(r->trainer);
    kn_optimizer_free(r->opt);
    kn_block_free(r->net);
}

static kn_tensor *mse_loss(kn_tensor *out, kn_tensor *target, void *user)
{
    (void)user;
    return kn_mse_loss(out, target, NULL);
}

/* Five steps (the last with a smaller batch); returns the losses. */
static void trajectory(run *r, bool regression, double losses[5])
{
    kn_manual_seed(21);
    for (int i = 0; i < 5; i++) {
        int64_t batch = i == 4 ? 5 : 8, xs[2] = {batch, 6}, ys[2] = {batch, 3};
        kn_tensor *x = kn_tensor_rand_normal(KN_F32, 2, xs, 0, 1);
        kn_tensor *u = kn_tensor_rand_uniform(KN_F32, 1, xs, 0, 2.999);
        kn_tensor *y = regression ? kn_tensor_rand_normal(KN_F32, 2, ys, 0, 1) : kn_cast(u, KN_I64);
        kn_tensor *loss = NULL, *out = NULL;
        KT_OK(kn_train_step_run(r->step, x, y, &loss, &out));
        KT_CHECK(out && kn_tensor_dim(out, 0) == batch && kn_tensor_dim(out, 1) == 3, "output returned");
        losses[i] = NAN;
        if (loss) kn_tensor_item(loss, &losses[i]);
        kn_tensor_unref(x), kn_tensor_unref(u), kn_tensor_unref(y), kn_tensor_unref(loss), kn_tensor_unref(out);
    }
}

static void check_same(bool regression)
{
    run e = start(false, regression ? mse_loss : NULL), h = start(true, regression ? mse_loss : NULL);
    double le[5], lh[5];
    trajectory(&e, regression, le);
    trajectory(&h, regression, lh);
    for (int i = 0; i < 5; i++)
        KT_CHECK(fabs(le[i] - lh[i]) <= 1e-5 * fabs(le[i]) + 1e-6, "step %d: eager %.8g hybridized %.8g", i,
                 le[i], lh[i]);
    KT_CHECK(le[3] < le[0] || regression, "the loss falls (%g -> %g)", le[0], le[3]);
    KT_CHECK(kn_train_step_graph(e.step) == NULL && kn_train_step_graph(h.step) != NULL,
             "a graph only when hybridized");
    KT_CHECK(kn_autograd_tape_size() == 0, "no tape left");
    /* parameters and running statistics end equal */
    for (int i = 0; i < kn_block_num_params(e.net); i++) {
        double v = kt_max_abs_diff(kn_block_param_at(e.net, i), kn_block_param_at(h.net, i));
        KT_CHECK(v < 1e-5, "%s differs by %g", kn_block_param_name(e.net, i), v);
    }
    finish(&e), finish(&h);
}

static void test_eager_equals_hybridized(void) { check_same(false); }
static void test_custom_loss(void) { check_same(true); }

static kn_tensor *not_from_output(kn_tensor *out, kn_tensor *target, void *user)
{
    (void)out, (void)target, (void)user;
    return kn_tensor_scalar(KN_F32, 1.0);
}

static void test_bad_input(void)
{
    run r = start(true, not_from_output);
    int64_t xs[2] = {4, 6}, ys[1] = {4};
    kn_tensor *x = kn_tensor_zeros(KN_F32, 2, xs), *y = kn_tensor_zeros(KN_I64, 1, ys);
    KT_CHECK(kn_train_step_run(r.step, x, y, NULL, NULL) != KN_OK &&
             strstr(kn_last_error(), "not computed from the network's output"), "%s", kn_last_error());
    KT_CHECK(kn_train_step_run(NULL, x, y, NULL, NULL) == KN_ERR_ARG, "NULL step");
    KT_CHECK(kn_train_step_run(r.step, x, NULL, NULL, NULL) == KN_ERR_ARG &&
             strstr(kn_last_error(), "train_step_run"), "%s", kn_last_error());
    KT_CHECK(kn_train_step_new(NULL, r.trainer, NULL, NULL) == NULL && strstr(kn_last_error(), "train_step_new"),
             "%s", kn_last_error());
    kn_tensor *xb = kn_tensor_zeros(KN_F32, 2, (int64_t[]){4, 5});
    run ok = start(true, NULL);
    KT_CHECK(kn_train_step_run(ok.step, xb, y, NULL, NULL) != KN_OK && strstr(kn_last_error(), "linear"),
             "a wrong input shape names the op: %s", kn_last_error());
    kn_tensor_unref(x), kn_tensor_unref(y), kn_tensor_unref(xb);
    finish(&r), finish(&ok);
}

int main(void)
{
    KT_RUN(test_eager_equals_hybridized);
    KT_RUN(test_custom_loss);
    KT_RUN(test_bad_input);
    return kt_finish();
}
