/* onnx_core_ops.c — converters of the core ops: Identity, Constant, and the
 * tensor-sequence ops (sequences live only while the graph is built: every
 * position and split must be known then). */
#if KILN_HAVE_ONNX
#include "onnx_core.h"

static kn_status convert_identity(kn_onnx_node *n)
{
    if (n->n_in < 1 || !n->in[0]) return kn__onnx_fail(n, KN_ERR_ARG, "input 0 is missing");
    n->out[0] = kn_tensor_ref(n->in[0]);
    return KN_OK;
}

/* Constant holds its value in exactly one attribute; sparse tensors and
 * strings have no kiln equivalent. */
static bool check_constant(const Onnx__NodeProto *node, int opset, char *why, size_t why_size)
{
    if (node->n_attribute != 1) {
        snprintf(why, why_size, "expects exactly one value attribute, has %zu", node->n_attribute);
        return false;
    }
    const char *a = kn__onnx_str(node->attribute[0]->name);
    static const char *const known[] = {"value", "value_float", "value_floats", "value_int",
                                        "value_ints"};
    for (int i = 0; i < KN_ARRAY_LEN(known); i++)
        if (!strcmp(a, known[i])) return true;
    if (!strcmp(a, "sparse_value"))
        snprintf(why, why_size, "sparse tensors are not supported");
    else if (!strncmp(a, "value_string", 12))
        snprintf(why, why_size, "string tensors are not supported");
    else
        snprintf(why, why_size, "unknown attribute '%s'", a);
    return false;
}

static kn_status convert_constant(kn_onnx_node *n)
{
    const Onnx__AttributeProto *a = n->proto->n_attribute ? n->proto->attribute[0] : NULL;
    const char *name = a ? kn__onnx_str(a->name) : "";
    kn_tensor *t = NULL;
    if (!strcmp(name, "value")) {
        if (!(t = kn__onnx_attr_tensor(n, "value")) && kn_last_status() == KN_OK)
            return kn__onnx_fail(n, KN_ERR_ARG, "attribute 'value' is not a tensor");
    } else if (!strcmp(name, "value_float")) {
        t = kn_tensor_scalar(KN_F32, kn__onnx_attr_float(n, name, 0));
    } else if (!strcmp(name, "value_int")) {
        t = kn_tensor_scalar(KN_I64, 0);
        if (t) *(int64_t *)kn_tensor_data(t) = kn__onnx_attr_int(n, name, 0);
    } else if (!strcmp(name, "value_floats")) {
        int64_t len = (int64_t)a->n_floats;
        t = kn_tensor_from_data(KN_F32, 1, &len, a->floats);
    } else if (!strcmp(name, "value_ints")) {
        int64_t len = (int64_t)a->n_ints;
        t = kn_tensor_from_data(KN_I64, 1, &len, a->ints);
    } else {
        return kn__onnx_fail(n, KN_ERR_UNSUPPORTED, "attribute '%s' is not supported", name);
    }
    if (!t) return kn__onnx_fail(n, kn_last_status(), "%s", kn_last_error());
    n->out[0] = t;
    return KN_OK;
}

/* ---------------------------------------------------------------- sequences */
/* Optional position input i (default def) normalized into [0, limit]
 * against n items (negative counts from the back). */
static kn_status seq_position(kn_onnx_node *n, int i, int count, int def, int limit, int *pos)
{
    if (i >= n->n_in || !n->in[i]) {
        *pos = def;
        return KN_OK;
    }
    int64_t v;
    int c;
    if (kn__onnx_const_ints(n, i, &v, 1, &c)) return kn_last_status();
    if (c != 1) return kn__onnx_fail(n, KN_ERR_ARG, "position must hold one value");
    if (v < 0) v += count;
    if (v < 0 || v > limit)
        return kn__onnx_fail(n, KN_ERR_ARG, "position out of range for a sequence of %d tensors",
                             count);
    *pos = (int)v;
    return KN_OK;
}

static kn_status convert_sequence_construct(kn_onnx_node *n)
{
    kn_onnx_seq *s = kn__onnx_seq_new();
    if (!s) return kn_last_status();
    for (int i = 0; i < n->n_in; i++) {
        kn_status st = n->in[i] ? kn__onnx_seq_insert(s, s->n, n->in[i])
                                : kn__onnx_fail(n, KN_ERR_ARG, "input %d is missing", i);
        if (st) {
            kn__onnx_seq_free(s);
            return st;
        }
    }
    return kn__onnx_out_seq(n, 0, s);
}

