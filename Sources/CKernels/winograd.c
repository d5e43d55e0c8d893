// Winograd convolution F(m×m, 3×3), m = 4, 5 or 6 (Lavin & Gray, "Fast Algorithms for
// Convolutional Neural Networks", 2016): each m×m block of outputs of a 3×3, stride-1
// convolution comes from an n×n block of inputs (n = m + 2) with n² multiplications per
// channel pair instead of 9m². The caller transforms the weights once (U = G g Gᵀ), the input
// tiles (V = Bᵀ d B), multiplies the n² matrices U_e[K, C] · V_e[C, T], and transforms the
// products back (Y = Aᵀ M A).
//
// The tile size is chosen per output plane (ek_winograd_tile_size): the one with the fewest
// multiplications counting the padding of a last, cut tile, each weighted by what a product of
// that size costs with its transforms. A ResNet at 224² gets F(5×5) on its 14² planes (23 %
// fewer products: F(4×4) pads 14 to 16; 10–15 % faster) and F(4×4) elsewhere: F(6×6) would
// save 9 % of the products on 56² and 28², which its dearer transforms eat. At 192², F(6×6)
// computes the 6² planes in one tile where F(4×4) needs four. Larger tiles round less well
// (their transforms have larger coefficients): points 0, ±1, ±2 (F4), ±1, ±2, ±1/2 (F5) and
// 0, ±1, ±2, ±1/2 (F6) keep the float32 error per layer at 6–10, 8–15 and 11–20 times a direct
// dot product's over 64–256 channels (tools/compare_occlusion.py --winograd-error).
//
// The weight transform runs once per layer; the tile transforms run on every call and are
// compiled per instruction set and tile size from one C source (see "Row passes").
#include "internal.h"

#include <string.h>

#define EK_ALWAYS_INLINE static inline __attribute__((always_inline))

#include "winograd_transforms.h"

// The largest tile: arrays sized by these serve every m.
enum { MAX_OUT = 6, MAX_IN = MAX_OUT + 2, MAX_ELEMENTS = MAX_IN * MAX_IN };

static int64_t tiles_along(int64_t size, int m) { return (size + m - 1) / m; }

int ek_winograd_tile_size(const ek_conv2d_params *p) {
    int64_t oh, ow;
    if (p == NULL || ek_conv2d_output_size(p, &oh, &ow) != EK_OK) return 0;
    if (!(p->r == 3 && p->s == 3 && p->stride_h == 1 && p->stride_w == 1 && p->dilation_h == 1 &&
          p->dilation_w == 1 && p->pad_h <= 2 && p->pad_w <= 2))
        return 0;
    if (p->winograd_tile != 0) return p->winograd_tile >= 4 && p->winograd_tile <= MAX_OUT ? p->winograd_tile : 0;
    // Cost per product relative to F(4×4)'s, in percent: the larger tiles' transforms cost more
    // per product and their products are shorter (measured on Zen 3 with the fused path: F(5×5)
    // 11 % and F(6×6) 12–21 % more per product), so they pay only where F(4×4) pads much.
    static const int64_t percent[MAX_OUT + 1] = {0, 0, 0, 0, 100, 112, 120};
    // The choice depends on the plane only, never on the batch: an image's results must not
    // depend on how many others share its call (a folder's rows equal the single-image runs
    // bit for bit). So it is the choice for a large batch; a single 14×14 image pays for it,
    // its 9 F(5×5) tiles filling one 16-wide panel of the packed products where F(4×4)'s 16 do.
    int best = 4;
    int64_t best_cost = 0;
    for (int m = 4; m <= MAX_OUT; m++) {
        const int64_t cost = tiles_along(oh, m) * tiles_along(ow, m) * (m + 2) * (m + 2) * percent[m];
        if (m == 4 || cost < best_cost) best = m, best_cost = cost;
    }
    return best;
}

int64_t ek_winograd_elements(const ek_conv2d_params *p) {
    const int m = ek_winograd_tile_size(p);
    return m == 0 ? 0 : (m + 2) * (m + 2);
}

int ek_winograd_applies(const ek_conv2d_params *p) { return ek_winograd_tile_size(p) != 0; }

