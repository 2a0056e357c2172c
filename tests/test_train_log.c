/* JSON-lines log (including resume), progress bar output and PNG plots read
 * back with libpng. */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/plstm_log_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

static const char *in_dir(const char *name)
{
    static char buf[4][128];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* Parses every line of `path` as a JSON object; returns the count. */
static int read_lines(const char *path, json_t **objs, int max)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        assert_true(strlen(line) > 0 && line[strlen(line) - 1] == '\n');
        json_error_t err;
        json_t *j = json_loads(line, 0, &err);
        if (!j)
            fail_msg("line %d is not JSON: %s (%s)", n + 1, line, err.text);
        assert_true(json_is_object(j));
        assert_true(n < max);
        objs[n++] = j;
    }
    fclose(f);
    return n;
}

static void log_record(plstm_jsonl *lg, int64_t step, const char *split, double loss)
{
    TU_OK(plstm_jsonl_begin(lg));
    TU_OK(plstm_jsonl_add_int(lg, "step", step));
    TU_OK(plstm_jsonl_add_string(lg, "split", split));
    TU_OK(plstm_jsonl_add_real(lg, "loss", loss));
    TU_OK(plstm_jsonl_add_real(lg, "acc", 0.5 + 1e-4 * (double)step));
    TU_OK(plstm_jsonl_end(lg));
}

static void test_jsonl(void **state)
{
    (void)state;
    const char *path = in_dir("log.jsonl");
    plstm_jsonl *lg = NULL;
    TU_OK(plstm_jsonl_open(&lg, path, -1));
    for (int s = 100; s <= 300; s += 100)
        log_record(lg, s, "train", 0.5 / s);
    TU_OK(plstm_jsonl_begin(lg));
    TU_OK(plstm_jsonl_add_real(lg, "grad_norm", NAN));
    TU_OK(plstm_jsonl_add_string(lg, "note", "quote \" and\nnewline"));
    TU_OK(plstm_jsonl_end(lg));
    assert_int_equal(plstm_jsonl_end(lg), PLSTM_ERR_INVALID_ARGUMENT); /* no record begun */
    assert_int_equal(plstm_jsonl_add_int(lg, "x", 1), PLSTM_ERR_INVALID_ARGUMENT);
    /* flushed per line: readable before close */
    json_t *o[16];
    int n = read_lines(path, o, 16);
    assert_int_equal(n, 4);
    assert_int_equal(json_integer_value(json_object_get(o[1], "step")), 200);
    assert_string_equal(json_string_value(json_object_get(o[1], "split")), "train");
    /* written with 10 significant digits */
    assert_true(fabs(json_real_value(json_object_get(o[2], "loss")) / (0.5 / 300) - 1) < 1e-9);
    assert_true(json_is_null(json_object_get(o[3], "grad_norm")));
    assert_string_equal(json_string_value(json_object_get(o[3], "note")), "quote \" and\nnewline");
    for (int i = 0; i < n; i++)
        json_decref(o[i]);
    plstm_jsonl_close(lg);

    /* a crash after step 300 left a torn line; resume from the checkpoint at 200 */
    FILE *f = fopen(path, "a");
    fputs("{\"step\": 400, \"split\": \"tr", f);
    fclose(f);
    TU_OK(plstm_jsonl_open(&lg, path, 200));
    log_record(lg, 300, "train", 1.0);
    plstm_jsonl_close(lg);
    n = read_lines(path, o, 16);
    assert_int_equal(n, 4); /* 100, 200, the step-less record, the new 300 */
    assert_int_equal(json_integer_value(json_object_get(o[0], "step")), 100);
    assert_int_equal(json_integer_value(json_object_get(o[1], "step")), 200);
    assert_null(json_object_get(o[2], "step"));
    assert_true(json_real_value(json_object_get(o[3], "loss")) == 1.0);
    for (int i = 0; i < n; i++)
        json_decref(o[i]);
    /* a fresh run replaces the file */
    TU_OK(plstm_jsonl_open(&lg, path, -1));
    log_record(lg, 1, "train", 2.0);
    plstm_jsonl_close(lg);
    n = read_lines(path, o, 16);
    assert_int_equal(n, 1);
    json_decref(o[0]);
    assert_int_equal(plstm_jsonl_open(&lg, in_dir("no/such/log.jsonl"), -1), PLSTM_ERR_IO);
}

static char *stream_text(FILE *f)
{
    fflush(f);
    const long size = ftell(f);
    rewind(f);
    char *buf = tu_calloc((size_t)size + 1, 1);
    assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
    return buf;
}

