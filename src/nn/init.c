/* init.c — parameter initializers as torch.nn.init defines them (gains,
 * fans, bounds), drawn from kiln's global Philox stream, and the per-layer
 * defaults that kn_block_init_params(KN_INIT_DEFAULT) and the layers use.
 * Relies on tensor creation/copy and the block listing functions. */
#include "nn_internal.h"

#include "../tensor/tensor.h"

#include <math.h>
#include <stdlib.h>

/* ---------------------------------------------------------------- gains, fans */
static const char *kind_name(kn_init_kind k)
{
    static const char *const names[] = {"default",        "zeros",         "ones",
                                        "constant",       "uniform",       "normal",
                                        "xavier_uniform", "xavier_normal", "kaiming_uniform",
                                        "kaiming_normal", "orthogonal"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

const char *kn__nn_shape(const kn_tensor *t, char *buf, size_t n)
{
    size_t len = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < t->ndim && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (len < n) snprintf(buf + len, n - len, ")");
    return buf;
}

kn_status kn__nn_fans(const char *who, const kn_tensor *t, int64_t *fan_in, int64_t *fan_out)
{
    if (t->ndim < 2) {
        char s[128];
        kn__nn_shape(t, s, sizeof s);
        return kn__error(KN_ERR_SHAPE,
                         "%s: fans need a tensor of at least 2 dims (out, in, k...), got %s", who,
                         s);
    }
    int64_t receptive = 1;
    for (int d = 2; d < t->ndim; d++)
        receptive *= t->shape[d];
    *fan_in = t->shape[1] * receptive;
    *fan_out = t->shape[0] * receptive;
    return KN_OK;
}

/* torch.nn.init.calculate_gain for the nonlinearities kaiming accepts. */
static kn_status gain_of(const char *what, const char *nl, double a, double *gain)
{
    if (!nl) nl = "leaky_relu"; /* PyTorch's default: with a = 0 it is relu's gain */
    if (!strcmp(nl, "linear") || !strcmp(nl, "sigmoid") || !strncmp(nl, "conv", 4))
        *gain = 1.0;
    else if (!strcmp(nl, "tanh"))
        *gain = 5.0 / 3.0;
    else if (!strcmp(nl, "relu"))
        *gain = sqrt(2.0);
    else if (!strcmp(nl, "leaky_relu"))
        *gain = sqrt(2.0 / (1.0 + a * a));
    else if (!strcmp(nl, "selu"))
        *gain = 0.75;
    else
        return kn__error(KN_ERR_ARG,
                         "init_tensor: %s: unknown nonlinearity '%s' (expected relu, leaky_relu, "
                         "linear, sigmoid, tanh, selu or conv*)",
                         what, nl);
    if (!isfinite(*gain))
        return kn__error(KN_ERR_ARG, "init_tensor: %s: slope a %g gives no finite gain", what, a);
    return KN_OK;
}

/* ---------------------------------------------------------------- filling */
/* t = a fresh random tensor (f64 draws converted to t's dtype). */
static kn_status fill_random(kn_tensor *t, bool normal, double p0, double p1)
{
    kn_tensor *r = normal ? kn_tensor_rand_normal(KN_F64, t->ndim, t->shape, p0, p1)
                          : kn_tensor_rand_uniform(KN_F64, t->ndim, t->shape, p0, p1);
    if (!r) return kn_last_status();
    kn_status s = kn_tensor_copy_(t, r);
    kn_tensor_unref(r);
    return s;
}

/* Reduced QR of a (m, n), m >= n, row-major, by Householder reflections in
 * f64: a is overwritten (R in its upper triangle), q (m, n) gets Q, d gets
 * diag(R). v is scratch of m * n. */
static void householder_qr(double *a, int64_t m, int64_t n, double *q, double *d, double *v)
{
    for (int64_t k = 0; k < n; k++) {
        double *vk = v + k * m; /* reflector k, entries k..m-1 */
        double norm = 0;
        for (int64_t i = k; i < m; i++)
            norm += a[i * n + k] * a[i * n + k];
        norm = sqrt(norm);
        double alpha = a[k * n + k] >= 0 ? -norm : norm;
        double vnorm = 0;
        for (int64_t i = k; i < m; i++) {
            vk[i] = a[i * n + k] - (i == k ? alpha : 0.0);
            vnorm += vk[i] * vk[i];
        }
        vnorm = sqrt(vnorm);
        if (vnorm == 0) { /* column already reduced: H_k = I */
            for (int64_t i = k; i < m; i++)
                vk[i] = 0;
            d[k] = a[k * n + k];
            continue;
        }
        for (int64_t i = k; i < m; i++)
            vk[i] /= vnorm;
        for (int64_t j = k; j < n; j++) { /* A[k:, j] -= 2 v (v . A[k:, j]) */
            double dot = 0;
            for (int64_t i = k; i < m; i++)
                dot += vk[i] * a[i * n + j];
            for (int64_t i = k; i < m; i++)
                a[i * n + j] -= 2 * dot * vk[i];
        }
        d[k] = a[k * n + k];
    }
    /* Q = H_0 ... H_{n-1} applied to the first n columns of the identity */
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++)
            q[i * n + j] = i == j ? 1.0 : 0.0;
    for (int64_t k = n - 1; k >= 0; k--) {
        const double *vk = v + k * m;
        for (int64_t j = 0; j < n; j++) {
            double dot = 0;
            for (int64_t i = k; i < m; i++)
                dot += vk[i] * q[i * n + j];
            for (int64_t i = k; i < m; i++)
                q[i * n + j] -= 2 * dot * vk[i];
        }
    }
}

static double sign_of(double x)
{
    return x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0;
}

/* torch.nn.init.orthogonal_: QR of a (rows, cols) normal matrix (transposed
 * when rows < cols), Q's columns times sign(diag(R)), times gain. */
static kn_status fill_orthogonal(kn_tensor *t, double gain)
{
    int64_t rows = t->shape[0], cols = kn_tensor_numel(t) / rows;
    bool flip = rows < cols;
    int64_t m = flip ? cols : rows, n = flip ? rows : cols;
    kn_tensor *g = kn_tensor_rand_normal(KN_F64, 2, (int64_t[]){rows, cols}, 0.0, 1.0);
    if (!g) return kn_last_status();
    const double *gd = kn_tensor_data(g);
    size_t mn = (size_t)(m * n) * sizeof(double);
    double *a = kn_alloc(mn), *q = kn_alloc(mn), *v = kn_alloc(mn);
    double *d = kn_alloc((size_t)n * sizeof(double));
    double *out = kn_alloc(mn);
    kn_status s = a && q && v && d && out ? KN_OK : kn_last_status();
    if (!s) {
        for (int64_t i = 0; i < rows; i++) /* a = flip ? gᵀ : g, (m, n) */
            for (int64_t j = 0; j < cols; j++)
                a[flip ? j * n + i : i * n + j] = gd[i * cols + j];
        householder_qr(a, m, n, q, d, v);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++)
                q[i * n + j] *= sign_of(d[j]) * gain;
        for (int64_t i = 0; i < rows; i++) /* back to (rows, cols) */
            for (int64_t j = 0; j < cols; j++)
                out[i * cols + j] = flip ? q[j * n + i] : q[i * n + j];
        kn_tensor *o = kn_tensor_from_buffer(KN_F64, t->ndim, t->shape, out, NULL, NULL);
        s = o ? kn_tensor_copy_(t, o) : kn_last_status();
        kn_tensor_unref(o);
    }
    kn_free(a), kn_free(q), kn_free(v), kn_free(d), kn_free(out);
    kn_tensor_unref(g);
    return s;
}

