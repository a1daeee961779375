/* eltwise.c — elementwise throughput: add, mul, bias-row add, relu, gelu,
 * exp, tanh on 1M and 16M elements, f32 and bf16, 2 threads, kiln's fast
 * path (and its reference path) beside PyTorch (bench/eltwise.py, run here
 * through /usr/bin/python3 when it can import torch). Then layout conversion
 * NCHW <-> NHWC (kn_contiguous of a permuted view) beside memcpy of the same
 * bytes, kiln's generic strided copy and PyTorch's permute().contiguous().
 * GB/s counts the bytes read and written once; best of several repeats,
 * output allocation included for kiln and PyTorch. kiln is measured twice:
 * with the default allocator (aligned_alloc: glibc maps big blocks fresh,
 * so a 64 MB output costs 16k page faults per call) and with a small
 * caching allocator installed through kn_set_allocator, which shows the
 * kernels' own speed. PyTorch runs before and after kiln; its best counts. */
#include <kiln.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct bcase {
    const char *name;
    int n_in; /* arrays read (row counts as 0: it stays in cache) */
} bcase;
static const bcase CASES[] = {{"add", 2},  {"mul", 2}, {"add_row", 1}, {"relu", 1},
                              {"gelu", 1}, {"exp", 1}, {"tanh", 1}};

static kn_tensor *run_case(int c, kn_tensor *a, kn_tensor *b, kn_tensor *a2, kn_tensor *row)
{
    switch (c) {
    case 0:
        return kn_add(a, b);
    case 1:
        return kn_mul(a, b);
    case 2:
        return kn_add(a2, row);
    case 3:
        return kn_relu(a);
    case 4:
        return kn_gelu(a);
    case 5:
        return kn_exp(a);
    default:
        return kn_tanh(a);
    }
}

static double best_time(int c, kn_tensor *a, kn_tensor *b, kn_tensor *a2, kn_tensor *row, int reps)
{
    kn_tensor_unref(run_case(c, a, b, a2, row));
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        kn_tensor *y = run_case(c, a, b, a2, row);
        double t = now() - t0;
        if (!y) {
            fprintf(stderr, "bench_eltwise: %s\n", kn_last_error());
            exit(1);
        }
        kn_tensor_unref(y);
        if (t < best) best = t;
    }
    return best;
}

/* A caching allocator: freed blocks are kept by size and handed out again. */
#define CACHE_SLOTS 32
static struct {
    void *p;
    size_t size;
} cache[CACHE_SLOTS];
static void *cache_alloc(size_t size, size_t align, void *user)
{
    (void)user;
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (cache[i].p && cache[i].size == size) {
            void *p = cache[i].p;
            cache[i].p = NULL;
            return p;
        }
    void *p = aligned_alloc(align, (size + align - 1) / align * align);
    if (p && size < ((size_t)1 << 30)) memset(p, 0, size); /* touch once */
    return p;
}
static size_t block_size(void *p)
{
    size_t s;
    memcpy(&s, p, sizeof s); /* kn_alloc keeps the size in the block's header */
    return s + 64;
}
static void cache_free(void *p, void *user)
{
    (void)user;
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (!cache[i].p) {
            cache[i].p = p;
            cache[i].size = block_size(p);
            return;
        }
    free(p);
}

#define MAX_TORCH 128
static struct {
    char name[32], dt[8];
    long n;
    double t;
} torch_rows[MAX_TORCH];
static int n_torch;

static void run_torch(void)
{
    char cmd[1200], dir[1024];
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, "bench");
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/eltwise.py 2>/dev/null", dir);
    FILE *p = popen(cmd, "r");
    if (!p) return;
    while (n_torch < MAX_TORCH &&
           fscanf(p, "%31s %7s %ld %lf", torch_rows[n_torch].name, torch_rows[n_torch].dt,
                  &torch_rows[n_torch].n, &torch_rows[n_torch].t) == 4)
        n_torch++;
    pclose(p);
}

