/* onnx_ops_text.c — ops on string tensors. kiln has no op that computes on
 * text, so these run while the graph is built: the graph is specialized on
 * the string input's values (as for any input a converter must know), and
 * the result is a constant of that graph. Case changes and case-insensitive
 * matching are ASCII only (the locale attribute is not consulted). */
#if KILN_HAVE_ONNX
#include "onnx_core.h"

#include <ctype.h>

/* s equals the attribute string w, ignoring ASCII case when !sensitive. */
static bool same_word(const char *s, const ProtobufCBinaryData *w, bool sensitive)
{
    if (strlen(s) != w->len) return false;
    for (size_t i = 0; i < w->len; i++) {
        unsigned char a = (unsigned char)s[i], b = w->data[i];
        if (sensitive ? a != b : tolower(a) != tolower(b)) return false;
    }
    return true;
}

static bool is_stopword(const Onnx__AttributeProto *stop, const char *s, bool sensitive)
{
    for (size_t k = 0; stop && k < stop->n_strings; k++)
        if (same_word(s, &stop->strings[k], sensitive)) return true;
    return false;
}

/* StringNormalizer: X (C) or (1, C) of strings; stopwords removed, case
 * changed; when nothing is left, one empty string (ONNX's rule). */
static kn_status convert_string_normalizer(kn_onnx_node *n)
{
    kn_tensor *x = n->n_in > 0 ? n->in[0] : NULL;
    if (!x || x->dtype != KN_STRING)
        return kn__onnx_fail(n, KN_ERR_DTYPE, "input 0 must be a string tensor");
    if (!x->storage) kn__onnx_want_const(x);
    if (!x->storage)
        return kn__onnx_fail(n, KN_ERR_UNSUPPORTED, "input 0's strings must be known when the graph is built");
    if (x->ndim != 1 && !(x->ndim == 2 && x->shape[0] == 1))
        return kn__onnx_fail(n, KN_ERR_SHAPE, "input 0 must be (C) or (1, C), it has %d dims", x->ndim);
    char buf[16];
    const char *action = kn__onnx_attr_string(n, "case_change_action", "NONE", buf, sizeof buf);
    int change = !strcmp(action, "LOWER") ? -1 : !strcmp(action, "UPPER") ? 1 : 0;
    if (!change && strcmp(action, "NONE"))
        return kn__onnx_fail(n, KN_ERR_ARG, "case_change_action '%s': expected LOWER, UPPER or NONE", action);
    bool sensitive = kn__onnx_attr_int(n, "is_case_sensitive", 0) != 0;
    const Onnx__AttributeProto *stop = kn__onnx_attr(n, "stopwords");
    int64_t count = kn_tensor_numel(x), kept = 0;
    char **strs = kn_alloc(sizeof(char *) * (size_t)(count + 1));
    if (!strs) return kn_last_status();
    kn_status s = KN_OK;
    for (int64_t i = 0; !s && i < count; i++) {
        const char *src = kn_tensor_string(x, i);
        if (is_stopword(stop, src, sensitive)) continue;
        size_t len = strlen(src);
        char *dst = kn_alloc(len + 1);
        if (!dst) {
            s = kn_last_status();
            break;
        }
        for (size_t k = 0; k <= len; k++) {
            int c = (unsigned char)src[k];
            dst[k] = (char)(change > 0 ? toupper(c) : change < 0 ? tolower(c) : c);
        }
        strs[kept++] = dst;
    }
    if (!s) {
        int64_t shape[2] = {1, kept ? kept : 1};
        const char *empty = "";
        n->out[0] = kn_tensor_from_strings(x->ndim, x->ndim == 2 ? shape : shape + 1,
                                           kept ? (const char *const *)strs : &empty);
        if (!n->out[0]) s = kn_last_status();
    }
    for (int64_t i = 0; i < kept; i++)
        kn_free(strs[i]);
    kn_free(strs);
    return s;
}

const kn_onnx_op kn__onnx_ops_text[] = {
    {"", "StringNormalizer", 10, convert_string_normalizer, NULL},
    {NULL, NULL, 0, NULL, NULL},
};
#endif
