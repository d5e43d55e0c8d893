// Max and average 2-D pooling with PyTorch's semantics.
//
// Each output plane is processed row by row. Output columns whose whole window lies
// inside the input horizontally ("interior" columns) are computed 8 or 16 at a time,
// one lane per output column, visiting the window taps in the same order as the scalar
// reference; border columns use the scalar code. Every lane therefore performs exactly
// the scalar sequence of operations, and the SIMD paths are bit-identical to the scalar
// reference (values and argmax indices).
//
// Max pool: padding is -inf; a tap replaces the running maximum when it is greater or
// NaN (PyTorch's rule: the first maximum wins, NaN propagates). A window that covers only
// padding yields -inf and argmax -1. Average pool: the sum of
// the real taps (padding is zero) divided by the window size clipped to the padded
// input (count_include_pad) or to the real input.
#include "internal.h"

#include <immintrin.h>
#include <limits.h>
#include <math.h>
#include <string.h>

typedef struct pgeom {
    int64_t h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw;
    int cip;
} pgeom;

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

// PyTorch's pooling_output_shape.
static int64_t pool_out(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dil, int ceil_mode) {
    int64_t out = floor_div(in + 2 * pad - dil * (k - 1) - 1 + (ceil_mode ? stride - 1 : 0), stride) + 1;
    if (ceil_mode && (out - 1) * stride >= in + pad) out--;
    return out;
}

ek_status ek_pool2d_output_size(const ek_pool2d_params *p, int64_t *out_h, int64_t *out_w) {
    if (p == NULL || out_h == NULL || out_w == NULL) return EK_ERR_INVALID_ARGUMENT;
    if (p->n < 1 || p->c < 1 || p->h < 1 || p->w < 1 || p->kh < 1 || p->kw < 1)
        return EK_ERR_INVALID_ARGUMENT;
    if (p->stride_h < 1 || p->stride_w < 1 || p->dilation_h < 1 || p->dilation_w < 1)
        return EK_ERR_INVALID_ARGUMENT;
    // PyTorch: "pad should be at most half of kernel size".
    if (p->pad_h < 0 || p->pad_w < 0 || p->pad_h > p->kh / 2 || p->pad_w > p->kw / 2)
        return EK_ERR_INVALID_ARGUMENT;
    const int64_t oh = pool_out(p->h, p->kh, p->pad_h, p->stride_h, p->dilation_h, p->ceil_mode != 0);
    const int64_t ow = pool_out(p->w, p->kw, p->pad_w, p->stride_w, p->dilation_w, p->ceil_mode != 0);
    if (oh < 1 || ow < 1) return EK_ERR_INVALID_ARGUMENT;
    *out_h = oh;
    *out_w = ow;
    return EK_OK;
}

static pgeom make_pgeom(const ek_pool2d_params *p, int64_t oh, int64_t ow) {
    pgeom g = {p->h, p->w, oh, ow, p->kh, p->kw, p->stride_h, p->stride_w, p->pad_h, p->pad_w,
               p->dilation_h, p->dilation_w, p->count_include_pad != 0};
    return g;
}

// Output columns [*a, *b) whose taps ws + j*dw (j < kw) all lie in [0, W).
static void interior_cols(const pgeom *g, int64_t *a, int64_t *b) {
    int64_t lo = (g->pw + g->sw - 1) / g->sw;
    const int64_t num = g->w - 1 + g->pw - (g->kw - 1) * g->dw;
    int64_t hi = num < 0 ? 0 : num / g->sw + 1;
    if (hi > g->ow) hi = g->ow;
    if (lo > hi) lo = hi;
    *a = lo;
    *b = hi;
}

// Rows of the window for output row oh, clipped to the input and moved onto the
// dilation grid: ih = *hs, *hs + dh, ... < *he.
static void max_rows(const pgeom *g, int64_t oh, int64_t *hs, int64_t *he) {
    int64_t s = oh * g->sh - g->ph;
    *he = ek__min64(s + (g->kh - 1) * g->dh + 1, g->h);
    if (s < 0) s += ((-s + g->dh - 1) / g->dh) * g->dh;
    *hs = s;
}

// MARK: - Scalar reference

