/* test_kernels_conv.c — the fast convolution paths (src/kernels/conv_fast.c:
 * GEMM forward/backward, AVX-512 depthwise) against the reference twin
 * (KILN_ISA=ref) over random shapes: batch 1 and odd, channel counts that are
 * not multiples of 16 and primes, stride 2, dilation 2, asymmetric pads,
 * groups, depthwise, NHWC and NCHW, non-contiguous inputs; f32, bf16 tensors
 * and f32 computed in bf16; each ISA level the CPU has; 1 vs 2 threads
 * bitwise; the fused epilogue entry kn__conv2d_fused.
 * Tolerances: an f32 dot of K terms in any order is within K·u·Σ|x||w| of
 * the exact value (u = 2^-24), so two of them differ by at most 2·K·u·Σ;
 * Σ|x||w| is the reference conv of |x| and |w|. bf16 outputs add one bf16
 * rounding (2^-8 relative each, so 2^-7·Σ between two), and f32 inputs
 * rounded to bf16 add 2·2^-9 relative per product. */
#include "harness.h"

#include "kernels/conv_fast.h"
#include "ops/op.h"

#include <stdlib.h>

#define LEN(a) ((int)(sizeof(a) / sizeof((a)[0])))

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static int64_t rnd(int64_t lo, int64_t hi) /* in [lo, hi] */
{
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return lo + (int64_t)(rng_state % (uint64_t)(hi - lo + 1));
}

typedef enum { OP_CONV, OP_TRANSPOSE, OP_GRAD_INPUT, OP_GRAD_WEIGHT } op_kind;
static const char *op_names[] = {"conv2d", "conv_transpose2d", "conv_grad_input",
                                 "conv_grad_weight"};

/* One random problem in conv orientation (2-d unless nsp says 1 or 3). */
typedef struct prob {
    int nsp;
    bool nhwc, bias;
    int64_t n, cin, cout, groups;
    int64_t in[3], k[3], s[3], d[3], pb[3], pe[3], out[3];
    int layout_mode; /* 0 contiguous, 1 padded innermost dim, 2 permuted from the other layout */
} prob;

static void describe(const prob *p, const char *what)
{
    fprintf(stderr,
            "  %s: nsp %d %s n %lld cin %lld cout %lld g %lld in %lldx%lldx%lld k %lldx%lldx%lld "
            "s %lldx%lldx%lld d %lldx%lldx%lld pb %lld,%lld,%lld pe %lld,%lld,%lld mode %d\n",
            what, p->nsp, p->nhwc ? "NHWC" : "NCHW", (long long)p->n, (long long)p->cin,
            (long long)p->cout, (long long)p->groups, (long long)p->in[0], (long long)p->in[1],
            (long long)p->in[2], (long long)p->k[0], (long long)p->k[1], (long long)p->k[2],
            (long long)p->s[0], (long long)p->s[1], (long long)p->s[2], (long long)p->d[0],
            (long long)p->d[1], (long long)p->d[2], (long long)p->pb[0], (long long)p->pb[1],
            (long long)p->pb[2], (long long)p->pe[0], (long long)p->pe[1], (long long)p->pe[2],
            p->layout_mode);
}

/* Random problem; kind: 0 general, 1 depthwise, 2 pointwise. */
static prob random_prob(int kind)
{
    static const int64_t chans[] = {1, 3, 5, 7, 13, 16, 17, 24, 31, 32, 37};
    prob p = {.nsp = 2, .nhwc = rnd(0, 1), .bias = rnd(0, 1)};
    p.n = rnd(0, 2) == 0 ? 1 : rnd(1, 3);
    p.groups = kind != 1 && rnd(0, 3) == 0 ? rnd(2, 3) : 1;
    p.cin = chans[rnd(0, LEN(chans) - 1)] * p.groups;
    p.cout = chans[rnd(0, LEN(chans) - 1)] * p.groups;
    if (kind == 1) p.cin = p.cout = p.groups = chans[rnd(0, LEN(chans) - 1)] + 16 * rnd(0, 1);
    for (int j = 0; j < 3; j++) {
        p.in[j] = p.k[j] = p.s[j] = p.d[j] = 1;
        p.pb[j] = p.pe[j] = 0;
    }
    for (int j = 1; j < 3; j++) {
        p.in[j] = rnd(1, 13);
        if (kind != 2) {
            p.k[j] = rnd(1, 3) * 2 - 1 - (rnd(0, 4) == 0); /* 1, 3, 5 and sometimes even */
            if (p.k[j] < 1) p.k[j] = 1;
            p.s[j] = rnd(1, 2);
            p.d[j] = rnd(0, 3) == 0 ? 2 : 1;
            p.pb[j] = rnd(0, 2);
            p.pe[j] = rnd(0, 2);
        } else if (rnd(0, 2) == 0) {
            p.s[j] = 2;
        }
        int64_t ext = p.d[j] * (p.k[j] - 1) + 1;
        if (p.in[j] + p.pb[j] + p.pe[j] < ext) p.in[j] = ext;
        p.out[j] = (p.in[j] + p.pb[j] + p.pe[j] - ext) / p.s[j] + 1;
    }
    p.out[0] = 1;
    p.layout_mode = (int)rnd(0, 2);
    return p;
}

