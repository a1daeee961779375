/* trace.c — the dispatcher's trace hook: an op with a traced symbolic input
 * becomes a node of that tensor's graph. Concrete tensors met on the way are
 * captured as constants (by reference); the outputs, already symbolic, are
 * tagged with their new values. */
#include "graph.h"

/* The graph of the traced inputs; all must agree. */
static kn_status find_graph(const kn_op_args *a, kn_graph **out)
{
    kn_graph *g = NULL;
    for (int i = 0; i < a->n_in; i++) {
        kn_tensor *t = a->in[i];
        if (!t || !t->trace_graph) continue;
        kn_graph *gi = kn__graph_of(t);
        if (!gi)
            return kn__error(KN_ERR_STATE, "%s: input %d belongs to a graph that was freed",
                             a->def->name, i);
        if (g && gi != g)
            return kn__error(KN_ERR_ARG, "%s: inputs come from two different graphs", a->def->name);
        g = gi;
    }
    *out = g;
    return KN_OK;
}

/* The value for a concrete tensor: one const per tensor object. */
static int32_t const_value(kn_graph *g, kn_tensor *t)
{
    for (int32_t v = 0; v < g->n_values; v++)
        if (g->values[v].kind == KN_VALUE_CONST && g->values[v].tensor == t) return v;
    int32_t v = kn__graph_add_value(g, KN_VALUE_CONST, t->dtype, t->ndim, t->shape);
    if (v >= 0) g->values[v].tensor = kn_tensor_ref(t);
    return v;
}

static kn_status input_value(kn_graph *g, const kn_op_args *a, int i, int32_t *v)
{
    kn_tensor *t = a->in[i];
    if (!t) {
        *v = -1;
        return KN_OK;
    }
    if (t->trace_graph) {
        *v = t->trace_value;
        return KN_OK;
    }
    if (!t->storage)
        return kn__error(KN_ERR_ARG, "%s: input %d is symbolic but not part of this graph (create "
                                     "it with kn_graph_input)",
                         a->def->name, i);
    *v = const_value(g, t);
    return *v < 0 ? kn_last_status() : KN_OK;
}

static kn_status trace(const kn_op_args *a)
{
    kn_graph *g = NULL;
    kn_status s = find_graph(a, &g);
    if (s || !g) return s;
    int32_t small[16], *in = a->n_in <= 16 ? small : kn_alloc(sizeof(int32_t) * (size_t)a->n_in);
    if (!in) return kn_last_status();
    for (int i = 0; i < a->n_in && !s; i++)
        s = input_value(g, a, i, &in[i]);
    int32_t n = s ? -1 : kn__graph_add_node(g, a->def, a->attrs, a->n_in, in, a->n_out);
    if (in != small) kn_free(in);
    if (n < 0) return kn_last_status();
    kn__call_site(&g->nodes[n].file, &g->nodes[n].line);
    for (int k = 0; k < a->n_out; k++) {
        kn_tensor *o = a->out[k];
        int32_t v = kn__graph_add_value(g, KN_VALUE_NODE, o->dtype, o->ndim, o->shape);
        if (v < 0) {
            g->nodes[n].dead = true; /* leave the graph consistent */
            return kn_last_status();
        }
        g->values[v].node = n;
        g->values[v].out_index = k;
        g->nodes[n].out[k] = v;
        o->trace_graph = g;
        o->trace_value = v;
    }
    return KN_OK;
}

void kn__trace_install(void) { kn__set_trace_hook(trace); }
