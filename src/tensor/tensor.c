/* tensor.c — creation, refcounting, views and element access of kn_tensor.
 * Views share a refcounted storage; only the geometry differs. */
#include "tensor.h"

#include <stdint.h>

#include <math.h>
#include <stdio.h>

kn_status kn__check_shape(const char *who, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > KN_MAX_DIMS)
        return kn__error(KN_ERR_SHAPE, "%s: ndim %d is out of range [0, %d]", who, ndim,
                         KN_MAX_DIMS);
    if (ndim > 0 && !shape) return kn__error(KN_ERR_ARG, "%s: shape is NULL", who);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0)
            return kn__error(KN_ERR_SHAPE, "%s: dim %d is %lld, expected >= 0", who, i,
                             (long long)shape[i]);
    int64_t n = kn__shape_numel(ndim, shape);
    if (n < 0 || n > KN__MAX_NUMEL)
        return kn__error(KN_ERR_SHAPE, "%s: shape has too many elements (overflow)", who);
    return KN_OK;
}

void kn__contiguous_strides(int ndim, const int64_t *shape, int64_t *strides)
{
    /* an empty tensor holds nothing to address: unit strides, so huge
     * sizes beside a zero dim cannot overflow the products */
    bool empty = false;
    for (int i = 0; i < ndim; i++)
        empty |= shape[i] == 0;
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        strides[i] = s;
        if (!empty) s *= shape[i] > 0 ? shape[i] : 1;
    }
}

static kn_tensor *tensor_shell(kn_dtype dt, int ndim, const int64_t *shape)
{
    kn_tensor *t = kn_alloc(sizeof *t);
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    atomic_init(&t->refcount, 1);
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    kn__contiguous_strides(ndim, shape, t->strides);
    return t;
}

static kn_status check_dtype(const char *who, kn_dtype dt)
{
    if ((unsigned)dt >= KN_DTYPE_COUNT)
        return kn__error(KN_ERR_DTYPE, "%s: dtype %d is not a kn_dtype", who, (int)dt);
    return KN_OK;
}

/* A contiguous tensor owning a fresh allocation of `alloc` bytes, of which
 * the first nbytes are its elements (string tensors keep text after them). */
static kn_tensor *with_storage(kn_dtype dt, int ndim, const int64_t *shape, size_t alloc,
                               size_t nbytes)
{
    kn_tensor *t = tensor_shell(dt, ndim, shape);
    if (!t) return NULL;
    t->storage = kn_alloc(sizeof *t->storage);
    void *data = t->storage ? kn_alloc(alloc ? alloc : 1) : NULL;
    if (!data) {
        kn_free(t->storage);
        kn_free(t);
        return NULL;
    }
    memset(t->storage, 0, sizeof *t->storage);
    atomic_init(&t->storage->refcount, 1);
    t->storage->data = data;
    t->storage->nbytes = nbytes;
    t->storage->owned = true;
    return t;
}

kn_tensor *kn__tensor_new(kn_dtype dt, int ndim, const int64_t *shape)
{
    if (check_dtype("tensor", dt) || kn__check_shape("tensor", ndim, shape)) return NULL;
    if (dt == KN_STRING)
        return kn__error_null(KN_ERR_DTYPE, "tensor: string tensors are made by kn_tensor_from_strings "
                                            "(no op creates or computes them)");
    size_t nbytes = (size_t)kn__shape_numel(ndim, shape) * kn_dtype_size(dt);
    return with_storage(dt, ndim, shape, nbytes, nbytes);
}

kn_tensor *kn__tensor_view(kn_tensor *base, int ndim, const int64_t *shape, const int64_t *strides,
                           int64_t offset)
{
    kn_tensor *t = tensor_shell(base->dtype, ndim, shape);
    if (!t) return NULL;
    for (int i = 0; i < ndim; i++)
        t->strides[i] = strides[i];
    t->offset = offset;
    t->storage = base->storage;
    if (t->storage) atomic_fetch_add(&t->storage->refcount, 1);
    return t;
}

kn_tensor *kn__tensor_on_storage(kn_storage *s, size_t byte_offset, kn_dtype dt, int ndim,
                                 const int64_t *shape)
{
    size_t es = kn_dtype_size(dt);
    assert(byte_offset % es == 0 && byte_offset + (size_t)kn__shape_numel(ndim, shape) * es <= s->nbytes);
    kn_tensor *t = tensor_shell(dt, ndim, shape);
    if (!t) return NULL;
    t->storage = s;
    t->offset = (int64_t)(byte_offset / es);
    atomic_fetch_add(&s->refcount, 1);
    return t;
}

