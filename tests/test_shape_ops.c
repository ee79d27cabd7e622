/* Shape arithmetic and reshaping ops (src/nn/ops/shape.c, reshape.c):
 * the Shape -> Gather -> Unsqueeze -> Concat -> Reshape chain exporters emit
 * must fold at load time and leave only the reshape, which aliases its
 * input; Cast, Constant, ConstantOfShape, Range and Size fold to the right
 * values; Reshape (0, -1, a batch baked into the target), Flatten, Squeeze
 * and Unsqueeze give the right shapes and pass data and gradients through. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "support/op_harness.h"

#define SHAPE(...) {sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t), {__VA_ARGS__}}
#define INTS(nm, ...)                                                                     \
    {.name = nm, .type = LVK_ATTR_INTS, .ints = (int64_t[]){__VA_ARGS__},                \
     .n = sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)}
#define INT(nm, v) {.name = nm, .type = LVK_ATTR_INT, .i = (v)}
#define I64S(...) ((const int64_t[]){__VA_ARGS__})
#define NAMES(...) ((const char *const[]){__VA_ARGS__})

/* Adds a node (ins and outs are NAMES(...) arrays) or fails the test with
 * the engine's message. */
#define NODE(m, op, ins, outs, attrs, nattrs)                                             \
    add_node(m, op, ins, (int)(sizeof(ins) / sizeof(ins)[0]), outs,                       \
             (int)(sizeof(outs) / sizeof(outs)[0]), attrs, nattrs)

static void add_node(struct lvk_model *m, const char *op, const char *const *ins, int nins,
                     const char *const *outs, int nouts, const struct lvk_attr *attrs, int nattrs)
{
    if (lvk_graph_add_node(m, op, NULL, ins, nins, outs, nouts, attrs, nattrs) != LVK_OK)
        fail_msg("add %s: %s", op, lvk_last_error());
}

static struct lvk_model *new_model(int opset)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    struct lvk_model *m;
    assert_int_equal(lvk_graph_create(ctx, "test", &m), LVK_OK);
    m->opset = opset;
    return m;
}

static void finalize(struct lvk_model *m, bool gradients)
{
    struct lvk_model_opts o = {.gradients = gradients};
    if (lvk_graph_finalize(m, &o) != LVK_OK)
        fail_msg("finalize: %s", lvk_last_error());
}

static const struct lvk_node *producer(const struct lvk_model *m, const char *value)
{
    int v = lvk_graph_find(m, value);
    assert_true(v >= 0 && m->values[v].producer >= 0);
    return &m->nodes[m->values[v].producer];
}

/* Reads a tensor (any dtype, as float) and compares it with want. */
static void expect_values(struct lvk_model *m, const char *name, const float *want, size_t n)
{
    float got[64];
    assert_true(n <= 64);
    if (lvk_model_read(m, name, got, n) != LVK_OK)
        fail_msg("read %s: %s", name, lvk_last_error());
    for (size_t i = 0; i < n; ++i)
        if (got[i] != want[i])
            fail_msg("%s[%zu]: got %g, want %g", name, i, got[i], want[i]);
}

static void expect_shape(const struct lvk_model *m, const char *name, struct lvk_shape want)
{
    const struct lvk_value *v = &m->values[lvk_graph_find(m, name)];
    char a[96], b[96];
    if (!lvk_shape_eq(&v->shape, &want))
        fail_msg("%s: shape %s, want %s", name, lvk_shape_str(&v->shape, a, sizeof a),
                 lvk_shape_str(&want, b, sizeof b));
}

/* ---- folding ------------------------------------------------------------------------------- */

