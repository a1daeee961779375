/* onnx_export.c — kn_onnx_export: a kiln graph as an ONNX ModelProto (IR 8,
 * one default-domain opset from 13 to 17), written atomically. This file
 * holds the context the converters of onnx_export_ops.c emit into: an arena
 * for every protobuf-c struct, value names, initializers (raw little-endian
 * data), node emission, and the model's graph inputs and outputs. */
#if KILN_HAVE_ONNX
#include "onnx_export.h"
#include "onnx_core.h"

#include "../json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* ---------------------------------------------------------------- arena */
struct kn_ex_chunk {
    kn_ex_chunk *next;
    size_t used, cap;
};
#define CHUNK_HEAD ((sizeof(kn_ex_chunk) + 15) & ~(size_t)15)
#define CHUNK_SIZE ((size_t)64 << 10)

void *kn__ex_alloc(kn_ex *e, size_t size)
{
    if (e->status) return NULL;
    size = (size + 15) & ~(size_t)15;
    kn_ex_chunk *c = e->chunks;
    if (!c || c->cap - c->used < size) {
        size_t cap = size > CHUNK_SIZE / 4 ? size : CHUNK_SIZE;
        kn_ex_chunk *n = kn_alloc(CHUNK_HEAD + cap);
        if (!n) {
            e->status = kn_last_status();
            return NULL;
        }
        n->used = 0, n->cap = cap;
        if (c && cap != CHUNK_SIZE) { /* a big block: keep the open chunk at the head */
            n->next = c->next, c->next = n;
        } else {
            n->next = c, e->chunks = n;
        }
        c = n;
    }
    char *p = (char *)c + CHUNK_HEAD + c->used;
    c->used += size;
    memset(p, 0, size);
    return p;
}

static void arena_free(kn_ex *e)
{
    for (kn_ex_chunk *c = e->chunks, *next; c; c = next)
        next = c->next, kn_free(c);
    e->chunks = NULL;
}

char *kn__ex_strdup(kn_ex *e, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = kn__ex_alloc(e, n);
    if (p) memcpy(p, s, n);
    return p;
}

static char *ex_printf(kn_ex *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *ex_printf(kn_ex *e, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return kn__ex_strdup(e, buf);
}

/* Appends p to a growing array of pointers in the arena. */
static void push(kn_ex *e, void ***arr, size_t *n, size_t *cap, void *p)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        void **grown = kn__ex_alloc(e, sizeof(void *) * nc);
        if (!grown) return;
        if (*n) memcpy(grown, *arr, sizeof(void *) * *n);
        *arr = grown, *cap = nc;
    }
    (*arr)[(*n)++] = p;
}

/* ---------------------------------------------------------------- errors */
kn_status kn__ex_fail(kn_ex *e, kn_status s, const char *fmt, ...)
{
    char msg[400], where[300] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (e->node >= 0) kn__node_where(e->g, e->node, where, sizeof where);
    return kn__error(s, "onnx_export: %s%s%s", where, where[0] ? ": " : "", msg);
}

/* ---------------------------------------------------------------- names */
const char *kn__ex_tmp(kn_ex *e)
{
    const char *s = ex_printf(e, "%st%lld", e->prefix, (long long)e->n_tmp++);
    return s ? s : "";
}

const kn_gvalue *kn__ex_val(const kn_ex *e, int32_t v)
{
    return &e->g->values[v];
}

/* Whether any user-given name (inputs, parameters) starts with p. */
static bool prefix_taken(const kn_graph *g, const char *p)
{
    size_t n = strlen(p);
    for (int32_t v = 0; v < g->n_values; v++)
        if (g->values[v].name && !strncmp(g->values[v].name, p, n)) return true;
    return false;
}

static int cmp_named(const void *a, const void *b)
{
    const kn_gvalue *const *x = a, *const *y = b;
    int c = strcmp((*x)->name, (*y)->name);
    return c ? c : (*x < *y ? -1 : *x > *y);
}

/* Names inputs and parameters with their own names, made unique (a later
 * duplicate or an empty name gets a generated one). */
