/* test_kernels_norm.c — the AVX-512 normalize and softmax kernels
 * (src/kernels/x86/avx512/norm*.c) against their reference twins in
 * src/ops/norm.c: the same op run with the ISA capped at ref and at avx512,
 * over shapes with 1, primes, tails shorter than a vector and strided views,
 * in f32 and bf16; the fused eager layer/batch norm against the composite;
 * and every fast result bitwise equal on 1 and 2 threads. */
#include "harness.h"
#include "kernels/norm_fast.h"
#include "ops/norm.h"
#include "tensor/tensor.h"

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

/* |fast - ref| <= rel * |ref| + abs, elementwise; returns the worst excess. */
static bool close_to(const char *what, const kn_tensor *fast, const kn_tensor *ref, double rel,
                     double abs)
{
    int64_t n = kn_tensor_numel(ref);
    if (kn_tensor_numel(fast) != n) return false;
    double *a = to_f64(fast), *b = to_f64(ref);
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

/* A tensor of `shape` whose rows (last dim) sit `pad` elements apart. */
static kn_tensor *padded(kn_dtype dt, int nd, const int64_t *shape, int64_t pad, uint64_t seed)
{
    int64_t big[KN_MAX_DIMS], st[KN_MAX_DIMS];
    memcpy(big, shape, sizeof(int64_t) * (size_t)nd);
    big[nd - 1] += pad;
    kn_manual_seed(seed);
    kn_tensor *b = kn_tensor_rand_normal(dt, nd, big, 0.5, 2.0);
    memcpy(st, kn_tensor_strides(b), sizeof(int64_t) * (size_t)nd);
    kn_tensor *v = kn__tensor_view(b, nd, shape, st, 0);
    kn_tensor_unref(b);
    return v;
}

static kn_status run_normalize(kn_tensor *x, int n, const int *axes, bool center, kn_tensor **o)
{
    kn_norm_attrs at = {.axes = {n, {0}}, .eps = 1e-5, .center = center};
    for (int i = 0; i < n; i++)
        at.axes.v[i] = axes[i];
    kn_tensor *in[1] = {x};
    return kn__op_call(&kn_op_normalize, 1, in, &at, 3, o);
}

static void unref3(kn_tensor **o)
{
    for (int i = 0; i < 3; i++)
        kn_tensor_unref(o[i]), o[i] = NULL;
}

typedef struct ncase {
    int nd;
    int64_t shape[4];
    int n_axes;
    int axes[4];
    int64_t pad; /* rows `pad` apart: a strided view */
} ncase;

static const ncase norm_cases[] = {
    {2, {1, 1}, 1, {1}, 0},
    {2, {3, 17}, 1, {1}, 0},
    {2, {5, 768}, 1, {1}, 0},
    {2, {7, 131}, 1, {-1}, 3},
    {1, {13}, 1, {0}, 0},
    {2, {6, 33}, 1, {1}, 7},
    {4, {2, 3, 5, 7}, 3, {0, 2, 3}, 0},
    {4, {3, 5, 7, 3}, 3, {0, 1, 2}, 0},
    {2, {50, 33}, 1, {0}, 7},
    {2, {1000, 5}, 1, {0}, 0},
    {4, {2, 6, 1, 13}, 2, {2, 3}, 0},
    {3, {3, 4, 5}, 2, {0, 2}, 0},
    {4, {4, 16, 12, 12}, 3, {0, 2, 3}, 0},
    {4, {4, 12, 12, 16}, 3, {0, 1, 2}, 0},
    {3, {3, 4, 5}, 1, {1}, 0},
};

/* normalize: avx512 vs ref, and 1 vs 2 threads bitwise. n elements per
 * statistic folded in f32 lanes: tolerance from n * eps. */
static void test_normalize_fast(void)
{
    if (!have_avx512()) {
        printf("skip: no AVX-512 on this CPU\n");
        return;
    }
    for (int dti = 0; dti < 2; dti++) {
        kn_dtype dt = dti ? KN_BF16 : KN_F32;
        for (int ci = 0; ci < KN_ARRAY_LEN(norm_cases); ci++)
            for (int center = 0; center < 2; center++) {
                const ncase *c = &norm_cases[ci];
                kn_tensor *x = padded(dt, c->nd, c->shape, c->pad, 100 + (uint64_t)ci);
                kn_tensor *r[3], *f[3], *f1[3];
                kn_set_isa(KN_ISA_REF);
                KT_OK(run_normalize(x, c->n_axes, c->axes, center, r));
                kn_set_isa(KN_ISA_AVX512);
                KT_OK(run_normalize(x, c->n_axes, c->axes, center, f));
                kn_set_num_threads(1);
                KT_OK(run_normalize(x, c->n_axes, c->axes, center, f1));
                kn_set_num_threads(2);
                kn_set_isa(KN_ISA_AVX512BF16);
                int64_t cnt = kn_tensor_numel(x) / kn_tensor_numel(r[1]);
                double eps = 0x1p-23 * (16 + (double)cnt / 16);
                double yrel = dt == KN_BF16 ? 0x1p-7 + eps : eps,
                       yabs = dt == KN_BF16 ? 0x1p-7 : eps;
                close_to("normalize y", f[0], r[0], yrel, 4 * yabs);
                close_to("normalize mean", f[1], r[1], eps, eps);
                close_to("normalize rstd", f[2], r[2], eps, eps);
                for (int i = 0; i < 3; i++)
                    KT_CHECK(kt_equal_bits(f[i], f1[i]), "case %d output %d: 1 vs 2 threads", ci,
                             i);
                unref3(r), unref3(f), unref3(f1);
                kn_tensor_unref(x);
            }
    }
    kt_mark("normalize", KT_FWD);
}

/* The cases the fast kernel must take (and one it must leave to ref). */
static void test_normalize_accepts(void)
{
    int64_t s[2] = {6, 40};
    kn_tensor *x = kn_tensor_zeros(KN_F32, 2, s), *y = kn_tensor_zeros(KN_F32, 2, s);
    kn_norm_job j = {.x = x, .y = y, .eps = 1e-5, .center = true};
    j.mask[1] = true;
    KT_CHECK(kn__norm_avx512_accepts(&j), "rows");
    j.mask[0] = true, j.mask[1] = false;
    KT_CHECK(kn__norm_avx512_accepts(&j), "columns");
    kn_tensor *xt = kn_permute(x, 2, (const int[]){1, 0}),
              *yt = kn_tensor_zeros(KN_F32, 2, (int64_t[]){40, 6});
    j.x = xt, j.y = yt;
    KT_CHECK(!kn__norm_avx512_accepts(&j), "strided reduced suffix goes to ref");
    kn_tensor_unref(x), kn_tensor_unref(y), kn_tensor_unref(xt), kn_tensor_unref(yt);
}

/* Fused eager layer norm / batch norm vs the composite on the reference path. */
static void test_fused_norms(void)
{
    if (!have_avx512()) {
        printf("skip: no AVX-512 on this CPU\n");
        return;
    }
    for (int dti = 0; dti < 2; dti++) {
        kn_dtype dt = dti ? KN_BF16 : KN_F32;
        double tol = dt == KN_BF16 ? 0x1p-6 : 1e-5;
        int64_t ls[3] = {3, 5, 67}, g67[1] = {67};
        kn_manual_seed(7);
        kn_tensor *x = kn_tensor_rand_normal(dt, 3, ls, 1, 3),
                  *g = kn_tensor_rand_normal(dt, 1, g67, 1, 1),
                  *b = kn_tensor_rand_normal(dt, 1, g67, 0, 1);
        kn_set_isa(KN_ISA_REF);
        kn_tensor *r = kn_layer_norm(x, 1, g, b, 1e-5), *rr = kn_rms_norm(x, 1, g, 1e-5);
        kn_set_isa(KN_ISA_AVX512BF16);
        kn_tensor *f = kn_layer_norm(x, 1, g, b, 1e-5), *fr = kn_rms_norm(x, 1, g, 1e-5);
        close_to("layer_norm fused", f, r, tol, tol);
        close_to("rms_norm fused", fr, rr, tol, tol);
        kn_tensor_unref(r), kn_tensor_unref(f), kn_tensor_unref(rr), kn_tensor_unref(fr);
        kn_tensor_unref(x), kn_tensor_unref(g), kn_tensor_unref(b);
        for (int lay = 0; lay < 2; lay++)
            for (int train = 0; train < 2; train++) {
                int64_t c = 19, s[4] = {3, c, 7, 5}, sh[4] = {3, 7, 5, c};
                kn_manual_seed(11);
                kn_tensor *xb = kn_tensor_rand_normal(dt, 4, lay ? sh : s, 2, 3);
                kn_tensor *gb = kn_tensor_rand_normal(dt, 1, &c, 1, 1),
                          *bb = kn_tensor_rand_normal(dt, 1, &c, 0, 1);
                kn_tensor *rm[2], *rv[2], *out[2];
                for (int k = 0; k < 2; k++) {
                    rm[k] = kn_tensor_rand_normal(KN_F32, 1, &c, 0, 1);
                    rv[k] = kn_tensor_rand_uniform(KN_F32, 1, &c, 0.5, 2);
                }
                kn_tensor_copy_(rm[1], rm[0]), kn_tensor_copy_(rv[1], rv[0]);
                for (int k = 0; k < 2; k++) {
                    kn_set_isa(k ? KN_ISA_AVX512BF16 : KN_ISA_REF);
                    out[k] = kn_batch_norm(xb, gb, bb, rm[k], rv[k], train, 0.1, 1e-5,
                                           lay ? KN_LAYOUT_NHWC : KN_LAYOUT_NCHW);
                    KT_NOTNULL(out[k]);
                }
                close_to("batch_norm fused", out[1], out[0], tol, tol);
                close_to("batch_norm running_mean", rm[1], rm[0], 1e-5, 1e-5);
                close_to("batch_norm running_var", rv[1], rv[0], 1e-5, 1e-5);
                for (int k = 0; k < 2; k++)
                    kn_tensor_unref(rm[k]), kn_tensor_unref(rv[k]), kn_tensor_unref(out[k]);
                kn_tensor_unref(xb), kn_tensor_unref(gb), kn_tensor_unref(bb);
            }
    }
    kn_set_isa(KN_ISA_AVX512BF16);
}

/* softmax / log_softmax along the last and a middle axis, strided too. */
static void test_softmax_fast(void)
{
    if (!have_avx512()) {
        printf("skip: no AVX-512 on this CPU\n");
        return;
    }
    static const struct {
        int nd;
        int64_t shape[3];
        int axis;
        int64_t pad;
    } cases[] = {{2, {1, 1}, 1, 0},      {2, {3, 17}, -1, 0},   {2, {1, 1000}, 1, 0},
                 {3, {2, 7, 131}, 2, 5}, {3, {2, 9, 33}, 1, 0}, {3, {3, 5, 7}, 0, 0},
                 {3, {2, 19, 3}, 1, 2},  {1, {5}, 0, 0},        {2, {4, 64}, 0, 0}};
    for (int dti = 0; dti < 2; dti++) {
        kn_dtype dt = dti ? KN_BF16 : KN_F32;
        for (int ci = 0; ci < KN_ARRAY_LEN(cases); ci++)
            for (int lg = 0; lg < 2; lg++) {
                kn_tensor *x =
                    padded(dt, cases[ci].nd, cases[ci].shape, cases[ci].pad, 300 + (uint64_t)ci);
                kn_tensor *(*fn)(kn_tensor *, int) = lg ? kn_log_softmax : kn_softmax;
                int ax = cases[ci].axis;
                kn_set_isa(KN_ISA_REF);
                kn_tensor *r = fn(x, ax);
                kn_set_isa(KN_ISA_AVX512);
                kn_tensor *f = fn(x, ax);
                kn_set_num_threads(1);
                kn_tensor *f1 = fn(x, ax);
                kn_set_num_threads(2);
                kn_set_isa(KN_ISA_AVX512BF16);
                int axn = ax < 0 ? ax + cases[ci].nd : ax;
                double len = (double)cases[ci].shape[axn];
                double eps = 0x1p-23 * (8 + len / 4);
                double rel = dt == KN_BF16 ? 0x1p-7 + eps : eps;
                close_to(lg ? "log_softmax" : "softmax", f, r, rel, lg ? rel : eps);
                KT_CHECK(kt_equal_bits(f, f1), "softmax case %d: 1 vs 2 threads", ci);
                kn_tensor_unref(r), kn_tensor_unref(f), kn_tensor_unref(f1), kn_tensor_unref(x);
            }
    }
    /* special values: -inf entries, a row of -inf, NaN, +inf */
    double v[12] = {1,         -INFINITY, 2, 3,   -INFINITY, -INFINITY,
                    -INFINITY, -INFINITY, 1, NAN, 0,         INFINITY};
    kn_tensor *x = kt_tensor(KN_F32, 2, (int64_t[]){3, 4}, v);
    for (int lg = 0; lg < 2; lg++) {
        kn_tensor *(*fn)(kn_tensor *, int) = lg ? kn_log_softmax : kn_softmax;
        kn_set_isa(KN_ISA_REF);
        kn_tensor *r = fn(x, 1);
        kn_set_isa(KN_ISA_AVX512BF16);
        kn_tensor *f = fn(x, 1);
        close_to("softmax special values", f, r, 1e-6, 1e-7);
        kn_tensor_unref(r), kn_tensor_unref(f);
    }
    kn_tensor_unref(x);
    kt_mark("softmax", KT_FWD), kt_mark("log_softmax", KT_FWD);
}

/* normalize_grad: the fast kernel vs its ref twin (the same op capped at
 * ref), then both vs the composite gradient of normalize (recording on). A
 * statistic of n terms folded in f32 lanes (|gy| <= 2, |y| <~ 4): the means
 * carry ~(16 + n/16) * 2^-24 * 8 absolute error, times rstd (~1). */
static kn_tensor *run_ngrad(kn_tensor *gy, kn_tensor *y, kn_tensor *rstd, const ncase *c,
                            bool center)
{
    kn_norm_attrs at = {.axes = {c->n_axes, {0}}, .eps = 1e-5, .center = center};
    for (int i = 0; i < c->n_axes; i++)
        at.axes.v[i] = c->axes[i];
    kn_tensor *in[3] = {gy, y, rstd};
    return kn__op_call1(&kn_op_normalize_grad, 3, in, &at);
}

static void test_normalize_grad_fast(void)
{
    for (int dti = 0; dti < 2; dti++) {
        kn_dtype dt = dti ? KN_BF16 : KN_F32;
        for (int ci = 0; ci < KN_ARRAY_LEN(norm_cases); ci++)
            for (int center = 0; center < 2; center++) {
                const ncase *c = &norm_cases[ci];
                kn_tensor *x = padded(dt, c->nd, c->shape, c->pad, 200 + (uint64_t)ci), *o[3];
                KT_OK(run_normalize(x, c->n_axes, c->axes, center, o));
                kn_tensor *gy0 = kt_rand(c->nd, c->shape, -2, 2, 500 + (uint64_t)ci);
                kn_tensor *gy = kn_cast(gy0, dt);
                kn_set_isa(KN_ISA_REF);
                kn_tensor *r = run_ngrad(gy, o[0], o[2], c, center);
                kn_set_isa(KN_ISA_AVX512BF16);
                kn_tensor *f = run_ngrad(gy, o[0], o[2], c, center);
                kn_set_num_threads(1);
                kn_tensor *f1 = run_ngrad(gy, o[0], o[2], c, center);
                kn_set_num_threads(2);
                KT_NOTNULL(r);
                KT_NOTNULL(f);
                KT_NOTNULL(f1);
                int64_t cnt = kn_tensor_numel(x) / kn_tensor_numel(o[2]);
                double rs = 0; /* the largest rstd scales the error */
                double *rv = to_f64(o[2]);
                for (int64_t i = 0; i < kn_tensor_numel(o[2]); i++)
                    rs = rv[i] > rs ? rv[i] : rs;
                free(rv);
                double eps = 0x1p-23 * (16 + (double)cnt / 16) * 8 * rs;
                double rel = dt == KN_BF16 ? 0x1p-7 : 0x1p-22;
                close_to("normalize_grad", f, r, rel, dt == KN_BF16 ? 0x1p-7 * 8 * rs + eps : eps);
                KT_CHECK(kt_equal_bits(f, f1), "normalize_grad case %d: 1 vs 2 threads", ci);
                kn_tensor_unref(r), kn_tensor_unref(f), kn_tensor_unref(f1);
                kn_tensor_unref(gy), kn_tensor_unref(gy0), kn_tensor_unref(x);
                unref3(o);
            }
    }
    kt_mark("normalize_grad", KT_FWD);
    /* not differentiable: recording through it records nothing */
    const ncase *c = &norm_cases[2];
    kn_tensor *x = padded(KN_F32, c->nd, c->shape, 0, 7), *o[3];
    KT_OK(run_normalize(x, c->n_axes, c->axes, true, o));
    kn_tensor *gy = kt_rand(c->nd, c->shape, -1, 1, 8);
    kn_tensor_set_requires_grad(gy, true);
    kn_autograd_record(true);
    kn_tensor *dx = run_ngrad(gy, o[0], o[2], c, true);
    kn_autograd_record(false);
    KT_NOTNULL(dx);
    KT_CHECK(!kn_tensor_requires_grad(dx) && kn_autograd_tape_size() == 0 &&
                 !kn_op_has_grad(kn_op_find("normalize_grad")),
             "normalize_grad is not differentiable");
    kt_mark("normalize_grad", KT_GRAD);
    /* bad inputs */
    kn_tensor *gbad = kt_rand(2, (int64_t[]){5, 7}, -1, 1, 9);
    kn_tensor *rbad = kt_rand(2, (int64_t[]){1, 768}, -1, 1, 9);
    kn_tensor *gi = kn_tensor_zeros(KN_I32, c->nd, c->shape);
    kt_expect_fail("normalize_grad", run_ngrad(gbad, o[0], o[2], c, true), "shape");
    kt_expect_fail("normalize_grad", run_ngrad(gy, o[0], rbad, c, true), "rstd");
    kt_expect_fail("normalize_grad", run_ngrad(gi, o[0], o[2], c, true), "dtype");
    kt_expect_fail("normalize_grad", run_ngrad(NULL, o[0], o[2], c, true), "NULL");
    ncase bad_axes = *c;
    bad_axes.axes[0] = 5;
    kt_expect_fail("normalize_grad", run_ngrad(gy, o[0], o[2], &bad_axes, true), "axis");
    kt_mark("normalize_grad", KT_BAD);
    kn_tensor_unref(gbad), kn_tensor_unref(rbad), kn_tensor_unref(gi), kn_tensor_unref(dx);
    kn_tensor_unref(gy), kn_tensor_unref(x);
    unref3(o);
}

int main(void)
{
    kn_set_num_threads(2);
    KT_RUN(test_normalize_accepts);
    KT_RUN(test_normalize_fast);
    KT_RUN(test_fused_norms);
    KT_RUN(test_softmax_fast);
    KT_RUN(test_normalize_grad_fast);
    return kt_finish();
}
