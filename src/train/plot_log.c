/* Training curves from a JSON-lines log: loss and accuracy vs step, one
 * line per split. */
#include "plstm/train.h"
#include "core/status_internal.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_SPLITS = 8 };

typedef struct curve {
    double *x, *y;
    size_t n, cap;
} curve;

typedef struct split {
    char name[32];
    curve loss, acc;
} split;

static int push(curve *c, double x, double y)
{
    if (c->n == c->cap) {
        const size_t cap = c->cap ? 2 * c->cap : 256;
        double *nx = realloc(c->x, cap * sizeof *nx);
        if (!nx)
            return -1;
        c->x = nx;
        double *ny = realloc(c->y, cap * sizeof *ny);
        if (!ny)
            return -1;
        c->y = ny;
        c->cap = cap;
    }
    c->x[c->n] = x;
    c->y[c->n++] = y;
    return 0;
}

static split *find_split(split *sp, int *n, const char *name)
{
    for (int i = 0; i < *n; i++)
        if (!strcmp(sp[i].name, name))
            return &sp[i];
    if (*n == MAX_SPLITS)
        return NULL;
    split *s = &sp[(*n)++];
    snprintf(s->name, sizeof s->name, "%s", name);
    return s;
}

static int add_record(split *sp, int *nsp, const json_t *j)
{
    const json_t *step = json_object_get(j, "step");
    const json_t *loss = json_object_get(j, "loss"), *acc = json_object_get(j, "acc");
    if (!json_is_number(step) || (!json_is_number(loss) && !json_is_number(acc)))
        return 0;
    const json_t *name = json_object_get(j, "split");
    split *s = find_split(sp, nsp, json_is_string(name) ? json_string_value(name) : "train");
    if (!s)
        return 0;
    const double x = json_number_value(step);
    if (json_is_number(loss) && push(&s->loss, x, json_number_value(loss)))
        return -1;
    if (json_is_number(acc) && push(&s->acc, x, json_number_value(acc)))
        return -1;
    return 0;
}

static plstm_status read_log(const char *path, split *sp, int *nsp)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return plstm_fail(PLSTM_ERR_IO, "cannot open log %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int oom = 0;
    while (!oom && (len = getline(&line, &cap, f)) > 0) {
        json_error_t err;
        json_t *j = json_loadb(line, (size_t)len, 0, &err);
        if (j && json_is_object(j))
            oom = add_record(sp, nsp, j) != 0;
        json_decref(j);
    }
    free(line);
    fclose(f);
    return oom ? plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "out of memory reading %s", path)
               : PLSTM_OK;
}

static const uint8_t COLORS[MAX_SPLITS][3] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},
                                              {214, 39, 40},  {148, 103, 189}, {140, 86, 75},
                                              {227, 119, 194}, {127, 127, 127}};

plstm_status plstm_plot_training_log(const char *png_path, const char *jsonl_path, int width,
                                     int height)
{
    PLSTM_CHECK_ARG(png_path && jsonl_path, "plstm_plot_training_log: NULL argument");
    split sp[MAX_SPLITS];
    memset(sp, 0, sizeof sp);
    int nsp = 0;
    plstm_status st = read_log(jsonl_path, sp, &nsp);
    plstm_plot_series loss[MAX_SPLITS], acc[MAX_SPLITS];
    size_t nl = 0, na = 0;
    for (int i = 0; i < nsp; i++) {
        const uint8_t *rgb = COLORS[i];
        if (sp[i].loss.n)
            loss[nl++] = (plstm_plot_series){sp[i].name, sp[i].loss.x, sp[i].loss.y,
                                             sp[i].loss.n, {rgb[0], rgb[1], rgb[2]}};
        if (sp[i].acc.n)
            acc[na++] = (plstm_plot_series){sp[i].name, sp[i].acc.x, sp[i].acc.y, sp[i].acc.n,
                                            {rgb[0], rgb[1], rgb[2]}};
    }
    if (st == PLSTM_OK && nl + na == 0)
        st = plstm_fail(PLSTM_ERR_FORMAT, "log %s has no records with step and loss or acc",
                        jsonl_path);
    if (st == PLSTM_OK) {
        const plstm_plot_panel panels[2] = {{"loss", "step", loss, nl},
                                            {"accuracy", "step", acc, na}};
        st = plstm_plot_write_png(png_path, width, height, panels, 2);
    }
    for (int i = 0; i < nsp; i++) {
        free(sp[i].loss.x), free(sp[i].loss.y);
        free(sp[i].acc.x), free(sp[i].acc.y);
    }
    return st;
}
