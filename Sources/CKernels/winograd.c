// Winograd convolution F(4×4, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural
// Networks", 2016): each 4×4 block of outputs of a 3×3, stride-1 convolution comes from a
// 6×6 block of inputs with 36 multiplications per channel pair instead of 144. The caller
// transforms the weights once (U = G g Gᵀ), the input tiles (V = Bᵀ d B), multiplies the
// 36 matrices U_e[K, C] · V_e[C, T] with sgemm, and transforms the products back
// (Y = Aᵀ M A). Interpolation points 0, ±1, ±2 keep the float32 error near 1e-6 relative.
//
// The weight transform runs once per layer and stays scalar; the tile transforms run on
// every call and are compiled per instruction set from one C source (see "Row passes").
#include "internal.h"

#include <string.h>

enum { TILE_OUT = 4, TILE_IN = 6, ELEMENTS = TILE_IN * TILE_IN };

int ek_winograd_applies(const ek_conv2d_params *p) {
    int64_t oh, ow;
    if (ek_conv2d_output_size(p, &oh, &ow) != EK_OK) return 0;
    return p->r == 3 && p->s == 3 && p->stride_h == 1 && p->stride_w == 1 &&
           p->dilation_h == 1 && p->dilation_w == 1 && p->pad_h <= 2 && p->pad_w <= 2;
}

ek_status ek_winograd_tiles(const ek_conv2d_params *p, int64_t *tiles_h, int64_t *tiles_w) {
    int64_t oh, ow;
    if (!ek_winograd_applies(p) || tiles_h == NULL || tiles_w == NULL ||
        ek_conv2d_output_size(p, &oh, &ow) != EK_OK)
        return EK_ERR_INVALID_ARGUMENT;
    *tiles_h = (oh + TILE_OUT - 1) / TILE_OUT;
    *tiles_w = (ow + TILE_OUT - 1) / TILE_OUT;
    return EK_OK;
}

// MARK: - Weights: U = G g Gᵀ

// G (6×3) applied to `count` 3-vectors (g0[c], g1[c], g2[c]) at once: out[i][c], i < 6. One
// loop over the channels per output row, which the compiler vectorises (the same operations per
// element as one vector at a time, so the same bits).
static void weight_columns(int64_t count, const float *g0, const float *g1, const float *g2, float out[6][64]) {
    for (int64_t c = 0; c < count; c++) out[0][c] = g0[c] * (1.0f / 4.0f);
    for (int64_t c = 0; c < count; c++) out[1][c] = (g0[c] + g1[c] + g2[c]) * (-1.0f / 6.0f);
    for (int64_t c = 0; c < count; c++) out[2][c] = (g0[c] - g1[c] + g2[c]) * (-1.0f / 6.0f);
    for (int64_t c = 0; c < count; c++)
        out[3][c] = g0[c] * (1.0f / 24.0f) + g1[c] * (1.0f / 12.0f) + g2[c] * (1.0f / 6.0f);
    for (int64_t c = 0; c < count; c++)
        out[4][c] = g0[c] * (1.0f / 24.0f) - g1[c] * (1.0f / 12.0f) + g2[c] * (1.0f / 6.0f);
    for (int64_t c = 0; c < count; c++) out[5][c] = g2[c];
}

