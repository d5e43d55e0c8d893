// OpenBLAS, loaded at run time with dlopen.
//
// Why not link it: OpenBLAS 0.3.21 (Debian 12) reads OPENBLAS_CORETYPE once, in its
// library constructor, and when the variable is unset it detects the CPU itself. That
// detection misses recent Intel Xeons (Sapphire Rapids: AVX-512 + AMX) and falls back to
// the generic "Prescott" kernels, 4-5x slower. Setting the variable in `main` is too late
// when the library is linked normally, because its constructor has already run. So, on
// first use, we pick a core type from our own CPUID query (AVX-512 F+BW+DQ+VL ->
// "SkylakeX", AVX2+FMA -> "Haswell", otherwise leave it to OpenBLAS), set it only if the
// user has not, and only then dlopen the library. On AMD Zen 4 OpenBLAS would pick
// "Cooperlake" itself; "SkylakeX" is equally fast there (measured 182 GFLOP/s sgemm
// 1024^3 on 2 cores both ways).
//
// The cblas types are declared here (no cblas.h): Debian's libopenblas0 uses the LP64
// interface, so blasint is a 32-bit int and the enums are passed as ints.
#include "internal.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { EK_CBLAS_ROW_MAJOR = 101, EK_CBLAS_NO_TRANS = 111, EK_CBLAS_TRANS = 112 };

typedef void (*ek_cblas_sgemm_fn)(int order, int trans_a, int trans_b, int m, int n, int k,
                                  float alpha, const float *a, int lda, const float *b,
                                  int ldb, float beta, float *c, int ldc);
typedef void (*ek_openblas_set_num_threads_fn)(int n);
typedef int (*ek_openblas_get_num_threads_fn)(void);
typedef char *(*ek_openblas_get_corename_fn)(void);

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static ek_blas_info g_info;
static ek_cblas_sgemm_fn g_sgemm;
static ek_openblas_set_num_threads_fn g_set_num_threads;
static ek_openblas_get_num_threads_fn g_get_num_threads;
static ek_openblas_get_corename_fn g_get_corename;
static char g_coretype_env[64];
static ek__loader_error g_error;

static void choose_coretype(void) {
    const char *existing = getenv("OPENBLAS_CORETYPE");
    if (existing == NULL || existing[0] == '\0') {  // empty: OpenBLAS would detect, as if unset
        const char *chosen = NULL;
        // The level the process started with: the CPU's, or ELUCIDATE_ISA's, so a process
        // run as on a lesser CPU gets that CPU's OpenBLAS kernels too (a level set later by
        // ek_set_isa cannot change kernels OpenBLAS has already chosen).
        const ek_isa level = ek_isa_starting();
        const int forced = level != ek_isa_detected();
        switch (level) {
        case EK_ISA_AVX512: chosen = "SkylakeX"; break;
        case EK_ISA_AVX2: chosen = "Haswell"; break;
        // A CPU without AVX2+FMA: OpenBLAS knows best what it has; forced, the SSE4.2 kernels.
        case EK_ISA_SCALAR: chosen = forced ? "Nehalem" : NULL; break;
        }
        if (chosen != NULL && setenv("OPENBLAS_CORETYPE", chosen, 1) == 0) {
            g_info.coretype_set_by_us = 1;
        }
    }
    const char *now = getenv("OPENBLAS_CORETYPE");
    if (now != NULL && now[0] != '\0') {
        strncpy(g_coretype_env, now, sizeof g_coretype_env - 1);
        g_coretype_env[sizeof g_coretype_env - 1] = '\0';
        g_info.coretype_env = g_coretype_env;
    }
}

