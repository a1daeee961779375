/* test_loss.c — the loss ops against torch.nn.functional (tests/golden/loss.h
 * from tests/gen/gen_loss.py): every reduction, weights, ignore_index, label
 * smoothing, probability targets, odd and zero-size shapes, strided inputs,
 * f64/f32/f16/bf16; f64 gradchecks; bad inputs; an allocation-failure walk. */
#include "harness.h"

#include "golden/loss.h"

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
        return 2e-2;
    default:
        return 8e-2;
    }
}

static kn_loss_params red(kn_reduction r)
{
    return (kn_loss_params){.reduction = r};
}

static const kn_reduction reductions[3] = {KN_REDUCTION_MEAN, KN_REDUCTION_SUM, KN_REDUCTION_NONE};

/* ------------------------------------------------------------ cross_entropy */
typedef struct ce_case {
    const char *name;
    const kt_array *target;
    bool weighted, ignore;
    double smoothing;
    const kt_array *want[3]; /* mean, sum, none */
} ce_case;

static const ce_case ce_cases[] = {
    {"plain", &ce_t, false, false, 0, {&ce_mean, &ce_sum, &ce_none}},
    {"weight", &ce_t, true, false, 0, {&ce_w_mean, &ce_w_sum, &ce_w_none}},
    {"smoothing", &ce_t, false, false, 0.1, {&ce_ls_mean, &ce_ls_sum, &ce_ls_none}},
    {"smoothing+weight", &ce_t, true, false, 0.2, {&ce_ls_w_mean, &ce_ls_w_sum, &ce_ls_w_none}},
    {"ignore", &ce_ti, false, true, 0, {&ce_ig_mean, &ce_ig_sum, &ce_ig_none}},
    {"ignore+weight", &ce_ti, true, true, 0, {&ce_ig_w_mean, &ce_ig_w_sum, &ce_ig_w_none}},
    {"ignore+smoothing", &ce_ti, false, true, 0.3, {&ce_ig_ls_mean, &ce_ig_ls_sum, &ce_ig_ls_none}},
    {"ignore+smoothing+weight",
     &ce_ti,
     true,
     true,
     0.3,
     {&ce_ig_ls_w_mean, &ce_ig_ls_w_sum, &ce_ig_ls_w_none}},
};

static void test_cross_entropy_values(void)
{
    for (int k = 0; k < ARRAY_LEN(float_dtypes); k++) {
        kn_dtype dt = float_dtypes[k];
        double tol = tol_of(dt);
        kn_tensor *x = kt_from_array(&ce_x, dt), *w = kt_from_array(&ce_w, dt);
        for (int c = 0; c < ARRAY_LEN(ce_cases); c++) {
            const ce_case *cc = &ce_cases[c];
            kn_tensor *t = kt_from_array(cc->target, KN_I64);
            for (int r = 0; r < 3; r++) {
                kn_loss_params p = {.reduction = reductions[r],
                                    .use_ignore_index = cc->ignore,
                                    .ignore_index = -100,
                                    .label_smoothing = cc->smoothing};
                kn_tensor *y = kn_cross_entropy(x, t, cc->weighted ? w : NULL, &p);
                if (!kt_check_array("cross_entropy", y, cc->want[r], tol, tol))
                    fprintf(stderr, "  case %s, reduction %d, dtype %s\n", cc->name, r,
                            kn_dtype_name(dt));
                if (y) KT_CHECK(kn_tensor_dtype(y) == dt, "output dtype follows the logits");
                kn_tensor_unref(y);
            }
            kn_tensor_unref(t);
        }
        kn_tensor_unref(x), kn_tensor_unref(w);
    }
}

