/* onnx_build.c — a loaded model as kiln graphs: one graph per signature of
 * input shapes, built by running every node's converter on kiln tensors
 * (graph inputs symbolic, initializers concrete), compiled with the graph
 * passes and kept in a small LRU cache; kn_onnx_run runs it. */
#if KILN_HAVE_ONNX
#include "onnx_model.h"

#include "../../tensor/tensor.h"

#define KEY_STRIDE (KN_MAX_DIMS + 1)
#define OUT_SPARE KN_ONNX_OUT_SPARE
/* Inputs of at most this many elements are baked in when a build fails
 * without saying which input it needed. */
#define KN_ONNX_BAKE_SMALL 8

/* ---------------------------------------------------------------- inputs */
/* Checks the given inputs against the declared dtypes and static dims. */
static kn_status check_inputs(const kn_onnx_model *m, const char *who, int n_in,
                              kn_tensor *const *in)
{
    if (n_in != m->n_inputs || (n_in && !in))
        return kn__error(KN_ERR_ARG, "%s: got %d inputs, the model has %d", who, n_in, m->n_inputs);
    for (int i = 0; i < n_in; i++) {
        const kn_onnx_io *io = &m->inputs[i];
        const kn_tensor *t = in[i];
        if (!t || !t->storage)
            return kn__error(KN_ERR_ARG, "%s: input %d ('%s') is NULL or symbolic", who, i,
                             io->name);
        if (t->dtype != io->dtype)
            return kn__error(KN_ERR_DTYPE, "%s: input %d ('%s') is %s, the model declares %s", who,
                             i, io->name, kn_dtype_name(t->dtype), kn_dtype_name(io->dtype));
        if (io->ndim >= 0 && t->ndim != io->ndim)
            return kn__error(KN_ERR_SHAPE, "%s: input %d ('%s') has %d dims, the model declares %d",
                             who, i, io->name, t->ndim, io->ndim);
        for (int d = 0; io->ndim >= 0 && d < io->ndim; d++)
            if (io->shape[d] >= 0 && t->shape[d] != io->shape[d])
                return kn__error(KN_ERR_SHAPE,
                                 "%s: input %d ('%s') has size %lld in dim %d, the model "
                                 "declares %lld",
                                 who, i, io->name, (long long)t->shape[d], d,
                                 (long long)io->shape[d]);
    }
    return KN_OK;
}

/* ---------------------------------------------------------------- building */
typedef kn_onnx_builder builder;

/* The graph being built on this thread. */
_Thread_local kn_onnx_builder *kn__onnx_current;
#define current kn__onnx_current

/* The model input t stands for in the graph being built, or -1. */
static int input_of(const builder *b, const kn_tensor *t)
{
    if (!b || !t || t->storage || t->trace_graph != b->g) return -1;
    for (int i = 0; i < b->m->n_inputs; i++)
        if (b->g->inputs[i] == t->trace_value) return i;
    return -1;
}

void kn__onnx_want_const(const kn_tensor *t)
{
    int i = input_of(current, t);
    if (i >= 0 && !current->m->bake[i]) {
        current->m->bake[i] = true;
        current->retry = true;
    }
}

void kn__onnx_asked_const(const kn_tensor *t)
{
    int i = input_of(current, t);
    if (i >= 0 && !current->m->bake[i]) current->asked[i] = true;
}

static void release(builder *b, int32_t s)
{
    if (s >= 0 && --b->left[s] <= 0) {
        kn_tensor_unref(b->env[s]);
        kn__onnx_seq_free(b->seqs[s]);
        b->env[s] = NULL, b->seqs[s] = NULL;
    }
}

/* ---------------------------------------------------------------- sequences */
kn_onnx_seq *kn__onnx_seq_new(void)
{
    kn_onnx_seq *s = kn_alloc(sizeof *s);
    if (s) memset(s, 0, sizeof *s);
    return s;
}

