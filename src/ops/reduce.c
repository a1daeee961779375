/* reduce.c — reductions over any set of axes with keepdim: sum, mean, prod,
 * max, min, argmax, argmin, logsumexp, var, std, norm, all, any. One engine
 * walks the reduced elements of each output in a fixed order; a long
 * reduction into few outputs is cut into chunks fixed by its length alone,
 * whose partial results combine in chunk order, so results never depend on
 * the thread count. Floats accumulate in double, integers exactly in int64.
 * Dtypes: sum/prod of integers or bool give i64; mean, var, std, logsumexp
 * and norm need a float input (an error otherwise, like PyTorch's mean);
 * max/min keep the dtype; argmax/argmin give i64; all/any give bool. Empty
 * reductions follow PyTorch: sum 0, prod 1, mean/var/std nan, logsumexp
 * -inf, norm 0, all true, any false; max/min/argmax/argmin are errors. */
#include "reduce.h"

#if KILN_X86
#include "../kernels/reduce_fast.h"
#endif

#include <math.h>

/* ------------------------------------------------------------ attributes */
static const kn_attr_desc reduce_attr_schema[] = {
    KN_ATTR(kn_reduce_attrs, axes, KN_ATTR_INTS),
    KN_ATTR(kn_reduce_attrs, keepdim, KN_ATTR_BOOL),
};
static const kn_attr_desc var_attr_schema[] = {
    {"axes", KN_ATTR_INTS, offsetof(kn_var_attrs, r.axes)},
    {"keepdim", KN_ATTR_BOOL, offsetof(kn_var_attrs, r.keepdim)},
    KN_ATTR(kn_var_attrs, unbiased, KN_ATTR_BOOL),
};
static const kn_attr_desc norm_attr_schema[] = {
    {"axes", KN_ATTR_INTS, offsetof(kn_norm_attrs, r.axes)},
    {"keepdim", KN_ATTR_BOOL, offsetof(kn_norm_attrs, r.keepdim)},
    KN_ATTR(kn_norm_attrs, p, KN_ATTR_INT),
};
static const kn_attr_desc arg_attr_schema[] = {
    KN_ATTR(kn_arg_attrs, axis, KN_ATTR_INT),
    KN_ATTR(kn_arg_attrs, keepdim, KN_ATTR_BOOL),
};

kn_status kn__reduce_attrs(const char *who, kn_reduce_attrs *at, int n_axes, const int *axes,
                           bool keepdim)
{
    if (n_axes < 0 || n_axes > KN_MAX_DIMS || (n_axes > 0 && !axes))
        return kn__error(KN_ERR_ARG, "%s: %d axes given (expected 0..%d and a non-NULL list)", who,
                         n_axes, KN_MAX_DIMS);
    memset(at, 0, sizeof *at);
    at->axes.n = n_axes;
    for (int i = 0; i < n_axes; i++)
        at->axes.v[i] = axes[i];
    at->keepdim = keepdim;
    return KN_OK;
}

/* A 0-d tensor accepts axis 0 or -1 (as in PyTorch) and reduces nothing. */
kn_status kn__reduce_mask(const char *who, const kn_reduce_attrs *at, int ndim, bool *mask)
{
    if (at->axes.n < 0 || at->axes.n > KN_MAX_DIMS)
        return kn__error(KN_ERR_ARG, "%s: %d axes given (expected 0..%d)", who, at->axes.n,
                         KN_MAX_DIMS);
    for (int d = 0; d < ndim; d++)
        mask[d] = at->axes.n == 0;
    bool scalar_seen = false;
    for (int i = 0; i < at->axes.n; i++) {
        int64_t v = at->axes.v[i];
        int axis = (int)v;
        if (ndim == 0 && (v == 0 || v == -1)) {
            if (scalar_seen) return kn__error(KN_ERR_ARG, "%s: axis 0 given twice", who);
            scalar_seen = true;
            continue;
        }
        if (v != axis || !kn__norm_axis(&axis, ndim))
            return kn__error(KN_ERR_ARG, "%s: axis %lld out of range for %d dims", who,
                             (long long)v, ndim);
        if (mask[axis]) return kn__error(KN_ERR_ARG, "%s: axis %d given twice", who, axis);
        mask[axis] = true;
    }
    return KN_OK;
}

void kn__reduce_shape(int ndim, const int64_t *shape, const bool *mask, bool keepdim,
                      kn_out_meta *out)
{
    int n = 0;
    for (int d = 0; d < ndim; d++) {
        if (!mask[d])
            out->shape[n++] = shape[d];
        else if (keepdim)
            out->shape[n++] = 1;
    }
    out->ndim = n;
}

void kn__keepdim_shape(const kn_tensor *x, const kn_reduce_attrs *at, int64_t *shape)
{
    bool mask[KN_MAX_DIMS];
    kn_status s = kn__reduce_mask("reduce", at, x->ndim, mask);
    assert(s == KN_OK && "attrs were validated by infer");
    (void)s;
    for (int d = 0; d < x->ndim; d++)
        shape[d] = mask[d] ? 1 : x->shape[d];
}

int64_t kn__reduce_count(const kn_tensor *x, const kn_reduce_attrs *at)
{
    bool mask[KN_MAX_DIMS];
    if (kn__reduce_mask("reduce", at, x->ndim, mask)) return -1;
    int64_t n = 1;
    for (int d = 0; d < x->ndim; d++)
        if (mask[d]) n *= x->shape[d];
    return n;
}

/* ---------------------------------------------------------------- engine
 * A reduction kind keeps a small state per output: s (float accumulator or
 * best value), i (integer accumulator or best value), k (index of the best).
 * run() folds a strided run of n elements (the first has reduced index r0)
 * into the state; combine() folds a later chunk's state into an earlier
 * one; finish() writes the output element. */
typedef struct rstate {
    double s;
    int64_t i, k;
} rstate;

typedef struct rctx {
    kn_dtype in_dt;
    int64_t count;     /* reduced elements per output */
    double correction; /* var/std */
    double param;      /* per-output centre (mean for var, max for logsumexp) */
} rctx;

typedef struct rkind {
    void (*init)(rstate *st);
    void (*run)(rstate *st, kn_dtype dt, const char *p, int64_t bstride, int64_t n, int64_t r0,
                double c);
    void (*cols)(rstate *sts, kn_dtype dt, const char *p, int64_t bstride, int64_t n, int64_t r0,
                 const double *cs);
    void (*combine)(rstate *a, const rstate *b);
    void (*finish)(const rstate *st, const rctx *c, kn_dtype out_dt, void *out);
} rkind;

