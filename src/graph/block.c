/* block.c — kn_block: a forward function with named parameters. Eager calls
 * run the function; hybridized calls trace it once per input signature
 * (dtypes, shapes, training flag) into a compiled graph kept in a small
 * cache, and run that graph afterwards. */
#include "block_impl.h"

static char *dup_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = kn_alloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

kn_block *kn_block_new(const char *name, kn_forward_fn forward, void *user)
{
    if (!forward) return kn__error_null(KN_ERR_ARG, "block_new: forward is NULL");
    kn_block *b = kn_alloc(sizeof *b);
    if (!b) return NULL;
    memset(b, 0, sizeof *b);
    b->forward = forward;
    b->user = user;
    b->param_names = kn_alloc(sizeof(char *) * MAX_PARAMS);
    b->params = kn_alloc(sizeof(kn_tensor *) * MAX_PARAMS);
    b->proxies = kn_alloc(sizeof(kn_tensor *) * MAX_PARAMS);
    b->param_flags = kn_alloc(MAX_PARAMS);
    b->name = dup_string(name ? name : "block");
    if (!b->param_names || !b->params || !b->proxies || !b->param_flags || !b->name) {
        kn_block_free(b);
        return NULL;
    }
    return b;
}

static void drop_cache(kn_block *b)
{
    for (int i = 0; i < CACHE_SIZE; i++) {
        kn_graph_free(b->cache[i].graph);
        b->cache[i].graph = NULL;
    }
    b->last_graph = NULL;
}

static void free_flat(kn_block *b)
{
    for (int i = 0; i < b->n_flat; i++)
        kn_free(b->flat_names[i]);
    kn_free(b->flat_names), kn_free(b->flat_params), kn_free(b->flat_flags);
    b->flat_names = NULL, b->flat_params = NULL, b->flat_flags = NULL, b->n_flat = 0;
}

/* This block and its ancestors: cached graphs and flat lists are stale. */
void kn__block_changed(kn_block *b)
{
    for (; b; b = b->parent) {
        drop_cache(b);
        b->flat_stale = true;
    }
}

void kn_block_free(kn_block *b)
{
    if (!b) return;
    if (b->parent) { /* the parent owns it */
        kn__error(KN_ERR_STATE, "block_free: '%s' is a child of '%s'; free the parent", b->name, b->parent->name);
        return;
    }
    for (int i = 0; i < b->n_children; i++) {
        b->children[i]->parent = NULL;
        kn_block_free(b->children[i]);
        kn_free(b->child_names[i]);
    }
    free_flat(b);
    drop_cache(b);
    for (int i = 0; i < b->n_params; i++) {
        kn_free(b->param_names[i]);
        kn_tensor_unref(b->params[i]);
    }
    kn_free(b->param_names), kn_free(b->params), kn_free(b->proxies), kn_free(b->param_flags);
    kn_free(b->name);
    if (b->user_free) b->user_free(b->user);
    kn_free(b);
}

int kn__block_find_param(const kn_block *b, const char *name)
{
    for (int i = 0; i < b->n_params; i++)
        if (!strcmp(b->param_names[i], name)) return i;
    return -1;
}

static kn_status add_param(kn_block *b, const char *name, kn_tensor *value, uint8_t flags)
{
    if (!b || !name || !value) return kn__error(KN_ERR_ARG, "block_add_param: NULL argument");
    if (!value->storage)
        return kn__error(KN_ERR_ARG, "block_add_param: '%s' is symbolic; a parameter needs data", name);
    if (!name[0]) return kn__error(KN_ERR_ARG, "block_add_param: the name is empty");
    if (kn__block_find_param(b, name) >= 0)
        return kn__error(KN_ERR_ARG, "block_add_param: block '%s' already has a parameter '%s'",
                         b->name, name);
    if (b->n_params == MAX_PARAMS)
        return kn__error(KN_ERR_ARG, "block_add_param: more than %d parameters", MAX_PARAMS);
    char *copy = dup_string(name);
    if (!copy) return kn_last_status();
    kn_tensor *proxy = NULL;
    if (b->tracing) { /* a deferred parameter created during a traced first call */
        char path[600];
        snprintf(path, sizeof path, "%s%s", b->trace_prefix, name);
        if (!(proxy = kn_graph_param(b->trace_graph, path, value))) {
            kn_free(copy);
            return kn_last_status();
        }
    }
    b->param_names[b->n_params] = copy;
    b->proxies[b->n_params] = proxy;
    b->param_flags[b->n_params] = flags;
    b->params[b->n_params++] = kn_tensor_ref(value);
    kn__block_changed(b); /* traced graphs do not know the new parameter */
    return KN_OK;
}

