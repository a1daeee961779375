/* pipeline.c — kn_graph_compile: the ordered pass list, switchable off by
 * name (KILN_DISABLE_PASSES=cse,fold) and dumpable after any pass
 * (KILN_DUMP_GRAPH=after:cse), then the execution plan. */
#include "../graph.h"

#include <stdlib.h>

static const struct {
    const char *name;
    kn_pass_fn fn;
} passes[] = {
    {"infer", kn__pass_infer}, {"dce", kn__pass_dce},   {"cse", kn__pass_cse},
    {"fold", kn__pass_fold},   {"inference", kn__pass_inference}, {"bnfold", kn__pass_bnfold},
    {"convfuse", kn__pass_convfuse},
    /* after bnfold and convfuse (their conv patterns are layout-blind and
     * leave fewer nodes to place), before expand (global pools still carry
     * their layout attr) and fuse (elementwise chains inside a region fuse
     * between its edges) */
    {"layout", kn__pass_layout},
    {"expand", kn__pass_expand},
    {"fuse", kn__pass_fuse},
};

/* True when `name` is one of the comma-separated words of `list`. */
static bool listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !strncmp(p, name, n)) return true;
        p = end ? end + 1 : NULL;
    }
    return false;
}

kn_status kn_graph_compile(kn_graph *g, unsigned flags)
{
    if (!g) return kn__error(KN_ERR_ARG, "graph_compile: graph is NULL");
    if (g->n_outputs == 0) return kn__error(KN_ERR_STATE, "graph_compile: the graph has no outputs");
    const char *disabled = getenv("KILN_DISABLE_PASSES"), *dump = getenv("KILN_DUMP_GRAPH");
    const char *dump_after = dump && !strncmp(dump, "after:", 6) ? dump + 6 : NULL;
    g->compile_flags = flags;
    for (int i = 0; i < KN_ARRAY_LEN(passes); i++) {
        if (listed(disabled, passes[i].name)) continue;
        kn_status s = passes[i].fn(g, flags);
        if (s) return s;
        if (dump_after && listed(dump_after, passes[i].name)) {
            fprintf(stderr, "--- graph after %s\n", passes[i].name);
            kn_graph_print(g, stderr);
        }
    }
    kn_status s = kn__plan_build(g);
    if (s) return s;
    g->compiled = true;
    if (g->profiling) kn_graph_set_profiling(g, true); /* node count may have changed */
    return KN_OK;
}
