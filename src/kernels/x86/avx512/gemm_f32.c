/* gemm_f32.c — AVX-512 f32 GEMM micro-kernel: a 14×32 tile of C held in 28
 * zmm accumulators. Per k step it loads one packed B row (32 floats, two
 * zmm) and broadcasts 14 packed A values (layout in ../../gemm.h: A panel
 * [k][14], B panel [k][32]). Tails: mr < 14 by a smaller instantiation,
 * nr < 32 by masks (packed B is zero-padded). */
#include "gemm_avx512.h"

#if KILN_X86

#define MR 14
#define NR 32

/* Per row i of the named accumulators (KN512_* in gemm_avx512.h). */
#define STEP(i)                                                                                    \
    if (mr > i) {                                                                                  \
        __m512 a = _mm512_set1_ps(pa[i]);                                                          \
        c##i##0 = _mm512_fmadd_ps(a, b0, c##i##0);                                                 \
        if (nv > 1) c##i##1 = _mm512_fmadd_ps(a, b1, c##i##1);                                     \
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

KN_INLINE void tile(const int mr, const int nv, int64_t kc, const float *pa, const float *pb,
                    int nr, const kn_gemm_tile *t)
{
    __mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? 0xffff : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
    KN512_REP14(KN512_DECL)
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) {
        _mm_prefetch((const char *)(pb + 8 * NR), _MM_HINT_T0);
        __m512 b0 = _mm512_load_ps(pb), b1 = nv > 1 ? _mm512_load_ps(pb + 16) : b0;
        KN512_REP14(STEP)
        pa += MR, pb += NR;
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

void kn__gemm_f32_avx512_ukernel(int64_t kc, const void *pa, const void *pb, int mr, int nr,
                                 const kn_gemm_tile *t)
{
    const float *a = pa, *b = pb;
    switch (mr) {
        CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7)
        CASE(8) CASE(9) CASE(10) CASE(11) CASE(12) CASE(13) CASE(14)
    default: break;
    }
}

#endif
