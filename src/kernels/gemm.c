/* gemm.c — kn__gemm (see gemm.h): argument checks, ISA choice, packing of A
 * and B into micro-panels, and the blocked, threaded driver around the ISA
 * micro-kernels. The reference twin is ref/gemm_epilogue.c.
 *
 * Per group of batch entries: (1) pack every A row panel and B column panel
 * in parallel (AVX-512 packs from x86/avx512/gemm_pack.c when the AVX-512
 * kernels run: 16×16 register transposes for row-major A / (n, k) B, row
 * bands of 64 k × 256 columns for row-major B; portable C otherwise);
 * (2) split C into tiles (multiples of MR×NR) and compute tiles in parallel.
 * Inside a tile: for each k block (size fixed by k alone), for each MR panel,
 * for each NR panel, one micro-kernel call. k blocks after the first add
 * into f32 C itself (beta folded into the first block); bf16 C or a
 * residual (which may alias C) use an f32 workspace instead. Each C element
 * is thus always the same sequence of operations whatever the tiling or
 * thread count. Packing buffers come from kn_alloc per call; its pool
 * (blocks >= 64 KiB) hands the same pages back, so there is no page-fault
 * cost and nothing is cached outside the allocator's live count.
 * m <= 4 on AVX-512 skips packing (gemm_smallm: axpy / dot-product kernel
 * over the caller's B). Operands may be packed once (kn__gemm_pack_a/_b). */
#include "gemm.h"

#include <math.h>



#define KC_MAX 512 /* k block: an A micro-panel (14×512 f32, 28 KiB) stays in L1 */
#define PACK_BYTES_MAX (64u << 20) /* packed operands of one batch group */

typedef struct gemm_isa {
    int mr, nr;
    bool pairs; /* bf16 packed in k pairs for vdpbf16ps; else f32 */
    kn_gemm_ukernel kern;
} gemm_isa;

static bool pick_isa(kn_dtype compute, gemm_isa *g)
{
#if KILN_X86
    kn_isa isa = kn_isa_max();
    if (compute == KN_BF16 && isa >= KN_ISA_AVX512BF16) {
        *g = (gemm_isa){14, 32, true, kn__gemm_bf16_avx512bf16_ukernel};
        return true;
    }
    /* bf16 compute without vdpbf16ps: operands rounded on packing, then the
     * f32 kernel (bf16 products are exact in f32, so the arithmetic agrees). */
    if (isa >= KN_ISA_AVX512) {
        *g = (gemm_isa){14, 32, false, kn__gemm_f32_avx512_ukernel};
        return true;
    }
    if (isa >= KN_ISA_AVX2) {
        *g = (gemm_isa){6, 16, false, kn__gemm_f32_avx2_ukernel};
        return true;
    }
#else
    (void)compute, (void)g;
#endif
    return false;
}

typedef struct plan {
    gemm_isa g;
    bool trans_a, trans_b, round;
    int64_t m, n, k, lda, ldb, ldc;
    const char *a, *b;
    char *c;
    kn_dtype a_dt, b_dt, c_dt;
    int64_t sa, sb, sc; /* batch strides in elements */
    float beta;
    const kn_epilogue *ep;
    int64_t kpad, kc, nkb; /* padded k, k block, number of k blocks */
    int64_t mp, np;        /* row / column panels */
    int64_t a_panel, b_panel; /* packed elements per panel */
    size_t esz;               /* packed element size */
    size_t a_bytes, b_bytes;  /* one packed A / B matrix, rounded to 64 */
    int64_t b0, nbg;          /* batch group: first entry, count */
    int64_t na_pack, nb_pack; /* matrices packed in the group (1 when broadcast) */
    char *pa, *pb;
    float *w; /* nbg × m × n partial sums, when nkb > 1 */
    int64_t pm, pn, tm, tn; /* panels per tile, tiles per dim */
    /* B pack items: per panel (brows == 0), or, for a row-major B on the
     * AVX-512 packs, `brows` k rows × `bgp` panels (rows read contiguously) */
    int64_t brows, bgp, bitems;
} plan;

