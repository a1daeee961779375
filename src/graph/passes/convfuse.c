/* convfuse.c — inference-only: conv2d or linear → [add residual] →
 * [activation] chains, each intermediate read only by the next node, become
 * one conv2d_fused / linear_fused node whose kernel applies bias, residual
 * and activation while storing the output (every linear becomes a
 * linear_fused: its bias then rides in the GEMM's epilogue too). Afterwards
 * no conv2d or linear output feeds (as its only use) an add of the same
 * shape or a supported activation, and no linear node is left. */
#include "../graph.h"

#include "../../kernels/gemm.h" /* kn_act */

static void copy_ints(int64_t *dst, const kn_ints *src)
{
    for (int i = 0; src && i < src->n && i < 2; i++)
        dst[i] = src->v[i];
}

static bool conv_params(const kn_gnode *n, kn_conv_params *p)
{
    const int64_t *groups = kn__node_attr(n, "groups"), *layout = kn__node_attr(n, "layout");
    const bool *same = kn__node_attr(n, "pad_same");
    if (!groups || !layout || !same) return false;
    memset(p, 0, sizeof *p);
    copy_ints(p->stride, kn__node_attr(n, "stride"));
    copy_ints(p->pad_begin, kn__node_attr(n, "pad_begin"));
    copy_ints(p->pad_end, kn__node_attr(n, "pad_end"));
    copy_ints(p->dilation, kn__node_attr(n, "dilation"));
    p->groups = *groups;
    p->pad_same = *same;
    p->layout = (kn_layout)*layout;
    return true;
}

static int act_of(const kn_op_def *d)
{
    const kn_op_def *defs[] = {&kn_op_relu, &kn_op_relu6, &kn_op_gelu, &kn_op_gelu_tanh,
                               &kn_op_silu, &kn_op_sigmoid, &kn_op_tanh};
    const int acts[] = {KN_ACT_RELU, KN_ACT_RELU6, KN_ACT_GELU, KN_ACT_GELU_TANH,
                        KN_ACT_SILU, KN_ACT_SIGMOID, KN_ACT_TANH};
    for (int i = 0; i < KN_ARRAY_LEN(defs); i++)
        if (d == defs[i]) return acts[i];
    return KN_ACT_NONE;
}

static bool same_meta(const kn_gvalue *a, const kn_gvalue *b)
{
    return a->dtype == b->dtype && a->ndim == b->ndim &&
           !memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim);
}

/* The only node reading value v (-1 if none or several, or a graph output). */
static int32_t sole_reader(const kn_graph *g, int32_t v, const int32_t *uses)
{
    if (uses[v] != 1) return -1;
    for (int32_t i = 0; i < g->n_nodes; i++)
        for (int k = 0; !g->nodes[i].dead && k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] == v) return i;
    return -1; /* read by a graph output */
}

static kn_status fuse_chain(kn_graph *g, int32_t ci, const int32_t *uses, bool *fused)
{
    kn_gnode *conv = &g->nodes[ci];
    bool is_linear = conv->def == &kn_op_linear;
    kn_conv_params p;
    *fused = false;
    if (!is_linear && !conv_params(conv, &p)) return KN_OK;
    int32_t y = conv->out[0], residual = -1, last = ci, act = KN_ACT_NONE;
    int32_t add = sole_reader(g, y, uses);
    if (add >= 0 && g->nodes[add].def == &kn_op_add) {
        const kn_gnode *n = &g->nodes[add];
        int32_t other = n->in[0] == y ? n->in[1] : n->in[0];
        if (n->in[0] != n->in[1] && same_meta(&g->values[other], &g->values[y]) &&
            same_meta(&g->values[n->out[0]], &g->values[y]))
            residual = other, last = add, y = n->out[0];
    }
    int32_t an = sole_reader(g, y, uses);
    if (an >= 0 && (act = act_of(g->nodes[an].def)) != KN_ACT_NONE) last = an, y = g->nodes[an].out[0];
    if (last == ci && !is_linear) return KN_OK;
    kn_gnode *tail = &g->nodes[last];
    int32_t *in = kn_alloc(sizeof(int32_t) * 5);
    void *attrs = kn_alloc(is_linear ? sizeof(int64_t) : kn__conv_fused_attrs_size());
    if (!in || !attrs) {
        kn_free(in), kn_free(attrs);
        return kn_last_status();
    }
    in[0] = conv->in[0], in[1] = conv->in[1], in[2] = conv->in[2], in[3] = residual, in[4] = y;
    if (is_linear) *(int64_t *)attrs = act; /* linear_fused's attrs: {act} */
    else kn__conv_fused_attrs_set(attrs, &p, act);
    if (last != ci) conv->dead = true; /* earlier chain nodes go; the tail becomes the fused node */
    if (residual >= 0 && add != last) g->nodes[add].dead = true;
    kn_free(tail->in), kn_free(tail->attrs);
    tail->def = is_linear ? &kn_op_linear_fused : &kn_op_conv2d_fused;
    tail->attrs = attrs;
    tail->in = in;
    tail->n_in = 4;
    tail->out = in + 4;
    tail->n_out = 1;
    tail->file = conv->file, tail->line = conv->line;
    *fused = true;
    return KN_OK;
}

kn_status kn__pass_convfuse(kn_graph *g, unsigned flags)
{
    if (flags & KN_GRAPH_TRAINING) return KN_OK;
    int n = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].dead || (g->nodes[i].def != &kn_op_conv2d && g->nodes[i].def != &kn_op_linear))
            continue;
        int32_t *uses;
        if (kn__graph_use_counts(g, &uses)) return kn_last_status();
        bool fused;
        kn_status s = fuse_chain(g, i, uses, &fused);
        kn_free(uses);
        if (s) return s;
        n += fused;
    }
    return n ? kn__graph_compact(g) : KN_OK;
}
