/* test_norm.c — the norm family: the internal normalize op, layer/RMS/group/
 * instance/batch norm (running statistics included), softmax, log_softmax
 * and dropout; values against PyTorch (tests/golden/norm.h), f64 gradient
 * checks, dropout statistics and reproducibility, bad inputs. */
#include "harness.h"
#include "ops/norm.h"

#include "golden/norm.h"

static kn_tensor *t64(const kt_array *a)
{
    return kt_from_array(a, KN_F64);
}

/* The same logical tensor stored with reversed dims (a strided view). */
static kn_tensor *strided(const kt_array *a, kn_dtype dt)
{
    int nd = a->ndim;
    int64_t rshape[KN_MAX_DIMS], idx[KN_MAX_DIMS], ridx[KN_MAX_DIMS], st[KN_MAX_DIMS];
    for (int d = 0; d < nd; d++)
        rshape[d] = a->shape[nd - 1 - d];
    kn_tensor *base = kn_tensor_empty(dt, nd, rshape);
    for (int64_t i = 0; i < a->n; i++) {
        int64_t rem = i;
        for (int d = nd - 1; d >= 0; d--)
            idx[d] = rem % a->shape[d], rem /= a->shape[d];
        for (int d = 0; d < nd; d++)
            ridx[d] = idx[nd - 1 - d];
        kn_tensor_set(base, ridx, a->data[i]);
    }
    for (int d = 0; d < nd; d++)
        st[d] = kn_tensor_strides(base)[nd - 1 - d];
    kn_tensor *v = kn__tensor_view(base, nd, a->shape, st, 0);
    kn_tensor_unref(base);
    return v;
}

static const kn_dtype dts[3] = {KN_F64, KN_F32, KN_F16};
static const double tols[3] = {2e-8, 1e-5, 2e-2};

static void unref3(kn_tensor *a, kn_tensor *b, kn_tensor *c)
{
    kn_tensor_unref(a), kn_tensor_unref(b), kn_tensor_unref(c);
}

/* ---- normalize (internal) */
static kn_status run_normalize(kn_tensor *x, int n, const int *axes, double eps, bool center,
                               kn_tensor **out)
{
    kn_norm_attrs at = {.axes = {n, {0}}, .eps = eps, .center = center};
    for (int i = 0; i < n; i++)
        at.axes.v[i] = axes[i];
    kn_tensor *in[1] = {x};
    return kn__op_call(&kn_op_normalize, 1, in, &at, 3, out);
}

static void test_normalize_values(void)
{
    for (int k = 0; k < 3; k++) {
        kn_tensor *x = kt_from_array(&ln_x, dts[k]), *o[3];
        KT_OK(run_normalize(x, 1, (const int[]){-1}, 1e-3, true, o));
        kt_check_array("normalize", o[0], &ln1_y, tols[k], tols[k]);
        kt_check_values("normalize", o[1], 3, (int64_t[]){3, 4, 1}, nz_mean.data, tols[k], tols[k]);
        kt_check_values("normalize", o[2], 3, (int64_t[]){3, 4, 1}, nz_rstd.data, tols[k], tols[k]);
        KT_CHECK(kn_tensor_dtype(o[1]) == (k == 0 ? KN_F64 : KN_F32), "stats in f32/f64");
        unref3(o[0], o[1], o[2]);
        KT_OK(run_normalize(x, 2, (const int[]){0, 2}, 1e-5, true, o));
        kt_check_array("normalize", o[0], &nzb_y, tols[k], tols[k]);
        kt_check_values("normalize", o[1], 3, (int64_t[]){1, 4, 1}, nzb_mean.data, tols[k],
                        tols[k]);
        kt_check_values("normalize", o[2], 3, (int64_t[]){1, 4, 1}, nzb_rstd.data, tols[k],
                        tols[k]);
        unref3(o[0], o[1], o[2]);
        kn_tensor_unref(x);
    }
    kn_tensor *xs = strided(&ln_x, KN_F64), *o[3];
    KT_CHECK(!kn_tensor_is_contiguous(xs), "strided input");
    KT_OK(run_normalize(xs, 2, (const int[]){2, 0}, 1e-5, true, o));
    kt_check_array("normalize", o[0], &nzb_y, 2e-8, 1e-9);
    unref3(o[0], o[1], o[2]);
    kn_tensor_unref(xs);
    kn_tensor *xr = t64(&rms_x);
    KT_OK(run_normalize(xr, 1, (const int[]){1}, 1e-6, false, o));
    kt_check_values("normalize", o[2], 2, (int64_t[]){3, 1}, rms_rstd.data, 2e-8, 1e-9);
    unref3(o[0], o[1], o[2]);
    kn_tensor_unref(xr);
}

