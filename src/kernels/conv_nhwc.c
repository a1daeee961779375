/* conv_nhwc.c — driver of the direct NHWC convolution (see conv_nhwc.h):
 * weight packing, the zero-padded input copy, and the split of the output
 * into tiles of up to 14 pixels of one output row × one 32-channel weight
 * block, run by kn_parallel_for block-major (each thread streams one
 * block's packed weights over many pixel tiles while they sit in L2). */
#include "conv_nhwc.h"

#include <string.h>

#define MR KN_CONV_NHWC_MR
#define NR KN_CONV_NHWC_NR

bool kn__conv_nhwc_usable(const kn_conv_geom *g, const kn_conv_act *x, const kn_conv_act *y,
                          kn_dtype compute)
{
#if KILN_X86
    kn_isa need = compute == KN_BF16 ? KN_ISA_AVX512BF16 : KN_ISA_AVX512;
    return g->nhwc && g->groups == 1 && g->nsp <= 2 && x->sc == 1 && y->sc == 1 &&
           kn_isa_max() >= need && (compute == KN_F32 || compute == KN_BF16) &&
           (x->dt == KN_F32 || x->dt == KN_BF16) && (y->dt == KN_F32 || y->dt == KN_BF16) &&
           g->cin > 0 && g->cout > 0;
#else
    (void)g, (void)x, (void)y, (void)compute;
    return false;
#endif
}

void kn__conv_nhwc_free(kn_conv_nhwc_w *w)
{
    if (!w) return;
    kn_free(w->p);
    kn_free(w);
}

bool kn__conv_nhwc_matches(const kn_conv_nhwc_w *w, const kn_conv_geom *g)
{
    return w && w->isa == kn_isa_max() && w->cout == g->cout && w->cin == g->cin &&
           w->kh == g->k[1] && w->kw == g->k[2];
}

/* Block j of the packed weights: reads each output channel's weights in
 * source order (rows of C_in × kh × kw) and scatters them to their lanes. */
static void pack_block(const kn_conv_geom *g, const kn_conv_wgt *w, const kn_conv_nhwc_w *pw,
                       int64_t j)
{
    bool bf = pw->dt == KN_BF16;
    size_t es = bf ? 2 : 4;
    char *blk = (char *)pw->p + (size_t)(j * pw->blk_elems) * es;
    memset(blk, 0, (size_t)pw->blk_elems * es);
    int64_t wes = (int64_t)kn_dtype_size(w->dt);
    for (int64_t c = 0; c < NR && j * NR + c < g->cout; c++) {
        const char *src = w->p + (j * NR + c) * w->s0 * wes;
        for (int64_t ci = 0; ci < g->cin; ci++)
            for (int64_t kh = 0, t = 0; kh < pw->kh; kh++)
                for (int64_t kw = 0; kw < pw->kw; kw++, t++) {
                    int64_t off = ci * w->s1 + kh * w->sk[1] + kw * w->sk[2];
                    if (!bf && w->dt == KN_F32) {
                        ((float *)blk)[(t * pw->cinp + ci) * NR + c] = ((const float *)src)[off];
                        continue;
                    }
                    float v = w->dt == KN_F32 ? ((const float *)src)[off]
                                              : kn_bf16_to_f32(((const uint16_t *)src)[off]);
                    if (bf) /* pairs of input channels per output channel */
                        ((uint16_t *)blk)[(t * pw->cinp + ci / 2 * 2) * NR + c * 2 + ci % 2] = kn_f32_to_bf16(v);
                    else
                        ((float *)blk)[(t * pw->cinp + ci) * NR + c] = v;
                }
    }
}

static void pack_task(int64_t b, int64_t e, void *arg)
{
    void **a = arg;
    for (int64_t j = b; j < e; j++)
        pack_block(a[0], a[1], a[2], j);
}

