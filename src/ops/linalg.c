/* linalg.c — matmul (NumPy rules, optional transposes, batch broadcasting,
 * any strides) on the reference GEMM of src/kernels/ref, and the composites
 * linear and addmm built on it. f16/bf16 compute in f32; f32 accumulates in
 * f32 and f64 in f64, each sum over k in ascending order. */
#include "op.h"

#include "../kernels/gemm.h"
#include "../kernels/ref/gemm.h"

/* ================================================================ matmul */
typedef struct mm_attrs {
    bool transpose_a, transpose_b;
} mm_attrs;

static const kn_attr_desc mm_attr_schema[] = {
    KN_ATTR(mm_attrs, transpose_a, KN_ATTR_BOOL),
    KN_ATTR(mm_attrs, transpose_b, KN_ATTR_BOOL),
};

/* An operand seen as a matrix stack (batch..., rows, cols): a 1-D a (k) is
 * (1, k), a 1-D b (k) is (k, 1); `t` swaps the last two dims of an operand
 * of 2 or more dims (it has no effect on a vector). Strides in elements. */
typedef struct mm_operand {
    int ndim;
    int64_t shape[KN_MAX_DIMS], strides[KN_MAX_DIMS];
} mm_operand;

static void as_matrix(const kn_tensor *x, bool is_a, bool t, mm_operand *o)
{
    if (x->ndim == 1) {
        o->ndim = 2;
        int v = is_a ? 1 : 0; /* the dim that holds the vector */
        o->shape[v] = x->shape[0], o->strides[v] = x->strides[0];
        o->shape[1 - v] = 1, o->strides[1 - v] = 0;
        return;
    }
    o->ndim = x->ndim;
    memcpy(o->shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    memcpy(o->strides, x->strides, sizeof(int64_t) * (size_t)x->ndim);
    if (t) {
        int r = x->ndim - 2, c = x->ndim - 1;
        int64_t s = o->shape[r];
        o->shape[r] = o->shape[c], o->shape[c] = s;
        s = o->strides[r], o->strides[r] = o->strides[c], o->strides[c] = s;
    }
}

/* The problem (batch..., m, k) · (batch..., k, n) and the output shape. */
typedef struct mm_geom {
    mm_operand a, b;
    int nb;
    int64_t batch[KN_MAX_DIMS];
    int64_t m, n, k;
} mm_geom;

static kn_status mm_geometry(const char *who, const kn_tensor *a, const kn_tensor *b,
                             const mm_attrs *at, mm_geom *g, kn_out_meta *out)
{
    const kn_tensor *x[2] = {a, b};
    for (int i = 0; i < 2; i++)
        if (x[i]->ndim < 1)
            return kn__error(KN_ERR_SHAPE, "%s: input %d is 0-d; matmul needs at least 1 dim", who,
                             i);
    as_matrix(a, true, at->transpose_a, &g->a);
    as_matrix(b, false, at->transpose_b, &g->b);
    g->m = g->a.shape[g->a.ndim - 2], g->k = g->a.shape[g->a.ndim - 1];
    g->n = g->b.shape[g->b.ndim - 1];
    if (g->b.shape[g->b.ndim - 2] != g->k) {
        char sa[96], sb[96];
        return kn__error(KN_ERR_SHAPE,
                         "%s: inner dims differ: a %s%s has k = %lld, b %s%s has k = %lld", who,
                         kn__shape_str(a->ndim, a->shape, sa, sizeof sa),
                         at->transpose_a && a->ndim > 1 ? " (transposed)" : "", (long long)g->k,
                         kn__shape_str(b->ndim, b->shape, sb, sizeof sb),
                         at->transpose_b && b->ndim > 1 ? " (transposed)" : "",
                         (long long)g->b.shape[g->b.ndim - 2]);
    }
    kn_status s = kn__broadcast_shapes(who, g->a.ndim - 2, g->a.shape, g->b.ndim - 2, g->b.shape,
                                       &g->nb, g->batch);
    if (s) return s;
    out->ndim = g->nb;
    memcpy(out->shape, g->batch, sizeof(int64_t) * (size_t)g->nb);
    if (a->ndim > 1) out->shape[out->ndim++] = g->m;
    if (b->ndim > 1) out->shape[out->ndim++] = g->n;
    if (kn__shape_too_big(out->ndim, out->shape)) {
        char so[96];
        return kn__error(KN_ERR_SHAPE, "%s: output shape %s overflows", who,
                         kn__shape_str(out->ndim, out->shape, so, sizeof so));
    }
    return KN_OK;
}

static kn_status check_float_pair(const kn_op_args *a, int i, int j)
{
    kn_status s = kn__check_float(a, i);
    if (!s) s = kn__check_float(a, j);
    if (!s) s = kn__check_same_dtype(a, i, j);
    return s;
}

/* 2·m·n·k per matrix product, times the broadcast batch. */
static int64_t matmul_flops(const kn_op_args *a)
{
    static const mm_attrs plain = {false, false};
    mm_geom g;
    kn_out_meta out;
    const kn_tensor *b = a->in[1];
    if (mm_geometry(a->def->name, a->in[0], b, a->attrs ? a->attrs : &plain, &g, &out)) return 0;
    int64_t batch = kn__shape_numel(g.nb, g.batch);
    return 2 * batch * g.m * g.n * g.k;
}

/* x (..., in) · wᵀ (in, out): 2·rows·in·out, plus the bias. */
int64_t kn__linear_flops(const kn_op_args *a)
{
    const kn_tensor *x = a->in[0], *w = a->in[1];
    if (x->ndim < 1 || w->ndim != 2) return 0;
    int64_t rows = kn_tensor_numel(x) / (x->shape[x->ndim - 1] ? x->shape[x->ndim - 1] : 1);
    return rows * w->shape[0] * (2 * w->shape[1] + (a->in[2] ? 1 : 0));
}

/* addmm(c, a, b): the product a·b dominates. */
static int64_t addmm_flops(const kn_op_args *a)
{
    const kn_tensor *x = a->in[1], *y = a->in[2];
    return x->ndim == 2 && y->ndim == 2 ? 2 * x->shape[0] * x->shape[1] * y->shape[1] : 0;
}

static kn_status matmul_infer(const kn_op_args *a, kn_out_meta *out)
{
    kn_status s = check_float_pair(a, 0, 1);
    if (s) return s;
    mm_geom g;
    if ((s = mm_geometry(a->def->name, a->in[0], a->in[1], a->attrs, &g, out))) return s;
    out->dtype = a->in[0]->dtype;
    return KN_OK;
}

/* Kernel state: C (batch..., m, n) contiguous in the compute type. */
typedef struct mm_plan {
    int nb;
    int64_t batch[KN_MAX_DIMS], a_bstride[KN_MAX_DIMS], b_bstride[KN_MAX_DIMS];
    int64_t m, n, k, sam, sak, ldb;
    const char *a, *b;
    char *c;
    bool f64;
} mm_plan;

/* Element offsets of batch entry `bi` in A and B. */
static void batch_offsets(const mm_plan *p, int64_t bi, int64_t *oa, int64_t *ob)
{
    *oa = *ob = 0;
    for (int d = p->nb - 1; d >= 0; d--) {
        int64_t i = bi % p->batch[d];
        bi /= p->batch[d];
        *oa += i * p->a_bstride[d], *ob += i * p->b_bstride[d];
    }
}

/* Rows [begin, end) of the stacked (batch * m) rows of C. */
static void mm_rows(int64_t begin, int64_t end, void *arg)
{
    const mm_plan *p = arg;
    size_t es = p->f64 ? sizeof(double) : sizeof(float);
    for (int64_t r = begin; r < end;) {
        int64_t bi = r / p->m, i0 = r % p->m, i1 = p->m - i0 < end - r ? p->m : i0 + (end - r);
        int64_t oa, ob;
        batch_offsets(p, bi, &oa, &ob);
        const char *a = p->a + (size_t)oa * es, *b = p->b + (size_t)ob * es;
        char *c = p->c + (size_t)(bi * p->m * p->n) * es;
        if (p->f64)
            kn__gemm_ref_f64(i0, i1, p->n, p->k, (const double *)a, p->sam, p->sak,
                             (const double *)b, p->ldb, (double *)c, p->n);
        else
            kn__gemm_ref_f32(i0, i1, p->n, p->k, (const float *)a, p->sam, p->sak, (const float *)b,
                             p->ldb, (float *)c, p->n);
        r += i1 - i0;
    }
}

/* A view of x with operand geometry o, copied contiguous into dtype dt. */
static kn_tensor *pack(kn_tensor *x, const mm_operand *o, kn_dtype dt)
{
    kn_tensor *v = kn__tensor_view(x, o->ndim, o->shape, o->strides, x->offset);
    kn_tensor *p = v ? kn__tensor_new(dt, o->ndim, o->shape) : NULL;
    if (p && kn__copy_into(p, v)) {
        kn_tensor_unref(p);
        p = NULL;
    }
    kn_tensor_unref(v);
    return p;
}

static void set_batch_strides(const mm_operand *o, int nb, const int64_t *batch, int64_t *st)
{
    int lead = nb - (o->ndim - 2);
    for (int d = 0; d < nb; d++) {
        int od = d - lead;
        st[d] = od < 0 || o->shape[od] != batch[d] ? 0 : o->strides[od];
    }
}

static kn_status matmul_run(kn_tensor *a, kn_tensor *b, mm_geom *g, kn_tensor *y)
{
    kn_dtype ct = y->dtype == KN_F64 ? KN_F64 : KN_F32;
    kn_tensor *pa = NULL, *pb = NULL, *pc = NULL;
    kn_status s = KN_OK;
    /* A is read once per (i, p): any strides do. B's rows must be contiguous. */
    if (a->dtype != ct && !(pa = pack(a, &g->a, ct))) return kn_last_status();
    if (pa) as_matrix(pa, true, false, &g->a);
    bool b_rows = g->n <= 1 || g->b.strides[g->b.ndim - 1] == 1;
    if ((b->dtype != ct || !b_rows) && !(pb = pack(b, &g->b, ct))) s = kn_last_status();
    if (!s && pb) as_matrix(pb, false, false, &g->b);
    if (!s && y->dtype != ct && !(pc = kn__tensor_new(ct, y->ndim, y->shape))) s = kn_last_status();
    if (!s) {
        kn_tensor *A = pa ? pa : a, *B = pb ? pb : b, *C = pc ? pc : y;
        mm_plan p = {.nb = g->nb, .m = g->m, .n = g->n, .k = g->k, .f64 = ct == KN_F64};
        memcpy(p.batch, g->batch, sizeof(int64_t) * (size_t)g->nb);
        set_batch_strides(&g->a, g->nb, g->batch, p.a_bstride);
        set_batch_strides(&g->b, g->nb, g->batch, p.b_bstride);
        p.sam = g->a.strides[g->a.ndim - 2], p.sak = g->a.strides[g->a.ndim - 1];
        p.ldb = g->b.strides[g->b.ndim - 2];
        p.a = kn__tensor_ptr(A), p.b = kn__tensor_ptr(B), p.c = kn__tensor_ptr(C);
        int64_t rows = kn_tensor_numel(y) == 0 ? 0 : kn__shape_numel(g->nb, g->batch) * g->m;
        int64_t work = g->n * (g->k + 1) + 1, grain = 32768 / work;
        kn_parallel_for(rows, grain < 1 ? 1 : grain, mm_rows, &p);
        if (pc) s = kn__copy_into(y, pc);
    }
    kn_tensor_unref(pa), kn_tensor_unref(pb), kn_tensor_unref(pc);
    return s;
}

/* y (batch..., [m], [n]) = op(a) (batch..., m, k) · op(b) (batch..., k, n). */
static kn_status matmul_ref(const kn_op_args *a)
{
    mm_geom g;
    kn_out_meta m;
    kn_status s = mm_geometry(a->def->name, a->in[0], a->in[1], a->attrs, &g, &m);
    return s ? s : matmul_run(a->in[0], a->in[1], &g, a->out[0]);
}

/* ---- fast path: kn__gemm (f32 in f32, bf16 in bf16 with f32 sums). */
/* Leading dim and transpose flag of a (rows, cols) matrix with strides
 * (rs, cs), or false when neither direction is unit-stride. */
static bool gemm_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs, bool *trans,
                        int64_t *ld)
{
    if (cs == 1 || cols <= 1) {
        *trans = false, *ld = rows > 1 ? rs : cols;
        return rows <= 1 || rs >= 0;
    }
    if (rs == 1 || rows <= 1) {
        *trans = true, *ld = cols > 1 ? cs : rows;
        return cs >= 0;
    }
    return false;
}

