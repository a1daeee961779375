/* reduce_fast.h — vectorized reductions (AVX-512, in
 * src/kernels/x86/avx512/reduce.c; only on x86, KILN_X86). src/ops/reduce.c
 * plugs them in before its reference engine (the twin); the test is
 * tests/test_kernels_reduce.c.
 * x (f32 or bf16) is seen as (A, C, B): the reduced dims form a prefix A and
 * a suffix B around the kept dims C (each group merged to one strided dim).
 * Rows mode (B > 1, B unit-stride): last axis, all axes, NCHW per channel.
 * Columns mode (B == 1, C unit-stride): leading axes, NHWC per channel.
 * Each output is a fixed sequence of operations: fixed segments (a row cut
 * in chunks of KN_RED_CHUNK, or KN_RED_ROWS rows of columns) folded in f32
 * vector lanes, lanes combined in a fixed tree, segments combined in double
 * in order — so results never depend on the thread count. */
#ifndef KILN_KERNELS_REDUCE_FAST_H
#define KILN_KERNELS_REDUCE_FAST_H

#include "../tensor/tensor.h"

enum { KN_RED_SUM = 0, KN_RED_MAX, KN_RED_MIN, KN_RED_SQDEV };
#define KN_RED_CHUNK 4096
#define KN_RED_ROWS 256

/* True when x and the dims in mask fit one of the two modes. */
bool kn__reduce_avx512_accepts(const kn_tensor *x, const bool *mask);
/* out[o] (one double per kept element, kept dims in order): the sum, max or
 * min of the reduced elements, or the sum of (x - centre[o])^2 (SQDEV; the
 * centre is rounded to f32). Max/min propagate NaN. Fails only when scratch
 * memory is short. */
kn_status kn__reduce_avx512_run(const kn_tensor *x, const bool *mask, int kind,
                                const double *centre, double *out);

#endif
