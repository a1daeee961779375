/* eltwise.c (AVX-512) — elementwise kernels over contiguous runs:
 * x, y are (n) f32 or bf16; binary ops read a (n) or a broadcast f32 scalar
 * and b likewise. 16 lanes per zmm, the tail under a mask, so every element
 * goes through the same instruction sequence wherever it sits (results do not
 * depend on how the caller cuts the runs). bf16 loads widen to f32, results
 * round to nearest even like kn_f32_to_bf16 (NaN stays quiet; the
 * vcvtneps2bf16 instruction is not used because it flushes subnormals).
 * The simple ops repeat the reference's f32 operation order, so their
 * results are bitwise those of src/ops/elementwise.c; exp/log/tanh/erf use
 * the approximations of vmath.h (constants and bounds in src/kernels/eltwise.h).
 * Needs AVX512F/BW/VL. */
#include "vmath.h"

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

/* v < lo ? lo : v > hi ? hi : v (NaN passes) */
static inline __m512 v_clamp(__m512 v, __m512 lo, __m512 hi)
{
    v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, lo, _CMP_LT_OQ), lo);
    return _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, hi, _CMP_GT_OQ), hi);
}

/* ---- the unary ops; al, be are the op's attributes */
#define U(name) static inline __m512 name##_v(__m512 x, __m512 al, __m512 be)
U(neg)
{
    return kn512_neg(x);
}
U(abs)
{
    return kn512_abs(x);
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
    return kn512_sigmoid(x);
}
U(tanh)
{
    return kn512_tanh(x);
}
U(exp)
{
    return kn512_exp(x);
}
U(log)
{
    return kn512_log(x);
}
U(gelu)
{
    return kn512_gelu(x);
}
U(gelu_tanh)
{
    return kn512_gelu_tanh(x);
}
U(silu)
{
    return kn512_silu(x);
}
U(erf)
{
    return kn512_erf(x);
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

void kn__ew_unary_avx512(kn_ew_op op, kn_dtype dt, const void *x, void *y, int64_t n, float alpha,
                         float beta)
{
    assert(op > 0 && op < KN_EWV_COUNT && unary_table[op][0] && (dt == KN_F32 || dt == KN_BF16));
    unary_table[op][dt == KN_BF16](x, y, n, V(alpha), V(beta));
    kn512_leave();
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
    kn512_leave();
}

/* ---- programs (fused_elementwise): every step on 16 lanes in registers */
/* r0, r1 = op(x0), op(x1) */
static inline void prog_unary2(kn_ew_op op, __m512 x0, __m512 x1, __m512 al, __m512 be, __m512 *r0,
                               __m512 *r1)
{
    switch (op) {
/* clang-format off */
#define UCASE(OP, name)                                                                            \
    case KN_EWV_##OP:                                                                              \
        *r0 = name##_v(x0, al, be), *r1 = name##_v(x1, al, be);                                    \
        return;
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
        assert(!"kn__ew_prog_avx512: not a vector op");
        *r0 = x0, *r1 = x1;
    }
}

static inline __m512 prog_binary(kn_ew_op op, __m512 a, __m512 b)
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
        assert(!"kn__ew_prog_avx512: not a binary op");
        return a;
    }
}

/* Two vectors (32 lanes) per pass over the steps: the dispatch is paid once
 * per 32 elements and the two dependency chains of each step interleave. */
void kn__ew_prog_avx512(const kn_ew_prog *pg, float *y, int64_t n)
{
    assert(pg->n_steps >= 1 && pg->n_steps <= KN_EW_PROG_MAX_STEPS &&
           pg->n_src <= KN_EW_PROG_MAX_SRC);
    __m512 v0[KN_EW_PROG_MAX_SRC + KN_EW_PROG_MAX_STEPS],
        v1[KN_EW_PROG_MAX_SRC + KN_EW_PROG_MAX_STEPS];
    __m512 al[KN_EW_PROG_MAX_STEPS], be[KN_EW_PROG_MAX_STEPS];
    int ns = pg->n_src, last = ns + pg->n_steps - 1;
    for (int k = 0; k < ns; k++)
        if (!pg->src[k]) v0[k] = v1[k] = V(pg->uval[k]);
    for (int j = 0; j < pg->n_steps; j++)
        al[j] = V(pg->steps[j].alpha), be[j] = V(pg->steps[j].beta);
    for (int64_t i = 0; i < n; i += 32) {
        __mmask16 m0 = n - i >= 16 ? (__mmask16)0xffff : tail_mask(n - i);
        __mmask16 m1 = n - i >= 32 ? (__mmask16)0xffff : n - i > 16 ? tail_mask(n - i - 16) : 0;
        for (int k = 0; k < ns; k++)
            if (pg->src[k]) {
                v0[k] = _mm512_maskz_loadu_ps(m0, pg->src[k] + i);
                v1[k] = _mm512_maskz_loadu_ps(m1, pg->src[k] + i + 16);
            }
        for (int j = 0; j < pg->n_steps; j++) {
            const kn_ew_prog_step *st = &pg->steps[j];
            if (st->op < KN_EWV_BINARY_END) {
                v0[ns + j] = prog_binary(st->op, v0[st->a], v0[st->b]);
                v1[ns + j] = prog_binary(st->op, v1[st->a], v1[st->b]);
            } else {
                prog_unary2(st->op, v0[st->a], v1[st->a], al[j], be[j], &v0[ns + j], &v1[ns + j]);
            }
        }
        _mm512_mask_storeu_ps(y + i, m0, v0[last]);
        _mm512_mask_storeu_ps(y + i + 16, m1, v1[last]);
    }
    kn512_leave();
}

#endif
