/* test_shape.c — the shape family: views (reshape, flatten, squeeze,
 * unsqueeze, permute, transpose, slice, narrow, expand, contiguous) share
 * storage and write through; copies (concat, stack, split, chunk, pad, tile,
 * repeat, cast) against PyTorch/NumPy golden values; f64 gradient checks;
 * bad inputs; an allocation-failure walk. */
#include "harness.h"

#include "golden/shape.h"

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define AXES(...) ((const int[]){__VA_ARGS__})

static kn_tensor *G(const kt_array *a, kn_dtype dt)
{
    return kt_from_array(a, dt);
}

/* Exact comparison (shape ops move values, they never compute). */
static void check(const char *op, kn_tensor *t, const kt_array *e)
{
    kt_check_array(op, t, e, 0, 0);
    kn_tensor_unref(t);
}

/* v is a view of base: same storage, and a write through v is seen by base. */
static void check_view(const char *op, kn_tensor *base, kn_tensor *v)
{
    KT_CHECK(kn_tensor_shares_storage(base, v), "%s: result is a view", op);
    if (!v || kn_tensor_numel(v) == 0) return;
    int64_t zero[KN_MAX_DIMS] = {0}, idx[KN_MAX_DIMS];
    double old, got;
    KT_OK(kn_tensor_get(v, zero, &old));
    KT_OK(kn_tensor_set(v, zero, 12345));
    bool seen = false;
    int64_t n = kn_tensor_numel(base);
    for (int64_t i = 0; i < n && !seen; i++) {
        int64_t rem = i;
        for (int d = kn_tensor_ndim(base) - 1; d >= 0; d--) {
            idx[d] = rem % kn_tensor_shape(base)[d];
            rem /= kn_tensor_shape(base)[d];
        }
        kn_tensor_get(base, idx, &got);
        seen = got == 12345;
    }
    KT_CHECK(seen, "%s: a write through the view reaches the base", op);
    kn_tensor_set(v, zero, old);
}

static void check_copy(const char *op, kn_tensor *base, kn_tensor *v)
{
    KT_CHECK(v && !kn_tensor_shares_storage(base, v), "%s: result is a copy", op);
}

/* ------------------------------------------------------------ views */
static void test_reshape(void)
{
    kn_tensor *x = G(&X234, KN_F32);
    kn_tensor *r = kn_reshape(x, 2, SHAPE(4, -1));
    kt_check_array("reshape", r, &RESHAPE_4x6, 0, 0);
    check_view("reshape", x, r);
    kn_tensor_unref(r);
    kn_tensor *t = kn_transpose(x, 0, 2);
    r = kn_reshape(t, 2, SHAPE(6, 4));
    kt_check_array("reshape", r, &RESHAPE_T_6x4, 0, 0);
    check_copy("reshape", x, r);
    kn_tensor_unref(r);
    kn_tensor *n = kn_narrow(x, 2, 0, 2); /* (2,3,2), strides (12,4,1) */
    r = kn_reshape(n, 2, SHAPE(6, 2));    /* dims 0,1 merge: still a view */
    kt_check_array("reshape", r, &RESHAPE_NARROW_6x2, 0, 0);
    check_view("reshape", x, r);
    kn_tensor_unref(r);
    r = kn_reshape(n, 2, SHAPE(2, 6)); /* dims 1,2 do not merge: a copy */
    kt_check_array("reshape", r, &RESHAPE_NARROW_2x6, 0, 0);
    check_copy("reshape", x, r);
    kn_tensor_unref(r);
    /* size-1 dims anywhere, a scalar, an empty tensor */
    r = kn_reshape(n, 5, SHAPE(1, 6, 1, 2, 1));
    KT_CHECK(r && kn_tensor_shares_storage(r, x) && kn_tensor_dim(r, 1) == 6, "reshape with 1s");
    kn_tensor_unref(r);
    kn_tensor *s = kn_tensor_scalar(KN_F64, 3), *rs = kn_reshape(s, 2, SHAPE(1, 1));
    kt_check_values("reshape", rs, 2, SHAPE(1, 1), (double[]){3}, 0, 0);
    kn_tensor *e = kn_tensor_zeros(KN_F32, 2, SHAPE(0, 4)), *re = kn_reshape(e, 3, SHAPE(2, 0, -1));
    KT_CHECK(!re, "cannot infer -1 with a zero known size");
    kn_clear_error();
    re = kn_reshape(e, 3, SHAPE(2, 0, 5));
    KT_CHECK(re && kn_tensor_numel(re) == 0, "empty reshape");
    kn_tensor *h = G(&X234, KN_BF16), *rh = kn_reshape(h, 2, SHAPE(4, 6));
    kt_check_array("reshape", rh, &RESHAPE_4x6, 0, 0);
    kn_tensor *objs[] = {x, t, n, s, rs, e, re, h, rh};
    for (int i = 0; i < 9; i++)
        kn_tensor_unref(objs[i]);
}

