/* sequence.c — the sequence models of the zoo: a transformer encoder
 * classifier (token + learned positional embeddings, post-norm encoder layers
 * like torch.nn.TransformerEncoderLayer, mean over time, a linear head) and
 * an LSTM classifier. Input: (N, T) int64 tokens; output: (N, classes)
 * logits. Written with the public <kiln.h> only (errors through models.h).
 * Parameter names follow PyTorch's modules, so a state dict maps 1:1. */
#include "models.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct seq_cfg {
    int64_t vocab, d_model, heads, layers, ffn, max_len, classes;
    double dropout;
} seq_cfg;

/* cfg with PyTorch-sized defaults for the fields left 0. */
static kn_status resolve(const char *name, const kn_model_config *cfg, seq_cfg *c)
{
    kn_model_config z = {0};
    if (!cfg) cfg = &z;
    *c = (seq_cfg){
        .vocab = cfg->vocab_size ? cfg->vocab_size : 1000,
        .d_model = cfg->d_model ? cfg->d_model : 64,
        .heads = cfg->num_heads ? cfg->num_heads : 4,
        .layers = cfg->num_layers ? cfg->num_layers : 2,
        .ffn = cfg->ffn_dim ? cfg->ffn_dim : 128,
        .max_len = cfg->max_len ? cfg->max_len : 128,
        .classes = cfg->num_classes ? cfg->num_classes : 2,
        .dropout = cfg->dropout,
    };
    if (c->vocab < 1 || c->d_model < 1 || c->heads < 1 || c->layers < 1 || c->ffn < 1 ||
        c->max_len < 1 || c->classes < 1 || c->layers > 256)
        return kn_set_error(KN_ERR_ARG,
                         "model_new: '%s': vocab_size %lld, d_model %lld, num_heads %lld, "
                         "num_layers %lld, ffn_dim %lld, max_len %lld, num_classes %lld; each must "
                         "be > 0 (0 takes the default), num_layers <= 256",
                         name, (long long)c->vocab, (long long)c->d_model, (long long)c->heads,
                         (long long)c->layers, (long long)c->ffn, (long long)c->max_len,
                         (long long)c->classes);
    if (c->d_model % c->heads)
        return kn_set_error(KN_ERR_ARG,
                         "model_new: '%s': d_model %lld is not a multiple of num_heads %lld", name,
                         (long long)c->d_model, (long long)c->heads);
    if (!(c->dropout >= 0 && c->dropout < 1))
        return kn_set_error(KN_ERR_ARG, "model_new: '%s': dropout is %g, expected 0 <= p < 1", name,
                         c->dropout);
    return KN_OK;
}

/* A block owning a copy of c. */
static kn_block *new_block(const char *name, kn_forward_fn forward, const seq_cfg *c)
{
    seq_cfg *copy = kn_alloc(sizeof *copy);
    if (!copy) return NULL;
    *copy = *c;
    kn_block *b = kn_block_new(name, forward, copy);
    if (!b || kn_block_set_user_free(b, kn_free)) {
        kn_block_free(b);
        kn_free(copy);
        return NULL;
    }
    return b;
}

/* Adds child (freed here when that fails); false on error. */
static bool add(kn_block *b, const char *name, kn_block *child)
{
    if (!child) return false;
    if (kn_block_add_child(b, name, child)) {
        kn_block_free(child);
        return false;
    }
    return true;
}

/* Runs child `name` of b on x. */
static kn_tensor *call(kn_block *b, const char *name, kn_tensor *x)
{
    kn_tensor *y = NULL;
    return x && !kn_block_forward(kn_block_child(b, name), 1, &x, 1, &y) ? y : NULL;
}

/* Releases a and returns b: for chains t = step(t, f(t)). */
static kn_tensor *swap(kn_tensor *a, kn_tensor *b)
{
    kn_tensor_unref(a);
    return b;
}

static kn_status one_in_out(const kn_block *b, int n_in, kn_tensor *const *in, int n_out)
{
    char w[320];
    if (n_in != 1 || !in[0] || n_out != 1)
        return kn_set_error(KN_ERR_ARG,
                         "%s: takes 1 input and gives 1 output (got %d inputs, %d "
                         "outputs asked for)",
                         kn_block_label(b, w, sizeof w), n_in, n_out);
    return KN_OK;
}

