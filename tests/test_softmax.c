/* Softmax and LogSoftmax (src/nn/ops/softmax.c) against a double-precision
 * reference, forward and backward, in both axis semantics: from opset 13
 * along one axis (every axis of a 4-D tensor, negative and default), and
 * before 13 over the tensor flattened to 2-D at the axis (default 1). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "support/op_harness.h"

static const struct lvk_shape odd = {4, {2, 13, 11, 9}};

/* Before opset 13 the input is flattened to 2-D at the axis. */
static bool flattens(const struct lvk_op_case *c)
{
    return c->opset && c->opset < 13;
}

static int64_t axis_of(const struct lvk_op_case *c, bool flatten)
{
    int64_t axis = flatten ? 1 : -1;
    for (int i = 0; i < c->nattrs; ++i)
        if (!strcmp(c->attrs[i].name, "axis"))
            axis = c->attrs[i].i;
    return axis < 0 ? axis + c->in_shape[0].ndim : axis;
}

/* The input as [outer, len, inner], normalised along len. */
static void view(const struct lvk_op_case *c, bool flatten, int64_t *outer, int64_t *len,
                 int64_t *inner)
{
    const struct lvk_shape *s = &c->in_shape[0];
    int64_t axis = axis_of(c, flatten);
    *outer = *len = *inner = 1;
    for (int d = 0; d < s->ndim; ++d)
        *(d < axis ? outer : d == axis || flatten ? len : inner) *= s->d[d];
}

static void ref_softmax(const struct lvk_op_case *c, const double *const *in, double *const *out,
                        const struct lvk_shape *out_shape)
{
    bool log_form = !strcmp(c->op_type, "LogSoftmax");
    int64_t outer, len, inner;
    view(c, flattens(c), &outer, &len, &inner);
    assert_true(lvk_shape_eq(out_shape, &c->in_shape[0]));
    for (int64_t o = 0; o < outer; ++o)
        for (int64_t r = 0; r < inner; ++r) {
            const double *x = in[0] + o * len * inner + r;
            double *y = out[0] + o * len * inner + r;
            double mx = -INFINITY, sum = 0;
            for (int64_t k = 0; k < len; ++k)
                mx = fmax(mx, x[k * inner]);
            for (int64_t k = 0; k < len; ++k)
                sum += exp(x[k * inner] - mx);
            for (int64_t k = 0; k < len; ++k) {
                double v = x[k * inner] - mx;
                y[k * inner] = log_form ? v - log(sum) : exp(v) / sum;
            }
        }
}

static void run(const char *op, int opset, const struct lvk_attr *attrs, int nattrs)
{
    if (!lvk_test_ctx())
        skip();
    struct lvk_op_case c = {.op_type = op, .ninputs = 1, .in_shape = {odd}, .attrs = attrs,
                            .nattrs = nattrs, .ref = ref_softmax, .lo = -3, .hi = 3,
                            .opset = opset};
    lvk_test_op(&c);
}

#define AXIS(v) {.name = "axis", .type = LVK_ATTR_INT, .i = (v)}

static void test_softmax_opset13(void **state)
{
    run("Softmax", 13, NULL, 0);
    for (int axis = -4; axis < 4; ++axis) {
        const struct lvk_attr a[] = {AXIS(axis)};
        run("Softmax", 13, a, 1);
    }
}

static void test_log_softmax_opset13(void **state)
{
    run("LogSoftmax", 13, NULL, 0);
    const struct lvk_attr a[] = {AXIS(1)}, b[] = {AXIS(-2)};
    run("LogSoftmax", 13, a, 1);
    run("LogSoftmax", 13, b, 1);
}

static void test_opset11(void **state)
{
    /* Default axis 1: each batch item's 13 * 11 * 9 values form one row. */
    const struct lvk_attr a[] = {AXIS(0)}, b[] = {AXIS(2)}, c[] = {AXIS(-1)};
    run("Softmax", 11, NULL, 0);
    run("Softmax", 11, a, 1);
    run("Softmax", 11, b, 1);
    run("Softmax", 11, c, 1);
    run("LogSoftmax", 11, NULL, 0);
    run("LogSoftmax", 11, b, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softmax_opset13),
        cmocka_unit_test(test_log_softmax_opset13),
        cmocka_unit_test(test_opset11),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
