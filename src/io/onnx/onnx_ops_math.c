/* onnx_ops_math.c — ONNX node converters for math ops: elementwise unary and
 * binary arithmetic, comparisons, logic, activations, Clip, Where, Cast,
 * softmax-like ops, reductions, ArgMax/ArgMin, CumSum, MatMul and the
 * quantized matmul/conv ops, quantization, NLL / softmax cross-entropy
 * losses, windows, DFT/STFT/MelWeightMatrix, TfIdfVectorizer, the preview
 * training optimizers, Det and Einsum. Each converter composes public kiln
 * ops (include/kiln.h); see onnx_internal.h for the interface. Where kiln's
 * op differs from ONNX (integer division, dtypes of integer reductions,
 * select_last_index, ...) the converter composes the ONNX meaning; nodes of
 * opsets before 7 arrive rewritten by the loader (onnx_legacy.c). */
#if KILN_HAVE_ONNX
#include "onnx_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------- scratch
 * Temporaries of one converter: keep() records a new reference (NULL
 * passes through, so failures chain: kiln ops given NULL keep the first
 * error in their message); done() hands the result out and frees the rest. */
#define MAX_TMP 64
typedef struct tmps {
    kn_tensor *t[MAX_TMP];
    int n;
} tmps;

static kn_tensor *keep(tmps *s, kn_tensor *t)
{
    if (!t) return NULL;
    if (s->n == MAX_TMP) {
        kn_tensor_unref(t);
        kn_set_error(KN_ERR_INTERNAL, "onnx: converter used more than %d temporaries", MAX_TMP);
        return NULL;
    }
    s->t[s->n++] = t;
    return t;
}

static void tmps_free(tmps *s)
{
    for (int i = 0; i < s->n; i++)
        kn_tensor_unref(s->t[i]);
    s->n = 0;
}

/* out[0] = r (a kept temporary or NULL), then frees the scratch. */
static kn_status done(kn_onnx_node *n, tmps *s, kn_tensor *r)
{
    kn_status st = KN_OK;
    if (r)
        n->out[0] = kn_tensor_ref(r);
    else
        st = kn_last_status() ? kn_last_status() : KN_ERR_INTERNAL;
    tmps_free(s);
    return st;
}

/* out[0] = t (a new reference or NULL). */
static kn_status set_out(kn_onnx_node *n, kn_tensor *t)
{
    if (!t) return kn_last_status() ? kn_last_status() : KN_ERR_INTERNAL;
    n->out[0] = t;
    return KN_OK;
}

#define K(x) keep(&s, (x))

/* ------------------------------------------------------------- helpers */
static kn_status need_inputs(const kn_onnx_node *n, int count)
{
    for (int i = 0; i < count; i++)
        if (i >= n->n_in || !n->in[i])
            return kn__onnx_fail(n, KN_ERR_ARG, "input %d is missing (%d required)", i, count);
    return KN_OK;
}

static kn_status need_float(const kn_onnx_node *n, const kn_tensor *x, const char *what)
{
    kn_dtype dt = kn_tensor_dtype(x);
    if (kn_dtype_is_float(dt)) return KN_OK;
    return kn__onnx_fail(n, KN_ERR_DTYPE, "%s is %s, expected a floating-point tensor", what,
                         kn_dtype_name(dt));
}

static kn_tensor *scalar_like(tmps *sc, const kn_tensor *x, double v)
{
    return keep(sc, kn_tensor_scalar(kn_tensor_dtype(x), v));
}

/* t cast to dt (t itself when it already has that dtype). */
static kn_tensor *cast_to(tmps *sc, kn_tensor *t, kn_dtype dt)
{
    if (!t || kn_tensor_dtype(t) == dt) return t;
    return keep(sc, kn_cast(t, dt));
}

/* x reversed along axis. */
static kn_tensor *flip(tmps *sc, kn_tensor *x, int axis)
{
    if (!x) return NULL;
    int64_t d = kn_tensor_dim(x, axis);
    kn_tensor *idx = keep(sc, kn_tensor_arange(KN_I64, (double)d - 1, -1, -1));
    return idx ? keep(sc, kn_index_select(x, axis, idx)) : NULL;
}

/* An attribute straight from the proto, for check functions. */
static const Onnx__AttributeProto *proto_attr(const Onnx__NodeProto *node, const char *name)
{
    for (size_t i = 0; i < node->n_attribute; i++)
        if (node->attribute[i]->name && !strcmp(node->attribute[i]->name, name))
            return node->attribute[i];
    return NULL;
}

static bool is_float_dtype(const kn_tensor *x)
{
    return kn_dtype_is_float(kn_tensor_dtype(x));
}

/* ============================================================ binary ops
 * numpy broadcasting (opsets before 7 reach here with their legacy
 * broadcast/axis already rewritten by the loader, onnx_legacy.c). */
typedef kn_tensor *(*binary_fn)(kn_tensor *, kn_tensor *);

static kn_status binary(kn_onnx_node *n, binary_fn fn)
{
    kn_status st = need_inputs(n, 2);
    if (st) return st;
    return set_out(n, fn(n->in[0], n->in[1]));
}

#define BINARY(cname, fn)                                                                          \
    static kn_status cname(kn_onnx_node *n)                                                        \
    {                                                                                              \
        return binary(n, fn);                                                                      \
    }
BINARY(cv_add, kn_add)
BINARY(cv_sub, kn_sub)
BINARY(cv_mul, kn_mul)
BINARY(cv_equal, kn_eq)
BINARY(cv_less, kn_lt)
BINARY(cv_less_equal, kn_le)
BINARY(cv_greater, kn_gt)
BINARY(cv_greater_equal, kn_ge)
BINARY(cv_and, kn_logical_and)
BINARY(cv_or, kn_logical_or)
BINARY(cv_xor, kn_logical_xor)

/* Integer division truncates toward zero (C, ONNX Runtime; numpy's floor
 * for unsigned inputs): computed in f64, exact for |a| < 2^53. */
static kn_tensor *int_div(tmps *sc, kn_tensor *a, kn_tensor *b, kn_dtype dt)
{
    kn_tensor *q = keep(sc, kn_div(cast_to(sc, a, KN_F64), cast_to(sc, b, KN_F64)));
    return cast_to(sc, keep(sc, kn_trunc(q)), dt);
}

static kn_status cv_div(kn_onnx_node *n)
{
    kn_status st = need_inputs(n, 2);
    if (st) return st;
    kn_tensor *a = n->in[0], *b = n->in[1];
    kn_dtype dt = kn_dtype_promote(kn_tensor_dtype(a), kn_tensor_dtype(b));
    if (kn_dtype_is_float(dt)) return set_out(n, kn_div(a, b));
    tmps s = {0};
    return done(n, &s, int_div(&s, a, b, dt));
}

/* Pow: the output has the base's dtype (the exponent's may differ from
 * opset 12); an integer base with a float exponent is computed in f64. */
static kn_status cv_pow(kn_onnx_node *n)
{
    kn_status st = need_inputs(n, 2);
    if (st) return st;
    kn_tensor *a = n->in[0], *b = n->in[1];
    kn_dtype dt = kn_tensor_dtype(a);
    if (dt == KN_BOOL || kn_tensor_dtype(b) == KN_BOOL)
        return kn__onnx_fail(n, KN_ERR_DTYPE, "bool operands are not supported");
    tmps s = {0};
    /* x^2 with a constant exponent (LayerNorm as exported at opset < 17:
     * Pow(x - mean, 2)) is x * x, the same bits and far cheaper than pow;
     * b's size-1 dims broadcast into a's shape when b has no more dims */
    double e = 0;
    if (kn_dtype_is_float(dt) && !kn_tensor_is_symbolic(b) && kn_tensor_numel(b) == 1 &&
        kn_tensor_ndim(b) <= kn_tensor_ndim(a) && kn_tensor_item(b, &e) == KN_OK && e == 2.0)
        return set_out(n, kn_mul(a, a));
    if (!kn_dtype_is_float(dt) && is_float_dtype(b)) {
        a = cast_to(&s, a, KN_F64);
        b = cast_to(&s, b, KN_F64);
    }
    return done(n, &s, cast_to(&s, K(kn_pow(a, b)), dt));
}

/* Mod: fmod=1 is C's fmod (the dividend's sign); fmod=0 the integer modulo
 * with the divisor's sign (numpy.mod): fmod, plus b where the signs differ. */
static kn_status cv_mod(kn_onnx_node *n)
{
    kn_status st = need_inputs(n, 2);
    if (st) return st;
    tmps s = {0};
    kn_tensor *a = n->in[0], *b = n->in[1];
    kn_tensor *r = K(kn_fmod(a, b));
    if (kn__onnx_attr_int(n, "fmod", 0) || !r) return done(n, &s, r);
    kn_tensor *zr = scalar_like(&s, r, 0), *zb = scalar_like(&s, b, 0);
    kn_tensor *nonzero = K(kn_ne(r, zr));
    kn_tensor *signs = K(kn_logical_xor(K(kn_lt(r, zr)), K(kn_lt(b, zb))));
    kn_tensor *fix = K(kn_logical_and(nonzero, signs));
    return done(n, &s, K(kn_where(fix, K(kn_add(r, b)), r)));
}

/* BitShift on uint8 (kiln's only unsigned dtype): left is x * 2^y wrapping
 * in uint8; right is floor(x / 2^y) in f64 (exact). */
static kn_status cv_bitshift(kn_onnx_node *n)
{
    kn_status st = need_inputs(n, 2);
    if (st) return st;
    kn_tensor *x = n->in[0], *y = n->in[1];
    if (kn_tensor_dtype(x) != KN_U8 || kn_tensor_dtype(y) != KN_U8)
        return kn__onnx_fail(n, KN_ERR_DTYPE, "inputs are %s and %s, kiln supports uint8 only",
                             kn_dtype_name(kn_tensor_dtype(x)), kn_dtype_name(kn_tensor_dtype(y)));
    char buf[16];
    const char *dir = kn__onnx_attr_string(n, "direction", "", buf, sizeof buf);
    tmps s = {0};
    if (!strcmp(dir, "LEFT")) {
        kn_tensor *p = K(kn_pow(scalar_like(&s, x, 2), y));
        return done(n, &s, K(kn_mul(x, p)));
    }
    kn_tensor *p = K(kn_pow(K(kn_tensor_scalar(KN_F64, 2)), cast_to(&s, y, KN_F64)));
    kn_tensor *q = K(kn_floor(K(kn_div(cast_to(&s, x, KN_F64), p))));
    return done(n, &s, cast_to(&s, q, KN_U8));
}

static bool check_bitshift(const Onnx__NodeProto *node, int opset, char *why, size_t size)
{
    (void)opset;
    const Onnx__AttributeProto *a = proto_attr(node, "direction");
    if (a && a->has_s &&
        ((a->s.len == 4 && !memcmp(a->s.data, "LEFT", 4)) ||
         (a->s.len == 5 && !memcmp(a->s.data, "RIGHT", 5))))
        return true;
    snprintf(why, size, "direction must be \"LEFT\" or \"RIGHT\"");
    return false;
}

/* ----------------------------------------------------- variadic Max & co
 * All inputs broadcast together (from opset 8; equal shapes before). */
static kn_status variadic(kn_onnx_node *n, binary_fn fn, bool mean)
{
    if (n->n_in < 1) return kn__onnx_fail(n, KN_ERR_ARG, "needs at least one input");
    kn_status st = need_inputs(n, n->n_in);
    if (st) return st;
    if (mean && (st = need_float(n, n->in[0], "input 0"))) return st;
    if (n->n_in == 1) return set_out(n, kn_tensor_ref(n->in[0]));
    tmps s = {0};
    kn_tensor *acc = n->in[0];
    for (int i = 1; i < n->n_in && acc; i++)
        acc = K(fn(acc, n->in[i]));
    if (mean && acc) acc = K(kn_div(acc, scalar_like(&s, acc, n->n_in)));
    return done(n, &s, acc);
}

static kn_status cv_max(kn_onnx_node *n)
{
    return variadic(n, kn_maximum, false);
}
static kn_status cv_min(kn_onnx_node *n)
{
    return variadic(n, kn_minimum, false);
}
static kn_status cv_sum(kn_onnx_node *n)
{
    return variadic(n, kn_add, false);
}
static kn_status cv_mean(kn_onnx_node *n)
{
    return variadic(n, kn_add, true);
}

/* ============================================================ unary ops */
typedef kn_tensor *(*unary_fn)(kn_tensor *);

static kn_status unary(kn_onnx_node *n, unary_fn fn, bool float_only)
{
    kn_status st = need_inputs(n, 1);
    if (!st && float_only) st = need_float(n, n->in[0], "the input");
    return st ? st : set_out(n, fn(n->in[0]));
}

#define UNARY(cname, fn, float_only)                                                               \
    static kn_status cname(kn_onnx_node *n)                                                        \
    {                                                                                              \
        return unary(n, fn, float_only);                                                           \
    }
UNARY(cv_abs, kn_abs, false)
UNARY(cv_neg, kn_neg, false)
UNARY(cv_sign, kn_sign, false)
UNARY(cv_floor, kn_floor, false)
UNARY(cv_ceil, kn_ceil, false)
UNARY(cv_round, kn_round, false) /* half to even, as ONNX */
UNARY(cv_relu, kn_relu, false)
UNARY(cv_not, kn_logical_not, false)
UNARY(cv_isnan, kn_isnan, false)
UNARY(cv_sqrt, kn_sqrt, true)
UNARY(cv_reciprocal, kn_reciprocal, true)
UNARY(cv_exp, kn_exp, true)
UNARY(cv_log, kn_log, true)
UNARY(cv_erf, kn_erf, true)
UNARY(cv_sin, kn_sin, true)
UNARY(cv_cos, kn_cos, true)
UNARY(cv_tan, kn_tan, true)
UNARY(cv_tanh, kn_tanh, true)
UNARY(cv_sigmoid, kn_sigmoid, true)
UNARY(cv_softsign, kn_softsign, true)
UNARY(cv_hardswish, kn_hard_swish, true)

