/* reduce.h — attributes and the shared machinery of reductions (reduce.c)
 * and of the ops along one axis: cumsum, sort, argsort, topk (sort.c). */
#ifndef KILN_REDUCE_H
#define KILN_REDUCE_H

#include "op.h"

/* Every reduction's attribute struct starts with this one, so the shared
 * helpers read any of them through a kn_reduce_attrs pointer. */
typedef struct kn_reduce_attrs {
    kn_ints axes; /* n == 0: all axes */
    bool keepdim;
} kn_reduce_attrs;

typedef struct kn_var_attrs { /* var, std */
    kn_reduce_attrs r;
    bool unbiased; /* correction 1 (Bessel) or 0 */
} kn_var_attrs;

typedef struct kn_norm_attrs {
    kn_reduce_attrs r;
    int64_t p; /* 1 or 2 */
} kn_norm_attrs;

typedef struct kn_arg_attrs { /* argmax, argmin */
    int64_t axis;
    bool keepdim;
} kn_arg_attrs;

typedef struct kn_cumsum_attrs {
    int64_t axis;
    bool reverse; /* sums from the end (the gradient of cumsum) */
} kn_cumsum_attrs;

typedef struct kn_sort_attrs { /* sort, argsort */
    int64_t axis;
    bool descending;
} kn_sort_attrs;

typedef struct kn_topk_attrs {
    int64_t k, axis;
    bool largest, sorted; /* results are always sorted */
} kn_topk_attrs;

/* Fills attrs from a user's axes list (NULL/0 means all). */
kn_status kn__reduce_attrs(const char *who, kn_reduce_attrs *at, int n_axes, const int *axes,
                           bool keepdim);
/* Normalizes attrs' axes against x (negative axes, duplicates) into a mask. */
kn_status kn__reduce_mask(const char *who, const kn_reduce_attrs *at, int ndim, bool *mask);
/* Output shape of a reduction. */
void kn__reduce_shape(int ndim, const int64_t *shape, const bool *mask, bool keepdim,
                      kn_out_meta *out);
/* The keepdim shape of a reduction of x (for gradients). */
void kn__keepdim_shape(const kn_tensor *x, const kn_reduce_attrs *at, int64_t *shape);
/* Number of elements each output of the reduction combines. */
int64_t kn__reduce_count(const kn_tensor *x, const kn_reduce_attrs *at);

#endif
