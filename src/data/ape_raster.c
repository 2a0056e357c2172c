/* Port of the Pillow 10.4/11.0 Draw.c paths APE uses. The float32 arithmetic
 * of the polygon filler is part of the result: keep it float, and keep the
 * compiler from fusing multiply-adds (gcc's -std=c11 already does). */
#include "data/ape_raster.h"

#include <math.h>
#include <stdlib.h>

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* Pillow's ROUND_UP / ROUND_DOWN on doubles (the wide-line offsets). */
static int round_up_d(double f) { return (int)(f >= 0.0 ? floor(f + 0.5F) : -floor(fabs(f) + 0.5F)); }
static int round_down_d(double f) { return (int)(f >= 0.0 ? ceil(f - 0.5F) : -ceil(fabs(f) - 0.5F)); }

/* The same on the filler's float crossings: f + 0.5F is float arithmetic, the
 * fabs branch is double (fabs promotes), as in C Pillow. */
static int round_up_f(float f)
{
    if (f >= 0.0f) {
        float t = f + 0.5F;
        return (int)floor(t);
    }
    return (int)-floor(fabs(f) + 0.5F);
}

static int round_down_f(float f)
{
    if (f >= 0.0f) {
        float t = f - 0.5F;
        return (int)ceil(t);
    }
    return (int)-ceil(fabs(f) - 0.5F);
}

static void hline(ape_canvas *c, int x0, int y, int x1)
{
    if (y < 0 || y >= c->h)
        return;
    if (x0 < 0)
        x0 = 0;
    else if (x0 >= c->w)
        return;
    if (x1 < 0)
        return;
    else if (x1 >= c->w)
        x1 = c->w - 1;
    uint8_t *row = c->px + (size_t)y * (size_t)c->w;
    for (int x = x0; x <= x1; x++) /* start > end draws nothing (Pillow >= 10) */
        row[x] = 0;
}

typedef struct edge {
    int xmin, ymin, xmax, ymax;
    int x0, y0;
    float dx; /* slope dx/dy in float32, as Pillow stores it */
} edge;

static void add_edge(edge *e, int x0, int y0, int x1, int y1)
{
    e->xmin = x0 <= x1 ? x0 : x1;
    e->xmax = x0 <= x1 ? x1 : x0;
    e->ymin = y0 <= y1 ? y0 : y1;
    e->ymax = y0 <= y1 ? y1 : y0;
    e->dx = y0 == y1 ? 0.0f : (float)(x1 - x0) / (float)(y1 - y0);
    e->x0 = x0;
    e->y0 = y0;
}

