/* transform.c — per-sample image transforms as a pipeline of steps: to-float,
 * normalize, random crop with padding, horizontal flip, random resized crop
 * (bilinear, half-pixel centers). Images are (C, H, W) or (H, W), any
 * strides in, contiguous out. Random draws use Philox keyed by
 * (seed, step), so a sample's result depends on its seed alone. The
 * geometry follows torchvision 0.14. Relies on src/tensor. */
#include "data_internal.h"

#include <math.h>

typedef enum step_kind { TO_FLOAT, NORMALIZE, RANDOM_CROP, HFLIP, RESIZED_CROP } step_kind;
static const char *const step_names[] = {"to_float", "normalize", "random_crop", "hflip",
                                         "random_resized_crop"};

typedef struct step {
    step_kind kind;
    int64_t h, w, pad;
    double p, scale[2], ratio[2];
    int n_channels;
    float *mean, *std;
} step;

struct kn_transform {
    int n, cap;
    step *steps;
};

/* The random stream of one step of one sample. */
typedef struct rng {
    uint64_t key, pos;
} rng;
static double uniform(rng *r)
{
    return kn__rng_uniform_at(r->key, r->pos++);
}
/* Integer in [lo, hi), like torch.randint(lo, hi). */
static int64_t randint(rng *r, int64_t lo, int64_t hi)
{
    int64_t v = lo + (int64_t)(uniform(r) * (double)(hi - lo));
    return v < hi ? v : hi - 1;
}

kn_transform *kn_transform_new(void)
{
    kn_transform *t = kn_alloc(sizeof *t);
    if (t) *t = (kn_transform){0};
    return t;
}

void kn_transform_free(kn_transform *t)
{
    if (!t) return;
    for (int i = 0; i < t->n; i++)
        kn_free(t->steps[i].mean), kn_free(t->steps[i].std);
    kn_free(t->steps);
    kn_free(t);
}

int kn_transform_len(const kn_transform *t)
{
    return t ? t->n : 0;
}

static kn_status push(kn_transform *t, const step *s)
{
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 4;
        step *bigger = kn_alloc((size_t)cap * sizeof *bigger);
        if (!bigger) return kn_last_status();
        if (t->n) memcpy(bigger, t->steps, (size_t)t->n * sizeof *bigger);
        kn_free(t->steps);
        t->steps = bigger, t->cap = cap;
    }
    t->steps[t->n++] = *s;
    return KN_OK;
}

kn_status kn_transform_add_to_float(kn_transform *t)
{
    if (!t) return kn__error(KN_ERR_ARG, "transform_add_to_float: t is NULL");
    return push(t, &(step){.kind = TO_FLOAT});
}

kn_status kn_transform_add_normalize(kn_transform *t, int n_channels, const float *mean,
                                     const float *std)
{
    const char *who = "transform_add_normalize";
    if (!t || !mean || !std)
        return kn__error(KN_ERR_ARG, "%s: %s is NULL", who, !t ? "t" : !mean ? "mean" : "std");
    if (n_channels < 1)
        return kn__error(KN_ERR_ARG, "%s: n_channels is %d, expected >= 1", who, n_channels);
    for (int c = 0; c < n_channels; c++)
        if (!(std[c] > 0) || !isfinite(std[c]) || !isfinite(mean[c]))
            return kn__error(KN_ERR_ARG,
                             "%s: channel %d has mean %g, std %g; expected finite values, std > 0",
                             who, c, mean[c], std[c]);
    step s = {.kind = NORMALIZE, .n_channels = n_channels};
    s.mean = kn_alloc((size_t)n_channels * sizeof(float));
    s.std = s.mean ? kn_alloc((size_t)n_channels * sizeof(float)) : NULL;
    kn_status st = s.std ? KN_OK : kn_last_status();
    if (!st) {
        memcpy(s.mean, mean, (size_t)n_channels * sizeof(float));
        memcpy(s.std, std, (size_t)n_channels * sizeof(float));
        st = push(t, &s);
    }
    if (st) kn_free(s.mean), kn_free(s.std);
    return st;
}

kn_status kn_transform_add_random_crop(kn_transform *t, int64_t height, int64_t width,
                                       int64_t padding)
{
    const char *who = "transform_add_random_crop";
    if (!t) return kn__error(KN_ERR_ARG, "%s: t is NULL", who);
    if (height < 1 || width < 1 || padding < 0 || padding > (1 << 20) || height > (1 << 24) ||
        width > (1 << 24))
        return kn__error(KN_ERR_ARG,
                         "%s: size %lldx%lld, padding %lld; expected sizes >= 1, padding >= 0", who,
                         (long long)height, (long long)width, (long long)padding);
    return push(t, &(step){.kind = RANDOM_CROP, .h = height, .w = width, .pad = padding});
}

