/* fused.c — fused_elementwise: runs a program of elementwise steps per
 * element (see fused.h), so a chain like x*w+b -> sigmoid -> mul reads its
 * inputs and writes its output once. Built only by the graph's fusion pass
 * for inference; it has no gradient. */
#include "fused.h"

uint64_t kn__registry_fingerprint(void)
{
    static uint64_t hash;
    if (hash) return hash;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (int i = 0; i < kn_op_count(); i++)
        for (const char *p = kn_op_name(kn_op_at(i)); *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return hash = h;
}

bool kn__fusable_op(const kn_op_def *def)
{
    if (!def || !def->data) return false;
    if (def->impls == kn__unary_impls) return ((const kn_unary_fn *)def->data)->out != KN_EW_BOOL;
    if (def->impls == kn__binary_impls) {
        const kn_binary_fn *fn = def->data;
        return fn->out != KN_EW_BOOL && !fn->logical;
    }
    return false;
}

static kn_status check_operand(const kn_fused_attrs *at, int j, int32_t ref, int n_in)
{
    bool input = ref >= 0 && ref < n_in;
    bool step = ref >= KN_FUSED_STEP_REF && ref - KN_FUSED_STEP_REF < j;
    if (!input && !step)
        return kn__error(KN_ERR_ARG,
                         "fused_elementwise: step %d reads operand %d, which is neither an "
                         "input (< %d) nor an earlier step",
                         j, (int)ref, n_in);
    (void)at;
    return KN_OK;
}

static kn_status fused_infer(const kn_op_args *a, kn_out_meta *out)
{
    const kn_fused_attrs *at = a->attrs;
    if (a->n_in < 1 || a->n_in > KN_FUSED_MAX_INPUTS)
        return kn__error(KN_ERR_ARG, "fused_elementwise: %d inputs, expected 1 to %d", a->n_in,
                         KN_FUSED_MAX_INPUTS);
    if (at->registry != kn__registry_fingerprint())
        return kn__error(KN_ERR_ARG,
                         "fused_elementwise: the program was built by a kiln with other ops "
                         "(save graphs before compiling them)");
    if (at->n_steps < 1 || at->n_steps > KN_FUSED_MAX_STEPS)
        return kn__error(KN_ERR_ARG, "fused_elementwise: %d steps, expected 1 to %d",
                         (int)at->n_steps, KN_FUSED_MAX_STEPS);
    int nd = 0;
    int64_t shape[KN_MAX_DIMS];
    for (int i = 0; i < a->n_in; i++) {
        if (a->in[i]->dtype != KN_F32)
            return kn__error(KN_ERR_DTYPE, "fused_elementwise: input %d is %s, expected f32", i,
                             kn_dtype_name(a->in[i]->dtype));
        kn_status s = kn__broadcast_shapes("fused_elementwise", nd, shape, a->in[i]->ndim,
                                           a->in[i]->shape, &nd, shape);
        if (s) return s;
    }
    for (int j = 0; j < at->n_steps; j++) {
        const kn_fused_step *st = &at->steps[j];
        const kn_op_def *def = kn_op_at(st->op);
        if (!kn__fusable_op(def))
            return kn__error(KN_ERR_ARG,
                             "fused_elementwise: step %d op %d is not a fusable elementwise op", j,
                             (int)st->op);
        kn_status s = check_operand(at, j, st->a, a->n_in);
        if (!s && def->n_in == 2) s = check_operand(at, j, st->b, a->n_in);
        if (s) return s;
    }
    out->dtype = KN_F32;
    out->ndim = nd;
    memcpy(out->shape, shape, sizeof(int64_t) * (size_t)nd);
    return KN_OK;
}

typedef struct program {
    const kn_fused_attrs *at;
    const kn_op_def *defs[KN_FUSED_MAX_STEPS];
    kn_ew_op vec[KN_FUSED_MAX_STEPS]; /* vector kernel per step, or NONE */
    kn_unary_attrs uattrs[KN_FUSED_MAX_STEPS];
    kn_ew_unary_fn vunary; /* NULL: scalar steps only */
    kn_ew_binary_fn vbinary;
    kn_ew_prog_fn vprog;
    int n_in;
} program;

#define BLOCK 256 /* elements per block: every step's results stay in L1 */

/* The vector kernel of a step: the op's own (kn__ew_vec_op). */
static kn_ew_op step_vec_op(const kn_op_def *def)
{
    return kn__ew_vec_op(def);
}

/* An input block as f32 values: the array itself when contiguous, else a copy. */
static const float *input_block(const char *p, int64_t st, int64_t m, float *buf)
{
    if (st == (int64_t)sizeof(float)) return (const float *)p;
    for (int64_t i = 0; i < m; i++)
        buf[i] = *(const float *)(p + i * st);
    return buf;
}

/* One operand of a step over a block: m values at p, or (uniform) p[0] for
 * every element. */
typedef struct operand {
    const float *p;
    bool uniform;
} operand;

/* r[0..m) = step j over operands x, y (y unused for unary steps), element by
 * element through the op's f32 function or its vector kernel. A uniform
 * operand is passed to the binary kernels as their scalar (same operation,
 * same bits); both operands uniform never reach here with m > 1. */
static void run_step(const program *pr, int j, operand x, operand y, float *r, int64_t m)
{
    const kn_op_def *def = pr->defs[j];
    if (pr->vec[j] == KN_EWV_NONE || !pr->vunary) {
        int64_t dx = !x.uniform, dy = !y.uniform;
        if (def->n_in == 1) {
            const kn_unary_fn *fn = def->data;
            for (int64_t i = 0; i < m; i++)
                r[i] = fn->f32(x.p[i * dx], &pr->uattrs[j]);
        } else {
            const kn_binary_fn *fn = def->data;
            for (int64_t i = 0; i < m; i++)
                r[i] = fn->f32(x.p[i * dx], y.p[i * dy]);
        }
    } else if (def->n_in == 1) {
        pr->vunary(pr->vec[j], KN_F32, x.p, r, m, (float)pr->uattrs[j].alpha,
                   (float)pr->uattrs[j].beta);
    } else if (x.uniform && m > 1) {
        pr->vbinary(pr->vec[j], KN_F32, NULL, y.p, r, m, KN_EW_SV, x.p[0]);
    } else if (y.uniform && m > 1) {
        pr->vbinary(pr->vec[j], KN_F32, x.p, NULL, r, m, KN_EW_VS, y.p[0]);
    } else {
        pr->vbinary(pr->vec[j], KN_F32, x.p, y.p, r, m, KN_EW_VV, 0);
    }
}

#define SLOT(ref)                                                                                  \
    ((ref) >= KN_FUSED_STEP_REF ? KN_FUSED_MAX_INPUTS + (ref)-KN_FUSED_STEP_REF : (ref))
#define N_SLOTS (KN_FUSED_MAX_INPUTS + KN_FUSED_MAX_STEPS) /* inputs, then steps */

/* Operand slots of step j (b = a for unary steps). */
static void step_slots(const program *pr, int j, int *sa, int *sb)
{
    const kn_fused_step *s = &pr->at->steps[j];
    *sa = SLOT(s->a);
    *sb = pr->defs[j]->n_in == 2 ? SLOT(s->b) : *sa;
}

/* The whole run through the ISA's program interpreter: every step on one
 * vector of lanes in registers, no pass over memory per step. Inputs and
 * uniform step results are its sources; the non-uniform steps its steps. */
static void run_program(const program *pr, char **p, const int64_t *st, int64_t n, const bool *uni,
                        const float *uval)
{
    kn_ew_prog pg = {0};
    int slot[N_SLOTS];
    for (int k = 0; k < pr->n_in; k++) {
        slot[k] = pg.n_src;
        pg.uval[pg.n_src++] = uni[k] ? uval[k] : 0;
    }
    for (int j = 0; j < pr->at->n_steps; j++) {
        int sj = KN_FUSED_MAX_INPUTS + j;
        if (!uni[sj]) continue;
        slot[sj] = pg.n_src;
        pg.uval[pg.n_src++] = uval[sj]; /* src[] stays NULL: uniform */
    }
    for (int j = 0; j < pr->at->n_steps; j++) {
        int sa, sb, sj = KN_FUSED_MAX_INPUTS + j;
        if (uni[sj]) continue;
        step_slots(pr, j, &sa, &sb);
        pg.steps[pg.n_steps] = (kn_ew_prog_step){
            pr->vec[j], slot[sa], slot[sb], (float)pr->uattrs[j].alpha, (float)pr->uattrs[j].beta};
        slot[sj] = pg.n_src + pg.n_steps++;
    }
    bool contiguous = st[0] == (int64_t)sizeof(float);
    for (int k = 0; k < pr->n_in; k++)
        contiguous = contiguous && (uni[k] || st[k + 1] == (int64_t)sizeof(float));
    if (contiguous) { /* one call: no staging, no blocks */
        for (int k = 0; k < pr->n_in; k++)
            pg.src[slot[k]] = uni[k] ? NULL : (const float *)p[k + 1];
        pr->vprog(&pg, (float *)p[0], n);
        return;
    }
    _Alignas(64) float in_buf[KN_FUSED_MAX_INPUTS][BLOCK], out[BLOCK];
    for (int64_t i0 = 0; i0 < n; i0 += BLOCK) {
        int64_t m = n - i0 < BLOCK ? n - i0 : BLOCK;
        for (int k = 0; k < pr->n_in; k++)
            pg.src[slot[k]] =
                uni[k] ? NULL : input_block(p[k + 1] + i0 * st[k + 1], st[k + 1], m, in_buf[k]);
        bool direct = st[0] == (int64_t)sizeof(float);
        float *y = direct ? (float *)(p[0] + i0 * st[0]) : out;
        pr->vprog(&pg, y, m);
        if (!direct)
            for (int64_t i = 0; i < m; i++)
                *(float *)(p[0] + (i0 + i) * st[0]) = out[i];
    }
}

/* out (any shape) = the program over inputs broadcast to it, f32. Per run
 * of n elements: inputs with stride 0 are uniform, and so is every step
 * whose operands all are — it runs once, on one element. When every other
 * step has a vector kernel, the ISA's program interpreter runs the whole
 * program per vector of lanes (run_program); otherwise the steps run one
 * block of at most BLOCK elements at a time, each over the whole block with
 * the ops' vector kernels when the CPU has them, and the last step writes
 * straight into a contiguous output. Every element goes through the same
 * operations wherever it sits, so results do not depend on how runs are cut
 * (threads); the interpreter's steps are the ops' kernels' own, so both
 * ways give the same bits. */
static void fused_loop(char **p, const int64_t *st, int64_t n, void *arg)
{
    const program *pr = arg;
    const kn_fused_attrs *at = pr->at;
    int last = at->n_steps - 1;
    float uval[N_SLOTS];
    bool uni[N_SLOTS];
    for (int k = 0; k < pr->n_in; k++) {
        uni[k] = st[k + 1] == 0 || n == 1;
        if (uni[k]) uval[k] = *(const float *)p[k + 1];
    }
    bool all_vec = pr->vprog != NULL;
    for (int j = 0; j <= last; j++) {
        int sa, sb, sj = KN_FUSED_MAX_INPUTS + j;
        step_slots(pr, j, &sa, &sb);
        uni[sj] = uni[sa] && uni[sb];
        if (uni[sj])
            run_step(pr, j, (operand){&uval[sa], true}, (operand){&uval[sb], true}, &uval[sj], 1);
        else if (pr->vec[j] == KN_EWV_NONE)
            all_vec = false;
    }
    if (uni[KN_FUSED_MAX_INPUTS + last]) { /* a program of broadcast inputs only */
        for (int64_t i = 0; i < n; i++)
            *(float *)(p[0] + i * st[0]) = uval[KN_FUSED_MAX_INPUTS + last];
        return;
    }
    if (all_vec) {
        run_program(pr, p, st, n, uni, uval);
        return;
    }
    _Alignas(64) float in_buf[KN_FUSED_MAX_INPUTS][BLOCK];
    _Alignas(64) float res[KN_FUSED_MAX_STEPS][BLOCK];
    bool direct = st[0] == (int64_t)sizeof(float);
    for (int64_t i0 = 0; i0 < n; i0 += BLOCK) {
        int64_t m = n - i0 < BLOCK ? n - i0 : BLOCK;
        const float *ptr[N_SLOTS];
        for (int k = 0; k < pr->n_in; k++)
            ptr[k] =
                uni[k] ? &uval[k] : input_block(p[k + 1] + i0 * st[k + 1], st[k + 1], m, in_buf[k]);
        float *out = direct ? (float *)(p[0] + i0 * st[0]) : res[last];
        for (int j = 0; j <= last; j++) {
            int sa, sb, sj = KN_FUSED_MAX_INPUTS + j;
            step_slots(pr, j, &sa, &sb);
            if (uni[sj]) {
                ptr[sj] = &uval[sj];
                continue;
            }
            float *r = j == last ? out : res[j];
            run_step(pr, j, (operand){ptr[sa], uni[sa]}, (operand){ptr[sb], uni[sb]}, r, m);
            ptr[sj] = r;
        }
        if (!direct)
            for (int64_t i = 0; i < m; i++)
                *(float *)(p[0] + (i0 + i) * st[0]) = out[i];
    }
}
#undef SLOT
#undef N_SLOTS

static kn_status fused_ref(const kn_op_args *a)
{
    program pr = {.at = a->attrs, .n_in = a->n_in};
#if KILN_X86
    if (kn_isa_max() >= KN_ISA_AVX512)
        pr.vunary = kn__ew_unary_avx512, pr.vbinary = kn__ew_binary_avx512,
        pr.vprog = kn__ew_prog_avx512;
    else if (kn_isa_max() >= KN_ISA_AVX2)
        pr.vunary = kn__ew_unary_avx2, pr.vbinary = kn__ew_binary_avx2, pr.vprog = kn__ew_prog_avx2;
#endif
    for (int j = 0; j < pr.at->n_steps; j++) {
        pr.defs[j] = kn_op_at(pr.at->steps[j].op);
        pr.vec[j] = step_vec_op(pr.defs[j]);
        pr.uattrs[j] = (kn_unary_attrs){pr.at->steps[j].alpha, pr.at->steps[j].beta};
    }
    kn_tensor *y = a->out[0];
    const kn_tensor *ops[1 + KN_FUSED_MAX_INPUTS] = {y};
    for (int i = 0; i < a->n_in; i++)
        ops[i + 1] = a->in[i];
    kn_iter it;
    kn__iter_init(&it, 1 + a->n_in, ops, y->ndim, y->shape);
    kn__iter_run(&it, fused_loop, &pr, true);
    return KN_OK;
}

static const kn_impl fused_impls[] = {{"ref", KN_ISA_REF, NULL, fused_ref}, {0}};

const kn_op_def kn_op_fused_elementwise = {
    .name = "fused_elementwise",
    .n_in = -1,
    .n_out = 1,
    /* no schema: the program is not expressible in attr types; files keep raw attrs */
    .attrs_size = sizeof(kn_fused_attrs),
    .dtypes = KN_DT(KN_F32),
    .infer = fused_infer,
    .impls = fused_impls,
    .amp = KN_AMP_FP32,
    .layout = KN_LAYOUT_AGNOSTIC,
};
