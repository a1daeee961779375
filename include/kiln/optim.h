/* kiln/optim.h — optimizers with parameter groups, global-norm gradient
 * clipping, learning-rate schedules, a trainer that steps them, checkpoints
 * (parameters + optimizer state in safetensors) and metrics. Included by
 * kiln.h; the update formulas are PyTorch 1.13's (torch.optim). */
#ifndef KILN_OPTIM_H
#define KILN_OPTIM_H

/* ============================================================ optimizers */
typedef enum kn_optim_kind {
    KN_OPTIM_SGD = 0, /* momentum, dampening, Nesterov; L2 weight decay */
    KN_OPTIM_ADAM,    /* L2 weight decay added to the gradient; amsgrad */
    KN_OPTIM_ADAMW,   /* decoupled weight decay: p *= 1 - lr * wd */
    KN_OPTIM_RMSPROP, /* alpha, momentum, centered */
    KN_OPTIM_ADAGRAD, /* lr_decay, initial_accumulator_value */
    KN_OPTIM_LAMB,    /* Adam moments + weight decay, scaled by ||p|| / ||update|| */
    KN_OPTIM_KIND_COUNT
} kn_optim_kind;

/* Hyper-parameters; each kind reads the fields named beside it. Start from
 * kn_optim_defaults(kind) (PyTorch's defaults; SGD lr 0.01, LAMB as timm's:
 * lr 1e-3, eps 1e-6, weight_decay 0.01) and change what you need. */
typedef struct kn_optim_config {
    double lr;                        /* all */
    double weight_decay;              /* all; decoupled for AdamW, added to the update for LAMB */
    double momentum;                  /* SGD, RMSProp */
    double dampening;                 /* SGD */
    bool nesterov;                    /* SGD: needs momentum > 0 and dampening 0 */
    double beta1, beta2;              /* Adam, AdamW, LAMB */
    double eps;                       /* all but SGD */
    bool amsgrad;                     /* Adam, AdamW */
    bool maximize;                    /* SGD, Adam, AdamW, RMSProp, AdaGrad: ascend */
    double alpha;                     /* RMSProp: smoothing of the squared gradient */
    bool centered;                    /* RMSProp */
    double lr_decay;                  /* AdaGrad */
    double initial_accumulator_value; /* AdaGrad */
    bool bias_correction;             /* LAMB (default true) */
    double max_trust;                 /* LAMB: cap on the trust ratio; 0 = none */
} kn_optim_config;

kn_optim_config kn_optim_defaults(kn_optim_kind kind);
const char *kn_optim_kind_name(kn_optim_kind kind);

typedef struct kn_optimizer kn_optimizer;
/* cfg NULL means kn_optim_defaults(kind); it is the config of groups added
 * without their own. */
kn_optimizer *kn_optimizer_new(kn_optim_kind kind, const kn_optim_config *cfg);
void kn_optimizer_free(kn_optimizer *opt);
/* Adds a group of n parameters (f32 or f64, contiguous leaves; the optimizer
 * takes references) with its own config (NULL: the optimizer's). A tensor
 * may be in one group only. Returns the error and adds nothing on failure. */
kn_status kn_optimizer_add_group(kn_optimizer *opt, int n, kn_tensor *const *params,
                                 const kn_optim_config *cfg);
int kn_optimizer_num_groups(const kn_optimizer *opt);
int kn_optimizer_group_size(const kn_optimizer *opt, int group);
kn_tensor *kn_optimizer_param(const kn_optimizer *opt, int group, int i); /* borrowed */
/* One update of every parameter that has a .grad (those without are skipped,
 * like PyTorch). Writes the parameters in place (bumping their version);
 * records nothing on the tape. On error nothing has changed. */
kn_status kn_optimizer_step(kn_optimizer *opt);
/* Drops every parameter's .grad (PyTorch's set_to_none). */
void kn_optimizer_zero_grad(kn_optimizer *opt);
/* Sets the lr of one group, or of all with group -1. */
kn_status kn_optimizer_set_lr(kn_optimizer *opt, int group, double lr);
double kn_optimizer_lr(const kn_optimizer *opt, int group); /* NaN if no such group */
/* The lr a group started with (what schedules scale). */
double kn_optimizer_initial_lr(const kn_optimizer *opt, int group);
int64_t kn_optimizer_num_steps(const kn_optimizer *opt); /* kn_optimizer_step calls */

/* Optimizer state as named tensors, `prefix` before each name:
 *   "steps" (i64), "<g>.lr", "<g>.initial_lr" (f64),
 *   "<g>.<i>.step" (i64) and "<g>.<i>.<slot>" with slot one of momentum_buffer,
 *   exp_avg, exp_avg_sq, max_exp_avg_sq, square_avg, grad_avg, sum.
 * Save puts references to the live state into m (clone them to keep a
 * snapshot). Load checks every entry against the optimizer's groups first
 * (same kind of slots, shapes and dtypes), then copies: on error nothing
 * has changed. */
kn_status kn_optimizer_state_save(const kn_optimizer *opt, kn_tensor_map *m, const char *prefix);
kn_status kn_optimizer_state_load(kn_optimizer *opt, const kn_tensor_map *m, const char *prefix);

/* Scales the gradients of params so that their global L2 norm is at most
 * max_norm, like torch.nn.utils.clip_grad_norm_ (coefficient max_norm /
 * (norm + 1e-6), capped at 1). Parameters without a grad are skipped.
 * total_norm (may be NULL) receives the norm before clipping. */
kn_status kn_clip_grad_norm(int n, kn_tensor *const *params, double max_norm, double *total_norm);

/* ========================================================= LR schedules
 * lr(step) for a group whose initial lr is base_lr, step = 0, 1, ... (the
 * number of optimizer steps taken so far), as torch.optim.lr_scheduler. */