/* Activation of p's layout with c channels and spatial sizes sp, random in
 * [-1, 1), of dtype dt, laid out as p->layout_mode says. */
static kn_tensor *make_act(const prob *p, int64_t c, const int64_t *sp, kn_dtype dt, uint64_t seed)
{
    int64_t shape[4], big[4];
    int nhwc_store = p->layout_mode == 2 ? !p->nhwc : p->nhwc;
    shape[0] = p->n;
    if (nhwc_store)
        shape[1] = sp[1], shape[2] = sp[2], shape[3] = c;
    else
        shape[1] = c, shape[2] = sp[1], shape[3] = sp[2];
    memcpy(big, shape, sizeof big);
    if (p->layout_mode == 1) big[3] += 3;
    kn_manual_seed(seed);
    kn_tensor *t = kn_tensor_rand_uniform(dt, 4, big, -1, 1), *v = t;
    if (p->layout_mode == 1) {
        v = kn_narrow(t, 3, 1, shape[3]);
        kn_tensor_unref(t);
    } else if (p->layout_mode == 2) {
        static const int to_nhwc[4] = {0, 2, 3, 1}, to_nchw[4] = {0, 3, 1, 2};
        v = kn_permute(t, 4, nhwc_store ? to_nchw : to_nhwc);
        kn_tensor_unref(t);
    }
    return v;
}

static kn_tensor *make_w(int64_t d0, int64_t d1, const int64_t *k, kn_dtype dt, uint64_t seed)
{
    kn_manual_seed(seed);
    return kn_tensor_rand_uniform(dt, 4, (int64_t[]){d0, d1, k[1], k[2]}, -1, 1);
}

/* Attribute buffer of one of the conv ops, set through its schema. */
typedef struct op_call {
    const kn_op_def *def;
    _Alignas(16) unsigned char attrs[4096];
} op_call;

static void set_attr(op_call *c, const char *name, int n, const int64_t *v)
{
    for (int i = 0; i < c->def->n_attrs; i++) {
        const kn_attr_desc *a = &c->def->attrs[i];
        if (strcmp(a->name, name)) continue;
        char *q = (char *)c->attrs + a->offset;
        if (a->type == KN_ATTR_INTS) {
            kn_ints *t = (kn_ints *)(void *)q;
            t->n = n;
            for (int k = 0; k < n; k++)
                t->v[k] = v[k];
        } else {
            *(int64_t *)(void *)q = v[0];
        }
        return;
    }
}

static void op_init(op_call *c, op_kind k, const prob *p, const kn_tensor *shape_of)
{
    c->def = kn_op_find(op_names[k]);
    memset(c->attrs, 0, sizeof c->attrs);
    int64_t layout = p->nhwc;
    set_attr(c, "stride", 2, p->s + 1);
    set_attr(c, "pad_begin", 2, p->pb + 1);
    set_attr(c, "pad_end", 2, p->pe + 1);
    set_attr(c, "dilation", 2, p->d + 1);
    set_attr(c, "groups", 1, &p->groups);
    set_attr(c, "layout", 1, &layout);
    if (shape_of) set_attr(c, "shape", 4, kn_tensor_shape(shape_of));
}

/* Runs op k on (a, b, bias) at the current ISA cap. */
static kn_tensor *run_op(const op_call *c, kn_tensor *a, kn_tensor *b, kn_tensor *bias)
{
    kn_tensor *in[3] = {a, b, bias};
    return kn__op_call1(c->def, c->def->n_in, in, c->attrs);
}

static kn_tensor *abs_of(kn_tensor *t)
{
    return t ? kn_abs(t) : NULL;
}

static double *values(const kn_tensor *t)
{
    int64_t n = kn_tensor_numel(t);
    double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    if (kn_tensor_copy_to(t, KN_F64, v, sizeof(double) * (size_t)n)) {
        free(v);
        return NULL;
    }
    return v;
}

/* |fast - ref| <= tol_rel * bound + tiny, elementwise. */
static bool check_bound(const char *op, const kn_tensor *fast, const kn_tensor *ref,
                        const kn_tensor *bound, double tol_rel, const prob *p, const char *what)
{
    KT_NOTNULL(fast);
    KT_NOTNULL(ref);
    KT_NOTNULL(bound);
    if (!fast || !ref || !bound) return false;
    kt_mark(op, KT_FWD);
    int64_t n = kn_tensor_numel(ref);
    double *f = values(fast), *r = values(ref), *b = values(bound);
    bool ok = f && r && b && kn_tensor_numel(fast) == n;
    int64_t bad = -1;
    for (int64_t i = 0; ok && i < n; i++)
        if (!(fabs(f[i] - r[i]) <= tol_rel * b[i] + 1e-30)) bad = i, ok = false;
    KT_CHECK(ok, "%s %s: element %lld fast %.9g ref %.9g bound %.3g", op, what, (long long)bad,
             bad >= 0 ? f[bad] : 0.0, bad >= 0 ? r[bad] : 0.0,
             bad >= 0 ? tol_rel * b[bad] : 0.0);
    if (!ok) describe(p, what);
    free(f), free(r), free(b);
    return ok;
}

