/* BatchNormalization in inference mode:
 *
 *   y = (x - mean) / sqrt(var + epsilon) * scale + B
 *
 * scale, B, mean and var must be constants; prepare folds them (in double)
 * into one per-channel scale a and shift b, uploaded once as an extra
 * buffer, so the shaders compute y = x * a + b and dx += dy * a.
 *
 * Not supported: training mode (training_mode = 1, or the running-statistics
 * outputs), and opset-7/8 per-activation statistics (spatial = 0). */
#include <math.h>

#include "nn/graph.h"
#include "nn/ops_common.h"

struct batchnorm {
    uint32_t spec[3];   /* shaders/batchnorm_fwd.comp constants */
    int slot;           /* extra buffer: [a, b] per channel */
};

static lvk_status batchnorm_prepare(struct lvk_model *m, struct lvk_node *n)
{
    const struct lvk_value *x = lvk_in(m, n, 0);
    if (!x || x->dtype != LVK_DTYPE_F32 || x->shape.ndim < 2)
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED,
                             "input must be float with shape [N, C, ...]");
    if (lvk_attr_int(n, "training_mode", 0) != 0)
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED, "training mode is not supported");
    if (lvk_attr_int(n, "spatial", 1) == 0)
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED, "spatial = 0 is not supported");
    for (int i = 1; i < n->noutputs; i++)
        if (n->outputs[i] >= 0)
            return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED,
                                 "training outputs (running mean/var) are not supported");

    int64_t c = x->shape.d[1];
    const float *in[4]; /* scale, B, mean, var */
    for (int i = 1; i <= 4; i++) {
        LVK_CHECK(lvk_node_need_const(m, n, i));
        const struct lvk_value *v = lvk_in(m, n, i);
        if (v->dtype != LVK_DTYPE_F32 || lvk_shape_count(&v->shape) != c)
            return lvk_node_fail(m, n, LVK_ERR_FORMAT, "input %d must hold %lld floats", i,
                                 (long long)c);
        in[i - 1] = v->host;
    }

    struct batchnorm *bn = lvk_calloc(1, sizeof *bn);
    if (!bn)
        return LVK_ERR_HOST_OOM;
    n->priv = bn;
    struct lvk_value *y = lvk_out(m, n, 0);
    y->dtype = LVK_DTYPE_F32;
    y->shape = x->shape;
    uint32_t count;
    LVK_CHECK(lvk_value_count32(m, n, x, &count));
    int64_t nc = x->shape.d[0] * c;
    bn->spec[0] = count;
    bn->spec[1] = (uint32_t)c;
    bn->spec[2] = nc ? (uint32_t)(count / nc) : 0;

    float *ab = lvk_calloc((size_t)LVK_MAX(2 * c, 1), sizeof *ab);
    if (!ab)
        return LVK_ERR_HOST_OOM;
    double eps = lvk_attr_float(n, "epsilon", 1e-5f);
    for (int64_t k = 0; k < c; k++) {
        double a = in[0][k] / sqrt((double)in[3][k] + eps);
        ab[k] = (float)a;
        ab[c + k] = (float)(in[1][k] - in[2][k] * a);
    }
    bn->slot = lvk_node_extra(n, (VkDeviceSize)LVK_MAX(2 * c, 1) * sizeof *ab, ab);
    return LVK_OK;
}

static lvk_status batchnorm_fwd(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd)
{
    const struct batchnorm *bn = n->priv;
    const struct lvk_pipeline *p = lvk_pipeline_get(m->ctx, LVK_SHADER_BATCHNORM_FWD, bn->spec, 3);
    if (!p)
        return LVK_ERR_VULKAN;
    return lvk_dispatch_1d(cmd, p,
                           LVK_BINDS(LVK_B(lvk_out(m, n, 0)->buf), LVK_B(lvk_in(m, n, 0)->buf),
                                     LVK_B(n->extra[bn->slot])),
                           3, NULL, 0, bn->spec[0], "batchnorm_fwd");
}

static lvk_status batchnorm_bwd(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd)
{
    const struct batchnorm *bn = n->priv;
    const struct lvk_value *x = lvk_in(m, n, 0);
    if (!x->grad)
        return LVK_OK;
    const struct lvk_pipeline *p = lvk_pipeline_get(m->ctx, LVK_SHADER_BATCHNORM_BWD, bn->spec, 3);
    if (!p)
        return LVK_ERR_VULKAN;
    return lvk_dispatch_1d(cmd, p,
                           LVK_BINDS(LVK_B(x->grad), LVK_B(lvk_out(m, n, 0)->grad),
                                     LVK_B(n->extra[bn->slot])),
                           3, NULL, 0, bn->spec[0], "batchnorm_bwd");
}

static const struct lvk_op_def batchnorm = {
    .op_type = "BatchNormalization", .prepare = batchnorm_prepare,
    .fwd = batchnorm_fwd, .bwd = batchnorm_bwd,
};

const struct lvk_op_def *const lvk_ops_batchnorm[] = {&batchnorm, NULL};