static kn_status check_tensor(const kn_tensor *t, const kn_init *init)
{
    if (!t || !init) return kn__error(KN_ERR_ARG, "init_tensor: tensor or init is NULL");
    if (!t->storage)
        return kn__error(KN_ERR_ARG, "init_tensor: the tensor is symbolic (no data to fill)");
    if (!kn_dtype_is_float(t->dtype))
        return kn__error(KN_ERR_DTYPE, "init_tensor: dtype %s is not a float type",
                         kn_dtype_name(t->dtype));
    if ((unsigned)init->kind > KN_INIT_ORTHOGONAL)
        return kn__error(KN_ERR_ARG, "init_tensor: kind %d is not a kn_init_kind", (int)init->kind);
    return KN_OK;
}

static kn_status init_fill(kn_tensor *t, const kn_init *init)
{
    const char *what = kind_name(init->kind);
    double gain = init->gain == 0 ? 1.0 : init->gain;
    if (!isfinite(gain))
        return kn__error(KN_ERR_ARG, "init_tensor: %s: gain %g is not finite", what, gain);
    switch (init->kind) {
    case KN_INIT_DEFAULT:
        return kn__error(KN_ERR_ARG, "init_tensor: KN_INIT_DEFAULT depends on the layer; use "
                                     "kn_block_init_params or name an initializer");
    case KN_INIT_ZEROS:
        return kn_tensor_fill_(t, 0.0);
    case KN_INIT_ONES:
        return kn_tensor_fill_(t, 1.0);
    case KN_INIT_CONSTANT:
        return kn_tensor_fill_(t, init->value);
    case KN_INIT_UNIFORM:
        if (!(isfinite(init->low) && isfinite(init->high) && init->low <= init->high))
            return kn__error(KN_ERR_ARG,
                             "init_tensor: uniform: need finite low <= high, got [%g, %g)",
                             init->low, init->high);
        return fill_random(t, false, init->low, init->high);
    case KN_INIT_NORMAL:
        if (!(isfinite(init->mean) && isfinite(init->std) && init->std >= 0))
            return kn__error(KN_ERR_ARG,
                             "init_tensor: normal: need a finite mean and std >= 0, got "
                             "mean %g std %g",
                             init->mean, init->std);
        return fill_random(t, true, init->mean, init->std);
    default:
        break;
    }
    char who[48];
    snprintf(who, sizeof who, "init_tensor: %s", what);
    if (init->kind == KN_INIT_ORTHOGONAL) {
        if (t->ndim < 2) {
            char s[128];
            kn__nn_shape(t, s, sizeof s);
            return kn__error(KN_ERR_SHAPE, "%s: needs a tensor of at least 2 dims, got %s", who, s);
        }
        return kn_tensor_numel(t) ? fill_orthogonal(t, gain) : KN_OK;
    }
    int64_t fan_in, fan_out;
    kn_status s = kn__nn_fans(who, t, &fan_in, &fan_out);
    if (s) return s;
    if (kn_tensor_numel(t) == 0) return KN_OK; /* as PyTorch: a no-op */
    if (init->kind == KN_INIT_XAVIER_UNIFORM || init->kind == KN_INIT_XAVIER_NORMAL) {
        double std = gain * sqrt(2.0 / (double)(fan_in + fan_out));
        return init->kind == KN_INIT_XAVIER_NORMAL
                   ? fill_random(t, true, 0.0, std)
                   : fill_random(t, false, -sqrt(3.0) * std, sqrt(3.0) * std);
    }
    if (init->mode != KN_FAN_IN && init->mode != KN_FAN_OUT)
        return kn__error(KN_ERR_ARG, "%s: mode %d is not KN_FAN_IN or KN_FAN_OUT", who,
                         (int)init->mode);
    if ((s = gain_of(what, init->nonlinearity, init->a, &gain))) return s;
    double std = gain / sqrt((double)(init->mode == KN_FAN_IN ? fan_in : fan_out));
    return init->kind == KN_INIT_KAIMING_NORMAL
               ? fill_random(t, true, 0.0, std)
               : fill_random(t, false, -sqrt(3.0) * std, sqrt(3.0) * std);
}

