/* layers_seq.c — layer, group and instance norm, dropout, embedding and the
 * recurrent layers (LSTM, GRU) as kn_blocks. Each forward is plain op calls
 * (kn_layer_norm, kn_lstm_cell, kn_narrow, kn_stack...), so it runs eagerly,
 * under autograd and traced alike. Deferred sizes are taken from the first
 * input; the parameters appear then. Relies on the public API and block.c. */
#include "nn_internal.h"

#include <math.h>
#include <stdio.h>

/* ------------------------------------------------------------ helpers */

/* "lstm 'encoder.rnn'" (a root block: just "lstm"). */
static const char *who(const kn_block *b, char *buf, size_t n)
{
    return kn_block_label(b, buf, n);
}

/* "(2, 3, 4)", as kn__nn_shape writes a tensor's shape. */
static const char *shape_str(int ndim, const int64_t *shape, char *buf, size_t n)
{
    size_t len = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < ndim && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (len < n) snprintf(buf + len, n - len, ")");
    return buf;
}

/* The block's own parameter `name`, or NULL (no error) when it does not
 * exist yet. Unlike kn__nn_param it lists no tree, so it allocates nothing
 * and cannot hide an allocation failure. */
static kn_tensor *own_param(kn_block *b, const char *name)
{
    kn_tensor *p = kn_block_param(b, name);
    if (!p) kn_clear_error();
    return p;
}

/* Zeroed memory from kn_alloc (configs, pointer arrays). */
static void *zalloc(size_t size)
{
    void *p = kn_alloc(size);
    if (p) memset(p, 0, size);
    return p;
}

/* Adds parameter `name` (dtype dt) unless there (from an earlier,
 * interrupted call): with the layer's default init, or U(-k, k) when k > 0
 * (recurrent layers, whose default needs weight_hh_l0 to exist first). */
static kn_status new_param(kn_block *b, const char *name, kn_dtype dt, int ndim,
                           const int64_t *shape, double k)
{
    if (own_param(b, name)) return KN_OK;
    if (k <= 0) return kn__nn_create(b, name, dt, ndim, shape, false, 0);
    kn_no_grad_begin();
    kn_tensor *t = kn_tensor_rand_uniform(dt, ndim, shape, -k, k);
    kn_no_grad_end();
    kn_status s = t ? kn_tensor_set_requires_grad(t, true) : kn_last_status();
    if (!s) s = kn_block_add_param(b, name, t);
    kn_tensor_unref(t);
    return s;
}

/* The parameter in dtype dt (a new reference; cast when it differs, so the
 * gradient still reaches the f32 parameter). NULL stays NULL for optional
 * ones (*s untouched). */
static kn_tensor *param_as(kn_block *b, const char *name, kn_dtype dt, bool optional, kn_status *s)
{
    if (*s) return NULL;
    kn_tensor *p = own_param(b, name);
    if (!p && optional) return NULL;
    if (!p) {
        char w[300];
        *s = kn__error(KN_ERR_STATE, "%s: has no parameter '%s'", who(b, w, sizeof w), name);
        return NULL;
    }
    kn_tensor *r = kn_tensor_dtype(p) == dt ? kn_tensor_ref(p) : kn_cast(p, dt);
    if (!r) *s = kn_last_status();
    return r;
}

static kn_status check_io(const char *w, int n_in, kn_tensor *const *in, int min_in, int max_in,
                          int n_out, int max_out)
{
    if (n_in < min_in || n_in > max_in)
        return kn__error(KN_ERR_ARG, "%s: called with %d inputs, expected %d..%d", w, n_in, min_in,
                         max_in);
    if (n_out < 1 || n_out > max_out)
        return kn__error(KN_ERR_ARG, "%s: asked for %d outputs, expected 1..%d", w, n_out, max_out);
    for (int i = 0; i < n_in; i++)
        if (!in[i]) return kn__error(KN_ERR_ARG, "%s: input %d is NULL", w, i);
    return KN_OK;
}

