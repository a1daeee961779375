/* train_step.c — one training step (forward, loss, backward, update). A
 * hybridized network gets the forward, the loss and the backward as one
 * compiled graph per input signature, whose outputs are the loss, the
 * network's output and the parameters' gradients; the trainer then steps
 * on those gradients as it would on autograd's. */
#include "../graph/graph.h"

#define STEP_CACHE 4

typedef struct step_graph {
    kn_dtype dtype[2];
    int ndim[2];
    int64_t shape[2][KN_MAX_DIMS];
    bool training;
    kn_graph *g;
    int n_grads;
    kn_tensor **grad_of; /* the parameter each gradient output belongs to (borrowed) */
    uint64_t last_used;
} step_graph;

struct kn_train_step {
    kn_block *net;
    kn_trainer *trainer;
    kn_loss_fn loss_fn;
    void *user;
    step_graph cache[STEP_CACHE];
    uint64_t clock;
    kn_graph *last;
};

static kn_tensor *default_loss(kn_tensor *output, kn_tensor *target, void *user)
{
    (void)user;
    return kn_cross_entropy(output, target, NULL, NULL);
}

kn_train_step *kn_train_step_new(kn_block *net, kn_trainer *trainer, kn_loss_fn loss_fn, void *user)
{
    if (!net || !trainer) return kn__error_null(KN_ERR_ARG, "train_step_new: net or trainer is NULL");
    kn_train_step *s = kn_alloc(sizeof *s);
    if (!s) return NULL;
    memset(s, 0, sizeof *s);
    s->net = net, s->trainer = trainer, s->user = user;
    s->loss_fn = loss_fn ? loss_fn : default_loss;
    return s;
}

static void drop(step_graph *e)
{
    kn_graph_free(e->g);
    kn_free(e->grad_of);
    memset(e, 0, sizeof *e);
}

void kn_train_step_free(kn_train_step *s)
{
    if (!s) return;
    for (int i = 0; i < STEP_CACHE; i++)
        drop(&s->cache[i]);
    kn_free(s);
}

kn_graph *kn_train_step_graph(const kn_train_step *s) { return s ? s->last : NULL; }

/* Adds g to p's accumulated gradient (takes the reference to g). */
static kn_status accumulate(kn_tensor *p, kn_tensor *g)
{
    if (!p->grad) {
        p->grad = g;
        return KN_OK;
    }
    kn_tensor *sum = kn_add(p->grad, g); /* a parameter listed twice (shared) */
    kn_tensor_unref(g);
    if (!sum) return kn_last_status();
    kn_tensor_unref(p->grad);
    p->grad = sum;
    return KN_OK;
}

static kn_status eager_step(kn_train_step *s, kn_tensor *x, kn_tensor *target, kn_tensor **loss,
                            kn_tensor **output)
{
    kn_tensor *out = NULL, *l = NULL;
    bool was = kn_autograd_record(true);
    kn_status st = kn_block_forward(s->net, 1, &x, 1, &out);
    if (!st && !(l = s->loss_fn(out, target, s->user))) st = kn_last_status();
    kn_autograd_record(was);
    if (!st) st = kn_backward(l, NULL);
    if (!st) st = kn_trainer_step(s->trainer);
    if (!st && loss) *loss = kn_tensor_ref(l);
    if (!st && output) *output = kn_tensor_ref(out);
    kn_tensor_unref(out), kn_tensor_unref(l);
    return st;
}

static bool same_signature(const step_graph *e, kn_tensor *const io[2], bool training)
{
    if (!e->g || e->training != training) return false;
    for (int i = 0; i < 2; i++)
        if (e->dtype[i] != io[i]->dtype || e->ndim[i] != io[i]->ndim ||
            memcmp(e->shape[i], io[i]->shape, sizeof(int64_t) * (size_t)io[i]->ndim))
            return false;
    return true;
}

