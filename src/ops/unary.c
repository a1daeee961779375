/* unary.c — the unary elementwise ops: math functions, activations, rounding
 * and predicates, each an entry on the shared engine (elementwise.c) with its
 * scalar functions and a gradient written with other kn_ ops. Piecewise ops
 * follow PyTorch's gradient at their kinks. */
#include "elementwise.h"

#include <math.h>

static const kn_unary_attrs zero_attrs;

/* The same scalar function for f32 and f64: `x` is the input, `a` the attrs. */
#define UNARY_FNS(name, expr_f, expr_d)                                                            \
    static float name##_f(float x, const kn_unary_attrs *a)                                        \
    {                                                                                              \
        (void)a;                                                                                   \
        return expr_f;                                                                             \
    }                                                                                              \
    static double name##_d(double x, const kn_unary_attrs *a)                                      \
    {                                                                                              \
        (void)a;                                                                                   \
        return expr_d;                                                                             \
    }
#define UNARY_INT(name, expr)                                                                      \
    static int64_t name##_i(int64_t x, const kn_unary_attrs *a)                                    \
    {                                                                                              \
        (void)a;                                                                                   \
        return expr;                                                                               \
    }

/* ---------------------------------------------------- gradient helpers */
/* Gradients build a chain of temporaries in a scratch list: K keeps one. */
#define K(t) kn__keep(&s, (t))

/* Ends a gradient: grad_in[0] takes a new reference to r; scratch is freed. */
static kn_status grad_done(const kn_grad_args *g, kn_scratch *s, kn_tensor *r)
{
    g->grad_in[0] = kn_tensor_ref(r);
    kn__scratch_free(s);
    return r ? KN_OK : kn_last_status();
}

static kn_tensor *muls(kn_tensor *t, double c)
{
    return kn_mul_scalar(t, c);
}
static kn_tensor *adds(kn_tensor *t, double c)
{
    return kn_add_scalar(t, c);
}
static kn_tensor *gt0(kn_tensor *t, double c)
{
    return kn__with_scalar(kn_gt, t, c);
}
static kn_tensor *lt0(kn_tensor *t, double c)
{
    return kn__with_scalar(kn_lt, t, c);
}

/* where(m, g, 0), or where(m, 0, g) when zero_if_true. */
static kn_tensor *where_zero(kn_tensor *m, kn_tensor *g, bool zero_if_true)
{
    kn_tensor *z = g ? kn__scalar_like(g, 0) : NULL;
    kn_tensor *r = zero_if_true ? kn_where(m, z, g) : kn_where(m, g, z);
    kn_tensor_unref(z);
    return r;
}

/* Rounding ops and sign: the gradient is zero almost everywhere, so none
 * flows (grad_in stays NULL), as PyTorch gives zeros. */
static kn_status no_grad(const kn_grad_args *g)
{
    (void)g;
    return KN_OK;
}

/* Checks an attribute is a number (finite unless inf_ok). */
static kn_status check_attr(const kn_op_args *a, const char *name, double v, bool inf_ok)
{
    if (isnan(v) || (!inf_ok && isinf(v)))
        return kn__error(KN_ERR_ARG, "%s: %s is %g, expected a %s number", a->def->name, name, v,
                         inf_ok ? "non-NaN" : "finite");
    return KN_OK;
}

static const kn_unary_attrs *attrs_of(const kn_op_args *a)
{
    return a->attrs ? a->attrs : &zero_attrs;
}

/* ------------------------------------------------------------ existing */
UNARY_FNS(neg, -x, -x)
UNARY_INT(neg, (int64_t)(0 - (uint64_t)x))
static const kn_unary_fn neg_fns = {neg_f, neg_d, neg_i, KN_EW_SAME};
static kn_status neg_grad(const kn_grad_args *g)
{
    kn_scratch s = {0};
    return grad_done(g, &s, K(kn_neg(g->grad_out[0])));
}
KN_UNARY_OP(neg, KN_DTYPES_FLOAT | KN_DTYPES_INT, kn__unary_infer, neg_grad, NULL, 0, KN_AMP_NONE,
            neg_fns);
kn_tensor *kn_neg(kn_tensor *x)
{
    return kn__unary_call(&kn_op_neg, x, NULL);
}

UNARY_FNS(exp, expf(x), exp(x))
static const kn_unary_fn exp_fns = {exp_f, exp_d, NULL, KN_EW_FLOAT};
static kn_status exp_grad(const kn_grad_args *g) /* d exp(x) = exp(x) dx */
{
    kn_scratch s = {0};
    return grad_done(g, &s, K(kn_mul(g->grad_out[0], g->out[0])));
}
KN_UNARY_OP(exp, KN_DTYPES_ALL, kn__unary_infer, exp_grad, NULL, 0, KN_AMP_FP32, exp_fns);
kn_tensor *kn_exp(kn_tensor *x)
{
    return kn__unary_call(&kn_op_exp, x, NULL);
}

UNARY_FNS(log, logf(x), log(x))
static const kn_unary_fn log_fns = {log_f, log_d, NULL, KN_EW_FLOAT};
static kn_status log_grad(const kn_grad_args *g) /* d log(x) = dx / x */
{
    kn_scratch s = {0};
    return grad_done(g, &s, K(kn_div(g->grad_out[0], g->in[0])));
}
KN_UNARY_OP(log, KN_DTYPES_ALL, kn__unary_infer, log_grad, NULL, 0, KN_AMP_FP32, log_fns);
kn_tensor *kn_log(kn_tensor *x)
{
    return kn__unary_call(&kn_op_log, x, NULL);
}

