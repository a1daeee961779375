/* metric.c — evaluation metrics as accumulators: accuracy, top-k, cross-
 * entropy and perplexity, MAE, RMSE, F1 (binary, macro) and a running mean.
 * Sums are kept in double; inputs of any dtype are read through f64 copies.
 * Relies on src/base and the public tensor API. */
#include "../tensor/tensor.h"

#include <math.h>

static const char *const metric_names[KN_METRIC_KIND_COUNT] = {
    "accuracy", "top_k_accuracy", "cross_entropy", "perplexity", "mae", "rmse", "f1", "mean"};

struct kn_metric {
    kn_metric_kind kind;
    kn_metric_config cfg;
    double sum;    /* correct count, sum of losses / errors / values */
    int64_t count; /* samples */
    int64_t n_classes;
    int64_t *tp, *fp, *fn; /* F1, per class (binary: class 1 at index 1) */
};

kn_metric *kn_metric_new(kn_metric_kind kind, const kn_metric_config *cfg)
{
    const char *who = "metric_new";
    if ((unsigned)kind >= KN_METRIC_KIND_COUNT)
        return kn__error_null(KN_ERR_ARG, "%s: kind is %d, expected a kn_metric_kind", who,
                              (int)kind);
    kn_metric_config c = cfg ? *cfg : (kn_metric_config){.k = 5, .threshold = 0.5};
    if (kind == KN_METRIC_TOP_K && c.k < 1)
        return kn__error_null(KN_ERR_ARG, "%s: k is %lld, expected >= 1", who, (long long)c.k);
    if (kind == KN_METRIC_F1 && !isfinite(c.threshold))
        return kn__error_null(KN_ERR_ARG, "%s: threshold is %g, expected finite", who, c.threshold);
    kn_metric *m = kn_alloc(sizeof *m);
    if (!m) return NULL;
    *m = (kn_metric){.kind = kind, .cfg = c};
    return m;
}

void kn_metric_reset(kn_metric *m)
{
    if (!m) return;
    m->sum = 0, m->count = 0;
    for (int64_t c = 0; c < m->n_classes; c++)
        m->tp[c] = m->fp[c] = m->fn[c] = 0;
}

void kn_metric_free(kn_metric *m)
{
    if (!m) return;
    kn_free(m->tp), kn_free(m->fp), kn_free(m->fn);
    kn_free(m);
}

const char *kn_metric_name(const kn_metric *m)
{
    return m ? metric_names[m->kind] : "?";
}

int64_t kn_metric_count(const kn_metric *m)
{
    return m ? m->count : 0;
}

static double f1_of(int64_t tp, int64_t fp, int64_t fn)
{
    int64_t d = 2 * tp + fp + fn;
    return d ? 2.0 * (double)tp / (double)d : 0.0;
}

double kn_metric_value(const kn_metric *m)
{
    if (!m || m->count == 0) return NAN;
    double mean = m->sum / (double)m->count;
    switch (m->kind) {
    case KN_METRIC_PERPLEXITY:
        return exp(mean);
    case KN_METRIC_RMSE:
        return sqrt(mean);
    case KN_METRIC_F1: {
        if (!m->cfg.macro) return f1_of(m->tp[1], m->fp[1], m->fn[1]);
        double s = 0;
        int64_t seen = 0;
        for (int64_t c = 0; c < m->n_classes; c++) {
            if (m->tp[c] + m->fp[c] + m->fn[c] == 0) continue; /* in no label or prediction */
            s += f1_of(m->tp[c], m->fp[c], m->fn[c]);
            seen++;
        }
        return seen ? s / (double)seen : 0.0;
    }
    default:
        return mean;
    }
}

/* ------------------------------------------------------------- updating */

