/* test_optim.c — optimizers against torch.optim (5 steps with fixed grads,
 * f32 and f64, parameter groups, skipped params), clip_grad_norm_, the lr
 * schedules against torch.optim.lr_scheduler, metrics against hand-computed
 * values, checkpoints (3 steps + save + load + 3 steps == 6 steps, bit for
 * bit, for every optimizer), bad inputs and allocation failures. */
#include "harness.h"

#include "tensor/tensor.h"

#include "golden/optim.h"

#include <stdlib.h>
#include <unistd.h>

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
    static char buf[160];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

/* Gives param its grad directly (the values exactly as stored). */
static void set_grad(kn_tensor *p, kn_tensor *g)
{
    kn_tensor_unref(p->grad);
    p->grad = g;
}

/* Row k of a golden (STEPS, ...) gradient array as a tensor shaped like p. */
static kn_tensor *grad_row(const kt_array *g, int k, const kn_tensor *p)
{
    int64_t n = kn_tensor_numel(p);
    return kt_tensor(kn_tensor_dtype(p), kn_tensor_ndim(p), kn_tensor_shape(p), g->data + k * n);
}

static void make_params(kn_dtype dt, kn_tensor **p0, kn_tensor **p1)
{
    *p0 = kt_from_array(&opt_p0, dt);
    *p1 = kt_from_array(&opt_p1, dt);
    kn_tensor_set_requires_grad(*p0, true);
    kn_tensor_set_requires_grad(*p1, true);
}

/* p0 and p1 flattened into one tensor of 10 values. */
static kn_tensor *flat_params(kn_tensor *p0, kn_tensor *p1)
{
    double v[10];
    kn_tensor_copy_to(p0, KN_F64, v, 6 * sizeof(double));
    kn_tensor_copy_to(p1, KN_F64, v + 6, 4 * sizeof(double));
    return kn_tensor_from_data(KN_F64, 1, (int64_t[]){10}, v);
}

/* Runs 5 steps with the golden grads; compares the params after each with
 * row k of `want`. cfg1 (may be NULL) puts p1 in a second group. */
static void run_case(const char *name, kn_optim_kind kind, const kn_optim_config *cfg,
                     const kn_optim_config *cfg1, kn_dtype dt, const kt_array *want, double rtol)
{
    kn_tensor *p0, *p1;
    make_params(dt, &p0, &p1);
    kn_optimizer *opt = kn_optimizer_new(kind, cfg);
    KT_NOTNULL(opt);
    if (cfg1) {
        KT_OK(kn_optimizer_add_group(opt, 1, &p0, NULL));
        KT_OK(kn_optimizer_add_group(opt, 1, &p1, cfg1));
    } else {
        KT_OK(kn_optimizer_add_group(opt, 2, (kn_tensor *[]){p0, p1}, NULL));
    }
    for (int k = 0; k < 5; k++) {
        set_grad(p0, grad_row(&opt_g0, k, p0));
        set_grad(p1, grad_row(&opt_g1, k, p1));
        KT_OK(kn_optimizer_step(opt));
        kn_tensor *flat = flat_params(p0, p1);
        char what[80];
        snprintf(what, sizeof what, "optim_%s.step%d", name, k + 1);
        kt_check_values(what, flat, 1, (int64_t[]){10}, want->data + 10 * k, rtol,
                        dt == KN_F32 ? 1e-7 : 1e-13);
        kn_tensor_unref(flat);
    }
    KT_CHECK(kn_optimizer_num_steps(opt) == 5, "%s: 5 steps", name);
    kn_optimizer_free(opt);
    kn_tensor_unref(p0), kn_tensor_unref(p1);
}

static kn_optim_config cfg_of(kn_optim_kind kind, double lr)
{
    kn_optim_config c = kn_optim_defaults(kind);
    c.lr = lr;
    return c;
}

