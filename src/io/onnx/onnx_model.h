/* onnx_model.h — the loaded model shared by onnx_model.c (load, validate)
 * and onnx_build.c (graphs per input signature, run). */
#ifndef KILN_IO_ONNX_MODEL_H
#define KILN_IO_ONNX_MODEL_H

#include "onnx_core.h"

/* A graph input or output as declared. */
typedef struct kn_onnx_io {
    const char *name; /* borrowed from the proto */
    int32_t slot;
    bool has_dtype;
    kn_dtype dtype;
    int ndim;                   /* -1: unknown rank */
    int64_t shape[KN_MAX_DIMS]; /* -1: dynamic */
} kn_onnx_io;

/* Every name of the graph (inputs, initializers, node outputs). */
typedef struct kn_onnx_slot {
    const char *name;
    int producer; /* node index, or -1 for inputs and initializers */
    int32_t init; /* initializer index, or -1 */
    int32_t uses; /* node inputs and graph outputs reading it */
} kn_onnx_slot;

/* A graph built for one signature of input shapes. */
typedef struct kn_onnx_cached {
    uint8_t *key; /* per input: ndim and KN_MAX_DIMS dims (int64), then the
                     data of the inputs baked into the graph */
    size_t key_len;
    kn_graph *g;
    uint64_t stamp;
    bool pinned; /* handed out by kn_onnx_graph: never evicted */
} kn_onnx_cached;

#define KN_ONNX_CACHE 8

struct kn_onnx_model {
    kn__onnx_pballoc pa;
    Onnx__ModelProto *proto;
    char *base_dir;
    int opset;
    /* names: open addressing, cap_names a power of two, -1 empty */
    int32_t *name_slot;
    size_t cap_names;
    kn_onnx_slot *slots;
    int32_t n_slots;
    /* nodes: slots of inputs then outputs, from node_start[i] */
    int32_t *node_io, *node_start;
    /* per node: slots its subgraphs read, implicit[implicit_start[i]...] */
    int32_t *implicit, *implicit_start;
    const kn_onnx_op **node_op;
    int *node_opset;
    kn_tensor **init; /* per initializer (NULL when unsupported) */
    int n_init;
    kn_onnx_io *inputs, *outputs;
    int n_inputs, n_outputs;
    /* per input: a converter needs its values (a shape, axes, bounds given
     * as a graph input): graphs are built for its values, which join the
     * cache key */
    bool *bake;
    kn_onnx_cached *cache;
    int n_cache, cap_cache;
    uint64_t clock;
};

/* ---------------------------------------------------------------- building */
typedef struct kn_onnx_scope kn_onnx_scope;
/* A graph being built for one signature (onnx_build.c, onnx_subgraph.c). */
typedef struct kn_onnx_builder {
    kn_onnx_model *m;
    kn_graph *g;
    kn_tensor **env;      /* per slot: its tensor while some node still reads it */
    kn_onnx_seq **seqs;   /* per slot: its sequence, for sequence values */
    int32_t *left;        /* per slot: reads still to come */
    kn_tensor **args;     /* scratch: a node's inputs then outputs */
    kn_onnx_seq **sargs;  /* the same for sequences */
    bool retry;           /* a converter asked for the values of an input not baked yet */
    bool *asked;          /* per input: a converter asked whether it is constant */
    bool node_failed;     /* the build failed in a converter */
    kn_onnx_scope *scope; /* the innermost subgraph being converted (NULL: the graph) */
    int depth;
    /* the node being converted: its sequence inputs and outputs */
    kn_onnx_seq **cur_in_seqs, **cur_out_seqs;
} kn_onnx_builder;
extern _Thread_local kn_onnx_builder *kn__onnx_current;

/* Room past a node's named outputs: a converter may set out[0] (or an
 * optional output) of a node that names fewer; those are released. */
#define KN_ONNX_OUT_SPARE 8

/* Converts one node (of the graph or a subgraph): in_t/in_s its inputs (a
 * tensor or a sequence each, borrowed), out_t/out_s (n_output +
 * KN_ONNX_OUT_SPARE entries, zeroed) get its outputs (new references,
 * owned sequences). An error names the node. */
kn_status kn__onnx_convert(kn_onnx_builder *b, const Onnx__NodeProto *nd, const kn_onnx_op *op,
                           int opset, kn_tensor **in_t, kn_onnx_seq **in_s, kn_tensor **out_t,
                           kn_onnx_seq **out_s);
/* Prefixes the last error with the node unless it already names one. */
kn_status kn__onnx_node_error(const kn_onnx_node *n, kn_status s);

/* The converter of a node (of the graph or a subgraph) and the opset to
 * convert it at; NULL with the reason in why when unsupported. */
const kn_onnx_op *kn__onnx_resolve(const kn_onnx_model *m, const Onnx__NodeProto *nd,
                                   int *conv_opset, char *why, size_t why_size);
/* The slot of a name, or -1. */
int32_t kn__onnx_lookup(const kn_onnx_model *m, const char *name);
/* Frees every cached graph. */
void kn__onnx_cache_free(kn_onnx_model *m);

#endif
