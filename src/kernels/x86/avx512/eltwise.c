/* eltwise.c (AVX-512) — elementwise kernels over contiguous runs:
 * x, y are (n) f32 or bf16; binary ops read a (n) or a broadcast f32 scalar
 * and b likewise. 16 lanes per zmm, the tail under a mask, so every element
 * goes through the same instruction sequence wherever it sits (results do not
 * depend on how the caller cuts the runs). bf16 loads widen to f32, results
 * round to nearest even like kn_f32_to_bf16 (NaN stays quiet; the
 * vcvtneps2bf16 instruction is not used because it flushes subnormals).
 * The simple ops repeat the reference's f32 operation order, so their
 * results are bitwise those of src/ops/elementwise.c; exp/log/tanh/erf use
 * the approximations of src/kernels/eltwise.h. Needs AVX512F/BW/VL. */
#include "../../eltwise.h"

#if KILN_X86
#include <assert.h>
#include <immintrin.h>
#include <math.h>

#define V(c) _mm512_set1_ps(c)

static inline __mmask16 tail_mask(int64_t r)
{
    return (__mmask16)((1u << r) - 1u);
}

static inline __m512 ld_bf16(__mmask16 m, const uint16_t *p)
{
    __m256i h = _mm256_maskz_loadu_epi16(m, p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* round to nearest even, NaN -> quiet NaN (bit 6 of the bf16 set) */
static inline void st_bf16(__mmask16 m, uint16_t *p, __m512 v)
{
    __m512i u = _mm512_castps_si512(v);
    __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(u, _mm512_set1_epi32(0x400000)));
    _mm256_mask_storeu_epi16(p, m, _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16)));
}

static inline __m512 v_abs(__m512 x)
{
    return _mm512_castsi512_ps(
        _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff)));
}

static inline __m512 v_neg(__m512 x)
{
    return _mm512_castsi512_ps(
        _mm512_xor_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u)));
}

/* v < lo ? lo : v > hi ? hi : v (NaN passes) */
static inline __m512 v_clamp(__m512 v, __m512 lo, __m512 hi)
{
    v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, lo, _CMP_LT_OQ), lo);
    return _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, hi, _CMP_GT_OQ), hi);
}

/* ---- approximations; constants and error bounds in eltwise.h.
 * _mm512_max_ps(c, x) returns x when x is NaN, so clamps keep NaN. */
static inline __m512 v_exp(__m512 x)
{
    x = _mm512_max_ps(V(KN_EWV_EXP_LO), x);
    x = _mm512_min_ps(V(KN_EWV_EXP_HI), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, V(KN_EWV_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, V(KN_EWV_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, V(KN_EWV_LN2_LO), r);
    __m512 q = _mm512_fmadd_ps(V(KN_EWV_E5), r, V(KN_EWV_E4));
    q = _mm512_fmadd_ps(q, r, V(KN_EWV_E3));
    q = _mm512_fmadd_ps(q, r, V(KN_EWV_E2));
    q = _mm512_fmadd_ps(q, r, V(KN_EWV_E1));
    q = _mm512_fmadd_ps(q, r, V(KN_EWV_E0));
    __m512 p = _mm512_add_ps(_mm512_fmadd_ps(q, _mm512_mul_ps(r, r), r), V(1.0f));
    return _mm512_scalef_ps(p, n); /* p 2^n in one rounding, subnormals too */
}

static inline __m512 v_log(__m512 x)
{
    __m512 m = _mm512_getmant_ps(x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero);
    __m512 e = _mm512_getexp_ps(x);
    __mmask16 big = _mm512_cmp_ps_mask(m, V(1.41421356f), _CMP_GT_OQ);
    m = _mm512_mask_mul_ps(m, big, m, V(0.5f));
    e = _mm512_mask_add_ps(e, big, e, V(1.0f));
    __m512 f = _mm512_sub_ps(m, V(1.0f));
    __m512 q = _mm512_fmadd_ps(V(KN_EWV_L7), f, V(KN_EWV_L6));
    q = _mm512_fmadd_ps(q, f, V(KN_EWV_L5));
    q = _mm512_fmadd_ps(q, f, V(KN_EWV_L4));
    q = _mm512_fmadd_ps(q, f, V(KN_EWV_L3));
    q = _mm512_fmadd_ps(q, f, V(KN_EWV_L2));
    q = _mm512_fmadd_ps(q, f, V(KN_EWV_L1));
    q = _mm512_fmadd_ps(q, f, V(KN_EWV_L0));
    __m512 f2 = _mm512_mul_ps(f, f);
    __m512 t = _mm512_fmadd_ps(_mm512_mul_ps(f2, f), q, _mm512_mul_ps(V(-0.5f), f2));
    t = _mm512_fmadd_ps(e, V(KN_EWV_LN2_LO), t);
    __m512 r = _mm512_fmadd_ps(e, V(KN_EWV_LN2_HI), _mm512_add_ps(f, t));
    /* log(0) = -inf, log(x < 0) = NaN, log(inf) = inf, NaN stays */
    r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, V(0.0f), _CMP_EQ_OQ), V(-INFINITY));
    r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, V(0.0f), _CMP_LT_OQ), V(NAN));
    r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, V(INFINITY), _CMP_EQ_OQ), x);
    return _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

