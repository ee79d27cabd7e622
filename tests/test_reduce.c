/* ReduceMean and ReduceSum (src/nn/ops/reduce.c) against a double-precision
 * reference, forward and backward: spatial means (the CNN case), single,
 * negative and non-adjacent axes, keepdims on and off, axes as an attribute
 * and as a constant input, every axis, and noop_with_empty_axes. */
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

/* What the reference needs besides the case: the axes, wherever the case
 * passes them, and whether an empty list means "all" or "none". */
struct axes {
    int n;
    int64_t v[LVK_MAX_DIMS];
    bool noop_if_empty;
};

static void ref_reduce(const struct lvk_op_case *c, const double *const *in, double *const *out,
                       const struct lvk_shape *out_shape)
{
    const struct axes *ax = c->user;
    const struct lvk_shape *s = &c->in_shape[0];
    bool red[LVK_MAX_DIMS] = {false}, keep = true;
    for (int i = 0; i < c->nattrs; ++i)
        if (!strcmp(c->attrs[i].name, "keepdims"))
            keep = c->attrs[i].i != 0;
    for (int i = 0; i < ax->n; ++i)
        red[ax->v[i] < 0 ? ax->v[i] + s->ndim : ax->v[i]] = true;
    if (ax->n == 0 && !ax->noop_if_empty)
        for (int d = 0; d < s->ndim; ++d)
            red[d] = true;

    int nd = 0;
    int64_t count = 1;
    for (int d = 0; d < s->ndim; ++d) {
        if (red[d])
            count *= s->d[d];
        if (!red[d] || keep) {
            assert_true(nd < out_shape->ndim);
            assert_int_equal(out_shape->d[nd], red[d] ? 1 : s->d[d]);
            nd++;
        }
    }
    assert_int_equal(out_shape->ndim, nd);

    int64_t nout = lvk_shape_count(out_shape);
    for (int64_t o = 0; o < nout; ++o)
        out[0][o] = 0;
    for (int64_t i = 0; i < lvk_shape_count(s); ++i) {
        /* Output index: the input coordinates with reduced ones dropped. */
        int64_t o = 0, stride = 1, rem = i;
        for (int d = s->ndim - 1; d >= 0; --d) {
            int64_t coord = rem % s->d[d];
            rem /= s->d[d];
            if (!red[d]) {
                o += coord * stride;
                stride *= s->d[d];
            }
        }
        out[0][o] += in[0][i];
    }
    if (!strcmp(c->op_type, "ReduceMean"))
        for (int64_t o = 0; o < nout; ++o)
            out[0][o] /= (double)count;
}

/* Axes as an attribute. */
static void run_attr(const char *op, struct lvk_shape shape, struct axes ax, int keepdims)
{
    if (!lvk_test_ctx())
        skip();
    struct lvk_attr attrs[2] = {INT("keepdims", keepdims),
                                {.name = "axes", .type = LVK_ATTR_INTS, .ints = ax.v, .n = ax.n}};
    struct lvk_op_case c = {.op_type = op, .ninputs = 1, .in_shape = {shape}, .attrs = attrs,
                            .nattrs = ax.n ? 2 : 1, .ref = ref_reduce, .user = &ax};
    lvk_test_op(&c);
}

/* Axes as a constant int64 input (ReduceSum from opset 13, ReduceMean from
 * 18); noop sets noop_with_empty_axes. */
static void run_input(const char *op, struct lvk_shape shape, struct axes ax, int keepdims)
{
    if (!lvk_test_ctx())
        skip();
    struct lvk_attr attrs[2] = {INT("keepdims", keepdims),
                                INT("noop_with_empty_axes", ax.noop_if_empty)};
    struct lvk_op_case c = {.op_type = op, .ninputs = 2, .in_shape = {shape, {1, {ax.n}}},
                            .in_kind = {LVK_IN_RUNTIME, LVK_IN_CONST_I64},
                            .in_data = {NULL, ax.v}, .attrs = attrs, .nattrs = 2,
                            .ref = ref_reduce, .user = &ax};
    lvk_test_op(&c);
}

static const struct lvk_shape odd = SHAPE(2, 13, 11, 9);

static void test_spatial_mean(void **state)
{
    run_attr("ReduceMean", odd, (struct axes){2, {2, 3}}, 1);
    run_attr("ReduceMean", odd, (struct axes){2, {-1, -2}}, 0);
}

static void test_other_axes(void **state)
{
    run_attr("ReduceMean", odd, (struct axes){1, {1}}, 1);
    run_attr("ReduceMean", odd, (struct axes){1, {-1}}, 0);
    run_attr("ReduceMean", odd, (struct axes){2, {0, 2}}, 0);
    run_attr("ReduceMean", odd, (struct axes){3, {3, 0, 1}}, 1);
    /* Three separate reduced groups (and a size-1 dim between two). */
    const struct lvk_shape s6a = SHAPE(3, 2, 5, 1, 4, 3), s6b = SHAPE(2, 3, 2, 5, 3, 2);
    run_attr("ReduceMean", s6a, (struct axes){3, {0, 2, 5}}, 0);
    run_attr("ReduceSum", s6b, (struct axes){3, {1, 3, 5}}, 1);
}

static void test_all_axes(void **state)
{
    run_attr("ReduceMean", (struct lvk_shape)SHAPE(2, 5, 7), (struct axes){0}, 1);
    run_attr("ReduceSum", (struct lvk_shape)SHAPE(2, 5, 7), (struct axes){0}, 0);
}

static void test_axes_input(void **state)
{
    run_input("ReduceSum", odd, (struct axes){2, {2, 3}}, 1);
    run_input("ReduceSum", odd, (struct axes){1, {-3}}, 0);
    run_input("ReduceMean", odd, (struct axes){2, {3, 2}}, 0);
    run_input("ReduceSum", (struct lvk_shape)SHAPE(2, 5, 7), (struct axes){0}, 1);
    /* Empty axes with noop_with_empty_axes: the identity. */
    run_input("ReduceSum", odd, (struct axes){.noop_if_empty = true}, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spatial_mean),
        cmocka_unit_test(test_other_axes),
        cmocka_unit_test(test_all_axes),
        cmocka_unit_test(test_axes_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
