/* loss.c — loss functions as composite ops: `infer` validates shapes, dtypes
 * and params; `compose` computes with other kn_ ops (log_softmax, sum, mul,
 * abs, where, ...), so gradients, second derivatives and tracing come from
 * the primitives. f16/bf16 inputs are computed in f32 and rounded once. */
#include "op.h"

#include <math.h>

/* The tape copies attrs, so they are a POD mirror of kn_loss_params; zero
 * fields mean defaults (beta 0 and delta 0 read as 1). */
typedef struct kn_loss_attrs {
    int64_t reduction;
    int64_t ignore_index;
    bool use_ignore_index;
    double label_smoothing;
    double beta;
    double delta;
    bool log_target;
} kn_loss_attrs;

static const kn_attr_desc loss_attr_schema[] = {
    KN_ATTR(kn_loss_attrs, reduction, KN_ATTR_INT),
    KN_ATTR(kn_loss_attrs, ignore_index, KN_ATTR_INT),
    KN_ATTR(kn_loss_attrs, use_ignore_index, KN_ATTR_BOOL),
    KN_ATTR(kn_loss_attrs, label_smoothing, KN_ATTR_FLOAT),
    KN_ATTR(kn_loss_attrs, beta, KN_ATTR_FLOAT),
    KN_ATTR(kn_loss_attrs, delta, KN_ATTR_FLOAT),
    KN_ATTR(kn_loss_attrs, log_target, KN_ATTR_BOOL),
};

static kn_loss_attrs attrs_from(const kn_loss_params *p)
{
    kn_loss_attrs at = {.reduction = KN_REDUCTION_MEAN, .ignore_index = -100};
    if (!p) return at;
    at.reduction = (int64_t)(int)p->reduction;
    at.ignore_index = p->ignore_index;
    at.use_ignore_index = p->use_ignore_index;
    at.label_smoothing = p->label_smoothing;
    at.beta = p->beta;
    at.delta = p->delta;
    at.log_target = p->log_target;
    return at;
}

static const kn_loss_attrs *attrs_of(const kn_op_args *a)
{
    static const kn_loss_attrs defaults = {.reduction = KN_REDUCTION_MEAN, .ignore_index = -100};
    return a->attrs ? a->attrs : &defaults;
}

static double or_one(double v)
{
    return v == 0 ? 1.0 : v;
}

/* ------------------------------------------------------------ validation */
static kn_status check_reduction(const char *who, const kn_loss_attrs *at, bool batchmean_ok)
{
    int64_t r = at->reduction;
    if (r < KN_REDUCTION_MEAN || r > KN_REDUCTION_BATCHMEAN)
        return kn__error(KN_ERR_ARG, "%s: reduction %lld is not a kn_reduction", who, (long long)r);
    if (r == KN_REDUCTION_BATCHMEAN && !batchmean_ok)
        return kn__error(KN_ERR_ARG,
                         "%s: reduction batchmean is only for kl_div (use mean, sum "
                         "or none)",
                         who);
    return KN_OK;
}

static kn_status check_numel(const char *who, int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        if (kn__mul_overflow(n, shape[d], &n) || n > INT64_MAX / 16)
            return kn__error(KN_ERR_SHAPE,
                             "%s: the result would have too many elements "
                             "(overflow)",
                             who);
    return KN_OK;
}

static kn_status check_float_in(const kn_op_args *a, int i, const char *what)
{
    const kn_tensor *t = a->in[i];
    if (t && !kn_dtype_is_float(t->dtype))
        return kn__error(KN_ERR_DTYPE, "%s: %s has dtype %s, expected a float dtype", a->def->name,
                         what, kn_dtype_name(t->dtype));
    return KN_OK;
}

static kn_status check_same_dtype(const kn_op_args *a, int i, const char *what, int j,
                                  const char *what_j)
{
    const kn_tensor *t = a->in[i], *u = a->in[j];
    if (t && u && t->dtype != u->dtype)
        return kn__error(KN_ERR_DTYPE, "%s: %s is %s but %s is %s", a->def->name, what,
                         kn_dtype_name(t->dtype), what_j, kn_dtype_name(u->dtype));
    return KN_OK;
}

/* The loss output: the elementwise shape for reduction none, else 0-d. */
static void loss_out(kn_out_meta *out, kn_dtype dt, int64_t reduction, int ndim,
                     const int64_t *shape)
{
    out->dtype = dt;
    out->ndim = reduction == KN_REDUCTION_NONE ? ndim : 0;
    for (int d = 0; d < out->ndim; d++)
        out->shape[d] = shape[d];
}

/* -------------------------------------------------------- compose helpers */
/* x in the compute dtype (borrowed or kept in s); NULL stays NULL. */
static kn_tensor *in_compute(kn_scratch *s, kn_tensor *x)
{
    if (!x || x->dtype == KN_F32 || x->dtype == KN_F64) return x;
    return kn__keep(s, kn_cast(x, KN_F32));
}

static kn_tensor *scalar_as(kn_scratch *s, const kn_tensor *x, double v)
{
    return x ? kn__keep(s, kn__scalar_like(x, v)) : NULL;
}

