/* elementwise.h — the engine behind unary, binary and ternary elementwise ops:
 * an op entry names its scalar functions in .data, and the shared infer and
 * kernels (elementwise.c) do broadcasting, strides, dtype promotion and
 * f16/bf16 rounding. The ops themselves live in unary.c and binary.c.
 * f16/bf16 compute in f32 and round; integer ops compute exactly in int64. */
#ifndef KILN_ELEMENTWISE_H
#define KILN_ELEMENTWISE_H

#include "op.h"

/* Attributes of the parametrized unary ops (leaky_relu, elu, clip, ...);
 * each op's schema names the fields it uses. */
typedef struct kn_unary_attrs {
    double alpha, beta;
} kn_unary_attrs;

typedef enum kn_ew_out {
    KN_EW_SAME = 0, /* output dtype = (promoted) input dtype */
    KN_EW_FLOAT,    /* like SAME, but integer inputs give f32 */
    KN_EW_BOOL,     /* predicate: output bool */
} kn_ew_out;

typedef struct kn_unary_fn {
    float (*f32)(float x, const kn_unary_attrs *a);
    double (*f64)(double x, const kn_unary_attrs *a);
    int64_t (*i64)(int64_t x, const kn_unary_attrs *a); /* NULL: ints compute in f32 */
    kn_ew_out out;
} kn_unary_fn;

typedef struct kn_binary_fn {
    float (*f32)(float a, float b);
    double (*f64)(double a, double b);
    int64_t (*i64)(int64_t a, int64_t b); /* NULL: ints compute in f32 */
    kn_ew_out out;
    bool logical; /* inputs are read as truth values */
    char cmp;     /* comparisons: their C operator's first char ('=' '!' '<' 'l' '>' 'g'), for the f32 loops */
} kn_binary_fn;

/* Shared infer and reference kernels, for the op entries. */
kn_status kn__unary_infer(const kn_op_args *a, kn_out_meta *out);
kn_status kn__binary_infer(const kn_op_args *a, kn_out_meta *out);
extern const kn_impl kn__unary_impls[];
extern const kn_impl kn__binary_impls[];
#include "../kernels/eltwise.h"
/* The vector kernel an op maps to (KN_EWV_NONE: scalar only). */
kn_ew_op kn__ew_vec_op(const kn_op_def *def);
/* NumPy/PyTorch result type of a binary op (0-d operands weigh less). */
kn_dtype kn__result_type(const kn_tensor *a, const kn_tensor *b);

/* Truth value of one element of any dtype (NaN counts as true). */
bool kn__truth(kn_dtype dt, const void *p);
/* Calls a unary / binary op entry (attrs may be NULL: all zero). */
kn_tensor *kn__unary_call(const kn_op_def *def, kn_tensor *x, const kn_unary_attrs *attrs);
kn_tensor *kn__binary_call(const kn_op_def *def, kn_tensor *a, kn_tensor *b);
/* op(x, scalar v of x's dtype); a NULL x gives op's own NULL-input error. */
kn_tensor *kn__with_scalar(kn_tensor *(*op)(kn_tensor *, kn_tensor *), kn_tensor *x, double v);

/* Defines an op entry on the shared engine. */
#define KN_UNARY_OP(op_name, dtypes_, infer_, grad_fn, attrs_schema, n_attrs_, amp_, fns)          \
    const kn_op_def kn_op_##op_name = {.name = #op_name,                                           \
                                       .n_in = 1,                                                  \
                                       .n_out = 1,                                                 \
                                       .attrs = attrs_schema,                                      \
                                       .n_attrs = n_attrs_,                                        \
                                       .attrs_size = sizeof(kn_unary_attrs),                       \
                                       .dtypes = dtypes_,                                          \
                                       .infer = infer_,                                            \
                                       .impls = kn__unary_impls,                                   \
                                       .grad = grad_fn,                                            \
                                       .data = &fns,                                               \
                                       .inplace = true,                                            \
                                       .amp = amp_,                                                \
                                       .layout = KN_LAYOUT_AGNOSTIC}

#define KN_BINARY_OP(op_name, dtypes_, grad_fn, amp_, fns)                                         \
    const kn_op_def kn_op_##op_name = {.name = #op_name,                                           \
                                       .n_in = 2,                                                  \
                                       .n_out = 1,                                                 \
                                       .dtypes = dtypes_,                                          \
                                       .infer = kn__binary_infer,                                  \
                                       .impls = kn__binary_impls,                                  \
                                       .grad = grad_fn,                                            \
                                       .data = &fns,                                               \
                                       .inplace = true,                                            \
                                       .amp = amp_,                                                \
                                       .layout = KN_LAYOUT_AGNOSTIC}

#endif
