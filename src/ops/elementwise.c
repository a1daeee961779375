/* elementwise.c — the elementwise engine (infer, broadcasting reference
 * kernels) and the unary, binary and ternary elementwise ops built on it.
 * Kernels read any strides through kn_iter; outputs are contiguous. */
#include "elementwise.h"

#include <math.h>

/* ------------------------------------------------------------ engine */
static bool is_bool_or_int(kn_dtype dt) { return !kn_dtype_is_float(dt); }

kn_dtype kn__result_type(const kn_tensor *a, const kn_tensor *b)
{
    bool sa = a->ndim == 0, sb = b->ndim == 0;
    if (sa == sb) return kn_dtype_promote(a->dtype, b->dtype);
    const kn_tensor *dim = sa ? b : a, *sc = sa ? a : b;
    /* a 0-d operand only decides when it is of a higher category */
    int cat_dim = kn_dtype_is_float(dim->dtype) ? 2 : dim->dtype == KN_BOOL ? 0 : 1;
    int cat_sc = kn_dtype_is_float(sc->dtype) ? 2 : sc->dtype == KN_BOOL ? 0 : 1;
    if (cat_sc <= cat_dim) return dim->dtype;
    return cat_sc == 2 ? KN_F32 : KN_I64;
}

static kn_dtype output_dtype(kn_ew_out kind, kn_dtype compute)
{
    if (kind == KN_EW_BOOL) return KN_BOOL;
    if (kind == KN_EW_FLOAT && is_bool_or_int(compute)) return KN_F32;
    return compute;
}

