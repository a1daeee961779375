/* gemm_act_avx512.c — activations on 16 f32 lanes for the GEMM/conv
 * epilogue. relu/relu6 are exact; the smooth ones go through the libm
 * reference lane by lane until vector versions land. */
#include "gemm_avx512.h"

#if KILN_X86

__m512 kn__act_avx512(kn_act act, __m512 y)
{
    switch (act) {
    case KN_ACT_NONE: return y;
    case KN_ACT_RELU: return _mm512_max_ps(_mm512_setzero_ps(), y); /* NaN stays */
    case KN_ACT_RELU6:
        return _mm512_min_ps(_mm512_set1_ps(6.0f), _mm512_max_ps(_mm512_setzero_ps(), y));
    default: {
        float v[16];
        _mm512_storeu_ps(v, y);
        for (int l = 0; l < 16; l++)
            v[l] = kn__act_ref(act, v[l]);
        return _mm512_loadu_ps(v);
    }
    }
}

#endif
