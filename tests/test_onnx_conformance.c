/* test_onnx_conformance.c — the ONNX backend test data (Debian's
 * libonnx-testdata) as a conformance suite: each model is loaded and run on
 * its data sets and compared with the expected outputs (rtol 1e-3, atol
 * 1e-7 for floats, exact for integers and bools, NaN matches NaN). Prints a
 * per-op table of passed / failed / unsupported tests per suite, and fails
 * when a test listed in tests/onnx/expected_pass.txt does not pass.
 *
 * Usage: test_onnx_conformance [FILTER] [--verbose] [--write-expected]
 *                              [--no-fork] [--data DIR]
 * FILTER is a substring of the test path ("node/test_relu"). Each test runs
 * in a child process (a crash or a hang is that test's failure) unless
 * --no-fork. --write-expected rewrites the list with every passing test
 * (tests outside FILTER keep their entries). */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define DATA_DIR "/usr/share/libonnx-testdata/data"
#define RTOL 1e-3
#define ATOL 1e-7
#define TIME_LIMIT 20 /* seconds per test */

static const char *const suites[] = {"node", "pytorch-converted", "pytorch-operator", "simple"};
enum { N_SUITES = 4 };
enum { PASS, FAIL, UNSUP, N_CLASSES };
static const char *const class_names[] = {"pass", "FAIL", "unsupported"};

typedef struct result {
    char path[256]; /* suite/test_name */
    char op[64];
    int suite, cls;
    char reason[600];
} result;

/* ---------------------------------------------------------------- small helpers */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}


/* Sorted names in dir starting with prefix; *n gets their count. */
static char **list_dir(const char *dir, const char *prefix, int *n)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    int cap = 64;
    char **names = malloc(sizeof(char *) * (size_t)cap);
    struct dirent *e;
    while (names && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, strlen(prefix))) continue;
        if (*n == cap) {
            char **more = realloc(names, sizeof(char *) * (size_t)(cap *= 2));
            if (!more) break;
            names = more;
        }
        names[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (names) qsort(names, (size_t)*n, sizeof(char *), cmp_str);
    return names;
}

static void free_list(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* ---------------------------------------------------------------- the model's op types
 * A minimal protobuf wire reader, enough for ModelProto.graph (7) ->
 * GraphProto.node (1) -> NodeProto.op_type (4); independent of the loader. */
static bool varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return true;
    }
    return false;
}

/* Calls fn on every length-delimited field `field` of the message. */
static void each_field(const uint8_t *p, const uint8_t *end, uint64_t field,
                       void (*fn)(const uint8_t *, const uint8_t *, void *), void *ctx)
{
    uint64_t key, v;
    while (p < end && varint(&p, end, &key)) {
        switch (key & 7) {
        case 0:
            if (!varint(&p, end, &v)) return;
            break;
        case 1:
            p += 8;
            break;
        case 5:
            p += 4;
            break;
        case 2:
            if (!varint(&p, end, &v) || v > (uint64_t)(end - p)) return;
            if (key >> 3 == field) fn(p, p + v, ctx);
            p += v;
            break;
        default:
            return;
        }
    }
}

typedef struct op_list {
    char ops[64][64];
    int n;
} op_list;

static void on_op_type(const uint8_t *p, const uint8_t *end, void *ctx)
{
    op_list *l = ctx;
    if (l->n >= 64) return;
    size_t n = (size_t)(end - p) < 63 ? (size_t)(end - p) : 63;
    memcpy(l->ops[l->n], p, n);
    l->ops[l->n++][n] = 0;
}
static void on_node(const uint8_t *p, const uint8_t *end, void *ctx)
{
    each_field(p, end, 4, on_op_type, ctx);
}
static void on_graph(const uint8_t *p, const uint8_t *end, void *ctx)
{
    each_field(p, end, 1, on_node, ctx);
}

