/* plot.c — the metrics of `kiln train`: the CSV, an SVG drawn here (two
 * panels: train loss; train and test accuracy, per epoch) and a PNG through
 * gnuplot when it is installed. Files are written atomically (temporary
 * file + rename). Relies on src/io/json.h for the string builder. */
#include "tool.h"

#include "io/json.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

kn_status kiln_write_file(const char *who, const char *path, kn_strbuf *sb)
{
    kn_status s = sb->failed ? kn_last_status()
                             : kn__write_file_atomic(who, path, sb->data ? sb->data : "", sb->len);
    kn__sb_free(sb);
    /* the atomic writer's temporary file is private (0600): give the file
     * the mode a plain fopen would have */
    mode_t mask = umask(0);
    umask(mask);
    if (!s) chmod(path, 0666 & ~mask);
    return s;
}

kn_status kiln_write_csv(const char *path, const kiln_epoch_row *rows, int n)
{
    kn_strbuf sb = {0};
    kn__sb_printf(&sb, "epoch,train_loss,train_acc,test_acc,lr,seconds\n");
    for (int i = 0; i < n; i++) {
        const kiln_epoch_row *r = &rows[i];
        kn__sb_printf(&sb, "%lld,%.6f,%.6f,%.6f,%.6g,%.3f\n", (long long)r->epoch, r->train_loss,
                      r->train_acc, r->test_acc, r->lr, r->seconds);
    }
    return kiln_write_file("metrics", path, &sb);
}

/* ------------------------------------------------------------------ SVG */
enum { W = 760, H = 580, LEFT = 80, RIGHT = 730 };

typedef struct axis {
    double lo, hi, step;
} axis;

/* A range covering [lo, hi] with round ticks (1, 2 or 5 times a power of
 * ten, about five of them); integer steps when `integral`. */
static axis nice_axis(double lo, double hi, int integral)
{
    if (!isfinite(lo) || !isfinite(hi)) lo = 0, hi = 1;
    if (hi - lo < 1e-12) {
        double pad = fabs(lo) > 1e-6 ? fabs(lo) * 0.1 : 0.5;
        lo -= pad, hi += pad;
    }
    double raw = (hi - lo) / 5, mag = pow(10, floor(log10(raw))), norm = raw / mag;
    double step = (norm < 1.5 ? 1 : norm < 3.5 ? 2 : norm < 7.5 ? 5 : 10) * mag;
    if (integral && step < 1) step = 1;
    return (axis){floor(lo / step + 1e-9) * step, ceil(hi / step - 1e-9) * step, step};
}

static int decimals(double step)
{
    int d = (int)ceil(-log10(step) - 1e-9);
    return d < 0 ? 0 : d > 6 ? 6 : d;
}

static void xml_text(kn_strbuf *sb, const char *s)
{
    for (; *s; s++) {
        if (*s == '&')
            kn__sb_printf(sb, "&amp;");
        else if (*s == '<')
            kn__sb_printf(sb, "&lt;");
        else if (*s == '>')
            kn__sb_printf(sb, "&gt;");
        else if (*s == '"')
            kn__sb_printf(sb, "&quot;");
        else if ((unsigned char)*s >= 0x20)
            kn__sb_printf(sb, "%c", *s);
    }
}

typedef struct panel {
    double top, bottom;
    axis x, y;
} panel;

static double px(const panel *p, double x)
{
    return LEFT + (x - p->x.lo) / (p->x.hi - p->x.lo) * (RIGHT - LEFT);
}
static double py(const panel *p, double y)
{
    return p->bottom - (y - p->y.lo) / (p->y.hi - p->y.lo) * (p->bottom - p->top);
}