static kn_tensor *sum_all(kn_scratch *s, kn_tensor *x)
{
    return x ? kn__keep(s, kn_sum(x, 0, NULL, false)) : NULL;
}

/* Reduces elementwise losses: sum, mean (over all elements, or divided by
 * `denom` when given), batchmean (divided by dim 0), none. Borrowed result. */
static kn_tensor *reduce_elem(kn_scratch *s, kn_tensor *elem, int64_t reduction, kn_tensor *denom)
{
    if (!elem || reduction == KN_REDUCTION_NONE) return elem;
    kn_tensor *total = sum_all(s, elem);
    if (reduction == KN_REDUCTION_SUM) return total;
    if (!denom) {
        double n = reduction == KN_REDUCTION_BATCHMEAN ? (double)(elem->ndim ? elem->shape[0] : 1)
                                                       : (double)kn_tensor_numel(elem);
        denom = scalar_as(s, elem, n);
    }
    return total ? kn__keep(s, kn_div(total, denom)) : NULL;
}

/* Stores r (cast to the output dtype of infer) as the op's output. */
static kn_status set_output(const kn_op_args *a, kn_dtype dt, kn_tensor *r)
{
    if (!r) return kn_last_status() ? kn_last_status() : KN_ERR_INTERNAL;
    a->out[0] = r->dtype == dt ? kn_tensor_ref(r) : kn_cast(r, dt);
    return a->out[0] ? KN_OK : kn_last_status();
}

static kn_tensor *lin(kn_scratch *s, kn_tensor *x, double mul, double add)
{
    kn_tensor *m = mul == 1 ? x : kn__keep(s, kn_mul_scalar(x, mul));
    return add == 0 || !m ? m : kn__keep(s, kn_add_scalar(m, add));
}

static kn_tensor *op_call(const kn_op_def *def, int n, kn_tensor *const *in,
                          const kn_loss_params *p)
{
    kn_loss_attrs at = attrs_from(p);
    return kn__op_call1(def, n, in, &at);
}

/* ---------------------------------------------- regression: x, y -> loss */
static kn_status pair_infer(const kn_op_args *a, kn_out_meta *out, bool batchmean_ok)
{
    const kn_loss_attrs *at = attrs_of(a);
    const kn_tensor *x = a->in[0], *y = a->in[1];
    kn_status s;
    if ((s = check_float_in(a, 0, "input")) || (s = check_float_in(a, 1, "target")) ||
        (s = check_same_dtype(a, 0, "input", 1, "target")) ||
        (s = check_reduction(a->def->name, at, batchmean_ok)))
        return s;
    kn_out_meta b;
    if ((s = kn__broadcast_shapes(a->def->name, x->ndim, x->shape, y->ndim, y->shape, &b.ndim,
                                  b.shape)) ||
        (s = check_numel(a->def->name, b.ndim, b.shape)))
        return s;
    if (at->reduction == KN_REDUCTION_BATCHMEAN && b.ndim == 0)
        return kn__error(KN_ERR_SHAPE, "%s: reduction batchmean needs at least 1 dim (the batch)",
                         a->def->name);
    loss_out(out, x->dtype, at->reduction, b.ndim, b.shape);
    return KN_OK;
}

static kn_status regression_infer(const kn_op_args *a, kn_out_meta *out)
{
    return pair_infer(a, out, false);
}

typedef kn_tensor *(*elem_fn)(kn_scratch *s, kn_tensor *x, kn_tensor *y, const kn_loss_attrs *at);

/* Runs an elementwise loss in the compute dtype and reduces it. */
static kn_status pair_compose(const kn_op_args *a, elem_fn fn)
{
    const kn_loss_attrs *at = attrs_of(a);
    kn_scratch s = {0};
    kn_tensor *x = in_compute(&s, a->in[0]), *y = in_compute(&s, a->in[1]);
    kn_tensor *e = x && y ? fn(&s, x, y, at) : NULL;
    kn_status st = set_output(a, a->in[0]->dtype, reduce_elem(&s, e, at->reduction, NULL));
    kn__scratch_free(&s);
    return st;
}

static kn_tensor *diff(kn_scratch *s, kn_tensor *x, kn_tensor *y)
{
    return kn__keep(s, kn_sub(x, y));
}

/* Huber loss with threshold t, scaled by `scale`: |d| < t ? 0.5 d^2 : t (|d| - t/2). */
static kn_tensor *huber_elem(kn_scratch *s, kn_tensor *x, kn_tensor *y, double t, double scale)
{
    kn_tensor *d = diff(s, x, y);
    kn_tensor *ad = d ? kn__keep(s, kn_abs(d)) : NULL;
    kn_tensor *small = ad ? kn__keep(s, kn_lt(ad, scalar_as(s, ad, t))) : NULL;
    kn_tensor *quad = d ? lin(s, kn__keep(s, kn_mul(d, d)), 0.5 * scale, 0) : NULL;
    kn_tensor *line = ad ? lin(s, ad, t * scale, -0.5 * t * t * scale) : NULL;
    return small && quad && line ? kn__keep(s, kn_where(small, quad, line)) : NULL;
}

