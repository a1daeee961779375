/* onnx_tensor.c — ONNX TensorProtos as kiln tensors: dtype mapping, data
 * from raw_data (little-endian), the typed fields or an external file beside
 * the model (bounds- and path-checked), and TensorProto files (read, and
 * written atomically). */
#if KILN_HAVE_ONNX
#include "onnx_core.h"

#include "../../tensor/tensor.h"
#include "../json.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- dtypes */
static const struct {
    int32_t onnx;
    kn_dtype dt;
} dtype_map[] = {
    {ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, KN_F32},
    {ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE, KN_F64},
    {ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16, KN_F16},
    {ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16, KN_BF16},
    {ONNX__TENSOR_PROTO__DATA_TYPE__INT8, KN_I8},
    {ONNX__TENSOR_PROTO__DATA_TYPE__UINT8, KN_U8},
    {ONNX__TENSOR_PROTO__DATA_TYPE__INT32, KN_I32},
    {ONNX__TENSOR_PROTO__DATA_TYPE__INT64, KN_I64},
    {ONNX__TENSOR_PROTO__DATA_TYPE__BOOL, KN_BOOL},
    {ONNX__TENSOR_PROTO__DATA_TYPE__STRING, KN_STRING},
};

bool kn__onnx_dtype(int32_t onnx_type, kn_dtype *dt)
{
    for (int i = 0; i < KN_ARRAY_LEN(dtype_map); i++)
        if (dtype_map[i].onnx == onnx_type) {
            if (dt) *dt = dtype_map[i].dt;
            return true;
        }
    return false;
}

int32_t kn__onnx_type_of(kn_dtype dt)
{
    for (int i = 0; i < KN_ARRAY_LEN(dtype_map); i++)
        if (dtype_map[i].dt == dt) return dtype_map[i].onnx;
    return ONNX__TENSOR_PROTO__DATA_TYPE__UNDEFINED;
}

const char *kn__onnx_type_name(int32_t onnx_type)
{
    static const char *names[] = {"UNDEFINED",  "FLOAT",   "UINT8",  "INT8",   "UINT16",
                                  "INT16",      "INT32",   "INT64",  "STRING", "BOOL",
                                  "FLOAT16",    "DOUBLE",  "UINT32", "UINT64", "COMPLEX64",
                                  "COMPLEX128", "BFLOAT16"};
    return onnx_type >= 0 && onnx_type < KN_ARRAY_LEN(names) ? names[onnx_type] : "?";
}

/* ---------------------------------------------------------------- allocator */
static void *pb_alloc(void *user, size_t size)
{
    kn__onnx_pballoc *pa = user;
    void *p = kn_alloc(size ? size : 1);
    if (!p) pa->failed = true;
    return p;
}

static void pb_free(void *user, void *p)
{
    (void)user;
    kn_free(p);
}

void kn__onnx_pballoc_init(kn__onnx_pballoc *pa)
{
    pa->a.alloc = pb_alloc;
    pa->a.free = pb_free;
    pa->a.allocator_data = pa;
    pa->failed = false;
}

/* ---------------------------------------------------------------- external data */
typedef struct ext_info {
    const char *location;
    int64_t offset, length; /* length -1: to the end of the file */
} ext_info;

static bool parse_size(const char *s, int64_t *out)
{
    if (!s || !*s) return false;
    int64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (INT64_MAX - 9) / 10) return false;
        v = v * 10 + (*s - '0');
    }
    *out = v;
    return true;
}

static kn_status ext_parse(const Onnx__TensorProto *t, const char *name, ext_info *e)
{
    e->location = NULL, e->offset = 0, e->length = -1;
    for (size_t i = 0; i < t->n_external_data; i++) {
        const Onnx__StringStringEntryProto *kv = t->external_data[i];
        const char *k = kv ? kn__onnx_str(kv->key) : "", *v = kv ? kn__onnx_str(kv->value) : "";
        if (!strcmp(k, "location"))
            e->location = v;
        else if (!strcmp(k, "offset") && !parse_size(v, &e->offset))
            return kn__error(KN_ERR_IO,
                             "onnx: tensor '%s': external data offset '%s' is not a size", name, v);
        else if (!strcmp(k, "length") && !parse_size(v, &e->length))
            return kn__error(KN_ERR_IO,
                             "onnx: tensor '%s': external data length '%s' is not a size", name, v);
    }
    if (!e->location || !e->location[0])
        return kn__error(KN_ERR_IO, "onnx: tensor '%s': external data without a location", name);
    return KN_OK;
}

/* True when location stays inside the model's folder: relative, no ".."
 * component (symbolic links are checked after resolving, in ext_open). */
static bool location_ok(const char *loc)
{
    if (loc[0] == '/' || strchr(loc, '\\')) return false;
    for (const char *p = loc; *p;) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.') return false;
        p += len + (end != NULL);
    }
    return true;
}