static void test_optimizers_vs_torch(void)
{
    const double r32 = 2e-6, r64 = 1e-12;
    kn_optim_config c = cfg_of(KN_OPTIM_SGD, 0.1);
    run_case("sgd", KN_OPTIM_SGD, &c, NULL, KN_F32, &opt_sgd, r32);
    c.momentum = 0.9, c.dampening = 0.1, c.weight_decay = 0.01;
    run_case("sgd_mom_wd", KN_OPTIM_SGD, &c, NULL, KN_F32, &opt_sgd_mom_wd, r32);
    c.dampening = 0, c.nesterov = true;
    run_case("sgd_nesterov", KN_OPTIM_SGD, &c, NULL, KN_F32, &opt_sgd_nesterov, r32);
    run_case("sgd_nesterov_f64", KN_OPTIM_SGD, &c, NULL, KN_F64, &opt_sgd_nesterov_f64, r64);
    c = cfg_of(KN_OPTIM_SGD, 0.1), c.momentum = 0.5, c.maximize = true;
    run_case("sgd_max", KN_OPTIM_SGD, &c, NULL, KN_F32, &opt_sgd_max, r32);

    c = cfg_of(KN_OPTIM_ADAM, 0.01);
    run_case("adam", KN_OPTIM_ADAM, &c, NULL, KN_F32, &opt_adam, r32);
    run_case("adam_f64", KN_OPTIM_ADAM, &c, NULL, KN_F64, &opt_adam_f64, r64);
    c.beta1 = 0.8, c.beta2 = 0.99, c.weight_decay = 0.1, c.amsgrad = true;
    run_case("adam_wd_ams", KN_OPTIM_ADAM, &c, NULL, KN_F32, &opt_adam_wd_ams, r32);
    c = cfg_of(KN_OPTIM_ADAMW, 0.01), c.weight_decay = 0.1;
    run_case("adamw", KN_OPTIM_ADAMW, &c, NULL, KN_F32, &opt_adamw, r32);
    c = cfg_of(KN_OPTIM_ADAMW, 0.02), c.weight_decay = 0.05, c.amsgrad = true, c.eps = 1e-6;
    run_case("adamw_ams", KN_OPTIM_ADAMW, &c, NULL, KN_F32, &opt_adamw_ams, r32);

    c = cfg_of(KN_OPTIM_RMSPROP, 0.01);
    run_case("rmsprop", KN_OPTIM_RMSPROP, &c, NULL, KN_F32, &opt_rmsprop, r32);
    c.alpha = 0.9, c.momentum = 0.5, c.centered = true, c.weight_decay = 0.01;
    run_case("rmsprop_cmw", KN_OPTIM_RMSPROP, &c, NULL, KN_F32, &opt_rmsprop_cmw, r32);
    run_case("rmsprop_cmw_f64", KN_OPTIM_RMSPROP, &c, NULL, KN_F64, &opt_rmsprop_cmw_f64, r64);

    c = cfg_of(KN_OPTIM_ADAGRAD, 0.1);
    run_case("adagrad", KN_OPTIM_ADAGRAD, &c, NULL, KN_F32, &opt_adagrad, r32);
    c.lr_decay = 0.01, c.weight_decay = 0.01, c.initial_accumulator_value = 0.1;
    run_case("adagrad_decay", KN_OPTIM_ADAGRAD, &c, NULL, KN_F32, &opt_adagrad_decay, r32);

    c = cfg_of(KN_OPTIM_LAMB, 0.01), c.weight_decay = 0.01;
    run_case("lamb", KN_OPTIM_LAMB, &c, NULL, KN_F32, &opt_lamb, r32);
    run_case("lamb_f64", KN_OPTIM_LAMB, &c, NULL, KN_F64, &opt_lamb_f64, r64);
    c = cfg_of(KN_OPTIM_LAMB, 0.05), c.weight_decay = 0.1, c.bias_correction = false;
    c.max_trust = 0.5;
    run_case("lamb_nobc_trust", KN_OPTIM_LAMB, &c, NULL, KN_F32, &opt_lamb_nobc_trust, r32);
}

static void test_param_groups(void)
{
    kn_optim_config c0 = cfg_of(KN_OPTIM_SGD, 0.1), c1 = cfg_of(KN_OPTIM_SGD, 0.05);
    c0.momentum = 0.9, c1.momentum = 0.5;
    run_case("groups", KN_OPTIM_SGD, &c0, &c1, KN_F32, &opt_groups, 2e-6);

    kn_tensor *p0, *p1;
    make_params(KN_F32, &p0, &p1);
    kn_optimizer *opt = kn_optimizer_new(KN_OPTIM_SGD, &c0);
    KT_OK(kn_optimizer_add_group(opt, 1, &p0, NULL));
    KT_OK(kn_optimizer_add_group(opt, 1, &p1, &c1));
    KT_CHECK(kn_optimizer_num_groups(opt) == 2 && kn_optimizer_group_size(opt, 1) == 1 &&
                 kn_optimizer_param(opt, 1, 0) == p1 && !kn_optimizer_param(opt, 2, 0),
             "group accessors");
    KT_OK(kn_optimizer_set_lr(opt, -1, 0.5));
    KT_CHECK(kn_optimizer_lr(opt, 0) == 0.5 && kn_optimizer_lr(opt, 1) == 0.5, "set all lrs");
    KT_OK(kn_optimizer_set_lr(opt, 1, 0.25));
    KT_CHECK(kn_optimizer_lr(opt, 0) == 0.5 && kn_optimizer_lr(opt, 1) == 0.25, "set one lr");
    KT_CHECK(kn_optimizer_initial_lr(opt, 1) == 0.05 && isnan(kn_optimizer_lr(opt, 5)),
             "initial lr kept");
    kn_optimizer_free(opt);
    kn_tensor_unref(p0), kn_tensor_unref(p1);
}

/* Params without a grad are skipped: unchanged, and no state is made. */
static void test_skip_without_grad(void)
{
    kn_tensor *p0, *p1;
    make_params(KN_F32, &p0, &p1);
    kn_tensor *before = kn_tensor_clone(p1);
    kn_optimizer *opt = kn_optimizer_new(KN_OPTIM_ADAM, NULL);
    KT_OK(kn_optimizer_add_group(opt, 2, (kn_tensor *[]){p0, p1}, NULL));
    uint64_t v0 = kn_tensor_version(p0), v1 = kn_tensor_version(p1);
    set_grad(p0, grad_row(&opt_g0, 0, p0));
    KT_OK(kn_optimizer_step(opt));
    KT_CHECK(kt_equal_bits(p1, before) && kn_tensor_version(p1) == v1, "p1 untouched");
    KT_CHECK(kn_tensor_version(p0) != v0, "p0 updated, version bumped");
    kn_tensor_map *m = kn_tensor_map_new();
    KT_OK(kn_optimizer_state_save(opt, m, "o."));
    KT_CHECK(kn_tensor_map_get(m, "o.0.0.exp_avg") && !kn_tensor_map_get(m, "o.0.1.exp_avg"),
             "state only for the param with a grad");
    double step1 = -1;
    kn_tensor_item(kn_tensor_map_get(m, "o.0.1.step"), &step1);
    KT_CHECK(step1 == 0, "p1 step 0, got %g", step1);
    kn_tensor_map_free(m);
    kn_optimizer_zero_grad(opt);
    KT_CHECK(!kn_tensor_grad(p0) && !kn_tensor_grad(p1), "zero_grad drops grads");
    KT_OK(kn_optimizer_step(opt)); /* nothing to do */
    /* a gradient of another dtype is converted */
    set_grad(p1, kn_tensor_full(KN_F64, 1, (int64_t[]){4}, 0.5));
    KT_OK(kn_optimizer_step(opt));
    KT_CHECK(!kt_equal_bits(p1, before), "p1 stepped with an f64 grad");
    kn_optimizer_free(opt);
    kn_tensor_unref(before), kn_tensor_unref(p0), kn_tensor_unref(p1);
}

