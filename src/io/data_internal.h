/* data_internal.h — helpers shared by the dataset, transform and loader
 * files: seed mixing and a strided copy that needs no thread pool (the
 * loader's workers call it). Relies on src/tensor only. */
#ifndef KILN_DATA_INTERNAL_H
#define KILN_DATA_INTERNAL_H

#include "../tensor/tensor.h"

/* splitmix64's finalizer: a bijective mix of 64 bits. */
static inline uint64_t kn__mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Copies t's elements (any strides, same dtype) row-major into dst, which
 * has room for numel(t) elements. */
void kn__data_copy_out(const kn_tensor *t, void *dst);

#endif
