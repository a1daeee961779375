/* onnx_model.c — loading an ONNX model: parse (protobuf-c over kn_alloc),
 * validate (IR version, opsets, names defined before use, types,
 * initializers) and check every node against the converter tables, listing
 * all unsupported nodes in one error. Relies on onnx_build.c to turn the
 * model into kiln graphs per input signature. */
#if KILN_HAVE_ONNX
#include "onnx_model.h"

#include "../json.h"

#include <stdarg.h>

/* ---------------------------------------------------------------- names */
static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

int32_t kn__onnx_lookup(const kn_onnx_model *m, const char *name)
{
    if (!name || !name[0] || !m->cap_names) return -1;
    size_t mask = m->cap_names - 1;
    for (size_t i = hash_str(name) & mask;; i = (i + 1) & mask) {
        if (m->name_slot[i] < 0) return -1;
        if (!strcmp(m->slots[m->name_slot[i]].name, name)) return m->name_slot[i];
    }
}

/* Adds a new name (which must not exist) as the next slot. */
static int32_t add_name(kn_onnx_model *m, const char *name, int producer)
{
    size_t mask = m->cap_names - 1, i = hash_str(name) & mask;
    while (m->name_slot[i] >= 0)
        i = (i + 1) & mask;
    int32_t s = m->n_slots++;
    m->name_slot[i] = s;
    m->slots[s].name = name;
    m->slots[s].producer = producer;
    m->slots[s].uses = 0;
    m->slots[s].init = -1;
    return s;
}

/* ---------------------------------------------------------------- unsupported list */
typedef struct unsup {
    kn_strbuf nodes, other;
    int n_nodes, n_other;
} unsup;

static void unsup_add(unsup *u, bool node, const char *fmt, ...) KN_PRINTF(3, 4);
static void unsup_add(unsup *u, bool node, const char *fmt, ...)
{
    char item[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(item, sizeof item, fmt, ap);
    va_end(ap);
    kn_strbuf *sb = node ? &u->nodes : &u->other;
    kn__sb_printf(sb, "%s%s", sb->len ? "; " : "", item);
    *(node ? &u->n_nodes : &u->n_other) += 1;
}

static kn_status unsup_report(unsup *u)
{
    kn_status s = KN_OK;
    if (u->nodes.failed || u->other.failed)
        s = kn__error(KN_ERR_NOMEM, "onnx: out of memory");
    else if (u->n_nodes || u->n_other) {
        char other[64] = "";
        if (u->n_other)
            snprintf(other, sizeof other, "%s%d unsupported value%s: ", u->n_nodes ? "; " : "",
                     u->n_other, u->n_other > 1 ? "s" : "");
        char nodes[64] = "";
        if (u->n_nodes)
            snprintf(nodes, sizeof nodes, "%d unsupported node%s: ", u->n_nodes,
                     u->n_nodes > 1 ? "s" : "");
        s = kn__error(KN_ERR_UNSUPPORTED, "onnx: %s%s%s%s", nodes, u->n_nodes ? u->nodes.data : "",
                      other, u->n_other ? u->other.data : "");
    }
    kn__sb_free(&u->nodes), kn__sb_free(&u->other);
    return s;
}

/* ---------------------------------------------------------------- types */
/* A value's declared tensor type: dtype (false when kiln lacks it, with
 * the reason in why), rank (-1 unknown) and dims (-1 dynamic). */
static bool read_type(const Onnx__ValueInfoProto *vi, kn_onnx_io *io, char *why, size_t why_size)
{
    io->name = kn__onnx_str(vi->name);
    io->has_dtype = false;
    io->ndim = -1;
    const Onnx__TypeProto *tp = vi->type;
    if (!tp) return true; /* untyped (allowed for outputs) */
    if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type) {
        snprintf(
            why, why_size,
            "is not a tensor (sequences, maps, optionals and sparse tensors are not supported)");
        return false;
    }
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    if (tt->has_elem_type && tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__UNDEFINED) {
        if (!kn__onnx_dtype(tt->elem_type, &io->dtype)) {
            snprintf(why, why_size, "dtype %s is not supported by kiln",
                     kn__onnx_type_name(tt->elem_type));
            return false;
        }
        io->has_dtype = true;
    }
    if (!tt->shape) return true;
    if (tt->shape->n_dim > KN_MAX_DIMS) {
        snprintf(why, why_size, "has %zu dims, kiln allows %d", tt->shape->n_dim, KN_MAX_DIMS);
        return false;
    }
    io->ndim = (int)tt->shape->n_dim;
    for (int d = 0; d < io->ndim; d++) {
        const Onnx__TensorShapeProto__Dimension *dim = tt->shape->dim[d];
        bool fixed = dim && dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        io->shape[d] = fixed ? dim->dim_value : -1;
        if (fixed && dim->dim_value < 0) {
            snprintf(why, why_size, "has a negative dim (%lld)", (long long)dim->dim_value);
            return false;
        }
    }
    return true;
}