/* K: the number of products summed per output of op k. */
static int64_t terms(op_kind k, const prob *p)
{
    int64_t kk = p->k[1] * p->k[2];
    switch (k) {
    case OP_CONV:
        return p->cin / p->groups * kk + 1;
    case OP_TRANSPOSE:
    case OP_GRAD_INPUT:
        return p->cout / p->groups * kk + 1;
    case OP_GRAD_WEIGHT:
        return p->n * p->out[1] * p->out[2];
    }
    return 1;
}

/* The operands of op k for problem p in dtype dt. */
static void operands(op_kind k, const prob *p, kn_dtype dt, uint64_t seed, kn_tensor **a,
                     kn_tensor **b, kn_tensor **bias, kn_tensor **shape_of)
{
    int64_t cing = p->cin / p->groups;
    *bias = NULL, *shape_of = NULL;
    kn_tensor *x = make_act(p, p->cin, p->in, dt, seed);
    kn_tensor *gy = make_act(p, p->cout, p->out, dt, seed + 1);
    kn_tensor *w = make_w(p->cout, cing, p->k, dt, seed + 2);
    if (p->bias && (k == OP_CONV || k == OP_TRANSPOSE)) {
        kn_manual_seed(seed + 3);
        *bias = kn_tensor_rand_uniform(dt, 1, (int64_t[]){k == OP_CONV ? p->cout : p->cin}, -1,
                                       1);
    }
    switch (k) {
    case OP_CONV:
        *a = x, *b = w;
        kn_tensor_unref(gy);
        break;
    case OP_TRANSPOSE: /* conv_transpose2d(gy) with weight (C_out, C_in/G) read as (C_in', ...) */
    case OP_GRAD_INPUT:
        *a = gy, *b = w, *shape_of = x;
        break;
    case OP_GRAD_WEIGHT:
        *a = x, *b = gy, *shape_of = w;
        break;
    }
}

/* One problem, one op, one dtype, at ISA cap `isa`: fast (1 and 2 threads)
 * against ref. */
static void check_problem(op_kind k, const prob *p, kn_dtype dt, kn_isa isa, uint64_t seed)
{
    kn_tensor *a, *b, *bias, *shape_of;
    prob q = *p;
    operands(k, &q, dt, seed, &a, &b, &bias, &shape_of);
    op_call c;
    op_init(&c, k, &q, k == OP_TRANSPOSE ? NULL : shape_of);
    if (k == OP_TRANSPOSE) {
        /* conv_transpose2d needs output_padding to reproduce x's size */
        int64_t op[2];
        for (int j = 0; j < 2; j++) {
            int64_t full = (q.out[j + 1] - 1) * q.s[j + 1] + q.d[j + 1] * (q.k[j + 1] - 1) + 1 -
                           q.pb[j + 1] - q.pe[j + 1];
            op[j] = q.in[j + 1] - full;
        }
        set_attr(&c, "output_padding", 2, op);
        if (q.bias) { /* bias has C_in entries */
            kn_tensor_unref(bias);
            kn_manual_seed(seed + 3);
            bias = kn_tensor_rand_uniform(dt, 1, (int64_t[]){q.cin}, -1, 1);
        }
    }
    kn_set_isa(KN_ISA_REF);
    kn_tensor *ref = run_op(&c, a, b, bias);
    kn_tensor *aa = abs_of(a), *ab = abs_of(b), *abias = abs_of(bias);
    kn_tensor *bound = run_op(&c, aa, ab, abias);
    kn_set_isa(isa);
    kn_set_num_threads(1);
    kn_tensor *f1 = run_op(&c, a, b, bias);
    kn_set_num_threads(2);
    kn_tensor *f2 = run_op(&c, a, b, bias);
    double u = 1.0 / (1 << 24), tol = 2.0 * (double)terms(k, &q) * u * 1.01;
    if (dt == KN_BF16) tol += 1.0 / 128;
    char what[96];
    snprintf(what, sizeof what, "%s %s isa %s", op_names[k], kn_dtype_name(dt), kn_isa_name(isa));
    check_bound(op_names[k], f1, ref, bound, tol, &q, what);
    KT_CHECK(f1 && f2 && kt_equal_bits(f1, f2), "%s: 1 vs 2 threads differ", what);
    kn_tensor *all[] = {a, b, bias, shape_of, ref, aa, ab, abias, bound, f1, f2};
    for (int i = 0; i < LEN(all); i++)
        kn_tensor_unref(all[i]);
}

static kn_isa isa_levels[4];
static int n_isa_levels;

static void find_isa_levels(void)
{
    n_isa_levels = 0;
    kn_isa top = kn_isa_max();
    for (int i = KN_ISA_AVX512BF16; i >= KN_ISA_AVX2; i--) {
        if (i <= (int)top)
            isa_levels[n_isa_levels++] = (kn_isa)i;
        else
            printf("note: CPU lacks %s, its path is not tested here\n", kn_isa_name((kn_isa)i));
    }
}

