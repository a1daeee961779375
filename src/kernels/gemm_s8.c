/* gemm_s8.c — the int8 GEMM driver (packing B, compensation terms, tiling
 * and threads), its portable tile path and the reference twin
 * kn__gemm_s8_ref. The VNNI tile kernel is in x86/avx512bf16/gemm_s8_vnni.c.
 * Shapes: A (m, k) u8 row-major; B (k, n) s8 (or (n, k) when transposed);
 * C (m, n) of rq->out. */
#include "gemm_s8.h"

kn_status kn__gemm_s8_pack_b(kn_gemm_s8_b *pb, const int8_t *b, int64_t ldb, bool trans_b,
                             int64_t k, int64_t n)
{
    memset(pb, 0, sizeof *pb);
    if (k < 1 || n < 1 || k > KN_GEMM_S8_MAX_K || !b)
        return kn__error(KN_ERR_ARG, "gemm_s8: k = %lld, n = %lld (need 1 <= k <= %d, n >= 1)",
                         (long long)k, (long long)n, KN_GEMM_S8_MAX_K);
    pb->k = k, pb->n = n;
    pb->k_pad = (k + 3) / 4 * 4;
    pb->n_pad = (n + KN_GEMM_S8_NR - 1) / KN_GEMM_S8_NR * KN_GEMM_S8_NR;
    int64_t bytes;
    if (kn__mul_overflow(pb->k_pad, pb->n_pad, &bytes))
        return kn__error(KN_ERR_ARG, "gemm_s8: packed B of %lld x %lld is too large", (long long)k,
                         (long long)n);
    pb->data = kn_alloc((size_t)bytes);
    pb->col_sum = kn_alloc(sizeof(int32_t) * (size_t)pb->n_pad);
    if (!pb->data || !pb->col_sum) {
        kn__gemm_s8_b_free(pb);
        return KN_ERR_NOMEM;
    }
    memset(pb->data, 0, (size_t)bytes);
    for (int64_t j = 0; j < pb->n_pad; j++) {
        int8_t *panel = pb->data + (j / KN_GEMM_S8_NR) * pb->k_pad * KN_GEMM_S8_NR;
        int64_t jj = j % KN_GEMM_S8_NR;
        int32_t sum = 0;
        for (int64_t p = 0; j < n && p < k; p++) {
            int8_t v = trans_b ? b[j * ldb + p] : b[p * ldb + j];
            panel[(p / 4) * KN_GEMM_S8_NR * 4 + jj * 4 + p % 4] = v;
            sum += v;
        }
        pb->col_sum[j] = sum;
    }
    return KN_OK;
}

void kn__gemm_s8_b_free(kn_gemm_s8_b *pb)
{
    kn_free(pb->data);
    kn_free(pb->col_sum);
    pb->data = NULL, pb->col_sum = NULL;
}

static kn_status check_rq(const kn_requant *rq)
{
    if (!rq || (rq->out != KN_I32 && rq->out != KN_F32 && rq->out != KN_I8 && rq->out != KN_U8))
        return kn__error(KN_ERR_ARG, "gemm_s8: output dtype must be i32, f32, i8 or u8");
    if (rq->a_zero < 0 || rq->a_zero > 255)
        return kn__error(KN_ERR_ARG, "gemm_s8: A's zero point %d is not a u8", (int)rq->a_zero);
    return KN_OK;
}

/* s32 arithmetic that wraps like the vector instructions (no C overflow) */
static inline int32_t wrap_add(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a + (uint32_t)b);
}
static inline int32_t wrap_mul(int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)a * (uint32_t)b);
}

/* bias[j] - a_zero * colsum[j] + k * a_zero * b_zero */
static int32_t col_comp(const kn_requant *rq, int64_t j, int32_t col_sum, int64_t k)
{
    int32_t c = rq->bias ? rq->bias[j] : 0;
    c = wrap_add(c, wrap_mul(-rq->a_zero, col_sum));
    return wrap_add(c, wrap_mul(wrap_mul((int32_t)k, rq->a_zero), rq->b_zero));
}

static int32_t row_sum(const uint8_t *a, int64_t k)
{
    int32_t s = 0;
    for (int64_t p = 0; p < k; p++)
        s += a[p];
    return s;
}

kn_status kn__gemm_s8_ref(int64_t m, int64_t n, int64_t k, const uint8_t *a, int64_t lda,
                          const int8_t *b, int64_t ldb, bool trans_b, const kn_requant *rq, void *c,
                          int64_t ldc)
{
    kn_status s = check_rq(rq);
    if (s) return s;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            int32_t acc = rq->bias ? rq->bias[j] : 0;
            for (int64_t p = 0; p < k; p++) {
                int32_t bv = trans_b ? b[j * ldb + p] : b[p * ldb + j];
                acc = wrap_add(acc, wrap_mul(a[i * lda + p] - rq->a_zero, bv - rq->b_zero));
            }
            kn__requant_store(rq, j, acc, c, i * ldc + j);
        }
    return KN_OK;
}

