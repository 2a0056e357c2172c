/* safetensors reader/writer: round trips, the reference files, hostile
 * variants, a byte-flip fuzz loop, float16/bfloat16 conversion, atomic writes. */
#include "testutil.h"
#include "io/atomic_file.h"

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers -------------------------------------------------------------- */

static char tmpdir[256];

static int setup_tmpdir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/plstm_st_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

/* Removes what the tests put in tmpdir (plain files and empty folders, one level). */
static int teardown_tmpdir(void **state)
{
    (void)state;
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
            if (unlink(p) != 0)
                rmdir(p);
        }
        closedir(d);
    }
    rmdir(tmpdir);
    return 0;
}

static const char *tmp_path(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

/* Names of the entries of folder `dir` (excluding . and ..), joined with '|'. */
static int dir_entries(const char *dir, char *out, size_t cap)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    out[0] = '\0';
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        n++;
        strncat(out, e->d_name, cap - strlen(out) - 2);
        strcat(out, "|");
    }
    closedir(d);
    return n;
}

static unsigned char *read_whole(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = tu_calloc((size_t)n + 1, 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return buf;
}

/* A file from a header text (padded with spaces to a multiple of 8) and
 * `data_len` bytes of data. */
static unsigned char *make_file(const char *header, size_t data_len, size_t *size)
{
    size_t h = strlen(header), n = (h + 7) / 8 * 8;
    *size = 8 + n + data_len;
    unsigned char *buf = tu_calloc(*size, 1);
    for (int i = 0; i < 8; ++i)
        buf[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(buf + 8, header, h);
    memset(buf + 8 + h, ' ', n - h);
    for (size_t i = 0; i < data_len; ++i)
        buf[8 + n + i] = (unsigned char)(i * 37 + 1);
    return buf;
}

static void set_header_len(unsigned char *buf, uint64_t n)
{
    for (int i = 0; i < 8; ++i)
        buf[i] = (unsigned char)(n >> (8 * i));
}

/* Opening must fail with PLSTM_ERR_FORMAT and a message. */
static void expect_format_error(const void *buf, size_t size, const char *what, const char *needle)
{
    plstm_safetensors *st = (plstm_safetensors *)0x1;
    plstm_clear_error();
    plstm_status s = plstm_safetensors_open_memory(&st, buf, size);
    if (s != PLSTM_ERR_FORMAT)
        fail_msg("%s: expected a format error, got '%s' (%s)", what, plstm_status_name(s),
                 plstm_last_error());
    assert_null(st);
    if (strlen(plstm_last_error()) == 0)
        fail_msg("%s: empty error message", what);
    if (needle && !strstr(plstm_last_error(), needle))
        fail_msg("%s: message '%s' does not mention '%s'", what, plstm_last_error(), needle);
}

/* ---- round trip ------------------------------------------------------------ */

typedef struct {
    const char *name;
    plstm_dtype dtype;
    int rank;
    int64_t shape[4];
} spec;

/* Mixed element sizes in an order that would misalign if packed as added. */
static const spec round_specs[] = {
    {"u8.odd", PLSTM_U8, 1, {5}},
    {"f16.x", PLSTM_F16, 2, {3, 3}},
    {"f32.w", PLSTM_F32, 3, {2, 3, 4}},
    {"bf16.y", PLSTM_BF16, 1, {7}},
    {"f64.scalar", PLSTM_F64, 0, {0}},
    {"i32.v", PLSTM_I32, 2, {1, 3}},
    {"i64.edges", PLSTM_I64, 2, {4, 2}},
    {"f32.empty", PLSTM_F32, 2, {0, 3}},
    {"f64.m", PLSTM_F64, 2, {2, 2}},
    {"名前/ünï", PLSTM_U8, 1, {3}},
};
#define NSPEC (sizeof round_specs / sizeof round_specs[0])

static const char *meta_pairs[][2] = {
    {"kind", "test"},
    {"quote\"back\\slash", "line\nbreak\ttab"},
    {"empty", ""},
    {"utf8", "Größe λ 🙂"},
};
#define NMETA (sizeof meta_pairs / sizeof meta_pairs[0])

static size_t spec_bytes(const spec *s)
{
    size_t n = 1;
    for (int d = 0; d < s->rank; ++d)
        n *= (size_t)s->shape[d];
    return n * plstm_dtype_size(s->dtype);
}

static void check_roundtrip(const plstm_safetensors *st, unsigned char **data)
{
    assert_int_equal(plstm_safetensors_count(st), NSPEC);
    for (size_t i = 0; i < NSPEC; ++i) {
        const spec *s = &round_specs[i];
        const plstm_safetensors_tensor *t = plstm_safetensors_at(st, i);
        assert_non_null(t);
        assert_string_equal(t->name, s->name); /* header order = order added */
        assert_ptr_equal(plstm_safetensors_find(st, s->name), t);
        assert_int_equal(t->dtype, s->dtype);
        assert_int_equal(t->rank, s->rank);
        for (int d = 0; d < s->rank; ++d)
            assert_int_equal(t->shape[d], s->shape[d]);
        assert_int_equal(t->nbytes, spec_bytes(s));
        assert_true(t->aligned);
        assert_int_equal((uintptr_t)t->data % plstm_dtype_size(t->dtype), 0);
        if (t->nbytes)
            assert_memory_equal(t->data, data[i], t->nbytes);
        TU_OK(plstm_safetensors_expect_shape(st, s->name, s->rank, s->shape));
    }
    assert_null(plstm_safetensors_at(st, NSPEC));
    assert_null(plstm_safetensors_find(st, "missing"));
    assert_int_equal(plstm_safetensors_metadata_count(st), NMETA);
    for (size_t i = 0; i < NMETA; ++i) {
        const char *k, *v;
        plstm_safetensors_metadata_at(st, i, &k, &v);
        assert_string_equal(k, meta_pairs[i][0]);
        assert_string_equal(v, meta_pairs[i][1]);
        assert_string_equal(plstm_safetensors_metadata(st, meta_pairs[i][0]), meta_pairs[i][1]);
    }
    assert_null(plstm_safetensors_metadata(st, "absent"));
    const char *k = "x", *v = "y";
    plstm_safetensors_metadata_at(st, NMETA, &k, &v);
    assert_null(k);
    assert_null(v);
}

static void test_roundtrip_all_dtypes(void **state)
{
    (void)state;
    tu_rng rng;
    tu_rng_seed(&rng, 11);
    unsigned char *data[NSPEC];
    plstm_safetensors_writer *w = NULL;
    TU_OK(plstm_safetensors_writer_create(&w));
    for (size_t i = 0; i < NSPEC; ++i) {
        size_t nb = spec_bytes(&round_specs[i]);
        data[i] = tu_calloc(nb + 1, 1);
        for (size_t b = 0; b < nb; ++b)
            data[i][b] = (unsigned char)tu_rng_u64(&rng);
        TU_OK(plstm_safetensors_writer_add_tensor(w, round_specs[i].name, round_specs[i].dtype,
                                                  round_specs[i].rank, round_specs[i].shape,
                                                  nb ? data[i] : NULL));
    }
    for (size_t i = 0; i < NMETA; ++i)
        TU_OK(plstm_safetensors_writer_add_metadata(w, meta_pairs[i][0], meta_pairs[i][1]));

    const char *path = tmp_path("round.safetensors");
    TU_OK(plstm_safetensors_writer_write(w, path));
    void *mem = NULL;
    size_t memsize = 0;
    TU_OK(plstm_safetensors_writer_serialize(w, &mem, &memsize));
    plstm_safetensors_writer_destroy(w);

    /* File and buffer are the same bytes; header length a multiple of 8,
     * JSON first, then space padding. */
    size_t fsize;
    unsigned char *file = read_whole(path, &fsize);
    assert_int_equal(fsize, memsize);
    assert_memory_equal(file, mem, fsize);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i)
        n = (n << 8) | file[i];
    assert_int_equal(n % 8, 0);
    assert_int_equal(file[8], '{');
    size_t last = 8 + (size_t)n - 1;
    while (file[last] == ' ')
        last--;
    assert_int_equal(file[last], '}');
    assert_non_null(strstr((const char *)file + 8, "\"__metadata__\""));

    plstm_safetensors *st = NULL;
    TU_OK(plstm_safetensors_open(&st, path));
    check_roundtrip(st, data);
    plstm_safetensors_close(st);
    TU_OK(plstm_safetensors_open_memory(&st, mem, memsize));
    free(mem);
    check_roundtrip(st, data); /* the copy outlives the caller's buffer */
    plstm_safetensors_close(st);

    /* Byte-wise truncation of this valid mixed file must always be rejected. */
    for (size_t len = 0; len < fsize; ++len)
        expect_format_error(file, len, "truncated round-trip file", NULL);
    free(file);
    for (size_t i = 0; i < NSPEC; ++i)
        free(data[i]);
}

static void test_empty_file_and_writer_errors(void **state)
{
    (void)state;
    plstm_safetensors_writer *w = NULL;
    TU_OK(plstm_safetensors_writer_create(&w));
    void *mem = NULL;
    size_t size = 0;
    TU_OK(plstm_safetensors_writer_serialize(w, &mem, &size));
    assert_int_equal(size, 16); /* "{}" padded to 8 */
    plstm_safetensors *st = NULL;
    TU_OK(plstm_safetensors_open_memory(&st, mem, size));
    assert_int_equal(plstm_safetensors_count(st), 0);
    assert_int_equal(plstm_safetensors_metadata_count(st), 0);
    plstm_safetensors_close(st);
    free(mem);

    float x[2] = {1, 2};
    int64_t shp[1] = {2}, neg[1] = {-1}, big[3] = {INT64_MAX, 2, 0};
    TU_OK(plstm_safetensors_writer_add_tensor(w, "a", PLSTM_F32, 1, shp, x));
    struct { const char *name; plstm_dtype dt; int rank; const int64_t *shape; const void *d; } bad[] = {
        {"a", PLSTM_F32, 1, shp, x},              /* duplicate */
        {"", PLSTM_F32, 1, shp, x},               /* empty name */
        {"__metadata__", PLSTM_F32, 1, shp, x},   /* reserved */
        {"bad\xff", PLSTM_F32, 1, shp, x},        /* not UTF-8 */
        {"b", (plstm_dtype)99, 1, shp, x},        /* dtype */
        {"b", PLSTM_F32, -1, shp, x},             /* rank */
        {"b", PLSTM_F32, 1, neg, x},              /* negative dim */
        {"b", PLSTM_F32, 3, big, x},              /* overflow */
        {"b", PLSTM_F32, 1, shp, NULL},           /* no data */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        plstm_clear_error();
        assert_int_equal(plstm_safetensors_writer_add_tensor(w, bad[i].name, bad[i].dt, bad[i].rank,
                                                             bad[i].shape, bad[i].d),
                         PLSTM_ERR_INVALID_ARGUMENT);
        assert_true(strlen(plstm_last_error()) > 0);
    }
    TU_OK(plstm_safetensors_writer_add_metadata(w, "k", "v"));
    assert_int_equal(plstm_safetensors_writer_add_metadata(w, "k", "w"), PLSTM_ERR_INVALID_ARGUMENT);
    assert_int_equal(plstm_safetensors_writer_add_metadata(w, "k2", "\xc3"), PLSTM_ERR_INVALID_ARGUMENT);
    plstm_safetensors_writer_destroy(w);
}

/* ---- conversions ----------------------------------------------------------- */

static void test_half_conversions(void **state)
{
    (void)state;
    /* IEEE 754 binary16 / bfloat16 encodings of known values. */
    assert_true(plstm_f16_to_f32(0x3C00) == 1.0f);
    assert_true(plstm_f16_to_f32(0xC000) == -2.0f);
    assert_true(plstm_f16_to_f32(0x7BFF) == 65504.0f);
    assert_true(plstm_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
    assert_true(plstm_f16_to_f32(0x03FF) == ldexpf(1023.0f, -24));
    assert_true(plstm_f16_to_f32(0x0400) == ldexpf(1.0f, -14));
    assert_true(plstm_f16_to_f32(0x3555) == 0x1.554p-2f);
    assert_true(isinf(plstm_f16_to_f32(0x7C00)) && plstm_f16_to_f32(0x7C00) > 0);
    assert_true(isinf(plstm_f16_to_f32(0xFC00)) && plstm_f16_to_f32(0xFC00) < 0);
    assert_true(isnan(plstm_f16_to_f32(0x7E00)));
    assert_true(signbit(plstm_f16_to_f32(0x8000)) && plstm_f16_to_f32(0x8000) == 0.0f);
    assert_true(plstm_bf16_to_f32(0x3F80) == 1.0f);
    assert_true(plstm_bf16_to_f32(0xC000) == -2.0f);
    assert_true(plstm_bf16_to_f32(0x4049) == 3.140625f);

    /* Rounding to nearest even, overflow, underflow. */
    assert_int_equal(plstm_f32_to_f16(1.0f + ldexpf(1, -11)), 0x3C00);     /* tie -> even */
    assert_int_equal(plstm_f32_to_f16(1.0f + 3 * ldexpf(1, -11)), 0x3C02); /* tie -> even */
    assert_int_equal(plstm_f32_to_f16(1.0f + ldexpf(1, -11) + ldexpf(1, -20)), 0x3C01);
    assert_int_equal(plstm_f32_to_f16(65519.0f), 0x7BFF);
    assert_int_equal(plstm_f32_to_f16(65520.0f), 0x7C00);
    assert_int_equal(plstm_f32_to_f16(-1e10f), 0xFC00);
    assert_int_equal(plstm_f32_to_f16(ldexpf(1, -25)), 0x0000);            /* tie -> 0 */
    assert_int_equal(plstm_f32_to_f16(ldexpf(3, -26)), 0x0001);
    assert_int_equal(plstm_f32_to_f16(ldexpf(1, -14) - ldexpf(1, -26)), 0x0400);
    assert_true((plstm_f32_to_f16(NAN) & 0x7C00) == 0x7C00 && (plstm_f32_to_f16(NAN) & 0x3FF));
    assert_int_equal(plstm_f32_to_bf16(1.0f + ldexpf(1, -8)), 0x3F80);     /* tie -> even */
    assert_int_equal(plstm_f32_to_bf16(1.0f + 3 * ldexpf(1, -8)), 0x3F82);
    assert_true(isnan(plstm_bf16_to_f32(plstm_f32_to_bf16(NAN))));

    /* Every non-NaN half value survives half -> float -> half. */
    for (uint32_t h = 0; h < 65536; ++h) {
        if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF))
            continue;
        if (plstm_f32_to_f16(plstm_f16_to_f32((uint16_t)h)) != h)
            fail_msg("f16 0x%04x does not round-trip", h);
        if (plstm_f32_to_bf16(plstm_bf16_to_f32((uint16_t)h)) != h &&
            !((h & 0x7F80) == 0x7F80 && (h & 0x7F)))
            fail_msg("bf16 0x%04x does not round-trip", h);
    }
}

