/* reduce_simd.h — small AVX-512 helpers shared by the reduction, norm,
 * softmax and pooling kernels of this folder: tail masks, f32/bf16 loads and
 * stores of 16 lanes (bf16 rounds to nearest even, NaN stays NaN, bit for bit
 * as kn_f32_to_bf16), a fixed-order horizontal sum, and expf.
 * Include only from files compiled with the AVX-512 flags. */
#ifndef KILN_AVX512_REDUCE_SIMD_H
#define KILN_AVX512_REDUCE_SIMD_H

#include "../../../base/base.h"

#include <immintrin.h>
#include <math.h>

static inline __mmask16 tail_mask(int64_t n)
{
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
}

/* 16 lanes (masked) of f32 (bf16 = false) or bf16 at p, as f32. */
static inline __m512 load16(const void *p, bool bf16, __mmask16 m)
{
    if (!bf16) return _mm512_maskz_loadu_ps(m, p);
    __m256i h = _mm256_maskz_loadu_epi16(m, p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

static inline __m256i f32_to_bf16x16(__m512 v)
{
    __m512i x = _mm512_castps_si512(v);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(x, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    r = _mm512_mask_or_epi32(r, nan, x, _mm512_set1_epi32(0x400000));
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
}

static inline void store16(void *p, bool bf16, __mmask16 m, __m512 v)
{
    if (!bf16)
        _mm512_mask_storeu_ps(p, m, v);
    else
        _mm256_mask_storeu_epi16(p, m, f32_to_bf16x16(v));
}

/* Sum of the 16 lanes in a fixed tree order (so it never depends on who calls). */
static inline double hsum_d(__m512 v)
{
    __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    __m256d d = _mm256_cvtps_pd(b);
    __m128d e = _mm_add_pd(_mm256_castpd256_pd128(d), _mm256_extractf128_pd(d, 1));
    return _mm_cvtsd_f64(e) + _mm_cvtsd_f64(_mm_unpackhi_pd(e, e));
}

/* exp(x) for f32 lanes: x = n ln2 + r, |r| <= ln2/2, a degree-6 polynomial
 * for e^r (relative error ~2 ulp), then scaled by 2^n. Below -104 the result
 * is 0, above 88.72 inf; NaN stays NaN. */
static inline __m512 exp16(__m512 x)
{
    const __m512 hi = _mm512_set1_ps(88.7228391f), lo = _mm512_set1_ps(-104.0f);
    __m512 xc = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145752f), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860682e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    __m512 y = _mm512_scalef_ps(p, n);
    y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ), _mm512_set1_ps(INFINITY));
    return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

#endif
