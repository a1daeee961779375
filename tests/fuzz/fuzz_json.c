/* fuzz_json.c — libFuzzer target over the JSON reader, the safetensors
 * header parser and the graph loader (one input exercises all three).
 * Build: cmake -DKILN_FUZZ=ON with clang; run: build/fuzz_json -max_total_time=60 */
#include "kiln.h"
#include "io/json.h"

#include <stdio.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kn_json *j = kn__json_parse("fuzz", (const char *)data, size);
    kn__json_free(j);
    static char st_path[64], js_path[64];
    if (!st_path[0]) {
        snprintf(st_path, sizeof st_path, "/tmp/kiln-fuzz-%d.safetensors", (int)getpid());
        snprintf(js_path, sizeof js_path, "/tmp/kiln-fuzz-%d.json", (int)getpid());
    }
    FILE *f = fopen(st_path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    kn_tensor_map_free(kn_safetensors_load(st_path));
    f = fopen(js_path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    kn_graph_free(kn_graph_load(js_path, st_path));
    return 0;
}
