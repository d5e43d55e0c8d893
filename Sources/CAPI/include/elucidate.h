/*
 * elucidate.h — the C API of Elucidate: explain why an image classifier (a ResNet) made its
 * prediction, natively on the CPU. Link with libelucidate.so:
 *
 *     cc prog.c $(pkg-config --cflags --libs elucidate)
 *
 * TENSORS. Every tensor is float32, dense, C order (row-major), of shape [N, C, H, W] given
 * as `int64_t shape[4]`: N images of C channels, H rows and W columns, already preprocessed
 * (resized and normalised) as the model expects; elu_image_tensor makes one from an image
 * file. Every dimension must be at least 1 and the element count must fit in memory.
 *
 * STATUS AND ERRORS. Functions returning `int` return ELU_OK (0) on success and one of the
 * ELU_ERROR_* codes below on failure. Every function taking `char **error` sets `*error`
 * (when `error` is not NULL) to NULL on success and, on failure, to a newly allocated
 * one-line UTF-8 message, the one the command line prints for the same problem without
 * its "elucidate: " prefix (e.g. "model.safetensors: tensor 'fc.weight' ends past the end
 * of the file"); control characters from file names or labels are escaped as the command
 * line escapes them. (Usage mistakes the command line reports with a "(see 'elucidate
 * help')" hint come without it; problems only C can have, such as a NULL pointer, have
 * messages of their own, e.g. "input is NULL".) Bad input — NULL pointers, shapes with a dimension < 1 or too large,
 * the wrong channel count, malformed JSON, unknown options or methods, NaN or infinity in
 * an input — is reported this way and never ends the host process.
 *
 * OWNERSHIP. The library never frees what the caller passed in, and never keeps a pointer
 * to it after returning. What it returns, the caller owns and frees with the matching
 * function: every `char *` (messages, JSON) with elu_string_free, every `float *` from
 * elu_image_tensor or elu_explain_alloc with elu_tensor_free, every elu_model with elu_model_free. The string of
 * elu_version is static: never free it. Buffers the caller passes for results (logits,
 * attributions) are caller-owned and must have room for the documented element count.
 *
 * THREAD SAFETY. Every function may be called from any number of threads at once, also
 * with one elu_model shared between them: a model is immutable once loaded. The only rule
 * is the usual one: do not free a model while another thread is still using it, and do not
 * let two calls write the same output buffer or file at once.
 *
 * OPTIONS. `options_json` is NULL, "" or a JSON object whose keys are the command line's
 * long option names without the dashes, e.g. {"steps": 200, "noise-tunnel":
 * "smoothgrad-sq", "nt-samples": 10, "seed": 1} for integrated-gradients or {"window":
 * "3,15,15", "stride": "3,8,8"} for occlusion. Values are numbers, booleans (flags) or
 * strings (any option value written as on the command line). An unknown key is an error.
 */
#ifndef ELUCIDATE_H
#define ELUCIDATE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header; elu_version() gives the loaded library's. */
#define ELU_VERSION "0.1.0"

/* Status codes. The errors follow the library's ElucidateError.Kind. */
#define ELU_OK                          0
#define ELU_ERROR_FILE_NOT_FOUND        1  /* fileNotFound: a file (model, image, labels) does not exist */
#define ELU_ERROR_UNREADABLE            2  /* unreadable: a file exists but cannot be read or written */
#define ELU_ERROR_INVALID_FORMAT        3  /* invalidFormat: a file's contents are malformed */
#define ELU_ERROR_UNSUPPORTED           4  /* unsupported: well-formed but not supported (a layout, a dtype) */
#define ELU_ERROR_INVALID_ARGUMENT      5  /* invalidArgument: bad arguments, options, shapes or values */
#define ELU_ERROR_UNKNOWN_ARCHITECTURE  6  /* unknownArchitecture: the weights match no known ResNet */
#define ELU_ERROR_INPUT_TOO_SMALL       7  /* inputTooSmall: the image is too small for the network */
#define ELU_ERROR_INTERNAL              8  /* internalFailure, or memory could not be allocated */

/* A loaded classifier (network, labels, preprocessing preset). Opaque; immutable; shareable
 * between threads. */
typedef struct elu_model elu_model;

/* The library's version, e.g. "0.1.0". Static storage: do not free. */
const char *elu_version(void);

