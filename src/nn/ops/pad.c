/* Pad: modes constant, reflect, edge and wrap; negative pads crop.
 *
 * Each padded axis gets a coordinate map out -> in (or none, for constant
 * padding), and forward is one view copy reading the padded axes through
 * those maps. Backward walks the input gradient and, per padded axis, the
 * inverted map: an input element that reflect or edge padding copied to
 * several outputs sums all of their gradients, so the pass is a gather with
 * no atomics. Axes without padding stay plain strided axes.
 *
 * Pads are an attribute ('paddings' in opset 1, 'pads' in 2..10) or a
 * constant input from opset 11, with the pad value an attribute before 11
 * and an optional constant input after; opset 18 adds an axes input. */
#include <string.h>

#include "nn/ops/view_copy.h"

enum pad_mode { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP };

/* Input coordinate that output coordinate o copies, or -1 for the value. */
static int64_t pad_source(enum pad_mode mode, int64_t o, int64_t begin, int64_t n)
{
    int64_t i = o - begin;
    if (i >= 0 && i < n)
        return i;
    switch (mode) {
    case PAD_CONSTANT:
        return -1;
    case PAD_EDGE:
        return i < 0 ? 0 : n - 1;
    case PAD_WRAP:
        return ((i % n) + n) % n;
    case PAD_REFLECT:
        /* A 1-element axis reflects onto itself (numpy's behaviour); larger
         * pads reflect back and forth, period 2 (n - 1). */
        if (n == 1)
            return 0;
        i = i % (2 * (n - 1));
        if (i < 0)
            i = -i;
        return i < n ? i : 2 * (n - 1) - i;
    }
    return -1;
}

static lvk_status pad_args(struct lvk_model *m, struct lvk_node *n, int r, int64_t *begin,
                           int64_t *end, double *value)
{
    int64_t pads[2 * LVK_MAX_DIMS], axes_in[LVK_MAX_DIMS];
    int np, nax = -1;
    *value = 0;
    if (m->opset < 11) {
        const char *name = m->opset < 2 ? "paddings" : "pads";
        if (!lvk_attr_find(n, name))
            return lvk_node_fail(m, n, LVK_ERR_FORMAT, "attribute '%s' is required", name);
        np = lvk_attr_ints(n, name, pads, 2 * LVK_MAX_DIMS);
        if (np < 0)
            return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED, "%s", lvk_last_error());
        *value = lvk_attr_float(n, "value", 0.0f);
    } else {
        LVK_CHECK(lvk_view_const_ints(m, n, 1, pads, 2 * LVK_MAX_DIMS, &np));
        const struct lvk_value *cv = lvk_in(m, n, 2);
        if (cv) {
            LVK_CHECK(lvk_node_need_const(m, n, 2));
            if (lvk_shape_count(&cv->shape) != 1)
                return lvk_node_fail(m, n, LVK_ERR_FORMAT, "constant_value must hold one value");
            *value = cv->dtype == LVK_DTYPE_F32 ? ((const float *)cv->host)[0]
                                                : (double)((const int64_t *)cv->host)[0];
        }
        if (lvk_in(m, n, 3))
            LVK_CHECK(lvk_view_const_ints(m, n, 3, axes_in, LVK_MAX_DIMS, &nax));
    }
    int na = nax >= 0 ? nax : r;
    if (np != 2 * na)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT,
                             "%d pads for %d axes (need begin and end of each)", np, na);
    memset(begin, 0, (size_t)r * sizeof *begin);
    memset(end, 0, (size_t)r * sizeof *end);
    for (int k = 0; k < na; k++) {
        int a = k;
        if (nax >= 0)
            LVK_CHECK(lvk_view_axis(m, n, axes_in[k], r, "axis", &a));
        begin[a] = pads[k];
        end[a] = pads[na + k];
    }
    return LVK_OK;
}

static lvk_status pad_prepare(struct lvk_model *m, struct lvk_node *n)
{
    const struct lvk_value *x = lvk_in(m, n, 0);
    if (!x)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "input 0 is missing");
    int r = x->shape.ndim;
    const char *ms = lvk_attr_str(n, "mode", "constant");
    enum pad_mode mode;
    if (!strcmp(ms, "constant"))
        mode = PAD_CONSTANT;
    else if (!strcmp(ms, "reflect"))
        mode = PAD_REFLECT;
    else if (!strcmp(ms, "edge"))
        mode = PAD_EDGE;
    else if (!strcmp(ms, "wrap"))
        mode = PAD_WRAP;
    else
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED,
                             "mode '%s' (supported: constant, reflect, edge, wrap)", ms);
    int64_t begin[LVK_MAX_DIMS], end[LVK_MAX_DIMS];
    double value;
    LVK_CHECK(pad_args(m, n, r, begin, end, &value));

    struct lvk_value *y = lvk_out(m, n, 0);
    y->dtype = x->dtype;
    y->shape = x->shape;
    for (int d = 0; d < r; d++) {
        y->shape.d[d] = x->shape.d[d] + begin[d] + end[d];
        if (y->shape.d[d] < 0)
            return lvk_node_fail(m, n, LVK_ERR_FORMAT, "pads crop axis %d (size %lld) below zero",
                                 d, (long long)x->shape.d[d]);
        if (x->shape.d[d] == 0 && y->shape.d[d] > 0 && mode != PAD_CONSTANT)
            return lvk_node_fail(m, n, LVK_ERR_FORMAT, "cannot %s-pad the empty axis %d", ms, d);
    }

    int64_t xstride[LVK_MAX_DIMS], maxd = 1;
    lvk_view_strides(&x->shape, xstride);
    for (int d = 0; d < r; d++)
        maxd = LVK_MAX(maxd, y->shape.d[d]);
    int64_t *map = lvk_calloc((size_t)maxd, sizeof *map);
    struct lvk_view_plan *p = map ? lvk_view_plan_new(2) : NULL;
    if (!p) {
        free(map);
        return LVK_ERR_HOST_OOM;
    }
    int f = lvk_view_add(p, n->inputs[0], n->outputs[0], false, &y->shape);
    int b = lvk_view_add(p, n->outputs[0], n->inputs[0], true, &x->shape);
    p->step[f].fill = value;
    for (int d = 0; d < r; d++)
        p->step[f].src_stride[d] = xstride[d];
    lvk_view_strides(&y->shape, p->step[b].src_stride);
    /* Forward's tables, then backward's: a step's tables are contiguous. */
    lvk_status st = LVK_OK;
    for (int k = 0; k < 2 * r && st == LVK_OK; k++) {
        int d = k % r, step = k < r ? f : b;
        if (!begin[d] && !end[d])
            continue;
        for (int64_t o = 0; o < y->shape.d[d]; o++)
            map[o] = pad_source(mode, o, begin[d], x->shape.d[d]);
        st = lvk_view_map(&p, step, d, map, y->shape.d[d], step == b);
    }
    free(map);
    if (st != LVK_OK) {
        free(p);
        return st;
    }
    return lvk_view_finish(m, n, p);
}

static const struct lvk_op_def pad_def = {
    .op_type = "Pad",
    .prepare = pad_prepare,
    .fold = lvk_view_fold,
    .fwd = lvk_view_fwd,
    .bwd = lvk_view_bwd,
};

const struct lvk_op_def *const lvk_ops_pad[] = {&pad_def, NULL};
