/* vmath.h — f32 math on 16 AVX-512 lanes: exp, log, tanh, sigmoid, erf,
 * gelu (exact, through erf/erfc), gelu_tanh, silu. Each lane is independent
 * (no cross-lane work), so a masked tail gives the same bits as a full
 * vector. Coefficients, algorithms and measured error bounds are in
 * src/kernels/eltwise.h; the AVX2 twins (src/kernels/x86/avx2/eltwise.c)
 * repeat the same operation order. Shared by the elementwise kernels
 * (eltwise.c) and the GEMM epilogue (gemm_act_avx512.c); include only from
 * files compiled with the AVX-512 flags. _mm512_max_ps(c, x) / min_ps(c, x)
 * return x when x is NaN, so the clamps below keep NaN. */
#ifndef KILN_AVX512_VMATH_H
#define KILN_AVX512_VMATH_H

#include "../../eltwise.h"

#include <immintrin.h>
#include <math.h>

#define KN_V512(c) _mm512_set1_ps(c)

/* Leaves the vector unit clean for the SSE code that runs next (kiln's
 * scalar code, libm). gcc does not emit vzeroupper on every return path of
 * the kernels (seen in the disassembly: a return right after the vector
 * loop), and the SSE code after them then ran 20-40x slower: glibc's erff
 * took 200-440 ns instead of 10 ns after a kernel. Call it last in every
 * exported kernel. */
static inline void kn512_leave(void)
{
    _mm256_zeroupper();
}

static inline __m512 kn512_abs(__m512 x)
{
    return _mm512_castsi512_ps(
        _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff)));
}

static inline __m512 kn512_neg(__m512 x)
{
    return _mm512_castsi512_ps(
        _mm512_xor_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u)));
}

/* |m| with the sign bit of s */
static inline __m512 kn512_copysign(__m512 m, __m512 s)
{
    return _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_castps_si512(m),
        _mm512_and_si512(_mm512_castps_si512(s), _mm512_set1_epi32((int)0x80000000u))));
}

static inline __m512 kn512_exp(__m512 x)
{
    x = _mm512_max_ps(KN_V512(KN_EWV_EXP_LO), x);
    x = _mm512_min_ps(KN_V512(KN_EWV_EXP_HI), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, KN_V512(KN_EWV_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, KN_V512(KN_EWV_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, KN_V512(KN_EWV_LN2_LO), r);
    __m512 q = _mm512_fmadd_ps(KN_V512(KN_EWV_E5), r, KN_V512(KN_EWV_E4));
    q = _mm512_fmadd_ps(q, r, KN_V512(KN_EWV_E3));
    q = _mm512_fmadd_ps(q, r, KN_V512(KN_EWV_E2));
    q = _mm512_fmadd_ps(q, r, KN_V512(KN_EWV_E1));
    q = _mm512_fmadd_ps(q, r, KN_V512(KN_EWV_E0));
    __m512 p = _mm512_add_ps(_mm512_fmadd_ps(q, _mm512_mul_ps(r, r), r), KN_V512(1.0f));
    return _mm512_scalef_ps(p, n); /* p 2^n in one rounding, subnormals too */
}

static inline __m512 kn512_log(__m512 x)
{
    __m512 m = _mm512_getmant_ps(x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero);
    __m512 e = _mm512_getexp_ps(x);
    __mmask16 big = _mm512_cmp_ps_mask(m, KN_V512(1.41421356f), _CMP_GT_OQ);
    m = _mm512_mask_mul_ps(m, big, m, KN_V512(0.5f));
    e = _mm512_mask_add_ps(e, big, e, KN_V512(1.0f));
    __m512 f = _mm512_sub_ps(m, KN_V512(1.0f));
    __m512 q = _mm512_fmadd_ps(KN_V512(KN_EWV_L7), f, KN_V512(KN_EWV_L6));
    q = _mm512_fmadd_ps(q, f, KN_V512(KN_EWV_L5));
    q = _mm512_fmadd_ps(q, f, KN_V512(KN_EWV_L4));
    q = _mm512_fmadd_ps(q, f, KN_V512(KN_EWV_L3));
    q = _mm512_fmadd_ps(q, f, KN_V512(KN_EWV_L2));
    q = _mm512_fmadd_ps(q, f, KN_V512(KN_EWV_L1));
    q = _mm512_fmadd_ps(q, f, KN_V512(KN_EWV_L0));
    __m512 f2 = _mm512_mul_ps(f, f);
    __m512 t = _mm512_fmadd_ps(_mm512_mul_ps(f2, f), q, _mm512_mul_ps(KN_V512(-0.5f), f2));
    t = _mm512_fmadd_ps(e, KN_V512(KN_EWV_LN2_LO), t);
    __m512 r = _mm512_fmadd_ps(e, KN_V512(KN_EWV_LN2_HI), _mm512_add_ps(f, t));
    /* log(0) = -inf, log(x < 0) = NaN, log(inf) = inf, NaN stays */
    r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, KN_V512(0.0f), _CMP_EQ_OQ), KN_V512(-INFINITY));
    r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, KN_V512(0.0f), _CMP_LT_OQ), KN_V512(NAN));
    r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, KN_V512(INFINITY), _CMP_EQ_OQ), x);
    return _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

