/* gemm_bf16.c — AVX512_BF16 GEMM micro-kernel: a 14×32 tile of C in 28 zmm
 * f32 accumulators, fed by vdpbf16ps over pairs of k. Packed A holds, per k
 * pair, 14 (a[i][2q], a[i][2q+1]) bf16 pairs; packed B, per k pair, 32
 * columns of (b[2q][j], b[2q+1][j]) pairs (see ../../gemm.h). C is f32 or
 * bf16, written through the shared AVX-512 epilogue. */
#include "../avx512/gemm_avx512.h"

#if KILN_X86

#define MR 14
#define NR 32

/* Per row i of the named accumulators (KN512_* in gemm_avx512.h). */
#define STEP(i)                                                                                    \
    if (mr > i) {                                                                                  \
        int32_t pair;                                                                              \
        memcpy(&pair, pa + 2 * i, sizeof pair);                                                    \
        __m512bh a = (__m512bh)_mm512_set1_epi32(pair);                                            \
        c##i##0 = _mm512_dpbf16_ps(c##i##0, a, b0);                                                \
        if (nv > 1) c##i##1 = _mm512_dpbf16_ps(c##i##1, a, b1);                                    \
    }

/* Plain f32 result or a partial k block: y (+ w of the earlier blocks, or
 * wbeta*w when w is C itself), stored to dst (C, or w for a partial). */
#define ACC(i)                                                                                     \
    if (mr > i) {                                                                                  \
        if (!t->first) {                                                                           \
            const float *wr = t->w + i * t->ldw;                                                                           \
            c##i##0 = _mm512_add_ps(c##i##0, _mm512_maskz_loadu_ps(m0, wr));                       \
            if (nv > 1) c##i##1 = _mm512_add_ps(c##i##1, _mm512_maskz_loadu_ps(m1, wr + 16));      \
        } else if (wb) {                                                                           \
            const float *wr = t->w + i * t->ldw;                                                   \
            c##i##0 = _mm512_fmadd_ps(wbv, _mm512_maskz_loadu_ps(m0, wr), c##i##0);                \
            if (nv > 1) c##i##1 = _mm512_fmadd_ps(wbv, _mm512_maskz_loadu_ps(m1, wr + 16), c##i##1); \
        }                                                                                          \
        _mm512_mask_storeu_ps(dst + i * ldd, m0, c##i##0);                                         \
        if (nv > 1) _mm512_mask_storeu_ps(dst + i * ldd + 16, m1, c##i##1);                        \
    }

KN_INLINE void tile(const int mr, const int nv, int64_t kc, const uint16_t *pa,
                    const uint16_t *pb, int nr, const kn_gemm_tile *t)
{
    __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? 0xffff : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
    KN512_REP14(KN512_DECL)
    int64_t steps = (kc + 1) / 2;
    for (int64_t q = 0; q < steps; q++) {
        __m512bh b0 = (__m512bh)_mm512_load_si512(pb);
        __m512bh b1 = nv > 1 ? (__m512bh)_mm512_load_si512(pb + 32) : b0;
        KN512_REP14(STEP)
        pa += 2 * MR, pb += 2 * NR;
    }
    if (!t->last || (t->c_dt == KN_F32 && t->beta == 0 && !t->bias && !t->scale && !t->shift &&
                     !t->res && t->act == KN_ACT_NONE)) { /* plain C = A·B, or a partial block */
        float *dst = t->last ? (float *)t->c : t->w;
        int64_t ldd = t->last ? t->ldc : t->ldw;
        bool wb = t->wbeta != 0;
        __m512 wbv = _mm512_set1_ps(t->wbeta);
        KN512_REP14(ACC)
        return;
    }
    /* The epilogue may call functions: leave the registers first. */
    __attribute__((aligned(64))) float acc[MR * NR];
    KN512_REP14(KN512_FIN)
    kn512_finish_tile(t, acc, NR, mr, nr);
}

#define CASE(r)                                                                                    \
    case r:                                                                                        \
        if (nr > 16)                                                                               \
            tile(r, 2, kc, a, b, nr, t);                                                           \
        else                                                                                       \
            tile(r, 1, kc, a, b, nr, t);                                                           \
        break;

void kn__gemm_bf16_avx512bf16_ukernel(int64_t kc, const void *pa, const void *pb, int mr, int nr,
                                      const kn_gemm_tile *t)
{
    const uint16_t *a = pa, *b = pb;
    switch (mr) {
        CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7)
        CASE(8) CASE(9) CASE(10) CASE(11) CASE(12) CASE(13) CASE(14)
    default: break;
    }
}

#endif
