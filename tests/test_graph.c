/* test_graph.c — tracing, blocks and hybridize: hybridized outputs and
 * gradients equal eager ones (an MLP and a small ResNet-style network, in
 * inference and training), each pass's invariant on small graphs, the
 * signature cache, dropout under replay, and errors that name the user's
 * line. */
#include "harness.h"

#include "graph/graph.h"
#include "ops/fused.h"

#include <stdlib.h>
#include <unistd.h>

/* ---------------------------------------------------------------- models */
static kn_status mlp_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                             kn_tensor **out, void *user)
{
    (void)n_in, (void)n_out, (void)user;
    kn_scratch s = {0};
    kn_tensor *h = kn__keep(&s, kn_linear(in[0], kn_block_param(b, "w1"), kn_block_param(b, "b1")));
    kn_tensor *a = kn__keep(&s, kn_relu(h));
    kn_tensor *d = kn__keep(&s, kn_dropout(a, 0.5, kn_block_is_training(b)));
    kn_tensor *z = kn__keep(&s, kn_linear(d, kn_block_param(b, "w2"), kn_block_param(b, "b2")));
    out[0] = kn_log_softmax(z, -1);
    kn__scratch_free(&s);
    return out[0] ? KN_OK : kn_last_status();
}

static kn_tensor *randn(int ndim, const int64_t *shape, double std, uint64_t seed)
{
    kn_manual_seed(seed);
    return kn_tensor_rand_normal(KN_F32, ndim, shape, 0, std);
}

static kn_block *make_mlp(void)
{
    kn_block *b = kn_block_new("mlp", mlp_forward, NULL);
    int64_t w1[2] = {16, 8}, b1[1] = {16}, w2[2] = {5, 16}, b2[1] = {5};
    kn_tensor *p[4] = {randn(2, w1, 0.5, 1), randn(1, b1, 0.1, 2), randn(2, w2, 0.5, 3),
                       randn(1, b2, 0.1, 4)};
    const char *names[4] = {"w1", "b1", "w2", "b2"};
    for (int i = 0; i < 4; i++) {
        KT_OK(kn_block_add_param(b, names[i], p[i]));
        kn_tensor_set_requires_grad(p[i], true);
        kn_tensor_unref(p[i]);
    }
    return b;
}

/* conv-bn-relu-conv-bn + skip, relu, global pool, linear: a ResNet basic block. */
static kn_status resnet_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                                kn_tensor **out, void *user)
{
    (void)n_in, (void)n_out, (void)user;
    kn_scratch s = {0};
    bool tr = kn_block_is_training(b);
    kn_conv_params same = {.pad_begin = {1, 1}, .pad_end = {1, 1}};
#define P(name) kn_block_param(b, name)
    kn_tensor *c1 = kn__keep(&s, kn_conv2d(in[0], P("conv1.weight"), NULL, &same));
    kn_tensor *n1 = kn__keep(&s, kn_batch_norm(c1, P("bn1.gamma"), P("bn1.beta"), P("bn1.mean"),
                                               P("bn1.var"), tr, 0.1, 1e-5, KN_LAYOUT_NCHW));
    kn_tensor *r1 = kn__keep(&s, kn_relu(n1));
    kn_tensor *c2 = kn__keep(&s, kn_conv2d(r1, P("conv2.weight"), NULL, &same));
    kn_tensor *n2 = kn__keep(&s, kn_batch_norm(c2, P("bn2.gamma"), P("bn2.beta"), P("bn2.mean"),
                                               P("bn2.var"), tr, 0.1, 1e-5, KN_LAYOUT_NCHW));
    kn_tensor *sum = kn__keep(&s, kn_add(n2, in[0]));
    kn_tensor *r2 = kn__keep(&s, kn_relu(sum));
    kn_tensor *pool = kn__keep(&s, kn_global_avg_pool(r2, KN_LAYOUT_NCHW));
    kn_tensor *flat = kn__keep(&s, kn_flatten(pool, 1, -1));
    out[0] = kn_linear(flat, P("fc.weight"), P("fc.bias"));
#undef P
    kn__scratch_free(&s);
    return out[0] ? KN_OK : kn_last_status();
}

static void add_param(kn_block *b, const char *name, kn_tensor *t, bool grad)
{
    KT_OK(kn_block_add_param(b, name, t));
    if (grad) kn_tensor_set_requires_grad(t, true);
    kn_tensor_unref(t);
}

static kn_block *make_resnet(void)
{
    kn_block *b = kn_block_new("resnet_block", resnet_forward, NULL);
    int64_t w[4] = {4, 4, 3, 3}, c[1] = {4}, fc[2] = {3, 4}, fb[1] = {3};
    add_param(b, "conv1.weight", randn(4, w, 0.3, 11), true);
    add_param(b, "conv2.weight", randn(4, w, 0.3, 12), true);
    const char *bn[2] = {"bn1", "bn2"};
    for (int i = 0; i < 2; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s.gamma", bn[i]);
        add_param(b, name, kn_tensor_ones(KN_F32, 1, c), true);
        snprintf(name, sizeof name, "%s.beta", bn[i]);
        add_param(b, name, kn_tensor_zeros(KN_F32, 1, c), true);
        snprintf(name, sizeof name, "%s.mean", bn[i]);
        add_param(b, name, kn_tensor_zeros(KN_F32, 1, c), false);
        snprintf(name, sizeof name, "%s.var", bn[i]);
        add_param(b, name, kn_tensor_ones(KN_F32, 1, c), false);
    }
    add_param(b, "fc.weight", randn(2, fc, 0.5, 13), true);
    add_param(b, "fc.bias", kn_tensor_zeros(KN_F32, 1, fb), true);
    return b;
}

static kn_tensor *forward1(kn_block *b, kn_tensor *x)
{
    kn_tensor *y = NULL;
    kn_status s = kn_block_forward(b, 1, &x, 1, &y);
    KT_CHECK(s == KN_OK, "forward: %s", kn_last_error());
    return y;
}

static int count_op(const kn_graph *g, const char *op)
{
    int n = 0;
    for (int32_t i = 0; i < g->n_nodes; i++)
        n += !g->nodes[i].dead && !strcmp(g->nodes[i].def->name, op);
    return n;
}

/* ---------------------------------------------------------------- tests */
static void test_mlp_inference_equal(void)
{
    kn_block *b = make_mlp();
    int64_t xs[2] = {4, 8};
    kn_tensor *x = randn(2, xs, 1, 5);
    kn_tensor *eager = forward1(b, x);
    KT_OK(kn_block_hybridize(b, KN_HYBRIDIZE_ON));
    kn_tensor *h1 = forward1(b, x), *h2 = forward1(b, x);
    KT_CHECK(kt_max_rel_diff(h1, eager) < 1e-5 && kt_equal_bits(h1, h2), "hybridized == eager (%g)",
             kt_max_rel_diff(h1, eager));
    kn_graph *g = kn_block_graph(b);
    KT_CHECK(g && count_op(g, "linear_fused") == 2 && count_op(g, "relu") == 0,
             "linear+relu and linear fused (%d nodes)", kn_graph_num_nodes(g));
    kn_tensor_unref(eager), kn_tensor_unref(h1), kn_tensor_unref(h2), kn_tensor_unref(x);
    kn_block_free(b);
}

