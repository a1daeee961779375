/* test_onnx.c — the ONNX importer core: loading the fixtures of
 * tests/gen/gen_onnx.py (a tiny dynamic-batch model; corrupt, truncated,
 * cyclic, undefined-input, huge-shape and type-confused models that must be
 * refused with a clear error; unsupported nodes listed together; external
 * data good and bad), running it with two batch sizes (two cached graphs),
 * TensorProto files (round trip for every kiln dtype, files from ONNX's own
 * writer), kn_onnx_graph, and an allocation-failure walk over load + run.
 * Skips (passing) when kiln was built without ONNX support. */
#include "harness.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* Under AddressSanitizer, a huge allocation returns NULL (kiln reports it)
 * instead of aborting: the fuzz regressions ask for terabytes. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}

static char fixtures[512], tmpdir[64];

static const char *fx(const char *name)
{
    static char path[8][700];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, sizeof path[0], "%s/%s", fixtures, name);
    return p;
}

/* Expects loading the fixture to fail with status s and a message holding
 * each needle (NULL-terminated list). */
static void expect_load_error(const char *name, kn_status s, const char *const *needles)
{
    kn_onnx_model *m = kn_onnx_load(fx(name));
    KT_CHECK(m == NULL, "%s: loaded but should not", name);
    kn_onnx_free(m);
    const char *msg = kn_last_error();
    KT_CHECK(kn_last_status() == s, "%s: status %s, expected %s (%s)", name,
             kn_status_name(kn_last_status()), kn_status_name(s), msg);
    for (int i = 0; needles && needles[i]; i++)
        KT_CHECK(strstr(msg, needles[i]) != NULL, "%s: message '%s' lacks '%s'", name, msg,
                 needles[i]);
    kn_clear_error();
}

#define NEEDLES(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ---------------------------------------------------------------- tiny model */
static kn_tensor *batch(int64_t n)
{
    int64_t shape[2] = {n, 3};
    double v[9] = {1, 2, -3, -4, 0.5, 6, 0, 1, -2.5};
    return kt_tensor(KN_F32, 2, shape, v);
}

/* Checks y = relu(x + b), z = x and c = [7, -8, 9] for x = batch(n). */
static void check_tiny_outputs(kn_tensor *x, kn_tensor **out, int64_t n)
{
    const double b[3] = {0.5, -1.0, 2.0};
    double y[9], xv[9];
    KT_OK(kn_tensor_copy_to(x, KN_F64, xv, sizeof(double) * (size_t)(3 * n)));
    for (int i = 0; i < 3 * n; i++)
        y[i] = fmax(0.0, xv[i] + b[i % 3]);
    int64_t shape[2] = {n, 3}, cs[1] = {3};
    kt_check_values("onnx_run", out[0], 2, shape, y, 0, 0);
    kt_check_values("onnx_run", out[1], 2, shape, xv, 0, 0);
    KT_CHECK(out[2] && kn_tensor_dtype(out[2]) == KN_I64, "c is i64");
    kt_check_values("onnx_run", out[2], 1, cs, (const double[]){7, -8, 9}, 0, 0);
}

