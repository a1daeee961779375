/* test_pool.c — the pool family: max/avg pooling (1-3 spatial dims, pads,
 * ceil_mode, count_include_pad), global and adaptive pools, nearest and
 * bilinear upsampling, in NCHW, NHWC and strided views, against PyTorch
 * (tests/golden/pool.h); gradients by finite differences; the internal
 * gradient ops max_pool_grad and resample_grad; bad inputs. */
#include "harness.h"
#include "ops/pool.h"

#include "golden/pool.h"

static kn_tensor *t64(const kt_array *a)
{
    return kt_from_array(a, KN_F64);
}

/* A non-contiguous NCHW view of data stored as NHWC (golden *_nhwc). */
static kn_tensor *nchw_view(const kt_array *nhwc, kn_dtype dt)
{
    kn_tensor *base = kt_from_array(nhwc, dt);
    int nd = nhwc->ndim;
    int64_t shape[KN_MAX_DIMS], strides[KN_MAX_DIMS];
    const int64_t *bs = kn_tensor_strides(base);
    shape[0] = nhwc->shape[0], strides[0] = bs[0];
    shape[1] = nhwc->shape[nd - 1], strides[1] = bs[nd - 1];
    for (int d = 1; d < nd - 1; d++)
        shape[d + 1] = nhwc->shape[d], strides[d + 1] = bs[d];
    kn_tensor *v = kn__tensor_view(base, nd, shape, strides, 0);
    kn_tensor_unref(base);
    return v;
}

static kn_pool_params win2(int64_t k0, int64_t k1, int64_t s0, int64_t s1, int64_t p0, int64_t p1)
{
    return (kn_pool_params){
        .kernel = {k0, k1}, .stride = {s0, s1}, .pad_begin = {p0, p1}, .pad_end = {p0, p1}};
}

/* y = op(x) checked in f64 and f32 (and f16 with a loose tolerance). */
typedef kn_tensor *(*unary_op)(kn_tensor *x, const void *ctx);

static void check_op(const char *name, unary_op f, const void *ctx, const kt_array *x,
                     const kt_array *y)
{
    static const kn_dtype dts[3] = {KN_F64, KN_F32, KN_F16};
    static const double tol[3] = {2e-8, 2e-6, 8e-3};
    for (int i = 0; i < 3; i++) {
        kn_tensor *xt = kt_from_array(x, dts[i]);
        kn_tensor *yt = f(xt, ctx);
        kt_check_array(name, yt, y, tol[i], tol[i]);
        KT_CHECK(yt && kn_tensor_dtype(yt) == dts[i], "%s keeps dtype", name);
        kn_tensor_unref(xt), kn_tensor_unref(yt);
    }
}

static kn_tensor *do_max(kn_tensor *x, const void *p)
{
    return kn_max_pool(x, p);
}
static kn_tensor *do_avg(kn_tensor *x, const void *p)
{
    return kn_avg_pool(x, p);
}

/* Forward y = op(x) and grad_x for upstream g, through kn_backward (which
 * runs max_pool_grad or resample_grad). */
static void check_grad_values(const char *grad_op, unary_op f, const void *ctx, const kt_array *x,
                              const kt_array *g, const kt_array *gx)
{
    kn_tensor *xt = t64(x), *gt = t64(g);
    kn_tensor_set_requires_grad(xt, true);
    kn_autograd_record(true);
    kn_tensor *y = f(xt, ctx);
    kn_autograd_record(false);
    KT_NOTNULL(y);
    if (y) KT_OK(kn_backward(y, gt));
    kt_check_array(grad_op, kn_tensor_grad(xt), gx, 2e-8, 1e-9);
    kn_tensor_unref(y), kn_tensor_unref(xt), kn_tensor_unref(gt);
}