static kn_status check_float(const char *w, const char *what, const kn_tensor *t)
{
    if (kn_dtype_is_float(kn_tensor_dtype(t))) return KN_OK;
    return kn__error(KN_ERR_DTYPE, "%s: %s has dtype %s, expected a float dtype", w, what,
                     kn_dtype_name(kn_tensor_dtype(t)));
}

static bool bad_eps(double eps)
{
    return !(eps >= 0) || isinf(eps);
}

/* ================================================================ norms */
typedef enum norm_kind { NORM_LAYER, NORM_GROUP, NORM_INSTANCE } norm_kind;
static const char *const norm_names[] = {"layer_norm", "group_norm", "instance_norm"};

typedef struct norm_cfg {
    norm_kind kind;
    int n_axes;                 /* layer norm */
    int64_t groups, channels;   /* group/instance norm; channels 0: deferred */
    int64_t shape[KN_MAX_DIMS]; /* layer norm: normalized shape, once known */
    double eps;
    bool affine, ready;
} norm_cfg;

/* Checks x against the config, taking deferred sizes from it. */
static kn_status norm_shapes(norm_cfg *c, const char *w, const kn_tensor *x, int *pndim,
                             int64_t *pshape)
{
    char sh[96];
    int nd = kn_tensor_ndim(x);
    const int64_t *xs = kn_tensor_shape(x);
    shape_str(nd, xs, sh, sizeof sh);
    if (c->kind == NORM_LAYER) {
        if (nd < c->n_axes)
            return kn__error(KN_ERR_SHAPE, "%s: input has shape %s, expected at least %d dims", w,
                             sh, c->n_axes);
        const int64_t *tail = xs + nd - c->n_axes;
        if (c->ready && c->affine && memcmp(tail, c->shape, sizeof(int64_t) * (size_t)c->n_axes)) {
            char want[96];
            return kn__error(KN_ERR_SHAPE,
                             "%s: input has shape %s, expected (..., %s) as at the "
                             "first call",
                             w, sh, shape_str(c->n_axes, c->shape, want, sizeof want) + 1);
        }
        *pndim = c->n_axes;
        memcpy(pshape, tail, sizeof(int64_t) * (size_t)c->n_axes);
        return KN_OK;
    }
    int min_nd = c->kind == NORM_INSTANCE ? 3 : 2;
    if (nd < min_nd)
        return kn__error(KN_ERR_SHAPE, "%s: input has shape %s, expected at least %d dims (N, C%s)",
                         w, sh, min_nd, c->kind == NORM_INSTANCE ? ", spatial..." : ", ...");
    if (c->channels && xs[1] != c->channels)
        return kn__error(KN_ERR_SHAPE, "%s: input has shape %s with %lld channels, expected %lld",
                         w, sh, (long long)xs[1], (long long)c->channels);
    if (c->kind == NORM_GROUP && xs[1] % c->groups)
        return kn__error(KN_ERR_SHAPE,
                         "%s: input has shape %s; %lld groups do not divide %lld "
                         "channels",
                         w, sh, (long long)c->groups, (long long)xs[1]);
    *pndim = 1;
    pshape[0] = xs[1];
    return KN_OK;
}

static kn_status norm_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                              kn_tensor **out, void *user)
{
    norm_cfg *c = user;
    char w[320];
    who(b, w, sizeof w);
    kn_status s = check_io(w, n_in, in, 1, 1, n_out, 1);
    if (!s) s = check_float(w, "the input", in[0]);
    int pndim = 0;
    int64_t pshape[KN_MAX_DIMS];
    if (!s) s = norm_shapes(c, w, in[0], &pndim, pshape);
    if (s) return s;
    if (c->affine && !c->ready) { /* deferred: the parameters appear now */
        kn_dtype pdt = kn__nn_param_dtype(in[0]);
        if ((s = new_param(b, "weight", pdt, pndim, pshape, 0)) ||
            (s = new_param(b, "bias", pdt, pndim, pshape, 0)))
            return s;
        if (c->kind == NORM_LAYER)
            memcpy(c->shape, pshape, sizeof(int64_t) * (size_t)pndim);
        else
            c->channels = pshape[0];
    }
    c->ready = true;
    kn_dtype dt = kn_tensor_dtype(in[0]);
    kn_tensor *g = c->affine ? param_as(b, "weight", dt, false, &s) : NULL;
    kn_tensor *be = c->affine ? param_as(b, "bias", dt, false, &s) : NULL;
    if (!s) {
        switch (c->kind) {
        case NORM_LAYER:
            out[0] = kn_layer_norm(in[0], c->n_axes, g, be, c->eps);
            break;
        case NORM_GROUP:
            out[0] = kn_group_norm(in[0], c->groups, g, be, c->eps);
            break;
        case NORM_INSTANCE:
            out[0] = kn_instance_norm(in[0], g, be, c->eps);
            break;
        }
        if (!out[0]) s = kn_last_status();
    }
    kn_tensor_unref(g), kn_tensor_unref(be);
    return s;
}