static void test_flatten_squeeze_unsqueeze(void)
{
    kn_tensor *x = G(&X234, KN_F32), *t = kn_transpose(x, 1, 2);
    kn_tensor *f = kn_flatten(x, 1, 2);
    kt_check_array("flatten", f, &FLATTEN_1_2, 0, 0);
    check_view("flatten", x, f);
    kn_tensor_unref(f);
    f = kn_flatten(t, 0, -1);
    kt_check_array("flatten", f, &FLATTEN_ALL_T, 0, 0);
    check_copy("flatten", x, f);
    kn_tensor_unref(f);
    kn_tensor *sc = kn_tensor_scalar(KN_F32, 2);
    f = kn_flatten(sc, 0, -1);
    kt_check_values("flatten", f, 1, SHAPE(1), (double[]){2}, 0, 0);
    kn_tensor_unref(f), kn_tensor_unref(sc);

    kn_tensor *s = G(&S1312, KN_F64);
    const double *v = S1312.data;
    kn_tensor *q = kn_squeeze(s, 0, NULL);
    kt_check_values("squeeze", q, 2, SHAPE(3, 2), v, 0, 0);
    check_view("squeeze", s, q);
    kn_tensor_unref(q);
    q = kn_squeeze(s, 1, AXES(0));
    kt_check_values("squeeze", q, 3, SHAPE(3, 1, 2), v, 0, 0);
    kn_tensor_unref(q);
    q = kn_squeeze(s, 2, AXES(-2, 1)); /* axis 1 has size 3: kept, like torch */
    kt_check_values("squeeze", q, 3, SHAPE(1, 3, 2), v, 0, 0);
    kn_tensor_unref(q);
    kn_tensor *st = kn_transpose(s, 1, 3); /* (1,2,1,3) non-contiguous */
    q = kn_squeeze(st, 0, NULL);
    kt_check_values("squeeze", q, 2, SHAPE(2, 3), (double[]){-2.5, -0.5, 1.5, -1.5, 0.5, 2.5}, 0,
                    0);
    check_view("squeeze", s, q);
    kn_tensor_unref(q);

    kn_tensor *xt = kn_transpose(x, 0, 1);
    kn_tensor *u = kn_unsqueeze(xt, -1);
    kt_check_array("unsqueeze", u, &UNSQUEEZE_T, 0, 0);
    check_view("unsqueeze", x, u);
    kn_tensor_unref(u);
    u = kn_unsqueeze(x, 0);
    KT_CHECK(u && kn_tensor_ndim(u) == 4 && kn_tensor_dim(u, 0) == 1 && kn_tensor_is_contiguous(u),
             "unsqueeze(0) stays contiguous");
    kn_tensor_unref(u);
    kn_tensor *objs[] = {x, t, s, st, xt};
    for (int i = 0; i < 5; i++)
        kn_tensor_unref(objs[i]);
}

static void test_permute_transpose(void)
{
    kn_tensor *x = G(&X234, KN_F32);
    kn_tensor *p = kn_permute(x, 3, AXES(2, 0, 1));
    kt_check_array("permute", p, &PERMUTE_201, 0, 0);
    check_view("permute", x, p);
    kn_tensor_unref(p);
    kn_tensor *t = kn_transpose(x, 0, 2);
    kt_check_array("transpose", t, &TRANSPOSE_02, 0, 0);
    check_view("transpose", x, t);
    kn_tensor *t01 = kn_transpose(x, 0, -2);
    p = kn_permute(t01, 3, AXES(-1, 0, 1));
    kt_check_array("permute", p, &PERMUTE_OF_T, 0, 0);
    check_view("permute", x, p);
    kn_tensor_unref(p);
    kn_tensor *tt = kn_transpose(t, -1, 0); /* of a non-contiguous view: back to x */
    kt_check_array("transpose", tt, &X234, 0, 0);
    check_view("transpose", x, tt);
    KT_CHECK(tt && kn_tensor_is_contiguous(tt), "transposed twice is contiguous again");
    kn_tensor_unref(tt);
    kn_tensor *c = kn_contiguous(t);
    kt_check_array("contiguous", c, &TRANSPOSE_02, 0, 0);
    check_copy("contiguous", x, c);
    kn_tensor *c2 = kn_contiguous(x);
    check_view("contiguous", x, c2);
    kn_tensor *h = G(&X234, KN_F16), *th = kn_transpose(h, 0, 2);
    kt_check_array("transpose", th, &TRANSPOSE_02, 0, 0);
    kn_tensor *objs[] = {x, t, t01, c, c2, h, th};
    for (int i = 0; i < 7; i++)
        kn_tensor_unref(objs[i]);
}

