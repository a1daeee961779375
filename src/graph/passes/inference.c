/* inference.c — inference-only rewrites (skipped for training graphs):
 * dropout becomes the identity, and chains of multiplications or additions
 * by 0-d constants collapse into one. Afterwards no dropout node is left and
 * no mul/add by a 0-d constant feeds only another such node. */
#include "../graph.h"

static bool is_scalar_const(const kn_graph *g, int32_t v)
{
    return v >= 0 && g->values[v].kind == KN_VALUE_CONST && g->values[v].ndim == 0;
}

static void drop_dropout(kn_graph *g, int32_t i)
{
    kn_gnode *n = &g->nodes[i];
    kn__graph_replace_uses(g, n->out[0], n->in[0]);
    n->dead = true; /* its mask output is unused once nothing reads out[0]; dce checks */
}

/* mul(mul(x, a), b) -> mul(x, a*b) when the inner result has no other use
 * and a, b are 0-d constants (same for add). */
static kn_status merge_chain(kn_graph *g, int32_t i, const int32_t *uses)
{
    kn_gnode *outer = &g->nodes[i];
    int32_t inner_v = outer->in[0], b = outer->in[1];
    if (!is_scalar_const(g, b) || inner_v < 0 || g->values[inner_v].kind != KN_VALUE_NODE ||
        uses[inner_v] != 1)
        return KN_OK;
    kn_gnode *inner = &g->nodes[g->values[inner_v].node];
    if (inner->dead || inner->def != outer->def || !is_scalar_const(g, inner->in[1])) return KN_OK;
    kn_tensor *a_t = g->values[inner->in[1]].tensor, *b_t = g->values[b].tensor;
    if (a_t->dtype != b_t->dtype) return KN_OK; /* keep promotion exactly as traced */
    kn_tensor *in[2] = {a_t, b_t};
    kn_tensor *c = kn__op_call1(outer->def, 2, in, NULL);
    if (!c) return kn_last_status();
    int32_t cv = kn__graph_add_value(g, KN_VALUE_CONST, c->dtype, 0, NULL);
    if (cv < 0) {
        kn_tensor_unref(c);
        return kn_last_status();
    }
    outer = &g->nodes[i]; /* add_value may have moved nothing in nodes, but stay safe */
    g->values[cv].tensor = c;
    outer->in[0] = inner->in[0];
    outer->in[1] = cv;
    return KN_OK;
}

kn_status kn__pass_inference(kn_graph *g, unsigned flags)
{
    if (flags & KN_GRAPH_TRAINING) return KN_OK;
    const kn_op_def *dropout = kn_op_find("dropout"), *mul = kn_op_find("mul"), *add = kn_op_find("add");
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (!g->nodes[i].dead && g->nodes[i].def == dropout) drop_dropout(g, i);
    for (int32_t i = 0; i < g->n_nodes; i++) {
        kn_gnode *n = &g->nodes[i];
        if (n->dead || (n->def != mul && n->def != add)) continue;
        int32_t *uses;
        if (kn__graph_use_counts(g, &uses)) return kn_last_status();
        kn_status s = merge_chain(g, i, uses);
        kn_free(uses);
        if (s) return s;
    }
    return kn__pass_dce(g, flags);
}
