/* kiln.h — the whole public C API of kiln, a deep-learning framework in C11.
 *
 * Conventions: every name starts with kn_; handles are opaque; a call that can
 * fail returns kn_status or NULL and leaves a message in kn_last_error().
 * Tensors are reference counted: every kn_tensor* returned by a kn_ call is a
 * new reference the caller releases with kn_tensor_unref() (NULL is fine). */
#ifndef KILN_H
#define KILN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KN_VERSION_MAJOR 0
#define KN_VERSION_MINOR 1
#define KN_VERSION_PATCH 0
#define KN_MAX_DIMS 8

/* ---------------------------------------------------------------- status */
typedef enum kn_status {
    KN_OK = 0,
    KN_ERR_ARG,         /* an argument is invalid (NULL, out of range, bad attr) */
    KN_ERR_SHAPE,       /* shapes do not fit together */
    KN_ERR_DTYPE,       /* a dtype is not supported or inputs do not agree */
    KN_ERR_NOMEM,       /* an allocation failed */
    KN_ERR_UNSUPPORTED, /* valid request that kiln does not implement */
    KN_ERR_STATE,       /* wrong state (e.g. in-place change of a saved tensor) */
    KN_ERR_IO,          /* file or format error */
    KN_ERR_INTERNAL,
} kn_status;

/* The message of the last failed call on this thread ("" when none). */
const char *kn_last_error(void);
kn_status kn_last_status(void);
void kn_clear_error(void);
const char *kn_status_name(kn_status s);
/* Sets this thread's status and message (printf-style) and returns s: for
 * code built on kiln (datasets, loss functions, models) to report errors
 * the way kiln's own functions do. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
kn_status kn_set_error(kn_status s, const char *fmt, ...);
const char *kn_version(void);

/* ---------------------------------------------------------------- dtypes */
typedef enum kn_dtype {
    KN_F32 = 0,
    KN_F64,
    KN_F16,
    KN_BF16,
    KN_I8,
    KN_U8,
    KN_I32,
    KN_I64,
    KN_BOOL,
    KN_STRING, /* UTF-8 text per element (NUL-free); made by kn_tensor_from_strings, taken by
                  no op: it passes through models (ONNX string inputs and outputs) */
    KN_DTYPE_COUNT
} kn_dtype;

const char *kn_dtype_name(kn_dtype dt);
size_t kn_dtype_size(kn_dtype dt);
bool kn_dtype_is_float(kn_dtype dt);
/* The dtype two operands promote to (bool < ints < floats, wider wins). */
kn_dtype kn_dtype_promote(kn_dtype a, kn_dtype b);

/* IEEE binary16 and bfloat16 conversions, round to nearest even; NaN and
 * infinities are preserved (a NaN stays a quiet NaN). */
uint16_t kn_f32_to_f16(float f);
float kn_f16_to_f32(uint16_t h);
uint16_t kn_f32_to_bf16(float f);
float kn_bf16_to_f32(uint16_t b);

/* ---------------------------------------------------------- memory, threads */
/* Replaceable allocator: alloc(size, align, user) and free(ptr, user). */
typedef struct kn_allocator {
    void *(*alloc)(size_t size, size_t align, void *user);
    void (*free)(void *ptr, void *user);
    void *user;
} kn_allocator;
void kn_set_allocator(const kn_allocator *a); /* NULL restores the default */
void *kn_alloc(size_t size);                  /* 64-byte aligned; NULL + error on failure */
void kn_free(void *p);
size_t kn_alloc_live_bytes(void);
size_t kn_alloc_peak_bytes(void);
int64_t kn_alloc_count(void); /* allocations made so far */
/* Test mode: the n-th allocation from now fails (n >= 1); 0 switches it off. */
void kn_alloc_fail_after(int64_t n);

void kn_set_num_threads(int n); /* default: KILN_NUM_THREADS or the core count */
int kn_get_num_threads(void);
/* Runs fn(begin, end, ctx) over [0, n) in chunks of at least `grain`; the
 * chunking depends only on n and grain, never on the thread count. */
typedef void (*kn_range_fn)(int64_t begin, int64_t end, void *ctx);
void kn_parallel_for(int64_t n, int64_t grain, kn_range_fn fn, void *ctx);

/* ----------------------------------------------------------------- CPU */
enum {
    KN_CPU_AVX2 = 1u << 0,
    KN_CPU_FMA = 1u << 1,
    KN_CPU_F16C = 1u << 2,
    KN_CPU_AVX512F = 1u << 3,
    KN_CPU_AVX512BW = 1u << 4,
    KN_CPU_AVX512VL = 1u << 5,
    KN_CPU_AVX512_BF16 = 1u << 6,
    KN_CPU_AVX512_VNNI = 1u << 7,
    KN_CPU_AMX_TILE = 1u << 8,
    KN_CPU_AMX_BF16 = 1u << 9,
    KN_CPU_AMX_INT8 = 1u << 10,
    KN_CPU_AVX512DQ = 1u << 11,
};
typedef enum kn_isa { KN_ISA_REF = 0, KN_ISA_AVX2, KN_ISA_AVX512, KN_ISA_AVX512BF16 } kn_isa;
uint32_t kn_cpu_features(void);   /* what the CPU has (KN_CPU_* bits) */
kn_isa kn_isa_max(void);          /* best ISA level usable: CPU capped by KILN_ISA */
kn_status kn_set_isa(kn_isa cap); /* cap at run time, like KILN_ISA */
const char *kn_isa_name(kn_isa isa);
/* Prints version, CPU features and the ISA in use. */
void kn_print_info(FILE *f);

/* ----------------------------------------------------------------- RNG */
/* One global Philox-4x32 stream: element i of a random tensor depends only on
 * the seed and the stream offset, never on the thread count. */
void kn_manual_seed(uint64_t seed);
uint64_t kn_rng_seed(void);
uint64_t kn_rng_offset(void);
void kn_rng_set_offset(uint64_t offset);

/* -------------------------------------------------------------- tensors */
typedef struct kn_tensor kn_tensor;

kn_tensor *kn_tensor_empty(kn_dtype dt, int ndim, const int64_t *shape);
kn_tensor *kn_tensor_zeros(kn_dtype dt, int ndim, const int64_t *shape);
kn_tensor *kn_tensor_ones(kn_dtype dt, int ndim, const int64_t *shape);
kn_tensor *kn_tensor_full(kn_dtype dt, int ndim, const int64_t *shape, double value);
kn_tensor *kn_tensor_scalar(kn_dtype dt, double value); /* 0-d tensor */
kn_tensor *kn_tensor_arange(kn_dtype dt, double start, double stop, double step);
kn_tensor *kn_tensor_linspace(kn_dtype dt, double start, double stop, int64_t n);
kn_tensor *kn_tensor_eye(kn_dtype dt, int64_t n, int64_t m);
/* Copies `data` (contiguous, row-major, of dtype dt). */
kn_tensor *kn_tensor_from_data(kn_dtype dt, int ndim, const int64_t *shape, const void *data);
/* Borrows `data`: the tensor uses it in place and calls release(data, user)
 * (if not NULL) when the last view is gone. */
