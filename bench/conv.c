/* conv.c — every distinct convolution of ResNet-50 (v1.5) and MobileNetV2 at
 * 224×224 (inference shapes), kiln's kn_conv2d beside oneDNN's convolution
 * primitive with the same plain activation format (nchw or nhwc tags), in
 * ms (best of several repeats) and their ratio, plus each network's sum
 * (each distinct layer weighted by how often the network runs it).
 * oneDNN's weights use format_tag_any (its preferred blocked layout,
 * reordered once outside the timing, as an inference engine would); with
 * --dnnl-any its activations may be blocked too (then the comparison is
 * against oneDNN's best case, not a same-format one).
 * Usage: bench_conv [--net resnet50|mobilenetv2|all] [--batch 1,16]
 *        [--dtype f32,bf16] [--layout nhwc,nchw] [--reps N] [--dnnl-any]
 *        [--layers N]  (only the first N distinct layers of each net)
 *        [--only SUBSTRING] (layers whose name contains it) [--no-dnnl]
 *        [--dnnl-amx] (let oneDNN use AMX; by default it is capped at
 *        avx512_core_bf16 like kiln) */
#include <kiln.h>

#include "kernels/conv_fast.h" /* kn__conv2d_fused: the graph layer's entry */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef KILN_BENCH_DNNL
#include <dnnl.h>
#endif

typedef struct layer {
    const char *name;
    int cin, cout, hw, k, s, groups, count;
} layer;

/* ResNet-50 v1.5 (stride on the 3×3): 53 convolutions. */
static const layer resnet50[] = {
    {"conv1 7x7/2", 3, 64, 224, 7, 2, 1, 1},
    {"l1 1x1 64-64", 64, 64, 56, 1, 1, 1, 1},
    {"l1 3x3 64", 64, 64, 56, 3, 1, 1, 3},
    {"l1 1x1 64-256", 64, 256, 56, 1, 1, 1, 4},
    {"l1 1x1 256-64", 256, 64, 56, 1, 1, 1, 2},
    {"l2 1x1 256-128", 256, 128, 56, 1, 1, 1, 1},
    {"l2 3x3/2 128", 128, 128, 56, 3, 2, 1, 1},
    {"l2 1x1 128-512", 128, 512, 28, 1, 1, 1, 4},
    {"l2 1x1/2 256-512", 256, 512, 56, 1, 2, 1, 1},
    {"l2 1x1 512-128", 512, 128, 28, 1, 1, 1, 3},
    {"l2 3x3 128", 128, 128, 28, 3, 1, 1, 3},
    {"l3 1x1 512-256", 512, 256, 28, 1, 1, 1, 1},
    {"l3 3x3/2 256", 256, 256, 28, 3, 2, 1, 1},
    {"l3 1x1 256-1024", 256, 1024, 14, 1, 1, 1, 6},
    {"l3 1x1/2 512-1024", 512, 1024, 28, 1, 2, 1, 1},
    {"l3 1x1 1024-256", 1024, 256, 14, 1, 1, 1, 5},
    {"l3 3x3 256", 256, 256, 14, 3, 1, 1, 5},
    {"l4 1x1 1024-512", 1024, 512, 14, 1, 1, 1, 1},
    {"l4 3x3/2 512", 512, 512, 14, 3, 2, 1, 1},
    {"l4 1x1 512-2048", 512, 2048, 7, 1, 1, 1, 3},
    {"l4 1x1/2 1024-2048", 1024, 2048, 14, 1, 2, 1, 1},
    {"l4 1x1 2048-512", 2048, 512, 7, 1, 1, 1, 2},
    {"l4 3x3 512", 512, 512, 7, 3, 1, 1, 2},
};

