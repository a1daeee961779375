/* test_block_params.c — parameter management over block trees: state vs
 * trainable, freezing, sharing, the trainable list, name maps, deferred
 * parameters created by a first call (eager, traced by a hybridized parent,
 * or shape-only through kn_block_init_shapes), block paths, user_free. */
#include "harness.h"

#include <stdlib.h>

/* A dense layer whose in_units is taken from the first input it sees. */
typedef struct lazy_dense {
    int64_t units;
    int *freed; /* counts user_free calls */
} lazy_dense;

static void lazy_free(void *user)
{
    lazy_dense *c = user;
    (*c->freed)++;
    free(c);
}

static kn_status lazy_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out, kn_tensor **out,
                              void *user)
{
    (void)n_in, (void)n_out;
    lazy_dense *c = user;
    kn_tensor *w = kn_block_param(b, "weight");
    if (!w) {
        kn_clear_error();
        int64_t shape[2] = {c->units, kn_tensor_dim(in[0], -1)};
        kn_tensor *v = kn_tensor_rand_uniform(KN_F32, 2, shape, -0.5, 0.5);
        kn_status s = v ? kn_block_add_param(b, "weight", v) : kn_last_status();
        kn_tensor_unref(v);
        if (s) return s;
        w = kn_block_param(b, "weight");
    }
    out[0] = kn_linear(in[0], w, NULL);
    return out[0] ? KN_OK : kn_last_status();
}

static kn_block *lazy(int64_t units, int *freed)
{
    lazy_dense *c = malloc(sizeof *c);
    c->units = units, c->freed = freed;
    kn_block *b = kn_block_new("lazy", lazy_forward, c);
    kn_block_set_user_free(b, lazy_free);
    return b;
}

static kn_status chain_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out, kn_tensor **out,
                               void *user)
{
    (void)n_in, (void)n_out, (void)user;
    kn_tensor *h = NULL;
    kn_status s = kn_block_forward(kn_block_child(b, "a"), 1, in, 1, &h);
    if (!s) s = kn_block_forward(kn_block_child(b, "b"), 1, &h, 1, out);
    kn_tensor_unref(h);
    return s;
}

static kn_block *two_layers(int *freed)
{
    kn_block *net = kn_block_new("net", chain_forward, NULL);
    kn_block_add_child(net, "a", lazy(4, freed));
    kn_block_add_child(net, "b", lazy(3, freed));
    return net;
}

static void test_deferred_eager_traced_and_shape_only(void)
{
    int freed = 0;
    int64_t xs[2] = {5, 7};
    kn_tensor *x = kn_tensor_rand_normal(KN_F32, 2, xs, 0, 1);
    kn_block *eager = two_layers(&freed), *hyb = two_layers(&freed), *shapes = two_layers(&freed);
    KT_CHECK(kn_block_num_params(eager) == 0, "no parameters before the first call");
    kn_manual_seed(3);
    kn_tensor *y1 = NULL, *y2 = NULL;
    KT_OK(kn_block_forward(eager, 1, &x, 1, &y1));
    KT_CHECK(kn_block_num_params(eager) == 2, "two weights after the first call");
    KT_CHECK(!strcmp(kn_block_param_name(eager, 0), "a.weight"), "%s", kn_block_param_name(eager, 0));
    KT_CHECK(kn_tensor_dim(kn_block_param_at(eager, 0), 1) == 7 && kn_tensor_dim(kn_block_param_at(eager, 1), 1) == 4,
             "in_units taken from the inputs");
    /* the same seed through a hybridized parent: created while traced */
    kn_manual_seed(3);
    kn_block_hybridize(hyb, KN_HYBRIDIZE_ON);
    KT_OK(kn_block_forward(hyb, 1, &x, 1, &y2));
    KT_CHECK(y2 && kt_equal_bits(y1, y2), "created during the trace, same values as eagerly");
    KT_CHECK(kn_block_num_traces(hyb) == 1, "one trace");
    kn_tensor_unref(y2);
    KT_OK(kn_block_forward(hyb, 1, &x, 1, &y2)); /* cached graph, parameters known */
    KT_CHECK(y2 && kt_equal_bits(y1, y2), "second call");
    KT_CHECK(kn_block_num_traces(hyb) == 1, "the first call's graph holds the new parameters (%lld traces)",
             (long long)kn_block_num_traces(hyb));
    /* shape only: no computation, parameters exist */
    KT_OK(kn_block_init_shapes(shapes, 1, &x));
    KT_CHECK(kn_block_num_params(shapes) == 2, "init_shapes creates them");
    kn_tensor_unref(y1), kn_tensor_unref(y2);
    kn_block_free(eager), kn_block_free(hyb), kn_block_free(shapes);
    KT_CHECK(freed == 6, "user_free ran for every layer (%d)", freed);
    kn_tensor_unref(x);
}