static void test_cross_entropy_shapes(void)
{
    kn_tensor *x = kt_from_array(&ce_x, KN_F64), *t = kt_from_array(&ce_t, KN_I64);
    /* ignore_index naming a real class */
    kn_loss_params p = {.use_ignore_index = true, .ignore_index = 2};
    kn_tensor *y = kn_cross_entropy(x, t, NULL, &p);
    kt_check_array("cross_entropy", y, &ce_ig2_mean, 1e-8, 1e-8);
    kn_tensor_unref(y);
    /* strided logits (a transpose view) and a strided target (step-2 slice) */
    kn_tensor *xt = kt_from_array(&ce_xT, KN_F64), *xv = kn_transpose(xt, 0, 1);
    int64_t s5[1] = {5};
    kn_tensor *tl = kt_tensor(KN_I32, 1, s5, (double[]){4, 9, 0, 9, 2});
    kn_tensor *tv = kn_slice(tl, 0, 0, 5, 2);
    kn_tensor *w = kt_from_array(&ce_w, KN_F64);
    kn_loss_params pm = red(KN_REDUCTION_MEAN);
    y = kn_cross_entropy(xv, tv, w, &pm);
    kt_check_array("cross_entropy", y, &ce_w_mean, 1e-8, 1e-8);
    kn_tensor_unref(y), kn_tensor_unref(xt), kn_tensor_unref(xv), kn_tensor_unref(tl),
        kn_tensor_unref(tv);
    /* target dtypes: u8 and i32 give the same loss; NULL params = mean */
    kn_tensor *t8 = kn_cast(t, KN_U8);
    y = kn_cross_entropy(x, t8, NULL, NULL);
    kt_check_array("cross_entropy", y, &ce_mean, 1e-8, 1e-8);
    kn_tensor_unref(y), kn_tensor_unref(t8);
    /* spatial (2, 4, 3) and (2, 3, 2, 2) logits */
    kn_tensor *xs = kt_from_array(&sp_x, KN_F64), *ts = kt_from_array(&sp_t, KN_I64);
    kn_tensor *ws = kt_from_array(&sp_w, KN_F64);
    kn_loss_params pi = {
        .reduction = KN_REDUCTION_NONE, .use_ignore_index = true, .ignore_index = -1};
    y = kn_cross_entropy(xs, ts, NULL, &pi);
    kt_check_array("cross_entropy", y, &sp_none, 1e-8, 1e-8);
    kn_tensor_unref(y);
    pi.reduction = KN_REDUCTION_MEAN;
    y = kn_cross_entropy(xs, ts, NULL, &pi);
    kt_check_array("cross_entropy", y, &sp_mean, 1e-8, 1e-8);
    kn_tensor_unref(y);
    pi.label_smoothing = 0.15;
    y = kn_cross_entropy(xs, ts, ws, &pi);
    kt_check_array("cross_entropy", y, &sp_w_ls_mean, 1e-8, 1e-8);
    kn_tensor_unref(y), kn_tensor_unref(xs), kn_tensor_unref(ts), kn_tensor_unref(ws);
    kn_tensor *x4 = kt_from_array(&g4_x, KN_F32), *t4d = kt_from_array(&g4_t, KN_I64);
    kn_loss_params pn = red(KN_REDUCTION_NONE);
    y = kn_cross_entropy(x4, t4d, NULL, &pn);
    kt_check_array("cross_entropy", y, &g4_none, 1e-5, 1e-5);
    kn_tensor_unref(y), kn_tensor_unref(x4), kn_tensor_unref(t4d);
    /* unbatched: logits (C), 0-d target */
    int64_t s5b[1] = {5};
    kn_tensor *row = kn_slice(x, 0, 0, 1, 1), *x1 = kn_reshape(row, 1, s5b);
    kn_tensor *t0 = kn_tensor_scalar(KN_I64, 3);
    y = kn_cross_entropy(x1, t0, NULL, &pn);
    kt_check_array("cross_entropy", y, &c1_none, 1e-8, 1e-8);
    kn_tensor_unref(y), kn_tensor_unref(row), kn_tensor_unref(x1), kn_tensor_unref(t0);
    kn_tensor_unref(x), kn_tensor_unref(t), kn_tensor_unref(w);
}

static void test_cross_entropy_probs(void)
{
    for (int k = 0; k < ARRAY_LEN(float_dtypes); k++) {
        kn_dtype dt = float_dtypes[k];
        double tol = tol_of(dt);
        kn_tensor *x = kt_from_array(&ce_x, dt), *p = kt_from_array(&ce_p, dt);
        kn_tensor *w = kt_from_array(&ce_w, dt);
        kn_loss_params pm = red(KN_REDUCTION_MEAN), ps = red(KN_REDUCTION_SUM);
        kn_loss_params pn = {.reduction = KN_REDUCTION_NONE, .label_smoothing = 0.25};
        kn_tensor *y = kn_cross_entropy(x, p, NULL, &pm);
        kt_check_array("cross_entropy", y, &prob_mean, tol, tol);
        kn_tensor_unref(y);
        y = kn_cross_entropy(x, p, w, &ps);
        kt_check_array("cross_entropy", y, &prob_w_sum, tol, tol);
        kn_tensor_unref(y);
        y = kn_cross_entropy(x, p, w, &pm);
        kt_check_array("cross_entropy", y, &prob_w_mean, tol, tol);
        kn_tensor_unref(y);
        y = kn_cross_entropy(x, p, NULL, &pn);
        kt_check_array("cross_entropy", y, &prob_ls_none, tol, tol);
        kn_tensor_unref(y), kn_tensor_unref(x), kn_tensor_unref(p), kn_tensor_unref(w);
    }
}

/* Zero-size batches: mean is NaN (0/0) as in PyTorch, sum 0, none empty. */
static void test_class_zero_size(void)
{
    int64_t sx[2] = {0, 5}, st[1] = {0};
    kn_tensor *x = kn_tensor_zeros(KN_F32, 2, sx), *t = kn_tensor_zeros(KN_I64, 1, st);
    kn_loss_params pm = red(KN_REDUCTION_MEAN), ps = red(KN_REDUCTION_SUM),
                   pn = red(KN_REDUCTION_NONE);
    const char *ops[2] = {"cross_entropy", "nll_loss"};
    for (int i = 0; i < 2; i++) {
        kn_tensor *(*f)(kn_tensor *, kn_tensor *, kn_tensor *, const kn_loss_params *) =
            i ? kn_nll_loss : kn_cross_entropy;
        kn_tensor *y = f(x, t, NULL, &pm);
        kt_check_values(ops[i], y, 0, NULL, (double[]){NAN}, 0, 0);
        kn_tensor_unref(y);
        y = f(x, t, NULL, &ps);
        kt_check_values(ops[i], y, 0, NULL, (double[]){0}, 0, 0);
        kn_tensor_unref(y);
        y = f(x, t, NULL, &pn);
        kt_check_values(ops[i], y, 1, st, NULL, 0, 0);
        kn_tensor_unref(y);
    }
    kn_tensor_unref(x), kn_tensor_unref(t);
}

