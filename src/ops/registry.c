/* registry.c — the op table built from ops.def, its listing API, and the
 * eager dispatcher every kn_ op goes through. */
#include "op.h"

#include <stdio.h>

static const kn_op_def *const all_ops[] = {
#define X(name, family) &kn_op_##name,
#include "ops.def"
#undef X
};

int kn_op_count(void)
{
    return KN_ARRAY_LEN(all_ops);
}
const kn_op_def *kn_op_at(int i)
{
    return i >= 0 && i < kn_op_count() ? all_ops[i] : NULL;
}

const kn_op_def *kn_op_find(const char *name)
{
    for (int i = 0; name && i < kn_op_count(); i++)
        if (strcmp(all_ops[i]->name, name) == 0) return all_ops[i];
    return NULL;
}

const char *kn_op_name(const kn_op_def *op)
{
    return op ? op->name : NULL;
}
int kn_op_num_inputs(const kn_op_def *op)
{
    return op ? op->n_in : 0;
}
int kn_op_num_outputs(const kn_op_def *op)
{
    return op ? op->n_out : 0;
}
int kn_op_num_attrs(const kn_op_def *op)
{
    return op ? op->n_attrs : 0;
}
uint32_t kn_op_dtypes(const kn_op_def *op)
{
    return op ? op->dtypes : 0;
}
/* Composites are differentiable through the primitives they call. */
bool kn_op_has_grad(const kn_op_def *op)
{
    return op && (op->grad || op->compose);
}

const char *kn_op_attr_name(const kn_op_def *op, int i)
{
    return op && i >= 0 && i < op->n_attrs ? op->attrs[i].name : NULL;
}

kn_attr_type kn_op_attr_type(const kn_op_def *op, int i)
{
    return op && i >= 0 && i < op->n_attrs ? op->attrs[i].type : KN_ATTR_INT;
}

void kn_print_info(FILE *f)
{
    fprintf(f, "kiln %s\n", kn_version());
    kn__print_cpu_info(f);
    fprintf(f, "ops: %d\n", kn_op_count());
}

/* ---- autograd hook */
static kn__record_fn record_hook;
static _Thread_local bool record_active;

void kn__set_record_hook(kn__record_fn fn)
{
    record_hook = fn;
}
bool kn__record_active(void)
{
    return record_active && record_hook;
}
void kn__set_record_active(bool on)
{
    record_active = on;
}

/* ---- tracing hook and call sites */
static kn__trace_fn trace_hook;
static _Thread_local const char *site_file = "";
static _Thread_local int site_line;

void kn__set_trace_hook(kn__trace_fn fn) { trace_hook = fn; }

void kn_set_call_site(const char *file, int line)
{
    site_file = file ? file : "";
    site_line = line;
}

void kn__call_site(const char **file, int *line)
{
    *file = site_file;
    *line = site_line;
}

static bool any_traced(int n_in, kn_tensor *const *in)
{
    for (int i = 0; i < n_in; i++)
        if (in[i] && in[i]->trace_graph) return true;
    return false;
}

/* Appends the user's line to the current error while tracing. */
static kn_status with_call_site(kn_status s)
{
    if (site_line <= 0) return s;
    char msg[400];
    snprintf(msg, sizeof msg, "%s", kn_last_error());
    return kn__error(s, "%s (traced at %s:%d)", msg, site_file, site_line);
}

/* ---- dispatch */
static kn_status check_inputs(const kn_op_def *def, int n_in, kn_tensor *const *in, int n_out,
                              bool *symbolic)
{
    if (def->n_in >= 0 && n_in != def->n_in)
        return kn__error(KN_ERR_ARG, "%s: got %d inputs, expected %d", def->name, n_in, def->n_in);
    if (def->n_out >= 0 && n_out != def->n_out)
        return kn__error(KN_ERR_ARG, "%s: asked for %d outputs, it has %d", def->name, n_out,
                         def->n_out);
    if (n_in > 0 && !in) return kn__error(KN_ERR_ARG, "%s: inputs array is NULL", def->name);
    *symbolic = false;
    for (int i = 0; i < n_in; i++) {
        if (!in[i]) {
            if (i < 32 && (def->optional_in & (1u << i))) continue;
            /* an earlier failed op in a chain: name the root cause, once */
            if (kn_last_status() != KN_OK && kn_last_error()[0]) {
                char prev[400];
                const char *root = strstr(kn_last_error(), "(after: ");
                snprintf(prev, sizeof prev, "%s", root ? root + 8 : kn_last_error());
                size_t len = strlen(prev);
                if (root && len && prev[len - 1] == ')') prev[len - 1] = '\0';
                return kn__error(KN_ERR_ARG, "%s: input %d is NULL (after: %s)", def->name, i, prev);
            }
            return kn__error(KN_ERR_ARG, "%s: input %d is NULL", def->name, i);
        }
        if (in[i]->dtype == KN_STRING)
            return kn__error(KN_ERR_DTYPE, "%s: input %d is a string tensor (dtype string); no op "
                                           "computes on text", def->name, i);
        if (!in[i]->storage) *symbolic = true;
    }
    return KN_OK;
}

