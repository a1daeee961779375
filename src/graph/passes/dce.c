/* dce.c — dead-code elimination: afterwards every node contributes to a
 * graph output or is stateful (running statistics, random draws). */
#include "../graph.h"

kn_status kn__pass_dce(kn_graph *g, unsigned flags)
{
    (void)flags;
    bool *live = kn_alloc((size_t)g->n_values + 1);
    if (!live) return kn_last_status();
    memset(live, 0, (size_t)g->n_values + 1);
    for (int i = 0; i < g->n_outputs; i++)
        live[g->outputs[i]] = true;
    for (int32_t i = g->n_nodes - 1; i >= 0; i--) {
        kn_gnode *n = &g->nodes[i];
        if (n->dead) continue;
        bool needed = n->def->stateful;
        for (int k = 0; k < n->n_out; k++)
            needed |= live[n->out[k]];
        if (!needed) {
            n->dead = true;
            continue;
        }
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0) live[n->in[k]] = true;
    }
    kn_free(live);
    return kn__graph_compact(g);
}
