/* layers_conv.c — the spatial layers: convolution (1/2/3-D, also transposed),
 * batch norm (running statistics as state), max/avg pools and global pools,
 * in NCHW or NHWC. Sizes given as 0 are taken from the first input.
 * Relies on layers.c's helpers and the conv/pool/norm ops. */
#include "nn_internal.h"

#include "../tensor/tensor.h"

#include <math.h>

static int channel_axis(int ndim, kn_layout layout)
{
    return layout == KN_LAYOUT_NHWC ? ndim - 1 : 1;
}

static const char *layout_dims(int spatial, kn_layout layout)
{
    static const char *const nchw[] = {"(N, C, L)", "(N, C, H, W)", "(N, C, D, H, W)"};
    static const char *const nhwc[] = {"(N, L, C)", "(N, H, W, C)", "(N, D, H, W, C)"};
    return (layout == KN_LAYOUT_NHWC ? nhwc : nchw)[spatial - 1];
}

/* ---------------------------------------------------------------- convolution */
typedef struct conv_cfg {
    kn_conv_layer l; /* stride/dilation/groups 0 already replaced by 1 */
} conv_cfg;

static int64_t one_if_zero(int64_t v)
{
    return v ? v : 1;
}

/* Weight shape for `in` input channels. */
static void conv_weight_shape(const kn_conv_layer *l, int64_t in, int64_t *shape)
{
    shape[0] = l->transposed ? in : l->channels;
    shape[1] = l->transposed ? l->channels / l->groups : in / l->groups;
    for (int d = 0; d < l->ndim; d++)
        shape[2 + d] = l->kernel[d];
}

static kn_status conv_params(kn_block *b, conv_cfg *c, int64_t in, kn_dtype dt)
{
    int64_t shape[2 + 3];
    conv_weight_shape(&c->l, in, shape);
    kn_status s = KN_OK;
    if (!kn__nn_param(b, "weight"))
        s = kn__nn_create(b, "weight", dt, 2 + c->l.ndim, shape, false, 0);
    if (!s && !c->l.no_bias && !kn__nn_param(b, "bias"))
        s = kn__nn_create(b, "bias", dt, 1, &c->l.channels, false, 0);
    if (!s) c->l.in_channels = in;
    return s;
}

static kn_status conv_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                              kn_tensor **out, void *user)
{
    conv_cfg *c = user;
    const kn_conv_layer *l = &c->l;
    kn_status s = kn__nn_one_in_out(b, n_in, in, n_out);
    if (s) return s;
    kn_tensor *x = in[0];
    char who[300], shape[160];
    if (kn_tensor_ndim(x) != l->ndim + 2)
        return kn__error(KN_ERR_SHAPE, "%s: input %s has %d dims, expected %d %s",
                         kn_block_label(b, who, sizeof who), kn__nn_shape(x, shape, sizeof shape),
                         kn_tensor_ndim(x), l->ndim + 2, layout_dims(l->ndim, l->layout));
    int64_t ch = kn_tensor_dim(x, channel_axis(l->ndim + 2, l->layout));
    kn_tensor *w = kn__nn_param(b, "weight");
    int64_t expect = l->in_channels;
    if (w && kn_tensor_ndim(w) == l->ndim + 2)
        expect = l->transposed ? kn_tensor_dim(w, 0) : kn_tensor_dim(w, 1) * l->groups;
    if (expect != 0 && ch != expect)
        return kn__error(KN_ERR_SHAPE, "%s: input %s has %lld channels, expected %lld",
                         kn_block_label(b, who, sizeof who), kn__nn_shape(x, shape, sizeof shape),
                         (long long)ch, (long long)expect);
    if (ch == 0 || ch % l->groups)
        return kn__error(KN_ERR_SHAPE,
                         "%s: input %s has %lld channels, expected a positive multiple "
                         "of groups %lld",
                         kn_block_label(b, who, sizeof who), kn__nn_shape(x, shape, sizeof shape),
                         (long long)ch, (long long)l->groups);
    if ((!w || (!l->no_bias && !kn__nn_param(b, "bias"))) &&
        (s = conv_params(b, c, ch, kn__nn_param_dtype(x))))
        return s;
    kn_conv_params p = {.groups = l->groups, .layout = l->layout};
    for (int d = 0; d < l->ndim; d++) {
        p.stride[d] = l->stride[d];
        p.pad_begin[d] = p.pad_end[d] = l->padding[d];
        p.dilation[d] = l->dilation[d];
        p.output_padding[d] = l->output_padding[d];
    }
    kn_tensor *wt = kn__nn_param(b, "weight"), *bias = l->no_bias ? NULL : kn__nn_param(b, "bias");
    kn_tensor *y;
    if (l->transposed)
        y = l->ndim == 1   ? kn_conv_transpose1d(x, wt, bias, &p)
            : l->ndim == 2 ? kn_conv_transpose2d(x, wt, bias, &p)
                           : kn_conv_transpose3d(x, wt, bias, &p);
    else
        y = l->ndim == 1   ? kn_conv1d(x, wt, bias, &p)
            : l->ndim == 2 ? kn_conv2d(x, wt, bias, &p)
                           : kn_conv3d(x, wt, bias, &p);
    if (!y) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", kn_last_error());
        return kn__error(kn_last_status(), "%s: %s", kn_block_label(b, who, sizeof who), msg);
    }
    out[0] = kn_activate(y, l->act);
    kn_tensor_unref(y);
    return out[0] ? KN_OK : kn_last_status();
}

