// CKernels — the float32 compute kernels under Elucidate's Swift engine.
//
// Conventions (every kernel):
//   * float32, NCHW, C order. Shapes are passed explicitly in a params struct.
//   * Stateless: a kernel reads its inputs, writes its outputs and the caller-owned
//     scratch buffer it is given, and returns an `ek_status`. It never allocates
//     long-lived memory, prints, or exits.
//   * Work splitting follows ggml: kernels whose params carry `ith`/`nth` process the
//     ith of nth equal shares of their outer loop, so the caller can run nth calls in
//     parallel (0 <= ith < nth). nth = 1, ith = 0 does all of the work.
//   * Each kernel dispatches once, at run time, to an AVX-512, AVX2+FMA or portable
//     scalar path. `ek_set_isa` forces a level so tests can compare every path with
//     the scalar reference.
//   * Names are subject_verb_dtype; backward kernels (later) end in _back.
#ifndef ELUCIDATE_CKERNELS_H
#define ELUCIDATE_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// MARK: - Status

typedef enum ek_status {
    EK_OK = 0,
    EK_ERR_INVALID_ARGUMENT = 1,   // a shape, stride or pointer is not acceptable
    EK_ERR_SCRATCH_TOO_SMALL = 2,  // the caller-owned work buffer is smaller than required
    EK_ERR_BLAS_UNAVAILABLE = 3,   // OpenBLAS could not be loaded
} ek_status;

/// A short, static, human-readable description of a status.
const char *ek_status_string(ek_status status);

// The path of the executable or shared library this code was loaded from (dladdr), or NULL.
// Static storage of the dynamic loader: do not free.
const char *ek_loaded_image_path(void);

// MARK: - CPU dispatch

typedef enum ek_isa {
    EK_ISA_SCALAR = 0,
    EK_ISA_AVX2 = 1,     // AVX2 + FMA
    EK_ISA_AVX512 = 2,   // AVX-512 F + BW + DQ + VL
} ek_isa;

/// Where the level in force came from.
typedef enum ek_isa_origin {
    EK_ISA_ORIGIN_CPU = 0,          // the best level the CPU supports
    EK_ISA_ORIGIN_ENVIRONMENT = 1,  // ELUCIDATE_ISA, read once at the first query
    EK_ISA_ORIGIN_PROGRAM = 2,      // ek_set_isa
} ek_isa_origin;

/// What became of ELUCIDATE_ISA.
typedef enum ek_isa_request {
    EK_ISA_REQUEST_NONE = 0,       // unset or empty
    EK_ISA_REQUEST_APPLIED = 1,    // names a level this CPU has: the process starts at it
    EK_ISA_REQUEST_AUTO = 2,       // "auto" or "native": the CPU's level
    EK_ISA_REQUEST_UNKNOWN = 3,    // not a level name: ignored (the CLI refuses it)
    EK_ISA_REQUEST_ABOVE_CPU = 4,  // a level this CPU lacks: ignored, the CPU's level is used
} ek_isa_request;

typedef struct ek_isa_info {
    ek_isa detected;                     // the CPU's best level
    ek_isa active;                       // the level kernels use now
    ek_isa_origin origin;                // why `active` is in force
    const char *environment;             // ELUCIDATE_ISA as read (NULL when unset); static storage
    ek_isa_request environment_request;  // what became of it
} ek_isa_info;

/// The best instruction set this CPU (and OS) supports.
ek_isa ek_isa_detected(void);
/// The level kernels currently use: the one set by ek_set_isa, else ELUCIDATE_ISA's when it
/// names a level the CPU has (`scalar`, `avx2`, `avx512`, case-insensitive), else the CPU's.
ek_isa ek_isa_active(void);
/// Forces a level (clamped to what the CPU supports); returns the level now active.
/// Thread-safe (an atomic store), but a kernel already running finishes at the level it
/// started with, so set it between computations.
ek_isa ek_set_isa(ek_isa isa);
/// Drops a level set by ek_set_isa: back to ELUCIDATE_ISA's or the CPU's. Returns it.
ek_isa ek_isa_reset(void);
/// The level a process starts with (ELUCIDATE_ISA's, or the CPU's), whatever ek_set_isa did.
ek_isa ek_isa_starting(void);
/// The level in force, the CPU's, and why.
ek_isa_info ek_isa_get_info(void);
/// Parses a level name (`scalar`, `avx2`, `avx2+fma`, `avx512`, case-insensitive) into
/// `*level`; returns 1 on success, 0 for anything else (`*level` untouched). `level` may be NULL.
int ek_isa_parse(const char *text, ek_isa *level);
const char *ek_isa_name(ek_isa isa);

