/* optim.c — optimizers (SGD, Adam, AdamW, RMSProp, AdaGrad, LAMB) over
 * parameter groups, global-norm clipping, the trainer and checkpoints.
 * Parameters are updated in place through their data (f32 or f64,
 * contiguous); the update rules are in optim_update.inc. Relies on the
 * tensor layer and the tensor map / safetensors files. */
#include "../tensor/tensor.h"

#include <math.h>
#include <stdlib.h>

#define N_SLOTS 3

typedef struct upd_args {
    const kn_optim_config *cfg;
    kn_optim_kind kind;
    int64_t n, step; /* elements; this update's step number (1-based) */
    void *p;
    const void *g;
    void *s[N_SLOTS];
    bool fresh[N_SLOTS]; /* slot made for this step (SGD copies d into it) */
    void *scratch;       /* n elements (LAMB's update) */
} upd_args;

#define REAL float
#define SFX(x) x##_f32
#define SQRT sqrtf
#include "optim_update.inc"
#undef REAL
#undef SFX
#undef SQRT
#define REAL double
#define SFX(x) x##_f64
#define SQRT sqrt
#include "optim_update.inc"
#undef REAL
#undef SFX
#undef SQRT

/* ---------------------------------------------------------------- config */

static const char *const kind_names[KN_OPTIM_KIND_COUNT] = {"sgd",     "adam",    "adamw",
                                                            "rmsprop", "adagrad", "lamb"};

/* The state slots of each kind, by name; a slot is used only when
 * slot_used() says so for the group's config. */
static const char *const slot_names[KN_OPTIM_KIND_COUNT][N_SLOTS] = {
    [KN_OPTIM_SGD] = {"momentum_buffer"},
    [KN_OPTIM_ADAM] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    [KN_OPTIM_ADAMW] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    [KN_OPTIM_RMSPROP] = {"square_avg", "momentum_buffer", "grad_avg"},
    [KN_OPTIM_ADAGRAD] = {"sum"},
    [KN_OPTIM_LAMB] = {"exp_avg", "exp_avg_sq"},
};

static bool slot_used(kn_optim_kind kind, const kn_optim_config *c, int s)
{
    switch (kind) {
    case KN_OPTIM_SGD:
        return s == 0 && c->momentum != 0;
    case KN_OPTIM_ADAM:
    case KN_OPTIM_ADAMW:
        return s < 2 || (s == 2 && c->amsgrad);
    case KN_OPTIM_RMSPROP:
        return s == 0 || (s == 1 && c->momentum > 0) || (s == 2 && c->centered);
    case KN_OPTIM_ADAGRAD:
        return s == 0;
    case KN_OPTIM_LAMB:
        return s < 2;
    default:
        return false;
    }
}

const char *kn_optim_kind_name(kn_optim_kind kind)
{
    return (unsigned)kind < KN_OPTIM_KIND_COUNT ? kind_names[kind] : "?";
}

kn_optim_config kn_optim_defaults(kn_optim_kind kind)
{
    kn_optim_config c = {.lr = 1e-3,
                         .beta1 = 0.9,
                         .beta2 = 0.999,
                         .eps = 1e-8,
                         .alpha = 0.99,
                         .bias_correction = true};
    switch (kind) {
    case KN_OPTIM_SGD:
        c.lr = 0.01;
        break;
    case KN_OPTIM_ADAMW:
        c.weight_decay = 1e-2;
        break;
    case KN_OPTIM_RMSPROP:
        c.lr = 0.01;
        break;
    case KN_OPTIM_ADAGRAD:
        c.lr = 0.01, c.eps = 1e-10;
        break;
    case KN_OPTIM_LAMB:
        c.eps = 1e-6, c.weight_decay = 0.01;
        break;
    default:
        break;
    }
    return c;
}

/* x >= lo, written so that NaN fails. */
static kn_status need_ge(const char *who, const char *name, double x, double lo)
{
    if (x >= lo && x < INFINITY) return KN_OK;
    return kn__error(KN_ERR_ARG, "%s: %s is %g, expected >= %g", who, name, x, lo);
}

