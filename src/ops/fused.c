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
        return kn__error(KN_ERR_ARG, "fused_elementwise: step %d reads operand %d, which is neither an "
                                     "input (< %d) nor an earlier step", j, (int)ref, n_in);
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
        return kn__error(KN_ERR_ARG, "fused_elementwise: the program was built by a kiln with other ops "
                                     "(save graphs before compiling them)");
    if (at->n_steps < 1 || at->n_steps > KN_FUSED_MAX_STEPS)
        return kn__error(KN_ERR_ARG, "fused_elementwise: %d steps, expected 1 to %d", (int)at->n_steps,
                         KN_FUSED_MAX_STEPS);
    int nd = 0;
    int64_t shape[KN_MAX_DIMS];
    for (int i = 0; i < a->n_in; i++) {
        if (a->in[i]->dtype != KN_F32)
            return kn__error(KN_ERR_DTYPE, "fused_elementwise: input %d is %s, expected f32", i,
                             kn_dtype_name(a->in[i]->dtype));
        kn_status s = kn__broadcast_shapes("fused_elementwise", nd, shape, a->in[i]->ndim, a->in[i]->shape, &nd, shape);
        if (s) return s;
    }
    for (int j = 0; j < at->n_steps; j++) {
        const kn_fused_step *st = &at->steps[j];
        const kn_op_def *def = kn_op_at(st->op);
        if (!kn__fusable_op(def))
            return kn__error(KN_ERR_ARG, "fused_elementwise: step %d op %d is not a fusable elementwise op", j,
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
    kn_unary_attrs uattrs[KN_FUSED_MAX_STEPS];
    int n_in;
} program;

/* out (any shape) = the program over inputs broadcast to it; f32. */
static void fused_loop(char **p, const int64_t *st, int64_t n, void *arg)
{
    const program *pr = arg;
    float r[KN_FUSED_STEP_REF + KN_FUSED_MAX_STEPS];
    for (int64_t i = 0; i < n; i++) {
        for (int k = 0; k < pr->n_in; k++)
            r[k] = *(const float *)(p[k + 1] + i * st[k + 1]);
        for (int j = 0; j < pr->at->n_steps; j++) {
            const kn_fused_step *s = &pr->at->steps[j];
            const kn_op_def *def = pr->defs[j];
            float x = r[s->a];
            r[KN_FUSED_STEP_REF + j] = def->n_in == 1
                                           ? ((const kn_unary_fn *)def->data)->f32(x, &pr->uattrs[j])
                                           : ((const kn_binary_fn *)def->data)->f32(x, r[s->b]);
        }
        *(float *)(p[0] + i * st[0]) = r[KN_FUSED_STEP_REF + pr->at->n_steps - 1];
    }
}

static kn_status fused_ref(const kn_op_args *a)
{
    program pr = {.at = a->attrs, .n_in = a->n_in};
    for (int j = 0; j < pr.at->n_steps; j++) {
        pr.defs[j] = kn_op_at(pr.at->steps[j].op);
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
