/* onnx_stub.c — the public kn_onnx_* functions when kiln was built without
 * protobuf-c and the ONNX schema: each fails with a message saying what to
 * install. */
#if !KILN_HAVE_ONNX
#include "../../base/base.h"

#define NO_ONNX                                                                                    \
    "onnx: kiln was built without ONNX support (install protobuf-c-compiler, libprotobuf-c-dev "   \
    "and libonnx-dev, then rebuild)"

bool kn_onnx_supported(void)
{
    return false;
}
int kn_onnx_max_opset(void)
{
    return 0;
}
kn_onnx_model *kn_onnx_load(const char *path)
{
    (void)path;
    return kn__error_null(KN_ERR_UNSUPPORTED, NO_ONNX);
}
kn_onnx_model *kn_onnx_load_buffer(const void *data, size_t size, const char *base_dir)
{
    (void)data, (void)size, (void)base_dir;
    return kn__error_null(KN_ERR_UNSUPPORTED, NO_ONNX);
}
void kn_onnx_free(kn_onnx_model *m)
{
    (void)m;
}
int kn_onnx_num_inputs(const kn_onnx_model *m)
{
    return (void)m, 0;
}
int kn_onnx_num_outputs(const kn_onnx_model *m)
{
    return (void)m, 0;
}
const char *kn_onnx_input_name(const kn_onnx_model *m, int i)
{
    return (void)m, (void)i, NULL;
}
const char *kn_onnx_output_name(const kn_onnx_model *m, int i)
{
    return (void)m, (void)i, NULL;
}
kn_dtype kn_onnx_input_dtype(const kn_onnx_model *m, int i)
{
    return (void)m, (void)i, KN_F32;
}
int kn_onnx_input_shape(const kn_onnx_model *m, int i, int64_t shape[KN_MAX_DIMS])
{
    (void)m, (void)i, (void)shape;
    return kn__error(KN_ERR_UNSUPPORTED, NO_ONNX), -1;
}
int kn_onnx_opset(const kn_onnx_model *m)
{
    return (void)m, 0;
}
kn_status kn_onnx_run(kn_onnx_model *m, int n_in, kn_tensor *const *in, int n_out, kn_tensor **out)
{
    (void)m, (void)n_in, (void)in;
    for (int i = 0; out && i < n_out; i++)
        out[i] = NULL;
    return kn__error(KN_ERR_UNSUPPORTED, NO_ONNX);
}
kn_graph *kn_onnx_graph(kn_onnx_model *m, int n_in, kn_tensor *const *in)
{
    (void)m, (void)n_in, (void)in;
    return kn__error_null(KN_ERR_UNSUPPORTED, NO_ONNX);
}
kn_tensor *kn_onnx_read_tensor(const char *path, char *name, size_t name_size)
{
    (void)path, (void)name, (void)name_size;
    return kn__error_null(KN_ERR_UNSUPPORTED, NO_ONNX);
}
kn_status kn_onnx_write_tensor(const char *path, const kn_tensor *t, const char *name)
{
    (void)path, (void)t, (void)name;
    return kn__error(KN_ERR_UNSUPPORTED, NO_ONNX);
}
kn_status kn_onnx_export(const kn_graph *g, const char *path, int opset)
{
    (void)g, (void)path, (void)opset;
    return kn__error(KN_ERR_UNSUPPORTED, NO_ONNX);
}
#endif
