/* layout.c — inference-only, on AVX-512 machines (where the NHWC kernels are
 * the fast ones): 4-D NCHW convolutions become NHWC, and the region grows
 * forward through what can follow them in NHWC: pools and resizes,
 * elementwise ops
 * (broadcast operands reshaped to match) and channel-axis ops (concat,
 * split, slice, softmax, batch_norm, pad: their axis rewritten). Afterwards
 * a conversion (a reshape when it keeps the element order, else a permute
 * and a copy) stands only at a region's edges: where an NCHW value enters a
 * region node, where a region value leaves for a node that stays NCHW, and
 * before a graph output (the graph's contract never changes). Each value
 * has at most one conversion per direction, shared by all its readers; a
 * user's permute to NHWC of a region value becomes a no-op view, and a
 * region node reading a user's permute from NHWC reads its source.
 * Convolutions with few channels stay NCHW when their input is NCHW. */
#include "../graph.h"

#include "../../ops/elementwise.h"
#include "../../ops/shape.h"

/* NHWC dim d holds NCHW dim TO_NHWC[d]; NCHW axis a is NHWC axis AXIS_NHWC[a]. */
static const int TO_NHWC[4] = {0, 2, 3, 1};
static const int TO_NCHW[4] = {0, 3, 1, 2};
#define AXIS_NHWC TO_NCHW

typedef struct lay {
    kn_graph *g;
    int32_t n_orig;   /* values before the pass: the ones tags and twins cover */
    bool *nhwc;       /* per value: its data is NHWC (its shape is rewritten) */
    int32_t *twin[2]; /* per value: its NHWC (0) / NCHW (1) conversion, or -1 */
    const char *file; /* call site given to the conversions */
    int line;
} lay;

typedef enum role {
    R_EDGE,   /* stays as it is; reads region values through conversions */
    R_CONV,   /* becomes NHWC; its input is converted when it is not NHWC */
    R_LAYOUT, /* has a layout attr (pools, batch_norm): follows its input */
    R_ELEM,   /* elementwise: follows its same-shape NHWC input */
    R_AXIS,   /* has an axis attr: follows its input */
    R_PAD,    /* pad: its per-axis lists are permuted */
    R_CANCEL, /* permute (0, 2, 3, 1) of a region value: becomes a no-op view */
} role;

static bool tagged(const lay *L, int32_t v)
{
    return v >= 0 && v < L->n_orig && L->nhwc[v];
}

/* A node's attr named `name` for writing (the node owns its attrs). */
static void *attr(const kn_gnode *n, const char *name)
{
    return (void *)kn__node_attr(n, name);
}

/* ---------------------------------------------------------- convolutions */
/* Whether node n is a convolution in NCHW, with its groups. conv2d keeps
 * them in attrs; conv2d_fused's hold a kn_conv_params (kn__conv_fused_params). */
static bool conv_nchw(const kn_gnode *n, int64_t *groups)
{
    if (n->def == &kn_op_conv2d_fused) {
        const kn_conv_params *p = kn__conv_fused_params(n->attrs);
        *groups = p->groups ? p->groups : 1;
        return p->layout == KN_LAYOUT_NCHW;
    }
    if (n->def != &kn_op_conv2d) return false;
    const int64_t *gr = kn__node_attr(n, "groups"), *layout = kn__node_attr(n, "layout");
    *groups = gr ? *gr : 1;
    return layout && *layout == KN_LAYOUT_NCHW;
}

/* Few channels: NCHW convolutions (the direct kernel of src/kernels/
 * conv_fast.c, or im2col + GEMM) beat NHWC ones, even counting the output's
 * conversion, when the input has 1 or 2 channels (MNIST's 1->32 3x3, batch
 * 8: 0.06 vs 0.21 ms) or the output at most 16 and the reduction at most
 * 512 (3->16 3x3: 0.05 vs 0.07 ms; LeNet's 6->16 5x5: even); from 3->32
 * on, NHWC wins or ties. Such a convolution stays NCHW when its input is
 * NCHW; inside a region it goes NHWC all the same: two conversions would
 * cost more than it saves. */