static bool matmul_gemm_accepts(const kn_op_args *a)
{
    kn_dtype dt = a->in[0]->dtype;
    if ((dt != KN_F32 && dt != KN_BF16) || a->in[1]->dtype != dt) return false;
    mm_geom g;
    kn_out_meta m;
    if (mm_geometry(a->def->name, a->in[0], a->in[1], a->attrs, &g, &m)) return false;
    bool t;
    int64_t ld;
    int ra = g.a.ndim - 2, rb = g.b.ndim - 2;
    return gemm_layout(g.m, g.k, g.a.strides[ra], g.a.strides[ra + 1], &t, &ld) &&
           gemm_layout(g.k, g.n, g.b.strides[rb], g.b.strides[rb + 1], &t, &ld);
}

static kn_status matmul_gemm(const kn_op_args *a)
{
    mm_geom g;
    kn_out_meta m;
    kn_status s = mm_geometry(a->def->name, a->in[0], a->in[1], a->attrs, &g, &m);
    if (s) return s;
    kn_tensor *y = a->out[0];
    int64_t total = kn_tensor_numel(y);
    if (total == 0) return KN_OK;
    kn_dtype dt = y->dtype;
    size_t es = kn_dtype_size(dt);
    bool ta = false, tb = false;
    int64_t lda = 0, ldb = 0;
    int ra = g.a.ndim - 2, rb = g.b.ndim - 2;
    gemm_layout(g.m, g.k, g.a.strides[ra], g.a.strides[ra + 1], &ta, &lda);
    gemm_layout(g.k, g.n, g.b.strides[rb], g.b.strides[rb + 1], &tb, &ldb);
    mm_plan p = {.nb = g.nb};
    memcpy(p.batch, g.batch, sizeof(int64_t) * (size_t)g.nb);
    set_batch_strides(&g.a, g.nb, g.batch, p.a_bstride);
    set_batch_strides(&g.b, g.nb, g.batch, p.b_bstride);
    /* Merge trailing batch dims into one strided batch; loop over the rest. */
    int inner = g.nb; /* first batch dim of the merged suffix */
    int64_t nbat = 1, sa = 0, sb = 0;
    while (inner > 0) {
        int d = inner - 1;
        bool ok = nbat == 1 || (p.a_bstride[d] == sa * nbat && p.b_bstride[d] == sb * nbat);
        if (!ok) break;
        if (nbat == 1) sa = p.a_bstride[d], sb = p.b_bstride[d];
        nbat *= p.batch[d];
        inner = d;
    }
    int64_t outer = total / (nbat * g.m * g.n);
    p.nb = inner; /* batch_offsets over the outer dims only */
    const char *A = kn__tensor_ptr(a->in[0]), *B = kn__tensor_ptr(a->in[1]);
    char *C = kn__tensor_ptr(y);
    /* B packed once by the graph executor (a 2-D weight shared by every
     * batch entry); m <= 4 keeps kn__gemm's small-m path */
    const kn_gemm_packed *pb = g.b.ndim == 2 && g.m > 4 ? a->prepacked : NULL;
    for (int64_t o = 0; o < outer && !s; o++) {
        int64_t oa, ob;
        batch_offsets(&p, o, &oa, &ob);
        if (pb)
            s = kn__gemm_packed_batched(dt, ta, tb, g.m, g.n, g.k, A + (size_t)oa * es, dt, lda,
                                        NULL, NULL, dt, 0, pb, 0.0f,
                                        C + (size_t)(o * nbat * g.m * g.n) * es, dt, g.n, NULL,
                                        nbat, sa, 0, g.m * g.n);
        else
            s = kn__gemm_batched(dt, ta, tb, g.m, g.n, g.k, A + (size_t)oa * es, dt, lda,
                                 B + (size_t)ob * es, dt, ldb, 0.0f,
                                 C + (size_t)(o * nbat * g.m * g.n) * es, dt, g.n, NULL, nbat, sa,
                                 sb, g.m * g.n);
    }
    return s;
}

