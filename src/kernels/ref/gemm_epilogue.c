/* gemm_epilogue.c — the reference twin of kn__gemm (see ../gemm.h): operands
 * converted to f32 (rounded to bf16 first when compute is bf16), each C
 * element summed over k in ascending order in f32, then beta*C, bias,
 * scale/shift, residual and the activation (libm, in double), then the cast
 * to C's dtype. Rows are split over threads; a row is one fixed sequence. */
#include "../gemm.h"
#include "gemm.h"

#include <math.h>

float kn__act_ref(kn_act act, float x)
{
    double v = x;
    switch (act) {
    case KN_ACT_NONE: return x;
    case KN_ACT_RELU: return x > 0 ? x : (x == x ? 0.0f : x);
    case KN_ACT_RELU6: return x != x ? x : x < 0 ? 0.0f : x > 6 ? 6.0f : x;
    case KN_ACT_GELU: return (float)(0.5 * v * erfc(-v * 0.70710678118654752440));
    case KN_ACT_GELU_TANH: {
        double u = 0.79788456080286535588 * (v + 0.044715 * v * v * v);
        return (float)(0.5 * v * (1.0 + tanh(u)));
    }
    case KN_ACT_SILU: return (float)(v / (1.0 + exp(-v)));
    case KN_ACT_SIGMOID: return (float)(1.0 / (1.0 + exp(-v)));
    case KN_ACT_TANH: return (float)tanh(v);
    default: return x;
    }
}

static float load_f(kn_dtype dt, const void *p, int64_t i)
{
    return dt == KN_BF16 ? kn_bf16_to_f32(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

static void store_f(kn_dtype dt, void *p, int64_t i, float v)
{
    if (dt == KN_BF16)
        ((uint16_t *)p)[i] = kn_f32_to_bf16(v);
    else
        ((float *)p)[i] = v;
}

void kn__epilogue_row_ref(const kn_epilogue *ep, int64_t i, int64_t j0, int64_t j1, float *acc,
                          void *crow, kn_dtype c_dt)
{
    for (int64_t j = j0; j < j1; j++) {
        float y = acc[j - j0];
        if (ep) {
            if (ep->bias) y += ep->bias[j];
            if (ep->scale) y *= ep->scale[j];
            if (ep->shift) y += ep->shift[j];
            if (ep->residual) y += load_f(ep->residual_dtype, ep->residual, i * ep->ldr + j);
            y = kn__act_ref(ep->act, y);
        }
        store_f(c_dt, crow, j - j0, y);
    }
}

typedef struct ref_job {
    bool trans_a;
    int64_t m, n, k, lda, ldc;
    const void *a;
    kn_dtype a_dt, c_dt;
    bool round_a;
    const float *b; /* k×n contiguous f32 (already rounded when compute is bf16) */
    float beta;
    void *c;
    const kn_epilogue *ep;
    float *scratch; /* per row: k + n floats, indexed by row */
} ref_job;

static float round_bf16(float x)
{
    return kn_bf16_to_f32(kn_f32_to_bf16(x));
}

static void ref_rows(int64_t begin, int64_t end, void *arg)
{
    const ref_job *r = arg;
    size_t ces = kn_dtype_size(r->c_dt);
    for (int64_t i = begin; i < end; i++) {
        float *arow = r->scratch + i * (r->k + r->n), *acc = arow + r->k;
        for (int64_t p = 0; p < r->k; p++) {
            float v = load_f(r->a_dt, r->a, r->trans_a ? p * r->lda + i : i * r->lda + p);
            arow[p] = r->round_a ? round_bf16(v) : v;
        }
        kn__gemm_ref_f32(0, 1, r->n, r->k, arow, 0, 1, r->b, r->n, acc, r->n);
        char *crow = (char *)r->c + (size_t)(i * r->ldc) * ces;
        if (r->beta != 0)
            for (int64_t j = 0; j < r->n; j++)
                acc[j] += r->beta * load_f(r->c_dt, crow, j);
        kn__epilogue_row_ref(r->ep, i, 0, r->n, acc, crow, r->c_dt);
    }
}

kn_status kn__gemm_ref_batched(kn_dtype compute, bool trans_a, bool trans_b, int64_t m, int64_t n,
                               int64_t k, const void *a, kn_dtype a_dt, int64_t lda, const void *b,
                               kn_dtype b_dt, int64_t ldb, float beta, void *c, kn_dtype c_dt,
                               int64_t ldc, const kn_epilogue *ep, int64_t batch,
                               int64_t stride_a, int64_t stride_b, int64_t stride_c)
{
    if (m <= 0 || n <= 0 || batch <= 0) return KN_OK;
    bool rnd = compute == KN_BF16;
    float *bbuf = kn_alloc(sizeof(float) * (size_t)(k * n + m * (k + n)) + 1);
    if (!bbuf) return KN_ERR_NOMEM;
    size_t aes = kn_dtype_size(a_dt), bes = kn_dtype_size(b_dt), ces = kn_dtype_size(c_dt);
    size_t res = ep && ep->residual ? kn_dtype_size(ep->residual_dtype) : 0;
    for (int64_t bi = 0; bi < batch; bi++) {
        const char *bb = (const char *)b + (size_t)(bi * stride_b) * bes;
        for (int64_t p = 0; p < k; p++)
            for (int64_t j = 0; j < n; j++) {
                float v = load_f(b_dt, bb, trans_b ? j * ldb + p : p * ldb + j);
                bbuf[p * n + j] = rnd ? round_bf16(v) : v;
            }
        kn_epilogue e;
        if (ep) {
            e = *ep;
            if (e.residual) e.residual = (const char *)e.residual + (size_t)(bi * e.stride_r) * res;
        }
        ref_job r = {.trans_a = trans_a,
                     .m = m, .n = n, .k = k, .lda = lda, .ldc = ldc,
                     .a = (const char *)a + (size_t)(bi * stride_a) * aes,
                     .a_dt = a_dt, .c_dt = c_dt, .round_a = rnd, .b = bbuf, .beta = beta,
                     .c = (char *)c + (size_t)(bi * stride_c) * ces,
                     .ep = ep ? &e : NULL, .scratch = bbuf + k * n};
        int64_t grain = 65536 / (n * (k + 1) + 1);
        kn_parallel_for(m, grain < 1 ? 1 : grain, ref_rows, &r);
    }
    kn_free(bbuf);
    return KN_OK;
}
