/* test_rnn.c — lstm_cell and gru_cell against torch.lstm_cell/gru_cell
 * (tests/golden/rnn.h from tests/gen/gen_loss.py): with and without biases,
 * unbatched, strided, f64/f32/f16/bf16; f64 gradchecks of every input and
 * weight; bad inputs; an allocation-failure walk. */
#include "harness.h"

#include "golden/rnn.h"

#define ARRAY_LEN(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const kn_dtype float_dtypes[] = {KN_F64, KN_F32, KN_F16, KN_BF16};

static double tol_of(kn_dtype dt)
{
    switch (dt) {
    case KN_F64:
        return 1e-8;
    case KN_F32:
        return 2e-5;
    case KN_F16:
        return 1e-2;
    default:
        return 6e-2;
    }
}

/* x, h, c, w_ih, w_hh, b_ih, b_hh of one cell in dtype dt. */
typedef struct cell_in {
    kn_tensor *t[7];
} cell_in;

static cell_in lstm_inputs(kn_dtype dt)
{
    const kt_array *src[7] = {&rnn_x, &rnn_h, &rnn_c, &lstm_wih, &lstm_whh, &lstm_bih, &lstm_bhh};
    cell_in c;
    for (int i = 0; i < 7; i++)
        c.t[i] = kt_from_array(src[i], dt);
    return c;
}

static cell_in gru_inputs(kn_dtype dt)
{
    const kt_array *src[6] = {&rnn_x, &rnn_h, &gru_wih, &gru_whh, &gru_bih, &gru_bhh};
    cell_in c = {{NULL}};
    for (int i = 0; i < 6; i++)
        c.t[i] = kt_from_array(src[i], dt);
    return c;
}

static void cell_free(cell_in *c)
{
    for (int i = 0; i < 7; i++)
        kn_tensor_unref(c->t[i]);
}

static void check_lstm(kn_tensor *const *t, kn_tensor *bi, kn_tensor *bh, const kt_array *wh,
                       const kt_array *wc, double tol)
{
    kn_tensor *h = NULL, *c = NULL;
    KT_OK(kn_lstm_cell(t[0], t[1], t[2], t[3], t[4], bi, bh, &h, &c));
    kt_check_array("lstm_cell", h, wh, tol, tol);
    kt_check_array("lstm_cell", c, wc, tol, tol);
    kn_tensor_unref(h), kn_tensor_unref(c);
}

static void test_lstm_values(void)
{
    for (int k = 0; k < ARRAY_LEN(float_dtypes); k++) {
        double tol = tol_of(float_dtypes[k]);
        cell_in in = lstm_inputs(float_dtypes[k]);
        check_lstm(in.t, in.t[5], in.t[6], &lstm_h, &lstm_c, tol);
        check_lstm(in.t, NULL, NULL, &lstm_h_nob, &lstm_c_nob, tol);
        cell_free(&in);
    }
    /* a batch of 1 with only b_ih; x and h as strided views */
    cell_in in = lstm_inputs(KN_F64);
    kn_tensor *x1 = kn_slice(in.t[0], 0, 0, 1, 1), *h1 = kn_slice(in.t[1], 0, 0, 1, 1);
    kn_tensor *c1 = kn_slice(in.t[2], 0, 0, 1, 1);
    kn_tensor *t[5] = {x1, h1, c1, in.t[3], in.t[4]};
    check_lstm(t, in.t[5], NULL, &lstm_h_bi, &lstm_c_bi, 1e-8);
    /* unbatched: (input), (hidden) */
    int64_t sx[1] = {4}, sh[1] = {5};
    kn_tensor *xu = kn_reshape(x1, 1, sx), *hu = kn_reshape(h1, 1, sh), *cu = kn_reshape(c1, 1, sh);
    kn_tensor *h = NULL, *c = NULL;
    KT_OK(kn_lstm_cell(xu, hu, cu, in.t[3], in.t[4], in.t[5], NULL, &h, &c));
    kt_check_values("lstm_cell", h, 1, sh, lstm_h_bi.data, 1e-8, 1e-8);
    kt_check_values("lstm_cell", c, 1, sh, lstm_c_bi.data, 1e-8, 1e-8);
    kn_tensor_unref(h), kn_tensor_unref(c), kn_tensor_unref(xu), kn_tensor_unref(hu),
        kn_tensor_unref(cu);
    /* transposed weight view */
    kn_tensor *wt = kn_transpose(in.t[3], 0, 1), *wtc = kn_contiguous(wt),
              *wv = kn_transpose(wtc, 0, 1);
    kn_tensor *t2[5] = {in.t[0], in.t[1], in.t[2], wv, in.t[4]};
    check_lstm(t2, in.t[5], in.t[6], &lstm_h, &lstm_c, 1e-8);
    kn_tensor_unref(wt), kn_tensor_unref(wtc), kn_tensor_unref(wv);
    kn_tensor_unref(x1), kn_tensor_unref(h1), kn_tensor_unref(c1);
    cell_free(&in);
    /* zero batch */
    int64_t s0[2] = {0, 4}, s0h[2] = {0, 5};
    cell_in z = lstm_inputs(KN_F32);
    kn_tensor *x0 = kn_tensor_zeros(KN_F32, 2, s0), *h0 = kn_tensor_zeros(KN_F32, 2, s0h);
    KT_OK(kn_lstm_cell(x0, h0, h0, z.t[3], z.t[4], z.t[5], z.t[6], &h, &c));
    kt_check_values("lstm_cell", h, 2, s0h, NULL, 0, 0);
    kn_tensor_unref(h), kn_tensor_unref(c), kn_tensor_unref(x0), kn_tensor_unref(h0);
    cell_free(&z);
}