void kn__onnx_seq_free(kn_onnx_seq *s)
{
    if (!s) return;
    for (int i = 0; i < s->n; i++)
        kn_tensor_unref(s->items[i]);
    kn_free(s->items), kn_free(s);
}

kn_status kn__onnx_seq_insert(kn_onnx_seq *s, int pos, kn_tensor *t)
{
    if (pos < 0 || pos > s->n)
        return kn__error(KN_ERR_ARG, "onnx: sequence position %d out of range", pos);
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 8;
        kn_tensor **items = kn_alloc(sizeof(kn_tensor *) * (size_t)cap);
        if (!items) return kn_last_status();
        if (s->n) memcpy(items, s->items, sizeof(kn_tensor *) * (size_t)s->n);
        kn_free(s->items);
        s->items = items, s->cap = cap;
    }
    memmove(s->items + pos + 1, s->items + pos, sizeof(kn_tensor *) * (size_t)(s->n - pos));
    s->items[pos] = kn_tensor_ref(t);
    s->n++;
    return KN_OK;
}

kn_onnx_seq *kn__onnx_in_seq(const kn_onnx_node *n, int i)
{
    builder *b = current;
    kn_onnx_seq *s = b && b->cur_in_seqs && i >= 0 && i < n->n_in ? b->cur_in_seqs[i] : NULL;
    if (!s) kn__onnx_fail(n, KN_ERR_ARG, "input %d is not a tensor sequence", i);
    return s;
}

kn_status kn__onnx_out_seq(kn_onnx_node *n, int k, kn_onnx_seq *s)
{
    builder *b = current;
    if (!b || !b->cur_out_seqs || k < 0 || k >= n->n_out + OUT_SPARE) {
        kn__onnx_seq_free(s);
        return KN_OK;
    }
    kn__onnx_seq_free(b->cur_out_seqs[k]);
    b->cur_out_seqs[k] = s;
    return KN_OK;
}

/* Wraps a converter's error that does not yet name the node. */
kn_status kn__onnx_node_error(const kn_onnx_node *n, kn_status s)
{
    if (!strncmp(kn_last_error(), "onnx: node", 10)) return s;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", kn_last_error());
    return kn__onnx_fail(n, s ? s : KN_ERR_INTERNAL, "%s", msg[0] ? msg : "conversion failed");
}

kn_status kn__onnx_convert(kn_onnx_builder *b, const Onnx__NodeProto *nd, const kn_onnx_op *op,
                           int opset, kn_tensor **in_t, kn_onnx_seq **in_s, kn_tensor **out_t,
                           kn_onnx_seq **out_s)
{
    int n_in = (int)nd->n_input, n_out = (int)nd->n_output;
    kn_onnx_node n = {nd,
                      kn__onnx_str(nd->op_type),
                      kn__onnx_str(nd->name),
                      opset,
                      n_in,
                      n_out,
                      in_t,
                      out_t,
                      b->m->base_dir};
    if (!op) return kn__onnx_fail(&n, KN_ERR_UNSUPPORTED, "no converter");
    kn_clear_error();
    kn_tensor *made[2] = {NULL, NULL};
    kn_status s =
        kn__onnx_default_domain(nd->domain) ? kn__onnx_legacy_inputs(&n, b->m->opset, made) : KN_OK;
    kn_onnx_seq **saved_in = b->cur_in_seqs, **saved_out = b->cur_out_seqs;
    b->cur_in_seqs = in_s, b->cur_out_seqs = out_s;
    if (!s) s = op->convert(&n);
    b->cur_in_seqs = saved_in, b->cur_out_seqs = saved_out;
    kn_tensor_unref(made[0]), kn_tensor_unref(made[1]);
    for (int k = n_out; k < n_out + OUT_SPARE; k++) { /* outputs the node does not name */
        kn_tensor_unref(out_t[k]), out_t[k] = NULL;
        kn__onnx_seq_free(out_s[k]), out_s[k] = NULL;
    }
    for (int k = 0; !s && k < n_out; k++)
        if (out_t[k] && !out_t[k]->storage && kn__graph_of(out_t[k]) != b->g)
            s = kn__onnx_fail(&n, KN_ERR_INTERNAL, "output %d is symbolic but not of the graph", k);
    if (s) {
        for (int k = 0; k < n_out; k++) {
            kn_tensor_unref(out_t[k]), out_t[k] = NULL;
            kn__onnx_seq_free(out_s[k]), out_s[k] = NULL;
        }
        return kn__onnx_node_error(&n, s);
    }
    return KN_OK;
}

