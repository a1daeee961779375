/* test_onnx_real.c — real models exported from PyTorch by
 * tests/gen/gen_onnx_real.py (torchvision CNNs, Transformer encoders, an
 * LSTM + GRU model): every model folder under $KILN_ONNX_REAL_DIR (default:
 * onnx-real beside this executable, i.e. build/onnx-real) is loaded and run
 * on each of its test_data_set_N, and every output must match PyTorch's
 * within 1e-4 relative: max|kiln - torch| / max(max|torch|, 1e-30). The
 * first data set runs twice (the second run reuses the cached graph and must
 * give the same bits). The files are large and generated, not committed:
 * without them (or without ONNX support) the test says "skipped" and passes.
 * Generate them with: /usr/bin/python3 tests/gen/gen_onnx_real.py build/onnx-real */
#include "harness.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define RTOL 1e-4
#define MAX_IO 16
#define MAX_MODELS 64

static char root[1024];
static const char *model_name; /* the model the current KT_RUN checks */


static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The models folder: $KILN_ONNX_REAL_DIR, else onnx-real beside the
 * executable (ctest runs it from the build directory, make test too). */
static void find_root(void)
{
    const char *env = getenv("KILN_ONNX_REAL_DIR");
    if (env && *env) {
        snprintf(root, sizeof root, "%s", env);
        return;
    }
    char exe[900];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(root, sizeof root, "onnx-real");
        return;
    }
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash) *slash = 0;
    snprintf(root, sizeof root, "%s/onnx-real", exe);
}

/* Sorted names of the model folders (those holding model.onnx). */
static int list_models(char **names, int cap)
{
    DIR *d = opendir(root);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    char path[2048];
    while ((e = readdir(d)) != NULL && n < cap) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s/model.onnx", root, e->d_name);
        if (kt_is_file(path)) names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    return n;
}

/* Reads DIR/PREFIX_0.pb, PREFIX_1.pb... into t; returns how many (-1 on a
 * read error, reported). */
static int read_tensors(const char *dir, const char *prefix, kn_tensor **t)
{
    char path[2048], name[256];
    int n = 0;
    for (; n < MAX_IO; n++) {
        snprintf(path, sizeof path, "%s/%s_%d.pb", dir, prefix, n);
        if (!kt_is_file(path)) break;
        t[n] = kn_onnx_read_tensor(path, name, sizeof name);
        KT_CHECK(t[n] != NULL, "%s: %s", path, kn_last_error());
        if (!t[n]) return -1;
    }
    return n;
}

/* max|a - b| / max(max|b|, tiny) over the elements, as f64; INFINITY when
 * shapes differ or a holds a NaN where b does not. */
static double rel_error(const kn_tensor *a, const kn_tensor *b)
{
    int nd = kn_tensor_ndim(a);
    if (nd != kn_tensor_ndim(b) ||
        memcmp(kn_tensor_shape(a), kn_tensor_shape(b), sizeof(int64_t) * (size_t)nd))
        return INFINITY;
    int64_t n = kn_tensor_numel(a);
    double *x = malloc(sizeof(double) * (size_t)(n ? n : 1)),
           *y = malloc(sizeof(double) * (size_t)(n ? n : 1));
    double diff = 0, scale = 1e-30;
    if (!x || !y || kn_tensor_copy_to(a, KN_F64, x, sizeof(double) * (size_t)n) ||
        kn_tensor_copy_to(b, KN_F64, y, sizeof(double) * (size_t)n))
        diff = INFINITY;
    for (int64_t i = 0; i < n && isfinite(diff); i++) {
        if (isnan(x[i]) != isnan(y[i])) diff = INFINITY;
        if (isnan(y[i])) continue;
        diff = fmax(diff, fabs(x[i] - y[i]));
        scale = fmax(scale, fabs(y[i]));
    }
    free(x);
    free(y);
    return diff / scale;
}

static void release(kn_tensor **t, int n)
{
    for (int i = 0; i < n; i++) {
        kn_tensor_unref(t[i]);
        t[i] = NULL;
    }
}

/* Runs data set `dir` on m; checks each output. The first set also runs a
 * second time on the cached graph, which must repeat the bits. */
