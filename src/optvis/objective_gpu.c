/* Device side of objectives: the buffers of a bound objective and the
 * recording of its values and gradients (see objective.h for the contract).
 *
 * Per term, recorded once and replayed every step:
 *   channel, neuron, class, group, direction, layer
 *       objective_reduce (value, one workgroup per image)
 *       objective_seed   (gradient into the tensor's grad)
 *   diversity
 *       diversity_gram   (Gram matrix per image)
 *       diversity_dots   (their dot products across the batch)
 *       diversity_mix    (values and mixing weights)
 *       diversity_dgram  (gradient w.r.t. each Gram matrix)
 *       diversity_bwd    (gradient into the tensor's grad)
 *   tv, l1, l2, blur
 *       reg_image        (value and gradient into the image's grad, per image)
 * Sizes, image ranges and positions are specialization constants; weights
 * and the sign are push constants, both fixed for a render. Each dispatch
 * ends with lvk_cmd_dispatch's barrier, which orders the accumulations into
 * values[] and into gradients that successive terms share. */
#include "nn/ops_common.h"
#include "optvis/objective.h"

/* Push constants of shaders/objective_reduce.comp, diversity_mix.comp. */
struct weight_pc {
    float weight;
};
_Static_assert(sizeof(struct weight_pc) == 4, "objective_reduce.comp / diversity_mix.comp push block");

/* Push constants of shaders/objective_seed.comp, diversity_bwd.comp. */
struct grad_pc {
    float k; /* sign * weight */
};
_Static_assert(sizeof(struct grad_pc) == 4, "objective_seed.comp / diversity_bwd.comp push block");

/* Push constants of shaders/reg_image.comp. */
struct reg_pc {
    float weight;
    float k;
};
_Static_assert(sizeof(struct reg_pc) == 8, "reg_image.comp push block");

/* ---- buffers ------------------------------------------------------------------------ */

lvk_status lvk_objective_gpu_alloc(struct lvk_objective_gpu *g)
{
    /* values, then per op: coef, or gram + mix + dgram. */
    int cap = 1 + 3 * g->nops;
    VkDeviceSize *sizes = lvk_calloc((size_t)cap, sizeof *sizes);
    g->bufs = lvk_calloc((size_t)cap, sizeof *g->bufs);
    if (!sizes || !g->bufs) {
        free(sizes);
        return LVK_ERR_HOST_OOM;
    }
    const VkDeviceSize B = (VkDeviceSize)g->batch;
    int n = 0;
    sizes[n++] = B * 4;
    for (int i = 0; i < g->nops; i++) {
        const struct lvk_objective_op *op = &g->ops[i];
        if (op->coef) {
            sizes[n++] = (VkDeviceSize)op->c * 4;
        } else if (op->kind == LVK_TERM_DIVERSITY) {
            sizes[n++] = B * op->c * op->c * 4;
            sizes[n++] = 2 * B * B * 4;
            sizes[n++] = B * op->c * op->c * 4;
        }
    }
    lvk_status st = lvk_arena_create(g->ctx, sizes, n, g->bufs, &g->arena);
    free(sizes);
    if (st != LVK_OK)
        return st;
    g->nbufs = n;

    /* Hand out the buffers in the order they were sized. */
    g->values = &g->bufs[0];
    n = 1;
    for (int i = 0; i < g->nops; i++) {
        struct lvk_objective_op *op = &g->ops[i];
        if (op->coef) {
            op->coef_buf = &g->bufs[n++];
            LVK_CHECK(lvk_buf_upload(g->ctx, op->coef_buf, 0, op->coef, (VkDeviceSize)op->c * 4));
        } else if (op->kind == LVK_TERM_DIVERSITY) {
            op->gram = &g->bufs[n++];
            op->mix = &g->bufs[n++];
            op->dgram = &g->bufs[n++];
        }
    }
    return LVK_OK;
}

