/* grad.c — the gradient graph: appends to a traced graph the nodes that
 * compute d(loss)/d(parameter) for every parameter that requires a gradient,
 * and makes those gradients graph outputs, so one compiled run does forward
 * and backward without the autograd tape. It is built from each op's own
 * gradient function, called on symbolic stand-ins of the graph's values, so
 * the backward ops trace themselves. A composite node is differentiated by
 * tracing its composition again (a recomputation); for a stateful composite
 * (batch_norm in training) the state inputs are left out of that copy, so the
 * running statistics are updated once, by the forward node.
 * Afterwards the graph has one output per such parameter after its outputs. */
#include "../graph.h"

typedef struct grad_ctx {
    kn_graph *g;
    int32_t *grad; /* per value: its gradient's value id, or -1 */
    bool *req;     /* per value: depends on a parameter that requires grad */
    int32_t cap;
} grad_ctx;

static kn_status ensure(grad_ctx *c)
{
    if (c->g->n_values <= c->cap) return KN_OK;
    int32_t cap = c->g->n_values * 2 + 64;
    int32_t *grad = kn_alloc(sizeof(int32_t) * (size_t)cap);
    bool *req = kn_alloc((size_t)cap);
    if (!grad || !req) {
        kn_free(grad), kn_free(req);
        return kn_last_status();
    }
    for (int32_t v = 0; v < cap; v++)
        grad[v] = v < c->cap ? c->grad[v] : -1, req[v] = v < c->cap ? c->req[v] : false;
    kn_free(c->grad), kn_free(c->req);
    c->grad = grad, c->req = req, c->cap = cap;
    return KN_OK;
}

/* Forward pass over nodes [begin, end): which values need gradients. */
static void mark_required(grad_ctx *c, int32_t begin, int32_t end)
{
    for (int32_t i = begin; i < end; i++) {
        const kn_gnode *n = &c->g->nodes[i];
        bool any = false;
        for (int k = 0; k < n->n_in; k++)
            any |= n->in[k] >= 0 && c->req[n->in[k]] && !(k < 32 && (n->def->nondiff_in & (1u << k)));
        for (int k = 0; k < n->n_out; k++)
            c->req[n->out[k]] = any && !n->dead && kn_dtype_is_float(c->g->values[n->out[k]].dtype) &&
                                (n->def->grad || n->def->compose);
    }
}

/* Adds gradient tensor t (for value v, already shaped like it) into c->grad[v]. */
static kn_status accumulate(grad_ctx *c, int32_t v, kn_tensor *t)
{
    kn_graph *g = c->g;
    /* a copy: the ops below trace new values, which may move g->values */
    const kn_gvalue val = g->values[v];
    kn_scratch s = {0};
    if (t->ndim != val.ndim || memcmp(t->shape, val.shape, sizeof(int64_t) * (size_t)val.ndim))
        t = kn__keep(&s, kn__sum_to_shape(t, val.ndim, val.shape));
    if (t && t->dtype != val.dtype) t = kn__keep(&s, kn_cast(t, val.dtype));
    if (t && c->grad[v] >= 0) {
        kn_tensor *old = kn__keep(&s, kn__graph_proxy(g, c->grad[v]));
        t = kn__keep(&s, kn_add(old, t));
    }
    kn_status st = t ? KN_OK : kn_last_status();
    if (!st) {
        int32_t gv = kn__graph_value_of(g, t);
        if (gv < 0 || (st = ensure(c))) st = kn_last_status();
        else c->grad[v] = gv;
    }
    kn__scratch_free(&s);
    return st;
}

static kn_status backprop_range(grad_ctx *c, int32_t begin, int32_t end, int depth);

/* Re-traces a composite node on proxies of its inputs and back-propagates
 * through the copy, its outputs' gradients handed to the copy's outputs. */
