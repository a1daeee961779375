/* progress.c — the per-epoch progress display of `kiln train`: a bar
 * redrawn in place when stdout is a terminal (at most ten times a second),
 * plain lines at 25%, 50% and 75% of the epoch otherwise. */
#include "tool.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

double kiln_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void kiln_progress_start(kiln_progress *p, const char *label, int64_t total_batches)
{
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total_batches = total_batches;
    p->t0 = kiln_now();
    p->next_quarter = 1;
    p->tty = isatty(fileno(stdout));
}

static void clock_text(double s, char *buf, size_t n)
{
    if (!(s >= 0) || s > 359999) {
        snprintf(buf, n, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

void kiln_progress_update(kiln_progress *p, int64_t batches, int64_t items, double loss)
{
    double now = kiln_now(), elapsed = now - p->t0;
    double rate = elapsed > 0 ? (double)items / elapsed : 0;
    double eta =
        batches > 0 ? elapsed * (double)(p->total_batches - batches) / (double)batches : -1;
    char eta_text[32];
    clock_text(eta, eta_text, sizeof eta_text);
    if (p->tty) {
        if (batches < p->total_batches && now - p->last_draw < 0.1) return;
        p->last_draw = now;
        enum { WIDTH = 24 };
        char bar[WIDTH + 1];
        int fill = p->total_batches > 0 ? (int)(WIDTH * batches / p->total_batches) : WIDTH;
        for (int i = 0; i < WIDTH; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[WIDTH] = 0;
        printf("\r%s [%s] %lld/%lld  %.0f items/s  ETA %s  loss %.4f\033[K", p->label, bar,
               (long long)batches, (long long)p->total_batches, rate, eta_text, loss);
        fflush(stdout);
        p->active = 1;
        return;
    }
    /* plain: one line when a quarter of the epoch is passed (never at 100%,
     * where the epoch line follows) */
    if (p->next_quarter > 3 || batches * 4 < p->next_quarter * p->total_batches) return;
    int pct = (int)(100 * batches / p->total_batches);
    while (p->next_quarter <= 3 && batches * 4 >= p->next_quarter * p->total_batches)
        p->next_quarter++;
    if (batches >= p->total_batches) return;
    printf("%s  %3d%%  %lld/%lld batches  %.0f items/s  ETA %s  loss %.4f\n", p->label, pct,
           (long long)batches, (long long)p->total_batches, rate, eta_text, loss);
    fflush(stdout);
}

void kiln_progress_end(kiln_progress *p)
{
    if (p->tty && p->active) {
        printf("\r\033[K");
        fflush(stdout);
    }
    p->active = 0;
}