typedef struct nz_ctx {
    int n;
    int axes[3];
    bool center;
} nz_ctx;

/* y + 2 mean + 3 rstd: exercises the gradient of all three outputs. */
static kn_tensor *nz_fn(kn_tensor *const *in, void *arg)
{
    const nz_ctx *c = arg;
    kn_tensor *o[3];
    if (run_normalize(in[0], c->n, c->axes, 1e-3, c->center, o)) return NULL;
    kn_tensor *m = kn_mul_scalar(o[1], 2), *r = kn_mul_scalar(o[2], 3);
    kn_tensor *a = kn_add(o[0], m), *b = kn_add(a, r);
    unref3(o[0], o[1], o[2]);
    unref3(m, r, a);
    return b;
}

static kn_tensor *nz_y_fn(kn_tensor *const *in, void *arg)
{
    const nz_ctx *c = arg;
    kn_tensor *o[3];
    if (run_normalize(in[0], c->n, c->axes, 1e-3, c->center, o)) return NULL;
    kn_tensor_unref(o[1]), kn_tensor_unref(o[2]);
    return o[0];
}

static void test_normalize_grad(void)
{
    int64_t s[3] = {3, 4, 5};
    kn_tensor *x = kt_rand(3, s, -1, 1, 11);
    nz_ctx c = {1, {2}, true};
    kt_gradcheck("normalize", nz_fn, 1, &x, &c, 1e-6, 1e-6);
    kt_gradcheck("normalize", nz_y_fn, 1, &x, &c, 1e-6, 1e-6);
    c = (nz_ctx){2, {0, 2}, true};
    kt_gradcheck("normalize", nz_fn, 1, &x, &c, 1e-6, 1e-6);
    c = (nz_ctx){1, {1}, false};
    kt_gradcheck("normalize", nz_fn, 1, &x, &c, 1e-6, 1e-6);
    kn_tensor_unref(x);
}

/* ---- layer_norm, rms_norm */
static void test_layer_norm(void)
{
    for (int k = 0; k < 3; k++) {
        kn_tensor *x = kt_from_array(&ln_x, dts[k]), *g = kt_from_array(&ln_gamma, dts[k]);
        kn_tensor *b = kt_from_array(&ln_beta, dts[k]);
        kn_tensor *y = kn_layer_norm(x, 2, g, b, 1e-5), *y1 = kn_layer_norm(x, 1, NULL, NULL, 1e-3);
        kt_check_array("layer_norm", y, &ln_y, tols[k], tols[k]);
        kt_check_array("layer_norm", y1, &ln1_y, tols[k], tols[k]);
        KT_CHECK(y && kn_tensor_dtype(y) == dts[k], "dtype kept");
        unref3(x, g, b), kn_tensor_unref(y), kn_tensor_unref(y1);
    }
    kn_tensor *xs = strided(&ln_x, KN_F32), *g = kt_from_array(&ln_gamma, KN_F32);
    kn_tensor *b = kt_from_array(&ln_beta, KN_F32), *y = kn_layer_norm(xs, 2, g, b, 1e-5);
    kt_check_array("layer_norm", y, &ln_y, 1e-5, 1e-5);
    unref3(xs, g, b), kn_tensor_unref(y);
    for (int k = 0; k < 3; k++) {
        kn_tensor *x = kt_from_array(&rms_x, dts[k]), *gm = kt_from_array(&rms_gamma, dts[k]);
        kn_tensor *yr = kn_rms_norm(x, 1, gm, 1e-6);
        kt_check_array("rms_norm", yr, &rms_y, tols[k], tols[k]);
        unref3(x, gm, yr);
    }
    /* empty batch */
    kn_tensor *e = kn_tensor_zeros(KN_F32, 2, (int64_t[]){0, 5}),
              *ye = kn_layer_norm(e, 1, NULL, NULL, 1e-5);
    KT_CHECK(ye && kn_tensor_numel(ye) == 0, "empty batch");
    kn_tensor_unref(e), kn_tensor_unref(ye);
}

typedef struct nctx {
    int which, n;
    int64_t groups;
    bool training;
    kn_layout layout;
    kn_tensor *rm, *rv;
} nctx;

static kn_tensor *norm_fn(kn_tensor *const *in, void *arg)
{
    nctx *c = arg;
    switch (c->which) {
    case 0:
        return kn_layer_norm(in[0], c->n, in[1], in[2], 1e-5);
    case 1:
        return kn_rms_norm(in[0], c->n, in[1], 1e-6);
    case 2:
        return kn_group_norm(in[0], c->groups, in[1], in[2], 1e-5);
    case 3:
        return kn_instance_norm(in[0], in[1], in[2], 1e-5);
    default:
        return kn_batch_norm(in[0], in[1], in[2], c->rm, c->rv, c->training, 0.1, 1e-5, c->layout);
    }
}