static void test_slice_narrow(void)
{
    kn_tensor *x = G(&X234, KN_F32);
    struct {
        int axis;
        int64_t b, e, s;
        const kt_array *want;
    } cases[] = {
        {2, 1, INT64_MAX, 2, &SLICE_A2_1_END_2},
        {1, -3, -1, 1, &SLICE_A1_M3_M1},
        {-1, -100, 100, 3, &SLICE_A2_WIDE_3},
        {1, 2, 1, 1, &SLICE_EMPTY},
    };
    for (int i = 0; i < 4; i++) {
        kn_tensor *s = kn_slice(x, cases[i].axis, cases[i].b, cases[i].e, cases[i].s);
        kt_check_array("slice", s, cases[i].want, 0, 0);
        check_view("slice", x, s);
        kn_tensor_unref(s);
    }
    kn_tensor *t = kn_transpose(x, 0, 2), *s = kn_slice(t, 0, 1, 4, 2);
    kt_check_array("slice", s, &SLICE_OF_T, 0, 0);
    check_view("slice", x, s);
    kn_tensor *n = kn_narrow(x, 1, -2, 2);
    kt_check_array("narrow", n, &NARROW_A1_M2_2, 0, 0);
    check_view("narrow", x, n);
    kn_tensor *nt = kn_narrow(t, 1, -2, 2), *ntt = kn_transpose(nt, 0, 2);
    kt_check_array("narrow", ntt, &NARROW_A1_M2_2, 0, 0);
    check_view("narrow", x, nt);
    kn_tensor_unref(nt), kn_tensor_unref(ntt);
    kn_tensor *tn = kn_narrow(t, 2, 0, 0);
    KT_CHECK(tn && kn_tensor_numel(tn) == 0 && kn_tensor_dim(tn, 0) == 4, "empty narrow");
    kn_tensor *b = G(&X234, KN_BF16), *bs = kn_slice(b, 2, 1, INT64_MAX, 2);
    kt_check_array("slice", bs, &SLICE_A2_1_END_2, 0, 0);
    kn_tensor *objs[] = {x, t, s, n, tn, b, bs};
    for (int i = 0; i < 7; i++)
        kn_tensor_unref(objs[i]);
}

static void test_expand_cast(void)
{
    kn_tensor *b = G(&B21, KN_F32), *e = kn_expand(b, 3, SHAPE(2, 2, -1));
    kt_check_values("expand", e, 3, SHAPE(2, 2, 1), (double[]){10, 20, 10, 20}, 0, 0);
    check_view("expand", b, e);
    kn_tensor *e2 = kn_expand(b, 2, SHAPE(2, 3));
    kt_check_values("expand", e2, 2, SHAPE(2, 3), (double[]){10, 10, 10, 20, 20, 20}, 0, 0);
    kn_tensor *bt = kn_transpose(b, 0, 1), *e3 = kn_expand(bt, 3, SHAPE(2, 3, -1));
    kt_check_values("expand", e3, 3, SHAPE(2, 3, 2),
                    (double[]){10, 20, 10, 20, 10, 20, 10, 20, 10, 20, 10, 20}, 0, 0);
    check_view("expand", b, e3);
    kn_tensor_unref(bt), kn_tensor_unref(e3);
    kn_tensor *a = G(&A23, KN_F32), *at = kn_transpose(a, 0, 1);
    kn_tensor *c = kn_cast(at, KN_I32);
    kt_check_values("cast", c, 2, SHAPE(3, 2), (double[]){1, 4, 2, 5, 3, 6}, 0, 0);
    kn_tensor *h = kn_cast(at, KN_F16);
    kt_check_values("cast", h, 2, SHAPE(3, 2), (double[]){1, 4, 2, 5, 3, 6}, 0, 0);
    kn_tensor *objs[] = {b, e, e2, a, at, c, h};
    for (int i = 0; i < 7; i++)
        kn_tensor_unref(objs[i]);
}

/* ----------------------------------------------------------- copies */
static void test_concat_stack(void)
{
    kn_tensor *a = G(&A23, KN_F32), *b = G(&B21, KN_F32), *c = G(&C13, KN_F32);
    kn_tensor *z = kn_tensor_zeros(KN_F32, 2, SHAPE(2, 0));
    check("concat", kn_concat(3, (kn_tensor *[]){a, b, z}, 1), &CONCAT_AB0_1);
    check("concat", kn_concat(2, (kn_tensor *[]){a, c}, -2), &CONCAT_AC_0);
    kn_tensor *at = kn_transpose(a, 0, 1);
    check("concat", kn_concat(2, (kn_tensor *[]){at, at}, 0), &CONCAT_TA_A);
    kn_tensor *ah = G(&A23, KN_F16), *bd = G(&B21, KN_F64);
    kn_tensor *mix = kn_concat(3, (kn_tensor *[]){ah, bd, z}, 1);
    KT_CHECK(mix && kn_tensor_dtype(mix) == KN_F64, "concat promotes f16 + f64 to f64");
    check("concat", mix, &CONCAT_AB0_1);
    kn_tensor *a2 = kn_mul_scalar(a, 2), *a3 = kn_mul_scalar(a, 3), *an = kn_neg(at);
    kn_tensor *ant = kn_transpose(an, 0, 1);
    check("stack", kn_stack(2, (kn_tensor *[]){a, a2}, 0), &STACK_0);
    check("stack", kn_stack(3, (kn_tensor *[]){a, a2, a3}, 1), &STACK_1);
    check("stack", kn_stack(2, (kn_tensor *[]){a, ant}, -1), &STACK_M1);
    kn_tensor *sh = kn_stack(2, (kn_tensor *[]){ah, ah}, 2);
    KT_CHECK(sh && kn_tensor_dtype(sh) == KN_F16 && kn_tensor_dim(sh, 2) == 2, "f16 stack");
    kn_tensor_unref(sh);
    kn_tensor *objs[] = {a, b, c, z, at, ah, bd, a2, a3, an, ant};
    for (int i = 0; i < 11; i++)
        kn_tensor_unref(objs[i]);
}