static kn_status conv_check(const kn_conv_layer *l)
{
    if (l->ndim < 1 || l->ndim > 3)
        return kn__error(KN_ERR_ARG, "nn_conv: ndim %d must be 1, 2 or 3", l->ndim);
    if (l->channels <= 0 || l->in_channels < 0)
        return kn__error(KN_ERR_ARG,
                         "nn_conv: channels %lld must be > 0 and in_channels %lld >= 0 "
                         "(0: deferred)",
                         (long long)l->channels, (long long)l->in_channels);
    if (l->groups < 0 || l->channels % one_if_zero(l->groups) ||
        l->in_channels % one_if_zero(l->groups))
        return kn__error(KN_ERR_ARG,
                         "nn_conv: groups %lld must be >= 0 and divide channels %lld and "
                         "in_channels %lld",
                         (long long)l->groups, (long long)l->channels, (long long)l->in_channels);
    for (int d = 0; d < l->ndim; d++) {
        if (l->kernel[d] <= 0 || l->stride[d] < 0 || l->padding[d] < 0 || l->dilation[d] < 0 ||
            l->output_padding[d] < 0)
            return kn__error(KN_ERR_ARG,
                             "nn_conv: dim %d: kernel %lld must be > 0, stride %lld, "
                             "padding %lld, dilation %lld and output_padding %lld >= 0",
                             d, (long long)l->kernel[d], (long long)l->stride[d],
                             (long long)l->padding[d], (long long)l->dilation[d],
                             (long long)l->output_padding[d]);
        if (l->output_padding[d] && !l->transposed)
            return kn__error(KN_ERR_ARG, "nn_conv: output_padding is for transposed convolutions");
        /* smaller than the stride, as the conv_transpose ops require (their
         * gradient, a strided conv, must give back the input's size) */
        if (l->transposed && l->output_padding[d] >= one_if_zero(l->stride[d]))
            return kn__error(KN_ERR_ARG,
                             "nn_conv: dim %d: output_padding %lld must be smaller than "
                             "stride %lld",
                             d, (long long)l->output_padding[d],
                             (long long)one_if_zero(l->stride[d]));
    }
    if (l->layout != KN_LAYOUT_NCHW && l->layout != KN_LAYOUT_NHWC)
        return kn__error(KN_ERR_ARG, "nn_conv: layout %d is not NCHW or NHWC", (int)l->layout);
    if (!kn__nn_act_valid(l->act))
        return kn__error(KN_ERR_ARG, "nn_conv: act %d is not a kn_act", (int)l->act);
    return KN_OK;
}

kn_block *kn_nn_conv(const kn_conv_layer *cfg)
{
    if (!cfg) return kn__error_null(KN_ERR_ARG, "nn_conv: cfg is NULL");
    if (conv_check(cfg)) return NULL;
    conv_cfg *c = kn_alloc(sizeof *c);
    if (c) {
        c->l = *cfg;
        c->l.groups = one_if_zero(cfg->groups);
        for (int d = 0; d < 3; d++) {
            c->l.stride[d] = d < cfg->ndim ? one_if_zero(cfg->stride[d]) : 0;
            c->l.dilation[d] = d < cfg->ndim ? one_if_zero(cfg->dilation[d]) : 0;
        }
    }
    kn_block *b = kn__nn_block("conv", conv_forward, c);
    if (b && cfg->in_channels > 0 && conv_params(b, c, cfg->in_channels, KN_F32)) {
        kn_block_free(b);
        return NULL;
    }
    return b;
}

