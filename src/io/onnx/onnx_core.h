/* onnx_core.h — what the importer core's own files share (not converters):
 * the protobuf-c allocator over kn_alloc, op lookup details and name
 * formatting. Only compiled with KILN_HAVE_ONNX. */
#ifndef KILN_IO_ONNX_CORE_H
#define KILN_IO_ONNX_CORE_H

#include "onnx_internal.h"

/* The default-domain opsets loaded. Converters are written for opsets 7 to
 * 17; older nodes are converted as opset 7 when their op did not change
 * meaning before 7 (onnx_legacy.c). */
#define KN_ONNX_MIN_OPSET 1
#define KN_ONNX_CONVERTER_MIN_OPSET 7
#define KN_ONNX_MAX_OPSET 17
/* Largest model or tensor file read (protobuf's own limit is 2 GiB). */
#define KN_ONNX_MAX_FILE ((size_t)2 << 30)
/* Deepest nesting of subgraphs (If in Loop in ...). */
#define KN_ONNX_MAX_DEPTH 16

/* A protobuf-c allocator over kn_alloc/kn_free (allocation-failure tests
 * reach it); failed is set when an allocation failed during unpacking. */
typedef struct kn__onnx_pballoc {
    ProtobufCAllocator a;
    bool failed;
} kn__onnx_pballoc;
void kn__onnx_pballoc_init(kn__onnx_pballoc *pa);

/* "" for NULL: protobuf-c leaves absent proto2 strings NULL. */
static inline const char *kn__onnx_str(const char *s)
{
    return s ? s : "";
}
/* True for the default domain ("" or "ai.onnx"). */
bool kn__onnx_default_domain(const char *domain);
/* The oldest opset any table converts op_type at, or 0 when none does. */
int kn__onnx_op_first_since(const char *domain, const char *op_type);
/* The folder part of path ("." when none), kn_alloc'd (NULL + error). */
char *kn__onnx_dirname(const char *path);
/* The ONNX name of a TensorProto data type ("UINT16"), "?" when unknown. */
const char *kn__onnx_type_name(int32_t onnx_type);

/* Called by the input helpers when a converter needs the values of a
 * symbolic tensor: if it is an input of the model being built, the model
 * notes that graphs must be built for that input's values (and rebuilds). */
void kn__onnx_want_const(const kn_tensor *t);
/* Notes that a converter asked whether t is constant and it was not: if
 * the build then fails, such model inputs are baked in and it is retried. */
void kn__onnx_asked_const(const kn_tensor *t);

/* Tensor sequences (SequenceConstruct, SplitToSequence...): lists of kiln
 * tensors that exist only while a graph is built, between nodes of the
 * model (never as its inputs or outputs). */
typedef struct kn_onnx_seq {
    int n, cap;
    kn_tensor **items; /* references */
} kn_onnx_seq;
kn_onnx_seq *kn__onnx_seq_new(void);
void kn__onnx_seq_free(kn_onnx_seq *s);
/* Inserts a new reference to t before position pos (0..n). */
kn_status kn__onnx_seq_insert(kn_onnx_seq *s, int pos, kn_tensor *t);
/* The sequence at input i of the node being converted (borrowed), or NULL
 * with an error naming the node. */
kn_onnx_seq *kn__onnx_in_seq(const kn_onnx_node *n, int i);
/* Makes s (owned from now on, also on failure) output k of the node. */
kn_status kn__onnx_out_seq(kn_onnx_node *n, int k, kn_onnx_seq *s);

kn_onnx_seq *kn__onnx_seq_copy(const kn_onnx_seq *s);
/* The sequence at input i of the node being converted, or NULL (no error). */
kn_onnx_seq *kn__onnx_peek_seq(const kn_onnx_node *n, int i);

/* Subgraphs (onnx_subgraph.c): converts g (an If branch, a Loop body) of
 * node n into the graph being built, its inputs bound to in_t/in_s (n_in
 * entries, a tensor or a sequence each, borrowed; either array may be NULL
 * when n_in is 0); out_t/out_s (n_out entries) get its outputs (new
 * references, owned sequences). */
kn_status kn__onnx_subgraph(const kn_onnx_node *n, const Onnx__GraphProto *g, int n_in,
                            kn_tensor *const *in_t, kn_onnx_seq *const *in_s, int n_out,
                            kn_tensor **out_t, kn_onnx_seq **out_s);
/* If (the condition known while building) and Loop (trip count and
 * condition known: unrolled). */
kn_status kn__onnx_convert_if(kn_onnx_node *n);
kn_status kn__onnx_convert_loop(kn_onnx_node *n);

/* Nodes older than opset 7 (onnx_legacy.c). The opset to convert a
 * default-domain node of the given opset at (the same opset from 7 on), or
 * 0 with the reason in why when its old form is not converted. */
int kn__onnx_legacy_opset(const Onnx__NodeProto *node, int opset, char *why, size_t why_size);
/* Rewrites the inputs of an opset < 7 node for the opset-7 converter
 * (legacy broadcast with an axis): in[] may get new tensors, recorded in
 * made[] (released by the caller). */
kn_status kn__onnx_legacy_inputs(kn_onnx_node *n, int model_opset, kn_tensor **made);

#endif
