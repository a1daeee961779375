/* gemm_avx512.h — inline helpers for the AVX-512 GEMM micro-kernels (f32 and
 * bf16): masked loads/stores of f32 or bf16 rows, and the fused epilogue on
 * one 16-column vector. Included only by files compiled with AVX-512 flags. */
#ifndef KILN_KERNELS_GEMM_AVX512_H
#define KILN_KERNELS_GEMM_AVX512_H

#include "../../gemm.h"

#include <immintrin.h>

#define KN_INLINE static inline __attribute__((always_inline))

/* 16 (masked) elements of f32 or bf16 as f32. */
KN_INLINE __m512 kn512_load(kn_dtype dt, const void *p, __mmask16 mk)
{
    if (dt == KN_BF16) {
        __m256i h = _mm256_maskz_loadu_epi16(mk, p);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    return _mm512_maskz_loadu_ps(mk, p);
}

/* f32 → bf16, round to nearest even, NaN kept quiet (as kn_f32_to_bf16). */
KN_INLINE __m256i kn512_to_bf16(__m512 x)
{
    __m512i b = _mm512_castps_si512(x);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(b, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(b, _mm512_set1_epi32(0x400000)));
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
}

KN_INLINE void kn512_store(kn_dtype dt, void *p, __m512 y, __mmask16 mk)
{
    if (dt == KN_BF16)
        _mm256_mask_storeu_epi16(p, mk, kn512_to_bf16(y));
    else
        _mm512_mask_storeu_ps(p, mk, y);
}

/* Vector activations; the smooth ones are in gemm_act_avx512.c. */
__m512 kn__act_avx512(kn_act act, __m512 y);

/* Finishes one vector of the accumulator tile: row i, columns [j, j+16) of
 * the tile, `mk` the valid columns. Partial k blocks go to t->w; the last
 * one adds beta*C, runs the epilogue and stores C. */
KN_INLINE void kn512_finish(const kn_gemm_tile *t, int i, int j, __m512 y, __mmask16 mk)
{
    if (!t->first) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(mk, t->w + i * t->ldw + j));
    if (!t->last) {
        _mm512_mask_storeu_ps(t->w + i * t->ldw + j, mk, y);
        return;
    }
    size_t ces = t->c_dt == KN_BF16 ? 2 : 4;
    char *c = (char *)t->c + (size_t)(i * t->ldc + j) * ces;
    if (t->beta != 0)
        y = _mm512_add_ps(y, _mm512_mul_ps(_mm512_set1_ps(t->beta), kn512_load(t->c_dt, c, mk)));
    if (t->bias) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(mk, t->bias + j));
    if (t->scale) y = _mm512_mul_ps(y, _mm512_maskz_loadu_ps(mk, t->scale + j));
    if (t->shift) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(mk, t->shift + j));
    if (t->res) {
        size_t res = t->res_dt == KN_BF16 ? 2 : 4;
        y = _mm512_add_ps(y, kn512_load(t->res_dt, (const char *)t->res +
                                                       (size_t)(i * t->ldr + j) * res, mk));
    }
    if (t->act != KN_ACT_NONE) y = kn__act_avx512(t->act, y);
    kn512_store(t->c_dt, c, y, mk);
}

/* The 14-row micro-kernels (GEMM f32/bf16, direct NHWC convolution f32/bf16)
 * keep their accumulators as named variables c<row>0 and c<row>1 (an array
 * of vectors would live in memory); these expand per row. FIN stores row i
 * to `acc` (row stride NR, the including file's tile width) when i < mr;
 * `nv` (1 or 2 vectors per row) and `mr` are constants of the instantiation. */
#define KN512_REP14(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13)
#define KN512_DECL(i) __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = _mm512_setzero_ps();
#define KN512_FIN(i)                                                                               \
    if (mr > i) {                                                                                  \
        _mm512_store_ps(acc + i * NR, c##i##0);                                                    \
        if (nv > 1) _mm512_store_ps(acc + i * NR + 16, c##i##1);                                   \
    }

/* The epilogue of one vector of a whole tile (first = last, beta 0) in
 * registers: bias, scale/shift, residual, then relu or relu6 (callers take
 * kn512_finish_tile for the smooth activations, which call functions).
 * PUT applies it to row i's vectors, masked by m0 / m1. */
KN_INLINE void kn512_put(const kn_gemm_tile *t, int i, int j, __m512 y, __mmask16 mk)
{
    if (t->bias) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(mk, t->bias + j));
    if (t->scale) y = _mm512_mul_ps(y, _mm512_maskz_loadu_ps(mk, t->scale + j));
    if (t->shift) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(mk, t->shift + j));
    if (t->res) {
        size_t es = t->res_dt == KN_BF16 ? 2 : 4;
        y = _mm512_add_ps(y, kn512_load(t->res_dt, (const char *)t->res + (size_t)(i * t->ldr + j) * es, mk));
    }
    if (t->act == KN_ACT_RELU)
        y = _mm512_max_ps(y, _mm512_setzero_ps());
    else if (t->act == KN_ACT_RELU6)
        y = _mm512_min_ps(_mm512_max_ps(y, _mm512_setzero_ps()), _mm512_set1_ps(6.0f));
    size_t ces = t->c_dt == KN_BF16 ? 2 : 4;
    kn512_store(t->c_dt, (char *)t->c + (size_t)(i * t->ldc + j) * ces, y, mk);
}
#define KN512_PUT(i)                                                                               \
    if (mr > i) {                                                                                  \
        kn512_put(t, i, 0, c##i##0, m0);                                                           \
        if (nv > 1) kn512_put(t, i, 16, c##i##1, m1);                                              \
    }

/* Finishes an mr×nr accumulator tile held in memory (row stride lda). */
static __attribute__((noinline, unused)) void
kn512_finish_tile(const kn_gemm_tile *t, const float *acc, int lda, int mr, int nr)
{
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j += 16) {
            int cnt = nr - j < 16 ? nr - j : 16;
            __mmask16 mk = (__mmask16)((1u << cnt) - 1);
            kn512_finish(t, i, j, _mm512_loadu_ps(acc + i * lda + j), mk);
        }
}

#endif
