/*
 * parity: one elu_explain call on a raw tensor, for CAPITests to compare with Captum's goldens.
 *
 *     parity MODEL INPUT.f32 N C H W METHOD OPTIONS_JSON TARGETS OUT.f32
 *
 * INPUT.f32 holds N·C·H·W little-endian float32 in C order (the golden's input); TARGETS is
 * a comma-separated class per row, or "predicted"; OUT.f32 receives the attributions the
 * same way. Exit 0 on success; on failure the library's message on stderr and exit 1.
 */
#include <elucidate.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, char *error) {
    fprintf(stderr, "parity: %s: %s\n", what, error ? error : "(no message)");
    elu_string_free(error);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 11) {
        fprintf(stderr, "usage: parity MODEL INPUT.f32 N C H W METHOD OPTIONS_JSON TARGETS OUT.f32\n");
        return 2;
    }
    int64_t shape[4];
    for (int i = 0; i < 4; i++) shape[i] = strtoll(argv[3 + i], NULL, 10);
    size_t count = (size_t)(shape[0] * shape[1] * shape[2] * shape[3]);
    float *input = malloc(count * sizeof(float));
    float *attributions = malloc(count * sizeof(float));
    int64_t *targets = NULL;
    if (!input || !attributions) return fail("memory", NULL);

    FILE *in = fopen(argv[2], "rb");
    if (!in || fread(input, sizeof(float), count, in) != count) return fail("reading the input", NULL);
    fclose(in);
    if (strcmp(argv[9], "predicted") != 0) {
        targets = malloc((size_t)shape[0] * sizeof(int64_t));
        char *cursor = argv[9];
        for (int64_t row = 0; row < shape[0]; row++) targets[row] = strtoll(cursor, &cursor, 10), cursor += *cursor == ',';
    }

    char *error = NULL;
    elu_model *model = elu_model_load(argv[1], NULL, &error);
    if (!model) return fail("loading the model", error);
    char *report = NULL;
    if (elu_explain(model, argv[7], argv[8], input, shape, targets, attributions, &report, &error) != ELU_OK) {
        return fail("explaining", error);
    }
    FILE *out = fopen(argv[10], "wb");
    if (!out || fwrite(attributions, sizeof(float), count, out) != count || fclose(out) != 0) {
        return fail("writing the attributions", NULL);
    }
    printf("%s\n", report);
    elu_string_free(report);
    elu_model_free(model);
    /* Done explaining: the buffers kept for reuse go back to the system (a count, never negative). */
    if (elu_release_cached_memory() < 0) return fail("releasing the cached memory", NULL);
    free(input);
    free(attributions);
    free(targets);
    return 0;
}