/* ---- inverse and hyperbolic trigonometry, composed in forms that keep
 * relative precision near 0 (expm1, log1p). */
typedef enum trig { T_ASIN, T_ACOS, T_ATAN, T_SINH, T_COSH, T_ASINH, T_ACOSH, T_ATANH } trig;

/* sqrt((1 - x)(1 + x)) */
static kn_tensor *sqrt_1mx2(tmps *sc, kn_tensor *x)
{
    kn_tensor *one = scalar_like(sc, x, 1);
    return keep(sc, kn_sqrt(keep(sc, kn_mul(keep(sc, kn_sub(one, x)), keep(sc, kn_add(one, x))))));
}

static kn_tensor *trig_of(tmps *sc, kn_tensor *x, trig k)
{
    kn_tensor *one = scalar_like(sc, x, 1);
    switch (k) {
    case T_ASIN: /* atan2(x, sqrt(1 - x^2)) */
        return keep(sc, kn_atan2(x, sqrt_1mx2(sc, x)));
    case T_ACOS: /* atan2(sqrt(1 - x^2), x) */
        return keep(sc, kn_atan2(sqrt_1mx2(sc, x), x));
    case T_ATAN: {
        kn_tensor *ones = keep(sc, kn_add(keep(sc, kn_mul(x, scalar_like(sc, x, 0))), one));
        return keep(sc, kn_atan2(x, ones));
    }
    case T_SINH:   /* (expm1(x) - expm1(-x)) / 2 */
    case T_COSH: { /* (e^x + e^-x) / 2 */
        unary_fn e = k == T_SINH ? kn_expm1 : kn_exp;
        kn_tensor *p = keep(sc, e(x)), *m = keep(sc, e(keep(sc, kn_neg(x))));
        kn_tensor *t = keep(sc, k == T_SINH ? kn_sub(p, m) : kn_add(p, m));
        return keep(sc, kn_mul(t, scalar_like(sc, x, 0.5)));
    }
    case T_ASINH: { /* sign(x) log1p(|x| + x^2 / (1 + sqrt(1 + x^2))) */
        kn_tensor *a = keep(sc, kn_abs(x)), *x2 = keep(sc, kn_mul(x, x));
        kn_tensor *r = keep(sc, kn_add(one, keep(sc, kn_sqrt(keep(sc, kn_add(x2, one))))));
        kn_tensor *l = keep(sc, kn_log1p(keep(sc, kn_add(a, keep(sc, kn_div(x2, r))))));
        return keep(sc, kn_mul(keep(sc, kn_sign(x)), l));
    }
    case T_ACOSH: { /* log(x + sqrt((x - 1)(x + 1))) */
        kn_tensor *r = keep(sc, kn_mul(keep(sc, kn_sub(x, one)), keep(sc, kn_add(x, one))));
        return keep(sc, kn_log(keep(sc, kn_add(x, keep(sc, kn_sqrt(r))))));
    }
    case T_ATANH: /* log1p(2x / (1 - x)) / 2 */
    default: {
        kn_tensor *q = keep(sc, kn_div(keep(sc, kn_add(x, x)), keep(sc, kn_sub(one, x))));
        return keep(sc, kn_mul(keep(sc, kn_log1p(q)), scalar_like(sc, x, 0.5)));
    }
    }
}

static kn_status trig_op(kn_onnx_node *n, trig k)
{
    kn_status st = need_inputs(n, 1);
    if (!st) st = need_float(n, n->in[0], "the input");
    if (st) return st;
    tmps s = {0};
    return done(n, &s, trig_of(&s, n->in[0], k));
}

#define TRIG(cname, k)                                                                             \
    static kn_status cname(kn_onnx_node *n)                                                        \
    {                                                                                              \
        return trig_op(n, k);                                                                      \
    }
TRIG(cv_asin, T_ASIN)
TRIG(cv_acos, T_ACOS)
TRIG(cv_atan, T_ATAN)
TRIG(cv_sinh, T_SINH)
TRIG(cv_cosh, T_COSH)
TRIG(cv_asinh, T_ASINH)
TRIG(cv_acosh, T_ACOSH)
TRIG(cv_atanh, T_ATANH)

/* IsInf with detect_positive / detect_negative. */
static kn_status cv_isinf(kn_onnx_node *n)
{
    kn_status st = need_inputs(n, 1);
    if (st) return st;
    kn_tensor *x = n->in[0];
    bool pos = kn__onnx_attr_int(n, "detect_positive", 1) != 0;
    bool neg = kn__onnx_attr_int(n, "detect_negative", 1) != 0;
    if (pos && neg) return set_out(n, kn_isinf(x));
    tmps s = {0};
    kn_tensor *inf = K(kn_isinf(x)), *z = scalar_like(&s, x, 0);
    kn_tensor *side = pos ? K(kn_gt(x, z)) : neg ? K(kn_lt(x, z)) : K(kn_tensor_scalar(KN_BOOL, 0));
    return done(n, &s, K(kn_logical_and(inf, side)));
}

/* ============================================================ activations */
static kn_status float_input(kn_onnx_node *n)
{
    kn_status st = need_inputs(n, 1);
    return st ? st : need_float(n, n->in[0], "the input");
}

static kn_status cv_leaky_relu(kn_onnx_node *n)
{
    kn_status st = float_input(n);
    return st ? st : set_out(n, kn_leaky_relu(n->in[0], kn__onnx_attr_float(n, "alpha", 0.01f)));
}

static kn_status cv_elu(kn_onnx_node *n)
{
    kn_status st = float_input(n);
    return st ? st : set_out(n, kn_elu(n->in[0], kn__onnx_attr_float(n, "alpha", 1.0f)));
}

/* gamma * elu(x, alpha), ONNX's defaults being the float32 SELU constants */
static kn_status cv_selu(kn_onnx_node *n)
{
    kn_status st = float_input(n);
    if (st) return st;
    double alpha = kn__onnx_attr_float(n, "alpha", 1.67326319217681884765625f);
    double gamma = kn__onnx_attr_float(n, "gamma", 1.05070102214813232421875f);
    tmps s = {0};
    return done(n, &s, K(kn_mul_scalar(K(kn_elu(n->in[0], alpha)), gamma)));
}

/* celu(x) = alpha * elu(x / alpha, 1) */
static kn_status cv_celu(kn_onnx_node *n)
{
    kn_status st = float_input(n);
    if (st) return st;
    double alpha = kn__onnx_attr_float(n, "alpha", 1.0f);
    if (alpha == 0) return kn__onnx_fail(n, KN_ERR_ARG, "alpha is 0");
    tmps s = {0};
    kn_tensor *e = K(kn_elu(K(kn_mul_scalar(n->in[0], 1.0 / alpha)), 1.0));
    return done(n, &s, K(kn_mul_scalar(e, alpha)));
}

static kn_status cv_hard_sigmoid(kn_onnx_node *n)
{
    kn_status st = float_input(n);
    if (st) return st;
    double alpha = kn__onnx_attr_float(n, "alpha", 0.2f),
           beta = kn__onnx_attr_float(n, "beta", 0.5f);
    return set_out(n, kn_hard_sigmoid(n->in[0], alpha, beta));
}

/* log(1 + e^x); past x = 20 the difference from x is below 3e-9 relative */
static kn_status cv_softplus(kn_onnx_node *n)
{
    kn_status st = float_input(n);
    return st ? st : set_out(n, kn_softplus(n->in[0], 1.0, 20.0));
}

static kn_status cv_thresholded_relu(kn_onnx_node *n)
{
    kn_status st = float_input(n);
    if (st) return st;
    kn_tensor *x = n->in[0];
    tmps s = {0};
    kn_tensor *m = K(kn_gt(x, scalar_like(&s, x, kn__onnx_attr_float(n, "alpha", 1.0f))));
    return done(n, &s, K(kn_where(m, x, scalar_like(&s, x, 0))));
}

/* PRelu: slope broadcasts onto x (numpy, unidirectional); the per-channel
 * slope of opsets before 7 is reshaped by the loader. */
static kn_status cv_prelu(kn_onnx_node *n)
{
    kn_status st = need_inputs(n, 2);
    if (st) return st;
    kn_tensor *x = n->in[0], *slope = n->in[1];
    tmps s = {0};
    kn_tensor *neg = K(kn_lt(x, scalar_like(&s, x, 0)));
    return done(n, &s, K(kn_where(neg, K(kn_mul(x, slope)), x)));
}

/* Clip: min/max attributes before opset 11, optional inputs after. Constant
 * bounds use kiln's clip; graph values use maximum/minimum (same order: a
 * min above max gives max). */
/* Clip with known bounds; [0, 6] and [0, inf) on floats become relu6 and
 * relu, which the graph passes fuse into a preceding conv or GEMM. */
static kn_tensor *clip_known(kn_tensor *x, double lo, double hi)
{
    bool fl = kn_dtype_is_float(kn_tensor_dtype(x));
    if (fl && lo == 0 && hi == 6) return kn_relu6(x);
    if (fl && lo == 0 && isinf(hi) && hi > 0) return kn_relu(x);
    return kn_clip(x, lo, hi);
}

static kn_status cv_clip(kn_onnx_node *n)
{
    kn_status st = need_inputs(n, 1);
    if (st) return st;
    kn_tensor *x = n->in[0];
    if (n->opset < 11)
        return set_out(n, clip_known(x, kn__onnx_attr_float(n, "min", -INFINITY),
                                     kn__onnx_attr_float(n, "max", INFINITY)));
    kn_tensor *lo = n->n_in > 1 ? n->in[1] : NULL, *hi = n->n_in > 2 ? n->in[2] : NULL;
    bool lo_c = !lo || kn__onnx_is_const(lo), hi_c = !hi || kn__onnx_is_const(hi);
    for (int i = 1; i < 3 && i < n->n_in; i++)
        if (n->in[i] && kn_tensor_numel(n->in[i]) != 1)
            return kn__onnx_fail(n, KN_ERR_SHAPE, "input %d (%s) has %lld elements, expected 1", i,
                                 i == 1 ? "min" : "max", (long long)kn_tensor_numel(n->in[i]));
    if (lo_c && hi_c) {
        double l = -INFINITY, h = INFINITY;
        if (lo && (st = kn_tensor_item(lo, &l))) return st;
        if (hi && (st = kn_tensor_item(hi, &h))) return st;
        return set_out(n, clip_known(x, l, h));
    }
    tmps s = {0};
    kn_tensor *r = x;
    if (lo) r = K(kn_maximum(r, cast_to(&s, lo, kn_tensor_dtype(x))));
    if (hi && r) r = K(kn_minimum(r, cast_to(&s, hi, kn_tensor_dtype(x))));
    return done(n, &s, r);
}

static kn_status cv_where(kn_onnx_node *n)
{
    kn_status st = need_inputs(n, 3);
    return st ? st : set_out(n, kn_where(n->in[0], n->in[1], n->in[2]));
}

/* ================================================================== Cast */
static const char *const onnx_type_names[] = {
    "UNDEFINED", "FLOAT",  "UINT8",     "INT8",       "UINT16",   "INT16",
    "INT32",     "INT64",  "STRING",    "BOOL",       "FLOAT16",  "DOUBLE",
    "UINT32",    "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16",
};
#define N_ONNX_TYPES ((int)(sizeof onnx_type_names / sizeof onnx_type_names[0]))

/* The ONNX type in `to` (an int from opset 6, the loader refuses older
 * Casts), or -1 when absent or not an int. */
static int32_t cast_target(const Onnx__AttributeProto *a)
{
    if (!a || a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT) return -1;
    return a->i >= 0 && a->i <= INT32_MAX ? (int32_t)a->i : -1;
}

static bool check_cast(const Onnx__NodeProto *node, int opset, char *why, size_t size)
{
    (void)opset;
    int32_t t = cast_target(proto_attr(node, "to"));
    kn_dtype dt;
    if (t < 0) {
        snprintf(why, size, "attribute 'to' is missing or not an int");
        return false;
    }
    if (!kn__onnx_dtype(t, &dt)) {
        snprintf(why, size, "to=%s: kiln has no such dtype",
                 t < N_ONNX_TYPES ? onnx_type_names[t] : "unknown");
        return false;
    }
    if (dt == KN_STRING) { /* kiln's string tensors only pass through models */
        snprintf(why, size, "to=STRING: kiln does not convert numbers to text");
        return false;
    }
    return true;
}

static kn_status cv_cast(kn_onnx_node *n)
{
    kn_status st = need_inputs(n, 1);
    if (st) return st;
    int32_t t = cast_target(kn__onnx_attr(n, "to"));
    kn_dtype dt;
    if (t < 0 || !kn__onnx_dtype(t, &dt))
        return kn__onnx_fail(n, KN_ERR_UNSUPPORTED, "cast to ONNX type %d is not supported",
                             (int)t);
    return set_out(n, kn_cast(n->in[0], dt));
}

static kn_status cv_castlike(kn_onnx_node *n)
{
    kn_status st = need_inputs(n, 2);
    return st ? st : set_out(n, kn_cast(n->in[0], kn_tensor_dtype(n->in[1])));
}

/* ================================================ Softmax, LogSoftmax, Hardmax
 * Before opset 13 the input is seen as 2-D, (prod dims[:axis], prod
 * dims[axis:]), default axis 1; from 13 one axis, default -1. */
typedef enum smax { S_SOFTMAX, S_LOG_SOFTMAX, S_HARDMAX } smax;

/* one-hot of the first maximum along axis, in x's dtype */
static kn_tensor *hardmax(tmps *sc, kn_tensor *x, int axis)
{
    int r = kn_tensor_ndim(x);
    int64_t d = kn_tensor_dim(x, axis), shape[KN_MAX_DIMS];
    kn_tensor *idx = keep(sc, kn_argmax(x, axis, true));
    kn_tensor *ar = keep(sc, kn_tensor_arange(KN_I64, 0, (double)d, 1));
    shape[0] = d;
    for (int i = 1; i < r - axis; i++)
        shape[i] = 1;
    ar = ar ? keep(sc, kn_reshape(ar, r - axis, shape)) : NULL;
    return cast_to(sc, keep(sc, kn_eq(ar, idx)), kn_tensor_dtype(x));
}