static void test_split_chunk(void)
{
    kn_tensor *x = G(&X234, KN_F32), *outs[4] = {0};
    KT_OK(kn_split(x, 3, SHAPE(1, 3, 0), 2, outs));
    const kt_array *want[3] = {&SPLIT_0, &SPLIT_1, &SPLIT_2};
    for (int i = 0; i < 3; i++) {
        kt_check_array("split", outs[i], want[i], 0, 0);
        check_copy("split", x, outs[i]);
        kn_tensor_unref(outs[i]);
    }
    int n = 0;
    kn_tensor *t = kn_transpose(x, 0, 1); /* (3,2,4): chunk axis 0 == x's axis 1 */
    KT_OK(kn_chunk(t, 2, 0, outs, &n));
    KT_CHECK(n == 2, "chunk gives 2 parts, got %d", n);
    for (int i = 0; i < n; i++) {
        kn_tensor *back = kn_transpose(outs[i], 0, 1);
        kt_check_array("chunk", back, i ? &CHUNK_1 : &CHUNK_0, 0, 0);
        kn_tensor_unref(back), kn_tensor_unref(outs[i]);
    }
    kn_tensor *six = kn_tensor_arange(KN_I64, 0, 6, 1);
    KT_OK(kn_chunk(six, 4, 0, outs, &n)); /* torch: 3 parts of 2 */
    KT_CHECK(n == 3, "chunk(6, 4) gives 3 parts, got %d", n);
    for (int i = 0; i < n; i++) {
        kt_check_values("chunk", outs[i], 1, SHAPE(2), (double[]){2 * i, 2 * i + 1}, 0, 0);
        kn_tensor_unref(outs[i]);
    }
    kn_tensor *e = kn_tensor_zeros(KN_BF16, 2, SHAPE(0, 3));
    KT_OK(kn_chunk(e, 3, 0, outs, &n));
    KT_CHECK(n == 3 && kn_tensor_dim(outs[2], 0) == 0, "chunk of an empty axis: 3 empty parts");
    for (int i = 0; i < n; i++)
        kn_tensor_unref(outs[i]);
    kn_tensor_unref(x), kn_tensor_unref(t), kn_tensor_unref(six), kn_tensor_unref(e);
}

static void test_pad(void)
{
    kn_tensor *a = G(&A23, KN_F32), *x = G(&X234, KN_F64);
    check("pad", kn_pad(a, SHAPE(1, 0, 2, 1), KN_PAD_CONSTANT, 1.5), &PAD_CONST);
    check("pad", kn_pad(a, SHAPE(1, 1, 2, 2), KN_PAD_REFLECT, 0), &PAD_REFLECT);
    check("pad", kn_pad(a, SHAPE(0, 2, 3, 1), KN_PAD_EDGE, 0), &PAD_EDGE);
    check("pad", kn_pad(x, SHAPE(0, 1, 1, 2, 3, 2), KN_PAD_REFLECT, 0), &PAD_REFLECT3);
    kn_tensor *at = kn_transpose(a, 0, 1);
    check("pad", kn_pad(at, SHAPE(1, 1, 0, 1), KN_PAD_CONSTANT, -2), &PAD_CONST_T);
    kn_tensor *ah = G(&A23, KN_BF16);
    check("pad", kn_pad(ah, SHAPE(1, 1, 2, 2), KN_PAD_REFLECT, 0), &PAD_REFLECT);
    kn_tensor *e = kn_tensor_zeros(KN_I32, 2, SHAPE(0, 2));
    kn_tensor *pe = kn_pad(e, SHAPE(1, 0, 0, 1), KN_PAD_CONSTANT, 7);
    kt_check_values("pad", pe, 2, SHAPE(1, 3), (double[]){7, 7, 7}, 0, 0);
    kn_tensor *objs[] = {a, x, at, ah, e, pe};
    for (int i = 0; i < 6; i++)
        kn_tensor_unref(objs[i]);
}

static void test_tile_repeat(void)
{
    kn_tensor *a = G(&A23, KN_F32), *at = kn_transpose(a, 0, 1);
    check("tile", kn_tile(a, 2, SHAPE(2, 1)), &TILE_21);
    check("tile", kn_tile(a, 3, SHAPE(2, 1, 2)), &TILE_212);
    check("tile", kn_tile(a, 1, SHAPE(3)), &TILE_3);
    check("tile", kn_tile(at, 2, SHAPE(2, 2)), &TILE_T_22);
    kn_tensor *t0 = kn_tile(a, 2, SHAPE(0, 2));
    KT_CHECK(t0 && kn_tensor_numel(t0) == 0 && kn_tensor_dim(t0, 1) == 6, "tile by 0");
    check("repeat", kn_repeat(a, 2, 1), &REPEAT_2_A1);
    check("repeat", kn_repeat(a, 3, -2), &REPEAT_3_A0);
    check("repeat", kn_repeat(at, 2, 0), &REPEAT_T_2_A0);
    kn_tensor *ah = G(&A23, KN_F16);
    check("repeat", kn_repeat(ah, 2, 1), &REPEAT_2_A1);
    kn_tensor *r0 = kn_repeat(a, 0, 1);
    KT_CHECK(r0 && kn_tensor_numel(r0) == 0 && kn_tensor_dim(r0, 0) == 2, "repeat 0 times");
    kn_tensor *objs[] = {a, at, t0, ah, r0};
    for (int i = 0; i < 5; i++)
        kn_tensor_unref(objs[i]);
}

/* ----------------------------------------------------------- gradients */
typedef struct gctx {
    int op, axis;
    int64_t a, b, c;
    const int64_t *v;
} gctx;

