/* binary.c — the binary elementwise ops (arithmetic, pow, maximum/minimum,
 * fmod, atan2, comparisons, logical ops) on the shared engine of
 * elementwise.c, and the ternary where(cond, a, b). All broadcast NumPy-style
 * and promote with kn__result_type. Integer kernels never invoke C's UB. */
#include "elementwise.h"

#include <math.h>

#define K(t) kn__keep(&s, (t))

/* grad_in[i] takes a new reference to r (a scratch entry). */
static kn_status set_grad(const kn_grad_args *g, int i, kn_tensor *r)
{
    g->grad_in[i] = kn_tensor_ref(r);
    return r ? KN_OK : kn_last_status();
}

/* where(m, t, 0), or where(m, 0, t) when zero_if_true. */
static kn_tensor *where_zero(kn_tensor *m, kn_tensor *t, bool zero_if_true)
{
    kn_tensor *z = t ? kn__scalar_like(t, 0) : NULL;
    kn_tensor *r = zero_if_true ? kn_where(m, z, t) : kn_where(m, t, z);
    kn_tensor_unref(z);
    return r;
}

#define BINARY_FNS(name, expr_f, expr_d)                                                           \
    static float name##_f(float a, float b)                                                        \
    {                                                                                              \
        return expr_f;                                                                             \
    }                                                                                              \
    static double name##_d(double a, double b)                                                     \
    {                                                                                              \
        return expr_d;                                                                             \
    }
#define BINARY_INT(name, expr)                                                                     \
    static int64_t name##_i(int64_t a, int64_t b)                                                  \
    {                                                                                              \
        return expr;                                                                               \
    }

/* ----------------------------------------------------------- arithmetic */
BINARY_FNS(add, a + b, a + b)
BINARY_INT(add, (int64_t)((uint64_t)a + (uint64_t)b)) /* wraps, no UB */
static const kn_binary_fn add_fns = {add_f, add_d, add_i, KN_EW_SAME, false, 0};
static kn_status add_grad(const kn_grad_args *g)
{
    for (int i = 0; i < 2; i++)
        if (g->needs_grad[i]) g->grad_in[i] = kn_tensor_ref(g->grad_out[0]);
    return KN_OK;
}
KN_BINARY_OP(add, KN_DTYPES_ALL, add_grad, KN_AMP_WIDEST, add_fns);
kn_tensor *kn_add(kn_tensor *a, kn_tensor *b)
{
    return kn__binary_call(&kn_op_add, a, b);
}

BINARY_FNS(sub, a - b, a - b)
BINARY_INT(sub, (int64_t)((uint64_t)a - (uint64_t)b))
static const kn_binary_fn sub_fns = {sub_f, sub_d, sub_i, KN_EW_SAME, false, 0};
static kn_status sub_grad(const kn_grad_args *g)
{
    if (g->needs_grad[0]) g->grad_in[0] = kn_tensor_ref(g->grad_out[0]);
    if (g->needs_grad[1] && !(g->grad_in[1] = kn_neg(g->grad_out[0]))) return kn_last_status();
    return KN_OK;
}
KN_BINARY_OP(sub, KN_DTYPES_FLOAT | KN_DTYPES_INT, sub_grad, KN_AMP_WIDEST, sub_fns);
kn_tensor *kn_sub(kn_tensor *a, kn_tensor *b)
{
    return kn__binary_call(&kn_op_sub, a, b);
}

BINARY_FNS(mul, (a * b), (a * b))
BINARY_INT(mul, (int64_t)(((uint64_t)a) * (uint64_t)b))
static const kn_binary_fn mul_fns = {mul_f, mul_d, mul_i, KN_EW_SAME, false, 0};
static kn_status mul_grad(const kn_grad_args *g)
{
    if (g->needs_grad[0] && !(g->grad_in[0] = kn_mul(g->grad_out[0], g->in[1])))
        return kn_last_status();
    if (g->needs_grad[1] && !(g->grad_in[1] = kn_mul(g->grad_out[0], g->in[0])))
        return kn_last_status();
    return KN_OK;
}
KN_BINARY_OP(mul, KN_DTYPES_ALL, mul_grad, KN_AMP_WIDEST, mul_fns);
kn_tensor *kn_mul(kn_tensor *a, kn_tensor *b)
{
    return kn__binary_call(&kn_op_mul, a, b);
}