kn_block *kn_nn_conv2d(int64_t in_channels, int64_t channels, int64_t k, int64_t stride,
                       int64_t padding, kn_act act)
{
    return kn_nn_conv(&(kn_conv_layer){.ndim = 2,
                                       .in_channels = in_channels,
                                       .channels = channels,
                                       .kernel = {k, k},
                                       .stride = {stride, stride},
                                       .padding = {padding, padding},
                                       .act = act});
}

/* ---------------------------------------------------------------- batch norm */
typedef struct bn_cfg {
    int64_t num_features;
    double momentum, eps;
    kn_layout layout;
} bn_cfg;

static kn_status bn_params(kn_block *b, bn_cfg *c, int64_t n, kn_dtype dt)
{
    kn_status s = KN_OK;
    if (!kn__nn_param(b, "weight")) s = kn__nn_create(b, "weight", dt, 1, &n, false, 0);
    if (!s && !kn__nn_param(b, "bias")) s = kn__nn_create(b, "bias", dt, 1, &n, false, 0);
    if (!s && !kn__nn_param(b, "running_mean"))
        s = kn__nn_create(b, "running_mean", dt, 1, &n, true, 0.0);
    if (!s && !kn__nn_param(b, "running_var"))
        s = kn__nn_create(b, "running_var", dt, 1, &n, true, 1.0);
    if (!s) c->num_features = n;
    return s;
}

static kn_status bn_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out, kn_tensor **out,
                            void *user)
{
    bn_cfg *c = user;
    kn_status s = kn__nn_one_in_out(b, n_in, in, n_out);
    if (s) return s;
    kn_tensor *x = in[0];
    char who[300], shape[160];
    if (kn_tensor_ndim(x) < 2)
        return kn__error(KN_ERR_SHAPE, "%s: input %s has %d dims, expected (N, C, ...)",
                         kn_block_label(b, who, sizeof who), kn__nn_shape(x, shape, sizeof shape),
                         kn_tensor_ndim(x));
    int64_t ch = kn_tensor_dim(x, channel_axis(kn_tensor_ndim(x), c->layout));
    kn_tensor *w = kn__nn_param(b, "weight");
    int64_t expect = w && kn_tensor_ndim(w) == 1 ? kn_tensor_dim(w, 0) : c->num_features;
    if ((expect != 0 && ch != expect) || ch == 0)
        return kn__error(KN_ERR_SHAPE, "%s: input %s has %lld channels, expected %lld",
                         kn_block_label(b, who, sizeof who), kn__nn_shape(x, shape, sizeof shape),
                         (long long)ch, (long long)expect);
    if ((!w || !kn__nn_param(b, "bias") || !kn__nn_param(b, "running_mean") ||
         !kn__nn_param(b, "running_var")) &&
        (s = bn_params(b, c, ch, kn__nn_param_dtype(x))))
        return s;
    out[0] = kn_batch_norm(x, kn__nn_param(b, "weight"), kn__nn_param(b, "bias"),
                           kn__nn_param(b, "running_mean"), kn__nn_param(b, "running_var"),
                           kn_block_is_training(b), c->momentum, c->eps, c->layout);
    if (!out[0]) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", kn_last_error());
        return kn__error(kn_last_status(), "%s: %s", kn_block_label(b, who, sizeof who), msg);
    }
    return KN_OK;
}

kn_block *kn_nn_batch_norm(int64_t num_features, double momentum, double eps, kn_layout layout)
{
    if (num_features < 0)
        return kn__error_null(KN_ERR_ARG,
                              "nn_batch_norm: num_features %lld must be >= 0 (0: deferred)",
                              (long long)num_features);
    if (!(momentum >= 0 && momentum <= 1) || !(eps > 0 && isfinite(eps)))
        return kn__error_null(KN_ERR_ARG,
                              "nn_batch_norm: momentum %g must be in [0, 1] and eps %g > 0",
                              momentum, eps);
    if (layout != KN_LAYOUT_NCHW && layout != KN_LAYOUT_NHWC)
        return kn__error_null(KN_ERR_ARG, "nn_batch_norm: layout %d is not NCHW or NHWC",
                              (int)layout);
    bn_cfg *c = kn_alloc(sizeof *c);
    if (c)
        *c = (bn_cfg){
            .num_features = num_features, .momentum = momentum, .eps = eps, .layout = layout};
    kn_block *b = kn__nn_block("batch_norm", bn_forward, c);
    if (b && num_features > 0 && bn_params(b, c, num_features, KN_F32)) {
        kn_block_free(b);
        return NULL;
    }
    return b;
}

