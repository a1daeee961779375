/* onnx_subgraph.c — control flow resolved while the graph is built: an If
 * whose condition is known inlines the chosen branch; a Loop whose trip
 * count and condition are known is unrolled. Subgraph nodes are converted
 * like the graph's, in a scope of their own that falls back to the
 * enclosing scopes and then to the graph's values. */
#if KILN_HAVE_ONNX
#include "onnx_model.h"

#include "../../tensor/tensor.h"

/* Most Loop iterations unrolled into one graph. */
/* Unrolling limits: iterations, and iterations x body nodes (each unrolled
 * node is traced and kept in the graph). */
#define MAX_ITERATIONS 10000
#define MAX_UNROLLED_NODES 20000

/* ---------------------------------------------------------------- scopes */
struct kn_onnx_scope {
    kn_onnx_scope *outer;
    int n, cap;
    const char **names;
    kn_tensor **t;   /* references */
    kn_onnx_seq **s; /* owned */
};

static void scope_free(kn_onnx_scope *sc)
{
    for (int i = 0; i < sc->n; i++) {
        kn_tensor_unref(sc->t[i]);
        kn__onnx_seq_free(sc->s[i]);
    }
    kn_free(sc->names), kn_free(sc->t), kn_free(sc->s);
}

/* Binds name to t (a new reference is taken) or s (owned from now on). */
static kn_status scope_add(kn_onnx_scope *sc, const char *name, kn_tensor *t, kn_onnx_seq *s)
{
    if (sc->n == sc->cap) {
        int cap = sc->cap ? 2 * sc->cap : 16;
        const char **names = kn_alloc(sizeof(char *) * (size_t)cap);
        kn_tensor **ts = kn_alloc(sizeof(kn_tensor *) * (size_t)cap);
        kn_onnx_seq **ss = kn_alloc(sizeof(kn_onnx_seq *) * (size_t)cap);
        if (!names || !ts || !ss) {
            kn_free(names), kn_free(ts), kn_free(ss);
            kn__onnx_seq_free(s);
            return kn_last_status();
        }
        if (sc->n) {
            memcpy(names, sc->names, sizeof(char *) * (size_t)sc->n);
            memcpy(ts, sc->t, sizeof(kn_tensor *) * (size_t)sc->n);
            memcpy(ss, sc->s, sizeof(kn_onnx_seq *) * (size_t)sc->n);
        }
        kn_free(sc->names), kn_free(sc->t), kn_free(sc->s);
        sc->names = names, sc->t = ts, sc->s = ss, sc->cap = cap;
    }
    sc->names[sc->n] = name;
    sc->t[sc->n] = t ? kn_tensor_ref(t) : NULL;
    sc->s[sc->n++] = s;
    return KN_OK;
}

/* The value of name: the innermost scope first, then the graph's. */
static bool scope_find(const kn_onnx_builder *b, const char *name, kn_tensor **t, kn_onnx_seq **s)
{
    for (const kn_onnx_scope *sc = b->scope; sc; sc = sc->outer)
        for (int i = sc->n - 1; i >= 0; i--)
            if (!strcmp(sc->names[i], name)) {
                *t = sc->t[i], *s = sc->s[i];
                return true;
            }
    int32_t slot = kn__onnx_lookup(b->m, name);
    if (slot < 0 || (!b->env[slot] && !b->seqs[slot])) return false;
    *t = b->env[slot], *s = b->seqs[slot];
    return true;
}

kn_onnx_seq *kn__onnx_seq_copy(const kn_onnx_seq *s)
{
    kn_onnx_seq *c = kn__onnx_seq_new();
    for (int i = 0; c && i < s->n; i++)
        if (kn__onnx_seq_insert(c, i, s->items[i])) {
            kn__onnx_seq_free(c);
            return NULL;
        }
    return c;
}

