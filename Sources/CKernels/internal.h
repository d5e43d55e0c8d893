// Private declarations shared by the CKernels translation units. Not part of the API.
#ifndef ELUCIDATE_CKERNELS_INTERNAL_H
#define ELUCIDATE_CKERNELS_INTERNAL_H

#include "ckernels.h"

#include <stddef.h>
#include <stdint.h>

#include <immintrin.h>

// Every product and sum is written out explicitly (fmaf where a fused multiply-add is
// meant), so the compiler must not contract a*b+c on its own: that would make the scalar
// reference and the SIMD paths differ in the last bit depending on the target attribute.
#pragma STDC FP_CONTRACT OFF

#define EK_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define EK_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))

// The level kernels use right now (one relaxed atomic load after the first call).
static inline ek_isa ek__isa(void) { return ek_isa_active(); }

// 0 <= ith < nth.
static inline int ek__share_ok(int32_t ith, int32_t nth) { return nth >= 1 && ith >= 0 && ith < nth; }

// The ith of nth near-equal shares of [0, total).
static inline void ek__share(int64_t total, int32_t ith, int32_t nth, int64_t *begin,
                             int64_t *end) {
    *begin = total * ith / nth;
    *end = total * (ith + 1) / nth;
}

// Like ek__share, but share boundaries fall on multiples of 16 elements (one 64-byte
// cache line of floats when the base is aligned), so threads do not write the same line.
static inline void ek__share_aligned16(int64_t total, int32_t ith, int32_t nth,
                                       int64_t *begin, int64_t *end) {
    int64_t blocks = (total + 15) / 16;
    int64_t b0 = blocks * ith / nth, b1 = blocks * (ith + 1) / nth;
    *begin = b0 * 16 < total ? b0 * 16 : total;
    *end = b1 * 16 < total ? b1 * 16 : total;
}

static inline int64_t ek__min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t ek__max64(int64_t a, int64_t b) { return a > b ? a : b; }

// ReLU as every path computes it: max(0, v) with NaN propagated and -0 kept (the same
// result as vmaxps(zero, v)).
static inline float ek__relu(float v) { return (0.0f > v) ? 0.0f : v; }

// Shared summation order for sums that every ISA must reproduce bit for bit: 16
// interleaved partial sums acc[j] (lane j adds x[j], x[j+16], ...; what one 16-lane
// vector accumulator computes), then the halving tree acc[j] += acc[j+8], += acc[j+4],
// += acc[j+2], += acc[j+1]. `acc` holds the lanes after the whole blocks before `i`;
// this adds the tail x[i..n) to lanes 0.. and reduces. Interleaving is also more
// accurate than one running sum (the error grows with n/16, not n).
static inline float ek__sum16_finish(float acc[16], const float *x, int64_t i, int64_t n) {
    for (int64_t j = 0; i + j < n; j++) acc[j] += x[i + j];
    for (int width = 8; width >= 1; width /= 2)
        for (int j = 0; j < width; j++) acc[j] += acc[j + width];
    return acc[0];
}

// MARK: Strided lane runs (col2im and average-pool backward)

// The input pixels one kernel tap reaches along a row form a strided run run_lo, run_lo +
// stride, ... < run_hi. The SIMD scatters walk the row in chunks of `lanes` pixels; within the
// chunk that starts at pixel iw0 the run is the lanes j0, j0 + stride, ... < end (none when
// end <= j0), also kept as a bit mask. `off` is the caller's: where lane j0's value lives.
typedef struct ek__lane_run {
    int64_t off;
    int32_t j0, end;
    uint32_t bits;
} ek__lane_run;