kn_status kn__unary_infer(const kn_op_args *a, kn_out_meta *out)
{
    const kn_unary_fn *fn = a->def->data;
    const kn_tensor *x = a->in[0];
    if (!(a->def->dtypes & KN_DT(x->dtype)))
        return kn__error(KN_ERR_DTYPE, "%s: dtype %s is not supported", a->def->name,
                         kn_dtype_name(x->dtype));
    kn_ew_out kind = fn->out;
    if (kind == KN_EW_SAME && !fn->i64) kind = KN_EW_FLOAT;
    out->dtype = output_dtype(kind, x->dtype);
    out->ndim = x->ndim;
    memcpy(out->shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    return KN_OK;
}

kn_status kn__binary_infer(const kn_op_args *a, kn_out_meta *out)
{
    const kn_binary_fn *fn = a->def->data;
    for (int i = 0; i < 2; i++)
        if (!(a->def->dtypes & KN_DT(a->in[i]->dtype)))
            return kn__error(KN_ERR_DTYPE, "%s: input %d has unsupported dtype %s", a->def->name,
                             i, kn_dtype_name(a->in[i]->dtype));
    kn_status s = kn__broadcast_shapes(a->def->name, a->in[0]->ndim, a->in[0]->shape,
                                       a->in[1]->ndim, a->in[1]->shape, &out->ndim, out->shape);
    if (s) return s;
    kn_ew_out kind = fn->out;
    if (kind == KN_EW_SAME && !fn->i64) kind = KN_EW_FLOAT;
    out->dtype = fn->logical ? KN_BOOL : output_dtype(kind, kn__result_type(a->in[0], a->in[1]));
    return KN_OK;
}

/* How a kernel computes: exactly in int64, in f32 or in f64. */
typedef enum compute { C_I64, C_F32, C_F64 } compute;

static compute compute_type(kn_dtype operands, bool has_i64)
{
    if (operands == KN_F64) return C_F64;
    if (kn_dtype_is_float(operands) || !has_i64) return C_F32;
    return C_I64;
}

typedef struct unary_ctx {
    const kn_unary_fn *fn;
    const kn_unary_attrs *attrs;
    kn_dtype in, out;
    compute c;
} unary_ctx;

static void unary_loop(char **p, const int64_t *st, int64_t n, void *arg)
{
    const unary_ctx *u = arg;
    const kn_unary_fn *fn = u->fn;
    if (u->c == C_F32 && u->in == KN_F32 && u->out == KN_F32) {
        for (int64_t i = 0; i < n; i++)
            *(float *)(p[0] + i * st[0]) = fn->f32(*(const float *)(p[1] + i * st[1]), u->attrs);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        char *o = p[0] + i * st[0];
        const char *x = p[1] + i * st[1];
        switch (u->c) {
        case C_I64: kn__store_i64(u->out, o, fn->i64(kn__load_i64(u->in, x), u->attrs)); break;
        case C_F32: kn__store(u->out, o, fn->f32((float)kn__load(u->in, x), u->attrs)); break;
        case C_F64: kn__store(u->out, o, fn->f64(kn__load(u->in, x), u->attrs)); break;
        }
    }
}

static kn_status unary_ref(const kn_op_args *a)
{
    static const kn_unary_attrs no_attrs;
    const kn_unary_fn *fn = a->def->data;
    kn_tensor *x = a->in[0], *y = a->out[0];
    unary_ctx u = {fn, a->attrs ? a->attrs : &no_attrs, x->dtype, y->dtype,
                   compute_type(x->dtype, fn->i64 != NULL)};
    kn_iter it;
    const kn_tensor *ops[2] = {y, x};
    kn__iter_init(&it, 2, ops, y->ndim, y->shape);
    kn__iter_run(&it, unary_loop, &u, true);
    return KN_OK;
}

const kn_impl kn__unary_impls[] = {{"ref", KN_ISA_REF, NULL, unary_ref}, {0}};

typedef struct binary_ctx {
    const kn_binary_fn *fn;
    kn_dtype a, b, out;
    compute c;
} binary_ctx;

static void binary_loop(char **p, const int64_t *st, int64_t n, void *arg)
{
    const binary_ctx *u = arg;
    const kn_binary_fn *fn = u->fn;
    if (u->c == C_F32 && u->a == KN_F32 && u->b == KN_F32 && u->out == KN_F32) {
        for (int64_t i = 0; i < n; i++)
            *(float *)(p[0] + i * st[0]) =
                fn->f32(*(const float *)(p[1] + i * st[1]), *(const float *)(p[2] + i * st[2]));
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        char *o = p[0] + i * st[0];
        const char *x = p[1] + i * st[1], *y = p[2] + i * st[2];
        switch (u->c) {
        case C_I64:
            kn__store_i64(u->out, o, fn->i64(kn__load_i64(u->a, x), kn__load_i64(u->b, y)));
            break;
        case C_F32:
            kn__store(u->out, o, fn->f32((float)kn__load(u->a, x), (float)kn__load(u->b, y)));
            break;
        case C_F64: kn__store(u->out, o, fn->f64(kn__load(u->a, x), kn__load(u->b, y))); break;
        }
    }
}

static kn_status binary_ref(const kn_op_args *a)
{
    const kn_binary_fn *fn = a->def->data;
    kn_tensor *y = a->out[0];
    kn_dtype operands = fn->logical ? KN_BOOL : kn__result_type(a->in[0], a->in[1]);
    compute c = compute_type(operands, fn->i64 != NULL);
    /* predicates on floats compare in f64: exact for every float dtype */
    if (fn->out == KN_EW_BOOL && c == C_F32 && kn_dtype_is_float(operands)) c = C_F64;
    binary_ctx u = {fn, a->in[0]->dtype, a->in[1]->dtype, y->dtype, c};
    if (fn->logical) u.a = u.b = KN_BOOL;
    kn_tensor *ins[2] = {a->in[0], a->in[1]};
    kn_tensor *as_bool[2] = {NULL, NULL};
    for (int i = 0; fn->logical && i < 2; i++) { /* read truth values */
        if (ins[i]->dtype == KN_BOOL) continue;
        as_bool[i] = kn_cast(ins[i], KN_BOOL);
        if (!as_bool[i]) {
            kn_tensor_unref(as_bool[0]);
            return kn_last_status();
        }
        ins[i] = as_bool[i];
    }
    kn_iter it;
    const kn_tensor *ops[3] = {y, ins[0], ins[1]};
    kn__iter_init(&it, 3, ops, y->ndim, y->shape);
    kn__iter_run(&it, binary_loop, &u, true);
    kn_tensor_unref(as_bool[0]);
    kn_tensor_unref(as_bool[1]);
    return KN_OK;
}

const kn_impl kn__binary_impls[] = {{"ref", KN_ISA_REF, NULL, binary_ref}, {0}};

static kn_tensor *unary(const kn_op_def *def, kn_tensor *x, const kn_unary_attrs *attrs)
{
    kn_tensor *in[1] = {x};
    return kn__op_call1(def, 1, in, attrs);
}

static kn_tensor *binary(const kn_op_def *def, kn_tensor *a, kn_tensor *b)
{
    kn_tensor *in[2] = {a, b};
    return kn__op_call1(def, 2, in, NULL);
}

/* Defines an op entry for a unary/binary op with the shared engine. */
#define KN_UNARY_OP(op_name, dtypes_, grad_fn, attrs_schema, n_attrs_, fns)                    \
    const kn_op_def kn_op_##op_name = {                                                        \
        .name = #op_name, .n_in = 1, .n_out = 1, .attrs = attrs_schema, .n_attrs = n_attrs_,     \
        .attrs_size = sizeof(kn_unary_attrs), .dtypes = dtypes_, .infer = kn__unary_infer,    \
        .impls = kn__unary_impls, .grad = grad_fn, .data = &fns, .amp = KN_AMP_FP32,           \
        .layout = KN_LAYOUT_AGNOSTIC}