/* The body STEP_F sees `double v`, STEP_I sees `int64_t v`; both see st, r
 * (the reduced index) and c (the centre). DEFINE_RUN makes two folds:
 * name(st, ...) folds a strided run of n elements into one state, and
 * name_cols(sts, ...) folds element j of a strided run into sts[j] (n
 * outputs side by side, all at reduced index r0, centres cs or none). Each
 * state sees the same steps in the same order either way. */
#define RUN_LOOPS(PRE, STEP_F, STEP_I)                                                             \
    switch (dt) {                                                                                  \
    case KN_F32:                                                                                   \
        for (int64_t j = 0; j < n; j++) {                                                          \
            double v = *(const float *)(p + j * bs);                                               \
            PRE;                                                                                   \
            STEP_F;                                                                                \
        }                                                                                          \
        break;                                                                                     \
    case KN_F64:                                                                                   \
        for (int64_t j = 0; j < n; j++) {                                                          \
            double v = *(const double *)(p + j * bs);                                              \
            PRE;                                                                                   \
            STEP_F;                                                                                \
        }                                                                                          \
        break;                                                                                     \
    case KN_F16:                                                                                   \
    case KN_BF16:                                                                                  \
        for (int64_t j = 0; j < n; j++) {                                                          \
            double v = kn__load(dt, p + j * bs);                                                   \
            PRE;                                                                                   \
            STEP_F;                                                                                \
        }                                                                                          \
        break;                                                                                     \
    default:                                                                                       \
        for (int64_t j = 0; j < n; j++) {                                                          \
            int64_t v = kn__load_i64(dt, p + j * bs);                                              \
            PRE;                                                                                   \
            STEP_I;                                                                                \
        }                                                                                          \
    }

#define PRE_ONE                                                                                    \
    int64_t r = r0 + j;                                                                            \
    (void)r
#define PRE_COLS                                                                                   \
    rstate *st = &sts[j];                                                                          \
    double c = cs ? cs[j] : 0;                                                                     \
    int64_t r = r0;                                                                                \
    (void)st;                                                                                      \
    (void)r;                                                                                       \
    (void)c

#define DEFINE_RUN(name, STEP_F, STEP_I)                                                           \
    static void name(rstate *st, kn_dtype dt, const char *p, int64_t bs, int64_t n, int64_t r0,    \
                     double c)                                                                     \
    {                                                                                              \
        (void)c;                                                                                   \
        RUN_LOOPS(PRE_ONE, STEP_F, STEP_I)                                                         \
    }                                                                                              \
    static void name##_cols(rstate *sts, kn_dtype dt, const char *p, int64_t bs, int64_t n,        \
                            int64_t r0, const double *cs)                                          \
    {                                                                                              \
        RUN_LOOPS(PRE_COLS, STEP_F, STEP_I)                                                        \
    }

static int64_t wrap_add(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a + (uint64_t)b);
}
static int64_t wrap_mul(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a * (uint64_t)b);
}
static bool is_int(kn_dtype dt)
{
    return !kn_dtype_is_float(dt);
}

static void store_result(const rstate *st, const rctx *c, kn_dtype out_dt, void *out)
{
    if (is_int(c->in_dt))
        kn__store_i64(out_dt, out, st->i);
    else
        kn__store(out_dt, out, st->s);
}

/* ---- sum, mean, prod */
static void init_zero(rstate *st)
{
    *st = (rstate){0, 0, -1};
}
static void init_one(rstate *st)
{
    *st = (rstate){1, 1, -1};
}
DEFINE_RUN(sum_run, st->s += v, st->i = wrap_add(st->i, v))
static void sum_combine(rstate *a, const rstate *b)
{
    a->s += b->s;
    a->i = wrap_add(a->i, b->i);
}
static void mean_finish(const rstate *st, const rctx *c, kn_dtype out_dt, void *out)
{
    kn__store(out_dt, out, st->s / (double)c->count); /* empty: 0/0 = nan */
}
DEFINE_RUN(prod_run, st->s *= v, st->i = wrap_mul(st->i, v))
static void prod_combine(rstate *a, const rstate *b)
{
    a->s *= b->s;
    a->i = wrap_mul(a->i, b->i);
}
static const rkind k_sum = {init_zero, sum_run, sum_run_cols, sum_combine, store_result};
static const rkind k_mean = {init_zero, sum_run, sum_run_cols, sum_combine, mean_finish};
static const rkind k_prod = {init_one, prod_run, prod_run_cols, prod_combine, store_result};

/* ---- max, min (NaN propagates) and argmax, argmin (first best; NaN is
 * the best, as in PyTorch) */
static void init_max(rstate *st)
{
    *st = (rstate){-INFINITY, INT64_MIN, -1};
}
static void init_min(rstate *st)
{
    *st = (rstate){INFINITY, INT64_MAX, -1};
}
static bool f_gt(double v, double s)
{
    return v > s || (isnan(v) && !isnan(s));
}
static bool f_lt(double v, double s)
{
    return v < s || (isnan(v) && !isnan(s));
}
DEFINE_RUN(max_run, if (f_gt(v, st->s)) st->s = v, if (v > st->i) st->i = v)
DEFINE_RUN(min_run, if (f_lt(v, st->s)) st->s = v, if (v < st->i) st->i = v)
static void max_combine(rstate *a, const rstate *b)
{
    if (f_gt(b->s, a->s)) a->s = b->s;
    if (b->i > a->i) a->i = b->i;
}
static void min_combine(rstate *a, const rstate *b)
{
    if (f_lt(b->s, a->s)) a->s = b->s;
    if (b->i < a->i) a->i = b->i;
}
static const rkind k_max = {init_max, max_run, max_run_cols, max_combine, store_result};
static const rkind k_min = {init_min, min_run, min_run_cols, min_combine, store_result};

#define ARG_TAKE                                                                                   \
    {                                                                                              \
        st->k = r;                                                                                 \
        st->s = v;                                                                                 \
    }
#define ARG_TAKE_I                                                                                 \
    {                                                                                              \
        st->k = r;                                                                                 \
        st->i = v;                                                                                 \
    }
DEFINE_RUN(argmax_run, if (st->k < 0 || f_gt(v, st->s)) ARG_TAKE,
           if (st->k < 0 || v > st->i) ARG_TAKE_I)
