/* onnx_ops_nn.c — ONNX node converters for the neural-network ops:
 * convolution, pooling, normalization, Gemm, Dropout, Resize/Upsample and
 * the recurrent ops (RNN, GRU, LSTM); see onnx_internal.h. Converters call
 * kiln's public ops; what kiln's fused ops cannot express exactly (dilated
 * or over-padded pools, MaxPool's Indices, every Resize mode, ONNX's gate
 * orders) is composed from slices, gathers and elementwise ops. */
#if KILN_HAVE_ONNX
#include "onnx_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================ helpers */
/* Temporaries of a converter, released together at its end. */
typedef struct tmps {
    kn_tensor **t;
    int n, cap;
} tmps;

static kn_tensor *keep(tmps *l, kn_tensor *t)
{
    if (!t) return NULL;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 32;
        kn_tensor **nt = kn_alloc(sizeof *nt * (size_t)cap);
        if (!nt) {
            kn_tensor_unref(t);
            return NULL;
        }
        if (l->n) memcpy(nt, l->t, sizeof *nt * (size_t)l->n);
        kn_free(l->t);
        l->t = nt, l->cap = cap;
    }
    l->t[l->n++] = t;
    return t;
}

static void tmps_free(tmps *l)
{
    for (int i = 0; i < l->n; i++)
        kn_tensor_unref(l->t[i]);
    kn_free(l->t);
    l->t = NULL, l->n = l->cap = 0;
}

/* A kiln op failed: its message, prefixed with the node. */
static kn_status failed(kn_onnx_node *n)
{
    kn_status s = kn_last_status();
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", kn_last_error());
    return kn__onnx_fail(n, s ? s : KN_ERR_INTERNAL, "%s", msg);
}

static kn_tensor *in_at(const kn_onnx_node *n, int i)
{
    return i < n->n_in ? n->in[i] : NULL;
}

static bool proto_out_used(const Onnx__NodeProto *p, int i)
{
    return (size_t)i < p->n_output && p->output[i] && p->output[i][0];
}

static bool out_used(const kn_onnx_node *n, int i)
{
    return i < n->n_out && proto_out_used(n->proto, i);
}

static void set_out(kn_onnx_node *n, int i, kn_tensor *t)
{
    if (i < n->n_out && t) n->out[i] = kn_tensor_ref(t);
}

static kn_status need_inputs(kn_onnx_node *n, int count)
{
    for (int i = 0; i < count; i++)
        if (!in_at(n, i))
            return kn__onnx_fail(n, KN_ERR_ARG, "input %d is missing (%d inputs are required)", i,
                                 count);
    return KN_OK;
}

static int rank(const kn_tensor *t)
{
    return kn_tensor_ndim(t);
}

static const int64_t *shp(const kn_tensor *t)
{
    return kn_tensor_shape(t);
}

static kn_tensor *scalar(tmps *l, kn_dtype dt, double v)
{
    return keep(l, kn_tensor_scalar(dt, v));
}

/* A tensor of dtype dt from double values. */
static kn_tensor *tensor_f64(tmps *l, kn_dtype dt, int nd, const int64_t *shape, const double *v)
{
    kn_tensor *t = keep(l, kn_tensor_from_data(KN_F64, nd, shape, v));
    return !t || dt == KN_F64 ? t : keep(l, kn_cast(t, dt));
}

static kn_tensor *as_dtype(tmps *l, kn_tensor *t, kn_dtype dt)
{
    return !t || kn_tensor_dtype(t) == dt ? t : keep(l, kn_cast(t, dt));
}

/* A per-channel vector (C) seen as (1, C, 1, ...) of rank r. */
static kn_tensor *channel_view(tmps *l, kn_tensor *v, int r)
{
    int64_t s[KN_MAX_DIMS];
    for (int i = 0; i < r; i++)
        s[i] = 1;
    s[1] = kn_tensor_numel(v);
    return keep(l, kn_reshape(v, r, s));
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b) && ((a < 0) != (b < 0)) ? q - 1 : q;
}

/* ---------------------------------------------------------------- attributes
 * Read straight from the NodeProto, so the load-time checks and the
 * converters agree; the checks validate the types first. */
typedef Onnx__AttributeProto__AttributeType attr_type;
#define A_INT ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT
#define A_FLOAT ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT
#define A_STRING ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING
#define A_INTS ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS
#define A_FLOATS ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS
#define A_STRINGS ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS

static const Onnx__AttributeProto *pa(const Onnx__NodeProto *p, const char *name)
{
    for (size_t i = 0; i < p->n_attribute; i++)
        if (p->attribute[i]->name && !strcmp(p->attribute[i]->name, name)) return p->attribute[i];
    return NULL;
}

static int64_t pa_int(const Onnx__NodeProto *p, const char *name, int64_t def)
{
    const Onnx__AttributeProto *a = pa(p, name);
    return a && a->type == A_INT ? a->i : def;
}

static double pa_float(const Onnx__NodeProto *p, const char *name, double def)
{
    const Onnx__AttributeProto *a = pa(p, name);
    if (a && a->type == A_FLOAT) return a->f;
    if (a && a->type == A_INT) return (double)a->i;
    return def;
}

/* Copies up to max values; the count, or -1 when absent. */
static int pa_ints(const Onnx__NodeProto *p, const char *name, int64_t *out, int max)
{
    const Onnx__AttributeProto *a = pa(p, name);
    if (!a || a->type != A_INTS) return -1;
    for (size_t i = 0; i < a->n_ints && (int)i < max; i++)
        out[i] = a->ints[i];
    return a->n_ints > (size_t)INT32_MAX ? INT32_MAX : (int)a->n_ints;
}

static int pa_floats(const Onnx__NodeProto *p, const char *name, double *out, int max)
{
    const Onnx__AttributeProto *a = pa(p, name);
    if (!a || a->type != A_FLOATS) return -1;
    for (size_t i = 0; i < a->n_floats && (int)i < max; i++)
        out[i] = a->floats[i];
    return a->n_floats > (size_t)INT32_MAX ? INT32_MAX : (int)a->n_floats;
}

static void bin_str(const ProtobufCBinaryData *b, char *buf, size_t size)
{
    size_t len = b->len < size - 1 ? b->len : size - 1;
    if (len) memcpy(buf, b->data, len);
    buf[len] = 0;
}

static const char *pa_str(const Onnx__NodeProto *p, const char *name, const char *def, char *buf,
                          size_t size)
{
    const Onnx__AttributeProto *a = pa(p, name);
    if (!a || a->type != A_STRING) {
        snprintf(buf, size, "%s", def);
        return buf;
    }
    bin_str(&a->s, buf, size);
    return buf;
}

/* Index of s in a NULL-ended list, or -1. */
static int str_index(const char *s, const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (!strcmp(s, list[i])) return i;
    return -1;
}

static int str_index_nocase(const char *s, const char *const *list)
{
    for (int i = 0; list[i]; i++) {
        const char *a = s, *b = list[i];
        while (*a && *b && (*a | 32) == (*b | 32))
            a++, b++;
        if (!*a && !*b) return i;
    }
    return -1;
}

static const char *type_name(attr_type t)
{
    switch (t) {
    case A_INT:
        return "INT";
    case A_FLOAT:
        return "FLOAT";
    case A_STRING:
        return "STRING";
    case A_INTS:
        return "INTS";
    case A_FLOATS:
        return "FLOATS";
    case A_STRINGS:
        return "STRINGS";
    default:
        return "another type";
    }
}

typedef struct attr_spec {
    const char *name;
    attr_type type;
} attr_spec;

/* Every attribute named in spec has its type (FLOAT also takes INT). */
static bool check_types(const Onnx__NodeProto *p, const attr_spec *spec, char *why, size_t ws)
{
    for (size_t i = 0; i < p->n_attribute; i++) {
        const Onnx__AttributeProto *a = p->attribute[i];
        for (const attr_spec *s = spec; s->name; s++) {
            if (!a->name || strcmp(a->name, s->name)) continue;
            if (a->type == s->type || (s->type == A_FLOAT && a->type == A_INT)) break;
            snprintf(why, ws, "attribute '%s' is %s, expected %s", s->name, type_name(a->type),
                     type_name(s->type));
            return false;
        }
    }
    return true;
}

/* Fails the check when output i (and later ones) are used. */
static bool check_no_output(const Onnx__NodeProto *p, int i, const char *what, char *why, size_t ws)
{
    for (int k = i; (size_t)k < p->n_output; k++)
        if (proto_out_used(p, k)) {
            snprintf(why, ws, "output %d (%s) is not supported", k, what);
            return false;
        }
    return true;
}

/* ================================================================ windows */
enum { AP_NOTSET, AP_SAME_UPPER, AP_SAME_LOWER, AP_VALID };
static const char *const auto_pad_names[] = {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID", NULL};

static int auto_pad_of(const Onnx__NodeProto *p)
{
    char buf[32];
    pa_str(p, "auto_pad", "NOTSET", buf, sizeof buf);
    if (!buf[0]) return AP_NOTSET;
    return str_index(buf, auto_pad_names);
}

static bool check_auto_pad(const Onnx__NodeProto *p, char *why, size_t ws)
{
    if (auto_pad_of(p) >= 0) return true;
    char buf[32];
    snprintf(why, ws, "auto_pad '%s'", pa_str(p, "auto_pad", "", buf, sizeof buf));
    return false;
}

/* Attribute values are bounded so that size arithmetic cannot overflow. */
#define ATTR_LIMIT ((int64_t)1 << 30)
/* Most elements of a tensor whose size attributes decide (pads, scales,
 * output_shape): what a malformed model can make a converter allocate. */
#define MAX_MADE ((int64_t)1 << 31)

typedef struct win {
    int nsp;
    int64_t k[KN_MAX_DIMS], s[KN_MAX_DIMS], d[KN_MAX_DIMS], pb[KN_MAX_DIMS], pe[KN_MAX_DIMS];
} win;

static int64_t extent(const win *w, int i)
{
    return (w->k[i] - 1) * w->d[i] + 1;
}

static kn_status read_list(kn_onnx_node *n, const char *name, int count, int64_t lo, int64_t def,
                           int64_t *out)
{
    int64_t v[2 * KN_MAX_DIMS];
    int c = pa_ints(n->proto, name, v, 2 * KN_MAX_DIMS);
    if (c >= 0 && c != count)
        return kn__onnx_fail(n, KN_ERR_ARG, "%s has %d values, expected %d", name, c, count);
    for (int i = 0; i < count; i++) {
        out[i] = c >= 0 ? v[i] : def;
        if (out[i] < lo || out[i] > ATTR_LIMIT)
            return kn__onnx_fail(n, KN_ERR_ARG, "%s[%d] is %lld, expected %lld..2^30", name, i,
                                 (long long)out[i], (long long)lo);
    }
    return KN_OK;
}

/* Kernel (from the weights wk, or kernel_shape), strides, dilations and
 * pads of a node with nsp spatial dims; with in != NULL, auto_pad SAME_* /
 * VALID is resolved for inputs of those sizes. */
static kn_status win_read(kn_onnx_node *n, int nsp, const int64_t *in, const int64_t *wk, win *w)
{
    int64_t ks[KN_MAX_DIMS], pads[2 * KN_MAX_DIMS];
    w->nsp = nsp;
    int c = pa_ints(n->proto, "kernel_shape", ks, KN_MAX_DIMS);
    if (c >= 0 && c != nsp)
        return kn__onnx_fail(n, KN_ERR_SHAPE, "kernel_shape has %d values for %d spatial dims", c,
                             nsp);
    if (c < 0 && !wk) return kn__onnx_fail(n, KN_ERR_ARG, "kernel_shape is required");
    for (int i = 0; i < nsp; i++) {
        w->k[i] = wk ? wk[i] : ks[i];
        if (wk && c >= 0 && ks[i] != wk[i])
            return kn__onnx_fail(n, KN_ERR_SHAPE, "kernel_shape[%d] is %lld but W has %lld", i,
                                 (long long)ks[i], (long long)wk[i]);
        if (w->k[i] < 1 || w->k[i] > ATTR_LIMIT)
            return kn__onnx_fail(n, KN_ERR_ARG, "kernel size %lld in spatial dim %d",
                                 (long long)w->k[i], i);
    }
    kn_status s = read_list(n, "strides", nsp, 1, 1, w->s);
    if (!s) s = read_list(n, "dilations", nsp, 1, 1, w->d);
    if (!s) s = read_list(n, "pads", 2 * nsp, 0, 0, pads);
    if (s) return s;
    int mode = auto_pad_of(n->proto);
    if (mode < 0) return kn__onnx_fail(n, KN_ERR_ARG, "auto_pad is not a known mode");
    for (int i = 0; i < nsp; i++) {
        w->pb[i] = pads[i], w->pe[i] = pads[nsp + i];
        if (!in || mode == AP_NOTSET) continue;
        if (mode == AP_VALID) {
            w->pb[i] = w->pe[i] = 0;
            continue;
        }
        int64_t out = (in[i] + w->s[i] - 1) / w->s[i];
        int64_t total = (out - 1) * w->s[i] + extent(w, i) - in[i];
        if (total < 0) total = 0;
        if (mode == AP_SAME_UPPER)
            w->pb[i] = total / 2, w->pe[i] = total - total / 2;
        else
            w->pe[i] = total / 2, w->pb[i] = total - total / 2;
    }
    return KN_OK;
}

/* ================================================================ Conv */
static const attr_spec conv_attrs[] = {
    {"auto_pad", A_STRING},     {"dilations", A_INTS},    {"group", A_INT},
    {"kernel_shape", A_INTS},   {"pads", A_INTS},         {"strides", A_INTS},
    {"output_padding", A_INTS}, {"output_shape", A_INTS}, {NULL, 0}};

static bool conv_check(const Onnx__NodeProto *p, int opset, char *why, size_t ws)
{
    (void)opset;
    if (!check_types(p, conv_attrs, why, ws) || !check_auto_pad(p, why, ws)) return false;
    int64_t k[KN_MAX_DIMS];
    int c = pa_ints(p, "kernel_shape", k, KN_MAX_DIMS);
    if (c > 3) {
        snprintf(why, ws, "%d spatial dims (kiln convolves 1 to 3)", c);
        return false;
    }
    return true;
}

/* The conv geometry of x (N, C, spatial) and w (M, C/group, k...). */
static kn_status conv_setup(kn_onnx_node *n, kn_tensor *x, kn_tensor *w, bool transpose, win *wn,
                            int64_t *group)
{
    int r = rank(x);
    if (r < 3 || r > 5)
        return kn__onnx_fail(n, KN_ERR_UNSUPPORTED,
                             "input has %d dims; kiln convolves 1 to 3 spatial dims (3 to 5 dims)",
                             r);
    if (rank(w) != r)
        return kn__onnx_fail(n, KN_ERR_SHAPE, "W has %d dims, expected %d like the input", rank(w),
                             r);
    *group = pa_int(n->proto, "group", 1);
    if (*group < 1 || *group > ATTR_LIMIT)
        return kn__onnx_fail(n, KN_ERR_ARG, "group is %lld, expected >= 1", (long long)*group);
    return win_read(n, r - 2, transpose ? NULL : shp(x) + 2, shp(w) + 2, wn);
}

static kn_tensor *conv_nd(int nsp, bool transpose, kn_tensor *x, kn_tensor *w, kn_tensor *b,
                          const kn_conv_params *cp)
{
    if (transpose)
        return nsp == 1   ? kn_conv_transpose1d(x, w, b, cp)
               : nsp == 2 ? kn_conv_transpose2d(x, w, b, cp)
                          : kn_conv_transpose3d(x, w, b, cp);
    return nsp == 1   ? kn_conv1d(x, w, b, cp)
           : nsp == 2 ? kn_conv2d(x, w, b, cp)
                      : kn_conv3d(x, w, b, cp);
}

static kn_status conv_convert(kn_onnx_node *n)
{
    kn_status s = need_inputs(n, 2);
    if (s) return s;
    kn_tensor *x = n->in[0], *w = n->in[1], *b = in_at(n, 2);
    win wn;
    int64_t group;
    if ((s = conv_setup(n, x, w, false, &wn, &group))) return s;
    kn_conv_params cp = {.groups = group};
    for (int i = 0; i < wn.nsp; i++) {
        cp.stride[i] = wn.s[i], cp.dilation[i] = wn.d[i];
        cp.pad_begin[i] = wn.pb[i], cp.pad_end[i] = wn.pe[i];
    }
    kn_tensor *y = conv_nd(wn.nsp, false, x, w, b, &cp);
    if (!y) return failed(n);
    n->out[0] = y;
    return KN_OK;
}

/* ConvTranspose: the output is the full transposed convolution (size
 * F = s*(in-1) + ext per dim) cut to [pb, F + output_padding - pe); negative
 * pads (an output_shape larger than F) and output_padding >= stride add
 * zeros (plus bias) that kiln's op does not make. */
static kn_status conv_transpose_convert(kn_onnx_node *n)
{
    kn_status s = need_inputs(n, 2);
    if (s) return s;
    kn_tensor *x = n->in[0], *w = n->in[1], *b = in_at(n, 2);
    win wn;
    int64_t group;
    if ((s = conv_setup(n, x, w, true, &wn, &group))) return s;
    int nsp = wn.nsp, r = nsp + 2;
    int64_t op[KN_MAX_DIMS], os[KN_MAX_DIMS + 2];
    if ((s = read_list(n, "output_padding", nsp, 0, 0, op))) return s;
    int c = pa_ints(n->proto, "output_shape", os, KN_MAX_DIMS + 2);
    if (c >= 0 && c != nsp && c != nsp + 2)
        return kn__onnx_fail(n, KN_ERR_ARG, "output_shape has %d values, expected %d", c, nsp);
    const int64_t *oss = c == nsp + 2 ? os + 2 : os;
    int mode = auto_pad_of(n->proto);
    bool post = false;
    int64_t made = shp(x)[0] * shp(w)[1] * group;
    for (int i = 0; i < nsp; i++) {
        int64_t in = shp(x)[2 + i], full = wn.s[i] * (in - 1) + extent(&wn, i);
        if (c >= 0 || mode == AP_SAME_UPPER || mode == AP_SAME_LOWER) {
            int64_t out = c >= 0 ? oss[i] : in * wn.s[i];
            int64_t total = full + op[i] - out;
            if (mode == AP_SAME_UPPER)
                wn.pb[i] = floor_div(total, 2), wn.pe[i] = total - wn.pb[i];
            else
                wn.pe[i] = floor_div(total, 2), wn.pb[i] = total - wn.pe[i];
        } else if (mode == AP_VALID) {
            wn.pb[i] = wn.pe[i] = 0;
        }
        if (full + op[i] - wn.pb[i] - wn.pe[i] < 1)
            return kn__onnx_fail(n, KN_ERR_SHAPE, "output size %lld in spatial dim %d",
                                 (long long)(full + op[i] - wn.pb[i] - wn.pe[i]), i);
        if (op[i] >= wn.s[i] && op[i] >= wn.d[i])
            return kn__onnx_fail(n, KN_ERR_ARG,
                                 "output_padding[%d] is %lld, expected less than the stride or "
                                 "the dilation",
                                 i, (long long)op[i]);
        made *= full + op[i] - wn.pb[i] - wn.pe[i];
        if (made > MAX_MADE)
            return kn__onnx_fail(n, KN_ERR_SHAPE, "the output would have more than 2^31 elements");
        if (wn.pb[i] < 0 || wn.pe[i] < 0 || op[i] >= wn.s[i]) post = true;
    }
    kn_conv_params cp = {.groups = group};
    int64_t pads[2 * KN_MAX_DIMS] = {0};
    for (int i = 0; i < nsp; i++) {
        cp.stride[i] = wn.s[i], cp.dilation[i] = wn.d[i];
        if (!post) {
            cp.pad_begin[i] = wn.pb[i], cp.pad_end[i] = wn.pe[i], cp.output_padding[i] = op[i];
            continue;
        }
        cp.pad_begin[i] = wn.pb[i] > 0 ? wn.pb[i] : 0;
        cp.pad_end[i] = wn.pe[i] > op[i] ? wn.pe[i] - op[i] : 0;
        pads[2 * (2 + i)] = wn.pb[i] < 0 ? -wn.pb[i] : 0;
        pads[2 * (2 + i) + 1] = op[i] > wn.pe[i] ? op[i] - wn.pe[i] : 0;
    }
    if (!post) {
        kn_tensor *y = conv_nd(nsp, true, x, w, b, &cp);
        if (!y) return failed(n);
        n->out[0] = y;
        return KN_OK;
    }
    tmps l = {0};
    kn_tensor *y = keep(&l, conv_nd(nsp, true, x, w, NULL, &cp));
    y = keep(&l, y ? kn_pad(y, pads, KN_PAD_CONSTANT, 0) : NULL);
    if (y && b) y = keep(&l, kn_add(y, channel_view(&l, b, r)));
    s = y ? KN_OK : failed(n);
    set_out(n, 0, y);
    tmps_free(&l);
    return s;
}

/* ================================================================ pooling */
typedef enum pool_kind { POOL_MAX, POOL_AVG, POOL_LP } pool_kind;

typedef struct pool_job {
    pool_kind kind;
    win w;
    int64_t in[KN_MAX_DIMS], out[KN_MAX_DIMS];
    bool ceil_mode, include_pad;
    double p;       /* LpPool */
    bool want_idx;  /* MaxPool's Indices */
    bool col_major; /* storage_order 1 */
} pool_job;

/* ONNX's output size; -1 when the window does not fit. */
static int64_t pool_out(const win *w, int i, int64_t in, bool ceil_mode)
{
    int64_t span = in + w->pb[i] + w->pe[i] - extent(w, i);
    if (span < 0) return -1;
    return (ceil_mode ? (span + w->s[i] - 1) / w->s[i] : span / w->s[i]) + 1;
}

/* The output size kiln's pools give (PyTorch's rule: with ceil_mode the
 * last window must start inside the input or the left padding). */
static int64_t kiln_pool_out(const win *w, int i, int64_t in, bool ceil_mode)
{
    int64_t span = in + w->pb[i] + w->pe[i] - w->k[i], s = w->s[i];
    int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (out - 1) * s >= in + w->pb[i]) out--;
    return out;
}

