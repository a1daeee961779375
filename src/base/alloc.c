/* alloc.c — 64-byte aligned allocation through a replaceable hook, with live
 * and peak byte counts and a test mode that fails the n-th allocation.
 * Each block carries a 64-byte header (requested size, capacity). Large
 * blocks (>= 64 KiB) are pooled by size class when freed and handed out
 * again, so eager code does not page-fault fresh memory on every op; the
 * pool holds at most KN_POOL_MAX bytes and is emptied when the allocator
 * hook changes. */
#include "base.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define POOL_MIN ((size_t)64 << 10)
#define POOL_MAX_BYTES ((size_t)512 << 20)
#define N_CLASSES 128 /* 4 classes per power of two from 64 KiB */

typedef struct header {
    size_t size;     /* what the caller asked for (live-byte accounting) */
    size_t capacity; /* usable bytes after the header */
    struct header *next_free;
} header;

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

static struct {
    pthread_mutex_t lock;
    header *free[N_CLASSES];
    size_t bytes;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Size class of a large block and its capacity: 4 steps per power of two. */
static int size_class(size_t size, size_t *capacity)
{
    int cls = 0;
    for (size_t base = POOL_MIN; cls < N_CLASSES; base *= 2) {
        for (int q = 1; q <= 4; q++, cls++) {
            size_t cap = base + base / 4 * (size_t)(q - 1);
            if (q == 4) cap = base * 2 - base / 4;
            if (size <= cap) {
                *capacity = cap;
                return cls;
            }
        }
        if (base > SIZE_MAX / 4) break;
    }
    *capacity = size;
    return -1;
}

static void pool_drain(void)
{
    pthread_mutex_lock(&pool.lock);
    for (int c = 0; c < N_CLASSES; c++) {
        while (pool.free[c]) {
            header *h = pool.free[c];
            pool.free[c] = h->next_free;
            current.free(h, current.user);
        }
    }
    pool.bytes = 0;
    pthread_mutex_unlock(&pool.lock);
}

void kn_set_allocator(const kn_allocator *a)
{
    pool_drain(); /* pooled blocks belong to the old hook */
    if (a && a->alloc && a->free) current = *a;
    else current = (kn_allocator){default_alloc, default_free, NULL};
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

static header *pool_take(int cls)
{
    pthread_mutex_lock(&pool.lock);
    header *h = pool.free[cls];
    if (h) {
        pool.free[cls] = h->next_free;
        pool.bytes -= h->capacity;
    }
    pthread_mutex_unlock(&pool.lock);
    return h;
}

void *kn_alloc(size_t size)
{
    int64_t index = atomic_fetch_add(&n_allocs, 1) + 1;
    int64_t fail = atomic_load(&fail_at);
    if (fail && index == fail)
        return kn__error_null(KN_ERR_NOMEM, "alloc: injected failure of allocation %lld",
                              (long long)index);
    if (size > SIZE_MAX / 2)
        return kn__error_null(KN_ERR_NOMEM, "alloc: %zu bytes is too large", size);
    size_t capacity = size;
    int cls = size >= POOL_MIN ? size_class(size, &capacity) : -1;
    header *h = cls >= 0 ? pool_take(cls) : NULL;
    if (!h) h = current.alloc(capacity + KN_ALIGN, KN_ALIGN, current.user);
    if (!h) return kn__error_null(KN_ERR_NOMEM, "alloc: out of memory for %zu bytes", size);
    h->size = size;
    h->capacity = capacity;
    note_peak(atomic_fetch_add(&live_bytes, size) + size);
    return (char *)h + KN_ALIGN;
}

void kn_free(void *p)
{
    if (!p) return;
    header *h = (header *)((char *)p - KN_ALIGN);
    atomic_fetch_sub(&live_bytes, h->size);
    size_t capacity;
    int cls = h->capacity >= POOL_MIN ? size_class(h->capacity, &capacity) : -1;
    if (cls >= 0 && capacity == h->capacity) {
        pthread_mutex_lock(&pool.lock);
        bool keep = pool.bytes + h->capacity <= POOL_MAX_BYTES;
        if (keep) {
            h->next_free = pool.free[cls];
            pool.free[cls] = h;
            pool.bytes += h->capacity;
        }
        pthread_mutex_unlock(&pool.lock);
        if (keep) return;
    }
    current.free(h, current.user);
}

size_t kn_alloc_live_bytes(void) { return atomic_load(&live_bytes); }
size_t kn_alloc_peak_bytes(void) { return atomic_load(&peak_bytes); }
int64_t kn_alloc_count(void) { return atomic_load(&n_allocs); }
