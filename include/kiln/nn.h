/* kiln/nn.h — Gluon-style layers, initializers and parameter management on
 * top of kn_block; included by kiln.h. Every layer is a kn_block: compose
 * them with kn_nn_sequential or as children of your own block, call them with
 * kn_block_forward, hybridize the outermost one.
 *
 * Deferred initialization (as Gluon's): a size given as 0 (in_units,
 * in_channels, num_features...) is taken from the input at the first call;
 * the parameters appear then. kn_block_init_shapes runs that first call on
 * symbolic inputs (no computation), so the parameters exist before an
 * optimizer collects them. A shape the layer cannot take is an error that
 * names the layer's path and the shape it saw. */
#ifndef KILN_NN_H
#define KILN_NN_H

/* ================================================================ initializers
 * Drawn from kiln's global generator (kn_manual_seed), so seeded runs give
 * the same parameters. Fans follow PyTorch: for a weight (out, in, k...)
 * fan_in = in * prod(k), fan_out = out * prod(k). */
typedef enum kn_init_kind {
    KN_INIT_DEFAULT = 0,    /* the layer's own default (PyTorch's choice for it) */
    KN_INIT_ZEROS,
    KN_INIT_ONES,
    KN_INIT_CONSTANT,       /* value */
    KN_INIT_UNIFORM,        /* U(low, high) */
    KN_INIT_NORMAL,         /* N(mean, std) */
    KN_INIT_XAVIER_UNIFORM, /* gain * sqrt(6 / (fan_in + fan_out)) bound */
    KN_INIT_XAVIER_NORMAL,
    KN_INIT_KAIMING_UNIFORM, /* gain / sqrt(fan) * sqrt(3) bound, gain from nonlinearity */
    KN_INIT_KAIMING_NORMAL,
    KN_INIT_ORTHOGONAL, /* rows (or columns) orthonormal, times gain */
} kn_init_kind;
typedef enum kn_fan_mode { KN_FAN_IN = 0, KN_FAN_OUT = 1 } kn_fan_mode;
typedef struct kn_init {
    kn_init_kind kind;
    double value;           /* constant */
    double low, high;       /* uniform */
    double mean, std;       /* normal */
    double gain;            /* xavier, orthogonal; 0 means 1 */
    kn_fan_mode mode;       /* kaiming */
    const char *nonlinearity; /* kaiming: "relu" (default), "leaky_relu", "linear", "tanh", "selu" */
    double a;               /* kaiming leaky_relu slope */
} kn_init;
/* Fills t in place (f32/f64/f16/bf16) without recording gradients. */
kn_status kn_init_tensor(kn_tensor *t, const kn_init *init);
/* Re-initializes every parameter of the tree whose path matches pattern
 * (NULL: all; "*" matches any run of characters, e.g. "*.weight",
 * "features.0.*"). State (running statistics) is left alone. */
kn_status kn_block_init_params(kn_block *b, const char *pattern, const kn_init *init);

/* ================================================================ parameters
 * Parameters are trainable unless added as state (running statistics,
 * updated by forward, never by gradients) or frozen. */
kn_status kn_block_add_state(kn_block *b, const char *name, kn_tensor *value);
bool kn_block_param_is_state(const kn_block *b, int i); /* i as kn_block_param_at */
/* Freezes (or unfreezes) the parameters whose path matches pattern (NULL:
 * all): frozen ones lose requires_grad and are left out of
 * kn_block_trainable_params. */
kn_status kn_block_freeze(kn_block *b, const char *pattern, bool frozen);
bool kn_block_param_is_frozen(const kn_block *b, int i);
/* The trainable parameters of the tree, each once even when shared, with
 * requires_grad turned on; returns how many (at most max are written to
 * out, which may be NULL to count), or -1 on error. */
int kn_block_trainable_params(kn_block *b, int max, kn_tensor **out);
/* Sharing: dst's parameter `dst_name` becomes the same tensor as src's
 * `src_name` (paths within each block); shapes and dtypes must agree (or
 * dst's is still deferred). Updating one updates both. */
kn_status kn_block_share_param(kn_block *dst, const char *dst_name, kn_block *src,
                               const char *src_name);
/* All parameters and state of the tree under their paths (references), for
 * kn_safetensors_save / kn_checkpoint_save; and loading them back (every
 * name and shape checked before anything is copied). */