/* Lowercase letters and digits of s. */
static void squash(const char *s, char *out, size_t size)
{
    size_t n = 0;
    for (; *s && n + 1 < size; s++)
        if ((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9'))
            out[n++] = *s;
        else if (*s >= 'A' && *s <= 'Z')
            out[n++] = (char)(*s - 'A' + 'a');
    out[n] = 0;
}

/* The test's main op: the node op whose name starts the test name (the
 * longest such), else the only op, else the first op that is not Constant. */
static void main_op(const char *model_path, const char *test_name, char *op, size_t size)
{
    size_t len;
    char *buf = kt_read_file(model_path, &len);
    op_list l = {.n = 0};
    if (buf) each_field((const uint8_t *)buf, (const uint8_t *)buf + len, 7, on_graph, &l);
    free(buf);
    char name[256], cand[64];
    squash(test_name + 5, name, sizeof name); /* after "test_" */
    int best = -1;
    size_t best_len = 0;
    for (int i = 0; i < l.n; i++) {
        squash(l.ops[i], cand, sizeof cand);
        size_t cl = strlen(cand);
        if (cl && !strncmp(name, cand, cl) && cl > best_len) best = i, best_len = cl;
    }
    for (int i = 0; best < 0 && i < l.n; i++)
        if (strcmp(l.ops[i], "Constant") || l.n == 1) best = i;
    snprintf(op, size, "%s", best >= 0 ? l.ops[best] : "?");
}

/* ---------------------------------------------------------------- comparing */
static bool compare(const kn_tensor *got, const kn_tensor *want, int k, char *why, size_t size)
{
    if (kn_tensor_dtype(got) != kn_tensor_dtype(want)) {
        snprintf(why, size, "output %d is %s, expected %s", k, kn_dtype_name(kn_tensor_dtype(got)),
                 kn_dtype_name(kn_tensor_dtype(want)));
        return false;
    }
    int nd = kn_tensor_ndim(got);
    bool same = nd == kn_tensor_ndim(want);
    for (int d = 0; same && d < nd; d++)
        same = kn_tensor_shape(got)[d] == kn_tensor_shape(want)[d];
    if (!same) {
        char a[128] = "", b[128] = "";
        for (int d = 0; d < nd; d++)
            snprintf(a + strlen(a), sizeof a - strlen(a), "%s%lld", d ? "," : "",
                     (long long)kn_tensor_shape(got)[d]);
        for (int d = 0; d < kn_tensor_ndim(want); d++)
            snprintf(b + strlen(b), sizeof b - strlen(b), "%s%lld", d ? "," : "",
                     (long long)kn_tensor_shape(want)[d]);
        snprintf(why, size, "output %d has shape (%s), expected (%s)", k, a, b);
        return false;
    }
    int64_t n = kn_tensor_numel(got);
    if (kn_tensor_dtype(got) == KN_STRING) { /* text: equal strings */
        for (int64_t i = 0; i < n; i++)
            if (strcmp(kn_tensor_string(got, i), kn_tensor_string(want, i))) {
                snprintf(why, size, "output %d element %lld is \"%s\", expected \"%s\"", k,
                         (long long)i, kn_tensor_string(got, i), kn_tensor_string(want, i));
                return false;
            }
        return true;
    }
    bool fl = kn_dtype_is_float(kn_tensor_dtype(got));
    size_t bytes = sizeof(double) * (size_t)(n ? n : 1);
    double *g = malloc(bytes), *w = malloc(bytes);
    int64_t *gi = (int64_t *)g, *wi = (int64_t *)w;
    bool ok = g && w;
    if (ok && n) {
        kn_dtype as = fl ? KN_F64 : KN_I64;
        ok = !kn_tensor_copy_to(got, as, g, bytes) && !kn_tensor_copy_to(want, as, w, bytes);
    }
    if (!ok) snprintf(why, size, "output %d: cannot read values: %s", k, kn_last_error());
    int64_t bad = -1, n_bad = 0;
    for (int64_t i = 0; ok && i < n; i++) {
        bool eq;
        if (!fl)
            eq = gi[i] == wi[i];
        else if (isnan(w[i]) || isnan(g[i]))
            eq = isnan(w[i]) && isnan(g[i]);
        else if (isinf(w[i]) || isinf(g[i]))
            eq = g[i] == w[i];
        else
            eq = fabs(g[i] - w[i]) <= ATOL + RTOL * fabs(w[i]);
        if (!eq && bad < 0) bad = i;
        n_bad += !eq;
    }
    if (ok && bad >= 0) {
        if (fl)
            snprintf(
                why, size,
                "output %d: %lld of %lld values differ; first at %lld: got %.9g, expected %.9g", k,
                (long long)n_bad, (long long)n, (long long)bad, g[bad], w[bad]);
        else
            snprintf(
                why, size,
                "output %d: %lld of %lld values differ; first at %lld: got %lld, expected %lld", k,
                (long long)n_bad, (long long)n, (long long)bad, (long long)gi[bad],
                (long long)wi[bad]);
        ok = false;
    }
    free(g), free(w);
    return ok;
}

/* ---------------------------------------------------------------- one test */
/* ONNX 1.12's test data stores bfloat16 tensors as UINT16 (NumPy has no
 * bfloat16): such a file is read again with its data_type (field 2) set to
 * BFLOAT16. Kiln has no uint16, so nothing else is lost. */
static kn_tensor *read_as_bf16(const char *path)
{
    size_t len;
    char *buf = kt_read_file(path, &len);
    const uint8_t *p = (const uint8_t *)buf, *end = p + len;
    uint64_t key, v;
    kn_tensor *t = NULL;
    while (buf && p < end && varint(&p, end, &key)) {
        if (key == (2 << 3)) { /* data_type, a varint */
            if (p < end && *p == 4) {
                *(uint8_t *)p = 16;
                char tmp[64];
                snprintf(tmp, sizeof tmp, "/tmp/kiln-conformance-%d.pb", (int)getpid());
                FILE *f = fopen(tmp, "wb");
                if (f && fwrite(buf, 1, len, f) == len && fclose(f) == 0)
                    t = kn_onnx_read_tensor(tmp, NULL, 0);
                else if (f)
                    fclose(f);
                remove(tmp);
            }
            break;
        }
        if ((key & 7) == 0 && !varint(&p, end, &v)) break;
        if ((key & 7) == 2) {
            if (!varint(&p, end, &v) || v > (uint64_t)(end - p)) break;
            p += v;
        } else if ((key & 7) == 1)
            p += 8;
        else if ((key & 7) == 5)
            p += 4;
        else if ((key & 7) != 0)
            break;
    }
    free(buf);
    return t;
}

/* Reads name_0.pb, name_1.pb... of a data set; returns the count or -1. */
static int read_tensors(const char *dir, const char *name, kn_tensor **ts, int max, char *why,
                        size_t size)
{
    int n = 0;
    char path[1024];
    for (; n < max; n++) {
        snprintf(path, sizeof path, "%s/%s_%d.pb", dir, name, n);
        if (!kt_is_file(path)) break;
        ts[n] = kn_onnx_read_tensor(path, NULL, 0);
        if (!ts[n] && strstr(kn_last_error(), "UINT16")) {
            char msg[600];
            snprintf(msg, sizeof msg, "%s", kn_last_error());
            kn_status st = kn_last_status();
            if (!(ts[n] = read_as_bf16(path))) kn_set_error(st, "%s", msg);
        }
        if (!ts[n]) {
            snprintf(why, size, "%s_%d.pb: %s", name, n, kn_last_error());
            return -1;
        }
    }
    return n;
}

static void unref_all(kn_tensor **ts, int n)
{
    for (int i = 0; i < n; i++)
        kn_tensor_unref(ts[i]), ts[i] = NULL;
}

/* Runs one data set; the class, with the reason in why. */
static int run_set(kn_onnx_model *m, const char *dir, char *why, size_t size)
{
    enum { MAX_IO = 64 };
    kn_tensor *in[MAX_IO] = {0}, *want[MAX_IO] = {0}, *got[MAX_IO] = {0};
    int cls = PASS;
    int n_in = read_tensors(dir, "input", in, MAX_IO, why, size);
    int n_want = n_in < 0 ? -1 : read_tensors(dir, "output", want, MAX_IO, why, size);
    if (n_in < 0 || n_want < 0)
        cls = kn_last_status() == KN_ERR_UNSUPPORTED ? UNSUP : FAIL;
    else if (n_want != kn_onnx_num_outputs(m)) {
        snprintf(why, size, "the data set has %d outputs, the model %d", n_want,
                 kn_onnx_num_outputs(m));
        cls = FAIL;
    } else if (kn_onnx_run(m, n_in, in, n_want, got)) {
        snprintf(why, size, "run: %s", kn_last_error());
        cls = FAIL;
    } else {
        for (int k = 0; k < n_want && cls == PASS; k++)
            if (!compare(got[k], want[k], k, why, size)) cls = FAIL;
    }
    unref_all(in, n_in > 0 ? n_in : MAX_IO);
    unref_all(want, n_want > 0 ? n_want : MAX_IO);
    unref_all(got, MAX_IO);
    return cls;
}

static int run_test(const char *test_dir, char *why, size_t size)
{
    char path[600];
    snprintf(path, sizeof path, "%s/model.onnx", test_dir);
    size_t live = kn_alloc_live_bytes();
    kn_onnx_model *m = kn_onnx_load(path);
    if (!m) {
        snprintf(why, size, "load: %s", kn_last_error());
        return kn_last_status() == KN_ERR_UNSUPPORTED ? UNSUP : FAIL;
    }
    int n_sets;
    char **sets = list_dir(test_dir, "test_data_set_", &n_sets);
    int cls = n_sets ? PASS : FAIL;
    if (!n_sets) snprintf(why, size, "no test data sets");
    for (int i = 0; i < n_sets && cls == PASS; i++) {
        snprintf(path, sizeof path, "%s/%s", test_dir, sets[i]);
        char w[520];
        cls = run_set(m, path, w, sizeof w);
        if (cls != PASS) snprintf(why, size, "%s: %s", sets[i], w);
    }
    free_list(sets, n_sets);
    kn_onnx_free(m);
    if (cls == PASS && kn_alloc_live_bytes() != live) {
        snprintf(why, size, "leaked %lld bytes", (long long)(kn_alloc_live_bytes() - live));
        cls = FAIL;
    }
    return cls;
}

/* Runs a test in a child process: a crash or a hang fails only that test. */
static int run_isolated(const char *test_dir, bool fork_it, char *why, size_t size)
{
    if (!fork_it) return run_test(test_dir, why, size);
    int fd[2];
    if (pipe(fd) != 0) return snprintf(why, size, "pipe: %s", strerror(errno)), FAIL;
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return snprintf(why, size, "fork: %s", strerror(errno)), FAIL;
    if (pid == 0) {
        close(fd[0]);
        alarm(TIME_LIMIT);
        kn_set_num_threads(1);
        char msg[601] = {0};
        msg[0] = (char)('0' + run_test(test_dir, msg + 1, sizeof msg - 1));
        ssize_t w = write(fd[1], msg, strlen(msg));
        (void)w;
        _exit(0);
    }
    close(fd[1]);
    char msg[601] = {0};
    size_t got = 0;
    ssize_t r;
    while (got < sizeof msg - 1 && (r = read(fd[0], msg + got, sizeof msg - 1 - got)) > 0)
        got += (size_t)r;
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFSIGNALED(st)) {
        int sig = WTERMSIG(st);
        snprintf(why, size, sig == SIGALRM ? "timed out after %d s" : "crashed (signal %d)",
                 sig == SIGALRM ? TIME_LIMIT : sig);
        return FAIL;
    }
    if (!got || msg[0] < '0' || msg[0] >= '0' + N_CLASSES)
        return snprintf(why, size, "the test process exited without a result"), FAIL;
    snprintf(why, size, "%s", msg + 1);
    return msg[0] - '0';
}

/* ---------------------------------------------------------------- expected list */
typedef struct str_list {
    char **items;
    int n, cap;
} str_list;

static void sl_add(str_list *l, const char *s)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 256;
        char **more = realloc(l->items, sizeof(char *) * (size_t)cap);
        if (!more) return;
        l->items = more, l->cap = cap;
    }
    l->items[l->n++] = strdup(s);
}