static void load_once(void) {
    memset(&g_info, 0, sizeof g_info);
    choose_coretype();

    static const char *const candidates[] = {"libopenblas.so.0", "libopenblas.so", "libblas.so.3"};
    void *sgemm = NULL;
    size_t opened = 0;
    void *handle = ek__open_first(candidates, sizeof candidates / sizeof candidates[0], "cblas_sgemm", &sgemm,
                                  &opened, &g_error);
    if (handle == NULL) {
        g_info.loaded = 0;
        g_info.error = g_error.text[0] ? g_error.text : "no BLAS library found";
        return;
    }
    // dlsym returns void *; POSIX guarantees the conversion to a function pointer.
    memcpy(&g_sgemm, &sgemm, sizeof g_sgemm);
    void *set_threads = dlsym(handle, "openblas_set_num_threads");
    if (set_threads) memcpy(&g_set_num_threads, &set_threads, sizeof g_set_num_threads);
    void *get_threads = dlsym(handle, "openblas_get_num_threads");
    if (get_threads) memcpy(&g_get_num_threads, &get_threads, sizeof g_get_num_threads);
    // OpenBLAS's thread count is one process-wide variable, read by every sgemm. It is set
    // here, once, under the pthread_once, and Elucidate never changes it again: one thread,
    // because Elucidate splits its products over its own threads (Runtime.gemm). Setting it
    // per call, as before, let concurrent callers (an inference layer asking for 1 thread, a
    // weight gradient asking for all) overwrite each other's setting in the middle of the
    // other's products: OpenBLAS's workers then ran inside Elucidate's shares and
    // oversubscribed the cores, and an OpenBLAS that chooses kernels by the thread count in
    // force (0.3.x's sgemm_direct on AVX-512 does) may round differently. Results must be a
    // function of Elucidate's settings and the shapes, not of who else is running.
    if (g_set_num_threads) g_set_num_threads(1);
    void *corename = dlsym(handle, "openblas_get_corename");
    if (corename) memcpy(&g_get_corename, &corename, sizeof g_get_corename);
    g_info.loaded = 1;
    g_info.library = candidates[opened];
    g_info.core_name = g_get_corename ? g_get_corename() : NULL;
    g_info.error = NULL;
}

ek_status ek_blas_load(void) {
    pthread_once(&g_once, load_once);
    return g_info.loaded ? EK_OK : EK_ERR_BLAS_UNAVAILABLE;
}

ek_blas_info ek_blas_get_info(void) {
    pthread_once(&g_once, load_once);
    return g_info;
}

void ek_blas_set_num_threads(int n) {
    if (n < 1) return;
    if (ek_blas_load() != EK_OK || g_set_num_threads == NULL) return;
    g_set_num_threads(n);
}

int ek_blas_get_num_threads(void) {
    if (ek_blas_load() != EK_OK || g_get_num_threads == NULL) return -1;
    return g_get_num_threads();
}

ek_status ek__sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                    float *c, int64_t ldc) {
    if (ek_blas_load() != EK_OK) return EK_ERR_BLAS_UNAVAILABLE;
    g_sgemm(EK_CBLAS_ROW_MAJOR, trans_a ? EK_CBLAS_TRANS : EK_CBLAS_NO_TRANS,
            trans_b ? EK_CBLAS_TRANS : EK_CBLAS_NO_TRANS, (int)m, (int)n, (int)k, alpha, a,
            (int)lda, b, (int)ldb, beta, c, (int)ldc);
    return EK_OK;
}

ek_status ek_gemm_f32(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                      const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                      float *c, int64_t ldc) {
    if (a == NULL || b == NULL || c == NULL) return EK_ERR_INVALID_ARGUMENT;
    if (m < 1 || n < 1 || k < 1) return EK_ERR_INVALID_ARGUMENT;
    if (m > INT_MAX || n > INT_MAX || k > INT_MAX || lda > INT_MAX || ldb > INT_MAX ||
        ldc > INT_MAX)
        return EK_ERR_INVALID_ARGUMENT;
    // Row-major: the leading dimension is the stored row length.
    if (lda < (trans_a ? m : k)) return EK_ERR_INVALID_ARGUMENT;
    if (ldb < (trans_b ? k : n)) return EK_ERR_INVALID_ARGUMENT;
    if (ldc < n) return EK_ERR_INVALID_ARGUMENT;
    return ek__sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
