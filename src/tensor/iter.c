/* iter.c — strided, broadcasting iteration over several operands of one
 * shape. Dims of size 1 are dropped and adjacent dims merged when every
 * operand is contiguous across them, so the inner loop is as long as it can
 * be. Parallel runs split rows (or the single inner row) into fixed chunks. */
#include "tensor.h"

void kn__iter_init(kn_iter *it, int n_ops, const kn_tensor *const *ops, int ndim,
                   const int64_t *shape)
{
    assert(n_ops <= KN_ITER_MAX && ndim <= KN_MAX_DIMS);
    it->n_ops = n_ops;
    int64_t st[KN_ITER_MAX][KN_MAX_DIMS];
    for (int k = 0; k < n_ops; k++) {
        const kn_tensor *t = ops[k];
        int64_t es = (int64_t)kn_dtype_size(t->dtype);
        int lead = ndim - t->ndim;
        for (int d = 0; d < ndim; d++) {
            int td = d - lead;
            st[k][d] = td < 0 || t->shape[td] == 1 ? 0 : t->strides[td] * es;
        }
        it->base[k] = kn__tensor_ptr(t);
    }
    /* drop size-1 dims, then merge d into d+1 when contiguous for all ops */
    int n = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 1) continue;
        if (n > 0) {
            bool merge = true;
            for (int k = 0; k < n_ops; k++)
                if (it->strides[k][n - 1] != st[k][d] * shape[d]) merge = false;
            if (merge) {
                it->shape[n - 1] *= shape[d];
                for (int k = 0; k < n_ops; k++)
                    it->strides[k][n - 1] = st[k][d];
                continue;
            }
        }
        it->shape[n] = shape[d];
        for (int k = 0; k < n_ops; k++)
            it->strides[k][n] = st[k][d];
        n++;
    }
    if (n == 0) { /* a scalar, or all dims 1 (or a zero-size dim was kept) */
        it->shape[0] = 1;
        for (int k = 0; k < n_ops; k++)
            it->strides[k][0] = 0;
        n = 1;
    }
    for (int d = 0; d < ndim; d++)
        if (shape[d] == 0) it->shape[0] = 0;
    it->ndim = n;
}

typedef struct run_ctx {
    const kn_iter *it;
    kn_iter_loop fn;
    void *ctx;
    int64_t inner;
    bool split_inner; /* one row, cut in pieces */
} run_ctx;

static void run_rows(int64_t begin, int64_t end, void *arg)
{
    const run_ctx *r = arg;
    const kn_iter *it = r->it;
    int nd = it->ndim, n_ops = it->n_ops;
    int64_t inner_strides[KN_ITER_MAX];
    for (int k = 0; k < n_ops; k++)
        inner_strides[k] = it->strides[k][nd - 1];
    if (r->split_inner) {
        char *p[KN_ITER_MAX];
        for (int k = 0; k < n_ops; k++)
            p[k] = it->base[k] + begin * inner_strides[k];
        r->fn(p, inner_strides, end - begin, r->ctx);
        return;
    }
    for (int64_t row = begin; row < end; row++) {
        char *p[KN_ITER_MAX];
        for (int k = 0; k < n_ops; k++)
            p[k] = it->base[k];
        int64_t rem = row;
        for (int d = nd - 2; d >= 0; d--) {
            int64_t i = rem % it->shape[d];
            rem /= it->shape[d];
            for (int k = 0; k < n_ops; k++)
                p[k] += i * it->strides[k][d];
        }
        r->fn(p, inner_strides, r->inner, r->ctx);
    }
}

#define PARALLEL_MIN_ELEMS 32768

void kn__iter_run(const kn_iter *it, kn_iter_loop fn, void *ctx, bool parallel)
{
    int64_t inner = it->shape[it->ndim - 1], rows = 1;
    for (int d = 0; d < it->ndim - 1; d++)
        rows *= it->shape[d];
    if (inner == 0 || rows == 0) return;
    run_ctx r = {it, fn, ctx, inner, false};
    if (!parallel || rows * inner < PARALLEL_MIN_ELEMS) {
        run_rows(0, rows, &r);
    } else if (rows == 1) {
        r.split_inner = true;
        kn_parallel_for(inner, PARALLEL_MIN_ELEMS / 2, run_rows, &r);
    } else {
        int64_t grain = PARALLEL_MIN_ELEMS / 2 / inner;
        kn_parallel_for(rows, grain < 1 ? 1 : grain, run_rows, &r);
    }
}
