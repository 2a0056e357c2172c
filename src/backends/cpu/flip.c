/* Grid flips for the four-orientation 2D form. */
#include "backends/cpu/flip.h"

#include <omp.h>
#include <string.h>

static size_t src_node(int X, int Y, int x, int y, int fx, int fy)
{
    return (size_t)(fx ? X - 1 - x : x) * Y + (size_t)(fy ? Y - 1 - y : y);
}

static int nthreads(int threads, int B)
{
    int t = threads > 0 ? threads : omp_get_max_threads();
    return t < B ? t : B;
}

void cpu_flip_grid(void *dst, size_t dst_bstride, const void *src, size_t src_bstride, int B,
                   int X, int Y, size_t node_bytes, int fx, int fy, int threads)
{
#pragma omp parallel for num_threads(nthreads(threads, B))
    for (int b = 0; b < B; b++) {
        unsigned char *d = (unsigned char *)dst + (size_t)b * dst_bstride;
        const unsigned char *s = (const unsigned char *)src + (size_t)b * src_bstride;
        for (int x = 0; x < X; x++)
            for (int y = 0; y < Y; y++)
                memcpy(d + ((size_t)x * Y + y) * node_bytes,
                       s + src_node(X, Y, x, y, fx, fy) * node_bytes, node_bytes);
    }
}

#define FLIP_ADD(NAME, REAL)                                                              \
    void NAME(REAL *dst, const REAL *src, int B, int X, int Y, size_t n, int fx, int fy,  \
              int threads)                                                                \
    {                                                                                     \
        const size_t grid = (size_t)X * Y * n;                                            \
        _Pragma("omp parallel for num_threads(nthreads(threads, B))")                     \
        for (int b = 0; b < B; b++)                                                       \
            for (int x = 0; x < X; x++)                                                   \
                for (int y = 0; y < Y; y++) {                                             \
                    REAL *d = dst + b * grid + ((size_t)x * Y + y) * n;                   \
                    const REAL *s = src + b * grid + src_node(X, Y, x, y, fx, fy) * n;    \
                    for (size_t i = 0; i < n; i++)                                        \
                        d[i] += s[i];                                                     \
                }                                                                         \
    }

FLIP_ADD(cpu_flip_grid_add_f32, float)
FLIP_ADD(cpu_flip_grid_add_f64, double)
