// Element-wise kernels: ReLU, (residual) add with optional ReLU, multiply, channel concat.
//
// Every path computes each element with the same single IEEE operation, so the AVX2 and
// AVX-512 results are bit-identical to the scalar reference.
#include "internal.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

// MARK: - Scalar reference

static void relu_scalar(int64_t n, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = ek__relu(x[i]);
}

static void add_scalar(int64_t n, const float *a, const float *b, float *y, ek_activation act) {
    if (act == EK_ACT_RELU) {
        for (int64_t i = 0; i < n; i++) y[i] = ek__relu(a[i] + b[i]);
    } else {
        for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
    }
}

static void mul_scalar(int64_t n, const float *a, const float *b, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = a[i] * b[i];
}

// MARK: - AVX2 (8 lanes, scalar tail)

EK_TARGET_AVX2 static void relu_avx2(int64_t n, const float *x, float *y) {
    const __m256 z = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
        __m256 v2 = _mm256_loadu_ps(x + i + 16), v3 = _mm256_loadu_ps(x + i + 24);
        _mm256_storeu_ps(y + i, _mm256_max_ps(z, v0));
        _mm256_storeu_ps(y + i + 8, _mm256_max_ps(z, v1));
        _mm256_storeu_ps(y + i + 16, _mm256_max_ps(z, v2));
        _mm256_storeu_ps(y + i + 24, _mm256_max_ps(z, v3));
    }
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_max_ps(z, _mm256_loadu_ps(x + i)));
    for (; i < n; i++) y[i] = ek__relu(x[i]);
}

EK_TARGET_AVX2 static void add_avx2(int64_t n, const float *a, const float *b, float *y,
                                    ek_activation act) {
    const __m256 z = _mm256_setzero_ps();
    int64_t i = 0;
    if (act == EK_ACT_RELU) {
        for (; i + 16 <= n; i += 16) {
            __m256 v0 = _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
            __m256 v1 = _mm256_add_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
            _mm256_storeu_ps(y + i, _mm256_max_ps(z, v0));
            _mm256_storeu_ps(y + i + 8, _mm256_max_ps(z, v1));
        }
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(y + i, _mm256_max_ps(z, _mm256_add_ps(_mm256_loadu_ps(a + i),
                                                                   _mm256_loadu_ps(b + i))));
        for (; i < n; i++) y[i] = ek__relu(a[i] + b[i]);
    } else {
        for (; i + 16 <= n; i += 16) {
            __m256 v0 = _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
            __m256 v1 = _mm256_add_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
            _mm256_storeu_ps(y + i, v0);
            _mm256_storeu_ps(y + i + 8, v1);
        }
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
        for (; i < n; i++) y[i] = a[i] + b[i];
    }
}

EK_TARGET_AVX2 static void mul_avx2(int64_t n, const float *a, const float *b, float *y) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 v0 = _mm256_mul_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        __m256 v1 = _mm256_mul_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
        _mm256_storeu_ps(y + i, v0);
        _mm256_storeu_ps(y + i + 8, v1);
    }
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
    for (; i < n; i++) y[i] = a[i] * b[i];
}

// MARK: - AVX-512 (16 lanes, masked tail)

EK_TARGET_AVX512 static inline __mmask16 tail_mask16(int64_t left) {
    return (__mmask16)((1u << left) - 1u);
}

EK_TARGET_AVX512 static void relu_avx512(int64_t n, const float *x, float *y) {
    const __m512 z = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + 16);
        __m512 v2 = _mm512_loadu_ps(x + i + 32), v3 = _mm512_loadu_ps(x + i + 48);
        _mm512_storeu_ps(y + i, _mm512_max_ps(z, v0));
        _mm512_storeu_ps(y + i + 16, _mm512_max_ps(z, v1));
        _mm512_storeu_ps(y + i + 32, _mm512_max_ps(z, v2));
        _mm512_storeu_ps(y + i + 48, _mm512_max_ps(z, v3));
    }
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_max_ps(z, _mm512_loadu_ps(x + i)));
    if (i < n) {
        const __mmask16 m = tail_mask16(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_max_ps(z, _mm512_maskz_loadu_ps(m, x + i)));
    }
}

