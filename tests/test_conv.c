/* test_conv.c — conv1d/2d/3d, conv_transpose1d/2d/3d and the internal
 * gradient ops conv_grad_input/conv_grad_weight: values against PyTorch
 * (tests/golden/conv.h: strides, asymmetric pads, dilation, groups,
 * depthwise, NHWC, "same", zero batch), f32/f16/bf16, strided inputs,
 * gradients (first and, through the gradient ops, second order), fast paths
 * against the reference kernels for conv_transpose1d/3d, bad inputs and an
 * allocation-failure walk. */
#include "harness.h"

#include "golden/conv.h"
#include "ops/op.h" /* the gradient ops are called directly through their entries */

#include <stdlib.h>

#define LEN(a) ((int)(sizeof(a) / sizeof((a)[0])))

typedef enum { CONV, TRANSPOSE } kind;

typedef struct conv_case {
    const char *name;
    kind k;
    int nsp;
    const kt_array *x, *w, *b, *y;
    kn_conv_params p;
} conv_case;

#define NHWC .layout = KN_LAYOUT_NHWC
static const conv_case cases[] = {
    {"c1", CONV, 1, &c1_x, &c1_w, &c1_b, &c1_y, {.stride = {2}, .pad_begin = {1}, .pad_end = {1}}},
    {"c1_nlc", CONV, 1, &c1_nlc_x, &c1_nlc_w, NULL, &c1_nlc_y, {.dilation = {2}, NHWC}},
    {"c2", CONV, 2, &c2_x, &c2_w, &c2_b, &c2_y, {.pad_begin = {1, 1}, .pad_end = {1, 1}}},
    {"c2_asym",
     CONV,
     2,
     &c2_asym_x,
     &c2_asym_w,
     &c2_asym_b,
     &c2_asym_y,
     {.stride = {2, 1}, .pad_begin = {1, 0}, .pad_end = {2, 1}, .dilation = {1, 2}}},
    {"c2_grp",
     CONV,
     2,
     &c2_grp_x,
     &c2_grp_w,
     &c2_grp_b,
     &c2_grp_y,
     {.stride = {2, 2}, .groups = 2}},
    {"c2_dw",
     CONV,
     2,
     &c2_dw_x,
     &c2_dw_w,
     NULL,
     &c2_dw_y,
     {.pad_begin = {1, 1}, .pad_end = {1, 1}, .groups = 3}},
    {"c2_nhwc",
     CONV,
     2,
     &c2_nhwc_x,
     &c2_nhwc_w,
     &c2_nhwc_b,
     &c2_nhwc_y,
     {.stride = {1, 2},
      .pad_begin = {0, 1},
      .pad_end = {1, 1},
      .dilation = {2, 1},
      .groups = 2,
      NHWC}},
    {"c2_same",
     CONV,
     2,
     &c2_same_x,
     &c2_same_w,
     &c2_same_b,
     &c2_same_y,
     {.stride = {2, 2}, .pad_same = true, .pad_begin = {9, 9}}},
    {"c2_1x1", CONV, 2, &c2_1x1_x, &c2_1x1_w, NULL, &c2_1x1_y, {.groups = 1}},
    {"c2_n0", CONV, 2, &c2_n0_x, &c2_n0_w, NULL, &c2_n0_y, {.groups = 1}},
    {"c3",
     CONV,
     3,
     &c3_x,
     &c3_w,
     &c3_b,
     &c3_y,
     {.stride = {1, 2, 1}, .pad_begin = {1, 0, 1}, .pad_end = {1, 0, 1}}},
    {"c3_nhwc",
     CONV,
     3,
     &c3_nhwc_x,
     &c3_nhwc_w,
     NULL,
     &c3_nhwc_y,
     {.stride = {1, 1, 2},
      .pad_begin = {0, 1, 0},
      .pad_end = {1, 0, 1},
      .dilation = {1, 2, 1},
      .groups = 2,
      NHWC}},
    {"t1",
     TRANSPOSE,
     2,
     &t1_x,
     &t1_w,
     &t1_b,
     &t1_y,
     {.stride = {2, 2}, .pad_begin = {1, 1}, .pad_end = {1, 1}, .output_padding = {1, 1}}},
    {"t2",
     TRANSPOSE,
     2,
     &t2_x,
     &t2_w,
     NULL,
     &t2_y,
     {.stride = {1, 2},
      .pad_begin = {0, 1},
      .pad_end = {1, 0},
      .output_padding = {0, 1},
      .dilation = {2, 1},
      .groups = 2}},
    {"t3",
     TRANSPOSE,
     2,
     &t3_x,
     &t3_w,
     &t3_b,
     &t3_y,
     {.stride = {2, 1}, .output_padding = {1, 0}, NHWC}},
    {"t1d",
     TRANSPOSE,
     1,
     &t1d_x,
     &t1d_w,
     &t1d_b,
     &t1d_y,
     {.stride = {2}, .pad_begin = {1}, .pad_end = {1}, .output_padding = {1}}},
    {"t1d_nlc",
     TRANSPOSE,
     1,
     &t1d_nlc_x,
     &t1d_nlc_w,
     &t1d_nlc_b,
     &t1d_nlc_y,
     {.stride = {3}, .pad_end = {2}, .output_padding = {2}, .dilation = {2}, .groups = 2, NHWC}},
    {"t1d_s1",
     TRANSPOSE,
     1,
     &t1d_s1_x,
     &t1d_s1_w,
     NULL,
     &t1d_s1_y,
     {.pad_begin = {2}, .pad_end = {1}}},
    {"t3d",
     TRANSPOSE,
     3,
     &t3d_x,
     &t3d_w,
     &t3d_b,
     &t3d_y,
     {.stride = {2, 1, 2},
      .pad_begin = {1, 0, 0},
      .pad_end = {1, 0, 0},
      .output_padding = {1, 0, 1},
      .dilation = {1, 2, 1}}},
    {"t3d_ndhwc",
     TRANSPOSE,
     3,
     &t3d_ndhwc_x,
     &t3d_ndhwc_w,
     NULL,
     &t3d_ndhwc_y,
     {.stride = {1, 2, 1},
      .pad_begin = {0, 1, 1},
      .pad_end = {1, 0, 1},
      .output_padding = {0, 1, 0},
      .dilation = {2, 1, 1},
      .groups = 2,
      NHWC}},
    {"t3d_grp",
     TRANSPOSE,
     3,
     &t3d_grp_x,
     &t3d_grp_w,
     &t3d_grp_b,
     &t3d_grp_y,
     {.stride = {1, 2, 2},
      .pad_begin = {0, 1, 0},
      .pad_end = {0, 0, 1},
      .output_padding = {0, 1, 1},
      .dilation = {1, 1, 2},
      .groups = 3}},
};

