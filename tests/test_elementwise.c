/* test_elementwise.c — the elementwise family (unary, binary, where): values
 * against PyTorch goldens (tests/golden/elementwise.h) in f64, f32, f16 and
 * bf16, strided and zero-size inputs, integer semantics, dtype promotion,
 * gradients by finite differences, PyTorch's choices at kinks, bad inputs,
 * an all-dtypes sweep, allocation failures and thread-count independence. */
#include "harness.h"
#include "tensor/tensor.h"

#include "golden/elementwise.h"

#include <stdlib.h>

/* ------------------------------------------------------------ helpers */
static const kt_array *golden(const char *name)
{
    for (int i = 0; i < (int)(sizeof GOLDEN / sizeof GOLDEN[0]); i++)
        if (strcmp(GOLDEN[i].name, name) == 0) return GOLDEN[i].a;
    return NULL;
}

static const kt_array *golden2(const char *prefix, const char *tag)
{
    char name[64];
    snprintf(name, sizeof name, "%s%s", prefix, tag);
    return golden(name);
}

/* Tolerances against float64 goldens when inputs are exact in every dtype. */
static double rtol_of(kn_dtype dt)
{
    switch (dt) {
    case KN_F64:
        return 1e-8;
    case KN_F32:
        return 1e-5;
    case KN_F16:
        return 2e-3;
    case KN_BF16:
        return 8e-3;
    default:
        return 0;
    }
}
static double atol_of(kn_dtype dt)
{
    return dt == KN_F64 ? 1e-12 : dt == KN_F32 ? 1e-6 : 1e-5;
}

/* A non-contiguous view holding t's values: the last dim is read with
 * stride 2 from a buffer twice as wide. */
static kn_tensor *strided_copy(kn_tensor *t)
{
    int nd = kn_tensor_ndim(t);
    if (!t || nd == 0) return kn_tensor_ref(t);
    int64_t shape[KN_MAX_DIMS], strides[KN_MAX_DIMS];
    memcpy(shape, kn_tensor_shape(t), sizeof(int64_t) * (size_t)nd);
    shape[nd - 1] *= 2;
    kn_tensor *base = kn_tensor_zeros(kn_tensor_dtype(t), nd, shape);
    if (!base) return NULL;
    kn__contiguous_strides(nd, shape, strides);
    strides[nd - 1] = 2;
    kn_tensor *v = kn__tensor_view(base, nd, kn_tensor_shape(t), strides, 1);
    kn_tensor_unref(base);
    if (v && kn_tensor_copy_(v, t) != KN_OK) {
        kn_tensor_unref(v);
        return NULL;
    }
    return v;
}

static int64_t get_i64(kn_tensor *t, int64_t i)
{
    int64_t n = kn_tensor_numel(t);
    int64_t *buf = malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    int64_t v = INT64_MIN + 1;
    if (buf && kn_tensor_copy_to(t, KN_I64, buf, sizeof(int64_t) * (size_t)n) == KN_OK) v = buf[i];
    free(buf);
    return v;
}

static void check_i64(const char *op, kn_tensor *t, int n, const int64_t *want)
{
    KT_CHECK(t != NULL, "%s: %s", op, kn_last_error());
    if (!t) return;
    KT_CHECK(kn_tensor_numel(t) == n, "%s: %lld elements", op, (long long)kn_tensor_numel(t));
    for (int i = 0; i < n && i < kn_tensor_numel(t); i++) {
        int64_t v = get_i64(t, i);
        KT_CHECK(v == want[i], "%s: element %d is %lld, expected %lld", op, i, (long long)v,
                 (long long)want[i]);
    }
    kt_mark(op, KT_FWD);
    kn_tensor_unref(t);
}

/* ---------------------------------------------------------- unary table */
typedef kn_tensor *(*unary_call)(kn_tensor *x, double p, double q);
#define W0(n)                                                                                      \
    static kn_tensor *w_##n(kn_tensor *x, double p, double q)                                      \
    {                                                                                              \
        (void)p, (void)q;                                                                          \
        return kn_##n(x);                                                                          \
    }
#define W1(n)                                                                                      \
    static kn_tensor *w_##n(kn_tensor *x, double p, double q)                                      \
    {                                                                                              \
        (void)q;                                                                                   \
        return kn_##n(x, p);                                                                       \
    }
#define W2(n)                                                                                      \
    static kn_tensor *w_##n(kn_tensor *x, double p, double q)                                      \
    {                                                                                              \
        return kn_##n(x, p, q);                                                                    \
    }
// clang-format off
W0(neg) W0(exp) W0(log) W0(abs) W0(sign) W0(expm1) W0(log1p) W0(sqrt) W0(rsqrt) W0(reciprocal)
W0(square) W0(sin) W0(cos) W0(tan) W0(tanh) W0(sigmoid) W0(erf) W0(relu) W0(relu6)
W1(leaky_relu) W1(elu) W0(selu) W0(gelu) W0(gelu_tanh) W0(silu) W2(softplus) W0(softsign)
W0(mish) W2(hard_sigmoid) W0(hard_swish) W0(floor) W0(ceil) W0(round) W0(trunc) W2(clip)
W0(isnan) W0(isinf) W0(logical_not)
/* differentiable, no gradient flows, not recorded */
enum { G_DIFF, G_ZERO, G_NONE };
// clang-format on

typedef struct ucase {
    const char *tag, *op;
    unary_call fn;
    double p, q;
    double lo, hi; /* gradcheck range, away from kinks and poles */
    int grad;
    /* integer inputs give: 's' same dtype, 'f' f32, 'b' bool; 0: dtype not
     * supported; 'e': an error for these attrs (non-integral clip bounds) */
    char ints;
} ucase;