static void test_shape_chain_folds(void **state)
{
    /* y = x.view(x.size(0), -1) and z = x.view(-1, *x.shape[-2:]), as
     * exporters write them (opset 15 for Shape's start). */
    struct lvk_model *m = new_model(15);
    const struct lvk_shape xs = SHAPE(2, 3, 4, 5);
    assert_true(lvk_graph_add_input(m, "x", LVK_DTYPE_F32, &xs) >= 0);
    const struct lvk_shape scalar = {0}, one = SHAPE(1);
    assert_true(lvk_graph_add_const(m, "zero", LVK_DTYPE_I64, &scalar, I64S(0)) >= 0);
    assert_true(lvk_graph_add_const(m, "axes0", LVK_DTYPE_I64, &one, I64S(0)) >= 0);
    assert_true(lvk_graph_add_const(m, "minus1", LVK_DTYPE_I64, &one, I64S(-1)) >= 0);
    const struct lvk_attr axis0[] = {INT("axis", 0)};
    const struct lvk_attr last2[] = {INT("start", -2)};

    NODE(m, "Shape", NAMES("x"), NAMES("s"), NULL, 0);
    NODE(m, "Gather", NAMES("s", "zero"), NAMES("batch"), axis0, 1);
    NODE(m, "Unsqueeze", NAMES("batch", "axes0"), NAMES("batch1"), NULL, 0);
    NODE(m, "Concat", NAMES("batch1", "minus1"), NAMES("target"), axis0, 1);
    NODE(m, "Reshape", NAMES("x", "target"), NAMES("y"), NULL, 0);
    NODE(m, "Shape", NAMES("x"), NAMES("hw"), last2, 1);
    NODE(m, "Concat", NAMES("minus1", "hw"), NAMES("target2"), axis0, 1);
    NODE(m, "Reshape", NAMES("x", "target2"), NAMES("z"), NULL, 0);
    assert_int_equal(lvk_graph_mark_output(m, "y"), LVK_OK);
    assert_int_equal(lvk_graph_mark_output(m, "z"), LVK_OK);
    finalize(m, true);

    /* Integer arithmetic folded and gone from the run-time graph. */
    static const char *const folded[] = {"s", "batch", "batch1", "target", "hw", "target2"};
    for (size_t i = 0; i < sizeof folded / sizeof *folded; ++i) {
        const struct lvk_node *n = producer(m, folded[i]);
        if (!n->folded || n->needed)
            fail_msg("%s (%s) should be folded and not run", folded[i], n->op_type);
    }
    assert_true(producer(m, "y")->needed && !producer(m, "y")->folded);
    expect_values(m, "s", (const float[]){2, 3, 4, 5}, 4);
    expect_values(m, "batch", (const float[]){2}, 1);
    expect_values(m, "target", (const float[]){2, -1}, 2);
    expect_values(m, "target2", (const float[]){-1, 4, 5}, 3);
    expect_shape(m, "batch", (struct lvk_shape){0});
    expect_shape(m, "y", (struct lvk_shape)SHAPE(2, 60));
    expect_shape(m, "z", (struct lvk_shape)SHAPE(6, 4, 5));

    /* The reshapes alias x: same data forward, same gradient backward. */
    float x[120], y[120], g[120];
    for (int i = 0; i < 120; ++i)
        x[i] = (float)i * 0.5f - 7.0f;
    assert_int_equal(lvk_model_set_input(m, "x", x, 120), LVK_OK);
    assert_int_equal(lvk_model_forward(m), LVK_OK);
    assert_int_equal(lvk_model_read(m, "y", y, 120), LVK_OK);
    assert_memory_equal(x, y, sizeof x);
    assert_int_equal(lvk_model_read(m, "z", y, 120), LVK_OK);
    assert_memory_equal(x, y, sizeof x);
    if (lvk_model_backward(m, "y", x, 120, g, 120) != LVK_OK)
        fail_msg("backward: %s", lvk_last_error());
    assert_memory_equal(x, g, sizeof x);
    lvk_test_assert_no_validation();
    lvk_model_destroy(m);
}