static void run_random(op_kind k, int kind, int count, uint64_t seed0)
{
    int threads = kn_get_num_threads();
    for (int i = 0; i < count; i++) {
        prob p = random_prob(kind);
        for (int l = 0; l < n_isa_levels; l++) {
            check_problem(k, &p, KN_F32, isa_levels[l], seed0 + 17 * (uint64_t)i);
            if (l == 0 || i % 2 == 0)
                check_problem(k, &p, KN_BF16, isa_levels[l], seed0 + 17 * (uint64_t)i);
        }
    }
    kn_set_isa(KN_ISA_AVX512BF16);
    kn_set_num_threads(threads);
}

static void test_forward_random(void)
{
    run_random(OP_CONV, 0, 40, 100);
}

static void test_forward_pointwise(void)
{
    run_random(OP_CONV, 2, 20, 200);
}

static void test_forward_depthwise(void)
{
    run_random(OP_CONV, 1, 30, 300);
}

static void test_grad_input_random(void)
{
    run_random(OP_GRAD_INPUT, 0, 25, 400);
    run_random(OP_GRAD_INPUT, 2, 10, 450);
}

static void test_grad_weight_random(void)
{
    run_random(OP_GRAD_WEIGHT, 0, 25, 500);
    run_random(OP_GRAD_WEIGHT, 2, 10, 550);
}

static void test_transpose_random(void)
{
    run_random(OP_TRANSPOSE, 0, 20, 600);
}

/* Fixed shapes that random draws may miss: larger tiles (several im2col
 * tiles), MobileNet-like depthwise with stride 2, 1-d and 3-d problems. */
static void test_forward_medium(void)
{
    prob ps[] = {
        {.nsp = 2, .nhwc = true, .bias = true, .n = 2, .cin = 24, .cout = 40, .groups = 1,
         .in = {1, 29, 31}, .k = {1, 3, 3}, .s = {1, 1, 1}, .d = {1, 1, 1}, .pb = {0, 1, 1},
         .pe = {0, 1, 1}},
        {.nsp = 2, .nhwc = false, .bias = true, .n = 2, .cin = 24, .cout = 40, .groups = 1,
         .in = {1, 29, 31}, .k = {1, 3, 3}, .s = {1, 2, 2}, .d = {1, 1, 1}, .pb = {0, 1, 0},
         .pe = {0, 1, 1}},
        /* NCHW f32 no-pack kernel: several k blocks (K > 128), row chunks
         * (C_out > 96) with a tail, column blocks with a tail */
        {.nsp = 2, .nhwc = false, .bias = true, .n = 2, .cin = 300, .cout = 103, .groups = 1,
         .in = {1, 9, 11}, .k = {1, 1, 1}, .s = {1, 1, 1}, .d = {1, 1, 1}, .pb = {0, 0, 0},
         .pe = {0, 0, 0}},
        {.nsp = 2, .nhwc = false, .bias = true, .n = 1, .cin = 37, .cout = 50, .groups = 1,
         .in = {1, 15, 9}, .k = {1, 3, 3}, .s = {1, 1, 1}, .d = {1, 1, 1}, .pb = {0, 1, 1},
         .pe = {0, 1, 1}},
        {.nsp = 2, .nhwc = true, .bias = false, .n = 1, .cin = 96, .cout = 96, .groups = 96,
         .in = {1, 23, 23}, .k = {1, 3, 3}, .s = {1, 2, 2}, .d = {1, 1, 1}, .pb = {0, 1, 1},
         .pe = {0, 1, 1}},
        {.nsp = 2, .nhwc = false, .bias = true, .n = 1, .cin = 40, .cout = 40, .groups = 40,
         .in = {1, 37, 70}, .k = {1, 5, 5}, .s = {1, 1, 1}, .d = {1, 2, 2}, .pb = {0, 4, 3},
         .pe = {0, 4, 5}},
        /* LeNet-sized NCHW batches: whole images per thread (n >= 4), an odd
         * count so the last image chunk is short; a pointwise one too */
        {.nsp = 2, .nhwc = false, .bias = true, .n = 9, .cin = 1, .cout = 6, .groups = 1,
         .in = {1, 12, 13}, .k = {1, 5, 5}, .s = {1, 1, 1}, .d = {1, 1, 1}, .pb = {0, 2, 2},
         .pe = {0, 2, 2}},
        {.nsp = 2, .nhwc = false, .bias = false, .n = 19, .cin = 6, .cout = 16, .groups = 1,
         .in = {1, 7, 7}, .k = {1, 5, 5}, .s = {1, 1, 1}, .d = {1, 1, 1}, .pb = {0, 0, 0},
         .pe = {0, 0, 0}},
        {.nsp = 2, .nhwc = false, .bias = true, .n = 5, .cin = 8, .cout = 12, .groups = 2,
         .in = {1, 6, 5}, .k = {1, 1, 1}, .s = {1, 1, 1}, .d = {1, 1, 1}, .pb = {0, 0, 0},
         .pe = {0, 0, 0}},
        /* direct NHWC kernel, large kernels (>= 256 output pixels: the eager
         * direct path): 11x11/4 as AlexNet's stem, and a dilated 9x9 whose
         * 81 taps run one by one (the kw runs cannot merge) */
        {.nsp = 2, .nhwc = true, .bias = true, .n = 1, .cin = 3, .cout = 40, .groups = 1,
         .in = {1, 75, 79}, .k = {1, 11, 11}, .s = {1, 4, 4}, .d = {1, 1, 1}, .pb = {0, 2, 2},
         .pe = {0, 2, 2}},
        {.nsp = 2, .nhwc = true, .bias = false, .n = 1, .cin = 6, .cout = 17, .groups = 1,
         .in = {1, 33, 34}, .k = {1, 9, 9}, .s = {1, 1, 1}, .d = {1, 2, 2}, .pb = {0, 4, 3},
         .pe = {0, 4, 5}},
    };
    int threads = kn_get_num_threads();
    for (int i = 0; i < LEN(ps); i++) {
        prob *p = &ps[i];
        for (int j = 1; j < 3; j++)
            p->out[j] =
                (p->in[j] + p->pb[j] + p->pe[j] - p->d[j] * (p->k[j] - 1) - 1) / p->s[j] + 1;
        p->out[0] = 1;
        for (int l = 0; l < n_isa_levels; l++)
            for (int m = 0; m < 2; m++) {
                p->layout_mode = m;
                check_problem(OP_CONV, p, KN_F32, isa_levels[l], 700 + (uint64_t)i);
                if (l == 0) {
                    check_problem(OP_CONV, p, KN_BF16, isa_levels[l], 700 + (uint64_t)i);
                    check_problem(OP_GRAD_INPUT, p, KN_F32, isa_levels[l], 700 + (uint64_t)i);
                    check_problem(OP_GRAD_WEIGHT, p, KN_F32, isa_levels[l], 700 + (uint64_t)i);
                }
            }
    }
    kn_set_isa(KN_ISA_AVX512BF16);
    kn_set_num_threads(threads);
}

