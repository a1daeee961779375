/* test_conv_dw.c — the AVX-512 NHWC depthwise kernel (src/kernels/x86/
 * avx512/conv_dw.c) through both its entries: kn__conv_dw_nhwc (weights
 * packed per call or ahead) and the row entry kn__conv_dw_nhwc_avx512.
 * The kernel promises one fixed sequence per output: acc = 0; for kh, kw
 * ascending, taps inside the input: acc = fma(x, w, acc); then + bias,
 * * scale, + shift, + residual, activation, rounding to y's dtype. The test
 * computes that sequence in scalar C and wants the same bits, on edge-heavy
 * shapes (7x7 and 14x14 and smaller, stride 1 and 2, pads 0..2, asymmetric,
 * C from 1 to 960 with tails), f32 and bf16 activations and weights, every
 * epilogue, padded pixel strides, non-contiguous weights, 1 and 2 threads;
 * and checks the sequence itself against the reference conv (KILN_ISA=ref). */
#include "harness.h"

#include "kernels/conv_dw.h"

#include <stdlib.h>

#define LEN(a) ((int)(sizeof(a) / sizeof((a)[0])))

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint32_t rnd32(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
static float rndf(void) /* in [-1, 1) */
{
    return (float)((double)rnd32() / 2147483648.0 - 1.0);
}

typedef struct dwcase {
    int64_t n, c, h, w, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
    kn_dtype xdt, wdt, rdt; /* activations (x and y), weights, residual */
    int epi;                /* bits: 1 bias, 2 scale, 4 shift, 8 residual */
    kn_act act;
    int xpad, ypad; /* extra elements between pixels of x / y */
    int wmode;      /* 0 contiguous (C,1,kH,kW), 1 padded channel stride, 2 tap-major */
} dwcase;

typedef struct dwbufs {
    kn_conv_geom g;
    kn_conv_act x, y;
    kn_conv_wgt w;
    float *bias, *scale, *shift;
    void *res;
    int64_t ysize; /* elements of y (and of the residual) */
} dwbufs;

static float load_el(const char *p, kn_dtype dt, int64_t i)
{
    return dt == KN_F32 ? ((const float *)p)[i] : kn_bf16_to_f32(((const uint16_t *)p)[i]);
}

static void store_el(char *p, kn_dtype dt, int64_t i, float v)
{
    if (dt == KN_F32)
        ((float *)p)[i] = v;
    else
        ((uint16_t *)p)[i] = kn_f32_to_bf16(v);
}

static char *rand_buf(kn_dtype dt, int64_t n)
{
    char *p = malloc(kn_dtype_size(dt) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++)
        store_el(p, dt, i, rndf());
    return p;
}

static bool setup(const dwcase *t, dwbufs *b)
{
    memset(b, 0, sizeof *b);
    kn_conv_geom *g = &b->g;
    g->nsp = 2, g->nhwc = true, g->n = t->n, g->cin = g->cout = g->groups = t->c;
    int64_t oh = (t->h + t->pt + t->pb - t->dh * (t->kh - 1) - 1) / t->sh + 1;
    int64_t ow = (t->w + t->pl + t->pr - t->dw * (t->kw - 1) - 1) / t->sw + 1;
    if (oh < 1 || ow < 1) return false;
    int64_t in[3] = {1, t->h, t->w}, out[3] = {1, oh, ow}, k[3] = {1, t->kh, t->kw};
    int64_t s[3] = {1, t->sh, t->sw}, d[3] = {1, t->dh, t->dw};
    int64_t pb[3] = {0, t->pt, t->pl}, pe[3] = {0, t->pb, t->pr};
    memcpy(g->in, in, sizeof in), memcpy(g->out, out, sizeof out), memcpy(g->k, k, sizeof k);
    memcpy(g->s, s, sizeof s), memcpy(g->d, d, sizeof d);
    memcpy(g->pb, pb, sizeof pb), memcpy(g->pe, pe, sizeof pe);
    int64_t C = t->c, xpix = C + t->xpad, ypix = C + t->ypad, kk = t->kh * t->kw;
    b->x = (kn_conv_act){.dt = t->xdt, .sc = 1};
    b->x.ss[2] = xpix, b->x.ss[1] = xpix * t->w, b->x.sn = xpix * t->w * t->h;
    b->x.p = rand_buf(t->xdt, b->x.sn * t->n);
    b->y = (kn_conv_act){.dt = t->xdt, .sc = 1};
    b->y.ss[2] = ypix, b->y.ss[1] = ypix * ow, b->y.sn = ypix * ow * oh;
    b->ysize = b->y.sn * t->n;
    b->y.p = malloc(kn_dtype_size(t->xdt) * (size_t)b->ysize);
    b->w = (kn_conv_wgt){.dt = t->wdt};
    int64_t wn = C * kk;
    if (t->wmode == 0)
        b->w.s0 = b->w.s1 = kk, b->w.sk[1] = t->kw, b->w.sk[2] = 1;
    else if (t->wmode == 1)
        b->w.s0 = b->w.s1 = kk + 3, b->w.sk[1] = t->kw, b->w.sk[2] = 1, wn = C * (kk + 3);
    else
        b->w.s0 = b->w.s1 = 1, b->w.sk[1] = t->kw * C, b->w.sk[2] = C;
    b->w.p = rand_buf(t->wdt, wn);
    b->bias = malloc(sizeof(float) * (size_t)C * 3);
    b->scale = b->bias + C, b->shift = b->scale + C;
    for (int64_t c = 0; c < C; c++)
        b->bias[c] = rndf(), b->scale[c] = 0.5f + rndf() * rndf(), b->shift[c] = rndf() / 4;
    if (t->epi & 8) b->res = rand_buf(t->rdt, b->ysize);
    return true;
}

static void release(dwbufs *b)
{
    free(b->x.p), free(b->y.p), free(b->w.p), free(b->bias), free(b->res);
}

static kn_epilogue epilogue_of(const dwcase *t, const dwbufs *b)
{
    return (kn_epilogue){.bias = t->epi & 1 ? b->bias : NULL,
                         .scale = t->epi & 2 ? b->scale : NULL,
                         .shift = t->epi & 4 ? b->shift : NULL,
                         .residual = t->epi & 8 ? b->res : NULL,
                         .residual_dtype = t->rdt,
                         .act = t->act};
}

/* The promised sequence, in scalar C: y elements as f32 (bf16 y rounded). */
static float *expected(const dwcase *t, const dwbufs *b, bool with_ep)
{
    const kn_conv_geom *g = &b->g;
    float *e = malloc(sizeof(float) * (size_t)b->ysize);
    size_t wes = kn_dtype_size(t->wdt);
    for (int64_t i = 0; i < b->ysize; i++)
        e[i] = NAN;
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t oh = 0; oh < g->out[1]; oh++)
            for (int64_t ow = 0; ow < g->out[2]; ow++)
                for (int64_t c = 0; c < g->cin; c++) {
                    float acc = 0;
                    for (int64_t kh = 0; kh < t->kh; kh++)
                        for (int64_t kw = 0; kw < t->kw; kw++) {
                            int64_t ih = oh * t->sh - t->pt + kh * t->dh;
                            int64_t iw = ow * t->sw - t->pl + kw * t->dw;
                            if (ih < 0 || ih >= t->h || iw < 0 || iw >= t->w) continue;
                            float xv = load_el(b->x.p, t->xdt,
                                               n * b->x.sn + ih * b->x.ss[1] + iw * b->x.ss[2] + c);
                            const char *wp =
                                b->w.p +
                                (c * b->w.s0 + kh * b->w.sk[1] + kw * b->w.sk[2]) * (int64_t)wes;
                            float wv = t->wdt == KN_F32 ? *(const float *)wp
                                                        : kn_bf16_to_f32(*(const uint16_t *)wp);
                            acc = fmaf(xv, wv, acc);
                        }
                    int64_t o = n * b->y.sn + oh * b->y.ss[1] + ow * b->y.ss[2] + c;
                    if (with_ep) {
                        if (t->epi & 1) acc = acc + b->bias[c];
                        if (t->epi & 2) acc = acc * b->scale[c];
                        if (t->epi & 4) acc = acc + b->shift[c];
                        if (t->epi & 8) acc = acc + load_el(b->res, t->rdt, o);
                        acc = kn__act_ref(t->act, acc);
                    }
                    e[o] = t->xdt == KN_F32 ? acc : kn_bf16_to_f32(kn_f32_to_bf16(acc));
                }
    return e;
}

