/* stubs.c — TEMPORARY during bring-up: weak definitions of every op in kiln.h,
 * so families can call each other before all are written. A real definition
 * overrides its stub at link time. Deleted once every op exists. */
#include "op.h"

__attribute__((weak)) kn_tensor *kn_neg(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "neg: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_abs(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "abs: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_sign(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "sign: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_exp(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "exp: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_expm1(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "expm1: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_log(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "log: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_log1p(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "log1p: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_sqrt(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "sqrt: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_rsqrt(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "rsqrt: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_reciprocal(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "reciprocal: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_square(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "square: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_sin(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "sin: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_cos(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "cos: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_tan(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "tan: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_tanh(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "tanh: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_sigmoid(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "sigmoid: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_relu(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "relu: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_relu6(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "relu6: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_leaky_relu(kn_tensor *x, double negative_slope)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "leaky_relu: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_elu(kn_tensor *x, double alpha)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "elu: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_selu(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "selu: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_gelu(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "gelu: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_gelu_tanh(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "gelu_tanh: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_silu(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "silu: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_mish(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "mish: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_softplus(kn_tensor *x, double beta, double threshold)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "softplus: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_softsign(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "softsign: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_hard_sigmoid(kn_tensor *x, double alpha, double beta)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "hard_sigmoid: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_hard_swish(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "hard_swish: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_erf(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "erf: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_floor(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "floor: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_ceil(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "ceil: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_round(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "round: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_trunc(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "trunc: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_clip(kn_tensor *x, double lo, double hi)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "clip: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_isnan(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "isnan: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_isinf(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "isinf: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_logical_not(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "logical_not: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_add(kn_tensor *a, kn_tensor *b)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "add: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_sub(kn_tensor *a, kn_tensor *b)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "sub: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_mul(kn_tensor *a, kn_tensor *b)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "mul: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_div(kn_tensor *a, kn_tensor *b)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "div: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_pow(kn_tensor *a, kn_tensor *b)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "pow: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_maximum(kn_tensor *a, kn_tensor *b)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "maximum: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_minimum(kn_tensor *a, kn_tensor *b)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "minimum: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_fmod(kn_tensor *a, kn_tensor *b)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "fmod: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_atan2(kn_tensor *a, kn_tensor *b)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "atan2: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_eq(kn_tensor *a, kn_tensor *b)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "eq: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_ne(kn_tensor *a, kn_tensor *b)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "ne: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_lt(kn_tensor *a, kn_tensor *b)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "lt: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_le(kn_tensor *a, kn_tensor *b)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "le: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_gt(kn_tensor *a, kn_tensor *b)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "gt: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_ge(kn_tensor *a, kn_tensor *b)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "ge: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_logical_and(kn_tensor *a, kn_tensor *b)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "logical_and: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_logical_or(kn_tensor *a, kn_tensor *b)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "logical_or: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_logical_xor(kn_tensor *a, kn_tensor *b)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "logical_xor: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_where(kn_tensor *cond, kn_tensor *a, kn_tensor *b)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "where: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_add_scalar(kn_tensor *x, double s)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "add_scalar: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_mul_scalar(kn_tensor *x, double s)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "mul_scalar: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_sum(kn_tensor *x, int n_axes, const int *axes, bool keepdim)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "sum: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_mean(kn_tensor *x, int n_axes, const int *axes, bool keepdim)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "mean: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_prod(kn_tensor *x, int n_axes, const int *axes, bool keepdim)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "prod: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_max(kn_tensor *x, int n_axes, const int *axes, bool keepdim)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "max: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_min(kn_tensor *x, int n_axes, const int *axes, bool keepdim)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "min: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_argmax(kn_tensor *x, int axis, bool keepdim)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "argmax: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_argmin(kn_tensor *x, int axis, bool keepdim)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "argmin: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_logsumexp(kn_tensor *x, int n_axes, const int *axes, bool keepdim)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "logsumexp: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_var(kn_tensor *x, int n_axes, const int *axes, bool unbiased, bool keepdim)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "var: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_std(kn_tensor *x, int n_axes, const int *axes, bool unbiased, bool keepdim)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "std: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_norm(kn_tensor *x, int p, int n_axes, const int *axes, bool keepdim)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "norm: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_all(kn_tensor *x, int n_axes, const int *axes, bool keepdim)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "all: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_any(kn_tensor *x, int n_axes, const int *axes, bool keepdim)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "any: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_cumsum(kn_tensor *x, int axis)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "cumsum: not implemented yet");
}

__attribute__((weak)) kn_status kn_topk(kn_tensor *x, int64_t k, int axis, bool largest, bool sorted, kn_tensor **values, kn_tensor **indices)
{
    return kn__error(KN_ERR_UNSUPPORTED, "topk: not implemented yet");
}

__attribute__((weak)) kn_status kn_sort(kn_tensor *x, int axis, bool descending, kn_tensor **values, kn_tensor **indices)
{
    return kn__error(KN_ERR_UNSUPPORTED, "sort: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_argsort(kn_tensor *x, int axis, bool descending)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "argsort: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_matmul(kn_tensor *a, kn_tensor *b)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "matmul: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_matmul_t(kn_tensor *a, kn_tensor *b, bool transpose_a, bool transpose_b)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "matmul_t: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_linear(kn_tensor *x, kn_tensor *w, kn_tensor *bias)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "linear: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_addmm(kn_tensor *c, kn_tensor *a, kn_tensor *b, double beta, double alpha)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "addmm: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_conv1d(kn_tensor *x, kn_tensor *w, kn_tensor *bias, const kn_conv_params *p)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "conv1d: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_conv2d(kn_tensor *x, kn_tensor *w, kn_tensor *bias, const kn_conv_params *p)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "conv2d: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_conv3d(kn_tensor *x, kn_tensor *w, kn_tensor *bias, const kn_conv_params *p)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "conv3d: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_conv_transpose2d(kn_tensor *x, kn_tensor *w, kn_tensor *bias, const kn_conv_params *p)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "conv_transpose2d: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_max_pool(kn_tensor *x, const kn_pool_params *p)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "max_pool: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_avg_pool(kn_tensor *x, const kn_pool_params *p)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "avg_pool: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_global_avg_pool(kn_tensor *x, kn_layout layout)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "global_avg_pool: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_global_max_pool(kn_tensor *x, kn_layout layout)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "global_max_pool: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_adaptive_avg_pool2d(kn_tensor *x, int64_t out_h, int64_t out_w, kn_layout layout)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "adaptive_avg_pool2d: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_adaptive_max_pool2d(kn_tensor *x, int64_t out_h, int64_t out_w, kn_layout layout)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "adaptive_max_pool2d: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_upsample_nearest2d(kn_tensor *x, int64_t out_h, int64_t out_w, kn_layout layout)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "upsample_nearest2d: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_upsample_bilinear2d(kn_tensor *x, int64_t out_h, int64_t out_w, bool align_corners, kn_layout layout)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "upsample_bilinear2d: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_batch_norm(kn_tensor *x, kn_tensor *gamma, kn_tensor *beta, kn_tensor *running_mean, kn_tensor *running_var, bool training, double momentum, double eps, kn_layout layout)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "batch_norm: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_layer_norm(kn_tensor *x, int n_axes, kn_tensor *gamma, kn_tensor *beta, double eps)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "layer_norm: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_group_norm(kn_tensor *x, int64_t groups, kn_tensor *gamma, kn_tensor *beta, double eps)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "group_norm: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_instance_norm(kn_tensor *x, kn_tensor *gamma, kn_tensor *beta, double eps)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "instance_norm: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_rms_norm(kn_tensor *x, int n_axes, kn_tensor *gamma, double eps)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "rms_norm: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_softmax(kn_tensor *x, int axis)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "softmax: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_log_softmax(kn_tensor *x, int axis)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "log_softmax: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_dropout(kn_tensor *x, double p, bool training)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "dropout: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_reshape(kn_tensor *x, int ndim, const int64_t *shape)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "reshape: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_flatten(kn_tensor *x, int start_axis, int end_axis)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "flatten: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_squeeze(kn_tensor *x, int n_axes, const int *axes)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "squeeze: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_unsqueeze(kn_tensor *x, int axis)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "unsqueeze: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_permute(kn_tensor *x, int ndim, const int *perm)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "permute: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_transpose(kn_tensor *x, int axis0, int axis1)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "transpose: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_expand(kn_tensor *x, int ndim, const int64_t *shape)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "expand: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_slice(kn_tensor *x, int axis, int64_t start, int64_t stop, int64_t step)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "slice: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_narrow(kn_tensor *x, int axis, int64_t start, int64_t length)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "narrow: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_contiguous(kn_tensor *x)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "contiguous: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_cast(kn_tensor *x, kn_dtype dt)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "cast: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_concat(int n, kn_tensor *const *xs, int axis)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "concat: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_stack(int n, kn_tensor *const *xs, int axis)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "stack: not implemented yet");
}

__attribute__((weak)) kn_status kn_split(kn_tensor *x, int n, const int64_t *sizes, int axis, kn_tensor **outs)
{
    return kn__error(KN_ERR_UNSUPPORTED, "split: not implemented yet");
}

__attribute__((weak)) kn_status kn_chunk(kn_tensor *x, int chunks, int axis, kn_tensor **outs, int *n_out)
{
    return kn__error(KN_ERR_UNSUPPORTED, "chunk: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_pad(kn_tensor *x, const int64_t *pads, kn_pad_mode mode, double value)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "pad: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_tile(kn_tensor *x, int n, const int64_t *reps)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "tile: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_repeat(kn_tensor *x, int64_t repeats, int axis)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "repeat: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_gather(kn_tensor *x, int axis, kn_tensor *index)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "gather: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_scatter(kn_tensor *x, int axis, kn_tensor *index, kn_tensor *src)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "scatter: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_scatter_add(kn_tensor *x, int axis, kn_tensor *index, kn_tensor *src)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "scatter_add: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_index_select(kn_tensor *x, int axis, kn_tensor *index)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "index_select: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_take(kn_tensor *x, kn_tensor *index)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "take: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_one_hot(kn_tensor *index, int64_t depth, kn_dtype dt)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "one_hot: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_embedding(kn_tensor *weight, kn_tensor *index)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "embedding: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_masked_fill(kn_tensor *x, kn_tensor *mask, double value)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "masked_fill: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_cross_entropy(kn_tensor *logits, kn_tensor *target, kn_tensor *weight, const kn_loss_params *p)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "cross_entropy: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_nll_loss(kn_tensor *log_probs, kn_tensor *target, kn_tensor *weight, const kn_loss_params *p)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "nll_loss: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_bce_with_logits(kn_tensor *logits, kn_tensor *target, kn_tensor *weight, kn_tensor *pos_weight, const kn_loss_params *p)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "bce_with_logits: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_mse_loss(kn_tensor *x, kn_tensor *y, const kn_loss_params *p)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "mse_loss: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_l1_loss(kn_tensor *x, kn_tensor *y, const kn_loss_params *p)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "l1_loss: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_smooth_l1_loss(kn_tensor *x, kn_tensor *y, const kn_loss_params *p)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "smooth_l1_loss: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_huber_loss(kn_tensor *x, kn_tensor *y, const kn_loss_params *p)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "huber_loss: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_kl_div(kn_tensor *log_input, kn_tensor *target, const kn_loss_params *p)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "kl_div: not implemented yet");
}

__attribute__((weak)) kn_status kn_lstm_cell(kn_tensor *x, kn_tensor *h, kn_tensor *c, kn_tensor *w_ih, kn_tensor *w_hh, kn_tensor *b_ih, kn_tensor *b_hh, kn_tensor **h_out, kn_tensor **c_out)
{
    return kn__error(KN_ERR_UNSUPPORTED, "lstm_cell: not implemented yet");
}

__attribute__((weak)) kn_tensor *kn_gru_cell(kn_tensor *x, kn_tensor *h, kn_tensor *w_ih, kn_tensor *w_hh, kn_tensor *b_ih, kn_tensor *b_hh)
{
    return kn__error_null(KN_ERR_UNSUPPORTED, "gru_cell: not implemented yet");
}