kn_tensor *kn_tensor_from_buffer(kn_dtype dt, int ndim, const int64_t *shape, void *data,
                                 void (*release)(void *data, void *user), void *user);
kn_tensor *kn_tensor_rand_uniform(kn_dtype dt, int ndim, const int64_t *shape, double lo,
                                  double hi);
kn_tensor *kn_tensor_rand_normal(kn_dtype dt, int ndim, const int64_t *shape, double mean,
                                 double std);
kn_tensor *kn_tensor_rand_bernoulli(kn_dtype dt, int ndim, const int64_t *shape, double p);
/* A tensor with shape and dtype but no data, for tracing and shape checks. */
kn_tensor *kn_tensor_symbolic(kn_dtype dt, int ndim, const int64_t *shape);

kn_tensor *kn_tensor_ref(kn_tensor *t);
void kn_tensor_unref(kn_tensor *t);

kn_dtype kn_tensor_dtype(const kn_tensor *t);
int kn_tensor_ndim(const kn_tensor *t);
const int64_t *kn_tensor_shape(const kn_tensor *t);
const int64_t *kn_tensor_strides(const kn_tensor *t); /* in elements */
int64_t kn_tensor_dim(const kn_tensor *t, int axis);  /* negative axes count from the end */
int64_t kn_tensor_numel(const kn_tensor *t);
bool kn_tensor_is_contiguous(const kn_tensor *t);
bool kn_tensor_is_symbolic(const kn_tensor *t);
bool kn_tensor_shares_storage(const kn_tensor *a, const kn_tensor *b);
/* Pointer to the first element (NULL + error for a symbolic tensor). */
void *kn_tensor_data(kn_tensor *t);
/* A string tensor holding copies of strs[0..numel) (C order, NUL-terminated,
 * NULL counts as ""); one allocation owns them all. */
kn_tensor *kn_tensor_from_strings(int ndim, const int64_t *shape, const char *const *strs);
/* Element i (in C order over the shape, any strides) of a string tensor,
 * valid while the tensor lives; NULL + error for other dtypes or i out of range. */
const char *kn_tensor_string(const kn_tensor *t, int64_t i);
/* Copies the elements, converted to dtype dt, into a contiguous buffer. */
kn_status kn_tensor_copy_to(const kn_tensor *t, kn_dtype dt, void *buf, size_t nbytes);
/* Reads one element (index has ndim entries) or the only element, as double. */
kn_status kn_tensor_get(const kn_tensor *t, const int64_t *index, double *value);
kn_status kn_tensor_item(const kn_tensor *t, double *value);
/* In-place writes; they bump the version so autograd notices. */
kn_status kn_tensor_set(kn_tensor *t, const int64_t *index, double value);
kn_status kn_tensor_fill_(kn_tensor *t, double value);
kn_status kn_tensor_copy_(kn_tensor *dst, const kn_tensor *src); /* broadcasts, converts */
uint64_t kn_tensor_version(const kn_tensor *t);
/* A new contiguous tensor with the same values (never a view). */
kn_tensor *kn_tensor_clone(const kn_tensor *t);

/* NumPy-like text: values, shape and dtype; big tensors are elided with ... */
kn_status kn_tensor_print(const kn_tensor *t, FILE *f);
/* Writes at most n bytes (NUL-terminated); returns the length needed. */
size_t kn_tensor_to_string(const kn_tensor *t, char *buf, size_t n);

/* ------------------------------------------------------------- autograd */
kn_status kn_tensor_set_requires_grad(kn_tensor *t, bool on); /* leaves only */
bool kn_tensor_requires_grad(const kn_tensor *t);
/* The accumulated gradient of a leaf (borrowed; NULL when none). */
kn_tensor *kn_tensor_grad(const kn_tensor *t);
void kn_tensor_zero_grad(kn_tensor *t);

/* Turns recording of ops on or off; returns the previous state. */
bool kn_autograd_record(bool on);
bool kn_autograd_is_recording(void);
/* no_grad scope: nothing is recorded until the matching end (nests). */
void kn_no_grad_begin(void);
void kn_no_grad_end(void);
enum { KN_BACKWARD_RETAIN_GRAPH = 1, KN_BACKWARD_CREATE_GRAPH = 2 };
/* Back-propagates from `out` with upstream gradient `grad` (NULL means ones;
 * required when out is not a scalar) and accumulates into leaves' .grad.
 * The recorded graph is freed afterwards unless RETAIN_GRAPH. */
kn_status kn_backward(kn_tensor *out, kn_tensor *grad);
kn_status kn_backward_ex(kn_tensor *out, kn_tensor *grad, unsigned flags);
/* Drops every recorded node (tensors keep their values). */
void kn_autograd_tape_free(void);
int64_t kn_autograd_tape_size(void);
/* Same storage, cut from the graph. */
kn_tensor *kn_detach(kn_tensor *x);

/* ------------------------------------------------------------ op registry */
typedef struct kn_op_def kn_op_def;
typedef enum kn_attr_type {
    KN_ATTR_INT,   /* int64_t */
    KN_ATTR_FLOAT, /* double */
    KN_ATTR_BOOL,  /* bool */
    KN_ATTR_INTS,  /* int64_t[KN_MAX_DIMS] plus a count */
    KN_ATTR_DTYPE, /* kn_dtype */
} kn_attr_type;
int kn_op_count(void);
const kn_op_def *kn_op_at(int i);
const kn_op_def *kn_op_find(const char *name);
const char *kn_op_name(const kn_op_def *op);
int kn_op_num_inputs(const kn_op_def *op);  /* -1: variadic */
int kn_op_num_outputs(const kn_op_def *op); /* -1: variadic */
int kn_op_num_attrs(const kn_op_def *op);
const char *kn_op_attr_name(const kn_op_def *op, int i);
kn_attr_type kn_op_attr_type(const kn_op_def *op, int i);
uint32_t kn_op_dtypes(const kn_op_def *op); /* bit (1 << dtype) per supported dtype */
bool kn_op_has_grad(const kn_op_def *op);

/* ======================================================================
 * Ops. Each returns a new tensor (or NULL and an error). Binary ops follow
 * NumPy broadcasting and dtype promotion; any strides are accepted.
 * ==================================================================== */