static bool small_conv(const kn_graph *g, const kn_gnode *n, int64_t groups)
{
    const kn_gvalue *w = &g->values[n->in[1]];
    if (w->ndim != 4 || groups != 1) return false;
    int64_t cout = w->shape[0], cin = w->shape[1], k = w->shape[2] * w->shape[3];
    return cin <= 2 || (cout <= 16 && cin * k <= 512);
}

/* True for a 4-D f32 NCHW convolution the pass makes NHWC. */
static bool anchor(const lay *L, const kn_gnode *n)
{
    const kn_graph *g = L->g;
    int64_t groups = 1;
    if (!conv_nchw(n, &groups)) return false;
    const kn_gvalue *x = &g->values[n->in[0]];
    if (x->ndim != 4 || x->dtype != KN_F32 || g->values[n->in[1]].dtype != KN_F32) return false;
    return tagged(L, n->in[0]) || !small_conv(g, n, groups);
}

static void set_conv_nhwc(kn_gnode *n)
{
    if (n->def == &kn_op_conv2d_fused) {
        kn__conv_fused_params(n->attrs)->layout = KN_LAYOUT_NHWC;
    } else {
        int64_t *layout = attr(n, "layout");
        *layout = KN_LAYOUT_NHWC;
    }
}

/* ------------------------------------------------------------ conversions */
/* Appends a one-input, one-output node; its output value, or -1. */
static int32_t add1(lay *L, const kn_op_def *def, const void *attrs, int32_t in, int ndim,
                    const int64_t *shape)
{
    kn_graph *g = L->g;
    kn_dtype dt = g->values[in].dtype;
    int32_t id = kn__graph_add_node(g, def, attrs, 1, &in, 1);
    if (id < 0) return -1;
    int32_t v = kn__graph_add_value(g, KN_VALUE_NODE, dt, ndim, shape);
    if (v < 0) {
        g->nodes[id].dead = true;
        g->nodes[id].out[0] = in; /* stays valid for compaction */
        return -1;
    }
    g->nodes[id].out[0] = v;
    g->nodes[id].file = L->file, g->nodes[id].line = L->line;
    g->values[v].node = id;
    g->values[v].out_index = 0;
    return v;
}

static int32_t add_shaped(lay *L, const kn_op_def *def, int32_t in, int ndim, const int64_t *v,
                          const int64_t *out_shape)
{
    kn_shape_attrs at = {{.n = ndim}};
    for (int d = 0; d < ndim; d++)
        at.shape.v[d] = v[d];
    return add1(L, def, &at, in, ndim, out_shape);
}

/* A reshape of v to the 4-D shape t, with dim 0 inferred (-1) so that the
 * graph stays valid for another batch size (see rebatch in block.c). */
static int32_t add_reshape(lay *L, int32_t v, const int64_t *t)
{
    int64_t at[4] = {t[1] * t[2] * t[3] > 0 ? -1 : t[0], t[1], t[2], t[3]};
    return add_shaped(L, &kn_op_reshape, v, 4, at, t);
}

/* A constant holding the NHWC form of constant v (of padded shape p). */
static int32_t const_twin(lay *L, int32_t v, const int64_t *p, const int64_t *t)
{
    kn_graph *g = L->g;
    bool was = kn_autograd_record(false);
    kn_tensor *r = kn_reshape(g->values[v].tensor, 4, p);
    kn_tensor *pr = r ? kn_permute(r, 4, TO_NHWC) : NULL;
    kn_tensor *c = pr ? kn_contiguous(pr) : NULL;
    kn_autograd_record(was);
    kn_tensor_unref(r), kn_tensor_unref(pr);
    if (!c) return -1;
    int32_t cv = kn__graph_add_value(g, KN_VALUE_CONST, c->dtype, 4, t);
    if (cv < 0) {
        kn_tensor_unref(c);
        return -1;
    }
    g->values[cv].tensor = c;
    return cv;
}

/* Whether data of NCHW shape p reads in the same order in NHWC. */
static bool same_order(const int64_t *p)
{
    return p[1] == 1 || p[2] * p[3] == 1;
}

/* Whether perm (a permute's attr) is the 4-D permutation want. */
static bool is_perm(const kn_ints *perm, const int *want)
{
    bool same = perm && perm->n == 4;
    for (int d = 0; same && d < 4; d++)
        same = perm->v[d] == want[d] || perm->v[d] == want[d] - 4;
    return same;
}