static void test_signature_cache(void)
{
    kn_block *b = make_mlp();
    kn_block_hybridize(b, KN_HYBRIDIZE_ON);
    int64_t s4[2] = {4, 8}, s2[2] = {2, 8};
    kn_tensor *x4 = randn(2, s4, 1, 6), *x2 = randn(2, s2, 1, 7);
    kn_tensor *y = forward1(b, x4);
    kn_graph *g4 = kn_block_graph(b);
    kn_tensor_unref(y);
    y = forward1(b, x2);
    kn_graph *g2 = kn_block_graph(b);
    KT_CHECK(g2 != g4 && kn_tensor_dim(y, 0) == 2, "a new batch size gets its own graph");
    KT_CHECK(kn_block_num_traces(b) == 1, "... made without tracing again (%lld traces)",
             (long long)kn_block_num_traces(b));
    kn_tensor *e2 = NULL;
    kn_block_hybridize(b, KN_HYBRIDIZE_OFF);
    KT_OK(kn_block_forward(b, 1, &x2, 1, &e2));
    KT_CHECK(kt_equal_bits(y, e2), "and it computes what eager does");
    kn_block_hybridize(b, KN_HYBRIDIZE_ON);
    kn_tensor_unref(e2);
    kn_tensor *y2 = forward1(b, x2);
    kn_tensor_unref(y2);
    kn_tensor_unref(y);
    y = forward1(b, x4);
    kn_graph *again = kn_block_graph(b);
    KT_CHECK(kn_block_num_traces(b) <= 2, "the first signature is served from the cache");
    (void)again;
    kn_tensor_unref(y), kn_tensor_unref(x4), kn_tensor_unref(x2);
    kn_block_free(b);
}

/* loss = -sum(log_softmax(out)[:, 0]) style: sum of outputs weighted. */
static kn_status loss_and_grads(kn_block *b, kn_tensor *x, kn_tensor **grads, int n)
{
    for (int i = 0; i < kn_block_num_params(b); i++)
        kn_tensor_zero_grad(kn_block_param_at(b, i));
    kn_autograd_record(true);
    kn_tensor *y = forward1(b, x);
    kn_tensor *sq = kn_mul(y, y);
    kn_tensor *loss = kn_sum(sq, 0, NULL, false);
    kn_autograd_record(false);
    kn_status s = loss ? kn_backward(loss, NULL) : kn_last_status();
    kn_tensor_unref(y), kn_tensor_unref(sq), kn_tensor_unref(loss);
    for (int i = 0; i < n; i++) {
        kn_tensor *g = kn_tensor_grad(kn_block_param_at(b, i));
        grads[i] = g ? kn_tensor_clone(g) : NULL;
    }
    return s;
}

static void compare_training(kn_block *b, kn_tensor *x, const char *what)
{
    int n = kn_block_num_params(b);
    kn_tensor *eager[32] = {0}, *hyb[32] = {0};
    kn_block_set_training(b, true);
    kn_block_hybridize(b, KN_HYBRIDIZE_OFF);
    kn_manual_seed(99);
    KT_OK(loss_and_grads(b, x, eager, n));
    kn_block_hybridize(b, KN_HYBRIDIZE_ON);
    kn_manual_seed(99);
    KT_OK(loss_and_grads(b, x, hyb, n));
    int same = 0, with_grad = 0;
    for (int i = 0; i < n; i++) {
        if (!eager[i] && !hyb[i]) continue;
        with_grad++;
        same += kt_equal_bits(eager[i], hyb[i]);
        kn_tensor_unref(eager[i]), kn_tensor_unref(hyb[i]);
    }
    KT_CHECK(with_grad > 0 && same == with_grad, "%s: %d of %d parameter gradients equal bitwise",
             what, same, with_grad);
}

/* A forward that bakes the batch size into a reshape must be traced again. */
static kn_status baked_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out, kn_tensor **out,
                               void *user)
{
    (void)b, (void)n_in, (void)n_out, (void)user;
    int64_t shape[2] = {kn_tensor_dim(in[0], 0), -1};
    out[0] = kn_reshape(in[0], 2, shape);
    return out[0] ? KN_OK : kn_last_status();
}

static void test_batch_baked_in(void)
{
    kn_block *b = kn_block_new("baked", baked_forward, NULL);
    kn_block_hybridize(b, KN_HYBRIDIZE_ON);
    int64_t s3[3] = {3, 2, 2}, s5[3] = {5, 2, 2};
    kn_tensor *x3 = kn_tensor_ones(KN_F32, 3, s3), *x5 = kn_tensor_ones(KN_F32, 3, s5);
    kn_tensor *y3 = forward1(b, x3), *y5 = forward1(b, x5);
    KT_CHECK(kn_block_num_traces(b) == 2, "traced again (%lld)", (long long)kn_block_num_traces(b));
    KT_CHECK(y5 && kn_tensor_dim(y5, 0) == 5 && kn_tensor_dim(y5, 1) == 4, "the batch of 5 kept its rows");
    kn_tensor_unref(x3), kn_tensor_unref(x5), kn_tensor_unref(y3), kn_tensor_unref(y5);
    kn_block_free(b);
}

static void test_mlp_training_equal(void)
{
    kn_block *b = make_mlp();
    int64_t xs[2] = {4, 8};
    kn_tensor *x = randn(2, xs, 1, 8);
    compare_training(b, x, "mlp with dropout");
    kn_tensor_unref(x);
    kn_block_free(b);
}

static void test_resnet_equal(void)
{
    kn_block *b = make_resnet();
    int64_t xs[4] = {2, 4, 6, 6};
    kn_tensor *x = randn(4, xs, 1, 9);
    kn_tensor *eager = forward1(b, x);
    kn_block_hybridize(b, KN_HYBRIDIZE_ON);
    kn_tensor *hyb = forward1(b, x);
    /* batch norm folded into the convolutions: equal up to rounding */
    KT_CHECK(kt_max_rel_diff(hyb, eager) < 1e-5, "resnet block inference: hybridized ~ eager (%g)",
             kt_max_rel_diff(hyb, eager));
    KT_CHECK(count_op(kn_block_graph(b), "batch_norm") == 0, "both batch norms folded");
    KT_CHECK(count_op(kn_block_graph(b), "conv2d_fused") == 2, "conv+relu and conv+add+relu fused (%d)",
             count_op(kn_block_graph(b), "conv2d_fused"));
    kn_tensor_unref(hyb);
    setenv("KILN_DISABLE_PASSES", "bnfold", 1);
    kn_block_hybridize(b, KN_HYBRIDIZE_OFF), kn_block_hybridize(b, KN_HYBRIDIZE_ON); /* retrace */
    hyb = forward1(b, x);
    unsetenv("KILN_DISABLE_PASSES");
    KT_CHECK(kt_equal_bits(eager, hyb), "without bnfold: hybridized == eager bitwise");
    KT_CHECK(count_op(kn_block_graph(b), "batch_norm") == 2, "batch norms kept");
    kn_tensor_unref(eager), kn_tensor_unref(hyb);
    compare_training(b, x, "resnet block");
    /* running statistics moved in training, through the graph too */
    double m;
    int64_t i0 = 0;
    kn_tensor_get(kn_block_param(b, "bn1.mean"), &i0, &m);
    KT_CHECK(m != 0, "running mean updated by training runs");
    kn_tensor_unref(x);
    kn_block_free(b);
}

