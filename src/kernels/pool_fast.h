/* pool_fast.h — vectorized 2-D max/avg pooling and the max-pool gradient
 * (AVX-512, src/kernels/x86/avx512/pool.c; only on x86, KILN_X86). The pool
 * family (src/ops/pool.c) plugs them in before its reference gather engine;
 * tests/test_kernels_pool.c compares the two. Each output element (and each
 * gradient plane) is computed by one task in a fixed order, so results never
 * depend on the thread count. */
#ifndef KILN_KERNELS_POOL_FAST_H
#define KILN_KERNELS_POOL_FAST_H

#include "../tensor/tensor.h"

/* x (N, C, H, W) or (N, H, W, C) in any strides with the innermost dim
 * (W for NCHW, C for NHWC) unit-stride; y (N, C, OH, OW) or (N, OH, OW, C)
 * contiguous. Windows as in src/ops/pool.c: output o reads
 * [o*s - pb, o*s - pb + k) clipped to the input, and the average divides by
 * the clipped count, or with include_pad by the count clipped to the padded
 * input (pad_end included). f32 or bf16. For the gradient: x, gy as above,
 * gx contiguous f32 like x: grad_y goes to the first maximum of each window
 * (the last NaN). */
typedef struct kn_pool2d_job {
    const kn_tensor *x, *gy;
    kn_tensor *y; /* forward output, or grad_x */
    bool nhwc, is_max, include_pad;
    int64_t k[2], s[2], pb[2], pe[2];
} kn_pool2d_job;

bool kn__pool2d_avx512_accepts(const kn_pool2d_job *j);
void kn__pool2d_avx512_run(const kn_pool2d_job *j);
bool kn__maxpool2d_grad_avx512_accepts(const kn_pool2d_job *j);
void kn__maxpool2d_grad_avx512_run(const kn_pool2d_job *j);

#endif
