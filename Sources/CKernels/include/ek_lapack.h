// LAPACKE, loaded at run time: the double-precision least-squares solver behind Kernel SHAP
// and LIME's linear surrogates.
//
// Like OpenBLAS (see ckernels.h), LAPACKE is not a link-time dependency. Debian's
// liblapacke.so.3 pulls in liblapack.so.3, which the alternatives system usually points at
// OpenBLAS; linking it would run OpenBLAS's constructor before `main`, before Elucidate has
// chosen OPENBLAS_CORETYPE. So the first call loads OpenBLAS through ek_blas_load (which
// sets the core type), then dlopens liblapacke and resolves LAPACKE_dgelsd.
#ifndef ELUCIDATE_EK_LAPACK_H
#define ELUCIDATE_EK_LAPACK_H

#include "ckernels.h"

#ifdef __cplusplus
extern "C" {
#endif

// Statuses beyond ckernels.h's, numbered far from its range so that new codes there cannot
// collide. ek_status_string does not know them: use ek_lapack_status_string.
static const ek_status EK_ERR_LAPACK_UNAVAILABLE = (ek_status)64;  // liblapacke could not be loaded
static const ek_status EK_ERR_LAPACK_FAILED = (ek_status)65;       // the SVD did not converge

typedef struct ek_lapack_info {
    int loaded;                 // 1 when LAPACKE_dgelsd is usable
    const char *library;        // the soname that was opened, e.g. "liblapacke.so.3"
    const char *lapack_library; // the file that provides dgelsd_ (OpenBLAS or reference
                                // LAPACK, as the alternatives choose), NULL if unknown
    const char *error;          // why loading failed (dlerror() text), else NULL
} ek_lapack_info;

/// Loads LAPACKE once (thread-safe; OpenBLAS first, see above); returns EK_OK or
/// EK_ERR_LAPACK_UNAVAILABLE.
ek_status ek_lapack_load(void);
/// What the loader did. Loads first if needed.
ek_lapack_info ek_lapack_get_info(void);
/// ek_status_string, extended with the statuses of this header.
const char *ek_lapack_status_string(ek_status status);

/// Minimum-norm least squares through LAPACKE_dgelsd (SVD, divide and conquer): the x of
/// smallest ‖x‖ among those minimising ‖A·x − b‖₂, for any shape and rank of A.
///
/// - a: A[m, n], row-major with row length lda ≥ n. Destroyed.
/// - b: at least max(m, n) doubles; b[0..<m] is the right-hand side on entry, b[0..<n] is x
///   on return (the rest is overwritten).
/// - rcond: singular values s ≤ rcond · s_max count as zero (as scipy.linalg.lstsq's
///   `cond`; negative means machine precision).
/// - rank: receives the effective rank; may be NULL.
///
/// Returns EK_ERR_INVALID_ARGUMENT for non-positive or oversized dimensions, lda < n, NULL
/// pointers, a NaN rcond or a non-finite entry of A or b; EK_ERR_LAPACK_UNAVAILABLE when
/// LAPACKE cannot be loaded; EK_ERR_LAPACK_FAILED when the SVD does not converge or LAPACKE
/// runs out of memory.
ek_status ek_lstsq_f64(int64_t m, int64_t n, double *a, int64_t lda, double *b, double rcond,
                       int64_t *rank);

#ifdef __cplusplus
}
#endif

#endif