static inline __m512 v_tanh(__m512 x)
{
    __m512 ax = v_abs(x);
    __m512 x2 = _mm512_mul_ps(x, x);
    __m512 q = _mm512_fmadd_ps(V(KN_EWV_T4), x2, V(KN_EWV_T3));
    q = _mm512_fmadd_ps(q, x2, V(KN_EWV_T2));
    q = _mm512_fmadd_ps(q, x2, V(KN_EWV_T1));
    q = _mm512_fmadd_ps(q, x2, V(KN_EWV_T0));
    __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(x2, x), q, x);
    __m512 e = v_exp(_mm512_add_ps(_mm512_min_ps(V(10.0f), ax), _mm512_min_ps(V(10.0f), ax)));
    __m512 big = _mm512_sub_ps(V(1.0f), _mm512_div_ps(V(2.0f), _mm512_add_ps(e, V(1.0f))));
    big = _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_castps_si512(big),
        _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u))));
    return _mm512_mask_mov_ps(big, _mm512_cmp_ps_mask(ax, V(KN_EWV_TANH_SMALL), _CMP_LT_OQ), small);
}

/* 1 / (1 + e^-x), as the reference: e = e^-|x|, 1/(1+e) or e/(1+e) */
static inline __m512 v_sigmoid(__m512 x)
{
    __m512 e = v_exp(v_neg(v_abs(x)));
    __m512 num = _mm512_mask_mov_ps(V(1.0f), _mm512_cmp_ps_mask(x, V(0.0f), _CMP_LT_OQ), e);
    return _mm512_div_ps(num, _mm512_add_ps(V(1.0f), e));
}

/* gelu(x) = x/2 (1 + erf(z)), z = x/sqrt2; for z <= -1, 1 + erf(z) = erfc(-z) */
static inline __m512 v_gelu(__m512 x)
{
    __m512 z = _mm512_mul_ps(x, V(KN_EWV_INV_SQRT2));
    __m512 z2 = _mm512_mul_ps(z, z);
    __m512 p = _mm512_fmadd_ps(V(KN_EWV_P6), z2, V(KN_EWV_P5));
    p = _mm512_fmadd_ps(p, z2, V(KN_EWV_P4));
    p = _mm512_fmadd_ps(p, z2, V(KN_EWV_P3));
    p = _mm512_fmadd_ps(p, z2, V(KN_EWV_P2));
    p = _mm512_fmadd_ps(p, z2, V(KN_EWV_P1));
    p = _mm512_fmadd_ps(p, z2, V(KN_EWV_P0));
    __m512 phi2 = _mm512_fmadd_ps(z, p, V(1.0f));
    __m512 az = _mm512_min_ps(V(KN_EWV_ERFC_MAX), v_abs(z));
    __m512 t = _mm512_div_ps(V(1.0f), _mm512_fmadd_ps(az, V(0.5f), V(1.0f)));
    __m512 r = _mm512_fmadd_ps(V(KN_EWV_R10), t, V(KN_EWV_R9));
    r = _mm512_fmadd_ps(r, t, V(KN_EWV_R8));
    r = _mm512_fmadd_ps(r, t, V(KN_EWV_R7));
    r = _mm512_fmadd_ps(r, t, V(KN_EWV_R6));
    r = _mm512_fmadd_ps(r, t, V(KN_EWV_R5));
    r = _mm512_fmadd_ps(r, t, V(KN_EWV_R4));
    r = _mm512_fmadd_ps(r, t, V(KN_EWV_R3));
    r = _mm512_fmadd_ps(r, t, V(KN_EWV_R2));
    r = _mm512_fmadd_ps(r, t, V(KN_EWV_R1));
    r = _mm512_fmadd_ps(r, t, V(KN_EWV_R0));
    /* z^2 = x^2 / 2 = hi + lo exactly (z itself is rounded) */
    __m512 ax = _mm512_min_ps(V(KN_EWV_ERFC_MAX * 1.41421356f), v_abs(x));
    __m512 hi = _mm512_mul_ps(ax, ax);
    __m512 lo = _mm512_mul_ps(_mm512_fmsub_ps(ax, ax, hi), V(0.5f));
    hi = _mm512_mul_ps(hi, V(0.5f)); /* az^2 = hi + lo exactly */
    __m512 e = v_exp(v_neg(hi));
    e = _mm512_fnmadd_ps(e, lo, e);
    __m512 hx = _mm512_mul_ps(V(0.5f), x);
    /* z <= -1/2: (x/2 R) e, the tiny factor last so no intermediate is subnormal */
    __m512 yneg = _mm512_mul_ps(_mm512_mul_ps(hx, r), e);
    phi2 = _mm512_mask_mov_ps(phi2, _mm512_cmp_ps_mask(z, V(1.0f), _CMP_GE_OQ),
                              _mm512_fnmadd_ps(e, r, V(2.0f)));
    return _mm512_mask_mov_ps(_mm512_mul_ps(hx, phi2),
                              _mm512_cmp_ps_mask(z, V(KN_EWV_ERFC_NEG), _CMP_LE_OQ), yneg);
}

