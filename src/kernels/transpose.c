/* transpose.c — recognizes copies that are batches of 2-D transposes and runs
 * them with the blocked kernels (src/kernels/x86/avx512/transpose.c), in
 * parallel over (batch, 64-row block) tasks. Each output element is written
 * once by one task, so the result never depends on the thread count. */
#include "transpose.h"

#include "../base/base.h"

typedef struct tr_job {
    void (*kernel)(const void *, int64_t, void *, int64_t, int64_t, int64_t);
    const char *src;
    char *dst;
    int64_t batch_src, batch_dst; /* bytes */
    int64_t lds, rows, cols, row_blocks;
    size_t es;
} tr_job;

#define TR_ROWS 64 /* dst rows per task */

static void tr_range(int64_t begin, int64_t end, void *arg)
{
    const tr_job *j = arg;
    for (int64_t t = begin; t < end; t++) {
        int64_t b = t / j->row_blocks, i0 = (t % j->row_blocks) * TR_ROWS;
        int64_t ni = j->rows - i0 < TR_ROWS ? j->rows - i0 : TR_ROWS;
        const char *s = j->src + b * j->batch_src + i0 * (int64_t)j->es;
        char *d = j->dst + b * j->batch_dst + i0 * j->cols * (int64_t)j->es;
        j->kernel(s, j->lds, d, j->cols, ni, j->cols);
    }
}

bool kn__copy_transposed(int nd, const int64_t *shape, const int64_t *sd, const int64_t *ss,
                         char *dst, const char *src, size_t elem_size)
{
#if KILN_X86
    int64_t es = (int64_t)elem_size;
    if ((es != 4 && es != 2) || kn_isa_max() < KN_ISA_AVX512 || (nd != 2 && nd != 3)) return false;
    int64_t rows = shape[nd - 2], cols = shape[nd - 1];
    int64_t batch = nd == 3 ? shape[0] : 1;
    /* dst contiguous (rows, cols); src: rows step one element, cols step lds */
    if (sd[nd - 1] != es || sd[nd - 2] != cols * es || ss[nd - 2] != es) return false;
    if (ss[nd - 1] <= 0 || ss[nd - 1] % es != 0) return false;
    if (nd == 3 && (sd[0] != rows * cols * es || ss[0] < 0)) return false;
    if (rows < 2 || cols < 2 || batch * rows * cols < 1024) return false;
    tr_job j = {es == 4 ? kn__transpose32_avx512 : kn__transpose16_avx512,
                src,
                dst,
                nd == 3 ? ss[0] : 0,
                nd == 3 ? sd[0] : 0,
                ss[nd - 1] / es,
                rows,
                cols,
                (rows + TR_ROWS - 1) / TR_ROWS,
                elem_size};
    int64_t tasks = batch * j.row_blocks, per_task = TR_ROWS * cols;
    int64_t grain = (32768 + per_task - 1) / per_task;
    kn_parallel_for(tasks, grain, tr_range, &j);
    return true;
#else
    (void)nd, (void)shape, (void)sd, (void)ss, (void)dst, (void)src, (void)elem_size;
    return false;
#endif
}
