/* test_onnx_export.c — kn_onnx_export: kiln graphs (model-zoo networks,
 * hybridized blocks, hand-built graphs over most ops, raw and after the
 * inference passes that create fused ops) exported at opsets 13 to 17,
 * loaded back with kiln's importer and run: the outputs match the kiln
 * graph's within 1e-5. Every exported file is also handed to
 * tests/onnx/check_export.py (onnx.checker with full_check, and ONNX
 * Runtime when installed) when /usr/bin/python3 has onnx; otherwise that
 * part is skipped with a message. Bad input: NULL arguments, opsets out of
 * range, unsupported ops (named), unwritable paths (old file intact). */
#include "harness.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[64], listpath[128];
static int n_files;

/* ---------------------------------------------------------------- helpers */
static kn_tensor *uniform(int ndim, const int64_t *shape, double lo, double hi, uint64_t seed)
{
    kn_manual_seed(seed);
    return kn_tensor_rand_uniform(KN_F32, ndim, shape, lo, hi);
}

static kn_tensor *ints(int ndim, const int64_t *shape, const int64_t *v)
{
    return kn_tensor_from_data(KN_I64, ndim, shape, v);
}

/* |got - want| <= 1e-5 (1 + |want|) everywhere (exact for integers and bools). */
static bool close_enough(const char *what, int k, const kn_tensor *got, const kn_tensor *want)
{
    if (!got || !want) return false;
    int nd = kn_tensor_ndim(want);
    if (kn_tensor_ndim(got) != nd ||
        memcmp(kn_tensor_shape(got), kn_tensor_shape(want), sizeof(int64_t) * (size_t)nd)) {
        fprintf(stderr, "%s: output %d has another shape\n", what, k);
        return false;
    }
    if (kn_tensor_dtype(got) != kn_tensor_dtype(want)) {
        fprintf(stderr, "%s: output %d is %s, expected %s\n", what, k,
                kn_dtype_name(kn_tensor_dtype(got)), kn_dtype_name(kn_tensor_dtype(want)));
        return false;
    }
    int64_t n = kn_tensor_numel(want);
    double *a = malloc(sizeof(double) * (size_t)(n + 1)),
           *b = malloc(sizeof(double) * (size_t)(n + 1));
    bool ok = a && b && !kn_tensor_copy_to(got, KN_F64, a, sizeof(double) * (size_t)n) &&
              !kn_tensor_copy_to(want, KN_F64, b, sizeof(double) * (size_t)n);
    bool exact = !kn_dtype_is_float(kn_tensor_dtype(want));
    for (int64_t i = 0; ok && i < n; i++) {
        bool same =
            exact ? a[i] == b[i]
                  : fabs(a[i] - b[i]) <= 1e-5 * (1 + fabs(b[i])) || (isnan(a[i]) && isnan(b[i]));
        if (!same) {
            fprintf(stderr, "%s: output %d element %lld is %.9g, kiln gives %.9g\n", what, k,
                    (long long)i, a[i], b[i]);
            ok = false;
        }
    }
    free(a), free(b);
    return ok;
}

/* Exports g at opset, loads the file with kiln's importer, runs both on
 * in[] and compares; lists the file and its data for check_export.py. */
static void round_trip(const char *name, kn_graph *g, int n_in, kn_tensor *const *in, int opset)
{
    char path[256], what[128];
    snprintf(what, sizeof what, "%s@%d", name, opset);
    snprintf(path, sizeof path, "%s/%s_%d.onnx", tmpdir, name, opset);
    kn_status s = kn_onnx_export(g, path, opset);
    KT_CHECK(s == KN_OK, "%s: export: %s", what, kn_last_error());
    if (s) return;
    int n_out = kn_graph_num_outputs(g);
    kn_tensor *want[64] = {0}, *got[64] = {0};
    KT_OK(kn_graph_run(g, n_in, in, n_out, want));
    kn_onnx_model *m = kn_onnx_load(path);
    KT_CHECK(m != NULL, "%s: load: %s", what, kn_last_error());
    if (m) {
        KT_CHECK(kn_onnx_num_inputs(m) == n_in && kn_onnx_num_outputs(m) == n_out &&
                     kn_onnx_opset(m) == opset,
                 "%s: %d inputs, %d outputs, opset %d", what, kn_onnx_num_inputs(m),
                 kn_onnx_num_outputs(m), kn_onnx_opset(m));
        s = kn_onnx_run(m, n_in, in, n_out, got);
        KT_CHECK(s == KN_OK, "%s: run: %s", what, kn_last_error());
        for (int k = 0; !s && k < n_out; k++)
            KT_CHECK(close_enough(what, k, got[k], want[k]), "%s: output %d matches kiln", what, k);
        kn_onnx_free(m);
    }
    /* data for onnx.checker / ONNX Runtime */
    FILE *f = fopen(listpath, "a");
    if (f) {
        fprintf(f, "%s|", path);
        for (int i = 0; i < n_in; i++) {
            char p[300];
            snprintf(p, sizeof p, "%s/%s_%d_in%d.npy", tmpdir, name, opset, i);
            KT_OK(kn_npy_save(p, in[i]));
            fprintf(f, "%s%s", i ? "," : "", p);
        }
        fprintf(f, "|");
        for (int k = 0; k < n_out && want[k]; k++) {
            char p[300];
            snprintf(p, sizeof p, "%s/%s_%d_out%d.npy", tmpdir, name, opset, k);
            KT_OK(kn_npy_save(p, want[k]));
            fprintf(f, "%s%s", k ? "," : "", p);
        }
        fprintf(f, "\n");
        fclose(f);
        n_files++;
    }
    for (int k = 0; k < n_out; k++)
        kn_tensor_unref(want[k]), kn_tensor_unref(got[k]);
}

/* ---------------------------------------------------------------- hand-built graphs
 * A builder makes a graph from symbolic inputs and fills in[] with the
 * values to run it on. Each is exported raw (the ops as traced) and after
 * kn_graph_compile for inference (folded, expanded and fused). */
typedef kn_graph *(*builder)(kn_tensor **in, int *n_in);

static kn_tensor *kept[1024];
static int n_kept;
/* Keeps t until release_kept() (NULL passes through, so a failed op makes the next one fail). */
static kn_tensor *keep(kn_tensor *t)
{
    if (t && n_kept < 1024) kept[n_kept++] = t;
    return t;
}
static void release_kept(void)
{
    while (n_kept > 0)
        kn_tensor_unref(kept[--n_kept]);
}
#define T(x) keep(x)
static void add_output(kn_graph *g, kn_tensor *t)
{
    KT_OK(kn_graph_output(g, t));
}
#define OUT(x) add_output(g, T(x))

