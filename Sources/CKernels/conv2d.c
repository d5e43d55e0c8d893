// 2-D convolution (groups = 1): im2col + one sgemm per image, then a bias + activation
// epilogue. A 1x1 / stride 1 / pad 0 convolution multiplies the input directly.
#include "internal.h"

#include <immintrin.h>
#include <limits.h>
#include <string.h>

// MARK: - Geometry

static int params_ok(const ek_conv2d_params *p) {
    if (p == NULL) return 0;
    if (p->n < 1 || p->c < 1 || p->h < 1 || p->w < 1 || p->k < 1 || p->r < 1 || p->s < 1)
        return 0;
    if (p->stride_h < 1 || p->stride_w < 1 || p->dilation_h < 1 || p->dilation_w < 1) return 0;
    if (p->pad_h < 0 || p->pad_w < 0) return 0;
    if (p->activation != EK_ACT_NONE && p->activation != EK_ACT_RELU) return 0;
    return 1;
}

ek_status ek_conv2d_output_size(const ek_conv2d_params *p, int64_t *out_h, int64_t *out_w) {
    if (!params_ok(p) || out_h == NULL || out_w == NULL) return EK_ERR_INVALID_ARGUMENT;
    const int64_t span_h = p->h + 2 * p->pad_h - p->dilation_h * (p->r - 1) - 1;
    const int64_t span_w = p->w + 2 * p->pad_w - p->dilation_w * (p->s - 1) - 1;
    if (span_h < 0 || span_w < 0) return EK_ERR_INVALID_ARGUMENT;
    *out_h = span_h / p->stride_h + 1;
    *out_w = span_w / p->stride_w + 1;
    return EK_OK;
}

static int is_direct_1x1(const ek_conv2d_params *p) {
    return p->r == 1 && p->s == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_h == 0 &&
           p->pad_w == 0;
}

/// 0 for the direct 1x1 case and for invalid params (which ek_conv2d_f32 rejects anyway).
int64_t ek_conv2d_scratch_size(const ek_conv2d_params *p) {
    int64_t oh, ow;
    if (ek_conv2d_output_size(p, &oh, &ow) != EK_OK) return 0;
    if (is_direct_1x1(p)) return 0;
    return p->c * p->r * p->s * oh * ow;
}

// MARK: - Strided row gathers: dst[i] = src[i * stride], i < n

typedef void (*gather_fn)(float *dst, const float *src, int64_t n, int64_t stride);

static void gather_scalar(float *dst, const float *src, int64_t n, int64_t stride) {
    if (stride == 1) {
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    }
    for (int64_t i = 0; i < n; i++) dst[i] = src[i * stride];
}

EK_TARGET_AVX2 static void gather_avx2(float *dst, const float *src, int64_t n, int64_t stride) {
    if (stride != 2) {
        gather_scalar(dst, src, n, stride);
        return;
    }
    // 8 outputs need src[0..14]; the second load is masked to 7 lanes so we never read
    // src[15], which may lie past the end of the input.
    const __m256i seven = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, -1, 0);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float *s = src + 2 * i;
        __m256 a = _mm256_loadu_ps(s);
        __m256 b = _mm256_maskload_ps(s + 8, seven);
        __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));  // s0 s2 s8 s10 | s4 s6 s12 s14
        e = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
        _mm256_storeu_ps(dst + i, e);
    }
    for (; i < n; i++) dst[i] = src[2 * i];
}

EK_TARGET_AVX512 static void gather_avx512(float *dst, const float *src, int64_t n,
                                           int64_t stride) {
    if (stride != 2) {
        gather_scalar(dst, src, n, stride);
        return;
    }
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    int64_t i = 0;
    // Full vectors: 16 outputs need src[0..30]; src[31] may lie past the input.
    for (; i + 16 <= n; i += 16) {
        const float *s = src + 2 * i;
        __m512 a = _mm512_loadu_ps(s);
        __m512 b = _mm512_maskz_loadu_ps((__mmask16)0x7FFF, s + 16);
        _mm512_storeu_ps(dst + i, _mm512_permutex2var_ps(a, even, b));
    }
    for (; i < n; i += 16) {
        const int64_t left = n - i < 16 ? n - i : 16;
        const int64_t need = 2 * left - 1;  // src elements 0 .. 2*(left-1)
        const __mmask16 m_lo = need >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << need) - 1u);
        const __mmask16 m_hi = need > 16 ? (__mmask16)((1u << (need - 16)) - 1u) : (__mmask16)0;
        const float *s = src + 2 * i;
        __m512 a = _mm512_maskz_loadu_ps(m_lo, s);
        __m512 b = _mm512_maskz_loadu_ps(m_hi, s + 16);
        _mm512_mask_storeu_ps(dst + i, (__mmask16)((1u << left) - 1u),
                              _mm512_permutex2var_ps(a, even, b));
    }
}