/* ------------------------------------------------------------------ nll_loss */
static void test_nll_values(void)
{
    for (int k = 0; k < ARRAY_LEN(float_dtypes); k++) {
        kn_dtype dt = float_dtypes[k];
        double tol = tol_of(dt);
        kn_tensor *x = kt_from_array(&ce_x, dt), *w = kt_from_array(&ce_w, dt);
        kn_tensor *t = kt_from_array(&ce_t, KN_I32), *ti = kt_from_array(&ce_ti, KN_I64);
        kn_loss_params pm = red(KN_REDUCTION_MEAN), pn = red(KN_REDUCTION_NONE);
        kn_loss_params pim = {.use_ignore_index = true, .ignore_index = -100};
        kn_loss_params pin = pim;
        pin.reduction = KN_REDUCTION_NONE;
        kn_tensor *y = kn_nll_loss(x, t, NULL, &pm);
        kt_check_array("nll_loss", y, &nll_mean, tol, tol);
        kn_tensor_unref(y);
        y = kn_nll_loss(x, t, NULL, &pn);
        kt_check_array("nll_loss", y, &nll_none, tol, tol);
        kn_tensor_unref(y);
        y = kn_nll_loss(x, ti, w, &pim);
        kt_check_array("nll_loss", y, &nll_w_ig_mean, tol, tol);
        kn_tensor_unref(y);
        y = kn_nll_loss(x, ti, w, &pin);
        kt_check_array("nll_loss", y, &nll_w_ig_none, tol, tol);
        kn_tensor_unref(y);
        kn_tensor_unref(x), kn_tensor_unref(w), kn_tensor_unref(t), kn_tensor_unref(ti);
    }
    kn_tensor *xs = kt_from_array(&sp_x, KN_F64), *ts = kt_from_array(&sp_t, KN_I64);
    kn_tensor *ws = kt_from_array(&sp_w, KN_F64);
    kn_loss_params ps = {
        .reduction = KN_REDUCTION_SUM, .use_ignore_index = true, .ignore_index = -1};
    kn_tensor *y = kn_nll_loss(xs, ts, ws, &ps);
    kt_check_array("nll_loss", y, &sp_nll_sum, 1e-8, 1e-8);
    kn_tensor_unref(y), kn_tensor_unref(xs), kn_tensor_unref(ts), kn_tensor_unref(ws);
}

/* ------------------------------------------------------------ bce_with_logits */
static void test_bce_values(void)
{
    for (int k = 0; k < ARRAY_LEN(float_dtypes); k++) {
        kn_dtype dt = float_dtypes[k];
        double tol = tol_of(dt);
        kn_tensor *x = kt_from_array(&bce_x, dt), *y = kt_from_array(&bce_y, dt);
        kn_tensor *w = kt_from_array(&bce_w, dt), *pw = kt_from_array(&bce_pw, dt);
        const kt_array *plain[3] = {&bce_mean, &bce_sum, &bce_none};
        const kt_array *both[3] = {&bce_w_pw_mean, &bce_w_pw_sum, &bce_w_pw_none};
        for (int r = 0; r < 3; r++) {
            kn_loss_params p = red(reductions[r]);
            kn_tensor *l = kn_bce_with_logits(x, y, NULL, NULL, &p);
            kt_check_array("bce_with_logits", l, plain[r], tol, tol);
            kn_tensor_unref(l);
            l = kn_bce_with_logits(x, y, w, pw, &p);
            kt_check_array("bce_with_logits", l, both[r], tol, tol);
            kn_tensor_unref(l);
        }
        kn_tensor_unref(x), kn_tensor_unref(y), kn_tensor_unref(w), kn_tensor_unref(pw);
    }
    /* weight (4, 1) broadcast over columns; logits as a transposed view */
    kn_tensor *x = kt_from_array(&bce_x, KN_F64), *y = kt_from_array(&bce_y, KN_F64);
    kn_tensor *w41 = kt_from_array(&bce_w41, KN_F64);
    kn_tensor *xc = kn_transpose(x, 0, 1), *xcc = kn_contiguous(xc), *xv = kn_transpose(xcc, 0, 1);
    kn_loss_params pn = red(KN_REDUCTION_NONE);
    kn_tensor *l = kn_bce_with_logits(xv, y, w41, NULL, &pn);
    kt_check_array("bce_with_logits", l, &bce_w41_none, 1e-8, 1e-8);
    kn_tensor_unref(l), kn_tensor_unref(xc), kn_tensor_unref(xcc), kn_tensor_unref(xv);
    kn_tensor_unref(x), kn_tensor_unref(y), kn_tensor_unref(w41);
    /* zero-size */
    int64_t s0[2] = {0, 3};
    kn_tensor *z = kn_tensor_zeros(KN_F32, 2, s0);
    kn_loss_params ps = red(KN_REDUCTION_SUM);
    l = kn_bce_with_logits(z, z, NULL, NULL, &ps);
    kt_check_values("bce_with_logits", l, 0, NULL, (double[]){0}, 0, 0);
    kn_tensor_unref(l), kn_tensor_unref(z);
}