static kn_graph *build_unary(kn_tensor **in, int *n_in)
{
    kn_graph *g = kn_graph_new();
    int64_t sh[2] = {3, 7};
    kn_tensor *x = T(kn_graph_input(g, "x", KN_F32, 2, sh)),
              *i = T(kn_graph_input(g, "i", KN_I64, 2, sh));
    kn_tensor *p = T(kn_add_scalar(T(kn_abs(x)), 0.25));
    OUT(kn_neg(x)), OUT(kn_exp(x)), OUT(kn_log(p)), OUT(kn_abs(x)), OUT(kn_sign(x));
    OUT(kn_expm1(x)), OUT(kn_log1p(p)), OUT(kn_sqrt(p)), OUT(kn_rsqrt(p)), OUT(kn_reciprocal(p));
    OUT(kn_square(x)), OUT(kn_sin(x)), OUT(kn_cos(x)), OUT(kn_tan(T(kn_mul_scalar(x, 0.5)))),
        OUT(kn_tanh(x));
    OUT(kn_sigmoid(x)), OUT(kn_erf(x)), OUT(kn_relu(x)), OUT(kn_relu6(T(kn_mul_scalar(x, 3))));
    OUT(kn_leaky_relu(x, 0.1)), OUT(kn_elu(x, 0.7)), OUT(kn_selu(x)), OUT(kn_gelu(x)),
        OUT(kn_gelu_tanh(x));
    OUT(kn_silu(x)), OUT(kn_softplus(x, 2, 3)), OUT(kn_softplus(x, 1, 20)), OUT(kn_softsign(x)),
        OUT(kn_mish(x));
    OUT(kn_hard_sigmoid(x, 0.2, 0.5)), OUT(kn_hard_swish(T(kn_mul_scalar(x, 2)))), OUT(kn_floor(x));
    OUT(kn_ceil(x)), OUT(kn_round(T(kn_mul_scalar(x, 2)))), OUT(kn_trunc(x)),
        OUT(kn_clip(x, -1, 0.5));
    OUT(kn_clip(x, -INFINITY, 1)), OUT(kn_isnan(T(kn_log(x)))),
        OUT(kn_isinf(T(kn_reciprocal(T(kn_round(x))))));
    OUT(kn_logical_not(x));
    OUT(kn_neg(i)), OUT(kn_abs(i)), OUT(kn_relu(i)), OUT(kn_clip(i, -1, 2)), OUT(kn_exp(i)),
        OUT(kn_sign(i));
    OUT(kn_floor(i)), OUT(kn_isnan(i)), OUT(kn_relu6(i));
    int64_t iv[21];
    for (int k = 0; k < 21; k++)
        iv[k] = (k * 5) % 11 - 4;
    in[0] = uniform(2, sh, -2.6, 2.6, 1), in[1] = ints(2, sh, iv), *n_in = 2;
    return g;
}

static kn_graph *build_binary(kn_tensor **in, int *n_in)
{
    kn_graph *g = kn_graph_new();
    int64_t sa[3] = {2, 3, 4}, sb[2] = {3, 4}, sc[1] = {4};
    kn_tensor *a = T(kn_graph_input(g, "a", KN_F32, 3, sa)),
              *b = T(kn_graph_input(g, "b", KN_F32, 2, sb));
    kn_tensor *c = T(kn_graph_input(g, "c", KN_I64, 1, sc));
    kn_tensor *p = T(kn_add_scalar(T(kn_abs(a)), 0.5)), *bc = T(kn_add_scalar(b, -1.25));
    OUT(kn_add(a, b)), OUT(kn_sub(a, b)), OUT(kn_mul(a, b)), OUT(kn_div(a, b)), OUT(kn_pow(p, b));
    OUT(kn_maximum(a, b)), OUT(kn_minimum(a, b)), OUT(kn_fmod(a, bc)), OUT(kn_atan2(a, bc));
    kn_tensor *ra = T(kn_round(a)), *rb = T(kn_round(b));
    OUT(kn_eq(ra, rb)), OUT(kn_ne(ra, rb)), OUT(kn_lt(a, b)), OUT(kn_le(ra, rb)), OUT(kn_gt(a, b));
    OUT(kn_ge(ra, rb)), OUT(kn_logical_and(a, bc)), OUT(kn_logical_or(T(kn_gt(a, b)), bc));
    OUT(kn_logical_xor(ra, rb)), OUT(kn_where(T(kn_gt(a, bc)), a, b)), OUT(kn_where(c, a, b));
    OUT(kn_add(a, c)), OUT(kn_div(c, T(kn_add_scalar(c, 5)))), OUT(kn_mul(c, c)), OUT(kn_lt(c, a));
    OUT(kn_masked_fill(a, T(kn_lt(a, bc)), -1.5)), OUT(kn_mul_scalar(T(kn_add_scalar(a, 0.5)), 3));
    OUT(kn_maximum(c, T(kn_neg(c)))), OUT(kn_fmod(c, T(kn_add_scalar(T(kn_abs(c)), 2))));
    in[0] = uniform(3, sa, -2, 2, 2), in[1] = uniform(2, sb, 0.5, 2, 3);
    in[2] = ints(1, sc, (int64_t[]){-3, 0, 2, 1}), *n_in = 3;
    return g;
}