/* A contiguous f64 copy of t (kn_alloc'd; at least one element). */
static double *read_f64(const kn_tensor *t)
{
    int64_t n = kn_tensor_numel(t);
    double *buf = kn_alloc(sizeof(double) * (size_t)(n ? n : 1));
    if (buf && kn_tensor_copy_to(t, KN_F64, buf, sizeof(double) * (size_t)n)) {
        kn_free(buf);
        return NULL;
    }
    return buf;
}

static int64_t argmax_row(const double *row, int64_t c)
{
    int64_t best = 0;
    for (int64_t j = 1; j < c; j++)
        if (row[j] > row[best]) best = j;
    return best;
}

/* The class of a label value, or an error naming the metric. */
static kn_status label_class(const kn_metric *m, double v, int64_t n_classes, int64_t *cls)
{
    if (!(v >= 0) || v != floor(v) || (n_classes > 0 && v >= (double)n_classes))
        return kn__error(KN_ERR_ARG, "metric_update: %s label %g is not a class id in [0, %lld)",
                         metric_names[m->kind], v, (long long)n_classes);
    *cls = (int64_t)v;
    return KN_OK;
}

static kn_status ensure_classes(kn_metric *m, int64_t c)
{
    if (m->n_classes == c) return KN_OK;
    if (m->n_classes)
        return kn__error(KN_ERR_SHAPE, "metric_update: f1 saw %lld classes before, now %lld",
                         (long long)m->n_classes, (long long)c);
    size_t bytes = sizeof(int64_t) * (size_t)c;
    int64_t *tp = kn_alloc(bytes), *fp = kn_alloc(bytes), *fn = kn_alloc(bytes);
    if (!tp || !fp || !fn) {
        kn_free(tp), kn_free(fp), kn_free(fn);
        return kn_last_status();
    }
    memset(tp, 0, bytes), memset(fp, 0, bytes), memset(fn, 0, bytes);
    m->tp = tp, m->fp = fp, m->fn = fn, m->n_classes = c;
    return KN_OK;
}

/* The shapes: "rows" of pred (C scores each, C = 0 when pred holds one value
 * per label) matching the labels. */
static kn_status layout(const kn_metric *m, const kn_tensor *pred, const kn_tensor *label,
                        bool scores_only, int64_t *c)
{
    const char *name = metric_names[m->kind];
    int pn = kn_tensor_ndim(pred), ln = kn_tensor_ndim(label);
    const int64_t *ps = kn_tensor_shape(pred), *ls = kn_tensor_shape(label);
    bool same = pn == ln, plus_c = pn == ln + 1;
    for (int d = 0; d < ln && d < pn; d++)
        same &= ps[d] == ls[d], plus_c &= ps[d] == ls[d];
    if (plus_c && ps[pn - 1] >= 1) {
        *c = ps[pn - 1];
        return KN_OK;
    }
    if (same && !scores_only) {
        *c = 0;
        return KN_OK;
    }
    char a[64], b[64];
    return kn__error(KN_ERR_SHAPE,
                     "metric_update: %s pred has shape %s and label %s, expected "
                     "label's shape%s plus a class axis",
                     name, kn__shape_str(pn, ps, a, sizeof a), kn__shape_str(ln, ls, b, sizeof b),
                     scores_only ? "" : " or label's shape");
}

static kn_status update_classes(kn_metric *m, const double *p, const double *l, int64_t n,
                                int64_t c)
{
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t y = 0;
        kn_status s = label_class(m, l[i], c, &y);
        if (s) return s;
        const double *row = p + i * (c ? c : 1);
        switch (m->kind) {
        case KN_METRIC_ACCURACY:
            sum +=
                (c ? argmax_row(row, c) : (int64_t)row[0]) == y && (c || row[0] == floor(row[0]));
            break;
        case KN_METRIC_TOP_K: {
            int64_t greater = 0;
            for (int64_t j = 0; j < c; j++)
                greater += row[j] > row[y];
            sum += greater < m->cfg.k;
            break;
        }
        default: { /* cross-entropy, perplexity */
            double lp;
            if (m->cfg.from_logits) {
                double mx = row[argmax_row(row, c)], z = 0;
                for (int64_t j = 0; j < c; j++)
                    z += exp(row[j] - mx);
                lp = row[y] - mx - log(z);
            } else {
                lp = log(row[y] + 1e-12);
            }
            sum -= lp;
        }
        }
    }
    m->sum += sum, m->count += n;
    return KN_OK;
}

