/* block_impl.h — the kn_block struct, shared by block.c (calls, tracing,
 * the hybridize cache) and block_params.c (parameter management). */
#ifndef KILN_GRAPH_BLOCK_IMPL_H
#define KILN_GRAPH_BLOCK_IMPL_H

#include "graph.h"

#define MAX_PARAMS 4096
#define CACHE_SIZE 8
#define MAX_IO 64
#define MAX_CHILDREN 256

typedef struct signature {
    int n_in;
    bool training;
    bool grad; /* autograd records and something requires a gradient */
    kn_dtype dtype[MAX_IO];
    int ndim[MAX_IO];
    int64_t shape[MAX_IO][KN_MAX_DIMS];
} signature;

typedef struct cache_entry {
    signature sig;
    kn_graph *graph;
    uint64_t param_versions; /* inference graphs: the parameters' versions summed at compile */
    uint64_t last_used;
} cache_entry;

struct kn_block {
    char *name;
    kn_forward_fn forward;
    void *user;
    int n_params;
    char **param_names;
    kn_tensor **params;  /* references */
    kn_tensor **proxies; /* while tracing: symbolic stand-ins */
    uint8_t *param_flags; /* PARAM_STATE, PARAM_FROZEN */
    bool training, hybridized, tracing;
    kn_graph *trace_graph;   /* while tracing: the graph and this block's path prefix, */
    char trace_prefix[512];  /* so parameters added by a deferred first call join it */
    void (*user_free)(void *user);
    cache_entry cache[CACHE_SIZE];
    uint64_t clock;
    kn_graph *last_graph;
    int64_t traces; /* times forward was traced (for tests and stats) */
    /* child blocks (owned), and the parameters of the whole tree flattened
     * with hierarchical names ("layer1.conv.weight"), rebuilt when stale */
    int n_children;
    char *child_names[MAX_CHILDREN];
    kn_block *children[MAX_CHILDREN];
    kn_block *parent;
    int n_flat;
    char **flat_names;
    kn_tensor **flat_params; /* borrowed */
    uint8_t *flat_flags;
    bool flat_stale;
};

enum { PARAM_STATE = 1, PARAM_FROZEN = 2 };

/* Index of b's own parameter `name`, or -1. */
int kn__block_find_param(const kn_block *b, const char *name);
/* Rebuilds the flattened tree listing when stale. */
kn_status kn__block_rebuild_flat(kn_block *b);
/* b and its ancestors: drops cached graphs and flat lists. */
void kn__block_changed(kn_block *b);

#endif