static kn_graph *build_shape(kn_tensor **in, int *n_in)
{
    kn_graph *g = kn_graph_new();
    int64_t sx[4] = {2, 3, 4, 5};
    kn_tensor *x = T(kn_graph_input(g, "x", KN_F32, 4, sx));
    OUT(kn_reshape(x, 2, (int64_t[]){6, -1})), OUT(kn_flatten(x, 1, 2));
    OUT(kn_squeeze(T(kn_unsqueeze(x, 1)), 0, NULL)),
        OUT(kn_squeeze(T(kn_unsqueeze(x, -1)), 1, (int[]){4}));
    OUT(kn_permute(x, 4, (int[]){0, 2, 3, 1})), OUT(kn_transpose(x, 1, -1)),
        OUT(kn_slice(x, 3, -4, 5, 2));
    OUT(kn_slice(x, 2, 1, 100, 1)), OUT(kn_narrow(x, 1, 1, 2));
    kn_tensor *cat[2] = {x, T(kn_mul_scalar(x, 2))};
    OUT(kn_concat(2, cat, 1)), OUT(kn_stack(2, cat, 0)), OUT(kn_stack(2, cat, -1));
    kn_tensor *parts[3];
    KT_OK(kn_split(x, 3, (int64_t[]){1, 2, 2}, 3, parts));
    for (int k = 0; k < 3; k++)
        OUT(parts[k]);
    int nch = 0;
    KT_OK(kn_chunk(x, 2, 1, parts, &nch));
    for (int k = 0; k < nch; k++)
        OUT(parts[k]);
    int64_t pads[8] = {0, 0, 1, 0, 2, 1, 0, 3};
    OUT(kn_pad(x, pads, KN_PAD_CONSTANT, 0.5)), OUT(kn_pad(x, pads, KN_PAD_REFLECT, 0));
    OUT(kn_pad(x, pads, KN_PAD_EDGE, 0));
    kn_tensor *x2 = T(kn_reshape(x, 2, (int64_t[]){6, 20}));
    OUT(kn_tile(x2, 3, (int64_t[]){2, 1, 2})), OUT(kn_tile(x, 1, (int64_t[]){2}));
    OUT(kn_repeat(x, 2, 1)), OUT(kn_expand(T(kn_unsqueeze(x2, 0)), 3, (int64_t[]){3, -1, 20}));
    OUT(kn_cast(x, KN_I64)), OUT(kn_cast(x, KN_F64)), OUT(kn_cast(T(kn_cast(x, KN_BOOL)), KN_F32));
    OUT(kn_contiguous(T(kn_transpose(x, 0, 2))));
    OUT(kn_sum(x, 2, (int[]){1, 3}, true)), OUT(kn_mean(x, 0, NULL, false)),
        OUT(kn_prod(T(kn_add_scalar(x, 1.5)), 1, (int[]){2}, false));
    OUT(kn_max(x, 1, (int[]){-1}, false)), OUT(kn_min(x, 2, (int[]){0, 2}, true)),
        OUT(kn_logsumexp(x, 1, (int[]){1}, false));
    OUT(kn_var(x, 1, (int[]){3}, true, false)), OUT(kn_std(x, 2, (int[]){1, 2}, false, true));
    OUT(kn_norm(x, 1, 1, (int[]){2}, false)), OUT(kn_norm(x, 2, 0, NULL, false));
    OUT(kn_all(T(kn_gt(x, T(kn_tensor_scalar(KN_F32, -0.9)))), 1, (int[]){3}, false)),
        OUT(kn_any(x, 1, (int[]){1}, true));
    OUT(kn_argmax(x, 2, true)), OUT(kn_argmin(x, -1, false)), OUT(kn_cumsum(x, 2));
    kn_tensor *v = NULL, *ix = NULL;
    KT_OK(kn_sort(x, -1, true, &v, &ix));
    OUT(v), OUT(ix);
    KT_OK(kn_topk(x, 2, 1, true, true, &v, &ix));
    OUT(v), OUT(ix);
    KT_OK(kn_topk(x, 3, 3, false, true, &v, &ix));
    OUT(v), OUT(ix);
    OUT(kn_argsort(x, 2, false));
    in[0] = uniform(4, sx, -1, 1, 4), *n_in = 1;
    return g;
}

static kn_graph *build_index(kn_tensor **in, int *n_in)
{
    kn_graph *g = kn_graph_new();
    int64_t sx[2] = {5, 4}, si[2] = {2, 3};
    kn_tensor *x = T(kn_graph_input(g, "x", KN_F32, 2, sx)),
              *ids = T(kn_graph_input(g, "ids", KN_I64, 2, si));
    kn_tensor *idx = T(ints(2, (int64_t[]){5, 2}, (int64_t[]){0, 3, 1, 1, 2, 0, 3, 2, 1, 0}));
    OUT(kn_gather(x, 1, idx)),
        OUT(kn_index_select(x, 0, T(ints(1, (int64_t[]){3}, (int64_t[]){4, 0, 2}))));
    OUT(kn_take(x, T(ints(2, (int64_t[]){2, 2}, (int64_t[]){0, 7, 19, 3})))),
        OUT(kn_embedding(x, ids));
    OUT(kn_one_hot(ids, 5, KN_F32)), OUT(kn_one_hot(ids, 6, KN_I64)),
        OUT(kn_index_select(x, 0, T(kn_reshape(ids, 1, (int64_t[]){6}))));
    OUT(kn_scatter(x, 1, idx, T(kn_neg(T(kn_narrow(x, 1, 0, 2))))));
    in[0] = uniform(2, sx, -1, 1, 5), in[1] = ints(2, si, (int64_t[]){4, 0, 2, 2, 1, 3}), *n_in = 2;
    return g;
}

static kn_graph *build_scatter_add(kn_tensor **in, int *n_in)
{
    kn_graph *g = kn_graph_new();
    int64_t sx[2] = {5, 4};
    kn_tensor *x = T(kn_graph_input(g, "x", KN_F32, 2, sx));
    kn_tensor *idx = T(ints(2, (int64_t[]){5, 2}, (int64_t[]){0, 3, 1, 1, 2, 0, 3, 3, 1, 0}));
    OUT(kn_scatter_add(x, 1, idx, T(kn_narrow(x, 1, 1, 2))));
    in[0] = uniform(2, sx, -1, 1, 6), *n_in = 1;
    return g;
}

static kn_tensor *param(kn_graph *g, const char *name, int ndim, const int64_t *shape, double lo,
                        double hi, uint64_t seed)
{
    kn_tensor *v = uniform(ndim, shape, lo, hi, seed);
    kn_tensor *p = kn_graph_param(g, name, v);
    kn_tensor_unref(v);
    return T(p);
}