static void gc(const char *name, nctx *c, int nx, const int64_t *sx, int np, const int64_t *sp,
               int n_params)
{
    kn_tensor *in[3] = {kt_rand(nx, sx, -1, 1, 21), NULL, NULL};
    for (int i = 1; i <= n_params; i++)
        in[i] = kt_rand(np, sp, 0.5, 1.5, 21 + (uint64_t)i);
    kt_gradcheck(name, norm_fn, 3, in, c, 1e-6, 1e-6);
    unref3(in[0], in[1], in[2]);
}

static void test_norm_gradcheck(void)
{
    nctx c = {.which = 0, .n = 2};
    gc("layer_norm", &c, 3, (int64_t[]){2, 3, 4}, 2, (int64_t[]){3, 4}, 2);
    c.n = 1;
    gc("layer_norm", &c, 2, (int64_t[]){3, 5}, 0, NULL, 0);
    c.which = 1, c.n = 1;
    gc("rms_norm", &c, 2, (int64_t[]){3, 5}, 1, (int64_t[]){5}, 1);
    c.which = 2, c.groups = 2;
    gc("group_norm", &c, 4, (int64_t[]){2, 4, 2, 3}, 1, (int64_t[]){4}, 2);
    c.which = 3;
    gc("instance_norm", &c, 3, (int64_t[]){2, 3, 5}, 1, (int64_t[]){3}, 2);
}

static void test_group_instance(void)
{
    for (int k = 0; k < 3; k++) {
        kn_tensor *x = kt_from_array(&gn_x, dts[k]), *g = kt_from_array(&gn_gamma, dts[k]);
        kn_tensor *b = kt_from_array(&gn_beta, dts[k]), *y = kn_group_norm(x, 3, g, b, 1e-5);
        kt_check_array("group_norm", y, &gn_y, tols[k], tols[k]);
        unref3(x, g, b), kn_tensor_unref(y);
        x = kt_from_array(&in_x, dts[k]), g = kt_from_array(&in_gamma, dts[k]);
        b = kt_from_array(&in_beta, dts[k]), y = kn_instance_norm(x, g, b, 1e-5);
        kt_check_array("instance_norm", y, &in_y, tols[k], tols[k]);
        unref3(x, g, b), kn_tensor_unref(y);
    }
    kn_tensor *xs = strided(&gn3_x, KN_F64), *y = kn_group_norm(xs, 2, NULL, NULL, 1e-5);
    kt_check_array("group_norm", y, &gn3_y, 2e-8, 1e-9);
    kn_tensor_unref(xs), kn_tensor_unref(y);
    kn_tensor *xi = strided(&in_x, KN_F32), *gi = kt_from_array(&in_gamma, KN_F32);
    kn_tensor *bi = kt_from_array(&in_beta, KN_F32), *yi = kn_instance_norm(xi, gi, bi, 1e-5);
    kt_check_array("instance_norm", yi, &in_y, 1e-5, 1e-5);
    unref3(xi, gi, bi), kn_tensor_unref(yi);
    kn_tensor *e = kn_tensor_zeros(KN_F32, 3, (int64_t[]){0, 4, 3}),
              *ye = kn_group_norm(e, 2, NULL, NULL, 1e-5);
    KT_CHECK(ye && kn_tensor_numel(ye) == 0, "empty batch: %s", kn_last_error());
    kn_tensor_unref(e), kn_tensor_unref(ye);
}

