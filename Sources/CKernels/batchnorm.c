// Inference batch norm, y = x * scale + shift per channel (optionally fused with ReLU),
// and its folding into a preceding convolution.
//
// scale = gamma / sqrt(var + eps), shift = beta - mean * scale, computed in float by the
// same code for every path (the fold computes in double: see ek_batchnorm_fold_f32).
// PyTorch evaluates (x - mean) * invstd * gamma + beta; the two forms differ by about 1e-7
// relative. Every path evaluates fmaf(x, scale, shift) (one rounding), so AVX2 and AVX-512
// results equal the scalar reference bit for bit.
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

// The fold is done once per model, so it is computed in double and each result rounded to
// float once (one scalar loop; there is no SIMD variant):
//   scale = gamma / sqrt(var + eps), weight = weight * scale, bias = beta + (bias - mean) * scale.
// Rounding scale to float and then the product W * scale again would perturb the model
// itself by up to one float ulp per weight, a fixed error that, unlike the rounding of the
// activations, does not cancel between F(x) and F(x with a window blanked) in occlusion.
// gamma and beta may be NULL here too (1 and 0); bias_out may alias bias_in.
ek_status ek_batchnorm_fold_f32(int64_t k, int64_t crs, float eps, float *weight,
                                const float *bias_in, const float *mean, const float *var,
                                const float *gamma, const float *beta, float *bias_out) {
    if (k < 1 || crs < 1 || !(eps >= 0.0f) || weight == NULL || mean == NULL || var == NULL ||
        bias_out == NULL)
        return EK_ERR_INVALID_ARGUMENT;
    for (int64_t ch = 0; ch < k; ch++) {
        const double g = gamma ? (double)gamma[ch] : 1.0;
        const double scale = g / sqrt((double)var[ch] + (double)eps);
        float *row = weight + ch * crs;
        for (int64_t i = 0; i < crs; i++) row[i] = (float)((double)row[i] * scale);
        // Two statements, so no compiler contracts them into one fused multiply-add: the
        // result is the same double expression everywhere.
        const double shifted = ((bias_in ? (double)bias_in[ch] : 0.0) - (double)mean[ch]) * scale;
        bias_out[ch] = (float)((beta ? (double)beta[ch] : 0.0) + shifted);
    }
    return EK_OK;
}

// MARK: - Backward (inference form): dx = dy * scale
//
// scale = gamma / sqrt(var + eps) computed by bn_scale, as in the forward; one multiply
// per element on every path, so the SIMD results equal the scalar reference bit for bit.

static void bn_back_plane_scalar(int64_t hw, float scale, const float *dy, float *dx) {
    for (int64_t i = 0; i < hw; i++) dx[i] = dy[i] * scale;
}

EK_TARGET_AVX2 static void bn_back_plane_avx2(int64_t hw, float scale, const float *dy, float *dx) {
    const __m256 vs = _mm256_set1_ps(scale);
    int64_t i = 0;
    for (; i + 16 <= hw; i += 16) {
        const __m256 v0 = _mm256_mul_ps(_mm256_loadu_ps(dy + i), vs);
        const __m256 v1 = _mm256_mul_ps(_mm256_loadu_ps(dy + i + 8), vs);
        _mm256_storeu_ps(dx + i, v0);
        _mm256_storeu_ps(dx + i + 8, v1);
    }
    for (; i + 8 <= hw; i += 8) _mm256_storeu_ps(dx + i, _mm256_mul_ps(_mm256_loadu_ps(dy + i), vs));
    for (; i < hw; i++) dx[i] = dy[i] * scale;
}

EK_TARGET_AVX512 static void bn_back_plane_avx512(int64_t hw, float scale, const float *dy,
                                                  float *dx) {
    const __m512 vs = _mm512_set1_ps(scale);
    int64_t i = 0;
    for (; i + 32 <= hw; i += 32) {
        const __m512 v0 = _mm512_mul_ps(_mm512_loadu_ps(dy + i), vs);
        const __m512 v1 = _mm512_mul_ps(_mm512_loadu_ps(dy + i + 16), vs);
        _mm512_storeu_ps(dx + i, v0);
        _mm512_storeu_ps(dx + i + 16, v1);
    }
    for (; i < hw; i += 16) {
        const __mmask16 m = hw - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (hw - i)) - 1u);
        _mm512_mask_storeu_ps(dx + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, dy + i), vs));
    }
}

