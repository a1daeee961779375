/* onnx_export_ops.c — the exporter's converters: each kiln op as ONNX nodes
 * of the chosen opset (13 to 17; the forms whose inputs and attributes
 * changed in that range are picked by e->opset). Attributes are read through
 * each op's schema (kn__node_attr), so only the ops without a full schema
 * (fused_elementwise, conv2d_fused's geometry) need their structs. Composite
 * layers become compositions of ONNX primitives where ONNX has no op. */
#if KILN_HAVE_ONNX
#include "onnx_export.h"

#include "../../ops/fused.h"

#include <math.h>

#define KN_EX_PI 3.14159265358979323846

/* ---------------------------------------------------------------- helpers */
#define IN(k) kn__ex_val(e, n->in[k])
#define OUT(k) kn__ex_val(e, n->out[k])
#define CONST_I(...)                                                                               \
    kn__ex_const_ints(e, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),                \
                      (int64_t[]){__VA_ARGS__})

/* A node's attr by its schema name; a name the op lacks is an internal
 * error (sticky), so a renamed attr cannot be read as its default. */
static const void *attr(kn_ex *e, const kn_gnode *n, const char *name)
{
    const void *p = kn__node_attr(n, name);
    if (!p && !e->status)
        e->status = kn__ex_fail(e, KN_ERR_INTERNAL, "op '%s' has no attr '%s'", n->def->name, name);
    return p;
}
static int64_t attr_int_(kn_ex *e, const kn_gnode *n, const char *name, int64_t def)
{
    const int64_t *p = attr(e, n, name);
    return p ? *p : def;
}
static double attr_float_(kn_ex *e, const kn_gnode *n, const char *name, double def)
{
    const double *p = attr(e, n, name);
    return p ? *p : def;
}
static bool attr_bool_(kn_ex *e, const kn_gnode *n, const char *name)
{
    const bool *p = attr(e, n, name);
    return p && *p;
}
static const kn_ints *attr_ints_(kn_ex *e, const kn_gnode *n, const char *name)
{
    static const kn_ints none;
    const kn_ints *p = attr(e, n, name);
    return p ? p : &none;
}
#define attr_int(n, name, def) attr_int_(e, n, name, def)
#define attr_float(n, name, def) attr_float_(e, n, name, def)
#define attr_bool(n, name) attr_bool_(e, n, name)
#define attr_ints(n, name) attr_ints_(e, n, name)
static int64_t ints_at(const kn_ints *v, int i, int64_t def)
{
    return i < v->n ? v->v[i] : def;
}
/* axis normalized against rank (negative counts from the end) */
static int64_t norm_axis(int64_t axis, int rank)
{
    return axis < 0 ? axis + rank : axis;
}

static Onnx__NodeProto *node1(kn_ex *e, const char *op, int n_in, const char *const *in)
{
    return kn__ex_node(e, op, n_in, in, 1, NULL);
}
static const char *out0(Onnx__NodeProto *nd)
{
    return kn__ex_out(nd, 0);
}
static const char *transpose(kn_ex *e, const char *x, int rank, const int64_t *perm)
{
    Onnx__NodeProto *nd = node1(e, "Transpose", 1, &x);
    kn__ex_attr_ints(e, nd, "perm", rank, perm);
    return out0(nd);
}
/* NHWC <-> NCHW for a rank-`rank` activation. */
static const char *to_nchw(kn_ex *e, const char *x, int rank)
{
    int64_t perm[KN_MAX_DIMS] = {0, rank - 1};
    for (int d = 2; d < rank; d++)
        perm[d] = d - 1;
    return transpose(e, x, rank, perm);
}
static const char *to_nhwc(kn_ex *e, const char *x, int rank)
{
    int64_t perm[KN_MAX_DIMS] = {0};
    for (int d = 1; d < rank - 1; d++)
        perm[d] = d + 1;
    perm[rank - 1] = 1;
    return transpose(e, x, rank, perm);
}
static const char *reshape(kn_ex *e, const char *x, int ndim, const int64_t *shape)
{
    const char *in[2] = {x, kn__ex_const_ints(e, ndim, shape)};
    Onnx__NodeProto *nd = node1(e, "Reshape", 2, in);
    for (int d = 0; d < ndim; d++)
        if (shape[d] == 0 && e->opset >= 14) { /* a real 0, not "copy the input's dim" */
            kn__ex_attr_int(e, nd, "allowzero", 1);
            break;
        }
    return out0(nd);
}
/* Reduce<op>(x) over axes (keepdims as given); ReduceSum takes the axes as
 * an input from opset 13, the others as an attribute until 18. */
static const char *reduce(kn_ex *e, const char *op, const char *x, int n_axes, const int64_t *axes,
                          bool keepdims)
{
    Onnx__NodeProto *nd;
    if (!strcmp(op, "ReduceSum")) {
        const char *in[2] = {x, kn__ex_const_ints(e, n_axes, axes)};
        nd = node1(e, op, 2, in);
    } else {
        nd = node1(e, op, 1, &x);
        kn__ex_attr_ints(e, nd, "axes", n_axes, axes);
    }
    kn__ex_attr_int(e, nd, "keepdims", keepdims);
    return out0(nd);
}
static const char *unsqueeze(kn_ex *e, const char *x, int n_axes, const int64_t *axes)
{
    const char *in[2] = {x, kn__ex_const_ints(e, n_axes, axes)};
    return out0(node1(e, "Unsqueeze", 2, in));
}
static const char *squeeze(kn_ex *e, const char *x, int n_axes, const int64_t *axes)
{
    const char *in[2] = {x, kn__ex_const_ints(e, n_axes, axes)};
    return out0(node1(e, "Squeeze", 2, in));
}
static const char *scalar(kn_ex *e, kn_dtype dt, double v)
{
    return kn__ex_const_scalar(e, dt, v);
}
static kn_status done(kn_ex *e, const char *result, const char *out)
{
    kn__ex_finish(e, result, out);
    return e->status;
}
static bool is_int(kn_dtype dt)
{
    return !kn_dtype_is_float(dt) && dt != KN_BOOL;
}

/* ================================================================ elementwise
 * The unary and binary engine ops, shared by the plain nodes, the fused
 * programs and the fused ops' activations. */
static const char *mul_scalar(kn_ex *e, const char *x, kn_dtype dt, double c)
{
    return kn__ex_op2(e, "Mul", x, scalar(e, dt, c));
}
static const char *add_scalar(kn_ex *e, const char *x, kn_dtype dt, double c)
{
    return kn__ex_op2(e, "Add", x, scalar(e, dt, c));
}
static const char *clip(kn_ex *e, const char *x, kn_dtype dt, double lo, double hi)
{
    const char *in[3] = {x, isfinite(lo) ? scalar(e, dt, lo) : "",
                         isfinite(hi) ? scalar(e, dt, hi) : ""};
    return out0(node1(e, "Clip", 3, in));
}
static const char *gelu(kn_ex *e, const char *x, kn_dtype dt, bool tanh_form)
{
    const char *inner;
    if (tanh_form) { /* tanh(k (x + c x^3)) */
        const char *x3 = kn__ex_op2(e, "Mul", kn__ex_op2(e, "Mul", x, x), x);
        const char *u = kn__ex_op2(e, "Add", x, mul_scalar(e, x3, dt, 0.044715));
        inner = kn__ex_op1(e, "Tanh", mul_scalar(e, u, dt, 0.79788456080286535588));
    } else { /* erf(x / sqrt 2) */
        inner = kn__ex_op1(e, "Erf", mul_scalar(e, x, dt, 0.70710678118654752440));
    }
    const char *half = mul_scalar(e, x, dt, 0.5);
    return kn__ex_op2(e, "Mul", half, add_scalar(e, inner, dt, 1.0));
}

/* op(x) for a unary engine op with attrs (alpha, beta): x of dtype in_dt
 * (cast first when the op gives a float from an integer), result out_dt. */