EK_TARGET_AVX512 static void add_avx512(int64_t n, const float *a, const float *b, float *y,
                                        ek_activation act) {
    const __m512 z = _mm512_setzero_ps();
    const int relu = act == EK_ACT_RELU;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 v0 = _mm512_add_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        __m512 v1 = _mm512_add_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
        if (relu) {
            v0 = _mm512_max_ps(z, v0);
            v1 = _mm512_max_ps(z, v1);
        }
        _mm512_storeu_ps(y + i, v0);
        _mm512_storeu_ps(y + i + 16, v1);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : tail_mask16(n - i);
        __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
        if (relu) v = _mm512_max_ps(z, v);
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

EK_TARGET_AVX512 static void mul_avx512(int64_t n, const float *a, const float *b, float *y) {
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 v0 = _mm512_mul_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        __m512 v1 = _mm512_mul_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
        _mm512_storeu_ps(y + i, v0);
        _mm512_storeu_ps(y + i + 16, v1);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : tail_mask16(n - i);
        _mm512_mask_storeu_ps(
            y + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i)));
    }
}

// MARK: - Dispatch

void ek__add_run(int64_t count, const float *a, const float *b, float *y, ek_activation act) {
    switch (ek__isa()) {
    case EK_ISA_AVX512: add_avx512(count, a, b, y, act); return;
    case EK_ISA_AVX2: add_avx2(count, a, b, y, act); return;
    case EK_ISA_SCALAR: break;
    }
    add_scalar(count, a, b, y, act);
}

ek_status ek_relu_f32(int64_t count, const float *x, float *y, int32_t ith, int32_t nth) {
    if (count < 1 || x == NULL || y == NULL || !ek__share_ok(ith, nth)) return EK_ERR_INVALID_ARGUMENT;
    int64_t b, e;
    ek__share_aligned16(count, ith, nth, &b, &e);
    if (b >= e) return EK_OK;
    switch (ek__isa()) {
    case EK_ISA_AVX512: relu_avx512(e - b, x + b, y + b); return EK_OK;
    case EK_ISA_AVX2: relu_avx2(e - b, x + b, y + b); return EK_OK;
    case EK_ISA_SCALAR: break;
    }
    relu_scalar(e - b, x + b, y + b);
    return EK_OK;
}

ek_status ek_add_f32(int64_t count, const float *a, const float *b, float *y, ek_activation act,
                     int32_t ith, int32_t nth) {
    if (count < 1 || a == NULL || b == NULL || y == NULL || !ek__share_ok(ith, nth))
        return EK_ERR_INVALID_ARGUMENT;
    if (act != EK_ACT_NONE && act != EK_ACT_RELU) return EK_ERR_INVALID_ARGUMENT;
    int64_t s, e;
    ek__share_aligned16(count, ith, nth, &s, &e);
    if (s < e) ek__add_run(e - s, a + s, b + s, y + s, act);
    return EK_OK;
}

ek_status ek_mul_f32(int64_t count, const float *a, const float *b, float *y, int32_t ith,
                     int32_t nth) {
    if (count < 1 || a == NULL || b == NULL || y == NULL || !ek__share_ok(ith, nth))
        return EK_ERR_INVALID_ARGUMENT;
    int64_t s, e;
    ek__share_aligned16(count, ith, nth, &s, &e);
    if (s >= e) return EK_OK;
    switch (ek__isa()) {
    case EK_ISA_AVX512: mul_avx512(e - s, a + s, b + s, y + s); return EK_OK;
    case EK_ISA_AVX2: mul_avx2(e - s, a + s, b + s, y + s); return EK_OK;
    case EK_ISA_SCALAR: break;
    }
    mul_scalar(e - s, a + s, b + s, y + s);
    return EK_OK;
}