ek_status ek_batchnorm_back_f32(const ek_batchnorm_params *p, const float *dy, const float *var,
                                const float *gamma, float *dx) {
    if (p == NULL || dy == NULL || var == NULL || dx == NULL) return EK_ERR_INVALID_ARGUMENT;
    if (p->n < 1 || p->c < 1 || p->hw < 1 || !(p->eps >= 0.0f) || !ek__share_ok(p->ith, p->nth))
        return EK_ERR_INVALID_ARGUMENT;
    const ek_isa isa = ek__isa();
    int64_t b, e;
    ek__share(p->n * p->c, p->ith, p->nth, &b, &e);
    for (int64_t plane = b; plane < e; plane++) {
        const int64_t ch = plane % p->c;
        const float scale = bn_scale(var[ch], p->eps, gamma, ch);
        const float *g = dy + plane * p->hw;
        float *d = dx + plane * p->hw;
        switch (isa) {
        case EK_ISA_AVX512: bn_back_plane_avx512(p->hw, scale, g, d); break;
        case EK_ISA_AVX2: bn_back_plane_avx2(p->hw, scale, g, d); break;
        case EK_ISA_SCALAR: bn_back_plane_scalar(p->hw, scale, g, d); break;
        }
    }
    return EK_OK;
}

// MARK: - Training form (batch statistics)
//
// Per channel c over its M = N*HW elements:
//   mean = Σx / M, var = Σ(x - mean)² / M (biased, two passes), invstd = 1 / sqrt(var + eps)
//   y    = (x - mean) * (invstd * gamma) + beta
//   dx   = gamma * invstd * (dy - Σdy / M - xhat * Σ(dy * xhat) / M),  xhat = (x - mean) * invstd
//   dgamma += Σ(dy * xhat),  dbeta += Σdy
// The channel sums are accumulated in double by one scalar routine shared by every ISA
// (they are not the hot part: one read of the data each); the element-wise passes are
// vectorised and evaluate, per element, exactly the scalar sequence
//   y  = fmaf(x - mean, scale, beta)
//   dx = fmaf(dy, a, fmaf(x - mean, b, c))
// so the SIMD results equal the scalar reference bit for bit.

