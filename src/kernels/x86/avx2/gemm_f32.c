/* gemm_f32.c — AVX2+FMA f32 GEMM micro-kernel: a 6×16 tile of C in 12 ymm
 * accumulators; per k step one packed B row (16 floats, two ymm) and six
 * broadcast A values (A panel [k][6], B panel [k][16], see ../../gemm.h).
 * Full 8-lane f32 stores with a plain or relu epilogue are vector; other
 * cases (tails, bf16 C, smooth activations) finish lane by lane. */
#include "../../gemm.h"

#if KILN_X86
#include <immintrin.h>

#define MR 6
#define NR 16
#define KN_INLINE static inline __attribute__((always_inline))

KN_INLINE void finish8(const kn_gemm_tile *t, int i, int j, __m256 y, int cnt)
{
    bool vec = cnt == 8 && t->last && t->c_dt == KN_F32 && !t->res &&
               (t->act == KN_ACT_NONE || t->act == KN_ACT_RELU);
    if (!vec) {
        float v[8];
        _mm256_storeu_ps(v, y);
        kn__gemm_finish_scalar(t, i, j, v, cnt);
        return;
    }
    float *c = (float *)t->c + i * t->ldc + j;
    if (!t->first) y = _mm256_add_ps(y, _mm256_loadu_ps(t->w + i * t->ldw + j));
    if (t->beta != 0) y = _mm256_add_ps(y, _mm256_mul_ps(_mm256_set1_ps(t->beta), _mm256_loadu_ps(c)));
    if (t->bias) y = _mm256_add_ps(y, _mm256_loadu_ps(t->bias + j));
    if (t->scale) y = _mm256_mul_ps(y, _mm256_loadu_ps(t->scale + j));
    if (t->shift) y = _mm256_add_ps(y, _mm256_loadu_ps(t->shift + j));
    if (t->act == KN_ACT_RELU) y = _mm256_max_ps(_mm256_setzero_ps(), y);
    _mm256_storeu_ps(c, y);
}

/* Named accumulators (arrays of vectors spill with gcc). */
#define REP6(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define DECL(i) __m256 c##i##0 = _mm256_setzero_ps(), c##i##1 = _mm256_setzero_ps();
#define STEP(i)                                                                                    \
    if (mr > i) {                                                                                  \
        __m256 a = _mm256_broadcast_ss(pa + i);                                                    \
        c##i##0 = _mm256_fmadd_ps(a, b0, c##i##0);                                                 \
        if (nv > 1) c##i##1 = _mm256_fmadd_ps(a, b1, c##i##1);                                     \
    }
#define FIN(i)                                                                                     \
    if (mr > i) {                                                                                  \
        finish8(t, i, 0, c##i##0, c0);                                                             \
        if (nv > 1) finish8(t, i, 8, c##i##1, c1);                                                 \
    }

KN_INLINE void tile(const int mr, const int nv, int64_t kc, const float *pa, const float *pb,
                    int nr, const kn_gemm_tile *t)
{
    REP6(DECL)
    for (int64_t p = 0; p < kc; p++) {
        __m256 b0 = _mm256_load_ps(pb), b1 = nv > 1 ? _mm256_load_ps(pb + 8) : b0;
        REP6(STEP)
        pa += MR, pb += NR;
    }
    int c0 = nr < 8 ? nr : 8, c1 = nr > 8 ? nr - 8 : 0;
    REP6(FIN)
}

#define CASE(r)                                                                                    \
    case r:                                                                                        \
        if (nr > 8)                                                                                \
            tile(r, 2, kc, a, b, nr, t);                                                           \
        else                                                                                       \
            tile(r, 1, kc, a, b, nr, t);                                                           \
        break;

void kn__gemm_f32_avx2_ukernel(int64_t kc, const void *pa, const void *pb, int mr, int nr,
                               const kn_gemm_tile *t)
{
    const float *a = pa, *b = pb;
    switch (mr) {
        CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6)
    default: break;
    }
}

#endif