static void test_clip_grad_norm(void)
{
    const kt_array *tot[2] = {&opt_clip_total, &opt_noclip_total};
    const kt_array *want[2] = {&opt_clip_grads, &opt_noclip_grads};
    double max_norm[2] = {1.0, 100.0};
    for (int t = 0; t < 2; t++) {
        kn_tensor *p0, *p1, *p2 = kn_tensor_zeros(KN_F32, 1, (int64_t[]){3});
        make_params(KN_F32, &p0, &p1);
        kn_tensor *g0 = grad_row(&opt_g0, 0, p0), *g1 = grad_row(&opt_g1, 0, p1);
        set_grad(p0, kn_mul_scalar(g0, 3)), set_grad(p1, kn_mul_scalar(g1, 3));
        kn_tensor *shared = kn_tensor_ref(p0->grad); /* must not be scaled */
        kn_tensor *copy = kn_tensor_clone(shared);
        double total = 0;
        KT_OK(kn_clip_grad_norm(3, (kn_tensor *[]){p0, p1, p2}, max_norm[t], &total));
        KT_CHECK(fabs(total - tot[t]->data[0]) <= 1e-6 * tot[t]->data[0], "total %.9g vs %.9g",
                 total, tot[t]->data[0]);
        kn_tensor *flat = flat_params(kn_tensor_grad(p0), kn_tensor_grad(p1));
        kt_check_array("clip_grad_norm", flat, want[t], 2e-6, 1e-7);
        KT_CHECK(kt_equal_bits(shared, copy), "a shared grad is not written");
        kn_tensor_unref(flat), kn_tensor_unref(shared), kn_tensor_unref(copy);
        kn_tensor_unref(g0), kn_tensor_unref(g1);
        kn_tensor_unref(p0), kn_tensor_unref(p1), kn_tensor_unref(p2);
    }
}

static void check_schedule(const char *name, const kn_lr_schedule *s, const kt_array *want)
{
    int bad = 0;
    for (int64_t k = 0; k < want->n; k++) {
        double lr = -1;
        KT_OK(kn_lr_schedule_at(s, 0.1, k, &lr));
        if (!(fabs(lr - want->data[k]) <= 1e-12 + 1e-9 * fabs(want->data[k])) && bad++ < 3)
            fprintf(stderr, "  %s step %lld: %.17g, torch %.17g\n", name, (long long)k, lr,
                    want->data[k]);
    }
    KT_CHECK(bad == 0, "%s: %d lrs differ", name, bad);
}

static void test_schedules_vs_torch(void)
{
    kn_lr_schedule s = kn_lr_schedule_defaults(KN_LR_STEP);
    s.step_size = 3, s.gamma = 0.5;
    check_schedule("step", &s, &lr_step);
    s = kn_lr_schedule_defaults(KN_LR_MULTI_STEP);
    s.gamma = 0.3, s.n_milestones = 4;
    memcpy(s.milestones, (int64_t[]){2, 5, 5, 9}, 4 * sizeof(int64_t));
    check_schedule("multistep", &s, &lr_multistep);
    s = kn_lr_schedule_defaults(KN_LR_COSINE);
    s.t_max = 10, s.eta_min = 0.001;
    check_schedule("cosine", &s, &lr_cosine);
    s = kn_lr_schedule_defaults(KN_LR_LINEAR);
    s.start_factor = 0.25, s.total_iters = 4;
    check_schedule("linear", &s, &lr_linear);
    s = kn_lr_schedule_defaults(KN_LR_ONE_CYCLE);
    s.max_lr = 0.5, s.total_steps = 20;
    check_schedule("onecycle", &s, &lr_onecycle);
    s.pct_start = 0.25, s.anneal_linear = true, s.three_phase = true, s.div_factor = 10;
    s.final_div_factor = 100;
    check_schedule("onecycle3", &s, &lr_onecycle3);
    s = kn_lr_schedule_defaults(KN_LR_CONSTANT);
    double lr = 0;
    KT_OK(kn_lr_schedule_at(&s, 0.3, 1000, &lr));
    KT_CHECK(lr == 0.3, "constant");
}

/* ------------------------------------------------------------ checkpoints */

/* Configs for the resume test: each with all its state slots in use. */
static kn_optim_config resume_cfg(kn_optim_kind kind)
{
    kn_optim_config c = kn_optim_defaults(kind);
    c.lr = 0.05, c.weight_decay = 0.01;
    if (kind == KN_OPTIM_SGD) c.momentum = 0.9, c.nesterov = true;
    if (kind == KN_OPTIM_RMSPROP) c.momentum = 0.5, c.centered = true;
    if (kind == KN_OPTIM_ADAM || kind == KN_OPTIM_ADAMW) c.amsgrad = true;
    return c;
}

typedef struct run {
    kn_tensor *p0, *p1;
    kn_optimizer *opt;
    kn_trainer *tr;
} run;

