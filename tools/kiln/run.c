/* run.c — `kiln run`, `kiln bench` and `kiln convert` on ONNX models (and
 * kiln graph files for convert). Inputs are ONNX TensorProto files (.pb, the
 * layout of ONNX's own test data) or NumPy .npy files; without inputs,
 * random ones of the declared shapes (dynamic dims: --batch, else 1). */
#include "tool.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_IO 64

static int run_fail(const char *cmd, const char *what)
{
    fprintf(stderr, "kiln %s: %s: %s\n", cmd, what, kn_last_error());
    return 1;
}

static int run_usage(const char *cmd, const char *msg)
{
    fprintf(stderr, "kiln %s: %s\n", cmd, msg);
    return 2;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* A positive integer option value; -1 (and a usage line) when bad. */
static long long positive(const char *cmd, const char *opt, const char *v)
{
    char *end;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || *end || x < 1 || x > 1000000000) {
        fprintf(stderr, "kiln %s: %s needs a positive integer, got '%s'\n", cmd, opt, v ? v : "");
        return -1;
    }
    return x;
}

static kn_tensor *read_input(const char *path)
{
    if (ends_with(path, ".npy")) return kn_npy_load(path);
    char name[256];
    return kn_onnx_read_tensor(path, name, sizeof name);
}

/* Random inputs of the model's declared shapes (dynamic dims = batch). */
static kn_status random_inputs(const kn_onnx_model *m, int64_t batch, int *n, kn_tensor **in)
{
    *n = kn_onnx_num_inputs(m);
    if (*n > MAX_IO) return kn_set_error(KN_ERR_UNSUPPORTED, "the model has %d inputs, at most %d", *n, MAX_IO);
    kn_manual_seed(1);
    for (int i = 0; i < *n; i++) {
        int64_t shape[KN_MAX_DIMS];
        int nd = kn_onnx_input_shape(m, i, shape);
        if (nd < 0)
            return kn_set_error(KN_ERR_ARG, "input '%s' has no declared shape: give it with --input",
                                kn_onnx_input_name(m, i));
        for (int d = 0; d < nd; d++)
            if (shape[d] < 0) shape[d] = batch;
        kn_dtype dt = kn_onnx_input_dtype(m, i);
        kn_tensor *r = kn_tensor_rand_uniform(KN_F32, nd, shape, dt == KN_BOOL ? 0 : -1, dt == KN_BOOL ? 2 : 1);
        in[i] = r && dt != KN_F32 ? kn_cast(r, dt) : kn_tensor_ref(r);
        kn_tensor_unref(r);
        if (!in[i]) return kn_last_status();
    }
    return KN_OK;
}

typedef struct io_args {
    const char *model, *out_dir, *format;
    const char *inputs[MAX_IO];
    int n_inputs;
    long long batch, iterations, warmup, threads;
    bool profile;
} io_args;

static int parse(const char *cmd, int argc, char **argv, io_args *a)
{
    memset(a, 0, sizeof *a);
    a->batch = 1, a->iterations = 20, a->warmup = 3, a->format = "pb";
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = !strcmp(o, "--input") || !strcmp(o, "--output") || !strcmp(o, "--format") ||
                     !strcmp(o, "--batch") || !strcmp(o, "--iterations") || !strcmp(o, "--warmup") ||
                     !strcmp(o, "--threads");
        if (takes && !v) {
            fprintf(stderr, "kiln %s: %s needs a value\n", cmd, o);
            return 2;
        }
        if (!strcmp(o, "--input")) {
            if (a->n_inputs == MAX_IO) return run_usage(cmd, "too many --input");
            a->inputs[a->n_inputs++] = v;
        } else if (!strcmp(o, "--output")) a->out_dir = v;
        else if (!strcmp(o, "--format")) {
            if (strcmp(v, "pb") && strcmp(v, "npy")) return run_usage(cmd, "--format is pb or npy");
            a->format = v;
        } else if (!strcmp(o, "--batch")) {
            if ((a->batch = positive(cmd, o, v)) < 0) return 2;
        } else if (!strcmp(o, "--iterations")) {
            if ((a->iterations = positive(cmd, o, v)) < 0) return 2;
        } else if (!strcmp(o, "--warmup")) {
            char *end;
            a->warmup = strtoll(v, &end, 10);
            if (*end || a->warmup < 0 || a->warmup > 1000000) return run_usage(cmd, "--warmup needs a count >= 0");
        } else if (!strcmp(o, "--threads")) {
            if ((a->threads = positive(cmd, o, v)) < 0) return 2;
        } else if (!strcmp(o, "--profile")) {
            a->profile = true;
            continue;
        } else if (o[0] == '-') {
            fprintf(stderr, "kiln %s: unknown option '%s'\n", cmd, o);
            return 2;
        } else if (!a->model) {
            a->model = o;
            continue;
        } else {
            fprintf(stderr, "kiln %s: unexpected argument '%s'\n", cmd, o);
            return 2;
        }
        i++;
    }
    if (!a->model) return run_usage(cmd, "no model given");
    if (a->threads) kn_set_num_threads((int)a->threads);
    return 0;
}

