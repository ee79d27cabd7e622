/* Which backward passes store a gradient instead of adding to a zeroed one
 * (graph.h: lvk_node.grad_store), and that gradients stay right when they
 * do: over two backward passes with different seeds (a pass that added to
 * the last pass's values would show), and after a caller seeds a tensor
 * that was not requested (its gradient must then be added to). Expected
 * gradients are worked out in closed form.
 *
 * x [1, 2, 2, 4] -> Relu -> y;  z = Add(y, x);  out = Concat(z, y) on axis 1.
 * Backward, nodes in reverse: Concat writes dz and dy first (stores both),
 * Add adds dz into dy and writes dx first (stores), Relu adds its mask
 * times dy into dx:
 *   dy = gy + gz,  dx = gz + relu'(x) dy.
 * y has two readers, so it keeps its own gradient; in a residual block
 * (z = Add(Relu(x), x), z the output) the Relu's output is read by the Add
 * alone and shares z's gradient buffer (lvk_node.grad_shared): the Add
 * writes only dx, which the Relu then adds to: dx = g + relu'(x) g. A seed
 * on a would then be z's too: seeding it is refused, and requesting a at
 * load keeps its buffer apart (dx = relu'(x) g from a alone). Seeds on z
 * (an Add output whose operand uses its buffer) and on w = Reshape(z) (an
 * alias: the same tensor) are right, though z, w and a share one buffer.
 * When a residual block's input feeds a convolution, that convolution adds
 * the Add's gradient as it stores dx (lvk_node.bwd_sum) and the Add's
 * backward does not run: dx against its closed form, 1x1 and 3x3, on the
 * texel and Winograd kernels, with the fusions and without (LVK_NO_FUSE=1),
 * and a seed on the block's input. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/op_harness.h"

enum { N = 16 };

static struct lvk_model *build(void)
{
    struct lvk_model *m = NULL;
    assert_int_equal(lvk_graph_create(lvk_test_ctx(), "grad_store", &m), LVK_OK);
    const struct lvk_shape xs = {4, {1, 2, 2, 4}};
    const struct lvk_attr axis1 = {.name = "axis", .type = LVK_ATTR_INT, .i = 1};
    assert_true(lvk_graph_add_input(m, "x", LVK_DTYPE_F32, &xs) >= 0);
    assert_int_equal(lvk_graph_add_node(m, "Relu", "relu", (const char *const[]){"x"}, 1,
                                        (const char *const[]){"y"}, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Add", "add", (const char *const[]){"y", "x"}, 2,
                                        (const char *const[]){"z"}, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Concat", "cat", (const char *const[]){"z", "y"}, 2,
                                        (const char *const[]){"out"}, 1, &axis1, 1), LVK_OK);
    assert_int_equal(lvk_graph_mark_output(m, "out"), LVK_OK);
    const struct lvk_model_opts opts = {.gradients = 1};
    assert_int_equal(lvk_graph_finalize(m, &opts), LVK_OK);
    return m;
}

static float input(int i)
{
    return (float)((i * 5) % 9) - 4.0f;
}

static bool zeroed(const struct lvk_model *m, const char *name)
{
    const struct lvk_buf *g = m->values[lvk_graph_find(m, name)].grad;
    assert_non_null(g);
    return m->grad_zero[g - m->bufs - m->grad_first];
}

static void test_plan(void **state)
{
    if (!lvk_test_ctx())
        skip();
    struct lvk_model *m = build();
    assert_int_equal(m->nodes[2].grad_store, 3u); /* Concat: dz and dy */
    assert_int_equal(m->nodes[1].grad_store, 2u); /* Add: dx; dy comes second */
    assert_int_equal(m->nodes[0].grad_store, 0u); /* Relu: dx comes second */
    assert_int_equal(m->nodes[1].grad_shared, 0u); /* y has two readers */
    assert_true(zeroed(m, "out")); /* requested: a caller seeds it */
    assert_false(zeroed(m, "z") || zeroed(m, "y") || zeroed(m, "x"));
    lvk_model_destroy(m);
}

