/* Test harness for one op: builds a one-node graph on the device, checks its
 * forward pass against a plain-C double-precision reference, and its
 * backward pass against central finite differences of that reference.
 *
 *   forward:  |gpu - ref| <= atol + rtol * |ref|, every output element;
 *   backward: for a random upstream gradient g, d<g, f(x)>/dx from the
 *             device against (<g,f(x+h)> - <g,f(x-h)>) / 2h in double, for
 *             every element of every differentiable input. Points where two
 *             step sizes disagree (a kink of ReLU or max) are skipped; at
 *             most 5% may be.
 * Inputs are uniform in [lo, hi] from a fixed seed unless given. */
#ifndef LVK_OP_HARNESS_H
#define LVK_OP_HARNESS_H

#include <stdbool.h>

#include "nn/graph.h"

#define LVK_TEST_MAX_IO 8

struct lvk_op_case;

/* Reference forward in double. in[i] has shape c->in_shape[i] (NULL for an
 * omitted input), out[j] has the shape the engine inferred (out_shape[j]). */
typedef void (*lvk_ref_fwd_fn)(const struct lvk_op_case *c, const double *const *in,
                               double *const *out, const struct lvk_shape *out_shape);

struct lvk_op_case {
    const char *op_type;
    int ninputs;
    struct lvk_shape in_shape[LVK_TEST_MAX_IO];
    /* Input kinds: graph input (differentiated), float constant (weights:
     * not differentiated), int64 constant (shape operands), or omitted. */
    enum { LVK_IN_RUNTIME, LVK_IN_CONST, LVK_IN_CONST_I64, LVK_IN_NONE } in_kind[LVK_TEST_MAX_IO];
    const void *in_data[LVK_TEST_MAX_IO]; /* NULL: random (floats) */
    float lo, hi;                         /* random range, default [-1, 1] when equal */
    const struct lvk_attr *attrs;
    int nattrs;
    int noutputs;                         /* default 1 */
    lvk_ref_fwd_fn ref;
    double rtol, atol;                    /* forward tolerance (default 1e-4, 1e-5) */
    double grad_tol;                      /* backward, relative to max |grad| (default 1e-3) */
    bool no_backward;                     /* op has no bwd (shape ops) */
    unsigned seed;
    int opset;                            /* model opset (default 13) */
    void *user;                           /* for the reference */
};

/* Runs forward and backward checks with cmocka assertions. The device
 * context is shared by all cases of a test executable. */
void lvk_test_op(const struct lvk_op_case *c);

/* The shared context (created on first use; NULL if there is no device, in
 * which case the caller should skip()). */
struct lvk_ctx *lvk_test_ctx(void);
/* Fails the current test if the validation layer reported anything. */
void lvk_test_assert_no_validation(void);

/* Row-major index helpers for references. */
static inline int64_t lvk_idx4(const struct lvk_shape *s, int64_t a, int64_t b, int64_t c, int64_t d)
{
    return ((a * s->d[1] + b) * s->d[2] + c) * s->d[3] + d;
}

#endif