/* Frame, grid, ticks with labels, and the y axis label. */
static void draw_axes(kn_strbuf *sb, const panel *p, const char *ylabel)
{
    kn__sb_printf(sb, "<g font-family=\"sans-serif\" font-size=\"12\" fill=\"#333\">\n");
    int yd = decimals(p->y.step);
    for (int i = 0;; i++) {
        double v = p->y.lo + i * p->y.step;
        if (v > p->y.hi + p->y.step * 1e-6) break;
        double y = py(p, v);
        kn__sb_printf(sb,
                      "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n",
                      LEFT, y, RIGHT, y);
        kn__sb_printf(sb, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#333\"/>\n",
                      LEFT - 5, y, LEFT, y);
        kn__sb_printf(sb, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.*f</text>\n", LEFT - 8,
                      y + 4, yd, v);
    }
    int xd = decimals(p->x.step);
    for (int i = 0;; i++) {
        double v = p->x.lo + i * p->x.step;
        if (v > p->x.hi + p->x.step * 1e-6) break;
        double x = px(p, v);
        kn__sb_printf(sb,
                      "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n",
                      x, p->bottom, x, p->bottom + 5);
        kn__sb_printf(sb, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.*f</text>\n", x,
                      p->bottom + 19, xd, v);
    }
    kn__sb_printf(sb,
                  "<rect x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" fill=\"none\" "
                  "stroke=\"#333\"/>\n",
                  LEFT, p->top, RIGHT - LEFT, p->bottom - p->top);
    double mid = (p->top + p->bottom) / 2;
    kn__sb_printf(
        sb,
        "<text x=\"22\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 22 %.1f)\">"
        "%s</text>\n",
        mid, mid, ylabel);
    kn__sb_printf(sb, "</g>\n");
}

/* One series: polylines through the finite points, and a marker on each. */
static void draw_series(kn_strbuf *sb, const panel *p, const kiln_epoch_row *rows, int n,
                        size_t field, const char *color)
{
    bool open = false;
    for (int i = 0; i < n; i++) {
        double v = *(const double *)((const char *)&rows[i] + field);
        if (!isfinite(v)) {
            if (open) kn__sb_printf(sb, "\"/>\n");
            open = false;
            continue;
        }
        if (!open)
            kn__sb_printf(sb, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
                          color);
        kn__sb_printf(sb, "%s%.1f,%.1f", open ? " " : "", px(p, (double)rows[i].epoch), py(p, v));
        open = true;
    }
    if (open) kn__sb_printf(sb, "\"/>\n");
    for (int i = 0; i < n; i++) {
        double v = *(const double *)((const char *)&rows[i] + field);
        if (isfinite(v))
            kn__sb_printf(sb, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
                          px(p, (double)rows[i].epoch), py(p, v), color);
    }
}

/* How much of the series' polylines passes through the box (samples). */
static int crowding(const panel *p, const kiln_epoch_row *rows, int n, const size_t *fields,
                    int n_fields, double bx, double by, double bw, double bh)
{
    int hits = 0;
    for (int f = 0; f < n_fields; f++)
        for (int i = 0; i < n; i++) {
            const kiln_epoch_row *a = &rows[i], *b = &rows[i + 1 < n ? i + 1 : i];
            double va = *(const double *)((const char *)a + fields[f]);
            double vb = *(const double *)((const char *)b + fields[f]);
            if (!isfinite(va) || !isfinite(vb)) continue;
            for (int k = 0; k <= 16; k++) {
                double t = k / 16.0;
                double x = px(p, (double)a->epoch + t * (double)(b->epoch - a->epoch));
                double y = py(p, va + t * (vb - va));
                hits += x >= bx - 4 && x <= bx + bw + 4 && y >= by - 4 && y <= by + bh + 4;
            }
        }
    return hits;
}

/* The legend goes in the corner of the panel the curves cross least. */
static void draw_legend(kn_strbuf *sb, const panel *p, const kiln_epoch_row *rows, int rows_n,
                        const size_t *fields, int n, const char *const *names,
                        const char *const *colors)
{
    double w = 120, h = 8 + 18 * n, x = RIGHT - 130, y = p->top + 10;
    const double xs[4] = {RIGHT - 130, RIGHT - 130, LEFT + 10, LEFT + 10};
    const double ys[4] = {p->top + 10, p->bottom - 10 - h, p->top + 10, p->bottom - 10 - h};
    int best = -1;
    for (int c = 0; c < 4; c++) {
        int hits = crowding(p, rows, rows_n, fields, n, xs[c], ys[c], w, h);
        if (best < 0 || hits < best) best = hits, x = xs[c], y = ys[c];
    }
    kn__sb_printf(sb,
                  "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.0f\" height=\"%.0f\" fill=\"white\" "
                  "fill-opacity=\"0.85\" stroke=\"#999\"/>\n",
                  x, y, w, h);
    for (int i = 0; i < n; i++) {
        double ly = y + 16 + 18 * i;
        kn__sb_printf(sb,
                      "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                      "stroke-width=\"2\"/>\n",
                      x + 8, ly - 4, x + 32, ly - 4, colors[i]);
        kn__sb_printf(sb,
                      "<text x=\"%.1f\" y=\"%.1f\" font-family=\"sans-serif\" font-size=\"12\" "
                      "fill=\"#333\">%s</text>\n",
                      x + 40, ly, names[i]);
    }
}