/* 1-d and 3-d convolutions run the same fast paths (3-d padded geometry). */
static void test_conv1d_conv3d(void)
{
    for (int l = 0; l < n_isa_levels; l++)
        for (int nhwc = 0; nhwc < 2; nhwc++) {
            kn_conv_params p1 = {.stride = {2}, .pad_begin = {1}, .pad_end = {2},
                                 .dilation = {2}, .layout = nhwc};
            kn_conv_params p3 = {.stride = {1, 2, 1}, .pad_begin = {1, 0, 1},
                                 .pad_end = {0, 1, 1}, .groups = 2, .layout = nhwc};
            kn_manual_seed(7);
            kn_tensor *x1 = kn_tensor_rand_uniform(
                KN_F32, 3, nhwc ? (int64_t[]){3, 19, 5} : (int64_t[]){3, 5, 19}, -1, 1);
            kn_tensor *w1 = kn_tensor_rand_uniform(KN_F32, 3, (int64_t[]){7, 5, 3}, -1, 1);
            kn_tensor *x3 = kn_tensor_rand_uniform(
                KN_F32, 5, nhwc ? (int64_t[]){2, 4, 5, 6, 6} : (int64_t[]){2, 6, 4, 5, 6}, -1,
                1);
            kn_tensor *w3 = kn_tensor_rand_uniform(KN_F32, 5, (int64_t[]){4, 3, 2, 3, 2}, -1, 1);
            kn_set_isa(KN_ISA_REF);
            kn_tensor *r1 = kn_conv1d(x1, w1, NULL, &p1), *r3 = kn_conv3d(x3, w3, NULL, &p3);
            kn_set_isa(isa_levels[l]);
            kn_tensor *f1 = kn_conv1d(x1, w1, NULL, &p1), *f3 = kn_conv3d(x3, w3, NULL, &p3);
            double *a = f1 ? values(f1) : NULL, *b = r1 ? values(r1) : NULL;
            double *c = f3 ? values(f3) : NULL, *d = r3 ? values(r3) : NULL;
            KT_CHECK(a && b && c && d, "conv1d/3d ran");
            double err = 0;
            for (int64_t i = 0; a && b && i < kn_tensor_numel(r1); i++)
                err = fmax(err, fabs(a[i] - b[i]));
            for (int64_t i = 0; c && d && i < kn_tensor_numel(r3); i++)
                err = fmax(err, fabs(c[i] - d[i]));
            KT_CHECK(err < 1e-5, "conv1d/conv3d fast vs ref: max err %g (isa %s)", err,
                     kn_isa_name(isa_levels[l]));
            kt_mark("conv1d", KT_FWD), kt_mark("conv3d", KT_FWD);
            free(a), free(b), free(c), free(d);
            kn_tensor *all[] = {x1, w1, x3, w3, r1, r3, f1, f3};
            for (int i = 0; i < LEN(all); i++)
                kn_tensor_unref(all[i]);
        }
    kn_set_isa(KN_ISA_AVX512BF16);
}