/* ------------------------------------------------------------- regression */
typedef kn_tensor *(*pair_fn)(kn_tensor *, kn_tensor *, const kn_loss_params *);

typedef struct pair_case {
    const char *op;
    pair_fn fn;
    double beta, delta;
    const kt_array *want[3];
} pair_case;

static const pair_case pair_cases[] = {
    {"mse_loss", kn_mse_loss, 0, 0, {&mse_mean, &mse_sum, &mse_none}},
    {"l1_loss", kn_l1_loss, 0, 0, {&l1_mean, &l1_sum, &l1_none}},
    {"smooth_l1_loss", kn_smooth_l1_loss, 0, 0, {&sl1_mean, &sl1_sum, &sl1_none}},
    {"smooth_l1_loss", kn_smooth_l1_loss, 0.5, 0, {&sl1b_mean, &sl1b_sum, &sl1b_none}},
    {"huber_loss", kn_huber_loss, 0, 0, {&hub_mean, &hub_sum, &hub_none}},
    {"huber_loss", kn_huber_loss, 0, 1.5, {&hubd_mean, &hubd_sum, &hubd_none}},
};

static void test_regression_values(void)
{
    for (int k = 0; k < ARRAY_LEN(float_dtypes); k++) {
        kn_dtype dt = float_dtypes[k];
        double tol = tol_of(dt) * (dt == KN_F64 ? 1 : 4);
        kn_tensor *x = kt_from_array(&rx, dt), *y = kt_from_array(&ry, dt);
        for (int c = 0; c < ARRAY_LEN(pair_cases); c++)
            for (int r = 0; r < 3; r++) {
                const pair_case *pc = &pair_cases[c];
                kn_loss_params p = {
                    .reduction = reductions[r], .beta = pc->beta, .delta = pc->delta};
                kn_tensor *l = pc->fn(x, y, &p);
                if (!kt_check_array(pc->op, l, pc->want[r], tol, tol))
                    fprintf(stderr, "  case %d reduction %d dtype %s\n", c, r, kn_dtype_name(dt));
                kn_tensor_unref(l);
            }
        kn_tensor_unref(x), kn_tensor_unref(y);
    }
    /* broadcasting target (4) against (3, 4); a strided input */
    kn_tensor *x = kt_from_array(&rx, KN_F64), *yb = kt_from_array(&ryb, KN_F64);
    kn_loss_params pn = red(KN_REDUCTION_NONE), pm = red(KN_REDUCTION_MEAN);
    kn_tensor *l = kn_mse_loss(x, yb, &pn);
    kt_check_array("mse_loss", l, &mse_b_none, 1e-8, 1e-8);
    kn_tensor_unref(l);
    kn_tensor *xt = kn_transpose(x, 0, 1), *xtc = kn_contiguous(xt), *xv = kn_transpose(xtc, 0, 1);
    l = kn_l1_loss(xv, yb, &pm);
    kt_check_array("l1_loss", l, &l1_b_mean, 1e-8, 1e-8);
    kn_tensor_unref(l), kn_tensor_unref(xt), kn_tensor_unref(xtc), kn_tensor_unref(xv);
    kn_tensor_unref(x), kn_tensor_unref(yb);
    /* zero-size: mean NaN, sum 0 */
    int64_t s0[2] = {2, 0};
    kn_tensor *z = kn_tensor_zeros(KN_F32, 2, s0);
    for (int c = 0; c < ARRAY_LEN(pair_cases); c++) {
        kn_loss_params ps = red(KN_REDUCTION_SUM), pn0 = red(KN_REDUCTION_NONE);
        l = pair_cases[c].fn(z, z, &pm);
        kt_check_values(pair_cases[c].op, l, 0, NULL, (double[]){NAN}, 0, 0);
        kn_tensor_unref(l);
        l = pair_cases[c].fn(z, z, &ps);
        kt_check_values(pair_cases[c].op, l, 0, NULL, (double[]){0}, 0, 0);
        kn_tensor_unref(l);
        l = pair_cases[c].fn(z, z, &pn0);
        kt_check_values(pair_cases[c].op, l, 2, s0, NULL, 0, 0);
        kn_tensor_unref(l);
    }
    kn_tensor_unref(z);
}

