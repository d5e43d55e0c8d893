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
// Both kernels ADD each output gradient to the input elements it came from, so
// overlapping windows sum. Work is split over the N*C planes.
//
// Max pool: dx = 0, then dy[o] goes to argmax[o] (the forward's flat index h*W + w; -1
// routes nowhere), in output order. A scatter through an index: scalar on every level.
//
// Average pool: window (oh, ow) hands G(oh, ow) = dy / divisor (the forward's divisor:
// avg_rows / avg_elem, count_include_pad, ceil_mode clipping) to each of its real
// elements. The gradient is computed per dx row as a gather, the transpose of the window
// sum: dx[ih, iw] = Σ over the row taps ki (oh*sh = ih + ph - ki) and column taps kj
// (ow*sw = iw + pw - kj) of G(oh, ow), added in (ki, kj) order starting from +0, by every
// path: the scalar path adds each tap's run of G into the row, the SIMD paths accumulate
// 16 (8) pixels of the row in a register, tap by tap, and store them once (a lane the tap
// does not reach adds +0, which changes nothing, as in col2im). So every ISA gives the same
// bits. Storing each pixel once avoids the store-to-load forwarding stalls that made a
// scatter of shifted row updates no faster than scalar code (see col2im in conv2d.c).
// AVX-512 handles column strides 1 and 2 (stride 2 spreads each tap's run to every other
// lane with a permute), AVX2 stride 1 only (its stride-2 gather was no faster than scalar).
// G rows are computed once per output row into a ring of kh rows on the stack (the rows
// live for one dx row are at most ceil(kh / sh) consecutive ones); planes too wide for the
// ring or the tap plan use the scalar path with G computed per tap (the same values).

// G(oh, ow); 0 for a window without real elements (which has no taps either).
static inline float avg_grad(const pgeom *g, const float *dyp, int64_t oh, int64_t ow) {
    int64_t hs, he, hpool;
    avg_rows(g, oh, &hs, &he, &hpool);
    const int64_t s = ow * g->sw - g->pw;
    const int64_t e = ek__min64(s + g->kw, g->w + g->pw);
    const int64_t ws = ek__max64(s, 0), we = ek__min64(e, g->w);
    if (hs >= he || ws >= we) return 0.0f;
    const int64_t divisor = g->cip ? hpool * (e - s) : (he - hs) * (we - ws);
    return dyp[oh * g->ow + ow] / (float)divisor;
}

// G row oh into out[OW]: avg_grad's values, with the row factors computed once and one
// division by the common divisor across the interior columns (where the window is kw wide
// inside the input, so avg_grad's divisor is the same integer).
static void avg_grad_row(const pgeom *g, const float *dyp, int64_t oh, float *out) {
    int64_t hs, he, hpool;
    avg_rows(g, oh, &hs, &he, &hpool);
    if (hs >= he) {
        memset(out, 0, (size_t)g->ow * sizeof(float));
        return;
    }
    int64_t a, b;
    interior_cols(g, &a, &b);
    const float *d = dyp + oh * g->ow;
    for (int64_t ow = 0; ow < a; ow++) out[ow] = avg_grad(g, dyp, oh, ow);
    const float div = (float)(g->cip ? hpool * g->kw : (he - hs) * g->kw);
    for (int64_t ow = a; ow < b; ow++) out[ow] = d[ow] / div;
    for (int64_t ow = b; ow < g->ow; ow++) out[ow] = avg_grad(g, dyp, oh, ow);
}

// Output columns [*lo, *hi) whose tap kj lands inside the row: iw = ow*sw + kj - pw in [0, W).
static inline void avg_tap_cols(const pgeom *g, int64_t kj, int64_t *lo, int64_t *hi) {
    const int64_t off = kj - g->pw;
    int64_t a = off >= 0 ? 0 : (-off + g->sw - 1) / g->sw;
    int64_t b = (g->w - 1 - off) < 0 ? 0 : (g->w - 1 - off) / g->sw + 1;
    if (b > g->ow) b = g->ow;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}

// The output rows whose windows hold dx row ih through row taps ki in [ki0, ki1), in ki
// order (ki ascending, oh descending): oh*sh = ih + ph - ki with 0 <= oh < OH.
static inline int64_t avg_row_taps(const pgeom *g, int64_t ih, int64_t ki0, int64_t ki1,
                                   int64_t *ohs) {
    const int64_t top = ih + g->ph - ki0;  // oh*sh for ki0
    if (top < 0) return 0;
    int64_t oh = top / g->sh;               // the largest candidate, reached at ki = ih + ph - oh*sh
    if (oh >= g->oh) oh = g->oh - 1;
    int64_t nk = 0;
    for (; oh >= 0; oh--) {
        const int64_t ki = ih + g->ph - oh * g->sh;
        if (ki >= ki1) break;
        ohs[nk++] = oh;
    }
    return nk;
}