/* ---- mse_loss: (x - y)^2 */
static kn_tensor *mse_elem(kn_scratch *s, kn_tensor *x, kn_tensor *y, const kn_loss_attrs *at)
{
    (void)at;
    kn_tensor *d = diff(s, x, y);
    return d ? kn__keep(s, kn_mul(d, d)) : NULL;
}
static kn_status mse_compose(const kn_op_args *a)
{
    return pair_compose(a, mse_elem);
}

const kn_op_def kn_op_mse_loss = {
    .name = "mse_loss",
    .n_in = 2,
    .n_out = 1,
    .attrs = loss_attr_schema,
    .n_attrs = KN_ARRAY_LEN(loss_attr_schema),
    .attrs_size = sizeof(kn_loss_attrs),
    .dtypes = KN_DTYPES_FLOAT,
    .infer = regression_infer,
    .compose = mse_compose,
    .amp = KN_AMP_FP32,
    .layout = KN_LAYOUT_AGNOSTIC,
};

kn_tensor *kn_mse_loss(kn_tensor *x, kn_tensor *y, const kn_loss_params *p)
{
    kn_tensor *in[2] = {x, y};
    return op_call(&kn_op_mse_loss, 2, in, p);
}

/* ---- l1_loss: |x - y| */
static kn_tensor *l1_elem(kn_scratch *s, kn_tensor *x, kn_tensor *y, const kn_loss_attrs *at)
{
    (void)at;
    kn_tensor *d = diff(s, x, y);
    return d ? kn__keep(s, kn_abs(d)) : NULL;
}
static kn_status l1_compose(const kn_op_args *a)
{
    return pair_compose(a, l1_elem);
}

const kn_op_def kn_op_l1_loss = {
    .name = "l1_loss",
    .n_in = 2,
    .n_out = 1,
    .attrs = loss_attr_schema,
    .n_attrs = KN_ARRAY_LEN(loss_attr_schema),
    .attrs_size = sizeof(kn_loss_attrs),
    .dtypes = KN_DTYPES_FLOAT,
    .infer = regression_infer,
    .compose = l1_compose,
    .amp = KN_AMP_FP32,
    .layout = KN_LAYOUT_AGNOSTIC,
};

kn_tensor *kn_l1_loss(kn_tensor *x, kn_tensor *y, const kn_loss_params *p)
{
    kn_tensor *in[2] = {x, y};
    return op_call(&kn_op_l1_loss, 2, in, p);
}

/* ---- smooth_l1_loss: |d| < beta ? 0.5 d^2 / beta : |d| - 0.5 beta */
static kn_status threshold_infer(const kn_op_args *a, kn_out_meta *out, double v, const char *what)
{
    if (!(v >= 0) || isinf(v))
        return kn__error(KN_ERR_ARG, "%s: %s is %g, expected a finite value > 0 (0 means 1)",
                         a->def->name, what, v);
    return pair_infer(a, out, false);
}

static kn_status smooth_l1_infer(const kn_op_args *a, kn_out_meta *out)
{
    return threshold_infer(a, out, attrs_of(a)->beta, "beta");
}

static kn_tensor *smooth_l1_elem(kn_scratch *s, kn_tensor *x, kn_tensor *y, const kn_loss_attrs *at)
{
    double beta = or_one(at->beta);
    return huber_elem(s, x, y, beta, 1.0 / beta);
}
static kn_status smooth_l1_compose(const kn_op_args *a)
{
    return pair_compose(a, smooth_l1_elem);
}

const kn_op_def kn_op_smooth_l1_loss = {
    .name = "smooth_l1_loss",
    .n_in = 2,
    .n_out = 1,
    .attrs = loss_attr_schema,
    .n_attrs = KN_ARRAY_LEN(loss_attr_schema),
    .attrs_size = sizeof(kn_loss_attrs),
    .dtypes = KN_DTYPES_FLOAT,
    .infer = smooth_l1_infer,
    .compose = smooth_l1_compose,
    .amp = KN_AMP_FP32,
    .layout = KN_LAYOUT_AGNOSTIC,
};

kn_tensor *kn_smooth_l1_loss(kn_tensor *x, kn_tensor *y, const kn_loss_params *p)
{
    kn_tensor *in[2] = {x, y};
    return op_call(&kn_op_smooth_l1_loss, 2, in, p);
}

/* ---- huber_loss: |d| < delta ? 0.5 d^2 : delta (|d| - 0.5 delta) */
static kn_status huber_infer(const kn_op_args *a, kn_out_meta *out)
{
    return threshold_infer(a, out, attrs_of(a)->delta, "delta");
}

static kn_tensor *huber_loss_elem(kn_scratch *s, kn_tensor *x, kn_tensor *y,
                                  const kn_loss_attrs *at)
{
    return huber_elem(s, x, y, or_one(at->delta), 1.0);
}
static kn_status huber_compose(const kn_op_args *a)
{
    return pair_compose(a, huber_loss_elem);
}

const kn_op_def kn_op_huber_loss = {
    .name = "huber_loss",
    .n_in = 2,
    .n_out = 1,
    .attrs = loss_attr_schema,
    .n_attrs = KN_ARRAY_LEN(loss_attr_schema),
    .attrs_size = sizeof(kn_loss_attrs),
    .dtypes = KN_DTYPES_FLOAT,
    .infer = huber_infer,
    .compose = huber_compose,
    .amp = KN_AMP_FP32,
    .layout = KN_LAYOUT_AGNOSTIC,
};

