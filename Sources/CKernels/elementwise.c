// Element-wise kernels: ReLU, (residual) add with optional ReLU, multiply, channel concat.
//
// Every path computes each element with the same single IEEE operation, so the AVX2 and
// AVX-512 results are bit-identical to the scalar reference.
#include "internal.h"

#include <immintrin.h>
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