// MARK: - Stride-1 rows with their zero padding: d[j] = x[j + off] for lo <= j < hi, else 0

// `limit` is the end of the caller's share of the column matrix: a vector store may spill
// past d[n) into rows written later by the same call, but never past `limit`.
typedef void (*window_fn)(float *d, const float *xrow, int64_t off, int64_t lo, int64_t hi,
                          int64_t n, const float *limit);

static void window_scalar(float *d, const float *xrow, int64_t off, int64_t lo, int64_t hi,
                          int64_t n, const float *limit) {
    (void)limit;
    if (lo > 0) memset(d, 0, (size_t)lo * sizeof(float));
    if (hi > lo) memcpy(d + lo, xrow + lo + off, (size_t)(hi - lo) * sizeof(float));
    if (hi < n) memset(d + hi, 0, (size_t)(n - hi) * sizeof(float));
}

// Short rows (ResNet's late layers have rows of 7 or 14 floats, where memcpy/memset
// calls cost more than the copy) are written with one masked load and one store per
// vector, zeros included; long rows use memcpy/memset, which are as fast there. The load
// address is computed as an integer because lane 0 may lie in the padding, before the
// row; masked-out lanes are never read.
EK_TARGET_AVX2 static void window_avx2(float *d, const float *xrow, int64_t off, int64_t lo,
                                       int64_t hi, int64_t n, const float *limit) {
    if (n > 8) {
        window_scalar(d, xrow, off, lo, hi, n, limit);
        return;
    }
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const uintptr_t base = (uintptr_t)xrow + (uintptr_t)(off * (int64_t)sizeof(float));
    for (int64_t j0 = 0; j0 < n; j0 += 8) {
        const int64_t len = n - j0 < 8 ? n - j0 : 8;
        const int64_t a = lo - j0 > 0 ? lo - j0 : 0;
        const int64_t b = hi - j0 < len ? hi - j0 : len;
        // Lanes a <= j < b; an empty range (a >= b) gives an all-zero mask.
        const __m256i m = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32((int32_t)a), lane),
                                              _mm256_cmpgt_epi32(_mm256_set1_epi32((int32_t)b), lane));
        const __m256 v = _mm256_maskload_ps((const float *)(base + (uintptr_t)(j0 * (int64_t)sizeof(float))), m);
        if (d + j0 + 8 <= limit) {
            _mm256_storeu_ps(d + j0, v);  // (vmaskmovps stores are slow on AMD)
        } else {
            float tmp[8];
            _mm256_storeu_ps(tmp, v);
            memcpy(d + j0, tmp, (size_t)len * sizeof(float));
        }
    }
}

EK_TARGET_AVX512 static void window_avx512(float *d, const float *xrow, int64_t off, int64_t lo,
                                           int64_t hi, int64_t n, const float *limit) {
    if (n > 16) {
        window_scalar(d, xrow, off, lo, hi, n, limit);
        return;
    }
    const uintptr_t base = (uintptr_t)xrow + (uintptr_t)(off * (int64_t)sizeof(float));
    for (int64_t j0 = 0; j0 < n; j0 += 16) {
        const int64_t len = n - j0 < 16 ? n - j0 : 16;
        const int64_t a = lo - j0 > 0 ? lo - j0 : 0;
        const int64_t b = hi - j0 < len ? hi - j0 : len;
        const __mmask16 m = a < b ? (__mmask16)(((1u << b) - 1u) & ~((1u << a) - 1u)) : (__mmask16)0;
        const __m512 v = _mm512_maskz_loadu_ps(m, (const float *)(base + (uintptr_t)(j0 * (int64_t)sizeof(float))));
        if (d + j0 + 16 <= limit) {
            _mm512_storeu_ps(d + j0, v);  // a plain store is cheaper than a masked one
        } else {
            _mm512_mask_storeu_ps(d + j0, (__mmask16)((1u << len) - 1u), v);
        }
    }
}

// MARK: - im2col

typedef struct geom {
    int64_t c, h, w, r, s, oh, ow, sh, sw, ph, pw, dh, dw;
} geom;

