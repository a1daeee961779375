/* conv_nhwc.c — AVX-512 f32 micro-kernel of the direct NHWC convolution
 * (driver and weight layout in ../../conv_nhwc.c): a tile of up to 14
 * output pixels × 32 output channels in 28 zmm accumulators. The pixels'
 * input values are broadcast straight from the (padded) NHWC input — pixel
 * i of the tile reads x + i*xs + toff[tap] + c — and the weights come
 * packed per tap as [c_in][32] rows, so one k step is two weight vectors
 * and up to 14 broadcasts. Every output element is acc = 0, += x·w over
 * taps then input channels ascending, then the GEMM epilogue: the same
 * sequence whatever the tiling or thread split. */
#include "gemm_avx512.h"

#include "../../conv_nhwc.h"

#if KILN_X86

#define MR KN_CONV_NHWC_MR
#define NR KN_CONV_NHWC_NR

/* Per row i of the named accumulators (KN512_* in gemm_avx512.h); rows
 * 0-6 read from ap, 7-13 from ap + 7*xs: seven row offsets in registers */
#define STEP(i)                                                                                    \
    if (mr > i) {                                                                                  \
        __m512 a = _mm512_set1_ps(i < 7 ? ap[i * xs] : ap7[(i - 7) * xs]);                         \
        c##i##0 = _mm512_fmadd_ps(a, b0, c##i##0);                                                 \
        if (nv > 1) c##i##1 = _mm512_fmadd_ps(a, b1, c##i##1);                                     \
    }
#define PLAIN(i)                                                                                   \
    if (mr > i) {                                                                                  \
        _mm512_mask_storeu_ps(y + i * t->ldc, m0, c##i##0);                                        \
        if (nv > 1) _mm512_mask_storeu_ps(y + i * t->ldc + 16, m1, c##i##1);                       \
    }

KN_INLINE void tile(const int mr, const int nv, const float *x, int64_t xs, const int64_t *toff,
                    int ntaps, int64_t cin, const float *w, const char *pf, int nr,
                    const kn_gemm_tile *t)
{
    __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? 0xffff : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
    KN512_REP14(KN512_DECL)
    const float *pb = w;
    for (int tap = 0; tap < ntaps; tap++) {
        const float *ap = x + toff[tap], *ap7 = ap + 7 * xs;
#pragma GCC unroll 4
        for (int64_t c = 0; c < cin; c++, ap++, ap7++, pb += NR) {
            if (pf) { /* the next block's weights, at this one's pace */
                _mm_prefetch(pf, _MM_HINT_T1);
                _mm_prefetch(pf + 64, _MM_HINT_T1);
                pf += NR * sizeof *pb;
            }
            __m512 b0 = _mm512_load_ps(pb), b1 = nv > 1 ? _mm512_load_ps(pb + 16) : b0;
            KN512_REP14(STEP)
        }
    }
    if (t->c_dt == KN_F32 && !t->bias && !t->scale && !t->shift && !t->res &&
        t->act == KN_ACT_NONE) {
        float *y = t->c;
        KN512_REP14(PLAIN)
        return;
    }
    if (t->act == KN_ACT_NONE || t->act == KN_ACT_RELU || t->act == KN_ACT_RELU6) {
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

void kn__conv_nhwc_f32_avx512(const float *x, int64_t xs, const int64_t *toff, int ntaps,
                              int64_t cin, const float *w, const void *pf, int mr, int nr,
                              const kn_gemm_tile *t)
{
    switch (mr) {
        CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7)
        CASE(8) CASE(9) CASE(10) CASE(11) CASE(12) CASE(13) CASE(14)
    default: break;
    }
}

#endif