static void describe(const dwcase *t, const char *what)
{
    fprintf(stderr,
            "  %s: n %lld c %lld in %lldx%lld k %lldx%lld s %lldx%lld d %lldx%lld pads t%lld "
            "l%lld b%lld r%lld x %s w %s epi %d res %s act %d xpad %d ypad %d wmode %d\n",
            what, (long long)t->n, (long long)t->c, (long long)t->h, (long long)t->w,
            (long long)t->kh, (long long)t->kw, (long long)t->sh, (long long)t->sw,
            (long long)t->dh, (long long)t->dw, (long long)t->pt, (long long)t->pl,
            (long long)t->pb, (long long)t->pr, kn_dtype_name(t->xdt), kn_dtype_name(t->wdt),
            t->epi, kn_dtype_name(t->rdt), (int)t->act, t->xpad, t->ypad, t->wmode);
}

/* y as computed matches e bit for bit on every output element, and the
 * padding between y's pixels (preset to a sentinel) is untouched. */
static bool same_bits(const dwcase *t, const dwbufs *b, const float *e, const char *what)
{
    int64_t bad = -1;
    float got = 0;
    for (int64_t i = 0; i < b->ysize && bad < 0; i++) {
        bool pad = i % b->y.ss[2] >= b->g.cin;
        float v = load_el(b->y.p, t->xdt, i);
        uint32_t vb, eb;
        memcpy(&vb, &v, 4), memcpy(&eb, &e[i], 4);
        bool ok =
            pad ? (t->xdt == KN_F32 ? vb == 0x7fc00123u : ((const uint16_t *)b->y.p)[i] == 0x7fc1)
                : vb == eb;
        if (!ok) bad = i, got = v;
    }
    KT_CHECK(bad < 0, "%s: y element %lld (channel %lld) is %.9g, expected %.9g", what,
             (long long)bad, (long long)(bad % b->y.ss[2]), got, bad >= 0 ? e[bad] : 0.0);
    if (bad >= 0) describe(t, what);
    return bad < 0;
}

