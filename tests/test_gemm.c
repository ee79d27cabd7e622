/* Tests of Gemm and MatMul (src/nn/ops/gemm.c): forward against
 * double-precision products, gradients of every runtime input (A, B, C)
 * against finite differences (tests/support/op_harness.h).
 *
 * The references index the stored operands directly (transposes, C
 * broadcasting, numpy batch broadcasting, 1-D promotion), independently of
 * the strides and pair tables the op derives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "support/op_harness.h"

#define GEMM_ATOL 1e-4 /* float32 sums of up to ~40 products of O(1) terms */

#define A_INT(nm, v) {.name = nm, .type = LVK_ATTR_INT, .i = (v)}
#define A_FLOAT(nm, v) {.name = nm, .type = LVK_ATTR_FLOAT, .f = (v)}

#define SHAPE(...)                                                                       \
    {.ndim = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), .d = {__VA_ARGS__}}

/* ---- Gemm ------------------------------------------------------------------------ */

struct gemm_ref {
    bool ta, tb;
    double alpha, beta;
};

static void gemm_ref_fwd(const struct lvk_op_case *c, const double *const *in,
                         double *const *out, const struct lvk_shape *os)
{
    const struct gemm_ref *r = c->user;
    const struct lvk_shape *as = &c->in_shape[0], *bs = &c->in_shape[1];
    int64_t m = r->ta ? as->d[1] : as->d[0], k = r->ta ? as->d[0] : as->d[1];
    int64_t n = r->tb ? bs->d[0] : bs->d[1];
    const double *cv = c->ninputs > 2 && c->in_kind[2] != LVK_IN_NONE ? in[2] : NULL;
    const struct lvk_shape *cs = &c->in_shape[2];
    assert_int_equal(os->ndim, 2);
    assert_int_equal(os->d[0], m);
    assert_int_equal(os->d[1], n);

    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double acc = 0.0;
            for (int64_t kk = 0; kk < k; kk++) {
                double a = r->ta ? in[0][kk * m + i] : in[0][i * k + kk];
                double b = r->tb ? in[1][j * k + kk] : in[1][kk * n + j];
                acc += a * b;
            }
            double bias = 0.0;
            if (cv) {
                /* Right-aligned broadcast of C's (at most two) dims. */
                int64_t cr = cs->ndim == 2 ? cs->d[0] : 1, cc = cs->ndim ? cs->d[cs->ndim - 1] : 1;
                bias = cv[(cr == 1 ? 0 : i) * cc + (cc == 1 ? 0 : j)];
            }
            out[0][i * n + j] = r->alpha * acc + r->beta * bias;
        }
}

static void gemm_run(struct lvk_shape a, struct lvk_shape b, int bkind, struct lvk_shape cshape,
                     int ckind, const struct gemm_ref *r)
{
    if (!lvk_test_ctx())
        skip();
    const struct lvk_attr attrs[] = {
        A_INT("transA", r->ta), A_INT("transB", r->tb),
        A_FLOAT("alpha", (float)r->alpha), A_FLOAT("beta", (float)r->beta),
    };
    struct lvk_op_case c = {
        .op_type = "Gemm",
        .ninputs = ckind == LVK_IN_NONE ? 2 : 3,
        .in_shape = {a, b, cshape},
        .in_kind = {LVK_IN_RUNTIME, bkind, ckind},
        .attrs = attrs,
        .nattrs = 4,
        .ref = gemm_ref_fwd,
        .atol = GEMM_ATOL,
        .seed = 77,
        .user = (void *)r,
    };
    lvk_test_op(&c);
}

/* The classifier layer of a CNN: x [batch, features] times W^T + b. */
static void test_gemm_fc_transB_vector_bias(void **state)
{
    const struct gemm_ref r = {.tb = true, .alpha = 1.0, .beta = 1.0};
    gemm_run((struct lvk_shape)SHAPE(2, 37), (struct lvk_shape)SHAPE(19, 37), LVK_IN_CONST,
             (struct lvk_shape)SHAPE(19), LVK_IN_CONST, &r);
}

