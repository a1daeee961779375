/* graph.c — building, inspecting and rewriting the graph IR. Live graphs are
 * kept in a small registry so that a symbolic tensor outliving its graph is
 * an error rather than a dangling pointer. */
#include "graph.h"

#include <pthread.h>

/* ---- live graphs */
#define MAX_LIVE 1024
static kn_graph *live[MAX_LIVE];
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;

static bool live_add(kn_graph *g)
{
    bool ok = false;
    pthread_mutex_lock(&live_lock);
    for (int i = 0; i < MAX_LIVE && !ok; i++)
        if (!live[i]) live[i] = g, ok = true;
    pthread_mutex_unlock(&live_lock);
    return ok;
}

static void live_remove(kn_graph *g)
{
    pthread_mutex_lock(&live_lock);
    for (int i = 0; i < MAX_LIVE; i++)
        if (live[i] == g) live[i] = NULL;
    pthread_mutex_unlock(&live_lock);
}

kn_graph *kn__graph_of(const kn_tensor *t)
{
    kn_graph *found = NULL;
    if (!t || !t->trace_graph) return NULL;
    pthread_mutex_lock(&live_lock);
    for (int i = 0; i < MAX_LIVE && !found; i++)
        if (live[i] == t->trace_graph) found = live[i];
    pthread_mutex_unlock(&live_lock);
    return found;
}

kn_graph *kn_graph_new(void)
{
    kn_graph *g = kn_alloc(sizeof *g);
    if (!g) return NULL;
    memset(g, 0, sizeof *g);
    if (!live_add(g)) {
        kn_free(g);
        return kn__error_null(KN_ERR_NOMEM, "graph_new: more than %d graphs alive", MAX_LIVE);
    }
    kn__trace_install();
    return g;
}

static void node_release(kn_gnode *n)
{
    kn_free(n->attrs);
    kn_free(n->in); /* in and out share one block */
}

void kn_graph_free(kn_graph *g)
{
    if (!g) return;
    live_remove(g);
    kn__plan_free(g->plan);
    for (int32_t i = 0; i < g->n_nodes; i++)
        node_release(&g->nodes[i]);
    for (int32_t i = 0; i < g->n_values; i++) {
        kn_free(g->values[i].name);
        kn_tensor_unref(g->values[i].tensor);
    }
    kn_free(g->values), kn_free(g->nodes), kn_free(g->inputs), kn_free(g->outputs);
    kn_free(g->node_ms), kn_free(g->node_runs);
    kn_free(g);
}

/* Grows an array of `size`-byte items to hold at least n+1. */
static kn_status grow(void **items, int32_t *cap, int32_t n, size_t size)
{
    if (n < *cap) return KN_OK;
    int32_t next = *cap ? *cap * 2 : 16;
    void *p = kn_alloc((size_t)next * size);
    if (!p) return kn_last_status();
    if (n) memcpy(p, *items, (size_t)n * size);
    kn_free(*items);
    *items = p;
    *cap = next;
    return KN_OK;
}

int32_t kn__graph_add_value(kn_graph *g, kn_value_kind kind, kn_dtype dt, int ndim,
                            const int64_t *shape)
{
    if (grow((void **)&g->values, &g->cap_values, g->n_values, sizeof(kn_gvalue))) return -1;
    kn_gvalue *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->kind = kind;
    v->dtype = dt;
    v->ndim = ndim;
    if (ndim > 0) memcpy(v->shape, shape, sizeof(int64_t) * (size_t)ndim);
    v->node = -1;
    g->compiled = false;
    return g->n_values++;
}

int32_t kn__graph_add_node(kn_graph *g, const kn_op_def *def, const void *attrs, int n_in,
                           const int32_t *in, int n_out)
{
    if (grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes, sizeof(kn_gnode))) return -1;
    kn_gnode *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->in = kn_alloc(sizeof(int32_t) * (size_t)(n_in + n_out + 1));
    n->attrs = def->attrs_size ? kn_alloc(def->attrs_size) : NULL;
    if (!n->in || (def->attrs_size && !n->attrs)) {
        kn_free(n->in), kn_free(n->attrs);
        return -1;
    }
    if (n->attrs && attrs) memcpy(n->attrs, attrs, def->attrs_size);
    else if (n->attrs) memset(n->attrs, 0, def->attrs_size);
    n->out = n->in + n_in;
    memcpy(n->in, in, sizeof(int32_t) * (size_t)n_in);
    for (int i = 0; i < n_out; i++)
        n->out[i] = -1;
    n->def = def;
    n->n_in = n_in;
    n->n_out = n_out;
    n->file = "";
    g->compiled = false;
    return g->n_nodes++;
}

