// Fully connected layer (sgemm + bias) and row-wise softmax.
#include "internal.h"

#include <immintrin.h>
#include <limits.h>
#include <math.h>

// MARK: - Linear

ek_status ek_linear_f32(int64_t n, int64_t in_features, int64_t out_features, const float *x,
                        const float *weight, const float *bias, float *y) {
    if (n < 1 || in_features < 1 || out_features < 1 || x == NULL || weight == NULL || y == NULL)
        return EK_ERR_INVALID_ARGUMENT;
    if (n > INT_MAX || in_features > INT_MAX || out_features > INT_MAX) return EK_ERR_INVALID_ARGUMENT;
    // y[N, OUT] = x[N, IN] * weight[OUT, IN]^T
    ek_status st = ek__sgemm(0, 1, n, out_features, in_features, 1.0f, x, in_features, weight,
                             in_features, 0.0f, y, out_features);
    if (st != EK_OK) return st;
    if (bias != NULL)
        for (int64_t i = 0; i < n; i++)
            ek__add_run(out_features, y + i * out_features, bias, y + i * out_features, EK_ACT_NONE);
    return EK_OK;
}

// MARK: - Softmax
//
// Three passes per row: maximum, exp(x - max) stored in y with its sum, y *= 1 / sum.
// Every path sums in the interleaved order of ek__sum16_finish. The scalar path uses
// libm's expf; the SIMD paths use a Cephes-style polynomial (range reduction by ln 2,
// degree-6 polynomial, about 1 ulp), so they agree with the scalar path to a few 1e-7
// relative.

static void softmax_row_scalar(int64_t cols, const float *x, float *y) {
    float mx = x[0];
    for (int64_t i = 1; i < cols; i++)
        if (x[i] > mx || isnan(x[i])) mx = x[i];
    float acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= cols; i += 16) {
        for (int j = 0; j < 16; j++) {
            const float e = expf(x[i + j] - mx);
            y[i + j] = e;
            acc[j] += e;
        }
    }
    for (int64_t j = i; j < cols; j++) y[j] = expf(x[j] - mx);
    const float inv = 1.0f / ek__sum16_finish(acc, y, i, cols);
    for (int64_t j = 0; j < cols; j++) y[j] = y[j] * inv;
}

#define EK_EXP_LOG2E 1.44269504088896341f
#define EK_EXP_LN2_HI 0.693359375f
#define EK_EXP_LN2_LO -2.12194440e-4f
#define EK_EXP_P0 1.9875691500e-4f
#define EK_EXP_P1 1.3981999507e-3f
#define EK_EXP_P2 8.3334519073e-3f
#define EK_EXP_P3 4.1665795894e-2f
#define EK_EXP_P4 1.6666665459e-1f
#define EK_EXP_P5 5.0000001201e-1f

// exp for AVX2: inputs below -87.3 (where 2^n would leave the normal range) give 0,
// above 88.7 give +inf, NaN stays NaN.
EK_TARGET_AVX2 static inline __m256 exp_avx2(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.33654f), hi = _mm256_set1_ps(88.72283f);
    const __m256 too_small = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    const __m256 too_big = _mm256_cmp_ps(x, hi, _CMP_GT_OQ);
    __m256 xc = _mm256_min_ps(hi, _mm256_max_ps(lo, x));  // NaN passes through (2nd operand)
    const __m256 fx = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(EK_EXP_LOG2E)),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(EK_EXP_LN2_HI), xc);
    r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(EK_EXP_LN2_LO), r);
    __m256 p = _mm256_set1_ps(EK_EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EK_EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EK_EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EK_EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EK_EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EK_EXP_P5));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    // 2^fx for fx in [-126, 127]: build the exponent bits. At fx = 128 (x near 88.7)
    // scale in two halves so the product still rounds correctly to FLT_MAX or inf.
    const __m256i n = _mm256_cvtps_epi32(fx);
    const __m256i n1 = _mm256_srai_epi32(n, 1), n2 = _mm256_sub_epi32(n, n1);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, _mm256_set1_epi32(127)), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, _mm256_set1_epi32(127)), 23));
    __m256 y = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
    y = _mm256_andnot_ps(too_small, y);
    y = _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), too_big);
    return y;
}

