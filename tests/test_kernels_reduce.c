/* test_kernels_reduce.c — the AVX-512 reductions (src/kernels/x86/avx512/
 * reduce.c: sum, mean, max, min, var, std of f32/bf16 over the last axis,
 * all axes, all but a channel axis) against the reference engine in
 * src/ops/reduce.c: the same op with the ISA capped at ref and at avx512,
 * over shapes with 1, primes, tails shorter than a vector, strided views and
 * several chunks; NaN propagation; every fast result bitwise equal on 1 and
 * 2 threads. */
#include "harness.h"
#include "kernels/reduce_fast.h"

#include <stdlib.h>

static bool have_avx512(void)
{
    uint32_t f = kn_cpu_features();
    return (f & KN_CPU_AVX512F) && (f & KN_CPU_AVX512BW) && (f & KN_CPU_AVX512VL);
}

static double *to_f64(const kn_tensor *t)
{
    int64_t n = kn_tensor_numel(t);
    double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    kn_tensor_copy_to(t, KN_F64, v, sizeof(double) * (size_t)n);
    return v;
}

static void close_to(const char *what, int ci, const kn_tensor *fast, const kn_tensor *ref,
                     double rel, double abs)
{
    int64_t n = kn_tensor_numel(ref), bad = -1;
    KT_CHECK(kn_tensor_numel(fast) == n, "%s case %d: sizes", what, ci);
    double *a = to_f64(fast), *b = to_f64(ref);
    for (int64_t i = 0; i < n && bad < 0; i++)
        if (!(a[i] == b[i] || fabs(a[i] - b[i]) <= rel * fabs(b[i]) + abs) &&
            !(isnan(a[i]) && isnan(b[i])))
            bad = i;
    KT_CHECK(bad < 0, "%s case %d: element %lld is %.9g, reference %.9g", what, ci, (long long)bad,
             bad >= 0 ? a[bad] : 0.0, bad >= 0 ? b[bad] : 0.0);
    free(a), free(b);
}

/* A tensor of `shape` (values in [-2, 2]) whose rows sit `pad` elements apart. */
static kn_tensor *padded(kn_dtype dt, int nd, const int64_t *shape, int64_t pad, uint64_t seed)
{
    int64_t big[KN_MAX_DIMS], st[KN_MAX_DIMS];
    memcpy(big, shape, sizeof(int64_t) * (size_t)nd);
    big[nd - 1] += pad;
    kn_tensor *b0 = kt_rand(nd, big, -2, 2, seed);
    kn_tensor *b = kn_cast(b0, dt);
    kn_tensor_unref(b0);
    memcpy(st, kn_tensor_strides(b), sizeof(int64_t) * (size_t)nd);
    kn_tensor *v = kn__tensor_view(b, nd, shape, st, 0);
    kn_tensor_unref(b);
    return v;
}

typedef struct rcase {
    int nd;
    int64_t shape[4];
    int n_axes; /* 0: all */
    int axes[4];
    int64_t pad;
} rcase;

static const rcase cases[] = {
    {1, {1}, 0, {0}, 0},
    {1, {13}, 0, {0}, 0},
    {2, {3, 17}, 1, {1}, 0},
    {2, {5, 1024}, 1, {-1}, 0},
    {2, {7, 131}, 1, {1}, 3},
    {2, {2, 9001}, 1, {1}, 0},
    {2, {64, 4099}, 0, {0}, 0},
    {4, {2, 3, 5, 7}, 3, {0, 2, 3}, 0},
    {4, {3, 5, 7, 3}, 3, {0, 1, 2}, 0},
    {2, {50, 33}, 1, {0}, 7},
    {2, {1000, 5}, 1, {0}, 0},
    {2, {601, 70}, 1, {0}, 0},
    {4, {4, 16, 12, 12}, 3, {0, 2, 3}, 0},
    {4, {4, 12, 12, 16}, 3, {0, 1, 2}, 1},
    {3, {3, 4, 5}, 1, {1}, 0},
    {3, {6, 1, 40}, 2, {0, 2}, 0},
};

enum { OP_SUM, OP_MEAN, OP_MAX, OP_MIN, OP_VAR, OP_STD, N_OPS };
static const char *op_names[N_OPS] = {"sum", "mean", "max", "min", "var", "std"};

static kn_tensor *run(int op, kn_tensor *x, const rcase *c)
{
    switch (op) {
    case OP_SUM:
        return kn_sum(x, c->n_axes, c->axes, false);
    case OP_MEAN:
        return kn_mean(x, c->n_axes, c->axes, true);
    case OP_MAX:
        return kn_max(x, c->n_axes, c->axes, false);
    case OP_MIN:
        return kn_min(x, c->n_axes, c->axes, false);
    case OP_VAR:
        return kn_var(x, c->n_axes, c->axes, true, false);
    default:
        return kn_std(x, c->n_axes, c->axes, false, false);
    }
}

