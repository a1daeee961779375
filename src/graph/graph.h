/* graph.h — the graph IR: values (inputs, parameters, constants, node
 * outputs) and nodes (an op from the registry with a copy of its typed
 * attrs and the user's call site), kept in topological order. Passes rewrite
 * a graph in place; the executor runs it. Relies on src/ops and below. */
#ifndef KILN_GRAPH_H
#define KILN_GRAPH_H

#include "../ops/op.h"

#include <stdio.h>

typedef enum kn_value_kind {
    KN_VALUE_INPUT,
    KN_VALUE_PARAM,
    KN_VALUE_CONST,
    KN_VALUE_NODE,
} kn_value_kind;

typedef struct kn_gvalue {
    kn_value_kind kind;
    kn_dtype dtype;
    int ndim;
    int64_t shape[KN_MAX_DIMS];
    int32_t node, out_index; /* producer of a NODE value */
    char *name;              /* inputs and params */
    kn_tensor *tensor;       /* params and consts: the bound data (a reference) */
} kn_gvalue;

typedef struct kn_gnode {
    const kn_op_def *def;
    void *attrs; /* def->attrs_size bytes, owned */
    int n_in, n_out;
    int32_t *in;  /* value ids; -1 for an absent optional input */
    int32_t *out; /* value ids */
    const char *file; /* the user's call site (a string literal of theirs) */
    int line;
    bool dead;
} kn_gnode;

/* How a compiled graph runs (exec.c, passes/memplan.c). Values produced by
 * kernel nodes and not visible outside the run live in one arena at offsets
 * chosen by liveness; such nodes run their kernel straight into them. */
/* What def->prepack made for one node, from which input tensor and version. */
typedef struct kn_prepacked {
    void *data;
    void (*free_fn)(void *);
    kn_tensor *of; /* a reference: its storage cannot be reused while kept */
    uint64_t version;
} kn_prepacked;

typedef struct kn_plan {
    int32_t n_values;
    int32_t *last_use;  /* per value: last node reading it; INT32_MAX for outputs */
    int32_t *end;       /* per value: last node reading it or any alias of it */
    int64_t *offset;    /* per value: arena byte offset, or -1 when not planned */
    int32_t *share;     /* per value: the value whose bytes it takes over in place, or itself */
    kn_tensor **fixed;  /* per planned value: its tensor in the arena */
    bool *static_node;  /* per node: all outputs planned, runs its kernel directly */
    bool *view_node;    /* per node: a view of an arena tensor, made once at build time */
    kn_tensor **slots;  /* per value, during a run */
    kn_tensor **args;   /* scratch for one node's inputs and outputs */
    int max_args;
    struct kn_prepacked *packed; /* per node (n_nodes): def->prepack's result */
    int32_t n_nodes;
    kn_tensor *arena;   /* u8 tensor owning the arena storage */
    size_t arena_bytes, planned_bytes; /* arena size vs sum of planned values */
} kn_plan;

struct kn_graph {
    kn_gvalue *values;
    int32_t n_values, cap_values;
    kn_gnode *nodes;
    int32_t n_nodes, cap_nodes;
    int32_t *inputs, *outputs;
    int n_inputs, n_outputs, cap_inputs, cap_outputs;
    unsigned compile_flags;
    bool compiled;
    kn_plan *plan; /* built by kn_graph_compile */
    bool profiling;
    double *node_ms; /* per node, when profiling */
    int64_t *node_runs;
};

/* IR construction (graph.c). They return a value/node id, or -1 + error. */
int32_t kn__graph_add_value(kn_graph *g, kn_value_kind kind, kn_dtype dt, int ndim,
                            const int64_t *shape);
int32_t kn__graph_add_node(kn_graph *g, const kn_op_def *def, const void *attrs, int n_in,
                           const int32_t *in, int n_out);
/* Moves node n (its arrays and attrs now owned by g) to the end of g's
 * nodes, where its outputs are made; the passes re-order nodes with it. */