/* ---- the unary ops; al, be are the op's attributes */
#define U(name) static inline __m512 name##_v(__m512 x, __m512 al, __m512 be)
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
    return _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(x, V(0.0f), _CMP_LT_OQ), V(0.0f));
}
U(relu6)
{
    return v_clamp(x, V(0.0f), V(6.0f));
}
U(leaky_relu)
{
    return _mm512_mask_mov_ps(_mm512_mul_ps(x, al), _mm512_cmp_ps_mask(x, V(0.0f), _CMP_GT_OQ), x);
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
/* x/2 (1 + tanh(u)) = x / (1 + e^(-2u)), u = k (x + c x^3) in the reference's order */
U(gelu_tanh)
{
    __m512 c = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(V(KN_EWV_GELU_C), x), x), x);
    __m512 u = _mm512_mul_ps(V(KN_EWV_GELU_K), _mm512_add_ps(x, c));
    return _mm512_div_ps(x, _mm512_add_ps(V(1.0f), v_exp(_mm512_mul_ps(V(-2.0f), u))));
}
U(silu)
{
    return _mm512_div_ps(x, _mm512_add_ps(V(1.0f), v_exp(v_neg(x))));
}
U(hard_sigmoid)
{
    return v_clamp(_mm512_add_ps(_mm512_mul_ps(al, x), be), V(0.0f), V(1.0f));
}
U(hard_swish)
{
    __m512 c = v_clamp(_mm512_add_ps(x, V(3.0f)), V(0.0f), V(6.0f));
    return _mm512_div_ps(_mm512_mul_ps(x, c), V(6.0f));
}
U(clip)
{
    __m512 v = _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(x, al, _CMP_LT_OQ), al);
    return _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, be, _CMP_GT_OQ), be);
}
U(sqrt)
{
    return _mm512_sqrt_ps(x);
}
U(rsqrt)
{
    return _mm512_div_ps(V(1.0f), _mm512_sqrt_ps(x));
}
U(square)
{
    return _mm512_mul_ps(x, x);
}
#undef U

typedef void (*uloop)(const void *x, void *y, int64_t n, __m512 al, __m512 be);