static kn_status check_config(const char *who, kn_optim_kind kind, const kn_optim_config *c)
{
    kn_status s;
    if ((s = need_ge(who, "lr", c->lr, 0)) ||
        (s = need_ge(who, "weight_decay", c->weight_decay, 0)))
        return s;
    switch (kind) {
    case KN_OPTIM_SGD:
        if ((s = need_ge(who, "momentum", c->momentum, 0)) ||
            (s = need_ge(who, "dampening", c->dampening, 0)))
            return s;
        if (c->nesterov && (c->momentum <= 0 || c->dampening != 0))
            return kn__error(KN_ERR_ARG,
                             "%s: nesterov needs momentum > 0 and dampening 0 "
                             "(momentum is %g, dampening %g)",
                             who, c->momentum, c->dampening);
        return KN_OK;
    case KN_OPTIM_RMSPROP:
        if ((s = need_ge(who, "momentum", c->momentum, 0)) ||
            (s = need_ge(who, "alpha", c->alpha, 0)))
            return s;
        return need_ge(who, "eps", c->eps, 0);
    case KN_OPTIM_ADAGRAD:
        if ((s = need_ge(who, "lr_decay", c->lr_decay, 0)) ||
            (s = need_ge(who, "initial_accumulator_value", c->initial_accumulator_value, 0)))
            return s;
        return need_ge(who, "eps", c->eps, 0);
    default: /* the Adam family */
        if ((s = need_ge(who, "eps", c->eps, 0)) ||
            (s = need_ge(who, "max_trust", c->max_trust, 0)))
            return s;
        if (!(c->beta1 >= 0 && c->beta1 < 1))
            return kn__error(KN_ERR_ARG, "%s: beta1 is %g, expected in [0, 1)", who, c->beta1);
        if (!(c->beta2 >= 0 && c->beta2 < 1))
            return kn__error(KN_ERR_ARG, "%s: beta2 is %g, expected in [0, 1)", who, c->beta2);
        return KN_OK;
    }
}

/* ------------------------------------------------------------- optimizer */

typedef struct pstate {
    kn_tensor *param;
    kn_tensor *slot[N_SLOTS]; /* NULL until the first step that needs it */
    int64_t step;
} pstate;

typedef struct group {
    kn_optim_config cfg;
    double initial_lr;
    int n;
    pstate *ps;
} group;

struct kn_optimizer {
    kn_optim_kind kind;
    kn_optim_config defaults;
    int n_groups;
    group *groups;
    int64_t num_steps;
};

kn_optimizer *kn_optimizer_new(kn_optim_kind kind, const kn_optim_config *cfg)
{
    if ((unsigned)kind >= KN_OPTIM_KIND_COUNT)
        return kn__error_null(KN_ERR_ARG, "optimizer_new: kind is %d, expected a kn_optim_kind",
                              (int)kind);
    kn_optim_config c = cfg ? *cfg : kn_optim_defaults(kind);
    if (check_config("optimizer_new", kind, &c)) return NULL;
    kn_optimizer *opt = kn_alloc(sizeof *opt);
    if (!opt) return NULL;
    *opt = (kn_optimizer){.kind = kind, .defaults = c};
    return opt;
}

void kn_optimizer_free(kn_optimizer *opt)
{
    if (!opt) return;
    for (int g = 0; g < opt->n_groups; g++) {
        for (int i = 0; i < opt->groups[g].n; i++) {
            pstate *ps = &opt->groups[g].ps[i];
            kn_tensor_unref(ps->param);
            for (int s = 0; s < N_SLOTS; s++)
                kn_tensor_unref(ps->slot[s]);
        }
        kn_free(opt->groups[g].ps);
    }
    kn_free(opt->groups);
    kn_free(opt);
}

static bool has_param(const kn_optimizer *opt, const kn_tensor *t)
{
    for (int g = 0; g < opt->n_groups; g++)
        for (int i = 0; i < opt->groups[g].n; i++)
            if (opt->groups[g].ps[i].param == t) return true;
    return false;
}

static kn_status check_param(const kn_optimizer *opt, int n, kn_tensor *const *params, int i)
{
    const char *who = "optimizer_add_group";
    const kn_tensor *t = params[i];
    if (!t) return kn__error(KN_ERR_ARG, "%s: params[%d] is NULL", who, i);
    if (t->dtype != KN_F32 && t->dtype != KN_F64)
        return kn__error(KN_ERR_DTYPE, "%s: params[%d] is %s, expected f32 or f64", who, i,
                         kn_dtype_name(t->dtype));
    if (!t->storage)
        return kn__error(KN_ERR_ARG, "%s: params[%d] is symbolic, expected data", who, i);
    if (!kn_tensor_is_contiguous(t))
        return kn__error(KN_ERR_ARG, "%s: params[%d] is not contiguous", who, i);
    if (t->grad_fn)
        return kn__error(KN_ERR_ARG, "%s: params[%d] is not a leaf (it has a grad_fn)", who, i);
    bool dup = has_param(opt, t);
    for (int j = 0; j < i && !dup; j++)
        dup = params[j] == t;
    if (dup) return kn__error(KN_ERR_ARG, "%s: params[%d] is already in a parameter group", who, i);
    (void)n;
    return KN_OK;
}