/* ---------------------------------------------------------------- math */
UNARY_FNS(abs, fabsf(x), fabs(x))
/* |INT64_MIN| wraps to INT64_MIN, as in PyTorch; no signed overflow */
UNARY_INT(abs, x < 0 ? (int64_t)(0 - (uint64_t)x) : x)
static const kn_unary_fn abs_fns = {abs_f, abs_d, abs_i, KN_EW_SAME};
static kn_status abs_grad(const kn_grad_args *g) /* sign(x) dx; 0 at 0 like PyTorch */
{
    kn_scratch s = {0};
    return grad_done(g, &s, K(kn_mul(g->grad_out[0], K(kn_sign(g->in[0])))));
}
KN_UNARY_OP(abs, KN_DTYPES_FLOAT | KN_DTYPES_INT, kn__unary_infer, abs_grad, NULL, 0, KN_AMP_NONE,
            abs_fns);
kn_tensor *kn_abs(kn_tensor *x)
{
    return kn__unary_call(&kn_op_abs, x, NULL);
}

/* sign(NaN) is 0, as in PyTorch */
UNARY_FNS(sign, (float)((0 < x) - (x < 0)), (double)((0 < x) - (x < 0)))
UNARY_INT(sign, (0 < x) - (x < 0))
static const kn_unary_fn sign_fns = {sign_f, sign_d, sign_i, KN_EW_SAME};
KN_UNARY_OP(sign, KN_DTYPES_FLOAT | KN_DTYPES_INT, kn__unary_infer, no_grad, NULL, 0, KN_AMP_NONE,
            sign_fns);
kn_tensor *kn_sign(kn_tensor *x)
{
    return kn__unary_call(&kn_op_sign, x, NULL);
}

UNARY_FNS(expm1, expm1f(x), expm1(x))
static const kn_unary_fn expm1_fns = {expm1_f, expm1_d, NULL, KN_EW_FLOAT};
static kn_status expm1_grad(const kn_grad_args *g) /* (y + 1) dx */
{
    kn_scratch s = {0};
    return grad_done(g, &s, K(kn_mul(g->grad_out[0], K(adds(g->out[0], 1)))));
}
KN_UNARY_OP(expm1, KN_DTYPES_ALL, kn__unary_infer, expm1_grad, NULL, 0, KN_AMP_FP32, expm1_fns);
kn_tensor *kn_expm1(kn_tensor *x)
{
    return kn__unary_call(&kn_op_expm1, x, NULL);
}

UNARY_FNS(log1p, log1pf(x), log1p(x))
static const kn_unary_fn log1p_fns = {log1p_f, log1p_d, NULL, KN_EW_FLOAT};
static kn_status log1p_grad(const kn_grad_args *g) /* dx / (1 + x) */
{
    kn_scratch s = {0};
    return grad_done(g, &s, K(kn_div(g->grad_out[0], K(adds(g->in[0], 1)))));
}
KN_UNARY_OP(log1p, KN_DTYPES_ALL, kn__unary_infer, log1p_grad, NULL, 0, KN_AMP_FP32, log1p_fns);
kn_tensor *kn_log1p(kn_tensor *x)
{
    return kn__unary_call(&kn_op_log1p, x, NULL);
}

UNARY_FNS(sqrt, sqrtf(x), sqrt(x))
static const kn_unary_fn sqrt_fns = {sqrt_f, sqrt_d, NULL, KN_EW_FLOAT};
static kn_status sqrt_grad(const kn_grad_args *g) /* dx / (2 y) */
{
    kn_scratch s = {0};
    return grad_done(g, &s, K(kn_div(g->grad_out[0], K(muls(g->out[0], 2)))));
}
KN_UNARY_OP(sqrt, KN_DTYPES_ALL, kn__unary_infer, sqrt_grad, NULL, 0, KN_AMP_FP32, sqrt_fns);
kn_tensor *kn_sqrt(kn_tensor *x)
{
    return kn__unary_call(&kn_op_sqrt, x, NULL);
}

UNARY_FNS(rsqrt, 1.0f / sqrtf(x), 1.0 / sqrt(x))
static const kn_unary_fn rsqrt_fns = {rsqrt_f, rsqrt_d, NULL, KN_EW_FLOAT};
static kn_status rsqrt_grad(const kn_grad_args *g) /* -y^3 / 2 dx */
{
    kn_scratch s = {0};
    kn_tensor *y = g->out[0], *y3 = K(kn_mul(y, K(kn_mul(y, y))));
    return grad_done(g, &s, K(kn_mul(g->grad_out[0], K(muls(y3, -0.5)))));
}
KN_UNARY_OP(rsqrt, KN_DTYPES_ALL, kn__unary_infer, rsqrt_grad, NULL, 0, KN_AMP_FP32, rsqrt_fns);
kn_tensor *kn_rsqrt(kn_tensor *x)
{
    return kn__unary_call(&kn_op_rsqrt, x, NULL);
}

UNARY_FNS(reciprocal, 1.0f / x, 1.0 / x)
static const kn_unary_fn reciprocal_fns = {reciprocal_f, reciprocal_d, NULL, KN_EW_FLOAT};
static kn_status reciprocal_grad(const kn_grad_args *g) /* -y^2 dx */
{
    kn_scratch s = {0};
    kn_tensor *y = g->out[0];
    return grad_done(g, &s, K(kn_neg(K(kn_mul(g->grad_out[0], K(kn_mul(y, y)))))));
}
KN_UNARY_OP(reciprocal, KN_DTYPES_ALL, kn__unary_infer, reciprocal_grad, NULL, 0, KN_AMP_FP32,
            reciprocal_fns);
