/* export_mlp.c — hybridize a small MLP block, run it once, and export its
 * graph (JSON + safetensors) so it can run without this code:
 *   export_mlp OUT.json OUT.safetensors, then `kiln summary OUT.json`. */
#include <kiln.h>

#include <stdio.h>

static kn_status forward(kn_block *b, int n_in, kn_tensor *const *in, int n_out, kn_tensor **out,
                         void *user)
{
    (void)n_in, (void)n_out, (void)user;
    kn_tensor *h = kn_linear(in[0], kn_block_param(b, "fc1.weight"), kn_block_param(b, "fc1.bias"));
    kn_tensor *a = kn_relu(h);
    kn_tensor *z = kn_linear(a, kn_block_param(b, "fc2.weight"), kn_block_param(b, "fc2.bias"));
    out[0] = kn_softmax(z, -1);
    kn_tensor_unref(h), kn_tensor_unref(a), kn_tensor_unref(z);
    return out[0] ? KN_OK : kn_last_status();
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: export_mlp OUT.json OUT.safetensors\n");
        return 2;
    }
    kn_block *b = kn_block_new("mlp", forward, NULL);
    int64_t w1[2] = {64, 784}, b1[1] = {64}, w2[2] = {10, 64}, b2[1] = {10}, xs[2] = {1, 784};
    kn_tensor *p[4] = {kn_tensor_rand_normal(KN_F32, 2, w1, 0, 0.05), kn_tensor_zeros(KN_F32, 1, b1),
                       kn_tensor_rand_normal(KN_F32, 2, w2, 0, 0.1), kn_tensor_zeros(KN_F32, 1, b2)};
    const char *names[4] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
    for (int i = 0; i < 4; i++) {
        kn_block_add_param(b, names[i], p[i]);
        kn_tensor_unref(p[i]);
    }
    kn_block_hybridize(b, KN_HYBRIDIZE_ON);
    kn_tensor *x = kn_tensor_rand_uniform(KN_F32, 2, xs, 0, 1), *y = NULL;
    kn_status s = kn_block_forward(b, 1, &x, 1, &y);
    if (!s) s = kn_block_export(b, argv[1], argv[2]);
    if (s) fprintf(stderr, "export_mlp: %s\n", kn_last_error());
    kn_tensor_unref(x), kn_tensor_unref(y);
    kn_block_free(b);
    return s ? 1 : 0;
}