static const ucase UNARY[] = {
    {"neg", "neg", w_neg, 0, 0, -2, 2, G_DIFF, 's'},
    {"exp", "exp", w_exp, 0, 0, -2, 2, G_DIFF, 'f'},
    {"log", "log", w_log, 0, 0, 0.5, 2, G_DIFF, 'f'},
    {"abs", "abs", w_abs, 0, 0, -2, 2, G_DIFF, 's'},
    {"sign", "sign", w_sign, 0, 0, -2, 2, G_ZERO, 's'},
    {"expm1", "expm1", w_expm1, 0, 0, -2, 2, G_DIFF, 'f'},
    {"log1p", "log1p", w_log1p, 0, 0, -0.5, 2, G_DIFF, 'f'},
    {"sqrt", "sqrt", w_sqrt, 0, 0, 0.5, 2, G_DIFF, 'f'},
    {"rsqrt", "rsqrt", w_rsqrt, 0, 0, 0.5, 2, G_DIFF, 'f'},
    {"reciprocal", "reciprocal", w_reciprocal, 0, 0, 0.5, 2, G_DIFF, 'f'},
    {"square", "square", w_square, 0, 0, -2, 2, G_DIFF, 's'},
    {"sin", "sin", w_sin, 0, 0, -2, 2, G_DIFF, 'f'},
    {"cos", "cos", w_cos, 0, 0, -2, 2, G_DIFF, 'f'},
    {"tan", "tan", w_tan, 0, 0, -1.2, 1.2, G_DIFF, 'f'},
    {"tanh", "tanh", w_tanh, 0, 0, -2, 2, G_DIFF, 'f'},
    {"sigmoid", "sigmoid", w_sigmoid, 0, 0, -3, 3, G_DIFF, 'f'},
    {"erf", "erf", w_erf, 0, 0, -2, 2, G_DIFF, 'f'},
    {"relu", "relu", w_relu, 0, 0, -2, 2, G_DIFF, 's'},
    {"relu6", "relu6", w_relu6, 0, 0, -1, 7, G_DIFF, 's'},
    {"leaky_relu", "leaky_relu", w_leaky_relu, 0.01, 0, -2, 2, G_DIFF, 0},
    {"leaky_relu_b", "leaky_relu", w_leaky_relu, 0.2, 0, -2, 2, G_DIFF, 0},
    {"elu", "elu", w_elu, 1.0, 0, -2, 2, G_DIFF, 0},
    {"elu_b", "elu", w_elu, 1.3, 0, -2, 2, G_DIFF, 0},
    {"selu", "selu", w_selu, 0, 0, -2, 2, G_DIFF, 0},
    {"gelu", "gelu", w_gelu, 0, 0, -3, 3, G_DIFF, 0},
    {"gelu_tanh", "gelu_tanh", w_gelu_tanh, 0, 0, -3, 3, G_DIFF, 0},
    {"silu", "silu", w_silu, 0, 0, -3, 3, G_DIFF, 0},
    {"softplus", "softplus", w_softplus, 1, 20, -3, 3, G_DIFF, 0},
    {"softplus_b", "softplus", w_softplus, 2, 3, -3, 3, G_DIFF, 0},
    {"softsign", "softsign", w_softsign, 0, 0, -2, 2, G_DIFF, 0},
    {"mish", "mish", w_mish, 0, 0, -3, 3, G_DIFF, 0},
    {"hard_sigmoid", "hard_sigmoid", w_hard_sigmoid, 1.0 / 6.0, 0.5, -4, 4, G_DIFF, 0},
    {"hard_sigmoid_b", "hard_sigmoid", w_hard_sigmoid, 0.2, 0.5, -4, 4, G_DIFF, 0},
    {"hard_swish", "hard_swish", w_hard_swish, 0, 0, -4, 4, G_DIFF, 0},
    {"floor", "floor", w_floor, 0, 0, -2, 2, G_ZERO, 's'},
    {"ceil", "ceil", w_ceil, 0, 0, -2, 2, G_ZERO, 's'},
    {"round", "round", w_round, 0, 0, -2, 2, G_ZERO, 's'},
    {"trunc", "trunc", w_trunc, 0, 0, -2, 2, G_ZERO, 's'},
    {"clip", "clip", w_clip, -2, 3.5, -3, 4.5, G_DIFF, 'e'},
    {"clip_b", "clip", w_clip, 3, -1, -2, 4, G_DIFF, 's'},
    {"clip_c", "clip", w_clip, -INFINITY, 1, -2, 2, G_DIFF, 's'},
    {"clip_i", "clip", w_clip, -2, 3, -3, 4, G_DIFF, 's'},
    {"isnan", "isnan", w_isnan, 0, 0, -2, 2, G_NONE, 'b'},
    {"isinf", "isinf", w_isinf, 0, 0, -2, 2, G_NONE, 'b'},
    {"logical_not", "logical_not", w_logical_not, 0, 0, -2, 2, G_NONE, 'b'},
};
#define N_UNARY ((int)(sizeof UNARY / sizeof UNARY[0]))

static kn_dtype out_dtype_unary(const ucase *c, kn_dtype in)
{
    if (c->grad == G_NONE) return KN_BOOL;
    if (kn_dtype_is_float(in)) return in;
    return c->ints == 's' ? in : KN_F32;
}

/* Forward values of every unary op on UX in f64, f32, f16 and bf16. */
static void test_unary_values(void)
{
    const kt_array *ux = golden("UX");
    const kn_dtype dts[4] = {KN_F64, KN_F32, KN_F16, KN_BF16};
    for (int i = 0; i < N_UNARY; i++) {
        const ucase *c = &UNARY[i];
        const kt_array *want = golden2("U_", c->tag);
        KT_CHECK(want != NULL, "no golden U_%s", c->tag);
        if (!want) continue;
        for (int d = 0; d < 4; d++) {
            kn_tensor *x = kt_from_array(ux, dts[d]);
            kn_tensor *y = c->fn(x, c->p, c->q);
            if (y) KT_CHECK(kn_tensor_dtype(y) == out_dtype_unary(c, dts[d]), "%s: dtype", c->tag);
            kt_check_array(c->op, y, want, rtol_of(dts[d]), atol_of(dts[d]));
            kn_tensor_unref(y), kn_tensor_unref(x);
        }
    }
}

/* NaN, +-inf and -0 through every unary op, in f64 and f32. */
static void test_unary_special_values(void)
{
    const kt_array *us = golden("US");
    for (int i = 0; i < N_UNARY; i++) {
        const ucase *c = &UNARY[i];
        const kt_array *want = golden2("S_", c->tag);
        KT_CHECK(want != NULL, "no golden S_%s", c->tag);
        for (int d = 0; want && d < 2; d++) {
            kn_tensor *x = kt_from_array(us, d ? KN_F32 : KN_F64);
            kn_tensor *y = c->fn(x, c->p, c->q);
            kt_check_array(c->op, y, want, 1e-6, 1e-7);
            kn_tensor_unref(y), kn_tensor_unref(x);
        }
    }
}

/* Integer inputs: exact results of the dtype-keeping ops, f32 for the rest. */
static void test_unary_ints(void)
{
    const kt_array *ui = golden("UI");
    const kn_dtype dts[3] = {KN_I32, KN_I64, KN_I8};
    for (int i = 0; i < N_UNARY; i++) {
        const ucase *c = &UNARY[i];
        if (!c->ints || c->ints == 'e') continue;
        const kt_array *want = golden2("I_", c->tag);
        KT_CHECK(want != NULL, "no golden I_%s", c->tag);
        for (int d = 0; want && d < 3; d++) {
            kn_tensor *x = kt_from_array(ui, dts[d]);
            kn_tensor *y = c->fn(x, c->p, c->q);
            if (y)
                KT_CHECK(kn_tensor_dtype(y) == out_dtype_unary(c, dts[d]), "%s: dtype %s", c->tag,
                         kn_dtype_name(kn_tensor_dtype(y)));
            kt_check_array(c->op, y, want, 1e-6, 1e-6);
            kn_tensor_unref(y), kn_tensor_unref(x);
        }
    }
}

/* Strided inputs give bitwise the same as contiguous ones; zero-size and
 * size-1 shapes keep their shape. */