static void test_movement_on_constants_folds(void **state)
{
    /* Float weights transposed and sliced at load time run nothing. */
    struct lvk_model *m = new_model(13);
    const struct lvk_shape ws = SHAPE(2, 3), one = SHAPE(1);
    const float w[6] = {1, 2, 3, 4, 5, 6};
    assert_true(lvk_graph_add_const(m, "w", LVK_DTYPE_F32, &ws, w) >= 0);
    assert_true(lvk_graph_add_const(m, "st", LVK_DTYPE_I64, &one, I64S(-1)) >= 0);
    assert_true(lvk_graph_add_const(m, "en", LVK_DTYPE_I64, &one, I64S(INT64_MIN)) >= 0);
    assert_true(lvk_graph_add_const(m, "ax", LVK_DTYPE_I64, &one, I64S(0)) >= 0);
    assert_true(lvk_graph_add_const(m, "sp", LVK_DTYPE_I64, &one, I64S(-2)) >= 0);
    NODE(m, "Transpose", NAMES("w"), NAMES("wt"), NULL, 0);
    NODE(m, "Slice", NAMES("wt", "st", "en", "ax", "sp"), NAMES("ws"), NULL, 0);
    assert_int_equal(lvk_graph_mark_output(m, "ws"), LVK_OK);
    finalize(m, false);
    assert_true(producer(m, "wt")->folded && producer(m, "ws")->folded);
    /* wt = [[1,4],[2,5],[3,6]]; rows 2 and 0. */
    expect_shape(m, "ws", (struct lvk_shape)SHAPE(2, 2));
    expect_values(m, "ws", (const float[]){3, 6, 1, 4}, 4);
    lvk_model_destroy(m);
}

/* ---- Cast, Constant, ConstantOfShape, Range, Size ------------------------------------------- */

static void test_cast(void **state)
{
    struct lvk_model *m = new_model(13);
    const struct lvk_shape s3 = SHAPE(3);
    const float f[3] = {1.7f, -2.5f, 3};
    assert_true(lvk_graph_add_const(m, "f", LVK_DTYPE_F32, &s3, f) >= 0);
    assert_true(lvk_graph_add_const(m, "i", LVK_DTYPE_I64, &s3, I64S(-4, 0, 1LL << 40)) >= 0);
    assert_true(lvk_graph_add_input(m, "x", LVK_DTYPE_F32, &s3) >= 0);
    const struct lvk_attr to_i64[] = {INT("to", 7)}, to_f32[] = {INT("to", 1)};
    NODE(m, "Cast", NAMES("f"), NAMES("f2i"), to_i64, 1);
    NODE(m, "Cast", NAMES("i"), NAMES("i2f"), to_f32, 1);
    NODE(m, "Cast", NAMES("x"), NAMES("x2f"), to_f32, 1);
    assert_int_equal(lvk_graph_mark_output(m, "x2f"), LVK_OK);
    finalize(m, false);
    assert_int_equal(m->values[lvk_graph_find(m, "f2i")].dtype, LVK_DTYPE_I64);
    assert_true(producer(m, "f2i")->folded && producer(m, "i2f")->folded);
    /* Float -> int truncates toward zero. */
    expect_values(m, "f2i", (const float[]){1, -2, 3}, 3);
    expect_values(m, "i2f", (const float[]){-4, 0, (float)(1LL << 40)}, 3);
    const float x[3] = {0.25f, -8, 3};
    assert_int_equal(lvk_model_set_input(m, "x", x, 3), LVK_OK);
    assert_int_equal(lvk_model_forward(m), LVK_OK);
    expect_values(m, "x2f", x, 3);
    lvk_model_destroy(m);

    /* Other targets fail with a message naming the type. */
    m = new_model(13);
    assert_true(lvk_graph_add_const(m, "f", LVK_DTYPE_F32, &s3, (const float[]){1, 2, 3}) >= 0);
    const struct lvk_attr to_str[] = {INT("to", 8)};
    NODE(m, "Cast", NAMES("f"), NAMES("s"), to_str, 1);
    assert_int_equal(lvk_graph_mark_output(m, "s"), LVK_OK);
    struct lvk_model_opts o = {0};
    assert_int_equal(lvk_graph_finalize(m, &o), LVK_ERR_UNSUPPORTED);
    assert_non_null(strstr(lvk_last_error(), "ONNX type 8"));
    lvk_model_destroy(m);
}

