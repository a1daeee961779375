/* rnn.c — recurrent cells (LSTM, GRU) as composite ops over kn_linear,
 * kn_narrow, kn_sigmoid and kn_tanh, with PyTorch's gate order and formulas;
 * gradients come from the primitives. f16/bf16 are computed in f32. */
#include "op.h"

/* ------------------------------------------------------------ validation */
typedef struct cell_dims {
    int64_t batch, input, hidden, gates; /* gates = G * hidden */
    bool batched;
} cell_dims;

static kn_status expect_shape(const char *who, const char *what, const kn_tensor *t, int ndim,
                              const int64_t *shape, const char *meaning)
{
    bool ok = t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++)
        ok = t->shape[d] == shape[d];
    if (ok) return KN_OK;
    char have[96], want[96];
    return kn__error(KN_ERR_SHAPE, "%s: %s has shape %s, expected %s = %s", who, what,
                     kn__shape_str(t->ndim, t->shape, have, sizeof have), meaning,
                     kn__shape_str(ndim, shape, want, sizeof want));
}

/* Checks x, h, [c], w_ih, w_hh, [b_ih], [b_hh] for a cell with n_gates. */
static kn_status cell_infer(const kn_op_args *a, int n_gates, bool has_c, cell_dims *cd)
{
    const char *who = a->def->name;
    static const char *lstm_names[] = {"x", "h", "c", "w_ih", "w_hh", "b_ih", "b_hh"};
    static const char *gru_names[] = {"x", "h", "w_ih", "w_hh", "b_ih", "b_hh"};
    const char *const *names = has_c ? lstm_names : gru_names;
    const kn_tensor *x = a->in[0], *h = a->in[1];
    for (int i = 0; i < a->n_in; i++) {
        const kn_tensor *t = a->in[i];
        if (t && !kn_dtype_is_float(t->dtype))
            return kn__error(KN_ERR_DTYPE, "%s: %s has dtype %s, expected a float dtype", who,
                             names[i], kn_dtype_name(t->dtype));
        if (t && t->dtype != x->dtype)
            return kn__error(KN_ERR_DTYPE, "%s: %s is %s but x is %s", who, names[i],
                             kn_dtype_name(t->dtype), kn_dtype_name(x->dtype));
    }
    if (x->ndim != 1 && x->ndim != 2)
        return kn__error(KN_ERR_SHAPE, "%s: x has %d dims, expected 2 (N, input) or 1 (input)", who,
                         x->ndim);
    cd->batched = x->ndim == 2;
    cd->batch = cd->batched ? x->shape[0] : 1;
    cd->input = x->shape[x->ndim - 1];
    if (h->ndim != x->ndim)
        return kn__error(KN_ERR_SHAPE,
                         "%s: h has %d dims but x has %d (expected (N, hidden) for a "
                         "batch, (hidden) without)",
                         who, h->ndim, x->ndim);
    cd->hidden = h->shape[h->ndim - 1];
    int64_t hshape[2] = {cd->batch, cd->hidden};
    const int64_t *hs = cd->batched ? hshape : hshape + 1;
    kn_status s = expect_shape(who, "h", h, x->ndim, hs, "(N, hidden) with x's batch");
    if (!s && has_c) s = expect_shape(who, "c", a->in[2], x->ndim, hs, "h's shape");
    if (s) return s;
    int64_t total;
    if (kn__mul_overflow(cd->hidden, n_gates, &cd->gates) ||
        kn__mul_overflow(cd->gates, cd->batch, &total) || total > INT64_MAX / 16)
        return kn__error(KN_ERR_SHAPE, "%s: the gates would have too many elements (overflow)",
                         who);
    int k = has_c ? 3 : 2;
    int64_t wi[2] = {cd->gates, cd->input}, wh[2] = {cd->gates, cd->hidden};
    const char *mi = has_c ? "(4*hidden, input)" : "(3*hidden, input)";
    const char *mh = has_c ? "(4*hidden, hidden)" : "(3*hidden, hidden)";
    const char *mb = has_c ? "(4*hidden)" : "(3*hidden)";
    if ((s = expect_shape(who, "w_ih", a->in[k], 2, wi, mi)) ||
        (s = expect_shape(who, "w_hh", a->in[k + 1], 2, wh, mh)))
        return s;
    for (int i = k + 2; i < k + 4; i++)
        if (a->in[i] && (s = expect_shape(who, names[i], a->in[i], 1, wi, mb))) return s;
    return KN_OK;
}

static void cell_out(const kn_tensor *h, kn_out_meta *out)
{
    out->dtype = h->dtype;
    out->ndim = h->ndim;
    for (int d = 0; d < h->ndim; d++)
        out->shape[d] = h->shape[d];
}