static void name_user_values(kn_ex *e)
{
    const kn_graph *g = e->g;
    const kn_gvalue **named = kn__ex_alloc(e, sizeof(*named) * (size_t)(g->n_values + 1));
    if (!named) return;
    int n = 0;
    for (int32_t v = 0; v < g->n_values; v++)
        if (g->values[v].name && g->values[v].name[0] &&
            (g->values[v].kind == KN_VALUE_INPUT || g->values[v].kind == KN_VALUE_PARAM))
            named[n++] = &g->values[v];
    qsort(named, (size_t)n, sizeof(*named), cmp_named);
    for (int i = 0; i < n; i++) {
        int32_t v = (int32_t)(named[i] - g->values);
        if (i > 0 && !strcmp(named[i]->name, named[i - 1]->name))
            e->vname[v] = ex_printf(e, "%sd%d_%s", e->prefix, (int)v, named[i]->name);
        else
            e->vname[v] = named[i]->name;
    }
}

/* ---------------------------------------------------------------- initializers */
static Onnx__TensorProto *new_init(kn_ex *e, const char *name, kn_dtype dt, int ndim,
                                   const int64_t *shape, size_t bytes, uint8_t **raw)
{
    Onnx__TensorProto *t = kn__ex_alloc(e, sizeof *t);
    int64_t *dims = kn__ex_alloc(e, sizeof(int64_t) * (size_t)(ndim ? ndim : 1));
    *raw = kn__ex_alloc(e, bytes ? bytes : 1);
    if (!t || !dims || !*raw) return NULL;
    onnx__tensor_proto__init(t);
    if (ndim) memcpy(dims, shape, sizeof(int64_t) * (size_t)ndim);
    t->n_dims = (size_t)ndim, t->dims = dims;
    t->has_data_type = true, t->data_type = kn__onnx_type_of(dt);
    t->name = (char *)name;
    t->has_raw_data = true, t->raw_data.data = *raw, t->raw_data.len = bytes;
    push(e, (void ***)&e->inits, &e->n_inits, &e->cap_inits, t);
    return t;
}

static void init_from_value(kn_ex *e, int32_t v, const char *name)
{
    const kn_gvalue *gv = &e->g->values[v];
    if (!gv->tensor) {
        e->status = kn__ex_fail(e, KN_ERR_INTERNAL, "value %d (a %s) has no data", (int)v,
                                gv->kind == KN_VALUE_PARAM ? "parameter" : "constant");
        return;
    }
    kn_tensor *t = kn__value_tensor(e->g, v);
    if (!t) {
        e->status = kn_last_status();
        return;
    }
    size_t bytes = (size_t)kn_tensor_numel(t) * kn_dtype_size(t->dtype);
    uint8_t *raw = NULL;
    if (new_init(e, name, t->dtype, t->ndim, t->shape, bytes, &raw) && bytes) {
        kn_status s = kn_tensor_copy_to(t, t->dtype, raw, bytes);
        if (s) e->status = s;
    }
    kn_tensor_unref(t);
}

const char *kn__ex_value(kn_ex *e, int32_t v)
{
    const kn_gvalue *gv = &e->g->values[v];
    if (!e->vname[v]) {
        const char *kind = gv->kind == KN_VALUE_NODE    ? "v"
                           : gv->kind == KN_VALUE_CONST ? "c"
                           : gv->kind == KN_VALUE_PARAM ? "p"
                                                        : "in";
        e->vname[v] = ex_printf(e, "%s%s%d", e->prefix, kind, (int)v);
        if (!e->vname[v]) return "";
    }
    if ((gv->kind == KN_VALUE_PARAM || gv->kind == KN_VALUE_CONST) && !e->vinit[v]) {
        e->vinit[v] = true;
        init_from_value(e, v, e->vname[v]);
    }
    return e->vname[v];
}

static void store_value(kn_dtype dt, void *p, double v)
{
    if (kn_dtype_is_float(dt) || dt == KN_BOOL)
        kn__store(dt, p, v);
    else
        kn__store_i64(dt, p, (int64_t)v);
}

const char *kn__ex_const_ints(kn_ex *e, int n, const int64_t *v)
{
    const char *name = kn__ex_tmp(e);
    uint8_t *raw = NULL;
    int64_t len = n;
    if (new_init(e, name, KN_I64, 1, &len, sizeof(int64_t) * (size_t)n, &raw) && n)
        memcpy(raw, v, sizeof(int64_t) * (size_t)n); /* little-endian host (checked) */
    return name;
}