ek_status ek_winograd_tiles(const ek_conv2d_params *p, int64_t *tiles_h, int64_t *tiles_w) {
    int64_t oh, ow;
    const int m = ek_winograd_tile_size(p);
    if (m == 0 || tiles_h == NULL || tiles_w == NULL || ek_conv2d_output_size(p, &oh, &ow) != EK_OK)
        return EK_ERR_INVALID_ARGUMENT;
    *tiles_h = tiles_along(oh, m);
    *tiles_w = tiles_along(ow, m);
    return EK_OK;
}

// MARK: - Weights: U = G g Gᵀ

// Channels the weight transform handles at a time: with a panel's EK_GEMM_MR filters, the
// vectorised loops run over WEIGHT_CHANNELS · MR lanes, lane q = channel · MR + filter, which
// is packed A's own order within a panel.
enum { WEIGHT_CHANNELS = 16, WEIGHT_LANES = WEIGHT_CHANNELS * EK_GEMM_MR };

// F(4×4)'s G (6×3) applied to `count` 3-vectors (g0[q], g1[q], g2[q]) at once: out[i][q],
// i < 6. One loop over the lanes per output row, which the compiler vectorises (the same
// operations per element as one vector at a time, so the same bits).
static void weight_columns(int64_t count, const float *g0, const float *g1, const float *g2,
                           float out[6][WEIGHT_LANES]) {
    for (int64_t q = 0; q < count; q++) out[0][q] = g0[q] * (1.0f / 4.0f);
    for (int64_t q = 0; q < count; q++) out[1][q] = (g0[q] + g1[q] + g2[q]) * (-1.0f / 6.0f);
    for (int64_t q = 0; q < count; q++) out[2][q] = (g0[q] - g1[q] + g2[q]) * (-1.0f / 6.0f);
    for (int64_t q = 0; q < count; q++)
        out[3][q] = g0[q] * (1.0f / 24.0f) + g1[q] * (1.0f / 12.0f) + g2[q] * (1.0f / 6.0f);
    for (int64_t q = 0; q < count; q++)
        out[4][q] = g0[q] * (1.0f / 24.0f) - g1[q] * (1.0f / 12.0f) + g2[q] * (1.0f / 6.0f);
    for (int64_t q = 0; q < count; q++) out[5][q] = g2[q];
}

// F(5×5) and F(6×6): G g Gᵀ of `count` lanes in double, rounded once (their G holds constants
// such as 1/90 that float32 cannot represent): block[i·n + j][q].
static void weight_block_double(int m, int64_t count, float taps[9][WEIGHT_LANES],
                                float block[MAX_ELEMENTS][WEIGHT_LANES]) {
    const int n = m + 2;
    const double(*g)[3] = m == 5 ? winograd_g_5 : winograd_g_6;
    double columns[MAX_IN][3][WEIGHT_LANES];  // (G g)[i][s] per lane
    for (int i = 0; i < n; i++)
        for (int s = 0; s < 3; s++)
            for (int64_t q = 0; q < count; q++)
                columns[i][s][q] = g[i][0] * taps[s][q] + g[i][1] * taps[3 + s][q] + g[i][2] * taps[6 + s][q];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            for (int64_t q = 0; q < count; q++)
                block[i * n + j][q] =
                    (float)(columns[i][0][q] * g[j][0] + columns[i][1][q] * g[j][1] + columns[i][2][q] * g[j][2]);
}