kn_tensor *kn_reciprocal(kn_tensor *x)
{
    return kn__unary_call(&kn_op_reciprocal, x, NULL);
}

UNARY_FNS(square, (x * x), (x * x))
UNARY_INT(square, (int64_t)(((uint64_t)x) * (uint64_t)x)) /* wraps, no UB */
static const kn_unary_fn square_fns = {square_f, square_d, square_i, KN_EW_SAME};
static kn_status square_grad(const kn_grad_args *g) /* 2 x dx */
{
    kn_scratch s = {0};
    return grad_done(g, &s, K(kn_mul(g->grad_out[0], K(muls(g->in[0], 2)))));
}
KN_UNARY_OP(square, KN_DTYPES_FLOAT | KN_DTYPES_INT, kn__unary_infer, square_grad, NULL, 0,
            KN_AMP_FP32, square_fns);
kn_tensor *kn_square(kn_tensor *x)
{
    return kn__unary_call(&kn_op_square, x, NULL);
}

UNARY_FNS(sin, sinf(x), sin(x))
static const kn_unary_fn sin_fns = {sin_f, sin_d, NULL, KN_EW_FLOAT};
static kn_status sin_grad(const kn_grad_args *g) /* cos(x) dx */
{
    kn_scratch s = {0};
    return grad_done(g, &s, K(kn_mul(g->grad_out[0], K(kn_cos(g->in[0])))));
}
KN_UNARY_OP(sin, KN_DTYPES_ALL, kn__unary_infer, sin_grad, NULL, 0, KN_AMP_FP32, sin_fns);
kn_tensor *kn_sin(kn_tensor *x)
{
    return kn__unary_call(&kn_op_sin, x, NULL);
}

UNARY_FNS(cos, cosf(x), cos(x))
static const kn_unary_fn cos_fns = {cos_f, cos_d, NULL, KN_EW_FLOAT};
static kn_status cos_grad(const kn_grad_args *g) /* -sin(x) dx */
{
    kn_scratch s = {0};
    return grad_done(g, &s, K(kn_neg(K(kn_mul(g->grad_out[0], K(kn_sin(g->in[0])))))));
}
KN_UNARY_OP(cos, KN_DTYPES_ALL, kn__unary_infer, cos_grad, NULL, 0, KN_AMP_FP32, cos_fns);
kn_tensor *kn_cos(kn_tensor *x)
{
    return kn__unary_call(&kn_op_cos, x, NULL);
}

UNARY_FNS(tan, tanf(x), tan(x))
static const kn_unary_fn tan_fns = {tan_f, tan_d, NULL, KN_EW_FLOAT};
static kn_status tan_grad(const kn_grad_args *g) /* (1 + y^2) dx */
{
    kn_scratch s = {0};
    kn_tensor *y = g->out[0];
    return grad_done(g, &s, K(kn_mul(g->grad_out[0], K(adds(K(kn_mul(y, y)), 1)))));
}
KN_UNARY_OP(tan, KN_DTYPES_ALL, kn__unary_infer, tan_grad, NULL, 0, KN_AMP_FP32, tan_fns);
kn_tensor *kn_tan(kn_tensor *x)
{
    return kn__unary_call(&kn_op_tan, x, NULL);
}

UNARY_FNS(tanh, tanhf(x), tanh(x))
static const kn_unary_fn tanh_fns = {tanh_f, tanh_d, NULL, KN_EW_FLOAT};
static kn_status tanh_grad(const kn_grad_args *g) /* (1 - y^2) dx */
{
    kn_scratch s = {0};
    kn_tensor *y = g->out[0];
    kn_tensor *d = K(adds(K(kn_neg(K(kn_mul(y, y)))), 1));
    return grad_done(g, &s, K(kn_mul(g->grad_out[0], d)));
}
KN_UNARY_OP(tanh, KN_DTYPES_ALL, kn__unary_infer, tanh_grad, NULL, 0, KN_AMP_FP32, tanh_fns);
kn_tensor *kn_tanh(kn_tensor *x)
{
    return kn__unary_call(&kn_op_tanh, x, NULL);
}

/* 1 / (1 + e^-x), written so that neither branch overflows */
static float sigmoidf_(float x)
{
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}
static double sigmoid_(double x)
{
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}
UNARY_FNS(sigmoid, sigmoidf_(x), sigmoid_(x))
static const kn_unary_fn sigmoid_fns = {sigmoid_f, sigmoid_d, NULL, KN_EW_FLOAT};
static kn_status sigmoid_grad(const kn_grad_args *g) /* y (1 - y) dx */
{
    kn_scratch s = {0};
    kn_tensor *y = g->out[0];
    kn_tensor *d = K(kn_mul(y, K(adds(K(kn_neg(y)), 1))));
    return grad_done(g, &s, K(kn_mul(g->grad_out[0], d)));
}
KN_UNARY_OP(sigmoid, KN_DTYPES_ALL, kn__unary_infer, sigmoid_grad, NULL, 0, KN_AMP_FP32,
            sigmoid_fns);
kn_tensor *kn_sigmoid(kn_tensor *x)
{
    return kn__unary_call(&kn_op_sigmoid, x, NULL);
}