/* ---- elementwise unary */
kn_tensor *kn_neg(kn_tensor *x);
kn_tensor *kn_abs(kn_tensor *x);
kn_tensor *kn_sign(kn_tensor *x);
kn_tensor *kn_exp(kn_tensor *x);
kn_tensor *kn_expm1(kn_tensor *x);
kn_tensor *kn_log(kn_tensor *x);
kn_tensor *kn_log1p(kn_tensor *x);
kn_tensor *kn_sqrt(kn_tensor *x);
kn_tensor *kn_rsqrt(kn_tensor *x);
kn_tensor *kn_reciprocal(kn_tensor *x);
kn_tensor *kn_square(kn_tensor *x);
kn_tensor *kn_sin(kn_tensor *x);
kn_tensor *kn_cos(kn_tensor *x);
kn_tensor *kn_tan(kn_tensor *x);
kn_tensor *kn_tanh(kn_tensor *x);
kn_tensor *kn_sigmoid(kn_tensor *x);
kn_tensor *kn_relu(kn_tensor *x);
kn_tensor *kn_relu6(kn_tensor *x);
kn_tensor *kn_leaky_relu(kn_tensor *x, double negative_slope);
kn_tensor *kn_elu(kn_tensor *x, double alpha);
kn_tensor *kn_selu(kn_tensor *x);
kn_tensor *kn_gelu(kn_tensor *x);      /* exact: x * Phi(x) with erf */
kn_tensor *kn_gelu_tanh(kn_tensor *x); /* tanh approximation */
kn_tensor *kn_silu(kn_tensor *x);
kn_tensor *kn_mish(kn_tensor *x);
kn_tensor *kn_softplus(kn_tensor *x, double beta, double threshold);
kn_tensor *kn_softsign(kn_tensor *x);
/* max(0, min(1, alpha*x + beta)); PyTorch's is alpha=1/6, beta=0.5 */
kn_tensor *kn_hard_sigmoid(kn_tensor *x, double alpha, double beta);
kn_tensor *kn_hard_swish(kn_tensor *x);
kn_tensor *kn_erf(kn_tensor *x);
kn_tensor *kn_floor(kn_tensor *x);
kn_tensor *kn_ceil(kn_tensor *x);
kn_tensor *kn_round(kn_tensor *x); /* half to even */
kn_tensor *kn_trunc(kn_tensor *x);
kn_tensor *kn_clip(kn_tensor *x, double lo, double hi);
kn_tensor *kn_isnan(kn_tensor *x);
kn_tensor *kn_isinf(kn_tensor *x);
kn_tensor *kn_logical_not(kn_tensor *x);

/* ---- elementwise binary and ternary */
kn_tensor *kn_add(kn_tensor *a, kn_tensor *b);
kn_tensor *kn_sub(kn_tensor *a, kn_tensor *b);
kn_tensor *kn_mul(kn_tensor *a, kn_tensor *b);
kn_tensor *kn_div(kn_tensor *a, kn_tensor *b); /* true division: ints give f32 */
kn_tensor *kn_pow(kn_tensor *a, kn_tensor *b);
kn_tensor *kn_maximum(kn_tensor *a, kn_tensor *b);
kn_tensor *kn_minimum(kn_tensor *a, kn_tensor *b);
kn_tensor *kn_fmod(kn_tensor *a, kn_tensor *b);
kn_tensor *kn_atan2(kn_tensor *a, kn_tensor *b);
kn_tensor *kn_eq(kn_tensor *a, kn_tensor *b);
kn_tensor *kn_ne(kn_tensor *a, kn_tensor *b);
kn_tensor *kn_lt(kn_tensor *a, kn_tensor *b);
kn_tensor *kn_le(kn_tensor *a, kn_tensor *b);
kn_tensor *kn_gt(kn_tensor *a, kn_tensor *b);
kn_tensor *kn_ge(kn_tensor *a, kn_tensor *b);
kn_tensor *kn_logical_and(kn_tensor *a, kn_tensor *b);
kn_tensor *kn_logical_or(kn_tensor *a, kn_tensor *b);
kn_tensor *kn_logical_xor(kn_tensor *a, kn_tensor *b);
kn_tensor *kn_where(kn_tensor *cond, kn_tensor *a, kn_tensor *b);
/* Scalar conveniences: the scalar takes x's dtype. */
kn_tensor *kn_add_scalar(kn_tensor *x, double s);
kn_tensor *kn_mul_scalar(kn_tensor *x, double s);

/* ---- reductions. axes == NULL or n_axes == 0 reduces over all axes. */
kn_tensor *kn_sum(kn_tensor *x, int n_axes, const int *axes, bool keepdim);
kn_tensor *kn_mean(kn_tensor *x, int n_axes, const int *axes, bool keepdim);
kn_tensor *kn_prod(kn_tensor *x, int n_axes, const int *axes, bool keepdim);
kn_tensor *kn_max(kn_tensor *x, int n_axes, const int *axes, bool keepdim);
kn_tensor *kn_min(kn_tensor *x, int n_axes, const int *axes, bool keepdim);
kn_tensor *kn_argmax(kn_tensor *x, int axis, bool keepdim); /* i64 */
kn_tensor *kn_argmin(kn_tensor *x, int axis, bool keepdim);
kn_tensor *kn_logsumexp(kn_tensor *x, int n_axes, const int *axes, bool keepdim);
kn_tensor *kn_var(kn_tensor *x, int n_axes, const int *axes, bool unbiased, bool keepdim);
kn_tensor *kn_std(kn_tensor *x, int n_axes, const int *axes, bool unbiased, bool keepdim);
kn_tensor *kn_norm(kn_tensor *x, int p, int n_axes, const int *axes, bool keepdim); /* p 1|2 */
kn_tensor *kn_all(kn_tensor *x, int n_axes, const int *axes, bool keepdim);         /* bool */
kn_tensor *kn_any(kn_tensor *x, int n_axes, const int *axes, bool keepdim);
kn_tensor *kn_cumsum(kn_tensor *x, int axis);
/* Values come out sorted (largest first, or smallest first) whatever `sorted`
 * says; ties keep the lower index first. */
kn_status kn_topk(kn_tensor *x, int64_t k, int axis, bool largest, bool sorted, kn_tensor **values,
                  kn_tensor **indices);
/* Stable sort. */
kn_status kn_sort(kn_tensor *x, int axis, bool descending, kn_tensor **values, kn_tensor **indices);
kn_tensor *kn_argsort(kn_tensor *x, int axis, bool descending);

/* ---- linear algebra */
/* NumPy matmul: 1-D operands promoted, batch dims broadcast. */
kn_tensor *kn_matmul(kn_tensor *a, kn_tensor *b);
/* matmul of a (or its last-two-dims transpose) and b (or its transpose). */
kn_tensor *kn_matmul_t(kn_tensor *a, kn_tensor *b, bool transpose_a, bool transpose_b);
/* x (..., in) · w(out, in)ᵀ + bias(out); bias may be NULL. */
kn_tensor *kn_linear(kn_tensor *x, kn_tensor *w, kn_tensor *bias);
/* beta * c + alpha * (a · b), a (m,k), b (k,n), c broadcastable to (m,n). */
kn_tensor *kn_addmm(kn_tensor *c, kn_tensor *a, kn_tensor *b, double beta, double alpha);

/* ---- convolution, pooling, resampling */
typedef enum kn_layout {
    KN_LAYOUT_NCHW = 0, /* channels first: (N, C, spatial...) */
    KN_LAYOUT_NHWC = 1, /* channels last: (N, spatial..., C) */
} kn_layout;
/* Zero fields take defaults (stride 1, dilation 1, groups 1, no padding), so
 * &(kn_conv_params){.stride = {2, 2}} reads as it should. Weights are always
 * (C_out, C_in/groups, k...) — for conv_transpose (C_in, C_out/groups, k...) —
 * whatever the activation layout. */