static void clear_y(const dwcase *t, dwbufs *b)
{
    for (int64_t i = 0; i < b->ysize; i++) {
        if (t->xdt == KN_F32) {
            uint32_t s = 0x7fc00123u;
            memcpy((float *)b->y.p + i, &s, 4);
        } else {
            ((uint16_t *)b->y.p)[i] = 0x7fc1;
        }
    }
}

/* The row entry's weights: f32 [tap][C] (no padding). */
static float *pack_rows(const dwcase *t, const dwbufs *b)
{
    int64_t C = t->c, kk = t->kh * t->kw;
    float *wp = malloc(sizeof(float) * (size_t)(C * kk));
    size_t wes = kn_dtype_size(t->wdt);
    for (int64_t c = 0; c < C; c++)
        for (int64_t k = 0; k < kk; k++) {
            const char *p =
                b->w.p +
                (c * b->w.s0 + k / t->kw * b->w.sk[1] + k % t->kw * b->w.sk[2]) * (int64_t)wes;
            wp[k * C + c] =
                t->wdt == KN_F32 ? *(const float *)p : kn_bf16_to_f32(*(const uint16_t *)p);
        }
    return wp;
}

/* One case through every entry and 1 and 2 threads. */
static void check_case(const dwcase *t)
{
    dwbufs b;
    if (!setup(t, &b)) return;
    kn_epilogue ep = epilogue_of(t, &b);
    float *e = expected(t, &b, true);
    int threads = kn_get_num_threads();
    bool ok = true;
    for (int th = 1; th <= 2 && ok; th++) {
        kn_set_num_threads(th);
        clear_y(t, &b);
        KT_OK(kn__conv_dw_nhwc(&b.g, &b.x, &b.w, NULL, &b.y, &ep));
        ok = same_bits(t, &b, e,
                       th == 1 ? "packed per call, 1 thread" : "packed per call, 2 threads");
    }
    kn_set_num_threads(1);
    float *wp = malloc(sizeof(float) * (size_t)kn__conv_dw_nhwc_wsize(&b.g));
    kn__conv_dw_nhwc_pack(&b.g, &b.w, wp);
    clear_y(t, &b);
    KT_OK(kn__conv_dw_nhwc(&b.g, &b.x, &b.w, wp, &b.y, &ep));
    if (ok) ok = same_bits(t, &b, e, "packed ahead");
    /* the row entry, over two row ranges split mid-image */
    float *wr = pack_rows(t, &b);
    clear_y(t, &b);
    int64_t rows = b.g.n * b.g.out[1], mid = rows / 2 + (rows > 2);
    kn__conv_dw_nhwc_avx512(&b.g, &b.x, wr, &b.y, &ep, 0, mid);
    kn__conv_dw_nhwc_avx512(&b.g, &b.x, wr, &b.y, &ep, mid, rows);
    if (ok) ok = same_bits(t, &b, e, "row entry");
    kn_set_num_threads(threads);
    free(wp), free(wr), free(e);
    release(&b);
}