/* ================================================================ attention
 * self_attn: x (N, T, d) -> (N, T, d). Parameters as torch's
 * MultiheadAttention: in_proj_weight (3d, d), in_proj_bias (3d), out_proj. */
static kn_tensor *heads_view(kn_tensor *t, const seq_cfg *c, int64_t steps)
{
    /* (N, T, d) -> (N, heads, T, d/heads); -1 keeps the batch out of attrs */
    int64_t shape[4] = {-1, steps, c->heads, c->d_model / c->heads};
    kn_tensor *r = kn_reshape(t, 4, shape);
    kn_tensor *p = r ? kn_permute(r, 4, (const int[]){0, 2, 1, 3}) : NULL;
    kn_tensor_unref(r);
    return p;
}

static kn_status attention_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                                   kn_tensor **out, void *user)
{
    const seq_cfg *c = user;
    kn_status s = one_in_out(b, n_in, in, n_out);
    if (s) return s;
    kn_tensor *x = in[0];
    if (kn_tensor_ndim(x) != 3 || kn_tensor_dim(x, 2) != c->d_model) {
        char w[320];
        return kn_set_error(KN_ERR_SHAPE, "%s: input has %d dims (last %lld), expected (N, T, %lld)",
                         kn_block_label(b, w, sizeof w), kn_tensor_ndim(x),
                         kn_tensor_ndim(x) ? (long long)kn_tensor_dim(x, -1) : 0LL,
                         (long long)c->d_model);
    }
    int64_t steps = kn_tensor_dim(x, 1), dh = c->d_model / c->heads;
    kn_tensor *qkv =
        kn_linear(x, kn_block_param(b, "in_proj_weight"), kn_block_param(b, "in_proj_bias"));
    kn_tensor *parts[3] = {NULL, NULL, NULL}, *heads[3] = {NULL, NULL, NULL};
    const int64_t sizes[3] = {c->d_model, c->d_model, c->d_model};
    s = qkv ? kn_split(qkv, 3, sizes, 2, parts) : kn_last_status();
    for (int i = 0; i < 3 && !s; i++)
        if (!(heads[i] = heads_view(parts[i], c, steps))) s = kn_last_status();
    kn_tensor *o = NULL;
    if (!s) {
        kn_tensor *q = kn_mul_scalar(heads[0], 1.0 / sqrt((double)dh));       /* (N, h, T, dh) */
        kn_tensor *scores = q ? kn_matmul_t(q, heads[1], false, true) : NULL; /* (N, h, T, T) */
        kn_tensor *attn = scores ? kn_softmax(scores, 3) : NULL;
        attn = attn ? swap(attn, kn_dropout(attn, c->dropout, kn_block_is_training(b))) : NULL;
        kn_tensor *ctx = attn ? kn_matmul(attn, heads[2]) : NULL; /* (N, h, T, dh) */
        kn_tensor *back = ctx ? kn_permute(ctx, 4, (const int[]){0, 2, 1, 3}) : NULL;
        o = back ? kn_reshape(back, 3, (const int64_t[]){-1, steps, c->d_model}) : NULL;
        kn_tensor_unref(q), kn_tensor_unref(scores), kn_tensor_unref(attn);
        kn_tensor_unref(ctx), kn_tensor_unref(back);
        if (!(out[0] = call(b, "out_proj", o))) s = kn_last_status();
    }
    kn_tensor_unref(o), kn_tensor_unref(qkv);
    for (int i = 0; i < 3; i++)
        kn_tensor_unref(parts[i]), kn_tensor_unref(heads[i]);
    return s;
}

/* PyTorch's init: in_proj xavier_uniform, in_proj_bias and out_proj.bias 0. */
static kn_block *attention_new(const seq_cfg *c)
{
    kn_block *b = new_block("self_attn", attention_forward, c);
    if (!b) return NULL;
    int64_t d = c->d_model, wshape[2] = {3 * d, d}, bshape[1] = {3 * d};
    double bound = sqrt(6.0 / (double)(d + 3 * d));
    kn_tensor *w = kn_tensor_rand_uniform(KN_F32, 2, wshape, -bound, bound);
    kn_tensor *bias = kn_tensor_zeros(KN_F32, 1, bshape);
    bool ok = w && bias && !kn_tensor_set_requires_grad(w, true) &&
              !kn_tensor_set_requires_grad(bias, true) &&
              !kn_block_add_param(b, "in_proj_weight", w) &&
              !kn_block_add_param(b, "in_proj_bias", bias) &&
              add(b, "out_proj", kn_nn_dense(d, d, true, KN_ACT_NONE));
    kn_tensor_unref(w), kn_tensor_unref(bias);
    kn_block *proj = ok ? kn_block_child(b, "out_proj") : NULL;
    kn_tensor *pb = proj ? kn_block_param(proj, "bias") : NULL;
    if (!pb || kn_tensor_fill_(pb, 0)) {
        kn_block_free(b);
        return NULL;
    }
    return b;
}