static const char *ew_unary(kn_ex *e, const kn_op_def *d, double alpha, double beta, const char *x,
                            kn_dtype in_dt, kn_dtype out_dt)
{
    if (out_dt == KN_BOOL) { /* predicates */
        if (d == &kn_op_logical_not) return kn__ex_op1(e, "Not", kn__ex_cast(e, x, in_dt, KN_BOOL));
        if (!kn_dtype_is_float(in_dt)) /* an integer is never NaN or infinite */
            return kn__ex_op1(e, "Not", kn__ex_op2(e, "Equal", x, x));
        const char *xf = in_dt == KN_F32 || in_dt == KN_F64 ? x : kn__ex_cast(e, x, in_dt, KN_F32);
        return kn__ex_op1(e, d == &kn_op_isnan ? "IsNaN" : "IsInf", xf);
    }
    x = kn__ex_cast(e, x, in_dt, out_dt);
    kn_dtype dt = out_dt;
    bool integer = is_int(dt);
    static const struct {
        const kn_op_def *def;
        const char *onnx;
    } direct[] = {
        {&kn_op_neg, "Neg"},
        {&kn_op_exp, "Exp"},
        {&kn_op_log, "Log"},
        {&kn_op_abs, "Abs"},
        {&kn_op_sign, "Sign"},
        {&kn_op_sqrt, "Sqrt"},
        {&kn_op_sin, "Sin"},
        {&kn_op_cos, "Cos"},
        {&kn_op_tan, "Tan"},
        {&kn_op_tanh, "Tanh"},
        {&kn_op_sigmoid, "Sigmoid"},
        {&kn_op_erf, "Erf"},
        {&kn_op_reciprocal, "Reciprocal"},
        {&kn_op_softsign, "Softsign"},
    };
    for (size_t i = 0; i < sizeof direct / sizeof *direct; i++)
        if (d == direct[i].def) return kn__ex_op1(e, direct[i].onnx, x);
    if (d == &kn_op_floor || d == &kn_op_ceil || d == &kn_op_round || d == &kn_op_trunc) {
        if (integer) return x; /* rounding an integer keeps it */
        if (d == &kn_op_floor) return kn__ex_op1(e, "Floor", x);
        if (d == &kn_op_ceil) return kn__ex_op1(e, "Ceil", x);
        if (d == &kn_op_round) return kn__ex_op1(e, "Round", x); /* half to even, as kiln */
        /* trunc: sign(x) floor(|x|) */
        return kn__ex_op2(e, "Mul", kn__ex_op1(e, "Sign", x),
                          kn__ex_op1(e, "Floor", kn__ex_op1(e, "Abs", x)));
    }
    if (d == &kn_op_expm1) return add_scalar(e, kn__ex_op1(e, "Exp", x), dt, -1.0);
    if (d == &kn_op_log1p) return kn__ex_op1(e, "Log", add_scalar(e, x, dt, 1.0));
    if (d == &kn_op_rsqrt) return kn__ex_op1(e, "Reciprocal", kn__ex_op1(e, "Sqrt", x));
    if (d == &kn_op_square) return kn__ex_op2(e, "Mul", x, x);
    if (d == &kn_op_relu)
        return integer ? kn__ex_op2(e, "Max", x, scalar(e, dt, 0)) : kn__ex_op1(e, "Relu", x);
    if (d == &kn_op_relu6) return clip(e, x, dt, 0, 6);
    if (d == &kn_op_clip) return clip(e, x, dt, alpha, beta);
    if (d == &kn_op_leaky_relu || d == &kn_op_elu) {
        Onnx__NodeProto *nd = node1(e, d == &kn_op_elu ? "Elu" : "LeakyRelu", 1, &x);
        kn__ex_attr_float(e, nd, "alpha", alpha);
        return out0(nd);
    }
    if (d == &kn_op_selu) {
        Onnx__NodeProto *nd = node1(e, "Selu", 1, &x);
        kn__ex_attr_float(e, nd, "alpha", 1.6732632423543772848170429916717);
        kn__ex_attr_float(e, nd, "gamma", 1.0507009873554804934193349852946);
        return out0(nd);
    }
    if (d == &kn_op_gelu || d == &kn_op_gelu_tanh) return gelu(e, x, dt, d == &kn_op_gelu_tanh);
    if (d == &kn_op_silu) return kn__ex_op2(e, "Mul", x, kn__ex_op1(e, "Sigmoid", x));
    if (d == &kn_op_mish)
        return kn__ex_op2(e, "Mul", x, kn__ex_op1(e, "Tanh", kn__ex_op1(e, "Softplus", x)));
    if (d == &kn_op_softplus) { /* x where beta x > threshold, else softplus(beta x) / beta */
        const char *bx = alpha == 1 ? x : mul_scalar(e, x, dt, alpha);
        const char *sp = kn__ex_op1(e, "Softplus", bx);
        if (alpha != 1) sp = mul_scalar(e, sp, dt, 1.0 / alpha);
        if (!isfinite(beta) && beta > 0) return sp;
        const char *in[3] = {kn__ex_op2(e, "Greater", bx, scalar(e, dt, beta)), x, sp};
        return out0(node1(e, "Where", 3, in));
    }
    if (d == &kn_op_hard_sigmoid) {
        Onnx__NodeProto *nd = node1(e, "HardSigmoid", 1, &x);
        kn__ex_attr_float(e, nd, "alpha", alpha);
        kn__ex_attr_float(e, nd, "beta", beta);
        return out0(nd);
    }
    if (d == &kn_op_hard_swish) {
        if (e->opset >= 14) return kn__ex_op1(e, "HardSwish", x);
        Onnx__NodeProto *nd = node1(e, "HardSigmoid", 1, &x);
        kn__ex_attr_float(e, nd, "alpha", 1.0 / 6.0);
        kn__ex_attr_float(e, nd, "beta", 0.5);
        return kn__ex_op2(e, "Mul", x, out0(nd));
    }
    kn__ex_fail(e, KN_ERR_UNSUPPORTED, "unary op '%s' has no ONNX form", d->name);
    return "";
}

/* kn__result_type on (dtype, rank) pairs: a 0-d operand decides only when
 * it is of a higher category (bool < integer < float). */
static kn_dtype result_type(kn_dtype a, int ra, kn_dtype b, int rb)
{
    if ((ra == 0) == (rb == 0)) return kn_dtype_promote(a, b);
    kn_dtype dim = ra == 0 ? b : a, sc = ra == 0 ? a : b;
    int cd = kn_dtype_is_float(dim) ? 2 : dim == KN_BOOL ? 0 : 1;
    int cs = kn_dtype_is_float(sc) ? 2 : sc == KN_BOOL ? 0 : 1;
    if (cs <= cd) return dim;
    return cs == 2 ? KN_F32 : KN_I64;
}

/* atan2(y, x) = atan(y / x) moved to the right half-turn, 0 at the origin. */
static const char *atan2_(kn_ex *e, const char *y, const char *x, kn_dtype dt)
{
    const char *q = kn__ex_op1(e, "Atan", kn__ex_op2(e, "Div", y, x));
    const char *zero = scalar(e, dt, 0);
    const char *w1[3] = {kn__ex_op2(e, "Less", y, zero), scalar(e, dt, -KN_EX_PI),
                         scalar(e, dt, KN_EX_PI)};
    const char *w2[3] = {kn__ex_op2(e, "Less", x, zero), out0(node1(e, "Where", 3, w1)), zero};
    const char *r = kn__ex_op2(e, "Add", q, out0(node1(e, "Where", 3, w2)));
    const char *origin =
        kn__ex_op2(e, "And", kn__ex_op2(e, "Equal", x, zero), kn__ex_op2(e, "Equal", y, zero));
    const char *w3[3] = {origin, zero, r};
    return out0(node1(e, "Where", 3, w3));
}

/* op(a, b) for a binary engine op; operands of dtypes (rank) at, bt; result out_dt. */
static const char *ew_binary(kn_ex *e, const kn_op_def *d, const char *a, kn_dtype at, int ra,
                             const char *b, kn_dtype bt, int rb, kn_dtype out_dt)
{
    const kn_binary_fn *fn = d->data;
    if (fn->logical) {
        const char *op = d == &kn_op_logical_and ? "And" : d == &kn_op_logical_or ? "Or" : "Xor";
        return kn__ex_op2(e, op, kn__ex_cast(e, a, at, KN_BOOL), kn__ex_cast(e, b, bt, KN_BOOL));
    }
    if (out_dt == KN_BOOL) { /* comparisons, in the promoted dtype */
        kn_dtype c = result_type(at, ra, bt, rb);
        bool order = d != &kn_op_eq && d != &kn_op_ne;
        if (c == KN_BOOL && order) c = KN_I32; /* ONNX orders no bools */
        a = kn__ex_cast(e, a, at, c), b = kn__ex_cast(e, b, bt, c);
        if (d == &kn_op_eq) return kn__ex_op2(e, "Equal", a, b);
        if (d == &kn_op_ne) return kn__ex_op1(e, "Not", kn__ex_op2(e, "Equal", a, b));
        if (d == &kn_op_lt) return kn__ex_op2(e, "Less", a, b);
        if (d == &kn_op_le) return kn__ex_op2(e, "LessOrEqual", a, b);
        if (d == &kn_op_gt) return kn__ex_op2(e, "Greater", a, b);
        if (d == &kn_op_ge) return kn__ex_op2(e, "GreaterOrEqual", a, b);
    } else {
        a = kn__ex_cast(e, a, at, out_dt), b = kn__ex_cast(e, b, bt, out_dt);
        if (d == &kn_op_add) return kn__ex_op2(e, "Add", a, b);
        if (d == &kn_op_sub) return kn__ex_op2(e, "Sub", a, b);
        if (d == &kn_op_mul) return kn__ex_op2(e, "Mul", a, b);
        if (d == &kn_op_div) return kn__ex_op2(e, "Div", a, b);
        if (d == &kn_op_pow) return kn__ex_op2(e, "Pow", a, b);
        if (d == &kn_op_maximum) return kn__ex_op2(e, "Max", a, b);
        if (d == &kn_op_minimum) return kn__ex_op2(e, "Min", a, b);
        if (d == &kn_op_atan2) return atan2_(e, a, b, out_dt);
        if (d == &kn_op_fmod) {
            Onnx__NodeProto *nd = node1(e, "Mod", 2, (const char *[]){a, b});
            kn__ex_attr_int(e, nd, "fmod", 1); /* C's fmod: the sign of the dividend */
            return out0(nd);
        }
    }
    kn__ex_fail(e, KN_ERR_UNSUPPORTED, "binary op '%s' has no ONNX form", d->name);
    return "";
}