// The transformed weights of one panel of EK_GEMM_MR consecutive filters (k0 ..< k0 + rows;
// lanes of rows past K are zero) over channels [c0, c0 + channels): block[e][c·MR + r] for
// filter k0 + r, channel c0 + c, packed A's order. `transposed`: `weight` is the forward
// convolution's [C, K, 3, 3] (C = p->k, K = p->c here) and the transform is of its input
// gradient's kernel, transposed and flipped: tap t of (k, c) is weight[(c·K + k)·9 + 8 − t],
// read in place rather than copied out first (a panel's filters are adjacent there).
static void weight_panel(const ek_conv2d_params *p, int m, const float *weight, int transposed, int64_t k0,
                         int64_t rows, int64_t c0, int64_t channels, float block[MAX_ELEMENTS][WEIGHT_LANES]) {
    enum { MR = EK_GEMM_MR };
    float taps[9][WEIGHT_LANES];
    const int64_t lanes = channels * MR;
    for (int64_t c = 0; c < channels; c++)
        for (int64_t r = 0; r < MR; r++) {
            const int64_t q = c * MR + r;
            if (r >= rows) {
                for (int t = 0; t < 9; t++) taps[t][q] = 0.0f;
            } else if (transposed) {
                const float *source = weight + ((c0 + c) * p->k + k0 + r) * 9;
                for (int t = 0; t < 9; t++) taps[t][q] = source[8 - t];
            } else {
                const float *source = weight + ((k0 + r) * p->c + c0 + c) * 9;
                for (int t = 0; t < 9; t++) taps[t][q] = source[t];
            }
        }
    if (m == 4) {
        float columns[3][6][WEIGHT_LANES];
        for (int j = 0; j < 3; j++) weight_columns(lanes, taps[j], taps[3 + j], taps[6 + j], columns[j]);
        for (int i = 0; i < 6; i++) weight_columns(lanes, columns[0][i], columns[1][i], columns[2][i], &block[i * 6]);
    } else {
        weight_block_double(m, lanes, taps, block);
    }
    // Rows past K hold +0 as ek_gemm_pack_a_f32 pads them (the transform of zeros can be −0).
    for (int64_t r = rows; r < MR; r++)
        for (int e = 0; e < (m + 2) * (m + 2); e++)
            for (int64_t c = 0; c < channels; c++) block[e][c * MR + r] = 0.0f;
}

// Shares of whole panels of EK_GEMM_MR filters. A panel's block is packed A's layout already
// (a panel interleaves its MR filters channel by channel), so the packed form is written as
// whole runs; the plain form deinterleaves it.
static ek_status winograd_weight(const ek_conv2d_params *p, const float *weight, float *u, int packed,
                                 int transposed) {
    enum { MR = EK_GEMM_MR };
    const int m = ek_winograd_tile_size(p), n = m + 2, elements = n * n;
    if (m == 0 || weight == NULL || u == NULL || !ek__share_ok(p->ith, p->nth)) return EK_ERR_INVALID_ARGUMENT;
    const int64_t kc = packed ? ek_gemm_packed_a_floats(p->k, p->c) : p->k * p->c;
    float block[MAX_ELEMENTS][WEIGHT_LANES];  // 24 KiB
    int64_t begin, end;
    ek__share((p->k + MR - 1) / MR, p->ith, p->nth, &begin, &end);
    for (int64_t panel = begin; panel < end; panel++) {
        const int64_t k0 = panel * MR, rows = ek__min64(MR, p->k - k0);
        for (int64_t c0 = 0; c0 < p->c; c0 += WEIGHT_CHANNELS) {
            const int64_t channels = ek__min64(WEIGHT_CHANNELS, p->c - c0);
            weight_panel(p, m, weight, transposed, k0, rows, c0, channels, block);
            for (int e = 0; e < elements; e++) {
                if (packed) {
                    memcpy(u + e * kc + panel * p->c * MR + c0 * MR, block[e], (size_t)(channels * MR) * sizeof(float));
                    continue;
                }
                for (int64_t r = 0; r < rows; r++)
                    for (int64_t c = 0; c < channels; c++) u[e * kc + (k0 + r) * p->c + c0 + c] = block[e][c * MR + r];
            }
        }
    }
    return EK_OK;
}

ek_status ek_winograd_weight_f32(const ek_conv2d_params *p, const float *weight, float *u) {
    return winograd_weight(p, weight, u, 0, 0);
}

ek_status ek_winograd_weight_packed_f32(const ek_conv2d_params *p, const float *weight, float *u) {
    return winograd_weight(p, weight, u, 1, 0);
}

ek_status ek_winograd_weight_transposed_f32(const ek_conv2d_params *p, const float *weight, float *u, int packed) {
    return winograd_weight(p, weight, u, packed != 0, 1);
}

// MARK: - Row passes
//
// Both tile transforms work on runs of at most CHUNK tiles, each in two passes that the
// compiler vectorises: a pass down the n rows over contiguous columns (or tiles), then a
// pass across whose stride-m accesses it turns into shuffles. The same C is compiled for each
// instruction set and tile size (m is a constant in every always-inline function below, the
// dispatch wrappers at the end pass a literal); FP contraction is off, so every level gives
// the same bits; only the vector width differs.