// Plain copies: no arithmetic, so every ISA gives the same bits; memmove is already
// vectorised by the C library.
ek_status ek_concat_channels_f32(int64_t n, int64_t hw, int32_t count, const float *const *inputs,
                                 const int64_t *channels, float *y) {
    if (n < 1 || hw < 1 || count < 1 || inputs == NULL || channels == NULL || y == NULL)
        return EK_ERR_INVALID_ARGUMENT;
    int64_t total_c = 0;
    for (int32_t i = 0; i < count; i++) {
        if (inputs[i] == NULL || channels[i] < 1) return EK_ERR_INVALID_ARGUMENT;
        total_c += channels[i];
    }
    for (int64_t img = 0; img < n; img++) {
        float *dst = y + img * total_c * hw;
        for (int32_t i = 0; i < count; i++) {
            const int64_t plane = channels[i] * hw;
            memmove(dst, inputs[i] + img * plane, (size_t)plane * sizeof(float));
            dst += plane;
        }
    }
    return EK_OK;
}

// MARK: - Backward: ReLU rules
//
// Each element is one select (and, for Rescale, the same two subtractions, one multiply
// and one division) on every path, so the SIMD results equal the scalar reference bit for
// bit. Comparisons are ordered: a NaN y (or x) counts as "not > 0" and gives +0.
//   plain:   dx = y > 0 ? dy : 0
//   guided:  dx = y > 0 ? max(dy, 0) : 0      (ek__relu: NaN dy propagates, -0 kept)
//   rescale: dx = |x - x_ref| > eps ? (dy * (y - y_ref)) / (x - x_ref) : (x > 0 ? dy : 0)

static void relu_back_scalar(int64_t n, const float *y, const float *dy, float *dx) {
    for (int64_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}
static void relu_back_guided_scalar(int64_t n, const float *y, const float *dy, float *dx) {
    for (int64_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? ek__relu(dy[i]) : 0.0f;
}
static inline float rescale_one(float x, float xr, float y, float yr, float g, float eps) {
    const float dxin = x - xr;
    const float dout = y - yr;
    if (fabsf(dxin) > eps) return (g * dout) / dxin;
    return x > 0.0f ? g : 0.0f;
}
static void relu_back_rescale_scalar(int64_t n, const float *x, const float *xr, const float *y,
                                     const float *yr, const float *dy, float *dx, float eps) {
    for (int64_t i = 0; i < n; i++) dx[i] = rescale_one(x[i], xr[i], y[i], yr[i], dy[i], eps);
}

EK_TARGET_AVX2 static void relu_back_avx2(int64_t n, const float *y, const float *dy, float *dx,
                                          int guided) {
    const __m256 z = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 m0 = _mm256_cmp_ps(_mm256_loadu_ps(y + i), z, _CMP_GT_OQ);
        const __m256 m1 = _mm256_cmp_ps(_mm256_loadu_ps(y + i + 8), z, _CMP_GT_OQ);
        __m256 g0 = _mm256_loadu_ps(dy + i), g1 = _mm256_loadu_ps(dy + i + 8);
        if (guided) {
            g0 = _mm256_max_ps(z, g0);
            g1 = _mm256_max_ps(z, g1);
        }
        _mm256_storeu_ps(dx + i, _mm256_and_ps(m0, g0));
        _mm256_storeu_ps(dx + i + 8, _mm256_and_ps(m1, g1));
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 m = _mm256_cmp_ps(_mm256_loadu_ps(y + i), z, _CMP_GT_OQ);
        __m256 g = _mm256_loadu_ps(dy + i);
        if (guided) g = _mm256_max_ps(z, g);
        _mm256_storeu_ps(dx + i, _mm256_and_ps(m, g));
    }
    if (guided) relu_back_guided_scalar(n - i, y + i, dy + i, dx + i);
    else relu_back_scalar(n - i, y + i, dy + i, dx + i);
}

EK_TARGET_AVX512 static void relu_back_avx512(int64_t n, const float *y, const float *dy,
                                              float *dx, int guided) {
    const __m512 z = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __mmask16 m0 = _mm512_cmp_ps_mask(_mm512_loadu_ps(y + i), z, _CMP_GT_OQ);
        const __mmask16 m1 = _mm512_cmp_ps_mask(_mm512_loadu_ps(y + i + 16), z, _CMP_GT_OQ);
        __m512 g0 = _mm512_loadu_ps(dy + i), g1 = _mm512_loadu_ps(dy + i + 16);
        if (guided) {
            g0 = _mm512_max_ps(z, g0);
            g1 = _mm512_max_ps(z, g1);
        }
        _mm512_storeu_ps(dx + i, _mm512_maskz_mov_ps(m0, g0));
        _mm512_storeu_ps(dx + i + 16, _mm512_maskz_mov_ps(m1, g1));
    }
    for (; i < n; i += 16) {
        const __mmask16 t = n - i >= 16 ? (__mmask16)0xFFFF : tail_mask16(n - i);
        const __mmask16 m = _mm512_mask_cmp_ps_mask(t, _mm512_maskz_loadu_ps(t, y + i), z, _CMP_GT_OQ);
        __m512 g = _mm512_maskz_loadu_ps(t, dy + i);
        if (guided) g = _mm512_max_ps(z, g);
        _mm512_mask_storeu_ps(dx + i, t, _mm512_maskz_mov_ps(m, g));
    }
}