static kn_status cv_unary(kn_ex *e, const kn_gnode *n, const char *const *in,
                          const char *const *out)
{
    double alpha = 0, beta = 0;
    if (n->attrs && n->def->attrs_size == sizeof(kn_unary_attrs)) {
        const kn_unary_attrs *at = n->attrs;
        alpha = at->alpha, beta = at->beta;
    }
    return done(e, ew_unary(e, n->def, alpha, beta, in[0], IN(0)->dtype, OUT(0)->dtype), out[0]);
}

static kn_status cv_binary(kn_ex *e, const kn_gnode *n, const char *const *in,
                           const char *const *out)
{
    return done(e,
                ew_binary(e, n->def, in[0], IN(0)->dtype, IN(0)->ndim, in[1], IN(1)->dtype,
                          IN(1)->ndim, OUT(0)->dtype),
                out[0]);
}

static kn_status cv_where(kn_ex *e, const kn_gnode *n, const char *const *in,
                          const char *const *out)
{
    kn_dtype dt = OUT(0)->dtype;
    const char *w[3] = {kn__ex_cast(e, in[0], IN(0)->dtype, KN_BOOL),
                        kn__ex_cast(e, in[1], IN(1)->dtype, dt),
                        kn__ex_cast(e, in[2], IN(2)->dtype, dt)};
    return done(e, out0(node1(e, "Where", 3, w)), out[0]);
}

/* Broadcast shape of two shapes (valid by construction). */
static int broadcast(int na, const int64_t *a, int nb, const int64_t *b, int64_t *out)
{
    int nd = na > nb ? na : nb;
    for (int i = 0; i < nd; i++) {
        int64_t da = i < nd - na ? 1 : a[i - (nd - na)], db = i < nd - nb ? 1 : b[i - (nd - nb)];
        out[i] = da == 1 ? db : da;
    }
    return nd;
}

/* fused_elementwise: its program step by step (all f32); an Expand when
 * the last step reads only inputs smaller than the output. */
static kn_status cv_fused(kn_ex *e, const kn_gnode *n, const char *const *in,
                          const char *const *out)
{
    const kn_fused_attrs *at = n->attrs;
    if (at->registry != kn__registry_fingerprint())
        return kn__ex_fail(e, KN_ERR_ARG, "the fused program was built by a kiln with other ops");
    const char *res[KN_FUSED_MAX_STEPS];
    int nd[KN_FUSED_MAX_STEPS];
    int64_t shape[KN_FUSED_MAX_STEPS][KN_MAX_DIMS];
    for (int j = 0; j < at->n_steps && !e->status; j++) {
        const kn_fused_step *st = &at->steps[j];
        const kn_op_def *d = kn_op_at(st->op);
        int32_t ops[2] = {st->a, st->b};
        const char *x[2];
        int xn[2];
        const int64_t *xs[2];
        for (int k = 0; k < (d && d->n_in == 2 ? 2 : 1); k++) {
            int32_t r = ops[k];
            bool step = r >= KN_FUSED_STEP_REF;
            if (step ? r - KN_FUSED_STEP_REF >= j : r < 0 || r >= n->n_in)
                return kn__ex_fail(e, KN_ERR_ARG, "fused step %d reads operand %d", j, (int)r);
            x[k] = step ? res[r - KN_FUSED_STEP_REF] : in[r];
            xn[k] = step ? nd[r - KN_FUSED_STEP_REF] : IN(r)->ndim;
            xs[k] = step ? shape[r - KN_FUSED_STEP_REF] : IN(r)->shape;
        }
        if (!d || !kn__fusable_op(d))
            return kn__ex_fail(e, KN_ERR_ARG, "fused step %d: op %d is not fusable", j,
                               (int)st->op);
        if (d->n_in == 1) {
            res[j] = ew_unary(e, d, st->alpha, st->beta, x[0], KN_F32, KN_F32);
            nd[j] = xn[0];
            memcpy(shape[j], xs[0], sizeof(int64_t) * (size_t)xn[0]);
        } else {
            res[j] = ew_binary(e, d, x[0], KN_F32, xn[0], x[1], KN_F32, xn[1], KN_F32);
            nd[j] = broadcast(xn[0], xs[0], xn[1], xs[1], shape[j]);
        }
    }
    if (e->status) return e->status;
    int last = at->n_steps - 1;
    const char *r = res[last];
    if (nd[last] != OUT(0)->ndim ||
        memcmp(shape[last], OUT(0)->shape, sizeof(int64_t) * (size_t)nd[last]))
        r = kn__ex_op2(e, "Expand", r, kn__ex_const_ints(e, OUT(0)->ndim, OUT(0)->shape));
    return done(e, r, out[0]);
}

/* A kn_act applied to x (f32 or another float dtype dt). */
static const char *activate(kn_ex *e, const char *x, kn_dtype dt, int64_t act)
{
    static const kn_op_def *const defs[] = {
        [KN_ACT_RELU] = &kn_op_relu, [KN_ACT_RELU6] = &kn_op_relu6,
        [KN_ACT_GELU] = &kn_op_gelu, [KN_ACT_GELU_TANH] = &kn_op_gelu_tanh,
        [KN_ACT_SILU] = &kn_op_silu, [KN_ACT_SIGMOID] = &kn_op_sigmoid,
        [KN_ACT_TANH] = &kn_op_tanh, [KN_ACT_LEAKY_RELU] = &kn_op_leaky_relu,
        [KN_ACT_ELU] = &kn_op_elu,   [KN_ACT_SOFTPLUS] = &kn_op_softplus,
        [KN_ACT_MISH] = &kn_op_mish, [KN_ACT_HARDSWISH] = &kn_op_hard_swish,
    };
    if (act == KN_ACT_NONE) return x;
    if (act < 0 || act >= (int64_t)(sizeof defs / sizeof *defs) || !defs[act]) {
        kn__ex_fail(e, KN_ERR_ARG, "activation %lld is not a kn_act", (long long)act);
        return "";
    }
    double alpha = act == KN_ACT_LEAKY_RELU ? 0.01 : 1.0, beta = act == KN_ACT_SOFTPLUS ? 20.0 : 0;
    return ew_unary(e, defs[act], alpha, beta, x, dt, dt);
}

/* ================================================================ linear algebra */
/* The last two dims of a rank-`rank` tensor swapped. */
static const char *swap_last(kn_ex *e, const char *x, int rank)
{
    int64_t perm[KN_MAX_DIMS];
    for (int d = 0; d < rank; d++)
        perm[d] = d;
    perm[rank - 2] = rank - 1, perm[rank - 1] = rank - 2;
    return transpose(e, x, rank, perm);
}

static kn_status cv_matmul(kn_ex *e, const kn_gnode *n, const char *const *in,
                           const char *const *out)
{
    kn_dtype dt = OUT(0)->dtype;
    const char *a = kn__ex_cast(e, in[0], IN(0)->dtype, dt),
               *b = kn__ex_cast(e, in[1], IN(1)->dtype, dt);
    if (attr_bool(n, "transpose_a") && IN(0)->ndim >= 2) a = swap_last(e, a, IN(0)->ndim);
    if (attr_bool(n, "transpose_b") && IN(1)->ndim >= 2) b = swap_last(e, b, IN(1)->ndim);
    return done(e, kn__ex_op2(e, "MatMul", a, b), out[0]);
}

/* x (..., in) · wᵀ + bias: Gemm for a matrix x, else MatMul and Add. */
static const char *linear(kn_ex *e, const char *x, int xnd, const char *w, const char *bias)
{
    if (xnd == 2) {
        const char *in[3] = {x, w, bias ? bias : ""};
        Onnx__NodeProto *nd = node1(e, "Gemm", bias ? 3 : 2, in);
        kn__ex_attr_int(e, nd, "transB", 1);
        return out0(nd);
    }
    const char *y = kn__ex_op2(e, "MatMul", x, transpose(e, w, 2, (int64_t[]){1, 0}));
    return bias ? kn__ex_op2(e, "Add", y, bias) : y;
}

static kn_status cv_linear(kn_ex *e, const kn_gnode *n, const char *const *in,
                           const char *const *out)
{
    const char *y = linear(e, in[0], IN(0)->ndim, in[1], in[2]);
    if (n->def == &kn_op_linear_fused) {
        if (n->n_in > 3 && in[3]) y = kn__ex_op2(e, "Add", y, in[3]);
        y = activate(e, y, OUT(0)->dtype, attr_int(n, "act", KN_ACT_NONE));
    }
    return done(e, y, out[0]);
}

static kn_status cv_addmm(kn_ex *e, const kn_gnode *n, const char *const *in,
                          const char *const *out)
{
    const char *g[3] = {in[1], in[2], in[0]};
    Onnx__NodeProto *nd = node1(e, "Gemm", 3, g);
    kn__ex_attr_float(e, nd, "alpha", attr_float(n, "alpha", 1));
    kn__ex_attr_float(e, nd, "beta", attr_float(n, "beta", 1));
    return done(e, out0(nd), out[0]);
}

