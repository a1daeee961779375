/* eltwise.c (AVX2+FMA) — elementwise kernels over contiguous runs: x, y are
 * (n) f32 or bf16; binary ops read a (n) or a broadcast f32 scalar, b
 * likewise. 8 lanes per ymm; the tail (< 8) is staged through a zeroed stack
 * buffer and runs the same instruction sequence, so results do not depend on
 * where a run is cut. Same algorithms, constants and operation order as the
 * AVX-512 kernels (see src/kernels/eltwise.h), so both give the same bits;
 * 2^n is applied in two steps (no scalef), which rounds once like scalef. */
#include "../../eltwise.h"

#if KILN_X86
#include <assert.h>
#include <immintrin.h>
#include <math.h>
#include <string.h>

#define V(c) _mm256_set1_ps(c)
/* m ? b : a, m from a compare */
#define SEL(m, a, b) _mm256_blendv_ps(a, b, m)
#define CMP(a, b, p) _mm256_cmp_ps(a, b, p)

static inline __m256 ld_bf16(const uint16_t *p)
{
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* round to nearest even, NaN -> quiet NaN, as kn_f32_to_bf16 */
static inline void st_bf16(uint16_t *p, __m256 v)
{
    __m256i u = _mm256_castps_si256(v);
    __m256i nan = _mm256_castps_si256(CMP(v, v, _CMP_UNORD_Q));
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
    r = _mm256_blendv_epi8(r, _mm256_or_si256(u, _mm256_set1_epi32(0x400000)), nan);
    r = _mm256_srli_epi32(r, 16);
    __m256i pk = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
    _mm_storeu_si128((__m128i *)p, _mm256_castsi256_si128(pk));
}

static inline __m256 v_abs(__m256 x)
{
    return _mm256_castsi256_ps(
        _mm256_and_si256(_mm256_castps_si256(x), _mm256_set1_epi32(0x7fffffff)));
}

static inline __m256 v_neg(__m256 x)
{
    return _mm256_castsi256_ps(
        _mm256_xor_si256(_mm256_castps_si256(x), _mm256_set1_epi32((int)0x80000000u)));
}

static inline __m256 v_clamp(__m256 v, __m256 lo, __m256 hi)
{
    v = SEL(CMP(v, lo, _CMP_LT_OQ), v, lo);
    return SEL(CMP(v, hi, _CMP_GT_OQ), v, hi);
}

/* ---- approximations (eltwise.h); max(c, x) keeps a NaN x */
static inline __m256 v_exp(__m256 x)
{
    x = _mm256_max_ps(V(KN_EWV_EXP_LO), x);
    x = _mm256_min_ps(V(KN_EWV_EXP_HI), x);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, V(KN_EWV_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, V(KN_EWV_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, V(KN_EWV_LN2_LO), r);
    __m256 q = _mm256_fmadd_ps(V(KN_EWV_E5), r, V(KN_EWV_E4));
    q = _mm256_fmadd_ps(q, r, V(KN_EWV_E3));
    q = _mm256_fmadd_ps(q, r, V(KN_EWV_E2));
    q = _mm256_fmadd_ps(q, r, V(KN_EWV_E1));
    q = _mm256_fmadd_ps(q, r, V(KN_EWV_E0));
    __m256 p = _mm256_add_ps(_mm256_fmadd_ps(q, _mm256_mul_ps(r, r), r), V(1.0f));
    /* 2^n = 2^n1 2^n2 with both halves normal; p 2^n1 is exact */
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

static inline __m256 v_log(__m256 x)
{
    __m256 sub = CMP(x, V(1.17549435e-38f), _CMP_LT_OQ); /* subnormal (or <= 0) */
    __m256 xs = SEL(sub, x, _mm256_mul_ps(x, V(8388608.0f)));
    __m256i bits = _mm256_castps_si256(xs);
    __m256 e =
        _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(127)));
    e = _mm256_sub_ps(e, _mm256_and_ps(sub, V(23.0f)));
    __m256 m = _mm256_castsi256_ps(_mm256_or_si256(
        _mm256_and_si256(bits, _mm256_set1_epi32(0x7fffff)), _mm256_set1_epi32(0x3f800000)));
    __m256 big = CMP(m, V(1.41421356f), _CMP_GT_OQ);
    m = SEL(big, m, _mm256_mul_ps(m, V(0.5f)));
    e = SEL(big, e, _mm256_add_ps(e, V(1.0f)));
    __m256 f = _mm256_sub_ps(m, V(1.0f));
    __m256 q = _mm256_fmadd_ps(V(KN_EWV_L7), f, V(KN_EWV_L6));
    q = _mm256_fmadd_ps(q, f, V(KN_EWV_L5));
    q = _mm256_fmadd_ps(q, f, V(KN_EWV_L4));
    q = _mm256_fmadd_ps(q, f, V(KN_EWV_L3));
    q = _mm256_fmadd_ps(q, f, V(KN_EWV_L2));
    q = _mm256_fmadd_ps(q, f, V(KN_EWV_L1));
    q = _mm256_fmadd_ps(q, f, V(KN_EWV_L0));
    __m256 f2 = _mm256_mul_ps(f, f);
    __m256 t = _mm256_fmadd_ps(_mm256_mul_ps(f2, f), q, _mm256_mul_ps(V(-0.5f), f2));
    t = _mm256_fmadd_ps(e, V(KN_EWV_LN2_LO), t);
    __m256 r = _mm256_fmadd_ps(e, V(KN_EWV_LN2_HI), _mm256_add_ps(f, t));
    r = SEL(CMP(x, V(0.0f), _CMP_EQ_OQ), r, V(-INFINITY));
    r = SEL(CMP(x, V(0.0f), _CMP_LT_OQ), r, V(NAN));
    r = SEL(CMP(x, V(INFINITY), _CMP_EQ_OQ), r, x);
    return SEL(CMP(x, x, _CMP_UNORD_Q), r, x);
}

static inline __m256 v_tanh(__m256 x)
{
    __m256 ax = v_abs(x);
    __m256 x2 = _mm256_mul_ps(x, x);
    __m256 q = _mm256_fmadd_ps(V(KN_EWV_T4), x2, V(KN_EWV_T3));
    q = _mm256_fmadd_ps(q, x2, V(KN_EWV_T2));
    q = _mm256_fmadd_ps(q, x2, V(KN_EWV_T1));
    q = _mm256_fmadd_ps(q, x2, V(KN_EWV_T0));
    __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(x2, x), q, x);
    __m256 e = v_exp(_mm256_add_ps(_mm256_min_ps(V(10.0f), ax), _mm256_min_ps(V(10.0f), ax)));
    __m256 big = _mm256_sub_ps(V(1.0f), _mm256_div_ps(V(2.0f), _mm256_add_ps(e, V(1.0f))));
    big = _mm256_or_ps(big, _mm256_and_ps(x, V(-0.0f)));
    return SEL(CMP(ax, V(KN_EWV_TANH_SMALL), _CMP_LT_OQ), big, small);
}