static void check_set(kn_onnx_model *m, const char *dir, bool repeat)
{
    kn_tensor *in[MAX_IO] = {0}, *want[MAX_IO] = {0}, *got[MAX_IO] = {0}, *again[MAX_IO] = {0};
    int n_in = read_tensors(dir, "input", in), n_out = read_tensors(dir, "output", want);
    if (n_in < 0 || n_out < 0) goto done;
    KT_CHECK(n_in == kn_onnx_num_inputs(m) && n_out == kn_onnx_num_outputs(m) && n_out > 0,
             "%s: %d inputs and %d outputs, the model has %d and %d", dir, n_in, n_out,
             kn_onnx_num_inputs(m), kn_onnx_num_outputs(m));
    if (n_in != kn_onnx_num_inputs(m) || n_out != kn_onnx_num_outputs(m)) goto done;
    kn_status s = kn_onnx_run(m, n_in, in, n_out, got);
    KT_CHECK(s == KN_OK, "%s: run: %s", dir, kn_last_error());
    if (s) goto done;
    for (int i = 0; i < n_out; i++) {
        double e = rel_error(got[i], want[i]);
        KT_CHECK(e <= RTOL, "%s: output %d (%s): relative error %.3g > %g", dir, i,
                 kn_onnx_output_name(m, i), e, RTOL);
        printf("  %-40s output %d: relative error %.2e\n", strrchr(dir, '/') + 1, i, e);
    }
    if (repeat) {
        KT_OK(kn_onnx_run(m, n_in, in, n_out, again));
        for (int i = 0; i < n_out; i++)
            KT_CHECK(kt_equal_bits(got[i], again[i]), "%s: output %d differs on the second run",
                     dir, i);
    }
done:
    release(in, MAX_IO);
    release(want, MAX_IO);
    release(got, MAX_IO);
    release(again, MAX_IO);
}

/* ---------------------------------------------------------------- converter checks
 * Two converter rewrites that real models asked for (onnx_ops_math.c):
 * MatMul of an N-D a by a 2-D b runs as one GEMM over a's merged leading
 * dims, and Pow(x, 2) with a constant exponent is x * x. These run without
 * the generated files, on small models written here with a minimal
 * protobuf writer (field numbers from onnx.proto). */
typedef struct pb {
    uint8_t b[4096];
    size_t n;
} pb;

static void pb_varint(pb *p, uint64_t v)
{
    do {
        uint8_t c = v & 0x7f;
        v >>= 7;
        if (p->n < sizeof p->b) p->b[p->n++] = (uint8_t)(c | (v ? 0x80 : 0));
    } while (v);
}

static void pb_key(pb *p, int field, int wire)
{
    pb_varint(p, (uint64_t)field << 3 | (uint64_t)wire);
}

static void pb_bytes(pb *p, int field, const void *data, size_t n)
{
    pb_key(p, field, 2);
    pb_varint(p, n);
    if (p->n + n <= sizeof p->b) memcpy(p->b + p->n, data, n), p->n += n;
}

static void pb_str(pb *p, int field, const char *s)
{
    pb_bytes(p, field, s, strlen(s));
}

static void pb_msg(pb *p, int field, const pb *m)
{
    pb_bytes(p, field, m->b, m->n);
}

static void pb_int(pb *p, int field, uint64_t v)
{
    pb_key(p, field, 0);
    pb_varint(p, v);
}

/* ValueInfoProto: a float tensor named `name` of the given shape. */
static void pb_value_info(pb *g, int field, const char *name, int nd, const int64_t *shape)
{
    pb sh = {.n = 0}, tt = {.n = 0}, ty = {.n = 0}, vi = {.n = 0};
    for (int d = 0; d < nd; d++) {
        pb dim = {.n = 0};
        pb_int(&dim, 1, (uint64_t)shape[d]); /* dim_value */
        pb_msg(&sh, 1, &dim);
    }
    pb_int(&tt, 1, 1); /* elem_type FLOAT */
    pb_msg(&tt, 2, &sh);
    pb_msg(&ty, 1, &tt); /* tensor_type */
    pb_str(&vi, 1, name);
    pb_msg(&vi, 2, &ty);
    pb_msg(g, field, &vi);
}

