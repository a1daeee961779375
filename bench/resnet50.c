/* resnet50.c — ResNet-50 (torchvision layout, random weights) at 224×224,
 * f32 NCHW: eager vs hybridized latency, and the memory plan of the
 * inference graph (peak arena bytes vs the sum of all intermediate tensors).
 * Prints "key value" lines; bench/resnet50.py adds PyTorch beside them.
 * Usage: bench_resnet50 [batch] [iterations] */
#include <kiln.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* graph->plan internals for the memory figures */
#include "graph/graph.h"

typedef struct net {
    kn_graph *g; /* tracing: parameters become graph params; else NULL */
    kn_tensor *kept[2000]; /* intermediates of one build, released after it */
    int n_kept;
    int n_params;
    kn_tensor *params[400]; /* concrete weights, created on first build */
    int cursor;
    bool failed;
} net;

/* The next parameter: created once (seeded), reused by later builds. */
static kn_tensor *param(net *n, int ndim, const int64_t *shape, double std, double fill)
{
    if (n->cursor == n->n_params) {
        n->params[n->n_params++] = std > 0 ? kn_tensor_rand_normal(KN_F32, ndim, shape, 0, std)
                                           : kn_tensor_full(KN_F32, ndim, shape, fill);
    }
    kn_tensor *t = n->params[n->cursor++];
    if (!n->g) return t;
    char name[32];
    snprintf(name, sizeof name, "p%d", n->cursor - 1);
    kn_tensor *p = kn_graph_param(n->g, name, t);
    if (p) n->kept[n->n_kept++] = p;
    return p;
}

static kn_tensor *keep(net *n, kn_tensor *t)
{
    if (!t) n->failed = true;
    else n->kept[n->n_kept++] = t;
    return t;
}

static void release(net *n)
{
    while (n->n_kept > 0)
        kn_tensor_unref(n->kept[--n->n_kept]);
}

static kn_tensor *conv_bn(net *n, kn_tensor *x, int64_t cin, int64_t cout, int64_t k, int64_t stride,
                          bool relu)
{
    int64_t ws[4] = {cout, cin, k, k}, cs[1] = {cout};
    int64_t pad = k / 2;
    kn_conv_params p = {.stride = {stride, stride}, .pad_begin = {pad, pad}, .pad_end = {pad, pad}};
    kn_tensor *w = param(n, 4, ws, 0.5 / (double)(cin * k * k), 0);
    kn_tensor *y = keep(n, kn_conv2d(x, w, NULL, &p));
    kn_tensor *gamma = param(n, 1, cs, 0, 1), *beta = param(n, 1, cs, 0, 0);
    kn_tensor *mean = param(n, 1, cs, 0, 0), *var = param(n, 1, cs, 0, 1);
    y = keep(n, kn_batch_norm(y, gamma, beta, mean, var, false, 0.1, 1e-5, KN_LAYOUT_NCHW));
    return relu ? keep(n, kn_relu(y)) : y;
}

static kn_tensor *bottleneck(net *n, kn_tensor *x, int64_t cin, int64_t width, int64_t stride)
{
    int64_t cout = width * 4;
    kn_tensor *y = conv_bn(n, x, cin, width, 1, 1, true);
    y = conv_bn(n, y, width, width, 3, stride, true);
    y = conv_bn(n, y, width, cout, 1, 1, false);
    kn_tensor *skip = stride != 1 || cin != cout ? conv_bn(n, x, cin, cout, 1, stride, false) : x;
    return keep(n, kn_relu(keep(n, kn_add(y, skip))));
}