kn_status kn_block_add_param(kn_block *b, const char *name, kn_tensor *value)
{
    return add_param(b, name, value, 0);
}

kn_status kn_block_add_state(kn_block *b, const char *name, kn_tensor *value)
{
    return add_param(b, name, value, PARAM_STATE);
}

kn_status kn_block_set_user_free(kn_block *b, void (*free_fn)(void *user))
{
    if (!b) return kn__error(KN_ERR_ARG, "block_set_user_free: block is NULL");
    b->user_free = free_fn;
    return KN_OK;
}

kn_status kn_block_add_child(kn_block *b, const char *name, kn_block *child)
{
    if (!b || !name || !child) return kn__error(KN_ERR_ARG, "block_add_child: NULL argument");
    if (!name[0] || strchr(name, '.'))
        return kn__error(KN_ERR_ARG, "block_add_child: name '%s' must be non-empty without '.'", name);
    if (child->parent)
        return kn__error(KN_ERR_STATE, "block_add_child: '%s' already belongs to '%s'", child->name,
                         child->parent->name);
    for (kn_block *a = b; a; a = a->parent)
        if (a == child) return kn__error(KN_ERR_ARG, "block_add_child: '%s' would contain itself", child->name);
    for (int i = 0; i < b->n_children; i++)
        if (!strcmp(b->child_names[i], name))
            return kn__error(KN_ERR_ARG, "block_add_child: '%s' already has a child '%s'", b->name, name);
    if (b->n_children == MAX_CHILDREN)
        return kn__error(KN_ERR_ARG, "block_add_child: more than %d children", MAX_CHILDREN);
    char *copy = dup_string(name);
    if (!copy) return kn_last_status();
    b->child_names[b->n_children] = copy;
    b->children[b->n_children++] = child;
    child->parent = b;
    kn__block_changed(b);
    return KN_OK;
}

kn_block *kn_block_child(const kn_block *b, const char *name)
{
    for (int i = 0; b && name && i < b->n_children; i++)
        if (!strcmp(b->child_names[i], name)) return b->children[i];
    return NULL;
}

/* Own parameters first, then each child's under "child." prefixes. */
kn_status kn__block_rebuild_flat(kn_block *b)
{
    if (!b->flat_stale && (b->flat_names || (b->n_params == 0 && b->n_children == 0))) return KN_OK;
    free_flat(b);
    int total = b->n_params;
    for (int c = 0; c < b->n_children; c++) {
        kn_status s = kn__block_rebuild_flat(b->children[c]);
        if (s) return s;
        total += b->children[c]->n_flat;
    }
    b->flat_names = kn_alloc(sizeof(char *) * (size_t)(total + 1));
    b->flat_params = kn_alloc(sizeof(kn_tensor *) * (size_t)(total + 1));
    b->flat_flags = kn_alloc((size_t)total + 1);
    if (!b->flat_names || !b->flat_params || !b->flat_flags) {
        kn_free(b->flat_names), kn_free(b->flat_params), kn_free(b->flat_flags);
        b->flat_names = NULL, b->flat_params = NULL, b->flat_flags = NULL;
        return kn_last_status();
    }
    for (int i = 0; i < b->n_params; i++) {
        b->flat_flags[b->n_flat] = b->param_flags[i];
        b->flat_params[b->n_flat] = b->params[i];
        if (!(b->flat_names[b->n_flat++] = dup_string(b->param_names[i]))) return kn_last_status();
    }
    for (int c = 0; c < b->n_children; c++) {
        const kn_block *ch = b->children[c];
        for (int i = 0; i < ch->n_flat; i++) {
            size_t n = strlen(b->child_names[c]) + strlen(ch->flat_names[i]) + 2;
            char *full = kn_alloc(n);
            if (!full) return kn_last_status();
            snprintf(full, n, "%s.%s", b->child_names[c], ch->flat_names[i]);
            b->flat_flags[b->n_flat] = ch->flat_flags[i];
            b->flat_params[b->n_flat] = ch->flat_params[i];
            b->flat_names[b->n_flat++] = full;
        }
    }
    b->flat_stale = false;
    return KN_OK;
}