static void test_read_converting(void **state)
{
    (void)state;
    const float vals[5] = {1.0f, -2.0f, 0.5f, 384.0f, 0.0f}; /* exact in F16 and BF16 */
    uint16_t h[5], b[5];
    double d[5];
    for (int i = 0; i < 5; ++i) {
        h[i] = plstm_f32_to_f16(vals[i]);
        b[i] = plstm_f32_to_bf16(vals[i]);
        d[i] = vals[i];
    }
    int32_t i32[3] = {-5, 0, 7};
    unsigned char u8[3] = {0, 200, 255};
    int64_t i64[3] = {INT64_MIN, 0, INT64_MAX};
    int64_t five[1] = {5}, three[1] = {3};
    plstm_safetensors_writer *w = NULL;
    TU_OK(plstm_safetensors_writer_create(&w));
    TU_OK(plstm_safetensors_writer_add_tensor(w, "f32", PLSTM_F32, 1, five, vals));
    TU_OK(plstm_safetensors_writer_add_tensor(w, "f64", PLSTM_F64, 1, five, d));
    TU_OK(plstm_safetensors_writer_add_tensor(w, "f16", PLSTM_F16, 1, five, h));
    TU_OK(plstm_safetensors_writer_add_tensor(w, "bf16", PLSTM_BF16, 1, five, b));
    TU_OK(plstm_safetensors_writer_add_tensor(w, "i32", PLSTM_I32, 1, three, i32));
    TU_OK(plstm_safetensors_writer_add_tensor(w, "u8", PLSTM_U8, 1, three, u8));
    TU_OK(plstm_safetensors_writer_add_tensor(w, "i64", PLSTM_I64, 1, three, i64));
    void *mem;
    size_t size;
    TU_OK(plstm_safetensors_writer_serialize(w, &mem, &size));
    plstm_safetensors_writer_destroy(w);
    plstm_safetensors *st;
    TU_OK(plstm_safetensors_open_memory(&st, mem, size));
    free(mem);
    const char *fnames[] = {"f32", "f64", "f16", "bf16"};
    for (int k = 0; k < 4; ++k) {
        float of[5];
        double od[5];
        TU_OK(plstm_safetensors_read_f32(st, fnames[k], of, 5));
        TU_OK(plstm_safetensors_read_f64(st, fnames[k], od, 5));
        for (int i = 0; i < 5; ++i) {
            assert_true(of[i] == vals[i]); /* all values exact in every float dtype */
            assert_true(od[i] == (double)vals[i]);
        }
    }
    int64_t oi[3];
    TU_OK(plstm_safetensors_read_i64(st, "i32", oi, 3));
    assert_true(oi[0] == -5 && oi[1] == 0 && oi[2] == 7);
    TU_OK(plstm_safetensors_read_i64(st, "u8", oi, 3));
    assert_true(oi[0] == 0 && oi[1] == 200 && oi[2] == 255);
    TU_OK(plstm_safetensors_read_i64(st, "i64", oi, 3));
    assert_true(oi[0] == INT64_MIN && oi[2] == INT64_MAX);

    float buf[6];
    assert_int_equal(plstm_safetensors_read_f32(st, "f32", buf, 6), PLSTM_ERR_FORMAT);
    assert_non_null(strstr(plstm_last_error(), "'f32'"));
    assert_non_null(strstr(plstm_last_error(), "5 elements"));
    assert_int_equal(plstm_safetensors_read_f32(st, "f16", buf, 4), PLSTM_ERR_FORMAT);
    assert_int_equal(plstm_safetensors_read_f32(st, "i64", buf, 3), PLSTM_ERR_FORMAT);
    assert_non_null(strstr(plstm_last_error(), "I64"));
    assert_int_equal(plstm_safetensors_read_i64(st, "f32", oi, 5), PLSTM_ERR_FORMAT);
    assert_int_equal(plstm_safetensors_read_f64(st, "nope", (double *)buf, 1), PLSTM_ERR_FORMAT);
    assert_non_null(strstr(plstm_last_error(), "'nope'"));
    int64_t wrong[1] = {4};
    assert_int_equal(plstm_safetensors_expect_shape(st, "f32", 1, wrong), PLSTM_ERR_FORMAT);
    assert_non_null(strstr(plstm_last_error(), "[5], expected [4]"));
    assert_int_equal(plstm_safetensors_expect_shape(st, "f32", 0, NULL), PLSTM_ERR_FORMAT);
    plstm_safetensors_close(st);
}

