/* loader.c — the data loader: batches in a seeded order, built in the
 * calling thread (n_workers 0) or by pthreads workers into a bounded ring of
 * `capacity` slots, handed out in order. Batch b's content depends only on
 * (seed, epoch, b), never on which worker built it. A worker claims batch b
 * only while b < head + capacity (head: the next batch the consumer takes),
 * so slot b % capacity is free; reset and free wait for busy workers and
 * never for the consumer, so early exits cannot deadlock.
 * Relies on src/tensor and the dataset and transform objects. */
#include "data_internal.h"

#include <pthread.h>
#include <stdio.h>

#define MSG_LEN 512

typedef struct slot {
    bool ready;
    kn_status status;
    kn_tensor *x, *y;
    char msg[MSG_LEN];
} slot;

struct kn_loader {
    kn_dataset *ds;
    const kn_transform *tf;
    int64_t n, batch_size, n_batches;
    bool shuffle, drop_last;
    uint64_t seed, epoch;
    int64_t *order; /* read by workers only while running */

    int n_workers, capacity;
    pthread_t *threads;
    int n_threads; /* started */
    pthread_mutex_t mu;
    pthread_cond_t work, ready, idle;
    slot *slots;
    int64_t head, claim;
    int busy;
    bool running, stop, failed;
    kn_status err;
    char err_msg[MSG_LEN];
};

/* ---------------------------------------------------------------- order */
static void make_order(kn_loader *ld)
{
    for (int64_t i = 0; i < ld->n; i++)
        ld->order[i] = i;
    if (!ld->shuffle) return;
    /* Fisher-Yates with Philox keyed by (seed, epoch). */
    uint64_t key = kn__mix64(kn__mix64(ld->seed) ^ kn__mix64(ld->epoch) ^ 0x5348554646ull);
    for (int64_t i = ld->n - 1; i > 0; i--) {
        uint32_t r[4];
        kn__philox(key, (uint64_t)i, r);
        uint64_t bits = (uint64_t)r[0] << 32 | r[1];
        int64_t j = (int64_t)(bits % (uint64_t)(i + 1)), t = ld->order[i];
        ld->order[i] = ld->order[j], ld->order[j] = t;
    }
}

