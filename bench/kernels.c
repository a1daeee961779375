/* kernels.c — GEMM benchmark: the machine's measured FMA / vdpbf16ps peak (1
 * thread and all threads), then kiln's kn__gemm against OpenBLAS
 * (cblas_sgemm) and oneDNN (dnnl_sgemm; bf16 through the matmul primitive)
 * on square and BERT-base shapes. Best of several repeats; prints GFLOP/s
 * and kiln's share of the peak. Usage: bench_kernels [filter]. */
#include "kiln.h"
#include "kernels/gemm.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef KILN_BENCH_OPENBLAS
#include <cblas.h>
#endif
#ifdef KILN_BENCH_DNNL
#include <dnnl.h>
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------- peak */
typedef struct peak_ctx {
    int64_t iters;
    bool bf16;
    volatile float sink;
} peak_ctx;

static void peak_chunk(int64_t b, int64_t e, void *arg)
{
    peak_ctx *p = arg;
#if KILN_X86
    for (int64_t i = b; i < e; i++)
        p->sink = p->bf16 ? kn__peak_dpbf16_avx512bf16(p->iters) : kn__peak_fma_avx512(p->iters);
#else
    (void)b, (void)e, (void)p;
#endif
}

/* GFLOP/s of `threads` copies of the loop, best of 5. */
static double peak(bool bf16, int threads)
{
    peak_ctx p = {.iters = 20000000, .bf16 = bf16};
    double flops = (double)p.iters * 24 * 16 * 2 * (bf16 ? 2 : 1) * threads, best = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = now();
        kn_parallel_for(threads, 1, peak_chunk, &p);
        double g = flops / (now() - t0) / 1e9;
        if (g > best) best = g;
    }
    return best;
}

/* ---------------------------------------------------------------- cases */
typedef struct gcase {
    const char *op;
    bool bf16;
    int64_t m, n, k;
    bool tb; /* B given as (n, k), as in linear */
} gcase;

static const gcase cases[] = {
    {"sgemm", false, 256, 256, 256, false},   {"sgemm", false, 512, 512, 512, false},
    {"sgemm", false, 1024, 1024, 1024, false}, {"sgemm", false, 2048, 2048, 2048, false},
    {"sgemm", false, 128, 768, 768, true},    {"sgemm", false, 128, 3072, 768, true},
    {"sgemm", false, 128, 768, 3072, true},   {"sgemm", false, 1, 768, 768, true},
    {"bgemm", true, 256, 256, 256, false},    {"bgemm", true, 512, 512, 512, false},
    {"bgemm", true, 1024, 1024, 1024, false}, {"bgemm", true, 2048, 2048, 2048, false},
    {"bgemm", true, 128, 768, 768, true},     {"bgemm", true, 128, 3072, 768, true},
    {"bgemm", true, 128, 768, 3072, true},    {"bgemm", true, 1, 768, 768, true},
};

typedef void (*run_fn)(const gcase *c, void *a, void *b, float *out, void *ctx);

/* Best GFLOP/s over repeats (at least 5 and 0.3 s) after one warm-up. */
static double measure(const gcase *c, run_fn fn, void *a, void *b, float *out, void *ctx)
{
    double flops = 2.0 * (double)c->m * (double)c->n * (double)c->k, best = 1e30, spent = 0;
    fn(c, a, b, out, ctx);
    for (int r = 0; r < 5 || spent < 0.3; r++) {
        double t0 = now();
        fn(c, a, b, out, ctx);
        double t = now() - t0;
        spent += t;
        if (t < best) best = t;
        if (r > 1000) break;
    }
    return flops / best / 1e9;
}

static kn_dtype dt_of(const gcase *c) { return c->bf16 ? KN_BF16 : KN_F32; }

static void run_kiln(const gcase *c, void *a, void *b, float *out, void *ctx)
{
    (void)ctx;
    kn_dtype dt = c->bf16 ? KN_BF16 : KN_F32;
    kn__gemm(dt, false, c->tb, c->m, c->n, c->k, a, dt, c->k, b, dt, c->tb ? c->k : c->n, 0.0f,
             out, KN_F32, c->n, NULL);
}