kn_status kn_transform_add_hflip(kn_transform *t, double p)
{
    if (!t) return kn__error(KN_ERR_ARG, "transform_add_hflip: t is NULL");
    if (!(p >= 0 && p <= 1))
        return kn__error(KN_ERR_ARG, "transform_add_hflip: p is %g, expected in [0, 1]", p);
    return push(t, &(step){.kind = HFLIP, .p = p});
}

kn_status kn_transform_add_random_resized_crop(kn_transform *t, int64_t height, int64_t width,
                                               double scale_lo, double scale_hi, double ratio_lo,
                                               double ratio_hi)
{
    const char *who = "transform_add_random_resized_crop";
    if (!t) return kn__error(KN_ERR_ARG, "%s: t is NULL", who);
    if (height < 1 || width < 1 || height > (1 << 24) || width > (1 << 24))
        return kn__error(KN_ERR_ARG, "%s: size %lldx%lld, expected sizes >= 1", who,
                         (long long)height, (long long)width);
    if (!(scale_lo > 0 && scale_lo <= scale_hi && scale_hi <= 1))
        return kn__error(KN_ERR_ARG, "%s: scale is (%g, %g), expected 0 < lo <= hi <= 1", who,
                         scale_lo, scale_hi);
    if (!(ratio_lo > 0 && ratio_lo <= ratio_hi && isfinite(ratio_hi)))
        return kn__error(KN_ERR_ARG, "%s: ratio is (%g, %g), expected 0 < lo <= hi", who, ratio_lo,
                         ratio_hi);
    return push(t, &(step){.kind = RESIZED_CROP,
                           .h = height,
                           .w = width,
                           .scale = {scale_lo, scale_hi},
                           .ratio = {ratio_lo, ratio_hi}});
}

/* ---------------------------------------------------------------- steps
 * Each takes a contiguous image viewed as (C, H, W) and returns a new one. */
typedef struct image {
    int64_t c, h, w;
} image;

static kn_tensor *new_like(const kn_tensor *x, kn_dtype dt, image g)
{
    int64_t shape[3] = {g.c, g.h, g.w};
    return x->ndim == 3 ? kn__tensor_new(dt, 3, shape) : kn__tensor_new(dt, 2, shape + 1);
}

static kn_tensor *to_float(const char *who, kn_tensor *x, image g)
{
    if (x->dtype != KN_U8)
        return kn__error_null(KN_ERR_DTYPE, "%s: input is %s, expected u8", who,
                              kn_dtype_name(x->dtype));
    kn_tensor *y = new_like(x, KN_F32, g);
    if (!y) return NULL;
    const uint8_t *src = (const uint8_t *)kn__tensor_ptr(x);
    float *dst = kn_tensor_data(y);
    for (int64_t i = 0, n = g.c * g.h * g.w; i < n; i++)
        dst[i] = (float)src[i] / 255.0f;
    return y;
}

static kn_tensor *normalize(const char *who, const step *s, kn_tensor *x, image g)
{
    if (x->dtype != KN_F32)
        return kn__error_null(KN_ERR_DTYPE, "%s: input is %s, expected f32 (add to_float first)",
                              who, kn_dtype_name(x->dtype));
    if (g.c != s->n_channels)
        return kn__error_null(KN_ERR_SHAPE, "%s: input has %lld channels, expected %d", who,
                              (long long)g.c, s->n_channels);
    kn_tensor *y = new_like(x, KN_F32, g);
    if (!y) return NULL;
    const float *src = (const float *)kn__tensor_ptr(x);
    float *dst = kn_tensor_data(y);
    for (int64_t c = 0, hw = g.h * g.w; c < g.c; c++)
        for (int64_t i = 0; i < hw; i++)
            dst[c * hw + i] = (src[c * hw + i] - s->mean[c]) / s->std[c];
    return y;
}

/* Copies the window [top, top+out.h) x [left, left+out.w) of x, where the
 * window may reach outside x by up to the padding (zeros there). */