kn_tensor *kn_huber_loss(kn_tensor *x, kn_tensor *y, const kn_loss_params *p)
{
    kn_tensor *in[2] = {x, y};
    return op_call(&kn_op_huber_loss, 2, in, p);
}

/* ---- kl_div: input holds log-probabilities; target probabilities (or
 * log-probabilities with log_target). Pointwise t (log t - x), 0 where t = 0. */
static kn_status kl_div_infer(const kn_op_args *a, kn_out_meta *out)
{
    return pair_infer(a, out, true);
}

static kn_tensor *kl_elem(kn_scratch *s, kn_tensor *x, kn_tensor *t, const kn_loss_attrs *at)
{
    if (at->log_target) { /* exp(t) (t - x) */
        kn_tensor *e = kn__keep(s, kn_exp(t));
        kn_tensor *d = kn__keep(s, kn_sub(t, x));
        return e && d ? kn__keep(s, kn_mul(e, d)) : NULL;
    }
    /* xlogy(t, t) as t log(t + [t == 0]): 0 at t = 0 with a finite gradient */
    kn_tensor *zero = scalar_as(s, t, 0);
    kn_tensor *is0 = zero ? kn__keep(s, kn_eq(t, zero)) : NULL;
    kn_tensor *m = is0 ? kn__keep(s, kn_cast(is0, t->dtype)) : NULL;
    kn_tensor *safe = m ? kn__keep(s, kn_add(t, m)) : NULL;
    kn_tensor *lg = safe ? kn__keep(s, kn_log(safe)) : NULL;
    kn_tensor *d = lg ? kn__keep(s, kn_sub(lg, x)) : NULL;
    return d ? kn__keep(s, kn_mul(t, d)) : NULL;
}
static kn_status kl_div_compose(const kn_op_args *a)
{
    return pair_compose(a, kl_elem);
}

const kn_op_def kn_op_kl_div = {
    .name = "kl_div",
    .n_in = 2,
    .n_out = 1,
    .attrs = loss_attr_schema,
    .n_attrs = KN_ARRAY_LEN(loss_attr_schema),
    .attrs_size = sizeof(kn_loss_attrs),
    .dtypes = KN_DTYPES_FLOAT,
    .infer = kl_div_infer,
    .compose = kl_div_compose,
    .amp = KN_AMP_FP32,
    .layout = KN_LAYOUT_AGNOSTIC,
};

kn_tensor *kn_kl_div(kn_tensor *log_input, kn_tensor *target, const kn_loss_params *p)
{
    kn_tensor *in[2] = {log_input, target};
    return op_call(&kn_op_kl_div, 2, in, p);
}

/* ------------------------------------- bce_with_logits: x, y, weight, pos_weight */
static kn_status broadcasts_to(const kn_op_args *a, int i, const char *what)
{
    const kn_tensor *t = a->in[i], *x = a->in[0];
    if (!t) return KN_OK;
    bool ok = t->ndim <= x->ndim;
    for (int d = 0; ok && d < t->ndim; d++) {
        int64_t td = t->shape[t->ndim - 1 - d], xd = x->shape[x->ndim - 1 - d];
        ok = td == 1 || td == xd;
    }
    if (ok) return KN_OK;
    char st[96], sx[96];
    return kn__error(KN_ERR_SHAPE, "%s: %s has shape %s, which does not broadcast to input %s",
                     a->def->name, what, kn__shape_str(t->ndim, t->shape, st, sizeof st),
                     kn__shape_str(x->ndim, x->shape, sx, sizeof sx));
}

static bool same_shape(const kn_tensor *a, const kn_tensor *b)
{
    return a->ndim == b->ndim && !memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim);
}

static kn_status bce_infer(const kn_op_args *a, kn_out_meta *out)
{
    const kn_loss_attrs *at = attrs_of(a);
    const kn_tensor *x = a->in[0], *y = a->in[1];
    kn_status s;
    if ((s = check_float_in(a, 0, "logits")) || (s = check_float_in(a, 1, "target")) ||
        (s = check_float_in(a, 2, "weight")) || (s = check_float_in(a, 3, "pos_weight")) ||
        (s = check_same_dtype(a, 0, "logits", 1, "target")) ||
        (s = check_same_dtype(a, 0, "logits", 2, "weight")) ||
        (s = check_same_dtype(a, 0, "logits", 3, "pos_weight")) ||
        (s = check_reduction(a->def->name, at, false)))
        return s;
    if (!same_shape(x, y)) {
        char sy[96], sx[96];
        return kn__error(KN_ERR_SHAPE,
                         "%s: target has shape %s but logits have shape %s (they "
                         "must be equal)",
                         a->def->name, kn__shape_str(y->ndim, y->shape, sy, sizeof sy),
                         kn__shape_str(x->ndim, x->shape, sx, sizeof sx));
    }
    if ((s = broadcasts_to(a, 2, "weight")) || (s = broadcasts_to(a, 3, "pos_weight"))) return s;
    loss_out(out, x->dtype, at->reduction, x->ndim, x->shape);
    return KN_OK;
}