EK_TARGET_AVX2 static void relu_back_rescale_avx2(int64_t n, const float *x, const float *xr,
                                                  const float *y, const float *yr,
                                                  const float *dy, float *dx, float eps) {
    const __m256 z = _mm256_setzero_ps(), ve = _mm256_set1_ps(eps);
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 vx = _mm256_loadu_ps(x + i), g = _mm256_loadu_ps(dy + i);
        const __m256 din = _mm256_sub_ps(vx, _mm256_loadu_ps(xr + i));
        const __m256 dout = _mm256_sub_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(yr + i));
        const __m256 ratio = _mm256_div_ps(_mm256_mul_ps(g, dout), din);
        const __m256 grad = _mm256_and_ps(_mm256_cmp_ps(vx, z, _CMP_GT_OQ), g);
        const __m256 use_ratio = _mm256_cmp_ps(_mm256_and_ps(din, abs_mask), ve, _CMP_GT_OQ);
        _mm256_storeu_ps(dx + i, _mm256_blendv_ps(grad, ratio, use_ratio));
    }
    relu_back_rescale_scalar(n - i, x + i, xr + i, y + i, yr + i, dy + i, dx + i, eps);
}

EK_TARGET_AVX512 static void relu_back_rescale_avx512(int64_t n, const float *x, const float *xr,
                                                      const float *y, const float *yr,
                                                      const float *dy, float *dx, float eps) {
    const __m512 z = _mm512_setzero_ps(), ve = _mm512_set1_ps(eps);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 t = n - i >= 16 ? (__mmask16)0xFFFF : tail_mask16(n - i);
        const __m512 vx = _mm512_maskz_loadu_ps(t, x + i), g = _mm512_maskz_loadu_ps(t, dy + i);
        const __m512 din = _mm512_sub_ps(vx, _mm512_maskz_loadu_ps(t, xr + i));
        const __m512 dout = _mm512_sub_ps(_mm512_maskz_loadu_ps(t, y + i), _mm512_maskz_loadu_ps(t, yr + i));
        const __m512 ratio = _mm512_div_ps(_mm512_mul_ps(g, dout), din);
        const __m512 grad = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(vx, z, _CMP_GT_OQ), g);
        const __mmask16 use_ratio = _mm512_cmp_ps_mask(_mm512_abs_ps(din), ve, _CMP_GT_OQ);
        _mm512_mask_storeu_ps(dx + i, t, _mm512_mask_blend_ps(use_ratio, grad, ratio));
    }
}

