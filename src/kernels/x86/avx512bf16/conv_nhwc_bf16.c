/* conv_nhwc_bf16.c — AVX512_BF16 micro-kernel of the direct NHWC
 * convolution (driver in ../../conv_nhwc.c): up to 14 output pixels × 32
 * output channels in 28 zmm f32 accumulators, fed by vdpbf16ps. The input
 * is bf16 NHWC with an even channel count, so pixel i's channels (2q,
 * 2q+1) are one 32-bit pair broadcast from x + i*xs + toff[tap] + 2q; the
 * weights are packed per tap as [c_in/2][32][2]. Each output element is
 * the f32 sum over taps then channel pairs ascending, then the GEMM
 * epilogue, whatever the tiling or thread split. */
#include "../avx512/gemm_avx512.h"

#include "../../conv_nhwc.h"

#if KILN_X86

#define MR KN_CONV_NHWC_MR
#define NR KN_CONV_NHWC_NR

#define STEP(i)                                                                                    \
    if (mr > i) {                                                                                  \
        int32_t pair;                                                                              \
        memcpy(&pair, ap + i * xs, sizeof pair);                                                   \
        __m512bh a = (__m512bh)_mm512_set1_epi32(pair);                                            \
        c##i##0 = _mm512_dpbf16_ps(c##i##0, a, b0);                                                \
        if (nv > 1) c##i##1 = _mm512_dpbf16_ps(c##i##1, a, b1);                                    \
    }

KN_INLINE void tile(const int mr, const int nv, const uint16_t *x, int64_t xs,
                    const int64_t *toff, int ntaps, int64_t cin, const uint16_t *w, const char *pf,
                    int nr, const kn_gemm_tile *t)
{
    KN512_REP14(KN512_DECL)
    const uint16_t *pb = w;
    int64_t pairs = cin / 2;
    for (int tap = 0; tap < ntaps; tap++) {
        const uint16_t *ap = x + toff[tap];
#pragma GCC unroll 4
        for (int64_t q = 0; q < pairs; q++, ap += 2, pb += 2 * NR) {
            if (pf) { /* the next block's weights, at this one's pace */
                _mm_prefetch(pf, _MM_HINT_T1);
                _mm_prefetch(pf + 64, _MM_HINT_T1);
                pf += 2 * NR * sizeof *pb;
            }
            __m512bh b0 = (__m512bh)_mm512_load_si512(pb);
            __m512bh b1 = nv > 1 ? (__m512bh)_mm512_load_si512(pb + 32) : b0;
            KN512_REP14(STEP)
        }
    }
    if (t->act == KN_ACT_NONE || t->act == KN_ACT_RELU || t->act == KN_ACT_RELU6) {
        __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
        __mmask16 m1 = nr >= 32 ? 0xffff : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
        KN512_REP14(KN512_PUT)
        return;
    }
    /* smooth activations call functions: leave the registers first */
    __attribute__((aligned(64))) float acc[MR * NR];
    KN512_REP14(KN512_FIN)
    kn512_finish_tile(t, acc, NR, mr, nr);
}

#define CASE(r)                                                                                    \
    case r:                                                                                        \
        if (nr > 16)                                                                               \
            tile(r, 2, x, xs, toff, ntaps, cin, w, pf, nr, t);                                         \
        else                                                                                       \
            tile(r, 1, x, xs, toff, ntaps, cin, w, pf, nr, t);                                         \
        break;

void kn__conv_nhwc_bf16_avx512bf16(const uint16_t *x, int64_t xs, const int64_t *toff, int ntaps,
                                   int64_t cin, const uint16_t *w, const void *pf, int mr, int nr,
                                   const kn_gemm_tile *t)
{
    switch (mr) {
        CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7)
        CASE(8) CASE(9) CASE(10) CASE(11) CASE(12) CASE(13) CASE(14)
    default: break;
    }
}

#endif
