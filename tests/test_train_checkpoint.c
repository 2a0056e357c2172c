/* Checkpoints: bit-exact round trip, and every kind of bad file gives a
 * clear error while the caller's buffers and existing files stay untouched. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG "{\"dim\": 192, \"heads\": 6, \"mode\": \"PD\"}"

typedef struct fixture {
    char dir[64];
    plstm_params *L;
    size_t n;
    float *p, *m, *v;
    plstm_rng rng[3];
} fixture;

static plstm_params *layout(int variant)
{
    plstm_params *L = NULL;
    TU_OK(plstm_params_create(&L));
    const int64_t a[2] = {4, variant == 1 ? 7 : 6}, b[1] = {6}, c[3] = {2, 3, 5};
    TU_OK(plstm_params_declare(L, "blocks.0.weight", 2, a, 0, NULL));
    TU_OK(plstm_params_declare(L, "blocks.0.bias", 1, b, PLSTM_PARAM_NO_DECAY, NULL));
    if (variant != 2)
        TU_OK(plstm_params_declare(L, "pos_emb", 3, c, PLSTM_PARAM_NO_DECAY, NULL));
    if (variant == 3)
        TU_OK(plstm_params_declare(L, "head.weight", 1, b, 0, NULL));
    return L;
}

static float *random_buffer(const plstm_params *L, tu_rng *r)
{
    float *x = tu_calloc(plstm_params_size(L), sizeof *x);
    for (size_t i = 0; i < plstm_params_count(L); i++) {
        const plstm_param_info *it = plstm_params_at(L, i);
        tu_fill_f32(r, x + it->offset, it->numel, -3, 3);
    }
    return x;
}

static int setup(void **state)
{
    fixture *f = tu_calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/plstm_ckpt_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->L = layout(0);
    f->n = plstm_params_size(f->L);
    tu_rng r;
    tu_rng_seed(&r, 11);
    f->p = random_buffer(f->L, &r);
    f->m = random_buffer(f->L, &r);
    f->v = random_buffer(f->L, &r);
    for (int i = 0; i < 3; i++) {
        plstm_rng_seed(&f->rng[i], 43, (uint64_t)i);
        for (int k = 0; k < 5 + i; k++)
            (void)plstm_rng_u64(&f->rng[i]);
    }
    f->rng[2].counter = 0xFFFFFFFFFFFFFFF0ull; /* the full 64 bits survive */
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f->p), free(f->m), free(f->v);
    plstm_params_destroy(f->L);
    free(f);
    return 0;
}

static plstm_checkpoint full(fixture *f)
{
    return (plstm_checkpoint){.model_name = "plstm_vision", .config_json = CONFIG,
                              .params = f->p, .adam_m = f->m, .adam_v = f->v, .step = 12345,
                              .data_position = 1580160, .rngs = f->rng, .num_rngs = 3,
                              .extra_json = "{\"best_val_acc\": 0.75}"};
}

static const char *path_in(const fixture *f, const char *name)
{
    static char buf[4][128];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", f->dir, name);
    return buf[k];
}

static void *read_all(const char *path, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    *size = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    void *buf = tu_calloc(*size + 1, 1);
    assert_int_equal(fread(buf, 1, *size, fp), *size);
    fclose(fp);
    return buf;
}

static void write_all(const char *path, const void *buf, size_t size)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, size, fp), size);
    fclose(fp);
}

/* Destination buffers pre-filled with a sentinel, to check they stay untouched. */
typedef struct dest {
    float *p, *m, *v;
    plstm_rng rng[3];
    plstm_checkpoint ck;
} dest;

static void dest_init(dest *d, size_t n, const char *model, const char *config, int num_rngs)
{
    d->p = tu_calloc(n, 4), d->m = tu_calloc(n, 4), d->v = tu_calloc(n, 4);
    for (size_t i = 0; i < n; i++)
        d->p[i] = d->m[i] = d->v[i] = 42.0f;
    for (int i = 0; i < 3; i++)
        d->rng[i] = (plstm_rng){7, 7};
    d->ck = (plstm_checkpoint){.model_name = model, .config_json = config, .params = d->p,
                               .adam_m = d->m, .adam_v = d->v, .step = -7,
                               .data_position = -7, .rngs = d->rng, .num_rngs = num_rngs};
}

