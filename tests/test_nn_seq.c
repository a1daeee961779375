/* test_nn_seq.c — the sequence layers (layer/group/instance norm, dropout,
 * embedding, LSTM, GRU) and the sequence models (transformer_encoder,
 * lstm_classifier) against torch.nn 1.13 (tests/golden/nn_seq.h from
 * tests/gen/gen_nn_seq.py) with the same weights: outputs and gradients,
 * eagerly and hybridized; f64 finite-difference checks; deferred sizes and
 * the errors that name the layer; a tiny task the LSTM classifier must fit. */
#include "harness.h"

#include "golden/nn_seq.h"

#define F32_RTOL 1e-4
#define F32_ATOL 2e-5

/* ---------------------------------------------------------------- helpers */
static int find_param(const kn_block *b, const char *name)
{
    for (int i = 0, n = kn_block_num_params(b); i < n; i++)
        if (!strcmp(kn_block_param_name(b, i), name)) return i;
    return -1;
}

/* Copies every named array into the block's parameter of that path. */
static void load_named(kn_block *b, const kt_named *t)
{
    for (; t->name; t++) {
        int i = find_param(b, t->name);
        KT_CHECK(i >= 0, "parameter '%s' exists", t->name);
        if (i < 0) continue;
        kn_tensor *p = kn_block_param_at(b, i);
        kn_tensor *v = kt_from_array(t->a, kn_tensor_dtype(p));
        bool same = kn_tensor_ndim(p) == t->a->ndim &&
                    !memcmp(kn_tensor_shape(p), t->a->shape, sizeof(int64_t) * (size_t)t->a->ndim);
        KT_CHECK(same, "parameter '%s' has torch's shape", t->name);
        kn_no_grad_begin();
        if (same) KT_OK(kn_tensor_copy_(p, v));
        kn_no_grad_end();
        kn_tensor_unref(v);
    }
}

/* Compares each named parameter's .grad with the array. */
static void check_grads(const char *op, kn_block *b, const kt_named *t, double rtol, double atol)
{
    for (; t->name; t++) {
        int i = find_param(b, t->name);
        kn_tensor *g = i >= 0 ? kn_tensor_grad(kn_block_param_at(b, i)) : NULL;
        KT_CHECK(g != NULL, "%s: parameter '%s' has a gradient", op, t->name);
        if (g && !kt_check_array(op, g, t->a, rtol, atol))
            fprintf(stderr, "  (gradient of '%s')\n", t->name);
    }
}

static void zero_grads(kn_block *b)
{
    for (int i = 0, n = kn_block_num_params(b); i < n; i++)
        kn_tensor_zero_grad(kn_block_param_at(b, i));
}

/* sum(out * w) over pairs, as one scalar. */
static kn_tensor *weighted_sum(int n, kn_tensor *const *outs, const kt_array *const *ws)
{
    kn_tensor *total = NULL;
    for (int i = 0; i < n; i++) {
        kn_tensor *w = kt_from_array(ws[i], kn_tensor_dtype(outs[i]));
        kn_tensor *m = kn_mul(outs[i], w);
        kn_tensor *s = kn_sum(m, 0, NULL, false);
        kn_tensor *t = total ? kn_add(total, s) : kn_tensor_ref(s);
        kn_tensor_unref(total), kn_tensor_unref(w), kn_tensor_unref(m), kn_tensor_unref(s);
        total = t;
    }
    return total;
}

static double max_abs_diff(const kn_tensor *a, const kn_tensor *b)
{
    int64_t n = kn_tensor_numel(a);
    if (n != kn_tensor_numel(b)) return INFINITY;
    double *x = kn_alloc(sizeof(double) * (size_t)(n ? n : 1)),
           *y = kn_alloc(sizeof(double) * (size_t)(n ? n : 1));
    double m = 0;
    if (x && y && !kn_tensor_copy_to(a, KN_F64, x, sizeof(double) * (size_t)n) &&
        !kn_tensor_copy_to(b, KN_F64, y, sizeof(double) * (size_t)n))
        for (int64_t i = 0; i < n; i++)
            m = fmax(m, fabs(x[i] - y[i]));
    else
        m = INFINITY;
    kn_free(x), kn_free(y);
    return m;
}

/* A parent whose forward runs its only child: errors then carry a path. */
static kn_status wrap_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                              kn_tensor **out, void *user)
{
    (void)user;
    return kn_block_forward(kn_block_child_at(b, 0), n_in, in, n_out, out);
}

static kn_block *wrap(const char *child_name, kn_block *child)
{
    kn_block *p = kn_block_new("model", wrap_forward, NULL);
    KT_OK(kn_block_add_child(p, child_name, child));
    return p;
}

/* ================================================================ LSTM, GRU */
typedef struct rnn_case {
    const kt_array *x, *h0, *c0, *out[3], *w[3], *gx, *gh0, *gc0;
    const kt_named *grads; /* NULL: not generated for this case */
    bool batch_first;
} rnn_case;

