/* test_models.c — the model zoo (models/): names, parameter names, shapes
 * and counts equal to torchvision's, logits equal to torchvision's (and to a
 * torch.nn LeNet) with every tensor set by one formula, forward shapes,
 * forward + backward, eager == hybridized, LeNet fitting a small synthetic
 * set, and a ResNet-18 (CIFAR stem) training step. */
#include "harness.h"

#include "golden/models.h"

#include <stdlib.h>

/* ---------------------------------------------------------------- helpers */
static kn_tensor *run(kn_block *b, kn_tensor *x)
{
    kn_tensor *y = NULL;
    return kn_block_forward(b, 1, &x, 1, &y) ? NULL : y;
}

static double max_abs(const kn_tensor *t)
{
    if (!t) return 0;
    int64_t n = kn_tensor_numel(t);
    double *v = malloc(sizeof(double) * (size_t)(n + 1)), m = 0;
    kn_tensor_copy_to(t, KN_F64, v, sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        m = fmax(m, fabs(v[i]));
    free(v);
    return m;
}

static bool all_finite(const kn_tensor *t)
{
    int64_t n = kn_tensor_numel(t);
    double *v = malloc(sizeof(double) * (size_t)(n + 1));
    kn_tensor_copy_to(t, KN_F64, v, sizeof(double) * (size_t)n);
    bool ok = true;
    for (int64_t i = 0; i < n && ok; i++)
        ok = isfinite(v[i]);
    free(v);
    return ok;
}

/* Trainable parameters' total size (state left out). */
static int64_t count_params(kn_block *b)
{
    int64_t total = 0;
    for (int i = 0; i < kn_block_num_params(b); i++)
        if (!kn_block_param_is_state(b, i)) total += kn_tensor_numel(kn_block_param_at(b, i));
    return total;
}

/* The formula of tests/gen/gen_models.py, in f64 rounded to the tensor. */
static void fill_formula(const char *name, kn_tensor *t)
{
    int64_t n = kn_tensor_numel(t), nd = kn_tensor_ndim(t);
    const char *leaf = strrchr(name, '.') ? strrchr(name, '.') + 1 : name;
    double a = 0.1, c = 0;
    if (nd >= 2)
        a = 1.5 / sqrt((double)(n / kn_tensor_dim(t, 0)));
    else if (!strcmp(leaf, "running_var"))
        a = 0.25, c = 1.25;
    else if (!strcmp(leaf, "weight"))
        c = 1.0;
    float *v = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        v[i] = (float)(a * sin(0.37 * (double)i + 0.1 * (double)strlen(name)) + c);
    kn_tensor *src = kn_tensor_from_data(KN_F32, (int)nd, kn_tensor_shape(t), v);
    kn_no_grad_begin();
    KT_OK(kn_tensor_copy_(t, src));
    kn_no_grad_end();
    kn_tensor_unref(src);
    free(v);
}

static kn_tensor *formula_input(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= shape[d];
    float *v = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        v[i] = (float)sin(0.11 * (double)i);
    kn_tensor *x = kn_tensor_from_data(KN_F32, ndim, shape, v);
    free(v);
    return x;
}

/* ---------------------------------------------------------------- names and errors */
static void test_names_and_errors(void)
{
    const char *const *names = kn_model_names();
    int n = 0;
    while (names[n])
        n++;
    KT_CHECK(n == 8, "8 models, got %d", n);
    static const char *const want[] = {"mlp",
                                       "lenet",
                                       "resnet18",
                                       "resnet34",
                                       "resnet50",
                                       "mobilenet_v2",
                                       "transformer_encoder",
                                       "lstm_classifier"};
    for (int i = 0; i < 8 && i < n; i++)
        KT_CHECK(!strcmp(names[i], want[i]), "name %d is %s", i, names[i]);
    KT_CHECK(!kn_model_new("resnet19", NULL), "unknown");
    kt_expect_fail_status(
        "model_new", kn_last_status(),
        "unknown model 'resnet19' (known: mlp, lenet, resnet18, resnet34, resnet50, "
        "mobilenet_v2, transformer_encoder, lstm_classifier)");
    KT_CHECK(!kn_model_new(NULL, NULL), "NULL name");
    kt_expect_fail_status("model_new", kn_last_status(), "name is NULL");
    KT_CHECK(!kn_model_new("lenet", &(kn_model_config){.num_classes = -3}), "negative classes");
    kt_expect_fail_status("model_new", kn_last_status(), "num_classes -3");
    KT_CHECK(!kn_model_new("lenet", &(kn_model_config){.image_size = 10}), "too small");
    kt_expect_fail_status("model_new", kn_last_status(), "image_size >= 12, got 10");
    /* the sequence models are dispatched to models/sequence.c */
    for (int i = 6; i < 8; i++) {
        kn_clear_error();
        kn_block *b = kn_model_new(want[i], &(kn_model_config){.vocab_size = 50,
                                                               .num_classes = 3,
                                                               .d_model = 16,
                                                               .num_heads = 2,
                                                               .num_layers = 1,
                                                               .ffn_dim = 32,
                                                               .max_len = 8});
        KT_CHECK(b || !strstr(kn_last_error(), "unknown model"), "%s dispatched: %s", want[i],
                 kn_last_error());
        kn_block_free(b);
    }
}

/* ---------------------------------------------------------------- torchvision layouts */
typedef struct tv_case {
    const char *model;
    kn_model_config cfg;
    const char *const *names;
    const int64_t (*shapes)[5];
    int n_entries;
    int64_t n_params;
    const kt_array *logits;
    int64_t in_shape[4];
} tv_case;

static void check_layout(const tv_case *c)
{
    kn_block *m = kn_model_new(c->model, &c->cfg);
    KT_NOTNULL(m);
    if (!m) return;
    KT_CHECK(count_params(m) == c->n_params, "%s: %lld parameters, torch has %lld", c->model,
             (long long)count_params(m), (long long)c->n_params);
    int n = kn_block_num_params(m);
    KT_CHECK(n == c->n_entries, "%s: %d tensors, torch has %d", c->model, n, c->n_entries);
    for (int i = 0; i < n && i < c->n_entries; i++) {
        const char *name = kn_block_param_name(m, i);
        kn_tensor *t = kn_block_param_at(m, i);
        bool same = !strcmp(name, c->names[i]) && kn_tensor_ndim(t) == c->shapes[i][0];
        for (int d = 0; same && d < kn_tensor_ndim(t); d++)
            same = kn_tensor_dim(t, d) == c->shapes[i][1 + d];
        KT_CHECK(same, "%s: tensor %d is '%s', torch has '%s'", c->model, i, name, c->names[i]);
        bool state = !strcmp(strrchr(name, '.'), ".running_mean") ||
                     !strcmp(strrchr(name, '.'), ".running_var");
        KT_CHECK(kn_block_param_is_state(m, i) == state, "%s: '%s' state flag", c->model, name);
        fill_formula(name, t);
    }
    kn_block_set_training(m, false);
    kn_tensor *x = formula_input(4, c->in_shape);
    kn_tensor *y = run(m, x);
    KT_NOTNULL(y);
    if (y) kt_check_array("model_new", y, c->logits, 1e-3, 1e-3);
    kn_tensor_unref(x), kn_tensor_unref(y);
    kn_block_free(m);
}

/* TV(model, golden tag, input n, c, h, w, config fields...) */
#define TV(model, tag, n, c, h, w, ...)                                                            \
    {                                                                                              \
        model, (kn_model_config){.cifar_stem = false, __VA_ARGS__}, tag##_names, tag##_shapes,     \
            tag##_n_entries, tag##_n_params, &tag##_logits,                                        \
        {                                                                                          \
            n, c, h, w                                                                             \
        }                                                                                          \
    }

static void test_torchvision_layouts(void)
{
    const tv_case cases[] = {
        TV("resnet18", tv_resnet18, 1, 3, 32, 32),
        TV("resnet34", tv_resnet34, 1, 3, 32, 32, .num_classes = 10),
        TV("resnet50", tv_resnet50, 1, 3, 32, 32),
        TV("mobilenet_v2", tv_mobilenet_v2, 1, 3, 32, 32),
        TV("mobilenet_v2", tv_mobilenet_v2_w05, 1, 3, 32, 32, .width_mult = 0.5, .num_classes = 10),
        TV("lenet", kn_lenet, 2, 1, 28, 28),
    };
    for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++)
        check_layout(&cases[i]);
    KT_CHECK(tv_resnet18_n_params == 11689512 && tv_resnet50_n_params == 25557032 &&
                 tv_mobilenet_v2_n_params == 3504872,
             "torchvision's published counts");
}

