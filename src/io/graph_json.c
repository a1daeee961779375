/* graph_json.c — the graph file format: versioned JSON for the structure
 * (values, nodes with their op name and attrs, inputs, outputs) and a
 * safetensors file for parameters and constants by name. The loader checks
 * the format and version, every id (in range, defined before use, so the
 * graph is acyclic), op names, attrs and tensors, then re-runs shape
 * inference, so a loaded graph is as valid as a traced one. */
#include "json.h"

#include "../graph/graph.h"

#include <stdarg.h>
#include <stdlib.h>

#define FORMAT_NAME "kiln-graph"
#define FORMAT_VERSION 1
#define MAX_JSON (256u << 20)

static const char *kind_names[] = {"input", "param", "const", "node"};

/* ---------------------------------------------------------------- save */
static void write_shape(kn_strbuf *sb, int ndim, const int64_t *shape)
{
    kn__sb_printf(sb, "[");
    for (int d = 0; d < ndim; d++)
        kn__sb_printf(sb, d ? ",%lld" : "%lld", (long long)shape[d]);
    kn__sb_printf(sb, "]");
}

static void write_attrs(kn_strbuf *sb, const kn_gnode *n)
{
    const kn_op_def *def = n->def;
    const char *base = n->attrs;
    kn__sb_printf(sb, "{");
    for (int i = 0; base && i < def->n_attrs; i++) {
        const kn_attr_desc *a = &def->attrs[i];
        const char *p = base + a->offset;
        kn__sb_printf(sb, i ? ",\"%s\":" : "\"%s\":", a->name);
        switch (a->type) {
        case KN_ATTR_INT: kn__sb_printf(sb, "%lld", (long long)*(const int64_t *)p); break;
        case KN_ATTR_FLOAT: kn__sb_printf(sb, "%.17g", *(const double *)p); break;
        case KN_ATTR_BOOL: kn__sb_printf(sb, *(const bool *)p ? "true" : "false"); break;
        case KN_ATTR_DTYPE: kn__sb_printf(sb, "\"%s\"", kn_dtype_name(*(const kn_dtype *)p)); break;
        case KN_ATTR_INTS: {
            const kn_ints *v = (const kn_ints *)p;
            write_shape(sb, v->n >= 0 && v->n <= KN_MAX_DIMS ? v->n : 0, v->v);
            break;
        }
        }
    }
    kn__sb_printf(sb, "}");
    /* the exact bytes too: some attrs structs hold fields no schema names */
    kn__sb_printf(sb, ",\"raw\":\"");
    for (size_t i = 0; base && i < def->attrs_size; i++)
        kn__sb_printf(sb, "%02x", (unsigned char)base[i]);
    kn__sb_printf(sb, "\"");
}

static void write_node(kn_strbuf *sb, const kn_gnode *n)
{
    kn__sb_printf(sb, "{\"op\":\"%s\",\"inputs\":[", n->def->name);
    for (int k = 0; k < n->n_in; k++)
        kn__sb_printf(sb, k ? ",%d" : "%d", n->in[k]);
    kn__sb_printf(sb, "],\"outputs\":[");
    for (int k = 0; k < n->n_out; k++)
        kn__sb_printf(sb, k ? ",%d" : "%d", n->out[k]);
    kn__sb_printf(sb, "],\"attrs\":");
    write_attrs(sb, n);
    if (n->line > 0) {
        char site[300];
        snprintf(site, sizeof site, "%s:%d", n->file, n->line);
        kn__sb_printf(sb, ",\"site\":");
        kn__sb_json_string(sb, site);
    }
    kn__sb_printf(sb, "}");
}

static void const_name(int32_t v, char *buf, size_t n) { snprintf(buf, n, "const.%d", v); }