static void run_start(run *r, kn_optim_kind kind, bool fresh_values)
{
    make_params(KN_F32, &r->p0, &r->p1);
    if (fresh_values) kn_tensor_fill_(r->p0, 7), kn_tensor_fill_(r->p1, -7);
    kn_optim_config c0 = resume_cfg(kind), c1 = c0;
    c1.lr = 0.02;
    r->opt = kn_optimizer_new(kind, &c0);
    KT_OK(kn_optimizer_add_group(r->opt, 1, &r->p0, NULL));
    KT_OK(kn_optimizer_add_group(r->opt, 1, &r->p1, &c1));
    kn_lr_schedule s = kn_lr_schedule_defaults(KN_LR_COSINE);
    s.t_max = 6, s.eta_min = 0.001;
    r->tr = kn_trainer_new(r->opt, &s, 0.8);
    KT_NOTNULL(r->tr);
}

/* Steps from..to-1 through the trainer: grads from a real backward of
 * sum(p^2 * g_k) over both params (p1 skipped on step 1: no grad). */
static void run_steps(run *r, int from, int to)
{
    for (int k = from; k < to; k++) {
        kn_tensor *g0 = grad_row(&opt_g0, k % 5, r->p0), *g1 = grad_row(&opt_g1, k % 5, r->p1);
        kn_autograd_record(true);
        kn_tensor *sq0 = kn_mul(r->p0, r->p0), *l0 = kn_mul(sq0, g0),
                  *s0 = kn_sum(l0, 0, NULL, false);
        kn_tensor *sq1 = kn_mul(r->p1, r->p1), *l1 = kn_mul(sq1, g1),
                  *s1 = kn_sum(l1, 0, NULL, false);
        kn_tensor *loss = k == 1 ? kn_tensor_ref(s0) : kn_add(s0, s1);
        kn_autograd_record(false);
        KT_OK(kn_backward(loss, NULL));
        KT_OK(kn_trainer_step(r->tr));
        KT_CHECK(!kn_tensor_grad(r->p0), "trainer drops the grads");
        kn_tensor *ts[] = {g0, g1, sq0, l0, s0, sq1, l1, s1, loss};
        for (int i = 0; i < KN_ARRAY_LEN(ts); i++)
            kn_tensor_unref(ts[i]);
    }
}

static void run_end(run *r)
{
    kn_trainer_free(r->tr);
    kn_optimizer_free(r->opt);
    kn_tensor_unref(r->p0), kn_tensor_unref(r->p1);
}

static kn_tensor_map *param_map(run *r)
{
    kn_tensor_map *m = kn_tensor_map_new();
    kn_tensor_map_set(m, "layer.w", r->p0);
    kn_tensor_map_set(m, "layer.b", r->p1);
    return m;
}

static void test_checkpoint_resume(void)
{
    for (int kind = 0; kind < KN_OPTIM_KIND_COUNT; kind++) {
        const char *name = kn_optim_kind_name((kn_optim_kind)kind);
        run full, a, b;
        run_start(&full, (kn_optim_kind)kind, false);
        run_steps(&full, 0, 6);
        run_start(&a, (kn_optim_kind)kind, false);
        run_steps(&a, 0, 3);
        kn_tensor_map *ma = param_map(&a);
        const char *path = tmp_path("ckpt.safetensors");
        KT_OK(kn_checkpoint_save(path, ma, a.opt));
        kn_tensor_map_free(ma);
        run_end(&a);
        /* a fresh process, in effect: new tensors, optimizer and trainer */
        run_start(&b, (kn_optim_kind)kind, true);
        kn_tensor_map *mb = param_map(&b);
        KT_OK(kn_checkpoint_load(path, mb, b.opt));
        kn_tensor_map_free(mb);
        KT_CHECK(kn_optimizer_num_steps(b.opt) == 3, "%s: steps restored", name);
        run_steps(&b, 3, 6);
        KT_CHECK(kt_equal_bits(full.p0, b.p0) && kt_equal_bits(full.p1, b.p1),
                 "%s: resumed run equals the uninterrupted one bit for bit", name);
        KT_CHECK(kn_optimizer_lr(full.opt, 1) == kn_optimizer_lr(b.opt, 1), "%s: same lr", name);
        kn_tensor_map *sf = kn_tensor_map_new(), *sb = kn_tensor_map_new();
        kn_optimizer_state_save(full.opt, sf, ""), kn_optimizer_state_save(b.opt, sb, "");
        bool same = kn_tensor_map_size(sf) == kn_tensor_map_size(sb);
        for (int i = 0; same && i < kn_tensor_map_size(sf); i++)
            same = kt_equal_bits(kn_tensor_map_at(sf, i),
                                 kn_tensor_map_get(sb, kn_tensor_map_name(sf, i)));
        KT_CHECK(same, "%s: same optimizer state", name);
        kn_tensor_map_free(sf), kn_tensor_map_free(sb);
        run_end(&full), run_end(&b);
    }
}

/* A trainer with clipping and a schedule matches doing it by hand. */
static void test_trainer_by_hand(void)
{
    kn_tensor *p0, *p1, *q0, *q1;
    make_params(KN_F32, &p0, &p1);
    make_params(KN_F32, &q0, &q1);
    kn_optim_config c = cfg_of(KN_OPTIM_ADAM, 0.1);
    kn_optimizer *o1 = kn_optimizer_new(KN_OPTIM_ADAM, &c),
                 *o2 = kn_optimizer_new(KN_OPTIM_ADAM, &c);
    kn_optimizer_add_group(o1, 2, (kn_tensor *[]){p0, p1}, NULL);
    kn_optimizer_add_group(o2, 2, (kn_tensor *[]){q0, q1}, NULL);
    kn_lr_schedule s = kn_lr_schedule_defaults(KN_LR_STEP);
    s.step_size = 2, s.gamma = 0.5;
    kn_trainer *tr = kn_trainer_new(o1, &s, 0.5);
    KT_CHECK(isnan(kn_trainer_last_grad_norm(tr)), "no norm yet");
    for (int k = 0; k < 5; k++) {
        set_grad(p0, grad_row(&opt_g0, k, p0)), set_grad(p1, grad_row(&opt_g1, k, p1));
        set_grad(q0, grad_row(&opt_g0, k, q0)), set_grad(q1, grad_row(&opt_g1, k, q1));
        KT_OK(kn_trainer_step(tr));
        double lr, norm;
        kn_lr_schedule_at(&s, 0.1, k, &lr);
        kn_optimizer_set_lr(o2, -1, lr);
        KT_OK(kn_clip_grad_norm(2, (kn_tensor *[]){q0, q1}, 0.5, &norm));
        KT_OK(kn_optimizer_step(o2));
        KT_CHECK(norm == kn_trainer_last_grad_norm(tr), "same norm");
    }
    KT_CHECK(kt_equal_bits(p0, q0) && kt_equal_bits(p1, q1), "trainer == by hand");
    kn_trainer_free(tr);
    kn_optimizer_free(o1), kn_optimizer_free(o2);
    kn_tensor_unref(p0), kn_tensor_unref(p1), kn_tensor_unref(q0), kn_tensor_unref(q1);
}

