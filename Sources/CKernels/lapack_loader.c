// LAPACKE, loaded at run time with dlopen, for the same reason as OpenBLAS (blas_loader.c):
// Debian's liblapacke.so.3 depends on liblapack.so.3, which is OpenBLAS itself when the
// alternatives point there (the default once libopenblas0 is installed). Linking it would
// run OpenBLAS's constructor before `main` and before Elucidate could choose
// OPENBLAS_CORETYPE. So ek_blas_load runs first: it sets the core type and loads OpenBLAS,
// and the dlopen of liblapacke then finds OpenBLAS already initialised. Whether OpenBLAS
// loaded or not, LAPACKE still works with whatever LAPACK and BLAS the alternatives name.
//
// The LAPACKE declarations are written out here (no lapacke.h, which only liblapacke-dev
// installs): Debian builds LAPACKE with the LP64 interface, so lapack_int is a 32-bit int.
#define _GNU_SOURCE  // dladdr
#include "internal.h"
#include "ek_lapack.h"

#include <dlfcn.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { EK_LAPACK_ROW_MAJOR = 101 };

typedef int ek_lapack_int;
typedef ek_lapack_int (*ek_lapacke_dgelsd_fn)(int layout, ek_lapack_int m, ek_lapack_int n,
                                              ek_lapack_int nrhs, double *a, ek_lapack_int lda,
                                              double *b, ek_lapack_int ldb, double *s,
                                              double rcond, ek_lapack_int *rank);

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static ek_lapack_info g_info;
static ek_lapacke_dgelsd_fn g_dgelsd;
static char g_lapack_path[4096];
static ek__loader_error g_error;

// The file that provides the Fortran dgelsd_ LAPACKE forwards to: tells `elucidate info`
// whether the solver runs on OpenBLAS or on reference LAPACK.
static void find_lapack_library(void *lapacke) {
    void *symbol = dlsym(lapacke, "dgelsd_");
    Dl_info where;
    if (symbol == NULL || dladdr(symbol, &where) == 0 || where.dli_fname == NULL) return;
    // Through the alternatives symlinks to the real file, e.g. .../openblas-pthread/liblapack.so.3.
    char resolved[PATH_MAX];
    const char *path = realpath(where.dli_fname, resolved) ? resolved : where.dli_fname;
    strncpy(g_lapack_path, path, sizeof g_lapack_path - 1);
    g_lapack_path[sizeof g_lapack_path - 1] = '\0';
    g_info.lapack_library = g_lapack_path;
}

static void load_once(void) {
    memset(&g_info, 0, sizeof g_info);
    (void)ek_blas_load();  // for its side effect: OPENBLAS_CORETYPE chosen, OpenBLAS loaded

    static const char *const candidates[] = {"liblapacke.so.3", "liblapacke.so"};
    void *dgelsd = NULL;
    size_t opened = 0;
    void *handle = ek__open_first(candidates, sizeof candidates / sizeof candidates[0], "LAPACKE_dgelsd", &dgelsd,
                                  &opened, &g_error);
    if (handle == NULL) {
        g_info.loaded = 0;
        g_info.error = g_error.text[0] ? g_error.text : "no LAPACKE library found";
        return;
    }
    // dlsym returns void *; POSIX guarantees the conversion to a function pointer.
    memcpy(&g_dgelsd, &dgelsd, sizeof g_dgelsd);
    g_info.loaded = 1;
    g_info.library = candidates[opened];
    g_info.error = NULL;
    find_lapack_library(handle);
}

ek_status ek_lapack_load(void) {
    pthread_once(&g_once, load_once);
    return g_info.loaded ? EK_OK : EK_ERR_LAPACK_UNAVAILABLE;
}

ek_lapack_info ek_lapack_get_info(void) {
    pthread_once(&g_once, load_once);
    return g_info;
}

const char *ek_lapack_status_string(ek_status status) {
    if (status == EK_ERR_LAPACK_UNAVAILABLE) return "LAPACKE could not be loaded";
    if (status == EK_ERR_LAPACK_FAILED) return "the least-squares SVD did not converge";
    return ek_status_string(status);
}

static int all_finite(const double *x, int64_t rows, int64_t cols, int64_t ld) {
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            if (!isfinite(x[i * ld + j])) return 0;
    return 1;
}

ek_status ek_lstsq_f64(int64_t m, int64_t n, double *a, int64_t lda, double *b, double rcond,
                       int64_t *rank) {
    if (a == NULL || b == NULL || isnan(rcond)) return EK_ERR_INVALID_ARGUMENT;
    if (m < 1 || n < 1 || lda < n) return EK_ERR_INVALID_ARGUMENT;
    if (m > INT_MAX || n > INT_MAX || lda > INT_MAX) return EK_ERR_INVALID_ARGUMENT;
    // LAPACK cannot tell a diverging SVD from bad data; refuse the bad data up front.
    if (!all_finite(a, m, n, lda) || !all_finite(b, m, 1, 1)) return EK_ERR_INVALID_ARGUMENT;
    if (ek_lapack_load() != EK_OK) return EK_ERR_LAPACK_UNAVAILABLE;

    // The singular values are not returned; LAPACKE allocates its own workspace anyway.
    double *singular_values = malloc(sizeof(double) * (size_t)ek__min64(m, n));
    if (singular_values == NULL) return EK_ERR_LAPACK_FAILED;
    ek_lapack_int found_rank = 0;
    // Row-major b with one right-hand side: max(m, n) rows of length ldb = 1.
    ek_lapack_int info = g_dgelsd(EK_LAPACK_ROW_MAJOR, (ek_lapack_int)m, (ek_lapack_int)n, 1, a,
                                  (ek_lapack_int)lda, b, 1, singular_values, rcond, &found_rank);
    free(singular_values);
    if (info != 0) return info < 0 && info > -1000 ? EK_ERR_INVALID_ARGUMENT : EK_ERR_LAPACK_FAILED;
    if (rank != NULL) *rank = found_rank;
    return EK_OK;
}
