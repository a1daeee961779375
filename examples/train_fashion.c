/* train_fashion.c — a first end-to-end training run with kiln's pieces: a
 * LeNet with batch norm built from nested blocks, the Fashion-MNIST IDX
 * files (Debian's dataset-fashion-mnist) through the multi-worker loader,
 * SGD with momentum, and test accuracy per epoch.
 *   train_fashion [DATA_DIR] [EPOCHS] [--hybridize]
 * (The `kiln train` command of the next issue grows out of this.) */
#include <kiln.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 128

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int fail(const char *what)
{
    fprintf(stderr, "train_fashion: %s: %s\n", what, kn_last_error());
    return 1;
}

/* ---- blocks: conv-bn-relu-pool and dense, composed into LeNet */
typedef struct conv_cfg {
    int64_t pad;
} conv_cfg;

static kn_status conv_block(kn_block *b, int n_in, kn_tensor *const *in, int n_out, kn_tensor **out,
                            void *user)
{
    (void)n_in, (void)n_out;
    const conv_cfg *c = user;
    kn_conv_params cp = {.pad_begin = {c->pad, c->pad}, .pad_end = {c->pad, c->pad}};
    kn_pool_params pp = {.kernel = {2, 2}};
    kn_tensor *y = kn_conv2d(in[0], kn_block_param(b, "weight"), kn_block_param(b, "bias"), &cp);
    kn_tensor *n = kn_batch_norm(y, kn_block_param(b, "gamma"), kn_block_param(b, "beta"),
                                 kn_block_param(b, "running_mean"), kn_block_param(b, "running_var"),
                                 kn_block_is_training(b), 0.1, 1e-5, KN_LAYOUT_NCHW);
    kn_tensor *r = kn_relu(n);
    out[0] = kn_max_pool(r, &pp);
    kn_tensor_unref(y), kn_tensor_unref(n), kn_tensor_unref(r);
    return out[0] ? KN_OK : kn_last_status();
}

static kn_status dense_block(kn_block *b, int n_in, kn_tensor *const *in, int n_out, kn_tensor **out,
                             void *user)
{
    (void)n_in, (void)n_out;
    kn_tensor *y = kn_linear(in[0], kn_block_param(b, "weight"), kn_block_param(b, "bias"));
    if (!user) { /* the classifier: no norm, no relu */
        out[0] = y;
        return out[0] ? KN_OK : kn_last_status();
    }
    kn_tensor *n = kn_batch_norm(y, kn_block_param(b, "gamma"), kn_block_param(b, "beta"),
                                 kn_block_param(b, "running_mean"), kn_block_param(b, "running_var"),
                                 kn_block_is_training(b), 0.1, 1e-5, KN_LAYOUT_NCHW);
    out[0] = kn_relu(n);
    kn_tensor_unref(y), kn_tensor_unref(n);
    return out[0] ? KN_OK : kn_last_status();
}

static kn_status lenet_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out, kn_tensor **out,
                               void *user)
{
    (void)n_in, (void)n_out, (void)user;
    static const char *order[] = {"conv1", "conv2", "flatten", "fc1", "fc2", "fc3"};
    kn_tensor *x = kn_tensor_ref(in[0]);
    kn_status s = KN_OK;
    for (int i = 0; i < 6 && !s; i++) {
        kn_tensor *y = NULL;
        if (!strcmp(order[i], "flatten")) y = kn_flatten(x, 1, -1);
        else s = kn_block_forward(kn_block_child(b, order[i]), 1, &x, 1, &y);
        kn_tensor_unref(x);
        x = y;
        if (!x && !s) s = kn_last_status();
    }
    out[0] = x;
    return s;
}