/* ------------------------------------------------------------ compose */
/* t in the compute dtype, as a batch (1, n) when unbatched; kept in s. */
static kn_tensor *prep(kn_scratch *s, kn_tensor *t, bool batched, bool is_vector)
{
    if (!t) return NULL;
    kn_tensor *r = t;
    if (t->dtype != KN_F32 && t->dtype != KN_F64) r = kn__keep(s, kn_cast(t, KN_F32));
    if (r && !batched && is_vector) {
        int64_t shape[2] = {1, r->shape[0]};
        r = kn__keep(s, kn_reshape(r, 2, shape));
    }
    return r;
}

/* x w_ihᵀ + b_ih + h w_hhᵀ + b_hh split in G chunks of `hidden` columns. */
static kn_status cell_gates(kn_scratch *s, kn_tensor *x, kn_tensor *h, kn_tensor *const *w,
                            int n_gates, int64_t hidden, kn_tensor **gi, kn_tensor **gh)
{
    kn_tensor *li = x ? kn__keep(s, kn_linear(x, w[0], w[2])) : NULL;
    kn_tensor *lh = h ? kn__keep(s, kn_linear(h, w[1], w[3])) : NULL;
    if (!li || !lh) return kn_last_status();
    for (int g = 0; g < n_gates; g++) {
        gi[g] = kn__keep(s, kn_narrow(li, 1, g * hidden, hidden));
        gh[g] = kn__keep(s, kn_narrow(lh, 1, g * hidden, hidden));
        if (!gi[g] || !gh[g]) return kn_last_status();
    }
    return KN_OK;
}

/* Stores r as output i: cast back to dtype and reshaped to `like`'s shape. */
static kn_status set_out(const kn_op_args *a, int i, kn_tensor *r, const kn_tensor *like)
{
    kn_tensor *c = r->dtype == like->dtype ? kn_tensor_ref(r) : kn_cast(r, like->dtype);
    a->out[i] =
        c && c->ndim != like->ndim ? kn_reshape(c, like->ndim, like->shape) : kn_tensor_ref(c);
    kn_tensor_unref(c);
    return a->out[i] ? KN_OK : kn_last_status();
}

static kn_tensor *sig_sum(kn_scratch *s, kn_tensor *a, kn_tensor *b)
{
    kn_tensor *t = kn__keep(s, kn_add(a, b));
    return t ? kn__keep(s, kn_sigmoid(t)) : NULL;
}

/* ---- lstm_cell: i, f, g, o = σ, σ, tanh, σ of the gate sums;
 * c' = f c + i g, h' = o tanh(c'). */
static kn_status lstm_infer(const kn_op_args *a, kn_out_meta *out)
{
    cell_dims cd;
    kn_status s = cell_infer(a, 4, true, &cd);
    if (s) return s;
    cell_out(a->in[1], &out[0]);
    cell_out(a->in[1], &out[1]);
    return KN_OK;
}

static kn_status lstm_compose(const kn_op_args *a)
{
    kn_scratch s = {0};
    bool b = a->in[0]->ndim == 2;
    kn_tensor *x = prep(&s, a->in[0], b, true), *h = prep(&s, a->in[1], b, true);
    kn_tensor *c = prep(&s, a->in[2], b, true);
    kn_tensor *w[4] = {prep(&s, a->in[3], b, false), prep(&s, a->in[4], b, false),
                       prep(&s, a->in[5], b, false), prep(&s, a->in[6], b, false)};
    int64_t hidden = a->in[1]->shape[a->in[1]->ndim - 1];
    kn_tensor *gi[4], *gh[4];
    bool ok = c && w[0] && w[1] && (w[2] || !a->in[5]) && (w[3] || !a->in[6]);
    kn_status st = ok ? cell_gates(&s, x, h, w, 4, hidden, gi, gh) : kn_last_status();
    kn_tensor *c2 = NULL, *h2 = NULL;
    if (!st) {
        kn_tensor *ig = sig_sum(&s, gi[0], gh[0]), *fg = sig_sum(&s, gi[1], gh[1]);
        kn_tensor *gsum = kn__keep(&s, kn_add(gi[2], gh[2]));
        kn_tensor *gg = gsum ? kn__keep(&s, kn_tanh(gsum)) : NULL;
        kn_tensor *og = sig_sum(&s, gi[3], gh[3]);
        kn_tensor *fc = fg ? kn__keep(&s, kn_mul(fg, c)) : NULL;
        kn_tensor *igg = ig && gg ? kn__keep(&s, kn_mul(ig, gg)) : NULL;
        c2 = fc && igg ? kn__keep(&s, kn_add(fc, igg)) : NULL;
        kn_tensor *tc = c2 ? kn__keep(&s, kn_tanh(c2)) : NULL;
        h2 = og && tc ? kn__keep(&s, kn_mul(og, tc)) : NULL;
        st = h2 ? KN_OK : kn_last_status();
    }
    if (!st && !(st = set_out(a, 0, h2, a->in[1]))) st = set_out(a, 1, c2, a->in[1]);
    kn__scratch_free(&s);
    return st;
}