/* ------------------------------------------------------------------ kl_div */
static void test_kl_div_values(void)
{
    const kn_reduction reds[4] = {KN_REDUCTION_MEAN, KN_REDUCTION_SUM, KN_REDUCTION_NONE,
                                  KN_REDUCTION_BATCHMEAN};
    const kt_array *want[4] = {&kl_mean, &kl_sum, &kl_none, &kl_batchmean};
    const kt_array *want_log[4] = {&kl_log_mean, &kl_log_sum, &kl_log_none, &kl_log_batchmean};
    for (int k = 0; k < ARRAY_LEN(float_dtypes); k++) {
        kn_dtype dt = float_dtypes[k];
        double tol = tol_of(dt);
        kn_tensor *x = kt_from_array(&kl_x, dt), *t = kt_from_array(&kl_t, dt);
        kn_tensor *lt = kt_from_array(&kl_lt, dt);
        for (int r = 0; r < 4; r++) {
            kn_loss_params p = {.reduction = reds[r]};
            kn_tensor *l = kn_kl_div(x, t, &p);
            kt_check_array("kl_div", l, want[r], tol, tol);
            kn_tensor_unref(l);
            p.log_target = true;
            l = kn_kl_div(x, lt, &p);
            kt_check_array("kl_div", l, want_log[r], tol, tol);
            kn_tensor_unref(l);
        }
        kn_tensor_unref(x), kn_tensor_unref(t), kn_tensor_unref(lt);
    }
}

/* ---------------------------------------------------------------- gradients */
typedef struct loss_ctx {
    kn_tensor *target, *weight;
    kn_loss_params p;
    pair_fn pair;
} loss_ctx;

static kn_tensor *f_ce_index(kn_tensor *const *in, void *ctx)
{
    loss_ctx *c = ctx;
    return kn_cross_entropy(in[0], c->target, c->weight, &c->p);
}

static kn_tensor *f_ce_probs(kn_tensor *const *in, void *ctx)
{
    loss_ctx *c = ctx;
    return kn_cross_entropy(in[0], in[1], c->weight, &c->p);
}

static kn_tensor *f_nll(kn_tensor *const *in, void *ctx)
{
    loss_ctx *c = ctx;
    return kn_nll_loss(in[0], c->target, c->weight, &c->p);
}

static kn_tensor *f_bce(kn_tensor *const *in, void *ctx)
{
    loss_ctx *c = ctx;
    return kn_bce_with_logits(in[0], in[1], in[2], in[3], &c->p);
}

static kn_tensor *f_pair(kn_tensor *const *in, void *ctx)
{
    loss_ctx *c = ctx;
    return c->pair(in[0], in[1], &c->p);
}

static kn_tensor *f_kl(kn_tensor *const *in, void *ctx)
{
    loss_ctx *c = ctx;
    return kn_kl_div(in[0], in[1], &c->p);
}

static void test_class_gradients(void)
{
    kn_tensor *x = kt_from_array(&ce_x, KN_F64), *ti = kt_from_array(&ce_ti, KN_I64);
    kn_tensor *w = kt_from_array(&ce_w, KN_F64), *p = kt_from_array(&ce_p, KN_F64);
    loss_ctx c = {.target = ti,
                  .weight = w,
                  .p = {.use_ignore_index = true, .ignore_index = -100, .label_smoothing = 0.2}};
    kt_gradcheck("cross_entropy", f_ce_index, 1, &x, &c, 1e-6, 1e-6);
    c.p.reduction = KN_REDUCTION_NONE, c.weight = NULL;
    kt_gradcheck("cross_entropy", f_ce_index, 1, &x, &c, 1e-6, 1e-6);
    kn_tensor *xp[2] = {x, p};
    c.weight = w, c.p.reduction = KN_REDUCTION_SUM;
    kt_gradcheck("cross_entropy", f_ce_probs, 2, xp, &c, 1e-6, 1e-6);
    /* spatial logits */
    kn_tensor *xs = kt_from_array(&sp_x, KN_F64), *ts = kt_from_array(&sp_t, KN_I64);
    loss_ctx cs = {.target = ts,
                   .p = {.use_ignore_index = true, .ignore_index = -1, .label_smoothing = 0.1}};
    kt_gradcheck("cross_entropy", f_ce_index, 1, &xs, &cs, 1e-6, 1e-6);
    /* nll */
    c.target = ti, c.p = (kn_loss_params){.use_ignore_index = true, .ignore_index = -100};
    kt_gradcheck("nll_loss", f_nll, 1, &x, &c, 1e-6, 1e-6);
    cs.p = (kn_loss_params){
        .reduction = KN_REDUCTION_NONE, .use_ignore_index = true, .ignore_index = -1};
    kt_gradcheck("nll_loss", f_nll, 1, &xs, &cs, 1e-6, 1e-6);
    kn_tensor_unref(x), kn_tensor_unref(ti), kn_tensor_unref(w), kn_tensor_unref(p);
    kn_tensor_unref(xs), kn_tensor_unref(ts);
}

static void test_bce_gradients(void)
{
    int64_t s[2] = {4, 3}, s3[1] = {3};
    kn_tensor *in[4] = {kt_rand(2, s, -3, 3, 11), kt_rand(2, s, 0, 1, 12),
                        kt_rand(1, s3, 0.5, 1.5, 13), kt_rand(1, s3, 0.2, 3, 14)};
    loss_ctx c = {.p = {.reduction = KN_REDUCTION_NONE}};
    kt_gradcheck("bce_with_logits", f_bce, 4, in, &c, 1e-6, 1e-6);
    c.p.reduction = KN_REDUCTION_MEAN;
    kn_tensor *in2[4] = {in[0], in[1], NULL, NULL};
    kt_gradcheck("bce_with_logits", f_bce, 4, in2, &c, 1e-6, 1e-6);
    for (int i = 0; i < 4; i++)
        kn_tensor_unref(in[i]);
}

