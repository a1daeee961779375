/* test_kernels_int8.c — the int8 GEMM (src/kernels/gemm_s8.h): u8 × s8 → s32
 * with the requantization epilogue. The VNNI kernel (when the CPU has
 * AVX512_VNNI) and the portable packed path must equal the reference twin
 * kn__gemm_s8_ref exactly, over shapes with 1, primes, tails of every kind
 * (m % 6, n % 64 and n % 16, k % 4), transposed and untransposed B, padded
 * leading dims, outputs i32/f32/i8/u8, per-tensor and per-column scales,
 * A and B zero points (the u8 compensation), bias, output zero points,
 * saturation and round-half-even ties; 1 vs 2 threads give the same bits;
 * a hand-computed case and bad arguments. */
#include "harness.h"
#include "kernels/gemm_s8.h"

#include <stdlib.h>

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint32_t next(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static bool have_vnni(void)
{
    return (kn_cpu_features() & KN_CPU_AVX512_VNNI) && (kn_cpu_features() & KN_CPU_AVX512_BF16) &&
           (kn_cpu_features() & KN_CPU_AVX512F);
}

typedef struct problem {
    int64_t m, n, k, lda, ldb, ldc;
    bool trans_b;
    uint8_t *a;
    int8_t *b;
    int32_t *bias;
    float *scale;
} problem;

static void make(problem *p, int64_t m, int64_t n, int64_t k, bool trans_b, int pad)
{
    p->m = m, p->n = n, p->k = k, p->trans_b = trans_b;
    p->lda = k + pad, p->ldb = (trans_b ? k : n) + pad, p->ldc = n + pad;
    p->a = malloc((size_t)(m * p->lda + 1));
    p->b = malloc((size_t)((trans_b ? n : k) * p->ldb + 1));
    p->bias = malloc(sizeof(int32_t) * (size_t)n);
    p->scale = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < m * p->lda; i++)
        p->a[i] = (uint8_t)next();
    for (int64_t i = 0; i < (trans_b ? n : k) * p->ldb; i++)
        p->b[i] = (int8_t)next();
    for (int64_t j = 0; j < n; j++) {
        p->bias[j] = (int32_t)(next() % 200001) - 100000;
        p->scale[j] = (float)(next() % 1000 + 1) * 1e-6f;
    }
}

static void drop(problem *p)
{
    free(p->a), free(p->b), free(p->bias), free(p->scale);
}

static size_t esize(kn_dtype dt)
{
    return kn_dtype_size(dt);
}

/* runs the packed path at the current ISA cap and the reference; exact match */
static bool run_and_compare(const problem *p, const kn_requant *rq, const char *what,
                            int64_t *saturated)
{
    size_t bytes = esize(rq->out) * (size_t)(p->m * p->ldc);
    char *c = malloc(bytes + 1), *r = malloc(bytes + 1);
    memset(c, 0x5a, bytes), memset(r, 0x5a, bytes);
    kn_gemm_s8_b pb;
    kn_status s1 = kn__gemm_s8_pack_b(&pb, p->b, p->ldb, p->trans_b, p->k, p->n);
    kn_status s2 = s1 ? s1 : kn__gemm_s8(p->m, p->a, p->lda, &pb, rq, c, p->ldc);
    kn_status s3 =
        kn__gemm_s8_ref(p->m, p->n, p->k, p->a, p->lda, p->b, p->ldb, p->trans_b, rq, r, p->ldc);
    kn__gemm_s8_b_free(&pb);
    KT_OK(s2);
    KT_OK(s3);
    bool same = memcmp(c, r, bytes) == 0;
    KT_CHECK(same, "%s: m=%lld n=%lld k=%lld%s out=%s az=%d bz=%d", what, (long long)p->m,
             (long long)p->n, (long long)p->k, p->trans_b ? " Bt" : "", kn_dtype_name(rq->out),
             (int)rq->a_zero, (int)rq->b_zero);
    if (saturated && (rq->out == KN_I8 || rq->out == KN_U8))
        for (int64_t i = 0; i < p->m; i++)
            for (int64_t j = 0; j < p->n; j++) {
                int v = rq->out == KN_I8 ? ((int8_t *)r)[i * p->ldc + j]
                                         : ((uint8_t *)r)[i * p->ldc + j];
                *saturated += rq->out == KN_I8 ? (v == -128 || v == 127) : (v == 0 || v == 255);
            }
    free(c), free(r);
    return same;
}

static const int64_t SHAPES[][3] = {
    {1, 1, 1},     {1, 64, 4},  {2, 3, 5},    {5, 17, 3},     {6, 64, 8},     {7, 65, 13},
    {13, 130, 37}, {12, 16, 4}, {48, 64, 64}, {49, 129, 255}, {53, 200, 101}, {97, 47, 1000},
};