static void max_elem(const pgeom *g, const float *xp, int64_t hs, int64_t he, int64_t ow,
                     float *yv, int32_t *ai) {
    int64_t ws = ow * g->sw - g->pw;
    const int64_t we = ek__min64(ws + (g->kw - 1) * g->dw + 1, g->w);
    if (ws < 0) ws += ((-ws + g->dw - 1) / g->dw) * g->dw;
    float mv = -INFINITY;
    // A window over padding only (possible with dilation or ceil_mode) has no input
    // element to point at: -1, where PyTorch would report an index past the plane.
    int64_t mi = (hs < he && ws < we) ? hs * g->w + ws : -1;
    for (int64_t ih = hs; ih < he; ih += g->dh) {
        for (int64_t iw = ws; iw < we; iw += g->dw) {
            // Branch-free select: the comparison is unpredictable on real data.
            const float v = xp[ih * g->w + iw];
            const int upd = (v > mv) | (v != v);
            mv = upd ? v : mv;
            mi = upd ? ih * g->w + iw : mi;
        }
    }
    *yv = mv;
    if (ai) *ai = (int32_t)mi;
}

static void maxpool_plane_scalar(const pgeom *g, const float *xp, float *yp, int32_t *ap) {
    for (int64_t oh = 0; oh < g->oh; oh++) {
        int64_t hs, he;
        max_rows(g, oh, &hs, &he);
        for (int64_t ow = 0; ow < g->ow; ow++)
            max_elem(g, xp, hs, he, ow, yp + oh * g->ow + ow, ap ? ap + oh * g->ow + ow : NULL);
    }
}

// Average pool rows for output row oh: real rows [*hs, *he) and the padded window height.
static void avg_rows(const pgeom *g, int64_t oh, int64_t *hs, int64_t *he, int64_t *hpool) {
    const int64_t s = oh * g->sh - g->ph;
    const int64_t e = ek__min64(s + g->kh, g->h + g->ph);
    *hpool = e - s;
    *hs = ek__max64(s, 0);
    *he = ek__min64(e, g->h);
}

static float avg_elem(const pgeom *g, const float *xp, int64_t hs, int64_t he, int64_t hpool,
                      int64_t ow) {
    const int64_t s = ow * g->sw - g->pw;
    const int64_t e = ek__min64(s + g->kw, g->w + g->pw);
    const int64_t wpool = e - s;
    const int64_t ws = ek__max64(s, 0), we = ek__min64(e, g->w);
    if (hs >= he || ws >= we) return 0.0f;
    const int64_t divisor = g->cip ? hpool * wpool : (he - hs) * (we - ws);
    float sum = 0.0f;
    for (int64_t ih = hs; ih < he; ih++)
        for (int64_t iw = ws; iw < we; iw++) sum += xp[ih * g->w + iw];
    return sum / (float)divisor;
}

static void avgpool_plane_scalar(const pgeom *g, const float *xp, float *yp) {
    for (int64_t oh = 0; oh < g->oh; oh++) {
        int64_t hs, he, hpool;
        avg_rows(g, oh, &hs, &he, &hpool);
        for (int64_t ow = 0; ow < g->ow; ow++) yp[oh * g->ow + ow] = avg_elem(g, xp, hs, he, hpool, ow);
    }
}

// MARK: - AVX2 (8 output columns per vector; interior tails use the scalar code)

// 8 floats p[0], p[sw], ..., p[7*sw], all inside the input.
EK_TARGET_AVX2 static inline __m256 load8_strided(const float *p, int64_t sw, __m256i lane_off) {
    if (sw == 1) return _mm256_loadu_ps(p);
    if (sw == 2) {
        const __m256i seven = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, -1, 0);
        __m256 a = _mm256_loadu_ps(p);
        __m256 b = _mm256_maskload_ps(p + 8, seven);  // never touches p[15]
        __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
        return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
    }
    return _mm256_i32gather_ps(p, lane_off, 4);
}