kn_status kn__graph_append_node(kn_graph *g, const kn_gnode *n)
{
    kn_status s = grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes, sizeof(kn_gnode));
    if (s) return s;
    g->nodes[g->n_nodes] = *n;
    for (int k = 0; k < n->n_out; k++)
        g->values[n->out[k]].node = g->n_nodes;
    g->n_nodes++;
    return KN_OK;
}

kn_tensor *kn__graph_proxy(kn_graph *g, int32_t v)
{
    if (v < 0) return NULL;
    kn_gvalue *val = &g->values[v];
    kn_tensor *t = kn_tensor_symbolic(val->dtype, val->ndim, val->shape);
    if (t) {
        t->trace_graph = g;
        t->trace_value = v;
    }
    return t;
}

static char *copy_name(const char *name)
{
    size_t n = strlen(name) + 1;
    char *s = kn_alloc(n);
    if (s) memcpy(s, name, n);
    return s;
}

static kn_status add_input_slot(kn_graph *g, int32_t v)
{
    int32_t cap = g->cap_inputs;
    kn_status s = grow((void **)&g->inputs, &cap, g->n_inputs, sizeof(int32_t));
    g->cap_inputs = cap;
    if (!s) g->inputs[g->n_inputs++] = v;
    return s;
}

kn_tensor *kn_graph_input(kn_graph *g, const char *name, kn_dtype dt, int ndim,
                          const int64_t *shape)
{
    if (!g || !name) return kn__error_null(KN_ERR_ARG, "graph_input: graph or name is NULL");
    if (kn__check_shape("graph_input", ndim, shape)) return NULL;
    if ((unsigned)dt >= KN_DTYPE_COUNT)
        return kn__error_null(KN_ERR_DTYPE, "graph_input: dtype %d is not a kn_dtype", (int)dt);
    int32_t v = kn__graph_add_value(g, KN_VALUE_INPUT, dt, ndim, shape);
    if (v < 0 || !(g->values[v].name = copy_name(name)) || add_input_slot(g, v)) return NULL;
    return kn__graph_proxy(g, v);
}

kn_tensor *kn_graph_param(kn_graph *g, const char *name, kn_tensor *value)
{
    if (!g || !name || !value)
        return kn__error_null(KN_ERR_ARG, "graph_param: graph, name or value is NULL");
    if (!value->storage)
        return kn__error_null(KN_ERR_ARG, "graph_param: '%s' is symbolic; a parameter needs data",
                              name);
    int32_t v = kn__graph_add_value(g, KN_VALUE_PARAM, value->dtype, value->ndim, value->shape);
    if (v < 0 || !(g->values[v].name = copy_name(name))) return NULL;
    g->values[v].tensor = kn_tensor_ref(value);
    return kn__graph_proxy(g, v);
}

kn_status kn_graph_output(kn_graph *g, kn_tensor *t)
{
    if (!g || !t) return kn__error(KN_ERR_ARG, "graph_output: graph or tensor is NULL");
    if (kn__graph_of(t) != g)
        return kn__error(KN_ERR_ARG, "graph_output: the tensor was not traced in this graph");
    int32_t cap = g->cap_outputs;
    kn_status s = grow((void **)&g->outputs, &cap, g->n_outputs, sizeof(int32_t));
    g->cap_outputs = cap;
    if (s) return s;
    g->outputs[g->n_outputs++] = t->trace_value;
    g->compiled = false;
    return KN_OK;
}

int kn_graph_num_inputs(const kn_graph *g) { return g ? g->n_inputs : 0; }
int kn_graph_num_outputs(const kn_graph *g) { return g ? g->n_outputs : 0; }