kn_status kn_optimizer_add_group(kn_optimizer *opt, int n, kn_tensor *const *params,
                                 const kn_optim_config *cfg)
{
    const char *who = "optimizer_add_group";
    if (!opt) return kn__error(KN_ERR_ARG, "%s: optimizer is NULL", who);
    if (n < 0 || (n > 0 && !params))
        return kn__error(KN_ERR_ARG, "%s: n is %d with params %p, expected n >= 0 and params", who,
                         n, (const void *)params);
    kn_optim_config c = cfg ? *cfg : opt->defaults;
    kn_status s = check_config(who, opt->kind, &c);
    for (int i = 0; !s && i < n; i++)
        s = check_param(opt, n, params, i);
    if (s) return s;
    group *groups = kn_alloc(sizeof(group) * (size_t)(opt->n_groups + 1));
    pstate *ps = n ? kn_alloc(sizeof(pstate) * (size_t)n) : NULL;
    if (!groups || (n && !ps)) {
        kn_free(groups), kn_free(ps);
        return kn_last_status();
    }
    if (opt->n_groups) memcpy(groups, opt->groups, sizeof(group) * (size_t)opt->n_groups);
    for (int i = 0; i < n; i++)
        ps[i] = (pstate){.param = kn_tensor_ref(params[i])};
    groups[opt->n_groups] = (group){.cfg = c, .initial_lr = c.lr, .n = n, .ps = ps};
    kn_free(opt->groups);
    opt->groups = groups;
    opt->n_groups++;
    return KN_OK;
}

int kn_optimizer_num_groups(const kn_optimizer *opt)
{
    return opt ? opt->n_groups : 0;
}

int kn_optimizer_group_size(const kn_optimizer *opt, int g)
{
    return opt && g >= 0 && g < opt->n_groups ? opt->groups[g].n : 0;
}

kn_tensor *kn_optimizer_param(const kn_optimizer *opt, int g, int i)
{
    if (!opt || g < 0 || g >= opt->n_groups || i < 0 || i >= opt->groups[g].n) return NULL;
    return opt->groups[g].ps[i].param;
}

int64_t kn_optimizer_num_steps(const kn_optimizer *opt)
{
    return opt ? opt->num_steps : 0;
}

kn_status kn_optimizer_set_lr(kn_optimizer *opt, int g, double lr)
{
    if (!opt) return kn__error(KN_ERR_ARG, "optimizer_set_lr: optimizer is NULL");
    if (g < -1 || g >= opt->n_groups)
        return kn__error(KN_ERR_ARG, "optimizer_set_lr: group is %d, expected -1..%d", g,
                         opt->n_groups - 1);
    kn_status s = need_ge("optimizer_set_lr", "lr", lr, 0);
    if (s) return s;
    for (int i = 0; i < opt->n_groups; i++)
        if (g == -1 || g == i) opt->groups[i].cfg.lr = lr;
    return KN_OK;
}

double kn_optimizer_lr(const kn_optimizer *opt, int g)
{
    return opt && g >= 0 && g < opt->n_groups ? opt->groups[g].cfg.lr : NAN;
}

double kn_optimizer_initial_lr(const kn_optimizer *opt, int g)
{
    return opt && g >= 0 && g < opt->n_groups ? opt->groups[g].initial_lr : NAN;
}

void kn_optimizer_zero_grad(kn_optimizer *opt)
{
    for (int g = 0; opt && g < opt->n_groups; g++)
        for (int i = 0; i < opt->groups[g].n; i++)
            kn_tensor_zero_grad(opt->groups[g].ps[i].param);
}

/* A gradient usable in place of its parameter's data: same shape. */
static kn_status check_grad(const char *who, const kn_tensor *p, const kn_tensor *g, int gi, int i)
{
    if (g->ndim != p->ndim || memcmp(g->shape, p->shape, sizeof(int64_t) * (size_t)p->ndim)) {
        char a[64], b[64];
        return kn__error(KN_ERR_SHAPE,
                         "%s: the grad of param %d of group %d has shape %s, "
                         "expected %s",
                         who, i, gi, kn__shape_str(g->ndim, g->shape, a, sizeof a),
                         kn__shape_str(p->ndim, p->shape, b, sizeof b));
    }
    if (!g->storage) return kn__error(KN_ERR_ARG, "%s: a grad is symbolic", who);
    return KN_OK;
}

static bool grad_direct(const kn_tensor *p, const kn_tensor *g)
{
    return g->dtype == p->dtype && kn_tensor_is_contiguous(g);
}