/* ================================================================ convolution */
typedef struct conv_geom {
    int nsp;
    int64_t stride[3], dilation[3], pb[3], pe[3], out_pad[3], groups, layout;
    bool pad_same, transpose;
} conv_geom;

static void geom_from_attrs(kn_ex *e, const kn_gnode *n, int nsp, bool transpose, conv_geom *g)
{
    memset(g, 0, sizeof *g);
    g->nsp = nsp, g->transpose = transpose;
    for (int i = 0; i < nsp; i++) {
        g->stride[i] = ints_at(attr_ints(n, "stride"), i, 1);
        g->dilation[i] = ints_at(attr_ints(n, "dilation"), i, 1);
        g->pb[i] = ints_at(attr_ints(n, "pad_begin"), i, 0);
        g->pe[i] = ints_at(attr_ints(n, "pad_end"), i, 0);
        g->out_pad[i] = ints_at(attr_ints(n, "output_padding"), i, 0);
    }
    g->groups = attr_int(n, "groups", 1);
    g->pad_same = attr_bool(n, "pad_same");
    g->layout = attr_int(n, "layout", KN_LAYOUT_NCHW);
}

static void geom_from_params(const kn_conv_params *p, conv_geom *g)
{
    memset(g, 0, sizeof *g);
    g->nsp = 2;
    for (int i = 0; i < 2; i++) {
        g->stride[i] = p->stride[i] ? p->stride[i] : 1;
        g->dilation[i] = p->dilation[i] ? p->dilation[i] : 1;
        g->pb[i] = p->pad_begin[i], g->pe[i] = p->pad_end[i];
    }
    g->groups = p->groups ? p->groups : 1;
    g->pad_same = p->pad_same;
    g->layout = p->layout;
}

/* Conv / ConvTranspose of x (value xv, kiln layout) by w (value wv); the
 * result in kiln's layout, or NCHW when nchw_out (the caller transposes). */
static const char *conv(kn_ex *e, conv_geom *g, const char *x, const kn_gvalue *xv, const char *w,
                        const kn_gvalue *wv, const char *bias, bool nchw_out)
{
    int rank = xv->ndim, nsp = g->nsp;
    bool nhwc = g->layout == KN_LAYOUT_NHWC;
    if (rank != nsp + 2 || wv->ndim != nsp + 2) {
        kn__ex_fail(e, KN_ERR_SHAPE, "input rank %d and weight rank %d, expected %d", rank,
                    wv->ndim, nsp + 2);
        return "";
    }
    int64_t kernel[3], pads[6];
    for (int i = 0; i < nsp; i++) {
        kernel[i] = wv->shape[2 + i];
        if (g->pad_same) { /* SAME_UPPER, as kiln computes it */
            int64_t in = xv->shape[nhwc ? 1 + i : 2 + i], s = g->stride[i];
            int64_t out = in / s + (in % s != 0), ext = g->dilation[i] * (kernel[i] - 1) + 1;
            int64_t total = out > 0 ? (out - 1) * s + ext - in : 0;
            if (total < 0) total = 0;
            g->pb[i] = total / 2, g->pe[i] = total - total / 2;
        }
        pads[i] = g->pb[i], pads[nsp + i] = g->pe[i];
    }
    if (nhwc) x = to_nchw(e, x, rank);
    const char *in[3] = {x, w, bias ? bias : ""};
    Onnx__NodeProto *nd = node1(e, g->transpose ? "ConvTranspose" : "Conv", bias ? 3 : 2, in);
    kn__ex_attr_ints(e, nd, "kernel_shape", nsp, kernel);
    kn__ex_attr_ints(e, nd, "strides", nsp, g->stride);
    kn__ex_attr_ints(e, nd, "dilations", nsp, g->dilation);
    kn__ex_attr_ints(e, nd, "pads", 2 * nsp, pads);
    kn__ex_attr_int(e, nd, "group", g->groups);
    if (g->transpose) kn__ex_attr_ints(e, nd, "output_padding", nsp, g->out_pad);
    return nhwc && !nchw_out ? to_nhwc(e, out0(nd), rank) : out0(nd);
}

static kn_status cv_conv(kn_ex *e, const kn_gnode *n, const char *const *in, const char *const *out)
{
    const kn_op_def *d = n->def;
    bool tr = d == &kn_op_conv_transpose1d || d == &kn_op_conv_transpose2d ||
              d == &kn_op_conv_transpose3d;
    int nsp = d == &kn_op_conv1d || d == &kn_op_conv_transpose1d   ? 1
              : d == &kn_op_conv2d || d == &kn_op_conv_transpose2d ? 2
                                                                   : 3;
    conv_geom g;
    geom_from_attrs(e, n, nsp, tr, &g);
    return done(e, conv(e, &g, in[0], IN(0), in[1], IN(1), in[2], false), out[0]);
}

/* conv2d_fused: Conv (+ bias) + residual, then the activation. An NHWC one
 * (the layout pass) does all of it in NCHW between one Transpose in and one
 * out, so that neighbouring ones cancel when the file is cleaned up. */
static kn_status cv_conv_fused(kn_ex *e, const kn_gnode *n, const char *const *in,
                               const char *const *out)
{
    conv_geom g;
    geom_from_params(kn__conv_fused_params((void *)n->attrs), &g);
    bool nhwc = g.layout == KN_LAYOUT_NHWC;
    int rank = IN(0)->ndim;
    const char *y = conv(e, &g, in[0], IN(0), in[1], IN(1), in[2], true);
    if (in[3]) {
        const char *r = kn__ex_cast(e, in[3], IN(3)->dtype, OUT(0)->dtype);
        y = kn__ex_op2(e, "Add", y, nhwc ? to_nchw(e, r, rank) : r);
    }
    y = activate(e, y, OUT(0)->dtype, attr_int(n, "act", KN_ACT_NONE));
    return done(e, nhwc ? to_nhwc(e, y, rank) : y, out[0]);
}

/* ================================================================ pooling */
/* Per output position (1, 1, out...): the window size over the window
 * cells inside the input and its padding (pads begin, and pad_end at the
 * end), the factor turning an average over whole windows into kiln's. */
static const char *pool_count_fix(kn_ex *e, kn_dtype dt, int nsp, const int64_t *in,
                                  const int64_t *out, const int64_t *k, const int64_t *s,
                                  const int64_t *pads, const int64_t *pad_end)
{
    int64_t shape[5] = {1, 1}, numel = 1, whole = 1;
    for (int i = 0; i < nsp; i++)
        shape[2 + i] = out[i], numel *= out[i], whole *= k[i];
    const char *name;
    uint8_t *raw = kn__ex_const_raw(e, dt, nsp + 2, shape, &name);
    for (int64_t p = 0; raw && p < numel; p++) {
        int64_t rem = p, cells = 1;
        for (int i = nsp - 1; i >= 0; i--) {
            int64_t o = rem % out[i], start = o * s[i] - pads[i], end = start + k[i];
            rem /= out[i];
            if (end > in[i] + pad_end[i]) end = in[i] + pad_end[i];
            cells *= end - start;
        }
        kn__store(dt, raw + (size_t)p * kn_dtype_size(dt), (double)whole / (double)cells);
    }
    return name;
}

static kn_status cv_pool(kn_ex *e, const kn_gnode *n, const char *const *in, const char *const *out)
{
    const kn_gvalue *xv = IN(0);
    int rank = xv->ndim, nsp = rank - 2;
    bool nhwc = attr_int(n, "layout", 0) == KN_LAYOUT_NHWC, max = n->def == &kn_op_max_pool;
    int64_t kernel[3], stride[3], pads[6];
    const kn_ints *k = attr_ints(n, "kernel"), *s = attr_ints(n, "stride");
    for (int i = 0; i < nsp; i++) {
        kernel[i] = ints_at(k, i, 1);
        stride[i] = ints_at(s, i, 0) ? ints_at(s, i, 0) : kernel[i];
        pads[i] = ints_at(attr_ints(n, "pad_begin"), i, 0);
        pads[nsp + i] = ints_at(attr_ints(n, "pad_end"), i, 0);
    }
    /* ceil mode as kiln (and PyTorch) count it: no window starting in the
     * right padding. Where the padding adds nothing (max, or an average
     * over real elements only), pad the end up to the output kiln has in
     * floor mode instead, which ONNX runtimes agree on. */
    bool ceil = attr_bool(n, "ceil_mode"), include = !max && attr_bool(n, "count_include_pad");
    int64_t in_sz[3], out_sz[3], pad_end[3];
    bool padded = false;
    for (int i = 0; i < nsp; i++) {
        in_sz[i] = xv->shape[nhwc ? 1 + i : 2 + i], out_sz[i] = OUT(0)->shape[nhwc ? 1 + i : 2 + i];
        int64_t need = (out_sz[i] - 1) * stride[i] + kernel[i] - in_sz[i] - pads[i];
        pad_end[i] = pads[nsp + i];
        if (ceil && need > pads[nsp + i]) pads[nsp + i] = need, padded = true;
    }
    const char *x = nhwc ? to_nchw(e, in[0], rank) : in[0];
    Onnx__NodeProto *nd = node1(e, max ? "MaxPool" : "AveragePool", 1, &x);
    kn__ex_attr_ints(e, nd, "kernel_shape", nsp, kernel);
    kn__ex_attr_ints(e, nd, "strides", nsp, stride);
    kn__ex_attr_ints(e, nd, "pads", 2 * nsp, pads);
    if (!max) kn__ex_attr_int(e, nd, "count_include_pad", include);
    const char *y = out0(nd);
    if (include && padded) /* kiln counts no window cell past the right padding */
        y = kn__ex_op2(
            e, "Mul", y,
            pool_count_fix(e, xv->dtype, nsp, in_sz, out_sz, kernel, stride, pads, pad_end));
    return done(e, nhwc ? to_nhwc(e, y, rank) : y, out[0]);
}

