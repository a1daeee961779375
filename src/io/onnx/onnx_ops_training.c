/* onnx_ops_training.c — the ai.onnx.preview.training domain: Gradient,
 * whose outputs are d sum(y) / d x for each x named in attribute xs, y
 * named in attribute y; the inputs are the values of xs then zs (zs are
 * held constant). The gradient is traced into the graph being built by the
 * graph layer's backward (the same op gradients hybridized training uses). */
#if KILN_HAVE_ONNX
#include "onnx_model.h"

#define MAX_XS 64

/* The value y names, while the graph is built: kiln keeps a value alive
 * while a later node reads it or it is a graph output. */
static kn_tensor *named_value(const char *name)
{
    kn_onnx_builder *b = kn__onnx_current;
    int32_t slot = b ? kn__onnx_lookup(b->m, name) : -1;
    return slot >= 0 ? b->env[slot] : NULL;
}

/* x's value id in graph g, or -1 when x is not a value of g (a constant). */
static int32_t value_of(const kn_graph *g, const kn_tensor *x)
{
    return x && !x->storage && x->trace_graph == g ? x->trace_value : -1;
}

static kn_status convert_gradient(kn_onnx_node *n)
{
    const Onnx__AttributeProto *xs = kn__onnx_attr(n, "xs");
    char ybuf[512];
    const char *yname = kn__onnx_attr_string(n, "y", NULL, ybuf, sizeof ybuf);
    int nx = xs ? (int)xs->n_strings : 0;
    if (!yname || nx < 1)
        return kn__onnx_fail(n, KN_ERR_ARG, "attributes xs (names) and y (a name) are required");
    if (nx > MAX_XS || nx > n->n_in || nx != n->n_out)
        return kn__onnx_fail(n, KN_ERR_ARG, "%d names in xs, %d inputs and %d outputs: expected the "
                             "xs values first among the inputs and one output per x (at most %d)",
                             nx, n->n_in, n->n_out, MAX_XS);
    kn_tensor *y = named_value(yname);
    if (!y)
        return kn__onnx_fail(n, KN_ERR_UNSUPPORTED, "y '%s' is not available here: kiln "
                             "differentiates a y that is a graph output or read after this node", yname);
    kn_graph *g = kn__onnx_current->g;
    int32_t xv[MAX_XS], gv[MAX_XS];
    for (int i = 0; i < nx; i++)
        if (!n->in[i]) return kn__onnx_fail(n, KN_ERR_ARG, "input %d (an x) is missing", i);
    for (int i = 0; i < nx; i++)
        xv[i] = value_of(g, n->in[i]);
    int32_t yv = value_of(g, y);
    kn_status s = KN_OK;
    if (yv >= 0) s = kn__graph_grad_values(g, yv, nx, xv, gv);
    else
        for (int i = 0; i < nx; i++)
            gv[i] = -1; /* y is a constant: zero gradients */
    for (int i = 0; !s && i < nx; i++) {
        kn_tensor *x = n->in[i];
        n->out[i] = gv[i] >= 0 ? kn__graph_proxy(g, gv[i])
                               : kn_tensor_zeros(x->dtype, x->ndim, x->shape);
        if (!n->out[i]) s = kn_last_status();
    }
    return s;
}

const kn_onnx_op kn__onnx_ops_training[] = {
    {"ai.onnx.preview.training", "Gradient", 1, convert_gradient, NULL},
    {NULL, NULL, 0, NULL, NULL},
};
#endif
