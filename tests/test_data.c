/* test_data.c — datasets (tensors, MNIST IDX, CIFAR-10/100, CSV: files
 * written here, good ones checked value by value, a table of corrupt and
 * truncated ones rejected with a message), the loader (batching, drop-last,
 * shuffled epochs bitwise equal for 0, 1 and 3 workers, early free with
 * workers blocked on a full queue, a failing sample surfacing from next) and
 * the transforms (against hand-computed values and PyTorch's bilinear). */
#include "harness.h"

#include "base/base.h" /* kn__error, for a user dataset that fails */
#include "golden/data.h"

#include <sys/stat.h>

#include <stdlib.h>
#include <unistd.h>
#include <time.h>

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
    static char buf[4][256];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", tmpdir, name);
    return p;
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        KT_CHECK(0, "cannot write %s", path);
        return;
    }
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

static void write_text(const char *path, const char *text)
{
    write_bytes(path, text, strlen(text));
}

static double get_at(const kn_tensor *t, int n, const int64_t *index)
{
    double v = NAN;
    (void)n;
    kn_tensor_get(t, index, &v);
    return v;
}

/* ---------------------------------------------------------------- tensors */
static void test_dataset_tensors(void)
{
    int64_t xs[3] = {5, 2, 3};
    kn_tensor *x = kn_tensor_arange(KN_F32, 0, 30, 1), *xr = NULL,
              *y = kn_tensor_arange(KN_I64, 10, 15, 1);
    xr = kn_reshape(x, 3, xs);
    kn_dataset *ds = kn_dataset_tensors(xr, y);
    KT_NOTNULL(ds);
    kn_tensor_unref(x), kn_tensor_unref(xr), kn_tensor_unref(y);
    KT_CHECK(kn_dataset_len(ds) == 5, "len %lld", (long long)kn_dataset_len(ds));
    kn_tensor *sx, *sy;
    KT_OK(kn_dataset_get(ds, 3, &sx, &sy));
    int64_t sh[2] = {2, 3};
    double ex[6] = {18, 19, 20, 21, 22, 23}, ey = 13;
    kt_check_values("dataset_tensors", sx, 2, sh, ex, 0, 0);
    kt_check_values("dataset_tensors", sy, 0, NULL, &ey, 0, 0);
    kn_tensor_unref(sx), kn_tensor_unref(sy);
    kt_expect_fail_status("dataset_get", kn_dataset_get(ds, 5, &sx, &sy), "out of range");
    kt_expect_fail_status("dataset_get", kn_dataset_get(ds, -1, &sx, &sy), "out of range");
    kn_dataset_free(ds);

    /* A non-contiguous x (a transpose) gives the right rows. */
    int64_t s2[2] = {3, 4};
    kn_tensor *a = kn_tensor_arange(KN_F64, 0, 12, 1), *m = kn_reshape(a, 2, s2),
              *mt = kn_transpose(m, 0, 1);
    ds = kn_dataset_tensors(mt, NULL);
    KT_NOTNULL(ds);
    kn_tensor_unref(a), kn_tensor_unref(m), kn_tensor_unref(mt);
    KT_OK(kn_dataset_get(ds, 1, &sx, &sy));
    double e1[3] = {1, 5, 9};
    int64_t s1[1] = {3};
    kt_check_values("dataset_tensors", sx, 1, s1, e1, 0, 0);
    KT_CHECK(sy == NULL, "no labels");
    kn_tensor_unref(sx);
    kn_dataset_free(ds);

    /* Bad inputs. */
    int64_t s3[1] = {4};
    kn_tensor *four = kn_tensor_zeros(KN_F32, 1, s3), *five = kn_tensor_zeros(KN_I64, 1, xs);
    kn_tensor *scalar = kn_tensor_scalar(KN_F32, 1), *sym = kn_tensor_symbolic(KN_F32, 1, s3);
    kt_expect_fail_status("dataset_tensors",
                          kn_dataset_tensors(four, five) ? KN_OK : kn_last_status(), "samples");
    kt_expect_fail_status("dataset_tensors",
                          kn_dataset_tensors(scalar, NULL) ? KN_OK : kn_last_status(), "0-d");
    kt_expect_fail_status("dataset_tensors",
                          kn_dataset_tensors(sym, NULL) ? KN_OK : kn_last_status(), "symbolic");
    kt_expect_fail_status("dataset_tensors",
                          kn_dataset_tensors(NULL, NULL) ? KN_OK : kn_last_status(), "NULL");
    kn_tensor_unref(four), kn_tensor_unref(five), kn_tensor_unref(scalar), kn_tensor_unref(sym);
}

/* ---------------------------------------------------------------- MNIST */
static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16),
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* An IDX file: magic, dims, then `n` data bytes (value i*7+k, mod 256). */
static size_t make_idx(unsigned char *buf, uint32_t magic, int ndim, const uint32_t *dims, size_t n,
                       int k)
{
    put_be32(buf, magic);
    for (int d = 0; d < ndim; d++)
        put_be32(buf + 4 + 4 * d, dims[d]);
    size_t h = 4 + 4 * (size_t)ndim;
    for (size_t i = 0; i < n; i++)
        buf[h + i] = (unsigned char)((i * 7 + (size_t)k) % 256);
    return h + n;
}

static void write_mnist(const char *dir, const char *prefix, uint32_t n, uint32_t rows,
                        uint32_t cols)
{
    static unsigned char buf[4096];
    char path[256];
    uint32_t idims[3] = {n, rows, cols}, ldims[1] = {n};
    size_t len = make_idx(buf, 0x803, 3, idims, (size_t)n * rows * cols, 0);
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", dir, prefix);
    write_bytes(path, buf, len);
    len = make_idx(buf, 0x801, 1, ldims, n, 3);
    for (uint32_t i = 0; i < n; i++)
        buf[8 + i] %= 10;
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", dir, prefix);
    write_bytes(path, buf, len);
}