/* ================================================================ encoder layer
 * Post-norm, like torch.nn.TransformerEncoderLayer (norm_first=False):
 * x = norm1(x + dropout1(self_attn(x)));
 * x = norm2(x + dropout2(linear2(dropout(relu(linear1(x)))))). */
static kn_status encoder_layer_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                                       kn_tensor **out, void *user)
{
    (void)user;
    kn_status s = one_in_out(b, n_in, in, n_out);
    if (s) return s;
    kn_tensor *x = in[0];
    kn_tensor *att = call(b, "self_attn", x);
    kn_tensor *a = call(b, "dropout1", att);
    kn_tensor *sum = a ? kn_add(x, a) : NULL;
    kn_tensor *x1 = call(b, "norm1", sum);
    kn_tensor *f = call(b, "linear1", x1); /* relu fused in */
    f = f ? swap(f, call(b, "dropout", f)) : NULL;
    f = f ? swap(f, call(b, "linear2", f)) : NULL;
    f = f ? swap(f, call(b, "dropout2", f)) : NULL;
    kn_tensor *sum2 = f ? kn_add(x1, f) : NULL;
    out[0] = call(b, "norm2", sum2);
    kn_tensor_unref(att), kn_tensor_unref(a), kn_tensor_unref(sum), kn_tensor_unref(x1);
    kn_tensor_unref(f);
    kn_tensor_unref(sum2);
    return out[0] ? KN_OK : kn_last_status();
}

static kn_block *encoder_layer_new(const seq_cfg *c)
{
    kn_block *b = new_block("encoder_layer", encoder_layer_forward, c);
    if (!b) return NULL;
    bool ok = add(b, "self_attn", attention_new(c)) &&
              add(b, "linear1", kn_nn_dense(c->d_model, c->ffn, true, KN_ACT_RELU)) &&
              add(b, "dropout", kn_nn_dropout(c->dropout)) &&
              add(b, "linear2", kn_nn_dense(c->ffn, c->d_model, true, KN_ACT_NONE)) &&
              add(b, "norm1", kn_nn_layer_norm(1, 1e-5, true)) &&
              add(b, "norm2", kn_nn_layer_norm(1, 1e-5, true)) &&
              add(b, "dropout1", kn_nn_dropout(c->dropout)) &&
              add(b, "dropout2", kn_nn_dropout(c->dropout));
    if (!ok) {
        kn_block_free(b);
        return NULL;
    }
    return b;
}

/* ================================================================ models */
static kn_status check_tokens(const kn_block *b, const seq_cfg *c, const kn_tensor *tok)
{
    char who[320];
    if (kn_tensor_ndim(tok) == 2 && !kn_dtype_is_float(kn_tensor_dtype(tok)) &&
        kn_tensor_dtype(tok) != KN_BOOL && kn_tensor_dim(tok, 1) >= 1 &&
        kn_tensor_dim(tok, 1) <= c->max_len)
        return KN_OK;
    return kn_set_error(
        KN_ERR_SHAPE,
        "%s: input has %d dims (dtype %s, last dim %lld), expected (N, T) "
        "integer tokens with 1 <= T <= max_len = %lld",
        kn_block_label(b, who, sizeof who), kn_tensor_ndim(tok), kn_dtype_name(kn_tensor_dtype(tok)),
        kn_tensor_ndim(tok) ? (long long)kn_tensor_dim(tok, -1) : 0LL, (long long)c->max_len);
}