/* 2/sqrt(pi) */
#define TWO_OVER_SQRT_PI 1.1283791670955126
UNARY_FNS(erf, erff(x), erf(x))
static const kn_unary_fn erf_fns = {erf_f, erf_d, NULL, KN_EW_FLOAT};
static kn_status erf_grad(const kn_grad_args *g) /* 2/sqrt(pi) e^(-x^2) dx */
{
    kn_scratch s = {0};
    kn_tensor *x = g->in[0];
    kn_tensor *e = K(kn_exp(K(kn_neg(K(kn_mul(x, x))))));
    return grad_done(g, &s, K(kn_mul(g->grad_out[0], K(muls(e, TWO_OVER_SQRT_PI)))));
}
KN_UNARY_OP(erf, KN_DTYPES_ALL, kn__unary_infer, erf_grad, NULL, 0, KN_AMP_FP32, erf_fns);
kn_tensor *kn_erf(kn_tensor *x)
{
    return kn__unary_call(&kn_op_erf, x, NULL);
}

/* ---------------------------------------------------------- activations */
/* NaN passes through relu, relu6, clip and hard_* (PyTorch does the same). */
UNARY_FNS(relu, x < 0 ? 0.0f : x, x < 0 ? 0.0 : x)
UNARY_INT(relu, x < 0 ? 0 : x)
static const kn_unary_fn relu_fns = {relu_f, relu_d, relu_i, KN_EW_SAME};
static kn_status relu_grad(const kn_grad_args *g) /* dx where x > 0 (0 at 0) */
{
    kn_scratch s = {0};
    return grad_done(g, &s, K(where_zero(K(gt0(g->in[0], 0)), g->grad_out[0], false)));
}
KN_UNARY_OP(relu, KN_DTYPES_FLOAT | KN_DTYPES_INT, kn__unary_infer, relu_grad, NULL, 0, KN_AMP_NONE,
            relu_fns);
kn_tensor *kn_relu(kn_tensor *x)
{
    return kn__unary_call(&kn_op_relu, x, NULL);
}

UNARY_FNS(relu6, x<0 ? 0.0f : x> 6 ? 6.0f : x, x<0 ? 0.0 : x> 6 ? 6.0 : x)
UNARY_INT(relu6, x<0 ? 0 : x> 6 ? 6 : x)
static const kn_unary_fn relu6_fns = {relu6_f, relu6_d, relu6_i, KN_EW_SAME};
static kn_status relu6_grad(const kn_grad_args *g) /* dx where 0 < x < 6 (hardtanh's rule) */
{
    kn_scratch s = {0};
    kn_tensor *x = g->in[0];
    kn_tensor *m = K(kn_logical_and(K(gt0(x, 0)), K(lt0(x, 6))));
    return grad_done(g, &s, K(where_zero(m, g->grad_out[0], false)));
}
KN_UNARY_OP(relu6, KN_DTYPES_FLOAT | KN_DTYPES_INT, kn__unary_infer, relu6_grad, NULL, 0,
            KN_AMP_NONE, relu6_fns);
kn_tensor *kn_relu6(kn_tensor *x)
{
    return kn__unary_call(&kn_op_relu6, x, NULL);
}

static const kn_attr_desc leaky_relu_schema[] = {
    {"negative_slope", KN_ATTR_FLOAT, offsetof(kn_unary_attrs, alpha)},
};
static kn_status leaky_relu_infer(const kn_op_args *a, kn_out_meta *out)
{
    kn_status s = check_attr(a, "negative_slope", attrs_of(a)->alpha, false);
    return s ? s : kn__unary_infer(a, out);
}
UNARY_FNS(leaky_relu, x > 0 ? x : x * (float)a->alpha, x > 0 ? x : x * a->alpha)
static const kn_unary_fn leaky_relu_fns = {leaky_relu_f, leaky_relu_d, NULL, KN_EW_FLOAT};
static kn_status leaky_relu_grad(const kn_grad_args *g) /* dx for x > 0, else slope dx */
{
    kn_scratch s = {0};
    const kn_unary_attrs *at = g->attrs;
    kn_tensor *gy = g->grad_out[0];
    kn_tensor *m = K(gt0(g->in[0], 0));
    return grad_done(g, &s, K(kn_where(m, gy, K(muls(gy, at->alpha)))));
}
KN_UNARY_OP(leaky_relu, KN_DTYPES_FLOAT, leaky_relu_infer, leaky_relu_grad, leaky_relu_schema, 1,
            KN_AMP_NONE, leaky_relu_fns);
kn_tensor *kn_leaky_relu(kn_tensor *x, double negative_slope)
{
    kn_unary_attrs at = {negative_slope, 0};
    return kn__unary_call(&kn_op_leaky_relu, x, &at);
}

static const kn_attr_desc elu_schema[] = {
    {"alpha", KN_ATTR_FLOAT, offsetof(kn_unary_attrs, alpha)}};
