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
// dx[c] = 0, then for every column row (c, ki, kj) and output row oh whose input row ih is
// inside the image, the run of valid output columns [ow_lo, ow_hi) (the same range
// im2col copies) is ADDED to dx[c, ih, ow*sw + off_w]. Every path visits (ki, kj, oh, ow)
// in the same order, and a vector only ever holds distinct output columns of one row, so
// each dx element receives the same additions in the same order on every ISA: the AVX2 and
// AVX-512 results equal the scalar reference bit for bit. One channel plane at a time: the
// plane (12.5 KB at 56x56) stays in L1 while its R*S column rows stream through.

// dst[i * stride] += src[i] for i < n. `limit` is the end of the channel plane: a full
// vector load/store of dst may cover elements between the ones written (left unchanged),
// but never past `limit`.
typedef void (*scatter_add_fn)(float *dst, const float *src, int64_t n, int64_t stride,
                               const float *limit);

static void scatter_add_scalar(float *dst, const float *src, int64_t n, int64_t stride,
                               const float *limit) {
    (void)limit;
    if (stride == 1) {
        for (int64_t i = 0; i < n; i++) dst[i] = dst[i] + src[i];
        return;
    }
    for (int64_t i = 0; i < n; i++) dst[i * stride] = dst[i * stride] + src[i];
}

EK_TARGET_AVX2 static void scatter_add_avx2(float *dst, const float *src, int64_t n,
                                            int64_t stride, const float *limit) {
    int64_t i = 0;
    if (stride == 1) {
        for (; i + 16 <= n; i += 16) {
            const __m256 a = _mm256_add_ps(_mm256_loadu_ps(dst + i), _mm256_loadu_ps(src + i));
            const __m256 b = _mm256_add_ps(_mm256_loadu_ps(dst + i + 8), _mm256_loadu_ps(src + i + 8));
            _mm256_storeu_ps(dst + i, a);
            _mm256_storeu_ps(dst + i + 8, b);
        }
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(dst + i, _mm256_add_ps(_mm256_loadu_ps(dst + i), _mm256_loadu_ps(src + i)));
        for (; i < n; i++) dst[i] = dst[i] + src[i];
        return;
    }
    if (stride == 2) {
        // 8 sources go to dst[0, 2, ..., 14]; dst[1..15] is loaded and stored back
        // unchanged (blend), so the block needs dst[0..15] inside the plane.
        const __m256i spread_lo = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
        const __m256i spread_hi = _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7);
        for (; i + 8 <= n && dst + 2 * i + 16 <= limit; i += 8) {
            float *d = dst + 2 * i;
            const __m256 s = _mm256_loadu_ps(src + i);
            const __m256 a = _mm256_loadu_ps(d), b = _mm256_loadu_ps(d + 8);
            const __m256 sa = _mm256_permutevar8x32_ps(s, spread_lo);
            const __m256 sb = _mm256_permutevar8x32_ps(s, spread_hi);
            _mm256_storeu_ps(d, _mm256_blend_ps(a, _mm256_add_ps(a, sa), 0x55));
            _mm256_storeu_ps(d + 8, _mm256_blend_ps(b, _mm256_add_ps(b, sb), 0x55));
        }
    }
    for (; i < n; i++) dst[i * stride] = dst[i * stride] + src[i];
}

