/* onnx_internal.h — what the ONNX importer's parts share: the node
 * converters' interface and their helpers. Only compiled with KILN_HAVE_ONNX
 * (protobuf-c and the generated onnx.pb-c.h present).
 *
 * How a model becomes a kiln graph. kn_onnx_load parses and validates the
 * model and checks every node against the converter tables (all unsupported
 * nodes are listed in one error). A kiln graph is then built per signature
 * of concrete input shapes (dynamic dims are resolved from the inputs given
 * at run time): graph inputs become symbolic tensors (kn_graph_input),
 * initializers and Constant outputs concrete tensors. Each node's converter
 * receives kiln tensors for its inputs and calls ordinary kiln ops on them.
 * An op given a symbolic tensor appends a graph node; an op given only
 * concrete tensors runs at once, so shape computations (Shape → Gather →
 * Concat → Reshape, as PyTorch exports them) fold to constants while the
 * graph is built, and inputs that must be known (Reshape's shape, Slice's
 * starts) are concrete whenever the model allows it. */
#ifndef KILN_IO_ONNX_INTERNAL_H
#define KILN_IO_ONNX_INTERNAL_H

#include "../../graph/graph.h"

#include <onnx.pb-c.h>

/* ---------------------------------------------------------------- nodes */
/* A node being converted. in[i] is NULL for an omitted optional input
 * (empty name) or past n_in; the converter sets out[i] to new references
 * for the outputs it produces (at least the first; an output the model does
 * not use may be left NULL unless its name is non-empty and used). */
typedef struct kn_onnx_node {
    const Onnx__NodeProto *proto;
    const char *op;   /* op_type */
    const char *name; /* node name, or "" */
    int opset;        /* the model's opset for the node's domain */
    int n_in, n_out;
    kn_tensor **in;   /* borrowed */
    kn_tensor **out;  /* set by the converter */
    const char *base_dir; /* the model's folder (external data) */
} kn_onnx_node;

typedef kn_status (*kn_onnx_convert_fn)(kn_onnx_node *n);
/* A check at load time, before any tensor exists: true when this node
 * (attributes, input count, opset) can be converted, else false with the
 * reason written into why ("mode 'cubic'"). NULL: any node of the op. */
typedef bool (*kn_onnx_check_fn)(const Onnx__NodeProto *node, int opset, char *why, size_t why_size);

typedef struct kn_onnx_op {
    const char *domain; /* "" for ai.onnx (also matches "ai.onnx") */
    const char *op_type;
    int since;          /* the oldest opset version this entry converts */
    kn_onnx_convert_fn convert;
    kn_onnx_check_fn check;
} kn_onnx_op;

/* The converter tables, one per file, each ended by an entry with a NULL
 * op_type. Add a table here and to kn__onnx_tables (onnx_ops.c). */
extern const kn_onnx_op kn__onnx_ops_core[]; /* onnx_core_ops.c: Identity, Constant, ... */
extern const kn_onnx_op kn__onnx_ops_math[]; /* onnx_ops_math.c */
extern const kn_onnx_op kn__onnx_ops_shape[]; /* onnx_ops_shape.c */
extern const kn_onnx_op kn__onnx_ops_nn[];   /* onnx_ops_nn.c */
extern const kn_onnx_op kn__onnx_ops_training[]; /* onnx_ops_training.c: Gradient */
extern const kn_onnx_op kn__onnx_ops_text[];     /* onnx_ops_text.c: StringNormalizer */
/* The entry converting (domain, op_type) at opset, or NULL. */
const kn_onnx_op *kn__onnx_find_op(const char *domain, const char *op_type, int opset);

/* ---------------------------------------------------------------- attributes
 * Lookups by name; a missing attribute gives the default. An attribute of
 * the wrong type is reported by kn__onnx_fail from the accessor's caller
 * (the accessors return the default and set *bad when given). */
const Onnx__AttributeProto *kn__onnx_attr(const kn_onnx_node *n, const char *name);
int64_t kn__onnx_attr_int(const kn_onnx_node *n, const char *name, int64_t def);
float kn__onnx_attr_float(const kn_onnx_node *n, const char *name, float def);
/* Copies up to max values; returns how many the attribute has (which may
 * exceed max: check), or -1 when absent. */
int kn__onnx_attr_ints(const kn_onnx_node *n, const char *name, int64_t *out, int max);
int kn__onnx_attr_floats(const kn_onnx_node *n, const char *name, float *out, int max);
/* A string attribute copied NUL-terminated into buf; returns buf, or def
 * itself when the attribute is absent (buf is then left alone: use the
 * returned pointer). */
const char *kn__onnx_attr_string(const kn_onnx_node *n, const char *name, const char *def, char *buf,
                                 size_t size);
/* A tensor attribute as a concrete kiln tensor (new reference), or NULL
 * (absent, or an error is set). */
kn_tensor *kn__onnx_attr_tensor(const kn_onnx_node *n, const char *name);

/* ---------------------------------------------------------------- inputs */
/* True when t holds data (an initializer, a constant, or computed from
 * them); false for symbolic tensors standing for values of the graph. */
bool kn__onnx_is_const(const kn_tensor *t);
/* The integer values of input i, which must be concrete (Reshape's shape,
 * Slice's starts, axes given as inputs): up to max into out, *count the
 * number of elements. An error names the node when the input is symbolic,
 * missing, not an integer tensor or too long. */
kn_status kn__onnx_const_ints(const kn_onnx_node *n, int i, int64_t *out, int max, int *count);
/* The same for a floating-point scalar or 1-element input (Clip's min). */
kn_status kn__onnx_const_double(const kn_onnx_node *n, int i, double *value);
/* Sets an error prefixed with the node: "onnx: node 'name' (Op, opset N): ..."
 * and returns s. */
kn_status kn__onnx_fail(const kn_onnx_node *n, kn_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Normalizes an axis against rank (negative counts from the end); an error
 * naming the node when out of range. */
kn_status kn__onnx_axis(const kn_onnx_node *n, int64_t axis, int rank, int *out);

/* ---------------------------------------------------------------- tensors */
/* ONNX TensorProto.DataType <-> kiln dtypes; false when kiln has no such
 * dtype (uint16/32/64, int16, string, complex). */
bool kn__onnx_dtype(int32_t onnx_type, kn_dtype *dt);
int32_t kn__onnx_type_of(kn_dtype dt);
/* A TensorProto as a new concrete kiln tensor: raw_data or the typed
 * fields, every size checked against the data present; external data read
 * from base_dir (paths may not leave it). NULL with an error otherwise. */
kn_tensor *kn__onnx_tensor_from_proto(const Onnx__TensorProto *t, const char *base_dir);

#endif