static void test_regression_gradients(void)
{
    kn_tensor *in[2] = {kt_from_array(&rx, KN_F64), kt_from_array(&ry, KN_F64)};
    for (int c = 0; c < ARRAY_LEN(pair_cases); c++) {
        loss_ctx ctx = {.p = {.reduction = KN_REDUCTION_NONE,
                              .beta = pair_cases[c].beta,
                              .delta = pair_cases[c].delta},
                        .pair = pair_cases[c].fn};
        kt_gradcheck(pair_cases[c].op, f_pair, 2, in, &ctx, 1e-6, 1e-6);
        ctx.p.reduction = KN_REDUCTION_MEAN;
        kt_gradcheck(pair_cases[c].op, f_pair, 2, in, &ctx, 1e-6, 1e-6);
    }
    kn_tensor_unref(in[0]), kn_tensor_unref(in[1]);
}

static void test_kl_div_gradients(void)
{
    int64_t s[2] = {3, 4};
    kn_tensor *in[2] = {kt_rand(2, s, -3, -0.1, 21), kt_rand(2, s, 0.05, 1, 22)};
    loss_ctx c = {.p = {.reduction = KN_REDUCTION_BATCHMEAN}};
    kt_gradcheck("kl_div", f_kl, 2, in, &c, 1e-6, 1e-6);
    c.p.log_target = true, c.p.reduction = KN_REDUCTION_NONE;
    kn_tensor *lt = kt_rand(2, s, -3, -0.1, 23), *in2[2] = {in[0], lt};
    kt_gradcheck("kl_div", f_kl, 2, in2, &c, 1e-6, 1e-6);
    kn_tensor_unref(in[0]), kn_tensor_unref(in[1]), kn_tensor_unref(lt);
}

/* ---------------------------------------------------------------- bad input */
static kn_tensor *sym(kn_dtype dt, int ndim, const int64_t *shape)
{
    return kn_tensor_symbolic(dt, ndim, shape);
}

static void test_class_bad_inputs(void)
{
    int64_t s35[2] = {3, 5}, s3[1] = {3}, s4[1] = {4}, s5[1] = {5}, s6[1] = {6}, s0[2] = {3, 0};
    int64_t s31[2] = {3, 1}, s243[3] = {2, 4, 3}, s22[2] = {2, 2};
    kn_tensor *x = sym(KN_F32, 2, s35), *t = sym(KN_I64, 1, s3), *tb4 = sym(KN_I64, 1, s4);
    kn_tensor *tf = sym(KN_F32, 1, s3), *tb = sym(KN_BOOL, 1, s3), *w6 = sym(KN_F32, 1, s6);
    kn_tensor *w5d = sym(KN_F64, 1, s5), *xi = sym(KN_I32, 2, s35), *x0 = sym(KN_F32, 0, NULL);
    kn_tensor *xc0 = sym(KN_F32, 2, s0), *t2 = sym(KN_I64, 2, s31), *pf = sym(KN_F64, 2, s35);
    kn_tensor *xs = sym(KN_F32, 3, s243), *ts = sym(KN_I64, 2, s22);
    kn_loss_params bad_red = {.reduction = (kn_reduction)7}, bm = red(KN_REDUCTION_BATCHMEAN);
    kn_loss_params ls = {.label_smoothing = 1.5}, lsn = {.label_smoothing = NAN};
    const char *op = "cross_entropy";
    kt_expect_fail(op, kn_cross_entropy(x, tb4, NULL, NULL),
                   "target has shape (4) but logits batch is 3");
    kt_expect_fail(op, kn_cross_entropy(x, t2, NULL, NULL), "target has 2 dims, expected 1");
    kt_expect_fail(op, kn_cross_entropy(xs, ts, NULL, NULL), "without the class dim");
    kt_expect_fail(op, kn_cross_entropy(x, tf, NULL, NULL), "probability target has shape");
    kt_expect_fail(op, kn_cross_entropy(x, pf, NULL, NULL), "f64");
    kt_expect_fail(op, kn_cross_entropy(x, tb, NULL, NULL), "integer dtype");
    kt_expect_fail(op, kn_cross_entropy(x, t, w6, NULL), "weight has shape (6)");
    kt_expect_fail(op, kn_cross_entropy(x, t, w5d, NULL), "weight is f64");
    kt_expect_fail(op, kn_cross_entropy(xi, t, NULL, NULL), "float dtype");
    kt_expect_fail(op, kn_cross_entropy(x0, t, NULL, NULL), "0-d");
    kt_expect_fail(op, kn_cross_entropy(xc0, t, NULL, NULL), "0 classes");
    kt_expect_fail(op, kn_cross_entropy(x, t, NULL, &bad_red), "reduction 7");
    kt_expect_fail(op, kn_cross_entropy(x, t, NULL, &bm), "batchmean");
    kt_expect_fail(op, kn_cross_entropy(x, t, NULL, &ls), "label_smoothing");
    kt_expect_fail(op, kn_cross_entropy(x, t, NULL, &lsn), "label_smoothing");
    kt_expect_fail(op, kn_cross_entropy(NULL, t, NULL, NULL), "NULL");
    kt_expect_fail(op, kn_cross_entropy(x, NULL, NULL, NULL), "NULL");
    op = "nll_loss";
    kt_expect_fail(op, kn_nll_loss(x, tb4, NULL, NULL),
                   "target has shape (4) but input batch is 3");
    kt_expect_fail(op, kn_nll_loss(x, tf, NULL, NULL), "integer dtype");
    kt_expect_fail(op, kn_nll_loss(x, t, NULL, &ls), "label_smoothing");
    kt_expect_fail(op, kn_nll_loss(x, t, w6, NULL), "weight");
    kt_expect_fail(op, kn_nll_loss(NULL, t, NULL, NULL), "NULL");
    /* target values out of range (only visible with data) */
    kn_tensor *xr = kn_tensor_zeros(KN_F32, 2, s35);
    kn_tensor *tr = kt_tensor(KN_I64, 1, s3, (double[]){0, 5, 1});
    kn_tensor *tn = kt_tensor(KN_I32, 1, s3, (double[]){0, -100, 1});
    kt_expect_fail("cross_entropy", kn_cross_entropy(xr, tr, NULL, NULL), "target 5");
    kt_expect_fail("nll_loss", kn_nll_loss(xr, tn, NULL, NULL), "target -100");
    kn_loss_params ig = {.use_ignore_index = true, .ignore_index = -1};
    kt_expect_fail("nll_loss", kn_nll_loss(xr, tn, NULL, &ig), "out of range for 5 classes");
    kn_tensor *list[] = {x, t, tb4, tf, tb, w6, w5d, xi, x0, xc0, t2, pf, xs, ts, xr, tr, tn};
    for (int i = 0; i < ARRAY_LEN(list); i++)
        kn_tensor_unref(list[i]);
    (void)s31;
}