static inline __m512 kn512_tanh(__m512 x)
{
    __m512 ax = kn512_abs(x);
    __m512 x2 = _mm512_mul_ps(x, x);
    __m512 q = _mm512_fmadd_ps(KN_V512(KN_EWV_T4), x2, KN_V512(KN_EWV_T3));
    q = _mm512_fmadd_ps(q, x2, KN_V512(KN_EWV_T2));
    q = _mm512_fmadd_ps(q, x2, KN_V512(KN_EWV_T1));
    q = _mm512_fmadd_ps(q, x2, KN_V512(KN_EWV_T0));
    __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(x2, x), q, x);
    __m512 c = _mm512_min_ps(KN_V512(10.0f), ax);
    __m512 e = kn512_exp(_mm512_add_ps(c, c));
    __m512 big =
        _mm512_sub_ps(KN_V512(1.0f), _mm512_div_ps(KN_V512(2.0f), _mm512_add_ps(e, KN_V512(1.0f))));
    big = kn512_copysign(big, x);
    return _mm512_mask_mov_ps(big, _mm512_cmp_ps_mask(ax, KN_V512(KN_EWV_TANH_SMALL), _CMP_LT_OQ),
                              small);
}

/* 1 / (1 + e^-x), as the reference: e = e^-|x|, 1/(1+e) or e/(1+e) */
static inline __m512 kn512_sigmoid(__m512 x)
{
    __m512 e = kn512_exp(kn512_neg(kn512_abs(x)));
    __m512 num =
        _mm512_mask_mov_ps(KN_V512(1.0f), _mm512_cmp_ps_mask(x, KN_V512(0.0f), _CMP_LT_OQ), e);
    return _mm512_div_ps(num, _mm512_add_ps(KN_V512(1.0f), e));
}

/* erf(z) / z = P0 + z^2 Q(z^2) for |z| < 1: Q(z^2) and the whole polynomial */
static inline __m512 kn512_erf_q(__m512 z2)
{
    __m512 q = _mm512_fmadd_ps(KN_V512(KN_EWV_P6), z2, KN_V512(KN_EWV_P5));
    q = _mm512_fmadd_ps(q, z2, KN_V512(KN_EWV_P4));
    q = _mm512_fmadd_ps(q, z2, KN_V512(KN_EWV_P3));
    q = _mm512_fmadd_ps(q, z2, KN_V512(KN_EWV_P2));
    return _mm512_fmadd_ps(q, z2, KN_V512(KN_EWV_P1));
}
static inline __m512 kn512_erf_poly(__m512 z2)
{
    return _mm512_fmadd_ps(kn512_erf_q(z2), z2, KN_V512(KN_EWV_P0));
}