kn_status kn__conv_nhwc_pack(const kn_conv_geom *g, const kn_conv_wgt *w, kn_dtype compute,
                             kn_conv_nhwc_w **out)
{
    *out = NULL;
    kn_conv_nhwc_w *pw = kn_alloc(sizeof *pw);
    if (!pw) return KN_ERR_NOMEM;
    bool bf = compute == KN_BF16;
    *pw = (kn_conv_nhwc_w){.dt = bf ? KN_BF16 : KN_F32, .isa = kn_isa_max(), .cout = g->cout,
                           .cin = g->cin, .cinp = bf ? (g->cin + 1) / 2 * 2 : g->cin,
                           .kh = g->k[1], .kw = g->k[2], .nblk = (g->cout + NR - 1) / NR};
    int64_t taps = pw->kh * pw->kw;
    pw->blk_elems = taps * pw->cinp * NR;
    size_t es = bf ? 2 : 4;
    pw->p = kn_alloc(es * (size_t)(pw->nblk * pw->blk_elems));
    if (!pw->p) {
        kn_free(pw);
        return KN_ERR_NOMEM;
    }
    void *args[3] = {(void *)g, (void *)w, pw};
    kn_parallel_for(pw->nblk, 1, pack_task, args);
    *out = pw;
    return KN_OK;
}

/* The input as the kernel reads it: base pointer (at padded position
 * (0, 0) of image 0), dtype, and element strides of image, row and pixel. */
typedef struct src_view {
    const char *p;
    kn_dtype dt;
    int64_t sn, rs, ps;
} src_view;

/* Zero-padded copy of x in the compute dtype, channels padded to cinp. */
typedef struct pad_job {
    const kn_conv_geom *g;
    const kn_conv_act *x;
    char *dst;
    kn_dtype dt;
    int64_t hp, wp, cinp;
} pad_job;

static void pad_rows(int64_t r0, int64_t r1, void *arg)
{
    const pad_job *j = arg;
    const kn_conv_geom *g = j->g;
    size_t es = kn_dtype_size(j->dt), xes = kn_dtype_size(j->x->dt);
    int64_t pt = g->pb[1], pl = g->pb[2], H = g->in[1], W = g->in[2];
    for (int64_t r = r0; r < r1; r++) {
        int64_t n = r / j->hp, ih = r % j->hp - pt;
        char *row = j->dst + (size_t)(r * j->wp * j->cinp) * es;
        if (ih < 0 || ih >= H) {
            memset(row, 0, (size_t)(j->wp * j->cinp) * es);
            continue;
        }
        memset(row, 0, (size_t)(pl * j->cinp) * es);
        const char *src_row = j->x->p + (n * j->x->sn + ih * j->x->ss[1]) * (int64_t)xes;
        bool whole_row = j->dt == j->x->dt && j->cinp == g->cin && j->x->ss[2] == g->cin;
        if (whole_row) /* the row's pixels are one run of W*cin values */
            memcpy(row + (size_t)(pl * j->cinp) * es, src_row, (size_t)(W * g->cin) * es);
        for (int64_t iw = 0; iw < W && !whole_row; iw++) {
            const char *s = j->x->p + (n * j->x->sn + ih * j->x->ss[1] + iw * j->x->ss[2]) * (int64_t)xes;
            char *d = row + (size_t)((pl + iw) * j->cinp) * es;
            if (j->dt == j->x->dt) {
                memcpy(d, s, (size_t)g->cin * es);
            } else if (j->dt == KN_BF16) {
                for (int64_t c = 0; c < g->cin; c++)
                    ((uint16_t *)d)[c] = kn_f32_to_bf16(((const float *)s)[c]);
            } else {
                for (int64_t c = 0; c < g->cin; c++)
                    ((float *)d)[c] = kn_bf16_to_f32(((const uint16_t *)s)[c]);
            }
            memset(d + (size_t)g->cin * es, 0, (size_t)(j->cinp - g->cin) * es);
        }
        memset(row + (size_t)((pl + W) * j->cinp) * es, 0, (size_t)((j->wp - pl - W) * j->cinp) * es);
    }
}

/* The output split: `rows` rows of `rw` pixels, each cut into `tpr` tiles
 * of near-equal size; pixel q of row r at x / y positions computed by
 * pixel_at. Flat rows (1×1, stride 1, no copy) run across output rows. */
typedef struct tiles {
    const kn_conv_geom *g;
    const kn_conv_nhwc_w *w;
    src_view src;
    const kn_conv_act *y;
    const kn_epilogue *ep;
    const int64_t *toffp; /* per tap run: its element offset from the tile's first pixel */
    int ntaps;
    int64_t cin; /* values per tap run */
    bool flat;
    int64_t rows, rw, tpr, ntiles;
    bool prefetch;    /* whole blocks per chunk: fetch the next one ahead */
    bool pixel_major; /* all blocks of a pixel tile in a row (small weights) */
} tiles;