/* True when kn_max_pool / kn_avg_pool compute exactly this job. */
static bool kiln_pool_fits(const pool_job *j)
{
    if (j->w.nsp > 3 || j->want_idx || j->kind == POOL_LP) return false;
    for (int i = 0; i < j->w.nsp; i++) {
        if (j->w.d[i] != 1 || j->w.pb[i] >= j->w.k[i] || j->w.pe[i] >= j->w.k[i]) return false;
        if (kiln_pool_out(&j->w, i, j->in[i], j->ceil_mode) != j->out[i]) return false;
    }
    return true;
}

static double dtype_lowest(kn_dtype dt)
{
    switch (dt) {
    case KN_U8:
        return 0;
    case KN_I8:
        return -128;
    case KN_I32:
        return (double)INT32_MIN;
    case KN_I64:
        return (double)INT64_MIN;
    case KN_BOOL:
        return 0;
    default:
        return -INFINITY;
    }
}

/* The flat input index of every position of the padded grid (1, 1, L...),
 * -1 in the padding. */
static kn_tensor *index_grid(tmps *l, const pool_job *j, const int64_t *len)
{
    int nsp = j->w.nsp;
    int64_t shape[KN_MAX_DIMS] = {1, 1}, total = 1;
    for (int i = 0; i < nsp; i++)
        shape[2 + i] = len[i], total *= len[i];
    kn_tensor *t = keep(l, kn_tensor_empty(KN_I64, nsp + 2, shape));
    if (!t) return NULL;
    int64_t *v = kn_tensor_data(t);
    for (int64_t f = 0; f < total; f++) {
        int64_t rem = f, flat = 0, mul = 1, q[KN_MAX_DIMS];
        bool pad = false;
        for (int i = nsp - 1; i >= 0; i--) {
            q[i] = rem % len[i] - j->w.pb[i], rem /= len[i];
            if (q[i] < 0 || q[i] >= j->in[i]) pad = true;
        }
        if (!j->col_major)
            for (int i = nsp - 1; i >= 0; i--)
                flat += q[i] * mul, mul *= j->in[i];
        else
            for (int i = 0; i < nsp; i++)
                flat += q[i] * mul, mul *= j->in[i];
        v[f] = pad ? -1 : flat;
    }
    return t;
}

/* The divisor of each average window (1, 1, out...): elements inside the
 * input, plus the padding when include_pad (never the ceil_mode overhang). */
static kn_tensor *avg_divisor(tmps *l, const pool_job *j, kn_dtype dt, bool *uniform)
{
    int nsp = j->w.nsp;
    int64_t shape[KN_MAX_DIMS] = {1, 1}, total = 1, cnt_off[KN_MAX_DIMS + 1] = {0};
    for (int i = 0; i < nsp; i++)
        shape[2 + i] = j->out[i], total *= j->out[i], cnt_off[i + 1] = cnt_off[i] + j->out[i];
    int64_t *cnt = kn_alloc(sizeof(int64_t) * (size_t)(cnt_off[nsp] ? cnt_off[nsp] : 1));
    double *v = kn_alloc(sizeof(double) * (size_t)total);
    kn_tensor *t = NULL;
    if (!cnt || !v) goto done;
    int64_t full = 1;
    for (int i = 0; i < nsp; i++) {
        full *= j->w.k[i];
        for (int64_t o = 0; o < j->out[i]; o++) {
            int64_t c = 0, lo = j->include_pad ? -j->w.pb[i] : 0;
            int64_t hi = j->include_pad ? j->in[i] + j->w.pe[i] : j->in[i];
            for (int64_t k = 0; k < j->w.k[i]; k++) {
                int64_t pos = o * j->w.s[i] - j->w.pb[i] + k * j->w.d[i];
                c += pos >= lo && pos < hi;
            }
            cnt[cnt_off[i] + o] = c;
        }
    }
    *uniform = true;
    for (int64_t f = 0; f < total; f++) {
        int64_t rem = f;
        double prod = 1;
        for (int i = nsp - 1; i >= 0; i--)
            prod *= (double)cnt[cnt_off[i] + rem % j->out[i]], rem /= j->out[i];
        v[f] = prod;
        if (prod != (double)full) *uniform = false;
    }
    t = tensor_f64(l, dt, nsp + 2, shape, v);
done:
    kn_free(cnt);
    kn_free(v);
    return t;
}

/* Any window op composed of strided slices of the padded input. Windows
 * are boxes, so max and sum are separable: one spatial dim at a time, one
 * slice per kernel offset, combined by maximum (tracking the argmax for
 * Indices: the first maximum in row-major order, as ONNX Runtime picks it)
 * or sum. */
static kn_status pool_compose(kn_onnx_node *n, tmps *l, kn_tensor *x, const pool_job *j,
                              kn_tensor **y, kn_tensor **idx)
{
    int nsp = j->w.nsp, r = nsp + 2;
    kn_dtype dt = kn_tensor_dtype(x);
    int64_t pads[2 * KN_MAX_DIMS] = {0}, len[KN_MAX_DIMS], taps = 0;
    for (int i = 0; i < nsp; i++) {
        int64_t need = (j->out[i] - 1) * j->w.s[i] + extent(&j->w, i);
        len[i] = j->in[i] + j->w.pb[i] + j->w.pe[i];
        if (need > len[i]) len[i] = need;
        pads[2 * (2 + i)] = j->w.pb[i];
        pads[2 * (2 + i) + 1] = len[i] - j->in[i] - j->w.pb[i];
        taps += j->w.k[i];
    }
    int64_t made = shp(x)[0] * shp(x)[1];
    for (int i = 0; i < nsp; i++)
        made = made > MAX_MADE ? made : made * len[i];
    if (made > MAX_MADE)
        return kn__onnx_fail(n, KN_ERR_SHAPE,
                             "the padded input would have more than 2^31 elements");
    if (taps > 4096)
        return kn__onnx_fail(n, KN_ERR_UNSUPPORTED,
                             "kernel sizes summing to %lld (more than 4096) need kiln's pool ops, "
                             "which do not fit these attributes",
                             (long long)taps);
    kn_tensor *src = x;
    if (j->kind == POOL_LP) {
        kn_tensor *a = keep(l, kn_abs(x));
        src = j->p == 1   ? a
              : j->p == 2 ? keep(l, kn_square(x))
                          : keep(l, a ? kn_pow(a, scalar(l, dt, j->p)) : NULL);
    }
    kn_tensor *acc = src ? keep(l, kn_pad(src, pads, KN_PAD_CONSTANT,
                                          j->kind == POOL_MAX ? dtype_lowest(dt) : 0))
                         : NULL;
    kn_tensor *best_idx = j->want_idx ? index_grid(l, j, len) : NULL;
    if (!acc || (j->want_idx && !best_idx)) return failed(n);
    for (int i = 0; i < nsp; i++) {
        kn_tensor *cur = acc, *cur_idx = best_idx;
        int64_t stop0 = (j->out[i] - 1) * j->w.s[i] + 1;
        acc = NULL;
        for (int64_t k = 0; k < j->w.k[i]; k++) {
            int64_t off = k * j->w.d[i];
            kn_tensor *v = keep(l, kn_slice(cur, 2 + i, off, off + stop0, j->w.s[i]));
            kn_tensor *vi =
                cur_idx ? keep(l, kn_slice(cur_idx, 2 + i, off, off + stop0, j->w.s[i])) : NULL;
            if (!v || (cur_idx && !vi)) return failed(n);
            if (!acc) {
                acc = v, best_idx = vi;
            } else if (j->kind == POOL_MAX) {
                if (cur_idx) {
                    kn_tensor *take = keep(l, kn_gt(v, acc));
                    best_idx = keep(l, take ? kn_where(take, vi, best_idx) : NULL);
                }
                acc = keep(l, kn_maximum(acc, v));
            } else {
                acc = keep(l, kn_add(acc, v));
            }
            if (!acc || (cur_idx && !best_idx)) return failed(n);
        }
    }
    if (j->kind == POOL_AVG) {
        bool uniform;
        kn_tensor *div = avg_divisor(l, j, dt, &uniform);
        if (!div) return failed(n);
        double full = 1;
        for (int i = 0; i < nsp; i++)
            full *= (double)j->w.k[i];
        acc = keep(l, uniform ? kn_mul_scalar(acc, 1.0 / full) : kn_div(acc, div));
    } else if (j->kind == POOL_LP && j->p != 1) {
        acc = keep(l, j->p == 2 ? kn_sqrt(acc) : kn_pow(acc, scalar(l, dt, 1.0 / j->p)));
    }
    if (!acc) return failed(n);
    *y = acc;
    if (j->want_idx) {
        int64_t N = shp(x)[0], C = shp(x)[1], per = 1, oshape[KN_MAX_DIMS];
        for (int i = 0; i < nsp; i++)
            per *= j->in[i];
        for (int i = 0; i < r; i++)
            oshape[i] = i < 2 ? shp(x)[i] : 1;
        kn_tensor *off = keep(l, kn_tensor_empty(KN_I64, r, oshape));
        if (!off) return failed(n);
        int64_t *ov = kn_tensor_data(off);
        for (int64_t i = 0; i < N * C; i++)
            ov[i] = i * per;
        *idx = keep(l, kn_add(best_idx, off));
        if (!*idx) return failed(n);
    }
    return KN_OK;
}

static const attr_spec pool_attrs[] = {
    {"auto_pad", A_STRING},   {"ceil_mode", A_INT},     {"count_include_pad", A_INT},
    {"dilations", A_INTS},    {"kernel_shape", A_INTS}, {"pads", A_INTS},
    {"storage_order", A_INT}, {"strides", A_INTS},      {NULL, 0}};

static bool pool_check(const Onnx__NodeProto *p, int opset, char *why, size_t ws)
{
    (void)opset;
    if (!check_types(p, pool_attrs, why, ws) || !check_auto_pad(p, why, ws)) return false;
    if (!pa(p, "kernel_shape")) {
        snprintf(why, ws, "kernel_shape is missing");
        return false;
    }
    int64_t so = pa_int(p, "storage_order", 0);
    if (so != 0 && so != 1) {
        snprintf(why, ws, "storage_order %lld", (long long)so);
        return false;
    }
    return true;
}

static kn_status pool_convert(kn_onnx_node *n, pool_kind kind)
{
    kn_status s = need_inputs(n, 1);
    if (s) return s;
    kn_tensor *x = n->in[0];
    int r = rank(x);
    if (r < 3)
        return kn__onnx_fail(n, KN_ERR_SHAPE, "input has %d dims, expected >= 3 (N, C, spatial)",
                             r);
    pool_job j = {.kind = kind};
    if ((s = win_read(n, r - 2, shp(x) + 2, NULL, &j.w))) return s;
    j.ceil_mode = pa_int(n->proto, "ceil_mode", 0) != 0;
    j.include_pad = pa_int(n->proto, "count_include_pad", 0) != 0;
    j.want_idx = kind == POOL_MAX && out_used(n, 1);
    j.col_major = pa_int(n->proto, "storage_order", 0) == 1;
    if (kind == POOL_LP) {
        j.p = pa_float(n->proto, "p", 2);
        if (!(j.p > 0) || !isfinite(j.p))
            return kn__onnx_fail(n, KN_ERR_ARG, "p is %g, expected > 0", j.p);
    }
    for (int i = 0; i < j.w.nsp; i++) {
        j.in[i] = shp(x)[2 + i];
        if (j.w.pb[i] >= extent(&j.w, i) || j.w.pe[i] >= extent(&j.w, i))
            return kn__onnx_fail(n, KN_ERR_UNSUPPORTED,
                                 "pads (%lld, %lld) in spatial dim %d are not smaller than the "
                                 "window (extent %lld): windows would lie wholly in the padding",
                                 (long long)j.w.pb[i], (long long)j.w.pe[i], i,
                                 (long long)extent(&j.w, i));
        j.out[i] = pool_out(&j.w, i, j.in[i], j.ceil_mode);
        if (j.out[i] < 1)
            return kn__onnx_fail(n, KN_ERR_SHAPE,
                                 "the window (extent %lld) is larger than the padded input "
                                 "(%lld) in spatial dim %d",
                                 (long long)extent(&j.w, i),
                                 (long long)(j.in[i] + j.w.pb[i] + j.w.pe[i]), i);
    }
    kn_dtype dt = kn_tensor_dtype(x);
    if (kind != POOL_MAX && !kn_dtype_is_float(dt))
        return kn__onnx_fail(n, KN_ERR_DTYPE, "input has dtype %s, expected a float dtype",
                             kn_dtype_name(dt));
    tmps l = {0};
    kn_tensor *y = NULL, *idx = NULL;
    if (kiln_pool_fits(&j) && (kn_dtype_is_float(dt) || dt == KN_U8 || dt == KN_I8)) {
        kn_pool_params pp = {.ceil_mode = j.ceil_mode, .count_include_pad = j.include_pad};
        for (int i = 0; i < j.w.nsp; i++) {
            pp.kernel[i] = j.w.k[i], pp.stride[i] = j.w.s[i];
            pp.pad_begin[i] = j.w.pb[i], pp.pad_end[i] = j.w.pe[i];
        }
        kn_tensor *xf = as_dtype(&l, x, kn_dtype_is_float(dt) ? dt : KN_F32);
        y = keep(&l, !xf ? NULL : kind == POOL_MAX ? kn_max_pool(xf, &pp) : kn_avg_pool(xf, &pp));
        y = as_dtype(&l, y, dt);
        s = y ? KN_OK : failed(n);
    } else {
        s = pool_compose(n, &l, x, &j, &y, &idx);
    }
    if (!s) {
        set_out(n, 0, y);
        set_out(n, 1, idx);
    }
    tmps_free(&l);
    return s;
}

