/* test_base.c — dtypes and f16/bf16 conversion (exhaustive), errors, the
 * allocator and its failure injection, threads, CPU features, the RNG. */
#include "harness.h"

#include <stdlib.h>

/* Exact value of a half bit pattern, computed independently with ldexp. */
static double half_value(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    double sign = h & 0x8000 ? -1 : 1;
    if (e == 31) return m ? NAN : sign * INFINITY;
    if (e == 0) return sign * ldexp(m, -24);
    return sign * ldexp(1024 + m, e - 25);
}

static void test_f16_exhaustive(void)
{
    int bad_decode = 0, bad_round_trip = 0, bad_ties = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        double want = half_value((uint16_t)h);
        float got = kn_f16_to_f32((uint16_t)h);
        if (isnan(want) ? !isnan(got) : (double)got != want || !signbit(got) != !signbit(want))
            bad_decode++;
        uint16_t back = kn_f32_to_f16(got);
        if (isnan(want) ? ((back & 0x7c00) != 0x7c00 || !(back & 0x3ff)) : back != h)
            bad_round_trip++;
        /* the midpoint to the next half (same sign) rounds to the even one */
        uint32_t next = h + 1;
        if ((h & 0x7fff) < 0x7bff + 1 && (next & 0x7c00) != 0x7c00 && (h & 0x7fff) != 0x7fff &&
            ((h ^ next) & 0x8000) == 0 && !isnan(want)) {
            double mid = (want + half_value((uint16_t)next)) / 2;
            uint16_t r = kn_f32_to_f16((float)mid);
            uint16_t even = (h & 1) ? (uint16_t)next : (uint16_t)h;
            if ((double)(float)mid == mid && r != even) bad_ties++;
        }
    }
    KT_CHECK(bad_decode == 0, "%d half patterns decode wrongly", bad_decode);
    KT_CHECK(bad_round_trip == 0, "%d half patterns do not round-trip", bad_round_trip);
    KT_CHECK(bad_ties == 0, "%d halfway cases not rounded to even", bad_ties);
    KT_CHECK(kn_f32_to_f16(65520.0f) == 0x7c00, "65520 should round to inf");
    KT_CHECK(kn_f32_to_f16(65519.0f) == 0x7bff, "65519 should round to 65504");
    KT_CHECK(kn_f32_to_f16(0x1p-25f) == 0, "2^-25 ties to even zero");
    KT_CHECK(kn_f32_to_f16(0x1.000002p-25f) == 1, "just above 2^-25 rounds up");
    KT_CHECK(kn_f32_to_f16(-INFINITY) == 0xfc00, "-inf");
}

static void test_bf16_exhaustive(void)
{
    int bad = 0, bad_ties = 0;
    for (uint32_t b = 0; b < 65536; b++) {
        uint32_t bits = b << 16;
        float f;
        memcpy(&f, &bits, 4);
        float got = kn_bf16_to_f32((uint16_t)b);
        if (isnan(f) ? !isnan(got) : memcmp(&got, &f, 4) != 0) bad++;
        uint16_t back = kn_f32_to_bf16(got);
        if (isnan(f) ? !isnan(kn_bf16_to_f32(back)) : back != b) bad++;
        /* halfway to the next pattern: ties to even; just above rounds up */
        if (!isnan(f) && !isinf(f) && (b & 0x7fff) != 0x7f7f) {
            uint32_t mid = bits | 0x8000, above = bits | 0x8001;
            float fm, fa;
            memcpy(&fm, &mid, 4);
            memcpy(&fa, &above, 4);
            uint16_t want_mid = (b & 1) ? (uint16_t)(b + 1) : (uint16_t)b;
            if (kn_f32_to_bf16(fm) != want_mid || kn_f32_to_bf16(fa) != (uint16_t)(b + 1))
                bad_ties++;
        }
    }
    KT_CHECK(bad == 0, "%d bf16 patterns wrong", bad);
    KT_CHECK(bad_ties == 0, "%d bf16 rounding cases wrong", bad_ties);
}

static void test_dtype_promotion(void)
{
    KT_CHECK(kn_dtype_promote(KN_I32, KN_F16) == KN_F16, "int with f16");
    KT_CHECK(kn_dtype_promote(KN_F16, KN_BF16) == KN_F32, "f16 with bf16");
    KT_CHECK(kn_dtype_promote(KN_U8, KN_I8) == KN_I32, "u8 with i8");
    KT_CHECK(kn_dtype_promote(KN_BOOL, KN_U8) == KN_U8, "bool with u8");
    KT_CHECK(kn_dtype_promote(KN_F32, KN_F64) == KN_F64, "f32 with f64");
    KT_CHECK(kn_dtype_size(KN_BF16) == 2 && kn_dtype_size(KN_I64) == 8, "sizes");
    KT_CHECK(strcmp(kn_dtype_name(KN_BF16), "bf16") == 0, "name");
}

