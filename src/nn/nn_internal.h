/* nn_internal.h — what the layers (src/nn/layers*.c) and the initializers
 * (src/nn/init.c) share: each layer's default initialization, looked up by
 * the block's kind (its kn_block_name), so kn_block_init_params with
 * KN_INIT_DEFAULT re-runs the same rule the layer used at creation. */
#ifndef KILN_NN_INTERNAL_H
#define KILN_NN_INTERNAL_H

#include "../base/base.h"

/* Fills parameter `param` of `owner` (a layer block) with PyTorch's default
 * for that layer: Linear/Conv weights kaiming_uniform(a=sqrt(5)), their bias
 * U(+-1/sqrt(fan_in)) with fan_in from the block's "weight"; norms' weight 1
 * and bias 0; embedding N(0, 1); recurrent layers U(+-1/sqrt(hidden)).
 * Error (naming the block) for a kind without a known default. */
kn_status kn__nn_default_init(kn_block *owner, const char *param, kn_tensor *t);

/* PyTorch's fans of a weight (out, in, k...): fan_in = in * prod(k),
 * fan_out = out * prod(k). Error (naming `who`) below 2 dims. */
kn_status kn__nn_fans(const char *who, const kn_tensor *t, int64_t *fan_in, int64_t *fan_out);

/* "(8, 7, 5)": a tensor's shape for messages. */
const char *kn__nn_shape(const kn_tensor *t, char *buf, size_t n);

/* ---- shared by the layers (src/nn/layers.c) */
/* The block's own parameter `name` to compute with (a graph proxy while
 * tracing), or NULL without an error when it does not exist yet. */
kn_tensor *kn__nn_param(kn_block *b, const char *name);
/* Creates parameter `name` of the given shape with the layer's default
 * initialization (kn__nn_default_init), requiring grad; or, when `state`,
 * a running statistic filled with `fill`. Records nothing on the tape. */
kn_status kn__nn_create(kn_block *b, const char *name, kn_dtype dt, int ndim, const int64_t *shape,
                        bool state, double fill);
/* A new block for a layer whose config `cfg` (from kn_alloc) the block owns
 * from now on; on failure cfg is freed and NULL returned. */
kn_block *kn__nn_block(const char *kind, kn_forward_fn forward, void *cfg);
/* The dtype parameters take for input x: f64 for f64 inputs, else f32. */
kn_dtype kn__nn_param_dtype(const kn_tensor *x);
bool kn__nn_act_valid(kn_act act);
/* Checks a forward call has one input and one output. */
kn_status kn__nn_one_in_out(kn_block *b, int n_in, kn_tensor *const *in, int n_out);

#endif
