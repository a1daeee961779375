/* op.h — the op contract: one kn_op_def per op, registered once in ops.def.
 * Everything that needs to know about an op reads its entry: eager dispatch,
 * autograd, (later) tracing, AMP, layout and export. Relies on src/tensor. */
#ifndef KILN_OP_H
#define KILN_OP_H

#include "../tensor/tensor.h"

#include <stddef.h>

/* ---- typed attributes: each op family has its own POD attribute struct
 * (no pointers: the tape copies it); the schema describes its fields. */
typedef struct kn_ints {
    int n;
    int64_t v[KN_MAX_DIMS];
} kn_ints;

typedef struct kn_attr_desc {
    const char *name;
    kn_attr_type type;
    size_t offset; /* of an int64_t, double, bool, kn_ints or kn_dtype field */
} kn_attr_desc;
#define KN_ATTR(strct, field, type)                                                                \
    {                                                                                              \
#field, type, offsetof(strct, field)                                                       \
    }

typedef enum kn_amp_class { KN_AMP_NONE = 0, KN_AMP_LOWP, KN_AMP_FP32, KN_AMP_WIDEST } kn_amp_class;
typedef enum kn_layout_class {
    KN_LAYOUT_AGNOSTIC = 0, /* elementwise: any layout */
    KN_LAYOUT_CHANNEL_AXIS, /* has a channel axis attr the layout pass rewrites */
    KN_LAYOUT_FIXED,        /* kernels per layout (conv, pool) */
} kn_layout_class;

/* What infer, kernels, view and compose functions see. For infer, outputs
 * are not yet allocated (out == NULL); inputs may be symbolic. */
typedef struct kn_op_args {
    const kn_op_def *def;
    kn_tensor *const *in;
    int n_in;
    kn_tensor **out;
    int n_out;
    const void *attrs;
    const void *prepacked; /* from def->prepack for these inputs, or NULL */
} kn_op_args;

typedef struct kn_out_meta {
    kn_dtype dtype;
    int ndim;
    int64_t shape[KN_MAX_DIMS];
} kn_out_meta;

typedef kn_status (*kn_infer_fn)(const kn_op_args *a, kn_out_meta *out);
typedef bool (*kn_accepts_fn)(const kn_op_args *a);
typedef kn_status (*kn_run_fn)(const kn_op_args *a);

/* One implementation; an op's list is ordered fast first, `ref` last, and
 * ends with an entry whose run is NULL. */
typedef struct kn_impl {
    const char *name;
    kn_isa isa;            /* needs at least this ISA (KILN_ISA caps it) */
    kn_accepts_fn accepts; /* NULL: accepts everything */
    kn_run_fn run;
} kn_impl;

/* Gradient: given upstream gradients of the outputs (NULL where none flows),
 * fill grad_in[i] with a new reference for every input with needs_grad[i]
 * (NULL means zero). Written with kn_ ops, so it records when asked.
 * A returned gradient may have the broadcast shape or another float dtype:
 * the engine sums it down to the input's shape and casts it. */
typedef struct kn_grad_args {
    const kn_op_def *def;
    const void *attrs;
    kn_tensor *const *in;
    int n_in;
    kn_tensor *const *out;
    int n_out;
    kn_tensor *const *grad_out;
    const bool *needs_grad;
    kn_tensor **grad_in;
} kn_grad_args;
typedef kn_status (*kn_grad_fn)(const kn_grad_args *g);

struct kn_op_def {
    const char *name;
    int n_in, n_out;      /* -1: variadic (count given by the caller) */
    uint32_t optional_in; /* bit i: input i may be NULL */
    uint32_t nondiff_in;  /* bit i: input i gets no gradient (indices, masks, stats) */
    const kn_attr_desc *attrs;
    int n_attrs;
    size_t attrs_size;
    uint32_t dtypes; /* bit (1 << dtype) per supported input dtype */
    kn_infer_fn infer;
    const kn_impl *impls; /* kernels that write freshly allocated outputs, or */
    kn_run_fn view;       /* makes the outputs views of an input, or */
    kn_run_fn compose;    /* computes the outputs with other kn_ ops */
    kn_grad_fn grad;
    const void *data; /* family-specific data for the kernels (e.g. a scalar fn) */
    /* Ops with per-run state kept in attrs (dropout's RNG offset): the graph
     * executor calls this on its copy of the attrs before every run. */
    void (*refresh)(void *attrs);
    /* Floating-point operations of one call, from shapes and attrs (inputs
     * may be symbolic; outputs are not given). NULL: one per output element. */
    int64_t (*flops)(const kn_op_args *a);
    /* Output 0 may be written over input 0 (same dtype and shape): each
     * output element depends only on the input elements at its index. */
    bool inplace;
    /* Effects beyond the outputs (in-place running stats, random draws):
     * graph passes never merge, drop or fold such a node. */
    bool stateful;
    kn_amp_class amp;
    kn_layout_class layout;
    /* Constant weights prepared once per compiled graph: when input
     * `prepack_in` of a node is a parameter or constant, the executor calls
     * prepack (inputs given, outputs not) and hands the result to the
     * kernels as a->prepacked until that input's data or version changes.
     * NULL from prepack (nothing to gain, or an error) runs unprepared. */
    void *(*prepack)(const kn_op_args *a);
    void (*prepack_free)(void *p);
    int prepack_in;
};