/* ---------------------------------------------------------------- running a subgraph */
static kn_status sub_node(kn_onnx_builder *b, const kn_onnx_node *parent, const Onnx__NodeProto *nd,
                          kn_onnx_scope *sc)
{
    char why[256] = "";
    int opset;
    const kn_onnx_op *op = kn__onnx_resolve(b->m, nd, &opset, why, sizeof why);
    if (!op)
        return kn__onnx_fail(parent, KN_ERR_UNSUPPORTED, "subgraph node '%s' (%s): %s",
                             kn__onnx_str(nd->name), kn__onnx_str(nd->op_type), why);
    size_t n = nd->n_input + nd->n_output + KN_ONNX_OUT_SPARE;
    kn_tensor **t = kn_alloc(sizeof(kn_tensor *) * n);
    kn_onnx_seq **sq = kn_alloc(sizeof(kn_onnx_seq *) * n);
    kn_status s = t && sq ? KN_OK : kn_last_status();
    if (!s) memset(t, 0, sizeof(kn_tensor *) * n), memset(sq, 0, sizeof(kn_onnx_seq *) * n);
    for (size_t k = 0; !s && k < nd->n_input; k++) {
        const char *name = kn__onnx_str(nd->input[k]);
        if (name[0] && !scope_find(b, name, &t[k], &sq[k]))
            s = kn__onnx_fail(parent, KN_ERR_IO,
                              "subgraph node '%s' (%s) reads '%s', which is not defined",
                              kn__onnx_str(nd->name), kn__onnx_str(nd->op_type), name);
    }
    int n_in = (int)nd->n_input;
    if (!s) s = kn__onnx_convert(b, nd, op, opset, t, sq, t + n_in, sq + n_in);
    for (size_t k = 0; t && sq && k < nd->n_output; k++) {
        const char *name = kn__onnx_str(nd->output[k]);
        kn_tensor *out = t[n_in + k];
        kn_onnx_seq *oseq = sq[n_in + k];
        if (!s && name[0] && (out || oseq)) s = scope_add(sc, name, out, oseq), oseq = NULL;
        kn_tensor_unref(out);
        kn__onnx_seq_free(oseq);
    }
    kn_free(t), kn_free(sq);
    return s;
}

kn_status kn__onnx_subgraph(const kn_onnx_node *n, const Onnx__GraphProto *g, int n_in,
                            kn_tensor *const *in_t, kn_onnx_seq *const *in_s, int n_out,
                            kn_tensor **out_t, kn_onnx_seq **out_s)
{
    kn_onnx_builder *b = kn__onnx_current;
    for (int k = 0; k < n_out; k++)
        out_t[k] = NULL, out_s[k] = NULL;
    if (!b) return kn__onnx_fail(n, KN_ERR_INTERNAL, "no graph is being built");
    if ((int)g->n_input != n_in || (int)g->n_output != n_out)
        return kn__onnx_fail(n, KN_ERR_IO,
                             "subgraph '%s' has %zu inputs and %zu outputs, expected %d and %d",
                             kn__onnx_str(g->name), g->n_input, g->n_output, n_in, n_out);
    if (b->depth >= KN_ONNX_MAX_DEPTH)
        return kn__onnx_fail(n, KN_ERR_UNSUPPORTED, "subgraphs nested more than %d deep",
                             KN_ONNX_MAX_DEPTH);
    kn_onnx_scope sc = {.outer = b->scope};
    kn_status s = KN_OK;
    for (int i = 0; !s && i < n_in; i++) {
        kn_onnx_seq *copy = in_s && in_s[i] ? kn__onnx_seq_copy(in_s[i]) : NULL;
        if (in_s && in_s[i] && !copy)
            s = kn_last_status();
        else
            s = scope_add(&sc, kn__onnx_str(g->input[i]->name), in_t ? in_t[i] : NULL, copy);
    }
    for (size_t i = 0; !s && i < g->n_initializer; i++) {
        kn_tensor *t = kn__onnx_tensor_from_proto(g->initializer[i], b->m->base_dir);
        s = t ? scope_add(&sc, kn__onnx_str(g->initializer[i]->name), t, NULL) : kn_last_status();
        kn_tensor_unref(t);
    }
    kn_onnx_scope *saved = b->scope;
    b->scope = &sc;
    b->depth++;
    for (size_t i = 0; !s && i < g->n_node; i++)
        s = sub_node(b, n, g->node[i], &sc);
    for (int k = 0; !s && k < n_out; k++) {
        kn_tensor *t;
        kn_onnx_seq *q;
        const char *name = kn__onnx_str(g->output[k]->name);
        if (!scope_find(b, name, &t, &q))
            s = kn__onnx_fail(n, KN_ERR_IO, "subgraph output '%s' is not defined", name);
        else if (q && !(out_s[k] = kn__onnx_seq_copy(q)))
            s = kn_last_status();
        else
            out_t[k] = t ? kn_tensor_ref(t) : NULL;
    }
    b->depth--;
    b->scope = saved;
    scope_free(&sc);
    if (s)
        for (int k = 0; k < n_out; k++) {
            kn_tensor_unref(out_t[k]), out_t[k] = NULL;
            kn__onnx_seq_free(out_s[k]), out_s[k] = NULL;
        }
    return s;
}