static void test_gemm_all_attributes(void **state)
{
    const struct gemm_ref r = {.ta = true, .tb = true, .alpha = 0.25, .beta = 0.35};
    gemm_run((struct lvk_shape)SHAPE(5, 3), (struct lvk_shape)SHAPE(4, 5), LVK_IN_CONST,
             (struct lvk_shape)SHAPE(1, 4), LVK_IN_CONST, &r);
}

static void test_gemm_transA_no_bias(void **state)
{
    const struct gemm_ref r = {.ta = true, .alpha = 1.5, .beta = 1.0};
    gemm_run((struct lvk_shape)SHAPE(6, 7), (struct lvk_shape)SHAPE(6, 5), LVK_IN_CONST,
             (struct lvk_shape){0}, LVK_IN_NONE, &r);
}

/* Every input on the gradient path; C broadcast along columns, a reduction
 * in its gradient. */
static void test_gemm_runtime_b_c_column(void **state)
{
    const struct gemm_ref r = {.alpha = 0.5, .beta = 2.0};
    gemm_run((struct lvk_shape)SHAPE(3, 5), (struct lvk_shape)SHAPE(5, 4), LVK_IN_RUNTIME,
             (struct lvk_shape)SHAPE(3, 1), LVK_IN_RUNTIME, &r);
}

static void test_gemm_runtime_c_full(void **state)
{
    const struct gemm_ref r = {.tb = true, .alpha = 1.0, .beta = -0.75};
    gemm_run((struct lvk_shape)SHAPE(4, 3), (struct lvk_shape)SHAPE(6, 3), LVK_IN_RUNTIME,
             (struct lvk_shape)SHAPE(4, 6), LVK_IN_RUNTIME, &r);
}

static void test_gemm_runtime_c_row_and_scalar(void **state)
{
    const struct gemm_ref r = {.alpha = 1.0, .beta = 0.5};
    gemm_run((struct lvk_shape)SHAPE(3, 4), (struct lvk_shape)SHAPE(4, 5), LVK_IN_CONST,
             (struct lvk_shape)SHAPE(5), LVK_IN_RUNTIME, &r);
    gemm_run((struct lvk_shape)SHAPE(3, 4), (struct lvk_shape)SHAPE(4, 5), LVK_IN_CONST,
             (struct lvk_shape){.ndim = 0}, LVK_IN_RUNTIME, &r);
}

/* Several workgroups in both directions, and column/row block tails. */
static void test_gemm_wide(void **state)
{
    const struct gemm_ref r = {.alpha = 1.0, .beta = 1.0};
    gemm_run((struct lvk_shape)SHAPE(9, 33), (struct lvk_shape)SHAPE(33, 301), LVK_IN_CONST,
             (struct lvk_shape)SHAPE(9, 1), LVK_IN_CONST, &r);
}

/* ---- MatMul ------------------------------------------------------------------------ */

/* numpy.matmul: 1-D A is a row, 1-D B a column (dimension dropped from the
 * output); batch dimensions broadcast right-aligned. */
static void matmul_ref_fwd(const struct lvk_op_case *c, const double *const *in,
                           double *const *out, const struct lvk_shape *os)
{
    const struct lvk_shape *as = &c->in_shape[0], *bs = &c->in_shape[1];
    bool a1 = as->ndim == 1, b1 = bs->ndim == 1;
    int64_t m = a1 ? 1 : as->d[as->ndim - 2], k = as->d[as->ndim - 1];
    int64_t n = b1 ? 1 : bs->d[bs->ndim - 1];
    int na = a1 ? 0 : as->ndim - 2, nb = b1 ? 0 : bs->ndim - 2;
    int nd = na > nb ? na : nb;
    int64_t bo[LVK_MAX_DIMS], ba[LVK_MAX_DIMS], bb[LVK_MAX_DIMS];
    int64_t nout = 1;
    for (int d = 0; d < nd; d++) {
        ba[d] = d - (nd - na) >= 0 ? as->d[d - (nd - na)] : 1;
        bb[d] = d - (nd - nb) >= 0 ? bs->d[d - (nd - nb)] : 1;
        bo[d] = ba[d] > bb[d] ? ba[d] : bb[d];
        nout *= bo[d];
    }
    assert_int_equal(os->ndim, nd + !a1 + !b1);
    for (int d = 0; d < nd; d++)
        assert_int_equal(os->d[d], bo[d]);

    for (int64_t ob = 0; ob < nout; ob++) {
        int64_t rem = ob, ia = 0, ib = 0, sa = 1, sb = 1;
        for (int d = nd - 1; d >= 0; d--) {
            int64_t i = rem % bo[d];
            rem /= bo[d];
            ia += (ba[d] == 1 ? 0 : i) * sa;
            ib += (bb[d] == 1 ? 0 : i) * sb;
            sa *= ba[d];
            sb *= bb[d];
        }
        const double *a = in[0] + ia * m * k, *b = in[1] + ib * k * n;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double acc = 0.0;
                for (int64_t kk = 0; kk < k; kk++)
                    acc += a[i * k + kk] * b[kk * n + j];
                out[0][(ob * m + i) * n + j] = acc;
            }
    }
}