#define LSTM_CASE(k, bf, h0, c0, gh0, gc0, grads)                                                  \
    {                                                                                              \
        &lstm_c##k##_x, h0, c0, {&lstm_c##k##_out0, &lstm_c##k##_out1, &lstm_c##k##_out2},         \
            {&lstm_c##k##_w0, &lstm_c##k##_w1, &lstm_c##k##_w2}, &lstm_c##k##_gx, gh0, gc0, grads, \
            bf                                                                                     \
    }
#define GRU_CASE(k, bf, h0, gh0, grads)                                                            \
    {                                                                                              \
        &gru_c##k##_x, h0, NULL, {&gru_c##k##_out0, &gru_c##k##_out1, NULL},                       \
            {&gru_c##k##_w0, &gru_c##k##_w1, NULL}, &gru_c##k##_gx, gh0, NULL, grads, bf           \
    }

static const rnn_case lstm_cases[4] = {
    LSTM_CASE(0, false, NULL, NULL, NULL, NULL, lstm_c0_grads),
    LSTM_CASE(1, true, &lstm_c1_h0, &lstm_c1_c0, &lstm_c1_gh0, &lstm_c1_gc0, lstm_c1_grads),
    LSTM_CASE(2, true, NULL, NULL, NULL, NULL, NULL),
    LSTM_CASE(3, false, &lstm_c3_h0, &lstm_c3_c0, &lstm_c3_gh0, &lstm_c3_gc0, NULL),
};
static const rnn_case gru_cases[4] = {
    GRU_CASE(0, false, NULL, NULL, gru_c0_grads),
    GRU_CASE(1, true, &gru_c1_h0, &gru_c1_gh0, gru_c1_grads),
    GRU_CASE(2, true, NULL, NULL, NULL),
    GRU_CASE(3, false, &gru_c3_h0, &gru_c3_gh0, NULL),
};

enum { RUN_EAGER = 0, RUN_DEFERRED = 1, RUN_HYBRID = 2 };

static void run_rnn_case(bool lstm, const rnn_case *rc, int mode)
{
    const char *op = lstm ? "nn_lstm" : "nn_gru";
    kn_rnn_layer cfg = {.input_size = (mode & RUN_DEFERRED) ? 0 : 3,
                        .hidden_size = 4,
                        .num_layers = 2,
                        .bidirectional = true,
                        .batch_first = rc->batch_first};
    kn_block *b = lstm ? kn_nn_lstm(&cfg) : kn_nn_gru(&cfg);
    KT_NOTNULL(b);
    if (!b) return;
    kn_tensor *x = kt_from_array(rc->x, KN_F32);
    if (mode & RUN_DEFERRED) {
        KT_CHECK(kn_block_num_params(b) == 0, "%s: deferred: no parameters before the first call",
                 op);
        KT_OK(kn_block_init_shapes(b, 1, &x));
    }
    KT_CHECK(kn_block_num_params(b) == 16, "%s: 2 layers x 2 directions x 4 tensors (%d)", op,
             kn_block_num_params(b));
    const kt_named *params = lstm ? lstm_params : gru_params;
    for (int i = 0; params[i].name; i++) /* PyTorch's names in PyTorch's order */
        KT_CHECK(kn_block_param_name(b, i) && !strcmp(kn_block_param_name(b, i), params[i].name),
                 "%s: parameter %d is %s", op, i, params[i].name);
    load_named(b, params);
    if (mode & RUN_HYBRID) { /* a training graph (no dropout here): inference ones fuse */
        KT_OK(kn_block_hybridize(b, KN_HYBRIDIZE_ON));
        kn_block_set_training(b, true);
    }
    kn_tensor *in[3] = {x, rc->h0 ? kt_from_array(rc->h0, KN_F32) : NULL,
                        rc->c0 ? kt_from_array(rc->c0, KN_F32) : NULL};
    int n_in = rc->c0 ? 3 : rc->h0 ? 2 : 1, n_out = lstm ? 3 : 2;
    for (int i = 0; i < n_in; i++)
        kn_tensor_set_requires_grad(in[i], true);
    kn_tensor *out[3] = {NULL, NULL, NULL};
    bool prev = kn_autograd_record(true);
    KT_OK(kn_block_forward(b, n_in, in, n_out, out));
    kn_tensor *loss = out[n_out - 1] ? weighted_sum(n_out, out, rc->w) : NULL;
    kn_autograd_record(prev);
    KT_NOTNULL(loss);
    if (loss) KT_OK(kn_backward(loss, NULL));
    for (int i = 0; i < n_out; i++)
        if (out[i]) kt_check_array(op, out[i], rc->out[i], F32_RTOL, F32_ATOL);
    const kt_array *gin[3] = {rc->gx, rc->gh0, rc->gc0};
    for (int i = 0; i < n_in; i++) {
        kn_tensor *g = kn_tensor_grad(in[i]);
        KT_CHECK(g != NULL, "%s: input %d has a gradient", op, i);
        if (g) kt_check_array(op, g, gin[i], F32_RTOL, F32_ATOL);
    }
    if (rc->grads) check_grads(op, b, rc->grads, F32_RTOL, F32_ATOL);
    kt_mark(op, KT_GRAD);
    kn_tensor_unref(loss);
    for (int i = 0; i < 3; i++)
        kn_tensor_unref(in[i]), kn_tensor_unref(out[i]);
    kn_autograd_tape_free();
    kn_block_free(b);
}

static void test_lstm_golden(void)
{
    for (int k = 0; k < 4; k++)
        run_rnn_case(true, &lstm_cases[k], RUN_EAGER);
    run_rnn_case(true, &lstm_cases[0], RUN_DEFERRED);
    run_rnn_case(true, &lstm_cases[1], RUN_DEFERRED | RUN_HYBRID);
    run_rnn_case(true, &lstm_cases[2], RUN_HYBRID);
}

static void test_gru_golden(void)
{
    for (int k = 0; k < 4; k++)
        run_rnn_case(false, &gru_cases[k], RUN_EAGER);
    run_rnn_case(false, &gru_cases[0], RUN_DEFERRED | RUN_HYBRID);
    run_rnn_case(false, &gru_cases[1], RUN_HYBRID);
}

/* f64 finite differences through the whole layer stack (the f32
 * parameters enter as constants cast to f64). */
typedef struct rnn_fd {
    kn_block *b;
    int n_in, which; /* output to check */
    int n_out;
} rnn_fd;

static kn_tensor *rnn_fd_fn(kn_tensor *const *inputs, void *ctx)
{
    rnn_fd *f = ctx;
    kn_tensor *out[3] = {NULL, NULL, NULL};
    if (kn_block_forward(f->b, f->n_in, inputs, f->n_out, out)) return NULL;
    kn_tensor *r = kn_tensor_ref(out[f->which]);
    for (int i = 0; i < 3; i++)
        kn_tensor_unref(out[i]);
    return r;
}

static void test_rnn_gradcheck(void)
{
    for (int lstm = 0; lstm < 2; lstm++)
        for (int bf = 0; bf < 2; bf++) {
            kn_rnn_layer cfg = {.input_size = 2,
                                .hidden_size = 3,
                                .num_layers = 2,
                                .bidirectional = true,
                                .batch_first = bf};
            kn_block *b = lstm ? kn_nn_lstm(&cfg) : kn_nn_gru(&cfg);
            int64_t xs[3] = {bf ? 2 : 3, bf ? 3 : 2, 2}, hs[3] = {4, 2, 3};
            kn_tensor *in[3] = {kt_rand(3, xs, -1, 1, 5), kt_rand(3, hs, -1, 1, 6),
                                kt_rand(3, hs, -1, 1, 7)};
            rnn_fd f = {b, lstm ? 3 : 2, 0, lstm ? 3 : 2};
            const char *op = lstm ? "nn_lstm" : "nn_gru";
            for (f.which = 0; f.which < f.n_out; f.which++)
                kt_gradcheck(op, rnn_fd_fn, f.n_in, in, &f, 1e-6, 1e-6);
            f.n_in = 1, f.which = 0; /* zero initial states */
            kt_gradcheck(op, rnn_fd_fn, 1, in, &f, 1e-6, 1e-6);
            for (int i = 0; i < 3; i++)
                kn_tensor_unref(in[i]);
            kn_block_free(b);
        }
}

/* Hybridized == eager, also for a new batch size and in training mode. */
static void test_rnn_hybrid(void)
{
    for (int lstm = 0; lstm < 2; lstm++) {
        kn_rnn_layer cfg = {.input_size = 0,
                            .hidden_size = 5,
                            .num_layers = 2,
                            .bidirectional = true,
                            .batch_first = true};
        kn_block *b = lstm ? kn_nn_lstm(&cfg) : kn_nn_gru(&cfg);
        int n_out = lstm ? 3 : 2;
        for (int batch = 3; batch <= 7; batch += 4) {
            int64_t xs[3] = {batch, 6, 4};
            kn_tensor *x64 = kt_rand(3, xs, -2, 2, (uint64_t)batch);
            kn_tensor *x = kn_cast(x64, KN_F32);
            kn_tensor *eager[3] = {NULL}, *hyb[3] = {NULL};
            KT_OK(kn_block_hybridize(b, KN_HYBRIDIZE_OFF));
            KT_OK(kn_block_forward(b, 1, &x, n_out, eager));
            KT_OK(kn_block_hybridize(b, KN_HYBRIDIZE_ON));
            KT_OK(kn_block_forward(b, 1, &x, n_out, hyb));
            for (int i = 0; i < n_out; i++)
                KT_CHECK(eager[i] && hyb[i] && max_abs_diff(eager[i], hyb[i]) < 1e-6,
                         "%s batch %d output %d: hybridized == eager (%g)", lstm ? "lstm" : "gru",
                         batch, i, eager[i] && hyb[i] ? max_abs_diff(eager[i], hyb[i]) : -1.0);
            for (int i = 0; i < 3; i++)
                kn_tensor_unref(eager[i]), kn_tensor_unref(hyb[i]);
            kn_tensor_unref(x), kn_tensor_unref(x64);
        }
        kn_block_free(b);
    }
}

/* Dropout acts between layers only, and only when training. */
static void test_rnn_dropout(void)
{
    int64_t xs[3] = {5, 4, 3};
    kn_tensor *x64 = kt_rand(3, xs, -1, 1, 3), *x = kn_cast(x64, KN_F32);
    for (int layers = 1; layers <= 2; layers++) {
        kn_rnn_layer cfg = {
            .input_size = 3, .hidden_size = 8, .num_layers = layers, .dropout = 0.5};
        kn_block *b = kn_nn_lstm(&cfg);
        kn_tensor *y_eval = NULL, *y_eval2 = NULL, *y_train = NULL;
        KT_OK(kn_block_forward(b, 1, &x, 1, &y_eval));
        KT_OK(kn_block_forward(b, 1, &x, 1, &y_eval2));
        kn_block_set_training(b, true);
        KT_OK(kn_block_forward(b, 1, &x, 1, &y_train));
        KT_CHECK(max_abs_diff(y_eval, y_eval2) == 0, "inference is deterministic");
        double d = max_abs_diff(y_eval, y_train);
        if (layers == 1)
            KT_CHECK(d == 0, "one layer: no dropout between layers (%g)", d);
        else
            KT_CHECK(d > 1e-3, "two layers, training: dropout changes the output (%g)", d);
        kn_tensor_unref(y_eval), kn_tensor_unref(y_eval2), kn_tensor_unref(y_train);
        kn_block_free(b);
    }
    kn_tensor_unref(x), kn_tensor_unref(x64);
}

static double max_abs(const kn_tensor *t)
{
    kn_tensor *z = kn_tensor_zeros(kn_tensor_dtype(t), kn_tensor_ndim(t), kn_tensor_shape(t));
    double m = max_abs_diff(t, z);
    kn_tensor_unref(z);
    return m;
}

/* PyTorch's init U(-1/sqrt(hidden), 1/sqrt(hidden)), at creation and again
 * through kn_block_init_params with the layer's default. */
static void test_rnn_init(void)
{
    kn_manual_seed(4);
    kn_rnn_layer cfg = {.input_size = 6, .hidden_size = 25, .num_layers = 2, .bidirectional = true};
    kn_block *b = kn_nn_gru(&cfg);
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < kn_block_num_params(b); i++) {
            double m = max_abs(kn_block_param_at(b, i));
            KT_CHECK(m <= 0.2 && m > 0.18, "pass %d: %s within 1/sqrt(25) = 0.2 (max %g)", pass,
                     kn_block_param_name(b, i), m);
            KT_CHECK(kn_tensor_requires_grad(kn_block_param_at(b, i)), "%s requires grad",
                     kn_block_param_name(b, i));
        }
        KT_OK(kn_block_init_params(b, NULL, &(kn_init){.kind = KN_INIT_DEFAULT}));
    }
    kn_block_free(b);
    cfg.no_bias = true;
    b = kn_nn_lstm(&cfg);
    KT_CHECK(kn_block_num_params(b) == 8, "no_bias: weights only (%d)", kn_block_num_params(b));
    int64_t xs[3] = {3, 2, 6};
    kn_tensor *x = kn_tensor_ones(KN_F32, 3, xs), *y = NULL;
    KT_OK(kn_block_forward(b, 1, &x, 1, &y));
    KT_CHECK(y && kn_tensor_dim(y, 2) == 50, "no_bias: y (3, 2, 50)");
    kn_tensor_unref(y), kn_tensor_unref(x);
    kn_block_free(b);
}