/* Frees a string the library returned (an error message, a JSON report). NULL is ignored. */
void elu_string_free(char *s);

/* Returns to the system the large buffers (a megabyte and more) the library keeps for reuse
 * between the passes of a computation, and the number of bytes freed. Kept buffers never
 * exceed the most the process had in use at once plus at most 256 MiB; a host that has finished
 * explaining and wants that memory back calls this. Safe from any thread at any time. */
int64_t elu_release_cached_memory(void);

/* Loads a model from a .safetensors or PyTorch .pth file, or a built-in model by name
 * ("fashion-mnist-resnet"; a built-in name is used only when no such file exists). Options:
 * "arch" (check the weights against resnet18…resnet152) and "labels" (a labels file, one
 * per line). Returns the model, to be freed with elu_model_free, or NULL with *error set. */
elu_model *elu_model_load(const char *path_or_builtin_name, const char *options_json, char **error);

/* Frees a model. NULL is ignored. No call may be using the model any more. */
void elu_model_free(elu_model *model);

/* The number of classes of the model (the length of a row of logits), or -1 for NULL. */
int64_t elu_model_classes(const elu_model *model);

/* Decodes a JPEG or PNG image and preprocesses it with the model's preset (the one its
 * weights file records, else torchvision's), as the command line does. On success sets
 * *tensor to a new [1, C, H, W] tensor (free it with elu_tensor_free) and shape[0..3] to its
 * shape; on failure *tensor is NULL. */
int elu_image_tensor(const elu_model *model, const char *image_path, float **tensor, int64_t shape[4], char **error);

/* Frees a tensor returned by elu_image_tensor or elu_explain_alloc. NULL is ignored. */
void elu_tensor_free(float *tensor);

/* Runs the model on `input` ([N, C, H, W]) and writes the N × elu_model_classes() logits,
 * row by row, to the caller's buffer `logits`. */
int elu_predict(const elu_model *model, const float *input, const int64_t shape[4], float *logits, char **error);

/* The most dimensions an attribution shape has (elu_attribution_shape, elu_explain_into,
 * elu_explain_alloc): [N, C, H, W], or fewer for a layer without positions ([N, K] for "fc"). */
#define ELU_MAX_RANK 4

/* The shape of the attributions `method` gives for inputs of shape `input_shape` ([N, C, H, W]),
 * without running it, so that the caller can allocate their buffer: the input's shape for the
 * input methods, "guided-grad-cam", the "neuron-…" methods and "lrp"; [N, 1, h, w] for
 * "grad-cam" (with {"upsample": …}: [N, 1, H, W]) and pytorch-grad-cam's CAMs
 * ("grad-cam-plus-plus", "xgrad-cam", "hires-cam", "layer-cam", "eigen-cam", "score-cam",
 * "ablation-cam"); the layer's output shape (its input's with {"layer-input": true}) with N rows
 * for "layer-…" and "internal-influence", e.g. [N, 256, 14, 14] for {"layer": "layer3"} of a
 * ResNet at 224×224. Writes the shape to attribution_shape[0 .. *rank-1] and 1 to the entries
 * after it (so the product of all ELU_MAX_RANK entries is the element count), and the number of
 * dimensions to *rank. The options are checked as elu_explain checks them (files they name are
 * not read); an unknown layer, or a CAM on a layer without positions, is ELU_ERROR_INVALID_ARGUMENT.
 * A layer method costs one forward pass of one zero row. */
int elu_attribution_shape(const elu_model *model, const char *method, const char *options_json,
                          const int64_t input_shape[4], int64_t attribution_shape[ELU_MAX_RANK], int *rank,
                          char **error);

/* Explains the model's output for `input` ([N, C, H, W]) with attribution method `method`,
 * as `elucidate explain METHOD` does: "saliency", "integrated-gradients", "occlusion", "grad-cam",
 * "layer-integrated-gradients", "score-cam", "lrp", … (the command line's method names), with
 * that command's options in `options_json` ({"layer": "layer4"}, {"neuron": "12,3,4"},
 * {"layer-input": true}, {"upsample": "bilinear"}, {"batch-size": 8}, …).
 * `targets` holds N class indices to explain, or is NULL for each row's predicted class.
 * The caller's buffer `attributions` holds N·C·H·W floats, the input's count, as it always
 * has; the attributions written there have elu_attribution_shape's shape — the input's for
 * pixel methods, the layer's for layer methods (fewer values for grad-cam and the CAMs). A
 * layer method whose attributions have more values than the input (e.g. "layer-activation" of
 * "layer1" at 224×224) is refused with ELU_ERROR_INVALID_ARGUMENT before any work: use
 * elu_explain_into or elu_explain_alloc, which also return the shape. When `report_json` is not
 * NULL, sets *report_json to a new string holding the JSON report `elucidate explain --json`
 * prints (free it with elu_string_free; NULL on failure). */