/* def->prepack: a 2-D B (a weight) packed for the GEMM, or NULL. */
static void *matmul_prepack(const kn_op_args *a)
{
    mm_geom g;
    kn_out_meta m;
    kn_dtype dt = a->in[0]->dtype;
    if (kn_isa_max() < KN_ISA_AVX2 || (dt != KN_F32 && dt != KN_BF16) || a->in[1]->dtype != dt ||
        mm_geometry(a->def->name, a->in[0], a->in[1], a->attrs, &g, &m) || g.b.ndim != 2 ||
        g.m <= 4)
        return NULL;
    bool tb;
    int64_t ldb;
    if (!gemm_layout(g.k, g.n, g.b.strides[0], g.b.strides[1], &tb, &ldb)) return NULL;
    kn_gemm_packed *pb = NULL;
    if (kn__gemm_pack_b(&pb, dt, tb, g.k, g.n, kn__tensor_ptr(a->in[1]), dt, ldb)) return NULL;
    return pb;
}

static void gemm_prepack_free(void *p) { kn__gemm_packed_free(p); }

static const kn_impl matmul_impls[] = {
    {"gemm", KN_ISA_AVX2, matmul_gemm_accepts, matmul_gemm},
    {"ref", KN_ISA_REF, NULL, matmul_ref},
    {0},
};

