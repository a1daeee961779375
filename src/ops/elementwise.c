/* elementwise.c — the elementwise engine: infer, broadcasting reference
 * kernels, the scalar helpers and the scratch list used by composite and
 * gradient code. The ops are in unary.c and binary.c. Kernels read any
 * strides through kn_iter; outputs are contiguous. */
#include "elementwise.h"

#include <math.h>

/* ------------------------------------------------------------ engine */
static bool is_bool_or_int(kn_dtype dt)
{
    return !kn_dtype_is_float(dt);
}

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
            return kn__error(KN_ERR_DTYPE, "%s: input %d has unsupported dtype %s", a->def->name, i,
                             kn_dtype_name(a->in[i]->dtype));
    kn_status s = kn__broadcast_shapes(a->def->name, a->in[0]->ndim, a->in[0]->shape,
                                       a->in[1]->ndim, a->in[1]->shape, &out->ndim, out->shape);
    if (s || (s = kn__check_shape(a->def->name, out->ndim, out->shape))) return s;
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
        case C_I64:
            kn__store_i64(u->out, o, fn->i64(kn__load_i64(u->in, x), u->attrs));
            break;
        case C_F32:
            kn__store(u->out, o, fn->f32((float)kn__load(u->in, x), u->attrs));
            break;
        case C_F64:
            kn__store(u->out, o, fn->f64(kn__load(u->in, x), u->attrs));
            break;
        }
    }
}

/* y (x's shape, contiguous) = fn(x), x of any strides */
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

bool kn__truth(kn_dtype dt, const void *p)
{
    if (kn_dtype_is_float(dt)) return kn__load(dt, p) != 0; /* NaN is true */
    return kn__load_i64(dt, p) != 0;
}

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
        if (fn->logical) {
            kn__store_i64(u->out, o, fn->i64(kn__truth(u->a, x), kn__truth(u->b, y)));
            continue;
        }
        switch (u->c) {
        case C_I64:
            kn__store_i64(u->out, o, fn->i64(kn__load_i64(u->a, x), kn__load_i64(u->b, y)));
            break;
        case C_F32:
            kn__store(u->out, o, fn->f32((float)kn__load(u->a, x), (float)kn__load(u->b, y)));
            break;
        case C_F64:
            kn__store(u->out, o, fn->f64(kn__load(u->a, x), kn__load(u->b, y)));
            break;
        }
    }
}

/* out (broadcast shape) = fn(a, b); a and b of any dtype and strides. */
static kn_status binary_ref(const kn_op_args *a)
{
    const kn_binary_fn *fn = a->def->data;
    kn_tensor *y = a->out[0];
    kn_dtype operands = fn->logical ? KN_BOOL : kn__result_type(a->in[0], a->in[1]);
    compute c = compute_type(operands, fn->i64 != NULL);
    /* predicates on floats compare in f64: exact for every float dtype */
    if (fn->out == KN_EW_BOOL && c == C_F32 && kn_dtype_is_float(operands)) c = C_F64;
    assert(!fn->logical || fn->i64);
    binary_ctx u = {fn, a->in[0]->dtype, a->in[1]->dtype, y->dtype, c};
    kn_iter it;
    const kn_tensor *ops[3] = {y, a->in[0], a->in[1]};
    kn__iter_init(&it, 3, ops, y->ndim, y->shape);
    kn__iter_run(&it, binary_loop, &u, true);
    return KN_OK;
}

const kn_impl kn__binary_impls[] = {{"ref", KN_ISA_REF, NULL, binary_ref}, {0}};

kn_tensor *kn__unary_call(const kn_op_def *def, kn_tensor *x, const kn_unary_attrs *attrs)
{
    kn_tensor *in[1] = {x};
    return kn__op_call1(def, 1, in, attrs);
}

kn_tensor *kn__binary_call(const kn_op_def *def, kn_tensor *a, kn_tensor *b)
{
    kn_tensor *in[2] = {a, b};
    return kn__op_call1(def, 2, in, NULL);
}

/* ------------------------------------------------------- scalar helpers */
kn_tensor *kn__scalar_like(const kn_tensor *x, double v)
{
    return kn_tensor_scalar(x->dtype, v);
}

kn_tensor *kn__with_scalar(kn_tensor *(*op)(kn_tensor *, kn_tensor *), kn_tensor *x, double v)
{
    if (!x) return op(NULL, NULL);
    kn_tensor *s = kn__scalar_like(x, v);
    kn_tensor *y = s ? op(x, s) : NULL;
    kn_tensor_unref(s);
    return y;
}

kn_tensor *kn_add_scalar(kn_tensor *x, double s)
{
    return kn__with_scalar(kn_add, x, s);
}
kn_tensor *kn_mul_scalar(kn_tensor *x, double s)
{
    return kn__with_scalar(kn_mul, x, s);
}

kn_tensor *kn__keep(kn_scratch *s, kn_tensor *t)
{
    assert(s->n < KN_SCRATCH_MAX);
    if (t) s->t[s->n++] = t;
    return t;
}

void kn__scratch_free(kn_scratch *s)
{
    for (int i = 0; i < s->n; i++)
        kn_tensor_unref(s->t[i]);
    s->n = 0;
}