#define UNARY_LOOPS(name)                                                                          \
    static void name##_f32(const void *xv, void *yv, int64_t n, __m512 al, __m512 be)              \
    {                                                                                              \
        (void)al, (void)be;                                                                        \
        const float *x = xv;                                                                       \
        float *y = yv;                                                                             \
        int64_t i = 0;                                                                             \
        for (; i + 32 <= n; i += 32) {                                                             \
            __m512 r0 = name##_v(_mm512_loadu_ps(x + i), al, be);                                  \
            __m512 r1 = name##_v(_mm512_loadu_ps(x + i + 16), al, be);                             \
            _mm512_storeu_ps(y + i, r0);                                                           \
            _mm512_storeu_ps(y + i + 16, r1);                                                      \
        }                                                                                          \
        for (; i < n; i += 16) {                                                                   \
            __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);                      \
            _mm512_mask_storeu_ps(y + i, m, name##_v(_mm512_maskz_loadu_ps(m, x + i), al, be));    \
        }                                                                                          \
    }                                                                                              \
    static void name##_bf16(const void *xv, void *yv, int64_t n, __m512 al, __m512 be)             \
    {                                                                                              \
        (void)al, (void)be;                                                                        \
        const uint16_t *x = xv;                                                                    \
        uint16_t *y = yv;                                                                          \
        for (int64_t i = 0; i < n; i += 16) {                                                      \
            __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);                      \
            st_bf16(m, y + i, name##_v(ld_bf16(m, x + i), al, be));                                \
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
};

void kn__ew_unary_avx512(kn_ew_op op, kn_dtype dt, const void *x, void *y, int64_t n, float alpha,
                         float beta)
{
    assert(op > 0 && op < KN_EWV_COUNT && unary_table[op][0] && (dt == KN_F32 || dt == KN_BF16));
    unary_table[op][dt == KN_BF16](x, y, n, V(alpha), V(beta));
}

/* ---- the binary ops */
#define B(name) static inline __m512 name##_v(__m512 a, __m512 b)
B(add)
{
    return _mm512_add_ps(a, b);
}
B(sub)
{
    return _mm512_sub_ps(a, b);
}
B(mul)
{
    return _mm512_mul_ps(a, b);
}
B(div)
{
    return _mm512_div_ps(a, b);
}
/* NaN if either is NaN (a + b), else a > b ? a : b; ties give b, like the reference */
B(maximum)
{
    __m512 r = _mm512_mask_mov_ps(b, _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ), a);
    return _mm512_mask_add_ps(r, _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q), a, b);
}
B(minimum)
{
    __m512 r = _mm512_mask_mov_ps(b, _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), a);
    return _mm512_mask_add_ps(r, _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q), a, b);
}
#undef B

typedef void (*bloop)(const void *a, const void *b, void *y, int64_t n, float s);

/* LA/LB load operand a/b under mask m at element i; F32 or BF16 flavour */
#define LD_F32(p, m, i) _mm512_maskz_loadu_ps(m, (const float *)(p) + (i))
#define LD_BF16(p, m, i) ld_bf16(m, (const uint16_t *)(p) + (i))
#define ST_F32(p, m, i, v) _mm512_mask_storeu_ps((float *)(p) + (i), m, v)
#define ST_BF16(p, m, i, v) st_bf16(m, (uint16_t *)(p) + (i), v)

#define BINARY_LOOP(name, sfx, LD, ST, LA, LB)                                                     \
    static void name##_##sfx(const void *a, const void *b, void *y, int64_t n, float s)            \
    {                                                                                              \
        __m512 sv = V(s);                                                                          \
        (void)sv, (void)a, (void)b;                                                                \
        for (int64_t i = 0; i < n; i += 16) {                                                      \
            __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);                      \
            ST(y, m, i, name##_v(LA, LB));                                                         \
        }                                                                                          \
    }
#define BINARY_LOOPS(name)                                                                         \
    BINARY_LOOP(name, vv_f32, LD_F32, ST_F32, LD_F32(a, m, i), LD_F32(b, m, i))                    \
    BINARY_LOOP(name, sv_f32, LD_F32, ST_F32, sv, LD_F32(b, m, i))                                 \
    BINARY_LOOP(name, vs_f32, LD_F32, ST_F32, LD_F32(a, m, i), sv)                                 \
    BINARY_LOOP(name, vv_bf16, LD_BF16, ST_BF16, LD_BF16(a, m, i), LD_BF16(b, m, i))               \
    BINARY_LOOP(name, sv_bf16, LD_BF16, ST_BF16, sv, LD_BF16(b, m, i))                             \
    BINARY_LOOP(name, vs_bf16, LD_BF16, ST_BF16, LD_BF16(a, m, i), sv)

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

void kn__ew_binary_avx512(kn_ew_op op, kn_dtype dt, const void *a, const void *b, void *y,
                          int64_t n, kn_ew_bcast bc, float s)
{
    assert(op > 0 && op < KN_EWV_BINARY_END && (dt == KN_F32 || dt == KN_BF16));
    binary_table[op][dt == KN_BF16][bc](a, b, y, n, s);
}

#endif