static void test_tiny_model(void)
{
    kn_onnx_model *m = kn_onnx_load(fx("tiny.onnx"));
    KT_NOTNULL(m);
    if (!m) return;
    KT_CHECK(kn_onnx_num_inputs(m) == 1 && kn_onnx_num_outputs(m) == 3, "1 input, 3 outputs");
    KT_CHECK(!strcmp(kn_onnx_input_name(m, 0), "x") && !strcmp(kn_onnx_output_name(m, 2), "c"),
             "names");
    KT_CHECK(kn_onnx_input_dtype(m, 0) == KN_F32 && kn_onnx_opset(m) == 13, "dtype, opset");
    int64_t shape[KN_MAX_DIMS];
    KT_CHECK(kn_onnx_input_shape(m, 0, shape) == 2 && shape[0] == -1 && shape[1] == 3, "(N, 3)");
    KT_CHECK(kn_onnx_input_name(m, 1) == NULL, "input 1 out of range");
    kn_clear_error();

    /* dynamic batch: batch 1, 3, then 1 again (cached) */
    kn_tensor *x1 = batch(1), *x3 = batch(3), *out[3] = {0};
    KT_OK(kn_onnx_run(m, 1, &x1, 3, out));
    check_tiny_outputs(x1, out, 1);
    /* the constant output is a copy: changing it leaves the model alone */
    if (out[2]) KT_OK(kn_tensor_fill_(out[2], 0));
    for (int i = 0; i < 3; i++)
        kn_tensor_unref(out[i]), out[i] = NULL;
    KT_OK(kn_onnx_run(m, 1, &x3, 3, out));
    check_tiny_outputs(x3, out, 3);
    for (int i = 0; i < 3; i++)
        kn_tensor_unref(out[i]), out[i] = NULL;
    kn_graph *g1 = kn_onnx_graph(m, 1, &x1), *g3 = kn_onnx_graph(m, 1, &x3);
    KT_CHECK(g1 && g3 && g1 != g3, "two graphs cached, one per batch size");
    KT_CHECK(kn_onnx_graph(m, 1, &x1) == g1, "the batch-1 graph is reused");
    KT_OK(kn_onnx_run(m, 1, &x1, 3, out));
    check_tiny_outputs(x1, out, 1); /* c is 7, -8, 9 again */
    for (int i = 0; i < 3; i++)
        kn_tensor_unref(out[i]), out[i] = NULL;
    if (g1) {
        KT_CHECK(kn_graph_num_inputs(g1) == 1 && kn_graph_num_outputs(g1) == 3, "graph io");
        FILE *f = tmpfile();
        KT_OK(kn_graph_print(g1, f));
        if (f) {
            char text[4096] = {0};
            rewind(f);
            size_t n = fread(text, 1, sizeof text - 1, f);
            KT_CHECK(n > 0 && strstr(text, "input x") && strstr(text, "outputs:"),
                     "printed graph: %s", text);
            fclose(f);
        }
    }

    /* bad runs: wrong counts, dtype, static dim */
    kt_expect_fail_status("onnx_run", kn_onnx_run(m, 0, NULL, 3, out), "1");
    kt_expect_fail_status("onnx_run", kn_onnx_run(m, 1, &x1, 2, out), "the model has 3");
    kn_tensor *xi = kn_tensor_zeros(KN_I32, 2, (int64_t[]){1, 3});
    kt_expect_fail_status("onnx_run", kn_onnx_run(m, 1, &xi, 3, out), "declares f32");
    kn_tensor *x4 = kn_tensor_zeros(KN_F32, 2, (int64_t[]){1, 4});
    kt_expect_fail_status("onnx_run", kn_onnx_run(m, 1, &x4, 3, out), "dim 1");
    kn_tensor *x1d = kn_tensor_zeros(KN_F32, 1, (int64_t[]){3});
    kt_expect_fail_status("onnx_graph", kn_onnx_graph(m, 1, &x1d) ? KN_OK : kn_last_status(),
                          "dims");
    KT_CHECK(out[0] == NULL, "failed runs leave outputs NULL");
    kn_tensor_unref(xi), kn_tensor_unref(x4), kn_tensor_unref(x1d);
    kn_tensor_unref(x1), kn_tensor_unref(x3);
    kn_onnx_free(m);
}

