/* Terminal progress bar. Writes only to the caller's stream. */
#include "plstm/train.h"
#include "core/status_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct plstm_progress {
    FILE *out;
    int64_t total, start, step, printed_step;
    int tty, on_screen;
    double plain_every, t0, last_draw;
    double loss, acc, ips;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fmt_duration(char *buf, size_t cap, double s)
{
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, cap, "--:--");
        return;
    }
    const long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, cap, "%02ld:%02ld", t / 60, t % 60);
}

plstm_status plstm_progress_create(plstm_progress **pb, FILE *out, int64_t total_steps,
                                   int64_t start_step, int tty, double plain_every_s)
{
    PLSTM_CHECK_ARG(pb && out, "plstm_progress_create: NULL argument");
    PLSTM_CHECK_ARG(total_steps > 0 && start_step >= 0 && start_step <= total_steps,
                    "progress: steps %lld of %lld", (long long)start_step,
                    (long long)total_steps);
    plstm_progress *p = calloc(1, sizeof *p);
    if (!p)
        return plstm_fail(PLSTM_ERR_OUT_OF_MEMORY, "progress: out of memory");
    p->out = out;
    p->total = total_steps;
    p->start = p->step = start_step;
    p->printed_step = -1;
    p->tty = tty >= 0 ? tty != 0 : isatty(fileno(out));
    p->plain_every = plain_every_s > 0 ? plain_every_s : 30.0;
    p->t0 = p->last_draw = now_s();
    p->loss = p->acc = p->ips = -1;
    *pb = p;
    return PLSTM_OK;
}

void plstm_progress_destroy(plstm_progress *pb) { free(pb); }

static void draw(plstm_progress *p, double now)
{
    char line[256], eta[32], spent[32];
    size_t n = 0;
    const double frac = (double)p->step / (double)p->total;
    if (p->tty) {
        enum { WIDTH = 24 };
        const int full = (int)(frac * WIDTH + 1e-9);
        line[n++] = '[';
        for (int i = 0; i < WIDTH; i++)
            line[n++] = i < full ? '#' : (i == full ? '>' : '.');
        line[n++] = ']';
        line[n++] = ' ';
    }
    n += (size_t)snprintf(line + n, sizeof line - n, "%lld/%lld %5.1f%%", (long long)p->step,
                          (long long)p->total, 100.0 * frac);
    if (p->loss >= 0)
        n += (size_t)snprintf(line + n, sizeof line - n, "  loss %.4f", p->loss);
    if (p->acc >= 0)
        n += (size_t)snprintf(line + n, sizeof line - n, "  acc %.2f%%", 100.0 * p->acc);
    if (p->ips >= 0)
        n += (size_t)snprintf(line + n, sizeof line - n, "  %.1f img/s", p->ips);
    const double elapsed = now - p->t0;
    const int64_t done = p->step - p->start;
    fmt_duration(spent, sizeof spent, elapsed);
    const double left = (double)(p->total - p->step);
    fmt_duration(eta, sizeof eta, done > 0 ? elapsed / (double)done * left : -1);
    snprintf(line + n, sizeof line - n, "  %s elapsed, ETA %s", spent, eta);
    if (p->tty) {
        fprintf(p->out, "\r%s\033[K", line);
        p->on_screen = 1;
    } else {
        fprintf(p->out, "%s\n", line);
    }
    fflush(p->out);
    p->last_draw = now;
    p->printed_step = p->step;
}

void plstm_progress_update(plstm_progress *pb, int64_t step, double loss, double acc,
                           double images_per_s)
{
    if (!pb)
        return;
    pb->step = step < 0 ? 0 : step > pb->total ? pb->total : step;
    pb->loss = loss;
    pb->acc = acc;
    pb->ips = images_per_s;
    const double now = now_s();
    const double every = pb->tty ? 0.1 : pb->plain_every;
    if (pb->printed_step < 0 || now - pb->last_draw >= every ||
        (pb->step == pb->total && pb->printed_step != pb->step))
        draw(pb, now);
}

void plstm_progress_message(plstm_progress *pb, const char *text)
{
    if (!pb || !text)
        return;
    if (pb->tty && pb->on_screen)
        fputs("\r\033[K", pb->out);
    const size_t len = strlen(text);
    fprintf(pb->out, "%s%s", text, len && text[len - 1] == '\n' ? "" : "\n");
    fflush(pb->out);
    if (pb->tty && pb->on_screen)
        draw(pb, now_s());
}

void plstm_progress_finish(plstm_progress *pb)
{
    if (!pb)
        return;
    if (pb->printed_step != pb->step || pb->tty)
        draw(pb, now_s());
    if (pb->tty) {
        fputc('\n', pb->out);
        fflush(pb->out);
        pb->on_screen = 0;
    }
}