kn_tensor *kn_tensor_symbolic(kn_dtype dt, int ndim, const int64_t *shape)
{
    if (check_dtype("tensor_symbolic", dt) || kn__check_shape("tensor_symbolic", ndim, shape))
        return NULL;
    return tensor_shell(dt, ndim, shape);
}

kn_tensor *kn_tensor_empty(kn_dtype dt, int ndim, const int64_t *shape)
{
    return kn__tensor_new(dt, ndim, shape);
}

kn_tensor *kn_tensor_full(kn_dtype dt, int ndim, const int64_t *shape, double value)
{
    kn_tensor *t = kn__tensor_new(dt, ndim, shape);
    if (!t) return NULL;
    int64_t n = kn_tensor_numel(t);
    size_t es = kn_dtype_size(dt);
    char *p = t->storage->data;
    if (n > 0) kn__store(dt, p, value);
    for (int64_t i = 1; i < n; i++)
        memcpy(p + i * es, p, es);
    return t;
}

kn_tensor *kn_tensor_zeros(kn_dtype dt, int ndim, const int64_t *shape)
{
    kn_tensor *t = kn__tensor_new(dt, ndim, shape);
    if (t) memset(t->storage->data, 0, t->storage->nbytes);
    return t;
}

kn_tensor *kn_tensor_ones(kn_dtype dt, int ndim, const int64_t *shape)
{
    return kn_tensor_full(dt, ndim, shape, 1.0);
}

kn_tensor *kn_tensor_scalar(kn_dtype dt, double value)
{
    return kn_tensor_full(dt, 0, NULL, value);
}

kn_tensor *kn_tensor_arange(kn_dtype dt, double start, double stop, double step)
{
    if (step == 0 || !isfinite(start) || !isfinite(stop) || !isfinite(step))
        return kn__error_null(KN_ERR_ARG,
                              "arange: start, stop and step must be finite and "
                              "step nonzero (got %g, %g, %g)",
                              start, stop, step);
    double count = ceil((stop - start) / step);
    int64_t n = count > 0 ? (int64_t)count : 0;
    if (count > 1e15) return kn__error_null(KN_ERR_SHAPE, "arange: %g elements is too many", count);
    kn_tensor *t = kn__tensor_new(dt, 1, &n);
    if (!t) return NULL;
    size_t es = kn_dtype_size(dt);
    for (int64_t i = 0; i < n; i++)
        kn__store(dt, (char *)t->storage->data + i * es, start + i * step);
    return t;
}

kn_tensor *kn_tensor_linspace(kn_dtype dt, double start, double stop, int64_t n)
{
    if (n < 0)
        return kn__error_null(KN_ERR_ARG, "linspace: n is %lld, expected >= 0", (long long)n);
    kn_tensor *t = kn__tensor_new(dt, 1, &n);
    if (!t) return NULL;
    size_t es = kn_dtype_size(dt);
    double step = n > 1 ? (stop - start) / (double)(n - 1) : 0;
    for (int64_t i = 0; i < n; i++) {
        double v = i == n - 1 && n > 1 ? stop : start + (double)i * step;
        kn__store(dt, (char *)t->storage->data + i * es, v);
    }
    return t;
}

kn_tensor *kn_tensor_eye(kn_dtype dt, int64_t n, int64_t m)
{
    int64_t shape[2] = {n, m};
    kn_tensor *t = kn_tensor_zeros(dt, 2, shape);
    if (!t) return NULL;
    size_t es = kn_dtype_size(dt);
    for (int64_t i = 0; i < n && i < m; i++)
        kn__store(dt, (char *)t->storage->data + (i * m + i) * es, 1.0);
    return t;
}

kn_tensor *kn_tensor_from_data(kn_dtype dt, int ndim, const int64_t *shape, const void *data)
{
    kn_tensor *t = kn__tensor_new(dt, ndim, shape);
    if (!t) return NULL;
    if (t->storage->nbytes > 0) {
        if (!data) {
            kn_tensor_unref(t);
            return kn__error_null(KN_ERR_ARG, "tensor_from_data: data is NULL");
        }
        memcpy(t->storage->data, data, t->storage->nbytes);
    }
    return t;
}

