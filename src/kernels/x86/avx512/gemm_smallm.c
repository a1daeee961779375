/* gemm_smallm.c — AVX-512 small-m GEMM (m <= 4 rows of C, e.g. one token
 * through a linear layer) straight from the caller's B, without packing.
 * A is given as m contiguous f32 rows of length k (the driver copies and,
 * for bf16 compute, rounds it). B is f32 or bf16, row-major k×n (b_trans
 * false: C rows are axpy sums over the B rows) or n×k (b_trans true: each C
 * element is a dot product along k, reduced by a fixed tree). round_b rounds
 * f32 B elements to bf16 on load (bf16 compute). Columns [j0, j1) of C are
 * produced; each C element's arithmetic depends only on k, never on j0/j1. */
#include "gemm_avx512.h"

#if KILN_X86

#define NB 64 /* columns per block */

/* f32 → nearest bf16 value, kept as f32. */
KN_INLINE __m512 round_bf16(__m512 x)
{
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(kn512_to_bf16(x)), 16));
}

/* acc[i][0..nb) for one block of nb <= NB columns starting at column jb. m
 * is a constant in each instantiation; unused vectors run masked to zero. */
KN_INLINE void block(const int m, int64_t k, const float *a, const char *bb, bool b_bf16,
                     bool b_trans, bool round_b, int64_t ldb, int64_t jb, int nb, float *acc)
{
    size_t bes = b_bf16 ? 2 : 4;
    kn_dtype bdt = b_bf16 ? KN_BF16 : KN_F32;
    __m512 c[4][4];
    for (int i = 0; i < 4; i++)
        for (int v = 0; v < 4; v++) c[i][v] = _mm512_setzero_ps();
    if (!b_trans) {
        __mmask16 mk[4];
        for (int v = 0; v < 4; v++) {
            int cnt = nb - 16 * v;
            mk[v] = cnt >= 16 ? 0xffff : cnt > 0 ? (__mmask16)((1u << cnt) - 1) : 0;
        }
        for (int64_t p = 0; p < k; p++) {
            const char *row = bb + (size_t)(p * ldb + jb) * bes;
            __m512 bv[4];
            for (int v = 0; v < 4; v++) {
                bv[v] = kn512_load(bdt, row + (mk[v] ? 16 * v * bes : 0), mk[v]);
                if (round_b) bv[v] = round_bf16(bv[v]);
            }
            for (int i = 0; i < m; i++) {
                __m512 av = _mm512_set1_ps(a[i * k + p]);
                for (int v = 0; v < 4; v++) c[i][v] = _mm512_fmadd_ps(av, bv[v], c[i][v]);
            }
        }
        for (int i = 0; i < m; i++)
            for (int v = 0; v < 4; v++) _mm512_store_ps(acc + i * NB + 16 * v, c[i][v]);
        return;
    }
    __mmask16 km = (__mmask16)((k & 15) ? (1u << (k & 15)) - 1 : 0xffff);
    int64_t kfull = k & ~(int64_t)15;
    for (int j = 0; j < nb; j += 4) {
        for (int i = 0; i < 4; i++)
            for (int v = 0; v < 4; v++) c[i][v] = _mm512_setzero_ps();
        int nj = nb - j < 4 ? nb - j : 4;
        for (int64_t p = 0; p < k; p += 16) {
            __mmask16 mk = p < kfull ? 0xffff : km;
            __m512 bv[4];
            for (int v = 0; v < 4; v++) {
                int row = v < nj ? j + v : j; /* unused lanes: a valid row, masked off */
                bv[v] = kn512_load(bdt, bb + (size_t)((jb + row) * ldb + p) * bes,
                                   v < nj ? mk : 0);
                if (round_b) bv[v] = round_bf16(bv[v]);
            }
            for (int i = 0; i < m; i++) {
                __m512 av = _mm512_maskz_loadu_ps(mk, a + i * k + p);
                for (int v = 0; v < 4; v++) c[i][v] = _mm512_fmadd_ps(av, bv[v], c[i][v]);
            }
        }
        for (int i = 0; i < m; i++)
            for (int v = 0; v < nj; v++) acc[i * NB + j + v] = _mm512_reduce_add_ps(c[i][v]);
    }
}

void kn__gemm_smallm_avx512(int m, int64_t k, const float *a, const void *b, bool b_bf16,
                            bool b_trans, bool round_b, int64_t ldb, int64_t j0, int64_t j1,
                            const kn_gemm_tile *t0)
{
    __attribute__((aligned(64))) float acc[4 * NB];
    for (int64_t jb = j0; jb < j1; jb += NB) {
        int nb = (int)(j1 - jb < NB ? j1 - jb : NB);
        switch (m) {
        case 1: block(1, k, a, b, b_bf16, b_trans, round_b, ldb, jb, nb, acc); break;
        case 2: block(2, k, a, b, b_bf16, b_trans, round_b, ldb, jb, nb, acc); break;
        case 3: block(3, k, a, b, b_bf16, b_trans, round_b, ldb, jb, nb, acc); break;
        default: block(4, k, a, b, b_bf16, b_trans, round_b, ldb, jb, nb, acc); break;
        }
        kn_gemm_tile t = *t0;
        size_t ces = t.c_dt == KN_BF16 ? 2 : 4;
        t.c = (char *)t.c + (size_t)jb * ces;
        if (t.bias) t.bias += jb;
        if (t.scale) t.scale += jb;
        if (t.shift) t.shift += jb;
        if (t.res) t.res = (const char *)t.res + (size_t)jb * (t.res_dt == KN_BF16 ? 2 : 4);
        kn512_finish_tile(&t, acc, NB, m, nb);
    }
}

#endif