kn_tensor_map *kn_block_param_map(const kn_block *b);
kn_status kn_block_load_param_map(kn_block *b, const kn_tensor_map *m);
/* Runs the block's first call on symbolic inputs shaped like the examples
 * (only dtype and shape are read; they may be symbolic), so deferred
 * parameters are created. Computes nothing. */
kn_status kn_block_init_shapes(kn_block *b, int n_in, kn_tensor *const *examples);
/* A block's path from the root ("features.3"), "" for the root. */
const char *kn_block_path(const kn_block *b, char *buf, size_t size);
const char *kn_block_name(const kn_block *b);
/* "dense 'features.3'" (name and path), or just "dense" for a root block:
 * how layer errors name a block. */
const char *kn_block_label(const kn_block *b, char *buf, size_t size);
bool kn_block_is_hybridized(const kn_block *b);
int kn_block_num_children(const kn_block *b);
kn_block *kn_block_child_at(const kn_block *b, int i);
const char *kn_block_child_name(const kn_block *b, int i);
/* free_fn(user) runs when the block is freed (for a config the block owns). */
kn_status kn_block_set_user_free(kn_block *b, void (*free_fn)(void *user));

/* ================================================================ layers
 * Every constructor returns a new block (NULL and an error on bad
 * arguments). Activation blocks and fused activations use kn_act. */
typedef enum kn_act {
    KN_ACT_NONE = 0,
    KN_ACT_RELU,
    KN_ACT_RELU6,
    KN_ACT_GELU,      /* 0.5 x (1 + erf(x / sqrt 2)) */
    KN_ACT_GELU_TANH, /* tanh approximation */
    KN_ACT_SILU,      /* x sigmoid(x) */
    KN_ACT_SIGMOID,
    KN_ACT_TANH,
    /* the ones above also fuse into GEMM/convolution epilogues */
    KN_ACT_LEAKY_RELU, /* slope 0.01 */
    KN_ACT_ELU,        /* alpha 1 */
    KN_ACT_SOFTPLUS,
    KN_ACT_MISH,
    KN_ACT_HARDSWISH,
} kn_act;
/* Applies act to x (a new reference; KN_ACT_NONE returns x's reference). */
kn_tensor *kn_activate(kn_tensor *x, kn_act act);

/* Sequential: children named "0", "1", ...; forward chains them (one input,
 * one output each). */
kn_block *kn_nn_sequential(void);
kn_status kn_sequential_add(kn_block *seq, kn_block *layer); /* takes ownership, even on error */
/* Dense (Linear): y = act(x · wᵀ + b); x (..., in). weight (units, in_units),
 * bias (units). in_units 0: deferred. Default init as PyTorch's Linear. */
kn_block *kn_nn_dense(int64_t in_units, int64_t units, bool bias, kn_act act);

/* Convolution over ndim = 1, 2 or 3 spatial dims; in_channels 0: deferred.
 * weight (out, in/groups, k...), bias (out). */
typedef struct kn_conv_layer {
    int ndim;
    int64_t in_channels, channels;
    int64_t kernel[3];
    int64_t stride[3];   /* 0 means 1 */
    int64_t padding[3];  /* symmetric */
    int64_t dilation[3]; /* 0 means 1 */
    int64_t output_padding[3]; /* transposed only */
    int64_t groups;      /* 0 means 1 */
    bool no_bias;
    bool transposed;     /* ConvTranspose: weight (in, out/groups, k...) */
    kn_act act;
    kn_layout layout;
} kn_conv_layer;
kn_block *kn_nn_conv(const kn_conv_layer *cfg);
/* kernel k, stride, padding in every spatial dim */
kn_block *kn_nn_conv2d(int64_t in_channels, int64_t channels, int64_t k, int64_t stride,
                       int64_t padding, kn_act act);

/* Norms. num_features / normalized size 0: deferred. BatchNorm keeps
 * running_mean/running_var as state; axis from layout (1 or last). */
