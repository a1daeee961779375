/* test_index.c — the index family (gather, scatter, scatter_add,
 * index_select, take, one_hot, embedding, masked_fill) against PyTorch golden
 * values, on contiguous and transposed inputs, i64 and i32 indices; f64
 * gradient checks; out-of-range indices and other bad inputs; an
 * allocation-failure walk. */
#include "harness.h"

#include "golden/index.h"

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})

static kn_tensor *G(const kt_array *a, kn_dtype dt)
{
    return kt_from_array(a, dt);
}

static void check(const char *op, kn_tensor *t, const kt_array *e)
{
    kt_check_array(op, t, e, 0, 0);
    kn_tensor_unref(t);
}

/* The same values as t, through a transposed (non-contiguous) view. */
static kn_tensor *noncontig(kn_tensor *t)
{
    kn_tensor *a = kn_transpose(t, 0, 1), *c = kn_contiguous(a);
    kn_tensor *v = kn_transpose(c, 0, 1);
    kn_tensor_unref(a), kn_tensor_unref(c);
    return v;
}

static void test_gather(void)
{
    kn_tensor *x = G(&X34, KN_F32), *i1 = G(&GI1, KN_I64), *i0 = G(&GI0, KN_I32);
    check("gather", kn_gather(x, 1, i1), &GATHER_A1);
    check("gather", kn_gather(x, -2, i0), &GATHER_A0);
    kn_tensor *xn = noncontig(x), *i1n = noncontig(i1);
    KT_CHECK(!kn_tensor_is_contiguous(xn) && !kn_tensor_is_contiguous(i1n), "views");
    check("gather", kn_gather(xn, 1, i1n), &GATHER_A1);
    kn_tensor *xt = kn_transpose(x, 0, 1);
    kn_tensor *it = kt_tensor(KN_I64, 2, SHAPE(2, 3), (double[]){2, 0, 1, 1, 1, 0});
    check("gather", kn_gather(xt, 0, it), &GATHER_T_A0);
    kn_tensor *xb = G(&X34, KN_BF16);
    check("gather", kn_gather(xb, 1, i1), &GATHER_A1);
    kn_tensor *ie = kn_tensor_zeros(KN_I64, 2, SHAPE(3, 0)), *ge = kn_gather(x, 1, ie);
    KT_CHECK(ge && kn_tensor_numel(ge) == 0 && kn_tensor_dim(ge, 0) == 3, "empty index");
    kn_tensor *objs[] = {x, i1, i0, xn, i1n, xt, it, xb, ie, ge};
    for (int i = 0; i < 10; i++)
        kn_tensor_unref(objs[i]);
}