/* ---------------------------------------------------------------- shapes, backward */
static void check_shape(const char *model, kn_model_config cfg, int ndim, const int64_t *in,
                        int64_t classes, int64_t n_params)
{
    kn_block *m = kn_model_new(model, &cfg);
    KT_NOTNULL(m);
    if (!m) return;
    if (n_params)
        KT_CHECK(count_params(m) == n_params, "%s: %lld parameters", model,
                 (long long)count_params(m));
    kn_tensor *x = kn_tensor_rand_normal(KN_F32, ndim, in, 0, 1);
    kn_tensor *y = run(m, x);
    KT_CHECK(y && kn_tensor_ndim(y) == 2 && kn_tensor_dim(y, 0) == in[0] &&
                 kn_tensor_dim(y, 1) == classes,
             "%s: output (%lld, %lld): %s", model, (long long)in[0], (long long)classes,
             kn_last_error());
    kn_tensor_unref(x), kn_tensor_unref(y);
    kn_block_free(m);
}

static void test_forward_shapes(void)
{
    kn_manual_seed(1);
    /* mlp: 784-256-128-10 = 235146 parameters */
    check_shape("mlp", (kn_model_config){0}, 4, (int64_t[]){3, 1, 28, 28}, 10,
                784 * 256 + 256 + 256 * 128 + 128 + 1290);
    check_shape("mlp", (kn_model_config){.in_channels = 3, .image_size = 32, .num_classes = 5}, 4,
                (int64_t[]){2, 3, 32, 32}, 5, 3072 * 256 + 256 + 256 * 128 + 128 + 128 * 5 + 5);
    check_shape("lenet", (kn_model_config){.in_channels = 3, .image_size = 32}, 4,
                (int64_t[]){2, 3, 32, 32}, 10, 0);
    check_shape("resnet18", (kn_model_config){.cifar_stem = true}, 4, (int64_t[]){2, 3, 32, 32}, 10,
                11689512 - 512 * 1000 - 1000 + 5130 - 64 * 3 * 49 + 64 * 27);
    check_shape("resnet18", (kn_model_config){.num_classes = 7, .in_channels = 1}, 4,
                (int64_t[]){1, 1, 64, 48}, 7, 0);
    check_shape("mobilenet_v2", (kn_model_config){.width_mult = 0.35, .num_classes = 4}, 4,
                (int64_t[]){2, 3, 40, 40}, 4, 0);
}

