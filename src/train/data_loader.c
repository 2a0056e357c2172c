/* Prefetching APE batch loader. Worker threads claim batch indices in order
 * and render batch k into ring slot k % prefetch; the consumer takes batch k
 * from its slot once it is filled. Content depends only on k, so the result
 * is the same for any number of workers and any timing. */
#include "plstm/trainer.h"
#include "core/status_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
static const float imagenet_std[3] = {0.229f, 0.224f, 0.225f};

typedef struct slot {
    float *pixels;
    int32_t *labels;
    float *geometry; /* [batch, PLSTM_APE_GEOMETRY_DIM] with cfg.geometry */
    int64_t batch; /* batch held (-1: none) */
    int n;
    plstm_status status;
    char error[256];
} slot;

/* A worker's permutation cache (one epoch). */
typedef struct perm_cache {
    int64_t epoch;
    int64_t *perm;
    uint8_t *scratch; /* size*size bytes */
} perm_cache;

struct plstm_loader {
    plstm_loader_config cfg;
    int side, slots;
    int64_t per_epoch;   /* batches per epoch (repeat) */
    int64_t num_batches; /* one pass; -1 with repeat  */
    size_t image_elems;  /* side*side*3 */
    slot *ring;
    int64_t next_claim;  /* next batch a worker takes */
    int64_t consumed;    /* batches handed out and released: slots of batches < consumed are free */
    int64_t current;     /* batch the consumer holds (-1: none) */
    int stopping;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t *workers;
    int num_workers;
    perm_cache sync_cache; /* for threads == 0 */
};

static void cache_free(perm_cache *c)
{
    free(c->perm);
    free(c->scratch);
}

/* Sample index of position `pos` in batch k. */
static plstm_status sample_index(const plstm_loader *ld, perm_cache *c, int64_t k, int pos,
                                 uint64_t *index)
{
    const plstm_loader_config *g = &ld->cfg;
    if (!g->repeat) {
        *index = (uint64_t)(k * g->batch + pos);
        return PLSTM_OK;
    }
    const int64_t epoch = k / ld->per_epoch, j = (k % ld->per_epoch) * g->batch + pos;
    if (!g->shuffle) {
        *index = (uint64_t)j;
        return PLSTM_OK;
    }
    if (c->epoch != epoch) {
        if (!c->perm && !(c->perm = malloc((size_t)g->count * sizeof *c->perm)))
            return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "loader: out of memory");
        plstm_rng r;
        plstm_rng_seed(&r, g->shuffle_seed, 0x7065726d00000000ull + (uint64_t)epoch);
        plstm_rng_permutation(&r, c->perm, (size_t)g->count);
        c->epoch = epoch;
    }
    *index = (uint64_t)c->perm[j];
    return PLSTM_OK;
}

/* Renders one image (side x side x 3, channels last) averaging d x d blocks. */
static plstm_status render_one(const plstm_loader *ld, perm_cache *c, uint64_t index, float *out,
                               int32_t *label, float *geometry)
{
    const plstm_loader_config *g = &ld->cfg;
    const int d = g->downsample, S = g->ds.size, side = ld->side;
    plstm_ape_sample smp;
    if (d == 1) {
        PLSTM_TRY(plstm_ape_render_f32(&g->ds, index, PLSTM_APE_HWC, g->norm, out, label,
                                       c->scratch));
        if (g->target != PLSTM_APE_TARGET_POINTING || geometry) {
            PLSTM_TRY(plstm_ape_sample_params(&g->ds, index, &smp));
            *label = plstm_ape_target_label(&g->ds, &smp, g->target);
            if (geometry)
                plstm_ape_geometry(&g->ds, &smp, geometry);
        }
        return PLSTM_OK;
    }
    PLSTM_TRY(plstm_ape_render_u8(&g->ds, index, c->scratch, &smp));
    *label = plstm_ape_target_label(&g->ds, &smp, g->target);
    if (geometry)
        plstm_ape_geometry(&g->ds, &smp, geometry);
    const float inv = 1.0f / (255.0f * (float)(d * d));
    for (int y = 0; y < side; y++)
        for (int x = 0; x < side; x++) {
            int sum = 0;
            for (int dy = 0; dy < d; dy++) {
                const uint8_t *row = c->scratch + (size_t)(y * d + dy) * S + (size_t)x * d;
                for (int dx = 0; dx < d; dx++)
                    sum += row[dx];
            }
            const float v = (float)sum * inv;
            float *o = out + ((size_t)y * side + x) * 3;
            for (int ch = 0; ch < 3; ch++)
                o[ch] = g->norm == PLSTM_APE_NORM_IMAGENET
                            ? (v - imagenet_mean[ch]) / imagenet_std[ch]
                            : v;
        }
    return PLSTM_OK;
}