static void test_load_buffer(void)
{
    size_t len;
    char *bytes = kt_read_file(fx("tiny.onnx"), &len);
    KT_CHECK(bytes != NULL, "read tiny.onnx");
    if (!bytes) return;
    kn_onnx_model *m = kn_onnx_load_buffer(bytes, len, NULL);
    KT_NOTNULL(m);
    kn_onnx_free(m);
    /* every truncation is refused or loads a valid prefix; never a crash */
    int refused = 0;
    for (size_t cut = 0; cut < len; cut++) {
        kn_onnx_model *t = kn_onnx_load_buffer(bytes, cut, NULL);
        refused += t == NULL;
        kn_onnx_free(t);
    }
    KT_CHECK(refused == (int)len, "all %zu truncations refused (%d)", len, refused);
    /* flipping each byte: no crash, an error or a model */
    for (size_t i = 0; i < len; i++) {
        bytes[i] ^= 0x5a;
        kn_onnx_free(kn_onnx_load_buffer(bytes, len, NULL));
        bytes[i] ^= 0x5a;
    }
    kn_clear_error();
    kt_expect_fail_status("onnx_load",
                          kn_onnx_load_buffer(NULL, 4, NULL) ? KN_OK : kn_last_status(), "NULL");
    kt_expect_fail_status("onnx_load", kn_onnx_load(NULL) ? KN_OK : kn_last_status(), "NULL");
    kt_expect_fail_status("onnx_load",
                          kn_onnx_load("/nonexistent/model.onnx") ? KN_OK : kn_last_status(),
                          "cannot open");
    free(bytes);
}

static void test_bad_models(void)
{
    expect_load_error("corrupt.onnx", KN_ERR_IO, NEEDLES("not a valid ONNX model"));
    expect_load_error("truncated.onnx", KN_ERR_IO, NEEDLES("onnx"));
    expect_load_error("cyclic.onnx", KN_ERR_IO,
                      NEEDLES("'first'", "reads 'b2' before node 1", "cycle"));
    expect_load_error("undefined_input.onnx", KN_ERR_IO,
                      NEEDLES("'r'", "input 'nope' is not defined"));
    expect_load_error("duplicate_output.onnx", KN_ERR_IO,
                      NEEDLES("'r2'", "output 'y' is already defined"));
    expect_load_error("huge_shape.onnx", KN_ERR_IO, NEEDLES("tensor 'w'", "too large"));
    expect_load_error("short_raw.onnx", KN_ERR_IO,
                      NEEDLES("tensor 'w'", "raw_data has 12 bytes", "need 16"));
    expect_load_error("type_confused.onnx", KN_ERR_IO,
                      NEEDLES("tensor 'w'", "float_data holds 0 values"));
    expect_load_error("bad_elem_type.onnx", KN_ERR_UNSUPPORTED, NEEDLES("input 'x'", "dtype ?"));
    expect_load_error("uint16_input.onnx", KN_ERR_UNSUPPORTED, NEEDLES("input 'x'", "UINT16"));
    expect_load_error("opset_99.onnx", KN_ERR_UNSUPPORTED, NEEDLES("opset 99", "1 to 17"));
    /* a huge declared input loads; running it with a small tensor is refused */
    kn_onnx_model *m = kn_onnx_load(fx("huge_input.onnx"));
    KT_NOTNULL(m);
    kn_tensor *x = kn_tensor_zeros(KN_F32, 2, (int64_t[]){2, 2}), *y = NULL;
    if (m) kt_expect_fail_status("onnx_run", kn_onnx_run(m, 1, &x, 1, &y), "declares");
    kn_tensor_unref(x);
    kn_onnx_free(m);
}

static void test_unsupported_listed(void)
{
    expect_load_error(
        "unsupported_nodes.onnx", KN_ERR_UNSUPPORTED,
        NEEDLES("3 unsupported nodes", "'foo1' (FooOp, opset 13): not implemented",
                "'bar' (BarOp, opset 13): not implemented",
                "'mine' (com.example.Custom, opset 0): its domain 'com.example' is not imported"));
    KT_CHECK(strstr(kn_last_error(), "fine") == NULL, "the supported node is not listed");
}

/* Reshape's target shape is a graph input: the graph is built for its
 * values, so each shape gets its own graph and the right answer. */