static void test_mnist(void)
{
    const char *dir = tmp_path("mnist");
    KT_CHECK(mkdir(dir, 0700) == 0, "mkdir");
    write_mnist(dir, "train", 3, 4, 5);
    write_mnist(dir, "t10k", 2, 4, 5);
    kn_dataset *ds = kn_dataset_mnist(dir, "train");
    KT_NOTNULL(ds);
    KT_CHECK(kn_dataset_len(ds) == 3, "3 train images");
    kn_tensor *x, *y;
    KT_OK(kn_dataset_get(ds, 2, &x, &y));
    KT_CHECK(x && kn_tensor_dtype(x) == KN_U8 && kn_tensor_ndim(x) == 3 &&
                 kn_tensor_shape(x)[0] == 1 && kn_tensor_shape(x)[1] == 4 &&
                 kn_tensor_shape(x)[2] == 5,
             "x is u8 (1,4,5)");
    int64_t at[3] = {0, 3, 4};
    KT_CHECK(get_at(x, 3, at) == (double)((2 * 20 + 19) * 7 % 256), "pixel (2,3,4)");
    KT_CHECK(y && kn_tensor_dtype(y) == KN_I64 && kn_tensor_ndim(y) == 0, "y is an i64 scalar");
    double lv = -1;
    kn_tensor_item(y, &lv);
    KT_CHECK(lv == (double)((2 * 7 + 3) % 10), "label %g", lv);
    kn_tensor_unref(x), kn_tensor_unref(y);
    kn_dataset_free(ds);
    ds = kn_dataset_mnist(dir, "test");
    KT_CHECK(ds && kn_dataset_len(ds) == 2, "2 test images");
    kn_dataset_free(ds);
    kt_expect_fail_status("dataset_mnist", kn_dataset_mnist(dir, "val") ? KN_OK : kn_last_status(),
                          "split");
    kt_expect_fail_status("dataset_mnist",
                          kn_dataset_mnist(tmpdir, "train") ? KN_OK : kn_last_status(),
                          "cannot find");
}

/* Corrupt files: each case writes an images and a labels file, then loads. */
static void test_mnist_corrupt(void)
{
    static unsigned char img[2048], lab[256];
    uint32_t idims[3] = {3, 4, 5}, ldims[1] = {3}, ldims2[1] = {2};
    size_t ilen = make_idx(img, 0x803, 3, idims, 60, 0);
    size_t llen = make_idx(lab, 0x801, 1, ldims, 3, 0);
    unsigned char bad_img[2048], bad_lab[256];
    size_t short_lab = make_idx(bad_lab, 0x801, 1, ldims2, 2, 0);
    (void)short_lab;
    struct {
        const char *name;
        int which; /* 0: images file, 1: labels file */
        int edit;  /* what to break */
        const char *needle;
    } cases[] = {
        {"wrong image magic", 0, 0, "magic number 0x00000802"},
        {"labels magic on images", 0, 1, "magic number 0x00000801"},
        {"short images header", 0, 2, "too short"},
        {"truncated images", 0, 3, "truncated"},
        {"extra bytes", 0, 4, "extra bytes"},
        {"zero rows", 0, 5, "dim 1 is 0"},
        {"empty labels file", 1, 6, "too short"},
        {"count mismatch", 1, 7, "3 images but"},
        {"dims overflow", 0, 8, "overflow"},
        {"count claims huge", 0, 10, "truncated"},
        {"non-u8 type", 1, 9, "magic number"},
    };
    for (int c = 0; c < KN_ARRAY_LEN(cases); c++) {
        char dir[256];
        snprintf(dir, sizeof dir, "%s/bad%d", tmpdir, c);
        KT_CHECK(mkdir(dir, 0700) == 0, "mkdir");
        memcpy(bad_img, img, ilen), memcpy(bad_lab, lab, llen);
        size_t bi = ilen, bl = llen;
        switch (cases[c].edit) {
        case 0:
            bad_img[3] = 0x02;
            break;
        case 1:
            bad_img[3] = 0x01;
            break;
        case 2:
            bi = 9;
            break;
        case 3:
            bi = ilen - 1;
            break;
        case 4:
            bi = ilen + 3;
            break;
        case 5:
            put_be32(bad_img + 8, 0);
            bi = 16;
            break;
        case 6:
            bl = 0;
            break;
        case 7:
            bl = make_idx(bad_lab, 0x801, 1, ldims2, 2, 0);
            break;
        case 8:
            put_be32(bad_img + 4, 0xffffffffu);
            put_be32(bad_img + 8, 0xffffffffu);
            break;
        case 9:
            bad_lab[2] = 0x0d;
            break; /* IDX float */
        case 10:
            put_be32(bad_img + 4, 0xffffffffu);
            break;
        }
        char path[300];
        snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", dir);
        write_bytes(path, bad_img, bi);
        snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", dir);
        write_bytes(path, bad_lab, bl);
        kn_dataset *ds = kn_dataset_mnist(dir, "train");
        KT_CHECK(ds == NULL, "%s: accepted", cases[c].name);
        kn_dataset_free(ds);
        kt_expect_fail_status("dataset_mnist", ds ? KN_OK : kn_last_status(), cases[c].needle);
    }
}

static void test_mnist_gzip(void)
{
    const char *dir = tmp_path("mnistgz");
    KT_CHECK(mkdir(dir, 0700) == 0, "mkdir");
    char path[300];
    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte.gz", dir);
    write_bytes(path, idx_gz, sizeof idx_gz);
    unsigned char lab[10];
    uint32_t ld[1] = {2};
    size_t ll = make_idx(lab, 0x801, 1, ld, 2, 1);
    snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte", dir);
    write_bytes(path, lab, ll);
    kn_dataset *ds = kn_dataset_mnist(dir, "test");
    if (!kn_dataset_gzip_supported()) {
        kt_expect_fail_status("dataset_mnist", ds ? KN_OK : kn_last_status(),
                              "gzip support is not built in");
        return;
    }
    KT_NOTNULL(ds);
    kn_tensor *x, *y;
    if (ds && kn_dataset_get(ds, 1, &x, &y) == KN_OK) {
        int64_t s[3] = {1, 3, 2};
        double e[6] = {6, 7, 8, 9, 10, 11};
        kt_check_values("dataset_mnist", x, 3, s, e, 0, 0);
        kn_tensor_unref(x), kn_tensor_unref(y);
    }
    kn_dataset_free(ds);
    /* A truncated gzip stream. */
    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte.gz", dir);
    write_bytes(path, idx_gz, sizeof idx_gz - 12);
    ds = kn_dataset_mnist(dir, "test");
    kt_expect_fail_status("dataset_mnist", ds ? KN_OK : kn_last_status(), "truncated gzip");
    kn_dataset_free(ds);
    /* A damaged one: the CRC of the content no longer matches. */
    unsigned char bad[sizeof idx_gz];
    memcpy(bad, idx_gz, sizeof bad);
    bad[sizeof bad - 6] ^= 0x55;
    write_bytes(path, bad, sizeof bad);
    ds = kn_dataset_mnist(dir, "test");
    kt_expect_fail_status("dataset_mnist", ds ? KN_OK : kn_last_status(), "corrupt gzip");
    kn_dataset_free(ds);
}

