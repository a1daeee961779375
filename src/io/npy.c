/* npy.c — NumPy .npy files (format versions 1.0-3.0): one array, a text
 * header (a Python dict literal: descr, fortran_order, shape) then the raw
 * data. Reading checks the magic, the header's length and syntax, the dtype
 * and that the data present matches the shape; writing is atomic. Only
 * little-endian (or byte-sized) C-order arrays of kiln's dtypes; bf16 has
 * no NumPy dtype and is written as f32. */
#include "json.h"

#include "../tensor/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPY_MAX_BYTES ((size_t)1 << 34) /* 16 GiB */

static const struct {
    const char *descr;
    kn_dtype dt;
} npy_types[] = {
    {"<f4", KN_F32}, {"<f8", KN_F64}, {"<f2", KN_F16}, {"<i8", KN_I64},
    {"<i4", KN_I32}, {"|i1", KN_I8},  {"|u1", KN_U8},  {"|b1", KN_BOOL},
};

/* The value after 'key': in the header dict, or NULL. */
static const char *dict_value(const char *h, const char *key)
{
    char quoted[32];
    snprintf(quoted, sizeof quoted, "'%s'", key);
    const char *k = strstr(h, quoted);
    if (!k) return NULL;
    k += strlen(quoted);
    while (*k == ' ') k++;
    if (*k != ':') return NULL;
    k++;
    while (*k == ' ') k++;
    return k;
}

static kn_status parse_header(const char *path, const char *h, kn_dtype *dt, int *ndim, int64_t *shape)
{
    const char *d = dict_value(h, "descr"), *f = dict_value(h, "fortran_order"),
               *s = dict_value(h, "shape");
    if (!d || !f || !s || *d != '\'' || *s != '(')
        return kn__error(KN_ERR_IO, "npy_load: '%s': the header lacks descr, fortran_order or shape", path);
    bool found = false;
    for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0] && !found; i++) {
        size_t n = strlen(npy_types[i].descr);
        /* '<u1' and '|u1' are the same for byte types */
        bool same = !strncmp(d + 1, npy_types[i].descr, n) ||
                    (npy_types[i].descr[0] == '|' && d[1] == '<' && !strncmp(d + 2, npy_types[i].descr + 1, n - 1));
        if (same && d[1 + n] == '\'') *dt = npy_types[i].dt, found = true;
    }
    if (!found) {
        char descr[16] = {0};
        for (int i = 0; i < 15 && d[1 + i] && d[1 + i] != '\''; i++)
            descr[i] = d[1 + i];
        return kn__error(KN_ERR_UNSUPPORTED, "npy_load: '%s': dtype '%s' is not one kiln reads (f4, f8, f2, "
                                             "i8, i4, i1, u1, b1, little-endian)", path, descr);
    }
    if (strncmp(f, "False", 5))
        return kn__error(KN_ERR_UNSUPPORTED, "npy_load: '%s': Fortran-order arrays are not read", path);
    *ndim = 0;
    for (s++;;) {
        while (*s == ' ' || *s == ',') s++;
        if (*s == ')') break;
        char *end;
        long long v = strtoll(s, &end, 10);
        if (end == s || v < 0)
            return kn__error(KN_ERR_IO, "npy_load: '%s': bad shape in the header", path);
        if (*ndim == KN_MAX_DIMS)
            return kn__error(KN_ERR_UNSUPPORTED, "npy_load: '%s': more than %d dims", path, KN_MAX_DIMS);
        shape[(*ndim)++] = v;
        s = end;
        if (*s != ',' && *s != ')' && *s != ' ')
            return kn__error(KN_ERR_IO, "npy_load: '%s': bad shape in the header", path);
    }
    return KN_OK;
}