static void exact_vs_reference(void)
{
    static const kn_dtype outs[] = {KN_I32, KN_F32, KN_I8, KN_U8};
    static const int32_t a_zeros[] = {0, 128, 255}, b_zeros[] = {0, -3};
    int levels = 0;
    kn_isa caps[2];
    if (have_vnni())
        caps[levels++] = KN_ISA_AVX512BF16;
    else
        printf("note: CPU lacks AVX512_VNNI/BF16: the VNNI kernel is not tested\n");
    caps[levels++] = KN_ISA_REF; /* the portable packed path */
    int64_t saturated = 0;
    for (int s = 0; s < KN_ARRAY_LEN(SHAPES); s++)
        for (int t = 0; t < 2; t++) {
            problem p;
            make(&p, SHAPES[s][0], SHAPES[s][1], SHAPES[s][2], t == 1, (s % 3) * 3);
            for (int o = 0; o < 4; o++)
                for (int az = 0; az < 3; az++)
                    for (int bz = 0; bz < 2; bz++) {
                        kn_requant rq = {a_zeros[az], b_zeros[bz], (s + o) % 2 ? p.bias : NULL,
                                         (s + az) % 2 ? p.scale : NULL,
                                         /* per tensor: 0.5 gives exact .5 ties; 1e-3 mid */
                                         o == 2 && az == 0 ? 0.5f : 1e-3f,
                                         outs[o] == KN_U8   ? 128
                                         : outs[o] == KN_I8 ? -5
                                                            : 0,
                                         outs[o]};
                        for (int l = 0; l < levels; l++) {
                            kn_set_isa(caps[l]);
                            run_and_compare(&p, &rq, caps[l] == KN_ISA_REF ? "portable" : "vnni",
                                            l == 0 ? &saturated : NULL);
                        }
                        kn_set_isa(KN_ISA_AVX512BF16);
                    }
            drop(&p);
        }
    KT_CHECK(saturated > 100, "the cases saturate (%lld saturated outputs)", (long long)saturated);
}

static void medium_and_threads(void)
{
    problem p;
    make(&p, 128, 768, 768, true, 0); /* a BERT-base projection */
    kn_requant rq = {128, 0, p.bias, p.scale, 0, 3, KN_I8};
    run_and_compare(&p, &rq, "bert 128x768x768", NULL);
    kn_gemm_s8_b pb;
    KT_OK(kn__gemm_s8_pack_b(&pb, p.b, p.ldb, true, p.k, p.n));
    size_t bytes = (size_t)(p.m * p.ldc);
    int8_t *c1 = malloc(bytes), *c2 = malloc(bytes);
    int old = kn_get_num_threads();
    kn_set_num_threads(1);
    KT_OK(kn__gemm_s8(p.m, p.a, p.lda, &pb, &rq, c1, p.ldc));
    kn_set_num_threads(2);
    KT_OK(kn__gemm_s8(p.m, p.a, p.lda, &pb, &rq, c2, p.ldc));
    kn_set_num_threads(old);
    KT_CHECK(memcmp(c1, c2, bytes) == 0, "1 vs 2 threads");
    free(c1), free(c2);
    kn__gemm_s8_b_free(&pb);
    drop(&p);
}

/* A = [[1, 2, 3], [4, 5, 6]] (a_zero 1), B = [[1, -1], [2, 0], [-3, 4]]:
 * (A - 1) B = [[0*1 + 1*2 + 2*(-3), 0 + 0 + 2*4], [3 + 8 - 15, -3 + 0 + 20]]
 *           = [[-4, 8], [-4, 17]], + bias [10, -20] = [[6, -12], [6, -3]] */
static void hand_computed(void)
{
    static const uint8_t a[6] = {1, 2, 3, 4, 5, 6};
    static const int8_t b[6] = {1, -1, 2, 0, -3, 4};
    static const int32_t bias[2] = {10, -20};
    int32_t c[4];
    kn_requant rq = {1, 0, bias, NULL, 1.0f, 0, KN_I32};
    kn_gemm_s8_b pb;
    KT_OK(kn__gemm_s8_pack_b(&pb, b, 2, false, 3, 2));
    for (int l = 0; l < 2; l++) {
        kn_set_isa(l ? KN_ISA_REF : KN_ISA_AVX512BF16);
        KT_OK(kn__gemm_s8(2, a, 3, &pb, &rq, c, 2));
        KT_CHECK(c[0] == 6 && c[1] == -12 && c[2] == 6 && c[3] == -3, "got %d %d %d %d", c[0], c[1],
                 c[2], c[3]);
    }
    kn_set_isa(KN_ISA_AVX512BF16);
    /* i8 with scale 0.5: 3, -6, 3, -1.5 -> -2 (half to even), zero point 0 */
    int8_t q[4];
    rq.out = KN_I8, rq.scale_all = 0.5f;
    KT_OK(kn__gemm_s8(2, a, 3, &pb, &rq, q, 2));
    KT_CHECK(q[0] == 3 && q[1] == -6 && q[2] == 3 && q[3] == -2, "got %d %d %d %d", q[0], q[1],
             q[2], q[3]);
    kn__gemm_s8_b_free(&pb);
}

static void bad_arguments(void)
{
    static const int8_t b[4] = {0};
    kn_gemm_s8_b pb;
    KT_CHECK(kn__gemm_s8_pack_b(&pb, b, 2, false, 0, 2) == KN_ERR_ARG, "k = 0");
    KT_CHECK(kn__gemm_s8_pack_b(&pb, b, 2, false, KN_GEMM_S8_MAX_K + 1, 2) == KN_ERR_ARG,
             "k too large");
    KT_OK(kn__gemm_s8_pack_b(&pb, b, 2, false, 2, 2));
    uint8_t a[4] = {0};
    int32_t c[4];
    kn_requant rq = {0, 0, NULL, NULL, 1, 0, KN_F16};
    KT_CHECK(kn__gemm_s8(2, a, 2, &pb, &rq, c, 2) == KN_ERR_ARG, "f16 output");
    rq.out = KN_I32, rq.a_zero = 300;
    KT_CHECK(kn__gemm_s8(2, a, 2, &pb, &rq, c, 2) == KN_ERR_ARG, "a_zero 300");
    kn__gemm_s8_b_free(&pb);
}

int main(void)
{
    KT_RUN(hand_computed);
    KT_RUN(exact_vs_reference);
    KT_RUN(medium_and_threads);
    KT_RUN(bad_arguments);
    return kt_finish();
}