static kn_status cv_global_pool(kn_ex *e, const kn_gnode *n, const char *const *in,
                                const char *const *out)
{
    int rank = IN(0)->ndim;
    bool nhwc = attr_int(n, "layout", 0) == KN_LAYOUT_NHWC;
    const char *x = nhwc ? to_nchw(e, in[0], rank) : in[0];
    const char *y =
        kn__ex_op1(e, n->def == &kn_op_global_max_pool ? "GlobalMaxPool" : "GlobalAveragePool", x);
    return done(e, nhwc ? to_nhwc(e, y, rank) : y, out[0]);
}

/* Adaptive pools: global when the output is 1x1, a plain pool when the
 * output divides the input (equal bins), else no ONNX form. */
static kn_status cv_adaptive_pool(kn_ex *e, const kn_gnode *n, const char *const *in,
                                  const char *const *out)
{
    bool nhwc = attr_int(n, "layout", 0) == KN_LAYOUT_NHWC,
         max = n->def == &kn_op_adaptive_max_pool2d;
    const kn_ints *os = attr_ints(n, "out_size");
    int64_t h = IN(0)->shape[nhwc ? 1 : 2], w = IN(0)->shape[nhwc ? 2 : 3];
    int64_t oh = ints_at(os, 0, 1), ow = ints_at(os, 1, 1);
    if (oh < 1 || ow < 1 || h % oh || w % ow)
        return kn__ex_fail(
            e, KN_ERR_UNSUPPORTED,
            "input %lldx%lld to output %lldx%lld: ONNX has adaptive pooling only for "
            "output sizes that divide the input",
            (long long)h, (long long)w, (long long)oh, (long long)ow);
    const char *x = nhwc ? to_nchw(e, in[0], 4) : in[0], *y;
    if (oh == 1 && ow == 1) {
        y = kn__ex_op1(e, max ? "GlobalMaxPool" : "GlobalAveragePool", x);
    } else {
        Onnx__NodeProto *nd = node1(e, max ? "MaxPool" : "AveragePool", 1, &x);
        int64_t k[2] = {h / oh, w / ow};
        kn__ex_attr_ints(e, nd, "kernel_shape", 2, k);
        kn__ex_attr_ints(e, nd, "strides", 2, k);
        y = out0(nd);
    }
    return done(e, nhwc ? to_nhwc(e, y, 4) : y, out[0]);
}

static kn_status cv_upsample(kn_ex *e, const kn_gnode *n, const char *const *in,
                             const char *const *out)
{
    bool nhwc = attr_int(n, "layout", 0) == KN_LAYOUT_NHWC,
         nearest = n->def == &kn_op_upsample_nearest2d;
    const kn_gvalue *yv = OUT(0);
    int64_t sizes[4] = {yv->shape[0], yv->shape[nhwc ? 3 : 1], yv->shape[nhwc ? 1 : 2],
                        yv->shape[nhwc ? 2 : 3]};
    const char *r[4] = {nhwc ? to_nchw(e, in[0], 4) : in[0], "", "",
                        kn__ex_const_ints(e, 4, sizes)};
    Onnx__NodeProto *nd = node1(e, "Resize", 4, r);
    if (nearest) { /* src = floor(dst * in / out) */
        kn__ex_attr_string(e, nd, "mode", "nearest");
        kn__ex_attr_string(e, nd, "coordinate_transformation_mode", "asymmetric");
        kn__ex_attr_string(e, nd, "nearest_mode", "floor");
    } else {
        kn__ex_attr_string(e, nd, "mode", "linear");
        kn__ex_attr_string(e, nd, "coordinate_transformation_mode",
                           attr_bool(n, "align_corners") ? "align_corners" : "pytorch_half_pixel");
    }
    return done(e, nhwc ? to_nhwc(e, out0(nd), 4) : out0(nd), out[0]);
}

/* ================================================================ normalization */
/* kiln's normalize over the axes in mask, computed in the statistics dtype
 * sd: y (x's dtype), and the keepdim mean and rstd (sd) when asked. */
static void normalize(kn_ex *e, const char *x, const kn_gvalue *xv, const bool *mask, double eps,
                      bool center, const char **y, const char **mean, const char **rstd)
{
    kn_dtype sd = xv->dtype == KN_F64 ? KN_F64 : KN_F32;
    int64_t axes[KN_MAX_DIMS], keep[KN_MAX_DIMS];
    int na = 0;
    for (int d = 0; d < xv->ndim; d++) {
        if (mask[d]) axes[na++] = d;
        keep[d] = mask[d] ? 1 : xv->shape[d];
    }
    const char *xs = kn__ex_cast(e, x, xv->dtype, sd), *m = NULL, *dev = xs;
    if (center) {
        m = reduce(e, "ReduceMean", xs, na, axes, true);
        dev = kn__ex_op2(e, "Sub", xs, m);
    }
    const char *var = reduce(e, "ReduceMean", kn__ex_op2(e, "Mul", dev, dev), na, axes, true);
    const char *r = kn__ex_op1(e, "Reciprocal", kn__ex_op1(e, "Sqrt", add_scalar(e, var, sd, eps)));
    const char *yy = kn__ex_cast(e, kn__ex_op2(e, "Mul", dev, r), sd, xv->dtype);
    if (y) *y = yy;
    if (mean) *mean = m ? m : kn__ex_const_fill(e, sd, xv->ndim, keep, 0);
    if (rstd) *rstd = r;
}

/* True when mask selects the last n dims of a rank-`rank` tensor. */
static bool trailing(const bool *mask, int rank, int *n)
{
    int first = rank;
    while (first > 0 && mask[first - 1])
        first--;
    for (int d = 0; d < first; d++)
        if (mask[d]) return false;
    *n = rank - first;
    return *n > 0;
}

/* LayerNormalization (opset 17) over the last n dims; outputs y, mean, rstd
 * (any may be NULL for a fresh name). */
static Onnx__NodeProto *layer_norm17(kn_ex *e, const char *x, const kn_gvalue *xv, int n_axes,
                                     const char *gamma, const char *beta, double eps,
                                     const char *const *outs)
{
    if (!gamma) gamma = kn__ex_const_fill(e, xv->dtype, n_axes, xv->shape + xv->ndim - n_axes, 1.0);
    const char *in[3] = {x, gamma, beta ? beta : ""};
    Onnx__NodeProto *nd = kn__ex_node(e, "LayerNormalization", beta ? 3 : 2, in, 3, outs);
    kn__ex_attr_int(e, nd, "axis", xv->ndim - n_axes);
    kn__ex_attr_float(e, nd, "epsilon", eps);
    return nd;
}

static kn_status cv_normalize(kn_ex *e, const kn_gnode *n, const char *const *in,
                              const char *const *out)
{
    const kn_gvalue *xv = IN(0);
    const kn_ints *ax = attr_ints(n, "axes");
    bool mask[KN_MAX_DIMS] = {false}, center = attr_bool(n, "center");
    double eps = attr_float(n, "eps", 1e-5);
    for (int i = 0; i < ax->n; i++) {
        int64_t a = norm_axis(ax->v[i], xv->ndim);
        if (a < 0 || a >= xv->ndim)
            return kn__ex_fail(e, KN_ERR_ARG, "axis %lld out of range", (long long)ax->v[i]);
        mask[a] = true;
    }
    int nt;
    if (e->opset >= 17 && center && xv->dtype == KN_F32 && trailing(mask, xv->ndim, &nt)) {
        layer_norm17(e, in[0], xv, nt, NULL, NULL, eps, out);
        return e->status;
    }
    const char *y, *m, *r;
    normalize(e, in[0], xv, mask, eps, center, &y, &m, &r);
    kn__ex_finish(e, y, out[0]);
    kn__ex_finish(e, m, out[1]);
    kn__ex_finish(e, r, out[2]);
    return e->status;
}

static kn_status cv_layer_norm(kn_ex *e, const kn_gnode *n, const char *const *in,
                               const char *const *out)
{
    const kn_gvalue *xv = IN(0);
    const kn_ints *ax = attr_ints(n, "axes");
    int na = (int)ints_at(ax, 0, 1);
    double eps = attr_float(n, "eps", 1e-5);
    bool rms = n->def == &kn_op_rms_norm;
    const char *beta = !rms && n->n_in > 2 ? in[2] : NULL;
    if (na < 1 || na > xv->ndim)
        return kn__ex_fail(e, KN_ERR_ARG, "n_axes %d for %d dims", na, xv->ndim);
    if (!rms && e->opset >= 17) {
        const char *outs[3] = {out[0], NULL, NULL};
        layer_norm17(e, in[0], xv, na, in[1], beta, eps, outs);
        return e->status;
    }
    bool mask[KN_MAX_DIMS] = {false};
    for (int d = xv->ndim - na; d < xv->ndim; d++)
        mask[d] = true;
    const char *y;
    normalize(e, in[0], xv, mask, eps, !rms, &y, NULL, NULL);
    if (in[1]) y = kn__ex_op2(e, "Mul", y, in[1]);
    if (beta) y = kn__ex_op2(e, "Add", y, beta);
    return done(e, y, out[0]);
}