static ek_status winograd_weight(const ek_conv2d_params *p, const float *weight, float *u, int packed) {
    enum { MR = EK_GEMM_MR };
    if (!ek_winograd_applies(p) || weight == NULL || u == NULL || !ek__share_ok(p->ith, p->nth))
        return EK_ERR_INVALID_ARGUMENT;
    const int64_t kc = packed ? ek_gemm_packed_a_floats(p->k, p->c) : p->k * p->c;
    int64_t begin, end;
    ek__share(p->k, p->ith, p->nth, &begin, &end);
    for (int64_t k = begin; k < end; k++) {
        // Row k of each of the 36 matrices is C contiguous floats: fill them one element
        // (i, j) at a time so every write streams, instead of 36 scattered writes per filter.
        for (int64_t c0 = 0; c0 < p->c; c0 += 64) {
            const int64_t count = ek__min64(64, p->c - c0);
            // The 64 filters' taps as rows over the channels, G g per kernel column, then G
            // across: block[i·6 + j][c] = (G g Gᵀ)[i][j] of channel c0 + c.
            float taps[9][64], columns[3][6][64], block[36][64];
            for (int64_t c = 0; c < count; c++)
                for (int t = 0; t < 9; t++) taps[t][c] = weight[(k * p->c + c0 + c) * 9 + t];
            for (int j = 0; j < 3; j++) weight_columns(count, taps[j], taps[3 + j], taps[6 + j], columns[j]);
            for (int i = 0; i < 6; i++)
                weight_columns(count, columns[0][i], columns[1][i], columns[2][i], &block[i * 6]);
            if (!packed) {
                for (int e = 0; e < 36; e++)
                    memcpy(u + e * kc + k * p->c + c0, block[e], (size_t)count * sizeof(float));
                continue;
            }
            float *panel = u + (k / MR) * p->c * MR + k % MR;
            for (int e = 0; e < 36; e++)
                for (int64_t c = 0; c < count; c++) panel[e * kc + (c0 + c) * MR] = block[e][c];
        }
        // The last row zero-fills the rows past K of its panel.
        if (packed && k == p->k - 1) {
            for (int64_t row = k + 1; row % MR != 0; row++) {
                float *panel = u + (row / MR) * p->c * MR + row % MR;
                for (int e = 0; e < 36; e++)
                    for (int64_t c = 0; c < p->c; c++) panel[e * kc + c * MR] = 0.0f;
            }
        }
    }
    return EK_OK;
}

ek_status ek_winograd_weight_f32(const ek_conv2d_params *p, const float *weight, float *u) {
    return winograd_weight(p, weight, u, 0);
}

ek_status ek_winograd_weight_packed_f32(const ek_conv2d_params *p, const float *weight, float *u) {
    return winograd_weight(p, weight, u, 1);
}

// MARK: - Row passes
//
// Both tile transforms work on runs of at most CHUNK tiles, each in two passes that the
// compiler vectorises: a pass down the six rows over contiguous columns (or tiles), then a
// pass across whose stride-4 accesses it turns into shuffles. The same C is
// compiled for each instruction set (FP contraction is off, so every level gives the same
// bits); only the vector width differs.

enum { CHUNK = 64, CHUNK_COLUMNS = CHUNK * TILE_OUT + 2 };

#define EK_ALWAYS_INLINE static inline __attribute__((always_inline))

// The Bᵀ rows applied down six rows `d` (each `len` long) into six rows `r`.
EK_ALWAYS_INLINE void input_down(int64_t len, float d[6][CHUNK_COLUMNS], float r[6][CHUNK_COLUMNS]) {
    for (int64_t x = 0; x < len; x++) {
        const float d0 = d[0][x], d1 = d[1][x], d2 = d[2][x], d3 = d[3][x], d4 = d[4][x], d5 = d[5][x];
        r[0][x] = (4.0f * d0 - 5.0f * d2) + d4;
        r[1][x] = (d3 + d4) - 4.0f * (d1 + d2);
        r[2][x] = 4.0f * (d1 - d2) + (d4 - d3);
        r[3][x] = 2.0f * (d3 - d1) + (d4 - d2);
        r[4][x] = 2.0f * (d1 - d3) + (d4 - d2);
        r[5][x] = (4.0f * d1 - 5.0f * d3) + d5;
    }
}

// The Bᵀ rows applied across row `r` for each of `tiles` tiles: out[j * CHUNK + t], j < 6.
EK_ALWAYS_INLINE void input_across(int64_t tiles, const float *r, float *out) {
    for (int64_t t = 0; t < tiles; t++) {
        const float *q = r + TILE_OUT * t;
        const float d0 = q[0], d1 = q[1], d2 = q[2], d3 = q[3], d4 = q[4], d5 = q[5];
        out[0 * CHUNK + t] = (4.0f * d0 - 5.0f * d2) + d4;
        out[1 * CHUNK + t] = (d3 + d4) - 4.0f * (d1 + d2);
        out[2 * CHUNK + t] = 4.0f * (d1 - d2) + (d4 - d3);
        out[3 * CHUNK + t] = 2.0f * (d3 - d1) + (d4 - d2);
        out[4 * CHUNK + t] = 2.0f * (d1 - d3) + (d4 - d2);
        out[5 * CHUNK + t] = (4.0f * d1 - 5.0f * d3) + d5;
    }
}