static kn_graph *build_conv(kn_tensor **in, int *n_in)
{
    kn_graph *g = kn_graph_new();
    int64_t sx[4] = {2, 4, 9, 9}, s1[3] = {2, 4, 10}, s3[5] = {1, 2, 5, 5, 5};
    kn_tensor *x = T(kn_graph_input(g, "x", KN_F32, 4, sx)),
              *x1 = T(kn_graph_input(g, "x1", KN_F32, 3, s1));
    kn_tensor *x3 = T(kn_graph_input(g, "x3", KN_F32, 5, s3));
    kn_tensor *w = param(g, "w", 4, (int64_t[]){6, 4, 3, 3}, -0.3, 0.3, 10),
              *b = param(g, "b", 1, (int64_t[]){6}, -1, 1, 11);
    kn_tensor *wg = param(g, "wg", 4, (int64_t[]){6, 2, 3, 3}, -0.3, 0.3, 12);
    OUT(kn_conv2d(x, w, b,
                  &(kn_conv_params){.stride = {2, 2}, .pad_begin = {1, 1}, .pad_end = {1, 1}}));
    OUT(kn_conv2d(x, wg, NULL,
                  &(kn_conv_params){.pad_same = true, .dilation = {2, 2}, .groups = 2}));
    OUT(kn_conv2d(x, w, b, &(kn_conv_params){.stride = {2, 1}, .pad_same = true}));
    kn_tensor *xh = T(kn_permute(x, 4, (int[]){0, 2, 3, 1}));
    OUT(kn_conv2d(
        xh, w, b,
        &(kn_conv_params){.pad_begin = {0, 1}, .pad_end = {2, 1}, .layout = KN_LAYOUT_NHWC}));
    OUT(kn_conv1d(x1, param(g, "w1", 3, (int64_t[]){3, 4, 3}, -0.5, 0.5, 13), NULL,
                  &(kn_conv_params){.stride = {2}, .pad_begin = {1}, .pad_end = {0}}));
    OUT(kn_conv3d(
        x3, param(g, "w3", 5, (int64_t[]){3, 2, 2, 2, 2}, -0.5, 0.5, 14),
        param(g, "b3", 1, (int64_t[]){3}, -1, 1, 15),
        &(kn_conv_params){.stride = {2, 1, 2}, .pad_begin = {1, 0, 0}, .pad_end = {0, 1, 1}}));
    OUT(kn_conv_transpose2d(
        x, param(g, "wt", 4, (int64_t[]){4, 6, 3, 3}, -0.3, 0.3, 16), b,
        &(kn_conv_params){
            .stride = {2, 2}, .pad_begin = {1, 1}, .pad_end = {1, 1}, .output_padding = {1, 0}}));
    OUT(kn_conv_transpose2d(x, param(g, "wtg", 4, (int64_t[]){4, 2, 2, 2}, -0.3, 0.3, 17), NULL,
                            &(kn_conv_params){.groups = 2, .dilation = {2, 1}}));
    OUT(kn_conv_transpose1d(x1, param(g, "wt1", 3, (int64_t[]){4, 2, 4}, -0.3, 0.3, 18), NULL,
                            &(kn_conv_params){.stride = {3}}));
    OUT(kn_conv_transpose3d(x3, param(g, "wt3", 5, (int64_t[]){2, 3, 2, 2, 2}, -0.3, 0.3, 19), NULL,
                            &(kn_conv_params){.stride = {2, 2, 1}}));
    in[0] = uniform(4, sx, -1, 1, 7), in[1] = uniform(3, s1, -1, 1, 8),
    in[2] = uniform(5, s3, -1, 1, 9), *n_in = 3;
    return g;
}

static kn_graph *build_pool_norm(kn_tensor **in, int *n_in)
{
    kn_graph *g = kn_graph_new();
    int64_t sx[4] = {2, 4, 8, 8}, c[1] = {4};
    kn_tensor *x = T(kn_graph_input(g, "x", KN_F32, 4, sx)),
              *xh = T(kn_permute(x, 4, (int[]){0, 2, 3, 1}));
    OUT(kn_max_pool(
        x, &(kn_pool_params){
               .kernel = {3, 3}, .stride = {2, 2}, .pad_begin = {1, 1}, .pad_end = {1, 1}}));
    OUT(kn_avg_pool(
        x, &(kn_pool_params){
               .kernel = {3, 2}, .stride = {2, 1}, .pad_begin = {1, 0}, .pad_end = {1, 1}}));
    OUT(kn_avg_pool(x, &(kn_pool_params){.kernel = {3, 3},
                                         .pad_begin = {1, 1},
                                         .pad_end = {1, 1},
                                         .count_include_pad = true}));
    OUT(kn_max_pool(xh, &(kn_pool_params){.kernel = {2, 2}, .layout = KN_LAYOUT_NHWC}));
    OUT(kn_max_pool(x, &(kn_pool_params){.kernel = {3, 2},
                                         .stride = {2, 3},
                                         .pad_begin = {1, 0},
                                         .pad_end = {1, 0},
                                         .ceil_mode = true}));
    OUT(kn_avg_pool(x, &(kn_pool_params){.kernel = {3, 3},
                                         .stride = {2, 2},
                                         .pad_begin = {1, 1},
                                         .pad_end = {1, 1},
                                         .ceil_mode = true}));
    OUT(kn_avg_pool(x, &(kn_pool_params){.kernel = {2, 3}, .stride = {3, 2}, .ceil_mode = true}));
    OUT(kn_avg_pool(x, &(kn_pool_params){.kernel = {3, 3},
                                         .stride = {2, 2},
                                         .pad_begin = {1, 1},
                                         .pad_end = {1, 1},
                                         .ceil_mode = true,
                                         .count_include_pad = true}));
    OUT(kn_avg_pool(
        x, &(kn_pool_params){
               .kernel = {2, 3}, .stride = {3, 2}, .ceil_mode = true, .count_include_pad = true}));
    OUT(kn_global_avg_pool(x, KN_LAYOUT_NCHW)), OUT(kn_global_max_pool(xh, KN_LAYOUT_NHWC));
    OUT(kn_adaptive_avg_pool2d(x, 2, 4, KN_LAYOUT_NCHW)),
        OUT(kn_adaptive_max_pool2d(x, 1, 1, KN_LAYOUT_NCHW));
    OUT(kn_adaptive_avg_pool2d(xh, 4, 4, KN_LAYOUT_NHWC));
    OUT(kn_upsample_nearest2d(x, 16, 16, KN_LAYOUT_NCHW)),
        OUT(kn_upsample_nearest2d(x, 12, 5, KN_LAYOUT_NCHW));
    OUT(kn_upsample_bilinear2d(x, 13, 16, false, KN_LAYOUT_NCHW)),
        OUT(kn_upsample_bilinear2d(xh, 11, 5, true, KN_LAYOUT_NHWC));
    kn_tensor *gm = param(g, "gamma", 1, c, 0.5, 1.5, 20), *bt = param(g, "beta", 1, c, -1, 1, 21);
    kn_tensor *rm = param(g, "mean", 1, c, -0.5, 0.5, 22), *rv = param(g, "var", 1, c, 0.5, 2, 23);
    OUT(kn_batch_norm(x, gm, bt, rm, rv, false, 0.1, 1e-5, KN_LAYOUT_NCHW));
    OUT(kn_batch_norm(xh, NULL, bt, rm, rv, false, 0.1, 1e-3, KN_LAYOUT_NHWC));
    kn_tensor *lg = param(g, "ln.g", 2, (int64_t[]){8, 8}, 0.5, 1.5, 24),
              *lb = param(g, "ln.b", 2, (int64_t[]){8, 8}, -1, 1, 25);
    OUT(kn_layer_norm(x, 2, lg, lb, 1e-5)), OUT(kn_layer_norm(x, 1, NULL, NULL, 1e-3));
    OUT(kn_rms_norm(x, 2, lg, 1e-5)), OUT(kn_group_norm(x, 2, gm, bt, 1e-5)),
        OUT(kn_group_norm(x, 4, NULL, NULL, 1e-5));
    OUT(kn_instance_norm(x, gm, bt, 1e-5)), OUT(kn_instance_norm(x, NULL, NULL, 1e-4));
    OUT(kn_softmax(x, 1)), OUT(kn_log_softmax(x, -1)), OUT(kn_dropout(x, 0.5, false));
    in[0] = uniform(4, sx, -2, 2, 26), *n_in = 1;
    return g;
}