/* Every op on a non-contiguous (transposed) input where it can be. */
static kn_tensor *f_views(kn_tensor *const *in, void *p)
{
    const gctx *c = p;
    kn_tensor *t = kn_transpose(in[0], 0, 2), *y = NULL; /* (4,3,2) from (2,3,4) */
    switch (c->op) {
    case 0:
        y = kn_reshape(t, 2, SHAPE(6, 4));
        break;
    case 1:
        y = kn_flatten(t, 1, 2);
        break;
    case 2:
        y = kn_permute(t, 3, AXES(1, 2, 0));
        break;
    case 3:
        y = kn_transpose(t, 1, -1);
        break;
    case 4:
        y = kn_slice(t, c->axis, c->a, c->b, c->c);
        break;
    case 5:
        y = kn_narrow(t, c->axis, c->a, c->b);
        break;
    case 6:
        y = kn_unsqueeze(t, c->axis);
        break;
    case 7: {
        kn_tensor *u = kn_unsqueeze(t, 1);
        y = kn_squeeze(u, 0, NULL);
        kn_tensor_unref(u);
        break;
    }
    case 8:
        y = kn_contiguous(t);
        break;
    case 9:
        y = kn_cast(t, KN_F32);
        break;
    case 10: {
        kn_tensor *n = kn_narrow(t, 2, 0, 1); /* (4,3,1) */
        y = kn_expand(n, 4, SHAPE(2, 4, 3, 3));
        kn_tensor_unref(n);
        break;
    }
    }
    kn_tensor_unref(t);
    return y;
}

static void test_view_grads(void)
{
    kn_tensor *x = kt_rand(3, SHAPE(2, 3, 4), -1, 1, 7);
    struct {
        const char *op;
        gctx c;
        double eps, tol;
    } cases[] = {
        {"reshape", {.op = 0}, 1e-6, 1e-7},
        {"flatten", {.op = 1}, 1e-6, 1e-7},
        {"permute", {.op = 2}, 1e-6, 1e-7},
        {"transpose", {.op = 3}, 1e-6, 1e-7},
        {"slice", {.op = 4, .axis = 0, .a = 1, .b = INT64_MAX, .c = 2}, 1e-6, 1e-7},
        {"slice", {.op = 4, .axis = 1, .a = -2, .b = 3, .c = 1}, 1e-6, 1e-7},
        {"slice", {.op = 4, .axis = 0, .a = 0, .b = 4, .c = 3}, 1e-6, 1e-7},
        {"slice", {.op = 4, .axis = 2, .a = 5, .b = 9, .c = 1}, 1e-6, 1e-7}, /* empty */
        {"narrow", {.op = 5, .axis = 1, .a = -2, .b = 2}, 1e-6, 1e-7},
        {"unsqueeze", {.op = 6, .axis = 3}, 1e-6, 1e-7},
        {"squeeze", {.op = 7}, 1e-6, 1e-7},
        {"contiguous", {.op = 8}, 1e-6, 1e-7},
        {"cast", {.op = 9}, 1e-2, 1e-4},
        {"expand", {.op = 10}, 1e-6, 1e-7},
    };
    for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++)
        kt_gradcheck(cases[i].op, f_views, 1, &x, &cases[i].c, cases[i].eps, cases[i].tol);
    kn_tensor_unref(x);
}

static kn_tensor *f_concat(kn_tensor *const *in, void *p)
{
    const gctx *c = p;
    kn_tensor *t = kn_transpose(in[1], 0, 1); /* (3,2) -> (2,3) */
    kn_tensor *y = c->op == 0 ? kn_concat(3, (kn_tensor *[]){in[0], t, in[0]}, c->axis)
                              : kn_stack(3, (kn_tensor *[]){in[0], t, in[0]}, c->axis);
    kn_tensor_unref(t);
    return y;
}

static kn_tensor *f_split(kn_tensor *const *in, void *p)
{
    const gctx *c = p;
    kn_tensor *outs[4] = {0}, *y = NULL;
    int n = 3;
    kn_status s = c->op == 0 ? kn_split(in[0], 3, SHAPE(1, 2, 1), c->axis, outs)
                             : kn_chunk(in[0], 3, c->axis, outs, &n);
    /* part 1 unused: its gradient is missing (NULL) and must count as zeros */
    if (!s) y = kn_concat(2, (kn_tensor *[]){outs[2], outs[0]}, c->axis);
    for (int i = 0; i < 4; i++)
        kn_tensor_unref(outs[i]);
    return y;
}

static kn_tensor *f_pad(kn_tensor *const *in, void *p)
{
    const gctx *c = p;
    kn_tensor *t = kn_transpose(in[0], 0, 1);
    kn_tensor *y = kn_pad(t, c->v, (kn_pad_mode)c->op, 0.5);
    kn_tensor_unref(t);
    return y;
}

static kn_tensor *f_tile(kn_tensor *const *in, void *p)
{
    const gctx *c = p;
    kn_tensor *t = kn_transpose(in[0], 0, 1);
    kn_tensor *y = c->op == 0 ? kn_tile(t, (int)c->a, c->v) : kn_repeat(t, c->a, c->axis);
    kn_tensor_unref(t);
    return y;
}