static dwcase base_case(int64_t c, int64_t hw, int64_t s, kn_dtype dt)
{
    return (dwcase){.n = 1,
                    .c = c,
                    .h = hw,
                    .w = hw,
                    .kh = 3,
                    .kw = 3,
                    .sh = s,
                    .sw = s,
                    .dh = 1,
                    .dw = 1,
                    .pt = 1,
                    .pl = 1,
                    .pb = 1,
                    .pr = 1,
                    .xdt = dt,
                    .wdt = dt,
                    .rdt = dt,
                    .act = KN_ACT_NONE};
}

/* MobileNet-like 3x3 layers at 7x7 and 14x14 (most pixels on an edge),
 * stride 1 and 2, pad 1, C with and without tails, each epilogue. */
static void test_mobilenet_edges(void)
{
    static const int64_t chans[] = {16, 17, 24, 40, 96, 100, 1, 3, 144, 960};
    static const kn_act acts[] = {KN_ACT_NONE, KN_ACT_RELU6, KN_ACT_RELU, KN_ACT_RELU6};
    int i = 0;
    for (int ci = 0; ci < LEN(chans); ci++)
        for (int hw = 7; hw <= 14; hw += 7)
            for (int s = 1; s <= 2; s++)
                for (int dt = 0; dt < 2; dt++, i++) {
                    dwcase t = base_case(chans[ci], hw, s, dt ? KN_BF16 : KN_F32);
                    t.epi = i % 16;
                    t.act = acts[i % LEN(acts)];
                    t.rdt = (i / 3) % 2 ? KN_BF16 : KN_F32;
                    if (i % 5 == 0) t.wdt = dt ? KN_F32 : KN_BF16;
                    if (chans[ci] == 960 && hw == 14) t.n = 1 + s % 2; /* keep it quick */
                    check_case(&t);
                }
}

