// Run-time CPU feature query (CPUID + XGETBV) and the active instruction-set level.
//
// A level counts as supported only when both the CPU reports the instructions and the OS
// saves the register state (XCR0): AVX2 needs XMM|YMM state, AVX-512 also needs the
// opmask and both ZMM halves.
#include "internal.h"

#include <cpuid.h>

static int g_detected = -1;  // ek_isa, or -1 before the first query
static int g_active = -1;    // ek_isa, or -1 meaning "the detected level"

static uint64_t read_xcr0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

static ek_isa query_cpu(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return EK_ISA_SCALAR;
    const int has_fma = (ecx >> 12) & 1;
    const int has_osxsave = (ecx >> 27) & 1;
    const int has_avx = (ecx >> 28) & 1;
    if (!has_osxsave || !has_avx) return EK_ISA_SCALAR;

    const uint64_t xcr0 = read_xcr0();
    const int os_avx = (xcr0 & 0x6) == 0x6;       // XMM, YMM
    const int os_avx512 = (xcr0 & 0xE6) == 0xE6;  // + opmask, ZMM_Hi256, Hi16_ZMM
    if (!os_avx) return EK_ISA_SCALAR;

    if (__get_cpuid_max(0, NULL) < 7) return EK_ISA_SCALAR;
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    const int has_avx2 = (ebx >> 5) & 1;
    const int has_avx512f = (ebx >> 16) & 1;
    const int has_avx512dq = (ebx >> 17) & 1;
    const int has_avx512bw = (ebx >> 30) & 1;
    const int has_avx512vl = (ebx >> 31) & 1;

    if (!has_avx2 || !has_fma) return EK_ISA_SCALAR;
    if (os_avx512 && has_avx512f && has_avx512dq && has_avx512bw && has_avx512vl)
        return EK_ISA_AVX512;
    return EK_ISA_AVX2;
}

ek_isa ek_isa_detected(void) {
    int d = __atomic_load_n(&g_detected, __ATOMIC_RELAXED);
    if (d < 0) {
        // Idempotent: racing first callers compute and store the same value.
        d = (int)query_cpu();
        __atomic_store_n(&g_detected, d, __ATOMIC_RELAXED);
    }
    return (ek_isa)d;
}

ek_isa ek_isa_active(void) {
    int a = __atomic_load_n(&g_active, __ATOMIC_RELAXED);
    return a < 0 ? ek_isa_detected() : (ek_isa)a;
}

ek_isa ek_set_isa(ek_isa isa) {
    const int detected = (int)ek_isa_detected();
    int wanted = (int)isa;
    if (wanted < (int)EK_ISA_SCALAR) wanted = (int)EK_ISA_SCALAR;
    if (wanted > detected) wanted = detected;
    __atomic_store_n(&g_active, wanted, __ATOMIC_RELAXED);
    return (ek_isa)wanted;
}

const char *ek_isa_name(ek_isa isa) {
    switch (isa) {
    case EK_ISA_SCALAR: return "scalar";
    case EK_ISA_AVX2: return "avx2+fma";
    case EK_ISA_AVX512: return "avx512";
    }
    return "unknown";
}