/* (1 - y) x + (1 + (pw - 1) y) softplus(-x), times weight; softplus(-x) is
 * log1p(exp(-|x|)) + max(-x, 0) so that no exp overflows. */
static kn_tensor *bce_elem(kn_scratch *s, kn_tensor *x, kn_tensor *y, kn_tensor *w, kn_tensor *pw)
{
    kn_tensor *ax = kn__keep(s, kn_abs(x));
    kn_tensor *e = ax ? kn__keep(s, kn_exp(lin(s, ax, -1, 0))) : NULL;
    kn_tensor *l1p = e ? kn__keep(s, kn_log1p(e)) : NULL;
    kn_tensor *relu_nx = ax ? lin(s, kn__keep(s, kn_sub(ax, x)), 0.5, 0) : NULL;
    kn_tensor *sp = l1p && relu_nx ? kn__keep(s, kn_add(l1p, relu_nx)) : NULL;
    if (sp && pw) { /* 1 + (pw - 1) y */
        kn_tensor *pm1 = lin(s, pw, 1, -1);
        kn_tensor *lw = pm1 ? lin(s, kn__keep(s, kn_mul(pm1, y)), 1, 1) : NULL;
        sp = lw ? kn__keep(s, kn_mul(lw, sp)) : NULL;
    }
    kn_tensor *omy = lin(s, y, -1, 1);
    kn_tensor *lx = omy ? kn__keep(s, kn_mul(omy, x)) : NULL;
    kn_tensor *loss = lx && sp ? kn__keep(s, kn_add(lx, sp)) : NULL;
    return loss && w ? kn__keep(s, kn_mul(loss, w)) : loss;
}

static kn_status bce_compose(const kn_op_args *a)
{
    const kn_loss_attrs *at = attrs_of(a);
    kn_scratch s = {0};
    kn_tensor *x = in_compute(&s, a->in[0]), *y = in_compute(&s, a->in[1]);
    kn_tensor *w = in_compute(&s, a->in[2]), *pw = in_compute(&s, a->in[3]);
    bool ok = x && y && (w || !a->in[2]) && (pw || !a->in[3]);
    kn_tensor *e = ok ? bce_elem(&s, x, y, w, pw) : NULL;
    kn_status st = set_output(a, a->in[0]->dtype, reduce_elem(&s, e, at->reduction, NULL));
    kn__scratch_free(&s);
    return st;
}

const kn_op_def kn_op_bce_with_logits = {
    .name = "bce_with_logits",
    .n_in = 4,
    .n_out = 1,
    .optional_in = 0xC,
    .attrs = loss_attr_schema,
    .n_attrs = KN_ARRAY_LEN(loss_attr_schema),
    .attrs_size = sizeof(kn_loss_attrs),
    .dtypes = KN_DTYPES_FLOAT,
    .infer = bce_infer,
    .compose = bce_compose,
    .amp = KN_AMP_FP32,
    .layout = KN_LAYOUT_AGNOSTIC,
};

kn_tensor *kn_bce_with_logits(kn_tensor *logits, kn_tensor *target, kn_tensor *weight,
                              kn_tensor *pos_weight, const kn_loss_params *p)
{
    kn_tensor *in[4] = {logits, target, weight, pos_weight};
    return op_call(&kn_op_bce_with_logits, 4, in, p);
}

/* --------------------- cross_entropy / nll_loss: logits, target, weight */
static bool is_index_dtype(kn_dtype dt)
{
    return dt == KN_I8 || dt == KN_U8 || dt == KN_I32 || dt == KN_I64;
}

/* Class-index target (N, d...) against input (N, C, d...), or 0-d against (C). */
static kn_status check_index_target(const kn_op_args *a)
{
    const kn_tensor *x = a->in[0], *t = a->in[1];
    const char *who = a->def->name;
    int want = x->ndim == 1 ? 0 : x->ndim - 1;
    char st[96], sx[96];
    if (t->ndim != want)
        return kn__error(KN_ERR_SHAPE,
                         "%s: target has %d dims, expected %d (input %s takes class "
                         "indices (N, d...))",
                         who, t->ndim, want, kn__shape_str(x->ndim, x->shape, sx, sizeof sx));
    if (want > 0 && t->shape[0] != x->shape[0])
        return kn__error(KN_ERR_SHAPE, "%s: target has shape %s but %s batch is %lld", who,
                         kn__shape_str(t->ndim, t->shape, st, sizeof st),
                         strcmp(who, "cross_entropy") == 0 ? "logits" : "input",
                         (long long)x->shape[0]);
    for (int d = 1; d < want; d++)
        if (t->shape[d] != x->shape[d + 1])
            return kn__error(KN_ERR_SHAPE,
                             "%s: target has shape %s but input %s needs (N, d...) "
                             "without the class dim",
                             who, kn__shape_str(t->ndim, t->shape, st, sizeof st),
                             kn__shape_str(x->ndim, x->shape, sx, sizeof sx));
    return KN_OK;
}