static void dest_assert_untouched(const dest *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_true(d->p[i] == 42.0f && d->m[i] == 42.0f && d->v[i] == 42.0f);
    assert_true(d->ck.step == -7 && d->ck.data_position == -7);
    for (int i = 0; i < 3; i++)
        assert_true(d->rng[i].key == 7 && d->rng[i].counter == 7);
}

static void dest_free(dest *d) { free(d->p), free(d->m), free(d->v); }

static void test_round_trip(void **state)
{
    fixture *f = *state;
    const plstm_checkpoint ck = full(f);
    const char *path = path_in(f, "a.safetensors");
    TU_OK(plstm_checkpoint_save(path, f->L, &ck));
    dest d;
    dest_init(&d, f->n, "plstm_vision", "{\"mode\":\"PD\",\"heads\":6,\"dim\":192}", 3);
    char *extra = NULL;
    TU_OK(plstm_checkpoint_load(path, f->L, &d.ck, &extra));
    /* bit-exact, padding included (zero in the source, zero after loading) */
    assert_memory_equal(d.p, f->p, f->n * 4);
    assert_memory_equal(d.m, f->m, f->n * 4);
    assert_memory_equal(d.v, f->v, f->n * 4);
    assert_true(d.ck.step == 12345 && d.ck.data_position == 1580160);
    assert_memory_equal(d.rng, f->rng, sizeof f->rng);
    assert_string_equal(extra, "{\"best_val_acc\": 0.75}");
    free(extra);
    /* the restored generator continues the same stream */
    plstm_rng a = f->rng[0], b = d.rng[0];
    assert_true(plstm_rng_u64(&a) == plstm_rng_u64(&b));
    /* weights only, no config check */
    dest w;
    dest_init(&w, f->n, NULL, NULL, 3);
    w.ck.adam_m = w.ck.adam_v = NULL;
    TU_OK(plstm_checkpoint_load(path, f->L, &w.ck, NULL));
    assert_memory_equal(w.p, f->p, f->n * 4);
    assert_true(w.m[0] == 42.0f);
    char *model = NULL, *config = NULL;
    int64_t step = 0;
    TU_OK(plstm_checkpoint_info(path, &model, &config, &step));
    assert_string_equal(model, "plstm_vision");
    assert_string_equal(config, CONFIG);
    assert_true(step == 12345);
    free(model), free(config);
    /* the weights load with plstm_params_load under the "params/" prefix */
    plstm_safetensors *st = NULL;
    TU_OK(plstm_safetensors_open(&st, path));
    float *q = tu_calloc(f->n, 4);
    TU_OK(plstm_params_load(f->L, q, PLSTM_F32, st, "params/", 1));
    assert_memory_equal(q, f->p, f->n * 4);
    plstm_safetensors_close(st);
    free(q);
    /* no random streams at all */
    plstm_checkpoint none = ck;
    none.num_rngs = 0;
    none.rngs = NULL;
    TU_OK(plstm_checkpoint_save(path, f->L, &none));
    dest z;
    dest_init(&z, f->n, NULL, NULL, 0);
    TU_OK(plstm_checkpoint_load(path, f->L, &z.ck, NULL));
    assert_memory_equal(z.v, f->v, f->n * 4);
    assert_true(z.rng[0].key == 7);
    dest_free(&z);
    dest_free(&d);
    dest_free(&w);
}