static void test_dropout_replay(void)
{
    kn_graph *g = kn_graph_new();
    int64_t s[1] = {1000};
    kn_tensor *x = kn_graph_input(g, "x", KN_F32, 1, s);
    kn_tensor *y = kn_dropout(x, 0.5, true);
    KT_OK(kn_graph_output(g, y));
    KT_OK(kn_graph_compile(g, KN_GRAPH_TRAINING));
    kn_tensor *ones = kn_tensor_ones(KN_F32, 1, s), *a = NULL, *b = NULL;
    KT_OK(kn_graph_run(g, 1, &ones, 1, &a));
    KT_OK(kn_graph_run(g, 1, &ones, 1, &b));
    KT_CHECK(a && b && !kt_equal_bits(a, b), "each run draws a fresh mask");
    kn_tensor_unref(a), kn_tensor_unref(b), kn_tensor_unref(x), kn_tensor_unref(y);
    KT_OK(kn_graph_compile(g, KN_GRAPH_INFERENCE));
    KT_CHECK(kn_graph_num_nodes(g) == 0, "inference drops dropout (%d nodes left)", kn_graph_num_nodes(g));
    KT_OK(kn_graph_run(g, 1, &ones, 1, &a));
    KT_CHECK(kt_equal_bits(a, ones), "identity in inference");
    kn_tensor_unref(a), kn_tensor_unref(ones);
    kn_graph_free(g);
}

static void test_cse_and_dce(void)
{
    kn_graph *g = kn_graph_new();
    int64_t s[1] = {3};
    kn_tensor *x = kn_graph_input(g, "x", KN_F64, 1, s);
    kn_tensor *e1 = kn_exp(x), *e2 = kn_exp(x), *unused = kn_sin(x);
    kn_tensor *y = kn_add(e1, e2);
    KT_OK(kn_graph_output(g, y));
    KT_CHECK(kn_graph_num_nodes(g) == 4, "traced 4 nodes");
    setenv("KILN_DISABLE_PASSES", "cse", 1);
    KT_OK(kn_graph_compile(g, KN_GRAPH_INFERENCE));
    KT_CHECK(kn_graph_num_nodes(g) == 3, "dce removed sin, cse off keeps both exps (%d)",
             kn_graph_num_nodes(g));
    unsetenv("KILN_DISABLE_PASSES");
    KT_OK(kn_graph_compile(g, KN_GRAPH_INFERENCE));
    KT_CHECK(kn_graph_num_nodes(g) == 2, "cse merged the exps (%d)", kn_graph_num_nodes(g));
    kn_tensor *in = kt_tensor(KN_F64, 1, s, (double[]){0, 1, 2}), *out = NULL;
    KT_OK(kn_graph_run(g, 1, &in, 1, &out));
    kt_check_values("graph_run", out, 1, s, (double[]){2, 2 * exp(1), 2 * exp(2)}, 1e-15, 0);
    kn_tensor *objs[] = {x, e1, e2, unused, y, in, out};
    for (int i = 0; i < 7; i++)
        kn_tensor_unref(objs[i]);
    kn_graph_free(g);
}

static void test_fold_and_scalar_chain(void)
{
    kn_graph *g = kn_graph_new();
    int64_t s[1] = {2};
    kn_tensor *x = kn_graph_input(g, "x", KN_F64, 1, s);
    kn_tensor *m1 = kn_mul_scalar(x, 2), *m2 = kn_mul_scalar(m1, 3);
    KT_OK(kn_graph_output(g, m2));
    /* a node with only constant inputs, as a loaded graph may have */
    kn_tensor *c = kt_tensor(KN_F64, 1, s, (double[]){1, 2});
    int32_t cv = kn__graph_add_value(g, KN_VALUE_CONST, KN_F64, 1, s);
    g->values[cv].tensor = kn_tensor_ref(c);
    int32_t node = kn__graph_add_node(g, kn_op_find("exp"), NULL, 1, &cv, 1);
    int32_t ev = kn__graph_add_value(g, KN_VALUE_NODE, KN_F64, 1, s);
    g->nodes[node].out[0] = ev;
    g->values[ev].node = node;
    g->outputs[g->n_outputs++] = ev; /* capacity was grown by kn_graph_output */
    KT_OK(kn_graph_compile(g, KN_GRAPH_INFERENCE));
    KT_CHECK(kn_graph_num_nodes(g) == 1, "fold computed exp(const) and the chain merged (%d nodes)",
             kn_graph_num_nodes(g));
    kn_tensor *in = kt_tensor(KN_F64, 1, s, (double[]){1, -1}), *out[2] = {0};
    KT_OK(kn_graph_run(g, 1, &in, 2, out));
    kt_check_values("graph_run", out[0], 1, s, (double[]){6, -6}, 0, 0);
    kt_check_values("graph_run", out[1], 1, s, (double[]){exp(1), exp(2)}, 1e-15, 0);
    kn_tensor *objs[] = {x, m1, m2, c, in, out[0], out[1]};
    for (int i = 0; i < 7; i++)
        kn_tensor_unref(objs[i]);
    kn_graph_free(g);
}

static kn_status bad_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                             kn_tensor **out, void *user)
{
    (void)b, (void)n_in, (void)n_out;
    int64_t ws[2] = {3, 5};
    kn_tensor *w = kn_tensor_ones(KN_F32, 2, ws);
    *(int *)user = __LINE__ + 1;
    out[0] = kn_matmul(in[0], w); /* (2,4) x (3,5): inner dims differ */
    kn_tensor_unref(w);
    return out[0] ? KN_OK : kn_last_status();
}

static void test_error_names_user_line(void)
{
    int line = 0;
    kn_block *b = kn_block_new("bad", bad_forward, &line);
    kn_block_hybridize(b, KN_HYBRIDIZE_ON);
    int64_t s[2] = {2, 4};
    kn_tensor *x = kn_tensor_ones(KN_F32, 2, s), *y = NULL;
    kn_status st = kn_block_forward(b, 1, &x, 1, &y);
    char want[64];
    snprintf(want, sizeof want, "test_graph.c:%d", line);
    KT_CHECK(st != KN_OK && strstr(kn_last_error(), want) && strstr(kn_last_error(), "matmul"),
             "error names the op and the user's line %s: %s", want, kn_last_error());
    kn_tensor_unref(x);
    kn_block_free(b);
}

static kn_status peeking_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                                 kn_tensor **out, void *user)
{
    (void)b, (void)n_in, (void)n_out, (void)user;
    double v;
    kn_status s = kn_tensor_item(in[0], &v); /* data-dependent control flow */
    if (s) return s;
    out[0] = v > 0 ? kn_exp(in[0]) : kn_neg(in[0]);
    return out[0] ? KN_OK : kn_last_status();
}

static void test_reading_symbolic_data_fails(void)
{
    kn_block *b = kn_block_new("peek", peeking_forward, NULL);
    int64_t s[1] = {1};
    kn_tensor *x = kn_tensor_ones(KN_F32, 1, s), *y = NULL;
    KT_OK(kn_block_forward(b, 1, &x, 1, &y)); /* eager: fine */
    kn_tensor_unref(y);
    kn_block_hybridize(b, KN_HYBRIDIZE_ON);
    kn_status st = kn_block_forward(b, 1, &x, 1, &y);
    KT_CHECK(st != KN_OK && strstr(kn_last_error(), "control flow"), "clear error: %s", kn_last_error());
    kn_tensor_unref(x);
    kn_block_free(b);
}