static void test_copy_grads(void)
{
    kn_tensor *a = kt_rand(2, SHAPE(2, 3), -1, 1, 11), *b = kt_rand(2, SHAPE(3, 2), -1, 1, 12);
    kn_tensor *ab[2] = {a, b};
    kt_gradcheck("concat", f_concat, 2, ab, &(gctx){.op = 0, .axis = 1}, 1e-6, 1e-7);
    kt_gradcheck("concat", f_concat, 2, ab, &(gctx){.op = 0, .axis = 0}, 1e-6, 1e-7);
    kt_gradcheck("stack", f_concat, 2, ab, &(gctx){.op = 1, .axis = -1}, 1e-6, 1e-7);
    kn_tensor *x = kt_rand(3, SHAPE(2, 4, 3), -1, 1, 13);
    kt_gradcheck("split", f_split, 1, &x, &(gctx){.op = 0, .axis = 1}, 1e-6, 1e-7);
    kt_gradcheck("chunk", f_split, 1, &x, &(gctx){.op = 1, .axis = -1}, 1e-6, 1e-7);
    kn_tensor *m = kt_rand(2, SHAPE(4, 3), -1, 1, 14); /* transposed to (3,4) */
    kt_gradcheck("pad", f_pad, 1, &m, &(gctx){.op = KN_PAD_CONSTANT, .v = SHAPE(1, 0, 2, 1)}, 1e-6,
                 1e-7);
    kt_gradcheck("pad", f_pad, 1, &m, &(gctx){.op = KN_PAD_REFLECT, .v = SHAPE(2, 1, 3, 2)}, 1e-6,
                 1e-7);
    kt_gradcheck("pad", f_pad, 1, &m, &(gctx){.op = KN_PAD_EDGE, .v = SHAPE(0, 3, 2, 1)}, 1e-6,
                 1e-7);
    kt_gradcheck("tile", f_tile, 1, &m, &(gctx){.op = 0, .a = 3, .v = SHAPE(2, 1, 2)}, 1e-6, 1e-7);
    kt_gradcheck("tile", f_tile, 1, &m, &(gctx){.op = 0, .a = 1, .v = SHAPE(3)}, 1e-6, 1e-7);
    kt_gradcheck("repeat", f_tile, 1, &m, &(gctx){.op = 1, .axis = 1, .a = 2}, 1e-6, 1e-7);
    kt_gradcheck("repeat", f_tile, 1, &m, &(gctx){.op = 1, .axis = 0, .a = 3}, 1e-6, 1e-7);
    kn_tensor_unref(a), kn_tensor_unref(b), kn_tensor_unref(x), kn_tensor_unref(m);
}

/* Second derivative through reflect pad (scatter_add <-> gather) and slice
 * with a step (pad of pad): d/dx sum(w * grad) under create_graph. */
static void test_double_backward(void)
{
    kn_tensor *x = kt_rand(1, SHAPE(5), -1, 1, 21);
    kn_tensor_set_requires_grad(x, true);
    kn_autograd_record(true);
    kn_tensor *p = kn_pad(x, SHAPE(2, 3), KN_PAD_REFLECT, 0);
    kn_tensor *s = kn_slice(p, 0, 1, 9, 3);
    kn_tensor *sq = kn_mul(s, s), *l = kn_sum(sq, 0, NULL, false);
    KT_OK(kn_backward_ex(l, NULL, KN_BACKWARD_CREATE_GRAPH));
    kn_tensor *g = kn_tensor_ref(kn_tensor_grad(x));
    kn_tensor_zero_grad(x);
    kn_tensor *gs = kn_sum(g, 0, NULL, false);
    KT_OK(kn_backward(gs, NULL));
    kn_autograd_record(false);
    /* p = x[2,1,0,1,2,3,4,3,2,1], s = p[1], p[4], p[7] = x1, x2, x3;
     * l = x1^2 + x2^2 + x3^2, grad = 2x at 1..3, d(sum grad)/dx = 2 there */
    kt_check_values("pad", kn_tensor_grad(x), 1, SHAPE(5), (double[]){0, 2, 2, 2, 0}, 0, 1e-12);
    kn_tensor *objs[] = {x, p, s, sq, l, g, gs};
    for (int i = 0; i < 7; i++)
        kn_tensor_unref(objs[i]);
}