static kn_status max_pool_convert(kn_onnx_node *n)
{
    return pool_convert(n, POOL_MAX);
}

static kn_status avg_pool_convert(kn_onnx_node *n)
{
    return pool_convert(n, POOL_AVG);
}

static kn_status lp_pool_convert(kn_onnx_node *n)
{
    return pool_convert(n, POOL_LP);
}

static bool check_p(const Onnx__NodeProto *p, char *why, size_t ws)
{
    static const attr_spec spec[] = {{"p", A_FLOAT}, {NULL, 0}};
    if (!check_types(p, spec, why, ws)) return false;
    double v = pa_float(p, "p", 2);
    if (!(v > 0) || !isfinite(v)) {
        snprintf(why, ws, "p = %g (expected > 0)", v);
        return false;
    }
    return true;
}

static bool lp_pool_check(const Onnx__NodeProto *p, int opset, char *why, size_t ws)
{
    return pool_check(p, opset, why, ws) && check_p(p, why, ws);
}

/* Global pools reduce every spatial dim and keep them as 1s. */
static kn_status global_pool_convert(kn_onnx_node *n, pool_kind kind)
{
    kn_status s = need_inputs(n, 1);
    if (s) return s;
    kn_tensor *x = n->in[0];
    int r = rank(x), axes[KN_MAX_DIMS];
    if (r < 2)
        return kn__onnx_fail(n, KN_ERR_SHAPE, "input has %d dims, expected >= 2 (N, C, ...)", r);
    kn_dtype dt = kn_tensor_dtype(x);
    if (!kn_dtype_is_float(dt))
        return kn__onnx_fail(n, KN_ERR_DTYPE, "input has dtype %s, expected a float dtype",
                             kn_dtype_name(dt));
    for (int i = 2; i < r; i++)
        axes[i - 2] = i;
    tmps l = {0};
    kn_tensor *y = NULL;
    if (r == 2) {
        y = x;
    } else if (kind == POOL_LP) {
        double p = pa_float(n->proto, "p", 2);
        if (!(p > 0) || !isfinite(p)) {
            s = kn__onnx_fail(n, KN_ERR_ARG, "p is %g, expected > 0", p);
            goto done;
        }
        kn_tensor *a = p == 2   ? keep(&l, kn_square(x))
                       : p == 1 ? keep(&l, kn_abs(x))
                                : keep(&l, kn_pow(keep(&l, kn_abs(x)), scalar(&l, dt, p)));
        y = keep(&l, a ? kn_sum(a, r - 2, axes, true) : NULL);
        if (y && p == 2)
            y = keep(&l, kn_sqrt(y));
        else if (y && p != 1)
            y = keep(&l, kn_pow(y, scalar(&l, dt, 1.0 / p)));
    } else if (r <= 5) {
        y = keep(&l, kind == POOL_MAX ? kn_global_max_pool(x, KN_LAYOUT_NCHW)
                                      : kn_global_avg_pool(x, KN_LAYOUT_NCHW));
    } else {
        y = keep(&l,
                 kind == POOL_MAX ? kn_max(x, r - 2, axes, true) : kn_mean(x, r - 2, axes, true));
    }
    s = y ? KN_OK : failed(n);
    set_out(n, 0, y);
done:
    tmps_free(&l);
    return s;
}

static kn_status global_avg_pool_convert(kn_onnx_node *n)
{
    return global_pool_convert(n, POOL_AVG);
}

static kn_status global_max_pool_convert(kn_onnx_node *n)
{
    return global_pool_convert(n, POOL_MAX);
}

static kn_status global_lp_pool_convert(kn_onnx_node *n)
{
    return global_pool_convert(n, POOL_LP);
}

static bool global_lp_pool_check(const Onnx__NodeProto *p, int opset, char *why, size_t ws)
{
    (void)opset;
    return check_p(p, why, ws);
}

/* MaxUnpool: X's values scattered at the flat indices I into zeros of the
 * output shape (N, C, (in-1)*stride + kernel - pads) or output_shape. */
static kn_status max_unpool_convert(kn_onnx_node *n)
{
    kn_status s = need_inputs(n, 2);
    if (s) return s;
    kn_tensor *x = n->in[0], *ind = n->in[1];
    int r = rank(x);
    if (r < 3 || rank(ind) != r)
        return kn__onnx_fail(n, KN_ERR_SHAPE, "X has %d dims and I %d, expected the same >= 3", r,
                             rank(ind));
    win w;
    if ((s = win_read(n, r - 2, NULL, NULL, &w))) return s;
    int64_t out[KN_MAX_DIMS], want[KN_MAX_DIMS], pads[2 * KN_MAX_DIMS] = {0};
    out[0] = shp(x)[0], out[1] = shp(x)[1];
    for (int i = 0; i < r - 2; i++)
        out[2 + i] = (shp(x)[2 + i] - 1) * w.s[i] + w.k[i] - w.pb[i] - w.pe[i];
    bool pad = false;
    if (in_at(n, 2)) {
        /* the indices address the default shape; a larger output_shape
         * adds zeros at the end (ONNX's reference) */
        int cnt;
        if ((s = kn__onnx_const_ints(n, 2, want, KN_MAX_DIMS, &cnt))) return s;
        if (cnt != r)
            return kn__onnx_fail(n, KN_ERR_SHAPE, "output_shape has %d values, expected %d", cnt,
                                 r);
        for (int i = 0; i < r; i++) {
            if (want[i] < out[i] || (i < 2 && want[i] != out[i]))
                return kn__onnx_fail(n, KN_ERR_SHAPE, "output_shape[%d] is %lld, expected >= %lld",
                                     i, (long long)want[i], (long long)out[i]);
            pads[2 * i + 1] = want[i] - out[i];
            pad |= want[i] != out[i];
        }
    }
    int64_t total = 1;
    for (int i = 0; i < r; i++) {
        if (out[i] < 1 || out[i] > MAX_MADE / total)
            return kn__onnx_fail(n, KN_ERR_SHAPE, "output dim %d is %lld", i, (long long)out[i]);
        total *= out[i];
    }
    tmps l = {0};
    int64_t flat = -1;
    kn_tensor *z = keep(&l, kn_tensor_zeros(kn_tensor_dtype(x), 1, &total));
    kn_tensor *xf = keep(&l, kn_reshape(x, 1, &flat));
    kn_tensor *jf = keep(&l, kn_reshape(ind, 1, &flat));
    kn_tensor *y = z && xf && jf ? keep(&l, kn_scatter(z, 0, jf, xf)) : NULL;
    y = y ? keep(&l, kn_reshape(y, r, out)) : NULL;
    if (y && pad) y = keep(&l, kn_pad(y, pads, KN_PAD_CONSTANT, 0));
    s = y ? KN_OK : failed(n);
    set_out(n, 0, y);
    tmps_free(&l);
    return s;
}

/* ================================================================ normalization */
static const attr_spec bn_attrs[] = {{"epsilon", A_FLOAT}, {"momentum", A_FLOAT},
                                     {"spatial", A_INT},   {"training_mode", A_INT},
                                     {"is_test", A_INT},   {NULL, 0}};

static bool bn_check(const Onnx__NodeProto *p, int opset, char *why, size_t ws)
{
    if (!check_types(p, bn_attrs, why, ws)) return false;
    if (opset < 14) return check_no_output(p, 1, "training statistics", why, ws);
    if (!pa_int(p, "training_mode", 0))
        return check_no_output(p, 1, "running statistics without training_mode", why, ws);
    return true;
}

static kn_status bn_convert(kn_onnx_node *n)
{
    kn_status s = need_inputs(n, 5);
    if (s) return s;
    kn_tensor *x = n->in[0];
    kn_dtype dt = kn_tensor_dtype(x);
    int r = rank(x);
    if (!kn_dtype_is_float(dt))
        return kn__onnx_fail(n, KN_ERR_DTYPE, "X has dtype %s, expected a float dtype",
                             kn_dtype_name(dt));
    if (r < 2) return kn__onnx_fail(n, KN_ERR_SHAPE, "X has %d dims, expected >= 2", r);
    double eps = pa_float(n->proto, "epsilon", 1e-5), mom = pa_float(n->proto, "momentum", 0.9);
    bool training = n->opset >= 14 && pa_int(n->proto, "training_mode", 0);
    bool spatial = n->opset >= 9 || pa_int(n->proto, "spatial", 1);
    tmps l = {0};
    kn_tensor *p[4], *y = NULL, *rm = NULL, *rv = NULL;
    for (int i = 0; i < 4; i++)
        p[i] = as_dtype(&l, n->in[1 + i], dt);
    if (!p[0] || !p[1] || !p[2] || !p[3]) goto out;
    if (!training && spatial) {
        y = keep(&l, kn_batch_norm(x, p[0], p[1], p[2], p[3], false, 0.1, eps, KN_LAYOUT_NCHW));
    } else if (!training) {
        /* per-activation statistics: parameters shaped like x without N */
        kn_tensor *q[4];
        for (int i = 0; i < 4; i++)
            q[i] = rank(p[i]) == 1 && r > 2 && kn_tensor_numel(p[i]) == shp(x)[1]
                       ? channel_view(&l, p[i], r)
                       : p[i];
        kn_tensor *inv = keep(&l, kn_rsqrt(keep(&l, kn_add_scalar(q[3], eps))));
        kn_tensor *d = keep(&l, kn_sub(x, q[2]));
        y = keep(&l, kn_add(keep(&l, kn_mul(d, keep(&l, kn_mul(inv, q[0])))), q[1]));
    } else {
        int axes[KN_MAX_DIMS], na = 0;
        for (int i = 0; i < r; i++)
            if (i != 1) axes[na++] = i;
        kn_tensor *mu = keep(&l, kn_mean(x, na, axes, true));
        kn_tensor *var = keep(&l, kn_var(x, na, axes, false, true));
        kn_tensor *inv = var ? keep(&l, kn_rsqrt(keep(&l, kn_add_scalar(var, eps)))) : NULL;
        kn_tensor *g = inv ? keep(&l, kn_mul(inv, channel_view(&l, p[0], r))) : NULL;
        kn_tensor *d = mu ? keep(&l, kn_sub(x, mu)) : NULL;
        y = d && g ? keep(&l, kn_add(keep(&l, kn_mul(d, g)), channel_view(&l, p[1], r))) : NULL;
        int64_t c = shp(x)[1];
        kn_tensor *muf = mu ? keep(&l, kn_reshape(mu, 1, &c)) : NULL;
        kn_tensor *varf = var ? keep(&l, kn_reshape(var, 1, &c)) : NULL;
        if (muf && varf) {
            rm = keep(&l, kn_add(keep(&l, kn_mul_scalar(p[2], mom)),
                                 keep(&l, kn_mul_scalar(muf, 1 - mom))));
            rv = keep(&l, kn_add(keep(&l, kn_mul_scalar(p[3], mom)),
                                 keep(&l, kn_mul_scalar(varf, 1 - mom))));
            rm = as_dtype(&l, rm, kn_tensor_dtype(n->in[3]));
            rv = as_dtype(&l, rv, kn_tensor_dtype(n->in[4]));
        }
        if (!rm || !rv) y = NULL;
    }
out:
    s = y ? KN_OK : failed(n);
    if (!s) {
        set_out(n, 0, y);
        set_out(n, 1, rm);
        set_out(n, 2, rv);
    }
    tmps_free(&l);
    return s;
}

static kn_status instance_norm_convert(kn_onnx_node *n)
{
    kn_status s = need_inputs(n, 3);
    if (s) return s;
    kn_tensor *x = n->in[0];
    kn_dtype dt = kn_tensor_dtype(x);
    tmps l = {0};
    kn_tensor *g = as_dtype(&l, n->in[1], dt), *b = as_dtype(&l, n->in[2], dt);
    kn_tensor *y =
        g && b ? keep(&l, kn_instance_norm(x, g, b, pa_float(n->proto, "epsilon", 1e-5))) : NULL;
    s = y ? KN_OK : failed(n);
    set_out(n, 0, y);
    tmps_free(&l);
    return s;
}

static const attr_spec ln_attrs[] = {
    {"axis", A_INT}, {"epsilon", A_FLOAT}, {"stash_type", A_INT}, {NULL, 0}};

static bool ln_check(const Onnx__NodeProto *p, int opset, char *why, size_t ws)
{
    (void)opset;
    if (!check_types(p, ln_attrs, why, ws)) return false;
    kn_dtype dt;
    int64_t st = pa_int(p, "stash_type", 1);
    if (!kn__onnx_dtype((int32_t)st, &dt) || !kn_dtype_is_float(dt)) {
        snprintf(why, ws, "stash_type %lld", (long long)st);
        return false;
    }
    return true;
}

/* LayerNormalization (17): over dims axis..r-1, in the stash precision. */
static kn_status ln_convert(kn_onnx_node *n)
{
    kn_status s = need_inputs(n, 2);
    if (s) return s;
    kn_tensor *x = n->in[0], *sc = n->in[1], *b = in_at(n, 2);
    int r = rank(x), axis;
    if ((s = kn__onnx_axis(n, pa_int(n->proto, "axis", -1), r, &axis))) return s;
    int nax = r - axis, axes[KN_MAX_DIMS];
    for (int i = 0; i < nax; i++)
        axes[i] = axis + i;
    double eps = pa_float(n->proto, "epsilon", 1e-5);
    kn_dtype dt = kn_tensor_dtype(x), st;
    kn__onnx_dtype((int32_t)pa_int(n->proto, "stash_type", 1), &st);
    kn_dtype cdt = (dt == KN_F16 || dt == KN_BF16) && st != dt ? KN_F32 : dt;
    const int64_t *tail = shp(x) + axis;
    tmps l = {0};
    kn_tensor *xs = as_dtype(&l, x, cdt), *p[2] = {sc, b}, *y = NULL, *mean = NULL, *inv = NULL;
    for (int i = 0; i < 2; i++) {
        if (!p[i]) continue;
        if (rank(p[i]) != nax || memcmp(shp(p[i]), tail, sizeof(int64_t) * (size_t)nax))
            p[i] = keep(&l, kn_contiguous(keep(&l, kn_expand(p[i], nax, tail))));
        p[i] = as_dtype(&l, p[i], cdt);
        if (!p[i]) goto out;
    }
    y = xs ? as_dtype(&l, keep(&l, kn_layer_norm(xs, nax, p[0], p[1], eps)), dt) : NULL;
    if (y && (out_used(n, 1) || out_used(n, 2))) {
        mean = as_dtype(&l, keep(&l, kn_mean(xs, nax, axes, true)), st);
        kn_tensor *var = keep(&l, kn_var(xs, nax, axes, false, true));
        inv = var ? as_dtype(&l, keep(&l, kn_rsqrt(keep(&l, kn_add_scalar(var, eps)))), st) : NULL;
        if (!mean || !inv) y = NULL;
    }
out:
    s = y ? KN_OK : failed(n);
    if (!s) {
        set_out(n, 0, y);
        set_out(n, 1, mean);
        set_out(n, 2, inv);
    }
    tmps_free(&l);
    return s;
}

static const attr_spec lrn_attrs[] = {
    {"alpha", A_FLOAT}, {"beta", A_FLOAT}, {"bias", A_FLOAT}, {"size", A_INT}, {NULL, 0}};

static bool lrn_check(const Onnx__NodeProto *p, int opset, char *why, size_t ws)
{
    (void)opset;
    if (!check_types(p, lrn_attrs, why, ws)) return false;
    int64_t size = pa_int(p, "size", 0);
    if (size < 1 || size > ATTR_LIMIT) {
        snprintf(why, ws, "size %lld (expected >= 1)", (long long)size);
        return false;
    }
    return true;
}