/* Element offsets (input, output) of pixel q of row r. */
static void pixel_at(const tiles *t, int64_t r, int64_t q, int64_t *xo, int64_t *yo)
{
    const kn_conv_geom *g = t->g;
    if (t->flat) { /* rows are images (or the whole batch) of contiguous pixels */
        int64_t per = g->out[1] * g->out[2], n = (r * t->rw + q) / per, p = (r * t->rw + q) % per;
        *xo = n * t->src.sn + p * t->src.ps;
        *yo = n * t->y->sn + p * t->y->ss[2];
        return;
    }
    int64_t n = r / g->out[1], oh = r % g->out[1];
    *xo = n * t->src.sn + oh * g->s[1] * t->src.rs + q * g->s[2] * t->src.ps;
    *yo = n * t->y->sn + oh * t->y->ss[1] + q * t->y->ss[2];
}

static void run_tile(const tiles *t, int64_t j, int64_t tile)
{
    int64_t r = tile / t->tpr, k = tile % t->tpr;
    int64_t q0 = k * t->rw / t->tpr, q1 = (k + 1) * t->rw / t->tpr;
    int64_t xo, yo;
    pixel_at(t, r, q0, &xo, &yo);
    const kn_epilogue *ep = t->ep;
    int64_t c0 = j * NR, nr = t->g->cout - c0 < NR ? t->g->cout - c0 : NR;
    size_t yes = kn_dtype_size(t->y->dt), xes = kn_dtype_size(t->src.dt);
    kn_gemm_tile gt = {.c = t->y->p + (yo + c0) * (int64_t)yes, .ldc = t->y->ss[2],
                       .c_dt = t->y->dt, .first = true, .last = true};
    if (ep) {
        gt.bias = ep->bias ? ep->bias + c0 : NULL;
        gt.scale = ep->scale ? ep->scale + c0 : NULL;
        gt.shift = ep->shift ? ep->shift + c0 : NULL;
        if (ep->residual) {
            gt.res = (const char *)ep->residual + (yo + c0) * (int64_t)kn_dtype_size(ep->residual_dtype);
            gt.res_dt = ep->residual_dtype;
            gt.ldr = t->y->ss[2];
        }
        gt.act = ep->act;
    }
    int64_t xs = t->flat ? t->src.ps : t->g->s[2] * t->src.ps;
    const char *xp = t->src.p + xo * (int64_t)xes;
    size_t blk_bytes = (size_t)t->w->blk_elems * kn_dtype_size(t->w->dt);
    const char *wp = (const char *)t->w->p + (size_t)j * blk_bytes;
    /* one run of whole blocks per thread: the first tile of a block
     * fetches the next block meanwhile, so deep layers do not wait on
     * memory at each block's start */
    const char *pf = t->prefetch && k == 0 && j + 1 < t->w->nblk ? wp + blk_bytes : NULL;
#if KILN_X86
    if (t->w->dt == KN_BF16)
        kn__conv_nhwc_bf16_avx512bf16((const uint16_t *)xp, xs, t->toffp, t->ntaps, t->cin,
                                      (const uint16_t *)wp, pf, (int)(q1 - q0), (int)nr, &gt);
    else
        kn__conv_nhwc_f32_avx512((const float *)xp, xs, t->toffp, t->ntaps, t->cin,
                                 (const float *)wp, pf, (int)(q1 - q0), (int)nr, &gt);
#else
    (void)xp, (void)wp, (void)xs, (void)gt, (void)pf;
#endif
}

static void tiles_task(int64_t b, int64_t e, void *arg)
{
    const tiles *t = arg;
    for (int64_t i = b; i < e; i++)
        if (t->pixel_major)
            run_tile(t, i % t->w->nblk, i / t->w->nblk);
        else
            run_tile(t, i / t->ntiles, i % t->ntiles);
}

/* No copy needed: no padding, the compute dtype, and (bf16) even channels. */
static bool reads_in_place(const kn_conv_geom *g, const kn_conv_act *x, const kn_conv_nhwc_w *w)
{
    return x->dt == w->dt && w->cinp == g->cin && !g->pb[1] && !g->pb[2] && !g->pe[1] && !g->pe[2];
}

