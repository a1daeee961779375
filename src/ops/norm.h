/* norm.h — attribute structs of the norm family (norm.c), for the tests and
 * the graph layer, which call the internal op `normalize` directly. */
#ifndef KILN_NORM_H
#define KILN_NORM_H

#include "op.h"

/* normalize: axes = reduced axes, eps, center (false: RMS, mean taken as 0);
 * layer_norm/rms_norm: axes.v[0] = n_axes, eps; group_norm: groups, eps;
 * instance_norm: eps; batch_norm: training, momentum, eps, layout. */
typedef struct kn_norm_attrs {
    kn_ints axes;
    double eps, momentum;
    bool center, training;
    int64_t groups, layout;
} kn_norm_attrs;

typedef struct kn_softmax_attrs {
    int64_t axis;
} kn_softmax_attrs;

/* dropout: p, and the stream position of element 0 (seed, offset: uint64 bit
 * patterns) that kn_dropout reserves from the global RNG. */
typedef struct kn_dropout_attrs {
    double p;
    int64_t seed, offset;
    int64_t count; /* elements: how much of the stream one run draws */
} kn_dropout_attrs;

#endif
