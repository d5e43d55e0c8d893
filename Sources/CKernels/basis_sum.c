// Sums of boxed basis responses: the stem outputs of Score-CAM's masked copies (see
// ek_basis_sum_f32 in ckernels.h and MaskedStemEvaluator in ElucidateModels).
//
// Each output element is built in the same order on every path: zero, then one fused
// multiply-add per basis whose box covers it (bases in index order, zero coefficients
// skipped), then the bias added and the activation applied. So the AVX2 results are
// bit-identical to the scalar reference.
#include "internal.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

static inline int box_covers_row(const ek_basis_box *box, int64_t y) {
    return box->height > 0 && box->width > 0 && y >= box->y0 && y < box->y0 + box->height;
}

// MARK: - Scalar reference

static void axpy_scalar(int64_t n, float a, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = fmaf(a, x[i], y[i]);
}

static void bias_act_scalar(int64_t n, float bias, ek_activation act, float *y) {
    if (act == EK_ACT_RELU) {
        for (int64_t i = 0; i < n; i++) y[i] = ek__relu(y[i] + bias);
    } else {
        for (int64_t i = 0; i < n; i++) y[i] = y[i] + bias;
    }
}

// MARK: - AVX2 (8 lanes, scalar tail)

EK_TARGET_AVX2 static void axpy_avx2(int64_t n, float a, const float *x, float *y) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 y0 = _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i));
        __m256 y1 = _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8));
        _mm256_storeu_ps(y + i, y0);
        _mm256_storeu_ps(y + i + 8, y1);
    }
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] = fmaf(a, x[i], y[i]);
}

EK_TARGET_AVX2 static void bias_act_avx2(int64_t n, float bias, ek_activation act, float *y) {
    const __m256 vb = _mm256_set1_ps(bias), z = _mm256_setzero_ps();
    int64_t i = 0;
    if (act == EK_ACT_RELU) {
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_max_ps(z, _mm256_add_ps(_mm256_loadu_ps(y + i), vb)));
        for (; i < n; i++) y[i] = ek__relu(y[i] + bias);
    } else {
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), vb));
        for (; i < n; i++) y[i] = y[i] + bias;
    }
}

// MARK: - Entry point

ek_status ek_basis_sum_f32(const ek_basis_sum_params *p, float *y) {
    if (!p || !y || (p->copies > 0 && p->bases > 0 && (!p->coefficients || !p->boxes)) || p->copies < 0 ||
        p->bases < 0 || p->channels < 0 || p->height < 0 || p->width < 0 || !ek__share_ok(p->ith, p->nth) ||
        (p->activation != EK_ACT_NONE && p->activation != EK_ACT_RELU))
        return EK_ERR_INVALID_ARGUMENT;
    for (int64_t b = 0; b < p->bases; b++) {
        const ek_basis_box *box = &p->boxes[b];
        if (box->height <= 0 || box->width <= 0) continue;
        if (!box->values || box->y0 < 0 || box->x0 < 0 || box->y0 > p->height - box->height ||
            box->x0 > p->width - box->width)
            return EK_ERR_INVALID_ARGUMENT;
    }
    const int use_avx2 = ek__isa() != EK_ISA_SCALAR;  // the AVX-512 level runs the AVX2 path
    int64_t k0, k1;
    ek__share(p->channels, p->ith, p->nth, &k0, &k1);
    const int64_t plane = p->height * p->width;
    // Channel by channel and row by row, copies innermost: the response row of a basis stays
    // in cache while every copy adds it, and the copies' rows (a few KB) stay in L1.
    for (int64_t k = k0; k < k1; k++) {
        const float bias = p->bias ? p->bias[k] : 0.0f;
        for (int64_t row = 0; row < p->height; row++) {
            float *out = y + k * plane + row * p->width;
            const int64_t copy_stride = p->channels * plane;
            for (int64_t copy = 0; copy < p->copies; copy++)
                memset(out + copy * copy_stride, 0, (size_t)p->width * sizeof(float));
            for (int64_t b = 0; b < p->bases; b++) {
                const ek_basis_box *box = &p->boxes[b];
                if (!box_covers_row(box, row)) continue;
                const float *source = box->values + (k * box->height + row - box->y0) * box->width;
                for (int64_t copy = 0; copy < p->copies; copy++) {
                    const float c = p->coefficients[copy * p->bases + b];
                    if (c == 0.0f) continue;
                    float *target = out + copy * copy_stride + box->x0;
                    if (use_avx2) axpy_avx2(box->width, c, source, target);
                    else axpy_scalar(box->width, c, source, target);
                }
            }
            for (int64_t copy = 0; copy < p->copies; copy++) {
                if (use_avx2) bias_act_avx2(p->width, bias, p->activation, out + copy * copy_stride);
                else bias_act_scalar(p->width, bias, p->activation, out + copy * copy_stride);
            }
        }
    }
    return EK_OK;
}