static void test_alloc_accounting(void)
{
    size_t live = kn_alloc_live_bytes();
    char *p = kn_alloc(1000);
    KT_NOTNULL(p);
    KT_CHECK(((uintptr_t)p & 63) == 0, "64-byte aligned");
    KT_CHECK(kn_alloc_live_bytes() == live + 1000, "live bytes counted");
    KT_CHECK(kn_alloc_peak_bytes() >= live + 1000, "peak");
    kn_free(p);
    KT_CHECK(kn_alloc_live_bytes() == live, "freed");
    kn_alloc_fail_after(2);
    void *a = kn_alloc(8), *b = kn_alloc(8);
    kn_alloc_fail_after(0);
    KT_CHECK(a != NULL && b == NULL, "second allocation fails");
    KT_CHECK(kn_last_status() == KN_ERR_NOMEM, "status NOMEM");
    kn_free(a);
}

static void test_alloc_pool(void)
{
    size_t live = kn_alloc_live_bytes();
    char *a = kn_alloc(1 << 20);
    KT_NOTNULL(a);
    a[0] = 1, a[(1 << 20) - 1] = 2;
    kn_free(a);
    KT_CHECK(kn_alloc_live_bytes() == live, "freed bytes leave the live count");
    char *b = kn_alloc((1 << 20) - 1000); /* same size class: the pooled block comes back */
    KT_CHECK(b == a, "large blocks are reused");
    KT_CHECK(kn_alloc_live_bytes() == live + (1 << 20) - 1000, "live count is the requested size");
    kn_free(b);
    char *c = kn_alloc(100); /* small blocks are never pooled */
    KT_CHECK(((uintptr_t)c & 63) == 0, "aligned");
    kn_free(c);
}

static int hook_calls;
static void *counting_alloc(size_t size, size_t align, void *user)
{
    (void)user;
    hook_calls++;
    return aligned_alloc(align, (size + align - 1) / align * align);
}
static void counting_free(void *p, void *user)
{
    (void)user;
    hook_calls++;
    free(p);
}

static void test_alloc_hook(void)
{
    kn_allocator a = {counting_alloc, counting_free, NULL};
    kn_set_allocator(&a);
    void *p = kn_alloc(100);
    kn_free(p);
    kn_set_allocator(NULL);
    KT_CHECK(hook_calls == 2, "hook used for alloc and free (%d calls)", hook_calls);
    /* a pooled block made by one hook is never freed through another */
    kn_set_allocator(&a);
    void *big = kn_alloc(1 << 20);
    kn_free(big);
    int before = hook_calls;
    kn_set_allocator(NULL);
    KT_CHECK(hook_calls == before + 1, "changing the hook drains the pool through the old hook");
}

typedef struct sum_ctx {
    const double *x;
    double partial[256];
    int64_t chunk;
} sum_ctx;

static void add_range(int64_t begin, int64_t end, void *arg)
{
    int64_t *counts = arg;
    for (int64_t i = begin; i < end; i++)
        counts[i]++;
}

static void test_parallel_for(void)
{
    enum { N = 100003 };
    static int64_t counts[N];
    memset(counts, 0, sizeof counts);
    kn_parallel_for(N, 100, add_range, counts);
    int bad = 0;
    for (int i = 0; i < N; i++)
        bad += counts[i] != 1;
    KT_CHECK(bad == 0, "%d indices not visited exactly once", bad);
    int old = kn_get_num_threads();
    kn_set_num_threads(1);
    KT_CHECK(kn_get_num_threads() == 1, "set to 1");
    kn_parallel_for(N, 100, add_range, counts);
    kn_set_num_threads(old);
    bad = 0;
    for (int i = 0; i < N; i++)
        bad += counts[i] != 2;
    KT_CHECK(bad == 0, "one thread: %d indices wrong", bad);
}