/* Pass 1 of a step: checks every grad and makes every missing state slot and
 * the scratch buffer, so pass 2 cannot fail halfway. */
static kn_status prepare(kn_optimizer *opt, bool fresh[][N_SLOTS], kn_tensor **conv,
                         size_t *scratch_bytes)
{
    const char *who = "optimizer_step";
    int k = 0;
    *scratch_bytes = 0;
    for (int gi = 0; gi < opt->n_groups; gi++) {
        group *gr = &opt->groups[gi];
        for (int i = 0; i < gr->n; i++, k++) {
            pstate *ps = &gr->ps[i];
            const kn_tensor *g = ps->param->grad;
            memset(fresh[k], 0, sizeof fresh[k]);
            if (!g) continue;
            kn_status s = check_grad(who, ps->param, g, gi, i);
            if (s) return s;
            size_t bytes = (size_t)kn_tensor_numel(ps->param) * kn_dtype_size(ps->param->dtype);
            if (bytes > *scratch_bytes) *scratch_bytes = bytes; /* LAMB's update */
            if (!grad_direct(ps->param, g)) { /* converted to the param's dtype, contiguous */
                conv[k] = kn_tensor_empty(ps->param->dtype, ps->param->ndim, ps->param->shape);
                if (!conv[k]) return kn_last_status();
                if ((s = kn_tensor_copy_(conv[k], g))) return s;
            }
            for (int sl = 0; sl < N_SLOTS; sl++) {
                if (!slot_used(opt->kind, &gr->cfg, sl) || ps->slot[sl]) continue;
                double init = opt->kind == KN_OPTIM_ADAGRAD ? gr->cfg.initial_accumulator_value : 0;
                ps->slot[sl] =
                    kn_tensor_full(ps->param->dtype, ps->param->ndim, ps->param->shape, init);
                if (!ps->slot[sl]) return kn_last_status();
                fresh[k][sl] = true;
            }
        }
    }
    return KN_OK;
}

static int count_params(const kn_optimizer *opt)
{
    int n = 0;
    for (int g = 0; g < opt->n_groups; g++)
        n += opt->groups[g].n;
    return n;
}

/* Drops slots made by a failed pass 1, so the state is as before. */
static void undo_fresh(kn_optimizer *opt, bool fresh[][N_SLOTS])
{
    int k = 0;
    for (int gi = 0; gi < opt->n_groups; gi++)
        for (int i = 0; i < opt->groups[gi].n; i++, k++)
            for (int sl = 0; sl < N_SLOTS; sl++)
                if (fresh[k][sl]) {
                    kn_tensor_unref(opt->groups[gi].ps[i].slot[sl]);
                    opt->groups[gi].ps[i].slot[sl] = NULL;
                }
}

kn_status kn_optimizer_step(kn_optimizer *opt)
{
    if (!opt) return kn__error(KN_ERR_ARG, "optimizer_step: optimizer is NULL");
    size_t n = (size_t)count_params(opt) + 1;
    bool(*fresh)[N_SLOTS] = kn_alloc(sizeof(bool[N_SLOTS]) * n);
    kn_tensor **conv = kn_alloc(sizeof(kn_tensor *) * n);
    size_t scratch_bytes = 0;
    char *scratch = NULL;
    if (fresh) memset(fresh, 0, sizeof(bool[N_SLOTS]) * n);
    if (conv) memset(conv, 0, sizeof(kn_tensor *) * n);
    kn_status s = fresh && conv ? KN_OK : kn_last_status();
    if (!s) s = prepare(opt, fresh, conv, &scratch_bytes);
    if (!s && scratch_bytes && !(scratch = kn_alloc(scratch_bytes))) s = kn_last_status();
    if (s && fresh) undo_fresh(opt, fresh);
    int k = 0;
    for (int gi = 0; !s && gi < opt->n_groups; gi++) {
        group *gr = &opt->groups[gi];
        for (int i = 0; i < gr->n; i++, k++) {
            pstate *ps = &gr->ps[i];
            kn_tensor *p = ps->param, *g = conv[k] ? conv[k] : p->grad;
            if (!g) continue;
            upd_args a = {.cfg = &gr->cfg,
                          .kind = opt->kind,
                          .n = kn_tensor_numel(p),
                          .step = ++ps->step,
                          .p = kn__tensor_ptr(p),
                          .g = kn__tensor_ptr(g),
                          .scratch = scratch};
            for (int sl = 0; sl < N_SLOTS; sl++) {
                a.s[sl] = ps->slot[sl] ? kn__tensor_ptr(ps->slot[sl]) : NULL;
                a.fresh[sl] = fresh[k][sl];
            }
            if (p->dtype == KN_F32)
                update_f32(&a);
            else
                update_f64(&a);
            kn__bump_version(p);
        }
    }
    if (!s) opt->num_steps++;
    for (size_t i = 0; conv && i < n; i++)
        kn_tensor_unref(conv[i]);
    kn_free(conv), kn_free(scratch), kn_free(fresh);
    return s;
}