int kn_graph_num_nodes(const kn_graph *g)
{
    int n = 0;
    for (int32_t i = 0; g && i < g->n_nodes; i++)
        n += !g->nodes[i].dead;
    return n;
}

const char *kn__node_where(const kn_graph *g, int32_t n, char *buf, size_t size)
{
    const kn_gnode *nd = &g->nodes[n];
    if (nd->line > 0)
        snprintf(buf, size, "op '%s' (node %d, traced at %s:%d)", nd->def->name, n, nd->file,
                 nd->line);
    else
        snprintf(buf, size, "op '%s' (node %d)", nd->def->name, n);
    return buf;
}

const void *kn__node_attr(const kn_gnode *n, const char *name)
{
    for (int i = 0; i < n->def->n_attrs; i++)
        if (!strcmp(n->def->attrs[i].name, name)) return (const char *)n->attrs + n->def->attrs[i].offset;
    return NULL;
}

int32_t kn__graph_value_of(kn_graph *g, kn_tensor *t)
{
    if (t->trace_graph) return t->trace_value;
    int32_t v = kn__graph_add_value(g, KN_VALUE_CONST, t->dtype, t->ndim, t->shape);
    if (v >= 0) g->values[v].tensor = kn_tensor_ref(t);
    return v;
}

kn_tensor *kn__value_tensor(const kn_graph *g, int32_t v) { return kn_tensor_ref(g->values[v].tensor); }

void kn__graph_replace_uses(kn_graph *g, int32_t from, int32_t to)
{
    for (int32_t i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] == from) g->nodes[i].in[k] = to;
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == from) g->outputs[i] = to;
    g->compiled = false;
}

kn_status kn__graph_use_counts(const kn_graph *g, int32_t **counts)
{
    int32_t *c = kn_alloc(sizeof(int32_t) * (size_t)(g->n_values + 1));
    if (!c) return kn_last_status();
    memset(c, 0, sizeof(int32_t) * (size_t)(g->n_values + 1));
    for (int32_t i = 0; i < g->n_nodes; i++)
        for (int k = 0; !g->nodes[i].dead && k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] >= 0) c[g->nodes[i].in[k]]++;
    for (int i = 0; i < g->n_outputs; i++)
        c[g->outputs[i]]++;
    *counts = c;
    return KN_OK;
}

/* ---- copying */
static kn_status copy_value(kn_graph *dst, const kn_gvalue *v)
{
    int32_t id = kn__graph_add_value(dst, v->kind, v->dtype, v->ndim, v->shape);
    if (id < 0) return kn_last_status();
    kn_gvalue *c = &dst->values[id];
    c->node = v->node, c->out_index = v->out_index;
    c->tensor = kn_tensor_ref(v->tensor);
    if (v->name && !(c->name = copy_name(v->name))) return kn_last_status();
    return KN_OK;
}

kn_graph *kn__graph_clone(const kn_graph *g)
{
    kn_graph *c = kn_graph_new();
    kn_status s = c ? KN_OK : kn_last_status();
    for (int32_t v = 0; !s && v < g->n_values; v++)
        s = copy_value(c, &g->values[v]);
    for (int32_t i = 0; !s && i < g->n_nodes; i++) {
        const kn_gnode *n = &g->nodes[i];
        int32_t id = kn__graph_add_node(c, n->def, n->attrs, n->n_in, n->in, n->n_out);
        if (id < 0) {
            s = kn_last_status();
            break;
        }
        memcpy(c->nodes[id].out, n->out, sizeof(int32_t) * (size_t)n->n_out);
        c->nodes[id].file = n->file, c->nodes[id].line = n->line, c->nodes[id].dead = n->dead;
    }
    for (int i = 0; !s && i < g->n_inputs; i++)
        s = add_input_slot(c, g->inputs[i]);
    for (int i = 0; !s && i < g->n_outputs; i++) {
        int32_t cap = c->cap_outputs;
        s = grow((void **)&c->outputs, &cap, c->n_outputs, sizeof(int32_t));
        c->cap_outputs = cap;
        if (!s) c->outputs[c->n_outputs++] = g->outputs[i];
    }
    if (s) {
        kn_graph_free(c);
        return NULL;
    }
    return c;
}