#define KN_BINARY_OP(op_name, dtypes_, grad_fn, amp_, fns)                                     \
    const kn_op_def kn_op_##op_name = {                                                        \
        .name = #op_name, .n_in = 2, .n_out = 1, .dtypes = dtypes_,                             \
        .infer = kn__binary_infer, .impls = kn__binary_impls, .grad = grad_fn, .data = &fns,  \
        .amp = amp_, .layout = KN_LAYOUT_AGNOSTIC}

/* ------------------------------------------------------------- unary ops */
static float neg_f(float x, const kn_unary_attrs *a) { (void)a; return -x; }
static double neg_d(double x, const kn_unary_attrs *a) { (void)a; return -x; }
static int64_t neg_i(int64_t x, const kn_unary_attrs *a) { (void)a; return (int64_t)(0 - (uint64_t)x); }
static const kn_unary_fn neg_fns = {neg_f, neg_d, neg_i, KN_EW_SAME};
static kn_status neg_grad(const kn_grad_args *g)
{
    g->grad_in[0] = kn_neg(g->grad_out[0]);
    return g->grad_in[0] ? KN_OK : kn_last_status();
}
KN_UNARY_OP(neg, KN_DTYPES_FLOAT | KN_DTYPES_INT, neg_grad, NULL, 0, neg_fns);
kn_tensor *kn_neg(kn_tensor *x) { return unary(&kn_op_neg, x, NULL); }

static float exp_f(float x, const kn_unary_attrs *a) { (void)a; return expf(x); }
static double exp_d(double x, const kn_unary_attrs *a) { (void)a; return exp(x); }
static const kn_unary_fn exp_fns = {exp_f, exp_d, NULL, KN_EW_FLOAT};
static kn_status exp_grad(const kn_grad_args *g) /* d exp(x) = exp(x) dx */
{
    g->grad_in[0] = kn_mul(g->grad_out[0], g->out[0]);
    return g->grad_in[0] ? KN_OK : kn_last_status();
}
KN_UNARY_OP(exp, KN_DTYPES_ALL, exp_grad, NULL, 0, exp_fns);
kn_tensor *kn_exp(kn_tensor *x) { return unary(&kn_op_exp, x, NULL); }

static float log_f(float x, const kn_unary_attrs *a) { (void)a; return logf(x); }
static double log_d(double x, const kn_unary_attrs *a) { (void)a; return log(x); }
static const kn_unary_fn log_fns = {log_f, log_d, NULL, KN_EW_FLOAT};
static kn_status log_grad(const kn_grad_args *g) /* d log(x) = dx / x */
{
    g->grad_in[0] = kn_div(g->grad_out[0], g->in[0]);
    return g->grad_in[0] ? KN_OK : kn_last_status();
}
KN_UNARY_OP(log, KN_DTYPES_ALL, log_grad, NULL, 0, log_fns);
kn_tensor *kn_log(kn_tensor *x) { return unary(&kn_op_log, x, NULL); }