static kn_status convert_sequence_empty(kn_onnx_node *n)
{
    kn_onnx_seq *s = kn__onnx_seq_new();
    return s ? kn__onnx_out_seq(n, 0, s) : kn_last_status();
}

static kn_status convert_sequence_insert(kn_onnx_node *n)
{
    const kn_onnx_seq *in = kn__onnx_in_seq(n, 0);
    if (!in) return kn_last_status();
    if (n->n_in < 2 || !n->in[1])
        return kn__onnx_fail(n, KN_ERR_ARG, "input 1 (tensor) is missing");
    int pos = 0;
    if (seq_position(n, 2, in->n, in->n, in->n, &pos)) return kn_last_status();
    kn_onnx_seq *s = kn__onnx_seq_copy(in);
    if (!s || kn__onnx_seq_insert(s, pos, n->in[1])) {
        kn__onnx_seq_free(s);
        return kn_last_status();
    }
    return kn__onnx_out_seq(n, 0, s);
}

static kn_status convert_sequence_erase(kn_onnx_node *n)
{
    const kn_onnx_seq *in = kn__onnx_in_seq(n, 0);
    if (!in) return kn_last_status();
    if (!in->n) return kn__onnx_fail(n, KN_ERR_ARG, "the sequence is empty");
    int pos = 0;
    if (seq_position(n, 1, in->n, in->n - 1, in->n - 1, &pos)) return kn_last_status();
    kn_onnx_seq *s = kn__onnx_seq_copy(in);
    if (!s) return kn_last_status();
    kn_tensor_unref(s->items[pos]);
    memmove(s->items + pos, s->items + pos + 1, sizeof(kn_tensor *) * (size_t)(s->n - pos - 1));
    s->n--;
    return kn__onnx_out_seq(n, 0, s);
}

static kn_status convert_sequence_at(kn_onnx_node *n)
{
    const kn_onnx_seq *in = kn__onnx_in_seq(n, 0);
    if (!in) return kn_last_status();
    if (n->n_in < 2 || !n->in[1])
        return kn__onnx_fail(n, KN_ERR_ARG, "input 1 (position) is missing");
    int pos = 0;
    if (seq_position(n, 1, in->n, 0, in->n - 1, &pos)) return kn_last_status();
    n->out[0] = kn_tensor_ref(in->items[pos]);
    return KN_OK;
}

static kn_status convert_sequence_length(kn_onnx_node *n)
{
    const kn_onnx_seq *in = kn__onnx_in_seq(n, 0);
    if (!in) return kn_last_status();
    kn_tensor *t = kn_tensor_scalar(KN_I64, in->n);
    if (!t) return kn_last_status();
    n->out[0] = t;
    return KN_OK;
}

static kn_status convert_concat_from_sequence(kn_onnx_node *n)
{
    const kn_onnx_seq *in = kn__onnx_in_seq(n, 0);
    if (!in) return kn_last_status();
    if (!in->n) return kn__onnx_fail(n, KN_ERR_ARG, "the sequence is empty");
    if (!kn__onnx_attr(n, "axis"))
        return kn__onnx_fail(n, KN_ERR_ARG, "attribute 'axis' is missing");
    bool stack = kn__onnx_attr_int(n, "new_axis", 0) != 0;
    int rank = in->items[0]->ndim + (stack ? 1 : 0), axis;
    if (kn__onnx_axis(n, kn__onnx_attr_int(n, "axis", 0), rank, &axis)) return kn_last_status();
    n->out[0] = stack ? kn_stack(in->n, in->items, axis) : kn_concat(in->n, in->items, axis);
    return n->out[0] ? KN_OK : kn_last_status();
}

/* SplitToSequence: sizes from `split` (a scalar: chunks of that size, the
 * last smaller; 1-D: the sizes), or pieces of 1 (squeezed unless keepdims). */
