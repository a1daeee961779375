/* infer.c — shape/type inference pass: runs every node's `infer` on symbolic
 * stand-ins of its inputs. Afterwards each value's dtype and shape are the
 * ones its producer infers, and a node that does not fit its inputs (a
 * hand-edited or loaded graph) is an error naming the node. */
#include "../graph.h"

static kn_status infer_node(kn_graph *g, int32_t i)
{
    kn_gnode *n = &g->nodes[i];
    char where[200];
    if ((n->def->n_in >= 0 && n->n_in != n->def->n_in) ||
        (n->def->n_out >= 0 && n->n_out != n->def->n_out))
        return kn__error(KN_ERR_ARG, "infer: %s has %d inputs and %d outputs, expected %d and %d",
                         kn__node_where(g, i, where, sizeof where), n->n_in, n->n_out,
                         n->def->n_in, n->def->n_out);
    kn_tensor *small[16], **in = n->n_in <= 16 ? small : kn_alloc(sizeof(kn_tensor *) * (size_t)n->n_in);
    kn_out_meta meta_small[4], *meta = n->n_out <= 4 ? meta_small : kn_alloc(sizeof(kn_out_meta) * (size_t)n->n_out);
    kn_status s = in && meta ? KN_OK : kn_last_status();
    for (int k = 0; k < n->n_in && in; k++) {
        in[k] = NULL;
        if (s || n->in[k] < 0) continue;
        const kn_gvalue *v = &g->values[n->in[k]];
        if (!(in[k] = kn_tensor_symbolic(v->dtype, v->ndim, v->shape))) s = kn_last_status();
    }
    for (int k = 0; !s && k < n->n_in; k++)
        if (!in[k] && !(k < 32 && (n->def->optional_in & (1u << k))))
            s = kn__error(KN_ERR_ARG, "infer: %s: input %d is missing", kn__node_where(g, i, where, sizeof where), k);
    if (!s) {
        kn_op_args a = {n->def, in, n->n_in, NULL, n->n_out, n->attrs, NULL};
        s = n->def->infer(&a, meta);
        if (s) {
            char msg[400];
            snprintf(msg, sizeof msg, "%s", kn_last_error());
            s = kn__error(s, "infer: %s: %s", kn__node_where(g, i, where, sizeof where), msg);
        }
    }
    for (int k = 0; !s && k < n->n_out; k++) {
        kn_gvalue *v = &g->values[n->out[k]];
        v->dtype = meta[k].dtype;
        v->ndim = meta[k].ndim;
        memcpy(v->shape, meta[k].shape, sizeof(int64_t) * (size_t)meta[k].ndim);
    }
    for (int k = 0; in && k < n->n_in; k++)
        kn_tensor_unref(in[k]);
    if (in != small) kn_free(in);
    if (meta != meta_small) kn_free(meta);
    return s;
}

kn_status kn__pass_infer(kn_graph *g, unsigned flags)
{
    (void)flags;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].dead) continue;
        kn_status s = infer_node(g, i);
        if (s) return s;
    }
    return KN_OK;
}