static const conv_case *find_case(const char *name)
{
    for (int i = 0; i < LEN(cases); i++)
        if (!strcmp(cases[i].name, name)) return &cases[i];
    return NULL;
}

static const char *op_name(const conv_case *c)
{
    static const char *names[4] = {"", "conv1d", "conv2d", "conv3d"};
    static const char *tnames[4] = {"", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"};
    return (c->k == TRANSPOSE ? tnames : names)[c->nsp];
}

static kn_tensor *run(kind k, int nsp, kn_tensor *x, kn_tensor *w, kn_tensor *b,
                      const kn_conv_params *p)
{
    if (k == TRANSPOSE)
        return nsp == 1   ? kn_conv_transpose1d(x, w, b, p)
               : nsp == 2 ? kn_conv_transpose2d(x, w, b, p)
                          : kn_conv_transpose3d(x, w, b, p);
    return nsp == 1   ? kn_conv1d(x, w, b, p)
           : nsp == 2 ? kn_conv2d(x, w, b, p)
                      : kn_conv3d(x, w, b, p);
}

static kn_tensor *run_case(const conv_case *c, kn_tensor *x, kn_tensor *w, kn_tensor *b)
{
    return run(c->k, c->nsp, x, w, b, &c->p);
}

static void check_close(const char *op, const kn_tensor *t, const kn_tensor *ref, double rtol,
                        double atol)
{
    KT_NOTNULL(ref);
    if (!ref) return;
    int64_t n = kn_tensor_numel(ref);
    double *buf = malloc(sizeof(double) * (size_t)(n ? n : 1));
    KT_OK(kn_tensor_copy_to(ref, KN_F64, buf, sizeof(double) * (size_t)n));
    kt_check_values(op, t, kn_tensor_ndim(ref), kn_tensor_shape(ref), buf, rtol, atol);
    free(buf);
}

static void test_forward_values(void)
{
    const kn_dtype dts[2] = {KN_F64, KN_F32};
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < LEN(cases); i++) {
            const conv_case *c = &cases[i];
            double tol = d ? 1e-5 : 1e-12;
            kn_tensor *x = kt_from_array(c->x, dts[d]), *w = kt_from_array(c->w, dts[d]);
            kn_tensor *b = c->b ? kt_from_array(c->b, dts[d]) : NULL;
            kn_tensor *y = run_case(c, x, w, b);
            if (!kt_check_array(op_name(c), y, c->y, tol, tol))
                fprintf(stderr, "  case %s (%s)\n", c->name, kn_dtype_name(dts[d]));
            kn_tensor_unref(y), kn_tensor_unref(x), kn_tensor_unref(w), kn_tensor_unref(b);
        }
}

/* f16/bf16 against f64 on the same rounded inputs (compute is f32). */
static void test_low_precision(void)
{
    const kn_dtype dts[2] = {KN_F16, KN_BF16};
    const double rtol[2] = {2.0 / 1024, 2.0 / 128};
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < LEN(cases); i++) {
            const conv_case *c = &cases[i];
            kn_tensor *x = kt_from_array(c->x, dts[d]), *w = kt_from_array(c->w, dts[d]);
            kn_tensor *b = c->b ? kt_from_array(c->b, dts[d]) : NULL;
            kn_tensor *x64 = kn_cast(x, KN_F64), *w64 = kn_cast(w, KN_F64);
            kn_tensor *b64 = b ? kn_cast(b, KN_F64) : NULL;
            kn_tensor *y = run_case(c, x, w, b), *ref = run_case(c, x64, w64, b64);
            KT_CHECK(y && kn_tensor_dtype(y) == dts[d], "same dtype out");
            check_close(op_name(c), y, ref, rtol[d], 2e-3);
            kn_tensor *all[] = {x, w, b, x64, w64, b64, y, ref};
            for (int k = 0; k < LEN(all); k++)
                kn_tensor_unref(all[k]);
        }
}

/* x and w as permuted views of differently laid out copies: f64 runs the
 * reference kernels, f32 the fast paths (which copy what they cannot stride). */
static void test_strided_inputs(void)
{
    const char *names[] = {"c2_asym", "c2_grp", "t1", "t1d", "t1d_s1", "t3d", "t3d_ndhwc"};
    const kn_dtype dts[2] = {KN_F64, KN_F32};
    for (int d = 0; d < 2; d++)
        for (int j = 0; j < LEN(names); j++) {
            const conv_case *c = find_case(names[j]);
            int nd = c->nsp + 2, to_last[5], to_first[5];
            for (int i = 0; i < nd; i++) { /* channel dim 1 moved last, and back */
                to_last[i] = i == 0 ? 0 : i == nd - 1 ? 1 : i + 1;
                to_first[i] = i == 0 ? 0 : i == 1 ? nd - 1 : i - 1;
            }
            kn_tensor *x = kt_from_array(c->x, dts[d]), *w = kt_from_array(c->w, dts[d]);
            kn_tensor *b = c->b ? kt_from_array(c->b, dts[d]) : NULL;
            kn_tensor *xp = kn_permute(x, nd, to_last), *xc = kn_contiguous(xp);
            kn_tensor *xs = kn_permute(xc, nd, to_first);
            kn_tensor *wt = kn_transpose(w, nd - 2, nd - 1), *wc = kn_contiguous(wt),
                      *ws = kn_transpose(wc, nd - 2, nd - 1);
            KT_CHECK(xs && ws && !kn_tensor_is_contiguous(xs) && !kn_tensor_is_contiguous(ws),
                     "%s: views", c->name);
            kn_tensor *y = run_case(c, xs, ws, b);
            double tol = d ? 1e-5 : 1e-12;
            if (!kt_check_array(op_name(c), y, c->y, tol, tol))
                fprintf(stderr, "  case %s strided (%s)\n", c->name, kn_dtype_name(dts[d]));
            kn_tensor *all[] = {x, w, b, xp, xc, xs, wt, wc, ws, y};
            for (int k = 0; k < LEN(all); k++)
                kn_tensor_unref(all[k]);
        }
}

/* Gradients against PyTorch's autograd: the bias gradient, and the ops
 * computing x.grad (conv_grad_input for a conv, the conv itself for a
 * conv_transpose) and w.grad (conv_grad_weight). */
