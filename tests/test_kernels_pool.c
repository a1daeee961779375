/* test_kernels_pool.c — the AVX-512 2-D pooling kernels
 * (src/kernels/x86/avx512/pool.c) against the reference gather engine of
 * src/ops/pool.c: max/avg pool NCHW and NHWC over kernels, strides, pads,
 * ceil mode, count_include_pad, sizes with 1, primes, channel tails shorter
 * than a vector and strided inputs, f32 and bf16; max_pool_grad (f32); and
 * every fast result bitwise equal on 1 and 2 threads. */
#include "harness.h"
#include "kernels/pool_fast.h"
#include "ops/pool.h"
#include "tensor/tensor.h"

#include <stdlib.h>

static bool have_avx512(void)
{
    uint32_t f = kn_cpu_features();
    return (f & KN_CPU_AVX512F) && (f & KN_CPU_AVX512BW) && (f & KN_CPU_AVX512VL);
}

static bool close_to(const char *what, const kn_tensor *fast, const kn_tensor *ref, double rel,
                     double abs)
{
    int64_t n = kn_tensor_numel(ref);
    double *a = malloc(sizeof(double) * (size_t)(n + 1)),
           *b = malloc(sizeof(double) * (size_t)(n + 1));
    kn_tensor_copy_to(fast, KN_F64, a, sizeof(double) * (size_t)n);
    kn_tensor_copy_to(ref, KN_F64, b, sizeof(double) * (size_t)n);
    int64_t bad = -1;
    for (int64_t i = 0; i < n && bad < 0; i++)
        if (!(a[i] == b[i] || fabs(a[i] - b[i]) <= rel * fabs(b[i]) + abs) &&
            !(isnan(a[i]) && isnan(b[i])))
            bad = i;
    KT_CHECK(bad < 0, "%s: element %lld is %.9g, reference %.9g", what, (long long)bad,
             bad >= 0 ? a[bad] : 0.0, bad >= 0 ? b[bad] : 0.0);
    free(a), free(b);
    return bad < 0;
}

/* x of logical (n, c, h, w) in the layout, optionally with its innermost
 * rows `pad` elements apart (a strided view). */
static kn_tensor *make_x(kn_dtype dt, bool nhwc, const int64_t *nchw, int64_t pad, uint64_t seed)
{
    int64_t shape[4] = {nchw[0], nhwc ? nchw[2] : nchw[1], nhwc ? nchw[3] : nchw[2],
                        nhwc ? nchw[1] : nchw[3]};
    int64_t big[4] = {shape[0], shape[1], shape[2] + pad, shape[3]}, st[4];
    kn_manual_seed(seed);
    kn_tensor *b = kn_tensor_rand_normal(dt, 4, big, 0, 1);
    memcpy(st, kn_tensor_strides(b), sizeof st);
    kn_tensor *v = kn__tensor_view(b, 4, shape, st, 0);
    kn_tensor_unref(b);
    return v;
}

typedef struct pcase {
    int64_t x[4]; /* n, c, h, w */
    int64_t k[2], s[2], pb[2], pe[2];
    bool ceil, include_pad;
    int64_t pad;
} pcase;

static const pcase cases[] = {
    {{1, 1, 1, 1}, {1, 1}, {1, 1}, {0, 0}, {0, 0}, false, false, 0},
    {{2, 3, 9, 11}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, false, true, 0},
    {{2, 17, 40, 37}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, true, false, 2},
    {{1, 5, 35, 41}, {3, 2}, {1, 1}, {1, 0}, {2, 1}, false, true, 0},
    {{3, 33, 13, 50}, {2, 2}, {2, 2}, {0, 0}, {0, 0}, true, false, 3},
    {{2, 7, 19, 45}, {5, 3}, {3, 2}, {2, 1}, {0, 2}, false, false, 0},
    {{1, 64, 7, 7}, {7, 7}, {7, 7}, {0, 0}, {0, 0}, false, false, 0},
    {{2, 4, 23, 70}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, false, false, 0},
    /* 2x2 stride 2 (the split-pairs kernel): LeNet's planes, a row of 2
     * vectors and a tail, odd H and W leaving a row and a column out */
    {{4, 6, 28, 28}, {2, 2}, {2, 2}, {0, 0}, {0, 0}, false, false, 0},
    {{3, 5, 10, 10}, {2, 2}, {2, 2}, {0, 0}, {0, 0}, false, false, 0},
    {{2, 2, 9, 67}, {2, 2}, {2, 2}, {0, 0}, {0, 0}, false, false, 1},
};

static kn_tensor *pool_call(kn_tensor *x, const pcase *c, bool max, bool nhwc)
{
    kn_pool_params p = {.ceil_mode = c->ceil,
                        .count_include_pad = c->include_pad,
                        .layout = nhwc ? KN_LAYOUT_NHWC : KN_LAYOUT_NCHW};
    for (int d = 0; d < 2; d++)
        p.kernel[d] = c->k[d], p.stride[d] = c->s[d], p.pad_begin[d] = c->pb[d],
        p.pad_end[d] = c->pe[d];
    return max ? kn_max_pool(x, &p) : kn_avg_pool(x, &p);
}

