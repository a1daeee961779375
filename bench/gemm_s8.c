/* gemm_s8.c — int8 GEMM throughput: kiln's u8×s8→s32 VNNI GEMM
 * (src/kernels/gemm_s8.h; B = weights (n, k) packed once, not timed) beside
 * oneDNN's dnnl_gemm_u8s8s32 with the same layout, at 1024³ and BERT-base
 * shapes (seq 128 × batch 1 and 8). GOP/s = 2mnk / best time; 2 threads.
 * kiln is timed with s32 output and with the i8 requantization epilogue. */
#include "kernels/gemm_s8.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#ifdef KILN_BENCH_DNNL
#include <dnnl.h>
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(void)
{
    static const int64_t shapes[][3] = {{1024, 1024, 1024}, {128, 768, 768},  {128, 3072, 768},
                                        {128, 768, 3072},   {1024, 768, 768}, {1024, 3072, 768},
                                        {1024, 768, 3072}};
    kn_set_num_threads(2);
    printf("# int8 GEMM u8 x s8 -> s32, B (n,k) transposed, 2 threads, isa %s%s\n",
           kn_isa_name(kn_isa_max()),
           (kn_cpu_features() & KN_CPU_AVX512_VNNI) ? " (VNNI)" : " (no VNNI: portable path)");
    printf("%-16s | %10s %10s | %10s | %8s\n", "m x n x k", "kiln s32", "kiln i8", "oneDNN",
           "kiln/dnnl");
    for (int s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++) {
        int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        uint8_t *a = malloc((size_t)(m * k));
        int8_t *b = malloc((size_t)(n * k));
        int32_t *c = malloc(sizeof(int32_t) * (size_t)(m * n));
        float *scale = malloc(sizeof(float) * (size_t)n);
        for (int64_t i = 0; i < m * k; i++)
            a[i] = (uint8_t)(i * 7 + 3);
        for (int64_t i = 0; i < n * k; i++)
            b[i] = (int8_t)(i * 13 + 1);
        for (int64_t j = 0; j < n; j++)
            scale[j] = 1e-4f;
        double ops = 2.0 * (double)m * (double)n * (double)k;
        int reps = ops > 1e9 ? 10 : 40;
        kn_gemm_s8_b pb;
        if (kn__gemm_s8_pack_b(&pb, b, k, true, k, n)) return 1;
        double best[3] = {1e30, 1e30, 1e30};
        for (int v = 0; v < 2; v++) {
            kn_requant rq = {128, 0, NULL, v ? scale : NULL, 1, 0, v ? KN_I8 : KN_I32};
            for (int r = 0; r < reps + 1; r++) {
                double t0 = now();
                kn__gemm_s8(m, a, k, &pb, &rq, c, n);
                double t = now() - t0;
                if (r && t < best[v]) best[v] = t;
            }
        }
#ifdef KILN_BENCH_DNNL
        for (int r = 0; r < reps + 1; r++) {
            int32_t co = 0;
            double t0 = now();
            dnnl_gemm_u8s8s32('N', 'T', 'F', m, n, k, 1.0f, a, k, 128, b, k, 0, 0.0f, c, n, &co);
            double t = now() - t0;
            if (r && t < best[2]) best[2] = t;
        }
#endif
        char name[48];
        snprintf(name, sizeof name, "%lldx%lldx%lld", (long long)m, (long long)n, (long long)k);
        printf("%-16s | %10.1f %10.1f | ", name, ops / best[0] * 1e-9, ops / best[1] * 1e-9);
        if (best[2] < 1e30)
            printf("%10.1f | %8.2f\n", ops / best[2] * 1e-9, best[2] / best[0]);
        else
            printf("%10s | %8s\n", "-", "-");
        fflush(stdout);
        kn__gemm_s8_b_free(&pb);
        free(a), free(b), free(c), free(scale);
    }
    return 0;
}