/* LRN: y = x / (bias + alpha/size * sum of x^2 over the channel window
 * [c - floor((size-1)/2), c + ceil((size-1)/2)])^beta; the window sum is an
 * average pool over (N, 1, C, rest) times size. */
static kn_status lrn_convert(kn_onnx_node *n)
{
    kn_status s = need_inputs(n, 1);
    if (s) return s;
    kn_tensor *x = n->in[0];
    int r = rank(x);
    kn_dtype dt = kn_tensor_dtype(x);
    if (r < 2) return kn__onnx_fail(n, KN_ERR_SHAPE, "X has %d dims, expected >= 2", r);
    int64_t size = pa_int(n->proto, "size", 1);
    double alpha = pa_float(n->proto, "alpha", 1e-4), beta = pa_float(n->proto, "beta", 0.75);
    double bias = pa_float(n->proto, "bias", 1.0);
    int64_t rest = 1, s4[4];
    for (int i = 2; i < r; i++)
        rest *= shp(x)[i];
    s4[0] = shp(x)[0], s4[1] = 1, s4[2] = shp(x)[1], s4[3] = rest;
    int64_t lo = (size - 1) / 2, hi = size - 1 - lo;
    tmps l = {0};
    kn_tensor *sq = keep(&l, kn_square(x)), *sum = NULL;
    if (size <= shp(x)[1] + lo + hi && kn_dtype_is_float(dt)) {
        kn_pool_params pp = {.kernel = {size, 1},
                             .stride = {1, 1},
                             .pad_begin = {lo, 0},
                             .pad_end = {hi, 0},
                             .count_include_pad = true};
        kn_tensor *v = sq ? keep(&l, kn_reshape(sq, 4, s4)) : NULL;
        kn_tensor *a = v ? keep(&l, kn_avg_pool(v, &pp)) : NULL;
        sum = a ? keep(&l, kn_reshape(a, r, shp(x))) : NULL;
        sum = sum ? keep(&l, kn_mul_scalar(sum, (double)size)) : NULL;
    }
    kn_tensor *den =
        sum ? keep(&l, kn_add_scalar(keep(&l, kn_mul_scalar(sum, alpha / (double)size)), bias))
            : NULL;
    den = den ? keep(&l, kn_pow(den, scalar(&l, dt, beta))) : NULL;
    kn_tensor *y = den ? keep(&l, kn_div(x, den)) : NULL;
    s = y ? KN_OK : failed(n);
    set_out(n, 0, y);
    tmps_free(&l);
    return s;
}

/* MeanVarianceNormalization: (X - E[X]) / (sqrt(E[X^2] - E[X]^2) + 1e-9),
 * ONNX's function body. */
static kn_status mvn_convert(kn_onnx_node *n)
{
    kn_status s = need_inputs(n, 1);
    if (s) return s;
    kn_tensor *x = n->in[0];
    int r = rank(x), axes[KN_MAX_DIMS];
    int64_t av[KN_MAX_DIMS] = {0, 2, 3};
    int na = pa_ints(n->proto, "axes", av, KN_MAX_DIMS);
    if (na < 0) na = 3;
    if (na > r) return kn__onnx_fail(n, KN_ERR_ARG, "%d axes for %d dims", na, r);
    for (int i = 0; i < na; i++)
        if ((s = kn__onnx_axis(n, av[i], r, &axes[i]))) return s;
    tmps l = {0};
    kn_tensor *mu = keep(&l, kn_mean(x, na, axes, true));
    kn_tensor *sq = keep(&l, kn_square(x));
    kn_tensor *ex2 = sq ? keep(&l, kn_mean(sq, na, axes, true)) : NULL;
    kn_tensor *var = ex2 && mu ? keep(&l, kn_sub(ex2, keep(&l, kn_square(mu)))) : NULL;
    kn_tensor *sd = var ? keep(&l, kn_add_scalar(keep(&l, kn_sqrt(var)), 1e-9)) : NULL;
    kn_tensor *y = sd ? keep(&l, kn_div(keep(&l, kn_sub(x, mu)), sd)) : NULL;
    s = y ? KN_OK : failed(n);
    set_out(n, 0, y);
    tmps_free(&l);
    return s;
}

static bool lp_norm_check(const Onnx__NodeProto *p, int opset, char *why, size_t ws)
{
    static const attr_spec spec[] = {{"axis", A_INT}, {"p", A_INT}, {NULL, 0}};
    (void)opset;
    if (!check_types(p, spec, why, ws)) return false;
    int64_t pv = pa_int(p, "p", 2);
    if (pv != 1 && pv != 2) {
        snprintf(why, ws, "p = %lld (ONNX allows 1 or 2)", (long long)pv);
        return false;
    }
    return true;
}

static kn_status lp_norm_convert(kn_onnx_node *n)
{
    kn_status s = need_inputs(n, 1);
    if (s) return s;
    kn_tensor *x = n->in[0];
    int axis;
    if ((s = kn__onnx_axis(n, pa_int(n->proto, "axis", -1), rank(x), &axis))) return s;
    tmps l = {0};
    kn_tensor *nrm = keep(&l, kn_norm(x, (int)pa_int(n->proto, "p", 2), 1, &axis, true));
    kn_tensor *y = nrm ? keep(&l, kn_div(x, nrm)) : NULL;
    s = y ? KN_OK : failed(n);
    set_out(n, 0, y);
    tmps_free(&l);
    return s;
}

/* ================================================================ Gemm */
static bool gemm_check(const Onnx__NodeProto *p, int opset, char *why, size_t ws)
{
    static const attr_spec spec[] = {{"alpha", A_FLOAT}, {"beta", A_FLOAT},    {"transA", A_INT},
                                     {"transB", A_INT},  {"broadcast", A_INT}, {NULL, 0}};
    (void)opset;
    return check_types(p, spec, why, ws);
}

/* Y = alpha * A' B' + beta * C; kn_linear when it is a plain x W^T + b. */
static kn_status gemm_convert(kn_onnx_node *n)
{
    kn_status s = need_inputs(n, 2);
    if (s) return s;
    kn_tensor *a = n->in[0], *b = n->in[1], *c = in_at(n, 2);
    double alpha = pa_float(n->proto, "alpha", 1), beta = pa_float(n->proto, "beta", 1);
    bool ta = pa_int(n->proto, "transA", 0) != 0, tb = pa_int(n->proto, "transB", 0) != 0;
    if (rank(a) != 2 || rank(b) != 2)
        return kn__onnx_fail(n, KN_ERR_SHAPE, "A has %d dims and B %d, expected 2 each", rank(a),
                             rank(b));
    int64_t nn = shp(b)[tb ? 0 : 1];
    tmps l = {0};
    kn_tensor *y;
    bool vec_c =
        !c || (rank(c) == 1 && shp(c)[0] == nn && kn_tensor_dtype(c) == kn_tensor_dtype(a));
    if (!ta && alpha == 1 && beta == 1 && vec_c && kn_dtype_is_float(kn_tensor_dtype(a))) {
        kn_tensor *w = tb ? b : keep(&l, kn_transpose(b, 0, 1));
        y = w ? keep(&l, kn_linear(a, w, c)) : NULL;
    } else {
        y = keep(&l, kn_matmul_t(a, b, ta, tb));
        if (y && alpha != 1) y = keep(&l, kn_mul_scalar(y, alpha));
        if (y && c && beta != 0) {
            kn_tensor *cb = beta == 1 ? c : keep(&l, kn_mul_scalar(c, beta));
            y = cb ? keep(&l, kn_add(y, cb)) : NULL;
        }
    }
    s = y ? KN_OK : failed(n);
    set_out(n, 0, y);
    tmps_free(&l);
    return s;
}

/* ================================================================ Dropout */
static bool dropout_check(const Onnx__NodeProto *p, int opset, char *why, size_t ws)
{
    static const attr_spec spec[] = {
        {"ratio", A_FLOAT}, {"seed", A_INT}, {"is_test", A_INT}, {NULL, 0}};
    (void)opset;
    return check_types(p, spec, why, ws);
}

/* Inference: the identity, and a mask of all true. A training_mode input
 * that is true with ratio > 0 asks for random dropout, which kiln cannot
 * reproduce bit for bit: an error. */
static kn_status dropout_convert(kn_onnx_node *n)
{
    kn_status s = need_inputs(n, 1);
    if (s) return s;
    kn_tensor *x = n->in[0];
    double ratio = pa_float(n->proto, "ratio", 0.5);
    bool training = false;
    if (n->opset >= 12) {
        if (in_at(n, 1) && (s = kn__onnx_const_double(n, 1, &ratio))) return s;
        if (in_at(n, 2)) {
            double v;
            if (!kn__onnx_is_const(n->in[2]) || kn_tensor_numel(n->in[2]) != 1 ||
                kn_tensor_item(n->in[2], &v))
                return kn__onnx_fail(n, KN_ERR_UNSUPPORTED,
                                     "training_mode must be a constant scalar");
            training = v != 0;
        }
    }
    if (training && ratio != 0)
        return kn__onnx_fail(n, KN_ERR_UNSUPPORTED,
                             "training_mode is true with ratio %g: random dropout is not "
                             "supported (kiln imports models for inference)",
                             ratio);
    n->out[0] = kn_tensor_ref(x);
    if (out_used(n, 1)) {
        kn_dtype mdt = n->opset >= 10 ? KN_BOOL : kn_tensor_dtype(x);
        n->out[1] = kn_tensor_ones(mdt, rank(x), shp(x));
        if (!n->out[1]) return failed(n);
    }
    return KN_OK;
}

/* ================================================================ Resize, Upsample */
enum { RZ_NEAREST, RZ_LINEAR, RZ_CUBIC };
enum {
    CT_HALF_PIXEL,
    CT_PYTORCH_HALF_PIXEL,
    CT_ALIGN_CORNERS,
    CT_ASYMMETRIC,
    CT_TF_HALF_PIXEL,
    CT_TF_CROP
};
enum { NM_ROUND_PREFER_FLOOR, NM_ROUND_PREFER_CEIL, NM_FLOOR, NM_CEIL, NM_LEGACY };
static const char *const rz_modes[] = {"nearest", "linear", "cubic", NULL};
static const char *const ct_modes[] = {"half_pixel", "pytorch_half_pixel",   "align_corners",
                                       "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize",
                                       NULL};
static const char *const nm_modes[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil",
                                       NULL};

typedef struct resize_cfg {
    int mode, coord, nearest;
    double cubic_a, extrapolation;
    bool exclude_outside;
} resize_cfg;

/* Up to 4 taps (input index, weight) per output index along one axis. */
typedef struct axis_taps {
    int n;        /* taps per output */
    int64_t *idx; /* [n][out] */
    double *w;    /* [n][out] */
    bool *valid;  /* tf_crop_and_resize: inside the input */
} axis_taps;

/* The input coordinate of output index o. lr is length_resized: the output
 * size, or in * scale when scales were given (not rounded, as in ONNX's
 * reference implementation). */
static double resize_coord(const resize_cfg *c, int64_t o, int64_t in, double lr, double scale,
                           double r0, double r1)
{
    double x = (double)o;
    switch (c->coord) {
    case CT_HALF_PIXEL:
        return (x + 0.5) / scale - 0.5;
    case CT_PYTORCH_HALF_PIXEL:
        return lr > 1 ? (x + 0.5) / scale - 0.5 : 0;
    case CT_ALIGN_CORNERS:
        return lr == 1 ? 0 : x * (double)(in - 1) / (lr - 1);
    case CT_ASYMMETRIC:
        return x / scale;
    case CT_TF_HALF_PIXEL:
        return (x + 0.5) / scale;
    default:
        return lr == 1 ? 0.5 * (r0 + r1) * (double)(in - 1)
                       : r0 * (double)(in - 1) + x * (r1 - r0) * (double)(in - 1) / (lr - 1);
    }
}

static void cubic_coeffs(double r, double a, double *c)
{
    double t = r + 1;
    c[0] = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a;
    c[1] = ((a + 2) * r - (a + 3)) * r * r + 1;
    t = 1 - r;
    c[2] = ((a + 2) * t - (a + 3)) * t * t + 1;
    t = 2 - r;
    c[3] = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a;
}

static int64_t clamp_idx(int64_t i, int64_t in)
{
    return i < 0 ? 0 : i >= in ? in - 1 : i;
}

static kn_status taps_build(const resize_cfg *c, int64_t in, int64_t out, double lr, double scale,
                            double r0, double r1, axis_taps *t)
{
    t->n = c->mode == RZ_NEAREST ? 1 : c->mode == RZ_LINEAR ? 2 : 4;
    t->idx = kn_alloc(sizeof(int64_t) * 4 * (size_t)out);
    t->w = kn_alloc(sizeof(double) * 4 * (size_t)out);
    t->valid = kn_alloc(sizeof(bool) * (size_t)out);
    if (!t->idx || !t->w || !t->valid) return KN_ERR_NOMEM;
    for (int64_t o = 0; o < out; o++) {
        double x = resize_coord(c, o, in, lr, scale, r0, r1);
        t->valid[o] = c->coord != CT_TF_CROP || (x >= 0 && x <= (double)(in - 1));
        int64_t ix[4];
        double w[4] = {1, 0, 0, 0};
        double fl = floor(x), rat = x - fl;
        if (c->mode == RZ_NEAREST) {
            int64_t i = (int64_t)fl;
            switch (c->nearest) {
            case NM_ROUND_PREFER_FLOOR:
                i += rat > 0.5;
                break;
            case NM_ROUND_PREFER_CEIL:
                i += rat >= 0.5;
                break;
            case NM_FLOOR:
                break;
            case NM_CEIL:
                i += rat > 0;
                break;
            default:
                i = scale < 1 ? (int64_t)ceil(x) : (int64_t)x;
                break;
            }
            ix[0] = i;
        } else if (c->mode == RZ_LINEAR) {
            ix[0] = (int64_t)fl, ix[1] = ix[0] + 1;
            w[0] = 1 - rat, w[1] = rat;
        } else {
            for (int k = 0; k < 4; k++)
                ix[k] = (int64_t)fl - 1 + k;
            cubic_coeffs(rat, c->cubic_a, w);
        }
        if (c->exclude_outside) {
            double sum = 0;
            for (int k = 0; k < t->n; k++) {
                if (ix[k] < 0 || ix[k] >= in) w[k] = 0;
                sum += w[k];
            }
            for (int k = 0; k < t->n && sum != 0; k++)
                w[k] /= sum;
        }
        for (int k = 0; k < t->n; k++) {
            t->idx[k * out + o] = clamp_idx(ix[k], in);
            t->w[k * out + o] = t->valid[o] ? w[k] : 0;
        }
    }
    return KN_OK;
}

static void taps_free(axis_taps *t)
{
    kn_free(t->idx);
    kn_free(t->w);
    kn_free(t->valid);
}

static bool taps_identity(const axis_taps *t, int64_t in, int64_t out)
{
    if (in != out) return false;
    for (int64_t o = 0; o < out; o++) {
        if (t->idx[o] != o || t->w[o] != 1 || !t->valid[o]) return false;
        for (int k = 1; k < t->n; k++)
            if (t->w[k * out + o] != 0) return false;
    }
    return true;
}

/* kiln's upsample_nearest2d source index (PyTorch's 'nearest'). */
static int64_t kiln_nearest_src(int64_t in, int64_t out, int64_t o)
{
    if (in == out) return o;
    if (out == 2 * in) return o >> 1;
    float sc = (float)in / (float)out;
    int64_t s = (int64_t)floorf((float)o * sc);
    return s > in - 1 ? in - 1 : s;
}

static bool taps_kiln_nearest(const axis_taps *t, int64_t in, int64_t out)
{
    if (t->n != 1) return false;
    for (int64_t o = 0; o < out; o++)
        if (!t->valid[o] || t->idx[o] != kiln_nearest_src(in, out, o)) return false;
    return true;
}

/* Gathers the taps of one axis and sums them with their weights. */
static kn_tensor *taps_apply(tmps *l, kn_tensor *x, int axis, const axis_taps *t, int64_t out)
{
    int r = rank(x);
    kn_dtype dt = kn_tensor_dtype(x);
    kn_tensor *acc = NULL;
    for (int k = 0; k < t->n; k++) {
        const double *w = t->w + k * out;
        bool zero = true, one = true;
        for (int64_t o = 0; o < out; o++)
            zero &= w[o] == 0, one &= w[o] == 1;
        if (zero && (acc || k < t->n - 1)) continue;
        kn_tensor *ix = keep(l, kn_tensor_from_data(KN_I64, 1, &out, t->idx + k * out));
        kn_tensor *g = ix ? keep(l, kn_index_select(x, axis, ix)) : NULL;
        if (!one && g) {
            int64_t ws[KN_MAX_DIMS];
            for (int i = 0; i < r; i++)
                ws[i] = i == axis ? out : 1;
            kn_tensor *wt = tensor_f64(l, dt, r, ws, w);
            g = wt ? keep(l, kn_mul(g, wt)) : NULL;
        }
        if (!g) return NULL;
        acc = acc ? keep(l, kn_add(acc, g)) : g;
        if (!acc) return NULL;
    }
    return acc;
}