kn_tensor *kn_npy_load(const char *path)
{
    if (!path) return kn__error_null(KN_ERR_ARG, "npy_load: path is NULL");
    char *data = NULL;
    size_t len = 0;
    if (kn__read_file("npy_load", path, NPY_MAX_BYTES, &data, &len)) return NULL;
    kn_tensor *t = NULL;
    kn_status s = KN_OK;
    if (len < 10 || memcmp(data, "\x93NUMPY", 6))
        s = kn__error(KN_ERR_IO, "npy_load: '%s' is not a .npy file (no \\x93NUMPY magic)", path);
    size_t hlen = 0, off = 0;
    if (!s && data[6] == 1) hlen = (unsigned char)data[8] | (size_t)(unsigned char)data[9] << 8, off = 10;
    else if (!s && (data[6] == 2 || data[6] == 3) && len >= 12)
        hlen = (unsigned char)data[8] | (size_t)(unsigned char)data[9] << 8 |
               (size_t)(unsigned char)data[10] << 16 | (size_t)(unsigned char)data[11] << 24,
        off = 12;
    else if (!s) s = kn__error(KN_ERR_UNSUPPORTED, "npy_load: '%s': format version %d", path, data[6]);
    if (!s && (hlen > len - off || hlen > 65536))
        s = kn__error(KN_ERR_IO, "npy_load: '%s': header of %zu bytes runs past the file", path, hlen);
    kn_dtype dt = KN_F32;
    int ndim = 0;
    int64_t shape[KN_MAX_DIMS];
    char *header = s ? NULL : kn_alloc(hlen + 1);
    if (!s && !header) s = kn_last_status();
    if (!s) {
        memcpy(header, data + off, hlen);
        header[hlen] = 0;
        s = parse_header(path, header, &dt, &ndim, shape);
    }
    size_t need = kn_dtype_size(dt);
    for (int i = 0; !s && i < ndim; i++)
        if (shape[i] && need > NPY_MAX_BYTES / (size_t)shape[i])
            s = kn__error(KN_ERR_IO, "npy_load: '%s': the shape is too large", path);
        else need *= (size_t)shape[i];
    if (!s && need != len - off - hlen)
        s = kn__error(KN_ERR_IO, "npy_load: '%s': the header's shape needs %zu bytes of data, the file has %zu",
                      path, need, len - off - hlen);
    if (!s) t = kn_tensor_from_data(dt, ndim, shape, data + off + hlen);
    kn_free(header);
    kn_free(data);
    return t;
}

kn_status kn_npy_save(const char *path, const kn_tensor *t)
{
    if (!path || !t) return kn__error(KN_ERR_ARG, "npy_save: NULL path or tensor");
    if (!t->storage) return kn__error(KN_ERR_ARG, "npy_save: the tensor is symbolic (no data)");
    kn_dtype dt = t->dtype == KN_BF16 ? KN_F32 : t->dtype;
    const char *descr = NULL;
    for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
        if (npy_types[i].dt == dt) descr = npy_types[i].descr;
    if (!descr) return kn__error(KN_ERR_UNSUPPORTED, "npy_save: dtype %s has no .npy form", kn_dtype_name(dt));
    char header[512];
    int n = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < t->ndim; i++)
        n += snprintf(header + n, sizeof header - (size_t)n, "%lld,%s", (long long)t->shape[i],
                      i + 1 < t->ndim ? " " : "");
    n += snprintf(header + n, sizeof header - (size_t)n, "), }");
    /* pad with spaces to a multiple of 64 with the 10-byte preamble, end with \n */
    int total = (10 + n + 1 + 63) / 64 * 64;
    size_t data_bytes = (size_t)kn_tensor_numel(t) * kn_dtype_size(dt);
    char *buf = kn_alloc((size_t)total + data_bytes + 1);
    if (!buf) return kn_last_status();
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)((total - 10) & 0xff), buf[9] = (char)((total - 10) >> 8);
    memcpy(buf + 10, header, (size_t)n);
    memset(buf + 10 + n, ' ', (size_t)(total - 10 - n - 1));
    buf[total - 1] = '\n';
    kn_status s = kn_tensor_copy_to(t, dt, buf + total, data_bytes);
    if (!s) s = kn__write_file_atomic("npy_save", path, buf, (size_t)total + data_bytes);
    kn_free(buf);
    return s;
}