static kn_block *norm_new(norm_cfg *c)
{
    norm_cfg *copy = zalloc(sizeof *copy);
    if (copy) *copy = *c;
    return kn__nn_block(norm_names[c->kind], norm_forward, copy);
}

kn_block *kn_nn_layer_norm(int n_axes, double eps, bool affine)
{
    if (n_axes < 1 || n_axes > KN_MAX_DIMS)
        return kn__error_null(KN_ERR_ARG, "nn_layer_norm: n_axes is %d, expected 1..%d", n_axes,
                              KN_MAX_DIMS);
    if (bad_eps(eps))
        return kn__error_null(KN_ERR_ARG, "nn_layer_norm: eps is %g, expected a finite value >= 0",
                              eps);
    return norm_new(
        &(norm_cfg){.kind = NORM_LAYER, .n_axes = n_axes, .eps = eps, .affine = affine});
}

kn_block *kn_nn_group_norm(int64_t groups, int64_t num_channels, double eps, bool affine)
{
    if (groups < 1)
        return kn__error_null(KN_ERR_ARG, "nn_group_norm: groups is %lld, expected >= 1",
                              (long long)groups);
    if (num_channels < 0 || num_channels % groups)
        return kn__error_null(KN_ERR_ARG,
                              "nn_group_norm: num_channels is %lld, expected a multiple of groups "
                              "(%lld), or 0 to take it from the input",
                              (long long)num_channels, (long long)groups);
    if (bad_eps(eps))
        return kn__error_null(KN_ERR_ARG, "nn_group_norm: eps is %g, expected a finite value >= 0",
                              eps);
    return norm_new(&(norm_cfg){.kind = NORM_GROUP,
                                .groups = groups,
                                .channels = num_channels,
                                .eps = eps,
                                .affine = affine});
}

kn_block *kn_nn_instance_norm(int64_t num_channels, double eps, bool affine)
{
    if (num_channels < 0)
        return kn__error_null(KN_ERR_ARG,
                              "nn_instance_norm: num_channels is %lld, expected >= 0 (0: from the "
                              "input)",
                              (long long)num_channels);
    if (bad_eps(eps))
        return kn__error_null(KN_ERR_ARG,
                              "nn_instance_norm: eps is %g, expected a finite value >= 0", eps);
    return norm_new(
        &(norm_cfg){.kind = NORM_INSTANCE, .channels = num_channels, .eps = eps, .affine = affine});
}

/* ================================================================ dropout */
typedef struct dropout_cfg {
    double p;
} dropout_cfg;

static kn_status dropout_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                                 kn_tensor **out, void *user)
{
    const dropout_cfg *c = user;
    char w[320];
    kn_status s = check_io(who(b, w, sizeof w), n_in, in, 1, 1, n_out, 1);
    if (s) return s;
    out[0] = kn_dropout(in[0], c->p, kn_block_is_training(b));
    return out[0] ? KN_OK : kn_last_status();
}

kn_block *kn_nn_dropout(double p)
{
    if (!(p >= 0 && p <= 1))
        return kn__error_null(KN_ERR_ARG, "nn_dropout: p is %g, expected 0 <= p <= 1", p);
    dropout_cfg *c = zalloc(sizeof *c);
    if (c) c->p = p;
    return kn__nn_block("dropout", dropout_forward, c);
}

