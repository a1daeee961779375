/* eltwise.h — vectorized elementwise kernels (AVX-512 and AVX2) for
 * contiguous f32 and bf16 runs, an interpreter of fused programs of them
 * (f32), and the polynomial coefficients of their exp/log/tanh/erf
 * approximations (the AVX-512 versions live in x86/avx512/vmath.h). The
 * ops' reference kernels (src/ops/elementwise.c) are their twin;
 * src/ops/elementwise.c calls these from its strided iterator for every
 * inner run, src/ops/fused.c runs fused_elementwise programs through them.
 * Relies on kiln.h only. */
#ifndef KILN_KERNELS_ELTWISE_H
#define KILN_KERNELS_ELTWISE_H

#include "kiln.h"

/* Which vector kernel an op maps to (0: none). Binary ops first. */
typedef enum kn_ew_op {
    KN_EWV_NONE = 0,
    KN_EWV_ADD,
    KN_EWV_SUB,
    KN_EWV_MUL,
    KN_EWV_DIV,
    KN_EWV_MAXIMUM,
    KN_EWV_MINIMUM,
    KN_EWV_BINARY_END,
    KN_EWV_NEG = KN_EWV_BINARY_END,
    KN_EWV_ABS,
    KN_EWV_RELU,
    KN_EWV_RELU6,
    KN_EWV_LEAKY_RELU, /* alpha = slope */
    KN_EWV_SIGMOID,
    KN_EWV_TANH,
    KN_EWV_EXP,
    KN_EWV_LOG,
    KN_EWV_GELU,
    KN_EWV_GELU_TANH,
    KN_EWV_SILU,
    KN_EWV_HARD_SIGMOID, /* alpha, beta */
    KN_EWV_HARD_SWISH,
    KN_EWV_CLIP, /* alpha = lo, beta = hi */
    KN_EWV_SQRT,
    KN_EWV_RSQRT,
    KN_EWV_SQUARE,
    KN_EWV_ERF,
    KN_EWV_COUNT
} kn_ew_op;

/* Where a binary kernel's operands come from. */
typedef enum kn_ew_bcast {
    KN_EW_VV = 0, /* a[i], b[i] */
    KN_EW_SV,     /* s, b[i] (a unused) */
    KN_EW_VS,     /* a[i], s (b unused) */
} kn_ew_bcast;

/* y[0..n) = op(x[0..n)); x, y contiguous of dtype dt (KN_F32 or KN_BF16,
 * bf16 computes in f32 and rounds to nearest even). x may equal y. */
typedef void (*kn_ew_unary_fn)(kn_ew_op op, kn_dtype dt, const void *x, void *y, int64_t n,
                               float alpha, float beta);
/* y[0..n) = op(a, b) with a or b replaced by the f32 scalar s per `bc`. */
typedef void (*kn_ew_binary_fn)(kn_ew_op op, kn_dtype dt, const void *a, const void *b, void *y,
                                int64_t n, kn_ew_bcast bc, float s);

/* A program of vector ops over f32 runs (the fused_elementwise interpreter,
 * src/ops/fused.c): sources are n-element arrays or uniform values; step j
 * writes slot n_src + j from slots a (and b for binary ops), and the last
 * step is the result. Every step computes exactly what its op's kernel
 * above computes (the same inline functions), so a program gives the bits
 * of running its ops one by one over the same values. */
#define KN_EW_PROG_MAX_STEPS 16
#define KN_EW_PROG_MAX_SRC 19 /* 3 inputs + 16 uniform step results */
typedef struct kn_ew_prog_step {
    kn_ew_op op; /* any vector op but NONE */
    int a, b;    /* slots: a source (< n_src) or an earlier step (n_src + j) */
    float alpha, beta;
} kn_ew_prog_step;
typedef struct kn_ew_prog {
    int n_src, n_steps;
    const float *src[KN_EW_PROG_MAX_SRC]; /* n values each; NULL: uniform, uval[k] */
    float uval[KN_EW_PROG_MAX_SRC];
    kn_ew_prog_step steps[KN_EW_PROG_MAX_STEPS];
} kn_ew_prog;
/* y[0..n) = the program's last step, element by element. */
typedef void (*kn_ew_prog_fn)(const kn_ew_prog *pg, float *y, int64_t n);

#if KILN_X86
void kn__ew_unary_avx512(kn_ew_op op, kn_dtype dt, const void *x, void *y, int64_t n, float alpha,
                         float beta);
void kn__ew_binary_avx512(kn_ew_op op, kn_dtype dt, const void *a, const void *b, void *y,
                          int64_t n, kn_ew_bcast bc, float s);
void kn__ew_unary_avx2(kn_ew_op op, kn_dtype dt, const void *x, void *y, int64_t n, float alpha,
                       float beta);
void kn__ew_binary_avx2(kn_ew_op op, kn_dtype dt, const void *a, const void *b, void *y, int64_t n,
                        kn_ew_bcast bc, float s);
void kn__ew_prog_avx512(const kn_ew_prog *pg, float *y, int64_t n);
void kn__ew_prog_avx2(const kn_ew_prog *pg, float *y, int64_t n);
#endif