/* ---------------------------------------------------------------- CIFAR */
/* n records of `labels` label bytes then 3072 pixels; pixel p of record r is
 * (r * 31 + p) % 256, labels r % mod[l]. */
static void write_cifar(const char *path, int n, int labels, const int *mod, int r0)
{
    size_t rec = (size_t)labels + 3072;
    unsigned char *buf = malloc(rec * (size_t)n);
    for (int r = 0; r < n; r++) {
        unsigned char *p = buf + rec * (size_t)r;
        for (int l = 0; l < labels; l++)
            p[l] = (unsigned char)((r0 + r) % mod[l]);
        for (int i = 0; i < 3072; i++)
            p[labels + i] = (unsigned char)(((r0 + r) * 31 + i) % 256);
    }
    write_bytes(path, buf, rec * (size_t)n);
    free(buf);
}

static void test_cifar(void)
{
    const char *dir = tmp_path("cifar10");
    KT_CHECK(mkdir(dir, 0700) == 0, "mkdir");
    char sub[300], path[400];
    snprintf(sub, sizeof sub, "%s/cifar-10-batches-bin", dir); /* the archive's own folder */
    KT_CHECK(mkdir(sub, 0700) == 0, "mkdir");
    int mod10[1] = {10};
    for (int f = 1; f <= 5; f++) {
        snprintf(path, sizeof path, "%s/data_batch_%d.bin", sub, f);
        write_cifar(path, 2, 1, mod10, (f - 1) * 2);
    }
    snprintf(path, sizeof path, "%s/test_batch.bin", sub);
    write_cifar(path, 3, 1, mod10, 0);
    kn_dataset *ds = kn_dataset_cifar10(dir, true);
    KT_CHECK(ds && kn_dataset_len(ds) == 10, "10 train records");
    kn_tensor *x, *y;
    if (ds && kn_dataset_get(ds, 7, &x, &y) == KN_OK) {
        int64_t at[3] = {2, 31, 31};
        double lv;
        kn_tensor_item(y, &lv);
        KT_CHECK(kn_tensor_ndim(x) == 3 && kn_tensor_shape(x)[0] == 3 &&
                     kn_tensor_shape(x)[2] == 32,
                 "(3,32,32)");
        KT_CHECK(get_at(x, 3, at) == (double)((7 * 31 + 3071) % 256) && lv == 7, "record 7 values");
        kn_tensor_unref(x), kn_tensor_unref(y);
    }
    kn_dataset_free(ds);
    ds = kn_dataset_cifar10(sub, false);
    KT_CHECK(ds && kn_dataset_len(ds) == 3, "3 test records");
    kn_dataset_free(ds);

    /* CIFAR-100: coarse and fine labels. */
    const char *d100 = tmp_path("cifar100");
    KT_CHECK(mkdir(d100, 0700) == 0, "mkdir");
    int mod100[2] = {20, 100};
    snprintf(path, sizeof path, "%s/train.bin", d100);
    write_cifar(path, 4, 2, mod100, 17);
    ds = kn_dataset_cifar100(d100, true, true);
    kn_dataset *coarse = kn_dataset_cifar100(d100, true, false);
    KT_CHECK(ds && coarse && kn_dataset_len(ds) == 4, "4 records");
    if (ds && coarse && kn_dataset_get(ds, 3, &x, &y) == KN_OK) {
        double fine, crs;
        kn_tensor_item(y, &fine);
        kn_tensor_unref(y);
        int64_t at[3] = {0, 0, 1};
        KT_CHECK(get_at(x, 3, at) == (double)((20 * 31 + 1) % 256), "pixel");
        kn_tensor_unref(x);
        KT_OK(kn_dataset_get(coarse, 3, &x, &y));
        kn_tensor_item(y, &crs);
        KT_CHECK(fine == 20 && crs == 0, "fine %g coarse %g", fine, crs);
        kn_tensor_unref(x), kn_tensor_unref(y);
    }
    kn_dataset_free(ds), kn_dataset_free(coarse);

    /* Corrupt files. */
    snprintf(path, sizeof path, "%s/test.bin", d100);
    write_cifar(path, 1, 2, mod100, 0);
    FILE *f = fopen(path, "ab");
    fputc(0, f);
    fclose(f);
    ds = kn_dataset_cifar100(d100, false, true);
    kt_expect_fail_status("dataset_cifar100", ds ? KN_OK : kn_last_status(),
                          "multiple of the 3074-byte record");
    write_bytes(path, "", 0);
    ds = kn_dataset_cifar100(d100, false, true);
    kt_expect_fail_status("dataset_cifar100", ds ? KN_OK : kn_last_status(), "is 0 bytes");
    int bad_mod[2] = {256, 100};
    write_cifar(path, 30, 2, bad_mod, 0); /* coarse labels up to 29 */
    ds = kn_dataset_cifar100(d100, false, true);
    kt_expect_fail_status("dataset_cifar100", ds ? KN_OK : kn_last_status(),
                          "label 20, expected 0..19");
    snprintf(path, sizeof path, "%s/data_batch_3.bin", sub);
    write_cifar(path, 1, 0, mod10, 0); /* 3072 bytes: no label byte */
    ds = kn_dataset_cifar10(dir, true);
    kt_expect_fail_status("dataset_cifar10", ds ? KN_OK : kn_last_status(),
                          "data_batch_3.bin' is 3072 bytes");
    int mod256[1] = {256};
    write_cifar(path, 12, 1, mod256, 0);
    ds = kn_dataset_cifar10(dir, true);
    kt_expect_fail_status("dataset_cifar10", ds ? KN_OK : kn_last_status(),
                          "record 10 has label 10");
    write_cifar(path, 2, 1, mod10, 0);
    snprintf(path, sizeof path, "%s/data_batch_5.bin", sub);
    remove(path);
    ds = kn_dataset_cifar10(dir, true);
    kt_expect_fail_status("dataset_cifar10", ds ? KN_OK : kn_last_status(), "cannot open");
}

