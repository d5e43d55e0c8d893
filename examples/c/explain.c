/*
 * explain MODEL IMAGE METHOD OUT.npy OUT.png [OPTIONS_JSON]
 *
 * Loads MODEL (a weights file or a built-in model's name), turns IMAGE into the model's
 * input, explains the predicted class with METHOD, writes the attributions to OUT.npy
 * (float32, exactly as `elucidate explain --attributions` writes them) and draws them to
 * OUT.png (as `elucidate explain --visualize` does). OPTIONS_JSON goes to elu_explain.
 *
 *     cc explain.c -o explain $(pkg-config --cflags --libs elucidate)
 *     ./explain fashion-mnist-resnet shirt.png saliency saliency.npy saliency.png
 */
#include <elucidate.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints the library's message, which names the file involved, and frees it. */
static int fail(char *error) {
    fprintf(stderr, "explain: %s\n", error ? error : "(no message)");
    elu_string_free(error);
    return 1;
}

/* numpy's .npy format 1.0: magic, version, header length, the header dict padded with
 * spaces (and 21 spare for growing the first axis, as numpy writes it) to a multiple of 64
 * bytes, ending in '\n'; then the raw little-endian float32 values. */
static int write_npy(const char *path, const float *values, const int64_t shape[4]) {
    char dict[256];
    int length = snprintf(dict, sizeof dict,
                          "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld, %lld, %lld), }",
                          (long long)shape[0], (long long)shape[1], (long long)shape[2], (long long)shape[3]);
    char first[32];
    int spare = 21 - snprintf(first, sizeof first, "%lld", (long long)shape[0]);
    if (spare < 0) spare = 0;
    int body = length + spare;                    /* before padding and the newline */
    int padding = 64 - (10 + body + 1) % 64;
    int header = body + padding + 1;
    FILE *file = fopen(path, "wb");
    if (!file) return -1;
    unsigned char prefix[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                                (unsigned char)(header & 0xFF), (unsigned char)(header >> 8)};
    fwrite(prefix, 1, sizeof prefix, file);
    fwrite(dict, 1, (size_t)length, file);
    for (int i = 0; i < spare + padding; i++) fputc(' ', file);
    fputc('\n', file);
    size_t count = (size_t)(shape[0] * shape[1] * shape[2] * shape[3]);
    /* float32 as stored: this example assumes a little-endian machine (x86-64, arm64). */
    size_t written = fwrite(values, sizeof(float), count, file);
    return fclose(file) == 0 && written == count ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc < 6 || argc > 7) {
        fprintf(stderr, "usage: explain MODEL IMAGE METHOD OUT.npy OUT.png [OPTIONS_JSON]\n");
        return 2;
    }
    const char *options = argc == 7 ? argv[6] : NULL;
    char *error = NULL;
    elu_model *model = elu_model_load(argv[1], NULL, &error);
    if (!model) return fail(error);

    float *input = NULL;
    int64_t shape[4];
    if (elu_image_tensor(model, argv[2], &input, shape, &error) != ELU_OK) {
        elu_model_free(model);
        return fail(error);
    }
    size_t count = (size_t)(shape[0] * shape[1] * shape[2] * shape[3]);
    float *attributions = malloc(count * sizeof(float));
    char *report = NULL;
    int status = attributions ? elu_explain(model, argv[3], options, input, shape, NULL, attributions, &report, &error)
                              : ELU_ERROR_INTERNAL;
    if (status == ELU_OK) {
        printf("%s\n", report);
        elu_string_free(report);
        if (write_npy(argv[4], attributions, shape) != 0) {
            fprintf(stderr, "explain: cannot write %s\n", argv[4]);
            status = 1;
        } else if (elu_visualize(attributions, shape, input, model, NULL, argv[5], &error) != ELU_OK) {
            status = fail(error);
        }
    } else {
        fail(error);
    }
    free(attributions);
    elu_tensor_free(input);
    elu_model_free(model);
    return status == ELU_OK ? 0 : 1;
}