static kn_tensor *smax_apply(tmps *sc, kn_tensor *x, int axis, smax k)
{
    switch (k) {
    case S_SOFTMAX:
        return keep(sc, kn_softmax(x, axis));
    case S_LOG_SOFTMAX:
        return keep(sc, kn_log_softmax(x, axis));
    default:
        return hardmax(sc, x, axis);
    }
}

static kn_status smax_op(kn_onnx_node *n, smax k)
{
    kn_status st = float_input(n);
    if (st) return st;
    kn_tensor *x = n->in[0];
    int r = kn_tensor_ndim(x), axis;
    if ((st = kn__onnx_axis(n, kn__onnx_attr_int(n, "axis", n->opset < 13 ? 1 : -1), r, &axis)))
        return st;
    tmps s = {0};
    if (n->opset >= 13 || axis == r - 1) return done(n, &s, smax_apply(&s, x, axis, k));
    const int64_t *shape = kn_tensor_shape(x);
    int64_t two[2] = {1, 1};
    for (int d = 0; d < r; d++)
        two[d < axis ? 0 : 1] *= shape[d];
    kn_tensor *y = smax_apply(&s, K(kn_reshape(x, 2, two)), 1, k);
    return done(n, &s, y ? K(kn_reshape(y, r, shape)) : NULL);
}

static kn_status cv_softmax(kn_onnx_node *n)
{
    return smax_op(n, S_SOFTMAX);
}
static kn_status cv_log_softmax(kn_onnx_node *n)
{
    return smax_op(n, S_LOG_SOFTMAX);
}
static kn_status cv_hardmax(kn_onnx_node *n)
{
    return smax_op(n, S_HARDMAX);
}

/* ============================================================ reductions
 * axes: an attribute, except ReduceSum from opset 13 (an optional input,
 * with noop_with_empty_axes); none means all. keepdims defaults to 1. The
 * output keeps the input's dtype: kiln's integer sums (i64) are cast back,
 * and ops kiln has for floats only run in f64 for integer inputs. */
typedef enum rkind {
    R_SUM,
    R_MEAN,
    R_MAX,
    R_MIN,
    R_PROD,
    R_L1,
    R_L2,
    R_LOGSUM,
    R_LSE,
    R_SUMSQ
} rkind;

typedef struct raxes {
    int axes[KN_MAX_DIMS];
    int n;
    bool keepdims, noop;
} raxes;

static kn_status reduce_axes(kn_onnx_node *n, bool axes_input, raxes *r)
{
    int rank = kn_tensor_ndim(n->in[0]), cnt = 0;
    int64_t v[KN_MAX_DIMS];
    kn_status st = KN_OK;
    r->keepdims = kn__onnx_attr_int(n, "keepdims", 1) != 0;
    r->noop = false;
    if (axes_input) {
        kn_tensor *a = n->n_in > 1 ? n->in[1] : NULL;
        if (a && kn_tensor_numel(a) > 0) st = kn__onnx_const_ints(n, 1, v, KN_MAX_DIMS, &cnt);
        r->noop = cnt == 0 && kn__onnx_attr_int(n, "noop_with_empty_axes", 0) != 0;
    } else {
        cnt = kn__onnx_attr_ints(n, "axes", v, KN_MAX_DIMS);
        if (cnt > KN_MAX_DIMS)
            return kn__onnx_fail(n, KN_ERR_ARG, "%d axes, at most %d allowed", cnt, KN_MAX_DIMS);
        if (cnt < 0) cnt = 0;
    }
    if (st) return st;
    r->n = cnt;
    for (int i = 0; i < cnt; i++) {
        if ((st = kn__onnx_axis(n, v[i], rank, &r->axes[i]))) return st;
        for (int j = 0; j < i; j++)
            if (r->axes[j] == r->axes[i])
                return kn__onnx_fail(n, KN_ERR_ARG, "axis %d is given twice", r->axes[i]);
    }
    return KN_OK;
}

static kn_tensor *reduce_apply(tmps *sc, kn_tensor *x, rkind k, const raxes *r)
{
    int na = r->n;
    const int *ax = r->axes;
    bool kd = r->keepdims, fl = is_float_dtype(x);
    switch (k) {
    case R_SUM:
        return keep(sc, kn_sum(x, na, ax, kd));
    case R_MEAN:
        return keep(sc, kn_mean(x, na, ax, kd));
    case R_MAX:
        return keep(sc, kn_max(x, na, ax, kd));
    case R_MIN:
        return keep(sc, kn_min(x, na, ax, kd));
    case R_PROD:
        return keep(sc, kn_prod(x, na, ax, kd));
    case R_L1:
        return fl ? keep(sc, kn_norm(x, 1, na, ax, kd))
                  : keep(sc, kn_sum(keep(sc, kn_abs(x)), na, ax, kd));
    case R_L2:
        return keep(sc, kn_norm(x, 2, na, ax, kd));
    case R_LOGSUM:
        return keep(sc, kn_log(keep(sc, kn_sum(x, na, ax, kd))));
    case R_LSE:
        return keep(sc, kn_logsumexp(x, na, ax, kd));
    case R_SUMSQ:
    default:
        return keep(sc, kn_sum(keep(sc, kn_square(x)), na, ax, kd));
    }
}

static kn_status reduce_op(kn_onnx_node *n, rkind k)
{
    kn_status st = need_inputs(n, 1);
    if (st) return st;
    kn_tensor *x = n->in[0];
    kn_dtype dt = kn_tensor_dtype(x);
    if (dt == KN_BOOL) return kn__onnx_fail(n, KN_ERR_DTYPE, "bool input is not supported");
    raxes r;
    if ((st = reduce_axes(n, k == R_SUM && n->opset >= 13, &r))) return st;
    if (r.noop) return set_out(n, kn_tensor_ref(x));
    tmps s = {0};
    bool float_op = k == R_MEAN || k == R_L2 || k == R_LOGSUM || k == R_LSE;
    kn_tensor *xc = float_op && !kn_dtype_is_float(dt) ? K(kn_cast(x, KN_F64)) : x;
    kn_tensor *y = xc ? reduce_apply(&s, xc, k, &r) : NULL;
    return done(n, &s, cast_to(&s, y, dt));
}

#define REDUCE(cname, k)                                                                           \
    static kn_status cname(kn_onnx_node *n)                                                        \
    {                                                                                              \
        return reduce_op(n, k);                                                                    \
    }
REDUCE(cv_reduce_sum, R_SUM)
REDUCE(cv_reduce_mean, R_MEAN)
REDUCE(cv_reduce_max, R_MAX)
REDUCE(cv_reduce_min, R_MIN)
REDUCE(cv_reduce_prod, R_PROD)
REDUCE(cv_reduce_l1, R_L1)
REDUCE(cv_reduce_l2, R_L2)
REDUCE(cv_reduce_log_sum, R_LOGSUM)
REDUCE(cv_reduce_log_sum_exp, R_LSE)
REDUCE(cv_reduce_sum_square, R_SUMSQ)

/* ArgMax/ArgMin: axis (default 0), keepdims (default 1), select_last_index
 * (opset 12): the first best of the reversed axis, counted from the end. */
static kn_status arg_op(kn_onnx_node *n, bool is_max)
{
    kn_status st = need_inputs(n, 1);
    if (st) return st;
    kn_tensor *x = n->in[0];
    int axis;
    if ((st = kn__onnx_axis(n, kn__onnx_attr_int(n, "axis", 0), kn_tensor_ndim(x), &axis)))
        return st;
    bool kd = kn__onnx_attr_int(n, "keepdims", 1) != 0;
    bool last = n->opset >= 12 && kn__onnx_attr_int(n, "select_last_index", 0) != 0;
    kn_tensor *(*fn)(kn_tensor *, int, bool) = is_max ? kn_argmax : kn_argmin;
    if (!last) return set_out(n, fn(x, axis, kd));
    tmps s = {0};
    kn_tensor *idx = K(fn(flip(&s, x, axis), axis, kd));
    kn_tensor *top = K(kn_tensor_scalar(KN_I64, (double)(kn_tensor_dim(x, axis) - 1)));
    return done(n, &s, idx ? K(kn_sub(top, idx)) : NULL);
}

static kn_status cv_argmax(kn_onnx_node *n)
{
    return arg_op(n, true);
}
static kn_status cv_argmin(kn_onnx_node *n)
{
    return arg_op(n, false);
}

/* CumSum: axis is a (constant) input; exclusive shifts the input by one
 * along the axis first, reverse flips around the sum. */
static kn_status cv_cumsum(kn_onnx_node *n)
{
    kn_status st = need_inputs(n, 2);
    if (st) return st;
    kn_tensor *x = n->in[0];
    int64_t a = 0;
    int cnt = 0, axis, r = kn_tensor_ndim(x);
    if ((st = kn__onnx_const_ints(n, 1, &a, 1, &cnt))) return st;
    if (cnt != 1) return kn__onnx_fail(n, KN_ERR_ARG, "axis has %d values, expected 1", cnt);
    if ((st = kn__onnx_axis(n, a, r, &axis))) return st;
    bool excl = kn__onnx_attr_int(n, "exclusive", 0) != 0;
    bool rev = kn__onnx_attr_int(n, "reverse", 0) != 0;
    tmps s = {0};
    kn_tensor *t = rev ? flip(&s, x, axis) : x;
    if (excl && t) {
        int64_t pads[2 * KN_MAX_DIMS] = {0};
        pads[2 * axis] = 1;
        t = K(kn_narrow(K(kn_pad(t, pads, KN_PAD_CONSTANT, 0)), axis, 0, kn_tensor_dim(x, axis)));
    }
    t = t ? cast_to(&s, K(kn_cumsum(t, axis)), kn_tensor_dtype(x)) : NULL;
    return done(n, &s, rev ? flip(&s, t, axis) : t);
}

/* ======================================================= linear algebra */
/* a (..., m, k) · b (k, n) as one (prod(...)·m, k) · (k, n) product: kn_matmul
 * would run it as a batch of m-row products that each stream all of b (an
 * exported Transformer's (seq, batch, hidden) projections have m = batch,
 * often 1). The reshape is a view when a's leading dims merge (a copy
 * otherwise, still far cheaper than the batch). */
static kn_status matmul_folded(kn_onnx_node *n, kn_tensor *a, kn_tensor *b)
{
    int nd = kn_tensor_ndim(a);
    int64_t shape[KN_MAX_DIMS];
    memcpy(shape, kn_tensor_shape(a), sizeof(int64_t) * (size_t)nd);
    int64_t rows[2] = {1, shape[nd - 1]};
    for (int d = 0; d < nd - 1; d++)
        rows[0] *= shape[d];
    tmps s = {0};
    kn_tensor *y = K(kn_matmul(K(kn_reshape(a, 2, rows)), b));
    shape[nd - 1] = kn_tensor_dim(b, 1);
    return done(n, &s, y ? K(kn_reshape(y, nd, shape)) : NULL);
}

/* MatMul with numpy semantics; integer operands go through f64 (exact
 * while sums stay below 2^53). */
static kn_status cv_matmul(kn_onnx_node *n)
{
    kn_status st = need_inputs(n, 2);
    if (st) return st;
    kn_tensor *a = n->in[0], *b = n->in[1];
    if (kn_tensor_ndim(a) < 1 || kn_tensor_ndim(b) < 1)
        return kn__onnx_fail(n, KN_ERR_SHAPE, "operands must have at least 1 dim");
    kn_dtype dt = kn_tensor_dtype(a);
    if (kn_dtype_is_float(dt) && kn_tensor_dtype(b) == dt && kn_tensor_ndim(a) >= 3 &&
        kn_tensor_ndim(b) == 2)
        return matmul_folded(n, a, b);
    if (kn_dtype_is_float(dt) && kn_tensor_dtype(b) == dt) return set_out(n, kn_matmul(a, b));
    if (dt == KN_BOOL || kn_tensor_dtype(b) != dt)
        return kn__onnx_fail(n, KN_ERR_DTYPE, "operands are %s and %s", kn_dtype_name(dt),
                             kn_dtype_name(kn_tensor_dtype(b)));
    tmps s = {0};
    kn_tensor *y = K(kn_matmul(cast_to(&s, a, KN_F64), cast_to(&s, b, KN_F64)));
    return done(n, &s, cast_to(&s, y, dt));
}

/* A per-row quantization parameter of a 2-D-or-more operand given as an
 * (M) vector becomes (M, 1); scalars and N-D shapes broadcast as they are. */
static kn_tensor *per_row(tmps *sc, kn_tensor *q, const kn_tensor *x)
{
    if (q && kn_tensor_ndim(q) == 1 && kn_tensor_numel(q) > 1 && kn_tensor_ndim(x) >= 2)
        return keep(sc, kn_unsqueeze(q, 1));
    return q;
}

/* MatMulInteger: (A - a_zero) · (B - b_zero) in int32; a per-row zero
 * point of A (shape (M)) applies along A's rows. Computed in f64. */
static kn_status cv_matmul_integer(kn_onnx_node *n)
{
    kn_status st = need_inputs(n, 2);
    if (st) return st;
    kn_tensor *a = n->in[0], *b = n->in[1];
    kn_tensor *za = n->n_in > 2 ? n->in[2] : NULL, *zb = n->n_in > 3 ? n->in[3] : NULL;
    if (kn_tensor_ndim(a) < 1 || kn_tensor_ndim(b) < 1)
        return kn__onnx_fail(n, KN_ERR_SHAPE, "operands must have at least 1 dim");
    tmps s = {0};
    kn_tensor *af = cast_to(&s, a, KN_F64), *bf = cast_to(&s, b, KN_F64);
    if (za) af = K(kn_sub(af, per_row(&s, cast_to(&s, za, KN_F64), a)));
    if (zb) bf = K(kn_sub(bf, cast_to(&s, zb, KN_F64)));
    return done(n, &s, cast_to(&s, K(kn_matmul(af, bf)), KN_I32));
}

/* QLinearMatMul: y = saturate(round((a - az) as · (b - bz) bs / ys) + yz),
 * rounding half to even; the integer product is exact in f64, then scaled.
 * y has y_zero_point's dtype (uint8 or int8). */