enum { CHUNK = 64, CHUNK_COLUMNS = CHUNK * MAX_OUT + 2 };

// F(4×4, 3×3)'s Bᵀ: d[j·ds] → r[i·rs], i, j < 6 (points 0, ±1, ±2, ∞; its G above carries
// the signs and scales).
EK_ALWAYS_INLINE void winograd_in_4(const float *d, int64_t ds, float *r, int64_t rs) {
    const float d0 = d[0 * ds], d1 = d[1 * ds], d2 = d[2 * ds], d3 = d[3 * ds], d4 = d[4 * ds], d5 = d[5 * ds];
    r[0 * rs] = (4.0f * d0 - 5.0f * d2) + d4;
    r[1 * rs] = (d3 + d4) - 4.0f * (d1 + d2);
    r[2 * rs] = 4.0f * (d1 - d2) + (d4 - d3);
    r[3 * rs] = 2.0f * (d3 - d1) + (d4 - d2);
    r[4 * rs] = 2.0f * (d1 - d3) + (d4 - d2);
    r[5 * rs] = (4.0f * d1 - 5.0f * d3) + d5;
}

// F(4×4, 3×3)'s Aᵀ: s[j·ss] → o[i·os], j < 6, i < 4.
EK_ALWAYS_INLINE void winograd_out_4(const float *s, int64_t ss, float *o, int64_t os) {
    const float m0 = s[0 * ss], m1 = s[1 * ss], m2 = s[2 * ss], m3 = s[3 * ss], m4 = s[4 * ss], m5 = s[5 * ss];
    const float sum12 = m1 + m2, diff12 = m1 - m2, sum34 = m3 + m4, diff34 = m3 - m4;
    o[0 * os] = (m0 + sum12) + sum34;
    o[1 * os] = diff12 + 2.0f * diff34;
    o[2 * os] = sum12 + 4.0f * sum34;
    o[3 * os] = (diff12 + 8.0f * diff34) + m5;
}

EK_ALWAYS_INLINE void transform_in(int m, const float *d, int64_t ds, float *r, int64_t rs) {
    if (m == 4) winograd_in_4(d, ds, r, rs);
    else if (m == 5) winograd_in_5(d, ds, r, rs);
    else winograd_in_6(d, ds, r, rs);
}

EK_ALWAYS_INLINE void transform_out(int m, const float *s, int64_t ss, float *o, int64_t os) {
    if (m == 4) winograd_out_4(s, ss, o, os);
    else if (m == 5) winograd_out_5(s, ss, o, os);
    else winograd_out_6(s, ss, o, os);
}

// The Bᵀ rows applied down n rows `d` (each `len` long) into n rows `r`.
EK_ALWAYS_INLINE void input_down(int m, int64_t len, float d[MAX_IN][CHUNK_COLUMNS], float r[MAX_IN][CHUNK_COLUMNS]) {
    for (int64_t x = 0; x < len; x++) transform_in(m, &d[0][x], CHUNK_COLUMNS, &r[0][x], CHUNK_COLUMNS);
}

// `input_down` of n rows that lie inside the plane, read in place (`rows`, `stride` apart):
// columns [a, b) are the plane's, the others the zero padding. The padding's columns are
// transformed from a column of zeros, as `input_down` transforms the copied zeros, so both
// give the same bits.
EK_ALWAYS_INLINE void input_down_in_place(int m, int64_t len, const float *rows, int64_t stride, int64_t a,
                                          int64_t b, float r[MAX_IN][CHUNK_COLUMNS]) {
    static const float zeros[MAX_IN];
    for (int64_t x = 0; x < a; x++) transform_in(m, zeros, 1, &r[0][x], CHUNK_COLUMNS);
    for (int64_t x = a; x < b; x++) transform_in(m, rows + x, stride, &r[0][x], CHUNK_COLUMNS);
    for (int64_t x = b; x < len; x++) transform_in(m, zeros, 1, &r[0][x], CHUNK_COLUMNS);
}