/* erfc(a) e^(a^2) for a = min(|z|, ERFC_MAX), as R(t), t = 1 / (1 + a/2) */
static inline __m512 kn512_erfc_scaled(__m512 a)
{
    __m512 t = _mm512_div_ps(KN_V512(1.0f), _mm512_fmadd_ps(a, KN_V512(0.5f), KN_V512(1.0f)));
    __m512 r = _mm512_fmadd_ps(KN_V512(KN_EWV_R10), t, KN_V512(KN_EWV_R9));
    r = _mm512_fmadd_ps(r, t, KN_V512(KN_EWV_R8));
    r = _mm512_fmadd_ps(r, t, KN_V512(KN_EWV_R7));
    r = _mm512_fmadd_ps(r, t, KN_V512(KN_EWV_R6));
    r = _mm512_fmadd_ps(r, t, KN_V512(KN_EWV_R5));
    r = _mm512_fmadd_ps(r, t, KN_V512(KN_EWV_R4));
    r = _mm512_fmadd_ps(r, t, KN_V512(KN_EWV_R3));
    r = _mm512_fmadd_ps(r, t, KN_V512(KN_EWV_R2));
    r = _mm512_fmadd_ps(r, t, KN_V512(KN_EWV_R1));
    return _mm512_fmadd_ps(r, t, KN_V512(KN_EWV_R0));
}

/* e^-(hi + lo) for a^2 = hi + lo exactly (hi = a*a rounded, the FMA gives lo) */
static inline __m512 kn512_exp_neg_sq(__m512 a)
{
    __m512 hi = _mm512_mul_ps(a, a);
    __m512 lo = _mm512_fmsub_ps(a, a, hi);
    __m512 e = kn512_exp(kn512_neg(hi));
    return _mm512_fnmadd_ps(e, lo, e);
}

/* erf(z): |z| < 1: z P0 + z^3 Q(z^2), with P0 = 2/sqrt(pi) as hi + lo so
 * that small z are not off by P0's own rounding (0.87 ulp); else
 * sign(z) (1 - erfc(|z|)), erfc(|z|) = e^(-z^2) R(t) with z^2 split exactly.
 * erf(-0) = -0, subnormals round once from z P0, +-inf -> +-1, NaN stays. */
static inline __m512 kn512_erf(__m512 z)
{
    __m512 az = kn512_abs(z);
    __m512 z2 = _mm512_mul_ps(z, z);
    __m512 s = _mm512_mul_ps(_mm512_mul_ps(z, z2), kn512_erf_q(z2));
    s = _mm512_fmadd_ps(z, KN_V512(KN_EWV_P0_LO), s);
    __m512 small = _mm512_fmadd_ps(z, KN_V512(KN_EWV_P0), s);
    __m512 a = _mm512_min_ps(KN_V512(KN_EWV_ERFC_MAX), az);
    __m512 erfc = _mm512_mul_ps(kn512_exp_neg_sq(a), kn512_erfc_scaled(a));
    /* |small| and 1 - erfc with z's sign (small is +0 for z = -0 otherwise) */
    __m512i sgn = _mm512_and_si512(_mm512_castps_si512(z), _mm512_set1_epi32((int)0x80000000u));
    small = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(small), sgn));
    __m512 big = _mm512_castsi512_ps(
        _mm512_or_si512(_mm512_castps_si512(_mm512_sub_ps(KN_V512(1.0f), erfc)), sgn));
    return _mm512_mask_mov_ps(big, _mm512_cmp_ps_mask(az, KN_V512(1.0f), _CMP_LT_OQ), small);
}

/* gelu(x) = x/2 (1 + erf(z)), z = x/sqrt2; for z <= -1/2, 1 + erf(z) =
 * erfc(-z), without the cancellation of 1 + erf */
static inline __m512 kn512_gelu(__m512 x)
{
    __m512 z = _mm512_mul_ps(x, KN_V512(KN_EWV_INV_SQRT2));
    __m512 p = kn512_erf_poly(_mm512_mul_ps(z, z));
    __m512 phi2 = _mm512_fmadd_ps(z, p, KN_V512(1.0f));
    __m512 az = _mm512_min_ps(KN_V512(KN_EWV_ERFC_MAX), kn512_abs(z));
    __m512 r = kn512_erfc_scaled(az);
    /* z^2 = x^2 / 2 = hi + lo exactly (z itself is rounded) */
    __m512 ax = _mm512_min_ps(KN_V512(KN_EWV_ERFC_MAX * 1.41421356f), kn512_abs(x));
    __m512 hi = _mm512_mul_ps(ax, ax);
    __m512 lo = _mm512_mul_ps(_mm512_fmsub_ps(ax, ax, hi), KN_V512(0.5f));
    hi = _mm512_mul_ps(hi, KN_V512(0.5f)); /* az^2 = hi + lo exactly */
    __m512 e = kn512_exp(kn512_neg(hi));
    e = _mm512_fnmadd_ps(e, lo, e);
    __m512 hx = _mm512_mul_ps(KN_V512(0.5f), x);
    /* z <= -1/2: (x/2 R) e, the tiny factor last so no intermediate is subnormal */
    __m512 yneg = _mm512_mul_ps(_mm512_mul_ps(hx, r), e);
    phi2 = _mm512_mask_mov_ps(phi2, _mm512_cmp_ps_mask(z, KN_V512(1.0f), _CMP_GE_OQ),
                              _mm512_fnmadd_ps(e, r, KN_V512(2.0f)));
    return _mm512_mask_mov_ps(_mm512_mul_ps(hx, phi2),
                              _mm512_cmp_ps_mask(z, KN_V512(KN_EWV_ERFC_NEG), _CMP_LE_OQ), yneg);
}