/* ---------------------------------------------------------------- metrics */

static double metric_run(kn_metric_kind kind, const kn_metric_config *cfg, kn_tensor *pred,
                         kn_tensor *label)
{
    kn_metric *m = kn_metric_new(kind, cfg);
    KT_NOTNULL(m);
    KT_OK(kn_metric_update(m, pred, label));
    double v = kn_metric_value(m);
    kn_metric_free(m);
    return v;
}

static bool near(double a, double b)
{
    return fabs(a - b) <= 1e-12 * (1 + fabs(b));
}

static void test_metrics(void)
{
    const double sc[] = {0.1, 0.7, 0.2, 0.3, 0.3, 0.4, 0.5, 0.4, 0.1, 0.2, 0.6, 0.2};
    kn_tensor *scores = kt_tensor(KN_F32, 2, (int64_t[]){4, 3}, sc);
    kn_tensor *lab = kt_tensor(KN_I64, 1, (int64_t[]){4}, (double[]){1, 2, 1, 0});
    kn_metric *acc = kn_metric_new(KN_METRIC_ACCURACY, NULL);
    KT_OK(kn_metric_update(acc, scores, lab));
    KT_CHECK(near(kn_metric_value(acc), 0.5), "accuracy %g", kn_metric_value(acc));
    kn_tensor *ids = kt_tensor(KN_I32, 1, (int64_t[]){2}, (double[]){1, 1});
    kn_tensor *lab2 = kt_tensor(KN_I32, 1, (int64_t[]){2}, (double[]){1, 0});
    KT_OK(kn_metric_update(acc, ids, lab2));
    KT_CHECK(near(kn_metric_value(acc), 0.5) && kn_metric_count(acc) == 6, "accuracy of 6");
    KT_CHECK(!strcmp(kn_metric_name(acc), "accuracy"), "name");
    kn_metric_reset(acc);
    KT_CHECK(isnan(kn_metric_value(acc)) && kn_metric_count(acc) == 0, "reset");
    kn_metric_free(acc);

    kn_tensor *lab3 = kt_tensor(KN_I64, 1, (int64_t[]){4}, (double[]){1, 0, 2, 0});
    kn_metric_config kc = {.k = 2};
    KT_CHECK(near(metric_run(KN_METRIC_TOP_K, &kc, scores, lab3), 0.75), "top-2");
    kc.k = 1;
    KT_CHECK(near(metric_run(KN_METRIC_TOP_K, &kc, scores, lab), 0.5), "top-1 == accuracy");

    kn_tensor *prob = kt_tensor(KN_F64, 2, (int64_t[]){2, 3}, (double[]){.1, .7, .2, .25, .25, .5});
    kn_tensor *pl = kt_tensor(KN_I64, 1, (int64_t[]){2}, (double[]){1, 2});
    double ce = -(log(0.7 + 1e-12) + log(0.5 + 1e-12)) / 2;
    KT_CHECK(near(metric_run(KN_METRIC_CROSS_ENTROPY, NULL, prob, pl), ce), "cross-entropy");
    KT_CHECK(near(metric_run(KN_METRIC_PERPLEXITY, NULL, prob, pl), exp(ce)), "perplexity");
    kn_tensor *logit = kt_tensor(KN_F32, 2, (int64_t[]){1, 3}, (double[]){1, 2, 3});
    kn_tensor *l0 = kt_tensor(KN_I64, 1, (int64_t[]){1}, (double[]){0});
    kn_metric_config lc = {.from_logits = true};
    KT_CHECK(near(metric_run(KN_METRIC_CROSS_ENTROPY, &lc, logit, l0),
                  log(exp(1) + exp(2) + exp(3)) - 1),
             "cross-entropy from logits");

    kn_tensor *pr = kt_tensor(KN_F32, 1, (int64_t[]){4}, (double[]){1, 2, 3, 4});
    kn_tensor *tr = kt_tensor(KN_F32, 2, (int64_t[]){2, 2}, (double[]){1.5, 2, 2, 6});
    KT_CHECK(near(metric_run(KN_METRIC_MAE, NULL, pr, tr), 0.875), "mae");
    KT_CHECK(near(metric_run(KN_METRIC_RMSE, NULL, pr, tr), sqrt(1.3125)), "rmse");

    kn_tensor *bs = kt_tensor(KN_F32, 1, (int64_t[]){5}, (double[]){.9, .2, .6, .4, .7});
    kn_tensor *bl = kt_tensor(KN_U8, 1, (int64_t[]){5}, (double[]){1, 0, 0, 1, 1});
    KT_CHECK(near(metric_run(KN_METRIC_F1, NULL, bs, bl), 2.0 / 3), "binary f1");
    /* macro: argmax [0,1,2,2,1] vs labels [0,1,1,2,0]: f1 per class 2/3, 1/2, 2/3 */
    kn_tensor *ms = kt_tensor(KN_F32, 2, (int64_t[]){5, 3},
                              (double[]){9, 0, 0, 0, 9, 0, 0, 0, 9, 0, 1, 2, 0, 5, 1});
    kn_tensor *ml = kt_tensor(KN_I64, 1, (int64_t[]){5}, (double[]){0, 1, 1, 2, 0});
    kn_metric_config mc = {.macro = true};
    KT_CHECK(near(metric_run(KN_METRIC_F1, &mc, ms, ml), (2.0 / 3 + 0.5 + 2.0 / 3) / 3),
             "macro f1");

    kn_metric *mean = kn_metric_new(KN_METRIC_MEAN, NULL);
    kn_tensor *three = kt_tensor(KN_F32, 1, (int64_t[]){3}, (double[]){1, 2, 3});
    KT_OK(kn_metric_update(mean, three, NULL));
    kn_tensor *four = kn_tensor_scalar(KN_F64, 4);
    KT_OK(kn_metric_update(mean, four, NULL));
    KT_CHECK(near(kn_metric_value(mean), 2.5), "running mean %g", kn_metric_value(mean));
    kn_metric_free(mean);

    kn_tensor *ts[] = {scores, lab, ids, lab2, lab3, prob, pl,    logit, l0,
                       pr,     tr,  bs,  bl,   ms,   ml,   three, four};
    for (int i = 0; i < KN_ARRAY_LEN(ts); i++)
        kn_tensor_unref(ts[i]);
}