/* kn__conv2d_fused: bias, scale/shift, residual and each activation, against
 * the same computed from a plain ref conv; and compute = bf16 on f32. */
static void test_fused_entry(void)
{
    static const kn_act acts[] = {KN_ACT_NONE,    KN_ACT_RELU, KN_ACT_RELU6, KN_ACT_GELU,
                                  KN_ACT_SILU,    KN_ACT_SIGMOID, KN_ACT_TANH};
    int threads = kn_get_num_threads(), n_packed = 0;
    for (int t = 0; t < 24; t++) {
        prob p = random_prob(t % 3);
        p.layout_mode = 0;
        int64_t xs[4], ys[4];
        kn_tensor *x = make_act(&p, p.cin, p.in, KN_F32, 900 + (uint64_t)t);
        kn_tensor *res = make_act(&p, p.cout, p.out, KN_F32, 950 + (uint64_t)t);
        kn_tensor *w = make_w(p.cout, p.cin / p.groups, p.k, KN_F32, 990 + (uint64_t)t);
        memcpy(xs, kn_tensor_shape(x), sizeof xs);
        memcpy(ys, kn_tensor_shape(res), sizeof ys);
        (void)xs;
        float *bias = malloc(sizeof(float) * (size_t)p.cout * 3), *scale = bias + p.cout,
              *shift = scale + p.cout;
        for (int64_t c = 0; c < p.cout; c++)
            bias[c] = (float)rnd(-8, 8) / 8, scale[c] = (float)rnd(1, 16) / 8,
            shift[c] = (float)rnd(-8, 8) / 16;
        int mask = (int)rnd(0, 15);
        kn_act act = acts[t % LEN(acts)];
        kn_epilogue ep = {.bias = mask & 1 ? bias : NULL,
                          .scale = mask & 2 ? scale : NULL,
                          .shift = mask & 4 ? shift : NULL,
                          .residual = mask & 8 ? kn_tensor_data(res) : NULL,
                          .residual_dtype = KN_F32,
                          .act = act};
        kn_conv_params cp = {.stride = {p.s[1], p.s[2]},
                             .pad_begin = {p.pb[1], p.pb[2]},
                             .pad_end = {p.pe[1], p.pe[2]},
                             .dilation = {p.d[1], p.d[2]},
                             .groups = p.groups,
                             .layout = p.nhwc};
        kn_set_isa(KN_ISA_REF);
        kn_tensor *y = kn_conv2d(x, w, NULL, &cp);
        kn_tensor *ax = kn_abs(x), *aw = kn_abs(w), *bound = kn_conv2d(ax, aw, NULL, &cp);
        kn_set_isa(isa_levels[0]);
        kn_set_num_threads(1);
        kn_tensor *f = kn__conv2d_fused(x, w, &cp, &ep, KN_F32, NULL, NULL);
        kn_set_num_threads(2);
        kn_tensor *f2 = kn__conv2d_fused(x, w, &cp, &ep, KN_F32, NULL, NULL);
        kn_tensor *fb = kn__conv2d_fused(x, w, &cp, &ep, KN_BF16, NULL, NULL);
        /* weights packed ahead (as a compiled graph does): the same bits */
        kn_conv_packed *pk = kn__conv2d_prepack(x, w, &cp, KN_F32),
                       *pkb = kn__conv2d_prepack(x, w, &cp, KN_BF16);
        kn_tensor *fp = kn__conv2d_fused(x, w, &cp, &ep, KN_F32, NULL, pk);
        kn_tensor *fpb = kn__conv2d_fused(x, w, &cp, &ep, KN_BF16, NULL, pkb);
        KT_NOTNULL(fp);
        KT_NOTNULL(fpb);
        /* packed for the wrong compute dtype: detected, packed again per call */
        kn_tensor *fx = pk ? kn__conv2d_fused(x, w, &cp, &ep, KN_BF16, NULL, pk) : NULL;
        KT_CHECK(!pk || (fx && kt_equal_bits(fb, fx)), "fused bf16 given f32-packed weights differs");
        n_packed += pk != NULL;
        kn__conv_packed_free(pk), kn__conv_packed_free(pkb);
        kn_tensor_unref(fx);
        KT_NOTNULL(y);
        KT_NOTNULL(f);
        KT_NOTNULL(f2);
        KT_NOTNULL(fb);
        if (y && f && f2 && fb && fp && fpb && bound) {
            KT_CHECK(kt_equal_bits(f, f2), "fused: 1 vs 2 threads differ");
            double *yv = values(y), *fv = values(f), *bv = values(fb), *bd = values(bound);
            double *rv = values(res), *pv = values(fp), *pbv = values(fpb);
            int64_t n = kn_tensor_numel(y), K = p.cin / p.groups * p.k[1] * p.k[2];
            double u = 1.0 / (1 << 24);
            int64_t bad = -1, badb = -1, badp = -1;
            for (int64_t i = 0; i < n; i++) {
                int64_t c = p.nhwc ? i % p.cout : i / (p.out[1] * p.out[2]) % p.cout;
                /* expected: epilogue on the ref conv, in double; error of the
                 * conv amplified by the scale (<= 2) and the activation
                 * (slope <= 1.1 for these) */
                double v = yv[i], e_conv = 2.0 * (double)(K + 4) * u * bd[i];
                if (ep.bias) v += bias[c];
                if (ep.scale || ep.shift)
                    v = v * (ep.scale ? scale[c] : 1.0) + (ep.shift ? shift[c] : 0.0);
                if (ep.residual) v += rv[i];
                v = kn__act_ref(act, (float)v);
                double mag = fabs(v) + bd[i] * 2 + 1;
                double tol = 2.2 * e_conv + 1e-6 * mag;
                double tolb = tol + 2.2 * 2.0 / 256 * bd[i];
                if (!(fabs(fv[i] - v) <= tol) && bad < 0) bad = i;
                if (!(fabs(bv[i] - v) <= tolb) && badb < 0) badb = i;
                /* packed weights: the direct NHWC kernel, same bounds */
                if (!(fabs(pv[i] - v) <= tol) && badp < 0) badp = i;
                if (!(fabs(pbv[i] - v) <= tolb) && badp < 0) badp = i;
            }
            KT_CHECK(bad < 0, "fused f32 element %lld: %.9g vs %.9g (mask %d act %d)",
                     (long long)bad, bad >= 0 ? fv[bad] : 0, bad >= 0 ? yv[bad] : 0, mask,
                     (int)act);
            KT_CHECK(badb < 0, "fused bf16-compute element %lld: %.9g (mask %d act %d)",
                     (long long)badb, badb >= 0 ? bv[badb] : 0, mask, (int)act);
            KT_CHECK(badp < 0, "fused with packed weights, element %lld (mask %d act %d)",
                     (long long)badp, mask, (int)act);
            if (bad >= 0 || badb >= 0 || badp >= 0) describe(&p, "fused");
            free(yv), free(fv), free(bv), free(bd), free(rv), free(pv), free(pbv);
        }
        free(bias);
        kn_tensor *all[] = {x, res, w, y, ax, aw, bound, f, f2, fb, fp, fpb};
        for (int i = 0; i < LEN(all); i++)
            kn_tensor_unref(all[i]);
    }
    KT_CHECK(n_isa_levels == 0 || isa_levels[0] < KN_ISA_AVX512 || n_packed > 0,
             "no problem took the packed NHWC path");
    kn_set_isa(KN_ISA_AVX512BF16);
    kn_set_num_threads(threads);
}

