/* test_layout.c — the layout pass (src/graph/passes/layout.c): small traced
 * graphs compiled with and without it give the same outputs (within f32
 * rounding), have conversions only at region edges (counted as permute
 * nodes), keep small-channel convolutions NCHW, and are left alone for
 * training compiles and below AVX-512; the model zoo's ResNet-18 and
 * MobileNetV2 hybridized agree with and without it. */
#include "harness.h"

#include "graph/graph.h"

#include <stdlib.h>

/* ---------------------------------------------------------------- helpers */
static bool nhwc_machine(void)
{
    return kn_isa_max() >= KN_ISA_AVX512;
}

static kn_tensor *randn(int ndim, const int64_t *shape, double std, uint64_t seed)
{
    kn_manual_seed(seed);
    return kn_tensor_rand_normal(KN_F32, ndim, shape, 0, std);
}

/* A conv weight (cout, cin, k, k), kept in s. */
static kn_tensor *wgt(kn_scratch *s, int64_t cout, int64_t cin, int64_t k, uint64_t seed)
{
    int64_t shape[4] = {cout, cin, k, k};
    return kn__keep(s, randn(4, shape, 1.0 / sqrt((double)(cin * k * k)), seed));
}

static kn_tensor *vec(kn_scratch *s, int64_t n, uint64_t seed)
{
    return kn__keep(s, randn(1, &n, 0.5, seed));
}

static kn_tensor *conv(kn_scratch *s, kn_tensor *x, int64_t cout, int64_t k, int64_t stride,
                       int64_t groups, uint64_t seed)
{
    int64_t cin = kn_tensor_dim(x, 1), pad = k / 2;
    kn_conv_params p = {.stride = {stride, stride},
                        .pad_begin = {pad, pad},
                        .pad_end = {pad, pad},
                        .groups = groups};
    return kn__keep(s,
                    kn_conv2d(x, wgt(s, cout, cin / groups, k, seed), vec(s, cout, seed + 1), &p));
}

static kn_tensor *pool(kn_scratch *s, kn_tensor *x, bool max)
{
    kn_pool_params p = {.kernel = {2, 2}, .stride = {2, 2}};
    return kn__keep(s, max ? kn_max_pool(x, &p) : kn_avg_pool(x, &p));
}

/* Builds the graph's body from input x: its outputs (at most 4), kept in s. */
typedef int (*build_fn)(kn_graph *g, kn_scratch *s, kn_tensor *x, kn_tensor **out);

static kn_graph *make(build_fn f, int ndim, const int64_t *shape, bool layout, unsigned flags)
{
    kn_graph *g = kn_graph_new();
    kn_scratch s = {0};
    kn_tensor *x = kn__keep(&s, kn_graph_input(g, "x", KN_F32, ndim, shape)), *out[4];
    int n = f(g, &s, x, out);
    for (int i = 0; i < n; i++)
        KT_OK(kn_graph_output(g, out[i]));
    kn__scratch_free(&s);
    if (!layout) setenv("KILN_DISABLE_PASSES", "layout", 1);
    KT_OK(kn_graph_compile(g, flags));
    unsetenv("KILN_DISABLE_PASSES");
    return g;
}

static int count_op(const kn_graph *g, const kn_op_def *def)
{
    int n = 0;
    for (int32_t i = 0; i < g->n_nodes; i++)
        n += !g->nodes[i].dead && g->nodes[i].def == def;
    return n;
}

/* Convolutions of g in NHWC / in NCHW. */
static void conv_layouts(const kn_graph *g, int *nhwc, int *nchw)
{
    *nhwc = *nchw = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const kn_gnode *n = &g->nodes[i];
        int64_t layout;
        if (n->def == &kn_op_conv2d)
            layout = *(const int64_t *)kn__node_attr(n, "layout");
        else if (n->def == &kn_op_conv2d_fused)
            layout = ((const kn_conv_params *)n->attrs)->layout;
        else
            continue;
        *nhwc += layout == KN_LAYOUT_NHWC;
        *nchw += layout == KN_LAYOUT_NCHW;
    }
}

/* Compiles f with and without the pass, checks both give the same outputs
 * on a random input and that the pass left `permutes` permute nodes (0
 * below AVX-512) where the graph had `user` of its own. Returns the graph
 * compiled with the pass (free it). */