static bool sl_has(const str_list *l, const char *s)
{
    return l->n && bsearch(&s, l->items, (size_t)l->n, sizeof(char *), cmp_str) != NULL;
}

static void sl_free(str_list *l)
{
    free_list(l->items, l->n);
    memset(l, 0, sizeof *l);
}

static void expected_path(char *buf, size_t size)
{
    const char *slash = strrchr(__FILE__, '/');
    int n = slash ? (int)(slash - __FILE__) : 1;
    snprintf(buf, size, "%.*s/onnx/expected_pass.txt", n, slash ? __FILE__ : ".");
}

static str_list read_expected(const char *path)
{
    str_list l = {0};
    FILE *f = fopen(path, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s && *s != '#') sl_add(&l, s);
    }
    if (f) fclose(f);
    if (l.n) qsort(l.items, (size_t)l.n, sizeof(char *), cmp_str);
    return l;
}

static bool write_expected(const char *path, const str_list *keep, const result *rs, int n)
{
    str_list all = {0};
    for (int i = 0; i < keep->n; i++)
        sl_add(&all, keep->items[i]);
    for (int i = 0; i < n; i++)
        if (rs[i].cls == PASS) sl_add(&all, rs[i].path);
    if (all.n) qsort(all.items, (size_t)all.n, sizeof(char *), cmp_str);
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    bool ok = f != NULL;
    if (f) {
        fprintf(f, "# ONNX backend tests that must pass (tests/test_onnx_conformance.c "
                   "--write-expected)\n");
        for (int i = 0; i < all.n; i++)
            if (!i || strcmp(all.items[i], all.items[i - 1])) fprintf(f, "%s\n", all.items[i]);
        ok = fclose(f) == 0 && rename(tmp, path) == 0;
    }
    printf("%s %s (%d tests)\n", ok ? "wrote" : "could not write", path, all.n);
    sl_free(&all);
    return ok;
}