/* ================================================================ embedding */
static kn_status embedding_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                                   kn_tensor **out, void *user)
{
    (void)user;
    char w[320];
    who(b, w, sizeof w);
    kn_status s = check_io(w, n_in, in, 1, 1, n_out, 1);
    if (s) return s;
    kn_dtype dt = kn_tensor_dtype(in[0]);
    if (kn_dtype_is_float(dt) || dt == KN_BOOL) {
        char sh[96];
        return kn__error(KN_ERR_DTYPE,
                         "%s: input has dtype %s and shape %s, expected integer "
                         "indices",
                         w, kn_dtype_name(dt),
                         shape_str(kn_tensor_ndim(in[0]), kn_tensor_shape(in[0]), sh, sizeof sh));
    }
    kn_tensor *weight = kn_block_param(b, "weight");
    out[0] = weight ? kn_embedding(weight, in[0]) : NULL;
    return out[0] ? KN_OK : kn_last_status();
}

kn_block *kn_nn_embedding(int64_t num_embeddings, int64_t dim)
{
    if (num_embeddings < 1 || dim < 1)
        return kn__error_null(KN_ERR_ARG,
                              "nn_embedding: num_embeddings %lld and dim %lld, expected both >= 1",
                              (long long)num_embeddings, (long long)dim);
    kn_block *b = kn_block_new("embedding", embedding_forward, NULL);
    int64_t shape[2] = {num_embeddings, dim};
    if (b && new_param(b, "weight", KN_F32, 2, shape, 0)) { /* N(0, 1) as PyTorch */
        kn_block_free(b);
        return NULL;
    }
    return b;
}

/* ================================================================ LSTM, GRU
 * Time runs along axis 0 ((T, N, in)) or 1 (batch_first). Each layer and
 * direction steps the cell over the time slices; the directions' outputs
 * are concatenated on the feature axis and feed the next layer (through
 * dropout when training). */
typedef struct rnn_cfg {
    kn_rnn_layer p;
    bool lstm, ready;
} rnn_cfg;

static void pname(char *buf, size_t n, const char *what, int layer, int dir)
{
    snprintf(buf, n, "%s_l%d%s", what, layer, dir ? "_reverse" : "");
}

/* All parameters in PyTorch's order, U(-1/sqrt(hidden), 1/sqrt(hidden)). */
static kn_status rnn_create(kn_block *b, const rnn_cfg *c, int64_t input_size, kn_dtype dt)
{
    int64_t h = c->p.hidden_size, g = (c->lstm ? 4 : 3) * h;
    int dirs = c->p.bidirectional ? 2 : 1;
    double k = 1.0 / sqrt((double)h);
    for (int l = 0; l < c->p.num_layers; l++)
        for (int d = 0; d < dirs; d++) {
            char name[64];
            int64_t wi[2] = {g, l == 0 ? input_size : h * dirs}, wh[2] = {g, h};
            kn_status s;
            pname(name, sizeof name, "weight_ih", l, d);
            if ((s = new_param(b, name, dt, 2, wi, k))) return s;
            pname(name, sizeof name, "weight_hh", l, d);
            if ((s = new_param(b, name, dt, 2, wh, k))) return s;
            if (c->p.no_bias) continue;
            pname(name, sizeof name, "bias_ih", l, d);
            if ((s = new_param(b, name, dt, 1, &g, k))) return s;
            pname(name, sizeof name, "bias_hh", l, d);
            if ((s = new_param(b, name, dt, 1, &g, k))) return s;
        }
    return KN_OK;
}

/* A new reference to t[i] along axis (that axis removed). */
static kn_tensor *select_at(kn_tensor *t, int axis, int64_t i)
{
    kn_tensor *n = kn_narrow(t, axis, i, 1);
    kn_tensor *r = n ? kn_squeeze(n, 1, &axis) : NULL;
    kn_tensor_unref(n);
    return r;
}

