/* APE internals shared by the dataset API and its sample generator. */
#ifndef PLSTM_DATA_APE_INTERNAL_H
#define PLSTM_DATA_APE_INTERNAL_H

#include "plstm/ape.h"

/* The paper's generator parameters (ape.md §1.2). */
#define APE_PAD 30
#define APE_MIN_RADIUS 15.0
#define APE_MAX_RADIUS 30.0
#define APE_LEN_MIN 15.0
#define APE_LEN_MAX 30.0
#define APE_WIDTH_MIN 2.0
#define APE_WIDTH_MAX 4.0
#define APE_INTERSECTION_FACTOR 1.2
#define APE_INTERSECTION_RATIO 0.5

/* Draws the 9 doubles of sample `index` from default_rng(G + index) and turns
 * them into the sample's parameters (ape.md §1.3-1.4). Arguments checked. */
void ape_draw_params(uint64_t base_seed, int size, uint64_t index, plstm_ape_sample *s);

/* Paints the sample onto a size*size one-channel canvas (ape.md §1.5). */
void ape_paint(const plstm_ape_sample *s, int size, uint8_t *pixels);

#endif