/* The source of v when v is a user's permute from NHWC to NCHW of a plain
 * value (that source is v's NHWC form), else -1. */
static int32_t user_source(const lay *L, int32_t v)
{
    const kn_gvalue *val = &L->g->values[v];
    if (val->kind != KN_VALUE_NODE || val->ndim != 4) return -1;
    const kn_gnode *src = &L->g->nodes[val->node];
    if (src->def != &kn_op_permute || tagged(L, src->in[0])) return -1;
    return is_perm(kn__node_attr(src, "perm"), TO_NCHW) ? src->in[0] : -1;
}

/* The NHWC version of value v (not tagged, at most 4-D, broadcast against
 * a 4-D NCHW shape): itself when it is a region value or all ones, else a
 * conversion made once. -1 + error. */
static int32_t to_nhwc(lay *L, int32_t v)
{
    kn_graph *g = L->g;
    if (v < 0 || tagged(L, v)) return v;
    if (v < L->n_orig && L->twin[0][v] >= 0) return L->twin[0][v];
    const kn_gvalue *val = &g->values[v];
    int64_t p[4] = {1, 1, 1, 1}, t[4];
    for (int d = 0; d < val->ndim; d++)
        p[4 - val->ndim + d] = val->shape[d];
    if (p[0] * p[1] * p[2] * p[3] == 1 && val->ndim <= 4) return v; /* broadcasts as it is */
    for (int d = 0; d < 4; d++)
        t[d] = p[TO_NHWC[d]];
    int32_t r = user_source(L, v);
    if (r < 0 && val->kind == KN_VALUE_CONST && val->tensor) {
        r = const_twin(L, v, p, t);
    } else if (r < 0 && same_order(p)) {
        r = add_reshape(L, v, t);
    } else if (r < 0) {
        int32_t x = val->ndim == 4 ? v : add_reshape(L, v, p);
        int64_t perm[4] = {0, 2, 3, 1};
        int32_t pv = x < 0 ? -1 : add_shaped(L, &kn_op_permute, x, 4, perm, t);
        kn_cast_attrs copy = {g->values[v].dtype}; /* a cast to its own dtype: a planned copy */
        r = pv < 0 ? -1 : add1(L, &kn_op_cast, &copy, pv, 4, t);
    }
    if (r >= 0 && v < L->n_orig) L->twin[0][v] = r;
    return r;
}

/* The NCHW version of region value v, made once. -1 + error. */
static int32_t to_nchw(lay *L, int32_t v)
{
    kn_graph *g = L->g;
    if (L->twin[1][v] >= 0) return L->twin[1][v];
    const int64_t *q = g->values[v].shape;
    int64_t t[4] = {q[0], q[3], q[1], q[2]};
    int32_t r;
    if (same_order(t)) {
        r = add_reshape(L, v, t);
    } else {
        int64_t perm[4] = {0, 3, 1, 2};
        int32_t pv = add_shaped(L, &kn_op_permute, v, 4, perm, t);
        kn_cast_attrs copy = {g->values[v].dtype};
        r = pv < 0 ? -1 : add1(L, &kn_op_cast, &copy, pv, 4, t);
    }
    if (r >= 0) L->twin[1][v] = r;
    return r;
}

/* Marks v as NHWC data: its shape becomes the NHWC one. */
static void tag(lay *L, int32_t v)
{
    kn_gvalue *val = &L->g->values[v];
    int64_t s[4];
    for (int d = 0; d < 4; d++)
        s[d] = val->shape[TO_NHWC[d]];
    memcpy(val->shape, s, sizeof s);
    L->nhwc[v] = true;
}

/* ------------------------------------------------------------------ roles */
static bool is_elementwise(const kn_op_def *d)
{
    return d->impls == kn__unary_impls || d->impls == kn__binary_impls || d == &kn_op_where ||
           d == &kn_op_fused_elementwise || d == &kn_op_cast || d == &kn_op_contiguous;
}

