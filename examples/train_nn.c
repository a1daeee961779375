/* train_nn.c — the README's training example: a Sequential of layers with
 * deferred sizes, the trainable parameters to SGD, a cosine schedule, and
 * the whole step (forward, loss, backward, update) as one compiled graph.
 * Learns which of 4 Gaussian blobs a point came from.
 *   train_nn [--eager] */
#include <kiln.h>

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    bool hybridize = !(argc > 1 && !strcmp(argv[1], "--eager"));
    kn_manual_seed(0);
    /* data: 512 points around 4 centres, label = centre */
    int64_t n = 512, xs[2] = {512, 2};
    kn_tensor *x = kn_tensor_rand_normal(KN_F32, 2, xs, 0, 0.6);
    kn_tensor *y = kn_tensor_zeros(KN_I64, 1, &n);
    static const double centre[4][2] = {{2, 2}, {-2, 2}, {-2, -2}, {2, -2}};
    for (int64_t i = 0; i < n; i++) {
        double v[2];
        for (int d = 0; d < 2; d++) {
            kn_tensor_get(x, (int64_t[]){i, d}, &v[d]);
            kn_tensor_set(x, (int64_t[]){i, d}, v[d] + centre[i % 4][d]);
        }
        kn_tensor_set(y, &i, (double)(i % 4));
    }

    kn_block *net = kn_nn_sequential(); /* in_units 0: taken from the first batch */
    kn_sequential_add(net, kn_nn_dense(0, 32, true, KN_ACT_RELU));
    kn_sequential_add(net, kn_nn_dense(0, 4, true, KN_ACT_NONE));
    if (kn_block_init_shapes(net, 1, &x)) return fprintf(stderr, "%s\n", kn_last_error()), 1;
    if (hybridize) kn_block_hybridize(net, KN_HYBRIDIZE_ON);

    kn_tensor *params[8];
    int np = kn_block_trainable_params(net, 8, params);
    kn_optim_config oc = kn_optim_defaults(KN_OPTIM_SGD);
    oc.lr = 0.1, oc.momentum = 0.9;
    kn_optimizer *opt = kn_optimizer_new(KN_OPTIM_SGD, &oc);
    kn_optimizer_add_group(opt, np, params, NULL);
    kn_lr_schedule cos = kn_lr_schedule_defaults(KN_LR_COSINE);
    cos.t_max = 100;
    kn_trainer *trainer = kn_trainer_new(opt, &cos, 0);
    kn_train_step *step = kn_train_step_new(net, trainer, NULL, NULL); /* cross-entropy */
    kn_metric *acc = kn_metric_new(KN_METRIC_ACCURACY, NULL);

    for (int it = 1; it <= 100; it++) {
        kn_tensor *loss = NULL, *logits = NULL;
        if (kn_train_step_run(step, x, y, &loss, &logits)) return fprintf(stderr, "%s\n", kn_last_error()), 1;
        if (it % 25 == 0) {
            double l;
            kn_tensor_item(loss, &l);
            kn_metric_reset(acc);
            kn_metric_update(acc, logits, y);
            printf("step %3d  loss %.4f  accuracy %.3f\n", it, l, kn_metric_value(acc));
        }
        kn_tensor_unref(loss), kn_tensor_unref(logits);
    }
    kn_metric_free(acc);
    kn_train_step_free(step);
    kn_trainer_free(trainer);
    kn_optimizer_free(opt);
    kn_block_free(net);
    kn_tensor_unref(x), kn_tensor_unref(y);
    return 0;
}