/* TensorProto initializer: float values, raw_data. */
static void pb_initializer(pb *g, const char *name, int nd, const int64_t *shape, const float *v)
{
    pb t = {.n = 0};
    int64_t n = 1;
    for (int d = 0; d < nd; d++)
        pb_int(&t, 1, (uint64_t)shape[d]), n *= shape[d];
    pb_int(&t, 2, 1);
    pb_str(&t, 8, name);
    pb_bytes(&t, 9, v, sizeof(float) * (size_t)n);
    pb_msg(g, 5, &t);
}

/* NodeProto with up to 2 inputs and an optional INTS attribute. */
static void pb_node(pb *g, const char *op, const char *in0, const char *in1, const char *out,
                    const char *attr, int n_ints, const int64_t *ints)
{
    pb nd = {.n = 0};
    pb_str(&nd, 1, in0);
    if (in1) pb_str(&nd, 1, in1);
    pb_str(&nd, 2, out);
    pb_str(&nd, 4, op);
    if (attr) {
        pb a = {.n = 0};
        pb_str(&a, 1, attr);
        for (int i = 0; i < n_ints; i++)
            pb_int(&a, 8, (uint64_t)ints[i]);
        pb_int(&a, 20, 7); /* type INTS */
        pb_msg(&nd, 5, &a);
    }
    pb_msg(g, 1, &nd);
}

static kn_onnx_model *pb_model(const pb *graph)
{
    pb m = {.n = 0}, op = {.n = 0};
    pb_int(&m, 1, 8); /* ir_version */
    pb_str(&op, 1, "");
    pb_int(&op, 2, 13);
    pb_msg(&m, 8, &op);
    pb_msg(&m, 7, graph);
    return kn_onnx_load_buffer(m.b, m.n, NULL);
}

/* Runs a one-input, one-output model on x. */
static kn_tensor *run1(kn_onnx_model *m, kn_tensor *x)
{
    kn_tensor *y = NULL;
    if (!m || !x || kn_onnx_run(m, 1, &x, 1, &y)) return NULL;
    return y;
}

/* x (2, 3, 4) · w (4, 5) straight, and through Transpose(perm 1 0 2): a (3,
 * 2, 4) view whose leading dims merge; both equal the eager kn_matmul. */
static void test_matmul_folded(void)
{
    float w[20];
    for (int i = 0; i < 20; i++)
        w[i] = (float)sin(0.7 * i) - 0.2f;
    const int64_t xs[3] = {2, 3, 4}, ws[2] = {4, 5}, ys[3] = {2, 3, 5}, ts[3] = {3, 2, 5};
    kn_tensor *x = kn_tensor_rand_uniform(KN_F32, 3, xs, -1, 1),
              *wt = kn_tensor_from_data(KN_F32, 2, ws, w);
    for (int transposed = 0; transposed < 2; transposed++) {
        pb g = {.n = 0};
        const int64_t perm[3] = {1, 0, 2};
        if (transposed) pb_node(&g, "Transpose", "x", NULL, "xt", "perm", 3, perm);
        pb_node(&g, "MatMul", transposed ? "xt" : "x", "w", "y", NULL, 0, NULL);
        pb_str(&g, 2, "g");
        pb_initializer(&g, "w", 2, ws, w);
        pb_value_info(&g, 11, "x", 3, xs);
        pb_value_info(&g, 12, "y", 3, transposed ? ts : ys);
        kn_onnx_model *m = pb_model(&g);
        KT_NOTNULL(m);
        kn_tensor *y = run1(m, x);
        KT_NOTNULL(y);
        kn_tensor *xv = transposed ? kn_permute(x, 3, (const int[]){1, 0, 2}) : kn_tensor_ref(x);
        kn_tensor *want = kn_matmul(xv, wt);
        KT_CHECK(y && kn_tensor_ndim(y) == 3 && kn_tensor_dim(y, 0) == (transposed ? 3 : 2) &&
                     kn_tensor_dim(y, 2) == 5,
                 "MatMul: wrong output shape");
        KT_CHECK(kt_max_abs_diff(y, want) < 1e-6, "MatMul (transposed %d): differs by %g",
                 transposed, kt_max_abs_diff(y, want));
        kt_mark("onnx MatMul", KT_FWD);
        kn_tensor_unref(want);
        kn_tensor_unref(xv);
        kn_tensor_unref(y);
        kn_onnx_free(m);
    }
    kn_tensor_unref(x);
    kn_tensor_unref(wt);
}