/* Kaiming-uniform-like weights, zero biases, unit batch-norm scale. */
static kn_status add_weights(kn_block *b, int ndim, const int64_t *wshape, int64_t fan_in)
{
    int64_t cs[1] = {wshape[0]};
    double bound = 1.0 / __builtin_sqrt((double)fan_in);
    kn_tensor *w = kn_tensor_rand_uniform(KN_F32, ndim, wshape, -bound * 1.732, bound * 1.732);
    kn_tensor *bias = kn_tensor_zeros(KN_F32, 1, cs);
    kn_status s = w && bias ? kn_block_add_param(b, "weight", w) : kn_last_status();
    if (!s) s = kn_block_add_param(b, "bias", bias);
    kn_tensor_unref(w), kn_tensor_unref(bias);
    return s;
}

/* batch-norm scale and shift (trained) and running statistics (state) */
static void add_norm(kn_block *b, int64_t c)
{
    kn_tensor *g = kn_tensor_ones(KN_F32, 1, &c), *be = kn_tensor_zeros(KN_F32, 1, &c);
    kn_tensor *m = kn_tensor_zeros(KN_F32, 1, &c), *v = kn_tensor_ones(KN_F32, 1, &c);
    kn_block_add_param(b, "gamma", g), kn_block_add_param(b, "beta", be);
    kn_block_add_state(b, "running_mean", m), kn_block_add_state(b, "running_var", v);
    kn_tensor_unref(g), kn_tensor_unref(be), kn_tensor_unref(m), kn_tensor_unref(v);
}

static kn_block *conv_layer(int64_t cin, int64_t cout, int64_t pad, conv_cfg *cfg)
{
    cfg->pad = pad;
    kn_block *b = kn_block_new("conv", conv_block, cfg);
    int64_t ws[4] = {cout, cin, 5, 5};
    if (!b || add_weights(b, 4, ws, cin * 25)) return b;
    add_norm(b, cout);
    return b;
}

static kn_block *dense_layer(int64_t in, int64_t out, bool relu)
{
    kn_block *b = kn_block_new("dense", dense_block, relu ? (void *)1 : NULL);
    int64_t ws[2] = {out, in};
    if (b && !add_weights(b, 2, ws, in) && relu) add_norm(b, out);
    return b;
}

static kn_block *lenet(conv_cfg cfg[2])
{
    kn_block *net = kn_block_new("lenet", lenet_forward, NULL);
    kn_block_add_child(net, "conv1", conv_layer(1, 6, 2, &cfg[0]));
    kn_block_add_child(net, "conv2", conv_layer(6, 16, 0, &cfg[1]));
    kn_block_add_child(net, "fc1", dense_layer(400, 120, true));
    kn_block_add_child(net, "fc2", dense_layer(120, 84, true));
    kn_block_add_child(net, "fc3", dense_layer(84, 10, false));
    return net;
}

/* ---- training */
static kn_loader *make_loader(const char *dir, const char *split, bool shuffle, kn_transform *t,
                              kn_dataset **ds)
{
    *ds = kn_dataset_mnist(dir, split);
    kn_loader *ld = *ds ? kn_loader_new(*ds, BATCH, shuffle, false, 42, 2, 0) : NULL;
    if (ld && kn_loader_set_transform(ld, t)) return NULL;
    return ld;
}

static double evaluate(kn_block *net, kn_loader *ld, uint64_t epoch)
{
    kn_metric *acc = kn_metric_new(KN_METRIC_ACCURACY, NULL);
    kn_block_set_training(net, false);
    kn_loader_reset(ld, epoch);
    for (;;) {
        kn_tensor *x = NULL, *y = NULL, *logits = NULL;
        if (kn_loader_next(ld, &x, &y) || !x) break;
        if (!kn_block_forward(net, 1, &x, 1, &logits)) kn_metric_update(acc, logits, y);
        kn_tensor_unref(x), kn_tensor_unref(y), kn_tensor_unref(logits);
    }
    double v = kn_metric_value(acc);
    kn_metric_free(acc);
    return v;
}

static kn_graph *profiled; /* KILN_PROFILE set: the per-node times of the full-batch step graph */