EK_TARGET_AVX2 static void maxpool_plane_avx2(const pgeom *g, const float *xp, float *yp, int32_t *ap) {
    int64_t a, b;
    interior_cols(g, &a, &b);
    const __m256i lane_off = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                                _mm256_set1_epi32((int32_t)g->sw));
    const __m256 neg_inf = _mm256_set1_ps(-INFINITY);
    for (int64_t oh = 0; oh < g->oh; oh++) {
        int64_t hs, he;
        max_rows(g, oh, &hs, &he);
        float *yr = yp + oh * g->ow;
        int32_t *ar = ap ? ap + oh * g->ow : NULL;
        if (hs >= he) {  // the window rows hold only padding
            for (int64_t ow = 0; ow < g->ow; ow++) max_elem(g, xp, hs, he, ow, yr + ow, ar ? ar + ow : NULL);
            continue;
        }
        int64_t ow = 0;
        for (; ow < a; ow++) max_elem(g, xp, hs, he, ow, yr + ow, ar ? ar + ow : NULL);
        // The last vector is moved back to end at b (overlapping outputs are simply
        // computed twice, identically) so the interior needs no scalar tail.
        for (; ow < b && b - a >= 8; ow += 8) {
            if (ow + 8 > b) ow = b - 8;
            const int64_t ws = ow * g->sw - g->pw;
            __m256 mv = neg_inf;
            __m256i mi = _mm256_add_epi32(_mm256_set1_epi32((int32_t)(hs * g->w + ws)), lane_off);
            for (int64_t ih = hs; ih < he; ih += g->dh) {
                const float *row = xp + ih * g->w + ws;
                for (int64_t kj = 0; kj < g->kw; kj++) {
                    const __m256 v = load8_strided(row + kj * g->dw, g->sw, lane_off);
                    const __m256 upd = _mm256_or_ps(_mm256_cmp_ps(v, mv, _CMP_GT_OQ),
                                                    _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
                    mv = _mm256_blendv_ps(mv, v, upd);
                    if (ar) {
                        const __m256i idx = _mm256_add_epi32(
                            _mm256_set1_epi32((int32_t)(ih * g->w + ws + kj * g->dw)), lane_off);
                        mi = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(mi),
                                                                  _mm256_castsi256_ps(idx), upd));
                    }
                }
            }
            _mm256_storeu_ps(yr + ow, mv);
            if (ar) _mm256_storeu_si256((__m256i *)(ar + ow), mi);
        }
        for (; ow < g->ow; ow++) max_elem(g, xp, hs, he, ow, yr + ow, ar ? ar + ow : NULL);
    }
}

EK_TARGET_AVX2 static void avgpool_plane_avx2(const pgeom *g, const float *xp, float *yp) {
    int64_t a, b;
    interior_cols(g, &a, &b);
    const __m256i lane_off = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                                _mm256_set1_epi32((int32_t)g->sw));
    for (int64_t oh = 0; oh < g->oh; oh++) {
        int64_t hs, he, hpool;
        avg_rows(g, oh, &hs, &he, &hpool);
        float *yr = yp + oh * g->ow;
        int64_t ow = 0;
        if (hs < he) {
            for (; ow < a; ow++) yr[ow] = avg_elem(g, xp, hs, he, hpool, ow);
            const int64_t divisor = g->cip ? hpool * g->kw : (he - hs) * g->kw;
            const __m256 vdiv = _mm256_set1_ps((float)divisor);
            for (; ow < b && b - a >= 8; ow += 8) {
                if (ow + 8 > b) ow = b - 8;  // overlapping last vector, as in the max pool
                const int64_t ws = ow * g->sw - g->pw;
                __m256 sum = _mm256_setzero_ps();
                for (int64_t ih = hs; ih < he; ih++) {
                    const float *row = xp + ih * g->w + ws;
                    for (int64_t kj = 0; kj < g->kw; kj++)
                        sum = _mm256_add_ps(sum, load8_strided(row + kj, g->sw, lane_off));
                }
                _mm256_storeu_ps(yr + ow, _mm256_div_ps(sum, vdiv));
            }
        }
        for (; ow < g->ow; ow++) yr[ow] = avg_elem(g, xp, hs, he, hpool, ow);
    }
}

// MARK: - AVX-512 (16 output columns per vector, masked tail)

// Lanes i < n (mask m) receive p[i * sw]; only those addresses are read.
EK_TARGET_AVX512 static inline __m512 load16_strided(const float *p, int64_t sw, int64_t n,
                                                     __mmask16 m, __m512i lane_off) {
    if (sw == 1) return _mm512_maskz_loadu_ps(m, p);
    if (sw == 2) {
        const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        const int64_t need = 2 * n - 1;
        const __mmask16 m_lo = need >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << need) - 1u);
        const __mmask16 m_hi = need > 16 ? (__mmask16)((1u << (need - 16)) - 1u) : (__mmask16)0;
        return _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(m_lo, p), even,
                                      _mm512_maskz_loadu_ps(m_hi, p + 16));
    }
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, lane_off, p, 4);
}