static kn_graph *build_linalg(kn_tensor **in, int *n_in)
{
    kn_graph *g = kn_graph_new();
    int64_t sa[3] = {2, 3, 4}, sb[3] = {2, 5, 4}, sm[2] = {3, 4};
    kn_tensor *a = T(kn_graph_input(g, "a", KN_F32, 3, sa)),
              *b = T(kn_graph_input(g, "b", KN_F32, 3, sb));
    kn_tensor *m = T(kn_graph_input(g, "m", KN_F32, 2, sm));
    kn_tensor *w = param(g, "w", 2, (int64_t[]){6, 4}, -0.5, 0.5, 30),
              *bias = param(g, "bias", 1, (int64_t[]){6}, -1, 1, 31);
    OUT(kn_matmul_t(a, b, false, true)), OUT(kn_matmul_t(m, m, true, false)),
        OUT(kn_matmul(a, T(kn_transpose(b, 1, 2))));
    OUT(kn_matmul(m, T(kn_narrow(w, 0, 0, 4)))), OUT(kn_linear(m, w, bias)),
        OUT(kn_linear(a, w, bias)), OUT(kn_linear(m, w, NULL));
    /* c (3, 6): a (6) bias would meet a fused_elementwise broadcast bug of kiln's (reported) */
    OUT(kn_addmm(param(g, "c", 2, (int64_t[]){3, 6}, -1, 1, 35), m, T(kn_transpose(w, 0, 1)), 0.5,
                 2)),
        OUT(kn_matmul(T(kn_reshape(m, 1, (int64_t[]){12})),
                      T(kn_reshape(a, 2, (int64_t[]){12, 2}))));
    in[0] = uniform(3, sa, -1, 1, 32), in[1] = uniform(3, sb, -1, 1, 33),
    in[2] = uniform(2, sm, -1, 1, 34), *n_in = 3;
    return g;
}

/* A conv → bn → add → relu and linear → gelu chain the inference passes
 * turn into conv2d_fused / linear_fused and fused_elementwise. */
static kn_graph *build_fusable(kn_tensor **in, int *n_in)
{
    kn_graph *g = kn_graph_new();
    int64_t sx[4] = {2, 3, 6, 6}, c[1] = {5};
    kn_tensor *x = T(kn_graph_input(g, "x", KN_F32, 4, sx));
    kn_tensor *w = param(g, "w", 4, (int64_t[]){5, 3, 3, 3}, -0.4, 0.4, 40);
    kn_tensor *y =
        T(kn_conv2d(x, w, NULL, &(kn_conv_params){.pad_begin = {1, 1}, .pad_end = {1, 1}}));
    y = T(kn_batch_norm(y, param(g, "g", 1, c, 0.5, 1.5, 41), param(g, "bb", 1, c, -1, 1, 42),
                        param(g, "m", 1, c, -0.5, 0.5, 43), param(g, "v", 1, c, 0.5, 2, 44), false,
                        0.1, 1e-5, KN_LAYOUT_NCHW));
    kn_tensor *w2 = param(g, "w2", 4, (int64_t[]){5, 5, 1, 1}, -0.4, 0.4, 45);
    kn_tensor *z = T(kn_relu(T(kn_add(T(kn_conv2d(y, w2, NULL, NULL)), y))));
    kn_tensor *h = T(kn_sigmoid(T(kn_mul(T(kn_add_scalar(z, 0.5)), T(kn_tanh(z))))));
    kn_tensor *f = T(kn_flatten(T(kn_global_avg_pool(h, KN_LAYOUT_NCHW)), 1, -1));
    kn_tensor *l = T(kn_gelu(T(kn_linear(f, param(g, "fc", 2, (int64_t[]){7, 5}, -0.5, 0.5, 46),
                                         param(g, "fcb", 1, (int64_t[]){7}, -1, 1, 47)))));
    OUT(kn_silu(
        T(kn_add(l, T(kn_linear(f, param(g, "fc2", 2, (int64_t[]){7, 5}, -0.5, 0.5, 48), NULL))))));
    OUT(kn_hard_swish(T(kn_sub(T(kn_exp(h)), T(kn_mul_scalar(h, 0.3))))));
    in[0] = uniform(4, sx, -1, 1, 49), *n_in = 1;
    return g;
}

static kn_graph *build_rnn(kn_tensor **in, int *n_in)
{
    kn_graph *g = kn_graph_new();
    int64_t sx[2] = {2, 3}, sh[2] = {2, 4};
    kn_tensor *x = T(kn_graph_input(g, "x", KN_F32, 2, sx)),
              *h = T(kn_graph_input(g, "h", KN_F32, 2, sh));
    kn_tensor *ho = NULL, *co = NULL;
    KT_OK(kn_lstm_cell(x, h, h, param(g, "wi", 2, (int64_t[]){16, 3}, -0.5, 0.5, 50),
                       param(g, "wh", 2, (int64_t[]){16, 4}, -0.5, 0.5, 51),
                       param(g, "bi", 1, (int64_t[]){16}, -0.5, 0.5, 52), NULL, &ho, &co));
    OUT(ho), OUT(co);
    OUT(kn_gru_cell(x, h, param(g, "gi", 2, (int64_t[]){12, 3}, -0.5, 0.5, 53),
                    param(g, "gh", 2, (int64_t[]){12, 4}, -0.5, 0.5, 54), NULL,
                    param(g, "gb", 1, (int64_t[]){12}, -0.5, 0.5, 55)));
    in[0] = uniform(2, sx, -1, 1, 56), in[1] = uniform(2, sh, -1, 1, 57), *n_in = 2;
    return g;
}

