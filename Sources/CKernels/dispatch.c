// Run-time CPU feature query (CPUID + XGETBV) and the active instruction-set level.
//
// A level counts as supported only when both the CPU reports the instructions and the OS
// saves the register state (XCR0): AVX2 needs XMM|YMM state, AVX-512 also needs the
// opmask and both ZMM halves.
//
// The level in force starts as the CPU's, or as ELUCIDATE_ISA says (read once, at the first
// query, clamped to the CPU's), so a whole process — the CLI or a program embedding the
// library — can be run as on a lesser CPU. ek_set_isa changes it later; ek_isa_reset goes
// back to the starting level.
//
// Concurrency: every kernel call reads the level (ek__isa), from any thread, with relaxed
// atomics; the environment is read exactly once (pthread_once) before anything reports on
// it. The level is a setting like the thread count: set it before the first model call, not
// while kernels run (a kernel already running finishes at its level, the next one would
// take the new one, so one explanation would mix the levels' roundings).
#include "internal.h"

#include <cpuid.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int g_detected = -1;  // ek_isa, or -1 before the first query
static int g_active = -1;    // ek_isa, or -1 meaning "the starting level"
static int g_origin = (int)EK_ISA_ORIGIN_CPU;  // where the active level came from

// What ELUCIDATE_ISA said, read once.
static pthread_once_t g_environment_once = PTHREAD_ONCE_INIT;
static char g_environment_text[32];
static int g_environment_set;      // 1 when ELUCIDATE_ISA is set and not empty
static ek_isa_request g_environment_request = EK_ISA_REQUEST_NONE;
static int g_start_level;          // the level a process starts with (ek_isa)

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

int ek_isa_parse(const char *text, ek_isa *level) {
    static const struct { const char *name; ek_isa level; } names[] = {
        {"scalar", EK_ISA_SCALAR}, {"avx2", EK_ISA_AVX2}, {"avx2+fma", EK_ISA_AVX2}, {"avx512", EK_ISA_AVX512},
    };
    if (text == NULL) return 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcasecmp(text, names[i].name) == 0) {
            if (level) *level = names[i].level;
            return 1;
        }
    }
    return 0;
}

static void read_environment(void) {
    const int detected = (int)ek_isa_detected();
    g_start_level = detected;
    const char *text = getenv("ELUCIDATE_ISA");
    if (text == NULL || text[0] == '\0') return;
    g_environment_set = 1;
    strncpy(g_environment_text, text, sizeof g_environment_text - 1);
    g_environment_text[sizeof g_environment_text - 1] = '\0';
    ek_isa wanted;
    if (strcasecmp(text, "auto") == 0 || strcasecmp(text, "native") == 0) {
        g_environment_request = EK_ISA_REQUEST_AUTO;
    } else if (!ek_isa_parse(text, &wanted)) {
        g_environment_request = EK_ISA_REQUEST_UNKNOWN;  // ignored; the library reports it
    } else if ((int)wanted > detected) {
        g_environment_request = EK_ISA_REQUEST_ABOVE_CPU;
    } else {
        g_environment_request = EK_ISA_REQUEST_APPLIED;
        g_start_level = (int)wanted;
    }
}

/// The level a process starts with: ELUCIDATE_ISA's when it names one the CPU has, else the CPU's.
static int start_level(void) {
    pthread_once(&g_environment_once, read_environment);
    return g_start_level;
}

ek_isa ek_isa_active(void) {
    int a = __atomic_load_n(&g_active, __ATOMIC_RELAXED);
    return a < 0 ? (ek_isa)start_level() : (ek_isa)a;
}

ek_isa ek_set_isa(ek_isa isa) {
    (void)start_level();  // the environment is read once, before any level is forced
    const int detected = (int)ek_isa_detected();
    int wanted = (int)isa;
    if (wanted < (int)EK_ISA_SCALAR) wanted = (int)EK_ISA_SCALAR;
    if (wanted > detected) wanted = detected;
    __atomic_store_n(&g_origin, (int)EK_ISA_ORIGIN_PROGRAM, __ATOMIC_RELAXED);
    __atomic_store_n(&g_active, wanted, __ATOMIC_RELAXED);
    return (ek_isa)wanted;
}

ek_isa ek_isa_reset(void) {
    __atomic_store_n(&g_active, -1, __ATOMIC_RELAXED);
    __atomic_store_n(&g_origin, (int)EK_ISA_ORIGIN_CPU, __ATOMIC_RELAXED);
    return ek_isa_active();
}

ek_isa ek_isa_starting(void) { return (ek_isa)start_level(); }

ek_isa_info ek_isa_get_info(void) {
    ek_isa_info info;
    memset(&info, 0, sizeof info);
    // The g_environment_* fields below are written by read_environment: make sure it ran (and
    // finished, which pthread_once guarantees) even when ek_set_isa forced a level first.
    (void)start_level();
    info.detected = ek_isa_detected();
    info.active = ek_isa_active();
    info.environment = g_environment_set ? g_environment_text : NULL;
    info.environment_request = g_environment_request;
    const int origin = __atomic_load_n(&g_origin, __ATOMIC_RELAXED);
    if (origin == (int)EK_ISA_ORIGIN_PROGRAM) {
        info.origin = EK_ISA_ORIGIN_PROGRAM;
    } else {
        info.origin = g_environment_request == EK_ISA_REQUEST_APPLIED ? EK_ISA_ORIGIN_ENVIRONMENT : EK_ISA_ORIGIN_CPU;
    }
    return info;
}

const char *ek_isa_name(ek_isa isa) {
    switch (isa) {
    case EK_ISA_SCALAR: return "scalar";
    case EK_ISA_AVX2: return "avx2+fma";
    case EK_ISA_AVX512: return "avx512";
    }
    return "unknown";
}