static void test_unary_strided_and_empty(void)
{
    const kt_array *ux = golden("UX");
    for (int i = 0; i < N_UNARY; i++) {
        const ucase *c = &UNARY[i];
        for (int d = 0; d < 2; d++) {
            kn_tensor *x = kt_from_array(ux, d ? KN_F16 : KN_F32);
            kn_tensor *xt = kn__tensor_view(x, 2, (int64_t[]){7, 4}, (int64_t[]){1, 7}, 0);
            kn_tensor *xs = strided_copy(x);
            kn_tensor *xc = kn_tensor_clone(xt);
            kn_tensor *y1 = c->fn(xt, c->p, c->q), *y2 = c->fn(xc, c->p, c->q);
            kn_tensor *y3 = c->fn(xs, c->p, c->q), *y4 = c->fn(x, c->p, c->q);
            KT_CHECK(!kn_tensor_is_contiguous(xt) && !kn_tensor_is_contiguous(xs), "views");
            KT_CHECK(kt_equal_bits(y1, y2), "%s: transposed input differs", c->tag);
            KT_CHECK(kt_equal_bits(y3, y4), "%s: strided input differs", c->tag);
            kn_tensor *all[] = {x, xt, xs, xc, y1, y2, y3, y4};
            for (int k = 0; k < 8; k++)
                kn_tensor_unref(all[k]);
        }
        const int64_t shapes[3][3] = {{0, 3, 1}, {2, 0, 5}, {1, 1, 1}};
        for (int s = 0; s < 3; s++) {
            kn_tensor *x = kn_tensor_full(KN_F32, 3, shapes[s], 0.5);
            kn_tensor *y = c->fn(x, c->p, c->q);
            KT_CHECK(y && kn_tensor_ndim(y) == 3 && !memcmp(kn_tensor_shape(y), shapes[s], 24),
                     "%s: shape of a zero-size/size-1 result", c->tag);
            kn_tensor_unref(y), kn_tensor_unref(x);
        }
        kn_tensor *s0 = kn_tensor_scalar(KN_F64, 0.25); /* 0-d */
        kn_tensor *y0 = c->fn(s0, c->p, c->q);
        KT_CHECK(y0 && kn_tensor_ndim(y0) == 0, "%s: 0-d input gives 0-d output", c->tag);
        kn_tensor_unref(y0), kn_tensor_unref(s0);
    }
}

/* ------------------------------------------------------------ gradients */
typedef struct uctx {
    const ucase *c;
} uctx;

static kn_tensor *f_unary(kn_tensor *const *in, void *ctx)
{
    const ucase *c = ((uctx *)ctx)->c;
    return c->fn(in[0], c->p, c->q);
}

static void test_unary_grads(void)
{
    int64_t shape[2] = {3, 4};
    for (int i = 0; i < N_UNARY; i++) {
        const ucase *c = &UNARY[i];
        kn_tensor *x = kt_rand(2, shape, c->lo, c->hi, 100 + (uint64_t)i);
        uctx ctx = {c};
        if (c->grad == G_DIFF) {
            kt_gradcheck(c->op, f_unary, 1, &x, &ctx, 1e-6, 1e-6);
        } else if (c->grad == G_ZERO) { /* recorded, but no gradient reaches x */
            kn_tensor_set_requires_grad(x, true);
            kn_autograd_record(true);
            kn_tensor *y = c->fn(x, c->p, c->q);
            kn_tensor *l = kn_sum(y, 0, NULL, false);
            kn_autograd_record(false);
            KT_OK(kn_backward(l, NULL));
            KT_CHECK(kn_tensor_grad(x) == NULL, "%s: a gradient flowed", c->tag);
            kt_mark(c->op, KT_GRAD);
            kn_tensor_unref(l), kn_tensor_unref(y);
        } else { /* bool output: nothing recorded */
            kn_tensor_set_requires_grad(x, true);
            kn_autograd_record(true);
            kn_tensor *y = c->fn(x, c->p, c->q);
            kn_autograd_record(false);
            KT_CHECK(y && !kn_tensor_requires_grad(y) && kn_autograd_tape_size() == 0,
                     "%s: recorded a gradient", c->tag);
            kt_mark(c->op, KT_GRAD);
            kn_tensor_unref(y);
        }
        kn_tensor_unref(x);
    }
}

/* Gradient of sum(op(x)) at given points, checked against PyTorch's choices. */
static void check_kink(const char *op, unary_call fn, double p, double q, int n, const double *xs,
                       const double *want)
{
    int64_t shape[1] = {n};
    kn_tensor *x = kt_tensor(KN_F64, 1, shape, xs);
    kn_tensor_set_requires_grad(x, true);
    kn_autograd_record(true);
    kn_tensor *y = fn(x, p, q), *l = kn_sum(y, 0, NULL, false);
    kn_autograd_record(false);
    KT_OK(kn_backward(l, NULL));
    if (kn_tensor_grad(x))
        kt_check_values(op, kn_tensor_grad(x), 1, shape, want, 0, 1e-12);
    else
        KT_CHECK(0, "%s: no gradient", op);
    kn_tensor_unref(l), kn_tensor_unref(y), kn_tensor_unref(x);
}

static void test_kinks(void)
{
    check_kink("relu", w_relu, 0, 0, 2, (double[]){0, 1}, (double[]){0, 1});
    check_kink("relu6", w_relu6, 0, 0, 3, (double[]){0, 6, 3}, (double[]){0, 0, 1});
    check_kink("leaky_relu", w_leaky_relu, 0.2, 0, 2, (double[]){0, 1}, (double[]){0.2, 1});
    check_kink("abs", w_abs, 0, 0, 2, (double[]){0, -1}, (double[]){0, -1});
    check_kink("clip", w_clip, -1, 1, 4, (double[]){-1, 1, 2, -2}, (double[]){1, 1, 0, 0});
    check_kink("hard_swish", w_hard_swish, 0, 0, 3, (double[]){-3, 3, 4}, (double[]){-0.5, 1.5, 1});
    check_kink("hard_sigmoid", w_hard_sigmoid, 1.0 / 6, 0.5, 3, (double[]){-3, 3, 0},
               (double[]){0, 0, 1.0 / 6});
    check_kink("elu", w_elu, 1.0, 0, 2, (double[]){0, 1}, (double[]){1, 1});
    check_kink("softplus", w_softplus, 1, 20, 2, (double[]){0, 21}, (double[]){0.5, 1});
}

/* Second derivatives through gradients built from kn_ ops. */
static void test_second_derivative(void)
{
    int64_t s[1] = {1};
    kn_tensor *x = kt_tensor(KN_F64, 1, s, (double[]){0.3});
    kn_tensor_set_requires_grad(x, true);
    kn_autograd_record(true);
    kn_tensor *y = kn_tanh(x);
    KT_OK(kn_backward_ex(y, NULL, KN_BACKWARD_CREATE_GRAPH));
    kn_tensor *g = kn_tensor_ref(kn_tensor_grad(x));
    double t = tanh(0.3);
    kt_check_values("tanh", g, 1, s, (double[]){1 - t * t}, 1e-12, 0);
    kn_tensor_zero_grad(x);
    KT_OK(kn_backward(g, NULL));
    kn_autograd_record(false);
    kt_check_values("tanh", kn_tensor_grad(x), 1, s, (double[]){-2 * t * (1 - t * t)}, 1e-10, 0);
    kn_tensor_unref(g), kn_tensor_unref(y), kn_tensor_unref(x);
}

