/* Writing 8-bit images as PNG files. */
#ifndef PLSTM_PNG_H
#define PLSTM_PNG_H

#include <stdint.h>
#include "plstm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes width x height pixels, row-major, `channels` bytes per pixel
 * (1: gray, 3: RGB), as an 8-bit PNG. The file is replaced atomically. */
plstm_status plstm_png_write(const char *path, const uint8_t *pixels, int width, int height,
                             int channels);

#ifdef __cplusplus
}
#endif
#endif