/* ---------------------------------------------------------------- CSV */
static void test_csv(void)
{
    const char *path = tmp_path("t.csv");
    write_text(path, "a,label,b\r\n1.5, 2 ,-3\r\n\r\n4e1,0,0.25\n  -0.5 ,7,8\n\n");
    kn_dataset *ds = kn_dataset_csv(path, 1, true);
    KT_NOTNULL(ds);
    KT_CHECK(kn_dataset_len(ds) == 3, "3 rows");
    kn_tensor *x, *y;
    double ex[3][2] = {{1.5, -3}, {40, 0.25}, {-0.5, 8}}, ey[3] = {2, 0, 7};
    int64_t s[1] = {2};
    for (int i = 0; ds && i < 3; i++) {
        KT_OK(kn_dataset_get(ds, i, &x, &y));
        kt_check_values("dataset_csv", x, 1, s, ex[i], 0, 0);
        kt_check_values("dataset_csv", y, 0, NULL, &ey[i], 0, 0);
        KT_CHECK(kn_tensor_dtype(x) == KN_F32 && kn_tensor_dtype(y) == KN_I64, "dtypes");
        kn_tensor_unref(x), kn_tensor_unref(y);
    }
    kn_dataset_free(ds);
    /* No header, no label column, no final newline, a byte-order mark. */
    write_text(path, "\xef\xbb\xbf"
                     "1,2\n3,4");
    ds = kn_dataset_csv(path, -1, false);
    KT_CHECK(ds && kn_dataset_len(ds) == 2, "2 rows");
    if (ds && kn_dataset_get(ds, 1, &x, &y) == KN_OK) {
        double e[2] = {3, 4};
        kt_check_values("dataset_csv", x, 1, s, e, 0, 0);
        KT_CHECK(y == NULL, "no label");
        kn_tensor_unref(x);
    }
    kn_dataset_free(ds);

    struct {
        const char *text;
        int label;
        bool header;
        const char *needle;
    } bad[] = {
        {"1,2\n3,abc\n", 0, false, "line 2, column 2: 'abc' is not a number"},
        {"h1,h2\n1,2\n3,4,5\n", 0, true, "line 3 has 3 columns, expected 2"},
        {"1,,2\n", -1, false, "line 1, column 2: empty field"},
        {"1.5,2\n", 0, false, "label '1.5' is not an integer"},
        {"1,2\n", 2, false, "label_column is 2"},
        {"1,2\n", -2, false, "label_column is -2"},
        {"", 0, false, "no rows"},
        {"\n \n", 0, false, "no rows"},
        {"7\n", 0, false, "no feature columns"},
        {"1,2x\n", -1, false, "'2x' is not a number"},
        {"1,\"2\"\n", -1, false, "is not a number"},
        {"1,2\n3\n", -1, false, "line 2 has 1 columns"},
    };
    for (int i = 0; i < KN_ARRAY_LEN(bad); i++) {
        write_text(path, bad[i].text);
        ds = kn_dataset_csv(path, bad[i].label, bad[i].header);
        KT_CHECK(ds == NULL, "bad csv %d accepted", i);
        kn_dataset_free(ds);
        kt_expect_fail_status("dataset_csv", ds ? KN_OK : kn_last_status(), bad[i].needle);
    }
    ds = kn_dataset_csv(tmp_path("missing.csv"), 0, false);
    kt_expect_fail_status("dataset_csv", ds ? KN_OK : kn_last_status(), "cannot open");
}

/* ---------------------------------------------------------------- loader */
/* Images (1, 6, 6) u8 with value (i * 13 + k) % 251, label i. */
static kn_dataset *image_dataset(int64_t n)
{
    int64_t s[4] = {n, 1, 6, 6};
    kn_tensor *x = kn_tensor_empty(KN_U8, 4, s), *y = kn_tensor_arange(KN_I64, 0, (double)n, 1);
    unsigned char *p = kn_tensor_data(x);
    for (int64_t i = 0; i < n; i++)
        for (int k = 0; k < 36; k++)
            p[i * 36 + k] = (unsigned char)((i * 13 + k) % 251);
    kn_dataset *ds = kn_dataset_tensors(x, y);
    kn_tensor_unref(x), kn_tensor_unref(y);
    return ds;
}

static void test_loader_batches(void)
{
    kn_dataset *ds = image_dataset(10);
    for (int workers = 0; workers <= 2; workers += 2) {
        kn_loader *ld = kn_loader_new(ds, 3, false, false, 1, workers, 0);
        KT_NOTNULL(ld);
        KT_CHECK(kn_loader_len(ld) == 4, "4 batches");
        kn_tensor *x, *y;
        for (int b = 0; b < 4; b++) {
            KT_OK(kn_loader_next(ld, &x, &y));
            int64_t want = b < 3 ? 3 : 1;
            KT_CHECK(x && kn_tensor_ndim(x) == 4 && kn_tensor_shape(x)[0] == want &&
                         kn_tensor_shape(x)[1] == 1 && kn_tensor_dtype(x) == KN_U8,
                     "batch %d x shape", b);
            KT_CHECK(y && kn_tensor_ndim(y) == 1 && kn_tensor_shape(y)[0] == want,
                     "batch %d y shape", b);
            int64_t last[4] = {want - 1, 0, 5, 5}, li[1] = {want - 1};
            int64_t idx = b * 3 + want - 1;
            KT_CHECK(get_at(x, 4, last) == (double)((idx * 13 + 35) % 251) &&
                         get_at(y, 1, li) == (double)idx,
                     "batch %d values", b);
            kn_tensor_unref(x), kn_tensor_unref(y);
        }
        KT_OK(kn_loader_next(ld, &x, &y));
        KT_CHECK(x == NULL && y == NULL, "end of epoch");
        KT_OK(kn_loader_next(ld, &x, &y));
        KT_CHECK(x == NULL, "still the end");
        KT_OK(kn_loader_reset(ld, 1));
        KT_CHECK(kn_loader_epoch(ld) == 1, "epoch 1");
        KT_OK(kn_loader_next(ld, &x, &y));
        KT_CHECK(x && kn_tensor_shape(x)[0] == 3, "first batch of epoch 1");
        kn_tensor_unref(x), kn_tensor_unref(y);
        kn_loader_free(ld);
        /* drop_last */
        ld = kn_loader_new(ds, 3, true, true, 1, workers, 1);
        KT_CHECK(kn_loader_len(ld) == 3, "3 full batches");
        int n = 0;
        while (kn_loader_next(ld, &x, &y) == KN_OK && x) {
            KT_CHECK(kn_tensor_shape(x)[0] == 3, "full batch");
            kn_tensor_unref(x), kn_tensor_unref(y);
            n++;
        }
        KT_CHECK(n == 3, "%d batches", n);
        kn_loader_free(ld);
    }
    kt_expect_fail_status("loader_new",
                          kn_loader_new(ds, 0, false, false, 0, 0, 0) ? KN_OK : kn_last_status(),
                          "batch_size is 0");
    kt_expect_fail_status("loader_new",
                          kn_loader_new(ds, 2, false, false, 0, -1, 0) ? KN_OK : kn_last_status(),
                          "n_workers is -1");
    kt_expect_fail_status("loader_new",
                          kn_loader_new(NULL, 2, false, false, 0, 0, 0) ? KN_OK : kn_last_status(),
                          "ds is NULL");
    kn_dataset_free(ds);
}