void lvk_objective_gpu_destroy(struct lvk_objective_gpu *g)
{
    if (!g)
        return;
    if (g->bufs)
        lvk_arena_destroy(g->ctx, g->bufs, g->nbufs, &g->arena);
    for (int i = 0; i < g->nops; i++)
        free(g->ops[i].coef);
    free(g->ops);
    free(g->bufs);
    free(g);
}

/* ---- recording ---------------------------------------------------------------------- */

static lvk_status pipeline(struct lvk_cmd *cmd, enum lvk_shader_id id, const uint32_t *spec,
                           uint32_t nspec, const struct lvk_pipeline **p)
{
    *p = lvk_pipeline_get(cmd->ctx, id, spec, nspec);
    return *p ? LVK_OK : LVK_ERR_VULKAN;
}

/* Lanes of a workgroup that spreads over n items: a power of two covering
 * n, at least 8 and at most 64 (the device minimum for maxComputeWorkGroupSize
 * is 128). */
static uint32_t lanes_for(uint32_t n)
{
    uint32_t l = 8;
    while (l < 64 && l < n)
        l *= 2;
    return l;
}

/* channel, neuron, class, group, direction, layer. */
static lvk_status record_linear(struct lvk_cmd *cmd, const struct lvk_objective_gpu *g,
                                const struct lvk_objective_op *op, float sign)
{
    const struct lvk_value *t = &g->m->values[op->value];
    const struct lvk_pipeline *p;
    uint32_t spec[9] = {op->c, op->s, op->p0, op->npos, op->power, op->b0, op->c0, op->nc,
                        lanes_for(op->npos)};

    struct weight_pc wpc = {.weight = op->weight};
    LVK_CHECK(pipeline(cmd, LVK_SHADER_OBJECTIVE_REDUCE, spec, 9, &p));
    LVK_CHECK(lvk_cmd_dispatch(cmd, p, LVK_BINDS(LVK_B(g->values), LVK_B(t->buf), LVK_B(op->coef_buf)),
                               3, &wpc, sizeof wpc, op->nb, 1, 1, "objective_reduce"));

    struct grad_pc gpc = {.k = sign * op->weight};
    LVK_CHECK(pipeline(cmd, LVK_SHADER_OBJECTIVE_SEED, spec, 7, &p));
    return lvk_cmd_dispatch(cmd, p, LVK_BINDS(LVK_B(t->grad), LVK_B(t->buf), LVK_B(op->coef_buf)), 3,
                            &gpc, sizeof gpc, LVK_CEIL_DIV(op->npos, p->local[0]), op->nc, op->nb,
                            "objective_seed");
}

#define DIVERSITY_R 16 /* rows per invocation: R in diversity_gram.comp, diversity_bwd.comp */

static lvk_status record_diversity(struct lvk_cmd *cmd, const struct lvk_objective_gpu *g,
                                   const struct lvk_objective_op *op, float sign)
{
    const struct lvk_value *t = &g->m->values[op->value];
    const uint32_t B = (uint32_t)g->batch, C = op->c, N = C * C;
    const uint32_t row_blocks = LVK_CEIL_DIV(C, DIVERSITY_R);
    const struct lvk_pipeline *p;

    uint32_t spec_gram[3] = {lanes_for(C), C, op->s};
    LVK_CHECK(pipeline(cmd, LVK_SHADER_DIVERSITY_GRAM, spec_gram, 3, &p));
    LVK_CHECK(lvk_cmd_dispatch(cmd, p, LVK_BINDS(LVK_B(op->gram), LVK_B(t->buf)), 2, NULL, 0,
                               LVK_CEIL_DIV(C, spec_gram[0]), row_blocks, B, "diversity_gram"));

    uint32_t spec_bn[2] = {B, N};
    LVK_CHECK(pipeline(cmd, LVK_SHADER_DIVERSITY_DOTS, spec_bn, 2, &p));
    LVK_CHECK(lvk_cmd_dispatch(cmd, p, LVK_BINDS(LVK_B(op->mix), LVK_B(op->gram)), 2, NULL, 0,
                               B, B, 1, "diversity_dots"));

    struct weight_pc wpc = {.weight = op->weight};
    LVK_CHECK(pipeline(cmd, LVK_SHADER_DIVERSITY_MIX, spec_bn, 1, &p));
    LVK_CHECK(lvk_cmd_dispatch_n(cmd, p, LVK_BINDS(LVK_B(op->mix), LVK_B(g->values)), 2, &wpc,
                                 sizeof wpc, B, 1, 1, "diversity_mix"));

    LVK_CHECK(pipeline(cmd, LVK_SHADER_DIVERSITY_DGRAM, spec_bn, 2, &p));
    LVK_CHECK(lvk_dispatch_1d(cmd, p, LVK_BINDS(LVK_B(op->dgram), LVK_B(op->gram), LVK_B(op->mix)),
                              3, NULL, 0, (uint64_t)B * N, "diversity_dgram"));

    uint32_t spec_bwd[3] = {lanes_for(op->s), C, op->s};
    struct grad_pc gpc = {.k = sign * op->weight};
    LVK_CHECK(pipeline(cmd, LVK_SHADER_DIVERSITY_BWD, spec_bwd, 3, &p));
    return lvk_cmd_dispatch(cmd, p, LVK_BINDS(LVK_B(t->grad), LVK_B(t->buf), LVK_B(op->dgram)), 3,
                            &gpc, sizeof gpc, LVK_CEIL_DIV(op->s, spec_bwd[0]), row_blocks, B,
                            "diversity_bwd");
}

