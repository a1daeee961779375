/* block_params.c — managing a block tree's parameters: state (running
 * statistics) versus trainable, freezing, sharing, the trainable list an
 * optimizer takes, name → tensor maps for files, and shape-only first calls
 * that create deferred parameters. */
#include "block_impl.h"

/* Glob match where '*' matches any run of characters (also dots). */
static bool matches(const char *pattern, const char *s)
{
    if (!pattern) return true;
    for (; *pattern; pattern++, s++) {
        if (*pattern == '*') {
            for (const char *t = s;; t++) {
                if (matches(pattern + 1, t)) return true;
                if (!*t) return false;
            }
        }
        if (*pattern != *s) return false;
    }
    return !*s;
}

bool kn_block_param_is_state(const kn_block *b, int i)
{
    return kn_block_param_at(b, i) && (b->flat_flags[i] & PARAM_STATE);
}

bool kn_block_param_is_frozen(const kn_block *b, int i)
{
    return kn_block_param_at(b, i) && (b->flat_flags[i] & PARAM_FROZEN);
}

/* Calls fn on each own parameter of the tree with its full path. */
typedef kn_status (*param_visit)(kn_block *owner, int i, const char *path, void *ctx);
static kn_status visit(kn_block *b, const char *prefix, param_visit fn, void *ctx)
{
    char path[600];
    for (int i = 0; i < b->n_params; i++) {
        snprintf(path, sizeof path, "%s%s", prefix, b->param_names[i]);
        kn_status s = fn(b, i, path, ctx);
        if (s) return s;
    }
    for (int c = 0; c < b->n_children; c++) {
        snprintf(path, sizeof path, "%s%s.", prefix, b->child_names[c]);
        kn_status s = visit(b->children[c], path, fn, ctx);
        if (s) return s;
    }
    return KN_OK;
}

typedef struct freeze_ctx {
    const char *pattern;
    bool frozen;
    int hits;
} freeze_ctx;

static kn_status freeze_one(kn_block *owner, int i, const char *path, void *ctx)
{
    freeze_ctx *f = ctx;
    if ((owner->param_flags[i] & PARAM_STATE) || !matches(f->pattern, path)) return KN_OK;
    f->hits++;
    if (f->frozen) owner->param_flags[i] |= PARAM_FROZEN;
    else owner->param_flags[i] &= (uint8_t)~PARAM_FROZEN;
    kn__block_changed(owner);
    return kn_tensor_set_requires_grad(owner->params[i], !f->frozen);
}

kn_status kn_block_freeze(kn_block *b, const char *pattern, bool frozen)
{
    if (!b) return kn__error(KN_ERR_ARG, "block_freeze: block is NULL");
    freeze_ctx f = {pattern, frozen, 0};
    kn_status s = visit(b, "", freeze_one, &f);
    if (!s && !f.hits && pattern)
        return kn__error(KN_ERR_ARG, "block_freeze: no parameter of '%s' matches '%s'", b->name, pattern);
    return s;
}

int kn_block_trainable_params(kn_block *b, int max, kn_tensor **out)
{
    if (!b || max < 0 || (max > 0 && !out)) {
        kn__error(KN_ERR_ARG, "block_trainable_params: NULL block or output array");
        return -1;
    }
    int n = kn_block_num_params(b), count = 0;
    if (n == 0 && kn_last_status()) return -1;
    for (int i = 0; i < n; i++) {
        kn_tensor *p = b->flat_params[i];
        bool seen = false;
        for (int j = 0; j < i && !seen; j++) /* shared: listed once */
            seen = b->flat_params[j] == p;
        if (seen || (b->flat_flags[i] & (PARAM_STATE | PARAM_FROZEN))) continue;
        if (kn_tensor_set_requires_grad(p, true)) return -1;
        if (out && count < max) out[count] = p;
        count++;
    }
    return count;
}

/* The block a dotted path's last component belongs to ("a.b.weight" →
 * child a's child b, name "weight"); a parameter whose own name has dots
 * ("fc.w" added as one name) is found in the block where the children end. */
static kn_block *owner_of(kn_block *b, const char *path, const char **leaf)
{
    const char *dot;
    while ((dot = strchr(path, '.'))) {
        char child[256];
        size_t len = (size_t)(dot - path);
        if (len >= sizeof child) return NULL;
        memcpy(child, path, len);
        child[len] = 0;
        kn_block *c = kn_block_child(b, child);
        if (!c) break;
        b = c;
        path = dot + 1;
    }
    *leaf = path;
    return b;
}

kn_status kn_block_share_param(kn_block *dst, const char *dst_name, kn_block *src, const char *src_name)
{
    if (!dst || !dst_name || !src || !src_name)
        return kn__error(KN_ERR_ARG, "block_share_param: NULL argument");
    const char *sleaf, *dleaf;
    kn_block *so = owner_of(src, src_name, &sleaf), *dn = owner_of(dst, dst_name, &dleaf);
    int si = so ? kn__block_find_param(so, sleaf) : -1;
    if (si < 0)
        return kn__error(KN_ERR_ARG, "block_share_param: '%s' has no parameter '%s'", src->name, src_name);
    if (!dn) return kn__error(KN_ERR_ARG, "block_share_param: '%s' has no block for '%s'", dst->name, dst_name);
    kn_tensor *t = so->params[si];
    int di = kn__block_find_param(dn, dleaf);
    if (di < 0) { /* still deferred: the shared tensor becomes the parameter */
        kn_status s = so->param_flags[si] & PARAM_STATE ? kn_block_add_state(dn, dleaf, t)
                                                        : kn_block_add_param(dn, dleaf, t);
        return s;
    }
    kn_tensor *old = dn->params[di];
    if (old->dtype != t->dtype || old->ndim != t->ndim ||
        memcmp(old->shape, t->shape, sizeof(int64_t) * (size_t)t->ndim))
        return kn__error(KN_ERR_SHAPE, "block_share_param: '%s' and '%s' differ in dtype or shape",
                         dst_name, src_name);
    dn->params[di] = kn_tensor_ref(t);
    kn_tensor_unref(old);
    kn__block_changed(dn);
    return KN_OK;
}