/* ------------------------------------------------------------- binary */
typedef kn_tensor *(*binary_call)(kn_tensor *, kn_tensor *);
typedef struct bcase {
    const char *op;
    binary_call fn;
    int grad;                  /* G_DIFF or G_NONE */
    char out;                  /* 's' promoted dtype, 'f' float, 'b' bool */
    bool ints;                 /* accepts integers */
    bool bools;                /* accepts bool */
    double alo, ahi, blo, bhi; /* gradcheck ranges */
} bcase;

static const bcase BINARY[] = {
    {"add", kn_add, G_DIFF, 's', true, true, -2, 2, -2, 2},
    {"sub", kn_sub, G_DIFF, 's', true, false, -2, 2, -2, 2},
    {"mul", kn_mul, G_DIFF, 's', true, true, -2, 2, -2, 2},
    {"div", kn_div, G_DIFF, 'f', true, true, -2, 2, 0.5, 2},
    {"pow", kn_pow, G_DIFF, 's', true, false, 0.5, 2, -1.5, 1.5},
    {"maximum", kn_maximum, G_DIFF, 's', true, true, -1, 1, -1, 1},
    {"minimum", kn_minimum, G_DIFF, 's', true, true, -1, 1, -1, 1},
    {"fmod", kn_fmod, G_DIFF, 's', true, false, -3, 3, 0.6, 1.4},
    {"atan2", kn_atan2, G_DIFF, 'f', true, true, 0.3, 1, -1, 1},
    {"eq", kn_eq, G_NONE, 'b', true, true, 0, 0, 0, 0},
    {"ne", kn_ne, G_NONE, 'b', true, true, 0, 0, 0, 0},
    {"lt", kn_lt, G_NONE, 'b', true, true, 0, 0, 0, 0},
    {"le", kn_le, G_NONE, 'b', true, true, 0, 0, 0, 0},
    {"gt", kn_gt, G_NONE, 'b', true, true, 0, 0, 0, 0},
    {"ge", kn_ge, G_NONE, 'b', true, true, 0, 0, 0, 0},
    {"logical_and", kn_logical_and, G_NONE, 'b', true, true, 0, 0, 0, 0},
    {"logical_or", kn_logical_or, G_NONE, 'b', true, true, 0, 0, 0, 0},
    {"logical_xor", kn_logical_xor, G_NONE, 'b', true, true, 0, 0, 0, 0},
};
#define N_BINARY ((int)(sizeof BINARY / sizeof BINARY[0]))

static bool is_logical(const bcase *c)
{
    return strncmp(c->op, "logical", 7) == 0;
}

/* Float goldens in f64, f32, f16 and bf16, with one operand strided. */
static void test_binary_values(void)
{
    const kn_dtype dts[4] = {KN_F64, KN_F32, KN_F16, KN_BF16};
    for (int i = 0; i < N_BINARY; i++) {
        const bcase *c = &BINARY[i];
        bool pw = strcmp(c->op, "pow") == 0, lg = is_logical(c);
        const kt_array *a = golden(pw ? "PA" : lg ? "LA" : "BA");
        const kt_array *b = golden(pw ? "PB" : lg ? "LB" : "BB");
        const kt_array *want = golden2(pw ? "P_" : lg ? "L_" : "B_", c->op);
        KT_CHECK(want != NULL, "no golden for %s", c->op);
        for (int d = 0; want && d < 4; d++) {
            kn_tensor *x = kt_from_array(a, dts[d]), *y = kt_from_array(b, dts[d]);
            kn_tensor *xs = strided_copy(x);
            kn_tensor *r1 = c->fn(x, y), *r2 = c->fn(xs, y), *r3 = c->fn(y, xs);
            kt_check_array(c->op, r1, want, rtol_of(dts[d]), atol_of(dts[d]));
            KT_CHECK(kt_equal_bits(r1, r2), "%s: strided operand differs", c->op);
            KT_CHECK(r3 && kn_tensor_ndim(r3) == 3, "%s: swapped operands broadcast", c->op);
            if (r1)
                KT_CHECK(kn_tensor_dtype(r1) == (c->out == 'b' ? KN_BOOL : dts[d]), "%s: dtype",
                         c->op);
            kn_tensor *all[] = {x, y, xs, r1, r2, r3};
            for (int k = 0; k < 6; k++)
                kn_tensor_unref(all[k]);
        }
    }
}

/* Integer goldens (i64, and i32 where results fit), exact. */
static void test_binary_ints(void)
{
    const kt_array *a = golden("IA"), *b = golden("IB");
    for (int i = 0; i < N_BINARY; i++) {
        const bcase *c = &BINARY[i];
        if (is_logical(c)) continue;
        const kt_array *want = golden2("IB_", c->op);
        KT_CHECK(want != NULL, "no golden IB_%s", c->op);
        for (int d = 0; want && d < 2; d++) {
            kn_dtype dt = d ? KN_I32 : KN_I64;
            if (dt == KN_I32 && !strcmp(c->op, "pow")) continue; /* 100^5 needs 64 bits */
            kn_tensor *x = kt_from_array(a, dt), *y = kt_from_array(b, dt);
            kn_tensor *r = c->fn(x, y);
            kn_dtype want_dt = c->out == 'b' ? KN_BOOL : c->out == 'f' ? KN_F32 : dt;
            if (r)
                KT_CHECK(kn_tensor_dtype(r) == want_dt, "%s: dtype %s", c->op,
                         kn_dtype_name(kn_tensor_dtype(r)));
            kt_check_array(c->op, r, want, c->out == 'f' ? 1e-6 : 0, 0);
            kn_tensor_unref(r), kn_tensor_unref(x), kn_tensor_unref(y);
        }
    }
}

static kn_tensor *i64_tensor(int n, const int64_t *v)
{
    int64_t shape[1] = {n};
    return kn_tensor_from_data(KN_I64, 1, shape, v);
}