/* ------------------------------------------------------------ bad inputs */

static void test_bad_optimizer(void)
{
    kn_optim_config c = kn_optim_defaults(KN_OPTIM_SGD);
    c.lr = -1;
    KT_CHECK(!kn_optimizer_new(KN_OPTIM_SGD, &c), "negative lr");
    kt_expect_fail_status("optimizer_new", kn_last_status(), "lr is -1, expected >= 0");
    c = kn_optim_defaults(KN_OPTIM_SGD), c.nesterov = true;
    KT_CHECK(!kn_optimizer_new(KN_OPTIM_SGD, &c), "nesterov without momentum");
    kt_expect_fail_status("optimizer_new", kn_last_status(), "nesterov");
    c = kn_optim_defaults(KN_OPTIM_ADAM), c.beta2 = 1;
    KT_CHECK(!kn_optimizer_new(KN_OPTIM_ADAM, &c), "beta2 1");
    kt_expect_fail_status("optimizer_new", kn_last_status(), "beta2");
    c = kn_optim_defaults(KN_OPTIM_RMSPROP), c.eps = NAN;
    KT_CHECK(!kn_optimizer_new(KN_OPTIM_RMSPROP, &c), "NaN eps");
    kt_expect_fail_status("optimizer_new", kn_last_status(), "eps");
    KT_CHECK(!kn_optimizer_new((kn_optim_kind)99, NULL), "bad kind");
    kt_expect_fail_status("optimizer_new", kn_last_status(), "kind");

    kn_tensor *p0, *p1;
    make_params(KN_F32, &p0, &p1);
    kn_tensor *ints = kn_tensor_zeros(KN_I32, 1, (int64_t[]){3});
    kn_tensor *tr = kn_transpose(p0, 0, 1);
    kn_optimizer *opt = kn_optimizer_new(KN_OPTIM_ADAM, NULL);
    struct {
        int n;
        kn_tensor *params[2];
        const char *needle;
    } bad[] = {
        {1, {NULL}, "params[0] is NULL"},
        {1, {ints}, "expected f32 or f64"},
        {1, {tr}, "not contiguous"},
        {2, {p0, p0}, "already in a parameter group"},
        {-1, {p0}, "n is -1"},
    };
    for (int i = 0; i < KN_ARRAY_LEN(bad); i++)
        kt_expect_fail_status("optimizer_add_group",
                              kn_optimizer_add_group(opt, bad[i].n, bad[i].params, NULL),
                              bad[i].needle);
    KT_CHECK(kn_optimizer_num_groups(opt) == 0, "nothing added");
    KT_OK(kn_optimizer_add_group(opt, 1, &p0, NULL));
    kt_expect_fail_status("optimizer_add_group", kn_optimizer_add_group(opt, 1, &p0, NULL),
                          "already");
    kt_expect_fail_status("optimizer_add_group", kn_optimizer_add_group(opt, 1, &p1, &c), "eps");
    kt_expect_fail_status("optimizer_set_lr", kn_optimizer_set_lr(opt, 0, -0.5), "lr is -0.5");
    kt_expect_fail_status("optimizer_set_lr", kn_optimizer_set_lr(opt, 3, 0.5), "group is 3");
    /* a grad of the wrong shape: an error, nothing changes */
    kn_tensor *before = kn_tensor_clone(p0);
    set_grad(p0, kn_tensor_ones(KN_F32, 1, (int64_t[]){6}));
    kt_expect_fail_status("optimizer_step", kn_optimizer_step(opt), "expected (2,3)");
    KT_CHECK(kt_equal_bits(p0, before) && kn_optimizer_num_steps(opt) == 0, "unchanged");
    kn_tensor_map *m = kn_tensor_map_new();
    KT_OK(kn_optimizer_state_save(opt, m, "x."));
    KT_CHECK(kn_tensor_map_size(m) == 4, "no slots made by the failed step (%d entries)",
             kn_tensor_map_size(m));
    kn_tensor_map_free(m);
    kt_expect_fail_status("clip_grad_norm", kn_clip_grad_norm(1, &p0, -1, NULL), "max_norm");
    kt_expect_fail_status("trainer_new", kn_trainer_new(NULL, NULL, 0) ? KN_OK : kn_last_status(),
                          "NULL");
    kn_lr_schedule s = kn_lr_schedule_defaults(KN_LR_STEP);
    kt_expect_fail_status("trainer_new", kn_trainer_new(opt, &s, 0) ? KN_OK : kn_last_status(),
                          "step_size");
    kn_optimizer_free(opt);
    kn_tensor_unref(before), kn_tensor_unref(ints), kn_tensor_unref(tr);
    kn_tensor_unref(p0), kn_tensor_unref(p1);
}