static kn_status collect_tensors(const kn_graph *g, kn_tensor_map *m)
{
    for (int32_t v = 0; v < g->n_values; v++) {
        const kn_gvalue *val = &g->values[v];
        if (val->kind != KN_VALUE_PARAM && val->kind != KN_VALUE_CONST) continue;
        char name[32];
        const char *key = val->name;
        if (val->kind == KN_VALUE_CONST) const_name(v, name, sizeof name), key = name;
        if (kn_tensor_map_get(m, key))
            return kn__error(KN_ERR_ARG, "graph_save: two parameters are named '%s'", key);
        kn_status s = kn_tensor_map_set(m, key, val->tensor);
        if (s) return s;
    }
    return KN_OK;
}

static void write_graph(kn_strbuf *sb, const kn_graph *g)
{
    kn__sb_printf(sb, "{\"format\":\"%s\",\"version\":%d,\n\"values\":[\n", FORMAT_NAME, FORMAT_VERSION);
    for (int32_t v = 0; v < g->n_values; v++) {
        const kn_gvalue *val = &g->values[v];
        kn__sb_printf(sb, "{\"kind\":\"%s\",\"dtype\":\"%s\",\"shape\":", kind_names[val->kind],
                      kn_dtype_name(val->dtype));
        write_shape(sb, val->ndim, val->shape);
        if (val->name) {
            kn__sb_printf(sb, ",\"name\":");
            kn__sb_json_string(sb, val->name);
        }
        kn__sb_printf(sb, v + 1 < g->n_values ? "},\n" : "}\n");
    }
    kn__sb_printf(sb, "],\n\"nodes\":[\n");
    bool first = true;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].dead) continue;
        kn__sb_printf(sb, first ? "" : ",\n");
        write_node(sb, &g->nodes[i]);
        first = false;
    }
    kn__sb_printf(sb, "\n],\n\"inputs\":[");
    for (int i = 0; i < g->n_inputs; i++)
        kn__sb_printf(sb, i ? ",%d" : "%d", g->inputs[i]);
    kn__sb_printf(sb, "],\n\"outputs\":[");
    for (int i = 0; i < g->n_outputs; i++)
        kn__sb_printf(sb, i ? ",%d" : "%d", g->outputs[i]);
    kn__sb_printf(sb, "]}\n");
}

kn_status kn_graph_save(const kn_graph *g, const char *json_path, const char *safetensors_path)
{
    if (!g || !json_path || !safetensors_path)
        return kn__error(KN_ERR_ARG, "graph_save: graph or a path is NULL");
    kn_tensor_map *m = kn_tensor_map_new();
    if (!m) return kn_last_status();
    kn_status s = collect_tensors(g, m);
    kn_strbuf sb = {0};
    if (!s) write_graph(&sb, g);
    if (!s && sb.failed) s = kn__error(KN_ERR_NOMEM, "graph_save: out of memory writing JSON");
    /* tensors first: a graph file never points at tensors that are not written */
    if (!s) s = kn_safetensors_save(safetensors_path, m);
    if (!s) s = kn__write_file_atomic("graph_save", json_path, sb.data, sb.len);
    kn__sb_free(&sb);
    kn_tensor_map_free(m);
    return s;
}

kn_status kn_block_export(const kn_block *b, const char *json_path, const char *safetensors_path)
{
    kn_graph *g = kn_block_graph(b);
    if (!g)
        return kn__error(KN_ERR_STATE, "block_export: the block has no graph yet (hybridize it and "
                                       "call kn_block_forward once)");
    return kn_graph_save(g, json_path, safetensors_path);
}

/* ---------------------------------------------------------------- load */
typedef struct loader {
    const char *path;
    kn_graph *g;
    const kn_tensor_map *tensors;
} loader;

static kn_status bad(const loader *l, const char *fmt, ...) KN_PRINTF(2, 3);
static kn_status bad(const loader *l, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return kn__error(KN_ERR_IO, "graph_load: '%s': %s", l->path, msg);
}

static bool read_int(const kn_json *j, int64_t lo, int64_t hi, int64_t *out)
{
    if (!j || j->type != KN_JSON_NUMBER || !j->is_int || j->integer < lo || j->integer > hi) return false;
    *out = j->integer;
    return true;
}