static void test_pair_bad_inputs(void)
{
    int64_t s34[2] = {3, 4}, s5[1] = {5}, big1[2] = {(int64_t)1 << 31, 1},
            big2[2] = {1, (int64_t)1 << 30};
    int64_t s43[2] = {4, 3}, s4[1] = {4}, s41[2] = {4, 1};
    kn_tensor *x = sym(KN_F32, 2, s34), *y5 = sym(KN_F32, 1, s5), *yd = sym(KN_F64, 2, s34);
    kn_tensor *xi = sym(KN_I64, 2, s34), *b1 = sym(KN_F32, 2, big1), *b2 = sym(KN_F32, 2, big2);
    kn_tensor *x0 = sym(KN_F32, 0, NULL);
    kn_loss_params bad_red = {.reduction = (kn_reduction)-1}, bm = red(KN_REDUCTION_BATCHMEAN);
    kn_loss_params nb = {.beta = -1}, nd = {.delta = -0.5}, infb = {.beta = INFINITY};
    for (int c = 0; c < ARRAY_LEN(pair_cases); c++) {
        const char *op = pair_cases[c].op;
        pair_fn f = pair_cases[c].fn;
        kt_expect_fail(op, f(x, y5, NULL), "broadcast");
        kt_expect_fail(op, f(x, yd, NULL), "f64");
        kt_expect_fail(op, f(xi, xi, NULL), "float dtype");
        kt_expect_fail(op, f(b1, b2, NULL), "overflow");
        kt_expect_fail(op, f(x, x, &bad_red), "reduction -1");
        kt_expect_fail(op, f(x, x, &bm), "batchmean");
        kt_expect_fail(op, f(NULL, x, NULL), "NULL");
        kt_expect_fail(op, f(x, NULL, NULL), "NULL");
    }
    kt_expect_fail("smooth_l1_loss", kn_smooth_l1_loss(x, x, &nb), "beta is -1");
    kt_expect_fail("smooth_l1_loss", kn_smooth_l1_loss(x, x, &infb), "beta is inf");
    kt_expect_fail("huber_loss", kn_huber_loss(x, x, &nd), "delta is -0.5");
    const char *op = "kl_div";
    kt_expect_fail(op, kn_kl_div(x, y5, NULL), "broadcast");
    kt_expect_fail(op, kn_kl_div(x, yd, NULL), "f64");
    kt_expect_fail(op, kn_kl_div(xi, xi, NULL), "float dtype");
    kt_expect_fail(op, kn_kl_div(b1, b2, NULL), "overflow");
    kt_expect_fail(op, kn_kl_div(x0, x0, &bm), "batchmean needs at least 1 dim");
    kt_expect_fail(op, kn_kl_div(x, x, &bad_red), "reduction -1");
    kt_expect_fail(op, kn_kl_div(NULL, x, NULL), "NULL");
    op = "bce_with_logits";
    kn_tensor *x43 = sym(KN_F32, 2, s43), *w4 = sym(KN_F32, 1, s4), *w41 = sym(KN_F32, 2, s41);
    kn_tensor *w4d = sym(KN_F64, 1, s4);
    kt_expect_fail(op, kn_bce_with_logits(x, x43, NULL, NULL, NULL), "target has shape (4,3)");
    kt_expect_fail(op, kn_bce_with_logits(x, y5, NULL, NULL, NULL), "must be equal");
    kt_expect_fail(op, kn_bce_with_logits(x43, x43, w4, NULL, NULL), "weight has shape (4)");
    kt_expect_fail(op, kn_bce_with_logits(x, x, NULL, w41, NULL), "pos_weight has shape (4,1)");
    kt_expect_fail(op, kn_bce_with_logits(x, x, w4d, NULL, NULL), "weight is f64");
    kt_expect_fail(op, kn_bce_with_logits(x, yd, NULL, NULL, NULL), "target is f64");
    kt_expect_fail(op, kn_bce_with_logits(xi, xi, NULL, NULL, NULL), "float dtype");
    kt_expect_fail(op, kn_bce_with_logits(x, x, NULL, NULL, &bm), "batchmean");
    kt_expect_fail(op, kn_bce_with_logits(NULL, x, NULL, NULL, NULL), "NULL");
    kn_tensor *list[] = {x, y5, yd, xi, b1, b2, x0, x43, w4, w41, w4d};
    for (int i = 0; i < ARRAY_LEN(list); i++)
        kn_tensor_unref(list[i]);
}

