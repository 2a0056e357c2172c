/* Arrow Pointing Extrapolation (APE): the paper's synthetic benchmark,
 * generated bit-exactly like the authors' dataset (numpy PCG64 + Pillow
 * drawing; see spec ape.md). Every sample is a pure function of
 * (seed, index, size); there is no global state, so any number of threads
 * may render samples of the same plstm_ape at once. */
#ifndef PLSTM_APE_H
#define PLSTM_APE_H

#include <stddef.h>
#include <stdint.h>
#include "plstm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Smallest supported image side: 2 * padding + 4 * max radius, so the circle
 * always keeps its distance from the arrow. */
#define PLSTM_APE_MIN_SIZE 180
#define PLSTM_APE_MAX_SIZE 8192

/* The paper's splits (ape.md §1.7). */
typedef enum plstm_ape_split {
    PLSTM_APE_TRAIN = 0, /* 100,000 at 192, seed = run seed        */
    PLSTM_APE_VAL,       /*   5,120 at 192, seed 100042            */
    PLSTM_APE_VAL_EXT,   /*   5,120 at 384, seed 100043            */
    PLSTM_APE_TEST,      /*  10,240 at 192, seed 200042            */
    PLSTM_APE_TEST_EXT   /*  10,240 at 384, seed 200043            */
} plstm_ape_split;

typedef struct plstm_ape_split_info {
    const char *name; /* "train", "val", "val_ext", "test", "test_ext" */
    uint64_t seed;    /* generator seed                              */
    int size;         /* image side in pixels                        */
    int64_t count;    /* number of samples                           */
} plstm_ape_split_info;

/* Seed, size and count of a split; run_seed is used by the train split only. */
plstm_status plstm_ape_split_get(plstm_ape_split split, uint64_t run_seed,
                                 plstm_ape_split_info *info);
/* Parses a split name as listed above. */
plstm_status plstm_ape_split_parse(const char *name, plstm_ape_split *split);

/* A dataset: seed, image side and the per-dataset base seed G derived from the
 * seed (sample i is drawn from default_rng(G + i)). A plain value; copy freely. */
typedef struct plstm_ape {
    uint64_t seed;
    uint64_t base_seed; /* G */
    int size;
} plstm_ape;

/* size in [PLSTM_APE_MIN_SIZE, PLSTM_APE_MAX_SIZE]; the paper uses 192 and 384. */
plstm_status plstm_ape_init(plstm_ape *ds, uint64_t seed, int size);
plstm_status plstm_ape_init_split(plstm_ape *ds, plstm_ape_split split, uint64_t run_seed);

/* The drawn parameters of one sample. Positions are in image pixels
 * (padding included); x is the column, y the row. */
typedef struct plstm_ape_sample {
    int label;        /* 1: the arrow points at the circle                */
    int arrow_length; /* 15..29                                           */
    int arrow_width;  /* 2 or 3                                           */
    double u;         /* the uniform that decided the label (label = u<0.5) */
    double arrow_x, arrow_y, phi; /* arrow centre and direction (radians) */
    double circle_x, circle_y, radius;
} plstm_ape_sample;

plstm_status plstm_ape_sample_params(const plstm_ape *ds, uint64_t index, plstm_ape_sample *s);

/* Renders sample `index` as one channel (the three RGB channels are always
 * equal): size*size bytes, row-major, 0 (black) or 255 (white). `sample` may
 * be NULL. */
plstm_status plstm_ape_render_u8(const plstm_ape *ds, uint64_t index, uint8_t *pixels,
                                 plstm_ape_sample *sample);

typedef enum plstm_ape_layout {
    PLSTM_APE_HWC = 0, /* pixels[(y*size + x)*3 + c]   */
    PLSTM_APE_CHW      /* pixels[(c*size + y)*size + x] */
} plstm_ape_layout;

typedef enum plstm_ape_norm {
    PLSTM_APE_NORM_UNIT = 0, /* x / 255, values in {0, 1} (the torch wrapper)          */
    PLSTM_APE_NORM_IMAGENET  /* (x/255 - mean) / std, ImageNet mean/std (the trainer)   */
} plstm_ape_norm;

/* What a sample's label says. POINTING is APE's label; the others are
 * diagnostic sub-tasks on the same images, to see which part of the task a
 * model learns: whether the circle centre lies in the right half of the
 * image, and whether the arrow points right (cos φ > 0). */
typedef enum plstm_ape_target {
    PLSTM_APE_TARGET_POINTING = 0,
    PLSTM_APE_TARGET_CIRCLE_RIGHT,
    PLSTM_APE_TARGET_ARROW_RIGHT
} plstm_ape_target;

/* The label of a sample's parameters for a target. */
int plstm_ape_target_label(const plstm_ape *ds, const plstm_ape_sample *s, plstm_ape_target t);
/* A sample's geometry as regression targets of order one: arrow centre
 * (x, y) and circle centre (x, y) mapped to [-1, 1] across the image,
 * radius / 30, cos φ and sin φ. What the trainer's auxiliary loss
 * (aux_geometry) asks the model to read off the image. */
#define PLSTM_APE_GEOMETRY_DIM 7
void plstm_ape_geometry(const plstm_ape *ds, const plstm_ape_sample *s,
                        float g[PLSTM_APE_GEOMETRY_DIM]);

/* Renders sample `index` as 3*size*size floats in the given layout and
 * normalization; its label goes to *label (may be NULL). `scratch` must hold
 * size*size bytes (NULL: allocated and freed inside). */
plstm_status plstm_ape_render_f32(const plstm_ape *ds, uint64_t index, plstm_ape_layout layout,
                                  plstm_ape_norm norm, float *out, int32_t *label,
                                  uint8_t *scratch);

/* A batch: sample indices[b] goes to out + b*3*size*size, its label to
 * labels[b] (labels may be NULL). Runs the samples in parallel with OpenMP. */
plstm_status plstm_ape_render_batch_f32(const plstm_ape *ds, const uint64_t *indices, int64_t n,
                                        plstm_ape_layout layout, plstm_ape_norm norm, float *out,
                                        int32_t *labels);

/* zlib-compatible CRC-32, continued from `crc` (start with 0); what ape.md
 * §1.9 uses for its image checksums. */
uint32_t plstm_ape_crc32(uint32_t crc, const void *data, size_t n);

#ifdef __cplusplus
}
#endif
#endif
