/* dtype.c — dtype names, sizes and promotion; f16/bf16 conversions with
 * round-to-nearest-even; element load/store through double. */
#include "base.h"

#include <math.h>

static const struct {
    const char *name;
    size_t size;
    int category; /* 0 bool, 1 integer, 2 floating */
    int rank;     /* order of width within the category */
} dtype_info[KN_DTYPE_COUNT] = {
    [KN_F32] = {"f32", 4, 2, 2},   [KN_F64] = {"f64", 8, 2, 3}, [KN_F16] = {"f16", 2, 2, 0},
    [KN_BF16] = {"bf16", 2, 2, 1}, [KN_I8] = {"i8", 1, 1, 0},   [KN_U8] = {"u8", 1, 1, 1},
    [KN_I32] = {"i32", 4, 1, 2},   [KN_I64] = {"i64", 8, 1, 3}, [KN_BOOL] = {"bool", 1, 0, 0},
    [KN_STRING] = {"string", sizeof(char *), 3, 0}, /* category 3: no arithmetic */
};

static bool valid(kn_dtype dt)
{
    return (unsigned)dt < KN_DTYPE_COUNT;
}

const char *kn_dtype_name(kn_dtype dt)
{
    return valid(dt) ? dtype_info[dt].name : "invalid";
}
size_t kn_dtype_size(kn_dtype dt)
{
    return valid(dt) ? dtype_info[dt].size : 0;
}
bool kn_dtype_is_float(kn_dtype dt)
{
    return valid(dt) && dtype_info[dt].category == 2;
}

kn_dtype kn_dtype_promote(kn_dtype a, kn_dtype b)
{
    if (a == b) return a;
    if (a == KN_STRING || b == KN_STRING) return KN_STRING; /* no op takes it: a dtype error */
    int ca = dtype_info[a].category, cb = dtype_info[b].category;
    if (ca != cb) return ca > cb ? a : b;
    /* f16 with bf16, and i8 with u8, have no common narrow type. */
    if ((a == KN_F16 && b == KN_BF16) || (a == KN_BF16 && b == KN_F16)) return KN_F32;
    if ((a == KN_I8 && b == KN_U8) || (a == KN_U8 && b == KN_I8)) return KN_I32;
    return dtype_info[a].rank > dtype_info[b].rank ? a : b;
}

static uint32_t f32_bits(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    return x;
}

static float bits_f32(uint32_t x)
{
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* Shifts m right by `shift` bits, rounding to nearest, ties to even. */
static uint32_t shift_round_even(uint32_t m, unsigned shift)
{
    uint32_t result = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (result & 1))) result++;
    return result;
}

uint16_t kn_f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t absx = x & 0x7fffffffu;
    if (absx > 0x7f800000u) /* NaN: quiet, keep the top payload bits */
        return (uint16_t)(sign | 0x7e00 | ((absx >> 13) & 0x3ff));
    if (absx >= 0x477ff000u) /* >= 65520 rounds to infinity */
        return (uint16_t)(sign | 0x7c00);
    if (absx < 0x38800000u) { /* below the smallest normal half: subnormal */
        uint32_t e = absx >> 23;
        if (e < 102) return sign; /* below 2^-25 (ties go to even zero) */
        uint32_t m = (absx & 0x7fffffu) | 0x800000u;
        return (uint16_t)(sign | shift_round_even(m, 126 - e));
    }
    uint32_t rebiased = absx - ((127u - 15u) << 23);
    return (uint16_t)(sign | shift_round_even(rebiased, 13));
}

float kn_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0x1f) return bits_f32(sign | 0x7f800000u | (m << 13));
    if (e == 0) { /* zero or subnormal: m * 2^-24, exact in f32 */
        float v = (float)m * 0x1p-24f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((e + 127 - 15) << 23) | (m << 13));
}

uint16_t kn_f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fffu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

float kn_bf16_to_f32(uint16_t b)
{
    return bits_f32((uint32_t)b << 16);
}

