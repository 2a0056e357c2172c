/* Line charts rendered into an RGB buffer with a 5x7 bitmap font, written
 * with plstm_png_write. */
#include "plstm/train.h"
#include "plstm/png.h"
#include "core/status_internal.h"
#include "train/font5x7.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct canvas {
    uint8_t *px;
    int w, h;
} canvas;

static const uint8_t BLACK[3] = {0, 0, 0}, AXIS[3] = {60, 60, 60}, GRID[3] = {225, 225, 225},
                     WHITE[3] = {255, 255, 255};

static void put(canvas *c, int x, int y, const uint8_t rgb[3])
{
    if (x >= 0 && y >= 0 && x < c->w && y < c->h)
        memcpy(c->px + 3 * ((size_t)y * (size_t)c->w + (size_t)x), rgb, 3);
}

static void rect(canvas *c, int x0, int y0, int x1, int y1, const uint8_t rgb[3])
{
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++)
            put(c, x, y, rgb);
}

/* Bresenham with a square brush of `thick` pixels. */
static void line(canvas *c, int x0, int y0, int x1, int y1, const uint8_t rgb[3], int thick)
{
    const int dx = abs(x1 - x0), dy = -abs(y1 - y0);
    const int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    for (;;) {
        rect(c, x0 - (thick - 1) / 2, y0 - (thick - 1) / 2, x0 + thick / 2, y0 + thick / 2, rgb);
        if (x0 == x1 && y0 == y1)
            break;
        const int e2 = 2 * err;
        if (e2 >= dy) {
            err += dy;
            x0 += sx;
        }
        if (e2 <= dx) {
            err += dx;
            y0 += sy;
        }
    }
}

static int text_width(const char *s, int scale) { return (int)strlen(s) * 6 * scale - scale; }

/* Draws `s` with its top-left corner at (x, y). */
static void text(canvas *c, int x, int y, const char *s, const uint8_t rgb[3], int scale)
{
    for (; *s; s++, x += 6 * scale) {
        const unsigned ch = (unsigned char)*s;
        const uint8_t *g = font5x7[(ch >= 32 && ch < 127 ? ch : '?') - 32];
        for (int col = 0; col < 5; col++)
            for (int row = 0; row < 7; row++)
                if (g[col] >> row & 1)
                    rect(c, x + col * scale, y + row * scale, x + col * scale + scale - 1,
                         y + row * scale + scale - 1, rgb);
    }
}

/* A 1-2-5 step giving about `target` intervals over `range`. */
static double nice_step(double range, int target)
{
    const double raw = range / target, mag = pow(10.0, floor(log10(raw))), norm = raw / mag;
    return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
}

static void tick_label(char *buf, size_t cap, double v, double step)
{
    if (fabs(v) < step * 1e-6)
        v = 0;
    const int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (fabs(v) >= 1e6 || (v != 0 && fabs(v) < 1e-4))
        snprintf(buf, cap, "%.3g", v);
    else
        snprintf(buf, cap, "%.*f", dec, v);
}

typedef struct range {
    double lo, hi;
} range;

static void data_range(const plstm_plot_panel *p, range *rx, range *ry)
{
    rx->lo = ry->lo = INFINITY;
    rx->hi = ry->hi = -INFINITY;
    for (size_t s = 0; s < p->num_series; s++)
        for (size_t i = 0; i < p->series[s].n; i++) {
            const double x = p->series[s].x[i], y = p->series[s].y[i];
            if (!isfinite(x) || !isfinite(y))
                continue;
            rx->lo = fmin(rx->lo, x), rx->hi = fmax(rx->hi, x);
            ry->lo = fmin(ry->lo, y), ry->hi = fmax(ry->hi, y);
        }
    if (!(rx->lo <= rx->hi))
        *rx = (range){0, 1}, *ry = (range){0, 1};
    if (rx->hi - rx->lo <= 0)
        rx->lo -= 0.5, rx->hi += 0.5;
    if (ry->hi - ry->lo <= 1e-12 * fmax(1.0, fabs(ry->hi))) {
        const double d = fmax(0.5 * fabs(ry->hi), 0.5);
        ry->lo -= d, ry->hi += d;
    } else {
        const double pad = 0.05 * (ry->hi - ry->lo);
        ry->lo -= pad, ry->hi += pad;
    }
}