static void unref_all(int n, kn_tensor **t)
{
    for (int i = 0; i < n; i++) {
        kn_tensor_unref(t[i]);
        t[i] = NULL;
    }
}

#if KILN_X86
void kn__vzeroupper(void); /* src/kernels/x86/avx2/zeroupper.c */
#endif

kn_status kn__op_run_kernel(const kn_op_args *a)
{
    kn_isa cap = kn_isa_max();
    for (const kn_impl *impl = a->def->impls; impl && impl->run; impl++) {
        if (impl->isa > cap || (impl->accepts && !impl->accepts(a))) continue;
        kn_status s = impl->run(a);
#if KILN_X86
        /* also after ref-level impls, which may call vector kernels */
        if (cap >= KN_ISA_AVX2) kn__vzeroupper();
#endif
        return s;
    }
    return kn__error(KN_ERR_UNSUPPORTED, "%s: no implementation accepts inputs of dtype %s",
                     a->def->name, a->n_in && a->in[0] ? kn_dtype_name(a->in[0]->dtype) : "-");
}

#define MAX_OUTS 64

static kn_status allocate_outputs(const kn_op_args *a, const kn_out_meta *meta, bool symbolic)
{
    for (int i = 0; i < a->n_out; i++) {
        a->out[i] = symbolic ? kn_tensor_symbolic(meta[i].dtype, meta[i].ndim, meta[i].shape)
                             : kn__tensor_new(meta[i].dtype, meta[i].ndim, meta[i].shape);
        if (!a->out[i]) return kn_last_status();
    }
    return KN_OK;
}

static bool any_requires_grad(int n_in, kn_tensor *const *in)
{
    for (int i = 0; i < n_in; i++)
        if (in[i] && in[i]->requires_grad) return true;
    return false;
}

kn_status kn__op_call(const kn_op_def *def, int n_in, kn_tensor *const *in, const void *attrs,
                      int n_out, kn_tensor **out)
{
    return kn__op_call_prepacked(def, n_in, in, attrs, n_out, out, NULL);
}

kn_status kn__op_call_prepacked(const kn_op_def *def, int n_in, kn_tensor *const *in,
                                const void *attrs, int n_out, kn_tensor **out,
                                const void *prepacked)
{
    bool symbolic = false;
    if (!out || n_out < 1 || n_out > MAX_OUTS)
        return kn__error(KN_ERR_ARG, "%s: %d outputs requested (1..%d)", def->name, n_out,
                         MAX_OUTS);
    for (int i = 0; i < n_out; i++)
        out[i] = NULL;
    kn_status s = check_inputs(def, n_in, in, n_out, &symbolic);
    if (s) return s;
    kn_op_args a = {def, in, n_in, NULL, n_out, attrs, prepacked};
    kn_out_meta meta[MAX_OUTS];
    if (def->infer && (s = def->infer(&a, meta)))
        return symbolic && any_traced(n_in, in) ? with_call_site(s) : s;
    a.out = out;
    if (def->compose && !symbolic) {
        s = def->compose(&a); /* the ops it calls record themselves */
        if (s) unref_all(n_out, out);
        return s;
    }
    if (def->view && !symbolic)
        s = def->view(&a);
    else if (!(s = allocate_outputs(&a, meta, symbolic)) && !symbolic)
        s = kn__op_run_kernel(&a);
    else if (!s && trace_hook && any_traced(n_in, in))
        s = trace_hook(&a);
    if (!s && !symbolic && def->grad && kn__record_active() && any_requires_grad(n_in, in))
        s = record_hook(&a);
    if (s) unref_all(n_out, out);
    return s;
}

kn_tensor *kn__op_call1(const kn_op_def *def, int n_in, kn_tensor *const *in, const void *attrs)
{
    kn_tensor *out = NULL;
    return kn__op_call(def, n_in, in, attrs, 1, &out) ? NULL : out;
}

kn_status kn__check_float(const kn_op_args *a, int i)
{
    if (a->in[i] && !kn_dtype_is_float(a->in[i]->dtype))
        return kn__error(KN_ERR_DTYPE, "%s: input %d has dtype %s, expected a float dtype",
                         a->def->name, i, kn_dtype_name(a->in[i]->dtype));
    return KN_OK;
}

kn_status kn__check_same_dtype(const kn_op_args *a, int i, int j)
{
    if (a->in[i] && a->in[j] && a->in[i]->dtype != a->in[j]->dtype)
        return kn__error(KN_ERR_DTYPE, "%s: input %d is %s but input %d is %s", a->def->name, i,
                         kn_dtype_name(a->in[i]->dtype), j, kn_dtype_name(a->in[j]->dtype));
    return KN_OK;
}