static void check_backward(struct lvk_model *m, const float *x, const char *target, float scale)
{
    float seed[2 * N], want[N], got[N];
    for (int i = 0; i < 2 * N; i++)
        seed[i] = scale * (float)((i * 7) % 11 - 5);
    const bool out = target[0] == 'o';
    for (int i = 0; i < N; i++) {
        const float on = x[i] > 0 ? 1.0f : 0.0f;
        if (out) {
            /* Channels 0-1 of out are z, 2-3 are y. */
            const float gz = seed[i], gy = seed[N + i];
            want[i] = gz + on * (gy + gz);
        } else {
            want[i] = on * seed[i]; /* y seeded, out's gradient zero */
        }
    }
    assert_int_equal(lvk_model_backward(m, target, seed, out ? 2 * N : N, got, N), LVK_OK);
    for (int i = 0; i < N; i++)
        if (got[i] != want[i])
            fail_msg("seed on %s x %g: dx[%d] = %g, want %g", target, scale, i, got[i], want[i]);
}

static void test_backward(void **state)
{
    if (!lvk_test_ctx())
        skip();
    struct lvk_model *m = build();
    float x[N];
    for (int i = 0; i < N; i++)
        x[i] = input(i);
    assert_int_equal(lvk_model_set_input(m, "x", x, N), LVK_OK);
    assert_int_equal(lvk_model_forward(m), LVK_OK);
    check_backward(m, x, "out", 1.0f);
    check_backward(m, x, "out", -0.5f);
    /* y was not requested: seeding it re-plans, Concat then adds to dy. */
    assert_false(zeroed(m, "y"));
    check_backward(m, x, "y", 1.0f);
    assert_true(zeroed(m, "y"));
    assert_int_equal(m->nodes[2].grad_store, 1u);
    check_backward(m, x, "out", 2.0f);
    lvk_model_destroy(m);
    lvk_test_assert_no_validation();
}

/* The residual block above, its output read as w = Reshape(z), with w
 * requested, and a too where `request_a`. */