static void matmul_run(struct lvk_shape a, int akind, struct lvk_shape b, int bkind)
{
    if (!lvk_test_ctx())
        skip();
    struct lvk_op_case c = {
        .op_type = "MatMul",
        .ninputs = 2,
        .in_shape = {a, b},
        .in_kind = {akind, bkind},
        .ref = matmul_ref_fwd,
        .atol = GEMM_ATOL,
        .seed = 99,
    };
    lvk_test_op(&c);
}

static void test_matmul_2d(void **state)
{
    matmul_run((struct lvk_shape)SHAPE(5, 7), LVK_IN_RUNTIME, (struct lvk_shape)SHAPE(7, 3),
               LVK_IN_RUNTIME);
}

/* N-D x constant 2-D: the batches fold into rows. */
static void test_matmul_batched_const_b(void **state)
{
    matmul_run((struct lvk_shape)SHAPE(2, 3, 5, 7), LVK_IN_RUNTIME, (struct lvk_shape)SHAPE(7, 4),
               LVK_IN_CONST);
}

/* Folded rows with B on the gradient path: dB sums over every batch. */
static void test_matmul_batched_runtime_b(void **state)
{
    matmul_run((struct lvk_shape)SHAPE(2, 3, 5), LVK_IN_RUNTIME, (struct lvk_shape)SHAPE(5, 4),
               LVK_IN_RUNTIME);
}

/* Both operands batched and broadcast against each other: A's batch dim 1
 * feeds three outputs, B's missing leading dim two. */
static void test_matmul_broadcast_batches(void **state)
{
    matmul_run((struct lvk_shape)SHAPE(2, 1, 3, 4), LVK_IN_RUNTIME,
               (struct lvk_shape)SHAPE(3, 4, 5), LVK_IN_RUNTIME);
}

static void test_matmul_const_a(void **state)
{
    matmul_run((struct lvk_shape)SHAPE(4, 5), LVK_IN_CONST, (struct lvk_shape)SHAPE(2, 5, 6),
               LVK_IN_RUNTIME);
}

static void test_matmul_1d_operands(void **state)
{
    matmul_run((struct lvk_shape)SHAPE(7), LVK_IN_RUNTIME, (struct lvk_shape)SHAPE(7, 4),
               LVK_IN_RUNTIME);
    matmul_run((struct lvk_shape)SHAPE(3, 5, 7), LVK_IN_RUNTIME, (struct lvk_shape)SHAPE(7),
               LVK_IN_RUNTIME);
    matmul_run((struct lvk_shape)SHAPE(4), LVK_IN_RUNTIME, (struct lvk_shape)SHAPE(2, 4, 3),
               LVK_IN_RUNTIME);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_fc_transB_vector_bias),
        cmocka_unit_test(test_gemm_all_attributes),
        cmocka_unit_test(test_gemm_transA_no_bias),
        cmocka_unit_test(test_gemm_runtime_b_c_column),
        cmocka_unit_test(test_gemm_runtime_c_full),
        cmocka_unit_test(test_gemm_runtime_c_row_and_scalar),
        cmocka_unit_test(test_gemm_wide),
        cmocka_unit_test(test_matmul_2d),
        cmocka_unit_test(test_matmul_batched_const_b),
        cmocka_unit_test(test_matmul_batched_runtime_b),
        cmocka_unit_test(test_matmul_broadcast_batches),
        cmocka_unit_test(test_matmul_const_a),
        cmocka_unit_test(test_matmul_1d_operands),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
