/* norm.c — normalization (batch, layer, group, instance, RMS), softmax,
 * log_softmax and dropout. Every norm is a composite over one kernel op,
 * `normalize` (statistics over a set of axes, with mean and 1/std as hidden
 * outputs, and a gradient written with kn_ ops), plus kn_mul/kn_add for the
 * affine part. Dropout draws its mask from the global Philox stream. */
#include "norm.h"

#if KILN_X86
#include "../kernels/norm_fast.h"
#endif

#include <math.h>

/* ================================================================ normalize
 * y = (x - mean) * rstd, rstd = 1/sqrt(var + eps), with mean and the biased
 * var over `axes` (center = false: mean taken as 0, RMS normalization).
 * Outputs y (x's shape and dtype), mean and rstd (keepdim shape; f64 for f64
 * input, else f32). */
typedef kn_norm_attrs norm_attrs;

#define NA(field, type) KN_ATTR(norm_attrs, field, type)
static const kn_attr_desc normalize_schema[] = {NA(axes, KN_ATTR_INTS), NA(eps, KN_ATTR_FLOAT),
                                                NA(center, KN_ATTR_BOOL)};

static kn_dtype stat_dtype(kn_dtype dt)
{
    return dt == KN_F64 ? KN_F64 : KN_F32;
}

static kn_status check_eps(const char *who, double eps)
{
    if (!(eps >= 0) || !isfinite(eps))
        return kn__error(KN_ERR_ARG, "%s: eps is %g, expected a finite value >= 0", who, eps);
    return KN_OK;
}

static kn_status axes_mask(const char *who, const kn_ints *axes, int ndim, bool *mask)
{
    for (int d = 0; d < ndim; d++)
        mask[d] = false;
    if (axes->n < 1 || axes->n > ndim)
        return kn__error(KN_ERR_ARG, "%s: %d axes given for %d dims, expected 1..%d", who, axes->n,
                         ndim, ndim);
    for (int i = 0; i < axes->n; i++) {
        int ax = (int)axes->v[i];
        if (axes->v[i] != ax || !kn__norm_axis(&ax, ndim))
            return kn__error(KN_ERR_ARG, "%s: axis %lld out of range for %d dims", who,
                             (long long)axes->v[i], ndim);
        if (mask[ax]) return kn__error(KN_ERR_ARG, "%s: axis %d given twice", who, ax);
        mask[ax] = true;
    }
    return KN_OK;
}

static kn_status normalize_infer(const kn_op_args *a, kn_out_meta *out)
{
    const norm_attrs *at = a->attrs;
    const kn_tensor *x = a->in[0];
    bool mask[KN_MAX_DIMS];
    kn_status s = kn__check_float(a, 0);
    if (s || (s = axes_mask("normalize", &at->axes, x->ndim, mask)) ||
        (s = check_eps("normalize", at->eps)))
        return s;
    out[0].dtype = x->dtype, out[0].ndim = x->ndim;
    for (int i = 1; i < 3; i++)
        out[i].dtype = stat_dtype(x->dtype), out[i].ndim = x->ndim;
    for (int d = 0; d < x->ndim; d++) {
        out[0].shape[d] = x->shape[d];
        out[1].shape[d] = out[2].shape[d] = mask[d] ? 1 : x->shape[d];
    }
    return KN_OK;
}

/* x, y split into kept dims (one statistic each) and reduced dims. */
typedef struct norm_plan {
    const kn_tensor *x;
    kn_tensor *y, *mean, *rstd;
    int n_kept, n_red;
    int64_t kept_shape[KN_MAX_DIMS], kept_xs[KN_MAX_DIMS], kept_ys[KN_MAX_DIMS];
    int64_t red_shape[KN_MAX_DIMS], red_xs[KN_MAX_DIMS], red_ys[KN_MAX_DIMS];
    int64_t count;
    double eps;
    bool center;
} norm_plan;

static void red_offsets(const norm_plan *p, int64_t r, int64_t *ox, int64_t *oy)
{
    *ox = *oy = 0;
    for (int d = p->n_red - 1; d >= 0; d--) {
        int64_t i = r % p->red_shape[d];
        r /= p->red_shape[d];
        *ox += i * p->red_xs[d], *oy += i * p->red_ys[d];
    }
}

static void normalize_range(int64_t begin, int64_t end, void *arg)
{
    const norm_plan *p = arg;
    kn_dtype xd = p->x->dtype, yd = p->y->dtype, sd = p->mean->dtype;
    int64_t xs = (int64_t)kn_dtype_size(xd), ys = (int64_t)kn_dtype_size(yd),
            ss = (int64_t)kn_dtype_size(sd);
    const char *xb = kn__tensor_ptr(p->x);
    char *yb = kn__tensor_ptr(p->y);
    for (int64_t o = begin; o < end; o++) {
        int64_t kx = 0, ky = 0, rem = o, ox, oy;
        for (int d = p->n_kept - 1; d >= 0; d--) {
            int64_t i = rem % p->kept_shape[d];
            rem /= p->kept_shape[d];
            kx += i * p->kept_xs[d], ky += i * p->kept_ys[d];
        }
        double sum = 0, ssq = 0, mean = 0;
        for (int64_t r = 0; p->center && r < p->count; r++) {
            red_offsets(p, r, &ox, &oy);
            sum += kn__load(xd, xb + (kx + ox) * xs);
        }
        if (p->center) mean = sum / (double)p->count;
        for (int64_t r = 0; r < p->count; r++) {
            red_offsets(p, r, &ox, &oy);
            double v = kn__load(xd, xb + (kx + ox) * xs) - mean;
            ssq += v * v;
        }
        double rstd = 1.0 / sqrt(ssq / (double)p->count + p->eps);
        if (sd == KN_F32) rstd = (float)rstd; /* y uses the stored value */
        for (int64_t r = 0; r < p->count; r++) {
            red_offsets(p, r, &ox, &oy);
            kn__store(yd, yb + (ky + oy) * ys, (kn__load(xd, xb + (kx + ox) * xs) - mean) * rstd);
        }
        kn__store(sd, kn__tensor_ptr(p->mean) + o * ss, mean);
        kn__store(sd, kn__tensor_ptr(p->rstd) + o * ss, rstd);
    }
}

static kn_status normalize_ref(const kn_op_args *a)
{
    const norm_attrs *at = a->attrs;
    norm_plan p = {.x = a->in[0],
                   .y = a->out[0],
                   .mean = a->out[1],
                   .rstd = a->out[2],
                   .count = 1,
                   .eps = at->eps,
                   .center = at->center};
    bool mask[KN_MAX_DIMS];
    axes_mask("normalize", &at->axes, p.x->ndim, mask);
    for (int d = 0; d < p.x->ndim; d++) {
        if (mask[d]) {
            p.red_shape[p.n_red] = p.x->shape[d];
            p.red_xs[p.n_red] = p.x->strides[d], p.red_ys[p.n_red++] = p.y->strides[d];
            p.count *= p.x->shape[d];
        } else {
            p.kept_shape[p.n_kept] = p.x->shape[d];
            p.kept_xs[p.n_kept] = p.x->strides[d], p.kept_ys[p.n_kept++] = p.y->strides[d];
        }
    }
    int64_t groups = kn_tensor_numel(p.mean);
    int64_t grain = 8192 / (3 * p.count + 1);
    if (groups > 0) kn_parallel_for(groups, grain < 1 ? 1 : grain, normalize_range, &p);
    return KN_OK;
}

