/* onnx_legacy.c — nodes of opsets 1 to 6 (PyTorch's early exports): most
 * ops mean the same at opset 7 once `consumed_inputs` is ignored; binary
 * ops had an explicit `broadcast` flag with an `axis` that aligns the second
 * operand inside the first, rewritten here as a reshape so numpy-style
 * broadcasting gives the same result; a few ops changed their inputs or
 * attributes and are refused in their old form. */
#if KILN_HAVE_ONNX
#include "onnx_core.h"

#include "../../tensor/tensor.h"

/* Ops whose form before `changed` differs from opset 7's. */
static const struct {
    const char *op;
    int changed;
} breaking[] = {
    {"Reshape", 5},  {"Concat", 4}, {"Split", 2}, {"Pad", 2}, {"Tile", 6},        {"Cast", 6},
    {"Upsample", 7}, {"GRU", 7},    {"LSTM", 7},  {"RNN", 7}, {"Multinomial", 7},
};

/* Binary ops with the legacy `broadcast`/`axis` attributes. */
static const char *const legacy_binary[] = {"Add", "Sub", "Mul",   "Div",     "Pow", "And",
                                            "Or",  "Xor", "Equal", "Greater", "Less"};

static const Onnx__AttributeProto *find_attr(const Onnx__NodeProto *node, const char *name)
{
    for (size_t i = 0; i < node->n_attribute; i++)
        if (node->attribute[i] && node->attribute[i]->name &&
            !strcmp(node->attribute[i]->name, name))
            return node->attribute[i];
    return NULL;
}

int kn__onnx_legacy_opset(const Onnx__NodeProto *node, int opset, char *why, size_t why_size)
{
    if (opset >= KN_ONNX_CONVERTER_MIN_OPSET) return opset;
    const char *op = kn__onnx_str(node->op_type);
    for (int i = 0; i < KN_ARRAY_LEN(breaking); i++)
        if (!strcmp(op, breaking[i].op) && opset < breaking[i].changed) {
            snprintf(why, why_size, "its form before opset %d is not converted",
                     breaking[i].changed);
            return 0;
        }
    if (!strcmp(op, "BatchNormalization")) {
        const Onnx__AttributeProto *a = find_attr(node, "is_test");
        if (opset < 7 && (!a || a->i == 0)) {
            snprintf(why, why_size, "training mode (is_test=0) is not converted");
            return 0;
        }
        if ((a = find_attr(node, "spatial")) && a->i == 0) {
            snprintf(why, why_size, "spatial=0 is not converted");
            return 0;
        }
    }
    return KN_ONNX_CONVERTER_MIN_OPSET;
}

/* PRelu before opset 7: a 1-D slope of C values is per channel (axis 1). */
static kn_status legacy_prelu(kn_onnx_node *n, kn_tensor **made)
{
    kn_tensor *x = n->in[0], *slope = n->in[1];
    if (x->ndim < 3 || slope->ndim != 1 || slope->shape[0] != x->shape[1] || slope->shape[0] == 1)
        return KN_OK;
    int64_t shape[KN_MAX_DIMS];
    shape[0] = slope->shape[0];
    for (int d = 1; d < x->ndim - 1; d++)
        shape[d] = 1;
    kn_tensor *b = kn_reshape(slope, x->ndim - 1, shape);
    if (!b) return kn_last_status();
    made[1] = b;
    n->in[1] = b;
    return KN_OK;
}

kn_status kn__onnx_legacy_inputs(kn_onnx_node *n, int model_opset, kn_tensor **made)
{
    if (model_opset >= KN_ONNX_CONVERTER_MIN_OPSET || n->n_in < 2 || !n->in[0] || !n->in[1])
        return KN_OK;
    if (!strcmp(n->op, "PRelu")) return legacy_prelu(n, made);
    bool binary = false;
    for (int i = 0; i < KN_ARRAY_LEN(legacy_binary); i++)
        binary |= !strcmp(n->op, legacy_binary[i]);
    const Onnx__AttributeProto *axis = kn__onnx_attr(n, "axis");
    if (!binary || kn__onnx_attr_int(n, "broadcast", 0) != 1 || !axis) return KN_OK;
    int ra = n->in[0]->ndim, rb = n->in[1]->ndim, ax;
    if (kn__onnx_axis(n, axis->i, ra, &ax)) return kn_last_status();
    if (ax + rb > ra)
        return kn__onnx_fail(
            n, KN_ERR_SHAPE,
            "legacy broadcast: operand B (rank %d) does not fit A (rank %d) at axis %d", rb, ra,
            ax);
    int64_t shape[KN_MAX_DIMS];
    for (int d = 0; d < ra - ax; d++)
        shape[d] = d < rb ? n->in[1]->shape[d] : 1;
    kn_tensor *b = kn_reshape(n->in[1], ra - ax, shape);
    if (!b) return kn_last_status();
    made[1] = b;
    n->in[1] = b;
    return KN_OK;
}
#endif
