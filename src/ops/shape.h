/* shape.h — attribute structs of the shape and index families, and the few
 * helpers their files (shape.c, shape_copy.c, index.c) share. */
#ifndef KILN_SHAPE_H
#define KILN_SHAPE_H

#include "op.h"

typedef struct kn_shape_attrs {
    kn_ints shape; /* reshape, expand, tile (reps), permute (perm), squeeze (axes) */
} kn_shape_attrs;

typedef struct kn_cast_attrs {
    kn_dtype dtype;
} kn_cast_attrs;

/* One or two axes: unsqueeze/concat/stack (axis0), transpose and flatten
 * (axis0 .. axis1). */
typedef struct kn_axes2_attrs {
    int64_t axis0, axis1;
} kn_axes2_attrs;

/* slice: Python-like start/stop (negative counts from the end, clamped),
 * step > 0. narrow uses start and stop = start + length, step 1, unclamped. */
typedef struct kn_slice_attrs {
    int64_t axis, start, stop, step;
} kn_slice_attrs;

/* split: n parts of the given sizes; the tape copies attrs, so the sizes
 * live in a fixed array (kn_ints holds only KN_MAX_DIMS values). */
#define KN_SPLIT_MAX 64
typedef struct kn_split_attrs {
    int64_t axis, n;
    int64_t sizes[KN_SPLIT_MAX];
} kn_split_attrs;

typedef struct kn_chunk_attrs {
    int64_t chunks, axis;
} kn_chunk_attrs;

typedef struct kn_pad_attrs {
    kn_ints before, after; /* per axis, all ndim axes */
    int64_t mode;          /* kn_pad_mode */
    double value;          /* KN_PAD_CONSTANT */
} kn_pad_attrs;

typedef struct kn_repeat_attrs {
    int64_t repeats, axis;
} kn_repeat_attrs;

/* index family: gather, scatter, scatter_add, index_select (axis);
 * one_hot (depth, dtype); masked_fill (value). */
typedef struct kn_index_attrs {
    int64_t axis;
    int64_t depth;
    kn_dtype dtype;
    double value;
} kn_index_attrs;

/* Normalizes attribute axis v against ndim into *axis, or an error naming op. */
kn_status kn__shape_axis(const char *op, int64_t v, int ndim, int *axis);
/* A stack copy of t's geometry restricted to [start, start + len) along axis:
 * borrowed (no reference, never unref'd), for handing to kn__copy_into. */
void kn__borrowed_narrow(kn_tensor *view, const kn_tensor *t, int axis, int64_t start, int64_t len);
/* Element offset (in elements, from t's first element) of the i-th element of
 * t in row-major logical order. */
int64_t kn__strided_offset(const kn_tensor *t, int64_t i);

#endif
