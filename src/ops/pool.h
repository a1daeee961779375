/* pool.h — the attribute struct shared by every op of the pool family
 * (pool.c), for the tests and later the graph layer, which call the internal
 * gradient ops max_pool_grad and resample_grad directly. */
#ifndef KILN_POOL_H
#define KILN_POOL_H

#include "op.h"

/* Which forward op a gradient op serves (attrs.kind of max_pool_grad and
 * resample_grad); forward ops know their own kind. */
enum kn_pool_kind {
    KN_POOL_MAX = 0,
    KN_POOL_AVG,
    KN_POOL_ADAPTIVE_MAX,
    KN_POOL_ADAPTIVE_AVG,
    KN_POOL_NEAREST,
    KN_POOL_BILINEAR,
    KN_POOL_KIND_COUNT
};

typedef struct kn_pool_attrs {
    kn_ints kernel, stride, pad_begin, pad_end; /* n = spatial dims; stride 0 = kernel */
    bool ceil_mode, count_include_pad, align_corners;
    int64_t layout;   /* kn_layout */
    kn_ints out_size; /* adaptive pools and upsampling: (out_h, out_w) */
    int64_t kind;     /* max_pool_grad, resample_grad: enum kn_pool_kind */
} kn_pool_attrs;

#endif
