/* test_prepack.c — weights packed once per compiled graph node (op
 * prepack hook: conv2d_fused / conv2d NHWC, linear_fused, matmul with a
 * 2-D weight): hybridized results equal eager ones, the packed copy is
 * really made and used, and an in-place change of a weight (which bumps
 * its version) is seen by the next run rather than the stale packing. */
#include "harness.h"

#include "graph/graph.h"

#include <math.h>
#include <stdlib.h>

static kn_status net_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                             kn_tensor **out, void *user)
{
    (void)n_in, (void)n_out, (void)user;
    kn_scratch s = {0};
    kn_conv_params p = {.stride = {1, 2}, .pad_begin = {1, 0}, .pad_end = {1, 1},
                        .layout = KN_LAYOUT_NHWC};
#define P(name) kn_block_param(b, name)
    kn_tensor *c = kn__keep(&s, kn_conv2d(in[0], P("conv.w"), P("conv.b"), &p));
    kn_tensor *r = kn__keep(&s, kn_relu(c));
    int64_t flat[2] = {kn_tensor_dim(in[0], 0), -1};
    kn_tensor *f = kn__keep(&s, kn_reshape(r, 2, flat));
    kn_tensor *h = kn__keep(&s, kn_relu(kn__keep(&s, kn_linear(f, P("fc.w"), P("fc.b")))));
    out[0] = kn_matmul(h, P("proj"));
#undef P
    kn__scratch_free(&s);
    return out[0] ? KN_OK : kn_last_status();
}

static kn_tensor *randn(int ndim, const int64_t *shape, double std, uint64_t seed)
{
    kn_manual_seed(seed);
    return kn_tensor_rand_normal(KN_F32, ndim, shape, 0, std);
}

/* x (6, 7, 9, 5) NHWC -> conv 3x3 stride (1, 2) -> (6, 7, 4, 33) -> fc 40 -> proj 19 */
static kn_block *make_net(void)
{
    kn_block *b = kn_block_new("net", net_forward, NULL);
    int64_t cw[4] = {33, 5, 3, 3}, cb[1] = {33}, fw[2] = {40, 7 * 4 * 33}, fb[1] = {40},
            pw[2] = {40, 19};
    const char *names[5] = {"conv.w", "conv.b", "fc.w", "fc.b", "proj"};
    kn_tensor *p[5] = {randn(4, cw, 0.3, 1), randn(1, cb, 0.1, 2), randn(2, fw, 0.05, 3),
                       randn(1, fb, 0.1, 4), randn(2, pw, 0.2, 5)};
    for (int i = 0; i < 5; i++) {
        KT_OK(kn_block_add_param(b, names[i], p[i]));
        kn_tensor_unref(p[i]);
    }
    kn_block_set_training(b, false);
    return b;
}

static kn_tensor *forward1(kn_block *b, kn_tensor *x)
{
    kn_tensor *y = NULL;
    KT_CHECK(kn_block_forward(b, 1, &x, 1, &y) == KN_OK, "forward: %s", kn_last_error());
    return y;
}

/* Nodes of the compiled graph holding a packed weight, by op name. */
static int packed_nodes(const kn_graph *g, const char *op)
{
    int n = 0;
    for (int32_t i = 0; g && g->plan && i < g->n_nodes; i++)
        n += !g->nodes[i].dead && g->plan->packed[i].data && !strcmp(g->nodes[i].def->name, op);
    return n;
}

static void test_hybridized_matches_eager_and_follows_writes(void)
{
    kn_block *b = make_net();
    int64_t xs[4] = {6, 7, 9, 5};
    kn_tensor *x = randn(4, xs, 1, 9);
    kn_tensor *eager = forward1(b, x);
    KT_OK(kn_block_hybridize(b, KN_HYBRIDIZE_ON));
    kn_tensor *h1 = forward1(b, x), *h2 = forward1(b, x);
    KT_CHECK(kt_max_rel_diff(h1, eager) < 1e-5, "hybridized ~ eager (%g)", kt_max_rel_diff(h1, eager));
    KT_CHECK(h1 && h2 && kt_equal_bits(h1, h2), "two runs with the same packing: same bits");
    const kn_graph *g = kn_block_graph(b);
    if (kn_isa_max() >= KN_ISA_AVX512) {
        KT_CHECK(packed_nodes(g, "conv2d_fused") == 1, "the NHWC conv keeps packed weights");
        KT_CHECK(packed_nodes(g, "linear_fused") == 1, "linear_fused keeps a packed B");
        KT_CHECK(packed_nodes(g, "matmul") == 1, "matmul keeps its packed 2-D B");
    }
    /* write every weight in place: the next run packs them again */
    const char *names[3] = {"conv.w", "fc.w", "proj"};
    for (int i = 0; i < 3; i++) {
        kn_tensor *w = kn_block_param(b, names[i]), *v = kn_mul_scalar(w, -0.5);
        KT_OK(kn_tensor_copy_(w, v));
        kn_tensor_unref(v);
    }
    /* the executor itself notices (the block would also retrace on new versions) */
    kn_tensor *r3 = NULL;
    KT_OK(kn_graph_run(kn_block_graph(b), 1, &x, 1, &r3));
    kn_tensor *h3 = forward1(b, x);
    KT_OK(kn_block_hybridize(b, KN_HYBRIDIZE_OFF));
    kn_tensor *eager2 = forward1(b, x);
    KT_CHECK(kt_max_rel_diff(r3, eager2) < 1e-5, "after in-place writes: graph run ~ eager (%g)",
             kt_max_rel_diff(r3, eager2));
    KT_CHECK(kt_max_rel_diff(h3, eager2) < 1e-5, "after in-place writes: hybridized ~ eager (%g)",
             kt_max_rel_diff(h3, eager2));
    kn_tensor_unref(r3);
    KT_CHECK(kt_max_rel_diff(eager2, eager) > 1e-2, "the writes changed the result");
    kn_tensor *all[] = {x, eager, h1, h2, h3, eager2};
    for (int i = 0; i < 6; i++)
        kn_tensor_unref(all[i]);
    kn_block_free(b);
}

/* Without AVX-512 nothing is packed for the conv, and results still match. */
static void test_reference_isa(void)
{
    kn_isa isa = kn_isa_max();
    KT_OK(kn_set_isa(KN_ISA_REF));
    kn_block *b = make_net();
    int64_t xs[4] = {2, 7, 9, 5};
    kn_tensor *x = randn(4, xs, 1, 10);
    kn_tensor *eager = forward1(b, x);
    KT_OK(kn_block_hybridize(b, KN_HYBRIDIZE_ON));
    kn_tensor *h = forward1(b, x);
    KT_CHECK(kt_max_rel_diff(h, eager) < 1e-5, "ref ISA: hybridized ~ eager (%g)", kt_max_rel_diff(h, eager));
    KT_CHECK(packed_nodes(kn_block_graph(b), "conv2d_fused") == 0, "ref ISA: no packed conv weights");
    kn_tensor_unref(x), kn_tensor_unref(eager), kn_tensor_unref(h);
    kn_block_free(b);
    KT_OK(kn_set_isa(isa));
}

int main(void)
{
    KT_RUN(test_hybridized_matches_eager_and_follows_writes);
    KT_RUN(test_reference_isa);
    return kt_finish();
}
