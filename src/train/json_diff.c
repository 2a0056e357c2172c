#include "train/json_diff.h"
#include "core/status_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Compact text of a value (truncated to fit `cap`). */
static void show(const json_t *v, char *buf, size_t cap)
{
    if (!v) {
        snprintf(buf, cap, "absent");
        return;
    }
    char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
    snprintf(buf, cap, "%s", t ? t : "?");
    free(t);
}

/* Walks both values; writes the first differing path into `path`. */
static int find(const json_t *a, const json_t *b, char *path, size_t cap, const json_t **da,
                const json_t **db)
{
    if (json_is_object(a) && json_is_object(b)) {
        const size_t len = strlen(path);
        const char *key;
        const json_t *va;
        json_object_foreach((json_t *)a, key, va) {
            snprintf(path + len, cap - len, "%s%s", len ? "." : "", key);
            if (find(va, json_object_get(b, key), path, cap, da, db))
                return 1;
        }
        const json_t *vb;
        json_object_foreach((json_t *)b, key, vb) {
            if (!json_object_get(a, key)) {
                snprintf(path + len, cap - len, "%s%s", len ? "." : "", key);
                *da = NULL;
                *db = vb;
                return 1;
            }
        }
        path[len] = '\0';
        return 0;
    }
    if (json_is_array(a) && json_is_array(b) && json_array_size(a) == json_array_size(b)) {
        const size_t len = strlen(path);
        for (size_t i = 0; i < json_array_size(a); i++) {
            snprintf(path + len, cap - len, "[%zu]", i);
            if (find(json_array_get(a, i), json_array_get(b, i), path, cap, da, db))
                return 1;
        }
        path[len] = '\0';
        return 0;
    }
    if (a && b && json_equal((json_t *)a, (json_t *)b))
        return 0;
    *da = a;
    *db = b;
    return 1;
}

plstm_status plstm_json_diff(const char *file_text, const char *run_text, char *out, size_t cap)
{
    json_error_t err;
    json_t *a = json_loads(file_text, JSON_DECODE_ANY, &err);
    if (!a)
        return plstm_fail(PLSTM_ERR_FORMAT, "configuration in the file is not valid JSON: %s",
                          err.text);
    json_t *b = json_loads(run_text, JSON_DECODE_ANY, &err);
    if (!b) {
        json_decref(a);
        return plstm_fail(PLSTM_ERR_INVALID_ARGUMENT, "configuration is not valid JSON: %s",
                          err.text);
    }
    char path[256] = "";
    const json_t *da = NULL, *db = NULL;
    out[0] = '\0';
    if (find(a, b, path, sizeof path, &da, &db)) {
        char sa[96], sb[96];
        show(da, sa, sizeof sa);
        show(db, sb, sizeof sb);
        snprintf(out, cap, "%s is %s in the file and %s in this run", path[0] ? path : "the value",
                 sa, sb);
    }
    json_decref(a);
    json_decref(b);
    return PLSTM_OK;
}