static kn_graph *check_case_user(const char *what, build_fn f, int ndim, const int64_t *shape,
                                 int permutes, int user)
{
    kn_graph *a = make(f, ndim, shape, true, KN_GRAPH_INFERENCE);
    kn_graph *b = make(f, ndim, shape, false, KN_GRAPH_INFERENCE);
    kn_tensor *x = randn(ndim, shape, 1, 7), *ya[4] = {0}, *yb[4] = {0};
    int n = kn_graph_num_outputs(a);
    KT_OK(kn_graph_run(a, 1, &x, n, ya));
    KT_OK(kn_graph_run(b, 1, &x, n, yb));
    for (int i = 0; i < n; i++) {
        double d = kt_max_rel_diff(ya[i], yb[i]);
        KT_CHECK(d < 1e-5, "%s: output %d differs by %g with the layout pass", what, i, d);
        kn_tensor_unref(ya[i]), kn_tensor_unref(yb[i]);
    }
    int want = nhwc_machine() ? permutes : user;
    KT_CHECK(count_op(a, &kn_op_permute) == want, "%s: %d permutes, expected %d", what,
             count_op(a, &kn_op_permute), want);
    KT_CHECK(count_op(b, &kn_op_permute) == user, "%s: %d permutes without the pass", what, user);
    kn_tensor_unref(x);
    kn_graph_free(b);
    return a;
}

static kn_graph *check_case(const char *what, build_fn f, int ndim, const int64_t *shape,
                            int permutes)
{
    return check_case_user(what, f, ndim, shape, permutes, 0);
}

static void expect_convs(const char *what, const kn_graph *g, int nhwc, int nchw)
{
    int h, c;
    conv_layouts(g, &h, &c);
    if (!nhwc_machine()) nchw += nhwc, nhwc = 0;
    KT_CHECK(h == nhwc && c == nchw, "%s: %d NHWC and %d NCHW convolutions, expected %d and %d",
             what, h, c, nhwc, nchw);
}

/* ------------------------------------------------------------------ cases */
/* conv-relu-maxpool-conv-relu-avgpool-upsample-conv */
static int chain(kn_graph *g, kn_scratch *s, kn_tensor *x, kn_tensor **out)
{
    (void)g;
    kn_tensor *h = kn__keep(s, kn_relu(conv(s, x, 32, 3, 1, 1, 10)));
    h = kn__keep(s, kn_relu(conv(s, pool(s, h, true), 48, 3, 1, 1, 20)));
    h = kn__keep(s, kn_upsample_bilinear2d(pool(s, h, false), 5, 7, false, KN_LAYOUT_NCHW));
    out[0] = conv(s, kn__keep(s, kn_upsample_nearest2d(h, 10, 9, KN_LAYOUT_NCHW)), 24, 3, 1, 1, 25);
    return 1;
}

static void test_chain(void)
{
    int64_t shape[4] = {2, 8, 12, 12};
    kn_graph *g = check_case("chain", chain, 4, shape, 2); /* the input in, the output out */
    expect_convs("chain", g, 3, 0);
    kn_graph_free(g);
}

/* relu(conv(relu(conv(x))) + x): the residual reads the input's NHWC
 * conversion made for the first convolution. */
static int residual(kn_graph *g, kn_scratch *s, kn_tensor *x, kn_tensor **out)
{
    (void)g;
    kn_tensor *h = kn__keep(s, kn_relu(conv(s, x, 24, 3, 1, 1, 30)));
    h = kn__keep(s, kn_add(conv(s, h, 24, 3, 1, 1, 40), x));
    out[0] = kn__keep(s, kn_relu(h));
    return 1;
}

static void test_residual(void)
{
    int64_t shape[4] = {2, 24, 10, 9};
    kn_graph *g = check_case("residual", residual, 4, shape, 2);
    expect_convs("residual", g, 2, 0);
    kn_graph_free(g);
}