static kn_status convert_node(builder *b, size_t i)
{
    kn_onnx_model *m = b->m;
    const Onnx__NodeProto *nd = m->proto->graph->node[i];
    const int32_t *io = m->node_io + m->node_start[i];
    int n_in = (int)nd->n_input, n_out = (int)nd->n_output;
    kn_tensor **t = b->args;
    kn_onnx_seq **sq = b->sargs;
    memset(t, 0, sizeof(kn_tensor *) * (size_t)(n_in + n_out + OUT_SPARE));
    memset(sq, 0, sizeof(kn_onnx_seq *) * (size_t)(n_in + n_out + OUT_SPARE));
    for (int k = 0; k < n_in; k++)
        if (io[k] >= 0) t[k] = b->env[io[k]], sq[k] = b->seqs[io[k]];
    kn_status s =
        kn__onnx_convert(b, nd, m->node_op[i], m->node_opset[i], t, sq, t + n_in, sq + n_in);
    for (int k = 0; !s && k < n_out; k++) {
        int32_t slot = io[n_in + k];
        if (slot >= 0 && m->slots[slot].uses > 0 && !t[n_in + k] && !sq[n_in + k]) {
            kn_onnx_node n = {nd,
                              kn__onnx_str(nd->op_type),
                              kn__onnx_str(nd->name),
                              m->node_opset[i],
                              n_in,
                              n_out,
                              t,
                              t + n_in,
                              m->base_dir};
            s = kn__onnx_fail(&n, KN_ERR_INTERNAL, "output %d ('%s') was not produced", k,
                              m->slots[slot].name);
        }
    }
    for (int k = 0; k < n_out; k++) {
        int32_t slot = io[n_in + k];
        if (!s && slot >= 0 && m->slots[slot].uses > 0) {
            b->env[slot] = t[n_in + k], b->seqs[slot] = sq[n_in + k];
        } else {
            kn_tensor_unref(t[n_in + k]);
            kn__onnx_seq_free(sq[n_in + k]);
        }
    }
    if (s) return s;
    for (int k = 0; k < n_in; k++)
        release(b, io[k]);
    for (int32_t k = m->implicit_start[i]; k < m->implicit_start[i + 1]; k++)
        release(b, m->implicit[k]);
    return KN_OK;
}

static kn_status add_output(builder *b, int j)
{
    const kn_onnx_io *io = &b->m->outputs[j];
    kn_tensor *t = b->env[io->slot];
    if (!t && b->seqs[io->slot])
        return kn__error(KN_ERR_UNSUPPORTED, "onnx: graph output '%s' is a tensor sequence",
                         io->name);
    if (!t) return kn__error(KN_ERR_INTERNAL, "onnx: graph output '%s' has no value", io->name);
    if (io->has_dtype && t->dtype != io->dtype)
        return kn__error(KN_ERR_DTYPE, "onnx: graph output '%s' came out %s, the model declares %s",
                         io->name, kn_dtype_name(t->dtype), kn_dtype_name(io->dtype));
    if (t->trace_graph) return kn_graph_output(b->g, t);
    int32_t v = kn__graph_value_of(b->g, t); /* a constant output */
    kn_tensor *p = v >= 0 ? kn__graph_proxy(b->g, v) : NULL;
    kn_status s = p ? kn_graph_output(b->g, p) : kn_last_status();
    kn_tensor_unref(p);
    return s;
}