/* tokens (N, T) -> embed + pos_embed[:T] -> dropout -> layers -> mean over T -> fc */
static kn_status transformer_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                                     kn_tensor **out, void *user)
{
    const seq_cfg *c = user;
    kn_status s = one_in_out(b, n_in, in, n_out);
    if (!s) s = check_tokens(b, c, in[0]);
    if (s) return s;
    int64_t steps = kn_tensor_dim(in[0], 1);
    kn_tensor *e = call(b, "embed", in[0]); /* (N, T, d) */
    kn_tensor *pw = kn_block_param(kn_block_child(b, "pos_embed"), "weight");
    kn_tensor *pos = e && pw ? kn_narrow(pw, 0, 0, steps) : NULL; /* (T, d) */
    kn_tensor *h = pos ? kn_add(e, pos) : NULL;
    h = h ? swap(h, call(b, "dropout", h)) : NULL;
    h = h ? swap(h, call(b, "layers", h)) : NULL;
    kn_tensor *m = h ? kn_mean(h, 1, (const int[]){1}, false) : NULL; /* (N, d) */
    out[0] = call(b, "fc", m);
    kn_tensor_unref(e), kn_tensor_unref(pos), kn_tensor_unref(h), kn_tensor_unref(m);
    return out[0] ? KN_OK : kn_last_status();
}

/* Runs the first call on a symbolic (1, 1) token batch, so the deferred
 * parameters (layer norms) exist when the constructor returns. */
static kn_block *materialize(kn_block *b)
{
    kn_tensor *ex = kn_tensor_symbolic(KN_I64, 2, (const int64_t[]){1, 1});
    if (!ex || kn_block_init_shapes(b, 1, &ex)) {
        kn_block_free(b);
        b = NULL;
    }
    kn_tensor_unref(ex);
    return b;
}

kn_block *kn__model_transformer_encoder(const kn_model_config *cfg)
{
    seq_cfg c;
    if (resolve("transformer_encoder", cfg, &c)) return NULL;
    kn_block *b = new_block("transformer_encoder", transformer_forward, &c);
    kn_block *layers = b ? kn_nn_sequential() : NULL;
    bool ok = layers != NULL;
    for (int64_t i = 0; ok && i < c.layers; i++) {
        kn_block *layer = encoder_layer_new(&c);
        ok = layer && !kn_sequential_add(layers, layer);
    }
    if (!ok) kn_block_free(layers);
    ok = ok && add(b, "embed", kn_nn_embedding(c.vocab, c.d_model)) &&
         add(b, "pos_embed", kn_nn_embedding(c.max_len, c.d_model)) &&
         add(b, "dropout", kn_nn_dropout(c.dropout)) && add(b, "layers", layers) &&
         add(b, "fc", kn_nn_dense(c.d_model, c.classes, true, KN_ACT_NONE));
    if (!ok) {
        kn_block_free(b);
        return NULL;
    }
    return materialize(b);
}

/* tokens (N, T) -> embed -> lstm (batch first) -> last step -> fc */
static kn_status lstm_classifier_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                                         kn_tensor **out, void *user)
{
    const seq_cfg *c = user;
    kn_status s = one_in_out(b, n_in, in, n_out);
    if (!s) s = check_tokens(b, c, in[0]);
    if (s) return s;
    int64_t steps = kn_tensor_dim(in[0], 1);
    kn_tensor *e = call(b, "embed", in[0]); /* (N, T, d) */
    kn_tensor *y = call(b, "lstm", e);      /* (N, T, d) */
    kn_tensor *last = y ? kn_narrow(y, 1, steps - 1, 1) : NULL;
    kn_tensor *h = last ? kn_squeeze(last, 1, (const int[]){1}) : NULL; /* (N, d) */
    out[0] = call(b, "fc", h);
    kn_tensor_unref(e), kn_tensor_unref(y), kn_tensor_unref(last), kn_tensor_unref(h);
    return out[0] ? KN_OK : kn_last_status();
}

kn_block *kn__model_lstm_classifier(const kn_model_config *cfg)
{
    seq_cfg c;
    if (resolve("lstm_classifier", cfg, &c)) return NULL;
    kn_rnn_layer r = {.input_size = c.d_model,
                      .hidden_size = c.d_model,
                      .num_layers = (int)c.layers,
                      .batch_first = true,
                      .dropout = c.dropout};
    kn_block *b = new_block("lstm_classifier", lstm_classifier_forward, &c);
    bool ok = b && add(b, "embed", kn_nn_embedding(c.vocab, c.d_model)) &&
              add(b, "lstm", kn_nn_lstm(&r)) &&
              add(b, "fc", kn_nn_dense(c.d_model, c.classes, true, KN_ACT_NONE));
    if (!ok) {
        kn_block_free(b);
        return NULL;
    }
    return b;
}