/* ---------------------------------------------------------------- validation */
static kn_status check_header(kn_onnx_model *m)
{
    const Onnx__ModelProto *p = m->proto;
    if (!p->has_ir_version || p->ir_version < 3 || p->ir_version > 10)
        return kn__error(KN_ERR_UNSUPPORTED, "onnx: ir_version %lld is not supported (3 to 10)",
                         p->has_ir_version ? (long long)p->ir_version : 0LL);
    if (!p->graph) return kn__error(KN_ERR_IO, "onnx: the model has no graph");
    m->opset = 0;
    for (size_t i = 0; i < p->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = p->opset_import[i];
        if (!o || !kn__onnx_default_domain(o->domain)) continue;
        if (m->opset)
            return kn__error(KN_ERR_IO, "onnx: the default domain's opset is imported twice");
        int64_t v = o->has_version ? o->version : 0;
        if (v < KN_ONNX_MIN_OPSET || v > KN_ONNX_MAX_OPSET)
            return kn__error(KN_ERR_UNSUPPORTED,
                             "onnx: opset %lld of the default domain is not supported (%d to %d)",
                             (long long)v, KN_ONNX_MIN_OPSET, KN_ONNX_MAX_OPSET);
        m->opset = (int)v;
    }
    return KN_OK;
}

/* The opset a node's domain is imported at, or 0. */
static int domain_opset(const kn_onnx_model *m, const char *domain)
{
    if (kn__onnx_default_domain(domain)) return m->opset;
    for (size_t i = 0; i < m->proto->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = m->proto->opset_import[i];
        if (o && o->domain && !strcmp(o->domain, domain))
            return o->has_version && o->version > 0 && o->version < INT32_MAX ? (int)o->version : 0;
    }
    return 0;
}

static kn_status alloc_tables(kn_onnx_model *m)
{
    const Onnx__GraphProto *g = m->proto->graph;
    size_t n = g->n_initializer + g->n_input + 1, io = 0;
    for (size_t i = 0; i < g->n_node; i++)
        n += g->node[i]->n_output, io += g->node[i]->n_input + g->node[i]->n_output;
    if (n > INT32_MAX / 4 || io > INT32_MAX / 2 || g->n_node > INT32_MAX / 2)
        return kn__error(KN_ERR_IO, "onnx: the graph is too large");
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    m->cap_names = cap;
    m->name_slot = kn_alloc(sizeof(int32_t) * cap);
    m->slots = kn_alloc(sizeof(kn_onnx_slot) * n);
    m->node_io = kn_alloc(sizeof(int32_t) * (io + 1));
    m->node_op = kn_alloc(sizeof(kn_onnx_op *) * (g->n_node + 1));
    m->node_opset = kn_alloc(sizeof(int) * (g->n_node + 1));
    m->init = kn_alloc(sizeof(kn_tensor *) * (g->n_initializer + 1));
    m->inputs = kn_alloc(sizeof(kn_onnx_io) * (g->n_input + 1));
    m->outputs = kn_alloc(sizeof(kn_onnx_io) * (g->n_output + 1));
    m->bake = kn_alloc(sizeof(bool) * (g->n_input + 1));
    if (!m->name_slot || !m->slots || !m->node_io || !m->node_op || !m->node_opset || !m->init ||
        !m->inputs || !m->outputs || !m->bake)
        return kn_last_status();
    memset(m->name_slot, 0xff, sizeof(int32_t) * cap); /* -1 */
    memset(m->bake, 0, sizeof(bool) * (g->n_input + 1));
    memset(m->init, 0, sizeof(kn_tensor *) * (g->n_initializer + 1));
    memset(m->node_op, 0, sizeof(kn_onnx_op *) * (g->n_node + 1));
    return KN_OK;
}