static kn_status elu_infer(const kn_op_args *a, kn_out_meta *out)
{
    kn_status s = check_attr(a, "alpha", attrs_of(a)->alpha, false);
    return s ? s : kn__unary_infer(a, out);
}
UNARY_FNS(elu, x > 0 ? x : (float)a->alpha * expm1f(x), x > 0 ? x : a->alpha * expm1(x))
static const kn_unary_fn elu_fns = {elu_f, elu_d, NULL, KN_EW_FLOAT};
/* d/dx: 1 for x > 0, scale * alpha * e^x otherwise (elu: scale 1; selu) */
static kn_status elu_like_grad(const kn_grad_args *g, double scale, double alpha)
{
    kn_scratch s = {0};
    kn_tensor *x = g->in[0], *gy = g->grad_out[0];
    kn_tensor *neg_side = K(kn_mul(gy, K(muls(K(kn_exp(x)), scale * alpha))));
    kn_tensor *pos_side = scale == 1 ? gy : K(muls(gy, scale));
    return grad_done(g, &s, K(kn_where(K(gt0(x, 0)), pos_side, neg_side)));
}
static kn_status elu_grad(const kn_grad_args *g)
{
    return elu_like_grad(g, 1, ((const kn_unary_attrs *)g->attrs)->alpha);
}
KN_UNARY_OP(elu, KN_DTYPES_FLOAT, elu_infer, elu_grad, elu_schema, 1, KN_AMP_FP32, elu_fns);
kn_tensor *kn_elu(kn_tensor *x, double alpha)
{
    kn_unary_attrs at = {alpha, 0};
    return kn__unary_call(&kn_op_elu, x, &at);
}

#define SELU_ALPHA 1.6732632423543772848170429916717
#define SELU_SCALE 1.0507009873554804934193349852946
UNARY_FNS(selu, (x > 0 ? x : (float)SELU_ALPHA * expm1f(x)) * (float)SELU_SCALE,
          (x > 0 ? x : SELU_ALPHA * expm1(x)) * SELU_SCALE)
static const kn_unary_fn selu_fns = {selu_f, selu_d, NULL, KN_EW_FLOAT};
static kn_status selu_grad(const kn_grad_args *g)
{
    return elu_like_grad(g, SELU_SCALE, SELU_ALPHA);
}
KN_UNARY_OP(selu, KN_DTYPES_FLOAT, kn__unary_infer, selu_grad, NULL, 0, KN_AMP_FP32, selu_fns);
kn_tensor *kn_selu(kn_tensor *x)
{
    return kn__unary_call(&kn_op_selu, x, NULL);
}

/* exact gelu: x Phi(x) = x/2 (1 + erf(x / sqrt 2)) */
#define INV_SQRT2 0.70710678118654752440
#define INV_SQRT_2PI 0.39894228040143267794
UNARY_FNS(gelu, 0.5f * x * (1.0f + erff(x * (float)INV_SQRT2)),
          0.5 * x * (1.0 + erf(x * INV_SQRT2)))
static const kn_unary_fn gelu_fns = {gelu_f, gelu_d, NULL, KN_EW_FLOAT};
static kn_status gelu_grad(const kn_grad_args *g) /* (Phi(x) + x phi(x)) dx */
{
    kn_scratch s = {0};
    kn_tensor *x = g->in[0];
    kn_tensor *cdf = K(muls(K(adds(K(kn_erf(K(muls(x, INV_SQRT2)))), 1)), 0.5));
    kn_tensor *pdf = K(muls(K(kn_exp(K(muls(K(kn_mul(x, x)), -0.5)))), INV_SQRT_2PI));
    kn_tensor *d = K(kn_add(cdf, K(kn_mul(x, pdf))));
    return grad_done(g, &s, K(kn_mul(g->grad_out[0], d)));
}
KN_UNARY_OP(gelu, KN_DTYPES_FLOAT, kn__unary_infer, gelu_grad, NULL, 0, KN_AMP_FP32, gelu_fns);
kn_tensor *kn_gelu(kn_tensor *x)
{
    return kn__unary_call(&kn_op_gelu, x, NULL);
}

/* x/2 (1 + tanh(k (x + c x^3))), k = sqrt(2/pi) */
#define GELU_K 0.79788456080286535588
#define GELU_C 0.044715
UNARY_FNS(gelu_tanh, 0.5f * x * (1.0f + tanhf((float)GELU_K * (x + (float)GELU_C * x * x * x))),
          0.5 * x * (1.0 + tanh(GELU_K * (x + GELU_C * x * x * x))))
static const kn_unary_fn gelu_tanh_fns = {gelu_tanh_f, gelu_tanh_d, NULL, KN_EW_FLOAT};
/* d/dx = (1 + t)/2 + x/2 (1 - t^2) k (1 + 3c x^2), t = tanh(k (x + c x^3)) */
static kn_status gelu_tanh_grad(const kn_grad_args *g)
{
    kn_scratch s = {0};
    kn_tensor *x = g->in[0];
    kn_tensor *x2 = K(kn_mul(x, x));
    kn_tensor *inner = K(muls(K(kn_mul(x, K(adds(K(muls(x2, GELU_C)), 1)))), GELU_K));
    kn_tensor *t = K(kn_tanh(inner));
    kn_tensor *left = K(muls(K(adds(t, 1)), 0.5));
    kn_tensor *sech2 = K(adds(K(kn_neg(K(kn_mul(t, t)))), 1));
    kn_tensor *dinner = K(muls(K(adds(K(muls(x2, 3 * GELU_C)), 1)), GELU_K));
    kn_tensor *right = K(kn_mul(K(muls(x, 0.5)), K(kn_mul(sech2, dinner))));
    return grad_done(g, &s, K(kn_mul(g->grad_out[0], K(kn_add(left, right)))));
}
KN_UNARY_OP(gelu_tanh, KN_DTYPES_FLOAT, kn__unary_infer, gelu_tanh_grad, NULL, 0, KN_AMP_FP32,
            gelu_tanh_fns);
kn_tensor *kn_gelu_tanh(kn_tensor *x)
{
    return kn__unary_call(&kn_op_gelu_tanh, x, NULL);
}