/* ---------------------------------------------------------- bad input */
static void test_bad_inputs(void)
{
    kn_tensor *x = G(&X234, KN_F32), *a = G(&A23, KN_F32), *b = G(&B21, KN_F32);
    int64_t huge = (int64_t)1 << 40;
    kn_tensor *big = kn_tensor_symbolic(KN_F32, 2, SHAPE((int64_t)1 << 30, (int64_t)1 << 28));
    KT_NOTNULL(big);
    kn_tensor *outs[4];
    int n;
    kt_expect_fail("reshape", kn_reshape(x, 2, SHAPE(5, 5)), "cannot reshape");
    kt_expect_fail("reshape", kn_reshape(x, 2, SHAPE(-1, -1)), "-1");
    kt_expect_fail("reshape", kn_reshape(x, 2, SHAPE(-2, 12)), "dim 0");
    kt_expect_fail("reshape", kn_reshape(x, 9, SHAPE(1)), "ndim");
    kt_expect_fail("reshape", kn_reshape(NULL, 1, SHAPE(1)), "NULL");
    kt_expect_fail("reshape", kn_reshape(big, 3, SHAPE(huge, huge, huge)), "overflow");
    kt_expect_fail("flatten", kn_flatten(x, 2, 1), "after");
    kt_expect_fail("flatten", kn_flatten(x, 0, 3), "out of range");
    kt_expect_fail("flatten", kn_flatten(NULL, 0, 1), "NULL");
    kt_expect_fail("squeeze", kn_squeeze(x, 1, AXES(3)), "out of range");
    kt_expect_fail("squeeze", kn_squeeze(x, 2, AXES(0, -3)), "twice");
    kt_expect_fail("squeeze", kn_squeeze(x, 1, NULL), "axes");
    kt_expect_fail("squeeze", kn_squeeze(NULL, 0, NULL), "NULL");
    kt_expect_fail("unsqueeze", kn_unsqueeze(x, 4), "out of range");
    kt_expect_fail("unsqueeze", kn_unsqueeze(x, -5), "out of range");
    kn_tensor *d8 = kn_tensor_symbolic(KN_F32, 8, SHAPE(1, 1, 1, 1, 1, 1, 1, 1));
    kt_expect_fail("unsqueeze", kn_unsqueeze(d8, 0), "dims");
    kt_expect_fail("unsqueeze", kn_unsqueeze(NULL, 0), "NULL");
    kt_expect_fail("permute", kn_permute(x, 2, AXES(0, 1)), "entries");
    kt_expect_fail("permute", kn_permute(x, 3, AXES(0, 1, 1)), "twice");
    kt_expect_fail("permute", kn_permute(x, 3, AXES(0, 1, 3)), "out of range");
    kt_expect_fail("permute", kn_permute(x, 3, NULL), "perm");
    kt_expect_fail("transpose", kn_transpose(x, 0, 3), "out of range");
    kt_expect_fail("transpose", kn_transpose(NULL, 0, 1), "NULL");
    kt_expect_fail("slice", kn_slice(x, 0, 0, 1, 0), "step");
    kt_expect_fail("slice", kn_slice(x, 0, 1, 0, -1), "step");
    kt_expect_fail("slice", kn_slice(x, 5, 0, 1, 1), "out of range");
    kt_expect_fail("slice", kn_slice(NULL, 0, 0, 1, 1), "NULL");
    kt_expect_fail("narrow", kn_narrow(x, 1, 2, 2), "do not fit");
    kt_expect_fail("narrow", kn_narrow(x, 1, -4, 1), "do not fit");
    kt_expect_fail("narrow", kn_narrow(x, 1, 0, -1), "do not fit");
    kt_expect_fail("narrow", kn_narrow(x, -4, 0, 1), "out of range");
    kt_expect_fail("expand", kn_expand(x, 3, SHAPE(2, 5, 4)), "cannot expand");
    kt_expect_fail("expand", kn_expand(x, 2, SHAPE(3, 4)), "dims");
    kt_expect_fail("expand", kn_expand(NULL, 1, SHAPE(1)), "NULL");
    kt_expect_fail("contiguous", kn_contiguous(NULL), "NULL");
    kt_expect_fail("cast", kn_cast(x, (kn_dtype)42), "dtype");
    kt_expect_fail("cast", kn_cast(NULL, KN_F32), "NULL");
    /* copies */
    kt_expect_fail("concat", kn_concat(2, (kn_tensor *[]){a, x}, 0), "shape");
    kt_expect_fail("concat", kn_concat(2, (kn_tensor *[]){a, b}, 0), "only axis 0");
    kt_expect_fail("concat", kn_concat(2, (kn_tensor *[]){a, b}, 2), "out of range");
    kt_expect_fail("concat", kn_concat(0, NULL, 0), "inputs");
    kt_expect_fail("concat", kn_concat(2, (kn_tensor *[]){a, NULL}, 0), "NULL");
    kn_tensor *sc = kn_tensor_scalar(KN_F32, 1);
    kt_expect_fail("concat", kn_concat(1, &sc, 0), "0-d");
    kt_expect_fail("concat", kn_concat(2, (kn_tensor *[]){big, big}, 1), "overflow");
    kt_expect_fail("stack", kn_stack(2, (kn_tensor *[]){a, b}, 0), "shape");
    kt_expect_fail("stack", kn_stack(2, (kn_tensor *[]){a, a}, 3), "out of range");
    kt_expect_fail("stack", kn_stack(65, (kn_tensor *[65]){a}, 0), "inputs");
    kt_expect_fail("stack", kn_stack(1, (kn_tensor *[]){d8}, 0), "dims");
    kt_expect_fail("stack", kn_stack(1, (kn_tensor *[]){NULL}, 0), "NULL");
    kt_expect_fail_status("split", kn_split(x, 2, SHAPE(1, 2), 2, outs), "add up");
    kt_expect_fail_status("split", kn_split(x, 2, SHAPE(5, -1), 2, outs), "sizes");
    kt_expect_fail_status("split", kn_split(x, 1, SHAPE(4), 3, outs), "out of range");
    kt_expect_fail_status("split", kn_split(x, 0, SHAPE(4), 2, outs), "parts");
    kt_expect_fail_status("split", kn_split(x, 1, NULL, 2, outs), "NULL");
    kt_expect_fail_status("split", kn_split(NULL, 1, SHAPE(4), 2, outs), "NULL");
    kt_expect_fail_status("chunk", kn_chunk(x, 0, 1, outs, &n), "chunks");
    kt_expect_fail_status("chunk", kn_chunk(x, 2, 3, outs, &n), "out of range");
    kt_expect_fail_status("chunk", kn_chunk(NULL, 2, 0, outs, &n), "NULL");
    kt_expect_fail_status("chunk", kn_chunk(x, 2, 0, NULL, &n), "NULL");
    kt_expect_fail("pad", kn_pad(a, SHAPE(-1, 0, 0, 0), KN_PAD_CONSTANT, 0), "expected >= 0");
    kt_expect_fail("pad", kn_pad(a, SHAPE(0, 0, 3, 0), KN_PAD_REFLECT, 0), "reflect");
    kt_expect_fail("pad", kn_pad(a, SHAPE(0, 0, 0, 1), (kn_pad_mode)7, 0), "mode");
    kn_tensor *e = kn_tensor_zeros(KN_F32, 1, SHAPE(0));
    kt_expect_fail("pad", kn_pad(e, SHAPE(1, 0), KN_PAD_EDGE, 0), "empty");
    kt_expect_fail("pad", kn_pad(a, NULL, KN_PAD_CONSTANT, 0), "NULL");
    kt_expect_fail("pad", kn_pad(NULL, SHAPE(0, 0), KN_PAD_CONSTANT, 0), "NULL");
    kt_expect_fail("pad", kn_pad(big, SHAPE(0, 0, INT64_MAX - 4, 0), KN_PAD_CONSTANT, 0),
                   "overflow");
    kt_expect_fail("tile", kn_tile(a, 2, SHAPE(-1, 2)), "reps");
    kt_expect_fail("tile", kn_tile(a, 9, SHAPE(1)), "reps");
    kt_expect_fail("tile", kn_tile(big, 2, SHAPE(huge, 1)), "overflow");
    kt_expect_fail("tile", kn_tile(NULL, 1, SHAPE(1)), "NULL");
    kt_expect_fail("repeat", kn_repeat(a, -1, 0), "repeats");
    kt_expect_fail("repeat", kn_repeat(a, 2, 2), "out of range");
    kt_expect_fail("repeat", kn_repeat(sc, 2, 0), "out of range");
    kt_expect_fail("repeat", kn_repeat(big, huge, 0), "overflow");
    kt_expect_fail("repeat", kn_repeat(NULL, 2, 0), "NULL");
    /* symbolic inputs: views and copies infer without data */
    kn_tensor *sym = kn_tensor_symbolic(KN_F32, 3, SHAPE(2, 3, 4)), *sv = kn_transpose(sym, 0, 2);
    KT_CHECK(sv && kn_tensor_is_symbolic(sv) && kn_tensor_dim(sv, 0) == 4, "symbolic transpose");
    kn_tensor *sp = kn_pad(sym, SHAPE(1, 1, 0, 0, 0, 0), KN_PAD_EDGE, 0);
    KT_CHECK(sp && kn_tensor_is_symbolic(sp) && kn_tensor_dim(sp, 0) == 4, "symbolic pad");
    kn_tensor *objs[] = {x, a, b, big, d8, sc, e, sym, sv, sp};
    for (int i = 0; i < 10; i++)
        kn_tensor_unref(objs[i]);
}

