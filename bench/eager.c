/* eager.c — per-op dispatch overhead of eager mode on tiny tensors: a chain
 * of 1000 calls per case, best of several repeats, microseconds per op.
 * Prints "case us_per_op" lines; bench/eager.py puts PyTorch beside them. */
#include <kiln.h>

#include <stdio.h>
#include <time.h>

#define CHAIN 1000
#define REPEATS 20

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

typedef kn_tensor *(*step_fn)(kn_tensor *x, kn_tensor *other);
static kn_tensor *add_step(kn_tensor *x, kn_tensor *o)
{
    return kn_add(x, o);
}
static kn_tensor *mul_step(kn_tensor *x, kn_tensor *o)
{
    return kn_mul(x, o);
}
static kn_tensor *matmul_step(kn_tensor *x, kn_tensor *o)
{
    return kn_matmul(x, o);
}
static kn_tensor *relu_step(kn_tensor *x, kn_tensor *o)
{
    (void)o;
    return kn_relu(x);
}
static kn_tensor *sum_step(kn_tensor *x, kn_tensor *o)
{
    (void)o;
    int axis = 1;
    kn_tensor *s = kn_sum(x, 1, &axis, true);
    kn_tensor *r = kn_expand(s, kn_tensor_ndim(x), kn_tensor_shape(x));
    kn_tensor_unref(s);
    return r;
}

static double run_chain(step_fn f, kn_tensor *x0, kn_tensor *other, int ops_per_step)
{
    double best = 1e30;
    for (int r = 0; r < REPEATS; r++) {
        kn_tensor *x = kn_tensor_ref(x0);
        double t0 = now_us();
        for (int i = 0; i < CHAIN; i++) {
            kn_tensor *y = f(x, other);
            kn_tensor_unref(x);
            x = y;
            if (!x) {
                fprintf(stderr, "bench: op failed: %s\n", kn_last_error());
                return -1;
            }
        }
        double dt = (now_us() - t0) / (CHAIN * ops_per_step);
        kn_tensor_unref(x);
        if (dt < best) best = dt;
    }
    return best;
}

int main(void)
{
    int64_t row[2] = {1, 16}, sq[2] = {16, 16};
    kn_tensor *a = kn_tensor_full(KN_F32, 2, row, 0.5), *b = kn_tensor_full(KN_F32, 2, row, 1e-3);
    kn_tensor *m = kn_tensor_rand_uniform(KN_F32, 2, sq, -0.1, 0.1);
    kn_tensor *e = kn_tensor_eye(KN_F32, 16, 16);
    struct {
        const char *name;
        step_fn f;
        kn_tensor *x, *o;
        int ops;
    } cases[] = {
        {"add_1x16", add_step, a, b, 1},           {"mul_1x16", mul_step, a, b, 1},
        {"relu_1x16", relu_step, a, NULL, 1},      {"matmul_16x16", matmul_step, m, e, 1},
        {"sum_expand_1x16", sum_step, a, NULL, 2},
    };
    printf("# kiln eager dispatch, %d threads, us per op\n", kn_get_num_threads());
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        printf("%s %.3f\n", cases[i].name,
               run_chain(cases[i].f, cases[i].x, cases[i].o, cases[i].ops));
    kn_tensor_unref(a), kn_tensor_unref(b), kn_tensor_unref(m), kn_tensor_unref(e);
    return 0;
}
