/* reduce.h — attributes and the shared machinery of reductions. */
#ifndef KILN_REDUCE_H
#define KILN_REDUCE_H

#include "op.h"

typedef struct kn_reduce_attrs {
    kn_ints axes; /* n == 0: all axes */
    bool keepdim;
} kn_reduce_attrs;

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

#endif
