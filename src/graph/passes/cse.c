/* cse.c — common-subexpression elimination: afterwards no two live,
 * stateless nodes have the same op, attrs and inputs; later duplicates are
 * replaced by the first. */
#include "../graph.h"

static bool same_node(const kn_gnode *a, const kn_gnode *b)
{
    if (a->def != b->def || a->n_in != b->n_in || a->n_out != b->n_out) return false;
    if (memcmp(a->in, b->in, sizeof(int32_t) * (size_t)a->n_in)) return false;
    return !a->def->attrs_size || !memcmp(a->attrs, b->attrs, a->def->attrs_size);
}

kn_status kn__pass_cse(kn_graph *g, unsigned flags)
{
    (void)flags;
    int merged = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        kn_gnode *n = &g->nodes[i];
        if (n->dead || n->def->stateful) continue;
        for (int32_t j = 0; j < i; j++) {
            kn_gnode *m = &g->nodes[j];
            if (m->dead || !same_node(m, n)) continue;
            for (int k = 0; k < n->n_out; k++)
                kn__graph_replace_uses(g, n->out[k], m->out[k]);
            n->dead = true;
            merged++;
            break;
        }
    }
    return merged ? kn__graph_compact(g) : KN_OK;
}
