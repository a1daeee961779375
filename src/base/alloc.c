/* alloc.c — 64-byte aligned allocation through a replaceable hook, with live
 * and peak byte counts and a test mode that fails the n-th allocation.
 * Each block carries a 64-byte header holding its size, so kn_free needs none. */
#include "base.h"

#include <stdatomic.h>
#include <stdlib.h>

static void *default_alloc(size_t size, size_t align, void *user)
{
    (void)user;
    return aligned_alloc(align, (size + align - 1) / align * align);
}

static void default_free(void *p, void *user)
{
    (void)user;
    free(p);
}

static kn_allocator current = {default_alloc, default_free, NULL};
static _Atomic size_t live_bytes, peak_bytes;
static _Atomic int64_t n_allocs, fail_at;

void kn_set_allocator(const kn_allocator *a)
{
    if (a && a->alloc && a->free)
        current = *a;
    else
        current = (kn_allocator){default_alloc, default_free, NULL};
}

void kn_alloc_fail_after(int64_t n)
{
    atomic_store(&fail_at, n > 0 ? atomic_load(&n_allocs) + n : 0);
}

static void note_peak(size_t live)
{
    size_t peak = atomic_load(&peak_bytes);
    while (live > peak && !atomic_compare_exchange_weak(&peak_bytes, &peak, live)) {
    }
}

void *kn_alloc(size_t size)
{
    int64_t index = atomic_fetch_add(&n_allocs, 1) + 1;
    int64_t fail = atomic_load(&fail_at);
    if (fail && index == fail)
        return kn__error_null(KN_ERR_NOMEM, "alloc: injected failure of allocation %lld",
                              (long long)index);
    if (size > SIZE_MAX - 2 * KN_ALIGN)
        return kn__error_null(KN_ERR_NOMEM, "alloc: %zu bytes is too large", size);
    char *block = current.alloc(size + KN_ALIGN, KN_ALIGN, current.user);
    if (!block) return kn__error_null(KN_ERR_NOMEM, "alloc: out of memory for %zu bytes", size);
    memcpy(block, &size, sizeof size);
    note_peak(atomic_fetch_add(&live_bytes, size) + size);
    return block + KN_ALIGN;
}

void kn_free(void *p)
{
    if (!p) return;
    char *block = (char *)p - KN_ALIGN;
    size_t size;
    memcpy(&size, block, sizeof size);
    atomic_fetch_sub(&live_bytes, size);
    current.free(block, current.user);
}

size_t kn_alloc_live_bytes(void)
{
    return atomic_load(&live_bytes);
}
size_t kn_alloc_peak_bytes(void)
{
    return atomic_load(&peak_bytes);
}
int64_t kn_alloc_count(void)
{
    return atomic_load(&n_allocs);
}