static geom make_geom(const ek_conv2d_params *p, int64_t oh, int64_t ow) {
    geom g = {p->c, p->h, p->w, p->r, p->s, oh, ow, p->stride_h, p->stride_w,
              p->pad_h, p->pad_w, p->dilation_h, p->dilation_w};
    return g;
}

// Column row (c, ki, kj) holds, for every output position,
// x[c, oh*sh - ph + ki*dh, ow*sw - pw + kj*dw] or 0 in the padding. The valid output
// columns form one range [ow_lo, ow_hi), computed once per column row; each output row
// is then zeros, one contiguous (stride 1) or strided run, zeros, written without a
// per-element branch. Inlined into one function per ISA so that the window and gather
// calls are direct.
static inline __attribute__((always_inline)) void
im2col_row_body(const geom *g, const float *xc, int64_t ki, int64_t kj, float *dst,
                const float *limit, window_fn window, gather_fn gather) {
    const int64_t off_w = kj * g->dw - g->pw;  // iw = ow*sw + off_w
    int64_t ow_lo = off_w >= 0 ? 0 : (-off_w + g->sw - 1) / g->sw;
    int64_t ow_hi = (g->w - 1 - off_w) < 0 ? 0 : (g->w - 1 - off_w) / g->sw + 1;
    if (ow_hi > g->ow) ow_hi = g->ow;
    if (ow_lo > ow_hi) ow_lo = ow_hi;
    const int64_t run = ow_hi - ow_lo;

    for (int64_t oh = 0; oh < g->oh; oh++) {
        float *d = dst + oh * g->ow;
        const int64_t ih = oh * g->sh - g->ph + ki * g->dh;
        const int inside = ih >= 0 && ih < g->h && run > 0;
        if (g->sw == 1) {
            // An empty range writes a row of zeros.
            window(d, inside ? xc + ih * g->w : xc, off_w, inside ? ow_lo : 0, inside ? ow_hi : 0,
                   g->ow, limit);
            continue;
        }
        if (!inside) {
            memset(d, 0, (size_t)g->ow * sizeof(float));
            continue;
        }
        if (ow_lo > 0) memset(d, 0, (size_t)ow_lo * sizeof(float));
        gather(d + ow_lo, xc + ih * g->w + ow_lo * g->sw + off_w, run, g->sw);
        if (ow_hi < g->ow) memset(d + ow_hi, 0, (size_t)(g->ow - ow_hi) * sizeof(float));
    }
}

typedef void (*im2col_row_fn)(const geom *g, const float *xc, int64_t ki, int64_t kj, float *dst,
                              const float *limit);

static void im2col_row_scalar(const geom *g, const float *xc, int64_t ki, int64_t kj, float *dst,
                              const float *limit) {
    im2col_row_body(g, xc, ki, kj, dst, limit, window_scalar, gather_scalar);
}
EK_TARGET_AVX2 static void im2col_row_avx2(const geom *g, const float *xc, int64_t ki, int64_t kj,
                                           float *dst, const float *limit) {
    im2col_row_body(g, xc, ki, kj, dst, limit, window_avx2, gather_avx2);
}
EK_TARGET_AVX512 static void im2col_row_avx512(const geom *g, const float *xc, int64_t ki,
                                               int64_t kj, float *dst, const float *limit) {
    im2col_row_body(g, xc, ki, kj, dst, limit, window_avx512, gather_avx512);
}

// Column rows [row_begin, row_end) into col (which starts at row_begin).
static void im2col_rows(const geom *g, const float *x, float *col, int64_t row_begin,
                        int64_t row_end) {
    im2col_row_fn row_fn = im2col_row_scalar;
    switch (ek__isa()) {
    case EK_ISA_AVX512: row_fn = im2col_row_avx512; break;
    case EK_ISA_AVX2: row_fn = im2col_row_avx2; break;
    case EK_ISA_SCALAR: break;
    }
    const int64_t ohw = g->oh * g->ow;
    const float *limit = col + (row_end - row_begin) * ohw;
    for (int64_t row = row_begin; row < row_end; row++) {
        const int64_t c = row / (g->r * g->s);
        const int64_t ki = (row / g->s) % g->r;
        const int64_t kj = row % g->s;
        row_fn(g, x + c * g->h * g->w, ki, kj, col + (row - row_begin) * ohw, limit);
    }
}