BINARY_FNS(div, a / b, a / b)
static const kn_binary_fn div_fns = {div_f, div_d, NULL, KN_EW_FLOAT, false, 0};
static kn_status div_grad(const kn_grad_args *g) /* d(a/b) = da/b - (a/b) db/b */
{
    kn_scratch s = {0};
    kn_status st = KN_OK;
    if (g->needs_grad[0]) st = set_grad(g, 0, K(kn_div(g->grad_out[0], g->in[1])));
    if (!st && g->needs_grad[1]) {
        kn_tensor *q = K(kn_div(g->out[0], g->in[1]));
        st = set_grad(g, 1, K(kn_neg(K(kn_mul(g->grad_out[0], q)))));
    }
    kn__scratch_free(&s);
    return st;
}
KN_BINARY_OP(div, KN_DTYPES_ALL, div_grad, KN_AMP_WIDEST, div_fns);
kn_tensor *kn_div(kn_tensor *a, kn_tensor *b)
{
    return kn__binary_call(&kn_op_div, a, b);
}

/* Integer power by squaring in unsigned arithmetic (wraps, like PyTorch).
 * A negative exponent gives 0 — the truncation of 1/a^n — except for the
 * bases 1 and -1, whose powers stay ±1; 0 to a negative power also gives 0. */
static int64_t pow_i(int64_t a, int64_t b)
{
    if (b < 0) return a == 1 ? 1 : a == -1 ? (b % 2 ? -1 : 1) : 0;
    uint64_t r = 1, base = (uint64_t)a;
    for (; b; b >>= 1) {
        if (b & 1) r *= base;
        base *= base;
    }
    return (int64_t)r;
}
BINARY_FNS(pow, powf(a, b), pow(a, b))
static const kn_binary_fn pow_fns = {pow_f, pow_d, pow_i, KN_EW_SAME, false, 0};
/* da: b a^(b-1) (0 where b == 0); db: a^b log(a) (0 where a == 0, b >= 0),
 * PyTorch's choices, so pow(0, 0) and pow(0, 2) have finite gradients */
static kn_status pow_grad(const kn_grad_args *g)
{
    kn_scratch s = {0};
    kn_tensor *a = g->in[0], *b = g->in[1], *gy = g->grad_out[0];
    kn_status st = KN_OK;
    if (g->needs_grad[0]) {
        kn_tensor *d = K(kn_mul(b, K(kn_pow(a, K(kn_add_scalar(b, -1))))));
        kn_tensor *b0 = K(kn__with_scalar(kn_eq, b, 0));
        st = set_grad(g, 0, K(where_zero(b0, K(kn_mul(gy, d)), true)));
    }
    if (!st && g->needs_grad[1]) {
        kn_tensor *d = K(kn_mul(g->out[0], K(kn_log(a))));
        kn_tensor *m =
            K(kn_logical_and(K(kn__with_scalar(kn_eq, a, 0)), K(kn__with_scalar(kn_ge, b, 0))));
        st = set_grad(g, 1, K(where_zero(m, K(kn_mul(gy, d)), true)));
    }
    kn__scratch_free(&s);
    return st;
}
KN_BINARY_OP(pow, KN_DTYPES_FLOAT | KN_DTYPES_INT, pow_grad, KN_AMP_FP32, pow_fns);
kn_tensor *kn_pow(kn_tensor *a, kn_tensor *b)
{
    return kn__binary_call(&kn_op_pow, a, b);
}