// The Aᵀ rows applied down the 6×6 products, read in place (m[(i*6 + j) * stride + t]),
// into s[i'][j][t], i' < 4.
EK_ALWAYS_INLINE void output_down(int64_t tiles, const float *m, int64_t stride, float s[4][6][CHUNK]) {
    for (int j = 0; j < 6; j++) {
        const float *r0 = m + j * stride, *r1 = r0 + 6 * stride, *r2 = r1 + 6 * stride,
                    *r3 = r2 + 6 * stride, *r4 = r3 + 6 * stride, *r5 = r4 + 6 * stride;
        for (int64_t t = 0; t < tiles; t++) {
            const float m0 = r0[t], m1 = r1[t], m2 = r2[t], m3 = r3[t], m4 = r4[t], m5 = r5[t];
            const float sum12 = m1 + m2, diff12 = m1 - m2, sum34 = m3 + m4, diff34 = m3 - m4;
            s[0][j][t] = (m0 + sum12) + sum34;
            s[1][j][t] = diff12 + 2.0f * diff34;
            s[2][j][t] = sum12 + 4.0f * sum34;
            s[3][j][t] = (diff12 + 8.0f * diff34) + m5;
        }
    }
}

// The Aᵀ rows applied across s[j][first + t] (t < tiles) into one output row (4 values per
// tile), plus bias and the activation.
EK_ALWAYS_INLINE void output_across(int64_t first, int64_t tiles, float s[6][CHUNK], float bias, int relu,
                                    float row[CHUNK * TILE_OUT]) {
    for (int64_t t = 0; t < tiles; t++) {
        const int64_t q = first + t;
        const float m0 = s[0][q], m1 = s[1][q], m2 = s[2][q], m3 = s[3][q], m4 = s[4][q], m5 = s[5][q];
        const float sum12 = m1 + m2, diff12 = m1 - m2, sum34 = m3 + m4, diff34 = m3 - m4;
        float o[4] = {(m0 + sum12) + sum34, diff12 + 2.0f * diff34, sum12 + 4.0f * sum34,
                      (diff12 + 8.0f * diff34) + m5};
        for (int j = 0; j < 4; j++) {
            const float value = o[j] + bias;
            row[TILE_OUT * t + j] = relu ? ek__relu(value) : value;
        }
    }
}

// Tile-major staging of one channel's transformed tiles: 36 rows of CHUNK consecutive
// tiles, written to v in whole runs (small planes have only 2–4 tiles a row; copying
// those per row would be 36 tiny copies per row).
typedef struct input_stage {
    float out[36][CHUNK];
    int64_t filled;      // tiles staged
    int64_t first_tile;  // tile index of out[·][0]
} input_stage;

EK_ALWAYS_INLINE void input_flush(input_stage *stage, float *v, int64_t ct) {
    for (int e = 0; e < 36; e++)
        memcpy(v + e * ct + stage->first_tile, stage->out[e], (size_t)stage->filled * sizeof(float));
    stage->first_tile += stage->filled;
    stage->filled = 0;
}

// The packed-B form of `input_flush` (ek_gemm_pack_b_f32's layout, one product per e): the
// staged tiles of channel `c` go to v[e·e_stride + (t / NR)·C·NR + c·NR + t % NR], a last
// partial panel padded with zeros. Flushes start at multiples of CHUNK, so panels never split.
EK_ALWAYS_INLINE void input_flush_packed(input_stage *stage, float *v, int64_t e_stride, int64_t channels,
                                         int64_t c, int64_t base_tile) {
    enum { NR = EK_GEMM_NR };
    for (int64_t g = 0; g < stage->filled; g += NR) {
        const int64_t count = ek__min64(NR, stage->filled - g);
        float *panel = v + ((stage->first_tile - base_tile + g) / NR) * channels * NR + c * NR;
        // A whole panel row is a fixed-size copy the compiler inlines (a libc call per 64 bytes
        // cost more than the transform itself).
        if (count == NR) {
            for (int e = 0; e < 36; e++) memcpy(panel + e * e_stride, &stage->out[e][g], NR * sizeof(float));
            continue;
        }
        for (int e = 0; e < 36; e++) {
            float *target = panel + e * e_stride;
            for (int64_t l = 0; l < NR; l++) target[l] = l < count ? stage->out[e][g + l] : 0.0f;
        }
    }
    stage->first_tile += stage->filled;
    stage->filled = 0;
}

