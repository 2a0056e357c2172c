/* APE dataset API: splits, seeding, rendering to bytes or floats, CRC-32. */
#include "data/ape_internal.h"
#include "data/ape_rng.h"
#include "core/status_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const plstm_ape_split_info splits[] = {
    {"train", 0, 192, 100000},
    {"val", 100042, 192, 5120},
    {"val_ext", 100043, 384, 5120},
    {"test", 200042, 192, 10240},
    {"test_ext", 200043, 384, 10240},
};
enum { NUM_SPLITS = sizeof splits / sizeof splits[0] };

plstm_status plstm_ape_split_get(plstm_ape_split split, uint64_t run_seed,
                                 plstm_ape_split_info *info)
{
    PLSTM_CHECK_ARG(info, "plstm_ape_split_get: info is NULL");
    PLSTM_CHECK_ARG((int)split >= 0 && (int)split < NUM_SPLITS,
                    "plstm_ape_split_get: unknown split %d", (int)split);
    *info = splits[split];
    if (split == PLSTM_APE_TRAIN)
        info->seed = run_seed;
    return PLSTM_OK;
}

plstm_status plstm_ape_split_parse(const char *name, plstm_ape_split *split)
{
    PLSTM_CHECK_ARG(name && split, "plstm_ape_split_parse: NULL argument");
    for (int i = 0; i < NUM_SPLITS; i++)
        if (!strcmp(name, splits[i].name)) {
            *split = (plstm_ape_split)i;
            return PLSTM_OK;
        }
    return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT,
                      "unknown APE split '%s' (train, val, val_ext, test, test_ext)", name);
}

plstm_status plstm_ape_init(plstm_ape *ds, uint64_t seed, int size)
{
    PLSTM_CHECK_ARG(ds, "plstm_ape_init: ds is NULL");
    PLSTM_CHECK_ARG(size >= PLSTM_APE_MIN_SIZE && size <= PLSTM_APE_MAX_SIZE,
                    "APE image size %d outside [%d, %d]", size, PLSTM_APE_MIN_SIZE,
                    PLSTM_APE_MAX_SIZE);
    ape_pcg64 g;
    ape_pcg64_seed(&g, seed);
    ds->seed = seed;
    ds->base_seed = ape_pcg64_integers_2p62(&g);
    ds->size = size;
    return PLSTM_OK;
}

plstm_status plstm_ape_init_split(plstm_ape *ds, plstm_ape_split split, uint64_t run_seed)
{
    plstm_ape_split_info info = {0};
    PLSTM_TRY(plstm_ape_split_get(split, run_seed, &info));
    return plstm_ape_init(ds, info.seed, info.size);
}

static plstm_status check_ds(const plstm_ape *ds, uint64_t index, const char *fn)
{
    PLSTM_CHECK_ARG(ds, "%s: ds is NULL", fn);
    PLSTM_CHECK_ARG(ds->size >= PLSTM_APE_MIN_SIZE && ds->size <= PLSTM_APE_MAX_SIZE,
                    "%s: dataset not initialized (size %d)", fn, ds->size);
    /* G < 2^62, so G + index only overflows for absurd indices. */
    PLSTM_CHECK_ARG(index <= UINT64_MAX - ds->base_seed, "%s: index %llu too large", fn,
                    (unsigned long long)index);
    return PLSTM_OK;
}

plstm_status plstm_ape_sample_params(const plstm_ape *ds, uint64_t index, plstm_ape_sample *s)
{
    PLSTM_TRY(check_ds(ds, index, "plstm_ape_sample_params"));
    PLSTM_CHECK_ARG(s, "plstm_ape_sample_params: sample is NULL");
    ape_draw_params(ds->base_seed, ds->size, index, s);
    return PLSTM_OK;
}

plstm_status plstm_ape_render_u8(const plstm_ape *ds, uint64_t index, uint8_t *pixels,
                                 plstm_ape_sample *sample)
{
    PLSTM_TRY(check_ds(ds, index, "plstm_ape_render_u8"));
    PLSTM_CHECK_ARG(pixels, "plstm_ape_render_u8: pixels is NULL");
    plstm_ape_sample s;
    ape_draw_params(ds->base_seed, ds->size, index, &s);
    ape_paint(&s, ds->size, pixels);
    if (sample)
        *sample = s;
    return PLSTM_OK;
}

static const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
static const float imagenet_std[3] = {0.229f, 0.224f, 0.225f};