static void test_rnn_errors(void)
{
    kn_rnn_layer cfg = {.input_size = 0, .hidden_size = 4, .num_layers = 2, .bidirectional = true};
    kn_block *m = wrap("encoder", kn_nn_lstm(&cfg));
    int64_t s1[3] = {5, 2, 3}, s2[3] = {5, 2, 7}, s4[2] = {5, 3}, hs[3] = {4, 2, 4},
            hb[3] = {2, 2, 4};
    kn_tensor *x = kn_tensor_zeros(KN_F32, 3, s1), *x7 = kn_tensor_zeros(KN_F32, 3, s2);
    kn_tensor *x2d = kn_tensor_zeros(KN_F32, 2, s4), *h = kn_tensor_zeros(KN_F32, 3, hs);
    kn_tensor *hbad = kn_tensor_zeros(KN_F32, 3, hb), *xi = kn_tensor_zeros(KN_I64, 3, s1);
    kn_tensor *out[4] = {NULL};
    KT_OK(kn_block_init_shapes(m, 1, &x));
    kn_block *lstm = kn_block_child(m, "encoder");
    kn_tensor *w = kn_block_param(lstm, "weight_ih_l0"), *w1 = kn_block_param(lstm, "weight_ih_l1");
    KT_CHECK(w && kn_tensor_dim(w, 0) == 16 && kn_tensor_dim(w, 1) == 3,
             "deferred: weight_ih_l0 (16, 3)");
    KT_CHECK(w1 && kn_tensor_dim(w1, 1) == 8, "weight_ih_l1 takes dirs * hidden = 8 inputs");
    kt_expect_fail_status("lstm 'encoder'", kn_block_forward(m, 1, &x7, 1, out), "(5, 2, 7)");
    kt_expect_fail_status("lstm 'encoder'", kn_block_forward(m, 1, &x2d, 1, out), "(5, 3)");
    kt_expect_fail_status("lstm 'encoder'", kn_block_forward(m, 1, &xi, 1, out), "float");
    kn_tensor *xh[3] = {x, hbad, h};
    kt_expect_fail_status("lstm 'encoder'", kn_block_forward(m, 3, xh, 1, out),
                          "h0 has shape (2, 2, 4)");
    kt_expect_fail_status("lstm 'encoder'", kn_block_forward(m, 2, (kn_tensor *[]){x, h}, 1, out),
                          "without c0");
    kt_expect_fail_status("lstm 'encoder'", kn_block_forward(m, 1, &x, 4, out), "outputs");
    KT_OK(kn_block_hybridize(m, KN_HYBRIDIZE_ON)); /* the same checks while traced */
    kt_expect_fail_status("lstm 'encoder'", kn_block_forward(m, 1, &x7, 1, out), "(5, 2, 7)");
    kn_block_free(m);
    kn_rnn_layer g = {.input_size = 3, .hidden_size = 2};
    kn_block *gru = kn_nn_gru(&g);
    kt_expect_fail_status("gru", kn_block_forward(gru, 3, (kn_tensor *[]){x, h, h}, 1, out),
                          "inputs");
    kn_block_free(gru);
    kt_expect_fail_status("nn_lstm", kn_nn_lstm(NULL) ? KN_OK : kn_last_status(), "NULL");
    kn_rnn_layer bad = {.hidden_size = 0};
    kt_expect_fail_status("nn_gru", kn_nn_gru(&bad) ? KN_OK : kn_last_status(), "hidden_size 0");
    bad = (kn_rnn_layer){.hidden_size = 3, .dropout = 1.5};
    kt_expect_fail_status("nn_lstm", kn_nn_lstm(&bad) ? KN_OK : kn_last_status(), "dropout");
    kn_tensor_unref(x), kn_tensor_unref(x7), kn_tensor_unref(x2d), kn_tensor_unref(h);
    kn_tensor_unref(hbad), kn_tensor_unref(xi);
}