/* Frees an initializer's data in the proto once it lives in a kiln
 * tensor, so a model's weights are held once. */
static void drop_proto_data(kn_onnx_model *m, Onnx__TensorProto *t)
{
    ProtobufCAllocator *a = &m->pa.a;
    if (t->has_raw_data) a->free(a->allocator_data, t->raw_data.data);
    a->free(a->allocator_data, t->float_data), a->free(a->allocator_data, t->int32_data);
    a->free(a->allocator_data, t->int64_data), a->free(a->allocator_data, t->double_data);
    t->raw_data.data = NULL, t->raw_data.len = 0, t->has_raw_data = false;
    t->float_data = NULL, t->int32_data = NULL, t->int64_data = NULL, t->double_data = NULL;
    t->n_float_data = t->n_int32_data = t->n_int64_data = t->n_double_data = 0;
}

static kn_status load_initializers(kn_onnx_model *m, unsup *u)
{
    const Onnx__GraphProto *g = m->proto->graph;
    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *t = g->initializer[i];
        const char *name = t ? kn__onnx_str(t->name) : "";
        if (!name[0]) return kn__error(KN_ERR_IO, "onnx: initializer %zu has no name", i);
        if (kn__onnx_lookup(m, name) >= 0)
            return kn__error(KN_ERR_IO, "onnx: initializer '%s' is defined twice", name);
        int32_t s = add_name(m, name, -1);
        m->slots[s].init = (int32_t)i;
        m->n_init = (int)i + 1;
        if (!(m->init[i] = kn__onnx_tensor_from_proto(t, m->base_dir))) {
            if (kn_last_status() != KN_ERR_UNSUPPORTED) return kn_last_status();
            unsup_add(u, false, "initializer '%s': %s", name, kn_last_error());
        } else {
            drop_proto_data(m, g->initializer[i]);
        }
    }
    for (size_t i = 0; i < g->n_sparse_initializer; i++)
        unsup_add(u, false, "sparse initializer %zu: sparse tensors are not supported", i);
    return KN_OK;
}

static kn_status load_inputs(kn_onnx_model *m, unsup *u)
{
    const Onnx__GraphProto *g = m->proto->graph;
    char why[256];
    for (size_t i = 0; i < g->n_input; i++) {
        const char *name = kn__onnx_str(g->input[i]->name);
        if (!name[0]) return kn__error(KN_ERR_IO, "onnx: graph input %zu has no name", i);
        int32_t s = kn__onnx_lookup(m, name);
        if (s >= 0 && m->slots[s].init >= 0) continue; /* an initializer's default value */
        if (s >= 0) return kn__error(KN_ERR_IO, "onnx: graph input '%s' is listed twice", name);
        kn_onnx_io *io = &m->inputs[m->n_inputs];
        if (!read_type(g->input[i], io, why, sizeof why))
            unsup_add(u, false, "input '%s' %s", name, why);
        else if (!io->has_dtype)
            return kn__error(KN_ERR_IO, "onnx: graph input '%s' has no dtype", name);
        io->slot = add_name(m, name, -1);
        m->n_inputs++;
    }
    return KN_OK;
}

