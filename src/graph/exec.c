/* exec.c — runs a compiled graph on concrete tensors. The plan knows each
 * value's last reader, so intermediates are released as soon as nothing
 * needs them; nodes dispatch through the op registry (kernels, views,
 * composites alike) and record on the autograd tape when it is on. */
#include "graph.h"

#include <stdint.h>
#include <time.h>

static void drop_prepacked(kn_prepacked *k)
{
    if (k->data) k->free_fn(k->data);
    kn_tensor_unref(k->of);
    *k = (kn_prepacked){0};
}

/* The node's prepared weights for its current input, made again when the
 * input tensor or its version changed since. NULL: run unprepared. */
static const void *prepacked_for(kn_graph *g, int32_t i, const kn_op_args *a)
{
    const kn_gnode *n = &g->nodes[i];
    int k = n->def->prepack_in;
    if (!n->def->prepack || k >= n->n_in || n->in[k] < 0 || !a->in[k] || !a->in[k]->storage)
        return NULL;
    kn_value_kind kind = g->values[n->in[k]].kind;
    if (kind != KN_VALUE_PARAM && kind != KN_VALUE_CONST) return NULL;
    kn_prepacked *pk = &g->plan->packed[i];
    kn_tensor *w = a->in[k];
    if (pk->of == w && pk->version == w->storage->version) return pk->data;
    drop_prepacked(pk);
    pk->data = n->def->prepack(a);
    if (!pk->data) kn_clear_error(); /* the kernel packs per call instead */
    pk->free_fn = n->def->prepack_free;
    pk->of = kn_tensor_ref(w);
    pk->version = w->storage->version;
    return pk->data;
}

void kn__plan_free(kn_plan *p)
{
    if (!p) return;
    for (int32_t i = 0; p->packed && i < p->n_nodes; i++)
        drop_prepacked(&p->packed[i]);
    kn_free(p->packed);
    if (p->fixed)
        for (int32_t v = 0; v < p->n_values; v++)
            kn_tensor_unref(p->fixed[v]);
    kn_tensor_unref(p->arena);
    kn_free(p->last_use), kn_free(p->end), kn_free(p->offset), kn_free(p->share), kn_free(p->fixed);
    kn_free(p->static_node), kn_free(p->view_node), kn_free(p->slots), kn_free(p->args);
    kn_free(p);
}

static void compute_last_use(const kn_graph *g, kn_plan *p)
{
    for (int32_t v = 0; v < g->n_values; v++)
        p->last_use[v] = -1;
    for (int32_t i = 0; i < g->n_nodes; i++)
        for (int k = 0; !g->nodes[i].dead && k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] >= 0) p->last_use[g->nodes[i].in[k]] = i;
    for (int i = 0; i < g->n_outputs; i++)
        p->last_use[g->outputs[i]] = INT32_MAX;
}

/* View nodes over arena tensors (reshape, flatten, permute of a planned
 * value) are made once here: every run hands out the same view. */
static kn_status static_views(kn_graph *g, kn_plan *p)
{
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const kn_gnode *n = &g->nodes[i];
        p->view_node[i] = false;
        if (n->dead || !n->def->view || n->n_out != 1 || n->n_in < 1 || n->in[0] < 0 ||
            !p->fixed[n->in[0]])
            continue;
        kn_tensor *in[1] = {p->fixed[n->in[0]]}, *out[1] = {NULL};
        kn_op_args a = {n->def, in, 1, out, 1, n->attrs, NULL};
        if (n->n_in != 1 || n->def->view(&a)) {
            kn_clear_error();
            continue;
        }
        if (out[0]->storage == p->arena->storage) { /* a true view, not a copy */
            p->fixed[n->out[0]] = out[0];
            p->view_node[i] = true;
        } else {
            kn_tensor_unref(out[0]);
        }
    }
    return KN_OK;
}

/* The arena and a tensor in it for every planned value; nodes whose outputs
 * are all planned become static. */
static kn_status carve_arena(kn_graph *g, kn_plan *p)
{
    int64_t bytes = (int64_t)p->arena_bytes;
    p->arena = kn_tensor_empty(KN_U8, 1, &bytes);
    if (!p->arena) return kn_last_status();
    for (int32_t v = 0; v < g->n_values; v++) {
        const kn_gvalue *val = &g->values[v];
        if (p->offset[v] < 0) continue;
        p->fixed[v] = kn__tensor_on_storage(p->arena->storage, (size_t)p->offset[v], val->dtype,
                                            val->ndim, val->shape);
        if (!p->fixed[v]) return kn_last_status();
    }
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const kn_gnode *n = &g->nodes[i];
        bool all = !n->dead && kn__node_is_kernel(n);
        for (int k = 0; all && k < n->n_out; k++)
            all = p->offset[n->out[k]] >= 0;
        p->static_node[i] = all;
    }
    return static_views(g, p);
}

