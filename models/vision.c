/* vision.c — the vision model zoo: mlp, lenet (with batch norm), resnet18/34
 * (basic blocks), resnet50 (bottlenecks) and mobilenet_v2, built from kiln's
 * layers with torchvision's parameter names ("layer1.0.conv1.weight",
 * "features.3.conv.1.0.weight") and initializations; kn_model_new also
 * dispatches the sequence models of sequence.c. Public <kiln.h> API only
 * (plus the error setter declared in models.h). */
#include "models.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- building */
/* Collects the first error while a model is put together, so construction
 * reads as a list of layers: after a failure every later step is skipped
 * and the blocks handed in are freed. */
typedef struct builder {
    kn_status status;
    char msg[512]; /* the first error's message */
} builder;

static void fail(builder *bd, kn_status s)
{
    if (bd->status) return;
    bd->status = s ? s : KN_ERR_INTERNAL;
    snprintf(bd->msg, sizeof bd->msg, "%s", kn_last_error());
}

static bool failed(const builder *bd)
{
    return bd->status != KN_OK;
}

/* parent.name = child (name NULL: the next index of a sequential). A NULL
 * child is a failed constructor; the child is freed when it cannot be
 * attached. */
static void put(builder *bd, kn_block *parent, const char *name, kn_block *child)
{
    if (!child || !parent) fail(bd, kn_last_status());
    if (bd->status) {
        kn_block_free(child);
        return;
    }
    kn_status s = name ? kn_block_add_child(parent, name, child) : kn_sequential_add(parent, child);
    if (s) {
        fail(bd, s);
        if (name) kn_block_free(child);
    }
}

/* Runs the children in order (one input, one output each). */
static kn_status chain_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                               kn_tensor **out, void *user)
{
    (void)user;
    if (n_in != 1 || n_out != 1)
        return kn_set_error(KN_ERR_ARG, "%s: takes 1 input and gives 1 output (%d, %d given)",
                         kn_block_name(b), n_in, n_out);
    kn_tensor *x = kn_tensor_ref(in[0]);
    for (int i = 0, n = kn_block_num_children(b); i < n; i++) {
        kn_tensor *y = NULL;
        kn_status s = kn_block_forward(kn_block_child_at(b, i), 1, &x, 1, &y);
        kn_tensor_unref(x);
        if (s) return s;
        x = y;
    }
    out[0] = x;
    return KN_OK;
}

/* Conv without bias, initialized as torchvision does for resnet and
 * mobilenet: kaiming_normal(fan_out, relu). */
static kn_block *conv_tv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t groups)
{
    kn_block *c = kn_nn_conv(&(kn_conv_layer){.ndim = 2,
                                              .in_channels = in,
                                              .channels = out,
                                              .kernel = {k, k},
                                              .stride = {stride, stride},
                                              .padding = {(k - 1) / 2, (k - 1) / 2},
                                              .groups = groups,
                                              .no_bias = true});
    kn_init init = {.kind = KN_INIT_KAIMING_NORMAL, .mode = KN_FAN_OUT, .nonlinearity = "relu"};
    if (c && kn_block_init_params(c, "weight", &init)) {
        kn_block_free(c);
        return NULL;
    }
    return c;
}

static kn_block *bn(int64_t n)
{
    return kn_nn_batch_norm(n, 0.1, 1e-5, KN_LAYOUT_NCHW);
}

static kn_block *finish(builder *bd, kn_block *root)
{
    if (!root) fail(bd, kn_last_status());
    if (!failed(bd)) return root;
    kn_block_free(root);
    return KN_MODEL_FAIL(bd->status, "%s", bd->msg);
}

