/* main.c — the `kiln` command: info, graph (draw a saved graph as Graphviz
 * dot, and PNG when `dot` is installed), summary (a model table: layer,
 * output shape, parameters, FLOPs) and train (train.c). Errors: one line,
 * non-zero exit. */
#include "tool.h"

#include "graph/graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(FILE *f)
{
    fprintf(f, "usage: kiln info\n"
               "       kiln graph GRAPH.json [--weights W.safetensors] --dot OUT.dot [--png OUT.png]\n"
               "       kiln summary GRAPH.json [--weights W.safetensors]\n"
               "       kiln train --model NAME --data DIR [options]   (kiln train --help)\n"
               "       kiln run MODEL.onnx [--input X.pb|X.npy ...] --output DIR [--format pb|npy]\n"
               "                [--batch N] [--threads T] [--profile]\n"
               "       kiln bench MODEL.onnx [--input ...] [--batch N] [--iterations K] [--warmup W] [--threads T]\n"
               "                [--profile]\n"
               "       kiln convert MODEL.onnx OUT.json [--batch N] | GRAPH.json OUT.onnx\n"
               "GRAPH.json and its weights come from kn_graph_save / kn_block_export; the weights\n"
               "default to the .json path with .safetensors in place of .json.\n");
    return f == stderr ? 2 : 0;
}

static int fail(const char *what)
{
    fprintf(stderr, "kiln: %s: %s\n", what, kn_last_error());
    return 1;
}

/* argv option value, or NULL. */
static const char *option(int argc, char **argv, const char *name)
{
    for (int i = 0; i + 1 < argc; i++)
        if (!strcmp(argv[i], name)) return argv[i + 1];
    return NULL;
}

static kn_graph *load(int argc, char **argv, const char *json)
{
    static char weights[4096];
    const char *w = option(argc, argv, "--weights");
    if (!w) {
        size_t n = strlen(json);
        const char *ext = n > 5 && !strcmp(json + n - 5, ".json") ? json + n - 5 : json + n;
        snprintf(weights, sizeof weights, "%.*s.safetensors", (int)(ext - json), json);
        w = weights;
    }
    return kn_graph_load(json, w);
}

static void shape_text(const kn_gvalue *v, char *buf, size_t n)
{
    size_t len = (size_t)snprintf(buf, n, "(");
    for (int d = 0; d < v->ndim && len < n; d++)
        len += (size_t)snprintf(buf + len, n - len, d ? ", %lld" : "%lld", (long long)v->shape[d]);
    if (len < n) snprintf(buf + len, n - len, ")");
}

static int write_dot(const kn_graph *g, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "kiln: cannot write '%s'\n", path);
        return 1;
    }
    fprintf(f, "digraph kiln {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n");
    for (int32_t v = 0; v < g->n_values; v++) {
        const kn_gvalue *val = &g->values[v];
        if (val->kind == KN_VALUE_NODE) continue;
        char shape[128];
        shape_text(val, shape, sizeof shape);
        const char *style = val->kind == KN_VALUE_INPUT ? "shape=ellipse, style=filled, fillcolor=lightblue"
                                                         : "shape=note, color=gray40";
        fprintf(f, "  v%d [label=\"%s\\n%s %s\", %s];\n", v, val->name ? val->name : "const",
                kn_dtype_name(val->dtype), shape, style);
    }
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const kn_gnode *n = &g->nodes[i];
        if (n->dead) continue;
        char shape[128];
        shape_text(&g->values[n->out[0]], shape, sizeof shape);
        fprintf(f, "  n%d [label=\"%s\\n%s\", shape=box, style=rounded];\n", i, n->def->name, shape);
        for (int k = 0; k < n->n_in; k++) {
            int32_t v = n->in[k];
            if (v < 0) continue;
            const kn_gvalue *src = &g->values[v];
            if (src->kind == KN_VALUE_NODE) fprintf(f, "  n%d -> n%d;\n", src->node, i);
            else fprintf(f, "  v%d -> n%d;\n", v, i);
        }
    }
    for (int i = 0; i < g->n_outputs; i++) {
        const kn_gvalue *v = &g->values[g->outputs[i]];
        fprintf(f, "  out%d [label=\"output %d\", shape=ellipse, style=filled, fillcolor=lightyellow];\n", i, i);
        if (v->kind == KN_VALUE_NODE) fprintf(f, "  n%d -> out%d;\n", v->node, i);
        else fprintf(f, "  v%d -> out%d;\n", g->outputs[i], i);
    }
    fprintf(f, "}\n");
    return fclose(f) == 0 ? 0 : 1;
}