// exp for AVX-512: scalef handles the whole range (gradual underflow, overflow to inf).
EK_TARGET_AVX512 static inline __m512 exp_avx512(__m512 x) {
    // Below -104, e^x is under half the smallest subnormal; clamping keeps r finite for -inf.
    const __m512 lo = _mm512_set1_ps(-104.0f), hi = _mm512_set1_ps(89.0f);
    const __m512 xc = _mm512_min_ps(hi, _mm512_max_ps(lo, x));  // NaN passes through
    const __m512 fx = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(EK_EXP_LOG2E)),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(EK_EXP_LN2_HI), xc);
    r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(EK_EXP_LN2_LO), r);
    __m512 p = _mm512_set1_ps(EK_EXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EK_EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EK_EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EK_EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EK_EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EK_EXP_P5));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, fx);
}

EK_TARGET_AVX2 static void softmax_row_avx2(int64_t cols, const float *x, float *y) {
    // Maximum with the scalar rule (NaN wins); the maximum itself is order-independent
    // except for the sign of zero, which does not change x - max.
    __m256 vm = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= cols; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256 upd = _mm256_or_ps(_mm256_cmp_ps(v, vm, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        vm = _mm256_blendv_ps(vm, v, upd);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, vm);
    float mx = lanes[0];
    for (int k = 1; k < 8; k++)
        if (lanes[k] > mx || isnan(lanes[k])) mx = lanes[k];
    for (; i < cols; i++)
        if (x[i] > mx || isnan(x[i])) mx = x[i];

    const __m256 vmx = _mm256_set1_ps(mx);
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    for (i = 0; i + 16 <= cols; i += 16) {
        const __m256 e0 = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmx));
        const __m256 e1 = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vmx));
        _mm256_storeu_ps(y + i, e0);
        _mm256_storeu_ps(y + i + 8, e1);
        lo = _mm256_add_ps(lo, e0);
        hi = _mm256_add_ps(hi, e1);
    }
    const int64_t blocks_end = i;
    if (i + 8 <= cols) {
        _mm256_storeu_ps(y + i, exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmx)));
        i += 8;
    }
    for (; i < cols; i++) y[i] = expf(x[i] - mx);
    float acc[16];
    _mm256_storeu_ps(acc, lo);
    _mm256_storeu_ps(acc + 8, hi);
    const float sum = ek__sum16_finish(acc, y, blocks_end, cols);
    const float inv = 1.0f / sum;
    const __m256 vinv = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= cols; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), vinv));
    for (; i < cols; i++) y[i] = y[i] * inv;
}

EK_TARGET_AVX512 static void softmax_row_avx512(int64_t cols, const float *x, float *y) {
    __m512 vm = _mm512_set1_ps(-INFINITY);
    for (int64_t i = 0; i < cols; i += 16) {
        const __mmask16 m = cols - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (cols - i)) - 1u);
        const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        const __mmask16 upd = m & (_mm512_cmp_ps_mask(v, vm, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q));
        vm = _mm512_mask_blend_ps(upd, vm, v);
    }
    float lanes[16];
    _mm512_storeu_ps(lanes, vm);
    float mx = lanes[0];
    for (int k = 1; k < 16; k++)
        if (lanes[k] > mx || isnan(lanes[k])) mx = lanes[k];

    const __m512 vmx = _mm512_set1_ps(mx);
    __m512 vs = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= cols; i += 16) {
        const __m512 e = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(x + i), vmx));
        _mm512_storeu_ps(y + i, e);
        vs = _mm512_add_ps(vs, e);
    }
    if (i < cols) {
        const __mmask16 m = (__mmask16)((1u << (cols - i)) - 1u);
        _mm512_mask_storeu_ps(y + i, m, exp_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vmx)));
    }
    float acc[16];
    _mm512_storeu_ps(acc, vs);
    const float inv = 1.0f / ek__sum16_finish(acc, y, i, cols);
    const __m512 vinv = _mm512_set1_ps(inv);
    for (i = 0; i < cols; i += 16) {
        const __mmask16 m = cols - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (cols - i)) - 1u);
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, y + i), vinv));
    }
}

