/* gemm_pack.c — AVX-512 packing of GEMM operands into micro-panels (layout
 * in ../../gemm.h) for 4-byte elements: f32 values, or bf16 k pairs viewed
 * as one 32-bit unit. A panel holds `width` (<= 32) lanes; lane r, step p of
 * the source is at byte offset r*rs + p*ps and goes to dst[p*width + r].
 * Two layouts are vectorized: steps contiguous (ps == 4: the transposing
 * pack of a row-major A or an (n, k) B, through 16×16 register transposes)
 * and lanes contiguous (rs == 4: row copies of a row-major B). Lanes >= cnt
 * are written as zeros; steps beyond `steps` are left to the caller. The
 * bf16 variant interleaves two rows of a row-major bf16 B into k pairs. */
#include "gemm_avx512.h"

#if KILN_X86

/* In-register 16×16 transpose of 32-bit elements: r[i] lane j → r[j] lane i. */
KN_INLINE void tr16(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    }
    /* r[4b + c] now holds, per 128-bit block q, rows 4q'.. of column 4*? —
     * combine the 128-bit blocks of groups {0..3}, {4..7}, ... */
    for (int c = 0; c < 4; c++) {
        t[c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);      /* blocks 0,2 | 0,2 */
        t[4 + c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xdd);  /* blocks 1,3 | 1,3 */
        t[8 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
        t[12 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xdd);
    }
    for (int c = 0; c < 4; c++) {
        r[c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0xdd);
        r[4 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0xdd);
    }
}

void kn__gemm_pack32_avx512(void *dst, int width, const void *src, int64_t rs, int64_t ps, int cnt,
                            int64_t steps)
{
    float *d = dst;
    const char *s = src;
    int groups = (width + 15) / 16;
    if (rs == 4) { /* lanes contiguous: copy each step's row */
        for (int64_t p = 0; p < steps; p++) {
            const char *row = s + p * ps;
            for (int g = 0; g < groups; g++) {
                int have = cnt - 16 * g, room = width - 16 * g;
                __mmask16 lm = have >= 16 ? 0xffff : have > 0 ? (__mmask16)((1u << have) - 1) : 0;
                __mmask16 sm = room >= 16 ? 0xffff : (__mmask16)((1u << room) - 1);
                _mm512_mask_storeu_ps(d + p * width + 16 * g, sm,
                                      _mm512_maskz_loadu_ps(lm, row + 64 * g));
            }
        }
        return;
    }
    /* steps contiguous (ps == 4): 16 lanes × 16 steps per transpose */
    for (int64_t p0 = 0; p0 < steps; p0 += 16) {
        int64_t np = steps - p0 < 16 ? steps - p0 : 16;
        __mmask16 km = (__mmask16)(np >= 16 ? 0xffff : (1u << np) - 1);
        for (int g = 0; g < groups; g++) {
            __m512 r[16];
            for (int i = 0; i < 16; i++) {
                int lane = 16 * g + i;
                r[i] = lane < cnt ? _mm512_maskz_loadu_ps(km, s + lane * rs + p0 * ps)
                                  : _mm512_setzero_ps();
            }
            tr16(r);
            int room = width - 16 * g;
            __mmask16 sm = room >= 16 ? 0xffff : (__mmask16)((1u << room) - 1);
            for (int64_t q = 0; q < np; q++)
                _mm512_mask_storeu_ps(d + (p0 + q) * width + 16 * g, sm, r[q]);
        }
    }
}

/* bf16 B with lanes contiguous (row-major k×n): for each k pair q, rows 2q
 * and 2q+1 (the latter zero when 2q+1 == k) interleaved into
 * dst[q*2*width + 2*c + (p&1)], width <= 32, lanes >= cnt zero. */
void kn__gemm_pack_bf16_rows_avx512(void *dst, int width, const void *src, int64_t ps, int cnt,
                                    int64_t k)
{
    uint16_t *d = dst;
    const uint16_t *s = src;
    __mmask32 lm = cnt >= 32 ? 0xffffffffu : (__mmask32)((1u << cnt) - 1);
    /* out lo: element j = (j odd ? row1 : row0)[j/2]; out hi: the same + 16 */
    __attribute__((aligned(64))) uint16_t ilo[32], ihi[32];
    for (int j = 0; j < 32; j++) {
        ilo[j] = (uint16_t)((j >> 1) | ((j & 1) << 5));
        ihi[j] = (uint16_t)(((j >> 1) + 16) | ((j & 1) << 5));
    }
    __m512i xlo = _mm512_load_si512(ilo), xhi = _mm512_load_si512(ihi);
    __mmask32 s0 = width >= 16 ? 0xffffffffu : (__mmask32)((1ull << (2 * width)) - 1);
    __mmask32 s1 = width >= 32 ? 0xffffffffu : width > 16 ? (__mmask32)((1ull << (2 * (width - 16))) - 1) : 0;
    for (int64_t p = 0; p < k; p += 2) {
        __m512i r0 = _mm512_maskz_loadu_epi16(lm, s + p * ps);
        __m512i r1 = p + 1 < k ? _mm512_maskz_loadu_epi16(lm, s + (p + 1) * ps) : _mm512_setzero_si512();
        uint16_t *o = d + (p >> 1) * 2 * width;
        _mm512_mask_storeu_epi16(o, s0, _mm512_permutex2var_epi16(r0, xlo, r1));
        if (s1) _mm512_mask_storeu_epi16(o + 32, s1, _mm512_permutex2var_epi16(r0, xhi, r1));
    }
}

#endif