static void test_run_checks_inputs(void)
{
    kn_graph *g = kn_graph_new();
    int64_t s[1] = {3}, t[1] = {4};
    kn_tensor *x = kn_graph_input(g, "x", KN_F32, 1, s), *y = kn_relu(x);
    kn_graph_output(g, y);
    kn_tensor *wrong = kn_tensor_ones(KN_F32, 1, t), *out = NULL;
    kt_expect_fail_status("graph_run", kn_graph_run(g, 1, &wrong, 1, &out), "traced with");
    kt_expect_fail_status("graph_run", kn_graph_run(g, 0, NULL, 1, &out), "inputs");
    kt_expect_fail_status("graph_output", kn_graph_output(g, wrong), "not traced");
    kn_tensor_unref(wrong), kn_tensor_unref(x), kn_tensor_unref(y);
    kn_graph_free(g);
    kn_graph *empty = kn_graph_new();
    kt_expect_fail_status("graph_compile", kn_graph_compile(empty, 0), "no outputs");
    kn_graph_free(empty);
}

static void test_print_and_profile(void)
{
    kn_graph *g = kn_graph_new();
    int64_t s[2] = {2, 3};
    kn_tensor *x = kn_graph_input(g, "x", KN_F32, 2, s), *y = kn_tanh(x), *z = kn_sum(y, 0, NULL, false);
    kn_graph_output(g, z);
    KT_OK(kn_graph_compile(g, 0));
    kn_graph_set_profiling(g, true);
    kn_tensor *in = kn_tensor_ones(KN_F32, 2, s), *out = NULL;
    KT_OK(kn_graph_run(g, 1, &in, 1, &out));
    FILE *f = tmpfile();
    KT_OK(kn_graph_print(g, f));
    KT_OK(kn_graph_print_profile(g, f));
    rewind(f);
    char text[4096] = {0};
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    KT_CHECK(n > 0 && strstr(text, "tanh(%0)") && strstr(text, "test_graph.c") && strstr(text, "share"),
             "printed graph and profile:\n%s", text);
    kn_tensor_unref(x), kn_tensor_unref(y), kn_tensor_unref(z), kn_tensor_unref(in), kn_tensor_unref(out);
    kn_graph_free(g);
}

/* KILN_DUMP_GRAPH=after:cse prints the graph to stderr after that pass. */
static void test_dump_graph(void)
{
    kn_graph *g = kn_graph_new();
    int64_t s[1] = {4};
    kn_tensor *x = kn_graph_input(g, "x", KN_F32, 1, s), *y = kn_exp(x), *z = kn_neg(y);
    kn_graph_output(g, z);
    FILE *f = tmpfile();
    fflush(stderr);
    int saved = dup(2);
    dup2(fileno(f), 2);
    setenv("KILN_DUMP_GRAPH", "after:cse", 1);
    kn_status st = kn_graph_compile(g, KN_GRAPH_TRAINING);
    unsetenv("KILN_DUMP_GRAPH");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    KT_OK(st);
    char text[2048] = {0};
    rewind(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    KT_CHECK(n > 0 && strstr(text, "--- graph after cse") && strstr(text, "exp(%0)"), "dumped:\n%s", text);
    kn_tensor_unref(x), kn_tensor_unref(y), kn_tensor_unref(z);
    kn_graph_free(g);
}

static void test_freed_graph_tensor(void)
{
    kn_graph *g = kn_graph_new();
    int64_t s[1] = {3};
    kn_tensor *x = kn_graph_input(g, "x", KN_F32, 1, s);
    kn_graph_free(g);
    kt_expect_fail("relu", kn_relu(x), "freed");
    kn_tensor_unref(x);
}

/* Runs a hybridized block twice on different inputs: the first outputs must
 * survive the second run (outputs never live in the arena), results must
 * match eager, and the memory plan must pass the verifier. */
static void check_plan(kn_block *b, int ndim, const int64_t *shape, const char *what)
{
    kn_tensor *x1 = randn(ndim, shape, 1, 21), *x2 = randn(ndim, shape, 1, 22);
    kn_block_hybridize(b, KN_HYBRIDIZE_OFF);
    kn_tensor *e1 = forward1(b, x1), *e2 = forward1(b, x2);
    kn_block_hybridize(b, KN_HYBRIDIZE_ON);
    kn_tensor *h1 = forward1(b, x1);
    kn_tensor *keep = kn_tensor_clone(h1);
    kn_tensor *h2 = forward1(b, x2);
    KT_CHECK(kt_equal_bits(h1, keep), "%s: first output untouched by the second run", what);
    KT_CHECK(kt_max_rel_diff(h1, e1) < 1e-5 && kt_max_rel_diff(h2, e2) < 1e-5, "%s: both runs equal eager", what);
    kn_graph *g = kn_block_graph(b);
    KT_OK(kn__memplan_verify(g, g->plan));
    KT_CHECK(g->plan->arena_bytes <= g->plan->planned_bytes, "%s: arena %zu <= planned %zu", what,
             g->plan->arena_bytes, g->plan->planned_bytes);
    int n_static = 0;
    for (int32_t i = 0; i < g->n_nodes; i++)
        n_static += g->plan->static_node[i];
    KT_CHECK(n_static > 0, "%s: %d nodes run straight into the arena", what, n_static);
    kn_tensor *objs[] = {x1, x2, e1, e2, h1, h2, keep};
    for (int i = 0; i < 7; i++)
        kn_tensor_unref(objs[i]);
}

static void test_inplace_plan(void)
{
    setenv("KILN_DISABLE_PASSES", "fuse", 1);
    kn_graph *g = kn_graph_new();
    int64_t s[1] = {100};
    kn_tensor *x = kn_graph_input(g, "x", KN_F32, 1, s);
    kn_tensor *a = kn_exp(x), *b = kn_relu(a), *c = kn_neg(b), *d = kn_add(c, x), *e = kn_sin(d);
    kn_graph_output(g, e);
    KT_OK(kn_graph_compile(g, KN_GRAPH_INFERENCE));
    unsetenv("KILN_DISABLE_PASSES");
    const kn_plan *p = g->plan;
    int32_t va = a->trace_value, vb = b->trace_value, vc = c->trace_value, vd = d->trace_value;
    KT_CHECK(p->share[vb] == va && p->share[vc] == va && p->share[vd] == va,
             "relu, neg and add write over exp's bytes in place");
    KT_CHECK(p->offset[vb] == p->offset[va] && p->arena_bytes < p->planned_bytes, "one buffer for four values");
    KT_OK(kn__memplan_verify(g, p));
    kn_tensor *xv = randn(1, s, 1, 81), *out = NULL;
    KT_OK(kn_graph_run(g, 1, &xv, 1, &out));
    kn_tensor *ea = kn_exp(xv), *eb = kn_relu(ea), *ec = kn_neg(eb), *ed = kn_add(ec, xv), *ee = kn_sin(ed);
    KT_CHECK(kt_equal_bits(out, ee), "in-place plan computes what eager does");
    kn_tensor *objs[] = {x, a, b, c, d, e, xv, out, ea, eb, ec, ed, ee};
    for (int i = 0; i < 13; i++)
        kn_tensor_unref(objs[i]);
    kn_graph_free(g);
}

/* A view of an arena value is made once, when the plan is built. */
/* Inference graphs expand stateless composites into their primitives. */
static void test_expand_composites(void)
{
    kn_graph *g = kn_graph_new();
    int64_t s[4] = {2, 3, 4, 4}, cs[3] = {3, 4, 4};
    kn_tensor *x = kn_graph_input(g, "x", KN_F32, 4, s);
    kn_tensor *gam = randn(3, cs, 1, 97), *bet = randn(3, cs, 1, 98);
    kn_tensor *n = kn_layer_norm(x, 3, gam, bet, 1e-5), *p = kn_global_avg_pool(n, KN_LAYOUT_NCHW);
    kn_graph_output(g, p);
    KT_OK(kn_graph_compile(g, KN_GRAPH_INFERENCE));
    int composites = 0;
    for (int32_t i = 0; i < g->n_nodes; i++)
        composites += !g->nodes[i].dead && g->nodes[i].def->compose != NULL;
    KT_CHECK(composites == 0 && count_op(g, "normalize") == 1, "layer_norm and global_avg_pool expanded");
    kn_tensor *xv = randn(4, s, 1, 99), *out = NULL;
    KT_OK(kn_graph_run(g, 1, &xv, 1, &out));
    kn_tensor *en = kn_layer_norm(xv, 3, gam, bet, 1e-5), *ep = kn_global_avg_pool(en, KN_LAYOUT_NCHW);
    KT_CHECK(kt_max_rel_diff(out, ep) < 1e-6, "same values (%g)", kt_max_rel_diff(out, ep));
    kn_tensor *objs[] = {x, gam, bet, n, p, xv, out, en, ep};
    for (int i = 0; i < 9; i++)
        kn_tensor_unref(objs[i]);
    kn_graph_free(g);
}

static void check_training_graph(kn_block *b, kn_tensor *x, const char *what);

/* ---- nested blocks */
static kn_status dense_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out, kn_tensor **out,
                               void *user)
{
    (void)n_in, (void)n_out, (void)user;
    out[0] = kn_linear(in[0], kn_block_param(b, "weight"), kn_block_param(b, "bias"));
    return out[0] ? KN_OK : kn_last_status();
}