static kn_status cv_qlinear_matmul(kn_onnx_node *n)
{
    kn_status st = need_inputs(n, 8);
    if (st) return st;
    kn_tensor *a = n->in[0], *b = n->in[3], *yz = n->in[7];
    kn_dtype dt = kn_tensor_dtype(yz);
    if (dt != KN_U8 && dt != KN_I8)
        return kn__onnx_fail(n, KN_ERR_DTYPE, "y_zero_point is %s, expected uint8 or int8",
                             kn_dtype_name(dt));
    if (kn_tensor_ndim(a) < 1 || kn_tensor_ndim(b) < 1)
        return kn__onnx_fail(n, KN_ERR_SHAPE, "operands must have at least 1 dim");
    tmps s = {0};
    kn_tensor *az = per_row(&s, cast_to(&s, n->in[2], KN_F64), a);
    kn_tensor *as = per_row(&s, cast_to(&s, n->in[1], KN_F64), a);
    kn_tensor *ad = K(kn_sub(cast_to(&s, a, KN_F64), az));
    kn_tensor *bd = K(kn_sub(cast_to(&s, b, KN_F64), cast_to(&s, n->in[5], KN_F64)));
    kn_tensor *acc = K(kn_matmul(ad, bd)); /* exact integers */
    kn_tensor *y = K(kn_mul(K(kn_mul(acc, as)), cast_to(&s, n->in[4], KN_F64)));
    y = K(kn_div(y, cast_to(&s, n->in[6], KN_F64)));
    y = K(kn_add(K(kn_round(y)), cast_to(&s, yz, KN_F64)));
    y = K(kn_clip(y, dt == KN_U8 ? 0 : -128, dt == KN_U8 ? 255 : 127));
    return done(n, &s, cast_to(&s, y, dt));
}

/* ConvInteger and QLinearConv run the Conv converter (whichever table has
 * it: same attributes) on f64 operands with the zero points subtracted; a
 * 1-D per-output-channel parameter of W applies along its axis 0. */
static kn_tensor *per_out_channel(tmps *sc, kn_tensor *q, int rank, int axis)
{
    if (!q || kn_tensor_ndim(q) != 1 || kn_tensor_numel(q) == 1) return q;
    int64_t shape[KN_MAX_DIMS];
    for (int d = 0; d < rank; d++)
        shape[d] = d == axis ? kn_tensor_numel(q) : 1;
    return keep(sc, kn_reshape(q, rank, shape));
}

static kn_tensor *conv_via(kn_onnx_node *n, tmps *sc, kn_tensor *x, kn_tensor *w, kn_tensor *b)
{
    const kn_onnx_op *conv = kn__onnx_find_op("", "Conv", n->opset);
    if (!conv) {
        kn__onnx_fail(n, KN_ERR_UNSUPPORTED, "needs the Conv converter");
        return NULL;
    }
    kn_tensor *in[3] = {x, w, b}, *out[1] = {NULL};
    kn_onnx_node c = *n; /* same proto, op and name: errors name this node */
    c.in = in;
    c.n_in = b ? 3 : 2;
    c.out = out;
    c.n_out = 1;
    if (!x || !w || conv->convert(&c)) {
        kn_tensor_unref(out[0]);
        return NULL;
    }
    return keep(sc, out[0]);
}

static bool check_conv_like(const Onnx__NodeProto *node, int opset, char *why, size_t size)
{
    const kn_onnx_op *conv = kn__onnx_find_op("", "Conv", opset);
    if (!conv) {
        snprintf(why, size, "needs the Conv converter");
        return false;
    }
    return !conv->check || conv->check(node, opset, why, size);
}

static kn_status cv_conv_integer(kn_onnx_node *n)
{
    kn_status st = need_inputs(n, 2);
    if (st) return st;
    kn_tensor *x = n->in[0], *w = n->in[1];
    kn_tensor *zx = n->n_in > 2 ? n->in[2] : NULL, *zw = n->n_in > 3 ? n->in[3] : NULL;
    tmps s = {0};
    kn_tensor *xd = cast_to(&s, x, KN_F64), *wd = cast_to(&s, w, KN_F64);
    if (zx) xd = K(kn_sub(xd, cast_to(&s, zx, KN_F64)));
    if (zw) wd = K(kn_sub(wd, per_out_channel(&s, cast_to(&s, zw, KN_F64), kn_tensor_ndim(w), 0)));
    return done(n, &s, cast_to(&s, conv_via(n, &s, xd, wd, NULL), KN_I32));
}

/* QLinearConv: saturate(round((conv(x - xz, w - wz) + B) xs ws / ys) + yz) */
static kn_status cv_qlinear_conv(kn_onnx_node *n)
{
    kn_status st = need_inputs(n, 8);
    if (st) return st;
    kn_tensor *x = n->in[0], *w = n->in[3], *yz = n->in[7], *b = n->n_in > 8 ? n->in[8] : NULL;
    kn_dtype dt = kn_tensor_dtype(yz);
    if (dt != KN_U8 && dt != KN_I8)
        return kn__onnx_fail(n, KN_ERR_DTYPE, "y_zero_point is %s, expected uint8 or int8",
                             kn_dtype_name(dt));
    int r = kn_tensor_ndim(w);
    tmps s = {0};
    kn_tensor *xd = K(kn_sub(cast_to(&s, x, KN_F64), cast_to(&s, n->in[2], KN_F64)));
    kn_tensor *wz = per_out_channel(&s, cast_to(&s, n->in[5], KN_F64), r, 0);
    kn_tensor *wd = K(kn_sub(cast_to(&s, w, KN_F64), wz));
    kn_tensor *acc = conv_via(n, &s, xd, wd, b ? cast_to(&s, b, KN_F64) : NULL);
    kn_tensor *ws = per_out_channel(&s, cast_to(&s, n->in[4], KN_F64), r, 1);
    kn_tensor *y = K(kn_mul(K(kn_mul(acc, cast_to(&s, n->in[1], KN_F64))), ws));
    y = K(kn_div(y, cast_to(&s, n->in[6], KN_F64)));
    y = K(kn_add(K(kn_round(y)), cast_to(&s, yz, KN_F64)));
    y = K(kn_clip(y, dt == KN_U8 ? 0 : -128, dt == KN_U8 ? 255 : 127));
    return done(n, &s, cast_to(&s, y, dt));
}

/* ========================================================= quantization */
/* A per-axis 1-D parameter (scale or zero point) of x, reshaped to
 * broadcast along `axis`; scalars stay. */
static kn_tensor *per_axis(kn_onnx_node *n, tmps *sc, kn_tensor *q, const kn_tensor *x)
{
    if (!q || (kn_tensor_numel(q) == 1 && kn_tensor_ndim(q) <= 1)) return q;
    int r = kn_tensor_ndim(x), axis;
    if (kn_tensor_ndim(q) != 1 || n->opset < 13) {
        kn__onnx_fail(n, KN_ERR_SHAPE, "scale and zero point must be scalars%s",
                      n->opset < 13 ? " before opset 13" : " or 1-D");
        return NULL;
    }
    if (kn__onnx_axis(n, kn__onnx_attr_int(n, "axis", 1), r, &axis)) return NULL;
    if (kn_tensor_dim(q, 0) != kn_tensor_dim(x, axis)) {
        kn__onnx_fail(n, KN_ERR_SHAPE, "scale or zero point has %lld values, axis %d has %lld",
                      (long long)kn_tensor_dim(q, 0), axis, (long long)kn_tensor_dim(x, axis));
        return NULL;
    }
    int64_t shape[KN_MAX_DIMS];
    shape[0] = kn_tensor_dim(q, 0);
    for (int d = 1; d < r - axis; d++)
        shape[d] = 1;
    return keep(sc, kn_reshape(q, r - axis, shape));
}

/* saturate(round(v) + zp) into dt (uint8 or int8); v and zp floating */
static kn_tensor *quantize(tmps *sc, kn_tensor *v, kn_tensor *zp, kn_dtype dt)
{
    kn_tensor *q = keep(sc, kn_round(v));
    if (zp && q) q = keep(sc, kn_add(q, cast_to(sc, zp, kn_tensor_dtype(q))));
    q = q ? keep(sc, kn_clip(q, dt == KN_U8 ? 0 : -128, dt == KN_U8 ? 255 : 127)) : NULL;
    return cast_to(sc, q, dt);
}

/* QuantizeLinear: saturate(round(x / scale) + zero_point), uint8 unless the
 * zero point says int8; per-axis 1-D parameters from opset 13. The division
 * runs in x's float dtype (in f64 for int32 x), as numpy does. */
static kn_status cv_quantize_linear(kn_onnx_node *n)
{
    kn_status st = need_inputs(n, 2);
    if (st) return st;
    kn_tensor *x = n->in[0], *zp = n->n_in > 2 ? n->in[2] : NULL;
    kn_dtype dt = zp ? kn_tensor_dtype(zp) : KN_U8;
    if (dt != KN_U8 && dt != KN_I8)
        return kn__onnx_fail(n, KN_ERR_DTYPE, "zero point is %s, expected uint8 or int8",
                             kn_dtype_name(dt));
    tmps s = {0};
    kn_dtype ct = is_float_dtype(x) ? kn_tensor_dtype(x) : KN_F64;
    kn_tensor *scale = per_axis(n, &s, cast_to(&s, n->in[1], ct), x);
    kn_tensor *z = zp ? per_axis(n, &s, zp, x) : NULL;
    if (!scale || (zp && !z)) return done(n, &s, NULL);
    kn_tensor *v = K(kn_div(cast_to(&s, x, ct), scale));
    return done(n, &s, v ? quantize(&s, v, z, dt) : NULL);
}

/* DequantizeLinear: (x - zero_point) * scale in f64, then scale's dtype. */
static kn_status cv_dequantize_linear(kn_onnx_node *n)
{
    kn_status st = need_inputs(n, 2);
    if (st) return st;
    kn_tensor *x = n->in[0], *zp = n->n_in > 2 ? n->in[2] : NULL;
    tmps s = {0};
    kn_tensor *scale = per_axis(n, &s, n->in[1], x);
    kn_tensor *z = zp ? per_axis(n, &s, zp, x) : NULL;
    if (!scale || (zp && !z)) return done(n, &s, NULL);
    kn_tensor *v = cast_to(&s, x, KN_F64);
    if (z) v = K(kn_sub(v, cast_to(&s, z, KN_F64)));
    v = K(kn_mul(v, cast_to(&s, scale, KN_F64)));
    return done(n, &s, cast_to(&s, v, kn_tensor_dtype(n->in[1])));
}

/* DynamicQuantizeLinear: uint8 over [min(0, min x), max(0, max x)]:
 * scale = range / 255, zero point = saturate(round(-min / scale)); float32
 * arithmetic as the reference. Outputs y, y_scale, y_zero_point. */
static kn_status cv_dynamic_quantize_linear(kn_onnx_node *n)
{
    kn_status st = float_input(n);
    if (st) return st;
    kn_tensor *x = n->in[0];
    tmps s = {0};
    kn_tensor *zero = scalar_like(&s, x, 0);
    kn_tensor *lo = K(kn_minimum(K(kn_min(x, 0, NULL, false)), zero));
    kn_tensor *hi = K(kn_maximum(K(kn_max(x, 0, NULL, false)), zero));
    kn_tensor *scale = K(kn_div(K(kn_sub(hi, lo)), scalar_like(&s, x, 255)));
    kn_tensor *zp = quantize(&s, K(kn_div(K(kn_neg(lo)), scale)), NULL, KN_U8);
    kn_tensor *y = quantize(&s, K(kn_div(x, scale)), zp, KN_U8);
    if (!y) return done(n, &s, NULL);
    if (n->n_out > 1) n->out[1] = kn_tensor_ref(scale);
    if (n->n_out > 2) n->out[2] = kn_tensor_ref(zp);
    return done(n, &s, y);
}

/* ================================================================ losses */
/* reduction and ignore_index of NegativeLogLikelihoodLoss and
 * SoftmaxCrossEntropyLoss (PyTorch's meaning, which ONNX follows). */
static kn_status loss_params(kn_onnx_node *n, kn_loss_params *p)
{
    char buf[16];
    const char *red = kn__onnx_attr_string(n, "reduction", "mean", buf, sizeof buf);
    memset(p, 0, sizeof *p);
    if (!strcmp(red, "mean"))
        p->reduction = KN_REDUCTION_MEAN;
    else if (!strcmp(red, "sum"))
        p->reduction = KN_REDUCTION_SUM;
    else if (!strcmp(red, "none"))
        p->reduction = KN_REDUCTION_NONE;
    else
        return kn__onnx_fail(n, KN_ERR_ARG, "reduction '%s', expected mean, sum or none", red);
    p->use_ignore_index = kn__onnx_attr(n, "ignore_index") != NULL;
    p->ignore_index = kn__onnx_attr_int(n, "ignore_index", 0);
    return KN_OK;
}

static bool check_loss(const Onnx__NodeProto *node, int opset, char *why, size_t size)
{
    (void)opset;
    const Onnx__AttributeProto *a = proto_attr(node, "reduction");
    if (!a) return true;
    if (a->has_s &&
        ((a->s.len == 4 && (!memcmp(a->s.data, "mean", 4) || !memcmp(a->s.data, "none", 4))) ||
         (a->s.len == 3 && !memcmp(a->s.data, "sum", 3))))
        return true;
    snprintf(why, size, "reduction must be \"mean\", \"sum\" or \"none\"");
    return false;
}

static kn_status loss_op(kn_onnx_node *n, bool softmax)
{
    kn_status st = need_inputs(n, 2);
    if (!st) st = need_float(n, n->in[0], "the input");
    kn_loss_params p;
    if (st || (st = loss_params(n, &p))) return st;
    kn_tensor *x = n->in[0], *w = n->n_in > 2 ? n->in[2] : NULL;
    if (kn_tensor_ndim(x) < 2)
        return kn__onnx_fail(n, KN_ERR_SHAPE, "input has %d dims, expected (N, C, d...)",
                             kn_tensor_ndim(x));
    tmps s = {0};
    kn_tensor *logp = softmax ? K(kn_log_softmax(x, 1)) : x;
    kn_tensor *loss = logp ? K(kn_nll_loss(logp, n->in[1], w, &p)) : NULL;
    if (loss && softmax && n->n_out > 1) n->out[1] = kn_tensor_ref(logp);
    return done(n, &s, loss);
}

