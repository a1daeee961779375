/* fuzz_onnx.c — libFuzzer target over the ONNX loader (kn_onnx_load_buffer)
 * and, for models that load, the graph builder and executor: every input
 * with static dims of at most 4096 elements gets zeros and the model runs.
 * Anything may fail with an error; nothing may crash, leak or allocate
 * without bound.
 * Build: cmake -DKILN_FUZZ=ON -DKILN_SANITIZE=ON with clang;
 * run: build/fuzz_onnx CORPUS -max_total_time=600 -rss_limit_mb=2048
 * (tests/fuzz/make_seed_onnx.sh copies seeds from the ONNX test data). */
#include "kiln.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A model may legitimately ask for a huge tensor (Expand, Tile, ConstantOfShape
 * to billions of elements); kiln then fails with "out of memory". Here an
 * allocator capped at 64 MiB makes that failure happen at once instead of
 * tripping libFuzzer's malloc limit. */
enum { CAP_BYTES = 64 << 20 };
static void *capped_alloc(size_t size, size_t align, void *user)
{
    (void)user;
    if (size > CAP_BYTES) return NULL;
    return aligned_alloc(align, (size + align - 1) / align * align);
}
static void capped_free(void *p, void *user)
{
    (void)user;
    free(p);
}

enum { MAX_IO = 16, MAX_NUMEL = 4096 };

/* Zeros shaped like input i, or NULL when its dims are dynamic or big. */
static kn_tensor *zeros_for(const kn_onnx_model *m, int i)
{
    int64_t shape[KN_MAX_DIMS], numel = 1;
    int nd = kn_onnx_input_shape(m, i, shape);
    if (nd < 0) return NULL;
    for (int d = 0; d < nd; d++) {
        if (shape[d] < 0 || shape[d] > MAX_NUMEL) return NULL;
        numel *= shape[d];
        if (numel > MAX_NUMEL) return NULL;
    }
    return kn_tensor_zeros(kn_onnx_input_dtype(m, i), nd, shape);
}

static void run(kn_onnx_model *m)
{
    int n_in = kn_onnx_num_inputs(m), n_out = kn_onnx_num_outputs(m);
    if (n_in > MAX_IO || n_out > MAX_IO) return;
    kn_tensor *in[MAX_IO] = {0}, *out[MAX_IO] = {0};
    bool ok = true;
    for (int i = 0; i < n_in; i++)
        ok &= (in[i] = zeros_for(m, i)) != NULL;
    if (ok && !kn_onnx_run(m, n_in, in, n_out, out))
        for (int i = 0; i < n_out; i++)
            kn_tensor_unref(out[i]);
    for (int i = 0; i < n_in; i++)
        kn_tensor_unref(in[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool once;
    if (!once) {
        static const kn_allocator capped = {capped_alloc, capped_free, NULL};
        kn_set_allocator(&capped);
        kn_set_num_threads(1);
        once = true;
    }
    size_t live = kn_alloc_live_bytes();
    kn_onnx_model *m = kn_onnx_load_buffer(data, size, NULL);
    if (m) run(m);
    kn_onnx_free(m);
    kn_clear_error();
    if (kn_alloc_live_bytes() != live) __builtin_trap(); /* a leak of kiln memory */
    return 0;
}
