/* dataset.c — the kn_dataset object: a user get function, or samples taken
 * along the first dim of tensors (which the file datasets build on), and the
 * strided copy the loader and transforms share. Relies on src/tensor. */
#include "data_internal.h"

#include <stdlib.h>

struct kn_dataset {
    int64_t len;
    kn_dataset_get_fn get;
    void (*release)(void *user);
    void *user;
    kn_tensor *x, *y; /* tensor datasets; NULL for user ones */
};

void kn__data_copy_out(const kn_tensor *t, void *dst)
{
    size_t es = kn_dtype_size(t->dtype);
    int64_t n = kn__shape_numel(t->ndim, t->shape);
    if (n == 0) return;
    const char *src = kn__tensor_ptr(t);
    if (kn_tensor_is_contiguous(t)) {
        memcpy(dst, src, (size_t)n * es);
        return;
    }
    /* Odometer over all dims but the last, a strided inner loop. */
    int nd = t->ndim, last = nd - 1;
    int64_t idx[KN_MAX_DIMS] = {0}, inner = t->shape[last], is = t->strides[last];
    char *out = dst;
    for (int64_t done = 0; done < n; done += inner) {
        int64_t off = 0;
        for (int d = 0; d < last; d++)
            off += idx[d] * t->strides[d];
        for (int64_t k = 0; k < inner; k++, out += es)
            memcpy(out, src + (off + k * is) * (int64_t)es, es);
        for (int d = last - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d]) break;
            idx[d] = 0;
        }
    }
}

kn_dataset *kn_dataset_new(int64_t len, kn_dataset_get_fn get, void (*release)(void *user),
                           void *user)
{
    if (len < 0)
        return kn__error_null(KN_ERR_ARG, "dataset_new: len is %lld, expected >= 0",
                              (long long)len);
    if (!get) return kn__error_null(KN_ERR_ARG, "dataset_new: get is NULL");
    kn_dataset *ds = kn_alloc(sizeof *ds);
    if (!ds) return NULL;
    *ds = (kn_dataset){.len = len, .get = get, .release = release, .user = user};
    return ds;
}

/* The i-th slice of t along dim 0, as a view. */
static kn_tensor *row_view(kn_tensor *t, int64_t i)
{
    return kn__tensor_view(t, t->ndim - 1, t->shape + 1, t->strides + 1,
                           t->offset + i * t->strides[0]);
}

static kn_status tensors_get(kn_dataset *ds, int64_t index, kn_tensor **x, kn_tensor **y)
{
    *x = row_view(ds->x, index);
    *y = ds->y && *x ? row_view(ds->y, index) : NULL;
    if (!*x || (ds->y && !*y)) {
        kn_tensor_unref(*x);
        *x = NULL;
        return kn_last_status();
    }
    return KN_OK;
}

kn_dataset *kn_dataset_tensors(kn_tensor *x, kn_tensor *y)
{
    const char *who = "dataset_tensors";
    if (!x) return kn__error_null(KN_ERR_ARG, "%s: x is NULL", who);
    if (kn_tensor_is_symbolic(x) || (y && kn_tensor_is_symbolic(y)))
        return kn__error_null(KN_ERR_ARG, "%s: %s is symbolic (has no data)", who,
                              kn_tensor_is_symbolic(x) ? "x" : "y");
    if (x->ndim < 1 || (y && y->ndim < 1))
        return kn__error_null(KN_ERR_SHAPE, "%s: %s is 0-d, expected a first (sample) dim", who,
                              x->ndim < 1 ? "x" : "y");
    if (y && y->shape[0] != x->shape[0])
        return kn__error_null(KN_ERR_SHAPE, "%s: x has %lld samples but y has %lld", who,
                              (long long)x->shape[0], (long long)y->shape[0]);
    kn_dataset *ds = kn_alloc(sizeof *ds);
    if (!ds) return NULL;
    *ds = (kn_dataset){.len = x->shape[0], .x = kn_tensor_ref(x), .y = kn_tensor_ref(y)};
    return ds;
}

void kn_dataset_free(kn_dataset *ds)
{
    if (!ds) return;
    if (ds->release) ds->release(ds->user);
    kn_tensor_unref(ds->x);
    kn_tensor_unref(ds->y);
    kn_free(ds);
}

int64_t kn_dataset_len(const kn_dataset *ds)
{
    return ds ? ds->len : 0;
}

kn_status kn_dataset_get(kn_dataset *ds, int64_t index, kn_tensor **x, kn_tensor **y)
{
    if (!ds || !x || !y)
        return kn__error(KN_ERR_ARG, "dataset_get: %s is NULL", !ds ? "ds" : !x ? "x" : "y");
    *x = *y = NULL;
    if (index < 0 || index >= ds->len)
        return kn__error(KN_ERR_ARG, "dataset_get: index %lld out of range [0, %lld)",
                         (long long)index, (long long)ds->len);
    kn_status s;
    if (ds->x) {
        s = tensors_get(ds, index, x, y);
    } else {
        kn_clear_error(); /* so a get that fails without a message is noticed */
        s = ds->get(ds->user, index, x, y);
        if (s != KN_OK && !kn_last_error()[0])
            kn__error(s, "dataset_get: sample %lld: get failed (%s)", (long long)index,
                      kn_status_name(s));
    }
    if (s == KN_OK && !*x)
        s = kn__error(KN_ERR_INTERNAL, "dataset_get: sample %lld: get returned no x",
                      (long long)index);
    if (s != KN_OK) {
        kn_tensor_unref(*x), kn_tensor_unref(*y);
        *x = *y = NULL;
    }
    return s;
}
