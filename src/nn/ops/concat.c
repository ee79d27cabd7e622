/* Concat and Split: the same view copy in opposite directions.
 *
 * Concat copies each input into its window of the output (a view with the
 * output's strides, offset along the axis); its backward reads each input's
 * gradient back out of that window. Split reads each output out of its window
 * of the input; its backward adds each output's gradient into the window.
 * Windows are disjoint, so neither direction needs a table or atomics.
 *
 * Both fold at load time on int64 and float constants, which covers the
 * shape vectors exporters build with Concat. */
#include "nn/ops/view_copy.h"

/* ---- Concat -------------------------------------------------------------------------- */

static lvk_status concat_prepare(struct lvk_model *m, struct lvk_node *n)
{
    if (n->ninputs < 1)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "needs at least one input");
    for (int j = 0; j < n->ninputs; j++)
        if (!lvk_in(m, n, j))
            return lvk_node_fail(m, n, LVK_ERR_FORMAT, "input %d is missing", j);
    const struct lvk_value *x0 = lvk_in(m, n, 0);
    int r = x0->shape.ndim;
    if (r == 0)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "cannot concatenate scalars");
    /* axis is required from opset 4; before, it defaulted to 1. */
    if (m->opset >= 4 && !lvk_attr_find(n, "axis"))
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "attribute 'axis' is required");
    int axis;
    LVK_CHECK(lvk_view_axis(m, n, lvk_attr_int(n, "axis", 1), r, "axis", &axis));

    struct lvk_shape ys = x0->shape;
    ys.d[axis] = 0;
    for (int j = 0; j < n->ninputs; j++) {
        const struct lvk_value *x = lvk_in(m, n, j);
        bool ok = x->shape.ndim == r && x->dtype == x0->dtype;
        for (int d = 0; ok && d < r; d++)
            ok = d == axis || x->shape.d[d] == x0->shape.d[d];
        if (!ok) {
            char a[96], b[96];
            return lvk_node_fail(m, n, LVK_ERR_FORMAT,
                                 "input %d ('%s', %s) does not match input 0 (%s) off axis %d", j,
                                 x->name, lvk_shape_str(&x->shape, a, sizeof a),
                                 lvk_shape_str(&x0->shape, b, sizeof b), axis);
        }
        ys.d[axis] += x->shape.d[axis];
    }
    struct lvk_value *y = lvk_out(m, n, 0);
    y->dtype = x0->dtype;
    y->shape = ys;

    int64_t ystride[LVK_MAX_DIMS];
    lvk_view_strides(&ys, ystride);
    struct lvk_view_plan *p = lvk_view_plan_new(2 * n->ninputs);
    if (!p)
        return LVK_ERR_HOST_OOM;
    int64_t at = 0;
    for (int j = 0; j < n->ninputs; j++) {
        const struct lvk_value *x = lvk_in(m, n, j);
        /* Input j's window of y: y's strides, shifted along the axis. */
        int f = lvk_view_add(p, n->inputs[j], n->outputs[0], false, &x->shape);
        int b = lvk_view_add(p, n->outputs[0], n->inputs[j], true, &x->shape);
        for (int d = 0; d < r; d++)
            p->step[f].dst_stride[d] = p->step[b].src_stride[d] = ystride[d];
        p->step[f].dst_base = p->step[b].src_base = at * ystride[axis];
        at += x->shape.d[axis];
    }
    return lvk_view_finish(m, n, p);
}

/* ---- Split --------------------------------------------------------------------------- */