// Σx over the channel's N planes, in double, 4 interleaved partial sums.
static double channel_sum(const ek_batchnorm_params *p, int64_t ch, const float *x) {
    double acc[4] = {0, 0, 0, 0};
    for (int64_t img = 0; img < p->n; img++) {
        const float *xp = x + (img * p->c + ch) * p->hw;
        int64_t i = 0;
        for (; i + 4 <= p->hw; i += 4)
            for (int j = 0; j < 4; j++) acc[j] += (double)xp[i + j];
        for (; i < p->hw; i++) acc[0] += (double)xp[i];
    }
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

static double channel_sq_dev(const ek_batchnorm_params *p, int64_t ch, const float *x,
                             double mean) {
    double acc[4] = {0, 0, 0, 0};
    for (int64_t img = 0; img < p->n; img++) {
        const float *xp = x + (img * p->c + ch) * p->hw;
        int64_t i = 0;
        for (; i + 4 <= p->hw; i += 4)
            for (int j = 0; j < 4; j++) {
                const double d = (double)xp[i + j] - mean;
                acc[j] += d * d;
            }
        for (; i < p->hw; i++) {
            const double d = (double)xp[i] - mean;
            acc[0] += d * d;
        }
    }
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

// *sum_dy = Σdy, *sum_dy_dev = Σ dy * (x - mean).
static void channel_back_sums(const ek_batchnorm_params *p, int64_t ch, const float *x,
                              const float *dy, double mean, double *sum_dy, double *sum_dy_dev) {
    double a[4] = {0, 0, 0, 0}, b[4] = {0, 0, 0, 0};
    for (int64_t img = 0; img < p->n; img++) {
        const float *xp = x + (img * p->c + ch) * p->hw;
        const float *gp = dy + (img * p->c + ch) * p->hw;
        int64_t i = 0;
        for (; i + 4 <= p->hw; i += 4)
            for (int j = 0; j < 4; j++) {
                a[j] += (double)gp[i + j];
                b[j] += (double)gp[i + j] * ((double)xp[i + j] - mean);
            }
        for (; i < p->hw; i++) {
            a[0] += (double)gp[i];
            b[0] += (double)gp[i] * ((double)xp[i] - mean);
        }
    }
    *sum_dy = (a[0] + a[1]) + (a[2] + a[3]);
    *sum_dy_dev = (b[0] + b[1]) + (b[2] + b[3]);
}

// y = act(fmaf(x - mean, scale, beta))
static void bnt_fwd_scalar(int64_t hw, float mean, float scale, float beta, int relu,
                           const float *x, float *y) {
    for (int64_t i = 0; i < hw; i++) {
        const float v = fmaf(x[i] - mean, scale, beta);
        y[i] = relu ? ek__relu(v) : v;
    }
}

EK_TARGET_AVX2 static void bnt_fwd_avx2(int64_t hw, float mean, float scale, float beta, int relu,
                                        const float *x, float *y) {
    const __m256 vm = _mm256_set1_ps(mean), vs = _mm256_set1_ps(scale), vb = _mm256_set1_ps(beta);
    const __m256 z = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= hw; i += 8) {
        __m256 v = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vs, vb);
        if (relu) v = _mm256_max_ps(z, v);
        _mm256_storeu_ps(y + i, v);
    }
    bnt_fwd_scalar(hw - i, mean, scale, beta, relu, x + i, y + i);
}

EK_TARGET_AVX512 static void bnt_fwd_avx512(int64_t hw, float mean, float scale, float beta,
                                            int relu, const float *x, float *y) {
    const __m512 vm = _mm512_set1_ps(mean), vs = _mm512_set1_ps(scale), vb = _mm512_set1_ps(beta);
    const __m512 z = _mm512_setzero_ps();
    for (int64_t i = 0; i < hw; i += 16) {
        const __mmask16 m = hw - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (hw - i)) - 1u);
        __m512 v = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm), vs, vb);
        if (relu) v = _mm512_max_ps(z, v);
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

// dx = fmaf(dy, a, fmaf(x - mean, b, c))
static void bnt_back_scalar(int64_t hw, float mean, float a, float b, float c, const float *x,
                            const float *dy, float *dx) {
    for (int64_t i = 0; i < hw; i++) dx[i] = fmaf(dy[i], a, fmaf(x[i] - mean, b, c));
}

EK_TARGET_AVX2 static void bnt_back_avx2(int64_t hw, float mean, float a, float b, float c,
                                         const float *x, const float *dy, float *dx) {
    const __m256 vm = _mm256_set1_ps(mean), va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b),
                 vc = _mm256_set1_ps(c);
    int64_t i = 0;
    for (; i + 8 <= hw; i += 8) {
        const __m256 t = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vb, vc);
        _mm256_storeu_ps(dx + i, _mm256_fmadd_ps(_mm256_loadu_ps(dy + i), va, t));
    }
    bnt_back_scalar(hw - i, mean, a, b, c, x + i, dy + i, dx + i);
}

EK_TARGET_AVX512 static void bnt_back_avx512(int64_t hw, float mean, float a, float b, float c,
                                             const float *x, const float *dy, float *dx) {
    const __m512 vm = _mm512_set1_ps(mean), va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b),
                 vc = _mm512_set1_ps(c);
    for (int64_t i = 0; i < hw; i += 16) {
        const __mmask16 m = hw - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (hw - i)) - 1u);
        const __m512 t = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm), vb, vc);
        _mm512_mask_storeu_ps(dx + i, m, _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, dy + i), va, t));
    }
}

