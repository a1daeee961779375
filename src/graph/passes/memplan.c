/* memplan.c — memory planning. Afterwards every value produced by a kernel
 * node that is not a graph output (nor an alias of one) has a byte offset in
 * one arena, and two values share bytes only when their lifetimes (from the
 * producing node to the last node reading the value or any view/composite
 * output that may alias it) do not overlap. Offsets are chosen greedily,
 * biggest values first, at the lowest gap that fits. */
#include "../graph.h"

#include <stdlib.h>

#define ALIGN 64

bool kn__node_is_kernel(const kn_gnode *n) { return n->def->impls && !n->def->view && !n->def->compose; }

static size_t value_bytes(const kn_gvalue *v)
{
    size_t b = (size_t)kn__shape_numel(v->ndim, v->shape) * kn_dtype_size(v->dtype);
    return (b + ALIGN - 1) / ALIGN * ALIGN;
}

/* A value read by a view or composite node stays alive as long as that
 * node's outputs do: they may share its storage. */
static void alias_lifetimes(const kn_graph *g, kn_plan *p)
{
    for (int32_t v = 0; v < g->n_values; v++)
        p->end[v] = p->last_use[v];
    for (int32_t i = g->n_nodes - 1; i >= 0; i--) {
        const kn_gnode *n = &g->nodes[i];
        if (n->dead || kn__node_is_kernel(n)) continue;
        int32_t end = i;
        for (int k = 0; k < n->n_out; k++)
            if (p->end[n->out[k]] > end) end = p->end[n->out[k]];
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0 && p->end[n->in[k]] < end) p->end[n->in[k]] = end;
    }
}

static bool plannable(const kn_graph *g, const kn_plan *p, int32_t v)
{
    const kn_gvalue *val = &g->values[v];
    if (val->kind != KN_VALUE_NODE || p->end[v] == INT32_MAX) return false;
    return kn__node_is_kernel(&g->nodes[val->node]);
}

typedef struct item {
    int32_t v;
    size_t bytes;
} item;

static int by_size_desc(const void *a, const void *b)
{
    const item *x = a, *y = b;
    if (x->bytes != y->bytes) return x->bytes < y->bytes ? 1 : -1;
    return x->v - y->v;
}

/* Lifetimes [producer, end] of the bytes two values use: those of the
 * values whose bytes they take over (find_inplace extends that value's end
 * to the last of its sharers). */
static bool lifetimes_overlap(const kn_graph *g, const kn_plan *p, int32_t a, int32_t b)
{
    a = p->share[a], b = p->share[b];
    int32_t sa = g->values[a].node, sb = g->values[b].node;
    int32_t ea = p->end[a] < sa ? sa : p->end[a], eb = p->end[b] < sb ? sb : p->end[b];
    return sa <= eb && sb <= ea;
}

/* In place: the output of an `inplace` kernel node takes over the bytes of
 * its input 0 when that input (a planned value of the same dtype and shape)
 * is not read after this node, through any alias. */
static void find_inplace(const kn_graph *g, kn_plan *p)
{
    for (int32_t v = 0; v < g->n_values; v++)
        p->share[v] = v;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const kn_gnode *n = &g->nodes[i];
        if (n->dead || !n->def->inplace || !kn__node_is_kernel(n) || n->in[0] < 0) continue;
        int32_t u = n->in[0], v = n->out[0];
        const kn_gvalue *a = &g->values[u], *b = &g->values[v];
        if (!plannable(g, p, u) || !plannable(g, p, v) || p->end[u] != i || a->dtype != b->dtype ||
            a->ndim != b->ndim || memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim))
            continue;
        p->share[v] = p->share[u]; /* chains share the first one's bytes */
    }
    for (int32_t v = 0; v < g->n_values; v++) { /* the shared bytes live until the last sharer ends */
        int32_t r = p->share[v];
        if (r != v && p->end[v] > p->end[r]) p->end[r] = p->end[v];
    }
}

/* Lowest offset where `bytes` fit between the already placed values that
 * are alive at the same time. */
static int64_t first_fit(const kn_graph *g, const kn_plan *p, const item *placed, int n_placed,
                         const item *it)
{
    int64_t offset = 0;
    for (bool moved = true; moved;) {
        moved = false;
        for (int j = 0; j < n_placed; j++) {
            int64_t o = p->offset[placed[j].v];
            bool overlap = offset < o + (int64_t)placed[j].bytes && o < offset + (int64_t)it->bytes;
            if (overlap && lifetimes_overlap(g, p, placed[j].v, it->v)) {
                offset = o + (int64_t)placed[j].bytes;
                moved = true;
            }
        }
    }
    return offset;
}

kn_status kn__memplan(kn_graph *g, kn_plan *p)
{
    alias_lifetimes(g, p);
    find_inplace(g, p);
    item *items = kn_alloc(sizeof(item) * (size_t)(g->n_values + 1));
    if (!items) return kn_last_status();
    int n = 0;
    p->planned_bytes = 0;
    for (int32_t v = 0; v < g->n_values; v++) {
        p->offset[v] = -1;
        if (!plannable(g, p, v)) continue;
        p->planned_bytes += value_bytes(&g->values[v]);
        if (p->share[v] == v) items[n++] = (item){v, value_bytes(&g->values[v])};
    }
    qsort(items, (size_t)n, sizeof *items, by_size_desc);
    p->arena_bytes = 0;
    for (int i = 0; i < n; i++) {
        int64_t o = first_fit(g, p, items, i, &items[i]);
        p->offset[items[i].v] = o;
        if ((size_t)o + items[i].bytes > p->arena_bytes) p->arena_bytes = (size_t)o + items[i].bytes;
    }
    for (int32_t v = 0; v < g->n_values; v++)
        if (p->offset[v] < 0 && plannable(g, p, v)) p->offset[v] = p->offset[p->share[v]];
    kn_free(items);
    return KN_OK;
}

kn_status kn__memplan_verify(const kn_graph *g, const kn_plan *p)
{
    for (int32_t a = 0; a < g->n_values; a++) {
        if (p->offset[a] < 0) continue;
        size_t ba = value_bytes(&g->values[a]);
        if ((size_t)p->offset[a] + ba > p->arena_bytes)
            return kn__error(KN_ERR_INTERNAL, "memplan: value %d ends past the arena", a);
        for (int32_t b = a + 1; b < g->n_values; b++) {
            if (p->offset[b] < 0 || p->share[a] == p->share[b]) continue; /* in place by design */
            size_t bb = value_bytes(&g->values[b]);
            bool bytes = p->offset[a] < p->offset[b] + (int64_t)bb && p->offset[b] < p->offset[a] + (int64_t)ba;
            if (bytes && lifetimes_overlap(g, p, a, b))
                return kn__error(KN_ERR_INTERNAL, "memplan: values %d and %d are alive together and share bytes",
                                 a, b);
        }
    }
    return KN_OK;
}
