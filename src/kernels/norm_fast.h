/* norm_fast.h — vectorized normalization and softmax kernels (AVX-512, in
 * src/kernels/x86/avx512/norm*.c; only on x86, KILN_X86). The op family file
 * src/ops/norm.c plugs them in before its reference kernels and keeps the
 * reference twins; tests/test_kernels_norm.c compares the two.
 * Results never depend on the thread count: each statistic is one fixed
 * sequence of operations (rows folded in f32 vector lanes, lanes and rows
 * combined in double in a fixed order). */
#ifndef KILN_KERNELS_NORM_FAST_H
#define KILN_KERNELS_NORM_FAST_H

#include "../tensor/tensor.h"

enum { KN_NORM_AFFINE_NONE = 0, KN_NORM_AFFINE_INNER, KN_NORM_AFFINE_KEPT };

/* y = (x - mean) * rstd [* gamma + beta] with mean and biased var over the
 * dims in `mask` (center = false: mean 0). Statistics are written per kept
 * element (kept dims in order) to mean/rstd when those are not NULL, or
 * taken from in_mean/in_rstd (then nothing is reduced: batch norm inference).
 * gamma/beta (either may be NULL) are f32, indexed by the reduced trailing
 * elements (AFFINE_INNER, layer norm) or by the kept elements (AFFINE_KEPT,
 * batch norm). x: f32 or bf16, any shape whose reduced dims form a prefix and
 * a suffix around the kept ones, each group mergeable to one strided dim, the
 * suffix unit-stride; y: new contiguous tensor of x's shape and dtype. */
typedef struct kn_norm_job {
    const kn_tensor *x;
    kn_tensor *y;
    bool mask[KN_MAX_DIMS];
    double eps;
    bool center;
    float *mean, *rstd;
    const float *in_mean, *in_rstd;
    const float *gamma, *beta;
    int affine;
} kn_norm_job;

bool kn__norm_avx512_accepts(const kn_norm_job *j);
/* Needs an accepted job; fails only when scratch memory is short. */
kn_status kn__norm_avx512_run(const kn_norm_job *j);

/* The gradient of normalize with respect to x through y:
 * dx = rstd * (gy - mean(gy) - y * mean(gy * y)) (no mean(gy) term when
 * center is false), means over the dims in `mask`; rstd: one f32 per kept
 * element. gy and y: f32 or bf16 of one dtype, contiguous, one shape; dx:
 * new contiguous tensor of that shape and dtype. Same (A, C, B) shapes as
 * the forward kernel: rows (B > 1) parallel over c, two passes; columns
 * (B == 1) in fixed chunks of rows combined in double in chunk order. */
typedef struct kn_norm_grad_job {
    const kn_tensor *gy, *y;
    kn_tensor *dx;
    bool mask[KN_MAX_DIMS];
    bool center;
    const float *rstd;
} kn_norm_grad_job;

bool kn__norm_grad_avx512_accepts(const kn_norm_grad_job *j);
/* Needs an accepted job; fails only when scratch memory is short. */
kn_status kn__norm_grad_avx512_run(const kn_norm_grad_job *j);

/* softmax (log = false) or log_softmax of x along `axis` into y (contiguous,
 * x's shape and dtype). x: f32 or bf16 whose dims before and after the axis
 * each merge to one strided dim, the inner one (or, without one, the axis)
 * unit-stride. */
bool kn__softmax_avx512_accepts(const kn_tensor *x, int axis);
void kn__softmax_avx512_run(const kn_tensor *x, kn_tensor *y, int axis, bool log);

#endif