// The Bᵀ rows applied across row `r` for each of `tiles` tiles: out[j * CHUNK + t], j < n.
EK_ALWAYS_INLINE void input_across(int m, int64_t tiles, const float *r, float *out) {
    for (int64_t t = 0; t < tiles; t++) transform_in(m, r + m * t, 1, out + t, CHUNK);
}

// The Aᵀ rows applied down the n×n products, read in place (m[(i*n + j) * stride + t]),
// into s[i'][j][t], i' < m.
EK_ALWAYS_INLINE void output_down(int m, int64_t tiles, const float *mm, int64_t stride,
                                  float s[MAX_OUT][MAX_IN][CHUNK]) {
    const int n = m + 2;
    for (int j = 0; j < n; j++)
        for (int64_t t = 0; t < tiles; t++)
            transform_out(m, mm + j * stride + t, n * stride, &s[0][j][t], MAX_IN * CHUNK);
}

// The Aᵀ rows applied across s[j][first + t] (t < tiles) into one output row (m values per
// tile), plus bias and the activation.
EK_ALWAYS_INLINE void output_across(int m, int64_t first, int64_t tiles, float s[MAX_IN][CHUNK], float bias,
                                    int relu, float row[CHUNK * MAX_OUT]) {
    for (int64_t t = 0; t < tiles; t++) {
        float o[MAX_OUT];
        transform_out(m, &s[0][first + t], CHUNK, o, 1);
        for (int j = 0; j < m; j++) {
            const float value = o[j] + bias;
            row[m * t + j] = relu ? ek__relu(value) : value;
        }
    }
}

// Tile-major staging of one channel's transformed tiles: n² rows of CHUNK consecutive
// tiles, written to v in whole runs (small planes have only 2–4 tiles a row; copying
// those per row would be n² tiny copies per row).
typedef struct input_stage {
    float out[MAX_ELEMENTS][CHUNK];
    int64_t filled;      // tiles staged
    int64_t first_tile;  // tile index of out[·][0]
} input_stage;

EK_ALWAYS_INLINE void input_flush(int m, input_stage *stage, float *v, int64_t ct) {
    for (int e = 0; e < (m + 2) * (m + 2); e++)
        memcpy(v + e * ct + stage->first_tile, stage->out[e], (size_t)stage->filled * sizeof(float));
    stage->first_tile += stage->filled;
    stage->filled = 0;
}

// The packed-B form of `input_flush` (ek_gemm_pack_b_f32's layout, one product per e): the
// staged tiles of channel `c` go to v[e·e_stride + (t / NR)·C·NR + c·NR + t % NR], a last
// partial panel padded with zeros. Flushes start at multiples of CHUNK, so panels never split.
EK_ALWAYS_INLINE void input_flush_packed(int m, input_stage *stage, float *v, int64_t e_stride, int64_t channels,
                                         int64_t c, int64_t base_tile) {
    enum { NR = EK_GEMM_NR };
    const int elements = (m + 2) * (m + 2);
    for (int64_t g = 0; g < stage->filled; g += NR) {
        const int64_t count = ek__min64(NR, stage->filled - g);
        float *panel = v + ((stage->first_tile - base_tile + g) / NR) * channels * NR + c * NR;
        // A whole panel row is a fixed-size copy the compiler inlines (a libc call per 64 bytes
        // cost more than the transform itself).
        if (count == NR) {
            for (int e = 0; e < elements; e++) memcpy(panel + e * e_stride, &stage->out[e][g], NR * sizeof(float));
            continue;
        }
        for (int e = 0; e < elements; e++) {
            float *target = panel + e * e_stride;
            for (int64_t l = 0; l < NR; l++) target[l] = l < count ? stage->out[e][g + l] : 0.0f;
        }
    }
    stage->first_tile += stage->filled;
    stage->filled = 0;
}

