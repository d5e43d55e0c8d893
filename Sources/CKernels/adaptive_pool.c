// Adaptive average / max pooling with PyTorch's bins:
// start = floor(i * H / OH), end = ceil((i + 1) * H / OH).
//
// The global average pool (1x1 output, ResNet's head) sums each plane with vectors, in
// an order the scalar reference shares (see below). Other output sizes use the scalar
// loops (PyTorch's order: rows, then columns).
#include "internal.h"

#include <immintrin.h>
#include <limits.h>
#include <math.h>
#include <string.h>

static inline int64_t bin_start(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
static inline int64_t bin_end(int64_t i, int64_t in, int64_t out) {
    return ((i + 1) * in + out - 1) / out;
}

static int params_ok(const ek_adaptive_pool2d_params *p) {
    return p != NULL && p->n >= 1 && p->c >= 1 && p->h >= 1 && p->w >= 1 && p->out_h >= 1 &&
           p->out_w >= 1 && ek__share_ok(p->ith, p->nth);
}

// MARK: - Plane sums (global average pool)
//
// Every path uses the interleaved order of ek__sum16_finish (internal.h), so the AVX2
// and AVX-512 results are bit-identical to the scalar reference.

static float sum_scalar(const float *x, int64_t n) {
    float acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += x[i + j];
    return ek__sum16_finish(acc, x, i, n);
}

// The halving tree on 8 + 8 lanes: lane j + lane j+8, then the 128-bit halves, then
// lanes 0+2 / 1+3, then 0+1: exactly the scalar tree's additions.
EK_TARGET_AVX2 static inline float tree16_avx2(__m256 lo, __m256 hi) {
    const __m256 t8 = _mm256_add_ps(lo, hi);
    const __m128 t4 = _mm_add_ps(_mm256_castps256_ps128(t8), _mm256_extractf128_ps(t8, 1));
    const __m128 t2 = _mm_add_ps(t4, _mm_movehl_ps(t4, t4));
    return _mm_cvtss_f32(_mm_add_ss(t2, _mm_movehdup_ps(t2)));
}

EK_TARGET_AVX2 static float sum_avx2(const float *x, int64_t n) {
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        lo = _mm256_add_ps(lo, _mm256_loadu_ps(x + i));
        hi = _mm256_add_ps(hi, _mm256_loadu_ps(x + i + 8));
    }
    if (i < n) {
        // Tail lanes are added; the others keep their value exactly (blend, not + 0,
        // which would turn -0 into +0).
        const int64_t r = n - i;
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i m_lo = _mm256_cmpgt_epi32(_mm256_set1_epi32((int32_t)r), lane);
        const __m256i m_hi = _mm256_cmpgt_epi32(_mm256_set1_epi32((int32_t)r - 8), lane);
        lo = _mm256_blendv_ps(lo, _mm256_add_ps(lo, _mm256_maskload_ps(x + i, m_lo)), _mm256_castsi256_ps(m_lo));
        hi = _mm256_blendv_ps(hi, _mm256_add_ps(hi, _mm256_maskload_ps(x + i + 8, m_hi)), _mm256_castsi256_ps(m_hi));
    }
    return tree16_avx2(lo, hi);
}

EK_TARGET_AVX512 static float sum_avx512(const float *x, int64_t n) {
    __m512 s = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) s = _mm512_add_ps(s, _mm512_loadu_ps(x + i));
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        s = _mm512_mask_add_ps(s, m, s, _mm512_maskz_loadu_ps(m, x + i));
    }
    return tree16_avx2(_mm512_castps512_ps256(s), _mm512_extractf32x8_ps(s, 1));
}

float ek__sum_f32(const float *x, int64_t n) {
    switch (ek__isa()) {
    case EK_ISA_AVX512: return sum_avx512(x, n);
    case EK_ISA_AVX2: return sum_avx2(x, n);
    case EK_ISA_SCALAR: break;
    }
    return sum_scalar(x, n);
}

// MARK: - Entry points

ek_status ek_adaptive_avgpool2d_f32(const ek_adaptive_pool2d_params *p, const float *x, float *y) {
    if (!params_ok(p) || x == NULL || y == NULL) return EK_ERR_INVALID_ARGUMENT;
    const int64_t hw = p->h * p->w, ohw = p->out_h * p->out_w;
    int64_t b, e;
    ek__share(p->n * p->c, p->ith, p->nth, &b, &e);
    if (p->out_h == 1 && p->out_w == 1) {
        const ek_isa isa = ek__isa();
        const float count = (float)hw;
        for (int64_t plane = b; plane < e; plane++) {
            const float *xp = x + plane * hw;
            float s;
            switch (isa) {
            case EK_ISA_AVX512: s = sum_avx512(xp, hw); break;
            case EK_ISA_AVX2: s = sum_avx2(xp, hw); break;
            default: s = sum_scalar(xp, hw); break;
            }
            y[plane] = s / count;
        }
        return EK_OK;
    }
    for (int64_t plane = b; plane < e; plane++) {
        const float *xp = x + plane * hw;
        float *yp = y + plane * ohw;
        for (int64_t oh = 0; oh < p->out_h; oh++) {
            const int64_t hs = bin_start(oh, p->h, p->out_h), he = bin_end(oh, p->h, p->out_h);
            for (int64_t ow = 0; ow < p->out_w; ow++) {
                const int64_t ws = bin_start(ow, p->w, p->out_w), we = bin_end(ow, p->w, p->out_w);
                float s = 0.0f;
                for (int64_t ih = hs; ih < he; ih++)
                    for (int64_t iw = ws; iw < we; iw++) s += xp[ih * p->w + iw];
                yp[oh * p->out_w + ow] = s / (float)((he - hs) * (we - ws));
            }
        }
    }
    return EK_OK;
}

