/* dataset_files.c — datasets read from files: MNIST/Fashion-MNIST IDX
 * (plain, or gzip when built with zlib: KILN_HAVE_ZLIB), CIFAR-10/100
 * binary, CSV tables. Each file is checked (magic, dims, sizes, counts,
 * label ranges) before use and the whole data becomes tensors behind a
 * kn_dataset_tensors. Relies on src/tensor and io/json.h's file reader. */
#include "data_internal.h"
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#ifdef KILN_HAVE_ZLIB
#include <zlib.h>
#endif

#define MAX_FILE_BYTES ((size_t)1 << 34)

bool kn_dataset_gzip_supported(void)
{
#ifdef KILN_HAVE_ZLIB
    return true;
#else
    return false;
#endif
}

static bool file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

static kn_status join_path(const char *who, char *out, size_t n, const char *dir, const char *name)
{
    int len = snprintf(out, n, "%s/%s", dir, name);
    if (len < 0 || (size_t)len >= n)
        return kn__error(KN_ERR_ARG, "%s: path '%s/%s' is too long", who, dir, name);
    return KN_OK;
}

#ifdef KILN_HAVE_ZLIB
/* Inflates a whole gzip stream (possibly several members) into a new buffer. */
static kn_status gunzip(const char *who, const char *path, const char *in, size_t in_len,
                        char **out, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
        return kn__error(KN_ERR_NOMEM, "%s: zlib init failed", who);
    size_t cap = in_len * 4 + 1024, len = 0;
    char *buf = kn_alloc(cap);
    kn_status s = buf ? KN_OK : kn_last_status();
    z.next_in = (unsigned char *)in;
    while (!s) {
        if (len == cap) {
            char *bigger = cap > MAX_FILE_BYTES / 2 ? NULL : kn_alloc(cap * 2);
            if (!bigger) {
                s = cap > MAX_FILE_BYTES / 2
                        ? kn__error(KN_ERR_IO, "%s: '%s' inflates to more than %zu bytes", who,
                                    path, MAX_FILE_BYTES)
                        : kn_last_status();
                break;
            }
            memcpy(bigger, buf, len);
            kn_free(buf);
            buf = bigger, cap *= 2;
        }
        size_t consumed = (size_t)(z.next_in - (unsigned char *)in);
        z.avail_in = (uInt)(in_len - consumed > UINT32_MAX ? UINT32_MAX : in_len - consumed);
        z.next_out = (unsigned char *)buf + len;
        z.avail_out = (uInt)(cap - len > UINT32_MAX ? UINT32_MAX : cap - len);
        uInt before = z.avail_out;
        int r = inflate(&z, Z_NO_FLUSH);
        len += before - z.avail_out;
        consumed = (size_t)(z.next_in - (unsigned char *)in);
        if (r == Z_STREAM_END) {
            if (consumed == in_len) break;
            if (inflateReset(&z) != Z_OK)
                s = kn__error(KN_ERR_IO, "%s: '%s': zlib reset failed", who, path);
        } else if (r == Z_BUF_ERROR && consumed == in_len && z.avail_out > 0) {
            s = kn__error(KN_ERR_IO, "%s: '%s' is a truncated gzip file", who, path);
        } else if (r != Z_OK && r != Z_BUF_ERROR) {
            s = kn__error(KN_ERR_IO, "%s: '%s' is a corrupt gzip file (%s)", who, path,
                          z.msg ? z.msg : "zlib error");
        }
    }
    inflateEnd(&z);
    if (s) {
        kn_free(buf);
        return s;
    }
    *out = buf, *out_len = len;
    return KN_OK;
}
#endif