/* Resizes x to out[] (scale[]: the scale of each axis for the coordinate
 * transform, roi[]: tf_crop_and_resize's region, or NULL); separable, one
 * axis at a time, like ONNX's reference. */
static kn_status resize_apply(kn_onnx_node *n, tmps *l, kn_tensor *x, const resize_cfg *c,
                              const int64_t *out, const double *lr, const double *scale,
                              const double *roi, kn_tensor **y)
{
    int r = rank(x);
    kn_dtype dt = kn_tensor_dtype(x);
    if (c->mode != RZ_NEAREST && !kn_dtype_is_float(dt))
        return kn__onnx_fail(n, KN_ERR_DTYPE, "%s mode needs a float input, not %s",
                             rz_modes[c->mode], kn_dtype_name(dt));
    axis_taps taps[KN_MAX_DIMS];
    memset(taps, 0, sizeof taps);
    kn_status s = KN_OK;
    bool identity[KN_MAX_DIMS], any_invalid = false;
    int64_t total = 1;
    for (int a = 0; a < r && !s; a++) {
        if (out[a] < 1 || out[a] > MAX_MADE / total) {
            s = kn__onnx_fail(n, KN_ERR_SHAPE,
                              out[a] < 1 ? "output size %lld on axis %d"
                                         : "output size %lld on axis %d makes more than 2^31 "
                                           "elements",
                              (long long)out[a], a);
            break;
        }
        total *= out[a];
        if (!(scale[a] > 0) || !isfinite(scale[a])) {
            s = kn__onnx_fail(n, KN_ERR_ARG, "scale %g on axis %d, expected > 0", scale[a], a);
            break;
        }
        if (taps_build(c, shp(x)[a], out[a], lr[a], scale[a], roi ? roi[a] : 0,
                       roi ? roi[r + a] : 1, &taps[a]))
            s = failed(n);
        identity[a] = !s && taps_identity(&taps[a], shp(x)[a], out[a]);
        for (int64_t o = 0; !s && o < out[a]; o++)
            any_invalid |= !taps[a].valid[o];
    }
    kn_tensor *cur = x;
    if (!s && r == 4 && identity[0] && identity[1] && kn_dtype_is_float(dt) &&
        taps_kiln_nearest(&taps[2], shp(x)[2], out[2]) &&
        taps_kiln_nearest(&taps[3], shp(x)[3], out[3])) {
        cur = keep(l, kn_upsample_nearest2d(x, out[2], out[3], KN_LAYOUT_NCHW));
    } else {
        for (int a = 0; a < r && !s && cur; a++)
            if (!identity[a]) cur = taps_apply(l, cur, a, &taps[a], out[a]);
    }
    if (!s && !cur) s = failed(n);
    if (!s && any_invalid && c->extrapolation != 0) {
        /* outside the crop region every tap weighs 0: add the value there */
        double *e = kn_alloc(sizeof(double) * (size_t)total);
        if (!e) {
            s = failed(n);
        } else {
            for (int64_t f = 0; f < total; f++) {
                int64_t rem = f;
                bool ok = true;
                for (int a = r - 1; a >= 0; a--)
                    ok &= taps[a].valid[rem % out[a]], rem /= out[a];
                e[f] = ok ? 0 : c->extrapolation;
            }
            kn_tensor *et = tensor_f64(l, dt, r, out, e);
            kn_free(e);
            cur = et ? keep(l, kn_add(cur, et)) : NULL;
            if (!cur) s = failed(n);
        }
    }
    for (int a = 0; a < r; a++)
        taps_free(&taps[a]);
    if (!s) *y = cur;
    return s;
}

/* The float values of a constant input (scales, roi); count -1 when the
 * input is absent. */
static kn_status const_floats(kn_onnx_node *n, int i, double *out, int max, int *count)
{
    kn_tensor *t = in_at(n, i);
    *count = -1;
    if (!t) return KN_OK;
    if (!kn__onnx_is_const(t))
        return kn__onnx_fail(n, KN_ERR_UNSUPPORTED, "input %d must be a constant", i);
    int64_t cnt = kn_tensor_numel(t);
    if (cnt > max)
        return kn__onnx_fail(n, KN_ERR_SHAPE, "input %d has %lld values, expected at most %d", i,
                             (long long)cnt, max);
    if (cnt && kn_tensor_copy_to(t, KN_F64, out, sizeof(double) * (size_t)cnt)) return failed(n);
    *count = (int)cnt;
    return KN_OK;
}

static bool resize_check(const Onnx__NodeProto *p, int opset, char *why, size_t ws)
{
    static const attr_spec spec[] = {
        {"mode", A_STRING},         {"coordinate_transformation_mode", A_STRING},
        {"nearest_mode", A_STRING}, {"cubic_coeff_a", A_FLOAT},
        {"exclude_outside", A_INT}, {"extrapolation_value", A_FLOAT},
        {"scales", A_FLOATS},       {NULL, 0}};
    if (!check_types(p, spec, why, ws)) return false;
    char buf[64];
    const char *m = pa_str(p, "mode", "nearest", buf, sizeof buf);
    bool upsample = !strcmp(p->op_type, "Upsample");
    if (upsample && !strcmp(m, "bilinear")) m = "linear";
    int mode = str_index(m, rz_modes);
    if (mode < 0 || ((upsample || opset < 11) && mode == RZ_CUBIC)) {
        snprintf(why, ws, "mode '%s'", m);
        return false;
    }
    if (upsample && opset < 9 && !pa(p, "scales")) {
        snprintf(why, ws, "attribute 'scales' is missing");
        return false;
    }
    if (upsample || opset < 11) return true;
    if (str_index(pa_str(p, "coordinate_transformation_mode", "half_pixel", buf, sizeof buf),
                  ct_modes) < 0) {
        snprintf(why, ws, "coordinate_transformation_mode '%s'", buf);
        return false;
    }
    if (str_index(pa_str(p, "nearest_mode", "round_prefer_floor", buf, sizeof buf), nm_modes) < 0) {
        snprintf(why, ws, "nearest_mode '%s'", buf);
        return false;
    }
    return true;
}

/* Resize (10, 11, 13) and Upsample (7, 9). Before opset 11 the transform is
 * 'asymmetric' and nearest rounds down (up when downsampling). */
static kn_status resize_convert(kn_onnx_node *n)
{
    kn_status s = need_inputs(n, 1);
    if (s) return s;
    kn_tensor *x = n->in[0];
    int r = rank(x);
    const Onnx__NodeProto *p = n->proto;
    bool upsample = !strcmp(n->op, "Upsample"), legacy = upsample || n->opset < 11;
    char buf[64];
    resize_cfg c = {.cubic_a = pa_float(p, "cubic_coeff_a", -0.75),
                    .extrapolation = pa_float(p, "extrapolation_value", 0),
                    .exclude_outside = pa_int(p, "exclude_outside", 0) != 0};
    const char *m = pa_str(p, "mode", "nearest", buf, sizeof buf);
    c.mode = str_index(!strcmp(m, "bilinear") ? "linear" : m, rz_modes);
    c.coord =
        legacy
            ? CT_ASYMMETRIC
            : str_index(pa_str(p, "coordinate_transformation_mode", "half_pixel", buf, sizeof buf),
                        ct_modes);
    c.nearest = legacy ? NM_LEGACY
                       : str_index(pa_str(p, "nearest_mode", "round_prefer_floor", buf, sizeof buf),
                                   nm_modes);
    if (c.mode < 0 || c.coord < 0 || c.nearest < 0)
        return kn__onnx_fail(n, KN_ERR_UNSUPPORTED, "unknown mode");
    double scales[KN_MAX_DIMS], roi[2 * KN_MAX_DIMS], lr[KN_MAX_DIMS];
    int64_t out[KN_MAX_DIMS], sizes[KN_MAX_DIMS];
    int n_scales = -1, n_roi = -1, n_sizes = -1;
    if (upsample && n->opset < 9) {
        n_scales = pa_floats(p, "scales", scales, KN_MAX_DIMS);
        if (n_scales < 0) return kn__onnx_fail(n, KN_ERR_ARG, "scales is missing");
    } else if (legacy) {
        s = const_floats(n, 1, scales, KN_MAX_DIMS, &n_scales);
    } else {
        s = const_floats(n, 1, roi, 2 * KN_MAX_DIMS, &n_roi);
        if (!s) s = const_floats(n, 2, scales, KN_MAX_DIMS, &n_scales);
        if (!s && in_at(n, 3)) s = kn__onnx_const_ints(n, 3, sizes, KN_MAX_DIMS, &n_sizes);
    }
    if (s) return s;
    if (n_sizes > 0) {
        if (n_sizes != r)
            return kn__onnx_fail(n, KN_ERR_SHAPE, "sizes has %d values for %d dims", n_sizes, r);
        for (int a = 0; a < r; a++) {
            out[a] = sizes[a], lr[a] = (double)sizes[a];
            scales[a] = (double)sizes[a] / (double)shp(x)[a];
        }
    } else if (n_scales > 0) {
        if (n_scales != r)
            return kn__onnx_fail(n, KN_ERR_SHAPE, "scales has %d values for %d dims", n_scales, r);
        for (int a = 0; a < r; a++) {
            double span = c.coord == CT_TF_CROP && n_roi == 2 * r ? roi[r + a] - roi[a] : 1;
            double o = floor((double)shp(x)[a] * span * scales[a]);
            if (!(o >= 1 && o < 1e12))
                return kn__onnx_fail(n, KN_ERR_SHAPE, "scale %g gives output size %g on axis %d",
                                     scales[a], o, a);
            out[a] = (int64_t)o;
            lr[a] = (double)shp(x)[a] * span * scales[a];
        }
    } else {
        return kn__onnx_fail(n, KN_ERR_ARG, "neither scales nor sizes is given");
    }
    if (c.coord == CT_TF_CROP && n_roi != 2 * r) {
        if (n_roi > 0)
            return kn__onnx_fail(n, KN_ERR_SHAPE, "roi has %d values, expected %d", n_roi, 2 * r);
        for (int a = 0; a < r; a++)
            roi[a] = 0, roi[r + a] = 1;
    }
    tmps l = {0};
    kn_tensor *y = NULL;
    s = resize_apply(n, &l, x, &c, out, lr, scales, c.coord == CT_TF_CROP ? roi : NULL, &y);
    if (!s) set_out(n, 0, y);
    tmps_free(&l);
    return s;
}

/* ================================================================ RNN, GRU, LSTM */
typedef enum rnn_kind { RK_RNN, RK_GRU, RK_LSTM } rnn_kind;
enum {
    ACT_RELU,
    ACT_TANH,
    ACT_SIGMOID,
    ACT_AFFINE,
    ACT_LEAKY,
    ACT_THRESH,
    ACT_SCALED_TANH,
    ACT_HARD_SIGMOID,
    ACT_ELU,
    ACT_SOFTSIGN,
    ACT_SOFTPLUS
};
static const char *const act_names[] = {
    "Relu",       "Tanh",        "Sigmoid", "Affine",   "LeakyRelu", "ThresholdedRelu",
    "ScaledTanh", "HardSigmoid", "Elu",     "Softsign", "Softplus",  NULL};
/* alpha/beta use and defaults, per activation */
static const struct {
    bool alpha, beta;
    double da, db;
} act_params[] = {{0, 0, 0, 0},    {0, 0, 0, 0},   {0, 0, 0, 0},     {1, 1, 1.0, 0.0},
                  {1, 0, 0.01, 0}, {1, 0, 1.0, 0}, {1, 1, 1.0, 1.0}, {1, 1, 0.2, 0.5},
                  {1, 0, 1.0, 0},  {0, 0, 0, 0},   {0, 0, 0, 0}};
static const int rnn_gates[] = {1, 3, 4};
static const int rnn_acts[] = {1, 2, 3};
static const char *const directions[] = {"forward", "reverse", "bidirectional", NULL};

typedef struct rnn_act {
    int kind;
    double alpha, beta;
} rnn_act;

static const attr_spec rnn_attr_spec[] = {{"activation_alpha", A_FLOATS},
                                          {"activation_beta", A_FLOATS},
                                          {"activations", A_STRINGS},
                                          {"clip", A_FLOAT},
                                          {"direction", A_STRING},
                                          {"hidden_size", A_INT},
                                          {"layout", A_INT},
                                          {"input_forget", A_INT},
                                          {"linear_before_reset", A_INT},
                                          {NULL, 0}};

static rnn_kind rnn_kind_of(const char *op)
{
    return !strcmp(op, "LSTM") ? RK_LSTM : !strcmp(op, "GRU") ? RK_GRU : RK_RNN;
}

static bool rnn_check(const Onnx__NodeProto *p, int opset, char *why, size_t ws)
{
    (void)opset;
    if (!check_types(p, rnn_attr_spec, why, ws)) return false;
    char buf[64];
    int dir = str_index(pa_str(p, "direction", "forward", buf, sizeof buf), directions);
    if (dir < 0) {
        snprintf(why, ws, "direction '%s'", buf);
        return false;
    }
    int64_t layout = pa_int(p, "layout", 0);
    if (layout != 0 && layout != 1) {
        snprintf(why, ws, "layout %lld", (long long)layout);
        return false;
    }
    const Onnx__AttributeProto *a = pa(p, "activations");
    int want = rnn_acts[rnn_kind_of(p->op_type)] * (dir == 2 ? 2 : 1);
    if (a && (int)a->n_strings != want) {
        snprintf(why, ws, "%d activations, expected %d", (int)a->n_strings, want);
        return false;
    }
    for (size_t i = 0; a && i < a->n_strings; i++) {
        bin_str(&a->strings[i], buf, sizeof buf);
        if (str_index_nocase(buf, act_names) < 0) {
            snprintf(why, ws, "activation '%s'", buf);
            return false;
        }
    }
    return true;
}

static kn_tensor *rnn_activate(tmps *l, const rnn_act *a, kn_tensor *x, double clip)
{
    if (clip > 0 && x) x = keep(l, kn_clip(x, -clip, clip));
    if (!x) return NULL;
    kn_dtype dt = kn_tensor_dtype(x);
    switch (a->kind) {
    case ACT_RELU:
        return keep(l, kn_relu(x));
    case ACT_TANH:
        return keep(l, kn_tanh(x));
    case ACT_SIGMOID:
        return keep(l, kn_sigmoid(x));
    case ACT_AFFINE:
        return keep(l, kn_add_scalar(keep(l, kn_mul_scalar(x, a->alpha)), a->beta));
    case ACT_LEAKY:
        return keep(l, kn_leaky_relu(x, a->alpha));
    case ACT_THRESH: {
        kn_tensor *m = keep(l, kn_gt(x, scalar(l, dt, a->alpha)));
        return m ? keep(l, kn_mul(x, keep(l, kn_cast(m, dt)))) : NULL;
    }
    case ACT_SCALED_TANH:
        return keep(l,
                    kn_mul_scalar(keep(l, kn_tanh(keep(l, kn_mul_scalar(x, a->beta)))), a->alpha));
    case ACT_HARD_SIGMOID:
        return keep(l, kn_hard_sigmoid(x, a->alpha, a->beta));
    case ACT_ELU:
        return keep(l, kn_elu(x, a->alpha));
    case ACT_SOFTSIGN:
        return keep(l, kn_softsign(x));
    default:
        return keep(l, kn_softplus(x, 1.0, 20.0));
    }
}

/* Row d of a stacked parameter (D, ...) as a tensor of shape (rows...). */
static kn_tensor *row(tmps *l, kn_tensor *t, int64_t d, int nd, const int64_t *shape)
{
    kn_tensor *v = t ? keep(l, kn_narrow(t, 0, d, 1)) : NULL;
    return v ? keep(l, kn_reshape(v, nd, shape)) : NULL;
}

static kn_tensor *cols(tmps *l, kn_tensor *t, int64_t start, int64_t len)
{
    return t ? keep(l, kn_narrow(t, rank(t) - 1, start, len)) : NULL;
}

static kn_tensor *add2(tmps *l, kn_tensor *a, kn_tensor *b)
{
    return a && b ? keep(l, kn_add(a, b)) : NULL;
}

static kn_tensor *mul2(tmps *l, kn_tensor *a, kn_tensor *b)
{
    return a && b ? keep(l, kn_mul(a, b)) : NULL;
}

typedef struct rnn_job {
    rnn_kind kind;
    int64_t T, B, H, G;
    double clip;
    bool lbr, input_forget;
    kn_tensor *lens;    /* (B) i32 when sequences are shorter than T, else NULL */
    kn_tensor *h0, *c0; /* initial states (D, B, H) or NULL */
} rnn_job;