/* Small and odd geometries around the 3x3 path's limits: widths 1..9 (one
 * block, several blocks, blocks of unequal size), pads 0, 1, 2 and
 * asymmetric (the generic path takes pad 2), even inputs with stride 2,
 * H stride and dilation, batch 2, padded pixel strides, all weight layouts. */
static void test_small_geometries(void)
{
    int i = 0;
    for (int64_t w = 1; w <= 9; w++)
        for (int64_t h = 1; h <= 4; h += 3)
            for (int v = 0; v < 6; v++, i++) {
                dwcase t = base_case(v % 2 ? 19 : 32, h, 1 + v / 3 % 2, v % 3 ? KN_F32 : KN_BF16);
                t.w = w;
                t.pl = v % 3, t.pr = (v + w) % 3, t.pt = (v + 1) % 2, t.pb = w % 2;
                t.sh = 1 + (int64_t)(i % 4 == 0);
                t.dh = 1 + (int64_t)(i % 5 == 0);
                t.n = 1 + i % 2;
                t.epi = (i * 7) % 16;
                t.act = i % 3 ? KN_ACT_RELU6 : KN_ACT_GELU;
                t.xpad = i % 4 == 1 ? 3 : 0, t.ypad = i % 4 == 2 ? 5 : 0;
                t.wmode = i % 3;
                check_case(&t);
            }
    /* pads past the 3x3 path's reach (3 after, 2 before): the generic path */
    for (int v = 0; v < 4; v++) {
        dwcase t = base_case(18, 6 + v, 1 + v / 2, v % 3 ? KN_F32 : KN_BF16);
        t.pl = v % 2 ? 0 : 2, t.pr = 3, t.pt = 0, t.pb = 3;
        t.epi = 9, t.act = KN_ACT_RELU;
        check_case(&t);
    }
    /* a row of 23: blocks of 8, 8, 7; stride 2 with OW 12 */
    for (int v = 0; v < 4; v++) {
        dwcase t = base_case(33, 23, 1 + v % 2, v < 2 ? KN_F32 : KN_BF16);
        t.epi = 15, t.act = KN_ACT_RELU6, t.xpad = 1, t.ypad = 2;
        check_case(&t);
    }
}

/* Kernels other than 3x3 go the generic way: 5x5, 1x1, 3x1, 1x3, 5x3,
 * dilation 2 in W, stride 3, with tails and epilogues. */
static void test_generic_kernels(void)
{
    static const int64_t ks[][2] = {{5, 5}, {1, 1}, {3, 1}, {1, 3}, {5, 3}, {3, 3}, {2, 2}};
    for (int i = 0; i < 2 * LEN(ks); i++) {
        dwcase t = base_case(i % 3 ? 37 : 80, 9 + i % 4, 1 + i % 2, i % 4 < 2 ? KN_F32 : KN_BF16);
        t.kh = ks[i % LEN(ks)][0], t.kw = ks[i % LEN(ks)][1];
        t.pt = t.pb = t.kh / 2, t.pl = t.pr = t.kw / 2;
        if (t.kh == 3 && t.kw == 3) t.dw = 2, t.pl = t.pr = 2; /* dilated: generic */
        if (t.kh == 2) t.sw = 3;
        t.w += 4;
        t.epi = (i * 5) % 16;
        t.act = i % 2 ? KN_ACT_RELU : KN_ACT_SILU;
        t.wmode = i % 3;
        t.xpad = i % 2 ? 0 : 2;
        check_case(&t);
    }
}

/* The promised sequence is the convolution: it matches the reference conv
 * (kn_conv2d at KILN_ISA=ref) within the f32 error of a 9-term dot. */
