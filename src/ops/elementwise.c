/* elementwise.c — the elementwise engine: infer, broadcasting reference
 * kernels, the scalar helpers and the scratch list used by composite and
 * gradient code. The ops are in unary.c and binary.c. Kernels read any
 * strides through kn_iter; outputs are contiguous. */
#include "elementwise.h"
#include "../kernels/eltwise.h"

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

/* Contiguous f32 comparisons (masks for gradients), in loops the compiler
 * vectorizes; b is one value when b_scalar. */
#define CMP_LOOP(op)                                                                               \
    do {                                                                                           \
        if (b_scalar)                                                                              \
            for (int64_t i = 0; i < n; i++)                                                        \
                o[i] = a[i] op b[0];                                                               \
        else                                                                                       \
            for (int64_t i = 0; i < n; i++)                                                        \
                o[i] = a[i] op b[i];                                                               \
    } while (0)
static void compare_f32(char cmp, const float *a, const float *b, bool b_scalar, uint8_t *o, int64_t n)
{
    switch (cmp) {
    case '=': CMP_LOOP(==); break;
    case '!': CMP_LOOP(!=); break;
    case '<': CMP_LOOP(<); break;
    case 'l': CMP_LOOP(<=); break;
    case '>': CMP_LOOP(>); break;
    default: CMP_LOOP(>=); break;
    }
}
#undef CMP_LOOP

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
    /* f32 predicates (masks for gradients): comparing in f32 is exact when
     * both operands are f32, so the f64 widening is skipped */
    if (fn->out == KN_EW_BOOL && !fn->logical && u->a == KN_F32 && u->b == KN_F32 && u->out == KN_BOOL) {
        if (fn->cmp && st[0] == 1 && st[1] == 4 && (st[2] == 4 || st[2] == 0)) {
            compare_f32(fn->cmp, (const float *)p[1], (const float *)p[2], st[2] == 0, (uint8_t *)p[0], n);
            return;
        }
        for (int64_t i = 0; i < n; i++)
            *(bool *)(p[0] + i * st[0]) =
                fn->f32(*(const float *)(p[1] + i * st[1]), *(const float *)(p[2] + i * st[2])) != 0;
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

/* ------------------------------------------------- vector fast paths
 * f32 and bf16 (computed in f32) through the kernels of
 * src/kernels/eltwise.h. The iterator merges dims and splits the work into
 * fixed chunks; each inner run goes to the kernel: a contiguous operand
 * directly, a stride-0 one (a scalar, a row vector broadcast over rows, a
 * channel vector over NCHW planes) as a broadcast value, and any other
 * strides staged through a small buffer, so every element of every layout
 * runs the same vector code. Outputs are contiguous. */
#if KILN_X86
typedef struct vec_kernels {
    kn_ew_unary_fn unary;
    kn_ew_binary_fn binary;
} vec_kernels;
static const vec_kernels vec_avx512 = {kn__ew_unary_avx512, kn__ew_binary_avx512};
static const vec_kernels vec_avx2 = {kn__ew_unary_avx2, kn__ew_binary_avx2};

#define VEC_STAGE 256 /* elements staged per piece of a strided run */

typedef struct vec_ctx {
    const vec_kernels *k;
    kn_ew_op op;
    kn_dtype dt;     /* output dtype = dtype of every array operand */
    kn_dtype da, db; /* operand dtypes (a 1-element operand may differ) */
    float alpha, beta;
} vec_ctx;

static void stage(void *buf, const char *p, int64_t st, int64_t n, kn_dtype dt)
{
    if (dt == KN_F32) {
        float *b = buf;
        for (int64_t i = 0; i < n; i++)
            b[i] = *(const float *)(p + i * st);
    } else {
        uint16_t *b = buf;
        for (int64_t i = 0; i < n; i++)
            b[i] = *(const uint16_t *)(p + i * st);
    }
}

static void unary_vec_loop(char **p, const int64_t *st, int64_t n, void *arg)
{
    const vec_ctx *v = arg;
    int64_t es = (int64_t)kn_dtype_size(v->dt);
    assert(n == 1 || st[0] == es);
    if (n == 1 || st[1] == es) {
        v->k->unary(v->op, v->dt, p[1], p[0], n, v->alpha, v->beta);
        return;
    }
    _Alignas(64) float buf[VEC_STAGE];
    for (int64_t i = 0; i < n; i += VEC_STAGE) {
        int64_t m = n - i < VEC_STAGE ? n - i : VEC_STAGE;
        stage(buf, p[1] + i * st[1], st[1], m, v->dt);
        v->k->unary(v->op, v->dt, buf, p[0] + i * es, m, v->alpha, v->beta);
    }
}

static void binary_vec_loop(char **p, const int64_t *st, int64_t n, void *arg)
{
    const vec_ctx *v = arg;
    int64_t es = (int64_t)kn_dtype_size(v->dt);
    assert(n == 1 || st[0] == es);
    bool sa = n == 1 || st[1] == 0, sb = n == 1 || st[2] == 0;
    kn_ew_bcast bc = KN_EW_VV;
    float s = 0;
    if (sa && (v->da != v->dt || !sb)) {
        bc = KN_EW_SV;
        s = (float)kn__load(v->da, p[1]);
    } else if (sb) {
        bc = KN_EW_VS;
        s = (float)kn__load(v->db, p[2]);
    }
    /* array operands that are not contiguous are staged */
    bool stage_a = bc != KN_EW_SV && n > 1 && st[1] != es;
    bool stage_b = bc != KN_EW_VS && n > 1 && st[2] != es;
    if (!stage_a && !stage_b) {
        v->k->binary(v->op, v->dt, p[1], p[2], p[0], n, bc, s);
        return;
    }
    _Alignas(64) float ba[VEC_STAGE], bb[VEC_STAGE];
    for (int64_t i = 0; i < n; i += VEC_STAGE) {
        int64_t m = n - i < VEC_STAGE ? n - i : VEC_STAGE;
        const void *pa = p[1] + i * st[1], *pb = p[2] + i * st[2];
        if (stage_a) stage(ba, pa, st[1], m, v->dt), pa = ba;
        if (stage_b) stage(bb, pb, st[2], m, v->dt), pb = bb;
        v->k->binary(v->op, v->dt, pa, pb, p[0] + i * es, m, bc, s);
    }
}

static bool vec_dtype(kn_dtype dt)
{
    return dt == KN_F32 || dt == KN_BF16;
}

/* The ops that have a vector kernel (their scalar functions stay in
 * unary.c/binary.c and are the reference twin). */
kn_ew_op kn__ew_vec_op(const kn_op_def *def)
{
    static const struct {
        const kn_op_def *def;
        kn_ew_op op;
    } table[] = {
        {&kn_op_add, KN_EWV_ADD},
        {&kn_op_sub, KN_EWV_SUB},
        {&kn_op_mul, KN_EWV_MUL},
        {&kn_op_div, KN_EWV_DIV},
        {&kn_op_maximum, KN_EWV_MAXIMUM},
        {&kn_op_minimum, KN_EWV_MINIMUM},
        {&kn_op_neg, KN_EWV_NEG},
        {&kn_op_abs, KN_EWV_ABS},
        {&kn_op_relu, KN_EWV_RELU},
        {&kn_op_relu6, KN_EWV_RELU6},
        {&kn_op_leaky_relu, KN_EWV_LEAKY_RELU},
        {&kn_op_sigmoid, KN_EWV_SIGMOID},
        {&kn_op_tanh, KN_EWV_TANH},
        {&kn_op_exp, KN_EWV_EXP},
        {&kn_op_log, KN_EWV_LOG},
        {&kn_op_gelu, KN_EWV_GELU},
        {&kn_op_gelu_tanh, KN_EWV_GELU_TANH},
        {&kn_op_silu, KN_EWV_SILU},
        {&kn_op_hard_sigmoid, KN_EWV_HARD_SIGMOID},
        {&kn_op_hard_swish, KN_EWV_HARD_SWISH},
        {&kn_op_clip, KN_EWV_CLIP},
        {&kn_op_sqrt, KN_EWV_SQRT},
        {&kn_op_rsqrt, KN_EWV_RSQRT},
        {&kn_op_square, KN_EWV_SQUARE},
        {&kn_op_erf, KN_EWV_ERF},
    };
    for (int i = 0; i < KN_ARRAY_LEN(table); i++)
        if (table[i].def == def) return table[i].op;
    return KN_EWV_NONE;
}

static bool unary_vec_accepts(const kn_op_args *a)
{
    kn_dtype dt = a->out[0]->dtype;
    return kn__ew_vec_op(a->def) != KN_EWV_NONE && vec_dtype(dt) && a->in[0]->dtype == dt;
}

static kn_status unary_vec_run(const kn_op_args *a, const vec_kernels *k)
{
    const kn_unary_attrs *at = a->attrs;
    kn_tensor *x = a->in[0], *y = a->out[0];
    vec_ctx v = {k,
                 kn__ew_vec_op(a->def),
                 y->dtype,
                 x->dtype,
                 x->dtype,
                 at ? (float)at->alpha : 0,
                 at ? (float)at->beta : 0};
    kn_iter it;
    const kn_tensor *ops[2] = {y, x};
    kn__iter_init(&it, 2, ops, y->ndim, y->shape);
    kn__iter_run(&it, unary_vec_loop, &v, true);
    return KN_OK;
}
static kn_status unary_avx512_run(const kn_op_args *a)
{
    return unary_vec_run(a, &vec_avx512);
}
static kn_status unary_avx2_run(const kn_op_args *a)
{
    return unary_vec_run(a, &vec_avx2);
}

/* Array operands must have the output's dtype; a 1-element operand (a
 * scalar) may have any dtype, read as f32 like the reference does. */
static bool binary_vec_accepts(const kn_op_args *a)
{
    kn_dtype dt = a->out[0]->dtype;
    if (kn__ew_vec_op(a->def) == KN_EWV_NONE || !vec_dtype(dt)) return false;
    int scalars = 0;
    for (int i = 0; i < 2; i++) {
        bool one = kn__shape_numel(a->in[i]->ndim, a->in[i]->shape) == 1;
        if (a->in[i]->dtype != dt && !one) return false;
        scalars += one;
    }
    return scalars < 2;
}

static kn_status binary_vec_run(const kn_op_args *a, const vec_kernels *k)
{
    kn_tensor *y = a->out[0];
    vec_ctx v = {k, kn__ew_vec_op(a->def), y->dtype, a->in[0]->dtype, a->in[1]->dtype, 0, 0};
    kn_iter it;
    const kn_tensor *ops[3] = {y, a->in[0], a->in[1]};
    kn__iter_init(&it, 3, ops, y->ndim, y->shape);
    kn__iter_run(&it, binary_vec_loop, &v, true);
    return KN_OK;
}
static kn_status binary_avx512_run(const kn_op_args *a)
{
    return binary_vec_run(a, &vec_avx512);
}
static kn_status binary_avx2_run(const kn_op_args *a)
{
    return binary_vec_run(a, &vec_avx2);
}
#define UNARY_VEC_IMPLS                                                                            \
    {"avx512", KN_ISA_AVX512, unary_vec_accepts, unary_avx512_run},                                \
        {"avx2", KN_ISA_AVX2, unary_vec_accepts, unary_avx2_run},
#define BINARY_VEC_IMPLS                                                                           \
    {"avx512", KN_ISA_AVX512, binary_vec_accepts, binary_avx512_run},                              \
        {"avx2", KN_ISA_AVX2, binary_vec_accepts, binary_avx2_run},
#else
#define UNARY_VEC_IMPLS
#define BINARY_VEC_IMPLS
#endif

const kn_impl kn__unary_impls[] = {UNARY_VEC_IMPLS{"ref", KN_ISA_REF, NULL, unary_ref}, {0}};
const kn_impl kn__binary_impls[] = {BINARY_VEC_IMPLS{"ref", KN_ISA_REF, NULL, binary_ref}, {0}};

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
    if (t && s->n == KN_SCRATCH_MAX) { /* a caller bug: fail loudly, never overflow */
        kn_tensor_unref(t);
        return kn__error_null(KN_ERR_INTERNAL, "scratch: more than %d temporaries", KN_SCRATCH_MAX);
    }
    if (t) s->t[s->n++] = t;
    return t;
}

void kn__scratch_free(kn_scratch *s)
{
    for (int i = 0; i < s->n; i++)
        kn_tensor_unref(s->t[i]);
    s->n = 0;
}