/* One direction: Y (T, B, H) and the last H (and C). */
static kn_status rnn_direction(kn_onnx_node *n, tmps *l, const rnn_job *j, int d, bool reverse,
                               const rnn_act *act, kn_tensor *x, kn_tensor **y, kn_tensor **h_last,
                               kn_tensor **c_last)
{
    int64_t T = j->T, B = j->B, H = j->H, GH = j->G * H;
    kn_tensor *W = n->in[1], *R = n->in[2], *Bi = in_at(n, 3), *h0 = NULL, *c0 = NULL;
    kn_dtype dt = kn_tensor_dtype(x);
    int64_t sw[2] = {GH, shp(W)[2]}, sr[2] = {GH, H}, sb = 2 * GH, sh[2] = {B, H}, s3 = 3 * H;
    kn_tensor *Wd = row(l, W, d, 2, sw), *Rd = row(l, R, d, 2, sr), *bx = NULL, *bhh = NULL;
    if (Bi) {
        kn_tensor *bd = row(l, Bi, d, 1, &sb);
        kn_tensor *wb = bd ? keep(l, kn_narrow(bd, 0, 0, GH)) : NULL;
        kn_tensor *rb = bd ? keep(l, kn_narrow(bd, 0, GH, GH)) : NULL;
        if (j->kind == RK_GRU && j->lbr) {
            /* the hidden gate's recurrent bias stays inside r * (...) */
            int64_t pads[2] = {0, H};
            kn_tensor *rzr = rb ? keep(l, kn_narrow(rb, 0, 0, 2 * H)) : NULL;
            bx = add2(l, wb, rzr ? keep(l, kn_pad(rzr, pads, KN_PAD_CONSTANT, 0)) : NULL);
            bhh = rb ? keep(l, kn_narrow(rb, 0, 2 * H, H)) : NULL;
        } else {
            bx = add2(l, wb, rb);
        }
        if (!bx) return failed(n);
    }
    /* the input projection of every step at once: (T, B, G*H) */
    kn_tensor *xp = Wd && Rd ? keep(l, kn_linear(x, Wd, bx)) : NULL;
    if (j->h0) h0 = row(l, j->h0, d, 2, sh);
    if (j->c0) c0 = row(l, j->c0, d, 2, sh);
    if ((j->h0 && !h0) || (j->c0 && !c0)) return failed(n);
    kn_tensor *h = h0 ? h0 : keep(l, kn_tensor_zeros(dt, 2, sh));
    kn_tensor *c = j->kind != RK_LSTM ? NULL : c0 ? c0 : keep(l, kn_tensor_zeros(dt, 2, sh));
    kn_tensor *pi = NULL, *po = NULL, *pf = NULL;
    if (j->kind == RK_LSTM && in_at(n, 7)) {
        kn_tensor *pd = row(l, n->in[7], d, 1, &s3);
        pi = cols(l, pd, 0, H), po = cols(l, pd, H, H), pf = cols(l, pd, 2 * H, H);
        if (!pi || !po || !pf) return failed(n);
    }
    kn_tensor *rzr = j->kind == RK_GRU ? keep(l, kn_narrow(Rd, 0, 0, 2 * H)) : NULL;
    kn_tensor *rh = j->kind == RK_GRU ? keep(l, kn_narrow(Rd, 0, 2 * H, H)) : NULL;
    if (!xp || !h || (j->kind == RK_LSTM && !c) || (j->kind == RK_GRU && (!rzr || !rh)))
        return failed(n);
    kn_tensor **ys = kn_alloc(sizeof(kn_tensor *) * (size_t)T);
    if (!ys) return failed(n);
    int64_t sx[2] = {B, GH}, sm[2] = {B, 1};
    kn_tensor *zero = j->lens ? scalar(l, dt, 0) : NULL;
    kn_status s = KN_OK;
    for (int64_t step = 0; step < T && !s; step++) {
        int64_t t = reverse ? T - 1 - step : step;
        kn_tensor *xt = row(l, xp, t, 2, sx), *hn = NULL, *cn = NULL;
        if (j->kind == RK_RNN) {
            hn = rnn_activate(l, &act[0], add2(l, xt, keep(l, kn_linear(h, Rd, NULL))), j->clip);
        } else if (j->kind == RK_GRU) {
            kn_tensor *hz, *hr, *hh;
            if (j->lbr) {
                kn_tensor *hp = keep(l, kn_linear(h, Rd, NULL));
                hz = cols(l, hp, 0, H), hr = cols(l, hp, H, H), hh = cols(l, hp, 2 * H, H);
                if (bhh) hh = add2(l, hh, bhh);
            } else {
                kn_tensor *hp = keep(l, kn_linear(h, rzr, NULL));
                hz = cols(l, hp, 0, H), hr = cols(l, hp, H, H), hh = NULL;
            }
            kn_tensor *z = rnn_activate(l, &act[0], add2(l, cols(l, xt, 0, H), hz), j->clip);
            kn_tensor *rg = rnn_activate(l, &act[0], add2(l, cols(l, xt, H, H), hr), j->clip);
            kn_tensor *pre = j->lbr ? mul2(l, rg, hh)
                                    : (rg ? keep(l, kn_linear(mul2(l, rg, h), rh, NULL)) : NULL);
            kn_tensor *hc = rnn_activate(l, &act[1], add2(l, cols(l, xt, 2 * H, H), pre), j->clip);
            /* (1 - z) * hc + z * h */
            kn_tensor *diff = hc ? keep(l, kn_sub(h, hc)) : NULL;
            hn = add2(l, hc, mul2(l, z, diff));
        } else {
            kn_tensor *g = add2(l, xt, keep(l, kn_linear(h, Rd, NULL)));
            kn_tensor *gi = cols(l, g, 0, H), *go = cols(l, g, H, H), *gf = cols(l, g, 2 * H, H);
            kn_tensor *gc = cols(l, g, 3 * H, H);
            if (pi) gi = add2(l, gi, mul2(l, pi, c)), gf = add2(l, gf, mul2(l, pf, c));
            kn_tensor *ig = rnn_activate(l, &act[0], gi, j->clip);
            kn_tensor *fg = j->input_forget
                                ? (ig ? keep(l, kn_add_scalar(keep(l, kn_neg(ig)), 1)) : NULL)
                                : rnn_activate(l, &act[0], gf, j->clip);
            kn_tensor *cc = rnn_activate(l, &act[1], gc, j->clip);
            cn = add2(l, mul2(l, fg, c), mul2(l, ig, cc));
            if (po) go = add2(l, go, mul2(l, po, cn));
            kn_tensor *og = rnn_activate(l, &act[0], go, j->clip);
            hn = mul2(l, og, rnn_activate(l, &act[2], cn, 0));
        }
        kn_tensor *yt = hn;
        if (j->lens && hn) {
            /* past a sequence's end: keep the state, output zeros */
            kn_tensor *ts = scalar(l, KN_I32, (double)t);
            kn_tensor *m = ts ? keep(l, kn_lt(ts, j->lens)) : NULL;
            m = m ? keep(l, kn_reshape(m, 2, sm)) : NULL;
            yt = m ? keep(l, kn_where(m, hn, zero)) : NULL;
            hn = m ? keep(l, kn_where(m, hn, h)) : NULL;
            if (cn) cn = m ? keep(l, kn_where(m, cn, c)) : NULL;
        }
        if (!hn || !yt || (j->kind == RK_LSTM && !cn)) s = failed(n);
        ys[t] = yt, h = hn, c = cn;
    }
    if (!s) {
        *y = keep(l, kn_stack((int)T, ys, 0));
        if (!*y) s = failed(n);
    }
    kn_free(ys);
    *h_last = h, *c_last = c;
    return s;
}

static kn_status rnn_convert(kn_onnx_node *n)
{
    kn_status s = need_inputs(n, 3);
    if (s) return s;
    const Onnx__NodeProto *p = n->proto;
    rnn_job j = {.kind = rnn_kind_of(n->op)};
    j.G = rnn_gates[j.kind];
    kn_tensor *x = n->in[0], *W = n->in[1], *R = n->in[2];
    char buf[64];
    int dir = str_index(pa_str(p, "direction", "forward", buf, sizeof buf), directions);
    int nd = dir == 2 ? 2 : 1;
    bool layout = n->opset >= 14 && pa_int(p, "layout", 0) == 1;
    if (dir < 0) return kn__onnx_fail(n, KN_ERR_ARG, "direction '%s'", buf);
    if (rank(x) != 3 || rank(W) != 3 || rank(R) != 3)
        return kn__onnx_fail(n, KN_ERR_SHAPE, "X, W and R must have 3 dims (have %d, %d, %d)",
                             rank(x), rank(W), rank(R));
    j.H = shp(R)[2];
    int64_t hs = pa_int(p, "hidden_size", j.H);
    if (shp(W)[0] != nd || shp(R)[0] != nd || shp(W)[1] != j.G * j.H || shp(R)[1] != j.G * j.H ||
        hs != j.H || shp(W)[2] != shp(x)[2])
        return kn__onnx_fail(n, KN_ERR_SHAPE,
                             "W (%lld, %lld, %lld) and R (%lld, %lld, %lld) do not fit %d "
                             "direction(s), %d gate(s), hidden size %lld and input size %lld",
                             (long long)shp(W)[0], (long long)shp(W)[1], (long long)shp(W)[2],
                             (long long)shp(R)[0], (long long)shp(R)[1], (long long)shp(R)[2], nd,
                             (int)j.G, (long long)hs, (long long)shp(x)[2]);
    j.clip = pa(p, "clip") ? pa_float(p, "clip", 0) : 0;
    j.lbr = pa_int(p, "linear_before_reset", 0) != 0;
    j.input_forget = pa_int(p, "input_forget", 0) != 0;
    /* activations, with alpha/beta consumed in order by those that take them */
    rnn_act act[6];
    int na = rnn_acts[j.kind];
    static const int defaults[3][3] = {
        {ACT_TANH}, {ACT_SIGMOID, ACT_TANH}, {ACT_SIGMOID, ACT_TANH, ACT_TANH}};
    const Onnx__AttributeProto *aa = pa(p, "activations");
    double alphas[16], betas[16];
    int n_al = pa_floats(p, "activation_alpha", alphas, 16),
        n_be = pa_floats(p, "activation_beta", betas, 16);
    int ia = 0, ib = 0;
    for (int i = 0; i < na * nd; i++) {
        act[i].kind = defaults[j.kind][i % na];
        if (aa && (size_t)i < aa->n_strings) {
            bin_str(&aa->strings[i], buf, sizeof buf);
            act[i].kind = str_index_nocase(buf, act_names);
            if (act[i].kind < 0)
                return kn__onnx_fail(n, KN_ERR_UNSUPPORTED, "activation '%s'", buf);
        }
        act[i].alpha = act_params[act[i].kind].da, act[i].beta = act_params[act[i].kind].db;
        if (act_params[act[i].kind].alpha && ia < n_al && ia < 16) act[i].alpha = alphas[ia++];
        if (act_params[act[i].kind].beta && ib < n_be && ib < 16) act[i].beta = betas[ib++];
    }
    tmps l = {0};
    if (layout) x = keep(&l, kn_transpose(x, 0, 1));
    if (!x) {
        s = failed(n);
        goto done;
    }
    j.T = shp(x)[0], j.B = shp(x)[1];
    if (in_at(n, 4)) {
        kn_tensor *lens = n->in[4];
        if (rank(lens) != 1 || shp(lens)[0] != j.B) {
            s = kn__onnx_fail(n, KN_ERR_SHAPE, "sequence_lens must have shape (%lld)",
                              (long long)j.B);
            goto done;
        }
        bool full = false;
        if (kn__onnx_is_const(lens)) {
            int64_t *v = kn_alloc(sizeof(int64_t) * (size_t)j.B);
            full = v && !kn_tensor_copy_to(lens, KN_I64, v, sizeof(int64_t) * (size_t)j.B);
            for (int64_t b = 0; full && b < j.B; b++)
                full = v[b] == j.T;
            kn_free(v);
        }
        if (!full) j.lens = as_dtype(&l, lens, KN_I32);
    }
    /* initial states in (D, B, H) */
    kn_tensor *st[2] = {in_at(n, 5), j.kind == RK_LSTM ? in_at(n, 6) : NULL};
    for (int i = 0; i < 2; i++) {
        if (!st[i]) continue;
        if (layout && rank(st[i]) == 3 && !(st[i] = keep(&l, kn_transpose(st[i], 0, 1)))) {
            s = failed(n);
            goto done;
        }
        if (rank(st[i]) != 3 || shp(st[i])[0] != nd || shp(st[i])[1] != j.B ||
            shp(st[i])[2] != j.H) {
            s = kn__onnx_fail(n, KN_ERR_SHAPE,
                              "%s must have shape (%d, %lld, %lld) (directions, batch, hidden%s)",
                              i ? "initial_c" : "initial_h", nd, (long long)j.B, (long long)j.H,
                              layout ? "; layout 1 swaps the first two" : "");
            goto done;
        }
    }
    j.h0 = st[0], j.c0 = st[1];
    kn_tensor *yd[2] = {NULL, NULL}, *hd[2] = {NULL, NULL}, *cd[2] = {NULL, NULL};
    for (int d = 0; d < nd && !s; d++)
        s = rnn_direction(n, &l, &j, d, dir == 1 || d == 1, act + d * na, x, &yd[d], &hd[d],
                          &cd[d]);
    if (s) goto done;
    kn_tensor *y = keep(&l, kn_stack(nd, yd, 1)), *yh = keep(&l, kn_stack(nd, hd, 0));
    kn_tensor *yc = j.kind == RK_LSTM ? keep(&l, kn_stack(nd, cd, 0)) : NULL;
    if (layout) {
        int perm[4] = {2, 0, 1, 3};
        y = y ? keep(&l, kn_permute(y, 4, perm)) : NULL;
        yh = yh ? keep(&l, kn_transpose(yh, 0, 1)) : NULL;
        yc = yc ? keep(&l, kn_transpose(yc, 0, 1)) : NULL;
    }
    if (!y || !yh || (j.kind == RK_LSTM && !yc)) {
        s = failed(n);
        goto done;
    }
    set_out(n, 0, y);
    set_out(n, 1, yh);
    set_out(n, 2, yc);
done:
    tmps_free(&l);
    return s;
}

/* ================================================================ sampling ops
 * GridSample, RoiAlign and NonMaxSuppression. GridSample follows
 * torch.nn.functional.grid_sample (the spec's reference) and is composed from
 * elementwise ops and one index_select, so the grid may be symbolic.
 * RoiAlign computes its sampling taps here from concrete rois (the usual
 * case: the core bakes graph inputs a converter needs). NonMaxSuppression's
 * output shape depends on the data: it converts only with concrete boxes and
 * scores, computed here. */

/* Null-propagating op calls: the first failure's message is kept. */
static kn_tensor *op1(tmps *l, kn_tensor *(*f)(kn_tensor *), kn_tensor *a)
{
    return a ? keep(l, f(a)) : NULL;
}

static kn_tensor *op2(tmps *l, kn_tensor *(*f)(kn_tensor *, kn_tensor *), kn_tensor *a,
                      kn_tensor *b)
{
    return a && b ? keep(l, f(a, b)) : NULL;
}

static kn_tensor *add_s(tmps *l, kn_tensor *x, double v)
{
    return x ? keep(l, kn_add_scalar(x, v)) : NULL;
}

static kn_tensor *mul_s(tmps *l, kn_tensor *x, double v)
{
    return x ? keep(l, kn_mul_scalar(x, v)) : NULL;
}

static kn_tensor *clip_s(tmps *l, kn_tensor *x, double lo, double hi)
{
    return x ? keep(l, kn_clip(x, lo, hi)) : NULL;
}

static kn_tensor *cast_to(tmps *l, kn_tensor *x, kn_dtype dt)
{
    return x ? as_dtype(l, x, dt) : NULL;
}

static kn_tensor *reshape_to(tmps *l, kn_tensor *x, int nd, const int64_t *shape)
{
    return x ? keep(l, kn_reshape(x, nd, shape)) : NULL;
}

static kn_tensor *permute_to(tmps *l, kn_tensor *x, int nd, const int *perm)
{
    return x ? keep(l, kn_permute(x, nd, perm)) : NULL;
}

/* (N, C, H, W) as (C, N*H*W): every pixel of every image addressable by one
 * flat index per channel. */
static kn_tensor *pixels_by_channel(tmps *l, kn_tensor *x)
{
    static const int perm[4] = {1, 0, 2, 3};
    int64_t s[2] = {shp(x)[1], shp(x)[0] * shp(x)[2] * shp(x)[3]};
    return reshape_to(l, permute_to(l, x, 4, perm), 2, s);
}

/* ---------------------------------------------------------------- GridSample */
enum { GS_BILINEAR, GS_NEAREST, GS_BICUBIC };
enum { GS_ZEROS, GS_BORDER, GS_REFLECTION };
static const char *const gs_modes[] = {"bilinear", "nearest", "bicubic", NULL};
static const char *const gs_pads[] = {"zeros", "border", "reflection", NULL};
#define GS_TAPS 16

static bool grid_sample_check(const Onnx__NodeProto *p, int opset, char *why, size_t ws)
{
    static const attr_spec spec[] = {
        {"mode", A_STRING}, {"padding_mode", A_STRING}, {"align_corners", A_INT}, {NULL, 0}};
    (void)opset;
    if (!check_types(p, spec, why, ws)) return false;
    char buf[64];
    if (str_index(pa_str(p, "mode", "bilinear", buf, sizeof buf), gs_modes) < 0) {
        snprintf(why, ws, "mode '%s' (bilinear, nearest or bicubic)", buf);
        return false;
    }
    if (str_index(pa_str(p, "padding_mode", "zeros", buf, sizeof buf), gs_pads) < 0) {
        snprintf(why, ws, "padding_mode '%s' (zeros, border or reflection)", buf);
        return false;
    }
    return true;
}