/* ---------------------------------------------------------------- clipping */

kn_status kn_clip_grad_norm(int n, kn_tensor *const *params, double max_norm, double *total_norm)
{
    const char *who = "clip_grad_norm";
    if (n < 0 || (n > 0 && !params))
        return kn__error(KN_ERR_ARG, "%s: n is %d with params %p, expected n >= 0 and params", who,
                         n, (const void *)params);
    kn_status s = need_ge(who, "max_norm", max_norm, 0);
    if (s) return s;
    for (int i = 0; i < n; i++) {
        if (!params[i]) return kn__error(KN_ERR_ARG, "%s: params[%d] is NULL", who, i);
        const kn_tensor *g = params[i]->grad;
        if (g && ((g->dtype != KN_F32 && g->dtype != KN_F64) || !g->storage ||
                  !kn_tensor_is_contiguous(g)))
            return kn__error(KN_ERR_UNSUPPORTED,
                             "%s: the grad of params[%d] is %s%s, expected "
                             "contiguous f32 or f64",
                             who, i, kn_dtype_name(g->dtype),
                             kn_tensor_is_contiguous(g) ? "" : " and not contiguous");
    }
    /* a grad may be shared (e.g. a seed): scale private copies, made first
     * so that a failure changes nothing */
    for (int i = 0; i < n; i++) {
        kn_tensor *g = params[i]->grad;
        if (!g || (atomic_load(&g->refcount) == 1 && atomic_load(&g->storage->refcount) == 1))
            continue;
        kn_tensor *c = kn_tensor_clone(g);
        if (!c) return kn_last_status();
        kn_tensor_unref(g);
        params[i]->grad = c;
    }
    /* torch: the norm of the per-tensor norms, in the grads' dtype */
    double total = 0;
    bool f32 = false;
    for (int i = 0; i < n; i++) {
        kn_tensor *g = params[i]->grad;
        if (!g) continue;
        int64_t m = kn_tensor_numel(g);
        f32 |= g->dtype == KN_F32;
        double ss = g->dtype == KN_F32 ? sumsq_f32((const float *)(void *)kn__tensor_ptr(g), m)
                                       : sumsq_f64((const double *)(void *)kn__tensor_ptr(g), m);
        double norm = g->dtype == KN_F32 ? (double)(float)sqrt(ss) : sqrt(ss);
        total += norm * norm;
    }
    total = sqrt(total);
    double coef = max_norm / (total + 1e-6);
    if (f32) {
        total = (float)total;
        coef = (float)max_norm / ((float)total + 1e-6f);
    }
    if (total_norm) *total_norm = total;
    if (coef > 1) coef = 1;
    for (int i = 0; i < n; i++) {
        kn_tensor *g = params[i]->grad;
        if (!g) continue;
        if (g->dtype == KN_F32)
            scale_f32((float *)(void *)kn__tensor_ptr(g), kn_tensor_numel(g), coef);
        else
            scale_f64((double *)(void *)kn__tensor_ptr(g), kn_tensor_numel(g), coef);
        kn__bump_version(g);
    }
    return KN_OK;
}

/* ------------------------------------------------------------------ state */

static kn_status state_name(char *buf, size_t n, const char *who, const char *prefix, int g, int i,
                            const char *what)
{
    int len = i >= 0   ? snprintf(buf, n, "%s%d.%d.%s", prefix, g, i, what)
              : g >= 0 ? snprintf(buf, n, "%s%d.%s", prefix, g, what)
                       : snprintf(buf, n, "%s%s", prefix, what);
    if (len < 0 || (size_t)len >= n)
        return kn__error(KN_ERR_ARG, "%s: prefix '%.40s...' is too long", who, prefix);
    return KN_OK;
}

static kn_status put_scalar(kn_tensor_map *m, const char *name, kn_dtype dt, double v)
{
    kn_tensor *t = kn_tensor_scalar(dt, v);
    kn_status s = t ? kn_tensor_map_set(m, name, t) : kn_last_status();
    kn_tensor_unref(t);
    return s;
}