/* All batches of one epoch, concatenated as (x bytes, y bytes). */
typedef struct epoch_data {
    unsigned char x[64 * 1024];
    int64_t y[1024];
    size_t nx, ny;
    int n_batches;
} epoch_data;

static void run_epoch(kn_dataset *ds, const kn_transform *tf, uint64_t seed, uint64_t epoch,
                      int workers, epoch_data *out)
{
    memset(out, 0, sizeof *out);
    kn_loader *ld = kn_loader_new(ds, 4, true, false, seed, workers, workers == 3 ? 2 : 0);
    KT_NOTNULL(ld);
    if (!ld) return;
    KT_OK(kn_loader_set_transform(ld, tf));
    if (epoch) KT_OK(kn_loader_reset(ld, epoch));
    kn_tensor *x, *y;
    kn_status s;
    while ((s = kn_loader_next(ld, &x, &y)) == KN_OK && x) {
        size_t nb = (size_t)kn_tensor_numel(x) * kn_dtype_size(kn_tensor_dtype(x));
        if (out->nx + nb <= sizeof out->x) memcpy(out->x + out->nx, kn_tensor_data(x), nb);
        out->nx += nb;
        for (int64_t i = 0; i < kn_tensor_numel(y) && out->ny < 1024; i++)
            out->y[out->ny++] = ((int64_t *)kn_tensor_data(y))[i];
        out->n_batches++;
        kn_tensor_unref(x), kn_tensor_unref(y);
    }
    KT_OK(s);
    kn_loader_free(ld);
}

static void test_loader_determinism(void)
{
    kn_dataset *ds = image_dataset(37);
    kn_transform *tf = kn_transform_new();
    float mean[1] = {0.5f}, std[1] = {0.25f};
    KT_OK(kn_transform_add_random_crop(tf, 6, 6, 2));
    KT_OK(kn_transform_add_hflip(tf, 0.5));
    KT_OK(kn_transform_add_to_float(tf));
    KT_OK(kn_transform_add_normalize(tf, 1, mean, std));
    static epoch_data e0, e1, e3, other, ep1, plain;
    run_epoch(ds, tf, 42, 0, 0, &e0);
    run_epoch(ds, tf, 42, 0, 1, &e1);
    run_epoch(ds, tf, 42, 0, 3, &e3);
    KT_CHECK(e0.n_batches == 10 && e0.ny == 37 && e0.nx == 37 * 36 * 4, "10 batches, 37 samples");
    KT_CHECK(e0.nx == e1.nx && !memcmp(e0.x, e1.x, e0.nx) && !memcmp(e0.y, e1.y, sizeof e0.y),
             "1 worker == no workers");
    KT_CHECK(e0.nx == e3.nx && !memcmp(e0.x, e3.x, e0.nx) && !memcmp(e0.y, e3.y, sizeof e0.y),
             "3 workers == no workers");
    /* The order is a permutation, and not the identity. */
    bool seen[37] = {0}, identity = true;
    for (int i = 0; i < 37; i++) {
        if (e0.y[i] >= 0 && e0.y[i] < 37) seen[e0.y[i]] = true;
        identity = identity && e0.y[i] == i;
    }
    bool perm = true;
    for (int i = 0; i < 37; i++)
        perm = perm && seen[i];
    KT_CHECK(perm && !identity, "a shuffled permutation");
    run_epoch(ds, tf, 43, 0, 3, &other);
    KT_CHECK(memcmp(e0.y, other.y, sizeof e0.y) != 0 && memcmp(e0.x, other.x, e0.nx) != 0,
             "another seed, another order");
    run_epoch(ds, tf, 42, 1, 3, &ep1);
    KT_CHECK(memcmp(e0.y, ep1.y, sizeof e0.y) != 0, "another epoch, another order");
    /* Without the transform the samples are the raw images: the transform did something. */
    run_epoch(ds, NULL, 42, 0, 2, &plain);
    KT_CHECK(!memcmp(plain.y, e0.y, sizeof e0.y) && plain.nx == 37 * 36, "same order, raw u8");
    /* Epoch 1 reached by reset after a partial epoch 0 equals a fresh epoch 1. */
    kn_loader *ld = kn_loader_new(ds, 4, true, false, 42, 3, 2);
    KT_OK(kn_loader_set_transform(ld, tf));
    kn_tensor *x, *y;
    KT_OK(kn_loader_next(ld, &x, &y));
    kn_tensor_unref(x), kn_tensor_unref(y);
    kt_expect_fail_status("loader_set_transform", kn_loader_set_transform(ld, NULL), "started");
    KT_OK(kn_loader_reset(ld, 1));
    KT_OK(kn_loader_next(ld, &x, &y));
    KT_CHECK(x && !memcmp(kn_tensor_data(x), ep1.x, 4 * 36 * 4), "reset mid-epoch then epoch 1");
    kn_tensor_unref(x), kn_tensor_unref(y);
    kn_loader_free(ld);
    kn_transform_free(tf);
    kn_dataset_free(ds);
}

static void test_loader_early_free(void)
{
    kn_dataset *ds = image_dataset(200);
    for (int round = 0; round < 20; round++) {
        kn_loader *ld = kn_loader_new(ds, 2, round % 2, false, (uint64_t)round, 3, 1 + round % 3);
        KT_NOTNULL(ld);
        kn_tensor *x, *y;
        if (round % 4 != 0) {
            KT_OK(kn_loader_next(ld, &x, &y));
            kn_tensor_unref(x), kn_tensor_unref(y);
        }
        if (round % 5 == 1) {
            struct timespec ts = {0,
                                  5 * 1000 * 1000}; /* let the workers fill the queue and block */
            nanosleep(&ts, NULL);
        }
        if (round % 7 == 3) KT_OK(kn_loader_reset(ld, 2));
        kn_loader_free(ld); /* must join without deadlock and free the queued batches */
    }
    kn_dataset_free(ds);
}

