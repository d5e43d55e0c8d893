/*
 * check MODEL [SIZE]
 *
 * Exercises the C API on MODEL (a weights file, e.g. a ResNet34 .safetensors, or a built-in
 * model's name) with made-up [2, 3, SIZE, SIZE] inputs (SIZE defaults to 64): predict,
 * Integrated Gradients, Occlusion, every kind of bad input (each must return an error status
 * and a message, never crash), and saliency from 4 threads sharing the model, compared bit for
 * bit with a sequential run. Prints one line per check; exits 0 when all pass.
 *
 *     cc check.c -o check $(pkg-config --cflags --libs elucidate) -pthread
 */
#include <elucidate.h>

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

static void check(int ok, const char *what, const char *detail) {
    if (ok) passed++; else failed++;
    printf("%s: %s%s%s\n", ok ? "ok" : "FAILED", what, detail ? ": " : "", detail ? detail : "");
}

/* A call that must fail: a non-zero status and a message. */
static void expect_error(int status, char *error, const char *what) {
    int ok = status != ELU_OK && error != NULL && error[0] != '\0' && strchr(error, '\n') == NULL;
    char detail[512];
    snprintf(detail, sizeof detail, "status %d, \"%s\"", status, error ? error : "(no message)");
    check(ok, what, detail);
    elu_string_free(error);
}

/* `call` (which sets `error`) must fail; the status is read before the message. */
#define EXPECT_ERROR(what, call) do { error = NULL; int status_ = (call); expect_error(status_, error, what); } while (0)

static int all_finite(const float *values, size_t count) {
    for (size_t i = 0; i < count; i++) if (!isfinite(values[i])) return 0;
    return 1;
}

static int any_nonzero(const float *values, size_t count) {
    for (size_t i = 0; i < count; i++) if (values[i] != 0) return 1;
    return 0;
}

/* Reproducible inputs in [-2, 2). */
static void fill(float *values, size_t count, uint32_t seed) {
    uint32_t state = seed * 2654435761u + 1;
    for (size_t i = 0; i < count; i++) {
        state = state * 1664525u + 1013904223u;
        values[i] = (float)(state >> 8) / (float)(1u << 24) * 4.0f - 2.0f;
    }
}

struct job {
    const elu_model *model;
    const float *input;
    const int64_t *shape;
    float *out;
    int status;
    char *error;
};

