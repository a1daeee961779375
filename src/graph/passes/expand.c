/* expand.c — inference-only: every stateless composite node (global pools,
 * norms, losses, an unfused linear...) is replaced, in place, by the nodes
 * its composition traces, so the executor runs their kernels from the arena
 * and the fusion pass sees them. Afterwards no stateless composite node is
 * left (stateful ones, batch_norm, stay whole). */
#include "../graph.h"

static bool expandable(const kn_gnode *n)
{
    return !n->dead && n->def->compose && !n->def->stateful && n->n_in <= 16 && n->n_out <= 16;
}

/* Traces node n's composition at the end of g; remaps its outputs. */
static kn_status expand_node(kn_graph *g, kn_gnode *n, int32_t **remap, int32_t *cap)
{
    kn_tensor *in[16] = {0}, *out[16] = {0};
    kn_status s = KN_OK;
    for (int k = 0; k < n->n_in && !s; k++)
        if (n->in[k] >= 0 && !(in[k] = kn__graph_proxy(g, n->in[k]))) s = kn_last_status();
    kn_set_call_site(n->file, n->line);
    kn_op_args a = {n->def, in, n->n_in, out, n->n_out, n->attrs, NULL};
    if (!s) s = n->def->compose(&a);
    int32_t vals[16];
    for (int k = 0; k < n->n_out && !s; k++)
        if ((vals[k] = out[k] ? kn__graph_value_of(g, out[k]) : -1) < 0)
            s = out[k] ? kn_last_status() : kn__error(KN_ERR_INTERNAL, "expand: no output %d", k);
    if (!s && g->n_values > *cap) { /* remap grows with the values tracing adds */
        int32_t nc = g->n_values * 2;
        int32_t *grown = kn_alloc(sizeof(int32_t) * (size_t)nc);
        if (!grown) s = kn_last_status();
        for (int32_t i = 0; grown && i < nc; i++)
            grown[i] = i < *cap ? (*remap)[i] : i;
        if (grown) kn_free(*remap), *remap = grown, *cap = nc;
    }
    for (int k = 0; k < n->n_out && !s; k++) /* all or nothing */
        (*remap)[n->out[k]] = vals[k];
    for (int k = 0; k < 16; k++)
        kn_tensor_unref(in[k]), kn_tensor_unref(out[k]);
    return s;
}

kn_status kn__pass_expand(kn_graph *g, unsigned flags)
{
    if (flags & KN_GRAPH_TRAINING) return KN_OK;
    bool any = false;
    for (int32_t i = 0; i < g->n_nodes && !any; i++)
        any = expandable(&g->nodes[i]);
    if (!any) return KN_OK;
    int32_t cap = g->n_values * 2 + 16;
    int32_t *remap = kn_alloc(sizeof(int32_t) * (size_t)cap);
    if (!remap) return kn_last_status();
    for (int32_t v = 0; v < cap; v++)
        remap[v] = v;
    kn_gnode *old = g->nodes;
    int32_t n_old = g->n_nodes;
    g->nodes = NULL, g->n_nodes = g->cap_nodes = 0;
    kn_status s = KN_OK;
    bool was = kn_autograd_record(false);
    for (int32_t i = 0; i < n_old; i++) {
        kn_gnode *n = &old[i];
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0) n->in[k] = remap[n->in[k]];
        if (!s && expandable(n)) {
            if (!expand_node(g, n, &remap, &cap)) {
                kn_free(n->attrs), kn_free(n->in); /* the traced nodes produce its outputs */
                continue;
            }
            kn_clear_error(); /* cannot be traced (say, it reads data): keep it whole */
        }
        kn_status a = kn__graph_append_node(g, n);
        if (a) kn_free(n->attrs), kn_free(n->in);
        if (!s) s = a;
    }
    kn_autograd_record(was);
    for (int i = 0; i < g->n_outputs; i++)
        g->outputs[i] = remap[g->outputs[i]];
    kn_free(old);
    kn_free(remap);
    if (s) return s;
    return kn__pass_dce(g, flags); /* drops what a failed expansion left behind */
}