/* Integer stores saturate and map NaN to 0: a C cast would be undefined. */
static int64_t to_int(double v, double lo, double hi)
{
    if (isnan(v)) return 0;
    if (v <= lo) return (int64_t)lo;
    if (v >= hi) return (int64_t)hi;
    return (int64_t)v;
}

double kn__load(kn_dtype dt, const void *p)
{
    switch (dt) {
    case KN_F32:
        return *(const float *)p;
    case KN_F64:
        return *(const double *)p;
    case KN_F16:
        return kn_f16_to_f32(*(const uint16_t *)p);
    case KN_BF16:
        return kn_bf16_to_f32(*(const uint16_t *)p);
    case KN_I8:
        return *(const int8_t *)p;
    case KN_U8:
        return *(const uint8_t *)p;
    case KN_I32:
        return *(const int32_t *)p;
    case KN_I64:
        return (double)*(const int64_t *)p;
    case KN_BOOL:
        return *(const uint8_t *)p ? 1.0 : 0.0;
    default:
        assert(0 && "bad dtype");
        return 0;
    }
}

void kn__store(kn_dtype dt, void *p, double v)
{
    switch (dt) {
    case KN_F32:
        *(float *)p = (float)v;
        break;
    case KN_F64:
        *(double *)p = v;
        break;
    case KN_F16:
        *(uint16_t *)p = kn_f32_to_f16((float)v);
        break;
    case KN_BF16:
        *(uint16_t *)p = kn_f32_to_bf16((float)v);
        break;
    case KN_I8:
        *(int8_t *)p = (int8_t)to_int(v, -128, 127);
        break;
    case KN_U8:
        *(uint8_t *)p = (uint8_t)to_int(v, 0, 255);
        break;
    case KN_I32:
        *(int32_t *)p = (int32_t)to_int(v, -2147483648.0, 2147483647.0);
        break;
    case KN_I64:
        *(int64_t *)p = to_int(v, -9223372036854775808.0, 9223372036854774784.0);
        break;
    case KN_BOOL:
        *(uint8_t *)p = v != 0;
        break;
    default:
        assert(0 && "bad dtype");
    }
}

int64_t kn__load_i64(kn_dtype dt, const void *p)
{
    switch (dt) {
    case KN_I8:
        return *(const int8_t *)p;
    case KN_U8:
        return *(const uint8_t *)p;
    case KN_I32:
        return *(const int32_t *)p;
    case KN_I64:
        return *(const int64_t *)p;
    case KN_BOOL:
        return *(const uint8_t *)p != 0;
    default:
        return to_int(kn__load(dt, p), -9223372036854775808.0, 9223372036854774784.0);
    }
}

void kn__store_i64(kn_dtype dt, void *p, int64_t v)
{
    switch (dt) {
    case KN_I8:
        *(int8_t *)p = (int8_t)v;
        break;
    case KN_U8:
        *(uint8_t *)p = (uint8_t)v;
        break;
    case KN_I32:
        *(int32_t *)p = (int32_t)v;
        break;
    case KN_I64:
        *(int64_t *)p = v;
        break;
    case KN_BOOL:
        *(uint8_t *)p = v != 0;
        break;
    default:
        kn__store(dt, p, (double)v);
    }
}

void kn__convert(kn_dtype to, void *dst, kn_dtype from, const void *src, int64_t n)
{
    size_t so = kn_dtype_size(from), sd = kn_dtype_size(to);
    if (to == from) {
        memcpy(dst, src, (size_t)n * so);
        return;
    }
    const char *s = src;
    char *d = dst;
    for (int64_t i = 0; i < n; i++)
        kn__store(to, d + i * sd, kn__load(from, s + i * so));
}

bool kn__mul_overflow(int64_t a, int64_t b, int64_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}

int64_t kn__shape_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || kn__mul_overflow(n, shape[i], &n)) return -1;
    }
    return n;
}