/* Zeros (N, hidden) made from x_t (N, in), so a traced graph does not bake
 * the batch size in: an empty slice padded with zeros. */
static kn_tensor *zero_state(kn_tensor *xt, int64_t hidden)
{
    kn_tensor *e = kn_narrow(xt, 1, 0, 0);
    int64_t pads[4] = {0, 0, 0, hidden};
    kn_tensor *z = e ? kn_pad(e, pads, KN_PAD_CONSTANT, 0) : NULL;
    kn_tensor_unref(e);
    return z;
}

/* Checks h0/c0 against (layers * dirs, N, hidden) and x's dtype. */
static kn_status check_state(const char *w, const char *what, const kn_tensor *t, kn_dtype dt,
                             int64_t ld, int64_t n, int64_t h)
{
    const int64_t want[3] = {ld, n, h};
    if (kn_tensor_ndim(t) == 3 && !memcmp(kn_tensor_shape(t), want, sizeof want) &&
        kn_tensor_dtype(t) == dt)
        return KN_OK;
    char sh[96], ws[96];
    return kn__error(KN_ERR_SHAPE,
                     "%s: %s has shape %s and dtype %s, expected %s = (layers * "
                     "directions, N, hidden) and dtype %s like the input",
                     w, what, shape_str(kn_tensor_ndim(t), kn_tensor_shape(t), sh, sizeof sh),
                     kn_dtype_name(kn_tensor_dtype(t)), shape_str(3, want, ws, sizeof ws),
                     kn_dtype_name(dt));
}