/* two convolution branches of x concatenated on C, then a convolution */
static int branches(kn_graph *g, kn_scratch *s, kn_tensor *x, kn_tensor **out)
{
    (void)g;
    kn_tensor *cat[2] = {kn__keep(s, kn_relu(conv(s, x, 20, 3, 1, 1, 50))),
                         kn__keep(s, kn_relu(conv(s, x, 28, 1, 1, 1, 60)))};
    out[0] = conv(s, kn__keep(s, kn_concat(2, cat, 1)), 32, 3, 2, 1, 70);
    return 1;
}

static void test_concat(void)
{
    int64_t shape[4] = {2, 8, 11, 12};
    kn_graph *g = check_case("concat", branches, 4, shape, 2);
    expect_convs("concat", g, 3, 0);
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].def == &kn_op_concat)
            KT_CHECK(*(const int64_t *)kn__node_attr(&g->nodes[i], "axis") ==
                         (nhwc_machine() ? 3 : 1),
                     "concat on C is on axis 3 in NHWC");
    kn_graph_free(g);
}

/* MobileNet's inverted residual: expand, depthwise, relu6, project */
static int depthwise(kn_graph *g, kn_scratch *s, kn_tensor *x, kn_tensor **out)
{
    (void)g;
    kn_tensor *h = kn__keep(s, kn_relu6(conv(s, x, 24, 1, 1, 1, 80)));
    h = kn__keep(s, kn_relu6(conv(s, h, 24, 3, 1, 24, 90)));
    h = conv(s, h, 8, 1, 1, 1, 100);
    out[0] = kn__keep(s, kn_add(h, x));
    return 1;
}

static void test_depthwise(void)
{
    int64_t shape[4] = {2, 8, 13, 10};
    kn_graph *g = check_case("depthwise", depthwise, 4, shape, 2);
    expect_convs("depthwise", g, 3, 0);
    kn_graph_free(g);
}

/* conv, flatten, linear: flatten is an edge */
static int flatten_linear(kn_graph *g, kn_scratch *s, kn_tensor *x, kn_tensor **out)
{
    (void)g;
    kn_tensor *h = kn__keep(s, kn_relu(conv(s, x, 24, 3, 2, 1, 110)));
    h = kn__keep(s, kn_flatten(h, 1, -1));
    int64_t ws[2] = {5, kn_tensor_dim(h, 1)};
    out[0] = kn__keep(s, kn_linear(h, kn__keep(s, randn(2, ws, 0.1, 120)), vec(s, 5, 121)));
    return 1;
}

/* conv, global average pool, flatten, linear: the exit is a reshape */
static int pooled_linear(kn_graph *g, kn_scratch *s, kn_tensor *x, kn_tensor **out)
{
    (void)g;
    kn_tensor *h = kn__keep(s, kn_relu(conv(s, x, 32, 3, 1, 1, 130)));
    h = kn__keep(s, kn_flatten(kn__keep(s, kn_global_avg_pool(h, KN_LAYOUT_NCHW)), 1, -1));
    int64_t ws[2] = {5, 32};
    out[0] = kn__keep(s, kn_linear(h, kn__keep(s, randn(2, ws, 0.1, 140)), vec(s, 5, 141)));
    return 1;
}

static void test_edges(void)
{
    int64_t shape[4] = {2, 8, 9, 9};
    kn_graph *g = check_case("flatten", flatten_linear, 4, shape, 2);
    kn_graph_free(g);
    g = check_case("global pool", pooled_linear, 4, shape, 1);
    kn_graph_free(g);
}

/* outputs from the middle of the region: r (also read by a convolution and
 * a flatten: one NCHW conversion for the output and the flatten), then y */
static int mid_outputs(kn_graph *g, kn_scratch *s, kn_tensor *x, kn_tensor **out)
{
    (void)g;
    kn_tensor *r = kn__keep(s, kn_relu(conv(s, x, 24, 3, 1, 1, 150)));
    out[0] = r;
    out[1] = conv(s, r, 8, 3, 1, 1, 160);
    out[2] = kn__keep(s, kn_flatten(r, 1, -1));
    return 3;
}

static void test_mid_outputs(void)
{
    int64_t shape[4] = {2, 8, 7, 9};
    kn_graph *g = check_case("mid outputs", mid_outputs, 4, shape, 3);
    kn_graph_free(g);
}

/* per-channel operands (C,1,1) and (1,C,1,1), a scalar, and an SE gate of
 * shape (N,C,1,1) computed inside the region */