/* x / (1 + e^-x), PyTorch's form (silu(-inf) is NaN there too) */
UNARY_FNS(silu, x / (1.0f + expf(-x)), x / (1.0 + exp(-x)))
static const kn_unary_fn silu_fns = {silu_f, silu_d, NULL, KN_EW_FLOAT};
static kn_status silu_grad(const kn_grad_args *g) /* s (1 + x (1 - s)) dx, s = sigmoid(x) */
{
    kn_scratch s = {0};
    kn_tensor *x = g->in[0], *sg = K(kn_sigmoid(x));
    kn_tensor *one_minus = K(adds(K(kn_neg(sg)), 1));
    kn_tensor *d = K(kn_mul(sg, K(adds(K(kn_mul(x, one_minus)), 1))));
    return grad_done(g, &s, K(kn_mul(g->grad_out[0], d)));
}
KN_UNARY_OP(silu, KN_DTYPES_FLOAT, kn__unary_infer, silu_grad, NULL, 0, KN_AMP_FP32, silu_fns);
kn_tensor *kn_silu(kn_tensor *x)
{
    return kn__unary_call(&kn_op_silu, x, NULL);
}

/* softplus: x when beta x > threshold, else log(1 + e^(beta x)) / beta */
static const kn_attr_desc softplus_schema[] = {
    {"beta", KN_ATTR_FLOAT, offsetof(kn_unary_attrs, alpha)},
    {"threshold", KN_ATTR_FLOAT, offsetof(kn_unary_attrs, beta)},
};
static kn_status softplus_infer(const kn_op_args *a, kn_out_meta *out)
{
    const kn_unary_attrs *at = attrs_of(a);
    kn_status s = check_attr(a, "beta", at->alpha, false);
    if (!s && at->alpha == 0) s = kn__error(KN_ERR_ARG, "softplus: beta is 0, expected nonzero");
    if (!s) s = check_attr(a, "threshold", at->beta, true);
    return s ? s : kn__unary_infer(a, out);
}
static float softplusf_(float x, float beta, float threshold)
{
    return x * beta > threshold ? x : log1pf(expf(x * beta)) / beta;
}
static double softplus_(double x, double beta, double threshold)
{
    return x * beta > threshold ? x : log1p(exp(x * beta)) / beta;
}
UNARY_FNS(softplus, softplusf_(x, (float)a->alpha, (float)a->beta), softplus_(x, a->alpha, a->beta))
static const kn_unary_fn softplus_fns = {softplus_f, softplus_d, NULL, KN_EW_FLOAT};
static kn_status softplus_grad(const kn_grad_args *g) /* sigmoid(beta x) dx, dx past threshold */
{
    kn_scratch s = {0};
    const kn_unary_attrs *at = g->attrs;
    kn_tensor *bx = K(muls(g->in[0], at->alpha)), *gy = g->grad_out[0];
    kn_tensor *smooth = K(kn_mul(gy, K(kn_sigmoid(bx))));
    return grad_done(g, &s, K(kn_where(K(gt0(bx, at->beta)), gy, smooth)));
}
KN_UNARY_OP(softplus, KN_DTYPES_FLOAT, softplus_infer, softplus_grad, softplus_schema, 2,
            KN_AMP_FP32, softplus_fns);
kn_tensor *kn_softplus(kn_tensor *x, double beta, double threshold)
{
    kn_unary_attrs at = {beta, threshold};
    return kn__unary_call(&kn_op_softplus, x, &at);
}

UNARY_FNS(softsign, x / (1.0f + fabsf(x)), x / (1.0 + fabs(x)))
static const kn_unary_fn softsign_fns = {softsign_f, softsign_d, NULL, KN_EW_FLOAT};
static kn_status softsign_grad(const kn_grad_args *g) /* dx / (1 + |x|)^2 */
{
    kn_scratch s = {0};
    kn_tensor *d = K(adds(K(kn_abs(g->in[0])), 1));
    return grad_done(g, &s, K(kn_div(g->grad_out[0], K(kn_mul(d, d)))));
}
KN_UNARY_OP(softsign, KN_DTYPES_FLOAT, kn__unary_infer, softsign_grad, NULL, 0, KN_AMP_FP32,
            softsign_fns);
kn_tensor *kn_softsign(kn_tensor *x)
{
    return kn__unary_call(&kn_op_softsign, x, NULL);
}

/* mish: x tanh(softplus(x)), softplus without threshold as in PyTorch */
UNARY_FNS(mish, (x * tanhf(log1pf(expf(x)))), (x * tanh(log1p(exp(x)))))
static const kn_unary_fn mish_fns = {mish_f, mish_d, NULL, KN_EW_FLOAT};
/* d/dx = t + x sigmoid(x) (1 - t^2), t = tanh(softplus(x)) */
static kn_status mish_grad(const kn_grad_args *g)
{
    kn_scratch s = {0};
    kn_tensor *x = g->in[0];
    kn_tensor *t = K(kn_tanh(K(kn_softplus(x, 1, 20))));
    kn_tensor *sech2 = K(adds(K(kn_neg(K(kn_mul(t, t)))), 1));
    kn_tensor *d = K(kn_add(t, K(kn_mul(K(kn_mul(x, K(kn_sigmoid(x)))), sech2))));
    return grad_done(g, &s, K(kn_mul(g->grad_out[0], d)));
}
KN_UNARY_OP(mish, KN_DTYPES_FLOAT, kn__unary_infer, mish_grad, NULL, 0, KN_AMP_FP32, mish_fns);
kn_tensor *kn_mish(kn_tensor *x)
{
    return kn__unary_call(&kn_op_mish, x, NULL);
}

