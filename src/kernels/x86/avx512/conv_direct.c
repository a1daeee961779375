/* conv_direct.c — AVX-512 f32 "no-pack" product for NCHW convolution:
 * y (M × P, row stride ldy) = W (M × K, row stride ldw) · B (K × P, row
 * stride ldb), all f32 row-major, where W is the weights (C_out, C_in·taps)
 * and B the input planes of a 1×1 convolution or an im2col tile (one row
 * per (c_in, tap), P output positions). Nothing is packed: the weights are
 * broadcast from memory one scalar at a time, B rows are loaded as vectors
 * (16 positions, the P tail masked). Register block: 6 rows × 4 vectors
 * (24 zmm accumulators). K is walked in blocks of KC with the partial sums
 * kept in y, so each output element is acc = 0; acc += w·b over k ascending
 * (f32 FMA), then the per-row epilogue on the last block — one fixed
 * sequence whatever the tile or thread split. */
#include "../../conv_fast.h"

#if KILN_X86
#include <immintrin.h>

#define KC 128

static inline __m512 ld_res(const void *p, kn_dtype dt, __mmask16 m)
{
    if (dt == KN_F32) return _mm512_maskz_loadu_ps(m, p);
    __m256i h = _mm256_maskz_loadu_epi16(m, p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* Stores row r (V vectors, the last masked by tm), with the epilogue when
 * e is given (the last k block). */
static inline __attribute__((always_inline)) void
st_row(const int V, float *yr, __mmask16 tm, const kn_np_epi *e, int64_t row, int64_t col0,
       __m512 a0, __m512 a1, __m512 a2, __m512 a3)
{
    __m512 a[4] = {a0, a1, a2, a3};
    __m512 bias = _mm512_set1_ps(0.0f), sc = bias, sh = bias;
    if (e) {
        bias = _mm512_set1_ps(e->bias ? e->bias[row] : 0.0f);
        sc = _mm512_set1_ps(e->scale ? e->scale[row] : 1.0f);
        sh = _mm512_set1_ps(e->shift ? e->shift[row] : 0.0f);
    }
    for (int v = 0; v < V; v++) {
        __mmask16 m = v == V - 1 ? tm : 0xffff;
        __m512 x = a[v];
        if (e) {
            x = _mm512_add_ps(x, bias);
            if (e->scale || e->shift) x = _mm512_add_ps(_mm512_mul_ps(x, sc), sh);
            if (e->res) {
                size_t es = e->res_dt == KN_F32 ? 4 : 2;
                const char *rp = (const char *)e->res + (size_t)(row * e->ldr + col0 + v * 16) * es;
                x = _mm512_add_ps(x, ld_res(rp, e->res_dt, m));
            }
            if (e->act == KN_ACT_RELU)
                x = _mm512_max_ps(x, _mm512_setzero_ps());
            else if (e->act == KN_ACT_RELU6)
                x = _mm512_min_ps(_mm512_max_ps(x, _mm512_setzero_ps()), _mm512_set1_ps(6.0f));
        }
        _mm512_mask_storeu_ps(yr + v * 16, m, x);
    }
}

/* R rows × V vectors, kc steps; the last vector is masked by tm. Named
 * accumulators (not an array) so that they stay in registers. */
static inline __attribute__((always_inline)) void
mk(const int R, const int V, int64_t kc, const float *w, int64_t ldw, const float *b, int64_t ldb,
   float *y, int64_t ldy, __mmask16 tm, bool first, bool last, const kn_np_epi *e, int64_t row0,
   int64_t col0)
{
    const __m512 z = _mm512_setzero_ps();
#define NP_DECL(r) __m512 c##r##0 = z, c##r##1 = z, c##r##2 = z, c##r##3 = z;
    NP_DECL(0) NP_DECL(1) NP_DECL(2) NP_DECL(3) NP_DECL(4) NP_DECL(5)
#define NP_LD1(r, v)                                                                           \
    if (V > v) c##r##v = _mm512_maskz_loadu_ps(V - 1 == v ? tm : 0xffff, y + r * ldy + v * 16);
#define NP_LD(r)                                                                               \
    if (R > r) {                                                                               \
        NP_LD1(r, 0) NP_LD1(r, 1) NP_LD1(r, 2) NP_LD1(r, 3)                                    \
    }
    if (!first) {
        NP_LD(0) NP_LD(1) NP_LD(2) NP_LD(3) NP_LD(4) NP_LD(5)
    }
    const float *bp = b, *wp = w;
    for (int64_t p = 0; p < kc; p++, bp += ldb, wp++) {
        __m512 b0 = z, b1 = z, b2 = z, b3 = z;
#define NP_LDB(v)                                                                              \
    if (V > v)                                                                                 \
        b##v = V - 1 == v ? _mm512_maskz_loadu_ps(tm, bp + v * 16) : _mm512_loadu_ps(bp + v * 16);
        NP_LDB(0) NP_LDB(1) NP_LDB(2) NP_LDB(3)
#define NP_FMA(r)                                                                              \
    if (R > r) {                                                                               \
        __m512 wr = _mm512_set1_ps(wp[r * ldw]);                                               \
        c##r##0 = _mm512_fmadd_ps(wr, b0, c##r##0);                                            \
        if (V > 1) c##r##1 = _mm512_fmadd_ps(wr, b1, c##r##1);                                 \
        if (V > 2) c##r##2 = _mm512_fmadd_ps(wr, b2, c##r##2);                                 \
        if (V > 3) c##r##3 = _mm512_fmadd_ps(wr, b3, c##r##3);                                 \
    }
        NP_FMA(0) NP_FMA(1) NP_FMA(2) NP_FMA(3) NP_FMA(4) NP_FMA(5)
    }
    const kn_np_epi *ep = last ? e : NULL;
#define NP_ST(r)                                                                               \
    if (R > r) st_row(V, y + r * ldy, tm, ep, row0 + r, col0, c##r##0, c##r##1, c##r##2, c##r##3);
    NP_ST(0) NP_ST(1) NP_ST(2) NP_ST(3) NP_ST(4) NP_ST(5)
#undef NP_DECL
#undef NP_LD1
#undef NP_LD
#undef NP_LDB
#undef NP_FMA
#undef NP_ST
}

#define MK_V(R)                                                                                \
    switch (V) {                                                                               \
    case 1: mk(R, 1, kc, w, ldw, b, ldb, y, ldy, tm, first, last, e, row0, col0); break;      \
    case 2: mk(R, 2, kc, w, ldw, b, ldb, y, ldy, tm, first, last, e, row0, col0); break;      \
    case 3: mk(R, 3, kc, w, ldw, b, ldb, y, ldy, tm, first, last, e, row0, col0); break;      \
    default: mk(R, 4, kc, w, ldw, b, ldb, y, ldy, tm, first, last, e, row0, col0); break;     \
    }

static void mk_any(int R, int V, int64_t kc, const float *w, int64_t ldw, const float *b,
                   int64_t ldb, float *y, int64_t ldy, __mmask16 tm, bool first, bool last,
                   const kn_np_epi *e, int64_t row0, int64_t col0)
{
    switch (R) {
    case 1: MK_V(1); break;
    case 2: MK_V(2); break;
    case 3: MK_V(3); break;
    case 4: MK_V(4); break;
    case 5: MK_V(5); break;
    default: MK_V(6); break;
    }
}

void kn__conv_np_f32_avx512(int64_t k, const float *w, int64_t ldw, const float *b, int64_t ldb,
                            float *y, int64_t ldy, int64_t m0, int64_t m1, int64_t p0, int64_t p1,
                            const kn_np_epi *e)
{
    int64_t np = p1 - p0;
    int V = (int)((np + 15) / 16);
    int tail = (int)(np - (int64_t)(V - 1) * 16);
    __mmask16 tm = (__mmask16)(tail >= 16 ? 0xffff : (1u << tail) - 1);
    for (int64_t k0 = 0; k0 < k; k0 += KC) {
        int64_t kc = k - k0 < KC ? k - k0 : KC;
        bool first = k0 == 0, last = k0 + kc == k;
        for (int64_t r0 = m0; r0 < m1; r0 += 6) {
            int R = (int)(m1 - r0 < 6 ? m1 - r0 : 6);
            mk_any(R, V, kc, w + r0 * ldw + k0, ldw, b + k0 * ldb + p0, ldb, y + r0 * ldy + p0,
                   ldy, tm, first, last, e, r0, p0);
        }
    }
}
#endif