static void test_bad_schedules(void)
{
    double lr;
    kn_lr_schedule s = kn_lr_schedule_defaults(KN_LR_COSINE);
    kt_expect_fail_status("lr_schedule_at", kn_lr_schedule_at(&s, 0.1, 0, &lr), "t_max");
    s.t_max = 5;
    kt_expect_fail_status("lr_schedule_at", kn_lr_schedule_at(&s, 0.1, -1, &lr), "step is -1");
    kt_expect_fail_status("lr_schedule_at", kn_lr_schedule_at(&s, -0.1, 0, &lr), "base_lr");
    s = kn_lr_schedule_defaults(KN_LR_MULTI_STEP);
    s.n_milestones = 2, s.milestones[0] = 5, s.milestones[1] = 3;
    kt_expect_fail_status("lr_schedule_at", kn_lr_schedule_at(&s, 0.1, 0, &lr), "increasing");
    s.n_milestones = 99;
    kt_expect_fail_status("lr_schedule_at", kn_lr_schedule_at(&s, 0.1, 0, &lr), "n_milestones");
    s = kn_lr_schedule_defaults(KN_LR_LINEAR), s.start_factor = 0;
    kt_expect_fail_status("lr_schedule_at", kn_lr_schedule_at(&s, 0.1, 0, &lr), "start_factor");
    s = kn_lr_schedule_defaults(KN_LR_ONE_CYCLE), s.total_steps = 10;
    kt_expect_fail_status("lr_schedule_at", kn_lr_schedule_at(&s, 0.1, 11, &lr), "past total");
    s.pct_start = 1;
    kt_expect_fail_status("lr_schedule_at", kn_lr_schedule_at(&s, 0.1, 0, &lr), "pct_start");
    s = kn_lr_schedule_defaults((kn_lr_kind)42);
    kt_expect_fail_status("lr_schedule_at", kn_lr_schedule_at(&s, 0.1, 0, &lr), "kind");
}

static void test_bad_state_and_checkpoints(void)
{
    run r;
    run_start(&r, KN_OPTIM_ADAM, false);
    run_steps(&r, 0, 2);
    kn_tensor_map *good = kn_tensor_map_new();
    KT_OK(kn_optimizer_state_save(r.opt, good, "o."));
    kn_tensor *p1_before = kn_tensor_clone(r.p1);
    struct {
        const char *name; /* entry to change */
        int what;         /* 0 drop, 1 wrong shape, 2 add, 3 not a scalar */
        const char *needle;
    } bad[] = {
        {"o.steps", 0, "'o.steps' is missing"},         {"o.1.lr", 0, "'o.1.lr' is missing"},
        {"o.0.0.exp_avg", 1, "expected (2,3)"},         {"o.2.0.exp_avg", 2, "match no state"},
        {"o.0.0.momentum_buffer", 2, "match no state"}, {"o.0.0.step", 3, "expected 1"},
    };
    for (int i = 0; i < KN_ARRAY_LEN(bad); i++) {
        kn_tensor_map *m = kn_tensor_map_new();
        for (int j = 0; j < kn_tensor_map_size(good); j++)
            if (bad[i].what != 0 || strcmp(kn_tensor_map_name(good, j), bad[i].name))
                kn_tensor_map_set(m, kn_tensor_map_name(good, j), kn_tensor_map_at(good, j));
        if (bad[i].what) {
            kn_tensor *t = bad[i].what == 2 ? kn_tensor_zeros(KN_F32, 2, (int64_t[]){2, 3})
                                            : kn_tensor_zeros(KN_F32, 1, (int64_t[]){6});
            kn_tensor_map_set(m, bad[i].name, t);
            kn_tensor_unref(t);
        }
        kt_expect_fail_status("optimizer_state_load", kn_optimizer_state_load(r.opt, m, "o."),
                              bad[i].needle);
        kn_tensor_map_free(m);
    }
    KT_CHECK(kn_optimizer_num_steps(r.opt) == 2, "nothing loaded");
    KT_OK(kn_optimizer_state_load(r.opt, good, "o."));
    kn_tensor_map_free(good);
    /* a slot the config does not use (amsgrad off) */
    kn_optimizer *plain = kn_optimizer_new(KN_OPTIM_ADAM, NULL);
    kn_optimizer_add_group(plain, 1, &r.p0, NULL);
    kn_tensor_map *pm0 = kn_tensor_map_new();
    KT_OK(kn_optimizer_state_save(plain, pm0, ""));
    kn_tensor_map_set(pm0, "0.0.max_exp_avg_sq", r.p0);
    kt_expect_fail_status("optimizer_state_load", kn_optimizer_state_load(plain, pm0, ""),
                          "not a state of this adam group");
    kn_tensor_map_free(pm0);
    kn_optimizer_free(plain);

    kn_tensor_map *pm = param_map(&r);
    kt_expect_fail_status("safetensors_load", kn_checkpoint_load(tmp_path("none"), pm, r.opt),
                          NULL);
    const char *path = tmp_path("bad.safetensors");
    kn_tensor_map *other = kn_tensor_map_new();
    kn_tensor *wrong = kn_tensor_zeros(KN_F32, 1, (int64_t[]){6});
    kn_tensor_map_set(other, "layer.w", wrong);
    kn_tensor_map_set(other, "layer.b", r.p1);
    KT_OK(kn_checkpoint_save(path, other, NULL));
    kt_expect_fail_status("checkpoint_load", kn_checkpoint_load(path, pm, NULL), "layer.w");
    kn_tensor_map_set(other, "layer.w", r.p0);
    KT_OK(kn_checkpoint_save(path, other, NULL)); /* no optimizer state */
    kt_expect_fail_status("optimizer_state_load", kn_checkpoint_load(path, pm, r.opt), "missing");
    KT_CHECK(kt_equal_bits(r.p1, p1_before), "params untouched by a failed load");
    kn_tensor_map_set(other, "optimizer.x", wrong);
    kt_expect_fail_status("checkpoint_save", kn_checkpoint_save(path, other, r.opt), "optimizer.");
    kn_tensor_map_free(other), kn_tensor_map_free(pm);
    kn_tensor_unref(wrong), kn_tensor_unref(p1_before);
    run_end(&r);
}