static kn_status build_nodes(builder *b, kn_tensor *const *in)
{
    kn_onnx_model *m = b->m;
    for (int i = 0; i < m->n_inputs; i++) {
        const kn_onnx_io *io = &m->inputs[i];
        b->env[io->slot] = kn_graph_input(b->g, io->name, in[i]->dtype, in[i]->ndim, in[i]->shape);
        if (!b->env[io->slot]) return kn_last_status();
        if (m->bake[i]) { /* the graph is built for this input's values */
            kn_tensor_unref(b->env[io->slot]);
            if (!(b->env[io->slot] = kn_tensor_clone(in[i]))) return kn_last_status();
        }
    }
    for (int32_t s = 0; s < m->n_slots; s++)
        if (m->slots[s].init >= 0) b->env[s] = kn_tensor_ref(m->init[m->slots[s].init]);
    for (size_t i = 0; i < m->proto->graph->n_node; i++)
        if (convert_node(b, i)) {
            b->node_failed = true;
            return kn_last_status();
        }
    for (int j = 0; j < m->n_outputs; j++)
        if (add_output(b, j)) return kn_last_status();
    return KN_OK;
}

static kn_graph *build_once(kn_onnx_model *m, kn_tensor *const *in, bool *retry)
{
    const Onnx__GraphProto *gp = m->proto->graph;
    size_t max_args = OUT_SPARE;
    for (size_t i = 0; i < gp->n_node; i++)
        if (gp->node[i]->n_input + gp->node[i]->n_output > max_args)
            max_args = gp->node[i]->n_input + gp->node[i]->n_output;
    max_args += OUT_SPARE;
    size_t ns = (size_t)m->n_slots + 1;
    builder b;
    memset(&b, 0, sizeof b);
    b.m = m;
    b.g = kn_graph_new();
    b.env = kn_alloc(sizeof(kn_tensor *) * ns);
    b.left = kn_alloc(sizeof(int32_t) * ns);
    b.args = kn_alloc(sizeof(kn_tensor *) * max_args);
    b.sargs = kn_alloc(sizeof(kn_onnx_seq *) * max_args);
    b.asked = kn_alloc(sizeof(bool) * (size_t)(m->n_inputs + 1));
    b.seqs = kn_alloc(sizeof(kn_onnx_seq *) * ns);
    kn_status s =
        b.g && b.env && b.left && b.args && b.sargs && b.asked && b.seqs ? KN_OK : kn_last_status();
    if (b.seqs) memset(b.seqs, 0, sizeof(kn_onnx_seq *) * ns);
    if (b.asked) memset(b.asked, 0, sizeof(bool) * (size_t)(m->n_inputs + 1));
    if (b.env) memset(b.env, 0, sizeof(kn_tensor *) * ns);
    if (!s) {
        for (int32_t k = 0; k < m->n_slots; k++)
            b.left[k] = m->slots[k].uses; /* graph outputs count: held to the end */
        builder *outer = current;
        current = &b;
        kn_no_grad_begin();
        s = build_nodes(&b, in);
        kn_no_grad_end();
        current = outer;
    }
    for (int32_t k = 0; b.env && k < m->n_slots; k++)
        kn_tensor_unref(b.env[k]);
    for (int32_t k = 0; b.seqs && k < m->n_slots; k++)
        kn__onnx_seq_free(b.seqs[k]);
    kn_free(b.seqs);
    if (!s) s = kn_graph_compile(b.g, KN_GRAPH_INFERENCE);
    bool retry_ok = s && !b.retry && s != KN_ERR_NOMEM && b.node_failed; /* a converter failed */
    if (retry_ok) /* bake the inputs asked about */
        for (int i = 0; b.asked && i < m->n_inputs; i++)
            if (b.asked[i] && !m->bake[i]) m->bake[i] = b.retry = true;
    if (retry_ok && !b.retry) /* else the small inputs (sizes, counts) */
        for (int i = 0; i < m->n_inputs; i++)
            if (!m->bake[i] && kn_tensor_numel(in[i]) <= KN_ONNX_BAKE_SMALL)
                m->bake[i] = b.retry = true;
    *retry = s && b.retry;
    kn_free(b.env), kn_free(b.left), kn_free(b.args), kn_free(b.sargs), kn_free(b.asked);
    if (s) {
        kn_graph_free(b.g);
        return NULL;
    }
    return b.g;
}