/* ================================================================ norms, embedding */
typedef struct layer_golden {
    const char *op;
    const kt_array *x, *y, *w, *gx;
    const kt_named *params, *grads;
} layer_golden;

static void run_layer_golden(kn_block *b, const layer_golden *g, bool hybrid)
{
    kn_tensor *x = kt_from_array(g->x, KN_F32);
    KT_CHECK(kn_block_num_params(b) == 0, "%s: deferred", g->op);
    KT_OK(kn_block_init_shapes(b, 1, &x));
    load_named(b, g->params);
    if (hybrid) {
        KT_OK(kn_block_hybridize(b, KN_HYBRIDIZE_ON));
        kn_block_set_training(b, true);
    }
    kn_tensor_set_requires_grad(x, true);
    kn_tensor *y = NULL;
    bool prev = kn_autograd_record(true);
    KT_OK(kn_block_forward(b, 1, &x, 1, &y));
    kn_tensor *loss = y ? weighted_sum(1, &y, &g->w) : NULL;
    kn_autograd_record(prev);
    if (loss) KT_OK(kn_backward(loss, NULL));
    if (y) kt_check_array(g->op, y, g->y, F32_RTOL, F32_ATOL);
    KT_CHECK(kn_tensor_grad(x) != NULL, "%s: x has a gradient", g->op);
    if (kn_tensor_grad(x)) kt_check_array(g->op, kn_tensor_grad(x), g->gx, F32_RTOL, F32_ATOL);
    check_grads(g->op, b, g->grads, F32_RTOL, F32_ATOL);
    kt_mark(g->op, KT_GRAD);
    kn_tensor_unref(loss), kn_tensor_unref(y), kn_tensor_unref(x);
    kn_autograd_tape_free();
}

static const layer_golden ln_golden = {"nn_layer_norm", &ln_x,     &ln_y,   &ln_w,
                                       &ln_gx,          ln_params, ln_grads};
static const layer_golden gn_golden = {"nn_group_norm", &gn_x,     &gn_y,   &gn_w,
                                       &gn_gx,          gn_params, gn_grads};
static const layer_golden in_golden = {"nn_instance_norm", &in_x,   &in_y, &in_w, &in_gx,
                                       in_params,          in_grads};

