/* shape.h — attribute structs of the shape family, shared with ops that
 * build on them. */
#ifndef KILN_SHAPE_H
#define KILN_SHAPE_H

#include "op.h"

typedef struct kn_shape_attrs {
    kn_ints shape; /* reshape, expand */
} kn_shape_attrs;

typedef struct kn_cast_attrs {
    kn_dtype dtype;
} kn_cast_attrs;

#endif