kn_status kn__plan_build(kn_graph *g)
{
    kn__plan_free(g->plan);
    g->plan = NULL;
    kn_plan *p = kn_alloc(sizeof *p);
    if (!p) return kn_last_status();
    memset(p, 0, sizeof *p);
    size_t nv = (size_t)g->n_values + 1, nn = (size_t)g->n_nodes + 1;
    p->n_values = g->n_values;
    p->n_nodes = g->n_nodes;
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].n_in + g->nodes[i].n_out > p->max_args)
            p->max_args = g->nodes[i].n_in + g->nodes[i].n_out;
    p->last_use = kn_alloc(sizeof(int32_t) * nv);
    p->end = kn_alloc(sizeof(int32_t) * nv);
    p->offset = kn_alloc(sizeof(int64_t) * nv);
    p->share = kn_alloc(sizeof(int32_t) * nv);
    p->fixed = kn_alloc(sizeof(kn_tensor *) * nv);
    p->slots = kn_alloc(sizeof(kn_tensor *) * nv);
    /* zeroed at once: kn__plan_free unrefs them when a later step fails */
    if (p->fixed) memset(p->fixed, 0, sizeof(kn_tensor *) * nv);
    if (p->slots) memset(p->slots, 0, sizeof(kn_tensor *) * nv);
    p->packed = kn_alloc(sizeof(kn_prepacked) * nn);
    if (p->packed) memset(p->packed, 0, sizeof(kn_prepacked) * nn);
    p->static_node = kn_alloc(sizeof(bool) * nn);
    p->view_node = kn_alloc(sizeof(bool) * nn);
    p->args = kn_alloc(sizeof(kn_tensor *) * (size_t)(p->max_args + 1));
    kn_status s = KN_OK;
    if (!p->last_use || !p->end || !p->offset || !p->share || !p->fixed || !p->slots ||
        !p->packed || !p->static_node || !p->view_node || !p->args)
        s = kn_last_status();
    if (!s) {
        compute_last_use(g, p);
        s = kn__memplan(g, p);
    }
    if (!s) s = kn__memplan_verify(g, p);
    if (!s) s = carve_arena(g, p);
    if (s) {
        kn__plan_free(p);
        return s;
    }
    g->plan = p;
    return KN_OK;
}

static kn_status bind_inputs(kn_graph *g, int n_in, kn_tensor *const *inputs)
{
    kn_plan *p = g->plan;
    if (n_in != g->n_inputs || (n_in > 0 && !inputs))
        return kn__error(KN_ERR_ARG, "graph_run: got %d inputs, the graph has %d", n_in, g->n_inputs);
    for (int i = 0; i < n_in; i++) {
        const kn_gvalue *v = &g->values[g->inputs[i]];
        kn_tensor *t = inputs[i];
        if (!t || !t->storage)
            return kn__error(KN_ERR_ARG, "graph_run: input %d ('%s') is NULL or symbolic", i, v->name);
        bool same = t->dtype == v->dtype && t->ndim == v->ndim &&
                    !memcmp(t->shape, v->shape, sizeof(int64_t) * (size_t)v->ndim);
        if (!same) {
            char want[96], got[96];
            return kn__error(KN_ERR_SHAPE, "graph_run: input %d ('%s') is %s%s, the graph was traced with %s%s",
                             i, v->name, kn_dtype_name(t->dtype), kn__shape_str(t->ndim, t->shape, got, sizeof got),
                             kn_dtype_name(v->dtype), kn__shape_str(v->ndim, v->shape, want, sizeof want));
        }
        p->slots[g->inputs[i]] = kn_tensor_ref(t);
    }
    for (int32_t v = 0; v < g->n_values; v++)
        if (g->values[v].tensor) p->slots[v] = kn_tensor_ref(g->values[v].tensor);
    return KN_OK;
}