static void test_norm_golden(void)
{
    for (int hybrid = 0; hybrid < 2; hybrid++) {
        kn_block *ln = kn_nn_layer_norm(2, 1e-5, true);
        kn_block *gn = kn_nn_group_norm(3, 0, 1e-5, true);
        kn_block *in = kn_nn_instance_norm(0, 1e-5, true);
        run_layer_golden(ln, &ln_golden, hybrid);
        run_layer_golden(gn, &gn_golden, hybrid);
        run_layer_golden(in, &in_golden, hybrid);
        kn_tensor *w = kn_block_param(ln, "weight");
        KT_CHECK(w && kn_tensor_ndim(w) == 2 && kn_tensor_dim(w, 0) == 3 &&
                     kn_tensor_dim(w, 1) == 4,
                 "layer_norm: weight takes the normalized shape (3, 4)");
        kn_block_free(ln), kn_block_free(gn), kn_block_free(in);
    }
}

/* x -> norm block, for finite differences in f64 */
static kn_tensor *block_fn(kn_tensor *const *inputs, void *ctx)
{
    kn_tensor *y = NULL;
    return kn_block_forward(ctx, 1, inputs, 1, &y) ? NULL : y;
}

static void test_norm_gradcheck_and_plain(void)
{
    int64_t s[4] = {2, 4, 3, 2};
    kn_tensor *x = kt_rand(4, s, -2, 2, 9);
    kn_block *blocks[3] = {kn_nn_layer_norm(3, 1e-5, true), kn_nn_group_norm(2, 4, 1e-5, true),
                           kn_nn_instance_norm(4, 1e-5, true)};
    const char *ops[3] = {"nn_layer_norm", "nn_group_norm", "nn_instance_norm"};
    for (int i = 0; i < 3; i++) {
        KT_OK(kn_block_init_shapes(blocks[i], 1, &x));
        KT_CHECK(kn_tensor_dtype(kn_block_param_at(blocks[i], 0)) == KN_F64,
                 "%s: deferred parameters take f64 from an f64 input", ops[i]);
        KT_OK(kn_block_init_params(blocks[i], "*",
                                   &(kn_init){.kind = KN_INIT_UNIFORM, .low = 0.5, .high = 1.5}));
        kt_gradcheck(ops[i], block_fn, 1, &x, blocks[i], 1e-6, 1e-6);
        kn_block_free(blocks[i]);
    }
    /* without affine: no parameters; values as the ops' */
    kn_block *ln = kn_nn_layer_norm(1, 1e-5, false), *in = kn_nn_instance_norm(0, 1e-3, false);
    kn_tensor *y = NULL, *ref = kn_layer_norm(x, 1, NULL, NULL, 1e-5);
    KT_OK(kn_block_forward(ln, 1, &x, 1, &y));
    KT_CHECK(kn_block_num_params(ln) == 0 && y && max_abs_diff(y, ref) == 0,
             "layer_norm without affine");
    kn_tensor_unref(y), kn_tensor_unref(ref);
    ref = kn_instance_norm(x, NULL, NULL, 1e-3);
    KT_OK(kn_block_forward(in, 1, &x, 1, &y));
    KT_CHECK(kn_block_num_params(in) == 0 && y && max_abs_diff(y, ref) == 0,
             "instance_norm without affine");
    kn_tensor_unref(y), kn_tensor_unref(ref);
    kn_block_free(ln), kn_block_free(in);
    kn_tensor_unref(x);
}

static void test_norm_errors(void)
{
    int64_t a[3] = {2, 3, 4}, b[3] = {2, 3, 5}, c6[3] = {2, 6, 3}, c4[3] = {2, 4, 3}, v[1] = {6};
    kn_tensor *xa = kn_tensor_zeros(KN_F32, 3, a), *xb = kn_tensor_zeros(KN_F32, 3, b);
    kn_tensor *x6 = kn_tensor_zeros(KN_F32, 3, c6), *x4 = kn_tensor_zeros(KN_F32, 3, c4);
    kn_tensor *xv = kn_tensor_zeros(KN_F32, 1, v), *xi = kn_tensor_zeros(KN_I32, 3, a), *y = NULL;
    kn_block *m = wrap("ln", kn_nn_layer_norm(2, 1e-5, true));
    KT_OK(kn_block_forward(m, 1, &xa, 1, &y));
    kn_tensor_unref(y), y = NULL;
    kt_expect_fail_status("layer_norm 'ln'", kn_block_forward(m, 1, &xb, 1, &y), "(..., 3, 4)");
    kt_expect_fail_status("layer_norm 'ln'", kn_block_forward(m, 1, &xv, 1, &y), "(6)");
    kt_expect_fail_status("layer_norm 'ln'", kn_block_forward(m, 1, &xi, 1, &y), "float");
    kn_block_free(m);
    m = wrap("gn", kn_nn_group_norm(3, 0, 1e-5, true));
    KT_OK(kn_block_forward(m, 1, &x6, 1, &y));
    kn_tensor_unref(y), y = NULL;
    KT_CHECK(kn_tensor_dim(kn_block_param(kn_block_child(m, "gn"), "weight"), 0) == 6,
             "group_norm: deferred channels 6");
    kt_expect_fail_status("group_norm 'gn'", kn_block_forward(m, 1, &x4, 1, &y), "expected 6");
    kn_block_free(m);
    m = wrap("gn", kn_nn_group_norm(4, 0, 1e-5, true));
    kt_expect_fail_status("group_norm 'gn'", kn_block_forward(m, 1, &x6, 1, &y), "do not divide");
    kn_block_free(m);
    m = wrap("in", kn_nn_instance_norm(3, 1e-5, true));
    kt_expect_fail_status("instance_norm 'in'", kn_block_forward(m, 1, &x6, 1, &y), "expected 3");
    kt_expect_fail_status("instance_norm 'in'", kn_block_forward(m, 1, &xv, 1, &y),
                          "at least 3 dims");
    kn_block_free(m);
    kt_expect_fail_status("nn_layer_norm",
                          kn_nn_layer_norm(0, 1e-5, true) ? KN_OK : kn_last_status(), "n_axes");
    kt_expect_fail_status("nn_layer_norm", kn_nn_layer_norm(1, -1, true) ? KN_OK : kn_last_status(),
                          "eps");
    kt_expect_fail_status("nn_group_norm",
                          kn_nn_group_norm(0, 4, 1e-5, true) ? KN_OK : kn_last_status(), "groups");
    kt_expect_fail_status(
        "nn_group_norm", kn_nn_group_norm(2, 5, 1e-5, true) ? KN_OK : kn_last_status(), "multiple");
    kt_expect_fail_status("nn_instance_norm",
                          kn_nn_instance_norm(-1, 1e-5, true) ? KN_OK : kn_last_status(), "-1");
    kn_tensor_unref(xa), kn_tensor_unref(xb), kn_tensor_unref(x6), kn_tensor_unref(x4);
    kn_tensor_unref(xv), kn_tensor_unref(xi);
}

