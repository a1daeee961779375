/* conv_fused.c — conv2d_fused: y = act(conv2d(x, w) + bias + residual) in
 * one pass, through the convolution kernels' fused epilogue. Built by the
 * graph's conv fusion pass for inference; it has no gradient. Inputs: x, w,
 * bias (C_out, optional), residual (y's shape, optional). */
#include "op.h"

#include "../kernels/conv_fast.h"

#include <math.h>
#include <stdio.h>

typedef struct conv_fused_attrs {
    kn_conv_params conv; /* 2-d geometry, as for kn_conv2d */
    int64_t act;         /* kn_act */
} conv_fused_attrs;

static const kn_attr_desc conv_fused_schema[] = {
    KN_ATTR(conv_fused_attrs, act, KN_ATTR_INT),
};

/* The plain convolution's output, inferred by conv2d itself. */
static kn_status conv_out(const kn_op_args *a, kn_tensor **y)
{
    const conv_fused_attrs *at = a->attrs;
    kn_tensor *sx = kn_tensor_symbolic(a->in[0]->dtype, a->in[0]->ndim, a->in[0]->shape);
    kn_tensor *sw = kn_tensor_symbolic(a->in[1]->dtype, a->in[1]->ndim, a->in[1]->shape);
    *y = sx && sw ? kn_conv2d(sx, sw, NULL, &at->conv) : NULL;
    kn_tensor_unref(sx), kn_tensor_unref(sw);
    if (*y) return KN_OK;
    char msg[400];
    snprintf(msg, sizeof msg, "%s", kn_last_error());
    return kn__error(kn_last_status(), "conv2d_fused: %s", msg);
}

static kn_status conv_fused_infer(const kn_op_args *a, kn_out_meta *out)
{
    const conv_fused_attrs *at = a->attrs;
    if (at->act < KN_ACT_NONE || at->act >= KN_ACT_COUNT)
        return kn__error(KN_ERR_ARG, "conv2d_fused: act %lld is not a kn_act", (long long)at->act);
    unsigned char same; /* attrs may come from a file: check the bool's bytes before reading it */
    memcpy(&same, &at->conv.pad_same, 1);
    if (same > 1 || (unsigned)at->conv.layout > KN_LAYOUT_NHWC)
        return kn__error(KN_ERR_ARG, "conv2d_fused: pad_same or layout out of range");
    kn_tensor *y;
    kn_status s = conv_out(a, &y);
    if (s) return s;
    int64_t cout = a->in[1]->shape[0];
    const kn_tensor *bias = a->in[2], *res = a->in[3];
    if (bias && (bias->ndim != 1 || bias->shape[0] != cout))
        s = kn__error(KN_ERR_SHAPE, "conv2d_fused: bias has %d dims / %lld values, expected (%lld)",
                      bias->ndim, bias->ndim ? (long long)bias->shape[0] : 0LL, (long long)cout);
    else if (res && (res->ndim != y->ndim || memcmp(res->shape, y->shape, sizeof(int64_t) * (size_t)y->ndim)))
        s = kn__error(KN_ERR_SHAPE, "conv2d_fused: the residual's shape differs from the output's");
    else if (res && res->dtype != KN_F32 && res->dtype != KN_BF16)
        s = kn__error(KN_ERR_DTYPE, "conv2d_fused: residual is %s, expected f32 or bf16", kn_dtype_name(res->dtype));
    out->dtype = y->dtype;
    out->ndim = y->ndim;
    memcpy(out->shape, y->shape, sizeof(int64_t) * (size_t)y->ndim);
    kn_tensor_unref(y);
    return s;
}

static bool fused_accepts(const kn_op_args *a)
{
    const kn_tensor *x = a->in[0], *res = a->in[3];
    return kn__conv_fast_dtypes(x->dtype, a->in[1]->dtype, x->dtype) &&
           (!res || kn_tensor_is_contiguous(res));
}

/* bias as f32 values (a new contiguous tensor). */
static kn_tensor *f32_values(kn_tensor *t)
{
    return t->dtype == KN_F32 && kn_tensor_is_contiguous(t) ? kn_tensor_ref(t) : kn_cast(t, KN_F32);
}

