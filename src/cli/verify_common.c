/* Loading, comparison and reporting shared by the verifiers. */
#include "cli/verify.h"
#include "core/status_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

plstm_status vt_zeros(size_t n, plstm_dtype dtype, vtensor *t)
{
    memset(t, 0, sizeof *t);
    t->n = n;
    t->f64 = calloc(n ? n : 1, sizeof(double));
    if (dtype == PLSTM_F32)
        t->f32 = calloc(n ? n : 1, sizeof(float));
    if (!t->f64 || (dtype == PLSTM_F32 && !t->f32)) {
        vt_free(t);
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "cannot allocate %zu elements", n);
    }
    return PLSTM_OK;
}

plstm_status vt_load(const plstm_safetensors *st, const char *name, int rank,
                     const int64_t *shape, plstm_dtype dtype, vtensor *t)
{
    memset(t, 0, sizeof *t);
    PLSTM_TRY(plstm_safetensors_expect_shape(st, name, rank, shape));
    size_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= (size_t)shape[i];
    PLSTM_TRY(vt_zeros(n, dtype, t));
    plstm_status s = plstm_safetensors_read_f64(st, name, t->f64, n);
    if (s != PLSTM_OK) {
        vt_free(t);
        return s;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(t->f64[i])) {
            vt_free(t);
            return plstm_fail(PLSTM_ERR_NUMERIC, "tensor %s has a non-finite value at %zu", name, i);
        }
        if (t->f32)
            t->f32[i] = (float)t->f64[i];
    }
    return PLSTM_OK;
}

void *vt_ptr(vtensor *t, plstm_dtype dtype)
{
    if (!t->n)
        return NULL;
    return dtype == PLSTM_F32 ? (void *)t->f32 : (void *)t->f64;
}

void vt_free(vtensor *t)
{
    free(t->f64);
    free(t->f32);
    memset(t, 0, sizeof *t);
}

plstm_status verify_compare(const plstm_safetensors *st, const char *ref_name, vtensor *got,
                            plstm_dtype dtype, const verify_opts *o, verify_report *r)
{
    const plstm_safetensors_tensor *ref;
    PLSTM_TRY(plstm_safetensors_get(st, ref_name, &ref));
    if ((size_t)ref->numel != got->n)
        return plstm_fail(PLSTM_ERR_FORMAT, "%s has %lld elements, computed %zu", ref_name,
                          (long long)ref->numel, got->n);
    double *want = malloc((got->n ? got->n : 1) * sizeof *want);
    if (!want)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "cannot allocate %zu doubles", got->n);
    plstm_status s = plstm_safetensors_read_f64(st, ref_name, want, got->n);
    if (s != PLSTM_OK) {
        free(want);
        return s;
    }
    double diff = 0, scale = 0;
    for (size_t i = 0; i < got->n; i++) {
        double g = dtype == PLSTM_F32 ? (double)got->f32[i] : got->f64[i];
        double d = fabs(g - want[i]);
        if (!(d <= diff))
            diff = d; /* NaN sticks */
        if (fabs(want[i]) > scale)
            scale = fabs(want[i]);
    }
    free(want);
    double rel = scale > 0 ? diff / scale : diff;
    int ok = rel <= o->tol;
    printf("  %-28s rel err %.3e  (max abs diff %.3e, max |ref| %.3e)  %s\n", ref_name, rel, diff,
           scale, ok ? "ok" : "FAIL");
    r->checked++;
    r->failed += !ok;
    if (!(rel <= r->worst))
        r->worst = rel;
    return PLSTM_OK;
}

plstm_status verify_compare_param_grads(const plstm_safetensors *st, const plstm_params *params,
                                        const void *grads, const verify_opts *o,
                                        verify_report *r)
{
    const plstm_dtype dt = o->dtype;
    char key[PLSTM_PARAM_NAME_MAX + 16];
    for (size_t i = 0; i < plstm_params_count(params); i++) {
        const plstm_param_info *pi = plstm_params_at(params, i);
        snprintf(key, sizeof key, "grad.param.%s", pi->name);
        vtensor g;
        PLSTM_TRY(vt_zeros(pi->numel, dt, &g));
        for (size_t j = 0; j < pi->numel; j++) {
            if (dt == PLSTM_F32)
                g.f32[j] = ((const float *)grads)[pi->offset + j];
            else
                g.f64[j] = ((const double *)grads)[pi->offset + j];
        }
        plstm_status s = verify_compare(st, key, &g, dt, o, r);
        vt_free(&g);
        PLSTM_TRY(s);
    }
    return PLSTM_OK;
}

plstm_status meta_int(const plstm_safetensors *st, const char *key, int *out)
{
    const char *v = plstm_safetensors_metadata(st, key);
    if (!v)
        return plstm_fail(PLSTM_ERR_FORMAT, "metadata key '%s' is missing", key);
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < 0 || x > 1 << 30)
        return plstm_fail(PLSTM_ERR_FORMAT, "metadata '%s' = '%s' is not a valid size", key, v);
    *out = (int)x;
    return PLSTM_OK;
}

double meta_double(const plstm_safetensors *st, const char *key, double fallback)
{
    const char *v = plstm_safetensors_metadata(st, key);
    if (!v)
        return fallback;
    char *end;
    double x = strtod(v, &end);
    return (end != v && !*end && isfinite(x)) ? x : fallback;
}