/* B packed once outside the timing (kn__gemm_pack_b), as for weights. */
static void run_kiln_packed(const gcase *c, void *a, void *b, float *out, void *ctx)
{
    (void)b;
    kn_dtype dt = c->bf16 ? KN_BF16 : KN_F32;
    kn__gemm_packed(dt, false, c->tb, c->m, c->n, c->k, a, dt, c->k, NULL, NULL, dt, 0, ctx, 0.0f, out,
                    KN_F32, c->n, NULL);
}

#ifdef KILN_BENCH_OPENBLAS
static void run_openblas(const gcase *c, void *a, void *b, float *out, void *ctx)
{
    (void)ctx;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, c->tb ? CblasTrans : CblasNoTrans, (int)c->m,
                (int)c->n, (int)c->k, 1.0f, a, (int)c->k, b, (int)(c->tb ? c->k : c->n), 0.0f, out,
                (int)c->n);
}
#endif

#ifdef KILN_BENCH_DNNL
static void run_dnnl_sgemm(const gcase *c, void *a, void *b, float *out, void *ctx)
{
    (void)ctx;
    dnnl_sgemm('N', c->tb ? 'T' : 'N', c->m, c->n, c->k, 1.0f, a, c->k, b, c->tb ? c->k : c->n,
               0.0f, out, c->n);
}

typedef struct dnnl_mm {
    dnnl_engine_t eng;
    dnnl_stream_t st;
    dnnl_primitive_t prim;
    dnnl_memory_t ma, mb, mc;
} dnnl_mm;

static bool dnnl_mm_init(dnnl_mm *d, const gcase *c, void *a, void *b, float *out)
{
    if (dnnl_engine_create(&d->eng, dnnl_cpu, 0) || dnnl_stream_create(&d->st, d->eng, dnnl_stream_default_flags))
        return false;
    dnnl_memory_desc_t da, db, dc;
    dnnl_dims_t ad = {c->m, c->k}, bd = {c->k, c->n}, cd = {c->m, c->n};
    dnnl_memory_desc_init_by_tag(&da, 2, ad, dnnl_bf16, dnnl_ab);
    dnnl_memory_desc_init_by_tag(&db, 2, bd, dnnl_bf16, c->tb ? dnnl_ba : dnnl_ab);
    dnnl_memory_desc_init_by_tag(&dc, 2, cd, dnnl_f32, dnnl_ab);
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd;
    if (dnnl_matmul_desc_init(&md, &da, &db, NULL, &dc) ||
        dnnl_primitive_desc_create(&pd, &md, NULL, d->eng, NULL))
        return false;
    dnnl_status_t s = dnnl_primitive_create(&d->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    if (s) return false;
    dnnl_memory_create(&d->ma, &da, d->eng, a);
    dnnl_memory_create(&d->mb, &db, d->eng, b);
    dnnl_memory_create(&d->mc, &dc, d->eng, out);
    return true;
}

static void run_dnnl_mm(const gcase *c, void *a, void *b, float *out, void *ctx)
{
    (void)c, (void)a, (void)b, (void)out;
    dnnl_mm *d = ctx;
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, d->ma}, {DNNL_ARG_WEIGHTS, d->mb}, {DNNL_ARG_DST, d->mc}};
    dnnl_primitive_execute(d->prim, d->st, 3, args);
    dnnl_stream_wait(d->st);
}

static void dnnl_mm_free(dnnl_mm *d)
{
    dnnl_memory_destroy(d->ma), dnnl_memory_destroy(d->mb), dnnl_memory_destroy(d->mc);
    dnnl_primitive_destroy(d->prim);
    dnnl_stream_destroy(d->st), dnnl_engine_destroy(d->eng);
}
#endif

