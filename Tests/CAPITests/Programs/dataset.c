/*
 * dataset MODEL OUT_DIR METHOD|- OPTIONS_JSON|- RUN_OPTIONS_JSON|- PICTURE_JSON|- CANCEL(0|1) INPUT...
 *
 * Runs elu_explain_dataset (METHOD "-": a prediction run) and prints its status and summary
 * JSON, or "status N: MESSAGE". CANCEL 1 sets the cancel flag before the run starts.
 * "misuse MODEL OUT_DIR" instead checks that bad arguments are status codes with messages.
 */
#include <elucidate.h>

#include <stdio.h>
#include <string.h>

static const char *arg(const char *text) { return strcmp(text, "-") == 0 ? NULL : text; }

static int misuse(elu_model *model, const char *out_dir) {
    int failed = 0, checks = 0;
    const char *inputs[] = {"/nonexistent/elucidate/input.png"};
    char *error = NULL;
#define EXPECT_ERROR(call, what)                                                               \
    do {                                                                                       \
        checks++;                                                                              \
        int status = (call);                                                                   \
        if (status == ELU_OK || error == NULL) {                                               \
            printf("FAILED: %s gave status %d\n", what, status);                               \
            failed++;                                                                          \
        }                                                                                      \
        elu_string_free(error);                                                                \
        error = NULL;                                                                          \
    } while (0)
    EXPECT_ERROR(elu_explain_dataset(NULL, "saliency", NULL, inputs, 1, NULL, out_dir, NULL, NULL, NULL, NULL, &error),
                 "NULL model");
    EXPECT_ERROR(elu_explain_dataset(model, "saliency", NULL, inputs, 1, NULL, NULL, NULL, NULL, NULL, NULL, &error),
                 "NULL out_dir");
    EXPECT_ERROR(elu_explain_dataset(model, "saliency", NULL, NULL, 3, NULL, out_dir, NULL, NULL, NULL, NULL, &error),
                 "NULL inputs with a count");
    EXPECT_ERROR(elu_explain_dataset(model, "saliency", NULL, inputs, -1, NULL, out_dir, NULL, NULL, NULL, NULL, &error),
                 "negative count");
    EXPECT_ERROR(elu_explain_dataset(model, "saliency", NULL, inputs, 0, NULL, out_dir, NULL, NULL, NULL, NULL, &error),
                 "no inputs");
    EXPECT_ERROR(elu_explain_dataset(model, "no-such-method", NULL, inputs, 1, NULL, out_dir, NULL, NULL, NULL, NULL,
                                     &error), "unknown method");
    EXPECT_ERROR(elu_explain_dataset(model, "saliency", NULL, inputs, 1, NULL, out_dir, "{\"shards\": \"0/2\"}", NULL,
                                     NULL, NULL, &error), "unknown run option");
    EXPECT_ERROR(elu_explain_dataset(model, "saliency", NULL, inputs, 1, NULL, out_dir, "{\"shard\": \"2/2\"}", NULL,
                                     NULL, NULL, &error), "shard out of range");
    EXPECT_ERROR(elu_explain_dataset(model, "saliency", NULL, inputs, 1, NULL, out_dir, "{\"images-per-batch\": 0}",
                                     NULL, NULL, NULL, &error), "zero images per batch");
    EXPECT_ERROR(elu_explain_dataset(model, "saliency", NULL, inputs, 1, NULL, out_dir, "not json", NULL, NULL, NULL,
                                     &error), "malformed run options");
    EXPECT_ERROR(elu_explain_dataset(model, NULL, "{\"steps\": 3}", inputs, 1, NULL, out_dir, NULL, NULL, NULL, NULL,
                                     &error), "method options without a method");
    printf("misuse: %d checks, %d failed\n", checks, failed);
    return failed == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc >= 4 && strcmp(argv[1], "misuse") == 0) {
        char *error = NULL;
        elu_model *model = elu_model_load(argv[2], NULL, &error);
        if (!model) { printf("load: %s\n", error); return 1; }
        int result = misuse(model, argv[3]);
        elu_model_free(model);
        return result;
    }
    if (argc < 9) {
        fprintf(stderr, "usage: dataset MODEL OUT_DIR METHOD|- OPTIONS|- RUN_OPTIONS|- PICTURES|- CANCEL INPUT...\n");
        return 2;
    }
    char *error = NULL;
    elu_model *model = elu_model_load(argv[1], NULL, &error);
    if (!model) { printf("load: %s\n", error); elu_string_free(error); return 1; }
    int cancel = strcmp(argv[7], "1") == 0;
    char *summary = NULL;
    int status = elu_explain_dataset(model, arg(argv[3]), arg(argv[4]), (const char *const *)(argv + 8), argc - 8, NULL,
                                     argv[2], arg(argv[5]), arg(argv[6]), &cancel, &summary, &error);
    if (status == ELU_OK) {
        printf("%s\n", summary);
    } else {
        printf("status %d: %s\n", status, error ? error : "(no message)");
    }
    elu_string_free(summary);
    elu_string_free(error);
    elu_model_free(model);
    return status == ELU_OK ? 0 : 1;
}