/* forward + backward in training mode: every trainable parameter gets a
 * finite gradient and the batch norm statistics move */
static void check_backward(const char *model, kn_model_config cfg, const int64_t *in)
{
    kn_block *m = kn_model_new(model, &cfg);
    KT_NOTNULL(m);
    if (!m) return;
    kn_block_set_training(m, true);
    int n = kn_block_trainable_params(m, 0, NULL);
    kn_tensor **ps = malloc(sizeof *ps * (size_t)n);
    kn_block_trainable_params(m, n, ps);
    kn_tensor *x = kn_tensor_rand_normal(KN_F32, 4, in, 0, 1);
    kn_autograd_record(true);
    kn_tensor *y = run(m, x), *l = y ? kn_sum(y, 0, NULL, false) : NULL;
    kn_autograd_record(false);
    KT_NOTNULL(l);
    if (l) KT_OK(kn_backward(l, NULL));
    int missing = 0, bad = 0;
    for (int i = 0; i < n; i++) {
        kn_tensor *g = kn_tensor_grad(ps[i]);
        missing += !g;
        bad += g && !all_finite(g);
    }
    KT_CHECK(missing == 0 && bad == 0, "%s: %d of %d params without a grad, %d not finite", model,
             missing, n, bad);
    kn_tensor_unref(x), kn_tensor_unref(y), kn_tensor_unref(l);
    free(ps);
    kn_block_free(m);
}