static inline float ld_el(kn_dtype dt, const char *p, int64_t i)
{
    return dt == KN_BF16 ? kn_bf16_to_f32(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

/* Writes element (r, p) of a panel of `width` (MR or NR) lanes. */
static inline void put_el(const plan *pl, char *dst, int width, int64_t r, int64_t p, float v)
{
    if (pl->g.pairs)
        ((uint16_t *)dst)[(p >> 1) * width * 2 + r * 2 + (p & 1)] = kn_f32_to_bf16(v);
    else
        ((float *)dst)[p * width + r] = pl->round ? kn_bf16_to_f32(kn_f32_to_bf16(v)) : v;
}

/* Packs `cnt` (≤ width) lanes of an operand into one panel. Lane r, step p is
 * src[r*rs + p*ps] (element strides). Rows are walked so that the source is
 * read along its contiguous direction. */
static void pack_panel(const plan *pl, char *dst, int width, const char *src, kn_dtype dt,
                       int64_t rs, int64_t ps, int cnt)
{
    int64_t k = pl->k;
#if KILN_X86
    if (pl->g.mr == 14 && !pl->round) { /* AVX-512 kernels, so AVX-512 packs */
        if (!pl->g.pairs && dt == KN_F32 && (rs == 1 || ps == 1)) {
            kn__gemm_pack32_avx512(dst, width, src, rs * 4, ps * 4, cnt, k);
            return;
        }
        if (pl->g.pairs && dt == KN_BF16 && rs == 1) {
            kn__gemm_pack_bf16_rows_avx512(dst, width, src, ps, cnt, k);
            return;
        }
        if (pl->g.pairs && dt == KN_BF16 && ps == 1) { /* k pairs contiguous: 32-bit units */
            kn__gemm_pack32_avx512(dst, width, src, rs * 2, 4, cnt, k / 2);
            if (k & 1) { /* the last, half-filled pair */
                uint16_t *d = (uint16_t *)dst + (k / 2) * 2 * width;
                const uint16_t *s = (const uint16_t *)src;
                for (int r = 0; r < width; r++) {
                    d[2 * r] = r < cnt ? s[r * rs + k - 1] : 0;
                    d[2 * r + 1] = 0;
                }
            }
            return;
        }
    }
#endif
    size_t bytes = (size_t)(pl->kpad * width) * pl->esz;
    if (cnt < width || pl->kpad > k) memset(dst, 0, bytes);
    if (!pl->g.pairs && !pl->round && dt == KN_F32) { /* the common case, tight loops */
        const float *s = (const float *)src;
        float *d = (float *)dst;
        if (rs == 1) {
            for (int64_t p = 0; p < k; p++)
                for (int r = 0; r < cnt; r++)
                    d[p * width + r] = s[p * ps + r];
        } else {
            for (int64_t p0 = 0; p0 < k; p0 += 64) {
                int64_t p1 = p0 + 64 < k ? p0 + 64 : k;
                for (int r = 0; r < cnt; r++)
                    for (int64_t p = p0; p < p1; p++)
                        d[p * width + r] = s[r * rs + p * ps];
            }
        }
        return;
    }
    if (rs == 1) {
        for (int64_t p = 0; p < k; p++)
            for (int r = 0; r < cnt; r++)
                put_el(pl, dst, width, r, p, ld_el(dt, src, p * ps + r));
    } else {
        for (int r = 0; r < cnt; r++)
            for (int64_t p = 0; p < k; p++)
                put_el(pl, dst, width, r, p, ld_el(dt, src, r * rs + p * ps));
    }
}

static void pack_items(int64_t begin, int64_t end, void *arg)
{
    const plan *pl = arg;
    int64_t na = pl->na_pack * pl->mp;
    for (int64_t it = begin; it < end; it++) {
        if (it < na) {
            int64_t bi = it / pl->mp, ip = it % pl->mp, i0 = ip * pl->g.mr;
            int cnt = (int)(pl->m - i0 < pl->g.mr ? pl->m - i0 : pl->g.mr);
            size_t es = kn_dtype_size(pl->a_dt);
            const char *a = pl->a + (size_t)((pl->b0 + bi) * pl->sa) * es;
            int64_t rs = pl->trans_a ? 1 : pl->lda, ps = pl->trans_a ? pl->lda : 1;
            pack_panel(pl, pl->pa + (size_t)bi * pl->a_bytes + (size_t)(ip * pl->a_panel) * pl->esz, pl->g.mr,
                       a + (size_t)(i0 * rs) * es, pl->a_dt, rs, ps, cnt);
        } else if (pl->brows) { /* a band of k rows of a group of panels */
            int64_t jt = it - na, bi = jt / pl->bitems, r = jt % pl->bitems;
            int64_t ngr = (pl->np + pl->bgp - 1) / pl->bgp;
            int64_t p0 = r / ngr * pl->brows, jp0 = r % ngr * pl->bgp;
            int64_t p1 = p0 + pl->brows < pl->k ? p0 + pl->brows : pl->k;
            int64_t jp1 = jp0 + pl->bgp < pl->np ? jp0 + pl->bgp : pl->np;
            size_t es = kn_dtype_size(pl->b_dt);
            const char *b = pl->b + (size_t)((pl->b0 + bi) * pl->sb + p0 * pl->ldb) * es;
            char *dst = pl->pb + (size_t)bi * pl->b_bytes + (size_t)(p0 * pl->g.nr) * pl->esz;
            for (int64_t jp = jp0; jp < jp1; jp++) {
                int64_t j0 = jp * pl->g.nr;
                int cnt = (int)(pl->n - j0 < pl->g.nr ? pl->n - j0 : pl->g.nr);
#if KILN_X86
                if (pl->g.pairs)
                    kn__gemm_pack_bf16_rows_avx512(dst + (size_t)(jp * pl->b_panel) * pl->esz,
                                                   pl->g.nr, b + (size_t)j0 * es, pl->ldb, cnt,
                                                   p1 - p0);
                else
                    kn__gemm_pack32_avx512(dst + (size_t)(jp * pl->b_panel) * pl->esz, pl->g.nr,
                                           b + (size_t)j0 * es, 4, pl->ldb * 4, cnt, p1 - p0);
#endif
            }
        } else {
            int64_t jt = it - na, bi = jt / pl->np, jp = jt % pl->np, j0 = jp * pl->g.nr;
            int cnt = (int)(pl->n - j0 < pl->g.nr ? pl->n - j0 : pl->g.nr);
            size_t es = kn_dtype_size(pl->b_dt);
            const char *b = pl->b + (size_t)((pl->b0 + bi) * pl->sb) * es;
            int64_t rs = pl->trans_b ? pl->ldb : 1, ps = pl->trans_b ? 1 : pl->ldb;
            pack_panel(pl, pl->pb + (size_t)bi * pl->b_bytes + (size_t)(jp * pl->b_panel) * pl->esz, pl->g.nr,
                       b + (size_t)(j0 * rs) * es, pl->b_dt, rs, ps, cnt);
        }
    }
}

static void tile_items(int64_t begin, int64_t end, void *arg)
{
    const plan *pl = arg;
    const kn_epilogue *ep = pl->ep;
    int mr = pl->g.mr, nr = pl->g.nr;
    size_t ces = kn_dtype_size(pl->c_dt);
    size_t res = ep && ep->residual ? kn_dtype_size(ep->residual_dtype) : 0;
    for (int64_t it = begin; it < end; it++) {
        int64_t bi = it / (pl->tm * pl->tn), tt = it % (pl->tm * pl->tn);
        int64_t ti = tt / pl->tn, tj = tt % pl->tn;
        int64_t ip0 = ti * pl->pm, ip1 = ip0 + pl->pm < pl->mp ? ip0 + pl->pm : pl->mp;
        int64_t jp0 = tj * pl->pn, jp1 = jp0 + pl->pn < pl->np ? jp0 + pl->pn : pl->np;
        int64_t bg = pl->b0 + bi;
        const char *pa = pl->pa + (size_t)(pl->na_pack > 1 ? bi : 0) * pl->a_bytes;
        const char *pb = pl->pb + (size_t)(pl->nb_pack > 1 ? bi : 0) * pl->b_bytes;
        char *c = pl->c + (size_t)(bg * pl->sc) * ces;
        const char *r = res ? (const char *)ep->residual + (size_t)(bg * ep->stride_r) * res : NULL;
        float *w = pl->w ? pl->w + bi * pl->m * pl->n : NULL;
        bool w_in_c = pl->nkb > 1 && !w; /* f32 C accumulates the k blocks itself */
        for (int64_t kb = 0; kb < pl->nkb; kb++) {
            int64_t k0 = kb * pl->kc, kc = pl->k - k0 < pl->kc ? pl->k - k0 : pl->kc;
            for (int64_t ip = ip0; ip < ip1; ip++) {
                int64_t i0 = ip * mr;
                int mrc = (int)(pl->m - i0 < mr ? pl->m - i0 : mr);
                for (int64_t jp = jp0; jp < jp1; jp++) {
                    int64_t j0 = jp * nr;
                    int nrc = (int)(pl->n - j0 < nr ? pl->n - j0 : nr);
                    char *ct = c + (size_t)(i0 * pl->ldc + j0) * ces;
                    kn_gemm_tile t = {
                        .c = ct,
                        .ldc = pl->ldc,
                        .c_dt = pl->c_dt,
                        .beta = w_in_c ? 0.0f : pl->beta,
                        .w = w_in_c ? (float *)ct : w ? w + i0 * pl->n + j0 : NULL,
                        .ldw = w_in_c ? pl->ldc : pl->n,
                        .first = kb == 0,
                        .last = kb == pl->nkb - 1,
                        .wbeta = w_in_c && kb == 0 ? pl->beta : 0.0f,
                        .bias = ep && ep->bias ? ep->bias + j0 : NULL,
                        .scale = ep && ep->scale ? ep->scale + j0 : NULL,
                        .shift = ep && ep->shift ? ep->shift + j0 : NULL,
                        .res = r ? r + (size_t)(i0 * ep->ldr + j0) * res : NULL,
                        .ldr = ep ? ep->ldr : 0,
                        .res_dt = ep ? ep->residual_dtype : KN_F32,
                        .act = ep ? ep->act : KN_ACT_NONE,
                    };
                    pl->g.kern(kc, pa + (size_t)(ip * pl->a_panel + k0 * mr) * pl->esz,
                               pb + (size_t)(jp * pl->b_panel + k0 * nr) * pl->esz, mrc, nrc, &t);
                }
            }
        }
    }
}

/* Tile shape: up to 16 MR panels × 8 NR panels, halved (the longer side
 * first) until there are enough tiles to keep every thread busy. The
 * tiling never changes the arithmetic, only who does it. */
static void choose_tiles(plan *pl)
{
    int64_t want = 4 * (int64_t)kn_get_num_threads();
    pl->pm = pl->mp < 16 ? pl->mp : 16;
    pl->pn = pl->np < 8 ? pl->np : 8;
    for (;;) {
        pl->tm = (pl->mp + pl->pm - 1) / pl->pm, pl->tn = (pl->np + pl->pn - 1) / pl->pn;
        if (pl->tm * pl->tn * pl->nbg >= want) break;
        if (pl->pn > 1 && pl->pn * pl->g.nr >= pl->pm * pl->g.mr)
            pl->pn = (pl->pn + 1) / 2;
        else if (pl->pm > 1)
            pl->pm = (pl->pm + 1) / 2;
        else
            break;
    }
}

/* A pre-packed operand (kn__gemm_pack_a / _b): the panels as gemm_fast
 * packs them for one ISA choice, with what is needed to check the match or
 * to unpack them for another ISA. */
struct kn_gemm_packed {
    bool is_b;
    kn_dtype compute;
    gemm_isa g;     /* the choice at pack time (mr = nr = 0: none, data is plain f32) */
    int64_t rows, k; /* m (A) or n (B) lanes, k steps */
    size_t bytes;
    char *data;
};

static void plan_shape(plan *pl, const gemm_isa *g, kn_dtype compute, int64_t m, int64_t n, int64_t k)
{
    pl->g = *g;
    pl->round = compute == KN_BF16 && !g->pairs;
    pl->m = m, pl->n = n, pl->k = k;
    pl->esz = g->pairs ? 2 : 4;
    pl->kpad = g->pairs ? (k + 1) / 2 * 2 : k;
    pl->nkb = k <= KC_MAX ? 1 : (k + KC_MAX - 1) / KC_MAX;
    pl->kc = (pl->k + pl->nkb - 1) / pl->nkb;
    pl->kc = (pl->kc + 15) / 16 * 16; /* even (bf16 pairs) and vector friendly */
    if (pl->kc < 1) pl->kc = 1;
    pl->nkb = k == 0 ? 1 : (k + pl->kc - 1) / pl->kc;
    pl->mp = (m + g->mr - 1) / g->mr, pl->np = (n + g->nr - 1) / g->nr;
    pl->a_panel = pl->kpad * g->mr, pl->b_panel = pl->kpad * g->nr;
    /* each operand's packed block starts on a cache line (aligned loads of B) */
    pl->a_bytes = ((size_t)(pl->mp * pl->a_panel) * pl->esz + 63) / 64 * 64;
    pl->b_bytes = ((size_t)(pl->np * pl->b_panel) * pl->esz + 63) / 64 * 64;
    pl->brows = 0, pl->bitems = pl->np;
    if (KILN_X86 && g->mr == 14 && !pl->round && !pl->trans_b && k > 0 &&
        pl->b_dt == (g->pairs ? KN_BF16 : KN_F32)) {
        pl->brows = 64, pl->bgp = 8; /* 64 rows × 256 columns per item */
        pl->bitems = (k + pl->brows - 1) / pl->brows * ((pl->np + pl->bgp - 1) / pl->bgp);
    }
}

static bool packed_fits(const kn_gemm_packed *pp, const gemm_isa *g, kn_dtype compute)
{
    return pp->g.mr == g->mr && pp->g.nr == g->nr && pp->g.pairs == g->pairs &&
           pp->compute == compute;
}

/* ppa / ppb: pre-packed operands matching *g (then a / b are not read). */
static kn_status gemm_fast(const gemm_isa *g, kn_dtype compute, bool trans_a, bool trans_b,
                           int64_t m, int64_t n, int64_t k, const void *a, kn_dtype a_dt,
                           int64_t lda, const void *b, kn_dtype b_dt, int64_t ldb, float beta,
                           void *c, kn_dtype c_dt, int64_t ldc, const kn_epilogue *ep,
                           int64_t batch, int64_t stride_a, int64_t stride_b, int64_t stride_c,
                           const kn_gemm_packed *ppa, const kn_gemm_packed *ppb)
{
    plan pl = {.trans_a = trans_a, .trans_b = trans_b, .lda = lda, .ldb = ldb, .ldc = ldc,
               .a = a, .b = b, .c = c, .a_dt = a_dt, .b_dt = b_dt, .c_dt = c_dt,
               .sa = stride_a, .sb = stride_b, .sc = stride_c, .beta = beta, .ep = ep};
    plan_shape(&pl, g, compute, m, n, k);
    size_t a_bytes = ppa ? 0 : pl.a_bytes, b_bytes = ppb ? 0 : pl.b_bytes;
    /* k blocks accumulate in C itself when it is f32 and no residual (which
     * may alias C) is read at the end; otherwise in an f32 workspace. */
    bool w_in_c = c_dt == KN_F32 && !(ep && ep->residual);
    size_t w_bytes = pl.nkb > 1 && !w_in_c ? sizeof(float) * (size_t)(m * n) : 0;
    int64_t per = (int64_t)((PACK_BYTES_MAX) / (a_bytes + b_bytes + w_bytes + 1));
    int64_t group = per < 1 ? 1 : per > batch ? batch : per;
    bool a_bc = stride_a == 0 || ppa, b_bc = stride_b == 0 || ppb;
    size_t total = (a_bc ? 1 : (size_t)group) * a_bytes + (b_bc ? 1 : (size_t)group) * b_bytes +
                   (size_t)group * w_bytes;
    char *buf = kn_alloc(total + 64);
    if (!buf) return KN_ERR_NOMEM;
    /* a tiny problem (16x16x16: ~4k FMAs) is done before a second thread
     * would have woken up: keep it on this one (chunking changes no bits) */
    int64_t one = m * n * k * batch < (1 << 16) ? INT64_MAX / 2 : 1;
    for (int64_t b0 = 0; b0 < batch; b0 += group) {
        pl.b0 = b0, pl.nbg = batch - b0 < group ? batch - b0 : group;
        pl.na_pack = a_bc ? 1 : pl.nbg, pl.nb_pack = b_bc ? 1 : pl.nbg;
        /* fixed layout: broadcast operands stay where group 0 put them */
        pl.pa = ppa ? ppa->data : buf;
        pl.pb = ppb ? ppb->data : buf + (a_bc ? 1 : (size_t)group) * a_bytes;
        pl.w = w_bytes ? (float *)(buf + (a_bc ? 1 : (size_t)group) * a_bytes +
                                   (b_bc ? 1 : (size_t)group) * b_bytes)
                       : NULL;
        /* broadcast operands are packed once, with the first group */
        int64_t na = ppa || (a_bc && b0 > 0) ? 0 : pl.na_pack * pl.mp;
        int64_t nb = ppb || (b_bc && b0 > 0) ? 0 : pl.nb_pack * pl.bitems;
        if (na == 0 && nb > 0) {
            /* pack only B: shift the item range past the A items */
            plan q = pl;
            q.na_pack = 0;
            kn_parallel_for(nb, one, pack_items, &q);
        } else if (na > 0) {
            kn_parallel_for(na + nb, one, pack_items, &pl);
        }
        choose_tiles(&pl);
        kn_parallel_for(pl.tm * pl.tn * pl.nbg, one, tile_items, &pl);
    }
    kn_free(buf);
    return KN_OK;
}

#if KILN_X86
/* Small m (<= 4 rows): no packing of B; A rows copied (and rounded for bf16
 * compute) into f32, then blocks of SMALLM_COLS columns in parallel. */
#define SMALLM_COLS 64

typedef struct smallm_plan {
    int m;
    int64_t n, k, ldb, ldc, sb, sc, nchunk;
    const float *a; /* batch × m × k */
    const char *b, *c;
    kn_dtype b_dt, c_dt;
    bool trans_b, round_b;
    float beta;
    const kn_epilogue *ep;
} smallm_plan;

static void smallm_items(int64_t begin, int64_t end, void *arg)
{
    const smallm_plan *sp = arg;
    const kn_epilogue *ep = sp->ep;
    size_t bes = kn_dtype_size(sp->b_dt), ces = kn_dtype_size(sp->c_dt);
    for (int64_t it = begin; it < end; it++) {
        int64_t bi = it / sp->nchunk, j0 = it % sp->nchunk * SMALLM_COLS;
        int64_t j1 = j0 + SMALLM_COLS < sp->n ? j0 + SMALLM_COLS : sp->n;
        size_t res = ep && ep->residual ? kn_dtype_size(ep->residual_dtype) : 0;
        kn_gemm_tile t = {
            .c = (char *)sp->c + (size_t)(bi * sp->sc) * ces,
            .ldc = sp->ldc, .c_dt = sp->c_dt, .beta = sp->beta, .first = true, .last = true,
            .bias = ep ? ep->bias : NULL, .scale = ep ? ep->scale : NULL,
            .shift = ep ? ep->shift : NULL,
            .res = res ? (const char *)ep->residual + (size_t)(bi * ep->stride_r) * res : NULL,
            .ldr = ep ? ep->ldr : 0, .res_dt = ep ? ep->residual_dtype : KN_F32,
            .act = ep ? ep->act : KN_ACT_NONE,
        };
        kn__gemm_smallm_avx512(sp->m, sp->k, sp->a + bi * sp->m * sp->k,
                               sp->b + (size_t)(bi * sp->sb) * bes, sp->b_dt == KN_BF16,
                               sp->trans_b, sp->round_b, sp->ldb, j0, j1, &t);
    }
}

static kn_status gemm_smallm(kn_dtype compute, bool trans_a, bool trans_b, int64_t m, int64_t n,
                             int64_t k, const void *a, kn_dtype a_dt, int64_t lda, const void *b,
                             kn_dtype b_dt, int64_t ldb, float beta, void *c, kn_dtype c_dt,
                             int64_t ldc, const kn_epilogue *ep, int64_t batch, int64_t stride_a,
                             int64_t stride_b, int64_t stride_c)
{
    float *ab = kn_alloc(sizeof(float) * (size_t)(batch * m * k));
    if (!ab) return KN_ERR_NOMEM;
    const char *ac = a;
    size_t aes = kn_dtype_size(a_dt);
    for (int64_t bi = 0; bi < batch; bi++)
        for (int64_t i = 0; i < m; i++)
            for (int64_t p = 0; p < k; p++) {
                float v = ld_el(a_dt, ac + (size_t)(bi * stride_a) * aes,
                                trans_a ? p * lda + i : i * lda + p);
                if (compute == KN_BF16) v = kn_bf16_to_f32(kn_f32_to_bf16(v));
                ab[(bi * m + i) * k + p] = v;
            }
    smallm_plan sp = {.m = (int)m, .n = n, .k = k, .ldb = ldb, .ldc = ldc, .sb = stride_b,
                      .sc = stride_c, .nchunk = (n + SMALLM_COLS - 1) / SMALLM_COLS, .a = ab,
                      .b = b, .c = c, .b_dt = b_dt, .c_dt = c_dt, .trans_b = trans_b,
                      .round_b = compute == KN_BF16 && b_dt == KN_F32, .beta = beta, .ep = ep};
    kn_parallel_for(batch * sp.nchunk, 1, smallm_items, &sp);
    kn_free(ab);
    return KN_OK;
}
#endif

void kn__gemm_finish_scalar(const kn_gemm_tile *t, int i, int j, const float *acc, int cnt)
{
    size_t ces = kn_dtype_size(t->c_dt), res = kn_dtype_size(t->res_dt);
    for (int l = 0; l < cnt; l++) {
        float y = acc[l];
        int64_t jj = j + l;
        if (!t->first)
            y += t->w[i * t->ldw + jj];
        else if (t->wbeta != 0)
            y = fmaf(t->wbeta, t->w[i * t->ldw + jj], y);
        if (!t->last) {
            t->w[i * t->ldw + jj] = y;
            continue;
        }
        char *c = (char *)t->c + (size_t)(i * t->ldc + jj) * ces;
        if (t->beta != 0) y += t->beta * ld_el(t->c_dt, c, 0);
        if (t->bias) y += t->bias[jj];
        if (t->scale) y *= t->scale[jj];
        if (t->shift) y += t->shift[jj];
        if (t->res) y += ld_el(t->res_dt, (const char *)t->res + (size_t)(i * t->ldr + jj) * res, 0);
        y = kn__act_ref(t->act, y);
        if (t->c_dt == KN_BF16)
            *(uint16_t *)c = kn_f32_to_bf16(y);
        else
            *(float *)c = y;
    }
}

static kn_status check_args(kn_dtype compute, int64_t m, int64_t n, int64_t k, kn_dtype a_dt,
                            kn_dtype b_dt, kn_dtype c_dt, const kn_epilogue *ep, int64_t batch)
{
    if (compute != KN_F32 && compute != KN_BF16)
        return kn__error(KN_ERR_DTYPE, "gemm: compute dtype %s, expected f32 or bf16",
                         kn_dtype_name(compute));
    kn_dtype dts[3] = {a_dt, b_dt, c_dt};
    for (int i = 0; i < 3; i++)
        if (dts[i] != KN_F32 && dts[i] != KN_BF16)
            return kn__error(KN_ERR_DTYPE, "gemm: operand %d has dtype %s, expected f32 or bf16",
                             i, kn_dtype_name(dts[i]));
    if (m < 0 || n < 0 || k < 0 || batch < 0)
        return kn__error(KN_ERR_ARG, "gemm: negative size m=%lld n=%lld k=%lld batch=%lld",
                         (long long)m, (long long)n, (long long)k, (long long)batch);
    if (ep && ep->residual && ep->residual_dtype != KN_F32 && ep->residual_dtype != KN_BF16)
        return kn__error(KN_ERR_DTYPE, "gemm: residual dtype %s, expected f32 or bf16",
                         kn_dtype_name(ep->residual_dtype));
    if (ep && (unsigned)ep->act >= KN_ACT_COUNT)
        return kn__error(KN_ERR_ARG, "gemm: activation %d is not a kn_act", (int)ep->act);
    return KN_OK;
}

kn_status kn__gemm_batched(kn_dtype compute, bool trans_a, bool trans_b, int64_t m, int64_t n,
                           int64_t k, const void *a, kn_dtype a_dt, int64_t lda, const void *b,
                           kn_dtype b_dt, int64_t ldb, float beta, void *c, kn_dtype c_dt,
                           int64_t ldc, const kn_epilogue *ep, int64_t batch, int64_t stride_a,
                           int64_t stride_b, int64_t stride_c)
{
    kn_status s = check_args(compute, m, n, k, a_dt, b_dt, c_dt, ep, batch);
    if (s) return s;
    if (m == 0 || n == 0 || batch == 0) return KN_OK;
    gemm_isa g;
    bool fast = pick_isa(compute, &g);
#if KILN_X86
    if (fast && g.mr == 14 && m <= 4 && k >= 1) /* AVX-512 small-m path */
        return gemm_smallm(compute, trans_a, trans_b, m, n, k, a, a_dt, lda, b, b_dt, ldb, beta,
                           c, c_dt, ldc, ep, batch, stride_a, stride_b, stride_c) == KN_ERR_NOMEM
                   ? kn__error(KN_ERR_NOMEM, "gemm: out of memory for the A copy")
                   : KN_OK;
#endif
    if (fast)
        s = gemm_fast(&g, compute, trans_a, trans_b, m, n, k, a, a_dt, lda, b, b_dt, ldb, beta, c,
                      c_dt, ldc, ep, batch, stride_a, stride_b, stride_c, NULL, NULL);
    else
        s = kn__gemm_ref_batched(compute, trans_a, trans_b, m, n, k, a, a_dt, lda, b, b_dt, ldb,
                                 beta, c, c_dt, ldc, ep, batch, stride_a, stride_b, stride_c);
    return s == KN_ERR_NOMEM ? kn__error(s, "gemm: out of memory for packing buffers") : s;
}

kn_status kn__gemm(kn_dtype compute, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                   const void *a, kn_dtype a_dt, int64_t lda, const void *b, kn_dtype b_dt,
                   int64_t ldb, float beta, void *c, kn_dtype c_dt, int64_t ldc,
                   const kn_epilogue *ep)
{
    return kn__gemm_batched(compute, trans_a, trans_b, m, n, k, a, a_dt, lda, b, b_dt, ldb, beta, c,
                            c_dt, ldc, ep, 1, 0, 0, 0);
}

/* ---- pre-packed operands ------------------------------------------------ */

static kn_status pack_operand(kn_gemm_packed **out, kn_dtype compute, bool is_b, bool trans,
                              int64_t rows, int64_t k, const void *x, kn_dtype dt, int64_t ld)
{
    *out = NULL;
    kn_status s = check_args(compute, rows, rows, k, dt, dt, KN_F32, NULL, 1);
    if (s) return s;
    kn_gemm_packed *pp = kn_alloc(sizeof *pp);
    if (!pp) return kn__error(KN_ERR_NOMEM, "gemm: out of memory for a packed operand");
    *pp = (kn_gemm_packed){.is_b = is_b, .compute = compute, .rows = rows, .k = k};
    gemm_isa g;
    if (!pick_isa(compute, &g)) g = (gemm_isa){0, 0, false, NULL};
    if (g.mr > 0) {
        plan pl = {.trans_a = trans, .trans_b = trans, .lda = ld, .ldb = ld, .a = x, .b = x,
                   .a_dt = dt, .b_dt = dt, .nbg = 1};
        plan_shape(&pl, &g, compute, rows, rows, k);
        pp->bytes = is_b ? pl.b_bytes : pl.a_bytes;
        pp->data = kn_alloc(pp->bytes + 64);
        if (pp->data) {
            pl.pa = pl.pb = pp->data;
            pl.na_pack = is_b ? 0 : 1, pl.nb_pack = is_b ? 1 : 0;
            kn_parallel_for(is_b ? pl.bitems : pl.mp, 1, pack_items, &pl);
        }
    } else { /* no fast kernel: a plain f32 copy, rows × k, already rounded */
        pp->bytes = sizeof(float) * (size_t)(rows * k);
        pp->data = kn_alloc(pp->bytes + 64);
        if (pp->data) {
            float *d = (float *)pp->data;
            for (int64_t r = 0; r < rows; r++)
                for (int64_t p = 0; p < k; p++) {
                    float v = ld_el(dt, x, trans == is_b ? r * ld + p : p * ld + r);
                    d[r * k + p] = compute == KN_BF16 ? kn_bf16_to_f32(kn_f32_to_bf16(v)) : v;
                }
        }
    }
    pp->g = g;
    if (!pp->data) {
        kn_free(pp);
        return kn__error(KN_ERR_NOMEM, "gemm: out of memory for a packed operand");
    }
    *out = pp;
    return KN_OK;
}

kn_status kn__gemm_pack_a(kn_gemm_packed **out, kn_dtype compute, bool trans_a, int64_t m,
                          int64_t k, const void *a, kn_dtype a_dt, int64_t lda)
{
    return pack_operand(out, compute, false, trans_a, m, k, a, a_dt, lda);
}

kn_status kn__gemm_pack_b(kn_gemm_packed **out, kn_dtype compute, bool trans_b, int64_t k,
                          int64_t n, const void *b, kn_dtype b_dt, int64_t ldb)
{
    return pack_operand(out, compute, true, trans_b, n, k, b, b_dt, ldb);
}

void kn__gemm_packed_free(kn_gemm_packed *pp)
{
    if (!pp) return;
    kn_free(pp->data);
    kn_free(pp);
}

/* The operand as a plain f32 matrix, lanes × k (row r = lane r), for runs
 * on another ISA than the one it was packed for. */
static float *unpack_operand(const kn_gemm_packed *pp)
{
    float *d = kn_alloc(sizeof(float) * (size_t)(pp->rows * pp->k) + 64);
    if (!d) return NULL;
    if (pp->g.mr == 0) {
        memcpy(d, pp->data, sizeof(float) * (size_t)(pp->rows * pp->k));
        return d;
    }
    int w = pp->is_b ? pp->g.nr : pp->g.mr;
    int64_t kpad = pp->g.pairs ? (pp->k + 1) / 2 * 2 : pp->k, panel = kpad * w;
    for (int64_t r = 0; r < pp->rows; r++)
        for (int64_t p = 0; p < pp->k; p++) {
            int64_t base = (r / w) * panel, l = r % w;
            d[r * pp->k + p] =
                pp->g.pairs ? kn_bf16_to_f32(((const uint16_t *)pp->data)[base + (p >> 1) * w * 2 + l * 2 + (p & 1)])
                            : ((const float *)pp->data)[base + p * w + l];
        }
    return d;
}

kn_status kn__gemm_packed_batched(kn_dtype compute, bool trans_a, bool trans_b, int64_t m,
                                  int64_t n, int64_t k, const void *a, kn_dtype a_dt, int64_t lda,
                                  const kn_gemm_packed *pa, const void *b, kn_dtype b_dt,
                                  int64_t ldb, const kn_gemm_packed *pb, float beta, void *c,
                                  kn_dtype c_dt, int64_t ldc, const kn_epilogue *ep, int64_t batch,
                                  int64_t stride_a, int64_t stride_b, int64_t stride_c)
{
    if ((pa && (pa->is_b || pa->rows != m || pa->k != k)) ||
        (pb && (!pb->is_b || pb->rows != n || pb->k != k)))
        return kn__error(KN_ERR_ARG, "gemm: packed operand does not match m=%lld n=%lld k=%lld",
                         (long long)m, (long long)n, (long long)k);
    if ((pa && pa->compute != compute) || (pb && pb->compute != compute))
        return kn__error(KN_ERR_ARG, "gemm: packed operand was packed for another compute dtype");
    kn_status s = check_args(compute, m, n, k, pa ? KN_F32 : a_dt, pb ? KN_F32 : b_dt, c_dt, ep, batch);
    if (s) return s;
    if (m == 0 || n == 0 || batch == 0) return KN_OK;
    gemm_isa g;
    if (pick_isa(compute, &g) && (!pa || packed_fits(pa, &g, compute)) &&
        (!pb || packed_fits(pb, &g, compute))) {
        s = gemm_fast(&g, compute, trans_a, trans_b, m, n, k, a, a_dt, lda, b, b_dt, ldb, beta, c,
                      c_dt, ldc, ep, batch, pa ? 0 : stride_a, pb ? 0 : stride_b, stride_c, pa, pb);
        return s == KN_ERR_NOMEM ? kn__error(s, "gemm: out of memory for packing buffers") : s;
    }
    /* packed for another ISA (kn_set_isa changed since): unpack and run the
     * plain entry point; the values are the same, so is the result. */
    float *ua = pa ? unpack_operand(pa) : NULL, *ub = pb ? unpack_operand(pb) : NULL;
    if ((pa && !ua) || (pb && !ub)) {
        kn_free(ua), kn_free(ub);
        return kn__error(KN_ERR_NOMEM, "gemm: out of memory unpacking an operand");
    }
    s = kn__gemm_batched(compute, pa ? false : trans_a, pb ? true : trans_b, m, n, k,
                         pa ? (const void *)ua : a, pa ? KN_F32 : a_dt, pa ? k : lda,
                         pb ? (const void *)ub : b, pb ? KN_F32 : b_dt, pb ? k : ldb, beta, c, c_dt,
                         ldc, ep, batch, pa ? 0 : stride_a, pb ? 0 : stride_b, stride_c);
    kn_free(ua), kn_free(ub);
    return s;
}

kn_status kn__gemm_packed(kn_dtype compute, bool trans_a, bool trans_b, int64_t m, int64_t n,
                          int64_t k, const void *a, kn_dtype a_dt, int64_t lda,
                          const kn_gemm_packed *pa, const void *b, kn_dtype b_dt, int64_t ldb,
                          const kn_gemm_packed *pb, float beta, void *c, kn_dtype c_dt,
                          int64_t ldc, const kn_epilogue *ep)
{
    return kn__gemm_packed_batched(compute, trans_a, trans_b, m, n, k, a, a_dt, lda, pa, b, b_dt,
                                   ldb, pb, beta, c, c_dt, ldc, ep, 1, 0, 0, 0);
}