static void test_grad_values(void)
{
    static const char *conv_names[4] = {"", "conv1d", "conv2d", "conv3d"};
    const struct {
        const char *name;
        const kt_array *gy, *gx, *gw, *gb;
    } g[] = {{"c2", &c2_gy, &c2_gx, &c2_gw, &c2_gb},
             {"c2_nhwc", &c2_nhwc_gy, &c2_nhwc_gx, &c2_nhwc_gw, &c2_nhwc_gb},
             {"t1d", &t1d_gy, &t1d_gx, &t1d_gw, &t1d_gb},
             {"t1d_nlc", &t1d_nlc_gy, &t1d_nlc_gx, &t1d_nlc_gw, &t1d_nlc_gb},
             {"t1d_s1", &t1d_s1_gy, &t1d_s1_gx, &t1d_s1_gw, NULL},
             {"t3d", &t3d_gy, &t3d_gx, &t3d_gw, &t3d_gb},
             {"t3d_ndhwc", &t3d_ndhwc_gy, &t3d_ndhwc_gx, &t3d_ndhwc_gw, NULL},
             {"t3d_grp", &t3d_grp_gy, &t3d_grp_gx, &t3d_grp_gw, &t3d_grp_gb}};
    const kn_dtype dts[2] = {KN_F64, KN_F32};
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < LEN(g); i++) {
            const conv_case *c = find_case(g[i].name);
            double tol = d ? 1e-5 : 1e-12;
            kn_tensor *x = kt_from_array(c->x, dts[d]), *w = kt_from_array(c->w, dts[d]);
            kn_tensor *b = c->b ? kt_from_array(c->b, dts[d]) : NULL,
                      *gy = kt_from_array(g[i].gy, dts[d]);
            kn_tensor_set_requires_grad(x, true), kn_tensor_set_requires_grad(w, true);
            if (b) kn_tensor_set_requires_grad(b, true);
            kn_autograd_record(true);
            kn_tensor *y = run_case(c, x, w, b);
            kn_autograd_record(false);
            KT_OK(kn_backward(y, gy));
            bool ok = kt_check_array(c->k == TRANSPOSE ? conv_names[c->nsp] : "conv_grad_input",
                                     kn_tensor_grad(x), g[i].gx, tol, tol);
            ok &= kt_check_array("conv_grad_weight", kn_tensor_grad(w), g[i].gw, tol, tol);
            if (b) ok &= kt_check_array(op_name(c), kn_tensor_grad(b), g[i].gb, tol, tol);
            if (!ok) fprintf(stderr, "  case %s (%s)\n", c->name, kn_dtype_name(dts[d]));
            kn_tensor *all[] = {x, w, b, gy, y};
            for (int k = 0; k < LEN(all); k++)
                kn_tensor_unref(all[k]);
        }
}

/* Same bits on 1 and 4 threads. */
static void test_thread_invariance(void)
{
    const conv_case *c = &cases[6];
    kn_tensor *x = kt_from_array(c->x, KN_F32), *w = kt_from_array(c->w, KN_F32);
    int old = kn_get_num_threads();
    kn_set_num_threads(1);
    kn_tensor *y1 = run_case(c, x, w, NULL);
    kn_set_num_threads(4);
    kn_tensor *y4 = run_case(c, x, w, NULL);
    kn_set_num_threads(old);
    KT_CHECK(kt_equal_bits(y1, y4), "1 and 4 threads agree");
    kn_tensor_unref(x), kn_tensor_unref(w), kn_tensor_unref(y1), kn_tensor_unref(y4);
}

/* ---- conv_transpose1d/3d: the fast paths (f32, best ISA, 1 and 2 threads)
 * against the reference kernels (ISA capped to ref), forward and gradients.
 * The problems reach the 1x1 GEMMs (NCHW and NHWC), the direct small-image
 * kernel (stride 1, one group, N >= 2), per-image parallel runs (N >= 4)
 * and the general col2im paths. */
typedef struct tr_prob {
    int nsp;
    int64_t xs[5], ws[5];
    bool bias;
    kn_conv_params p;
} tr_prob;

/* y, then x.grad, w.grad, bias.grad for loss = sum(y * gy). */
static void tr_run(const tr_prob *t, kn_tensor *x, kn_tensor *w, kn_tensor *b, kn_tensor **out)
{
    kn_tensor_set_requires_grad(x, true), kn_tensor_set_requires_grad(w, true);
    if (b) kn_tensor_set_requires_grad(b, true);
    kn_autograd_record(true);
    out[0] = run(TRANSPOSE, t->nsp, x, w, b, &t->p);
    kn_autograd_record(false);
    KT_NOTNULL(out[0]);
    kn_tensor *gy = out[0] ? kt_rand(t->nsp + 2, kn_tensor_shape(out[0]), -1, 1, 99) : NULL;
    kn_tensor *gy32 = gy ? kn_cast(gy, kn_tensor_dtype(x)) : NULL;
    if (gy32) KT_OK(kn_backward(out[0], gy32));
    out[1] = kn_tensor_grad(x), out[2] = kn_tensor_grad(w), out[3] = b ? kn_tensor_grad(b) : NULL;
    for (int i = 1; i < 4; i++)
        if (out[i]) kn_tensor_ref(out[i]);
    kn_tensor_unref(gy), kn_tensor_unref(gy32);
}