static void test_forward_backward(void)
{
    kn_manual_seed(2);
    check_backward("resnet50", (kn_model_config){.num_classes = 10}, (int64_t[]){2, 3, 32, 32});
    check_backward("resnet34", (kn_model_config){.cifar_stem = true}, (int64_t[]){2, 3, 16, 16});
    check_backward("mobilenet_v2", (kn_model_config){.width_mult = 0.5}, (int64_t[]){2, 3, 32, 32});
    check_backward("lenet", (kn_model_config){0}, (int64_t[]){4, 1, 28, 28});
    check_backward("mlp", (kn_model_config){0}, (int64_t[]){4, 1, 28, 28});
}

/* ---------------------------------------------------------------- eager == hybridized */
/* Output and (training mode) the gradients of sum(y^2); an inference
 * graph computes no gradients, so eval mode compares outputs only. */
static void grads_of(kn_block *m, kn_tensor *x, kn_tensor **y, kn_tensor ***grads, int *n)
{
    *n = kn_block_trainable_params(m, 0, NULL);
    kn_tensor **ps = malloc(sizeof *ps * (size_t)*n);
    kn_block_trainable_params(m, *n, ps);
    for (int i = 0; i < *n; i++)
        kn_tensor_zero_grad(ps[i]);
    bool training = kn_block_is_training(m);
    kn_autograd_record(training);
    *y = run(m, x);
    kn_tensor *sq = *y && training ? kn_square(*y) : NULL,
              *l = sq ? kn_sum(sq, 0, NULL, false) : NULL;
    kn_autograd_record(false);
    if (l) KT_OK(kn_backward(l, NULL));
    *grads = malloc(sizeof **grads * (size_t)*n);
    for (int i = 0; i < *n; i++)
        (*grads)[i] = training ? kn_tensor_clone(kn_tensor_grad(ps[i])) : NULL;
    kn_tensor_unref(sq), kn_tensor_unref(l);
    free(ps);
}

static void check_hybrid(const char *model, kn_model_config cfg, const int64_t *in, bool training)
{
    kn_block *m = kn_model_new(model, &cfg);
    KT_NOTNULL(m);
    if (!m) return;
    kn_block_set_training(m, training);
    kn_tensor *x = kn_tensor_rand_normal(KN_F32, 4, in, 0, 1);
    kn_tensor *ye, *yh, **ge, **gh;
    int n;
    grads_of(m, x, &ye, &ge, &n);
    KT_OK(kn_block_hybridize(m, KN_HYBRIDIZE_ON));
    grads_of(m, x, &yh, &gh, &n);
    KT_CHECK(kt_max_abs_diff(ye, yh) < 1e-4, "%s (%s): outputs differ by %g", model,
             training ? "train" : "eval", kt_max_abs_diff(ye, yh));
    double worst = 0;
    for (int i = 0; i < n; i++) {
        if (training) worst = fmax(worst, kt_max_abs_diff(ge[i], gh[i]) / (1 + max_abs(ge[i])));
        kn_tensor_unref(ge[i]), kn_tensor_unref(gh[i]);
    }
    KT_CHECK(worst < 1e-4, "%s: gradients differ by %g (relative)", model, worst);
    KT_CHECK(kn_block_num_traces(m) == 1, "%s: one trace", model);
    free(ge), free(gh);
    kn_tensor_unref(x), kn_tensor_unref(ye), kn_tensor_unref(yh);
    kn_block_free(m);
}