static const int axis1[1] = {1}; /* the class axis of the (N, C, D) view */

/* The batch shape (N, d...) of an input (N, C, d...); () for an input (C). */
static int batch_shape(const kn_tensor *x, int64_t *shape)
{
    int nb = x->ndim == 1 ? 0 : x->ndim - 1;
    for (int d = 0; d < nb; d++)
        shape[d] = x->shape[d == 0 ? 0 : d + 1];
    return nb;
}

static kn_status class_infer(const kn_op_args *a, kn_out_meta *out, bool probs_ok)
{
    const kn_loss_attrs *at = attrs_of(a);
    const kn_tensor *x = a->in[0], *t = a->in[1], *w = a->in[2];
    const char *who = a->def->name;
    kn_status s;
    if ((s = check_float_in(a, 0, "input")) || (s = check_float_in(a, 2, "weight")) ||
        (s = check_same_dtype(a, 0, "input", 2, "weight")) || (s = check_reduction(who, at, false)))
        return s;
    if (x->ndim < 1)
        return kn__error(KN_ERR_SHAPE, "%s: input is 0-d, expected (N, C, d...) or (C)", who);
    int64_t classes = x->shape[x->ndim == 1 ? 0 : 1];
    if (classes < 1) return kn__error(KN_ERR_SHAPE, "%s: input has 0 classes", who);
    if (w && (w->ndim != 1 || w->shape[0] != classes)) {
        char sw[96];
        return kn__error(KN_ERR_SHAPE, "%s: weight has shape %s, expected (%lld) (one per class)",
                         who, kn__shape_str(w->ndim, w->shape, sw, sizeof sw), (long long)classes);
    }
    if (!(at->label_smoothing >= 0 && at->label_smoothing <= 1))
        return kn__error(KN_ERR_ARG, "%s: label_smoothing is %g, expected a value in [0, 1]", who,
                         at->label_smoothing);
    if (kn_dtype_is_float(t->dtype) && probs_ok) { /* class probabilities */
        if ((s = check_same_dtype(a, 0, "logits", 1, "target"))) return s;
        if (!same_shape(x, t)) {
            char st[96], sx[96];
            return kn__error(KN_ERR_SHAPE,
                             "%s: probability target has shape %s, expected the "
                             "logits' shape %s",
                             who, kn__shape_str(t->ndim, t->shape, st, sizeof st),
                             kn__shape_str(x->ndim, x->shape, sx, sizeof sx));
        }
    } else if (!is_index_dtype(t->dtype)) {
        return kn__error(KN_ERR_DTYPE,
                         "%s: target has dtype %s, expected an integer dtype (class "
                         "indices)%s",
                         who, kn_dtype_name(t->dtype),
                         probs_ok ? " or the logits' float dtype (probabilities)" : "");
    } else if ((s = check_index_target(a))) {
        return s;
    }
    /* the loss has the target's batch shape (N, d...) */
    int64_t bshape[KN_MAX_DIMS];
    int nb = batch_shape(x, bshape);
    loss_out(out, x->dtype, at->reduction, nb, bshape);
    return KN_OK;
}

/* One-hot of the class-index target, (N, C, D) with the class on axis 1,
 * zero at ignored positions; valid (N, 1, D) is 1 where not ignored. Target
 * values are checked against [0, C). */
static kn_status index_masks(const char *who, kn_tensor *t, int64_t n, int64_t classes,
                             int64_t inner, const kn_loss_attrs *at, kn_dtype dt,
                             kn_tensor **onehot, kn_tensor **valid)
{
    int64_t numel = n * inner;
    int64_t *idx = kn_alloc((size_t)(numel ? numel : 1) * sizeof(int64_t));
    if (!idx) return kn_last_status();
    kn_status s = kn_tensor_copy_to(t, KN_I64, idx, (size_t)numel * sizeof(int64_t));
    for (int64_t i = 0; !s && i < numel; i++) {
        bool ignored = at->use_ignore_index && idx[i] == at->ignore_index;
        if (!ignored && (idx[i] < 0 || idx[i] >= classes))
            s = kn__error(KN_ERR_ARG,
                          "%s: target %lld at position %lld is out of range for %lld "
                          "classes",
                          who, (long long)idx[i], (long long)i, (long long)classes);
    }
    int64_t oshape[3] = {n, classes, inner}, vshape[3] = {n, 1, inner};
    *onehot = s ? NULL : kn_tensor_zeros(dt, 3, oshape);
    *valid = *onehot ? kn_tensor_zeros(dt, 3, vshape) : NULL;
    if (!s && !*valid) s = kn_last_status();
    char *oh = s ? NULL : kn_tensor_data(*onehot), *va = s ? NULL : kn_tensor_data(*valid);
    size_t es = kn_dtype_size(dt);
    for (int64_t i = 0; !s && i < numel; i++) {
        if (at->use_ignore_index && idx[i] == at->ignore_index) continue;
        int64_t b = i / inner, k = i % inner;
        kn__store(dt, oh + (size_t)((b * classes + idx[i]) * inner + k) * es, 1.0);
        kn__store(dt, va + (size_t)i * es, 1.0);
    }
    kn_free(idx);
    if (s) {
        kn_tensor_unref(*onehot), kn_tensor_unref(*valid);
        *onehot = *valid = NULL;
    }
    return s;
}

