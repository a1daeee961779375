/* tape.c — eager autograd. While recording, every op whose inputs need a
 * gradient appends a node (op, attrs copy, input and output references and
 * their versions) to this thread's tape. kn_backward walks the tape backwards
 * calling each op's grad function, which is written with kn_ ops, so the same
 * rules serve the graph layer and second derivatives. */
#include "../ops/op.h"

typedef struct kn__node {
    const kn_op_def *def;
    void *attrs;
    int n_in, n_out;
    kn_tensor **in;    /* references (entries may be NULL: optional inputs) */
    kn_tensor **out;   /* references */
    uint64_t *version; /* n_in + n_out versions at record time */
    bool *needs_grad;
    bool visited;
} kn__node;

static _Thread_local struct {
    kn__node **nodes;
    int64_t n, cap;
    bool record;
    int no_grad_depth;
} tape;

static void update_active(void)
{
    kn__set_record_active(tape.record && tape.no_grad_depth == 0);
}

static void node_free(kn__node *nd)
{
    for (int i = 0; i < nd->n_out; i++) {
        if (nd->out[i]->grad_fn == nd) {
            nd->out[i]->grad_fn = NULL;
            nd->out[i]->requires_grad = false; /* its graph is gone */
        }
        kn_tensor_unref(nd->out[i]);
    }
    for (int i = 0; i < nd->n_in; i++)
        kn_tensor_unref(nd->in[i]);
    kn_free(nd->attrs);
    kn_free(nd);
}

/* One allocation holds the node and its arrays. */
static kn__node *node_new(const kn_op_args *a)
{
    size_t n_in = (size_t)a->n_in, n_out = (size_t)a->n_out;
    size_t bytes = sizeof(kn__node) + (n_in + n_out) * (sizeof(kn_tensor *) + sizeof(uint64_t)) +
                   n_in * sizeof(bool);
    kn__node *nd = kn_alloc(bytes);
    if (!nd) return NULL;
    memset(nd, 0, bytes);
    nd->attrs = a->def->attrs_size ? kn_alloc(a->def->attrs_size) : NULL;
    if (a->def->attrs_size && !nd->attrs) {
        kn_free(nd);
        return NULL;
    }
    if (nd->attrs && a->attrs)
        memcpy(nd->attrs, a->attrs, a->def->attrs_size);
    else if (nd->attrs)
        memset(nd->attrs, 0, a->def->attrs_size); /* NULL attrs: defaults */
    nd->def = a->def;
    nd->n_in = a->n_in;
    nd->n_out = a->n_out;
    nd->in = (kn_tensor **)(nd + 1);
    nd->out = nd->in + n_in;
    nd->version = (uint64_t *)(nd->out + n_out);
    nd->needs_grad = (bool *)(nd->version + n_in + n_out);
    return nd;
}

static kn_status tape_push(kn__node *nd)
{
    if (tape.n == tape.cap) {
        int64_t cap = tape.cap ? tape.cap * 2 : 256;
        kn__node **grown = kn_alloc((size_t)cap * sizeof *grown);
        if (!grown) return kn_last_status();
        if (tape.n) memcpy(grown, tape.nodes, (size_t)tape.n * sizeof *grown);
        kn_free(tape.nodes);
        tape.nodes = grown;
        tape.cap = cap;
    }
    tape.nodes[tape.n++] = nd;
    return KN_OK;
}

static kn_status record(const kn_op_args *a)
{
    kn__node *nd = node_new(a);
    if (!nd) return kn_last_status();
    for (int i = 0; i < a->n_in; i++) {
        kn_tensor *t = a->in[i];
        nd->in[i] = kn_tensor_ref(t);
        nd->version[i] = kn_tensor_version(t);
        nd->needs_grad[i] = t && t->requires_grad && !(i < 32 && (a->def->nondiff_in & (1u << i)));
    }
    for (int i = 0; i < a->n_out; i++) {
        nd->out[i] = kn_tensor_ref(a->out[i]);
        nd->version[a->n_in + i] = kn_tensor_version(a->out[i]);
    }
    if (tape_push(nd)) {
        node_free(nd);
        return kn_last_status();
    }
    for (int i = 0; i < a->n_out; i++) {
        kn_tensor *o = a->out[i];
        if (!kn_dtype_is_float(o->dtype)) continue; /* indices, masks: no gradient */
        o->requires_grad = true;
        o->grad_fn = nd;
        o->out_index = i;
    }
    return KN_OK;
}

bool kn_autograd_record(bool on)
{
    bool prev = tape.record;
    tape.record = on;
    kn__set_record_hook(record);
    update_active();
    return prev;
}

bool kn_autograd_is_recording(void)
{
    return tape.record && tape.no_grad_depth == 0;
}

void kn_no_grad_begin(void)
{
    tape.no_grad_depth++;
    update_active();
}