static double torch_time(const char *name, const char *dt, long n)
{
    double best = 0;
    for (int i = 0; i < n_torch; i++)
        if (!strcmp(torch_rows[i].name, name) && !strcmp(torch_rows[i].dt, dt) &&
            torch_rows[i].n == n && (best == 0 || torch_rows[i].t < best))
            best = torch_rows[i].t;
    return best;
}

static double best_contig(kn_tensor *v, int reps)
{
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        kn_tensor *y = kn_contiguous(v);
        double t = now() - t0;
        kn_tensor_unref(y);
        if (t < best) best = t;
    }
    return best;
}

/* memcpy of `bytes` split over 2 threads, like the copies */
typedef struct mc {
    char *d;
    const char *s;
    size_t chunk, bytes;
} mc;
static void mc_range(int64_t b, int64_t e, void *arg)
{
    const mc *m = arg;
    for (int64_t i = b; i < e; i++) {
        size_t off = (size_t)i * m->chunk,
               len = off + m->chunk > m->bytes ? m->bytes - off : m->chunk;
        memcpy(m->d + off, m->s + off, len);
    }
}

static void layout_bench(kn_isa top)
{
    static const int64_t shapes[][4] = {{32, 64, 56, 56}, {32, 256, 14, 14}, {8, 3, 224, 224}};
    printf("\n# layout conversion (kn_contiguous of a permuted view), 2 threads; GB/s = 2 x bytes"
           " / best time\n");
    printf("%-24s %-5s | %9s | %9s | %9s | %9s | %8s\n", "case", "dtype", "kiln GB/s", "memcpy",
           "generic", "torch", "kiln/pt");
    for (int d = 0; d < 2; d++) {
        kn_dtype dt = d ? KN_BF16 : KN_F32;
        const char *dn = d ? "bf16" : "f32";
        for (int s = 0; s < 3; s++) {
            const int64_t *sh = shapes[s];
            int64_t n = sh[0] * sh[1] * sh[2] * sh[3];
            kn_tensor *x = kn_tensor_rand_uniform(dt, 4, sh, -1, 1);
            static const int to_nhwc[4] = {0, 2, 3, 1}, to_nchw[4] = {0, 3, 1, 2};
            kn_tensor *p1 = kn_permute(x, 4, to_nhwc);
            kn_tensor *xh = kn_contiguous(p1);
            kn_tensor *p2 = kn_permute(xh, 4, to_nchw);
            double bytes = 2.0 * (double)n * (double)kn_dtype_size(dt);
            size_t nb = (size_t)n * kn_dtype_size(dt);
            char *buf = kn_alloc(nb);
            mc m = {buf, kn_tensor_data(x), 1 << 20, nb};
            double tm = 1e30;
            for (int r = 0; r < 10; r++) {
                double t0 = now();
                kn_parallel_for((int64_t)((nb + m.chunk - 1) / m.chunk), 1, mc_range, &m);
                double t = now() - t0;
                if (t < tm) tm = t;
            }
            for (int dir = 0; dir < 2; dir++) {
                kn_tensor *v = dir ? p2 : p1;
                kn_set_isa(top);
                double t = best_contig(v, 10);
                kn_set_isa(KN_ISA_REF);
                double tg = best_contig(v, 3);
                kn_set_isa(top);
                char name[48];
                snprintf(name, sizeof name, "%s_%lldx%lldx%lldx%lld", dir ? "to_nchw" : "to_nhwc",
                         (long long)sh[0], (long long)sh[1], (long long)sh[2], (long long)sh[3]);
                double tt = torch_time(name, dn, (long)n);
                printf("%-24s %-5s | %9.2f | %9.2f | %9.2f | ", name, dn, bytes / t * 1e-9,
                       bytes / tm * 1e-9, bytes / tg * 1e-9);
                if (tt > 0)
                    printf("%9.2f | %8.2f\n", bytes / tt * 1e-9, tt / t);
                else
                    printf("%9s | %8s\n", "-", "-");
                fflush(stdout);
            }
            kn_free(buf);
            kn_tensor_unref(x), kn_tensor_unref(p1), kn_tensor_unref(xh), kn_tensor_unref(p2);
        }
    }
}