/* Reads a file, inflating it when it starts with the gzip magic. */
static kn_status read_maybe_gzip(const char *who, const char *path, char **data, size_t *len)
{
    kn_status s = kn__read_file(who, path, MAX_FILE_BYTES, data, len);
    if (s || *len < 2 || (unsigned char)(*data)[0] != 0x1f || (unsigned char)(*data)[1] != 0x8b)
        return s;
#ifdef KILN_HAVE_ZLIB
    char *raw = *data;
    *data = NULL; /* until gunzip succeeds */
    s = gunzip(who, path, raw, *len, data, len);
    kn_free(raw);
    return s;
#else
    kn_free(*data);
    *data = NULL;
    return kn__error(KN_ERR_UNSUPPORTED,
                     "%s: '%s' is gzip-compressed but gzip support is not built in (kiln was built "
                     "without zlib); gunzip it first",
                     who, path);
#endif
}

/* ---------------------------------------------------------------- IDX */
static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Checks an IDX file of unsigned bytes with `ndim` dims; dims out, and the
 * offset of the data. */
static kn_status idx_check(const char *who, const char *path, const char *data, size_t len,
                           int ndim, int64_t *dims, size_t *offset)
{
    const unsigned char *p = (const unsigned char *)data;
    size_t header = 4 + 4 * (size_t)ndim;
    uint32_t want = 0x800u | (uint32_t)ndim;
    if (len < 4)
        return kn__error(KN_ERR_IO, "%s: '%s' is %zu bytes, too short for an IDX header", who, path,
                         len);
    uint32_t magic = be32(p);
    if (magic != want)
        return kn__error(KN_ERR_IO,
                         "%s: '%s' has magic number 0x%08x, expected 0x%08x (IDX, u8, %d dims)",
                         who, path, magic, want, ndim);
    if (len < header)
        return kn__error(KN_ERR_IO,
                         "%s: '%s' is %zu bytes, too short for its %zu-byte IDX header (truncated)",
                         who, path, len, header);
    int64_t total = 1;
    for (int d = 0; d < ndim; d++) {
        dims[d] = be32(p + 4 + 4 * d);
        if (kn__mul_overflow(total, dims[d], &total))
            return kn__error(KN_ERR_IO, "%s: '%s': dims overflow", who, path);
    }
    for (int d = 1; d < ndim; d++)
        if (dims[d] == 0) return kn__error(KN_ERR_IO, "%s: '%s': dim %d is 0", who, path, d);
    if ((uint64_t)total != len - header)
        return kn__error(KN_ERR_IO, "%s: '%s' is %zu bytes but its header says %zu (%s)", who, path,
                         len, header + (size_t)total,
                         (size_t)total > len - header ? "truncated" : "extra bytes at the end");
    *offset = header;
    return KN_OK;
}

/* Finds dir/name or dir/name.gz. */
static kn_status find_file(const char *who, char *out, size_t n, const char *dir, const char *name)
{
    kn_status s = join_path(who, out, n, dir, name);
    if (s || file_exists(out)) return s;
    size_t l = strlen(out);
    if (l + 4 > n) return kn__error(KN_ERR_ARG, "%s: path too long", who);
    memcpy(out + l, ".gz", 4);
    if (file_exists(out)) return KN_OK;
    out[l] = '\0';
    return kn__error(KN_ERR_IO, "%s: cannot find '%s' (nor '%s.gz')", who, out, out);
}

static void release_kn_free(void *data, void *user)
{
    kn_free(data);
}

