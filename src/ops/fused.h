/* fused.h — the fused elementwise op the graph's fusion pass builds: a
 * small program of unary/binary engine ops over up to three f32 inputs,
 * evaluated per element in one loop. */
#ifndef KILN_FUSED_H
#define KILN_FUSED_H

#include "elementwise.h"

#define KN_FUSED_MAX_STEPS 16
#define KN_FUSED_MAX_INPUTS 3
#define KN_FUSED_STEP_REF 16 /* operand >= 16: the result of step (operand - 16) */

typedef struct kn_fused_step {
    int32_t op;   /* registry index of a unary or binary elementwise op */
    int32_t a, b; /* operands: input index, or KN_FUSED_STEP_REF + step */
    double alpha, beta; /* attrs of a parametrized unary op */
} kn_fused_step;

typedef struct kn_fused_attrs {
    uint64_t registry; /* kn__registry_fingerprint() when built */
    int32_t n_steps;
    kn_fused_step steps[KN_FUSED_MAX_STEPS];
} kn_fused_attrs;

/* A hash of every op name in registry order: registry indices in attrs are
 * only meaningful for the build that made them. */
uint64_t kn__registry_fingerprint(void);
/* True for ops the fused program can run (unary/binary engine ops with a
 * float result). */
bool kn__fusable_op(const kn_op_def *def);

#endif