// Scalar for every level: the first maximum wins and NaN propagates (PyTorch's rule),
// which fixes the visiting order.
ek_status ek_adaptive_maxpool2d_f32(const ek_adaptive_pool2d_params *p, const float *x, float *y,
                                    int32_t *argmax) {
    if (!params_ok(p) || x == NULL || y == NULL) return EK_ERR_INVALID_ARGUMENT;
    const int64_t hw = p->h * p->w, ohw = p->out_h * p->out_w;
    if (argmax != NULL && hw > INT32_MAX) return EK_ERR_INVALID_ARGUMENT;
    int64_t b, e;
    ek__share(p->n * p->c, p->ith, p->nth, &b, &e);
    for (int64_t plane = b; plane < e; plane++) {
        const float *xp = x + plane * hw;
        float *yp = y + plane * ohw;
        int32_t *ap = argmax ? argmax + plane * ohw : NULL;
        for (int64_t oh = 0; oh < p->out_h; oh++) {
            const int64_t hs = bin_start(oh, p->h, p->out_h), he = bin_end(oh, p->h, p->out_h);
            for (int64_t ow = 0; ow < p->out_w; ow++) {
                const int64_t ws = bin_start(ow, p->w, p->out_w), we = bin_end(ow, p->w, p->out_w);
                float mv = -INFINITY;
                int64_t mi = hs * p->w + ws;
                for (int64_t ih = hs; ih < he; ih++) {
                    for (int64_t iw = ws; iw < we; iw++) {
                        const float v = xp[ih * p->w + iw];
                        if (v > mv || isnan(v)) {
                            mv = v;
                            mi = ih * p->w + iw;
                        }
                    }
                }
                yp[oh * p->out_w + ow] = mv;
                if (ap) ap[oh * p->out_w + ow] = (int32_t)mi;
            }
        }
    }
    return EK_OK;
}

// MARK: - Backward
//
// dx = 0, then each output gradient is ADDED to its bin: dy / bin size to every element
// (average; the global pool writes dy / HW across the plane) or dy to the argmax
// (max). Bins overlap when the input is not a multiple of the output, so contributions
// sum. Scalar on every level (not a hot loop: ResNet's head pool is 512 planes of 49).

ek_status ek_adaptive_avgpool2d_back_f32(const ek_adaptive_pool2d_params *p, const float *dy,
                                         float *dx) {
    if (!params_ok(p) || dy == NULL || dx == NULL) return EK_ERR_INVALID_ARGUMENT;
    const int64_t hw = p->h * p->w, ohw = p->out_h * p->out_w;
    int64_t b, e;
    ek__share(p->n * p->c, p->ith, p->nth, &b, &e);
    for (int64_t plane = b; plane < e; plane++) {
        const float *dyp = dy + plane * ohw;
        float *dxp = dx + plane * hw;
        if (ohw == 1) {
            const float v = dyp[0] / (float)hw;
            for (int64_t i = 0; i < hw; i++) dxp[i] = v;
            continue;
        }
        memset(dxp, 0, (size_t)hw * sizeof(float));
        for (int64_t oh = 0; oh < p->out_h; oh++) {
            const int64_t hs = bin_start(oh, p->h, p->out_h), he = bin_end(oh, p->h, p->out_h);
            for (int64_t ow = 0; ow < p->out_w; ow++) {
                const int64_t ws = bin_start(ow, p->w, p->out_w), we = bin_end(ow, p->w, p->out_w);
                const float v = dyp[oh * p->out_w + ow] / (float)((he - hs) * (we - ws));
                for (int64_t ih = hs; ih < he; ih++)
                    for (int64_t iw = ws; iw < we; iw++) dxp[ih * p->w + iw] = dxp[ih * p->w + iw] + v;
            }
        }
    }
    return EK_OK;
}

ek_status ek_adaptive_maxpool2d_back_f32(const ek_adaptive_pool2d_params *p, const float *dy,
                                         const int32_t *argmax, float *dx) {
    if (!params_ok(p) || dy == NULL || argmax == NULL || dx == NULL) return EK_ERR_INVALID_ARGUMENT;
    const int64_t hw = p->h * p->w, ohw = p->out_h * p->out_w;
    int64_t b, e;
    ek__share(p->n * p->c, p->ith, p->nth, &b, &e);
    // An index outside the plane would write outside dx: checked before anything is written.
    for (int64_t i = b * ohw; i < e * ohw; i++)
        if (argmax[i] < -1 || argmax[i] >= hw) return EK_ERR_INVALID_ARGUMENT;
    for (int64_t plane = b; plane < e; plane++) {
        const float *dyp = dy + plane * ohw;
        const int32_t *ap = argmax + plane * ohw;
        float *dxp = dx + plane * hw;
        memset(dxp, 0, (size_t)hw * sizeof(float));
        for (int64_t o = 0; o < ohw; o++)
            if (ap[o] >= 0) dxp[ap[o]] = dxp[ap[o]] + dyp[o];
    }
    return EK_OK;
}