kn_onnx_seq *kn__onnx_peek_seq(const kn_onnx_node *n, int i)
{
    kn_onnx_builder *b = kn__onnx_current;
    return b && b->cur_in_seqs && i >= 0 && i < n->n_in ? b->cur_in_seqs[i] : NULL;
}

/* ---------------------------------------------------------------- If */
static const Onnx__GraphProto *graph_attr(const kn_onnx_node *n, const char *name)
{
    const Onnx__AttributeProto *a = kn__onnx_attr(n, name);
    return a ? a->g : NULL;
}

/* A boolean/number input that must be known now (the condition, the trip
 * count): its value, or an error (and the model input it comes from is
 * baked in on the next build). */
static kn_status known_scalar(const kn_onnx_node *n, kn_tensor *t, const char *what, double *v)
{
    if (!kn__onnx_is_const(t)) {
        kn__onnx_want_const(t);
        return kn__onnx_fail(n, KN_ERR_UNSUPPORTED,
                             "the %s must be known while the graph is built (it depends on the "
                             "model's inputs in a way kiln cannot resolve)",
                             what);
    }
    if (kn_tensor_numel(t) != 1)
        return kn__onnx_fail(n, KN_ERR_SHAPE, "the %s must hold one value", what);
    return kn_tensor_item(t, v) ? kn__onnx_fail(n, kn_last_status(), "%s", kn_last_error()) : KN_OK;
}

static kn_status set_outputs(kn_onnx_node *n, int count, kn_tensor **t, kn_onnx_seq **q)
{
    kn_status s = KN_OK;
    for (int k = 0; k < count; k++) {
        if (k < n->n_out) n->out[k] = t[k], t[k] = NULL;
        if (q[k] && !s)
            s = kn__onnx_out_seq(n, k, q[k]);
        else
            kn__onnx_seq_free(q[k]);
        q[k] = NULL;
        kn_tensor_unref(t[k]);
    }
    return s;
}

kn_status kn__onnx_convert_if(kn_onnx_node *n)
{
    double cond;
    if (n->n_in < 1 || !n->in[0]) return kn__onnx_fail(n, KN_ERR_ARG, "input 0 (cond) is missing");
    if (known_scalar(n, n->in[0], "condition", &cond)) return kn_last_status();
    const Onnx__GraphProto *g = graph_attr(n, cond != 0 ? "then_branch" : "else_branch");
    if (!g)
        return kn__onnx_fail(n, KN_ERR_IO, "the %s is missing",
                             cond != 0 ? "then_branch" : "else_branch");
    int n_out = n->n_out;
    kn_tensor **t = kn_alloc(sizeof(kn_tensor *) * (size_t)(n_out + 1));
    kn_onnx_seq **q = kn_alloc(sizeof(kn_onnx_seq *) * (size_t)(n_out + 1));
    kn_status s = t && q ? kn__onnx_subgraph(n, g, 0, NULL, NULL, n_out, t, q) : kn_last_status();
    if (!s) s = set_outputs(n, n_out, t, q);
    kn_free(t), kn_free(q);
    return s;
}

/* ---------------------------------------------------------------- Loop */
typedef struct loop_state {
    int n_carried, n_scan;
    kn_tensor **carried_t;
    kn_onnx_seq **carried_s;
    kn_tensor ***scans; /* per scan output: one tensor per iteration */
    int64_t iterations;
} loop_state;