static void test_constants(void **state)
{
    struct lvk_model *m = new_model(13);
    const struct lvk_shape s22 = SHAPE(2, 2), s1 = SHAPE(1), s3 = SHAPE(3);
    int t = lvk_graph_add_const(m, "t", LVK_DTYPE_F32, &s22, (const float[]){1, -2, 3.5f, 4});
    int half = lvk_graph_add_const(m, "half", LVK_DTYPE_F32, &s1, (const float[]){0.5f});
    int seven = lvk_graph_add_const(m, "seven", LVK_DTYPE_I64, &s1, I64S(7));
    assert_true(t >= 0 && half >= 0 && seven >= 0);
    assert_true(lvk_graph_add_const(m, "dims", LVK_DTYPE_I64, &s3, I64S(2, 1, 3)) >= 0);
    assert_true(lvk_graph_add_const(m, "r0", LVK_DTYPE_I64, &(struct lvk_shape){0}, I64S(10)) >= 0);
    assert_true(lvk_graph_add_const(m, "r1", LVK_DTYPE_I64, &(struct lvk_shape){0}, I64S(-1)) >= 0);
    assert_true(lvk_graph_add_const(m, "r2", LVK_DTYPE_I64, &(struct lvk_shape){0}, I64S(-4)) >= 0);

    const struct lvk_attr tensor[] = {{.name = "value", .type = LVK_ATTR_TENSOR, .tensor = t}};
    const struct lvk_attr floats[] = {{.name = "value_floats", .type = LVK_ATTR_FLOATS,
                                       .floats = (float[]){0.25f, 8}, .n = 2}};
    const struct lvk_attr one_int[] = {INT("value_int", -3)};
    const struct lvk_attr fill_f[] = {{.name = "value", .type = LVK_ATTR_TENSOR, .tensor = half}};
    const struct lvk_attr fill_i[] = {{.name = "value", .type = LVK_ATTR_TENSOR, .tensor = seven}};
    add_node(m, "Constant", NULL, 0, NAMES("c_tensor"), 1, tensor, 1);
    add_node(m, "Constant", NULL, 0, NAMES("c_floats"), 1, floats, 1);
    add_node(m, "Constant", NULL, 0, NAMES("c_int"), 1, one_int, 1);
    NODE(m, "ConstantOfShape", NAMES("dims"), NAMES("cos_f"), fill_f, 1);
    NODE(m, "ConstantOfShape", NAMES("dims"), NAMES("cos_i"), fill_i, 1);
    NODE(m, "ConstantOfShape", NAMES("dims"), NAMES("cos_0"), NULL, 0);
    NODE(m, "Range", NAMES("r0", "r1", "r2"), NAMES("range"), NULL, 0);
    NODE(m, "Size", NAMES("cos_f"), NAMES("size"), NULL, 0);
    assert_int_equal(lvk_graph_mark_output(m, "c_tensor"), LVK_OK);
    finalize(m, false);

    expect_shape(m, "c_tensor", s22);
    expect_values(m, "c_tensor", (const float[]){1, -2, 3.5f, 4}, 4);
    expect_values(m, "c_floats", (const float[]){0.25f, 8}, 2);
    expect_shape(m, "c_int", (struct lvk_shape){0});
    assert_int_equal(m->values[lvk_graph_find(m, "c_int")].dtype, LVK_DTYPE_I64);
    expect_values(m, "c_int", (const float[]){-3}, 1);
    expect_shape(m, "cos_f", (struct lvk_shape)SHAPE(2, 1, 3));
    expect_values(m, "cos_f", (const float[]){0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f}, 6);
    assert_int_equal(m->values[lvk_graph_find(m, "cos_i")].dtype, LVK_DTYPE_I64);
    expect_values(m, "cos_i", (const float[]){7, 7, 7, 7, 7, 7}, 6);
    expect_values(m, "cos_0", (const float[]){0, 0, 0, 0, 0, 0}, 6);
    expect_values(m, "range", (const float[]){10, 6, 2}, 3);
    expect_values(m, "size", (const float[]){6}, 1);
    lvk_model_destroy(m);
}