const kn_op_def kn_op_lstm_cell = {
    .name = "lstm_cell",
    .n_in = 7,
    .n_out = 2,
    .optional_in = 0x60,
    .dtypes = KN_DTYPES_FLOAT,
    .infer = lstm_infer,
    .compose = lstm_compose,
    .amp = KN_AMP_LOWP,
    .layout = KN_LAYOUT_AGNOSTIC,
};

kn_status kn_lstm_cell(kn_tensor *x, kn_tensor *h, kn_tensor *c, kn_tensor *w_ih, kn_tensor *w_hh,
                       kn_tensor *b_ih, kn_tensor *b_hh, kn_tensor **h_out, kn_tensor **c_out)
{
    if (!h_out || !c_out)
        return kn__error(KN_ERR_ARG, "lstm_cell: h_out and c_out must not be NULL");
    *h_out = *c_out = NULL;
    kn_tensor *in[7] = {x, h, c, w_ih, w_hh, b_ih, b_hh}, *out[2] = {NULL, NULL};
    kn_status s = kn__op_call(&kn_op_lstm_cell, 7, in, NULL, 2, out);
    if (!s) *h_out = out[0], *c_out = out[1];
    return s;
}

/* ---- gru_cell: r, z = σ of the gate sums, n = tanh(gi_n + r gh_n),
 * h' = (1 - z) n + z h = n + z (h - n). */
static kn_status gru_infer(const kn_op_args *a, kn_out_meta *out)
{
    cell_dims cd;
    kn_status s = cell_infer(a, 3, false, &cd);
    if (s) return s;
    cell_out(a->in[1], out);
    return KN_OK;
}

static kn_status gru_compose(const kn_op_args *a)
{
    kn_scratch s = {0};
    bool b = a->in[0]->ndim == 2;
    kn_tensor *x = prep(&s, a->in[0], b, true), *h = prep(&s, a->in[1], b, true);
    kn_tensor *w[4] = {prep(&s, a->in[2], b, false), prep(&s, a->in[3], b, false),
                       prep(&s, a->in[4], b, false), prep(&s, a->in[5], b, false)};
    int64_t hidden = a->in[1]->shape[a->in[1]->ndim - 1];
    kn_tensor *gi[3], *gh[3], *h2 = NULL;
    bool ok = w[0] && w[1] && (w[2] || !a->in[4]) && (w[3] || !a->in[5]);
    kn_status st = ok ? cell_gates(&s, x, h, w, 3, hidden, gi, gh) : kn_last_status();
    if (!st) {
        kn_tensor *r = sig_sum(&s, gi[0], gh[0]), *z = sig_sum(&s, gi[1], gh[1]);
        kn_tensor *rh = r ? kn__keep(&s, kn_mul(r, gh[2])) : NULL;
        kn_tensor *ns = rh ? kn__keep(&s, kn_add(gi[2], rh)) : NULL;
        kn_tensor *n = ns ? kn__keep(&s, kn_tanh(ns)) : NULL;
        kn_tensor *hn = n ? kn__keep(&s, kn_sub(h, n)) : NULL;
        kn_tensor *zhn = z && hn ? kn__keep(&s, kn_mul(z, hn)) : NULL;
        h2 = zhn ? kn__keep(&s, kn_add(n, zhn)) : NULL;
        st = h2 ? KN_OK : kn_last_status();
    }
    if (!st) st = set_out(a, 0, h2, a->in[1]);
    kn__scratch_free(&s);
    return st;
}

const kn_op_def kn_op_gru_cell = {
    .name = "gru_cell",
    .n_in = 6,
    .n_out = 1,
    .optional_in = 0x30,
    .dtypes = KN_DTYPES_FLOAT,
    .infer = gru_infer,
    .compose = gru_compose,
    .amp = KN_AMP_LOWP,
    .layout = KN_LAYOUT_AGNOSTIC,
};

kn_tensor *kn_gru_cell(kn_tensor *x, kn_tensor *h, kn_tensor *w_ih, kn_tensor *w_hh,
                       kn_tensor *b_ih, kn_tensor *b_hh)
{
    kn_tensor *in[6] = {x, h, w_ih, w_hh, b_ih, b_hh};
    return kn__op_call1(&kn_op_gru_cell, 6, in, NULL);
}