// MARK: - BLAS (OpenBLAS loaded at run time)
//
// OpenBLAS reads OPENBLAS_CORETYPE once, in its library constructor. Debian's 0.3.21
// misdetects recent Intel server CPUs and falls back to slow generic kernels, and
// setting the variable inside `main` is too late when OpenBLAS is linked normally.
// So CKernels does not link OpenBLAS: the first BLAS call (or ek_blas_load) sets
// OPENBLAS_CORETYPE from our own CPUID query if the user has not set it, then dlopens
// libopenblas and resolves the few symbols used.

typedef struct ek_blas_info {
    int loaded;                // 1 when OpenBLAS is usable
    const char *library;       // the soname that was opened
    const char *core_name;     // openblas_get_corename(), e.g. "SkylakeX"
    const char *coretype_env;  // OPENBLAS_CORETYPE as seen at load time (NULL if unset)
    int coretype_set_by_us;    // 1 when Elucidate chose OPENBLAS_CORETYPE
    const char *error;         // dlerror() text when loading failed, else NULL
} ek_blas_info;

/// Loads OpenBLAS once (thread-safe); returns EK_OK or EK_ERR_BLAS_UNAVAILABLE.
ek_status ek_blas_load(void);
/// What the loader did. Loads first if needed.
ek_blas_info ek_blas_get_info(void);
/// Thread count for OpenBLAS (loads it first if needed). OpenBLAS's count is process-wide:
/// loading sets it to 1 once (Elucidate splits products over its own threads) and the
/// Swift engine never changes it, so that products are not reconfigured under concurrent
/// callers. A C program may change it before any work; not while products run.
void ek_blas_set_num_threads(int n);
/// OpenBLAS's thread count now (loads it first if needed); -1 when it cannot say.
int ek_blas_get_num_threads(void);

/// C[M,N] = alpha * op(A) * op(B) + beta * C, row-major, through cblas_sgemm.
/// op(A) is M×K (A is K×M when trans_a), op(B) is K×N (B is N×K when trans_b).
ek_status ek_gemm_f32(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                      const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                      float *c, int64_t ldc);

// MARK: - Convolution (groups = 1)

typedef enum ek_activation {
    EK_ACT_NONE = 0,
    EK_ACT_RELU = 1,
} ek_activation;

typedef struct ek_conv2d_params {
    int64_t n, c, h, w;          // input  (N, C, H, W)
    int64_t k;                   // output channels
    int64_t r, s;                // kernel height, width
    int64_t stride_h, stride_w;
    int64_t pad_h, pad_w;
    int64_t dilation_h, dilation_w;
    ek_activation activation;    // applied after the bias
    int32_t ith, nth;            // work share (im2col / epilogue kernels only)
    int32_t winograd_tile;       // Winograd output tile m (4, 5 or 6); 0 chooses by output size
} ek_conv2d_params;

/// Output height and width for the params; returns EK_ERR_INVALID_ARGUMENT when the
/// output would be empty or any dimension is non-positive.
ek_status ek_conv2d_output_size(const ek_conv2d_params *p, int64_t *out_h, int64_t *out_w);

/// Floats of scratch `ek_conv2d_f32` needs for one image (0 for 1×1, stride 1, pad 0).
int64_t ek_conv2d_scratch_size(const ek_conv2d_params *p);

/// y[N,K,OH,OW] = act(conv(x[N,C,H,W], weight[K,C,R,S]) + bias[K]); bias may be NULL.
/// im2col into `scratch` + one sgemm per image; 1×1 / stride 1 / pad 0 goes straight to
/// sgemm. Ignores ith/nth (GEMM threading is OpenBLAS's).
ek_status ek_conv2d_f32(const ek_conv2d_params *p, const float *x, const float *weight,
                        const float *bias, float *y, float *scratch, int64_t scratch_floats);

