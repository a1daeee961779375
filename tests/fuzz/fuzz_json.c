/* fuzz_json.c — libFuzzer target over the JSON reader, the safetensors
 * reader and the graph loader. Input: a 4-byte little-endian length n, then
 * n bytes of graph JSON, then the safetensors file; the whole input is also
 * fed to the JSON reader and the safetensors reader on their own.
 * Build: cmake -DKILN_FUZZ=ON -DKILN_SANITIZE=ON with clang;
 * run: build/fuzz_json CORPUS -max_total_time=600
 * (tests/fuzz/make_seed.sh writes seeds from an exported graph). */
#include "kiln.h"
#include "io/json.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void write_file(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return;
    if (n) fwrite(p, 1, n, f);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char st_path[64], js_path[64];
    if (!st_path[0]) {
        snprintf(st_path, sizeof st_path, "/tmp/kiln-fuzz-%d.safetensors", (int)getpid());
        snprintf(js_path, sizeof js_path, "/tmp/kiln-fuzz-%d.json", (int)getpid());
    }
    kn__json_free(kn__json_parse("fuzz", (const char *)data, size));
    write_file(st_path, data, size);
    kn_tensor_map_free(kn_safetensors_load(st_path));
    if (size < 4) return 0;
    uint32_t n;
    memcpy(&n, data, 4);
    n = (uint32_t)(n % (size - 4 + 1));
    write_file(js_path, data + 4, n);
    write_file(st_path, data + 4 + n, size - 4 - n);
    kn_graph *g = kn_graph_load(js_path, st_path);
    if (g) { /* a loaded graph must also compile and run without crashing */
        if (!kn_graph_compile(g, KN_GRAPH_INFERENCE) && kn_graph_num_inputs(g) == 0) {
            kn_tensor *out[8] = {0};
            int n_out = kn_graph_num_outputs(g);
            if (n_out <= 8 && !kn_graph_run(g, 0, NULL, n_out, out))
                for (int i = 0; i < n_out; i++)
                    kn_tensor_unref(out[i]);
        }
        kn_graph_free(g);
    }
    return 0;
}
