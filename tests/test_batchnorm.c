/* BatchNormalization in inference mode (src/nn/ops/batchnorm.c) against a
 * double-precision reference, forward and backward, on [N, C, H, W] and
 * [N, C] inputs; and the training forms that must fail cleanly. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "support/op_harness.h"

enum { C = 13 };

static void ref_batchnorm(const struct lvk_op_case *c, const double *const *in, double *const *out,
                          const struct lvk_shape *out_shape)
{
    double eps = 1e-5;
    for (int i = 0; i < c->nattrs; ++i)
        if (!strcmp(c->attrs[i].name, "epsilon"))
            eps = c->attrs[i].f;
    const struct lvk_shape *s = &c->in_shape[0];
    assert_true(lvk_shape_eq(out_shape, s));
    int64_t S = lvk_shape_count(s) / (s->d[0] * C);
    for (int64_t i = 0; i < lvk_shape_count(s); ++i) {
        int64_t ch = i / S % C;
        double scale = in[1][ch], bias = in[2][ch], mean = in[3][ch], var = in[4][ch];
        out[0][i] = (in[0][i] - mean) / sqrt(var + eps) * scale + bias;
    }
}

/* Per-channel constants: scale of both signs, variances from 0.01 to ~3. */
static float scale[C], bias[C], mean[C], var[C];

static void run(struct lvk_shape shape, const struct lvk_attr *attrs, int nattrs)
{
    if (!lvk_test_ctx())
        skip();
    for (int k = 0; k < C; ++k) {
        scale[k] = (k % 3 == 0 ? -0.5f : 1.0f) + 0.1f * (float)k;
        bias[k] = 0.3f * (float)(k - 6);
        mean[k] = 0.05f * (float)(k * k % 7) - 0.1f;
        var[k] = 0.01f + 0.25f * (float)k;
    }
    const struct lvk_shape cs = {1, {C}};
    struct lvk_op_case c = {
        .op_type = "BatchNormalization", .ninputs = 5,
        .in_shape = {shape, cs, cs, cs, cs},
        .in_kind = {LVK_IN_RUNTIME, LVK_IN_CONST, LVK_IN_CONST, LVK_IN_CONST, LVK_IN_CONST},
        .in_data = {NULL, scale, bias, mean, var},
        .attrs = attrs, .nattrs = nattrs, .ref = ref_batchnorm,
    };
    lvk_test_op(&c);
}

static void test_batchnorm_4d(void **state)
{
    run((struct lvk_shape){4, {2, C, 11, 9}}, NULL, 0);
    const struct lvk_attr a[] = {{.name = "epsilon", .type = LVK_ATTR_FLOAT, .f = 0.02f}};
    run((struct lvk_shape){4, {2, C, 11, 9}}, a, 1);
}

static void test_batchnorm_2d(void **state)
{
    run((struct lvk_shape){2, {3, C}}, NULL, 0);
}

static void test_batchnorm_training(void **state)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    const struct lvk_shape xs = {4, {2, C, 5, 3}}, cs = {1, {C}};
    const struct lvk_attr train[] = {{.name = "training_mode", .type = LVK_ATTR_INT, .i = 1}};
    for (int form = 0; form < 2; ++form) {
        struct lvk_model *m = NULL;
        assert_int_equal(lvk_graph_create(ctx, "bn_train", &m), LVK_OK);
        assert_true(lvk_graph_add_input(m, "x", LVK_DTYPE_F32, &xs) >= 0);
        const char *const names[] = {"x", "scale", "bias", "mean", "var"};
        for (int i = 1; i < 5; ++i)
            assert_true(lvk_graph_add_const(m, names[i], LVK_DTYPE_F32, &cs, scale) >= 0);
        const char *const out[] = {"y", "running_mean", "running_var"};
        /* form 0: the training_mode attribute; form 1: the statistics outputs. */
        assert_int_equal(lvk_graph_add_node(m, "BatchNormalization", "bn", names, 5, out,
                                            form ? 3 : 1, train, form ? 0 : 1), LVK_OK);
        assert_int_equal(lvk_graph_mark_output(m, "y"), LVK_OK);
        assert_int_equal(lvk_graph_finalize(m, &(struct lvk_model_opts){0}), LVK_ERR_UNSUPPORTED);
        assert_non_null(strstr(lvk_last_error(), "training"));
        lvk_model_destroy(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batchnorm_4d),
        cmocka_unit_test(test_batchnorm_2d),
        cmocka_unit_test(test_batchnorm_training),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
