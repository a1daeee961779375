/* hybridize.c — per-op overhead of a chain of 1000 tiny ops (1×16 f32:
 * add, mul, relu, sigmoid in turn) and of a small MLP at batch 1, eager vs
 * hybridized. Prints "case mode us" lines; bench/hybridize.py adds PyTorch
 * eager and torch.jit beside them. */
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

static kn_status chain_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                               kn_tensor **out, void *user)
{
    (void)n_in, (void)n_out, (void)user;
    kn_tensor *c = kn_block_param(b, "c");
    kn_tensor *x = kn_tensor_ref(in[0]);
    for (int i = 0; i < CHAIN && x; i++) {
        kn_tensor *y;
        switch (i % 4) {
        case 0: y = kn_add(x, c); break;
        case 1: y = kn_mul(x, c); break;
        case 2: y = kn_relu(x); break;
        default: y = kn_sigmoid(x); break;
        }
        kn_tensor_unref(x);
        x = y;
    }
    out[0] = x;
    return x ? KN_OK : kn_last_status();
}

static kn_status mlp_forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out,
                             kn_tensor **out, void *user)
{
    (void)n_in, (void)n_out, (void)user;
    kn_tensor *h = kn_linear(in[0], kn_block_param(b, "w1"), kn_block_param(b, "b1"));
    kn_tensor *a = kn_relu(h);
    kn_tensor *z = kn_linear(a, kn_block_param(b, "w2"), kn_block_param(b, "b2"));
    out[0] = kn_softmax(z, -1);
    kn_tensor_unref(h), kn_tensor_unref(a), kn_tensor_unref(z);
    return out[0] ? KN_OK : kn_last_status();
}

/* Best time of one forward, in microseconds. */
static double time_forward(kn_block *b, kn_tensor *x)
{
    double best = 1e30;
    for (int r = 0; r < REPEATS; r++) {
        kn_tensor *y = NULL;
        double t0 = now_us();
        if (kn_block_forward(b, 1, &x, 1, &y)) {
            fprintf(stderr, "bench: %s\n", kn_last_error());
            return -1;
        }
        double dt = now_us() - t0;
        kn_tensor_unref(y);
        if (dt < best) best = dt;
    }
    return best;
}

int main(void)
{
    int64_t row[2] = {1, 16}, w1[2] = {64, 32}, b1[1] = {64}, w2[2] = {10, 64}, b2[1] = {10},
            xin[2] = {1, 32};
    kn_block *chain = kn_block_new("chain", chain_forward, NULL);
    kn_tensor *c = kn_tensor_full(KN_F32, 2, row, 0.5), *x = kn_tensor_full(KN_F32, 2, row, 0.1);
    kn_block_add_param(chain, "c", c);
    kn_block *mlp = kn_block_new("mlp", mlp_forward, NULL);
    kn_tensor *p[4] = {kn_tensor_rand_normal(KN_F32, 2, w1, 0, 0.1), kn_tensor_zeros(KN_F32, 1, b1),
                       kn_tensor_rand_normal(KN_F32, 2, w2, 0, 0.1), kn_tensor_zeros(KN_F32, 1, b2)};
    const char *names[4] = {"w1", "b1", "w2", "b2"};
    for (int i = 0; i < 4; i++)
        kn_block_add_param(mlp, names[i], p[i]);
    kn_tensor *xm = kn_tensor_rand_normal(KN_F32, 2, xin, 0, 1);
    printf("# kiln, %d threads\n", kn_get_num_threads());
    printf("chain eager %.3f\n", time_forward(chain, x) / CHAIN);
    kn_block_hybridize(chain, KN_HYBRIDIZE_ON);
    printf("chain hybridized %.3f\n", time_forward(chain, x) / CHAIN);
    printf("mlp eager %.3f\n", time_forward(mlp, xm));
    kn_block_hybridize(mlp, KN_HYBRIDIZE_ON);
    printf("mlp hybridized %.3f\n", time_forward(mlp, xm));
    for (int i = 0; i < 4; i++)
        kn_tensor_unref(p[i]);
    kn_tensor_unref(c), kn_tensor_unref(x), kn_tensor_unref(xm);
    kn_block_free(chain), kn_block_free(mlp);
    return 0;
}