/* The NCHW f32 no-pack kernel's in-kernel epilogue: bias, scale/shift, a
 * bf16 or f32 residual and relu/relu6, several k blocks and tails, against
 * the reference conv followed by the epilogue in double; 1 vs 2 threads
 * bitwise. */
static void test_fused_nopack(void)
{
    static const struct {
        int64_t cin, cout, h, w, k;
    } shapes[] = {{150, 20, 7, 9, 3}, {200, 101, 5, 13, 1}, {3, 64, 23, 21, 7}, {129, 7, 1, 1, 1}};
    int threads = kn_get_num_threads();
    for (int t = 0; t < 2 * LEN(shapes); t++) {
        int si = t % LEN(shapes);
        int64_t kk = shapes[si].k, pad = kk / 2, s = kk == 7 ? 2 : 1;
        prob p = {.nsp = 2, .nhwc = false, .n = 1, .cin = shapes[si].cin,
                  .cout = shapes[si].cout, .groups = 1, .in = {1, shapes[si].h, shapes[si].w},
                  .k = {1, kk, kk}, .s = {1, s, s}, .d = {1, 1, 1}, .pb = {0, pad, pad},
                  .pe = {0, pad, pad}};
        for (int j = 0; j < 3; j++)
            p.out[j] = (p.in[j] + p.pb[j] + p.pe[j] - p.d[j] * (p.k[j] - 1) - 1) / p.s[j] + 1;
        kn_dtype rdt = t < LEN(shapes) ? KN_BF16 : KN_F32;
        kn_tensor *x = make_act(&p, p.cin, p.in, KN_F32, 1200 + (uint64_t)t);
        kn_tensor *res = make_act(&p, p.cout, p.out, rdt, 1250 + (uint64_t)t);
        kn_tensor *w = make_w(p.cout, p.cin, p.k, KN_F32, 1290 + (uint64_t)t);
        float *bias = malloc(sizeof(float) * (size_t)p.cout * 3), *scale = bias + p.cout,
              *shift = scale + p.cout;
        for (int64_t c = 0; c < p.cout; c++)
            bias[c] = (float)rnd(-8, 8) / 8, scale[c] = (float)rnd(1, 16) / 8,
            shift[c] = (float)rnd(-8, 8) / 16;
        kn_act act = t % 2 ? KN_ACT_RELU6 : KN_ACT_RELU;
        kn_epilogue ep = {.bias = bias, .scale = t % 3 ? scale : NULL, .shift = shift,
                          .residual = kn_tensor_data(res), .residual_dtype = rdt, .act = act};
        kn_conv_params cp = {.stride = {s, s}, .pad_begin = {pad, pad}, .pad_end = {pad, pad},
                             .dilation = {1, 1}, .groups = 1, .layout = false};
        kn_set_isa(KN_ISA_REF);
        kn_tensor *y = kn_conv2d(x, w, NULL, &cp);
        kn_tensor *ax = kn_abs(x), *aw = kn_abs(w), *bound = kn_conv2d(ax, aw, NULL, &cp);
        kn_set_isa(isa_levels[0]);
        kn_set_num_threads(1);
        kn_tensor *f = kn__conv2d_fused(x, w, &cp, &ep, KN_F32, NULL, NULL);
        kn_set_num_threads(2);
        kn_tensor *f2 = kn__conv2d_fused(x, w, &cp, &ep, KN_F32, NULL, NULL);
        KT_NOTNULL(y);
        KT_NOTNULL(f);
        KT_NOTNULL(f2);
        if (y && f && f2 && bound) {
            KT_CHECK(kt_equal_bits(f, f2), "fused no-pack: 1 vs 2 threads differ");
            double *yv = values(y), *fv = values(f), *bd = values(bound), *rv = values(res);
            int64_t n = kn_tensor_numel(y), K = p.cin * kk * kk, bad = -1;
            double u = 1.0 / (1 << 24);
            for (int64_t i = 0; i < n; i++) {
                int64_t c = i / (p.out[1] * p.out[2]) % p.cout;
                double v = yv[i] + bias[c], e_conv = 2.0 * (double)(K + 4) * u * bd[i];
                v = v * (ep.scale ? scale[c] : 1.0) + shift[c] + rv[i];
                v = kn__act_ref(act, (float)v);
                double tol = 2.2 * e_conv + 1e-6 * (fabs(v) + bd[i] * 2 + 1);
                if (!(fabs(fv[i] - v) <= tol) && bad < 0) bad = i;
            }
            KT_CHECK(bad < 0, "fused no-pack element %lld: %.9g vs %.9g (shape %d)",
                     (long long)bad, bad >= 0 ? fv[bad] : 0, bad >= 0 ? yv[bad] : 0, si);
            free(yv), free(fv), free(bd), free(rv);
        }
        free(bias);
        kn_tensor *all[] = {x, res, w, y, ax, aw, bound, f, f2};
        for (int i = 0; i < LEN(all); i++)
            kn_tensor_unref(all[i]);
    }
    kn_set_isa(KN_ISA_AVX512BF16);
    kn_set_num_threads(threads);
}