static inline __m256 v_sigmoid(__m256 x)
{
    __m256 e = v_exp(v_neg(v_abs(x)));
    __m256 num = SEL(CMP(x, V(0.0f), _CMP_LT_OQ), V(1.0f), e);
    return _mm256_div_ps(num, _mm256_add_ps(V(1.0f), e));
}

static inline __m256 v_gelu(__m256 x)
{
    __m256 z = _mm256_mul_ps(x, V(KN_EWV_INV_SQRT2));
    __m256 z2 = _mm256_mul_ps(z, z);
    __m256 p = _mm256_fmadd_ps(V(KN_EWV_P6), z2, V(KN_EWV_P5));
    p = _mm256_fmadd_ps(p, z2, V(KN_EWV_P4));
    p = _mm256_fmadd_ps(p, z2, V(KN_EWV_P3));
    p = _mm256_fmadd_ps(p, z2, V(KN_EWV_P2));
    p = _mm256_fmadd_ps(p, z2, V(KN_EWV_P1));
    p = _mm256_fmadd_ps(p, z2, V(KN_EWV_P0));
    __m256 phi2 = _mm256_fmadd_ps(z, p, V(1.0f));
    __m256 az = _mm256_min_ps(V(KN_EWV_ERFC_MAX), v_abs(z));
    __m256 t = _mm256_div_ps(V(1.0f), _mm256_fmadd_ps(az, V(0.5f), V(1.0f)));
    __m256 r = _mm256_fmadd_ps(V(KN_EWV_R10), t, V(KN_EWV_R9));
    r = _mm256_fmadd_ps(r, t, V(KN_EWV_R8));
    r = _mm256_fmadd_ps(r, t, V(KN_EWV_R7));
    r = _mm256_fmadd_ps(r, t, V(KN_EWV_R6));
    r = _mm256_fmadd_ps(r, t, V(KN_EWV_R5));
    r = _mm256_fmadd_ps(r, t, V(KN_EWV_R4));
    r = _mm256_fmadd_ps(r, t, V(KN_EWV_R3));
    r = _mm256_fmadd_ps(r, t, V(KN_EWV_R2));
    r = _mm256_fmadd_ps(r, t, V(KN_EWV_R1));
    r = _mm256_fmadd_ps(r, t, V(KN_EWV_R0));
    /* z^2 = x^2 / 2 = hi + lo exactly (z itself is rounded) */
    __m256 ax = _mm256_min_ps(V(KN_EWV_ERFC_MAX * 1.41421356f), v_abs(x));
    __m256 hi = _mm256_mul_ps(ax, ax);
    __m256 lo = _mm256_mul_ps(_mm256_fmsub_ps(ax, ax, hi), V(0.5f));
    hi = _mm256_mul_ps(hi, V(0.5f));
    __m256 e = v_exp(v_neg(hi));
    e = _mm256_fnmadd_ps(e, lo, e);
    __m256 hx = _mm256_mul_ps(V(0.5f), x);
    __m256 yneg = _mm256_mul_ps(_mm256_mul_ps(hx, r), e);
    phi2 = SEL(CMP(z, V(1.0f), _CMP_GE_OQ), phi2, _mm256_fnmadd_ps(e, r, V(2.0f)));
    return SEL(CMP(z, V(KN_EWV_ERFC_NEG), _CMP_LE_OQ), _mm256_mul_ps(hx, phi2), yneg);
}