static void test_bad_metrics(void)
{
    kt_expect_fail_status(
        "metric_new",
        kn_metric_new(KN_METRIC_TOP_K, &(kn_metric_config){.k = 0}) ? KN_OK : kn_last_status(),
        "k is 0");
    kt_expect_fail_status(
        "metric_new", kn_metric_new((kn_metric_kind)77, NULL) ? KN_OK : kn_last_status(), "kind");
    kn_tensor *sc = kn_tensor_zeros(KN_F32, 2, (int64_t[]){2, 3});
    kn_tensor *l2 = kt_tensor(KN_I64, 1, (int64_t[]){2}, (double[]){0, 3});
    kn_tensor *l3 = kn_tensor_zeros(KN_I64, 1, (int64_t[]){3});
    kn_tensor *lneg = kt_tensor(KN_F32, 1, (int64_t[]){2}, (double[]){0.5, 1});
    kn_metric *acc = kn_metric_new(KN_METRIC_ACCURACY, NULL);
    kn_metric *ce = kn_metric_new(KN_METRIC_CROSS_ENTROPY, NULL);
    kn_metric *f1 = kn_metric_new(KN_METRIC_F1, NULL);
    kn_metric *mae = kn_metric_new(KN_METRIC_MAE, NULL);
    kt_expect_fail_status("metric_update", kn_metric_update(acc, sc, l2), "not a class id");
    kt_expect_fail_status("metric_update", kn_metric_update(acc, sc, l3), "shape");
    kt_expect_fail_status("metric_update", kn_metric_update(acc, sc, lneg), "label 0.5");
    kt_expect_fail_status("metric_update", kn_metric_update(acc, sc, NULL), "needs a label");
    kt_expect_fail_status("metric_update", kn_metric_update(ce, l3, l3), "class axis");
    kt_expect_fail_status("metric_update", kn_metric_update(f1, sc, l2), "binary f1");
    kt_expect_fail_status("metric_update", kn_metric_update(mae, sc, l3), "elements");
    KT_CHECK(kn_metric_count(acc) == 0 && kn_metric_count(f1) == 0, "nothing counted");
    kn_metric_free(acc), kn_metric_free(ce), kn_metric_free(f1), kn_metric_free(mae);
    kn_tensor_unref(sc), kn_tensor_unref(l2), kn_tensor_unref(l3), kn_tensor_unref(lneg);
}

/* Allocation failures anywhere in new/add/step/save/load fail cleanly. */
static kn_status alloc_case(void *ctx)
{
    (void)ctx;
    kn_tensor *p0 = kt_from_array(&opt_p0, KN_F32), *g = NULL;
    kn_optimizer *opt = NULL;
    kn_tensor_map *m = NULL;
    kn_status s = p0 ? KN_OK : kn_last_status();
    if (!s) s = (opt = kn_optimizer_new(KN_OPTIM_ADAM, NULL)) ? KN_OK : kn_last_status();
    if (!s) s = kn_optimizer_add_group(opt, 1, &p0, NULL);
    if (!s) s = (g = kn_tensor_ones(KN_F64, 2, (int64_t[]){2, 3})) ? KN_OK : kn_last_status();
    if (!s) set_grad(p0, kn_tensor_ref(g));
    if (!s) s = kn_optimizer_step(opt);
    if (!s) s = kn_clip_grad_norm(1, &p0, 0.1, NULL);
    if (!s) s = (m = kn_tensor_map_new()) ? KN_OK : kn_last_status();
    if (!s) s = kn_optimizer_state_save(opt, m, "p.");
    if (!s) s = kn_optimizer_state_load(opt, m, "p.");
    kn_tensor_map_free(m);
    kn_optimizer_free(opt);
    kn_tensor_unref(g), kn_tensor_unref(p0);
    return s;
}

static void test_alloc_failures(void)
{
    int n = kt_alloc_walk("optimizer", alloc_case, NULL);
    KT_CHECK(n > 5, "walked %d failure points", n);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kiln-test-optim-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    KT_RUN(test_optimizers_vs_torch);
    KT_RUN(test_param_groups);
    KT_RUN(test_skip_without_grad);
    KT_RUN(test_clip_grad_norm);
    KT_RUN(test_schedules_vs_torch);
    KT_RUN(test_checkpoint_resume);
    KT_RUN(test_trainer_by_hand);
    KT_RUN(test_metrics);
    KT_RUN(test_bad_optimizer);
    KT_RUN(test_bad_schedules);
    KT_RUN(test_bad_state_and_checkpoints);
    KT_RUN(test_bad_metrics);
    KT_RUN(test_alloc_failures);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return kt_finish();
}