static kn_status backprop_composite(grad_ctx *c, int32_t i, int depth)
{
    kn_graph *g = c->g;
    kn_gnode n = g->nodes[i]; /* a copy: tracing may move the node array */
    if (depth > 8) return kn__error(KN_ERR_UNSUPPORTED, "grad: composites nested too deeply at '%s'", n.def->name);
    kn_tensor *in[64] = {0}, *out[64] = {0};
    if (n.n_in > 64 || n.n_out > 64) return kn__error(KN_ERR_UNSUPPORTED, "grad: '%s' has too many inputs", n.def->name);
    for (int k = 0; k < n.n_in; k++) {
        bool state = n.def->stateful && k < 32 && (n.def->nondiff_in & (1u << k)) &&
                     (n.def->optional_in & (1u << k));
        in[k] = state ? NULL : kn__graph_proxy(g, n.in[k]);
    }
    int32_t first = g->n_nodes;
    kn_op_args a = {n.def, in, n.n_in, out, n.n_out, n.attrs, NULL};
    kn_status s = n.def->compose(&a);
    int32_t last = g->n_nodes;
    for (int k = 0; !s && k < n.n_out; k++) {
        if (!out[k] || !out[k]->trace_graph) continue; /* an output not computed from inputs */
        int32_t copy = out[k]->trace_value;
        if (!(s = ensure(c)) && c->grad[n.out[k]] >= 0) c->grad[copy] = c->grad[n.out[k]];
    }
    if (!s && !(s = ensure(c))) {
        mark_required(c, first, last);
        s = backprop_range(c, first, last, depth + 1);
    }
    for (int k = 0; k < 64; k++)
        kn_tensor_unref(in[k]), kn_tensor_unref(out[k]);
    return s;
}

static kn_status backprop_node(grad_ctx *c, int32_t i)
{
    kn_graph *g = c->g;
    kn_gnode n = g->nodes[i];
    kn_tensor *in[64] = {0}, *out[64] = {0}, *gout[64] = {0}, *gin[64] = {0};
    bool needs[64] = {0};
    if (n.n_in > 64 || n.n_out > 64) return kn__error(KN_ERR_UNSUPPORTED, "grad: '%s' has too many inputs", n.def->name);
    for (int k = 0; k < n.n_in; k++) {
        in[k] = kn__graph_proxy(g, n.in[k]);
        needs[k] = n.in[k] >= 0 && c->req[n.in[k]] && !(k < 32 && (n.def->nondiff_in & (1u << k)));
    }
    for (int k = 0; k < n.n_out; k++) {
        out[k] = kn__graph_proxy(g, n.out[k]);
        gout[k] = kn__graph_proxy(g, c->grad[n.out[k]]);
    }
    kn_grad_args ga = {n.def, n.attrs, in, n.n_in, out, n.n_out, gout, needs, gin};
    kn_status s = n.def->grad(&ga);
    for (int k = 0; k < n.n_in; k++) {
        if (!s && gin[k] && needs[k]) s = accumulate(c, n.in[k], gin[k]);
        kn_tensor_unref(gin[k]), kn_tensor_unref(in[k]);
    }
    for (int k = 0; k < n.n_out; k++)
        kn_tensor_unref(out[k]), kn_tensor_unref(gout[k]);
    return s;
}

static kn_status backprop_range(grad_ctx *c, int32_t begin, int32_t end, int depth)
{
    for (int32_t i = end - 1; i >= begin; i--) {
        const kn_gnode *n = &c->g->nodes[i];
        bool any = false;
        for (int k = 0; k < n->n_out; k++)
            any |= c->grad[n->out[k]] >= 0;
        if (n->dead || !any) continue;
        /* errors and backward nodes name the forward op's line */
        kn_set_call_site(n->file, n->line);
        kn_status s = n->def->grad ? backprop_node(c, i)
                      : n->def->compose ? backprop_composite(c, i, depth)
                                        : kn__error(KN_ERR_UNSUPPORTED, "grad: op '%s' has no gradient", n->def->name);
        if (s) {
            char where[200], msg[400];
            snprintf(msg, sizeof msg, "%s", kn_last_error());
            return kn__error(s, "grad: %s: %s", kn__node_where(c->g, i, where, sizeof where), msg);
        }
    }
    return KN_OK;
}

/* d value / d value = ones: the start of back-propagation from `loss`. */
static kn_status seed_ones(grad_ctx *c, int32_t loss)
{
    const kn_gvalue *v = &c->g->values[loss];
    kn_tensor *one = kn_tensor_ones(v->dtype, v->ndim, v->shape);
    if (!one) return kn_last_status();
    int32_t ov = kn__graph_value_of(c->g, one);
    kn_tensor_unref(one);
    if (ov < 0 || ensure(c)) return kn_last_status();
    c->grad[loss] = ov;
    return KN_OK;
}

