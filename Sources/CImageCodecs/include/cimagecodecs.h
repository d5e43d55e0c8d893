#ifndef CIMAGECODECS_H
#define CIMAGECODECS_H

/*
 * A thin, stateless C layer over libpng and TurboJPEG.
 *
 * libpng reports errors with longjmp, which must never cross Swift frames, so every
 * libpng call happens here, behind setjmp. Nothing in this layer prints or exits:
 * each function returns an `eic_status` and, on failure, writes a one-line,
 * NUL-terminated message into the caller's `message` buffer (truncated to
 * `message_capacity` bytes; the buffer may be NULL when `message_capacity` is 0).
 *
 * Protocol (two calls, caller-allocated output):
 *   1. `eic_png_header` / `eic_jpeg_header` read the dimensions and apply the size
 *      limits below, so a hostile header cannot make the caller allocate gigabytes.
 *   2. The caller allocates width * height * 3 bytes and calls `eic_png_decode_rgb8` /
 *      `eic_jpeg_decode_rgb8`, which fill it with RGB8 pixels in row-major HWC order
 *      (row 0 first; each pixel R, G, B; no row padding).
 *
 * Every PNG colour type and bit depth becomes RGB8: gray is replicated, palettes are
 * expanded, 1/2/4-bit gray is scaled to 0...255, 16-bit samples keep their high byte,
 * alpha (an alpha channel or tRNS) is dropped without compositing, as Pillow's
 * `convert("RGB")` does. Interlaced PNGs are supported. Gamma and colour profiles are
 * ignored, as in Pillow.
 *
 * JPEG is decoded with the accurate integer IDCT and fancy upsampling (libjpeg's
 * defaults, as in Pillow). A file that ends early is an error (`EIC_TRUNCATED`), not a
 * half-grey image; other recoverable libjpeg warnings (e.g. extraneous bytes before a
 * marker) are tolerated, as in Pillow. CMYK/YCCK JPEGs are `EIC_UNSUPPORTED`.
 */

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Largest accepted width or height, in pixels. */
#define EIC_MAX_SIDE 30000
/** Largest accepted width * height (100 megapixels). */
#define EIC_MAX_PIXELS 100000000LL

typedef enum {
    EIC_OK = 0,
    /** Not a valid image of that format, or corrupt data. */
    EIC_INVALID = 1,
    /** The data ends before the image does. */
    EIC_TRUNCATED = 2,
    /** A valid image this layer does not handle (e.g. CMYK JPEG). */
    EIC_UNSUPPORTED = 3,
    /** Width or height above EIC_MAX_SIDE, or more than EIC_MAX_PIXELS pixels. */
    EIC_TOO_LARGE = 4,
    EIC_NO_MEMORY = 5,
    /** The caller broke the protocol (e.g. an output buffer of the wrong size). */
    EIC_BAD_ARGUMENT = 6,
} eic_status;

/** Reads a PNG's dimensions (width, height > 0, within the limits). */
eic_status eic_png_header(const uint8_t *data, size_t size, int *width, int *height,
                          char *message, size_t message_capacity);

/**
 * Decodes a PNG to RGB8, HWC, into `out`, which must hold exactly
 * width * height * 3 bytes (`out_size`) for the dimensions `eic_png_header` reported.
 */
eic_status eic_png_decode_rgb8(const uint8_t *data, size_t size, uint8_t *out, size_t out_size,
                               char *message, size_t message_capacity);

/** Reads a JPEG's dimensions (width, height > 0, within the limits). */
eic_status eic_jpeg_header(const uint8_t *data, size_t size, int *width, int *height,
                           char *message, size_t message_capacity);

/**
 * Decodes a JPEG to RGB8, HWC, into `out`, which must hold exactly
 * width * height * 3 bytes (`out_size`) for the dimensions `eic_jpeg_header` reported.
 */
eic_status eic_jpeg_decode_rgb8(const uint8_t *data, size_t size, uint8_t *out, size_t out_size,
                                char *message, size_t message_capacity);

/* MARK: Encoding (png_encode.c) */

/**
 * Encodes `pixels` — `height` rows of `width` pixels, each `channels` bytes (3: R, G, B;
 * 4: R, G, B, straight alpha), no row padding — as an 8-bit PNG (colour type RGB or
 * RGBA, not interlaced, zlib level 6, no ancillary chunks). On success `*out` points to
 * `*out_size` bytes the caller releases with `eic_free`; on failure `*out` is NULL.
 */
eic_status eic_png_encode(const uint8_t *pixels, int width, int height, int channels, uint8_t **out,
                          size_t *out_size, char *message, size_t message_capacity);

/** Releases memory this layer returned (`eic_png_encode`, `eic_png_decode_rgba8`). */
void eic_free(void *pointer);

/**
 * Decodes any PNG to RGBA8 (straight alpha; opaque where the file has none) with
 * libpng's simplified API: for reading back pictures with transparency. On success
 * `*out` points to width * height * 4 bytes the caller releases with `eic_free`.
 */
eic_status eic_png_decode_rgba8(const uint8_t *data, size_t size, int *width, int *height, uint8_t **out,
                                char *message, size_t message_capacity);

#ifdef __cplusplus
}
#endif

#endif