static void test_progress(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    plstm_progress *pb = NULL;
    TU_OK(plstm_progress_create(&pb, f, 10, 0, 0, 1000.0));
    for (int s = 1; s <= 10; s++)
        plstm_progress_update(pb, s, 0.25, 0.875, 512.0);
    plstm_progress_message(pb, "val: acc 0.9");
    plstm_progress_finish(pb);
    plstm_progress_destroy(pb);
    char *text = stream_text(f);
    fclose(f);
    assert_null(strchr(text, '\r')); /* plain lines: the first update, the message, the end */
    assert_non_null(strstr(text, "1/10  10.0%"));
    assert_non_null(strstr(text, "10/10 100.0%  loss 0.2500  acc 87.50%  512.0 img/s"));
    assert_non_null(strstr(text, "val: acc 0.9\n"));
    assert_non_null(strstr(text, "ETA 00:00"));
    free(text);

    f = tmpfile();
    TU_OK(plstm_progress_create(&pb, f, 200, 100, 1, 0));
    plstm_progress_update(pb, 150, 0.5, -1, -1);
    plstm_progress_message(pb, "hello");
    plstm_progress_update(pb, 200, 0.5, -1, -1);
    plstm_progress_finish(pb);
    plstm_progress_destroy(pb);
    text = stream_text(f);
    fclose(f);
    assert_true(!strncmp(text, "\r[############", 14)); /* drawn at the first update */
    assert_non_null(strstr(text, "\r\033[Khello\n\r[")); /* cleared, printed, redrawn */
    assert_non_null(strstr(text, "[########################] 200/200 100.0%  loss 0.5000  "));
    assert_null(strstr(text, "acc"));
    assert_true(text[strlen(text) - 1] == '\n');
    free(text);
    assert_int_equal(plstm_progress_create(&pb, stderr, 0, 0, 0, 0), PLSTM_ERR_INVALID_ARGUMENT);
}

/* Reads an RGB PNG back with libpng; returns the pixels (malloc'd). */
static uint8_t *read_png(const char *path, int *w, int *h)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_true(png && info);
    if (setjmp(png_jmpbuf(png)))
        fail_msg("libpng could not read %s", path);
    png_init_io(png, f);
    png_read_info(png, info);
    *w = (int)png_get_image_width(png, info);
    *h = (int)png_get_image_height(png, info);
    assert_int_equal(png_get_color_type(png, info), PNG_COLOR_TYPE_RGB);
    assert_int_equal(png_get_bit_depth(png, info), 8);
    uint8_t *px = tu_calloc((size_t)*w * (size_t)*h * 3, 1);
    for (int y = 0; y < *h; y++)
        png_read_row(png, px + (size_t)y * (size_t)*w * 3, NULL);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return px;
}

static size_t count_color(const uint8_t *px, int w, int h, const uint8_t rgb[3])
{
    size_t n = 0;
    for (size_t i = 0; i < (size_t)w * (size_t)h; i++)
        n += !memcmp(px + 3 * i, rgb, 3);
    return n;
}

static void test_plot(void **state)
{
    (void)state;
    enum { N = 50 };
    double x[N], y1[N], y2[N];
    for (int i = 0; i < N; i++) {
        x[i] = 100.0 * i;
        y1[i] = 0.7 * exp(-i / 10.0);
        y2[i] = i == 7 ? NAN : 0.8 * exp(-i / 12.0) + 0.05;
    }
    const plstm_plot_series loss[2] = {{"train", x, y1, N, {200, 0, 0}},
                                       {"val", x, y2, N, {0, 0, 200}}};
    const plstm_plot_series acc[1] = {{"train", x, y2, N, {0, 150, 0}}};
    const plstm_plot_panel panels[2] = {{"loss", "step", loss, 2}, {"accuracy", "step", acc, 1}};
    const char *path = in_dir("curves.png");
    TU_OK(plstm_plot_write_png(path, 900, 360, panels, 2));
    int w, h;
    uint8_t *px = read_png(path, &w, &h);
    assert_int_equal(w, 900);
    assert_int_equal(h, 360);
    const uint8_t red[3] = {200, 0, 0}, blue[3] = {0, 0, 200}, green[3] = {0, 150, 0},
                  black[3] = {0, 0, 0};
    assert_true(count_color(px, w, h, red) > 300);
    assert_true(count_color(px, w, h, blue) > 300);
    assert_true(count_color(px, w, h, green) > 300);
    assert_true(count_color(px, w, h, black) > 500); /* labels */
    /* the loss panel's curves stay in the left half */
    for (int yy = 0; yy < h; yy++)
        for (int xx = w / 2; xx < w; xx++)
            assert_true(memcmp(px + 3 * ((size_t)yy * w + xx), red, 3) != 0);
    free(px);
    assert_int_equal(plstm_plot_write_png(path, 10, 10, panels, 2), PLSTM_ERR_INVALID_ARGUMENT);

    /* from a training log */
    const char *log = in_dir("train.jsonl");
    plstm_jsonl *lg = NULL;
    TU_OK(plstm_jsonl_open(&lg, log, -1));
    for (int s = 0; s <= 2000; s += 100)
        log_record(lg, s, "train", 0.7 / (1 + s / 500.0));
    for (int s = 0; s <= 2000; s += 1000)
        log_record(lg, s, "val", 0.6 / (1 + s / 500.0));
    plstm_jsonl_close(lg);
    const char *png2 = in_dir("log.png");
    TU_OK(plstm_plot_training_log(png2, log, 1000, 400));
    px = read_png(png2, &w, &h);
    assert_int_equal(w, 1000);
    assert_int_equal(h, 400);
    const uint8_t c_train[3] = {31, 119, 180}, c_val[3] = {255, 127, 14};
    assert_true(count_color(px, w, h, c_train) > 300);
    assert_true(count_color(px, w, h, c_val) > 100);
    free(px);
    TU_OK(plstm_jsonl_open(&lg, log, -1));
    plstm_jsonl_close(lg);
    assert_int_equal(plstm_plot_training_log(png2, log, 1000, 400), PLSTM_ERR_FORMAT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jsonl),
        cmocka_unit_test(test_progress),
        cmocka_unit_test(test_plot),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