static kn_status cv_nll_loss(kn_onnx_node *n)
{
    return loss_op(n, false);
}
static kn_status cv_softmax_cross_entropy(kn_onnx_node *n)
{
    return loss_op(n, true);
}

/* Shrink: x + bias below -lambd, x - bias above lambd, else 0. */
static kn_status cv_shrink(kn_onnx_node *n)
{
    kn_status st = need_inputs(n, 1);
    if (st) return st;
    kn_tensor *x = n->in[0];
    double lambd = kn__onnx_attr_float(n, "lambd", 0.5f), bias = kn__onnx_attr_float(n, "bias", 0);
    tmps s = {0};
    kn_tensor *xc = is_float_dtype(x) ? x : cast_to(&s, x, KN_F64);
    kn_tensor *lo = K(kn_lt(xc, scalar_like(&s, xc, -lambd)));
    kn_tensor *hi = K(kn_gt(xc, scalar_like(&s, xc, lambd)));
    kn_tensor *mid = K(kn_where(hi, K(kn_add_scalar(xc, -bias)), scalar_like(&s, xc, 0)));
    kn_tensor *y = K(kn_where(lo, K(kn_add_scalar(xc, bias)), mid));
    return done(n, &s, cast_to(&s, y, kn_tensor_dtype(x)));
}

/* ====================================================== signal processing */
/* Windows: sum_k (-1)^k a_k cos(2 pi k n / N), N = size (periodic) or
 * size - 1, computed in f64 on the host (size is a constant) and cast to
 * output_datatype. */
#define MAX_SIGNAL (1 << 24)
#define KN_PI 3.14159265358979323846

static kn_status window_op(kn_onnx_node *n, const double *a, int na)
{
    int64_t size = 0;
    int cnt = 0;
    kn_status st = kn__onnx_const_ints(n, 0, &size, 1, &cnt);
    if (st) return st;
    if (cnt != 1 || size < 0 || size > MAX_SIGNAL)
        return kn__onnx_fail(n, KN_ERR_ARG, "size must be one value in [0, %d]", MAX_SIGNAL);
    kn_dtype dt;
    int64_t odt = kn__onnx_attr_int(n, "output_datatype", 1);
    if (odt < 0 || odt > INT32_MAX || !kn__onnx_dtype((int32_t)odt, &dt))
        return kn__onnx_fail(n, KN_ERR_UNSUPPORTED, "output_datatype %lld is not a kiln dtype",
                             (long long)odt);
    double big_n = kn__onnx_attr_int(n, "periodic", 1) ? (double)size : (double)size - 1;
    double *v = kn_alloc(sizeof(double) * (size_t)(size ? size : 1));
    if (!v) return kn_last_status();
    for (int64_t i = 0; i < size; i++) {
        v[i] = 0;
        for (int k = 0; k < na; k++)
            v[i] += (k % 2 ? -a[k] : a[k]) * cos(2 * KN_PI * k * (double)i / big_n);
    }
    tmps s = {0};
    kn_tensor *t = K(kn_tensor_from_data(KN_F64, 1, &size, v));
    kn_free(v);
    return done(n, &s, cast_to(&s, t, dt));
}

static kn_status cv_hann_window(kn_onnx_node *n)
{
    static const double a[2] = {0.5, 0.5};
    return window_op(n, a, 2);
}
static kn_status cv_hamming_window(kn_onnx_node *n)
{
    static const double a[2] = {25.0 / 46.0, 21.0 / 46.0};
    return window_op(n, a, 2);
}
static kn_status cv_blackman_window(kn_onnx_node *n)
{
    static const double a[3] = {0.42, 0.5, 0.08};
    return window_op(n, a, 3);
}

/* MelWeightMatrix (dft_length / 2 + 1, num_mel_bins) from constant inputs:
 * num_mel_bins + 2 points evenly spaced on the mel scale (mel(f) = 2595
 * log10(1 + f / 700)) between the edges, mapped to DFT bins
 * floor((dft_length + 1) f / sample_rate); band i is the triangle from point
 * i up to point i + 1 (peak 1) and down to point i + 2, as ONNX's
 * reference computes it. */
static kn_status cv_mel_weight_matrix(kn_onnx_node *n)
{
    int64_t v[3];
    double lo = 0, hi = 0;
    int cnt = 0;
    kn_status st = need_inputs(n, 5);
    for (int i = 0; i < 3 && !st; i++)
        if (!(st = kn__onnx_const_ints(n, i, &v[i], 1, &cnt)) && cnt != 1)
            st = kn__onnx_fail(n, KN_ERR_ARG, "input %d must hold one value", i);
    if (!st) st = kn__onnx_const_double(n, 3, &lo);
    if (!st) st = kn__onnx_const_double(n, 4, &hi);
    if (st) return st;
    int64_t mels = v[0], dft = v[1], rate = v[2], bins = dft / 2 + 1;
    kn_dtype dt;
    int64_t odt = kn__onnx_attr_int(n, "output_datatype", 1);
    if (odt < 0 || odt > INT32_MAX || !kn__onnx_dtype((int32_t)odt, &dt))
        return kn__onnx_fail(n, KN_ERR_UNSUPPORTED, "output_datatype %lld is not a kiln dtype",
                             (long long)odt);
    if (mels < 1 || dft < 1 || rate < 1 || mels > 4096 || dft > MAX_SIGNAL ||
        bins * mels > MAX_SIGNAL)
        return kn__onnx_fail(n, KN_ERR_ARG, "num_mel_bins %lld, dft_length %lld, sample_rate %lld",
                             (long long)mels, (long long)dft, (long long)rate);
    int64_t *pt = kn_alloc(sizeof(int64_t) * (size_t)(mels + 2));
    double *w = pt ? kn_alloc(sizeof(double) * (size_t)(bins * mels)) : NULL;
    if (!w) {
        kn_free(pt);
        return kn_last_status();
    }
    double lm = 2595 * log10(1 + lo / 700), hm = 2595 * log10(1 + hi / 700);
    double step = (hm - lm) / (double)(mels + 2);
    for (int64_t i = 0; i < mels + 2; i++) {
        double f = 700 * (pow(10, ((double)i * step + lm) / 2595) - 1);
        pt[i] = (int64_t)floor((double)(dft + 1) * f / (double)rate);
        if (pt[i] < 0 || pt[i] >= bins) st = KN_ERR_ARG;
    }
    memset(w, 0, sizeof(double) * (size_t)(bins * mels));
    for (int64_t i = 0; i < mels && !st; i++) {
        int64_t l = pt[i], c = pt[i + 1], h = pt[i + 2];
        if (c == l) w[c * mels + i] = 1;
        for (int64_t j = l; c > l && j <= c; j++)
            w[j * mels + i] = (double)(j - l) / (double)(c - l);
        for (int64_t j = c; h > c && j < h; j++)
            w[j * mels + i] = (double)(h - j) / (double)(h - c);
    }
    int64_t shape[2] = {bins, mels};
    tmps s = {0};
    kn_tensor *t = st ? NULL : K(kn_tensor_from_data(KN_F64, 2, shape, w));
    kn_free(pt), kn_free(w);
    if (st)
        return kn__onnx_fail(n, KN_ERR_ARG, "the edges map outside the %lld DFT bins",
                             (long long)bins);
    return done(n, &s, cast_to(&s, t, dt));
}

/* cos (or sin) of 2 pi n k / len as an (len, bins) f64 matrix. */
static kn_tensor *dft_matrix(tmps *sc, int64_t len, int64_t bins, bool sine)
{
    int64_t count = len * bins;
    double *v = kn_alloc(sizeof(double) * (size_t)(count > 0 ? count : 1));
    if (!v) return NULL;
    for (int64_t i = 0; i < len; i++)
        for (int64_t k = 0; k < bins; k++) {
            double th = 2 * KN_PI * (double)((i * k) % len) / (double)len;
            v[i * bins + k] = sine ? sin(th) : cos(th);
        }
    int64_t shape[2] = {len, bins};
    kn_tensor *t = keep(sc, kn_tensor_from_data(KN_F64, 2, shape, v));
    kn_free(v);
    return t;
}

/* DFT of x (f64, (..., c) with c = 1 real or 2 complex) along `axis` (not
 * the last), zero-padded or cut to len; (..., bins, ..., 2) out. Forward:
 * X_k = sum x_n e^(-2 pi i kn/len); inverse: e^(+...) / len. */
static kn_tensor *dft_apply(tmps *sc, kn_tensor *x, int axis, int64_t len, bool inverse,
                            bool onesided)
{
    int r = kn_tensor_ndim(x), last = r - 2;
    int64_t c = kn_tensor_dim(x, -1);
    x = axis != last ? keep(sc, kn_transpose(x, axis, last)) : x;
    int64_t n0 = x ? kn_tensor_dim(x, last) : 0;
    if (x && len > n0) {
        int64_t pads[2 * KN_MAX_DIMS] = {0};
        pads[2 * last + 1] = len - n0;
        x = keep(sc, kn_pad(x, pads, KN_PAD_CONSTANT, 0));
    } else if (x && len < n0) {
        x = keep(sc, kn_narrow(x, last, 0, len));
    }
    if (!x) return NULL;
    int64_t bins = onesided ? len / 2 + 1 : len;
    kn_tensor *cm = dft_matrix(sc, len, bins, false), *sm = dft_matrix(sc, len, bins, true);
    const int64_t *shape = kn_tensor_shape(x);
    kn_tensor *xr = keep(sc, kn_reshape(keep(sc, kn_narrow(x, -1, 0, 1)), r - 1, shape));
    kn_tensor *rc = keep(sc, kn_matmul(xr, cm)), *rs = keep(sc, kn_matmul(xr, sm));
    kn_tensor *yr = rc, *yi = rs ? keep(sc, kn_neg(rs)) : NULL; /* real x: forward */
    if (inverse && yi) yi = rs;
    if (c == 2) {
        kn_tensor *xi = keep(sc, kn_reshape(keep(sc, kn_narrow(x, -1, 1, 1)), r - 1, shape));
        kn_tensor *ic = keep(sc, kn_matmul(xi, cm)), *is = keep(sc, kn_matmul(xi, sm));
        yr = keep(sc, inverse ? kn_sub(rc, is) : kn_add(rc, is));
        yi = keep(sc, inverse ? kn_add(ic, rs) : kn_sub(ic, rs));
    }
    if (inverse && yr && yi) {
        yr = keep(sc, kn_mul_scalar(yr, 1.0 / (double)len));
        yi = keep(sc, kn_mul_scalar(yi, 1.0 / (double)len));
    }
    kn_tensor *parts[2] = {yr, yi};
    kn_tensor *y = yr && yi ? keep(sc, kn_stack(2, parts, -1)) : NULL;
    return y && axis != last ? keep(sc, kn_transpose(y, axis, last)) : y;
}

/* DFT (opset 17): axis (default 1), inverse, onesided, optional dft_length;
 * computed in f64 by matmuls with cos/sin matrices. */
static kn_status cv_dft(kn_onnx_node *n)
{
    kn_status st = float_input(n);
    if (st) return st;
    kn_tensor *x = n->in[0];
    int r = kn_tensor_ndim(x), axis;
    if (r < 2 || (kn_tensor_dim(x, -1) != 1 && kn_tensor_dim(x, -1) != 2))
        return kn__onnx_fail(n, KN_ERR_SHAPE, "input must be (..., 1) real or (..., 2) complex");
    if ((st = kn__onnx_axis(n, kn__onnx_attr_int(n, "axis", 1), r - 1, &axis))) return st;
    int64_t len = kn_tensor_dim(x, axis);
    int cnt = 1;
    if (n->n_in > 1 && n->in[1] && (st = kn__onnx_const_ints(n, 1, &len, 1, &cnt))) return st;
    if (cnt != 1 || len < 1 || len > MAX_SIGNAL)
        return kn__onnx_fail(n, KN_ERR_ARG, "dft_length must be one value in [1, %d]", MAX_SIGNAL);
    bool inverse = kn__onnx_attr_int(n, "inverse", 0) != 0;
    bool onesided = kn__onnx_attr_int(n, "onesided", 0) != 0;
    tmps s = {0};
    kn_tensor *y = dft_apply(&s, cast_to(&s, x, KN_F64), axis, len, inverse, onesided);
    return done(n, &s, cast_to(&s, y, kn_tensor_dtype(x)));
}

/* STFT (opset 17): frames of frame_length (or the window's length) every
 * frame_step samples along axis 1 of (batch, length, c), times the window,
 * each transformed (onesided by default): (batch, frames, bins, 2). */