/* ---------------------------------------------------------------- mlp, lenet */
static kn_block *make_mlp(int64_t classes, int64_t in_ch, int64_t size)
{
    builder bd = {0};
    kn_block *m = kn_nn_sequential();
    put(&bd, m, NULL, kn_nn_flatten());
    put(&bd, m, NULL, kn_nn_dense(in_ch * size * size, 256, true, KN_ACT_RELU));
    put(&bd, m, NULL, kn_nn_dense(256, 128, true, KN_ACT_RELU));
    put(&bd, m, NULL, kn_nn_dense(128, classes, true, KN_ACT_NONE));
    return finish(&bd, m);
}

/* LeNet-5 with batch norm after every conv and hidden dense layer:
 * conv(in,6,5,pad 2)-BN-relu-maxpool2, conv(6,16,5)-BN-relu-maxpool2,
 * flatten, dense 120-BN-relu, dense 84-BN-relu, dense classes. */
static kn_block *make_lenet(int64_t classes, int64_t in_ch, int64_t size)
{
    int64_t side = ((size / 2) - 4) / 2; /* after conv-pool-conv-pool */
    if (size / 2 - 4 < 2)
        return KN_MODEL_FAIL(KN_ERR_ARG, "model_new: lenet needs image_size >= 12, got %lld",
                              (long long)size);
    builder bd = {0};
    kn_block *m = kn_nn_sequential();
    put(&bd, m, NULL, kn_nn_conv2d(in_ch, 6, 5, 1, 2, KN_ACT_NONE));
    put(&bd, m, NULL, bn(6));
    put(&bd, m, NULL, kn_nn_activation(KN_ACT_RELU));
    put(&bd, m, NULL, kn_nn_max_pool(2, 2, 0, KN_LAYOUT_NCHW));
    put(&bd, m, NULL, kn_nn_conv2d(6, 16, 5, 1, 0, KN_ACT_NONE));
    put(&bd, m, NULL, bn(16));
    put(&bd, m, NULL, kn_nn_activation(KN_ACT_RELU));
    put(&bd, m, NULL, kn_nn_max_pool(2, 2, 0, KN_LAYOUT_NCHW));
    put(&bd, m, NULL, kn_nn_flatten());
    put(&bd, m, NULL, kn_nn_dense(16 * side * side, 120, true, KN_ACT_NONE));
    put(&bd, m, NULL, bn(120));
    put(&bd, m, NULL, kn_nn_activation(KN_ACT_RELU));
    put(&bd, m, NULL, kn_nn_dense(120, 84, true, KN_ACT_NONE));
    put(&bd, m, NULL, bn(84));
    put(&bd, m, NULL, kn_nn_activation(KN_ACT_RELU));
    put(&bd, m, NULL, kn_nn_dense(84, classes, true, KN_ACT_NONE));
    return finish(&bd, m);
}

/* ---------------------------------------------------------------- resnet */
/* y = relu(branch(x) + (downsample ? downsample(x) : x)), where branch runs
 * conv1, bn1, relu, conv2, bn2[, relu, conv3, bn3] (children in that order,
 * relus implied). */
static kn_status resblock_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                                  kn_tensor **out, void *user)
{
    (void)user;
    if (n_in != 1 || n_out != 1)
        return kn_set_error(KN_ERR_ARG, "%s: takes 1 input and gives 1 output", kn_block_name(b));
    static const char *const steps[] = {"conv1", "bn1", "conv2", "bn2", "conv3", "bn3"};
    bool bottleneck = kn_block_child(b, "conv3") != NULL;
    kn_tensor *x = kn_tensor_ref(in[0]);
    kn_status s = KN_OK;
    for (int i = 0; i < (bottleneck ? 6 : 4) && !s; i++) {
        kn_tensor *y = NULL;
        s = kn_block_forward(kn_block_child(b, steps[i]), 1, &x, 1, &y);
        kn_tensor_unref(x);
        x = y;
        bool relu = i == 1 || (bottleneck && i == 3); /* after bn1 (and bn2 of a bottleneck) */
        if (!s && relu) {
            y = kn_relu(x);
            kn_tensor_unref(x);
            if (!(x = y)) s = kn_last_status();
        }
    }
    kn_tensor *id = NULL;
    kn_block *down = kn_block_child(b, "downsample");
    if (!s && down)
        s = kn_block_forward(down, 1, in, 1, &id);
    else if (!s)
        id = kn_tensor_ref(in[0]);
    kn_tensor *sum = s ? NULL : kn_add(x, id);
    kn_tensor_unref(x), kn_tensor_unref(id);
    if (!sum) return kn_last_status();
    out[0] = kn_relu(sum);
    kn_tensor_unref(sum);
    return out[0] ? KN_OK : kn_last_status();
}

