/* plstm ape render|stats: Arrow Pointing Extrapolation samples as PNG, and
 * per-sample labels/CRCs plus the aggregates of ape.md §1.9. */
#include "cli/commands.h"
#include "plstm/plstm.h"
#include "plstm/png.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage_main(FILE *f)
{
    fprintf(f, "usage: plstm ape <render|stats> [options]   (plstm ape <sub> --help)\n\n"
               "Arrow Pointing Extrapolation data, generated bit-exactly like the authors'\n"
               "dataset (numpy PCG64 + Pillow drawing).\n\n"
               "  render   write one sample as a PNG and print its parameters\n"
               "  stats    print labels and image CRC-32s of samples 0..C-1 and their aggregates\n");
}

static void usage_source(FILE *f)
{
    fprintf(f, "dataset (either):\n"
               "  --seed S         generator seed (default 43)\n"
               "  --size N         image side in pixels (default 192; 384 for extrapolation)\n"
               "or:\n"
               "  --split NAME     train | val | val_ext | test | test_ext: the paper's seed and\n"
               "                   size of that split (train uses --seed as the run seed)\n");
}

static void usage_render(FILE *f)
{
    fprintf(f, "usage: plstm ape render [--seed S] [--size N | --split NAME] --index I -o FILE.png [--rgb]\n\n"
               "Writes sample I as an 8-bit PNG (gray, since the three RGB channels are equal;\n"
               "--rgb writes all three) and prints its label and drawn parameters.\n\n");
    usage_source(f);
}

static void usage_stats(FILE *f)
{
    fprintf(f, "usage: plstm ape stats [--seed S] [--size N | --split NAME] [--count C] [--summary]\n\n"
               "For samples 0..C-1 (default C = 100) prints index, label, arrow length and width,\n"
               "black-pixel count and CRC-32 of one channel (zlib crc32 over size*size bytes),\n"
               "then the aggregates as in ape.md 1.9: the first 32 labels, the number positive,\n"
               "the black-pixel sum and the chained CRC-32 of all images in index order.\n"
               "--summary prints only the aggregates.\n\n");
    usage_source(f);
}

typedef struct ape_opts {
    uint64_t seed, index;
    int64_t count;
    int size, size_given, split_given, rgb, summary;
    plstm_ape_split split;
    const char *out;
} ape_opts;

static int parse_u64(const char *flag, const char *s, uint64_t max, uint64_t *v)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (!*s || *s == '-' || *end || errno || x > max) {
        fprintf(stderr, "plstm ape: %s expects an integer in [0, %" PRIu64 "], got '%s'\n", flag,
                max, s);
        return -1;
    }
    *v = x;
    return 0;
}

/* Returns 0 to go on, 1 when --help was printed, -1 on a usage error. */
static int parse(int argc, char **argv, ape_opts *o, void (*usage)(FILE *))
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 1;
        } else if (!strcmp(a, "--rgb")) {
            o->rgb = 1;
        } else if (!strcmp(a, "--summary")) {
            o->summary = 1;
        } else if (!val) {
            fprintf(stderr, "plstm ape: unknown option or missing value: '%s'\n\n", a);
            usage(stderr);
            return -1;
        } else {
            i++;
            if (!strcmp(a, "--seed")) {
                if (parse_u64(a, val, UINT64_MAX, &o->seed))
                    return -1;
            } else if (!strcmp(a, "--index")) {
                if (parse_u64(a, val, UINT64_MAX >> 2, &o->index))
                    return -1;
            } else if (!strcmp(a, "--count")) {
                if (parse_u64(a, val, INT64_MAX, &v))
                    return -1;
                o->count = (int64_t)v;
            } else if (!strcmp(a, "--size")) {
                if (parse_u64(a, val, PLSTM_APE_MAX_SIZE, &v))
                    return -1;
                o->size = (int)v;
                o->size_given = 1;
            } else if (!strcmp(a, "--split")) {
                plstm_status s = plstm_ape_split_parse(val, &o->split);
                if (s != PLSTM_OK)
                    return cli_report_error("--split", s), -1;
                o->split_given = 1;
            } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
                o->out = val;
            } else {
                fprintf(stderr, "plstm ape: unknown option '%s'\n\n", a);
                usage(stderr);
                return -1;
            }
        }
    }
    if (o->split_given && o->size_given) {
        fprintf(stderr, "plstm ape: --size conflicts with --split (the split fixes the size)\n");
        return -1;
    }
    return 0;
}

static int open_dataset(const ape_opts *o, plstm_ape *ds)
{
    plstm_status s = o->split_given ? plstm_ape_init_split(ds, o->split, o->seed)
                                    : plstm_ape_init(ds, o->seed, o->size);
    return s == PLSTM_OK ? 0 : cli_report_error("ape", s);
}

/* Shortest text that reads back as the same double, like Python's repr. */
static const char *repr(char buf[32], double x)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, 32, "%.*g", prec, x);
        if (strtod(buf, NULL) == x)
            break;
    }
    return buf;
}

static void print_sample(uint64_t index, const plstm_ape_sample *s)
{
    char b[7][32];
    printf("idx %" PRIu64 " u=%s label %d len %d w %d arrow=(%s,%s) phi=%s\n"
           "  circle=(%s,%s) r=%s\n",
           index, repr(b[0], s->u), s->label, s->arrow_length, s->arrow_width,
           repr(b[1], s->arrow_x), repr(b[2], s->arrow_y), repr(b[3], s->phi),
           repr(b[4], s->circle_x), repr(b[5], s->circle_y), repr(b[6], s->radius));
}

