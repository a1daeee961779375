/* linear_fused.c — linear_fused: y = act(x · wᵀ + bias + residual), one GEMM
 * whose epilogue adds the bias and residual and applies the activation while
 * storing. Built by the graph's fusion pass for inference; no gradient.
 * Inputs: x (..., in), w (out, in), bias (out, optional), residual (y's
 * shape, optional). */
#include "op.h"

#include "../kernels/gemm.h"

#include <stdio.h>

typedef struct linear_fused_attrs {
    int64_t act; /* kn_act */
} linear_fused_attrs;

static const kn_attr_desc linear_fused_schema[] = {KN_ATTR(linear_fused_attrs, act, KN_ATTR_INT)};

static kn_status linear_fused_infer(const kn_op_args *a, kn_out_meta *out)
{
    const linear_fused_attrs *at = a->attrs;
    if (at->act < KN_ACT_NONE || at->act >= KN_ACT_COUNT)
        return kn__error(KN_ERR_ARG, "linear_fused: act %lld is not a kn_act", (long long)at->act);
    kn_tensor *in[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++)
        if (a->in[i] && !(in[i] = kn_tensor_symbolic(a->in[i]->dtype, a->in[i]->ndim, a->in[i]->shape)))
            return kn_last_status();
    kn_tensor *y = kn_linear(in[0], in[1], in[2]); /* linear's own checks */
    for (int i = 0; i < 3; i++)
        kn_tensor_unref(in[i]);
    if (!y) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", kn_last_error());
        return kn__error(kn_last_status(), "linear_fused: %s", msg);
    }
    const kn_tensor *res = a->in[3];
    kn_status s = KN_OK;
    if (res && (res->ndim != y->ndim || memcmp(res->shape, y->shape, sizeof(int64_t) * (size_t)y->ndim)))
        s = kn__error(KN_ERR_SHAPE, "linear_fused: the residual's shape differs from the output's");
    out->dtype = y->dtype;
    out->ndim = y->ndim;
    memcpy(out->shape, y->shape, sizeof(int64_t) * (size_t)y->ndim);
    kn_tensor_unref(y);
    return s;
}

/* x rows must be one matrix (M, in) with unit column stride. */
static bool rows_uniform(const kn_tensor *x, int64_t *lda)
{
    int nd = x->ndim;
    if (nd < 1 || (x->shape[nd - 1] > 1 && x->strides[nd - 1] != 1)) return false;
    int64_t ld = nd >= 2 ? x->strides[nd - 2] : x->shape[nd - 1], expect = ld;
    for (int d = nd - 2; d >= 0; d--) {
        if (x->shape[d] > 1 && x->strides[d] != expect) return false;
        expect *= x->shape[d];
    }
    *lda = ld < x->shape[nd - 1] ? x->shape[nd - 1] : ld;
    return true;
}

static bool gemm_dtype(kn_dtype dt) { return dt == KN_F32 || dt == KN_BF16; }

static bool fused_accepts(const kn_op_args *a)
{
    int64_t lda;
    const kn_tensor *x = a->in[0], *w = a->in[1], *res = a->in[3];
    return gemm_dtype(x->dtype) && w->dtype == x->dtype && rows_uniform(x, &lda) &&
           w->strides[1] == 1 && (!res || (gemm_dtype(res->dtype) && kn_tensor_is_contiguous(res)));
}

static kn_status fused_gemm(const kn_op_args *a)
{
    const linear_fused_attrs *at = a->attrs;
    kn_tensor *x = a->in[0], *w = a->in[1], *y = a->out[0];
    int64_t lda = 0, in = w->shape[1], out = w->shape[0], m = in ? kn_tensor_numel(x) / in : 0;
    rows_uniform(x, &lda);
    kn_tensor *bias = NULL;
    if (a->in[2] && !(bias = a->in[2]->dtype == KN_F32 && kn_tensor_is_contiguous(a->in[2])
                                 ? kn_tensor_ref(a->in[2])
                                 : kn_cast(a->in[2], KN_F32)))
        return kn_last_status();
    kn_epilogue ep = {.bias = bias ? (const float *)kn__tensor_ptr(bias) : NULL, .act = (kn_act)at->act};
    if (a->in[3]) {
        ep.residual = kn__tensor_ptr(a->in[3]);
        ep.residual_dtype = a->in[3]->dtype;
        ep.ldr = out;
    }
    kn_dtype compute = x->dtype == KN_BF16 ? KN_BF16 : KN_F32;
    const kn_gemm_packed *pb = m > 4 ? a->prepacked : NULL; /* m <= 4: the small-m path */
    kn_status s = KN_OK;
    if (m > 0 && pb)
        s = kn__gemm_packed(compute, false, true, m, out, in, kn__tensor_ptr(x), x->dtype, lda, NULL,
                            NULL, w->dtype, 0, pb, 0.0f, kn__tensor_ptr(y), y->dtype, out, &ep);
    else if (m > 0)
        s = kn__gemm(compute, false, true, m, out, in, kn__tensor_ptr(x), x->dtype, lda,
                     kn__tensor_ptr(w), w->dtype, w->strides[0], 0.0f, kn__tensor_ptr(y), y->dtype,
                     out, &ep);
    kn_tensor_unref(bias);
    return s;
}

/* def->prepack: the weight packed as the GEMM's B operand (x · wᵀ). */
static void *fused_prepack(const kn_op_args *a)
{
    const kn_tensor *x = a->in[0], *w = a->in[1];
    int64_t in = w->ndim == 2 ? w->shape[1] : 0, m = in ? kn_tensor_numel(x) / in : 0;
    if (kn_isa_max() < KN_ISA_AVX2 || !fused_accepts(a) || m <= 4) return NULL;
    kn_dtype compute = x->dtype == KN_BF16 ? KN_BF16 : KN_F32;
    kn_gemm_packed *pb = NULL;
    if (kn__gemm_pack_b(&pb, compute, true, in, w->shape[0], kn__tensor_ptr(w), w->dtype,
                        w->strides[0]))
        return NULL;
    return pb;
}

static void fused_prepack_free(void *p) { kn__gemm_packed_free(p); }

/* The reference twin: linear, add and the activation as separate ops. */
static kn_status fused_ref(const kn_op_args *a)
{
    const linear_fused_attrs *at = a->attrs;
    kn_scratch s = {0};
    kn_tensor *y = kn__keep(&s, kn_linear(a->in[0], a->in[1], a->in[2]));
    if (y && a->in[3]) y = kn__keep(&s, kn_add(y, a->in[3]));
    if (y) y = kn__keep(&s, kn__activate(y, at->act));
    kn_status st = y ? kn__copy_into(a->out[0], y) : kn_last_status();
    kn__scratch_free(&s);
    return st;
}

static const kn_impl linear_fused_impls[] = {
    {"gemm", KN_ISA_REF, fused_accepts, fused_gemm},
    {"ref", KN_ISA_REF, NULL, fused_ref},
    {0},
};

const kn_op_def kn_op_linear_fused = {
    .name = "linear_fused",
    .n_in = 4,
    .n_out = 1,
    .optional_in = 0xcu,
    .attrs = linear_fused_schema,
    .n_attrs = 1,
    .attrs_size = sizeof(linear_fused_attrs),
    .dtypes = KN_DTYPES_FLOAT,
    .infer = linear_fused_infer,
    .impls = linear_fused_impls,
    .flops = kn__linear_flops, /* same inputs as linear */
    .amp = KN_AMP_LOWP,
    .layout = KN_LAYOUT_FIXED,
    .prepack = fused_prepack,
    .prepack_free = fused_prepack_free,
    .prepack_in = 1,
};