/* ---- compaction: drop dead nodes and values nothing refers to */
static void renumber(kn_graph *g, const int32_t *map)
{
    for (int32_t i = 0; i < g->n_nodes; i++) {
        kn_gnode *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0) n->in[k] = map[n->in[k]];
        for (int k = 0; k < n->n_out; k++)
            n->out[k] = map[n->out[k]];
    }
    for (int i = 0; i < g->n_inputs; i++)
        g->inputs[i] = map[g->inputs[i]];
    for (int i = 0; i < g->n_outputs; i++)
        g->outputs[i] = map[g->outputs[i]];
}

kn_status kn__graph_compact(kn_graph *g)
{
    int32_t *keep = NULL;
    if (kn__graph_use_counts(g, &keep)) return kn_last_status();
    for (int i = 0; i < g->n_inputs; i++)
        keep[g->inputs[i]] = 1; /* inputs stay, used or not: they are the signature */
    int32_t kept_nodes = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        kn_gnode *n = &g->nodes[i];
        if (n->dead) {
            node_release(n);
            continue;
        }
        for (int k = 0; k < n->n_out; k++)
            keep[n->out[k]] = 1;
        g->nodes[kept_nodes++] = *n;
    }
    g->n_nodes = kept_nodes;
    int32_t next = 0;
    for (int32_t v = 0; v < g->n_values; v++) {
        if (!keep[v]) {
            kn_free(g->values[v].name);
            kn_tensor_unref(g->values[v].tensor);
            keep[v] = -1;
            continue;
        }
        g->values[next] = g->values[v];
        keep[v] = next++;
    }
    g->n_values = next;
    renumber(g, keep);
    for (int32_t i = 0; i < g->n_nodes; i++) /* producers after renumbering */
        for (int k = 0; k < g->nodes[i].n_out; k++)
            g->values[g->nodes[i].out[k]].node = i;
    kn_free(keep);
    g->compiled = false;
    return KN_OK;
}

/* ---- printing */
static const char *kind_name(kn_value_kind k)
{
    static const char *names[] = {"input", "param", "const", "node"};
    return names[k];
}

static void print_value(const kn_graph *g, int32_t v, FILE *f)
{
    char shape[128];
    const kn_gvalue *val = &g->values[v];
    fprintf(f, "%%%d:%s%s", v, kn_dtype_name(val->dtype),
            kn__shape_str(val->ndim, val->shape, shape, sizeof shape));
}

kn_status kn_graph_print(const kn_graph *g, FILE *f)
{
    if (!g || !f) return kn__error(KN_ERR_ARG, "graph_print: graph or file is NULL");
    fprintf(f, "graph (%d nodes)\n", kn_graph_num_nodes(g));
    for (int32_t v = 0; v < g->n_values; v++) {
        const kn_gvalue *val = &g->values[v];
        if (val->kind == KN_VALUE_NODE) continue;
        fprintf(f, "  %s %s ", kind_name(val->kind), val->name ? val->name : "");
        print_value(g, v, f);
        fprintf(f, "\n");
    }
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const kn_gnode *n = &g->nodes[i];
        if (n->dead) continue;
        fprintf(f, "  ");
        for (int k = 0; k < n->n_out; k++) {
            print_value(g, n->out[k], f);
            fprintf(f, k + 1 < n->n_out ? ", " : " = ");
        }
        fprintf(f, "%s(", n->def->name);
        for (int k = 0; k < n->n_in; k++) {
            if (n->in[k] < 0) fprintf(f, "-");
            else fprintf(f, "%%%d", n->in[k]);
            if (k + 1 < n->n_in) fprintf(f, ", ");
        }
        fprintf(f, ")");
        if (n->line > 0) fprintf(f, "  # %s:%d", n->file, n->line);
        fprintf(f, "\n");
    }
    fprintf(f, "  outputs:");
    for (int i = 0; i < g->n_outputs; i++)
        fprintf(f, " %%%d", g->outputs[i]);
    fprintf(f, "\n");
    return KN_OK;
}