static kn_tensor *crop(kn_tensor *x, image g, int64_t top, int64_t left, image out)
{
    kn_tensor *y = new_like(x, x->dtype, out);
    if (!y) return NULL;
    size_t es = kn_dtype_size(x->dtype);
    const char *src = kn__tensor_ptr(x);
    char *dst = kn_tensor_data(y);
    memset(dst, 0, (size_t)(out.c * out.h * out.w) * es);
    int64_t j0 = left < 0 ? -left : 0, j1 = g.w - left < out.w ? g.w - left : out.w;
    for (int64_t c = 0; c < g.c; c++)
        for (int64_t i = 0; i < out.h; i++) {
            int64_t si = top + i;
            if (si < 0 || si >= g.h || j1 <= j0) continue;
            memcpy(dst + ((c * out.h + i) * out.w + j0) * (int64_t)es,
                   src + ((c * g.h + si) * g.w + left + j0) * (int64_t)es, (size_t)(j1 - j0) * es);
        }
    return y;
}

static kn_tensor *random_crop(const char *who, const step *s, kn_tensor *x, image g, rng *r)
{
    int64_t ph = g.h + 2 * s->pad, pw = g.w + 2 * s->pad;
    if (s->h > ph || s->w > pw)
        return kn__error_null(KN_ERR_SHAPE,
                              "%s: crop %lldx%lld is larger than the padded image %lldx%lld", who,
                              (long long)s->h, (long long)s->w, (long long)ph, (long long)pw);
    int64_t i = randint(r, 0, ph - s->h + 1), j = randint(r, 0, pw - s->w + 1);
    return crop(x, g, i - s->pad, j - s->pad, (image){g.c, s->h, s->w});
}

static kn_tensor *hflip(const step *s, kn_tensor *x, image g, rng *r)
{
    if (!(uniform(r) < s->p)) return crop(x, g, 0, 0, g); /* a copy */
    kn_tensor *y = new_like(x, x->dtype, g);
    if (!y) return NULL;
    size_t es = kn_dtype_size(x->dtype);
    const char *src = kn__tensor_ptr(x);
    char *dst = kn_tensor_data(y);
    for (int64_t row = 0; row < g.c * g.h; row++)
        for (int64_t j = 0; j < g.w; j++)
            memcpy(dst + (row * g.w + j) * (int64_t)es,
                   src + (row * g.w + g.w - 1 - j) * (int64_t)es, es);
    return y;
}

/* PyTorch's upsample_bilinear2d source index, align_corners = false. */
static void source_index(int64_t dst, int64_t in, int64_t out, int64_t *i0, int64_t *i1,
                         float *lambda)
{
    float scale = (float)in / (float)out;
    float src = scale * ((float)dst + 0.5f) - 0.5f;
    if (src < 0) src = 0;
    *i0 = (int64_t)src;
    if (*i0 > in - 1) *i0 = in - 1;
    *i1 = *i0 < in - 1 ? *i0 + 1 : *i0;
    *lambda = src - (float)*i0;
}

/* Resizes the window (top, left, bh, bw) of x to out, bilinear. */
static kn_tensor *resize(kn_tensor *x, image g, int64_t top, int64_t left, int64_t bh, int64_t bw,
                         image out)
{
    kn_tensor *y = new_like(x, x->dtype, out);
    if (!y) return NULL;
    bool u8 = x->dtype == KN_U8;
    const char *src = kn__tensor_ptr(x);
    char *dst = kn_tensor_data(y);
    for (int64_t i = 0; i < out.h; i++) {
        int64_t h0, h1;
        float lh;
        source_index(i, bh, out.h, &h0, &h1, &lh);
        for (int64_t j = 0; j < out.w; j++) {
            int64_t w0, w1;
            float lw;
            source_index(j, bw, out.w, &w0, &w1, &lw);
            int64_t a = (top + h0) * g.w + left, b = (top + h1) * g.w + left;
            for (int64_t c = 0; c < g.c; c++) {
                int64_t plane = c * g.h * g.w, o = (c * out.h + i) * out.w + j;
                float v00, v01, v10, v11;
                if (u8) {
                    const uint8_t *p = (const uint8_t *)src + plane;
                    v00 = p[a + w0], v01 = p[a + w1], v10 = p[b + w0], v11 = p[b + w1];
                } else {
                    const float *p = (const float *)src + plane;
                    v00 = p[a + w0], v01 = p[a + w1], v10 = p[b + w0], v11 = p[b + w1];
                }
                float v = (1 - lh) * ((1 - lw) * v00 + lw * v01) + lh * ((1 - lw) * v10 + lw * v11);
                if (u8)
                    ((uint8_t *)dst)[o] = (uint8_t)fminf(fmaxf(nearbyintf(v), 0.0f), 255.0f);
                else
                    ((float *)dst)[o] = v;
            }
        }
    }
    return y;
}

