/* safetensors.c — named tensor maps and the safetensors format: an 8-byte
 * little-endian header length, a JSON header {name: {dtype, shape,
 * data_offsets}}, then the raw little-endian data. The reader checks every
 * length and offset (in range, sizes matching dtype and shape, no overlaps)
 * before copying anything. */
#include "json.h"

#include "../tensor/tensor.h"

#include <stdlib.h>

#define MAX_HEADER (100u << 20)
#define MAX_FILE ((size_t)1 << 40)

struct kn_tensor_map {
    int n, cap;
    char **names;
    kn_tensor **tensors;
};

kn_tensor_map *kn_tensor_map_new(void)
{
    kn_tensor_map *m = kn_alloc(sizeof *m);
    if (m) memset(m, 0, sizeof *m);
    return m;
}

void kn_tensor_map_free(kn_tensor_map *m)
{
    if (!m) return;
    for (int i = 0; i < m->n; i++) {
        kn_free(m->names[i]);
        kn_tensor_unref(m->tensors[i]);
    }
    kn_free(m->names), kn_free(m->tensors), kn_free(m);
}

static int map_find(const kn_tensor_map *m, const char *name)
{
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->names[i], name)) return i;
    return -1;
}

kn_status kn_tensor_map_set(kn_tensor_map *m, const char *name, kn_tensor *t)
{
    if (!m || !name || !t) return kn__error(KN_ERR_ARG, "tensor_map_set: NULL argument");
    int i = map_find(m, name);
    if (i >= 0) {
        kn_tensor_unref(m->tensors[i]);
        m->tensors[i] = kn_tensor_ref(t);
        return KN_OK;
    }
    if (m->n == m->cap) {
        int cap = m->cap ? m->cap * 2 : 16;
        char **names = kn_alloc(sizeof(char *) * (size_t)cap);
        kn_tensor **ts = kn_alloc(sizeof(kn_tensor *) * (size_t)cap);
        if (!names || !ts) {
            kn_free(names), kn_free(ts);
            return kn_last_status();
        }
        if (m->n) {
            memcpy(names, m->names, sizeof(char *) * (size_t)m->n);
            memcpy(ts, m->tensors, sizeof(kn_tensor *) * (size_t)m->n);
        }
        kn_free(m->names), kn_free(m->tensors);
        m->names = names, m->tensors = ts, m->cap = cap;
    }
    size_t len = strlen(name) + 1;
    char *copy = kn_alloc(len);
    if (!copy) return kn_last_status();
    memcpy(copy, name, len);
    m->names[m->n] = copy;
    m->tensors[m->n++] = kn_tensor_ref(t);
    return KN_OK;
}

kn_tensor *kn_tensor_map_get(const kn_tensor_map *m, const char *name)
{
    int i = m && name ? map_find(m, name) : -1;
    return i >= 0 ? m->tensors[i] : NULL;
}
int kn_tensor_map_size(const kn_tensor_map *m) { return m ? m->n : 0; }
const char *kn_tensor_map_name(const kn_tensor_map *m, int i)
{
    return m && i >= 0 && i < m->n ? m->names[i] : NULL;
}
kn_tensor *kn_tensor_map_at(const kn_tensor_map *m, int i)
{
    return m && i >= 0 && i < m->n ? m->tensors[i] : NULL;
}

/* ---- dtype names of the format */
static const char *st_dtype_names[KN_DTYPE_COUNT] = {
    [KN_F32] = "F32", [KN_F64] = "F64", [KN_F16] = "F16", [KN_BF16] = "BF16", [KN_I8] = "I8",
    [KN_U8] = "U8",   [KN_I32] = "I32", [KN_I64] = "I64", [KN_BOOL] = "BOOL"};

static bool st_dtype(const char *s, kn_dtype *dt)
{
    for (int i = 0; i < KN_DTYPE_COUNT; i++)
        if (st_dtype_names[i] && !strcmp(s, st_dtype_names[i])) return *dt = (kn_dtype)i, true;
    return false;
}

static bool little_endian(void)
{
    uint16_t one = 1;
    return *(uint8_t *)&one == 1;
}