/* Integer corner cases: wrap-around, no UB, pow and fmod rules. */
static void test_int_corners(void)
{
    const int64_t MIN = INT64_MIN, MAX = INT64_MAX;
    kn_tensor *a = i64_tensor(4, (int64_t[]){MIN, 5, -5, 7});
    kn_tensor *b = i64_tensor(4, (int64_t[]){-1, 0, 3, -1});
    check_i64("fmod", kn_fmod(a, b), 4, (int64_t[]){0, 0, -2, 0});
    check_i64("abs", kn_abs(a), 4, (int64_t[]){MIN, 5, 5, 7});
    check_i64("neg", kn_neg(a), 4, (int64_t[]){MIN, -5, 5, -7});
    check_i64("sub", kn_sub(a, b), 4, (int64_t[]){MIN + 1, 5, -8, 8});
    check_i64("mul", kn_mul(a, b), 4, (int64_t[]){MIN, 0, -15, -7}); /* MIN * -1 wraps */
    check_i64("maximum", kn_maximum(a, b), 4, (int64_t[]){-1, 5, 3, 7});
    check_i64("minimum", kn_minimum(a, b), 4, (int64_t[]){MIN, 0, -5, -1});
    check_i64("sign", kn_sign(a), 4, (int64_t[]){-1, 1, -1, 1});
    check_i64("clip", kn_clip(a, -6, INFINITY), 4, (int64_t[]){-6, 5, -5, 7});
    kn_tensor_unref(a), kn_tensor_unref(b);
    kn_tensor *m = i64_tensor(2, (int64_t[]){MAX, 3037000500});
    kn_tensor *one = i64_tensor(1, (int64_t[]){1});
    check_i64("add", kn_add(m, one), 2, (int64_t[]){MIN, 3037000501});
    check_i64("square", kn_square(m), 2, (int64_t[]){1, -9223372036709301616});
    kn_tensor_unref(m), kn_tensor_unref(one);
    /* pow: negative exponents give 0 except for bases 1 and -1 */
    kn_tensor *pa = i64_tensor(7, (int64_t[]){2, -1, -1, 1, 0, 3, 0});
    kn_tensor *pb = i64_tensor(7, (int64_t[]){-1, -3, -2, -5, -1, 40, 0});
    check_i64("pow", kn_pow(pa, pb), 7, (int64_t[]){0, -1, 1, 1, 0, -6289078614652622815, 1});
    kn_tensor_unref(pa), kn_tensor_unref(pb);
    /* small ints wrap like C casts */
    int64_t s1[1] = {2};
    kn_tensor *i8 = kt_tensor(KN_I8, 1, s1, (double[]){100, -128});
    kn_tensor *r = kn_add(i8, i8);
    KT_CHECK(r && kn_tensor_dtype(r) == KN_I8, "i8 + i8 stays i8");
    check_i64("add", r, 2, (int64_t[]){-56, 0});
    check_i64("abs", kn_abs(i8), 2, (int64_t[]){100, -128});
    kn_tensor_unref(i8);
}

/* NaN handling of maximum/minimum/comparisons, and the promotion rules. */
static void test_nan_and_promotion(void)
{
    int64_t s2[1] = {3};
    kn_tensor *a = kt_tensor(KN_F32, 1, s2, (double[]){NAN, 1, 2});
    kn_tensor *b = kt_tensor(KN_F32, 1, s2, (double[]){2, NAN, 2});
    kn_tensor *r;
    kt_check_values("maximum", r = kn_maximum(a, b), 1, s2, (double[]){NAN, NAN, 2}, 0, 0);
    kn_tensor_unref(r);
    kt_check_values("minimum", r = kn_minimum(a, b), 1, s2, (double[]){NAN, NAN, 2}, 0, 0);
    kn_tensor_unref(r);
    kt_check_values("ne", r = kn_ne(a, b), 1, s2, (double[]){1, 1, 0}, 0, 0);
    kn_tensor_unref(r);
    kt_check_values("eq", r = kn_eq(a, a), 1, s2, (double[]){0, 1, 1}, 0, 0);
    kn_tensor_unref(r);
    kn_tensor_unref(a), kn_tensor_unref(b);

    struct {
        kn_dtype a, b;
        bool a0, b0; /* 0-d */
        kn_dtype want;
    } rules[] = {
        {KN_I32, KN_F32, false, false, KN_F32},    {KN_I8, KN_U8, false, false, KN_I32},
        {KN_F16, KN_BF16, false, false, KN_F32},   {KN_I64, KN_F64, false, true, KN_F32},
        {KN_F16, KN_F64, false, true, KN_F16},     {KN_I8, KN_I64, false, true, KN_I8},
        {KN_BOOL, KN_I32, false, true, KN_I64},    {KN_F32, KN_F64, true, true, KN_F64},
        {KN_BOOL, KN_BOOL, false, false, KN_BOOL}, {KN_U8, KN_F16, false, false, KN_F16},
    };
    int64_t s[1] = {2};
    for (int i = 0; i < (int)(sizeof rules / sizeof rules[0]); i++) {
        kn_tensor *x =
            rules[i].a0 ? kn_tensor_scalar(rules[i].a, 1) : kn_tensor_ones(rules[i].a, 1, s);
        kn_tensor *y =
            rules[i].b0 ? kn_tensor_scalar(rules[i].b, 1) : kn_tensor_ones(rules[i].b, 1, s);
        kn_tensor *z = kn_add(x, y);
        KT_CHECK(z && kn_tensor_dtype(z) == rules[i].want, "rule %d: %s + %s gives %s", i,
                 kn_dtype_name(rules[i].a), kn_dtype_name(rules[i].b),
                 z ? kn_dtype_name(kn_tensor_dtype(z)) : "NULL");
        kn_tensor *q = kn_div(x, y); /* true division: integer operands give f32 */
        KT_CHECK(q && kn_dtype_is_float(kn_tensor_dtype(q)), "rule %d: div gives a float", i);
        kn_tensor_unref(x), kn_tensor_unref(y), kn_tensor_unref(z), kn_tensor_unref(q);
    }
    /* mixed-dtype values: i32 + f32 and u8 * 0-d f64 */
    kn_tensor *xi = kt_tensor(KN_I32, 1, s, (double[]){3, -4});
    kn_tensor *xf = kt_tensor(KN_F32, 1, s, (double[]){0.5, 0.25});
    kt_check_values("add", r = kn_add(xi, xf), 1, s, (double[]){3.5, -3.75}, 0, 0);
    kn_tensor_unref(r);
    kt_check_values("mul", r = kn_mul_scalar(xi, 2.5), 1, s, (double[]){6, -8}, 0, 0); /* i32 */
    kn_tensor_unref(r);
    kt_check_values("add", r = kn_add_scalar(xf, 1), 1, s, (double[]){1.5, 1.25}, 0, 0);
    kn_tensor_unref(r);
    kn_tensor_unref(xi), kn_tensor_unref(xf);
}

static kn_tensor *f_binary(kn_tensor *const *in, void *ctx)
{
    return ((const bcase *)ctx)->fn(in[0], in[1]);
}

