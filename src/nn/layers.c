/* layers.c — the Gluon-style layers that need no spatial logic: activation,
 * sequential, dense, flatten, residual, plus the helpers every layer shares
 * (parameter creation with PyTorch's default init, deferred sizes, error
 * naming). Convolution, batch norm and pooling are in layers_conv.c.
 * Relies on the block API (src/graph/block.c) and the public ops. */
#include "nn_internal.h"

#include "../tensor/tensor.h"

#include <math.h>

/* ---------------------------------------------------------------- helpers */
kn_tensor *kn__nn_param(kn_block *b, const char *name)
{
    /* kn_block_param looks at b's own parameters only (no allocation), and
     * its only error is "no such parameter", which here is an answer: the
     * error state from before is put back */
    kn_status before = kn_last_status();
    char msg[512];
    if (before) snprintf(msg, sizeof msg, "%s", kn_last_error());
    kn_tensor *p = kn_block_param(b, name);
    if (!p && before)
        kn__error(before, "%s", msg);
    else if (!p)
        kn_clear_error();
    return p;
}

kn_status kn__nn_create(kn_block *b, const char *name, kn_dtype dt, int ndim, const int64_t *shape,
                        bool state, double fill)
{
    kn_tensor *t = kn_tensor_empty(dt, ndim, shape);
    if (!t) return kn_last_status();
    kn_status s = state ? kn_tensor_fill_(t, fill) : kn__nn_default_init(b, name, t);
    if (!s && !state) s = kn_tensor_set_requires_grad(t, true);
    if (!s) s = state ? kn_block_add_state(b, name, t) : kn_block_add_param(b, name, t);
    kn_tensor_unref(t);
    return s;
}

kn_block *kn__nn_block(const char *kind, kn_forward_fn forward, void *cfg)
{
    kn_block *b = cfg ? kn_block_new(kind, forward, cfg) : NULL;
    if (!b) {
        kn_free(cfg);
        return NULL;
    }
    if (kn_block_set_user_free(b, kn_free)) {
        kn_free(cfg);
        kn_block_free(b);
        return NULL;
    }
    return b;
}

kn_dtype kn__nn_param_dtype(const kn_tensor *x)
{
    return kn_tensor_dtype(x) == KN_F64 ? KN_F64 : KN_F32;
}

bool kn__nn_act_valid(kn_act act)
{
    return (unsigned)act <= KN_ACT_HARDSWISH;
}

kn_status kn__nn_one_in_out(kn_block *b, int n_in, kn_tensor *const *in, int n_out)
{
    char who[300];
    if (n_in != 1 || !in || !in[0])
        return kn__error(KN_ERR_ARG, "%s: expected 1 input, got %d",
                         kn_block_label(b, who, sizeof who), n_in);
    if (n_out != 1)
        return kn__error(KN_ERR_ARG, "%s: gives 1 output, %d asked for",
                         kn_block_label(b, who, sizeof who), n_out);
    return KN_OK;
}

/* ---------------------------------------------------------------- activation */
kn_tensor *kn_activate(kn_tensor *x, kn_act act)
{
    if (!x) return kn__error_null(KN_ERR_ARG, "activate: input is NULL");
    switch (act) {
    case KN_ACT_NONE:
        return kn_tensor_ref(x);
    case KN_ACT_RELU:
        return kn_relu(x);
    case KN_ACT_RELU6:
        return kn_relu6(x);
    case KN_ACT_LEAKY_RELU:
        return kn_leaky_relu(x, 0.01);
    case KN_ACT_ELU:
        return kn_elu(x, 1.0);
    case KN_ACT_GELU:
        return kn_gelu(x);
    case KN_ACT_GELU_TANH:
        return kn_gelu_tanh(x);
    case KN_ACT_SILU:
        return kn_silu(x);
    case KN_ACT_SIGMOID:
        return kn_sigmoid(x);
    case KN_ACT_TANH:
        return kn_tanh(x);
    case KN_ACT_SOFTPLUS:
        return kn_softplus(x, 1.0, 20.0);
    case KN_ACT_MISH:
        return kn_mish(x);
    case KN_ACT_HARDSWISH:
        return kn_hard_swish(x);
    }
    return kn__error_null(KN_ERR_ARG, "activate: act %d is not a kn_act", (int)act);
}

typedef struct act_cfg {
    kn_act act;
} act_cfg;