DEFINE_RUN(argmin_run, if (st->k < 0 || f_lt(v, st->s)) ARG_TAKE,
           if (st->k < 0 || v < st->i) ARG_TAKE_I)
static void argmax_combine(rstate *a, const rstate *b)
{
    if (b->k >= 0 && (a->k < 0 || f_gt(b->s, a->s) || b->i > a->i)) *a = *b;
}
static void argmin_combine(rstate *a, const rstate *b)
{
    if (b->k >= 0 && (a->k < 0 || f_lt(b->s, a->s) || b->i < a->i)) *a = *b;
}
static void arg_finish(const rstate *st, const rctx *c, kn_dtype out_dt, void *out)
{
    (void)c;
    kn__store_i64(out_dt, out, st->k < 0 ? 0 : st->k);
}
static const rkind k_argmax = {init_max, argmax_run, argmax_run_cols, argmax_combine, arg_finish};
static const rkind k_argmin = {init_min, argmin_run, argmin_run_cols, argmin_combine, arg_finish};

/* ---- all, any (any dtype; NaN is true) */
static void init_all(rstate *st)
{
    *st = (rstate){0, 1, -1};
}
DEFINE_RUN(all_run, if (v == 0) st->i = 0, if (v == 0) st->i = 0)
DEFINE_RUN(any_run, if (v != 0) st->i = 1, if (v != 0) st->i = 1)
static void all_combine(rstate *a, const rstate *b)
{
    a->i = a->i && b->i;
}
static void any_combine(rstate *a, const rstate *b)
{
    a->i = a->i || b->i;
}
static void bool_finish(const rstate *st, const rctx *c, kn_dtype out_dt, void *out)
{
    (void)c;
    kn__store_i64(out_dt, out, st->i != 0);
}
static const rkind k_all = {init_all, all_run, all_run_cols, all_combine, bool_finish};
static const rkind k_any = {init_zero, any_run, any_run_cols, any_combine, bool_finish};

/* ---- second passes around a centre c: var/std, logsumexp; and norms */
DEFINE_RUN(sqdev_run, st->s += (v - c) * (v - c), (void)v)
static void var_finish(const rstate *st, const rctx *c, kn_dtype out_dt, void *out)
{
    double dof = (double)c->count - c->correction;
    kn__store(out_dt, out, st->s / (dof > 0 ? dof : 0)); /* 0/0 = nan, as PyTorch */
}
static void std_finish(const rstate *st, const rctx *c, kn_dtype out_dt, void *out)
{
    double dof = (double)c->count - c->correction;
    kn__store(out_dt, out, sqrt(st->s / (dof > 0 ? dof : 0)));
}
DEFINE_RUN(sumexp_run, st->s += exp(v - c), (void)v)
static void lse_finish(const rstate *st, const rctx *c, kn_dtype out_dt, void *out)
{
    kn__store(out_dt, out, log(st->s) + c->param);
}
DEFINE_RUN(abs_run, st->s += fabs(v), (void)v)
DEFINE_RUN(sq_run, st->s += v * v, (void)v)
static void sqrt_finish(const rstate *st, const rctx *c, kn_dtype out_dt, void *out)
{
    (void)c;
    kn__store(out_dt, out, sqrt(st->s));
}
static const rkind k_var = {init_zero, sqdev_run, sqdev_run_cols, sum_combine, var_finish};
static const rkind k_std = {init_zero, sqdev_run, sqdev_run_cols, sum_combine, std_finish};
static const rkind k_lse = {init_zero, sumexp_run, sumexp_run_cols, sum_combine, lse_finish};
static const rkind k_norm1 = {init_zero, abs_run, abs_run_cols, sum_combine, store_result};
static const rkind k_norm2 = {init_zero, sq_run, sq_run_cols, sum_combine, sqrt_finish};

/* ---- the walk. Reduced dims of size 1 are dropped and neighbours merged
 * when contiguous, so the innermost run is as long as it can be. */
#define SPLIT_MIN_COUNT (1 << 16) /* a reduction at least this long ... */
#define SPLIT_MAX_OUT 16          /* ... into at most this many outputs is split */
#define SPLIT_CHUNK (1 << 14)     /* minimum chunk length */
#define MAX_PARTS 256

typedef struct plan {
    const char *xbase;
    kn_dtype dt;
    int64_t es;
    int n_kept, n_red;
    int64_t kept_shape[KN_MAX_DIMS], kept_stride[KN_MAX_DIMS]; /* elements of x */
    int64_t red_shape[KN_MAX_DIMS], red_stride[KN_MAX_DIMS];
    int64_t count, n_out;
    const rkind *k;
    const double *params; /* per-output centre or NULL */
    rctx ctx;
    kn_dtype out_dt;
    char *out;
    int64_t os;
    /* split path */
    int64_t o, chunk, off;
    rstate *parts;
} plan;

static void plan_init(plan *p, const kn_tensor *x, const bool *mask)
{
    p->xbase = kn__tensor_ptr(x);
    p->dt = x->dtype;
    p->es = (int64_t)kn_dtype_size(x->dtype);
    p->n_kept = p->n_red = 0;
    p->count = 1;
    p->n_out = 1;
    for (int d = 0; d < x->ndim; d++) {
        int64_t n = x->shape[d], st = x->strides[d];
        if (!mask[d]) {
            p->kept_shape[p->n_kept] = n;
            p->kept_stride[p->n_kept++] = st;
            p->n_out *= n;
            continue;
        }
        p->count *= n;
        if (n == 1) continue;
        int m = p->n_red;
        if (m > 0 && p->red_stride[m - 1] == st * n && n > 0) {
            p->red_shape[m - 1] *= n;
            p->red_stride[m - 1] = st;
            continue;
        }
        p->red_shape[m] = n;
        p->red_stride[m] = st;
        p->n_red++;
    }
}

static int64_t kept_offset(const plan *p, int64_t o)
{
    int64_t off = 0;
    for (int d = p->n_kept - 1; d >= 0; d--) {
        off += (o % p->kept_shape[d]) * p->kept_stride[d];
        o /= p->kept_shape[d];
    }
    return off;
}