typedef struct kn_conv_params {
    int64_t stride[3];
    int64_t pad_begin[3];
    int64_t pad_end[3];
    int64_t dilation[3];
    int64_t groups;
    int64_t output_padding[3]; /* conv_transpose only */
    bool pad_same;             /* "same" (SAME_UPPER): pads computed, pad_* ignored */
    kn_layout layout;
} kn_conv_params;
kn_tensor *kn_conv1d(kn_tensor *x, kn_tensor *w, kn_tensor *bias, const kn_conv_params *p);
kn_tensor *kn_conv2d(kn_tensor *x, kn_tensor *w, kn_tensor *bias, const kn_conv_params *p);
kn_tensor *kn_conv3d(kn_tensor *x, kn_tensor *w, kn_tensor *bias, const kn_conv_params *p);
kn_tensor *kn_conv_transpose1d(kn_tensor *x, kn_tensor *w, kn_tensor *bias,
                               const kn_conv_params *p);
kn_tensor *kn_conv_transpose2d(kn_tensor *x, kn_tensor *w, kn_tensor *bias,
                               const kn_conv_params *p);
kn_tensor *kn_conv_transpose3d(kn_tensor *x, kn_tensor *w, kn_tensor *bias,
                               const kn_conv_params *p);

/* Pooling over 1 to 3 spatial dims (from x's rank). stride 0 means kernel. */
typedef struct kn_pool_params {
    int64_t kernel[3];
    int64_t stride[3];
    int64_t pad_begin[3];
    int64_t pad_end[3];
    bool ceil_mode;
    bool count_include_pad; /* avg_pool */
    kn_layout layout;
} kn_pool_params;
kn_tensor *kn_max_pool(kn_tensor *x, const kn_pool_params *p);
kn_tensor *kn_avg_pool(kn_tensor *x, const kn_pool_params *p);
kn_tensor *kn_global_avg_pool(kn_tensor *x, kn_layout layout); /* keeps 1-sized spatial dims */
kn_tensor *kn_global_max_pool(kn_tensor *x, kn_layout layout);
kn_tensor *kn_adaptive_avg_pool2d(kn_tensor *x, int64_t out_h, int64_t out_w, kn_layout layout);
kn_tensor *kn_adaptive_max_pool2d(kn_tensor *x, int64_t out_h, int64_t out_w, kn_layout layout);
kn_tensor *kn_upsample_nearest2d(kn_tensor *x, int64_t out_h, int64_t out_w, kn_layout layout);
kn_tensor *kn_upsample_bilinear2d(kn_tensor *x, int64_t out_h, int64_t out_w, bool align_corners,
                                  kn_layout layout);

/* ---- normalization, softmax, dropout */
/* Channel axis 1 (NCHW) or last (NHWC). gamma/beta may be NULL. In training
 * the batch statistics are used and running_mean/var (if given) updated in
 * place: r = (1 - momentum) * r + momentum * batch (unbiased var). */
kn_tensor *kn_batch_norm(kn_tensor *x, kn_tensor *gamma, kn_tensor *beta, kn_tensor *running_mean,
                         kn_tensor *running_var, bool training, double momentum, double eps,
                         kn_layout layout);
/* Normalizes over the last n_axes dims; gamma/beta of that shape or NULL. */
kn_tensor *kn_layer_norm(kn_tensor *x, int n_axes, kn_tensor *gamma, kn_tensor *beta, double eps);
kn_tensor *kn_group_norm(kn_tensor *x, int64_t groups, kn_tensor *gamma, kn_tensor *beta,
                         double eps); /* NCHW..., gamma/beta (C) */
kn_tensor *kn_instance_norm(kn_tensor *x, kn_tensor *gamma, kn_tensor *beta, double eps);
kn_tensor *kn_rms_norm(kn_tensor *x, int n_axes, kn_tensor *gamma, double eps);
kn_tensor *kn_softmax(kn_tensor *x, int axis);
kn_tensor *kn_log_softmax(kn_tensor *x, int axis);
/* Zeroes each element with probability p and scales the rest by 1/(1-p);
 * identity when !training. Uses the global RNG stream. */
kn_tensor *kn_dropout(kn_tensor *x, double p, bool training);

/* ---- shape and indexing (views where possible: reshape of a contiguous
 * tensor, permute, transpose, squeeze, unsqueeze, expand, slice, narrow) */
kn_tensor *kn_reshape(kn_tensor *x, int ndim, const int64_t *shape); /* one -1 allowed */
kn_tensor *kn_flatten(kn_tensor *x, int start_axis, int end_axis);
kn_tensor *kn_squeeze(kn_tensor *x, int n_axes, const int *axes); /* 0: all size-1 */
kn_tensor *kn_unsqueeze(kn_tensor *x, int axis);
kn_tensor *kn_permute(kn_tensor *x, int ndim, const int *perm);
kn_tensor *kn_transpose(kn_tensor *x, int axis0, int axis1);
kn_tensor *kn_expand(kn_tensor *x, int ndim, const int64_t *shape); /* -1 keeps a dim */
kn_tensor *kn_slice(kn_tensor *x, int axis, int64_t start, int64_t stop, int64_t step);
kn_tensor *kn_narrow(kn_tensor *x, int axis, int64_t start, int64_t length);
kn_tensor *kn_contiguous(kn_tensor *x);
kn_tensor *kn_cast(kn_tensor *x, kn_dtype dt);
kn_tensor *kn_concat(int n, kn_tensor *const *xs, int axis);
kn_tensor *kn_stack(int n, kn_tensor *const *xs, int axis);
/* Splits into n parts of the given sizes along axis; outs gets n tensors. */
kn_status kn_split(kn_tensor *x, int n, const int64_t *sizes, int axis, kn_tensor **outs);
/* Like torch.chunk: *n_out <= chunks parts of ceil(dim/chunks) (the last may be
 * smaller); outs needs room for `chunks` entries. */
kn_status kn_chunk(kn_tensor *x, int chunks, int axis, kn_tensor **outs, int *n_out);
typedef enum kn_pad_mode { KN_PAD_CONSTANT = 0, KN_PAD_REFLECT, KN_PAD_EDGE } kn_pad_mode;
/* pads[2*i], pads[2*i+1]: before/after for axis i (all ndim axes). */
kn_tensor *kn_pad(kn_tensor *x, const int64_t *pads, kn_pad_mode mode, double value);
kn_tensor *kn_tile(kn_tensor *x, int n, const int64_t *reps);
kn_tensor *kn_repeat(kn_tensor *x, int64_t repeats, int axis);  /* numpy.repeat */
kn_tensor *kn_gather(kn_tensor *x, int axis, kn_tensor *index); /* torch.gather */
kn_tensor *kn_scatter(kn_tensor *x, int axis, kn_tensor *index, kn_tensor *src);
kn_tensor *kn_scatter_add(kn_tensor *x, int axis, kn_tensor *index, kn_tensor *src);
kn_tensor *kn_index_select(kn_tensor *x, int axis, kn_tensor *index);
kn_tensor *kn_take(kn_tensor *x, kn_tensor *index); /* flat indices */
kn_tensor *kn_one_hot(kn_tensor *index, int64_t depth, kn_dtype dt);
kn_tensor *kn_embedding(kn_tensor *weight, kn_tensor *index);
kn_tensor *kn_masked_fill(kn_tensor *x, kn_tensor *mask, double value);

