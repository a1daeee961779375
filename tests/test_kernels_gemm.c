/* test_kernels_gemm.c — kn__gemm's fast paths (AVX-512 BF16, AVX-512, AVX2,
 * each forced with kn_set_isa; paths the CPU lacks are skipped with a note)
 * against the reference twin kn__gemm_ref_batched: random shapes including
 * 1, primes and tails, transposes, padded leading dims, f32/bf16 operands
 * and outputs, beta, every epilogue part and activation, batched with
 * broadcast strides; 1 vs 2 threads bitwise; activations over a range. */
#include "harness.h"

#include "kernels/gemm.h"

#include <math.h>
#include <stdlib.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
static float frand(void)
{
    return (float)(rnd() % 20001) / 10000.0f - 1.0f;
}
static int64_t pick(const int64_t *v, int n)
{
    return v[rnd() % (unsigned)n];
}

static void fill(void *p, kn_dtype dt, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float v = frand();
        if (dt == KN_BF16)
            ((uint16_t *)p)[i] = kn_f32_to_bf16(v);
        else
            ((float *)p)[i] = v;
    }
}
static float get(const void *p, kn_dtype dt, int64_t i)
{
    return dt == KN_BF16 ? kn_bf16_to_f32(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

typedef struct problem {
    kn_dtype compute, a_dt, b_dt, c_dt;
    bool ta, tb;
    int64_t m, n, k, lda, ldb, ldc, batch, sa, sb, sc;
    float beta;
    kn_epilogue ep;
    bool use_ep;
} problem;

static const kn_isa isas[] = {KN_ISA_AVX512BF16, KN_ISA_AVX512, KN_ISA_AVX2, KN_ISA_REF};
static bool have_isa(kn_isa isa)
{
    uint32_t f = kn_cpu_features();
    uint32_t avx2 = KN_CPU_AVX2 | KN_CPU_FMA;
    uint32_t avx512 = avx2 | KN_CPU_AVX512F | KN_CPU_AVX512BW | KN_CPU_AVX512VL;
    switch (isa) {
    case KN_ISA_AVX512BF16: return (f & (avx512 | KN_CPU_AVX512_BF16)) == (avx512 | KN_CPU_AVX512_BF16);
    case KN_ISA_AVX512: return (f & avx512) == avx512;
    case KN_ISA_AVX2: return (f & avx2) == avx2;
    default: return true;
    }
}

/* Runs one problem on the current ISA cap, compares with the reference.
 * Bound per element: both sums are within k*eps*sum|a||b| of the exact sum
 * (operands identical after any bf16 rounding), the epilogue adds a few
 * rounding errors of |y| and the activation has slope <= 1.13; a bf16 C adds
 * up to one bf16 ulp. */
static void run_problem(const problem *pr, const char *tag)
{
    int64_t arows = pr->ta ? pr->k : pr->m, brows = pr->tb ? pr->n : pr->k;
    int64_t asz = (pr->batch - 1) * pr->sa + arows * pr->lda + 1;
    int64_t bsz = (pr->batch - 1) * pr->sb + brows * pr->ldb + 1;
    int64_t csz = (pr->batch - 1) * pr->sc + pr->m * pr->ldc + 1;
    size_t ae = kn_dtype_size(pr->a_dt), be = kn_dtype_size(pr->b_dt), ce = kn_dtype_size(pr->c_dt);
    void *a = malloc((size_t)asz * ae), *b = malloc((size_t)bsz * be);
    void *c0 = malloc((size_t)csz * ce), *c1 = malloc((size_t)csz * ce), *c2 = malloc((size_t)csz * ce);
    fill(a, pr->a_dt, asz), fill(b, pr->b_dt, bsz), fill(c0, pr->c_dt, csz);
    memcpy(c1, c0, (size_t)csz * ce), memcpy(c2, c0, (size_t)csz * ce);
    const kn_epilogue *ep = pr->use_ep ? &pr->ep : NULL;
    KT_OK(kn__gemm_ref_batched(pr->compute, pr->ta, pr->tb, pr->m, pr->n, pr->k, a, pr->a_dt,
                               pr->lda, b, pr->b_dt, pr->ldb, pr->beta, c0, pr->c_dt, pr->ldc, ep,
                               pr->batch, pr->sa, pr->sb, pr->sc));
    kn_set_num_threads(2);
    KT_OK(kn__gemm_batched(pr->compute, pr->ta, pr->tb, pr->m, pr->n, pr->k, a, pr->a_dt, pr->lda,
                           b, pr->b_dt, pr->ldb, pr->beta, c1, pr->c_dt, pr->ldc, ep, pr->batch,
                           pr->sa, pr->sb, pr->sc));
    kn_set_num_threads(1);
    KT_OK(kn__gemm_batched(pr->compute, pr->ta, pr->tb, pr->m, pr->n, pr->k, a, pr->a_dt, pr->lda,
                           b, pr->b_dt, pr->ldb, pr->beta, c2, pr->c_dt, pr->ldc, ep, pr->batch,
                           pr->sa, pr->sb, pr->sc));
    kn_set_num_threads(2);
    KT_CHECK(memcmp(c1, c2, (size_t)csz * ce) == 0, "%s: 1 vs 2 threads differ", tag);
    const double eps = ldexp(1.0, -23);
    int bad = 0;
    for (int64_t bi = 0; bi < pr->batch && bad < 3; bi++)
        for (int64_t i = 0; i < pr->m && bad < 3; i++)
            for (int64_t j = 0; j < pr->n && bad < 3; j++) {
                double s = 0;
                for (int64_t p = 0; p < pr->k; p++) {
                    int64_t ia = bi * pr->sa + (pr->ta ? p * pr->lda + i : i * pr->lda + p);
                    int64_t ib = bi * pr->sb + (pr->tb ? j * pr->ldb + p : p * pr->ldb + j);
                    s += fabs(get(a, pr->a_dt, ia) * get(b, pr->b_dt, ib));
                }
                int64_t ic = bi * pr->sc + i * pr->ldc + j;
                double ref = get(c0, pr->c_dt, ic), got = get(c1, pr->c_dt, ic);
                double mag = fabs(ref) + fabs(pr->beta) + 3; /* beta*|C| + bias/shift/residual */
                if (pr->use_ep && pr->ep.scale) mag *= 2;
                double tol = 1.2 * (2 * (pr->k + 2) * eps * s + 8 * eps * mag) + 8 * eps * fabs(ref);
                if (pr->use_ep && pr->ep.scale) tol *= 2;
                if (pr->c_dt == KN_BF16) tol += ldexp(fabs(ref), -7);
                if (!(fabs(got - ref) <= tol)) {
                    bad++;
                    KT_CHECK(false, "%s: C[%lld][%lld][%lld] = %.9g, ref %.9g (tol %.3g)", tag,
                             (long long)bi, (long long)i, (long long)j, got, ref, tol);
                }
            }
    kt_checks++;
    free(a), free(b), free(c0), free(c1), free(c2);
}

static void describe(const problem *p, char *buf, size_t n, kn_isa isa)
{
    snprintf(buf, n, "%s compute %s a %s b %s c %s ta%d tb%d %lldx%lldx%lld batch %lld beta %g ep%d act %d",
             kn_isa_name(isa), kn_dtype_name(p->compute), kn_dtype_name(p->a_dt),
             kn_dtype_name(p->b_dt), kn_dtype_name(p->c_dt), p->ta, p->tb, (long long)p->m,
             (long long)p->n, (long long)p->k, (long long)p->batch, p->beta, p->use_ep,
             (int)p->ep.act);
}

static float bias[4096], scale[4096], shift[4096];

static void random_problem(problem *p, int64_t maxdim)
{
    static const int64_t dims[] = {1, 2, 3, 5, 7, 13, 14, 15, 16, 17, 31, 32, 33, 47, 64, 97, 131};
    memset(p, 0, sizeof *p);
    p->compute = rnd() % 2 ? KN_BF16 : KN_F32;
    p->a_dt = rnd() % 3 == 0 ? KN_BF16 : KN_F32;
    p->b_dt = rnd() % 3 == 0 ? KN_BF16 : KN_F32;
    p->c_dt = rnd() % 3 == 0 ? KN_BF16 : KN_F32;
    p->ta = rnd() % 2, p->tb = rnd() % 2;
    do {
        p->m = pick(dims, KN_ARRAY_LEN(dims)), p->n = pick(dims, KN_ARRAY_LEN(dims));
        p->k = pick(dims, KN_ARRAY_LEN(dims));
    } while (p->m > maxdim || p->n > maxdim || p->k > maxdim);
    if (rnd() % 8 == 0) p->k = 0;
    p->lda = (p->ta ? p->m : p->k) + (rnd() % 2 ? 3 : 0);
    p->ldb = (p->tb ? p->k : p->n) + (rnd() % 2 ? 5 : 0);
    p->ldc = p->n + (rnd() % 2 ? 2 : 0);
    if (p->lda == 0) p->lda = 1;
    if (p->ldb == 0) p->ldb = 1;
    p->batch = rnd() % 3 == 0 ? 1 + rnd() % 3 : 1;
    int64_t asz = (p->ta ? p->k : p->m) * p->lda, bsz = (p->tb ? p->n : p->k) * p->ldb;
    p->sa = p->batch > 1 && rnd() % 3 == 0 ? 0 : asz + 1;
    p->sb = p->batch > 1 && rnd() % 3 == 0 ? 0 : bsz + 2;
    p->sc = p->m * p->ldc + 3;
    p->beta = rnd() % 3 == 0 ? 0.5f : 0.0f;
    p->use_ep = rnd() % 2;
    if (p->use_ep) {
        p->ep.bias = rnd() % 2 ? bias : NULL;
        p->ep.scale = rnd() % 3 == 0 ? scale : NULL;
        p->ep.shift = rnd() % 3 == 0 ? shift : NULL;
        p->ep.act = (kn_act)(rnd() % KN_ACT_COUNT);
    }
}

/* The residual needs its own buffer sized for the problem. */
static void run_with_residual(problem *p, const char *tag)
{
    if (!p->use_ep || rnd() % 2) {
        run_problem(p, tag);
        return;
    }
    p->ep.residual_dtype = rnd() % 2 ? KN_BF16 : KN_F32;
    p->ep.ldr = p->n + 1;
    p->ep.stride_r = p->batch > 1 && rnd() % 2 ? 0 : p->m * p->ep.ldr;
    int64_t rsz = (p->batch - 1) * p->ep.stride_r + p->m * p->ep.ldr + 1;
    void *r = malloc((size_t)rsz * kn_dtype_size(p->ep.residual_dtype));
    fill(r, p->ep.residual_dtype, rsz);
    p->ep.residual = r;
    run_problem(p, tag);
    p->ep.residual = NULL;
    free(r);
}

static void test_random_shapes(void)
{
    for (int i = 0; i < 4096; i++)
        bias[i] = frand(), scale[i] = 0.5f + frand(), shift[i] = frand();
    for (int ii = 0; ii < KN_ARRAY_LEN(isas); ii++) {
        kn_isa isa = isas[ii];
        if (!have_isa(isa)) {
            printf("note: CPU lacks %s; its GEMM path is not tested here\n", kn_isa_name(isa));
            continue;
        }
        KT_OK(kn_set_isa(isa));
        for (int t = 0; t < 150; t++) {
            problem p;
            random_problem(&p, 131);
            char tag[256];
            describe(&p, tag, sizeof tag, isa);
            run_with_residual(&p, tag);
        }
    }
    kn_set_isa(KN_ISA_AVX512BF16);
}

/* Medium shapes: several k blocks (k > 512) accumulated in f32 C itself
 * (plain, beta, epilogue) or in the f32 workspace (bf16 C, residual). */
static void test_medium(void)
{
    static const int64_t mnk[][3] = {{100, 70, 1100}, {29, 257, 600}, {64, 96, 1030}, {15, 33, 1537},
                                         {3, 130, 700}, {1, 77, 1031}};
    static float res[300 * 300];
    for (int i = 0; i < KN_ARRAY_LEN(res); i++) res[i] = frand();
    for (int ii = 0; ii < KN_ARRAY_LEN(isas); ii++) {
        kn_isa isa = isas[ii];
        if (!have_isa(isa)) continue;
        kn_set_isa(isa);
        for (int s = 0; s < KN_ARRAY_LEN(mnk); s++)
            for (int v = 0; v < 5; v++) {
                problem p;
                random_problem(&p, 1);
                p.m = mnk[s][0], p.n = mnk[s][1], p.k = mnk[s][2];
                p.compute = v % 2 ? KN_BF16 : KN_F32;
                p.a_dt = p.b_dt = v == 3 ? KN_BF16 : KN_F32;
                p.c_dt = v == 1 ? KN_BF16 : KN_F32;
                p.ta = (s + v) % 2 == 1, p.tb = (s + v / 2) % 2 == 1;
                p.lda = p.ta ? p.m : p.k, p.ldb = p.tb ? p.k : p.n, p.ldc = p.n;
                p.batch = 1, p.beta = v == 2 ? 0.0f : 0.25f, p.use_ep = v < 2 || v == 4;
                if (v < 2) p.ep = (kn_epilogue){.bias = bias, .act = KN_ACT_GELU};
                if (v == 4) /* a residual forces the workspace with f32 C */
                    p.ep = (kn_epilogue){.residual = res, .residual_dtype = KN_F32, .ldr = p.n,
                                         .act = KN_ACT_RELU};
                char tag[256];
                describe(&p, tag, sizeof tag, isa);
                run_problem(&p, tag);
            }
    }
    kn_set_isa(KN_ISA_AVX512BF16);
}

/* act(x) through a k = 1 GEMM (x · 1, exact) against libm in double: within
 * 4 f32 ulps of the result, or 2^-24 absolute near zero crossings. */
static void test_activations(void)
{
    enum { N = 4001 };
    static float x[N], y[N], one[1] = {1.0f};
    for (int i = 0; i < N; i++)
        x[i] = -20.0f + 40.0f * (float)i / (N - 1);
    x[N / 2 + 1] = 1e-20f, x[N / 2 + 2] = -3e-8f, x[N / 2 + 3] = 90.0f, x[N / 2 + 4] = -90.0f;
    for (int ii = 0; ii < KN_ARRAY_LEN(isas); ii++) {
        kn_isa isa = isas[ii];
        if (!have_isa(isa)) continue;
        kn_set_isa(isa);
        for (int act = 0; act < KN_ACT_COUNT; act++) {
            kn_epilogue ep = {.act = (kn_act)act};
            /* C (N×1) = x (N×1) · 1 (1×1) */
            KT_OK(kn__gemm(KN_F32, false, false, N, 1, 1, x, KN_F32, 1, one, KN_F32, 1, 0.0f, y,
                           KN_F32, 1, &ep));
            int bad = 0;
            for (int i = 0; i < N && bad < 3; i++) {
                float want = kn__act_ref((kn_act)act, x[i]);
                double tol = 4 * ldexp(fabs(want), -23) + ldexp(1.0, -40);
                if (!(fabs((double)y[i] - want) <= tol)) {
                    bad++;
                    KT_CHECK(false, "%s act %d at x=%.9g: %.9g, want %.9g", kn_isa_name(isa), act,
                             x[i], y[i], want);
                }
            }
        }
    }
    kn_set_isa(KN_ISA_AVX512BF16);
}

/* bf16 compute of f32 operands against the unrounded f32 product: each
 * operand is off by at most 2^-9 relative, so |err| <= (2^-8 + 2^-18) sum|a||b|. */
static void test_bf16_vs_f32(void)
{
    enum { M = 37, N = 45, K = 301 };
    static float a[M * K], b[K * N], c[M * N], r[M * N];
    for (int i = 0; i < M * K; i++) a[i] = frand();
    for (int i = 0; i < K * N; i++) b[i] = frand();
    kn_set_isa(KN_ISA_REF);
    KT_OK(kn__gemm(KN_F32, false, false, M, N, K, a, KN_F32, K, b, KN_F32, N, 0, r, KN_F32, N, NULL));
    for (int ii = 0; ii < KN_ARRAY_LEN(isas); ii++) {
        if (!have_isa(isas[ii])) continue;
        kn_set_isa(isas[ii]);
        KT_OK(kn__gemm(KN_BF16, false, false, M, N, K, a, KN_F32, K, b, KN_F32, N, 0, c, KN_F32, N, NULL));
        int bad = 0;
        for (int i = 0; i < M && bad < 3; i++)
            for (int j = 0; j < N && bad < 3; j++) {
                double s = 0;
                for (int p = 0; p < K; p++) s += fabs(a[i * K + p] * b[p * N + j]);
                double tol = (ldexp(1, -8) + ldexp(1, -18) + 4 * K * ldexp(1, -24)) * s;
                if (!(fabs(c[i * N + j] - r[i * N + j]) <= tol)) {
                    bad++;
                    KT_CHECK(false, "%s bf16 C[%d][%d] = %g vs f32 %g", kn_isa_name(isas[ii]), i, j,
                             c[i * N + j], r[i * N + j]);
                }
            }
    }
    kn_set_isa(KN_ISA_AVX512BF16);
}

/* matmul's "gemm" impl against its "ref" impl (KILN_ISA=ref) on batched,
 * broadcast, transposed and non-contiguous (permuted / sliced) operands. */
static kn_tensor *rand_f(kn_dtype dt, int nd, const int64_t *shape, uint64_t seed)
{
    kn_tensor *t64 = kt_rand(nd, shape, -1, 1, seed);
    kn_tensor *t = kn_tensor_empty(dt, nd, shape);
    kn_tensor_copy_(t, t64);
    kn_tensor_unref(t64);
    return t;
}

/* x's values in column-major storage: a non-contiguous view. */
static kn_tensor *transposed_copy(kn_tensor *x)
{
    kn_tensor *t = kn_transpose(x, -1, -2), *c = kn_tensor_clone(t);
    kn_tensor *v = kn_transpose(c, -1, -2);
    kn_tensor_unref(t), kn_tensor_unref(c);
    return v;
}

static void test_matmul_plugged(void)
{
    static const int64_t sa[][4] = {{3, 2, 17, 33}, {1, 5, 33}, {2, 1, 1, 40}, {7, 129}};
    static const int64_t sb[][4] = {{2, 33, 19}, {4, 1, 33, 18}, {3, 40, 31}, {129, 1}};
    static const int na[] = {4, 3, 4, 2}, nbd[] = {3, 4, 3, 2};
    for (int dti = 0; dti < 2; dti++) {
        kn_dtype dt = dti ? KN_BF16 : KN_F32;
        for (int c = 0; c < KN_ARRAY_LEN(na); c++)
            for (int tr = 0; tr < 2; tr++) {
                kn_tensor *a = rand_f(dt, na[c], sa[c], 11 + c), *b = rand_f(dt, nbd[c], sb[c], 23 + c);
                kn_tensor *av = a, *bv = b;
                if (tr) { /* the same values through transposed storage */
                    av = transposed_copy(a), bv = transposed_copy(b);
                }
                kn_set_isa(KN_ISA_REF);
                kn_tensor *r = kn_matmul(av, bv);
                kn_set_isa(KN_ISA_AVX512BF16);
                kn_tensor *y = kn_matmul(av, bv);
                KT_NOTNULL(r);
                KT_NOTNULL(y);
                if (r && y) {
                    int64_t n = kn_tensor_numel(r), k = sa[c][na[c] - 1];
                    double *vr = malloc(sizeof(double) * (size_t)n), *vy = malloc(sizeof(double) * (size_t)n);
                    kn_tensor_copy_to(r, KN_F64, vr, sizeof(double) * (size_t)n);
                    kn_tensor_copy_to(y, KN_F64, vy, sizeof(double) * (size_t)n);
                    double tol = 2 * (double)k * ldexp(1, -23) + (dti ? ldexp(1, -7) : 0);
                    int bad = 0;
                    for (int64_t i = 0; i < n && bad < 3; i++)
                        if (!(fabs(vr[i] - vy[i]) <= tol * (1 + fabs(vr[i]) + (double)k))) {
                            bad++;
                            KT_CHECK(false, "matmul case %d tr %d dt %s [%lld] %g vs ref %g", c, tr,
                                     kn_dtype_name(dt), (long long)i, vy[i], vr[i]);
                        }
                    free(vr), free(vy);
                }
                kn_tensor_unref(r), kn_tensor_unref(y);
                if (tr) kn_tensor_unref(av), kn_tensor_unref(bv);
                kn_tensor_unref(a), kn_tensor_unref(b);
            }
    }
}

static void test_bad_args(void)
{
    float x[4] = {0};
    kt_expect_fail_status("gemm", kn__gemm(KN_F16, false, false, 1, 1, 1, x, KN_F32, 1, x, KN_F32,
                                           1, 0, x, KN_F32, 1, NULL), "compute");
    kt_expect_fail_status("gemm", kn__gemm(KN_F32, false, false, 1, 1, 1, x, KN_I32, 1, x, KN_F32,
                                           1, 0, x, KN_F32, 1, NULL), "dtype");
    kt_expect_fail_status("gemm", kn__gemm(KN_F32, false, false, -1, 1, 1, x, KN_F32, 1, x, KN_F32,
                                           1, 0, x, KN_F32, 1, NULL), "negative");
}

/* Pre-packed A and/or B give bitwise the result of the raw operands on the
 * same ISA, 1 and 2 threads; packed under one ISA cap and used under
 * another (unpack fallback) still bitwise the direct call there. */
static void test_packed(void)
{
    for (int t = 0; t < 120; t++) {
        kn_isa pack_isa = isas[t % KN_ARRAY_LEN(isas)], run_isa = isas[(t / 4) % KN_ARRAY_LEN(isas)];
        if (!have_isa(pack_isa) || !have_isa(run_isa)) continue;
        problem p;
        random_problem(&p, t % 10 == 0 ? 1 : 131);
        if (t % 10 == 0) p.m = 37, p.n = 45, p.k = 700 + t; /* several k blocks */
        if (p.m <= 4) p.m += 5; /* m <= 4 runs the unpacked small-m path: other bits */
        p.lda = p.ta ? p.m : p.k, p.ldb = p.tb ? p.k : p.n, p.ldc = p.n;
        p.sa = p.sa ? (p.ta ? p.k : p.m) * p.lda + 1 : 0, p.sc = p.m * p.ldc + 3;
        p.a_dt = p.a_dt == KN_BF16 && p.compute == KN_F32 ? KN_F32 : p.a_dt;
        int which = t % 3; /* 0: B packed, 1: A packed, 2: both */
        if (which != 1) p.sb = 0;
        if (which != 0) p.sa = 0;
        int64_t arows = p.ta ? p.k : p.m, brows = p.tb ? p.n : p.k;
        int64_t asz = (p.batch - 1) * p.sa + arows * p.lda + 1;
        int64_t bsz = (p.batch - 1) * p.sb + brows * p.ldb + 1;
        int64_t csz = (p.batch - 1) * p.sc + p.m * p.ldc + 1;
        size_t ce = kn_dtype_size(p.c_dt);
        void *a = malloc((size_t)asz * kn_dtype_size(p.a_dt));
        void *b = malloc((size_t)bsz * kn_dtype_size(p.b_dt));
        void *c0 = malloc((size_t)csz * ce), *c1 = malloc((size_t)csz * ce);
        fill(a, p.a_dt, asz), fill(b, p.b_dt, bsz), fill(c0, p.c_dt, csz);
        memcpy(c1, c0, (size_t)csz * ce);
        const kn_epilogue *ep = p.use_ep ? &p.ep : NULL;
        char tag[256];
        describe(&p, tag, sizeof tag, run_isa);
        kn_set_isa(pack_isa);
        kn_gemm_packed *pa = NULL, *pb = NULL;
        if (which != 0) KT_OK(kn__gemm_pack_a(&pa, p.compute, p.ta, p.m, p.k, a, p.a_dt, p.lda));
        if (which != 1) KT_OK(kn__gemm_pack_b(&pb, p.compute, p.tb, p.k, p.n, b, p.b_dt, p.ldb));
        kn_set_isa(run_isa);
        KT_OK(kn__gemm_batched(p.compute, p.ta, p.tb, p.m, p.n, p.k, a, p.a_dt, p.lda, b, p.b_dt,
                               p.ldb, p.beta, c0, p.c_dt, p.ldc, ep, p.batch, p.sa, p.sb, p.sc));
        kn_set_num_threads(1 + t % 2);
        KT_OK(kn__gemm_packed_batched(p.compute, p.ta, p.tb, p.m, p.n, p.k, pa ? NULL : a, p.a_dt,
                                      p.lda, pa, pb ? NULL : b, p.b_dt, p.ldb, pb, p.beta, c1,
                                      p.c_dt, p.ldc, ep, p.batch, p.sa, p.sb, p.sc));
        kn_set_num_threads(2);
        KT_CHECK(memcmp(c0, c1, (size_t)csz * ce) == 0, "%s: packed %d (packed under %s) differs",
                 tag, which, kn_isa_name(pack_isa));
        kn__gemm_packed_free(pa), kn__gemm_packed_free(pb);
        free(a), free(b), free(c0), free(c1);
    }
    kn_gemm_packed *pb = NULL;
    float w[12] = {0};
    KT_OK(kn__gemm_pack_b(&pb, KN_F32, false, 3, 4, w, KN_F32, 4));
    float x[6] = {0}, y[8];
    KT_CHECK(kn__gemm_packed(KN_F32, false, false, 2, 4, 2, x, KN_F32, 2, NULL, NULL, KN_F32, 0,
                             pb, 0.0f, y, KN_F32, 4, NULL) == KN_ERR_ARG,
             "a packed B with the wrong k is refused");
    KT_CHECK(kn__gemm_packed(KN_BF16, false, false, 2, 4, 3, x, KN_F32, 3, NULL, NULL, KN_F32, 0,
                             pb, 0.0f, y, KN_F32, 4, NULL) == KN_ERR_ARG,
             "a packed B for another compute dtype is refused");
    kn__gemm_packed_free(pb);
    kn_set_isa(KN_ISA_AVX512BF16);
}

int main(void)
{
    KT_RUN(test_random_shapes);
    KT_RUN(test_medium);
    KT_RUN(test_activations);
    KT_RUN(test_bf16_vs_f32);
    KT_RUN(test_matmul_plugged);
    KT_RUN(test_bad_args);
    KT_RUN(test_packed);
    return kt_finish();
}