static kn_status noop_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out, kn_tensor **out,
                              void *user)
{
    (void)b, (void)n_in, (void)n_out, (void)user;
    out[0] = kn_tensor_ref(in[0]);
    return KN_OK;
}

static kn_block *with_params(const char *name, int64_t n)
{
    kn_block *b = kn_block_new(name, noop_forward, NULL);
    kn_tensor *w = kn_tensor_ones(KN_F32, 1, &n), *m = kn_tensor_zeros(KN_F32, 1, &n);
    kn_block_add_param(b, "weight", w);
    kn_block_add_state(b, "running_mean", m);
    kn_tensor_unref(w), kn_tensor_unref(m);
    return b;
}

static void test_state_freeze_share_trainable(void)
{
    kn_block *root = kn_block_new("root", noop_forward, NULL);
    kn_block *f = kn_block_new("features", noop_forward, NULL);
    kn_block_add_child(f, "0", with_params("l0", 3));
    kn_block_add_child(f, "1", with_params("l1", 3));
    kn_block_add_child(root, "features", f);
    kn_block_add_child(root, "head", with_params("head", 3));
    char buf[64];
    KT_CHECK(!strcmp(kn_block_path(kn_block_child(f, "1"), buf, sizeof buf), "features.1"), "%s", buf);
    KT_CHECK(!strcmp(kn_block_path(root, buf, sizeof buf), ""), "root path");
    KT_CHECK(!strcmp(kn_block_label(kn_block_child(f, "1"), buf, sizeof buf), "l1 'features.1'"), "%s", buf);
    KT_CHECK(!strcmp(kn_block_label(root, buf, sizeof buf), "root"), "root label: %s", buf);
    KT_CHECK(kn_block_num_children(root) == 2 && !strcmp(kn_block_child_name(root, 1), "head"), "children");
    KT_CHECK(kn_block_num_params(root) == 6, "6 listed");
    KT_CHECK(kn_block_param_is_state(root, 1) && !kn_block_param_is_state(root, 0), "state flags");
    kn_tensor *tr[8];
    KT_CHECK(kn_block_trainable_params(root, 8, tr) == 3, "weights only");
    KT_CHECK(kn_tensor_requires_grad(tr[0]), "trainable ones require grad");
    KT_OK(kn_block_freeze(root, "features.*", true));
    KT_CHECK(kn_block_trainable_params(root, 8, tr) == 1, "frozen features left out");
    KT_CHECK(kn_block_param_is_frozen(root, 0) && !kn_tensor_requires_grad(kn_block_param_at(root, 0)),
             "frozen: no grad");
    KT_OK(kn_block_freeze(root, NULL, false));
    KT_CHECK(kn_block_trainable_params(root, 8, tr) == 3, "unfrozen");
    KT_CHECK(kn_block_freeze(root, "nothing.*", true) != KN_OK &&
             strstr(kn_last_error(), "no parameter") != NULL, "%s", kn_last_error());
    /* sharing: head.weight becomes features.0.weight */
    KT_OK(kn_block_share_param(root, "head.weight", root, "features.0.weight"));
    KT_CHECK(kn_block_param_at(root, 4) == kn_block_param_at(root, 0), "same tensor");
    KT_CHECK(kn_block_trainable_params(root, 8, tr) == 2, "shared listed once");
    KT_CHECK(kn_block_trainable_params(root, 0, NULL) == 2, "counting only");
    KT_CHECK(kn_block_share_param(root, "head.weight", root, "features.0.nothing") != KN_OK, "missing source");
    kn_block *other = with_params("o", 4);
    KT_CHECK(kn_block_share_param(root, "head.weight", other, "weight") == KN_ERR_SHAPE, "shape differs");
    /* maps: save, change, load back */
    kn_tensor_map *m = kn_block_param_map(root);
    KT_CHECK(m && kn_tensor_map_size(m) == 6, "every parameter and state");
    kn_tensor_map *copy = kn_tensor_map_new();
    for (int i = 0; i < 6; i++) {
        kn_tensor *c = kn_tensor_clone(kn_tensor_map_at(m, i));
        kn_tensor_map_set(copy, kn_tensor_map_name(m, i), c);
        kn_tensor_unref(c);
    }
    kn_tensor *w0 = kn_block_param_at(root, 0);
    kn_tensor_fill_(w0, 5.0);
    KT_OK(kn_block_load_param_map(root, copy));
    double v = 0;
    kn_tensor *e = kn_narrow(w0, 0, 0, 1);
    kn_tensor_item(e, &v);
    KT_CHECK(v == 1.0, "restored (%g)", v);
    kn_tensor_unref(e);
    KT_CHECK(kn_block_load_param_map(other, copy) != KN_OK && strstr(kn_last_error(), "no tensor"),
             "%s", kn_last_error());
    kn_tensor_map_free(m), kn_tensor_map_free(copy);
    kn_block_free(other), kn_block_free(root);
}