/* ---- batch_norm */
static void test_batch_norm(void)
{
    for (int k = 0; k < 3; k++) {
        kn_tensor *x = kt_from_array(&bn_x, dts[k]), *g = kt_from_array(&bn_gamma, dts[k]);
        kn_tensor *b = kt_from_array(&bn_beta, dts[k]);
        kn_tensor *rm = kt_from_array(&bn_rm, KN_F32), *rv = kt_from_array(&bn_rv, KN_F32);
        uint64_t v0 = kn_tensor_version(rm);
        kn_tensor *y = kn_batch_norm(x, g, b, rm, rv, true, 0.1, 1e-5, KN_LAYOUT_NCHW);
        kt_check_array("batch_norm", y, &bn_train_y, tols[k], tols[k]);
        double rt = k == 2 ? 5e-3 : 1e-6;
        kt_check_array("batch_norm", rm, &bn_rm_new, rt, rt);
        kt_check_array("batch_norm", rv, &bn_rv_new, rt, rt);
        KT_CHECK(kn_tensor_version(rm) != v0, "running stats updated in place");
        kn_tensor_unref(y);
        /* inference with the original running stats */
        kn_tensor *rm0 = kt_from_array(&bn_rm, dts[k]), *rv0 = kt_from_array(&bn_rv, dts[k]);
        y = kn_batch_norm(x, g, b, rm0, rv0, false, 0.1, 1e-5, KN_LAYOUT_NCHW);
        kt_check_array("batch_norm", y, &bn_eval_y, tols[k], tols[k]);
        KT_CHECK(y && kn_tensor_dtype(y) == dts[k], "dtype kept");
        kt_check_array("batch_norm", rm0, &bn_rm, tols[k], tols[k]); /* untouched */
        unref3(x, g, b), unref3(rm, rv, y), kn_tensor_unref(rm0), kn_tensor_unref(rv0);
    }
    /* NHWC, training and inference; strided NCHW view */
    kn_tensor *x = t64(&bn_x_nhwc), *g = t64(&bn_gamma), *b = t64(&bn_beta);
    kn_tensor *rm = t64(&bn_rm), *rv = t64(&bn_rv);
    kn_tensor *y = kn_batch_norm(x, g, b, rm, rv, true, 0.1, 1e-5, KN_LAYOUT_NHWC);
    kt_check_array("batch_norm", y, &bn_train_y_nhwc, 2e-8, 1e-9);
    kt_check_array("batch_norm", rv, &bn_rv_new, 2e-8, 1e-9);
    kn_tensor_unref(y), kn_tensor_unref(rm), kn_tensor_unref(rv);
    rm = t64(&bn_rm), rv = t64(&bn_rv);
    y = kn_batch_norm(x, g, b, rm, rv, false, 0.1, 1e-5, KN_LAYOUT_NHWC);
    kt_check_array("batch_norm", y, &bn_eval_y_nhwc, 2e-8, 1e-9);
    kn_tensor_unref(y), kn_tensor_unref(x);
    x = strided(&bn_x, KN_F64);
    y = kn_batch_norm(x, g, b, NULL, NULL, true, 0.1, 1e-5, KN_LAYOUT_NCHW);
    kt_check_array("batch_norm", y, &bn_train_y, 2e-8, 1e-9);
    unref3(x, y, g), unref3(b, rm, rv);
    /* (N, C) without parameters or running stats */
    x = t64(&bn2_x), y = kn_batch_norm(x, NULL, NULL, NULL, NULL, true, 0.1, 1e-5, KN_LAYOUT_NCHW);
    kt_check_array("batch_norm", y, &bn2_y, 2e-8, 1e-9);
    kn_tensor_unref(x), kn_tensor_unref(y);
}

static void test_batch_norm_grad(void)
{
    int64_t sx[4] = {3, 2, 2, 3}, sc[1] = {2};
    kn_tensor *rm = kn_tensor_zeros(KN_F64, 1, sc), *rv = kn_tensor_ones(KN_F64, 1, sc);
    nctx c = {.which = 4, .training = true, .rm = rm, .rv = rv};
    gc("batch_norm", &c, 4, sx, 1, sc, 2);
    c.layout = KN_LAYOUT_NHWC;
    gc("batch_norm", &c, 4, (int64_t[]){3, 2, 2, 2}, 1, sc, 2);
    c.training = false, c.layout = KN_LAYOUT_NCHW;
    gc("batch_norm", &c, 4, sx, 1, sc, 2);
    /* no gradient reaches the running statistics */
    kn_tensor *x = kt_rand(4, sx, -1, 1, 3);
    kn_tensor_set_requires_grad(x, true), kn_tensor_set_requires_grad(rm, true);
    kn_autograd_record(true);
    kn_tensor *y = kn_batch_norm(x, NULL, NULL, rm, rv, false, 0.1, 1e-5, KN_LAYOUT_NCHW);
    kn_tensor *l = kn_sum(y, 0, NULL, false);
    kn_autograd_record(false);
    KT_OK(kn_backward(l, NULL));
    KT_CHECK(kn_tensor_grad(rm) == NULL && kn_tensor_grad(x) != NULL,
             "running_mean gets no gradient");
    unref3(x, y, l), kn_tensor_unref(rm), kn_tensor_unref(rv);
}