// A run of `tiles` tiles of one tile row of a channel plane (input rows y0..y0+5 and
// columns from x0, zero outside) into the stage; tiles ≤ CHUNK − stage->filled.
EK_ALWAYS_INLINE void input_run(const float *plane, int64_t h, int64_t w, int64_t y0, int64_t x0,
                                int64_t tiles, input_stage *stage) {
    float d[6][CHUNK_COLUMNS], r[6][CHUNK_COLUMNS];
    const int64_t len = TILE_OUT * tiles + 2;
    const int64_t lo = ek__max64(0, -x0), hi = ek__min64(len, w - x0);  // valid columns [lo, hi)
    // Plain loops rather than memcpy/memset: on small planes the runs are a few floats.
    for (int i = 0; i < 6; i++) {
        const int64_t y = y0 + i;
        const int inside = y >= 0 && y < h;
        const int64_t a = inside ? ek__min64(lo, len) : len, b = inside ? ek__max64(hi, a) : len;
        const float *source = inside ? plane + y * w + x0 : NULL;
        for (int64_t x = 0; x < a; x++) d[i][x] = 0.0f;
        for (int64_t x = a; x < b; x++) d[i][x] = source[x];
        for (int64_t x = b; x < len; x++) d[i][x] = 0.0f;
    }
    input_down(len, d, r);
    for (int i = 0; i < 6; i++) input_across(tiles, r[i], &stage->out[i * 6][stage->filled]);
    stage->filled += tiles;
}

// All tiles of channel `c` (every image) into v[e * ct + c * tiles + t].
EK_ALWAYS_INLINE void input_channel(const ek_conv2d_params *p, int64_t tiles_h, int64_t tiles_w,
                                    const float *x, int64_t c, float *v, int64_t ct) {
    input_stage stage;
    stage.filled = 0;
    stage.first_tile = 0;
    float *channel_v = v + c * p->n * tiles_h * tiles_w;
    for (int64_t image = 0; image < p->n; image++) {
        const float *plane = x + (image * p->c + c) * p->h * p->w;
        for (int64_t ty = 0; ty < tiles_h; ty++) {
            for (int64_t tx = 0; tx < tiles_w;) {
                const int64_t run = ek__min64(CHUNK - stage.filled, tiles_w - tx);
                input_run(plane, p->h, p->w, ty * TILE_OUT - p->pad_h, tx * TILE_OUT - p->pad_w, run, &stage);
                tx += run;
                if (stage.filled == CHUNK) input_flush(&stage, channel_v, ct);
            }
        }
    }
    if (stage.filled > 0) input_flush(&stage, channel_v, ct);
}

// Tiles [t_begin, t_end) (counted over every image; t_begin a multiple of EK_GEMM_NR) of every
// channel into the packed-B panels of the 36 products (e stride `e_stride`), whose column 0 is
// tile `base_tile`, in groups of CHUNK tiles. Groups outside, channels inside: consecutive
// channels fill consecutive 64-byte rows of each panel, where channels outside would scatter
// every write to another page.
EK_ALWAYS_INLINE void input_groups(const ek_conv2d_params *p, int64_t tiles_h, int64_t tiles_w, const float *x,
                                   int64_t t_begin, int64_t t_end, float *v, int64_t e_stride, int64_t base_tile) {
    const int64_t per_image = tiles_h * tiles_w;
    input_stage stage;
    for (int64_t t0 = t_begin; t0 < t_end; t0 += CHUNK) {
        const int64_t t1 = ek__min64(t_end, t0 + CHUNK);
        for (int64_t c = 0; c < p->c; c++) {
            stage.filled = 0;
            stage.first_tile = t0;
            for (int64_t t = t0; t < t1;) {
                const int64_t image = t / per_image, ty = (t % per_image) / tiles_w, tx = t % tiles_w;
                const int64_t run = ek__min64(t1 - t, tiles_w - tx);
                const float *plane = x + (image * p->c + c) * p->h * p->w;
                input_run(plane, p->h, p->w, ty * TILE_OUT - p->pad_h, tx * TILE_OUT - p->pad_w, run, &stage);
                t += run;
            }
            input_flush_packed(&stage, v, e_stride, p->c, c, base_tile);
        }
    }
}