static kn_tensor *random_resized_crop(const char *who, const step *s, kn_tensor *x, image g, rng *r)
{
    if (x->dtype != KN_U8 && x->dtype != KN_F32)
        return kn__error_null(KN_ERR_DTYPE, "%s: input is %s, expected u8 or f32", who,
                              kn_dtype_name(x->dtype));
    /* torchvision RandomResizedCrop.get_params: ten tries, then a central crop. */
    double area = (double)g.h * (double)g.w, lr0 = log(s->ratio[0]), lr1 = log(s->ratio[1]);
    int64_t bh = 0, bw = 0, top = 0, left = 0;
    bool found = false;
    for (int attempt = 0; attempt < 10 && !found; attempt++) {
        double target = area * (s->scale[0] + (s->scale[1] - s->scale[0]) * uniform(r));
        double aspect = exp(lr0 + (lr1 - lr0) * uniform(r));
        double fw = nearbyint(sqrt(target * aspect)), fh = nearbyint(sqrt(target / aspect));
        if (fw > 0 && fw <= (double)g.w && fh > 0 && fh <= (double)g.h) {
            bw = (int64_t)fw, bh = (int64_t)fh;
            top = randint(r, 0, g.h - bh + 1);
            left = randint(r, 0, g.w - bw + 1);
            found = true;
        }
    }
    if (!found) {
        double in_ratio = (double)g.w / (double)g.h;
        if (in_ratio < s->ratio[0]) {
            bw = g.w, bh = (int64_t)nearbyint((double)bw / s->ratio[0]);
        } else if (in_ratio > s->ratio[1]) {
            bh = g.h, bw = (int64_t)nearbyint((double)bh * s->ratio[1]);
        } else {
            bw = g.w, bh = g.h;
        }
        if (bh < 1) bh = 1;
        if (bw < 1) bw = 1;
        top = (g.h - bh) / 2, left = (g.w - bw) / 2;
    }
    return resize(x, g, top, left, bh, bw, (image){g.c, s->h, s->w});
}

static kn_tensor *run_step(const step *s, int k, kn_tensor *x, uint64_t seed)
{
    char who[64];
    snprintf(who, sizeof who, "transform_apply: step %d (%s)", k, step_names[s->kind]);
    image g = x->ndim == 3 ? (image){x->shape[0], x->shape[1], x->shape[2]}
                           : (image){1, x->shape[0], x->shape[1]};
    rng r = {kn__mix64(seed ^ kn__mix64((uint64_t)k + 1)), 0};
    if (g.c * g.h * g.w == 0) return kn__error_null(KN_ERR_SHAPE, "%s: image is empty", who);
    switch (s->kind) {
    case TO_FLOAT:
        return to_float(who, x, g);
    case NORMALIZE:
        return normalize(who, s, x, g);
    case RANDOM_CROP:
        return random_crop(who, s, x, g, &r);
    case HFLIP:
        return hflip(s, x, g, &r);
    case RESIZED_CROP:
        return random_resized_crop(who, s, x, g, &r);
    }
    return kn__error_null(KN_ERR_INTERNAL, "%s: unknown step", who);
}

kn_tensor *kn_transform_apply(const kn_transform *t, kn_tensor *x, uint64_t seed)
{
    const char *who = "transform_apply";
    if (!t || !x) return kn__error_null(KN_ERR_ARG, "%s: %s is NULL", who, !t ? "t" : "x");
    if (kn_tensor_is_symbolic(x))
        return kn__error_null(KN_ERR_ARG, "%s: x is symbolic (has no data)", who);
    if (x->ndim != 2 && x->ndim != 3)
        return kn__error_null(KN_ERR_SHAPE, "%s: x has %d dims, expected 3 (C,H,W) or 2 (H,W)", who,
                              x->ndim);
    /* Work on a contiguous copy (also the result when there are no steps). */
    kn_tensor *cur = kn__tensor_new(x->dtype, x->ndim, x->shape);
    if (!cur) return NULL;
    kn__data_copy_out(x, kn_tensor_data(cur));
    for (int k = 0; k < t->n && cur; k++) {
        kn_tensor *next = run_step(&t->steps[k], k, cur, seed);
        kn_tensor_unref(cur);
        cur = next;
    }
    return cur;
}