static kn_status cv_stft(kn_onnx_node *n)
{
    kn_status st = float_input(n);
    if (!st) st = need_inputs(n, 2);
    if (st) return st;
    kn_tensor *x = n->in[0], *win = n->n_in > 2 ? n->in[2] : NULL;
    if (kn_tensor_ndim(x) != 3 || (kn_tensor_dim(x, 2) != 1 && kn_tensor_dim(x, 2) != 2))
        return kn__onnx_fail(n, KN_ERR_SHAPE, "signal must be (batch, length, 1 or 2)");
    int64_t step = 0, len = win ? kn_tensor_numel(win) : -1;
    int cnt = 0;
    if ((st = kn__onnx_const_ints(n, 1, &step, 1, &cnt))) return st;
    if (n->n_in > 3 && n->in[3]) {
        int c2 = 0;
        if ((st = kn__onnx_const_ints(n, 3, &len, 1, &c2))) return st;
        if (win && kn_tensor_numel(win) != len)
            return kn__onnx_fail(n, KN_ERR_SHAPE, "window has %lld values, frame_length is %lld",
                                 (long long)kn_tensor_numel(win), (long long)len);
    }
    int64_t total = kn_tensor_dim(x, 1);
    if (cnt != 1 || step < 1 || len < 1 || len > total || (win && kn_tensor_ndim(win) != 1))
        return kn__onnx_fail(n, KN_ERR_ARG,
                             "needs frame_step >= 1 and a frame length (from frame_length or a "
                             "1-D window) in [1, %lld]",
                             (long long)total);
    int64_t frames = 1 + (total - len) / step, count = frames * len;
    if (count > MAX_SIGNAL) return kn__onnx_fail(n, KN_ERR_ARG, "too many frames");
    int64_t *idx = kn_alloc(sizeof(int64_t) * (size_t)count);
    if (!idx) return kn_last_status();
    for (int64_t f = 0; f < frames; f++)
        for (int64_t j = 0; j < len; j++)
            idx[f * len + j] = f * step + j;
    tmps s = {0};
    kn_tensor *it = K(kn_tensor_from_data(KN_I64, 1, &count, idx));
    kn_free(idx);
    int64_t fshape[4] = {kn_tensor_dim(x, 0), frames, len, kn_tensor_dim(x, 2)},
            wshape[2] = {len, 1};
    kn_tensor *fr = it ? K(kn_index_select(cast_to(&s, x, KN_F64), 1, it)) : NULL;
    fr = fr ? K(kn_reshape(fr, 4, fshape)) : NULL;
    if (win && fr) fr = K(kn_mul(fr, K(kn_reshape(cast_to(&s, win, KN_F64), 2, wshape))));
    bool onesided = kn__onnx_attr_int(n, "onesided", 1) != 0;
    kn_tensor *y = fr ? dft_apply(&s, fr, 2, len, false, onesided) : NULL;
    return done(n, &s, cast_to(&s, y, kn_tensor_dtype(x)));
}

/* ======================================================= TfIdfVectorizer
 * Integer pools (pool_int64s) only. Per n-gram length g and skip s, the g
 * shifted slices of x (stride s + 1) are compared with the pool's g-grams
 * ((..., m, L) masks), AND-ed and summed over positions; the counts (in
 * pool order) are weighted by mode and mapped to ngram_indexes by a matmul
 * with a 0/1 matrix. */
#define TFIDF_MAX 65536

static bool check_tfidf(const Onnx__NodeProto *node, int opset, char *why, size_t size)
{
    (void)opset;
    const Onnx__AttributeProto *pool = proto_attr(node, "pool_int64s");
    const Onnx__AttributeProto *mode = proto_attr(node, "mode");
    if (!pool || proto_attr(node, "pool_strings")) {
        snprintf(why, size, "only pool_int64s (integer n-grams) is supported");
        return false;
    }
    if (!mode || !mode->has_s ||
        !((mode->s.len == 2 && !memcmp(mode->s.data, "TF", 2)) ||
          (mode->s.len == 3 && !memcmp(mode->s.data, "IDF", 3)) ||
          (mode->s.len == 5 && !memcmp(mode->s.data, "TFIDF", 5)))) {
        snprintf(why, size, "mode must be \"TF\", \"IDF\" or \"TFIDF\"");
        return false;
    }
    return true;
}

/* Counts (..., m) (i64) of the m g-grams at pool[g*j ..] in x's last axis,
 * with skips 0..max_skip (one pass for g = 1). */
static kn_tensor *ngram_count(tmps *sc, kn_tensor *x, const int64_t *pool, int64_t m, int64_t g,
                              int64_t max_skip)
{
    int r = kn_tensor_ndim(x);
    int64_t c = kn_tensor_dim(x, -1), col_shape[2] = {m, 1}, zshape[KN_MAX_DIMS];
    int64_t *col = kn_alloc(sizeof(int64_t) * (size_t)m);
    if (!col) return NULL;
    kn_tensor *acc = NULL;
    bool ok = true;
    for (int64_t s = 0; ok && s <= (g == 1 ? 0 : max_skip); s++) {
        int64_t step = s + 1, len = c - (g - 1) * step;
        if (len <= 0) break;
        tmps t = {0};
        kn_tensor *match = NULL;
        for (int64_t k = 0; k < g && ok; k++) {
            for (int64_t j = 0; j < m; j++)
                col[j] = pool[j * g + k];
            kn_tensor *ck = keep(&t, kn_tensor_from_data(KN_I64, 2, col_shape, col));
            kn_tensor *sl = keep(&t, kn_unsqueeze(keep(&t, kn_narrow(x, -1, k * step, len)), -2));
            kn_tensor *e = ck && sl ? keep(&t, kn_eq(sl, ck)) : NULL;
            match = !e ? NULL : !match ? e : keep(&t, kn_logical_and(match, e));
            ok = match != NULL;
        }
        int last = -1;
        kn_tensor *cnt = ok ? keep(&t, kn_sum(match, 1, &last, false)) : NULL;
        kn_tensor *next = !cnt ? NULL : acc ? kn_add(acc, cnt) : kn_tensor_ref(cnt);
        kn_tensor_unref(acc);
        acc = next;
        ok = acc != NULL;
        tmps_free(&t);
    }
    kn_free(col);
    if (ok && !acc) { /* every n-gram is longer than the rows */
        memcpy(zshape, kn_tensor_shape(x), sizeof(int64_t) * (size_t)r);
        zshape[r - 1] = m;
        acc = kn_tensor_zeros(KN_I64, r, zshape);
    }
    return ok ? keep(sc, acc) : (kn_tensor_unref(acc), NULL);
}

static kn_status cv_tfidf(kn_onnx_node *n)
{
    kn_status st = need_inputs(n, 1);
    if (st) return st;
    kn_tensor *x = n->in[0];
    int r = kn_tensor_ndim(x);
    if ((r != 1 && r != 2) || is_float_dtype(x) || kn_tensor_dtype(x) == KN_BOOL)
        return kn__onnx_fail(n, KN_ERR_ARG, "input must be a 1-D or 2-D integer tensor");
    const Onnx__AttributeProto *pa = kn__onnx_attr(n, "pool_int64s");
    const Onnx__AttributeProto *ia = kn__onnx_attr(n, "ngram_indexes");
    const Onnx__AttributeProto *ca = kn__onnx_attr(n, "ngram_counts");
    const Onnx__AttributeProto *wa = kn__onnx_attr(n, "weights");
    int64_t min_g = kn__onnx_attr_int(n, "min_gram_length", 1);
    int64_t max_g = kn__onnx_attr_int(n, "max_gram_length", 1);
    int64_t max_skip = kn__onnx_attr_int(n, "max_skip_count", 0);
    char buf[8];
    const char *mode = kn__onnx_attr_string(n, "mode", "TF", buf, sizeof buf);
    if (!pa || !ia || !ca || pa->n_ints > TFIDF_MAX || ia->n_ints > TFIDF_MAX || min_g < 1 ||
        max_g < min_g || max_g > 16 || max_skip < 0 || max_skip > 1024 || ca->n_ints > 16 ||
        (wa && wa->n_floats != ia->n_ints))
        return kn__onnx_fail(n, KN_ERR_ARG,
                             "needs pool_int64s, ngram_indexes, ngram_counts (one start per "
                             "n-gram length), weights like ngram_indexes, 1 <= min_gram_length "
                             "<= max_gram_length <= 16");
    int64_t total = (int64_t)ia->n_ints, outs = 0, base = 0, pool_n = (int64_t)pa->n_ints;
    for (int64_t i = 0; i < total; i++) {
        if (ia->ints[i] < 0 || ia->ints[i] >= TFIDF_MAX)
            return kn__onnx_fail(n, KN_ERR_ARG, "ngram_indexes[%lld] is out of range",
                                 (long long)i);
        if (ia->ints[i] + 1 > outs) outs = ia->ints[i] + 1;
    }
    tmps s = {0};
    kn_tensor *parts[16];
    int np = 0;
    int64_t xs[2] = {r == 2 ? kn_tensor_dim(x, 0) : 0, 0};
    for (int64_t g = 1; g <= (int64_t)ca->n_ints && st == KN_OK; g++) {
        int64_t start = ca->ints[g - 1], end = g < (int64_t)ca->n_ints ? ca->ints[g] : pool_n;
        if (start < 0 || end < start || end > pool_n || (end - start) % g) {
            st = kn__onnx_fail(n, KN_ERR_ARG,
                               "ngram_counts does not split pool_int64s into %lld-grams",
                               (long long)g);
            break;
        }
        int64_t m = (end - start) / g;
        if (!m) continue;
        if (base + m > total) {
            st = kn__onnx_fail(n, KN_ERR_ARG, "pool_int64s has more n-grams than ngram_indexes");
            break;
        }
        xs[r - 1] = m;
        parts[np++] = g >= min_g && g <= max_g
                          ? ngram_count(&s, x, pa->ints + start, m, g, max_skip)
                          : K(kn_tensor_zeros(KN_I64, r, xs));
        if (!parts[np - 1]) st = kn_last_status() ? kn_last_status() : KN_ERR_INTERNAL;
        base += m;
    }
    if (!st && base != total)
        st = kn__onnx_fail(n, KN_ERR_ARG, "pool_int64s has %lld n-grams, ngram_indexes %lld",
                           (long long)base, (long long)total);
    if (st || !np) {
        tmps_free(&s);
        return st ? st : kn__onnx_fail(n, KN_ERR_ARG, "the pool is empty");
    }
    kn_tensor *cnt = cast_to(&s, np > 1 ? K(kn_concat(np, parts, -1)) : parts[0], KN_F32);
    if (cnt && strcmp(mode, "TF")) {
        if (!strcmp(mode, "IDF")) cnt = K(kn_minimum(cnt, K(kn_tensor_scalar(KN_F32, 1))));
        if (wa && cnt) cnt = K(kn_mul(cnt, K(kn_tensor_from_data(KN_F32, 1, &total, wa->floats))));
    }
    float *map = kn_alloc(sizeof(float) * (size_t)(total * outs));
    if (!map) {
        tmps_free(&s);
        return kn_last_status();
    }
    memset(map, 0, sizeof(float) * (size_t)(total * outs));
    for (int64_t i = 0; i < total; i++)
        map[i * outs + ia->ints[i]] = 1;
    int64_t mshape[2] = {total, outs};
    kn_tensor *mt = K(kn_tensor_from_data(KN_F32, 2, mshape, map));
    kn_free(map);
    return done(n, &s, cnt && mt ? K(kn_matmul(cnt, mt)) : NULL);
}

/* ============================================ training (preview domain)
 * One optimizer step for tensors X_1..X_k: inputs R, T, then k tensors per
 * group (X, G, then the state); outputs the new X then the new states.
 * Formulas from the operators' documentation. */
#define TRAINING "ai.onnx.preview.training"

static kn_status optimizer_groups(kn_onnx_node *n, int groups, int *k)
{
    *k = (n->n_in - 2) / groups;
    if (n->n_in < 2 + groups || (n->n_in - 2) % groups)
        return kn__onnx_fail(n, KN_ERR_ARG, "%d inputs: expected R, T and %d tensors per variable",
                             n->n_in, groups);
    if (n->n_out > (groups - 1) * *k)
        return kn__onnx_fail(n, KN_ERR_ARG, "%d outputs, expected at most %d", n->n_out,
                             (groups - 1) * *k);
    return need_inputs(n, n->n_in);
}

/* x * a + y * b (b may be 0: then x * a) */
static kn_tensor *axpby(tmps *sc, kn_tensor *x, double a, kn_tensor *y, double b)
{
    kn_tensor *t = keep(sc, kn_mul_scalar(x, a));
    return b == 0 || !t ? t : keep(sc, kn_add(t, keep(sc, kn_mul_scalar(y, b))));
}

static void set_out_at(kn_onnx_node *n, int i, kn_tensor *t)
{
    if (i < n->n_out && t) n->out[i] = kn_tensor_ref(t);
}

static kn_status cv_adagrad(kn_onnx_node *n)
{
    int k;
    kn_status st = optimizer_groups(n, 3, &k);
    if (st) return st;
    double decay = kn__onnx_attr_float(n, "decay_factor", 0);
    double eps = kn__onnx_attr_float(n, "epsilon", 1e-6f);
    double norm = kn__onnx_attr_float(n, "norm_coefficient", 0);
    for (int i = 0; i < k && !st; i++) {
        tmps s = {0};
        kn_tensor *x = n->in[2 + i], *g = n->in[2 + k + i], *h = n->in[2 + 2 * k + i];
        kn_dtype dt = kn_tensor_dtype(x);
        kn_tensor *t = cast_to(&s, n->in[1], dt);
        kn_tensor *r =
            K(kn_div(cast_to(&s, n->in[0], dt), K(kn_add_scalar(K(kn_mul_scalar(t, decay)), 1))));
        kn_tensor *gr = K(kn_add(K(kn_mul_scalar(x, norm)), g));
        kn_tensor *hn = K(kn_add(h, K(kn_mul(gr, gr))));
        kn_tensor *ha = K(kn_add_scalar(K(kn_sqrt(hn)), eps));
        kn_tensor *xn = K(kn_sub(x, K(kn_div(K(kn_mul(r, gr)), ha))));
        if (!xn) st = kn_last_status();
        set_out_at(n, i, xn);
        set_out_at(n, k + i, hn);
        tmps_free(&s);
    }
    return st;
}