/// Column matrix for one image: col[(C*R*S), (OH*OW)] from x[C,H,W] (the image at
/// `x`, p->n ignored). Rows of the column matrix are split into nth shares.
ek_status ek_im2col_f32(const ek_conv2d_params *p, const float *x, float *col);

/// y[K, HW] = act(y + bias[K]) in place, for one image; bias may be NULL. Channels are
/// split into nth shares.
ek_status ek_bias_act_f32(int64_t k, int64_t hw, const float *bias, ek_activation act,
                          float *y, int32_t ith, int32_t nth);

// MARK: - Winograd convolution F(4×4, 3×3)
//
// For 3×3, stride-1, undilated convolutions: E = (m + 2)² products U_e[K, C] · V_e[C, T]
// (e < E) replace the 9·C-deep im2col product, m = 4, 5 or 6 (F(m×m, 3×3)): 2.25–5× fewer
// multiply-adds. The caller runs the transforms (split ith/nth), the E products, and the output
// transform. T = N · tiles_h · tiles_w; tile t = (image · tiles_h + ty) · tiles_w + tx covers
// outputs [m·ty, m·ty + m) × [m·tx, m·tx + m). Every function below uses the params' tile size
// (ek_winograd_tile_size), so the weights must be transformed with the same m as the tiles.

/// The output tile m the params use: `winograd_tile` when it is 4, 5 or 6; when it is 0, the m
/// with the cheapest multiplications for the output plane (the padding of cut tiles counted,
/// F(5×5) and F(6×6) products weighted 1.12 and 1.2 for their dearer transforms; ties to the
/// smaller m). It depends on the plane only, not on N, so an image's results do not depend on
/// its batch. 0 when Winograd does not compute this convolution (not 3×3, stride 1,
/// dilation 1, padding at most 2, or another `winograd_tile`).
int ek_winograd_tile_size(const ek_conv2d_params *p);

/// Products per convolution, (m + 2)² for the params' tile size; 0 when Winograd does not apply.
int64_t ek_winograd_elements(const ek_conv2d_params *p);

/// 1 when Winograd computes this convolution (ek_winograd_tile_size is not 0).
int ek_winograd_applies(const ek_conv2d_params *p);

/// Tiles per image along each axis: ceil(OH/m), ceil(OW/m).
ek_status ek_winograd_tiles(const ek_conv2d_params *p, int64_t *tiles_h, int64_t *tiles_w);

/// Transformed weights u[E, K, C] from weight[K, C, 3, 3]. Split over K. F(4×4) in float32;
/// F(5×5) and F(6×6) in double, rounded once (their G holds constants float32 cannot hold).
ek_status ek_winograd_weight_f32(const ek_conv2d_params *p, const float *weight, float *u);

/// The same E matrices each as packed A (ek_gemm_pack_a_f32's layout, M = K rows, depth C):
/// element e starts at u + e·ek_gemm_packed_a_floats(K, C). Split over K.
ek_status ek_winograd_weight_packed_f32(const ek_conv2d_params *p, const float *weight, float *u);

/// The weights of a convolution's input gradient, from the forward's own weight[C, K, 3, 3]
/// (p describes the gradient's convolution: p->c = the forward's K, p->k = its C): each
/// kernel transposed and flipped, read in place, then transformed as ek_winograd_weight_f32
/// (packed == 0) or ek_winograd_weight_packed_f32 (packed != 0) would. Split over p->k.
ek_status ek_winograd_weight_transposed_f32(const ek_conv2d_params *p, const float *weight, float *u, int packed);

/// Transformed input tiles v[E, C, T] from x[N, C, H, W] (zero outside). Split over C.
ek_status ek_winograd_input_f32(const ek_conv2d_params *p, const float *x, float *v);

/// The same tiles as packed B of the E products (ek_gemm_pack_b_f32's layout, K = C rows,
/// N = T columns): element e starts at v + e·ek_gemm_packed_b_floats(C, T). Split over groups
/// of 64 consecutive tiles (ek_winograd_input_groups of them).
ek_status ek_winograd_input_packed_f32(const ek_conv2d_params *p, const float *x, float *v);