kn_status kn__conv_nhwc_run(const kn_conv_geom *g, const kn_conv_act *x, const kn_conv_nhwc_w *w,
                            const kn_conv_act *y, const kn_epilogue *ep)
{
    int64_t taps = w->kh * w->kw;
    if (!kn__conv_nhwc_matches(w, g))
        return kn__error(KN_ERR_INTERNAL, "conv: packed weights do not match the problem");
    int64_t *toff = kn_alloc(sizeof(int64_t) * (size_t)taps);
    if (!toff) return KN_ERR_NOMEM;
    tiles t = {.g = g, .w = w, .y = y, .ep = ep, .ntaps = (int)taps, .toffp = NULL};
    char *copy = NULL;
    size_t es = kn_dtype_size(w->dt);
    if (reads_in_place(g, x, w)) {
        t.src = (src_view){x->p, x->dt, x->sn, x->ss[1], x->ss[2]};
    } else {
        int64_t hp = (g->out[1] - 1) * g->s[1] + (g->k[1] - 1) * g->d[1] + 1;
        int64_t wp = (g->out[2] - 1) * g->s[2] + (g->k[2] - 1) * g->d[2] + 1;
        if (hp < g->pb[1] + g->in[1]) hp = g->pb[1] + g->in[1];
        if (wp < g->pb[2] + g->in[2]) wp = g->pb[2] + g->in[2];
        if (!(copy = kn_alloc(es * (size_t)(g->n * hp * wp * w->cinp)))) {
            kn_free(toff);
            return KN_ERR_NOMEM;
        }
        pad_job pj = {g, x, copy, w->dt, hp, wp, w->cinp};
        kn_parallel_for(g->n * hp, 8, pad_rows, &pj);
        t.src = (src_view){copy, w->dt, hp * wp * w->cinp, wp * w->cinp, w->cinp};
    }
    /* Undilated rows of pixels holding exactly cinp channels: the kw taps of
     * one kh are one run of kw*cinp values, as the packed weights are. */
    bool merge_kw = g->d[2] == 1 && t.src.ps == w->cinp;
    t.cin = merge_kw ? w->kw * w->cinp : w->cinp;
    t.ntaps = merge_kw ? (int)w->kh : (int)taps;
    for (int64_t kh = 0; kh < w->kh; kh++)
        for (int64_t kw = 0; kw < (merge_kw ? 1 : w->kw); kw++)
            toff[kh * (merge_kw ? 1 : w->kw) + kw] = kh * g->d[1] * t.src.rs + kw * g->d[2] * t.src.ps;
    t.toffp = toff;
    int64_t OH = g->out[1], OW = g->out[2];
    /* 1×1 stride 1 over contiguous rows: tiles may cross output rows */
    t.flat = taps == 1 && g->s[1] == 1 && g->s[2] == 1 && !copy && t.src.rs == OW * t.src.ps &&
             y->ss[1] == OW * y->ss[2];
    if (t.flat) {
        bool whole = t.src.sn == OH * t.src.rs && y->sn == OH * y->ss[1];
        t.rows = whole ? 1 : g->n;
        t.rw = whole ? g->n * OH * OW : OH * OW;
    } else {
        t.rows = g->n * OH;
        t.rw = OW;
    }
    t.tpr = (t.rw + MR - 1) / MR;
    t.ntiles = t.rows * t.tpr;
    int64_t items = w->nblk * t.ntiles;
    /* ~ 2^20 multiply-adds per chunk at least; with few pixel tiles per
     * weight block (deep layers at small batch: the weights come from
     * memory and are used a few times only) each thread takes one run of
     * whole blocks, so the threads stream different weights rather than
     * wait on the same ones */
    int64_t per_item = MR * NR * taps * w->cinp, grain = ((int64_t)1 << 20) / (per_item + 1) + 1;
    /* Weights that stay in L2 (<= 1 MiB): all blocks of one pixel tile
     * in a row, so each input pixel comes from memory once, not once per
     * block; larger weights: block-major, each block's weights loaded once. */
    t.pixel_major = (size_t)(w->nblk * w->blk_elems) * kn_dtype_size(w->dt) <= ((size_t)1 << 20);
    if (!t.pixel_major && t.ntiles <= 16 && w->nblk >= 4 && grain < t.ntiles) {
        int64_t threads = kn_get_num_threads();
        grain = t.ntiles * ((w->nblk + threads - 1) / threads);
        t.prefetch = true;
    }
    kn_parallel_for(items, grain, tiles_task, &t);
    kn_free(copy), kn_free(toff);
    return KN_OK;
}