ek_status ek_im2col_f32(const ek_conv2d_params *p, const float *x, float *col) {
    if (p == NULL || x == NULL || col == NULL) return EK_ERR_INVALID_ARGUMENT;
    ek_conv2d_params one = *p;
    one.n = 1;  // one image; p->n is ignored
    int64_t oh, ow;
    if (ek_conv2d_output_size(&one, &oh, &ow) != EK_OK || !ek__share_ok(p->ith, p->nth))
        return EK_ERR_INVALID_ARGUMENT;
    const geom g = make_geom(&one, oh, ow);
    int64_t b, e;
    ek__share(p->c * p->r * p->s, p->ith, p->nth, &b, &e);
    // Rows are written at their absolute position in the column matrix.
    if (b < e) im2col_rows(&g, x, col + b * oh * ow, b, e);
    return EK_OK;
}

// MARK: - Bias + activation epilogue

static void bias_act_scalar(int64_t hw, float bias, int has_bias, int relu, float *y) {
    if (relu && has_bias) {
        for (int64_t i = 0; i < hw; i++) y[i] = ek__relu(y[i] + bias);
    } else if (relu) {
        for (int64_t i = 0; i < hw; i++) y[i] = ek__relu(y[i]);
    } else if (has_bias) {
        for (int64_t i = 0; i < hw; i++) y[i] = y[i] + bias;
    }
}

EK_TARGET_AVX2 static void bias_act_avx2(int64_t hw, float bias, int has_bias, int relu,
                                         float *y) {
    const __m256 vb = _mm256_set1_ps(bias), z = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= hw; i += 8) {
        __m256 v = _mm256_loadu_ps(y + i);
        if (has_bias) v = _mm256_add_ps(v, vb);
        if (relu) v = _mm256_max_ps(z, v);
        _mm256_storeu_ps(y + i, v);
    }
    bias_act_scalar(hw - i, bias, has_bias, relu, y + i);
}

EK_TARGET_AVX512 static void bias_act_avx512(int64_t hw, float bias, int has_bias, int relu,
                                             float *y) {
    const __m512 vb = _mm512_set1_ps(bias), z = _mm512_setzero_ps();
    for (int64_t i = 0; i < hw; i += 16) {
        const __mmask16 m = hw - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (hw - i)) - 1u);
        __m512 v = _mm512_maskz_loadu_ps(m, y + i);
        if (has_bias) v = _mm512_add_ps(v, vb);
        if (relu) v = _mm512_max_ps(z, v);
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

static void bias_act_channels(int64_t k_begin, int64_t k_end, int64_t hw, const float *bias,
                              int relu, float *y) {
    if (bias == NULL && !relu) return;
    const ek_isa isa = ek__isa();
    for (int64_t ch = k_begin; ch < k_end; ch++) {
        const float b = bias ? bias[ch] : 0.0f;
        float *row = y + ch * hw;
        switch (isa) {
        case EK_ISA_AVX512: bias_act_avx512(hw, b, bias != NULL, relu, row); break;
        case EK_ISA_AVX2: bias_act_avx2(hw, b, bias != NULL, relu, row); break;
        case EK_ISA_SCALAR: bias_act_scalar(hw, b, bias != NULL, relu, row); break;
        }
    }
}

ek_status ek_bias_act_f32(int64_t k, int64_t hw, const float *bias, ek_activation act, float *y,
                          int32_t ith, int32_t nth) {
    if (k < 1 || hw < 1 || y == NULL || !ek__share_ok(ith, nth)) return EK_ERR_INVALID_ARGUMENT;
    if (act != EK_ACT_NONE && act != EK_ACT_RELU) return EK_ERR_INVALID_ARGUMENT;
    int64_t b, e;
    ek__share(k, ith, nth, &b, &e);
    bias_act_channels(b, e, hw, bias, act == EK_ACT_RELU, y);
    return EK_OK;
}

// MARK: - Convolution