static void loop_free(loop_state *ls, int64_t cap)
{
    for (int k = 0; ls->carried_t && ls->carried_s && k < ls->n_carried; k++) {
        kn_tensor_unref(ls->carried_t[k]);
        kn__onnx_seq_free(ls->carried_s[k]);
    }
    for (int k = 0; ls->scans && k < ls->n_scan; k++) {
        for (int64_t i = 0; ls->scans[k] && i < ls->iterations && i < cap; i++)
            kn_tensor_unref(ls->scans[k][i]);
        kn_free(ls->scans[k]);
    }
    kn_free(ls->carried_t), kn_free(ls->carried_s), kn_free(ls->scans);
}

/* Runs the body once: iteration i with condition cond; updates the carried
 * values, appends the scan outputs, and sets *cond from the body. */
static kn_status loop_step(kn_onnx_node *n, const Onnx__GraphProto *body, loop_state *ls,
                           bool use_cond, bool *cond)
{
    int n_in = 2 + ls->n_carried, n_out = 1 + ls->n_carried + ls->n_scan;
    kn_tensor **in = kn_alloc(sizeof(kn_tensor *) * (size_t)(n_in + n_out));
    kn_onnx_seq **in_s = kn_alloc(sizeof(kn_onnx_seq *) * (size_t)(n_in + n_out));
    if (!in || !in_s) {
        kn_free(in), kn_free(in_s);
        return kn_last_status();
    }
    kn_tensor **out = in + n_in;
    kn_onnx_seq **out_s = in_s + n_in;
    memset(in, 0, sizeof(kn_tensor *) * (size_t)(n_in + n_out));
    memset(in_s, 0, sizeof(kn_onnx_seq *) * (size_t)(n_in + n_out));
    in[0] = kn_tensor_scalar(KN_I64, (double)ls->iterations);
    in[1] = kn_tensor_scalar(KN_BOOL, *cond);
    for (int k = 0; k < ls->n_carried; k++)
        in[2 + k] = ls->carried_t[k], in_s[2 + k] = ls->carried_s[k];
    kn_status s = in[0] && in[1] ? kn__onnx_subgraph(n, body, n_in, in, in_s, n_out, out, out_s)
                                 : kn_last_status();
    kn_tensor_unref(in[0]), kn_tensor_unref(in[1]);
    double c = 1;
    if (!s && use_cond && out[0])
        s = known_scalar(n, out[0], "loop condition computed by the body", &c);
    for (int k = 0; !s && k < ls->n_carried; k++) { /* the new carried values */
        kn_tensor_unref(ls->carried_t[k]);
        kn__onnx_seq_free(ls->carried_s[k]);
        ls->carried_t[k] = out[1 + k], ls->carried_s[k] = out_s[1 + k];
        out[1 + k] = NULL, out_s[1 + k] = NULL;
    }
    for (int k = 0; !s && k < ls->n_scan; k++) {
        kn_tensor *t = out[1 + ls->n_carried + k];
        if (!t)
            s = kn__onnx_fail(n, KN_ERR_UNSUPPORTED, "scan output %d is not a tensor", k);
        else
            ls->scans[k][ls->iterations] = t, out[1 + ls->n_carried + k] = NULL;
    }
    for (int k = 0; k < n_out; k++)
        kn_tensor_unref(out[k]), kn__onnx_seq_free(out_s[k]);
    kn_free(in), kn_free(in_s);
    if (!s) ls->iterations++, *cond = c != 0;
    return s;
}