/* torchvision's BasicBlock (expansion 1) or Bottleneck (expansion 4, the
 * stride on the 3x3 conv). */
static kn_block *resblock(builder *bd, int64_t in, int64_t planes, int64_t stride, bool bottleneck)
{
    int64_t out = bottleneck ? planes * 4 : planes;
    kn_block *b = kn_block_new(bottleneck ? "bottleneck" : "basic_block", resblock_forward, NULL);
    if (bottleneck) {
        put(bd, b, "conv1", conv_tv(in, planes, 1, 1, 1));
        put(bd, b, "bn1", bn(planes));
        put(bd, b, "conv2", conv_tv(planes, planes, 3, stride, 1));
        put(bd, b, "bn2", bn(planes));
        put(bd, b, "conv3", conv_tv(planes, out, 1, 1, 1));
        put(bd, b, "bn3", bn(out));
    } else {
        put(bd, b, "conv1", conv_tv(in, planes, 3, stride, 1));
        put(bd, b, "bn1", bn(planes));
        put(bd, b, "conv2", conv_tv(planes, planes, 3, 1, 1));
        put(bd, b, "bn2", bn(planes));
    }
    if (stride != 1 || in != out) {
        kn_block *down = kn_nn_sequential();
        put(bd, down, NULL, conv_tv(in, out, 1, stride, 1));
        put(bd, down, NULL, bn(out));
        put(bd, b, "downsample", down);
    }
    return b;
}

static kn_block *make_resnet(const char *name, const int *layers, bool bottleneck, int64_t classes,
                             int64_t in_ch, bool cifar)
{
    builder bd = {0};
    kn_block *m = kn_block_new(name, chain_forward, NULL);
    /* stem: 3x3/1 (CIFAR) or 7x7/2 then a 3x3/2 max pool (ImageNet) */
    put(&bd, m, "conv1", cifar ? conv_tv(in_ch, 64, 3, 1, 1) : conv_tv(in_ch, 64, 7, 2, 1));
    put(&bd, m, "bn1", bn(64));
    put(&bd, m, "relu", kn_nn_activation(KN_ACT_RELU));
    if (!cifar) put(&bd, m, "maxpool", kn_nn_max_pool(3, 2, 1, KN_LAYOUT_NCHW));
    int64_t in = 64;
    for (int stage = 0; stage < 4; stage++) {
        int64_t planes = 64 << stage;
        kn_block *layer = kn_nn_sequential();
        for (int i = 0; i < layers[stage] && !failed(&bd); i++) {
            put(&bd, layer, NULL,
                resblock(&bd, in, planes, i == 0 && stage > 0 ? 2 : 1, bottleneck));
            in = bottleneck ? planes * 4 : planes;
        }
        char lname[16];
        snprintf(lname, sizeof lname, "layer%d", stage + 1);
        put(&bd, m, lname, layer);
    }
    put(&bd, m, "avgpool", kn_nn_global_avg_pool(KN_LAYOUT_NCHW, true));
    put(&bd, m, "fc", kn_nn_dense(in, classes, true, KN_ACT_NONE));
    return finish(&bd, m);
}