/* Folds reduced elements [r0, r1) of the output at x offset `off`. */
static void walk(const plan *p, rstate *st, int64_t off, int64_t r0, int64_t r1, double c)
{
    if (p->n_red == 0) {
        if (r0 < r1) p->k->run(st, p->dt, p->xbase + off * p->es, 0, 1, 0, c);
        return;
    }
    int last = p->n_red - 1;
    int64_t len = p->red_shape[last], bs = p->red_stride[last] * p->es;
    for (int64_t r = r0; r < r1;) {
        int64_t j = r % len, q = r / len, roff = j * p->red_stride[last];
        for (int d = last - 1; d >= 0; d--) {
            roff += (q % p->red_shape[d]) * p->red_stride[d];
            q /= p->red_shape[d];
        }
        int64_t n = len - j < r1 - r ? len - j : r1 - r;
        p->k->run(st, p->dt, p->xbase + (off + roff) * p->es, bs, n, r, c);
        r += n;
    }
}

static void finish_one(const plan *p, int64_t o, const rstate *st)
{
    rctx c = p->ctx;
    c.param = p->params ? p->params[o] : 0;
    p->k->finish(st, &c, p->out_dt, p->out + o * p->os);
}

static void out_range(int64_t begin, int64_t end, void *arg)
{
    const plan *p = arg;
    for (int64_t o = begin; o < end; o++) {
        rstate st;
        p->k->init(&st);
        walk(p, &st, kept_offset(p, o), 0, p->count, p->params ? p->params[o] : 0);
        finish_one(p, o, &st);
    }
}

static void part_range(int64_t begin, int64_t end, void *arg)
{
    const plan *p = arg;
    for (int64_t c = begin; c < end; c++) {
        int64_t r0 = c * p->chunk, r1 = r0 + p->chunk < p->count ? r0 + p->chunk : p->count;
        p->k->init(&p->parts[c]);
        walk(p, &p->parts[c], p->off, r0, r1, p->params ? p->params[p->o] : 0);
    }
}

/* Column mode, when a kept dim is innermost in memory (e.g. summing a
 * (rows, cols) matrix over rows): a block of up to COL_BLOCK neighbouring
 * outputs advances together through the reduced elements, reading memory
 * in order. Each output still folds its elements in ascending order, so
 * the bits are those of the one-output walk. */
#define COL_BLOCK 128

static int64_t red_offset(const plan *p, int64_t r)
{
    int64_t off = 0;
    for (int d = p->n_red - 1; d >= 0; d--) {
        off += (r % p->red_shape[d]) * p->red_stride[d];
        r /= p->red_shape[d];
    }
    return off;
}

static void col_range(int64_t begin, int64_t end, void *arg)
{
    const plan *p = arg;
    int last = p->n_kept - 1;
    int64_t n = p->kept_shape[last], nb = (n + COL_BLOCK - 1) / COL_BLOCK;
    int64_t ks = p->kept_stride[last] * p->es;
    rstate sts[COL_BLOCK];
    for (int64_t b = begin; b < end; b++) {
        int64_t k0 = (b % nb) * COL_BLOCK, o0 = (b / nb) * n + k0;
        int64_t m = n - k0 < COL_BLOCK ? n - k0 : COL_BLOCK, off = kept_offset(p, o0);
        const double *cs = p->params ? p->params + o0 : NULL;
        for (int64_t j = 0; j < m; j++)
            p->k->init(&sts[j]);
        for (int64_t r = 0; r < p->count; r++)
            p->k->cols(sts, p->dt, p->xbase + (off + red_offset(p, r)) * p->es, ks, m, r, cs);
        for (int64_t j = 0; j < m; j++)
            finish_one(p, o0 + j, &sts[j]);
    }
}

static bool use_columns(const plan *p)
{
    if (p->n_kept == 0 || p->n_red == 0 || p->kept_shape[p->n_kept - 1] < 2) return false;
    return p->kept_stride[p->n_kept - 1] < p->red_stride[p->n_red - 1];
}

/* x (any shape, any strides) reduced over the dims in mask with kind k into
 * out: n_out contiguous elements of out_dt, in the order of the kept dims. */
static void reduce_exec(const kn_tensor *x, const bool *mask, const rkind *k, const double *params,
                        double correction, kn_dtype out_dt, void *out)
{
    plan p;
    plan_init(&p, x, mask);
    p.k = k;
    p.params = params;
    p.ctx = (rctx){x->dtype, p.count, correction, 0};
    p.out_dt = out_dt;
    p.out = out;
    p.os = (int64_t)kn_dtype_size(out_dt);
    if (p.n_out <= SPLIT_MAX_OUT && p.count >= SPLIT_MIN_COUNT) {
        rstate parts[MAX_PARTS];
        p.parts = parts;
        p.chunk = (p.count + MAX_PARTS - 1) / MAX_PARTS;
        if (p.chunk < SPLIT_CHUNK) p.chunk = SPLIT_CHUNK;
        int64_t n_parts = (p.count + p.chunk - 1) / p.chunk;
        for (p.o = 0; p.o < p.n_out; p.o++) {
            p.off = kept_offset(&p, p.o);
            kn_parallel_for(n_parts, 1, part_range, &p);
            for (int64_t c = 1; c < n_parts; c++)
                k->combine(&parts[0], &parts[c]);
            finish_one(&p, p.o, &parts[0]);
        }
        return;
    }
    int64_t work = p.count > 0 ? p.count : 1;
    if (use_columns(&p)) {
        int64_t n = p.kept_shape[p.n_kept - 1], nb = (n + COL_BLOCK - 1) / COL_BLOCK;
        int64_t grain = 32768 / (work * COL_BLOCK);
        kn_parallel_for(p.n_out / n * nb, grain < 1 ? 1 : grain, col_range, &p);
        return;
    }
    int64_t grain = 32768 / work;
    kn_parallel_for(p.n_out, grain < 1 ? 1 : grain, out_range, &p);
}

/* ------------------------------------------------------------ reductions */
typedef enum rout { OUT_SAME, OUT_WIDE /* ints -> i64 */, OUT_BOOL } rout;

typedef struct rinfo {
    const rkind *kind;
    const rkind *center; /* first pass giving each output's centre, or NULL */
    rout out;
    bool nonempty; /* no identity: reducing an empty axis is an error */
} rinfo;