kn_tensor *kn_block_param(kn_block *b, const char *name)
{
    if (!b || !name) return kn__error_null(KN_ERR_ARG, "block_param: NULL argument");
    int i = kn__block_find_param(b, name);
    if (i < 0)
        return kn__error_null(KN_ERR_ARG, "block_param: block '%s' has no parameter '%s'", b->name, name);
    return b->tracing ? b->proxies[i] : b->params[i];
}

/* The listing functions see the whole tree; they rebuild the flat list
 * lazily (the cast: a cache inside a logically const block). */
int kn_block_num_params(const kn_block *b)
{
    return b && !kn__block_rebuild_flat((kn_block *)b) ? b->n_flat : 0;
}
const char *kn_block_param_name(const kn_block *b, int i)
{
    return b && !kn__block_rebuild_flat((kn_block *)b) && i >= 0 && i < b->n_flat ? b->flat_names[i] : NULL;
}
kn_tensor *kn_block_param_at(const kn_block *b, int i)
{
    return b && !kn__block_rebuild_flat((kn_block *)b) && i >= 0 && i < b->n_flat ? b->flat_params[i] : NULL;
}
void kn_block_set_training(kn_block *b, bool training)
{
    if (!b) return;
    b->training = training;
    for (int i = 0; i < b->n_children; i++)
        kn_block_set_training(b->children[i], training);
}
bool kn_block_is_training(const kn_block *b) { return b && b->training; }
kn_graph *kn_block_graph(const kn_block *b) { return b ? b->last_graph : NULL; }
int64_t kn_block_num_traces(const kn_block *b) { return b ? b->traces : 0; }

kn_status kn_block_hybridize(kn_block *b, unsigned flags)
{
    if (!b) return kn__error(KN_ERR_ARG, "block_hybridize: block is NULL");
    b->hybridized = (flags & KN_HYBRIDIZE_ON) != 0;
    if (!b->hybridized) drop_cache(b);
    return KN_OK;
}

static bool needs_grad(const kn_block *b, int n_in, kn_tensor *const *in)
{
    if (!kn_autograd_is_recording()) return false;
    for (int i = 0; i < n_in; i++)
        if (in[i] && in[i]->requires_grad) return true;
    for (int i = 0; i < kn_block_num_params(b); i++)
        if (kn_block_param_at(b, i)->requires_grad) return true;
    return false;
}

static kn_status make_signature(const kn_block *b, int n_in, kn_tensor *const *in, signature *sig)
{
    if (n_in > MAX_IO)
        return kn__error(KN_ERR_ARG, "block_forward: %d inputs, at most %d when hybridized", n_in, MAX_IO);
    memset(sig, 0, sizeof *sig);
    sig->n_in = n_in;
    sig->training = b->training;
    /* a graph for autograd keeps training semantics in its passes (no
     * fusion into ops without gradients), whatever the training flag */
    sig->grad = needs_grad(b, n_in, in);
    for (int i = 0; i < n_in; i++) {
        if (!in[i] || !in[i]->storage)
            return kn__error(KN_ERR_ARG, "block_forward: input %d is NULL or symbolic", i);
        sig->dtype[i] = in[i]->dtype;
        sig->ndim[i] = in[i]->ndim;
        memcpy(sig->shape[i], in[i]->shape, sizeof(int64_t) * (size_t)in[i]->ndim);
    }
    return KN_OK;
}

/* Makes every parameter of b and its children a graph parameter of g named
 * by its path, and puts the tree in tracing mode. */
static kn_status begin_trace(kn_block *b, kn_graph *g, const char *prefix)
{
    b->tracing = true;
    b->trace_graph = g;
    snprintf(b->trace_prefix, sizeof b->trace_prefix, "%s", prefix);
    for (int i = 0; i < b->n_params; i++) {
        char name[512];
        snprintf(name, sizeof name, "%s%s", prefix, b->param_names[i]);
        if (!(b->proxies[i] = kn_graph_param(g, name, b->params[i]))) return kn_last_status();
    }
    for (int c = 0; c < b->n_children; c++) {
        char sub[512];
        snprintf(sub, sizeof sub, "%s%s.", prefix, b->child_names[c]);
        kn_status s = begin_trace(b->children[c], g, sub);
        if (s) return s;
    }
    return KN_OK;
}

