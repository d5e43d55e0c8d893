// Packed GEMM for the convolutions: C = act(A·B + bias), with A (the layer's weights) packed
// once per layer and B (im2col columns, Winograd tiles, output gradients) packed per call.
//
// Why not OpenBLAS here: a convolution's products are many and thin (36 Winograd products of
// 64–512 rows per layer; a stride-2 layer's product per image has 49–784 columns), and
// OpenBLAS repacks the same weights on every call, clears C before a beta = 0 product and
// splits poorly below a few hundred columns. Packing the weights once, having the Winograd
// input transform write B already packed and storing C straight into the layer's output
// (bias and ReLU in the store) removes those passes.
//
// Layouts (MR = EK_GEMM_MR rows, NR = EK_GEMM_NR columns):
//   packed A: panel i (rows MR·i … MR·i + MR − 1) is K × MR floats, a[(i·K + k)·MR + r];
//             rows past M are zero.
//   packed B: panel j (columns NR·j …) is K × NR floats, b[(j·K + k)·NR + l]; columns past N
//             are zero.
//   C:        element (row, col) at c[(col / plane)·image_stride + row·plane + col % plane]:
//             a row-major matrix when N ≤ plane (ldc = plane), or an NCHW batch whose images
//             are the runs of `plane` columns (col = image·plane + pixel).
//
// Every element is the sum over k in blocks of EK_GEMM_KC: within a block one fused
// multiply-add chain from zero in k order, then the block's sum is added to the previous
// blocks' (C = first block; C = C + later block), then bias, then ReLU. The scalar reference
// computes exactly that, so every instruction-set level gives the same bits.
#include "internal.h"

#include <math.h>
#include <string.h>

enum { MR = EK_GEMM_MR, NR = EK_GEMM_NR, KC = EK_GEMM_KC };

// Row panels of A kept hot in L2 while all column panels of the share stream past them.
enum { ROW_PANELS_PER_BLOCK = 16 };

int ek_gemm_packed_optimized(void) {
#ifdef __OPTIMIZE__
    return 1;
#else
    return 0;
#endif
}

int64_t ek_gemm_packed_a_floats(int64_t m, int64_t k) {
    if (m < 1 || k < 1) return 0;
    return (m + MR - 1) / MR * MR * k;
}

int64_t ek_gemm_packed_b_floats(int64_t k, int64_t n) {
    if (k < 1 || n < 1) return 0;
    return (n + NR - 1) / NR * NR * k;
}

ek_status ek_gemm_pack_a_f32(int64_t m, int64_t k, const float *a, int64_t row_stride, int64_t k_stride,
                             float *packed, int32_t ith, int32_t nth) {
    if (m < 1 || k < 1 || a == NULL || packed == NULL || !ek__share_ok(ith, nth)) return EK_ERR_INVALID_ARGUMENT;
    const int64_t panels = (m + MR - 1) / MR;
    int64_t begin, end;
    ek__share(panels, ith, nth, &begin, &end);
    for (int64_t i = begin; i < end; i++) {
        float *panel = packed + i * k * MR;
        for (int64_t kk = 0; kk < k; kk++) {
            for (int r = 0; r < MR; r++) {
                const int64_t row = i * MR + r;
                panel[kk * MR + r] = row < m ? a[row * row_stride + kk * k_stride] : 0.0f;
            }
        }
    }
    return EK_OK;
}

ek_status ek_gemm_pack_b_f32(int64_t k, int64_t n, const float *b, int64_t plane, int64_t image_stride,
                             float *packed, int32_t ith, int32_t nth) {
    if (k < 1 || n < 1 || plane < 1 || b == NULL || packed == NULL || !ek__share_ok(ith, nth))
        return EK_ERR_INVALID_ARGUMENT;
    const int64_t panels = (n + NR - 1) / NR;
    int64_t begin, end;
    ek__share(panels, ith, nth, &begin, &end);
    for (int64_t j = begin; j < end; j++) {
        float *panel = packed + j * k * NR;
        const int64_t col0 = j * NR;
        const int64_t image = col0 / plane, pixel = col0 % plane;
        if (col0 + NR <= n && pixel + NR <= plane) {
            // The panel's columns are one run of one image: copy 16 floats per row.
            const float *source = b + image * image_stride + pixel;
            for (int64_t kk = 0; kk < k; kk++) memcpy(panel + kk * NR, source + kk * plane, NR * sizeof(float));
            continue;
        }
        for (int l = 0; l < NR; l++) {
            const int64_t col = col0 + l;
            if (col >= n) {
                for (int64_t kk = 0; kk < k; kk++) panel[kk * NR + l] = 0.0f;
                continue;
            }
            const float *source = b + (col / plane) * image_stride + col % plane;
            for (int64_t kk = 0; kk < k; kk++) panel[kk * NR + l] = source[kk * plane];
        }
    }
    return EK_OK;
}