/* The gradient of one operand, summed and reshaped to that operand's shape. */
static kn_tensor *fit_to(kn_scratch *sc, kn_tensor *g, const kn_tensor *x, const mm_operand *o)
{
    kn_tensor *s = kn__keep(sc, g ? kn__sum_to_shape(g, o->ndim, o->shape) : NULL);
    return s ? kn_reshape(s, x->ndim, x->shape) : NULL;
}

/* With A' = op(A), B' = op(B) and C = A'·B': dA' = G·B'ᵀ, dB' = A'ᵀ·G; each
 * written as one matmul_t of the saved operands (no explicit transposes). */
static kn_status matmul_grad(const kn_grad_args *g)
{
    const mm_attrs *at = g->attrs;
    kn_tensor *A = g->in[0], *B = g->in[1];
    bool ta = at->transpose_a && A->ndim > 1, tb = at->transpose_b && B->ndim > 1;
    kn_scratch sc = {0};
    mm_operand oa, ob, ua, ub; /* untransposed matrix views, for the shapes */
    as_matrix(A, true, false, &ua), as_matrix(B, false, false, &ub);
    as_matrix(A, true, ta, &oa), as_matrix(B, false, tb, &ob);
    kn_tensor *A2 = kn__keep(&sc, kn_reshape(A, ua.ndim, ua.shape));
    kn_tensor *B2 = kn__keep(&sc, kn_reshape(B, ub.ndim, ub.shape));
    /* G with the dims that a vector operand removed put back */
    int nd = 0;
    int64_t gshape[KN_MAX_DIMS];
    kn_tensor *G = g->grad_out[0];
    for (int d = 0; d < G->ndim - (A->ndim > 1) - (B->ndim > 1); d++)
        gshape[nd++] = G->shape[d];
    gshape[nd++] = oa.shape[oa.ndim - 2];
    gshape[nd++] = ob.shape[ob.ndim - 1];
    kn_tensor *G2 = kn__keep(&sc, kn_reshape(G, nd, gshape));
    kn_status s = KN_OK;
    if (g->needs_grad[0]) {
        kn_tensor *d = ta ? kn_matmul_t(B2, G2, tb, true) : kn_matmul_t(G2, B2, false, !tb);
        if (!(g->grad_in[0] = fit_to(&sc, kn__keep(&sc, d), A, &ua))) s = kn_last_status();
    }
    if (!s && g->needs_grad[1]) {
        kn_tensor *d = tb ? kn_matmul_t(G2, A2, true, ta) : kn_matmul_t(A2, G2, !ta, false);
        if (!(g->grad_in[1] = fit_to(&sc, kn__keep(&sc, d), B, &ub))) s = kn_last_status();
    }
    kn__scratch_free(&sc);
    return s;
}