/// The groups of 64 tiles ek_winograd_input_packed_f32 splits over threads; 0 for invalid params.
int64_t ek_winograd_input_groups(const ek_conv2d_params *p);

/// Floats of work one share of ek_winograd_fused_f32 needs for blocks of `block_tiles` tiles (a
/// multiple of 64); 0 when the params or the block size are invalid.
int64_t ek_winograd_fused_work_floats(const ek_conv2d_params *p, int64_t block_tiles);

/// The whole convolution y[N, K, OH, OW] = act(conv(x) + bias) from packed transformed weights
/// (ek_winograd_weight_packed_f32), one block of `block_tiles` tiles at a time: its input tiles,
/// E packed products and output transform through `work` (this share's own
/// ek_winograd_fused_work_floats), so the transformed tiles stay in cache. Split over panels of
/// EK_GEMM_NR tiles (each share runs its own tiles in blocks); the same bits as the unfused
/// packed path.
ek_status ek_winograd_fused_f32(const ek_conv2d_params *p, const float *u, const float *x, const float *bias,
                                float *y, float *work, int64_t block_tiles);

/// y[N, K, OH, OW] = act(Aᵀ M A + bias[K]) from the products m[E, K, T]; bias may be NULL.
/// Split over K.
ek_status ek_winograd_output_f32(const ek_conv2d_params *p, const float *m, const float *bias,
                                 float *y);

// MARK: - Packed GEMM (gemm_packed.c)
//
// C = act(A·B + bias) with A packed once (a layer's weights) and B packed per call; see
// gemm_packed.c for the layouts and the summation order every ISA level reproduces.

enum { EK_GEMM_MR = 6, EK_GEMM_NR = 16, EK_GEMM_KC = 256 };

/// 1 when this file was compiled with optimisation. Unoptimised (a debug build), the tile is
/// several times slower than OpenBLAS, which is always optimised: callers then keep OpenBLAS.
int ek_gemm_packed_optimized(void);

/// Floats of packed A for an M×K matrix (rows rounded up to EK_GEMM_MR); 0 for empty shapes.
int64_t ek_gemm_packed_a_floats(int64_t m, int64_t k);
/// Floats of packed B for a K×N matrix (columns rounded up to EK_GEMM_NR); 0 for empty shapes.
int64_t ek_gemm_packed_b_floats(int64_t k, int64_t n);

/// Packs A (element (i, k) at a[i·row_stride + k·k_stride]: row_stride = lda, k_stride = 1 for
/// a row-major A, the reverse for its transpose). Split over row panels.
ek_status ek_gemm_pack_a_f32(int64_t m, int64_t k, const float *a, int64_t row_stride, int64_t k_stride,
                             float *packed, int32_t ith, int32_t nth);

/// Packs B, element (k, col) at b[(col / plane)·image_stride + k·plane + col % plane] (a
/// row-major K×N matrix when N ≤ plane; the columns of a batch of [K, plane] images side by side
/// otherwise). Split over column panels.
ek_status ek_gemm_pack_b_f32(int64_t k, int64_t n, const float *b, int64_t plane, int64_t image_stride,
                             float *packed, int32_t ith, int32_t nth);

typedef struct ek_gemm_packed_params {
    int64_t m, n, k;
    const float *a;                  // packed A
    const float *b;                  // packed B
    float *c;                        // element (row, col) at c[(col/plane)·image_stride + row·plane + col%plane]
    int64_t plane, image_stride;
    const float *bias;               // per row (M), or NULL
    ek_activation activation;        // EK_ACT_NONE or EK_ACT_RELU, after the bias
    int64_t panel_begin, panel_end;  // the column panels (EK_GEMM_NR columns) this call computes
} ek_gemm_packed_params;

/// C = act(A·B + bias) over the column panels [panel_begin, panel_end); C is written, never
/// read first (no clearing needed). Calls on disjoint panel ranges may run concurrently.
ek_status ek_gemm_packed_f32(const ek_gemm_packed_params *p);

// MARK: - Batch norm (inference form)

typedef struct ek_batchnorm_params {
    int64_t n, c, hw;            // x is (N, C, HW); HW = 1 for BatchNorm1d on (N, C)
    float eps;
    ek_activation activation;
    int32_t ith, nth;            // split over the N*C planes
} ek_batchnorm_params;