/* A user dataset failing on one index, and one with a stray shape. */
typedef struct flaky {
    int64_t bad_index;
    int released;
    bool wrong_shape;
} flaky;

static kn_status flaky_get(void *user, int64_t index, kn_tensor **x, kn_tensor **y)
{
    flaky *f = user;
    if (index == f->bad_index && !f->wrong_shape)
        return kn__error(KN_ERR_IO, "flaky: cannot read sample %lld", (long long)index);
    int64_t s[1] = {index == f->bad_index ? 3 : 2};
    *x = kn_tensor_full(KN_F32, 1, s, (double)index);
    *y = kn_tensor_scalar(KN_I64, (double)index);
    return KN_OK;
}

static void flaky_release(void *user)
{
    ((flaky *)user)->released++;
}

static kn_status silent_get(void *user, int64_t index, kn_tensor **x, kn_tensor **y)
{
    return KN_ERR_IO; /* fails without a message */
}

static void test_loader_errors(void)
{
    for (int workers = 0; workers <= 3; workers += 3) {
        flaky f = {.bad_index = 7};
        kn_dataset *ds = kn_dataset_new(20, flaky_get, flaky_release, &f);
        KT_NOTNULL(ds);
        kn_loader *ld = kn_loader_new(ds, 3, false, false, 0, workers, 2);
        kn_tensor *x, *y;
        for (int b = 0; b < 2; b++) {
            KT_OK(kn_loader_next(ld, &x, &y));
            kn_tensor_unref(x), kn_tensor_unref(y);
        }
        kn_status s = kn_loader_next(ld, &x, &y); /* batch 2 holds sample 7 */
        KT_CHECK(x == NULL && y == NULL, "no batch on error");
        KT_CHECK(s == KN_ERR_IO && strstr(kn_last_error(), "sample 7") &&
                     strstr(kn_last_error(), "flaky: cannot read sample 7"),
                 "error surfaces: %s", kn_last_error());
        kt_expect_fail_status("loader_next", s, "flaky");
        kt_expect_fail_status("loader_next", kn_loader_next(ld, &x, &y), "sample 7"); /* sticky */
        KT_OK(kn_loader_reset(ld, 0));
        KT_OK(kn_loader_next(ld, &x, &y)); /* the epoch starts again */
        kn_tensor_unref(x), kn_tensor_unref(y);
        kn_loader_free(ld);
        /* A sample of another shape. */
        f.wrong_shape = true;
        ld = kn_loader_new(ds, 4, false, false, 0, workers, 0);
        KT_OK(kn_loader_next(ld, &x, &y));
        kn_tensor_unref(x), kn_tensor_unref(y);
        kt_expect_fail_status("loader_next", kn_loader_next(ld, &x, &y), "sample 7: x is f32 (3)");
        kn_loader_free(ld);
        kn_dataset_free(ds);
        KT_CHECK(f.released == 1, "release ran once");
    }
    kn_dataset *ds = kn_dataset_new(3, silent_get, NULL, NULL);
    kn_loader *ld = kn_loader_new(ds, 2, false, false, 0, 1, 0);
    kn_tensor *x, *y;
    kt_expect_fail_status("loader_next", kn_loader_next(ld, &x, &y), "get failed");
    kn_loader_free(ld);
    kn_dataset_free(ds);
    kt_expect_fail_status("dataset_new",
                          kn_dataset_new(-1, silent_get, NULL, NULL) ? KN_OK : kn_last_status(),
                          "len is -1");
    /* A transform that fails (normalize of a u8 image) surfaces too. */
    ds = image_dataset(5);
    kn_transform *tf = kn_transform_new();
    float m[1] = {0}, sd[1] = {1};
    KT_OK(kn_transform_add_normalize(tf, 1, m, sd));
    ld = kn_loader_new(ds, 2, false, false, 0, 2, 0);
    KT_OK(kn_loader_set_transform(ld, tf));
    kt_expect_fail_status("loader_next", kn_loader_next(ld, &x, &y), "expected f32");
    kn_loader_free(ld);
    kn_transform_free(tf);
    kn_dataset_free(ds);
}

/* A CSV dataset and a transformed image dataset through whole epochs, for
 * the allocation-failure walk: every failure must come back as an error. */
static kn_status epoch_all(kn_dataset *ds, const kn_transform *tf, int workers)
{
    kn_loader *ld = kn_loader_new(ds, 3, true, false, 5, workers, 2);
    if (!ld) return kn_last_status();
    kn_status s = kn_loader_set_transform(ld, tf);
    kn_tensor *x = NULL, *y = NULL;
    while (!s && (s = kn_loader_next(ld, &x, &y)) == KN_OK && x)
        kn_tensor_unref(x), kn_tensor_unref(y);
    kn_loader_free(ld);
    return s;
}

static kn_status walk_fn(void *ctx)
{
    int workers = *(int *)ctx;
    kn_dataset *csv = kn_dataset_csv(tmp_path("walk.csv"), 0, true);
    if (!csv) return kn_last_status();
    kn_status s = epoch_all(csv, NULL, workers);
    kn_dataset_free(csv);
    if (s) return s;
    int64_t shape[4] = {7, 2, 5, 5};
    kn_tensor *x = kn_tensor_zeros(KN_U8, 4, shape);
    kn_dataset *img = x ? kn_dataset_tensors(x, NULL) : NULL;
    kn_tensor_unref(x);
    kn_transform *tf = img ? kn_transform_new() : NULL;
    float m[2] = {0.5f, 0.5f}, sd[2] = {0.2f, 0.2f};
    s = tf ? KN_OK : kn_last_status();
    if (!s) s = kn_transform_add_random_resized_crop(tf, 4, 4, 0.5, 1, 0.75, 1.33);
    if (!s) s = kn_transform_add_random_crop(tf, 4, 4, 1);
    if (!s) s = kn_transform_add_hflip(tf, 0.5);
    if (!s) s = kn_transform_add_to_float(tf);
    if (!s) s = kn_transform_add_normalize(tf, 2, m, sd);
    if (!s) s = epoch_all(img, tf, workers);
    kn_transform_free(tf);
    kn_dataset_free(img);
    return s;
}