static void test_gru_values(void)
{
    for (int k = 0; k < ARRAY_LEN(float_dtypes); k++) {
        double tol = tol_of(float_dtypes[k]);
        cell_in in = gru_inputs(float_dtypes[k]);
        kn_tensor *h = kn_gru_cell(in.t[0], in.t[1], in.t[2], in.t[3], in.t[4], in.t[5]);
        kt_check_array("gru_cell", h, &gru_h, tol, tol);
        kn_tensor_unref(h);
        h = kn_gru_cell(in.t[0], in.t[1], in.t[2], in.t[3], NULL, NULL);
        kt_check_array("gru_cell", h, &gru_h_nob, tol, tol);
        kn_tensor_unref(h);
        cell_free(&in);
    }
    cell_in in = gru_inputs(KN_F64);
    kn_tensor *x1 = kn_slice(in.t[0], 0, 0, 1, 1), *h1 = kn_slice(in.t[1], 0, 0, 1, 1);
    kn_tensor *h = kn_gru_cell(x1, h1, in.t[2], in.t[3], NULL, in.t[5]);
    kt_check_array("gru_cell", h, &gru_h_bh, 1e-8, 1e-8);
    kn_tensor_unref(h);
    int64_t sx[1] = {4}, sh[1] = {5};
    kn_tensor *xu = kn_reshape(x1, 1, sx), *hu = kn_reshape(h1, 1, sh);
    h = kn_gru_cell(xu, hu, in.t[2], in.t[3], NULL, in.t[5]);
    kt_check_values("gru_cell", h, 1, sh, gru_h_bh.data, 1e-8, 1e-8);
    kn_tensor_unref(h), kn_tensor_unref(xu), kn_tensor_unref(hu);
    kn_tensor_unref(x1), kn_tensor_unref(h1);
    cell_free(&in);
}

/* ---------------------------------------------------------------- gradients */
static kn_tensor *f_lstm(kn_tensor *const *in, void *ctx)
{
    int which = *(const int *)ctx;
    kn_tensor *h = NULL, *c = NULL;
    if (kn_lstm_cell(in[0], in[1], in[2], in[3], in[4], in[5], in[6], &h, &c)) return NULL;
    kn_tensor *r = which ? c : h;
    kn_tensor_unref(which ? h : c);
    return r;
}

/* h' + 2 c', so one check covers both outputs at once */
static kn_tensor *f_lstm_both(kn_tensor *const *in, void *ctx)
{
    (void)ctx;
    kn_tensor *h = NULL, *c = NULL;
    if (kn_lstm_cell(in[0], in[1], in[2], in[3], in[4], in[5], in[6], &h, &c)) return NULL;
    kn_tensor *c2 = kn_mul_scalar(c, 2), *r = kn_add(h, c2);
    kn_tensor_unref(h), kn_tensor_unref(c), kn_tensor_unref(c2);
    return r;
}

static kn_tensor *f_gru(kn_tensor *const *in, void *ctx)
{
    (void)ctx;
    return kn_gru_cell(in[0], in[1], in[2], in[3], in[4], in[5]);
}