static kn_block *make_dense(int64_t in, int64_t out, uint64_t seed)
{
    kn_block *b = kn_block_new("dense", dense_forward, NULL);
    int64_t ws[2] = {out, in}, bs[1] = {out};
    add_param(b, "weight", randn(2, ws, 0.5, seed), true);
    add_param(b, "bias", randn(1, bs, 0.1, seed + 1), true);
    return b;
}

static kn_status net_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out, kn_tensor **out,
                             void *user)
{
    (void)n_in, (void)n_out, (void)user;
    kn_tensor *h = NULL, *z = NULL;
    kn_status s = kn_block_forward(kn_block_child(b, "fc1"), 1, in, 1, &h);
    kn_tensor *a = s ? NULL : kn_tanh(h);
    kn_tensor *sa = a ? kn_mul(a, kn_block_param(b, "gain")) : NULL;
    if (sa) s = kn_block_forward(kn_block_child(b, "fc2"), 1, &sa, 1, &z);
    out[0] = z;
    kn_tensor_unref(h), kn_tensor_unref(a), kn_tensor_unref(sa);
    return out[0] ? KN_OK : kn_last_status();
}

static void test_nested_blocks(void)
{
    kn_block *net = kn_block_new("net", net_forward, NULL);
    int64_t g1[1] = {1};
    add_param(net, "gain", kn_tensor_full(KN_F32, 1, g1, 1.5), true);
    KT_OK(kn_block_add_child(net, "fc1", make_dense(6, 8, 101)));
    KT_OK(kn_block_add_child(net, "fc2", make_dense(8, 3, 103)));
    KT_CHECK(kn_block_num_params(net) == 5, "5 parameters in the tree (%d)", kn_block_num_params(net));
    KT_CHECK(!strcmp(kn_block_param_name(net, 0), "gain") && !strcmp(kn_block_param_name(net, 1), "fc1.weight") &&
                 !strcmp(kn_block_param_name(net, 4), "fc2.bias"),
             "hierarchical names");
    kn_block *dup = make_dense(1, 1, 5);
    kt_expect_fail_status("block_add_child", kn_block_add_child(net, "fc1", dup), "already has");
    kn_block_free(dup); /* not attached: still the caller's */
    kn_block *orphan = kn_block_child(net, "fc2");
    kt_expect_fail_status("block_add_child", kn_block_add_child(orphan, "up", net), "contain itself");
    kn_block_free(orphan); /* refused: its parent owns it */
    KT_CHECK(kn_block_child(net, "fc2") == orphan && strstr(kn_last_error(), "free the parent"), "child kept");
    kn_clear_error();
    int64_t xs[2] = {4, 6};
    kn_tensor *x = randn(2, xs, 1, 107);
    kn_tensor *e = forward1(net, x);
    kn_block_hybridize(net, KN_HYBRIDIZE_ON);
    kn_tensor *h = forward1(net, x);
    KT_CHECK(kt_max_rel_diff(h, e) < 1e-6, "hybridized tree == eager (%g)", kt_max_rel_diff(h, e));
    kn_graph *g = kn_block_graph(net);
    int params = 0;
    for (int32_t v = 0; g && v < g->n_values; v++)
        params += g->values[v].kind == KN_VALUE_PARAM && g->values[v].name && strchr(g->values[v].name, '.');
    KT_CHECK(params == 4, "children's parameters are graph params with paths (%d)", params);
    kn_tensor_unref(e), kn_tensor_unref(h);
    check_training_graph(net, x, "nested blocks");
    kn_tensor_unref(x);
    kn_block_free(net);
}

static void test_static_view(void)
{
    setenv("KILN_DISABLE_PASSES", "fuse", 1);
    kn_graph *g = kn_graph_new();
    int64_t s[2] = {4, 6}, r[1] = {24};
    kn_tensor *x = kn_graph_input(g, "x", KN_F32, 2, s);
    kn_tensor *a = kn_exp(x), *b = kn_reshape(a, 1, r), *c = kn_sin(b);
    kn_graph_output(g, c);
    KT_OK(kn_graph_compile(g, KN_GRAPH_INFERENCE));
    unsetenv("KILN_DISABLE_PASSES");
    int views = 0;
    for (int32_t i = 0; i < g->n_nodes; i++)
        views += g->plan->view_node[i];
    KT_CHECK(views == 1, "the reshape of an arena value is static (%d)", views);
    kn_tensor *xv = randn(2, s, 1, 95), *out = NULL, *out2 = NULL;
    KT_OK(kn_graph_run(g, 1, &xv, 1, &out));
    KT_OK(kn_graph_run(g, 1, &xv, 1, &out2));
    kn_tensor *ea = kn_exp(xv), *eb = kn_reshape(ea, 1, r), *ec = kn_sin(eb);
    KT_CHECK(kt_equal_bits(out, ec) && kt_equal_bits(out2, ec), "same values on every run");
    kn_tensor *objs[] = {x, a, b, c, xv, out, out2, ea, eb, ec};
    for (int i = 0; i < 10; i++)
        kn_tensor_unref(objs[i]);
    kn_graph_free(g);
}