#define EK_AVGB_MAX_KH 64
#define EK_AVGB_MAX_RING 4096     // floats of G rows (kh * OW)
#define EK_AVGB_MAX_ENTRIES 512   // chunk x column-tap entries of the SIMD plan

// Adds row taps ohs[0..nk) to dx row drow, scalar: grows[q] is G row ohs[q], or, with
// grows NULL, G is computed per tap.
// cols[2*kj], cols[2*kj + 1] are avg_tap_cols(kj) (NULL: computed here).
static void avg_back_row_scalar(const pgeom *g, const float *dyp, const int64_t *ohs,
                                const float *const *grows, int64_t nk, const int64_t *cols,
                                float *drow) {
    for (int64_t q = 0; q < nk; q++) {
        for (int64_t kj = 0; kj < g->kw; kj++) {
            int64_t lo, hi;
            if (cols != NULL) {
                lo = cols[2 * kj];
                hi = cols[2 * kj + 1];
            } else {
                avg_tap_cols(g, kj, &lo, &hi);
            }
            float *d = drow + lo * g->sw + kj - g->pw;  // pixel of column lo
            if (grows != NULL && g->sw == 1) {
                const float *gr = grows[q] + lo;
                for (int64_t i = 0; i < hi - lo; i++) d[i] = d[i] + gr[i];
            } else if (grows != NULL) {
                const float *gr = grows[q] + lo;
                for (int64_t i = 0; i < hi - lo; i++) d[i * g->sw] = d[i * g->sw] + gr[i];
            } else {
                for (int64_t i = 0; i < hi - lo; i++)
                    d[i * g->sw] = d[i * g->sw] + avg_grad(g, dyp, ohs[q], lo + i);
            }
        }
    }
}

// The SIMD paths' plan (as col2im's): for chunk ch of `lanes` pixels and column tap kj,
// the lanes j0, j0 + sw, ... < end the tap reaches (bits) and the G column of lane j0.
typedef ek__lane_run avg_entry;  // off: output column of lane j0

static int make_avg_plan(const pgeom *g, int64_t lanes, avg_entry *plan) {
    const int64_t chunks = (g->w + lanes - 1) / lanes;
    if (g->sw > 2 || chunks * g->kw > EK_AVGB_MAX_ENTRIES) return 0;
    for (int64_t kj = 0; kj < g->kw; kj++) {
        const int64_t off_w = kj - g->pw;
        int64_t lo, hi;
        avg_tap_cols(g, kj, &lo, &hi);
        const int64_t run_lo = lo * g->sw + off_w;
        const int64_t run_hi = lo < hi ? (hi - 1) * g->sw + off_w + 1 : run_lo;
        for (int64_t ch = 0; ch < chunks; ch++) {
            const int64_t iw0 = ch * lanes;
            avg_entry *e = &plan[ch * g->kw + kj];
            *e = ek__lane_run_in_chunk(run_lo, run_hi, g->sw, iw0, lanes);
            e->off = e->end > e->j0 ? (iw0 + e->j0 - off_w) / g->sw : 0;
        }
    }
    return 1;
}

// Column stride 1 only (see ek_avgpool2d_back_f32).
EK_TARGET_AVX2 static void avg_back_row_avx2(const pgeom *g, const avg_entry *plan,
                                             const float *const *grows, int64_t nk, float *drow,
                                             const float *limit) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const avg_entry *row_plan = plan;
    for (int64_t iw0 = 0; iw0 < g->w; iw0 += 8, row_plan += g->kw) {
        __m256 acc = _mm256_setzero_ps();
        for (int64_t q = 0; q < nk; q++) {
            for (int64_t kj = 0; kj < g->kw; kj++)
                acc = ek__lane_run_add_avx2(acc, &row_plan[kj], grows[q] + row_plan[kj].off, lane);
        }
        float *d = drow + iw0;
        if (d + 8 <= limit) {
            _mm256_storeu_ps(d, acc);  // lanes past the row end land on pixels stored later
        } else {
            float tmp[8];
            _mm256_storeu_ps(tmp, acc);
            memcpy(d, tmp, (size_t)(limit - d) * sizeof(float));
        }
    }
}