// Tiles [t_begin, t_end) of output channel `k` (counted over every image), their products at
// mk[e * e_stride + (t − t_begin)], → y[image, k, ·, ·], CHUNK consecutive tiles (across rows and
// images) at a time.
EK_ALWAYS_INLINE void output_range(const ek_conv2d_params *p, int64_t tiles_h, int64_t tiles_w, int64_t oh,
                                   int64_t ow, const float *mk, int64_t e_stride, int64_t t_begin, int64_t t_end,
                                   int64_t k, float bias, int relu, float *y) {
    float s[4][6][CHUNK], row[CHUNK * TILE_OUT];
    const int64_t per_image = tiles_h * tiles_w;
    for (int64_t t0 = t_begin; t0 < t_end; t0 += CHUNK) {
        const int64_t count = ek__min64(CHUNK, t_end - t0);
        output_down(count, mk + (t0 - t_begin), e_stride, s);
        // Runs of tiles within one tile row.
        for (int64_t first = 0; first < count;) {
            const int64_t t = t0 + first;
            const int64_t image = t / per_image, ty = (t % per_image) / tiles_w, tx = t % tiles_w;
            const int64_t run = ek__min64(count - first, tiles_w - tx);
            float *plane = y + (image * p->k + k) * oh * ow;
            const int64_t y0 = ty * TILE_OUT, x0 = tx * TILE_OUT;
            // Whole tiles straight into the output; a last tile cut by the border via `row`.
            const int64_t whole = ek__min64(run, (ow - x0) / TILE_OUT);
            const int64_t cut = ow - x0 - TILE_OUT * whole;  // columns of a last, cut tile
            for (int i = 0; i < 4 && y0 + i < oh; i++) {
                float *target = plane + (y0 + i) * ow + x0;
                output_across(first, whole, s[i], bias, relu, target);
                if (whole < run) {
                    output_across(first + whole, 1, s[i], bias, relu, row);
                    for (int64_t j = 0; j < cut; j++) target[TILE_OUT * whole + j] = row[j];
                }
            }
            first += run;
        }
    }
}

// All tiles of output channel `k`: m[e * kt + k * tiles + t] → y[image, k, ·, ·].
EK_ALWAYS_INLINE void output_channel(const ek_conv2d_params *p, int64_t tiles_h, int64_t tiles_w, int64_t oh,
                                     int64_t ow, const float *m, int64_t k, float bias, int relu, float *y) {
    const int64_t tiles = p->n * tiles_h * tiles_w;
    output_range(p, tiles_h, tiles_w, oh, ow, m + k * tiles, p->k * tiles, 0, tiles, k, bias, relu, y);
}

// The fused convolution of tiles [t_begin, t_end) (t_begin a multiple of EK_GEMM_NR) in blocks
// of at most `block` tiles (a multiple of CHUNK): per block, the input tiles into packed panels
// in `work`, the 36 products into `work` after them, and the output transform, so the
// transformed tiles stay in cache instead of going out to memory and back twice.
EK_ALWAYS_INLINE void fused_blocks(const ek_conv2d_params *p, int64_t tiles_h, int64_t tiles_w, int64_t oh,
                                   int64_t ow, const float *u, const float *x, const float *bias, float *y,
                                   float *work, int64_t block, int64_t t_begin, int64_t t_end) {
    const int64_t u_stride = ek_gemm_packed_a_floats(p->k, p->c);
    const int64_t v_stride = ek_gemm_packed_b_floats(p->c, block);
    float *v = work, *m = work + 36 * v_stride;
    const int relu = p->activation == EK_ACT_RELU;
    for (int64_t t0 = t_begin; t0 < t_end; t0 += block) {
        const int64_t t1 = ek__min64(t_end, t0 + block), count = t1 - t0;
        input_groups(p, tiles_h, tiles_w, x, t0, t1, v, v_stride, t0);
        for (int e = 0; e < 36; e++) {
            ek_gemm_packed_params g = {p->k, count, p->c, u + e * u_stride, v + e * v_stride, m + e * p->k * count,
                                       count, 0, NULL, EK_ACT_NONE, 0, (count + EK_GEMM_NR - 1) / EK_GEMM_NR};
            ek_gemm_packed_f32(&g);
        }
        for (int64_t k = 0; k < p->k; k++)
            output_range(p, tiles_h, tiles_w, oh, ow, m + k * count, p->k * count, t0, t1, k, bias ? bias[k] : 0.0f,
                         relu, y);
    }
}