void kn_no_grad_end(void)
{
    if (tape.no_grad_depth > 0) tape.no_grad_depth--;
    update_active();
}

void kn_autograd_tape_free(void)
{
    for (int64_t i = tape.n - 1; i >= 0; i--)
        node_free(tape.nodes[i]);
    kn_free(tape.nodes);
    tape.nodes = NULL;
    tape.n = tape.cap = 0;
}

int64_t kn_autograd_tape_size(void)
{
    return tape.n;
}

kn_status kn_tensor_set_requires_grad(kn_tensor *t, bool on)
{
    if (!t) return kn__error(KN_ERR_ARG, "set_requires_grad: tensor is NULL");
    if (t->grad_fn)
        return kn__error(KN_ERR_STATE,
                         "set_requires_grad: only leaf tensors can be changed; this "
                         "one was computed by '%s' (use kn_detach)",
                         t->grad_fn->def->name);
    if (on && !kn_dtype_is_float(t->dtype))
        return kn__error(KN_ERR_DTYPE,
                         "set_requires_grad: only float tensors can require "
                         "gradients, this one is %s",
                         kn_dtype_name(t->dtype));
    t->requires_grad = on;
    return KN_OK;
}

bool kn_tensor_requires_grad(const kn_tensor *t)
{
    return t && t->requires_grad;
}
kn_tensor *kn_tensor_grad(const kn_tensor *t)
{
    return t ? t->grad : NULL;
}

void kn_tensor_zero_grad(kn_tensor *t)
{
    if (!t) return;
    kn_tensor_unref(t->grad);
    t->grad = NULL;
}

kn_tensor *kn_detach(kn_tensor *x)
{
    if (!x) return kn__error_null(KN_ERR_ARG, "detach: tensor is NULL");
    return kn__tensor_view(x, x->ndim, x->shape, x->strides, x->offset);
}

/* ---- backward */

/* Brings a gradient to the shape and dtype of the tensor it is for. */
static kn_tensor *fit_gradient(kn_tensor *g, const kn_tensor *t)
{
    kn_tensor *r = kn_tensor_ref(g);
    if (r->ndim != t->ndim || memcmp(r->shape, t->shape, sizeof(int64_t) * (size_t)t->ndim)) {
        kn_tensor *s = kn__sum_to_shape(r, t->ndim, t->shape);
        kn_tensor_unref(r);
        if (!s) return NULL;
        if (s->ndim != t->ndim || memcmp(s->shape, t->shape, sizeof(int64_t) * (size_t)t->ndim)) {
            kn_tensor_unref(s);
            return kn__error_null(KN_ERR_INTERNAL, "backward: a gradient does not fit its input");
        }
        r = s;
    }
    if (r->dtype != t->dtype) {
        kn_tensor *c = kn_cast(r, t->dtype);
        kn_tensor_unref(r);
        r = c;
    }
    return r;
}

/* Adds g into *slot (which may be empty); takes ownership of g. */
static kn_status accumulate(kn_tensor **slot, kn_tensor *g)
{
    if (!*slot) {
        *slot = g;
        return KN_OK;
    }
    kn_tensor *sum = kn_add(*slot, g);
    kn_tensor_unref(g);
    if (!sum) return kn_last_status();
    kn_tensor_unref(*slot);
    *slot = sum;
    return KN_OK;
}

static kn_status deliver(kn__node *nd, int i, kn_tensor *g)
{
    kn_tensor *t = nd->in[i];
    kn_tensor *fit = fit_gradient(g, t);
    if (!fit) return kn_last_status();
    if (!t->grad_fn && !t->requires_grad) {
        kn_tensor_unref(fit);
        return kn__error(KN_ERR_STATE,
                         "backward: input %d of '%s' was produced by a graph that an "
                         "earlier backward freed; pass KN_BACKWARD_RETAIN_GRAPH to "
                         "back-propagate twice",
                         i, nd->def->name);
    }
    return accumulate(t->grad_fn ? &t->bw_grad : &t->grad, fit);
}

static kn_status check_versions(const kn__node *nd)
{
    for (int i = 0; i < nd->n_in + nd->n_out; i++) {
        const kn_tensor *t = i < nd->n_in ? nd->in[i] : nd->out[i - nd->n_in];
        if (t && kn_tensor_version(t) != nd->version[i])
            return kn__error(KN_ERR_STATE,
                             "backward: %s %d of '%s' was modified in place after it was "
                             "recorded (version %llu, saved %llu); its gradient would be wrong",
                             i < nd->n_in ? "input" : "output", i < nd->n_in ? i : i - nd->n_in,
                             nd->def->name, (unsigned long long)kn_tensor_version(t),
                             (unsigned long long)nd->version[i]);
    }
    return KN_OK;
}