static void check_builder(const char *name, builder fn, int first_opset)
{
    for (int compiled = 0; compiled < 2; compiled++) {
        for (int opset = first_opset; opset <= 17; opset += 17 - first_opset > 2 ? 2 : 1) {
            kn_tensor *in[8] = {0};
            int n_in = 0;
            kn_graph *g = fn(in, &n_in);
            release_kept();
            char label[64];
            snprintf(label, sizeof label, "%s_%s", name, compiled ? "compiled" : "raw");
            if (compiled) KT_OK(kn_graph_compile(g, KN_GRAPH_INFERENCE));
            round_trip(label, g, n_in, in, opset);
            kn_graph_free(g);
            for (int i = 0; i < n_in; i++)
                kn_tensor_unref(in[i]);
        }
    }
}

static void test_unary(void)
{
    check_builder("unary", build_unary, 13);
}
static void test_binary(void)
{
    check_builder("binary", build_binary, 13);
}
static void test_shape(void)
{
    check_builder("shape", build_shape, 13);
}
static void test_index(void)
{
    check_builder("index", build_index, 13);
}
static void test_scatter_add(void)
{
    check_builder("scatter_add", build_scatter_add, 16);
}
static void test_conv(void)
{
    check_builder("conv", build_conv, 13);
}
static void test_pool_norm(void)
{
    check_builder("pool_norm", build_pool_norm, 13);
}
static void test_linalg(void)
{
    check_builder("linalg", build_linalg, 13);
}
static void test_fusable(void)
{
    check_builder("fusable", build_fusable, 13);
}
static void test_rnn(void)
{
    check_builder("rnn", build_rnn, 17);
}

/* The compiled graph really holds the fused ops the passes make. */
static void test_fused_ops_present(void)
{
    kn_tensor *in[8] = {0};
    int n_in = 0;
    kn_graph *g = build_fusable(in, &n_in);
    release_kept();
    KT_OK(kn_graph_compile(g, KN_GRAPH_INFERENCE));
    char path[256];
    char params[256];
    snprintf(path, sizeof path, "%s/fused_present.json", tmpdir);
    snprintf(params, sizeof params, "%s/fused_present.safetensors", tmpdir);
    KT_OK(kn_graph_save(g, path, params));
    FILE *f = fopen(path, "r");
    char buf[1 << 16] = "";
    size_t len = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[len] = 0;
    if (f) fclose(f);
    KT_CHECK(strstr(buf, "conv2d_fused") && strstr(buf, "linear_fused") &&
                 strstr(buf, "fused_elementwise"),
             "the compiled graph has conv2d_fused, linear_fused and fused_elementwise");
    kn_graph_free(g);
    for (int i = 0; i < n_in; i++)
        kn_tensor_unref(in[i]);
}

/* ---------------------------------------------------------------- blocks */
/* Fills every running statistic with values in [0.5, 1.5]. */
static void randomize_state(kn_block *b)
{
    for (int i = 0; i < kn_block_num_params(b); i++)
        if (kn_block_param_is_state(b, i)) {
            kn_tensor *p = kn_block_param_at(b, i),
                      *r = uniform(kn_tensor_ndim(p), kn_tensor_shape(p), 0.5, 1.5,
                                   100 + (uint64_t)i);
            KT_OK(kn_tensor_copy_(p, r));
            kn_tensor_unref(r);
        }
}

/* b in inference mode, hybridized and run on x (taken): its compiled graph. */
static void check_block_on(const char *name, kn_block *b, kn_tensor *x, int opset_step)
{
    KT_NOTNULL(b);
    if (!b) {
        kn_tensor_unref(x);
        return;
    }
    kn_tensor *y = NULL;
    kn_block_set_training(b, false);
    KT_OK(kn_block_init_shapes(b, 1, &x));
    randomize_state(b);
    KT_OK(kn_block_hybridize(b, KN_HYBRIDIZE_ON));
    KT_OK(kn_block_forward(b, 1, &x, 1, &y));
    kn_graph *g = kn_block_graph(b);
    KT_NOTNULL(g);
    for (int opset = 13; g && opset <= 17; opset += opset_step)
        round_trip(name, g, 1, &x, opset);
    kn_tensor_unref(x), kn_tensor_unref(y);
    kn_block_free(b);
}

/* How often `word` occurs in the file (an op type occurs once per node). */
static int count_in_file(const char *path, const char *word)
{
    size_t len = 0, wl = strlen(word);
    char *data = kt_read_file(path, &len);
    if (!data) return -1;
    int n = 0;
    for (size_t i = 0; i + wl <= len; i++)
        n += !memcmp(data + i, word, wl);
    free(data);
    return n;
}

static void check_block(const char *name, kn_block *b, int ndim, const int64_t *shape,
                        int opset_step)
{
    check_block_on(name, b, uniform(ndim, shape, -1, 1, 60), opset_step);
}

static void test_model_zoo(void)
{
    check_block("mlp", kn_model_new("mlp", NULL), 4, (int64_t[]){2, 1, 28, 28}, 4);
    check_block("lenet", kn_model_new("lenet", NULL), 4, (int64_t[]){2, 1, 28, 28}, 4);
    check_block(
        "resnet18",
        kn_model_new("resnet18",
                     &(kn_model_config){.num_classes = 10, .image_size = 32, .cifar_stem = true}),
        4, (int64_t[]){1, 3, 32, 32}, 4);
    check_block(
        "mobilenet_v2",
        kn_model_new("mobilenet_v2",
                     &(kn_model_config){.num_classes = 10, .image_size = 32, .width_mult = 0.5}),
        4, (int64_t[]){1, 3, 32, 32}, 4);
    /* the graphs run NHWC inside (the layout pass, on AVX-512): the files
     * are NCHW again, Transposes only at the region's edges */
    for (int i = 0; i < 2; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s_13.onnx", tmpdir, i ? "mobilenet_v2" : "resnet18");
        KT_CHECK(count_in_file(path, "Transpose") <= 4, "%s: %d Transposes", path,
                 count_in_file(path, "Transpose"));
    }
    kn_model_config seq = {.vocab_size = 50,
                           .num_classes = 3,
                           .d_model = 16,
                           .num_heads = 2,
                           .num_layers = 2,
                           .ffn_dim = 32,
                           .max_len = 8};
    int64_t tokens[12] = {1, 7, 49, 3, 0, 22, 5, 5, 31, 2, 40, 9}, ts[2] = {2, 6};
    check_block_on("transformer", kn_model_new("transformer_encoder", &seq), ints(2, ts, tokens),
                   4);
    check_block_on("lstm", kn_model_new("lstm_classifier", &seq), ints(2, ts, tokens), 4);
}