static int batch_size_of(const plstm_loader *ld, int64_t k)
{
    if (ld->cfg.repeat)
        return ld->cfg.batch;
    const int64_t left = ld->cfg.count - k * ld->cfg.batch;
    return (int)(left < ld->cfg.batch ? left : ld->cfg.batch);
}

static plstm_status render_batch(const plstm_loader *ld, perm_cache *c, int64_t k, slot *s)
{
    s->n = batch_size_of(ld, k);
    for (int b = 0; b < s->n; b++) {
        uint64_t index = 0;
        PLSTM_TRY(sample_index(ld, c, k, b, &index));
        PLSTM_TRY(render_one(ld, c, index, s->pixels + (size_t)b * ld->image_elems,
                             s->labels + b,
                             s->geometry ? s->geometry + (size_t)b * PLSTM_APE_GEOMETRY_DIM
                                         : NULL));
    }
    return PLSTM_OK;
}

static void *worker_main(void *arg)
{
    plstm_loader *ld = arg;
    perm_cache cache = {-1, NULL, malloc((size_t)ld->cfg.ds.size * ld->cfg.ds.size)};
    pthread_mutex_lock(&ld->mu);
    for (;;) {
        /* Claim the next batch once its slot is free. */
        while (!ld->stopping && !(ld->next_claim < ld->consumed + ld->slots &&
                                  (ld->num_batches < 0 || ld->next_claim < ld->num_batches)))
            pthread_cond_wait(&ld->cv, &ld->mu);
        if (ld->stopping)
            break;
        const int64_t k = ld->next_claim++;
        slot *s = &ld->ring[k % ld->slots];
        pthread_mutex_unlock(&ld->mu);
        plstm_status st = cache.scratch ? render_batch(ld, &cache, k, s)
                                        : plstm_fail(PLSTM_ERR_OUT_OF_MEMORY,
                                                     "loader: out of memory");
        pthread_mutex_lock(&ld->mu);
        s->status = st;
        if (st != PLSTM_OK)
            snprintf(s->error, sizeof s->error, "%s", plstm_last_error());
        s->batch = k;
        pthread_cond_broadcast(&ld->cv);
    }
    pthread_mutex_unlock(&ld->mu);
    cache_free(&cache);
    return NULL;
}

void plstm_loader_destroy(plstm_loader *ld)
{
    if (!ld)
        return;
    if (ld->workers) {
        pthread_mutex_lock(&ld->mu);
        ld->stopping = 1;
        pthread_cond_broadcast(&ld->cv);
        pthread_mutex_unlock(&ld->mu);
        for (int i = 0; i < ld->num_workers; i++)
            pthread_join(ld->workers[i], NULL);
        free(ld->workers);
    }
    pthread_cond_destroy(&ld->cv);
    pthread_mutex_destroy(&ld->mu);
    if (ld->ring)
        for (int i = 0; i < ld->slots; i++)
            free(ld->ring[i].pixels), free(ld->ring[i].labels), free(ld->ring[i].geometry);
    free(ld->ring);
    cache_free(&ld->sync_cache);
    free(ld);
}

