/* Elementwise activations (src/nn/ops/unary.c) against double-precision
 * references, forward and backward, on an awkward 2x13x7x9 shape; and the
 * three run-time ReLU gradient modes of Relu and ReLU6 on a hand-made input. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/op_harness.h"

static const struct lvk_shape shape = {4, {2, 13, 7, 9}};

/* ---- references ---------------------------------------------------------------- */

static float attr_f(const struct lvk_op_case *c, const char *name, float def)
{
    for (int i = 0; i < c->nattrs; ++i)
        if (!strcmp(c->attrs[i].name, name))
            return c->attrs[i].f;
    return def;
}

/* Applies f elementwise over input 0. */
#define REF_UNARY(fn, expr)                                                               \
    static void fn(const struct lvk_op_case *c, const double *const *in,                  \
                   double *const *out, const struct lvk_shape *out_shape)                 \
    {                                                                                     \
        for (int64_t i = 0; i < lvk_shape_count(out_shape); ++i) {                        \
            double x = in[0][i];                                                          \
            out[0][i] = (expr);                                                           \
        }                                                                                 \
    }

REF_UNARY(ref_relu, x > 0 ? x : 0)
REF_UNARY(ref_leaky_relu, x > 0 ? x : attr_f(c, "alpha", 0.01f) * x)
REF_UNARY(ref_sigmoid, 1 / (1 + exp(-x)))
REF_UNARY(ref_tanh, tanh(x))
REF_UNARY(ref_hard_sigmoid,
          fmin(1, fmax(0, attr_f(c, "alpha", 0.2f) * x + attr_f(c, "beta", 0.5f))))
REF_UNARY(ref_hard_swish, x * fmin(1, fmax(0, x / 6 + 0.5)))
REF_UNARY(ref_identity, x)

/* Bounds from inputs 1 and 2 when given, else from the min/max attributes. */
static void ref_clip(const struct lvk_op_case *c, const double *const *in, double *const *out,
                     const struct lvk_shape *out_shape)
{
    double lo = c->ninputs > 1 && in[1] ? in[1][0] : attr_f(c, "min", -INFINITY);
    double hi = c->ninputs > 2 && in[2] ? in[2][0] : attr_f(c, "max", INFINITY);
    for (int64_t i = 0; i < lvk_shape_count(out_shape); ++i)
        out[0][i] = fmin(fmax(in[0][i], lo), hi);
}

/* ---- forward and backward against the references --------------------------------- */

static void run(struct lvk_op_case c)
{
    if (!lvk_test_ctx())
        skip();
    c.ninputs = c.ninputs ? c.ninputs : 1;
    c.in_shape[0] = shape;
    lvk_test_op(&c);
}

static void test_relu(void **state)
{
    run((struct lvk_op_case){.op_type = "Relu", .ref = ref_relu});
}

static void test_leaky_relu(void **state)
{
    static const struct lvk_attr attrs[] = {{.name = "alpha", .type = LVK_ATTR_FLOAT, .f = 0.3f}};
    run((struct lvk_op_case){.op_type = "LeakyRelu", .ref = ref_leaky_relu});
    run((struct lvk_op_case){.op_type = "LeakyRelu", .ref = ref_leaky_relu,
                             .attrs = attrs, .nattrs = 1});
}

static void test_clip_attributes(void **state)
{
    /* The opset 6-10 form. */
    static const struct lvk_attr both[] = {
        {.name = "min", .type = LVK_ATTR_FLOAT, .f = -0.4f},
        {.name = "max", .type = LVK_ATTR_FLOAT, .f = 0.6f},
    };
    run((struct lvk_op_case){.op_type = "Clip", .ref = ref_clip, .attrs = both, .nattrs = 2});
    run((struct lvk_op_case){.op_type = "Clip", .ref = ref_clip, .attrs = both + 1, .nattrs = 1});
}