/* hard_sigmoid: clamp(alpha x + beta, 0, 1) */
static const kn_attr_desc hard_sigmoid_schema[] = {
    {"alpha", KN_ATTR_FLOAT, offsetof(kn_unary_attrs, alpha)},
    {"beta", KN_ATTR_FLOAT, offsetof(kn_unary_attrs, beta)},
};
static kn_status hard_sigmoid_infer(const kn_op_args *a, kn_out_meta *out)
{
    kn_status s = check_attr(a, "alpha", attrs_of(a)->alpha, false);
    if (!s) s = check_attr(a, "beta", attrs_of(a)->beta, false);
    return s ? s : kn__unary_infer(a, out);
}
static float clampf_(float v, float lo, float hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}
static double clamp_(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}
static float hard_sigmoidf_(float x, float alpha, float beta)
{
    return clampf_(alpha * x + beta, 0, 1);
}
static double hard_sigmoid_(double x, double alpha, double beta)
{
    return clamp_(alpha * x + beta, 0, 1);
}
UNARY_FNS(hard_sigmoid, hard_sigmoidf_(x, (float)a->alpha, (float)a->beta),
          hard_sigmoid_(x, a->alpha, a->beta))
static const kn_unary_fn hard_sigmoid_fns = {hard_sigmoid_f, hard_sigmoid_d, NULL, KN_EW_FLOAT};
/* alpha dx where 0 < alpha x + beta < 1 (0 at the kinks, like PyTorch) */
static kn_status hard_sigmoid_grad(const kn_grad_args *g)
{
    kn_scratch s = {0};
    const kn_unary_attrs *at = g->attrs;
    kn_tensor *v = K(adds(K(muls(g->in[0], at->alpha)), at->beta));
    kn_tensor *m = K(kn_logical_and(K(gt0(v, 0)), K(lt0(v, 1))));
    return grad_done(g, &s, K(where_zero(m, K(muls(g->grad_out[0], at->alpha)), false)));
}
KN_UNARY_OP(hard_sigmoid, KN_DTYPES_FLOAT, hard_sigmoid_infer, hard_sigmoid_grad,
            hard_sigmoid_schema, 2, KN_AMP_NONE, hard_sigmoid_fns);
kn_tensor *kn_hard_sigmoid(kn_tensor *x, double alpha, double beta)
{
    kn_unary_attrs at = {alpha, beta};
    return kn__unary_call(&kn_op_hard_sigmoid, x, &at);
}

/* hard_swish: x relu6(x + 3) / 6 */
UNARY_FNS(hard_swish, (x * clampf_(x + 3.0f, 0, 6) / 6.0f), (x * clamp_(x + 3.0, 0, 6) / 6.0))
static const kn_unary_fn hard_swish_fns = {hard_swish_f, hard_swish_d, NULL, KN_EW_FLOAT};
/* PyTorch: 0 for x < -3, (x/3 + 1/2) dx for x <= 3, dx above */
static kn_status hard_swish_grad(const kn_grad_args *g)
{
    kn_scratch s = {0};
    kn_tensor *x = g->in[0], *gy = g->grad_out[0];
    kn_tensor *mid = K(kn_mul(gy, K(adds(K(muls(x, 1.0 / 3.0)), 0.5))));
    kn_tensor *upper = K(kn_where(K(gt0(x, 3)), gy, mid));
    return grad_done(g, &s, K(where_zero(K(lt0(x, -3)), upper, true)));
}
KN_UNARY_OP(hard_swish, KN_DTYPES_FLOAT, kn__unary_infer, hard_swish_grad, NULL, 0, KN_AMP_NONE,
            hard_swish_fns);
kn_tensor *kn_hard_swish(kn_tensor *x)
{
    return kn__unary_call(&kn_op_hard_swish, x, NULL);
}

/* ------------------------------------------------------------- rounding */
UNARY_INT(identity, x) /* rounding an integer keeps it */
UNARY_FNS(floor, floorf(x), floor(x))
static const kn_unary_fn floor_fns = {floor_f, floor_d, identity_i, KN_EW_SAME};
KN_UNARY_OP(floor, KN_DTYPES_FLOAT | KN_DTYPES_INT, kn__unary_infer, no_grad, NULL, 0, KN_AMP_NONE,
            floor_fns);
kn_tensor *kn_floor(kn_tensor *x)
{
    return kn__unary_call(&kn_op_floor, x, NULL);
}

UNARY_FNS(ceil, ceilf(x), ceil(x))
static const kn_unary_fn ceil_fns = {ceil_f, ceil_d, identity_i, KN_EW_SAME};
KN_UNARY_OP(ceil, KN_DTYPES_FLOAT | KN_DTYPES_INT, kn__unary_infer, no_grad, NULL, 0, KN_AMP_NONE,
            ceil_fns);
kn_tensor *kn_ceil(kn_tensor *x)
{
    return kn__unary_call(&kn_op_ceil, x, NULL);
}

/* half to even: nearbyint under the default rounding mode */
UNARY_FNS(round, nearbyintf(x), nearbyint(x))
static const kn_unary_fn round_fns = {round_f, round_d, identity_i, KN_EW_SAME};
KN_UNARY_OP(round, KN_DTYPES_FLOAT | KN_DTYPES_INT, kn__unary_infer, no_grad, NULL, 0, KN_AMP_NONE,
            round_fns);
kn_tensor *kn_round(kn_tensor *x)
{
    return kn__unary_call(&kn_op_round, x, NULL);
}