/// y = act((x - mean) / sqrt(var + eps) * gamma + beta); gamma/beta may be NULL (1/0).
/// y may alias x.
ek_status ek_batchnorm_forward_f32(const ek_batchnorm_params *p, const float *x,
                                   const float *mean, const float *var, const float *gamma,
                                   const float *beta, float *y);

/// Folds an inference batch norm into the preceding convolution:
/// weight[K, CRS] *= scale[K]; bias[K] = beta + (bias - mean) * scale, with
/// scale = gamma / sqrt(var + eps), all in double precision and each result rounded to float
/// once (so each folded value is the correctly rounded float of that double expression).
/// `bias_in` may be NULL (treated as zeros); `bias_out` receives the folded bias (K floats).
ek_status ek_batchnorm_fold_f32(int64_t k, int64_t crs, float eps, float *weight,
                                const float *bias_in, const float *mean, const float *var,
                                const float *gamma, const float *beta, float *bias_out);

// MARK: - Pooling

typedef struct ek_pool2d_params {
    int64_t n, c, h, w;
    int64_t kh, kw;
    int64_t stride_h, stride_w;
    int64_t pad_h, pad_w;
    int64_t dilation_h, dilation_w;  // max pool only (1 for average pool)
    int32_t ceil_mode;
    int32_t count_include_pad;       // average pool only
    int32_t ith, nth;                // split over the N*C planes
} ek_pool2d_params;

/// PyTorch's output size rule (including ceil_mode's "last window must start inside
/// the input or left padding" adjustment).
ek_status ek_pool2d_output_size(const ek_pool2d_params *p, int64_t *out_h, int64_t *out_w);

/// y[N,C,OH,OW]; padding is -inf. `argmax` (may be NULL) receives the flat index
/// (h*W + w) within the input plane of each maximum, for the backward pass.
ek_status ek_maxpool2d_f32(const ek_pool2d_params *p, const float *x, float *y,
                           int32_t *argmax);
// (Added note) A window that covers only padding, possible with dilation or ceil_mode,
// gives -inf and argmax -1 (PyTorch would report an index past the plane there). Pads
// larger than half the kernel are rejected, as in PyTorch.
ek_status ek_avgpool2d_f32(const ek_pool2d_params *p, const float *x, float *y);

typedef struct ek_adaptive_pool2d_params {
    int64_t n, c, h, w;
    int64_t out_h, out_w;
    int32_t ith, nth;                // split over the N*C planes
} ek_adaptive_pool2d_params;

/// PyTorch's adaptive bins: start = floor(i*H/OH), end = ceil((i+1)*H/OH).
ek_status ek_adaptive_avgpool2d_f32(const ek_adaptive_pool2d_params *p, const float *x,
                                    float *y);
ek_status ek_adaptive_maxpool2d_f32(const ek_adaptive_pool2d_params *p, const float *x,
                                    float *y, int32_t *argmax);

// MARK: - Dense

/// y[N, OUT] = x[N, IN] · weight[OUT, IN]ᵀ + bias[OUT]; bias may be NULL.
ek_status ek_linear_f32(int64_t n, int64_t in_features, int64_t out_features, const float *x,
                        const float *weight, const float *bias, float *y);

/// Row-wise softmax of x[rows, cols] into y (may alias), max-subtracted.
ek_status ek_softmax_f32(int64_t rows, int64_t cols, const float *x, float *y);

// MARK: - Element-wise (contiguous, same length; outputs may alias inputs)

/// Elements are split into nth shares.
ek_status ek_relu_f32(int64_t count, const float *x, float *y, int32_t ith, int32_t nth);
/// y = act(a + b): the residual addition, optionally fused with ReLU.
ek_status ek_add_f32(int64_t count, const float *a, const float *b, float *y,
                     ek_activation act, int32_t ith, int32_t nth);
ek_status ek_mul_f32(int64_t count, const float *a, const float *b, float *y, int32_t ith,
                     int32_t nth);

/// Concatenates along channels: y[N, C0+C1+..., HW] from inputs[i] of shape [N, C_i, HW].
ek_status ek_concat_channels_f32(int64_t n, int64_t hw, int32_t count,
                                 const float *const *inputs, const int64_t *channels,
                                 float *y);