static void test_transpose_fast_vs_ref(void)
{
#define L1 .layout = KN_LAYOUT_NHWC
    const tr_prob probs[] = {
        {1, {3, 5, 12}, {5, 4, 3}, true, {.pad_begin = {1}, .pad_end = {1}}},
        {1, {2, 7, 6}, {6, 4, 1}, true, {.groups = 2, L1}},
        {1, {2, 6, 7}, {6, 3, 1}, true, {.groups = 1}},
        {1,
         {2, 9, 4},
         {4, 3, 5},
         false,
         {.stride = {3},
          .dilation = {2},
          .pad_begin = {2},
          .pad_end = {1},
          .output_padding = {1},
          L1}},
        {1, {5, 8, 20}, {8, 6, 4}, true, {.stride = {2}, .pad_end = {1}}},
        {3,
         {2, 4, 3, 4, 3},
         {4, 3, 2, 3, 2},
         true,
         {.stride = {2, 1, 2},
          .pad_begin = {1, 0, 1},
          .pad_end = {0, 1, 1},
          .output_padding = {1, 0, 1}}},
        {3,
         {2, 3, 2, 4, 6},
         {6, 2, 3, 2, 2},
         false,
         {.stride = {1, 2, 1}, .dilation = {2, 1, 1}, .groups = 2, L1}},
        {3, {2, 3, 1, 5, 9}, {3, 4, 1, 3, 3}, true, {.pad_begin = {0, 1, 1}, .pad_end = {0, 1, 1}}},
        {3, {1, 8, 2, 3, 4}, {8, 5, 1, 1, 1}, true, {.groups = 1}},
        {3, {4, 2, 2, 3, 4}, {4, 2, 2, 2, 2}, true, {.stride = {2, 2, 2}, .groups = 2, L1}},
    };
#undef L1
    static const char *what[4] = {"y", "x.grad", "w.grad", "bias.grad"};
    kn_isa best = kn_isa_max();
    int threads = kn_get_num_threads();
    for (int i = 0; i < LEN(probs); i++) {
        const tr_prob *t = &probs[i];
        const char *op = t->nsp == 1 ? "conv_transpose1d" : "conv_transpose3d";
        int64_t cout = t->ws[1] * (t->p.groups ? t->p.groups : 1);
        kn_tensor *x64 = kt_rand(t->nsp + 2, t->xs, -1, 1, 100 + (uint64_t)i * 3);
        kn_tensor *w64 = kt_rand(t->nsp + 2, t->ws, -1, 1, 101 + (uint64_t)i * 3);
        kn_tensor *b64 = t->bias ? kt_rand(1, &cout, -1, 1, 102 + (uint64_t)i * 3) : NULL;
        kn_tensor *ref[4] = {0}, *f1[4] = {0}, *f2[4] = {0};
        kn_tensor *runs[3][3]; /* x, w, b per run: fresh leaves each time */
        for (int r = 0; r < 3; r++) {
            runs[r][0] = kn_cast(x64, KN_F32), runs[r][1] = kn_cast(w64, KN_F32);
            runs[r][2] = b64 ? kn_cast(b64, KN_F32) : NULL;
        }
        kn_set_isa(KN_ISA_REF);
        tr_run(t, runs[0][0], runs[0][1], runs[0][2], ref);
        kn_set_isa(best);
        kn_set_num_threads(1);
        tr_run(t, runs[1][0], runs[1][1], runs[1][2], f1);
        kn_set_num_threads(2);
        tr_run(t, runs[2][0], runs[2][1], runs[2][2], f2);
        kn_set_num_threads(threads);
        for (int k = 0; k < (t->bias ? 4 : 3); k++) {
            KT_CHECK(kt_max_abs_diff(f1[k], ref[k]) < 1e-4, "%s problem %d: %s fast vs ref %g", op,
                     i, what[k], kt_max_abs_diff(f1[k], ref[k]));
            KT_CHECK(f1[k] && f2[k] && kt_equal_bits(f1[k], f2[k]),
                     "%s problem %d: %s differs on 1 and 2 threads", op, i, what[k]);
        }
        for (int k = 0; k < 4; k++)
            kn_tensor_unref(ref[k]), kn_tensor_unref(f1[k]), kn_tensor_unref(f2[k]);
        for (int r = 0; r < 3; r++)
            for (int k = 0; k < 3; k++)
                kn_tensor_unref(runs[r][k]);
        kn_tensor_unref(x64), kn_tensor_unref(w64), kn_tensor_unref(b64);
    }
}

/* ---- first-order gradient checks (f64) */
typedef struct gc_ctx {
    kind k;
    int nsp;
    kn_conv_params p;
} gc_ctx;

static kn_tensor *f_conv(kn_tensor *const *in, void *ctx)
{
    const gc_ctx *c = ctx;
    return run(c->k, c->nsp, in[0], in[1], in[2], &c->p);
}

static void gradcheck_case(const char *op, kind k, int nsp, int xnd, const int64_t *xs,
                           const int64_t *ws, int64_t cb, kn_conv_params p, uint64_t seed)
{
    gc_ctx c = {k, nsp, p};
    kn_tensor *in[3] = {kt_rand(xnd, xs, -1, 1, seed), kt_rand(nsp + 2, ws, -1, 1, seed + 1),
                        cb ? kt_rand(1, &cb, -1, 1, seed + 2) : NULL};
    kt_gradcheck(op, f_conv, 3, in, &c, 1e-6, 1e-7);
    for (int i = 0; i < 3; i++)
        kn_tensor_unref(in[i]);
}

static void test_gradcheck(void)
{
    gradcheck_case(
        "conv1d", CONV, 1, 3, (int64_t[]){2, 2, 7}, (int64_t[]){3, 2, 3}, 3,
        (kn_conv_params){.stride = {2}, .pad_begin = {1}, .pad_end = {2}, .dilation = {2}}, 1);
    gradcheck_case("conv2d", CONV, 2, 4, (int64_t[]){2, 4, 5, 4}, (int64_t[]){2, 2, 3, 2}, 2,
                   (kn_conv_params){.stride = {2, 1},
                                    .pad_begin = {1, 0},
                                    .pad_end = {0, 1},
                                    .dilation = {1, 2},
                                    .groups = 2},
                   10);
    gradcheck_case("conv2d", CONV, 2, 4, (int64_t[]){1, 5, 4, 3}, (int64_t[]){3, 3, 2, 2}, 3,
                   (kn_conv_params){.stride = {2, 2}, .pad_same = true, NHWC}, 20);
    gradcheck_case("conv2d", CONV, 2, 4, (int64_t[]){1, 3, 4, 4}, (int64_t[]){3, 1, 3, 3}, 0,
                   (kn_conv_params){.pad_begin = {1, 1}, .pad_end = {1, 1}, .groups = 3}, 25);
    gradcheck_case(
        "conv3d", CONV, 3, 5, (int64_t[]){1, 2, 3, 4, 3}, (int64_t[]){2, 2, 2, 2, 2}, 2,
        (kn_conv_params){.stride = {1, 2, 1}, .pad_begin = {1, 0, 0}, .pad_end = {0, 1, 1}}, 30);
    gradcheck_case("conv3d", CONV, 3, 5, (int64_t[]){1, 3, 2, 3, 4}, (int64_t[]){4, 2, 1, 2, 2}, 0,
                   (kn_conv_params){.dilation = {1, 1, 2}, .groups = 2, NHWC}, 35);
    gradcheck_case("conv_transpose2d", TRANSPOSE, 2, 4, (int64_t[]){1, 4, 3, 2},
                   (int64_t[]){4, 1, 3, 2}, 2,
                   (kn_conv_params){.stride = {2, 2},
                                    .pad_begin = {1, 0},
                                    .pad_end = {0, 1},
                                    .output_padding = {1, 1},
                                    .groups = 2},
                   40);
    gradcheck_case("conv_transpose2d", TRANSPOSE, 2, 4, (int64_t[]){2, 2, 3, 2},
                   (int64_t[]){2, 2, 2, 2}, 2,
                   (kn_conv_params){.dilation = {2, 1}, .stride = {1, 2}, NHWC}, 45);
    gradcheck_case("conv_transpose1d", TRANSPOSE, 1, 3, (int64_t[]){2, 4, 4}, (int64_t[]){4, 3, 3},
                   6,
                   (kn_conv_params){.stride = {2},
                                    .pad_begin = {2},
                                    .pad_end = {1},
                                    .output_padding = {1},
                                    .dilation = {2},
                                    .groups = 2},
                   50);
    gradcheck_case(
        "conv_transpose1d", TRANSPOSE, 1, 3, (int64_t[]){2, 5, 3}, (int64_t[]){3, 2, 2}, 2,
        (kn_conv_params){.stride = {3}, .output_padding = {2}, .pad_begin = {1}, NHWC}, 55);
    gradcheck_case("conv_transpose3d", TRANSPOSE, 3, 5, (int64_t[]){1, 2, 2, 3, 2},
                   (int64_t[]){2, 2, 2, 2, 3}, 2,
                   (kn_conv_params){.stride = {2, 1, 2},
                                    .pad_begin = {1, 0, 0},
                                    .pad_end = {0, 1, 1},
                                    .output_padding = {1, 0, 1},
                                    .dilation = {1, 2, 1}},
                   60);
    gradcheck_case("conv_transpose3d", TRANSPOSE, 3, 5, (int64_t[]){2, 2, 3, 2, 4},
                   (int64_t[]){4, 1, 2, 2, 1}, 2,
                   (kn_conv_params){.stride = {1, 2, 1},
                                    .pad_end = {1, 0, 0},
                                    .output_padding = {0, 1, 0},
                                    .groups = 2,
                                    NHWC},
                   65);
}