static int float_cmp(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* polygon_generic without alpha and without the "connect discontiguous
 * corners" tweak (ape.md: it changes no APE pixel; the checksums confirm). */
static void fill_polygon(ape_canvas *c, int n, edge *e)
{
    enum { MAX_EDGES = 4 };
    const edge *table[MAX_EDGES];
    float xx[2 * MAX_EDGES];
    int count = 0, ymin = c->h - 1, ymax = 0;
    for (int i = 0; i < n; i++) {
        if (ymin > e[i].ymin)
            ymin = e[i].ymin;
        if (ymax < e[i].ymax)
            ymax = e[i].ymax;
        if (e[i].ymin == e[i].ymax) {
            hline(c, e[i].xmin, e[i].ymin, e[i].xmax);
            continue;
        }
        table[count++] = e + i;
    }
    if (ymin < 0)
        ymin = 0;
    if (ymax > c->h)
        ymax = c->h;
    for (int y = ymin; y <= ymax; y++) {
        int j = 0;
        for (int i = 0; i < count; i++) {
            const edge *cur = table[i];
            if (y >= cur->ymin && y <= cur->ymax) {
                float t = (float)(y - cur->y0) * cur->dx;
                xx[j++] = t + (float)cur->x0;
                if (y == cur->ymax && y < ymax) {
                    xx[j] = xx[j - 1];
                    j++;
                }
            }
        }
        qsort(xx, (size_t)j, sizeof xx[0], float_cmp);
        for (int i = 1; i < j; i += 2)
            hline(c, round_up_f(xx[i - 1]), y, round_down_f(xx[i]));
    }
}

void ape_draw_wide_line(ape_canvas *c, int x0, int y0, int x1, int y1, int width)
{
    int dx = x1 - x0, dy = y1 - y0;
    if (dx == 0 && dy == 0) {
        if (x0 >= 0 && x0 < c->w && y0 >= 0 && y0 < c->h)
            c->px[(size_t)y0 * (size_t)c->w + (size_t)x0] = 0;
        return;
    }
    double big = hypot(dx, dy);
    double small = (width - 1) / 2.0;
    double ratio_max = round_up_d(small) / big;
    double ratio_min = round_down_d(small) / big;
    int dxmin = round_down_d(ratio_min * dy);
    int dxmax = round_down_d(ratio_max * dy);
    int dymin = round_down_d(ratio_min * dx);
    int dymax = round_down_d(ratio_max * dx);
    const int v[4][2] = {{x0 - dxmin, y0 + dymax},
                         {x1 - dxmin, y1 + dymax},
                         {x1 + dxmax, y1 - dymin},
                         {x0 + dxmax, y0 - dymin}};
    edge e[4];
    for (int i = 0; i < 4; i++)
        add_edge(e + i, v[i][0], v[i][1], v[(i + 1) % 4][0], v[(i + 1) % 4][1]);
    fill_polygon(c, 4, e);
}

/* Pillow's quarter tracer in doubled coordinates: from (a, b%2) to (a%2, b),
 * each step the best of up, diagonal, left by |a²Y² + b²X² − a²b²|. */
typedef struct quarter {
    int32_t cx, cy, ex, ey;
    int64_t a2, b2, a2b2;
    int finished;
} quarter;

static void quarter_init(quarter *s, int32_t a, int32_t b)
{
    s->cx = a;
    s->cy = b % 2;
    s->ex = a % 2;
    s->ey = b;
    s->a2 = (int64_t)a * a;
    s->b2 = (int64_t)b * b;
    s->a2b2 = s->a2 * s->b2;
    s->finished = 0;
}

static int64_t quarter_delta(const quarter *s, int64_t x, int64_t y)
{
    int64_t d = s->a2 * y * y + s->b2 * x * x - s->a2b2;
    return d < 0 ? -d : d;
}

static int quarter_next(quarter *s, int32_t *x, int32_t *y)
{
    if (s->finished)
        return -1;
    *x = s->cx;
    *y = s->cy;
    if (s->cx == s->ex && s->cy == s->ey) {
        s->finished = 1;
        return 0;
    }
    int32_t nx = s->cx, ny = s->cy + 2;
    int64_t nd = quarter_delta(s, nx, ny);
    if (nx > 1) {
        int64_t d = quarter_delta(s, s->cx - 2, s->cy + 2);
        if (nd > d) {
            nx = s->cx - 2;
            ny = s->cy + 2;
            nd = d;
        }
        d = quarter_delta(s, s->cx - 2, s->cy);
        if (nd > d) {
            nx = s->cx - 2;
            ny = s->cy;
        }
    }
    s->cx = nx;
    s->cy = ny;
    return 0;
}

void ape_draw_filled_ellipse(ape_canvas *c, int x0, int y0, int x1, int y1)
{
    const int32_t a = x1 - x0, b = y1 - y0;
    if (a < 0 || b < 0)
        return;
    /* A filled ellipse is ellipse_new with width a+b: the inner quarter is
     * empty, so every span's inner edge is l = a % 2. */
    const int32_t l = a % 2, s = l > 0 ? l : 2;
    quarter q;
    quarter_init(&q, a, b);
    int32_t r, y, cx, cy;
    quarter_next(&q, &r, &y);
    int more = 1;
    while (more) {
        /* Skip the rest of this level; the next level's first point is the
         * widest one there. */
        int got;
        while ((got = quarter_next(&q, &cx, &cy)) != -1 && cy <= y) {
        }
        /* Spans in Pillow's emission order (a stack, so reversed). Pixels
         * don't care about order; keep it anyway for clarity. */
        int32_t sl[4], sy[4], sr[4], n = 0;
        if ((l > 0 || l < r) && y > 0) {
            sl[n] = s, sy[n] = y, sr[n] = r, n++;
        }
        if (y > 0) {
            sl[n] = -r, sy[n] = y, sr[n] = -l, n++;
        }
        if (l > 0 || l < r) {
            sl[n] = s, sy[n] = -y, sr[n] = r, n++;
        }
        sl[n] = -r, sy[n] = -y, sr[n] = -l, n++;
        while (n-- > 0)
            hline(c, x0 + (sl[n] + a) / 2, y0 + (sy[n] + b) / 2, x0 + (sr[n] + a) / 2);
        if (got == -1) {
            more = 0;
        } else {
            r = cx;
            y = cy;
        }
    }
}