#define EK_WINOGRAD_VARIANTS(suffix, target)                                                        \
    target static void input_channel_##suffix(const ek_conv2d_params *p, int64_t tiles_h,           \
                                              int64_t tiles_w, const float *x, int64_t c, float *v, \
                                              int64_t ct) {                                         \
        input_channel(p, tiles_h, tiles_w, x, c, v, ct);                                            \
    }                                                                                               \
    target static void input_groups_##suffix(const ek_conv2d_params *p, int64_t tiles_h,            \
                                             int64_t tiles_w, const float *x, int64_t begin,        \
                                             int64_t end, float *v, int64_t e_stride,               \
                                             int64_t base_tile) {                                   \
        input_groups(p, tiles_h, tiles_w, x, begin, end, v, e_stride, base_tile);                   \
    }                                                                                               \
    target static void fused_blocks_##suffix(const ek_conv2d_params *p, int64_t tiles_h,            \
                                             int64_t tiles_w, int64_t oh, int64_t ow,               \
                                             const float *u, const float *x, const float *bias,     \
                                             float *y, float *work, int64_t block, int64_t begin,   \
                                             int64_t end) {                                         \
        fused_blocks(p, tiles_h, tiles_w, oh, ow, u, x, bias, y, work, block, begin, end);          \
    }                                                                                               \
    target static void output_channel_##suffix(const ek_conv2d_params *p, int64_t tiles_h,          \
                                               int64_t tiles_w, int64_t oh, int64_t ow,             \
                                               const float *m, int64_t k, float bias, int relu,     \
                                               float *y) {                                          \
        output_channel(p, tiles_h, tiles_w, oh, ow, m, k, bias, relu, y);                           \
    }

EK_WINOGRAD_VARIANTS(scalar, )
EK_WINOGRAD_VARIANTS(avx2, EK_TARGET_AVX2)
EK_WINOGRAD_VARIANTS(avx512, EK_TARGET_AVX512)

typedef void (*input_channel_fn)(const ek_conv2d_params *, int64_t, int64_t, const float *, int64_t, float *,
                                 int64_t);
typedef void (*input_groups_fn)(const ek_conv2d_params *, int64_t, int64_t, const float *, int64_t, int64_t,
                                float *, int64_t, int64_t);
typedef void (*fused_blocks_fn)(const ek_conv2d_params *, int64_t, int64_t, int64_t, int64_t, const float *,
                                const float *, const float *, float *, float *, int64_t, int64_t, int64_t);
typedef void (*output_channel_fn)(const ek_conv2d_params *, int64_t, int64_t, int64_t, int64_t, const float *,
                                  int64_t, float, int, float *);

// MARK: - Input tiles: V = Bᵀ d B

ek_status ek_winograd_input_f32(const ek_conv2d_params *p, const float *x, float *v) {
    int64_t tiles_h, tiles_w;
    if (x == NULL || v == NULL || !ek__share_ok(p ? p->ith : 0, p ? p->nth : 0) ||
        ek_winograd_tiles(p, &tiles_h, &tiles_w) != EK_OK)
        return EK_ERR_INVALID_ARGUMENT;
    const input_channel_fn channel = ek__isa() == EK_ISA_AVX512 ? input_channel_avx512
                                     : ek__isa() == EK_ISA_AVX2 ? input_channel_avx2
                                                                : input_channel_scalar;
    const int64_t ct = p->c * p->n * tiles_h * tiles_w;
    int64_t begin, end;
    ek__share(p->c, p->ith, p->nth, &begin, &end);
    for (int64_t c = begin; c < end; c++) channel(p, tiles_h, tiles_w, x, c, v, ct);
    return EK_OK;
}

int64_t ek_winograd_input_groups(const ek_conv2d_params *p) {
    int64_t tiles_h, tiles_w;
    if (ek_winograd_tiles(p, &tiles_h, &tiles_w) != EK_OK) return 0;
    return (p->n * tiles_h * tiles_w + CHUNK - 1) / CHUNK;
}