static void node_label(const Onnx__NodeProto *nd, size_t i, int opset, char *buf, size_t size)
{
    const char *dom = kn__onnx_default_domain(nd->domain) ? "" : nd->domain;
    if (nd->name && nd->name[0])
        snprintf(buf, size, "'%s' (%s%s%s, opset %d)", nd->name, dom, dom[0] ? "." : "",
                 kn__onnx_str(nd->op_type), opset);
    else
        snprintf(buf, size, "node %zu (%s%s%s, opset %d)", i, dom, dom[0] ? "." : "",
                 kn__onnx_str(nd->op_type), opset);
}

/* Names every node output (unique across the graph) before any input is
 * resolved, so a read before the producer is told apart from an undefined
 * name. */
static kn_status define_outputs(kn_onnx_model *m)
{
    const Onnx__GraphProto *g = m->proto->graph;
    char label[300];
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *nd = g->node[i];
        for (size_t k = 0; k < nd->n_output; k++) {
            const char *name = kn__onnx_str(nd->output[k]);
            if (!name[0]) continue;
            if (kn__onnx_lookup(m, name) >= 0) {
                node_label(nd, i, domain_opset(m, nd->domain), label, sizeof label);
                return kn__error(KN_ERR_IO, "onnx: node %s: output '%s' is already defined", label,
                                 name);
            }
            add_name(m, name, (int)i);
        }
    }
    return KN_OK;
}

/* Resolves node i's input and output names into node_io (-1: omitted). */
static kn_status resolve_node(kn_onnx_model *m, size_t i, size_t *pos)
{
    const Onnx__NodeProto *nd = m->proto->graph->node[i];
    char label[300];
    node_label(nd, i, domain_opset(m, nd->domain), label, sizeof label);
    m->node_start[i] = (int32_t)*pos;
    for (size_t k = 0; k < nd->n_input; k++) {
        const char *name = kn__onnx_str(nd->input[k]);
        int32_t s = kn__onnx_lookup(m, name);
        if (name[0] && s < 0)
            return kn__error(KN_ERR_IO, "onnx: node %s: input '%s' is not defined", label, name);
        if (s >= 0 && m->slots[s].producer >= (int)i)
            return kn__error(KN_ERR_IO,
                             "onnx: node %s reads '%s' before node %d makes it (the graph "
                             "has a cycle or is not in topological order)",
                             label, name, m->slots[s].producer);
        if (s >= 0) m->slots[s].uses++;
        m->node_io[(*pos)++] = s;
    }
    for (size_t k = 0; k < nd->n_output; k++)
        m->node_io[(*pos)++] = kn__onnx_lookup(m, kn__onnx_str(nd->output[k]));
    return KN_OK;
}

const kn_onnx_op *kn__onnx_resolve(const kn_onnx_model *m, const Onnx__NodeProto *nd,
                                   int *conv_opset, char *why, size_t why_size)
{
    const char *op = kn__onnx_str(nd->op_type);
    int opset = domain_opset(m, nd->domain);
    int conv = opset && kn__onnx_default_domain(nd->domain)
                   ? kn__onnx_legacy_opset(nd, opset, why, why_size)
                   : opset;
    *conv_opset = conv;
    const kn_onnx_op *e = conv && op[0] ? kn__onnx_find_op(nd->domain, op, conv) : NULL;
    if (!op[0])
        snprintf(why, why_size, "no op_type");
    else if (!opset)
        snprintf(why, why_size, "its domain '%s' is not imported", kn__onnx_str(nd->domain));
    else if (!conv) {
    } else if (!e) {
        int first = kn__onnx_op_first_since(nd->domain, op);
        if (first)
            snprintf(why, why_size, "converted from opset %d only", first);
        else
            snprintf(why, why_size, "not implemented");
    } else if (e->check && !e->check(nd, conv, why, why_size)) {
        if (!why[0]) snprintf(why, why_size, "not supported");
        e = NULL;
    }
    return e;
}