static bool read_shape(const kn_json *j, int *ndim, int64_t *shape)
{
    if (!j || j->type != KN_JSON_ARRAY || j->n > KN_MAX_DIMS) return false;
    for (int d = 0; d < j->n; d++)
        if (!read_int(&j->items[d], 0, KN__MAX_NUMEL, &shape[d])) return false;
    *ndim = j->n;
    return kn__shape_numel(j->n, shape) >= 0 && kn__shape_numel(j->n, shape) <= KN__MAX_NUMEL;
}

static bool read_dtype(const kn_json *j, kn_dtype *dt)
{
    for (int i = 0; j && j->type == KN_JSON_STRING && i < KN_DTYPE_COUNT; i++)
        if (!strcmp(j->string, kn_dtype_name((kn_dtype)i))) return *dt = (kn_dtype)i, true;
    return false;
}

static kn_status bind_tensor(loader *l, int32_t v, const char *key)
{
    kn_gvalue *val = &l->g->values[v];
    kn_tensor *t = kn_tensor_map_get(l->tensors, key);
    if (!t) return bad(l, "tensor '%s' (value %d) is not in the safetensors file", key, v);
    if (t->dtype != val->dtype || t->ndim != val->ndim ||
        memcmp(t->shape, val->shape, sizeof(int64_t) * (size_t)val->ndim))
        return bad(l, "tensor '%s' (value %d) has another dtype or shape than the graph says", key, v);
    val->tensor = kn_tensor_ref(t);
    return KN_OK;
}

static kn_status load_value(loader *l, const kn_json *j, int32_t index)
{
    const kn_json *kind = kn__json_get(j, "kind"), *name = kn__json_get(j, "name");
    int k = -1, ndim;
    int64_t shape[KN_MAX_DIMS];
    kn_dtype dt;
    for (int i = 0; kind && kind->type == KN_JSON_STRING && i < 4; i++)
        if (!strcmp(kind->string, kind_names[i])) k = i;
    if (k < 0) return bad(l, "value %d: kind must be input, param, const or node", index);
    if (!read_dtype(kn__json_get(j, "dtype"), &dt)) return bad(l, "value %d: bad dtype", index);
    if (!read_shape(kn__json_get(j, "shape"), &ndim, shape))
        return bad(l, "value %d: bad shape (at most 8 non-negative dims)", index);
    if ((k == KN_VALUE_INPUT || k == KN_VALUE_PARAM) && (!name || name->type != KN_JSON_STRING))
        return bad(l, "value %d: inputs and params need a name", index);
    int32_t v = kn__graph_add_value(l->g, (kn_value_kind)k, dt, ndim, shape);
    if (v < 0) return kn_last_status();
    if (name && name->type == KN_JSON_STRING) {
        l->g->values[v].name = kn_alloc(name->length + 1);
        if (!l->g->values[v].name) return kn_last_status();
        memcpy(l->g->values[v].name, name->string, name->length + 1);
    }
    if (k == KN_VALUE_PARAM) return bind_tensor(l, v, l->g->values[v].name);
    if (k == KN_VALUE_CONST) {
        char key[32];
        const_name(v, key, sizeof key);
        return bind_tensor(l, v, key);
    }
    return KN_OK;
}

static bool read_hex(const kn_json *raw, unsigned char *out, size_t n)
{
    if (!raw || raw->type != KN_JSON_STRING || raw->length != 2 * n) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned hi, lo;
        char c0 = raw->string[2 * i], c1 = raw->string[2 * i + 1];
        if (sscanf((char[3]){c0, c1, 0}, "%1x%1x", &hi, &lo) != 2) return false;
        out[i] = (unsigned char)(hi * 16 + lo);
    }
    return true;
}