/* Opens base_dir/location, refusing a path that resolves outside base_dir. */
static FILE *ext_open(const char *base_dir, const char *loc, const char *name)
{
    size_t n = strlen(base_dir) + strlen(loc) + 2;
    char *path = kn_alloc(n), *real_base = NULL, *real_path = NULL;
    if (!path) return NULL;
    snprintf(path, n, "%s/%s", base_dir, loc);
    FILE *f = NULL;
    real_base = realpath(base_dir, NULL);
    real_path = real_base ? realpath(path, NULL) : NULL;
    if (!real_base || !real_path)
        kn__error(KN_ERR_IO, "onnx: tensor '%s': external data file '%s' not found: %s", name, path,
                  strerror(errno));
    else {
        size_t bl = strlen(real_base);
        bool inside = !strncmp(real_path, real_base, bl) && (real_path[bl] == '/' || bl == 1);
        if (!inside)
            kn__error(KN_ERR_IO, "onnx: tensor '%s': external data '%s' leaves the model's folder",
                      name, loc);
        else if (!(f = fopen(real_path, "rb")))
            kn__error(KN_ERR_IO, "onnx: tensor '%s': cannot open '%s': %s", name, path,
                      strerror(errno));
    }
    free(real_base), free(real_path);
    kn_free(path);
    return f;
}

static kn_status ext_read(const Onnx__TensorProto *t, const char *name, const char *base_dir,
                          void *dst, size_t bytes)
{
    ext_info e;
    if (ext_parse(t, name, &e)) return kn_last_status();
    if (!base_dir)
        return kn__error(KN_ERR_IO,
                         "onnx: tensor '%s': external data '%s' but the model was loaded "
                         "from memory without a folder",
                         name, e.location);
    if (!location_ok(e.location))
        return kn__error(KN_ERR_IO,
                         "onnx: tensor '%s': external data '%s' leaves the model's folder "
                         "(absolute paths and '..' are refused)",
                         name, e.location);
    FILE *f = ext_open(base_dir, e.location, name);
    if (!f) return kn_last_status();
    struct stat st;
    kn_status s = KN_OK;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode))
        s = kn__error(KN_ERR_IO, "onnx: tensor '%s': '%s' is not a regular file", name, e.location);
    int64_t size = s ? 0 : (int64_t)st.st_size;
    int64_t length = e.length < 0 ? size - e.offset : e.length;
    if (!s && (e.offset > size || length > size - e.offset))
        s = kn__error(KN_ERR_IO,
                      "onnx: tensor '%s': external data [%lld, +%lld) is past the end of "
                      "'%s' (%lld bytes)",
                      name, (long long)e.offset, (long long)length, e.location, (long long)size);
    else if (!s && (uint64_t)length != bytes)
        s = kn__error(KN_ERR_IO,
                      "onnx: tensor '%s': external data has %lld bytes, its shape and "
                      "dtype need %zu",
                      name, (long long)length, bytes);
    if (!s && (fseeko(f, (off_t)e.offset, SEEK_SET) != 0 || fread(dst, 1, bytes, f) != bytes))
        s = kn__error(KN_ERR_IO, "onnx: tensor '%s': reading '%s' failed", name, e.location);
    fclose(f);
    return s;
}

/* ---------------------------------------------------------------- typed fields */
/* The typed field the spec assigns to dt: its value count and name. */
static size_t typed_count(const Onnx__TensorProto *t, kn_dtype dt, const char **field)
{
    switch (dt) {
    case KN_F32:
        return *field = "float_data", t->n_float_data;
    case KN_F64:
        return *field = "double_data", t->n_double_data;
    case KN_I64:
        return *field = "int64_data", t->n_int64_data;
    default:
        return *field = "int32_data", t->n_int32_data; /* i32, i8, u8, bool, f16/bf16 bits */
    }
}

/* Fills dst (numel elements of dt, the count already checked). */
static void typed_read(const Onnx__TensorProto *t, kn_dtype dt, void *dst, size_t n)
{
    switch (dt) {
    case KN_F32:
        memcpy(dst, t->float_data, n * sizeof(float));
        return;
    case KN_F64:
        memcpy(dst, t->double_data, n * sizeof(double));
        return;
    case KN_I64:
        memcpy(dst, t->int64_data, n * sizeof(int64_t));
        return;
    default:
        break;
    }
    for (size_t i = 0; i < n; i++) {
        int32_t v = t->int32_data[i];
        switch (dt) {
        case KN_I32:
            ((int32_t *)dst)[i] = v;
            break;
        case KN_I8:
            ((int8_t *)dst)[i] = (int8_t)v;
            break;
        case KN_U8:
            ((uint8_t *)dst)[i] = (uint8_t)v;
            break;
        case KN_BOOL:
            ((uint8_t *)dst)[i] = v != 0;
            break;
        default:
            ((uint16_t *)dst)[i] = (uint16_t)v;
            break; /* f16, bf16 bit patterns */
        }
    }
}