static int broadcasts(kn_graph *g, kn_scratch *s, kn_tensor *x, kn_tensor **out)
{
    int64_t c11[3] = {32, 1, 1}, c4[4] = {1, 32, 1, 1};
    kn_tensor *bias = kn__keep(s, kn_graph_param(g, "bias", kn__keep(s, randn(3, c11, 1, 170))));
    kn_tensor *scale = kn__keep(s, randn(4, c4, 1, 171)); /* a constant */
    kn_tensor *h = kn__keep(s, kn_add(conv(s, x, 32, 3, 1, 1, 172), bias));
    h = kn__keep(s, kn_add_scalar(kn__keep(s, kn_mul(h, scale)), -0.5));
    kn_tensor *gate = kn__keep(s, kn_sigmoid(kn__keep(s, kn_global_avg_pool(h, KN_LAYOUT_NCHW))));
    out[0] = kn__keep(s, kn_relu(kn__keep(s, kn_mul(h, gate))));
    return 1;
}

static void test_broadcast_operands(void)
{
    int64_t shape[4] = {2, 8, 6, 7};
    kn_graph *g = check_case("broadcasts", broadcasts, 4, shape, 2);
    kn_graph_free(g);
}

/* batch_norm that cannot fold (after a relu), softmax over C, a pad, a
 * channel narrow and a split inside the region */
static int channel_ops(kn_graph *g, kn_scratch *s, kn_tensor *x, kn_tensor **out)
{
    (void)g;
    kn_tensor *h = kn__keep(s, kn_relu(conv(s, x, 20, 3, 1, 1, 180)));
    h = kn__keep(
        s, kn_batch_norm(h, vec(s, 20, 181), vec(s, 20, 182), vec(s, 20, 183),
                         kn__keep(s, kn_add_scalar(kn__keep(s, kn_abs(vec(s, 20, 184))), 0.5)),
                         false, 0.1, 1e-5, KN_LAYOUT_NCHW));
    int64_t pads[8] = {0, 0, 0, 0, 1, 2, 2, 1};
    h = kn__keep(s, kn_pad(h, pads, KN_PAD_CONSTANT, 0.25));
    h = kn__keep(s, kn_narrow(h, 1, 2, 8));
    kn_tensor *parts[2];
    int64_t sizes[2] = {3, 5};
    KT_OK(kn_split(h, 2, sizes, 1, parts));
    kn__keep(s, parts[0]), kn__keep(s, parts[1]);
    h = kn__keep(s, kn_mul(conv(s, parts[1], 3, 3, 1, 1, 185), parts[0]));
    out[0] = kn__keep(s, kn_softmax(h, 1));
    return 1;
}

static void test_channel_ops(void)
{
    int64_t shape[4] = {2, 8, 6, 5};
    kn_graph *g = check_case("channel ops", channel_ops, 4, shape, 2);
    expect_convs("channel ops", g, 2, 0);
    for (int32_t i = 0; i < g->n_nodes && nhwc_machine(); i++) {
        const kn_gnode *n = &g->nodes[i];
        if (n->def == &kn_op_batch_norm)
            KT_CHECK(*(const int64_t *)kn__node_attr(n, "layout") == KN_LAYOUT_NHWC,
                     "batch_norm in NHWC");
        if (n->def == &kn_op_softmax)
            KT_CHECK(*(const int64_t *)kn__node_attr(n, "axis") == 3,
                     "softmax over C is on axis 3");
    }
    kn_graph_free(g);
}

/* the user's own permutes: an NHWC input made NCHW, and the result made
 * NHWC again; the region needs no conversion of its own */
static int user_permutes(kn_graph *g, kn_scratch *s, kn_tensor *x, kn_tensor **out)
{
    (void)g;
    int to_nchw[4] = {0, 3, 1, 2}, to_nhwc[4] = {0, 2, 3, 1};
    kn_tensor *h = kn__keep(s, kn_permute(x, 4, to_nchw));
    h = kn__keep(s, kn_relu(conv(s, h, 32, 3, 1, 1, 190)));
    out[0] = kn__keep(s, kn_permute(pool(s, h, true), 4, to_nhwc));
    return 1;
}