EK_TARGET_AVX512 static void maxpool_plane_avx512(const pgeom *g, const float *xp, float *yp,
                                                  int32_t *ap) {
    int64_t a, b;
    interior_cols(g, &a, &b);
    const __m512i lane_off = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32((int32_t)g->sw));
    const __m512 neg_inf = _mm512_set1_ps(-INFINITY);
    for (int64_t oh = 0; oh < g->oh; oh++) {
        int64_t hs, he;
        max_rows(g, oh, &hs, &he);
        float *yr = yp + oh * g->ow;
        int32_t *ar = ap ? ap + oh * g->ow : NULL;
        if (hs >= he) {  // the window rows hold only padding
            for (int64_t ow = 0; ow < g->ow; ow++) max_elem(g, xp, hs, he, ow, yr + ow, ar ? ar + ow : NULL);
            continue;
        }
        int64_t ow = 0;
        for (; ow < a; ow++) max_elem(g, xp, hs, he, ow, yr + ow, ar ? ar + ow : NULL);
        for (; ow < b; ow += 16) {
            const int64_t n = b - ow < 16 ? b - ow : 16;
            const __mmask16 m = (__mmask16)((1u << n) - 1u);
            const int64_t ws = ow * g->sw - g->pw;
            __m512 mv = neg_inf;
            __m512i mi = _mm512_add_epi32(_mm512_set1_epi32((int32_t)(hs * g->w + ws)), lane_off);
            for (int64_t ih = hs; ih < he; ih += g->dh) {
                const float *row = xp + ih * g->w + ws;
                for (int64_t kj = 0; kj < g->kw; kj++) {
                    const __m512 v = load16_strided(row + kj * g->dw, g->sw, n, m, lane_off);
                    const __mmask16 upd = _mm512_cmp_ps_mask(v, mv, _CMP_GT_OQ) |
                                          _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
                    mv = _mm512_mask_blend_ps(upd, mv, v);
                    if (ar)
                        mi = _mm512_mask_add_epi32(
                            mi, upd, _mm512_set1_epi32((int32_t)(ih * g->w + ws + kj * g->dw)), lane_off);
                }
            }
            _mm512_mask_storeu_ps(yr + ow, m, mv);
            if (ar) _mm512_mask_storeu_epi32(ar + ow, m, mi);
        }
        for (ow = b > a ? b : a; ow < g->ow; ow++)
            max_elem(g, xp, hs, he, ow, yr + ow, ar ? ar + ow : NULL);
    }
}

EK_TARGET_AVX512 static void avgpool_plane_avx512(const pgeom *g, const float *xp, float *yp) {
    int64_t a, b;
    interior_cols(g, &a, &b);
    const __m512i lane_off = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32((int32_t)g->sw));
    for (int64_t oh = 0; oh < g->oh; oh++) {
        int64_t hs, he, hpool;
        avg_rows(g, oh, &hs, &he, &hpool);
        float *yr = yp + oh * g->ow;
        if (hs >= he) {  // the window holds only padding: PyTorch writes 0
            for (int64_t ow = 0; ow < g->ow; ow++) yr[ow] = 0.0f;
            continue;
        }
        for (int64_t ow = 0; ow < a; ow++) yr[ow] = avg_elem(g, xp, hs, he, hpool, ow);
        const int64_t divisor = g->cip ? hpool * g->kw : (he - hs) * g->kw;
        const __m512 vdiv = _mm512_set1_ps((float)divisor);
        for (int64_t ow = a; ow < b; ow += 16) {
            const int64_t n = b - ow < 16 ? b - ow : 16;
            const __mmask16 m = (__mmask16)((1u << n) - 1u);
            const int64_t ws = ow * g->sw - g->pw;
            __m512 sum = _mm512_setzero_ps();
            for (int64_t ih = hs; ih < he; ih++) {
                const float *row = xp + ih * g->w + ws;
                for (int64_t kj = 0; kj < g->kw; kj++)
                    sum = _mm512_add_ps(sum, load16_strided(row + kj, g->sw, n, m, lane_off));
            }
            _mm512_mask_storeu_ps(yr + ow, m, _mm512_div_ps(sum, vdiv));
        }
        for (int64_t ow = b > a ? b : a; ow < g->ow; ow++) yr[ow] = avg_elem(g, xp, hs, he, hpool, ow);
    }
}