/* ---------------------------------------------------------------- subgraphs
 * If branches and Loop bodies read names of the enclosing graphs: those
 * count as reads by the node holding the subgraph (kept alive until it is
 * converted), and the subgraphs' nodes are checked like the graph's. */
typedef struct name_list {
    const char **names;
    int n, cap;
} name_list;

static bool nl_has(const name_list *l, const char *name)
{
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->names[i], name)) return true;
    return false;
}

/* Appends name (even when present). */
static kn_status nl_push(name_list *l, const char *name)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        const char **names = kn_alloc(sizeof(char *) * (size_t)cap);
        if (!names) return kn_last_status();
        if (l->n) memcpy(names, l->names, sizeof(char *) * (size_t)l->n);
        kn_free(l->names);
        l->names = names, l->cap = cap;
    }
    l->names[l->n++] = name;
    return KN_OK;
}

/* Appends a non-empty name not yet present. */
static kn_status nl_add(name_list *l, const char *name)
{
    return !name || !name[0] || nl_has(l, name) ? KN_OK : nl_push(l, name);
}

static kn_status graph_refs(const Onnx__GraphProto *g, name_list *refs, int depth);

/* The outer names the subgraphs of node nd read, added to refs unless
 * local (defined in the graph holding nd). */
static kn_status node_subgraph_refs(const Onnx__NodeProto *nd, const name_list *local,
                                    name_list *refs, int depth)
{
    for (size_t a = 0; a < nd->n_attribute; a++) {
        const Onnx__AttributeProto *at = nd->attribute[a];
        size_t n_g = at->g ? 1 : 0;
        for (size_t k = 0; k < n_g + at->n_graphs; k++) {
            const Onnx__GraphProto *sub = k < n_g ? at->g : at->graphs[k - n_g];
            name_list inner = {0};
            kn_status s = graph_refs(sub, &inner, depth + 1);
            for (int i = 0; !s && i < inner.n; i++)
                if (!local || !nl_has(local, inner.names[i])) s = nl_add(refs, inner.names[i]);
            kn_free(inner.names);
            if (s) return s;
        }
    }
    return KN_OK;
}

/* The names g reads without defining them (its own subgraphs included). */
static kn_status graph_refs(const Onnx__GraphProto *g, name_list *refs, int depth)
{
    if (depth > KN_ONNX_MAX_DEPTH)
        return kn__error(KN_ERR_UNSUPPORTED, "onnx: subgraphs nested more than %d deep",
                         KN_ONNX_MAX_DEPTH);
    name_list local = {0};
    kn_status s = KN_OK;
    for (size_t i = 0; !s && i < g->n_input; i++)
        s = nl_add(&local, g->input[i]->name);
    for (size_t i = 0; !s && i < g->n_initializer; i++)
        s = nl_add(&local, g->initializer[i]->name);
    for (size_t i = 0; !s && i < g->n_node; i++)
        for (size_t k = 0; !s && k < g->node[i]->n_output; k++)
            s = nl_add(&local, g->node[i]->output[k]);
    for (size_t i = 0; !s && i < g->n_node; i++) {
        const Onnx__NodeProto *nd = g->node[i];
        for (size_t k = 0; !s && k < nd->n_input; k++)
            if (nd->input[k] && nd->input[k][0] && !nl_has(&local, nd->input[k]))
                s = nl_add(refs, nd->input[k]);
        if (!s) s = node_subgraph_refs(nd, &local, refs, depth);
    }
    for (size_t i = 0; !s && i < g->n_output; i++)
        if (g->output[i]->name && !nl_has(&local, g->output[i]->name))
            s = nl_add(refs, g->output[i]->name);
    kn_free(local.names);
    return s;
}

