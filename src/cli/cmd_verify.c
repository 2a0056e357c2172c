/* plstm verify FILE.safetensors: recompute a reference test vector's outputs
 * and gradients from its inputs (by its metadata `kind`) and compare. */
#include "cli/commands.h"
#include "cli/verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef plstm_status (*verifier)(const plstm_safetensors *, const verify_opts *, verify_report *);

static const struct {
    const char *kind;
    verifier run;
} verifiers[] = {
    {"core1d", verify_core1d},
    {"core2d", verify_core2d},
    {"layer2d_fused", verify_layer2d_fused},
    {"vision_model", verify_vision_model},
    {"graph_layer", verify_graph_layer},
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: plstm verify [options] FILE.safetensors...\n\n"
            "Recomputes each test-vector file's outputs and gradients from its inputs, according\n"
            "to its metadata 'kind', and prints the relative error of every output and gradient\n"
            "(max abs difference / max abs reference value). Exits 0 only if all are within the\n"
            "tolerance.\n\n"
            "options:\n"
            "  --tol X          tolerance on the relative error (default 1e-4)\n"
            "  --algo A         auto | sequential | parallel: which form of the core (default auto)\n"
            "  --dtype D        f64 | f32: compute precision (default f64)\n"
            "  --backend B      cpu | cuda (default cpu)\n"
            "kinds: ");
    for (size_t i = 0; i < sizeof verifiers / sizeof *verifiers; i++)
        fprintf(f, "%s%s", i ? ", " : "", verifiers[i].kind);
    fprintf(f, "\n");
}

static int verify_file(const char *path, const verify_opts *o)
{
    plstm_safetensors *st = NULL;
    plstm_status s = plstm_safetensors_open(&st, path);
    if (s != PLSTM_OK)
        return cli_report_error(path, s);
    const char *kind = plstm_safetensors_metadata(st, "kind");
    verifier run = NULL;
    for (size_t i = 0; kind && i < sizeof verifiers / sizeof *verifiers; i++)
        if (!strcmp(kind, verifiers[i].kind))
            run = verifiers[i].run;
    if (!run) {
        fprintf(stderr, "plstm verify: %s: unsupported kind '%s'\n", path, kind ? kind : "(none)");
        plstm_safetensors_close(st);
        return 1;
    }
    printf("%s (kind %s, %s, %s)\n", path, kind, o->dtype == PLSTM_F32 ? "f32" : "f64",
           o->algo == PLSTM_ALGO_SEQUENTIAL ? "sequential"
           : o->algo == PLSTM_ALGO_PARALLEL ? "parallel" : "auto");
    verify_report r = {0};
    s = run(st, o, &r);
    plstm_safetensors_close(st);
    if (s != PLSTM_OK)
        return cli_report_error(path, s);
    printf("  %d tensors checked, %d above tolerance %.1e, worst %.3e: %s\n", r.checked,
           r.failed, o->tol, r.worst, r.failed ? "FAIL" : "PASS");
    return r.failed ? 1 : 0;
}

int cmd_verify(int argc, char **argv)
{
    verify_opts o = {.tol = 1e-4, .algo = PLSTM_ALGO_AUTO, .dtype = PLSTM_F64};
    plstm_backend_kind backend = PLSTM_BACKEND_CPU;
    int first_file = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--tol") && val) {
            char *end;
            o.tol = strtod(val, &end);
            if (*end || !(o.tol >= 0)) {
                fprintf(stderr, "plstm verify: bad --tol '%s'\n", val);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--algo") && val) {
            if (!strcmp(val, "auto")) o.algo = PLSTM_ALGO_AUTO;
            else if (!strcmp(val, "sequential")) o.algo = PLSTM_ALGO_SEQUENTIAL;
            else if (!strcmp(val, "parallel")) o.algo = PLSTM_ALGO_PARALLEL;
            else {
                fprintf(stderr, "plstm verify: bad --algo '%s'\n", val);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--dtype") && val) {
            if (!strcmp(val, "f64")) o.dtype = PLSTM_F64;
            else if (!strcmp(val, "f32")) o.dtype = PLSTM_F32;
            else {
                fprintf(stderr, "plstm verify: bad --dtype '%s'\n", val);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--backend") && val) {
            if (!strcmp(val, "cpu")) backend = PLSTM_BACKEND_CPU;
            else if (!strcmp(val, "cuda")) backend = PLSTM_BACKEND_CUDA;
            else {
                fprintf(stderr, "plstm verify: bad --backend '%s'\n", val);
                return 2;
            }
            i++;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "plstm verify: unknown or incomplete option '%s'\n\n", a);
            usage(stderr);
            return 2;
        } else {
            if (!first_file)
                first_file = i;
            continue;
        }
        if (first_file) {
            fprintf(stderr, "plstm verify: options must come before the files\n");
            return 2;
        }
    }
    if (!first_file) {
        usage(stderr);
        return 2;
    }
    plstm_status s = plstm_context_create(&o.ctx, backend, 0);
    if (s != PLSTM_OK)
        return cli_report_error("cannot create context", s);
    int failed = 0;
    for (int i = first_file; i < argc; i++)
        failed |= verify_file(argv[i], &o);
    plstm_context_destroy(o.ctx);
    return failed;
}