static long count_black(const uint8_t *px, size_t n)
{
    long k = 0;
    for (size_t i = 0; i < n; i++)
        k += px[i] == 0;
    return k;
}

static int run_render(const ape_opts *o)
{
    if (!o->out) {
        fprintf(stderr, "plstm ape render: -o FILE.png is required\n");
        return 2;
    }
    plstm_ape ds;
    if (open_dataset(o, &ds))
        return 1;
    size_t n = (size_t)ds.size * (size_t)ds.size;
    uint8_t *px = malloc(n * (o->rgb ? 3 : 1));
    if (!px) {
        fprintf(stderr, "plstm ape render: out of memory\n");
        return 1;
    }
    plstm_ape_sample smp;
    plstm_status s = plstm_ape_render_u8(&ds, o->index, px, &smp);
    long black = s == PLSTM_OK ? count_black(px, n) : 0;
    uint32_t crc = s == PLSTM_OK ? plstm_ape_crc32(0, px, n) : 0;
    if (s == PLSTM_OK && o->rgb)
        for (size_t i = n; i-- > 0;) /* expand in place, back to front */
            px[3 * i] = px[3 * i + 1] = px[3 * i + 2] = px[i];
    if (s == PLSTM_OK)
        s = plstm_png_write(o->out, px, ds.size, ds.size, o->rgb ? 3 : 1);
    if (s != PLSTM_OK) {
        free(px);
        return cli_report_error("ape render", s);
    }
    printf("seed %" PRIu64 ", %dpx, G=%" PRIu64 "\n", ds.seed, ds.size, ds.base_seed);
    print_sample(o->index, &smp);
    printf("  black=%ld crc=%08x -> %s\n", black, (unsigned)crc, o->out);
    free(px);
    return 0;
}

static int run_stats(const ape_opts *o)
{
    plstm_ape ds;
    if (open_dataset(o, &ds))
        return 1;
    const size_t n = (size_t)ds.size * (size_t)ds.size;
    enum { BLOCK = 32 }; /* images rendered in parallel, then folded in order */
    uint8_t *px = malloc(BLOCK * n);
    plstm_ape_sample *smp = malloc(BLOCK * sizeof *smp);
    if (!px || !smp) {
        free(px), free(smp);
        fprintf(stderr, "plstm ape stats: out of memory\n");
        return 1;
    }
    char labels[33] = {0};
    int64_t pos = 0;
    long long black_sum = 0;
    uint32_t chain = 0, crc10[10];
    int failed = 0;
    for (int64_t start = 0; start < o->count && !failed; start += BLOCK) {
        int64_t m = o->count - start < BLOCK ? o->count - start : BLOCK;
#pragma omp parallel for schedule(dynamic, 1) reduction(| : failed)
        for (int64_t k = 0; k < m; k++)
            failed |= plstm_ape_render_u8(&ds, (uint64_t)(start + k), px + (size_t)k * n,
                                          smp + k) != PLSTM_OK;
        for (int64_t k = 0; k < m && !failed; k++) {
            int64_t i = start + k;
            const uint8_t *img = px + (size_t)k * n;
            uint32_t crc = plstm_ape_crc32(0, img, n);
            long black = count_black(img, n);
            chain = plstm_ape_crc32(chain, img, n);
            black_sum += black;
            pos += smp[k].label;
            if (i < 32)
                labels[i] = (char)('0' + smp[k].label);
            if (i < 10)
                crc10[i] = crc;
            if (!o->summary)
                printf("idx %" PRId64 " label %d len %d w %d black %ld crc %08x\n", i,
                       smp[k].label, smp[k].arrow_length, smp[k].arrow_width, black,
                       (unsigned)crc);
        }
    }
    free(px);
    free(smp);
    if (failed) /* only a bad index can fail; report it with the library's message */
        return cli_report_error("ape stats", plstm_ape_render_u8(&ds, UINT64_MAX, NULL, NULL));

    char head[64];
    snprintf(head, sizeof head, "seed=%" PRIu64, ds.seed);
    printf("%-11s %d: labels[0:%d]=%s pos=%" PRId64 " black_sum=%lld chain=%08x\n", head, ds.size,
           o->count < 32 ? (int)o->count : 32, labels, pos, black_sum, (unsigned)chain);
    printf("%*s crc idx0..%d:", 16, "", o->count < 10 ? (int)o->count - 1 : 9);
    for (int64_t i = 0; i < o->count && i < 10; i++)
        printf(" %08x", (unsigned)crc10[i]);
    printf("\nclass balance: %" PRId64 " positive, %" PRId64 " negative of %" PRId64
           " (%.2f%% positive)\n",
           pos, o->count - pos, o->count, o->count ? 100.0 * (double)pos / (double)o->count : 0.0);
    return 0;
}

int cmd_ape(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage_main(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    ape_opts o = {.seed = 43, .size = 192, .count = 100};
    const char *sub = argv[1];
    int is_render = !strcmp(sub, "render"), is_stats = !strcmp(sub, "stats");
    if (!is_render && !is_stats) {
        fprintf(stderr, "plstm ape: unknown subcommand '%s'\n\n", sub);
        usage_main(stderr);
        return 2;
    }
    int r = parse(argc - 1, argv + 1, &o, is_render ? usage_render : usage_stats);
    if (r)
        return r > 0 ? 0 : 2;
    return is_render ? run_render(&o) : run_stats(&o);
}
