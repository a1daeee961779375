/* test_zz_coverage.c — runs after every other test (ctest DEPENDS) and reads
 * the coverage marks they left: every registered op must have a forward
 * test, a gradient test (or a test that it has none) and a bad-input test.
 * Also checks the registry itself: unique names, an infer function and a way
 * to compute (kernels, view or composite) for each op. */
#include "harness.h"

#include "ops/op.h"

#include <stdlib.h>

static int op_kinds(const char *name, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char op[128];
    int kinds, all = 0;
    while (fscanf(f, "%127s %d", op, &kinds) == 2)
        if (strcmp(op, name) == 0) all |= kinds;
    fclose(f);
    return all;
}

static void test_registry_shape(void)
{
    for (int i = 0; i < kn_op_count(); i++) {
        const kn_op_def *op = kn_op_at(i);
        KT_CHECK(op && op->name && op->infer, "op %d has a name and an infer", i);
        KT_CHECK(op->impls || op->view || op->compose, "%s has a way to compute", op->name);
        KT_CHECK(kn_op_find(op->name) == op, "%s is found by name (unique)", op->name);
        KT_CHECK(op->attrs_size > 0 || op->n_attrs == 0, "%s: attrs without a struct", op->name);
        for (int a = 0; a < op->n_attrs; a++)
            KT_CHECK(op->attrs[a].name && op->attrs[a].offset < op->attrs_size, "%s attr %d",
                     op->name, a);
    }
    KT_CHECK(kn_op_find("no_such_op") == NULL, "unknown name");
    KT_CHECK(kn_op_at(-1) == NULL && kn_op_at(kn_op_count()) == NULL, "out of range");
}

static void test_every_op_tested(void)
{
    const char *path = getenv("KILN_COVERAGE_FILE");
    if (!path) {
        printf("KILN_COVERAGE_FILE not set: run through ctest\n");
        return;
    }
    int complete = 0;
    printf("%-24s fwd grad bad\n", "op");
    for (int i = 0; i < kn_op_count(); i++) {
        const char *name = kn_op_name(kn_op_at(i));
        int k = op_kinds(name, path);
        bool ok = (k & (KT_FWD | KT_GRAD | KT_BAD)) == (KT_FWD | KT_GRAD | KT_BAD);
        complete += ok;
        printf("%-24s %-3s %-4s %-3s%s\n", name, k & KT_FWD ? "yes" : "NO",
               k & KT_GRAD ? "yes" : "NO", k & KT_BAD ? "yes" : "NO",
               ok ? "" : "   <- missing tests");
        KT_CHECK(ok, "op %s lacks forward, gradient or bad-input tests", name);
    }
    printf("ops registered: %d, with forward + gradient + bad-input tests: %d\n", kn_op_count(),
           complete);
}

int main(void)
{
    KT_RUN(test_registry_shape);
    KT_RUN(test_every_op_tested);
    return kt_finish();
}