static int train_params_ok(const ek_batchnorm_params *p) {
    // ith/nth are ignored (each channel needs all N planes), so they are not checked.
    if (p == NULL || p->n < 1 || p->c < 1 || p->hw < 1 || !(p->eps >= 0.0f)) return 0;
    return p->activation == EK_ACT_NONE || p->activation == EK_ACT_RELU;
}

ek_status ek_batchnorm_train_forward_f32(const ek_batchnorm_params *p, const float *x,
                                         const float *gamma, const float *beta, float *y,
                                         float *mean, float *invstd) {
    if (!train_params_ok(p) || x == NULL || y == NULL || mean == NULL || invstd == NULL)
        return EK_ERR_INVALID_ARGUMENT;
    const int relu = p->activation == EK_ACT_RELU;
    const ek_isa isa = ek__isa();
    const double count = (double)(p->n * p->hw);
    for (int64_t ch = 0; ch < p->c; ch++) {
        // Statistics first: y may alias x.
        const double m = channel_sum(p, ch, x) / count;
        const double v = channel_sq_dev(p, ch, x, m) / count;
        const float mf = (float)m;
        const float is = (float)(1.0 / sqrt(v + (double)p->eps));
        mean[ch] = mf;
        invstd[ch] = is;
        const float scale = is * (gamma ? gamma[ch] : 1.0f);
        const float shift = beta ? beta[ch] : 0.0f;
        for (int64_t img = 0; img < p->n; img++) {
            const float *xp = x + (img * p->c + ch) * p->hw;
            float *yp = y + (img * p->c + ch) * p->hw;
            switch (isa) {
            case EK_ISA_AVX512: bnt_fwd_avx512(p->hw, mf, scale, shift, relu, xp, yp); break;
            case EK_ISA_AVX2: bnt_fwd_avx2(p->hw, mf, scale, shift, relu, xp, yp); break;
            case EK_ISA_SCALAR: bnt_fwd_scalar(p->hw, mf, scale, shift, relu, xp, yp); break;
            }
        }
    }
    return EK_OK;
}

ek_status ek_batchnorm_train_back_f32(const ek_batchnorm_params *p, const float *x,
                                      const float *dy, const float *mean, const float *invstd,
                                      const float *gamma, float *dx, float *dgamma,
                                      float *dbeta) {
    if (!train_params_ok(p) || x == NULL || dy == NULL || mean == NULL || invstd == NULL ||
        dx == NULL)
        return EK_ERR_INVALID_ARGUMENT;
    const ek_isa isa = ek__isa();
    const double count = (double)(p->n * p->hw);
    for (int64_t ch = 0; ch < p->c; ch++) {
        const float mf = mean[ch];
        const double is = (double)invstd[ch];
        const double g = gamma ? (double)gamma[ch] : 1.0;
        double sum_dy, sum_dy_dev;
        channel_back_sums(p, ch, x, dy, (double)mf, &sum_dy, &sum_dy_dev);
        // Σ dy * xhat = invstd * Σ dy * (x - mean)
        const double sum_dy_xhat = is * sum_dy_dev;
        // dx = g*is*dy - g*is*is*(Σdy*xhat / M) * (x - mean) - g*is*(Σdy / M)
        const float a = (float)(g * is);
        const float b = (float)(-g * is * is * (sum_dy_xhat / count));
        const float c = (float)(-g * is * (sum_dy / count));
        for (int64_t img = 0; img < p->n; img++) {
            const int64_t off = (img * p->c + ch) * p->hw;
            switch (isa) {
            case EK_ISA_AVX512: bnt_back_avx512(p->hw, mf, a, b, c, x + off, dy + off, dx + off); break;
            case EK_ISA_AVX2: bnt_back_avx2(p->hw, mf, a, b, c, x + off, dy + off, dx + off); break;
            case EK_ISA_SCALAR: bnt_back_scalar(p->hw, mf, a, b, c, x + off, dy + off, dx + off); break;
            }
        }
        // After dx: the sums were taken before any element was written, so dx may alias dy.
        if (dgamma != NULL) dgamma[ch] = dgamma[ch] + (float)sum_dy_xhat;
        if (dbeta != NULL) dbeta[ch] = dbeta[ch] + (float)sum_dy;
    }
    return EK_OK;
}