static void test_memory_plan(void)
{
    kn_block *mlp = make_mlp(), *res = make_resnet();
    int64_t xm[2] = {3, 8}, xr[4] = {2, 4, 6, 6};
    check_plan(mlp, 2, xm, "mlp");
    check_plan(res, 4, xr, "resnet block");
    kn_block_free(mlp), kn_block_free(res);
    /* the verifier catches two live values sharing bytes */
    setenv("KILN_DISABLE_PASSES", "fuse", 1);
    kn_graph *g = kn_graph_new();
    int64_t s[1] = {64};
    kn_tensor *x = kn_graph_input(g, "x", KN_F32, 1, s);
    kn_tensor *a = kn_exp(x), *b = kn_sin(x), *c = kn_add(a, b), *d = kn_relu(c);
    kn_graph_output(g, d);
    KT_OK(kn_graph_compile(g, KN_GRAPH_INFERENCE));
    unsetenv("KILN_DISABLE_PASSES");
    KT_OK(kn__memplan_verify(g, g->plan));
    int32_t va = a->trace_value, vb = b->trace_value;
    KT_CHECK(g->plan->offset[va] >= 0 && g->plan->offset[vb] >= 0, "exp and sin planned");
    KT_CHECK(g->plan->offset[va] != g->plan->offset[vb], "live together: different bytes");
    int64_t saved = g->plan->offset[vb];
    g->plan->offset[vb] = g->plan->offset[va];
    KT_CHECK(kn__memplan_verify(g, g->plan) != KN_OK, "verifier rejects a clash");
    kn_clear_error();
    g->plan->offset[vb] = saved;
    kn_tensor *objs[] = {x, a, b, c, d};
    for (int i = 0; i < 5; i++)
        kn_tensor_unref(objs[i]);
    kn_graph_free(g);
}

/* Traces forward + loss of a block into a graph, adds the backward, runs it
 * and compares the parameter gradients with eager autograd's. */
static void check_training_graph(kn_block *b, kn_tensor *x, const char *what)
{
    int n = kn_block_num_params(b);
    kn_tensor *eager[32] = {0};
    kn_block_set_training(b, true);
    kn_block_hybridize(b, KN_HYBRIDIZE_OFF);
    kn_manual_seed(5);
    KT_OK(loss_and_grads(b, x, eager, n));
    kn_graph *g = kn_graph_new();
    kn_tensor *sx = kn_graph_input(g, "x", kn_tensor_dtype(x), kn_tensor_ndim(x), kn_tensor_shape(x));
    kn_tensor *y = NULL;
    KT_OK(kn_block_trace(b, g, 1, &sx, 1, &y));
    kn_tensor *sq = kn_mul(y, y), *loss = kn_sum(sq, 0, NULL, false);
    KT_OK(kn_graph_output(g, loss));
    int n_grads = 0;
    KT_OK(kn_graph_build_backward(g, 0, &n_grads));
    KT_OK(kn_graph_compile(g, KN_GRAPH_TRAINING));
    int with_grad = 0;
    for (int i = 0; i < n; i++)
        with_grad += kn_tensor_requires_grad(kn_block_param_at(b, i));
    KT_CHECK(n_grads == with_grad, "%s: one gradient output per trainable parameter (%d of %d)", what,
             n_grads, with_grad);
    kn_tensor *outs[33] = {0};
    kn_manual_seed(5);
    KT_OK(kn_graph_run(g, 1, &x, 1 + n_grads, outs));
    int k = 1, close = 0;
    for (int i = 0; i < n; i++) {
        if (!kn_tensor_requires_grad(kn_block_param_at(b, i))) continue;
        double d = eager[i] ? kt_max_rel_diff(outs[k], eager[i]) : INFINITY;
        close += d < 1e-5;
        if (!(d < 1e-5)) fprintf(stderr, "  %s: gradient of %s differs by %g\n", what, kn_block_param_name(b, i), d);
        k++;
    }
    KT_CHECK(close == n_grads, "%s: %d of %d graph gradients match eager autograd", what, close, n_grads);
    KT_CHECK(kn_autograd_tape_size() == 0, "%s: no tape was used", what);
    for (int i = 0; i < 1 + n_grads; i++)
        kn_tensor_unref(outs[i]);
    kn_tensor *objs[] = {sx, y, sq, loss};
    for (int i = 0; i < 4; i++)
        kn_tensor_unref(objs[i]);
    for (int i = 0; i < n; i++)
        kn_tensor_unref(eager[i]);
    kn_graph_free(g);
}

/* forward + cross_entropy with class labels + backward as one graph. */
static void test_training_graph_cross_entropy(void)
{
    kn_block *b = make_mlp();
    kn_block_set_training(b, false); /* no dropout: compare with eager directly */
    int64_t xs[2] = {6, 8}, ys[1] = {6};
    kn_tensor *x = randn(2, xs, 1, 91);
    kn_tensor *y = kt_tensor(KN_I64, 1, ys, (double[]){0, 4, 2, -100, 1, 3});
    kn_loss_params lp = {.use_ignore_index = true, .ignore_index = -100, .label_smoothing = 0.1};
    int n = kn_block_num_params(b);
    /* eager */
    for (int i = 0; i < n; i++)
        kn_tensor_zero_grad(kn_block_param_at(b, i));
    kn_autograd_record(true);
    kn_tensor *logits = forward1(b, x), *loss = kn_cross_entropy(logits, y, NULL, &lp);
    kn_autograd_record(false);
    KT_OK(kn_backward(loss, NULL));
    kn_tensor *eager[8];
    for (int i = 0; i < n; i++)
        eager[i] = kn_tensor_clone(kn_tensor_grad(kn_block_param_at(b, i)));
    /* one graph */
    kn_graph *g = kn_graph_new();
    kn_tensor *sx = kn_graph_input(g, "x", KN_F32, 2, xs), *sy = kn_graph_input(g, "y", KN_I64, 1, ys);
    kn_tensor *sl = NULL;
    KT_OK(kn_block_trace(b, g, 1, &sx, 1, &sl));
    kn_tensor *sloss = kn_cross_entropy(sl, sy, NULL, &lp);
    KT_OK(kn_graph_output(g, sloss));
    int n_grads = 0;
    KT_OK(kn_graph_build_backward(g, 0, &n_grads));
    KT_OK(kn_graph_compile(g, KN_GRAPH_TRAINING));
    kn_tensor *in[2] = {x, y}, *outs[9] = {0};
    KT_OK(kn_graph_run(g, 2, in, 1 + n_grads, outs));
    KT_CHECK(outs[0] && kt_equal_bits(outs[0], loss), "graph loss == eager loss, bitwise");
    int close = 0;
    for (int i = 0; i < n_grads && i < n; i++)
        close += kt_max_rel_diff(outs[1 + i], eager[i]) < 1e-5;
    KT_CHECK(n_grads == n && close == n, "%d of %d gradients match eager", close, n_grads);
    for (int i = 0; i < 1 + n_grads; i++)
        kn_tensor_unref(outs[i]);
    for (int i = 0; i < n; i++)
        kn_tensor_unref(eager[i]);
    kn_tensor *objs[] = {x, y, logits, loss, sx, sy, sl, sloss};
    for (int i = 0; i < 8; i++)
        kn_tensor_unref(objs[i]);
    kn_graph_free(g);
    kn_block_free(b);
}

static void test_training_graph(void)
{
    kn_block *mlp = make_mlp(), *res = make_resnet();
    int64_t xm[2] = {4, 8}, xr[4] = {2, 4, 6, 6};
    kn_tensor *x1 = randn(2, xm, 1, 31), *x2 = randn(4, xr, 1, 32);
    check_training_graph(mlp, x1, "mlp with dropout");
    check_training_graph(res, x2, "resnet block");
    kn_tensor_unref(x1), kn_tensor_unref(x2);
    kn_block_free(mlp), kn_block_free(res);
}