static ek_status relu_back_common(int64_t count, const float *y, const float *dy, float *dx,
                                  int32_t ith, int32_t nth, int guided) {
    if (count < 1 || y == NULL || dy == NULL || dx == NULL || !ek__share_ok(ith, nth))
        return EK_ERR_INVALID_ARGUMENT;
    int64_t b, e;
    ek__share_aligned16(count, ith, nth, &b, &e);
    if (b >= e) return EK_OK;
    switch (ek__isa()) {
    case EK_ISA_AVX512: relu_back_avx512(e - b, y + b, dy + b, dx + b, guided); return EK_OK;
    case EK_ISA_AVX2: relu_back_avx2(e - b, y + b, dy + b, dx + b, guided); return EK_OK;
    case EK_ISA_SCALAR: break;
    }
    if (guided) relu_back_guided_scalar(e - b, y + b, dy + b, dx + b);
    else relu_back_scalar(e - b, y + b, dy + b, dx + b);
    return EK_OK;
}

ek_status ek_relu_back_f32(int64_t count, const float *y, const float *dy, float *dx, int32_t ith,
                           int32_t nth) {
    return relu_back_common(count, y, dy, dx, ith, nth, 0);
}

ek_status ek_relu_back_guided_f32(int64_t count, const float *y, const float *dy, float *dx,
                                  int32_t ith, int32_t nth) {
    return relu_back_common(count, y, dy, dx, ith, nth, 1);
}

ek_status ek_relu_back_rescale_f32(int64_t count, const float *x, const float *x_ref,
                                   const float *y, const float *y_ref, const float *dy, float *dx,
                                   float eps, int32_t ith, int32_t nth) {
    if (count < 1 || x == NULL || x_ref == NULL || y == NULL || y_ref == NULL || dy == NULL ||
        dx == NULL || !ek__share_ok(ith, nth) || !(eps >= 0.0f))
        return EK_ERR_INVALID_ARGUMENT;
    int64_t b, e;
    ek__share_aligned16(count, ith, nth, &b, &e);
    if (b >= e) return EK_OK;
    switch (ek__isa()) {
    case EK_ISA_AVX512:
        relu_back_rescale_avx512(e - b, x + b, x_ref + b, y + b, y_ref + b, dy + b, dx + b, eps);
        return EK_OK;
    case EK_ISA_AVX2:
        relu_back_rescale_avx2(e - b, x + b, x_ref + b, y + b, y_ref + b, dy + b, dx + b, eps);
        return EK_OK;
    case EK_ISA_SCALAR: break;
    }
    relu_back_rescale_scalar(e - b, x + b, x_ref + b, y + b, y_ref + b, dy + b, dx + b, eps);
    return EK_OK;
}

// MARK: - Backward: concat

// Plain copies, as the forward.
ek_status ek_concat_channels_back_f32(int64_t n, int64_t hw, int32_t count, const float *dy,
                                      const int64_t *channels, float *const *outputs) {
    if (n < 1 || hw < 1 || count < 1 || dy == NULL || channels == NULL || outputs == NULL)
        return EK_ERR_INVALID_ARGUMENT;
    int64_t total_c = 0;
    for (int32_t i = 0; i < count; i++) {
        if (outputs[i] == NULL || channels[i] < 1) return EK_ERR_INVALID_ARGUMENT;
        total_c += channels[i];
    }
    for (int64_t img = 0; img < n; img++) {
        const float *src = dy + img * total_c * hw;
        for (int32_t i = 0; i < count; i++) {
            const int64_t plane = channels[i] * hw;
            memmove(outputs[i] + img * plane, src, (size_t)plane * sizeof(float));
            src += plane;
        }
    }
    return EK_OK;
}