static bool little_endian(void)
{
    uint16_t one = 1;
    return *(uint8_t *)&one == 1;
}

/* A STRING TensorProto: string_data holds numel byte strings (no NUL
 * inside: kiln's strings are NUL-terminated). */
static kn_tensor *strings_from_proto(const Onnx__TensorProto *t, const char *name, int64_t numel)
{
    bool external =
        t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    if (external || t->has_raw_data)
        return kn__error_null(KN_ERR_IO, "onnx: tensor '%s': strings must be in string_data", name);
    if (t->n_string_data != (size_t)numel)
        return kn__error_null(KN_ERR_IO, "onnx: tensor '%s': string_data holds %zu strings, its "
                                         "shape needs %lld", name, t->n_string_data, (long long)numel);
    char **strs = kn_alloc(sizeof(char *) * (size_t)(numel ? numel : 1));
    if (!strs) return NULL;
    kn_tensor *out = NULL;
    int64_t made = 0;
    for (; made < numel; made++) {
        const ProtobufCBinaryData *b = &t->string_data[made];
        if (b->len && memchr(b->data, 0, b->len)) {
            kn__error(KN_ERR_UNSUPPORTED, "onnx: tensor '%s': string %lld holds a NUL byte", name,
                      (long long)made);
            break;
        }
        if (!(strs[made] = kn_alloc(b->len + 1))) break;
        if (b->len) memcpy(strs[made], b->data, b->len);
        strs[made][b->len] = 0;
    }
    if (made == numel) out = kn_tensor_from_strings((int)t->n_dims, t->dims, (const char *const *)strs);
    for (int64_t i = 0; i < made; i++)
        kn_free(strs[i]);
    kn_free(strs);
    return out;
}

kn_tensor *kn__onnx_tensor_from_proto(const Onnx__TensorProto *t, const char *base_dir)
{
    if (!t) return kn__error_null(KN_ERR_ARG, "onnx: tensor is NULL");
    const char *name = kn__onnx_str(t->name);
    kn_dtype dt;
    if (!t->has_data_type || !kn__onnx_dtype(t->data_type, &dt))
        return kn__error_null(KN_ERR_UNSUPPORTED,
                              "onnx: tensor '%s': dtype %s (%d) is not supported by kiln", name,
                              kn__onnx_type_name(t->data_type), (int)t->data_type);
    if (t->segment)
        return kn__error_null(KN_ERR_UNSUPPORTED, "onnx: tensor '%s': segments are not supported",
                              name);
    if (!little_endian())
        return kn__error_null(KN_ERR_UNSUPPORTED, "onnx: big-endian hosts are not supported");
    if (t->n_dims > KN_MAX_DIMS)
        return kn__error_null(KN_ERR_UNSUPPORTED, "onnx: tensor '%s' has %zu dims, kiln allows %d",
                              name, t->n_dims, KN_MAX_DIMS);
    int64_t numel = kn__shape_numel((int)t->n_dims, t->dims);
    if (numel < 0 || numel > KN__MAX_NUMEL)
        return kn__error_null(KN_ERR_IO, "onnx: tensor '%s': dims are negative or too large", name);
    if (dt == KN_STRING) return strings_from_proto(t, name, numel);
    size_t bytes = (size_t)numel * kn_dtype_size(dt);
    bool external =
        t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    /* every size is checked against the data present before allocating */
    if (!external && t->has_raw_data && t->raw_data.len != bytes)
        return kn__error_null(
            KN_ERR_IO, "onnx: tensor '%s': raw_data has %zu bytes, its shape and dtype need %zu",
            name, t->raw_data.len, bytes);
    const char *field = NULL;
    size_t have = external || t->has_raw_data ? 0 : typed_count(t, dt, &field);
    if (field && have != (size_t)numel)
        return kn__error_null(KN_ERR_IO,
                              "onnx: tensor '%s': %s holds %zu values, its shape needs %lld", name,
                              field, have, (long long)numel);
    kn_tensor *out = kn__tensor_new(dt, (int)t->n_dims, t->dims);
    if (!out) return NULL;
    void *dst = kn__tensor_ptr(out);
    kn_status s = KN_OK;
    if (external)
        s = ext_read(t, name, base_dir, dst, bytes);
    else if (t->has_raw_data) {
        if (bytes) memcpy(dst, t->raw_data.data, bytes);
    } else if (numel)
        typed_read(t, dt, dst, (size_t)numel);
    if (!s && dt == KN_BOOL) /* any nonzero byte is true */
        for (int64_t i = 0; i < numel; i++)
            ((uint8_t *)dst)[i] = ((uint8_t *)dst)[i] != 0;
    if (s) {
        kn_tensor_unref(out);
        return NULL;
    }
    return out;
}