/* ------------------------------------------------------------ binary ops */
static float add_f(float a, float b) { return a + b; }
static double add_d(double a, double b) { return a + b; }
static int64_t add_i(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
static const kn_binary_fn add_fns = {add_f, add_d, add_i, KN_EW_SAME, false};
static kn_status add_grad(const kn_grad_args *g)
{
    for (int i = 0; i < 2; i++)
        if (g->needs_grad[i]) g->grad_in[i] = kn_tensor_ref(g->grad_out[0]);
    return KN_OK;
}
KN_BINARY_OP(add, KN_DTYPES_ALL, add_grad, KN_AMP_WIDEST, add_fns);
kn_tensor *kn_add(kn_tensor *a, kn_tensor *b) { return binary(&kn_op_add, a, b); }

static float sub_f(float a, float b) { return a - b; }
static double sub_d(double a, double b) { return a - b; }
static int64_t sub_i(int64_t a, int64_t b) { return (int64_t)((uint64_t)a - (uint64_t)b); }
static const kn_binary_fn sub_fns = {sub_f, sub_d, sub_i, KN_EW_SAME, false};
static kn_status sub_grad(const kn_grad_args *g)
{
    if (g->needs_grad[0]) g->grad_in[0] = kn_tensor_ref(g->grad_out[0]);
    if (g->needs_grad[1] && !(g->grad_in[1] = kn_neg(g->grad_out[0]))) return kn_last_status();
    return KN_OK;
}
KN_BINARY_OP(sub, KN_DTYPES_FLOAT | KN_DTYPES_INT, sub_grad, KN_AMP_WIDEST, sub_fns);
kn_tensor *kn_sub(kn_tensor *a, kn_tensor *b) { return binary(&kn_op_sub, a, b); }

static float mul_f(float a, float b) { return a * b; }
static double mul_d(double a, double b) { return a * b; }
static int64_t mul_i(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }
static const kn_binary_fn mul_fns = {mul_f, mul_d, mul_i, KN_EW_SAME, false};
static kn_status mul_grad(const kn_grad_args *g)
{
    if (g->needs_grad[0] && !(g->grad_in[0] = kn_mul(g->grad_out[0], g->in[1])))
        return kn_last_status();
    if (g->needs_grad[1] && !(g->grad_in[1] = kn_mul(g->grad_out[0], g->in[0])))
        return kn_last_status();
    return KN_OK;
}
KN_BINARY_OP(mul, KN_DTYPES_ALL, mul_grad, KN_AMP_WIDEST, mul_fns);
kn_tensor *kn_mul(kn_tensor *a, kn_tensor *b) { return binary(&kn_op_mul, a, b); }

static float div_f(float a, float b) { return a / b; }
static double div_d(double a, double b) { return a / b; }
static const kn_binary_fn div_fns = {div_f, div_d, NULL, KN_EW_FLOAT, false};
static kn_status div_grad(const kn_grad_args *g) /* d(a/b) = da/b - (a/b) db/b */
{
    kn_scratch s = {0};
    if (g->needs_grad[0] && !(g->grad_in[0] = kn_div(g->grad_out[0], g->in[1])))
        return kn_last_status();
    if (g->needs_grad[1]) {
        kn_tensor *q = kn__keep(&s, kn_div(g->out[0], g->in[1]));
        g->grad_in[1] = kn_neg(kn__keep(&s, kn_mul(g->grad_out[0], q)));
    }
    kn__scratch_free(&s);
    return g->needs_grad[1] && !g->grad_in[1] ? kn_last_status() : KN_OK;
}
KN_BINARY_OP(div, KN_DTYPES_ALL, div_grad, KN_AMP_WIDEST, div_fns);
kn_tensor *kn_div(kn_tensor *a, kn_tensor *b) { return binary(&kn_op_div, a, b); }

/* ------------------------------------------------------- scalar helpers */
kn_tensor *kn__scalar_like(const kn_tensor *x, double v) { return kn_tensor_scalar(x->dtype, v); }

static kn_tensor *with_scalar(kn_tensor *(*op)(kn_tensor *, kn_tensor *), kn_tensor *x, double v)
{
    if (!x) return op(NULL, NULL);
    kn_tensor *s = kn__scalar_like(x, v);
    kn_tensor *y = s ? op(x, s) : NULL;
    kn_tensor_unref(s);
    return y;
}

kn_tensor *kn_add_scalar(kn_tensor *x, double s) { return with_scalar(kn_add, x, s); }
kn_tensor *kn_mul_scalar(kn_tensor *x, double s) { return with_scalar(kn_mul, x, s); }

kn_tensor *kn__keep(kn_scratch *s, kn_tensor *t)
{
    assert(s->n < KN_SCRATCH_MAX);
    if (t) s->t[s->n++] = t;
    return t;
}

void kn__scratch_free(kn_scratch *s)
{
    for (int i = 0; i < s->n; i++) kn_tensor_unref(s->t[i]);
    s->n = 0;
}