typedef struct s8_job {
    int64_t m, row_blocks;
    const uint8_t *a;
    int64_t lda;
    const kn_gemm_s8_b *pb;
    const int32_t *comp, *row_comp;
    const kn_requant *rq;
    void *c;
    int64_t ldc;
    bool vnni;
} s8_job;

#define S8_MB 48 /* rows per task (8 VNNI micro-tiles of 6) */

/* Portable tile: the same sums from the packed B. */
static void tile_portable(const s8_job *j, int64_t i0, int64_t i1, int64_t panel)
{
    const kn_gemm_s8_b *pb = j->pb;
    const int8_t *bp = pb->data + panel * pb->k_pad * KN_GEMM_S8_NR;
    int64_t j0 = panel * KN_GEMM_S8_NR;
    int64_t nj = pb->n - j0 < KN_GEMM_S8_NR ? pb->n - j0 : KN_GEMM_S8_NR;
    int32_t acc[KN_GEMM_S8_NR];
    for (int64_t i = i0; i < i1; i++) {
        const uint8_t *ar = j->a + i * j->lda;
        for (int64_t jj = 0; jj < nj; jj++)
            acc[jj] = 0;
        for (int64_t p = 0; p < pb->k; p++) {
            const int8_t *bq = bp + (p / 4) * KN_GEMM_S8_NR * 4 + p % 4;
            for (int64_t jj = 0; jj < nj; jj++)
                acc[jj] = wrap_add(acc[jj], (int32_t)ar[p] * bq[jj * 4]);
        }
        for (int64_t jj = 0; jj < nj; jj++) {
            int32_t v = wrap_add(acc[jj], j->comp[j0 + jj]);
            if (j->row_comp) v = wrap_add(v, j->row_comp[i]);
            kn__requant_store(j->rq, j0 + jj, v, j->c, i * j->ldc + j0 + jj);
        }
    }
}

static void s8_range(int64_t begin, int64_t end, void *arg)
{
    const s8_job *j = arg;
    for (int64_t t = begin; t < end; t++) {
        int64_t panel = t / j->row_blocks, i0 = (t % j->row_blocks) * S8_MB;
        int64_t i1 = i0 + S8_MB < j->m ? i0 + S8_MB : j->m;
#if KILN_X86
        if (j->vnni) {
            kn__gemm_s8_tile_vnni(i0, i1, panel, j->a, j->lda, j->pb, j->comp, j->row_comp, j->rq,
                                  j->c, j->ldc);
            continue;
        }
#endif
        tile_portable(j, i0, i1, panel);
    }
}

kn_status kn__gemm_s8(int64_t m, const uint8_t *a, int64_t lda, const kn_gemm_s8_b *pb,
                      const kn_requant *rq, void *c, int64_t ldc)
{
    kn_status s = check_rq(rq);
    if (s) return s;
    if (!pb || !pb->data || m < 0 || (m > 0 && (!a || !c)))
        return kn__error(KN_ERR_ARG, "gemm_s8: bad arguments (m = %lld)", (long long)m);
    if (m == 0) return KN_OK;
    int32_t *comp = kn_alloc(sizeof(int32_t) * (size_t)pb->n_pad);
    int32_t *row_comp = rq->b_zero ? kn_alloc(sizeof(int32_t) * (size_t)m) : NULL;
    if (!comp || (rq->b_zero && !row_comp)) {
        kn_free(comp), kn_free(row_comp);
        return KN_ERR_NOMEM;
    }
    for (int64_t jj = 0; jj < pb->n_pad; jj++)
        comp[jj] = jj < pb->n ? col_comp(rq, jj, pb->col_sum[jj], pb->k) : 0;
    for (int64_t i = 0; row_comp && i < m; i++)
        row_comp[i] = wrap_mul(-rq->b_zero, row_sum(a + i * lda, pb->k));
    bool vnni = false;
#if KILN_X86
    vnni = kn_isa_max() >= KN_ISA_AVX512BF16 && (kn_cpu_features() & KN_CPU_AVX512_VNNI);
#endif
    /* the VNNI kernel reads whole k-quads: rows of A padded with zeros */
    uint8_t *a_pad = NULL;
    if (vnni && pb->k_pad != pb->k) {
        if (!(a_pad = kn_alloc((size_t)(m * pb->k_pad)))) {
            kn_free(comp), kn_free(row_comp);
            return KN_ERR_NOMEM;
        }
        for (int64_t i = 0; i < m; i++) {
            memcpy(a_pad + i * pb->k_pad, a + i * lda, (size_t)pb->k);
            memset(a_pad + i * pb->k_pad + pb->k, 0, (size_t)(pb->k_pad - pb->k));
        }
        a = a_pad, lda = pb->k_pad;
    }
    s8_job j = {m, (m + S8_MB - 1) / S8_MB, a, lda, pb, comp, row_comp, rq, c, ldc, vnni};
    int64_t panels = pb->n_pad / KN_GEMM_S8_NR;
    kn_parallel_for(panels * j.row_blocks, 1, s8_range, &j);
    kn_free(comp), kn_free(row_comp), kn_free(a_pad);
    return KN_OK;
}