/* Offsets that are not multiples of the element size: pointer flagged, copies still right. */
static void test_unaligned_offsets(void **state)
{
    (void)state;
    size_t size;
    unsigned char *f = make_file("{\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                                 "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]}}",
                                 9, &size);
    float v[2] = {1.5f, -3.25f};
    memcpy(f + size - 8, v, 8);
    plstm_safetensors *st;
    TU_OK(plstm_safetensors_open_memory(&st, f, size));
    free(f);
    assert_false(plstm_safetensors_find(st, "x")->aligned);
    assert_true(plstm_safetensors_find(st, "b")->aligned);
    float out[2];
    TU_OK(plstm_safetensors_read_f32(st, "x", out, 2));
    assert_true(out[0] == 1.5f && out[1] == -3.25f);
    plstm_safetensors_close(st);
}

/* ---- reference files -------------------------------------------------------- */

static int has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static void check_reference_file(const char *name)
{
    plstm_safetensors *st = NULL;
    TU_OK(plstm_safetensors_open(&st, tu_reference_path(name)));
    const char *kind = plstm_safetensors_metadata(st, "kind");
    if (!kind)
        fail_msg("%s: no 'kind' metadata", name);
    const char *kinds[] = {"core1d", "core2d", "layer2d_fused", "vision_model", "graph_layer"};
    int known = 0;
    for (size_t i = 0; i < 5; ++i)
        known |= strcmp(kind, kinds[i]) == 0;
    if (!known)
        fail_msg("%s: unknown kind '%s'", name, kind);
    assert_true(plstm_safetensors_count(st) > 0);
    for (size_t i = 0; i < plstm_safetensors_count(st); ++i) {
        const plstm_safetensors_tensor *t = plstm_safetensors_at(st, i);
        /* README: all float tensors F32, the only integer tensor the edge list. */
        if (t->dtype == PLSTM_I64)
            assert_string_equal(t->name, "input.edges");
        else if (t->dtype != PLSTM_F32)
            fail_msg("%s: tensor %s has dtype %s", name, t->name, plstm_dtype_name(t->dtype));
        /* grad.<x> has the shape of input.<x> (or param.<x>). */
        if (strncmp(t->name, "grad.", 5) == 0) {
            char src[512];
            const char *rest = t->name + 5;
            snprintf(src, sizeof src, "%s%s", strncmp(rest, "param.", 6) == 0 ? "" : "input.", rest);
            TU_OK(plstm_safetensors_expect_shape(st, src, t->rank, t->shape));
        }
        if (t->dtype == PLSTM_F32) {
            float *buf = tu_calloc((size_t)t->numel + 1, sizeof *buf);
            TU_OK(plstm_safetensors_read_f32(st, t->name, buf, (size_t)t->numel));
            for (int64_t k = 0; k < t->numel; ++k)
                if (!isfinite(buf[k]))
                    fail_msg("%s: %s[%lld] is not finite", name, t->name, (long long)k);
            free(buf);
        }
    }
    plstm_safetensors_close(st);
}