static kn_status reduce_infer(const kn_op_args *a, kn_out_meta *out)
{
    const rinfo *info = a->def->data;
    const kn_tensor *x = a->in[0];
    const kn_reduce_attrs *at = a->attrs;
    bool mask[KN_MAX_DIMS];
    if (!(a->def->dtypes & KN_DT(x->dtype)))
        return kn__error(
            KN_ERR_DTYPE, "%s: dtype %s is not supported%s", a->def->name, kn_dtype_name(x->dtype),
            a->def->dtypes == KN_DTYPES_FLOAT ? " (expected a float dtype; cast first)" : "");
    kn_status s = kn__reduce_mask(a->def->name, at, x->ndim, mask);
    if (s) return s;
    for (int d = 0; info->nonempty && d < x->ndim; d++)
        if (mask[d] && x->shape[d] == 0)
            return kn__error(KN_ERR_SHAPE,
                             "%s: cannot reduce over axis %d of size 0 (the operation has no "
                             "identity)",
                             a->def->name, d);
    kn__reduce_shape(x->ndim, x->shape, mask, at->keepdim, out);
    out->dtype = info->out == OUT_BOOL                       ? KN_BOOL
                 : info->out == OUT_WIDE && is_int(x->dtype) ? KN_I64
                                                             : x->dtype;
    return KN_OK;
}

static kn_status reduce_ref(const kn_op_args *a)
{
    const rinfo *info = a->def->data;
    const kn_tensor *x = a->in[0];
    kn_tensor *y = a->out[0];
    bool mask[KN_MAX_DIMS];
    kn__reduce_mask(a->def->name, a->attrs, x->ndim, mask);
    int64_t n_out = kn_tensor_numel(y);
    if (n_out == 0) return KN_OK;
    double correction =
        a->def->attrs == var_attr_schema && ((const kn_var_attrs *)a->attrs)->unbiased;
    double *centre = NULL;
    if (info->center) {
        centre = kn_alloc((size_t)n_out * sizeof(double));
        if (!centre) return kn_last_status();
        reduce_exec(x, mask, info->center, NULL, 0, KN_F64, centre);
        if (info->center == &k_max) /* logsumexp: shift by a finite max only */
            for (int64_t o = 0; o < n_out; o++)
                if (isinf(centre[o])) centre[o] = 0;
    }
    reduce_exec(x, mask, info->kind, centre, correction, y->dtype, kn__tensor_ptr(y));
    kn_free(centre);
    return KN_OK;
}

#if KILN_X86
/* ---- AVX-512 sum/mean/max/min/var/std of f32/bf16 (src/kernels/x86/avx512/
 * reduce.c): last axis, all axes, all but a channel axis; the reference
 * engine above is the twin. var/std: the mean first, then the squared
 * deviations around it. */
static int fast_kind(const kn_op_def *def)
{
    if (def == &kn_op_sum || def == &kn_op_mean) return KN_RED_SUM;
    if (def == &kn_op_max) return KN_RED_MAX;
    if (def == &kn_op_min) return KN_RED_MIN;
    if (def == &kn_op_var || def == &kn_op_std) return KN_RED_SQDEV;
    return -1;
}

static bool reduce_avx512_accepts(const kn_op_args *a)
{
    bool mask[KN_MAX_DIMS];
    const kn_tensor *x = a->in[0];
    if (fast_kind(a->def) < 0 || (x->dtype != KN_F32 && x->dtype != KN_BF16) ||
        a->out[0]->dtype != x->dtype || kn_tensor_numel(a->out[0]) == 0)
        return false;
    if (kn__reduce_mask(a->def->name, a->attrs, x->ndim, mask)) return false;
    return kn__reduce_avx512_accepts(x, mask);
}

static kn_status reduce_avx512(const kn_op_args *a)
{
    const kn_tensor *x = a->in[0];
    kn_tensor *y = a->out[0];
    bool mask[KN_MAX_DIMS];
    kn__reduce_mask(a->def->name, a->attrs, x->ndim, mask);
    int64_t n_out = kn_tensor_numel(y), count = kn_tensor_numel(x) / n_out;
    int kind = fast_kind(a->def);
    double *r = kn_alloc(sizeof(double) * 2 * (size_t)n_out);
    if (!r) return kn_last_status();
    double *m = r + n_out;
    kn_status s = kn__reduce_avx512_run(x, mask, kind == KN_RED_SQDEV ? KN_RED_SUM : kind, NULL, r);
    if (!s && kind == KN_RED_SQDEV) {
        for (int64_t o = 0; o < n_out; o++)
            m[o] = r[o] / (double)count;
        s = kn__reduce_avx512_run(x, mask, KN_RED_SQDEV, m, r);
    }
    double dof = (double)count;
    if (kind == KN_RED_SQDEV && ((const kn_var_attrs *)a->attrs)->unbiased) dof -= 1;
    size_t os = kn_dtype_size(y->dtype);
    char *out = kn__tensor_ptr(y);
    for (int64_t o = 0; !s && o < n_out; o++) {
        double v = r[o];
        if (a->def == &kn_op_mean) v /= (double)count;
        if (kind == KN_RED_SQDEV) v /= dof > 0 ? dof : 0; /* 0/0 = nan, as PyTorch */
        if (a->def == &kn_op_std) v = sqrt(v);
        kn__store(y->dtype, out + o * (int64_t)os, v);
    }
    kn_free(r);
    return s;
}
#endif

static const kn_impl reduce_impls[] = {
#if KILN_X86
    {"avx512", KN_ISA_AVX512, reduce_avx512_accepts, reduce_avx512},
#endif
    {"ref", KN_ISA_REF, NULL, reduce_ref},
    {0}};

static kn_tensor *reduce_call(const kn_op_def *def, kn_tensor *x, int n_axes, const int *axes,
                              bool keepdim)
{
    kn_reduce_attrs at;
    if (kn__reduce_attrs(def->name, &at, n_axes, axes, keepdim)) return NULL;
    kn_tensor *in[1] = {x};
    return kn__op_call1(def, 1, in, &at);
}

#define KN_REDUCE_OP(op_name, schema, n_attrs_, attrs_t, dtypes_, infer_, grad_, info_, amp_)      \
    const kn_op_def kn_op_##op_name = {.name = #op_name,                                           \
                                       .n_in = 1,                                                  \
                                       .n_out = 1,                                                 \
                                       .attrs = schema,                                            \
                                       .n_attrs = n_attrs_,                                        \
                                       .attrs_size = sizeof(attrs_t),                              \
                                       .dtypes = dtypes_,                                          \
                                       .infer = infer_,                                            \
                                       .impls = reduce_impls,                                      \
                                       .grad = grad_,                                              \
                                       .data = &info_,                                             \
                                       .amp = amp_,                                                \
                                       .layout = KN_LAYOUT_FIXED}