kn_dataset *kn_dataset_mnist(const char *dir, const char *split)
{
    const char *who = "dataset_mnist";
    if (!dir || !split)
        return kn__error_null(KN_ERR_ARG, "%s: %s is NULL", who, !dir ? "dir" : "split");
    const char *prefix = !strcmp(split, "train") ? "train" : !strcmp(split, "test") ? "t10k" : NULL;
    if (!prefix)
        return kn__error_null(KN_ERR_ARG, "%s: split is '%s', expected 'train' or 'test'", who,
                              split);
    char name[64], ipath[4096], lpath[4096];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", prefix);
    if (find_file(who, ipath, sizeof ipath, dir, name)) return NULL;
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", prefix);
    if (find_file(who, lpath, sizeof lpath, dir, name)) return NULL;

    char *img = NULL, *lab = NULL;
    size_t ilen, llen, ioff, loff;
    int64_t idims[3], ldims[1];
    kn_tensor *x = NULL, *y = NULL;
    kn_dataset *ds = NULL;
    if (read_maybe_gzip(who, ipath, &img, &ilen) ||
        idx_check(who, ipath, img, ilen, 3, idims, &ioff) ||
        read_maybe_gzip(who, lpath, &lab, &llen) ||
        idx_check(who, lpath, lab, llen, 1, ldims, &loff))
        goto done;
    if (idims[0] != ldims[0]) {
        kn__error(KN_ERR_IO, "%s: '%s' has %lld images but '%s' has %lld labels", who, ipath,
                  (long long)idims[0], lpath, (long long)ldims[0]);
        goto done;
    }
    /* Images stay in the file buffer: a tensor over it, viewed past the header. */
    int64_t flat = (int64_t)ilen, shape[4] = {idims[0], 1, idims[1], idims[2]}, strides[4];
    kn_tensor *whole = kn_tensor_from_buffer(KN_U8, 1, &flat, img, release_kn_free, NULL);
    if (!whole) goto done;
    img = NULL;
    kn__contiguous_strides(4, shape, strides);
    x = kn__tensor_view(whole, 4, shape, strides, (int64_t)ioff);
    kn_tensor_unref(whole);
    y = x ? kn__tensor_new(KN_I64, 1, ldims) : NULL;
    if (!y) goto done;
    int64_t *yv = kn_tensor_data(y);
    for (int64_t i = 0; i < ldims[0]; i++)
        yv[i] = (unsigned char)lab[loff + (size_t)i];
    ds = kn_dataset_tensors(x, y);
done:
    kn_free(img), kn_free(lab);
    kn_tensor_unref(x), kn_tensor_unref(y);
    return ds;
}

/* ---------------------------------------------------------------- CIFAR */
#define CIFAR_PIXELS 3072

/* Reads the record files into one dataset. label_at: which label byte of
 * the record_size - 3072 leading ones; n_classes per label byte. */
static kn_dataset *cifar_load(const char *who, const char *dir, const char *sub, int n_files,
                              const char *const *names, int n_labels, int label_at,
                              const int *n_classes)
{
    char base[4096], path[4096];
    if (!dir) return kn__error_null(KN_ERR_ARG, "%s: dir is NULL", who);
    /* Look in dir, else in the archive's own subdirectory. */
    if (join_path(who, path, sizeof path, dir, names[0])) return NULL;
    if (!file_exists(path) && !join_path(who, base, sizeof base, dir, sub)) {
        if (join_path(who, path, sizeof path, base, names[0])) return NULL;
        if (file_exists(path)) dir = base;
    }
    size_t rec = (size_t)n_labels + CIFAR_PIXELS;
    char *data[8] = {0};
    size_t len[8];
    int64_t total = 0;
    kn_tensor *x = NULL, *y = NULL;
    kn_dataset *ds = NULL;
    for (int f = 0; f < n_files; f++) {
        if (join_path(who, path, sizeof path, dir, names[f]) ||
            kn__read_file(who, path, MAX_FILE_BYTES, &data[f], &len[f]))
            goto done;
        if (len[f] == 0 || len[f] % rec != 0) {
            kn__error(
                KN_ERR_IO,
                "%s: '%s' is %zu bytes, expected a positive multiple of the %zu-byte record%s", who,
                path, len[f], rec, len[f] % rec ? " (truncated or not a CIFAR file)" : "");
            goto done;
        }
        for (size_t r = 0; r < len[f] / rec; r++)
            for (int l = 0; l < n_labels; l++) {
                int v = (unsigned char)data[f][r * rec + (size_t)l];
                if (v >= n_classes[l]) {
                    kn__error(KN_ERR_IO, "%s: '%s' record %zu has label %d, expected 0..%d", who,
                              path, r, v, n_classes[l] - 1);
                    goto done;
                }
            }
        total += (int64_t)(len[f] / rec);
    }
    int64_t shape[4] = {total, 3, 32, 32};
    x = kn__tensor_new(KN_U8, 4, shape);
    y = x ? kn__tensor_new(KN_I64, 1, shape) : NULL;
    if (!y) goto done;
    unsigned char *xv = kn_tensor_data(x);
    int64_t *yv = kn_tensor_data(y), i = 0;
    for (int f = 0; f < n_files; f++)
        for (size_t r = 0; r < len[f] / rec; r++, i++) {
            const char *p = data[f] + r * rec;
            yv[i] = (unsigned char)p[label_at];
            memcpy(xv + i * CIFAR_PIXELS, p + n_labels, CIFAR_PIXELS);
        }
    ds = kn_dataset_tensors(x, y);
done:
    for (int f = 0; f < n_files; f++)
        kn_free(data[f]);
    kn_tensor_unref(x), kn_tensor_unref(y);
    return ds;
}