ek_status ek_softmax_f32(int64_t rows, int64_t cols, const float *x, float *y) {
    if (rows < 1 || cols < 1 || x == NULL || y == NULL) return EK_ERR_INVALID_ARGUMENT;
    const ek_isa isa = ek__isa();
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = y + r * cols;
        switch (isa) {
        case EK_ISA_AVX512: softmax_row_avx512(cols, xr, yr); break;
        case EK_ISA_AVX2: softmax_row_avx2(cols, xr, yr); break;
        case EK_ISA_SCALAR: softmax_row_scalar(cols, xr, yr); break;
        }
    }
    return EK_OK;
}

// MARK: - Backward

ek_status ek_linear_back_input_f32(int64_t n, int64_t in_features, int64_t out_features,
                                   const float *dy, const float *weight, float *dx) {
    if (n < 1 || in_features < 1 || out_features < 1 || dy == NULL || weight == NULL || dx == NULL)
        return EK_ERR_INVALID_ARGUMENT;
    if (n > INT_MAX || in_features > INT_MAX || out_features > INT_MAX) return EK_ERR_INVALID_ARGUMENT;
    // dx[N, IN] = dy[N, OUT] * weight[OUT, IN]
    return ek__sgemm(0, 0, n, in_features, out_features, 1.0f, dy, out_features, weight,
                     in_features, 0.0f, dx, in_features);
}

ek_status ek_linear_back_weight_f32(int64_t n, int64_t in_features, int64_t out_features,
                                    const float *x, const float *dy, float *dweight,
                                    float *dbias) {
    if (n < 1 || in_features < 1 || out_features < 1 || x == NULL || dy == NULL || dweight == NULL)
        return EK_ERR_INVALID_ARGUMENT;
    if (n > INT_MAX || in_features > INT_MAX || out_features > INT_MAX) return EK_ERR_INVALID_ARGUMENT;
    // dweight[OUT, IN] += dy[N, OUT]^T * x[N, IN]
    ek_status st = ek__sgemm(1, 0, out_features, in_features, n, 1.0f, dy, out_features, x,
                             in_features, 1.0f, dweight, in_features);
    if (st != EK_OK) return st;
    // dbias += dy row by row: one addition per element and row, the same on every ISA.
    if (dbias != NULL)
        for (int64_t i = 0; i < n; i++) ek__add_run(out_features, dbias, dy + i * out_features, dbias, EK_ACT_NONE);
    return EK_OK;
}

// dx = y * (dy - Σ_j dy_j * y_j) per row. The dot product uses 16 interleaved partial
// sums of fmaf(dy, y, acc) and the halving tree of ek__sum16_finish; scalar on every
// level (a classifier row is ~1000 floats). dx may alias dy or y: the dot product is
// complete before the row is written.
ek_status ek_softmax_back_f32(int64_t rows, int64_t cols, const float *y, const float *dy,
                              float *dx) {
    if (rows < 1 || cols < 1 || y == NULL || dy == NULL || dx == NULL) return EK_ERR_INVALID_ARGUMENT;
    for (int64_t r = 0; r < rows; r++) {
        const float *yr = y + r * cols, *gr = dy + r * cols;
        float *dr = dx + r * cols;
        float acc[16] = {0};
        int64_t i = 0;
        for (; i + 16 <= cols; i += 16)
            for (int j = 0; j < 16; j++) acc[j] = fmaf(gr[i + j], yr[i + j], acc[j]);
        for (int j = 0; i + j < cols; j++) acc[j] = fmaf(gr[i + j], yr[i + j], acc[j]);
        for (int width = 8; width >= 1; width /= 2)
            for (int j = 0; j < width; j++) acc[j] += acc[j + width];
        const float dot = acc[0];
        for (int64_t j = 0; j < cols; j++) dr[j] = yr[j] * (gr[j] - dot);
    }
    return EK_OK;
}