static void test_embedding(void)
{
    kn_block *e = kn_nn_embedding(10, 4);
    kn_tensor *w = kn_block_param(e, "weight");
    KT_CHECK(w && kn_tensor_dim(w, 0) == 10 && kn_tensor_dim(w, 1) == 4,
             "embedding weight (10, 4)");
    load_named(e, (const kt_named[]){{"weight", &emb_weight}, {NULL, NULL}});
    kn_tensor *idx = kt_from_array(&emb_idx, KN_I64), *y = NULL;
    for (int hybrid = 0; hybrid < 2; hybrid++) {
        KT_OK(kn_block_hybridize(e, hybrid ? KN_HYBRIDIZE_ON : KN_HYBRIDIZE_OFF));
        zero_grads(e);
        bool prev = kn_autograd_record(true);
        KT_OK(kn_block_forward(e, 1, &idx, 1, &y));
        const kt_array *ws[1] = {&emb_w};
        kn_tensor *loss = y ? weighted_sum(1, &y, ws) : NULL;
        kn_autograd_record(prev);
        if (loss) KT_OK(kn_backward(loss, NULL));
        if (y) kt_check_array("nn_embedding", y, &emb_y, 1e-6, 1e-6);
        check_grads("nn_embedding", e, (const kt_named[]){{"weight", &emb_gweight}, {NULL, NULL}},
                    1e-5, 1e-6);
        kn_tensor_unref(loss), kn_tensor_unref(y), y = NULL;
    }
    kn_block *m = wrap("tok", e);
    kn_tensor *xf = kn_tensor_zeros(KN_F32, 2, (const int64_t[]){2, 3});
    kt_expect_fail_status("embedding 'tok'", kn_block_forward(m, 1, &xf, 1, &y), "integer");
    kn_tensor_unref(xf), kn_tensor_unref(idx);
    kn_block_free(m);
    kt_expect_fail_status("nn_embedding", kn_nn_embedding(0, 4) ? KN_OK : kn_last_status(),
                          "num_embeddings 0");
    /* N(0, 1) init */
    kn_manual_seed(3);
    kn_block *big = kn_nn_embedding(1000, 50);
    kn_tensor *bw = kn_block_param(big, "weight");
    kn_tensor *mean = kn_mean(bw, 0, NULL, false), *sd = kn_std(bw, 0, NULL, true, false);
    double mv = 1, sv = 0;
    kn_tensor_item(mean, &mv), kn_tensor_item(sd, &sv);
    KT_CHECK(fabs(mv) < 0.02 && fabs(sv - 1) < 0.02, "embedding init N(0, 1): mean %g std %g", mv,
             sv);
    kn_tensor_unref(mean), kn_tensor_unref(sd);
    kn_block_free(big);
}

static void test_dropout(void)
{
    int64_t s[1] = {4000};
    kn_tensor *x = kn_tensor_ones(KN_F32, 1, s);
    kn_block *d = kn_nn_dropout(0.25);
    for (int hybrid = 0; hybrid < 2; hybrid++) {
        KT_OK(kn_block_hybridize(d, hybrid ? KN_HYBRIDIZE_ON : KN_HYBRIDIZE_OFF));
        kn_block_set_training(d, false);
        kn_tensor *y = NULL;
        KT_OK(kn_block_forward(d, 1, &x, 1, &y));
        KT_CHECK(y && max_abs_diff(x, y) == 0, "dropout at inference is the identity");
        kn_tensor_unref(y), y = NULL;
        kn_block_set_training(d, true);
        KT_OK(kn_block_forward(d, 1, &x, 1, &y));
        int64_t zeros = 0, scaled = 0;
        for (int64_t i = 0; y && i < s[0]; i++) {
            double v;
            kn_tensor_get(y, &i, &v);
            zeros += v == 0;
            scaled += fabs(v - 1 / 0.75) < 1e-6;
        }
        KT_CHECK(zeros + scaled == s[0] && zeros > 850 && zeros < 1150,
                 "training: %lld zeros, the rest scaled by 1/(1-p)", (long long)zeros);
        kn_tensor_unref(y);
        kt_mark("nn_dropout", KT_FWD);
    }
    kn_block_free(d);
    kn_tensor_unref(x);
    kt_expect_fail_status("nn_dropout", kn_nn_dropout(1.5) ? KN_OK : kn_last_status(), "p is 1.5");
}

/* ================================================================ models */
static kn_model_config tiny_transformer(int64_t layers)
{
    return (kn_model_config){.num_classes = 3,
                             .vocab_size = 11,
                             .d_model = 8,
                             .num_heads = 2,
                             .num_layers = layers,
                             .ffn_dim = 16,
                             .max_len = 7};
}

static void test_transformer_layer_golden(void)
{
    kn_model_config cfg = tiny_transformer(1);
    kn_block *model = kn_model_new("transformer_encoder", &cfg);
    KT_NOTNULL(model);
    if (!model) return;
    kn_block *layer = kn_block_child(kn_block_child(model, "layers"), "0");
    KT_NOTNULL(layer);
    KT_CHECK(kn_block_num_params(layer) == 12, "encoder layer: torch's 12 tensors (%d)",
             kn_block_num_params(layer));
    load_named(layer, tel_params);
    kn_tensor *x = kt_from_array(&tel_x, KN_F32), *y = NULL;
    kn_tensor_set_requires_grad(x, true);
    bool prev = kn_autograd_record(true);
    KT_OK(kn_block_forward(layer, 1, &x, 1, &y));
    const kt_array *ws[1] = {&tel_w};
    kn_tensor *loss = y ? weighted_sum(1, &y, ws) : NULL;
    kn_autograd_record(prev);
    if (loss) KT_OK(kn_backward(loss, NULL));
    if (y) kt_check_array("transformer_encoder_layer", y, &tel_y, F32_RTOL, F32_ATOL);
    if (kn_tensor_grad(x))
        kt_check_array("transformer_encoder_layer", kn_tensor_grad(x), &tel_gx, F32_RTOL, F32_ATOL);
    KT_CHECK(kn_tensor_grad(x) != NULL, "layer input has a gradient");
    check_grads("transformer_encoder_layer", layer, tel_grads, F32_RTOL, F32_ATOL);
    kn_tensor_unref(loss), kn_tensor_unref(y), kn_tensor_unref(x);
    kn_autograd_tape_free();
    kn_block_free(model);
}