static kn_status conv_bn_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out, kn_tensor **out,
                                 void *user)
{
    (void)n_in, (void)n_out, (void)user;
    kn_conv_params cp = {.pad_begin = {1, 1}, .pad_end = {1, 1}};
    kn_tensor *y = kn_conv2d(in[0], kn_block_param(b, "w"), NULL, &cp);
    out[0] = kn_batch_norm(y, kn_block_param(b, "gamma"), kn_block_param(b, "beta"),
                           kn_block_param(b, "mean"), kn_block_param(b, "var"), kn_block_is_training(b),
                           0.1, 1e-5, KN_LAYOUT_NCHW);
    kn_tensor_unref(y);
    return out[0] ? KN_OK : kn_last_status();
}

/* An inference graph whose passes baked parameter values in (batch norm
 * folded into the conv) is rebuilt once a parameter changes; and a graph
 * run under autograd keeps gradients even in eval mode. */
static void test_hybridized_sees_new_parameters(void)
{
    kn_manual_seed(4);
    int64_t ws[4] = {3, 2, 3, 3}, c = 3, xs[4] = {2, 2, 5, 5};
    kn_block *b = kn_block_new("conv_bn", conv_bn_forward, NULL);
    kn_tensor *t[5] = {kn_tensor_rand_normal(KN_F32, 4, ws, 0, 1), kn_tensor_rand_uniform(KN_F32, 1, &c, 0.5, 2),
                       kn_tensor_rand_normal(KN_F32, 1, &c, 0, 1), kn_tensor_rand_normal(KN_F32, 1, &c, 0, 1),
                       kn_tensor_rand_uniform(KN_F32, 1, &c, 0.5, 2)};
    const char *names[5] = {"w", "gamma", "beta", "mean", "var"};
    for (int i = 0; i < 5; i++) {
        if (i < 3) kn_block_add_param(b, names[i], t[i]);
        else kn_block_add_state(b, names[i], t[i]);
        kn_tensor_unref(t[i]);
    }
    kn_tensor *x = kn_tensor_rand_normal(KN_F32, 4, xs, 0, 1), *eager = NULL, *y = NULL;
    kn_block_set_training(b, false);
    kn_block_hybridize(b, KN_HYBRIDIZE_ON);
    KT_OK(kn_block_forward(b, 1, &x, 1, &y));
    kn_tensor_unref(y);
    KT_OK(kn_tensor_fill_(kn_block_param(b, "gamma"), 3.0)); /* as an optimizer step would */
    KT_OK(kn_block_forward(b, 1, &x, 1, &y));
    kn_block_hybridize(b, KN_HYBRIDIZE_OFF);
    KT_OK(kn_block_forward(b, 1, &x, 1, &eager));
    double diff = kt_max_abs_diff(y, eager);
    KT_CHECK(diff < 1e-5, "the hybridized eval output follows the changed gamma (off by %g)", diff);
    kn_tensor_unref(y), kn_tensor_unref(eager);
    /* eval mode under autograd: gradients reach the parameters */
    kn_block_hybridize(b, KN_HYBRIDIZE_ON);
    kn_tensor *w = kn_block_param(b, "w");
    kn_tensor_set_requires_grad(w, true);
    kn_autograd_record(true);
    KT_OK(kn_block_forward(b, 1, &x, 1, &y));
    kn_tensor *s = y ? kn_sum(y, 0, NULL, false) : NULL;
    kn_autograd_record(false);
    KT_OK(kn_backward(s, NULL));
    KT_CHECK(kn_tensor_grad(w) != NULL, "eval-mode hybridized graph kept the gradient");
    kn_tensor_unref(s), kn_tensor_unref(y), kn_tensor_unref(x);
    kn_block_free(b);
}

int main(void)
{
    KT_RUN(test_hybridized_sees_new_parameters);
    KT_RUN(test_deferred_eager_traced_and_shape_only);
    KT_RUN(test_state_freeze_share_trainable);
    return kt_finish();
}