static bool has_layout_attr(const kn_op_def *d)
{
    static const kn_op_def *const defs[] = {&kn_op_max_pool,
                                            &kn_op_avg_pool,
                                            &kn_op_global_avg_pool,
                                            &kn_op_global_max_pool,
                                            &kn_op_adaptive_avg_pool2d,
                                            &kn_op_adaptive_max_pool2d,
                                            &kn_op_upsample_nearest2d,
                                            &kn_op_upsample_bilinear2d,
                                            &kn_op_batch_norm};
    for (int i = 0; i < KN_ARRAY_LEN(defs); i++)
        if (d == defs[i]) return true;
    return false;
}

static bool has_axis_attr(const kn_op_def *d)
{
    static const kn_op_def *const defs[] = {&kn_op_concat,     &kn_op_split,  &kn_op_chunk,
                                            &kn_op_slice,      &kn_op_narrow, &kn_op_softmax,
                                            &kn_op_log_softmax};
    for (int i = 0; i < KN_ARRAY_LEN(defs); i++)
        if (d == defs[i]) return true;
    return false;
}

/* The shape v had before the pass (NCHW order). */
static void logical_shape(const lay *L, int32_t v, int64_t *s)
{
    const kn_gvalue *val = &L->g->values[v];
    for (int d = 0; d < val->ndim; d++)
        s[d] = val->shape[d];
    if (tagged(L, v))
        for (int d = 0; d < 4; d++)
            s[TO_NHWC[d]] = val->shape[d];
}

/* An elementwise node joins when one of its NHWC inputs has its output's
 * shape (a small NHWC operand alone is cheaper to convert back). */
static bool elem_joins(const lay *L, const kn_gnode *n)
{
    const kn_graph *g = L->g;
    if (n->n_out != 1 || g->values[n->out[0]].ndim != 4) return false;
    bool full = false;
    for (int k = 0; k < n->n_in; k++) {
        if (n->in[k] < 0) continue;
        if (g->values[n->in[k]].ndim > 4) return false;
        int64_t s[4];
        if (!tagged(L, n->in[k])) continue;
        logical_shape(L, n->in[k], s);
        full |= !memcmp(s, g->values[n->out[0]].shape, sizeof s);
    }
    return full;
}

static role role_of(const lay *L, const kn_gnode *n)
{
    const kn_graph *g = L->g;
    if (anchor(L, n)) return R_CONV;
    bool any = false, all4 = n->n_in > 0;
    for (int k = 0; k < n->n_in; k++) {
        any |= tagged(L, n->in[k]);
        all4 &= n->in[k] >= 0 && g->values[n->in[k]].ndim == 4;
    }
    if (!any) return R_EDGE;
    const kn_op_def *d = n->def;
    bool first = tagged(L, n->in[0]);
    if (has_layout_attr(d) && first) {
        const int64_t *layout = kn__node_attr(n, "layout");
        const bool *training = kn__node_attr(n, "training");
        if (layout && *layout == KN_LAYOUT_NCHW && !(training && *training)) return R_LAYOUT;
    }
    if (is_elementwise(d) && elem_joins(L, n)) return R_ELEM;
    if (has_axis_attr(d) && all4 && kn__node_attr(n, "axis")) return R_AXIS;
    if (d == &kn_op_pad && first) return R_PAD;
    if (d == &kn_op_permute && first && is_perm(kn__node_attr(n, "perm"), TO_NHWC)) return R_CANCEL;
    return R_EDGE;
}

/* ---------------------------------------------------------------- rewrite */
static kn_status convert_inputs(lay *L, kn_gnode *n, bool nhwc)
{
    for (int k = 0; k < n->n_in; k++) {
        int32_t v = n->in[k];
        if (v < 0 || (!nhwc && !tagged(L, v))) continue;
        int32_t r = nhwc ? to_nhwc(L, v) : to_nchw(L, v);
        if (r < 0) return kn_last_status();
        n->in[k] = r;
    }
    return KN_OK;
}

static void tag_outputs(lay *L, const kn_gnode *n)
{
    for (int k = 0; k < n->n_out; k++)
        tag(L, n->out[k]);
}