static void test_clip_inputs(void **state)
{
    static const float lo = -0.4f, hi = 0.6f, zero = 0.0f, six = 6.0f;
    struct lvk_op_case c = {.op_type = "Clip", .ref = ref_clip, .ninputs = 3,
                            .in_kind = {LVK_IN_RUNTIME, LVK_IN_CONST, LVK_IN_CONST},
                            .in_data = {NULL, &lo, &hi}};
    run(c);
    c.in_kind[1] = LVK_IN_NONE; /* max only */
    run(c);
    c.in_kind[1] = LVK_IN_CONST;
    c.in_kind[2] = LVK_IN_NONE; /* min only */
    run(c);
    /* ReLU6, on inputs that reach both bounds */
    c.in_kind[2] = LVK_IN_CONST;
    c.in_data[1] = &zero;
    c.in_data[2] = &six;
    c.lo = -3.0f;
    c.hi = 9.0f;
    run(c);
    /* Neither bound: the identity */
    c.ninputs = 1;
    run(c);
}

static void test_sigmoid(void **state)
{
    run((struct lvk_op_case){.op_type = "Sigmoid", .ref = ref_sigmoid, .lo = -8, .hi = 8});
}

static void test_tanh(void **state)
{
    run((struct lvk_op_case){.op_type = "Tanh", .ref = ref_tanh, .lo = -4, .hi = 4});
}

static void test_hard_sigmoid(void **state)
{
    static const struct lvk_attr attrs[] = {
        {.name = "alpha", .type = LVK_ATTR_FLOAT, .f = 0.3f},
        {.name = "beta", .type = LVK_ATTR_FLOAT, .f = 0.4f},
    };
    /* Kinks at -2.5 and 2.5 (defaults); -4/3 and 2 (attributes). */
    run((struct lvk_op_case){.op_type = "HardSigmoid", .ref = ref_hard_sigmoid, .lo = -4, .hi = 4});
    run((struct lvk_op_case){.op_type = "HardSigmoid", .ref = ref_hard_sigmoid, .lo = -4, .hi = 4,
                             .attrs = attrs, .nattrs = 2});
}

static void test_hard_swish(void **state)
{
    run((struct lvk_op_case){.op_type = "HardSwish", .ref = ref_hard_swish, .lo = -5, .hi = 5});
}

static void test_identity_dropout(void **state)
{
    run((struct lvk_op_case){.op_type = "Identity", .ref = ref_identity});
    run((struct lvk_op_case){.op_type = "Dropout", .ref = ref_identity});
}

/* ---- ReLU gradient modes ------------------------------------------------------------- */

/* Gradient of a unit active on (lo, hi) under each mode, as specified in
 * enum lvk_relu_mode (objectives are maximised: g > 0 asks for more). */
static float expected_grad(enum lvk_relu_mode mode, float x, float g, float lo, float hi)
{
    bool on = x > lo && x < hi;
    bool pass = on;
    if (mode == LVK_RELU_GRAD_REDIRECT)
        pass = on || (x <= lo && g > 0) || (x >= hi && g < 0);
    else if (mode == LVK_RELU_GRAD_GUIDED)
        pass = on && g > 0;
    return pass ? g : 0.0f;
}

/* y = Relu(x), or Clip(x, 0, 6) when relu6; checks dObj/dx for a seed g in
 * each mode. Every (sign of g) x (below / inside / above) pair occurs. With
 * `fused`, x first goes through an identity 1x1 Conv, into which planning
 * fuses the activation (graph.h, lvk_node.act): the activation's backward
 * then takes its mask from y, and must give the same gradients. With a
 * `reader`, y goes on to z, which is seeded instead: through a second
 * identity 1x1 Conv, whose backward applies the activation's mask
 * (lvk_node.bwd_fused), concatenated with a constant, whose backward copy
 * applies it, or through a 1x1 MaxPool, whose gather applies it. */
enum reader { NO_READER, CONV_READER, CONCAT_READER, MAXPOOL_READER };

