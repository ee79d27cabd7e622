/* LRN (src/nn/ops/lrn.c) against a double-precision reference, forward and
 * backward: AlexNet/GoogLeNet's size 5 with the default constants, and
 * constants large enough that the cross-channel term of the gradient
 * matters, with an even size (a window one channel longer above than below). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "support/op_harness.h"

static double attr_f(const struct lvk_op_case *c, const char *name, double def)
{
    for (int i = 0; i < c->nattrs; ++i)
        if (!strcmp(c->attrs[i].name, name))
            return c->attrs[i].type == LVK_ATTR_INT ? (double)c->attrs[i].i : c->attrs[i].f;
    return def;
}

/* The ONNX formula: channels c - floor((size-1)/2) .. c + ceil((size-1)/2). */
static void ref_lrn(const struct lvk_op_case *c, const double *const *in, double *const *out,
                    const struct lvk_shape *out_shape)
{
    const struct lvk_shape *s = &c->in_shape[0];
    int64_t size = (int64_t)attr_f(c, "size", 0);
    double alpha = attr_f(c, "alpha", 1e-4), beta = attr_f(c, "beta", 0.75);
    double bias = attr_f(c, "bias", 1.0);
    int64_t C = s->d[1], S = lvk_shape_count(s) / (s->d[0] * C);
    int64_t lo = (int64_t)floor((size - 1) / 2.0), hi = (int64_t)ceil((size - 1) / 2.0);
    for (int64_t n = 0; n < s->d[0]; ++n)
        for (int64_t ch = 0; ch < C; ++ch)
            for (int64_t p = 0; p < S; ++p) {
                double sum = 0;
                for (int64_t j = ch - lo; j <= ch + hi; ++j)
                    if (j >= 0 && j < C) {
                        double v = in[0][(n * C + j) * S + p];
                        sum += v * v;
                    }
                int64_t i = (n * C + ch) * S + p;
                out[0][i] = in[0][i] / pow(bias + alpha / (double)size * sum, beta);
            }
}

static void run(const struct lvk_attr *attrs, int nattrs, float lo, float hi)
{
    if (!lvk_test_ctx())
        skip();
    struct lvk_op_case c = {.op_type = "LRN", .ninputs = 1, .in_shape = {{4, {2, 13, 11, 9}}},
                            .attrs = attrs, .nattrs = nattrs, .ref = ref_lrn, .lo = lo, .hi = hi};
    lvk_test_op(&c);
}

static void test_lrn_size5(void **state)
{
    const struct lvk_attr a[] = {{.name = "size", .type = LVK_ATTR_INT, .i = 5}};
    run(a, 1, -1, 1);
    /* AlexNet's constants on activations of realistic magnitude. */
    const struct lvk_attr b[] = {
        {.name = "size", .type = LVK_ATTR_INT, .i = 5},
        {.name = "alpha", .type = LVK_ATTR_FLOAT, .f = 1e-4f},
        {.name = "beta", .type = LVK_ATTR_FLOAT, .f = 0.75f},
        {.name = "bias", .type = LVK_ATTR_FLOAT, .f = 2.0f},
    };
    run(b, 4, -30, 30);
}

static void test_lrn_strong(void **state)
{
    const struct lvk_attr a[] = {
        {.name = "size", .type = LVK_ATTR_INT, .i = 4},
        {.name = "alpha", .type = LVK_ATTR_FLOAT, .f = 2.0f},
        {.name = "beta", .type = LVK_ATTR_FLOAT, .f = 0.6f},
        {.name = "bias", .type = LVK_ATTR_FLOAT, .f = 0.5f},
    };
    run(a, 4, -1.5f, 1.5f);
    const struct lvk_attr b[] = {
        {.name = "size", .type = LVK_ATTR_INT, .i = 3},
        {.name = "alpha", .type = LVK_ATTR_FLOAT, .f = 1.0f},
        {.name = "beta", .type = LVK_ATTR_FLOAT, .f = 1.5f},
    };
    run(b, 3, -2, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lrn_size5),
        cmocka_unit_test(test_lrn_strong),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