/* ---- the gradient ops, called directly; their gradcheck is a check of the
 * second derivative of the conv ops (their gradients are conv ops again). */
static void set_attr(void *buf, const kn_op_def *def, const char *name, int n, const int64_t *v)
{
    for (int i = 0; i < def->n_attrs; i++) {
        const kn_attr_desc *a = &def->attrs[i];
        if (strcmp(a->name, name)) continue;
        char *p = (char *)buf + a->offset;
        if (a->type == KN_ATTR_INTS) {
            kn_ints *t = (kn_ints *)(void *)p;
            t->n = n;
            for (int k = 0; k < n; k++)
                t->v[k] = v[k];
        } else if (a->type == KN_ATTR_INT) {
            *(int64_t *)(void *)p = v[0];
        } else if (a->type == KN_ATTR_BOOL) {
            *(bool *)p = v[0] != 0;
        }
        return;
    }
    KT_CHECK(0, "%s has no attr %s", def->name, name);
}

typedef struct gop_ctx {
    const kn_op_def *def;
    _Alignas(16) unsigned char attrs[4096];
} gop_ctx;

static void gop_init(gop_ctx *c, const char *op, int nsp, const int64_t *stride, const int64_t *pb,
                     const int64_t *pe, const int64_t *dil, int64_t groups, int64_t layout, int nd,
                     const int64_t *shape)
{
    c->def = kn_op_find(op);
    KT_CHECK(c->def && c->def->attrs_size <= sizeof c->attrs, "%s registered", op);
    memset(c->attrs, 0, sizeof c->attrs);
    set_attr(c->attrs, c->def, "stride", nsp, stride);
    set_attr(c->attrs, c->def, "pad_begin", nsp, pb);
    set_attr(c->attrs, c->def, "pad_end", nsp, pe);
    set_attr(c->attrs, c->def, "dilation", nsp, dil);
    set_attr(c->attrs, c->def, "groups", 1, &groups);
    set_attr(c->attrs, c->def, "layout", 1, &layout);
    if (shape) set_attr(c->attrs, c->def, "shape", nd, shape);
}

static kn_tensor *f_gop(kn_tensor *const *in, void *ctx)
{
    gop_ctx *c = ctx;
    return kn__op_call1(c->def, 2, in, c->attrs);
}

static void test_grad_ops(void)
{
    /* conv2d x (2,4,5,4) w (2,2,3,2): stride (2,1), pads (1,0)/(0,1), dil (1,2), groups 2
     * gives y (2,2,2,3) */
    int64_t st[2] = {2, 1}, pb[2] = {1, 0}, pe[2] = {0, 1}, dl[2] = {1, 2};
    int64_t xs[4] = {2, 4, 5, 4}, ws[4] = {2, 2, 3, 2}, ys[4] = {2, 2, 2, 3};
    gop_ctx gi, gw;
    gop_init(&gi, "conv_grad_input", 2, st, pb, pe, dl, 2, 0, 4, xs);
    gop_init(&gw, "conv_grad_weight", 2, st, pb, pe, dl, 2, 0, 4, ws);
    kn_tensor *x = kt_rand(4, xs, -1, 1, 7), *w = kt_rand(4, ws, -1, 1, 8),
              *gy = kt_rand(4, ys, -1, 1, 9);
    kn_tensor *in_i[2] = {gy, w}, *in_w[2] = {x, gy};
    kt_gradcheck("conv_grad_input", f_gop, 2, in_i, &gi, 1e-6, 1e-7);
    kt_gradcheck("conv_grad_weight", f_gop, 2, in_w, &gw, 1e-6, 1e-7);
    /* forward: they equal the gradients autograd gives through conv2d */
    kn_tensor *dx = f_gop(in_i, &gi), *dw = f_gop(in_w, &gw);
    kn_tensor_set_requires_grad(x, true), kn_tensor_set_requires_grad(w, true);
    kn_autograd_record(true);
    kn_tensor *y = kn_conv2d(x, w, NULL,
                             &(kn_conv_params){.stride = {2, 1},
                                               .pad_begin = {1, 0},
                                               .pad_end = {0, 1},
                                               .dilation = {1, 2},
                                               .groups = 2});
    kn_autograd_record(false);
    KT_OK(kn_backward(y, gy));
    check_close("conv_grad_input", dx, kn_tensor_grad(x), 0, 1e-14);
    check_close("conv_grad_weight", dw, kn_tensor_grad(w), 0, 1e-14);
    /* NHWC 1-d */
    int64_t st1[1] = {2}, z1[1] = {1}, d1[1] = {1}, x1[3] = {2, 6, 4}, w1[3] = {2, 4, 3},
            y1[3] = {2, 3, 2};
    gop_ctx gi1, gw1;
    gop_init(&gi1, "conv_grad_input", 1, st1, z1, z1, d1, 1, 1, 3, x1);
    gop_init(&gw1, "conv_grad_weight", 1, st1, z1, z1, d1, 1, 1, 3, w1);
    kn_tensor *xa = kt_rand(3, x1, -1, 1, 1), *wa = kt_rand(3, w1, -1, 1, 2),
              *ga = kt_rand(3, y1, -1, 1, 3);
    kn_tensor *ia[2] = {ga, wa}, *wa2[2] = {xa, ga};
    kt_gradcheck("conv_grad_input", f_gop, 2, ia, &gi1, 1e-6, 1e-7);
    kt_gradcheck("conv_grad_weight", f_gop, 2, wa2, &gw1, 1e-6, 1e-7);
    /* bad inputs: a gradient of the wrong shape, a bad shape attr */
    kn_tensor *bad[2] = {x, w};
    kt_expect_fail("conv_grad_input", kn__op_call1(gi.def, 2, bad, gi.attrs),
                   "gradient of the output");
    kn_tensor *bad2[2] = {x, x};
    kt_expect_fail("conv_grad_weight", kn__op_call1(gw.def, 2, bad2, gw.attrs),
                   "gradient of the output has shape (2,4,5,4)");
    set_attr(gi.attrs, gi.def, "shape", 3, xs);
    kt_expect_fail("conv_grad_input", kn__op_call1(gi.def, 2, in_i, gi.attrs),
                   "shape attr has 3 dims");
    kn_tensor *all[] = {x, w, gy, dx, dw, y, xa, wa, ga};
    for (int k = 0; k < LEN(all); k++)
        kn_tensor_unref(all[k]);
}

