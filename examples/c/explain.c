/*
 * explain MODEL IMAGE METHOD OUT.npy OUT.png [OPTIONS_JSON]
 *
 * Loads MODEL (a weights file or a built-in model's name), turns IMAGE into the model's
 * input, explains the predicted class with METHOD, writes the attributions to OUT.npy
 * (float32, exactly as `elucidate explain --attributions` writes them) and draws them to
 * OUT.png (as `elucidate explain --visualize` does). OPTIONS_JSON goes to elu_explain_alloc.
 * Any method works: a layer method's attributions have the layer's shape (e.g. grad-cam's
 * [1, 1, h, w]), which the library allocates and reports, and which it draws over the photo.
 *
 *     cc explain.c -o explain $(pkg-config --cflags --libs elucidate)
 *     ./explain fashion-mnist-resnet shirt.png saliency saliency.npy saliency.png
 *     ./explain fashion-mnist-resnet shirt.png grad-cam cam.npy cam.png '{"layer": "layer4"}'
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
static int write_npy(const char *path, const float *values, const int64_t *shape, int rank) {
    if (rank < 1 || rank > 8) return -1;
    char dims[128] = "";
    size_t count = 1;
    for (int i = 0; i < rank; i++) {
        size_t used = strlen(dims);
        snprintf(dims + used, sizeof dims - used, "%lld, ", (long long)shape[i]);
        count *= (size_t)shape[i];
    }
    /* "1, 1, 7, 7, " -> "1, 1, 7, 7"; one axis keeps its comma, as in numpy's "(5,)". */
    dims[strlen(dims) - (rank > 1 ? 2 : 1)] = '\0';
    char dict[256];
    int length = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", dims);
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
    /* The library allocates the attributions and says their shape: the input's for pixel
     * methods, the layer's for layer and CAM methods. */
    float *attributions = NULL;
    int64_t attribution_shape[ELU_MAX_RANK];
    int rank = 0;
    char *report = NULL;
    int status = elu_explain_alloc(model, argv[3], options, input, shape, NULL, &attributions, attribution_shape,
                                   &rank, &report, &error);
    if (status == ELU_OK) {
        printf("%s\n", report);
        elu_string_free(report);
        if (write_npy(argv[4], attributions, attribution_shape, rank) != 0) {
            fprintf(stderr, "explain: cannot write %s\n", argv[4]);
            status = 1;
        } else if (rank == 4 && elu_visualize_map(attributions, attribution_shape, input, shape, model, NULL, argv[5],
                                                  &error) != ELU_OK) {
            status = fail(error);
        } else if (rank != 4) {
            fprintf(stderr, "explain: no picture: the attributions have no positions (rank %d)\n", rank);
        }
    } else {
        fail(error);
    }
    elu_tensor_free(attributions);
    elu_tensor_free(input);
    elu_model_free(model);
    return status == ELU_OK ? 0 : 1;
}