/* attrs: the exact bytes, with schema-described bools normalized to 0/1. */
static kn_status load_attrs(loader *l, const kn_json *node, const kn_op_def *def, void *attrs,
                            int32_t index)
{
    if (!def->attrs_size) return KN_OK;
    if (!read_hex(kn__json_get(node, "raw"), attrs, def->attrs_size))
        return bad(l, "node %d (%s): attrs 'raw' must hold %zu hex-encoded bytes", index, def->name,
                   def->attrs_size);
    for (int i = 0; i < def->n_attrs; i++) {
        unsigned char *p = (unsigned char *)attrs + def->attrs[i].offset;
        if (def->attrs[i].type == KN_ATTR_BOOL) *p = *p != 0;
        if (def->attrs[i].type == KN_ATTR_INTS) {
            kn_ints *v = (kn_ints *)p;
            if (v->n < 0 || v->n > KN_MAX_DIMS)
                return bad(l, "node %d (%s): an int-list attr has a bad length", index, def->name);
        }
        if (def->attrs[i].type == KN_ATTR_DTYPE && *(unsigned *)p >= KN_DTYPE_COUNT)
            return bad(l, "node %d (%s): a dtype attr is out of range", index, def->name);
    }
    return KN_OK;
}

static kn_status read_ids(loader *l, const kn_json *arr, int32_t limit, int32_t *ids, bool allow_none,
                          const char *what, int32_t index)
{
    for (int k = 0; k < arr->n; k++) {
        int64_t v;
        if (!read_int(&arr->items[k], allow_none ? -1 : 0, (int64_t)limit - 1, &v))
            return bad(l, "%s node %d refers to a value that does not exist", what, index);
        ids[k] = (int32_t)v;
    }
    return KN_OK;
}

static kn_status load_node(loader *l, const kn_json *j, int32_t index)
{
    kn_graph *g = l->g;
    const kn_json *op = kn__json_get(j, "op"), *ins = kn__json_get(j, "inputs"),
                  *outs = kn__json_get(j, "outputs");
    const kn_op_def *def = op && op->type == KN_JSON_STRING ? kn_op_find(op->string) : NULL;
    if (!def)
        return bad(l, "node %d: unknown op '%s'", index,
                   op && op->type == KN_JSON_STRING ? op->string : "?");
    if (!ins || ins->type != KN_JSON_ARRAY || !outs || outs->type != KN_JSON_ARRAY || outs->n < 1 ||
        ins->n > 4096 || outs->n > 4096)
        return bad(l, "node %d (%s): inputs/outputs must be arrays", index, def->name);
    int32_t *ids = kn_alloc(sizeof(int32_t) * (size_t)(ins->n + outs->n + 1));
    if (!ids) return kn_last_status();
    kn_status s = read_ids(l, ins, g->n_values, ids, true, "input of", index);
    if (!s) s = read_ids(l, outs, g->n_values, ids + ins->n, false, "output of", index);
    for (int k = 0; !s && k < ins->n; k++) /* defined before use: no cycles */
        if (ids[k] >= 0 && g->values[ids[k]].kind == KN_VALUE_NODE && g->values[ids[k]].node < 0)
            s = bad(l, "node %d (%s) reads a value no earlier node produces", index, def->name);
    for (int k = 0; !s && k < outs->n; k++) {
        kn_gvalue *v = &g->values[ids[ins->n + k]];
        if (v->kind != KN_VALUE_NODE || v->node >= 0)
            s = bad(l, "node %d (%s) writes a value that is not a fresh node output", index, def->name);
        else
            v->node = g->n_nodes, v->out_index = k; /* claimed, even if later checks fail */
    }
    int32_t n = s ? -1 : kn__graph_add_node(g, def, NULL, ins->n, ids, outs->n);
    if (!s && n < 0) s = kn_last_status();
    if (!s) {
        memcpy(g->nodes[n].out, ids + ins->n, sizeof(int32_t) * (size_t)outs->n);
        s = load_attrs(l, j, def, g->nodes[n].attrs, index);
    }
    kn_free(ids);
    return s;
}

