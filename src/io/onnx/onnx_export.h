/* onnx_export.h — what the ONNX exporter's two files share: the export
 * context (onnx_export.c: names, initializers, node emission, the model and
 * the file) and the per-op converters (onnx_export_ops.c). Only compiled with
 * KILN_HAVE_ONNX.
 *
 * How a kiln graph becomes ONNX. Every kiln value gets an ONNX name (inputs
 * and parameters keep theirs; parameters and constants become initializers
 * the first time a node reads them). Each live node's converter receives the
 * names of its inputs and of its outputs and emits ONNX nodes that compute
 * those outputs, with temporaries and small constants of its own as needed.
 * Emission errors (allocation) are sticky in the context, so converters
 * chain calls and the driver checks once per node. */
#ifndef KILN_IO_ONNX_EXPORT_H
#define KILN_IO_ONNX_EXPORT_H

#include "onnx_internal.h"

/* The opsets of the default domain the exporter writes. */
#define KN_EX_MIN_OPSET 13
#define KN_EX_MAX_OPSET 17

typedef struct kn_ex_chunk kn_ex_chunk;

typedef struct kn_ex {
    const kn_graph *g;
    int opset;
    kn_status status;   /* sticky: the first emission failure */
    char prefix[24];    /* of every generated name: no user name starts with it */
    int64_t n_tmp;      /* generated names so far */
    const char **vname; /* per kiln value: its ONNX name, NULL until needed */
    bool *vinit;        /* per kiln value: its initializer exists */
    int32_t node;       /* the kiln node being converted (-1: none) */
    int sub;            /* ONNX nodes emitted for it so far */
    size_t first;       /* index in nodes[] of its first ONNX node */
    int n_renamed;      /* temporaries kn__ex_finish renamed for it */
    const char *renamed[16][2];
    Onnx__NodeProto **nodes;
    size_t n_nodes, cap_nodes;
    Onnx__TensorProto **inits;
    size_t n_inits, cap_inits;
    kn_ex_chunk *chunks; /* everything above lives here */
} kn_ex;

/* ---------------------------------------------------------------- context */
/* Zeroed arena memory (NULL + sticky error on failure). */
void *kn__ex_alloc(kn_ex *e, size_t size);
char *kn__ex_strdup(kn_ex *e, const char *s);
/* A fresh name ("<prefix>t12"). */
const char *kn__ex_tmp(kn_ex *e);
/* The value's metadata and ONNX name (an initializer is made on first use
 * of a parameter or constant). */
const kn_gvalue *kn__ex_val(const kn_ex *e, int32_t v);
const char *kn__ex_value(kn_ex *e, int32_t v);
/* An error naming the node being converted: "onnx_export: op 'x' (node 3,
 * traced at f.c:12): <message>". Returns s. */
kn_status kn__ex_fail(kn_ex *e, kn_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---------------------------------------------------------------- nodes
 * A node of op_type with inputs in[] ("" for an omitted optional input) and
 * outputs out[] (NULL entries, or out == NULL, get fresh names). Returns the
 * node, or NULL on failure (the attribute setters accept NULL). */
Onnx__NodeProto *kn__ex_node(kn_ex *e, const char *op_type, int n_in, const char *const *in,
                             int n_out, const char *const *out);
/* Output k of node (a name that is safe to use even when node is NULL). */
const char *kn__ex_out(const Onnx__NodeProto *node, int k);
void kn__ex_attr_int(kn_ex *e, Onnx__NodeProto *node, const char *name, int64_t v);
void kn__ex_attr_float(kn_ex *e, Onnx__NodeProto *node, const char *name, double v);
void kn__ex_attr_string(kn_ex *e, Onnx__NodeProto *node, const char *name, const char *v);
void kn__ex_attr_ints(kn_ex *e, Onnx__NodeProto *node, const char *name, int n, const int64_t *v);
/* One-output shorthands: the output's name. */
const char *kn__ex_op1(kn_ex *e, const char *op_type, const char *x);
const char *kn__ex_op2(kn_ex *e, const char *op_type, const char *a, const char *b);
/* Makes `out` hold the value named `result`: renames result, a temporary
 * of the node being converted, to out (in the ONNX node producing it and in
 * those reading it), else emits an Identity. */
void kn__ex_finish(kn_ex *e, const char *result, const char *out);

/* ---------------------------------------------------------------- constants
 * Initializers made by the exporter (fresh names). */
const char *kn__ex_const_ints(kn_ex *e, int n, const int64_t *v); /* 1-D int64 */
const char *kn__ex_const_scalar(kn_ex *e, kn_dtype dt, double v); /* 0-d */
/* A tensor of the given shape filled with v. */
const char *kn__ex_const_fill(kn_ex *e, kn_dtype dt, int ndim, const int64_t *shape, double v);
/* A fresh zeroed initializer whose data the caller fills (*name gets its
 * name); NULL on failure. */
void *kn__ex_const_raw(kn_ex *e, kn_dtype dt, int ndim, const int64_t *shape, const char **name);
/* x as dtype `to` (x itself when from == to). */
const char *kn__ex_cast(kn_ex *e, const char *x, kn_dtype from, kn_dtype to);

/* ---------------------------------------------------------------- converters
 * Emits ONNX nodes computing node n's outputs out[] from in[] (names; NULL
 * for an absent optional input). */
typedef kn_status (*kn_ex_fn)(kn_ex *e, const kn_gnode *n, const char *const *in,
                              const char *const *out);
/* The converter of an op, or NULL when it has no ONNX mapping (*why may
 * then say why, e.g. "a training op"). */
kn_ex_fn kn__ex_find(const kn_op_def *def, const char **why);

#endif