/* Loads `path` and expects `status` with `needle` in the message, buffers untouched. */
static void expect_fail(fixture *f, const plstm_params *L, const char *path, const char *model,
                        const char *config, int num_rngs, int adam, plstm_status status,
                        const char *needle)
{
    dest d;
    const size_t n = plstm_params_size(L) > f->n ? plstm_params_size(L) : f->n;
    dest_init(&d, n, model, config, num_rngs);
    if (!adam)
        d.ck.adam_m = d.ck.adam_v = NULL;
    char *extra = (char *)"unchanged";
    const plstm_status s = plstm_checkpoint_load(path, L, &d.ck, &extra);
    if (s != status || !strstr(plstm_last_error(), needle))
        fail_msg("expected %s with '%s', got %s: %s", plstm_status_name(status), needle,
                 plstm_status_name(s), plstm_last_error());
    assert_string_equal(extra, "unchanged");
    dest_assert_untouched(&d, n);
    dest_free(&d);
}

static void test_mismatches(void **state)
{
    fixture *f = *state;
    const plstm_checkpoint ck = full(f);
    const char *path = path_in(f, "b.safetensors");
    TU_OK(plstm_checkpoint_save(path, f->L, &ck));
    expect_fail(f, f->L, path, "vit", CONFIG, 3, 1, PLSTM_ERR_FORMAT,
                "holds model 'plstm_vision', not 'vit'");
    expect_fail(f, f->L, path, "plstm_vision", "{\"dim\": 128, \"heads\": 6, \"mode\": \"PD\"}",
                3, 1, PLSTM_ERR_FORMAT, "dim is 192 in the file and 128 in this run");
    expect_fail(f, f->L, path, NULL, "{\"dim\": 192, \"heads\": 6}", 3, 1, PLSTM_ERR_FORMAT,
                "mode is \"PD\" in the file and absent in this run");
    expect_fail(f, f->L, path, NULL, NULL, 2, 1, PLSTM_ERR_FORMAT,
                "holds 3 random generator states, this run has 2");
    plstm_params *wrong_shape = layout(1), *fewer = layout(2), *more = layout(3);
    expect_fail(f, wrong_shape, path, NULL, NULL, 3, 1, PLSTM_ERR_FORMAT,
                "blocks.0.weight: file has shape [4,6], model expects [4,7]");
    expect_fail(f, fewer, path, NULL, NULL, 3, 1, PLSTM_ERR_FORMAT,
                "params/pos_emb, which is not a parameter");
    expect_fail(f, more, path, NULL, NULL, 3, 1, PLSTM_ERR_FORMAT,
                "params/head.weight is missing");
    plstm_params_destroy(wrong_shape), plstm_params_destroy(fewer), plstm_params_destroy(more);
    /* a checkpoint without optimizer state cannot resume */
    plstm_checkpoint weights_only = ck;
    weights_only.adam_m = weights_only.adam_v = NULL;
    const char *wpath = path_in(f, "w.safetensors");
    TU_OK(plstm_checkpoint_save(wpath, f->L, &weights_only));
    expect_fail(f, f->L, wpath, NULL, NULL, 3, 1, PLSTM_ERR_FORMAT,
                "holds no optimizer state (no adam_m/ tensors)");
    /* a plain safetensors file is not a checkpoint */
    plstm_safetensors_writer *w = NULL;
    TU_OK(plstm_safetensors_writer_create(&w));
    TU_OK(plstm_params_save(f->L, f->p, PLSTM_F32, w, "params/"));
    const char *plain = path_in(f, "plain.safetensors");
    TU_OK(plstm_safetensors_writer_write(w, plain));
    plstm_safetensors_writer_destroy(w);
    expect_fail(f, f->L, plain, NULL, NULL, 3, 1, PLSTM_ERR_FORMAT, "is not a plstm checkpoint");
    expect_fail(f, f->L, path_in(f, "missing.safetensors"), NULL, NULL, 3, 1, PLSTM_ERR_IO,
                "missing.safetensors");
}