/* The fast paths report allocation failures as errors and leak nothing. */
static kn_status alloc_case(void *ctx)
{
    const prob *p = ctx;
    kn_tensor *x = make_act(p, p->cin, p->in, KN_F32, 5), *w = make_w(p->cout, p->cin / p->groups,
                                                                        p->k, KN_F32, 6);
    kn_conv_params cp = {.stride = {p->s[1], p->s[2]},
                         .pad_begin = {p->pb[1], p->pb[2]},
                         .pad_end = {p->pe[1], p->pe[2]},
                         .groups = p->groups,
                         .layout = p->nhwc};
    kn_tensor *y = x && w ? kn_conv2d(x, w, NULL, &cp) : NULL;
    kn_status s = y ? KN_OK : kn_last_status();
    if (!x || !w) s = KN_ERR_NOMEM;
    kn_tensor_unref(x), kn_tensor_unref(w), kn_tensor_unref(y);
    return s;
}

static void test_alloc_failures(void)
{
    prob ps[2] = {{.nsp = 2, .nhwc = true, .n = 1, .cin = 5, .cout = 7, .groups = 1,
                   .in = {1, 6, 6}, .k = {1, 3, 3}, .s = {1, 2, 2}, .d = {1, 1, 1},
                   .pb = {0, 1, 1}, .pe = {0, 1, 1}},
                  {.nsp = 2, .nhwc = false, .n = 1, .cin = 8, .cout = 8, .groups = 8,
                   .in = {1, 6, 6}, .k = {1, 3, 3}, .s = {1, 1, 1}, .d = {1, 1, 1},
                   .pb = {0, 1, 1}, .pe = {0, 1, 1}}};
    for (int i = 0; i < 2; i++)
        KT_CHECK(kt_alloc_walk("conv2d fast", alloc_case, &ps[i]) > 0, "walked");
}

int main(void)
{
    find_isa_levels();
    if (n_isa_levels == 0) {
        printf("note: no SIMD ISA on this CPU; only the reference runs\n");
        return kt_finish();
    }
    KT_RUN(test_forward_random);
    KT_RUN(test_forward_pointwise);
    KT_RUN(test_forward_depthwise);
    KT_RUN(test_forward_medium);
    KT_RUN(test_conv1d_conv3d);
    KT_RUN(test_grad_input_random);
    KT_RUN(test_grad_weight_random);
    KT_RUN(test_transpose_random);
    KT_RUN(test_fused_entry);
    KT_RUN(test_fused_nopack);
    KT_RUN(test_alloc_failures);
    return kt_finish();
}