#if KILN_X86
/* ---- AVX-512 normalize (src/kernels/x86/avx512/norm.c): f32/bf16 input,
 * reduced dims around the kept ones; anything else takes the reference. */
static void normalize_job(const kn_op_args *a, kn_norm_job *j)
{
    const norm_attrs *at = a->attrs;
    *j = (kn_norm_job){.x = a->in[0], .y = a->out[0], .eps = at->eps, .center = at->center};
    axes_mask("normalize", &at->axes, a->in[0]->ndim, j->mask);
    j->mean = (float *)kn__tensor_ptr(a->out[1]), j->rstd = (float *)kn__tensor_ptr(a->out[2]);
}

static bool normalize_avx512_accepts(const kn_op_args *a)
{
    kn_norm_job j;
    if (a->out[1]->dtype != KN_F32) return false;
    normalize_job(a, &j);
    return kn__norm_avx512_accepts(&j);
}

static kn_status normalize_avx512(const kn_op_args *a)
{
    kn_norm_job j;
    normalize_job(a, &j);
    return kn__norm_avx512_run(&j);
}

/* Eager shortcut for the composites: when nothing needs recording, the
 * normalization and the affine part (gamma, beta: f32 copies) run as one
 * AVX-512 kernel. The composite stays the definition (autograd and tracing
 * see it); *y stays NULL when the shortcut does not apply. */
static kn_status fused_normalize(kn_norm_job *j, kn_tensor *x, kn_tensor *gamma, kn_tensor *beta,
                                 kn_tensor **y)
{
    *y = NULL;
    kn_tensor *ins[3] = {x, gamma, beta};
    for (int i = 0; i < 3; i++) /* the fused kernel neither records nor traces */
        if (ins[i] && ((kn__record_active() && ins[i]->requires_grad) || !ins[i]->storage)) return KN_OK;
    if (kn_isa_max() < KN_ISA_AVX512 || (x->dtype != KN_F32 && x->dtype != KN_BF16)) return KN_OK;
    int64_t n = gamma ? kn_tensor_numel(gamma) : beta ? kn_tensor_numel(beta) : 0;
    float *buf = n ? kn_alloc(sizeof(float) * 2 * (size_t)n) : NULL;
    if (n && !buf) return kn_last_status();
    kn_tensor *out = kn__tensor_new(x->dtype, x->ndim, x->shape);
    kn_status s = out ? KN_OK : kn_last_status();
    if (!s && gamma) s = kn_tensor_copy_to(gamma, KN_F32, buf, sizeof(float) * (size_t)n);
    if (!s && beta) s = kn_tensor_copy_to(beta, KN_F32, buf + n, sizeof(float) * (size_t)n);
    j->x = x, j->y = out;
    j->gamma = gamma ? buf : NULL, j->beta = beta ? buf + n : NULL;
    if (!s && kn__norm_avx512_accepts(j) && !(s = kn__norm_avx512_run(j))) *y = out, out = NULL;
    kn_tensor_unref(out);
    kn_free(buf);
    return s;
}
#endif

static const kn_impl normalize_impls[] = {
#if KILN_X86
    {"avx512", KN_ISA_AVX512, normalize_avx512_accepts, normalize_avx512},
#endif
    {"ref", KN_ISA_REF, NULL, normalize_ref},
    {0}};

/* mean of t over the normalized axes, keepdim. */
static kn_tensor *mean_r(kn_scratch *s, kn_tensor *t, const norm_attrs *at, double inv_n)
{
    int axes[KN_MAX_DIMS];
    for (int i = 0; i < at->axes.n; i++)
        axes[i] = (int)at->axes.v[i];
    return kn_mul_scalar(kn__keep(s, kn_sum(t, at->axes.n, axes, true)), inv_n);
}

/* With xh = y: dx = rstd * (gy - mean(gy) - xh * mean(gy * xh))  [no mean(gy)
 * term without centering] + g_mean / n + g_rstd * (-rstd^2 * xh / n). */
static kn_status normalize_grad(const kn_grad_args *g)
{
    const norm_attrs *at = g->attrs;
    kn_tensor *x = g->in[0], *y = g->out[0], *rstd = g->out[2];
    kn_tensor *gy = g->grad_out[0], *gm = g->grad_out[1], *gr = g->grad_out[2];
    int64_t n = kn_tensor_numel(x) / (kn_tensor_numel(rstd) ? kn_tensor_numel(rstd) : 1);
    double inv_n = n ? 1.0 / (double)n : 0.0;
    kn_scratch s = {0};
    kn_tensor *dx = NULL;
    if (gy && !kn__record_active()) { /* one kernel; the composite below when recording */
        kn_tensor *in[3] = {gy, y, rstd};
        dx = kn__keep(&s, kn__op_call1(&kn_op_normalize_grad, 3, in, at));
        if (!dx) {
            kn__scratch_free(&s);
            return kn_last_status();
        }
    } else if (gy) {
        kn_tensor *t = gy;
        if (at->center) t = kn__keep(&s, kn_sub(t, kn__keep(&s, mean_r(&s, gy, at, inv_n))));
        kn_tensor *m = kn__keep(&s, mean_r(&s, kn__keep(&s, kn_mul(gy, y)), at, inv_n));
        t = kn__keep(&s, kn_sub(t, kn__keep(&s, kn_mul(y, m))));
        dx = kn__keep(&s, kn_mul(t, rstd));
    }
    if (gr) {
        kn_tensor *c = kn__keep(&s, kn_mul(kn__keep(&s, kn_mul(gr, rstd)), rstd));
        kn_tensor *t = kn__keep(&s, kn_mul(kn__keep(&s, kn_mul_scalar(c, -inv_n)), y));
        dx = dx ? kn__keep(&s, kn_add(dx, t)) : t;
    }
    if (gm && at->center) {
        kn_tensor *t = kn__keep(&s, kn_mul_scalar(gm, inv_n));
        dx = dx ? kn__keep(&s, kn_add(dx, t)) : kn__keep(&s, kn_expand(t, x->ndim, x->shape));
    }
    kn_status st = KN_OK;
    if (dx)
        g->grad_in[0] = kn_tensor_ref(dx);
    else if (gy || gr || (gm && at->center))
        st = kn_last_status();
    kn__scratch_free(&s);
    return st;
}

const kn_op_def kn_op_normalize = {
    .name = "normalize",
    .n_in = 1,
    .n_out = 3,
    .attrs = normalize_schema,
    .n_attrs = KN_ARRAY_LEN(normalize_schema),
    .attrs_size = sizeof(norm_attrs),
    .dtypes = KN_DTYPES_FLOAT,
    .infer = normalize_infer,
    .impls = normalize_impls,
    .grad = normalize_grad,
    .amp = KN_AMP_FP32,
    .layout = KN_LAYOUT_FIXED,
};

