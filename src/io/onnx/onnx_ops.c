/* onnx_ops.c — finding a node's converter: the converter tables of every
 * part, searched by (domain, op_type) for the entry with the largest `since`
 * not above the model's opset. */
#if KILN_HAVE_ONNX
#include "onnx_core.h"

static const kn_onnx_op *const tables[] = {
    kn__onnx_ops_core,
    kn__onnx_ops_math,
    kn__onnx_ops_shape,
    kn__onnx_ops_nn,
    kn__onnx_ops_training,
    kn__onnx_ops_text,
};

bool kn__onnx_default_domain(const char *domain)
{
    return !domain || !domain[0] || !strcmp(domain, "ai.onnx");
}

static bool same_domain(const char *a, const char *b)
{
    bool da = kn__onnx_default_domain(a), db = kn__onnx_default_domain(b);
    return da || db ? da && db : !strcmp(a, b);
}

const kn_onnx_op *kn__onnx_find_op(const char *domain, const char *op_type, int opset)
{
    const kn_onnx_op *best = NULL;
    if (!op_type) return NULL;
    for (int t = 0; t < KN_ARRAY_LEN(tables); t++)
        for (const kn_onnx_op *e = tables[t]; e->op_type; e++)
            if (e->since <= opset && (!best || e->since > best->since) &&
                !strcmp(e->op_type, op_type) && same_domain(e->domain, domain))
                best = e;
    return best;
}

int kn__onnx_op_first_since(const char *domain, const char *op_type)
{
    int first = 0;
    if (!op_type) return 0;
    for (int t = 0; t < KN_ARRAY_LEN(tables); t++)
        for (const kn_onnx_op *e = tables[t]; e->op_type; e++)
            if (!strcmp(e->op_type, op_type) && same_domain(e->domain, domain) &&
                (!first || e->since < first))
                first = e->since;
    return first;
}
#endif
