/* Helpers shared by op implementations: 1-D dispatch over a 2-D grid, the
 * choice of texel-buffer kernels, and the gradient pass-through (axpy)
 * every identity-like backward uses. */
#include "nn/ops_common.h"

lvk_status lvk_dispatch_1d(struct lvk_cmd *cmd, const struct lvk_pipeline *p,
                           const struct lvk_bind *binds, uint32_t nbinds,
                           const void *push, uint32_t push_size, uint64_t count,
                           const char *label)
{
    uint64_t groups = LVK_CEIL_DIV(count, (uint64_t)p->local[0]);
    uint64_t maxx = lvk_max_groups(cmd->ctx, 0);
    uint64_t gx = groups, gy = 1;
    if (groups > maxx) {
        gy = LVK_CEIL_DIV(groups, maxx);
        gx = LVK_CEIL_DIV(groups, gy);
    }
    return lvk_cmd_dispatch(cmd, p, binds, nbinds, push, push_size, (uint32_t)gx,
                            (uint32_t)gy, 1, label);
}

bool lvk_prefer_texel(const struct lvk_ctx *ctx, uint64_t count)
{
    if (lvk_env_on("LVK_NO_TEXEL"))
        return false;
    return ctx->is_lavapipe && count <= ctx->limits.maxTexelBufferElements;
}

lvk_status lvk_value_count32(const struct lvk_model *m, const struct lvk_node *n,
                             const struct lvk_value *v, uint32_t *count)
{
    int64_t c = lvk_shape_count(&v->shape);
    if (c < 0 || c > (int64_t)UINT32_MAX)
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED, "tensor '%s' has %lld elements (max %u)",
                             v->name, (long long)c, UINT32_MAX);
    *count = (uint32_t)c;
    return LVK_OK;
}

/* Push constants of shaders/axpy.comp. */
struct axpy_pc {
    uint32_t count;
    float alpha;
};
_Static_assert(sizeof(struct axpy_pc) == 8, "axpy.comp push block");

lvk_status lvk_record_axpy(struct lvk_cmd *cmd, const struct lvk_buf *y, const struct lvk_buf *x,
                           float alpha, uint32_t count, const char *label)
{
    const struct lvk_pipeline *p = lvk_pipeline_get(cmd->ctx, LVK_SHADER_AXPY, NULL, 0);
    if (!p)
        return LVK_ERR_VULKAN;
    struct axpy_pc pc = {.count = count, .alpha = alpha};
    return lvk_dispatch_1d(cmd, p, LVK_BINDS(LVK_B(y), LVK_B(x)), 2, &pc, sizeof pc, count,
                           label ? label : "axpy");
}