static void test_lstm_gradients(void)
{
    cell_in in = lstm_inputs(KN_F64);
    int which = 0;
    kt_gradcheck("lstm_cell", f_lstm, 7, in.t, &which, 1e-6, 1e-6);
    which = 1;
    kt_gradcheck("lstm_cell", f_lstm, 7, in.t, &which, 1e-6, 1e-6);
    kt_gradcheck("lstm_cell", f_lstm_both, 7, in.t, NULL, 1e-6, 1e-6);
    kn_tensor *nob[7] = {in.t[0], in.t[1], in.t[2], in.t[3], in.t[4], NULL, NULL};
    kt_gradcheck("lstm_cell", f_lstm_both, 7, nob, NULL, 1e-6, 1e-6);
    cell_free(&in);
}

static void test_gru_gradients(void)
{
    cell_in in = gru_inputs(KN_F64);
    kt_gradcheck("gru_cell", f_gru, 6, in.t, NULL, 1e-6, 1e-6);
    kn_tensor *nob[6] = {in.t[0], in.t[1], in.t[2], in.t[3], NULL, NULL};
    kt_gradcheck("gru_cell", f_gru, 6, nob, NULL, 1e-6, 1e-6);
    cell_free(&in);
}

/* ---------------------------------------------------------------- bad input */
static kn_tensor *sym(kn_dtype dt, int ndim, const int64_t *shape)
{
    return kn_tensor_symbolic(dt, ndim, shape);
}

static kn_status lstm_sym(kn_tensor *x, kn_tensor *h, kn_tensor *c, kn_tensor *wi, kn_tensor *wh,
                          kn_tensor *bi, kn_tensor *bh)
{
    kn_tensor *ho = NULL, *co = NULL;
    kn_status s = kn_lstm_cell(x, h, c, wi, wh, bi, bh, &ho, &co);
    kn_tensor_unref(ho), kn_tensor_unref(co);
    return s;
}

static void test_bad_inputs(void)
{
    int64_t sx[2] = {3, 4}, sh[2] = {3, 5}, sh2[2] = {2, 5}, swi[2] = {20, 4}, swh[2] = {20, 5};
    int64_t sb[1] = {20}, sb2[1] = {15}, swi3[2] = {15, 4}, swh3[2] = {15, 5}, s3d[3] = {1, 3, 4};
    int64_t swbad[2] = {20, 3}, s4[1] = {4};
    kn_tensor *x = sym(KN_F32, 2, sx), *h = sym(KN_F32, 2, sh), *wi = sym(KN_F32, 2, swi);
    kn_tensor *wh = sym(KN_F32, 2, swh), *b = sym(KN_F32, 1, sb), *h2 = sym(KN_F32, 2, sh2);
    kn_tensor *b15 = sym(KN_F32, 1, sb2), *wi3 = sym(KN_F32, 2, swi3), *wh3 = sym(KN_F32, 2, swh3);
    kn_tensor *x3 = sym(KN_F32, 3, s3d), *wbad = sym(KN_F32, 2, swbad), *xd = sym(KN_F64, 2, sx);
    kn_tensor *xi = sym(KN_I32, 2, sx), *x1 = sym(KN_F32, 1, s4);
    const char *op = "lstm_cell";
    kt_expect_fail_status(op, lstm_sym(x, h, h, wbad, wh, b, b),
                          "w_ih has shape (20,3), expected (4*hidden, input) = (20,4)");
    kt_expect_fail_status(op, lstm_sym(x, h, h, wi3, wh, b, b), "w_ih has shape (15,4)");
    kt_expect_fail_status(op, lstm_sym(x, h, h, wi, wh3, b, b), "w_hh has shape (15,5)");
    kt_expect_fail_status(op, lstm_sym(x, h, h, wi, wh, b15, b), "b_ih has shape (15)");
    kt_expect_fail_status(op, lstm_sym(x, h, h, wi, wh, b, b15), "b_hh has shape (15)");
    kt_expect_fail_status(op, lstm_sym(x, h2, h2, wi, wh, b, b), "h has shape (2,5)");
    kt_expect_fail_status(op, lstm_sym(x, h, h2, wi, wh, b, b), "c has shape (2,5)");
    kt_expect_fail_status(op, lstm_sym(x3, h, h, wi, wh, b, b), "x has 3 dims");
    kt_expect_fail_status(op, lstm_sym(x1, h, h, wi, wh, b, b), "h has 2 dims but x has 1");
    kt_expect_fail_status(op, lstm_sym(xd, h, h, wi, wh, b, b), "h is f32 but x is f64");
    kt_expect_fail_status(op, lstm_sym(xi, h, h, wi, wh, b, b), "float dtype");
    kt_expect_fail_status(op, lstm_sym(NULL, h, h, wi, wh, b, b), "NULL");
    kt_expect_fail_status(op, lstm_sym(x, h, NULL, wi, wh, b, b), "NULL");
    kt_expect_fail_status(op, kn_lstm_cell(x, h, h, wi, wh, b, b, NULL, NULL), "must not be NULL");
    /* the gates (N, 4*hidden) would overflow */
    int64_t bx[2] = {(int64_t)1 << 35, 1}, bh[2] = {(int64_t)1 << 35, (int64_t)1 << 22};
    int64_t bwi[2] = {(int64_t)1 << 24, 1}, bwh[2] = {(int64_t)1 << 24, (int64_t)1 << 22};
    kn_tensor *X = sym(KN_F32, 2, bx), *H = sym(KN_F32, 2, bh), *WI = sym(KN_F32, 2, bwi);
    kn_tensor *WH = sym(KN_F32, 2, bwh);
    kt_expect_fail_status(op, lstm_sym(X, H, H, WI, WH, NULL, NULL), "overflow");
    op = "gru_cell";
    kt_expect_fail(op, kn_gru_cell(x, h, wi, wh3, NULL, NULL),
                   "w_ih has shape (20,4), expected (3*hidden, input) = (15,4)");
    kt_expect_fail(op, kn_gru_cell(x, h, wi3, wh, NULL, NULL), "w_hh has shape (20,5)");
    kt_expect_fail(op, kn_gru_cell(x, h, wi3, wh3, b, NULL), "b_ih has shape (20)");
    kt_expect_fail(op, kn_gru_cell(x, h2, wi3, wh3, NULL, NULL), "h has shape (2,5)");
    kt_expect_fail(op, kn_gru_cell(xd, h, wi3, wh3, NULL, NULL), "h is f32 but x is f64");
    kt_expect_fail(op, kn_gru_cell(xi, h, wi3, wh3, NULL, NULL), "float dtype");
    kt_expect_fail(op, kn_gru_cell(x3, h, wi3, wh3, NULL, NULL), "x has 3 dims");
    kt_expect_fail(op, kn_gru_cell(x, NULL, wi3, wh3, NULL, NULL), "NULL");
    kt_expect_fail(op, kn_gru_cell(X, H, WI, WH, NULL, NULL), "expected");
    /* symbolic inputs give symbolic outputs of h's shape */
    kn_tensor *g = kn_gru_cell(x, h, wi3, wh3, b15, b15);
    KT_CHECK(g && kn_tensor_is_symbolic(g) && kn_tensor_shape(g)[1] == 5, "symbolic gru_cell");
    kn_tensor_unref(g);
    kn_tensor *list[] = {x, h, wi, wh, b, h2, b15, wi3, wh3, x3, wbad, xd, xi, x1, X, H, WI, WH};
    for (int i = 0; i < ARRAY_LEN(list); i++)
        kn_tensor_unref(list[i]);
}