ek_status ek_conv2d_f32(const ek_conv2d_params *p, const float *x, const float *weight,
                        const float *bias, float *y, float *scratch, int64_t scratch_floats) {
    int64_t oh, ow;
    if (x == NULL || weight == NULL || y == NULL || ek_conv2d_output_size(p, &oh, &ow) != EK_OK)
        return EK_ERR_INVALID_ARGUMENT;
    const int64_t crs = p->c * p->r * p->s;
    const int64_t ohw = oh * ow;
    if (p->k > INT_MAX || ohw > INT_MAX || crs > INT_MAX) return EK_ERR_INVALID_ARGUMENT;

    const int direct = is_direct_1x1(p);
    const int64_t need = direct ? 0 : crs * ohw;
    if (need > 0 && (scratch_floats < need || scratch == NULL))
        return EK_ERR_SCRATCH_TOO_SMALL;

    if (ek_blas_load() != EK_OK) return EK_ERR_BLAS_UNAVAILABLE;

    const geom g = make_geom(p, oh, ow);
    const int64_t in_image = p->c * p->h * p->w;
    const int64_t out_image = p->k * ohw;
    for (int64_t img = 0; img < p->n; img++) {
        const float *xi = x + img * in_image;
        float *yi = y + img * out_image;
        const float *b_mat = xi;  // direct: x[C, H*W] is already the column matrix
        if (!direct) {
            im2col_rows(&g, xi, scratch, 0, crs);
            b_mat = scratch;
        }
        ek_status st = ek__sgemm(0, 0, p->k, ohw, crs, 1.0f, weight, crs, b_mat, ohw, 0.0f, yi, ohw);
        if (st != EK_OK) return st;
        bias_act_channels(0, p->k, ohw, bias, p->activation == EK_ACT_RELU, yi);
    }
    return EK_OK;
}

// MARK: - Backward: col2im (the adjoint of im2col)
//
// Definition (the scalar reference): dx[c] = 0, then for every column row (c, ki, kj) and
// output row oh whose input row ih is inside the image, the run of valid output columns
// [ow_lo, ow_hi) (the range im2col copies) is ADDED to dx[c, ih, ow*sw + off_w]. Each pixel
// thus receives its contributions in (ki, kj) order, at most one per tap.
//
// The SIMD paths compute the same sums in the transposed ("gather") order: for a chunk of
// 16 (AVX-512) or 8 (AVX2) pixels of a dx row, a register accumulates, tap by tap in
// (ki, kj) order, the column elements that land on those pixels, and the chunk is stored
// once. Lanes a tap does not reach add +0, which changes nothing (the accumulator starts at
// +0 and a round-to-nearest sum is -0 only when both terms are), so the results equal the
// scalar reference bit for bit. Storing each pixel once is what makes it fast: the scatter
// form re-reads, one tap later, the row it has just stored shifted by one float, and such
// loads cannot take their data from the pending stores (store-to-load forwarding fails).
// On a Zen 4 core the AVX-512 scatter was slower than the scalar loop; the gather form is
// 3-5x faster than that scatter and 2-3.5x faster than the scalar loop (3x3, 56x56 to 7x7).
// Column stride 1 loads each tap's run directly; column stride 2 loads the run's
// consecutive elements and spreads them to every other lane with a permute (AVX-512 only,
// see col2im_channels). Larger column strides (not in ResNets) use the scalar path. Work is
// per channel plane, so channel shares never write the same memory.

// Output columns [*lo, *hi) whose input column ow*sw + off_w lies in [0, W): the range
// im2col_row_body copies.
static inline void valid_cols(const geom *g, int64_t off_w, int64_t *lo, int64_t *hi) {
    int64_t a = off_w >= 0 ? 0 : (-off_w + g->sw - 1) / g->sw;
    int64_t b = (g->w - 1 - off_w) < 0 ? 0 : (g->w - 1 - off_w) / g->sw + 1;
    if (b > g->ow) b = g->ow;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}

// One channel: dxc[H*W] from its R*S column rows at colc.
static void col2im_channel_scalar(const geom *g, const float *colc, float *dxc) {
    const int64_t ohw = g->oh * g->ow;
    memset(dxc, 0, (size_t)(g->h * g->w) * sizeof(float));
    for (int64_t ki = 0; ki < g->r; ki++) {
        for (int64_t kj = 0; kj < g->s; kj++) {
            const float *src = colc + (ki * g->s + kj) * ohw;
            const int64_t off_w = kj * g->dw - g->pw;
            int64_t ow_lo, ow_hi;
            valid_cols(g, off_w, &ow_lo, &ow_hi);
            if (ow_lo >= ow_hi) continue;
            for (int64_t oh = 0; oh < g->oh; oh++) {
                const int64_t ih = oh * g->sh - g->ph + ki * g->dh;
                if (ih < 0 || ih >= g->h) continue;
                float *d = dxc + ih * g->w + ow_lo * g->sw + off_w;  // pixel of ow_lo
                const float *s = src + oh * g->ow + ow_lo;
                for (int64_t i = 0; i < ow_hi - ow_lo; i++) d[i * g->sw] = d[i * g->sw] + s[i];
            }
        }
    }
}

