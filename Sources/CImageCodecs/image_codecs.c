#include "cimagecodecs.h"

#include <png.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

/* MARK: - Shared helpers */

static void set_message(char *message, size_t capacity, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static void set_message(char *message, size_t capacity, const char *format, ...) {
    if (message == NULL || capacity == 0) return;
    va_list args;
    va_start(args, format);
    vsnprintf(message, capacity, format, args);
    va_end(args);
}

static eic_status check_dimensions(long long width, long long height, char *message, size_t capacity) {
    if (width <= 0 || height <= 0) {
        set_message(message, capacity, "the image is empty (%lld x %lld pixels)", width, height);
        return EIC_INVALID;
    }
    if (width > EIC_MAX_SIDE || height > EIC_MAX_SIDE || width * height > EIC_MAX_PIXELS) {
        set_message(message, capacity,
                    "the image is %lld x %lld pixels, above the limit of %d pixels a side "
                    "and %lld megapixels",
                    width, height, EIC_MAX_SIDE, EIC_MAX_PIXELS / 1000000);
        return EIC_TOO_LARGE;
    }
    return EIC_OK;
}

/* MARK: - PNG */

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t position;
    int truncated;
    char *message;
    size_t capacity;
} png_source;

static void png_read_from_memory(png_structp png, png_bytep out, size_t length) {
    png_source *source = (png_source *)png_get_io_ptr(png);
    if (length > source->size - source->position) {
        source->truncated = 1;
        png_error(png, "the file ends early (truncated PNG)");
    }
    memcpy(out, source->data + source->position, length);
    source->position += length;
}

static void png_on_error(png_structp png, png_const_charp text) {
    png_source *source = (png_source *)png_get_error_ptr(png);
    set_message(source->message, source->capacity, "%s", text ? text : "libpng error");
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp text) {
    /* Warnings (e.g. "iCCP: known incorrect sRGB profile") are common in valid files
       and do not affect the pixels we produce: ignore them, and never print. */
    (void)png;
    (void)text;
}

/* Reads the header and, when `out` is not NULL, the pixels. */
static eic_status png_run(const uint8_t *data, size_t size, int *width_out, int *height_out,
                          uint8_t *out, size_t out_size, char *message, size_t capacity) {
    if (message != NULL && capacity > 0) message[0] = '\0';
    if (data == NULL || size < 8 || png_sig_cmp((png_const_bytep)data, 0, 8) != 0) {
        if (data != NULL && size < 8 && size > 0 && png_sig_cmp((png_const_bytep)data, 0, size) == 0) {
            set_message(message, capacity, "the file ends early (truncated PNG)");
            return EIC_TRUNCATED;
        }
        set_message(message, capacity, "not a PNG file (bad signature)");
        return EIC_INVALID;
    }

    png_source source = {data, size, 0, 0, message, capacity};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &source, png_on_error, png_on_warning);
    if (png == NULL) {
        set_message(message, capacity, "out of memory");
        return EIC_NO_MEMORY;
    }
    png_infop info = png_create_info_struct(png);
    if (info == NULL) {
        png_destroy_read_struct(&png, NULL, NULL);
        set_message(message, capacity, "out of memory");
        return EIC_NO_MEMORY;
    }

    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free((void *)rows);
        png_destroy_read_struct(&png, &info, NULL);
        return source.truncated ? EIC_TRUNCATED : EIC_INVALID;
    }

    png_set_read_fn(png, &source, png_read_from_memory);
    png_read_info(png, info);

    png_uint_32 width = 0, height = 0;
    int bit_depth = 0, color_type = 0;
    png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, NULL, NULL, NULL);
    eic_status status = check_dimensions((long long)width, (long long)height, message, capacity);
    if (status != EIC_OK || out == NULL) {
        png_destroy_read_struct(&png, &info, NULL);
        if (status == EIC_OK) {
            *width_out = (int)width;
            *height_out = (int)height;
        }
        return status;
    }
    size_t row_bytes = (size_t)width * 3;
    if (out_size != row_bytes * height) {
        png_destroy_read_struct(&png, &info, NULL);
        set_message(message, capacity, "output buffer of %zu bytes for a %u x %u image", out_size,
                    (unsigned)width, (unsigned)height);
        return EIC_BAD_ARGUMENT;
    }

    if (bit_depth == 16) png_set_strip_16(png);  /* keeps the high byte, as Pillow does */
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    /* Drops an alpha channel, and cancels the tRNS expansion palette_to_rgb asks for. */
    png_set_strip_alpha(png);
    if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    if (png_get_rowbytes(png, info) != row_bytes || png_get_bit_depth(png, info) != 8 ||
        png_get_channels(png, info) != 3) {
        png_destroy_read_struct(&png, &info, NULL);
        set_message(message, capacity, "unsupported PNG layout (colour type %d, bit depth %d)", color_type,
                    bit_depth);
        return EIC_UNSUPPORTED;
    }

    rows = (png_bytep *)malloc(sizeof(png_bytep) * height);
    if (rows == NULL) {
        png_destroy_read_struct(&png, &info, NULL);
        set_message(message, capacity, "out of memory");
        return EIC_NO_MEMORY;
    }
    for (png_uint_32 y = 0; y < height; y++) rows[y] = out + (size_t)y * row_bytes;
    png_read_image(png, rows);
    /* png_read_end is deliberately not called: every pixel has been read, and a file
       that lacks only its trailing chunks (or IEND) still holds the whole image. */

    free((void *)rows);
    rows = NULL;
    png_destroy_read_struct(&png, &info, NULL);
    *width_out = (int)width;
    *height_out = (int)height;
    return EIC_OK;
}