ek_status ek_winograd_input_packed_f32(const ek_conv2d_params *p, const float *x, float *v) {
    int64_t tiles_h, tiles_w;
    if (x == NULL || v == NULL || !ek__share_ok(p ? p->ith : 0, p ? p->nth : 0) ||
        ek_winograd_tiles(p, &tiles_h, &tiles_w) != EK_OK)
        return EK_ERR_INVALID_ARGUMENT;
    const input_groups_fn groups = ek__isa() == EK_ISA_AVX512 ? input_groups_avx512
                                   : ek__isa() == EK_ISA_AVX2 ? input_groups_avx2
                                                              : input_groups_scalar;
    const int64_t tiles = p->n * tiles_h * tiles_w;
    int64_t begin, end;
    ek__share((tiles + CHUNK - 1) / CHUNK, p->ith, p->nth, &begin, &end);
    groups(p, tiles_h, tiles_w, x, begin * CHUNK, ek__min64(tiles, end * CHUNK), v, ek_gemm_packed_b_floats(p->c, tiles),
           0);
    return EK_OK;
}

// MARK: - Output tiles: Y = Aᵀ M A

ek_status ek_winograd_output_f32(const ek_conv2d_params *p, const float *m, const float *bias,
                                 float *y) {
    int64_t tiles_h, tiles_w, oh, ow;
    if (m == NULL || y == NULL || !ek__share_ok(p ? p->ith : 0, p ? p->nth : 0) ||
        ek_winograd_tiles(p, &tiles_h, &tiles_w) != EK_OK ||
        ek_conv2d_output_size(p, &oh, &ow) != EK_OK)
        return EK_ERR_INVALID_ARGUMENT;
    if (p->activation != EK_ACT_NONE && p->activation != EK_ACT_RELU) return EK_ERR_INVALID_ARGUMENT;
    const output_channel_fn channel = ek__isa() == EK_ISA_AVX512 ? output_channel_avx512
                                      : ek__isa() == EK_ISA_AVX2 ? output_channel_avx2
                                                                 : output_channel_scalar;
    const int relu = p->activation == EK_ACT_RELU;
    int64_t begin, end;
    ek__share(p->k, p->ith, p->nth, &begin, &end);
    for (int64_t k = begin; k < end; k++)
        channel(p, tiles_h, tiles_w, oh, ow, m, k, bias ? bias[k] : 0.0f, relu, y);
    return EK_OK;
}

// MARK: - Fused: tile blocks through transform, products and output in cache

int64_t ek_winograd_fused_work_floats(const ek_conv2d_params *p, int64_t block_tiles) {
    if (!ek_winograd_applies(p) || block_tiles < 1 || block_tiles % CHUNK != 0) return 0;
    return 36 * (ek_gemm_packed_b_floats(p->c, block_tiles) + p->k * block_tiles);
}

ek_status ek_winograd_fused_f32(const ek_conv2d_params *p, const float *u, const float *x, const float *bias,
                                float *y, float *work, int64_t block_tiles) {
    int64_t tiles_h, tiles_w, oh, ow;
    if (u == NULL || x == NULL || y == NULL || work == NULL || !ek__share_ok(p ? p->ith : 0, p ? p->nth : 0) ||
        ek_winograd_fused_work_floats(p, block_tiles) == 0 || ek_winograd_tiles(p, &tiles_h, &tiles_w) != EK_OK ||
        ek_conv2d_output_size(p, &oh, &ow) != EK_OK)
        return EK_ERR_INVALID_ARGUMENT;
    if (p->activation != EK_ACT_NONE && p->activation != EK_ACT_RELU) return EK_ERR_INVALID_ARGUMENT;
    const fused_blocks_fn blocks = ek__isa() == EK_ISA_AVX512 ? fused_blocks_avx512
                                   : ek__isa() == EK_ISA_AVX2 ? fused_blocks_avx2
                                                              : fused_blocks_scalar;
    // Shares of whole panels rather than whole blocks, so threads get equal work when the
    // blocks do not divide evenly (a batch of 50 at 14×14: 800 tiles, 12.5 blocks of 64).
    const int64_t tiles = p->n * tiles_h * tiles_w, panels = (tiles + EK_GEMM_NR - 1) / EK_GEMM_NR;
    int64_t begin, end;
    ek__share(panels, p->ith, p->nth, &begin, &end);
    blocks(p, tiles_h, tiles_w, oh, ow, u, x, bias, y, work, block_tiles, begin * EK_GEMM_NR,
           ek__min64(tiles, end * EK_GEMM_NR));
    return EK_OK;
}