static kn_status backprop_node(kn__node *nd)
{
    bool any = false;
    for (int i = 0; i < nd->n_out; i++)
        any |= nd->out[i]->grad_fn == nd && nd->out[i]->bw_grad;
    if (!any) return KN_OK;
    nd->visited = true;
    kn_status s = check_versions(nd);
    if (s) return s;
    /* variadic ops (concat, split) may have any arity: arrays on the heap */
    kn_tensor **grad_out = kn_alloc(sizeof(kn_tensor *) * (size_t)(nd->n_out + nd->n_in));
    if (!grad_out) return kn_last_status();
    kn_tensor **grad_in = grad_out + nd->n_out;
    for (int i = 0; i < nd->n_out; i++)
        grad_out[i] = nd->out[i]->grad_fn == nd ? nd->out[i]->bw_grad : NULL;
    for (int i = 0; i < nd->n_in; i++)
        grad_in[i] = NULL;
    kn_grad_args g = {nd->def,   nd->attrs, nd->in,         nd->n_in, nd->out,
                      nd->n_out, grad_out,  nd->needs_grad, grad_in};
    s = nd->def->grad(&g);
    for (int i = 0; i < nd->n_in; i++) {
        if (!s && grad_in[i] && nd->needs_grad[i]) s = deliver(nd, i, grad_in[i]);
        kn_tensor_unref(grad_in[i]);
    }
    kn_free(grad_out);
    for (int i = 0; i < nd->n_out; i++) { /* this node's outputs are done */
        if (nd->out[i]->grad_fn != nd) continue;
        kn_tensor_unref(nd->out[i]->bw_grad);
        nd->out[i]->bw_grad = NULL;
    }
    return s;
}

static void clear_pending(int64_t upto)
{
    for (int64_t k = 0; k < upto; k++) {
        kn__node *nd = tape.nodes[k];
        for (int i = 0; i < nd->n_out; i++) {
            kn_tensor_unref(nd->out[i]->bw_grad);
            nd->out[i]->bw_grad = NULL;
        }
    }
}

/* Frees visited nodes and keeps the rest in order. */
static void free_visited(void)
{
    int64_t kept = 0;
    for (int64_t k = 0; k < tape.n; k++) {
        kn__node *nd = tape.nodes[k];
        if (nd->visited)
            node_free(nd);
        else
            tape.nodes[kept++] = nd;
    }
    tape.n = kept;
}

static kn_status seed_gradient(kn_tensor *out, kn_tensor *grad, kn_tensor **seed)
{
    if (!out) return kn__error(KN_ERR_ARG, "backward: output is NULL");
    if (!out->requires_grad)
        return kn__error(KN_ERR_STATE, "backward: the output does not require a gradient (was "
                                       "recording on, and does an input require grad?)");
    if (!grad) {
        if (kn_tensor_numel(out) != 1)
            return kn__error(KN_ERR_ARG,
                             "backward: the output has %lld elements; pass an "
                             "upstream gradient for a non-scalar output",
                             (long long)kn_tensor_numel(out));
        *seed = kn_tensor_ones(out->dtype, out->ndim, out->shape);
        return *seed ? KN_OK : kn_last_status();
    }
    if (grad->ndim != out->ndim ||
        memcmp(grad->shape, out->shape, sizeof(int64_t) * (size_t)out->ndim)) {
        char a[96], b[96];
        return kn__error(KN_ERR_SHAPE, "backward: gradient shape %s does not match output shape %s",
                         kn__shape_str(grad->ndim, grad->shape, a, sizeof a),
                         kn__shape_str(out->ndim, out->shape, b, sizeof b));
    }
    *seed = grad->dtype == out->dtype ? kn_tensor_ref(grad) : kn_cast(grad, out->dtype);
    return *seed ? KN_OK : kn_last_status();
}

kn_status kn_backward_ex(kn_tensor *out, kn_tensor *grad, unsigned flags)
{
    kn_tensor *seed = NULL;
    kn_status s = seed_gradient(out, grad, &seed);
    if (s) return s;
    if (!out->grad_fn) /* a leaf: its gradient is the seed */
        return accumulate(&out->grad, seed);
    out->bw_grad = seed;
    bool was_active = kn__record_active();
    kn__set_record_active((flags & KN_BACKWARD_CREATE_GRAPH) != 0 && was_active);
    int64_t n = tape.n; /* nodes recorded by create_graph go after n */
    for (int64_t k = n - 1; k >= 0 && !s; k--)
        s = backprop_node(tape.nodes[k]);
    clear_pending(n);
    update_active();
    /* like PyTorch, create_graph keeps the graph: the new nodes refer to it */
    if (!(flags & (KN_BACKWARD_RETAIN_GRAPH | KN_BACKWARD_CREATE_GRAPH)))
        free_visited();
    else
        for (int64_t k = 0; k < tape.n; k++)
            tape.nodes[k]->visited = false;
    return s;
}

kn_status kn_backward(kn_tensor *out, kn_tensor *grad)
{
    return kn_backward_ex(out, grad, 0);
}
