/* json.h — a small, bounds-checked JSON reader (a DOM in one allocation
 * tree) and a string builder for writers. Used by the graph format and the
 * safetensors header. Relies on src/base only. */
#ifndef KILN_JSON_H
#define KILN_JSON_H

#include "../base/base.h"

typedef enum kn_json_type {
    KN_JSON_NULL,
    KN_JSON_BOOL,
    KN_JSON_NUMBER,
    KN_JSON_STRING,
    KN_JSON_ARRAY,
    KN_JSON_OBJECT
} kn_json_type;

typedef struct kn_json {
    kn_json_type type;
    bool boolean;
    double number;
    bool is_int; /* the number was written as an integer that fits int64 */
    int64_t integer;
    char *string; /* NUL-terminated (may hold NULs if the text escaped them) */
    size_t length;
    int n;               /* items of an array or members of an object */
    struct kn_json *items;
    char **keys; /* object member names */
} kn_json;

#define KN_JSON_MAX_DEPTH 64

/* Parses exactly `len` bytes (trailing whitespace allowed). On error returns
 * NULL with a message "what: at byte N: ..." in kn_last_error(). */
kn_json *kn__json_parse(const char *what, const char *text, size_t len);
void kn__json_free(kn_json *j);
/* The member of an object (NULL if absent or j is not an object). */
const kn_json *kn__json_get(const kn_json *j, const char *key);

/* ---- writing */
typedef struct kn_strbuf {
    char *data;
    size_t len, cap;
    bool failed; /* an allocation failed: the contents are incomplete */
} kn_strbuf;
void kn__sb_printf(kn_strbuf *sb, const char *fmt, ...) KN_PRINTF(2, 3);
void kn__sb_json_string(kn_strbuf *sb, const char *s);
void kn__sb_free(kn_strbuf *sb);

/* Writes `len` bytes to path atomically: a temporary file beside it, flushed
 * and synced, then renamed over path. `who` names the caller in errors. */
kn_status kn__write_file_atomic(const char *who, const char *path, const void *data, size_t len);
/* Reads a whole file (at most max_bytes) into a kn_alloc'd buffer. */
kn_status kn__read_file(const char *who, const char *path, size_t max_bytes, char **data,
                        size_t *len);

#endif
