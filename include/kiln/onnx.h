/* kiln/onnx.h — ONNX models: import (run a model exported by PyTorch,
 * TensorFlow, MXNet...), export of kiln graphs, and ONNX TensorProto files;
 * included by kiln.h. Available when kiln was built with protobuf-c and the
 * ONNX schema (kn_onnx_supported()); otherwise every function fails with
 * KN_ERR_UNSUPPORTED and a message saying what to install. */
#ifndef KILN_ONNX_H
#define KILN_ONNX_H

bool kn_onnx_supported(void);
/* The newest opset of the default domain the importer and exporter know. */
int kn_onnx_max_opset(void);

/* ================================================================ import
 * Loading parses and validates the whole model (sizes, names, types,
 * topological order, opsets) and checks every node against the supported
 * ops: an unsupported model fails at once with one error listing every
 * unsupported node (op type, opset, node name). External-data tensors are
 * read from files beside the model (paths may not leave its folder). */
typedef struct kn_onnx_model kn_onnx_model;
kn_onnx_model *kn_onnx_load(const char *path);
/* From memory; base_dir is where external data lives (NULL: none allowed). */
kn_onnx_model *kn_onnx_load_buffer(const void *data, size_t size, const char *base_dir);
void kn_onnx_free(kn_onnx_model *m);

/* The graph's inputs (initializers excluded) and outputs. Shapes: -1 for a
 * dynamic dimension; returns the rank (or -1 for an unknown rank). */
int kn_onnx_num_inputs(const kn_onnx_model *m);
int kn_onnx_num_outputs(const kn_onnx_model *m);
const char *kn_onnx_input_name(const kn_onnx_model *m, int i);
const char *kn_onnx_output_name(const kn_onnx_model *m, int i);
kn_dtype kn_onnx_input_dtype(const kn_onnx_model *m, int i);
int kn_onnx_input_shape(const kn_onnx_model *m, int i, int64_t shape[KN_MAX_DIMS]);
int kn_onnx_opset(const kn_onnx_model *m); /* of the default domain */

/* Runs the model: inputs in order (dtype as declared, shapes matching the
 * static dims). The first run per signature of input shapes builds a kiln
 * graph, compiles it with the graph passes and caches it; later runs with
 * those shapes reuse it. Outputs get new references. */
kn_status kn_onnx_run(kn_onnx_model *m, int n_in, kn_tensor *const *in, int n_out,
                      kn_tensor **out);
/* The compiled graph for inputs shaped like these (built if needed;
 * borrowed, valid until m is freed): for profiling, kn_graph_save, export. */
kn_graph *kn_onnx_graph(kn_onnx_model *m, int n_in, kn_tensor *const *in);

/* ================================================================ tensors
 * ONNX TensorProto files (the layout of ONNX's own test data, input_0.pb). */
kn_tensor *kn_onnx_read_tensor(const char *path, char *name, size_t name_size);
kn_status kn_onnx_write_tensor(const char *path, const kn_tensor *t, const char *name);

/* ================================================================ export
 * Writes g (a compiled kiln graph: a hybridized block's, a loaded file's or
 * an imported model's) as an ONNX model at the given opset (0: the newest
 * kn_onnx_max_opset()); parameters become initializers. Atomic write. */
kn_status kn_onnx_export(const kn_graph *g, const char *path, int opset);

#endif