int elu_explain(const elu_model *model, const char *method, const char *options_json,
                const float *input, const int64_t shape[4], const int64_t *targets,
                float *attributions, char **report_json, char **error);

/* elu_explain for every method, into the caller's buffer `attributions` of `capacity` floats:
 * on success writes the attributions there, their shape to attribution_shape and *rank (as
 * elu_attribution_shape writes them) and, when asked, *report_json. When the attributions need
 * more than `capacity` values, nothing is computed or written to `attributions`, the shape they
 * need is written to attribution_shape and *rank, and ELU_ERROR_INVALID_ARGUMENT is returned
 * (so capacity 0 asks for the shape). A negative capacity, or NULL `attributions`,
 * `attribution_shape` or `rank`, is ELU_ERROR_INVALID_ARGUMENT. */
int elu_explain_into(const elu_model *model, const char *method, const char *options_json,
                     const float *input, const int64_t shape[4], const int64_t *targets,
                     float *attributions, int64_t capacity, int64_t attribution_shape[ELU_MAX_RANK], int *rank,
                     char **report_json, char **error);

/* elu_explain for every method, into a buffer the library allocates: on success sets
 * *attributions to a new tensor (free it with elu_tensor_free) of the shape written to
 * attribution_shape and *rank (as elu_attribution_shape writes them) and, when asked,
 * *report_json; on failure *attributions (and *report_json) are NULL. */
int elu_explain_alloc(const elu_model *model, const char *method, const char *options_json,
                      const float *input, const int64_t shape[4], const int64_t *targets,
                      float **attributions, int64_t attribution_shape[ELU_MAX_RANK], int *rank,
                      char **report_json, char **error);

/* Draws the attributions of the first row of `attributions` (shape `shape`, the shape of
 * `input`) over that row's image — the input with the model's preset normalisation undone —
 * and writes the picture as a PNG to `out_png` (replaced atomically), as `elucidate explain
 * --visualize` does. `options_json` takes the command line's picture options ("panels",
 * "outlier-perc", "cmap", …, "index" for another row, and "preset" when the input was not
 * made with the model's). Channels are summed, as Captum's visualize_image_attr sums them. */
int elu_visualize(const float *attributions, const int64_t shape[4], const float *input,
                  const elu_model *model, const char *options_json, const char *out_png, char **error);

/* elu_visualize for attributions of their own shape `attribution_shape` ([N, C', h, w], the N of
 * `input_shape` [N, C, H, W]): the input's shape, or a layer's map from elu_explain_into /
 * elu_explain_alloc (any C'; a 2-D shape [N, K] cannot be drawn: pass it as [N, K, 1, 1] only if
 * a single colour is meant). A map of another resolution than the input is summed over its
 * channels at its own resolution and that sum bilinearly upsampled to the image, as `elucidate
 * explain --visualize` draws every layer method; a C'>1 map thus draws exactly as its channel
 * sum [N, 1, h, w] does. Shapes with a dimension < 1, different N, NaN or infinite values are
 * ELU_ERROR_INVALID_ARGUMENT; nothing is written on failure. */
int elu_visualize_map(const float *attributions, const int64_t attribution_shape[4],
                      const float *input, const int64_t input_shape[4],
                      const elu_model *model, const char *options_json, const char *out_png, char **error);