kn_tensor_map *kn_block_param_map(const kn_block *b)
{
    if (!b) return kn__error_null(KN_ERR_ARG, "block_param_map: block is NULL");
    kn_tensor_map *m = kn_tensor_map_new();
    int n = kn_block_num_params(b);
    for (int i = 0; m && i < n; i++)
        if (kn_tensor_map_set(m, kn_block_param_name(b, i), kn_block_param_at(b, i))) {
            kn_tensor_map_free(m);
            return NULL;
        }
    return m;
}

kn_status kn_block_load_param_map(kn_block *b, const kn_tensor_map *m)
{
    if (!b || !m) return kn__error(KN_ERR_ARG, "block_load_param_map: NULL argument");
    int n = kn_block_num_params(b);
    for (int pass = 0; pass < 2; pass++) /* check everything, then copy */
        for (int i = 0; i < n; i++) {
            const char *name = kn_block_param_name(b, i);
            kn_tensor *dst = kn_block_param_at(b, i), *src = kn_tensor_map_get(m, name);
            if (!src) return kn__error(KN_ERR_ARG, "block_load_param_map: no tensor '%s'", name);
            if (src->dtype != dst->dtype || src->ndim != dst->ndim ||
                memcmp(src->shape, dst->shape, sizeof(int64_t) * (size_t)dst->ndim))
                return kn__error(KN_ERR_SHAPE, "block_load_param_map: '%s' differs in dtype or shape "
                                               "from the block's parameter", name);
            if (pass == 1 && dst != src && kn_tensor_copy_(dst, src)) return kn_last_status();
        }
    return KN_OK;
}

kn_status kn_block_init_shapes(kn_block *b, int n_in, kn_tensor *const *examples)
{
    if (!b || n_in < 1 || !examples) return kn__error(KN_ERR_ARG, "block_init_shapes: NULL block or no inputs");
    kn_graph *g = kn_graph_new();
    if (!g) return kn_last_status();
    kn_tensor *in[64] = {0}, *out[1] = {NULL};
    kn_status s = n_in > 64 ? kn__error(KN_ERR_ARG, "block_init_shapes: at most 64 inputs") : KN_OK;
    for (int i = 0; i < n_in && !s; i++) {
        char name[32];
        snprintf(name, sizeof name, "input%d", i);
        if (!examples[i]) s = kn__error(KN_ERR_ARG, "block_init_shapes: example %d is NULL", i);
        else if (!(in[i] = kn_graph_input(g, name, examples[i]->dtype, examples[i]->ndim, examples[i]->shape)))
            s = kn_last_status();
    }
    if (!s) s = kn_block_trace(b, g, n_in, in, 1, out);
    for (int i = 0; i < n_in; i++)
        kn_tensor_unref(in[i]);
    kn_tensor_unref(out[0]);
    kn_graph_free(g);
    return s;
}

const char *kn_block_path(const kn_block *b, char *buf, size_t size)
{
    if (!buf || size == 0) return "";
    buf[0] = 0;
    if (!b) return buf;
    const kn_block *chain[64];
    int depth = 0;
    for (const kn_block *a = b; a->parent && depth < 64; a = a->parent)
        chain[depth++] = a;
    size_t len = 0;
    for (int d = depth - 1; d >= 0; d--) {
        const kn_block *c = chain[d], *p = c->parent;
        for (int i = 0; i < p->n_children; i++) {
            if (p->children[i] != c) continue;
            int w = snprintf(buf + len, size - len, "%s%s", len ? "." : "", p->child_names[i]);
            if (w < 0 || (size_t)w >= size - len) return buf; /* truncated */
            len += (size_t)w;
        }
    }
    return buf;
}

const char *kn_block_label(const kn_block *b, char *buf, size_t size)
{
    if (!buf || size == 0) return "";
    char path[256];
    kn_block_path(b, path, sizeof path);
    if (path[0])
        snprintf(buf, size, "%s '%s'", kn_block_name(b), path);
    else
        snprintf(buf, size, "%s", kn_block_name(b));
    return buf;
}

const char *kn_block_name(const kn_block *b) { return b ? b->name : NULL; }
bool kn_block_is_hybridized(const kn_block *b) { return b && b->hybridized; }
int kn_block_num_children(const kn_block *b) { return b ? b->n_children : 0; }
kn_block *kn_block_child_at(const kn_block *b, int i)
{
    return b && i >= 0 && i < b->n_children ? b->children[i] : NULL;
}
const char *kn_block_child_name(const kn_block *b, int i)
{
    return b && i >= 0 && i < b->n_children ? b->child_names[i] : NULL;
}