const kn_op_def kn_op_matmul = {
    .name = "matmul",
    .flops = matmul_flops,
    .n_in = 2,
    .n_out = 1,
    .attrs = mm_attr_schema,
    .n_attrs = 2,
    .attrs_size = sizeof(mm_attrs),
    .dtypes = KN_DTYPES_FLOAT,
    .infer = matmul_infer,
    .impls = matmul_impls,
    .grad = matmul_grad,
    .prepack = matmul_prepack,
    .prepack_free = gemm_prepack_free,
    .prepack_in = 1,
    .amp = KN_AMP_LOWP,
    .layout = KN_LAYOUT_FIXED,
};

kn_tensor *kn_matmul_t(kn_tensor *a, kn_tensor *b, bool transpose_a, bool transpose_b)
{
    mm_attrs at = {transpose_a, transpose_b};
    kn_tensor *in[2] = {a, b};
    return kn__op_call1(&kn_op_matmul, 2, in, &at);
}

kn_tensor *kn_matmul(kn_tensor *a, kn_tensor *b)
{
    return kn_matmul_t(a, b, false, false);
}

/* ================================================================ linear */
/* x (..., in) · w (out, in)ᵀ + bias (out): a composite of matmul and add. */
static kn_status linear_infer(const kn_op_args *a, kn_out_meta *out)
{
    const kn_tensor *x = a->in[0], *w = a->in[1], *b = a->in[2];
    kn_status s = check_float_pair(a, 0, 1);
    if (!s && b) s = check_float_pair(a, 0, 2);
    if (s) return s;
    if (x->ndim < 1) return kn__error(KN_ERR_SHAPE, "linear: x is 0-d, expected (..., in)");
    if (w->ndim != 2)
        return kn__error(KN_ERR_SHAPE, "linear: weight has %d dims, expected 2 (out, in)", w->ndim);
    if (w->shape[1] != x->shape[x->ndim - 1])
        return kn__error(KN_ERR_SHAPE,
                         "linear: x has %lld features but weight (%lld, %lld) expects %lld",
                         (long long)x->shape[x->ndim - 1], (long long)w->shape[0],
                         (long long)w->shape[1], (long long)w->shape[1]);
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0])) {
        char sb[96];
        return kn__error(KN_ERR_SHAPE, "linear: bias has shape %s, expected (%lld)",
                         kn__shape_str(b->ndim, b->shape, sb, sizeof sb), (long long)w->shape[0]);
    }
    out->dtype = x->dtype;
    out->ndim = x->ndim;
    memcpy(out->shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    out->shape[x->ndim - 1] = w->shape[0];
    return KN_OK;
}

