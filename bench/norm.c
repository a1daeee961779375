/* norm.c — normalization, softmax, pooling and reduction throughput on the
 * shapes a CNN and a Transformer spend time in: best of several repeats, in
 * milliseconds per call. Prints "case ms" lines; bench/norm.py runs the same
 * cases in PyTorch (2 threads) and prints both with the ratio.
 * Usage: bench_norm [filter]   (runs the cases whose name contains filter) */
#include <kiln.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

typedef struct bcase {
    const char *name;
    kn_tensor *(*run)(struct bcase *c); /* returns a tensor to release (or NULL on error) */
    kn_tensor *x, *g, *b, *rm, *rv, *gy;
    int reps;
} bcase;

static kn_tensor *layer_norm(bcase *c)
{
    return kn_layer_norm(c->x, 1, c->g, c->b, 1e-5);
}
static kn_tensor *layer_norm_fb(bcase *c)
{
    kn_autograd_record(true);
    kn_tensor *y = kn_layer_norm(c->x, 1, c->g, c->b, 1e-5);
    kn_autograd_record(false);
    if (y && kn_backward(y, c->gy)) {
        kn_tensor_unref(y);
        return NULL;
    }
    kn_tensor_zero_grad(c->x), kn_tensor_zero_grad(c->g), kn_tensor_zero_grad(c->b);
    return y;
}
static kn_tensor *softmax(bcase *c)
{
    return kn_softmax(c->x, -1);
}
static kn_tensor *log_softmax(bcase *c)
{
    return kn_log_softmax(c->x, -1);
}
static kn_tensor *softmax_ax1(bcase *c)
{
    return kn_softmax(c->x, 1);
}
static kn_tensor *bn_train_nchw(bcase *c)
{
    return kn_batch_norm(c->x, c->g, c->b, c->rm, c->rv, true, 0.1, 1e-5, KN_LAYOUT_NCHW);
}
static kn_tensor *bn_train_nhwc(bcase *c)
{
    return kn_batch_norm(c->x, c->g, c->b, c->rm, c->rv, true, 0.1, 1e-5, KN_LAYOUT_NHWC);
}
static kn_tensor *bn_eval_nchw(bcase *c)
{
    return kn_batch_norm(c->x, c->g, c->b, c->rm, c->rv, false, 0.1, 1e-5, KN_LAYOUT_NCHW);
}
static kn_tensor *bn_eval_nhwc(bcase *c)
{
    return kn_batch_norm(c->x, c->g, c->b, c->rm, c->rv, false, 0.1, 1e-5, KN_LAYOUT_NHWC);
}
static kn_tensor *bn_train_fb(bcase *c, kn_layout l)
{
    kn_autograd_record(true);
    kn_tensor *y = kn_batch_norm(c->x, c->g, c->b, c->rm, c->rv, true, 0.1, 1e-5, l);
    kn_autograd_record(false);
    if (y && kn_backward(y, c->gy)) {
        kn_tensor_unref(y);
        return NULL;
    }
    kn_tensor_zero_grad(c->x), kn_tensor_zero_grad(c->g), kn_tensor_zero_grad(c->b);
    return y;
}
static kn_tensor *bn_train_fb_nchw(bcase *c)
{
    return bn_train_fb(c, KN_LAYOUT_NCHW);
}
static kn_tensor *bn_train_fb_nhwc(bcase *c)
{
    return bn_train_fb(c, KN_LAYOUT_NHWC);
}
static kn_tensor *pool(bcase *c, bool max, kn_layout l)
{
    kn_pool_params p = {.kernel = {3, 3},
                        .stride = {2, 2},
                        .pad_begin = {1, 1},
                        .pad_end = {1, 1},
                        .count_include_pad = true,
                        .layout = l};
    return max ? kn_max_pool(c->x, &p) : kn_avg_pool(c->x, &p);
}
static kn_tensor *maxpool_nchw(bcase *c)
{
    return pool(c, true, KN_LAYOUT_NCHW);
}
static kn_tensor *maxpool_nhwc(bcase *c)
{
    return pool(c, true, KN_LAYOUT_NHWC);
}
static kn_tensor *avgpool_nchw(bcase *c)
{
    return pool(c, false, KN_LAYOUT_NCHW);
}
static kn_tensor *avgpool_nhwc(bcase *c)
{
    return pool(c, false, KN_LAYOUT_NHWC);
}
static kn_tensor *maxpool_fb(bcase *c, kn_layout l)
{
    kn_autograd_record(true);
    kn_tensor *y = pool(c, true, l);
    kn_autograd_record(false);
    if (y && kn_backward(y, c->gy)) {
        kn_tensor_unref(y);
        return NULL;
    }
    kn_tensor_zero_grad(c->x);
    return y;
}
static kn_tensor *maxpool_fb_nchw(bcase *c)
{
    return maxpool_fb(c, KN_LAYOUT_NCHW);
}
static kn_tensor *maxpool_fb_nhwc(bcase *c)
{
    return maxpool_fb(c, KN_LAYOUT_NHWC);
}
static kn_tensor *gap_nchw(bcase *c)
{
    return kn_global_avg_pool(c->x, KN_LAYOUT_NCHW);
}
static kn_tensor *gap_nhwc(bcase *c)
{
    return kn_global_avg_pool(c->x, KN_LAYOUT_NHWC);
}
static kn_tensor *sum_last(bcase *c)
{
    return kn_sum(c->x, 1, (const int[]){-1}, false);
}
static kn_tensor *sum_all(bcase *c)
{
    return kn_sum(c->x, 0, NULL, false);
}
static kn_tensor *max_last(bcase *c)
{
    return kn_max(c->x, 1, (const int[]){-1}, false);
}
static kn_tensor *mean_rows(bcase *c)
{
    return kn_mean(c->x, 1, (const int[]){0}, false);
}
static kn_tensor *var_last(bcase *c)
{
    return kn_var(c->x, 1, (const int[]){-1}, true, false);
}

