/* Transpose: output axis k is input axis perm[k] (default: reversed).
 *
 * Forward walks the output in order and reads the input with its strides
 * permuted; backward walks the output gradient in the same order and adds it
 * through the same permuted view into the input gradient, a one-to-one map
 * and so race-free. A channel shuffle ([N, g, C/g, H, W] with perm
 * [0, 2, 1, 3, 4]) becomes a 3-D copy once H and W merge with their
 * neighbours' strides. */
#include "nn/ops/view_copy.h"

static lvk_status transpose_prepare(struct lvk_model *m, struct lvk_node *n)
{
    const struct lvk_value *x = lvk_in(m, n, 0);
    if (!x)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "input 0 is missing");
    int r = x->shape.ndim;
    int64_t perm[LVK_MAX_DIMS];
    int np = lvk_attr_ints(n, "perm", perm, LVK_MAX_DIMS);
    if (np < 0)
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED, "'perm' has more than %d values",
                             LVK_MAX_DIMS);
    if (np == 0) {
        for (int k = 0; k < r; k++)
            perm[k] = r - 1 - k;
        np = r;
    }
    bool used[LVK_MAX_DIMS] = {false};
    bool ok = np == r;
    for (int k = 0; ok && k < r; k++) {
        ok = perm[k] >= 0 && perm[k] < r && !used[perm[k]];
        if (ok)
            used[perm[k]] = true;
    }
    if (!ok)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "'perm' is not a permutation of %d axes", r);

    struct lvk_value *y = lvk_out(m, n, 0);
    y->dtype = x->dtype;
    y->shape.ndim = r;
    for (int k = 0; k < r; k++)
        y->shape.d[k] = x->shape.d[perm[k]];

    int64_t xstride[LVK_MAX_DIMS];
    lvk_view_strides(&x->shape, xstride);
    struct lvk_view_plan *p = lvk_view_plan_new(2);
    if (!p)
        return LVK_ERR_HOST_OOM;
    int f = lvk_view_add(p, n->inputs[0], n->outputs[0], false, &y->shape);
    int b = lvk_view_add(p, n->outputs[0], n->inputs[0], true, &y->shape);
    for (int k = 0; k < r; k++)
        p->step[f].src_stride[k] = p->step[b].dst_stride[k] = xstride[perm[k]];
    return lvk_view_finish(m, n, p);
}

static const struct lvk_op_def transpose_def = {
    .op_type = "Transpose",
    .prepare = transpose_prepare,
    .fold = lvk_view_fold,
    .fwd = lvk_view_fwd,
    .bwd = lvk_view_bwd,
};

const struct lvk_op_def *const lvk_ops_transpose[] = {&transpose_def, NULL};