static void test_transformer_model_golden(void)
{
    kn_model_config cfg = tiny_transformer(2);
    kn_block *model = kn_model_new("transformer_encoder", &cfg);
    KT_NOTNULL(model);
    if (!model) return;
    int n = 0;
    while (te_params[n].name)
        n++;
    KT_CHECK(kn_block_num_params(model) == n, "transformer: torch's %d tensors (%d)", n,
             kn_block_num_params(model));
    load_named(model, te_params);
    kn_tensor *tok = kt_from_array(&te_tok, KN_I64);
    kn_tensor *logits[2] = {NULL, NULL};
    for (int hybrid = 0; hybrid < 2; hybrid++) {
        KT_OK(kn_block_hybridize(model, hybrid ? KN_HYBRIDIZE_ON : KN_HYBRIDIZE_OFF));
        kn_block_set_training(model, hybrid); /* dropout 0; an inference graph would fuse */
        zero_grads(model);
        bool prev = kn_autograd_record(true);
        KT_OK(kn_block_forward(model, 1, &tok, 1, &logits[hybrid]));
        const kt_array *ws[1] = {&te_w};
        kn_tensor *loss = logits[hybrid] ? weighted_sum(1, &logits[hybrid], ws) : NULL;
        kn_autograd_record(prev);
        if (loss) KT_OK(kn_backward(loss, NULL));
        if (logits[hybrid])
            kt_check_array("transformer_encoder", logits[hybrid], &te_logits, F32_RTOL, F32_ATOL);
        check_grads("transformer_encoder", model, te_grads, F32_RTOL, F32_ATOL);
        kn_tensor_unref(loss);
        kn_autograd_tape_free();
    }
    KT_CHECK(logits[0] && logits[1] && max_abs_diff(logits[0], logits[1]) < 1e-6,
             "transformer: hybridized == eager");
    kn_tensor_unref(logits[0]), kn_tensor_unref(logits[1]), logits[0] = NULL;
    kn_block_set_training(model, false); /* the inference graph (fused) too */
    KT_OK(kn_block_forward(model, 1, &tok, 1, &logits[0]));
    if (logits[0]) kt_check_array("transformer_encoder", logits[0], &te_logits, F32_RTOL, F32_ATOL);
    kn_tensor_unref(logits[0]);
    /* errors */
    kn_tensor *long_tok = kn_tensor_zeros(KN_I64, 2, (const int64_t[]){2, 8});
    kn_tensor *ftok = kn_tensor_zeros(KN_F32, 2, (const int64_t[]){2, 3}), *y = NULL;
    kt_expect_fail_status("transformer_encoder", kn_block_forward(model, 1, &long_tok, 1, &y),
                          "max_len = 7");
    kt_expect_fail_status("transformer_encoder", kn_block_forward(model, 1, &ftok, 1, &y),
                          "integer");
    kn_tensor_unref(long_tok), kn_tensor_unref(ftok), kn_tensor_unref(tok);
    kn_block_free(model);
    kn_model_config bad = tiny_transformer(1);
    bad.num_heads = 3;
    KT_CHECK(kn_model_new("transformer_encoder", &bad) == NULL &&
                 strstr(kn_last_error(), "num_heads"),
             "d_model 8 with 3 heads is refused: %s", kn_last_error());
    kn_clear_error();
    /* defaults */
    kn_block *def = kn_model_new("transformer_encoder", NULL);
    KT_NOTNULL(def);
    kn_tensor *pw = def ? kn_block_param(kn_block_child(def, "pos_embed"), "weight") : NULL;
    KT_CHECK(pw && kn_tensor_dim(pw, 0) == 128 && kn_tensor_dim(pw, 1) == 64,
             "defaults: max_len 128, d_model 64");
    kn_block_free(def);
}

/* A batch of sequences over tokens 2..5; half hold a 1 somewhere: the label. */
static void make_task(int64_t n, int64_t steps, kn_tensor **tokens, kn_tensor **labels)
{
    int64_t *tok = kn_alloc(sizeof(int64_t) * (size_t)(n * steps)),
            *lab = kn_alloc(sizeof(int64_t) * (size_t)n);
    uint64_t state = 12345;
    for (int64_t i = 0; i < n; i++) {
        for (int64_t t = 0; t < steps; t++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            tok[i * steps + t] = 2 + (int64_t)((state >> 33) % 4);
        }
        lab[i] = i % 2;
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        if (lab[i]) tok[i * steps + (int64_t)((state >> 33) % (uint64_t)steps)] = 1;
    }
    *tokens = kn_tensor_from_data(KN_I64, 2, (const int64_t[]){n, steps}, tok);
    *labels = kn_tensor_from_data(KN_I64, 1, &n, lab);
    kn_free(tok), kn_free(lab);
}

