/* gemm_s8_vnni.c — the AVX512_VNNI tile kernel of the int8 GEMM: C rows
 * [i0, i1) × one 64-column panel of packed B (src/kernels/gemm_s8.h).
 * Micro-tile 6 rows × 64 columns = 24 zmm s32 accumulators; per k-quad, 4
 * zmm loads of B (16 columns × 4 k each) and one 4-byte broadcast of A per
 * row feed 24 vpdpbusd (u8·s8 products summed in fours into s32). The
 * epilogue adds the zero-point/bias compensation and requantizes with the
 * same f32 operations as kn__requant_store, so results equal the reference
 * bit for bit. A's rows hold k_pad bytes (the driver pads them when k % 4
 * != 0). Compiled with the avx512bf16 flags (-mavx512vnni included). */
#include "../../gemm_s8.h"

#if KILN_X86
#include <immintrin.h>

#define MR 6
#define NV 4 /* zmm per 64 columns */

static inline int32_t load4(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* 24 named accumulators, so the compiler keeps them in registers */
#define DP(r)                                                                                      \
    do {                                                                                           \
        if (mr > r) {                                                                              \
            __m512i av = _mm512_set1_epi32(AV(r));                                                 \
            c##r##0 = _mm512_dpbusd_epi32(c##r##0, av, b0);                                        \
            c##r##1 = _mm512_dpbusd_epi32(c##r##1, av, b1);                                        \
            c##r##2 = _mm512_dpbusd_epi32(c##r##2, av, b2);                                        \
            c##r##3 = _mm512_dpbusd_epi32(c##r##3, av, b3);                                        \
        }                                                                                          \
    } while (0)
#define ROW_ZERO(r) __m512i c##r##0 = z, c##r##1 = z, c##r##2 = z, c##r##3 = z
#define ROW_OUT(r)                                                                                 \
    do {                                                                                           \
        if (mr > r) {                                                                              \
            epi(e, i + r, c##r##0, 0);                                                             \
            epi(e, i + r, c##r##1, 1);                                                             \
            epi(e, i + r, c##r##2, 2);                                                             \
            epi(e, i + r, c##r##3, 3);                                                             \
        }                                                                                          \
    } while (0)

/* what the epilogue of one tile needs */
typedef struct tile_ctx {
    const kn_gemm_s8_b *pb;
    const int32_t *comp, *row_comp;
    const kn_requant *rq;
    void *c;
    int64_t ldc, j0;
} tile_ctx;

static inline __attribute__((always_inline)) void
store16(const kn_requant *rq, __m512i v, int64_t j, __mmask16 m, void *c, int64_t idx);

/* adds the compensation and requantizes 16 columns (vector v of the panel) of row i */
static inline __attribute__((always_inline)) void epi(const tile_ctx *e, int64_t i, __m512i x,
                                                      int v)
{
    int64_t j = e->j0 + 16 * v, left = e->pb->n - j;
    if (left <= 0) return;
    __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
    x = _mm512_add_epi32(x, _mm512_loadu_si512(e->comp + j)); /* comp has n_pad entries */
    if (e->row_comp) x = _mm512_add_epi32(x, _mm512_set1_epi32(e->row_comp[i]));
    store16(e->rq, x, j, m, e->c, i * e->ldc + j);
}

/* C rows i .. i+mr-1 of the panel whose packed B is bp */
static inline __attribute__((always_inline)) void micro(int mr, const uint8_t *a, int64_t lda,
                                                        const int8_t *bp, int64_t k,
                                                        const tile_ctx *e, int64_t i)
{
    __m512i z = _mm512_setzero_si512();
    ROW_ZERO(0);
    ROW_ZERO(1);
    ROW_ZERO(2);
    ROW_ZERO(3);
    ROW_ZERO(4);
    ROW_ZERO(5);
    int64_t kq = k / 4; /* the driver pads A rows to a multiple of 4 */
    const uint8_t *a0 = a, *a1 = a + lda, *a2 = a + 2 * lda, *a3 = a + 3 * lda, *a4 = a + 4 * lda,
                  *a5 = a + 5 * lda;
    (void)a1, (void)a2, (void)a3, (void)a4, (void)a5;
#define AV(r) load4(a##r + q * 4)
    for (int64_t q = 0; q < kq; q++) {
        const int8_t *bq = bp + q * 256;
        __m512i b0 = _mm512_loadu_si512(bq), b1 = _mm512_loadu_si512(bq + 64);
        __m512i b2 = _mm512_loadu_si512(bq + 128), b3 = _mm512_loadu_si512(bq + 192);
        DP(0);
        DP(1);
        DP(2);
        DP(3);
        DP(4);
        DP(5);
    }
#undef AV
    ROW_OUT(0);
    ROW_OUT(1);
    ROW_OUT(2);
    ROW_OUT(3);
    ROW_OUT(4);
    ROW_OUT(5);
}

/* requantizes 16 s32 values of row i, columns j .. j+15 (mask m) */
static inline __attribute__((always_inline)) void
store16(const kn_requant *rq, __m512i v, int64_t j, __mmask16 m, void *c, int64_t idx)
{
    if (rq->out == KN_I32) {
        _mm512_mask_storeu_epi32((int32_t *)c + idx, m, v);
        return;
    }
    __m512 s = rq->scale ? _mm512_maskz_loadu_ps(m, rq->scale + j) : _mm512_set1_ps(rq->scale_all);
    __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(v), s);
    if (rq->out == KN_F32) {
        _mm512_mask_storeu_ps((float *)c + idx, m, f);
        return;
    }
    float lo = rq->out == KN_I8 ? -128.0f : 0.0f, hi = rq->out == KN_I8 ? 127.0f : 255.0f;
    f = _mm512_max_ps(f, _mm512_set1_ps(lo - (float)rq->c_zero));
    f = _mm512_min_ps(f, _mm512_set1_ps(hi - (float)rq->c_zero));
    __m512i q =
        _mm512_add_epi32(_mm512_cvt_roundps_epi32(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                         _mm512_set1_epi32(rq->c_zero));
    _mm_mask_storeu_epi8((char *)c + idx, m, _mm512_cvtepi32_epi8(q));
}

static inline __attribute__((always_inline)) void
tile(int mr, int64_t i, const uint8_t *a, int64_t lda, const int8_t *bp, const tile_ctx *e)
{
    micro(mr, a + i * lda, lda, bp, e->pb->k_pad, e, i);
}

void kn__gemm_s8_tile_vnni(int64_t i0, int64_t i1, int64_t panel, const uint8_t *a, int64_t lda,
                           const kn_gemm_s8_b *pb, const int32_t *comp, const int32_t *row_comp,
                           const kn_requant *rq, void *c, int64_t ldc)
{
    tile_ctx e = {pb, comp, row_comp, rq, c, ldc, panel * KN_GEMM_S8_NR};
    const int8_t *bp = pb->data + panel * pb->k_pad * KN_GEMM_S8_NR;
    int64_t i = i0;
    for (; i + MR <= i1; i += MR)
        tile(MR, i, a, lda, bp, &e);
    switch (i1 - i) {
    case 5:
        tile(5, i, a, lda, bp, &e);
        break;
    case 4:
        tile(4, i, a, lda, bp, &e);
        break;
    case 3:
        tile(3, i, a, lda, bp, &e);
        break;
    case 2:
        tile(2, i, a, lda, bp, &e);
        break;
    case 1:
        tile(1, i, a, lda, bp, &e);
        break;
    default:
        break;
    }
}
#endif