static void draw_panel(canvas *c, int px0, int pw, const plstm_plot_panel *p)
{
    const int left = px0 + 70, right = px0 + pw - 14, top = 34, bottom = c->h - 42;
    range rx, ry;
    data_range(p, &rx, &ry);
    const double sx = (right - left) / (rx.hi - rx.lo), sy = (bottom - top) / (ry.hi - ry.lo);
#define MAPX(v) (left + (int)lround(((v) - rx.lo) * sx))
#define MAPY(v) (bottom - (int)lround(((v) - ry.lo) * sy))
    char buf[64];
    const double xs = nice_step(rx.hi - rx.lo, 5), ys = nice_step(ry.hi - ry.lo, 5);
    for (double v = ceil(rx.lo / xs) * xs; v <= rx.hi + 1e-9 * xs; v += xs) {
        const int x = MAPX(v);
        line(c, x, top, x, bottom, GRID, 1);
        line(c, x, bottom, x, bottom + 4, AXIS, 1);
        tick_label(buf, sizeof buf, v, xs);
        text(c, x - text_width(buf, 1) / 2, bottom + 8, buf, BLACK, 1);
    }
    for (double v = ceil(ry.lo / ys) * ys; v <= ry.hi + 1e-9 * ys; v += ys) {
        const int y = MAPY(v);
        line(c, left, y, right, y, GRID, 1);
        line(c, left - 4, y, left, y, AXIS, 1);
        tick_label(buf, sizeof buf, v, ys);
        text(c, left - 8 - text_width(buf, 1), y - 3, buf, BLACK, 1);
    }
    for (size_t s = 0; s < p->num_series; s++) {
        const plstm_plot_series *ser = &p->series[s];
        int have = 0, lx = 0, ly = 0;
        for (size_t i = 0; i < ser->n; i++) {
            if (!isfinite(ser->x[i]) || !isfinite(ser->y[i]))
                continue;
            const int x = MAPX(ser->x[i]), y = MAPY(ser->y[i]);
            if (have)
                line(c, lx, ly, x, y, ser->rgb, 2);
            else
                rect(c, x - 1, y - 1, x + 1, y + 1, ser->rgb);
            have = 1, lx = x, ly = y;
        }
    }
#undef MAPX
#undef MAPY
    line(c, left, top, right, top, AXIS, 1);
    line(c, left, bottom, right, bottom, AXIS, 1);
    line(c, left, top, left, bottom, AXIS, 1);
    line(c, right, top, right, bottom, AXIS, 1);
    if (p->title)
        text(c, (left + right - text_width(p->title, 2)) / 2, 8, p->title, BLACK, 2);
    if (p->xlabel)
        text(c, (left + right - text_width(p->xlabel, 1)) / 2, c->h - 16, p->xlabel, BLACK, 1);
    /* legend in the inside corner that covers the fewest data points */
    int lw = 0, ln = 0;
    for (size_t s = 0; s < p->num_series; s++)
        if (p->series[s].label) {
            const int w = text_width(p->series[s].label, 1);
            lw = w > lw ? w : lw;
            ln++;
        }
    if (!ln)
        return;
    const int bw = lw + 34, bh = 12 * ln + 6;
    int bx0 = right - 6 - bw, by0 = top + 6;
    size_t best = (size_t)-1;
    for (int corner = 0; corner < 4; corner++) {
        const int cx = corner & 1 ? left + 6 : right - 6 - bw;
        const int cy = corner & 2 ? bottom - 6 - bh : top + 6;
        size_t hits = 0;
        for (size_t s = 0; s < p->num_series; s++)
            for (size_t i = 0; i < p->series[s].n; i++) {
                const double xv = p->series[s].x[i], yv = p->series[s].y[i];
                if (!isfinite(xv) || !isfinite(yv))
                    continue;
                const double x = left + (xv - rx.lo) * sx, y = bottom - (yv - ry.lo) * sy;
                hits += x >= cx - 4 && x <= cx + bw + 4 && y >= cy - 4 && y <= cy + bh + 4;
            }
        if (hits < best)
            best = hits, bx0 = cx, by0 = cy;
    }
    const int bx1 = bx0 + bw, by1 = by0 + bh;
    rect(c, bx0, by0, bx1, by1, WHITE);
    line(c, bx0, by0, bx1, by0, AXIS, 1), line(c, bx0, by1, bx1, by1, AXIS, 1);
    line(c, bx0, by0, bx0, by1, AXIS, 1), line(c, bx1, by0, bx1, by1, AXIS, 1);
    int y = by0 + 6;
    for (size_t s = 0; s < p->num_series; s++) {
        if (!p->series[s].label)
            continue;
        line(c, bx0 + 6, y + 3, bx0 + 22, y + 3, p->series[s].rgb, 2);
        text(c, bx0 + 28, y, p->series[s].label, BLACK, 1);
        y += 12;
    }
}

plstm_status plstm_plot_write_png(const char *path, int width, int height,
                                  const plstm_plot_panel *panels, size_t num_panels)
{
    PLSTM_CHECK_ARG(path && panels && num_panels > 0 && num_panels <= 16,
                    "plstm_plot_write_png: bad arguments");
    PLSTM_CHECK_ARG(height >= 120 && height <= 8000 && width <= 16000 &&
                        width >= 200 * (int)num_panels,
                    "plot: %d x %d pixels is too small or too large for %zu panels", width,
                    height, num_panels);
    for (size_t p = 0; p < num_panels; p++)
        for (size_t s = 0; s < panels[p].num_series; s++)
            PLSTM_CHECK_ARG(panels[p].series && (panels[p].series[s].n == 0 ||
                                                 (panels[p].series[s].x && panels[p].series[s].y)),
                            "plot: panel %zu, series %zu has no data pointers", p, s);
    canvas c = {malloc((size_t)width * (size_t)height * 3), width, height};
    if (!c.px)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "plot: out of memory");
    memset(c.px, 255, (size_t)width * (size_t)height * 3);
    const int pw = width / (int)num_panels;
    for (size_t p = 0; p < num_panels; p++)
        draw_panel(&c, (int)p * pw, pw, &panels[p]);
    plstm_status st = plstm_png_write(path, c.px, width, height, 3);
    free(c.px);
    return st;
}