kn_status kn_optimizer_state_save(const kn_optimizer *opt, kn_tensor_map *m, const char *prefix)
{
    const char *who = "optimizer_state_save";
    if (!opt || !m) return kn__error(KN_ERR_ARG, "%s: optimizer or map is NULL", who);
    if (!prefix) prefix = "";
    char name[512];
    kn_status s = state_name(name, sizeof name, who, prefix, -1, -1, "steps");
    if (!s) s = put_scalar(m, name, KN_I64, (double)opt->num_steps);
    for (int g = 0; !s && g < opt->n_groups; g++) {
        const group *gr = &opt->groups[g];
        if (!(s = state_name(name, sizeof name, who, prefix, g, -1, "lr")))
            s = put_scalar(m, name, KN_F64, gr->cfg.lr);
        if (!s && !(s = state_name(name, sizeof name, who, prefix, g, -1, "initial_lr")))
            s = put_scalar(m, name, KN_F64, gr->initial_lr);
        for (int i = 0; !s && i < gr->n; i++) {
            const pstate *ps = &gr->ps[i];
            if (!(s = state_name(name, sizeof name, who, prefix, g, i, "step")))
                s = put_scalar(m, name, KN_I64, (double)ps->step);
            for (int sl = 0; !s && sl < N_SLOTS; sl++)
                if (ps->slot[sl] && !(s = state_name(name, sizeof name, who, prefix, g, i,
                                                     slot_names[opt->kind][sl])))
                    s = kn_tensor_map_set(m, name, ps->slot[sl]);
        }
    }
    return s;
}

/* A required scalar entry, read as double. */
static kn_status get_scalar(const char *who, const kn_tensor_map *m, const char *name, double *v,
                            int *found)
{
    kn_tensor *t = kn_tensor_map_get(m, name);
    if (!t) return kn__error(KN_ERR_ARG, "%s: '%s' is missing", who, name);
    if (kn_tensor_numel(t) != 1 || !t->storage)
        return kn__error(KN_ERR_SHAPE, "%s: '%s' has %lld elements, expected 1", who, name,
                         (long long)kn_tensor_numel(t));
    (*found)++;
    return kn_tensor_item(t, v);
}

static int count_prefixed(const kn_tensor_map *m, const char *prefix)
{
    int n = 0;
    size_t len = strlen(prefix);
    for (int i = 0; i < kn_tensor_map_size(m); i++)
        n += strncmp(kn_tensor_map_name(m, i), prefix, len) == 0;
    return n;
}

/* Pass 1 of a load: reads and checks every entry, clones the slots into
 * slots[k * N_SLOTS + s] and the scalars into steps[k], lrs[2 g + 0/1]. */
static kn_status load_check(const kn_optimizer *opt, const kn_tensor_map *m, const char *prefix,
                            kn_tensor **slots, int64_t *steps, double *lrs, double *num_steps)
{
    const char *who = "optimizer_state_load";
    char name[512];
    int found = 0, k = 0;
    kn_status s = state_name(name, sizeof name, who, prefix, -1, -1, "steps");
    if (!s) s = get_scalar(who, m, name, num_steps, &found);
    for (int g = 0; !s && g < opt->n_groups; g++) {
        const group *gr = &opt->groups[g];
        if (!(s = state_name(name, sizeof name, who, prefix, g, -1, "lr")))
            s = get_scalar(who, m, name, &lrs[2 * g], &found);
        if (!s && !(s = state_name(name, sizeof name, who, prefix, g, -1, "initial_lr")))
            s = get_scalar(who, m, name, &lrs[2 * g + 1], &found);
        if (!s && !(lrs[2 * g] >= 0 && lrs[2 * g + 1] >= 0))
            s = kn__error(KN_ERR_ARG, "%s: group %d has lr %g, expected >= 0", who, g, lrs[2 * g]);
        for (int i = 0; !s && i < gr->n; i++, k++) {
            const kn_tensor *p = gr->ps[i].param;
            double step = 0;
            if (!(s = state_name(name, sizeof name, who, prefix, g, i, "step")))
                s = get_scalar(who, m, name, &step, &found);
            if (!s && !(step >= 0 && step < 9e15))
                s = kn__error(KN_ERR_ARG, "%s: '%s' is %g, expected >= 0", who, name, step);
            steps[k] = (int64_t)step;
            for (int sl = 0; !s && sl < N_SLOTS; sl++) {
                const char *sn = slot_names[opt->kind][sl];
                if (!sn || (s = state_name(name, sizeof name, who, prefix, g, i, sn))) continue;
                kn_tensor *t = kn_tensor_map_get(m, name);
                if (!t) continue;
                found++;
                if (!slot_used(opt->kind, &gr->cfg, sl))
                    s = kn__error(KN_ERR_ARG, "%s: '%s' is not a state of this %s group", who, name,
                                  kind_names[opt->kind]);
                else if (t->dtype != p->dtype || t->ndim != p->ndim || !t->storage ||
                         memcmp(t->shape, p->shape, sizeof(int64_t) * (size_t)p->ndim))
                    s = kn__error(KN_ERR_SHAPE, "%s: '%s' is %s %s, expected %s like its param",
                                  who, name, kn_dtype_name(t->dtype),
                                  kn__shape_str(t->ndim, t->shape, (char[64]){0}, 64),
                                  kn__shape_str(p->ndim, p->shape, (char[64]){0}, 64));
                else if (!(slots[k * N_SLOTS + sl] = kn_tensor_clone(t)))
                    s = kn_last_status();
            }
        }
    }
    int extra = count_prefixed(m, prefix) - found;
    if (!s && extra > 0)
        s = kn__error(KN_ERR_ARG,
                      "%s: %d entries with prefix '%s' match no state of this "
                      "optimizer (other groups or parameters?)",
                      who, extra, prefix);
    return s;
}