static kn_status load_list(loader *l, const kn_json *arr, bool inputs)
{
    kn_graph *g = l->g;
    if (!arr || arr->type != KN_JSON_ARRAY) return bad(l, "%s must be an array", inputs ? "inputs" : "outputs");
    for (int i = 0; i < arr->n; i++) {
        int64_t v;
        if (!read_int(&arr->items[i], 0, g->n_values - 1, &v))
            return bad(l, "%s entry %d is not a value id", inputs ? "inputs" : "outputs", i);
        if (inputs && g->values[v].kind != KN_VALUE_INPUT)
            return bad(l, "inputs entry %d is not an input value", i);
        if (!inputs && g->values[v].kind == KN_VALUE_NODE && g->values[v].node < 0)
            return bad(l, "outputs entry %d is not produced by any node", i);
        int32_t cap = inputs ? g->cap_inputs : g->cap_outputs;
        int32_t **list = inputs ? &g->inputs : &g->outputs;
        int *count = inputs ? &g->n_inputs : &g->n_outputs;
        if (*count == cap) {
            int32_t next = cap ? cap * 2 : 8;
            int32_t *grown = kn_alloc(sizeof(int32_t) * (size_t)next);
            if (!grown) return kn_last_status();
            if (*count) memcpy(grown, *list, sizeof(int32_t) * (size_t)*count);
            kn_free(*list);
            *list = grown;
            if (inputs) g->cap_inputs = next;
            else g->cap_outputs = next;
        }
        (*list)[(*count)++] = (int32_t)v;
    }
    return KN_OK;
}

static kn_status load_graph(loader *l, const kn_json *root)
{
    const kn_json *fmt = kn__json_get(root, "format"), *ver = kn__json_get(root, "version");
    const kn_json *values = kn__json_get(root, "values"), *nodes = kn__json_get(root, "nodes");
    int64_t version;
    if (!fmt || fmt->type != KN_JSON_STRING || strcmp(fmt->string, FORMAT_NAME))
        return bad(l, "not a kiln graph (format is not '%s')", FORMAT_NAME);
    if (!read_int(ver, 0, INT32_MAX, &version) || version != FORMAT_VERSION)
        return bad(l, "format version %lld is not supported (this kiln reads version %d)",
                   ver && ver->is_int ? (long long)ver->integer : -1LL, FORMAT_VERSION);
    if (!values || values->type != KN_JSON_ARRAY || !nodes || nodes->type != KN_JSON_ARRAY)
        return bad(l, "values and nodes must be arrays");
    kn_status s = KN_OK;
    for (int i = 0; i < values->n && !s; i++)
        s = load_value(l, &values->items[i], i);
    for (int i = 0; i < nodes->n && !s; i++)
        s = load_node(l, &nodes->items[i], i);
    if (!s) s = load_list(l, kn__json_get(root, "inputs"), true);
    if (!s) s = load_list(l, kn__json_get(root, "outputs"), false);
    for (int32_t v = 0; !s && v < l->g->n_values; v++)
        if (l->g->values[v].kind == KN_VALUE_NODE && l->g->values[v].node < 0)
            s = bad(l, "value %d is a node output that no node produces", v);
    if (!s) s = kn__pass_infer(l->g, 0); /* every node must fit its inputs */
    return s;
}

kn_graph *kn_graph_load(const char *json_path, const char *safetensors_path)
{
    if (!json_path || !safetensors_path)
        return kn__error_null(KN_ERR_ARG, "graph_load: a path is NULL");
    char *text = NULL;
    size_t len = 0;
    if (kn__read_file("graph_load", json_path, MAX_JSON, &text, &len)) return NULL;
    kn_json *root = kn__json_parse("graph_load: JSON", text, len);
    kn_free(text);
    if (!root) return NULL;
    kn_tensor_map *tensors = kn_safetensors_load(safetensors_path);
    kn_graph *g = tensors ? kn_graph_new() : NULL;
    loader l = {json_path, g, tensors};
    kn_status s = g ? load_graph(&l, root) : kn_last_status();
    kn__json_free(root);
    kn_tensor_map_free(tensors);
    if (s) {
        kn_graph_free(g);
        return NULL;
    }
    return g;
}
