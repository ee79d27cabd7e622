/* Add, Sub, Mul, Div (src/nn/ops/binary.c): numpy broadcasting against a
 * double-precision reference, forward and both operand gradients; constant
 * operands on either side; and load-time folding of float and int64
 * constants (shape arithmetic). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "support/op_harness.h"

/* ---- reference -------------------------------------------------------------------- */

/* Offset in `in` (right-aligned against `out`, numpy style) of element i of out. */
static int64_t bcast_index(const struct lvk_shape *in, const struct lvk_shape *out, int64_t i)
{
    int64_t idx = 0, stride = 1;
    for (int d = out->ndim - 1; d >= 0; --d) {
        int64_t cd = i % out->d[d];
        i /= out->d[d];
        int k = d - (out->ndim - in->ndim);
        if (k >= 0) {
            if (in->d[k] != 1)
                idx += cd * stride;
            stride *= in->d[k];
        }
    }
    return idx;
}

static void ref_binary(const struct lvk_op_case *c, const double *const *in,
                       double *const *out, const struct lvk_shape *out_shape)
{
    for (int64_t i = 0; i < lvk_shape_count(out_shape); ++i) {
        double a = in[0][bcast_index(&c->in_shape[0], out_shape, i)];
        double b = in[1][bcast_index(&c->in_shape[1], out_shape, i)];
        switch (c->op_type[0]) {
        case 'A': out[0][i] = a + b; break;
        case 'S': out[0][i] = a - b; break;
        case 'M': out[0][i] = a * b; break;
        default: out[0][i] = a / b; break;
        }
    }
}

/* ---- broadcast patterns ----------------------------------------------------------------- */

#define SHAPE(...) {sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t), {__VA_ARGS__}}
#define SCALAR {0, {0}}
#define RT LVK_IN_RUNTIME
#define CONST LVK_IN_CONST

struct pattern {
    const char *op;
    struct lvk_shape a, b;
    int kind_a, kind_b;
};

static const char *const ops[] = {"Add", "Sub", "Mul", "Div"};

static void run(const struct pattern *p)
{
    if (!lvk_test_ctx())
        skip();
    struct lvk_op_case c = {
        .op_type = p->op, .ninputs = 2, .in_shape = {p->a, p->b},
        .in_kind = {p->kind_a, p->kind_b}, .ref = ref_binary,
    };
    if (!strcmp(p->op, "Div")) { /* keeps b away from 0 */
        c.lo = 0.5f;
        c.hi = 2.0f;
    }
    lvk_test_op(&c);
}

/* Every op on every broadcast pattern, both operands differentiated. */
static void test_broadcast_runtime(void **state)
{
    static const struct lvk_shape pairs[][2] = {
        {SHAPE(2, 3, 5, 7), SHAPE(2, 3, 5, 7)},         /* same shape */
        {SHAPE(2, 3, 5, 7), SHAPE(3, 1, 1)},            /* bias per channel */
        {SHAPE(2, 3, 5, 7), SHAPE(2, 3, 1, 1)},         /* squeeze-and-excitation */
        {SHAPE(2, 3, 1, 1), SHAPE(2, 3, 5, 7)},         /* the same, swapped */
        {SHAPE(2, 3, 5, 7), SCALAR},                    /* scalar */
        {SCALAR, SHAPE(2, 13, 7, 9)},
        {SHAPE(1, 7), SHAPE(5, 1)},                     /* both broadcast */
        {SHAPE(2, 13, 7, 9), SHAPE(13, 1, 9)},          /* broadcast in the middle */
        {SHAPE(3, 1, 7), SHAPE(2, 3, 5, 7)},
        {SHAPE(2, 1, 3, 1, 5, 2), SHAPE(1, 4, 1, 3, 1, 2)}, /* 6-D, alternating */
        {SHAPE(1, 1, 1), SHAPE(1)},                     /* all ones */
    };
    for (size_t o = 0; o < 4; ++o)
        for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; ++k) {
            struct pattern p = {ops[o], pairs[k][0], pairs[k][1], RT, RT};
            print_message("%s %zu\n", ops[o], k);
            run(&p);
        }
}

/* A constant operand, first or second: only the runtime one has a gradient. */
static void test_constant_operand(void **state)
{
    static const struct pattern cases[] = {
        {"Sub", SHAPE(3, 1, 1), SHAPE(2, 3, 5, 7), CONST, RT},
        {"Sub", SHAPE(2, 3, 5, 7), SHAPE(3, 1, 1), RT, CONST},
        {"Add", SHAPE(2, 13, 7, 9), SHAPE(13, 1, 1), RT, CONST},
        {"Mul", SHAPE(2, 13, 7, 9), SHAPE(2, 13, 7, 9), RT, CONST},
        {"Mul", SCALAR, SHAPE(2, 13, 7, 9), CONST, RT},
        {"Div", SCALAR, SHAPE(2, 3, 5, 7), CONST, RT},
        {"Div", SHAPE(2, 3, 5, 7), SHAPE(1, 3, 1, 7), CONST, RT},
        {"Div", SHAPE(2, 3, 5, 7), SHAPE(3, 1, 1), RT, CONST},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; ++k)
        run(&cases[k]);
}