kn_block *kn_nn_batch_norm(int64_t num_features, double momentum, double eps, kn_layout layout);
/* over the last n_axes dims (normalized shape taken at the first call) */
kn_block *kn_nn_layer_norm(int n_axes, double eps, bool affine);
kn_block *kn_nn_group_norm(int64_t groups, int64_t num_channels, double eps, bool affine);
kn_block *kn_nn_instance_norm(int64_t num_channels, double eps, bool affine);
kn_block *kn_nn_dropout(double p);
/* weight (num_embeddings, dim); input integer indices of any shape */
kn_block *kn_nn_embedding(int64_t num_embeddings, int64_t dim);
/* Pools (2-D unless the input has another rank); stride 0 means kernel. */
kn_block *kn_nn_max_pool(int64_t kernel, int64_t stride, int64_t padding, kn_layout layout);
kn_block *kn_nn_avg_pool(int64_t kernel, int64_t stride, int64_t padding, kn_layout layout);
/* Global pools give (N, C) when flatten, else keep 1-sized spatial dims. */
kn_block *kn_nn_global_avg_pool(kn_layout layout, bool flatten);
kn_block *kn_nn_global_max_pool(kn_layout layout, bool flatten);
kn_block *kn_nn_flatten(void); /* (N, ...) -> (N, prod) */
kn_block *kn_nn_activation(kn_act act);
/* Residual: y = act(body(x) + shortcut(x)); shortcut NULL is the identity.
 * Takes ownership of both (children "body" and "shortcut"). */
kn_block *kn_nn_residual(kn_block *body, kn_block *shortcut, kn_act act);

/* Recurrent layers over (T, N, in) (batch_first: (N, T, in)), multi-layer
 * and bidirectional, PyTorch's parameter names and layout
 * (weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, ..._reverse).
 * Inputs: x, then optionally h0 (and c0 for LSTM) shaped
 * (layers * dirs, N, hidden) — zeros when absent. Outputs: y (T, N,
 * dirs * hidden), then h_n (and c_n) when asked for (n_out 2 or 3). */
typedef struct kn_rnn_layer {
    int64_t input_size; /* 0: deferred */
    int64_t hidden_size;
    int num_layers;     /* 0 means 1 */
    bool bidirectional, batch_first, no_bias;
    double dropout; /* between layers, when training */
} kn_rnn_layer;
kn_block *kn_nn_lstm(const kn_rnn_layer *cfg);
kn_block *kn_nn_gru(const kn_rnn_layer *cfg);

/* ================================================================ training step
 * One step of training net on a batch: forward, loss, backward, then the
 * trainer's step (schedule, clipping, update). When net is hybridized, the
 * forward, the loss and the backward are traced into ONE compiled graph per
 * input signature whose outputs are the loss, net's output and every
 * trainable parameter's gradient (so backward runs from the arena with no
 * tape); otherwise autograd runs eagerly. Both give the same numbers.
 * loss_fn(output, target, user) returns the scalar loss (a new reference);
 * NULL means mean softmax cross-entropy over class indices. */
typedef kn_tensor *(*kn_loss_fn)(kn_tensor *output, kn_tensor *target, void *user);
typedef struct kn_train_step kn_train_step;
/* Borrows net and trainer (they must outlive the step). */
kn_train_step *kn_train_step_new(kn_block *net, kn_trainer *trainer, kn_loss_fn loss_fn, void *user);
void kn_train_step_free(kn_train_step *s);
/* loss (0-d) and output get new references when not NULL. */
kn_status kn_train_step_run(kn_train_step *s, kn_tensor *x, kn_tensor *target, kn_tensor **loss,
                            kn_tensor **output);
/* The compiled graph of the last hybridized step (borrowed; NULL if none),
 * e.g. for kn_graph_set_profiling. */
kn_graph *kn_train_step_graph(const kn_train_step *s);

/* ================================================================ models
 * The model zoo (models/), written with the public API only. num_classes
 * 0 means the dataset's usual count. */
typedef struct kn_model_config {
    int64_t num_classes;
    int64_t in_channels;   /* 0: 1 for lenet/mlp, 3 otherwise */
    int64_t image_size;    /* 0: 28 for lenet/mlp, 32 for cifar stems, 224 otherwise */
    bool cifar_stem;       /* resnet: 3x3 stem without max pool */
    double width_mult;     /* mobilenet_v2, 0 means 1 */
    /* transformer / lstm sequence models */
    int64_t vocab_size, d_model, num_heads, num_layers, ffn_dim, max_len;
    double dropout;
} kn_model_config;
/* name: "mlp", "lenet", "resnet18", "resnet34", "resnet50", "mobilenet_v2",
 * "transformer_encoder", "lstm_classifier". */
kn_block *kn_model_new(const char *name, const kn_model_config *cfg);
/* The names kn_model_new knows, NULL-terminated. */
const char *const *kn_model_names(void);

#endif
