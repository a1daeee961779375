/* gemm.c — kn__gemm (see gemm.h): argument checks, ISA choice, packing of A
 * and B into micro-panels (portable C), and the blocked, threaded driver
 * around the ISA micro-kernels. The reference twin is ref/gemm_epilogue.c.
 *
 * Per group of batch entries: (1) pack every A row panel and B column panel
 * in parallel; (2) split C into tiles (multiples of MR×NR) and compute tiles
 * in parallel. Inside a tile: for each k block (size fixed by k alone), for
 * each NR panel, for each MR panel, one micro-kernel call. Each C element is
 * thus always the same sequence of FMAs whatever the tiling or thread count. */
#include "gemm.h"



#define KC_MAX 512             /* k block: B micro-panel of KC×NR f32 stays near L1 */
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
        for (int64_t kb = 0; kb < pl->nkb; kb++) {
            int64_t k0 = kb * pl->kc, kc = pl->k - k0 < pl->kc ? pl->k - k0 : pl->kc;
            for (int64_t jp = jp0; jp < jp1; jp++) {
                int64_t j0 = jp * nr;
                int nrc = (int)(pl->n - j0 < nr ? pl->n - j0 : nr);
                for (int64_t ip = ip0; ip < ip1; ip++) {
                    int64_t i0 = ip * mr;
                    int mrc = (int)(pl->m - i0 < mr ? pl->m - i0 : mr);
                    kn_gemm_tile t = {
                        .c = c + (size_t)(i0 * pl->ldc + j0) * ces,
                        .ldc = pl->ldc,
                        .c_dt = pl->c_dt,
                        .beta = pl->beta,
                        .w = w ? w + i0 * pl->n + j0 : NULL,
                        .ldw = pl->n,
                        .first = kb == 0,
                        .last = kb == pl->nkb - 1,
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

static kn_status gemm_fast(const gemm_isa *g, kn_dtype compute, bool trans_a, bool trans_b,
                           int64_t m, int64_t n, int64_t k, const void *a, kn_dtype a_dt,
                           int64_t lda, const void *b, kn_dtype b_dt, int64_t ldb, float beta,
                           void *c, kn_dtype c_dt, int64_t ldc, const kn_epilogue *ep,
                           int64_t batch, int64_t stride_a, int64_t stride_b, int64_t stride_c)
{
    plan pl = {.g = *g, .trans_a = trans_a, .trans_b = trans_b,
               .round = compute == KN_BF16 && !g->pairs,
               .m = m, .n = n, .k = k, .lda = lda, .ldb = ldb, .ldc = ldc,
               .a = a, .b = b, .c = c, .a_dt = a_dt, .b_dt = b_dt, .c_dt = c_dt,
               .sa = stride_a, .sb = stride_b, .sc = stride_c, .beta = beta, .ep = ep};
    pl.esz = g->pairs ? 2 : 4;
    pl.kpad = g->pairs ? (k + 1) / 2 * 2 : k;
    pl.nkb = k <= KC_MAX ? 1 : (k + KC_MAX - 1) / KC_MAX;
    pl.kc = (k + pl.nkb - 1) / pl.nkb;
    pl.kc = (pl.kc + 15) / 16 * 16; /* even (bf16 pairs) and vector friendly */
    if (pl.kc < 1) pl.kc = 1;
    pl.nkb = k == 0 ? 1 : (k + pl.kc - 1) / pl.kc;
    pl.mp = (m + g->mr - 1) / g->mr, pl.np = (n + g->nr - 1) / g->nr;
    pl.a_panel = pl.kpad * g->mr, pl.b_panel = pl.kpad * g->nr;
    /* each operand's packed block starts on a cache line (aligned loads of B) */
    size_t a_bytes = ((size_t)(pl.mp * pl.a_panel) * pl.esz + 63) / 64 * 64;
    size_t b_bytes = ((size_t)(pl.np * pl.b_panel) * pl.esz + 63) / 64 * 64;
    pl.a_bytes = a_bytes, pl.b_bytes = b_bytes;
    size_t w_bytes = pl.nkb > 1 ? sizeof(float) * (size_t)(m * n) : 0;
    int64_t per = (int64_t)((PACK_BYTES_MAX) / (a_bytes + b_bytes + w_bytes + 1));
    int64_t group = per < 1 ? 1 : per > batch ? batch : per;
    bool a_bc = stride_a == 0, b_bc = stride_b == 0;
    size_t total = (a_bc ? 1 : (size_t)group) * a_bytes + (b_bc ? 1 : (size_t)group) * b_bytes +
                   (size_t)group * w_bytes;
    char *buf = kn_alloc(total + 64);
    if (!buf) return KN_ERR_NOMEM;
    for (int64_t b0 = 0; b0 < batch; b0 += group) {
        pl.b0 = b0, pl.nbg = batch - b0 < group ? batch - b0 : group;
        pl.na_pack = a_bc ? 1 : pl.nbg, pl.nb_pack = b_bc ? 1 : pl.nbg;
        pl.pa = buf; /* fixed layout: broadcast operands stay where group 0 put them */
        pl.pb = buf + (a_bc ? 1 : (size_t)group) * a_bytes;
        pl.w = w_bytes ? (float *)(pl.pb + (b_bc ? 1 : (size_t)group) * b_bytes) : NULL;
        /* broadcast operands are packed once, with the first group */
        int64_t na = (a_bc && b0 > 0) ? 0 : pl.na_pack * pl.mp;
        int64_t nb = (b_bc && b0 > 0) ? 0 : pl.nb_pack * pl.np;
        if (na == 0 && nb > 0) {
            /* pack only B: shift the item range past the A items */
            plan q = pl;
            q.na_pack = 0;
            kn_parallel_for(nb, 1, pack_items, &q);
        } else if (na > 0 && nb == 0) {
            kn_parallel_for(na, 1, pack_items, &pl);
        } else if (na + nb > 0) {
            kn_parallel_for(na + nb, 1, pack_items, &pl);
        }
        choose_tiles(&pl);
        kn_parallel_for(pl.tm * pl.tn * pl.nbg, 1, tile_items, &pl);
    }
    kn_free(buf);
    return KN_OK;
}

void kn__gemm_finish_scalar(const kn_gemm_tile *t, int i, int j, const float *acc, int cnt)
{
    size_t ces = kn_dtype_size(t->c_dt), res = kn_dtype_size(t->res_dt);
    for (int l = 0; l < cnt; l++) {
        float y = acc[l];
        int64_t jj = j + l;
        if (!t->first) y += t->w[i * t->ldw + jj];
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
    if (pick_isa(compute, &g))
        s = gemm_fast(&g, compute, trans_a, trans_b, m, n, k, a, a_dt, lda, b, b_dt, ldb, beta, c,
                      c_dt, ldc, ep, batch, stride_a, stride_b, stride_c);
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
