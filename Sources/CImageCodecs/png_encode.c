#include "cimagecodecs.h"

#include <png.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* PNG encoding (and reading back RGBA) for pictures Elucidate draws.
 * libpng reports errors with longjmp, so every libpng call stays in this file, behind
 * setjmp; nothing here prints or exits. */

static void encode_message(char *message, size_t capacity, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static void encode_message(char *message, size_t capacity, const char *format, ...) {
    if (message == NULL || capacity == 0) return;
    va_list args;
    va_start(args, format);
    vsnprintf(message, capacity, format, args);
    va_end(args);
}

typedef struct {
    uint8_t *data;
    size_t size;
    size_t capacity;
    int out_of_memory;
    char *message;
    size_t message_capacity;
} png_sink;

static void sink_write(png_structp png, png_bytep bytes, size_t length) {
    png_sink *sink = (png_sink *)png_get_io_ptr(png);
    if (length > sink->capacity - sink->size) {
        size_t capacity = sink->capacity ? sink->capacity : 4096;
        while (capacity - sink->size < length) {
            if (capacity > ((size_t)-1) / 2) {
                sink->out_of_memory = 1;
                png_error(png, "out of memory");
            }
            capacity *= 2;
        }
        uint8_t *grown = (uint8_t *)realloc(sink->data, capacity);
        if (grown == NULL) {
            sink->out_of_memory = 1;
            png_error(png, "out of memory");
        }
        sink->data = grown;
        sink->capacity = capacity;
    }
    memcpy(sink->data + sink->size, bytes, length);
    sink->size += length;
}

static void sink_flush(png_structp png) { (void)png; }

static void encode_on_error(png_structp png, png_const_charp text) {
    png_sink *sink = (png_sink *)png_get_error_ptr(png);
    encode_message(sink->message, sink->message_capacity, "%s", text ? text : "libpng error");
    png_longjmp(png, 1);
}

static void encode_on_warning(png_structp png, png_const_charp text) {
    (void)png;
    (void)text;
}

eic_status eic_png_encode(const uint8_t *pixels, int width, int height, int channels, uint8_t **out,
                          size_t *out_size, char *message, size_t message_capacity) {
    if (message != NULL && message_capacity > 0) message[0] = '\0';
    if (out == NULL || out_size == NULL) {
        encode_message(message, message_capacity, "no place for the encoded bytes");
        return EIC_BAD_ARGUMENT;
    }
    *out = NULL;
    *out_size = 0;
    if (pixels == NULL || (channels != 3 && channels != 4)) {
        encode_message(message, message_capacity, "cannot encode %d channels (3 or 4)", channels);
        return EIC_BAD_ARGUMENT;
    }
    if (width <= 0 || height <= 0 || width > EIC_MAX_SIDE || height > EIC_MAX_SIDE ||
        (long long)width * height > EIC_MAX_PIXELS) {
        encode_message(message, message_capacity,
                       "cannot encode a %d x %d picture (at most %d pixels a side and %lld megapixels)", width,
                       height, EIC_MAX_SIDE, EIC_MAX_PIXELS / 1000000);
        return EIC_TOO_LARGE;
    }

    png_sink sink = {NULL, 0, 0, 0, message, message_capacity};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &sink, encode_on_error, encode_on_warning);
    if (png == NULL) {
        encode_message(message, message_capacity, "out of memory");
        return EIC_NO_MEMORY;
    }
    png_infop info = png_create_info_struct(png);
    if (info == NULL) {
        png_destroy_write_struct(&png, NULL);
        encode_message(message, message_capacity, "out of memory");
        return EIC_NO_MEMORY;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(sink.data);
        return sink.out_of_memory ? EIC_NO_MEMORY : EIC_INVALID;
    }
    png_set_write_fn(png, &sink, sink_write, sink_flush);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8,
                 channels == 4 ? PNG_COLOR_TYPE_RGB_ALPHA : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 6);
    png_write_info(png, info);
    size_t row_bytes = (size_t)width * (size_t)channels;
    for (int y = 0; y < height; y++) {
        png_write_row(png, (png_const_bytep)(pixels + (size_t)y * row_bytes));
    }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    *out = sink.data;
    *out_size = sink.size;
    return EIC_OK;
}

void eic_free(void *pointer) { free(pointer); }

eic_status eic_png_decode_rgba8(const uint8_t *data, size_t size, int *width, int *height, uint8_t **out,
                                char *message, size_t message_capacity) {
    if (message != NULL && message_capacity > 0) message[0] = '\0';
    if (out == NULL || width == NULL || height == NULL) {
        encode_message(message, message_capacity, "no place for the decoded pixels");
        return EIC_BAD_ARGUMENT;
    }
    *out = NULL;
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&image, data, size)) {
        encode_message(message, message_capacity, "%s", image.message);
        png_image_free(&image);
        return EIC_INVALID;
    }
    if (image.width == 0 || image.height == 0 || image.width > EIC_MAX_SIDE || image.height > EIC_MAX_SIDE ||
        (long long)image.width * image.height > EIC_MAX_PIXELS) {
        encode_message(message, message_capacity, "the image is %u x %u pixels, outside the limits", image.width,
                       image.height);
        png_image_free(&image);
        return EIC_TOO_LARGE;
    }
    image.format = PNG_FORMAT_RGBA;
    size_t bytes = PNG_IMAGE_SIZE(image);
    uint8_t *buffer = (uint8_t *)malloc(bytes);
    if (buffer == NULL) {
        png_image_free(&image);
        encode_message(message, message_capacity, "out of memory");
        return EIC_NO_MEMORY;
    }
    if (!png_image_finish_read(&image, NULL, buffer, 0, NULL)) {
        encode_message(message, message_capacity, "%s", image.message);
        free(buffer);
        png_image_free(&image);
        return EIC_INVALID;
    }
    *width = (int)image.width;
    *height = (int)image.height;
    *out = buffer;
    return EIC_OK;
}