EK_TARGET_AVX512 static void scatter_add_avx512(float *dst, const float *src, int64_t n,
                                                int64_t stride, const float *limit) {
    (void)limit;
    int64_t i = 0;
    if (stride == 1) {
        for (; i + 32 <= n; i += 32) {
            const __m512 a = _mm512_add_ps(_mm512_loadu_ps(dst + i), _mm512_loadu_ps(src + i));
            const __m512 b = _mm512_add_ps(_mm512_loadu_ps(dst + i + 16), _mm512_loadu_ps(src + i + 16));
            _mm512_storeu_ps(dst + i, a);
            _mm512_storeu_ps(dst + i + 16, b);
        }
        for (; i < n; i += 16) {
            const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
            const __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst + i), _mm512_maskz_loadu_ps(m, src + i));
            _mm512_mask_storeu_ps(dst + i, m, v);
        }
        return;
    }
    if (stride == 2) {
        // 16 sources go to the even lanes of dst[0..31]; only those lanes are loaded and
        // stored (mask 0x5555 and its tail), so nothing outside the row is touched.
        const __m512i spread_lo = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
        const __m512i spread_hi = _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
        for (; i < n; i += 16) {
            const int64_t left = n - i < 16 ? n - i : 16;
            const __mmask16 ms = (__mmask16)((1u << left) - 1u);
            // Even lanes 2j with j < left: j < 8 in the low half, j >= 8 in the high half.
            const uint32_t lo_n = left < 8 ? (uint32_t)left : 8u;
            const uint32_t hi_n = left > 8 ? (uint32_t)(left - 8) : 0u;
            const __mmask16 m_lo = (__mmask16)(0x5555u & ((1u << (2 * lo_n)) - 1u));
            const __mmask16 m_hi = (__mmask16)(0x5555u & ((1u << (2 * hi_n)) - 1u));
            float *d = dst + 2 * i;
            const __m512 s = _mm512_maskz_loadu_ps(ms, src + i);
            const __m512 a = _mm512_maskz_loadu_ps(m_lo, d);
            const __m512 b = _mm512_maskz_loadu_ps(m_hi, d + 16);
            _mm512_mask_storeu_ps(d, m_lo, _mm512_add_ps(a, _mm512_permutexvar_ps(spread_lo, s)));
            _mm512_mask_storeu_ps(d + 16, m_hi, _mm512_add_ps(b, _mm512_permutexvar_ps(spread_hi, s)));
        }
        return;
    }
    for (; i < n; i++) dst[i * stride] = dst[i * stride] + src[i];
}

// One channel: dxc[H*W] from its R*S column rows at colc.
static inline __attribute__((always_inline)) void
col2im_channel_body(const geom *g, const float *colc, float *dxc, scatter_add_fn add) {
    const int64_t ohw = g->oh * g->ow;
    memset(dxc, 0, (size_t)(g->h * g->w) * sizeof(float));
    const float *limit = dxc + g->h * g->w;
    for (int64_t ki = 0; ki < g->r; ki++) {
        for (int64_t kj = 0; kj < g->s; kj++) {
            const float *src = colc + (ki * g->s + kj) * ohw;
            // The same valid column range as im2col_row_body.
            const int64_t off_w = kj * g->dw - g->pw;
            int64_t ow_lo = off_w >= 0 ? 0 : (-off_w + g->sw - 1) / g->sw;
            int64_t ow_hi = (g->w - 1 - off_w) < 0 ? 0 : (g->w - 1 - off_w) / g->sw + 1;
            if (ow_hi > g->ow) ow_hi = g->ow;
            if (ow_lo >= ow_hi) continue;
            const int64_t run = ow_hi - ow_lo;
            for (int64_t oh = 0; oh < g->oh; oh++) {
                const int64_t ih = oh * g->sh - g->ph + ki * g->dh;
                if (ih < 0 || ih >= g->h) continue;
                add(dxc + ih * g->w + ow_lo * g->sw + off_w, src + oh * g->ow + ow_lo, run, g->sw,
                    limit);
            }
        }
    }
}

typedef void (*col2im_channel_fn)(const geom *g, const float *colc, float *dxc);

static void col2im_channel_scalar(const geom *g, const float *colc, float *dxc) {
    col2im_channel_body(g, colc, dxc, scatter_add_scalar);
}
EK_TARGET_AVX2 static void col2im_channel_avx2(const geom *g, const float *colc, float *dxc) {
    col2im_channel_body(g, colc, dxc, scatter_add_avx2);
}
EK_TARGET_AVX512 static void col2im_channel_avx512(const geom *g, const float *colc, float *dxc) {
    col2im_channel_body(g, colc, dxc, scatter_add_avx512);
}

// Channels [c_begin, c_end) of one image; col and dx are the whole image's matrices.
static void col2im_channels(const geom *g, const float *col, float *dx, int64_t c_begin,
                            int64_t c_end) {
    col2im_channel_fn fn = col2im_channel_scalar;
    switch (ek__isa()) {
    case EK_ISA_AVX512: fn = col2im_channel_avx512; break;
    case EK_ISA_AVX2: fn = col2im_channel_avx2; break;
    case EK_ISA_SCALAR: break;
    }
    const int64_t rows = g->r * g->s, ohw = g->oh * g->ow, hw = g->h * g->w;
    for (int64_t c = c_begin; c < c_end; c++) fn(g, col + c * rows * ohw, dx + c * hw);
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
