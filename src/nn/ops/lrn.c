/* LRN: local response normalisation across channels (AlexNet, GoogLeNet).
 *
 *   y[n,c,...] = x[n,c,...] / (bias + alpha / size * sum of x[n,j,...]^2)^beta
 *
 * with j over [c - floor((size-1)/2), c + ceil((size-1)/2)] within [0, C),
 * as the ONNX spec has it. Forward saves the denominator's base s (an extra
 * buffer, one float per element), which backward needs together with x and y;
 * backward is exact, a gather over the channels whose window holds each
 * element. */
#include <string.h>

#include "nn/graph.h"
#include "nn/ops_common.h"

struct lrn {
    uint32_t spec[8];   /* shaders/lrn_fwd.comp constants */
    uint32_t count;
    int slot;           /* extra buffer: s */
};

static lvk_status lrn_prepare(struct lvk_model *m, struct lvk_node *n)
{
    const struct lvk_value *x = lvk_in(m, n, 0);
    if (!x || x->dtype != LVK_DTYPE_F32 || x->shape.ndim < 2)
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED,
                             "input must be float with shape [N, C, ...]");
    int64_t size = lvk_attr_int(n, "size", 0);
    if (size < 1)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "size must be given and positive");
    float alpha = lvk_attr_float(n, "alpha", 1e-4f);
    float beta = lvk_attr_float(n, "beta", 0.75f);
    float bias = lvk_attr_float(n, "bias", 1.0f);

    struct lrn *l = lvk_calloc(1, sizeof *l);
    if (!l)
        return LVK_ERR_HOST_OOM;
    n->priv = l;
    struct lvk_value *y = lvk_out(m, n, 0);
    y->dtype = LVK_DTYPE_F32;
    y->shape = x->shape;
    LVK_CHECK(lvk_value_count32(m, n, x, &l->count));
    int64_t c = x->shape.d[1], nc = x->shape.d[0] * c;
    int64_t s = nc ? (int64_t)l->count / nc : 0;
    const uint32_t spec[8] = {
        l->count, (uint32_t)c, (uint32_t)s,
        (uint32_t)((size - 1) / 2), (uint32_t)(size / 2), /* floor and ceil of (size-1)/2 */
        lvk_spec_f32(alpha / (float)size), lvk_spec_f32(beta), lvk_spec_f32(bias),
    };
    memcpy(l->spec, spec, sizeof spec);
    l->slot = lvk_node_extra(n, (VkDeviceSize)l->count * sizeof(float), NULL);
    return LVK_OK;
}

static lvk_status lrn_fwd(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd)
{
    const struct lrn *l = n->priv;
    const struct lvk_pipeline *p = lvk_pipeline_get(m->ctx, LVK_SHADER_LRN_FWD, l->spec, 8);
    if (!p)
        return LVK_ERR_VULKAN;
    return lvk_dispatch_1d(cmd, p,
                           LVK_BINDS(LVK_B(lvk_out(m, n, 0)->buf), LVK_B(n->extra[l->slot]),
                                     LVK_B(lvk_in(m, n, 0)->buf)),
                           3, NULL, 0, l->count, "lrn_fwd");
}

static lvk_status lrn_bwd(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd)
{
    const struct lrn *l = n->priv;
    const struct lvk_value *x = lvk_in(m, n, 0), *y = lvk_out(m, n, 0);
    if (!x->grad)
        return LVK_OK;
    /* lrn_bwd.comp has no BIAS (id 7): it reads s instead. */
    const struct lvk_pipeline *p = lvk_pipeline_get(m->ctx, LVK_SHADER_LRN_BWD, l->spec, 7);
    if (!p)
        return LVK_ERR_VULKAN;
    return lvk_dispatch_1d(cmd, p,
                           LVK_BINDS(LVK_B(x->grad), LVK_B(y->grad), LVK_B(x->buf), LVK_B(y->buf),
                                     LVK_B(n->extra[l->slot])),
                           5, NULL, 0, l->count, "lrn_bwd");
}

static const struct lvk_op_def lrn = {
    .op_type = "LRN", .prepare = lrn_prepare, .fwd = lrn_fwd, .bwd = lrn_bwd,
};

const struct lvk_op_def *const lvk_ops_lrn[] = {&lrn, NULL};