static void test_eager_equals_hybridized(void)
{
    kn_manual_seed(3);
    check_hybrid("lenet", (kn_model_config){0}, (int64_t[]){4, 1, 28, 28}, true);
    check_hybrid("lenet", (kn_model_config){0}, (int64_t[]){4, 1, 28, 28}, false);
    check_hybrid("mlp", (kn_model_config){0}, (int64_t[]){4, 1, 28, 28}, true);
    check_hybrid("resnet18", (kn_model_config){.cifar_stem = true}, (int64_t[]){2, 3, 16, 16},
                 true);
    check_hybrid("mobilenet_v2", (kn_model_config){.width_mult = 0.5, .num_classes = 10},
                 (int64_t[]){2, 3, 32, 32}, false);
}

/* ---------------------------------------------------------------- training */
/* Cross-entropy of the model on (x, labels); records when `record`. */
static kn_tensor *loss_of(kn_block *m, kn_tensor *x, kn_tensor *labels)
{
    kn_tensor *y = run(m, x);
    kn_tensor *l = y ? kn_cross_entropy(y, labels, NULL, &(kn_loss_params){0}) : NULL;
    kn_tensor_unref(y);
    return l;
}

static double train_steps(kn_block *m, kn_optimizer *opt, kn_tensor *x, kn_tensor *labels,
                          int steps, double *first)
{
    double last = NAN;
    for (int s = 0; s < steps; s++) {
        kn_optimizer_zero_grad(opt);
        kn_autograd_record(true);
        kn_tensor *l = loss_of(m, x, labels);
        kn_autograd_record(false);
        KT_NOTNULL(l);
        if (!l) return NAN;
        kn_tensor_item(l, &last);
        if (s == 0 && first) *first = last;
        KT_OK(kn_backward(l, NULL));
        KT_OK(kn_optimizer_step(opt));
        kn_tensor_unref(l);
    }
    return last;
}

static kn_optimizer *optimizer_for(kn_block *m, kn_optim_kind kind, double lr)
{
    kn_optim_config oc = kn_optim_defaults(kind);
    oc.lr = lr;
    if (kind == KN_OPTIM_SGD) oc.momentum = 0.9;
    kn_optimizer *opt = kn_optimizer_new(kind, &oc);
    int n = kn_block_trainable_params(m, 0, NULL);
    kn_tensor **ps = malloc(sizeof *ps * (size_t)n);
    kn_block_trainable_params(m, n, ps);
    KT_OK(kn_optimizer_add_group(opt, n, ps, NULL));
    free(ps);
    return opt;
}

/* 64 images of 4 classes: a per-class pattern plus noise. */
static void synthetic_set(int n, int classes, int side, kn_tensor **x, kn_tensor **labels)
{
    kn_tensor *protos = kn_tensor_rand_normal(KN_F32, 2, (int64_t[]){classes, side * side}, 0, 1);
    kn_tensor *noise = kn_tensor_rand_normal(KN_F32, 2, (int64_t[]){n, side * side}, 0, 0.5);
    float *p = kn_tensor_data(protos), *z = kn_tensor_data(noise);
    int64_t *lab = malloc(sizeof(int64_t) * (size_t)n);
    for (int i = 0; i < n; i++) {
        lab[i] = i % classes;
        for (int j = 0; j < side * side; j++)
            z[i * side * side + j] += p[lab[i] * side * side + j];
    }
    *x = kn_reshape(noise, 4, (int64_t[]){n, 1, side, side});
    *labels = kn_tensor_from_data(KN_I64, 1, (int64_t[]){n}, lab);
    free(lab);
    kn_tensor_unref(protos), kn_tensor_unref(noise);
}

