// The file this code was loaded from (the executable, or the shared library Elucidate is
// linked into, e.g. PREFIX/lib/libelucidate.so), so an installed library finds its built-in
// models in PREFIX/share/elucidate/models.
#define _GNU_SOURCE
#include "ckernels.h"

#include <dlfcn.h>

const char *ek_loaded_image_path(void) {
    Dl_info info;
    if (dladdr((const void *)&ek_loaded_image_path, &info) == 0) return NULL;
    return info.dli_fname;
}
