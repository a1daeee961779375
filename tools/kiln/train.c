/* train.c — `kiln train`: trains a model of the zoo (kn_model_new) on
 * MNIST, Fashion-MNIST or CIFAR with the data loader, an optimizer stepped
 * by kn_trainer under a per-step LR schedule, and reports per epoch (line,
 * CSV, plot). With --checkpoint it saves parameters + optimizer state and a
 * state.json after every epoch; --resume replays the rest of the run bit
 * for bit: the loader order comes from (seed, epoch) and the global RNG is
 * re-seeded with seed + epoch at the start of every epoch.
 * Relies on the public API and src/io/json.h (JSON reader, atomic writes). */
#include "tool.h"

#include "io/json.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { EXIT_USAGE = 2, EXIT_RUNTIME = 1, PATH_LEN = 4096 };

/* One line on stderr, "kiln train: ...". Returns code. */
static int errorf(int code, const char *fmt, ...) KN_PRINTF(2, 3);
static int errorf(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("kiln train: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

/* ============================================================== options */
typedef enum opt_kind { STR, INT, REAL, FLAG } opt_kind;
typedef enum opt_id {
    O_MODEL,
    O_DATA,
    O_DATASET,
    O_EPOCHS,
    O_BATCH,
    O_OPTIMIZER,
    O_LR,
    O_MOMENTUM,
    O_WD,
    O_SCHEDULE,
    O_HYBRIDIZE,
    O_SEED,
    O_THREADS,
    O_WORKERS,
    O_CHECKPOINT,
    O_RESUME,
    O_METRICS,
    O_PLOT,
    O_LIMIT,
    O_STOP_AFTER,
    O_QUIET,
    O_COUNT
} opt_id;
static const struct opt_def {
    const char *name, *meta;
    opt_kind kind;
    double lo, hi;
    bool lo_open; /* lo itself is not allowed */
    const char *help;
} opt_defs[O_COUNT] = {
    [O_MODEL] = {"--model", "NAME", STR, 0, 0, 0,
                 "a model of the zoo: mlp, lenet, resnet18, ... (kiln info lists them)"},
    [O_DATA] = {"--data", "DIR", STR, 0, 0, 0,
                "the dataset's files: MNIST/Fashion-MNIST IDX (.gz or not), CIFAR binary"},
    [O_DATASET] = {"--dataset", "NAME", STR, 0, 0, 0,
                   "fashion-mnist, mnist, cifar10, cifar100 (default: guessed from DIR)"},
    [O_EPOCHS] = {"--epochs", "N", INT, 1, 100000, 0, "epochs to train (default 10)"},
    [O_BATCH] = {"--batch-size", "B", INT, 1, 1 << 20, 0, "samples per step (default 128)"},
    [O_OPTIMIZER] = {"--optimizer", "NAME", STR, 0, 0, 0,
                     "sgd, adam, adamw, rmsprop, adagrad, lamb (default sgd)"},
    [O_LR] = {"--lr", "X", REAL, 0, 100, 1,
              "initial learning rate (default 0.1 for sgd, 0.01 adagrad, 0.001 others)"},
    [O_MOMENTUM] = {"--momentum", "X", REAL, 0, 1, 0,
                    "sgd and rmsprop only (default 0.9 for sgd, 0 rmsprop)"},
    [O_WD] = {"--weight-decay", "X", REAL, 0, 10, 0,
              "weight decay (default 0; 0.01 for adamw and lamb)"},
    [O_SCHEDULE] = {"--schedule", "NAME", STR, 0, 0, 0,
                    "cosine, step (x0.1 after each third), const, onecycle; per step over the "
                    "whole run (default cosine)"},
    [O_HYBRIDIZE] = {"--hybridize", NULL, FLAG, 0, 0, 0, "run the model as a compiled graph"},
    [O_SEED] = {"--seed", "S", INT, 0, 9007199254740992.0, 0,
                "seeds parameters, data order, augmentation, dropout (default 1)"},
    [O_THREADS] = {"--threads", "T", INT, 1, 1024, 0,
                   "compute threads (default: KILN_NUM_THREADS or the cores)"},
    [O_WORKERS] = {"--workers", "W", INT, 0, 64, 0, "data loader threads (default 2)"},
    [O_CHECKPOINT] = {"--checkpoint", "DIR", STR, 0, 0, 0,
                      "save DIR/last.safetensors and DIR/state.json every epoch"},
    [O_RESUME] = {"--resume", NULL, FLAG, 0, 0, 0,
                  "continue the run saved in --checkpoint DIR at its next epoch"},
    [O_METRICS] =
        {"--metrics", "FILE", STR, 0, 0, 0,
         "per-epoch CSV (default ./kiln-train-metrics.csv, or DIR/metrics.csv with --checkpoint)"},
    [O_PLOT] = {"--plot", "FILE", STR, 0, 0, 0,
                "loss/accuracy plot: FILE.svg drawn by kiln, else a PNG by gnuplot (default: "
                "beside the CSV)"},
    [O_LIMIT] = {"--limit", "N", INT, 1, 9007199254740992.0, 0,
                 "use only the first N training and N test samples"},
    [O_STOP_AFTER] = {"--stop-after", "E", INT, 1, 100000, 0,
                      "stop after epoch E as if interrupted (the schedule still spans --epochs)"},
    [O_QUIET] = {"--quiet", NULL, FLAG, 0, 0, 0,
                 "no header or progress: only the epoch lines and the last line"},
};

typedef struct options {
    bool given[O_COUNT];
    const char *str[O_COUNT];
    double real[O_COUNT];
    int64_t integer[O_COUNT];
} options;

static void print_usage(FILE *f)
{
    fprintf(f, "usage: kiln train --model NAME --data DIR [options]\n"
               "Trains an image classifier of the model zoo and prints one line per epoch:\n"
               "  epoch E/N  train loss L  train acc A  test acc T  S s   (S: training time of the "
               "epoch)\n"
               "options:\n");
    for (int i = 0; i < O_COUNT; i++) {
        char head[48];
        const struct opt_def *d = &opt_defs[i];
        snprintf(head, sizeof head, "%s%s%s", d->name, d->meta ? " " : "", d->meta ? d->meta : "");
        fprintf(f, "  %-20s %s\n", head, d->help);
    }
}

static int parse_value(const struct opt_def *d, const char *v, options *o, int id)
{
    char *end = NULL;
    errno = 0;
    double x;
    if (d->kind == INT) {
        long long n = strtoll(v, &end, 10);
        if (!*v || *end || errno || isspace((unsigned char)*v))
            return errorf(EXIT_USAGE, "%s: '%s' is not an integer", d->name, v);
        o->integer[id] = n;
        x = (double)n;
    } else {
        x = strtod(v, &end);
        if (!*v || *end || errno || isspace((unsigned char)*v) || !isfinite(x))
            return errorf(EXIT_USAGE, "%s: '%s' is not a number", d->name, v);
        o->real[id] = x;
    }
    if (x < d->lo || (d->lo_open && x == d->lo) || x > d->hi)
        return errorf(EXIT_USAGE, "%s %s is out of range: expected %c%g, %g]", d->name, v,
                      d->lo_open ? '(' : '[', d->lo, d->hi);
    return 0;
}

/* Returns 0, -1 for --help (usage printed), or an exit status. */
static int parse_args(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_usage(stdout);
            return -1;
        }
        if (strncmp(a, "--", 2))
            return errorf(EXIT_USAGE, "unexpected argument '%s' (see kiln train --help)", a);
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        int id = -1;
        for (int k = 0; k < O_COUNT && id < 0; k++)
            if (strlen(opt_defs[k].name) == len && !strncmp(opt_defs[k].name, a, len)) id = k;
        if (id < 0)
            return errorf(EXIT_USAGE, "unknown option '%.*s' (see kiln train --help)", (int)len, a);
        const struct opt_def *d = &opt_defs[id];
        o->given[id] = true;
        if (d->kind == FLAG) {
            if (eq) return errorf(EXIT_USAGE, "%s takes no value", d->name);
            continue;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v) {
            if (i + 1 >= argc || !strncmp(argv[i + 1], "--", 2))
                return errorf(EXIT_USAGE, "%s needs a value (%s)", d->name, d->meta);
            v = argv[++i];
        }
        if (d->kind == STR) {
            if (!*v) return errorf(EXIT_USAGE, "%s needs a value (%s)", d->name, d->meta);
            o->str[id] = v;
        } else if (parse_value(d, v, o, id)) {
            return EXIT_USAGE;
        }
    }
    return 0;
}