/* Loads the model and its inputs (files, or random). */
static int prepare(const char *cmd, const io_args *a, kn_onnx_model **m, int *n_in, kn_tensor **in)
{
    *n_in = 0;
    if (!(*m = kn_onnx_load(a->model))) return run_fail(cmd, a->model);
    for (int i = 0; i < a->n_inputs; i++) {
        if (!(in[i] = read_input(a->inputs[i]))) return run_fail(cmd, a->inputs[i]);
        *n_in = i + 1;
    }
    if (a->n_inputs && a->n_inputs != kn_onnx_num_inputs(*m)) {
        fprintf(stderr, "kiln %s: %s takes %d inputs, %d given\n", cmd, a->model, kn_onnx_num_inputs(*m),
                a->n_inputs);
        return 2;
    }
    if (!a->n_inputs && random_inputs(*m, a->batch, n_in, in)) return run_fail(cmd, "inputs");
    return 0;
}

static void release(kn_onnx_model *m, int n, kn_tensor **t)
{
    for (int i = 0; i < n; i++)
        kn_tensor_unref(t[i]);
    kn_onnx_free(m);
}

int kiln_run(int argc, char **argv)
{
    io_args a;
    int st = parse("run", argc, argv, &a);
    if (st) return st;
    if (!a.out_dir) return run_usage("run", "--output DIR is required");
    kn_onnx_model *m = NULL;
    kn_tensor *in[MAX_IO] = {0}, *out[MAX_IO] = {0};
    int n_in = 0, n_out = 0;
    if ((st = prepare("run", &a, &m, &n_in, in))) {
        release(m, n_in, in);
        return st;
    }
    n_out = kn_onnx_num_outputs(m);
    if (n_out > MAX_IO) n_out = MAX_IO;
    kn_graph *g = a.profile ? kn_onnx_graph(m, n_in, in) : NULL;
    if (g) kn_graph_set_profiling(g, true);
    if (mkdir(a.out_dir, 0777) && access(a.out_dir, W_OK)) {
        fprintf(stderr, "kiln run: cannot create or write '%s'\n", a.out_dir);
        release(m, n_in, in);
        return 1;
    }
    if (kn_onnx_run(m, n_in, in, n_out, out)) {
        release(m, n_in, in);
        return run_fail("run", a.model);
    }
    for (int i = 0; i < n_out && !st; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/output_%d.%s", a.out_dir, i, a.format);
        kn_status s = !strcmp(a.format, "npy") ? kn_npy_save(path, out[i])
                                               : kn_onnx_write_tensor(path, out[i], kn_onnx_output_name(m, i));
        if (s) st = run_fail("run", path);
        else printf("%s: %s %s\n", path, kn_onnx_output_name(m, i), kn_dtype_name(kn_tensor_dtype(out[i])));
    }
    if (!st && g) kn_graph_print_profile(g, stdout);
    release(NULL, n_out, out);
    release(m, n_in, in);
    return st;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

int kiln_bench(int argc, char **argv)
{
    io_args a;
    int st = parse("bench", argc, argv, &a);
    if (st) return st;
    kn_onnx_model *m = NULL;
    kn_tensor *in[MAX_IO] = {0};
    int n_in = 0, n_out = 0;
    if ((st = prepare("bench", &a, &m, &n_in, in))) {
        release(m, n_in, in);
        return st;
    }
    n_out = kn_onnx_num_outputs(m) < MAX_IO ? kn_onnx_num_outputs(m) : MAX_IO;
    double *ms = malloc(sizeof(double) * (size_t)a.iterations);
    for (long long i = 0; ms && i < a.warmup + a.iterations && !st; i++) {
        kn_tensor *out[MAX_IO] = {0};
        if (a.profile && i == a.warmup) { /* time the measured runs per op */
            kn_graph *g = kn_onnx_graph(m, n_in, in);
            if (g) kn_graph_set_profiling(g, true);
        }
        double t0 = kiln_now();
        if (kn_onnx_run(m, n_in, in, n_out, out)) st = run_fail("bench", a.model);
        double t1 = kiln_now();
        if (i >= a.warmup) ms[i - a.warmup] = (t1 - t0) * 1e3;
        release(NULL, n_out, out);
    }
    if (!st && ms) {
        qsort(ms, (size_t)a.iterations, sizeof *ms, cmp_double);
        double median = ms[a.iterations / 2], p90 = ms[(a.iterations * 9) / 10 < a.iterations ? (a.iterations * 9) / 10 : a.iterations - 1];
        int64_t batch = n_in ? kn_tensor_dim(in[0], 0) : 1;
        printf("%s: %d threads, batch %lld, %lld iterations after %lld warm-up\n", a.model, kn_get_num_threads(),
               (long long)batch, a.iterations, a.warmup);
        printf("latency  median %.4f ms  p90 %.4f ms  min %.4f ms\n", median, p90, ms[0]);
        printf("throughput  %.1f samples/s\n", median > 0 ? batch * 1e3 / median : INFINITY);
        kn_graph *g = a.profile ? kn_onnx_graph(m, n_in, in) : NULL;
        if (g) {
            printf("per op, summed over the %lld measured iterations:\n", a.iterations);
            kn_graph_print_profile(g, stdout);
        }
    }
    free(ms);
    release(m, n_in, in);
    return st;
}

/* `kiln convert IN OUT`: ONNX -> kiln graph (OUT.json + OUT.safetensors),
 * or a kiln graph (JSON + safetensors) -> ONNX. */
int kiln_convert(int argc, char **argv)
{
    io_args a;
    if (argc < 3) return run_usage("convert", "usage: kiln convert MODEL.onnx OUT.json | GRAPH.json OUT.onnx");
    const char *src = argv[1], *dst = argv[2];
    char weights[4096];
    if (ends_with(src, ".onnx") && ends_with(dst, ".json")) {
        int st = parse("convert", argc - 1, argv + 1, &a); /* --batch for dynamic dims */
        a.model = src;
        if (st) return st;
        kn_onnx_model *m = NULL;
        kn_tensor *in[MAX_IO] = {0};
        int n_in = 0;
        if ((st = prepare("convert", &a, &m, &n_in, in))) {
            release(m, n_in, in);
            return st;
        }
        snprintf(weights, sizeof weights, "%.*s.safetensors", (int)(strlen(dst) - 5), dst);
        kn_graph *g = kn_onnx_graph(m, n_in, in);
        st = !g || kn_graph_save(g, dst, weights) ? run_fail("convert", src) : 0;
        if (!st) printf("%s -> %s + %s\n", src, dst, weights);
        release(m, n_in, in);
        return st;
    }
    if (ends_with(src, ".json") && ends_with(dst, ".onnx")) {
        snprintf(weights, sizeof weights, "%.*s.safetensors", (int)(strlen(src) - 5), src);
        kn_graph *g = kn_graph_load(src, weights);
        if (!g) return run_fail("convert", src);
        int st = kn_onnx_export(g, dst, 0) ? run_fail("convert", dst) : 0;
        if (!st) printf("%s -> %s\n", src, dst);
        kn_graph_free(g);
        return st;
    }
    return run_usage("convert", "converts MODEL.onnx to OUT.json, or GRAPH.json to OUT.onnx");
}