/* ---- losses */
typedef enum kn_reduction {
    KN_REDUCTION_MEAN = 0,
    KN_REDUCTION_SUM,
    KN_REDUCTION_NONE,
    KN_REDUCTION_BATCHMEAN, /* kl_div */
} kn_reduction;
typedef struct kn_loss_params {
    kn_reduction reduction;
    int64_t ignore_index; /* cross_entropy/nll with class indices, used when
                             use_ignore_index is true (PyTorch's default is -100) */
    bool use_ignore_index;
    double label_smoothing; /* cross_entropy */
    double beta;            /* smooth_l1 (0 means 1) */
    double delta;           /* huber (0 means 1) */
    bool log_target;        /* kl_div */
} kn_loss_params;
/* logits (N, C, ...); target: class indices (N, ...) of an integer dtype or
 * probabilities shaped like logits; weight (C) or NULL. */
kn_tensor *kn_cross_entropy(kn_tensor *logits, kn_tensor *target, kn_tensor *weight,
                            const kn_loss_params *p);
kn_tensor *kn_nll_loss(kn_tensor *log_probs, kn_tensor *target, kn_tensor *weight,
                       const kn_loss_params *p);
kn_tensor *kn_bce_with_logits(kn_tensor *logits, kn_tensor *target, kn_tensor *weight,
                              kn_tensor *pos_weight, const kn_loss_params *p);
kn_tensor *kn_mse_loss(kn_tensor *x, kn_tensor *y, const kn_loss_params *p);
kn_tensor *kn_l1_loss(kn_tensor *x, kn_tensor *y, const kn_loss_params *p);
kn_tensor *kn_smooth_l1_loss(kn_tensor *x, kn_tensor *y, const kn_loss_params *p);
kn_tensor *kn_huber_loss(kn_tensor *x, kn_tensor *y, const kn_loss_params *p);
kn_tensor *kn_kl_div(kn_tensor *log_input, kn_tensor *target, const kn_loss_params *p);

/* ---- recurrent cells (PyTorch gate order: LSTM i,f,g,o; GRU r,z,n).
 * x (N, in), h/c (N, hidden), w_ih (G*hidden, in), w_hh (G*hidden, hidden),
 * biases (G*hidden) or NULL. */
kn_status kn_lstm_cell(kn_tensor *x, kn_tensor *h, kn_tensor *c, kn_tensor *w_ih, kn_tensor *w_hh,
                       kn_tensor *b_ih, kn_tensor *b_hh, kn_tensor **h_out, kn_tensor **c_out);
kn_tensor *kn_gru_cell(kn_tensor *x, kn_tensor *h, kn_tensor *w_ih, kn_tensor *w_hh,
                       kn_tensor *b_ih, kn_tensor *b_hh);


/* ================================================================ graphs
 * Tracing: ops given a symbolic tensor of a graph append a node instead of
 * computing; the same C code runs eagerly or builds a graph. A graph is then
 * compiled (optimization passes) and run on concrete tensors. */
typedef struct kn_graph kn_graph;
kn_graph *kn_graph_new(void);
void kn_graph_free(kn_graph *g);
/* A symbolic tensor standing for the next graph input. */
kn_tensor *kn_graph_input(kn_graph *g, const char *name, kn_dtype dt, int ndim,
                          const int64_t *shape);
/* A symbolic tensor standing for a parameter bound to `value` (by reference:
 * later changes to value's data are seen by every run). */
kn_tensor *kn_graph_param(kn_graph *g, const char *name, kn_tensor *value);
/* Marks a traced tensor as the next graph output. */
kn_status kn_graph_output(kn_graph *g, kn_tensor *t);
int kn_graph_num_inputs(const kn_graph *g);
int kn_graph_num_outputs(const kn_graph *g);
int kn_graph_num_nodes(const kn_graph *g); /* live nodes */
kn_status kn_graph_print(const kn_graph *g, FILE *f);
enum {
    KN_GRAPH_INFERENCE = 0, /* inference-only rewrites allowed (drop dropout, fold) */
    KN_GRAPH_TRAINING = 1,  /* keep training semantics (dropout, batch statistics) */
};
/* Runs the pass pipeline (infer, dce, cse, fold, inference rewrites). Passes
 * named in KILN_DISABLE_PASSES (comma-separated) are skipped;
 * KILN_DUMP_GRAPH=after:NAME prints the graph after pass NAME to stderr. */
kn_status kn_graph_compile(kn_graph *g, unsigned flags);
/* Runs the graph: inputs in order (dtype and shape as traced), outputs get
 * new references. Ops record on the autograd tape when recording is on. */
kn_status kn_graph_run(kn_graph *g, int n_in, kn_tensor *const *inputs, int n_out,
                       kn_tensor **outputs);
/* Training graph: appends the backward of the scalar output `loss_output`
 * (built from each op's gradient) and makes d loss / d p a new output for
 * every parameter p that requires a gradient, in parameter order; *n_grads
 * gets their count. Compile with KN_GRAPH_TRAINING afterwards. */
kn_status kn_graph_build_backward(kn_graph *g, int loss_output, int *n_grads);
/* Per-node timing of the next runs: op, count, total ms, share. */
void kn_graph_set_profiling(kn_graph *g, bool on);
kn_status kn_graph_print_profile(const kn_graph *g, FILE *f);

/* ================================================================ blocks
 * A block is a forward function plus named parameters. Eagerly it just calls
 * the function; hybridized, the first call per input signature (dtypes,
 * shapes, training flag) traces the function into a graph, compiles it and
 * caches it; later calls run the cached graph. */
typedef struct kn_block kn_block;
typedef kn_status (*kn_forward_fn)(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                                   kn_tensor **out, void *user);
kn_block *kn_block_new(const char *name, kn_forward_fn forward, void *user);
void kn_block_free(kn_block *b);
/* Adds a parameter (the block takes a reference). */
kn_status kn_block_add_param(kn_block *b, const char *name, kn_tensor *value);
/* Inside forward: the parameter to compute with (borrowed). */
kn_tensor *kn_block_param(kn_block *b, const char *name);
/* Child blocks: the parent owns the child (freeing the parent frees it; an
 * attached child cannot be freed alone). The listing functions below cover
 * the whole tree with hierarchical names ("encoder.fc.weight"); a traced
 * parent traces its children's forward calls into the same graph. */
kn_status kn_block_add_child(kn_block *b, const char *name, kn_block *child);
kn_block *kn_block_child(const kn_block *b, const char *name);
int kn_block_num_params(const kn_block *b); /* the whole tree */
const char *kn_block_param_name(const kn_block *b, int i);
kn_tensor *kn_block_param_at(const kn_block *b, int i); /* borrowed */
void kn_block_set_training(kn_block *b, bool training);
bool kn_block_is_training(const kn_block *b);
enum { KN_HYBRIDIZE_OFF = 0, KN_HYBRIDIZE_ON = 1 };
kn_status kn_block_hybridize(kn_block *b, unsigned flags);
kn_status kn_block_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                           kn_tensor **out);
/* Traces the block's forward into g (parameters become graph parameters),
 * from symbolic inputs of g: for building bigger graphs, e.g. forward + loss
 * + backward. */