static void test_user_permutes(void)
{
    int64_t shape[4] = {2, 10, 12, 8};
    kn_graph *g = check_case_user("user permutes", user_permutes, 4, shape, 0, 2);
    kn_graph_free(g);
}

/* LeNet's convolutions (1->6, 6->16) are faster in NCHW: they stay NCHW
 * and nothing is converted, at any batch size */
static int lenet(kn_graph *g, kn_scratch *s, kn_tensor *x, kn_tensor **out)
{
    (void)g;
    kn_tensor *h = pool(s, kn__keep(s, kn_relu(conv(s, x, 6, 5, 1, 1, 200))), true);
    h = pool(s, kn__keep(s, kn_relu(conv(s, h, 16, 5, 1, 1, 210))), true);
    h = kn__keep(s, kn_flatten(h, 1, -1));
    int64_t ws[2] = {10, kn_tensor_dim(h, 1)};
    out[0] = kn__keep(s, kn_linear(h, kn__keep(s, randn(2, ws, 0.1, 220)), vec(s, 10, 221)));
    return 1;
}

/* a small stem (3->16) stays NCHW and the region starts after it; a
 * small-shaped 1x1 convolution (128->16) inside the region goes NHWC */
static int small_stem(kn_graph *g, kn_scratch *s, kn_tensor *x, kn_tensor **out)
{
    (void)g;
    kn_tensor *h = kn__keep(s, kn_relu(conv(s, x, 16, 3, 1, 1, 230)));
    h = kn__keep(s, kn_relu(conv(s, h, 128, 3, 1, 1, 240)));
    out[0] = conv(s, h, 16, 1, 1, 1, 250);
    return 1;
}

/* an MNIST stem (1->32): one input channel stays NCHW */
static int mnist_stem(kn_graph *g, kn_scratch *s, kn_tensor *x, kn_tensor **out)
{
    (void)g;
    kn_tensor *h = kn__keep(s, kn_relu(conv(s, x, 32, 3, 1, 1, 260)));
    out[0] = conv(s, h, 64, 3, 2, 1, 270);
    return 1;
}

static void test_small_channels(void)
{
    int64_t shape[4] = {4, 1, 28, 28}, one[4] = {1, 1, 28, 28};
    kn_graph *g = check_case("lenet", lenet, 4, shape, 0);
    expect_convs("lenet", g, 0, 2);
    kn_graph_free(g);
    g = check_case("lenet batch 1", lenet, 4, one, 0);
    expect_convs("lenet batch 1", g, 0, 2);
    kn_graph_free(g);
    int64_t stem[4] = {2, 3, 16, 16};
    g = check_case("small stem", small_stem, 4, stem, 2);
    expect_convs("small stem", g, 2, 1);
    kn_graph_free(g);
    g = check_case("mnist stem", mnist_stem, 4, shape, 2);
    expect_convs("mnist stem", g, 1, 1);
    kn_graph_free(g);
}

/* Nothing changes below AVX-512 or for training. */
static void test_off(void)
{
    int64_t shape[4] = {2, 8, 12, 12};
    kn_isa was = kn_isa_max();
    KT_OK(kn_set_isa(KN_ISA_AVX2));
    kn_graph *g = check_case("avx2", chain, 4, shape, 0);
    KT_CHECK(count_op(g, &kn_op_permute) == 0, "avx2: no permute");
    expect_convs("avx2", g, 0, 3);
    kn_graph_free(g);
    KT_OK(kn_set_isa(was));
    g = make(chain, 4, shape, true, KN_GRAPH_TRAINING);
    int h, c;
    conv_layouts(g, &h, &c);
    KT_CHECK(count_op(g, &kn_op_permute) == 0 && h == 0 && c == 3, "training: nothing changed");
    kn_graph_free(g);
}

/* Every allocation of a compile (and a run) with the pass may fail: a clean
 * error, nothing leaked. */
static kn_status walk_compile(void *ctx)
{
    kn_graph *g = kn__graph_clone(ctx);
    if (!g) return kn_last_status();
    int64_t shape[4] = {2, 8, 6, 7};
    kn_tensor *x = kn_tensor_ones(KN_F32, 4, shape), *y = NULL;
    kn_status s = x ? kn_graph_compile(g, KN_GRAPH_INFERENCE) : kn_last_status();
    if (!s) s = kn_graph_run(g, 1, &x, 1, &y);
    kn_tensor_unref(x), kn_tensor_unref(y);
    kn_graph_free(g);
    return s;
}