/* ---- softmax, log_softmax */
static void test_softmax(void)
{
    const kt_array *sm[3] = {&sm_y0, &sm_y1, &sm_y2}, *lsm[3] = {&lsm_y0, &lsm_y1, &lsm_y2};
    for (int k = 0; k < 3; k++) {
        kn_tensor *x = kt_from_array(&sm_x, dts[k]);
        for (int ax = 0; ax < 3; ax++) {
            kn_tensor *a = kn_softmax(x, ax), *b = kn_log_softmax(x, ax - 3);
            kt_check_array("softmax", a, sm[ax], tols[k], tols[k]);
            kt_check_array("log_softmax", b, lsm[ax], tols[k], tols[k]);
            kn_tensor_unref(a), kn_tensor_unref(b);
        }
        kn_tensor_unref(x);
    }
    kn_tensor *xs = strided(&sm_x, KN_F64), *a = kn_softmax(xs, 1), *b = kn_log_softmax(xs, 1);
    kt_check_array("softmax", a, &sm_y1, 2e-8, 1e-9);
    kt_check_array("log_softmax", b, &lsm_y1, 2e-8, 1e-9);
    unref3(xs, a, b);
    /* large values: stable */
    kn_tensor *x = t64(&sm_x), *big = kn_mul_scalar(x, 300);
    a = kn_softmax(big, -1), b = kn_log_softmax(big, -1);
    kt_check_array("softmax", a, &smb_y, 2e-8, 1e-9);
    kt_check_array("log_softmax", b, &lsmb_y, 2e-8, 1e-6);
    unref3(x, big, a), kn_tensor_unref(b);
    /* a 0-d input and an empty axis */
    kn_tensor *s = kn_tensor_scalar(KN_F32, 3), *ys = kn_softmax(s, 0);
    double v = 0;
    KT_CHECK(ys && !kn_tensor_item(ys, &v) && v == 1, "softmax of a scalar is 1");
    kn_tensor *e = kn_tensor_zeros(KN_F32, 2, (int64_t[]){3, 0}), *ye = kn_log_softmax(e, 1);
    KT_CHECK(ye && kn_tensor_numel(ye) == 0, "empty");
    unref3(s, ys, e), kn_tensor_unref(ye);
}

static int sm_axis;
static kn_tensor *sm_fn(kn_tensor *const *in, void *arg)
{
    return arg ? kn_log_softmax(in[0], sm_axis) : kn_softmax(in[0], sm_axis);
}

static void test_softmax_grad(void)
{
    int64_t s[3] = {2, 3, 4};
    kn_tensor *x = kt_rand(3, s, -2, 2, 31);
    for (sm_axis = -1; sm_axis < 2; sm_axis++) {
        kt_gradcheck("softmax", sm_fn, 1, &x, NULL, 1e-6, 1e-6);
        kt_gradcheck("log_softmax", sm_fn, 1, &x, (void *)1, 1e-6, 1e-6);
    }
    kn_tensor_unref(x);
}

/* ---- dropout */
static void test_dropout(void)
{
    int64_t s[2] = {100, 100};
    kn_tensor *x = kn_tensor_ones(KN_F32, 2, s);
    kn_manual_seed(7);
    kn_tensor *y = kn_dropout(x, 0.3, true);
    KT_NOTNULL(y);
    int64_t kept = 0, bad = 0, idx[2];
    for (idx[0] = 0; y && idx[0] < 100; idx[0]++)
        for (idx[1] = 0; idx[1] < 100; idx[1]++) {
            double v;
            kn_tensor_get(y, idx, &v);
            if (v != 0) kept++;
            if (v != 0 && fabs(v - 1 / 0.7) > 1e-6) bad++;
        }
    KT_CHECK(fabs(kept / 1e4 - 0.7) < 0.02, "fraction kept %g, expected 0.7", kept / 1e4);
    KT_CHECK(bad == 0, "kept values are scaled by 1/(1-p)");
    kt_mark("dropout", KT_FWD);
    /* reproducible from the seed, on 1 and 2 threads */
    int threads = kn_get_num_threads();
    kn_set_num_threads(1);
    kn_manual_seed(7);
    kn_tensor *y1 = kn_dropout(x, 0.3, true);
    kn_set_num_threads(2);
    kn_manual_seed(7);
    kn_tensor *y2 = kn_dropout(x, 0.3, true);
    kn_tensor *y3 = kn_dropout(x, 0.3, true); /* the stream moved on */
    kn_set_num_threads(threads);
    KT_CHECK(kt_equal_bits(y, y1) && kt_equal_bits(y1, y2), "same mask for the same seed");
    KT_CHECK(!kt_equal_bits(y2, y3), "next call draws a new mask");
    unref3(y1, y2, y3);
    /* identity when not training or p == 0; zeros for p == 1 */
    kn_tensor *a = kn_dropout(x, 0.5, false), *b = kn_dropout(x, 0, true),
              *c = kn_dropout(x, 1, true);
    KT_CHECK(a == x && b == x, "identity");
    double sum = -1;
    kn_tensor *cs = c ? kn_sum(c, 0, NULL, false) : NULL;
    KT_CHECK(cs && !kn_tensor_item(cs, &sum) && sum == 0, "p = 1 drops everything");
    unref3(a, b, c), kn_tensor_unref(cs);
    /* f16 and a strided input keep the same mask positions */
    kn_tensor *x16 = kn_tensor_ones(KN_F16, 2, s);
    kn_manual_seed(7);
    kn_tensor *h = kn_dropout(x16, 0.3, true);
    int64_t differ = 0;
    for (idx[0] = 0; h && idx[0] < 100; idx[0]++)
        for (idx[1] = 0; idx[1] < 100; idx[1]++) {
            double u, v;
            kn_tensor_get(h, idx, &u), kn_tensor_get(y, idx, &v);
            differ += (u == 0) != (v == 0);
        }
    KT_CHECK(h && kn_tensor_dtype(h) == KN_F16 && differ == 0, "f16: same mask");
    kn_tensor *xc = t64(&rms_x), *xs = strided(&rms_x, KN_F64);
    kn_manual_seed(3);
    kn_tensor *dc = kn_dropout(xc, 0.5, true);
    kn_manual_seed(3);
    kn_tensor *ds = kn_dropout(xs, 0.5, true);
    KT_CHECK(kt_equal_bits(dc, ds), "strided input: same result");
    unref3(x16, h, xc), unref3(xs, dc, ds);
    kn_tensor_unref(y), kn_tensor_unref(x);
}