// The SIMD paths' plan, computed once per call: for every chunk of `lanes` pixels of a dx
// row and every column tap kj, the lanes the tap reaches and where their column elements
// start, so the inner loop is a table read, one (masked) load and one add per tap. Tables
// that would not fit (very wide images or kernels) send the call to the scalar path.
#define EK_COL2IM_MAX_ENTRIES 1024
#define EK_COL2IM_MAX_R 64
typedef ek__lane_run col_entry;  // off: column index, within the (ki, oh) block of S column rows, of lane j0

// Entries [chunk * S + kj] for pixels [chunk * lanes, (chunk + 1) * lanes) of a row; 0 when
// the table would be too large or the column stride is not 1 or 2.
static int make_col_plan(const geom *g, int64_t lanes, col_entry *plan) {
    const int64_t chunks = (g->w + lanes - 1) / lanes;
    if (g->sw > 2 || g->r > EK_COL2IM_MAX_R || chunks * g->s > EK_COL2IM_MAX_ENTRIES) return 0;
    const int64_t ohw = g->oh * g->ow;
    for (int64_t kj = 0; kj < g->s; kj++) {
        const int64_t off_w = kj * g->dw - g->pw;
        int64_t ow_lo, ow_hi;
        valid_cols(g, off_w, &ow_lo, &ow_hi);
        // Pixels the tap reaches: run_lo, run_lo + sw, ... < run_hi.
        const int64_t run_lo = ow_lo * g->sw + off_w;
        const int64_t run_hi = ow_lo < ow_hi ? (ow_hi - 1) * g->sw + off_w + 1 : run_lo;
        for (int64_t ch = 0; ch < chunks; ch++) {
            const int64_t iw0 = ch * lanes;
            col_entry *e = &plan[ch * g->s + kj];
            *e = ek__lane_run_in_chunk(run_lo, run_hi, g->sw, iw0, lanes);
            // Column of lane j0: ow = (iw0 + j0 - off_w) / sw (exact on the run's grid).
            e->off = kj * ohw + (e->end > e->j0 ? (iw0 + e->j0 - off_w) / g->sw : 0);
        }
    }
    return 1;
}

// Row taps of dx row ih: the (ki, oh) blocks of column rows that reach it, in ki order.
// Returns how many; blocks[q] points at column row (ki, kj = 0), output row oh.
static inline int64_t row_blocks(const geom *g, const float *colc, int64_t ih,
                                 const float **blocks) {
    const int64_t ohw = g->oh * g->ow;
    int64_t nk = 0;
    for (int64_t ki = 0; ki < g->r; ki++) {
        const int64_t t = ih + g->ph - ki * g->dh;  // oh * sh
        if (t < 0) break;                            // and for every later ki
        const int64_t oh = g->sh == 1 ? t : t / g->sh;
        if (oh * g->sh != t || oh >= g->oh) continue;
        blocks[nk++] = colc + ki * g->s * ohw + oh * g->ow;
    }
    return nk;
}

// The AVX2 channel body, column stride 1; `taps` is g->s (a constant from the 3-tap caller,
// see AVX-512).
EK_TARGET_AVX2 static inline __attribute__((always_inline)) void
col2im_channel_avx2_body(const geom *g, int64_t taps, const col_entry *plan, const float *colc,
                         float *dxc) {
    const float *limit = dxc + g->h * g->w;
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const float *blocks[EK_COL2IM_MAX_R];
    for (int64_t ih = 0; ih < g->h; ih++) {
        const int64_t nk = row_blocks(g, colc, ih, blocks);
        const col_entry *row_plan = plan;
        for (int64_t iw0 = 0; iw0 < g->w; iw0 += 8, row_plan += taps) {
            __m256 acc = _mm256_setzero_ps();
            for (int64_t q = 0; q < nk; q++) {
                for (int64_t kj = 0; kj < taps; kj++)  // column stride 1 only
                    acc = ek__lane_run_add_avx2(acc, &row_plan[kj], blocks[q] + row_plan[kj].off, lane);
            }
            float *d = dxc + ih * g->w + iw0;
            if (d + 8 <= limit) {
                // Lanes past the row end hold zeros and land on pixels stored later.
                _mm256_storeu_ps(d, acc);
            } else {
                float tmp[8];
                _mm256_storeu_ps(tmp, acc);
                memcpy(d, tmp, (size_t)(limit - d) * sizeof(float));
            }
        }
    }
}