kn_status kn_block_trace(kn_block *b, kn_graph *g, int n_in, kn_tensor *const *in, int n_out,
                         kn_tensor **out);
/* How many times the forward function was traced. A new batch size (dim 0
 * of every input) reuses a cached graph with shapes inferred again, without
 * tracing, unless the trace may have baked the batch size into an op's
 * attributes (e.g. a reshape to (B, -1)); then it traces again. */
int64_t kn_block_num_traces(const kn_block *b);
/* The graph cached for the last call (borrowed; NULL when not hybridized). */
kn_graph *kn_block_graph(const kn_block *b);

/* ================================================================ files
 * A tensor map holds named tensors (references); safetensors files store
 * one. Writes go to a temporary file renamed into place, so a crash never
 * leaves a half-written file; reads check every offset and size first. */
typedef struct kn_tensor_map kn_tensor_map;
kn_tensor_map *kn_tensor_map_new(void);
void kn_tensor_map_free(kn_tensor_map *m);
kn_status kn_tensor_map_set(kn_tensor_map *m, const char *name, kn_tensor *t);
kn_tensor *kn_tensor_map_get(const kn_tensor_map *m, const char *name); /* borrowed */
int kn_tensor_map_size(const kn_tensor_map *m);
const char *kn_tensor_map_name(const kn_tensor_map *m, int i);
kn_tensor *kn_tensor_map_at(const kn_tensor_map *m, int i); /* borrowed */
kn_status kn_safetensors_save(const char *path, const kn_tensor_map *m);
kn_tensor_map *kn_safetensors_load(const char *path);

/* NumPy .npy files: one array (little-endian f32, f64, f16, i64, i32, i8,
 * u8, bool; C order). Saving bf16 writes f32. Reads check the header and
 * that the data matches its shape; writes are atomic. */
kn_tensor *kn_npy_load(const char *path);
kn_status kn_npy_save(const char *path, const kn_tensor *t);

/* A graph as versioned JSON plus its parameters and constants as
 * safetensors; loading needs none of the code that built it. */
kn_status kn_graph_save(const kn_graph *g, const char *json_path, const char *safetensors_path);
kn_graph *kn_graph_load(const char *json_path, const char *safetensors_path);
/* Saves the graph of a hybridized block's last call. */
kn_status kn_block_export(const kn_block *b, const char *json_path, const char *safetensors_path);

/* ================================================================ training
 * Optimizers, schedules and metrics (kiln/optim.h); datasets and the data
 * loader (kiln/data.h); layers, initializers and models (kiln/nn.h); ONNX
 * import and export (kiln/onnx.h). */
#include "kiln/optim.h"
#include "kiln/data.h"
#include "kiln/nn.h"
#include "kiln/onnx.h"

/* ---- call sites. Each op call from user code records its __FILE__ and
 * __LINE__, so an error found while tracing or running a graph names the
 * user's line. Define KN_NO_CALL_SITE before including kiln.h to turn the
 * macros off (kiln's own sources do). */