static int cmd_graph(int argc, char **argv)
{
    const char *dot = option(argc, argv, "--dot"), *png = option(argc, argv, "--png");
    if (argc < 3 || (!dot && !png)) return usage(stderr);
    kn_graph *g = load(argc, argv, argv[2]);
    if (!g) return fail("graph");
    char tmp[4096];
    if (!dot) snprintf(tmp, sizeof tmp, "%s.dot", png), dot = tmp;
    int rc = write_dot(g, dot);
    kn_graph_free(g);
    if (rc || !png) return rc;
    if (system("command -v dot >/dev/null 2>&1") != 0) {
        fprintf(stderr, "kiln: graph: Graphviz 'dot' is not installed (apt-get install graphviz); wrote %s\n", dot);
        return 1;
    }
    char cmd[8300];
    snprintf(cmd, sizeof cmd, "dot -Tpng '%s' -o '%s'", dot, png);
    if (strchr(dot, '\'') || strchr(png, '\'') || system(cmd) != 0) {
        fprintf(stderr, "kiln: graph: dot failed to write %s\n", png);
        return 1;
    }
    return 0;
}

static int64_t node_flops(const kn_graph *g, const kn_gnode *n)
{
    if (!n->def->flops) {
        int64_t total = 0;
        for (int k = 0; k < n->n_out; k++)
            total += kn__shape_numel(g->values[n->out[k]].ndim, g->values[n->out[k]].shape);
        return total;
    }
    kn_tensor *in[64] = {0};
    int m = n->n_in < 64 ? n->n_in : 64;
    for (int k = 0; k < m; k++)
        if (n->in[k] >= 0) {
            const kn_gvalue *v = &g->values[n->in[k]];
            in[k] = kn_tensor_symbolic(v->dtype, v->ndim, v->shape);
        }
    kn_op_args a = {n->def, in, m, NULL, n->n_out, n->attrs, NULL};
    int64_t f = n->def->flops(&a);
    for (int k = 0; k < m; k++)
        kn_tensor_unref(in[k]);
    return f;
}

static void human(double v, char *buf, size_t n)
{
    const char *unit[] = {"", "K", "M", "G", "T"};
    int u = 0;
    while (v >= 1000 && u < 4)
        v /= 1000, u++;
    snprintf(buf, n, u ? "%.2f%s" : "%.0f%s", v, unit[u]);
}

static int cmd_summary(int argc, char **argv)
{
    if (argc < 3) return usage(stderr);
    kn_graph *g = load(argc, argv, argv[2]);
    if (!g) return fail("summary");
    bool *counted = calloc((size_t)g->n_values + 1, 1);
    int64_t total_params = 0, total_flops = 0;
    printf("%-5s %-22s %-24s %12s %12s\n", "#", "layer (op)", "output shape", "params", "FLOPs");
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const kn_gnode *n = &g->nodes[i];
        if (n->dead) continue;
        int64_t params = 0;
        for (int k = 0; k < n->n_in; k++) {
            int32_t v = n->in[k];
            if (v < 0 || counted[v]) continue;
            const kn_gvalue *val = &g->values[v];
            if (val->kind != KN_VALUE_PARAM && val->kind != KN_VALUE_CONST) continue;
            params += kn__shape_numel(val->ndim, val->shape);
            counted[v] = true;
        }
        int64_t flops = node_flops(g, n);
        char shape[128], p[32], fl[32];
        shape_text(&g->values[n->out[0]], shape, sizeof shape);
        human((double)params, p, sizeof p);
        human((double)flops, fl, sizeof fl);
        printf("%-5d %-22s %-24s %12s %12s\n", i, n->def->name, shape, p, fl);
        total_params += params, total_flops += flops;
    }
    char p[32], fl[32];
    human((double)total_params, p, sizeof p);
    human((double)total_flops, fl, sizeof fl);
    printf("total: %d nodes, %s parameters (%lld), %s FLOPs per run\n", kn_graph_num_nodes(g), p,
           (long long)total_params, fl);
    free(counted);
    kn_graph_free(g);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) return usage(stderr);
    if (!strcmp(argv[1], "info")) {
        kn_print_info(stdout);
        /* the optional parts kiln can be built with, and which are in */
        printf("optional parts: zlib (gzip datasets) %s, ONNX %s, oneDNN no, MPI no\n",
               kn_dataset_gzip_supported() ? "yes" : "no", kn_onnx_supported() ? "yes" : "no");
        if (kn_onnx_supported()) printf("onnx: opsets 7 to %d of the default domain\n", kn_onnx_max_opset());
        printf("models:");
        const char *const *names = kn_model_names();
        for (int i = 0; names && names[i]; i++)
            printf("%s %s", i ? "," : "", names[i]);
        printf("\n");
        return 0;
    }
    if (!strcmp(argv[1], "train")) return kiln_train(argc - 1, argv + 1);
    if (!strcmp(argv[1], "run")) return kiln_run(argc - 1, argv + 1);
    if (!strcmp(argv[1], "bench")) return kiln_bench(argc - 1, argv + 1);
    if (!strcmp(argv[1], "convert")) return kiln_convert(argc - 1, argv + 1);
    if (!strcmp(argv[1], "graph")) return cmd_graph(argc, argv);
    if (!strcmp(argv[1], "summary")) return cmd_summary(argc, argv);
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) return usage(stdout);
    fprintf(stderr, "kiln: unknown command '%s'\n", argv[1]);
    return usage(stderr);
}