/* Pow(x, c) for a constant c: c = 2 gives exactly x * x; c = 2 of shape
 * (1, 1, 1, 1) must still broadcast x (2, 3, 4) to rank 4; c = 3 is pow. */
static void test_pow_square(void)
{
    const int64_t xs[3] = {2, 3, 4}, c1[4] = {1, 1, 1, 1}, y4[4] = {1, 2, 3, 4};
    kn_tensor *x = kn_tensor_rand_uniform(KN_F32, 3, xs, -2, 2);
    struct {
        float c;
        int cnd;
    } cases[] = {{2.0f, 0}, {2.0f, 4}, {3.0f, 0}};
    for (int i = 0; i < 3; i++) {
        pb g = {.n = 0};
        pb_node(&g, "Pow", "x", "c", "y", NULL, 0, NULL);
        pb_str(&g, 2, "g");
        pb_initializer(&g, "c", cases[i].cnd, c1, &cases[i].c);
        pb_value_info(&g, 11, "x", 3, xs);
        pb_value_info(&g, 12, "y", cases[i].cnd ? 4 : 3, cases[i].cnd ? y4 : xs);
        kn_onnx_model *m = pb_model(&g);
        KT_NOTNULL(m);
        kn_tensor *y = run1(m, x);
        KT_NOTNULL(y);
        kn_tensor *three = kn_tensor_scalar(KN_F32, 3.0);
        kn_tensor *want = i < 2 ? kn_mul(x, x) : kn_pow(x, three);
        kn_tensor_unref(three);
        kn_tensor *want_r = cases[i].cnd ? kn_reshape(want, 4, y4) : kn_tensor_ref(want);
        KT_CHECK(y && kn_tensor_ndim(y) == (cases[i].cnd ? 4 : 3), "Pow case %d: rank %d", i,
                 y ? kn_tensor_ndim(y) : -1);
        if (i < 2)
            KT_CHECK(y && want_r && kt_equal_bits(y, want_r), "Pow case %d: not x * x", i);
        else
            KT_CHECK(kt_max_abs_diff(y, want_r) < 1e-5, "Pow case %d: differs by %g", i,
                     kt_max_abs_diff(y, want_r));
        kt_mark("onnx Pow", KT_FWD);
        kn_tensor_unref(want_r);
        kn_tensor_unref(want);
        kn_tensor_unref(y);
        kn_onnx_free(m);
    }
    kn_tensor_unref(x);
}

static void test_model(void)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s/model.onnx", root, model_name);
    kn_onnx_model *m = kn_onnx_load(path);
    KT_CHECK(m != NULL, "%s: load: %s", path, kn_last_error());
    if (!m) return;
    int sets = 0;
    for (;; sets++) {
        snprintf(path, sizeof path, "%s/%s/test_data_set_%d", root, model_name, sets);
        if (!kt_is_dir(path)) break;
        check_set(m, path, sets == 0);
    }
    KT_CHECK(sets > 0, "%s/%s has no test_data_set_0", root, model_name);
    kn_onnx_free(m);
}

int main(void)
{
    if (!kn_onnx_supported()) {
        printf("skipped: kiln was built without ONNX support\n");
        return 0;
    }
    KT_RUN(test_matmul_folded);
    KT_RUN(test_pow_square);
    find_root();
    char *names[MAX_MODELS];
    int n = list_models(names, MAX_MODELS);
    if (!n) {
        printf("skipped: no models in %s (generate them with "
               "/usr/bin/python3 tests/gen/gen_onnx_real.py %s, or set KILN_ONNX_REAL_DIR)\n",
               root, root);
        return kt_finish();
    }
    for (int i = 0; i < n; i++) {
        model_name = names[i];
        kt_run(names[i], test_model);
        free(names[i]);
    }
    return kt_finish();
}
