/* gemm_act_avx512.c — activations on 16 f32 lanes for the GEMM/conv
 * epilogue (vmath.h). relu/relu6 are exact. The reference
 * (kn__act_ref) computes the smooth ones in double, and the test holds the
 * fast path within 4 f32 ulps of it: gelu and gelu_tanh therefore run in
 * f64 lanes (about 1 ulp; their f32 kernels reach 6 ulps, and gelu_tanh's
 * f32 u = k (x + c x^3) loses far more for x < -3), sigmoid, silu and tanh
 * use the f32 kernels (within 2.4 ulps). Every lane is independent, so a
 * masked tail column gives the bits of a full vector. */
#include "gemm_avx512.h"

#if KILN_X86
#include "vmath.h"

__m512 kn__act_avx512(kn_act act, __m512 y)
{
    switch (act) {
    case KN_ACT_NONE:
        return y;
    case KN_ACT_RELU:
        return _mm512_max_ps(_mm512_setzero_ps(), y); /* NaN stays */
    case KN_ACT_RELU6:
        return _mm512_min_ps(_mm512_set1_ps(6.0f), _mm512_max_ps(_mm512_setzero_ps(), y));
    case KN_ACT_GELU:
        return kn512_gelu_f64(y);
    case KN_ACT_GELU_TANH:
        return kn512_gelu_tanh_f64(y);
    case KN_ACT_SILU:
        return kn512_silu(y);
    case KN_ACT_SIGMOID:
        return kn512_sigmoid(y);
    case KN_ACT_TANH:
        return kn512_tanh(y);
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