static void test_reference_files(void **state)
{
    (void)state;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tu_reference_path(""));
    DIR *d = opendir(dir);
    if (!d)
        skip();
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (has_suffix(e->d_name, ".safetensors")) {
            check_reference_file(e->d_name);
            n++;
        }
    closedir(d);
    assert_true(n >= 21);

    /* Shapes from the README table. */
    plstm_safetensors *st;
    TU_OK(plstm_safetensors_open(&st, tu_reference_path("core1d_b_J2_Cinit.safetensors")));
    assert_string_equal(plstm_safetensors_metadata(st, "kind"), "core1d");
    TU_OK(plstm_safetensors_expect_shape(st, "input.Q", 4, (int64_t[]){2, 16, 4, 1}));
    TU_OK(plstm_safetensors_expect_shape(st, "input.V", 4, (int64_t[]){2, 16, 3, 2}));
    TU_OK(plstm_safetensors_expect_shape(st, "output.Y", 4, (int64_t[]){2, 16, 3, 2}));
    TU_OK(plstm_safetensors_expect_shape(st, "output.C_last", 4, (int64_t[]){2, 4, 3, 2}));
    plstm_safetensors_close(st);

    TU_OK(plstm_safetensors_open(&st, tu_reference_path("graph_layer_P.safetensors")));
    TU_OK(plstm_safetensors_expect_shape(st, "input.x", 2, (int64_t[]){7, 16}));
    TU_OK(plstm_safetensors_expect_shape(st, "input.edges", 2, (int64_t[]){7, 2}));
    int64_t edges[14];
    TU_OK(plstm_safetensors_read_i64(st, "input.edges", edges, 14));
    for (int i = 0; i < 14; ++i)
        assert_true(edges[i] >= 0 && edges[i] < 7);
    int params = 0;
    for (size_t i = 0; i < plstm_safetensors_count(st); ++i)
        params += strncmp(plstm_safetensors_at(st, i)->name, "param.", 6) == 0;
    assert_int_equal(params, 13);
    plstm_safetensors_close(st);

    /* Re-writing a reference file with our writer gives identical tensors and metadata. */
    TU_OK(plstm_safetensors_open(&st, tu_reference_path("vision_model_small.safetensors")));
    plstm_safetensors_writer *w;
    TU_OK(plstm_safetensors_writer_create(&w));
    for (size_t i = 0; i < plstm_safetensors_metadata_count(st); ++i) {
        const char *k, *v;
        plstm_safetensors_metadata_at(st, i, &k, &v);
        TU_OK(plstm_safetensors_writer_add_metadata(w, k, v));
    }
    for (size_t i = 0; i < plstm_safetensors_count(st); ++i) {
        const plstm_safetensors_tensor *t = plstm_safetensors_at(st, i);
        TU_OK(plstm_safetensors_writer_add_tensor(w, t->name, t->dtype, t->rank, t->shape, t->data));
    }
    const char *copy = tmp_path("vision_copy.safetensors");
    TU_OK(plstm_safetensors_writer_write(w, copy));
    plstm_safetensors_writer_destroy(w);
    plstm_safetensors *st2;
    TU_OK(plstm_safetensors_open(&st2, copy));
    assert_int_equal(plstm_safetensors_count(st2), plstm_safetensors_count(st));
    assert_int_equal(plstm_safetensors_metadata_count(st2), plstm_safetensors_metadata_count(st));
    for (size_t i = 0; i < plstm_safetensors_count(st); ++i) {
        const plstm_safetensors_tensor *a = plstm_safetensors_at(st, i);
        const plstm_safetensors_tensor *b = plstm_safetensors_find(st2, a->name);
        assert_non_null(b);
        assert_int_equal(a->nbytes, b->nbytes);
        assert_memory_equal(a->data, b->data, a->nbytes);
    }
    const char *cfg = plstm_safetensors_metadata(st, "config_json");
    if (cfg)
        assert_string_equal(plstm_safetensors_metadata(st2, "config_json"), cfg);
    plstm_safetensors_close(st2);
    plstm_safetensors_close(st);
    unlink(copy);
}