/* ================================================================ normalize_grad
 * Inputs gy, y (one shape) and rstd (normalize's keepdim shape), attrs those
 * of normalize: dx = rstd * (gy - mean(gy) - y * mean(gy * y)) over `axes`
 * (no mean(gy) term without centering), x's dtype. The backward of
 * normalize in one or two passes; not differentiable itself (a gradient of
 * a gradient takes normalize's composite instead). */
static void same_shape(const kn_tensor *x, kn_out_meta *out);

static kn_status normalize_grad_infer(const kn_op_args *a, kn_out_meta *out)
{
    const norm_attrs *at = a->attrs;
    const kn_tensor *gy = a->in[0], *y = a->in[1], *r = a->in[2];
    bool mask[KN_MAX_DIMS];
    kn_status s;
    for (int i = 0; i < 3; i++)
        if ((s = kn__check_float(a, i))) return s;
    if ((s = axes_mask("normalize_grad", &at->axes, y->ndim, mask))) return s;
    char sa[96], sb[96];
    if (gy->ndim != y->ndim || memcmp(gy->shape, y->shape, sizeof(int64_t) * (size_t)y->ndim))
        return kn__error(KN_ERR_SHAPE, "normalize_grad: gy has shape %s, y %s",
                         kn__shape_str(gy->ndim, gy->shape, sa, sizeof sa),
                         kn__shape_str(y->ndim, y->shape, sb, sizeof sb));
    bool ok = r->ndim == y->ndim;
    for (int d = 0; ok && d < y->ndim; d++)
        ok = r->shape[d] == (mask[d] ? 1 : y->shape[d]);
    if (!ok)
        return kn__error(KN_ERR_SHAPE, "normalize_grad: rstd has shape %s for y of shape %s",
                         kn__shape_str(r->ndim, r->shape, sa, sizeof sa),
                         kn__shape_str(y->ndim, y->shape, sb, sizeof sb));
    same_shape(y, out);
    return KN_OK;
}

typedef struct ngrad_plan {
    const kn_tensor *t[4]; /* gy, y, rstd, dx */
    int n_kept, n_red;
    int64_t kept_shape[KN_MAX_DIMS], kept_s[4][KN_MAX_DIMS];
    int64_t red_shape[KN_MAX_DIMS], red_s[4][KN_MAX_DIMS];
    int64_t count;
    bool center;
} ngrad_plan;

/* Offsets (elements) of reduced index r in gy, y, dx. */
static void ngrad_red(const ngrad_plan *p, int64_t r, int64_t *o)
{
    o[0] = o[1] = o[3] = 0;
    for (int d = p->n_red - 1; d >= 0; d--) {
        int64_t i = r % p->red_shape[d];
        r /= p->red_shape[d];
        o[0] += i * p->red_s[0][d], o[1] += i * p->red_s[1][d], o[3] += i * p->red_s[3][d];
    }
}

static void normalize_grad_range(int64_t begin, int64_t end, void *arg)
{
    const ngrad_plan *p = arg;
    int64_t es[4];
    const char *b[4];
    for (int i = 0; i < 4; i++)
        es[i] = (int64_t)kn_dtype_size(p->t[i]->dtype), b[i] = kn__tensor_ptr(p->t[i]);
    kn_dtype gd = p->t[0]->dtype, yd = p->t[1]->dtype;
    for (int64_t o = begin; o < end; o++) {
        int64_t k[4] = {0, 0, 0, 0}, rem = o, ro[4];
        for (int d = p->n_kept - 1; d >= 0; d--) {
            int64_t i = rem % p->kept_shape[d];
            rem /= p->kept_shape[d];
            for (int t = 0; t < 4; t++)
                k[t] += i * p->kept_s[t][d];
        }
        double sg = 0, sq = 0;
        for (int64_t r = 0; r < p->count; r++) {
            ngrad_red(p, r, ro);
            double g = kn__load(gd, b[0] + (k[0] + ro[0]) * es[0]);
            sg += g, sq += g * kn__load(yd, b[1] + (k[1] + ro[1]) * es[1]);
        }
        double inv = 1.0 / (double)p->count, mg = p->center ? sg * inv : 0, mq = sq * inv;
        double rs = kn__load(p->t[2]->dtype, b[2] + k[2] * es[2]);
        for (int64_t r = 0; r < p->count; r++) {
            ngrad_red(p, r, ro);
            double g = kn__load(gd, b[0] + (k[0] + ro[0]) * es[0]);
            double y = kn__load(yd, b[1] + (k[1] + ro[1]) * es[1]);
            kn__store(p->t[3]->dtype, (char *)b[3] + (k[3] + ro[3]) * es[3], rs * (g - mg - y * mq));
        }
    }
}

static kn_status normalize_grad_ref(const kn_op_args *a)
{
    const norm_attrs *at = a->attrs;
    ngrad_plan p = {.t = {a->in[0], a->in[1], a->in[2], a->out[0]}, .count = 1,
                    .center = at->center};
    const kn_tensor *y = a->in[1];
    bool mask[KN_MAX_DIMS];
    axes_mask("normalize_grad", &at->axes, y->ndim, mask);
    for (int d = 0; d < y->ndim; d++) {
        bool red = mask[d];
        int n = red ? p.n_red++ : p.n_kept++;
        (red ? p.red_shape : p.kept_shape)[n] = y->shape[d];
        for (int t = 0; t < 4; t++)
            (red ? p.red_s[t] : p.kept_s[t])[n] = red && t == 2 ? 0 : p.t[t]->strides[d];
        if (red) p.count *= y->shape[d];
    }
    int64_t groups = kn_tensor_numel(a->in[2]);
    int64_t grain = 8192 / (3 * p.count + 1);
    if (groups > 0 && p.count > 0) kn_parallel_for(groups, grain < 1 ? 1 : grain, normalize_grad_range, &p);
    return KN_OK;
}

#if KILN_X86
static void normalize_grad_job(const kn_op_args *a, kn_norm_grad_job *j)
{
    const norm_attrs *at = a->attrs;
    *j = (kn_norm_grad_job){.gy = a->in[0], .y = a->in[1], .dx = a->out[0], .center = at->center};
    axes_mask("normalize_grad", &at->axes, a->in[1]->ndim, j->mask);
    j->rstd = (const float *)kn__tensor_ptr(a->in[2]);
}

static bool normalize_grad_avx512_accepts(const kn_op_args *a)
{
    kn_norm_grad_job j;
    if (a->in[2]->dtype != KN_F32 || !kn_tensor_is_contiguous(a->in[2])) return false;
    normalize_grad_job(a, &j);
    return kn__norm_grad_avx512_accepts(&j);
}

static kn_status normalize_grad_avx512(const kn_op_args *a)
{
    kn_norm_grad_job j;
    normalize_grad_job(a, &j);
    return kn__norm_grad_avx512_run(&j);
}
#endif

static const kn_impl normalize_grad_impls[] = {
#if KILN_X86
    {"avx512", KN_ISA_AVX512, normalize_grad_avx512_accepts, normalize_grad_avx512},
#endif
    {"ref", KN_ISA_REF, NULL, normalize_grad_ref},
    {0}};