/* Symbolic inputs: infer alone gives the output shape and dtype. */
static void test_symbolic_shapes(void)
{
    int64_t s243[3] = {2, 4, 3}, s23[2] = {2, 3}, s34[2] = {3, 4}, s4[1] = {4};
    kn_tensor *x = sym(KN_BF16, 3, s243), *t = sym(KN_I32, 2, s23);
    kn_loss_params pn = red(KN_REDUCTION_NONE);
    kn_tensor *y = kn_cross_entropy(x, t, NULL, &pn);
    KT_CHECK(y && kn_tensor_is_symbolic(y) && kn_tensor_ndim(y) == 2 &&
                 kn_tensor_shape(y)[1] == 3 && kn_tensor_dtype(y) == KN_BF16,
             "symbolic cross_entropy: (2, 3) bf16");
    kn_tensor_unref(y);
    y = kn_nll_loss(x, t, NULL, NULL);
    KT_CHECK(y && kn_tensor_ndim(y) == 0, "symbolic nll_loss: 0-d");
    kn_tensor_unref(y);
    kn_tensor *a = sym(KN_F32, 2, s34), *b = sym(KN_F32, 1, s4);
    y = kn_mse_loss(a, b, &pn);
    KT_CHECK(y && kn_tensor_ndim(y) == 2 && kn_tensor_shape(y)[0] == 3,
             "symbolic mse_loss: (3, 4)");
    kn_tensor_unref(y);
    kn_tensor_unref(x), kn_tensor_unref(t), kn_tensor_unref(a), kn_tensor_unref(b);
}

/* ------------------------------------------------------------- alloc walk */
static kn_status walk_ce(void *ctx)
{
    (void)ctx;
    kn_tensor *x = kt_from_array(&ce_x, KN_F32), *t = kt_from_array(&ce_ti, KN_I64);
    kn_tensor *w = kt_from_array(&ce_w, KN_F32);
    kn_tensor_set_requires_grad(x, true);
    kn_loss_params p = {.use_ignore_index = true, .ignore_index = -100, .label_smoothing = 0.1};
    bool prev = kn_autograd_record(true);
    kn_tensor *y = x && t && w ? kn_cross_entropy(x, t, w, &p) : NULL;
    kn_autograd_record(prev);
    kn_status s = y ? kn_backward(y, NULL) : kn_last_status();
    if (!s && !(x && t && w)) s = KN_ERR_NOMEM;
    kn_tensor_unref(y), kn_tensor_unref(x), kn_tensor_unref(t), kn_tensor_unref(w);
    return s;
}

static void test_alloc_walk(void)
{
    int n = kt_alloc_walk("cross_entropy", walk_ce, NULL);
    KT_CHECK(n > 10, "walked %d failure points", n);
}

int main(void)
{
    KT_RUN(test_cross_entropy_values);
    KT_RUN(test_cross_entropy_shapes);
    KT_RUN(test_cross_entropy_probs);
    KT_RUN(test_class_zero_size);
    KT_RUN(test_nll_values);
    KT_RUN(test_bce_values);
    KT_RUN(test_regression_values);
    KT_RUN(test_kl_div_values);
    KT_RUN(test_class_gradients);
    KT_RUN(test_bce_gradients);
    KT_RUN(test_regression_gradients);
    KT_RUN(test_kl_div_gradients);
    KT_RUN(test_class_bad_inputs);
    KT_RUN(test_pair_bad_inputs);
    KT_RUN(test_symbolic_shapes);
    KT_RUN(test_alloc_walk);
    return kt_finish();
}
