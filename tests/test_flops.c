/* FLOP counts of src/nn/flops.c (the benchmark's GFLOP/s columns) against
 * counts worked out by hand, with the Relu's gradient mask in its own pass
 * and applied by the Conv that reads its output (graph.h, bwd_fused): the
 * backward does the same work either way, so the count must not change. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nn/flops.h"
#include "support/op_harness.h"

/* x [1, 2, 1, 8] -> Conv (2 -> 3, 1x1) -> Relu -> Conv (3 -> 4, 1x1) -> z,
 * input gradients on; without `want_bwd_fused` the Relu's output y is
 * requested too, which keeps its gradient and the mask in its own pass.
 * Counting 2 FLOPs per multiply-add:
 *   forward  conv1 2*3*8*2 = 96, conv2 3*4*8*2 = 192, Relu 24 (one per element)
 *   backward conv1 96, conv2 192, the Relu's mask 24 */
static void check(const char *conv_kernel, bool want_bwd_fused)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    setenv("LVK_CONV_KERNEL", conv_kernel, 1);
    struct lvk_model *m = NULL;
    assert_int_equal(lvk_graph_create(ctx, "flops", &m), LVK_OK);
    const struct lvk_shape xs = {4, {1, 2, 1, 8}}, w1s = {4, {3, 2, 1, 1}}, w2s = {4, {4, 3, 1, 1}};
    float w1[6], w2[12];
    for (int i = 0; i < 6; i++)
        w1[i] = 0.1f * (float)i;
    for (int i = 0; i < 12; i++)
        w2[i] = 0.05f * (float)i;
    assert_true(lvk_graph_add_input(m, "x", LVK_DTYPE_F32, &xs) >= 0);
    assert_true(lvk_graph_add_const(m, "w1", LVK_DTYPE_F32, &w1s, w1) >= 0);
    assert_true(lvk_graph_add_const(m, "w2", LVK_DTYPE_F32, &w2s, w2) >= 0);
    assert_int_equal(lvk_graph_add_node(m, "Conv", "conv1", (const char *const[]){"x", "w1"}, 2,
                                        (const char *const[]){"c"}, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Relu", "relu", (const char *const[]){"c"}, 1,
                                        (const char *const[]){"y"}, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Conv", "conv2", (const char *const[]){"y", "w2"}, 2,
                                        (const char *const[]){"z"}, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_mark_output(m, "z"), LVK_OK);
    if (!want_bwd_fused)
        assert_int_equal(lvk_graph_mark_output(m, "y"), LVK_OK);
    const struct lvk_model_opts opts = {.gradients = 1};
    assert_int_equal(lvk_graph_finalize(m, &opts), LVK_OK);
    assert_int_equal(m->nodes[1].bwd_fused, want_bwd_fused);

    const struct lvk_flops f = lvk_model_flops(m);
    assert_float_equal(f.fwd, 96 + 192 + 24, 0);
    assert_float_equal(f.bwd, 96 + 192 + 24, 0);
    lvk_model_destroy(m);
    unsetenv("LVK_CONV_KERNEL");
}

static void test_mask_in_its_own_pass(void **state)
{
    check("classic", false);
}

static void test_mask_applied_by_the_conv(void **state)
{
    check("classic", true);
    if (lvk_test_ctx()->is_lavapipe)   /* the texel kernel is lavapipe's */
        check("texel", true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask_in_its_own_pass),
        cmocka_unit_test(test_mask_applied_by_the_conv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