int main(void)
{
    kn_set_num_threads(2);
    run_torch();
    printf("# elementwise, 2 threads, isa %s; GB/s = bytes read+written / best time\n",
           kn_isa_name(kn_isa_max()));
    printf("%-8s %-5s %9s | %9s %9s | %9s | %9s %9s | %9s | %8s %8s\n", "case", "dtype", "n",
           "kiln GB/s", "Gelem/s", "cached", "torch GB/s", "Gelem/s", "ref GB/s", "kiln/pt",
           "cach/pt");
    kn_isa top = kn_isa_max();
    for (int d = 0; d < 2; d++) {
        kn_dtype dt = d ? KN_BF16 : KN_F32;
        const char *dn = d ? "bf16" : "f32";
        for (int s = 0; s < 2; s++) {
            int64_t n = s ? 1 << 24 : 1 << 20, shape2[2] = {n / 1024, 1024}, nrow = 1024;
            int reps = s ? 8 : 50;
            kn_manual_seed(1);
            kn_tensor *a = kn_tensor_rand_uniform(dt, 1, &n, -4, 4);
            kn_tensor *b = kn_tensor_rand_uniform(dt, 1, &n, -4, 4);
            kn_tensor *row = kn_tensor_rand_uniform(dt, 1, &nrow, -4, 4);
            kn_tensor *a2 = kn_reshape(a, 2, shape2);
            for (int c = 0; c < (int)(sizeof CASES / sizeof CASES[0]); c++) {
                double bytes = (double)n * (double)kn_dtype_size(dt) * (CASES[c].n_in + 1);
                kn_set_isa(top);
                double t = best_time(c, a, b, a2, row, reps);
                kn_set_allocator(&(kn_allocator){cache_alloc, cache_free, NULL});
                double tc = best_time(c, a, b, a2, row, reps);
                kn_set_allocator(NULL);
                kn_set_isa(KN_ISA_REF);
                double tr = best_time(c, a, b, a2, row, s ? 2 : 5);
                kn_set_isa(top);
                double tt = torch_time(CASES[c].name, dn, (long)n);
                printf("%-8s %-5s %9lld | %9.2f %9.3f | %9.2f | ", CASES[c].name, dn, (long long)n,
                       bytes / t * 1e-9, n / t * 1e-9, bytes / tc * 1e-9);
                if (tt > 0)
                    printf("%9.2f %9.3f | ", bytes / tt * 1e-9, n / tt * 1e-9);
                else
                    printf("%9s %9s | ", "-", "-");
                printf("%9.2f | ", bytes / tr * 1e-9);
                if (tt > 0)
                    printf("%8.2f %8.2f\n", tt / t, tt / tc);
                else
                    printf("%8s %8s\n", "-", "-");
                fflush(stdout);
            }
            kn_tensor_unref(a), kn_tensor_unref(b), kn_tensor_unref(row), kn_tensor_unref(a2);
        }
    }
    layout_bench(top);
    run_torch(); /* again: the best of both runs counts */
    printf("\n# PyTorch re-run after kiln; best of both runs:\n");
    for (int d = 0; d < 2; d++)
        for (int s = 0; s < 2; s++)
            for (int c = 0; c < (int)(sizeof CASES / sizeof CASES[0]); c++) {
                long n = s ? 1L << 24 : 1L << 20;
                const char *dn = d ? "bf16" : "f32";
                double tt = torch_time(CASES[c].name, dn, n);
                if (tt > 0)
                    printf("torch %-8s %-5s %9ld %9.3f Gelem/s\n", CASES[c].name, dn, n,
                           n / tt * 1e-9);
            }
    return 0;
}