static void test_max_pool_values(void)
{
    kn_pool_params p = win2(3, 2, 2, 2, 1, 0);
    check_op("max_pool", do_max, &p, &mp2_x, &mp2_y);
    /* NHWC, and a strided NCHW view */
    p.layout = KN_LAYOUT_NHWC;
    check_op("max_pool", do_max, &p, &mp2_x_nhwc, &mp2_y_nhwc);
    p.layout = KN_LAYOUT_NCHW;
    kn_tensor *v = nchw_view(&mp2_x_nhwc, KN_F32), *y = kn_max_pool(v, &p);
    KT_CHECK(!kn_tensor_is_contiguous(v), "view is strided");
    kt_check_array("max_pool", y, &mp2_y, 1e-6, 1e-6);
    kn_tensor_unref(v), kn_tensor_unref(y);
    /* ceil_mode: the last window starts inside the input */
    kn_pool_params pc = win2(3, 3, 2, 2, 1, 1);
    pc.ceil_mode = true;
    check_op("max_pool", do_max, &pc, &mpc_x, &mpc_y);
    /* 1-d with asymmetric pads, 3-d */
    kn_pool_params p1 = {.kernel = {4}, .stride = {3}, .pad_begin = {1}, .pad_end = {2}};
    check_op("max_pool", do_max, &p1, &mp1_x, &mp1_y);
    kn_pool_params p3 = {.kernel = {2, 3, 2}, .stride = {2, 2, 1}};
    check_op("max_pool", do_max, &p3, &mp3_x, &mp3_y);
    /* stride 0 means kernel; bf16 */
    kn_pool_params p0 = {.kernel = {2, 2, 2}, .stride = {2, 2, 1}};
    kn_tensor *x3 = kt_from_array(&mp3_x, KN_BF16);
    kn_tensor *a = kn_max_pool(x3, &p3);
    kt_check_array("max_pool", a, &mp3_y, 8e-3, 8e-3);
    kn_tensor *b = kn_max_pool(x3, &p0);
    p0.stride[2] = 0, p0.kernel[2] = 1;
    kn_tensor *c = kn_max_pool(x3, &p0);
    KT_CHECK(c && kn_tensor_dim(c, 4) == 5, "stride 0 = kernel (1)");
    KT_CHECK(b && kn_tensor_dim(b, 2) == 2 && kn_tensor_dim(b, 4) == 4, "output shape");
    kn_tensor_unref(x3), kn_tensor_unref(a), kn_tensor_unref(b), kn_tensor_unref(c);
    /* an empty batch */
    int64_t s0[4] = {0, 3, 5, 5};
    kn_tensor *e = kn_tensor_zeros(KN_F32, 4, s0), *ye = kn_max_pool(e, &p);
    KT_CHECK(ye && kn_tensor_dim(ye, 0) == 0 && kn_tensor_dim(ye, 2) == 3, "empty batch");
    kn_tensor_unref(e), kn_tensor_unref(ye);
}

static void test_avg_pool_values(void)
{
    kn_pool_params p = win2(3, 3, 2, 2, 1, 1);
    p.count_include_pad = true;
    check_op("avg_pool", do_avg, &p, &ap2_x, &ap2inc_y);
    p.layout = KN_LAYOUT_NHWC;
    check_op("avg_pool", do_avg, &p, &ap2_x_nhwc, &ap2inc_y_nhwc);
    p.layout = KN_LAYOUT_NCHW, p.count_include_pad = false;
    check_op("avg_pool", do_avg, &p, &ap2_x, &ap2exc_y);
    kn_tensor *v = nchw_view(&ap2_x_nhwc, KN_F64), *y = kn_avg_pool(v, &p);
    kt_check_array("avg_pool", y, &ap2exc_y, 2e-8, 1e-9);
    kn_tensor_unref(v), kn_tensor_unref(y);
    /* ceil_mode: windows past the padded input count only up to it */
    p.ceil_mode = true;
    check_op("avg_pool", do_avg, &p, &apc_x, &apcexc_y);
    p.count_include_pad = true;
    check_op("avg_pool", do_avg, &p, &apc_x, &apcinc_y);
    kn_pool_params p1 = {.kernel = {4}, .stride = {3}, .pad_begin = {1}, .pad_end = {2}};
    check_op("avg_pool", do_avg, &p1, &ap1_x, &ap1exc_y);
    p1.count_include_pad = true;
    check_op("avg_pool", do_avg, &p1, &ap1_x, &ap1inc_y);
    kn_pool_params p3 = {.kernel = {2, 3, 2},
                         .stride = {2, 2, 1},
                         .pad_begin = {1, 1, 0},
                         .pad_end = {1, 1, 0},
                         .count_include_pad = true};
    check_op("avg_pool", do_avg, &p3, &ap3_x, &ap3_y);
}

