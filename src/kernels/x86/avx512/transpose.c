/* transpose.c (AVX-512) — blocked 2-D transposes for layout conversion
 * (NCHW <-> NHWC is a batch of these): dst is (rows, cols) row-major with
 * leading dim ldd, and dst[i][j] = src[j * lds + i], i.e. src is the
 * (cols, rows) matrix with leading dim lds. 16x16 blocks in zmm registers
 * (unpack, shuffle, 128-bit lane shuffle); partial blocks use masked loads
 * and stores. 16-bit elements (bf16, f16) widen to 32-bit lanes for the
 * shuffles and narrow on the store. Needs AVX512F/BW/VL. */
#include "../../transpose.h"

#if KILN_X86
#include <immintrin.h>

static inline __mmask16 mask_of(int64_t r)
{
    return r >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << r) - 1u);
}

/* r[c] <- column c of the 16x16 block whose rows are r[0..15] */
static inline void tr16(__m512 r[16])
{
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int g = 0; g < 4; g++) { /* u[4g + m], lane k: column 4k + m of rows 4g..4g+3 */
        u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g + 0], t[4 * g + 2], 0x44);
        u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g + 0], t[4 * g + 2], 0xee);
        u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
        u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xee);
    }
    for (int m = 0; m < 4; m++) {
        __m512 v0 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0x88);
        __m512 v1 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0xdd);
        __m512 w0 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0x88);
        __m512 w1 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0xdd);
        r[m] = _mm512_shuffle_f32x4(v0, w0, 0x88);
        r[8 + m] = _mm512_shuffle_f32x4(v0, w0, 0xdd);
        r[4 + m] = _mm512_shuffle_f32x4(v1, w1, 0x88);
        r[12 + m] = _mm512_shuffle_f32x4(v1, w1, 0xdd);
    }
}

void kn__transpose32_avx512(const void *src, int64_t lds, void *dst, int64_t ldd, int64_t rows,
                            int64_t cols)
{
    const float *s = src;
    float *d = dst;
    /* j0 outer: 16 source rows are read along for the whole call (few
     * concurrent streams for the prefetcher); the caller keeps `rows` small */
    for (int64_t j0 = 0; j0 < cols; j0 += 16) {
        int64_t nj = cols - j0 < 16 ? cols - j0 : 16;
        __mmask16 mj = mask_of(nj);
        for (int64_t i0 = 0; i0 < rows; i0 += 16) {
            __mmask16 mi = mask_of(rows - i0);
            int64_t ni = rows - i0 < 16 ? rows - i0 : 16;
            __m512 r[16];
            for (int j = 0; j < 16; j++)
                r[j] = j < nj ? _mm512_maskz_loadu_ps(mi, s + (j0 + j) * lds + i0)
                              : _mm512_setzero_ps();
            tr16(r);
            for (int i = 0; i < ni; i++)
                _mm512_mask_storeu_ps(d + (i0 + i) * ldd + j0, mj, r[i]);
        }
    }
}

void kn__transpose16_avx512(const void *src, int64_t lds, void *dst, int64_t ldd, int64_t rows,
                            int64_t cols)
{
    const uint16_t *s = src;
    uint16_t *d = dst;
    /* j0 outer: 16 source rows are read along for the whole call (few
     * concurrent streams for the prefetcher); the caller keeps `rows` small */
    for (int64_t j0 = 0; j0 < cols; j0 += 16) {
        int64_t nj = cols - j0 < 16 ? cols - j0 : 16;
        __mmask16 mj = mask_of(nj);
        for (int64_t i0 = 0; i0 < rows; i0 += 16) {
            __mmask16 mi = mask_of(rows - i0);
            int64_t ni = rows - i0 < 16 ? rows - i0 : 16;
            __m512 r[16];
            for (int j = 0; j < 16; j++)
                r[j] = j < nj ? _mm512_castsi512_ps(_mm512_cvtepu16_epi32(
                                    _mm256_maskz_loadu_epi16(mi, s + (j0 + j) * lds + i0)))
                              : _mm512_setzero_ps();
            tr16(r);
            for (int i = 0; i < ni; i++)
                _mm256_mask_storeu_epi16(d + (i0 + i) * ldd + j0, mj,
                                         _mm512_cvtepi32_epi16(_mm512_castps_si512(r[i])));
        }
    }
}
#endif