static kn_status fused_fast(const kn_op_args *a)
{
    const conv_fused_attrs *at = a->attrs;
    kn_tensor *bias = a->in[2] ? f32_values(a->in[2]) : NULL;
    if (a->in[2] && !bias) return kn_last_status();
    kn_epilogue ep = {.bias = bias ? (const float *)kn__tensor_ptr(bias) : NULL,
                      .act = (kn_act)at->act};
    if (a->in[3]) {
        ep.residual = kn__tensor_ptr(a->in[3]);
        ep.residual_dtype = a->in[3]->dtype;
    }
    kn_dtype compute = a->in[0]->dtype == KN_BF16 ? KN_BF16 : KN_F32;
    kn_tensor *y = kn__conv2d_fused(a->in[0], a->in[1], &at->conv, &ep, compute, a->out[0],
                                    a->prepacked);
    kn_tensor_unref(bias);
    if (!y) return kn_last_status();
    kn_tensor_unref(y); /* it is a->out[0] */
    return KN_OK;
}

/* y with activation `act` (a kn_act) applied by its op; a new reference. */
kn_tensor *kn__activate(kn_tensor *y, int64_t act)
{
    switch (act) {
    case KN_ACT_RELU: return kn_relu(y);
    case KN_ACT_RELU6: return kn_relu6(y);
    case KN_ACT_GELU: return kn_gelu(y);
    case KN_ACT_GELU_TANH: return kn_gelu_tanh(y);
    case KN_ACT_SILU: return kn_silu(y);
    case KN_ACT_SIGMOID: return kn_sigmoid(y);
    case KN_ACT_TANH: return kn_tanh(y);
    default: return kn_tensor_ref(y);
    }
}

/* The reference twin: the same with separate ops. */
static kn_status fused_ref(const kn_op_args *a)
{
    const conv_fused_attrs *at = a->attrs;
    kn_scratch s = {0};
    kn_tensor *y = kn__keep(&s, kn_conv2d(a->in[0], a->in[1], a->in[2], &at->conv));
    if (y && a->in[3]) y = kn__keep(&s, kn_add(y, a->in[3]));
    if (y) y = kn__keep(&s, kn__activate(y, at->act));
    kn_status st = y ? kn__copy_into(a->out[0], y) : kn_last_status();
    kn__scratch_free(&s);
    return st;
}

/* The weights packed once for the fast kernel (graph executor). */
static void *fused_prepack(const kn_op_args *a)
{
    const conv_fused_attrs *at = a->attrs;
    kn_dtype compute = a->in[0]->dtype == KN_BF16 ? KN_BF16 : KN_F32;
    if (!kn__conv_fast_dtypes(a->in[0]->dtype, a->in[1]->dtype, a->in[0]->dtype)) return NULL;
    return kn__conv2d_prepack(a->in[0], a->in[1], &at->conv, compute);
}

static void fused_prepack_free(void *p) { kn__conv_packed_free(p); }

static const kn_impl conv_fused_impls[] = {
    {"fused", KN_ISA_REF, fused_accepts, fused_fast},
    {"ref", KN_ISA_REF, NULL, fused_ref},
    {0},
};

const kn_op_def kn_op_conv2d_fused = {
    .name = "conv2d_fused",
    .n_in = 4,
    .n_out = 1,
    .optional_in = 0xcu,
    .attrs = conv_fused_schema,
    .n_attrs = 1, /* the geometry is a kn_conv_params: files keep raw attrs */
    .attrs_size = sizeof(conv_fused_attrs),
    .dtypes = KN_DTYPES_FLOAT,
    .infer = conv_fused_infer,
    .impls = conv_fused_impls,
    .amp = KN_AMP_LOWP,
    .layout = KN_LAYOUT_FIXED,
    .prepack = fused_prepack,
    .prepack_free = fused_prepack_free,
    .prepack_in = 1,
};

/* For the graph's fusion pass and tests: the attrs of a fused conv. */
size_t kn__conv_fused_attrs_size(void) { return sizeof(conv_fused_attrs); }
void kn__conv_fused_attrs_set(void *attrs, const kn_conv_params *p, int64_t act)
{
    conv_fused_attrs *at = attrs;
    at->conv = *p;
    at->act = act;
}

kn_conv_params *kn__conv_fused_params(void *attrs)
{
    return &((conv_fused_attrs *)attrs)->conv;
}