kn_tensor *kn_tensor_from_buffer(kn_dtype dt, int ndim, const int64_t *shape, void *data,
                                 void (*release)(void *data, void *user), void *user)
{
    if (check_dtype("tensor_from_buffer", dt) || kn__check_shape("tensor_from_buffer", ndim, shape))
        return NULL;
    if (!data) return kn__error_null(KN_ERR_ARG, "tensor_from_buffer: data is NULL");
    kn_tensor *t = tensor_shell(dt, ndim, shape);
    if (!t) return NULL;
    t->storage = kn_alloc(sizeof *t->storage);
    if (!t->storage) {
        kn_free(t);
        return NULL;
    }
    memset(t->storage, 0, sizeof *t->storage);
    atomic_init(&t->storage->refcount, 1);
    t->storage->data = data;
    t->storage->nbytes = (size_t)kn__shape_numel(ndim, shape) * kn_dtype_size(dt);
    t->storage->release = release;
    t->storage->user = user;
    return t;
}

typedef double (*sample_fn)(uint64_t key, uint64_t pos, double a, double b);

static double sample_uniform(uint64_t key, uint64_t pos, double lo, double hi)
{
    return lo + (hi - lo) * kn__rng_uniform_at(key, pos);
}

static double sample_normal(uint64_t key, uint64_t pos, double mean, double std)
{
    return mean + std * kn__rng_normal_at(key, pos);
}

static double sample_bernoulli(uint64_t key, uint64_t pos, double p, double unused)
{
    (void)unused;
    return kn__rng_uniform_at(key, pos) < p ? 1.0 : 0.0;
}

static kn_tensor *random_tensor(kn_dtype dt, int ndim, const int64_t *shape, sample_fn f, double a,
                                double b)
{
    kn_tensor *t = kn__tensor_new(dt, ndim, shape);
    if (!t) return NULL;
    int64_t n = kn_tensor_numel(t);
    uint64_t first = kn__rng_reserve((uint64_t)n), key = kn_rng_seed();
    size_t es = kn_dtype_size(dt);
    for (int64_t i = 0; i < n; i++)
        kn__store(dt, (char *)t->storage->data + i * es, f(key, first + (uint64_t)i, a, b));
    return t;
}

kn_tensor *kn_tensor_rand_uniform(kn_dtype dt, int ndim, const int64_t *shape, double lo, double hi)
{
    if (!(lo <= hi)) return kn__error_null(KN_ERR_ARG, "rand_uniform: lo %g > hi %g", lo, hi);
    return random_tensor(dt, ndim, shape, sample_uniform, lo, hi);
}

kn_tensor *kn_tensor_rand_normal(kn_dtype dt, int ndim, const int64_t *shape, double mean,
                                 double std)
{
    if (!(std >= 0)) return kn__error_null(KN_ERR_ARG, "rand_normal: std %g < 0", std);
    return random_tensor(dt, ndim, shape, sample_normal, mean, std);
}

kn_tensor *kn_tensor_rand_bernoulli(kn_dtype dt, int ndim, const int64_t *shape, double p)
{
    if (!(p >= 0 && p <= 1))
        return kn__error_null(KN_ERR_ARG, "rand_bernoulli: p %g not in [0, 1]", p);
    return random_tensor(dt, ndim, shape, sample_bernoulli, p, 0);
}

kn_tensor *kn_tensor_ref(kn_tensor *t)
{
    if (t) atomic_fetch_add(&t->refcount, 1);
    return t;
}

static void storage_unref(kn_storage *s)
{
    if (!s || atomic_fetch_sub(&s->refcount, 1) != 1) return;
    if (s->owned)
        kn_free(s->data);
    else if (s->release)
        s->release(s->data, s->user);
    kn_free(s);
}

void kn_tensor_unref(kn_tensor *t)
{
    if (!t || atomic_fetch_sub(&t->refcount, 1) != 1) return;
    assert(!t->grad_fn && "the tape holds references to the tensors it produced");
    kn_tensor_unref(t->grad);
    kn_tensor_unref(t->bw_grad);
    storage_unref(t->storage);
    kn_free(t);
}

kn_dtype kn_tensor_dtype(const kn_tensor *t)
{
    return t ? t->dtype : KN_F32;
}
int kn_tensor_ndim(const kn_tensor *t)
{
    return t ? t->ndim : 0;
}
const int64_t *kn_tensor_shape(const kn_tensor *t)
{
    return t ? t->shape : NULL;
}
const int64_t *kn_tensor_strides(const kn_tensor *t)
{
    return t ? t->strides : NULL;
}
bool kn_tensor_is_symbolic(const kn_tensor *t)
{
    return t && !t->storage;
}
uint64_t kn_tensor_version(const kn_tensor *t)
{
    return t && t->storage ? t->storage->version : 0;
}

bool kn__norm_axis(int *axis, int ndim)
{
    int a = *axis < 0 ? *axis + ndim : *axis;
    if (a < 0 || a >= ndim) return false;
    *axis = a;
    return true;
}

