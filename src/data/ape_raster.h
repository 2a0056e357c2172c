/* Pillow-equivalent black drawing on a one-channel 0/255 canvas: wide lines
 * (ImagingDrawWideLine + polygon_generic) and filled ellipses (ellipse_new),
 * as specified in ape.md §1.5. Coordinates are already truncated to int. */
#ifndef PLSTM_DATA_APE_RASTER_H
#define PLSTM_DATA_APE_RASTER_H

#include <stdint.h>

typedef struct ape_canvas {
    uint8_t *px; /* w*h bytes, row-major */
    int w, h;
} ape_canvas;

/* Line from (x0,y0) to (x1,y1), width >= 2 (Pillow's wide-line path). */
void ape_draw_wide_line(ape_canvas *c, int x0, int y0, int x1, int y1, int width);

/* Filled ellipse in the box (x0,y0)-(x1,y1). */
void ape_draw_filled_ellipse(ape_canvas *c, int x0, int y0, int x1, int y1);

#endif