// A run of `tiles` tiles of one tile row of a channel plane (input rows y0..y0+n−1 and
// columns from x0, zero outside) into the stage; tiles ≤ CHUNK − stage->filled.
EK_ALWAYS_INLINE void input_run(int m, const float *plane, int64_t h, int64_t w, int64_t y0, int64_t x0,
                                int64_t tiles, input_stage *stage) {
    const int n = m + 2;
    float d[MAX_IN][CHUNK_COLUMNS], r[MAX_IN][CHUNK_COLUMNS];
    const int64_t len = m * tiles + 2;
    const int64_t lo = ek__max64(0, -x0), hi = ek__min64(len, w - x0);  // valid columns [lo, hi)
    if (y0 >= 0 && y0 + n <= h) {
        // Every row inside the plane (most tile rows): no copy into `d`.
        const int64_t a = ek__min64(lo, len), b = ek__max64(hi, a);
        input_down_in_place(m, len, plane + y0 * w + x0, w, a, b, r);
        for (int i = 0; i < n; i++) input_across(m, tiles, r[i], &stage->out[i * n][stage->filled]);
        stage->filled += tiles;
        return;
    }
    // Plain loops rather than memcpy/memset: on small planes the runs are a few floats.
    for (int i = 0; i < n; i++) {
        const int64_t y = y0 + i;
        const int inside = y >= 0 && y < h;
        const int64_t a = inside ? ek__min64(lo, len) : len, b = inside ? ek__max64(hi, a) : len;
        const float *source = inside ? plane + y * w + x0 : NULL;
        for (int64_t x = 0; x < a; x++) d[i][x] = 0.0f;
        for (int64_t x = a; x < b; x++) d[i][x] = source[x];
        for (int64_t x = b; x < len; x++) d[i][x] = 0.0f;
    }
    input_down(m, len, d, r);
    for (int i = 0; i < n; i++) input_across(m, tiles, r[i], &stage->out[i * n][stage->filled]);
    stage->filled += tiles;
}

// All tiles of channel `c` (every image) into v[e * ct + c * tiles + t].
EK_ALWAYS_INLINE void input_channel(int m, const ek_conv2d_params *p, int64_t tiles_h, int64_t tiles_w,
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
                input_run(m, plane, p->h, p->w, ty * m - p->pad_h, tx * m - p->pad_w, run, &stage);
                tx += run;
                if (stage.filled == CHUNK) input_flush(m, &stage, channel_v, ct);
            }
        }
    }
    if (stage.filled > 0) input_flush(m, &stage, channel_v, ct);
}

// Tiles [t_begin, t_end) (counted over every image; t_begin a multiple of EK_GEMM_NR) of every
// channel into the packed-B panels of the n² products (e stride `e_stride`), whose column 0 is
// tile `base_tile`, in groups of CHUNK tiles. Groups outside, channels inside: consecutive
// channels fill consecutive 64-byte rows of each panel, where channels outside would scatter
// every write to another page.
EK_ALWAYS_INLINE void input_groups(int m, const ek_conv2d_params *p, int64_t tiles_h, int64_t tiles_w,
                                   const float *x, int64_t t_begin, int64_t t_end, float *v, int64_t e_stride,
                                   int64_t base_tile) {
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
                input_run(m, plane, p->h, p->w, ty * m - p->pad_h, tx * m - p->pad_w, run, &stage);
                t += run;
            }
            input_flush_packed(m, &stage, v, e_stride, p->c, c, base_tile);
        }
    }
}

// Tiles [t_begin, t_end) of output channel `k` (counted over every image), their products at
// mk[e * e_stride + (t − t_begin)], → y[image, k, ·, ·], CHUNK consecutive tiles (across rows and
// images) at a time.
EK_ALWAYS_INLINE void output_range(int m, const ek_conv2d_params *p, int64_t tiles_h, int64_t tiles_w, int64_t oh,
                                   int64_t ow, const float *mk, int64_t e_stride, int64_t t_begin, int64_t t_end,
                                   int64_t k, float bias, int relu, float *y) {
    float s[MAX_OUT][MAX_IN][CHUNK], row[CHUNK * MAX_OUT];
    const int64_t per_image = tiles_h * tiles_w;
    for (int64_t t0 = t_begin; t0 < t_end; t0 += CHUNK) {
        const int64_t count = ek__min64(CHUNK, t_end - t0);
        output_down(m, count, mk + (t0 - t_begin), e_stride, s);
        // Runs of tiles within one tile row.
        for (int64_t first = 0; first < count;) {
            const int64_t t = t0 + first;
            const int64_t image = t / per_image, ty = (t % per_image) / tiles_w, tx = t % tiles_w;
            const int64_t run = ek__min64(count - first, tiles_w - tx);
            float *plane = y + (image * p->k + k) * oh * ow;
            const int64_t y0 = ty * m, x0 = tx * m;
            // Whole tiles straight into the output; a last tile cut by the border via `row`.
            const int64_t whole = ek__min64(run, (ow - x0) / m);
            const int64_t cut = ow - x0 - m * whole;  // columns of a last, cut tile
            for (int i = 0; i < m && y0 + i < oh; i++) {
                float *target = plane + (y0 + i) * ow + x0;
                output_across(m, first, whole, s[i], bias, relu, target);
                if (whole < run) {
                    output_across(m, first + whole, 1, s[i], bias, relu, row);
                    for (int64_t j = 0; j < cut; j++) target[m * whole + j] = row[j];
                }
            }
            first += run;
        }
    }
}