/* Zero stride given through the attrs (the public params read 0 as 1). */
static void test_zero_stride_attr(void)
{
    int64_t st[2] = {0, 1}, z[2] = {0, 0}, one[2] = {1, 1}, xs[4] = {1, 2, 3, 3},
            ws[4] = {1, 2, 2, 2};
    gop_ctx c;
    gop_init(&c, "conv2d", 2, st, z, z, one, 1, 0, 0, NULL);
    kn_tensor *x = kn_tensor_ones(KN_F32, 4, xs), *w = kn_tensor_ones(KN_F32, 4, ws);
    kn_tensor *in[3] = {x, w, NULL};
    kt_expect_fail("conv2d", kn__op_call1(c.def, 3, in, c.attrs), "stride[0] = 0, expected >= 1");
    kn_tensor_unref(x), kn_tensor_unref(w);
}

/* ---- bad inputs */
static kn_tensor *z(kn_dtype dt, int nd, const int64_t *s)
{
    return kn_tensor_zeros(dt, nd, s);
}

static void test_bad_inputs(void)
{
    kn_tensor *x4 = z(KN_F32, 4, (int64_t[]){1, 4, 5, 5}),
              *w3 = z(KN_F32, 4, (int64_t[]){2, 3, 3, 3});
    kn_tensor *x3 = z(KN_F32, 4, (int64_t[]){1, 3, 5, 5}), *w2 = z(KN_F32, 3, (int64_t[]){2, 3, 3});
    kn_tensor *xs = z(KN_F32, 4, (int64_t[]){1, 3, 2, 2}),
              *x64 = z(KN_F64, 4, (int64_t[]){1, 3, 5, 5});
    kn_tensor *xi = z(KN_I32, 4, (int64_t[]){1, 3, 5, 5}), *b3 = z(KN_F32, 1, (int64_t[]){3});
    kn_tensor *b2 = z(KN_F32, 1, (int64_t[]){2}), *x6 = z(KN_F32, 4, (int64_t[]){1, 6, 5, 5});
    kn_tensor *w6 = z(KN_F32, 4, (int64_t[]){3, 2, 3, 3}),
              *x1d = z(KN_F32, 3, (int64_t[]){1, 3, 5});
    kn_tensor *w0 = z(KN_F32, 4, (int64_t[]){2, 3, 0, 3}), *b64 = z(KN_F64, 1, (int64_t[]){2});
    int64_t huge[4] = {(int64_t)1 << 36, 3, (int64_t)1 << 10, (int64_t)1 << 10};
    kn_tensor *wbig = z(KN_F32, 4, (int64_t[]){64, 3, 3, 3});
    kn_tensor *xh = kn_tensor_symbolic(KN_F32, 4, huge);
    kn_tensor *xn = z(KN_F32, 4, (int64_t[]){1, 5, 5, 3});
    const kn_conv_params *none = NULL;

    kt_expect_fail(
        "conv2d", kn_conv2d(x4, w3, NULL, none),
        "conv2d: input has 4 channels but weight expects 3 (C_in/groups = 3, groups = 1)");
    kt_expect_fail("conv2d", kn_conv2d(NULL, w3, NULL, none), "input 0 is NULL");
    kt_expect_fail("conv2d", kn_conv2d(x3, NULL, NULL, none), "input 1 is NULL");
    kt_expect_fail("conv2d", kn_conv2d(x1d, w3, NULL, none),
                   "input has 3 dims, expected 4 (N, C, H, W)");
    kt_expect_fail("conv2d", kn_conv2d(x3, w2, NULL, none),
                   "weight has 3 dims, expected 4 (C_out, C_in/groups, kH, kW)");
    kt_expect_fail("conv1d", kn_conv1d(x3, w2, NULL, none),
                   "input has 4 dims, expected 3 (N, C, L)");
    kt_expect_fail("conv3d", kn_conv3d(x3, w3, NULL, none), "expected 5 (N, C, D, H, W)");
    kt_expect_fail("conv2d", kn_conv2d(x3, w3, NULL, &(kn_conv_params){.layout = KN_LAYOUT_NHWC}),
                   "input has 5 channels");
    kt_expect_fail("conv2d", kn_conv2d(xn, w3, NULL, &(kn_conv_params){.layout = (kn_layout)7}),
                   "layout 7 is not");
    kt_expect_fail("conv2d", kn_conv2d(x6, w3, NULL, &(kn_conv_params){.groups = 4}),
                   "groups = 4 does not divide the input's 6 channels");
    kt_expect_fail("conv2d", kn_conv2d(x6, w6, NULL, &(kn_conv_params){.groups = 2}),
                   "groups = 2 does not divide C_out = 3");
    kt_expect_fail("conv2d", kn_conv2d(x6, w3, NULL, &(kn_conv_params){.groups = -1}),
                   "groups = -1");
    kt_expect_fail("conv2d", kn_conv2d(xs, w3, NULL, none), "kernel extent 3");
    kt_expect_fail("conv2d", kn_conv2d(x3, w3, NULL, &(kn_conv_params){.dilation = {3, 1}}),
                   "larger than the padded input 5");
    kt_expect_fail("conv2d", kn_conv2d(x3, w3, NULL, &(kn_conv_params){.stride = {1, -2}}),
                   "stride[1] = -2, expected >= 1");
    kt_expect_fail("conv2d", kn_conv2d(x3, w3, NULL, &(kn_conv_params){.dilation = {-1, 1}}),
                   "dilation[0] = -1");
    kt_expect_fail("conv2d", kn_conv2d(x3, w3, NULL, &(kn_conv_params){.pad_end = {0, -1}}),
                   "pad_end[1] = -1");
    kt_expect_fail("conv2d", kn_conv2d(x3, w3, NULL, &(kn_conv_params){.output_padding = {1, 0}}),
                   "conv_transpose only");
    kt_expect_fail("conv2d", kn_conv2d(x3, w3, b3, none), "bias has shape (3), expected (2)");
    kt_expect_fail("conv2d", kn_conv2d(x3, w3, b64, none), "is f32 but");
    kt_expect_fail("conv2d", kn_conv2d(x64, w3, NULL, none), "is f64 but");
    kt_expect_fail("conv2d", kn_conv2d(xi, w3, NULL, none), "float");
    kt_expect_fail("conv2d", kn_conv2d(x3, w0, NULL, none), "kernel size 0");
    kt_expect_fail(
        "conv2d",
        kn_conv2d(xh, wbig, NULL, &(kn_conv_params){.pad_begin = {9, 9}, .pad_end = {9, 9}}),
        "overflows");
    /* a symbolic input of fitting size infers the output shape */
    kn_tensor *xsym = kn_tensor_symbolic(KN_F32, 4, (int64_t[]){8, 3, 32, 31});
    kn_tensor *ysym =
        kn_conv2d(xsym, w3, b2, &(kn_conv_params){.stride = {2, 2}, .pad_same = true});
    KT_CHECK(ysym && kn_tensor_is_symbolic(ysym) && kn_tensor_shape(ysym)[2] == 16 &&
                 kn_tensor_shape(ysym)[3] == 16,
             "symbolic conv2d 'same' infers (8,2,16,16)");
    kn_tensor_unref(xsym), kn_tensor_unref(ysym);

    kn_tensor *tw = z(KN_F32, 4, (int64_t[]){3, 2, 3, 3});
    kt_expect_fail("conv_transpose2d", kn_conv_transpose2d(x4, tw, NULL, none),
                   "input has 4 channels but weight expects 3");
    kt_expect_fail("conv_transpose2d",
                   kn_conv_transpose2d(x3, tw, NULL, &(kn_conv_params){.output_padding = {1, 0}}),
                   "output_padding[0] = 1 must be smaller than stride 1");
    kt_expect_fail("conv_transpose2d",
                   kn_conv_transpose2d(x3, tw, NULL, &(kn_conv_params){.pad_same = true}),
                   "pad_same");
    kt_expect_fail("conv_transpose2d",
                   kn_conv_transpose2d(x3, tw, NULL,
                                       &(kn_conv_params){.pad_begin = {4, 0}, .pad_end = {4, 0}}),
                   "leaves an output of size -1");
    kt_expect_fail("conv_transpose2d",
                   kn_conv_transpose2d(x3, tw, NULL, &(kn_conv_params){.groups = 2}),
                   "groups = 2 does not divide");
    kt_expect_fail("conv_transpose2d", kn_conv_transpose2d(x3, tw, b3, none),
                   "bias has shape (3), expected (2)");
    kt_expect_fail("conv_transpose2d", kn_conv_transpose2d(x1d, tw, NULL, none),
                   "expected 4 (N, C, H, W)");
    kt_expect_fail("conv_transpose2d", kn_conv_transpose2d(x3, w2, NULL, none),
                   "expected 4 (C_in, C_out/groups, kH, kW)");
    kt_expect_fail("conv_transpose2d", kn_conv_transpose2d(xi, tw, NULL, none), "float");
    kt_expect_fail("conv_transpose2d", kn_conv_transpose2d(NULL, tw, NULL, none), "NULL");
    kn_tensor *all[] = {x4, w3, x3,  w2, xs,  x64, xi, b3, b2,
                        x6, w6, x1d, w0, b64, xh,  xn, tw, wbig};
    for (int k = 0; k < LEN(all); k++)
        kn_tensor_unref(all[k]);
}