static void test_binary_grads(void)
{
    int64_t sa[2] = {3, 4}, sb[1] = {4};
    for (int i = 0; i < N_BINARY; i++) {
        const bcase *c = &BINARY[i];
        kn_tensor *in[2] = {kt_rand(2, sa, c->alo, c->ahi, 200 + (uint64_t)i),
                            kt_rand(1, sb, c->blo, c->bhi, 300 + (uint64_t)i)};
        if (c->grad == G_DIFF) {
            kt_gradcheck(c->op, f_binary, 2, in, (void *)c, 1e-6, 1e-6);
        } else {
            kn_tensor_set_requires_grad(in[0], true);
            kn_tensor_set_requires_grad(in[1], true);
            kn_autograd_record(true);
            kn_tensor *y = c->fn(in[0], in[1]);
            kn_autograd_record(false);
            KT_CHECK(y && !kn_tensor_requires_grad(y) && kn_autograd_tape_size() == 0,
                     "%s: recorded a gradient", c->op);
            kt_mark(c->op, KT_GRAD);
            kn_tensor_unref(y);
        }
        kn_tensor_unref(in[0]), kn_tensor_unref(in[1]);
    }
    /* maximum/minimum ties split the gradient in half (PyTorch) */
    int64_t s[1] = {3};
    kn_tensor *x = kt_tensor(KN_F64, 1, s, (double[]){1, 2, 5});
    kn_tensor *y = kt_tensor(KN_F64, 1, s, (double[]){1, 3, 4});
    kn_tensor_set_requires_grad(x, true), kn_tensor_set_requires_grad(y, true);
    kn_autograd_record(true);
    kn_tensor *mx = kn_maximum(x, y), *mn = kn_minimum(x, y);
    kn_tensor *both = kn_add(mx, mn);
    kn_tensor *l = kn_sum(both, 0, NULL, false);
    kn_autograd_record(false);
    KT_OK(kn_backward(l, NULL));
    kt_check_values("maximum", kn_tensor_grad(x), 1, s, (double[]){1, 1, 1}, 0, 0);
    kt_check_values("minimum", kn_tensor_grad(y), 1, s, (double[]){1, 1, 1}, 0, 0);
    kn_tensor_unref(l), kn_tensor_unref(both), kn_tensor_unref(mx), kn_tensor_unref(mn);
    kn_tensor_zero_grad(x), kn_tensor_zero_grad(y);
    kn_autograd_record(true);
    mx = kn_maximum(x, y), l = kn_sum(mx, 0, NULL, false);
    kn_autograd_record(false);
    KT_OK(kn_backward(l, NULL));
    kt_check_values("maximum", kn_tensor_grad(x), 1, s, (double[]){0.5, 0, 1}, 0, 0);
    kt_check_values("maximum", kn_tensor_grad(y), 1, s, (double[]){0.5, 1, 0}, 0, 0);
    kn_tensor_unref(l), kn_tensor_unref(mx), kn_tensor_unref(x), kn_tensor_unref(y);
}

/* -------------------------------------------------------------- where */
static void test_where(void)
{
    const kt_array *wc = golden("WC"), *wa = golden("WA"), *wb = golden("WB");
    const kt_array *want = golden("W_where");
    const kn_dtype dts[4] = {KN_F64, KN_F32, KN_F16, KN_BF16};
    for (int d = 0; d < 4; d++) {
        kn_tensor *c = kt_from_array(wc, d ? KN_F32 : KN_F64);
        kn_tensor *a = kt_from_array(wa, dts[d]), *b = kt_from_array(wb, dts[d]);
        kn_tensor *cs = strided_copy(c), *r = kn_where(cs, a, b);
        kt_check_array("where", r, want, 0, 0);
        if (r) KT_CHECK(kn_tensor_dtype(r) == dts[d], "where: dtype");
        kn_tensor_unref(r), kn_tensor_unref(cs), kn_tensor_unref(c);
        kn_tensor_unref(a), kn_tensor_unref(b);
    }
    /* cond of bool and int dtypes; a and b of different dtypes */
    kn_tensor *c = kt_from_array(wc, KN_F64);
    kn_tensor *zero = kn_tensor_scalar(KN_F64, 0);
    kn_tensor *cb = kn_ne(c, zero);
    kn_tensor *a = kt_from_array(wa, KN_I32), *b = kt_from_array(wb, KN_F32);
    kn_tensor *r = kn_where(cb, a, b);
    kt_check_array("where", r, want, 0, 0);
    if (r) KT_CHECK(kn_tensor_dtype(r) == KN_F32, "where: i32 and f32 give f32");
    kn_tensor_unref(r);
    kn_tensor *ai = kt_from_array(wa, KN_I64), *bi = kt_from_array(wb, KN_I8);
    r = kn_where(cb, ai, bi);
    kt_check_array("where", r, want, 0, 0);
    if (r) KT_CHECK(kn_tensor_dtype(r) == KN_I64, "where: i64 and i8 give i64");
    kn_tensor_unref(r);
    /* int cond: 2 and -1 are true */
    int64_t s3[1] = {3};
    kn_tensor *ci = kt_tensor(KN_I32, 1, s3, (double[]){2, 0, -1});
    kn_tensor *x3 = kt_tensor(KN_F64, 1, s3, (double[]){1, 2, 3});
    kt_check_values("where", r = kn_where(ci, x3, zero), 1, s3, (double[]){1, 0, 3}, 0, 0);
    kn_tensor_unref(r);
    /* zero-size */
    kn_tensor *e = kn_tensor_zeros(KN_BOOL, 2, (int64_t[]){0, 3});
    r = kn_where(e, x3, zero);
    KT_CHECK(r && kn_tensor_numel(r) == 0 && kn_tensor_dim(r, 1) == 3, "where: zero-size");
    kn_tensor_unref(r), kn_tensor_unref(e), kn_tensor_unref(x3), kn_tensor_unref(ci);
    kn_tensor_unref(c), kn_tensor_unref(zero), kn_tensor_unref(cb);
    kn_tensor_unref(a), kn_tensor_unref(b), kn_tensor_unref(ai), kn_tensor_unref(bi);
}

static kn_tensor *f_where(kn_tensor *const *in, void *ctx)
{
    return kn_where((kn_tensor *)ctx, in[0], in[1]);
}

static void test_where_grad(void)
{
    int64_t sa[2] = {3, 4}, sb[1] = {4};
    kn_tensor *r = kt_rand(2, sa, -1, 1, 7);
    kn_tensor *zero = kn_tensor_scalar(KN_F64, 0);
    kn_tensor *cond = kn_gt(r, zero);
    kn_tensor *in[2] = {kt_rand(2, sa, -1, 1, 8), kt_rand(1, sb, -1, 1, 9)};
    kt_gradcheck("where", f_where, 2, in, cond, 1e-6, 1e-6);
    kn_tensor_unref(in[0]), kn_tensor_unref(in[1]);
    kn_tensor_unref(cond), kn_tensor_unref(zero), kn_tensor_unref(r);
}

/* ------------------------------------------------------- zero-size binary */
static void test_binary_shapes(void)
{
    kn_tensor *a = kn_tensor_ones(KN_F32, 2, (int64_t[]){0, 3});
    kn_tensor *b = kn_tensor_ones(KN_F32, 1, (int64_t[]){3});
    kn_tensor *c = kn_tensor_ones(KN_F32, 2, (int64_t[]){2, 1});
    kn_tensor *d = kn_tensor_ones(KN_F32, 3, (int64_t[]){1, 1, 0});
    for (int i = 0; i < N_BINARY; i++) {
        kn_tensor *r1 = BINARY[i].fn(a, b), *r2 = BINARY[i].fn(c, d);
        KT_CHECK(r1 && kn_tensor_numel(r1) == 0 && kn_tensor_dim(r1, 0) == 0, "%s: (0,3)+(3)",
                 BINARY[i].op);
        KT_CHECK(r2 && kn_tensor_ndim(r2) == 3 && kn_tensor_dim(r2, 1) == 2 &&
                     kn_tensor_dim(r2, 2) == 0,
                 "%s: (2,1)+(1,1,0)", BINARY[i].op);
        kn_tensor_unref(r1), kn_tensor_unref(r2);
    }
    /* symbolic inputs: infer only */
    kn_tensor *sa = kn_tensor_symbolic(KN_F16, 2, (int64_t[]){5, 1});
    kn_tensor *sb = kn_tensor_symbolic(KN_F16, 1, (int64_t[]){7});
    kn_tensor *sr = kn_atan2(sa, sb);
    KT_CHECK(sr && kn_tensor_is_symbolic(sr) && kn_tensor_dim(sr, 1) == 7 &&
                 kn_tensor_dtype(sr) == KN_F16,
             "symbolic broadcast");
    kn_tensor_unref(sr), kn_tensor_unref(sa), kn_tensor_unref(sb);
    kn_tensor_unref(a), kn_tensor_unref(b), kn_tensor_unref(c), kn_tensor_unref(d);
}