static void test_scatter(void)
{
    kn_tensor *si = G(&SI, KN_I64), *src = G(&SRC24, KN_F32), *di = G(&DI, KN_I32);
    kn_tensor *z = kn_tensor_zeros(KN_F32, 2, SHAPE(2, 5)),
              *o = kn_tensor_ones(KN_F32, 2, SHAPE(2, 5));
    check("scatter", kn_scatter(z, 1, si, src), &SCATTER_A1);
    kn_tensor *o34 = kn_tensor_ones(KN_F32, 2, SHAPE(3, 4));
    kn_tensor *i0 = kt_tensor(KN_I64, 2, SHAPE(1, 4), (double[]){2, 0, 1, 1});
    check("scatter", kn_scatter(o34, 0, i0, src), &SCATTER_A0);
    kn_tensor *zn = noncontig(z), *srcn = noncontig(src), *sin = noncontig(si);
    check("scatter", kn_scatter(zn, -1, sin, srcn), &SCATTER_A1);
    check("scatter_add", kn_scatter_add(o, 1, di, src), &SCATTER_ADD_A1);
    kn_tensor *on = noncontig(o);
    check("scatter_add", kn_scatter_add(on, 1, di, srcn), &SCATTER_ADD_A1);
    kn_tensor *oh = kn_cast(o, KN_F16), *sh = kn_cast(src, KN_F16);
    check("scatter_add", kn_scatter_add(oh, 1, di, sh), &SCATTER_ADD_A1);
    kn_tensor *oi = kn_cast(o, KN_I64), *srci = kn_cast(src, KN_I64);
    check("scatter_add", kn_scatter_add(oi, 1, di, srci), &SCATTER_ADD_A1);
    KT_CHECK(kn_tensor_dtype(z) == KN_F32, "inputs unchanged");
    kt_check_values("scatter", z, 2, SHAPE(2, 5), (double[]){0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0, 0);
    kn_tensor *objs[] = {si, src, di, z, o, o34, i0, zn, srcn, sin, on, oh, sh, oi, srci};
    for (int i = 0; i < 15; i++)
        kn_tensor_unref(objs[i]);
}

static void test_index_select_take(void)
{
    kn_tensor *x = G(&X34, KN_F32), *xn = noncontig(x);
    kn_tensor *i3 = kt_tensor(KN_I64, 1, SHAPE(3), (double[]){2, 0, 2});
    check("index_select", kn_index_select(x, 0, i3), &INDEX_SELECT_A0);
    check("index_select", kn_index_select(xn, 0, i3), &INDEX_SELECT_A0);
    kn_tensor *s3 = kn_tensor_scalar(KN_I32, 3),
              *v3 = kt_tensor(KN_I32, 1, SHAPE(1), (double[]){3});
    check("index_select", kn_index_select(x, 1, s3), &INDEX_SELECT_A1);
    check("index_select", kn_index_select(x, -1, v3), &INDEX_SELECT_A1);
    kn_tensor *xt = kn_transpose(x, 0, 1), *i12 = kt_tensor(KN_I64, 1, SHAPE(2), (double[]){1, 2});
    check("index_select", kn_index_select(xt, 1, i12), &INDEX_SELECT_T);
    kn_tensor *xh = G(&X34, KN_F16);
    check("index_select", kn_index_select(xh, 0, i3), &INDEX_SELECT_A0);
    kn_tensor *ti = G(&TI, KN_I64), *ti32 = G(&TI, KN_I32);
    check("take", kn_take(x, ti), &TAKE);
    check("take", kn_take(xn, ti32), &TAKE);
    check("take", kn_take(xt, ti), &TAKE_T);
    kn_tensor *tin = noncontig(ti);
    check("take", kn_take(xh, tin), &TAKE);
    kn_tensor *objs[] = {x, xn, i3, s3, v3, xt, i12, xh, ti, ti32, tin};
    for (int i = 0; i < 11; i++)
        kn_tensor_unref(objs[i]);
}

static void test_one_hot_embedding_masked_fill(void)
{
    kn_tensor *oi = G(&OI, KN_I64), *oi32 = G(&OI, KN_I32);
    check("one_hot", kn_one_hot(oi, 4, KN_F32), &ONE_HOT);
    kn_tensor *b = kn_one_hot(oi32, 4, KN_BOOL);
    KT_CHECK(b && kn_tensor_dtype(b) == KN_BOOL, "one_hot as bool");
    check("one_hot", b, &ONE_HOT);
    kn_tensor *oin = noncontig(oi);
    check("one_hot", kn_one_hot(oin, 4, KN_I64), &ONE_HOT);

    kn_tensor *w = G(&W53, KN_F32), *ei = G(&EI, KN_I64), *ei32 = G(&EI, KN_I32);
    check("embedding", kn_embedding(w, ei), &EMBEDDING);
    kn_tensor *wn = noncontig(w), *ein = noncontig(ei32);
    check("embedding", kn_embedding(wn, ein), &EMBEDDING);
    kn_tensor *wb = G(&W53, KN_BF16);
    check("embedding", kn_embedding(wb, ei), &EMBEDDING);

    kn_tensor *a = G(&A23, KN_F32), *m = G(&MASK3, KN_BOOL);
    check("masked_fill", kn_masked_fill(a, m, -1), &MASKED_FILL);
    kn_tensor *at = kn_transpose(a, 0, 1), *m2 = kn_narrow(m, 0, 0, 2);
    check("masked_fill", kn_masked_fill(at, m2, 7), &MASKED_FILL_T);
    kn_tensor *ai = kn_cast(a, KN_I32), *fi = kn_masked_fill(ai, m, -1);
    KT_CHECK(fi && kn_tensor_dtype(fi) == KN_I32, "int masked_fill");
    kt_check_values("masked_fill", fi, 2, SHAPE(2, 3), (double[]){-1, 1, -1, -1, 4, -1}, 0, 0);
    kn_tensor *ah = kn_cast(a, KN_F16);
    check("masked_fill", kn_masked_fill(ah, m, -1), &MASKED_FILL);
    kn_tensor *objs[] = {oi, oi32, oin, w, ei, ei32, wn, ein, wb, a, m, at, m2, ai, fi, ah};
    for (int i = 0; i < 16; i++)
        kn_tensor_unref(objs[i]);
}

/* Big enough to run in parallel chunks: results must not depend on the
 * thread count (scatter_add accumulates in a fixed order per column). */
static void test_threads(void)
{
    kn_tensor *src = kt_rand(2, SHAPE(200, 300), -1, 1, 41), *r[2] = {0}, *g[2] = {0};
    kn_tensor *u = kt_rand(2, SHAPE(200, 300), 0, 64, 42), *idx = kn_cast(u, KN_I64);
    kn_tensor *z = kn_tensor_zeros(KN_F64, 2, SHAPE(64, 300));
    int prev = kn_get_num_threads();
    for (int k = 0; k < 2; k++) {
        kn_set_num_threads(k ? 4 : 1);
        r[k] = kn_scatter_add(z, 0, idx, src);
        g[k] = kn_gather(r[k], 0, idx);
    }
    kn_set_num_threads(prev);
    KT_CHECK(kt_equal_bits(r[0], r[1]) && kt_equal_bits(g[0], g[1]),
             "same bits for 1 and 4 threads");
    kn_tensor *s1 = kn_sum(src, 0, NULL, false), *s2 = kn_sum(r[0], 0, NULL, false);
    double a = 0, b = 1;
    kn_tensor_item(s1, &a), kn_tensor_item(s2, &b);
    KT_CHECK(fabs(a - b) < 1e-9, "scatter_add keeps the total: %g vs %g", a, b);
    kn_tensor *objs[] = {src, r[0], r[1], g[0], g[1], u, idx, z, s1, s2};
    for (int i = 0; i < 10; i++)
        kn_tensor_unref(objs[i]);
}

/* ----------------------------------------------------------- gradients */
typedef struct gctx {
    int op, axis;
    kn_tensor *index;
} gctx;

static kn_tensor *f_index(kn_tensor *const *in, void *p)
{
    const gctx *c = p;
    kn_tensor *t = kn_transpose(in[0], 0, 1), *y = NULL;
    switch (c->op) {
    case 0:
        y = kn_gather(t, c->axis, c->index);
        break;
    case 1:
        y = kn_index_select(t, c->axis, c->index);
        break;
    case 2:
        y = kn_take(t, c->index);
        break;
    case 3:
        y = kn_embedding(t, c->index);
        break;
    case 4:
        y = kn_masked_fill(t, c->index, 0.25);
        break;
    case 5:
        y = kn_scatter(t, c->axis, c->index, in[1]);
        break;
    case 6:
        y = kn_scatter_add(t, c->axis, c->index, in[1]);
        break;
    }
    kn_tensor_unref(t);
    return y;
}

static void test_grads(void)
{
    kn_tensor *x = kt_rand(2, SHAPE(4, 3), -1, 1, 31); /* used transposed: (3, 4) */
    kn_tensor *gi = kt_tensor(KN_I64, 2, SHAPE(2, 4), (double[]){0, 2, 2, 1, 0, 0, 1, 2});
    kt_gradcheck("gather", f_index, 1, &x, &(gctx){.op = 0, .axis = 0, .index = gi}, 1e-6, 1e-7);
    kn_tensor *gi1 = kt_tensor(KN_I32, 2, SHAPE(3, 2), (double[]){3, 3, 0, 1, 2, 0});
    kt_gradcheck("gather", f_index, 1, &x, &(gctx){.op = 0, .axis = 1, .index = gi1}, 1e-6, 1e-7);
    kn_tensor *si = kt_tensor(KN_I64, 1, SHAPE(5), (double[]){3, 0, 3, 1, 3});
    kt_gradcheck("index_select", f_index, 1, &x, &(gctx){.op = 1, .axis = 1, .index = si}, 1e-6,
                 1e-7);
    kn_tensor *ti = kt_tensor(KN_I64, 2, SHAPE(3, 2), (double[]){0, -1, 5, -12, 11, 0});
    kt_gradcheck("take", f_index, 1, &x, &(gctx){.op = 2, .axis = 0, .index = ti}, 1e-6, 1e-7);
    kn_tensor *ei = kt_tensor(KN_I32, 2, SHAPE(2, 3), (double[]){2, 0, 2, 1, 1, 2});
    kt_gradcheck("embedding", f_index, 1, &x, &(gctx){.op = 3, .axis = 0, .index = ei}, 1e-6, 1e-7);
    kn_tensor *m = kt_tensor(KN_BOOL, 3, SHAPE(2, 1, 4), (double[]){1, 0, 0, 1, 0, 1, 1, 0});
    kt_gradcheck("masked_fill", f_index, 1, &x, &(gctx){.op = 4, .axis = 0, .index = m}, 1e-6,
                 1e-7);
    /* scatter: x (3,4) and src (2,5) larger than the index (2,3); no
     * duplicates along the axis (torch leaves their order unspecified) */
    kn_tensor *src = kt_rand(2, SHAPE(2, 5), -1, 1, 32), *xs[2] = {x, src};
    kn_tensor *sci = kt_tensor(KN_I64, 2, SHAPE(2, 3), (double[]){1, 0, 2, 2, 1, 0});
    kt_gradcheck("scatter", f_index, 2, xs, &(gctx){.op = 5, .axis = 0, .index = sci}, 1e-6, 1e-7);
    kn_tensor *sai = kt_tensor(KN_I64, 2, SHAPE(2, 3), (double[]){3, 3, 0, 1, 3, 3});
    kt_gradcheck("scatter_add", f_index, 2, xs, &(gctx){.op = 6, .axis = 1, .index = sai}, 1e-6,
                 1e-7);
    kn_tensor *objs[] = {x, gi, gi1, si, ti, ei, m, src, sci, sai};
    for (int i = 0; i < 10; i++)
        kn_tensor_unref(objs[i]);
}

static void test_one_hot_no_grad(void)
{
    KT_CHECK(!kn_op_has_grad(kn_op_find("one_hot")), "one_hot has no gradient");
    kn_tensor *i = kt_tensor(KN_I64, 1, SHAPE(2), (double[]){1, 0});
    kn_autograd_record(true);
    kn_tensor *y = kn_one_hot(i, 3, KN_F64);
    kn_autograd_record(false);
    KT_CHECK(y && !kn_tensor_requires_grad(y) && kn_autograd_tape_size() == 0,
             "nothing recorded, no gradient flows");
    kt_mark("one_hot", KT_GRAD);
    kn_tensor_unref(y), kn_tensor_unref(i);
}

/* Second derivative through gather (gather -> scatter_add -> gather). */
static void test_double_backward(void)
{
    kn_tensor *x = kt_tensor(KN_F64, 1, SHAPE(3), (double[]){0.5, -1, 2});
    kn_tensor *i = kt_tensor(KN_I64, 1, SHAPE(4), (double[]){2, 0, 2, 1});
    kn_tensor_set_requires_grad(x, true);
    kn_autograd_record(true);
    kn_tensor *g = kn_gather(x, 0, i), *c = kn_mul(g, g), *l = kn_sum(c, 0, NULL, false);
    KT_OK(kn_backward_ex(l, NULL, KN_BACKWARD_CREATE_GRAPH)); /* 2 x * count */
    kn_tensor *d = kn_tensor_ref(kn_tensor_grad(x));
    kt_check_values("gather", d, 1, SHAPE(3), (double[]){1, -2, 8}, 0, 1e-12);
    kn_tensor_zero_grad(x);
    kn_tensor *dd = kn_mul(d, d), *l2 = kn_sum(dd, 0, NULL, false); /* sum 4 count^2 x^2 */
    KT_OK(kn_backward(l2, NULL));
    kn_autograd_record(false);
    kt_check_values("gather", kn_tensor_grad(x), 1, SHAPE(3), (double[]){4, -8, 64}, 0, 1e-12);
    kn_tensor *objs[] = {x, i, g, c, l, d, dd, l2};
    for (int k = 0; k < 8; k++)
        kn_tensor_unref(objs[k]);
}

/* ---------------------------------------------------------- bad input */
static void test_bad_inputs(void)
{
    kn_tensor *x = G(&X34, KN_F32), *i1 = G(&GI1, KN_I64), *fi = G(&GI1, KN_F32);
    kn_tensor *i8 = kn_cast(i1, KN_I8);
    kn_tensor *bad = kt_tensor(KN_I64, 2, SHAPE(1, 2), (double[]){1, 4});
    kn_tensor *neg = kt_tensor(KN_I32, 2, SHAPE(1, 1), (double[]){-1});
    kn_tensor *v1 = kt_tensor(KN_I64, 1, SHAPE(2), (double[]){0, 1});
    kn_tensor *big = kn_tensor_zeros(KN_I64, 2, SHAPE(4, 2));
    kt_expect_fail("gather", kn_gather(x, 1, fi), "dtype");
    kt_expect_fail("gather", kn_gather(x, 1, i8), "i64 or i32");
    kt_expect_fail("gather", kn_gather(x, 1, v1), "dims");
    kt_expect_fail("gather", kn_gather(x, 1, big), "size 4 on axis 0");
    kt_expect_fail("gather", kn_gather(x, 2, i1), "axis");
    kt_expect_fail("gather", kn_gather(x, 1, bad), "index 4 is out of range [0, 4)");
    kt_expect_fail("gather", kn_gather(x, 0, neg), "index -1");
    kt_expect_fail("gather", kn_gather(NULL, 0, i1), "NULL");
    kt_expect_fail("gather", kn_gather(x, 0, NULL), "NULL");

    kn_tensor *src = G(&SRC24, KN_F32), *srcd = G(&SRC24, KN_F64), *si = G(&SI, KN_I64);
    kn_tensor *z = kn_tensor_zeros(KN_F32, 2, SHAPE(2, 5)),
              *zb = kn_tensor_zeros(KN_BOOL, 2, SHAPE(2, 5));
    kn_tensor *srcb = kn_cast(src, KN_BOOL), *small = kn_narrow(src, 1, 0, 2);
    kn_tensor *bad5 = kt_tensor(KN_I64, 2, SHAPE(1, 1), (double[]){5});
    kt_expect_fail("scatter", kn_scatter(z, 1, si, srcd), "input 2");
    kt_expect_fail("scatter", kn_scatter(z, 1, si, small), "src");
    kt_expect_fail("scatter", kn_scatter(z, 1, bad5, src), "index 5 is out of range [0, 5)");
    kt_expect_fail("scatter", kn_scatter(z, 1, fi, src), "dtype");
    kt_expect_fail("scatter", kn_scatter(z, 2, si, src), "axis");
    kt_expect_fail("scatter", kn_scatter(z, 1, si, NULL), "NULL");
    kt_expect_fail("scatter_add", kn_scatter_add(zb, 1, si, srcb), "bool");
    kt_expect_fail("scatter_add", kn_scatter_add(z, 0, bad5, src),
                   "index 5 is out of range [0, 2)");
    kt_expect_fail("scatter_add", kn_scatter_add(z, 1, v1, src), "dims");
    kt_expect_fail("scatter_add", kn_scatter_add(NULL, 1, si, src), "NULL");

    kt_expect_fail("index_select", kn_index_select(x, 0, i1), "dims");
    kt_expect_fail("index_select", kn_index_select(x, 0, fi), "dtype");
    kn_tensor *v9 = kt_tensor(KN_I64, 1, SHAPE(2), (double[]){0, 3});
    kt_expect_fail("index_select", kn_index_select(x, 0, v9), "index 3 is out of range [0, 3)");
    kt_expect_fail("index_select", kn_index_select(x, 2, v1), "axis");
    kt_expect_fail("index_select", kn_index_select(x, 0, NULL), "NULL");

    kn_tensor *t12 = kt_tensor(KN_I64, 1, SHAPE(2), (double[]){0, 12});
    kn_tensor *tm13 = kt_tensor(KN_I32, 1, SHAPE(1), (double[]){-13});
    kt_expect_fail("take", kn_take(x, t12), "index 12 is out of range [-12, 12)");
    kt_expect_fail("take", kn_take(x, tm13), "index -13");
    kt_expect_fail("take", kn_take(x, fi), "dtype");
    kn_tensor *ez = kn_tensor_zeros(KN_F32, 1, SHAPE(0));
    kt_expect_fail("take", kn_take(ez, v1), "[0, 0)");
    kt_expect_fail("take", kn_take(NULL, v1), "NULL");

    kt_expect_fail("one_hot", kn_one_hot(i1, 0, KN_F32), "depth");
    kt_expect_fail("one_hot", kn_one_hot(i1, 3, KN_F32), "index 3 is out of range [0, 3)");
    kt_expect_fail("one_hot", kn_one_hot(neg, 3, KN_F32), "index -1");
    kt_expect_fail("one_hot", kn_one_hot(i1, 4, (kn_dtype)77), "dtype");
    kt_expect_fail("one_hot", kn_one_hot(fi, 4, KN_F32), "dtype");
    kn_tensor *d8 = kn_tensor_symbolic(KN_I64, 8, SHAPE(1, 1, 1, 1, 1, 1, 1, 1));
    kt_expect_fail("one_hot", kn_one_hot(d8, 4, KN_F32), "dims");
    kn_tensor *huge = kn_tensor_symbolic(KN_I64, 2, SHAPE((int64_t)1 << 30, (int64_t)1 << 28));
    KT_NOTNULL(huge);
    kt_expect_fail("one_hot", kn_one_hot(huge, (int64_t)1 << 20, KN_F32), "overflow");
    kt_expect_fail("one_hot", kn_one_hot(NULL, 4, KN_F32), "NULL");

    kn_tensor *w = G(&W53, KN_F32), *w1 = kn_reshape(w, 1, SHAPE(15));
    kn_tensor *e5 = kt_tensor(KN_I64, 1, SHAPE(2), (double[]){0, 5});
    kt_expect_fail("embedding", kn_embedding(w1, v1), "2 (V, D)");
    kt_expect_fail("embedding", kn_embedding(w, e5), "index 5 is out of range [0, 5)");
    kt_expect_fail("embedding", kn_embedding(w, fi), "dtype");
    kn_tensor *wide = kn_tensor_symbolic(KN_F32, 2, SHAPE(4, (int64_t)1 << 40));
    kt_expect_fail("embedding", kn_embedding(wide, huge), "overflow");
    kt_expect_fail("embedding", kn_embedding(NULL, v1), "NULL");

    kn_tensor *mf = kn_tensor_ones(KN_F32, 1, SHAPE(3)), *mb = kn_tensor_ones(KN_BOOL, 1, SHAPE(5));
    kt_expect_fail("masked_fill", kn_masked_fill(x, mf, 0), "bool");
    kt_expect_fail("masked_fill", kn_masked_fill(x, mb, 0), "broadcast");
    kt_expect_fail("masked_fill", kn_masked_fill(NULL, mb, 0), "NULL");
    kt_expect_fail("masked_fill", kn_masked_fill(x, NULL, 0), "NULL");

    kn_tensor *objs[] = {x,     i1,   fi, i8,  bad,  neg, v1, big,  src, srcd, si, z,    zb, srcb,
                         small, bad5, v9, t12, tm13, ez,  d8, huge, w,   w1,   e5, wide, mf, mb};
    for (int i = 0; i < (int)(sizeof objs / sizeof objs[0]); i++)
        kn_tensor_unref(objs[i]);
}

/* embedding + gather forward and backward under recording */
static kn_status walk_embedding(void *ctx)
{
    (void)ctx;
    kn_tensor *w = kn_tensor_ones(KN_F64, 2, SHAPE(4, 3)), *t[6] = {0};
    kn_tensor *i = kn_tensor_zeros(KN_I64, 2, SHAPE(2, 2));
    kn_status s = w && i ? kn_tensor_set_requires_grad(w, true) : kn_last_status();
    kn_autograd_record(true);
    t[0] = kn_embedding(w, i); /* (2,2,3) */
    t[1] = kn_transpose(t[0], 0, 2);
    t[2] = kn_take(t[1], i);
    t[5] = kn_reshape(i, 1, SHAPE(4));
    t[3] = kn_index_select(t[1], 1, t[5]);
    t[4] = kn_sum(t[3], 0, NULL, false);
    kn_autograd_record(false);
    if (!s && !t[4]) s = kn_last_status();
    if (!s) s = kn_backward(t[4], NULL);
    for (int k = 5; k >= 0; k--)
        kn_tensor_unref(t[k]);
    kn_tensor_unref(w), kn_tensor_unref(i);
    return s;
}

static void test_alloc_walk(void)
{
    int k = kt_alloc_walk("embedding/take + backward", walk_embedding, NULL);
    KT_CHECK(k > 5, "walked %d failure points", k);
}

int main(void)
{
    KT_RUN(test_gather);
    KT_RUN(test_scatter);
    KT_RUN(test_index_select_take);
    KT_RUN(test_one_hot_embedding_masked_fill);
    KT_RUN(test_threads);
    KT_RUN(test_grads);
    KT_RUN(test_one_hot_no_grad);
    KT_RUN(test_double_backward);
    KT_RUN(test_bad_inputs);
    KT_RUN(test_alloc_walk);
    return kt_finish();
}
