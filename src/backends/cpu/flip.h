/* Grid flips for the four-orientation 2D form (plstm-math.md §3.7). */
#ifndef PLSTM_CPU_FLIP_H
#define PLSTM_CPU_FLIP_H

#include <stddef.h>

/* dst[b][x][y] = src[b][fx ? X-1-x : x][fy ? Y-1-y : y] for nodes of
 * `node_bytes` bytes; batch entry b of src starts at src + b*src_bstride
 * bytes, of dst at dst + b*dst_bstride bytes. A flip is its own inverse.
 * `threads` > 0 sets the OpenMP threads (split over b), 0 = default. */
void cpu_flip_grid(void *dst, size_t dst_bstride, const void *src, size_t src_bstride, int B,
                   int X, int Y, size_t node_bytes, int fx, int fy, int threads);

/* The same map, adding instead of copying (dst and src dense [B,X,Y,n]). */
void cpu_flip_grid_add_f32(float *dst, const float *src, int B, int X, int Y, size_t n,
                           int fx, int fy, int threads);
void cpu_flip_grid_add_f64(double *dst, const double *src, int B, int X, int Y, size_t n,
                           int fx, int fy, int threads);

#endif