kn_status kn__graph_append_node(kn_graph *g, const kn_gnode *n);
/* A deep copy (values, nodes, attrs; bound tensors shared), not compiled. */
kn_graph *kn__graph_clone(const kn_graph *g);
/* The graph a traced tensor belongs to, if it is still alive. */
kn_graph *kn__graph_of(const kn_tensor *t);
/* Makes every use of value `from` (node inputs, graph outputs) use `to`. */
void kn__graph_replace_uses(kn_graph *g, int32_t from, int32_t to);
/* Number of uses of each value by live nodes and graph outputs. */
kn_status kn__graph_use_counts(const kn_graph *g, int32_t **counts);
/* Removes dead nodes and unused values, renumbering ids (keeps order). */
kn_status kn__graph_compact(kn_graph *g);
/* A node's attr named `name`, read through its op's schema (NULL if the op
 * has no such attr): passes use it without the op family's headers. */
const void *kn__node_attr(const kn_gnode *n, const char *name);
/* A symbolic tensor standing for value v (NULL for -1): ops given it trace
 * into g. New reference. */
kn_tensor *kn__graph_proxy(kn_graph *g, int32_t v);
/* The value of a tensor an op returned while tracing: its traced value, or
 * a new constant when it was computed from constants alone (-1 + error). */
int32_t kn__graph_value_of(kn_graph *g, kn_tensor *t);
/* A concrete tensor view of a const/param value (new ref). */
kn_tensor *kn__value_tensor(const kn_graph *g, int32_t v);
/* "op 'conv2d' (node 3, traced at model.c:42)" for messages. */
const char *kn__node_where(const kn_graph *g, int32_t n, char *buf, size_t size);

/* Tracing (trace.c): installs the dispatcher's trace hook. */
void kn__trace_install(void);

/* Passes (src/graph/passes): each rewrites g and keeps it valid. */
typedef kn_status (*kn_pass_fn)(kn_graph *g, unsigned flags);
/* Traces into g (after its nodes) the gradient of value y, seeded with
 * ones (the gradient of y's sum), with respect to values xs[0..n); grads[i]
 * gets the value holding d sum(y) / d xs[i], or -1 when y does not depend
 * on it. Used by the ONNX importer's Gradient op. Defined in grad.c. */
kn_status kn__graph_grad_values(kn_graph *g, int32_t y, int n, const int32_t *xs, int32_t *grads);
kn_status kn__pass_infer(kn_graph *g, unsigned flags);
kn_status kn__pass_dce(kn_graph *g, unsigned flags);
kn_status kn__pass_cse(kn_graph *g, unsigned flags);
kn_status kn__pass_fold(kn_graph *g, unsigned flags);
kn_status kn__pass_inference(kn_graph *g, unsigned flags);
kn_status kn__pass_bnfold(kn_graph *g, unsigned flags);
kn_status kn__pass_fuse(kn_graph *g, unsigned flags);
kn_status kn__pass_convfuse(kn_graph *g, unsigned flags);
kn_status kn__pass_layout(kn_graph *g, unsigned flags);
kn_status kn__pass_expand(kn_graph *g, unsigned flags);

/* Executor (exec.c). */
kn_status kn__plan_build(kn_graph *g);
void kn__plan_free(kn_plan *p);
/* Memory planning (passes/memplan.c): fills plan->end, offset, arena_bytes,
 * planned_bytes from plan->last_use. */
kn_status kn__memplan(kn_graph *g, kn_plan *p);
/* Checks that no two planned values whose lifetimes overlap share a byte,
 * and that every planned value fits the arena. */
kn_status kn__memplan_verify(const kn_graph *g, const kn_plan *p);
/* True for a node that runs a kernel into fresh outputs (not a view or a
 * composite, whose outputs may alias inputs). */
bool kn__node_is_kernel(const kn_gnode *n);

#endif