// All tiles of output channel `k`: m[e * kt + k * tiles + t] → y[image, k, ·, ·].
EK_ALWAYS_INLINE void output_channel(int m, const ek_conv2d_params *p, int64_t tiles_h, int64_t tiles_w, int64_t oh,
                                     int64_t ow, const float *mm, int64_t k, float bias, int relu, float *y) {
    const int64_t tiles = p->n * tiles_h * tiles_w;
    output_range(m, p, tiles_h, tiles_w, oh, ow, mm + k * tiles, p->k * tiles, 0, tiles, k, bias, relu, y);
}

// The fused convolution of tiles [t_begin, t_end) (t_begin a multiple of EK_GEMM_NR) in blocks
// of at most `block` tiles (a multiple of CHUNK): per block, the input tiles into packed panels
// in `work`, the n² products into `work` after them, and the output transform, so the
// transformed tiles stay in cache instead of going out to memory and back twice.
EK_ALWAYS_INLINE void fused_blocks(int m, const ek_conv2d_params *p, int64_t tiles_h, int64_t tiles_w, int64_t oh,
                                   int64_t ow, const float *u, const float *x, const float *bias, float *y,
                                   float *work, int64_t block, int64_t t_begin, int64_t t_end) {
    const int elements = (m + 2) * (m + 2);
    const int64_t u_stride = ek_gemm_packed_a_floats(p->k, p->c);
    const int64_t v_stride = ek_gemm_packed_b_floats(p->c, block);
    float *v = work, *mm = work + elements * v_stride;
    const int relu = p->activation == EK_ACT_RELU;
    for (int64_t t0 = t_begin; t0 < t_end; t0 += block) {
        const int64_t t1 = ek__min64(t_end, t0 + block), count = t1 - t0;
        input_groups(m, p, tiles_h, tiles_w, x, t0, t1, v, v_stride, t0);
        for (int e = 0; e < elements; e++) {
            ek_gemm_packed_params g = {p->k, count, p->c, u + e * u_stride, v + e * v_stride, mm + e * p->k * count,
                                       count, 0, NULL, EK_ACT_NONE, 0, (count + EK_GEMM_NR - 1) / EK_GEMM_NR};
            ek_gemm_packed_f32(&g);
        }
        for (int64_t k = 0; k < p->k; k++)
            output_range(m, p, tiles_h, tiles_w, oh, ow, mm + k * count, p->k * count, t0, t1, k,
                         bias ? bias[k] : 0.0f, relu, y);
    }
}

// One copy of `call` per tile size, each with m a literal the always-inline bodies fold.
#define EK_PER_TILE(m, call) \
    do {                     \
        if ((m) == 4) {      \
            enum { M = 4 };  \
            call;            \
        } else if ((m) == 5) { \
            enum { M = 5 };  \
            call;            \
        } else {             \
            enum { M = 6 };  \
            call;            \
        }                    \
    } while (0)