/* ---- writing */
kn_status kn_safetensors_save(const char *path, const kn_tensor_map *m)
{
    if (!path || !m) return kn__error(KN_ERR_ARG, "safetensors_save: path or map is NULL");
    if (!little_endian()) return kn__error(KN_ERR_UNSUPPORTED, "safetensors_save: big-endian host");
    kn_strbuf h = {0};
    size_t offset = 0;
    kn__sb_printf(&h, "{");
    for (int i = 0; i < m->n; i++) {
        kn_tensor *t = m->tensors[i];
        if (!t->storage) {
            kn__sb_free(&h);
            return kn__error(KN_ERR_ARG, "safetensors_save: '%s' is symbolic", m->names[i]);
        }
        if (!st_dtype_names[t->dtype]) {
            kn__sb_free(&h);
            return kn__error(KN_ERR_UNSUPPORTED, "safetensors_save: '%s' is a %s tensor, which "
                             "safetensors files do not hold", m->names[i], kn_dtype_name(t->dtype));
        }
        size_t bytes = (size_t)kn_tensor_numel(t) * kn_dtype_size(t->dtype);
        kn__sb_printf(&h, i ? "," : "");
        kn__sb_json_string(&h, m->names[i]);
        kn__sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype_names[t->dtype]);
        for (int d = 0; d < t->ndim; d++)
            kn__sb_printf(&h, d ? ",%lld" : "%lld", (long long)t->shape[d]);
        kn__sb_printf(&h, "],\"data_offsets\":[%zu,%zu]}", offset, offset + bytes);
        offset += bytes;
    }
    kn__sb_printf(&h, "}");
    while (!h.failed && h.len % 8)
        kn__sb_printf(&h, " ");
    char *file = h.failed ? NULL : kn_alloc(8 + h.len + offset + 1);
    if (!file) {
        kn__sb_free(&h);
        return kn__error(KN_ERR_NOMEM, "safetensors_save: out of memory building '%s'", path);
    }
    uint64_t hlen = h.len;
    memcpy(file, &hlen, 8);
    memcpy(file + 8, h.data, h.len);
    size_t pos = 8 + h.len;
    kn_status s = KN_OK;
    for (int i = 0; i < m->n && !s; i++) {
        kn_tensor *t = m->tensors[i];
        size_t bytes = (size_t)kn_tensor_numel(t) * kn_dtype_size(t->dtype);
        s = kn_tensor_copy_to(t, t->dtype, file + pos, bytes);
        pos += bytes;
    }
    if (!s) s = kn__write_file_atomic("safetensors_save", path, file, pos);
    kn_free(file);
    kn__sb_free(&h);
    return s;
}

/* ---- reading */
typedef struct entry {
    const char *name;
    kn_dtype dtype;
    int ndim;
    int64_t shape[KN_MAX_DIMS];
    uint64_t begin, end;
} entry;

static kn_status bad(const char *path, const char *name, const char *what)
{
    return kn__error(KN_ERR_IO, "safetensors_load: '%s': tensor '%s': %s", path, name, what);
}

static kn_status parse_entry(const char *path, const char *name, const kn_json *j, uint64_t data_len,
                             entry *e)
{
    const kn_json *dt = kn__json_get(j, "dtype"), *shape = kn__json_get(j, "shape"),
                  *off = kn__json_get(j, "data_offsets");
    e->name = name;
    if (!dt || dt->type != KN_JSON_STRING || !st_dtype(dt->string, &e->dtype))
        return bad(path, name, "dtype missing or not one of F32 F64 F16 BF16 I8 U8 I32 I64 BOOL");
    if (!shape || shape->type != KN_JSON_ARRAY || shape->n > KN_MAX_DIMS)
        return bad(path, name, "shape missing or has more than 8 dims");
    e->ndim = shape->n;
    for (int d = 0; d < shape->n; d++) {
        const kn_json *v = &shape->items[d];
        if (v->type != KN_JSON_NUMBER || !v->is_int || v->integer < 0)
            return bad(path, name, "shape entries must be non-negative integers");
        e->shape[d] = v->integer;
    }
    int64_t numel = kn__shape_numel(e->ndim, e->shape), bytes;
    if (numel < 0 || numel > KN__MAX_NUMEL ||
        kn__mul_overflow(numel, (int64_t)kn_dtype_size(e->dtype), &bytes))
        return bad(path, name, "shape is too large");
    if (!off || off->type != KN_JSON_ARRAY || off->n != 2 || off->items[0].type != KN_JSON_NUMBER ||
        off->items[1].type != KN_JSON_NUMBER || !off->items[0].is_int || !off->items[1].is_int ||
        off->items[0].integer < 0 || off->items[1].integer < off->items[0].integer)
        return bad(path, name, "data_offsets must be two integers 0 <= begin <= end");
    e->begin = (uint64_t)off->items[0].integer;
    e->end = (uint64_t)off->items[1].integer;
    if (e->end > data_len) return bad(path, name, "data_offsets point past the end of the file");
    if (e->end - e->begin != (uint64_t)bytes)
        return bad(path, name, "data_offsets span does not match dtype and shape");
    return KN_OK;
}