static void test_open_errors(void **state)
{
    (void)state;
    plstm_safetensors *st = NULL;
    assert_int_equal(plstm_safetensors_open(&st, tmp_path("does-not-exist")), PLSTM_ERR_IO);
    assert_non_null(strstr(plstm_last_error(), "does-not-exist"));
    assert_int_equal(plstm_safetensors_open(&st, tmpdir), PLSTM_ERR_IO);
    assert_int_equal(plstm_safetensors_open(NULL, "x"), PLSTM_ERR_INVALID_ARGUMENT);
    /* A format error from a file names the file. */
    const char *p = tmp_path("short.safetensors");
    TU_OK(plstm_atomic_write(p, "abc", 3));
    assert_int_equal(plstm_safetensors_open(&st, p), PLSTM_ERR_FORMAT);
    assert_non_null(strstr(plstm_last_error(), "short.safetensors"));
    assert_non_null(strstr(plstm_last_error(), "shorter than"));
    unlink(p);
}

/* ---- hostile variants -------------------------------------------------------- */

#define T8(name, off0, off1) "\"" name "\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[" #off0 "," #off1 "]}"

typedef struct {
    const char *what;
    const char *header;
    size_t data_len;
    const char *needle; /* a word the message must contain, or NULL */
} hostile;

static const hostile hostile_headers[] = {
    {"truncated JSON", "{\"a\":", 0, "JSON"},
    {"missing brace", "{" T8("a", 0, 8), 8, "JSON"},
    {"trailing garbage", "{" T8("a", 0, 8) "} x", 8, "JSON"},
    {"not an object", "[1,2]", 0, NULL},
    {"a string", "\"abc\"", 0, NULL},
    {"leading garbage", "x{}", 0, NULL},
    {"invalid UTF-8", "{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, NULL},
    {"overlong UTF-8", "{\"a\xc0\xaf\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, NULL},
    {"NUL in key", "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, NULL},
    {"entry not object", "{\"a\":[1]}", 0, "'a'"},
    {"entry string", "{\"a\":\"F32\"}", 0, "'a'"},
    {"unknown dtype", "{\"a\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, "'a'"},
    {"lowercase dtype", "{\"a\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "dtype"},
    {"numeric dtype", "{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "dtype"},
    {"missing dtype", "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "dtype"},
    {"shape string", "{\"a\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", 8, "shape"},
    {"missing shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "shape"},
    {"negative dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "shape"},
    {"float dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, "shape"},
    {"string dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, "shape"},
    {"null dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[null],\"data_offsets\":[0,8]}}", 8, "shape"},
    {"nested dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[[2]],\"data_offsets\":[0,8]}}", 8, "shape"},
    {"huge dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[9223372036854775807],\"data_offsets\":[0,8]}}", 8, "overflow"},
    {"dim beyond int64", "{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}", 8, NULL},
    {"product overflow", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, "overflow"},
    {"overflow then zero", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,0],\"data_offsets\":[0,0]}}", 0, "overflow"},
    {"bytes overflow", "{\"a\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,8]}}", 8, "overflow"},
    {"shape mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "'a'"},
    {"dtype mismatch", "{\"a\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "'a'"},
    {"one offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "data_offsets"},
    {"three offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8, "data_offsets"},
    {"offsets object", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":{\"0\":8}}}", 8, "data_offsets"},
    {"missing offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "data_offsets"},
    {"negative offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8, "data_offsets"},
    {"string offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[\"0\",\"8\"]}}", 8, "data_offsets"},
    {"float offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0.0,8.0]}}", 8, "data_offsets"},
    {"begin > end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "begin"},
    {"end past data", "{" T8("a", 0, 8) "}", 4, "past"},
    {"huge end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[9223372036854775800,9223372036854775807]}}", 8, "past"},
    {"overlap", "{" T8("a", 0, 8) "," T8("b", 4, 12) "}", 12, "overlaps"},
    {"same offsets", "{" T8("a", 0, 8) "," T8("b", 0, 8) "}", 8, "overlaps"},
    {"gap", "{" T8("a", 0, 8) "," T8("b", 12, 20) "}", 20, "gap"},
    {"gap at start", "{" T8("a", 4, 12) "}", 12, "gap"},
    {"trailing data", "{" T8("a", 0, 8) "}", 12, "no tensor"},
    {"data but no tensor", "{}", 8, "no tensor"},
    {"duplicate names", "{" T8("a", 0, 8) "," T8("a", 8, 16) "}", 16, "duplicate"},
    {"metadata number", "{\"__metadata__\":{\"k\":1}}", 0, "'k'"},
    {"metadata null", "{\"__metadata__\":{\"k\":null}}", 0, "'k'"},
    {"metadata nested", "{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0, "'k'"},
    {"metadata list", "{\"__metadata__\":[\"k\",\"v\"]}", 0, "__metadata__"},
    {"metadata string", "{\"__metadata__\":\"kv\"}", 0, "__metadata__"},
    {"duplicate metadata", "{\"__metadata__\":{\"k\":\"a\"},\"__metadata__\":{\"k\":\"b\"}}", 0, "duplicate"},
    {"duplicate metadata key", "{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0, "duplicate"},
};

static void test_hostile_headers(void **state)
{
    (void)state;
    size_t size;
    /* The baseline of most variants is valid. */
    unsigned char *ok = make_file("{" T8("a", 0, 8) "," T8("b", 8, 16) "}", 16, &size);
    plstm_safetensors *st;
    TU_OK(plstm_safetensors_open_memory(&st, ok, size));
    plstm_safetensors_close(st);
    free(ok);
    for (size_t i = 0; i < sizeof hostile_headers / sizeof hostile_headers[0]; ++i) {
        const hostile *h = &hostile_headers[i];
        unsigned char *f = make_file(h->header, h->data_len, &size);
        expect_format_error(f, size, h->what, h->needle);
        free(f);
    }

    /* Deep nesting must be refused, not overflow the stack. */
    size_t depth = 100000;
    char *deep = tu_calloc(2 * depth + 16, 1);
    strcpy(deep, "{\"a\":");
    memset(deep + 5, '[', depth);
    memset(deep + 5 + depth, ']', depth);
    strcat(deep, "}");
    unsigned char *f = make_file(deep, 0, &size);
    expect_format_error(f, size, "deep nesting", NULL);
    free(f);
    free(deep);
}

static void test_hostile_prefix(void **state)
{
    (void)state;
    size_t size;
    unsigned char *f = make_file("{\"__metadata__\":{\"kind\":\"x\"}," T8("a", 0, 8) "}", 8, &size);
    uint64_t n = size - 8 - 8;
    plstm_safetensors *st;
    TU_OK(plstm_safetensors_open_memory(&st, f, size));
    plstm_safetensors_close(st);
    const uint64_t lens[] = {0, 1, n - 8, n + 1, n + 8, size - 8 + 1, size, (uint64_t)1 << 32,
                             PLSTM_SAFETENSORS_MAX_HEADER + 1ull, (uint64_t)1 << 63, UINT64_MAX};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; ++i) {
        set_header_len(f, lens[i]);
        expect_format_error(f, size, "corrupt header length", NULL);
    }
    set_header_len(f, n);
    expect_format_error(f, 0, "empty file", "shorter");
    expect_format_error(f, 7, "7-byte file", "shorter");
    set_header_len(f, PLSTM_SAFETENSORS_MAX_HEADER + 8);
    expect_format_error(f, size, "header over the limit", "limit");
    free(f);
}

/* ---- fuzz ------------------------------------------------------------------------ */

static const char fuzz_chars[] = "{}[]\",:-0123456789eE. \\u\xff\x80";

static void test_fuzz_byte_flips(void **state)
{
    (void)state;
    float f32[6] = {1, 2, 3, 4, 5, 6};
    uint16_t f16[3] = {0x3C00, 0x4000, 0x4200};
    int64_t i64[4] = {0, 1, 1, 2};
    unsigned char u8[3] = {1, 2, 3};
    plstm_safetensors_writer *w;
    TU_OK(plstm_safetensors_writer_create(&w));
    TU_OK(plstm_safetensors_writer_add_metadata(w, "kind", "fuzz"));
    TU_OK(plstm_safetensors_writer_add_metadata(w, "n", "12"));
    TU_OK(plstm_safetensors_writer_add_tensor(w, "w", PLSTM_F32, 2, (int64_t[]){2, 3}, f32));
    TU_OK(plstm_safetensors_writer_add_tensor(w, "h", PLSTM_F16, 1, (int64_t[]){3}, f16));
    TU_OK(plstm_safetensors_writer_add_tensor(w, "e", PLSTM_I64, 2, (int64_t[]){2, 2}, i64));
    TU_OK(plstm_safetensors_writer_add_tensor(w, "u", PLSTM_U8, 1, (int64_t[]){3}, u8));
    void *base;
    size_t base_size;
    TU_OK(plstm_safetensors_writer_serialize(w, &base, &base_size));
    plstm_safetensors_writer_destroy(w);
    size_t header_end = 8;
    for (int i = 7; i >= 0; --i)
        header_end += (size_t)((unsigned char *)base)[i] << (8 * i);

    tu_rng rng;
    tu_rng_seed(&rng, 2024);
    unsigned char *buf = tu_calloc(base_size + 64, 1);
    int accepted = 0, rejected = 0;
    const int iters = 5000;
    for (int it = 0; it < iters; ++it) {
        memcpy(buf, base, base_size);
        size_t size = base_size;
        int nmut = 1 + (int)(tu_rng_u64(&rng) % 3);
        for (int m = 0; m < nmut; ++m) {
            uint64_t r = tu_rng_u64(&rng);
            /* Mostly the header (where parsing happens), sometimes anywhere. */
            size_t span = (r & 3) && header_end < size ? header_end : size;
            if (span == 0)
                break;
            size_t pos = (size_t)((r >> 8) % span);
            switch ((r >> 2) % 5) {
            case 0: buf[pos] ^= (unsigned char)(1u << ((r >> 40) % 8)); break;
            case 1: buf[pos] = (unsigned char)(r >> 40); break;
            case 2: buf[pos] = (unsigned char)fuzz_chars[(r >> 40) % (sizeof fuzz_chars - 1)]; break;
            case 3: size = pos; break; /* truncate */
            case 4: if (size + 1 <= base_size + 64) { /* insert a byte */
                        memmove(buf + pos + 1, buf + pos, size - pos);
                        buf[pos] = (unsigned char)fuzz_chars[(r >> 40) % (sizeof fuzz_chars - 1)];
                        size++;
                    }
                    break;
            }
        }
        plstm_safetensors *st = NULL;
        plstm_clear_error();
        plstm_status s = plstm_safetensors_open_memory(&st, buf, size);
        if (s == PLSTM_OK) {
            accepted++;
            /* Touch everything an accepted file exposes. */
            for (size_t i = 0; i < plstm_safetensors_count(st); ++i) {
                const plstm_safetensors_tensor *t = plstm_safetensors_at(st, i);
                assert_ptr_equal(plstm_safetensors_find(st, t->name), t);
                size_t n = (size_t)t->numel;
                void *out = tu_calloc(n + 1, 8);
                plstm_status rs = t->dtype == PLSTM_I64 || t->dtype == PLSTM_I32 || t->dtype == PLSTM_U8
                                      ? plstm_safetensors_read_i64(st, t->name, out, n)
                                      : plstm_safetensors_read_f64(st, t->name, out, n);
                assert_int_equal(rs, PLSTM_OK);
                free(out);
            }
            for (size_t i = 0; i < plstm_safetensors_metadata_count(st); ++i) {
                const char *k, *v;
                plstm_safetensors_metadata_at(st, i, &k, &v);
                assert_true(strlen(k) + strlen(v) < size);
            }
            plstm_safetensors_close(st);
        } else {
            rejected++;
            if (s != PLSTM_ERR_FORMAT)
                fail_msg("mutation %d: status %s (%s)", it, plstm_status_name(s), plstm_last_error());
            assert_null(st);
            assert_true(strlen(plstm_last_error()) > 0);
        }
    }
    print_message("fuzz: %d mutations, %d accepted, %d rejected\n", iters, accepted, rejected);
    assert_true(rejected > iters / 2);
    free(buf);
    free(base);
}

/* ---- atomic writes -------------------------------------------------------------- */

static void write_small(const char *path, float value, plstm_status expect)
{
    float x[4] = {value, value, value, value};
    plstm_safetensors_writer *w;
    TU_OK(plstm_safetensors_writer_create(&w));
    TU_OK(plstm_safetensors_writer_add_tensor(w, "x", PLSTM_F32, 1, (int64_t[]){4}, x));
    plstm_clear_error();
    plstm_status s = plstm_safetensors_writer_write(w, path);
    plstm_safetensors_writer_destroy(w);
    if (s != expect)
        fail_msg("writing %s: got %s (%s)", path, plstm_status_name(s), plstm_last_error());
    if (s != PLSTM_OK)
        assert_true(strlen(plstm_last_error()) > 0);
}

static float read_small(const char *path)
{
    plstm_safetensors *st;
    TU_OK(plstm_safetensors_open(&st, path));
    float x[4];
    TU_OK(plstm_safetensors_read_f32(st, "x", x, 4));
    plstm_safetensors_close(st);
    return x[0];
}

static void test_atomic_write(void **state)
{
    (void)state;
    char sub[512], target[600], list[4096];
    snprintf(sub, sizeof sub, "%s/atomic", tmpdir);
    assert_int_equal(mkdir(sub, 0777), 0);
    snprintf(target, sizeof target, "%s/ckpt.safetensors", sub);

    write_small(target, 1.0f, PLSTM_OK);
    write_small(target, 2.0f, PLSTM_OK); /* replaces */
    assert_true(read_small(target) == 2.0f);
    assert_int_equal(dir_entries(sub, list, sizeof list), 1);

    /* Missing folder: error, nothing created. */
    char missing[700];
    snprintf(missing, sizeof missing, "%s/nope/ckpt.safetensors", sub);
    write_small(missing, 3.0f, PLSTM_ERR_IO);

    /* Target is a directory: error, directory intact, no temp file left. */
    char dirtarget[700];
    snprintf(dirtarget, sizeof dirtarget, "%s/adir", sub);
    assert_int_equal(mkdir(dirtarget, 0777), 0);
    write_small(dirtarget, 3.0f, PLSTM_ERR_IO);
    struct stat sb;
    assert_int_equal(stat(dirtarget, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(dir_entries(sub, list, sizeof list), 2);
    rmdir(dirtarget);

    /* Path ending in '/' names no file. */
    char slash[700];
    snprintf(slash, sizeof slash, "%s/", sub);
    write_small(slash, 3.0f, PLSTM_ERR_INVALID_ARGUMENT);

    /* A write that fails half-way (file size limit): old file intact, no temp file. */
    size_t big_n = 1 << 16;
    float *big = tu_calloc(big_n, sizeof *big);
    plstm_safetensors_writer *w;
    TU_OK(plstm_safetensors_writer_create(&w));
    TU_OK(plstm_safetensors_writer_add_tensor(w, "x", PLSTM_F32, 1, (int64_t[]){(int64_t)big_n}, big));
    struct rlimit old_lim, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old_lim), 0);
    void (*old_sig)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old_lim;
    lim.rlim_cur = 4096;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    plstm_status s = plstm_safetensors_writer_write(w, target);
    setrlimit(RLIMIT_FSIZE, &old_lim);
    signal(SIGXFSZ, old_sig);
    plstm_safetensors_writer_destroy(w);
    free(big);
    assert_int_equal(s, PLSTM_ERR_IO);
    assert_true(read_small(target) == 2.0f);
    if (dir_entries(sub, list, sizeof list) != 1)
        fail_msg("left behind: %s", list);

    /* Unwritable folder (meaningless for root, who may write anyway). */
    if (geteuid() != 0) {
        assert_int_equal(chmod(sub, 0555), 0);
        write_small(target, 4.0f, PLSTM_ERR_IO);
        assert_int_equal(chmod(sub, 0777), 0);
        assert_true(read_small(target) == 2.0f);
        assert_int_equal(dir_entries(sub, list, sizeof list), 1);
    }

    /* The raw helper: abort leaves nothing, commit publishes. */
    char raw[700];
    snprintf(raw, sizeof raw, "%s/raw.bin", sub);
    plstm_atomic_file *af;
    TU_OK(plstm_atomic_file_open(&af, raw));
    TU_OK(plstm_atomic_file_write(af, "hello", 5));
    assert_int_equal(access(raw, F_OK), -1); /* not visible before commit */
    plstm_atomic_file_abort(af);
    assert_int_equal(dir_entries(sub, list, sizeof list), 1);
    TU_OK(plstm_atomic_write(raw, "hello", 5));
    size_t rs;
    unsigned char *got = read_whole(raw, &rs);
    assert_int_equal(rs, 5);
    assert_memory_equal(got, "hello", 5);
    free(got);
    unlink(raw);
    unlink(target);
    rmdir(sub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_all_dtypes),
        cmocka_unit_test(test_empty_file_and_writer_errors),
        cmocka_unit_test(test_half_conversions),
        cmocka_unit_test(test_read_converting),
        cmocka_unit_test(test_unaligned_offsets),
        cmocka_unit_test(test_reference_files),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_hostile_headers),
        cmocka_unit_test(test_hostile_prefix),
        cmocka_unit_test(test_fuzz_byte_flips),
        cmocka_unit_test(test_atomic_write),
    };
    return cmocka_run_group_tests(tests, setup_tmpdir, teardown_tmpdir);
}