/* The same masks built with ops, for a symbolic target (a traced graph, or
 * the graph backward re-tracing this composition): the target's values are
 * unknown now, so one_hot checks their range when the graph runs. */
static kn_status index_masks_traced(kn_tensor *t, int64_t n, int64_t classes, int64_t inner,
                                    const kn_loss_attrs *at, kn_dtype dt, kn_tensor **onehot,
                                    kn_tensor **valid)
{
    kn_scratch s = {0};
    int64_t nd[2] = {n, inner}, vshape[3] = {n, 1, inner};
    int perm[3] = {0, 2, 1};
    kn_tensor *t64 = kn__keep(&s, kn_reshape(kn__keep(&s, kn_cast(t, KN_I64)), 2, nd));
    kn_tensor *safe = t64, *ok = NULL;
    if (t64 && at->use_ignore_index) {
        kn_tensor *ign = kn__keep(&s, kn_eq(t64, kn__keep(&s, kn_tensor_scalar(KN_I64, (double)at->ignore_index))));
        safe = kn__keep(&s, kn_where(ign, kn__keep(&s, kn_tensor_scalar(KN_I64, 0)), t64));
        ok = kn__keep(&s, kn_cast(kn__keep(&s, kn_logical_not(ign)), dt));
    } else if (t64) {
        ok = kn__keep(&s, kn_tensor_ones(dt, 2, nd));
    }
    kn_tensor *oh = safe ? kn__keep(&s, kn_one_hot(safe, classes, dt)) : NULL; /* (N, D, C) */
    *valid = ok ? kn_reshape(ok, 3, vshape) : NULL;
    *onehot = oh && *valid ? kn_mul(kn__keep(&s, kn_permute(oh, 3, perm)), *valid) : NULL;
    kn_status st = *onehot ? KN_OK : kn_last_status();
    if (st) kn_tensor_unref(*valid), *valid = NULL;
    kn__scratch_free(&s);
    return st;
}

/* The parts of a class loss in the (N, C, D) layout, all borrowed from s. */
typedef struct class_parts {
    kn_tensor *logp; /* (N, C, D) log-probabilities */
    kn_tensor *w;    /* (1, C, 1) class weights or NULL */
    int64_t classes;
} class_parts;

/* -sum_c(logp * m [* w]) over the class axis: (N, 1, D). */
static kn_tensor *neg_class_sum(kn_scratch *s, const class_parts *c, kn_tensor *m)
{
    kn_tensor *p = m ? kn__keep(s, kn_mul(c->logp, m)) : c->logp;
    if (p && c->w) p = kn__keep(s, kn_mul(p, c->w));
    kn_tensor *r = p ? kn__keep(s, kn_sum(p, 1, axis1, true)) : NULL;
    return r ? kn__keep(s, kn_neg(r)) : NULL;
}

/* Loss (reduced, or (N, 1, D) for none) with class-index targets, from the
 * one-hot and valid masks of index_masks. */
static kn_tensor *index_loss(kn_scratch *s, const kn_op_args *a, const class_parts *c,
                             kn_tensor *onehot, kn_tensor *valid)
{
    const kn_loss_attrs *at = attrs_of(a);
    double eps = at->label_smoothing;
    kn_tensor *nll = neg_class_sum(s, c, onehot);
    kn_tensor *wt = valid; /* weight of each target, 0 where ignored */
    if (c->w) {
        kn_tensor *ow = kn__keep(s, kn_mul(onehot, c->w));
        wt = ow ? kn__keep(s, kn_sum(ow, 1, axis1, true)) : NULL;
    }
    kn_tensor *denom = at->reduction == KN_REDUCTION_MEAN ? sum_all(s, wt) : NULL;
    kn_tensor *loss = reduce_elem(s, nll, at->reduction, denom);
    if (eps == 0 || !loss) return loss;
    /* label smoothing, as PyTorch: (1 - eps) nll + eps / C * smooth, where
     * smooth = -sum_c(logp [* w]) at non-ignored positions; its mean divides
     * by the same total target weight as the nll part. */
    kn_tensor *sm = neg_class_sum(s, c, NULL);
    sm = sm ? kn__keep(s, kn_mul(sm, valid)) : NULL;
    kn_tensor *sloss = reduce_elem(s, sm, at->reduction, denom);
    kn_tensor *l1 = lin(s, loss, 1 - eps, 0),
              *l2 = sloss ? lin(s, sloss, eps / (double)c->classes, 0) : NULL;
    return l1 && l2 ? kn__keep(s, kn_add(l1, l2)) : NULL;
}

/* Loss with probability targets (N, C, D): -sum_c(logp * t [* w]); the mean
 * divides by N * D, as PyTorch. */
static kn_tensor *prob_loss(kn_scratch *s, const kn_op_args *a, const class_parts *c, kn_tensor *t)
{
    const kn_loss_attrs *at = attrs_of(a);
    double eps = at->label_smoothing;
    if (eps != 0) t = lin(s, t, 1 - eps, eps / (double)c->classes);
    kn_tensor *e = t ? neg_class_sum(s, c, t) : NULL;
    return reduce_elem(s, e, at->reduction, NULL);
}