// MARK: - Backward kernels (issue: autodiff)
//
// Gradients of the forward kernels above, same shapes and params. Unless stated otherwise
// a backward kernel OVERWRITES its output gradient (it does not accumulate); the Swift graph
// adds contributions itself. Parameter gradients are separate kernels, so frozen models
// never pay for them.

/// Input gradient of a convolution: dx[N,C,H,W] from dy[N,K,OH,OW] and weight[K,C,R,S]:
/// per image dcol[(C*R*S), (OH*OW)] = weightᵀ · dy (one sgemm), then col2im into dx.
/// 1×1 / stride 1 / pad 0 writes the sgemm straight into dx. `scratch` as for the forward
/// (`ek_conv2d_scratch_size`). Ignores ith/nth and does not apply p->activation (the caller
/// applies the activation's backward to dy first), though an undefined activation value is
/// still rejected, as by the forward, so the forward's params can be passed unchanged.
ek_status ek_conv2d_back_input_f32(const ek_conv2d_params *p, const float *dy, const float *weight,
                                   float *dx, float *scratch, int64_t scratch_floats);

/// Scatters a column matrix back to one image: dx[C,H,W] = 0, then each col element is
/// ADDED to the input pixel it was gathered from (the adjoint of ek_im2col_f32; elements
/// that im2col took from the padding are dropped). p->n is ignored. Channels are split into
/// nth shares. Every ISA gives the same bits.
ek_status ek_col2im_f32(const ek_conv2d_params *p, const float *col, float *dx);

/// Parameter gradients of a convolution, ACCUMULATED into dweight[K,C,R,S] and, when not
/// NULL, dbias[K], over the whole batch. `scratch` as for the forward. Ignores ith/nth; does
/// not apply p->activation.
ek_status ek_conv2d_back_weight_f32(const ek_conv2d_params *p, const float *x, const float *dy,
                                    float *dweight, float *dbias, float *scratch,
                                    int64_t scratch_floats);

/// Inference-form batch norm backward: dx = dy · gamma / sqrt(var + eps) (gamma NULL = 1).
/// p->activation is ignored. dx may alias dy. Split over N*C planes.
ek_status ek_batchnorm_back_f32(const ek_batchnorm_params *p, const float *dy, const float *var,
                                const float *gamma, float *dx);

// MARK: - Sums of boxed basis responses

/// One basis response of ek_basis_sum_f32: `values` `[channels, height, width]`, the response
/// over rows [y0, y0 + height) and columns [x0, x0 + width) of the output plane; it is zero
/// elsewhere. A box with no height or width contributes nothing (`values` may be NULL).
typedef struct {
    int64_t y0, height, x0, width;
    const float *values;
} ek_basis_box;

typedef struct {
    int64_t copies, bases;            // rows of `coefficients` and its width
    int64_t channels, height, width;  // the output plane [channels, height, width] of one copy
    const float *coefficients;        // [copies, bases]
    const ek_basis_box *boxes;        // [bases]
    const float *bias;                // [channels], or NULL for none
    ek_activation activation;         // EK_ACT_NONE or EK_ACT_RELU
    int32_t ith, nth;                 // this call's share of the channels
} ek_basis_sum_params;

/// y[c, k, :, :] = act(Σ_b coefficients[c, b] · box_b[k] + bias[k]) for every copy c and this
/// share's channels k, y `[copies, channels, height, width]` (a linear map's output for inputs
/// that are combinations of a basis, from its responses to the basis: Score-CAM's stem). Each
/// element is zero, then one fused multiply-add per covering box with a non-zero coefficient,
/// in basis order, then bias and activation: every ISA gives the same bits, and a copy's
/// output does not depend on the other copies. A box outside the plane gives
/// EK_ERR_INVALID_ARGUMENT before anything is written.
ek_status ek_basis_sum_f32(const ek_basis_sum_params *p, float *y);