/* ============================================================= datasets */
typedef struct dataset_info {
    const char *name;
    int channels;
    int64_t size, classes;
    float mean[3], std[3];
    bool augment; /* random crop (pad 4) + horizontal flip for training */
} dataset_info;
static const dataset_info datasets[] = {
    {"fashion-mnist", 1, 28, 10, {0.2860f}, {0.3530f}, false},
    {"mnist", 1, 28, 10, {0.1307f}, {0.3081f}, false},
    {"cifar10", 3, 32, 10, {0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}, true},
    {"cifar100", 3, 32, 100, {0.5071f, 0.4865f, 0.4409f}, {0.2673f, 0.2564f, 0.2762f}, true},
};
enum { N_DATASETS = sizeof datasets / sizeof datasets[0] };

static const char *const optimizer_names[] = {"sgd", "adam", "adamw", "rmsprop", "adagrad", "lamb"};
static const kn_optim_kind optimizer_kinds[] = {KN_OPTIM_SGD,     KN_OPTIM_ADAM,    KN_OPTIM_ADAMW,
                                                KN_OPTIM_RMSPROP, KN_OPTIM_ADAGRAD, KN_OPTIM_LAMB};
static const char *const schedule_names[] = {"cosine", "step", "const", "onecycle"};

static int find_name(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

/* ============================================================== the run */
struct run {
    options o;
    const char *model_name;
    const dataset_info *data;
    bool data_guessed;
    int optimizer, schedule;
    int64_t epochs, batch, state_epochs;
    uint64_t seed;
    bool quiet;

    kn_dataset *train_full, *test_full, *train_ds, *test_ds;
    kn_transform *train_tf, *test_tf;
    kn_loader *train_ld, *test_ld;
    kn_block *model;
    kn_tensor **params;
    int n_params;
    kn_optimizer *opt;
    kn_trainer *trainer;
    kn_train_step *step; /* forward + loss + backward + update (one graph when hybridized) */
    kn_metric *train_acc, *test_acc;
    kn_tensor_map *saved; /* model parameters + state, and the epoch counter */
    kn_tensor *epoch_counter;

    kiln_epoch_row *rows;
    int n_rows;
    char csv[PATH_LEN], plot[PATH_LEN], ckpt[PATH_LEN], state[PATH_LEN], title[256];
    bool plot_svg, plot_fell_back;
};

static void run_free(struct run *r)
{
    kn_train_step_free(r->step);
    kn_trainer_free(r->trainer);
    kn_optimizer_free(r->opt);
    for (int i = 0; i < r->n_params; i++)
        kn_tensor_unref(r->params[i]);
    free(r->params);
    kn_tensor_map_free(r->saved);
    kn_tensor_unref(r->epoch_counter);
    kn_block_free(r->model);
    kn_metric_free(r->train_acc);
    kn_metric_free(r->test_acc);
    kn_loader_free(r->train_ld);
    kn_loader_free(r->test_ld);
    if (r->train_ds != r->train_full) kn_dataset_free(r->train_ds);
    if (r->test_ds != r->test_full) kn_dataset_free(r->test_ds);
    kn_dataset_free(r->train_full);
    kn_dataset_free(r->test_full);
    kn_transform_free(r->train_tf);
    kn_transform_free(r->test_tf);
    free(r->rows);
}

static bool is_file(const char *dir, const char *name)
{
    char p[PATH_LEN];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return !stat(p, &st) && S_ISREG(st.st_mode);
}

static bool contains_nocase(const char *s, const char *word)
{
    for (; *s; s++) {
        size_t i = 0;
        while (word[i] && tolower((unsigned char)s[i]) == word[i])
            i++;
        if (!word[i]) return true;
    }
    return false;
}

/* MNIST or Fashion-MNIST (same file names): by the directory's name, else
 * by the mean pixel of the first training images (0.13 vs 0.29). */
static const dataset_info *guess_idx(const char *dir, kn_dataset *train)
{
    if (contains_nocase(dir, "fashion")) return &datasets[0];
    if (contains_nocase(dir, "mnist")) return &datasets[1];
    double sum = 0;
    int64_t count = 0, n = kn_dataset_len(train) < 256 ? kn_dataset_len(train) : 256;
    for (int64_t i = 0; i < n; i++) {
        kn_tensor *x = NULL, *y = NULL;
        if (kn_dataset_get(train, i, &x, &y)) break;
        int64_t m = kn_tensor_numel(x);
        float *px = m > 0 ? malloc((size_t)m * sizeof *px) : NULL;
        if (px && !kn_tensor_copy_to(x, KN_F32, px, (size_t)m * sizeof *px)) {
            double v = 0;
            for (int64_t k = 0; k < m; k++)
                v += px[k];
            sum += v / (double)m, count++;
        }
        free(px);
        kn_tensor_unref(x), kn_tensor_unref(y);
    }
    kn_clear_error();
    return count && sum / (double)count / 255.0 > 0.2 ? &datasets[0] : &datasets[1];
}

static kn_status first_n_get(void *user, int64_t index, kn_tensor **x, kn_tensor **y)
{
    return kn_dataset_get(user, index, x, y);
}

/* The first n samples of ds (ds itself when it has no more). */
static kn_dataset *first_n(kn_dataset *ds, int64_t n)
{
    if (n <= 0 || n >= kn_dataset_len(ds)) return ds;
    return kn_dataset_new(n, first_n_get, NULL, ds);
}

static int open_data(struct run *r)
{
    const char *dir = r->o.str[O_DATA];
    struct stat st;
    if (stat(dir, &st) || !S_ISDIR(st.st_mode))
        return errorf(EXIT_RUNTIME, "--data %s: no such directory", dir);
    const dataset_info *d = r->data;
    bool idx =
        is_file(dir, "train-images-idx3-ubyte") || is_file(dir, "train-images-idx3-ubyte.gz");
    if (!d) {
        if (idx)
            d = NULL; /* MNIST or Fashion-MNIST: decided below */
        else if (is_file(dir, "data_batch_1.bin") ||
                 is_file(dir, "cifar-10-batches-bin/data_batch_1.bin"))
            d = &datasets[2];
        else if (is_file(dir, "train.bin") || is_file(dir, "cifar-100-binary/train.bin"))
            d = &datasets[3];
        else
            return errorf(EXIT_RUNTIME,
                          "cannot tell the dataset in %s: no train-images-idx3-ubyte[.gz] "
                          "(MNIST, Fashion-MNIST), data_batch_1.bin (CIFAR-10) or train.bin "
                          "(CIFAR-100); name it with --dataset",
                          dir);
        r->data_guessed = true;
    }
    bool cifar = d && d->channels == 3;
    if (!cifar) {
        r->train_full = kn_dataset_mnist(dir, "train");
        r->test_full = r->train_full ? kn_dataset_mnist(dir, "test") : NULL;
        if (r->train_full && !d) d = guess_idx(dir, r->train_full);
    } else if (d == &datasets[2]) {
        r->train_full = kn_dataset_cifar10(dir, true);
        r->test_full = r->train_full ? kn_dataset_cifar10(dir, false) : NULL;
    } else {
        r->train_full = kn_dataset_cifar100(dir, true, true);
        r->test_full = r->train_full ? kn_dataset_cifar100(dir, false, true) : NULL;
    }
    if (!r->test_full)
        return errorf(EXIT_RUNTIME, "%s data in %s: %s", d ? d->name : "MNIST", dir,
                      kn_last_error());
    r->data = d;
    int64_t limit = r->o.given[O_LIMIT] ? r->o.integer[O_LIMIT] : 0;
    r->train_ds = first_n(r->train_full, limit);
    r->test_ds = r->train_ds ? first_n(r->test_full, limit) : NULL;
    if (!r->test_ds) return errorf(EXIT_RUNTIME, "--limit: %s", kn_last_error());
    if (kn_dataset_len(r->train_ds) == 0 || kn_dataset_len(r->test_ds) == 0)
        return errorf(EXIT_RUNTIME, "%s in %s has no samples", d->name, dir);

    /* transforms: (augment on u8), to float, normalize */
    r->train_tf = kn_transform_new();
    r->test_tf = kn_transform_new();
    kn_status s = r->train_tf && r->test_tf ? KN_OK : kn_last_status();
    if (!s && d->augment) s = kn_transform_add_random_crop(r->train_tf, d->size, d->size, 4);
    if (!s && d->augment) s = kn_transform_add_hflip(r->train_tf, 0.5);
    for (int k = 0; k < 2 && !s; k++) {
        kn_transform *t = k ? r->test_tf : r->train_tf;
        s = kn_transform_add_to_float(t);
        if (!s) s = kn_transform_add_normalize(t, d->channels, d->mean, d->std);
    }
    if (s) return errorf(EXIT_RUNTIME, "transforms: %s", kn_last_error());

    int workers = r->o.given[O_WORKERS] ? (int)r->o.integer[O_WORKERS] : 2;
    r->train_ld = kn_loader_new(r->train_ds, r->batch, true, false, r->seed, workers, 0);
    r->test_ld =
        r->train_ld ? kn_loader_new(r->test_ds, r->batch, false, false, r->seed, workers, 0) : NULL;
    if (!r->test_ld || kn_loader_set_transform(r->train_ld, r->train_tf) ||
        kn_loader_set_transform(r->test_ld, r->test_tf))
        return errorf(EXIT_RUNTIME, "loader: %s", kn_last_error());
    return 0;
}

/* ================================================= model and optimizer */
static int make_model(struct run *r)
{
    const dataset_info *d = r->data;
    kn_model_config cfg = {.num_classes = d->classes,
                           .in_channels = d->channels,
                           .image_size = d->size,
                           .cifar_stem = d->size <= 64};
    kn_manual_seed(r->seed);
    r->model = kn_model_new(r->model_name, &cfg);
    if (!r->model) return errorf(EXIT_RUNTIME, "model %s: %s", r->model_name, kn_last_error());
    int64_t shape[4] = {r->batch, d->channels, d->size, d->size};
    kn_tensor *example = kn_tensor_symbolic(KN_F32, 4, shape);
    kn_status s = example ? kn_block_init_shapes(r->model, 1, &example) : kn_last_status();
    kn_tensor_unref(example);
    if (s)
        return errorf(EXIT_RUNTIME, "model %s on %s images: %s", r->model_name, d->name,
                      kn_last_error());
    if (r->o.given[O_HYBRIDIZE] && kn_block_hybridize(r->model, KN_HYBRIDIZE_ON))
        return errorf(EXIT_RUNTIME, "--hybridize: %s", kn_last_error());

    int n = kn_block_trainable_params(r->model, 0, NULL);
    if (n < 0) return errorf(EXIT_RUNTIME, "model %s: %s", r->model_name, kn_last_error());
    if (n == 0) return errorf(EXIT_RUNTIME, "model %s has no trainable parameters", r->model_name);
    r->params = calloc((size_t)n, sizeof *r->params);
    if (!r->params) return errorf(EXIT_RUNTIME, "out of memory");
    if (kn_block_trainable_params(r->model, n, r->params) != n)
        return errorf(EXIT_RUNTIME, "model %s: %s", r->model_name, kn_last_error());
    for (int i = 0; i < n; i++)
        kn_tensor_ref(r->params[i]);
    r->n_params = n;

    kn_optim_kind kind = optimizer_kinds[r->optimizer];
    kn_optim_config oc = kn_optim_defaults(kind);
    if (r->o.given[O_LR])
        oc.lr = r->o.real[O_LR];
    else
        oc.lr = kind == KN_OPTIM_SGD ? 0.1 : kind == KN_OPTIM_ADAGRAD ? 0.01 : 0.001;
    if (kind == KN_OPTIM_SGD) oc.momentum = 0.9;
    if (r->o.given[O_MOMENTUM]) oc.momentum = r->o.real[O_MOMENTUM];
    if (r->o.given[O_WD]) oc.weight_decay = r->o.real[O_WD];
    r->opt = kn_optimizer_new(kind, &oc);
    if (!r->opt || kn_optimizer_add_group(r->opt, n, r->params, NULL))
        return errorf(EXIT_RUNTIME, "--optimizer %s: %s", optimizer_names[r->optimizer],
                      kn_last_error());

    int64_t steps = kn_loader_len(r->train_ld) * r->epochs;
    kn_lr_schedule sched;
    switch (r->schedule) {
    case 0:
        sched = kn_lr_schedule_defaults(KN_LR_COSINE);
        sched.t_max = steps;
        break;
    case 1:
        sched = kn_lr_schedule_defaults(KN_LR_STEP);
        sched.step_size = steps / 3 > 0 ? steps / 3 : 1;
        break;
    case 2:
        sched = kn_lr_schedule_defaults(KN_LR_CONSTANT);
        break;
    default:
        sched = kn_lr_schedule_defaults(KN_LR_ONE_CYCLE);
        sched.total_steps = steps;
        break;
    }
    r->trainer = kn_trainer_new(r->opt, &sched, 0);
    r->step = r->trainer ? kn_train_step_new(r->model, r->trainer, NULL, NULL) : NULL;
    r->train_acc = kn_metric_new(KN_METRIC_ACCURACY, NULL);
    r->test_acc = kn_metric_new(KN_METRIC_ACCURACY, NULL);
    if (!r->trainer || !r->step || !r->train_acc || !r->test_acc)
        return errorf(EXIT_RUNTIME, "trainer: %s", kn_last_error());

    /* what a checkpoint holds besides the optimizer: every parameter and
     * state tensor of the model, and the number of epochs done */
    r->saved = kn_block_param_map(r->model);
    r->epoch_counter = kn_tensor_scalar(KN_I64, 0);
    if (!r->saved || !r->epoch_counter ||
        kn_tensor_map_set(r->saved, "kiln_train.epoch", r->epoch_counter))
        return errorf(EXIT_RUNTIME, "checkpoint: %s", kn_last_error());
    return 0;
}

/* ============================================================ training */
/* One optimization step on a batch: the loss and the logits (new
 * reference) come back. Hybridized, kn_train_step runs forward, loss and
 * backward as one compiled graph, then the trainer. */
static kn_status train_step(struct run *r, kn_tensor *x, kn_tensor *y, double *loss,
                            kn_tensor **logits)
{
    kn_tensor *l = NULL;
    kn_status s = kn_train_step_run(r->step, x, y, &l, logits);
    if (!s) s = kn_tensor_item(l, loss);
    kn_tensor_unref(l);
    if (s) {
        kn_optimizer_zero_grad(r->opt);
        kn_tensor_unref(*logits);
        *logits = NULL;
    }
    return s;
}

static int train_epoch(struct run *r, int64_t epoch, kiln_epoch_row *row)
{
    double t0 = kiln_now(), loss_sum = 0;
    int64_t items = 0, batches = 0;
    kn_manual_seed(r->seed + (uint64_t)epoch); /* dropout etc.: replayable per epoch */
    kn_block_set_training(r->model, true);
    kn_metric_reset(r->train_acc);
    if (kn_loader_reset(r->train_ld, (uint64_t)epoch))
        return errorf(EXIT_RUNTIME, "loader: %s", kn_last_error());
    kiln_progress bar;
    char label[64];
    snprintf(label, sizeof label, "epoch %lld/%lld", (long long)epoch, (long long)r->epochs);
    kiln_progress_start(&bar, label, kn_loader_len(r->train_ld));
    for (;;) {
        kn_tensor *x = NULL, *y = NULL, *logits = NULL;
        if (kn_loader_next(r->train_ld, &x, &y)) {
            kiln_progress_end(&bar);
            return errorf(EXIT_RUNTIME, "training data: %s", kn_last_error());
        }
        if (!x) break;
        double loss = 0;
        kn_status s = train_step(r, x, y, &loss, &logits);
        if (!s) s = kn_metric_update(r->train_acc, logits, y);
        int64_t b = kn_tensor_dim(x, 0);
        kn_tensor_unref(x), kn_tensor_unref(y), kn_tensor_unref(logits);
        if (s) {
            kiln_progress_end(&bar);
            return errorf(EXIT_RUNTIME, "epoch %lld, batch %lld: %s", (long long)epoch,
                          (long long)batches + 1, kn_last_error());
        }
        loss_sum += loss * (double)b, items += b, batches++;
        if (!r->quiet) kiln_progress_update(&bar, batches, items, loss_sum / (double)items);
    }
    kiln_progress_end(&bar);
    row->epoch = epoch;
    row->seconds = kiln_now() - t0;
    row->train_loss = items ? loss_sum / (double)items : NAN;
    row->train_acc = kn_metric_value(r->train_acc);
    row->lr = kn_optimizer_lr(r->opt, 0);
    return 0;
}

static int evaluate(struct run *r, double *acc)
{
    kn_block_set_training(r->model, false);
    kn_metric_reset(r->test_acc);
    kn_status s = kn_loader_reset(r->test_ld, 0);
    while (!s) {
        kn_tensor *x = NULL, *y = NULL, *logits = NULL;
        s = kn_loader_next(r->test_ld, &x, &y);
        if (s || !x) break;
        s = kn_block_forward(r->model, 1, &x, 1, &logits);
        if (!s) s = kn_metric_update(r->test_acc, logits, y);
        kn_tensor_unref(x), kn_tensor_unref(y), kn_tensor_unref(logits);
    }
    kn_block_set_training(r->model, true);
    if (s) return errorf(EXIT_RUNTIME, "evaluation: %s", kn_last_error());
    *acc = kn_metric_value(r->test_acc);
    return 0;
}

/* ========================================================== checkpoints */
static void json_number(kn_strbuf *sb, double v)
{
    if (isfinite(v))
        kn__sb_printf(sb, "%.17g", v);
    else
        kn__sb_printf(sb, "null");
}

static kn_status write_state(const struct run *r)
{
    kn_strbuf sb = {0};
    kn__sb_printf(&sb, "{\n  \"format\": \"kiln-train-state\",\n  \"version\": 1,\n");
    kn__sb_printf(&sb, "  \"epoch\": %d,\n  \"epochs\": %lld,\n  \"model\": ", r->n_rows,
                  (long long)r->epochs);
    kn__sb_json_string(&sb, r->model_name);
    kn__sb_printf(&sb, ",\n  \"dataset\": \"%s\",\n  \"optimizer\": \"%s\",\n", r->data->name,
                  optimizer_names[r->optimizer]);
    kn__sb_printf(&sb, "  \"seed\": %llu,\n  \"batch_size\": %lld,\n  \"metrics\": [",
                  (unsigned long long)r->seed, (long long)r->batch);
    for (int i = 0; i < r->n_rows; i++) {
        const kiln_epoch_row *w = &r->rows[i];
        kn__sb_printf(&sb, "%s\n    {\"epoch\": %lld, \"train_loss\": ", i ? "," : "",
                      (long long)w->epoch);
        json_number(&sb, w->train_loss);
        kn__sb_printf(&sb, ", \"train_acc\": ");
        json_number(&sb, w->train_acc);
        kn__sb_printf(&sb, ", \"test_acc\": ");
        json_number(&sb, w->test_acc);
        kn__sb_printf(&sb, ", \"lr\": ");
        json_number(&sb, w->lr);
        kn__sb_printf(&sb, ", \"seconds\": ");
        json_number(&sb, w->seconds);
        kn__sb_printf(&sb, "}");
    }
    kn__sb_printf(&sb, "\n  ]\n}\n");
    return kiln_write_file("state", r->state, &sb);
}

static int save_checkpoint(struct run *r)
{
    if (!r->o.given[O_CHECKPOINT]) return 0;
    kn_status s = kn_tensor_fill_(r->epoch_counter, (double)r->n_rows);
    if (!s) s = kn_checkpoint_save(r->ckpt, r->saved, r->opt);
    mode_t mask = umask(0); /* the writer's temporary file was private */
    umask(mask);
    if (!s) chmod(r->ckpt, 0666 & ~mask);
    if (!s) s = write_state(r);
    return s ? errorf(EXIT_RUNTIME, "checkpoint: %s", kn_last_error()) : 0;
}

static const char *json_str(const kn_json *j, const char *key)
{
    const kn_json *v = kn__json_get(j, key);
    return v && v->type == KN_JSON_STRING ? v->string : NULL;
}

static bool json_int(const kn_json *j, const char *key, int64_t *out)
{
    const kn_json *v = kn__json_get(j, key);
    if (!v || v->type != KN_JSON_NUMBER || !v->is_int) return false;
    *out = v->integer;
    return true;
}

static bool json_real(const kn_json *j, const char *key, double *out)
{
    const kn_json *v = kn__json_get(j, key);
    if (v && v->type == KN_JSON_NULL)
        *out = NAN;
    else if (v && v->type == KN_JSON_NUMBER)
        *out = v->number;
    else
        return false;
    return true;
}

/* Reads state.json: checks it belongs to this run and takes its metrics. */
static int read_state(struct run *r, const kn_json *j, int64_t *done)
{
    const char *dir = r->o.str[O_CHECKPOINT];
    const char *fmt = json_str(j, "format"), *model = json_str(j, "model");
    const char *data = json_str(j, "dataset"), *optim = json_str(j, "optimizer");
    int64_t seed = 0, version = 0;
    const kn_json *metrics = kn__json_get(j, "metrics");
    if (!fmt || strcmp(fmt, "kiln-train-state") || !json_int(j, "version", &version) ||
        !json_int(j, "epoch", done) || *done < 0 || !json_int(j, "seed", &seed) ||
        !json_int(j, "epochs", &r->state_epochs) || !model || !data || !optim || !metrics ||
        metrics->type != KN_JSON_ARRAY || metrics->n != *done)
        return errorf(EXIT_RUNTIME, "--resume: %s is not a kiln train state (or is damaged)",
                      r->state);
    if (version != 1)
        return errorf(EXIT_RUNTIME, "--resume: %s has version %lld, this kiln reads version 1",
                      r->state, (long long)version);
    if (strcmp(model, r->model_name))
        return errorf(EXIT_RUNTIME, "--resume: the checkpoint in %s is of model %s, not %s", dir,
                      model, r->model_name);
    if (strcmp(optim, optimizer_names[r->optimizer]))
        return errorf(EXIT_RUNTIME,
                      "--resume: the checkpoint in %s was trained with --optimizer %s, not %s", dir,
                      optim, optimizer_names[r->optimizer]);
    if (r->o.given[O_SEED] && (uint64_t)seed != r->seed)
        return errorf(EXIT_RUNTIME,
                      "--resume: the checkpoint in %s was trained with --seed %lld, not %llu", dir,
                      (long long)seed, (unsigned long long)r->seed);
    if (r->data && strcmp(data, r->data->name))
        return errorf(EXIT_RUNTIME, "--resume: the checkpoint in %s was trained on %s, not %s", dir,
                      data, r->data->name);
    int i = 0;
    for (i = 0; i < N_DATASETS && strcmp(datasets[i].name, data); i++) {
    }
    if (i == N_DATASETS)
        return errorf(EXIT_RUNTIME, "--resume: %s names an unknown dataset '%s'", r->state, data);
    r->data = &datasets[i], r->data_guessed = false;
    r->seed = (uint64_t)seed;
    r->rows = calloc((size_t)*done + (size_t)r->epochs + 1, sizeof *r->rows);
    if (!r->rows) return errorf(EXIT_RUNTIME, "out of memory");
    for (int k = 0; k < metrics->n; k++) {
        const kn_json *m = &metrics->items[k];
        kiln_epoch_row *w = &r->rows[k];
        if (m->type != KN_JSON_OBJECT || !json_int(m, "epoch", &w->epoch) || w->epoch != k + 1 ||
            !json_real(m, "train_loss", &w->train_loss) ||
            !json_real(m, "train_acc", &w->train_acc) || !json_real(m, "test_acc", &w->test_acc) ||
            !json_real(m, "lr", &w->lr) || !json_real(m, "seconds", &w->seconds))
            return errorf(EXIT_RUNTIME, "--resume: %s: metrics entry %d is damaged", r->state,
                          k + 1);
    }
    r->n_rows = metrics->n;
    return 0;
}

/* Reads and checks state.json before the data is opened (it names the
 * dataset and seed); *done gets the epochs done. */
static int load_state(struct run *r, int64_t *done)
{
    char *text = NULL;
    size_t len = 0;
    if (kn__read_file("state", r->state, (size_t)64 << 20, &text, &len))
        return errorf(EXIT_RUNTIME, "--resume: no run to continue in %s: %s",
                      r->o.str[O_CHECKPOINT], kn_last_error());
    kn_json *j = kn__json_parse(r->state, text, len);
    kn_free(text);
    if (!j) return errorf(EXIT_RUNTIME, "--resume: %s", kn_last_error());
    int rc = read_state(r, j, done);
    kn__json_free(j);
    return rc;
}

static int load_checkpoint(struct run *r, int64_t done)
{
    if (kn_checkpoint_load(r->ckpt, r->saved, r->opt))
        return errorf(EXIT_RUNTIME, "--resume: %s", kn_last_error());
    double stored = -1;
    kn_tensor_item(r->epoch_counter, &stored);
    if (stored != (double)done)
        return errorf(EXIT_RUNTIME, "--resume: %s holds epoch %.0f but %s says %lld", r->ckpt,
                      stored, r->state, (long long)done);
    return 0;
}

/* ======================================================== files, paths */
static int make_dirs(const char *dir)
{
    char p[PATH_LEN];
    snprintf(p, sizeof p, "%s", dir);
    for (char *c = p + 1;; c++) {
        if (*c != '/' && *c) continue;
        char keep = *c;
        *c = 0;
        struct stat st;
        if (stat(p, &st) && mkdir(p, 0777) && errno != EEXIST)
            return errorf(EXIT_RUNTIME, "--checkpoint %s: cannot create %s: %s", dir, p,
                          strerror(errno));
        *c = keep;
        if (!keep) break;
    }
    struct stat st;
    if (stat(dir, &st) || !S_ISDIR(st.st_mode))
        return errorf(EXIT_RUNTIME, "--checkpoint %s: not a directory", dir);
    return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcasecmp(s + n - m, suffix);
}

/* path without its extension (after the last '/'), then ext */
static void replace_ext(char *out, size_t size, const char *path, const char *ext)
{
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    size_t n = dot && (!slash || dot > slash) && dot != path ? (size_t)(dot - path) : strlen(path);
    snprintf(out, size, "%.*s%s", (int)n, path, ext);
}

static int writable_dir_of(const char *path, const char *opt)
{
    char dir[PATH_LEN];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = 0;
    else
        *slash = 0;
    struct stat st;
    if (stat(dir, &st) || !S_ISDIR(st.st_mode))
        return errorf(EXIT_RUNTIME, "%s %s: no directory %s", opt, path, dir);
    if (access(dir, W_OK)) return errorf(EXIT_RUNTIME, "%s %s: %s is not writable", opt, path, dir);
    return 0;
}

static int set_paths(struct run *r)
{
    const char *ck = r->o.str[O_CHECKPOINT];
    if (ck) {
        if (strlen(ck) > PATH_LEN - 64)
            return errorf(EXIT_USAGE, "--checkpoint: the path is too long");
        snprintf(r->ckpt, sizeof r->ckpt, "%s/last.safetensors", ck);
        snprintf(r->state, sizeof r->state, "%s/state.json", ck);
    }
    const char *csv = r->o.str[O_METRICS], *plot = r->o.str[O_PLOT];
    if ((csv && strlen(csv) > PATH_LEN - 64) || (plot && strlen(plot) > PATH_LEN - 64))
        return errorf(EXIT_USAGE, "--metrics/--plot: the path is too long");
    if (csv)
        snprintf(r->csv, sizeof r->csv, "%s", csv);
    else if (ck)
        snprintf(r->csv, sizeof r->csv, "%s/metrics.csv", ck);
    else
        snprintf(r->csv, sizeof r->csv, "kiln-train-metrics.csv");
    bool gnuplot = kiln_have_gnuplot();
    if (plot && ends_with(plot, ".svg")) {
        snprintf(r->plot, sizeof r->plot, "%s", plot);
        r->plot_svg = true;
    } else if (plot && gnuplot) {
        snprintf(r->plot, sizeof r->plot, "%s", plot);
    } else if (plot) { /* wanted a PNG, but there is no gnuplot */
        replace_ext(r->plot, sizeof r->plot, plot, ".svg");
        r->plot_svg = r->plot_fell_back = true;
    } else {
        replace_ext(r->plot, sizeof r->plot, r->csv, gnuplot ? ".png" : ".svg");
        r->plot_svg = !gnuplot;
    }
    return 0;
}

static int write_reports(struct run *r)
{
    if (kiln_write_csv(r->csv, r->rows, r->n_rows))
        return errorf(EXIT_RUNTIME, "--metrics: %s", kn_last_error());
    if (r->n_rows == 0) return 0; /* nothing to plot yet */
    if (!r->plot_svg && kiln_plot_gnuplot(r->plot, r->title, r->rows, r->n_rows)) {
        /* gnuplot failed: keep the run going with the SVG writer */
        char svg[PATH_LEN];
        replace_ext(svg, sizeof svg, r->plot, ".svg");
        if (!r->quiet) printf("(%s; drawing %s instead)\n", kn_last_error(), svg);
        snprintf(r->plot, sizeof r->plot, "%s", svg);
        r->plot_svg = true;
    }
    if (r->plot_svg && kiln_plot_svg(r->plot, r->title, r->rows, r->n_rows))
        return errorf(EXIT_RUNTIME, "--plot: %s", kn_last_error());
    return 0;
}

/* ============================================================ checks */
static int check_names(struct run *r)
{
    const options *o = &r->o;
    const char *const *models = kn_model_names();
    if (!o->given[O_MODEL] || !o->given[O_DATA]) {
        char list[512] = "";
        for (int i = 0; models && models[i]; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                     models[i]);
        return o->given[O_MODEL]
                   ? errorf(EXIT_USAGE, "--data DIR is required (see kiln train --help)")
                   : errorf(EXIT_USAGE, "--model NAME is required (one of: %s)", list);
    }
    r->model_name = o->str[O_MODEL];
    bool known = false;
    for (int i = 0; models && models[i] && !known; i++)
        known = !strcmp(models[i], r->model_name);
    if (!known) {
        char list[512] = "";
        for (int i = 0; models && models[i]; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                     models[i]);
        return errorf(EXIT_USAGE, "unknown model '%s' (known: %s)", r->model_name, list);
    }
    if (o->given[O_DATASET]) {
        for (int i = 0; i < N_DATASETS && !r->data; i++)
            if (!strcmp(datasets[i].name, o->str[O_DATASET])) r->data = &datasets[i];
        if (!r->data)
            return errorf(EXIT_USAGE,
                          "unknown dataset '%s' (expected fashion-mnist, mnist, cifar10, cifar100)",
                          o->str[O_DATASET]);
    }
    r->optimizer = o->given[O_OPTIMIZER] ? find_name(o->str[O_OPTIMIZER], optimizer_names, 6) : 0;
    if (r->optimizer < 0)
        return errorf(EXIT_USAGE,
                      "unknown optimizer '%s' (expected sgd, adam, adamw, rmsprop, adagrad, lamb)",
                      o->str[O_OPTIMIZER]);
    r->schedule = o->given[O_SCHEDULE] ? find_name(o->str[O_SCHEDULE], schedule_names, 4) : 0;
    if (r->schedule < 0)
        return errorf(EXIT_USAGE, "unknown schedule '%s' (expected cosine, step, const, onecycle)",
                      o->str[O_SCHEDULE]);
    kn_optim_kind kind = optimizer_kinds[r->optimizer];
    if (o->given[O_MOMENTUM] && kind != KN_OPTIM_SGD && kind != KN_OPTIM_RMSPROP)
        return errorf(EXIT_USAGE, "--momentum applies to sgd and rmsprop, not %s",
                      optimizer_names[r->optimizer]);
    if (o->given[O_RESUME] && !o->given[O_CHECKPOINT])
        return errorf(EXIT_USAGE, "--resume needs --checkpoint DIR");
    r->epochs = o->given[O_EPOCHS] ? o->integer[O_EPOCHS] : 10;
    r->batch = o->given[O_BATCH] ? o->integer[O_BATCH] : 128;
    r->seed = o->given[O_SEED] ? (uint64_t)o->integer[O_SEED] : 1;
    r->quiet = o->given[O_QUIET];
    return 0;
}

/* ================================================================ main */
static void print_header(const struct run *r)
{
    const options *o = &r->o;
    printf("training %s on %s%s: %lld train / %lld test samples, batch %lld, %s lr %g, %s "
           "schedule, %s, %d threads\n",
           r->model_name, r->data->name, r->data_guessed ? " (guessed from the files)" : "",
           (long long)kn_dataset_len(r->train_ds), (long long)kn_dataset_len(r->test_ds),
           (long long)r->batch, optimizer_names[r->optimizer], kn_optimizer_initial_lr(r->opt, 0),
           schedule_names[r->schedule], o->given[O_HYBRIDIZE] ? "hybridized" : "eager",
           kn_get_num_threads());
    fflush(stdout);
}

static int train(struct run *r)
{
    int rc = check_names(r);
    if (!rc) rc = set_paths(r);
    if (rc) return rc;
    if (r->o.given[O_THREADS]) kn_set_num_threads((int)r->o.integer[O_THREADS]);
    int64_t done = 0;
    if (r->o.given[O_RESUME] && (rc = load_state(r, &done))) return rc;
    if ((rc = open_data(r)) || (rc = make_model(r))) return rc;
    if (r->o.given[O_CHECKPOINT] && (rc = make_dirs(r->o.str[O_CHECKPOINT]))) return rc;
    if (r->o.given[O_RESUME] && (rc = load_checkpoint(r, done))) return rc;
    if (!r->rows && !(r->rows = calloc((size_t)r->epochs + 1, sizeof *r->rows)))
        return errorf(EXIT_RUNTIME, "out of memory");
    snprintf(r->title, sizeof r->title, "%s on %s (%s, batch %lld)", r->model_name, r->data->name,
             optimizer_names[r->optimizer], (long long)r->batch);
    if ((rc = writable_dir_of(r->plot, "--plot")) || (rc = write_reports(r))) return rc;
    if (!r->quiet) {
        print_header(r);
        if (r->plot_fell_back) printf("(gnuplot is not installed: the plot will be %s)\n", r->plot);
        if (done) printf("resuming after epoch %lld\n", (long long)done);
        if (done && r->state_epochs != r->epochs)
            printf("note: the checkpoint's run had --epochs %lld: the LR schedule now spans %lld\n",
                   (long long)r->state_epochs, (long long)r->epochs);
    }
    if (done >= r->epochs && !r->quiet)
        printf("nothing to train: the checkpoint has %lld of %lld epochs\n", (long long)done,
               (long long)r->epochs);
    int64_t last = r->epochs;
    if (r->o.given[O_STOP_AFTER] && r->o.integer[O_STOP_AFTER] < last)
        last = r->o.integer[O_STOP_AFTER];
    for (int64_t e = done + 1; e <= last; e++) {
        kiln_epoch_row *row = &r->rows[r->n_rows];
        if ((rc = train_epoch(r, e, row)) || (rc = evaluate(r, &row->test_acc))) return rc;
        r->n_rows++;
        printf("epoch %lld/%lld  train loss %.3f  train acc %.3f  test acc %.3f  %.1f s\n",
               (long long)e, (long long)r->epochs, row->train_loss, row->train_acc, row->test_acc,
               row->seconds);
        fflush(stdout);
        if ((rc = write_reports(r)) || (rc = save_checkpoint(r))) return rc;
    }
    if (last < r->epochs && !r->quiet)
        printf("stopped after epoch %lld of %lld%s\n", (long long)last, (long long)r->epochs,
               r->o.given[O_CHECKPOINT] ? "; continue with --resume" : "");
    printf("metrics: %s  plot: %s\n", r->csv, r->plot);
    return 0;
}

int kiln_train(int argc, char **argv)
{
    struct run r;
    memset(&r, 0, sizeof r);
    int rc = parse_args(argc, argv, &r.o);
    if (rc) return rc < 0 ? 0 : rc;
    rc = train(&r);
    run_free(&r);
    return rc;
}