kn_dataset *kn_dataset_cifar10(const char *dir, bool train)
{
    static const char *const train_names[] = {"data_batch_1.bin", "data_batch_2.bin",
                                              "data_batch_3.bin", "data_batch_4.bin",
                                              "data_batch_5.bin"};
    static const char *const test_names[] = {"test_batch.bin"};
    static const int classes[] = {10};
    return cifar_load("dataset_cifar10", dir, "cifar-10-batches-bin", train ? 5 : 1,
                      train ? train_names : test_names, 1, 0, classes);
}

kn_dataset *kn_dataset_cifar100(const char *dir, bool train, bool fine_labels)
{
    static const char *const train_names[] = {"train.bin"}, *const test_names[] = {"test.bin"};
    static const int classes[] = {20, 100};
    return cifar_load("dataset_cifar100", dir, "cifar-100-binary", 1,
                      train ? train_names : test_names, 2, fine_labels ? 1 : 0, classes);
}

/* ---------------------------------------------------------------- CSV */
typedef struct csv_line {
    const char *begin, *end; /* without the newline */
} csv_line;

/* The next line from *p (NULL at the end of text). */
static bool next_line(const char **p, const char *end, csv_line *line)
{
    if (*p >= end) return false;
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    line->begin = *p;
    line->end = nl ? nl : end;
    if (line->end > line->begin && line->end[-1] == '\r') line->end--;
    *p = nl ? nl + 1 : end;
    return true;
}

static bool blank(const csv_line *l)
{
    for (const char *c = l->begin; c < l->end; c++)
        if (*c != ' ' && *c != '\t') return false;
    return true;
}

static int64_t count_fields(const csv_line *l)
{
    int64_t n = 1;
    for (const char *c = l->begin; c < l->end; c++)
        n += *c == ',';
    return n;
}

/* Parses one field [b, e) as a number; is_label asks for an integer. */
static kn_status parse_field(const char *path, int64_t line_no, int64_t col, const char *b,
                             const char *e, bool is_label, double *out)
{
    const char *who = "dataset_csv";
    while (b < e && (*b == ' ' || *b == '\t'))
        b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    char buf[128];
    size_t n = (size_t)(e - b);
    if (n == 0)
        return kn__error(KN_ERR_IO, "%s: '%s' line %lld, column %lld: empty field", who, path,
                         (long long)line_no, (long long)col);
    if (n >= sizeof buf)
        return kn__error(
            KN_ERR_IO,
            "%s: '%s' line %lld, column %lld: field of %zu characters is too long for a number",
            who, path, (long long)line_no, (long long)col, n);
    memcpy(buf, b, n);
    buf[n] = '\0';
    char *stop;
    errno = 0;
    double v = strtod(buf, &stop);
    if (stop != buf + n)
        return kn__error(KN_ERR_IO, "%s: '%s' line %lld, column %lld: '%s' is not a number", who,
                         path, (long long)line_no, (long long)col, buf);
    if (is_label && (!isfinite(v) || v != floor(v) || fabs(v) > 9.0e15))
        return kn__error(KN_ERR_IO, "%s: '%s' line %lld, column %lld: label '%s' is not an integer",
                         who, path, (long long)line_no, (long long)col, buf);
    *out = v;
    return KN_OK;
}