static struct lvk_model *residual(bool request_a)
{
    struct lvk_model *m = NULL;
    assert_int_equal(lvk_graph_create(lvk_test_ctx(), "residual", &m), LVK_OK);
    const struct lvk_shape xs = {4, {1, 2, 2, 4}}, ss = {1, {4}};
    const int64_t shape[4] = {1, 2, 2, 4};
    assert_true(lvk_graph_add_input(m, "x", LVK_DTYPE_F32, &xs) >= 0);
    assert_true(lvk_graph_add_const(m, "shape", LVK_DTYPE_I64, &ss, shape) >= 0);
    assert_int_equal(lvk_graph_add_node(m, "Relu", "relu", (const char *const[]){"x"}, 1,
                                        (const char *const[]){"a"}, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Add", "add", (const char *const[]){"a", "x"}, 2,
                                        (const char *const[]){"z"}, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Reshape", "reshape", (const char *const[]){"z", "shape"},
                                        2, (const char *const[]){"w"}, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_mark_output(m, "w"), LVK_OK);
    if (request_a)
        assert_int_equal(lvk_graph_mark_output(m, "a"), LVK_OK);
    const struct lvk_model_opts opts = {.gradients = 1};
    assert_int_equal(lvk_graph_finalize(m, &opts), LVK_OK);
    float x[N];
    for (int i = 0; i < N; i++)
        x[i] = input(i);
    assert_int_equal(lvk_model_set_input(m, "x", x, N), LVK_OK);
    assert_int_equal(lvk_model_forward(m), LVK_OK);
    return m;
}

/* dx for a seed on `target` (z, w or a), twice with different seeds. */
static void check_residual(struct lvk_model *m, const char *target)
{
    float g[N], got[N];
    for (float scale = 1.0f; scale > -1.0f; scale -= 1.5f) {
        for (int i = 0; i < N; i++)
            g[i] = scale * (float)((i * 3) % 7 - 3);
        assert_int_equal(lvk_model_backward(m, target, g, N, got, N), LVK_OK);
        for (int i = 0; i < N; i++) {
            const float relu = input(i) > 0 ? g[i] : 0.0f;
            const float want = target[0] != 'a' ? g[i] + relu : relu;
            if (got[i] != want)
                fail_msg("seed on %s x %g: dx[%d] = %g, want %g", target, scale, i, got[i], want);
        }
    }
}

static void test_residual(void **state)
{
    if (!lvk_test_ctx())
        skip();
    struct lvk_model *m = residual(false);
    assert_int_equal(m->nodes[1].grad_shared, 1u);
    assert_ptr_equal(m->values[lvk_graph_find(m, "a")].grad, m->values[lvk_graph_find(m, "z")].grad);
    assert_ptr_equal(m->values[lvk_graph_find(m, "w")].grad, m->values[lvk_graph_find(m, "z")].grad);
    assert_int_equal(m->nodes[1].grad_store, 2u); /* dx, first */
    check_residual(m, "w");
    check_residual(m, "z");   /* not requested: seeded after planning */
    float g[N] = {1}, got[N];
    assert_int_equal(lvk_model_backward(m, "a", g, N, got, N), LVK_ERR_INVALID_ARG);
    assert_non_null(strstr(lvk_last_error(), "'a' shares its gradient buffer with 'z'"));
    check_residual(m, "w");
    lvk_model_destroy(m);

    m = residual(true);
    assert_int_equal(m->nodes[1].grad_shared, 0u);
    check_residual(m, "a");
    check_residual(m, "w");
    check_residual(m, "a");
    lvk_model_destroy(m);
    lvk_test_assert_no_validation();
}

/* A residual block whose input feeds a convolution and the closing Add:
 * x [1, 4, 2, 4] -> Conv KxK (W1 [6, 4, K, K], pads K/2) -> c -> Relu
 * -> Conv 1x1 (W2 [4, 6]) -> a;  z = Add(a, x), requested. a shares z's
 * gradient buffer, and where the first convolution's backward runs on the
 * texel or Winograd kernels (lavapipe's) it adds dz into dx as it stores it
 * (fold_add_grads), so the Add's backward does not run:
 *   dx = g + W1^T (relu'(c) (W2^T g)),
 * W1^T the transposed (full) convolution. K = 1 and K = 3 on each kernel. */
enum { RC = 4, RM = 6, RH = 2, RW = 4, RP = RH * RW };

static float w1(int m, int j, int t) { return ((float)((m * 5 + j * 3 + t * 7) % 9) - 4.3f) / 4.0f; }
static float w2(int i, int m) { return (float)((i * 7 + m * 2) % 11 - 5) / 8.0f; }
static float rx(int i) { return (float)((i * 13) % 17 - 8) / 4.0f + 0.1f; }

static struct lvk_model *residual_conv(int k)
{
    struct lvk_model *m = NULL;
    assert_int_equal(lvk_graph_create(lvk_test_ctx(), "residual_conv", &m), LVK_OK);
    float a1[RM * RC * 9], a2[RC * RM];
    for (int i = 0; i < RM * RC * k * k; i++)
        a1[i] = w1(i / (RC * k * k), i / (k * k) % RC, i % (k * k));
    for (int i = 0; i < RC * RM; i++)
        a2[i] = w2(i / RM, i % RM);
    const struct lvk_shape xs = {4, {1, RC, RH, RW}}, s1 = {4, {RM, RC, k, k}}, s2 = {4, {RC, RM, 1, 1}};
    const int64_t pads[4] = {k / 2, k / 2, k / 2, k / 2};
    const struct lvk_attr pad = {.name = "pads", .type = LVK_ATTR_INTS, .ints = (int64_t *)pads, .n = 4};
    assert_true(lvk_graph_add_input(m, "x", LVK_DTYPE_F32, &xs) >= 0);
    assert_true(lvk_graph_add_const(m, "w1", LVK_DTYPE_F32, &s1, a1) >= 0);
    assert_true(lvk_graph_add_const(m, "w2", LVK_DTYPE_F32, &s2, a2) >= 0);
    assert_int_equal(lvk_graph_add_node(m, "Conv", "expand", (const char *const[]){"x", "w1"}, 2,
                                        (const char *const[]){"c"}, 1, &pad, 1), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Relu", "relu", (const char *const[]){"c"}, 1,
                                        (const char *const[]){"r"}, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Conv", "project", (const char *const[]){"r", "w2"}, 2,
                                        (const char *const[]){"a"}, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Add", "add", (const char *const[]){"a", "x"}, 2,
                                        (const char *const[]){"z"}, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_mark_output(m, "z"), LVK_OK);
    const struct lvk_model_opts opts = {.gradients = 1};
    assert_int_equal(lvk_graph_finalize(m, &opts), LVK_OK);
    float x[RC * RP];
    for (int i = 0; i < RC * RP; i++)
        x[i] = rx(i);
    assert_int_equal(lvk_model_set_input(m, "x", x, RC * RP), LVK_OK);
    assert_int_equal(lvk_model_forward(m), LVK_OK);
    return m;
}

/* dx for two seeds on z against the closed form; then a seed on x alone,
 * which the block must pass through untouched (its convolution then adds
 * to the seeded gradient instead of storing). */
static void check_residual_conv(struct lvk_model *m, int k)
{
    float g[RC * RP], got[RC * RP];
    for (float scale = 1.0f; scale > -1.0f; scale -= 1.5f) {
        for (int i = 0; i < RC * RP; i++)
            g[i] = scale * (float)((i * 3) % 7 - 3);
        double want[RC * RP];
        for (int i = 0; i < RC * RP; i++)
            want[i] = g[i];
        for (int mm = 0; mm < RM; mm++)
            for (int p = 0; p < RP; p++) {
                const int py = p / RW, px = p % RW;
                double c = 0, back = 0;
                for (int j = 0; j < RC; j++)
                    for (int t = 0; t < k * k; t++) {
                        const int yy = py + t / k - k / 2, xx = px + t % k - k / 2;
                        if (yy >= 0 && yy < RH && xx >= 0 && xx < RW)
                            c += (double)w1(mm, j, t) * rx(j * RP + yy * RW + xx);
                    }
                assert_true(fabs(c) > 1e-3); /* no kink in the data */
                for (int i = 0; i < RC; i++)
                    back += (double)w2(i, mm) * g[i * RP + p];
                for (int j = 0; c > 0 && j < RC; j++)
                    for (int t = 0; t < k * k; t++) {
                        const int yy = py + t / k - k / 2, xx = px + t % k - k / 2;
                        if (yy >= 0 && yy < RH && xx >= 0 && xx < RW)
                            want[j * RP + yy * RW + xx] += (double)w1(mm, j, t) * back;
                    }
            }
        assert_int_equal(lvk_model_backward(m, "z", g, RC * RP, got, RC * RP), LVK_OK);
        for (int i = 0; i < RC * RP; i++)
            if (fabs(got[i] - want[i]) > 1e-5 * fmax(1.0, fabs(want[i])))
                fail_msg("%dx%d, seed x %g: dx[%d] = %g, want %g", k, k, scale, i, got[i], want[i]);
    }
    assert_int_equal(lvk_model_backward(m, "x", g, RC * RP, got, RC * RP), LVK_OK);
    for (int i = 0; i < RC * RP; i++)
        if (got[i] != g[i])
            fail_msg("%dx%d, seed on x: dx[%d] = %g, want %g", k, k, i, got[i], g[i]);
}

static void test_residual_conv(void **state)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    const char *kernels[] = {"texel", "winograd"};
    for (int kk = 0; kk < 2; kk++)
        for (int k = 1; k <= 3; k += 2) {
            setenv("LVK_CONV_KERNEL", kernels[kk], 1);
            struct lvk_model *m = residual_conv(k);
            unsetenv("LVK_CONV_KERNEL");
            /* Forced, the texel kernels run wherever the device can (texel_conv). */
            if (ctx->texel_conv) {
                assert_int_equal(m->nodes[3].grad_shared, 1u);
                assert_int_equal(m->nodes[3].grad_folded, 2u);
                assert_int_equal(m->nodes[0].bwd_sum, 3);
                assert_false(lvk_graph_node_runs(m, &m->nodes[3], true));
            }
            check_residual_conv(m, k);
            lvk_model_destroy(m);
        }

    /* Without fusions the Add copies dz and the convolution adds to it. */
    setenv("LVK_NO_FUSE", "1", 1);
    struct lvk_model *m = residual_conv(3);
    unsetenv("LVK_NO_FUSE");
    assert_int_equal(m->nodes[3].grad_folded, 0u);
    assert_true(lvk_graph_node_runs(m, &m->nodes[3], true));
    check_residual_conv(m, 3);
    lvk_model_destroy(m);
    lvk_test_assert_no_validation();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_backward),
        cmocka_unit_test(test_residual),
        cmocka_unit_test(test_residual_conv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