static void check_modes(bool relu6, bool fused, enum reader reader)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    enum { N = 16 };
    const float x[N] = {-2.0f, -0.5f, 0.5f, 2.0f, 5.5f, 7.0f, 9.0f, -1.0f,
                        -2.5f, 1.5f, 3.0f, 6.5f, -0.25f, 4.0f, 8.0f, 0.75f};
    const float g[N] = {1.0f, -1.0f, 0.5f, -0.5f, 2.0f, -2.0f, 3.0f, 0.25f,
                        -0.75f, -1.5f, 1.25f, 0.5f, 0.125f, -3.0f, -0.5f, 1.0f};
    const float hi = relu6 ? 6.0f : INFINITY;

    struct lvk_model *m = NULL;
    assert_int_equal(lvk_graph_create(ctx, "relu_modes", &m), LVK_OK);
    const struct lvk_shape s = {4, {1, 2, 1, N / 2}}, scalar = {0}, ws = {4, {2, 2, 1, 1}};
    const float zero = 0.0f, six = 6.0f, eye[4] = {1.0f, 0.0f, 0.0f, 1.0f};
    assert_true(lvk_graph_add_input(m, "x", LVK_DTYPE_F32, &s) >= 0);
    assert_true(lvk_graph_add_const(m, "lo", LVK_DTYPE_F32, &scalar, &zero) >= 0);
    assert_true(lvk_graph_add_const(m, "hi", LVK_DTYPE_F32, &scalar, &six) >= 0);
    assert_true(lvk_graph_add_const(m, "w", LVK_DTYPE_F32, &ws, eye) >= 0);
    const char *const conv_in[] = {"x", "w"}, *const conv_out[] = {"c"};
    if (fused)
        assert_int_equal(lvk_graph_add_node(m, "Conv", "conv", conv_in, 2, conv_out, 1, NULL, 0),
                         LVK_OK);
    const char *const clip_in[] = {fused ? "c" : "x", "lo", "hi"}, *const out[] = {"y"};
    assert_int_equal(lvk_graph_add_node(m, relu6 ? "Clip" : "Relu", "act", clip_in,
                                        relu6 ? 3 : 1, out, 1, NULL, 0), LVK_OK);
    const char *const reader_in[] = {"y", reader == CONV_READER ? "w" : "k"};
    const char *const reader_out[] = {"z"};
    const struct lvk_attr axis1 = {.name = "axis", .type = LVK_ATTR_INT, .i = 1};
    const struct lvk_attr pool1 = {.name = "kernel_shape", .type = LVK_ATTR_INTS,
                                   .ints = (int64_t[]){1, 1}, .n = 2};
    const char *const reader_op[] = {NULL, "Conv", "Concat", "MaxPool"};
    float k_values[N], gz[2 * N];
    for (int i = 0; i < N; ++i) {
        k_values[i] = (float)i;
        gz[i] = g[i];               /* z's first N values are y */
        gz[N + i] = 1.0f;
    }
    assert_true(lvk_graph_add_const(m, "k", LVK_DTYPE_F32, &s, k_values) >= 0);
    if (reader != NO_READER)
        assert_int_equal(lvk_graph_add_node(m, reader_op[reader], "reader", reader_in,
                                            reader == MAXPOOL_READER ? 1 : 2, reader_out, 1,
                                            reader == CONCAT_READER    ? &axis1
                                            : reader == MAXPOOL_READER ? &pool1
                                                                       : NULL,
                                            reader == CONCAT_READER || reader == MAXPOOL_READER),
                         LVK_OK);
    assert_int_equal(lvk_graph_mark_output(m, reader ? "z" : "y"), LVK_OK);
    const struct lvk_model_opts opts = {.gradients = 1};
    assert_int_equal(lvk_graph_finalize(m, &opts), LVK_OK);
    if (fused)
        assert_true(m->nodes[0].act == 1 && m->nodes[1].fused);
    assert_int_equal(m->nodes[fused ? 1 : 0].bwd_fused, reader != NO_READER);
    assert_int_equal(lvk_model_set_input(m, "x", x, N), LVK_OK);
    assert_int_equal(lvk_model_forward(m), LVK_OK);
    float y[N];
    assert_int_equal(lvk_model_read(m, "y", y, N), LVK_OK);
    for (int i = 0; i < N; ++i)
        assert_float_equal(y[i], fminf(fmaxf(x[i], 0.0f), hi), 0.0f);

    const enum lvk_relu_mode modes[] = {LVK_RELU_GRAD_NORMAL, LVK_RELU_GRAD_REDIRECT,
                                        LVK_RELU_GRAD_GUIDED};
    for (size_t k = 0; k < sizeof modes / sizeof modes[0]; ++k) {
        float grad[N];
        assert_int_equal(lvk_graph_set_relu_mode(m, modes[k]), LVK_OK);
        assert_int_equal(reader == CONCAT_READER
                             ? lvk_model_backward(m, "z", gz, 2 * N, grad, N)
                             : lvk_model_backward(m, reader ? "z" : "y", g, N, grad, N),
                         LVK_OK);
        for (int i = 0; i < N; ++i) {
            float want = expected_grad(modes[k], x[i], g[i], 0.0f, hi);
            if (grad[i] != want)
                fail_msg("%s%s%s mode %d: x = %g, g = %g: got %g, want %g",
                         relu6 ? "ReLU6" : "Relu", fused ? " fused into Conv" : "",
                         reader == CONV_READER      ? ", masked by the next Conv"
                         : reader == CONCAT_READER  ? ", masked by Concat"
                         : reader == MAXPOOL_READER ? ", masked by MaxPool"
                                                    : "",
                         (int)modes[k], x[i], g[i], grad[i], want);
        }
    }
    lvk_model_destroy(m);
    lvk_test_assert_no_validation();
}