/* A representative chain under recording, forward and backward. */
static kn_status walk_pad_concat(void *ctx)
{
    (void)ctx;
    kn_tensor *x = kn_tensor_ones(KN_F64, 2, SHAPE(2, 3)), *t[8] = {0};
    if (!x) return kn_last_status();
    kn_status s = kn_tensor_set_requires_grad(x, true);
    kn_autograd_record(true);
    t[0] = kn_transpose(x, 0, 1);
    t[1] = kn_pad(t[0], SHAPE(1, 1, 1, 0), KN_PAD_REFLECT, 0);
    t[2] = kn_slice(t[1], 0, 0, 5, 2);
    t[3] = kn_concat(2, (kn_tensor *[]){t[2], t[2]}, 1);
    t[4] = kn_tile(t[3], 1, SHAPE(2));
    t[5] = kn_sum(t[4], 0, NULL, false);
    kn_autograd_record(false);
    if (!s && !t[5]) s = kn_last_status();
    if (!s) s = kn_backward(t[5], NULL);
    for (int i = 7; i >= 0; i--)
        kn_tensor_unref(t[i]);
    kn_tensor_unref(x);
    return s;
}

static void test_alloc_walk(void)
{
    int k = kt_alloc_walk("pad/slice/concat/tile + backward", walk_pad_concat, NULL);
    KT_CHECK(k > 10, "walked %d failure points", k);
}

int main(void)
{
    KT_RUN(test_reshape);
    KT_RUN(test_flatten_squeeze_unsqueeze);
    KT_RUN(test_permute_transpose);
    KT_RUN(test_slice_narrow);
    KT_RUN(test_expand_cast);
    KT_RUN(test_concat_stack);
    KT_RUN(test_split_chunk);
    KT_RUN(test_pad);
    KT_RUN(test_tile_repeat);
    KT_RUN(test_view_grads);
    KT_RUN(test_copy_grads);
    KT_RUN(test_double_backward);
    KT_RUN(test_bad_inputs);
    KT_RUN(test_alloc_walk);
    return kt_finish();
}