eic_status eic_png_header(const uint8_t *data, size_t size, int *width, int *height, char *message,
                          size_t message_capacity) {
    if (width == NULL || height == NULL) return EIC_BAD_ARGUMENT;
    return png_run(data, size, width, height, NULL, 0, message, message_capacity);
}

eic_status eic_png_decode_rgb8(const uint8_t *data, size_t size, uint8_t *out, size_t out_size, char *message,
                               size_t message_capacity) {
    if (out == NULL) {
        set_message(message, message_capacity, "no output buffer");
        return EIC_BAD_ARGUMENT;
    }
    int width = 0, height = 0;
    return png_run(data, size, &width, &height, out, out_size, message, message_capacity);
}

/* MARK: - JPEG */

static int mentions_premature_end(const char *text) {
    return text != NULL && (strstr(text, "Premature end") != NULL || strstr(text, "premature end") != NULL);
}

/* True when the data ends inside the markers that precede the first scan (SOS): a
   header cut short, which libjpeg reports as e.g. "missing SOS marker". */
static int jpeg_header_is_cut_short(const uint8_t *data, size_t size) {
    size_t position = 2; /* after SOI */
    for (;;) {
        if (position >= size) return 1;
        if (data[position] != 0xFF) return 0; /* corrupt rather than cut short */
        while (position < size && data[position] == 0xFF) position++;
        if (position >= size) return 1;
        uint8_t marker = data[position++];
        if (marker == 0x01 || marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7)) continue; /* no length */
        if (marker == 0xD9) return 0;                                                    /* EOI */
        if (size - position < 2) return 1;
        size_t length = ((size_t)data[position] << 8) | data[position + 1];
        if (length < 2) return 0;
        if (size - position < length) return 1;
        if (marker == 0xDA) return 0; /* the first scan header is complete */
        position += length;
    }
}

/* Strips TurboJPEG's "tjDecompress2(): " style prefix. */
static const char *without_function_prefix(const char *text) {
    if (text == NULL) return "libjpeg error";
    const char *marker = strstr(text, "(): ");
    return marker != NULL ? marker + 4 : text;
}