/* ---- gradient helpers */
/* t (reduced shape) reshaped to the keepdim shape and expanded to x's. */
static kn_tensor *expand_back(kn_tensor *t, const kn_tensor *x, const kn_reduce_attrs *at)
{
    int64_t kshape[KN_MAX_DIMS];
    kn__keepdim_shape(x, at, kshape);
    kn_tensor *r = kn_reshape(t, x->ndim, kshape);
    kn_tensor *e = r ? kn_expand(r, x->ndim, x->shape) : NULL;
    kn_tensor_unref(r);
    return e;
}

/* t (reduced shape) reshaped to the keepdim shape (broadcasts against x). */
static kn_tensor *keep_shape(kn_tensor *t, const kn_tensor *x, const kn_reduce_attrs *at)
{
    int64_t kshape[KN_MAX_DIMS];
    kn__keepdim_shape(x, at, kshape);
    return kn_reshape(t, x->ndim, kshape);
}

/* The reduced axes of at against x, as a list for kn_sum & co. */
static int axes_list(const kn_tensor *x, const kn_reduce_attrs *at, int *axes)
{
    bool mask[KN_MAX_DIMS];
    int n = 0;
    kn__reduce_mask("reduce", at, x->ndim, mask);
    for (int d = 0; d < x->ndim; d++)
        if (mask[d]) axes[n++] = d;
    return n;
}

static kn_status set_grad(const kn_grad_args *g, kn_tensor *t, kn_scratch *s)
{
    kn__scratch_free(s);
    g->grad_in[0] = t;
    return t ? KN_OK : kn_last_status();
}

/* ---- sum */
static kn_status sum_grad(const kn_grad_args *g)
{
    g->grad_in[0] = expand_back(g->grad_out[0], g->in[0], g->attrs);
    return g->grad_in[0] ? KN_OK : kn_last_status();
}
static const rinfo sum_info = {&k_sum, NULL, OUT_WIDE, false};
KN_REDUCE_OP(sum, reduce_attr_schema, 2, kn_reduce_attrs, KN_DTYPES_ALL, reduce_infer, sum_grad,
             sum_info, KN_AMP_FP32);
kn_tensor *kn_sum(kn_tensor *x, int n_axes, const int *axes, bool keepdim)
{
    return reduce_call(&kn_op_sum, x, n_axes, axes, keepdim);
}

/* ---- mean: float inputs only (as in PyTorch) */
static kn_status mean_grad(const kn_grad_args *g)
{
    kn_scratch s = {0};
    int64_t n = kn__reduce_count(g->in[0], g->attrs);
    kn_tensor *e = kn__keep(&s, expand_back(g->grad_out[0], g->in[0], g->attrs));
    return set_grad(g, kn_mul_scalar(e, n > 0 ? 1.0 / (double)n : 0.0), &s);
}
static const rinfo mean_info = {&k_mean, NULL, OUT_SAME, false};
KN_REDUCE_OP(mean, reduce_attr_schema, 2, kn_reduce_attrs, KN_DTYPES_FLOAT, reduce_infer, mean_grad,
             mean_info, KN_AMP_FP32);
kn_tensor *kn_mean(kn_tensor *x, int n_axes, const int *axes, bool keepdim)
{
    return reduce_call(&kn_op_mean, x, n_axes, axes, keepdim);
}

/* ---- prod. d/dx_i = prod_{j != i} x_j, exact with zeros: with z = (x == 0),
 * nz = sum z and p = prod(x + z) (the product of the nonzero elements),
 * it is p / (x + z) where nz == 0, p at the zero where nz == 1, else 0. */
static kn_status prod_grad(const kn_grad_args *g)
{
    const kn_reduce_attrs *at = g->attrs;
    kn_tensor *x = g->in[0];
    kn_scratch s = {0};
    int axes[KN_MAX_DIMS], n = axes_list(x, at, axes);
    kn_tensor *zero = kn__keep(&s, kn__scalar_like(x, 0));
    kn_tensor *z = kn__keep(&s, kn_eq(x, zero));
    kn_tensor *nz = kn__keep(&s, z ? kn_sum(z, n, axes, true) : NULL);
    kn_tensor *i0 = kn__keep(&s, kn_tensor_scalar(KN_I64, 0));
    kn_tensor *i1 = kn__keep(&s, kn_tensor_scalar(KN_I64, 1));
    kn_tensor *none = kn__keep(&s, kn_eq(nz, i0)), *one = kn__keep(&s, kn_eq(nz, i1));
    kn_tensor *xs = kn__keep(&s, kn_add(x, z));
    kn_tensor *p = kn__keep(&s, xs ? kn_prod(xs, n, axes, true) : NULL);
    kn_tensor *a = kn__keep(&s, kn_div(none, xs));
    kn_tensor *b = kn__keep(&s, kn_mul(z, one));
    kn_tensor *ab = kn__keep(&s, kn_add(a, b));
    kn_tensor *d = kn__keep(&s, kn_mul(p, ab));
    kn_tensor *gk = kn__keep(&s, keep_shape(g->grad_out[0], x, at));
    return set_grad(g, kn_mul(gk, d), &s);
}
static const rinfo prod_info = {&k_prod, NULL, OUT_WIDE, false};
KN_REDUCE_OP(prod, reduce_attr_schema, 2, kn_reduce_attrs, KN_DTYPES_ALL, reduce_infer, prod_grad,
             prod_info, KN_AMP_FP32);
kn_tensor *kn_prod(kn_tensor *x, int n_axes, const int *axes, bool keepdim)
{
    return reduce_call(&kn_op_prod, x, n_axes, axes, keepdim);
}

/* ---- max, min (values, like torch.amax/amin: the gradient is split evenly
 * among the elements equal to the result) */
static kn_status extremum_grad(const kn_grad_args *g)
{
    const kn_reduce_attrs *at = g->attrs;
    kn_tensor *x = g->in[0];
    kn_scratch s = {0};
    int axes[KN_MAX_DIMS], n = axes_list(x, at, axes);
    kn_tensor *yk = kn__keep(&s, keep_shape(g->out[0], x, at));
    kn_tensor *mask = kn__keep(&s, kn_eq(x, yk));
    kn_tensor *cnt = kn__keep(&s, mask ? kn_sum(mask, n, axes, true) : NULL);
    kn_tensor *gk = kn__keep(&s, keep_shape(g->grad_out[0], x, at));
    kn_tensor *share = kn__keep(&s, kn_div(gk, cnt));
    return set_grad(g, kn_mul(share, mask), &s);
}
static const rinfo max_info = {&k_max, NULL, OUT_SAME, true};
static const rinfo min_info = {&k_min, NULL, OUT_SAME, true};
KN_REDUCE_OP(max, reduce_attr_schema, 2, kn_reduce_attrs, KN_DTYPES_ALL, reduce_infer,
             extremum_grad, max_info, KN_AMP_NONE);