/* ---------------------------------------------------------------- report */
static int cmp_result(const void *a, const void *b)
{
    const result *x = a, *y = b;
    if (x->suite != y->suite) return x->suite - y->suite;
    int c = strcmp(x->op, y->op);
    return c ? c : strcmp(x->path, y->path);
}

static void print_table(result *rs, int n, bool verbose)
{
    qsort(rs, (size_t)n, sizeof *rs, cmp_result);
    for (int s = 0; s < N_SUITES; s++) {
        int tot[N_CLASSES] = {0}, any = 0;
        for (int i = 0; i < n; i++)
            any += rs[i].suite == s;
        if (!any) continue;
        printf("\n== %s\n%-28s %6s %6s %6s\n", suites[s], "op", "pass", "fail", "unsup");
        for (int i = 0; i < n;) {
            if (rs[i].suite != s) {
                i++;
                continue;
            }
            int j = i, c[N_CLASSES] = {0};
            for (; j < n && rs[j].suite == s && !strcmp(rs[j].op, rs[i].op); j++)
                c[rs[j].cls]++, tot[rs[j].cls]++;
            printf("%-28s %6d %6d %6d\n", rs[i].op, c[PASS], c[FAIL], c[UNSUP]);
            for (int k = i; verbose && k < j; k++)
                if (rs[k].cls != PASS)
                    printf("    %-11s %s: %s\n", class_names[rs[k].cls], rs[k].path, rs[k].reason);
            i = j;
        }
        int all = tot[PASS] + tot[FAIL] + tot[UNSUP];
        printf("%-28s %6d %6d %6d   (%d tests, %.1f%% pass)\n", "TOTAL", tot[PASS], tot[FAIL],
               tot[UNSUP], all, 100.0 * tot[PASS] / all);
    }
}