/* erf(z), as kn512_erf (avx512/vmath.h): |z| < 1: z (P0 + P0_LO) + z^3 Q(z^2);
 * else sign(z) (1 - e^(-z^2) R(t)), t = 1 / (1 + |z|/2), z^2 split exactly */
static inline __m256 v_erf(__m256 z)
{
    __m256 az = v_abs(z);
    __m256 z2 = _mm256_mul_ps(z, z);
    __m256 q = _mm256_fmadd_ps(V(KN_EWV_P6), z2, V(KN_EWV_P5));
    q = _mm256_fmadd_ps(q, z2, V(KN_EWV_P4));
    q = _mm256_fmadd_ps(q, z2, V(KN_EWV_P3));
    q = _mm256_fmadd_ps(q, z2, V(KN_EWV_P2));
    q = _mm256_fmadd_ps(q, z2, V(KN_EWV_P1));
    __m256 s = _mm256_mul_ps(_mm256_mul_ps(z, z2), q);
    s = _mm256_fmadd_ps(z, V(KN_EWV_P0_LO), s);
    __m256 small = _mm256_fmadd_ps(z, V(KN_EWV_P0), s);
    __m256 a = _mm256_min_ps(V(KN_EWV_ERFC_MAX), az);
    __m256 t = _mm256_div_ps(V(1.0f), _mm256_fmadd_ps(a, V(0.5f), V(1.0f)));
    __m256 r = _mm256_fmadd_ps(V(KN_EWV_R10), t, V(KN_EWV_R9));
    r = _mm256_fmadd_ps(r, t, V(KN_EWV_R8));
    r = _mm256_fmadd_ps(r, t, V(KN_EWV_R7));
    r = _mm256_fmadd_ps(r, t, V(KN_EWV_R6));
    r = _mm256_fmadd_ps(r, t, V(KN_EWV_R5));
    r = _mm256_fmadd_ps(r, t, V(KN_EWV_R4));
    r = _mm256_fmadd_ps(r, t, V(KN_EWV_R3));
    r = _mm256_fmadd_ps(r, t, V(KN_EWV_R2));
    r = _mm256_fmadd_ps(r, t, V(KN_EWV_R1));
    r = _mm256_fmadd_ps(r, t, V(KN_EWV_R0));
    __m256 hi = _mm256_mul_ps(a, a);
    __m256 lo = _mm256_fmsub_ps(a, a, hi);
    __m256 e = v_exp(v_neg(hi));
    e = _mm256_fnmadd_ps(e, lo, e);
    __m256 sgn = _mm256_and_ps(z, V(-0.0f)); /* small is +0 for z = -0 otherwise */
    small = _mm256_or_ps(small, sgn);
    __m256 big = _mm256_or_ps(_mm256_sub_ps(V(1.0f), _mm256_mul_ps(e, r)), sgn);
    return SEL(CMP(az, V(1.0f), _CMP_LT_OQ), big, small);
}