kn_status kn_init_tensor(kn_tensor *t, const kn_init *init)
{
    kn_status s = check_tensor(t, init);
    if (s) return s;
    kn_no_grad_begin();
    s = init_fill(t, init);
    kn_no_grad_end();
    return s;
}

/* ---------------------------------------------------------------- layer defaults */
static kn_status default_bias(kn_block *owner, kn_tensor *t)
{
    kn_tensor *w = kn_block_param(owner, "weight");
    if (!w) return kn_last_status();
    int64_t fan_in, fan_out;
    kn_status s = kn__nn_fans("init: bias", w, &fan_in, &fan_out);
    if (s) return s;
    double bound = fan_in > 0 ? 1.0 / sqrt((double)fan_in) : 0.0;
    return kn_init_tensor(t, &(kn_init){.kind = KN_INIT_UNIFORM, .low = -bound, .high = bound});
}

static bool is_one_of(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(s, *list)) return true;
    return false;
}

kn_status kn__nn_default_init(kn_block *owner, const char *param, kn_tensor *t)
{
    static const char *const linear[] = {"dense", "conv", NULL};
    static const char *const norms[] = {"batch_norm", "layer_norm", "group_norm", "instance_norm",
                                        NULL};
    static const char *const rnns[] = {"lstm", "gru", "rnn", NULL};
    const char *kind = kn_block_name(owner);
    if (!kind) return kn__error(KN_ERR_ARG, "init: block is NULL");
    if (is_one_of(kind, linear)) {
        if (!strcmp(param, "weight"))
            return kn_init_tensor(t, &(kn_init){.kind = KN_INIT_KAIMING_UNIFORM,
                                                .a = sqrt(5.0),
                                                .nonlinearity = "leaky_relu"});
        if (!strcmp(param, "bias")) return default_bias(owner, t);
    } else if (is_one_of(kind, norms)) {
        if (!strcmp(param, "weight")) return kn_init_tensor(t, &(kn_init){.kind = KN_INIT_ONES});
        if (!strcmp(param, "bias")) return kn_init_tensor(t, &(kn_init){.kind = KN_INIT_ZEROS});
    } else if (!strcmp(kind, "embedding")) {
        if (!strcmp(param, "weight"))
            return kn_init_tensor(t, &(kn_init){.kind = KN_INIT_NORMAL, .std = 1.0});
    } else if (is_one_of(kind, rnns)) {
        kn_tensor *w = kn_block_param(owner, "weight_hh_l0"); /* (G*hidden, hidden) */
        if (!w) return kn_last_status();
        double bound = w->ndim == 2 && w->shape[1] > 0 ? 1.0 / sqrt((double)w->shape[1]) : 0.0;
        return kn_init_tensor(t, &(kn_init){.kind = KN_INIT_UNIFORM, .low = -bound, .high = bound});
    }
    return kn__error(KN_ERR_ARG,
                     "init: no default initializer is known for parameter '%s' of a '%s' "
                     "block; name an initializer",
                     param, kind);
}