const char *kn__ex_const_fill(kn_ex *e, kn_dtype dt, int ndim, const int64_t *shape, double v)
{
    const char *name = kn__ex_tmp(e);
    int64_t numel = kn__shape_numel(ndim, shape);
    size_t es = kn_dtype_size(dt);
    uint8_t *raw = NULL;
    if (new_init(e, name, dt, ndim, shape, (size_t)numel * es, &raw))
        for (int64_t i = 0; i < numel; i++)
            store_value(dt, raw + (size_t)i * es, v);
    return name;
}

void *kn__ex_const_raw(kn_ex *e, kn_dtype dt, int ndim, const int64_t *shape, const char **name)
{
    *name = kn__ex_tmp(e);
    uint8_t *raw = NULL;
    size_t bytes = (size_t)kn__shape_numel(ndim, shape) * kn_dtype_size(dt);
    return new_init(e, *name, dt, ndim, shape, bytes, &raw) ? raw : NULL;
}

const char *kn__ex_const_scalar(kn_ex *e, kn_dtype dt, double v)
{
    return kn__ex_const_fill(e, dt, 0, NULL, v);
}

/* ---------------------------------------------------------------- nodes */
static const char *op_label(const kn_ex *e)
{
    return e->g->nodes[e->node].def->name;
}

Onnx__NodeProto *kn__ex_node(kn_ex *e, const char *op_type, int n_in, const char *const *in,
                             int n_out, const char *const *out)
{
    Onnx__NodeProto *nd = kn__ex_alloc(e, sizeof *nd);
    char **ins = kn__ex_alloc(e, sizeof(char *) * (size_t)(n_in ? n_in : 1));
    char **outs = kn__ex_alloc(e, sizeof(char *) * (size_t)(n_out ? n_out : 1));
    if (!nd || !ins || !outs) return NULL;
    onnx__node_proto__init(nd);
    for (int i = 0; i < n_in; i++)
        ins[i] = (char *)(in[i] ? in[i] : "");
    for (int i = 0; i < n_out; i++)
        outs[i] = (char *)(out && out[i] ? out[i] : kn__ex_tmp(e));
    nd->n_input = (size_t)n_in, nd->input = ins;
    nd->n_output = (size_t)n_out, nd->output = outs;
    nd->op_type = (char *)op_type;
    if (e->node < 0)
        nd->name = ex_printf(e, "%sout_%d", e->prefix, e->sub);
    else
        nd->name = e->sub ? ex_printf(e, "%s_%d_%d", op_label(e), (int)e->node, e->sub)
                          : ex_printf(e, "%s_%d", op_label(e), (int)e->node);
    e->sub++;
    push(e, (void ***)&e->nodes, &e->n_nodes, &e->cap_nodes, nd);
    return e->status ? NULL : nd;
}

const char *kn__ex_out(const Onnx__NodeProto *node, int k)
{
    return node && (size_t)k < node->n_output ? node->output[k] : "";
}

static Onnx__AttributeProto *new_attr(kn_ex *e, Onnx__NodeProto *node, const char *name,
                                      Onnx__AttributeProto__AttributeType type)
{
    if (!node) return NULL;
    Onnx__AttributeProto *a = kn__ex_alloc(e, sizeof *a);
    Onnx__AttributeProto **grown = kn__ex_alloc(e, sizeof(*grown) * (node->n_attribute + 1));
    if (!a || !grown) return NULL;
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = true, a->type = type;
    if (node->n_attribute) memcpy(grown, node->attribute, sizeof(*grown) * node->n_attribute);
    grown[node->n_attribute++] = a;
    node->attribute = grown;
    return a;
}

void kn__ex_attr_int(kn_ex *e, Onnx__NodeProto *node, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = new_attr(e, node, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) a->has_i = true, a->i = v;
}

void kn__ex_attr_float(kn_ex *e, Onnx__NodeProto *node, const char *name, double v)
{
    Onnx__AttributeProto *a = new_attr(e, node, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) a->has_f = true, a->f = (float)v;
}