/* linear -> batch_norm (BatchNorm1d) folds into the linear in inference. */
static void test_bnfold_linear(void)
{
    kn_graph *g = kn_graph_new();
    int64_t xs[2] = {4, 6}, ws[2] = {3, 6}, cs[1] = {3};
    kn_tensor *w = randn(2, ws, 0.5, 71), *b = randn(1, cs, 0.1, 72), *gam = randn(1, cs, 1, 73);
    kn_tensor *bet = randn(1, cs, 1, 74), *mean = randn(1, cs, 1, 75), *var = kn_tensor_full(KN_F32, 1, cs, 2.5);
    kn_tensor *x = kn_graph_input(g, "x", KN_F32, 2, xs);
    kn_tensor *l = kn_linear(x, w, b);
    kn_tensor *y = kn_batch_norm(l, gam, bet, mean, var, false, 0.1, 1e-5, KN_LAYOUT_NCHW);
    KT_OK(kn_graph_output(g, y));
    KT_OK(kn_graph_compile(g, KN_GRAPH_INFERENCE));
    KT_CHECK(count_op(g, "batch_norm") == 0, "folded into the linear");
    kn_tensor *xv = randn(2, xs, 1, 76), *out = NULL;
    KT_OK(kn_graph_run(g, 1, &xv, 1, &out));
    kn_tensor *le = kn_linear(xv, w, b);
    kn_tensor *ye = kn_batch_norm(le, gam, bet, mean, var, false, 0.1, 1e-5, KN_LAYOUT_NCHW);
    KT_CHECK(kt_max_rel_diff(out, ye) < 1e-5, "same values (%g)", kt_max_rel_diff(out, ye));
    kn_tensor *objs[] = {w, b, gam, bet, mean, var, x, l, y, xv, out, le, ye};
    for (int i = 0; i < 13; i++)
        kn_tensor_unref(objs[i]);
    kn_graph_free(g);
}

static void test_conv2d_fused_op(void)
{
    int64_t xs[4] = {2, 5, 7, 6}, ws[4] = {4, 5, 3, 3}, bs[1] = {4}, ys[4] = {2, 4, 4, 3};
    kn_tensor *x = randn(4, xs, 1, 51), *w = randn(4, ws, 0.3, 52), *b = randn(1, bs, 0.1, 53);
    kn_tensor *r = randn(4, ys, 1, 54);
    kn_conv_params p = {.stride = {2, 2}, .pad_begin = {1, 1}, .pad_end = {1, 0}};
    unsigned char attrs[512];
    KT_CHECK(kn__conv_fused_attrs_size() <= sizeof attrs, "attrs fit");
    for (int act = 0; act < 8; act++) {
        memset(attrs, 0, sizeof attrs);
        kn__conv_fused_attrs_set(attrs, &p, act);
        kn_tensor *in[4] = {x, w, b, r};
        kn_tensor *y = kn__op_call1(&kn_op_conv2d_fused, 4, in, attrs);
        kn_tensor *c = kn_conv2d(x, w, b, &p), *s = kn_add(c, r);
        kn_tensor *want = act == 0 ? kn_tensor_ref(s) : act == 1 ? kn_relu(s) : act == 2 ? kn_relu6(s)
                          : act == 3 ? kn_gelu(s) : act == 4 ? kn_gelu_tanh(s) : act == 5 ? kn_silu(s)
                          : act == 6 ? kn_sigmoid(s) : kn_tanh(s);
        KT_CHECK(y && kt_max_rel_diff(y, want) < 2e-5, "act %d: fused == separate ops (%g)", act,
                 y ? kt_max_rel_diff(y, want) : -1.0);
        kn_tensor_unref(y), kn_tensor_unref(c), kn_tensor_unref(s), kn_tensor_unref(want);
    }
    kt_mark("conv2d_fused", KT_FWD);
    KT_CHECK(!kn_op_has_grad(&kn_op_conv2d_fused), "inference only");
    kt_mark("conv2d_fused", KT_GRAD);
    kn__conv_fused_attrs_set(attrs, &p, 99);
    kn_tensor *in[4] = {x, w, b, r};
    kt_expect_fail("conv2d_fused", kn__op_call1(&kn_op_conv2d_fused, 4, in, attrs), "act 99");
    kn__conv_fused_attrs_set(attrs, &p, 1);
    kn_tensor *in2[4] = {x, w, r, NULL};
    kt_expect_fail("conv2d_fused", kn__op_call1(&kn_op_conv2d_fused, 4, in2, attrs), "bias");
    kn_tensor *in3[4] = {x, w, NULL, x};
    kt_expect_fail("conv2d_fused", kn__op_call1(&kn_op_conv2d_fused, 4, in3, attrs), "residual");
    kn_tensor *in4[4] = {r, w, NULL, NULL}; /* 4 channels into a 5-channel weight */
    kt_expect_fail("conv2d_fused", kn__op_call1(&kn_op_conv2d_fused, 4, in4, attrs), "conv2d");
    kn_tensor_unref(x), kn_tensor_unref(w), kn_tensor_unref(b), kn_tensor_unref(r);
}

static void test_linear_fused_op(void)
{
    int64_t xs[3] = {2, 3, 7}, ws[2] = {5, 7}, bs[1] = {5}, ys[3] = {2, 3, 5};
    kn_tensor *x = randn(3, xs, 1, 61), *w = randn(2, ws, 0.3, 62), *b = randn(1, bs, 0.1, 63);
    kn_tensor *r = randn(3, ys, 1, 64), *xt = kn_transpose(x, 0, 1); /* non-uniform rows: ref path */
    for (int act = 0; act < 8; act++) {
        int64_t attrs[1] = {act};
        kn_tensor *in[4] = {x, w, b, r}, *in_t[4] = {xt, w, b, NULL};
        kn_tensor *y = kn__op_call1(&kn_op_linear_fused, 4, in, attrs);
        kn_tensor *yt = kn__op_call1(&kn_op_linear_fused, 4, in_t, attrs);
        kn_tensor *l = kn_linear(x, w, b), *s = kn_add(l, r), *lt = kn_linear(xt, w, b);
        kn_tensor *want = act == 0 ? kn_tensor_ref(s) : act == 1 ? kn_relu(s) : act == 2 ? kn_relu6(s)
                          : act == 3 ? kn_gelu(s) : act == 4 ? kn_gelu_tanh(s) : act == 5 ? kn_silu(s)
                          : act == 6 ? kn_sigmoid(s) : kn_tanh(s);
        kn_tensor *want_t = act == 0 ? kn_tensor_ref(lt) : act == 1 ? kn_relu(lt) : act == 2 ? kn_relu6(lt)
                            : act == 3 ? kn_gelu(lt) : act == 4 ? kn_gelu_tanh(lt) : act == 5 ? kn_silu(lt)
                            : act == 6 ? kn_sigmoid(lt) : kn_tanh(lt);
        KT_CHECK(y && kt_max_rel_diff(y, want) < 2e-5, "act %d: fused == separate ops", act);
        KT_CHECK(yt && kt_max_rel_diff(yt, want_t) < 2e-5, "act %d: strided input (ref path)", act);
        kn_tensor *objs[] = {y, yt, l, s, lt, want, want_t};
        for (int i = 0; i < 7; i++)
            kn_tensor_unref(objs[i]);
    }
    kt_mark("linear_fused", KT_FWD);
    KT_CHECK(!kn_op_has_grad(&kn_op_linear_fused), "inference only");
    kt_mark("linear_fused", KT_GRAD);
    int64_t bad_act[1] = {42}, ok_act[1] = {1};
    kn_tensor *in[4] = {x, w, b, NULL};
    kt_expect_fail("linear_fused", kn__op_call1(&kn_op_linear_fused, 4, in, bad_act), "act 42");
    kn_tensor *in2[4] = {x, w, b, x};
    kt_expect_fail("linear_fused", kn__op_call1(&kn_op_linear_fused, 4, in2, ok_act), "residual");
    kn_tensor *in3[4] = {w, x, NULL, NULL};
    kt_expect_fail("linear_fused", kn__op_call1(&kn_op_linear_fused, 4, in3, ok_act), "linear");
    kn_tensor_unref(x), kn_tensor_unref(w), kn_tensor_unref(b), kn_tensor_unref(r), kn_tensor_unref(xt);
}