int main(int argc, char **argv)
{
    const char *filter = "", *data = DATA_DIR;
    bool verbose = false, write = false, fork_it = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--verbose") || !strcmp(argv[i], "-v"))
            verbose = true;
        else if (!strcmp(argv[i], "--write-expected"))
            write = true;
        else if (!strcmp(argv[i], "--no-fork"))
            fork_it = false;
        else if (!strcmp(argv[i], "--data") && i + 1 < argc)
            data = argv[++i];
        else
            filter = argv[i];
    }
    if (!kn_onnx_supported()) {
        printf("SKIP: kiln was built without ONNX support\n");
        return 0;
    }
    if (!kt_is_dir(data)) {
        printf("SKIP: no ONNX test data in %s (install libonnx-testdata)\n", data);
        return 0;
    }
    int cap = 2048, n = 0;
    result *rs = calloc((size_t)cap, sizeof *rs);
    if (!rs) return 1;
    for (int s = 0; s < N_SUITES; s++) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/%s", data, suites[s]);
        int nt;
        char **tests = list_dir(dir, "test_", &nt);
        for (int t = 0; t < nt; t++) {
            char path[256], test_dir[800];
            snprintf(path, sizeof path, "%s/%s", suites[s], tests[t]);
            snprintf(test_dir, sizeof test_dir, "%s/%s", dir, tests[t]);
            if (!strstr(path, filter) || !kt_is_dir(test_dir)) continue;
            if (n == cap) {
                result *more = realloc(rs, sizeof *rs * (size_t)(cap *= 2));
                if (!more) break;
                rs = more;
            }
            result *r = &rs[n++];
            memset(r, 0, sizeof *r);
            snprintf(r->path, sizeof r->path, "%s", path);
            r->suite = s;
            char model[900];
            snprintf(model, sizeof model, "%s/model.onnx", test_dir);
            main_op(model, tests[t], r->op, sizeof r->op);
            r->cls = run_isolated(test_dir, fork_it, r->reason, sizeof r->reason);
        }
        free_list(tests, nt);
    }
    char list_path[600];
    expected_path(list_path, sizeof list_path);
    str_list expected = read_expected(list_path);
    str_list passed = {0};
    for (int i = 0; i < n; i++)
        if (rs[i].cls == PASS) sl_add(&passed, rs[i].path);
    if (passed.n) qsort(passed.items, (size_t)passed.n, sizeof(char *), cmp_str);
    print_table(rs, n, verbose);

    int regressions = 0, fresh = 0;
    for (int i = 0; i < expected.n; i++) {
        if (!strstr(expected.items[i], filter)) continue;
        if (sl_has(&passed, expected.items[i])) continue;
        const char *why = "not found";
        for (int k = 0; k < n; k++)
            if (!strcmp(rs[k].path, expected.items[i])) why = rs[k].reason;
        printf("REGRESSION %s: %s\n", expected.items[i], why);
        regressions++;
    }
    for (int i = 0; i < n; i++)
        if (rs[i].cls == PASS && !sl_has(&expected, rs[i].path)) {
            if (!fresh++) printf("\npassing but not in %s:\n", list_path);
            printf("  %s\n", rs[i].path);
        }
    printf("\n%d tests run, %d passed, %d regressions, %d newly passing\n", n, passed.n,
           regressions, fresh);
    if (write) {
        str_list keep = {0};
        for (int i = 0; i < expected.n; i++)
            if (!strstr(expected.items[i], filter)) sl_add(&keep, expected.items[i]);
        write_expected(list_path, &keep, rs, n);
        sl_free(&keep);
    }
    sl_free(&expected), sl_free(&passed);
    free(rs);
    return regressions && !write ? 1 : 0;
}