/* x/2 (1 + tanh(u)) = x / (1 + e^(-2u)), u = k (x + c x^3) in the reference's order */
static inline __m512 kn512_gelu_tanh(__m512 x)
{
    __m512 c = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(KN_V512(KN_EWV_GELU_C), x), x), x);
    __m512 u = _mm512_mul_ps(KN_V512(KN_EWV_GELU_K), _mm512_add_ps(x, c));
    return _mm512_div_ps(x,
                         _mm512_add_ps(KN_V512(1.0f), kn512_exp(_mm512_mul_ps(KN_V512(-2.0f), u))));
}

static inline __m512 kn512_silu(__m512 x)
{
    return _mm512_div_ps(x, _mm512_add_ps(KN_V512(1.0f), kn512_exp(kn512_neg(x))));
}

/* ---- f64 evaluation for the GEMM epilogue, whose reference computes the
 * smooth activations in double (src/kernels/ref/gemm_epilogue.c): the same
 * algorithms on 2 x 8 double lanes, then one rounding to f32, so the result
 * is within about 1 ulp of the exact value (measured 0.88 ulp for gelu). */
#define KN_V512D(c) _mm512_set1_pd(c)

/* e^x, x in double: 2^n e^r, |r| <= ln2/2, Taylor to r^9 (relative error
 * below 1e-11, far under f32 rounding); 0 below -745, inf above 709.8 */