/* ------------------------------------------------------------ bad input */
static void test_bad_inputs(void)
{
    for (int i = 0; i < N_UNARY; i++)
        kt_expect_fail(UNARY[i].op, UNARY[i].fn(NULL, UNARY[i].p, UNARY[i].q), "NULL");
    int64_t s[1] = {3};
    kn_tensor *x = kn_tensor_ones(KN_F32, 1, s), *bl = kn_tensor_ones(KN_BOOL, 1, s);
    kn_tensor *xi = kn_tensor_ones(KN_I32, 1, s);
    /* dtypes outside the op's mask */
    const char *no_bool[] = {"neg",   "abs",   "sign", "square", "relu",
                             "relu6", "floor", "ceil", "round",  "trunc"};
    for (int i = 0; i < N_UNARY; i++)
        for (int k = 0; k < (int)(sizeof no_bool / sizeof *no_bool); k++)
            if (!strcmp(UNARY[i].tag, no_bool[k]))
                kt_expect_fail(UNARY[i].op, UNARY[i].fn(bl, 0, 0), "dtype");
    for (int i = 0; i < N_UNARY; i++)
        if (!UNARY[i].ints || UNARY[i].ints == 'e')
            kt_expect_fail(UNARY[i].op, UNARY[i].fn(xi, UNARY[i].p, UNARY[i].q),
                           UNARY[i].ints ? "integers" : "i32");
    /* bad attributes */
    kt_expect_fail("leaky_relu", kn_leaky_relu(x, NAN), "negative_slope");
    kt_expect_fail("leaky_relu", kn_leaky_relu(x, INFINITY), "negative_slope");
    kt_expect_fail("elu", kn_elu(x, NAN), "alpha");
    kt_expect_fail("softplus", kn_softplus(x, 0, 20), "beta");
    kt_expect_fail("softplus", kn_softplus(x, 1, NAN), "threshold");
    kt_expect_fail("hard_sigmoid", kn_hard_sigmoid(x, NAN, 0.5), "alpha");
    kt_expect_fail("hard_sigmoid", kn_hard_sigmoid(x, 0.2, INFINITY), "beta");
    kt_expect_fail("clip", kn_clip(x, NAN, 1), "lo");
    kt_expect_fail("clip", kn_clip(x, 0, NAN), "hi");
    kt_expect_fail("clip", kn_clip(xi, 0.5, 2), "integers");
    /* binary: NULLs, shapes that do not broadcast, overflow, dtypes */
    kn_tensor *y = kn_tensor_ones(KN_F32, 2, (int64_t[]){2, 4});
    kn_tensor *h1 = kn_tensor_symbolic(KN_F32, 2, (int64_t[]){(int64_t)1 << 32, 1});
    kn_tensor *h2 = kn_tensor_symbolic(KN_F32, 2, (int64_t[]){1, (int64_t)1 << 32});
    for (int i = 0; i < N_BINARY; i++) {
        const bcase *c = &BINARY[i];
        kt_expect_fail(c->op, c->fn(NULL, x), "NULL");
        kt_expect_fail(c->op, c->fn(x, NULL), "NULL");
        kt_expect_fail(c->op, c->fn(x, y), "broadcast");
        kt_expect_fail(c->op, c->fn(h1, h2), "too many");
        if (!c->bools) kt_expect_fail(c->op, c->fn(bl, bl), "dtype");
    }
    kn_tensor *cnd = kn_tensor_ones(KN_BOOL, 1, s);
    kt_expect_fail("where", kn_where(NULL, x, x), "NULL");
    kt_expect_fail("where", kn_where(cnd, NULL, x), "NULL");
    kt_expect_fail("where", kn_where(cnd, x, NULL), "NULL");
    kt_expect_fail("where", kn_where(cnd, x, y), "broadcast");
    kt_expect_fail("where", kn_where(y, x, x), "broadcast");
    kn_tensor *c1 = kn_tensor_ones(KN_BOOL, 1, (int64_t[]){1});
    kt_expect_fail("where", kn_where(c1, h1, h2), "too many");
    kn_tensor_unref(c1);
    kn_tensor *list[] = {x, bl, xi, y, h1, h2, cnd};
    for (int i = 0; i < 7; i++)
        kn_tensor_unref(list[i]);
}

/* ------------------------------------------------------- dtype sweep */
/* Every op over every dtype: inside its mask it runs and gives the expected
 * output dtype, outside it fails with a message naming the op. */
static void test_dtype_sweep(void)
{
    int64_t s[1] = {6};
    const double vals[6] = {-2, -1, 0, 1, 2, 3};
    for (int dt = 0; dt < KN_DTYPE_COUNT; dt++) {
        kn_tensor *x = kt_tensor((kn_dtype)dt, 1, s, vals);
        for (int i = 0; i < N_UNARY; i++) {
            const ucase *c = &UNARY[i];
            bool in_mask = kn_op_dtypes(kn_op_find(c->op)) & (1u << dt);
            kn_tensor *y = c->fn(x, c->p, c->q);
            if (in_mask && c->ints == 'e' && !kn_dtype_is_float((kn_dtype)dt)) {
                kt_expect_fail(c->op, y, "integers");
            } else if (in_mask) {
                KT_CHECK(y != NULL, "%s on %s: %s", c->tag, kn_dtype_name(dt), kn_last_error());
                if (y)
                    KT_CHECK(kn_tensor_dtype(y) == out_dtype_unary(c, (kn_dtype)dt),
                             "%s on %s gives %s", c->tag, kn_dtype_name(dt),
                             kn_dtype_name(kn_tensor_dtype(y)));
                kn_tensor_unref(y);
            } else {
                kt_expect_fail(c->op, y, kn_dtype_name(dt));
            }
        }
        for (int dt2 = 0; dt2 < KN_DTYPE_COUNT; dt2++) {
            kn_tensor *x2 = kt_tensor((kn_dtype)dt2, 1, s, vals);
            for (int i = 0; i < N_BINARY; i++) {
                const bcase *c = &BINARY[i];
                uint32_t mask = kn_op_dtypes(kn_op_find(c->op));
                kn_tensor *y = c->fn(x, x2);
                if ((mask & (1u << dt)) && (mask & (1u << dt2))) {
                    kn_dtype p = kn_dtype_promote((kn_dtype)dt, (kn_dtype)dt2);
                    kn_dtype want = c->out == 'b'                            ? KN_BOOL
                                    : c->out == 'f' && !kn_dtype_is_float(p) ? KN_F32
                                                                             : p;
                    KT_CHECK(y && kn_tensor_dtype(y) == want, "%s(%s, %s): %s", c->op,
                             kn_dtype_name(dt), kn_dtype_name(dt2),
                             y ? kn_dtype_name(kn_tensor_dtype(y)) : kn_last_error());
                    kn_tensor_unref(y);
                } else {
                    kt_expect_fail(c->op, y, "dtype");
                }
            }
            kn_tensor *w = kn_where(x2, x, x2);
            if (dt == KN_STRING || dt2 == KN_STRING) /* no op takes text */
                kt_expect_fail("where", w, "string");
            else
                KT_CHECK(w && kn_tensor_dtype(w) == kn_dtype_promote((kn_dtype)dt, (kn_dtype)dt2),
                         "where(%s, %s)", kn_dtype_name(dt), kn_dtype_name(dt2));
            kn_tensor_unref(w);
            kn_tensor_unref(x2);
        }
        kn_tensor_unref(x);
    }
}