static void test_pool_grad_values(void)
{
    kn_pool_params p = win2(3, 2, 2, 2, 1, 0);
    check_grad_values("max_pool_grad", do_max, &p, &mp2_x, &mp2_g, &mp2_gx);
    kn_pool_params pc = win2(3, 3, 2, 2, 1, 1);
    pc.ceil_mode = true;
    check_grad_values("max_pool_grad", do_max, &pc, &mpc_x, &mpc_g, &mpc_gx);
    kn_pool_params p1 = {.kernel = {4}, .stride = {3}, .pad_begin = {1}, .pad_end = {2}};
    check_grad_values("max_pool_grad", do_max, &p1, &mp1_x, &mp1_g, &mp1_gx);
    kn_pool_params pa = win2(3, 3, 2, 2, 1, 1);
    pa.count_include_pad = true;
    check_grad_values("resample_grad", do_avg, &pa, &ap2_x, &ap2inc_g, &ap2inc_gx);
    pa.count_include_pad = false;
    check_grad_values("resample_grad", do_avg, &pa, &ap2_x, &ap2exc_g, &ap2exc_gx);
}

/* ---- global and adaptive pools, upsampling */
typedef struct resize_ctx {
    int64_t h, w;
    bool align;
    kn_layout layout;
    int which; /* 0 aavg, 1 amax, 2 nearest, 3 bilinear */
} resize_ctx;

static kn_tensor *do_resize(kn_tensor *x, const void *arg)
{
    const resize_ctx *r = arg;
    switch (r->which) {
    case 0:
        return kn_adaptive_avg_pool2d(x, r->h, r->w, r->layout);
    case 1:
        return kn_adaptive_max_pool2d(x, r->h, r->w, r->layout);
    case 2:
        return kn_upsample_nearest2d(x, r->h, r->w, r->layout);
    default:
        return kn_upsample_bilinear2d(x, r->h, r->w, r->align, r->layout);
    }
}

static const char *const resize_names[4] = {"adaptive_avg_pool2d", "adaptive_max_pool2d",
                                            "upsample_nearest2d", "upsample_bilinear2d"};

static void check_resize(int which, int64_t h, int64_t w, bool align, const kt_array *x,
                         const kt_array *x_nhwc, const kt_array *y, const kt_array *y_nhwc,
                         const kt_array *g, const kt_array *gx)
{
    resize_ctx r = {h, w, align, KN_LAYOUT_NCHW, which};
    check_op(resize_names[which], do_resize, &r, x, y);
    kn_tensor *v = nchw_view(x_nhwc, KN_F64), *yv = do_resize(v, &r);
    kt_check_array(resize_names[which], yv, y, 2e-8, 1e-9);
    kn_tensor_unref(v), kn_tensor_unref(yv);
    check_grad_values(which == 1 ? "max_pool_grad" : "resample_grad", do_resize, &r, x, g, gx);
    r.layout = KN_LAYOUT_NHWC;
    check_op(resize_names[which], do_resize, &r, x_nhwc, y_nhwc);
}

