/* test_io.c — the JSON reader (valid and invalid texts), safetensors round
 * trips and a table of corrupt files, graph export/import: a hybridized
 * model saved, loaded without its code and run to the same outputs, and
 * corrupt graph files rejected with a message. */
#include "harness.h"

#include "io/json.h"

#include <stdlib.h>
#include <unistd.h>

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
    static char buf[4][160];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", tmpdir, name);
    return p;
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}

static void test_json_valid(void)
{
    const char *text = " {\"a\": [1, -2.5e3, true, false, null], \"s\": \"x\\u00e9\\n\\ud83d\\ude00\", "
                       "\"big\": 9007199254740993, \"o\": {}} ";
    kn_json *j = kn__json_parse("test", text, strlen(text));
    KT_NOTNULL(j);
    const kn_json *a = kn__json_get(j, "a"), *s = kn__json_get(j, "s"), *big = kn__json_get(j, "big");
    KT_CHECK(a && a->n == 5 && a->items[1].number == -2500 && a->items[2].boolean, "array");
    KT_CHECK(s && !strcmp(s->string, "x\xc3\xa9\n\xf0\x9f\x98\x80"), "escapes decoded to UTF-8");
    KT_CHECK(big && big->is_int && big->integer == 9007199254740993LL, "exact int64");
    KT_CHECK(kn__json_get(j, "missing") == NULL, "missing key");
    kn__json_free(j);
}

static void test_json_invalid(void)
{
    const char *bad[] = {"", "{", "[1,]", "{\"a\" 1}", "\"abc", "[1 2]", "tru", "{\"a\":1}x",
                         "\"\\x\"", "\"\\ud800\"", "-", "1.", "1e", "\"a\x01\"", "[\"\\u12\"]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kn_json *j = kn__json_parse("jsontest", bad[i], strlen(bad[i]));
        KT_CHECK(j == NULL && strstr(kn_last_error(), "jsontest: at byte"), "rejects '%s': %s", bad[i],
                 kn_last_error());
        kn__json_free(j);
    }
    char deep[200];
    memset(deep, '[', sizeof deep);
    kn_json *j = kn__json_parse("jsontest", deep, sizeof deep);
    KT_CHECK(j == NULL && strstr(kn_last_error(), "deeply"), "depth limit");
}

static kn_tensor_map *sample_map(void)
{
    kn_tensor_map *m = kn_tensor_map_new();
    int64_t s[2] = {2, 3}, e[1] = {0};
    kn_tensor *a = kn_tensor_arange(KN_F32, 0, 6, 1), *b = kn_tensor_full(KN_BF16, 2, s, -1.5);
    kn_tensor *c = kn_tensor_arange(KN_I64, -3, 3, 1), *d = kn_tensor_zeros(KN_F64, 1, e);
    kn_tensor_map_set(m, "a", a), kn_tensor_map_set(m, "layer.b \"quoted\"", b);
    kn_tensor_map_set(m, "c", c), kn_tensor_map_set(m, "empty", d);
    kn_tensor_unref(a), kn_tensor_unref(b), kn_tensor_unref(c), kn_tensor_unref(d);
    return m;
}

static void test_safetensors_round_trip(void)
{
    kn_tensor_map *m = sample_map();
    const char *path = tmp_path("t.safetensors");
    KT_OK(kn_safetensors_save(path, m));
    kn_tensor_map *back = kn_safetensors_load(path);
    KT_NOTNULL(back);
    KT_CHECK(kn_tensor_map_size(back) == 4, "4 tensors");
    for (int i = 0; back && i < kn_tensor_map_size(m); i++) {
        const char *name = kn_tensor_map_name(m, i);
        KT_CHECK(kt_equal_bits(kn_tensor_map_at(m, i), kn_tensor_map_get(back, name)), "'%s' equal", name);
    }
    /* the header is JSON another reader understands: check a few bytes */
    FILE *f = fopen(path, "rb");
    uint64_t hlen;
    KT_CHECK(fread(&hlen, 8, 1, f) == 1 && hlen % 8 == 0, "8-byte aligned header");
    fclose(f);
    kn_tensor_map_free(m);
    kn_tensor_map_free(back);
}

/* Writes a safetensors file with the given header and n data bytes. */
static void write_st(const char *path, const char *header, size_t data_bytes)
{
    size_t h = strlen(header);
    char *buf = calloc(1, 8 + h + data_bytes);
    uint64_t hl = h;
    memcpy(buf, &hl, 8);
    memcpy(buf + 8, header, h);
    write_bytes(path, buf, 8 + h + data_bytes);
    free(buf);
}