static kn_tensor *resnet50(net *n, kn_tensor *x)
{
    static const int blocks[4] = {3, 4, 6, 3};
    n->cursor = 0;
    kn_tensor *y = conv_bn(n, x, 3, 64, 7, 2, true);
    kn_pool_params mp = {.kernel = {3, 3}, .stride = {2, 2}, .pad_begin = {1, 1}, .pad_end = {1, 1}};
    y = keep(n, kn_max_pool(y, &mp));
    int64_t cin = 64;
    for (int stage = 0; stage < 4; stage++) {
        int64_t width = 64 << stage;
        for (int b = 0; b < blocks[stage]; b++) {
            y = bottleneck(n, y, cin, width, b == 0 && stage > 0 ? 2 : 1);
            cin = width * 4;
        }
    }
    y = keep(n, kn_flatten(keep(n, kn_global_avg_pool(y, KN_LAYOUT_NCHW)), 1, -1));
    int64_t fw[2] = {1000, 2048}, fb[1] = {1000};
    kn_tensor *w = param(n, 2, fw, 0.01, 0), *b = param(n, 1, fb, 0, 0);
    return kn_linear(y, w, b);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int64_t batch = argc > 1 ? atoll(argv[1]) : 1;
    int iters = argc > 2 ? atoi(argv[2]) : 5;
    int64_t xs[4] = {batch, 3, 224, 224};
    kn_manual_seed(1);
    kn_tensor *x = kn_tensor_rand_normal(KN_F32, 4, xs, 0, 1);
    static net n;
    double t[64];
    if (iters > 64) iters = 64;
    printf("# ResNet-50 f32 NCHW batch %lld, %d threads, isa %s\n", (long long)batch, kn_get_num_threads(),
           kn_isa_name(kn_isa_max()));
    for (int i = 0; i <= iters; i++) { /* eager; run 0 creates the weights and warms up */
        double t0 = now_ms();
        kn_tensor *y = resnet50(&n, x);
        if (i) t[i - 1] = now_ms() - t0;
        release(&n);
        if (!y) {
            fprintf(stderr, "resnet50: %s\n", kn_last_error());
            return 1;
        }
        kn_tensor_unref(y);
    }
    qsort(t, (size_t)iters, sizeof t[0], cmp_double);
    printf("eager_ms %.2f\n", t[iters / 2]);
    n.g = kn_graph_new();
    kn_tensor *sx = kn_graph_input(n.g, "x", KN_F32, 4, xs);
    kn_tensor *sy = resnet50(&n, sx);
    if (!sy || kn_graph_output(n.g, sy) || kn_graph_compile(n.g, KN_GRAPH_INFERENCE)) {
        fprintf(stderr, "resnet50: %s\n", kn_last_error());
        return 1;
    }
    release(&n);
    kn_tensor_unref(sx), kn_tensor_unref(sy);
    size_t all = 0;
    for (int32_t v = 0; v < n.g->n_values; v++)
        if (n.g->values[v].kind == KN_VALUE_NODE)
            all += (size_t)kn__shape_numel(n.g->values[v].ndim, n.g->values[v].shape) *
                   kn_dtype_size(n.g->values[v].dtype);
    printf("graph_nodes %d\n", kn_graph_num_nodes(n.g));
    printf("intermediates_mb %.1f\narena_mb %.1f\narena_share %.1f%%\n", all / 1048576.0,
           n.g->plan->arena_bytes / 1048576.0, 100.0 * (double)n.g->plan->arena_bytes / (double)all);
    if (getenv("KILN_PROFILE")) kn_graph_set_profiling(n.g, true);
    for (int i = 0; i <= iters; i++) {
        kn_tensor *y = NULL;
        double t0 = now_ms();
        if (kn_graph_run(n.g, 1, &x, 1, &y)) {
            fprintf(stderr, "resnet50: %s\n", kn_last_error());
            return 1;
        }
        if (i) t[i - 1] = now_ms() - t0;
        kn_tensor_unref(y);
    }
    qsort(t, (size_t)iters, sizeof t[0], cmp_double);
    printf("hybridized_ms %.2f\n", t[iters / 2]);
    if (getenv("KILN_PROFILE")) kn_graph_print_profile(n.g, stdout);
    kn_graph_free(n.g);
    for (int i = 0; i < n.n_params; i++)
        kn_tensor_unref(n.params[i]);
    kn_tensor_unref(x);
    return 0;
}