#define KN_DT(d) (1u << (d))
#define KN_DTYPES_FLOAT (KN_DT(KN_F32) | KN_DT(KN_F64) | KN_DT(KN_F16) | KN_DT(KN_BF16))
#define KN_DTYPES_INT (KN_DT(KN_I8) | KN_DT(KN_U8) | KN_DT(KN_I32) | KN_DT(KN_I64))
#define KN_DTYPES_ALL (KN_DTYPES_FLOAT | KN_DTYPES_INT | KN_DT(KN_BOOL))

/* Every op, declared from the X-macro list. */
#define X(name, family) extern const kn_op_def kn_op_##name;
#include "ops.def"
#undef X

/* Runs an op: checks arity and inputs, infers, allocates, picks the first
 * implementation that accepts, records for autograd. out[] gets new refs. */
kn_status kn__op_call(const kn_op_def *def, int n_in, kn_tensor *const *in, const void *attrs,
                      int n_out, kn_tensor **out);
/* The same, handing the kernels def->prepack's result for these inputs. */
kn_status kn__op_call_prepacked(const kn_op_def *def, int n_in, kn_tensor *const *in,
                                const void *attrs, int n_out, kn_tensor **out,
                                const void *prepacked);
/* Runs the first implementation that accepts `a`, whose outputs are already
 * allocated with the inferred shapes (the graph executor's fast path). */
kn_status kn__op_run_kernel(const kn_op_args *a);
/* The same for a single-output op: the output or NULL. */
kn_tensor *kn__op_call1(const kn_op_def *def, int n_in, kn_tensor *const *in, const void *attrs);

/* Autograd hooks, installed by src/autograd when recording is switched on
 * (ops never include the layer above them). */
typedef kn_status (*kn__record_fn)(const kn_op_args *a);
void kn__set_record_hook(kn__record_fn fn);
bool kn__record_active(void);
void kn__set_record_active(bool on);

/* Scratch list for temporaries in composite and gradient code: kn__keep(&s, t)
 * remembers t and returns it (NULL passes through, so a failed op in a chain
 * makes the next one fail with a message); kn__scratch_free releases all. */
#define KN_SCRATCH_MAX 64
typedef struct kn_scratch {
    int n;
    kn_tensor *t[KN_SCRATCH_MAX];
} kn_scratch;
kn_tensor *kn__keep(kn_scratch *s, kn_tensor *t);
void kn__scratch_free(kn_scratch *s);
/* A 0-d tensor of x's dtype holding v. */
kn_tensor *kn__scalar_like(const kn_tensor *x, double v);

/* Tracing hook, installed by src/graph: called instead of the kernels when
 * an input is a traced symbolic tensor (outputs are symbolic already). */
typedef kn_status (*kn__trace_fn)(const kn_op_args *a);
void kn__set_trace_hook(kn__trace_fn fn);
/* The user's call site of the current public op call (set by the macros in
 * kiln.h; "" and 0 when unknown). */
void kn__call_site(const char **file, int *line);

/* conv2d_fused's attrs (src/ops/conv_fused.c), for the fusion pass. */
size_t kn__conv_fused_attrs_size(void);
void kn__conv_fused_attrs_set(void *attrs, const kn_conv_params *p, int64_t act);
/* The geometry inside a conv2d_fused node's attrs (the layout pass rewrites it). */
kn_conv_params *kn__conv_fused_params(void *attrs);

/* y with a kn_act activation applied by its op (src/ops/conv_fused.c), for
 * the fused ops' reference paths; a new reference. */
kn_tensor *kn__activate(kn_tensor *y, int64_t act);
/* FLOPs of linear(x, w, bias) (src/ops/linalg.c), also linear_fused's. */
int64_t kn__linear_flops(const kn_op_args *a);

/* Helpers shared by op families. */
/* Sums g over broadcast dims so that it has the given shape. */
kn_tensor *kn__sum_to_shape(kn_tensor *g, int ndim, const int64_t *shape);
/* Error "op: input i is NULL" etc. for use in infer functions. */
kn_status kn__check_float(const kn_op_args *a, int i);
kn_status kn__check_same_dtype(const kn_op_args *a, int i, int j);

#endif
