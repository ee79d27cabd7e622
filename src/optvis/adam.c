/* Adam (see adam.h): buffers, the per-step values and the dispatch of
 * shaders/adam.comp. Non-goals: weight decay, AMSGrad, per-parameter
 * learning rates. */
#include <math.h>

#include "nn/ops_common.h"
#include "optvis/adam.h"

/* Units (a vec4, or the last COUNT % 4 floats) per invocation: PER in adam.comp. */
#define ADAM_PER 4

enum { BUF_M, BUF_V, BUF_STEP };

void lvk_adam_opts_default(struct lvk_adam_opts *o)
{
    *o = (struct lvk_adam_opts){.lr = 0.05f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
}

lvk_status lvk_adam_create(struct lvk_ctx *ctx, uint32_t count, const struct lvk_adam_opts *opts,
                           struct lvk_adam **out)
{
    *out = NULL;
    if (count == 0 || count > UINT32_MAX - 8)
        return lvk_fail(LVK_ERR_INVALID_ARG, "adam: %u parameters", count);
    struct lvk_adam *a = lvk_calloc(1, sizeof *a);
    if (!a)
        return LVK_ERR_HOST_OOM;
    a->ctx = ctx;
    a->count = count;
    if (opts)
        a->opts = *opts;
    else
        lvk_adam_opts_default(&a->opts);
    a->lr = a->opts.lr;
    const VkDeviceSize sizes[2] = {(VkDeviceSize)count * 4, (VkDeviceSize)count * 4}, step = 16;
    lvk_status st;
    LVK_TRY(st, lvk_arena_create(ctx, sizes, 2, a->bufs, &a->arena));
    LVK_TRY(st, lvk_arena_create_mapped(ctx, &step, 1, &a->bufs[BUF_STEP], &a->step_arena));
    LVK_TRY(st, lvk_adam_reset(a));
    LVK_TRY(st, lvk_adam_set_step(a, 1));
    *out = a;
    return LVK_OK;
fail:
    lvk_adam_destroy(a);
    return st;
}

void lvk_adam_destroy(struct lvk_adam *a)
{
    if (!a)
        return;
    lvk_arena_destroy(a->ctx, a->bufs, 2, &a->arena);
    lvk_arena_destroy(a->ctx, &a->bufs[BUF_STEP], 1, &a->step_arena);
    free(a);
}

lvk_status lvk_adam_reset(struct lvk_adam *a)
{
    struct lvk_cmd *cmd = NULL;
    lvk_status st;
    LVK_TRY(st, lvk_cmd_create(a->ctx, false, &cmd));
    LVK_TRY(st, lvk_cmd_begin(cmd));
    lvk_cmd_fill(cmd, &a->bufs[BUF_M], 0, VK_WHOLE_SIZE, 0);
    lvk_cmd_fill(cmd, &a->bufs[BUF_V], 0, VK_WHOLE_SIZE, 0);
    LVK_TRY(st, lvk_cmd_end(cmd));
    LVK_TRY(st, lvk_cmd_submit(cmd));
fail:
    lvk_cmd_destroy(cmd);
    return st;
}

lvk_status lvk_adam_record(struct lvk_cmd *cmd, const struct lvk_adam *a,
                           const struct lvk_buf *param, const struct lvk_buf *grad)
{
    const struct lvk_adam_opts *o = &a->opts;
    /* adam.comp: COUNT, BETA1, BETA2, EPS, SIGN, TEXEL. */
    const bool texel = lvk_prefer_texel(cmd->ctx, a->count / 4);
    const uint32_t spec[] = {a->count, lvk_spec_f32(o->beta1), lvk_spec_f32(o->beta2),
                             lvk_spec_f32(o->eps), lvk_spec_f32(o->minimise ? -1.0f : 1.0f),
                             texel};
    const struct lvk_pipeline *p =
        lvk_pipeline_get(cmd->ctx, LVK_SHADER_ADAM, spec, LVK_ARRAY_LEN(spec));
    if (!p)
        return LVK_ERR_VULKAN;
    /* count / 4 vec4 units, plus one for a partial vec4 at the end. */
    uint64_t units = LVK_CEIL_DIV((uint64_t)a->count, 4);
    const VkFormat rgba = VK_FORMAT_R32G32B32A32_SFLOAT;
    return lvk_dispatch_1d(cmd, p,
                           LVK_BINDS(LVK_B(param), LVK_B(&a->bufs[BUF_M]), LVK_B(&a->bufs[BUF_V]),
                                     LVK_B(grad), LVK_B(&a->bufs[BUF_STEP]),
                                     lvk_texel_bind(param, rgba, texel),
                                     lvk_texel_bind(&a->bufs[BUF_M], rgba, texel),
                                     lvk_texel_bind(&a->bufs[BUF_V], rgba, texel),
                                     lvk_texel_bind(grad, rgba, texel)),
                           9, NULL, 0, LVK_CEIL_DIV(units, ADAM_PER), "adam");
}

lvk_status lvk_adam_set_step(struct lvk_adam *a, int t)
{
    if (t < 1)
        return lvk_fail(LVK_ERR_INVALID_ARG, "adam: step %d (steps count from 1)", t);
    /* In double: 1 - 0.999^t loses digits in float for small t. */
    const float step[4] = {a->lr, (float)(1.0 - pow(a->opts.beta1, t)),
                           (float)(1.0 - pow(a->opts.beta2, t)), 0.0f};
    return lvk_buf_upload(a->ctx, &a->bufs[BUF_STEP], 0, step, sizeof step);
}