/* conv_transpose1d/3d: ranks, channels, groups, attr counts, output size. */
static void test_bad_inputs_transpose_nd(void)
{
    kn_tensor *x1 = z(KN_F32, 3, (int64_t[]){2, 4, 5}), *w1 = z(KN_F32, 3, (int64_t[]){4, 3, 3});
    kn_tensor *x3 = z(KN_F32, 5, (int64_t[]){1, 4, 2, 3, 2}),
              *w3 = z(KN_F32, 5, (int64_t[]){4, 2, 2, 2, 2});
    kn_tensor *w3b = z(KN_F32, 5, (int64_t[]){3, 2, 2, 2, 2}), *b5 = z(KN_F32, 1, (int64_t[]){5});
    kn_tensor *x1h = z(KN_F64, 3, (int64_t[]){2, 4, 5}), *x1n = z(KN_F32, 3, (int64_t[]){2, 5, 3});
    kn_tensor *w1k0 = z(KN_F32, 3, (int64_t[]){4, 3, 0}),
              *x3z = z(KN_F32, 5, (int64_t[]){1, 4, 2, 0, 2});
    kn_tensor *x4 = z(KN_F32, 4, (int64_t[]){1, 4, 5, 5}), *b3 = z(KN_F32, 1, (int64_t[]){3});
    const kn_conv_params *none = NULL;

    kt_expect_fail("conv_transpose1d", kn_conv_transpose1d(x4, w1, NULL, none),
                   "conv_transpose1d: input has 4 dims, expected 3 (N, C, L)");
    kt_expect_fail("conv_transpose1d", kn_conv_transpose1d(x1, w3, NULL, none),
                   "weight has 5 dims, expected 3 (C_in, C_out/groups, kL)");
    kt_expect_fail("conv_transpose1d",
                   kn_conv_transpose1d(x1, w1, NULL, &(kn_conv_params){.layout = KN_LAYOUT_NHWC}),
                   "input has 5 channels but weight expects 4");
    kt_expect_fail("conv_transpose1d", kn_conv_transpose1d(x1n, w1, NULL, none),
                   "input has 5 channels but weight expects 4");
    kt_expect_fail("conv_transpose1d",
                   kn_conv_transpose1d(x1, w1, NULL, &(kn_conv_params){.groups = 3}),
                   "groups = 3 does not divide the input's 4 channels");
    kt_expect_fail("conv_transpose1d", kn_conv_transpose1d(x1, w1, b5, none),
                   "bias has shape (5), expected (3)");
    kt_expect_fail(
        "conv_transpose1d",
        kn_conv_transpose1d(x1, w1, NULL, &(kn_conv_params){.stride = {2}, .output_padding = {2}}),
        "output_padding[0] = 2 must be smaller than stride 2");
    kt_expect_fail(
        "conv_transpose1d",
        kn_conv_transpose1d(x1, w1, NULL, &(kn_conv_params){.pad_begin = {4}, .pad_end = {4}}),
        "leaves an output of size -1 in spatial dim 0");
    kt_expect_fail("conv_transpose1d",
                   kn_conv_transpose1d(x1, w1, NULL, &(kn_conv_params){.pad_same = true}),
                   "pad_same is not supported");
    kt_expect_fail("conv_transpose1d", kn_conv_transpose1d(x1, w1k0, NULL, none),
                   "kernel size 0 in spatial dim 0");
    kt_expect_fail("conv_transpose1d", kn_conv_transpose1d(x1h, w1, NULL, none), "is f64 but");
    kt_expect_fail("conv_transpose1d",
                   kn_conv_transpose1d(x1, w1, NULL, &(kn_conv_params){.stride = {-1}}),
                   "stride[0] = -1, expected >= 1");
    kt_expect_fail("conv_transpose1d", kn_conv_transpose1d(x1, NULL, NULL, none),
                   "input 1 is NULL");

    kt_expect_fail("conv_transpose3d", kn_conv_transpose3d(x1, w3, NULL, none),
                   "conv_transpose3d: input has 3 dims, expected 5 (N, C, D, H, W)");
    kt_expect_fail("conv_transpose3d",
                   kn_conv_transpose3d(x3, w3, NULL, &(kn_conv_params){.layout = KN_LAYOUT_NHWC}),
                   "input has 2 channels but weight expects 4");
    kt_expect_fail("conv_transpose3d", kn_conv_transpose3d(x3, w1, NULL, none),
                   "weight has 3 dims, expected 5 (C_in, C_out/groups, kD, kH, kW)");
    kt_expect_fail("conv_transpose3d", kn_conv_transpose3d(x3, w3b, NULL, none),
                   "input has 4 channels but weight expects 3");
    kt_expect_fail("conv_transpose3d",
                   kn_conv_transpose3d(x3, w3, b3, &(kn_conv_params){.groups = 2}),
                   "bias has shape (3), expected (4)");
    kt_expect_fail(
        "conv_transpose3d",
        kn_conv_transpose3d(x3, w3, NULL, &(kn_conv_params){.output_padding = {0, 0, 1}}),
        "output_padding[2] = 1 must be smaller than stride 1");
    kt_expect_fail(
        "conv_transpose3d",
        kn_conv_transpose3d(x3, w3, NULL,
                            &(kn_conv_params){.pad_begin = {0, 2, 0}, .pad_end = {0, 2, 0}}),
        "leaves an output of size 0 in spatial dim 1");
    kt_expect_fail("conv_transpose3d", kn_conv_transpose3d(x3z, w3, NULL, none),
                   "input has size 0 in spatial dim 1");
    kt_expect_fail("conv_transpose3d",
                   kn_conv_transpose3d(x3, w3, NULL, &(kn_conv_params){.dilation = {1, -2, 1}}),
                   "dilation[1] = -2, expected >= 1");
    kt_expect_fail("conv_transpose3d",
                   kn_conv_transpose3d(x3, w3, NULL, &(kn_conv_params){.groups = 3}),
                   "groups = 3 does not divide the input's 4 channels");
    kt_expect_fail("conv_transpose3d", kn_conv_transpose3d(NULL, w3, NULL, none),
                   "input 0 is NULL");
    /* a symbolic input infers the output shape */
    kn_tensor *xs = kn_tensor_symbolic(KN_F32, 5, (int64_t[]){3, 4, 2, 3, 4});
    kn_tensor *ys = kn_conv_transpose3d(
        xs, w3, NULL, &(kn_conv_params){.stride = {2, 2, 1}, .output_padding = {1, 0, 0}});
    const int64_t want[5] = {3, 2, 5, 6, 5};
    KT_CHECK(ys && kn_tensor_is_symbolic(ys) && kn_tensor_ndim(ys) == 5 &&
                 !memcmp(kn_tensor_shape(ys), want, sizeof want),
             "symbolic conv_transpose3d infers (3,2,5,6,5)");
    kn_tensor *all[] = {x1, w1, x3, w3, w3b, b5, x1h, x1n, w1k0, x3z, x4, b3, xs, ys};
    for (int k = 0; k < LEN(all); k++)
        kn_tensor_unref(all[k]);
}