/* MobileNetV2 (width 1.0): 52 convolutions, 17 of them depthwise. */
static const layer mobilenetv2[] = {
    {"stem 3x3/2 3-32", 3, 32, 224, 3, 2, 1, 1},
    {"dw 3x3 32 @112", 32, 32, 112, 3, 1, 32, 1},
    {"pw 32-16 @112", 32, 16, 112, 1, 1, 1, 1},
    {"pw 16-96 @112", 16, 96, 112, 1, 1, 1, 1},
    {"dw 3x3/2 96 @112", 96, 96, 112, 3, 2, 96, 1},
    {"pw 96-24 @56", 96, 24, 56, 1, 1, 1, 1},
    {"pw 24-144 @56", 24, 144, 56, 1, 1, 1, 2},
    {"dw 3x3 144 @56", 144, 144, 56, 3, 1, 144, 1},
    {"pw 144-24 @56", 144, 24, 56, 1, 1, 1, 1},
    {"dw 3x3/2 144 @56", 144, 144, 56, 3, 2, 144, 1},
    {"pw 144-32 @28", 144, 32, 28, 1, 1, 1, 1},
    {"pw 32-192 @28", 32, 192, 28, 1, 1, 1, 3},
    {"dw 3x3 192 @28", 192, 192, 28, 3, 1, 192, 2},
    {"pw 192-32 @28", 192, 32, 28, 1, 1, 1, 2},
    {"dw 3x3/2 192 @28", 192, 192, 28, 3, 2, 192, 1},
    {"pw 192-64 @14", 192, 64, 14, 1, 1, 1, 1},
    {"pw 64-384 @14", 64, 384, 14, 1, 1, 1, 4},
    {"dw 3x3 384 @14", 384, 384, 14, 3, 1, 384, 4},
    {"pw 384-64 @14", 384, 64, 14, 1, 1, 1, 3},
    {"pw 384-96 @14", 384, 96, 14, 1, 1, 1, 1},
    {"pw 96-576 @14", 96, 576, 14, 1, 1, 1, 3},
    {"dw 3x3 576 @14", 576, 576, 14, 3, 1, 576, 2},
    {"pw 576-96 @14", 576, 96, 14, 1, 1, 1, 2},
    {"dw 3x3/2 576 @14", 576, 576, 14, 3, 2, 576, 1},
    {"pw 576-160 @7", 576, 160, 7, 1, 1, 1, 1},
    {"pw 160-960 @7", 160, 960, 7, 1, 1, 1, 3},
    {"dw 3x3 960 @7", 960, 960, 7, 3, 1, 960, 3},
    {"pw 960-160 @7", 960, 160, 7, 1, 1, 1, 2},
    {"pw 960-320 @7", 960, 320, 7, 1, 1, 1, 1},
    {"pw 320-1280 @7", 320, 1280, 7, 1, 1, 1, 1},
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Repeats: at least `reps` timed runs after a warm-up, and more (up to 100)
 * until 150 ms were spent — on a loaded machine the best of many short runs
 * is the figure that is not someone else's. */
static int reps = 5;
static bool more_runs(int done, double t_start)
{
    return done <= reps || (done < 100 && now_ms() - t_start < 150);
}

static bool opt_any, no_dnnl, dnnl_amx;
static const char *only; /* substring filter on layer names */

static int out_hw(const layer *l)
{
    int pad = l->k / 2;
    return (l->hw + 2 * pad - l->k) / l->s + 1;
}

/* ---------------------------------------------------------------- kiln */
static double time_kiln(const layer *l, int batch, kn_dtype dt, bool nhwc, double *eager)
{
    int64_t xs[4] = {batch, l->cin, l->hw, l->hw};
    if (nhwc) xs[1] = l->hw, xs[3] = l->cin;
    int64_t ws[4] = {l->cout, l->cin / l->groups, l->k, l->k};
    kn_manual_seed(1);
    kn_tensor *x = kn_tensor_rand_uniform(dt, 4, xs, -1, 1);
    kn_tensor *w = kn_tensor_rand_uniform(dt, 4, ws, -0.1, 0.1);
    int pad = l->k / 2;
    kn_conv_params p = {.stride = {l->s, l->s},
                        .pad_begin = {pad, pad},
                        .pad_end = {pad, pad},
                        .groups = l->groups,
                        .layout = nhwc ? KN_LAYOUT_NHWC : KN_LAYOUT_NCHW};
    /* eager kn_conv2d allocates its output on every call; the graph layer's
     * entry writes into a planned buffer: time both */
    double best = 1e30;
    kn_tensor *out = kn_conv2d(x, w, NULL, &p);
    /* the graph executor packs a node's constant weights once */
    kn_conv_packed *pk = kn__conv2d_prepack(x, w, &p, dt);
    double ts = now_ms();
    for (int r = 0; out && more_runs(r, ts); r++) {
        double t0 = now_ms();
        kn_tensor *y = kn__conv2d_fused(x, w, &p, NULL, dt, out, pk);
        double t = now_ms() - t0;
        kn_tensor_unref(y);
        if (r && t < best) best = t; /* r == 0 is the warm-up */
    }
    kn__conv_packed_free(pk);
    double best_eager = 1e30;
    ts = now_ms();
    for (int r = 0; out && more_runs(r, ts); r++) {
        double t0 = now_ms();
        kn_tensor *y = kn_conv2d(x, w, NULL, &p);
        double t = now_ms() - t0;
        kn_tensor_unref(y);
        if (r && t < best_eager) best_eager = t;
    }
    if (!out) {
        fprintf(stderr, "kiln conv failed: %s\n", kn_last_error());
        best = best_eager = -1;
    }
    *eager = best_eager;
    kn_tensor_unref(out);
    kn_tensor_unref(x), kn_tensor_unref(w);
    return best;
}

/* --------------------------------------------------------------- oneDNN */
#ifdef KILN_BENCH_DNNL
static dnnl_engine_t eng;
static dnnl_stream_t strm;
static const char *last_impl = "";

#define DN(call)                                                                                   \
    do {                                                                                           \
        dnnl_status_t st_ = (call);                                                                \
        if (st_ != dnnl_success) {                                                                 \
            fprintf(stderr, "oneDNN: %s failed (%d)\n", #call, (int)st_);                          \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

static double time_dnnl(const layer *l, int batch, kn_dtype kdt, bool nhwc)
{
    dnnl_data_type_t dt = kdt == KN_BF16 ? dnnl_bf16 : dnnl_f32;
    int oh = out_hw(l), pad = l->k / 2, G = l->groups;
    dnnl_dims_t src_d = {batch, l->cin, l->hw, l->hw}, dst_d = {batch, l->cout, oh, oh};
    dnnl_dims_t wei_g = {G, l->cout / G, l->cin / G, l->k, l->k};
    dnnl_dims_t wei_1 = {l->cout, l->cin, l->k, l->k};
    dnnl_dims_t strides = {l->s, l->s}, dil = {0, 0}, padl = {pad, pad}, padr = {pad, pad};
    dnnl_format_tag_t tag = nhwc ? dnnl_nhwc : dnnl_nchw;
    dnnl_memory_desc_t src_md, dst_md, wei_md, user_wei_md;
    DN(dnnl_memory_desc_init_by_tag(&src_md, 4, src_d, dt, opt_any ? dnnl_format_tag_any : tag));
    DN(dnnl_memory_desc_init_by_tag(&dst_md, 4, dst_d, dt, opt_any ? dnnl_format_tag_any : tag));
    int wnd = G > 1 ? 5 : 4;
    const int64_t *wd = G > 1 ? wei_g : wei_1;
    DN(dnnl_memory_desc_init_by_tag(&wei_md, wnd, wd, dt, dnnl_format_tag_any));
    DN(dnnl_memory_desc_init_by_tag(&user_wei_md, wnd, wd, dt, G > 1 ? dnnl_goihw : dnnl_oihw));
    dnnl_convolution_desc_t cd;
    DN(dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference,
                                                  dnnl_convolution_direct, &src_md, &wei_md, NULL,
                                                  &dst_md, strides, dil, padl, padr));
    dnnl_primitive_desc_t pd;
    DN(dnnl_primitive_desc_create(&pd, &cd, NULL, eng, NULL));
    const char *impl = "";
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    last_impl = impl;
    const dnnl_memory_desc_t *s_md = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *w_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *d_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    dnnl_memory_t src, wei, dst, uwei;
    DN(dnnl_memory_create(&src, s_md, eng, DNNL_MEMORY_ALLOCATE));
    DN(dnnl_memory_create(&wei, w_md, eng, DNNL_MEMORY_ALLOCATE));
    DN(dnnl_memory_create(&dst, d_md, eng, DNNL_MEMORY_ALLOCATE));
    DN(dnnl_memory_create(&uwei, &user_wei_md, eng, DNNL_MEMORY_ALLOCATE));
    /* fill src and the user weights with small values (bit patterns of
     * 0.01-ish numbers for f32; bf16 0x3c23 ~ 0.01) */
    void *p;
    size_t n;
    DN(dnnl_memory_get_data_handle(src, &p));
    n = dnnl_memory_desc_get_size(s_md);
    memset(p, 0x3c, n);
    DN(dnnl_memory_get_data_handle(uwei, &p));
    n = dnnl_memory_desc_get_size(&user_wei_md);
    memset(p, 0x3c, n);
    dnnl_primitive_desc_t rpd;
    dnnl_primitive_t reorder, conv;
    DN(dnnl_reorder_primitive_desc_create(&rpd, &user_wei_md, eng, w_md, eng, NULL));
    DN(dnnl_primitive_create(&reorder, rpd));
    dnnl_exec_arg_t rargs[2] = {{DNNL_ARG_FROM, uwei}, {DNNL_ARG_TO, wei}};
    DN(dnnl_primitive_execute(reorder, strm, 2, rargs));
    DN(dnnl_stream_wait(strm));
    DN(dnnl_primitive_create(&conv, pd));
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}};
    double best = 1e30, ts = now_ms();
    for (int r = 0; more_runs(r, ts); r++) {
        double t0 = now_ms();
        DN(dnnl_primitive_execute(conv, strm, 3, args));
        DN(dnnl_stream_wait(strm));
        double t = now_ms() - t0;
        if (r && t < best) best = t;
    }
    dnnl_primitive_destroy(conv);
    dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(rpd);
    dnnl_primitive_desc_destroy(pd);
    dnnl_memory_destroy(src), dnnl_memory_destroy(wei), dnnl_memory_destroy(dst);
    dnnl_memory_destroy(uwei);
    return best;
}
#else
static double time_dnnl(const layer *l, int batch, kn_dtype dt, bool nhwc)
{
    (void)l, (void)batch, (void)dt, (void)nhwc;
    return -1;
}
#endif

/* ---------------------------------------------------------------- main */
static bool has(const char *list, const char *item)
{
    size_t n = strlen(item);
    for (const char *p = list; (p = strstr(p, item)); p += n)
        if ((p == list || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return true;
    return false;
}

static void run_net(const char *net, const layer *ls, int nl, int batch, kn_dtype dt, bool nhwc,
                    int max_layers)
{
    printf("\n## %s, batch %d, %s, %s%s\n\n", net, batch, kn_dtype_name(dt), nhwc ? "NHWC" : "NCHW",
           opt_any ? " (oneDNN: any/blocked activations)" : "");
    printf("| layer | count | GFLOP | kiln ms | oneDNN ms | kiln/oneDNN | kiln eager ms | oneDNN "
           "impl |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---|\n");
    double sk = 0, sd = 0, sk_dw = 0, sd_dw = 0, se = 0;
    for (int i = 0; i < nl && i < max_layers; i++) {
        const layer *l = &ls[i];
        if (only && !strstr(l->name, only)) continue;
        int oh = out_hw(l);
        double gflop = 2.0 * batch * oh * oh * l->cout * (double)(l->cin / l->groups) * l->k *
                       l->k / 1e9;
        double te, tk = time_kiln(l, batch, dt, nhwc, &te);
        double td = no_dnnl ? -1 : time_dnnl(l, batch, dt, nhwc);
        const char *impl = "";
#ifdef KILN_BENCH_DNNL
        impl = last_impl;
#endif
        printf("| %s | %d | %.3f | %.3f | %.3f | %.2f | %.3f | %s |\n", l->name, l->count, gflop,
               tk, td, td > 0 ? tk / td : 0, te, impl);
        fflush(stdout);
        sk += tk * l->count, sd += td * l->count, se += te * l->count;
        if (l->groups > 1) sk_dw += tk * l->count, sd_dw += td * l->count;
    }
    printf("| **sum over the network** | | | **%.3f** | **%.3f** | **%.2f** | %.3f | |\n", sk, sd,
           sd > 0 ? sk / sd : 0, se);
    if (sd_dw > 0)
        printf("| depthwise layers only | | | %.3f | %.3f | %.2f | | |\n", sk_dw, sd_dw,
               sk_dw / sd_dw);
}

int main(int argc, char **argv)
{
    const char *nets = "resnet50,mobilenetv2", *batches = "1,16", *dtypes = "f32,bf16";
    const char *layouts = "nhwc,nchw";
    int max_layers = 1000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--dnnl-amx")) {
            dnnl_amx = true;
            continue;
        }
        if (!strcmp(a, "--no-dnnl")) {
            no_dnnl = true;
            continue;
        }
        if (!strcmp(a, "--dnnl-any")) {
            opt_any = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "bench_conv: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--net"))
            nets = strcmp(v, "all") ? v : "resnet50,mobilenetv2";
        else if (!strcmp(a, "--batch"))
            batches = v;
        else if (!strcmp(a, "--dtype"))
            dtypes = v;
        else if (!strcmp(a, "--layout"))
            layouts = v;
        else if (!strcmp(a, "--reps"))
            reps = atoi(v) > 0 ? atoi(v) : 1;
        else if (!strcmp(a, "--only"))
            only = v;
        else if (!strcmp(a, "--layers"))
            max_layers = atoi(v);
        else {
            fprintf(stderr, "bench_conv: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    bool bf16_ok = kn_isa_max() >= KN_ISA_AVX512BF16;
#ifdef KILN_BENCH_DNNL
    /* kiln does not use AMX yet: by default oneDNN is capped below it too
     * (AVX-512 with AVX512_BF16 and VNNI), --dnnl-amx lifts the cap */
    if (!dnnl_amx) dnnl_set_max_cpu_isa(dnnl_cpu_isa_avx512_core_bf16);
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&strm, eng, dnnl_stream_default_flags) != dnnl_success) {
        fprintf(stderr, "bench_conv: oneDNN engine unavailable\n");
        return 1;
    }
    const dnnl_version_t *ver = dnnl_version();
    printf("oneDNN %d.%d.%d (%s, isa cap %s), OMP_NUM_THREADS=%s; kiln %d threads, isa %s; best "
           "of >= %d runs (and >= 150 ms)\n",
           ver->major, ver->minor, ver->patch, ver->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "",
           dnnl_amx ? "none (AMX allowed)" : "avx512_core_bf16",
           getenv("OMP_NUM_THREADS") ? getenv("OMP_NUM_THREADS") : "(default)",
           kn_get_num_threads(), kn_isa_name(kn_isa_max()), reps);
#else
    printf("oneDNN not built in: kiln figures only\n");
#endif
    static const struct {
        const char *name;
        const layer *ls;
        int n;
    } all[] = {{"resnet50", resnet50, (int)(sizeof resnet50 / sizeof *resnet50)},
               {"mobilenetv2", mobilenetv2, (int)(sizeof mobilenetv2 / sizeof *mobilenetv2)}};
    for (int ni = 0; ni < 2; ni++) {
        if (!has(nets, all[ni].name)) continue;
        for (int b = 0; b < 2; b++) {
            int batch = b ? 16 : 1;
            if (!has(batches, b ? "16" : "1")) continue;
            for (int d = 0; d < 2; d++) {
                if (!has(dtypes, d ? "bf16" : "f32")) continue;
                if (d && !bf16_ok) {
                    printf("\n(bf16 skipped: no AVX512_BF16)\n");
                    continue;
                }
                for (int lo = 0; lo < 2; lo++) {
                    if (!has(layouts, lo ? "nchw" : "nhwc")) continue;
                    run_net(all[ni].name, all[ni].ls, all[ni].n, batch, d ? KN_BF16 : KN_F32,
                            lo == 0, max_layers);
                }
            }
        }
    }
#ifdef KILN_BENCH_DNNL
    dnnl_stream_destroy(strm);
    dnnl_engine_destroy(eng);
#endif
    return 0;
}