#define EK_WINOGRAD_VARIANTS(suffix, target)                                                              \
    target static void input_channel_##suffix(int m, const ek_conv2d_params *p, int64_t tiles_h,          \
                                              int64_t tiles_w, const float *x, int64_t c, float *v,       \
                                              int64_t ct) {                                               \
        EK_PER_TILE(m, input_channel(M, p, tiles_h, tiles_w, x, c, v, ct));                               \
    }                                                                                                     \
    target static void input_groups_##suffix(int m, const ek_conv2d_params *p, int64_t tiles_h,           \
                                             int64_t tiles_w, const float *x, int64_t begin,              \
                                             int64_t end, float *v, int64_t e_stride,                     \
                                             int64_t base_tile) {                                         \
        EK_PER_TILE(m, input_groups(M, p, tiles_h, tiles_w, x, begin, end, v, e_stride, base_tile));      \
    }                                                                                                     \
    target static void fused_blocks_##suffix(int m, const ek_conv2d_params *p, int64_t tiles_h,           \
                                             int64_t tiles_w, int64_t oh, int64_t ow,                     \
                                             const float *u, const float *x, const float *bias,           \
                                             float *y, float *work, int64_t block, int64_t begin,         \
                                             int64_t end) {                                               \
        EK_PER_TILE(m, fused_blocks(M, p, tiles_h, tiles_w, oh, ow, u, x, bias, y, work, block, begin,    \
                                    end));                                                                \
    }                                                                                                     \
    target static void output_channel_##suffix(int m, const ek_conv2d_params *p, int64_t tiles_h,         \
                                               int64_t tiles_w, int64_t oh, int64_t ow,                   \
                                               const float *mm, int64_t k, float bias, int relu,          \
                                               float *y) {                                                \
        EK_PER_TILE(m, output_channel(M, p, tiles_h, tiles_w, oh, ow, mm, k, bias, relu, y));             \
    }

EK_WINOGRAD_VARIANTS(scalar, )
EK_WINOGRAD_VARIANTS(avx2, EK_TARGET_AVX2)
EK_WINOGRAD_VARIANTS(avx512, EK_TARGET_AVX512)

typedef void (*input_channel_fn)(int, const ek_conv2d_params *, int64_t, int64_t, const float *, int64_t, float *,
                                 int64_t);
typedef void (*input_groups_fn)(int, const ek_conv2d_params *, int64_t, int64_t, const float *, int64_t, int64_t,
                                float *, int64_t, int64_t);
typedef void (*fused_blocks_fn)(int, const ek_conv2d_params *, int64_t, int64_t, int64_t, int64_t, const float *,
                                const float *, const float *, float *, float *, int64_t, int64_t, int64_t);
typedef void (*output_channel_fn)(int, const ek_conv2d_params *, int64_t, int64_t, int64_t, int64_t, const float *,
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
    const int m = ek_winograd_tile_size(p);
    const int64_t ct = p->c * p->n * tiles_h * tiles_w;
    int64_t begin, end;
    ek__share(p->c, p->ith, p->nth, &begin, &end);
    for (int64_t c = begin; c < end; c++) channel(m, p, tiles_h, tiles_w, x, c, v, ct);
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
    groups(ek_winograd_tile_size(p), p, tiles_h, tiles_w, x, begin * CHUNK, ek__min64(tiles, end * CHUNK), v,
           ek_gemm_packed_b_floats(p->c, tiles), 0);
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
    const int relu = p->activation == EK_ACT_RELU, tile = ek_winograd_tile_size(p);
    int64_t begin, end;
    ek__share(p->k, p->ith, p->nth, &begin, &end);
    for (int64_t k = begin; k < end; k++)
        channel(tile, p, tiles_h, tiles_w, oh, ow, m, k, bias ? bias[k] : 0.0f, relu, y);
    return EK_OK;
}

// MARK: - Fused: tile blocks through transform, products and output in cache

int64_t ek_winograd_fused_work_floats(const ek_conv2d_params *p, int64_t block_tiles) {
    const int64_t elements = ek_winograd_elements(p);
    if (elements == 0 || block_tiles < 1 || block_tiles % CHUNK != 0) return 0;
    return elements * (ek_gemm_packed_b_floats(p->c, block_tiles) + p->k * block_tiles);
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
    blocks(ek_winograd_tile_size(p), p, tiles_h, tiles_w, oh, ow, u, x, bias, y, work, block_tiles,
           begin * EK_GEMM_NR, ek__min64(tiles, end * EK_GEMM_NR));
    return EK_OK;
}