void kn_set_call_site(const char *file, int line);
#ifndef KN_NO_CALL_SITE
#define kn_ne(...) (kn_set_call_site(__FILE__, __LINE__), kn_ne(__VA_ARGS__))
#define kn_neg(...) (kn_set_call_site(__FILE__, __LINE__), kn_neg(__VA_ARGS__))
#define kn_abs(...) (kn_set_call_site(__FILE__, __LINE__), kn_abs(__VA_ARGS__))
#define kn_sign(...) (kn_set_call_site(__FILE__, __LINE__), kn_sign(__VA_ARGS__))
#define kn_exp(...) (kn_set_call_site(__FILE__, __LINE__), kn_exp(__VA_ARGS__))
#define kn_expm1(...) (kn_set_call_site(__FILE__, __LINE__), kn_expm1(__VA_ARGS__))
#define kn_log(...) (kn_set_call_site(__FILE__, __LINE__), kn_log(__VA_ARGS__))
#define kn_log1p(...) (kn_set_call_site(__FILE__, __LINE__), kn_log1p(__VA_ARGS__))
#define kn_sqrt(...) (kn_set_call_site(__FILE__, __LINE__), kn_sqrt(__VA_ARGS__))
#define kn_rsqrt(...) (kn_set_call_site(__FILE__, __LINE__), kn_rsqrt(__VA_ARGS__))
#define kn_reciprocal(...) (kn_set_call_site(__FILE__, __LINE__), kn_reciprocal(__VA_ARGS__))
#define kn_square(...) (kn_set_call_site(__FILE__, __LINE__), kn_square(__VA_ARGS__))
#define kn_sin(...) (kn_set_call_site(__FILE__, __LINE__), kn_sin(__VA_ARGS__))
#define kn_cos(...) (kn_set_call_site(__FILE__, __LINE__), kn_cos(__VA_ARGS__))
#define kn_tan(...) (kn_set_call_site(__FILE__, __LINE__), kn_tan(__VA_ARGS__))
#define kn_tanh(...) (kn_set_call_site(__FILE__, __LINE__), kn_tanh(__VA_ARGS__))
#define kn_sigmoid(...) (kn_set_call_site(__FILE__, __LINE__), kn_sigmoid(__VA_ARGS__))
#define kn_relu(...) (kn_set_call_site(__FILE__, __LINE__), kn_relu(__VA_ARGS__))
#define kn_relu6(...) (kn_set_call_site(__FILE__, __LINE__), kn_relu6(__VA_ARGS__))
#define kn_leaky_relu(...) (kn_set_call_site(__FILE__, __LINE__), kn_leaky_relu(__VA_ARGS__))
#define kn_le(...) (kn_set_call_site(__FILE__, __LINE__), kn_le(__VA_ARGS__))
#define kn_elu(...) (kn_set_call_site(__FILE__, __LINE__), kn_elu(__VA_ARGS__))
#define kn_selu(...) (kn_set_call_site(__FILE__, __LINE__), kn_selu(__VA_ARGS__))
#define kn_gelu(...) (kn_set_call_site(__FILE__, __LINE__), kn_gelu(__VA_ARGS__))
#define kn_ge(...) (kn_set_call_site(__FILE__, __LINE__), kn_ge(__VA_ARGS__))
#define kn_gelu_tanh(...) (kn_set_call_site(__FILE__, __LINE__), kn_gelu_tanh(__VA_ARGS__))
#define kn_silu(...) (kn_set_call_site(__FILE__, __LINE__), kn_silu(__VA_ARGS__))
#define kn_mish(...) (kn_set_call_site(__FILE__, __LINE__), kn_mish(__VA_ARGS__))
#define kn_softplus(...) (kn_set_call_site(__FILE__, __LINE__), kn_softplus(__VA_ARGS__))
#define kn_softsign(...) (kn_set_call_site(__FILE__, __LINE__), kn_softsign(__VA_ARGS__))
#define kn_hard_sigmoid(...) (kn_set_call_site(__FILE__, __LINE__), kn_hard_sigmoid(__VA_ARGS__))
#define kn_hard_swish(...) (kn_set_call_site(__FILE__, __LINE__), kn_hard_swish(__VA_ARGS__))
#define kn_erf(...) (kn_set_call_site(__FILE__, __LINE__), kn_erf(__VA_ARGS__))
#define kn_floor(...) (kn_set_call_site(__FILE__, __LINE__), kn_floor(__VA_ARGS__))
#define kn_ceil(...) (kn_set_call_site(__FILE__, __LINE__), kn_ceil(__VA_ARGS__))
#define kn_round(...) (kn_set_call_site(__FILE__, __LINE__), kn_round(__VA_ARGS__))
#define kn_trunc(...) (kn_set_call_site(__FILE__, __LINE__), kn_trunc(__VA_ARGS__))
#define kn_clip(...) (kn_set_call_site(__FILE__, __LINE__), kn_clip(__VA_ARGS__))
#define kn_isnan(...) (kn_set_call_site(__FILE__, __LINE__), kn_isnan(__VA_ARGS__))
#define kn_isinf(...) (kn_set_call_site(__FILE__, __LINE__), kn_isinf(__VA_ARGS__))
#define kn_logical_not(...) (kn_set_call_site(__FILE__, __LINE__), kn_logical_not(__VA_ARGS__))
#define kn_add(...) (kn_set_call_site(__FILE__, __LINE__), kn_add(__VA_ARGS__))
#define kn_sub(...) (kn_set_call_site(__FILE__, __LINE__), kn_sub(__VA_ARGS__))
#define kn_mul(...) (kn_set_call_site(__FILE__, __LINE__), kn_mul(__VA_ARGS__))
#define kn_div(...) (kn_set_call_site(__FILE__, __LINE__), kn_div(__VA_ARGS__))
#define kn_pow(...) (kn_set_call_site(__FILE__, __LINE__), kn_pow(__VA_ARGS__))
#define kn_maximum(...) (kn_set_call_site(__FILE__, __LINE__), kn_maximum(__VA_ARGS__))
#define kn_max(...) (kn_set_call_site(__FILE__, __LINE__), kn_max(__VA_ARGS__))
#define kn_minimum(...) (kn_set_call_site(__FILE__, __LINE__), kn_minimum(__VA_ARGS__))
#define kn_min(...) (kn_set_call_site(__FILE__, __LINE__), kn_min(__VA_ARGS__))
#define kn_fmod(...) (kn_set_call_site(__FILE__, __LINE__), kn_fmod(__VA_ARGS__))
#define kn_atan2(...) (kn_set_call_site(__FILE__, __LINE__), kn_atan2(__VA_ARGS__))
#define kn_eq(...) (kn_set_call_site(__FILE__, __LINE__), kn_eq(__VA_ARGS__))
#define kn_lt(...) (kn_set_call_site(__FILE__, __LINE__), kn_lt(__VA_ARGS__))
#define kn_gt(...) (kn_set_call_site(__FILE__, __LINE__), kn_gt(__VA_ARGS__))
#define kn_logical_and(...) (kn_set_call_site(__FILE__, __LINE__), kn_logical_and(__VA_ARGS__))
#define kn_logical_or(...) (kn_set_call_site(__FILE__, __LINE__), kn_logical_or(__VA_ARGS__))
#define kn_logical_xor(...) (kn_set_call_site(__FILE__, __LINE__), kn_logical_xor(__VA_ARGS__))
#define kn_where(...) (kn_set_call_site(__FILE__, __LINE__), kn_where(__VA_ARGS__))
#define kn_add_scalar(...) (kn_set_call_site(__FILE__, __LINE__), kn_add_scalar(__VA_ARGS__))
#define kn_mul_scalar(...) (kn_set_call_site(__FILE__, __LINE__), kn_mul_scalar(__VA_ARGS__))
#define kn_sum(...) (kn_set_call_site(__FILE__, __LINE__), kn_sum(__VA_ARGS__))
#define kn_mean(...) (kn_set_call_site(__FILE__, __LINE__), kn_mean(__VA_ARGS__))
#define kn_prod(...) (kn_set_call_site(__FILE__, __LINE__), kn_prod(__VA_ARGS__))
#define kn_argmax(...) (kn_set_call_site(__FILE__, __LINE__), kn_argmax(__VA_ARGS__))
#define kn_argmin(...) (kn_set_call_site(__FILE__, __LINE__), kn_argmin(__VA_ARGS__))
#define kn_logsumexp(...) (kn_set_call_site(__FILE__, __LINE__), kn_logsumexp(__VA_ARGS__))
#define kn_var(...) (kn_set_call_site(__FILE__, __LINE__), kn_var(__VA_ARGS__))
#define kn_std(...) (kn_set_call_site(__FILE__, __LINE__), kn_std(__VA_ARGS__))
#define kn_norm(...) (kn_set_call_site(__FILE__, __LINE__), kn_norm(__VA_ARGS__))
#define kn_all(...) (kn_set_call_site(__FILE__, __LINE__), kn_all(__VA_ARGS__))
#define kn_any(...) (kn_set_call_site(__FILE__, __LINE__), kn_any(__VA_ARGS__))
#define kn_cumsum(...) (kn_set_call_site(__FILE__, __LINE__), kn_cumsum(__VA_ARGS__))
#define kn_topk(...) (kn_set_call_site(__FILE__, __LINE__), kn_topk(__VA_ARGS__))
#define kn_sort(...) (kn_set_call_site(__FILE__, __LINE__), kn_sort(__VA_ARGS__))
#define kn_argsort(...) (kn_set_call_site(__FILE__, __LINE__), kn_argsort(__VA_ARGS__))
#define kn_matmul(...) (kn_set_call_site(__FILE__, __LINE__), kn_matmul(__VA_ARGS__))
#define kn_matmul_t(...) (kn_set_call_site(__FILE__, __LINE__), kn_matmul_t(__VA_ARGS__))
#define kn_linear(...) (kn_set_call_site(__FILE__, __LINE__), kn_linear(__VA_ARGS__))
#define kn_addmm(...) (kn_set_call_site(__FILE__, __LINE__), kn_addmm(__VA_ARGS__))
#define kn_conv1d(...) (kn_set_call_site(__FILE__, __LINE__), kn_conv1d(__VA_ARGS__))
#define kn_conv2d(...) (kn_set_call_site(__FILE__, __LINE__), kn_conv2d(__VA_ARGS__))
#define kn_conv3d(...) (kn_set_call_site(__FILE__, __LINE__), kn_conv3d(__VA_ARGS__))
#define kn_conv_transpose1d(...) (kn_set_call_site(__FILE__, __LINE__), kn_conv_transpose1d(__VA_ARGS__))
#define kn_conv_transpose2d(...) (kn_set_call_site(__FILE__, __LINE__), kn_conv_transpose2d(__VA_ARGS__))
#define kn_conv_transpose3d(...) (kn_set_call_site(__FILE__, __LINE__), kn_conv_transpose3d(__VA_ARGS__))
#define kn_max_pool(...) (kn_set_call_site(__FILE__, __LINE__), kn_max_pool(__VA_ARGS__))
#define kn_avg_pool(...) (kn_set_call_site(__FILE__, __LINE__), kn_avg_pool(__VA_ARGS__))
#define kn_global_avg_pool(...) (kn_set_call_site(__FILE__, __LINE__), kn_global_avg_pool(__VA_ARGS__))
#define kn_global_max_pool(...) (kn_set_call_site(__FILE__, __LINE__), kn_global_max_pool(__VA_ARGS__))
#define kn_adaptive_avg_pool2d(...) (kn_set_call_site(__FILE__, __LINE__), kn_adaptive_avg_pool2d(__VA_ARGS__))
#define kn_adaptive_max_pool2d(...) (kn_set_call_site(__FILE__, __LINE__), kn_adaptive_max_pool2d(__VA_ARGS__))
#define kn_upsample_nearest2d(...) (kn_set_call_site(__FILE__, __LINE__), kn_upsample_nearest2d(__VA_ARGS__))
#define kn_upsample_bilinear2d(...) (kn_set_call_site(__FILE__, __LINE__), kn_upsample_bilinear2d(__VA_ARGS__))
#define kn_batch_norm(...) (kn_set_call_site(__FILE__, __LINE__), kn_batch_norm(__VA_ARGS__))
#define kn_layer_norm(...) (kn_set_call_site(__FILE__, __LINE__), kn_layer_norm(__VA_ARGS__))
#define kn_group_norm(...) (kn_set_call_site(__FILE__, __LINE__), kn_group_norm(__VA_ARGS__))
#define kn_instance_norm(...) (kn_set_call_site(__FILE__, __LINE__), kn_instance_norm(__VA_ARGS__))
#define kn_rms_norm(...) (kn_set_call_site(__FILE__, __LINE__), kn_rms_norm(__VA_ARGS__))
#define kn_softmax(...) (kn_set_call_site(__FILE__, __LINE__), kn_softmax(__VA_ARGS__))
#define kn_log_softmax(...) (kn_set_call_site(__FILE__, __LINE__), kn_log_softmax(__VA_ARGS__))
#define kn_dropout(...) (kn_set_call_site(__FILE__, __LINE__), kn_dropout(__VA_ARGS__))
#define kn_reshape(...) (kn_set_call_site(__FILE__, __LINE__), kn_reshape(__VA_ARGS__))
#define kn_flatten(...) (kn_set_call_site(__FILE__, __LINE__), kn_flatten(__VA_ARGS__))
#define kn_squeeze(...) (kn_set_call_site(__FILE__, __LINE__), kn_squeeze(__VA_ARGS__))
#define kn_unsqueeze(...) (kn_set_call_site(__FILE__, __LINE__), kn_unsqueeze(__VA_ARGS__))
#define kn_permute(...) (kn_set_call_site(__FILE__, __LINE__), kn_permute(__VA_ARGS__))
#define kn_transpose(...) (kn_set_call_site(__FILE__, __LINE__), kn_transpose(__VA_ARGS__))
#define kn_expand(...) (kn_set_call_site(__FILE__, __LINE__), kn_expand(__VA_ARGS__))
#define kn_slice(...) (kn_set_call_site(__FILE__, __LINE__), kn_slice(__VA_ARGS__))
#define kn_narrow(...) (kn_set_call_site(__FILE__, __LINE__), kn_narrow(__VA_ARGS__))
#define kn_contiguous(...) (kn_set_call_site(__FILE__, __LINE__), kn_contiguous(__VA_ARGS__))
#define kn_cast(...) (kn_set_call_site(__FILE__, __LINE__), kn_cast(__VA_ARGS__))
#define kn_concat(...) (kn_set_call_site(__FILE__, __LINE__), kn_concat(__VA_ARGS__))
#define kn_stack(...) (kn_set_call_site(__FILE__, __LINE__), kn_stack(__VA_ARGS__))
#define kn_split(...) (kn_set_call_site(__FILE__, __LINE__), kn_split(__VA_ARGS__))
#define kn_chunk(...) (kn_set_call_site(__FILE__, __LINE__), kn_chunk(__VA_ARGS__))
#define kn_pad(...) (kn_set_call_site(__FILE__, __LINE__), kn_pad(__VA_ARGS__))
#define kn_tile(...) (kn_set_call_site(__FILE__, __LINE__), kn_tile(__VA_ARGS__))
#define kn_repeat(...) (kn_set_call_site(__FILE__, __LINE__), kn_repeat(__VA_ARGS__))
#define kn_gather(...) (kn_set_call_site(__FILE__, __LINE__), kn_gather(__VA_ARGS__))
#define kn_scatter(...) (kn_set_call_site(__FILE__, __LINE__), kn_scatter(__VA_ARGS__))
#define kn_scatter_add(...) (kn_set_call_site(__FILE__, __LINE__), kn_scatter_add(__VA_ARGS__))
#define kn_index_select(...) (kn_set_call_site(__FILE__, __LINE__), kn_index_select(__VA_ARGS__))
#define kn_take(...) (kn_set_call_site(__FILE__, __LINE__), kn_take(__VA_ARGS__))
#define kn_one_hot(...) (kn_set_call_site(__FILE__, __LINE__), kn_one_hot(__VA_ARGS__))
#define kn_embedding(...) (kn_set_call_site(__FILE__, __LINE__), kn_embedding(__VA_ARGS__))
#define kn_masked_fill(...) (kn_set_call_site(__FILE__, __LINE__), kn_masked_fill(__VA_ARGS__))
#define kn_cross_entropy(...) (kn_set_call_site(__FILE__, __LINE__), kn_cross_entropy(__VA_ARGS__))
#define kn_nll_loss(...) (kn_set_call_site(__FILE__, __LINE__), kn_nll_loss(__VA_ARGS__))
#define kn_bce_with_logits(...) (kn_set_call_site(__FILE__, __LINE__), kn_bce_with_logits(__VA_ARGS__))
#define kn_mse_loss(...) (kn_set_call_site(__FILE__, __LINE__), kn_mse_loss(__VA_ARGS__))
#define kn_l1_loss(...) (kn_set_call_site(__FILE__, __LINE__), kn_l1_loss(__VA_ARGS__))
#define kn_smooth_l1_loss(...) (kn_set_call_site(__FILE__, __LINE__), kn_smooth_l1_loss(__VA_ARGS__))
#define kn_huber_loss(...) (kn_set_call_site(__FILE__, __LINE__), kn_huber_loss(__VA_ARGS__))
#define kn_kl_div(...) (kn_set_call_site(__FILE__, __LINE__), kn_kl_div(__VA_ARGS__))
#define kn_lstm_cell(...) (kn_set_call_site(__FILE__, __LINE__), kn_lstm_cell(__VA_ARGS__))
#define kn_gru_cell(...) (kn_set_call_site(__FILE__, __LINE__), kn_gru_cell(__VA_ARGS__))
#endif

#ifdef __cplusplus
}
#endif
#endif /* KILN_H */