EK_TARGET_AVX512 static void avg_back_row_avx512(const pgeom *g, const avg_entry *plan,
                                                 const float *const *grows, int64_t nk, float *drow,
                                                 const float *limit) {
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const avg_entry *row_plan = plan;
    for (int64_t iw0 = 0; iw0 < g->w; iw0 += 16, row_plan += g->kw) {
        __m512 acc = _mm512_setzero_ps();
        for (int64_t q = 0; q < nk; q++) {
            for (int64_t kj = 0; kj < g->kw; kj++)
                acc = ek__lane_run_add_avx512(acc, &row_plan[kj], grows[q] + row_plan[kj].off, g->sw, lane);
        }
        float *d = drow + iw0;
        if (d + 16 <= limit) {
            _mm512_storeu_ps(d, acc);  // lanes past the row end land on pixels stored later
        } else {
            _mm512_mask_storeu_ps(d, (__mmask16)((1u << (limit - d)) - 1u), acc);
        }
    }
}

// One plane. `plan` is NULL on the scalar path; ring is NULL when the G rows do not fit.
static void avgpool_back_plane(const pgeom *g, ek_isa isa, const avg_entry *plan, float *ring,
                               const float *dyp, float *dxp) {
    const float *limit = dxp + g->h * g->w;
    int64_t cols_buf[2 * EK_AVGB_MAX_KH];
    const int64_t *cols = NULL;
    if (g->kw <= EK_AVGB_MAX_KH) {
        for (int64_t kj = 0; kj < g->kw; kj++) avg_tap_cols(g, kj, &cols_buf[2 * kj], &cols_buf[2 * kj + 1]);
        cols = cols_buf;
    }
    int64_t ohs[EK_AVGB_MAX_KH];
    const float *grows[EK_AVGB_MAX_KH];
    int64_t next_oh = 0;  // G rows [0, next_oh) have been computed into the ring
    for (int64_t ih = 0; ih < g->h; ih++) {
        float *drow = dxp + ih * g->w;
        if (g->kh > EK_AVGB_MAX_KH) {
            // Tall windows (scalar path, no ring): the row taps in batches, in ki order.
            memset(drow, 0, (size_t)g->w * sizeof(float));
            for (int64_t k0 = 0; k0 < g->kh; k0 += EK_AVGB_MAX_KH) {
                const int64_t nk = avg_row_taps(g, ih, k0, ek__min64(k0 + EK_AVGB_MAX_KH, g->kh), ohs);
                avg_back_row_scalar(g, dyp, ohs, NULL, nk, NULL, drow);
            }
            continue;
        }
        const int64_t nk = avg_row_taps(g, ih, 0, g->kh, ohs);
        if (ring != NULL) {
            // ohs[0] is the largest row needed; rows are needed in increasing order.
            for (; nk > 0 && next_oh <= ohs[0]; next_oh++)
                avg_grad_row(g, dyp, next_oh, ring + (next_oh % g->kh) * g->ow);
            for (int64_t q = 0; q < nk; q++) grows[q] = ring + (ohs[q] % g->kh) * g->ow;
        }
        switch (isa) {
        case EK_ISA_AVX512: avg_back_row_avx512(g, plan, grows, nk, drow, limit); break;
        case EK_ISA_AVX2: avg_back_row_avx2(g, plan, grows, nk, drow, limit); break;
        case EK_ISA_SCALAR:
            memset(drow, 0, (size_t)g->w * sizeof(float));
            avg_back_row_scalar(g, dyp, ohs, ring ? grows : NULL, nk, cols, drow);
            break;
        }
    }
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
    // The ring and the plan live on the stack (16 KB + 12 KB); what does not fit goes to
    // the scalar path, with G computed per tap when even the ring does not fit.
    float ring_buf[EK_AVGB_MAX_RING];
    avg_entry plan[EK_AVGB_MAX_ENTRIES];
    float *ring = (g.kh <= EK_AVGB_MAX_KH && g.kh * g.ow <= EK_AVGB_MAX_RING) ? ring_buf : NULL;
    ek_isa isa = ek__isa();
    // The AVX2 gather with column stride 2 measured no faster than the scalar path (a permute
    // and several masks per tap), so it uses that.
    if (isa == EK_ISA_AVX2 && g.sw != 1) isa = EK_ISA_SCALAR;
    if (isa != EK_ISA_SCALAR && (ring == NULL || !make_avg_plan(&g, isa == EK_ISA_AVX512 ? 16 : 8, plan)))
        isa = EK_ISA_SCALAR;
    int64_t b, e;
    ek__share(p->n * p->c, p->ith, p->nth, &b, &e);
    for (int64_t plane = b; plane < e; plane++)
        avgpool_back_plane(&g, isa, isa == EK_ISA_SCALAR ? NULL : plan, ring, dy + plane * oh * ow,
                           dx + plane * p->h * p->w);
    return EK_OK;
}