typedef struct gs_job {
    tmps *l;
    kn_dtype ct; /* coordinates and weights */
    int pad;
    bool align;
    int64_t M; /* sampled points: N * H_out * W_out */
    int taps;
    kn_tensor *xi[GS_TAPS], *yi[GS_TAPS], *w[GS_TAPS]; /* (M) each; w NULL: 1 */
} gs_job;

/* A grid value in [-1, 1] as a pixel coordinate of an axis of `size`. */
static kn_tensor *gs_unnormalize(const gs_job *j, kn_tensor *g, int64_t size)
{
    tmps *l = j->l;
    if (j->align) return mul_s(l, add_s(l, g, 1), 0.5 * (double)(size - 1));
    return mul_s(l, add_s(l, mul_s(l, add_s(l, g, 1), (double)size), -1), 0.5);
}

/* x reflected between twice_low/2 and twice_high/2 until inside. */
static kn_tensor *gs_reflect(const gs_job *j, kn_tensor *x, double twice_low, double twice_high)
{
    tmps *l = j->l;
    if (!x) return NULL;
    if (twice_low == twice_high) return keep(l, kn_tensor_zeros(j->ct, 1, &j->M));
    double lo = twice_low / 2, span = (twice_high - twice_low) / 2;
    kn_tensor *a = op1(l, kn_abs, add_s(l, x, -lo));
    kn_tensor *sp = scalar(l, j->ct, span), *two = scalar(l, j->ct, 2), *zero = scalar(l, j->ct, 0);
    kn_tensor *extra = op2(l, kn_fmod, a, sp);
    kn_tensor *flips = op1(l, kn_floor, op2(l, kn_div, a, sp));
    kn_tensor *odd = op2(l, kn_ne, op2(l, kn_fmod, flips, two), zero);
    kn_tensor *up = add_s(l, extra, lo), *down = add_s(l, mul_s(l, extra, -1), span + lo);
    return odd && down && up ? keep(l, kn_where(odd, down, up)) : NULL;
}

/* The padding mode applied to a coordinate of an axis of `size`. */
static kn_tensor *gs_pad_coord(const gs_job *j, kn_tensor *x, int64_t size)
{
    double hi = (double)(size - 1);
    if (j->pad == GS_BORDER) return clip_s(j->l, x, 0, hi);
    if (j->pad == GS_REFLECTION) {
        x = j->align ? gs_reflect(j, x, 0, 2 * hi) : gs_reflect(j, x, -1, 2 * (double)size - 1);
        return clip_s(j->l, x, 0, hi);
    }
    return x;
}

static void gs_tap(gs_job *j, kn_tensor *x, kn_tensor *y, kn_tensor *w)
{
    j->xi[j->taps] = x, j->yi[j->taps] = y, j->w[j->taps] = w;
    j->taps++;
}

/* Keys' cubic convolution weights (A = -0.75) of the 4 taps around t in [0, 1). */
static void gs_cubic(const gs_job *j, kn_tensor *t, kn_tensor **c)
{
    tmps *l = j->l;
    const double A = -0.75;
    /* |d| <= 1: ((A + 2) d - (A + 3)) d^2 + 1;  1 < |d| < 2: ((A d - 5A) d + 8A) d - 4A */
    kn_tensor *d[4] = {add_s(l, t, 1), t, add_s(l, mul_s(l, t, -1), 1),
                       add_s(l, mul_s(l, t, -1), 2)};
    for (int i = 0; i < 4; i++) {
        kn_tensor *e = d[i];
        if (i == 1 || i == 2) {
            kn_tensor *p = add_s(l, mul_s(l, e, A + 2), -(A + 3));
            c[i] = add_s(l, op2(l, kn_mul, op2(l, kn_mul, p, e), e), 1);
        } else {
            kn_tensor *p = add_s(l, mul_s(l, e, A), -5 * A);
            p = add_s(l, op2(l, kn_mul, p, e), 8 * A);
            c[i] = add_s(l, op2(l, kn_mul, p, e), -4 * A);
        }
    }
}

/* Sum over taps of w * X[n, :, y, x], zero where (x, y) is outside:
 * xv is X as (C, N*H*W), the result (C, M). */
static kn_tensor *gs_gather(const gs_job *j, kn_tensor *xv, const int64_t *nchw, int64_t P)
{
    tmps *l = j->l;
    int64_t H = nchw[2], W = nchw[3], M = j->M;
    int64_t *base = kn_alloc(sizeof *base * (size_t)M);
    if (!base) return NULL;
    for (int64_t m = 0; m < M; m++)
        base[m] = m / P * H * W;
    kn_tensor *nb = keep(l, kn_tensor_from_data(KN_I64, 1, &M, base));
    kn_free(base);
    kn_tensor *flat[GS_TAPS], *valid[GS_TAPS], *wt[GS_TAPS];
    kn_tensor *zero = scalar(l, j->ct, 0), *lo = zero;
    kn_tensor *wmax = scalar(l, j->ct, (double)(W - 1)), *hmax = scalar(l, j->ct, (double)(H - 1));
    kn_tensor *wi = scalar(l, KN_I64, (double)W);
    for (int t = 0; t < j->taps; t++) {
        kn_tensor *x = j->xi[t], *y = j->yi[t];
        kn_tensor *v = op2(l, kn_logical_and, op2(l, kn_ge, x, lo), op2(l, kn_le, x, wmax));
        v = op2(l, kn_logical_and, v, op2(l, kn_ge, y, lo));
        v = op2(l, kn_logical_and, v, op2(l, kn_le, y, hmax));
        /* outside (or NaN): index 0, masked below */
        kn_tensor *xs = v && x && zero ? keep(l, kn_where(v, x, zero)) : NULL;
        kn_tensor *ys = v && y && zero ? keep(l, kn_where(v, y, zero)) : NULL;
        xs = cast_to(l, xs, KN_I64), ys = cast_to(l, ys, KN_I64);
        flat[t] = op2(l, kn_add, op2(l, kn_add, nb, op2(l, kn_mul, ys, wi)), xs);
        valid[t] = v;
        wt[t] = j->w[t] ? j->w[t] : keep(l, kn_tensor_ones(j->ct, 1, &M));
        if (!flat[t] || !valid[t] || !wt[t]) return NULL;
    }
    int64_t s3[3] = {nchw[1], j->taps, M};
    kn_tensor *idx = keep(l, kn_concat(j->taps, flat, 0));
    kn_tensor *g = idx ? reshape_to(l, keep(l, kn_index_select(xv, 1, idx)), 3, s3) : NULL;
    kn_tensor *mask = keep(l, kn_stack(j->taps, valid, 0));
    kn_tensor *w = keep(l, kn_stack(j->taps, wt, 0));
    g = g && mask && zero ? keep(l, kn_where(mask, g, zero)) : NULL;
    g = op2(l, kn_mul, g, w);
    int ax = 1;
    return g ? keep(l, kn_sum(g, 1, &ax, false)) : NULL;
}

static kn_status grid_sample_convert(kn_onnx_node *n)
{
    kn_status s = need_inputs(n, 2);
    if (s) return s;
    kn_tensor *x = n->in[0], *grid = n->in[1];
    kn_dtype xdt = kn_tensor_dtype(x);
    if (rank(x) != 4 || rank(grid) != 4 || shp(grid)[3] != 2 || shp(grid)[0] != shp(x)[0])
        return kn__onnx_fail(n, KN_ERR_SHAPE,
                             "X must be (N, C, H, W) and grid (N, H_out, W_out, 2) with the "
                             "same N; got %d-d X and %d-d grid (only 4-d inputs are supported)",
                             rank(x), rank(grid));
    if (!kn_dtype_is_float(xdt))
        return kn__onnx_fail(n, KN_ERR_UNSUPPORTED, "X is %s, only floating-point X is supported",
                             kn_dtype_name(xdt));
    char buf[64];
    const Onnx__NodeProto *p = n->proto;
    gs_job j = {0};
    int mode = str_index(pa_str(p, "mode", "bilinear", buf, sizeof buf), gs_modes);
    j.pad = str_index(pa_str(p, "padding_mode", "zeros", buf, sizeof buf), gs_pads);
    j.align = pa_int(p, "align_corners", 0) != 0;
    j.ct = xdt == KN_F64 || kn_tensor_dtype(grid) == KN_F64 ? KN_F64 : KN_F32;
    const int64_t *xs = shp(x);
    int64_t N = xs[0], H = xs[2], W = xs[3], Ho = shp(grid)[1], Wo = shp(grid)[2];
    int64_t out[4] = {N, xs[1], Ho, Wo};
    tmps l = {0};
    j.l = &l;
    kn_tensor *y = NULL;
    if (!N || !xs[1] || !H || !W || !Ho || !Wo) { /* nothing to sample, or only padding */
        y = keep(&l, kn_tensor_zeros(xdt, 4, out));
        goto done;
    }
    j.M = N * Ho * Wo;
    kn_tensor *gr = cast_to(&l, grid, j.ct);
    kn_tensor *gx = reshape_to(&l, gr ? keep(&l, kn_slice(gr, 3, 0, 1, 1)) : NULL, 1, &j.M);
    kn_tensor *gy = reshape_to(&l, gr ? keep(&l, kn_slice(gr, 3, 1, 2, 1)) : NULL, 1, &j.M);
    kn_tensor *ix = gs_unnormalize(&j, gx, W), *iy = gs_unnormalize(&j, gy, H);
    if (mode == GS_NEAREST) { /* round half to even, as nearbyint */
        ix = op1(&l, kn_round, gs_pad_coord(&j, ix, W));
        iy = op1(&l, kn_round, gs_pad_coord(&j, iy, H));
        gs_tap(&j, ix, iy, NULL);
    } else if (mode == GS_BILINEAR) {
        ix = gs_pad_coord(&j, ix, W), iy = gs_pad_coord(&j, iy, H);
        kn_tensor *x0 = op1(&l, kn_floor, ix), *y0 = op1(&l, kn_floor, iy);
        kn_tensor *x1 = add_s(&l, x0, 1), *y1 = add_s(&l, y0, 1);
        kn_tensor *wx[2] = {op2(&l, kn_sub, x1, ix), op2(&l, kn_sub, ix, x0)};
        kn_tensor *wy[2] = {op2(&l, kn_sub, y1, iy), op2(&l, kn_sub, iy, y0)};
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++)
                gs_tap(&j, b ? x1 : x0, a ? y1 : y0, op2(&l, kn_mul, wx[b], wy[a]));
    } else { /* bicubic: 4x4 taps, the padding applied to each tap */
        kn_tensor *x0 = op1(&l, kn_floor, ix), *y0 = op1(&l, kn_floor, iy);
        kn_tensor *cx[4], *cy[4], *tx[4], *ty[4];
        gs_cubic(&j, op2(&l, kn_sub, ix, x0), cx);
        gs_cubic(&j, op2(&l, kn_sub, iy, y0), cy);
        for (int i = 0; i < 4; i++) {
            tx[i] = gs_pad_coord(&j, add_s(&l, x0, i - 1), W);
            ty[i] = gs_pad_coord(&j, add_s(&l, y0, i - 1), H);
        }
        for (int a = 0; a < 4; a++)
            for (int b = 0; b < 4; b++)
                gs_tap(&j, tx[b], ty[a], op2(&l, kn_mul, cx[b], cy[a]));
    }
    for (int t = 0; t < j.taps; t++)
        if (!j.xi[t] || !j.yi[t] || (mode != GS_NEAREST && !j.w[t])) goto done;
    kn_tensor *xv = pixels_by_channel(&l, cast_to(&l, x, j.ct));
    kn_tensor *r = xv ? gs_gather(&j, xv, xs, Ho * Wo) : NULL; /* (C, M) */
    static const int perm[4] = {1, 0, 2, 3};
    int64_t cn[4] = {xs[1], N, Ho, Wo};
    y = cast_to(&l, permute_to(&l, reshape_to(&l, r, 4, cn), 4, perm), xdt);
done:
    s = y ? KN_OK : failed(n);
    set_out(n, 0, y);
    tmps_free(&l);
    return s;
}

/* ---------------------------------------------------------------- RoiAlign */
static const char *const roi_modes[] = {"avg", "max", NULL};
static const char *const roi_ctms[] = {"half_pixel", "output_half_pixel", NULL};
/* Most taps (rois * bins * samples * 4) a RoiAlign may gather. */
#define ROI_MAX_TAPS ((int64_t)1 << 26)

static bool roi_align_check(const Onnx__NodeProto *p, int opset, char *why, size_t ws)
{
    static const attr_spec spec[] = {{"mode", A_STRING},
                                     {"output_height", A_INT},
                                     {"output_width", A_INT},
                                     {"sampling_ratio", A_INT},
                                     {"spatial_scale", A_FLOAT},
                                     {"coordinate_transformation_mode", A_STRING},
                                     {NULL, 0}};
    if (!check_types(p, spec, why, ws)) return false;
    char buf[64];
    if (str_index(pa_str(p, "mode", "avg", buf, sizeof buf), roi_modes) < 0) {
        snprintf(why, ws, "mode '%s' (avg or max)", buf);
        return false;
    }
    if (opset >= 16 &&
        str_index(pa_str(p, "coordinate_transformation_mode", "half_pixel", buf, sizeof buf),
                  roi_ctms) < 0) {
        snprintf(why, ws, "coordinate_transformation_mode '%s' (half_pixel or output_half_pixel)",
                 buf);
        return false;
    }
    int64_t oh = pa_int(p, "output_height", 1), ow = pa_int(p, "output_width", 1);
    int64_t sr = pa_int(p, "sampling_ratio", 0);
    if (oh < 1 || ow < 1 || oh > ATTR_LIMIT || ow > ATTR_LIMIT || sr < 0 || sr > ATTR_LIMIT) {
        snprintf(why, ws, "output_height %lld, output_width %lld, sampling_ratio %lld (expected "
                 ">= 1, >= 1, >= 0)", (long long)oh, (long long)ow, (long long)sr);
        return false;
    }
    return true;
}

typedef struct roi_job {
    int64_t H, W, Ho, Wo, smax; /* smax: most samples per bin over the rois */
    bool max_mode;
    int64_t *idx; /* (R, Ho, Wo, smax, 4) flat indices into (N*H*W) */
    double *w;
} roi_job;

/* The 4 bilinear taps of the sample (y, x) of image b (as onnxruntime's
 * RoiAlign: outside [-1, size] nothing, else clamped into the image). */
static void roi_taps(const roi_job *j, int64_t b, double y, double x, int64_t *idx, double *w)
{
    int64_t base = b * j->H * j->W;
    if (y < -1.0 || y > (double)j->H || x < -1.0 || x > (double)j->W) {
        for (int c = 0; c < 4; c++)
            idx[c] = base, w[c] = 0;
        return;
    }
    y = y <= 0 ? 0 : y, x = x <= 0 ? 0 : x;
    int64_t y0 = (int64_t)y, x0 = (int64_t)x, y1, x1;
    if (y0 >= j->H - 1)
        y0 = y1 = j->H - 1, y = (double)y0;
    else
        y1 = y0 + 1;
    if (x0 >= j->W - 1)
        x0 = x1 = j->W - 1, x = (double)x0;
    else
        x1 = x0 + 1;
    double ly = y - (double)y0, lx = x - (double)x0, hy = 1 - ly, hx = 1 - lx;
    idx[0] = base + y0 * j->W + x0, w[0] = hy * hx;
    idx[1] = base + y0 * j->W + x1, w[1] = hy * lx;
    idx[2] = base + y1 * j->W + x0, w[2] = ly * hx;
    idx[3] = base + y1 * j->W + x1, w[3] = ly * lx;
}

/* The taps of every bin of one roi: avg weights divided by the sample count;
 * bins with fewer samples than smax are padded with zero-weight taps (avg)
 * or copies of their first sample (max). */
static void roi_fill(const roi_job *j, int64_t r, int64_t b, const double *box, int64_t gh,
                     int64_t gw)
{
    double bh = box[2] / (double)j->Ho, bw = box[3] / (double)j->Wo;
    int64_t count = gh * gw > 1 ? gh * gw : 1, per = j->smax * 4;
    for (int64_t ph = 0; ph < j->Ho; ph++)
        for (int64_t pw = 0; pw < j->Wo; pw++) {
            int64_t at = ((r * j->Ho + ph) * j->Wo + pw) * per, k = 0;
            int64_t *idx = j->idx + at;
            double *w = j->w + at;
            for (int64_t iy = 0; iy < gh; iy++)
                for (int64_t ix = 0; ix < gw; ix++, k++) {
                    double y = box[0] + (double)ph * bh + ((double)iy + 0.5) * bh / (double)gh;
                    double x = box[1] + (double)pw * bw + ((double)ix + 0.5) * bw / (double)gw;
                    roi_taps(j, b, y, x, idx + 4 * k, w + 4 * k);
                    if (!j->max_mode)
                        for (int c = 0; c < 4; c++)
                            w[4 * k + c] /= (double)count;
                }
            for (; k < j->smax; k++)
                for (int c = 0; c < 4; c++) {
                    bool copy = j->max_mode && gh * gw > 0;
                    idx[4 * k + c] = copy ? idx[c] : b * j->H * j->W;
                    w[4 * k + c] = copy ? w[c] : 0;
                }
        }
}