/* The weights of one layer and direction in dtype dt (new references). */
static kn_status layer_weights(kn_block *b, int l, int d, kn_dtype dt, kn_tensor **wt)
{
    static const char *const what[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
    kn_status s = KN_OK;
    for (int i = 0; i < 4; i++) {
        char name[64];
        pname(name, sizeof name, what[i], l, d);
        wt[i] = param_as(b, name, dt, i >= 2, &s);
    }
    return s;
}

typedef struct rnn_run {
    const rnn_cfg *c;
    int taxis, dirs;
    int64_t steps;
    kn_tensor *h0, *c0;   /* may be NULL */
    kn_tensor **xs;       /* steps time slices of the layer's input */
    kn_tensor **ys;       /* steps outputs of one direction */
    kn_tensor **hn, **cn; /* layers * dirs final states */
} rnn_run;

/* Steps one direction of layer l over r->xs; fills r->ys, hn[idx], cn[idx]. */
static kn_status run_direction(kn_block *b, rnn_run *r, int l, int d)
{
    const rnn_cfg *c = r->c;
    int idx = l * r->dirs + d;
    kn_dtype dt = kn_tensor_dtype(r->xs[0]);
    kn_tensor *wt[4] = {NULL};
    kn_status s = layer_weights(b, l, d, dt, wt);
    kn_tensor *h = NULL, *cs = NULL;
    if (!s) {
        h = r->h0 ? select_at(r->h0, 0, idx) : zero_state(r->xs[0], c->p.hidden_size);
        if (c->lstm) cs = r->c0 ? select_at(r->c0, 0, idx) : zero_state(r->xs[0], c->p.hidden_size);
        if (!h || (c->lstm && !cs)) s = kn_last_status();
    }
    for (int64_t i = 0; i < r->steps && !s; i++) {
        int64_t t = d ? r->steps - 1 - i : i;
        kn_tensor *h2 = NULL, *c2 = NULL;
        if (c->lstm)
            s = kn_lstm_cell(r->xs[t], h, cs, wt[0], wt[1], wt[2], wt[3], &h2, &c2);
        else if (!(h2 = kn_gru_cell(r->xs[t], h, wt[0], wt[1], wt[2], wt[3])))
            s = kn_last_status();
        if (s) break;
        kn_tensor_unref(h), kn_tensor_unref(cs);
        h = h2, cs = c2;
        r->ys[t] = kn_tensor_ref(h);
    }
    for (int i = 0; i < 4; i++)
        kn_tensor_unref(wt[i]);
    r->hn[idx] = h, r->cn[idx] = cs; /* freed by the caller, also on error */
    return s;
}

static void unref_all(kn_tensor **t, int64_t n)
{
    for (int64_t i = 0; t && i < n; i++) {
        kn_tensor_unref(t[i]);
        t[i] = NULL;
    }
}

/* One layer: input (r->xs already sliced) to its output sequence *y. */
static kn_status run_layer(kn_block *b, rnn_run *r, int l, kn_tensor **y)
{
    kn_tensor *dir_out[2] = {NULL, NULL};
    kn_status s = KN_OK;
    for (int d = 0; d < r->dirs && !s; d++) {
        s = run_direction(b, r, l, d);
        if (!s && !(dir_out[d] = kn_stack((int)r->steps, r->ys, r->taxis))) s = kn_last_status();
        unref_all(r->ys, r->steps);
    }
    if (!s) {
        *y = r->dirs == 1 ? kn_tensor_ref(dir_out[0]) : kn_concat(2, dir_out, 2);
        if (!*y) s = kn_last_status();
    }
    kn_tensor_unref(dir_out[0]), kn_tensor_unref(dir_out[1]);
    return s;
}

/* Checks the inputs of an RNN forward; creates deferred parameters. */
static kn_status rnn_prepare(kn_block *b, rnn_cfg *c, const char *w, int n_in, kn_tensor *const *in,
                             int n_out, rnn_run *r)
{
    int max_io = c->lstm ? 3 : 2;
    kn_status s = check_io(w, n_in, in, 1, max_io, n_out, max_io);
    if (!s) s = check_float(w, "the input", in[0]);
    if (s) return s;
    if (c->lstm && n_in == 2)
        return kn__error(KN_ERR_ARG, "%s: got h0 without c0; pass (x, h0, c0) or x alone", w);
    const kn_tensor *x = in[0];
    char sh[96];
    shape_str(kn_tensor_ndim(x), kn_tensor_shape(x), sh, sizeof sh);
    if (kn_tensor_ndim(x) != 3)
        return kn__error(KN_ERR_SHAPE, "%s: input has shape %s, expected 3 dims %s", w, sh,
                         c->p.batch_first ? "(N, T, input)" : "(T, N, input)");
    r->taxis = c->p.batch_first ? 1 : 0;
    r->steps = kn_tensor_dim(x, r->taxis);
    int64_t batch = kn_tensor_dim(x, 1 - r->taxis), feat = kn_tensor_dim(x, 2);
    if (r->steps < 1)
        return kn__error(KN_ERR_SHAPE, "%s: input has shape %s with no time steps", w, sh);
    if (!c->ready) { /* deferred input_size: the parameters appear now */
        if ((s = rnn_create(b, c, feat, kn__nn_param_dtype(x)))) return s;
        c->p.input_size = feat, c->ready = true;
    }
    if (feat != c->p.input_size)
        return kn__error(KN_ERR_SHAPE, "%s: input has shape %s with %lld features, expected %lld",
                         w, sh, (long long)feat, (long long)c->p.input_size);
    r->dirs = c->p.bidirectional ? 2 : 1;
    int64_t ld = (int64_t)c->p.num_layers * r->dirs;
    kn_dtype dt = kn_tensor_dtype(x);
    if (n_in > 1 && (s = check_state(w, "h0", in[1], dt, ld, batch, c->p.hidden_size))) return s;
    if (n_in > 2 && (s = check_state(w, "c0", in[2], dt, ld, batch, c->p.hidden_size))) return s;
    r->h0 = n_in > 1 ? in[1] : NULL;
    r->c0 = n_in > 2 ? in[2] : NULL;
    return KN_OK;
}

static kn_status rnn_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                             kn_tensor **out, void *user)
{
    rnn_cfg *c = user;
    char w[320];
    who(b, w, sizeof w);
    rnn_run r = {.c = c};
    kn_status s = rnn_prepare(b, c, w, n_in, in, n_out, &r);
    if (s) return s;
    int64_t ld = (int64_t)c->p.num_layers * r.dirs;
    r.xs = zalloc(sizeof(kn_tensor *) * (size_t)r.steps);
    r.ys = zalloc(sizeof(kn_tensor *) * (size_t)r.steps);
    r.hn = zalloc(sizeof(kn_tensor *) * (size_t)ld);
    r.cn = zalloc(sizeof(kn_tensor *) * (size_t)ld);
    if (!r.xs || !r.ys || !r.hn || !r.cn) s = kn_last_status();
    bool training = kn_block_is_training(b);
    kn_tensor *layer_in = s ? NULL : kn_tensor_ref(in[0]);
    for (int l = 0; l < c->p.num_layers && !s; l++) {
        for (int64_t t = 0; t < r.steps && !s; t++)
            if (!(r.xs[t] = select_at(layer_in, r.taxis, t))) s = kn_last_status();
        kn_tensor *y = NULL;
        if (!s) s = run_layer(b, &r, l, &y);
        unref_all(r.xs, r.steps);
        if (!s && training && c->p.dropout > 0 && l + 1 < c->p.num_layers) {
            kn_tensor *dy = kn_dropout(y, c->p.dropout, true);
            kn_tensor_unref(y);
            if (!(y = dy)) s = kn_last_status();
        }
        kn_tensor_unref(layer_in);
        layer_in = y;
    }
    if (!s) {
        out[0] = kn_tensor_ref(layer_in);
        if (n_out > 1 && !(out[1] = kn_stack((int)ld, r.hn, 0))) s = kn_last_status();
        if (!s && n_out > 2 && !(out[2] = kn_stack((int)ld, r.cn, 0))) s = kn_last_status();
    }
    kn_tensor_unref(layer_in);
    unref_all(r.hn, ld), unref_all(r.cn, ld);
    if (s)
        for (int i = 0; i < n_out; i++) {
            kn_tensor_unref(out[i]);
            out[i] = NULL;
        }
    kn_free(r.xs), kn_free(r.ys), kn_free(r.hn), kn_free(r.cn);
    return s;
}