KN_REDUCE_OP(min, reduce_attr_schema, 2, kn_reduce_attrs, KN_DTYPES_ALL, reduce_infer,
             extremum_grad, min_info, KN_AMP_NONE);
kn_tensor *kn_max(kn_tensor *x, int n_axes, const int *axes, bool keepdim)
{
    return reduce_call(&kn_op_max, x, n_axes, axes, keepdim);
}
kn_tensor *kn_min(kn_tensor *x, int n_axes, const int *axes, bool keepdim)
{
    return reduce_call(&kn_op_min, x, n_axes, axes, keepdim);
}

/* ---- logsumexp: max + log(sum(exp(x - max))); d/dx = exp(x - out) */
static kn_status lse_grad(const kn_grad_args *g)
{
    const kn_reduce_attrs *at = g->attrs;
    kn_tensor *x = g->in[0];
    kn_scratch s = {0};
    kn_tensor *yk = kn__keep(&s, keep_shape(g->out[0], x, at));
    kn_tensor *e = kn__keep(&s, kn_exp(kn__keep(&s, kn_sub(x, yk))));
    kn_tensor *gk = kn__keep(&s, keep_shape(g->grad_out[0], x, at));
    return set_grad(g, kn_mul(gk, e), &s);
}
static const rinfo lse_info = {&k_lse, &k_max, OUT_SAME, false};
KN_REDUCE_OP(logsumexp, reduce_attr_schema, 2, kn_reduce_attrs, KN_DTYPES_FLOAT, reduce_infer,
             lse_grad, lse_info, KN_AMP_FP32);
kn_tensor *kn_logsumexp(kn_tensor *x, int n_axes, const int *axes, bool keepdim)
{
    return reduce_call(&kn_op_logsumexp, x, n_axes, axes, keepdim);
}

/* ---- var, std: two passes (mean, then squared deviations).
 * d var/dx = 2 (x - mean) / (N - c); d std/dx = (x - mean) / ((N - c) std) */
static kn_status var_std_grad(const kn_grad_args *g)
{
    const kn_var_attrs *at = g->attrs;
    kn_tensor *x = g->in[0];
    bool is_std = g->def == &kn_op_std;
    kn_scratch s = {0};
    int axes[KN_MAX_DIMS], n = axes_list(x, &at->r, axes);
    double dof = (double)kn__reduce_count(x, &at->r) - (at->unbiased ? 1 : 0);
    kn_tensor *m = kn__keep(&s, kn_mean(x, n, axes, true));
    kn_tensor *d = kn__keep(&s, kn_sub(x, m));
    kn_tensor *gk = kn__keep(&s, keep_shape(g->grad_out[0], x, &at->r));
    kn_tensor *gd = kn__keep(&s, kn_mul(gk, d));
    if (is_std) {
        kn_tensor *yk = kn__keep(&s, keep_shape(g->out[0], x, &at->r));
        gd = kn__keep(&s, kn_div(gd, yk));
    }
    return set_grad(g, kn_mul_scalar(gd, (is_std ? 1.0 : 2.0) / dof), &s);
}
static const rinfo var_info = {&k_var, &k_mean, OUT_SAME, false};
static const rinfo std_info = {&k_std, &k_mean, OUT_SAME, false};
KN_REDUCE_OP(var, var_attr_schema, 3, kn_var_attrs, KN_DTYPES_FLOAT, reduce_infer, var_std_grad,
             var_info, KN_AMP_FP32);
KN_REDUCE_OP(std, var_attr_schema, 3, kn_var_attrs, KN_DTYPES_FLOAT, reduce_infer, var_std_grad,
             std_info, KN_AMP_FP32);

static kn_tensor *var_call(const kn_op_def *def, kn_tensor *x, int n_axes, const int *axes,
                           bool unbiased, bool keepdim)
{
    kn_var_attrs at;
    if (kn__reduce_attrs(def->name, &at.r, n_axes, axes, keepdim)) return NULL;
    at.unbiased = unbiased;
    kn_tensor *in[1] = {x};
    return kn__op_call1(def, 1, in, &at);
}
kn_tensor *kn_var(kn_tensor *x, int n_axes, const int *axes, bool unbiased, bool keepdim)
{
    return var_call(&kn_op_var, x, n_axes, axes, unbiased, keepdim);
}
kn_tensor *kn_std(kn_tensor *x, int n_axes, const int *axes, bool unbiased, bool keepdim)
{
    return var_call(&kn_op_std, x, n_axes, axes, unbiased, keepdim);
}

/* ---- norm, p = 1 (sum |x|) or 2 (sqrt(sum x^2)). The kind is picked from
 * p at run time, so the op has one rinfo per p behind a small switch. */
static const rinfo norm1_info = {&k_norm1, NULL, OUT_SAME, false};
static const rinfo norm2_info = {&k_norm2, NULL, OUT_SAME, false};

static kn_status norm_infer(const kn_op_args *a, kn_out_meta *out)
{
    const kn_norm_attrs *at = a->attrs;
    if (at->p != 1 && at->p != 2)
        return kn__error(KN_ERR_ARG, "norm: p is %lld, expected 1 or 2", (long long)at->p);
    return reduce_infer(a, out);
}

static kn_status norm_ref(const kn_op_args *a)
{
    const kn_norm_attrs *at = a->attrs;
    kn_op_def def = *a->def;
    def.data = at->p == 1 ? &norm1_info : &norm2_info;
    kn_op_args b = *a;
    b.def = &def;
    return reduce_ref(&b);
}
static const kn_impl norm_impls[] = {{"ref", KN_ISA_REF, NULL, norm_ref}, {0}};

/* p = 1: g sign(x); p = 2: g x / norm, 0 where the norm is 0 (as PyTorch). */
static kn_status norm_grad(const kn_grad_args *g)
{
    const kn_norm_attrs *at = g->attrs;
    kn_tensor *x = g->in[0];
    kn_scratch s = {0};
    kn_tensor *gk = kn__keep(&s, keep_shape(g->grad_out[0], x, &at->r));
    if (at->p == 1) return set_grad(g, kn_mul(gk, kn__keep(&s, kn_sign(x))), &s);
    kn_tensor *yk = kn__keep(&s, keep_shape(g->out[0], x, &at->r));
    kn_tensor *zero = kn__keep(&s, kn__scalar_like(yk ? yk : x, 0));
    kn_tensor *is0 = kn__keep(&s, kn_eq(yk, zero));
    kn_tensor *den = kn__keep(&s, kn_add(yk, is0)); /* 1 where the norm is 0 (x is 0 there) */
    kn_tensor *q = kn__keep(&s, kn_div(gk, den));
    return set_grad(g, kn_mul(q, x), &s);
}

