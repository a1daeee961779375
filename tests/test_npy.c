/* test_npy.c — .npy files: arrays NumPy wrote (every dtype kiln reads, a
 * 0-d and an empty array) load with their values; save/load round trips;
 * corrupt and unsupported files give errors naming the file. */
#include "harness.h"

#include "golden/npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[64] = "/tmp/kiln-test-npy-XXXXXX";

static const char *write_bytes(const char *name, const void *data, size_t n)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) fwrite(data, 1, n, f), fclose(f);
    return path;
}

#define CHECK_FILE(name, dtype)                                                                    \
    do {                                                                                           \
        kn_tensor *t = kn_npy_load(write_bytes(#name ".npy", npy_##name, sizeof npy_##name));      \
        KT_NOTNULL(t);                                                                             \
        if (t) {                                                                                   \
            KT_CHECK(kn_tensor_dtype(t) == (dtype), #name ": dtype %s", kn_dtype_name(kn_tensor_dtype(t))); \
            kt_check_values("npy_load", t, npy_##name##_ndim, npy_##name##_shape, npy_##name##_values, 0, 0); \
        }                                                                                          \
        kn_tensor_unref(t);                                                                        \
    } while (0)

static void test_numpy_files(void)
{
    CHECK_FILE(f32_2x3, KN_F32);
    CHECK_FILE(f64_4, KN_F64);
    CHECK_FILE(i64_scalar, KN_I64);
    CHECK_FILE(b1_5, KN_BOOL);
    CHECK_FILE(u1_2x2, KN_U8);
    CHECK_FILE(f2_3, KN_F16);
    kn_tensor *e = kn_npy_load(write_bytes("empty.npy", npy_i32_empty, sizeof npy_i32_empty));
    KT_CHECK(e && kn_tensor_numel(e) == 0 && kn_tensor_ndim(e) == 2 && kn_tensor_dim(e, 1) == 3, "empty (0, 3)");
    kn_tensor_unref(e);
}

static void test_round_trip(void)
{
    kn_dtype dts[] = {KN_F32, KN_F64, KN_F16, KN_I64, KN_I32, KN_I8, KN_U8, KN_BOOL};
    int64_t shape[3] = {2, 3, 4};
    char path[128];
    snprintf(path, sizeof path, "%s/rt.npy", dir);
    for (size_t i = 0; i < sizeof dts / sizeof dts[0]; i++) {
        kn_tensor *r = kn_tensor_rand_uniform(KN_F32, 3, shape, 0, 5);
        kn_tensor *t = kn_cast(r, dts[i]);
        KT_OK(kn_npy_save(path, t));
        kn_tensor *back = kn_npy_load(path);
        KT_CHECK(back && kt_equal_bits(t, back), "%s round trip", kn_dtype_name(dts[i]));
        kn_tensor_unref(r), kn_tensor_unref(t), kn_tensor_unref(back);
    }
    /* bf16 is written as f32; a non-contiguous view as its elements */
    kn_tensor *r = kn_tensor_rand_normal(KN_F32, 3, shape, 0, 1), *b = kn_cast(r, KN_BF16);
    kn_tensor *p = kn_permute(r, 3, (int[]){2, 0, 1});
    KT_OK(kn_npy_save(path, b));
    kn_tensor *back = kn_npy_load(path), *want = kn_cast(b, KN_F32);
    KT_CHECK(back && kn_tensor_dtype(back) == KN_F32 && kt_equal_bits(back, want), "bf16 saved as f32");
    kn_tensor_unref(back), kn_tensor_unref(want);
    KT_OK(kn_npy_save(path, p));
    back = kn_npy_load(path);
    KT_CHECK(back && kt_max_abs_diff(back, p) == 0 && kn_tensor_dim(back, 0) == 4, "a permuted view");
    kn_tensor_unref(back), kn_tensor_unref(r), kn_tensor_unref(b), kn_tensor_unref(p);
}

/* A copy of f32_2x3 with `at` replaced by `text` (same length). */
static const char *patched(const char *name, const char *from, const char *to)
{
    static unsigned char buf[sizeof npy_f32_2x3];
    memcpy(buf, npy_f32_2x3, sizeof buf);
    char *h = (char *)buf + 10, *at = strstr(h, from);
    if (at) memcpy(at, to, strlen(to));
    return write_bytes(name, buf, sizeof buf);
}

static void test_bad_files(void)
{
    KT_CHECK(!kn_npy_load(write_bytes("short.npy", npy_f32_2x3, 8)) && strstr(kn_last_error(), "not a .npy"),
             "%s", kn_last_error());
    KT_CHECK(!kn_npy_load(write_bytes("trunc.npy", npy_f32_2x3, sizeof npy_f32_2x3 - 4)) &&
                 strstr(kn_last_error(), "needs 24 bytes"), "%s", kn_last_error());
    KT_CHECK(!kn_npy_load(write_bytes("magic.npy", "\x93NUMPX\x01\x00\x10\x00{}", 12)) &&
                 strstr(kn_last_error(), "magic"), "%s", kn_last_error());
    KT_CHECK(!kn_npy_load(patched("be.npy", "<f4", ">f4")) && strstr(kn_last_error(), "'>f4'"), "%s",
             kn_last_error());
    KT_CHECK(!kn_npy_load(patched("fo.npy", "False", "True ")) && strstr(kn_last_error(), "Fortran"), "%s",
             kn_last_error());
    KT_CHECK(!kn_npy_load(patched("shape.npy", "(2, 3)", "(2, x)")) && strstr(kn_last_error(), "bad shape"),
             "%s", kn_last_error());
    /* a shape whose byte count overflows: an error, no allocation attempted */
    char huge[128] = "\x93NUMPY\x01\x00";
    const char *hh = "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 8), }\n";
    huge[8] = (char)strlen(hh), huge[9] = 0;
    memcpy(huge + 10, hh, strlen(hh));
    KT_CHECK(!kn_npy_load(write_bytes("huge.npy", huge, 10 + strlen(hh))) && strstr(kn_last_error(), "too large"),
             "%s", kn_last_error());
    unsigned char big[sizeof npy_f32_2x3];
    memcpy(big, npy_f32_2x3, sizeof big);
    big[8] = 0xff, big[9] = 0xff; /* header length past the end */
    KT_CHECK(!kn_npy_load(write_bytes("hlen.npy", big, sizeof big)) && strstr(kn_last_error(), "runs past"),
             "%s", kn_last_error());
    KT_CHECK(!kn_npy_load("/nonexistent/x.npy") && strstr(kn_last_error(), "x.npy"), "%s", kn_last_error());
    kt_expect_fail("npy_load", kn_npy_load(NULL), "NULL");
    kn_tensor *sym = kn_tensor_symbolic(KN_F32, 1, (int64_t[]){3});
    KT_CHECK(kn_npy_save("/tmp/x.npy", sym) == KN_ERR_ARG && strstr(kn_last_error(), "symbolic"), "%s",
             kn_last_error());
    kn_tensor_unref(sym);
}

int main(void)
{
    if (!mkdtemp(dir)) return 1;
    KT_RUN(test_numpy_files);
    KT_RUN(test_round_trip);
    KT_RUN(test_bad_files);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    return kt_finish();
}