UNARY_FNS(trunc, truncf(x), trunc(x))
static const kn_unary_fn trunc_fns = {trunc_f, trunc_d, identity_i, KN_EW_SAME};
KN_UNARY_OP(trunc, KN_DTYPES_FLOAT | KN_DTYPES_INT, kn__unary_infer, no_grad, NULL, 0, KN_AMP_NONE,
            trunc_fns);
kn_tensor *kn_trunc(kn_tensor *x)
{
    return kn__unary_call(&kn_op_trunc, x, NULL);
}

/* clip: min(max(x, lo), hi) like torch.clamp (lo > hi gives hi everywhere).
 * Integer inputs keep their dtype and need integral (or infinite) bounds. */
static const kn_attr_desc clip_schema[] = {
    {"lo", KN_ATTR_FLOAT, offsetof(kn_unary_attrs, alpha)},
    {"hi", KN_ATTR_FLOAT, offsetof(kn_unary_attrs, beta)},
};
static kn_status clip_infer(const kn_op_args *a, kn_out_meta *out)
{
    const kn_unary_attrs *at = attrs_of(a);
    kn_status s = check_attr(a, "lo", at->alpha, true);
    if (!s) s = check_attr(a, "hi", at->beta, true);
    if (!s && !kn_dtype_is_float(a->in[0]->dtype) &&
        ((isfinite(at->alpha) && at->alpha != floor(at->alpha)) ||
         (isfinite(at->beta) && at->beta != floor(at->beta))))
        s = kn__error(KN_ERR_ARG, "clip: bounds %g, %g must be integers for a %s input", at->alpha,
                      at->beta, kn_dtype_name(a->in[0]->dtype));
    return s ? s : kn__unary_infer(a, out);
}
/* A bound as an int64, saturated (the bound is integral or infinite). */
static int64_t bound_i64(double v)
{
    if (v <= -9223372036854775808.0) return INT64_MIN;
    if (v >= 9223372036854775807.0) return INT64_MAX;
    return (int64_t)v;
}
static float clip_f(float x, const kn_unary_attrs *a)
{
    float v = x < (float)a->alpha ? (float)a->alpha : x;
    return v > (float)a->beta ? (float)a->beta : v;
}
static double clip_d(double x, const kn_unary_attrs *a)
{
    double v = x < a->alpha ? a->alpha : x;
    return v > a->beta ? a->beta : v;
}
static int64_t clip_i(int64_t x, const kn_unary_attrs *a)
{
    int64_t lo = bound_i64(a->alpha), hi = bound_i64(a->beta);
    int64_t v = x < lo ? lo : x;
    return v > hi ? hi : v;
}
static const kn_unary_fn clip_fns = {clip_f, clip_d, clip_i, KN_EW_SAME};
static kn_status clip_grad(const kn_grad_args *g) /* dx where lo <= x <= hi (PyTorch) */
{
    kn_scratch s = {0};
    const kn_unary_attrs *at = g->attrs;
    kn_tensor *x = g->in[0];
    kn_tensor *m = K(kn_logical_and(K(kn__with_scalar(kn_ge, x, at->alpha)),
                                    K(kn__with_scalar(kn_le, x, at->beta))));
    return grad_done(g, &s, K(where_zero(m, g->grad_out[0], false)));
}
KN_UNARY_OP(clip, KN_DTYPES_FLOAT | KN_DTYPES_INT, clip_infer, clip_grad, clip_schema, 2,
            KN_AMP_NONE, clip_fns);
kn_tensor *kn_clip(kn_tensor *x, double lo, double hi)
{
    kn_unary_attrs at = {lo, hi};
    return kn__unary_call(&kn_op_clip, x, &at);
}

/* ----------------------------------------------------------- predicates */
/* Predicates are not differentiable: no grad function, nothing recorded. */
UNARY_FNS(isnan, (float)isnan(x), (double)isnan(x))
UNARY_INT(isnan, 0)
static const kn_unary_fn isnan_fns = {isnan_f, isnan_d, isnan_i, KN_EW_BOOL};
KN_UNARY_OP(isnan, KN_DTYPES_ALL, kn__unary_infer, NULL, NULL, 0, KN_AMP_NONE, isnan_fns);
kn_tensor *kn_isnan(kn_tensor *x)
{
    return kn__unary_call(&kn_op_isnan, x, NULL);
}

UNARY_FNS(isinf, (float)isinf(x), (double)isinf(x))
UNARY_INT(isinf, 0)
static const kn_unary_fn isinf_fns = {isinf_f, isinf_d, isinf_i, KN_EW_BOOL};
KN_UNARY_OP(isinf, KN_DTYPES_ALL, kn__unary_infer, NULL, NULL, 0, KN_AMP_NONE, isinf_fns);
kn_tensor *kn_isinf(kn_tensor *x)
{
    return kn__unary_call(&kn_op_isinf, x, NULL);
}

/* NaN counts as true, so logical_not(NaN) is false */
UNARY_FNS(logical_not, (float)(x == 0), (double)(x == 0))
UNARY_INT(logical_not, x == 0)
static const kn_unary_fn logical_not_fns = {logical_not_f, logical_not_d, logical_not_i,
                                            KN_EW_BOOL};
KN_UNARY_OP(logical_not, KN_DTYPES_ALL, kn__unary_infer, NULL, NULL, 0, KN_AMP_NONE,
            logical_not_fns);
kn_tensor *kn_logical_not(kn_tensor *x)
{
    return kn__unary_call(&kn_op_logical_not, x, NULL);
}