static kn_status split_sizes(kn_onnx_node *n, int64_t dim, int64_t *sizes, int *count,
                             bool *squeeze)
{
    enum { MAX = 4096 };
    *squeeze = false;
    if (n->n_in < 2 || !n->in[1]) {
        if (dim > MAX) return kn__onnx_fail(n, KN_ERR_UNSUPPORTED, "more than %d pieces", MAX);
        for (int64_t i = 0; i < dim; i++)
            sizes[i] = 1;
        *count = (int)dim;
        *squeeze = kn__onnx_attr_int(n, "keepdims", 1) == 0;
        return KN_OK;
    }
    if (kn__onnx_const_ints(n, 1, sizes, MAX, count)) return kn_last_status();
    if (n->in[1]->ndim == 0) {
        int64_t chunk = sizes[0];
        if (chunk <= 0) return kn__onnx_fail(n, KN_ERR_ARG, "split must be positive");
        if ((dim + chunk - 1) / chunk > MAX)
            return kn__onnx_fail(n, KN_ERR_UNSUPPORTED, "more than %d pieces", MAX);
        *count = 0;
        for (int64_t at = 0; at < dim; at += chunk)
            sizes[(*count)++] = dim - at < chunk ? dim - at : chunk;
        return KN_OK;
    }
    int64_t total = 0;
    for (int i = 0; i < *count; i++) {
        if (sizes[i] < 0) return kn__onnx_fail(n, KN_ERR_ARG, "split sizes must not be negative");
        total += sizes[i];
    }
    if (total != dim)
        return kn__onnx_fail(n, KN_ERR_ARG, "split sizes add up to %lld, the axis has %lld",
                             (long long)total, (long long)dim);
    return KN_OK;
}

static kn_status convert_split_to_sequence(kn_onnx_node *n)
{
    kn_tensor *x = n->n_in > 0 ? n->in[0] : NULL;
    if (!x) return kn__onnx_fail(n, KN_ERR_ARG, "input 0 is missing");
    int axis, count = 0;
    bool squeeze;
    if (kn__onnx_axis(n, kn__onnx_attr_int(n, "axis", 0), x->ndim, &axis)) return kn_last_status();
    int64_t *sizes = kn_alloc(sizeof(int64_t) * 4096);
    kn_tensor **parts = kn_alloc(sizeof(kn_tensor *) * 4096);
    kn_onnx_seq *s = sizes && parts ? kn__onnx_seq_new() : NULL;
    kn_status st = s ? split_sizes(n, x->shape[axis], sizes, &count, &squeeze) : kn_last_status();
    if (!st && count) memset(parts, 0, sizeof(kn_tensor *) * (size_t)count);
    if (!st && count) st = kn_split(x, count, sizes, axis, parts);
    for (int i = 0; !st && i < count; i++) {
        kn_tensor *p = squeeze ? kn_squeeze(parts[i], 1, &axis) : kn_tensor_ref(parts[i]);
        st = p ? kn__onnx_seq_insert(s, i, p) : kn_last_status();
        kn_tensor_unref(p);
    }
    for (int i = 0; parts && i < count; i++)
        kn_tensor_unref(parts[i]);
    kn_free(sizes), kn_free(parts);
    if (st) {
        kn__onnx_seq_free(s);
        return kn_last_status();
    }
    return kn__onnx_out_seq(n, 0, s);
}

const kn_onnx_op kn__onnx_ops_core[] = {
    {"", "Identity", 1, convert_identity, NULL},
    {"", "Constant", 1, convert_constant, check_constant},
    {"", "If", 1, kn__onnx_convert_if, NULL},
    {"", "Loop", 1, kn__onnx_convert_loop, NULL},
    {"", "SequenceConstruct", 11, convert_sequence_construct, NULL},
    {"", "SequenceEmpty", 11, convert_sequence_empty, NULL},
    {"", "SequenceInsert", 11, convert_sequence_insert, NULL},
    {"", "SequenceErase", 11, convert_sequence_erase, NULL},
    {"", "SequenceAt", 11, convert_sequence_at, NULL},
    {"", "SequenceLength", 11, convert_sequence_length, NULL},
    {"", "ConcatFromSequence", 11, convert_concat_from_sequence, NULL},
    {"", "SplitToSequence", 11, convert_split_to_sequence, NULL},
    {NULL, NULL, 0, NULL, NULL},
};
#endif
