/* onnx_attr.c — what converters read from a node: attributes by name, and
 * inputs that must be concrete (shapes, axes, bounds); plus the node-prefixed
 * error and axis normalization. */
#if KILN_HAVE_ONNX
#include "onnx_core.h"

#include "../../tensor/tensor.h"

#include <stdarg.h>

const Onnx__AttributeProto *kn__onnx_attr(const kn_onnx_node *n, const char *name)
{
    if (!n || !n->proto || !name) return NULL;
    for (size_t i = 0; i < n->proto->n_attribute; i++) {
        const Onnx__AttributeProto *a = n->proto->attribute[i];
        if (a && a->name && !strcmp(a->name, name)) return a;
    }
    return NULL;
}

/* The attribute if it has type `type` (an untyped attribute from an old
 * writer counts when the matching field is present). */
static const Onnx__AttributeProto *typed(const kn_onnx_node *n, const char *name,
                                         Onnx__AttributeProto__AttributeType type, bool present)
{
    const Onnx__AttributeProto *a = kn__onnx_attr(n, name);
    if (!a) return NULL;
    if (a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED)
        return a->type == type ? a : NULL;
    return present ? a : NULL;
}

int64_t kn__onnx_attr_int(const kn_onnx_node *n, const char *name, int64_t def)
{
    const Onnx__AttributeProto *a = kn__onnx_attr(n, name);
    a = a ? typed(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, a->has_i) : NULL;
    return a ? a->i : def;
}

float kn__onnx_attr_float(const kn_onnx_node *n, const char *name, float def)
{
    const Onnx__AttributeProto *a = kn__onnx_attr(n, name);
    a = a ? typed(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, a->has_f) : NULL;
    return a ? a->f : def;
}

int kn__onnx_attr_ints(const kn_onnx_node *n, const char *name, int64_t *out, int max)
{
    const Onnx__AttributeProto *a = kn__onnx_attr(n, name);
    a = a ? typed(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS, a->n_ints > 0) : NULL;
    if (!a) return -1;
    if (a->n_ints > (size_t)INT32_MAX) return INT32_MAX;
    for (size_t i = 0; i < a->n_ints && (int)i < max; i++)
        out[i] = a->ints[i];
    return (int)a->n_ints;
}

int kn__onnx_attr_floats(const kn_onnx_node *n, const char *name, float *out, int max)
{
    const Onnx__AttributeProto *a = kn__onnx_attr(n, name);
    a = a ? typed(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS, a->n_floats > 0) : NULL;
    if (!a) return -1;
    if (a->n_floats > (size_t)INT32_MAX) return INT32_MAX;
    for (size_t i = 0; i < a->n_floats && (int)i < max; i++)
        out[i] = a->floats[i];
    return (int)a->n_floats;
}

const char *kn__onnx_attr_string(const kn_onnx_node *n, const char *name, const char *def,
                                 char *buf, size_t size)
{
    const Onnx__AttributeProto *a = kn__onnx_attr(n, name);
    a = a ? typed(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING, a->has_s) : NULL;
    if (!a || !buf || !size) return def;
    size_t len = a->s.len < size - 1 ? a->s.len : size - 1;
    if (len) memcpy(buf, a->s.data, len);
    buf[len] = 0;
    return buf;
}

kn_tensor *kn__onnx_attr_tensor(const kn_onnx_node *n, const char *name)
{
    const Onnx__AttributeProto *a = kn__onnx_attr(n, name);
    a = a ? typed(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR, a->t != NULL) : NULL;
    if (!a || !a->t) return NULL;
    kn_tensor *t = kn__onnx_tensor_from_proto(a->t, n->base_dir);
    if (!t) kn__onnx_fail(n, kn_last_status(), "attribute '%s': %s", name, kn_last_error());
    return t;
}

bool kn__onnx_is_const(const kn_tensor *t)
{
    if (t && !t->storage) kn__onnx_asked_const(t);
    return t && t->storage;
}

/* Input i, concrete, of at most max elements: NULL + error otherwise. */
static kn_tensor *const_input(const kn_onnx_node *n, int i, int64_t max, const char *what)
{
    kn_tensor *t = i >= 0 && i < n->n_in ? n->in[i] : NULL;
    if (!t) return kn__onnx_fail(n, KN_ERR_ARG, "input %d (%s) is missing", i, what), NULL;
    if (!t->storage) kn__onnx_want_const(t);
    if (!t->storage)
        return kn__onnx_fail(n, KN_ERR_UNSUPPORTED,
                             "input %d (%s) must be a constant (an initializer or computed from "
                             "them and from shapes), but it depends on the model's inputs",
                             i, what),
               NULL;
    if (kn_tensor_numel(t) > max)
        return kn__onnx_fail(n, KN_ERR_SHAPE,
                             "input %d (%s) has %lld elements, at most %lld allowed", i, what,
                             (long long)kn_tensor_numel(t), (long long)max),
               NULL;
    return t;
}

kn_status kn__onnx_const_ints(const kn_onnx_node *n, int i, int64_t *out, int max, int *count)
{
    kn_tensor *t = const_input(n, i, max, "integers");
    if (!t) return kn_last_status();
    if (kn_dtype_is_float(t->dtype) || t->dtype == KN_BOOL)
        return kn__onnx_fail(n, KN_ERR_DTYPE, "input %d must be an integer tensor, not %s", i,
                             kn_dtype_name(t->dtype));
    int64_t numel = kn_tensor_numel(t);
    if (numel && kn_tensor_copy_to(t, KN_I64, out, sizeof(int64_t) * (size_t)numel))
        return kn__onnx_fail(n, kn_last_status(), "input %d: %s", i, kn_last_error());
    if (count) *count = (int)numel;
    return KN_OK;
}

kn_status kn__onnx_const_double(const kn_onnx_node *n, int i, double *value)
{
    kn_tensor *t = const_input(n, i, 1, "a scalar");
    if (!t) return kn_last_status();
    if (kn_tensor_numel(t) != 1)
        return kn__onnx_fail(n, KN_ERR_SHAPE, "input %d must hold one value, it has none", i);
    if (kn_tensor_copy_to(t, KN_F64, value, sizeof *value))
        return kn__onnx_fail(n, kn_last_status(), "input %d: %s", i, kn_last_error());
    return KN_OK;
}

kn_status kn__onnx_fail(const kn_onnx_node *n, kn_status s, const char *fmt, ...)
{
    char msg[512]; /* formatted first: the arguments may point at the last error */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *name = n && n->name && n->name[0] ? n->name : NULL;
    const char *out0 = n && n->proto && n->proto->n_output ? kn__onnx_str(n->proto->output[0]) : "";
    if (name)
        return kn__error(s, "onnx: node '%s' (%s, opset %d): %s", name, n ? n->op : "?",
                         n ? n->opset : 0, msg);
    return kn__error(s, "onnx: node (%s, opset %d) making '%s': %s", n ? n->op : "?",
                     n ? n->opset : 0, out0, msg);
}

kn_status kn__onnx_axis(const kn_onnx_node *n, int64_t axis, int rank, int *out)
{
    if (axis < -(int64_t)rank || axis >= rank)
        return kn__onnx_fail(n, KN_ERR_ARG, "axis %lld is out of range for rank %d",
                             (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return KN_OK;
}
#endif