static void test_lstm_classifier_fits(void)
{
    kn_manual_seed(1);
    kn_model_config cfg = {
        .num_classes = 2, .vocab_size = 6, .d_model = 16, .num_layers = 1, .max_len = 8};
    kn_block *model = kn_model_new("lstm_classifier", &cfg);
    KT_NOTNULL(model);
    if (!model) return;
    kn_tensor *tok = NULL, *lab = NULL;
    make_task(48, 6, &tok, &lab);
    /* eager == hybridized before training */
    kn_tensor *e = NULL, *h = NULL;
    KT_OK(kn_block_forward(model, 1, &tok, 1, &e));
    KT_OK(kn_block_hybridize(model, KN_HYBRIDIZE_ON));
    KT_OK(kn_block_forward(model, 1, &tok, 1, &h));
    KT_CHECK(e && h && max_abs_diff(e, h) < 1e-6, "lstm_classifier: hybridized == eager");
    kn_tensor_unref(e), kn_tensor_unref(h);
    int np = kn_block_trainable_params(model, 0, NULL);
    kn_tensor *params[64];
    KT_CHECK(np > 0 && np <= 64, "trainable params (%d)", np);
    kn_block_trainable_params(model, 64, params);
    kn_optim_config oc = kn_optim_defaults(KN_OPTIM_ADAM);
    oc.lr = 0.03;
    kn_optimizer *opt = kn_optimizer_new(KN_OPTIM_ADAM, &oc);
    KT_OK(kn_optimizer_add_group(opt, np, params, NULL));
    kn_block_set_training(model, true);
    double first = 0, last = 0;
    for (int step = 0; step < 60; step++) {
        kn_optimizer_zero_grad(opt);
        kn_tensor *logits = NULL;
        bool prev = kn_autograd_record(true);
        kn_status s = kn_block_forward(model, 1, &tok, 1, &logits);
        kn_tensor *loss = s ? NULL : kn_cross_entropy(logits, lab, NULL, &(kn_loss_params){0});
        kn_autograd_record(prev);
        if (!loss) {
            KT_CHECK(false, "training step %d: %s", step, kn_last_error());
            kn_tensor_unref(logits);
            break;
        }
        KT_OK(kn_backward(loss, NULL));
        KT_OK(kn_optimizer_step(opt));
        kn_tensor_item(loss, step ? &last : &first);
        kn_tensor_unref(loss), kn_tensor_unref(logits);
    }
    kn_block_set_training(model, false);
    kn_tensor *logits = NULL;
    KT_OK(kn_block_forward(model, 1, &tok, 1, &logits));
    kn_tensor *pred = logits ? kn_argmax(logits, 1, false) : NULL;
    kn_tensor *hit = pred ? kn_eq(pred, lab) : NULL;
    kn_tensor *hitf = hit ? kn_cast(hit, KN_F32) : NULL;
    kn_tensor *acc = hitf ? kn_mean(hitf, 0, NULL, false) : NULL;
    double a = 0;
    if (acc) kn_tensor_item(acc, &a);
    printf("lstm_classifier: train accuracy %.3f, loss %.4f -> %.4f\n", a, first, last);
    KT_CHECK(a >= 0.95 && last < 0.3 * first, "lstm_classifier fits: accuracy %g, loss %g -> %g", a,
             first, last);
    kt_mark("lstm_classifier", KT_FWD | KT_GRAD);
    kn_tensor_unref(logits), kn_tensor_unref(pred), kn_tensor_unref(hit), kn_tensor_unref(hitf);
    kn_tensor_unref(acc), kn_tensor_unref(tok), kn_tensor_unref(lab);
    kn_optimizer_free(opt);
    kn_autograd_tape_free();
    kn_block_free(model);
}

static void test_lstm_classifier_shape(void)
{
    kn_block *model = kn_model_new("lstm_classifier", NULL);
    KT_NOTNULL(model);
    if (!model) return;
    KT_CHECK(kn_block_num_params(model) == 1 + 8 + 2, "embed + 2 LSTM layers + fc (%d)",
             kn_block_num_params(model));
    kn_tensor *tok = kn_tensor_zeros(KN_I64, 2, (const int64_t[]){3, 5}), *y = NULL;
    KT_OK(kn_block_forward(model, 1, &tok, 1, &y));
    KT_CHECK(y && kn_tensor_ndim(y) == 2 && kn_tensor_dim(y, 0) == 3 && kn_tensor_dim(y, 1) == 2,
             "logits (3, 2)");
    kn_tensor_unref(y), kn_tensor_unref(tok);
    kn_block_free(model);
}

/* Every allocation failure on the way (construction, deferred creation,
 * forward, backward) fails cleanly without leaks. */
static kn_status alloc_case(void *ctx)
{
    bool lstm = ctx != NULL;
    kn_rnn_layer cfg = {.hidden_size = 2, .bidirectional = true, .batch_first = true};
    kn_block *b = lstm ? kn_nn_lstm(&cfg) : kn_nn_gru(&cfg);
    kn_block *ln = kn_nn_layer_norm(1, 1e-5, true);
    kn_tensor *x = kn_tensor_ones(KN_F32, 3, (const int64_t[]){1, 2, 2}), *y = NULL, *z = NULL;
    kn_tensor_set_requires_grad(x, true);
    bool prev = kn_autograd_record(true);
    kn_status s = b && ln && x ? kn_block_forward(b, 1, &x, 1, &y) : kn_last_status();
    if (!s) s = kn_block_forward(ln, 1, &y, 1, &z);
    kn_tensor *loss = s ? NULL : kn_sum(z, 0, NULL, false);
    kn_autograd_record(prev);
    if (!s) s = loss ? kn_backward(loss, NULL) : kn_last_status();
    kn_tensor_unref(loss), kn_tensor_unref(z), kn_tensor_unref(y), kn_tensor_unref(x);
    kn_block_free(b), kn_block_free(ln);
    return s;
}

static void test_alloc_failures(void)
{
    int n = kt_alloc_walk("nn_lstm", alloc_case, (void *)1);
    printf("allocation failures walked: lstm %d", n);
    KT_CHECK(n > 20, "lstm: %d failure points walked", n);
    n = kt_alloc_walk("nn_gru", alloc_case, NULL);
    printf(", gru %d\n", n);
    KT_CHECK(n > 20, "gru: %d failure points walked", n);
}

int main(void)
{
    KT_RUN(test_lstm_golden);
    KT_RUN(test_gru_golden);
    KT_RUN(test_rnn_gradcheck);
    KT_RUN(test_rnn_hybrid);
    KT_RUN(test_rnn_dropout);
    KT_RUN(test_rnn_init);
    KT_RUN(test_rnn_errors);
    KT_RUN(test_norm_golden);
    KT_RUN(test_norm_gradcheck_and_plain);
    KT_RUN(test_norm_errors);
    KT_RUN(test_embedding);
    KT_RUN(test_dropout);
    KT_RUN(test_transformer_layer_golden);
    KT_RUN(test_transformer_model_golden);
    KT_RUN(test_lstm_classifier_fits);
    KT_RUN(test_lstm_classifier_shape);
    KT_RUN(test_alloc_failures);
    return kt_finish();
}