/* ------------------------------------------------------------- alloc walk */
static kn_status walk_lstm(void *ctx)
{
    (void)ctx;
    cell_in in = lstm_inputs(KN_F32);
    kn_status s = KN_OK;
    for (int i = 0; i < 7; i++)
        if (!in.t[i]) s = KN_ERR_NOMEM;
    kn_tensor *h = NULL, *c = NULL, *l = NULL;
    if (!s) {
        kn_tensor_set_requires_grad(in.t[3], true);
        bool prev = kn_autograd_record(true);
        s = kn_lstm_cell(in.t[0], in.t[1], in.t[2], in.t[3], in.t[4], in.t[5], in.t[6], &h, &c);
        l = s ? NULL : kn_add(h, c);
        if (!s && !l) s = kn_last_status();
        kn_autograd_record(prev);
    }
    kn_autograd_record(false);
    kn_tensor *g = l ? kn_tensor_ones(KN_F32, kn_tensor_ndim(l), kn_tensor_shape(l)) : NULL;
    if (!s) s = g ? kn_backward(l, g) : kn_last_status();
    kn_tensor_unref(g), kn_tensor_unref(l), kn_tensor_unref(h), kn_tensor_unref(c);
    cell_free(&in);
    return s;
}

static void test_alloc_walk(void)
{
    int n = kt_alloc_walk("lstm_cell", walk_lstm, NULL);
    KT_CHECK(n > 10, "walked %d failure points", n);
}

int main(void)
{
    KT_RUN(test_lstm_values);
    KT_RUN(test_gru_values);
    KT_RUN(test_lstm_gradients);
    KT_RUN(test_gru_gradients);
    KT_RUN(test_bad_inputs);
    KT_RUN(test_alloc_walk);
    return kt_finish();
}