const kn_op_def kn_op_normalize_grad = {
    .name = "normalize_grad",
    .n_in = 3,
    .n_out = 1,
    .attrs = normalize_schema,
    .n_attrs = KN_ARRAY_LEN(normalize_schema),
    .attrs_size = sizeof(norm_attrs),
    .dtypes = KN_DTYPES_FLOAT,
    .infer = normalize_grad_infer,
    .impls = normalize_grad_impls,
    .amp = KN_AMP_FP32,
    .layout = KN_LAYOUT_FIXED,
};

/* Runs normalize; *y gets the normalized tensor, mean/rstd if asked. */
static kn_status normalize(kn_tensor *x, int n_axes, const int *axes, double eps, bool center,
                           kn_tensor **y, kn_tensor **mean, kn_tensor **rstd)
{
    norm_attrs at = {.eps = eps, .center = center};
    at.axes.n = n_axes;
    for (int i = 0; i < n_axes; i++)
        at.axes.v[i] = axes[i];
    kn_tensor *out[3] = {NULL, NULL, NULL}, *in[1] = {x};
    kn_status s = kn__op_call(&kn_op_normalize, 1, in, &at, 3, out);
    if (s) return s;
    *y = out[0];
    if (mean)
        *mean = out[1];
    else
        kn_tensor_unref(out[1]);
    if (rstd)
        *rstd = out[2];
    else
        kn_tensor_unref(out[2]);
    return KN_OK;
}

/* y * gamma + beta (either may be NULL), gamma/beta reshaped to `shape`
 * (ndim dims) so they broadcast against y; takes ownership of y. */
static kn_tensor *affine(kn_tensor *y, kn_tensor *gamma, kn_tensor *beta, int ndim,
                         const int64_t *shape)
{
    kn_tensor *p[2] = {gamma, beta};
    for (int i = 0; i < 2 && y; i++) {
        if (!p[i]) continue;
        kn_tensor *r = shape ? kn_reshape(p[i], ndim, shape) : kn_tensor_ref(p[i]);
        kn_tensor *z = r ? (i == 0 ? kn_mul(y, r) : kn_add(y, r)) : NULL;
        kn_tensor_unref(r);
        kn_tensor_unref(y);
        y = z;
    }
    return y;
}

/* Checks an optional per-feature parameter: float, x's dtype, given shape. */
static kn_status check_param(const char *who, const char *what, const kn_tensor *t,
                             const kn_tensor *x, int ndim, const int64_t *shape)
{
    if (!t) return KN_OK;
    if (t->dtype != x->dtype)
        return kn__error(KN_ERR_DTYPE, "%s: %s has dtype %s, expected %s like the input", who, what,
                         kn_dtype_name(t->dtype), kn_dtype_name(x->dtype));
    if (t->ndim != ndim || memcmp(t->shape, shape, sizeof(int64_t) * (size_t)ndim)) {
        char sa[96], sb[96];
        return kn__error(KN_ERR_SHAPE, "%s: %s has shape %s, expected %s", who, what,
                         kn__shape_str(t->ndim, t->shape, sa, sizeof sa),
                         kn__shape_str(ndim, shape, sb, sizeof sb));
    }
    return KN_OK;
}