static kn_status roi_align_convert(kn_onnx_node *n)
{
    kn_status s = need_inputs(n, 3);
    if (s) return s;
    kn_tensor *x = n->in[0], *rois = n->in[1], *bi = n->in[2];
    const Onnx__NodeProto *p = n->proto;
    kn_dtype xdt = kn_tensor_dtype(x);
    if (rank(x) != 4 || rank(rois) != 2 || shp(rois)[1] != 4 || rank(bi) != 1 ||
        shp(bi)[0] != shp(rois)[0])
        return kn__onnx_fail(n, KN_ERR_SHAPE,
                             "expected X (N, C, H, W), rois (num_rois, 4) and batch_indices "
                             "(num_rois); got ranks %d, %d, %d",
                             rank(x), rank(rois), rank(bi));
    if (!kn_dtype_is_float(xdt) || !kn_dtype_is_float(kn_tensor_dtype(rois)) ||
        kn_dtype_is_float(kn_tensor_dtype(bi)) || kn_tensor_dtype(bi) == KN_BOOL)
        return kn__onnx_fail(n, KN_ERR_DTYPE,
                             "X and rois must be floating-point and batch_indices integers");
    bool rc = kn__onnx_is_const(rois), bc = kn__onnx_is_const(bi); /* both asked */
    if (!rc || !bc)
        return kn__onnx_fail(n, KN_ERR_UNSUPPORTED,
                             "rois and batch_indices must be constants (known when the graph is "
                             "built): the sampling positions are computed then");
    char buf[64];
    roi_job j = {.H = shp(x)[2], .W = shp(x)[3]};
    j.Ho = pa_int(p, "output_height", 1), j.Wo = pa_int(p, "output_width", 1);
    j.max_mode = str_index(pa_str(p, "mode", "avg", buf, sizeof buf), roi_modes) == 1;
    int64_t ratio = pa_int(p, "sampling_ratio", 0);
    double scale = pa_float(p, "spatial_scale", 1.0);
    bool half = n->opset >= 16 &&
                str_index(pa_str(p, "coordinate_transformation_mode", "half_pixel", buf,
                                 sizeof buf),
                          roi_ctms) == 0;
    int64_t N = shp(x)[0], C = shp(x)[1], R = shp(rois)[0];
    int64_t out[4] = {R, C, j.Ho, j.Wo};
    tmps l = {0};
    kn_tensor *y = NULL;
    double *rv = NULL, *box = NULL;
    int64_t *bv = NULL, *grid = NULL;
    if (!R || !C || !j.H || !j.W || j.Ho * j.Wo > MAX_MADE / (R * C)) {
        if (R && C && j.H && j.W)
            s = kn__onnx_fail(n, KN_ERR_SHAPE, "the output (%lld, %lld, %lld, %lld) is too large",
                              (long long)R, (long long)C, (long long)j.Ho, (long long)j.Wo);
        else
            y = keep(&l, kn_tensor_zeros(xdt, 4, out));
        goto done;
    }
    rv = kn_alloc(sizeof *rv * (size_t)(4 * R));
    box = kn_alloc(sizeof *box * (size_t)(4 * R)); /* y0, x0, height, width */
    bv = kn_alloc(sizeof *bv * (size_t)R);
    grid = kn_alloc(sizeof *grid * (size_t)(2 * R));
    if (!rv || !box || !bv || !grid) goto done;
    if (kn_tensor_copy_to(rois, KN_F64, rv, sizeof *rv * (size_t)(4 * R)) ||
        kn_tensor_copy_to(bi, KN_I64, bv, sizeof *bv * (size_t)R))
        goto done;
    double offset = half ? 0.5 : 0;
    for (int64_t r = 0; r < R; r++) {
        const double *q = rv + 4 * r; /* x1, y1, x2, y2 */
        if (bv[r] < 0 || bv[r] >= N) {
            s = kn__onnx_fail(n, KN_ERR_ARG, "batch_indices[%lld] is %lld, expected in [0, %lld)",
                              (long long)r, (long long)bv[r], (long long)N);
            goto done;
        }
        double *bx = box + 4 * r;
        bx[0] = q[1] * scale - offset, bx[1] = q[0] * scale - offset;
        bx[2] = q[3] * scale - offset - bx[0], bx[3] = q[2] * scale - offset - bx[1];
        if (!half) /* output_half_pixel: rois at least 1 pixel */
            bx[2] = bx[2] > 1 ? bx[2] : 1, bx[3] = bx[3] > 1 ? bx[3] : 1;
        for (int a = 0; a < 2; a++) {
            double g = ratio > 0 ? (double)ratio : ceil(bx[2 + a] / (double)(a ? j.Wo : j.Ho));
            if (!isfinite(bx[a]) || !(g < 65536)) {
                s = kn__onnx_fail(n, KN_ERR_ARG,
                                  "roi %lld (%g, %g, %g, %g) is not finite or too large to sample",
                                  (long long)r, q[0], q[1], q[2], q[3]);
                goto done;
            }
            grid[2 * r + a] = g > 0 ? (int64_t)g : 0;
        }
        int64_t cnt = grid[2 * r] * grid[2 * r + 1];
        j.smax = cnt > j.smax ? cnt : j.smax;
    }
    if (!j.smax) j.smax = 1;
    int64_t total = R * j.Ho * j.Wo;
    if (total > ROI_MAX_TAPS / (4 * j.smax)) {
        s = kn__onnx_fail(n, KN_ERR_SHAPE,
                          "%lld rois of %lld x %lld bins with up to %lld samples each: too many "
                          "taps",
                          (long long)R, (long long)j.Ho, (long long)j.Wo, (long long)j.smax);
        goto done;
    }
    total *= 4 * j.smax;
    j.idx = kn_alloc(sizeof *j.idx * (size_t)total);
    j.w = kn_alloc(sizeof *j.w * (size_t)total);
    if (!j.idx || !j.w) goto done;
    for (int64_t r = 0; r < R; r++)
        roi_fill(&j, r, bv[r], box + 4 * r, grid[2 * r], grid[2 * r + 1]);
    kn_dtype ct = xdt == KN_F64 ? KN_F64 : KN_F32;
    kn_tensor *idx = keep(&l, kn_tensor_from_data(KN_I64, 1, &total, j.idx));
    kn_tensor *w = tensor_f64(&l, ct, 1, &total, j.w);
    kn_tensor *xv = pixels_by_channel(&l, cast_to(&l, x, ct));
    kn_tensor *g = op2(&l, kn_mul, xv && idx ? keep(&l, kn_index_select(xv, 1, idx)) : NULL, w);
    int64_t sh[6] = {C, R, j.Ho, j.Wo, j.max_mode ? j.smax : 4 * j.smax, 4};
    int ax4 = 4, ax5 = 5;
    if (j.max_mode) {
        g = reshape_to(&l, g, 6, sh);
        g = g ? keep(&l, kn_max(g, 1, &ax5, false)) : NULL;
        g = g ? keep(&l, kn_max(g, 1, &ax4, false)) : NULL;
    } else {
        g = reshape_to(&l, g, 5, sh);
        g = g ? keep(&l, kn_sum(g, 1, &ax4, false)) : NULL;
    }
    static const int perm[4] = {1, 0, 2, 3};
    y = cast_to(&l, permute_to(&l, g, 4, perm), xdt);
done:
    if (!s) s = y ? KN_OK : failed(n);
    set_out(n, 0, y);
    kn_free(rv), kn_free(box), kn_free(bv), kn_free(grid), kn_free(j.idx), kn_free(j.w);
    tmps_free(&l);
    return s;
}

/* ---------------------------------------------------------------- NonMaxSuppression */
static bool nms_check(const Onnx__NodeProto *p, int opset, char *why, size_t ws)
{
    static const attr_spec spec[] = {{"center_point_box", A_INT}, {NULL, 0}};
    (void)opset;
    if (!check_types(p, spec, why, ws)) return false;
    int64_t c = pa_int(p, "center_point_box", 0);
    if (c != 0 && c != 1) {
        snprintf(why, ws, "center_point_box %lld (0 or 1)", (long long)c);
        return false;
    }
    return true;
}

typedef struct nms_cand {
    float score;
    int64_t box;
} nms_cand;

/* Higher score first, then the lower box index (NaN scores last). */
static int nms_order(const void *pa_, const void *pb_)
{
    const nms_cand *a = pa_, *b = pb_;
    bool na = isnan(a->score), nb = isnan(b->score);
    if (na != nb) return na ? 1 : -1;
    if (!na && a->score != b->score) return a->score > b->score ? -1 : 1;
    return a->box < b->box ? -1 : a->box > b->box;
}

/* A box as (x_min, y_min, x_max, y_max). */
static void nms_corners(const float *b, bool center, float *c)
{
    if (center) {
        c[0] = b[0] - b[2] / 2, c[2] = b[0] + b[2] / 2;
        c[1] = b[1] - b[3] / 2, c[3] = b[1] + b[3] / 2;
    } else { /* [y1, x1, y2, x2], any two opposite corners */
        c[0] = fminf(b[1], b[3]), c[2] = fmaxf(b[1], b[3]);
        c[1] = fminf(b[0], b[2]), c[3] = fmaxf(b[0], b[2]);
    }
}

/* True when the IoU of a and b exceeds the threshold (degenerate boxes and
 * disjoint boxes never suppress). */
static bool nms_suppress(const float *a, const float *b, bool center, float threshold)
{
    float p[4], q[4];
    nms_corners(a, center, p);
    nms_corners(b, center, q);
    float x0 = fmaxf(p[0], q[0]), x1 = fminf(p[2], q[2]);
    float y0 = fmaxf(p[1], q[1]), y1 = fminf(p[3], q[3]);
    if (!(x1 > x0) || !(y1 > y0)) return false;
    float inter = (x1 - x0) * (y1 - y0);
    float area_a = (p[2] - p[0]) * (p[3] - p[1]), area_b = (q[2] - q[0]) * (q[3] - q[1]);
    float uni = area_a + area_b - inter;
    if (!(inter > 0) || !(area_a > 0) || !(area_b > 0) || !(uni > 0)) return false;
    return inter / uni > threshold;
}

static kn_status nms_convert(kn_onnx_node *n)
{
    kn_status s = need_inputs(n, 2);
    if (s) return s;
    kn_tensor *boxes = n->in[0], *scores = n->in[1];
    if (rank(boxes) != 3 || shp(boxes)[2] != 4 || rank(scores) != 3 ||
        shp(scores)[0] != shp(boxes)[0] || shp(scores)[2] != shp(boxes)[1])
        return kn__onnx_fail(n, KN_ERR_SHAPE,
                             "expected boxes (batches, boxes, 4) and scores (batches, classes, "
                             "boxes); got ranks %d and %d",
                             rank(boxes), rank(scores));
    bool bc = kn__onnx_is_const(boxes), sc = kn__onnx_is_const(scores); /* both asked */
    if (!bc || !sc)
        return kn__onnx_fail(n, KN_ERR_UNSUPPORTED,
                             "boxes and scores must be constants (known when the graph is "
                             "built): the number of selected boxes decides the output's shape");
    int64_t max_out = 0, cnt;
    double iou = 0, score_min = 0;
    bool has_min = in_at(n, 4) != NULL;
    if (in_at(n, 2)) {
        int c;
        if ((s = kn__onnx_const_ints(n, 2, &max_out, 1, &c))) return s;
        if (c != 1)
            return kn__onnx_fail(n, KN_ERR_SHAPE, "max_output_boxes_per_class must hold one value");
    }
    if (in_at(n, 3) && (s = kn__onnx_const_double(n, 3, &iou))) return s;
    if (has_min && (s = kn__onnx_const_double(n, 4, &score_min))) return s;
    if (!(iou >= 0 && iou <= 1))
        return kn__onnx_fail(n, KN_ERR_ARG, "iou_threshold is %g, expected in [0, 1]", iou);
    bool center = pa_int(n->proto, "center_point_box", 0) == 1;
    int64_t B = shp(boxes)[0], S = shp(boxes)[1], K = shp(scores)[1];
    max_out = max_out < 0 ? 0 : max_out > S ? S : max_out;
    float *bx = kn_alloc(sizeof *bx * (size_t)(B * S * 4 + 1));
    float *sv = kn_alloc(sizeof *sv * (size_t)(B * K * S + 1));
    nms_cand *cand = kn_alloc(sizeof *cand * (size_t)(S + 1));
    int64_t *keep_box = kn_alloc(sizeof *keep_box * (size_t)(S + 1));
    cnt = B * K * max_out;
    int64_t *sel = kn_alloc(sizeof *sel * (size_t)(3 * cnt + 3)), n_sel = 0;
    kn_tensor *y = NULL;
    if (!bx || !sv || !cand || !keep_box || !sel) goto done;
    if (B * S > 0 && kn_tensor_copy_to(boxes, KN_F32, bx, sizeof *bx * (size_t)(B * S * 4))) goto done;
    if (B * K * S > 0 && kn_tensor_copy_to(scores, KN_F32, sv, sizeof *sv * (size_t)(B * K * S)))
        goto done;
    for (int64_t b = 0; b < B && max_out; b++)
        for (int64_t k = 0; k < K; k++) {
            const float *bb = bx + b * S * 4, *ss = sv + (b * K + k) * S;
            int64_t nc = 0, nk = 0;
            for (int64_t i = 0; i < S; i++)
                if (!has_min || ss[i] > (float)score_min) cand[nc].score = ss[i], cand[nc++].box = i;
            qsort(cand, (size_t)nc, sizeof *cand, nms_order);
            for (int64_t c = 0; c < nc && nk < max_out; c++) {
                bool ok = true;
                for (int64_t q = 0; q < nk && ok; q++)
                    ok = !nms_suppress(bb + 4 * cand[c].box, bb + 4 * keep_box[q], center,
                                       (float)iou);
                if (!ok) continue;
                keep_box[nk++] = cand[c].box;
                sel[3 * n_sel] = b, sel[3 * n_sel + 1] = k, sel[3 * n_sel + 2] = cand[c].box;
                n_sel++;
            }
        }
    int64_t shape[2] = {n_sel, 3};
    y = kn_tensor_from_data(KN_I64, 2, shape, sel);
done:
    s = y ? KN_OK : failed(n);
    set_out(n, 0, y);
    kn_tensor_unref(y);
    kn_free(bx), kn_free(sv), kn_free(cand), kn_free(keep_box), kn_free(sel);
    return s;
}

/* ================================================================ table */
static bool layer_norm_check(const Onnx__NodeProto *p, int opset, char *why, size_t ws)
{
    return ln_check(p, opset, why, ws);
}

static bool eps_check(const Onnx__NodeProto *p, int opset, char *why, size_t ws)
{
    static const attr_spec spec[] = {{"epsilon", A_FLOAT}, {NULL, 0}};
    (void)opset;
    return check_types(p, spec, why, ws);
}

static bool mvn_check(const Onnx__NodeProto *p, int opset, char *why, size_t ws)
{
    static const attr_spec spec[] = {{"axes", A_INTS}, {NULL, 0}};
    (void)opset;
    return check_types(p, spec, why, ws);
}

const kn_onnx_op kn__onnx_ops_nn[] = {
    {"", "Conv", 1, conv_convert, conv_check},
    {"", "ConvTranspose", 1, conv_transpose_convert, conv_check},
    {"", "MaxPool", 1, max_pool_convert, pool_check},
    {"", "AveragePool", 1, avg_pool_convert, pool_check},
    {"", "LpPool", 2, lp_pool_convert, lp_pool_check},
    {"", "GlobalAveragePool", 1, global_avg_pool_convert, NULL},
    {"", "GlobalMaxPool", 1, global_max_pool_convert, NULL},
    {"", "GlobalLpPool", 2, global_lp_pool_convert, global_lp_pool_check},
    {"", "MaxUnpool", 9, max_unpool_convert, pool_check},
    {"", "BatchNormalization", 7, bn_convert, bn_check},
    {"", "InstanceNormalization", 6, instance_norm_convert, eps_check},
    {"", "LayerNormalization", 17, ln_convert, layer_norm_check},
    {"", "LRN", 1, lrn_convert, lrn_check},
    {"", "MeanVarianceNormalization", 9, mvn_convert, mvn_check},
    {"", "LpNormalization", 1, lp_norm_convert, lp_norm_check},
    {"", "Gemm", 7, gemm_convert, gemm_check},
    {"", "Dropout", 7, dropout_convert, dropout_check},
    {"", "Resize", 10, resize_convert, resize_check},
    {"", "Upsample", 7, resize_convert, resize_check},
    {"", "RNN", 7, rnn_convert, rnn_check},
    {"", "GRU", 7, rnn_convert, rnn_check},
    {"", "LSTM", 7, rnn_convert, rnn_check},
    {"", "GridSample", 16, grid_sample_convert, grid_sample_check},
    {"", "RoiAlign", 10, roi_align_convert, roi_align_check},
    {"", "NonMaxSuppression", 10, nms_convert, nms_check},
    {NULL, NULL, 0, NULL, NULL},
};
#endif