/* ---- approximations (f32), shared by the AVX-512 and AVX2 kernels.
 * Coefficients are least-squares fits on Chebyshev nodes (made once with
 * numpy + mpmath, weighted for relative error); the fit error is far below
 * f32 rounding, so the measured error (tests/test_kernels_eltwise.c,
 * approx_sweep) comes from f32 evaluation. Measured max error against
 * libm's f64 functions over every 29th f32 bit pattern (148M inputs,
 * KILN_SWEEP_STEP=29; the same bits on AVX-512 and AVX2):
 *   exp      0.99 ulp  (subnormal results rounded once; inf above 88.72)
 *   log      0.84 ulp  (subnormal inputs included)
 *   tanh     1.30 ulp
 *   gelu     6.20 ulp  (worst near x = -1.8, in the erfc branch; the 1 + erf
 *                       cancellation of the f32 reference formula for x < 0
 *                       is avoided, so this is far tighter than the
 *                       reference itself there)
 *   erf      1.29 ulp  (worst near z = 1.02, 1 - erfc; 1.21 ulp in the
 *                       polynomial branch; within 1.0 ulp of glibc's erff)
 *   sigmoid  2.40 ulp
 *   silu     2.31 ulp  (x >= -88; below, x / (1 + e^-x) is -0 like the
 *                       reference and PyTorch)
 * The bounds the tests assert: */
#define KN_EWV_EXP_MAX_ULP 2
#define KN_EWV_LOG_MAX_ULP 2
#define KN_EWV_TANH_MAX_ULP 2
#define KN_EWV_GELU_MAX_ULP 7
#define KN_EWV_ERF_MAX_ULP 2
#define KN_EWV_SIGMOID_MAX_ULP 3

/* exp(x) = 2^n e^r, r = x - n ln2 in [-ln2/2, ln2/2]:
 * e^r = 1 + r + r^2 (E0 + E1 r + ... + E5 r^5) */
#define KN_EWV_LN2_HI 0.693145751953125f /* 0x3f317200: n * LN2_HI is exact */
#define KN_EWV_LN2_LO 1.428606765330187e-06f
#define KN_EWV_LOG2E 1.44269504088896341f
#define KN_EWV_E0 5.000000000e-01f
#define KN_EWV_E1 1.666666567e-01f
#define KN_EWV_E2 4.166626930e-02f
#define KN_EWV_E3 8.333429694e-03f
#define KN_EWV_E4 1.394602121e-03f
#define KN_EWV_E5 1.982649555e-04f
/* exp's clamp: below EXP_LO the result is 0, above EXP_HI +inf */
#define KN_EWV_EXP_LO -104.0f
#define KN_EWV_EXP_HI 89.0f

/* log(x) = e ln2 + log1p(f), x = 2^e (1 + f), 1 + f in [sqrt(1/2), sqrt(2)):
 * log1p(f) = f - f^2/2 + f^3 (L0 + L1 f + ... + L7 f^7) */
#define KN_EWV_L0 3.333335519e-01f
#define KN_EWV_L1 -2.500085235e-01f
#define KN_EWV_L2 1.999982595e-01f
#define KN_EWV_L3 -1.662137061e-01f
#define KN_EWV_L4 1.422711462e-01f
#define KN_EWV_L5 -1.320210397e-01f
#define KN_EWV_L6 1.262032688e-01f
#define KN_EWV_L7 -7.362867892e-02f
#define KN_EWV_LN2 0.693147180559945309f

/* tanh: |x| < 0.625: x + x^3 (T0 + T1 x^2 + ... + T4 x^8);
 * otherwise sign(x) (1 - 2 / (e^(2|x|) + 1)); |x| > 9: sign(x) */
#define KN_EWV_TANH_SMALL 0.625f
#define KN_EWV_T0 -3.333328664e-01f
#define KN_EWV_T1 1.333151311e-01f
#define KN_EWV_T2 -5.374466255e-02f
#define KN_EWV_T3 2.065314166e-02f
#define KN_EWV_T4 -5.718979053e-03f

/* erf: |z| < 1: z (P0 + P1 z^2 + ... + P6 z^12) (erf itself adds z P0_LO);
 * erfc(|z|) = e^(-z^2) R(t), t = 1 / (1 + |z|/2), R of degree 10 fitted on
 * |z| in [0.5, 11]: erf uses 1 - erfc for |z| >= 1;
 * gelu uses 2 - erfc for z >= 1 and erfc(-z) directly for
 * z <= -1/2 (no cancellation in 1 + erf); e^(-z^2) from z^2 = x^2/2 split
 * exactly with an FMA, since z = x/sqrt2 is rounded */
#define KN_EWV_P0 1.128379226e+00f
#define KN_EWV_P0_LO -5.8635383e-08f /* 2/sqrt(pi) - P0: erf adds z P0_LO */
#define KN_EWV_P1 -3.761262894e-01f
#define KN_EWV_P2 1.128361225e-01f
#define KN_EWV_P3 -2.685480751e-02f
#define KN_EWV_P4 5.190053023e-03f
#define KN_EWV_P5 -8.024351555e-04f
#define KN_EWV_P6 7.898201875e-05f
#define KN_EWV_R0 1.944762516e-06f
#define KN_EWV_R1 2.820312083e-01f
#define KN_EWV_R2 2.829999924e-01f
#define KN_EWV_R3 2.394568026e-01f
#define KN_EWV_R4 2.142632902e-01f
#define KN_EWV_R5 -4.414430261e-02f
#define KN_EWV_R6 2.764719129e-01f
#define KN_EWV_R7 -4.357198179e-01f
#define KN_EWV_R8 2.006337494e-01f
#define KN_EWV_R9 1.840061450e-04f
#define KN_EWV_R10 -1.619874872e-02f
/* erfc(z) rounds to 0 in f32 beyond 10.1; clamping there keeps inf out */
#define KN_EWV_ERFC_MAX 11.0f
#define KN_EWV_ERFC_NEG -0.5f

#define KN_EWV_INV_SQRT2 0.70710678118654752440f
#define KN_EWV_GELU_K 0.79788456080286535588f
#define KN_EWV_GELU_C 0.044715f

#endif