EK_TARGET_AVX2 static void col2im_channel_avx2(const geom *g, const col_entry *plan,
                                               const float *colc, float *dxc) {
    if (g->s == 3)
        col2im_channel_avx2_body(g, 3, plan, colc, dxc);
    else
        col2im_channel_avx2_body(g, g->s, plan, colc, dxc);
}

// The AVX-512 channel body; `taps` is g->s, passed as a constant by the 3-tap caller so the
// compiler unrolls the tap loop of the common 3x3 stride-1 case.
EK_TARGET_AVX512 static inline __attribute__((always_inline)) void
col2im_channel_avx512_body(const geom *g, int64_t taps, const col_entry *plan, const float *colc,
                           float *dxc) {
    const float *limit = dxc + g->h * g->w;
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const float *blocks[EK_COL2IM_MAX_R];
    for (int64_t ih = 0; ih < g->h; ih++) {
        const int64_t nk = row_blocks(g, colc, ih, blocks);
        const col_entry *row_plan = plan;
        for (int64_t iw0 = 0; iw0 < g->w; iw0 += 16, row_plan += taps) {
            __m512 acc = _mm512_setzero_ps();
            for (int64_t q = 0; q < nk; q++)
                for (int64_t kj = 0; kj < taps; kj++)
                    acc = ek__lane_run_add_avx512(acc, &row_plan[kj], blocks[q] + row_plan[kj].off, g->sw, lane);
            float *d = dxc + ih * g->w + iw0;
            if (d + 16 <= limit) {
                _mm512_storeu_ps(d, acc);  // lanes past the row end land on pixels stored later
            } else {
                _mm512_mask_storeu_ps(d, (__mmask16)((1u << (limit - d)) - 1u), acc);
            }
        }
    }
}

EK_TARGET_AVX512 static void col2im_channel_avx512(const geom *g, const col_entry *plan,
                                                   const float *colc, float *dxc) {
    if (g->s == 3)
        col2im_channel_avx512_body(g, 3, plan, colc, dxc);
    else
        col2im_channel_avx512_body(g, g->s, plan, colc, dxc);
}

// Channels [c_begin, c_end) of one image; col and dx are the whole image's matrices.
static void col2im_channels(const geom *g, const float *col, float *dx, int64_t c_begin,
                            int64_t c_end) {
    const int64_t rows = g->r * g->s, ohw = g->oh * g->ow, hw = g->h * g->w;
    ek_isa isa = ek__isa();
    // Measured on Zen 4: the AVX2 gather with column stride 2 (a permute and several masks
    // per tap) and the stride-2 gather of a one-column kernel (1x1 downsampling: one store
    // per pixel is all the scalar loop does) are slower than the scalar path, so those use
    // it.
    if (g->sw == 2 && (isa == EK_ISA_AVX2 || g->s == 1)) isa = EK_ISA_SCALAR;
    col_entry plan[EK_COL2IM_MAX_ENTRIES];
    if (isa != EK_ISA_SCALAR && !make_col_plan(g, isa == EK_ISA_AVX512 ? 16 : 8, plan))
        isa = EK_ISA_SCALAR;
    for (int64_t c = c_begin; c < c_end; c++) {
        const float *colc = col + c * rows * ohw;
        float *dxc = dx + c * hw;
        switch (isa) {
        case EK_ISA_AVX512: col2im_channel_avx512(g, plan, colc, dxc); break;
        case EK_ISA_AVX2: col2im_channel_avx2(g, plan, colc, dxc); break;
        case EK_ISA_SCALAR: col2im_channel_scalar(g, colc, dxc); break;
        }
    }
}

ek_status ek_col2im_f32(const ek_conv2d_params *p, const float *col, float *dx) {
    if (p == NULL || col == NULL || dx == NULL) return EK_ERR_INVALID_ARGUMENT;
    ek_conv2d_params one = *p;
    one.n = 1;  // one image; p->n is ignored
    int64_t oh, ow;
    if (ek_conv2d_output_size(&one, &oh, &ow) != EK_OK || !ek__share_ok(p->ith, p->nth))
        return EK_ERR_INVALID_ARGUMENT;
    const geom g = make_geom(&one, oh, ow);
    int64_t b, e;
    ek__share(p->c, p->ith, p->nth, &b, &e);
    if (b < e) col2im_channels(&g, col, dx, b, e);
    return EK_OK;
}

// MARK: - Backward: convolution