static void test_lenet_fits(void)
{
    kn_manual_seed(4);
    kn_tensor *x, *labels;
    synthetic_set(64, 4, 28, &x, &labels);
    kn_block *m = kn_model_new("lenet", &(kn_model_config){.num_classes = 4});
    KT_NOTNULL(m);
    kn_block_set_training(m, true);
    KT_OK(kn_block_hybridize(m, KN_HYBRIDIZE_ON));
    kn_optimizer *opt = optimizer_for(m, KN_OPTIM_ADAM, 0.01);
    double first = NAN, last = train_steps(m, opt, x, labels, 30, &first);
    KT_CHECK(last < 0.05 * first && last < 0.05, "lenet: loss %g -> %g", first, last);
    /* eval mode (running statistics) classifies the training set */
    kn_block_set_training(m, false);
    kn_tensor *y = run(m, x), *pred = y ? kn_argmax(y, 1, false) : NULL;
    int64_t *pv = pred ? kn_tensor_data(pred) : NULL, *lv = kn_tensor_data(labels);
    int right = 0;
    for (int i = 0; pv && i < 64; i++)
        right += pv[i] == lv[i];
    KT_CHECK(right >= 60, "lenet eval accuracy %d / 64", right);
    kn_tensor_unref(y), kn_tensor_unref(pred);
    kn_optimizer_free(opt);
    kn_tensor_unref(x), kn_tensor_unref(labels);
    kn_block_free(m);
}

static void test_resnet18_cifar_step(void)
{
    kn_manual_seed(5);
    kn_block *m = kn_model_new("resnet18", &(kn_model_config){.cifar_stem = true});
    KT_NOTNULL(m);
    if (!m) return;
    kn_block_set_training(m, true);
    kn_tensor *x = kn_tensor_rand_normal(KN_F32, 4, (int64_t[]){2, 3, 32, 32}, 0, 1);
    kn_tensor *labels = kn_tensor_from_data(KN_I64, 1, (int64_t[]){2}, (int64_t[]){3, 7});
    kn_tensor *w0 = kn_tensor_clone(kn_block_param_at(m, 0)); /* conv1.weight */
    kn_tensor *rm = NULL;
    for (int i = 0; i < kn_block_num_params(m); i++)
        if (!strcmp(kn_block_param_name(m, i), "bn1.running_mean")) rm = kn_block_param_at(m, i);
    kn_tensor *rm0 = rm ? kn_tensor_clone(rm) : NULL;
    kn_optimizer *opt = optimizer_for(m, KN_OPTIM_SGD, 0.01);
    double first = NAN, last = train_steps(m, opt, x, labels, 3, &first);
    KT_CHECK(isfinite(first) && fabs(first - log(10.0)) < 1.5, "first loss %g near log(10)", first);
    KT_CHECK(last < first, "resnet18: loss %g -> %g over 3 steps", first, last);
    KT_CHECK(kt_max_abs_diff(w0, kn_block_param_at(m, 0)) > 0, "conv1.weight updated");
    KT_CHECK(rm0 && kt_max_abs_diff(rm0, rm) > 0, "bn1.running_mean updated");
    kn_tensor_unref(w0), kn_tensor_unref(rm0), kn_tensor_unref(x), kn_tensor_unref(labels);
    kn_optimizer_free(opt);
    kn_block_free(m);
}

/* ---------------------------------------------------------------- allocation failures */
static kn_status build_lenet(void *ctx)
{
    kn_block *m = kn_model_new(ctx, NULL);
    kn_block_free(m);
    return m ? KN_OK : kn_last_status();
}

static void test_alloc_failures(void)
{
    KT_CHECK(kt_alloc_walk("model_new", build_lenet, "lenet") > 20, "lenet walked");
    KT_CHECK(kt_alloc_walk("model_new", build_lenet, "mlp") > 5, "mlp walked");
}

int main(void)
{
    KT_RUN(test_names_and_errors);
    KT_RUN(test_torchvision_layouts);
    KT_RUN(test_forward_shapes);
    KT_RUN(test_forward_backward);
    KT_RUN(test_eager_equals_hybridized);
    KT_RUN(test_lenet_fits);
    KT_RUN(test_resnet18_cifar_step);
    KT_RUN(test_alloc_failures);
    return kt_finish();
}