// MARK: - Entry points

ek_status ek_maxpool2d_f32(const ek_pool2d_params *p, const float *x, float *y, int32_t *argmax) {
    int64_t oh, ow;
    if (x == NULL || y == NULL || ek_pool2d_output_size(p, &oh, &ow) != EK_OK ||
        !ek__share_ok(p->ith, p->nth))
        return EK_ERR_INVALID_ARGUMENT;
    if (argmax != NULL && p->h * p->w > INT32_MAX) return EK_ERR_INVALID_ARGUMENT;
    const pgeom g = make_pgeom(p, oh, ow);
    const ek_isa isa = ek__isa();
    int64_t b, e;
    ek__share(p->n * p->c, p->ith, p->nth, &b, &e);
    for (int64_t plane = b; plane < e; plane++) {
        const float *xp = x + plane * p->h * p->w;
        float *yp = y + plane * oh * ow;
        int32_t *ap = argmax ? argmax + plane * oh * ow : NULL;
        switch (isa) {
        case EK_ISA_AVX512: maxpool_plane_avx512(&g, xp, yp, ap); break;
        case EK_ISA_AVX2: maxpool_plane_avx2(&g, xp, yp, ap); break;
        case EK_ISA_SCALAR: maxpool_plane_scalar(&g, xp, yp, ap); break;
        }
    }
    return EK_OK;
}

ek_status ek_avgpool2d_f32(const ek_pool2d_params *p, const float *x, float *y) {
    int64_t oh, ow;
    if (x == NULL || y == NULL || ek_pool2d_output_size(p, &oh, &ow) != EK_OK ||
        !ek__share_ok(p->ith, p->nth))
        return EK_ERR_INVALID_ARGUMENT;
    if (p->dilation_h != 1 || p->dilation_w != 1) return EK_ERR_INVALID_ARGUMENT;
    const pgeom g = make_pgeom(p, oh, ow);
    const ek_isa isa = ek__isa();
    int64_t b, e;
    ek__share(p->n * p->c, p->ith, p->nth, &b, &e);
    for (int64_t plane = b; plane < e; plane++) {
        const float *xp = x + plane * p->h * p->w;
        float *yp = y + plane * oh * ow;
        switch (isa) {
        case EK_ISA_AVX512: avgpool_plane_avx512(&g, xp, yp); break;
        case EK_ISA_AVX2: avgpool_plane_avx2(&g, xp, yp); break;
        case EK_ISA_SCALAR: avgpool_plane_scalar(&g, xp, yp); break;
        }
    }
    return EK_OK;
}

// MARK: - Backward
//
// Both kernels zero their planes and then ADD each output gradient to the input elements
// it came from, so overlapping windows sum. Work is split over the N*C planes.
//
// Max pool: dy[o] goes to argmax[o] (the forward's flat index h*W + w; -1 routes
// nowhere), in output order. A scatter through an index: scalar on every level.
//
// Average pool: dy[o] / divisor goes to every real element of window o, with the divisor
// of the forward (avg_rows / avg_elem: count_include_pad, ceil_mode clipping). The plane
// is walked like the forward: per output row, the border columns element by element, then
// the interior columns [a, b) tap by tap, dx[ih, ow*sw - pw + kj] += dy[ow] / divisor for
// ow in [a, b): a contiguous (stride 1) or strided row update that the SIMD paths do 8 or
// 16 output columns at a time. Every path performs the same divisions and additions in
// the same order (a vector holds distinct columns), so the results are bit-identical.

// dst[i * stride] += src[i] / div, i < n. A full vector access of dst may cover elements
// between the ones written (stored back unchanged) but never reaches `limit`.
typedef void (*avg_scatter_fn)(float *dst, const float *src, int64_t n, int64_t stride,
                               float div, const float *limit);

static void avg_scatter_scalar(float *dst, const float *src, int64_t n, int64_t stride,
                               float div, const float *limit) {
    (void)limit;
    for (int64_t i = 0; i < n; i++) dst[i * stride] = dst[i * stride] + src[i] / div;
}