const kn_op_def kn_op_norm = {
    .name = "norm",
    .n_in = 1,
    .n_out = 1,
    .attrs = norm_attr_schema,
    .n_attrs = 3,
    .attrs_size = sizeof(kn_norm_attrs),
    .dtypes = KN_DTYPES_FLOAT,
    .infer = norm_infer,
    .impls = norm_impls,
    .grad = norm_grad,
    .data = &norm2_info,
    .amp = KN_AMP_FP32,
    .layout = KN_LAYOUT_FIXED,
};

kn_tensor *kn_norm(kn_tensor *x, int p, int n_axes, const int *axes, bool keepdim)
{
    kn_norm_attrs at;
    if (kn__reduce_attrs("norm", &at.r, n_axes, axes, keepdim)) return NULL;
    at.p = p;
    kn_tensor *in[1] = {x};
    return kn__op_call1(&kn_op_norm, 1, in, &at);
}

/* ---- all, any: truth values of any dtype, bool out; no gradient */
static const rinfo all_info = {&k_all, NULL, OUT_BOOL, false};
static const rinfo any_info = {&k_any, NULL, OUT_BOOL, false};
KN_REDUCE_OP(all, reduce_attr_schema, 2, kn_reduce_attrs, KN_DTYPES_ALL, reduce_infer, NULL,
             all_info, KN_AMP_NONE);
KN_REDUCE_OP(any, reduce_attr_schema, 2, kn_reduce_attrs, KN_DTYPES_ALL, reduce_infer, NULL,
             any_info, KN_AMP_NONE);
kn_tensor *kn_all(kn_tensor *x, int n_axes, const int *axes, bool keepdim)
{
    return reduce_call(&kn_op_all, x, n_axes, axes, keepdim);
}
kn_tensor *kn_any(kn_tensor *x, int n_axes, const int *axes, bool keepdim)
{
    return reduce_call(&kn_op_any, x, n_axes, axes, keepdim);
}

/* ---- argmax, argmin: one axis, i64 indices of the first best; no gradient */
static kn_status arg_mask(const kn_op_args *a, bool *mask)
{
    const kn_arg_attrs *at = a->attrs;
    kn_reduce_attrs r = {.axes = {1, {at->axis}}, .keepdim = at->keepdim};
    return kn__reduce_mask(a->def->name, &r, a->in[0]->ndim, mask);
}

static kn_status arg_infer(const kn_op_args *a, kn_out_meta *out)
{
    const kn_tensor *x = a->in[0];
    bool mask[KN_MAX_DIMS];
    if (!(a->def->dtypes & KN_DT(x->dtype)))
        return kn__error(KN_ERR_DTYPE, "%s: dtype %s is not supported", a->def->name,
                         kn_dtype_name(x->dtype));
    kn_status s = arg_mask(a, mask);
    if (s) return s;
    for (int d = 0; d < x->ndim; d++)
        if (mask[d] && x->shape[d] == 0)
            return kn__error(KN_ERR_SHAPE, "%s: cannot reduce over axis %d of size 0", a->def->name,
                             d);
    kn__reduce_shape(x->ndim, x->shape, mask, ((const kn_arg_attrs *)a->attrs)->keepdim, out);
    out->dtype = KN_I64;
    return KN_OK;
}

static kn_status arg_ref(const kn_op_args *a)
{
    bool mask[KN_MAX_DIMS];
    arg_mask(a, mask);
    const rkind *k = a->def == &kn_op_argmax ? &k_argmax : &k_argmin;
    reduce_exec(a->in[0], mask, k, NULL, 0, KN_I64, kn__tensor_ptr(a->out[0]));
    return KN_OK;
}
static const kn_impl arg_impls[] = {{"ref", KN_ISA_REF, NULL, arg_ref}, {0}};

#define KN_ARG_OP(op_name)                                                                         \
    const kn_op_def kn_op_##op_name = {.name = #op_name,                                           \
                                       .n_in = 1,                                                  \
                                       .n_out = 1,                                                 \
                                       .attrs = arg_attr_schema,                                   \
                                       .n_attrs = 2,                                               \
                                       .attrs_size = sizeof(kn_arg_attrs),                         \
                                       .dtypes = KN_DTYPES_FLOAT | KN_DTYPES_INT,                  \
                                       .infer = arg_infer,                                         \
                                       .impls = arg_impls,                                         \
                                       .amp = KN_AMP_NONE,                                         \
                                       .layout = KN_LAYOUT_FIXED}
KN_ARG_OP(argmax);
KN_ARG_OP(argmin);

static kn_tensor *arg_call(const kn_op_def *def, kn_tensor *x, int axis, bool keepdim)
{
    kn_arg_attrs at = {axis, keepdim};
    kn_tensor *in[1] = {x};
    return kn__op_call1(def, 1, in, &at);
}
kn_tensor *kn_argmax(kn_tensor *x, int axis, bool keepdim)
{
    return arg_call(&kn_op_argmax, x, axis, keepdim);
}
kn_tensor *kn_argmin(kn_tensor *x, int axis, bool keepdim)
{
    return arg_call(&kn_op_argmin, x, axis, keepdim);
}

/* ------------------------------------------------- shared with autograd */
kn_tensor *kn__sum_to_shape(kn_tensor *g, int ndim, const int64_t *shape)
{
    int lead = g->ndim - ndim, axes[KN_MAX_DIMS], n = 0;
    if (lead < 0)
        return kn__error_null(KN_ERR_SHAPE, "sum_to_shape: gradient has fewer dims than its input");
    for (int d = 0; d < g->ndim; d++)
        if (d < lead || (shape[d - lead] == 1 && g->shape[d] != 1)) axes[n++] = d;
    if (n == 0 && lead == 0) return kn_tensor_ref(g);
    kn_tensor *s = kn_sum(g, n, axes, true);
    kn_tensor *r = s ? kn_reshape(s, ndim, shape) : NULL;
    kn_tensor_unref(s);
    return r;
}