static void test_baked_input(void)
{
    kn_onnx_model *m = kn_onnx_load(fx("reshape_input.onnx"));
    KT_NOTNULL(m);
    if (!m) return;
    const double v[6] = {1, 2, 3, 4, 5, 6};
    kn_tensor *x = kt_tensor(KN_F32, 1, (int64_t[]){6}, v);
    for (int k = 0; k < 3; k++) {
        int64_t dims[3][2] = {{2, 3}, {3, 2}, {-1, 1}}, want[3][2] = {{2, 3}, {3, 2}, {6, 1}};
        kn_tensor *shape = kn_tensor_from_data(KN_I64, 1, (int64_t[]){2}, dims[k]),
                  *in[2] = {x, shape}, *y = NULL;
        KT_OK(kn_onnx_run(m, 2, in, 1, &y));
        kt_check_values("onnx_run", y, 2, want[k], v, 0, 0);
        kn_tensor_unref(y), kn_tensor_unref(shape);
    }
    kn_tensor_unref(x);
    kn_onnx_free(m);
}

/* Tensor sequences between nodes (SplitToSequence ... ConcatFromSequence). */
static void test_sequences(void)
{
    kn_onnx_model *m = kn_onnx_load(fx("sequence.onnx"));
    KT_NOTNULL(m);
    if (!m) return;
    kn_tensor *x = kt_tensor(KN_F32, 2, (int64_t[]){3, 2}, (const double[]){1, 2, 3, 4, 5, 6}),
              *y = NULL;
    KT_OK(kn_onnx_run(m, 1, &x, 1, &y));
    kt_check_values("onnx_run", y, 2, (int64_t[]){3, 2}, (const double[]){5, 6, 1, 2, 3, 4}, 0, 0);
    kn_tensor_unref(x), kn_tensor_unref(y);
    kn_onnx_free(m);
}

/* ai.onnx.preview.training Gradient: y = sum(tanh(x * w) + x), its
 * gradients with respect to x, w (analytic values) and z (unused: zeros);
 * a y the build no longer holds is a clear error. */
static void test_gradient(void)
{
    kn_onnx_model *m = kn_onnx_load(fx("gradient.onnx"));
    KT_NOTNULL(m);
    if (!m) return;
    double xv[6] = {0.5, -1, 2, 0.25, -0.75, 1.5}, wv[6] = {1, 0.5, -0.25, 2, -1, 0.3};
    double y = 0, dx[6], dw[6];
    for (int i = 0; i < 6; i++) {
        double t = tanh(xv[i] * wv[i]);
        y += t + xv[i];
        dx[i] = (1 - t * t) * wv[i] + 1;
        dw[i] = (1 - t * t) * xv[i];
    }
    kn_tensor *x = kt_tensor(KN_F32, 2, (int64_t[]){2, 3}, xv), *w = kt_tensor(KN_F32, 2, (int64_t[]){2, 3}, wv);
    kn_tensor *z = kt_tensor(KN_F32, 1, (int64_t[]){2}, (const double[]){3, 4});
    kn_tensor *in[3] = {x, w, z}, *out[4] = {NULL};
    KT_OK(kn_onnx_run(m, 3, in, 4, out));
    kt_check_values("gradient y", out[0], 0, NULL, &y, 1e-5, 1e-5);
    kt_check_values("gradient dx", out[1], 2, (int64_t[]){2, 3}, dx, 1e-5, 1e-5);
    kt_check_values("gradient dw", out[2], 2, (int64_t[]){2, 3}, dw, 1e-5, 1e-5);
    kt_check_values("gradient dz", out[3], 1, (int64_t[]){2}, (const double[]){0, 0}, 0, 0);
    for (int i = 0; i < 4; i++)
        kn_tensor_unref(out[i]);
    kn_tensor_unref(x), kn_tensor_unref(w), kn_tensor_unref(z);
    kn_onnx_free(m);

    m = kn_onnx_load(fx("gradient_gone.onnx"));
    KT_NOTNULL(m);
    if (!m) return;
    x = kt_tensor(KN_F32, 1, (int64_t[]){2}, (const double[]){1, 2});
    kn_tensor *dx1 = NULL;
    KT_CHECK(kn_onnx_run(m, 1, &x, 1, &dx1) != KN_OK && !dx1, "a y no longer held fails");
    KT_CHECK(strstr(kn_last_error(), "Gradient") && strstr(kn_last_error(), "'q' is not available"),
             "the error names the node and y: %s", kn_last_error());
    kn_tensor_unref(x);
    kn_onnx_free(m);
}