static kn_tensor *drop_fn(kn_tensor *const *in, void *arg)
{
    (void)arg;
    kn_manual_seed(99); /* the same mask on every evaluation */
    return kn_dropout(in[0], 0.4, true);
}

static void test_dropout_grad(void)
{
    int64_t s[2] = {4, 6};
    kn_tensor *x = kt_rand(2, s, -1, 1, 41);
    kt_gradcheck("dropout", drop_fn, 1, &x, NULL, 1e-6, 1e-6);
    /* grad = g * mask / (1 - p): with g = 1 it is y / x */
    kn_tensor_set_requires_grad(x, true);
    kn_autograd_record(true);
    kn_tensor *y = drop_fn(&x, NULL), *l = kn_sum(y, 0, NULL, false);
    kn_autograd_record(false);
    KT_OK(kn_backward(l, NULL));
    kn_tensor *q = kn_div(y, x);
    kn_tensor *g = kn_tensor_grad(x);
    int bad = 0, n0 = 0;
    int64_t idx[2];
    for (idx[0] = 0; q && g && idx[0] < 4; idx[0]++)
        for (idx[1] = 0; idx[1] < 6; idx[1]++) {
            double a, b;
            kn_tensor_get(q, idx, &a), kn_tensor_get(g, idx, &b);
            bad += fabs(a - b) > 1e-12;
            n0 += b == 0;
        }
    KT_CHECK(q && g && bad == 0 && n0 > 0 && n0 < 24, "dropout gradient is mask / (1-p)");
    unref3(y, l, q), kn_tensor_unref(x);
}

