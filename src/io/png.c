/* PNG writer on libpng. The image is encoded into memory (libpng errors
 * longjmp back here, with their message kept, never printed), then written
 * with plstm_atomic_write so a failed run never leaves a partial file. */
#include "plstm/png.h"
#include "core/status_internal.h"
#include "io/atomic_file.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct png_sink {
    unsigned char *data;
    size_t size, cap;
    int oom;
    char msg[160];
} png_sink;

static void sink_write(png_structp png, png_bytep bytes, png_size_t n)
{
    png_sink *s = png_get_io_ptr(png);
    if (s->size + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->size + n)
            cap *= 2;
        unsigned char *p = realloc(s->data, cap);
        if (!p) {
            s->oom = 1;
            png_error(png, "out of memory");
        }
        s->data = p;
        s->cap = cap;
    }
    memcpy(s->data + s->size, bytes, n);
    s->size += n;
}

static void sink_flush(png_structp png) { (void)png; }

static void on_error(png_structp png, png_const_charp msg)
{
    png_sink *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

/* Encodes into s->data; returns 0 on success, else s->msg says why. */
static int encode(png_sink *s, const uint8_t *pixels, int width, int height, int channels)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, s, on_error, on_warning);
    if (!png) {
        snprintf(s->msg, sizeof s->msg, "png_create_write_struct failed");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        snprintf(s->msg, sizeof s->msg, "png_create_info_struct failed");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_set_write_fn(png, s, sink_write, sink_flush);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8,
                 channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    const size_t stride = (size_t)width * (size_t)channels;
    for (int y = 0; y < height; y++)
        png_write_row(png, (png_const_bytep)(pixels + (size_t)y * stride));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

plstm_status plstm_png_write(const char *path, const uint8_t *pixels, int width, int height,
                             int channels)
{
    PLSTM_CHECK_ARG(path && pixels, "plstm_png_write: NULL argument");
    PLSTM_CHECK_ARG(width > 0 && height > 0 && width <= 1000000 && height <= 1000000,
                    "plstm_png_write: bad image size %d x %d", width, height);
    PLSTM_CHECK_ARG(channels == 1 || channels == 3,
                    "plstm_png_write: %d channels (1 or 3 supported)", channels);
    png_sink s = {0};
    if (encode(&s, pixels, width, height, channels) != 0) {
        free(s.data);
        if (s.oom)
            return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "PNG %s: out of memory", path);
        return plstm_fail(PLSTM_ERR_IO, "PNG %s: libpng: %s", path, s.msg);
    }
    plstm_status st = plstm_atomic_write(path, s.data, s.size);
    free(s.data);
    return st;
}
