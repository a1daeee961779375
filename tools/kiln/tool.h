/* tool.h — what the parts of the `kiln` command share: the train
 * subcommand, its progress display and its plots. Relies on the public API
 * and src/io/json.h (string builder, atomic file writes). */
#ifndef KILN_TOOL_H
#define KILN_TOOL_H

#include <kiln.h>

#include <stdio.h>

/* `kiln train ...`: argv[0] is "train". Returns the exit status: 0, 1 for
 * a runtime error, 2 for a usage error (one line on stderr). */
int kiln_train(int argc, char **argv);

/* `kiln run|bench|convert ...` on ONNX models (run.c); argv[0] is the
 * subcommand; same exit statuses. */
int kiln_run(int argc, char **argv);
int kiln_bench(int argc, char **argv);
int kiln_convert(int argc, char **argv);

/* Seconds on a monotonic clock. */
double kiln_now(void);

/* ---- progress of one epoch on stdout: on a terminal a bar redrawn in
 * place with \r (items/s, ETA, running loss); otherwise a plain line at
 * every quarter of the epoch. */
typedef struct kiln_progress {
    char label[64];
    int64_t total_batches;
    double t0, last_draw;
    int next_quarter; /* plain mode: the next quarter to print (1..3) */
    int tty;
    int active; /* the bar is on screen */
} kiln_progress;
void kiln_progress_start(kiln_progress *p, const char *label, int64_t total_batches);
/* After batch `batches` (1-based) with `items` samples seen in total. */
void kiln_progress_update(kiln_progress *p, int64_t batches, int64_t items, double loss);
/* Erases the bar (terminal mode). */
void kiln_progress_end(kiln_progress *p);

/* Writes sb's text to path atomically with the usual file mode (umask),
 * then frees sb. `who` names the writer in errors. */
struct kn_strbuf;
kn_status kiln_write_file(const char *who, const char *path, struct kn_strbuf *sb);

/* ---- per-epoch metrics and their plots */
typedef struct kiln_epoch_row {
    int64_t epoch;
    double train_loss, train_acc, test_acc, lr, seconds;
} kiln_epoch_row;

/* The CSV (epoch,train_loss,train_acc,test_acc,lr,seconds), atomically. */
kn_status kiln_write_csv(const char *path, const kiln_epoch_row *rows, int n);
/* SVG with two panels (train loss; train and test accuracy per epoch). */
kn_status kiln_plot_svg(const char *path, const char *title, const kiln_epoch_row *rows, int n);
/* True when gnuplot is an executable file on PATH. */
int kiln_have_gnuplot(void);
/* PNG through gnuplot (terminal pngcairo, else png); an error if gnuplot is
 * missing or fails, and nothing is written then. */
kn_status kiln_plot_gnuplot(const char *path, const char *title, const kiln_epoch_row *rows, int n);

#endif