typedef enum kn_lr_kind {
    KN_LR_CONSTANT = 0,
    KN_LR_STEP,       /* base * gamma^(step / step_size) */
    KN_LR_MULTI_STEP, /* base * gamma^(milestones <= step) */
    KN_LR_COSINE,     /* eta_min + (base - eta_min) (1 + cos(pi step / t_max)) / 2 */
    KN_LR_LINEAR,     /* warm-up: base * factor going start_factor -> end_factor over total_iters */
    KN_LR_ONE_CYCLE,  /* OneCycleLR: max_lr, total_steps, pct_start, div factors */
    KN_LR_KIND_COUNT
} kn_lr_kind;
#define KN_LR_MAX_MILESTONES 16
typedef struct kn_lr_schedule {
    kn_lr_kind kind;
    int64_t step_size; /* STEP */
    double gamma;      /* STEP, MULTI_STEP */
    int n_milestones;  /* MULTI_STEP: increasing steps */
    int64_t milestones[KN_LR_MAX_MILESTONES];
    int64_t t_max;                   /* COSINE */
    double eta_min;                  /* COSINE */
    double start_factor, end_factor; /* LINEAR */
    int64_t total_iters;             /* LINEAR */
    double max_lr;                   /* ONE_CYCLE; 0 means base_lr */
    int64_t total_steps;             /* ONE_CYCLE */
    double pct_start;                /* ONE_CYCLE (0.3) */
    double div_factor;               /* ONE_CYCLE: initial lr = max_lr / div_factor (25) */
    double final_div_factor;         /* ONE_CYCLE: min lr = initial lr / this (1e4) */
    bool anneal_linear;              /* ONE_CYCLE: linear instead of cosine annealing */
    bool three_phase;                /* ONE_CYCLE */
} kn_lr_schedule;
/* A schedule of `kind` with PyTorch's defaults (gamma 0.1, start_factor 1/3,
 * end_factor 1, total_iters 5, pct_start 0.3, div 25, final div 1e4); the
 * other fields (step_size, milestones, t_max, total_steps) must be set. */
kn_lr_schedule kn_lr_schedule_defaults(kn_lr_kind kind);
kn_status kn_lr_schedule_at(const kn_lr_schedule *s, double base_lr, int64_t step, double *lr);

/* ============================================================== trainer
 * Steps an optimizer (borrowed): per call, sets each group's lr from the
 * schedule (if any) at kn_optimizer_num_steps, clips the global gradient
 * norm (if clip_norm > 0), steps and drops the gradients. */
typedef struct kn_trainer kn_trainer;
kn_trainer *kn_trainer_new(kn_optimizer *opt, const kn_lr_schedule *schedule, double clip_norm);
void kn_trainer_free(kn_trainer *t);
kn_status kn_trainer_step(kn_trainer *t);
double kn_trainer_last_grad_norm(const kn_trainer *t); /* NaN before clipping */

/* ========================================================== checkpoints
 * One safetensors file (written atomically) with the tensors of `params`
 * under their names and the optimizer's state (may be NULL) under
 * "optimizer.". Loading copies the stored values into params' tensors (each
 * must be present with the same shape and dtype) and loads the optimizer
 * state: a run resumed from a checkpoint continues bit for bit. */
kn_status kn_checkpoint_save(const char *path, const kn_tensor_map *params,
                             const kn_optimizer *opt);
kn_status kn_checkpoint_load(const char *path, const kn_tensor_map *params, kn_optimizer *opt);

/* ============================================================== metrics
 * Accumulators: update with a batch of predictions and labels, read the
 * value over everything since the last reset (NaN before any sample).
 *   ACCURACY      pred (N.., C) scores (argmax, first on ties) or (N..) class
 *                 ids; label (N..) class ids
 *   TOP_K         pred (N, C) scores, label (N): right when fewer than k
 *                 scores are strictly greater than the label's
 *   CROSS_ENTROPY pred (N, C) probabilities (or logits with from_logits),
 *   PERPLEXITY    label (N): mean of -log(p[label] + 1e-12); perplexity = exp
 *   MAE, RMSE     pred and label with the same number of elements
 *   F1            binary: pred (N) scores, positive when >= threshold, or
 *                 (N, 2) scores; label 0/1. macro: pred (N, C) scores, the
 *                 mean F1 over the classes seen in labels or predictions
 *   MEAN          update(m, values, NULL): running mean of all elements */
typedef enum kn_metric_kind {
    KN_METRIC_ACCURACY = 0,
    KN_METRIC_TOP_K,
    KN_METRIC_CROSS_ENTROPY,
    KN_METRIC_PERPLEXITY,
    KN_METRIC_MAE,
    KN_METRIC_RMSE,
    KN_METRIC_F1,
    KN_METRIC_MEAN,
    KN_METRIC_KIND_COUNT
} kn_metric_kind;
typedef struct kn_metric_config {
    int64_t k;        /* TOP_K (default 5) */
    bool macro;       /* F1: macro average over classes instead of binary */
    double threshold; /* F1 binary with (N) scores (default 0.5) */
    bool from_logits; /* CROSS_ENTROPY, PERPLEXITY: pred are logits */
} kn_metric_config;
typedef struct kn_metric kn_metric;
kn_metric *kn_metric_new(kn_metric_kind kind, const kn_metric_config *cfg); /* cfg may be NULL */
void kn_metric_free(kn_metric *m);
kn_status kn_metric_update(kn_metric *m, const kn_tensor *pred, const kn_tensor *label);
double kn_metric_value(const kn_metric *m);
void kn_metric_reset(kn_metric *m);
const char *kn_metric_name(const kn_metric *m);
int64_t kn_metric_count(const kn_metric *m); /* samples seen since reset */

#endif
