/* schedule.c — learning-rate schedules as pure functions of the step, in
 * the closed forms of torch.optim.lr_scheduler (StepLR, MultiStepLR,
 * CosineAnnealingLR, LinearLR, OneCycleLR; OneCycle's momentum cycling is
 * not done). Relies on src/base only. */
#include "../base/base.h"

#include <math.h>

kn_lr_schedule kn_lr_schedule_defaults(kn_lr_kind kind)
{
    return (kn_lr_schedule){.kind = kind,
                            .gamma = 0.1,
                            .start_factor = 1.0 / 3,
                            .end_factor = 1,
                            .total_iters = 5,
                            .pct_start = 0.3,
                            .div_factor = 25,
                            .final_div_factor = 1e4};
}

static double anneal(const kn_lr_schedule *s, double start, double end, double pct)
{
    if (s->anneal_linear) return (end - start) * pct + start;
    return end + (start - end) / 2.0 * (cos(M_PI * pct) + 1);
}

static kn_status one_cycle(const kn_lr_schedule *s, double base_lr, int64_t step, double *lr)
{
    const char *who = "lr_schedule_at";
    if (s->total_steps < 1)
        return kn__error(KN_ERR_ARG, "%s: total_steps is %lld, expected >= 1", who,
                         (long long)s->total_steps);
    if (!(s->pct_start > 0 && s->pct_start < 1))
        return kn__error(KN_ERR_ARG, "%s: pct_start is %g, expected in (0, 1)", who, s->pct_start);
    if (!(s->div_factor > 0) || !(s->final_div_factor > 0) || !(s->max_lr >= 0))
        return kn__error(KN_ERR_ARG,
                         "%s: div_factor %g, final_div_factor %g and max_lr %g must "
                         "be > 0 (max_lr 0: the base lr)",
                         who, s->div_factor, s->final_div_factor, s->max_lr);
    if (step > s->total_steps)
        return kn__error(KN_ERR_ARG, "%s: step is %lld, past total_steps %lld", who,
                         (long long)step, (long long)s->total_steps);
    double max_lr = s->max_lr > 0 ? s->max_lr : base_lr, initial = max_lr / s->div_factor;
    double min_lr = initial / s->final_div_factor, total = (double)s->total_steps;
    double ends[3], starts[3], stops[3];
    int n = 0;
    ends[n] = s->pct_start * total - 1, starts[n] = initial, stops[n++] = max_lr;
    if (s->three_phase)
        ends[n] = 2 * s->pct_start * total - 2, starts[n] = max_lr, stops[n++] = initial;
    ends[n] = total - 1, starts[n] = s->three_phase ? initial : max_lr, stops[n++] = min_lr;
    double start_step = 0;
    for (int i = 0; i < n; i++) {
        if ((double)step <= ends[i] || i == n - 1) {
            double span = ends[i] - start_step;
            double pct = span != 0 ? ((double)step - start_step) / span : 1;
            *lr = anneal(s, starts[i], stops[i], pct);
            return KN_OK;
        }
        start_step = ends[i];
    }
    return KN_OK; /* not reached */
}

kn_status kn_lr_schedule_at(const kn_lr_schedule *s, double base_lr, int64_t step, double *lr)
{
    const char *who = "lr_schedule_at";
    if (!s || !lr) return kn__error(KN_ERR_ARG, "%s: schedule or lr is NULL", who);
    if (step < 0)
        return kn__error(KN_ERR_ARG, "%s: step is %lld, expected >= 0", who, (long long)step);
    if (!(base_lr >= 0))
        return kn__error(KN_ERR_ARG, "%s: base_lr is %g, expected >= 0", who, base_lr);
    switch (s->kind) {
    case KN_LR_CONSTANT:
        *lr = base_lr;
        return KN_OK;
    case KN_LR_STEP:
        if (s->step_size < 1)
            return kn__error(KN_ERR_ARG, "%s: step_size is %lld, expected >= 1", who,
                             (long long)s->step_size);
        *lr = base_lr * pow(s->gamma, (double)(step / s->step_size));
        return KN_OK;
    case KN_LR_MULTI_STEP: {
        if (s->n_milestones < 0 || s->n_milestones > KN_LR_MAX_MILESTONES)
            return kn__error(KN_ERR_ARG, "%s: n_milestones is %d, expected 0..%d", who,
                             s->n_milestones, KN_LR_MAX_MILESTONES);
        int passed = 0;
        for (int i = 0; i < s->n_milestones; i++) {
            if (s->milestones[i] < 0 || (i > 0 && s->milestones[i] < s->milestones[i - 1]))
                return kn__error(KN_ERR_ARG,
                                 "%s: milestones[%d] is %lld, expected >= 0 and "
                                 "increasing",
                                 who, i, (long long)s->milestones[i]);
            passed += s->milestones[i] <= step;
        }
        *lr = base_lr * pow(s->gamma, passed);
        return KN_OK;
    }
    case KN_LR_COSINE:
        if (s->t_max < 1)
            return kn__error(KN_ERR_ARG, "%s: t_max is %lld, expected >= 1", who,
                             (long long)s->t_max);
        *lr = s->eta_min +
              (base_lr - s->eta_min) * (1 + cos(M_PI * (double)step / (double)s->t_max)) / 2;
        return KN_OK;
    case KN_LR_LINEAR: {
        if (!(s->start_factor > 0 && s->start_factor <= 1) ||
            !(s->end_factor >= 0 && s->end_factor <= 1))
            return kn__error(KN_ERR_ARG,
                             "%s: start_factor %g and end_factor %g, expected in "
                             "(0, 1] and [0, 1]",
                             who, s->start_factor, s->end_factor);
        if (s->total_iters < 1)
            return kn__error(KN_ERR_ARG, "%s: total_iters is %lld, expected >= 1", who,
                             (long long)s->total_iters);
        int64_t t = step < s->total_iters ? step : s->total_iters;
        *lr = base_lr * (s->start_factor +
                         (s->end_factor - s->start_factor) * (double)t / (double)s->total_iters);
        return KN_OK;
    }
    case KN_LR_ONE_CYCLE:
        return one_cycle(s, base_lr, step, lr);
    default:
        return kn__error(KN_ERR_ARG, "%s: kind is %d, expected a kn_lr_kind", who, (int)s->kind);
    }
}