/* Steps through one epoch; returns the mean loss or -1. */
static double train_epoch(kn_block *net, kn_loader *ld, kn_train_step *step, uint64_t epoch)
{
    double total = 0;
    int64_t batches = 0;
    kn_block_set_training(net, true);
    kn_loader_reset(ld, epoch);
    for (;;) {
        kn_tensor *x = NULL, *y = NULL, *loss = NULL;
        if (kn_loader_next(ld, &x, &y)) return -1;
        if (!x) break;
        double l = 0;
        if (kn_train_step_run(step, x, y, &loss, NULL)) return -1;
        if (!profiled && getenv("KILN_PROFILE") && (profiled = kn_train_step_graph(step)))
            kn_graph_set_profiling(profiled, true);
        kn_tensor_item(loss, &l);
        total += l, batches++;
        kn_tensor_unref(x), kn_tensor_unref(y), kn_tensor_unref(loss);
    }
    return batches ? total / (double)batches : 0;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist";
    int epochs = argc > 2 ? atoi(argv[2]) : 1;
    bool hybridize = argc > 3 && !strcmp(argv[3], "--hybridize");
    kn_transform *t = kn_transform_new();
    float mean[1] = {0.2860f}, std[1] = {0.3530f};
    if (!t || kn_transform_add_to_float(t) || kn_transform_add_normalize(t, 1, mean, std))
        return fail("transform");
    kn_dataset *train_ds, *test_ds;
    kn_loader *train = make_loader(dir, "train", true, t, &train_ds);
    kn_loader *test = train ? make_loader(dir, "test", false, t, &test_ds) : NULL;
    if (!train || !test) return fail("data");
    kn_manual_seed(1);
    conv_cfg cfg[2];
    kn_block *net = lenet(cfg);
    if (hybridize) kn_block_hybridize(net, KN_HYBRIDIZE_ON);
    kn_optim_config oc = kn_optim_defaults(KN_OPTIM_SGD);
    oc.lr = 0.1, oc.momentum = 0.9;
    kn_optimizer *opt = kn_optimizer_new(KN_OPTIM_SGD, &oc);
    /* the batch-norm running statistics are state, not trained */
    kn_tensor *params[64];
    int n = kn_block_trainable_params(net, 64, params);
    if (!opt || n < 0 || kn_optimizer_add_group(opt, n, params, NULL)) return fail("optimizer");
    kn_lr_schedule cos = kn_lr_schedule_defaults(KN_LR_COSINE);
    cos.t_max = (int64_t)epochs * ((60000 + BATCH - 1) / BATCH);
    kn_trainer *trainer = kn_trainer_new(opt, &cos, 0);
    kn_train_step *step = trainer ? kn_train_step_new(net, trainer, NULL, NULL) : NULL;
    if (!step) return fail("trainer");
    printf("LeNet-BN on Fashion-MNIST, batch %d, SGD momentum 0.9 lr 0.1 cosine, %s, %d threads\n", BATCH,
           hybridize ? "hybridized" : "eager", kn_get_num_threads());
    for (int e = 1; e <= epochs; e++) {
        double t0 = now_s();
        double loss = train_epoch(net, train, step, (uint64_t)e);
        if (loss < 0) return fail("training");
        double train_s = now_s() - t0, acc = evaluate(net, test, 0);
        printf("epoch %d/%d  train loss %.3f  test acc %.4f  %.1f s\n", e, epochs, loss, acc, train_s);
        fflush(stdout);
    }
    if (profiled) kn_graph_print_profile(profiled, stdout);
    kn_train_step_free(step);
    kn_trainer_free(trainer);
    kn_optimizer_free(opt);
    kn_block_free(net);
    kn_loader_free(train), kn_loader_free(test);
    kn_dataset_free(train_ds), kn_dataset_free(test_ds);
    kn_transform_free(t);
    return 0;
}