/* Fast vs ref. A sum of n terms in |x| <= 2 folds at most KN_RED_ROWS terms
 * per f32 lane, then a 16-lane tree, then doubles: |error| <= (KN_RED_ROWS +
 * 20) * 2^-24 * sum|x| (sum|x| <= 2n; squared deviations <= 16 each). The
 * output's own rounding adds its ulp relative (2^-24 f32, 2^-8 bf16). */
static void test_reduce_fast(void)
{
    if (!have_avx512()) {
        printf("skip: no AVX-512 on this CPU\n");
        return;
    }
    for (int dti = 0; dti < 2; dti++) {
        kn_dtype dt = dti ? KN_BF16 : KN_F32;
        double out_rel = dti ? 0x1p-8 : 0x1p-23;
        for (int ci = 0; ci < KN_ARRAY_LEN(cases); ci++) {
            const rcase *c = &cases[ci];
            kn_tensor *x = padded(dt, c->nd, c->shape, c->pad, 300 + (uint64_t)ci);
            for (int op = 0; op < N_OPS; op++) {
                kn_set_isa(KN_ISA_REF);
                kn_tensor *r = run(op, x, c);
                kn_set_isa(KN_ISA_AVX512);
                kn_tensor *f = run(op, x, c);
                kn_set_num_threads(1);
                kn_tensor *f1 = run(op, x, c);
                kn_set_num_threads(2);
                kn_set_isa(KN_ISA_AVX512BF16);
                KT_NOTNULL(r);
                KT_NOTNULL(f);
                KT_NOTNULL(f1);
                int64_t n = kn_tensor_numel(x) / (kn_tensor_numel(r) ? kn_tensor_numel(r) : 1);
                double acc = (KN_RED_ROWS + 20) * 0x1p-24, abs;
                switch (op) {
                case OP_SUM:
                    abs = acc * 2 * (double)n;
                    break;
                case OP_MEAN:
                    abs = acc * 2;
                    break;
                case OP_VAR:
                    abs = acc * 16 * (double)n / (n > 1 ? (double)n - 1 : 1);
                    break;
                case OP_STD:
                    abs = sqrt(acc * 16); /* sqrt is at worst 1/2-Hoelder */
                    break;
                default:
                    abs = 0; /* max, min exact */
                }
                close_to(op_names[op], ci, f, r, out_rel, abs);
                KT_CHECK(kt_equal_bits(f, f1), "%s case %d: 1 vs 2 threads", op_names[op], ci);
                kn_tensor_unref(r), kn_tensor_unref(f), kn_tensor_unref(f1);
            }
            kn_tensor_unref(x);
        }
    }
}

/* NaN propagates through the fast max, min and sum like through the ref. */
static void test_reduce_nan(void)
{
    if (!have_avx512()) {
        printf("skip: no AVX-512 on this CPU\n");
        return;
    }
    int64_t shape[2] = {37, 70};
    float *v = malloc(sizeof(float) * 37 * 70);
    for (int i = 0; i < 37 * 70; i++)
        v[i] = (float)(i % 11) - 5;
    v[5 * 70 + 3] = NAN, v[36 * 70 + 69] = NAN;
    kn_tensor *x = kn_tensor_from_data(KN_F32, 2, shape, v);
    free(v);
    int ax0 = 0, ax1 = 1;
    for (int isa = 0; isa < 2; isa++) {
        kn_set_isa(isa ? KN_ISA_AVX512 : KN_ISA_REF);
        for (int a = 0; a < 2; a++) {
            kn_tensor *m = kn_max(x, 1, a ? &ax1 : &ax0, false);
            kn_tensor *n = kn_min(x, 1, a ? &ax1 : &ax0, false);
            kn_tensor *s = kn_sum(x, 1, a ? &ax1 : &ax0, false);
            double *pm = to_f64(m), *pn = to_f64(n), *ps = to_f64(s);
            int nan_at[2] = {a ? 5 : 3, a ? 36 : 69};
            for (int64_t i = 0; i < kn_tensor_numel(m); i++) {
                bool want = i == nan_at[0] || i == nan_at[1];
                KT_CHECK(isnan(pm[i]) == want && isnan(pn[i]) == want && isnan(ps[i]) == want,
                         "isa %d axis %d element %lld: NaN %d", isa, a, (long long)i, want);
                if (!want) KT_CHECK(pm[i] == 5 && pn[i] == -5, "max/min values");
            }
            free(pm), free(pn), free(ps);
            kn_tensor_unref(m), kn_tensor_unref(n), kn_tensor_unref(s);
        }
        kn_tensor *all = kn_max(x, 0, NULL, false);
        double mv = 0;
        KT_OK(kn_tensor_item(all, &mv));
        KT_CHECK(isnan(mv), "max of all is NaN");
        kn_tensor_unref(all);
    }
    kn_set_isa(KN_ISA_AVX512BF16);
    kn_tensor_unref(x);
}

int main(void)
{
    KT_RUN(test_reduce_fast);
    KT_RUN(test_reduce_nan);
    return kt_finish();
}