static kn_status activation_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                                    kn_tensor **out, void *user)
{
    const act_cfg *c = user;
    kn_status s = kn__nn_one_in_out(b, n_in, in, n_out);
    if (s) return s;
    return (out[0] = kn_activate(in[0], c->act)) ? KN_OK : kn_last_status();
}

kn_block *kn_nn_activation(kn_act act)
{
    if (!kn__nn_act_valid(act))
        return kn__error_null(KN_ERR_ARG, "nn_activation: act %d is not a kn_act", (int)act);
    act_cfg *c = kn_alloc(sizeof *c);
    if (c) c->act = act;
    return kn__nn_block("activation", activation_forward, c);
}

/* ---------------------------------------------------------------- sequential */
static kn_status sequential_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                                    kn_tensor **out, void *user)
{
    kn_status s = kn__nn_one_in_out(b, n_in, in, n_out);
    if (s) return s;
    kn_tensor *x = kn_tensor_ref(in[0]);
    for (int i = 0, n = kn_block_num_children(b); i < n; i++) {
        kn_tensor *y = NULL;
        s = kn_block_forward(kn_block_child_at(b, i), 1, &x, 1, &y);
        kn_tensor_unref(x);
        if (s) return s;
        x = y;
    }
    out[0] = x;
    return KN_OK;
}

kn_block *kn_nn_sequential(void)
{
    return kn_block_new("sequential", sequential_forward, NULL);
}

/* Frees a layer we were given but could not attach, keeping the error. */
static kn_status drop_layer(kn_block *layer, kn_status s)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", kn_last_error());
    char path[8];
    if (layer && !kn_block_path(layer, path, sizeof path)[0])
        kn_block_free(layer); /* a root only */
    return kn__error(s, "%s", msg);
}

kn_status kn_sequential_add(kn_block *seq, kn_block *layer)
{
    if (!seq || !layer)
        return drop_layer(layer,
                          kn__error(KN_ERR_ARG, "sequential_add: sequential or layer is NULL"));
    if (seq == layer)
        return kn__error(KN_ERR_ARG, "sequential_add: a sequential cannot contain itself");
    if (strcmp(kn_block_name(seq), "sequential"))
        return drop_layer(layer,
                          kn__error(KN_ERR_ARG, "sequential_add: block '%s' is not a sequential",
                                    kn_block_name(seq)));
    char name[24];
    snprintf(name, sizeof name, "%d", kn_block_num_children(seq));
    kn_status s = kn_block_add_child(seq, name, layer);
    if (!s) return KN_OK;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", kn_last_error());
    return drop_layer(layer, kn__error(s, "sequential_add: %s", msg));
}

/* ---------------------------------------------------------------- dense */
typedef struct dense_cfg {
    int64_t in_units, units;
    bool bias;
    kn_act act;
} dense_cfg;

/* Creates the missing parameters for `in` input units. */
static kn_status dense_params(kn_block *b, dense_cfg *c, int64_t in, kn_dtype dt)
{
    kn_status s = KN_OK;
    if (!kn__nn_param(b, "weight"))
        s = kn__nn_create(b, "weight", dt, 2, (int64_t[]){c->units, in}, false, 0);
    if (!s && c->bias && !kn__nn_param(b, "bias"))
        s = kn__nn_create(b, "bias", dt, 1, &c->units, false, 0);
    if (!s) c->in_units = in;
    return s;
}

static kn_status dense_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                               kn_tensor **out, void *user)
{
    dense_cfg *c = user;
    kn_status s = kn__nn_one_in_out(b, n_in, in, n_out);
    if (s) return s;
    kn_tensor *x = in[0];
    char who[300], shape[160];
    if (kn_tensor_ndim(x) < 1)
        return kn__error(KN_ERR_SHAPE, "%s: input %s has no feature dim, expected (..., in_units)",
                         kn_block_label(b, who, sizeof who), kn__nn_shape(x, shape, sizeof shape));
    int64_t n = kn_tensor_dim(x, -1);
    kn_tensor *w = kn__nn_param(b, "weight");
    int64_t expect = w && kn_tensor_ndim(w) == 2 ? kn_tensor_dim(w, 1) : c->in_units;
    if (expect != 0 && n != expect)
        return kn__error(KN_ERR_SHAPE, "%s: input %s has in_units %lld, expected %lld",
                         kn_block_label(b, who, sizeof who), kn__nn_shape(x, shape, sizeof shape),
                         (long long)n, (long long)expect);
    if (n == 0)
        return kn__error(KN_ERR_SHAPE, "%s: input %s has in_units 0",
                         kn_block_label(b, who, sizeof who), kn__nn_shape(x, shape, sizeof shape));
    if ((!w || (c->bias && !kn__nn_param(b, "bias"))) &&
        (s = dense_params(b, c, n, kn__nn_param_dtype(x))))
        return s;
    kn_tensor *y =
        kn_linear(x, kn__nn_param(b, "weight"), c->bias ? kn__nn_param(b, "bias") : NULL);
    if (!y) return kn_last_status();
    out[0] = kn_activate(y, c->act);
    kn_tensor_unref(y);
    return out[0] ? KN_OK : kn_last_status();
}