static eic_status jpeg_run(const uint8_t *data, size_t size, int *width_out, int *height_out, uint8_t *out,
                           size_t out_size, char *message, size_t capacity) {
    if (message != NULL && capacity > 0) message[0] = '\0';
    if (data == NULL || size < 3 || data[0] != 0xFF || data[1] != 0xD8 || data[2] != 0xFF) {
        if (data != NULL && size > 0 && size < 3 && data[0] == 0xFF && (size < 2 || data[1] == 0xD8)) {
            set_message(message, capacity, "the file ends early (truncated JPEG)");
            return EIC_TRUNCATED;
        }
        set_message(message, capacity, "not a JPEG file (bad signature)");
        return EIC_INVALID;
    }
    tjhandle decoder = tjInitDecompress();
    if (decoder == NULL) {
        set_message(message, capacity, "cannot start the JPEG decoder");
        return EIC_NO_MEMORY;
    }

    int width = 0, height = 0, subsampling = 0, colorspace = 0;
    if (tjDecompressHeader3(decoder, data, (unsigned long)size, &width, &height, &subsampling, &colorspace) != 0) {
        const char *text = without_function_prefix(tjGetErrorStr2(decoder));
        eic_status status =
            mentions_premature_end(text) || jpeg_header_is_cut_short(data, size) ? EIC_TRUNCATED : EIC_INVALID;
        if (status == EIC_TRUNCATED) {
            set_message(message, capacity, "the file ends early (truncated JPEG): %s", text);
        } else {
            set_message(message, capacity, "invalid JPEG: %s", text);
        }
        tjDestroy(decoder);
        return status;
    }
    if ((width <= 0 || height <= 0) && jpeg_header_is_cut_short(data, size)) {
        /* A header cut before the frame header can parse as a tables-only stream. */
        tjDestroy(decoder);
        set_message(message, capacity, "the file ends early (truncated JPEG)");
        return EIC_TRUNCATED;
    }
    if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) {
        tjDestroy(decoder);
        set_message(message, capacity, "CMYK JPEG images are not supported");
        return EIC_UNSUPPORTED;
    }
    eic_status status = check_dimensions(width, height, message, capacity);
    if (status != EIC_OK || out == NULL) {
        tjDestroy(decoder);
        if (status == EIC_OK) {
            *width_out = width;
            *height_out = height;
        }
        return status;
    }
    size_t pitch = (size_t)width * 3;
    if (out_size != pitch * (size_t)height) {
        tjDestroy(decoder);
        set_message(message, capacity, "output buffer of %zu bytes for a %d x %d image", out_size, width, height);
        return EIC_BAD_ARGUMENT;
    }

    /* First pass stops at the first warning, so that a truncated file is recognised even
       when later warnings would overwrite libjpeg's "premature end" message. */
    const int flags = TJFLAG_ACCURATEDCT | TJFLAG_LIMITSCANS;
    int result = tjDecompress2(decoder, data, (unsigned long)size, out, width, (int)pitch, height, TJPF_RGB,
                               flags | TJFLAG_STOPONWARNING);
    if (result != 0) {
        const char *text = without_function_prefix(tjGetErrorStr2(decoder));
        if (mentions_premature_end(text)) {
            set_message(message, capacity, "the file ends early (truncated JPEG): %s", text);
            tjDestroy(decoder);
            return EIC_TRUNCATED;
        }
        if (tjGetErrorCode(decoder) != TJERR_WARNING) {
            set_message(message, capacity, "invalid JPEG: %s", text);
            tjDestroy(decoder);
            return EIC_INVALID;
        }
        /* A recoverable warning that is not about truncation (e.g. extraneous bytes
           before a marker): decode the whole image as Pillow would. */
        result = tjDecompress2(decoder, data, (unsigned long)size, out, width, (int)pitch, height, TJPF_RGB, flags);
        if (result != 0) {
            text = without_function_prefix(tjGetErrorStr2(decoder));
            if (mentions_premature_end(text)) {
                set_message(message, capacity, "the file ends early (truncated JPEG): %s", text);
                tjDestroy(decoder);
                return EIC_TRUNCATED;
            }
            if (tjGetErrorCode(decoder) != TJERR_WARNING) {
                set_message(message, capacity, "invalid JPEG: %s", text);
                tjDestroy(decoder);
                return EIC_INVALID;
            }
        }
    }
    tjDestroy(decoder);
    *width_out = width;
    *height_out = height;
    return EIC_OK;
}

eic_status eic_jpeg_header(const uint8_t *data, size_t size, int *width, int *height, char *message,
                           size_t message_capacity) {
    if (width == NULL || height == NULL) return EIC_BAD_ARGUMENT;
    return jpeg_run(data, size, width, height, NULL, 0, message, message_capacity);
}

eic_status eic_jpeg_decode_rgb8(const uint8_t *data, size_t size, uint8_t *out, size_t out_size, char *message,
                                size_t message_capacity) {
    if (out == NULL) {
        set_message(message, message_capacity, "no output buffer");
        return EIC_BAD_ARGUMENT;
    }
    int width = 0, height = 0;
    return jpeg_run(data, size, &width, &height, out, out_size, message, message_capacity);
}
