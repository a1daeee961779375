/* fold.c — constant folding: a stateless node whose inputs are all constants
 * is run once at compile time; afterwards its outputs are constants and no
 * live node has only constant inputs. Parameters are not constants (an
 * optimizer changes them). */
#include "../graph.h"

static bool all_const(const kn_graph *g, const kn_gnode *n)
{
    int present = 0;
    for (int k = 0; k < n->n_in; k++) {
        if (n->in[k] < 0) continue;
        if (g->values[n->in[k]].kind != KN_VALUE_CONST) return false;
        present++;
    }
    return present > 0;
}

static kn_status fold_node(kn_graph *g, int32_t i)
{
    kn_gnode *n = &g->nodes[i];
    kn_tensor *in[64], *out[64];
    if (n->n_in > 64 || n->n_out > 64) return KN_OK; /* leave huge variadic nodes alone */
    for (int k = 0; k < n->n_in; k++)
        in[k] = n->in[k] >= 0 ? g->values[n->in[k]].tensor : NULL;
    bool was = kn_autograd_record(false);
    kn_status s = kn__op_call(n->def, n->n_in, in, n->attrs, n->n_out, out);
    kn_autograd_record(was);
    if (s) {
        char where[200], msg[400];
        snprintf(msg, sizeof msg, "%s", kn_last_error());
        return kn__error(s, "fold: %s: %s", kn__node_where(g, i, where, sizeof where), msg);
    }
    for (int k = 0; k < n->n_out; k++) {
        kn_gvalue *v = &g->values[n->out[k]];
        v->kind = KN_VALUE_CONST;
        v->node = -1;
        v->tensor = out[k];
    }
    n->dead = true;
    return KN_OK;
}

kn_status kn__pass_fold(kn_graph *g, unsigned flags)
{
    (void)flags;
    int folded = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        kn_gnode *n = &g->nodes[i];
        if (n->dead || n->def->stateful || !all_const(g, n)) continue;
        kn_status s = fold_node(g, i);
        if (s) return s;
        folded++;
    }
    return folded ? kn__graph_compact(g) : KN_OK;
}