#define U(name) static inline __m256 name##_v(__m256 x, __m256 al, __m256 be)
U(neg)
{
    return v_neg(x);
}
U(abs)
{
    return v_abs(x);
}
U(relu)
{
    return SEL(CMP(x, V(0.0f), _CMP_LT_OQ), x, V(0.0f));
}
U(relu6)
{
    return v_clamp(x, V(0.0f), V(6.0f));
}
U(leaky_relu)
{
    return SEL(CMP(x, V(0.0f), _CMP_GT_OQ), _mm256_mul_ps(x, al), x);
}
U(sigmoid)
{
    return v_sigmoid(x);
}
U(tanh)
{
    return v_tanh(x);
}
U(exp)
{
    return v_exp(x);
}
U(log)
{
    return v_log(x);
}
U(gelu)
{
    return v_gelu(x);
}
U(gelu_tanh)
{
    __m256 c = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(V(KN_EWV_GELU_C), x), x), x);
    __m256 u = _mm256_mul_ps(V(KN_EWV_GELU_K), _mm256_add_ps(x, c));
    return _mm256_div_ps(x, _mm256_add_ps(V(1.0f), v_exp(_mm256_mul_ps(V(-2.0f), u))));
}
U(silu)
{
    return _mm256_div_ps(x, _mm256_add_ps(V(1.0f), v_exp(v_neg(x))));
}
U(hard_sigmoid)
{
    return v_clamp(_mm256_add_ps(_mm256_mul_ps(al, x), be), V(0.0f), V(1.0f));
}
U(hard_swish)
{
    __m256 c = v_clamp(_mm256_add_ps(x, V(3.0f)), V(0.0f), V(6.0f));
    return _mm256_div_ps(_mm256_mul_ps(x, c), V(6.0f));
}
U(clip)
{
    __m256 v = SEL(CMP(x, al, _CMP_LT_OQ), x, al);
    return SEL(CMP(v, be, _CMP_GT_OQ), v, be);
}
U(sqrt)
{
    return _mm256_sqrt_ps(x);
}
U(rsqrt)
{
    return _mm256_div_ps(V(1.0f), _mm256_sqrt_ps(x));
}
U(erf)
{
    return v_erf(x);
}
U(square)
{
    return _mm256_mul_ps(x, x);
}
#undef U

typedef void (*uloop)(const void *x, void *y, int64_t n, __m256 al, __m256 be);