/* If with its condition given as an input (a graph per value), branches
 * reading an outer value, and a Loop unrolled with carried and scan
 * outputs. */
static void test_control_flow(void)
{
    kn_onnx_model *m = kn_onnx_load(fx("control_flow.onnx"));
    KT_NOTNULL(m);
    if (!m) return;
    kn_tensor *x = kt_tensor(KN_F32, 1, (int64_t[]){3}, (const double[]){1, -2, 0.5});
    for (int flag = 0; flag < 2; flag++) {
        kn_tensor *f = kn_tensor_scalar(KN_BOOL, flag), *in[2] = {x, f}, *out[2] = {NULL, NULL};
        KT_OK(kn_onnx_run(m, 2, in, 2, out));
        double v[3] = {1, -2, 0.5}, scans[9];
        for (int k = 0; k < 3; k++)
            v[k] = flag ? v[k] + 1 : v[k] * 2;
        for (int it = 0; it < 3; it++)
            for (int k = 0; k < 3; k++)
                scans[3 * it + k] = v[k] = v[k] * 2 + it;
        kt_check_values("onnx_run", out[0], 1, (int64_t[]){3}, v, 0, 0);
        kt_check_values("onnx_run", out[1], 2, (int64_t[]){3, 3}, scans, 0, 0);
        kn_tensor_unref(out[0]), kn_tensor_unref(out[1]), kn_tensor_unref(f);
    }
    kn_tensor_unref(x);
    kn_onnx_free(m);
}

/* Inputs the fuzzer found (tests/onnx/fuzz_regressions): each loads or
 * fails cleanly, and runs on zeros or fails cleanly. */
static void test_fuzz_regressions(void)
{
    char dir[700];
    snprintf(dir, sizeof dir, "%s/../fuzz_regressions", fixtures);
    DIR *d = opendir(dir);
    KT_CHECK(d != NULL, "open %s", dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[1000];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        kn_onnx_model *m = kn_onnx_load(path);
        n++;
        int n_in = m ? kn_onnx_num_inputs(m) : 0, n_out = m ? kn_onnx_num_outputs(m) : 0;
        kn_tensor *in[8] = {0}, *out[8] = {0};
        bool ok = m && n_in <= 8 && n_out <= 8;
        for (int i = 0; ok && i < n_in; i++) {
            int64_t shape[KN_MAX_DIMS];
            int nd = kn_onnx_input_shape(m, i, shape);
            for (int k = 0; k < nd; k++)
                ok &= shape[k] >= 0 && shape[k] <= 64;
            ok = ok && nd >= 0 &&
                 (in[i] = kn_tensor_zeros(kn_onnx_input_dtype(m, i), nd, shape)) != NULL;
        }
        if (ok && kn_onnx_run(m, n_in, in, n_out, out) != KN_OK)
            KT_CHECK(kn_last_error()[0], "%s: a failed run says why", e->d_name);
        for (int i = 0; i < 8; i++)
            kn_tensor_unref(in[i]), kn_tensor_unref(out[i]);
        kn_onnx_free(m);
        kn_clear_error();
    }
    if (d) closedir(d);
    KT_CHECK(n > 0, "regression inputs found");
}