static void test_corrupt_files(void **state)
{
    fixture *f = *state;
    const plstm_checkpoint ck = full(f);
    const char *path = path_in(f, "c.safetensors");
    TU_OK(plstm_checkpoint_save(path, f->L, &ck));
    size_t size;
    unsigned char *bytes = read_all(path, &size);
    const char *bad = path_in(f, "bad.safetensors");
    write_all(bad, bytes, size / 2); /* truncated */
    expect_fail(f, f->L, bad, NULL, NULL, 3, 1, PLSTM_ERR_FORMAT, "");
    write_all(bad, bytes, size - 1);
    expect_fail(f, f->L, bad, NULL, NULL, 3, 1, PLSTM_ERR_FORMAT, "");
    write_all(bad, bytes, 5);
    expect_fail(f, f->L, bad, NULL, NULL, 3, 1, PLSTM_ERR_FORMAT, "");
    unsigned char *copy = tu_calloc(size, 1);
    memcpy(copy, bytes, size);
    copy[8] = '['; /* header is no longer a JSON object */
    write_all(bad, copy, size);
    expect_fail(f, f->L, bad, NULL, NULL, 3, 1, PLSTM_ERR_FORMAT, "");
    memcpy(copy, bytes, size);
    copy[0] ^= 0x40; /* header length */
    write_all(bad, copy, size);
    expect_fail(f, f->L, bad, NULL, NULL, 3, 1, PLSTM_ERR_FORMAT, "");
    free(copy);
    free(bytes);
}

static void test_failed_save_keeps_existing_file(void **state)
{
    fixture *f = *state;
    const plstm_checkpoint ck = full(f);
    const char *path = path_in(f, "d.safetensors");
    TU_OK(plstm_checkpoint_save(path, f->L, &ck));
    size_t size0, size1;
    void *before = read_all(path, &size0);
    plstm_checkpoint broken = ck;
    broken.config_json = "{\"dim\": 192,"; /* not JSON */
    assert_int_equal(plstm_checkpoint_save(path, f->L, &broken), PLSTM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(plstm_last_error(), "config is not valid JSON"));
    broken = ck;
    broken.model_name = "";
    assert_int_equal(plstm_checkpoint_save(path, f->L, &broken), PLSTM_ERR_INVALID_ARGUMENT);
    broken = ck;
    broken.step = -1;
    assert_int_equal(plstm_checkpoint_save(path, f->L, &broken), PLSTM_ERR_INVALID_ARGUMENT);
    /* a folder that does not exist: the write itself fails */
    assert_int_not_equal(plstm_checkpoint_save(path_in(f, "no/such/x"), f->L, &ck), PLSTM_OK);
    void *after = read_all(path, &size1);
    assert_int_equal(size0, size1);
    assert_memory_equal(before, after, size0);
    free(before), free(after);
    /* no temporary files left behind */
    char cmd[160];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s' | grep -v '^d.safetensors$')\"", f->dir);
    assert_int_equal(system(cmd), 0);
}

static void test_rotation(void **state)
{
    fixture *f = *state;
    plstm_checkpoint ck = full(f);
    for (int64_t step = 100; step <= 400; step += 100) {
        ck.step = step;
        TU_OK(plstm_checkpoint_save_rotating(f->dir, f->L, &ck, 2));
    }
    struct stat sb;
    assert_int_not_equal(stat(path_in(f, "ckpt_00000100.safetensors"), &sb), 0);
    assert_int_not_equal(stat(path_in(f, "ckpt_00000200.safetensors"), &sb), 0);
    assert_int_equal(stat(path_in(f, "ckpt_00000300.safetensors"), &sb), 0);
    assert_int_equal(stat(path_in(f, "ckpt_00000400.safetensors"), &sb), 0);
    int64_t step = 0;
    TU_OK(plstm_checkpoint_info(path_in(f, "latest.safetensors"), NULL, NULL, &step));
    assert_true(step == 400);
    dest d;
    dest_init(&d, f->n, "plstm_vision", CONFIG, 3);
    TU_OK(plstm_checkpoint_load(path_in(f, "latest.safetensors"), f->L, &d.ck, NULL));
    assert_true(d.ck.step == 400);
    assert_memory_equal(d.m, f->m, f->n * 4);
    dest_free(&d);
    /* keep <= 0 keeps everything */
    ck.step = 500;
    TU_OK(plstm_checkpoint_save_rotating(f->dir, f->L, &ck, 0));
    assert_int_equal(stat(path_in(f, "ckpt_00000300.safetensors"), &sb), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mismatches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_save_keeps_existing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