/* Adds every unsupported node of node nd's subgraphs to the list. */
static kn_status check_subgraphs(kn_onnx_model *m, const Onnx__NodeProto *nd, const char *label,
                                 unsup *u, int depth)
{
    if (depth > KN_ONNX_MAX_DEPTH)
        return kn__error(KN_ERR_UNSUPPORTED, "onnx: subgraphs nested more than %d deep",
                         KN_ONNX_MAX_DEPTH);
    for (size_t a = 0; a < nd->n_attribute; a++) {
        const Onnx__AttributeProto *at = nd->attribute[a];
        size_t n_g = at->g ? 1 : 0;
        for (size_t k = 0; k < n_g + at->n_graphs; k++) {
            const Onnx__GraphProto *sub = k < n_g ? at->g : at->graphs[k - n_g];
            for (size_t i = 0; i < sub->n_node; i++) {
                const Onnx__NodeProto *sn = sub->node[i];
                char why[256] = "", sub_label[300];
                int conv;
                snprintf(sub_label, sizeof sub_label, "%.120s/%.40s/%.80s#%zu", label,
                         kn__onnx_str(at->name),
                         sn->name && sn->name[0] ? sn->name : kn__onnx_str(sn->op_type), i);
                if (!kn__onnx_resolve(m, sn, &conv, why, sizeof why))
                    unsup_add(u, true, "'%s' (%s, opset %d): %s", sub_label,
                              kn__onnx_str(sn->op_type), domain_opset(m, sn->domain), why);
                if (check_subgraphs(m, sn, sub_label, u, depth + 1)) return kn_last_status();
            }
        }
    }
    return KN_OK;
}

/* The slots node i's subgraphs read from the graph (implicit inputs). */
static kn_status implicit_inputs(kn_onnx_model *m, size_t i, name_list *all)
{
    const Onnx__NodeProto *nd = m->proto->graph->node[i];
    name_list refs = {0};
    kn_status s = node_subgraph_refs(nd, NULL, &refs, 0);
    for (int k = 0; !s && k < refs.n; k++) {
        int32_t slot = kn__onnx_lookup(m, refs.names[k]);
        char label[300];
        node_label(nd, i, domain_opset(m, nd->domain), label, sizeof label);
        if (slot < 0)
            s = kn__error(KN_ERR_IO, "onnx: node %s: a subgraph reads '%s', which is not defined",
                          label, refs.names[k]);
        else if (m->slots[slot].producer >= (int)i)
            s = kn__error(KN_ERR_IO, "onnx: node %s: a subgraph reads '%s' before node %d makes it",
                          label, refs.names[k], m->slots[slot].producer);
        else {
            m->slots[slot].uses++;
            s = nl_push(all, m->slots[slot].name);
        }
    }
    kn_free(refs.names);
    return s;
}

/* Finds node i's converter, or adds it to the unsupported list. */
static kn_status check_node(kn_onnx_model *m, size_t i, unsup *u)
{
    const Onnx__NodeProto *nd = m->proto->graph->node[i];
    char label[300], why[256] = "";
    node_label(nd, i, domain_opset(m, nd->domain), label, sizeof label);
    if (!kn__onnx_str(nd->op_type)[0])
        return kn__error(KN_ERR_IO, "onnx: node %s has no op_type", label);
    const kn_onnx_op *e = kn__onnx_resolve(m, nd, &m->node_opset[i], why, sizeof why);
    if (!e) unsup_add(u, true, "%s: %s", label, why);
    m->node_op[i] = e;
    return check_subgraphs(m, nd, nd->name && nd->name[0] ? nd->name : kn__onnx_str(nd->op_type), u,
                           0);
}