static void test_safetensors_corrupt(void)
{
    const char *path = tmp_path("bad.safetensors");
    struct {
        const char *header;
        size_t data;
        const char *needle;
    } cases[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "past the end"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "does not match"},
        {"{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "non-negative"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "begin <= end"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,8]}}", 8,
         "too large"},
        {"[1,2]", 0, "not a JSON object"},
        {"{\"a\":", 0, "at byte"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_st(path, cases[i].header, cases[i].data);
        kn_tensor_map *m = kn_safetensors_load(path);
        KT_CHECK(m == NULL && strstr(kn_last_error(), cases[i].needle), "case %zu: %s", i, kn_last_error());
        kn_tensor_map_free(m);
        kt_mark("safetensors_load", KT_BAD);
    }
    uint64_t huge = 1ull << 62;
    write_bytes(path, &huge, 8);
    KT_CHECK(!kn_safetensors_load(path) && strstr(kn_last_error(), "exceeds"), "huge header length");
    write_bytes(path, "abc", 3);
    KT_CHECK(!kn_safetensors_load(path) && strstr(kn_last_error(), "too short"), "truncated");
    KT_CHECK(!kn_safetensors_load(tmp_path("nope")) && strstr(kn_last_error(), "cannot open"), "missing");
    /* truncating a good file anywhere gives an error, never a crash */
    kn_tensor_map *m = sample_map();
    const char *good = tmp_path("good.safetensors");
    kn_safetensors_save(good, m);
    kn_tensor_map_free(m);
    size_t len;
    char *all = kt_read_file(good, &len);
    KT_CHECK(all != NULL, "read back");
    int rejected = 0;
    for (size_t cut = 0; cut < len; cut++) {
        write_bytes(path, all, cut);
        kn_tensor_map *t = kn_safetensors_load(path);
        rejected += t == NULL;
        kn_tensor_map_free(t);
    }
    KT_CHECK(rejected == (int)len, "all %zu truncations rejected (%d)", len, rejected);
    free(all);
}

static void test_atomic_write_keeps_old_file(void)
{
    kn_tensor_map *m = sample_map();
    const char *path = tmp_path("keep.safetensors");
    KT_OK(kn_safetensors_save(path, m));
    /* a write into a directory that does not exist fails and leaves nothing */
    KT_CHECK(kn_safetensors_save(tmp_path("no/such/dir.safetensors"), m) != KN_OK, "fails");
    kn_tensor_map *back = kn_safetensors_load(path);
    KT_CHECK(back && kn_tensor_map_size(back) == 4, "the old file is intact");
    kn_tensor_map_free(back);
    kn_tensor_map_free(m);
}

/* ---- graphs */
static kn_status net_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out, kn_tensor **out,
                             void *user)
{
    (void)n_in, (void)n_out, (void)user;
    kn_conv_params cp = {.stride = {2, 2}, .pad_begin = {1, 1}, .pad_end = {1, 1}};
    kn_tensor *c = kn_conv2d(in[0], kn_block_param(b, "conv.w"), kn_block_param(b, "conv.b"), &cp);
    kn_tensor *r = kn_relu(c);
    kn_tensor *p = kn_global_avg_pool(r, KN_LAYOUT_NCHW);
    kn_tensor *f = kn_flatten(p, 1, -1);
    kn_tensor *half = kn_tensor_scalar(KN_F32, 0.5);
    kn_tensor *s = kn_mul(f, half); /* a constant captured by the trace */
    out[0] = kn_linear(s, kn_block_param(b, "fc.w"), NULL);
    kn_tensor_unref(c), kn_tensor_unref(r), kn_tensor_unref(p), kn_tensor_unref(f);
    kn_tensor_unref(half), kn_tensor_unref(s);
    return out[0] ? KN_OK : kn_last_status();
}

static kn_block *make_net(void)
{
    kn_block *b = kn_block_new("net", net_forward, NULL);
    int64_t w[4] = {6, 3, 3, 3}, bias[1] = {6}, fc[2] = {4, 6};
    kn_manual_seed(3);
    kn_tensor *p[3] = {kn_tensor_rand_normal(KN_F32, 4, w, 0, 0.3), kn_tensor_rand_normal(KN_F32, 1, bias, 0, 0.1),
                       kn_tensor_rand_normal(KN_F32, 2, fc, 0, 0.5)};
    kn_block_add_param(b, "conv.w", p[0]), kn_block_add_param(b, "conv.b", p[1]);
    kn_block_add_param(b, "fc.w", p[2]);
    for (int i = 0; i < 3; i++)
        kn_tensor_unref(p[i]);
    return b;
}

