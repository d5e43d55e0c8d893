// Human-readable status strings.
#include "internal.h"

const char *ek_status_string(ek_status status) {
    switch (status) {
    case EK_OK: return "ok";
    case EK_ERR_INVALID_ARGUMENT: return "invalid argument (shape, stride, share or pointer)";
    case EK_ERR_SCRATCH_TOO_SMALL: return "scratch buffer too small";
    case EK_ERR_BLAS_UNAVAILABLE: return "OpenBLAS could not be loaded";
    }
    return "unknown status";
}