/* MaxPool's gather has a texel-buffer variant (lavapipe) and a
 * storage-buffer one: both apply the mask. */
static void check_maxpool_reader(bool relu6)
{
    check_modes(relu6, false, MAXPOOL_READER);
    check_modes(relu6, true, MAXPOOL_READER);
    setenv("LVK_NO_TEXEL", "1", 1);
    check_modes(relu6, false, MAXPOOL_READER);
    unsetenv("LVK_NO_TEXEL");
}

static void test_relu_modes(void **state)
{
    check_modes(false, false, NO_READER);
    check_modes(false, false, CONCAT_READER);
    check_maxpool_reader(false);
}

static void test_relu6_modes(void **state)
{
    check_modes(true, false, NO_READER);
    check_modes(true, false, CONCAT_READER);
    check_maxpool_reader(true);
}

/* Both conv kernel families apply the fused activation (src/nn/ops/conv.c),
 * and a reading Conv's backward its mask. */
static void check_fused_modes(bool relu6)
{
    for (int k = 0; k < 2; k++) {
        if (k == 1)
            setenv("LVK_CONV_KERNEL", "classic", 1);
        check_modes(relu6, true, NO_READER);
        check_modes(relu6, true, CONV_READER);
        check_modes(relu6, false, CONV_READER);
        check_modes(relu6, true, CONCAT_READER);
    }
    unsetenv("LVK_CONV_KERNEL");
}

static void test_fused_relu_modes(void **state)
{
    check_fused_modes(false);
}

static void test_fused_relu6_modes(void **state)
{
    check_fused_modes(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relu),
        cmocka_unit_test(test_leaky_relu),
        cmocka_unit_test(test_clip_attributes),
        cmocka_unit_test(test_clip_inputs),
        cmocka_unit_test(test_sigmoid),
        cmocka_unit_test(test_tanh),
        cmocka_unit_test(test_hard_sigmoid),
        cmocka_unit_test(test_hard_swish),
        cmocka_unit_test(test_identity_dropout),
        cmocka_unit_test(test_relu_modes),
        cmocka_unit_test(test_relu6_modes),
        cmocka_unit_test(test_fused_relu_modes),
        cmocka_unit_test(test_fused_relu6_modes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
