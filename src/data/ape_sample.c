/* One APE sample: the authors' draw order and geometry (ape.md §1.3-1.5).
 * Each expression keeps Python's evaluation order and rounding (IEEE double,
 * glibc libm, no fused multiply-adds), since the pixels depend on it. */
#include "data/ape_internal.h"
#include "data/ape_raster.h"
#include "data/ape_rng.h"

#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

void ape_draw_params(uint64_t base_seed, int size, uint64_t index, plstm_ape_sample *s)
{
    ape_pcg64 g;
    ape_pcg64_seed(&g, base_seed + index);

    s->u = ape_pcg64_random(&g);
    s->label = s->u < APE_INTERSECTION_RATIO;
    s->arrow_length = (int)ape_pcg64_uniform(&g, APE_LEN_MIN, APE_LEN_MAX);
    s->arrow_width = (int)ape_pcg64_uniform(&g, APE_WIDTH_MIN, APE_WIDTH_MAX);

    /* The authors use sx for ay too (same thing for square images). */
    const double sx = (double)(size - 2 * APE_PAD), sy = sx;
    const double ax = ape_pcg64_uniform(&g, 0.0, sx);
    const double ay = ape_pcg64_uniform(&g, 0.0, sx);
    const double r = ape_pcg64_uniform(&g, APE_MIN_RADIUS, APE_MAX_RADIUS);

    /* Circle centre at least 2r from the arrow on both axes, wrapping around. */
    const double off = 2.0 * r;
    double cx = (ax + off) + (sx - 2.0 * off) * ape_pcg64_random(&g);
    if (cx > sx)
        cx -= sx;
    double cy = (ay + off) + (sy - 2.0 * off) * ape_pcg64_random(&g);
    if (cy > sy)
        cy -= sy;

    const double dx = cx - ax, dy = cy - ay;
    const double rd = s->label ? r / APE_INTERSECTION_FACTOR : APE_INTERSECTION_FACTOR * r;
    const double d2 = pow(dx, 2.0) + pow(dy, 2.0);
    const double half = acos(pow(fabs((d2 - pow(rd, 2.0)) / d2), 0.5));
    const double phi0 = atan2(dy, dx);
    const double u6 = ape_pcg64_random(&g);
    if (s->label)
        s->phi = phi0 + u6 * (2.0 * half) - half;
    else
        s->phi = phi0 + u6 * (2.0 * M_PI - 2.0 * half) + half;

    s->arrow_x = ax + APE_PAD;
    s->arrow_y = ay + APE_PAD;
    s->circle_x = cx + APE_PAD;
    s->circle_y = cy + APE_PAD;
    s->radius = r;
}

void ape_paint(const plstm_ape_sample *s, int size, uint8_t *pixels)
{
    memset(pixels, 255, (size_t)size * (size_t)size);
    ape_canvas c = {pixels, size, size};

    const int h = s->arrow_length / 2;
    const double hd = floor(s->arrow_length / 2.5);
    const double ax = s->arrow_x, ay = s->arrow_y, phi = s->phi;
    const double tx = ax + h * cos(phi), ty = ay + h * sin(phi);
    const int w = s->arrow_width;
    ape_draw_wide_line(&c, (int)(ax - h * cos(phi)), (int)(ay - h * sin(phi)), (int)tx, (int)ty, w);
    ape_draw_wide_line(&c, (int)(tx - hd * cos(phi - 0.5)), (int)(ty - hd * sin(phi - 0.5)),
                       (int)tx, (int)ty, w);
    ape_draw_wide_line(&c, (int)(tx - hd * cos(phi + 0.5)), (int)(ty - hd * sin(phi + 0.5)),
                       (int)tx, (int)ty, w);

    const double cx = s->circle_x, cy = s->circle_y, r = s->radius;
    ape_draw_filled_ellipse(&c, (int)(cx - r), (int)(cy - r), (int)(cx + r), (int)(cy + r));
}