/* ---------------------------------------------------------------- TensorProto files */
/* The folder part of path ("." when none), kn_alloc'd. */
char *kn__onnx_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 1;
    if (slash == path) n = 1;
    char *d = kn_alloc(n + 1);
    if (!d) return NULL;
    memcpy(d, slash ? path : ".", n);
    d[n] = 0;
    return d;
}

kn_tensor *kn_onnx_read_tensor(const char *path, char *name, size_t name_size)
{
    if (!path) return kn__error_null(KN_ERR_ARG, "onnx_read_tensor: path is NULL");
    char *data = NULL, *dir = NULL;
    size_t len = 0;
    if (kn__read_file("onnx_read_tensor", path, KN_ONNX_MAX_FILE, &data, &len)) return NULL;
    kn__onnx_pballoc pa;
    kn__onnx_pballoc_init(&pa);
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(&pa.a, len, (const uint8_t *)data);
    kn_tensor *t = NULL;
    if (!tp)
        pa.failed
            ? (void)kn__error(KN_ERR_NOMEM, "onnx_read_tensor: out of memory parsing '%s'", path)
            : (void)kn__error(KN_ERR_IO, "onnx_read_tensor: '%s' is not a TensorProto", path);
    else if ((dir = kn__onnx_dirname(path)) != NULL) {
        t = kn__onnx_tensor_from_proto(tp, dir);
        if (!t) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", kn_last_error());
            kn__error(kn_last_status(), "onnx_read_tensor: '%s': %s", path, msg);
        }
    }
    if (t && name && name_size) snprintf(name, name_size, "%s", kn__onnx_str(tp->name));
    if (tp) onnx__tensor_proto__free_unpacked(tp, &pa.a);
    kn_free(dir), kn_free(data);
    return t;
}

/* Packs tp and writes it to path atomically. */
static kn_status write_proto(const char *path, Onnx__TensorProto *tp)
{
    size_t size = onnx__tensor_proto__get_packed_size(tp);
    uint8_t *buf = kn_alloc(size ? size : 1);
    if (!buf) return kn_last_status();
    kn_status s = KN_OK;
    if (onnx__tensor_proto__pack(tp, buf) != size)
        s = kn__error(KN_ERR_INTERNAL, "onnx_write_tensor: packing '%s' failed", path);
    if (!s) s = kn__write_file_atomic("onnx_write_tensor", path, buf, size);
    kn_free(buf);
    return s;
}

/* A string tensor as string_data (the elements in C order). */
static kn_status write_strings(const char *path, Onnx__TensorProto *tp, const kn_tensor *t)
{
    int64_t n = kn_tensor_numel(t);
    ProtobufCBinaryData *sd = kn_alloc(sizeof *sd * (size_t)(n ? n : 1));
    if (!sd) return kn_last_status();
    for (int64_t i = 0; i < n; i++) {
        const char *str = kn_tensor_string(t, i);
        sd[i].len = strlen(str);
        sd[i].data = (uint8_t *)str;
    }
    tp->n_string_data = (size_t)n;
    tp->string_data = sd;
    kn_status s = write_proto(path, tp);
    kn_free(sd);
    return s;
}

kn_status kn_onnx_write_tensor(const char *path, const kn_tensor *t, const char *name)
{
    if (!path || !t) return kn__error(KN_ERR_ARG, "onnx_write_tensor: path or tensor is NULL");
    if (!t->storage) return kn__error(KN_ERR_ARG, "onnx_write_tensor: the tensor is symbolic");
    if (!little_endian())
        return kn__error(KN_ERR_UNSUPPORTED, "onnx_write_tensor: big-endian host");
    Onnx__TensorProto tp = ONNX__TENSOR_PROTO__INIT;
    int64_t dims[KN_MAX_DIMS];
    memcpy(dims, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    tp.n_dims = (size_t)t->ndim;
    tp.dims = dims;
    tp.has_data_type = true;
    tp.data_type = kn__onnx_type_of(t->dtype);
    tp.name = (char *)(name ? name : "");
    if (t->dtype == KN_STRING) return write_strings(path, &tp, t);
    size_t bytes = (size_t)kn_tensor_numel(t) * kn_dtype_size(t->dtype);
    uint8_t *raw = kn_alloc(bytes ? bytes : 1);
    if (!raw) return kn_last_status();
    kn_status s = bytes ? kn_tensor_copy_to(t, t->dtype, raw, bytes) : KN_OK;
    tp.has_raw_data = true;
    tp.raw_data.data = raw;
    tp.raw_data.len = bytes;
    if (!s) s = write_proto(path, &tp);
    kn_free(raw);
    return s;
}
#endif