static void end_trace(kn_block *b)
{
    b->tracing = false;
    b->trace_graph = NULL;
    for (int i = 0; i < b->n_params; i++) {
        kn_tensor_unref(b->proxies[i]);
        b->proxies[i] = NULL;
    }
    for (int c = 0; c < b->n_children; c++)
        end_trace(b->children[c]);
}

static kn_status trace_into(kn_block *b, kn_graph *g, int n_in, kn_tensor *const *in, int n_out)
{
    kn_tensor *sym_in[MAX_IO] = {0}, *sym_out[MAX_IO] = {0};
    kn_status s = begin_trace(b, g, "");
    for (int i = 0; i < n_in && !s; i++) {
        char name[32];
        snprintf(name, sizeof name, "input%d", i);
        if (!(sym_in[i] = kn_graph_input(g, name, in[i]->dtype, in[i]->ndim, in[i]->shape)))
            s = kn_last_status();
    }
    if (!s) s = b->forward(b, n_in, sym_in, n_out, sym_out, b->user);
    end_trace(b);
    for (int i = 0; i < n_out && !s; i++) {
        if (!sym_out[i] || !sym_out[i]->trace_graph)
            s = kn__error(KN_ERR_STATE, "block_forward: output %d of block '%s' was not computed "
                                        "from its inputs or parameters, so it cannot be traced",
                          i, b->name);
        else
            s = kn_graph_output(g, sym_out[i]);
    }
    for (int i = 0; i < MAX_IO; i++)
        kn_tensor_unref(sym_in[i]), kn_tensor_unref(sym_out[i]);
    return s;
}

kn_status kn_block_trace(kn_block *b, kn_graph *g, int n_in, kn_tensor *const *in, int n_out,
                         kn_tensor **out)
{
    if (!b || !g || (n_in > 0 && !in) || n_out < 1 || !out)
        return kn__error(KN_ERR_ARG, "block_trace: NULL block, graph, inputs or outputs");
    if (n_in > MAX_IO || n_out > MAX_IO)
        return kn__error(KN_ERR_ARG, "block_trace: at most %d inputs and outputs", MAX_IO);
    for (int i = 0; i < n_in; i++)
        if (!in[i] || kn__graph_of(in[i]) != g)
            return kn__error(KN_ERR_ARG, "block_trace: input %d is not a symbolic tensor of this graph", i);
    for (int i = 0; i < n_out; i++)
        out[i] = NULL;
    kn_status s = begin_trace(b, g, "");
    if (!s) s = b->forward(b, n_in, in, n_out, out, b->user);
    end_trace(b);
    for (int i = 0; i < n_out && !s; i++)
        if (!out[i] || kn__graph_of(out[i]) != g)
            s = kn__error(KN_ERR_STATE, "block_trace: output %d of block '%s' was not computed from its "
                                        "inputs or parameters, so it cannot be traced", i, b->name);
    if (s)
        for (int i = 0; i < n_out; i++) {
            kn_tensor_unref(out[i]);
            out[i] = NULL;
        }
    return s;
}

/* Same signature but for dim 0 (the batch) of the inputs? Sets *old_batch. */
static bool differs_in_batch_only(const signature *a, const signature *b, int64_t *old_batch)
{
    if (a->n_in != b->n_in || a->training != b->training || a->n_in == 0) return false;
    for (int i = 0; i < a->n_in; i++) {
        if (a->dtype[i] != b->dtype[i] || a->ndim[i] != b->ndim[i] || a->ndim[i] < 1) return false;
        if (a->shape[i][0] != a->shape[0][0] || b->shape[i][0] != b->shape[0][0]) return false;
        for (int d = 1; d < a->ndim[i]; d++)
            if (a->shape[i][d] != b->shape[i][d]) return false;
    }
    *old_batch = a->shape[0][0];
    return true;
}

/* True when some node's attrs hold the traced batch size as an int64: then
 * the trace may have baked the batch in (a reshape to (B, -1), a slice to
 * B) and only a new trace is safe. A conservative test: it also fires on
 * unrelated attrs that happen to equal B. */