static kn_status load_nodes(kn_onnx_model *m, unsup *u)
{
    const Onnx__GraphProto *g = m->proto->graph;
    m->node_start = kn_alloc(sizeof(int32_t) * (g->n_node + 1));
    if (!m->node_start) return kn_last_status();
    if (define_outputs(m)) return kn_last_status();
    size_t pos = 0;
    name_list all = {0}; /* implicit inputs: names, turned into slots below */
    m->implicit_start = kn_alloc(sizeof(int32_t) * (g->n_node + 1));
    if (!m->implicit_start) return kn_last_status();
    kn_status s = KN_OK;
    for (size_t i = 0; !s && i < g->n_node; i++) {
        if (!g->node[i]) s = kn__error(KN_ERR_IO, "onnx: node %zu is empty", i);
        if (!s) s = resolve_node(m, i, &pos);
        if (!s) s = check_node(m, i, u);
        if (!s) {
            int before = all.n;
            s = implicit_inputs(m, i, &all);
            m->implicit_start[i] = before;
        }
    }
    m->implicit_start[g->n_node] = all.n;
    m->implicit = s ? NULL : kn_alloc(sizeof(int32_t) * (size_t)(all.n + 1));
    if (!s && !m->implicit) s = kn_last_status();
    for (int k = 0; !s && k < all.n; k++)
        m->implicit[k] = kn__onnx_lookup(m, all.names[k]);
    kn_free(all.names);
    if (s) return s;
    m->node_start[g->n_node] = (int32_t)pos;
    return KN_OK;
}

static kn_status load_outputs(kn_onnx_model *m, unsup *u)
{
    const Onnx__GraphProto *g = m->proto->graph;
    char why[256];
    if (!g->n_output) return kn__error(KN_ERR_IO, "onnx: the graph has no outputs");
    for (size_t i = 0; i < g->n_output; i++) {
        kn_onnx_io *io = &m->outputs[m->n_outputs++];
        if (!read_type(g->output[i], io, why, sizeof why))
            unsup_add(u, false, "output '%s' %s", io->name, why);
        io->slot = kn__onnx_lookup(m, io->name);
        if (io->slot < 0)
            return kn__error(KN_ERR_IO,
                             "onnx: graph output '%s' is not defined by any node, input or "
                             "initializer",
                             io->name);
        m->slots[io->slot].uses++;
    }
    for (size_t i = 0; i < g->n_value_info; i++) { /* sequences may flow between nodes */
        kn_onnx_io io;
        const Onnx__TypeProto *tp = g->value_info[i] ? g->value_info[i]->type : NULL;
        if (tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE &&
            !read_type(g->value_info[i], &io, why, sizeof why))
            unsup_add(u, false, "value '%s' %s", io.name, why);
    }
    return KN_OK;
}

static kn_status validate(kn_onnx_model *m)
{
    unsup u = {0};
    kn_status s = check_header(m);
    if (!s) s = alloc_tables(m);
    if (!s) s = load_initializers(m, &u);
    if (!s) s = load_inputs(m, &u);
    if (!s) s = load_nodes(m, &u);
    if (!s) s = load_outputs(m, &u);
    if (s) {
        kn__sb_free(&u.nodes), kn__sb_free(&u.other);
        return s;
    }
    if (!m->opset && m->proto->graph->n_node)
        for (size_t i = 0; i < m->proto->graph->n_node; i++)
            if (kn__onnx_default_domain(m->proto->graph->node[i]->domain)) {
                kn__sb_free(&u.nodes), kn__sb_free(&u.other);
                return kn__error(KN_ERR_IO,
                                 "onnx: the model imports no opset of the default domain");
            }
    return unsup_report(&u);
}

/* ---------------------------------------------------------------- load */
static kn_onnx_model *load(const void *data, size_t size, const char *base_dir, const char *what)
{
    if (!data && size) return kn__error_null(KN_ERR_ARG, "onnx_load: data is NULL");
    if (size > KN_ONNX_MAX_FILE)
        return kn__error_null(KN_ERR_IO, "onnx_load: %zu bytes is more than the %zu allowed", size,
                              KN_ONNX_MAX_FILE);
    kn_onnx_model *m = kn_alloc(sizeof *m);
    if (!m) return NULL;
    memset(m, 0, sizeof *m);
    kn__onnx_pballoc_init(&m->pa);
    if (base_dir) {
        size_t n = strlen(base_dir) + 1;
        if (!(m->base_dir = kn_alloc(n))) {
            kn_onnx_free(m);
            return NULL;
        }
        memcpy(m->base_dir, base_dir, n);
    }
    m->proto = onnx__model_proto__unpack(&m->pa.a, size, data);
    if (!m->proto) {
        m->pa.failed
            ? kn__error(KN_ERR_NOMEM, "onnx_load: out of memory parsing %s", what)
            : kn__error(KN_ERR_IO,
                        "onnx_load: %s is not a valid ONNX model (protobuf parse failed)", what);
        kn_onnx_free(m);
        return NULL;
    }
    if (validate(m)) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", kn_last_error());
        kn_status s = kn_last_status();
        kn_onnx_free(m);
        return kn__error(s, "%s", msg), NULL;
    }
    return m;
}

