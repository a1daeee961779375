/* json.c — recursive-descent JSON parser with a depth limit and explicit
 * bounds on every read, plus the string builder and file helpers. */
#include "json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct parser {
    const char *s;
    size_t len, pos;
    const char *what;
    kn_status status;
} parser;

static bool fail(parser *p, const char *msg)
{
    if (!p->status) p->status = kn__error(KN_ERR_IO, "%s: at byte %zu: %s", p->what, p->pos, msg);
    return false;
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                               p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

static bool literal(parser *p, const char *word)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n)) return fail(p, "invalid literal");
    p->pos += n;
    return true;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool read_hex4(parser *p, unsigned *out)
{
    if (p->len - p->pos < 4) return fail(p, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(p->s[p->pos + (size_t)i]);
        if (d < 0) return fail(p, "bad \\u escape");
        v = v * 16 + (unsigned)d;
    }
    p->pos += 4;
    *out = v;
    return true;
}

static size_t put_utf8(char *dst, unsigned cp)
{
    if (cp < 0x80) return dst[0] = (char)cp, 1;
    if (cp < 0x800) return dst[0] = (char)(0xc0 | cp >> 6), dst[1] = (char)(0x80 | (cp & 0x3f)), 2;
    if (cp < 0x10000) {
        dst[0] = (char)(0xe0 | cp >> 12), dst[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        dst[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    dst[0] = (char)(0xf0 | cp >> 18), dst[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    dst[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), dst[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static bool escape(parser *p, char *out, size_t *n)
{
    char c = p->s[p->pos++];
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *hit = c ? strchr(from, c) : NULL;
    if (hit) {
        out[(*n)++] = to[hit - from];
        return true;
    }
    if (c != 'u') return fail(p, "bad escape");
    unsigned cp;
    if (!read_hex4(p, &cp)) return false;
    if (cp >= 0xd800 && cp < 0xdc00) { /* a surrogate pair */
        unsigned lo;
        if (p->len - p->pos < 2 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
            return fail(p, "unpaired surrogate");
        p->pos += 2;
        if (!read_hex4(p, &lo) || lo < 0xdc00 || lo > 0xdfff) return fail(p, "bad surrogate pair");
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    } else if (cp >= 0xdc00 && cp < 0xe000) {
        return fail(p, "unpaired surrogate");
    }
    *n += put_utf8(out + *n, cp);
    return true;
}

/* The decoded string is never longer than its escaped form. */
static bool parse_string(parser *p, char **str, size_t *len)
{
    size_t start = ++p->pos, end = start;
    while (end < p->len && p->s[end] != '"')
        end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->len) return fail(p, "unterminated string");
    char *out = kn_alloc(end - start + 1);
    if (!out) return fail(p, "out of memory");
    size_t n = 0;
    while (p->pos < end) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c < 0x20) {
            kn_free(out);
            return fail(p, "control character in string");
        }
        if (c == '\\') {
            p->pos++;
            if (!escape(p, out, &n)) {
                kn_free(out);
                return false;
            }
        } else {
            out[n++] = (char)c;
            p->pos++;
        }
    }
    p->pos = end + 1;
    out[n] = '\0';
    *str = out;
    *len = n;
    return true;
}

static bool parse_number(parser *p, kn_json *j)
{
    size_t start = p->pos;
    bool integral = true;
    if (p->pos < p->len && p->s[p->pos] == '-') p->pos++;
    size_t digits = p->pos;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
        p->pos++;
    if (p->pos == digits) return fail(p, "invalid number");
    if (p->pos < p->len && p->s[p->pos] == '.') {
        integral = false;
        size_t frac = ++p->pos;
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
        if (p->pos == frac) return fail(p, "invalid number");
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        integral = false;
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
        size_t exp = p->pos;
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            p->pos++;
        if (p->pos == exp) return fail(p, "invalid number");
    }
    char buf[64];
    size_t n = p->pos - start;
    if (n >= sizeof buf) return fail(p, "number too long");
    memcpy(buf, p->s + start, n);
    buf[n] = '\0';
    j->type = KN_JSON_NUMBER;
    j->number = strtod(buf, NULL);
    if (integral) {
        errno = 0;
        long long v = strtoll(buf, NULL, 10);
        j->is_int = errno == 0;
        j->integer = v;
    }
    return true;
}

static bool parse_value(parser *p, kn_json *j, int depth);

/* Appends one zeroed item to a growing array (object keys grow alongside). */
static kn_json *push_item(parser *p, kn_json *j, int *cap, bool with_key)
{
    if (j->n == *cap) {
        int next = *cap ? *cap * 2 : 4;
        kn_json *items = kn_alloc(sizeof(kn_json) * (size_t)next);
        char **keys = with_key ? kn_alloc(sizeof(char *) * (size_t)next) : NULL;
        if (!items || (with_key && !keys)) {
            kn_free(items), kn_free(keys);
            fail(p, "out of memory");
            return NULL;
        }
        if (j->n) {
            memcpy(items, j->items, sizeof(kn_json) * (size_t)j->n);
            if (with_key) memcpy(keys, j->keys, sizeof(char *) * (size_t)j->n);
        }
        kn_free(j->items), kn_free(j->keys);
        j->items = items, j->keys = keys;
        *cap = next;
    }
    kn_json *it = &j->items[j->n];
    memset(it, 0, sizeof *it);
    if (with_key) j->keys[j->n] = NULL;
    j->n++;
    return it;
}

static bool parse_container(parser *p, kn_json *j, int depth, bool object)
{
    char close = object ? '}' : ']';
    int cap = 0;
    j->type = object ? KN_JSON_OBJECT : KN_JSON_ARRAY;
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return true;
    }
    for (;;) {
        skip_ws(p);
        kn_json *it = push_item(p, j, &cap, object);
        if (!it) return false;
        if (object) {
            size_t klen;
            if (p->pos >= p->len || p->s[p->pos] != '"') return fail(p, "expected a member name");
            if (!parse_string(p, &j->keys[j->n - 1], &klen)) return false;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') return fail(p, "expected ':'");
            p->pos++;
        }
        if (!parse_value(p, it, depth + 1)) return false;
        skip_ws(p);
        if (p->pos >= p->len) return fail(p, "unterminated array or object");
        if (p->s[p->pos] == close) {
            p->pos++;
            return true;
        }
        if (p->s[p->pos] != ',') return fail(p, "expected ',' or a closing bracket");
        p->pos++;
    }
}

static bool parse_value(parser *p, kn_json *j, int depth)
{
    if (depth > KN_JSON_MAX_DEPTH) return fail(p, "nested too deeply");
    skip_ws(p);
    if (p->pos >= p->len) return fail(p, "unexpected end of input");
    switch (p->s[p->pos]) {
    case '{': return parse_container(p, j, depth, true);
    case '[': return parse_container(p, j, depth, false);
    case '"': j->type = KN_JSON_STRING; return parse_string(p, &j->string, &j->length);
    case 't': j->type = KN_JSON_BOOL, j->boolean = true; return literal(p, "true");
    case 'f': j->type = KN_JSON_BOOL; return literal(p, "false");
    case 'n': j->type = KN_JSON_NULL; return literal(p, "null");
    default: return parse_number(p, j);
    }
}

static void free_contents(kn_json *j)
{
    for (int i = 0; i < j->n; i++) {
        free_contents(&j->items[i]);
        if (j->keys) kn_free(j->keys[i]);
    }
    kn_free(j->items), kn_free(j->keys), kn_free(j->string);
}

void kn__json_free(kn_json *j)
{
    if (!j) return;
    free_contents(j);
    kn_free(j);
}

kn_json *kn__json_parse(const char *what, const char *text, size_t len)
{
    parser p = {text, len, 0, what, KN_OK};
    kn_json *j = kn_alloc(sizeof *j);
    if (!j) return NULL;
    memset(j, 0, sizeof *j);
    if (!text) fail(&p, "no text");
    else if (parse_value(&p, j, 0)) {
        skip_ws(&p);
        if (p.pos != p.len) fail(&p, "trailing characters after the value");
    }
    if (p.status) {
        kn__json_free(j);
        return NULL;
    }
    return j;
}

const kn_json *kn__json_get(const kn_json *j, const char *key)
{
    if (!j || j->type != KN_JSON_OBJECT) return NULL;
    for (int i = 0; i < j->n; i++)
        if (!strcmp(j->keys[i], key)) return &j->items[i];
    return NULL;
}

/* ---- writing */
void kn__sb_printf(kn_strbuf *sb, const char *fmt, ...)
{
    if (sb->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = sb->cap - sb->len;
        int n = vsnprintf(sb->data ? sb->data + sb->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            sb->failed = true;
            return;
        }
        if ((size_t)n < room) {
            sb->len += (size_t)n;
            return;
        }
        size_t cap = (sb->cap ? sb->cap * 2 : 256) + (size_t)n;
        char *grown = kn_alloc(cap);
        if (!grown) {
            sb->failed = true;
            return;
        }
        if (sb->len) memcpy(grown, sb->data, sb->len);
        kn_free(sb->data);
        sb->data = grown;
        sb->cap = cap;
    }
}

void kn__sb_json_string(kn_strbuf *sb, const char *s)
{
    kn__sb_printf(sb, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') kn__sb_printf(sb, "\\%c", c);
        else if (c < 0x20) kn__sb_printf(sb, "\\u%04x", c);
        else kn__sb_printf(sb, "%c", c);
    }
    kn__sb_printf(sb, "\"");
}

void kn__sb_free(kn_strbuf *sb)
{
    kn_free(sb->data);
    memset(sb, 0, sizeof *sb);
}

/* The process umask, read once (umask() can only be read by setting it). */
static mode_t file_umask;
static pthread_once_t umask_once = PTHREAD_ONCE_INIT;
static void read_umask(void)
{
    file_umask = umask(022);
    umask(file_umask);
}

kn_status kn__write_file_atomic(const char *who, const char *path, const void *data, size_t len)
{
    if (!path) return kn__error(KN_ERR_ARG, "%s: path is NULL", who);
    size_t n = strlen(path) + 16;
    char *tmp = kn_alloc(n);
    if (!tmp) return kn_last_status();
    snprintf(tmp, n, "%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        kn_status s = kn__error(KN_ERR_IO, "%s: cannot create a file beside '%s': %s", who, path, strerror(errno));
        kn_free(tmp);
        return s;
    }
    /* mkstemp makes the file 0600; give it the mode a plain fopen would */
    pthread_once(&umask_once, read_umask);
    FILE *f = fchmod(fd, 0666 & ~file_umask) == 0 ? fdopen(fd, "wb") : NULL;
    bool ok = f && fwrite(data, 1, len, f) == len && fflush(f) == 0 && fsync(fd) == 0;
    int err = errno;
    if (f) ok = fclose(f) == 0 && ok;
    else close(fd);
    if (ok && rename(tmp, path) != 0) ok = false, err = errno;
    kn_status s = KN_OK;
    if (!ok) {
        unlink(tmp);
        s = kn__error(KN_ERR_IO, "%s: writing '%s' failed: %s (the old file, if any, is intact)", who,
                      path, strerror(err));
    }
    kn_free(tmp);
    return s;
}

kn_status kn__read_file(const char *who, const char *path, size_t max_bytes, char **data, size_t *len)
{
    if (!path) return kn__error(KN_ERR_ARG, "%s: path is NULL", who);
    FILE *f = fopen(path, "rb");
    if (!f) return kn__error(KN_ERR_IO, "%s: cannot open '%s': %s", who, path, strerror(errno));
    kn_status s = KN_OK;
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) s = kn__error(KN_ERR_IO, "%s: cannot size '%s'", who, path);
    else if ((size_t)size > max_bytes)
        s = kn__error(KN_ERR_IO, "%s: '%s' is %ld bytes, more than the %zu allowed", who, path, size, max_bytes);
    char *buf = s ? NULL : kn_alloc((size_t)size + 1);
    if (!s && !buf) s = kn_last_status();
    if (!s && fread(buf, 1, (size_t)size, f) != (size_t)size)
        s = kn__error(KN_ERR_IO, "%s: reading '%s' failed", who, path);
    fclose(f);
    if (s) {
        kn_free(buf);
        return s;
    }
    buf[size] = '\0';
    *data = buf;
    *len = (size_t)size;
    return KN_OK;
}
