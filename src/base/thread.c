/* thread.c — one pool of worker threads and kn_parallel_for. Work is cut into
 * chunks whose bounds depend only on (n, grain); threads take chunks in any
 * order, so a kernel that writes per-chunk results and combines them in chunk
 * order gives the same bits on any thread count. */
#include "base.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_CHUNKS 256
#define MAX_THREADS 256

typedef struct job {
    kn_range_fn fn;
    void *ctx;
    int64_t n, chunk, n_chunks;
    atomic_llong next;
    atomic_llong done;
} job;

static struct {
    pthread_mutex_t lock; /* guards the fields below */
    pthread_cond_t wake, idle;
    pthread_mutex_t submit; /* one parallel_for at a time uses the pool */
    pthread_t threads[MAX_THREADS];
    int n_workers; /* threads started (n_threads - 1) */
    int n_threads; /* 0 until first use */
    _Atomic uint64_t generation; /* written under lock, also read by spinning workers */
    job *current;
    int busy; /* workers inside the current job */
    bool stopping;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER,
          .idle = PTHREAD_COND_INITIALIZER,
          .submit = PTHREAD_MUTEX_INITIALIZER};

static _Thread_local bool in_parallel;

/* A worker polls for new work this many times before sleeping: waking a
 * sleeping thread costs tens of microseconds, more than many kernels take. */
#define SPIN_ROUNDS 4000

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void spin_for_work(uint64_t seen)
{
    for (int i = 0; i < SPIN_ROUNDS && atomic_load_explicit(&pool.generation, memory_order_acquire) == seen; i++)
        cpu_relax();
}

/* Clears the upper halves of the vector registers after a chunk: a kernel
 * that returns with them dirty (compilers do not always emit vzeroupper)
 * makes later SSE code — libm, memcpy — on this thread many times slower. */
static void clear_upper_vectors(void)
{
#if KILN_X86
    static atomic_int has_avx = -1;
    int h = atomic_load_explicit(&has_avx, memory_order_relaxed);
    if (h < 0) atomic_store(&has_avx, h = (kn_cpu_features() & KN_CPU_AVX2) != 0);
    if (h) __asm__ volatile("vzeroupper" ::: "memory");
#endif
}

static void run_chunks(job *j)
{
    for (;;) {
        int64_t c = atomic_fetch_add(&j->next, 1);
        if (c >= j->n_chunks) break;
        int64_t begin = c * j->chunk, end = begin + j->chunk;
        j->fn(begin, end < j->n ? end : j->n, j->ctx);
        clear_upper_vectors();
        atomic_fetch_add(&j->done, 1);
    }
}

static void *worker_main(void *arg)
{
    (void)arg;
    in_parallel = true;
    uint64_t seen = 0;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        if (!pool.stopping && pool.generation == seen) {
            pthread_mutex_unlock(&pool.lock);
            spin_for_work(seen);
            pthread_mutex_lock(&pool.lock);
        }
        while (!pool.stopping && pool.generation == seen)
            pthread_cond_wait(&pool.wake, &pool.lock);
        if (pool.stopping) break;
        seen = pool.generation;
        job *j = pool.current;
        if (!j) continue; /* woke after the job had already finished */
        pool.busy++;
        pthread_mutex_unlock(&pool.lock);
        run_chunks(j);
        pthread_mutex_lock(&pool.lock);
        if (--pool.busy == 0) pthread_cond_broadcast(&pool.idle);
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

static int default_threads(void)
{
    const char *env = getenv("KILN_NUM_THREADS");
    if (env && atoi(env) > 0) return atoi(env);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void stop_workers(void)
{
    pthread_mutex_lock(&pool.lock);
    pool.stopping = true;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    for (int i = 0; i < pool.n_workers; i++)
        pthread_join(pool.threads[i], NULL);
    pool.n_workers = 0;
    pool.stopping = false;
}

/* Called with pool.submit held. */
static void ensure_started(void)
{
    if (pool.n_threads == 0) pool.n_threads = default_threads();
    int want = pool.n_threads - 1;
    if (want > MAX_THREADS) want = MAX_THREADS;
    while (pool.n_workers < want) {
        if (pthread_create(&pool.threads[pool.n_workers], NULL, worker_main, NULL) != 0) {
            pool.n_threads = pool.n_workers + 1; /* run with what we have */
            break;
        }
        pool.n_workers++;
    }
}

static void shutdown_pool(void)
{
    stop_workers();
}

void kn_set_num_threads(int n)
{
    static bool registered;
    pthread_mutex_lock(&pool.submit);
    if (n < 1) n = default_threads();
    if (n > MAX_THREADS + 1) n = MAX_THREADS + 1;
    if (pool.n_workers > n - 1) stop_workers();
    pool.n_threads = n;
    if (!registered) registered = atexit(shutdown_pool) == 0;
    pthread_mutex_unlock(&pool.submit);
}

int kn_get_num_threads(void)
{
    if (pool.n_threads == 0) kn_set_num_threads(0);
    return pool.n_threads;
}

void kn_parallel_for(int64_t n, int64_t grain, kn_range_fn fn, void *ctx)
{
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t chunk = (n + MAX_CHUNKS - 1) / MAX_CHUNKS;
    if (chunk < grain) chunk = grain;
    int64_t n_chunks = (n + chunk - 1) / chunk;
    job j = {.fn = fn, .ctx = ctx, .n = n, .chunk = chunk, .n_chunks = n_chunks};
    if (n_chunks == 1 || in_parallel || kn_get_num_threads() == 1 ||
        pthread_mutex_trylock(&pool.submit) != 0) {
        run_chunks(&j); /* same chunks, one thread */
        return;
    }
    ensure_started();
    pthread_mutex_lock(&pool.lock);
    pool.current = &j;
    pool.generation++;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    in_parallel = true;
    run_chunks(&j);
    in_parallel = false;
    for (int i = 0; i < SPIN_ROUNDS && atomic_load(&j.done) < n_chunks; i++)
        cpu_relax();
    pthread_mutex_lock(&pool.lock);
    /* wait until every chunk ran and no worker still holds a pointer to j */
    while (pool.busy > 0 || atomic_load(&j.done) < n_chunks)
        pthread_cond_wait(&pool.idle, &pool.lock);
    pool.current = NULL;
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.submit);
}