static kn_status cv_adam(kn_onnx_node *n)
{
    int k;
    kn_status st = optimizer_groups(n, 4, &k);
    if (st) return st;
    double alpha = kn__onnx_attr_float(n, "alpha", 0.9f),
           beta = kn__onnx_attr_float(n, "beta", 0.999f);
    double eps = kn__onnx_attr_float(n, "epsilon", 1e-6f);
    double norm = kn__onnx_attr_float(n, "norm_coefficient", 0);
    double post = kn__onnx_attr_float(n, "norm_coefficient_post", 0);
    for (int i = 0; i < k && !st; i++) {
        tmps s = {0};
        kn_tensor *x = n->in[2 + i], *g = n->in[2 + k + i];
        kn_tensor *v = n->in[2 + 2 * k + i], *h = n->in[2 + 3 * k + i];
        kn_dtype dt = kn_tensor_dtype(x);
        kn_tensor *gr = K(kn_add(K(kn_mul_scalar(x, norm)), g));
        kn_tensor *vn = axpby(&s, v, alpha, gr, 1 - alpha);
        kn_tensor *hn = gr ? axpby(&s, h, beta, K(kn_mul(gr, gr)), 1 - beta) : NULL;
        kn_tensor *hs = K(kn_add_scalar(K(kn_sqrt(hn)), eps));
        /* R sqrt(1 - beta^T) / (1 - alpha^T) when T > 0, else R (in f64) */
        kn_tensor *t = cast_to(&s, n->in[1], KN_F64), *r = cast_to(&s, n->in[0], KN_F64);
        kn_tensor *bt = K(kn_pow(K(kn_tensor_scalar(KN_F64, beta)), t));
        kn_tensor *at = K(kn_pow(K(kn_tensor_scalar(KN_F64, alpha)), t));
        kn_tensor *adj = K(kn_div(K(kn_mul(r, K(kn_sqrt(K(kn_add_scalar(K(kn_neg(bt)), 1)))))),
                                  K(kn_add_scalar(K(kn_neg(at)), 1))));
        adj = K(kn_where(K(kn_gt(t, K(kn_tensor_scalar(KN_F64, 0)))), adj, r));
        kn_tensor *xn = K(kn_sub(x, K(kn_mul(cast_to(&s, adj, dt), K(kn_div(vn, hs))))));
        xn = K(kn_mul_scalar(xn, 1 - post));
        if (!xn) st = kn_last_status();
        set_out_at(n, i, xn);
        set_out_at(n, k + i, vn);
        set_out_at(n, 2 * k + i, hn);
        tmps_free(&s);
    }
    return st;
}

static kn_status cv_momentum(kn_onnx_node *n)
{
    int k;
    kn_status st = optimizer_groups(n, 3, &k);
    if (st) return st;
    double alpha = kn__onnx_attr_float(n, "alpha", 0), beta = kn__onnx_attr_float(n, "beta", 0);
    double norm = kn__onnx_attr_float(n, "norm_coefficient", 0);
    char buf[16];
    const char *mode = kn__onnx_attr_string(n, "mode", "", buf, sizeof buf);
    bool nesterov = !strcmp(mode, "nesterov");
    for (int i = 0; i < k && !st; i++) {
        tmps s = {0};
        kn_tensor *x = n->in[2 + i], *g = n->in[2 + k + i], *v = n->in[2 + 2 * k + i];
        kn_dtype dt = kn_tensor_dtype(x);
        kn_tensor *t = n->in[1], *r = cast_to(&s, n->in[0], dt);
        kn_tensor *first = K(kn_gt(t, K(kn_tensor_scalar(kn_tensor_dtype(t), 0))));
        kn_tensor *b =
            K(kn_where(first, K(kn_tensor_scalar(dt, beta)), K(kn_tensor_scalar(dt, 1))));
        kn_tensor *gr = K(kn_add(K(kn_mul_scalar(x, norm)), g));
        kn_tensor *vn = K(kn_add(K(kn_mul_scalar(v, alpha)), K(kn_mul(b, gr))));
        kn_tensor *dir = nesterov && vn ? K(kn_add(gr, K(kn_mul_scalar(vn, alpha)))) : vn;
        kn_tensor *xn = K(kn_sub(x, K(kn_mul(r, dir))));
        if (!xn) st = kn_last_status();
        set_out_at(n, i, xn);
        set_out_at(n, k + i, vn);
        tmps_free(&s);
    }
    return st;
}

static bool check_momentum(const Onnx__NodeProto *node, int opset, char *why, size_t size)
{
    (void)opset;
    const Onnx__AttributeProto *m = proto_attr(node, "mode");
    if (m && m->has_s &&
        ((m->s.len == 8 && !memcmp(m->s.data, "standard", 8)) ||
         (m->s.len == 8 && !memcmp(m->s.data, "nesterov", 8))))
        return true;
    snprintf(why, size, "mode must be \"standard\" or \"nesterov\"");
    return false;
}

/* Det of (..., M, M), M <= 4, by cofactor expansion along the first row:
 * the graph grows as M!, so bigger matrices are refused. */
#define DET_MAX 4

static kn_tensor *det_rec(kn_tensor *x, int64_t m)
{
    tmps s = {0};
    kn_tensor *r = NULL;
    if (m == 1) {
        r = kn_narrow(x, -1, 0, 1); /* (..., 1, 1) */
        tmps_free(&s);
        return r;
    }
    kn_tensor *row0 = K(kn_narrow(x, -2, 0, 1)), *rest = K(kn_narrow(x, -2, 1, m - 1));
    kn_tensor *acc = NULL;
    for (int64_t j = 0; j < m && row0 && rest; j++) {
        int64_t cols[DET_MAX];
        int64_t c = 0;
        for (int64_t k = 0; k < m; k++)
            if (k != j) cols[c++] = k;
        kn_tensor *ci = K(kn_tensor_from_data(KN_I64, 1, &c, cols));
        kn_tensor *minor = ci ? K(det_rec(K(kn_index_select(rest, -1, ci)), m - 1)) : NULL;
        kn_tensor *term = K(kn_mul(K(kn_narrow(row0, -1, j, 1)), minor));
        if (!term) break;
        acc = !acc ? term : K(j % 2 ? kn_sub(acc, term) : kn_add(acc, term));
        if (!acc) break;
    }
    r = acc ? kn_tensor_ref(acc) : NULL;
    tmps_free(&s);
    return r;
}

static kn_status cv_det(kn_onnx_node *n)
{
    kn_status st = float_input(n);
    if (st) return st;
    kn_tensor *x = n->in[0];
    int r = kn_tensor_ndim(x);
    if (r < 2 || kn_tensor_dim(x, -1) != kn_tensor_dim(x, -2))
        return kn__onnx_fail(n, KN_ERR_SHAPE, "input must be (..., M, M)");
    int64_t m = kn_tensor_dim(x, -1);
    if (m > DET_MAX)
        return kn__onnx_fail(n, KN_ERR_UNSUPPORTED,
                             "%lldx%lld matrices: kiln converts Det up to %dx%d", (long long)m,
                             (long long)m, DET_MAX, DET_MAX);
    tmps s = {0};
    if (m == 0) return set_out(n, kn_tensor_ones(kn_tensor_dtype(x), r - 2, kn_tensor_shape(x)));
    kn_tensor *d = K(det_rec(x, m));
    return done(n, &s, d ? K(kn_reshape(d, r - 2, kn_tensor_shape(x))) : NULL);
}

/* ================================================================ Einsum
 * Equations with letters, '...' and an optional '->': repeated labels in
 * one operand take the diagonal, labels used nowhere else are summed
 * first, then operands are contracted left to right as batched matmuls
 * (batch, free, contracted dims grouped by permute + reshape). */
#define EIN_MAX_OPS 8
#define EIN_ELL '0' /* ellipsis dims get labels '0'.. (equations use letters) */

typedef struct ein_term {
    kn_tensor *t; /* borrowed or kept */
    char lab[KN_MAX_DIMS + 1];
    int r;
} ein_term;

typedef struct ein_eq {
    char in[EIN_MAX_OPS][64];
    int n_in;
    char out[64];
    bool explicit_out;
} ein_eq;

/* Splits the equation (spaces dropped); false if it is not well-formed. */
static bool ein_parse(const char *eq, ein_eq *e)
{
    char buf[256];
    size_t k = 0;
    for (const char *p = eq; *p; p++)
        if (*p != ' ') {
            if (k + 1 >= sizeof buf) return false;
            buf[k++] = *p;
        }
    buf[k] = 0;
    char *arrow = strstr(buf, "->");
    e->explicit_out = arrow != NULL;
    e->out[0] = 0;
    if (arrow) {
        if (strlen(arrow + 2) >= sizeof e->out) return false;
        strcpy(e->out, arrow + 2);
        *arrow = 0;
    }
    e->n_in = 0;
    for (char *p = buf;;) {
        char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (e->n_in == EIN_MAX_OPS || len >= sizeof e->in[0]) return false;
        memcpy(e->in[e->n_in], p, len);
        e->in[e->n_in++][len] = 0;
        if (!c) break;
        p = c + 1;
    }
    for (int i = 0; i <= e->n_in; i++) {
        const char *s = i < e->n_in ? e->in[i] : e->out;
        int dots = 0;
        for (const char *p = s; *p; p++) {
            if (*p == '.') {
                if (strncmp(p, "...", 3) || dots++) return false;
                p += 2;
            } else if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))) {
                return false;
            }
        }
    }
    return true;
}

static bool check_einsum(const Onnx__NodeProto *node, int opset, char *why, size_t size)
{
    (void)opset;
    const Onnx__AttributeProto *a = proto_attr(node, "equation");
    char eq[256];
    ein_eq e;
    if (!a || !a->has_s || a->s.len >= sizeof eq) {
        snprintf(why, size, "attribute 'equation' is missing or too long");
        return false;
    }
    memcpy(eq, a->s.data, a->s.len);
    eq[a->s.len] = 0;
    if (!ein_parse(eq, &e)) {
        snprintf(why, size, "equation \"%s\" is not supported", eq);
        return false;
    }
    return true;
}

/* Label string of an operand: letters, with '...' expanded to ell dims
 * labelled from the right (the last ellipsis dim is EIN_ELL + max_ell - 1). */
static bool ein_labels(const char *spec, int rank, int max_ell, char *lab, int *ell_out)
{
    int letters = 0;
    bool has_ell = strstr(spec, "...") != NULL;
    for (const char *p = spec; *p; p++)
        if (*p != '.') letters++;
    int ell = rank - letters;
    if (ell < 0 || (!has_ell && ell != 0) || ell > max_ell) return false;
    int k = 0;
    for (const char *p = spec; *p; p++) {
        if (*p == '.') {
            for (int i = 0; i < ell; i++)
                lab[k++] = (char)(EIN_ELL + max_ell - ell + i);
            p += 2;
        } else {
            lab[k++] = *p;
        }
    }
    lab[k] = 0;
    *ell_out = ell;
    return true;
}

static int lab_pos(const char *lab, char c)
{
    const char *p = strchr(lab, c);
    return p && c ? (int)(p - lab) : -1;
}

/* Diagonal of the first repeated label pair (p < q): x * eye over (p, q),
 * summed over q. */
static kn_tensor *ein_diag(tmps *sc, ein_term *t, int p, int q)
{
    int64_t d = kn_tensor_dim(t->t, p), shape[KN_MAX_DIMS];
    if (kn_tensor_dim(t->t, q) != d) {
        kn_set_error(KN_ERR_SHAPE, "einsum: repeated label '%c' has sizes %lld and %lld", t->lab[p],
                     (long long)d, (long long)kn_tensor_dim(t->t, q));
        return NULL;
    }
    for (int i = 0; i < t->r; i++)
        shape[i] = i == p || i == q ? d : 1;
    kn_tensor *eye = keep(sc, kn_tensor_eye(kn_tensor_dtype(t->t), d, d));
    eye = eye ? keep(sc, kn_reshape(eye, t->r, shape)) : NULL;
    kn_tensor *y = keep(sc, kn_sum(keep(sc, kn_mul(t->t, eye)), 1, &q, false));
    memmove(t->lab + q, t->lab + q + 1, (size_t)(t->r - q));
    t->r--;
    return t->t = y;
}

/* Sums the labels of t not in `needed`. */
static kn_tensor *ein_sum_unneeded(tmps *sc, ein_term *t, const char *needed)
{
    int axes[KN_MAX_DIMS], na = 0, k = 0;
    char lab[KN_MAX_DIMS + 1];
    for (int i = 0; i < t->r; i++) {
        if (!strchr(needed, t->lab[i]))
            axes[na++] = i;
        else
            lab[k++] = t->lab[i];
    }
    lab[k] = 0;
    if (!na) return t->t;
    kn_tensor *y = keep(sc, kn_sum(t->t, na, axes, false));
    memcpy(t->lab, lab, (size_t)k + 1);
    t->r = k;
    return t->t = y;
}

static int64_t ein_size(const ein_term *a, const ein_term *b, char c)
{
    int pa = lab_pos(a->lab, c), pb = lab_pos(b->lab, c);
    int64_t sa = pa >= 0 ? kn_tensor_dim(a->t, pa) : 1, sb = pb >= 0 ? kn_tensor_dim(b->t, pb) : 1;
    return sa > sb ? sa : sb;
}

/* x permuted to the labels `order` (each present in lab) and reshaped to
 * the 3 groups' products, after broadcasting size-1 dims to `full`. */
static kn_tensor *ein_group(tmps *sc, const ein_term *t, const char *order, const int64_t *full,
                            const int *cut)
{
    int perm[KN_MAX_DIMS], r = t->r;
    int64_t target[KN_MAX_DIMS], g[3] = {1, 1, 1};
    for (int i = 0; i < r; i++) {
        perm[i] = lab_pos(t->lab, order[i]);
        target[i] = full[i];
        g[i < cut[0] ? 0 : i < cut[1] ? 1 : 2] *= full[i];
    }
    kn_tensor *y = keep(sc, kn_permute(t->t, r, perm));
    if (y) y = keep(sc, kn_expand(y, r, target));
    return y ? keep(sc, kn_reshape(y, 3, g)) : NULL; /* copies when strides require */
}

/* Contracts a and b into a: labels in both and in `needed` are batch dims,
 * in both and not needed are summed, the rest stay. */