// MARK: - Storing a tile

// What happens to a tile's block sum on the way to C.
typedef struct store_mode {
    int accumulate;     // add to C (a later k block)
    int finish;         // last k block: add bias, apply ReLU
    int relu;
    const float *bias;  // per row, or NULL
} store_mode;

// The scalar form of one element's store (the vector stores compute the same).
static inline float store_value(float sum, float *target, int64_t row, const store_mode *mode) {
    float value = mode->accumulate ? *target + sum : sum;
    if (mode->finish) {
        if (mode->bias) value = value + mode->bias[row];
        if (mode->relu) value = ek__relu(value);
    }
    return value;
}

// A tile's sums `acc` (MR × NR) into C, element by element: the tile's edge cases (rows past
// M, columns past N, columns that cross an image boundary).
static void store_tile_scalar(const float acc[MR][NR], const ek_gemm_packed_params *p, int64_t row0, int64_t col0,
                              const store_mode *mode) {
    for (int r = 0; r < MR && row0 + r < p->m; r++) {
        const int64_t row = row0 + r;
        for (int l = 0; l < NR && col0 + l < p->n; l++) {
            const int64_t col = col0 + l;
            float *target = p->c + (col / p->plane) * p->image_stride + row * p->plane + col % p->plane;
            *target = store_value(acc[r][l], target, row, mode);
        }
    }
}

// One column panel's place in C, worked out once per panel (two divisions) rather than per
// tile: they cost as much as the stores of a tile on short products.
typedef struct column_panel {
    int64_t col0;    // first column
    int64_t offset;  // C offset of (row 0, col0)
    int run;         // 1 when all NR columns exist and are one run of one image
} column_panel;

static inline column_panel make_column_panel(const ek_gemm_packed_params *p, int64_t j) {
    column_panel panel;
    panel.col0 = j * NR;
    const int64_t image = panel.col0 / p->plane, pixel = panel.col0 % p->plane;
    panel.offset = image * p->image_stride + pixel;
    panel.run = panel.col0 + NR <= p->n && pixel + NR <= p->plane;
    return panel;
}

// MARK: - Scalar reference

static void tile_scalar(const ek_gemm_packed_params *p, int64_t kc, const float *a, const float *b, int64_t row0,
                        const column_panel *panel, const store_mode *mode) {
    float acc[MR][NR];
    for (int r = 0; r < MR; r++)
        for (int l = 0; l < NR; l++) acc[r][l] = 0.0f;
    for (int64_t kk = 0; kk < kc; kk++)
        for (int r = 0; r < MR; r++)
            for (int l = 0; l < NR; l++) acc[r][l] = fmaf(a[kk * MR + r], b[kk * NR + l], acc[r][l]);
    store_tile_scalar(acc, p, row0, panel->col0, mode);
}

// MARK: - AVX2 + FMA (also used at the AVX-512 level: same bits, and the 6 × 16 tile keeps
// the two FMA pipes of the CPUs measured busy)

EK_TARGET_AVX2 static inline __m256 store_vector_avx2(__m256 sum, const float *target, __m256 bias,
                                                      const store_mode *mode) {
    __m256 value = mode->accumulate ? _mm256_add_ps(_mm256_loadu_ps(target), sum) : sum;
    if (mode->finish) {
        if (mode->bias) value = _mm256_add_ps(value, bias);
        if (mode->relu) value = _mm256_max_ps(_mm256_setzero_ps(), value);
    }
    return value;
}

#define EK_GEMM_ROW_AVX2(r)                                                    \
    do {                                                                       \
        const __m256 ar = _mm256_broadcast_ss(a + kk * MR + (r));              \
        c##r##0 = _mm256_fmadd_ps(ar, b0, c##r##0);                            \
        c##r##1 = _mm256_fmadd_ps(ar, b1, c##r##1);                            \
    } while (0)