/* Builds the graph; when a converter needed the values of a model input
 * (kn__onnx_const_ints...), or the build failed after a converter asked
 * whether an input was constant, those inputs are baked in (the graph is
 * built for their values) and the graph built again. */
static kn_graph *build(kn_onnx_model *m, kn_tensor *const *in)
{
    bool retry = true;
    kn_graph *g = NULL;
    for (int attempt = 0; !g && retry && attempt <= m->n_inputs; attempt++)
        g = build_once(m, in, &retry);
    return g;
}

/* ---------------------------------------------------------------- cache */
/* The cache key of inputs: shapes, then the data of baked inputs. */
/* The bytes a baked input adds to the key: its elements, or for strings
 * each string with its terminating NUL (so the key tells them apart). */
static size_t baked_bytes(const kn_tensor *t)
{
    if (t->dtype != KN_STRING) return (size_t)kn_tensor_numel(t) * kn_dtype_size(t->dtype);
    size_t n = 0;
    for (int64_t i = 0; i < kn_tensor_numel(t); i++)
        n += strlen(kn_tensor_string(t, i)) + 1;
    return n;
}

static kn_status baked_copy(const kn_tensor *t, uint8_t *dst, size_t bytes)
{
    if (t->dtype != KN_STRING) return kn_tensor_copy_to(t, t->dtype, dst, bytes);
    for (int64_t i = 0; i < kn_tensor_numel(t); i++) {
        const char *str = kn_tensor_string(t, i);
        size_t len = strlen(str) + 1;
        memcpy(dst, str, len);
        dst += len;
    }
    return KN_OK;
}

static uint8_t *make_key(const kn_onnx_model *m, kn_tensor *const *in, size_t *len)
{
    size_t n = sizeof(int64_t) * KEY_STRIDE * (size_t)m->n_inputs;
    for (int i = 0; i < m->n_inputs; i++)
        if (m->bake[i]) n += baked_bytes(in[i]);
    uint8_t *key = kn_alloc(n + 1);
    if (!key) return NULL;
    memset(key, 0, n + 1);
    size_t pos = 0;
    for (int i = 0; i < m->n_inputs; i++, pos += sizeof(int64_t) * KEY_STRIDE) {
        int64_t nd = in[i]->ndim;
        memcpy(key + pos, &nd, sizeof nd);
        memcpy(key + pos + sizeof nd, in[i]->shape, sizeof(int64_t) * (size_t)nd);
    }
    for (int i = 0; i < m->n_inputs; i++) {
        size_t bytes = m->bake[i] ? baked_bytes(in[i]) : 0;
        if (!bytes) continue;
        if (baked_copy(in[i], key + pos, bytes)) {
            kn_free(key);
            return NULL;
        }
        pos += bytes;
    }
    *len = n;
    return key;
}

void kn__onnx_cache_free(kn_onnx_model *m)
{
    for (int i = 0; i < m->n_cache; i++) {
        kn_graph_free(m->cache[i].g);
        kn_free(m->cache[i].key);
    }
    kn_free(m->cache);
    m->cache = NULL, m->n_cache = m->cap_cache = 0;
}

/* The cache entry to fill: a free one, or the least recently used
 * unpinned one once KN_ONNX_CACHE unpinned graphs exist. */