static kn_block *rnn_new(const kn_rnn_layer *cfg, bool lstm)
{
    const char *f = lstm ? "nn_lstm" : "nn_gru";
    if (!cfg) return kn__error_null(KN_ERR_ARG, "%s: cfg is NULL", f);
    if (cfg->hidden_size < 1 || cfg->input_size < 0 || cfg->num_layers < 0)
        return kn__error_null(KN_ERR_ARG,
                              "%s: hidden_size %lld, input_size %lld, num_layers %d; expected "
                              "hidden_size >= 1, input_size >= 0 (0: from the input), "
                              "num_layers >= 0 (0: 1)",
                              f, (long long)cfg->hidden_size, (long long)cfg->input_size,
                              cfg->num_layers);
    if (cfg->hidden_size > INT64_MAX / 8 || cfg->num_layers > 1024)
        return kn__error_null(KN_ERR_ARG, "%s: hidden_size %lld or num_layers %d is too large", f,
                              (long long)cfg->hidden_size, cfg->num_layers);
    if (!(cfg->dropout >= 0 && cfg->dropout < 1))
        return kn__error_null(KN_ERR_ARG, "%s: dropout is %g, expected 0 <= p < 1", f,
                              cfg->dropout);
    rnn_cfg *c = zalloc(sizeof *c);
    if (c) {
        c->p = *cfg;
        c->lstm = lstm;
        if (c->p.num_layers == 0) c->p.num_layers = 1;
    }
    kn_block *b = kn__nn_block(lstm ? "lstm" : "gru", rnn_forward, c);
    if (b && cfg->input_size > 0) {
        if (rnn_create(b, c, cfg->input_size, KN_F32)) {
            kn_block_free(b);
            return NULL;
        }
        c->ready = true;
    }
    return b;
}

kn_block *kn_nn_lstm(const kn_rnn_layer *cfg)
{
    return rnn_new(cfg, true);
}
kn_block *kn_nn_gru(const kn_rnn_layer *cfg)
{
    return rnn_new(cfg, false);
}