static void test_adaptive(void)
{
    check_resize(0, 3, 4, false, &ad_x, &ad_x_nhwc, &aavg_34_y, &aavg_34_y_nhwc, &aavg_34_g,
                 &aavg_34_gx);
    check_resize(0, 9, 5, false, &ad_x, &ad_x_nhwc, &aavg_95_y, &aavg_95_y_nhwc, &aavg_95_g,
                 &aavg_95_gx);
    check_resize(1, 3, 4, false, &ad_x, &ad_x_nhwc, &amax_34_y, &amax_34_y_nhwc, &amax_34_g,
                 &amax_34_gx);
    check_resize(1, 9, 5, false, &ad_x, &ad_x_nhwc, &amax_95_y, &amax_95_y_nhwc, &amax_95_g,
                 &amax_95_gx);
}

static void test_upsample(void)
{
    check_resize(2, 7, 4, false, &up_x, &up_x_nhwc, &near_74_y, &near_74_y_nhwc, &near_74_g,
                 &near_74_gx);
    check_resize(2, 6, 10, false, &up_x, &up_x_nhwc, &near_610_y, &near_610_y_nhwc, &near_610_g,
                 &near_610_gx);
    check_resize(2, 2, 3, false, &up_x, &up_x_nhwc, &near_23_y, &near_23_y_nhwc, &near_23_g,
                 &near_23_gx);
#define BIL(ac, h, w)                                                                              \
    check_resize(3, h, w, ac, &up_x, &up_x_nhwc, &bil##ac##_##h##w##_y,                            \
                 &bil##ac##_##h##w##_y_nhwc, &bil##ac##_##h##w##_g, &bil##ac##_##h##w##_gx)
    BIL(0, 7, 4);
    BIL(1, 7, 4);
    BIL(0, 6, 10);
    BIL(1, 6, 10);
    BIL(0, 1, 1);
    BIL(1, 1, 1);
    BIL(0, 3, 5);
    BIL(1, 3, 5);
#undef BIL
    /* f32 inputs against PyTorch's f32 results (its index math is in float) */
    kn_tensor *x = kt_from_array(&up_x, KN_F32);
    kn_tensor *a = kn_upsample_bilinear2d(x, 7, 4, false, KN_LAYOUT_NCHW);
    kn_tensor *b = kn_upsample_nearest2d(x, 7, 4, KN_LAYOUT_NCHW);
    kt_check_array("upsample_bilinear2d", a, &bil0_74_y32, 1e-6, 1e-6);
    kt_check_array("upsample_nearest2d", b, &near_74_y32, 2e-8, 0);
    kn_tensor_unref(x), kn_tensor_unref(a), kn_tensor_unref(b);
}

static void test_global(void)
{
    kn_tensor *x = t64(&gp_x), *xn = t64(&gp_x_nhwc), *x1 = t64(&gp1_x);
    kn_tensor *a = kn_global_avg_pool(x, KN_LAYOUT_NCHW),
              *b = kn_global_max_pool(x, KN_LAYOUT_NCHW);
    kt_check_array("global_avg_pool", a, &gavg_y, 2e-8, 1e-9);
    kt_check_array("global_max_pool", b, &gmax_y, 2e-8, 0);
    kn_tensor *c = kn_global_avg_pool(xn, KN_LAYOUT_NHWC),
              *d = kn_global_max_pool(xn, KN_LAYOUT_NHWC);
    kt_check_values("global_avg_pool", c, 4, (int64_t[]){2, 1, 1, 3}, gavg_y.data, 2e-8, 1e-9);
    kt_check_values("global_max_pool", d, 4, (int64_t[]){2, 1, 1, 3}, gmax_y.data, 2e-8, 0);
    kn_tensor *e = kn_global_avg_pool(x1, KN_LAYOUT_NCHW);
    kt_check_array("global_avg_pool", e, &gavg1_y, 2e-8, 1e-9);
    kn_tensor *h = kt_from_array(&gp_x, KN_F16), *hy = kn_global_avg_pool(h, KN_LAYOUT_NCHW);
    kt_check_array("global_avg_pool", hy, &gavg_y, 5e-3, 5e-3);
    kn_tensor_unref(x), kn_tensor_unref(xn), kn_tensor_unref(x1), kn_tensor_unref(a);
    kn_tensor_unref(b), kn_tensor_unref(c), kn_tensor_unref(d), kn_tensor_unref(e);
    kn_tensor_unref(h), kn_tensor_unref(hy);
}

/* ---- gradient checks (f64, central differences) */
typedef struct gc_ctx {
    int op; /* 0 max, 1 avg, 2 global avg, 3 global max, 4.. resize */
    kn_pool_params p;
    resize_ctx r;
} gc_ctx;

static kn_tensor *gc_fn(kn_tensor *const *in, void *arg)
{
    const gc_ctx *c = arg;
    switch (c->op) {
    case 0:
        return kn_max_pool(in[0], &c->p);
    case 1:
        return kn_avg_pool(in[0], &c->p);
    case 2:
        return kn_global_avg_pool(in[0], c->p.layout);
    case 3:
        return kn_global_max_pool(in[0], c->p.layout);
    default:
        return do_resize(in[0], &c->r);
    }
}

static void gradcheck(const char *name, gc_ctx *c, int ndim, const int64_t *shape)
{
    kn_tensor *x = kt_rand(ndim, shape, -1, 1, 77);
    kt_gradcheck(name, gc_fn, 1, &x, c, 1e-6, 1e-6);
    kn_tensor_unref(x);
}

static void test_gradcheck(void)
{
    int64_t s4[4] = {2, 2, 5, 6}, s3[3] = {2, 3, 7}, s5[5] = {1, 2, 3, 4, 3}, sn[4] = {2, 5, 6, 3};
    gc_ctx c = {.op = 0, .p = win2(3, 2, 2, 1, 1, 0)};
    c.p.ceil_mode = true;
    gradcheck("max_pool", &c, 4, s4);
    c.p.layout = KN_LAYOUT_NHWC;
    gradcheck("max_pool", &c, 4, sn);
    c.op = 1, c.p.layout = KN_LAYOUT_NCHW;
    gradcheck("avg_pool", &c, 4, s4);
    c.p.count_include_pad = true;
    gradcheck("avg_pool", &c, 4, s4);
    c.p = (kn_pool_params){.kernel = {3}, .stride = {2}, .pad_begin = {2}, .pad_end = {1}};
    gradcheck("avg_pool", &c, 3, s3);
    c.op = 0;
    gradcheck("max_pool", &c, 3, s3);
    c.p = (kn_pool_params){
        .kernel = {2, 2, 2}, .stride = {1, 2, 1}, .pad_begin = {1, 0, 0}, .pad_end = {0, 0, 1}};
    gradcheck("max_pool", &c, 5, s5);
    c.op = 1;
    gradcheck("avg_pool", &c, 5, s5);
    c.p = (kn_pool_params){.layout = KN_LAYOUT_NCHW};
    c.op = 2;
    gradcheck("global_avg_pool", &c, 4, s4);
    c.op = 3;
    gradcheck("global_max_pool", &c, 3, s3);
    static const struct {
        int which;
        int64_t h, w;
        bool align;
    } rs[] = {
        {0, 3, 4, false}, {1, 2, 4, false}, {2, 7, 4, false}, {3, 7, 4, false}, {3, 3, 8, true}};
    for (int i = 0; i < KN_ARRAY_LEN(rs); i++) {
        c.op = 4;
        c.r = (resize_ctx){rs[i].h, rs[i].w, rs[i].align, KN_LAYOUT_NCHW, rs[i].which};
        gradcheck(resize_names[rs[i].which], &c, 4, s4);
    }
    c.r.layout = KN_LAYOUT_NHWC;
    gradcheck("upsample_bilinear2d", &c, 4, sn);
}

/* resample_grad is differentiable in grad_y (its adjoint is the forward op);
 * max_pool_grad is not differentiable. */
static kn_pool_attrs avg_grad_attrs(void)
{
    kn_pool_attrs at = {.kernel = {2, {3, 3}},
                        .stride = {2, {2, 1}},
                        .pad_begin = {2, {1, 0}},
                        .pad_end = {2, {1, 1}},
                        .kind = KN_POOL_AVG};
    return at;
}

typedef struct rg_ctx {
    kn_pool_attrs at;
    kn_tensor *x;
} rg_ctx;

static kn_tensor *rg_fn(kn_tensor *const *in, void *arg)
{
    rg_ctx *c = arg;
    kn_tensor *ins[2] = {c->x, in[0]};
    return kn__op_call1(&kn_op_resample_grad, 2, ins, &c->at);
}

static void test_grad_ops(void)
{
    int64_t sx[4] = {1, 2, 5, 4};
    rg_ctx c = {avg_grad_attrs(), kt_rand(4, sx, -1, 1, 5)};
    /* out: h (5+2-3)/2+1 = 3, w (4+1-3)/1+1 = 3 */
    int64_t sg[4] = {1, 2, 3, 3};
    kn_tensor *g = kt_rand(4, sg, -1, 1, 6);
    kt_gradcheck("resample_grad", rg_fn, 1, &g, &c, 1e-6, 1e-6);
    c.at =
        (kn_pool_attrs){.out_size = {2, {4, 3}}, .align_corners = true, .kind = KN_POOL_BILINEAR};
    kn_tensor *g2 = kt_rand(4, (int64_t[]){1, 2, 4, 3}, -1, 1, 7);
    kt_gradcheck("resample_grad", rg_fn, 1, &g2, &c, 1e-6, 1e-6);
    /* max_pool_grad records nothing: no gradient flows through it */
    kn_pool_attrs am = avg_grad_attrs();
    am.kind = KN_POOL_MAX;
    kn_tensor_set_requires_grad(c.x, true);
    kn_tensor_set_requires_grad(g, true);
    kn_autograd_record(true);
    kn_tensor *ins[2] = {c.x, g};
    kn_tensor *gx = kn__op_call1(&kn_op_max_pool_grad, 2, ins, &am);
    kn_autograd_record(false);
    KT_NOTNULL(gx);
    KT_CHECK(!kn_tensor_requires_grad(gx) && kn_autograd_tape_size() == 0 &&
                 !kn_op_has_grad(kn_op_find("max_pool_grad")),
             "max_pool_grad is not differentiable");
    kt_mark("max_pool_grad", KT_GRAD);
    kn_tensor_unref(gx), kn_tensor_unref(g), kn_tensor_unref(g2), kn_tensor_unref(c.x);
}

/* ---- bad inputs */
static void test_bad_inputs(void)
{
    int64_t s4[4] = {1, 2, 5, 5}, s2[2] = {4, 4}, s6[6] = {1, 1, 2, 2, 2, 2};
    kn_tensor *x = kn_tensor_zeros(KN_F32, 4, s4), *x2 = kn_tensor_zeros(KN_F32, 2, s2);
    kn_tensor *xi = kn_tensor_zeros(KN_I32, 4, s4), *x6 = kn_tensor_zeros(KN_F32, 6, s6);
    kn_tensor *xz = kn_tensor_zeros(KN_F32, 4, (int64_t[]){1, 2, 0, 5});
    kn_tensor *big = kn_tensor_symbolic(KN_F32, 4, (int64_t[]){1 << 16, 1 << 16, 1 << 10, 1 << 10});
    kn_pool_params ok = win2(2, 2, 0, 0, 0, 0), p;
    const char *mp = "max_pool", *ap = "avg_pool";
    kt_expect_fail(mp, kn_max_pool(NULL, &ok), "NULL");
    kt_expect_fail(mp, kn_max_pool(x, NULL), "params");
    kt_expect_fail(mp, kn_max_pool(x2, &ok), "dims");
    kt_expect_fail(mp, kn_max_pool(x6, &ok), "dims");
    kt_expect_fail(mp, kn_max_pool(xi, &ok), "dtype");
    kt_expect_fail(mp, kn_max_pool(xz, &ok), "size 0");
    p = ok, p.kernel[1] = 0;
    kt_expect_fail(mp, kn_max_pool(x, &p), "kernel");
    p = ok, p.stride[0] = -1;
    kt_expect_fail(mp, kn_max_pool(x, &p), "stride");
    p = ok, p.pad_begin[0] = 2;
    kt_expect_fail(ap, kn_avg_pool(x, &p), "pad");
    p = ok, p.pad_end[1] = -1;
    kt_expect_fail(ap, kn_avg_pool(x, &p), "pad");
    p = ok, p.kernel[0] = 7;
    kt_expect_fail(ap, kn_avg_pool(x, &p), "larger");
    p = ok, p.layout = (kn_layout)5;
    kt_expect_fail(ap, kn_avg_pool(x, &p), "layout");
    p = win2(1, 1, 1, 1, 0, 0);
    kn_tensor *bp = kn_avg_pool(big, &p); /* symbolic: shape only */
    KT_CHECK(bp && kn_tensor_is_symbolic(bp), "symbolic pool: %s", kn_last_error());
    kn_tensor_unref(bp);
    const char *g = "global_avg_pool";
    kt_expect_fail(g, kn_global_avg_pool(NULL, KN_LAYOUT_NCHW), "NULL");
    kt_expect_fail(g, kn_global_avg_pool(x2, KN_LAYOUT_NCHW), "dims");
    kt_expect_fail(g, kn_global_avg_pool(xi, KN_LAYOUT_NCHW), "dtype");
    kt_expect_fail(g, kn_global_avg_pool(x, (kn_layout)3), "layout");
    kt_expect_fail(g, kn_global_avg_pool(xz, KN_LAYOUT_NCHW), "size 0");
    kt_expect_fail("global_max_pool", kn_global_max_pool(x6, KN_LAYOUT_NCHW), "dims");
    kt_expect_fail("global_max_pool", kn_global_max_pool(NULL, KN_LAYOUT_NCHW), "NULL");
    for (int w = 0; w < 4; w++) {
        const char *n = resize_names[w];
        resize_ctx r = {3, 3, false, KN_LAYOUT_NCHW, w};
        kt_expect_fail(n, do_resize(NULL, &r), "NULL");
        kt_expect_fail(n, do_resize(x2, &r), "dims");
        kt_expect_fail(n, do_resize(x6, &r), "dims");
        kt_expect_fail(n, do_resize(xi, &r), "dtype");
        kt_expect_fail(n, do_resize(xz, &r), "size 0");
        r.layout = (kn_layout)2;
        kt_expect_fail(n, do_resize(x, &r), "layout");
        r = (resize_ctx){0, 3, false, KN_LAYOUT_NCHW, w};
        kt_expect_fail(n, do_resize(x, &r), "output size");
        r = (resize_ctx){INT64_MAX / 2, 3, false, KN_LAYOUT_NCHW, w};
        kt_expect_fail(n, do_resize(x, &r), "overflow");
        r = (resize_ctx){1 << 30, 1 << 30, false, KN_LAYOUT_NCHW, w};
        kt_expect_fail(n, do_resize(big, &r), "overflow");
    }
    /* the gradient ops */
    kn_pool_attrs at = avg_grad_attrs();
    kn_tensor *gx = kn_tensor_zeros(KN_F32, 4, (int64_t[]){1, 2, 5, 4});
    kn_tensor *gy = kn_tensor_zeros(KN_F32, 4, (int64_t[]){1, 2, 3, 3});
    kn_tensor *gbad = kn_tensor_zeros(KN_F32, 4, (int64_t[]){1, 2, 3, 4});
    kn_tensor *g64 = kn_tensor_zeros(KN_F64, 4, (int64_t[]){1, 2, 3, 3});
    kn_tensor *ok_in[2] = {gx, gy}, *bad_in[2] = {gx, gbad}, *dt_in[2] = {gx, g64},
              *null_in[2] = {gx, NULL};
    kn_tensor *r = kn__op_call1(&kn_op_resample_grad, 2, ok_in, &at);
    KT_NOTNULL(r);
    kn_tensor_unref(r);
    const char *rg = "resample_grad", *mg = "max_pool_grad";
    kt_expect_fail(rg, kn__op_call1(&kn_op_resample_grad, 2, bad_in, &at), "grad_out");
    kt_expect_fail(rg, kn__op_call1(&kn_op_resample_grad, 2, dt_in, &at), "f64");
    kt_expect_fail(rg, kn__op_call1(&kn_op_resample_grad, 2, null_in, &at), "NULL");
    at.kind = KN_POOL_MAX;
    kt_expect_fail(rg, kn__op_call1(&kn_op_resample_grad, 2, ok_in, &at), "kind");
    kt_expect_fail(mg, kn__op_call1(&kn_op_max_pool_grad, 2, bad_in, &at), "grad_out");
    kt_expect_fail(mg, kn__op_call1(&kn_op_max_pool_grad, 2, null_in, &at), "NULL");
    at.kind = 99;
    kt_expect_fail(mg, kn__op_call1(&kn_op_max_pool_grad, 2, ok_in, &at), "kind");
    at.kind = KN_POOL_AVG;
    kt_expect_fail(mg, kn__op_call1(&kn_op_max_pool_grad, 2, ok_in, &at), "kind");
    kn_tensor_unref(gx), kn_tensor_unref(gy), kn_tensor_unref(gbad), kn_tensor_unref(g64);
    kn_tensor_unref(x), kn_tensor_unref(x2), kn_tensor_unref(xi), kn_tensor_unref(x6);
    kn_tensor_unref(xz), kn_tensor_unref(big);
}

/* Allocation failure at every point of a recorded max_pool + backward. */
static kn_status walk_pool(void *ctx)
{
    (void)ctx;
    int64_t s[4] = {1, 2, 5, 5};
    kn_pool_params p = win2(3, 3, 2, 2, 1, 1);
    kn_tensor *x = kn_tensor_ones(KN_F32, 4, s);
    if (!x) return kn_last_status();
    kn_tensor_set_requires_grad(x, true);
    kn_autograd_record(true);
    kn_tensor *y = kn_max_pool(x, &p);
    kn_tensor *z = y ? kn_upsample_bilinear2d(y, 4, 4, false, KN_LAYOUT_NCHW) : NULL;
    kn_tensor *l = z ? kn_sum(z, 0, NULL, false) : NULL;
    kn_autograd_record(false);
    kn_status s2 = l ? kn_backward(l, NULL) : kn_last_status();
    kn_tensor_unref(l), kn_tensor_unref(z), kn_tensor_unref(y), kn_tensor_unref(x);
    return s2;
}

static void test_alloc_walk(void)
{
    int n = kt_alloc_walk("pool", walk_pool, NULL);
    KT_CHECK(n > 5, "walked %d failure points", n);
}

int main(void)
{
    KT_RUN(test_max_pool_values);
    KT_RUN(test_avg_pool_values);
    KT_RUN(test_pool_grad_values);
    KT_RUN(test_adaptive);
    KT_RUN(test_upsample);
    KT_RUN(test_global);
    KT_RUN(test_gradcheck);
    KT_RUN(test_grad_ops);
    KT_RUN(test_bad_inputs);
    KT_RUN(test_alloc_walk);
    return kt_finish();
}