static kn_status linear_compose(const kn_op_args *a)
{
    kn_tensor *y = kn_matmul_t(a->in[0], a->in[1], false, true);
    if (y && a->in[2]) {
        kn_tensor *yb = kn_add(y, a->in[2]);
        kn_tensor_unref(y);
        y = yb;
    }
    a->out[0] = y;
    return y ? KN_OK : kn_last_status();
}

const kn_op_def kn_op_linear = {
    .name = "linear",
    .flops = kn__linear_flops,
    .n_in = 3,
    .n_out = 1,
    .optional_in = 1u << 2,
    .dtypes = KN_DTYPES_FLOAT,
    .infer = linear_infer,
    .compose = linear_compose,
    .amp = KN_AMP_LOWP,
    .layout = KN_LAYOUT_FIXED,
};

kn_tensor *kn_linear(kn_tensor *x, kn_tensor *w, kn_tensor *bias)
{
    kn_tensor *in[3] = {x, w, bias};
    return kn__op_call1(&kn_op_linear, 3, in, NULL);
}

/* ================================================================= addmm */
/* beta * c + alpha * a (m, k) · b (k, n), c broadcastable to (m, n); a
 * composite. beta == 0 ignores c's values (NaN in c does not propagate). */
typedef struct addmm_attrs {
    double beta, alpha;
} addmm_attrs;

