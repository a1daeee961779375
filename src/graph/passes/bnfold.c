/* bnfold.c — inference-only: a batch_norm in inference mode whose input is
 * the only use of a convolution's output (or a linear's (N, C) output, the
 * BatchNorm1d case), with constant or parameter
 * weights and statistics, is folded into that convolution:
 *   w' = w * gamma / sqrt(var + eps) (per output channel), and
 *   b' = (b - mean) * gamma / sqrt(var + eps) + beta.
 * Afterwards no such conv→batch_norm pair is left. The folded weights are
 * constants: recompile after changing the parameters. */
#include "../graph.h"

static bool is_data(const kn_graph *g, int32_t v)
{
    return v >= 0 && (g->values[v].kind == KN_VALUE_PARAM || g->values[v].kind == KN_VALUE_CONST);
}

static bool is_conv(const kn_op_def *d)
{
    return d == &kn_op_conv1d || d == &kn_op_conv2d || d == &kn_op_conv3d;
}

/* The conv node feeding batch_norm node `bn`, or -1 when the pair cannot fold. */
static int32_t foldable_conv(const kn_graph *g, const kn_gnode *bn, const int32_t *uses)
{
    const bool *training = kn__node_attr(bn, "training");
    const int64_t *bn_layout = kn__node_attr(bn, "layout");
    int32_t x = bn->in[0];
    if (!training || *training || !bn_layout || g->values[x].kind != KN_VALUE_NODE || uses[x] != 1)
        return -1;
    const kn_gnode *conv = &g->nodes[g->values[x].node];
    if (conv->dead) return -1;
    if (conv->def == &kn_op_linear) {
        /* y (N, C): channels on axis 1 in both layouts only for 2-d outputs */
        if (g->values[x].ndim != 2) return -1;
    } else {
        const int64_t *conv_layout = kn__node_attr(conv, "layout");
        if (!is_conv(conv->def) || !conv_layout || *conv_layout != *bn_layout) return -1;
    }
    if (!is_data(g, conv->in[1]) || (conv->in[2] >= 0 && !is_data(g, conv->in[2]))) return -1;
    if (!is_data(g, bn->in[3]) || !is_data(g, bn->in[4])) return -1;
    for (int k = 1; k <= 2; k++)
        if (bn->in[k] >= 0 && !is_data(g, bn->in[k])) return -1;
    return g->values[x].node;
}

static int32_t add_const(kn_graph *g, kn_tensor *t)
{
    int32_t v = kn__graph_add_value(g, KN_VALUE_CONST, t->dtype, t->ndim, t->shape);
    if (v < 0) {
        kn_tensor_unref(t);
        return -1;
    }
    g->values[v].tensor = t;
    return v;
}

static kn_tensor *data(const kn_graph *g, int32_t v) { return v >= 0 ? g->values[v].tensor : NULL; }

static kn_status fold(kn_graph *g, int32_t bn_i, int32_t conv_i)
{
    kn_gnode *bn = &g->nodes[bn_i];
    const double *eps = kn__node_attr(bn, "eps");
    kn_tensor *w = data(g, g->nodes[conv_i].in[1]), *b = data(g, g->nodes[conv_i].in[2]);
    kn_tensor *gamma = data(g, bn->in[1]), *beta = data(g, bn->in[2]);
    kn_tensor *mean = data(g, bn->in[3]), *var = data(g, bn->in[4]);
    kn_scratch s = {0};
    bool was = kn_autograd_record(false);
    /* in f64, then back to the weight's dtype */
    kn_tensor *var_eps = kn__keep(&s, kn_add_scalar(kn__keep(&s, kn_cast(var, KN_F64)), eps ? *eps : 1e-5));
    kn_tensor *scale = kn__keep(&s, kn_rsqrt(var_eps));
    if (gamma) scale = kn__keep(&s, kn_mul(scale, kn__keep(&s, kn_cast(gamma, KN_F64))));
    int64_t shape[KN_MAX_DIMS];
    for (int d = 0; d < w->ndim; d++)
        shape[d] = d == 0 ? w->shape[0] : 1;
    kn_tensor *scale_w = kn__keep(&s, kn_reshape(scale, w->ndim, shape));
    kn_tensor *w64 = kn__keep(&s, kn_mul(kn__keep(&s, kn_cast(w, KN_F64)), scale_w));
    kn_tensor *shifted = kn__keep(&s, kn_neg(kn__keep(&s, kn_cast(mean, KN_F64))));
    if (b) shifted = kn__keep(&s, kn_add(shifted, kn__keep(&s, kn_cast(b, KN_F64))));
    kn_tensor *b64 = kn__keep(&s, kn_mul(shifted, scale));
    if (beta) b64 = kn__keep(&s, kn_add(b64, kn__keep(&s, kn_cast(beta, KN_F64))));
    kn_tensor *w_new = kn_cast(w64, w->dtype), *b_new = kn_cast(b64, w->dtype);
    kn_autograd_record(was);
    kn__scratch_free(&s);
    if (!w_new || !b_new) {
        kn_tensor_unref(w_new), kn_tensor_unref(b_new);
        return kn_last_status();
    }
    int32_t wv = add_const(g, w_new), bv = add_const(g, b_new);
    if (wv < 0 || bv < 0) return kn_last_status();
    bn = &g->nodes[bn_i];
    g->nodes[conv_i].in[1] = wv;
    g->nodes[conv_i].in[2] = bv;
    kn__graph_replace_uses(g, bn->out[0], bn->in[0]);
    bn->dead = true;
    return KN_OK;
}

kn_status kn__pass_bnfold(kn_graph *g, unsigned flags)
{
    if (flags & KN_GRAPH_TRAINING) return KN_OK;
    int folded = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].dead || g->nodes[i].def != &kn_op_batch_norm) continue;
        int32_t *uses;
        if (kn__graph_use_counts(g, &uses)) return kn_last_status();
        int32_t conv = foldable_conv(g, &g->nodes[i], uses);
        kn_free(uses);
        if (conv < 0) continue;
        kn_status s = fold(g, i, conv);
        if (s) return s;
        folded++;
    }
    return folded ? kn__graph_compact(g) : KN_OK;
}