/* ------------------------------------------- allocation failure, threads */
static kn_status walk_gelu(void *ctx)
{
    (void)ctx;
    int64_t s[2] = {2, 3};
    kn_tensor *x = kn_tensor_full(KN_F64, 2, s, 0.5);
    if (!x) return kn_last_status();
    kn_tensor_set_requires_grad(x, true);
    bool prev = kn_autograd_record(true);
    kn_tensor *y = kn_gelu(x);
    kn_tensor *m = y ? kn_maximum(y, x) : NULL;
    kn_tensor *l = m ? kn_sum(m, 0, NULL, false) : NULL;
    kn_autograd_record(prev);
    kn_status st = l ? kn_backward(l, NULL) : kn_last_status();
    kn_tensor_unref(l), kn_tensor_unref(m), kn_tensor_unref(y), kn_tensor_unref(x);
    return st;
}

static kn_status walk_where(void *ctx)
{
    (void)ctx;
    int64_t s[2] = {2, 3};
    kn_tensor *x = kn_tensor_full(KN_F32, 2, s, 0.5), *z = kn_tensor_scalar(KN_I32, 0);
    kn_tensor *c = x && z ? kn_logical_or(x, z) : NULL;
    kn_tensor *w = c ? kn_where(c, x, z) : NULL;
    kn_tensor *k = w ? kn_clip(w, 0, 1) : NULL;
    kn_status st = k ? KN_OK : kn_last_status();
    kn_tensor_unref(k), kn_tensor_unref(w), kn_tensor_unref(c), kn_tensor_unref(z),
        kn_tensor_unref(x);
    return st;
}

static void test_alloc_failures(void)
{
    int n = kt_alloc_walk("gelu backward", walk_gelu, NULL);
    KT_CHECK(n > 5, "walked %d failure points", n);
    n = kt_alloc_walk("where", walk_where, NULL);
    KT_CHECK(n > 3, "walked %d failure points", n);
}

static void test_thread_independence(void)
{
    int64_t s[2] = {1024, 1024}, sb[1] = {1024};
    int prev = kn_get_num_threads();
    kn_tensor *x64 = kt_rand(2, s, -4, 4, 11), *b64 = kt_rand(1, sb, -1, 1, 12);
    kn_tensor *x = kn_cast(x64, KN_F32), *b = kn_cast(b64, KN_BF16);
    kn_tensor *r[2][4];
    for (int k = 0; k < 2; k++) {
        kn_set_num_threads(k + 1);
        KT_CHECK(kn_get_num_threads() == k + 1, "thread count set");
        r[k][0] = kn_gelu(x);
        r[k][1] = kn_add(x, b);
        r[k][2] = kn_where(x, b, x);
        r[k][3] = kn_softplus(x64, 2, 3);
    }
    kn_set_num_threads(prev);
    for (int j = 0; j < 4; j++) {
        KT_CHECK(r[0][j] && kt_equal_bits(r[0][j], r[1][j]),
                 "result %d differs between 1 and 2 threads", j);
        kn_tensor_unref(r[0][j]), kn_tensor_unref(r[1][j]);
    }
    kn_tensor_unref(x), kn_tensor_unref(b), kn_tensor_unref(x64), kn_tensor_unref(b64);
}

/* The registry lists every op of the family with its attribute schema. */
static void test_registry(void)
{
    for (int i = 0; i < N_UNARY; i++) {
        const kn_op_def *op = kn_op_find(UNARY[i].op);
        KT_CHECK(op && kn_op_num_inputs(op) == 1, "%s registered", UNARY[i].op);
        KT_CHECK(op && kn_op_has_grad(op) == (UNARY[i].grad != G_NONE), "%s: has_grad",
                 UNARY[i].op);
    }
    for (int i = 0; i < N_BINARY; i++) {
        const kn_op_def *op = kn_op_find(BINARY[i].op);
        KT_CHECK(op && kn_op_num_inputs(op) == 2, "%s registered", BINARY[i].op);
    }
    KT_CHECK(kn_op_num_inputs(kn_op_find("where")) == 3, "where registered");
    const kn_op_def *sp = kn_op_find("softplus");
    KT_CHECK(kn_op_num_attrs(sp) == 2 && !strcmp(kn_op_attr_name(sp, 0), "beta") &&
                 !strcmp(kn_op_attr_name(sp, 1), "threshold") &&
                 kn_op_attr_type(sp, 1) == KN_ATTR_FLOAT,
             "softplus schema");
    const kn_op_def *lr = kn_op_find("leaky_relu");
    KT_CHECK(kn_op_num_attrs(lr) == 1 && !strcmp(kn_op_attr_name(lr, 0), "negative_slope"),
             "leaky_relu schema");
    const kn_op_def *cl = kn_op_find("clip");
    KT_CHECK(kn_op_num_attrs(cl) == 2 && !strcmp(kn_op_attr_name(cl, 0), "lo"), "clip schema");
}

int main(void)
{
    KT_RUN(test_registry);
    KT_RUN(test_unary_values);
    KT_RUN(test_unary_special_values);
    KT_RUN(test_unary_ints);
    KT_RUN(test_unary_strided_and_empty);
    KT_RUN(test_unary_grads);
    KT_RUN(test_kinks);
    KT_RUN(test_second_derivative);
    KT_RUN(test_binary_values);
    KT_RUN(test_binary_ints);
    KT_RUN(test_int_corners);
    KT_RUN(test_nan_and_promotion);
    KT_RUN(test_binary_grads);
    KT_RUN(test_binary_shapes);
    KT_RUN(test_where);
    KT_RUN(test_where_grad);
    KT_RUN(test_bad_inputs);
    KT_RUN(test_dtype_sweep);
    KT_RUN(test_alloc_failures);
    KT_RUN(test_thread_independence);
    return kt_finish();
}
