// The dlopen step shared by the OpenBLAS and LAPACKE loaders: try each candidate soname in
// order and keep the first that loads and exports the symbol we need.
#include "internal.h"

#include <dlfcn.h>
#include <string.h>

static void remember_first_error(ek__loader_error *error, const char *prefix, const char *detail) {
    // Keeps the first error: it names the library we wanted most.
    if (error->text[0] != '\0') return;
    size_t used = 0;
    for (const char *s = prefix; *s && used + 1 < sizeof error->text; s++) error->text[used++] = *s;
    if (detail)
        for (const char *s = detail; *s && used + 1 < sizeof error->text; s++) error->text[used++] = *s;
    error->text[used] = '\0';
}

void *ek__open_first(const char *const *candidates, size_t count, const char *symbol, void **function,
                     size_t *opened, ek__loader_error *error) {
    for (size_t i = 0; i < count; i++) {
        void *handle = dlopen(candidates[i], RTLD_NOW | RTLD_LOCAL);
        if (handle == NULL) {
            remember_first_error(error, "", dlerror());
            continue;
        }
        dlerror();
        void *found = dlsym(handle, symbol);
        if (found == NULL) {
            char prefix[128];
            size_t length = strlen(symbol);
            if (length > sizeof prefix - 3) length = sizeof prefix - 3;
            memcpy(prefix, symbol, length);
            memcpy(prefix + length, ": ", 3);
            remember_first_error(error, prefix, dlerror());
            dlclose(handle);
            continue;
        }
        *function = found;
        *opened = i;
        return handle;  // stays open for the life of the process
    }
    return NULL;
}