/* (C) parameters shaped (C, 1, ...) to broadcast over (N, C, spatial...). */
static const char *per_channel(kn_ex *e, const char *p, const kn_gvalue *xv)
{
    int64_t shape[KN_MAX_DIMS] = {xv->shape[1]};
    for (int d = 1; d < xv->ndim - 1; d++)
        shape[d] = 1;
    return reshape(e, p, xv->ndim - 1, shape);
}

static kn_status cv_group_norm(kn_ex *e, const kn_gnode *n, const char *const *in,
                               const char *const *out)
{
    const kn_gvalue *xv = IN(0);
    double eps = attr_float(n, "eps", 1e-5);
    int64_t c = xv->shape[1];
    if (n->def == &kn_op_instance_norm && xv->ndim >= 3) {
        const char *g[3] = {in[0], in[1] ? in[1] : kn__ex_const_fill(e, xv->dtype, 1, &c, 1.0),
                            in[2] ? in[2] : kn__ex_const_fill(e, xv->dtype, 1, &c, 0.0)};
        Onnx__NodeProto *nd = node1(e, "InstanceNormalization", 3, g);
        kn__ex_attr_float(e, nd, "epsilon", eps);
        return done(e, out0(nd), out[0]);
    }
    int64_t groups = n->def == &kn_op_instance_norm ? c : attr_int(n, "groups", 1);
    if (groups < 1 || c % groups)
        return kn__ex_fail(e, KN_ERR_ARG, "%lld groups for %lld channels", (long long)groups,
                           (long long)c);
    int64_t rest = c / groups;
    for (int d = 2; d < xv->ndim; d++)
        rest *= xv->shape[d];
    kn_gvalue gv = {.dtype = xv->dtype, .ndim = 3, .shape = {xv->shape[0], groups, rest}};
    bool mask[3] = {false, false, true};
    const char *y;
    normalize(e, reshape(e, in[0], 3, gv.shape), &gv, mask, eps, true, &y, NULL, NULL);
    y = reshape(e, y, xv->ndim, xv->shape);
    if (in[1]) y = kn__ex_op2(e, "Mul", y, per_channel(e, in[1], xv));
    if (in[2]) y = kn__ex_op2(e, "Add", y, per_channel(e, in[2], xv));
    return done(e, y, out[0]);
}

static kn_status cv_batch_norm(kn_ex *e, const kn_gnode *n, const char *const *in,
                               const char *const *out)
{
    const kn_gvalue *xv = IN(0);
    if (attr_bool(n, "training"))
        return kn__ex_fail(e, KN_ERR_UNSUPPORTED,
                           "batch_norm in training mode (batch statistics) has no "
                           "inference form: compile the graph for inference");
    if (!in[3] || !in[4])
        return kn__ex_fail(e, KN_ERR_ARG, "batch_norm without running statistics");
    bool nhwc = attr_int(n, "layout", 0) == KN_LAYOUT_NHWC;
    int rank = xv->ndim;
    int64_t c = xv->shape[nhwc ? rank - 1 : 1];
    const char *b[5] = {nhwc ? to_nchw(e, in[0], rank) : in[0],
                        in[1] ? in[1] : kn__ex_const_fill(e, xv->dtype, 1, &c, 1.0),
                        in[2] ? in[2] : kn__ex_const_fill(e, xv->dtype, 1, &c, 0.0), in[3], in[4]};
    if (e->opset < 15) /* one dtype for all inputs before opset 15 */
        for (int k = 3; k < 5; k++)
            b[k] = kn__ex_cast(e, b[k], IN(k)->dtype, xv->dtype);
    else /* mean and var share one */
        b[4] = kn__ex_cast(e, b[4], IN(4)->dtype, IN(3)->dtype);
    Onnx__NodeProto *nd = node1(e, "BatchNormalization", 5, b);
    kn__ex_attr_float(e, nd, "epsilon", attr_float(n, "eps", 1e-5));
    return done(e, nhwc ? to_nhwc(e, out0(nd), rank) : out0(nd), out[0]);
}

static kn_status cv_softmax(kn_ex *e, const kn_gnode *n, const char *const *in,
                            const char *const *out)
{
    Onnx__NodeProto *nd = node1(e, n->def == &kn_op_softmax ? "Softmax" : "LogSoftmax", 1, &in[0]);
    kn__ex_attr_int(e, nd, "axis", norm_axis(attr_int(n, "axis", -1), IN(0)->ndim));
    return done(e, out0(nd), out[0]);
}

/* dropout at inference: the identity (and a mask keeping everything). */
static kn_status cv_dropout(kn_ex *e, const kn_gnode *n, const char *const *in,
                            const char *const *out)
{
    kn__ex_finish(e, in[0], out[0]);
    if (n->n_out > 1)
        kn__ex_finish(e, kn__ex_const_fill(e, OUT(1)->dtype, OUT(1)->ndim, OUT(1)->shape, 1),
                      out[1]);
    return e->status;
}

/* ================================================================ reductions */
/* The reduced axes of attr "axes" (none given: all), sorted. */
static int reduce_axes(kn_ex *e, const kn_gnode *n, int rank, int64_t *axes)
{
    const kn_ints *a = attr_ints(n, "axes");
    bool mask[KN_MAX_DIMS] = {false};
    for (int i = 0; i < a->n; i++) {
        int64_t ax = norm_axis(a->v[i], rank);
        if (ax >= 0 && ax < rank) mask[ax] = true;
    }
    int k = 0;
    for (int d = 0; d < rank; d++)
        if (mask[d] || a->n == 0) axes[k++] = d;
    return k;
}

static kn_status cv_reduce(kn_ex *e, const kn_gnode *n, const char *const *in,
                           const char *const *out)
{
    const kn_gvalue *xv = IN(0);
    kn_dtype dt = OUT(0)->dtype;
    const kn_op_def *d = n->def;
    int64_t axes[KN_MAX_DIMS];
    int na = reduce_axes(e, n, xv->ndim, axes);
    bool keep = attr_bool(n, "keepdim");
    if (d == &kn_op_all || d == &kn_op_any) { /* over truth values as int32 */
        const char *b = kn__ex_cast(e, kn__ex_cast(e, in[0], xv->dtype, KN_BOOL), KN_BOOL, KN_I32);
        const char *r =
            na ? reduce(e, d == &kn_op_all ? "ReduceMin" : "ReduceMax", b, na, axes, keep) : b;
        return done(e, kn__ex_cast(e, r, KN_I32, KN_BOOL), out[0]);
    }
    const char *x = kn__ex_cast(e, in[0], xv->dtype, dt);
    if (na == 0) return done(e, x, out[0]); /* a 0-d input */
    if (d == &kn_op_var || d == &kn_op_std) {
        int64_t count = 1;
        for (int i = 0; i < na; i++)
            count *= xv->shape[axes[i]];
        double denom = (double)count - (attr_bool(n, "unbiased") ? 1 : 0);
        const char *dev = kn__ex_op2(e, "Sub", x, reduce(e, "ReduceMean", x, na, axes, true));
        const char *ss = reduce(e, "ReduceSum", kn__ex_op2(e, "Mul", dev, dev), na, axes, keep);
        const char *var = kn__ex_op2(e, "Div", ss, scalar(e, dt, denom));
        return done(e, d == &kn_op_std ? kn__ex_op1(e, "Sqrt", var) : var, out[0]);
    }
    const char *op = d == &kn_op_sum            ? "ReduceSum"
                     : d == &kn_op_mean         ? "ReduceMean"
                     : d == &kn_op_prod         ? "ReduceProd"
                     : d == &kn_op_max          ? "ReduceMax"
                     : d == &kn_op_min          ? "ReduceMin"
                     : d == &kn_op_logsumexp    ? "ReduceLogSumExp"
                     : attr_int(n, "p", 2) == 1 ? "ReduceL1"
                                                : "ReduceL2";
    return done(e, reduce(e, op, x, na, axes, keep), out[0]);
}

static kn_status cv_arg(kn_ex *e, const kn_gnode *n, const char *const *in, const char *const *out)
{
    Onnx__NodeProto *nd = node1(e, n->def == &kn_op_argmax ? "ArgMax" : "ArgMin", 1, &in[0]);
    kn__ex_attr_int(e, nd, "axis", norm_axis(attr_int(n, "axis", 0), IN(0)->ndim));
    kn__ex_attr_int(e, nd, "keepdims", attr_bool(n, "keepdim"));
    return done(e, kn__ex_cast(e, out0(nd), KN_I64, OUT(0)->dtype), out[0]);
}