EK_TARGET_AVX2 static void avg_scatter_avx2(float *dst, const float *src, int64_t n,
                                            int64_t stride, float div, const float *limit) {
    const __m256 vd = _mm256_set1_ps(div);
    int64_t i = 0;
    if (stride == 1) {
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(dst + i, _mm256_add_ps(_mm256_loadu_ps(dst + i),
                                                    _mm256_div_ps(_mm256_loadu_ps(src + i), vd)));
    } else if (stride == 2) {
        // As in col2im: dst[0..15] loaded, the even lanes updated, the odd ones kept.
        const __m256i spread_lo = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
        const __m256i spread_hi = _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7);
        for (; i + 8 <= n && dst + 2 * i + 16 <= limit; i += 8) {
            float *d = dst + 2 * i;
            const __m256 s = _mm256_div_ps(_mm256_loadu_ps(src + i), vd);
            const __m256 a = _mm256_loadu_ps(d), b = _mm256_loadu_ps(d + 8);
            _mm256_storeu_ps(d, _mm256_blend_ps(a, _mm256_add_ps(a, _mm256_permutevar8x32_ps(s, spread_lo)), 0x55));
            _mm256_storeu_ps(d + 8, _mm256_blend_ps(b, _mm256_add_ps(b, _mm256_permutevar8x32_ps(s, spread_hi)), 0x55));
        }
    }
    for (; i < n; i++) dst[i * stride] = dst[i * stride] + src[i] / div;
}

EK_TARGET_AVX512 static void avg_scatter_avx512(float *dst, const float *src, int64_t n,
                                                int64_t stride, float div, const float *limit) {
    (void)limit;
    const __m512 vd = _mm512_set1_ps(div);
    if (stride == 1) {
        for (int64_t i = 0; i < n; i += 16) {
            const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
            const __m512 s = _mm512_div_ps(_mm512_maskz_loadu_ps(m, src + i), vd);
            _mm512_mask_storeu_ps(dst + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst + i), s));
        }
        return;
    }
    if (stride == 2) {
        const __m512i spread_lo = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
        const __m512i spread_hi = _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
        for (int64_t i = 0; i < n; i += 16) {
            const int64_t left = n - i < 16 ? n - i : 16;
            const uint32_t lo_n = left < 8 ? (uint32_t)left : 8u;
            const uint32_t hi_n = left > 8 ? (uint32_t)(left - 8) : 0u;
            const __mmask16 m_lo = (__mmask16)(0x5555u & ((1u << (2 * lo_n)) - 1u));
            const __mmask16 m_hi = (__mmask16)(0x5555u & ((1u << (2 * hi_n)) - 1u));
            float *d = dst + 2 * i;
            // Masked-off source lanes are 0 / div = 0 and never stored.
            const __m512 s = _mm512_div_ps(_mm512_maskz_loadu_ps((__mmask16)((1u << left) - 1u), src + i), vd);
            _mm512_mask_storeu_ps(d, m_lo, _mm512_add_ps(_mm512_maskz_loadu_ps(m_lo, d), _mm512_permutexvar_ps(spread_lo, s)));
            _mm512_mask_storeu_ps(d + 16, m_hi, _mm512_add_ps(_mm512_maskz_loadu_ps(m_hi, d + 16), _mm512_permutexvar_ps(spread_hi, s)));
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) dst[i * stride] = dst[i * stride] + src[i] / div;
}

// One border output column: avg_elem's window and divisor, in its order.
static void avg_back_elem(const pgeom *g, float *dxp, int64_t hs, int64_t he, int64_t hpool,
                          int64_t ow, float dyv) {
    const int64_t s = ow * g->sw - g->pw;
    const int64_t e = ek__min64(s + g->kw, g->w + g->pw);
    const int64_t wpool = e - s;
    const int64_t ws = ek__max64(s, 0), we = ek__min64(e, g->w);
    if (hs >= he || ws >= we) return;
    const int64_t divisor = g->cip ? hpool * wpool : (he - hs) * (we - ws);
    const float v = dyv / (float)divisor;
    for (int64_t ih = hs; ih < he; ih++)
        for (int64_t iw = ws; iw < we; iw++) dxp[ih * g->w + iw] = dxp[ih * g->w + iw] + v;
}