/* ---- bad inputs */
static void test_bad_inputs(void)
{
    int64_t s3[3] = {2, 4, 3}, s4[1] = {4}, s5[1] = {5};
    kn_tensor *x = kn_tensor_zeros(KN_F32, 3, s3), *xi = kn_tensor_zeros(KN_I32, 3, s3);
    kn_tensor *x64 = kn_tensor_zeros(KN_F64, 3, s3), *c4 = kn_tensor_ones(KN_F32, 1, s4);
    kn_tensor *c5 = kn_tensor_ones(KN_F32, 1, s5), *c4d = kn_tensor_ones(KN_F64, 1, s4);
    kn_tensor *x1 = kn_tensor_zeros(KN_F32, 1, s4), *s = kn_tensor_scalar(KN_F32, 1);
    kn_tensor *one = kn_tensor_zeros(KN_F32, 3, (int64_t[]){1, 4, 1});
    kn_tensor *big = kn_tensor_symbolic(KN_F32, 3, (int64_t[]){1 << 20, 1 << 20, 1 << 18});
    kn_tensor *g3 = kn_tensor_ones(KN_F32, 2, (int64_t[]){4, 3});
    const char *ln = "layer_norm", *rn = "rms_norm", *gn = "group_norm", *in = "instance_norm";
    const char *bn = "batch_norm", *nz = "normalize";
    kt_expect_fail(ln, kn_layer_norm(NULL, 1, NULL, NULL, 1e-5), "NULL");
    kt_expect_fail(ln, kn_layer_norm(xi, 1, NULL, NULL, 1e-5), "dtype");
    kt_expect_fail(ln, kn_layer_norm(x, 0, NULL, NULL, 1e-5), "n_axes");
    kt_expect_fail(ln, kn_layer_norm(x, 4, NULL, NULL, 1e-5), "n_axes");
    kt_expect_fail(ln, kn_layer_norm(x, 1, c4, NULL, 1e-5), "gamma");
    kt_expect_fail(ln, kn_layer_norm(x, 2, c4, NULL, 1e-5), "gamma");
    kt_expect_fail(ln, kn_layer_norm(x, 2, g3, c4, 1e-5), "beta");
    kt_expect_fail(ln, kn_layer_norm(x64, 2, g3, NULL, 1e-5), "dtype");
    kt_expect_fail(ln, kn_layer_norm(x, 1, NULL, NULL, -1), "eps");
    kt_expect_fail(ln, kn_layer_norm(x, 1, NULL, NULL, NAN), "eps");
    kt_expect_fail(rn, kn_rms_norm(NULL, 1, NULL, 1e-5), "NULL");
    kt_expect_fail(rn, kn_rms_norm(x, 1, c5, 1e-5), "gamma");
    kt_expect_fail(rn, kn_rms_norm(s, 1, NULL, 1e-5), "n_axes");
    kt_expect_fail(gn, kn_group_norm(NULL, 2, NULL, NULL, 1e-5), "NULL");
    kt_expect_fail(gn, kn_group_norm(x, 3, NULL, NULL, 1e-5), "groups");
    kt_expect_fail(gn, kn_group_norm(x, 0, NULL, NULL, 1e-5), "groups");
    kt_expect_fail(gn, kn_group_norm(x1, 1, NULL, NULL, 1e-5), "dims");
    kt_expect_fail(gn, kn_group_norm(x, 2, c5, NULL, 1e-5), "gamma");
    kt_expect_fail(gn, kn_group_norm(xi, 2, NULL, NULL, 1e-5), "dtype");
    kt_expect_fail(in, kn_instance_norm(NULL, NULL, NULL, 1e-5), "NULL");
    kt_expect_fail(in, kn_instance_norm(g3, NULL, NULL, 1e-5), "dims");
    kt_expect_fail(in, kn_instance_norm(x, NULL, c5, 1e-5), "beta");
    kt_expect_fail(in, kn_instance_norm(x, c4d, NULL, 1e-5), "dtype");
    kt_expect_fail(bn, kn_batch_norm(NULL, NULL, NULL, NULL, NULL, true, 0.1, 1e-5, KN_LAYOUT_NCHW),
                   "NULL");
    kt_expect_fail(bn, kn_batch_norm(x1, NULL, NULL, NULL, NULL, true, 0.1, 1e-5, KN_LAYOUT_NCHW),
                   "dims");
    kt_expect_fail(bn, kn_batch_norm(xi, NULL, NULL, NULL, NULL, true, 0.1, 1e-5, KN_LAYOUT_NCHW),
                   "dtype");
    kt_expect_fail(bn, kn_batch_norm(x, c5, NULL, NULL, NULL, true, 0.1, 1e-5, KN_LAYOUT_NCHW),
                   "gamma");
    kt_expect_fail(bn, kn_batch_norm(x, c4, NULL, NULL, NULL, true, 0.1, 1e-5, KN_LAYOUT_NHWC),
                   "gamma");
    kt_expect_fail(bn, kn_batch_norm(x, NULL, NULL, c4, NULL, true, 0.1, 1e-5, KN_LAYOUT_NCHW),
                   "running");
    kt_expect_fail(bn, kn_batch_norm(x, NULL, NULL, c4, c5, true, 0.1, 1e-5, KN_LAYOUT_NCHW),
                   "running_var");
    kt_expect_fail(bn, kn_batch_norm(x, NULL, NULL, NULL, NULL, false, 0.1, 1e-5, KN_LAYOUT_NCHW),
                   "inference");
    kt_expect_fail(bn, kn_batch_norm(x, NULL, NULL, NULL, NULL, true, 0.1, 1e-5, (kn_layout)4),
                   "layout");
    kt_expect_fail(bn, kn_batch_norm(x, NULL, NULL, NULL, NULL, true, NAN, 1e-5, KN_LAYOUT_NCHW),
                   "momentum");
    kt_expect_fail(bn, kn_batch_norm(x, NULL, NULL, NULL, NULL, true, 0.1, -1, KN_LAYOUT_NCHW),
                   "eps");
    kt_expect_fail(bn, kn_batch_norm(one, NULL, NULL, NULL, NULL, true, 0.1, 1e-5, KN_LAYOUT_NCHW),
                   "more than 1");
    kn_tensor *o[3];
    kt_expect_fail_status(nz, run_normalize(x, 0, NULL, 1e-5, true, o), "axes");
    kt_expect_fail_status(nz, run_normalize(x, 1, (const int[]){3}, 1e-5, true, o), "range");
    kt_expect_fail_status(nz, run_normalize(x, 2, (const int[]){1, -2}, 1e-5, true, o), "twice");
    kt_expect_fail_status(nz, run_normalize(xi, 1, (const int[]){1}, 1e-5, true, o), "dtype");
    kt_expect_fail_status(nz, run_normalize(NULL, 1, (const int[]){1}, 1e-5, true, o), "NULL");
    kt_expect_fail_status(nz, run_normalize(x, 1, (const int[]){1}, -1e-5, true, o), "eps");
    kt_expect_fail("softmax", kn_softmax(NULL, 0), "NULL");
    kt_expect_fail("softmax", kn_softmax(x, 3), "axis");
    kt_expect_fail("softmax", kn_softmax(xi, 0), "dtype");
    kt_expect_fail("log_softmax", kn_log_softmax(x, -4), "axis");
    kt_expect_fail("log_softmax", kn_log_softmax(NULL, 0), "NULL");
    kt_expect_fail("log_softmax", kn_log_softmax(xi, 0), "dtype");
    kt_expect_fail("dropout", kn_dropout(NULL, 0.5, true), "NULL");
    kt_expect_fail("dropout", kn_dropout(x, -0.1, true), "p is");
    kt_expect_fail("dropout", kn_dropout(x, 1.5, false), "p is");
    kt_expect_fail("dropout", kn_dropout(x, NAN, true), "p is");
    kt_expect_fail("dropout", kn_dropout(xi, 0.5, true), "dtype");
    /* symbolic inputs: shapes only, no kernel runs (huge shapes are fine) */
    kn_tensor *sy = kn_layer_norm(big, 1, NULL, NULL, 1e-5);
    KT_CHECK(sy && kn_tensor_is_symbolic(sy), "symbolic layer_norm: %s", kn_last_error());
    kn_tensor *sb = kn_softmax(big, 1);
    KT_CHECK(sb && kn_tensor_is_symbolic(sb), "symbolic softmax");
    kn_tensor_unref(sy), kn_tensor_unref(sb);
    unref3(x, xi, x64), unref3(c4, c5, c4d), unref3(x1, s, one), kn_tensor_unref(big);
    kn_tensor_unref(g3);
}

