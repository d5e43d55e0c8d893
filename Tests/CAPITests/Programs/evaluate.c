/*
 * evaluate MODEL METRIC OPTIONS_JSON|- ATTRIBUTIONS.raw|- AC AH AW IMAGE...
 *
 * Runs elu_evaluate on the images (each made a tensor with elu_image_tensor, stacked into one
 * [N, C, H, W] input) with the attributions in ATTRIBUTIONS.raw (raw float32, [N, AC, AH, AW];
 * "-": the options' "method" computes them) and prints the JSON report, or
 * "status N: MESSAGE". "misuse MODEL" instead checks that bad arguments are status codes with
 * messages and no report.
 */
#include <elucidate.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *arg(const char *text) { return strcmp(text, "-") == 0 ? NULL : text; }

static int misuse(elu_model *model) {
    static float input[3 * 28 * 28], maps[2 * 3 * 28 * 28];
    const int64_t shape[4] = {1, 3, 28, 28}, two[4] = {2, 3, 28, 28}, gray[4] = {1, 1, 28, 28};
    const int64_t zero[4] = {1, 0, 28, 28}, huge[4] = {1 << 20, 3, 1 << 20, 1 << 20};
    static char sentinel;
    int failed = 0, checks = 0;
    char *report = NULL, *error = NULL;
#define EXPECT(call, expected, what)                                                           \
    do {                                                                                       \
        checks++;                                                                              \
        report = &sentinel; /* must be reset to NULL */                                        \
        int status = (call);                                                                   \
        if (status != (expected) || error == NULL || report != NULL) {                         \
            printf("FAILED: %s gave status %d (%s)\n", what, status, error ? error : "no message"); \
            failed++;                                                                          \
        }                                                                                      \
        elu_string_free(error);                                                                \
        error = NULL;                                                                          \
    } while (0)
    const int bad = ELU_ERROR_INVALID_ARGUMENT;
    const char *method = "{\"method\": \"saliency\", \"steps\": 4}";
    EXPECT(elu_evaluate(NULL, "deletion", method, input, shape, NULL, NULL, &report, &error), bad, "NULL model");
    EXPECT(elu_evaluate(model, NULL, method, input, shape, NULL, NULL, &report, &error), bad, "NULL metric");
    EXPECT(elu_evaluate(model, "deletion", method, NULL, shape, NULL, NULL, &report, &error), bad, "NULL input");
    EXPECT(elu_evaluate(model, "deletion", method, input, NULL, NULL, NULL, &report, &error), bad, "NULL shape");
    checks++;
    if (elu_evaluate(model, "deletion", method, input, shape, NULL, NULL, NULL, &error) != bad || error == NULL) {
        printf("FAILED: NULL report_json\n");
        failed++;
    }
    elu_string_free(error);
    error = NULL;
    EXPECT(elu_evaluate(model, "no-such-metric", method, input, shape, NULL, NULL, &report, &error), bad, "unknown metric");
    EXPECT(elu_evaluate(model, "deletion", "{not json", input, shape, NULL, NULL, &report, &error), bad, "malformed options");
    EXPECT(elu_evaluate(model, "deletion", "{\"method\": \"saliency\", \"stepz\": 4}", input, shape, NULL, NULL, &report,
                        &error), bad, "unknown option");
    EXPECT(elu_evaluate(model, "deletion", "{\"method\": \"saliency\", \"steps\": 0}", input, shape, NULL, NULL, &report,
                        &error), bad, "zero steps");
    EXPECT(elu_evaluate(model, "deletion", "{\"method\": \"no-such-method\"}", input, shape, NULL, NULL, &report, &error),
           bad, "unknown method");
    EXPECT(elu_evaluate(model, "deletion", "{\"method-options\": \"{}\"}", input, shape, maps, shape, &report, &error),
           bad, "method options without a method");
    EXPECT(elu_evaluate(model, "deletion", NULL, input, shape, NULL, NULL, &report, &error), bad, "neither maps nor method");
    EXPECT(elu_evaluate(model, "deletion", method, input, shape, maps, shape, &report, &error), bad, "maps and a method");
    EXPECT(elu_evaluate(model, "sensitivity-max", NULL, input, shape, maps, shape, &report, &error), bad,
           "sensitivity-max with given maps");
    EXPECT(elu_evaluate(model, "sanity", NULL, input, shape, NULL, NULL, &report, &error), bad, "sanity without a method");
    EXPECT(elu_evaluate(model, "compare", NULL, input, shape, NULL, NULL, &report, &error), bad, "compare without methods");
    EXPECT(elu_evaluate(model, "deletion", NULL, input, shape, maps, NULL, &report, &error), bad,
           "maps without attribution_shape");
    EXPECT(elu_evaluate(model, "deletion", NULL, input, shape, maps, two, &report, &error), bad, "maps of another row count");
    EXPECT(elu_evaluate(model, "deletion", NULL, input, shape, maps, zero, &report, &error), bad, "maps with a zero dimension");
    EXPECT(elu_evaluate(model, "deletion", NULL, input, huge, maps, shape, &report, &error), bad, "an input too large");
    EXPECT(elu_evaluate(model, "deletion", method, input, gray, NULL, NULL, &report, &error), bad, "the wrong channel count");
    EXPECT(elu_evaluate(model, "infidelity", "{\"samples\": 2}", input, shape, maps, gray, &report, &error), bad,
           "infidelity of maps not the input's shape");
    EXPECT(elu_evaluate(model, "deletion", "{\"method\": \"saliency\", \"images-per-batch\": 0}", input, shape, NULL, NULL,
                        &report, &error), bad, "zero images per batch");
    printf("misuse: %d checks, %d failed\n", checks, failed);
    return failed == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    char *error = NULL;
    if (argc == 3 && strcmp(argv[1], "misuse") == 0) {
        elu_model *model = elu_model_load(argv[2], NULL, &error);
        if (!model) { printf("load: %s\n", error); elu_string_free(error); return 1; }
        int result = misuse(model);
        elu_model_free(model);
        return result;
    }
    if (argc < 9) {
        fprintf(stderr, "usage: evaluate MODEL METRIC OPTIONS|- ATTRIBUTIONS.raw|- AC AH AW IMAGE...\n");
        return 2;
    }
    elu_model *model = elu_model_load(argv[1], NULL, &error);
    if (!model) { printf("load: %s\n", error); elu_string_free(error); return 1; }
    int64_t rows = argc - 8, shape[4] = {rows, 0, 0, 0}, row_count = 0;
    float *input = NULL;
    for (int64_t row = 0; row < rows; row++) {
        float *tensor = NULL;
        int64_t image_shape[4];
        if (elu_image_tensor(model, argv[8 + row], &tensor, image_shape, &error) != ELU_OK) {
            printf("image: %s\n", error);
            return 1;
        }
        if (row == 0) {
            for (int axis = 1; axis < 4; axis++) shape[axis] = image_shape[axis];
            row_count = shape[1] * shape[2] * shape[3];
            input = malloc((size_t)(rows * row_count) * sizeof(float));
            if (!input) return 1;
        }
        memcpy(input + row * row_count, tensor, (size_t)row_count * sizeof(float));
        elu_tensor_free(tensor);
    }
    float *maps = NULL;
    int64_t map_shape[4] = {rows, atoll(argv[5]), atoll(argv[6]), atoll(argv[7])};
    if (arg(argv[4])) {
        size_t count = (size_t)(map_shape[0] * map_shape[1] * map_shape[2] * map_shape[3]);
        maps = malloc(count * sizeof(float));
        FILE *file = fopen(argv[4], "rb");
        if (!maps || !file || fread(maps, sizeof(float), count, file) != count) {
            printf("cannot read %s\n", argv[4]);
            return 1;
        }
        fclose(file);
    }
    char *report = NULL;
    int status = elu_evaluate(model, argv[2], arg(argv[3]), input, shape, maps, map_shape, &report, &error);
    if (status == ELU_OK) {
        printf("%s\n", report);
    } else {
        printf("status %d: %s\n", status, error ? error : "(no message)");
    }
    elu_string_free(report);
    elu_string_free(error);
    free(maps);
    free(input);
    elu_model_free(model);
    return status == ELU_OK ? 0 : 1;
}