static void *run_saliency(void *argument) {
    struct job *job = argument;
    job->status = elu_explain(job->model, "saliency", NULL, job->input, job->shape, NULL, job->out, NULL, &job->error);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: check MODEL [SIZE]\n");
        return 2;
    }
    int64_t size = argc == 3 ? atoll(argv[2]) : 64;
    char *error = NULL;
    printf("elucidate %s\n", elu_version());
    check(strcmp(elu_version(), ELU_VERSION) == 0, "the library's version is the header's", ELU_VERSION);

    elu_model *model = elu_model_load(argv[1], NULL, &error);
    check(model != NULL && error == NULL, "load", error);
    if (!model) { elu_string_free(error); return 1; }
    int64_t classes = elu_model_classes(model);
    check(classes > 0, "classes", NULL);

    int64_t shape[4] = {2, 3, size, size};
    size_t count = (size_t)(2 * 3 * size * size);
    float *input = malloc(count * sizeof(float));
    float *attributions = malloc(count * sizeof(float));
    float *logits = malloc((size_t)(2 * classes) * sizeof(float));
    fill(input, count, 1);

    /* predict */
    int status = elu_predict(model, input, shape, logits, &error);
    check(status == ELU_OK && error == NULL && all_finite(logits, (size_t)(2 * classes)), "predict", error);
    elu_string_free(error);

    /* Integrated Gradients, with explicit targets and a JSON report */
    int64_t targets[2] = {0, classes - 1};
    char *report = NULL;
    status = elu_explain(model, "integrated-gradients", "{\"steps\": 8}", input, shape, targets, attributions, &report, &error);
    check(status == ELU_OK && all_finite(attributions, count) && any_nonzero(attributions, count) && report != NULL,
          "integrated-gradients", status == ELU_OK ? report : error);
    elu_string_free(report);
    elu_string_free(error);

    /* Occlusion, targets the predicted classes */
    status = elu_explain(model, "occlusion", "{\"window\": \"3,16,16\", \"stride\": \"3,16,16\"}", input, shape, NULL,
                         attributions, NULL, &error);
    check(status == ELU_OK && all_finite(attributions, count), "occlusion", error);
    elu_string_free(error);

    /* Bad input: each an error status and a one-line message. */
    int64_t zero[4] = {0, 3, size, size}, negative[4] = {1, 3, -5, size};
    int64_t huge[4] = {INT64_MAX, 3, INT64_MAX, 2}, channels[4] = {1, 4, size, size};
    int64_t one[4] = {1, 3, size, size};
    int64_t bad_target[2] = {classes, 0};
    EXPECT_ERROR("NULL model", elu_predict(NULL, input, shape, logits, &error));
    EXPECT_ERROR("NULL input", elu_predict(model, NULL, shape, logits, &error));
    EXPECT_ERROR("NULL shape", elu_predict(model, input, NULL, logits, &error));
    EXPECT_ERROR("NULL logits", elu_predict(model, input, shape, NULL, &error));
    EXPECT_ERROR("zero dimension", elu_predict(model, input, zero, logits, &error));
    EXPECT_ERROR("negative dimension", elu_predict(model, input, negative, logits, &error));
    EXPECT_ERROR("overflowing shape", elu_predict(model, input, huge, logits, &error));
    EXPECT_ERROR("wrong channel count", elu_predict(model, input, channels, logits, &error));
    EXPECT_ERROR("bad JSON", elu_explain(model, "saliency", "{", input, one, NULL, attributions, NULL, &error));
    EXPECT_ERROR("JSON not an object", elu_explain(model, "saliency", "[1]", input, one, NULL, attributions, NULL, &error));
    EXPECT_ERROR("unknown option", elu_explain(model, "saliency", "{\"bogus\": 1}", input, one, NULL, attributions, NULL, &error));
    EXPECT_ERROR("unknown method", elu_explain(model, "no-such-method", NULL, input, one, NULL, attributions, NULL, &error));
    EXPECT_ERROR("NULL method", elu_explain(model, NULL, NULL, input, one, NULL, attributions, NULL, &error));
    EXPECT_ERROR("target out of range", elu_explain(model, "saliency", NULL, input, shape, bad_target, attributions, NULL, &error));
    EXPECT_ERROR("NULL attributions", elu_explain(model, "saliency", NULL, input, one, NULL, NULL, NULL, &error));
    float saved = input[5];
    input[5] = NAN;
    EXPECT_ERROR("NaN input", elu_explain(model, "saliency", NULL, input, one, NULL, attributions, NULL, &error));
    input[5] = INFINITY;
    EXPECT_ERROR("infinite input", elu_predict(model, input, one, logits, &error));
    input[5] = saved;
    EXPECT_ERROR("NULL out_png", elu_visualize(attributions, one, input, model, NULL, NULL, &error));
    EXPECT_ERROR("unwritable out_png", elu_visualize(attributions, one, input, model, NULL, "/nonexistent-folder/x.png", &error));
    error = NULL;
    elu_model *missing = elu_model_load("/nonexistent/model.safetensors", NULL, &error);
    expect_error(missing ? ELU_OK : ELU_ERROR_FILE_NOT_FOUND, error, "missing model file");
    elu_model_free(missing);
    error = NULL;
    missing = elu_model_load(argv[1], "{\"arch\": \"resnet9000\"}", &error);
    expect_error(missing ? ELU_OK : ELU_ERROR_INVALID_ARGUMENT, error, "unknown architecture");
    elu_model_free(missing);
    error = NULL; missing = elu_model_load(NULL, NULL, &error);
    expect_error(missing ? ELU_OK : ELU_ERROR_INVALID_ARGUMENT, error, "NULL model path");
    float *tensor = NULL;
    int64_t tensor_shape[4];
    EXPECT_ERROR("missing image", elu_image_tensor(model, "/nonexistent.png", &tensor, tensor_shape, &error));
    check(tensor == NULL, "no tensor after a failure", NULL);
    check(elu_predict(model, input, zero, logits, NULL) != ELU_OK, "NULL error pointer", NULL);
    check(elu_model_classes(NULL) == -1, "classes of NULL", NULL);
    elu_model_free(NULL);
    elu_string_free(NULL);
    elu_tensor_free(NULL);

    /* Saliency from 4 threads on one model, bit for bit equal to a sequential run. */
    enum { THREADS = 4 };
    size_t row = (size_t)(3 * size * size);
    float *inputs = malloc(THREADS * row * sizeof(float));
    float *sequential = malloc(THREADS * row * sizeof(float));
    float *parallel = malloc(THREADS * row * sizeof(float));
    struct job jobs[THREADS];
    for (int t = 0; t < THREADS; t++) {
        fill(inputs + t * row, row, 100 + (uint32_t)t);
        jobs[t] = (struct job){model, inputs + t * row, one, sequential + t * row, 0, NULL};
        run_saliency(&jobs[t]);
        check(jobs[t].status == ELU_OK, "sequential saliency", jobs[t].error);
        elu_string_free(jobs[t].error);
    }
    for (int round = 0; round < 3; round++) {
        pthread_t threads[THREADS];
        memset(parallel, 0, THREADS * row * sizeof(float));
        for (int t = 0; t < THREADS; t++) {
            jobs[t] = (struct job){model, inputs + t * row, one, parallel + t * row, 0, NULL};
            pthread_create(&threads[t], NULL, run_saliency, &jobs[t]);
        }
        int ok = 1;
        for (int t = 0; t < THREADS; t++) {
            pthread_join(threads[t], NULL);
            if (jobs[t].status != ELU_OK) { ok = 0; fprintf(stderr, "thread %d: %s\n", t, jobs[t].error); }
            elu_string_free(jobs[t].error);
        }
        ok = ok && memcmp(parallel, sequential, THREADS * row * sizeof(float)) == 0;
        check(ok, "saliency from 4 threads equals the sequential run bit for bit", NULL);
    }

    free(inputs); free(sequential); free(parallel);
    free(input); free(attributions); free(logits);
    elu_model_free(model);
    printf("check: %d checks passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