static kn_status place(lay *L, kn_gnode *n)
{
    L->file = n->file, L->line = n->line;
    role r = role_of(L, n);
    kn_status s = KN_OK;
    switch (r) {
    case R_EDGE:
        return convert_inputs(L, n, false);
    case R_CONV: /* x and the residual; weights and bias keep their shapes */
        for (int k = 0; k < n->n_in && !s; k++) {
            if (k == 1 || k == 2 || n->in[k] < 0) continue;
            int32_t v = to_nhwc(L, n->in[k]);
            if (v < 0)
                s = kn_last_status();
            else
                n->in[k] = v;
        }
        if (!s) set_conv_nhwc(n);
        break;
    case R_LAYOUT:
        *(int64_t *)attr(n, "layout") = KN_LAYOUT_NHWC;
        break;
    case R_ELEM:
        s = convert_inputs(L, n, true);
        break;
    case R_AXIS: {
        s = convert_inputs(L, n, true);
        int64_t *axis = attr(n, "axis");
        if (!s && *axis >= -4 && *axis < 4)
            *axis = AXIS_NHWC[*axis < 0 ? *axis + 4 : *axis];
        else if (!s)
            return kn__error(KN_ERR_INTERNAL, "layout: axis %lld of a 4-d %s", (long long)*axis,
                             n->def->name);
        break;
    }
    case R_PAD: {
        kn_pad_attrs *at = n->attrs;
        kn_ints b = at->before, e = at->after;
        for (int d = 0; d < 4 && b.n == 4 && e.n == 4; d++)
            at->before.v[d] = b.v[TO_NHWC[d]], at->after.v[d] = e.v[TO_NHWC[d]];
        break;
    }
    case R_CANCEL: /* its output is the region value's data as it is */
        kn_free(n->attrs);
        n->attrs = NULL;
        n->def = &kn_op_contiguous;
        return KN_OK;
    }
    if (!s) tag_outputs(L, n);
    return s;
}

static kn_status rewrite(lay *L)
{
    kn_graph *g = L->g;
    kn_gnode *old = g->nodes;
    int32_t n_old = g->n_nodes;
    g->nodes = NULL, g->n_nodes = g->cap_nodes = 0;
    kn_status s = KN_OK;
    for (int32_t i = 0; i < n_old; i++) {
        kn_gnode *n = &old[i];
        if (!s && !n->dead) s = place(L, n);
        kn_status a = kn__graph_append_node(g, n);
        if (a) kn_free(n->attrs), kn_free(n->in);
        if (!s) s = a;
    }
    kn_free(old);
    for (int i = 0; i < g->n_outputs && !s; i++) {
        int32_t v = g->outputs[i];
        if (!tagged(L, v)) continue;
        const kn_gvalue *val = &g->values[v];
        if (val->kind == KN_VALUE_NODE)
            L->file = g->nodes[val->node].file, L->line = g->nodes[val->node].line;
        int32_t r = to_nchw(L, v);
        if (r < 0)
            s = kn_last_status();
        else
            g->outputs[i] = r;
    }
    return s;
}

kn_status kn__pass_layout(kn_graph *g, unsigned flags)
{
    if ((flags & KN_GRAPH_TRAINING) || kn_isa_max() < KN_ISA_AVX512) return KN_OK;
    lay L = {.g = g}; /* nothing tagged yet: anchors on NCHW inputs */
    bool any = false;
    for (int32_t i = 0; i < g->n_nodes && !any; i++)
        any = !g->nodes[i].dead && anchor(&L, &g->nodes[i]);
    if (!any) return KN_OK;
    size_t nv = (size_t)g->n_values + 1;
    L.n_orig = g->n_values;
    L.nhwc = kn_alloc(sizeof(bool) * nv);
    L.twin[0] = kn_alloc(sizeof(int32_t) * nv);
    L.twin[1] = kn_alloc(sizeof(int32_t) * nv);
    kn_status s = L.nhwc && L.twin[0] && L.twin[1] ? KN_OK : kn_last_status();
    if (!s) {
        memset(L.nhwc, 0, sizeof(bool) * nv);
        for (size_t v = 0; v < nv; v++)
            L.twin[0][v] = L.twin[1][v] = -1;
        bool was = kn_autograd_record(false);
        s = rewrite(&L);
        kn_autograd_record(was);
    }
    kn_free(L.nhwc), kn_free(L.twin[0]), kn_free(L.twin[1]);
    if (!s) s = kn__pass_infer(g, flags);  /* every rewritten shape checked by its op */
    return s ? s : kn__pass_dce(g, flags); /* a user's permute whose readers read its source */
}