#define EK_GEMM_STORE_AVX2(r)                                                                           \
    do {                                                                                                \
        float *target = base + (r) * p->plane;                                                          \
        const __m256 bias = mode->bias ? _mm256_set1_ps(mode->bias[row0 + (r)]) : _mm256_setzero_ps(); \
        _mm256_storeu_ps(target, store_vector_avx2(c##r##0, target, bias, mode));                       \
        _mm256_storeu_ps(target + 8, store_vector_avx2(c##r##1, target + 8, bias, mode));               \
    } while (0)

#define EK_GEMM_SPILL_AVX2(r)                    \
    do {                                         \
        _mm256_storeu_ps(acc[r], c##r##0);       \
        _mm256_storeu_ps(acc[r] + 8, c##r##1);   \
    } while (0)

EK_TARGET_AVX2 static void tile_avx2(const ek_gemm_packed_params *p, int64_t kc, const float *a, const float *b,
                                     int64_t row0, const column_panel *panel, const store_mode *mode) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#define EK_GEMM_STEP_AVX2()                                                                              \
    do {                                                                                                 \
        const __m256 b0 = _mm256_loadu_ps(b + kk * NR), b1 = _mm256_loadu_ps(b + kk * NR + 8);          \
        EK_GEMM_ROW_AVX2(0);                                                                             \
        EK_GEMM_ROW_AVX2(1);                                                                             \
        EK_GEMM_ROW_AVX2(2);                                                                             \
        EK_GEMM_ROW_AVX2(3);                                                                             \
        EK_GEMM_ROW_AVX2(4);                                                                             \
        EK_GEMM_ROW_AVX2(5);                                                                             \
        kk++;                                                                                            \
    } while (0)
    int64_t kk = 0;
    for (; kk + 4 <= kc;) {
        _mm_prefetch((const char *)(b + kk * NR + 8 * NR), _MM_HINT_T0);
        _mm_prefetch((const char *)(b + kk * NR + 10 * NR), _MM_HINT_T0);
        EK_GEMM_STEP_AVX2();
        EK_GEMM_STEP_AVX2();
        EK_GEMM_STEP_AVX2();
        EK_GEMM_STEP_AVX2();
    }
    while (kk < kc) EK_GEMM_STEP_AVX2();
    if (panel->run && row0 + MR <= p->m) {
        float *base = p->c + panel->offset + row0 * p->plane;
        EK_GEMM_STORE_AVX2(0);
        EK_GEMM_STORE_AVX2(1);
        EK_GEMM_STORE_AVX2(2);
        EK_GEMM_STORE_AVX2(3);
        EK_GEMM_STORE_AVX2(4);
        EK_GEMM_STORE_AVX2(5);
        return;
    }
    float acc[MR][NR];
    EK_GEMM_SPILL_AVX2(0);
    EK_GEMM_SPILL_AVX2(1);
    EK_GEMM_SPILL_AVX2(2);
    EK_GEMM_SPILL_AVX2(3);
    EK_GEMM_SPILL_AVX2(4);
    EK_GEMM_SPILL_AVX2(5);
    store_tile_scalar((const float(*)[NR])acc, p, row0, panel->col0, mode);
}

// MARK: - Driver

typedef void (*tile_fn)(const ek_gemm_packed_params *, int64_t, const float *, const float *, int64_t,
                        const column_panel *, const store_mode *);

ek_status ek_gemm_packed_f32(const ek_gemm_packed_params *p) {
    if (p == NULL || p->m < 1 || p->n < 1 || p->k < 1 || p->plane < 1 || p->a == NULL || p->b == NULL ||
        p->c == NULL || (p->activation != EK_ACT_NONE && p->activation != EK_ACT_RELU))
        return EK_ERR_INVALID_ARGUMENT;
    const int64_t row_panels = (p->m + MR - 1) / MR, column_panels = (p->n + NR - 1) / NR;
    if (p->panel_begin < 0 || p->panel_end > column_panels || p->panel_begin > p->panel_end)
        return EK_ERR_INVALID_ARGUMENT;
    const tile_fn tile = ek__isa() == EK_ISA_SCALAR ? tile_scalar : tile_avx2;
    store_mode mode = {0, 0, p->activation == EK_ACT_RELU, p->bias};
    for (int64_t k0 = 0; k0 < p->k; k0 += KC) {
        const int64_t kc = ek__min64(KC, p->k - k0);
        mode.accumulate = k0 > 0;
        mode.finish = k0 + kc == p->k;
        for (int64_t i0 = 0; i0 < row_panels; i0 += ROW_PANELS_PER_BLOCK) {
            const int64_t i1 = ek__min64(row_panels, i0 + ROW_PANELS_PER_BLOCK);
            for (int64_t j = p->panel_begin; j < p->panel_end; j++) {
                const float *b = p->b + (j * p->k + k0) * NR;
                const column_panel panel = make_column_panel(p, j);
                for (int64_t i = i0; i < i1; i++)
                    tile(p, kc, p->a + (i * p->k + k0) * MR, b, i * MR, &panel, &mode);
            }
        }
    }
    return EK_OK;
}