/* Traces forward + loss into e->g, appends the backward, compiles. */
static kn_status build(kn_train_step *s, step_graph *e, kn_tensor *const io[2])
{
    static const char *names[2] = {"input", "target"};
    kn_graph *g = kn_graph_new();
    if (!g) return kn_last_status();
    e->g = g;
    kn_tensor *sym[2] = {NULL, NULL}, *out = NULL, *l = NULL;
    kn_status st = KN_OK;
    for (int i = 0; i < 2 && !st; i++)
        if (!(sym[i] = kn_graph_input(g, names[i], io[i]->dtype, io[i]->ndim, io[i]->shape)))
            st = kn_last_status();
    if (!st) st = kn_block_trace(s->net, g, 1, sym, 1, &out);
    if (!st && !(l = s->loss_fn(out, sym[1], s->user))) st = kn_last_status();
    if (!st && kn__graph_of(l) != g)
        st = kn__error(KN_ERR_STATE, "train_step: the loss was not computed from the network's output");
    if (!st) st = kn_graph_output(g, l);
    if (!st) st = kn_graph_output(g, out);
    kn_tensor_unref(sym[0]), kn_tensor_unref(sym[1]), kn_tensor_unref(out), kn_tensor_unref(l);
    if (!st) st = kn_graph_build_backward(g, 0, &e->n_grads);
    if (!st && !(e->grad_of = kn_alloc(sizeof(kn_tensor *) * (size_t)(e->n_grads + 1)))) st = kn_last_status();
    int k = 0;
    for (int32_t v = 0; !st && v < g->n_values; v++) /* the order build_backward uses */
        if (g->values[v].kind == KN_VALUE_PARAM && g->values[v].tensor->requires_grad)
            e->grad_of[k++] = g->values[v].tensor;
    if (!st) st = kn_graph_compile(g, KN_GRAPH_TRAINING);
    for (int i = 0; i < 2 && !st; i++) {
        e->dtype[i] = io[i]->dtype, e->ndim[i] = io[i]->ndim;
        memcpy(e->shape[i], io[i]->shape, sizeof(int64_t) * (size_t)io[i]->ndim);
    }
    e->training = kn_block_is_training(s->net);
    if (st) drop(e);
    return st;
}

static kn_status graph_step(kn_train_step *s, kn_tensor *x, kn_tensor *target, kn_tensor **loss,
                            kn_tensor **output)
{
    kn_tensor *io[2] = {x, target};
    bool training = kn_block_is_training(s->net);
    step_graph *e = NULL, *slot = &s->cache[0];
    for (int i = 0; i < STEP_CACHE && !e; i++) {
        if (same_signature(&s->cache[i], io, training)) e = &s->cache[i];
        else if (!s->cache[i].g || (slot->g && s->cache[i].last_used < slot->last_used)) slot = &s->cache[i];
    }
    if (!e) {
        drop(slot); /* least recently used */
        kn_status st = build(s, slot, io);
        if (st) return st;
        e = slot;
    }
    e->last_used = ++s->clock;
    s->last = e->g;
    int n_out = 2 + e->n_grads;
    kn_tensor **outs = kn_alloc(sizeof(kn_tensor *) * (size_t)n_out);
    if (!outs) return kn_last_status();
    bool was = kn_autograd_record(false);
    kn_status st = kn_graph_run(e->g, 2, io, n_out, outs);
    kn_autograd_record(was);
    for (int i = 0; i < e->n_grads; i++) {
        if (!st) st = accumulate(e->grad_of[i], outs[2 + i]);
        else kn_tensor_unref(outs[2 + i]);
    }
    if (!st) st = kn_trainer_step(s->trainer);
    if (!st && loss) *loss = kn_tensor_ref(outs[0]);
    if (!st && output) *output = kn_tensor_ref(outs[1]);
    kn_tensor_unref(outs[0]), kn_tensor_unref(outs[1]);
    kn_free(outs);
    return st;
}

kn_status kn_train_step_run(kn_train_step *s, kn_tensor *x, kn_tensor *target, kn_tensor **loss,
                            kn_tensor **output)
{
    if (loss) *loss = NULL;
    if (output) *output = NULL;
    if (!s || !x || !target) return kn__error(KN_ERR_ARG, "train_step_run: NULL step, input or target");
    if (!x->storage || !target->storage)
        return kn__error(KN_ERR_ARG, "train_step_run: the input and target must hold data");
    if (kn_block_is_hybridized(s->net)) return graph_step(s, x, target, loss, output);
    return eager_step(s, x, target, loss, output);
}