// The shared checks of the two backward entry points: sizes fit the sgemm interface and
// the scratch is large enough. On success the output size and the 1x1 flag are set.
static ek_status back_check(const ek_conv2d_params *p, const float *scratch,
                            int64_t scratch_floats, int64_t *oh_out, int64_t *ow_out,
                            int *direct_out) {
    int64_t oh, ow;
    if (ek_conv2d_output_size(p, &oh, &ow) != EK_OK) return EK_ERR_INVALID_ARGUMENT;
    const int64_t crs = p->c * p->r * p->s, ohw = oh * ow;
    if (p->k > INT_MAX || ohw > INT_MAX || crs > INT_MAX || p->h * p->w > INT_MAX)
        return EK_ERR_INVALID_ARGUMENT;
    const int direct = is_direct_1x1(p);
    const int64_t need = direct ? 0 : crs * ohw;
    if (need > 0 && (scratch_floats < need || scratch == NULL)) return EK_ERR_SCRATCH_TOO_SMALL;
    *oh_out = oh;
    *ow_out = ow;
    *direct_out = direct;
    return EK_OK;
}

ek_status ek_conv2d_back_input_f32(const ek_conv2d_params *p, const float *dy, const float *weight,
                                   float *dx, float *scratch, int64_t scratch_floats) {
    if (p == NULL || dy == NULL || weight == NULL || dx == NULL) return EK_ERR_INVALID_ARGUMENT;
    int64_t oh, ow;
    int direct;
    // p->activation is not applied, but an undefined value is still rejected (as by the
    // forward), so the forward's params can be passed unchanged.
    ek_status st = back_check(p, scratch, scratch_floats, &oh, &ow, &direct);
    if (st != EK_OK) return st;
    if (ek_blas_load() != EK_OK) return EK_ERR_BLAS_UNAVAILABLE;

    const int64_t crs = p->c * p->r * p->s, ohw = oh * ow;
    const geom g = make_geom(p, oh, ow);
    const int64_t in_image = p->c * p->h * p->w, out_image = p->k * ohw;
    for (int64_t img = 0; img < p->n; img++) {
        const float *dyi = dy + img * out_image;
        float *dxi = dx + img * in_image;
        if (direct) {
            // dx[C, HW] = weight[K, C]^T * dy[K, HW]
            st = ek__sgemm(1, 0, p->c, ohw, p->k, 1.0f, weight, p->c, dyi, ohw, 0.0f, dxi, ohw);
            if (st != EK_OK) return st;
            continue;
        }
        // dcol[CRS, OHW] = weight[K, CRS]^T * dy[K, OHW], then scattered into dx.
        st = ek__sgemm(1, 0, crs, ohw, p->k, 1.0f, weight, crs, dyi, ohw, 0.0f, scratch, ohw);
        if (st != EK_OK) return st;
        col2im_channels(&g, scratch, dxi, 0, p->c);
    }
    return EK_OK;
}

ek_status ek_conv2d_back_weight_f32(const ek_conv2d_params *p, const float *x, const float *dy,
                                    float *dweight, float *dbias, float *scratch,
                                    int64_t scratch_floats) {
    if (p == NULL || x == NULL || dy == NULL || dweight == NULL) return EK_ERR_INVALID_ARGUMENT;
    int64_t oh, ow;
    int direct;
    ek_status st = back_check(p, scratch, scratch_floats, &oh, &ow, &direct);
    if (st != EK_OK) return st;
    if (ek_blas_load() != EK_OK) return EK_ERR_BLAS_UNAVAILABLE;

    const int64_t crs = p->c * p->r * p->s, ohw = oh * ow;
    const geom g = make_geom(p, oh, ow);
    const int64_t in_image = p->c * p->h * p->w, out_image = p->k * ohw;
    for (int64_t img = 0; img < p->n; img++) {
        const float *xi = x + img * in_image;
        const float *dyi = dy + img * out_image;
        const float *col = xi;  // direct: x[C, H*W] is the column matrix
        if (!direct) {
            im2col_rows(&g, xi, scratch, 0, crs);
            col = scratch;
        }
        // dweight[K, CRS] += dy[K, OHW] * col[CRS, OHW]^T
        st = ek__sgemm(0, 1, p->k, crs, ohw, 1.0f, dyi, ohw, col, ohw, 1.0f, dweight, crs);
        if (st != EK_OK) return st;
        if (dbias != NULL)
            for (int64_t k = 0; k < p->k; k++) dbias[k] = dbias[k] + ek__sum_f32(dyi + k * ohw, ohw);
    }
    return EK_OK;
}