/* ---- folding and a shared operand ---------------------------------------------------------- */

static const int64_t *i64_value(const struct lvk_model *m, const char *name, int64_t count)
{
    int v = lvk_graph_find(m, name);
    assert_true(v >= 0);
    assert_true(m->values[v].is_const);
    assert_int_equal(m->values[v].dtype, LVK_DTYPE_I64);
    assert_int_equal(lvk_shape_count(&m->values[v].shape), count);
    return m->values[v].host;
}

static void add_node(struct lvk_model *m, const char *op, const char *a, const char *b,
                     const char *out)
{
    const char *const in[] = {a, b}, *const outs[] = {out};
    assert_int_equal(lvk_graph_add_node(m, op, out, in, 2, outs, 1, NULL, 0), LVK_OK);
}

static void test_folding(void **state)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    struct lvk_model *m = NULL;
    assert_int_equal(lvk_graph_create(ctx, "folding", &m), LVK_OK);

    /* int64 shape arithmetic: Div truncates toward zero. */
    const int64_t s[4] = {7, -7, 9, -9}, two = 2, col[3] = {1, 2, 3};
    const struct lvk_shape s_shape = SHAPE(4), scalar = SCALAR, col_shape = SHAPE(3, 1);
    assert_true(lvk_graph_add_const(m, "s", LVK_DTYPE_I64, &s_shape, s) >= 0);
    assert_true(lvk_graph_add_const(m, "two", LVK_DTYPE_I64, &scalar, &two) >= 0);
    assert_true(lvk_graph_add_const(m, "col", LVK_DTYPE_I64, &col_shape, col) >= 0);
    add_node(m, "Div", "s", "two", "q");   /* {3, -3, 4, -4} */
    add_node(m, "Sub", "s", "two", "d");   /* {5, -9, 7, -11} */
    add_node(m, "Add", "q", "d", "e");     /* {8, -12, 11, -15}: folds a folded result */
    add_node(m, "Mul", "col", "s", "p");   /* [3, 4] */

    /* float: y = x * (w1 * w2) folds w1 * w2; z = x * x reads x twice. */
    const float w1[3] = {0.5f, -2.0f, 3.0f}, w2[3] = {4.0f, 0.25f, -1.0f};
    const struct lvk_shape x_shape = SHAPE(2, 3), w_shape = SHAPE(3);
    assert_true(lvk_graph_add_input(m, "x", LVK_DTYPE_F32, &x_shape) >= 0);
    assert_true(lvk_graph_add_const(m, "w1", LVK_DTYPE_F32, &w_shape, w1) >= 0);
    assert_true(lvk_graph_add_const(m, "w2", LVK_DTYPE_F32, &w_shape, w2) >= 0);
    add_node(m, "Mul", "w1", "w2", "w");
    add_node(m, "Mul", "x", "w", "y");
    add_node(m, "Mul", "x", "x", "z");
    assert_int_equal(lvk_graph_mark_output(m, "y"), LVK_OK);
    assert_int_equal(lvk_graph_mark_output(m, "z"), LVK_OK);
    const struct lvk_model_opts opts = {.gradients = 1};
    assert_int_equal(lvk_graph_finalize(m, &opts), LVK_OK);

    const int64_t *q = i64_value(m, "q", 4), *e = i64_value(m, "e", 4), *p = i64_value(m, "p", 12);
    const int64_t q_want[4] = {3, -3, 4, -4}, e_want[4] = {8, -12, 11, -15};
    for (int i = 0; i < 4; ++i) {
        assert_int_equal(q[i], q_want[i]);
        assert_int_equal(e[i], e_want[i]);
        for (int r = 0; r < 3; ++r)
            assert_int_equal(p[r * 4 + i], col[r] * s[i]);
    }
    int w = lvk_graph_find(m, "w");
    assert_true(w >= 0 && m->values[w].is_const);

    const float x[6] = {1.0f, -0.5f, 2.0f, 0.25f, 3.0f, -1.5f}, seed[6] = {1, 2, 3, -1, -2, 0.5f};
    float y[6], z[6], grad[6];
    assert_int_equal(lvk_model_set_input(m, "x", x, 6), LVK_OK);
    assert_int_equal(lvk_model_forward(m), LVK_OK);
    assert_int_equal(lvk_model_read(m, "y", y, 6), LVK_OK);
    assert_int_equal(lvk_model_read(m, "z", z, 6), LVK_OK);
    for (int i = 0; i < 6; ++i) {
        assert_float_equal(y[i], x[i] * (w1[i % 3] * w2[i % 3]), 1e-6);
        assert_float_equal(z[i], x[i] * x[i], 1e-6);
    }
    /* d(x*x)/dx accumulates both operands' gradients into x's. */
    assert_int_equal(lvk_model_backward(m, "z", seed, 6, grad, 6), LVK_OK);
    for (int i = 0; i < 6; ++i)
        assert_float_equal(grad[i], 2.0f * x[i] * seed[i], 1e-6);
    lvk_model_destroy(m);
    lvk_test_assert_no_validation();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broadcast_runtime),
        cmocka_unit_test(test_constant_operand),
        cmocka_unit_test(test_folding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