#define UNARY_LOOPS(name)                                                                          \
    static void name##_f32(const void *xv, void *yv, int64_t n, __m256 al, __m256 be)              \
    {                                                                                              \
        (void)al, (void)be;                                                                        \
        const float *x = xv;                                                                       \
        float *y = yv;                                                                             \
        int64_t i = 0;                                                                             \
        for (; i + 8 <= n; i += 8)                                                                 \
            _mm256_storeu_ps(y + i, name##_v(_mm256_loadu_ps(x + i), al, be));                     \
        if (i < n) {                                                                               \
            float buf[8] = {0};                                                                    \
            memcpy(buf, x + i, sizeof(float) * (size_t)(n - i));                                   \
            _mm256_storeu_ps(buf, name##_v(_mm256_loadu_ps(buf), al, be));                         \
            memcpy(y + i, buf, sizeof(float) * (size_t)(n - i));                                   \
        }                                                                                          \
    }                                                                                              \
    static void name##_bf16(const void *xv, void *yv, int64_t n, __m256 al, __m256 be)             \
    {                                                                                              \
        (void)al, (void)be;                                                                        \
        const uint16_t *x = xv;                                                                    \
        uint16_t *y = yv;                                                                          \
        int64_t i = 0;                                                                             \
        for (; i + 8 <= n; i += 8)                                                                 \
            st_bf16(y + i, name##_v(ld_bf16(x + i), al, be));                                      \
        if (i < n) {                                                                               \
            uint16_t buf[8] = {0};                                                                 \
            memcpy(buf, x + i, sizeof(uint16_t) * (size_t)(n - i));                                \
            st_bf16(buf, name##_v(ld_bf16(buf), al, be));                                          \
            memcpy(y + i, buf, sizeof(uint16_t) * (size_t)(n - i));                                \
        }                                                                                          \
    }

UNARY_LOOPS(neg)
UNARY_LOOPS(abs)
UNARY_LOOPS(relu)
UNARY_LOOPS(relu6)
UNARY_LOOPS(leaky_relu)
UNARY_LOOPS(sigmoid)
UNARY_LOOPS(tanh)
UNARY_LOOPS(exp)
UNARY_LOOPS(log)
UNARY_LOOPS(gelu)
UNARY_LOOPS(gelu_tanh)
UNARY_LOOPS(silu)
UNARY_LOOPS(hard_sigmoid)
UNARY_LOOPS(hard_swish)
UNARY_LOOPS(clip)
UNARY_LOOPS(sqrt)
UNARY_LOOPS(rsqrt)
UNARY_LOOPS(square)
UNARY_LOOPS(erf)

#define UENTRY(OP, name) [KN_EWV_##OP] = {name##_f32, name##_bf16}
static const uloop unary_table[KN_EWV_COUNT][2] = {
    UENTRY(NEG, neg),
    UENTRY(ABS, abs),
    UENTRY(RELU, relu),
    UENTRY(RELU6, relu6),
    UENTRY(LEAKY_RELU, leaky_relu),
    UENTRY(SIGMOID, sigmoid),
    UENTRY(TANH, tanh),
    UENTRY(EXP, exp),
    UENTRY(LOG, log),
    UENTRY(GELU, gelu),
    UENTRY(GELU_TANH, gelu_tanh),
    UENTRY(SILU, silu),
    UENTRY(HARD_SIGMOID, hard_sigmoid),
    UENTRY(HARD_SWISH, hard_swish),
    UENTRY(CLIP, clip),
    UENTRY(SQRT, sqrt),
    UENTRY(RSQRT, rsqrt),
    UENTRY(SQUARE, square),
    UENTRY(ERF, erf),
};

void kn__ew_unary_avx2(kn_ew_op op, kn_dtype dt, const void *x, void *y, int64_t n, float alpha,
                       float beta)
{
    assert(op > 0 && op < KN_EWV_COUNT && unary_table[op][0] && (dt == KN_F32 || dt == KN_BF16));
    unary_table[op][dt == KN_BF16](x, y, n, V(alpha), V(beta));
    _mm256_zeroupper(); /* not on every return path otherwise (see avx512/vmath.h) */
}

#define B(name) static inline __m256 name##_v(__m256 a, __m256 b)
B(add)
{
    return _mm256_add_ps(a, b);
}
B(sub)
{
    return _mm256_sub_ps(a, b);
}
B(mul)
{
    return _mm256_mul_ps(a, b);
}
B(div)
{
    return _mm256_div_ps(a, b);
}
B(maximum)
{
    __m256 r = SEL(CMP(a, b, _CMP_GT_OQ), b, a);
    return SEL(CMP(a, b, _CMP_UNORD_Q), r, _mm256_add_ps(a, b));
}
B(minimum)
{
    __m256 r = SEL(CMP(a, b, _CMP_LT_OQ), b, a);
    return SEL(CMP(a, b, _CMP_UNORD_Q), r, _mm256_add_ps(a, b));
}
#undef B

typedef void (*bloop)(const void *a, const void *b, void *y, int64_t n, float s);

/* One vector of 8 at element offset i (from a pointer or a staged buffer). */
#define LDF(p, i) _mm256_loadu_ps((const float *)(p) + (i))
#define LDH(p, i) ld_bf16((const uint16_t *)(p) + (i))
#define STF(p, i, v) _mm256_storeu_ps((float *)(p) + (i), v)
#define STH(p, i, v) st_bf16((uint16_t *)(p) + (i), v)

/* T: element type; LD/ST: loaders; USE_A/USE_B: whether a/b are arrays */
#define BINARY_LOOP(name, sfx, T, LD, ST, USE_A, USE_B)                                            \
    static void name##_##sfx(const void *a, const void *b, void *y, int64_t n, float s)            \
    {                                                                                              \
        __m256 sv = V(s);                                                                          \
        int64_t i = 0;                                                                             \
        for (; i + 8 <= n; i += 8)                                                                 \
            ST(y, i, name##_v(USE_A ? LD(a, i) : sv, USE_B ? LD(b, i) : sv));                      \
        if (i < n) {                                                                               \
            T ba[8] = {0}, bb[8] = {0}, by[8];                                                     \
            size_t r = sizeof(T) * (size_t)(n - i);                                                \
            if (USE_A) memcpy(ba, (const T *)a + i, r);                                            \
            if (USE_B) memcpy(bb, (const T *)b + i, r);                                            \
            ST(by, 0, name##_v(USE_A ? LD(ba, 0) : sv, USE_B ? LD(bb, 0) : sv));                   \
            memcpy((T *)y + i, by, r);                                                             \
        }                                                                                          \
    }
#define BINARY_LOOPS(name)                                                                         \
    BINARY_LOOP(name, vv_f32, float, LDF, STF, 1, 1)                                               \
    BINARY_LOOP(name, sv_f32, float, LDF, STF, 0, 1)                                               \
    BINARY_LOOP(name, vs_f32, float, LDF, STF, 1, 0)                                               \
    BINARY_LOOP(name, vv_bf16, uint16_t, LDH, STH, 1, 1)                                           \
    BINARY_LOOP(name, sv_bf16, uint16_t, LDH, STH, 0, 1)                                           \
    BINARY_LOOP(name, vs_bf16, uint16_t, LDH, STH, 1, 0)

BINARY_LOOPS(add)
BINARY_LOOPS(sub)
BINARY_LOOPS(mul)
BINARY_LOOPS(div)
BINARY_LOOPS(maximum)
BINARY_LOOPS(minimum)

#define BENTRY(OP, name)                                                                           \
    [KN_EWV_##OP] = {{name##_vv_f32, name##_sv_f32, name##_vs_f32},                                \
                     {name##_vv_bf16, name##_sv_bf16, name##_vs_bf16}}
static const bloop binary_table[KN_EWV_BINARY_END][2][3] = {
    BENTRY(ADD, add), BENTRY(SUB, sub),         BENTRY(MUL, mul),
    BENTRY(DIV, div), BENTRY(MAXIMUM, maximum), BENTRY(MINIMUM, minimum),
};

void kn__ew_binary_avx2(kn_ew_op op, kn_dtype dt, const void *a, const void *b, void *y, int64_t n,
                        kn_ew_bcast bc, float s)
{
    assert(op > 0 && op < KN_EWV_BINARY_END && (dt == KN_F32 || dt == KN_BF16));
    binary_table[op][dt == KN_BF16][bc](a, b, y, n, s);
    _mm256_zeroupper();
}

/* ---- programs (fused_elementwise): every step on 8 lanes in registers;
 * the tail (< 8) runs on zero-padded copies of the sources */
static inline __m256 prog_unary(kn_ew_op op, __m256 x, __m256 al, __m256 be)
{
    switch (op) {
/* clang-format off */
#define UCASE(OP, name)                                                                            \
    case KN_EWV_##OP:                                                                              \
        return name##_v(x, al, be);
        UCASE(NEG, neg)
        UCASE(ABS, abs)
        UCASE(RELU, relu)
        UCASE(RELU6, relu6)
        UCASE(LEAKY_RELU, leaky_relu)
        UCASE(SIGMOID, sigmoid)
        UCASE(TANH, tanh)
        UCASE(EXP, exp)
        UCASE(LOG, log)
        UCASE(GELU, gelu)
        UCASE(GELU_TANH, gelu_tanh)
        UCASE(SILU, silu)
        UCASE(HARD_SIGMOID, hard_sigmoid)
        UCASE(HARD_SWISH, hard_swish)
        UCASE(CLIP, clip)
        UCASE(SQRT, sqrt)
        UCASE(RSQRT, rsqrt)
        UCASE(SQUARE, square)
        UCASE(ERF, erf)
/* clang-format on */
#undef UCASE
    default:
        assert(!"kn__ew_prog_avx2: not a vector op");
        return x;
    }
}

static inline __m256 prog_binary(kn_ew_op op, __m256 a, __m256 b)
{
    switch (op) {
    case KN_EWV_ADD:
        return add_v(a, b);
    case KN_EWV_SUB:
        return sub_v(a, b);
    case KN_EWV_MUL:
        return mul_v(a, b);
    case KN_EWV_DIV:
        return div_v(a, b);
    case KN_EWV_MAXIMUM:
        return maximum_v(a, b);
    case KN_EWV_MINIMUM:
        return minimum_v(a, b);
    default:
        assert(!"kn__ew_prog_avx2: not a binary op");
        return a;
    }
}

/* the program on 8 lanes: sources at element i of src (or uniform) */
static inline __m256 prog_vec(const kn_ew_prog *pg, __m256 *v, const __m256 *al, const __m256 *be,
                              const float *const *src, int64_t i)
{
    int ns = pg->n_src;
    for (int k = 0; k < ns; k++)
        if (src[k]) v[k] = _mm256_loadu_ps(src[k] + i);
    for (int j = 0; j < pg->n_steps; j++) {
        const kn_ew_prog_step *st = &pg->steps[j];
        v[ns + j] = st->op < KN_EWV_BINARY_END ? prog_binary(st->op, v[st->a], v[st->b])
                                               : prog_unary(st->op, v[st->a], al[j], be[j]);
    }
    return v[ns + pg->n_steps - 1];
}

void kn__ew_prog_avx2(const kn_ew_prog *pg, float *y, int64_t n)
{
    assert(pg->n_steps >= 1 && pg->n_steps <= KN_EW_PROG_MAX_STEPS &&
           pg->n_src <= KN_EW_PROG_MAX_SRC);
    __m256 v[KN_EW_PROG_MAX_SRC + KN_EW_PROG_MAX_STEPS];
    __m256 al[KN_EW_PROG_MAX_STEPS], be[KN_EW_PROG_MAX_STEPS];
    for (int k = 0; k < pg->n_src; k++)
        if (!pg->src[k]) v[k] = V(pg->uval[k]);
    for (int j = 0; j < pg->n_steps; j++)
        al[j] = V(pg->steps[j].alpha), be[j] = V(pg->steps[j].beta);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, prog_vec(pg, v, al, be, pg->src, i));
    if (i < n) {
        float buf[KN_EW_PROG_MAX_SRC][8], out[8];
        const float *src[KN_EW_PROG_MAX_SRC];
        size_t r = sizeof(float) * (size_t)(n - i);
        for (int k = 0; k < pg->n_src; k++) {
            src[k] = NULL;
            if (!pg->src[k]) continue;
            memset(buf[k], 0, sizeof buf[k]);
            memcpy(buf[k], pg->src[k] + i, r);
            src[k] = buf[k];
        }
        _mm256_storeu_ps(out, prog_vec(pg, v, al, be, src, 0));
        memcpy(y + i, out, r);
    }
    _mm256_zeroupper();
}

#endif