static void test_alloc_walk(void)
{
    kn_graph *g = kn_graph_new();
    kn_scratch s = {0};
    int64_t shape[4] = {2, 8, 6, 7};
    kn_tensor *x = kn__keep(&s, kn_graph_input(g, "x", KN_F32, 4, shape)), *out[4];
    broadcasts(g, &s, x, out);
    KT_OK(kn_graph_output(g, out[0]));
    kn__scratch_free(&s);
    int n = kt_alloc_walk("layout pass", walk_compile, g);
    KT_CHECK(n > 20 && n < 20000, "walked %d failure points, then succeeded", n);
    kn_graph_free(g);
}

/* ------------------------------------------------------------- model zoo */
/* A hybridized model in inference with and without the pass, at two batch
 * sizes: the second may reuse the first's compiled graph with shapes
 * inferred again (see rebatch in src/graph/block.c); the pass's conversions
 * must not bake the batch in and so cause no extra trace. */
static void check_model(const char *name, kn_model_config cfg, int permutes)
{
    kn_block *m = kn_model_new(name, &cfg);
    KT_NOTNULL(m);
    if (!m) return;
    kn_block_set_training(m, false);
    bool was = kn_autograd_record(false);
    kn_tensor *x[2], *y[2][2] = {{0}};
    int64_t traced[2] = {0, 0};
    for (int b = 0; b < 2; b++) {
        int64_t shape[4] = {5 - 4 * b, 3, cfg.image_size, cfg.image_size}; /* 5, then 1 */
        x[b] = randn(4, shape, 1, 300 + (uint64_t)b);
    }
    for (int pass = 0; pass < 2; pass++) {
        if (!pass) setenv("KILN_DISABLE_PASSES", "layout", 1);
        int64_t traces = kn_block_num_traces(m);
        KT_OK(kn_block_hybridize(m, KN_HYBRIDIZE_ON));
        for (int b = 0; b < 2; b++) {
            KT_OK(kn_block_forward(m, 1, &x[b], 1, &y[pass][b]));
            const kn_graph *g = kn_block_graph(m);
            int want = pass && nhwc_machine() ? permutes : 0;
            KT_CHECK(g && count_op(g, &kn_op_permute) == want,
                     "%s batch %d: %d permutes, expected %d", name, 5 - 4 * b,
                     g ? count_op(g, &kn_op_permute) : -1, want);
        }
        unsetenv("KILN_DISABLE_PASSES");
        traced[pass] = kn_block_num_traces(m) - traces;
        KT_OK(kn_block_hybridize(m, KN_HYBRIDIZE_OFF)); /* drops the cached graphs */
    }
    KT_CHECK(traced[1] == traced[0], "%s: %lld traces with the pass, %lld without", name,
             (long long)traced[1], (long long)traced[0]);
    for (int b = 0; b < 2; b++) {
        double d = kt_max_rel_diff(y[1][b], y[0][b]);
        KT_CHECK(d < 1e-5, "%s batch %d: logits differ by %g with the layout pass", name, 5 - 4 * b,
                 d);
        kn_tensor_unref(x[b]), kn_tensor_unref(y[0][b]), kn_tensor_unref(y[1][b]);
    }
    kn_autograd_record(was);
    kn_block_free(m);
}

static void test_model_zoo(void)
{
    check_model("resnet18", (kn_model_config){.num_classes = 10, .image_size = 40}, 1);
    check_model("mobilenet_v2", (kn_model_config){.num_classes = 10, .image_size = 40}, 1);
}

int main(void)
{
    KT_RUN(test_chain);
    KT_RUN(test_residual);
    KT_RUN(test_concat);
    KT_RUN(test_depthwise);
    KT_RUN(test_edges);
    KT_RUN(test_mid_outputs);
    KT_RUN(test_broadcast_operands);
    KT_RUN(test_channel_ops);
    KT_RUN(test_user_permutes);
    KT_RUN(test_small_channels);
    KT_RUN(test_off);
    KT_RUN(test_alloc_walk);
    KT_RUN(test_model_zoo);
    return kt_finish();
}