int64_t kn_tensor_dim(const kn_tensor *t, int axis)
{
    if (!t || !kn__norm_axis(&axis, t->ndim)) return -1;
    return t->shape[axis];
}

int64_t kn_tensor_numel(const kn_tensor *t)
{
    return t ? kn__shape_numel(t->ndim, t->shape) : 0;
}

bool kn_tensor_is_contiguous(const kn_tensor *t)
{
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] == 1) continue;
        if (t->strides[i] != s) return false;
        s *= t->shape[i];
    }
    return true;
}

bool kn_tensor_shares_storage(const kn_tensor *a, const kn_tensor *b)
{
    return a && b && a->storage && a->storage == b->storage;
}

void *kn_tensor_data(kn_tensor *t)
{
    if (!t) return kn__error_null(KN_ERR_ARG, "tensor_data: tensor is NULL");
    if (!t->storage)
        return kn__error_null(KN_ERR_STATE,
                              "tensor_data: the tensor is symbolic (traced) and has no data; "
                              "data-dependent control flow is not captured by tracing");
    return kn__tensor_ptr(t);
}

kn_tensor *kn_tensor_from_strings(int ndim, const int64_t *shape, const char *const *strs)
{
    if (kn__check_shape("tensor_from_strings", ndim, shape)) return NULL;
    int64_t n = kn__shape_numel(ndim, shape);
    if (n > 0 && !strs) return kn__error_null(KN_ERR_ARG, "tensor_from_strings: strs is NULL");
    /* one block: the element pointers, then every string's bytes */
    size_t bytes = (size_t)n * sizeof(char *);
    for (int64_t i = 0; i < n; i++) {
        size_t len = strs[i] ? strlen(strs[i]) + 1 : 1;
        if (bytes > SIZE_MAX / 2 - len)
            return kn__error_null(KN_ERR_ARG, "tensor_from_strings: the strings are too large");
        bytes += len;
    }
    kn_tensor *t = with_storage(KN_STRING, ndim, shape, bytes, (size_t)n * sizeof(char *));
    if (!t) return NULL;
    char *data = t->storage->data;
    char **elems = (char **)data, *text = data + (size_t)n * sizeof(char *);
    for (int64_t i = 0; i < n; i++) {
        const char *src = strs[i] ? strs[i] : "";
        size_t len = strlen(src) + 1;
        memcpy(text, src, len);
        elems[i] = text;
        text += len;
    }
    return t;
}

const char *kn_tensor_string(const kn_tensor *t, int64_t i)
{
    if (!t || !t->storage || t->dtype != KN_STRING)
        return kn__error_null(KN_ERR_DTYPE, "tensor_string: expected a string tensor with data");
    int64_t n = kn_tensor_numel(t);
    if (i < 0 || i >= n)
        return kn__error_null(KN_ERR_ARG, "tensor_string: index %lld out of range [0, %lld)",
                              (long long)i, (long long)n);
    int64_t off = t->offset;
    for (int d = t->ndim - 1; d >= 0; d--) {
        off += (i % t->shape[d]) * t->strides[d];
        i /= t->shape[d];
    }
    return ((char *const *)t->storage->data)[off];
}

void kn__bump_version(kn_tensor *t)
{
    if (t->storage) t->storage->version++;
}

const char *kn__shape_str(int ndim, const int64_t *shape, char *buf, size_t n)
{
    size_t len = 0;
    len += (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < ndim && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (len < n) snprintf(buf + len, n - len, ")");
    return buf;
}

kn_status kn__broadcast_shapes(const char *who, int na, const int64_t *a, int nb, const int64_t *b,
                               int *nout, int64_t *out)
{
    int n = na > nb ? na : nb;
    int64_t res[KN_MAX_DIMS]; /* out may be a or b */
    for (int i = 0; i < n; i++) {
        int64_t da = i < n - na ? 1 : a[i - (n - na)];
        int64_t db = i < n - nb ? 1 : b[i - (n - nb)];
        if (da != db && da != 1 && db != 1) {
            char sa[96], sb[96];
            return kn__error(KN_ERR_SHAPE,
                             "%s: shapes %s and %s do not broadcast (dim %d: %lld vs %lld)", who,
                             kn__shape_str(na, a, sa, sizeof sa),
                             kn__shape_str(nb, b, sb, sizeof sb), i, (long long)da, (long long)db);
        }
        res[i] = da == 1 ? db : da;
    }
    memcpy(out, res, sizeof(int64_t) * (size_t)n);
    *nout = n;
    return KN_OK;
}