/* ---- Reshape, Flatten, Squeeze, Unsqueeze ------------------------------------------------ */

static void ref_copy(const struct lvk_op_case *c, const double *const *in, double *const *out,
                     const struct lvk_shape *out_shape)
{
    const struct lvk_shape *want = c->user;
    char a[96], b[96];
    if (!lvk_shape_eq(out_shape, want))
        fail_msg("%s: shape %s, want %s", c->op_type, lvk_shape_str(out_shape, a, sizeof a),
                 lvk_shape_str(want, b, sizeof b));
    memcpy(out[0], in[0], (size_t)lvk_shape_count(out_shape) * sizeof(double));
}

/* One alias op on x with an optional int64 operand; checks the shape, the
 * data and the gradient pass-through. */
static void run(const char *op, struct lvk_shape xs, const int64_t *operand, int64_t n,
                const struct lvk_attr *attrs, int nattrs, int opset, struct lvk_shape want)
{
    struct lvk_op_case c = {.op_type = op, .ninputs = operand ? 2 : 1,
                            .in_shape = {xs, {1, {n}}},
                            .in_kind = {LVK_IN_RUNTIME, LVK_IN_CONST_I64},
                            .in_data = {NULL, operand}, .attrs = attrs, .nattrs = nattrs,
                            .ref = ref_copy, .user = &want, .opset = opset};
    lvk_test_op(&c);
}

static void test_reshape(void **state)
{
    if (!lvk_test_ctx())
        skip();
    const struct lvk_shape x = SHAPE(2, 13, 3, 5);
    run("Reshape", x, I64S(0, -1, 5), 3, NULL, 0, 13, (struct lvk_shape)SHAPE(2, 39, 5));
    run("Reshape", x, I64S(-1), 1, NULL, 0, 13, (struct lvk_shape)SHAPE(390));
    run("Reshape", x, I64S(0, 0, 15, 1), 4, NULL, 0, 13, (struct lvk_shape)SHAPE(2, 13, 15, 1));
    const struct lvk_attr allowzero[] = {INT("allowzero", 1)};
    run("Reshape", x, I64S(2, 13, -1), 3, allowzero, 1, 14, (struct lvk_shape)SHAPE(2, 13, 15));
    /* Opset 1..4: the target is an attribute. */
    const struct lvk_attr shape_attr[] = {INTS("shape", 26, -1)};
    run("Reshape", x, NULL, 0, shape_attr, 1, 4, (struct lvk_shape)SHAPE(26, 15));

    /* A batch baked into the target ([1, 16] or [1, -1] for a model
     * exported at batch 1) follows the input's batch of 3. */
    const struct lvk_shape b3 = SHAPE(3, 16, 1, 1);
    run("Reshape", b3, I64S(1, 16), 2, NULL, 0, 13, (struct lvk_shape)SHAPE(3, 16));
    run("Reshape", b3, I64S(1, -1), 2, NULL, 0, 13, (struct lvk_shape)SHAPE(3, 16));
    /* A real change of dim 0 that fits stays as written. */
    run("Reshape", b3, I64S(6, 8), 2, NULL, 0, 13, (struct lvk_shape)SHAPE(6, 8));
}