static kn_status csv_parse_row(const char *path, int64_t line_no, const csv_line *l, int64_t n_cols,
                               int label_col, float *feat, int64_t *label)
{
    const char *b = l->begin;
    for (int64_t c = 0; c < n_cols; c++) {
        const char *e = memchr(b, ',', (size_t)(l->end - b));
        if (!e) e = l->end;
        double v = 0;
        kn_status s = parse_field(path, line_no, c + 1, b, e, c == label_col, &v);
        if (s) return s;
        if (c == label_col)
            *label = (int64_t)v;
        else
            *feat++ = (float)v;
        b = e + 1;
    }
    return KN_OK;
}

kn_dataset *kn_dataset_csv(const char *path, int label_column, bool has_header)
{
    const char *who = "dataset_csv";
    if (label_column < -1)
        return kn__error_null(KN_ERR_ARG, "%s: label_column is %d, expected >= 0 or -1 (no labels)",
                              who, label_column);
    char *text;
    size_t len;
    if (kn__read_file(who, path, MAX_FILE_BYTES, &text, &len)) return NULL;
    const char *end = text + len,
               *start = len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3) ? text + 3 : text;
    const char *p = start; /* past a UTF-8 byte-order mark */
    csv_line l;
    int64_t n_cols = -1, n_rows = 0, line_no = 0;
    kn_tensor *x = NULL, *y = NULL;
    kn_dataset *ds = NULL;
    /* Pass 1: the column count (every line must agree) and the row count. */
    while (next_line(&p, end, &l)) {
        line_no++;
        if (blank(&l)) continue;
        int64_t n = count_fields(&l);
        if (n_cols < 0)
            n_cols = n;
        else if (n != n_cols) {
            kn__error(KN_ERR_IO, "%s: '%s' line %lld has %lld columns, expected %lld", who, path,
                      (long long)line_no, (long long)n, (long long)n_cols);
            goto done;
        }
        n_rows++;
    }
    if (has_header && n_rows > 0) n_rows--;
    if (n_cols < 0) {
        kn__error(KN_ERR_IO, "%s: '%s' has no rows", who, path);
        goto done;
    }
    if (label_column >= n_cols) {
        kn__error(KN_ERR_ARG, "%s: label_column is %d but '%s' has %lld columns", who, label_column,
                  path, (long long)n_cols);
        goto done;
    }
    int64_t n_feat = n_cols - (label_column >= 0), xs[2] = {n_rows, n_feat};
    if (n_feat == 0) {
        kn__error(KN_ERR_IO, "%s: '%s' has no feature columns besides the label", who, path);
        goto done;
    }
    x = kn__tensor_new(KN_F32, 2, xs);
    if (!x || (label_column >= 0 && !(y = kn__tensor_new(KN_I64, 1, xs)))) goto done;
    /* Pass 2: the numbers. */
    float *xv = kn_tensor_data(x);
    int64_t *yv = y ? kn_tensor_data(y) : NULL, row = 0;
    bool header_left = has_header;
    p = start, line_no = 0;
    while (next_line(&p, end, &l)) {
        line_no++;
        if (blank(&l)) continue;
        if (header_left) {
            header_left = false;
            continue;
        }
        int64_t dummy;
        if (csv_parse_row(path, line_no, &l, n_cols, label_column, xv + row * n_feat,
                          yv ? yv + row : &dummy))
            goto done;
        row++;
    }
    ds = kn_dataset_tensors(x, y);
done:
    kn_free(text);
    kn_tensor_unref(x), kn_tensor_unref(y);
    return ds;
}
