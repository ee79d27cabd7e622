/* How much of a graph a load with named outputs takes on: only the nodes
 * those outputs need are prepared, so a layer past them whose shapes do
 * not fit (here a Conv whose weights want 8 channels of a 4-channel input)
 * neither fails the load nor costs its planning; loading the whole graph
 * still reports it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/op_harness.h"

static struct lvk_model *build_unfit(void)
{
    struct lvk_model *m = NULL;
    assert_int_equal(lvk_graph_create(lvk_test_ctx(), "unfit", &m), LVK_OK);
    float w[4 * 8] = {0};
    const struct lvk_shape xs = {4, {1, 4, 3, 3}}, ws = {4, {4, 8, 1, 1}};
    assert_true(lvk_graph_add_input(m, "x", LVK_DTYPE_F32, &xs) >= 0);
    assert_true(lvk_graph_add_const(m, "w", LVK_DTYPE_F32, &ws, w) >= 0);
    assert_int_equal(lvk_graph_add_node(m, "Relu", "relu", (const char *const[]){"x"}, 1,
                                        (const char *const[]){"y"}, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Conv", "after", (const char *const[]){"y", "w"}, 2,
                                        (const char *const[]){"z"}, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_mark_output(m, "z"), LVK_OK);
    return m;
}

static void test_unneeded_not_prepared(void **state)
{
    if (!lvk_test_ctx())
        skip();
    struct lvk_model *m = build_unfit();
    const char *outputs[] = {"y"};
    const struct lvk_model_opts opts = {.outputs = outputs, .noutputs = 1, .gradients = 1};
    if (lvk_graph_finalize(m, &opts) != LVK_OK)
        fail_msg("finalize for y: %s", lvk_last_error());
    assert_false(m->nodes[1].needed);
    assert_null(m->nodes[1].priv);
    float x[36], y[36];
    for (int i = 0; i < 36; i++)
        x[i] = (float)(i % 7) - 3.0f;
    assert_int_equal(lvk_model_set_input(m, "x", x, 36), LVK_OK);
    assert_int_equal(lvk_model_forward(m), LVK_OK);
    assert_int_equal(lvk_model_read(m, "y", y, 36), LVK_OK);
    for (int i = 0; i < 36; i++)
        assert_true(y[i] == (x[i] > 0 ? x[i] : 0.0f));
    lvk_model_destroy(m);

    m = build_unfit();
    assert_int_equal(lvk_graph_finalize(m, NULL), LVK_ERR_FORMAT);
    assert_non_null(strstr(lvk_last_error(), "node 'after'"));
    lvk_model_destroy(m);
    lvk_test_assert_no_validation();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unneeded_not_prepared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