static void test_flatten(void **state)
{
    if (!lvk_test_ctx())
        skip();
    const struct lvk_shape x = SHAPE(2, 13, 3, 5);
    run("Flatten", x, NULL, 0, NULL, 0, 13, (struct lvk_shape)SHAPE(2, 195));
    const struct lvk_attr a0[] = {INT("axis", 0)}, a2[] = {INT("axis", 2)},
                          an[] = {INT("axis", -1)}, a4[] = {INT("axis", 4)};
    run("Flatten", x, NULL, 0, a0, 1, 13, (struct lvk_shape)SHAPE(1, 390));
    run("Flatten", x, NULL, 0, a2, 1, 13, (struct lvk_shape)SHAPE(26, 15));
    run("Flatten", x, NULL, 0, an, 1, 13, (struct lvk_shape)SHAPE(78, 5));
    run("Flatten", x, NULL, 0, a4, 1, 13, (struct lvk_shape)SHAPE(390, 1));
}

static void test_squeeze_unsqueeze(void **state)
{
    if (!lvk_test_ctx())
        skip();
    const struct lvk_shape x = SHAPE(2, 1, 13, 1);
    run("Squeeze", x, I64S(-1), 1, NULL, 0, 13, (struct lvk_shape)SHAPE(2, 1, 13));
    run("Squeeze", x, NULL, 0, NULL, 0, 13, (struct lvk_shape)SHAPE(2, 13));
    const struct lvk_attr sq[] = {INTS("axes", 1, 3)};
    run("Squeeze", x, NULL, 0, sq, 1, 11, (struct lvk_shape)SHAPE(2, 13));

    const struct lvk_shape y = SHAPE(2, 13);
    run("Unsqueeze", y, I64S(3, 0), 2, NULL, 0, 13, (struct lvk_shape)SHAPE(1, 2, 13, 1));
    run("Unsqueeze", y, I64S(-1), 1, NULL, 0, 13, (struct lvk_shape)SHAPE(2, 13, 1));
    const struct lvk_attr uq[] = {INTS("axes", 1)};
    run("Unsqueeze", y, NULL, 0, uq, 1, 11, (struct lvk_shape)SHAPE(2, 1, 13));
}

static void test_errors(void **state)
{
    /* Squeezing a dim that is not 1, and a reshape that cannot fit. */
    struct lvk_model *m = new_model(13);
    const struct lvk_shape xs = SHAPE(2, 3), one = SHAPE(1), two = SHAPE(2);
    assert_true(lvk_graph_add_input(m, "x", LVK_DTYPE_F32, &xs) >= 0);
    assert_true(lvk_graph_add_const(m, "ax", LVK_DTYPE_I64, &one, I64S(1)) >= 0);
    NODE(m, "Squeeze", NAMES("x", "ax"), NAMES("y"), NULL, 0);
    assert_int_equal(lvk_graph_mark_output(m, "y"), LVK_OK);
    struct lvk_model_opts o = {0};
    assert_int_equal(lvk_graph_finalize(m, &o), LVK_ERR_FORMAT);
    assert_non_null(strstr(lvk_last_error(), "cannot squeeze axis 1"));
    lvk_model_destroy(m);

    m = new_model(13);
    assert_true(lvk_graph_add_input(m, "x", LVK_DTYPE_F32, &xs) >= 0);
    assert_true(lvk_graph_add_const(m, "t", LVK_DTYPE_I64, &two, I64S(2, 4)) >= 0);
    NODE(m, "Reshape", NAMES("x", "t"), NAMES("y"), NULL, 0);
    assert_int_equal(lvk_graph_mark_output(m, "y"), LVK_OK);
    assert_int_equal(lvk_graph_finalize(m, &o), LVK_ERR_FORMAT);
    assert_non_null(strstr(lvk_last_error(), "cannot reshape [2, 3] into [2, 4]"));
    lvk_model_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape_chain_folds),
        cmocka_unit_test(test_movement_on_constants_folds),
        cmocka_unit_test(test_cast),
        cmocka_unit_test(test_constants),
        cmocka_unit_test(test_reshape),
        cmocka_unit_test(test_flatten),
        cmocka_unit_test(test_squeeze_unsqueeze),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