plstm_status plstm_ape_render_f32(const plstm_ape *ds, uint64_t index, plstm_ape_layout layout,
                                  plstm_ape_norm norm, float *out, int32_t *label,
                                  uint8_t *scratch)
{
    PLSTM_TRY(check_ds(ds, index, "plstm_ape_render_f32"));
    PLSTM_CHECK_ARG(out, "plstm_ape_render_f32: out is NULL");
    PLSTM_CHECK_ARG(layout == PLSTM_APE_HWC || layout == PLSTM_APE_CHW,
                    "plstm_ape_render_f32: unknown layout %d", (int)layout);
    PLSTM_CHECK_ARG(norm == PLSTM_APE_NORM_UNIT || norm == PLSTM_APE_NORM_IMAGENET,
                    "plstm_ape_render_f32: unknown normalization %d", (int)norm);
    const size_t n = (size_t)ds->size * (size_t)ds->size;
    uint8_t *px = scratch ? scratch : malloc(n);
    if (!px)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "plstm_ape_render_f32: %zu bytes", n);
    plstm_ape_sample s;
    ape_draw_params(ds->base_seed, ds->size, index, &s);
    ape_paint(&s, ds->size, px);

    /* The two values each channel can take: black (0) and white (255). */
    float val[3][2];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 2; v++)
            val[c][v] = norm == PLSTM_APE_NORM_UNIT
                            ? (float)v
                            : ((float)v - imagenet_mean[c]) / imagenet_std[c];
    if (layout == PLSTM_APE_HWC) {
        for (size_t i = 0; i < n; i++)
            for (int c = 0; c < 3; c++)
                out[3 * i + (size_t)c] = val[c][px[i] != 0];
    } else {
        for (int c = 0; c < 3; c++)
            for (size_t i = 0; i < n; i++)
                out[(size_t)c * n + i] = val[c][px[i] != 0];
    }
    if (!scratch)
        free(px);
    if (label)
        *label = s.label;
    return PLSTM_OK;
}

plstm_status plstm_ape_render_batch_f32(const plstm_ape *ds, const uint64_t *indices, int64_t n,
                                        plstm_ape_layout layout, plstm_ape_norm norm, float *out,
                                        int32_t *labels)
{
    PLSTM_CHECK_ARG(n >= 0, "plstm_ape_render_batch_f32: n = %lld", (long long)n);
    PLSTM_CHECK_ARG(n == 0 || (indices && out), "plstm_ape_render_batch_f32: NULL buffer");
    PLSTM_CHECK_ARG(layout == PLSTM_APE_HWC || layout == PLSTM_APE_CHW,
                    "plstm_ape_render_batch_f32: unknown layout %d", (int)layout);
    PLSTM_CHECK_ARG(norm == PLSTM_APE_NORM_UNIT || norm == PLSTM_APE_NORM_IMAGENET,
                    "plstm_ape_render_batch_f32: unknown normalization %d", (int)norm);
    /* Validate everything first so the workers can only run out of memory. */
    PLSTM_TRY(check_ds(ds, 0, "plstm_ape_render_batch_f32"));
    for (int64_t b = 0; b < n; b++)
        PLSTM_TRY(check_ds(ds, indices[b], "plstm_ape_render_batch_f32"));
    const size_t npix = (size_t)ds->size * (size_t)ds->size;
    int oom = 0;
#pragma omp parallel reduction(| : oom)
    {
        uint8_t *scratch = malloc(npix);
        oom = !scratch;
#pragma omp for schedule(dynamic, 1)
        for (int64_t b = 0; b < n; b++)
            if (scratch)
                plstm_ape_render_f32(ds, indices[b], layout, norm, out + (size_t)b * 3 * npix,
                                     labels ? labels + b : NULL, scratch);
        free(scratch);
    }
    if (oom)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY,
                          "plstm_ape_render_batch_f32: no memory for a %zu-byte scratch image", npix);
    return PLSTM_OK;
}

uint32_t plstm_ape_crc32(uint32_t crc, const void *data, size_t n)
{
    /* Reflected CRC-32 (zlib's), a byte at a time. The table is built per
     * call (about 2k operations) so there is no shared state to initialize. */
    uint32_t t[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
        t[i] = c;
    }
    const uint8_t *p = data;
    crc = ~crc;
    for (size_t i = 0; i < n; i++)
        crc = (crc >> 8) ^ t[(crc ^ p[i]) & 0xffu];
    return ~crc;
}

int plstm_ape_target_label(const plstm_ape *ds, const plstm_ape_sample *s, plstm_ape_target t)
{
    switch (t) {
    case PLSTM_APE_TARGET_CIRCLE_RIGHT:
        return s->circle_x > 0.5 * ds->size;
    case PLSTM_APE_TARGET_ARROW_RIGHT:
        return cos(s->phi) > 0;
    case PLSTM_APE_TARGET_POINTING:
    default:
        return s->label;
    }
}

void plstm_ape_geometry(const plstm_ape *ds, const plstm_ape_sample *s,
                        float g[PLSTM_APE_GEOMETRY_DIM])
{
    const double to_unit = 2.0 / ds->size; /* pixel position -> [-1, 1] */
    g[0] = (float)(s->arrow_x * to_unit - 1.0);
    g[1] = (float)(s->arrow_y * to_unit - 1.0);
    g[2] = (float)(s->circle_x * to_unit - 1.0);
    g[3] = (float)(s->circle_y * to_unit - 1.0);
    g[4] = (float)(s->radius / 30.0); /* max radius: 0.5..1 */
    g[5] = (float)cos(s->phi);
    g[6] = (float)sin(s->phi);
}