static inline __m512d kn512_exp_pd(__m512d x)
{
    x = _mm512_max_pd(KN_V512D(-746.0), x);
    x = _mm512_min_pd(KN_V512D(710.0), x);
    __m512d n = _mm512_roundscale_pd(_mm512_mul_pd(x, KN_V512D(1.4426950408889634)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512d r = _mm512_fnmadd_pd(n, KN_V512D(6.93147180369123816490e-01), x);
    r = _mm512_fnmadd_pd(n, KN_V512D(1.90821492927058770002e-10), r);
    __m512d p = KN_V512D(1.0 / 362880);
    p = _mm512_fmadd_pd(p, r, KN_V512D(1.0 / 40320));
    p = _mm512_fmadd_pd(p, r, KN_V512D(1.0 / 5040));
    p = _mm512_fmadd_pd(p, r, KN_V512D(1.0 / 720));
    p = _mm512_fmadd_pd(p, r, KN_V512D(1.0 / 120));
    p = _mm512_fmadd_pd(p, r, KN_V512D(1.0 / 24));
    p = _mm512_fmadd_pd(p, r, KN_V512D(1.0 / 6));
    p = _mm512_fmadd_pd(p, r, KN_V512D(0.5));
    p = _mm512_fmadd_pd(p, r, KN_V512D(1.0));
    p = _mm512_fmadd_pd(p, r, KN_V512D(1.0));
    return _mm512_scalef_pd(p, n);
}

/* gelu in double with the f32 kernel's polynomials (P0 exact): z < -1/2:
 * x/2 erfc(-z); z >= 1: x/2 (2 - erfc(z)); else x/2 (1 + z P(z^2));
 * erfc = 0 beyond ERFC_MAX (it is below 1e-54 there) */
static inline __m512d kn512_gelu_pd(__m512d x)
{
    __m512d z = _mm512_mul_pd(x, KN_V512D(0.70710678118654752440));
    __m512d z2 = _mm512_mul_pd(z, z);
    __m512d p = _mm512_fmadd_pd(KN_V512D(KN_EWV_P6), z2, KN_V512D(KN_EWV_P5));
    p = _mm512_fmadd_pd(p, z2, KN_V512D(KN_EWV_P4));
    p = _mm512_fmadd_pd(p, z2, KN_V512D(KN_EWV_P3));
    p = _mm512_fmadd_pd(p, z2, KN_V512D(KN_EWV_P2));
    p = _mm512_fmadd_pd(p, z2, KN_V512D(KN_EWV_P1));
    p = _mm512_fmadd_pd(p, z2, KN_V512D(1.12837916709551257390)); /* 2/sqrt(pi) */
    __m512d phi2 = _mm512_fmadd_pd(z, p, KN_V512D(1.0));
    __m512d az = _mm512_min_pd(KN_V512D(KN_EWV_ERFC_MAX), _mm512_abs_pd(z));
    __m512d t = _mm512_div_pd(KN_V512D(1.0), _mm512_fmadd_pd(az, KN_V512D(0.5), KN_V512D(1.0)));
    __m512d r = _mm512_fmadd_pd(KN_V512D(KN_EWV_R10), t, KN_V512D(KN_EWV_R9));
    r = _mm512_fmadd_pd(r, t, KN_V512D(KN_EWV_R8));
    r = _mm512_fmadd_pd(r, t, KN_V512D(KN_EWV_R7));
    r = _mm512_fmadd_pd(r, t, KN_V512D(KN_EWV_R6));
    r = _mm512_fmadd_pd(r, t, KN_V512D(KN_EWV_R5));
    r = _mm512_fmadd_pd(r, t, KN_V512D(KN_EWV_R4));
    r = _mm512_fmadd_pd(r, t, KN_V512D(KN_EWV_R3));
    r = _mm512_fmadd_pd(r, t, KN_V512D(KN_EWV_R2));
    r = _mm512_fmadd_pd(r, t, KN_V512D(KN_EWV_R1));
    r = _mm512_fmadd_pd(r, t, KN_V512D(KN_EWV_R0));
    __m512d e = kn512_exp_pd(_mm512_mul_pd(_mm512_mul_pd(az, az), KN_V512D(-1.0)));
    __m512d erfc =
        _mm512_maskz_mul_pd(_mm512_cmp_pd_mask(az, KN_V512D(KN_EWV_ERFC_MAX), _CMP_LT_OQ), e, r);
    phi2 = _mm512_mask_mov_pd(phi2, _mm512_cmp_pd_mask(z, KN_V512D(1.0), _CMP_GE_OQ),
                              _mm512_sub_pd(KN_V512D(2.0), erfc));
    phi2 = _mm512_mask_mov_pd(phi2, _mm512_cmp_pd_mask(z, KN_V512D(KN_EWV_ERFC_NEG), _CMP_LE_OQ),
                              erfc);
    return _mm512_mul_pd(_mm512_mul_pd(KN_V512D(0.5), x), phi2);
}

/* 0.5 v (1 + tanh(u)) = v / (1 + e^(-2u)), u = k (v + 0.044715 v^3) as the
 * reference computes it in double (-inf gives NaN like the reference) */
static inline __m512d kn512_gelu_tanh_pd(__m512d v)
{
    __m512d c = _mm512_mul_pd(_mm512_mul_pd(_mm512_mul_pd(KN_V512D(0.044715), v), v), v);
    __m512d u = _mm512_mul_pd(KN_V512D(0.79788456080286535588), _mm512_add_pd(v, c));
    __m512d e = kn512_exp_pd(_mm512_mul_pd(KN_V512D(-2.0), u));
    return _mm512_div_pd(v, _mm512_add_pd(KN_V512D(1.0), e));
}

/* f(x) for 16 f32 lanes through an f64 function f, one rounding at the end */
#define KN512_VIA_PD(f, x)                                                                         \
    _mm512_insertf32x8(                                                                            \
        _mm512_castps256_ps512(_mm512_cvtpd_ps(f(_mm512_cvtps_pd(_mm512_castps512_ps256(x))))),    \
        _mm512_cvtpd_ps(                                                                           \
            f(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1))))), \
        1)

static inline __m512 kn512_gelu_f64(__m512 x)
{
    return KN512_VIA_PD(kn512_gelu_pd, x);
}
static inline __m512 kn512_gelu_tanh_f64(__m512 x)
{
    return KN512_VIA_PD(kn512_gelu_tanh_pd, x);
}

#endif