static void same_shape(const kn_tensor *x, kn_out_meta *out)
{
    out->dtype = x->dtype;
    out->ndim = x->ndim;
    memcpy(out->shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
}

/* ================================================================ layer_norm, rms_norm
 * inputs x, gamma?, beta? (rms_norm: x, gamma?); attrs axes.v[0] = n_axes. */
static const kn_attr_desc last_axes_schema[] = {NA(axes, KN_ATTR_INTS), NA(eps, KN_ATTR_FLOAT)};

static kn_status last_axes_infer(const kn_op_args *a, kn_out_meta *out)
{
    const norm_attrs *at = a->attrs;
    const kn_tensor *x = a->in[0];
    const char *who = a->def->name;
    kn_status s = kn__check_float(a, 0);
    if (s || (s = check_eps(who, at->eps))) return s;
    int64_t n = at->axes.n == 1 ? at->axes.v[0] : -1;
    if (n < 1 || n > x->ndim)
        return kn__error(KN_ERR_ARG, "%s: n_axes is %lld for an input of %d dims, expected 1..%d",
                         who, (long long)n, x->ndim, x->ndim);
    const int64_t *tail = x->shape + x->ndim - n;
    if ((s = check_param(who, "gamma", a->in[1], x, (int)n, tail))) return s;
    if (a->n_in > 2 && (s = check_param(who, "beta", a->in[2], x, (int)n, tail))) return s;
    same_shape(x, out);
    return KN_OK;
}

static kn_status last_axes_compose(const kn_op_args *a)
{
    const norm_attrs *at = a->attrs;
    kn_tensor *x = a->in[0], *y = NULL;
    int n = (int)at->axes.v[0], axes[KN_MAX_DIMS];
    for (int i = 0; i < n; i++)
        axes[i] = x->ndim - n + i;
    bool center = a->def == &kn_op_layer_norm;
    kn_tensor *beta = a->n_in > 2 ? a->in[2] : NULL;
#if KILN_X86
    kn_norm_job j = {.eps = at->eps, .center = center, .affine = KN_NORM_AFFINE_INNER};
    for (int d = 0; d < x->ndim; d++)
        j.mask[d] = d >= x->ndim - n;
    kn_status fs = fused_normalize(&j, x, a->in[1], beta, &a->out[0]);
    if (fs || a->out[0]) return fs;
#endif
    kn_status s = normalize(x, n, axes, at->eps, center, &y, NULL, NULL);
    if (s) return s;
    a->out[0] = affine(y, a->in[1], beta, 0, NULL);
    return a->out[0] ? KN_OK : kn_last_status();
}

const kn_op_def kn_op_layer_norm = {
    .name = "layer_norm",
    .n_in = 3,
    .n_out = 1,
    .optional_in = 6u,
    .attrs = last_axes_schema,
    .n_attrs = KN_ARRAY_LEN(last_axes_schema),
    .attrs_size = sizeof(norm_attrs),
    .dtypes = KN_DTYPES_FLOAT,
    .infer = last_axes_infer,
    .compose = last_axes_compose,
    .amp = KN_AMP_FP32,
    .layout = KN_LAYOUT_FIXED,
};

const kn_op_def kn_op_rms_norm = {
    .name = "rms_norm",
    .n_in = 2,
    .n_out = 1,
    .optional_in = 2u,
    .attrs = last_axes_schema,
    .n_attrs = KN_ARRAY_LEN(last_axes_schema),
    .attrs_size = sizeof(norm_attrs),
    .dtypes = KN_DTYPES_FLOAT,
    .infer = last_axes_infer,
    .compose = last_axes_compose,
    .amp = KN_AMP_FP32,
    .layout = KN_LAYOUT_FIXED,
};

kn_tensor *kn_layer_norm(kn_tensor *x, int n_axes, kn_tensor *gamma, kn_tensor *beta, double eps)
{
    norm_attrs at = {.axes = {1, {n_axes}}, .eps = eps};
    kn_tensor *in[3] = {x, gamma, beta};
    return kn__op_call1(&kn_op_layer_norm, 3, in, &at);
}

kn_tensor *kn_rms_norm(kn_tensor *x, int n_axes, kn_tensor *gamma, double eps)
{
    norm_attrs at = {.axes = {1, {n_axes}}, .eps = eps};
    kn_tensor *in[2] = {x, gamma};
    return kn__op_call1(&kn_op_rms_norm, 2, in, &at);
}

/* ================================================================ group_norm, instance_norm
 * x (N, C, ...) as (N, G, C/G * spatial), normalized over the last axis;
 * gamma/beta (C). instance_norm is group_norm with G = C. */
static const kn_attr_desc group_schema[] = {NA(groups, KN_ATTR_INT), NA(eps, KN_ATTR_FLOAT)};
static const kn_attr_desc instance_schema[] = {NA(eps, KN_ATTR_FLOAT)};

static kn_status group_check(const kn_op_args *a, int64_t *groups)
{
    const norm_attrs *at = a->attrs;
    const kn_tensor *x = a->in[0];
    const char *who = a->def->name;
    bool inst = a->def == &kn_op_instance_norm;
    kn_status s = kn__check_float(a, 0);
    if (s || (s = check_eps(who, at->eps))) return s;
    if (x->ndim < (inst ? 3 : 2))
        return kn__error(KN_ERR_SHAPE, "%s: input has %d dims, expected >= %d (N, C%s)", who,
                         x->ndim, inst ? 3 : 2, inst ? ", spatial..." : ", ...");
    int64_t c = x->shape[1];
    *groups = inst ? c : at->groups;
    if (!inst && (*groups < 1 || c % *groups))
        return kn__error(KN_ERR_ARG, "%s: %lld groups do not divide %lld channels", who,
                         (long long)*groups, (long long)c);
    if ((s = check_param(who, "gamma", a->in[1], x, 1, &c))) return s;
    return check_param(who, "beta", a->in[2], x, 1, &c);
}

static kn_status group_infer(const kn_op_args *a, kn_out_meta *out)
{
    int64_t groups = 0;
    kn_status s = group_check(a, &groups);
    if (!s) same_shape(a->in[0], out);
    return s;
}

static kn_status group_compose(const kn_op_args *a)
{
    const norm_attrs *at = a->attrs;
    kn_tensor *x = a->in[0];
    int64_t groups = 0;
    kn_status s = group_check(a, &groups);
    if (s) return s;
    if (groups == 0) { /* no channels: nothing to normalize */
        a->out[0] = kn_tensor_clone(x);
        return a->out[0] ? KN_OK : kn_last_status();
    }
    int64_t rest = x->shape[1] / groups;
    for (int d = 2; d < x->ndim; d++)
        rest *= x->shape[d];
    int64_t gshape[3] = {x->shape[0], groups, rest}, pshape[KN_MAX_DIMS];
    kn_tensor *xg = kn_reshape(x, 3, gshape), *yg = NULL;
    s = xg ? normalize(xg, 1, (const int[]){2}, at->eps, true, &yg, NULL, NULL) : kn_last_status();
    kn_tensor_unref(xg);
    if (s) return s;
    kn_tensor *y = kn_reshape(yg, x->ndim, x->shape);
    kn_tensor_unref(yg);
    pshape[0] = x->shape[1];
    for (int d = 1; d < x->ndim - 1; d++)
        pshape[d] = 1;
    a->out[0] = y ? affine(y, a->in[1], a->in[2], x->ndim - 1, pshape) : NULL;
    return a->out[0] ? KN_OK : kn_last_status();
}

const kn_op_def kn_op_group_norm = {
    .name = "group_norm",
    .n_in = 3,
    .n_out = 1,
    .optional_in = 6u,
    .attrs = group_schema,
    .n_attrs = KN_ARRAY_LEN(group_schema),
    .attrs_size = sizeof(norm_attrs),
    .dtypes = KN_DTYPES_FLOAT,
    .infer = group_infer,
    .compose = group_compose,
    .amp = KN_AMP_FP32,
    .layout = KN_LAYOUT_FIXED,
};

const kn_op_def kn_op_instance_norm = {
    .name = "instance_norm",
    .n_in = 3,
    .n_out = 1,
    .optional_in = 6u,
    .attrs = instance_schema,
    .n_attrs = KN_ARRAY_LEN(instance_schema),
    .attrs_size = sizeof(norm_attrs),
    .dtypes = KN_DTYPES_FLOAT,
    .infer = group_infer,
    .compose = group_compose,
    .amp = KN_AMP_FP32,
    .layout = KN_LAYOUT_FIXED,
};

kn_tensor *kn_group_norm(kn_tensor *x, int64_t groups, kn_tensor *gamma, kn_tensor *beta,
                         double eps)
{
    norm_attrs at = {.groups = groups, .eps = eps};
    kn_tensor *in[3] = {x, gamma, beta};
    return kn__op_call1(&kn_op_group_norm, 3, in, &at);
}

kn_tensor *kn_instance_norm(kn_tensor *x, kn_tensor *gamma, kn_tensor *beta, double eps)
{
    norm_attrs at = {.eps = eps};
    kn_tensor *in[3] = {x, gamma, beta};
    return kn__op_call1(&kn_op_instance_norm, 3, in, &at);
}

/* ================================================================ batch_norm
 * inputs x, gamma?, beta?, running_mean?, running_var? (the last two are
 * statistics: no gradient, updated in place when training). */
static const kn_attr_desc batch_schema[] = {NA(training, KN_ATTR_BOOL), NA(momentum, KN_ATTR_FLOAT),
                                            NA(eps, KN_ATTR_FLOAT), NA(layout, KN_ATTR_INT)};

static int channel_axis(const kn_tensor *x, int64_t layout)
{
    return layout == KN_LAYOUT_NHWC ? x->ndim - 1 : 1;
}

static kn_status batch_check(const kn_op_args *a)
{
    const norm_attrs *at = a->attrs;
    const kn_tensor *x = a->in[0], *rm = a->in[3], *rv = a->in[4];
    kn_status s = kn__check_float(a, 0);
    if (s || (s = check_eps("batch_norm", at->eps))) return s;
    if (x->ndim < 2)
        return kn__error(KN_ERR_SHAPE, "batch_norm: input has %d dims, expected >= 2 (N, C, ...)",
                         x->ndim);
    if (at->layout != KN_LAYOUT_NCHW && at->layout != KN_LAYOUT_NHWC)
        return kn__error(KN_ERR_ARG, "batch_norm: layout %lld is not NCHW (0) or NHWC (1)",
                         (long long)at->layout);
    if (!isfinite(at->momentum))
        return kn__error(KN_ERR_ARG, "batch_norm: momentum %g is not finite", at->momentum);
    int64_t c = x->shape[channel_axis(x, at->layout)];
    if ((s = check_param("batch_norm", "gamma", a->in[1], x, 1, &c)) ||
        (s = check_param("batch_norm", "beta", a->in[2], x, 1, &c)))
        return s;
    if (!rm != !rv)
        return kn__error(KN_ERR_ARG,
                         "batch_norm: give both running_mean and running_var, or neither");
    if (!rm && !at->training)
        return kn__error(KN_ERR_ARG, "batch_norm: inference needs running_mean and running_var");
    const kn_tensor *st[2] = {rm, rv};
    for (int i = 0; i < 2 && rm; i++) {
        if (!kn_dtype_is_float(st[i]->dtype) || st[i]->ndim != 1 || st[i]->shape[0] != c)
            return kn__error(KN_ERR_SHAPE, "batch_norm: %s must be a float vector of %lld channels",
                             i ? "running_var" : "running_mean", (long long)c);
    }
    if (at->training && kn_tensor_numel(x) / (c ? c : 1) == 1 && c > 0)
        return kn__error(KN_ERR_SHAPE, "batch_norm: training needs more than 1 value per channel");
    return KN_OK;
}

static kn_status batch_infer(const kn_op_args *a, kn_out_meta *out)
{
    kn_status s = batch_check(a);
    if (!s) same_shape(a->in[0], out);
    return s;
}

/* r = (1 - momentum) * r + momentum * v, elementwise over a vector. */
static void running_update(kn_tensor *r, const kn_tensor *v, double momentum, double scale)
{
    int64_t n = r->shape[0];
    size_t rs = kn_dtype_size(r->dtype), vs = kn_dtype_size(v->dtype);
    for (int64_t i = 0; i < n; i++) {
        char *pr = kn__tensor_ptr(r) + i * r->strides[0] * (int64_t)rs;
        double b = kn__load(v->dtype, kn__tensor_ptr(v) + i * (int64_t)vs) * scale;
        kn__store(r->dtype, pr, (1 - momentum) * kn__load(r->dtype, pr) + momentum * b);
    }
    kn__bump_version(r);
}

/* Training: batch statistics; running stats get the unbiased variance. */
static kn_status batch_train(const kn_op_args *a, kn_tensor **y, bool *fused)
{
    const norm_attrs *at = a->attrs;
    kn_tensor *x = a->in[0], *mean = NULL, *rstd = NULL;
    int cax = channel_axis(x, at->layout), axes[KN_MAX_DIMS], n = 0;
    for (int d = 0; d < x->ndim; d++)
        if (d != cax) axes[n++] = d;
    kn_status s = KN_OK;
#if KILN_X86 /* one pass with gamma/beta when nothing records (see fused_normalize) */
    int64_t nc = x->shape[cax];
    if (x->dtype != KN_F64 && (mean = kn_tensor_empty(KN_F32, 1, &nc)) &&
        (rstd = kn_tensor_empty(KN_F32, 1, &nc))) {
        kn_norm_job j = {.eps = at->eps, .center = true, .affine = KN_NORM_AFFINE_KEPT};
        for (int d = 0; d < x->ndim; d++)
            j.mask[d] = d != cax;
        j.mean = (float *)kn__tensor_ptr(mean), j.rstd = (float *)kn__tensor_ptr(rstd);
        s = fused_normalize(&j, x, a->in[1], a->in[2], y);
        *fused = *y != NULL;
    }
    if (!*fused) kn_tensor_unref(mean), kn_tensor_unref(rstd), mean = rstd = NULL;
#endif
    if (!s && !*fused) s = normalize(x, n, axes, at->eps, true, y, &mean, &rstd);
    if (s || !a->in[3]) {
        kn_tensor_unref(mean), kn_tensor_unref(rstd);
        return s;
    }
    int64_t c = x->shape[cax], count = kn_tensor_numel(x) / (c ? c : 1);
    kn_tensor *var = kn_tensor_empty(mean->dtype, 1, &c);
    if (!var) s = kn_last_status();
    for (int64_t i = 0; var && i < c; i++) { /* var = 1/rstd^2 - eps, in f64 */
        size_t es = kn_dtype_size(var->dtype);
        double r = kn__load(rstd->dtype, kn__tensor_ptr(rstd) + i * (int64_t)es);
        kn__store(var->dtype, kn__tensor_ptr(var) + i * (int64_t)es, 1.0 / (r * r) - at->eps);
    }
    if (var) {
        running_update(a->in[3], mean, at->momentum, 1.0);
        running_update(a->in[4], var, at->momentum,
                       count > 1 ? (double)count / (double)(count - 1) : 1.0);
    }
    kn_tensor_unref(var), kn_tensor_unref(mean), kn_tensor_unref(rstd);
    if (s) kn_tensor_unref(*y), *y = NULL;
    return s;
}

/* Inference: (x - running_mean) * (1 / sqrt(running_var + eps)), in f32/f64. */
static kn_status batch_eval(const kn_op_args *a, const int64_t *pshape, kn_tensor **y,
                            bool *fused)
{
    const norm_attrs *at = a->attrs;
    kn_tensor *x = a->in[0], *rm = a->in[3], *rv = a->in[4];
    int64_t c = rm->shape[0];
    kn_dtype sd = stat_dtype(x->dtype);
    kn_tensor *m = kn_tensor_empty(sd, x->ndim - 1, pshape),
              *k = kn_tensor_empty(sd, x->ndim - 1, pshape);
    if (!m || !k) {
        kn_tensor_unref(m), kn_tensor_unref(k);
        return kn_last_status();
    }
    size_t es = kn_dtype_size(sd);
    for (int64_t i = 0; i < c; i++) {
        double mv = kn__load(rm->dtype, kn__tensor_ptr(rm) +
                                            i * rm->strides[0] * (int64_t)kn_dtype_size(rm->dtype));
        double vv = kn__load(rv->dtype, kn__tensor_ptr(rv) +
                                            i * rv->strides[0] * (int64_t)kn_dtype_size(rv->dtype));
        kn__store(sd, kn__tensor_ptr(m) + i * (int64_t)es, mv);
        kn__store(sd, kn__tensor_ptr(k) + i * (int64_t)es, 1.0 / sqrt(vv + at->eps));
    }
#if KILN_X86 /* one pass with gamma/beta when nothing records (see fused_normalize) */
    if (sd == KN_F32) {
        kn_norm_job j = {.in_mean = (const float *)kn__tensor_ptr(m),
                         .in_rstd = (const float *)kn__tensor_ptr(k),
                         .affine = KN_NORM_AFFINE_KEPT};
        for (int d = 0; d < x->ndim; d++)
            j.mask[d] = d != channel_axis(x, at->layout);
        kn_status s = fused_normalize(&j, x, a->in[1], a->in[2], y);
        *fused = *y != NULL;
        if (s || *fused) {
            kn_tensor_unref(m), kn_tensor_unref(k);
            return s;
        }
    }
#endif
    kn_tensor *d = kn_sub(x, m);
    *y = d ? kn_mul(d, k) : NULL;
    kn_tensor_unref(d), kn_tensor_unref(m), kn_tensor_unref(k);
    return *y ? KN_OK : kn_last_status();
}

static kn_status batch_compose(const kn_op_args *a)
{
    const norm_attrs *at = a->attrs;
    kn_tensor *x = a->in[0], *y = NULL;
    kn_status s = batch_check(a);
    if (s) return s;
    int cax = channel_axis(x, at->layout), nd = x->ndim - 1;
    int64_t pshape[KN_MAX_DIMS];
    for (int d = 0; d < nd; d++)
        pshape[d] = 1;
    if (at->layout == KN_LAYOUT_NHWC)
        pshape[nd - 1] = x->shape[cax];
    else
        pshape[0] = x->shape[cax];
    bool fused = false;
    s = at->training ? batch_train(a, &y, &fused) : batch_eval(a, pshape, &y, &fused);
    if (s) return s;
    if (!fused) y = affine(y, a->in[1], a->in[2], nd, pshape);
    if (y && y->dtype != x->dtype) {
        kn_tensor *c = kn_cast(y, x->dtype);
        kn_tensor_unref(y);
        y = c;
    }
    a->out[0] = y;
    return y ? KN_OK : kn_last_status();
}

const kn_op_def kn_op_batch_norm = {
    .name = "batch_norm",
    .n_in = 5,
    .n_out = 1,
    .optional_in = 0x1eu,
    .nondiff_in = 0x18u,
    .attrs = batch_schema,
    .n_attrs = KN_ARRAY_LEN(batch_schema),
    .attrs_size = sizeof(norm_attrs),
    .dtypes = KN_DTYPES_FLOAT,
    .infer = batch_infer,
    .compose = batch_compose,
    .stateful = true, /* updates the running statistics in place */
    .amp = KN_AMP_FP32,
    .layout = KN_LAYOUT_CHANNEL_AXIS,
};

kn_tensor *kn_batch_norm(kn_tensor *x, kn_tensor *gamma, kn_tensor *beta, kn_tensor *running_mean,
                         kn_tensor *running_var, bool training, double momentum, double eps,
                         kn_layout layout)
{
    norm_attrs at = {.training = training, .momentum = momentum, .eps = eps, .layout = layout};
    kn_tensor *in[5] = {x, gamma, beta, running_mean, running_var};
    return kn__op_call1(&kn_op_batch_norm, 5, in, &at);
}

/* ================================================================ softmax, log_softmax */
typedef kn_softmax_attrs softmax_attrs;
static const kn_attr_desc softmax_schema[] = {KN_ATTR(softmax_attrs, axis, KN_ATTR_INT)};

static kn_status softmax_infer(const kn_op_args *a, kn_out_meta *out)
{
    const softmax_attrs *at = a->attrs;
    const kn_tensor *x = a->in[0];
    kn_status s = kn__check_float(a, 0);
    if (s) return s;
    int ax = (int)at->axis;
    if (at->axis != ax || !kn__norm_axis(&ax, x->ndim > 0 ? x->ndim : 1))
        return kn__error(KN_ERR_ARG, "%s: axis %lld out of range for %d dims", a->def->name,
                         (long long)at->axis, x->ndim);
    same_shape(x, out);
    return KN_OK;
}

typedef struct softmax_plan {
    const kn_tensor *x;
    kn_tensor *y;
    int n_outer;
    int64_t outer_shape[KN_MAX_DIMS], outer_xs[KN_MAX_DIMS], outer_ys[KN_MAX_DIMS];
    int64_t len, xs, ys; /* along the axis */
    bool log;
} softmax_plan;

/* x (..., len, ...) along axis: y = exp(x - max - log(sum exp(x - max))). */
static void softmax_range(int64_t begin, int64_t end, void *arg)
{
    const softmax_plan *p = arg;
    kn_dtype xd = p->x->dtype, yd = p->y->dtype;
    int64_t xe = (int64_t)kn_dtype_size(xd), ye = (int64_t)kn_dtype_size(yd);
    for (int64_t o = begin; o < end; o++) {
        int64_t ox = 0, oy = 0, rem = o;
        for (int d = p->n_outer - 1; d >= 0; d--) {
            int64_t i = rem % p->outer_shape[d];
            rem /= p->outer_shape[d];
            ox += i * p->outer_xs[d], oy += i * p->outer_ys[d];
        }
        const char *xb = kn__tensor_ptr(p->x) + ox * xe;
        char *yb = kn__tensor_ptr(p->y) + oy * ye;
        double mx = -INFINITY, sum = 0;
        for (int64_t i = 0; i < p->len; i++) {
            double v = kn__load(xd, xb + i * p->xs * xe);
            if (v > mx || isnan(v)) mx = v;
        }
        if (isinf(mx) && mx < 0) mx = 0; /* all -inf: avoid inf - inf */
        for (int64_t i = 0; i < p->len; i++)
            sum += exp(kn__load(xd, xb + i * p->xs * xe) - mx);
        double lse = log(sum);
        for (int64_t i = 0; i < p->len; i++) {
            double v = kn__load(xd, xb + i * p->xs * xe) - mx;
            kn__store(yd, yb + i * p->ys * ye, p->log ? v - lse : exp(v) / sum);
        }
    }
}

static kn_status softmax_ref(const kn_op_args *a)
{
    const softmax_attrs *at = a->attrs;
    softmax_plan p = {.x = a->in[0], .y = a->out[0], .len = 1, .log = a->def == &kn_op_log_softmax};
    int ax = (int)at->axis, nd = p.x->ndim;
    if (nd == 0) {
        p.len = 1;
    } else {
        kn__norm_axis(&ax, nd);
        for (int d = 0; d < nd; d++) {
            if (d == ax) {
                p.len = p.x->shape[d], p.xs = p.x->strides[d], p.ys = p.y->strides[d];
                continue;
            }
            p.outer_shape[p.n_outer] = p.x->shape[d];
            p.outer_xs[p.n_outer] = p.x->strides[d], p.outer_ys[p.n_outer++] = p.y->strides[d];
        }
    }
    int64_t rows = p.len ? kn_tensor_numel(p.x) / p.len : 0;
    int64_t grain = 8192 / (3 * p.len + 1);
    if (rows > 0) kn_parallel_for(rows, grain < 1 ? 1 : grain, softmax_range, &p);
    return KN_OK;
}

#if KILN_X86 /* AVX-512 softmax (src/kernels/x86/avx512/norm_softmax.c): f32/bf16 */
static bool softmax_avx512_accepts(const kn_op_args *a)
{
    return kn__softmax_avx512_accepts(a->in[0], (int)((const softmax_attrs *)a->attrs)->axis);
}

static kn_status softmax_avx512(const kn_op_args *a)
{
    kn__softmax_avx512_run(a->in[0], a->out[0], (int)((const softmax_attrs *)a->attrs)->axis,
                           a->def == &kn_op_log_softmax);
    return KN_OK;
}
#endif

static const kn_impl softmax_impls[] = {
#if KILN_X86
    {"avx512", KN_ISA_AVX512, softmax_avx512_accepts, softmax_avx512},
#endif
    {"ref", KN_ISA_REF, NULL, softmax_ref},
    {0}};

static kn_tensor *sum_axis(kn_scratch *s, kn_tensor *t, const softmax_attrs *at)
{
    int ax = (int)at->axis;
    return kn__keep(s, kn_sum(t, t->ndim ? 1 : 0, &ax, true));
}

/* softmax: dx = y * (g - sum(g * y)); log_softmax: dx = g - exp(y) * sum(g). */
static kn_status softmax_grad(const kn_grad_args *g)
{
    const softmax_attrs *at = g->attrs;
    kn_tensor *y = g->out[0], *gy = g->grad_out[0];
    kn_scratch s = {0};
    if (g->def == &kn_op_softmax) {
        kn_tensor *d = kn__keep(&s, kn_sub(gy, sum_axis(&s, kn__keep(&s, kn_mul(gy, y)), at)));
        g->grad_in[0] = kn_mul(y, d);
    } else {
        kn_tensor *e = kn__keep(&s, kn_exp(y));
        g->grad_in[0] = kn_sub(gy, kn__keep(&s, kn_mul(e, sum_axis(&s, gy, at))));
    }
    kn__scratch_free(&s);
    return g->grad_in[0] ? KN_OK : kn_last_status();
}

const kn_op_def kn_op_softmax = {
    .name = "softmax",
    .n_in = 1,
    .n_out = 1,
    .attrs = softmax_schema,
    .n_attrs = 1,
    .attrs_size = sizeof(softmax_attrs),
    .dtypes = KN_DTYPES_FLOAT,
    .infer = softmax_infer,
    .impls = softmax_impls,
    .grad = softmax_grad,
    .amp = KN_AMP_FP32,
    .layout = KN_LAYOUT_FIXED,
};

const kn_op_def kn_op_log_softmax = {
    .name = "log_softmax",
    .n_in = 1,
    .n_out = 1,
    .attrs = softmax_schema,
    .n_attrs = 1,
    .attrs_size = sizeof(softmax_attrs),
    .dtypes = KN_DTYPES_FLOAT,
    .infer = softmax_infer,
    .impls = softmax_impls,
    .grad = softmax_grad,
    .amp = KN_AMP_FP32,
    .layout = KN_LAYOUT_FIXED,
};

kn_tensor *kn_softmax(kn_tensor *x, int axis)
{
    softmax_attrs at = {axis};
    kn_tensor *in[1] = {x};
    return kn__op_call1(&kn_op_softmax, 1, in, &at);
}

kn_tensor *kn_log_softmax(kn_tensor *x, int axis)
{
    softmax_attrs at = {axis};
    kn_tensor *in[1] = {x};
    return kn__op_call1(&kn_op_log_softmax, 1, in, &at);
}

/* ================================================================ dropout
 * Outputs y and the keep mask (bool, hidden). Element i (row-major) is kept
 * when uniform(seed, offset + i) >= p; seed and offset are attrs, reserved
 * from the global stream by kn_dropout, so a replay gives the same mask. */
typedef kn_dropout_attrs dropout_attrs;
static const kn_attr_desc dropout_schema[] = {KN_ATTR(dropout_attrs, p, KN_ATTR_FLOAT),
                                              KN_ATTR(dropout_attrs, seed, KN_ATTR_INT),
                                              KN_ATTR(dropout_attrs, offset, KN_ATTR_INT)};

static kn_status check_p(double p)
{
    if (!(p >= 0 && p <= 1))
        return kn__error(KN_ERR_ARG, "dropout: p is %g, expected 0 <= p <= 1", p);
    return KN_OK;
}

static kn_status dropout_infer(const kn_op_args *a, kn_out_meta *out)
{
    const dropout_attrs *at = a->attrs;
    kn_status s = kn__check_float(a, 0);
    if (s || (s = check_p(at->p))) return s;
    same_shape(a->in[0], &out[0]);
    same_shape(a->in[0], &out[1]);
    out[1].dtype = KN_BOOL;
    return KN_OK;
}

typedef struct dropout_ctx {
    const kn_tensor *x;
    kn_tensor *y, *mask;
    const dropout_attrs *at;
    double scale;
} dropout_ctx;

static void dropout_range(int64_t begin, int64_t end, void *arg)
{
    const dropout_ctx *c = arg;
    const kn_tensor *x = c->x;
    int64_t xe = (int64_t)kn_dtype_size(x->dtype), ye = (int64_t)kn_dtype_size(c->y->dtype);
    uint64_t seed = (uint64_t)c->at->seed, offset = (uint64_t)c->at->offset;
    char *m = kn__tensor_ptr(c->mask);
    for (int64_t i = begin; i < end; i++) {
        int64_t off = 0, rem = i;
        for (int d = x->ndim - 1; d >= 0; d--) {
            off += (rem % x->shape[d]) * x->strides[d];
            rem /= x->shape[d];
        }
        bool keep = kn__rng_uniform_at(seed, offset + (uint64_t)i) >= c->at->p;
        double v = keep ? kn__load(x->dtype, kn__tensor_ptr(x) + off * xe) * c->scale : 0.0;
        kn__store(c->y->dtype, kn__tensor_ptr(c->y) + i * ye, v);
        kn__store(KN_BOOL, m + i * (int64_t)kn_dtype_size(KN_BOOL), keep);
    }
}

static kn_status dropout_ref(const kn_op_args *a)
{
    const dropout_attrs *at = a->attrs;
    dropout_ctx c = {a->in[0], a->out[0], a->out[1], at, at->p < 1 ? 1.0 / (1.0 - at->p) : 0.0};
    int64_t n = kn_tensor_numel(c.x);
    if (n > 0) kn_parallel_for(n, 4096, dropout_range, &c);
    return KN_OK;
}

static const kn_impl dropout_impls[] = {{"ref", KN_ISA_REF, NULL, dropout_ref}, {0}};

/* dx = g * mask / (1 - p) */
static kn_status dropout_grad(const kn_grad_args *g)
{
    const dropout_attrs *at = g->attrs;
    kn_tensor *m = kn_mul(g->grad_out[0], g->out[1]);
    g->grad_in[0] = m ? kn_mul_scalar(m, at->p < 1 ? 1.0 / (1.0 - at->p) : 0.0) : NULL;
    kn_tensor_unref(m);
    return g->grad_in[0] ? KN_OK : kn_last_status();
}

/* A graph replaying dropout draws a fresh mask per run from the global stream. */
static void dropout_refresh(void *attrs)
{
    dropout_attrs *at = attrs;
    at->seed = (int64_t)kn_rng_seed();
    at->offset = (int64_t)kn__rng_reserve((uint64_t)at->count);
}

const kn_op_def kn_op_dropout = {
    .name = "dropout",
    .n_in = 1,
    .n_out = 2,
    .attrs = dropout_schema,
    .n_attrs = KN_ARRAY_LEN(dropout_schema),
    .attrs_size = sizeof(dropout_attrs),
    .dtypes = KN_DTYPES_FLOAT,
    .infer = dropout_infer,
    .impls = dropout_impls,
    .grad = dropout_grad,
    .refresh = dropout_refresh,
    .stateful = true,
    .amp = KN_AMP_NONE,
    .layout = KN_LAYOUT_AGNOSTIC,
};

kn_tensor *kn_dropout(kn_tensor *x, double p, bool training)
{
    if (check_p(p)) return NULL;
    if (!x) return kn__error_null(KN_ERR_ARG, "dropout: input 0 is NULL");
    if (!training || p == 0) return kn_tensor_ref(x); /* identity, like PyTorch */
    dropout_attrs at = {.p = p, .seed = (int64_t)kn_rng_seed()};
    if (kn_dtype_is_float(x->dtype)) {
        at.count = kn_tensor_numel(x);
        /* tracing draws nothing: the graph draws afresh on each run */
        if (!kn_tensor_is_symbolic(x)) at.offset = (int64_t)kn__rng_reserve((uint64_t)at.count);
    }
    kn_tensor *out[2] = {NULL, NULL}, *in[1] = {x};
    if (kn__op_call(&kn_op_dropout, 1, in, &at, 2, out)) return NULL;
    kn_tensor_unref(out[1]);
    return out[0];
}
