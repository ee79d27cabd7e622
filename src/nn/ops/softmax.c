/* Softmax and LogSoftmax, forward and exact backward.
 *
 * The axis means different things across opsets: before 13 the input is
 * flattened to 2-D at `axis` (default 1) and normalised over everything
 * after it; from 13 it is normalised along that one axis (default -1). Both
 * become a view [OUTER, L, INNER] of the input, normalised along L, which
 * one pair of shaders handles (shaders/softmax_{fwd,bwd}.comp), one
 * invocation per row. Backward needs only the output. */
#include "nn/graph.h"
#include "nn/ops_common.h"

struct softmax {
    uint32_t spec[4];   /* shaders/softmax_fwd.comp constants */
};

static lvk_status softmax_prepare_kind(struct lvk_model *m, struct lvk_node *n, bool log)
{
    const struct lvk_value *x = lvk_in(m, n, 0);
    if (!x || x->dtype != LVK_DTYPE_F32 || x->shape.ndim < 1)
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED, "input must be a float tensor");
    const struct lvk_shape *xs = &x->shape;
    bool flatten = m->opset < 13;
    int64_t axis = lvk_attr_int(n, "axis", flatten ? 1 : -1);
    if (axis < 0)
        axis += xs->ndim;
    if (axis < 0 || axis >= xs->ndim)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "axis %lld out of range for %d dims",
                             (long long)lvk_attr_int(n, "axis", 0), xs->ndim);

    int64_t outer = 1, len = 1, inner = 1;
    for (int d = 0; d < xs->ndim; d++) {
        if (d < axis)
            outer *= xs->d[d];
        else if (d == axis || flatten)
            len *= xs->d[d];
        else
            inner *= xs->d[d];
    }
    struct lvk_value *y = lvk_out(m, n, 0);
    y->dtype = LVK_DTYPE_F32;
    y->shape = *xs;
    uint32_t count;
    LVK_CHECK(lvk_value_count32(m, n, x, &count));

    struct softmax *s = lvk_calloc(1, sizeof *s);
    if (!s)
        return LVK_ERR_HOST_OOM;
    n->priv = s;
    s->spec[0] = (uint32_t)(outer * inner);
    s->spec[1] = (uint32_t)len;
    s->spec[2] = (uint32_t)inner;
    s->spec[3] = log;
    return LVK_OK;
}

static lvk_status softmax_prepare(struct lvk_model *m, struct lvk_node *n)
{
    return softmax_prepare_kind(m, n, false);
}
static lvk_status log_softmax_prepare(struct lvk_model *m, struct lvk_node *n)
{
    return softmax_prepare_kind(m, n, true);
}

static lvk_status softmax_fwd(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd)
{
    const struct softmax *s = n->priv;
    const struct lvk_pipeline *p = lvk_pipeline_get(m->ctx, LVK_SHADER_SOFTMAX_FWD, s->spec, 4);
    if (!p)
        return LVK_ERR_VULKAN;
    return lvk_dispatch_1d(cmd, p,
                           LVK_BINDS(LVK_B(lvk_out(m, n, 0)->buf), LVK_B(lvk_in(m, n, 0)->buf)),
                           2, NULL, 0, s->spec[0], "softmax_fwd");
}

static lvk_status softmax_bwd(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd)
{
    const struct softmax *s = n->priv;
    const struct lvk_value *x = lvk_in(m, n, 0), *y = lvk_out(m, n, 0);
    if (!x->grad)
        return LVK_OK;
    const struct lvk_pipeline *p = lvk_pipeline_get(m->ctx, LVK_SHADER_SOFTMAX_BWD, s->spec, 4);
    if (!p)
        return LVK_ERR_VULKAN;
    return lvk_dispatch_1d(cmd, p, LVK_BINDS(LVK_B(x->grad), LVK_B(y->grad), LVK_B(y->buf)), 3,
                           NULL, 0, s->spec[0], "softmax_bwd");
}

static const struct lvk_op_def softmax = {
    .op_type = "Softmax", .prepare = softmax_prepare, .fwd = softmax_fwd, .bwd = softmax_bwd,
};
static const struct lvk_op_def log_softmax = {
    .op_type = "LogSoftmax", .prepare = log_softmax_prepare, .fwd = softmax_fwd, .bwd = softmax_bwd,
};

const struct lvk_op_def *const lvk_ops_softmax[] = {&softmax, &log_softmax, NULL};