static int by_begin(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static kn_status check_overlaps(const char *path, entry *e, int n)
{
    qsort(e, (size_t)n, sizeof *e, by_begin);
    for (int i = 1; i < n; i++)
        if (e[i].begin < e[i - 1].end && e[i].end > e[i].begin)
            return kn__error(KN_ERR_IO, "safetensors_load: '%s': tensors '%s' and '%s' overlap", path,
                             e[i - 1].name, e[i].name);
    return KN_OK;
}

static kn_status load_entries(const char *path, const kn_json *header, const char *data,
                              uint64_t data_len, kn_tensor_map *m)
{
    if (header->type != KN_JSON_OBJECT)
        return kn__error(KN_ERR_IO, "safetensors_load: '%s': the header is not a JSON object", path);
    entry *entries = kn_alloc(sizeof(entry) * (size_t)(header->n + 1));
    if (!entries) return kn_last_status();
    int n = 0;
    kn_status s = KN_OK;
    for (int i = 0; i < header->n && !s; i++) {
        if (!strcmp(header->keys[i], "__metadata__")) continue;
        for (int k = 0; k < i && !s; k++)
            if (!strcmp(header->keys[k], header->keys[i])) s = bad(path, header->keys[i], "appears twice");
        if (!s) s = parse_entry(path, header->keys[i], &header->items[i], data_len, &entries[n++]);
    }
    if (!s) s = check_overlaps(path, entries, n);
    for (int i = 0; i < n && !s; i++) {
        kn_tensor *t = kn_tensor_from_data(entries[i].dtype, entries[i].ndim, entries[i].shape,
                                           data + entries[i].begin);
        s = t ? kn_tensor_map_set(m, entries[i].name, t) : kn_last_status();
        kn_tensor_unref(t);
    }
    kn_free(entries);
    return s;
}

kn_tensor_map *kn_safetensors_load(const char *path)
{
    if (!little_endian()) return kn__error_null(KN_ERR_UNSUPPORTED, "safetensors_load: big-endian host");
    char *file = NULL;
    size_t len = 0;
    if (kn__read_file("safetensors_load", path, MAX_FILE, &file, &len)) return NULL;
    kn_status s = KN_OK;
    uint64_t hlen = 0;
    if (len < 8) s = kn__error(KN_ERR_IO, "safetensors_load: '%s' is %zu bytes, too short for a header", path, len);
    else memcpy(&hlen, file, 8);
    if (!s && (hlen > MAX_HEADER || hlen > len - 8))
        s = kn__error(KN_ERR_IO, "safetensors_load: '%s': header length %llu exceeds the file (%zu bytes)",
                      path, (unsigned long long)hlen, len);
    kn_json *header = s ? NULL : kn__json_parse("safetensors_load: header", file + 8, (size_t)hlen);
    if (!s && !header) s = kn_last_status();
    kn_tensor_map *m = s ? NULL : kn_tensor_map_new();
    if (!s && !m) s = kn_last_status();
    if (!s) s = load_entries(path, header, file + 8 + hlen, len - 8 - hlen, m);
    kn__json_free(header);
    kn_free(file);
    if (s) {
        kn_tensor_map_free(m);
        return NULL;
    }
    return m;
}