static const kn_attr_desc addmm_attr_schema[] = {
    KN_ATTR(addmm_attrs, beta, KN_ATTR_FLOAT),
    KN_ATTR(addmm_attrs, alpha, KN_ATTR_FLOAT),
};

static kn_status addmm_infer(const kn_op_args *a, kn_out_meta *out)
{
    const kn_tensor *c = a->in[0], *x = a->in[1], *y = a->in[2];
    kn_status s = check_float_pair(a, 1, 2);
    if (!s) s = check_float_pair(a, 0, 1);
    if (s) return s;
    if (x->ndim != 2 || y->ndim != 2)
        return kn__error(KN_ERR_SHAPE,
                         "addmm: a and b must be 2-D (m, k) and (k, n); got %d and %d dims",
                         x->ndim, y->ndim);
    if (x->shape[1] != y->shape[0])
        return kn__error(KN_ERR_SHAPE,
                         "addmm: a is (%lld, %lld) but b is (%lld, %lld): inner dims differ",
                         (long long)x->shape[0], (long long)x->shape[1], (long long)y->shape[0],
                         (long long)y->shape[1]);
    int64_t mn[2] = {x->shape[0], y->shape[1]};
    int nd;
    int64_t bs[KN_MAX_DIMS];
    if ((s = kn__broadcast_shapes("addmm", c->ndim, c->shape, 2, mn, &nd, bs))) return s;
    if (nd != 2 || bs[0] != mn[0] || bs[1] != mn[1]) {
        char sc[96];
        return kn__error(
            KN_ERR_SHAPE, "addmm: c has shape %s, which does not broadcast to (%lld, %lld)",
            kn__shape_str(c->ndim, c->shape, sc, sizeof sc), (long long)mn[0], (long long)mn[1]);
    }
    if (kn__shape_too_big(2, mn)) return kn__error(KN_ERR_SHAPE, "addmm: output shape overflows");
    out->dtype = x->dtype;
    out->ndim = 2;
    memcpy(out->shape, mn, sizeof mn);
    return KN_OK;
}

static kn_status addmm_compose(const kn_op_args *a)
{
    const addmm_attrs *at = a->attrs;
    kn_scratch sc = {0};
    kn_tensor *ab = kn__keep(&sc, kn_matmul(a->in[1], a->in[2]));
    if (ab && at->alpha != 1) ab = kn__keep(&sc, kn_mul_scalar(ab, at->alpha));
    kn_tensor *y = NULL;
    if (ab && at->beta == 0) {
        y = kn_tensor_ref(ab);
    } else if (ab) {
        kn_tensor *c = at->beta == 1 ? a->in[0] : kn__keep(&sc, kn_mul_scalar(a->in[0], at->beta));
        y = c ? kn_add(c, ab) : NULL;
    }
    kn__scratch_free(&sc);
    a->out[0] = y;
    return y ? KN_OK : kn_last_status();
}

const kn_op_def kn_op_addmm = {
    .name = "addmm",
    .flops = addmm_flops,
    .n_in = 3,
    .n_out = 1,
    .attrs = addmm_attr_schema,
    .n_attrs = 2,
    .attrs_size = sizeof(addmm_attrs),
    .dtypes = KN_DTYPES_FLOAT,
    .infer = addmm_infer,
    .compose = addmm_compose,
    .amp = KN_AMP_LOWP,
    .layout = KN_LAYOUT_FIXED,
};

kn_tensor *kn_addmm(kn_tensor *c, kn_tensor *a, kn_tensor *b, double beta, double alpha)
{
    addmm_attrs at = {beta, alpha};
    kn_tensor *in[3] = {c, a, b};
    return kn__op_call1(&kn_op_addmm, 3, in, &at);
}
