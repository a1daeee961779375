/* fuse.c — inference-only elementwise fusion: a chain of f32 unary/binary
 * elementwise nodes, each intermediate read only by the next one, becomes
 * one fused_elementwise node (at most 16 steps and 3 outside inputs).
 * Afterwards no fusable node's only reader is another fusable node of a
 * group that had room for it. */
#include "../graph.h"

#include "../../ops/fused.h"

typedef struct group {
    int32_t last;   /* node holding the group's tail */
    int32_t inputs[KN_FUSED_MAX_INPUTS];
    int n_inputs;
    kn_fused_attrs prog;
    int32_t *members;
    int n_members;
} group;

static bool all_f32(const kn_graph *g, const kn_gnode *n)
{
    for (int k = 0; k < n->n_in; k++)
        if (n->in[k] < 0 || g->values[n->in[k]].dtype != KN_F32) return false;
    return g->values[n->out[0]].dtype == KN_F32;
}

static int registry_index(const kn_op_def *def)
{
    for (int i = 0; i < kn_op_count(); i++)
        if (kn_op_at(i) == def) return i;
    return -1;
}

/* Operand reference for value v inside group gr: a step result or an input
 * (added if there is room); -1 when the group is full. */
typedef struct fuse_state {
    int32_t *step_of;  /* per node: its step in its group, or -1 */
    int32_t *group_of; /* per node: its group, or -1 */
} fuse_state;

static int32_t operand(const kn_graph *g, group *gr, int gid, int32_t v, const fuse_state *fs)
{
    const kn_gvalue *val = &g->values[v];
    if (val->kind == KN_VALUE_NODE && fs->group_of[val->node] == gid)
        return KN_FUSED_STEP_REF + fs->step_of[val->node];
    for (int i = 0; i < gr->n_inputs; i++)
        if (gr->inputs[i] == v) return i;
    if (gr->n_inputs == KN_FUSED_MAX_INPUTS) return -1;
    gr->inputs[gr->n_inputs] = v;
    return gr->n_inputs++;
}

/* Appends node i as the next step of gr; false (gr unchanged) when it does not fit. */
static bool add_step(const kn_graph *g, group *gr, int gid, int32_t i, fuse_state *fs)
{
    const kn_gnode *n = &g->nodes[i];
    if (gr->prog.n_steps == KN_FUSED_MAX_STEPS) return false;
    group saved = *gr;
    kn_fused_step st = {.op = registry_index(n->def), .a = operand(g, gr, gid, n->in[0], fs), .b = 0};
    if (n->n_in == 2) st.b = operand(g, gr, gid, n->in[1], fs);
    if (st.a < 0 || st.b < 0) {
        *gr = saved;
        return false;
    }
    if (n->def->attrs_size == sizeof(kn_unary_attrs) && n->n_in == 1) {
        const kn_unary_attrs *ua = n->attrs;
        st.alpha = ua->alpha, st.beta = ua->beta;
    }
    fs->step_of[i] = gr->prog.n_steps;
    fs->group_of[i] = gid;
    gr->prog.steps[gr->prog.n_steps++] = st;
    gr->members[gr->n_members++] = i;
    gr->last = i;
    return true;
}

static kn_status rewrite(kn_graph *g, group *gr)
{
    kn_gnode *last = &g->nodes[gr->last];
    int32_t *in = kn_alloc(sizeof(int32_t) * (size_t)(gr->n_inputs + 2));
    void *attrs = kn_alloc(sizeof(kn_fused_attrs));
    if (!in || !attrs) {
        kn_free(in), kn_free(attrs);
        return kn_last_status();
    }
    memcpy(in, gr->inputs, sizeof(int32_t) * (size_t)gr->n_inputs);
    in[gr->n_inputs] = last->out[0];
    gr->prog.registry = kn__registry_fingerprint();
    memcpy(attrs, &gr->prog, sizeof gr->prog);
    kn_free(last->in), kn_free(last->attrs);
    last->def = &kn_op_fused_elementwise;
    last->attrs = attrs;
    last->in = in;
    last->n_in = gr->n_inputs;
    last->out = in + gr->n_inputs;
    for (int m = 0; m < gr->n_members; m++)
        if (gr->members[m] != gr->last) g->nodes[gr->members[m]].dead = true;
    return KN_OK;
}

kn_status kn__pass_fuse(kn_graph *g, unsigned flags)
{
    if (flags & KN_GRAPH_TRAINING) return KN_OK;
    size_t nn = (size_t)g->n_nodes + 1;
    int32_t *uses = NULL;
    fuse_state fs = {kn_alloc(sizeof(int32_t) * nn), kn_alloc(sizeof(int32_t) * nn)};
    group *groups = kn_alloc(sizeof(group) * nn);
    int32_t *members = kn_alloc(sizeof(int32_t) * nn * KN_FUSED_MAX_STEPS);
    kn_status s = fs.step_of && fs.group_of && groups && members ? kn__graph_use_counts(g, &uses)
                                                                  : kn_last_status();
    int n_groups = 0, fused = 0;
    for (int32_t i = 0; !s && i < g->n_nodes; i++)
        fs.step_of[i] = fs.group_of[i] = -1;
    for (int32_t i = 0; !s && i < g->n_nodes; i++) {
        kn_gnode *n = &g->nodes[i];
        if (n->dead || !kn__fusable_op(n->def) || !all_f32(g, n)) continue;
        bool joined = false; /* extend the group whose tail feeds only this node */
        for (int k = 0; k < n->n_in && !joined; k++) {
            const kn_gvalue *v = &g->values[n->in[k]];
            if (v->kind != KN_VALUE_NODE || uses[n->in[k]] != 1) continue;
            int gid = fs.group_of[v->node];
            if (gid >= 0 && groups[gid].last == v->node) joined = add_step(g, &groups[gid], gid, i, &fs);
        }
        if (joined) continue;
        group *gr = &groups[n_groups];
        memset(gr, 0, sizeof *gr);
        gr->members = members + (size_t)n_groups * KN_FUSED_MAX_STEPS;
        if (add_step(g, gr, n_groups, i, &fs)) n_groups++;
    }
    for (int k = 0; !s && k < n_groups; k++)
        if (groups[k].n_members > 1 && !(s = rewrite(g, &groups[k]))) fused++;
    kn_free(uses), kn_free(fs.step_of), kn_free(fs.group_of), kn_free(groups), kn_free(members);
    if (s) return s;
    return fused ? kn__graph_compact(g) : KN_OK;
}