kn_onnx_model *kn_onnx_load_buffer(const void *data, size_t size, const char *base_dir)
{
    return load(data, size, base_dir, "the buffer");
}

kn_onnx_model *kn_onnx_load(const char *path)
{
    if (!path) return kn__error_null(KN_ERR_ARG, "onnx_load: path is NULL");
    char *data = NULL;
    size_t len = 0;
    if (kn__read_file("onnx_load", path, KN_ONNX_MAX_FILE, &data, &len)) return NULL;
    char *dir = kn__onnx_dirname(path), what[300];
    snprintf(what, sizeof what, "'%s'", path);
    kn_onnx_model *m = dir ? load(data, len, dir, what) : NULL;
    kn_free(dir), kn_free(data);
    return m;
}

void kn_onnx_free(kn_onnx_model *m)
{
    if (!m) return;
    kn__onnx_cache_free(m);
    for (int i = 0; m->init && i < m->n_init; i++)
        kn_tensor_unref(m->init[i]);
    if (m->proto) onnx__model_proto__free_unpacked(m->proto, &m->pa.a);
    kn_free(m->name_slot), kn_free(m->slots), kn_free(m->node_io), kn_free(m->node_start);
    kn_free(m->implicit_start), kn_free(m->implicit);
    kn_free(m->node_op), kn_free(m->node_opset), kn_free(m->init);
    kn_free(m->inputs), kn_free(m->outputs), kn_free(m->base_dir);
    kn_free(m->bake), kn_free(m);
}

/* ---------------------------------------------------------------- queries */
bool kn_onnx_supported(void)
{
    return true;
}
int kn_onnx_max_opset(void)
{
    return KN_ONNX_MAX_OPSET;
}
int kn_onnx_num_inputs(const kn_onnx_model *m)
{
    return m ? m->n_inputs : 0;
}
int kn_onnx_num_outputs(const kn_onnx_model *m)
{
    return m ? m->n_outputs : 0;
}
int kn_onnx_opset(const kn_onnx_model *m)
{
    return m ? m->opset : 0;
}

const char *kn_onnx_input_name(const kn_onnx_model *m, int i)
{
    if (!m || i < 0 || i >= m->n_inputs)
        return kn__error_null(KN_ERR_ARG, "onnx_input_name: input %d out of range", i);
    return m->inputs[i].name;
}

const char *kn_onnx_output_name(const kn_onnx_model *m, int i)
{
    if (!m || i < 0 || i >= m->n_outputs)
        return kn__error_null(KN_ERR_ARG, "onnx_output_name: output %d out of range", i);
    return m->outputs[i].name;
}

kn_dtype kn_onnx_input_dtype(const kn_onnx_model *m, int i)
{
    if (!m || i < 0 || i >= m->n_inputs) {
        kn__error(KN_ERR_ARG, "onnx_input_dtype: input %d out of range", i);
        return KN_F32;
    }
    return m->inputs[i].dtype;
}

int kn_onnx_input_shape(const kn_onnx_model *m, int i, int64_t shape[KN_MAX_DIMS])
{
    if (!m || i < 0 || i >= m->n_inputs || !shape)
        return kn__error(KN_ERR_ARG, "onnx_input_shape: input %d out of range", i), -1;
    const kn_onnx_io *io = &m->inputs[i];
    for (int d = 0; d < io->ndim; d++)
        shape[d] = io->shape[d];
    return io->ndim;
}
#endif