lvk_status lvk_objective_record_seed(struct lvk_cmd *cmd, struct lvk_objective_gpu *g, float sign)
{
    /* Every term below accumulates into values: start each step from 0. */
    lvk_cmd_fill(cmd, g->values, 0, VK_WHOLE_SIZE, 0);
    for (int i = 0; i < g->nops; i++) {
        const struct lvk_objective_op *op = &g->ops[i];
        if (lvk_term_on_image(op->kind))
            continue;
        if (op->kind == LVK_TERM_DIVERSITY)
            LVK_CHECK(record_diversity(cmd, g, op, sign));
        else
            LVK_CHECK(record_linear(cmd, g, op, sign));
    }
    return LVK_OK;
}

lvk_status lvk_objective_record_image(struct lvk_cmd *cmd, struct lvk_objective_gpu *g,
                                      const struct lvk_buf *img, const struct lvk_buf *img_grad,
                                      float sign)
{
    VkDeviceSize need = (VkDeviceSize)g->batch * g->channels * g->height * g->width * 4;
    for (int i = 0; i < g->nops; i++) {
        const struct lvk_objective_op *op = &g->ops[i];
        if (!lvk_term_on_image(op->kind))
            continue;
        if (img->size < need || img_grad->size < need)
            return lvk_fail(LVK_ERR_INVALID_ARG,
                            "objective: image buffers of %llu and %llu bytes, bound for %d x %d x "
                            "%d x %d floats", (unsigned long long)img->size,
                            (unsigned long long)img_grad->size, g->batch, g->channels, g->height,
                            g->width);
        uint32_t kind = op->kind == LVK_TERM_TV ? 0 : op->kind == LVK_TERM_L1 ? 1
                        : op->kind == LVK_TERM_L2 ? 2 : 3;
        uint32_t spec[5] = {kind, (uint32_t)g->channels, (uint32_t)g->height, (uint32_t)g->width,
                            op->b0};
        const struct lvk_pipeline *p;
        LVK_CHECK(pipeline(cmd, LVK_SHADER_REG_IMAGE, spec, 5, &p));
        struct reg_pc pc = {.weight = op->weight, .k = sign * op->weight};
        LVK_CHECK(lvk_cmd_dispatch(cmd, p, LVK_BINDS(LVK_B(g->values), LVK_B(img_grad), LVK_B(img)),
                                   3, &pc, sizeof pc, op->nb, 1, 1, lvk_term_name(op->kind)));
    }
    return LVK_OK;
}

lvk_status lvk_objective_read_values(struct lvk_objective_gpu *g, float *values)
{
    return lvk_buf_download(g->ctx, g->values, 0, values, (VkDeviceSize)g->batch * 4);
}