static void range_of(const kiln_epoch_row *rows, int n, size_t field, double *lo, double *hi)
{
    for (int i = 0; i < n; i++) {
        double v = *(const double *)((const char *)&rows[i] + field);
        if (!isfinite(v)) continue;
        if (v < *lo) *lo = v;
        if (v > *hi) *hi = v;
    }
}

kn_status kiln_plot_svg(const char *path, const char *title, const kiln_epoch_row *rows, int n)
{
    double x_lo = n ? (double)rows[0].epoch : 1, x_hi = n ? (double)rows[n - 1].epoch : 1;
    if (x_hi <= x_lo) x_lo -= 1, x_hi += 1;
    axis x = nice_axis(x_lo, x_hi, 1);
    double l_lo = INFINITY, l_hi = -INFINITY, a_lo = INFINITY, a_hi = -INFINITY;
    range_of(rows, n, offsetof(kiln_epoch_row, train_loss), &l_lo, &l_hi);
    range_of(rows, n, offsetof(kiln_epoch_row, train_acc), &a_lo, &a_hi);
    range_of(rows, n, offsetof(kiln_epoch_row, test_acc), &a_lo, &a_hi);
    if (l_lo > l_hi) l_lo = 0, l_hi = 1;
    if (a_lo > a_hi) a_lo = 0, a_hi = 1;
    panel loss = {50, 255, x, nice_axis(l_lo < 0 ? l_lo : 0, l_hi, 0)};
    panel acc = {305, 510, x, nice_axis(a_lo, a_hi, 0)};
    if (acc.y.lo < 0) acc.y.lo = 0;
    if (acc.y.hi > 1) acc.y.hi = 1;
    if (acc.y.hi <= acc.y.lo) acc.y = (axis){0, 1, 0.2};

    kn_strbuf sb = {0};
    kn__sb_printf(&sb,
                  "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                  "viewBox=\"0 0 %d %d\">\n"
                  "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                  "<text x=\"%d\" y=\"28\" text-anchor=\"middle\" font-family=\"sans-serif\" "
                  "font-size=\"15\" fill=\"#111\">",
                  W, H, W, H, (LEFT + RIGHT) / 2);
    xml_text(&sb, title ? title : "");
    kn__sb_printf(&sb, "</text>\n");
    static const char *loss_color[] = {"#1f77b4"}, *loss_name[] = {"train loss"};
    static const char *acc_color[] = {"#ff7f0e", "#2ca02c"},
                      *acc_name[] = {"train acc", "test acc"};
    draw_axes(&sb, &loss, "loss");
    draw_series(&sb, &loss, rows, n, offsetof(kiln_epoch_row, train_loss), loss_color[0]);
    static const size_t loss_field[] = {offsetof(kiln_epoch_row, train_loss)};
    static const size_t acc_field[] = {offsetof(kiln_epoch_row, train_acc),
                                       offsetof(kiln_epoch_row, test_acc)};
    draw_legend(&sb, &loss, rows, n, loss_field, 1, loss_name, loss_color);
    draw_axes(&sb, &acc, "accuracy");
    draw_series(&sb, &acc, rows, n, offsetof(kiln_epoch_row, train_acc), acc_color[0]);
    draw_series(&sb, &acc, rows, n, offsetof(kiln_epoch_row, test_acc), acc_color[1]);
    draw_legend(&sb, &acc, rows, n, acc_field, 2, acc_name, acc_color);
    kn__sb_printf(&sb,
                  "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-family=\"sans-serif\" "
                  "font-size=\"12\" fill=\"#333\">epoch</text>\n</svg>\n",
                  (LEFT + RIGHT) / 2, 548);
    return kiln_write_file("plot", path, &sb);
}