static bool attrs_mention(const kn_graph *g, int64_t batch)
{
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const kn_gnode *n = &g->nodes[i];
        if (!n->dead && n->def->refresh) return true; /* per-run state sized by the trace */
        for (size_t off = 0; !n->dead && off + 8 <= n->def->attrs_size; off += 8) {
            int64_t v;
            memcpy(&v, (const char *)n->attrs + off, 8);
            if (v == batch) return true;
        }
    }
    return false;
}

/* A graph for a new batch size made from a cached one without calling the
 * user's code: the inputs' dim 0 changed and shapes inferred again. NULL
 * (and no error) when that is not known to be safe. */
static kn_graph *rebatch(const kn_block *b, const signature *sig)
{
    for (int i = 0; i < CACHE_SIZE; i++) {
        const cache_entry *e = &b->cache[i];
        int64_t old_batch;
        if (!e->graph || !differs_in_batch_only(&e->sig, sig, &old_batch) || old_batch <= 1 ||
            attrs_mention(e->graph, old_batch))
            continue;
        kn_graph *g = kn__graph_clone(e->graph);
        if (!g) return NULL;
        for (int k = 0; k < g->n_inputs; k++)
            g->values[g->inputs[k]].shape[0] = sig->shape[k][0];
        if (kn_graph_compile(g, sig->training || sig->grad ? KN_GRAPH_TRAINING : KN_GRAPH_INFERENCE)) {
            kn_graph_free(g);
            kn_clear_error();
            return NULL; /* the shapes do not allow it: trace again */
        }
        return g;
    }
    return NULL;
}

/* The sum of the tree's parameter versions: it changes whenever one is
 * written (an optimizer step), which makes inference graphs whose passes
 * baked parameter values in (batch-norm folding) stale. */
static uint64_t param_versions(const kn_block *b)
{
    uint64_t sum = 0;
    for (int i = 0; i < kn_block_num_params(b); i++)
        sum += kn_block_param_at(b, i)->storage->version;
    return sum;
}

static bool inference_only(const signature *sig)
{
    return !sig->training && !sig->grad;
}

static kn_status cached_graph(kn_block *b, const signature *sig, int n_in, kn_tensor *const *in,
                              int n_out, kn_graph **out)
{
    cache_entry *slot = &b->cache[0];
    uint64_t versions = param_versions(b);
    for (int i = 0; i < CACHE_SIZE; i++) {
        cache_entry *e = &b->cache[i];
        if (e->graph && inference_only(&e->sig) && e->param_versions != versions) {
            if (b->last_graph == e->graph) b->last_graph = NULL;
            kn_graph_free(e->graph); /* stale: compiled from older parameter values */
            e->graph = NULL;
        }
        if (e->graph && !memcmp(&e->sig, sig, sizeof *sig)) {
            e->last_used = ++b->clock;
            *out = e->graph;
            return KN_OK;
        }
        if (!e->graph || (slot->graph && e->last_used < slot->last_used)) slot = e;
    }
    kn_graph *g = rebatch(b, sig);
    if (!g) {
        if (!(g = kn_graph_new())) return kn_last_status();
        b->traces++;
        kn_status s = trace_into(b, g, n_in, in, n_out);
        if (!s) s = kn_graph_compile(g, sig->training || sig->grad ? KN_GRAPH_TRAINING : KN_GRAPH_INFERENCE);
        if (s) {
            kn_graph_free(g);
            return s;
        }
    }
    kn_graph_free(slot->graph); /* least recently used */
    slot->graph = g;
    slot->sig = *sig;
    slot->param_versions = versions;
    slot->last_used = ++b->clock;
    *out = g;
    return KN_OK;
}

kn_status kn_block_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out, kn_tensor **out)
{
    if (!b || (n_in > 0 && !in) || n_out < 1 || !out)
        return kn__error(KN_ERR_ARG, "block_forward: NULL block, inputs or outputs");
    for (int i = 0; i < n_out; i++)
        out[i] = NULL;
    /* inside a tracing parent: trace this block's code into the same graph */
    if (b->tracing) return b->forward(b, n_in, in, n_out, out, b->user);
    if (!b->hybridized) return b->forward(b, n_in, in, n_out, out, b->user);
    signature sig;
    kn_graph *g = NULL;
    kn_status s = make_signature(b, n_in, in, &sig);
    if (!s) s = cached_graph(b, &sig, n_in, in, n_out, &g);
    if (s) return s;
    b->last_graph = g;
    return kn_graph_run(g, n_in, in, n_out, out);
}