/* ---------------------------------------------------------------- pools */
typedef struct pool_cfg {
    bool max, global, flatten;
    int64_t kernel, stride, padding;
    kn_layout layout;
} pool_cfg;

static kn_status pool_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                              kn_tensor **out, void *user)
{
    const pool_cfg *c = user;
    kn_status s = kn__nn_one_in_out(b, n_in, in, n_out);
    if (s) return s;
    kn_tensor *x = in[0];
    char who[300], shape[160];
    int spatial = kn_tensor_ndim(x) - 2;
    if (spatial < 1 || spatial > 3)
        return kn__error(KN_ERR_SHAPE, "%s: input %s has %d dims, expected 3 to 5 %s",
                         kn_block_label(b, who, sizeof who), kn__nn_shape(x, shape, sizeof shape),
                         kn_tensor_ndim(x), layout_dims(2, c->layout));
    kn_tensor *y;
    if (c->global) {
        y = c->max ? kn_global_max_pool(x, c->layout) : kn_global_avg_pool(x, c->layout);
        if (y && c->flatten) {
            kn_tensor *f = kn_flatten(y, 1, -1);
            kn_tensor_unref(y);
            y = f;
        }
    } else {
        kn_pool_params p = {.count_include_pad = true, .layout = c->layout};
        for (int d = 0; d < spatial; d++) {
            p.kernel[d] = c->kernel;
            p.stride[d] = c->stride ? c->stride : c->kernel;
            p.pad_begin[d] = p.pad_end[d] = c->padding;
        }
        y = c->max ? kn_max_pool(x, &p) : kn_avg_pool(x, &p);
    }
    if (!y) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", kn_last_error());
        return kn__error(kn_last_status(), "%s: %s", kn_block_label(b, who, sizeof who), msg);
    }
    out[0] = y;
    return KN_OK;
}

static kn_block *pool_new(const char *kind, pool_cfg cfg)
{
    if (!cfg.global &&
        (cfg.kernel <= 0 || cfg.stride < 0 || cfg.padding < 0 || 2 * cfg.padding > cfg.kernel))
        return kn__error_null(KN_ERR_ARG,
                              "nn_%s: kernel %lld must be > 0, stride %lld >= 0 (0: kernel) "
                              "and padding %lld in [0, kernel/2]",
                              kind, (long long)cfg.kernel, (long long)cfg.stride,
                              (long long)cfg.padding);
    if (cfg.layout != KN_LAYOUT_NCHW && cfg.layout != KN_LAYOUT_NHWC)
        return kn__error_null(KN_ERR_ARG, "nn_%s: layout %d is not NCHW or NHWC", kind,
                              (int)cfg.layout);
    pool_cfg *c = kn_alloc(sizeof *c);
    if (c) *c = cfg;
    return kn__nn_block(kind, pool_forward, c);
}

kn_block *kn_nn_max_pool(int64_t kernel, int64_t stride, int64_t padding, kn_layout layout)
{
    return pool_new(
        "max_pool",
        (pool_cfg){
            .max = true, .kernel = kernel, .stride = stride, .padding = padding, .layout = layout});
}

kn_block *kn_nn_avg_pool(int64_t kernel, int64_t stride, int64_t padding, kn_layout layout)
{
    return pool_new(
        "avg_pool",
        (pool_cfg){.kernel = kernel, .stride = stride, .padding = padding, .layout = layout});
}

kn_block *kn_nn_global_avg_pool(kn_layout layout, bool flatten)
{
    return pool_new("global_avg_pool",
                    (pool_cfg){.global = true, .flatten = flatten, .layout = layout});
}

kn_block *kn_nn_global_max_pool(kn_layout layout, bool flatten)
{
    return pool_new("global_max_pool",
                    (pool_cfg){.max = true, .global = true, .flatten = flatten, .layout = layout});
}