/* maximum/minimum propagate NaN, like torch.maximum */
BINARY_FNS(maximum,
           a != a || b != b ? a + b
           : a > b          ? a
                            : b,
           a != a || b != b ? a + b
           : a > b          ? a
                            : b)
BINARY_INT(maximum, a > b ? a : b)
static const kn_binary_fn maximum_fns = {maximum_f, maximum_d, maximum_i, KN_EW_SAME, false, 0};
BINARY_FNS(minimum,
           a != a || b != b ? a + b
           : a < b          ? a
                            : b,
           a != a || b != b ? a + b
           : a < b          ? a
                            : b)
BINARY_INT(minimum, a < b ? a : b)
static const kn_binary_fn minimum_fns = {minimum_f, minimum_d, minimum_i, KN_EW_SAME, false, 0};

/* PyTorch: each input gets the gradient where it wins, ties split it in
 * half. `loses(x, other)` is lt for maximum, gt for minimum. */
static kn_status minmax_grad(const kn_grad_args *g, kn_tensor *(*loses)(kn_tensor *, kn_tensor *))
{
    kn_scratch s = {0};
    kn_tensor *a = g->in[0], *b = g->in[1], *gy = g->grad_out[0];
    kn_tensor *shared = K(kn_where(K(kn_eq(a, b)), K(kn_mul_scalar(gy, 0.5)), gy));
    kn_status st = KN_OK;
    for (int i = 0; i < 2 && !st; i++)
        if (g->needs_grad[i])
            st = set_grad(g, i, K(where_zero(K(loses(g->in[i], g->in[1 - i])), shared, true)));
    kn__scratch_free(&s);
    return st;
}
static kn_status maximum_grad(const kn_grad_args *g)
{
    return minmax_grad(g, kn_lt);
}
static kn_status minimum_grad(const kn_grad_args *g)
{
    return minmax_grad(g, kn_gt);
}
KN_BINARY_OP(maximum, KN_DTYPES_ALL, maximum_grad, KN_AMP_WIDEST, maximum_fns);
KN_BINARY_OP(minimum, KN_DTYPES_ALL, minimum_grad, KN_AMP_WIDEST, minimum_fns);
kn_tensor *kn_maximum(kn_tensor *a, kn_tensor *b)
{
    return kn__binary_call(&kn_op_maximum, a, b);
}
kn_tensor *kn_minimum(kn_tensor *a, kn_tensor *b)
{
    return kn__binary_call(&kn_op_minimum, a, b);
}

/* C fmod: the result has a's sign (torch.fmod). Integers: x % 0 gives 0, and
 * x % -1 is 0 without evaluating INT64_MIN % -1 (undefined in C). */
BINARY_FNS(fmod, fmodf(a, b), fmod(a, b))
BINARY_INT(fmod, b == 0 || b == -1 ? 0 : a % b)
static const kn_binary_fn fmod_fns = {fmod_f, fmod_d, fmod_i, KN_EW_SAME, false, 0};
static kn_status fmod_grad(const kn_grad_args *g) /* da; -trunc(a/b) db */
{
    kn_scratch s = {0};
    kn_status st = KN_OK;
    if (g->needs_grad[0]) st = set_grad(g, 0, g->grad_out[0]);
    if (!st && g->needs_grad[1]) {
        kn_tensor *q = K(kn_trunc(K(kn_div(g->in[0], g->in[1]))));
        st = set_grad(g, 1, K(kn_neg(K(kn_mul(g->grad_out[0], q)))));
    }
    kn__scratch_free(&s);
    return st;
}
KN_BINARY_OP(fmod, KN_DTYPES_FLOAT | KN_DTYPES_INT, fmod_grad, KN_AMP_FP32, fmod_fns);
kn_tensor *kn_fmod(kn_tensor *a, kn_tensor *b)
{
    return kn__binary_call(&kn_op_fmod, a, b);
}