static kn_onnx_cached *cache_slot(kn_onnx_model *m)
{
    int unpinned = 0, lru = -1;
    for (int i = 0; i < m->n_cache; i++)
        if (!m->cache[i].pinned) {
            unpinned++;
            if (lru < 0 || m->cache[i].stamp < m->cache[lru].stamp) lru = i;
        }
    if (unpinned >= KN_ONNX_CACHE) {
        kn_onnx_cached *c = &m->cache[lru];
        kn_graph_free(c->g), kn_free(c->key);
        c->g = NULL, c->key = NULL;
        return c;
    }
    if (m->n_cache == m->cap_cache) {
        int cap = m->cap_cache ? m->cap_cache * 2 : 4;
        kn_onnx_cached *nc = kn_alloc(sizeof *nc * (size_t)cap);
        if (!nc) return NULL;
        if (m->n_cache) memcpy(nc, m->cache, sizeof *nc * (size_t)m->n_cache);
        kn_free(m->cache);
        m->cache = nc, m->cap_cache = cap;
    }
    kn_onnx_cached *c = &m->cache[m->n_cache++];
    memset(c, 0, sizeof *c);
    return c;
}

static kn_graph *graph_for(kn_onnx_model *m, const char *who, int n_in, kn_tensor *const *in,
                           bool pin)
{
    if (!m) return kn__error_null(KN_ERR_ARG, "%s: model is NULL", who);
    if (check_inputs(m, who, n_in, in)) return NULL;
    size_t key_len = 0;
    uint8_t *key = make_key(m, in, &key_len);
    if (!key) return NULL;
    kn_onnx_cached *c = NULL;
    for (int i = 0; i < m->n_cache && !c; i++)
        if (m->cache[i].g && m->cache[i].key_len == key_len &&
            !memcmp(m->cache[i].key, key, key_len))
            c = &m->cache[i];
    if (!c) {
        int baked = 0;
        for (int i = 0; i < m->n_inputs; i++)
            baked += m->bake[i];
        kn_graph *g = build(m, in);
        for (int i = 0; g && i < m->n_inputs; i++)
            baked -= m->bake[i];
        if (g && baked) { /* inputs were baked while building: the key grew */
            kn_free(key);
            if (!(key = make_key(m, in, &key_len))) kn_graph_free(g), g = NULL;
        }
        if (g && !(c = cache_slot(m))) kn_graph_free(g);
        if (c) {
            c->g = g;
            c->key = key, c->key_len = key_len;
            key = NULL;
        }
    }
    kn_free(key);
    if (!c) return NULL;
    c->stamp = ++m->clock;
    c->pinned |= pin;
    return c->g;
}

/* ---------------------------------------------------------------- run */
/* True when t shares storage with data the graph holds (an initializer or
 * a folded constant): such an output is copied so the caller cannot change
 * the model through it. */
static bool aliases_model(const kn_graph *g, const kn_tensor *t)
{
    for (int32_t v = 0; v < g->n_values; v++)
        if (g->values[v].tensor && g->values[v].tensor->storage == t->storage) return true;
    return false;
}

kn_status kn_onnx_run(kn_onnx_model *m, int n_in, kn_tensor *const *in, int n_out, kn_tensor **out)
{
    for (int i = 0; out && i < n_out; i++)
        out[i] = NULL;
    if (!m) return kn__error(KN_ERR_ARG, "onnx_run: model is NULL");
    if (n_out != m->n_outputs || (n_out && !out))
        return kn__error(KN_ERR_ARG, "onnx_run: asked for %d outputs, the model has %d", n_out,
                         m->n_outputs);
    kn_graph *g = graph_for(m, "onnx_run", n_in, in, false);
    if (!g) return kn_last_status();
    kn_status s = kn_graph_run(g, n_in, in, n_out, out);
    for (int i = 0; !s && i < n_out; i++)
        if (out[i] && out[i]->storage && aliases_model(g, out[i])) {
            kn_tensor *c = kn_tensor_clone(out[i]);
            kn_tensor_unref(out[i]);
            if (!(out[i] = c)) s = kn_last_status();
        }
    if (s)
        for (int i = 0; i < n_out; i++) {
            kn_tensor_unref(out[i]);
            out[i] = NULL;
        }
    return s;
}

kn_graph *kn_onnx_graph(kn_onnx_model *m, int n_in, kn_tensor *const *in)
{
    return graph_for(m, "onnx_graph", n_in, in, true);
}
#endif