kn_block *kn_nn_dense(int64_t in_units, int64_t units, bool bias, kn_act act)
{
    if (units <= 0 || in_units < 0)
        return kn__error_null(KN_ERR_ARG,
                              "nn_dense: units %lld must be > 0 and in_units %lld >= 0 "
                              "(0: deferred)",
                              (long long)units, (long long)in_units);
    if (!kn__nn_act_valid(act))
        return kn__error_null(KN_ERR_ARG, "nn_dense: act %d is not a kn_act", (int)act);
    dense_cfg *c = kn_alloc(sizeof *c);
    if (c) *c = (dense_cfg){.in_units = in_units, .units = units, .bias = bias, .act = act};
    kn_block *b = kn__nn_block("dense", dense_forward, c);
    if (b && in_units > 0 && dense_params(b, c, in_units, KN_F32)) {
        kn_block_free(b);
        return NULL;
    }
    return b;
}

/* ---------------------------------------------------------------- flatten */
static kn_status flatten_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                                 kn_tensor **out, void *user)
{
    kn_status s = kn__nn_one_in_out(b, n_in, in, n_out);
    if (s) return s;
    kn_tensor *x = in[0];
    if (kn_tensor_ndim(x) < 1) {
        char who[300];
        return kn__error(KN_ERR_SHAPE, "%s: input is a scalar, expected (N, ...)",
                         kn_block_label(b, who, sizeof who));
    }
    out[0] = kn_tensor_ndim(x) == 1 ? kn_unsqueeze(x, 1) : kn_flatten(x, 1, -1);
    return out[0] ? KN_OK : kn_last_status();
}

kn_block *kn_nn_flatten(void)
{
    return kn_block_new("flatten", flatten_forward, NULL);
}

/* ---------------------------------------------------------------- residual */
static kn_status residual_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                                  kn_tensor **out, void *user)
{
    const act_cfg *c = user;
    kn_status s = kn__nn_one_in_out(b, n_in, in, n_out);
    if (s) return s;
    kn_tensor *y = NULL, *sc = NULL;
    kn_block *shortcut = kn_block_child(b, "shortcut");
    s = kn_block_forward(kn_block_child(b, "body"), 1, in, 1, &y);
    if (!s && shortcut)
        s = kn_block_forward(shortcut, 1, in, 1, &sc);
    else if (!s)
        sc = kn_tensor_ref(in[0]);
    kn_tensor *z = s ? NULL : kn_add(y, sc);
    kn_tensor_unref(y), kn_tensor_unref(sc);
    if (!z) return kn_last_status();
    out[0] = kn_activate(z, c->act);
    kn_tensor_unref(z);
    return out[0] ? KN_OK : kn_last_status();
}

kn_block *kn_nn_residual(kn_block *body, kn_block *shortcut, kn_act act)
{
    kn_status s = KN_OK;
    if (!body)
        s = kn__error(KN_ERR_ARG, "nn_residual: body is NULL");
    else if (!kn__nn_act_valid(act))
        s = kn__error(KN_ERR_ARG, "nn_residual: act %d is not a kn_act", (int)act);
    act_cfg *c = s ? NULL : kn_alloc(sizeof *c);
    if (c) c->act = act;
    kn_block *b = s ? NULL : kn__nn_block("residual", residual_forward, c);
    if (b && !(s = kn_block_add_child(b, "body", body))) {
        body = NULL;
        if (shortcut && !(s = kn_block_add_child(b, "shortcut", shortcut))) shortcut = NULL;
    }
    if (!b || s) { /* takes ownership of both even on error */
        if (!s) s = kn_last_status();
        char msg[512];
        snprintf(msg, sizeof msg, "%s", kn_last_error());
        if (body) drop_layer(body, s);
        if (shortcut) drop_layer(shortcut, s);
        kn_block_free(b);
        kn__error(s, "%s%s", strncmp(msg, "nn_residual", 11) ? "nn_residual: " : "", msg);
        return NULL;
    }
    return b;
}