static lvk_status split_prepare(struct lvk_model *m, struct lvk_node *n)
{
    const struct lvk_value *x = lvk_in(m, n, 0);
    if (!x)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "input 0 is missing");
    int r = x->shape.ndim, no = n->noutputs, axis;
    if (no < 1)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "needs at least one output");
    LVK_CHECK(lvk_view_axis(m, n, lvk_attr_int(n, "axis", 0), r, "axis", &axis));
    int64_t dim = x->shape.d[axis];

    /* Sizes: 'split' (attribute before opset 13, input from it), else equal
     * parts; opset 18's num_outputs lets the last part be smaller. */
    int64_t *len = lvk_calloc((size_t)no, sizeof *len);
    if (!len)
        return LVK_ERR_HOST_OOM;
    lvk_status st = LVK_OK;
    int ns = -1;
    if (m->opset < 13 && lvk_attr_find(n, "split")) {
        ns = lvk_attr_ints(n, "split", len, no);
        if (ns < 0)
            st = lvk_node_fail(m, n, LVK_ERR_FORMAT, "'split' has more values than outputs (%d)",
                               no);
    } else if (m->opset >= 13 && lvk_in(m, n, 1)) {
        int64_t c = lvk_shape_count(&lvk_in(m, n, 1)->shape);
        if (c != no)
            st = lvk_node_fail(m, n, LVK_ERR_FORMAT, "'split' has %lld values for %d outputs",
                               (long long)c, no);
        else
            st = lvk_view_const_ints(m, n, 1, len, no, &ns);
    }
    if (st == LVK_OK && ns >= 0) {
        int64_t sum = 0;
        for (int k = 0; k < ns; k++) {
            if (len[k] < 0)
                st = lvk_node_fail(m, n, LVK_ERR_FORMAT, "split size %lld is negative",
                                   (long long)len[k]);
            sum += len[k];
        }
        if (st == LVK_OK && (ns != no || sum != dim))
            st = lvk_node_fail(m, n, LVK_ERR_FORMAT,
                               "split sizes (%d values, sum %lld) do not cut a dim of %lld into %d",
                               ns, (long long)sum, (long long)dim, no);
    } else if (st == LVK_OK) {
        int64_t part = LVK_CEIL_DIV(dim, no);
        bool uneven_ok = lvk_attr_find(n, "num_outputs") != NULL;
        if (dim % no && !uneven_ok)
            st = lvk_node_fail(m, n, LVK_ERR_FORMAT, "dim %lld does not split into %d equal parts",
                               (long long)dim, no);
        for (int k = 0; k < no; k++)
            len[k] = LVK_MAX(LVK_MIN(part, dim - k * part), 0);
    }
    struct lvk_view_plan *p = st == LVK_OK ? lvk_view_plan_new(2 * no) : NULL;
    if (st == LVK_OK && !p)
        st = LVK_ERR_HOST_OOM;
    if (st != LVK_OK) {
        free(len);
        return st;
    }

    int64_t xstride[LVK_MAX_DIMS], at = 0;
    lvk_view_strides(&x->shape, xstride);
    for (int k = 0; k < no; k++) {
        struct lvk_shape ys = x->shape;
        ys.d[axis] = len[k];
        int64_t base = at * xstride[axis];
        at += len[k];
        if (n->outputs[k] < 0)
            continue;
        struct lvk_value *y = lvk_out(m, n, k);
        y->dtype = x->dtype;
        y->shape = ys;
        /* Output k's window of x: x's strides, shifted along the axis. */
        int f = lvk_view_add(p, n->inputs[0], n->outputs[k], false, &ys);
        int b = lvk_view_add(p, n->outputs[k], n->inputs[0], true, &ys);
        for (int d = 0; d < r; d++)
            p->step[f].src_stride[d] = p->step[b].dst_stride[d] = xstride[d];
        p->step[f].src_base = p->step[b].dst_base = base;
    }
    free(len);
    return lvk_view_finish(m, n, p);
}

/* Each input's gradient is one backward copy that writes every element of
 * it once: it can apply an activation's gradient mask on the way, and
 * store. */
static bool concat_grad_whole(const struct lvk_node *n, int k)
{
    (void)n;
    (void)k;
    return true;
}

/* Along axis 1, an input whose channels lie outside those read of the
 * output (lvk_value.read_lo, read_hi) is not needed: its copies are
 * skipped, as it has no buffer (lvk_view_fwd, lvk_view_bwd). A range that
 * is empty or reaches past the channels restricts nothing. */
static bool concat_needs_input(const struct lvk_model *m, const struct lvk_node *n, int k)
{
    const struct lvk_value *y = &m->values[n->outputs[0]];
    int axis;
    if (lvk_view_axis(m, n, lvk_attr_int(n, "axis", 1), y->shape.ndim, "axis", &axis) != LVK_OK ||
        axis != 1 || y->read_lo < 0 || y->read_lo >= y->read_hi || y->read_hi > y->shape.d[1])
        return true;
    int64_t at = 0;
    for (int j = 0; j < k; j++)
        at += m->values[n->inputs[j]].shape.d[1];
    return at < y->read_hi && at + m->values[n->inputs[k]].shape.d[1] > y->read_lo;
}

static const struct lvk_op_def concat_def = {
    .op_type = "Concat",
    .prepare = concat_prepare,
    .fold = lvk_view_fold,
    .fwd = lvk_view_fwd,
    .bwd = lvk_view_bwd,
    .fuses_clamp_bwd = concat_grad_whole,
    .stores_grad = concat_grad_whole,
    .needs_input = concat_needs_input,
};

static const struct lvk_op_def split_def = {
    .op_type = "Split",
    .prepare = split_prepare,
    .fold = lvk_view_fold,
    .fwd = lvk_view_fwd,
    .bwd = lvk_view_bwd,
};

const struct lvk_op_def *const lvk_ops_concat[] = {&concat_def, &split_def, NULL};