plstm_status plstm_loader_create(plstm_loader **out, const plstm_loader_config *cfg,
                                 int64_t start_batch)
{
    PLSTM_CHECK_ARG(out && cfg, "plstm_loader_create: NULL argument");
    *out = NULL;
    const plstm_loader_config *g = cfg;
    PLSTM_CHECK_ARG(g->ds.size >= PLSTM_APE_MIN_SIZE, "loader: dataset is not initialized");
    PLSTM_CHECK_ARG(g->batch >= 1 && g->count >= 1, "loader: batch %d and count %lld must be >= 1",
                    g->batch, (long long)g->count);
    PLSTM_CHECK_ARG(g->downsample >= 1 && g->ds.size % g->downsample == 0,
                    "loader: downsample %d must divide the image size %d", g->downsample,
                    g->ds.size);
    PLSTM_CHECK_ARG(!g->repeat || g->count >= g->batch,
                    "loader: %lld samples do not fill one batch of %d", (long long)g->count,
                    g->batch);
    PLSTM_CHECK_ARG(g->threads >= 0 && g->threads <= 256 && g->prefetch >= 1 &&
                        g->prefetch <= 256,
                    "loader: threads %d / prefetch %d out of range", g->threads, g->prefetch);
    PLSTM_CHECK_ARG(start_batch >= 0, "loader: negative start batch");
    plstm_loader *ld = calloc(1, sizeof *ld);
    if (!ld)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "loader: out of memory");
    ld->cfg = *g;
    ld->side = g->ds.size / g->downsample;
    ld->slots = g->threads ? g->prefetch : 1;
    ld->per_epoch = g->count / g->batch;
    ld->num_batches = g->repeat ? -1 : (g->count + g->batch - 1) / g->batch;
    ld->image_elems = (size_t)ld->side * ld->side * 3;
    ld->next_claim = ld->consumed = start_batch;
    ld->current = -1;
    ld->sync_cache.epoch = -1;
    pthread_mutex_init(&ld->mu, NULL);
    pthread_cond_init(&ld->cv, NULL);
    ld->ring = calloc((size_t)ld->slots, sizeof *ld->ring);
    int ok = ld->ring != NULL;
    for (int i = 0; ok && i < ld->slots; i++) {
        ld->ring[i].batch = -1;
        ld->ring[i].pixels = malloc(ld->image_elems * g->batch * sizeof(float));
        ld->ring[i].labels = malloc((size_t)g->batch * sizeof(int32_t));
        ok = ld->ring[i].pixels && ld->ring[i].labels;
        if (ok && g->geometry)
            ok = (ld->ring[i].geometry =
                      malloc((size_t)g->batch * PLSTM_APE_GEOMETRY_DIM * sizeof(float))) != NULL;
    }
    if (ok && !g->threads)
        ok = (ld->sync_cache.scratch = malloc((size_t)g->ds.size * g->ds.size)) != NULL;
    if (ok && g->threads)
        ok = (ld->workers = calloc((size_t)g->threads, sizeof *ld->workers)) != NULL;
    if (!ok) {
        plstm_loader_destroy(ld);
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "loader: out of memory for %d batches of %d "
                                                   "images %dx%d",
                          ld->slots, g->batch, ld->side, ld->side);
    }
    for (int i = 0; i < g->threads; i++) {
        if (pthread_create(&ld->workers[i], NULL, worker_main, ld)) {
            plstm_loader_destroy(ld);
            return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "loader: cannot start worker thread");
        }
        ld->num_workers++;
    }
    *out = ld;
    return PLSTM_OK;
}

int plstm_loader_side(const plstm_loader *ld) { return ld ? ld->side : 0; }

const float *plstm_loader_geometry(const plstm_loader *ld)
{
    if (!ld || ld->current < 0)
        return NULL;
    return ld->ring[ld->workers ? ld->current % ld->slots : 0].geometry;
}

plstm_status plstm_loader_next(plstm_loader *ld, const float **pixels, const int32_t **labels,
                               int *n)
{
    PLSTM_CHECK_ARG(ld && pixels && labels && n, "plstm_loader_next: NULL argument");
    *n = 0;
    if (!ld->workers) {
        const int64_t k = ld->current < 0 ? ld->consumed : ld->current + 1;
        if (ld->num_batches >= 0 && k >= ld->num_batches)
            return PLSTM_OK;
        slot *s = &ld->ring[0];
        PLSTM_TRY(render_batch(ld, &ld->sync_cache, k, s));
        ld->current = k;
        *pixels = s->pixels, *labels = s->labels, *n = s->n;
        return PLSTM_OK;
    }
    pthread_mutex_lock(&ld->mu);
    if (ld->current >= 0) { /* release the batch handed out last time */
        ld->consumed = ld->current + 1;
        ld->current = -1;
        pthread_cond_broadcast(&ld->cv);
    }
    const int64_t k = ld->consumed;
    if (ld->num_batches >= 0 && k >= ld->num_batches) {
        pthread_mutex_unlock(&ld->mu);
        return PLSTM_OK;
    }
    slot *s = &ld->ring[k % ld->slots];
    while (s->batch != k)
        pthread_cond_wait(&ld->cv, &ld->mu);
    ld->current = k;
    const plstm_status st = s->status;
    pthread_mutex_unlock(&ld->mu);
    if (st != PLSTM_OK)
        return plstm_fail(st, "loader: batch %lld: %s", (long long)k, s->error);
    *pixels = s->pixels, *labels = s->labels, *n = s->n;
    return PLSTM_OK;
}