/* ---------------------------------------------------------------- mobilenet_v2 */
/* torchvision's _make_divisible: nearest multiple of 8, never 10% below v. */
static int64_t divisible8(double v)
{
    int64_t r = (int64_t)(v + 4) / 8 * 8;
    if (r < 8) r = 8;
    if ((double)r < 0.9 * v) r += 8;
    return r;
}

/* Conv (no bias) - BN - ReLU6 as a sequential: X.0, X.1, X.2. */
static kn_block *conv_bn_relu6(builder *bd, int64_t in, int64_t out, int64_t k, int64_t stride,
                               int64_t groups)
{
    kn_block *s = kn_nn_sequential();
    put(bd, s, NULL, conv_tv(in, out, k, stride, groups));
    put(bd, s, NULL, bn(out));
    put(bd, s, NULL, kn_nn_activation(KN_ACT_RELU6));
    return s;
}

/* y = conv(x) (+ x when the shapes allow: stride 1 and in == out). */
static kn_status inverted_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                                  kn_tensor **out, void *user)
{
    const bool *residual = user;
    if (n_in != 1 || n_out != 1)
        return kn_set_error(KN_ERR_ARG, "inverted_residual: takes 1 input and gives 1 output");
    kn_tensor *y = NULL;
    kn_status s = kn_block_forward(kn_block_child(b, "conv"), 1, in, 1, &y);
    if (s || !*residual) {
        out[0] = y;
        return s;
    }
    out[0] = kn_add(in[0], y);
    kn_tensor_unref(y);
    return out[0] ? KN_OK : kn_last_status();
}

static kn_block *inverted_residual(builder *bd, int64_t in, int64_t out, int64_t stride, int expand)
{
    static const bool yes = true, no = false;
    int64_t hidden = (int64_t)llround((double)in * expand);
    kn_block *b = kn_block_new("inverted_residual", inverted_forward,
                               (void *)(stride == 1 && in == out ? &yes : &no));
    kn_block *conv = kn_nn_sequential();
    if (expand != 1) put(bd, conv, NULL, conv_bn_relu6(bd, in, hidden, 1, 1, 1));
    put(bd, conv, NULL, conv_bn_relu6(bd, hidden, hidden, 3, stride, hidden));
    put(bd, conv, NULL, conv_tv(hidden, out, 1, 1, 1));
    put(bd, conv, NULL, bn(out));
    put(bd, b, "conv", conv);
    return b;
}

