/* base.h — internals shared by every layer: error reporting, dtype element
 * access, allocation, threads, CPU features and the Philox RNG.
 * Relies on kiln.h only. */
#ifndef KILN_BASE_H
#define KILN_BASE_H

#include "kiln.h"

#include <assert.h>
#include <string.h>

#define KN_ALIGN 64
#define KN_ARRAY_LEN(a) ((int)(sizeof(a) / sizeof((a)[0])))

#if defined(__GNUC__)
#define KN_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define KN_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define KN_PRINTF(f, a)
#define KN_UNLIKELY(x) (x)
#endif

/* Records an error for this thread and returns `s`, so callers can write
 * `return kn__error(KN_ERR_ARG, "conv2d: ...", ...)`. */
kn_status kn__error(kn_status s, const char *fmt, ...) KN_PRINTF(2, 3);
/* Same, for functions that return a pointer: returns NULL. */
void *kn__error_null(kn_status s, const char *fmt, ...) KN_PRINTF(2, 3);

/* Element access through double, for reference kernels of any dtype. */
double kn__load(kn_dtype dt, const void *p);
void kn__store(kn_dtype dt, void *p, double v);
/* Exact integer access (i64 does not fit a double). Floats are truncated
 * toward zero with saturation; stores wrap like a C cast of an int64. */
int64_t kn__load_i64(kn_dtype dt, const void *p);
void kn__store_i64(kn_dtype dt, void *p, int64_t v);
/* Converts n contiguous elements between dtypes. */
void kn__convert(kn_dtype to, void *dst, kn_dtype from, const void *src, int64_t n);

/* Size arithmetic with overflow checks: false on overflow. */
bool kn__mul_overflow(int64_t a, int64_t b, int64_t *out);
/* Product of dims with overflow and negativity check; -1 on failure. */
int64_t kn__shape_numel(int ndim, const int64_t *shape);

/* Seeded Philox-4x32-10: four 32-bit outputs for a 64-bit counter. */
void kn__philox(uint64_t key, uint64_t counter, uint32_t out[4]);
/* Reserves n values of the global stream; returns their first offset. */
uint64_t kn__rng_reserve(uint64_t n);
/* Value at stream position `pos` for `key`, as uniform in [0, 1). */
double kn__rng_uniform_at(uint64_t key, uint64_t pos);
/* Standard normal at stream position pos (Box-Muller over two uniforms). */
double kn__rng_normal_at(uint64_t key, uint64_t pos);

void kn__cpu_init(void);
/* Writes the CPU features, ISA in use and thread count (for kn_print_info). */
void kn__print_cpu_info(FILE *f);

#endif