static void test_elementwise_fusion(void)
{
    kn_graph *g = kn_graph_new();
    int64_t s[2] = {3, 5}, r[1] = {5};
    kn_tensor *x = kn_graph_input(g, "x", KN_F32, 2, s), *b = kn_graph_input(g, "b", KN_F32, 1, r);
    kn_scratch k = {0};
    /* y = sigmoid(x * 2 + b) * x - leaky_relu(x): one group, inputs x, b and the constant */
    kn_tensor *t = kn__keep(&k, kn_mul_scalar(x, 2));
    t = kn__keep(&k, kn_add(t, b));
    t = kn__keep(&k, kn_sigmoid(t));
    t = kn__keep(&k, kn_mul(t, x));
    kn_tensor *l = kn__keep(&k, kn_leaky_relu(x, 0.1));
    kn_tensor *y = kn__keep(&k, kn_sub(t, l));
    KT_OK(kn_graph_output(g, y));
    kn_tensor *xv = randn(2, s, 1, 41), *bv = randn(1, r, 1, 42), *in[2] = {xv, bv};
    kn_tensor *plain = NULL, *fused = NULL;
    setenv("KILN_DISABLE_PASSES", "fuse", 1);
    KT_OK(kn_graph_compile(g, KN_GRAPH_INFERENCE));
    unsetenv("KILN_DISABLE_PASSES");
    int before = kn_graph_num_nodes(g);
    KT_OK(kn_graph_run(g, 2, in, 1, &plain));
    KT_OK(kn_graph_compile(g, KN_GRAPH_INFERENCE));
    KT_CHECK(kn_graph_num_nodes(g) < before && count_op(g, "fused_elementwise") >= 1,
             "fused: %d nodes -> %d", before, kn_graph_num_nodes(g));
    KT_OK(kn_graph_run(g, 2, in, 1, &fused));
    KT_CHECK(kt_max_rel_diff(fused, plain) < 1e-6, "fused == unfused (%g)", kt_max_rel_diff(fused, plain));
    kt_mark("fused_elementwise", KT_FWD);
    KT_CHECK(!kn_op_has_grad(kn_op_find("fused_elementwise")), "inference only: no gradient");
    kt_mark("fused_elementwise", KT_GRAD);
    /* a bad program is an error from infer, not a crash */
    kn_fused_attrs at = {.registry = kn__registry_fingerprint(), .n_steps = 1};
    at.steps[0].op = 0x7fff;
    kn_tensor *ins[1] = {xv};
    kt_expect_fail("fused_elementwise", kn__op_call1(&kn_op_fused_elementwise, 1, ins, &at), "not a fusable");
    at.steps[0] = (kn_fused_step){.op = 0, .a = 0, .b = 5};
    for (int i = 0; i < kn_op_count(); i++)
        if (kn_op_at(i) == kn_op_find("add")) at.steps[0].op = i;
    kt_expect_fail("fused_elementwise", kn__op_call1(&kn_op_fused_elementwise, 1, ins, &at), "operand 5");
    at.steps[0].b = 0;
    at.registry ^= 1;
    kt_expect_fail("fused_elementwise", kn__op_call1(&kn_op_fused_elementwise, 1, ins, &at), "other ops");
    at.registry ^= 1;
    kn_tensor *i64 = kn_tensor_zeros(KN_I64, 2, s), *ins2[1] = {i64};
    kt_expect_fail("fused_elementwise", kn__op_call1(&kn_op_fused_elementwise, 1, ins2, &at), "f32");
    kn_tensor *ok = kn__op_call1(&kn_op_fused_elementwise, 1, ins, &at); /* x + x */
    kn_tensor *twice = kn_add(xv, xv);
    KT_CHECK(ok && kt_max_rel_diff(ok, twice) == 0, "a hand-made program runs");
    kn_tensor_unref(ok), kn_tensor_unref(twice), kn_tensor_unref(i64);
    kn__scratch_free(&k);
    kn_tensor *objs[] = {x, b, xv, bv, plain, fused};
    for (int i = 0; i < 6; i++)
        kn_tensor_unref(objs[i]);
    kn_graph_free(g);
}

static kn_status addmm_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out, kn_tensor **out,
                               void *user)
{
    (void)n_in, (void)n_out, (void)user;
    out[0] = kn_addmm(kn_block_param(b, "bias"), in[0], kn_block_param(b, "w"), 0.5, 2);
    return out[0] ? KN_OK : kn_last_status();
}

/* addmm with a 1-D bias fuses into one elementwise program whose inputs
 * have different ranks (the broadcast shape was once computed in place over
 * its own input and lost dims). */
static void test_fused_mixed_ranks(void)
{
    kn_block *b = kn_block_new("addmm", addmm_forward, NULL);
    kn_tensor *bias = randn(1, (int64_t[]){6}, 1, 61), *w = randn(2, (int64_t[]){4, 6}, 1, 62);
    kn_block_add_param(b, "bias", bias), kn_block_add_param(b, "w", w);
    kn_tensor *x = randn(2, (int64_t[]){3, 4}, 1, 63), *eager = NULL, *y = NULL;
    KT_OK(kn_block_forward(b, 1, &x, 1, &eager));
    kn_block_hybridize(b, KN_HYBRIDIZE_ON);
    KT_OK(kn_block_forward(b, 1, &x, 1, &y));
    KT_CHECK(kt_max_abs_diff(y, eager) < 1e-5, "hybridized addmm == eager (%g)", kt_max_abs_diff(y, eager));
    kn_tensor *objs[] = {bias, w, x, eager, y};
    for (int i = 0; i < 5; i++)
        kn_tensor_unref(objs[i]);
    kn_block_free(b);
}

int main(void)
{
    KT_RUN(test_fused_mixed_ranks);
    KT_RUN(test_conv2d_fused_op);
    KT_RUN(test_bnfold_linear);
    KT_RUN(test_linear_fused_op);
    KT_RUN(test_elementwise_fusion);
    KT_RUN(test_training_graph);
    KT_RUN(test_training_graph_cross_entropy);
    KT_RUN(test_memory_plan);
    KT_RUN(test_inplace_plan);
    KT_RUN(test_static_view);
    KT_RUN(test_nested_blocks);
    KT_RUN(test_expand_composites);
    KT_RUN(test_mlp_inference_equal);
    KT_RUN(test_signature_cache);
    KT_RUN(test_batch_baked_in);
    KT_RUN(test_mlp_training_equal);
    KT_RUN(test_resnet_equal);
    KT_RUN(test_dropout_replay);
    KT_RUN(test_cse_and_dce);
    KT_RUN(test_fold_and_scalar_chain);
    KT_RUN(test_error_names_user_line);
    KT_RUN(test_reading_symbolic_data_fails);
    KT_RUN(test_run_checks_inputs);
    KT_RUN(test_print_and_profile);
    KT_RUN(test_freed_graph_tensor);
    KT_RUN(test_dump_graph);
    return kt_finish();
}