void kn__ex_attr_string(kn_ex *e, Onnx__NodeProto *node, const char *name, const char *v)
{
    Onnx__AttributeProto *a =
        new_attr(e, node, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    if (a) a->has_s = true, a->s.data = (uint8_t *)v, a->s.len = strlen(v);
}

void kn__ex_attr_ints(kn_ex *e, Onnx__NodeProto *node, const char *name, int n, const int64_t *v)
{
    Onnx__AttributeProto *a = new_attr(e, node, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *copy = a ? kn__ex_alloc(e, sizeof(int64_t) * (size_t)(n ? n : 1)) : NULL;
    if (!copy) return;
    if (n) memcpy(copy, v, sizeof(int64_t) * (size_t)n);
    a->n_ints = (size_t)n, a->ints = copy;
}

const char *kn__ex_op1(kn_ex *e, const char *op_type, const char *x)
{
    return kn__ex_out(kn__ex_node(e, op_type, 1, &x, 1, NULL), 0);
}

const char *kn__ex_op2(kn_ex *e, const char *op_type, const char *a, const char *b)
{
    const char *in[2] = {a, b};
    return kn__ex_out(kn__ex_node(e, op_type, 2, in, 1, NULL), 0);
}

const char *kn__ex_cast(kn_ex *e, const char *x, kn_dtype from, kn_dtype to)
{
    if (from == to) return x;
    Onnx__NodeProto *nd = kn__ex_node(e, "Cast", 1, &x, 1, NULL);
    kn__ex_attr_int(e, nd, "to", kn__onnx_type_of(to));
    return kn__ex_out(nd, 0);
}

/* Renames temporary `from` to `to` in the ONNX nodes of the kiln node
 * being converted; false when none of them produces it. */
static bool rename_tmp(kn_ex *e, const char *from, const char *to)
{
    size_t producer = e->n_nodes;
    for (size_t i = e->first; i < e->n_nodes && producer == e->n_nodes; i++)
        for (size_t k = 0; k < e->nodes[i]->n_output; k++)
            if (!strcmp(e->nodes[i]->output[k], from)) {
                e->nodes[i]->output[k] = (char *)to;
                producer = i;
            }
    for (size_t i = producer + 1; i < e->n_nodes; i++)
        for (size_t k = 0; k < e->nodes[i]->n_input; k++)
            if (!strcmp(e->nodes[i]->input[k], from)) e->nodes[i]->input[k] = (char *)to;
    return producer < e->n_nodes;
}

void kn__ex_finish(kn_ex *e, const char *result, const char *out)
{
    if (e->status || !strcmp(result, out)) return;
    for (int i = 0; i < e->n_renamed; i++) /* already renamed for another output */
        if (!strcmp(e->renamed[i][0], result)) result = e->renamed[i][1];
    size_t plen = strlen(e->prefix);
    bool tmp = e->node >= 0 && !strncmp(result, e->prefix, plen) && result[plen] == 't';
    if (tmp && e->n_renamed < 16 && rename_tmp(e, result, out)) {
        e->renamed[e->n_renamed][0] = result, e->renamed[e->n_renamed][1] = out;
        e->n_renamed++;
        return;
    }
    kn__ex_node(e, "Identity", 1, &result, 1, &out);
}

/* ---------------------------------------------------------------- graph io */
static Onnx__ValueInfoProto *value_info(kn_ex *e, const char *name, const kn_gvalue *gv)
{
    Onnx__ValueInfoProto *vi = kn__ex_alloc(e, sizeof *vi);
    Onnx__TypeProto *tp = kn__ex_alloc(e, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = kn__ex_alloc(e, sizeof *tt);
    Onnx__TensorShapeProto *sp = kn__ex_alloc(e, sizeof *sp);
    Onnx__TensorShapeProto__Dimension **dims =
        kn__ex_alloc(e, sizeof(*dims) * (size_t)(gv->ndim ? gv->ndim : 1));
    if (!vi || !tp || !tt || !sp || !dims) return NULL;
    for (int d = 0; d < gv->ndim; d++) {
        if (!(dims[d] = kn__ex_alloc(e, sizeof **dims))) return NULL;
        onnx__tensor_shape_proto__dimension__init(dims[d]);
        dims[d]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        dims[d]->dim_value = gv->shape[d];
    }
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sp);
    sp->n_dim = (size_t)gv->ndim, sp->dim = dims;
    tt->has_elem_type = true, tt->elem_type = kn__onnx_type_of(gv->dtype), tt->shape = sp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, tp->tensor_type = tt;
    vi->name = (char *)name, vi->type = tp;
    return vi;
}

/* Output names: "output" (one output) or "output_<i>", prefixed when a user
 * name has them. A node value that is the first output holding it is
 * produced under that name; other outputs get an Identity at the end. */
static const char **name_outputs(kn_ex *e, bool *via_identity)
{
    const kn_graph *g = e->g;
    const char **names = kn__ex_alloc(e, sizeof(char *) * (size_t)(g->n_outputs + 1));
    if (!names) return NULL;
    for (int i = 0; i < g->n_outputs; i++) {
        char base[32];
        if (g->n_outputs == 1)
            snprintf(base, sizeof base, "output");
        else
            snprintf(base, sizeof base, "output_%d", i);
        bool taken = false;
        for (int32_t v = 0; v < g->n_values && !taken; v++)
            taken = g->values[v].name && !strcmp(g->values[v].name, base);
        names[i] = taken ? ex_printf(e, "%s%s", e->prefix, base) : kn__ex_strdup(e, base);
        int32_t v = g->outputs[i];
        via_identity[i] = g->values[v].kind != KN_VALUE_NODE || e->vname[v];
        if (!via_identity[i]) e->vname[v] = names[i];
    }
    return names;
}

/* Every live node must have a converter: one error lists those without. */
static kn_status check_ops(kn_ex *e)
{
    char msg[1024] = "";
    size_t len = 0;
    int missing = 0;
    for (int32_t i = 0; i < e->g->n_nodes; i++) {
        const kn_gnode *n = &e->g->nodes[i];
        const char *why = NULL;
        if (n->dead || kn__ex_find(n->def, &why)) continue;
        char where[300];
        kn__node_where(e->g, i, where, sizeof where);
        if (len < sizeof msg - 1)
            len += (size_t)snprintf(msg + len, sizeof msg - len, "%s%s%s%s", missing ? "; " : "",
                                    where, why ? ": " : "", why ? why : "");
        missing++;
    }
    if (!missing) return KN_OK;
    return kn__error(KN_ERR_UNSUPPORTED, "onnx_export: %d node%s without an ONNX mapping: %s",
                     missing, missing > 1 ? "s" : "", msg);
}

static kn_status convert_nodes(kn_ex *e)
{
    const kn_graph *g = e->g;
    const char *in[64], *out[64];
    for (int32_t i = 0; i < g->n_nodes && !e->status; i++) {
        const kn_gnode *n = &g->nodes[i];
        if (n->dead) continue;
        e->node = i, e->sub = 0, e->first = e->n_nodes, e->n_renamed = 0;
        if (n->n_in > 64 || n->n_out > 64)
            return kn__ex_fail(e, KN_ERR_UNSUPPORTED, "%d inputs and %d outputs, at most 64 each",
                               n->n_in, n->n_out);
        for (int k = 0; k < n->n_in; k++)
            in[k] = n->in[k] >= 0 ? kn__ex_value(e, n->in[k]) : NULL;
        for (int k = 0; k < n->n_out; k++)
            out[k] = kn__ex_value(e, n->out[k]);
        if (e->status) break;
        kn_status s = kn__ex_find(n->def, NULL)(e, n, in, out);
        if (s) return s;
    }
    e->node = -1;
    return e->status;
}

/* ---------------------------------------------------------------- clean-up
 * Graphs compiled for inference on AVX-512 run NHWC inside (the layout
 * pass); ONNX convolutions and pools are NCHW, so every such node is
 * written between two Transposes. A Transpose of a Transpose that undoes
 * it is dropped (its readers read the first one's input), then nodes whose
 * outputs nobody reads are dropped: the file is NCHW again between the
 * region's edges. */
static int transpose_perm(const Onnx__NodeProto *nd, int64_t *perm)
{
    if (strcmp(nd->op_type, "Transpose") || nd->n_input != 1 || nd->n_output != 1) return 0;
    for (size_t a = 0; a < nd->n_attribute; a++) {
        const Onnx__AttributeProto *at = nd->attribute[a];
        if (!strcmp(at->name, "perm") && at->n_ints > 0 && at->n_ints <= KN_MAX_DIMS) {
            memcpy(perm, at->ints, sizeof(int64_t) * at->n_ints);
            return (int)at->n_ints;
        }
    }
    return 0;
}

static bool is_graph_output(const Onnx__GraphProto *gp, const char *name)
{
    for (size_t i = 0; i < gp->n_output; i++)
        if (!strcmp(gp->output[i]->name, name)) return true;
    return false;
}

/* The live node writing `name`, or -1. */
static ptrdiff_t producer_of(const kn_ex *e, const bool *dead, const char *name)
{
    for (size_t j = 0; j < e->n_nodes; j++)
        for (size_t k = 0; !dead[j] && k < e->nodes[j]->n_output; k++)
            if (!strcmp(e->nodes[j]->output[k], name)) return (ptrdiff_t)j;
    return -1;
}

static bool is_read(const kn_ex *e, const bool *dead, const Onnx__GraphProto *gp, const char *name)
{
    if (is_graph_output(gp, name)) return true;
    for (size_t j = 0; j < e->n_nodes; j++)
        for (size_t k = 0; !dead[j] && k < e->nodes[j]->n_input; k++)
            if (!strcmp(e->nodes[j]->input[k], name)) return true;
    return false;
}

static void cancel_transposes(kn_ex *e, Onnx__GraphProto *gp)
{
    bool *dead = kn__ex_alloc(e, e->n_nodes + 1);
    if (!dead) return;
    for (size_t i = 0; i < e->n_nodes; i++) {
        int64_t q[KN_MAX_DIMS], p[KN_MAX_DIMS];
        Onnx__NodeProto *nd = e->nodes[i];
        int rank = transpose_perm(nd, q);
        ptrdiff_t j = rank ? producer_of(e, dead, nd->input[0]) : -1;
        if (j < 0 || transpose_perm(e->nodes[j], p) != rank || is_graph_output(gp, nd->output[0]))
            continue;
        bool undoes = true;
        for (int d = 0; d < rank; d++)
            undoes &= q[d] >= 0 && q[d] < rank && p[q[d]] == d;
        if (!undoes) continue;
        const char *from = nd->output[0], *to = e->nodes[j]->input[0];
        for (size_t k = 0; k < e->n_nodes; k++)
            for (size_t m = 0; m < e->nodes[k]->n_input; m++)
                if (!strcmp(e->nodes[k]->input[m], from)) e->nodes[k]->input[m] = (char *)to;
        dead[i] = true;
    }
    for (bool changed = true; changed;) { /* nodes nobody reads, last first */
        changed = false;
        for (size_t i = e->n_nodes; i-- > 0;) {
            bool used = false;
            for (size_t k = 0; !dead[i] && k < e->nodes[i]->n_output; k++)
                used |= is_read(e, dead, gp, e->nodes[i]->output[k]);
            if (!dead[i] && !used) dead[i] = changed = true;
        }
    }
    size_t n = 0;
    for (size_t i = 0; i < e->n_nodes; i++)
        if (!dead[i]) e->nodes[n++] = e->nodes[i];
    e->n_nodes = n;
    gp->n_node = n;
}

static Onnx__GraphProto *build_graph(kn_ex *e)
{
    const kn_graph *g = e->g;
    bool *via_identity = kn__ex_alloc(e, sizeof(bool) * (size_t)(g->n_outputs + 1));
    const char **onames = via_identity ? name_outputs(e, via_identity) : NULL;
    if (!onames) return NULL;
    if (check_ops(e) || convert_nodes(e)) {
        if (!e->status) e->status = kn_last_status();
        return NULL;
    }
    e->sub = 0;
    for (int i = 0; i < g->n_outputs; i++)
        if (via_identity[i]) {
            const char *x = kn__ex_value(e, g->outputs[i]);
            kn__ex_node(e, "Identity", 1, &x, 1, &onames[i]);
        }
    Onnx__GraphProto *gp = kn__ex_alloc(e, sizeof *gp);
    Onnx__ValueInfoProto **ins = kn__ex_alloc(e, sizeof(*ins) * (size_t)(g->n_inputs + 1));
    Onnx__ValueInfoProto **outs = kn__ex_alloc(e, sizeof(*outs) * (size_t)(g->n_outputs + 1));
    if (!gp || !ins || !outs) return NULL;
    onnx__graph_proto__init(gp);
    for (int i = 0; i < g->n_inputs; i++)
        if (!(ins[i] = value_info(e, kn__ex_value(e, g->inputs[i]), &g->values[g->inputs[i]])))
            return NULL;
    for (int i = 0; i < g->n_outputs; i++)
        if (!(outs[i] = value_info(e, onames[i], &g->values[g->outputs[i]]))) return NULL;
    gp->name = "kiln";
    gp->n_node = e->n_nodes, gp->node = e->nodes;
    gp->n_initializer = e->n_inits, gp->initializer = e->inits;
    gp->n_input = (size_t)g->n_inputs, gp->input = ins;
    gp->n_output = (size_t)g->n_outputs, gp->output = outs;
    if (!e->status) cancel_transposes(e, gp);
    return e->status ? NULL : gp;
}

static kn_status write_model(kn_ex *e, Onnx__GraphProto *gp, const char *path)
{
    Onnx__ModelProto model = ONNX__MODEL_PROTO__INIT;
    Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT, *opsets[1] = {&opset};
    opset.domain = "";
    opset.has_version = true, opset.version = e->opset;
    model.has_ir_version = true, model.ir_version = 8;
    model.n_opset_import = 1, model.opset_import = opsets;
    model.producer_name = "kiln";
    model.producer_version = (char *)kn_version();
    model.graph = gp;
    size_t size = onnx__model_proto__get_packed_size(&model);
    if (size > KN_ONNX_MAX_FILE)
        return kn__error(KN_ERR_UNSUPPORTED,
                         "onnx_export: the model is %zu bytes, more than protobuf's 2 GiB limit",
                         size);
    uint8_t *buf = kn_alloc(size ? size : 1);
    if (!buf) return kn_last_status();
    kn_status s = KN_OK;
    if (onnx__model_proto__pack(&model, buf) != size)
        s = kn__error(KN_ERR_INTERNAL, "onnx_export: packing the model failed");
    if (!s) s = kn__write_file_atomic("onnx_export", path, buf, size);
    kn_free(buf);
    return s;
}

static bool little_endian(void)
{
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Whether g has a live composite node (an LSTM cell...) without a
 * converter of its own, which its composition would make exportable. */
static bool needs_expansion(const kn_graph *g)
{
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const kn_gnode *n = &g->nodes[i];
        const char *why = NULL;
        if (!n->dead && n->def->compose && !n->def->stateful && !kn__ex_find(n->def, &why) && !why)
            return true;
    }
    return false;
}

static kn_status export_graph(const kn_graph *g, const char *path, int opset);

kn_status kn_onnx_export(const kn_graph *g, const char *path, int opset)
{
    if (!g || !path || !needs_expansion(g)) return export_graph(g, path, opset);
    /* a copy with every stateless composite replaced by its ops */
    kn_graph *c = kn__graph_clone(g);
    if (!c) return kn_last_status();
    kn_status s = kn__pass_expand(c, KN_GRAPH_INFERENCE);
    if (!s) s = export_graph(c, path, opset);
    kn_graph_free(c);
    return s;
}

static kn_status export_graph(const kn_graph *g, const char *path, int opset)
{
    if (!g) return kn__error(KN_ERR_ARG, "onnx_export: graph is NULL");
    if (!path || !path[0]) return kn__error(KN_ERR_ARG, "onnx_export: path is NULL or empty");
    if (opset == 0) opset = KN_EX_MAX_OPSET;
    if (opset < KN_EX_MIN_OPSET || opset > KN_EX_MAX_OPSET)
        return kn__error(KN_ERR_ARG,
                         "onnx_export: opset %d is out of range, expected %d to %d (or 0)", opset,
                         KN_EX_MIN_OPSET, KN_EX_MAX_OPSET);
    if (!little_endian()) return kn__error(KN_ERR_UNSUPPORTED, "onnx_export: big-endian host");
    if (g->n_outputs < 1) return kn__error(KN_ERR_ARG, "onnx_export: the graph has no outputs");
    kn_ex e = {.g = g, .opset = opset, .node = -1};
    snprintf(e.prefix, sizeof e.prefix, "kn_");
    for (int k = 0; prefix_taken(g, e.prefix) && k < 8; k++) /* "kn_", "kn__", ... */
        snprintf(e.prefix, sizeof e.prefix, "kn_%.*s", k + 1, "________");
    if (prefix_taken(g, e.prefix)) snprintf(e.prefix, sizeof e.prefix, "kn%p_", (const void *)g);
    e.vname = kn__ex_alloc(&e, sizeof(char *) * (size_t)(g->n_values + 1));
    e.vinit = kn__ex_alloc(&e, sizeof(bool) * (size_t)(g->n_values + 1));
    if (e.vname && e.vinit) name_user_values(&e);
    Onnx__GraphProto *gp = e.status ? NULL : build_graph(&e);
    kn_status s = gp ? write_model(&e, gp, path) : e.status ? e.status : kn_last_status();
    arena_free(&e);
    return s;
}
#endif
