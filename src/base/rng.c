/* rng.c — Philox-4x32-10 (Salmon et al., SC'11), counter based: the value at
 * stream position i depends only on (seed, i), so random tensors are the same
 * on any thread count. The global stream hands out ranges of positions. */
#include "base.h"

#include <math.h>
#include <stdatomic.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static uint64_t global_seed = 0x2545F4914F6CDD1Dull;
static _Atomic uint64_t global_offset;

static void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo)
{
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

void kn__philox(uint64_t key, uint64_t counter, uint32_t out[4])
{
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0, c3 = 0;
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo(PHILOX_M0, c0, &hi0, &lo0);
        mulhilo(PHILOX_M1, c2, &hi1, &lo1);
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

void kn_manual_seed(uint64_t seed)
{
    global_seed = seed;
    atomic_store(&global_offset, 0);
}

uint64_t kn_rng_seed(void)
{
    return global_seed;
}
uint64_t kn_rng_offset(void)
{
    return atomic_load(&global_offset);
}
void kn_rng_set_offset(uint64_t offset)
{
    atomic_store(&global_offset, offset);
}
uint64_t kn__rng_reserve(uint64_t n)
{
    return atomic_fetch_add(&global_offset, n);
}

/* 53 random bits scaled into [0, 1). */
static double unit(uint32_t hi, uint32_t lo)
{
    uint64_t bits = ((uint64_t)hi << 21) ^ (lo >> 11);
    return (double)(bits & ((1ull << 53) - 1)) * 0x1p-53;
}

double kn__rng_uniform_at(uint64_t key, uint64_t pos)
{
    uint32_t r[4];
    kn__philox(key, pos, r);
    return unit(r[0], r[1]);
}

double kn__rng_normal_at(uint64_t key, uint64_t pos)
{
    uint32_t r[4];
    kn__philox(key, pos, r);
    double u1 = 1.0 - unit(r[0], r[1]); /* (0, 1]: log is finite */
    double u2 = unit(r[2], r[3]);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}