/* A hybridized sequential block of layers with norms, pools and activations. */
static void test_layer_block(void)
{
    kn_block *seq = kn_nn_sequential();
    kn_block *layers[] = {
        kn_nn_conv2d(3, 8, 3, 1, 1, KN_ACT_NONE),
        kn_nn_batch_norm(8, 0.1, 1e-5, KN_LAYOUT_NCHW),
        kn_nn_activation(KN_ACT_RELU6),
        kn_nn_max_pool(2, 2, 0, KN_LAYOUT_NCHW),
        kn_nn_group_norm(2, 8, 1e-5, true),
        kn_nn_activation(KN_ACT_GELU),
        kn_nn_conv(&(kn_conv_layer){.ndim = 2,
                                    .channels = 8,
                                    .kernel = {3, 3},
                                    .padding = {1, 1},
                                    .groups = 2,
                                    .act = KN_ACT_SILU}),
        kn_nn_instance_norm(8, 1e-5, true),
        kn_nn_activation(KN_ACT_HARDSWISH),
        kn_nn_avg_pool(3, 1, 1, KN_LAYOUT_NCHW),
        kn_nn_layer_norm(2, 1e-5, true),
        kn_nn_activation(KN_ACT_LEAKY_RELU),
        kn_nn_activation(KN_ACT_ELU),
        kn_nn_activation(KN_ACT_GELU_TANH),
        kn_nn_activation(KN_ACT_MISH),
        kn_nn_global_avg_pool(KN_LAYOUT_NCHW, true),
        kn_nn_dense(0, 6, true, KN_ACT_TANH),
        kn_nn_dropout(0.3),
        kn_nn_dense(6, 4, true, KN_ACT_SOFTPLUS),
    };
    for (size_t i = 0; i < sizeof layers / sizeof *layers; i++)
        KT_OK(kn_sequential_add(seq, layers[i]));
    check_block("layers", seq, 4, (int64_t[]){2, 3, 8, 8}, 1);
}

/* ---------------------------------------------------------------- bad input */
static bool file_equals(const char *path, const char *want, size_t n)
{
    FILE *f = fopen(path, "rb");
    char buf[256] = "";
    size_t len = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    return len == n && !memcmp(buf, want, n);
}

static void test_bad_input(void)
{
    kn_tensor *in[8] = {0};
    int n_in = 0;
    kn_graph *g = build_linalg(in, &n_in);
    release_kept();
    char path[256];
    snprintf(path, sizeof path, "%s/bad.onnx", tmpdir);
    KT_CHECK(kt_expect_fail_status("onnx_export", kn_onnx_export(NULL, path, 17), "graph is NULL"),
             "NULL graph");
    KT_CHECK(kt_expect_fail_status("onnx_export", kn_onnx_export(g, NULL, 17), "path"),
             "NULL path");
    KT_CHECK(kt_expect_fail_status("onnx_export", kn_onnx_export(g, "", 17), "path"), "empty path");
    KT_CHECK(kt_expect_fail_status("onnx_export", kn_onnx_export(g, path, 12), "opset 12"),
             "opset too old");
    KT_CHECK(kt_expect_fail_status("onnx_export", kn_onnx_export(g, path, 18), "13 to 17"),
             "opset too new");
    KT_CHECK(kt_expect_fail_status("onnx_export", kn_onnx_export(g, path, -1), "opset -1"),
             "negative opset");
    KT_CHECK(access(path, F_OK) != 0, "nothing written for bad arguments");
    /* unwritable places: a missing folder, a directory in the way */
    char missing[300], dir[300];
    snprintf(missing, sizeof missing, "%s/no/such/dir/m.onnx", tmpdir);
    KT_CHECK(kt_expect_fail_status("onnx_export", kn_onnx_export(g, missing, 0), "onnx_export"),
             "missing folder");
    snprintf(dir, sizeof dir, "%s/adir", tmpdir);
    KT_CHECK(mkdir(dir, 0755) == 0, "mkdir");
    KT_CHECK(kt_expect_fail_status("onnx_export", kn_onnx_export(g, dir, 0), "intact"),
             "a directory in the way");
    struct stat st;
    KT_CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode), "the directory is still there");
    kn_graph_free(g);
    for (int i = 0; i < n_in; i++)
        kn_tensor_unref(in[i]);

    /* a loss is a training op: the error names it and the node; the old file stays */
    const char old[] = "old contents";
    FILE *f = fopen(path, "wb");
    if (f) fwrite(old, 1, sizeof old, f), fclose(f);
    g = kn_graph_new();
    int64_t sh[2] = {4, 3};
    kn_tensor *x = T(kn_graph_input(g, "x", KN_F32, 2, sh)),
              *t = T(kn_graph_input(g, "t", KN_I64, 1, sh));
    OUT(kn_cross_entropy(T(kn_relu(x)), t, NULL, &(kn_loss_params){0}));
    release_kept();
    kn_status s = kn_onnx_export(g, path, 0);
    KT_CHECK(s == KN_ERR_UNSUPPORTED && strstr(kn_last_error(), "node 1") &&
                 strstr(kn_last_error(), "training op"),
             "names the node and why: %s", kn_last_error());
    KT_CHECK(kt_expect_fail_status("onnx_export", s, "cross_entropy"), "unsupported op named");
    KT_CHECK(file_equals(path, old, sizeof old), "the old file is intact");
    kn_graph_free(g);

    /* scatter_add needs opset 16 */
    int n2 = 0;
    g = build_scatter_add(in, &n2);
    release_kept();
    s = kn_onnx_export(g, path, 15);
    KT_CHECK(strstr(kn_last_error(), "opset 16") != NULL, "says which opset: %s", kn_last_error());
    KT_CHECK(kt_expect_fail_status("onnx_export", s, "scatter_add"), "scatter_add at 15");
    KT_CHECK(file_equals(path, old, sizeof old), "the old file is intact");
    kn_graph_free(g);
    for (int i = 0; i < n2; i++)
        kn_tensor_unref(in[i]);

    /* adaptive pooling to sizes that do not divide the input has no ONNX form */
    g = kn_graph_new();
    int64_t sx[4] = {1, 2, 7, 7};
    x = T(kn_graph_input(g, "x", KN_F32, 4, sx));
    OUT(kn_adaptive_avg_pool2d(x, 3, 3, KN_LAYOUT_NCHW));
    release_kept();
    s = kn_onnx_export(g, path, 17);
    KT_CHECK(kt_expect_fail_status("onnx_export", s, "adaptive_avg_pool2d"), "adaptive 7 -> 3");
    KT_CHECK(file_equals(path, old, sizeof old), "the old file is intact");
    kn_graph_free(g);
}

/* Names: an input named like a generated name, a duplicated parameter
 * name, an output that is an input and one output given twice. */
