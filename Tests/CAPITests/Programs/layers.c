/*
 * layers: attributions of any shape through the C API, for CAPITests.
 *
 *     layers run MODEL INPUT.f32 N C H W METHOD OPTIONS_JSON into|alloc|explain OUT.f32 [OUT.png]
 *     layers misuse MODEL INPUT.f32 N C H W OUT_DIR
 *
 * run: asks elu_attribution_shape, then explains with elu_explain_into (a buffer of exactly
 * that size), elu_explain_alloc or elu_explain, checks that the shape returned is the one
 * announced, writes the attributions to OUT.f32 (little-endian float32, C order), prints
 * "shape D0,D1,… rank R" and the JSON report, and with OUT.png draws the first row with
 * elu_visualize_map. Exit 0 on success; on failure the library's message on stderr, exit 1.
 *
 * misuse: every kind of bad shape, buffer and option for the layer functions must give
 * ELU_ERROR_INVALID_ARGUMENT and a message, and never crash; prints "P passed, F failed".
 */
#include <elucidate.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fail(const char *what, char *error) {
    fprintf(stderr, "layers: %s: %s\n", what, error ? error : "(no message)");
    elu_string_free(error);
    return 1;
}

static int64_t product(const int64_t *shape) {
    int64_t count = 1;
    for (int i = 0; i < ELU_MAX_RANK; i++) count *= shape[i];
    return count;
}

static float *read_input(const char *path, const int64_t shape[4]) {
    size_t count = (size_t)(shape[0] * shape[1] * shape[2] * shape[3]);
    float *input = malloc(count * sizeof(float));
    FILE *in = fopen(path, "rb");
    if (!input || !in || fread(input, sizeof(float), count, in) != count) {
        free(input);
        if (in) fclose(in);
        return NULL;
    }
    fclose(in);
    return input;
}

static int run(char **argv, int argc) {
    int64_t shape[4];
    for (int i = 0; i < 4; i++) shape[i] = strtoll(argv[4 + i], NULL, 10);
    const char *method = argv[8], *options = argv[9], *mode = argv[10], *out_path = argv[11];
    float *input = read_input(argv[3], shape);
    if (!input) return fail("reading the input", NULL);

    char *error = NULL;
    elu_model *model = elu_model_load(argv[2], NULL, &error);
    if (!model) return fail("loading the model", error);

    int64_t announced[ELU_MAX_RANK];
    int announced_rank = 0;
    if (elu_attribution_shape(model, method, options, shape, announced, &announced_rank, &error) != ELU_OK) {
        return fail("asking the shape", error);
    }
    int64_t count = product(announced);

    float *attributions = NULL;
    int64_t got[ELU_MAX_RANK] = {0, 0, 0, 0};
    int rank = 0;
    char *report = NULL;
    int status;
    if (strcmp(mode, "into") == 0) {
        attributions = malloc((size_t)count * sizeof(float));
        status = elu_explain_into(model, method, options, input, shape, NULL, attributions, count, got, &rank,
                                  &report, &error);
    } else if (strcmp(mode, "alloc") == 0) {
        status = elu_explain_alloc(model, method, options, input, shape, NULL, &attributions, got, &rank,
                                   &report, &error);
    } else {
        /* elu_explain's buffer holds the input's count; the shape is the announced one. */
        attributions = malloc((size_t)(shape[0] * shape[1] * shape[2] * shape[3]) * sizeof(float));
        memcpy(got, announced, sizeof got);
        rank = announced_rank;
        status = elu_explain(model, method, options, input, shape, NULL, attributions, &report, &error);
    }
    if (status != ELU_OK) return fail("explaining", error);
    if (rank != announced_rank || memcmp(got, announced, sizeof got) != 0) {
        return fail("the shape returned differs from the one announced", NULL);
    }

    FILE *out = fopen(out_path, "wb");
    if (!out || fwrite(attributions, sizeof(float), (size_t)count, out) != (size_t)count || fclose(out) != 0) {
        return fail("writing the attributions", NULL);
    }
    printf("shape ");
    for (int i = 0; i < rank; i++) printf(i ? ",%lld" : "%lld", (long long)got[i]);
    printf(" rank %d\n%s\n", rank, report);

    if (argc == 13) {
        if (rank != 4) return fail("drawing", "only a 4-D map can be drawn");
        if (elu_visualize_map(attributions, got, input, shape, model, NULL, argv[12], &error) != ELU_OK) {
            return fail("drawing", error);
        }
    }
    elu_string_free(report);
    if (strcmp(mode, "alloc") == 0) elu_tensor_free(attributions); else free(attributions);
    elu_model_free(model);
    free(input);
    return 0;
}

static int passed, failed;