static bool ein_contract(tmps *sc, ein_term *a, ein_term *b, const char *needed)
{
    char batch[KN_MAX_DIMS + 1] = "", la[KN_MAX_DIMS + 1] = "", lb[KN_MAX_DIMS + 1] = "",
                             con[KN_MAX_DIMS + 1] = "";
    int nb = 0, nl = 0, nr = 0, nc = 0;
    for (int i = 0; i < a->r; i++) {
        char c = a->lab[i];
        if (lab_pos(b->lab, c) < 0)
            la[nl++] = c;
        else if (strchr(needed, c))
            batch[nb++] = c;
        else
            con[nc++] = c;
    }
    for (int i = 0; i < b->r; i++)
        if (lab_pos(a->lab, b->lab[i]) < 0) lb[nr++] = b->lab[i];
    batch[nb] = la[nl] = lb[nr] = con[nc] = 0;
    if (nb + nl + nr > KN_MAX_DIMS) {
        kn_set_error(KN_ERR_UNSUPPORTED, "einsum: more than %d dims", KN_MAX_DIMS);
        return false;
    }
    char oa[2 * KN_MAX_DIMS + 1], ob[2 * KN_MAX_DIMS + 1];
    int64_t fa[KN_MAX_DIMS], fb[KN_MAX_DIMS], out_shape[KN_MAX_DIMS];
    snprintf(oa, sizeof oa, "%s%s%s", batch, la, con);
    snprintf(ob, sizeof ob, "%s%s%s", batch, con, lb);
    for (int i = 0; i < a->r; i++)
        fa[i] = ein_size(a, b, oa[i]);
    for (int i = 0; i < b->r; i++)
        fb[i] = ein_size(a, b, ob[i]);
    int cut_a[2] = {nb, nb + nl}, cut_b[2] = {nb, nb + nc};
    kn_tensor *x = ein_group(sc, a, oa, fa, cut_a), *y = ein_group(sc, b, ob, fb, cut_b);
    kn_tensor *m = x && y ? keep(sc, kn_matmul(x, y)) : NULL;
    char lab[KN_MAX_DIMS + 1];
    snprintf(lab, sizeof lab, "%s%s%s", batch, la, lb);
    int r = nb + nl + nr;
    for (int i = 0; i < r; i++)
        out_shape[i] = ein_size(a, b, lab[i]);
    a->t = m ? keep(sc, kn_reshape(m, r, out_shape)) : NULL;
    memcpy(a->lab, lab, (size_t)r + 1);
    a->r = r;
    return a->t != NULL;
}

static kn_status cv_einsum(kn_onnx_node *n)
{
    char buf[256];
    ein_eq e;
    const char *eq = kn__onnx_attr_string(n, "equation", "", buf, sizeof buf);
    if (!ein_parse(eq, &e)) return kn__onnx_fail(n, KN_ERR_UNSUPPORTED, "equation \"%s\"", eq);
    if (e.n_in != n->n_in)
        return kn__onnx_fail(n, KN_ERR_ARG, "equation has %d operands, node %d inputs", e.n_in,
                             n->n_in);
    kn_status st = need_inputs(n, n->n_in);
    if (st) return st;
    kn_dtype dt = kn_tensor_dtype(n->in[0]);
    tmps s = {0};
    ein_term t[EIN_MAX_OPS];
    int max_ell = 0;
    for (int i = 0; i < e.n_in; i++) {
        int letters = 0;
        for (const char *p = e.in[i]; *p; p++)
            letters += *p != '.';
        int ell = kn_tensor_ndim(n->in[i]) - letters;
        if (strstr(e.in[i], "...") && ell > max_ell) max_ell = ell;
    }
    for (int i = 0; i < e.n_in; i++) {
        int ell;
        t[i].t = is_float_dtype(n->in[i]) ? n->in[i] : K(kn_cast(n->in[i], KN_F64));
        t[i].r = kn_tensor_ndim(n->in[i]);
        if (!t[i].t || kn_tensor_dtype(n->in[i]) != dt ||
            !ein_labels(e.in[i], t[i].r, max_ell, t[i].lab, &ell)) {
            tmps_free(&s);
            return kn__onnx_fail(n, KN_ERR_SHAPE, "operand %d (%d dims) does not fit \"%s\"", i,
                                 kn_tensor_ndim(n->in[i]), e.in[i]);
        }
    }
    /* output labels: explicit, or the ellipsis then letters used once, sorted */
    char out[KN_MAX_DIMS + 1];
    int no = 0;
    if (e.explicit_out) {
        int ell;
        char full[64];
        bool has_ell = strstr(e.out, "...") != NULL;
        int rank = (int)strlen(e.out) - (has_ell ? 3 - max_ell : 0);
        if (!ein_labels(e.out, rank, max_ell, full, &ell) || strlen(full) > KN_MAX_DIMS) {
            tmps_free(&s);
            return kn__onnx_fail(n, KN_ERR_ARG, "bad output \"%s\"", e.out);
        }
        strcpy(out, full);
        no = (int)strlen(out);
    } else {
        for (int i = 0; i < max_ell; i++)
            out[no++] = (char)(EIN_ELL + i);
        for (int l = 0; l < 52; l++) { /* A-Z then a-z, numpy's order */
            char c = (char)(l < 26 ? 'A' + l : 'a' + l - 26);
            int count = 0;
            for (int i = 0; i < e.n_in; i++)
                for (const char *p = e.in[i]; *p; p++)
                    count += *p == c;
            if (count == 1 && no < KN_MAX_DIMS) out[no++] = c;
        }
        out[no] = 0;
    }
    for (int i = 0; i < no; i++) {
        bool found = false;
        for (int j = 0; j < e.n_in; j++)
            found |= lab_pos(t[j].lab, out[i]) >= 0;
        if (!found) {
            tmps_free(&s);
            return kn__onnx_fail(n, KN_ERR_ARG, "output label '%c' is in no operand", out[i]);
        }
    }
    bool ok = true;
    for (int i = 0; i < e.n_in && ok; i++) {
        for (int p = 0; p < t[i].r && ok; p++) /* diagonals */
            for (int q = p + 1; q < t[i].r && ok; q++)
                if (t[i].lab[p] == t[i].lab[q]) {
                    ok = ein_diag(&s, &t[i], p, q) != NULL;
                    q = p; /* rescan this p */
                }
    }
    /* contract left to right; before each step sum what nobody else needs */
    ein_term acc = t[0];
    for (int i = 0; i < e.n_in && ok; i++) {
        char needed[64];
        snprintf(needed, sizeof needed, "%s", out);
        for (int j = i + 1; j < e.n_in; j++)
            strncat(needed, t[j].lab, sizeof needed - strlen(needed) - 1);
        if (i > 0) {
            char both[2 * KN_MAX_DIMS + 2];
            snprintf(both, sizeof both, "%s%s", needed, acc.lab);
            ok = ein_sum_unneeded(&s, &t[i], both) != NULL && ein_contract(&s, &acc, &t[i], needed);
        } else {
            char with_next[64];
            snprintf(with_next, sizeof with_next, "%s", needed);
            ok = ein_sum_unneeded(&s, &acc, with_next) != NULL;
        }
    }
    if (ok) ok = ein_sum_unneeded(&s, &acc, out) != NULL;
    kn_tensor *y = NULL;
    if (ok) {
        int perm[KN_MAX_DIMS];
        for (int i = 0; i < no; i++)
            perm[i] = lab_pos(acc.lab, out[i]);
        if (acc.r != no) {
            tmps_free(&s);
            return kn__onnx_fail(n, KN_ERR_ARG, "output \"%s\" does not match the operands", e.out);
        }
        y = no > 1 ? K(kn_permute(acc.t, no, perm)) : acc.t;
        y = cast_to(&s, y, dt);
    }
    return done(n, &s, y);
}

/* ================================================================ table */
const kn_onnx_op kn__onnx_ops_math[] = {
    /* binary; opsets 1-6 reach the converters as 7 (onnx_legacy.c) */
    {"", "Add", 7, cv_add, NULL},
    {"", "Sub", 7, cv_sub, NULL},
    {"", "Mul", 7, cv_mul, NULL},
    {"", "Div", 7, cv_div, NULL},
    {"", "Pow", 7, cv_pow, NULL},
    {"", "Mod", 10, cv_mod, NULL},
    {"", "BitShift", 11, cv_bitshift, check_bitshift},
    {"", "Equal", 7, cv_equal, NULL},
    {"", "Less", 7, cv_less, NULL},
    {"", "LessOrEqual", 12, cv_less_equal, NULL},
    {"", "Greater", 7, cv_greater, NULL},
    {"", "GreaterOrEqual", 12, cv_greater_equal, NULL},
    {"", "And", 7, cv_and, NULL},
    {"", "Or", 7, cv_or, NULL},
    {"", "Xor", 7, cv_xor, NULL},
    /* variadic */
    {"", "Max", 7, cv_max, NULL},
    {"", "Min", 7, cv_min, NULL},
    {"", "Sum", 7, cv_sum, NULL},
    {"", "Mean", 7, cv_mean, NULL},
    /* unary */
    {"", "Abs", 7, cv_abs, NULL},
    {"", "Neg", 7, cv_neg, NULL},
    {"", "Sign", 9, cv_sign, NULL},
    {"", "Floor", 7, cv_floor, NULL},
    {"", "Ceil", 7, cv_ceil, NULL},
    {"", "Round", 11, cv_round, NULL},
    {"", "Not", 7, cv_not, NULL},
    {"", "IsNaN", 9, cv_isnan, NULL},
    {"", "IsInf", 10, cv_isinf, NULL},
    {"", "Sqrt", 7, cv_sqrt, NULL},
    {"", "Reciprocal", 7, cv_reciprocal, NULL},
    {"", "Exp", 7, cv_exp, NULL},
    {"", "Log", 7, cv_log, NULL},
    {"", "Erf", 9, cv_erf, NULL},
    {"", "Sin", 7, cv_sin, NULL},
    {"", "Cos", 7, cv_cos, NULL},
    {"", "Tan", 7, cv_tan, NULL},
    {"", "Asin", 7, cv_asin, NULL},
    {"", "Acos", 7, cv_acos, NULL},
    {"", "Atan", 7, cv_atan, NULL},
    {"", "Sinh", 9, cv_sinh, NULL},
    {"", "Cosh", 9, cv_cosh, NULL},
    {"", "Asinh", 9, cv_asinh, NULL},
    {"", "Acosh", 9, cv_acosh, NULL},
    {"", "Atanh", 9, cv_atanh, NULL},
    /* activations */
    {"", "Relu", 7, cv_relu, NULL},
    {"", "LeakyRelu", 7, cv_leaky_relu, NULL},
    {"", "Elu", 7, cv_elu, NULL},
    {"", "Selu", 7, cv_selu, NULL},
    {"", "Celu", 12, cv_celu, NULL},
    {"", "Sigmoid", 7, cv_sigmoid, NULL},
    {"", "HardSigmoid", 7, cv_hard_sigmoid, NULL},
    {"", "HardSwish", 14, cv_hardswish, NULL},
    {"", "Softplus", 7, cv_softplus, NULL},
    {"", "Softsign", 7, cv_softsign, NULL},
    {"", "Tanh", 7, cv_tanh, NULL},
    {"", "ThresholdedRelu", 10, cv_thresholded_relu, NULL},
    {"", "Shrink", 9, cv_shrink, NULL},
    {"", "PRelu", 7, cv_prelu, NULL},
    {"", "Clip", 7, cv_clip, NULL},
    {"", "Where", 9, cv_where, NULL},
    {"", "Cast", 7, cv_cast, check_cast},
    {"", "CastLike", 15, cv_castlike, NULL},
    {"", "Softmax", 7, cv_softmax, NULL},
    {"", "LogSoftmax", 7, cv_log_softmax, NULL},
    {"", "Hardmax", 7, cv_hardmax, NULL},
    /* reductions */
    {"", "ReduceSum", 7, cv_reduce_sum, NULL},
    {"", "ReduceMean", 7, cv_reduce_mean, NULL},
    {"", "ReduceMax", 7, cv_reduce_max, NULL},
    {"", "ReduceMin", 7, cv_reduce_min, NULL},
    {"", "ReduceProd", 7, cv_reduce_prod, NULL},
    {"", "ReduceL1", 7, cv_reduce_l1, NULL},
    {"", "ReduceL2", 7, cv_reduce_l2, NULL},
    {"", "ReduceLogSum", 7, cv_reduce_log_sum, NULL},
    {"", "ReduceLogSumExp", 7, cv_reduce_log_sum_exp, NULL},
    {"", "ReduceSumSquare", 7, cv_reduce_sum_square, NULL},
    {"", "ArgMax", 7, cv_argmax, NULL},
    {"", "ArgMin", 7, cv_argmin, NULL},
    {"", "CumSum", 11, cv_cumsum, NULL},
    /* linear algebra */
    {"", "MatMul", 7, cv_matmul, NULL},
    {"", "MatMulInteger", 10, cv_matmul_integer, NULL},
    {"", "QLinearMatMul", 10, cv_qlinear_matmul, NULL},
    {"", "ConvInteger", 10, cv_conv_integer, check_conv_like},
    {"", "QLinearConv", 10, cv_qlinear_conv, check_conv_like},
    {"", "QuantizeLinear", 10, cv_quantize_linear, NULL},
    {"", "DequantizeLinear", 10, cv_dequantize_linear, NULL},
    {"", "DynamicQuantizeLinear", 11, cv_dynamic_quantize_linear, NULL},
    /* losses */
    {"", "NegativeLogLikelihoodLoss", 12, cv_nll_loss, check_loss},
    {"", "SoftmaxCrossEntropyLoss", 12, cv_softmax_cross_entropy, check_loss},
    {"", "Det", 11, cv_det, NULL},
    {"", "Einsum", 12, cv_einsum, check_einsum},
    /* signal processing */
    {"", "HannWindow", 17, cv_hann_window, NULL},
    {"", "HammingWindow", 17, cv_hamming_window, NULL},
    {"", "BlackmanWindow", 17, cv_blackman_window, NULL},
    {"", "MelWeightMatrix", 17, cv_mel_weight_matrix, NULL},
    {"", "DFT", 17, cv_dft, NULL},
    {"", "STFT", 17, cv_stft, NULL},
    {"", "TfIdfVectorizer", 9, cv_tfidf, check_tfidf},
    /* training (preview domain) */
    {TRAINING, "Adagrad", 1, cv_adagrad, NULL},
    {TRAINING, "Adam", 1, cv_adam, NULL},
    {TRAINING, "Momentum", 1, cv_momentum, check_momentum},
    {NULL, NULL, 0, NULL, NULL},
};
#endif