int main(int argc, char **argv)
{
    const char *filter = argc > 1 ? argv[1] : NULL;
    int threads = kn_get_num_threads();
#ifdef KILN_BENCH_OPENBLAS
    openblas_set_num_threads(threads);
#endif
#ifdef KILN_BENCH_DNNL
    /* kiln does not use AMX yet: compare with oneDNN's AVX-512 BF16 code
     * unless ONEDNN_MAX_CPU_ISA says otherwise. */
    if (!getenv("ONEDNN_MAX_CPU_ISA")) dnnl_set_max_cpu_isa(dnnl_cpu_isa_avx512_core_bf16);
#endif
    bool has_bf16 = kn_isa_max() >= KN_ISA_AVX512BF16, has_512 = kn_isa_max() >= KN_ISA_AVX512;
    double pk32 = 0, pk16 = 0;
    printf("kiln %s, isa %s, %d threads (figures taken on a shared, loaded machine)\n",
           kn_version(), kn_isa_name(kn_isa_max()), threads);
    if (has_512) {
        printf("peak f32 FMA   1 thread %.1f GFLOP/s, %d threads %.1f GFLOP/s\n", peak(false, 1),
               threads, pk32 = peak(false, threads));
    }
    if (has_bf16) {
        printf("peak vdpbf16ps 1 thread %.1f GFLOP/s, %d threads %.1f GFLOP/s\n", peak(true, 1),
               threads, pk16 = peak(true, threads));
    }
    for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++) {
        const gcase *c = &cases[i];
        char name[64];
        snprintf(name, sizeof name, "%lldx%lldx%lld", (long long)c->m, (long long)c->n,
                 (long long)c->k);
        if (filter && !strstr(c->op, filter) && !strstr(name, filter)) continue;
        size_t es = c->bf16 ? 2 : 4;
        char *a = kn_alloc(es * (size_t)(c->m * c->k)), *b = kn_alloc(es * (size_t)(c->k * c->n));
        float *out = kn_alloc(sizeof(float) * (size_t)(c->m * c->n));
        for (int64_t j = 0; j < c->m * c->k; j++) {
            float v = (float)((j * 7919) % 1000) / 1000.0f - 0.5f;
            if (c->bf16) ((uint16_t *)a)[j] = kn_f32_to_bf16(v); else ((float *)a)[j] = v;
        }
        for (int64_t j = 0; j < c->k * c->n; j++) {
            float v = (float)((j * 104729) % 1000) / 1000.0f - 0.5f;
            if (c->bf16) ((uint16_t *)b)[j] = kn_f32_to_bf16(v); else ((float *)b)[j] = v;
        }
        double g = measure(c, run_kiln, a, b, out, NULL), pk = c->bf16 ? pk16 : pk32;
        printf("%s %s %-16s kiln %7.1f GFLOP/s %5.1f%% of peak", c->op, c->bf16 ? "bf16" : "f32 ",
               name, g, pk > 0 ? 100 * g / pk : 0.0);
        kn_gemm_packed *pb = NULL;
        if (kn__gemm_pack_b(&pb, dt_of(c), c->tb, c->k, c->n, b, dt_of(c), c->tb ? c->k : c->n) == KN_OK) {
            printf("  packed-B %7.1f", measure(c, run_kiln_packed, a, b, out, pb));
            kn__gemm_packed_free(pb);
        }
#ifdef KILN_BENCH_OPENBLAS
        if (!c->bf16) printf("  openblas %7.1f", measure(c, run_openblas, a, b, out, NULL));
#endif
#ifdef KILN_BENCH_DNNL
        if (!c->bf16) {
            printf("  onednn %7.1f", measure(c, run_dnnl_sgemm, a, b, out, NULL));
        } else {
            dnnl_mm d;
            if (dnnl_mm_init(&d, c, a, b, out)) {
                printf("  onednn %7.1f", measure(c, run_dnnl_mm, a, b, out, &d));
                dnnl_mm_free(&d);
            }
        }
#endif
        printf("\n");
        fflush(stdout);
        kn_free(a), kn_free(b), kn_free(out);
    }
    return 0;
}
