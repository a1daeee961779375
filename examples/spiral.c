/* spiral.c — the `make demo` example: a two-layer MLP learns to separate
 * three interleaved 2-D spirals, trained with kiln's eager ops, autograd and
 * plain SGD. Prints the loss going down and the final training accuracy. */
#include <kiln.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define CLASSES 3
#define PER_CLASS 100
#define N (CLASSES * PER_CLASS)
#define HIDDEN 64
#define STEPS 1500

static int fail(const char *what)
{
    fprintf(stderr, "spiral: %s failed: %s\n", what, kn_last_error());
    return 1;
}

/* Points along three arms: radius grows with t, angle = class offset + 4t + noise. */
static void make_spirals(float *x, int64_t *y)
{
    int64_t shape[1] = {N};
    kn_manual_seed(7);
    kn_tensor *noise = kn_tensor_rand_normal(KN_F32, 1, shape, 0, 0.2);
    const float *nz = kn_tensor_data(noise);
    for (int c = 0; c < CLASSES; c++) {
        for (int i = 0; i < PER_CLASS; i++) {
            int k = c * PER_CLASS + i;
            float r = (float)i / PER_CLASS;
            float angle = (float)c * 4.0f + r * 4.0f + nz[k];
            x[2 * k] = r * sinf(angle);
            x[2 * k + 1] = r * cosf(angle);
            y[k] = c;
        }
    }
    kn_tensor_unref(noise);
}

/* param -= lr * grad, outside the recorded graph. */
static kn_status sgd_step(kn_tensor *param, double lr)
{
    kn_tensor *step = kn_mul_scalar(kn_tensor_grad(param), -lr);
    kn_tensor *next = kn_add(param, step);
    kn_status s = next ? kn_tensor_copy_(param, next) : kn_last_status();
    kn_tensor_unref(step);
    kn_tensor_unref(next);
    kn_tensor_zero_grad(param);
    return s;
}

static double accuracy(kn_tensor *logits, kn_tensor *labels)
{
    kn_tensor *pred = kn_argmax(logits, 1, false);
    kn_tensor *hit = kn_eq(pred, labels);
    kn_tensor *as_float = kn_cast(hit, KN_F32);
    kn_tensor *mean = kn_mean(as_float, 0, NULL, false);
    double acc = -1;
    if (mean) kn_tensor_item(mean, &acc);
    kn_tensor_unref(pred), kn_tensor_unref(hit), kn_tensor_unref(as_float), kn_tensor_unref(mean);
    return acc;
}

int main(void)
{
    static float xs[N * 2];
    static int64_t ys[N];
    make_spirals(xs, ys);
    int64_t xshape[2] = {N, 2}, yshape[1] = {N};
    int64_t w1s[2] = {HIDDEN, 2}, b1s[1] = {HIDDEN}, w2s[2] = {CLASSES, HIDDEN}, b2s[1] = {CLASSES};
    kn_tensor *x = kn_tensor_from_data(KN_F32, 2, xshape, xs);
    kn_tensor *y = kn_tensor_from_data(KN_I64, 1, yshape, ys);
    kn_tensor *w1 = kn_tensor_rand_normal(KN_F32, 2, w1s, 0, 1.0);
    kn_tensor *b1 = kn_tensor_zeros(KN_F32, 1, b1s);
    kn_tensor *w2 = kn_tensor_rand_normal(KN_F32, 2, w2s, 0, 0.1);
    kn_tensor *b2 = kn_tensor_zeros(KN_F32, 1, b2s);
    kn_tensor *params[4] = {w1, b1, w2, b2};
    for (int i = 0; i < 4; i++)
        if (!params[i] || kn_tensor_set_requires_grad(params[i], true)) return fail("init");
    printf("kiln %s: 2-layer MLP (2-%d-%d) on %d spiral points, SGD\n", kn_version(), HIDDEN,
           CLASSES, N);
    double first = 0, loss_value = 0;
    for (int step = 0; step <= STEPS; step++) {
        kn_autograd_record(true);
        kn_tensor *h = kn_linear(x, w1, b1);
        kn_tensor *a = kn_relu(h);
        kn_tensor *logits = kn_linear(a, w2, b2);
        kn_tensor *loss = kn_cross_entropy(logits, y, NULL, NULL);
        kn_autograd_record(false);
        if (!loss || kn_backward(loss, NULL)) return fail("forward/backward");
        kn_tensor_item(loss, &loss_value);
        if (step == 0) first = loss_value;
        if (step % 250 == 0)
            printf("step %4d  loss %.4f  accuracy %.3f\n", step, loss_value, accuracy(logits, y));
        for (int i = 0; i < 4; i++)
            if (sgd_step(params[i], 1.0)) return fail("sgd step");
        kn_tensor_unref(h), kn_tensor_unref(a), kn_tensor_unref(logits), kn_tensor_unref(loss);
    }
    printf("loss %.4f -> %.4f\n", first, loss_value);
    for (int i = 0; i < 4; i++)
        kn_tensor_unref(params[i]);
    kn_tensor_unref(x), kn_tensor_unref(y);
    return loss_value < first / 4 ? 0 : 1;
}