/// Training-form batch norm (batch statistics), for completeness: forward writes y and the
/// per-channel batch mean and inverse std (C floats each); backward computes dx (and, when not
/// NULL, ACCUMULATES dgamma, dbeta). Biased variance as PyTorch uses for normalisation
/// (statistics accumulated in double, two passes). gamma/beta may be NULL (1/0). The forward
/// applies p->activation like ek_batchnorm_forward_f32; the backward does not (the caller
/// applies ReLU's backward to dy first). y may alias x; dx may alias dy. ith/nth ignored.
ek_status ek_batchnorm_train_forward_f32(const ek_batchnorm_params *p, const float *x,
                                         const float *gamma, const float *beta, float *y,
                                         float *mean, float *invstd);
ek_status ek_batchnorm_train_back_f32(const ek_batchnorm_params *p, const float *x,
                                      const float *dy, const float *mean, const float *invstd,
                                      const float *gamma, float *dx, float *dgamma,
                                      float *dbeta);

/// Max pool backward through the argmax of the forward: dx = 0, then dy routed to each
/// window's maximum (ADDED where windows overlap; argmax -1 routes nowhere). An index outside
/// [-1, H*W) gives EK_ERR_INVALID_ARGUMENT before anything is written. Pool backward kernels
/// split the N*C planes into nth shares, like their forwards.
ek_status ek_maxpool2d_back_f32(const ek_pool2d_params *p, const float *dy, const int32_t *argmax,
                                float *dx);
/// Average pool backward: dx = 0, then each dy / divisor ADDED to every real element of its
/// window, with the forward's divisor (count_include_pad, ceil_mode clipping).
ek_status ek_avgpool2d_back_f32(const ek_pool2d_params *p, const float *dy, float *dx);
ek_status ek_adaptive_avgpool2d_back_f32(const ek_adaptive_pool2d_params *p, const float *dy,
                                         float *dx);
ek_status ek_adaptive_maxpool2d_back_f32(const ek_adaptive_pool2d_params *p, const float *dy,
                                         const int32_t *argmax, float *dx);

/// ReLU backward from the forward OUTPUT y (or input x: same mask): dx = dy where y > 0, else +0
/// (also where y is NaN). dx may alias dy. Elements split into nth shares (all three rules).
/// Every ISA gives the same bits.
ek_status ek_relu_back_f32(int64_t count, const float *y, const float *dy, float *dx, int32_t ith,
                           int32_t nth);
/// Guided backpropagation's ReLU rule: dx = max(dy, 0) where y > 0, else +0 (a NaN dy stays NaN).
ek_status ek_relu_back_guided_f32(int64_t count, const float *y, const float *dy, float *dx,
                                  int32_t ith, int32_t nth);
/// DeepLIFT Rescale rule for ReLU: dx = (dy · (y − y_ref)) / (x − x_ref) where
/// |x − x_ref| > eps, else the gradient (x > 0 ? dy : +0), as Captum does (eps = 1e-10).
/// eps must be >= 0. dx may alias dy.
ek_status ek_relu_back_rescale_f32(int64_t count, const float *x, const float *x_ref,
                                   const float *y, const float *y_ref, const float *dy, float *dx,
                                   float eps, int32_t ith, int32_t nth);

/// dx[N, IN] = dy[N, OUT] · weight[OUT, IN].
ek_status ek_linear_back_input_f32(int64_t n, int64_t in_features, int64_t out_features,
                                   const float *dy, const float *weight, float *dx);
/// ACCUMULATES dweight[OUT, IN] += dyᵀ · x and, when not NULL, dbias[OUT] += Σ_n dy.
ek_status ek_linear_back_weight_f32(int64_t n, int64_t in_features, int64_t out_features,
                                    const float *x, const float *dy, float *dweight,
                                    float *dbias);

/// Softmax backward from the forward output y: dx = y · (dy − Σ_j dy_j·y_j), row-wise.
/// dx may alias dy or y.
ek_status ek_softmax_back_f32(int64_t rows, int64_t cols, const float *y, const float *dy,
                              float *dx);

/// Splits dy[N, ΣC_i, HW] back into outputs[i] of shape [N, C_i, HW] (concat's backward).
ek_status ek_concat_channels_back_f32(int64_t n, int64_t hw, int32_t count, const float *dy,
                                      const int64_t *channels, float *const *outputs);

#ifdef __cplusplus
}
#endif

#endif  // ELUCIDATE_CKERNELS_H