static void test_names(void)
{
    kn_graph *g = kn_graph_new();
    int64_t sh[2] = {2, 3};
    kn_tensor *x = T(kn_graph_input(g, "kn_v1", KN_F32, 2, sh)),
              *y = T(kn_graph_input(g, "output_0", KN_F32, 2, sh));
    kn_tensor *p1 = param(g, "p", 2, sh, -1, 1, 70), *p2 = param(g, "p", 2, sh, 2, 3, 71);
    kn_tensor *z = T(kn_add(T(kn_mul(x, p1)), T(kn_mul(y, p2))));
    OUT(kn_tensor_ref(z)), OUT(kn_tensor_ref(z)), OUT(kn_tensor_ref(x));
    release_kept();
    kn_tensor *in[2] = {uniform(2, sh, -1, 1, 72), uniform(2, sh, -1, 1, 73)};
    round_trip("names", g, 2, in, 17);
    kn_graph_free(g);
    kn_tensor_unref(in[0]), kn_tensor_unref(in[1]);
}

/* f16 values (an AMP-style graph): casts and f16 ops export as such. */
static kn_graph *build_f16(kn_tensor **in, int *n_in)
{
    kn_graph *g = kn_graph_new();
    int64_t sh[2] = {3, 5};
    kn_tensor *x = T(kn_graph_input(g, "x", KN_F16, 2, sh));
    kn_tensor *w = T(kn_cast(param(g, "w", 2, (int64_t[]){4, 5}, -1, 1, 80), KN_F16));
    kn_tensor *y = T(kn_relu(T(kn_linear(x, w, NULL))));
    OUT(kn_add(y, T(kn_mul(y, y)))), OUT(kn_tanh(x)), OUT(kn_cast(x, KN_F32));
    in[0] = kn_cast(T(uniform(2, sh, -1, 1, 81)), KN_F16), *n_in = 1;
    return g;
}
static void test_f16(void)
{
    check_builder("f16", build_f16, 17);
}

/* Every allocation failure during an export fails cleanly, leaks nothing
 * and leaves no file behind. */
typedef struct walk_ctx {
    kn_graph *g;
    char path[256];
} walk_ctx;
static kn_status export_once(void *ctx)
{
    walk_ctx *w = ctx;
    kn_status s = kn_onnx_export(w->g, w->path, 17);
    if (s) KT_CHECK(access(w->path, F_OK) != 0, "no file after a failure: %s", kn_last_error());
    if (!s) unlink(w->path);
    return s;
}
static void test_alloc_failures(void)
{
    kn_tensor *in[8] = {0};
    int n_in = 0;
    walk_ctx w = {.g = build_fusable(in, &n_in)};
    release_kept();
    KT_OK(kn_graph_compile(w.g, KN_GRAPH_INFERENCE));
    snprintf(w.path, sizeof w.path, "%s/walk.onnx", tmpdir);
    int points = kt_alloc_walk("onnx_export", export_once, &w);
    KT_CHECK(points > 5, "%d failure points walked", points);
    kn_graph_free(w.g);
    for (int i = 0; i < n_in; i++)
        kn_tensor_unref(in[i]);
}

/* ---------------------------------------------------------------- python */
static void test_checker_and_runtime(void)
{
    const char *py = getenv("KILN_PYTHON") ? getenv("KILN_PYTHON") : "/usr/bin/python3";
    const char *data = getenv("KILN_TEST_DATA");
    char script[512], cmd[1400];
    if (data)
        snprintf(script, sizeof script, "%s/onnx/check_export.py", data);
    else {
        const char *slash = strrchr(__FILE__, '/');
        snprintf(script, sizeof script, "%.*s/onnx/check_export.py",
                 slash ? (int)(slash - __FILE__) : 1, slash ? __FILE__ : ".");
    }
    snprintf(cmd, sizeof cmd, "%s -c 'import onnx' >/dev/null 2>&1", py);
    if (access(py, X_OK) != 0 || access(script, R_OK) != 0 || system(cmd) != 0) {
        printf("skipped: onnx.checker / ONNX Runtime checks (%s with the onnx package not found)\n",
               py);
        return;
    }
    snprintf(cmd, sizeof cmd, "%s %s --list %s > %s/check.log 2>&1", py, script, listpath, tmpdir);
    int rc = system(cmd);
    snprintf(cmd, sizeof cmd, "%s/check.log", tmpdir);
    FILE *f = fopen(cmd, "r");
    char line[1024];
    int ok = 0, ort_ok = 0, skipped = 0;
    while (f && fgets(line, sizeof line, f)) {
        ok += strstr(line, "onnx.checker: ok") != NULL;
        ort_ok += strstr(line, ": ok") && strstr(line, "onnxruntime") != NULL;
        skipped += strstr(line, "onnxruntime: skipped") != NULL;
        if (!strstr(line, "skipped") &&
            (strstr(line, "FAILED") || strstr(line, "differ") || strstr(line, "Error")))
            fputs(line, stderr);
    }
    if (f) fclose(f);
    KT_CHECK(rc == 0, "check_export.py exit status %d (see the lines above)", rc);
    KT_CHECK(ok == n_files, "onnx.checker accepted %d of %d files", ok, n_files);
    if (skipped)
        printf("onnx.checker passed %d files; ONNX Runtime skipped (not installed)\n", ok);
    else
        KT_CHECK(ort_ok == n_files, "ONNX Runtime matched kiln on %d of %d files", ort_ok, n_files);
}

int main(void)
{
    if (!kn_onnx_supported()) {
        KT_CHECK(kn_onnx_export(NULL, "x.onnx", 0) == KN_ERR_UNSUPPORTED, "the stub fails");
        printf("skipped: kiln was built without ONNX support\n");
        return kt_finish();
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kiln-test-onnx-export-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    snprintf(listpath, sizeof listpath, "%s/list.txt", tmpdir);
    KT_RUN(test_unary);
    KT_RUN(test_binary);
    KT_RUN(test_shape);
    KT_RUN(test_index);
    KT_RUN(test_scatter_add);
    KT_RUN(test_conv);
    KT_RUN(test_pool_norm);
    KT_RUN(test_linalg);
    KT_RUN(test_fusable);
    KT_RUN(test_fused_ops_present);
    KT_RUN(test_rnn);
    KT_RUN(test_names);
    KT_RUN(test_f16);
    KT_RUN(test_alloc_failures);
    KT_RUN(test_model_zoo);
    KT_RUN(test_layer_block);
    KT_RUN(test_bad_input);
    KT_RUN(test_checker_and_runtime);
    if (!getenv("KILN_KEEP_EXPORTS")) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    } else {
        printf("exports kept in %s\n", tmpdir);
    }
    return kt_finish();
}