static kn_status cv_cumsum(kn_ex *e, const kn_gnode *n, const char *const *in,
                           const char *const *out)
{
    const char *c[2] = {
        kn__ex_cast(e, in[0], IN(0)->dtype, OUT(0)->dtype),
        kn__ex_const_scalar(e, KN_I64, (double)norm_axis(attr_int(n, "axis", 0), IN(0)->ndim))};
    Onnx__NodeProto *nd = node1(e, "CumSum", 2, c);
    if (attr_bool(n, "reverse")) kn__ex_attr_int(e, nd, "reverse", 1);
    return done(e, out0(nd), out[0]);
}

/* sort, argsort, topk: TopK (ties keep the lower index first, as kiln). */
static kn_status cv_topk(kn_ex *e, const kn_gnode *n, const char *const *in, const char *const *out)
{
    const kn_gvalue *xv = IN(0);
    int64_t axis = norm_axis(attr_int(n, "axis", -1), xv->ndim);
    bool topk = n->def == &kn_op_topk;
    int64_t k = topk ? attr_int(n, "k", 1) : xv->ndim ? xv->shape[axis] : 1;
    bool largest = topk ? attr_bool(n, "largest") : attr_bool(n, "descending");
    const char *t[2] = {in[0], CONST_I(k)};
    const char *outs[2] = {n->def == &kn_op_argsort ? NULL : out[0], n->def == &kn_op_argsort
                                                                         ? out[0]
                                                                     : n->n_out > 1 ? out[1]
                                                                                    : NULL};
    Onnx__NodeProto *nd = kn__ex_node(e, "TopK", 2, t, 2, outs);
    kn__ex_attr_int(e, nd, "axis", axis);
    kn__ex_attr_int(e, nd, "largest", largest);
    kn__ex_attr_int(e, nd, "sorted", 1);
    return e->status;
}

/* ================================================================ shape */
static kn_status cv_reshape(kn_ex *e, const kn_gnode *n, const char *const *in,
                            const char *const *out)
{
    return done(e, reshape(e, in[0], OUT(0)->ndim, OUT(0)->shape), out[0]);
}

static kn_status cv_identity(kn_ex *e, const kn_gnode *n, const char *const *in,
                             const char *const *out)
{
    (void)n;
    return done(e, in[0], out[0]);
}

static kn_status cv_cast(kn_ex *e, const kn_gnode *n, const char *const *in, const char *const *out)
{
    return done(e, kn__ex_cast(e, in[0], IN(0)->dtype, OUT(0)->dtype), out[0]);
}

static kn_status cv_expand(kn_ex *e, const kn_gnode *n, const char *const *in,
                           const char *const *out)
{
    return done(e,
                kn__ex_op2(e, "Expand", in[0], kn__ex_const_ints(e, OUT(0)->ndim, OUT(0)->shape)),
                out[0]);
}

static kn_status cv_squeeze(kn_ex *e, const kn_gnode *n, const char *const *in,
                            const char *const *out)
{
    const kn_gvalue *xv = IN(0);
    int64_t axes[KN_MAX_DIMS];
    int na = 0;
    if (n->def == &kn_op_unsqueeze) {
        axes[0] = norm_axis(attr_int(n, "axis", 0), xv->ndim + 1);
        return done(e, unsqueeze(e, in[0], 1, axes), out[0]);
    }
    const kn_ints *a = attr_ints(n, "axes");
    for (int d = 0; d < xv->ndim; d++) {
        bool listed = a->n == 0;
        for (int i = 0; i < a->n; i++)
            listed |= norm_axis(a->v[i], xv->ndim) == d;
        if (listed && xv->shape[d] == 1) axes[na++] = d;
    }
    return done(e, na ? squeeze(e, in[0], na, axes) : in[0], out[0]);
}

static kn_status cv_permute(kn_ex *e, const kn_gnode *n, const char *const *in,
                            const char *const *out)
{
    int rank = IN(0)->ndim;
    int64_t perm[KN_MAX_DIMS];
    for (int d = 0; d < rank; d++)
        perm[d] = d;
    if (n->def == &kn_op_permute) {
        const kn_ints *p = attr_ints(n, "perm");
        for (int d = 0; d < rank && d < p->n; d++)
            perm[d] = norm_axis(p->v[d], rank);
    } else {
        int64_t a = norm_axis(attr_int(n, "axis0", 0), rank),
                b = norm_axis(attr_int(n, "axis1", 0), rank);
        perm[a] = b, perm[b] = a;
    }
    return done(e, rank ? transpose(e, in[0], rank, perm) : in[0], out[0]);
}

/* slice, narrow: one axis, start normalized and clamped as kiln does. */
static kn_status cv_slice(kn_ex *e, const kn_gnode *n, const char *const *in,
                          const char *const *out)
{
    const kn_gvalue *xv = IN(0);
    int64_t axis = norm_axis(attr_int(n, "axis", 0), xv->ndim), dim = xv->shape[axis];
    int64_t len = OUT(0)->shape[axis], start = attr_int(n, "start", 0);
    int64_t step = n->def == &kn_op_narrow ? 1 : attr_int(n, "step", 1);
    if (start < 0) start += dim;
    if (start < 0) start = 0;
    if (start > dim) start = dim;
    int64_t end = len > 0 ? start + (len - 1) * step + 1 : start;
    const char *s[5] = {in[0], CONST_I(start), CONST_I(end), CONST_I(axis), CONST_I(step)};
    return done(e, out0(node1(e, "Slice", 5, s)), out[0]);
}

static kn_status cv_concat(kn_ex *e, const kn_gnode *n, const char *const *in,
                           const char *const *out)
{
    const char *xs[64];
    bool stack = n->def == &kn_op_stack;
    int64_t axis = norm_axis(attr_int(n, "axis", 0), OUT(0)->ndim);
    for (int k = 0; k < n->n_in; k++) {
        xs[k] = kn__ex_cast(e, in[k], IN(k)->dtype, OUT(0)->dtype);
        if (stack) xs[k] = unsqueeze(e, xs[k], 1, &axis);
    }
    Onnx__NodeProto *nd = node1(e, "Concat", n->n_in, xs);
    kn__ex_attr_int(e, nd, "axis", axis);
    return done(e, out0(nd), out[0]);
}

/* split, chunk: Split with the sizes the outputs have. */
static kn_status cv_split(kn_ex *e, const kn_gnode *n, const char *const *in,
                          const char *const *out)
{
    int64_t axis = norm_axis(attr_int(n, "axis", 0), IN(0)->ndim), sizes[64];
    for (int k = 0; k < n->n_out; k++)
        sizes[k] = OUT(k)->shape[axis];
    const char *s[2] = {in[0], kn__ex_const_ints(e, n->n_out, sizes)};
    Onnx__NodeProto *nd = kn__ex_node(e, "Split", 2, s, n->n_out, out);
    kn__ex_attr_int(e, nd, "axis", axis);
    return e->status;
}

static kn_status cv_pad(kn_ex *e, const kn_gnode *n, const char *const *in, const char *const *out)
{
    const kn_gvalue *xv = IN(0);
    int64_t pads[2 * KN_MAX_DIMS];
    for (int d = 0; d < xv->ndim; d++) {
        pads[d] = ints_at(attr_ints(n, "before"), d, 0);
        pads[xv->ndim + d] = ints_at(attr_ints(n, "after"), d, 0);
    }
    int64_t mode = attr_int(n, "mode", KN_PAD_CONSTANT);
    const char *p[3] = {in[0], kn__ex_const_ints(e, 2 * xv->ndim, pads),
                        mode == KN_PAD_CONSTANT ? scalar(e, xv->dtype, attr_float(n, "value", 0))
                                                : ""};
    Onnx__NodeProto *nd = node1(e, "Pad", mode == KN_PAD_CONSTANT ? 3 : 2, p);
    kn__ex_attr_string(e, nd, "mode",
                       mode == KN_PAD_REFLECT ? "reflect"
                       : mode == KN_PAD_EDGE  ? "edge"
                                              : "constant");
    return done(e, out0(nd), out[0]);
}

static kn_status cv_tile(kn_ex *e, const kn_gnode *n, const char *const *in, const char *const *out)
{
    const kn_gvalue *xv = IN(0);
    const kn_ints *r = attr_ints(n, "reps");
    int rank = OUT(0)->ndim;
    int64_t shape[KN_MAX_DIMS], reps[KN_MAX_DIMS];
    for (int d = 0; d < rank; d++) {
        int xi = d - (rank - xv->ndim), ri = d - (rank - r->n);
        shape[d] = xi >= 0 ? xv->shape[xi] : 1;
        reps[d] = ri >= 0 ? r->v[ri] : 1;
    }
    const char *x = rank > xv->ndim ? reshape(e, in[0], rank, shape) : in[0];
    return done(e, kn__ex_op2(e, "Tile", x, kn__ex_const_ints(e, rank, reps)), out[0]);
}

/* numpy.repeat along an axis: unsqueeze after it, expand, merge. */
static kn_status cv_repeat(kn_ex *e, const kn_gnode *n, const char *const *in,
                           const char *const *out)
{
    const kn_gvalue *xv = IN(0);
    int64_t axis = norm_axis(attr_int(n, "axis", 0), xv->ndim), shape[KN_MAX_DIMS + 1];
    int64_t after = axis + 1;
    for (int d = 0, k = 0; d <= xv->ndim; d++)
        shape[d] = d == after ? attr_int(n, "repeats", 1) : xv->shape[k++];
    const char *u = unsqueeze(e, in[0], 1, &after);
    const char *x = kn__ex_op2(e, "Expand", u, kn__ex_const_ints(e, xv->ndim + 1, shape));
    return done(e, reshape(e, x, OUT(0)->ndim, OUT(0)->shape), out[0]);
}