static void test_alloc_failures(void)
{
    write_text(tmp_path("walk.csv"), "y,a,b\n1,2,3\n4,5,6\n7,8,9\n0,1,2\n");
    for (int workers = 0; workers <= 2; workers += 2) {
        int n = kt_alloc_walk("data pipeline", walk_fn, &workers);
        KT_CHECK(n > 20, "%d failure points", n);
    }
}

/* ---------------------------------------------------------------- transforms */
static kn_tensor *apply1(kn_transform *tf, kn_tensor *x, uint64_t seed)
{
    kn_tensor *y = kn_transform_apply(tf, x, seed);
    KT_NOTNULL(y);
    return y;
}

static void test_transform_basic(void)
{
    /* (2, 2, 3) u8 image, values 0..11 */
    int64_t s[3] = {2, 2, 3};
    double v[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    kn_tensor *img = kt_tensor(KN_U8, 3, s, v);

    kn_transform *tf = kn_transform_new();
    KT_OK(kn_transform_add_hflip(tf, 1));
    kn_tensor *y = apply1(tf, img, 5);
    double flipped[12] = {2, 1, 0, 5, 4, 3, 8, 7, 6, 11, 10, 9};
    kt_check_values("transform_hflip", y, 3, s, flipped, 0, 0);
    kn_tensor_unref(y);
    kn_transform_free(tf);

    tf = kn_transform_new();
    KT_OK(kn_transform_add_hflip(tf, 0));
    y = apply1(tf, img, 5);
    kt_check_values("transform_hflip", y, 3, s, v, 0, 0);
    kn_tensor_unref(y);
    kn_transform_free(tf);

    /* p = 0.5: each result is one of the two, both occur, and a seed repeats. */
    tf = kn_transform_new();
    KT_OK(kn_transform_add_hflip(tf, 0.5));
    int n_flip = 0;
    for (uint64_t seed = 0; seed < 40; seed++) {
        kn_tensor *a = apply1(tf, img, seed), *b = apply1(tf, img, seed);
        double first;
        int64_t at[3] = {0, 0, 0};
        kn_tensor_get(a, at, &first);
        n_flip += first == 2;
        KT_CHECK(kt_equal_bits(a, b), "same seed, same result");
        kn_tensor_unref(a), kn_tensor_unref(b);
    }
    KT_CHECK(n_flip > 5 && n_flip < 35, "flipped %d of 40", n_flip);
    kn_transform_free(tf);

    /* to_float then normalize, per channel. */
    tf = kn_transform_new();
    float mean[2] = {1, 2}, std[2] = {0.5f, 4};
    KT_OK(kn_transform_add_to_float(tf));
    KT_OK(kn_transform_add_normalize(tf, 2, mean, std));
    KT_CHECK(kn_transform_len(tf) == 2, "2 steps");
    y = apply1(tf, img, 0);
    double e[12];
    for (int i = 0; i < 12; i++) {
        int c = i / 6;
        e[i] = ((float)v[i] / 255.0f - mean[c]) / std[c];
    }
    kt_check_values("transform_normalize", y, 3, s, e, 1e-6, 0);
    KT_CHECK(kn_tensor_dtype(y) == KN_F32, "f32");
    kn_tensor_unref(y);
    kn_transform_free(tf);

    /* An empty pipeline copies. A (H, W) image works too. */
    tf = kn_transform_new();
    y = apply1(tf, img, 0);
    KT_CHECK(kt_equal_bits(y, img) && !kn_tensor_shares_storage(y, img), "a copy");
    kn_tensor_unref(y);
    KT_OK(kn_transform_add_hflip(tf, 1));
    int64_t s2[2] = {2, 3};
    kn_tensor *flat = kt_tensor(KN_F32, 2, s2, v);
    y = apply1(tf, flat, 0);
    kt_check_values("transform_hflip", y, 2, s2, flipped, 0, 0);
    kn_tensor_unref(y), kn_tensor_unref(flat);
    kn_transform_free(tf);
    kn_tensor_unref(img);
}

static void test_transform_crop(void)
{
    int64_t s[3] = {1, 3, 4};
    double v[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    kn_tensor *img = kt_tensor(KN_F32, 3, s, v);
    /* Crop the whole padded image: deterministic. */
    kn_transform *tf = kn_transform_new();
    KT_OK(kn_transform_add_random_crop(tf, 5, 6, 1));
    kn_tensor *y = apply1(tf, img, 9);
    int64_t ps[3] = {1, 5, 6};
    double padded[30] = {0, 0, 0, 0, 0, 0,  0,  1,  2, 3, 4, 0, 0, 5, 6,
                         7, 8, 0, 0, 9, 10, 11, 12, 0, 0, 0, 0, 0, 0, 0};
    kt_check_values("transform_random_crop", y, 3, ps, padded, 0, 0);
    kn_tensor_unref(y);
    kn_transform_free(tf);
    /* Crop of the original size from a 2-padded image: some window of the padded image. */
    tf = kn_transform_new();
    KT_OK(kn_transform_add_random_crop(tf, 3, 4, 2));
    bool seen[5][5] = {{0}};
    for (uint64_t seed = 0; seed < 200; seed++) {
        y = apply1(tf, img, seed);
        const float *p = kn_tensor_data(y);
        int found = -1;
        for (int di = 0; di <= 4 && found < 0; di++)
            for (int dj = 0; dj <= 4 && found < 0; dj++) {
                bool ok = true;
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 4; j++) {
                        int si = di + i - 2, sj = dj + j - 2;
                        double want = si >= 0 && si < 3 && sj >= 0 && sj < 4 ? v[si * 4 + sj] : 0;
                        ok = ok && p[i * 4 + j] == want;
                    }
                if (ok) found = di * 5 + dj, seen[di][dj] = true;
            }
        KT_CHECK(found >= 0, "seed %llu: output is a window of the padded image",
                 (unsigned long long)seed);
        kn_tensor_unref(y);
    }
    int n_seen = 0;
    for (int i = 0; i < 25; i++)
        n_seen += seen[i / 5][i % 5];
    KT_CHECK(n_seen == 25, "all 25 offsets occur (%d)", n_seen);
    kt_mark("transform_random_crop", KT_FWD);
    kn_transform_free(tf);
    kn_tensor_unref(img);
}

static void test_transform_resized_crop(void)
{
    /* scale = ratio = 1 on a square image: the whole image, resized. */
    kn_transform *tf = kn_transform_new();
    KT_OK(kn_transform_add_random_resized_crop(tf, 6, 6, 1, 1, 1, 1));
    kn_tensor *x = kt_from_array(&rrc_sq_x, KN_F32), *y = apply1(tf, x, 3);
    kt_check_array("transform_random_resized_crop", y, &rrc_sq_y, 1e-6, 1e-6);
    kn_tensor_unref(x), kn_tensor_unref(y);
    kn_transform_free(tf);
    /* A wide image where no try fits: the central-crop fallback, downsampled. */
    tf = kn_transform_new();
    KT_OK(kn_transform_add_random_resized_crop(tf, 3, 4, 1, 1, 1, 1));
    x = kt_from_array(&rrc_wide_x, KN_F32), y = apply1(tf, x, 11);
    kt_check_array("transform_random_resized_crop", y, &rrc_wide_y, 1e-6, 1e-6);
    kn_tensor_unref(y);
    /* u8 input: the same values, rounded. */
    kn_tensor *x8 = kn_tensor_empty(KN_U8, 3, rrc_wide_x.shape);
    KT_OK(kn_tensor_copy_(x8, x));
    y = apply1(tf, x8, 11);
    double r[24];
    for (int i = 0; i < 24; i++)
        r[i] = nearbyint((float)rrc_wide_y.data[i]);
    /* the u8 image holds the truncated inputs, so compare with a tolerance of 1 */
    kt_check_values("transform_random_resized_crop", y, 3, rrc_wide_y.shape, r, 0, 1);
    KT_CHECK(kn_tensor_dtype(y) == KN_U8, "u8 stays u8");
    kn_tensor_unref(y), kn_tensor_unref(x8), kn_tensor_unref(x);
    kn_transform_free(tf);
    /* Default-like parameters: right size, deterministic per seed, varies over seeds. */
    tf = kn_transform_new();
    KT_OK(kn_transform_add_random_resized_crop(tf, 8, 8, 0.08, 1, 3.0 / 4, 4.0 / 3));
    int64_t s[3] = {3, 20, 30};
    x = kt_rand(3, s, 0, 1, 7);
    kn_tensor *xf = kn_tensor_empty(KN_F32, 3, s);
    KT_OK(kn_tensor_copy_(xf, x));
    kn_tensor *a = apply1(tf, xf, 1), *b = apply1(tf, xf, 1), *c = apply1(tf, xf, 2);
    KT_CHECK(a && kn_tensor_shape(a)[0] == 3 && kn_tensor_shape(a)[1] == 8 &&
                 kn_tensor_shape(a)[2] == 8,
             "3x8x8");
    KT_CHECK(kt_equal_bits(a, b) && !kt_equal_bits(a, c), "seeded");
    kn_tensor_unref(a), kn_tensor_unref(b), kn_tensor_unref(c), kn_tensor_unref(x),
        kn_tensor_unref(xf);
    kn_transform_free(tf);
}

static void test_transform_bad(void)
{
    kn_transform *tf = kn_transform_new();
    float m[2] = {0, 0}, sd[2] = {1, 0};
    kt_expect_fail_status("transform_add_normalize", kn_transform_add_normalize(tf, 2, m, sd),
                          "std 0");
    kt_expect_fail_status("transform_add_normalize", kn_transform_add_normalize(tf, 0, m, sd),
                          "n_channels is 0");
    kt_expect_fail_status("transform_add_hflip", kn_transform_add_hflip(tf, 1.5), "p is 1.5");
    kt_expect_fail_status("transform_add_random_crop", kn_transform_add_random_crop(tf, 0, 3, 0),
                          "size 0x3");
    kt_expect_fail_status("transform_add_random_crop", kn_transform_add_random_crop(tf, 3, 3, -1),
                          "padding -1");
    kt_expect_fail_status("transform_add_random_resized_crop",
                          kn_transform_add_random_resized_crop(tf, 4, 4, 0.5, 0.2, 1, 1), "scale");
    kt_expect_fail_status("transform_add_random_resized_crop",
                          kn_transform_add_random_resized_crop(tf, 4, 4, 0.5, 1, 0, 1), "ratio");
    KT_CHECK(kn_transform_len(tf) == 0, "nothing added");
    /* Steps that fail at apply time. */
    int64_t s[3] = {3, 4, 4}, s1[1] = {4};
    kn_tensor *img = kn_tensor_zeros(KN_F32, 3, s), *u8 = kn_tensor_zeros(KN_U8, 3, s);
    kn_tensor *vec = kn_tensor_zeros(KN_F32, 1, s1);
    KT_OK(kn_transform_add_random_crop(tf, 9, 9, 2));
    kt_expect_fail("transform_apply", kn_transform_apply(tf, img, 0),
                   "larger than the padded image 8x8");
    kn_transform_free(tf);
    tf = kn_transform_new();
    KT_OK(kn_transform_add_normalize(tf, 2, m, (float[]){1, 1}));
    kt_expect_fail("transform_apply", kn_transform_apply(tf, img, 0),
                   "step 0 (normalize): input has 3 channels");
    kt_expect_fail("transform_apply", kn_transform_apply(tf, u8, 0), "expected f32");
    kt_expect_fail("transform_apply", kn_transform_apply(tf, vec, 0), "1 dims");
    kn_transform_free(tf);
    tf = kn_transform_new();
    KT_OK(kn_transform_add_to_float(tf));
    kt_expect_fail("transform_apply", kn_transform_apply(tf, img, 0), "input is f32, expected u8");
    kn_transform_free(tf);
    kn_tensor_unref(img), kn_tensor_unref(u8), kn_tensor_unref(vec);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kiln_data_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    KT_RUN(test_dataset_tensors);
    KT_RUN(test_mnist);
    KT_RUN(test_mnist_corrupt);
    KT_RUN(test_mnist_gzip);
    KT_RUN(test_cifar);
    KT_RUN(test_csv);
    KT_RUN(test_loader_batches);
    KT_RUN(test_loader_determinism);
    KT_RUN(test_loader_early_free);
    KT_RUN(test_loader_errors);
    KT_RUN(test_alloc_failures);
    KT_RUN(test_transform_basic);
    KT_RUN(test_transform_crop);
    KT_RUN(test_transform_resized_crop);
    KT_RUN(test_transform_bad);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return kt_finish();
}