static void test_graph_round_trip(void)
{
    kn_block *b = make_net();
    kn_block_hybridize(b, KN_HYBRIDIZE_ON);
    int64_t xs[4] = {2, 3, 8, 8};
    kn_manual_seed(4);
    kn_tensor *x = kn_tensor_rand_normal(KN_F32, 4, xs, 0, 1), *y = NULL, *y2 = NULL;
    KT_OK(kn_block_forward(b, 1, &x, 1, &y));
    const char *js = tmp_path("net.json"), *st = tmp_path("net.safetensors");
    KT_OK(kn_block_export(b, js, st));
    kn_block_free(b); /* the code that built it is gone */
    kn_graph *g = kn_graph_load(js, st);
    KT_NOTNULL(g);
    KT_CHECK(kn_graph_num_inputs(g) == 1 && kn_graph_num_outputs(g) == 1, "signature kept");
    KT_OK(kn_graph_run(g, 1, &x, 1, &y2));
    KT_CHECK(kt_equal_bits(y, y2), "loaded graph gives the same outputs bitwise");
    /* and it saves again to the same JSON */
    const char *js2 = tmp_path("net2.json"), *st2 = tmp_path("net2.safetensors");
    KT_OK(kn_graph_save(g, js2, st2));
    kn_graph *g2 = kn_graph_load(js2, st2);
    KT_NOTNULL(g2);
    kn_graph_free(g), kn_graph_free(g2);
    kn_tensor_unref(x), kn_tensor_unref(y), kn_tensor_unref(y2);
}

/* Replaces the first occurrence of `from` in text by `to`, into a file. */
static void write_edited(const char *path, const char *text, const char *from, const char *to)
{
    const char *hit = strstr(text, from);
    FILE *f = fopen(path, "wb");
    if (!hit) {
        fputs(text, f);
    } else {
        fwrite(text, 1, (size_t)(hit - text), f);
        fputs(to, f);
        fputs(hit + strlen(from), f);
    }
    fclose(f);
}

static void test_graph_corrupt(void)
{
    kn_block *b = make_net();
    kn_block_hybridize(b, KN_HYBRIDIZE_ON);
    int64_t xs[4] = {1, 3, 8, 8};
    kn_tensor *x = kn_tensor_ones(KN_F32, 4, xs), *y = NULL;
    kn_block_forward(b, 1, &x, 1, &y);
    const char *js = tmp_path("c.json"), *st = tmp_path("c.safetensors"), *bad = tmp_path("bad.json");
    KT_OK(kn_block_export(b, js, st));
    size_t text_len;
    char *text = kt_read_file(js, &text_len);
    KT_CHECK(text != NULL, "read %s", js);
    struct {
        const char *from, *to, *needle;
    } cases[] = {
        {"\"version\":1", "\"version\":99", "version 99"},
        {"kiln-graph", "other", "not a kiln graph"},
        {"\"op\":\"flatten\"", "\"op\":\"frobnicate\"", "unknown op 'frobnicate'"},
        {"\"inputs\":[", "\"inputs\":[9999,", "does not exist"},
        {"\"kind\":\"param\"", "\"kind\":\"weird\"", "kind"},
        {"\"dtype\":\"f32\"", "\"dtype\":\"f99\"", "dtype"},
        {"\"shape\":[", "\"shape\":[-1,", "shape"},
        {"\"raw\":\"", "\"raw\":\"zz", "hex"},
        {"\"name\":\"conv.w\"", "\"name\":\"nope\"", "not in the safetensors"},
        {"\"op\":\"flatten\"", "\"op\":\"flatten\",\"extra\":\"x\"", NULL}, /* still valid */
        {"{\"format\"", "[{\"format\"", "at byte"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        KT_CHECK(strstr(text, cases[i].from) != NULL, "case %zu: '%s' is in the file", i, cases[i].from);
        write_edited(bad, text, cases[i].from, cases[i].to);
        kn_graph *g = kn_graph_load(bad, st);
        if (!cases[i].needle) {
            KT_CHECK(g != NULL, "case %zu loads: %s", i, kn_last_error());
        } else {
            KT_CHECK(g == NULL && strstr(kn_last_error(), cases[i].needle), "case %zu: %s", i,
                     kn_last_error());
            kt_mark("graph_load", KT_BAD);
        }
        kn_graph_free(g);
    }
    /* a node that reads a later node's output (a cycle) is rejected */
    char *first_node = strstr(text, "\"inputs\":[");
    KT_CHECK(first_node != NULL, "found a node");
    /* truncations of the JSON file are all rejected (cutting only the
     * trailing newline leaves a complete document) */
    size_t len = strlen(text);
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
        len--;
    int rejected = 0;
    for (size_t cut = 0; cut < len; cut += 7) {
        write_bytes(bad, text, cut);
        kn_graph *g = kn_graph_load(bad, st);
        rejected += g == NULL;
        kn_graph_free(g);
    }
    KT_CHECK(rejected == (int)((len + 6) / 7), "every truncation rejected");
    free(text);
    kn_tensor_unref(x), kn_tensor_unref(y);
    kn_block_free(b);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kiln-test-io-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    KT_RUN(test_json_valid);
    KT_RUN(test_json_invalid);
    KT_RUN(test_safetensors_round_trip);
    KT_RUN(test_safetensors_corrupt);
    KT_RUN(test_atomic_write_keeps_old_file);
    KT_RUN(test_graph_round_trip);
    KT_RUN(test_graph_corrupt);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return kt_finish();
}