static inline __attribute__((always_inline)) void
avgpool_back_plane_body(const pgeom *g, const float *dyp, float *dxp, avg_scatter_fn scatter) {
    memset(dxp, 0, (size_t)(g->h * g->w) * sizeof(float));
    const float *limit = dxp + g->h * g->w;
    int64_t a, b;
    interior_cols(g, &a, &b);
    for (int64_t oh = 0; oh < g->oh; oh++) {
        int64_t hs, he, hpool;
        avg_rows(g, oh, &hs, &he, &hpool);
        if (hs >= he) continue;  // the window rows hold only padding: no gradient
        const float *dyr = dyp + oh * g->ow;
        for (int64_t ow = 0; ow < a; ow++) avg_back_elem(g, dxp, hs, he, hpool, ow, dyr[ow]);
        if (a < b) {
            const float div = (float)(g->cip ? hpool * g->kw : (he - hs) * g->kw);
            for (int64_t ih = hs; ih < he; ih++)
                for (int64_t kj = 0; kj < g->kw; kj++)
                    scatter(dxp + ih * g->w + a * g->sw - g->pw + kj, dyr + a, b - a, g->sw, div, limit);
        }
        for (int64_t ow = b; ow < g->ow; ow++) avg_back_elem(g, dxp, hs, he, hpool, ow, dyr[ow]);
    }
}

static void avgpool_back_plane_scalar(const pgeom *g, const float *dyp, float *dxp) {
    avgpool_back_plane_body(g, dyp, dxp, avg_scatter_scalar);
}
EK_TARGET_AVX2 static void avgpool_back_plane_avx2(const pgeom *g, const float *dyp, float *dxp) {
    avgpool_back_plane_body(g, dyp, dxp, avg_scatter_avx2);
}
EK_TARGET_AVX512 static void avgpool_back_plane_avx512(const pgeom *g, const float *dyp, float *dxp) {
    avgpool_back_plane_body(g, dyp, dxp, avg_scatter_avx512);
}

ek_status ek_maxpool2d_back_f32(const ek_pool2d_params *p, const float *dy, const int32_t *argmax,
                                float *dx) {
    int64_t oh, ow;
    if (dy == NULL || argmax == NULL || dx == NULL || ek_pool2d_output_size(p, &oh, &ow) != EK_OK ||
        !ek__share_ok(p->ith, p->nth))
        return EK_ERR_INVALID_ARGUMENT;
    const int64_t hw = p->h * p->w, ohw = oh * ow;
    int64_t b, e;
    ek__share(p->n * p->c, p->ith, p->nth, &b, &e);
    // An index outside the plane would write outside dx: checked before anything is written.
    for (int64_t i = b * ohw; i < e * ohw; i++)
        if (argmax[i] < -1 || argmax[i] >= hw) return EK_ERR_INVALID_ARGUMENT;
    for (int64_t plane = b; plane < e; plane++) {
        float *dxp = dx + plane * hw;
        const float *dyp = dy + plane * ohw;
        const int32_t *ap = argmax + plane * ohw;
        memset(dxp, 0, (size_t)hw * sizeof(float));
        for (int64_t o = 0; o < ohw; o++)
            if (ap[o] >= 0) dxp[ap[o]] = dxp[ap[o]] + dyp[o];
    }
    return EK_OK;
}

ek_status ek_avgpool2d_back_f32(const ek_pool2d_params *p, const float *dy, float *dx) {
    int64_t oh, ow;
    if (dy == NULL || dx == NULL || ek_pool2d_output_size(p, &oh, &ow) != EK_OK ||
        !ek__share_ok(p->ith, p->nth))
        return EK_ERR_INVALID_ARGUMENT;
    if (p->dilation_h != 1 || p->dilation_w != 1) return EK_ERR_INVALID_ARGUMENT;
    const pgeom g = make_pgeom(p, oh, ow);
    const ek_isa isa = ek__isa();
    int64_t b, e;
    ek__share(p->n * p->c, p->ith, p->nth, &b, &e);
    for (int64_t plane = b; plane < e; plane++) {
        const float *dyp = dy + plane * oh * ow;
        float *dxp = dx + plane * p->h * p->w;
        switch (isa) {
        case EK_ISA_AVX512: avgpool_back_plane_avx512(&g, dyp, dxp); break;
        case EK_ISA_AVX2: avgpool_back_plane_avx2(&g, dyp, dxp); break;
        case EK_ISA_SCALAR: avgpool_back_plane_scalar(&g, dyp, dxp); break;
        }
    }
    return EK_OK;
}