/* -------------------------------------------------------------- gnuplot */
int kiln_have_gnuplot(void)
{
    const char *path = getenv("PATH");
    if (!path) return 0;
    char dir[4096];
    while (*path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && n < sizeof dir - 16) {
            snprintf(dir, sizeof dir, "%.*s/gnuplot", (int)n, path);
            struct stat st;
            if (!stat(dir, &st) && S_ISREG(st.st_mode) && !access(dir, X_OK)) return 1;
        }
        path += n;
        if (*path == ':') path++;
    }
    return 0;
}

/* Runs one gnuplot script writing `out` with `terminal`; true on success. */
static bool run_gnuplot(const char *terminal, const char *out, const char *title,
                        const kiln_epoch_row *rows, int n)
{
    char script[] = "/tmp/kiln-plot-XXXXXX";
    const char *tmpdir = getenv("TMPDIR");
    char script_path[4096];
    if (tmpdir && *tmpdir && strlen(tmpdir) < 4000 && !strpbrk(tmpdir, "'\"\\$`"))
        snprintf(script_path, sizeof script_path, "%s/kiln-plot-XXXXXX", tmpdir);
    else
        snprintf(script_path, sizeof script_path, "%s", script);
    int fd = mkstemp(script_path);
    if (fd < 0) return false;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(script_path);
        return false;
    }
    fprintf(f, "set terminal %s size 900,640\nset output '%s'\n", terminal, out);
    fprintf(f, "$metrics << EOD\n");
    for (int i = 0; i < n; i++)
        fprintf(f, "%lld %.9g %.9g %.9g\n", (long long)rows[i].epoch, rows[i].train_loss,
                rows[i].train_acc, rows[i].test_acc);
    fprintf(f, "EOD\n");
    fprintf(f, "set multiplot layout 2,1 title '");
    for (const char *c = title; c && *c; c++)
        if (*c != '\'' && (unsigned char)*c >= 0x20) fputc(*c, f);
    fprintf(f,
            "'\nset grid\nset key top right box opaque\nset xlabel 'epoch'\n"
            "%sset ylabel 'loss'\n"
            "plot $metrics using 1:2 with linespoints lw 2 pt 7 title 'train loss'\n"
            "set ylabel 'accuracy'\nset key bottom right box opaque\n",
            n <= 20 ? "set xtics 1\n" : "");
    fprintf(f, "plot $metrics using 1:3 with linespoints lw 2 pt 7 title 'train acc', "
               "$metrics using 1:4 with linespoints lw 2 pt 7 title 'test acc'\n"
               "unset multiplot\n");
    bool ok = fclose(f) == 0;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "gnuplot '%s' >/dev/null 2>&1", script_path);
    struct stat st;
    ok = ok && system(cmd) == 0 && !stat(out, &st) && st.st_size > 0;
    unlink(script_path);
    return ok;
}

kn_status kiln_plot_gnuplot(const char *path, const char *title, const kiln_epoch_row *rows, int n)
{
    if (!kiln_have_gnuplot()) return kn__error(KN_ERR_IO, "plot: gnuplot is not on PATH");
    if (strpbrk(path, "'\n"))
        return kn__error(KN_ERR_ARG, "plot: '%s': gnuplot cannot take a quote in the path", path);
    size_t len = strlen(path) + 16;
    char *tmp = malloc(len);
    if (!tmp) return kn__error(KN_ERR_NOMEM, "plot: out of memory");
    snprintf(tmp, len, "%s.tmp%ld", path, (long)getpid());
    bool ok =
        run_gnuplot("pngcairo", tmp, title, rows, n) || run_gnuplot("png", tmp, title, rows, n);
    if (ok && rename(tmp, path) != 0) ok = false;
    unlink(tmp);
    free(tmp);
    return ok ? KN_OK : kn__error(KN_ERR_IO, "plot: gnuplot could not write '%s'", path);
}