static double time_case(bcase *c)
{
    double best = 1e30;
    for (int r = 0; r < c->reps; r++) {
        double t0 = now_ms();
        kn_tensor *y = c->run(c);
        double dt = now_ms() - t0;
        if (!y) {
            fprintf(stderr, "bench_norm: %s failed: %s\n", c->name, kn_last_error());
            return -1;
        }
        kn_tensor_unref(y);
        if (dt < best) best = dt;
    }
    return best;
}

static kn_tensor *randn(int ndim, const int64_t *shape)
{
    return kn_tensor_rand_normal(KN_F32, ndim, shape, 0, 1);
}

/* x gets requires_grad (for the fwd+bwd cases); gy: ones of the output shape. */
static void make_grad(bcase *c, kn_tensor *y)
{
    kn_tensor_set_requires_grad(c->x, true);
    if (c->g) kn_tensor_set_requires_grad(c->g, true);
    if (c->b) kn_tensor_set_requires_grad(c->b, true);
    c->gy = kn_tensor_rand_normal(KN_F32, kn_tensor_ndim(y), kn_tensor_shape(y), 0, 1);
}

int main(int argc, char **argv)
{
    const char *filter = argc > 1 ? argv[1] : "";
    kn_manual_seed(1);
    int64_t c64[1] = {64}, c768[1] = {768}, c1024[1] = {1024};
    int64_t s_ln1[2] = {128, 768}, s_ln2[2] = {512, 1024}, s_att[3] = {12, 128, 128},
            s_cls[2] = {1, 1000}, s_bn[4] = {16, 64, 56, 56}, s_bnh[4] = {16, 56, 56, 64},
            s_pool[4] = {16, 64, 112, 112}, s_poolh[4] = {16, 112, 112, 64},
            s_gap[4] = {16, 2048, 7, 7}, s_gaph[4] = {16, 7, 7, 2048}, s_red[2] = {4096, 1024};
#define BN_PARAMS                                                                                  \
    .g = randn(1, c64), .b = randn(1, c64), .rm = kn_tensor_zeros(KN_F32, 1, c64),                 \
    .rv = kn_tensor_ones(KN_F32, 1, c64)
    bcase cases[] = {
        {.name = "layer_norm_128x768",
         .run = layer_norm,
         .x = randn(2, s_ln1),
         .g = randn(1, c768),
         .b = randn(1, c768)},
        {.name = "layer_norm_512x1024",
         .run = layer_norm,
         .x = randn(2, s_ln2),
         .g = randn(1, c1024),
         .b = randn(1, c1024)},
        {.name = "layer_norm_fwd_bwd_512x1024",
         .run = layer_norm_fb,
         .x = randn(2, s_ln2),
         .g = randn(1, c1024),
         .b = randn(1, c1024)},
        {.name = "softmax_12x128x128", .run = softmax, .x = randn(3, s_att)},
        {.name = "log_softmax_12x128x128", .run = log_softmax, .x = randn(3, s_att)},
        {.name = "softmax_axis1_12x128x128", .run = softmax_ax1, .x = randn(3, s_att)},
        {.name = "softmax_1x1000", .run = softmax, .x = randn(2, s_cls)},
        {.name = "bn_train_nchw_16x64x56x56", .run = bn_train_nchw, .x = randn(4, s_bn), BN_PARAMS},
        {.name = "bn_train_nhwc_16x64x56x56",
         .run = bn_train_nhwc,
         .x = randn(4, s_bnh),
         BN_PARAMS},
        {.name = "bn_eval_nchw_16x64x56x56", .run = bn_eval_nchw, .x = randn(4, s_bn), BN_PARAMS},
        {.name = "bn_eval_nhwc_16x64x56x56", .run = bn_eval_nhwc, .x = randn(4, s_bnh), BN_PARAMS},
        {.name = "bn_train_fwd_bwd_nchw_16x64x56x56",
         .run = bn_train_fb_nchw,
         .x = randn(4, s_bn),
         BN_PARAMS},
        {.name = "bn_train_fwd_bwd_nhwc_16x64x56x56",
         .run = bn_train_fb_nhwc,
         .x = randn(4, s_bnh),
         BN_PARAMS},
        {.name = "maxpool3s2_nchw_16x64x112x112", .run = maxpool_nchw, .x = randn(4, s_pool)},
        {.name = "maxpool3s2_nhwc_16x64x112x112", .run = maxpool_nhwc, .x = randn(4, s_poolh)},
        {.name = "avgpool3s2_nchw_16x64x112x112", .run = avgpool_nchw, .x = randn(4, s_pool)},
        {.name = "avgpool3s2_nhwc_16x64x112x112", .run = avgpool_nhwc, .x = randn(4, s_poolh)},
        {.name = "maxpool_fwd_bwd_nchw_16x64x112x112",
         .run = maxpool_fb_nchw,
         .x = randn(4, s_pool)},
        {.name = "maxpool_fwd_bwd_nhwc_16x64x112x112",
         .run = maxpool_fb_nhwc,
         .x = randn(4, s_poolh)},
        {.name = "global_avg_pool_nchw_16x2048x7x7", .run = gap_nchw, .x = randn(4, s_gap)},
        {.name = "global_avg_pool_nhwc_16x2048x7x7", .run = gap_nhwc, .x = randn(4, s_gaph)},
        {.name = "sum_last_4096x1024", .run = sum_last, .x = randn(2, s_red)},
        {.name = "sum_all_4096x1024", .run = sum_all, .x = randn(2, s_red)},
        {.name = "max_last_4096x1024", .run = max_last, .x = randn(2, s_red)},
        {.name = "mean_axis0_4096x1024", .run = mean_rows, .x = randn(2, s_red)},
        {.name = "var_last_4096x1024", .run = var_last, .x = randn(2, s_red)},
    };
    printf("# kiln norm/softmax/pool/reduce, %d threads, isa %s, ms per call (best of repeats)\n",
           kn_get_num_threads(), kn_isa_name(kn_isa_max()));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bcase *c = &cases[i];
        if (strstr(c->name, filter)) {
            if (strstr(c->name, "fwd_bwd")) {
                kn_tensor *y = c->run == maxpool_fb_nchw   ? maxpool_nchw(c)
                               : c->run == maxpool_fb_nhwc ? maxpool_nhwc(c)
                                                           : kn_tensor_ref(c->x);
                make_grad(c, y);
                kn_tensor_unref(y);
            }
            c->reps = strstr(c->name, "fwd_bwd") || strstr(c->name, "112") ? 10 : 30;
            printf("%s %.4f\n", c->name, time_case(c));
            fflush(stdout);
        }
        kn_tensor_unref(c->x), kn_tensor_unref(c->g), kn_tensor_unref(c->b);
        kn_tensor_unref(c->rm), kn_tensor_unref(c->rv), kn_tensor_unref(c->gy);
    }
    return 0;
}