BINARY_FNS(atan2, atan2f(a, b), atan2(a, b))
static const kn_binary_fn atan2_fns = {atan2_f, atan2_d, NULL, KN_EW_FLOAT, false, 0};
static kn_status atan2_grad(const kn_grad_args *g) /* (b da - a db) / (a^2 + b^2) */
{
    kn_scratch s = {0};
    kn_tensor *a = g->in[0], *b = g->in[1];
    kn_tensor *scaled = K(kn_div(g->grad_out[0], K(kn_add(K(kn_mul(a, a)), K(kn_mul(b, b))))));
    kn_status st = KN_OK;
    if (g->needs_grad[0]) st = set_grad(g, 0, K(kn_mul(scaled, b)));
    if (!st && g->needs_grad[1]) st = set_grad(g, 1, K(kn_neg(K(kn_mul(scaled, a)))));
    kn__scratch_free(&s);
    return st;
}
KN_BINARY_OP(atan2, KN_DTYPES_ALL, atan2_grad, KN_AMP_FP32, atan2_fns);
kn_tensor *kn_atan2(kn_tensor *a, kn_tensor *b)
{
    return kn__binary_call(&kn_op_atan2, a, b);
}

/* ---------------------------------------------- comparisons (bool out) */
/* Not differentiable: no grad function, so nothing is recorded. Floats
 * compare in f64 (exact for every float dtype), integers exactly. */