/* ================================================================ indexing */
static const char *indices(kn_ex *e, const char *idx, kn_dtype dt)
{
    return dt == KN_I32 || dt == KN_I64 ? idx : kn__ex_cast(e, idx, dt, KN_I64);
}

static kn_status cv_gather(kn_ex *e, const kn_gnode *n, const char *const *in,
                           const char *const *out)
{
    const kn_op_def *d = n->def;
    bool emb = d == &kn_op_embedding;
    const char *x = in[0], *idx = indices(e, in[1], IN(1)->dtype);
    int64_t axis = d == &kn_op_take || emb ? 0 : norm_axis(attr_int(n, "axis", 0), IN(0)->ndim);
    if (d == &kn_op_take) x = reshape(e, x, 1, (int64_t[]){-1});
    const char *g[2] = {x, idx};
    Onnx__NodeProto *nd = node1(e, d == &kn_op_gather ? "GatherElements" : "Gather", 2, g);
    kn__ex_attr_int(e, nd, "axis", axis);
    return done(e, out0(nd), out[0]);
}

static kn_status cv_scatter(kn_ex *e, const kn_gnode *n, const char *const *in,
                            const char *const *out)
{
    bool add = n->def == &kn_op_scatter_add;
    if (add && e->opset < 16)
        return kn__ex_fail(e, KN_ERR_UNSUPPORTED,
                           "scatter_add needs ScatterElements' reduction, from opset 16 (asked %d)",
                           e->opset);
    const char *s[3] = {in[0], indices(e, in[1], IN(1)->dtype),
                        kn__ex_cast(e, in[2], IN(2)->dtype, IN(0)->dtype)};
    Onnx__NodeProto *nd = node1(e, "ScatterElements", 3, s);
    kn__ex_attr_int(e, nd, "axis", norm_axis(attr_int(n, "axis", 0), IN(0)->ndim));
    if (add) kn__ex_attr_string(e, nd, "reduction", "add");
    return done(e, out0(nd), out[0]);
}

static kn_status cv_one_hot(kn_ex *e, const kn_gnode *n, const char *const *in,
                            const char *const *out)
{
    kn_dtype dt = OUT(0)->dtype;
    int64_t two = 2;
    const char *values;
    uint8_t *raw = kn__ex_const_raw(e, dt, 1, &two, &values); /* [0, 1] */
    if (raw && (kn_dtype_is_float(dt) || dt == KN_BOOL))
        kn__store(dt, raw + kn_dtype_size(dt), 1.0);
    else if (raw)
        kn__store_i64(dt, raw + kn_dtype_size(dt), 1);
    const char *o[3] = {indices(e, in[0], IN(0)->dtype),
                        kn__ex_const_scalar(e, KN_I64, (double)attr_int(n, "depth", 1)), values};
    Onnx__NodeProto *nd = node1(e, "OneHot", 3, o);
    kn__ex_attr_int(e, nd, "axis", -1);
    return done(e, out0(nd), out[0]);
}

static kn_status cv_masked_fill(kn_ex *e, const kn_gnode *n, const char *const *in,
                                const char *const *out)
{
    kn_dtype dt = OUT(0)->dtype;
    const char *w[3] = {kn__ex_cast(e, in[1], IN(1)->dtype, KN_BOOL),
                        scalar(e, dt, attr_float(n, "value", 0)),
                        kn__ex_cast(e, in[0], IN(0)->dtype, dt)};
    return done(e, out0(node1(e, "Where", 3, w)), out[0]);
}

/* ================================================================ the table */
typedef struct entry {
    const kn_op_def *def;
    kn_ex_fn fn;
} entry;

static const entry table[] = {
    {&kn_op_where, cv_where},
    {&kn_op_fused_elementwise, cv_fused},
    {&kn_op_matmul, cv_matmul},
    {&kn_op_linear, cv_linear},
    {&kn_op_linear_fused, cv_linear},
    {&kn_op_addmm, cv_addmm},
    {&kn_op_conv1d, cv_conv},
    {&kn_op_conv2d, cv_conv},
    {&kn_op_conv3d, cv_conv},
    {&kn_op_conv_transpose1d, cv_conv},
    {&kn_op_conv_transpose2d, cv_conv},
    {&kn_op_conv_transpose3d, cv_conv},
    {&kn_op_conv2d_fused, cv_conv_fused},
    {&kn_op_max_pool, cv_pool},
    {&kn_op_avg_pool, cv_pool},
    {&kn_op_global_avg_pool, cv_global_pool},
    {&kn_op_global_max_pool, cv_global_pool},
    {&kn_op_adaptive_avg_pool2d, cv_adaptive_pool},
    {&kn_op_adaptive_max_pool2d, cv_adaptive_pool},
    {&kn_op_upsample_nearest2d, cv_upsample},
    {&kn_op_upsample_bilinear2d, cv_upsample},
    {&kn_op_normalize, cv_normalize},
    {&kn_op_layer_norm, cv_layer_norm},
    {&kn_op_rms_norm, cv_layer_norm},
    {&kn_op_group_norm, cv_group_norm},
    {&kn_op_instance_norm, cv_group_norm},
    {&kn_op_batch_norm, cv_batch_norm},
    {&kn_op_softmax, cv_softmax},
    {&kn_op_log_softmax, cv_softmax},
    {&kn_op_dropout, cv_dropout},
    {&kn_op_sum, cv_reduce},
    {&kn_op_mean, cv_reduce},
    {&kn_op_prod, cv_reduce},
    {&kn_op_max, cv_reduce},
    {&kn_op_min, cv_reduce},
    {&kn_op_logsumexp, cv_reduce},
    {&kn_op_var, cv_reduce},
    {&kn_op_std, cv_reduce},
    {&kn_op_norm, cv_reduce},
    {&kn_op_all, cv_reduce},
    {&kn_op_any, cv_reduce},
    {&kn_op_argmax, cv_arg},
    {&kn_op_argmin, cv_arg},
    {&kn_op_cumsum, cv_cumsum},
    {&kn_op_sort, cv_topk},
    {&kn_op_argsort, cv_topk},
    {&kn_op_topk, cv_topk},
    {&kn_op_reshape, cv_reshape},
    {&kn_op_flatten, cv_reshape},
    {&kn_op_expand, cv_expand},
    {&kn_op_contiguous, cv_identity},
    {&kn_op_cast, cv_cast},
    {&kn_op_squeeze, cv_squeeze},
    {&kn_op_unsqueeze, cv_squeeze},
    {&kn_op_permute, cv_permute},
    {&kn_op_transpose, cv_permute},
    {&kn_op_slice, cv_slice},
    {&kn_op_narrow, cv_slice},
    {&kn_op_concat, cv_concat},
    {&kn_op_stack, cv_concat},
    {&kn_op_split, cv_split},
    {&kn_op_chunk, cv_split},
    {&kn_op_pad, cv_pad},
    {&kn_op_tile, cv_tile},
    {&kn_op_repeat, cv_repeat},
    {&kn_op_gather, cv_gather},
    {&kn_op_index_select, cv_gather},
    {&kn_op_take, cv_gather},
    {&kn_op_embedding, cv_gather},
    {&kn_op_scatter, cv_scatter},
    {&kn_op_scatter_add, cv_scatter},
    {&kn_op_one_hot, cv_one_hot},
    {&kn_op_masked_fill, cv_masked_fill},
};

static const struct {
    const kn_op_def *def;
    const char *why;
} refused[] = {
    {&kn_op_cross_entropy, "a training op (loss): export the model without its loss"},
    {&kn_op_nll_loss, "a training op (loss): export the model without its loss"},
    {&kn_op_bce_with_logits, "a training op (loss): export the model without its loss"},
    {&kn_op_mse_loss, "a training op (loss): export the model without its loss"},
    {&kn_op_l1_loss, "a training op (loss): export the model without its loss"},
    {&kn_op_smooth_l1_loss, "a training op (loss): export the model without its loss"},
    {&kn_op_huber_loss, "a training op (loss): export the model without its loss"},
    {&kn_op_kl_div, "a training op (loss): export the model without its loss"},
    {&kn_op_conv_grad_input, "a gradient op: export an inference graph"},
    {&kn_op_conv_grad_weight, "a gradient op: export an inference graph"},
    {&kn_op_max_pool_grad, "a gradient op: export an inference graph"},
    {&kn_op_resample_grad, "a gradient op: export an inference graph"},
    {&kn_op_normalize_grad, "a gradient op: export an inference graph"},
};

kn_ex_fn kn__ex_find(const kn_op_def *def, const char **why)
{
    if (def->impls == kn__unary_impls) return cv_unary;
    if (def->impls == kn__binary_impls) return cv_binary;
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (table[i].def == def) return table[i].fn;
    for (size_t i = 0; why && i < sizeof refused / sizeof *refused; i++)
        if (refused[i].def == def) *why = refused[i].why;
    return NULL;
}
#endif