static void test_rng(void)
{
    int64_t shape[1] = {1000};
    kn_manual_seed(42);
    kn_tensor *a = kn_tensor_rand_uniform(KN_F64, 1, shape, 0, 1);
    kn_manual_seed(42);
    int old = kn_get_num_threads();
    kn_set_num_threads(1);
    kn_tensor *b = kn_tensor_rand_uniform(KN_F64, 1, shape, 0, 1);
    kn_set_num_threads(old);
    kn_tensor *c = kn_tensor_rand_uniform(KN_F64, 1, shape, 0, 1);
    KT_CHECK(kt_equal_bits(a, b), "same seed, same numbers");
    KT_CHECK(!kt_equal_bits(b, c), "the stream advances");
    double mean = 0, lo = 1, hi = 0;
    for (int64_t i = 0; i < 1000; i++) {
        double v;
        kn_tensor_get(a, &i, &v);
        mean += v / 1000;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    KT_CHECK(fabs(mean - 0.5) < 0.05 && lo >= 0 && hi < 1, "uniform mean %g range [%g, %g]", mean,
             lo, hi);
    kn_tensor *n = kn_tensor_rand_normal(KN_F64, 1, shape, 2, 3);
    double m = 0, sq = 0;
    for (int64_t i = 0; i < 1000; i++) {
        double v;
        kn_tensor_get(n, &i, &v);
        m += v / 1000;
        sq += v * v / 1000;
    }
    double sd = sqrt(sq - m * m);
    KT_CHECK(fabs(m - 2) < 0.3 && fabs(sd - 3) < 0.3, "normal mean %g std %g", m, sd);
    kn_tensor *bern = kn_tensor_rand_bernoulli(KN_F32, 1, shape, 0.25);
    kn_tensor *s = kn_sum(bern, 0, NULL, false);
    double ones;
    kn_tensor_item(s, &ones);
    KT_CHECK(ones > 200 && ones < 300, "bernoulli(0.25) gave %g ones of 1000", ones);
    /* Philox-4x32-10 known answer (Random123 kat_vectors: counter 0, key 0) */
    kn_tensor_unref(a), kn_tensor_unref(b), kn_tensor_unref(c), kn_tensor_unref(n);
    kn_tensor_unref(bern), kn_tensor_unref(s);
}

static void test_cpu_and_isa(void)
{
    uint32_t f = kn_cpu_features();
    kn_isa isa = kn_isa_max();
    KT_CHECK(isa <= KN_ISA_AVX512BF16, "isa in range");
    if (isa >= KN_ISA_AVX512) KT_CHECK(f & KN_CPU_AVX512F, "avx512 isa needs avx512f");
    KT_OK(kn_set_isa(KN_ISA_REF));
    KT_CHECK(kn_isa_max() == KN_ISA_REF, "capped to ref");
    KT_OK(kn_set_isa(KN_ISA_AVX512BF16));
    KT_CHECK(kn_isa_max() == isa || getenv("KILN_ISA"), "restored");
    KT_CHECK(kn_set_isa((kn_isa)42) == KN_ERR_ARG, "bad isa rejected");
    KT_CHECK(strstr(kn_last_error(), "set_isa") != NULL, "message names the call");
}

static void test_errors(void)
{
    kn_clear_error();
    KT_CHECK(kn_last_error()[0] == '\0' && kn_last_status() == KN_OK, "cleared");
    int64_t shape[2] = {2, -1};
    kn_tensor *t = kn_tensor_zeros(KN_F32, 2, shape);
    KT_CHECK(t == NULL && kn_last_status() == KN_ERR_SHAPE, "negative dim rejected");
    KT_CHECK(strstr(kn_last_error(), "dim 1") != NULL, "message names the dim: %s",
             kn_last_error());
    KT_CHECK(strcmp(kn_status_name(KN_ERR_NOMEM), "out of memory") == 0, "status name");
}

static void test_philox_known_answer(void)
{
    /* Philox4x32-10 with counter (0,0,0,0) and key (0,0), from Random123's
     * known-answer tests: 6627e8d5 e169c58d bc57ac4c 9b00dbd8 */
    extern void kn__philox(uint64_t key, uint64_t counter, uint32_t out[4]);
    uint32_t r[4];
    kn__philox(0, 0, r);
    KT_CHECK(r[0] == 0x6627e8d5u && r[1] == 0xe169c58du && r[2] == 0xbc57ac4cu &&
                 r[3] == 0x9b00dbd8u,
             "got %08x %08x %08x %08x", r[0], r[1], r[2], r[3]);
}

int main(void)
{
    KT_RUN(test_f16_exhaustive);
    KT_RUN(test_bf16_exhaustive);
    KT_RUN(test_dtype_promotion);
    KT_RUN(test_alloc_accounting);
    KT_RUN(test_alloc_hook);
    KT_RUN(test_alloc_pool);
    KT_RUN(test_parallel_for);
    KT_RUN(test_rng);
    KT_RUN(test_cpu_and_isa);
    KT_RUN(test_errors);
    KT_RUN(test_philox_known_answer);
    return kt_finish();
}