kn_status kn_optimizer_state_load(kn_optimizer *opt, const kn_tensor_map *m, const char *prefix)
{
    const char *who = "optimizer_state_load";
    if (!opt || !m) return kn__error(KN_ERR_ARG, "%s: optimizer or map is NULL", who);
    if (!prefix) prefix = "";
    int n = count_params(opt);
    size_t nn = (size_t)(n ? n : 1), ng = (size_t)(opt->n_groups ? opt->n_groups : 1);
    kn_tensor **slots = kn_alloc(sizeof(kn_tensor *) * nn * N_SLOTS);
    int64_t *steps = kn_alloc(sizeof(int64_t) * nn);
    double *lrs = kn_alloc(sizeof(double) * 2 * ng), num_steps = 0;
    if (slots) memset(slots, 0, sizeof(kn_tensor *) * nn * N_SLOTS);
    kn_status s = slots && steps && lrs ? KN_OK : kn_last_status();
    if (!s) s = load_check(opt, m, prefix, slots, steps, lrs, &num_steps);
    if (!s && !(num_steps >= 0 && num_steps < 9e15))
        s = kn__error(KN_ERR_ARG, "%s: steps is %g, expected >= 0", who, num_steps);
    int k = 0;
    for (int g = 0; g < opt->n_groups; g++) {
        group *gr = &opt->groups[g];
        if (!s) gr->cfg.lr = lrs[2 * g], gr->initial_lr = lrs[2 * g + 1];
        for (int i = 0; i < gr->n; i++, k++) {
            pstate *ps = &gr->ps[i];
            if (!s) ps->step = steps[k];
            for (int sl = 0; sl < N_SLOTS; sl++) {
                kn_tensor **from = slots ? &slots[k * N_SLOTS + sl] : NULL;
                if (!s) {
                    kn_tensor_unref(ps->slot[sl]);
                    ps->slot[sl] = *from;
                } else if (from) {
                    kn_tensor_unref(*from);
                }
            }
        }
    }
    if (!s) opt->num_steps = (int64_t)num_steps;
    kn_free(slots), kn_free(steps), kn_free(lrs);
    return s;
}

/* ---------------------------------------------------------------- trainer */

struct kn_trainer {
    kn_optimizer *opt;
    bool has_schedule;
    kn_lr_schedule schedule;
    double clip_norm, last_norm;
};

kn_trainer *kn_trainer_new(kn_optimizer *opt, const kn_lr_schedule *schedule, double clip_norm)
{
    if (!opt) return kn__error_null(KN_ERR_ARG, "trainer_new: optimizer is NULL");
    if (!(clip_norm >= 0 || clip_norm < 0) || clip_norm == INFINITY)
        return kn__error_null(KN_ERR_ARG, "trainer_new: clip_norm is %g, expected finite",
                              clip_norm);
    double lr;
    if (schedule && kn_lr_schedule_at(schedule, 1, 0, &lr)) {
        return kn__error_null(kn_last_status(), "trainer_new: %s", kn_last_error());
    }
    kn_trainer *t = kn_alloc(sizeof *t);
    if (!t) return NULL;
    *t = (kn_trainer){
        .opt = opt, .has_schedule = schedule != NULL, .clip_norm = clip_norm, .last_norm = NAN};
    if (schedule) t->schedule = *schedule;
    return t;
}

void kn_trainer_free(kn_trainer *t)
{
    kn_free(t);
}

double kn_trainer_last_grad_norm(const kn_trainer *t)
{
    return t ? t->last_norm : NAN;
}