#define COMPARISON(name, op, code)                                                                 \
    BINARY_FNS(name, (float)(a op b), (double)(a op b))                                            \
    BINARY_INT(name, a op b)                                                                       \
    static const kn_binary_fn name##_fns = {name##_f, name##_d, name##_i, KN_EW_BOOL, false, code};\
    KN_BINARY_OP(name, KN_DTYPES_ALL, NULL, KN_AMP_NONE, name##_fns);                              \
    kn_tensor *kn_##name(kn_tensor *a, kn_tensor *b)                                               \
    {                                                                                              \
        return kn__binary_call(&kn_op_##name, a, b);                                               \
    }
COMPARISON(eq, ==, '=')
COMPARISON(ne, !=, '!')
COMPARISON(lt, <, '<')
COMPARISON(le, <=, 'l')
COMPARISON(gt, >, '>')
COMPARISON(ge, >=, 'g')

/* Logical ops read each input as a truth value (nonzero, NaN true). */
#define LOGICAL(name, expr)                                                                        \
    BINARY_INT(name, expr)                                                                         \
    static const kn_binary_fn name##_fns = {NULL, NULL, name##_i, KN_EW_BOOL, true, 0};               \
    KN_BINARY_OP(name, KN_DTYPES_ALL, NULL, KN_AMP_NONE, name##_fns);                              \
    kn_tensor *kn_##name(kn_tensor *a, kn_tensor *b)                                               \
    {                                                                                              \
        return kn__binary_call(&kn_op_##name, a, b);                                               \
    }
LOGICAL(logical_and, (a && b))
LOGICAL(logical_or, a || b)
LOGICAL(logical_xor, (a != 0) != (b != 0))

/* ------------------------------------------------------------------ where */
/* where(cond, a, b): cond of any dtype read as truth; a and b promoted with
 * kn__result_type; all three broadcast together. */
static kn_status where_infer(const kn_op_args *a, kn_out_meta *out)
{
    const kn_tensor *c = a->in[0], *x = a->in[1], *y = a->in[2];
    int nd;
    int64_t shape[KN_MAX_DIMS];
    kn_status s = kn__broadcast_shapes("where", c->ndim, c->shape, x->ndim, x->shape, &nd, shape);
    if (!s) s = kn__broadcast_shapes("where", nd, shape, y->ndim, y->shape, &out->ndim, out->shape);
    if (!s) s = kn__check_shape("where", out->ndim, out->shape);
    out->dtype = kn__result_type(x, y);
    return s;
}

typedef struct where_ctx {
    kn_dtype c, x, y, out;
} where_ctx;

static void where_loop(char **p, const int64_t *st, int64_t n, void *arg)
{
    const where_ctx *w = arg;
    if (w->c == KN_BOOL && w->x == KN_F32 && w->y == KN_F32 && w->out == KN_F32) { /* gradient masks */
        if (st[0] == 4 && st[1] == 1 && (st[2] == 4 || st[2] == 0) && (st[3] == 4 || st[3] == 0)) {
            const uint8_t *c = (const uint8_t *)p[1];
            const float *x = (const float *)p[2], *y = (const float *)p[3];
            float *o = (float *)p[0];
            /* both sides loaded unconditionally: branch-free, vectorizes */
            if (st[2] == 4 && st[3] == 0) { /* where(mask, g, 0) */
                float s = y[0];
                for (int64_t i = 0; i < n; i++) {
                    float v = x[i];
                    o[i] = c[i] ? v : s;
                }
            } else if (st[2] == 0 && st[3] == 4) {
                float s = x[0];
                for (int64_t i = 0; i < n; i++) {
                    float v = y[i];
                    o[i] = c[i] ? s : v;
                }
            }
            else
                for (int64_t i = 0; i < n; i++)
                    o[i] = c[i] ? x[i * (st[2] / 4)] : y[i * (st[3] / 4)];
            return;
        }
        for (int64_t i = 0; i < n; i++)
            *(float *)(p[0] + i * st[0]) = *(const uint8_t *)(p[1] + i * st[1])
                                               ? *(const float *)(p[2] + i * st[2])
                                               : *(const float *)(p[3] + i * st[3]);
        return;
    }
    size_t size = kn_dtype_size(w->out);
    bool is_float = kn_dtype_is_float(w->out);
    for (int64_t i = 0; i < n; i++) {
        char *o = p[0] + i * st[0];
        bool pick_x = kn__truth(w->c, p[1] + i * st[1]);
        const char *src = pick_x ? p[2] + i * st[2] : p[3] + i * st[3];
        kn_dtype dt = pick_x ? w->x : w->y;
        if (dt == w->out)
            memcpy(o, src, size);
        else if (is_float)
            kn__store(w->out, o, kn__load(dt, src));
        else
            kn__store_i64(w->out, o, kn__load_i64(dt, src));
    }
}

/* out (broadcast shape) = cond ? a : b, elementwise, any strides */
static kn_status where_ref(const kn_op_args *a)
{
    kn_tensor *y = a->out[0];
    where_ctx w = {a->in[0]->dtype, a->in[1]->dtype, a->in[2]->dtype, y->dtype};
    kn_iter it;
    const kn_tensor *ops[4] = {y, a->in[0], a->in[1], a->in[2]};
    kn__iter_init(&it, 4, ops, y->ndim, y->shape);
    kn__iter_run(&it, where_loop, &w, true);
    return KN_OK;
}
static const kn_impl where_impls[] = {{"ref", KN_ISA_REF, NULL, where_ref}, {0}};

static kn_status where_grad(const kn_grad_args *g) /* a: where(c, g, 0); b: where(c, 0, g) */
{
    kn_scratch s = {0};
    kn_status st = KN_OK;
    for (int i = 1; i < 3 && !st; i++)
        if (g->needs_grad[i]) st = set_grad(g, i, K(where_zero(g->in[0], g->grad_out[0], i == 2)));
    kn__scratch_free(&s);
    return st;
}

const kn_op_def kn_op_where = {
    .name = "where",
    .n_in = 3,
    .n_out = 1,
    .nondiff_in = 1u << 0,
    .dtypes = KN_DTYPES_ALL,
    .infer = where_infer,
    .impls = where_impls,
    .grad = where_grad,
    .amp = KN_AMP_WIDEST,
    .layout = KN_LAYOUT_AGNOSTIC,
};

kn_tensor *kn_where(kn_tensor *cond, kn_tensor *a, kn_tensor *b)
{
    kn_tensor *in[3] = {cond, a, b};
    return kn__op_call1(&kn_op_where, 3, in, NULL);
}