static void test_pool_fast(void)
{
    if (!have_avx512()) {
        printf("skip: no AVX-512 on this CPU\n");
        return;
    }
    for (int dti = 0; dti < 2; dti++)
        for (int ci = 0; ci < KN_ARRAY_LEN(cases); ci++)
            for (int lay = 0; lay < 2; lay++)
                for (int mx = 0; mx < 2; mx++) {
                    kn_dtype dt = dti ? KN_BF16 : KN_F32;
                    const pcase *c = &cases[ci];
                    kn_tensor *x = make_x(dt, lay, c->x, c->pad, 40 + (uint64_t)ci);
                    kn_set_isa(KN_ISA_REF);
                    kn_tensor *r = pool_call(x, c, mx, lay);
                    kn_set_isa(KN_ISA_AVX512);
                    kn_tensor *f = pool_call(x, c, mx, lay);
                    kn_set_num_threads(1);
                    kn_tensor *f1 = pool_call(x, c, mx, lay);
                    kn_set_num_threads(2);
                    kn_set_isa(KN_ISA_AVX512BF16);
                    /* max is exact; avg sums k taps in f32 (bf16: one output rounding) */
                    double taps = (double)(c->k[0] * c->k[1]);
                    double tol = mx ? 0 : 0x1p-23 * (2 + taps);
                    close_to(mx ? "max_pool" : "avg_pool", f, r,
                             dt == KN_BF16 && !mx ? 0x1p-7 : tol, tol);
                    KT_CHECK(kt_equal_bits(f, f1), "pool case %d: 1 vs 2 threads", ci);
                    kn_tensor_unref(x), kn_tensor_unref(r), kn_tensor_unref(f), kn_tensor_unref(f1);
                }
    /* NaN propagates through max */
    int64_t s[4] = {1, 1, 4, 20};
    kn_tensor *x = kn_tensor_zeros(KN_F32, 4, s);
    kn_tensor_set(x, (int64_t[]){0, 0, 1, 17}, NAN);
    for (int stride = 1; stride <= 2; stride++) {
        pcase c = {{1, 1, 4, 20}, {2, 2}, {stride, stride}, {0, 0}, {0, 0}, false, false, 0};
        kn_set_isa(KN_ISA_REF);
        kn_tensor *r = pool_call(x, &c, true, false);
        kn_set_isa(KN_ISA_AVX512BF16);
        kn_tensor *f = pool_call(x, &c, true, false);
        close_to("max_pool NaN", f, r, 0, 0);
        kn_tensor_unref(r), kn_tensor_unref(f);
    }
    kn_tensor_unref(x);
    kt_mark("max_pool", KT_FWD), kt_mark("avg_pool", KT_FWD);
}

static kn_tensor *grad_call(kn_tensor *x, kn_tensor *gy, const pcase *c, bool nhwc)
{
    kn_pool_attrs at = {.ceil_mode = c->ceil,
                        .count_include_pad = c->include_pad,
                        .layout = nhwc ? KN_LAYOUT_NHWC : KN_LAYOUT_NCHW,
                        .kind = KN_POOL_MAX};
    at.kernel.n = at.stride.n = at.pad_begin.n = at.pad_end.n = 2;
    for (int d = 0; d < 2; d++)
        at.kernel.v[d] = c->k[d], at.stride.v[d] = c->s[d], at.pad_begin.v[d] = c->pb[d],
        at.pad_end.v[d] = c->pe[d];
    kn_tensor *in[2] = {x, gy};
    return kn__op_call1(&kn_op_max_pool_grad, 2, in, &at);
}

static void test_max_pool_grad_fast(void)
{
    if (!have_avx512()) {
        printf("skip: no AVX-512 on this CPU\n");
        return;
    }
    for (int ci = 0; ci < KN_ARRAY_LEN(cases); ci++)
        for (int lay = 0; lay < 2; lay++) {
            const pcase *c = &cases[ci];
            kn_tensor *x = make_x(KN_F32, lay, c->x, c->pad, 70 + (uint64_t)ci);
            if (ci == 10) { /* NaN: the window's last NaN takes the gradient */
                int64_t at[3][4] = {{0, 0, 2, 4}, {0, 0, 3, 5}, {1, 1, 6, 30}};
                for (int k = 0; k < 3; k++)
                    kn_tensor_set(x, lay ? (int64_t[]){at[k][0], at[k][2], at[k][3], at[k][1]} : at[k], NAN);
            }
            if (ci == 3 || ci == 9) { /* ties: the first maximum takes the gradient */
                kn_tensor *t = kn_tensor_full(KN_F32, 4, kn_tensor_shape(x), 1.0);
                kn_tensor_unref(x);
                x = t;
            }
            kn_tensor *y = pool_call(x, c, true, lay);
            kn_manual_seed(5);
            kn_tensor *gy = kn_tensor_rand_normal(KN_F32, 4, kn_tensor_shape(y), 0, 1);
            kn_set_isa(KN_ISA_REF);
            kn_tensor *r = grad_call(x, gy, c, lay);
            kn_set_isa(KN_ISA_AVX512);
            kn_tensor *f = grad_call(x, gy, c, lay);
            kn_set_num_threads(1);
            kn_tensor *f1 = grad_call(x, gy, c, lay);
            kn_set_num_threads(2);
            kn_set_isa(KN_ISA_AVX512BF16);
            /* at most ceil(k/s)^2 f32 additions per element */
            double tol = 0x1p-23 * 16;
            close_to("max_pool_grad", f, r, tol, tol);
            KT_CHECK(kt_equal_bits(f, f1), "max_pool_grad case %d: 1 vs 2 threads", ci);
            kn_tensor_unref(x), kn_tensor_unref(y), kn_tensor_unref(gy);
            kn_tensor_unref(r), kn_tensor_unref(f), kn_tensor_unref(f1);
        }
    kt_mark("max_pool_grad", KT_FWD);
}

int main(void)
{
    kn_set_num_threads(2);
    KT_RUN(test_pool_fast);
    KT_RUN(test_max_pool_grad_fast);
    return kt_finish();
}