/* ---- allocation failures: f16 conv2d forward and an f32 backward */
static kn_status walk_conv(void *ctx)
{
    (void)ctx;
    kn_status s = KN_OK;
    kn_tensor *x = kn_tensor_ones(KN_F32, 4, (int64_t[]){1, 4, 5, 5});
    kn_tensor *w = kn_tensor_ones(KN_F32, 4, (int64_t[]){4, 2, 3, 3});
    kn_tensor *b = kn_tensor_ones(KN_F32, 1, (int64_t[]){4});
    kn_conv_params p = {.stride = {2, 1}, .pad_same = true, .groups = 2};
    kn_tensor *x16 = kn_cast(x, KN_F16), *w16 = kn_cast(w, KN_F16);
    kn_tensor *y16 = kn_conv2d(x16, w16, NULL, &p), *y = NULL, *l = NULL;
    if (!x16 || !y16) s = kn_last_status();
    if (!s && !(s = kn_tensor_set_requires_grad(x, true)) &&
        !(s = kn_tensor_set_requires_grad(w, true))) {
        kn_autograd_record(true);
        y = kn_conv2d(x, w, b, &p);
        l = kn_sum(y, 0, NULL, false);
        kn_autograd_record(false);
        s = l ? kn_backward(l, NULL) : kn_last_status();
    }
    kn_tensor *all[] = {x, w, b, x16, w16, y16, y, l};
    for (int k = 0; k < LEN(all); k++)
        kn_tensor_unref(all[k]);
    return s;
}

static void test_alloc_walk(void)
{
    int n = kt_alloc_walk("conv2d", walk_conv, NULL);
    KT_CHECK(n > 5 && n < 1000, "walked %d failure points, then succeeded", n);
}

int main(void)
{
    KT_RUN(test_forward_values);
    KT_RUN(test_low_precision);
    KT_RUN(test_strided_inputs);
    KT_RUN(test_grad_values);
    KT_RUN(test_thread_invariance);
    KT_RUN(test_transpose_fast_vs_ref);
    KT_RUN(test_gradcheck);
    KT_RUN(test_grad_ops);
    KT_RUN(test_zero_stride_attr);
    KT_RUN(test_bad_inputs);
    KT_RUN(test_bad_inputs_transpose_nd);
    KT_RUN(test_alloc_walk);
    return kt_finish();
}