/* ---------------------------------------------------------------- external data */
static void test_external_data(void)
{
    kn_onnx_model *m = kn_onnx_load(fx("external_good.onnx"));
    KT_NOTNULL(m);
    if (m) {
        kn_tensor *x = kn_tensor_zeros(KN_F32, 2, (int64_t[]){2, 3}), *y = NULL;
        KT_OK(kn_onnx_run(m, 1, &x, 1, &y));
        kt_check_values("onnx_run", y, 2, (int64_t[]){2, 3},
                        (const double[]){-2.5, -1.5, -0.5, 0.5, 1.5, 2.5}, 0, 0);
        kn_tensor_unref(x), kn_tensor_unref(y);
        kn_onnx_free(m);
    }
    expect_load_error("external_missing.onnx", KN_ERR_IO,
                      NEEDLES("tensor 'w'", "no_such_file.bin", "not found"));
    expect_load_error("external_escape.onnx", KN_ERR_IO,
                      NEEDLES("tensor 'w'", "leaves the model's folder"));
    expect_load_error("external_absolute.onnx", KN_ERR_IO,
                      NEEDLES("tensor 'w'", "leaves the model's folder"));
    expect_load_error("external_offset.onnx", KN_ERR_IO, NEEDLES("tensor 'w'", "past the end"));
    expect_load_error("external_length.onnx", KN_ERR_IO,
                      NEEDLES("tensor 'w'", "has 20 bytes", "need 24"));
    /* from memory there is no folder to read from */
    size_t len;
    char *bytes = kt_read_file(fx("external_good.onnx"), &len);
    kt_expect_fail_status("onnx", kn_onnx_load_buffer(bytes, len, NULL) ? KN_OK : kn_last_status(),
                          "without a folder");
    free(bytes);
    /* a symbolic link inside the folder pointing outside it is refused */
    char dir[128], link[200], model[200], cmd[900];
    snprintf(dir, sizeof dir, "%s/ext", tmpdir);
    snprintf(link, sizeof link, "%s/weights.bin", dir);
    snprintf(model, sizeof model, "%s/model.onnx", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s %s", dir, fx("external_good.onnx"), model);
    KT_CHECK(system(cmd) == 0, "copy the model");
    KT_CHECK(symlink(fx("weights.bin"), link) == 0, "symlink");
    kn_onnx_model *s = kn_onnx_load(model);
    KT_CHECK(s == NULL && strstr(kn_last_error(), "leaves the model's folder"),
             "symlink refused: %s", kn_last_error());
    kn_onnx_free(s);
    kn_clear_error();
}

/* ---------------------------------------------------------------- tensor files */
static void test_tensor_round_trip(void)
{
    const double v[6] = {1, 0, -2, 3.5, 127, -128};
    for (int dt = 0; dt < KN_DTYPE_COUNT; dt++) {
        int64_t shape[2] = {2, 3};
        kn_tensor *t = kt_tensor((kn_dtype)dt, 2, shape, v);
        if (dt == KN_U8 || dt == KN_BOOL) { /* in range for the dtype */
            kn_tensor_unref(t);
            t = kt_tensor((kn_dtype)dt, 2, shape, (const double[]){1, 0, 2, 3, 255, 1});
        }
        char path[200], name[64] = "";
        snprintf(path, sizeof path, "%s/t%d.pb", tmpdir, dt);
        KT_OK(kn_onnx_write_tensor(path, t, "my tensor"));
        kn_tensor *r = kn_onnx_read_tensor(path, name, sizeof name);
        KT_CHECK(r && kt_equal_bits(t, r), "%s round trip", kn_dtype_name((kn_dtype)dt));
        KT_CHECK(!strcmp(name, "my tensor"), "name kept: '%s'", name);
        kn_tensor_unref(r), kn_tensor_unref(t);
    }
    /* a non-contiguous view and a 0-d tensor */
    kn_tensor *a = kt_tensor(KN_F32, 2, (int64_t[]){2, 3}, v), *at = kn_transpose(a, 0, 1);
    char path[200];
    snprintf(path, sizeof path, "%s/view.pb", tmpdir);
    KT_OK(kn_onnx_write_tensor(path, at, NULL));
    kn_tensor *r = kn_onnx_read_tensor(path, NULL, 0);
    kt_check_values("onnx_read_tensor", r, 2, (int64_t[]){3, 2},
                    (const double[]){1, 3.5, 0, 127, -2, -128}, 0, 0);
    kn_tensor_unref(r), kn_tensor_unref(at), kn_tensor_unref(a);
    kn_tensor *s = kn_tensor_scalar(KN_F64, -0.25);
    KT_OK(kn_onnx_write_tensor(path, s, "s"));
    r = kn_onnx_read_tensor(path, NULL, 0);
    KT_CHECK(r && kn_tensor_ndim(r) == 0, "0-d kept");
    kt_check_values("onnx_read_tensor", r, 0, NULL, (const double[]){-0.25}, 0, 0);
    kn_tensor_unref(r), kn_tensor_unref(s);
    kn_tensor *sym = kn_tensor_symbolic(KN_F32, 1, (int64_t[]){2});
    kt_expect_fail_status("onnx_write_tensor", kn_onnx_write_tensor(path, sym, NULL), "symbolic");
    kn_tensor_unref(sym);
    kn_tensor *one = kn_tensor_ones(KN_F32, 1, (int64_t[]){2});
    kt_expect_fail_status("onnx_write_tensor",
                          kn_onnx_write_tensor("/nonexistent/dir/t.pb", one, NULL),
                          "cannot create");
    kn_tensor_unref(one);
}

static void test_tensor_files_from_onnx(void)
{
    char name[16];
    kn_tensor *t = kn_onnx_read_tensor(fx("typed_f16.pb"), name, sizeof name);
    KT_CHECK(t && kn_tensor_dtype(t) == KN_F16 && !strcmp(name, "h"), "f16 from int32_data");
    kt_check_values("onnx_read_tensor", t, 1, (int64_t[]){3}, (const double[]){1.5, -2, 65504}, 0,
                    0);
    kn_tensor_unref(t);
    t = kn_onnx_read_tensor(fx("typed_bool.pb"), NULL, 0);
    KT_CHECK(t && kn_tensor_dtype(t) == KN_BOOL, "bool");
    kt_check_values("onnx_read_tensor", t, 2, (int64_t[]){2, 2}, (const double[]){1, 0, 0, 1}, 0,
                    0);
    kn_tensor_unref(t);
    t = kn_onnx_read_tensor(fx("typed_i8.pb"), NULL, 0);
    kt_check_values("onnx_read_tensor", t, 1, (int64_t[]){3}, (const double[]){-128, 0, 127}, 0, 0);
    kn_tensor_unref(t);
    t = kn_onnx_read_tensor(fx("typed_f64.pb"), NULL, 0);
    kt_check_values("onnx_read_tensor", t, 1, (int64_t[]){2}, (const double[]){0.1, -1e300}, 0, 0);
    kn_tensor_unref(t);
    t = kn_onnx_read_tensor(fx("typed_i64.pb"), NULL, 0);
    int64_t l[2] = {0};
    KT_CHECK(t && !kn_tensor_copy_to(t, KN_I64, l, sizeof l) && l[0] == -(INT64_C(1) << 62) &&
                 l[1] == 5,
             "i64 exact");
    kn_tensor_unref(t);
    t = kn_onnx_read_tensor(fx("raw_f32.pb"), NULL, 0);
    kt_check_values("onnx_read_tensor", t, 2, (int64_t[]){2, 2}, (const double[]){1, 2, 3, -4.25},
                    0, 0);
    kn_tensor_unref(t);
    /* a STRING TensorProto (written by onnx.helper): text elements */
    t = kn_onnx_read_tensor(fx("string.pb"), NULL, 0);
    KT_CHECK(t && kn_tensor_dtype(t) == KN_STRING && kn_tensor_numel(t) == 1 &&
                 !strcmp(kn_tensor_string(t, 0), "hi"),
             "string.pb reads as the string tensor [\"hi\"]: %s", kn_last_error());
    kt_expect_fail("tensor_copy_to", kn_tensor_copy_to(t, KN_F32, (float[1]){0}, 4) ? NULL : t,
                   "kn_tensor_string");
    kn_tensor_unref(t);
    kt_expect_fail("onnx_read_tensor", kn_onnx_read_tensor(fx("string_nul.pb"), NULL, 0), "NUL");
    kt_expect_fail("onnx_read_tensor", kn_onnx_read_tensor(fx("string_count.pb"), NULL, 0),
                   "string_data holds 1 strings");
    kt_expect_fail("onnx_read_tensor", kn_onnx_read_tensor(fx("corrupt.onnx"), NULL, 0),
                   "not a TensorProto");
    kt_expect_fail("onnx_read_tensor", kn_onnx_read_tensor(fx("missing.pb"), NULL, 0),
                   "cannot open");
}

/* ---------------------------------------------------------------- allocation failures */
static kn_status load_and_run(void *ctx)
{
    (void)ctx;
    kn_onnx_model *m = kn_onnx_load(fx("tiny.onnx"));
    if (!m) return kn_last_status();
    kn_tensor *x = batch(3), *out[3] = {0};
    kn_status s = x ? kn_onnx_run(m, 1, &x, 3, out) : kn_last_status();
    for (int i = 0; i < 3; i++)
        kn_tensor_unref(out[i]);
    if (!s) s = kn_onnx_run(m, 1, &x, 3, out); /* the cached graph */
    for (int i = 0; i < 3; i++)
        kn_tensor_unref(out[i]);
    kn_tensor_unref(x);
    kn_onnx_free(m);
    return s;
}

static kn_status control_flow_run(void *ctx)
{
    (void)ctx;
    kn_onnx_model *m = kn_onnx_load(fx("control_flow.onnx"));
    if (!m) return kn_last_status();
    kn_tensor *x = kn_tensor_ones(KN_F32, 1, (int64_t[]){3}), *f = kn_tensor_scalar(KN_BOOL, 1);
    kn_tensor *in[2] = {x, f}, *out[2] = {NULL, NULL};
    kn_status s = x && f ? kn_onnx_run(m, 2, in, 2, out) : kn_last_status();
    kn_tensor_unref(out[0]), kn_tensor_unref(out[1]), kn_tensor_unref(x), kn_tensor_unref(f);
    kn_onnx_free(m);
    return s;
}

static kn_status read_write(void *ctx)
{
    const char *path = ctx;
    kn_tensor *t = kn_tensor_arange(KN_F32, 0, 6, 1);
    kn_status s = t ? kn_onnx_write_tensor(path, t, "a") : kn_last_status();
    kn_tensor *r = s ? NULL : kn_onnx_read_tensor(path, NULL, 0);
    if (!s && !r) s = kn_last_status();
    kn_tensor_unref(r), kn_tensor_unref(t);
    return s;
}

static void test_alloc_failures(void)
{
    int n = kt_alloc_walk("onnx load+run", load_and_run, NULL);
    KT_CHECK(n > 20, "walked %d allocation failures", n);
    KT_CHECK(kt_alloc_walk("onnx control flow", control_flow_run, NULL) > 20, "control-flow walk");
    char path[200];
    snprintf(path, sizeof path, "%s/walk.pb", tmpdir);
    KT_CHECK(kt_alloc_walk("onnx tensor files", read_write, path) > 2, "tensor file walk");
    kn_onnx_model *m = kn_onnx_load(fx("external_good.onnx"));
    kn_onnx_free(m);
    KT_NOTNULL(m);
}

int main(void)
{
    if (!kn_onnx_supported()) {
        KT_CHECK(kn_onnx_load("x.onnx") == NULL && kn_last_status() == KN_ERR_UNSUPPORTED &&
                     strstr(kn_last_error(), "libonnx-dev"),
                 "the stub says what to install");
        printf("SKIP: kiln was built without ONNX support\n");
        return kt_finish();
    }
    const char *slash = strrchr(__FILE__, '/');
    snprintf(fixtures, sizeof fixtures, "%.*s/onnx/fixtures", slash ? (int)(slash - __FILE__) : 1,
             slash ? __FILE__ : ".");
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kiln-test-onnx-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    KT_RUN(test_tiny_model);
    KT_RUN(test_load_buffer);
    KT_RUN(test_bad_models);
    KT_RUN(test_unsupported_listed);
    KT_RUN(test_baked_input);
    KT_RUN(test_sequences);
    KT_RUN(test_gradient);
    KT_RUN(test_control_flow);
    KT_RUN(test_fuzz_regressions);
    KT_RUN(test_external_data);
    KT_RUN(test_tensor_round_trip);
    KT_RUN(test_tensor_files_from_onnx);
    KT_RUN(test_alloc_failures);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return kt_finish();
}