static kn_status update_f1(kn_metric *m, const double *p, const double *l, int64_t n, int64_t c)
{
    kn_status s = ensure_classes(m, m->cfg.macro ? c : 2);
    if (s) return s;
    int64_t nc = m->n_classes;
    for (int64_t i = 0; i < n; i++) /* check all labels before counting */
        if ((s = label_class(m, l[i], nc, &(int64_t){0}))) return s;
    for (int64_t i = 0; i < n; i++) {
        int64_t y = (int64_t)l[i];
        int64_t q = c ? argmax_row(p + i * c, c) : p[i] >= m->cfg.threshold;
        if (q == y) {
            m->tp[y]++;
        } else {
            m->fp[q]++;
            m->fn[y]++;
        }
    }
    m->count += n;
    return KN_OK;
}

kn_status kn_metric_update(kn_metric *m, const kn_tensor *pred, const kn_tensor *label)
{
    if (!m || !pred) return kn__error(KN_ERR_ARG, "metric_update: metric or pred is NULL");
    if (m->kind != KN_METRIC_MEAN && !label)
        return kn__error(KN_ERR_ARG, "metric_update: %s needs a label", metric_names[m->kind]);
    if (kn_tensor_is_symbolic(pred) || (label && kn_tensor_is_symbolic(label)))
        return kn__error(KN_ERR_ARG, "metric_update: a tensor is symbolic, expected data");
    int64_t c = 0, n = label ? kn_tensor_numel(label) : kn_tensor_numel(pred);
    kn_status s = KN_OK;
    switch (m->kind) {
    case KN_METRIC_ACCURACY:
        s = layout(m, pred, label, false, &c);
        break;
    case KN_METRIC_F1:
        s = layout(m, pred, label, m->cfg.macro, &c);
        if (!s && !m->cfg.macro && c != 0 && c != 2)
            s = kn__error(KN_ERR_SHAPE,
                          "metric_update: binary f1 takes (N) or (N, 2) scores, "
                          "got %lld classes (set macro for more)",
                          (long long)c);
        break;
    case KN_METRIC_TOP_K:
    case KN_METRIC_CROSS_ENTROPY:
    case KN_METRIC_PERPLEXITY:
        s = layout(m, pred, label, true, &c);
        break;
    case KN_METRIC_MAE:
    case KN_METRIC_RMSE:
        if (kn_tensor_numel(pred) != n)
            s = kn__error(KN_ERR_SHAPE,
                          "metric_update: %s pred has %lld elements and label %lld, "
                          "expected the same",
                          metric_names[m->kind], (long long)kn_tensor_numel(pred), (long long)n);
        break;
    default:
        break;
    }
    if (s) return s;
    double *p = read_f64(pred), *l = label ? read_f64(label) : NULL;
    if (!p || (label && !l)) {
        kn_free(p), kn_free(l);
        return kn_last_status();
    }
    switch (m->kind) {
    case KN_METRIC_MAE:
    case KN_METRIC_RMSE:
        for (int64_t i = 0; i < n; i++) {
            double d = p[i] - l[i];
            m->sum += m->kind == KN_METRIC_MAE ? fabs(d) : d * d;
        }
        m->count += n;
        break;
    case KN_METRIC_MEAN:
        for (int64_t i = 0; i < n; i++)
            m->sum += p[i];
        m->count += n;
        break;
    case KN_METRIC_F1:
        s = update_f1(m, p, l, n, c);
        break;
    default:
        s = update_classes(m, p, l, n, c);
        break;
    }
    kn_free(p), kn_free(l);
    return s;
}