static kn_status trainer_clip(kn_trainer *t)
{
    int n = count_params(t->opt), k = 0;
    kn_tensor **params = kn_alloc(sizeof(kn_tensor *) * (size_t)(n ? n : 1));
    if (!params) return kn_last_status();
    for (int g = 0; g < t->opt->n_groups; g++)
        for (int i = 0; i < t->opt->groups[g].n; i++)
            params[k++] = t->opt->groups[g].ps[i].param;
    kn_status s = kn_clip_grad_norm(n, params, t->clip_norm, &t->last_norm);
    kn_free(params);
    return s;
}

kn_status kn_trainer_step(kn_trainer *t)
{
    if (!t) return kn__error(KN_ERR_ARG, "trainer_step: trainer is NULL");
    kn_optimizer *opt = t->opt;
    double *old = kn_alloc(sizeof(double) * (size_t)(opt->n_groups ? opt->n_groups : 1));
    if (!old) return kn_last_status();
    kn_status s = KN_OK;
    for (int g = 0; g < opt->n_groups; g++) {
        old[g] = opt->groups[g].cfg.lr;
        double lr = old[g];
        if (t->has_schedule && !s)
            s = kn_lr_schedule_at(&t->schedule, opt->groups[g].initial_lr, opt->num_steps, &lr);
        if (!s) s = kn_optimizer_set_lr(opt, g, lr);
    }
    if (!s && t->clip_norm > 0) s = trainer_clip(t);
    if (!s) s = kn_optimizer_step(opt);
    if (s) { /* leave the lrs as they were */
        for (int g = 0; g < opt->n_groups; g++)
            opt->groups[g].cfg.lr = old[g];
    } else {
        kn_optimizer_zero_grad(opt);
    }
    kn_free(old);
    return s;
}

/* ------------------------------------------------------------ checkpoints */

#define OPT_PREFIX "optimizer."

kn_status kn_checkpoint_save(const char *path, const kn_tensor_map *params, const kn_optimizer *opt)
{
    const char *who = "checkpoint_save";
    if (!path || !params) return kn__error(KN_ERR_ARG, "%s: path or params is NULL", who);
    if (opt && count_prefixed(params, OPT_PREFIX))
        return kn__error(KN_ERR_ARG,
                         "%s: a parameter name starts with '" OPT_PREFIX
                         "', which holds the optimizer state",
                         who);
    kn_tensor_map *m = kn_tensor_map_new();
    if (!m) return kn_last_status();
    kn_status s = KN_OK;
    for (int i = 0; !s && i < kn_tensor_map_size(params); i++)
        s = kn_tensor_map_set(m, kn_tensor_map_name(params, i), kn_tensor_map_at(params, i));
    if (!s && opt) s = kn_optimizer_state_save(opt, m, OPT_PREFIX);
    if (!s) s = kn_safetensors_save(path, m);
    kn_tensor_map_free(m);
    return s;
}

kn_status kn_checkpoint_load(const char *path, const kn_tensor_map *params, kn_optimizer *opt)
{
    const char *who = "checkpoint_load";
    if (!path || !params) return kn__error(KN_ERR_ARG, "%s: path or params is NULL", who);
    kn_tensor_map *m = kn_safetensors_load(path);
    if (!m) return kn_last_status();
    kn_status s = KN_OK;
    for (int i = 0; !s && i < kn_tensor_map_size(params); i++) {
        const char *name = kn_tensor_map_name(params, i);
        const kn_tensor *p = kn_tensor_map_at(params, i), *t = kn_tensor_map_get(m, name);
        if (!t)
            s = kn__error(KN_ERR_ARG, "%s: '%s' is not in %s", who, name, path);
        else if (t->dtype != p->dtype || t->ndim != p->ndim ||
                 memcmp(t->shape, p->shape, sizeof(int64_t) * (size_t)p->ndim))
            s = kn__error(
                KN_ERR_SHAPE, "%s: '%s' is %s %s in the file, expected %s %s", who, name,
                kn_dtype_name(t->dtype), kn__shape_str(t->ndim, t->shape, (char[64]){0}, 64),
                kn_dtype_name(p->dtype), kn__shape_str(p->ndim, p->shape, (char[64]){0}, 64));
    }
    if (!s && opt) s = kn_optimizer_state_load(opt, m, OPT_PREFIX);
    for (int i = 0; !s && i < kn_tensor_map_size(params); i++) {
        const char *name = kn_tensor_map_name(params, i);
        s = kn_tensor_copy_(kn_tensor_map_at(params, i), kn_tensor_map_get(m, name));
    }
    kn_tensor_map_free(m);
    return s;
}