/* One misuse: `status` must be ELU_ERROR_INVALID_ARGUMENT with a message containing `expected`. */
static void expect_invalid(const char *what, int status, char *error, const char *expected) {
    int ok = status == ELU_ERROR_INVALID_ARGUMENT && error != NULL && strstr(error, expected) != NULL;
    if (ok) passed++; else failed++;
    printf("%s %s: status %d, %s\n", ok ? "ok" : "FAILED", what, status, error ? error : "(no message)");
    elu_string_free(error);
}

static int misuse(char **argv) {
    int64_t shape[4];
    for (int i = 0; i < 4; i++) shape[i] = strtoll(argv[4 + i], NULL, 10);
    float *input = read_input(argv[3], shape);
    if (!input) return fail("reading the input", NULL);
    char *error = NULL;
    elu_model *model = elu_model_load(argv[2], NULL, &error);
    if (!model) return fail("loading the model", error);
    char png[4096];
    snprintf(png, sizeof png, "%s/misuse.png", argv[8]);

    int64_t got[ELU_MAX_RANK];
    int rank = 0;
    const char *layer4 = "{\"layer\": \"layer4\"}";
    int s;

    s = elu_attribution_shape(NULL, "grad-cam", layer4, shape, got, &rank, &error);
    expect_invalid("shape: NULL model", s, error, "model is NULL");
    s = elu_attribution_shape(model, "grad-cam", "{\"layer\": \"layer9\"}", shape, got, &rank, &error);
    expect_invalid("shape: unknown layer", s, error, "unknown layer 'layer9'");
    s = elu_attribution_shape(model, "grad-cam", "{\"layer\": \"layer4\", \"steps\": 3}", shape, got, &rank, &error);
    expect_invalid("shape: an option grad-cam does not take", s, error, "steps");
    s = elu_attribution_shape(model, "grad-cam", "{\"layer\": ", shape, got, &rank, &error);
    expect_invalid("shape: malformed JSON", s, error, "JSON");
    s = elu_attribution_shape(model, "grad-cam", NULL, shape, got, &rank, &error);
    expect_invalid("shape: no layer", s, error, "needs --layer");
    int64_t empty[4] = {shape[0], shape[1], 0, shape[3]};
    s = elu_attribution_shape(model, "grad-cam", layer4, empty, got, &rank, &error);
    expect_invalid("shape: a dimension of 0", s, error, "less than 1");
    int64_t channels[4] = {shape[0], shape[1] + 1, shape[2], shape[3]};
    s = elu_attribution_shape(model, "grad-cam", layer4, channels, got, &rank, &error);
    expect_invalid("shape: wrong channel count", s, error, "input channels");
    int64_t huge[4] = {1 << 20, shape[1], 1 << 20, 1 << 20};
    s = elu_attribution_shape(model, "grad-cam", layer4, huge, got, &rank, &error);
    expect_invalid("shape: too many elements", s, error, "elements");
    s = elu_attribution_shape(model, "grad-cam", layer4, shape, got, NULL, &error);
    expect_invalid("shape: NULL rank", s, error, "rank is NULL");
    s = elu_attribution_shape(model, "grad-cam", layer4, shape, NULL, &rank, &error);
    expect_invalid("shape: NULL attribution_shape", s, error, "attribution_shape is NULL");
    s = elu_attribution_shape(model, "eigen-cam", "{\"layer\": \"fc\"}", shape, got, &rank, &error);
    expect_invalid("shape: a CAM on a layer without positions", s, error, "4-D output");

    /* A layer without positions: rank 2, trailing entries 1. */
    s = elu_attribution_shape(model, "layer-activation", "{\"layer\": \"fc\"}", shape, got, &rank, &error);
    int flat = s == ELU_OK && rank == 2 && got[0] == shape[0] && got[2] == 1 && got[3] == 1;
    if (flat) passed++; else failed++;
    printf("%s shape: fc is rank 2\n", flat ? "ok" : "FAILED");
    elu_string_free(error);

    float small[4];
    int64_t need[ELU_MAX_RANK] = {0, 0, 0, 0};
    s = elu_explain_into(model, "layer-activation", "{\"layer\": \"layer3\"}", input, shape, NULL, small, 4, need, &rank,
                         NULL, &error);
    expect_invalid("into: buffer too small", s, error, "the buffer holds 4");
    int told = need[0] == shape[0] && need[1] > 1 && rank == 4;
    if (told) passed++; else failed++;
    printf("%s into: the shape needed is told on refusal\n", told ? "ok" : "FAILED");
    s = elu_explain_into(model, "grad-cam", layer4, input, shape, NULL, small, -1, need, &rank, NULL, &error);
    expect_invalid("into: negative capacity", s, error, "negative");
    s = elu_explain_into(model, "grad-cam", layer4, input, shape, NULL, NULL, 4, need, &rank, NULL, &error);
    expect_invalid("into: NULL buffer", s, error, "attributions is NULL");
    s = elu_explain_into(model, "grad-cam", layer4, input, shape, NULL, small, 4, need, NULL, NULL, &error);
    expect_invalid("into: NULL rank", s, error, "rank is NULL");
    int64_t bad_target[64];
    for (int i = 0; i < 64; i++) bad_target[i] = 100000;
    s = elu_explain_into(model, "grad-cam", layer4, input, shape, bad_target, small, 4, need, &rank, NULL, &error);
    expect_invalid("into: target out of range", s, error, "out of range");

    float *allocated = (float *)&passed; /* must become NULL on failure */
    char *report = (char *)&failed;
    s = elu_explain_alloc(model, "score-cam", "{\"layer\": \"layer4\", \"batch-size\": 0}", input, shape, NULL,
                          &allocated, got, &rank, &report, &error);
    int cleared = allocated == NULL && report == NULL;
    expect_invalid("alloc: batch-size 0", s, error, "--batch-size must be at least 1");
    if (cleared) passed++; else failed++;
    printf("%s alloc: outputs NULL on failure\n", cleared ? "ok" : "FAILED");
    s = elu_explain_alloc(model, "grad-cam", "{\"layer\": \"layer4\", \"neuron\": \"1,1,1\"}", input, shape, NULL,
                          &allocated, got, &rank, NULL, &error);
    expect_invalid("alloc: an option grad-cam does not take", s, error, "neuron");
    s = elu_explain_alloc(model, "grad-cam", layer4, input, shape, NULL, NULL, got, &rank, NULL, &error);
    expect_invalid("alloc: NULL result pointer", s, error, "attributions is NULL");
    s = elu_explain_alloc(model, "no-such-method", NULL, input, shape, NULL, &allocated, got, &rank, NULL, &error);
    expect_invalid("alloc: unknown method", s, error, "no-such-method");
    size_t count = (size_t)(shape[0] * shape[1] * shape[2] * shape[3]);
    float *poisoned = malloc(count * sizeof(float));
    memcpy(poisoned, input, count * sizeof(float));
    poisoned[count / 2] = 0.0f / 0.0f;
    s = elu_explain_alloc(model, "grad-cam", layer4, poisoned, shape, NULL, &allocated, got, &rank, NULL, &error);
    expect_invalid("alloc: NaN in the input", s, error, "non-finite");

    /* elu_explain keeps its input-sized buffer: a layer map larger than the input is refused. */
    float *input_sized = malloc(count * sizeof(float));
    s = elu_explain(model, "layer-activation", "{\"layer\": \"layer1\"}", input, shape, NULL, input_sized, NULL, &error);
    expect_invalid("explain: a map larger than the input", s, error, "use elu_explain_into or elu_explain_alloc");

    int64_t map_shape[4] = {shape[0], 5, 2, 2};
    float map[4 * 5 * 2 * 2 * 64];
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) map[i] = (float)(i % 7) - 3.0f;
    int64_t other_n[4] = {shape[0] + 1, 5, 2, 2};
    s = elu_visualize_map(map, other_n, input, shape, model, NULL, png, &error);
    expect_invalid("visualize_map: different N", s, error, "rows");
    int64_t zero[4] = {shape[0], 0, 2, 2};
    s = elu_visualize_map(map, zero, input, shape, model, NULL, png, &error);
    expect_invalid("visualize_map: a dimension of 0", s, error, "attribution_shape");
    s = elu_visualize_map(NULL, map_shape, input, shape, model, NULL, png, &error);
    expect_invalid("visualize_map: NULL attributions", s, error, "attributions is NULL");
    s = elu_visualize_map(map, map_shape, input, NULL, model, NULL, png, &error);
    expect_invalid("visualize_map: NULL input shape", s, error, "input_shape is NULL");
    s = elu_visualize_map(map, map_shape, input, shape, model, "{\"panels\": \"no-such-view:all\"}", png, &error);
    expect_invalid("visualize_map: bad picture option", s, error, "no-such-view");
    map[3] = 1.0f / 0.0f;
    s = elu_visualize_map(map, map_shape, input, shape, model, NULL, png, &error);
    expect_invalid("visualize_map: infinity in the map", s, error, "non-finite");
    int none = access(png, F_OK) != 0;
    if (none) passed++; else failed++;
    printf("%s visualize_map: no picture written on failure\n", none ? "ok" : "FAILED");

    printf("%d passed, %d failed\n", passed, failed);
    free(poisoned);
    free(input_sized);
    free(input);
    elu_model_free(model);
    return failed == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc >= 12 && argc <= 13 && strcmp(argv[1], "run") == 0) return run(argv, argc);
    if (argc == 9 && strcmp(argv[1], "misuse") == 0) return misuse(argv);
    fprintf(stderr, "usage: layers run MODEL INPUT.f32 N C H W METHOD OPTIONS_JSON into|alloc|explain OUT.f32 [OUT.png]\n"
                    "       layers misuse MODEL INPUT.f32 N C H W OUT_DIR\n");
    return 2;
}