static void test_sequence_is_conv(void)
{
    kn_isa isa = kn_isa_max();
    for (int i = 0; i < 4; i++) {
        dwcase t = base_case(i < 2 ? 21 : 64, 7 + 7 * (i % 2), 1 + i / 2 % 2, KN_F32);
        dwbufs b;
        if (!setup(&t, &b)) continue;
        float *e = expected(&t, &b, false);
        int64_t C = t.c, H = t.h, W = t.w, kk = 9;
        double *xv = malloc(sizeof(double) * (size_t)(H * W * C)),
               *wv = malloc(sizeof(double) * (size_t)(C * kk));
        for (int64_t j = 0; j < H * W * C; j++)
            xv[j] = ((const float *)b.x.p)[j];
        for (int64_t j = 0; j < C * kk; j++)
            wv[j] = ((const float *)b.w.p)[j];
        kn_tensor *x = kt_tensor(KN_F32, 4, (int64_t[]){1, H, W, C}, xv);
        kn_tensor *w = kt_tensor(KN_F32, 4, (int64_t[]){C, 1, 3, 3}, wv);
        kn_conv_params cp = {.stride = {t.sh, t.sw},
                             .pad_begin = {1, 1},
                             .pad_end = {1, 1},
                             .dilation = {1, 1},
                             .groups = C,
                             .layout = KN_LAYOUT_NHWC};
        kn_set_isa(KN_ISA_REF);
        kn_tensor *y = kn_conv2d(x, w, NULL, &cp);
        kn_set_isa(isa);
        KT_NOTNULL(y);
        if (y) {
            int64_t n = kn_tensor_numel(y);
            KT_CHECK(n == b.ysize, "reference has %lld elements, expected %lld", (long long)n,
                     (long long)b.ysize);
            double *yv = malloc(sizeof(double) * (size_t)n);
            kn_tensor_copy_to(y, KN_F64, yv, sizeof(double) * (size_t)n);
            double worst = 0;
            for (int64_t j = 0; j < n && n == b.ysize; j++)
                worst = fmax(worst, fabs(yv[j] - e[j]));
            KT_CHECK(worst <= 9 * 2 * 9.0 / (1 << 24), "sequence vs reference conv: %.3g", worst);
            free(yv);
        }
        kn_tensor_unref(x), kn_tensor_unref(w), kn_tensor_unref(y);
        free(xv), free(wv), free(e);
        release(&b);
    }
}

/* Bad operands are an error, not a crash; allocation failures too. */
static kn_status alloc_case(void *ctx)
{
    dwbufs *b = ctx;
    return kn__conv_dw_nhwc(&b->g, &b->x, &b->w, NULL, &b->y, NULL);
}

static void test_errors(void)
{
    dwcase t = base_case(20, 7, 1, KN_F32);
    dwbufs b;
    KT_CHECK(setup(&t, &b), "setup");
    kn_conv_act bad = b.x;
    bad.sc = 2;
    KT_CHECK(kn__conv_dw_nhwc(&b.g, &bad, &b.w, NULL, &b.y, NULL) == KN_ERR_INTERNAL &&
                 strstr(kn_last_error(), "conv_dw_nhwc"),
             "channel stride 2 accepted: %s", kn_last_error());
    bad = b.y;
    bad.dt = KN_BF16;
    KT_CHECK(kn__conv_dw_nhwc(&b.g, &b.x, &b.w, NULL, &bad, NULL) == KN_ERR_INTERNAL,
             "y dtype unlike x accepted");
    KT_CHECK(kt_alloc_walk("conv_dw_nhwc", alloc_case, &b) >= 1, "allocations walked");
    release(&b);
}

int main(void)
{
    if (kn_isa_max() < KN_ISA_AVX512) {
        printf("note: no AVX-512 here (or KILN_ISA caps it); the depthwise kernel is not tested\n");
        return kt_finish();
    }
    KT_RUN(test_mobilenet_edges);
    KT_RUN(test_small_geometries);
    KT_RUN(test_generic_kernels);
    KT_RUN(test_sequence_is_conv);
    KT_RUN(test_errors);
    return kt_finish();
}