/* Allocation failure at every point of layer_norm + softmax + backward. */
static kn_status walk_norm(void *ctx)
{
    (void)ctx;
    int64_t s[2] = {3, 4}, sg[1] = {4};
    kn_tensor *x = kn_tensor_ones(KN_F32, 2, s), *g = kn_tensor_ones(KN_F32, 1, sg);
    kn_tensor *y = NULL, *z = NULL, *l = NULL;
    kn_status st = x && g ? KN_OK : kn_last_status();
    if (!st) {
        kn_tensor_set_requires_grad(x, true);
        kn_tensor_set_requires_grad(g, true);
        kn_autograd_record(true);
        y = kn_layer_norm(x, 1, g, NULL, 1e-5);
        z = y ? kn_log_softmax(y, 0) : NULL;
        l = z ? kn_sum(z, 0, NULL, false) : NULL;
        kn_autograd_record(false);
        st = l ? kn_backward(l, NULL) : kn_last_status();
    }
    unref3(x, g, y), kn_tensor_unref(z), kn_tensor_unref(l);
    return st;
}

static kn_status walk_bn(void *ctx)
{
    (void)ctx;
    int64_t s[3] = {3, 2, 2}, sc[1] = {2};
    kn_tensor *x = kn_tensor_ones(KN_F32, 3, s), *rm = kn_tensor_zeros(KN_F32, 1, sc);
    kn_tensor *rv = kn_tensor_ones(KN_F32, 1, sc);
    kn_tensor *y = x && rm && rv
                       ? kn_batch_norm(x, NULL, NULL, rm, rv, true, 0.1, 1e-5, KN_LAYOUT_NCHW)
                       : NULL;
    kn_status st = y ? KN_OK : kn_last_status();
    unref3(x, rm, rv), kn_tensor_unref(y);
    return st;
}

static void test_alloc_walk(void)
{
    KT_CHECK(kt_alloc_walk("norm", walk_norm, NULL) > 5, "walked layer_norm");
    KT_CHECK(kt_alloc_walk("batch_norm", walk_bn, NULL) > 3, "walked batch_norm");
}

int main(void)
{
    KT_RUN(test_normalize_values);
    KT_RUN(test_normalize_grad);
    KT_RUN(test_layer_norm);
    KT_RUN(test_norm_gradcheck);
    KT_RUN(test_group_instance);
    KT_RUN(test_batch_norm);
    KT_RUN(test_batch_norm_grad);
    KT_RUN(test_softmax);
    KT_RUN(test_softmax_grad);
    KT_RUN(test_dropout);
    KT_RUN(test_dropout_grad);
    KT_RUN(test_bad_inputs);
    KT_RUN(test_alloc_walk);
    return kt_finish();
}