/* ---------------------------------------------------------------- batches */
static bool same_geometry(const kn_tensor *a, const kn_tensor *b)
{
    if (a->dtype != b->dtype || a->ndim != b->ndim) return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

/* Stacks sample k of count into *batch (made at k = 0 from the sample). */
static kn_status collate(const char *what, int64_t index, kn_tensor *sample, int64_t k,
                         int64_t count, kn_tensor **batch, kn_tensor **first)
{
    char a[96], b[96];
    if (k == 0) {
        if (sample->ndim + 1 > KN_MAX_DIMS)
            return kn__error(KN_ERR_SHAPE,
                             "loader_next: sample %lld: %s has %d dims, too many to batch",
                             (long long)index, what, sample->ndim);
        int64_t shape[KN_MAX_DIMS];
        shape[0] = count;
        memcpy(shape + 1, sample->shape, (size_t)sample->ndim * sizeof(int64_t));
        *batch = kn__tensor_new(sample->dtype, sample->ndim + 1, shape);
        if (!*batch) return kn_last_status();
        *first = kn_tensor_ref(sample);
    } else if (!same_geometry(sample, *first)) {
        return kn__error(
            KN_ERR_SHAPE, "loader_next: sample %lld: %s is %s %s but the batch's first is %s %s",
            (long long)index, what, kn_dtype_name(sample->dtype),
            kn__shape_str(sample->ndim, sample->shape, a, sizeof a), kn_dtype_name((*first)->dtype),
            kn__shape_str((*first)->ndim, (*first)->shape, b, sizeof b));
    }
    int64_t per = kn__shape_numel(sample->ndim, sample->shape);
    kn__data_copy_out(sample, (char *)kn_tensor_data(*batch) +
                                  (size_t)(k * per) * kn_dtype_size(sample->dtype));
    return KN_OK;
}

/* One sample: get, transform, collate. */
static kn_status load_sample(kn_loader *ld, int64_t index, int64_t k, int64_t count, kn_tensor **xb,
                             kn_tensor **yb, kn_tensor **x0, kn_tensor **y0)
{
    kn_tensor *x, *y;
    kn_status s = kn_dataset_get(ld->ds, index, &x, &y);
    if (s) return s;
    if (ld->tf) {
        /* The sample's seed: (seed, epoch, index), whatever thread runs it. */
        uint64_t seed = kn__mix64(kn__mix64(kn__mix64(ld->seed) ^ ld->epoch) ^ (uint64_t)index);
        kn_tensor *t = kn_transform_apply(ld->tf, x, seed);
        kn_tensor_unref(x);
        x = t;
        if (!x) s = kn_last_status();
    }
    if (!s && k > 0 && (y == NULL) != (*yb == NULL))
        s = kn__error(KN_ERR_ARG, "loader_next: sample %lld %s a label but the batch's first %s",
                      (long long)index, y ? "has" : "has no", y ? "has none" : "has one");
    if (!s) s = collate("x", index, x, k, count, xb, x0);
    if (!s && y) s = collate("y", index, y, k, count, yb, y0);
    kn_tensor_unref(x), kn_tensor_unref(y);
    return s;
}

/* Builds batch b; on error the message names the sample. */
static kn_status make_batch(kn_loader *ld, int64_t b, kn_tensor **xb, kn_tensor **yb)
{
    int64_t begin = b * ld->batch_size, end = begin + ld->batch_size;
    if (end > ld->n) end = ld->n;
    kn_tensor *x0 = NULL, *y0 = NULL;
    kn_status s = KN_OK;
    *xb = *yb = NULL;
    for (int64_t i = begin; i < end && !s; i++) {
        int64_t index = ld->order[i];
        s = load_sample(ld, index, i - begin, end - begin, xb, yb, &x0, &y0);
        if (s && !strstr(kn_last_error(), "loader_next: sample")) {
            char msg[MSG_LEN];
            snprintf(msg, sizeof msg, "%s", kn_last_error());
            kn__error(s, "loader_next: sample %lld (batch %lld): %s", (long long)index,
                      (long long)b, msg);
        }
    }
    kn_tensor_unref(x0), kn_tensor_unref(y0);
    if (s) {
        kn_tensor_unref(*xb), kn_tensor_unref(*yb);
        *xb = *yb = NULL;
    }
    return s;
}

/* ---------------------------------------------------------------- workers */
static void *worker_main(void *arg)
{
    kn_loader *ld = arg;
    pthread_mutex_lock(&ld->mu);
    while (!ld->stop) {
        if (ld->running && !ld->failed && ld->claim < ld->n_batches &&
            ld->claim < ld->head + ld->capacity) {
            int64_t b = ld->claim++;
            ld->busy++;
            pthread_mutex_unlock(&ld->mu);
            kn_tensor *x, *y;
            kn_status s = make_batch(ld, b, &x, &y);
            pthread_mutex_lock(&ld->mu);
            slot *sl = &ld->slots[b % ld->capacity];
            assert(!sl->ready);
            sl->ready = true, sl->status = s, sl->x = x, sl->y = y;
            if (s) snprintf(sl->msg, sizeof sl->msg, "%s", kn_last_error());
            ld->busy--;
            pthread_cond_broadcast(&ld->ready);
            if (ld->busy == 0) pthread_cond_broadcast(&ld->idle);
            continue;
        }
        pthread_cond_wait(&ld->work, &ld->mu);
    }
    pthread_mutex_unlock(&ld->mu);
    return NULL;
}

/* Stops handing out work, waits for busy workers and drops ready batches.
 * Called with mu held. */
static void drain(kn_loader *ld)
{
    ld->running = false;
    while (ld->busy > 0)
        pthread_cond_wait(&ld->idle, &ld->mu);
    for (int i = 0; i < ld->capacity; i++) {
        slot *sl = &ld->slots[i];
        if (sl->ready) kn_tensor_unref(sl->x), kn_tensor_unref(sl->y);
        sl->ready = false, sl->x = sl->y = NULL;
    }
}

static void stop_workers(kn_loader *ld)
{
    if (ld->n_threads == 0) return;
    pthread_mutex_lock(&ld->mu);
    ld->stop = true;
    pthread_cond_broadcast(&ld->work);
    pthread_mutex_unlock(&ld->mu);
    for (int i = 0; i < ld->n_threads; i++)
        pthread_join(ld->threads[i], NULL);
    ld->n_threads = 0;
}

/* ---------------------------------------------------------------- API */
kn_loader *kn_loader_new(kn_dataset *ds, int64_t batch_size, bool shuffle, bool drop_last,
                         uint64_t seed, int n_workers, int prefetch)
{
    const char *who = "loader_new";
    if (!ds) return kn__error_null(KN_ERR_ARG, "%s: ds is NULL", who);
    if (batch_size < 1)
        return kn__error_null(KN_ERR_ARG, "%s: batch_size is %lld, expected >= 1", who,
                              (long long)batch_size);
    if (n_workers < 0 || n_workers > 256)
        return kn__error_null(KN_ERR_ARG, "%s: n_workers is %d, expected 0..256", who, n_workers);
    if (prefetch < 0 || prefetch > 4096)
        return kn__error_null(
            KN_ERR_ARG, "%s: prefetch is %d, expected 0..4096 (0: two per worker)", who, prefetch);
    kn_loader *ld = kn_alloc(sizeof *ld);
    if (!ld) return NULL;
    int64_t n = kn_dataset_len(ds);
    *ld = (kn_loader){.ds = ds,
                      .n = n,
                      .batch_size = batch_size,
                      .shuffle = shuffle,
                      .drop_last = drop_last,
                      .seed = seed,
                      .n_workers = n_workers};
    ld->n_batches = drop_last ? n / batch_size : n / batch_size + (n % batch_size != 0);
    ld->capacity = n_workers == 0 ? 1 : prefetch ? prefetch : 2 * n_workers;
    ld->order = kn_alloc((size_t)(n ? n : 1) * sizeof(int64_t));
    ld->slots = ld->order ? kn_alloc((size_t)ld->capacity * sizeof(slot)) : NULL;
    ld->threads = ld->slots && n_workers ? kn_alloc((size_t)n_workers * sizeof(pthread_t)) : NULL;
    if (!ld->slots || (n_workers && !ld->threads)) {
        kn_free(ld->threads), kn_free(ld->slots), kn_free(ld->order), kn_free(ld);
        return NULL;
    }
    memset(ld->slots, 0, (size_t)ld->capacity * sizeof(slot));
    make_order(ld);
    pthread_mutex_init(&ld->mu, NULL);
    pthread_cond_init(&ld->work, NULL);
    pthread_cond_init(&ld->ready, NULL);
    pthread_cond_init(&ld->idle, NULL);
    for (int i = 0; i < n_workers; i++) {
        if (pthread_create(&ld->threads[i], NULL, worker_main, ld) != 0) {
            kn_loader_free(ld);
            return kn__error_null(KN_ERR_INTERNAL, "%s: cannot start worker thread %d", who, i);
        }
        ld->n_threads++;
    }
    return ld;
}

kn_status kn_loader_set_transform(kn_loader *ld, const kn_transform *t)
{
    if (!ld) return kn__error(KN_ERR_ARG, "loader_set_transform: ld is NULL");
    pthread_mutex_lock(&ld->mu);
    bool started = ld->running || ld->head > 0 || ld->failed;
    if (!started) ld->tf = t;
    pthread_mutex_unlock(&ld->mu);
    if (started)
        return kn__error(KN_ERR_STATE,
                         "loader_set_transform: the epoch has started; call loader_reset first");
    return KN_OK;
}

static kn_status fail(kn_loader *ld, kn_status s, const char *msg)
{
    ld->failed = true;
    ld->err = s;
    if (msg != ld->err_msg) snprintf(ld->err_msg, sizeof ld->err_msg, "%s", msg);
    return kn__error(s, "%s", ld->err_msg); /* msg may be kn_last_error() itself */
}

kn_status kn_loader_next(kn_loader *ld, kn_tensor **x, kn_tensor **y)
{
    if (!ld || !x || !y)
        return kn__error(KN_ERR_ARG, "loader_next: %s is NULL", !ld ? "ld" : !x ? "x" : "y");
    *x = *y = NULL;
    pthread_mutex_lock(&ld->mu);
    kn_status s = KN_OK;
    if (ld->failed) {
        s = kn__error(ld->err, "%s", ld->err_msg);
    } else if (ld->head >= ld->n_batches) {
        ld->running = false; /* end of epoch: nothing left to do */
    } else if (ld->n_workers == 0) {
        ld->running = true;
        s = make_batch(ld, ld->head++, x, y);
        if (s) fail(ld, s, kn_last_error());
    } else {
        if (!ld->running) {
            ld->running = true;
            pthread_cond_broadcast(&ld->work);
        }
        slot *sl = &ld->slots[ld->head % ld->capacity];
        while (!sl->ready)
            pthread_cond_wait(&ld->ready, &ld->mu);
        s = sl->status, *x = sl->x, *y = sl->y;
        sl->ready = false, sl->x = sl->y = NULL;
        ld->head++;
        pthread_cond_broadcast(&ld->work);
        if (s) fail(ld, s, sl->msg);
    }
    pthread_mutex_unlock(&ld->mu);
    return s;
}

kn_status kn_loader_reset(kn_loader *ld, uint64_t epoch)
{
    if (!ld) return kn__error(KN_ERR_ARG, "loader_reset: ld is NULL");
    pthread_mutex_lock(&ld->mu);
    drain(ld);
    ld->head = ld->claim = 0;
    ld->failed = false;
    ld->epoch = epoch;
    make_order(ld);
    pthread_mutex_unlock(&ld->mu);
    return KN_OK;
}

int64_t kn_loader_len(const kn_loader *ld)
{
    return ld ? ld->n_batches : 0;
}

uint64_t kn_loader_epoch(const kn_loader *ld)
{
    return ld ? ld->epoch : 0;
}

void kn_loader_free(kn_loader *ld)
{
    if (!ld) return;
    stop_workers(ld);
    pthread_mutex_lock(&ld->mu);
    drain(ld);
    pthread_mutex_unlock(&ld->mu);
    pthread_mutex_destroy(&ld->mu);
    pthread_cond_destroy(&ld->work);
    pthread_cond_destroy(&ld->ready);
    pthread_cond_destroy(&ld->idle);
    kn_free(ld->threads), kn_free(ld->slots), kn_free(ld->order);
    kn_free(ld);
}