/* ---------------------------------------------------------------- block trees */
/* '*' matches any run of characters (dots included). */
static bool glob_match(const char *p, const char *s)
{
    for (; *p; p++, s++) {
        if (*p == '*') {
            while (p[1] == '*')
                p++;
            for (const char *t = s;; t++) {
                if (glob_match(p + 1, t)) return true;
                if (!*t) return false;
            }
        }
        if (*s != *p) return false;
    }
    return *s == '\0';
}

typedef struct walk_ctx {
    const char *pattern;
    const kn_init *init;
    kn_tensor **done; /* tensors already filled (shared ones appear more than once) */
    int n_done, cap;
    int matched;
} walk_ctx;

static bool already_done(walk_ctx *w, kn_tensor *t)
{
    for (int i = 0; i < w->n_done; i++)
        if (w->done[i] == t) return true;
    return false;
}

static kn_status remember(walk_ctx *w, kn_tensor *t)
{
    if (w->n_done == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        kn_tensor **d = kn_alloc(sizeof *d * (size_t)cap);
        if (!d) return kn_last_status();
        if (w->n_done) memcpy(d, w->done, sizeof *d * (size_t)w->n_done);
        kn_free(w->done);
        w->done = d, w->cap = cap;
    }
    w->done[w->n_done++] = t;
    return KN_OK;
}

/* The block's own parameters are the first ones of its flat list (children
 * follow), so they are counted by subtracting the children's. */
static kn_status walk(kn_block *b, const char *prefix, walk_ctx *w)
{
    int n_own = kn_block_num_params(b);
    int n_children = kn_block_num_children(b);
    for (int c = 0; c < n_children; c++)
        n_own -= kn_block_num_params(kn_block_child_at(b, c));
    for (int i = 0; i < n_own; i++) {
        const char *name = kn_block_param_name(b, i);
        kn_tensor *t = kn_block_param_at(b, i);
        char path[512];
        snprintf(path, sizeof path, "%s%s", prefix, name);
        if (w->pattern && !glob_match(w->pattern, path)) continue;
        if (kn_block_param_is_state(b, i)) continue;
        w->matched++;
        if (already_done(w, t)) continue;
        kn_status s = w->init->kind == KN_INIT_DEFAULT ? kn__nn_default_init(b, name, t)
                                                       : kn_init_tensor(t, w->init);
        if (s) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", kn_last_error());
            return kn__error(s, "block_init_params: '%s': %s", path, msg);
        }
        if ((s = remember(w, t))) return s;
    }
    for (int c = 0; c < n_children; c++) {
        char sub[512];
        snprintf(sub, sizeof sub, "%s%s.", prefix, kn_block_child_name(b, c));
        kn_status s = walk(kn_block_child_at(b, c), sub, w);
        if (s) return s;
    }
    return KN_OK;
}

kn_status kn_block_init_params(kn_block *b, const char *pattern, const kn_init *init)
{
    if (!b || !init) return kn__error(KN_ERR_ARG, "block_init_params: block or init is NULL");
    if ((unsigned)init->kind > KN_INIT_ORTHOGONAL)
        return kn__error(KN_ERR_ARG, "block_init_params: kind %d is not a kn_init_kind",
                         (int)init->kind);
    walk_ctx w = {.pattern = pattern, .init = init};
    kn_status s = walk(b, "", &w);
    kn_free(w.done);
    if (!s && pattern && w.matched == 0)
        return kn__error(KN_ERR_ARG, "block_init_params: no parameter of '%s' matches '%s'",
                         kn_block_name(b), pattern);
    return s;
}
