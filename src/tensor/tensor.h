/* tensor.h — the kn_tensor struct (refcounted storage + strided view), and
 * the strided N-d iterator that reference kernels are built on.
 * Relies on src/base only. */
#ifndef KILN_TENSOR_H
#define KILN_TENSOR_H

#include "../base/base.h"

#include <stdatomic.h>

typedef struct kn_storage {
    atomic_int refcount;
    void *data;
    size_t nbytes;
    bool owned;                              /* data came from kn_alloc */
    void (*release)(void *data, void *user); /* for borrowed data, may be NULL */
    void *user;
    uint64_t version; /* bumped by every in-place write, for autograd */
} kn_storage;

struct kn__node;

struct kn_tensor {
    atomic_int refcount;
    kn_dtype dtype;
    int ndim;
    int64_t shape[KN_MAX_DIMS];
    int64_t strides[KN_MAX_DIMS]; /* in elements; may be 0 (broadcast) or negative-free */
    int64_t offset;               /* in elements, from storage->data */
    kn_storage *storage;          /* NULL for a symbolic tensor */
    /* autograd */
    bool requires_grad;
    kn_tensor *grad;          /* accumulated gradient of a leaf */
    struct kn__node *grad_fn; /* node that produced it (borrowed: the tape owns nodes) */
    int out_index;
    kn_tensor *bw_grad; /* gradient being built during backward */
    /* tracing: a symbolic tensor that stands for value `trace_value` of a
     * graph (opaque here: the graph layer owns it) */
    void *trace_graph;
    int32_t trace_value;
};

/* Most elements a tensor may have (keeps byte sizes far from overflow). */
#define KN__MAX_NUMEL (INT64_MAX / 16)
/* True when a shape has negative dims or more than KN__MAX_NUMEL elements:
 * infer functions check outputs with it so the error names the op. */
static inline bool kn__shape_too_big(int ndim, const int64_t *shape)
{
    int64_t n = kn__shape_numel(ndim, shape);
    return n < 0 || n > KN__MAX_NUMEL;
}

/* Contiguous, uninitialized tensor; NULL + error on bad shape or no memory. */
kn_tensor *kn__tensor_new(kn_dtype dt, int ndim, const int64_t *shape);
/* A view of base's storage with the given geometry (no checks). */
kn_tensor *kn__tensor_view(kn_tensor *base, int ndim, const int64_t *shape, const int64_t *strides,
                           int64_t offset);
/* A contiguous tensor over `s` starting `byte_offset` bytes in (a multiple of
 * the dtype size), sharing the storage: how a memory plan carves an arena. */
kn_tensor *kn__tensor_on_storage(kn_storage *s, size_t byte_offset, kn_dtype dt, int ndim,
                                 const int64_t *shape);
/* Checks a user-given shape: 0 <= ndim <= KN_MAX_DIMS, dims >= 0, no overflow. */
kn_status kn__check_shape(const char *who, int ndim, const int64_t *shape);
void kn__contiguous_strides(int ndim, const int64_t *shape, int64_t *strides);
static inline char *kn__tensor_ptr(const kn_tensor *t)
{
    return (char *)t->storage->data + t->offset * (int64_t)kn_dtype_size(t->dtype);
}
/* Normalizes a possibly negative axis; false if out of [−ndim, ndim). */
bool kn__norm_axis(int *axis, int ndim);
/* Broadcasts two shapes NumPy-style; error names `who`. */
kn_status kn__broadcast_shapes(const char *who, int na, const int64_t *a, int nb, const int64_t *b,
                               int *nout, int64_t *out);
/* Copies src into dst (same dtype or not), src broadcast to dst's shape. */
kn_status kn__copy_into(kn_tensor *dst, const kn_tensor *src);
void kn__bump_version(kn_tensor *t);
const char *kn__shape_str(int ndim, const int64_t *shape, char *buf, size_t n);

/* ---- strided iteration over up to KN_ITER_MAX operands of one shape */
#define KN_ITER_MAX 4
typedef struct kn_iter {
    int n_ops, ndim;
    int64_t shape[KN_MAX_DIMS];
    int64_t strides[KN_ITER_MAX][KN_MAX_DIMS]; /* bytes */
    char *base[KN_ITER_MAX];
} kn_iter;
/* Inner loop over n elements; ptrs[k] steps by strides[k] bytes. */
typedef void (*kn_iter_loop)(char **ptrs, const int64_t *strides, int64_t n, void *ctx);
/* ops[k] are broadcast to shape (their trailing dims aligned). Dims are
 * merged where every operand allows it. */
void kn__iter_init(kn_iter *it, int n_ops, const kn_tensor *const *ops, int ndim,
                   const int64_t *shape);
/* Runs fn over all elements, in parallel chunks when `parallel`. */
void kn__iter_run(const kn_iter *it, kn_iter_loop fn, void *ctx, bool parallel);

#endif