static inline ek__lane_run ek__lane_run_in_chunk(int64_t run_lo, int64_t run_hi, int64_t stride, int64_t iw0,
                                                 int64_t lanes) {
    int64_t j0 = run_lo - iw0;
    if (j0 < 0) j0 += ((-j0 + stride - 1) / stride) * stride;
    const int64_t end = ek__min64(run_hi - iw0, lanes);
    ek__lane_run run = {.off = 0, .j0 = (int32_t)j0, .end = (int32_t)(end > j0 ? end : j0), .bits = 0};
    for (int64_t j = j0; j < end; j += stride) run.bits |= 1u << j;
    return run;
}

// `acc` plus the run's values in their lanes of the chunk (zero elsewhere), `src` pointing at
// lane j0's value. Lane j reads src[j − j0] (column stride 1; AVX2 serves only that) or
// src[(j − j0) / 2] (stride 2). Lanes outside the run are never read, even where their
// address would lie before the row.
EK_TARGET_AVX2 static inline __m256 ek__lane_run_add_avx2(__m256 acc, const ek__lane_run *e, const float *src,
                                                          __m256i lane) {
    if (e->bits == 0) return acc;
    if (e->bits == 0xFFu) return _mm256_add_ps(acc, _mm256_loadu_ps(src));  // every lane
    const __m256i in_run = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(e->j0), lane),
                                               _mm256_cmpgt_epi32(_mm256_set1_epi32(e->end), lane));
    const uintptr_t base = (uintptr_t)src - (uintptr_t)((int64_t)e->j0 * (int64_t)sizeof(float));
    return _mm256_add_ps(acc, _mm256_maskload_ps((const float *)base, in_run));
}

EK_TARGET_AVX512 static inline __m512 ek__lane_run_add_avx512(__m512 acc, const ek__lane_run *e, const float *src,
                                                              int64_t stride, __m512i lane) {
    if (stride == 1) {
        const uintptr_t base = (uintptr_t)src - (uintptr_t)((int64_t)e->j0 * (int64_t)sizeof(float));
        return _mm512_add_ps(acc, _mm512_maskz_loadu_ps((__mmask16)e->bits, (const float *)base));
    }
    if (e->bits == 0) return acc;
    // Lanes j0, j0 + 2, ... < end take src[0], src[1], ...
    const int32_t count = (e->end - e->j0 + 1) / 2;
    const __m512 v = _mm512_maskz_loadu_ps((__mmask16)((1u << count) - 1u), src);
    const __m512i index = _mm512_srai_epi32(_mm512_sub_epi32(lane, _mm512_set1_epi32(e->j0)), 1);
    return _mm512_add_ps(acc, _mm512_maskz_permutexvar_ps((__mmask16)e->bits, index, v));
}

// MARK: Run-time library loading (library_loader.c)

// The first loading error of a loader, kept for ek_*_get_info.
typedef struct ek__loader_error {
    char text[512];
} ek__loader_error;

// dlopens the first of `candidates` that loads and exports `symbol`: returns its handle and
// sets *function (the symbol) and *opened (its index), or returns NULL having recorded the
// first failure in `error`.
void *ek__open_first(const char *const *candidates, size_t count, const char *symbol, void **function,
                     size_t *opened, ek__loader_error *error);

// MARK: BLAS (blas_loader.c)

// Row-major sgemm through the loaded OpenBLAS; sizes already validated and <= INT32_MAX.
// Returns EK_ERR_BLAS_UNAVAILABLE when OpenBLAS could not be loaded.
ek_status ek__sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                    float *c, int64_t ldc);

// MARK: Element-wise helpers (elementwise.c)

// y[i] = act(a[i] + b[i]) over [0, count) with the active ISA; y may alias a or b.
void ek__add_run(int64_t count, const float *a, const float *b, float *y, ek_activation act);

// MARK: Sums (adaptive_pool.c)

// Σ x[0..n) in the interleaved order of ek__sum16_finish with the active ISA: every
// level gives the same bits. n >= 0 (0 gives +0).
float ek__sum_f32(const float *x, int64_t n);

#endif  // ELUCIDATE_CKERNELS_INTERNAL_H