/* Shared compose: views input as (N, C, D), computes, reshapes the result. */
static kn_status class_compose(const kn_op_args *a, bool from_logits)
{
    kn_scratch s = {0};
    kn_tensor *x0 = a->in[0], *t0 = a->in[1];
    bool probs = kn_dtype_is_float(t0->dtype);
    int64_t n = x0->ndim == 1 ? 1 : x0->shape[0], classes = x0->shape[x0->ndim == 1 ? 0 : 1];
    int64_t inner = 1;
    for (int d = 2; d < x0->ndim; d++)
        inner *= x0->shape[d];
    int64_t shape3[3] = {n, classes, inner}, wshape[3] = {1, classes, 1};
    class_parts c = {.classes = classes};
    kn_tensor *onehot = NULL, *valid = NULL; /* first, so bad targets fail early */
    kn_dtype cdt = x0->dtype == KN_F64 ? KN_F64 : KN_F32;
    if (!probs && (kn_tensor_is_symbolic(t0)
                       ? index_masks_traced(t0, n, classes, inner, attrs_of(a), cdt, &onehot, &valid)
                       : index_masks(a->def->name, t0, n, classes, inner, attrs_of(a), cdt, &onehot,
                                     &valid)))
        return kn_last_status();
    kn__keep(&s, onehot), kn__keep(&s, valid);
    kn_tensor *x = kn__keep(&s, kn_reshape(in_compute(&s, x0), 3, shape3));
    c.logp = x && from_logits ? kn__keep(&s, kn_log_softmax(x, 1)) : x;
    if (a->in[2]) c.w = kn__keep(&s, kn_reshape(in_compute(&s, a->in[2]), 3, wshape));
    kn_tensor *loss = NULL;
    if (c.logp && (c.w || !a->in[2])) {
        if (probs) {
            kn_tensor *t = kn__keep(&s, kn_reshape(in_compute(&s, t0), 3, shape3));
            loss = t ? prob_loss(&s, a, &c, t) : NULL;
        } else {
            loss = index_loss(&s, a, &c, onehot, valid);
        }
    }
    if (loss && attrs_of(a)->reduction == KN_REDUCTION_NONE) { /* (N, 1, D) -> (N, d...) */
        int64_t bshape[KN_MAX_DIMS];
        int nb = batch_shape(x0, bshape);
        loss = kn__keep(&s, kn_reshape(loss, nb, bshape));
    }
    kn_status st = set_output(a, x0->dtype, loss);
    kn__scratch_free(&s);
    return st;
}

static kn_status cross_entropy_infer(const kn_op_args *a, kn_out_meta *out)
{
    return class_infer(a, out, true);
}
static kn_status cross_entropy_compose(const kn_op_args *a)
{
    return class_compose(a, true);
}

const kn_op_def kn_op_cross_entropy = {
    .name = "cross_entropy",
    .n_in = 3,
    .n_out = 1,
    .optional_in = 0x4,
    .nondiff_in = 0x4,
    .attrs = loss_attr_schema,
    .n_attrs = KN_ARRAY_LEN(loss_attr_schema),
    .attrs_size = sizeof(kn_loss_attrs),
    .dtypes = KN_DTYPES_FLOAT | KN_DTYPES_INT,
    .infer = cross_entropy_infer,
    .compose = cross_entropy_compose,
    .amp = KN_AMP_FP32,
    .layout = KN_LAYOUT_CHANNEL_AXIS,
};

kn_tensor *kn_cross_entropy(kn_tensor *logits, kn_tensor *target, kn_tensor *weight,
                            const kn_loss_params *p)
{
    kn_tensor *in[3] = {logits, target, weight};
    return op_call(&kn_op_cross_entropy, 3, in, p);
}

static kn_status nll_infer(const kn_op_args *a, kn_out_meta *out)
{
    if (attrs_of(a)->label_smoothing != 0)
        return kn__error(KN_ERR_ARG, "nll_loss: label_smoothing is only for cross_entropy");
    return class_infer(a, out, false);
}
static kn_status nll_compose(const kn_op_args *a)
{
    return class_compose(a, false);
}

const kn_op_def kn_op_nll_loss = {
    .name = "nll_loss",
    .n_in = 3,
    .n_out = 1,
    .optional_in = 0x4,
    .nondiff_in = 0x6,
    .attrs = loss_attr_schema,
    .n_attrs = KN_ARRAY_LEN(loss_attr_schema),
    .attrs_size = sizeof(kn_loss_attrs),
    .dtypes = KN_DTYPES_FLOAT | KN_DTYPES_INT,
    .infer = nll_infer,
    .compose = nll_compose,
    .amp = KN_AMP_FP32,
    .layout = KN_LAYOUT_CHANNEL_AXIS,
};

kn_tensor *kn_nll_loss(kn_tensor *log_probs, kn_tensor *target, kn_tensor *weight,
                       const kn_loss_params *p)
{
    kn_tensor *in[3] = {log_probs, target, weight};
    return op_call(&kn_op_nll_loss, 3, in, p);
}