kn_status kn__onnx_convert_loop(kn_onnx_node *n)
{
    const Onnx__GraphProto *body = graph_attr(n, "body");
    if (!body) return kn__onnx_fail(n, KN_ERR_IO, "the body is missing");
    double trip = -1, c = 1;
    kn_tensor *m = n->n_in > 0 ? n->in[0] : NULL, *cond_in = n->n_in > 1 ? n->in[1] : NULL;
    if (m && known_scalar(n, m, "trip count", &trip)) return kn_last_status();
    if (cond_in && known_scalar(n, cond_in, "condition", &c)) return kn_last_status();
    if (!m && !cond_in)
        return kn__onnx_fail(n, KN_ERR_UNSUPPORTED, "a loop without a trip count or condition");
    int64_t max =
        m ? (trip > MAX_ITERATIONS ? MAX_ITERATIONS + 1 : (int64_t)trip) : MAX_ITERATIONS + 1;
    loop_state ls = {0};
    ls.n_carried = n->n_in - 2 > 0 ? n->n_in - 2 : 0;
    ls.n_scan = n->n_out - ls.n_carried;
    if (ls.n_scan < 0 || (int)body->n_output != 1 + ls.n_carried + ls.n_scan)
        return kn__onnx_fail(n, KN_ERR_IO, "the body has %zu outputs, expected %d", body->n_output,
                             1 + n->n_out);
    int64_t cap = max < 64 ? (max > 0 ? max : 1) : 64; /* scan storage grows below */
    ls.carried_t = kn_alloc(sizeof(kn_tensor *) * (size_t)(ls.n_carried + 1));
    ls.carried_s = kn_alloc(sizeof(kn_onnx_seq *) * (size_t)(ls.n_carried + 1));
    ls.scans = kn_alloc(sizeof(kn_tensor **) * (size_t)(ls.n_scan + 1));
    kn_status s = ls.carried_t && ls.carried_s && ls.scans ? KN_OK : kn_last_status();
    if (ls.scans) memset(ls.scans, 0, sizeof(kn_tensor **) * (size_t)(ls.n_scan + 1));
    if (ls.carried_t) memset(ls.carried_t, 0, sizeof(kn_tensor *) * (size_t)(ls.n_carried + 1));
    if (ls.carried_s) memset(ls.carried_s, 0, sizeof(kn_onnx_seq *) * (size_t)(ls.n_carried + 1));
    for (int k = 0; !s && k < ls.n_carried; k++) {
        kn_onnx_seq *q = kn__onnx_peek_seq(n, 2 + k);
        ls.carried_t[k] = n->in[2 + k] ? kn_tensor_ref(n->in[2 + k]) : NULL;
        ls.carried_s[k] = q ? kn__onnx_seq_copy(q) : NULL;
        if (q && !ls.carried_s[k])
            s = kn_last_status();
        else if (!ls.carried_t[k] && !q)
            s = kn__onnx_fail(n, KN_ERR_UNSUPPORTED, "loop-carried value %d is missing", k);
    }
    for (int k = 0; !s && k < ls.n_scan; k++)
        if (!(ls.scans[k] = kn_alloc(sizeof(kn_tensor *) * (size_t)cap))) s = kn_last_status();
    bool cond = c != 0;
    int64_t per = body->n_node > 0 ? (int64_t)body->n_node : 1;
    while (!s && ls.iterations < max && cond) {
        if (ls.iterations >= MAX_ITERATIONS || (ls.iterations + 1) * per > MAX_UNROLLED_NODES) {
            s = kn__onnx_fail(n, KN_ERR_UNSUPPORTED,
                              "more than %d iterations or %d unrolled nodes (body of %lld nodes)",
                              MAX_ITERATIONS, MAX_UNROLLED_NODES, (long long)per);
            break;
        }
        if (ls.iterations == cap) { /* room for more scan outputs */
            for (int k = 0; !s && k < ls.n_scan; k++) {
                kn_tensor **more = kn_alloc(sizeof(kn_tensor *) * (size_t)(2 * cap));
                if (!more)
                    s = kn_last_status();
                else {
                    memcpy(more, ls.scans[k], sizeof(kn_tensor *) * (size_t)cap);
                    kn_free(ls.scans[k]);
                    ls.scans[k] = more;
                }
            }
            if (s) break;
            cap *= 2;
        }
        s = loop_step(n, body, &ls, cond_in != NULL, &cond);
    }
    for (int k = 0; !s && k < ls.n_carried; k++) {
        if (k < n->n_out) n->out[k] = ls.carried_t[k], ls.carried_t[k] = NULL;
        if (ls.carried_s[k]) s = kn__onnx_out_seq(n, k, ls.carried_s[k]), ls.carried_s[k] = NULL;
    }
    for (int k = 0; !s && k < ls.n_scan; k++) {
        if (!ls.iterations) {
            s = kn__onnx_fail(
                n, KN_ERR_UNSUPPORTED,
                "a loop that runs no iteration has empty scan outputs of unknown shape");
            break;
        }
        n->out[ls.n_carried + k] = kn_stack((int)ls.iterations, ls.scans[k], 0);
        if (!n->out[ls.n_carried + k]) s = kn_last_status();
    }
    loop_free(&ls, cap);
    return s;
}
#endif