static kn_status seed(grad_ctx *c, int32_t loss)
{
    const kn_gvalue *v = &c->g->values[loss];
    if (!kn_dtype_is_float(v->dtype) || kn__shape_numel(v->ndim, v->shape) != 1)
        return kn__error(KN_ERR_ARG, "graph_build_backward: the loss must be a float scalar (one element)");
    if (!c->req[loss])
        return kn__error(KN_ERR_ARG, "graph_build_backward: the loss does not depend on any parameter "
                                     "that requires a gradient");
    return seed_ones(c, loss);
}

static kn_status add_outputs(grad_ctx *c, int *n_grads)
{
    kn_graph *g = c->g;
    int32_t n_values = g->n_values;
    *n_grads = 0;
    for (int32_t v = 0; v < n_values; v++) {
        const kn_gvalue *val = &g->values[v];
        if (val->kind != KN_VALUE_PARAM || !val->tensor->requires_grad) continue;
        kn_tensor *t;
        if (c->grad[v] >= 0) t = kn__graph_proxy(g, c->grad[v]);
        else { /* no path from the loss: a zero gradient */
            kn_tensor *z = kn_tensor_zeros(val->dtype, val->ndim, val->shape);
            int32_t zv = z ? kn__graph_value_of(g, z) : -1;
            kn_tensor_unref(z);
            t = zv >= 0 ? kn__graph_proxy(g, zv) : NULL;
        }
        kn_status s = t ? kn_graph_output(g, t) : kn_last_status();
        kn_tensor_unref(t);
        if (s) return s;
        (*n_grads)++;
    }
    return KN_OK;
}

kn_status kn_graph_build_backward(kn_graph *g, int loss_output, int *n_grads)
{
    if (!g || !n_grads) return kn__error(KN_ERR_ARG, "graph_build_backward: graph or n_grads is NULL");
    if (loss_output < 0 || loss_output >= g->n_outputs)
        return kn__error(KN_ERR_ARG, "graph_build_backward: output %d does not exist (the graph has %d)",
                         loss_output, g->n_outputs);
    grad_ctx c = {g, NULL, NULL, 0};
    kn_status s = ensure(&c);
    for (int32_t v = 0; !s && v < g->n_values; v++)
        c.req[v] = g->values[v].kind == KN_VALUE_PARAM && g->values[v].tensor->requires_grad &&
                   kn_dtype_is_float(g->values[v].dtype);
    bool was = kn_autograd_record(false);
    int32_t forward_nodes = g->n_nodes;
    if (!s) mark_required(&c, 0, forward_nodes);
    if (!s) s = seed(&c, g->outputs[loss_output]);
    if (!s) s = backprop_range(&c, 0, forward_nodes, 0);
    if (!s) s = add_outputs(&c, n_grads);
    kn_autograd_record(was);
    kn_free(c.grad), kn_free(c.req);
    g->compiled = false;
    return s;
}

kn_status kn__graph_grad_values(kn_graph *g, int32_t y, int n, const int32_t *xs, int32_t *grads)
{
    if (!g || y < 0 || y >= g->n_values || n < 0 || (n && (!xs || !grads)))
        return kn__error(KN_ERR_ARG, "graph_grad_values: bad graph, value or lists");
    grad_ctx c = {g, NULL, NULL, 0};
    kn_status s = ensure(&c);
    for (int i = 0; i < n; i++) {
        grads[i] = -1;
        if (!s && xs[i] >= 0 && xs[i] < g->n_values && kn_dtype_is_float(g->values[xs[i]].dtype))
            c.req[xs[i]] = true;
    }
    bool was = kn_autograd_record(false);
    int32_t forward_nodes = g->n_nodes;
    if (!s) mark_required(&c, 0, forward_nodes);
    if (!s && c.req[y] && kn_dtype_is_float(g->values[y].dtype)) {
        s = seed_ones(&c, y);
        if (!s) s = backprop_range(&c, 0, forward_nodes, 0);
        for (int i = 0; !s && i < n; i++)
            grads[i] = xs[i] >= 0 && xs[i] < c.cap ? c.grad[xs[i]] : -1;
    }
    kn_autograd_record(was);
    kn_free(c.grad), kn_free(c.req);
    return s;
}
