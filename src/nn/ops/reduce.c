/* ReduceMean and ReduceSum over any set of axes, keepdims or not.
 *
 * Axes come from the second input when there is one (ReduceSum from opset
 * 13, ReduceMean from 18; it must be a constant), else from the attribute.
 * No axes means every axis, or the identity with noop_with_empty_axes = 1.
 *
 * Adjacent axes that are both kept or both reduced merge into one group, so
 * any reduction of a tensor of up to 6 dims is at most 3 kept and 3 reduced
 * groups, which one pair of shaders covers (shaders/reduce_{fwd,bwd}.comp).
 * Each output sums its elements sequentially: right for the spatial means
 * CNN heads take; a reduction of a whole large tensor runs on one thread. */
#include <string.h>

#include "nn/graph.h"
#include "nn/ops_common.h"

struct reduce {
    uint32_t spec[13];  /* shaders/reduce_fwd.comp constants */
    uint32_t nin, nout; /* element counts of input and output */
};

/* Fills the group sizes and strides of the shaders' constants. */
static void reduce_groups(const struct lvk_shape *xs, const bool *reduced, struct reduce *r)
{
    uint32_t *ksize = &r->spec[0], *kstride = &r->spec[3];
    uint32_t *rsize = &r->spec[6], *rstride = &r->spec[9];
    for (int g = 0; g < 3; g++) {
        ksize[g] = kstride[g] = rsize[g] = 1;
        rstride[g] = 0;
    }
    /* Walk from the innermost dim out, growing the current group while the
     * kind stays the same; size-1 dims join whichever group is open. Groups
     * are filled into the last slots first, so kept group 2 is innermost. */
    int nk = 0, nr = 0, cur = -1; /* cur: kind of the open group */
    int64_t stride = 1;
    for (int d = xs->ndim - 1; d >= 0; d--) {
        int64_t size = xs->d[d];
        if (size == 1)
            continue;
        int kind = reduced[d];
        if (kind != cur) {
            int *cnt = kind ? &nr : &nk;
            LVK_ASSERT(*cnt < 3); /* kinds alternate over at most LVK_MAX_DIMS = 6 dims */
            (*cnt)++;
            (kind ? rstride : kstride)[3 - *cnt] = (uint32_t)stride;
            cur = kind;
        }
        (kind ? rsize : ksize)[3 - (kind ? nr : nk)] *= (uint32_t)size;
        stride *= size;
    }
}

static lvk_status reduce_prepare(struct lvk_model *m, struct lvk_node *n, bool mean)
{
    const struct lvk_value *x = lvk_in(m, n, 0);
    if (!x || x->dtype != LVK_DTYPE_F32)
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED, "input must be float");
    const struct lvk_shape *xs = &x->shape;

    int64_t axes[LVK_MAX_DIMS];
    int naxes;
    const struct lvk_value *ax = lvk_in(m, n, 1);
    if (ax) {
        LVK_CHECK(lvk_node_need_const(m, n, 1));
        int64_t c = lvk_shape_count(&ax->shape);
        if (ax->dtype != LVK_DTYPE_I64 || c > LVK_MAX_DIMS)
            return lvk_node_fail(m, n, LVK_ERR_FORMAT, "axes must be at most %d int64 values",
                                 LVK_MAX_DIMS);
        naxes = (int)c;
        if (naxes)
            memcpy(axes, ax->host, (size_t)naxes * sizeof *axes);
    } else {
        naxes = lvk_attr_ints(n, "axes", axes, LVK_MAX_DIMS);
        if (naxes < 0)
            return lvk_node_fail(m, n, LVK_ERR_FORMAT, "%s", lvk_last_error());
    }

    bool reduced[LVK_MAX_DIMS] = {false};
    for (int i = 0; i < naxes; i++) {
        int64_t a = axes[i] < 0 ? axes[i] + xs->ndim : axes[i];
        if (a < 0 || a >= xs->ndim || reduced[a])
            return lvk_node_fail(m, n, LVK_ERR_FORMAT, "bad or repeated axis %lld",
                                 (long long)axes[i]);
        reduced[a] = true;
    }
    if (naxes == 0 && !lvk_attr_int(n, "noop_with_empty_axes", 0))
        for (int d = 0; d < xs->ndim; d++)
            reduced[d] = true;

    struct reduce *r = lvk_calloc(1, sizeof *r);
    if (!r)
        return LVK_ERR_HOST_OOM;
    n->priv = r;
    bool keepdims = lvk_attr_int(n, "keepdims", 1) != 0;
    struct lvk_value *y = lvk_out(m, n, 0);
    y->dtype = LVK_DTYPE_F32;
    y->shape.ndim = 0;
    int64_t count = 1;
    for (int d = 0; d < xs->ndim; d++) {
        if (reduced[d])
            count *= xs->d[d];
        if (!reduced[d] || keepdims)
            y->shape.d[y->shape.ndim++] = reduced[d] ? 1 : xs->d[d];
    }
    LVK_CHECK(lvk_value_count32(m, n, x, &r->nin));
    LVK_CHECK(lvk_value_count32(m, n, y, &r->nout));
    reduce_groups(xs, reduced, r);
    r->spec[12] = lvk_spec_f32(mean && count > 0 ? (float)(1.0 / (double)count) : 1.0f);
    return LVK_OK;
}

static lvk_status reduce_mean_prepare(struct lvk_model *m, struct lvk_node *n)
{
    return reduce_prepare(m, n, true);
}
static lvk_status reduce_sum_prepare(struct lvk_model *m, struct lvk_node *n)
{
    return reduce_prepare(m, n, false);
}

static lvk_status reduce_fwd(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd)
{
    const struct reduce *r = n->priv;
    const struct lvk_pipeline *p = lvk_pipeline_get(m->ctx, LVK_SHADER_REDUCE_FWD, r->spec, 13);
    if (!p)
        return LVK_ERR_VULKAN;
    return lvk_dispatch_1d(cmd, p,
                           LVK_BINDS(LVK_B(lvk_out(m, n, 0)->buf), LVK_B(lvk_in(m, n, 0)->buf)),
                           2, NULL, 0, r->nout, "reduce_fwd");
}

static lvk_status reduce_bwd(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd)
{
    const struct reduce *r = n->priv;
    const struct lvk_value *x = lvk_in(m, n, 0);
    if (!x->grad)
        return LVK_OK;
    const struct lvk_pipeline *p = lvk_pipeline_get(m->ctx, LVK_SHADER_REDUCE_BWD, r->spec, 13);
    if (!p)
        return LVK_ERR_VULKAN;
    return lvk_dispatch_1d(cmd, p, LVK_BINDS(LVK_B(x->grad), LVK_B(lvk_out(m, n, 0)->grad)), 2,
                           NULL, 0, r->nin, "reduce_bwd");
}

static const struct lvk_op_def reduce_mean = {
    .op_type = "ReduceMean", .prepare = reduce_mean_prepare, .fwd = reduce_fwd, .bwd = reduce_bwd,
};
static const struct lvk_op_def reduce_sum = {
    .op_type = "ReduceSum", .prepare = reduce_sum_prepare, .fwd = reduce_fwd, .bwd = reduce_bwd,
};

const struct lvk_op_def *const lvk_ops_reduce[] = {&reduce_mean, &reduce_sum, NULL};