static void release_slots(kn_graph *g)
{
    for (int32_t v = 0; v < g->n_values; v++) {
        kn_tensor_unref(g->plan->slots[v]);
        g->plan->slots[v] = NULL;
    }
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static kn_status run_node(kn_graph *g, int32_t i)
{
    kn_plan *p = g->plan;
    kn_gnode *n = &g->nodes[i];
    kn_tensor **in = p->args, **out = p->args + n->n_in;
    for (int k = 0; k < n->n_in; k++)
        in[k] = n->in[k] >= 0 ? p->slots[n->in[k]] : NULL;
    if (n->def->refresh) n->def->refresh(n->attrs);
    double t0 = g->profiling ? now_ms() : 0;
    kn_status s;
    if (p->view_node[i] && !kn__record_active()) {
        out[0] = kn_tensor_ref(p->fixed[n->out[0]]); /* made at build time */
        s = KN_OK;
    } else if (p->static_node[i] && !kn__record_active()) {
        /* straight into the arena: no inference, no allocation */
        for (int k = 0; k < n->n_out; k++)
            out[k] = kn_tensor_ref(p->fixed[n->out[k]]);
        kn_op_args a = {n->def, in, n->n_in, out, n->n_out, n->attrs, NULL};
        a.prepacked = prepacked_for(g, i, &a);
        s = kn__op_run_kernel(&a);
        for (int k = 0; k < n->n_out; k++)
            if (!s) kn__bump_version(out[k]);
        if (s)
            for (int k = 0; k < n->n_out; k++)
                kn_tensor_unref(out[k]);
    } else {
        kn_op_args a = {n->def, in, n->n_in, NULL, n->n_out, n->attrs, NULL};
        s = kn__op_call_prepacked(n->def, n->n_in, in, n->attrs, n->n_out, out,
                                  prepacked_for(g, i, &a));
    }
    if (s) {
        char where[200], msg[400];
        snprintf(msg, sizeof msg, "%s", kn_last_error());
        return kn__error(s, "graph_run: %s: %s", kn__node_where(g, i, where, sizeof where), msg);
    }
    if (g->profiling) {
        g->node_ms[i] += now_ms() - t0;
        g->node_runs[i]++;
    }
    for (int k = 0; k < n->n_out; k++)
        p->slots[n->out[k]] = out[k];
    for (int k = 0; k < n->n_in; k++) { /* free what nothing later reads */
        int32_t v = n->in[k];
        if (v >= 0 && p->last_use[v] == i && g->values[v].kind == KN_VALUE_NODE) {
            kn_tensor_unref(p->slots[v]);
            p->slots[v] = NULL;
        }
    }
    return KN_OK;
}

kn_status kn_graph_run(kn_graph *g, int n_in, kn_tensor *const *inputs, int n_out,
                       kn_tensor **outputs)
{
    if (!g) return kn__error(KN_ERR_ARG, "graph_run: graph is NULL");
    if (n_out != g->n_outputs || (n_out > 0 && !outputs))
        return kn__error(KN_ERR_ARG, "graph_run: asked for %d outputs, the graph has %d", n_out,
                         g->n_outputs);
    if (!g->compiled && kn_graph_compile(g, KN_GRAPH_TRAINING)) return kn_last_status();
    kn_status s = bind_inputs(g, n_in, inputs);
    for (int32_t i = 0; i < g->n_nodes && !s; i++)
        if (!g->nodes[i].dead) s = run_node(g, i);
    for (int i = 0; i < n_out; i++)
        outputs[i] = s ? NULL : kn_tensor_ref(g->plan->slots[g->outputs[i]]);
    release_slots(g);
    return s;
}

void kn_graph_set_profiling(kn_graph *g, bool on)
{
    if (!g) return;
    g->profiling = on;
    kn_free(g->node_ms), kn_free(g->node_runs);
    g->node_ms = NULL, g->node_runs = NULL;
    if (!on) return;
    g->node_ms = kn_alloc(sizeof(double) * (size_t)(g->n_nodes + 1));
    g->node_runs = kn_alloc(sizeof(int64_t) * (size_t)(g->n_nodes + 1));
    if (!g->node_ms || !g->node_runs) {
        kn_free(g->node_ms), kn_free(g->node_runs);
        g->node_ms = NULL, g->node_runs = NULL;
        g->profiling = false;
        return;
    }
    memset(g->node_ms, 0, sizeof(double) * (size_t)(g->n_nodes + 1));
    memset(g->node_runs, 0, sizeof(int64_t) * (size_t)(g->n_nodes + 1));
}

/* One row per op name: how many node runs, total ms, share of the total. */
kn_status kn_graph_print_profile(const kn_graph *g, FILE *f)
{
    if (!g || !f || !g->node_ms)
        return kn__error(KN_ERR_STATE, "graph_print_profile: profiling is off (kn_graph_set_profiling)");
    double total = 0;
    for (int32_t i = 0; i < g->n_nodes; i++)
        total += g->node_ms[i];
    fprintf(f, "%-24s %8s %12s %7s\n", "op", "count", "total ms", "share");
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const char *name = g->nodes[i].def->name;
        bool first = true; /* print each op name once, at its first node */
        for (int32_t j = 0; j < i && first; j++)
            first = g->nodes[j].def->name != name;
        if (!first) continue;
        double ms = 0;
        int64_t count = 0;
        for (int32_t j = i; j < g->n_nodes; j++)
            if (g->nodes[j].def->name == name) ms += g->node_ms[j], count += g->node_runs[j];
        fprintf(f, "%-24s %8lld %12.3f %6.1f%%\n", name, (long long)count, ms,
                total > 0 ? 100 * ms / total : 0);
    }
    fprintf(f, "%-24s %8s %12.3f %6.1f%%\n", "total", "", total, 100.0);
    return KN_OK;
}