/* Explains a whole data set into a folder, as `elucidate explain METHOD … --out-dir OUT_DIR`
 * does, or, with `method` NULL (and `options_json` NULL), predicts it as `elucidate predict
 * --out-dir`. The images: the `count` paths of `inputs` (image files, or folders walked
 * recursively, images recognised by content) and, when not NULL, those listed in the file
 * `manifest` (one path per line, relative to the manifest's folder; an optional tab and a
 * target class index or label). Each input's attributions go to OUT_DIR/<path relative to its
 * folder, extension .npy> ([1, C, H, W] float32, or the layer's shape), written atomically, and
 * one JSON record per input to OUT_DIR/index.jsonl (index-I-of-N.jsonl for a shard): input,
 * output, target, predicted, probability, seconds, and "error" for an input that could not be
 * read or explained — the run goes on past it.
 *   options_json:         the method's options, as for elu_explain.
 *   run_options_json:     "shard" ("I/N": this run's share of the sorted inputs), "resume"
 *                         (skip inputs already done by an earlier run into OUT_DIR),
 *                         "images-per-batch", "preset", "exif"; NULL for the defaults.
 *   picture_options_json: when not NULL, also draws each input's picture (….png) with these
 *                         picture options, as elu_visualize takes them ("{}" for the defaults).
 *   cancel:               when not NULL, read after each input: once the caller sets it to a
 *                         non-zero value (from another thread, or a signal handler with a
 *                         sig_atomic_t-sized store), the run stops after the batch in hand; the
 *                         files and index stay consistent and a later run with "resume"
 *                         completes the set.
 * When `summary_json` is not NULL, *summary_json is set to a new string (free with
 * elu_string_free): {"done", "failed", "skipped", "seconds", "imagesPerSecond", "index",
 * "cancelled", "summary"}. Returns ELU_OK when the run went through, even if some inputs failed
 * (see "failed" and their index records); an error for what stops every input — bad options,
 * no image found, an output folder that cannot be written. Inputs, models and the manifest are
 * never written over. Two runs must not write into the same OUT_DIR at once. */
int elu_explain_dataset(const elu_model *model, const char *method, const char *options_json,
                        const char *const *inputs, int64_t count, const char *manifest, const char *out_dir,
                        const char *run_options_json, const char *picture_options_json,
                        const int *cancel, char **summary_json, char **error);

/* Evaluates explanations of `input` ([N, C, H, W]) as `elucidate evaluate METRIC --json` does,
 * and sets *report_json to a new string holding that command's JSON report (free it with
 * elu_string_free; NULL on failure): every input's score and the scores' "mean",
 * "standardDeviation" and "count". `metric` is one of
 *   "deletion", "insertion"  RISE's curves: per input "curve" (steps + 1 probabilities) and "auc";
 *   "infidelity"             Captum's infidelity: per input "infidelity";
 *   "sensitivity-max"        Captum's sensitivity-max (needs "method"): per input "sensitivity-max";
 *   "sanity"                 Adebayo et al.'s cascading randomisation (needs "method"):
 *                            "layers": [{"layer", "spearman", "spearmanAbs", "ssim", …}];
 *   "compare"                every metric for each of "methods": "methods": [{"method",
 *                            "deletion", "insertion", "infidelity", "sensitivityMax",
 *                            "sanitySpearmanAbs", "spread", "inputs"}].
 * `options_json` takes that command's options by name: the metric's ("steps", "baseline",
 * "perturbations", "noise-stdev", "samples", "seed", "normalize", "radius", "target",
 * "batch-size"), "method" (the explain method that makes the maps) with "method-options" (its
 * options as a JSON object in a string, e.g. "{\"steps\": 32}"), "methods" for compare
 * ("saliency,integrated-gradients" or an array) and "images-per-batch" (rows evaluated
 * together, default 16; scores do not depend on it). The maps: `attributions` of shape
 * `attribution_shape` ([N, C', H', W'] with the input's N: the input's shape for infidelity, any
 * channel count for deletion and insertion), or NULL to compute them with "method" (then
 * `attribution_shape` is ignored); sensitivity-max, sanity and compare always compute them and
 * refuse given maps. A seed not given is drawn at random and reported in the JSON. Unknown
 * metrics or options, both or neither of maps and method, NULL pointers and bad shapes are
 * ELU_ERROR_INVALID_ARGUMENT, reported before any model work; files named by the options (a
 * baseline, perturbations) are read but never written. */
int elu_evaluate(const elu_model *model, const char *metric, const char *options_json,
                 const float *input, const int64_t shape[4],
                 const float *attributions, const int64_t attribution_shape[4],
                 char **report_json, char **error);

#ifdef __cplusplus
}
#endif

#endif /* ELUCIDATE_H */
