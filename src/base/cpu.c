/* cpu.c — CPU feature detection through cpuid/xgetbv and the KILN_ISA cap. */
#include "base.h"

#include <stdlib.h>
#include <strings.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static uint32_t detect(void)
{
    unsigned a, b, c, d;
    uint32_t f = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    bool osxsave = c & (1u << 27);
    uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    bool ymm_ok = (xcr0 & 0x6) == 0x6;
    bool zmm_ok = ymm_ok && (xcr0 & 0xe0) == 0xe0;
    bool amx_ok = (xcr0 & 0x60000) == 0x60000;
    if (ymm_ok && (c & (1u << 12))) f |= KN_CPU_FMA;
    if (ymm_ok && (c & (1u << 29))) f |= KN_CPU_F16C;
    if (__get_cpuid_max(0, NULL) < 7) return f;
    __cpuid_count(7, 0, a, b, c, d);
    if (ymm_ok && (b & (1u << 5))) f |= KN_CPU_AVX2;
    if (zmm_ok && (b & (1u << 16))) f |= KN_CPU_AVX512F;
    if (zmm_ok && (b & (1u << 17))) f |= KN_CPU_AVX512DQ;
    if (zmm_ok && (b & (1u << 30))) f |= KN_CPU_AVX512BW;
    if (zmm_ok && (b & (1u << 31))) f |= KN_CPU_AVX512VL;
    if (zmm_ok && (c & (1u << 11))) f |= KN_CPU_AVX512_VNNI;
    if (amx_ok && (d & (1u << 24))) f |= KN_CPU_AMX_TILE;
    if (amx_ok && (d & (1u << 22))) f |= KN_CPU_AMX_BF16;
    if (amx_ok && (d & (1u << 25))) f |= KN_CPU_AMX_INT8;
    unsigned a1, b1, c1, d1;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    if (zmm_ok && (a1 & (1u << 5))) f |= KN_CPU_AVX512_BF16;
    return f;
}
#else
static uint32_t detect(void)
{
    return 0;
}
#endif

static uint32_t features;
static bool detected;
static kn_isa cap = KN_ISA_AVX512BF16;

static const char *isa_names[] = {"ref", "avx2", "avx512", "avx512bf16"};

const char *kn_isa_name(kn_isa isa)
{
    return (unsigned)isa <= KN_ISA_AVX512BF16 ? isa_names[isa] : "invalid";
}

static kn_isa hardware_isa(uint32_t f)
{
    /* the avx512 kernels are compiled with -mavx512f/bw/vl/dq */
    uint32_t avx512 = KN_CPU_AVX512F | KN_CPU_AVX512BW | KN_CPU_AVX512VL | KN_CPU_AVX512DQ |
                      KN_CPU_AVX2 | KN_CPU_FMA;
    if ((f & (avx512 | KN_CPU_AVX512_BF16)) == (avx512 | KN_CPU_AVX512_BF16))
        return KN_ISA_AVX512BF16;
    if ((f & avx512) == avx512) return KN_ISA_AVX512;
    if ((f & (KN_CPU_AVX2 | KN_CPU_FMA)) == (KN_CPU_AVX2 | KN_CPU_FMA)) return KN_ISA_AVX2;
    return KN_ISA_REF;
}

void kn__cpu_init(void)
{
    if (detected) return;
    features = detect();
    const char *env = getenv("KILN_ISA");
    if (env) {
        for (int i = 0; i <= KN_ISA_AVX512BF16; i++)
            if (strcasecmp(env, isa_names[i]) == 0) cap = (kn_isa)i;
    }
    detected = true;
}

uint32_t kn_cpu_features(void)
{
    kn__cpu_init();
    return features;
}

kn_isa kn_isa_max(void)
{
    kn__cpu_init();
    kn_isa hw = hardware_isa(features);
    return hw < cap ? hw : cap;
}

kn_status kn_set_isa(kn_isa isa)
{
    if ((unsigned)isa > KN_ISA_AVX512BF16)
        return kn__error(KN_ERR_ARG, "set_isa: isa %d is not one of ref|avx2|avx512|avx512bf16",
                         (int)isa);
    kn__cpu_init();
    cap = isa;
    return KN_OK;
}

void kn__print_cpu_info(FILE *f)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } names[] = {{KN_CPU_AVX2, "avx2"},
                 {KN_CPU_FMA, "fma"},
                 {KN_CPU_F16C, "f16c"},
                 {KN_CPU_AVX512F, "avx512f"}, {KN_CPU_AVX512DQ, "avx512dq"},
                 {KN_CPU_AVX512BW, "avx512bw"},
                 {KN_CPU_AVX512VL, "avx512vl"},
                 {KN_CPU_AVX512_BF16, "avx512_bf16"},
                 {KN_CPU_AVX512_VNNI, "avx512_vnni"},
                 {KN_CPU_AMX_TILE, "amx_tile"},
                 {KN_CPU_AMX_BF16, "amx_bf16"},
                 {KN_CPU_AMX_INT8, "amx_int8"}};
    uint32_t feat = kn_cpu_features();
    fprintf(f, "cpu features:");
    for (int i = 0; i < KN_ARRAY_LEN(names); i++)
        if (feat & names[i].bit) fprintf(f, " %s", names[i].name);
    fprintf(f, "\nisa: %s (hardware %s)\nthreads: %d\n", kn_isa_name(kn_isa_max()),
            kn_isa_name(hardware_isa(feat)), kn_get_num_threads());
}
