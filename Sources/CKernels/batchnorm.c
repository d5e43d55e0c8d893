// Inference batch norm, y = x * scale + shift per channel (optionally fused with ReLU),
// and its folding into a preceding convolution.
//
// scale = gamma / sqrt(var + eps), shift = beta - mean * scale, computed in float by the
// same code for every path. PyTorch evaluates (x - mean) * invstd * gamma + beta; the two
// forms differ by about 1e-7 relative. Every path evaluates fmaf(x, scale, shift) (one
// rounding), so AVX2 and AVX-512 results equal the scalar reference bit for bit.
#include "internal.h"

#include <immintrin.h>
#include <math.h>

static inline float bn_scale(float var, float eps, const float *gamma, int64_t ch) {
    const float g = gamma ? gamma[ch] : 1.0f;
    return g / sqrtf(var + eps);
}

static void bn_plane_scalar(int64_t hw, float scale, float shift, int relu, const float *x,
                            float *y) {
    if (relu) {
        for (int64_t i = 0; i < hw; i++) y[i] = ek__relu(fmaf(x[i], scale, shift));
    } else {
        for (int64_t i = 0; i < hw; i++) y[i] = fmaf(x[i], scale, shift);
    }
}

EK_TARGET_AVX2 static void bn_plane_avx2(int64_t hw, float scale, float shift, int relu,
                                         const float *x, float *y) {
    const __m256 vs = _mm256_set1_ps(scale), vt = _mm256_set1_ps(shift), z = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= hw; i += 16) {
        __m256 v0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), vs, vt);
        __m256 v1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), vs, vt);
        if (relu) {
            v0 = _mm256_max_ps(z, v0);
            v1 = _mm256_max_ps(z, v1);
        }
        _mm256_storeu_ps(y + i, v0);
        _mm256_storeu_ps(y + i + 8, v1);
    }
    for (; i + 8 <= hw; i += 8) {
        __m256 v = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), vs, vt);
        if (relu) v = _mm256_max_ps(z, v);
        _mm256_storeu_ps(y + i, v);
    }
    for (; i < hw; i++) {
        const float v = fmaf(x[i], scale, shift);
        y[i] = relu ? ek__relu(v) : v;
    }
}

EK_TARGET_AVX512 static void bn_plane_avx512(int64_t hw, float scale, float shift, int relu,
                                             const float *x, float *y) {
    const __m512 vs = _mm512_set1_ps(scale), vt = _mm512_set1_ps(shift), z = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= hw; i += 32) {
        __m512 v0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), vs, vt);
        __m512 v1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), vs, vt);
        if (relu) {
            v0 = _mm512_max_ps(z, v0);
            v1 = _mm512_max_ps(z, v1);
        }
        _mm512_storeu_ps(y + i, v0);
        _mm512_storeu_ps(y + i + 16, v1);
    }
    for (; i < hw; i += 16) {
        const __mmask16 m = hw - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (hw - i)) - 1u);
        __m512 v = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i), vs, vt);
        if (relu) v = _mm512_max_ps(z, v);
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

ek_status ek_batchnorm_forward_f32(const ek_batchnorm_params *p, const float *x,
                                   const float *mean, const float *var, const float *gamma,
                                   const float *beta, float *y) {
    if (p == NULL || x == NULL || mean == NULL || var == NULL || y == NULL)
        return EK_ERR_INVALID_ARGUMENT;
    if (p->n < 1 || p->c < 1 || p->hw < 1 || !(p->eps >= 0.0f) || !ek__share_ok(p->ith, p->nth))
        return EK_ERR_INVALID_ARGUMENT;
    if (p->activation != EK_ACT_NONE && p->activation != EK_ACT_RELU) return EK_ERR_INVALID_ARGUMENT;

    const int relu = p->activation == EK_ACT_RELU;
    const ek_isa isa = ek__isa();
    int64_t b, e;
    ek__share(p->n * p->c, p->ith, p->nth, &b, &e);
    for (int64_t plane = b; plane < e; plane++) {
        const int64_t ch = plane % p->c;
        const float scale = bn_scale(var[ch], p->eps, gamma, ch);
        const float shift = (beta ? beta[ch] : 0.0f) - mean[ch] * scale;
        const float *xp = x + plane * p->hw;
        float *yp = y + plane * p->hw;
        switch (isa) {
        case EK_ISA_AVX512: bn_plane_avx512(p->hw, scale, shift, relu, xp, yp); break;
        case EK_ISA_AVX2: bn_plane_avx2(p->hw, scale, shift, relu, xp, yp); break;
        case EK_ISA_SCALAR: bn_plane_scalar(p->hw, scale, shift, relu, xp, yp); break;
        }
    }
    return EK_OK;
}

// gamma and beta may be NULL here too (1 and 0); bias_out may alias bias_in.
ek_status ek_batchnorm_fold_f32(int64_t k, int64_t crs, float eps, float *weight,
                                const float *bias_in, const float *mean, const float *var,
                                const float *gamma, const float *beta, float *bias_out) {
    if (k < 1 || crs < 1 || !(eps >= 0.0f) || weight == NULL || mean == NULL || var == NULL ||
        bias_out == NULL)
        return EK_ERR_INVALID_ARGUMENT;
    for (int64_t ch = 0; ch < k; ch++) {
        const float scale = bn_scale(var[ch], eps, gamma, ch);
        float *row = weight + ch * crs;
        for (int64_t i = 0; i < crs; i++) row[i] = row[i] * scale;
        const float b = bias_in ? bias_in[ch] : 0.0f;
        bias_out[ch] = (b - mean[ch]) * scale + (beta ? beta[ch] : 0.0f);
    }
    return EK_OK;
}