static kn_block *make_mobilenet_v2(int64_t classes, int64_t in_ch, double width, double dropout)
{
    static const int settings[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                                       {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    builder bd = {0};
    int64_t in = divisible8(32 * width), last = divisible8(1280 * (width > 1 ? width : 1.0));
    kn_block *m = kn_block_new("mobilenet_v2", chain_forward, NULL);
    kn_block *features = kn_nn_sequential();
    put(&bd, features, NULL, conv_bn_relu6(&bd, in_ch, in, 3, 2, 1));
    for (int g = 0; g < 7 && !failed(&bd); g++) {
        int64_t out = divisible8(settings[g][1] * width);
        for (int i = 0; i < settings[g][2] && !failed(&bd); i++) {
            put(&bd, features, NULL,
                inverted_residual(&bd, in, out, i == 0 ? settings[g][3] : 1, settings[g][0]));
            in = out;
        }
    }
    put(&bd, features, NULL, conv_bn_relu6(&bd, in, last, 1, 1, 1));
    put(&bd, m, "features", features);
    put(&bd, m, "avgpool", kn_nn_global_avg_pool(KN_LAYOUT_NCHW, true));
    kn_block *classifier = kn_nn_sequential();
    put(&bd, classifier, NULL, kn_nn_dropout(dropout));
    kn_block *fc = kn_nn_dense(last, classes, true, KN_ACT_NONE);
    if (fc &&
        (kn_block_init_params(fc, "weight", &(kn_init){.kind = KN_INIT_NORMAL, .std = 0.01}) ||
         kn_block_init_params(fc, "bias", &(kn_init){.kind = KN_INIT_ZEROS}))) {
        kn_block_free(fc);
        fc = NULL;
    }
    put(&bd, classifier, NULL, fc);
    put(&bd, m, "classifier", classifier);
    return finish(&bd, m);
}

/* ---------------------------------------------------------------- the table */
static const char *const model_names[] = {"mlp",
                                          "lenet",
                                          "resnet18",
                                          "resnet34",
                                          "resnet50",
                                          "mobilenet_v2",
                                          "transformer_encoder",
                                          "lstm_classifier",
                                          NULL};

const char *const *kn_model_names(void)
{
    return model_names;
}

static kn_block *unknown_model(const char *name)
{
    char list[256] = "";
    for (int i = 0; model_names[i]; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, model_names[i], sizeof list - strlen(list) - 1);
    }
    return KN_MODEL_FAIL(KN_ERR_ARG, "model_new: unknown model '%s' (known: %s)", name, list);
}

kn_block *kn_model_new(const char *name, const kn_model_config *cfg)
{
    static const kn_model_config defaults = {0};
    if (!name) return KN_MODEL_FAIL(KN_ERR_ARG, "model_new: name is NULL");
    if (!cfg) cfg = &defaults;
    if (!strcmp(name, "transformer_encoder")) return kn__model_transformer_encoder(cfg);
    if (!strcmp(name, "lstm_classifier")) return kn__model_lstm_classifier(cfg);
    bool small = !strcmp(name, "mlp") || !strcmp(name, "lenet");
    bool resnet = !strncmp(name, "resnet", 6);
    if (cfg->num_classes < 0 || cfg->in_channels < 0 || cfg->image_size < 0 ||
        !(cfg->width_mult >= 0 && cfg->width_mult < 100) ||
        !(cfg->dropout >= 0 && cfg->dropout < 1))
        return KN_MODEL_FAIL(KN_ERR_ARG,
                              "model_new: '%s': num_classes %lld, in_channels %lld and "
                              "image_size %lld must be >= 0, width_mult %g in [0, 100) and "
                              "dropout %g in [0, 1)",
                              name, (long long)cfg->num_classes, (long long)cfg->in_channels,
                              (long long)cfg->image_size, cfg->width_mult, cfg->dropout);
    int64_t classes = cfg->num_classes                       ? cfg->num_classes
                      : small || (resnet && cfg->cifar_stem) ? 10
                                                             : 1000;
    int64_t in_ch = cfg->in_channels ? cfg->in_channels : small ? 1 : 3;
    int64_t size = cfg->image_size             ? cfg->image_size
                   : small                     ? 28
                   : resnet && cfg->cifar_stem ? 32
                                               : 224;
    if (size > 4096 || in_ch > 65536)
        return KN_MODEL_FAIL(KN_ERR_ARG,
                              "model_new: '%s': image_size %lld or in_channels %lld is too large",
                              name, (long long)size, (long long)in_ch);
    static const int r18[4] = {2, 2, 2, 2}, r34[4] = {3, 4, 6, 3};
    if (!strcmp(name, "mlp")) return make_mlp(classes, in_ch, size);
    if (!strcmp(name, "lenet")) return make_lenet(classes, in_ch, size);
    if (!strcmp(name, "resnet18"))
        return make_resnet(name, r18, false, classes, in_ch, cfg->cifar_stem);
    if (!strcmp(name, "resnet34"))
        return make_resnet(name, r34, false, classes, in_ch, cfg->cifar_stem);
    if (!strcmp(name, "resnet50"))
        return make_resnet(name, r34, true, classes, in_ch, cfg->cifar_stem);
    if (!strcmp(name, "mobilenet_v2"))
        return make_mobilenet_v2(classes, in_ch, cfg->width_mult ? cfg->width_mult : 1.0,
                                 cfg->dropout ? cfg->dropout : 0.2);
    return unknown_model(name);
}
