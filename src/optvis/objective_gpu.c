/* Device side of objectives: the buffers of a bound objective and the
 * recording of its values and gradients (see objective.h for the contract).
 *
 * Recorded once and replayed every step:
 *   channel, neuron, class, group, direction, layer, per run of such terms
 *   (lvk_objective_run)
 *       objective_reduce (value, one workgroup per image of each term)
 *       objective_seed   (gradient into the tensor's grad)
 * and per term:
 *   diversity
 *       diversity_gram   (Gram matrix per image)
 *       diversity_dots   (their dot products across the batch)
 *       diversity_mix    (values and mixing weights)
 *       diversity_dgram  (gradient w.r.t. each Gram matrix)
 *       diversity_bwd    (gradient into the tensor's grad)
 *   tv, l1, l2, blur
 *       reg_image        (value and gradient into the image's grad, per image)
 * Sizes and positions are specialization constants; a run's images,
 * channel ranges and weights its table; other weights and the sign push
 * constants, all fixed for a render. Each dispatch
 * ends with lvk_cmd_dispatch's barrier, which orders the accumulations into
 * values[] and into gradients that successive terms share. */
#include <string.h>

#include "nn/ops_common.h"
#include "optvis/objective.h"

/* Push constants of shaders/diversity_mix.comp. */
struct weight_pc {
    float weight;
};
_Static_assert(sizeof(struct weight_pc) == 4, "diversity_mix.comp push block");

/* Push constants of shaders/objective_seed.comp (k = sign; the weights are
 * in the run's table), diversity_bwd.comp (k = sign * weight). */
struct grad_pc {
    float k;
};
_Static_assert(sizeof(struct grad_pc) == 4, "objective_seed.comp / diversity_bwd.comp push block");

/* A row of a run's table (objective_reduce.comp, objective_seed.comp). */
enum { ENTRY_IMAGE, ENTRY_C0, ENTRY_NC, ENTRY_ROW, ENTRY_WEIGHT, ENTRY_WORDS };

/* Push constants of shaders/reg_image.comp. */
struct reg_pc {
    float weight;
    float k;
};
_Static_assert(sizeof(struct reg_pc) == 8, "reg_image.comp push block");

/* ---- buffers ------------------------------------------------------------------------ */

/* Whether op can join the run that ends just before it: the same tensor
 * read alike, on images none of the run's terms has (each image's value
 * and gradient take one entry's sum, with no race between entries). */
static bool joins_run(const struct lvk_objective_gpu *g, const struct lvk_objective_run *r,
                      const struct lvk_objective_op *op, const bool *taken)
{
    const struct lvk_objective_op *a = &g->ops[r->op0];
    if (&g->ops[r->op0 + r->nops] != op || op->value != a->value || op->p0 != a->p0 ||
        op->npos != a->npos || op->power != a->power)
        return false;
    for (uint32_t b = op->b0; b < op->b0 + op->nb; b++)
        if (taken[b])
            return false;
    return true;
}

static lvk_status plan_runs(struct lvk_objective_gpu *g)
{
    g->runs = lvk_calloc((size_t)LVK_MAX(g->nops, 1), sizeof *g->runs);
    bool *taken = lvk_calloc((size_t)g->batch, sizeof *taken);
    if (!g->runs || !taken) {
        free(taken);
        return LVK_ERR_HOST_OOM;
    }
    for (int i = 0; i < g->nops; i++) {
        const struct lvk_objective_op *op = &g->ops[i];
        if (!op->coef)
            continue;
        struct lvk_objective_run *r = g->nruns ? &g->runs[g->nruns - 1] : NULL;
        if (!r || !joins_run(g, r, op, taken)) {
            r = &g->runs[g->nruns++];
            *r = (struct lvk_objective_run){.op0 = i};
            memset(taken, 0, (size_t)g->batch * sizeof *taken);
        }
        for (uint32_t b = op->b0; b < op->b0 + op->nb; b++)
            taken[b] = true;
        r->nops++;
        r->nentries += op->nb;
        r->max_nc = LVK_MAX(r->max_nc, op->nc);
    }
    free(taken);
    return LVK_OK;
}

/* Uploads run r's coefficient rows and table. */
static lvk_status upload_run(const struct lvk_objective_gpu *g, const struct lvk_objective_run *r)
{
    const uint32_t c = g->ops[r->op0].c;
    float *coef = lvk_calloc((size_t)r->nops * c, sizeof *coef);
    uint32_t *table = lvk_calloc((size_t)r->nentries * ENTRY_WORDS, sizeof *table);
    lvk_status st = coef && table ? LVK_OK : LVK_ERR_HOST_OOM;
    for (int k = 0, e = 0; st == LVK_OK && k < r->nops; k++) {
        const struct lvk_objective_op *op = &g->ops[r->op0 + k];
        memcpy(coef + (size_t)k * c, op->coef, c * sizeof *coef);
        for (uint32_t b = op->b0; b < op->b0 + op->nb; b++, e++) {
            uint32_t *row = table + (size_t)e * ENTRY_WORDS;
            row[ENTRY_IMAGE] = b;
            row[ENTRY_C0] = op->c0;
            row[ENTRY_NC] = op->nc;
            row[ENTRY_ROW] = (uint32_t)k;
            memcpy(&row[ENTRY_WEIGHT], &op->weight, sizeof op->weight);
        }
    }
    if (st == LVK_OK)
        st = lvk_buf_upload(g->ctx, r->coef, 0, coef, (VkDeviceSize)r->nops * c * 4);
    if (st == LVK_OK)
        st = lvk_buf_upload(g->ctx, r->table, 0, table,
                            (VkDeviceSize)r->nentries * ENTRY_WORDS * 4);
    free(coef);
    free(table);
    return st;
}

lvk_status lvk_objective_gpu_alloc(struct lvk_objective_gpu *g)
{
    LVK_CHECK(plan_runs(g));
    const VkDeviceSize B = (VkDeviceSize)g->batch, values_size = B * 4;
    LVK_CHECK(lvk_arena_create_mapped(g->ctx, &values_size, 1, &g->values_buf, &g->values_arena));
    /* Per run: coefficients and table; per diversity op: gram, mix and dgram. */
    int cap = 2 * g->nruns + 3 * g->nops;
    VkDeviceSize *sizes = lvk_calloc((size_t)LVK_MAX(cap, 1), sizeof *sizes);
    g->bufs = lvk_calloc((size_t)LVK_MAX(cap, 1), sizeof *g->bufs);
    if (!sizes || !g->bufs) {
        free(sizes);
        return LVK_ERR_HOST_OOM;
    }
    int n = 0;
    for (int i = 0; i < g->nruns; i++) {
        const struct lvk_objective_run *r = &g->runs[i];
        sizes[n++] = (VkDeviceSize)r->nops * g->ops[r->op0].c * 4;
        sizes[n++] = (VkDeviceSize)r->nentries * ENTRY_WORDS * 4;
    }
    for (int i = 0; i < g->nops; i++) {
        const struct lvk_objective_op *op = &g->ops[i];
        if (op->kind == LVK_TERM_DIVERSITY) {
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
    n = 0;
    for (int i = 0; i < g->nruns; i++) {
        struct lvk_objective_run *r = &g->runs[i];
        r->coef = &g->bufs[n++];
        r->table = &g->bufs[n++];
        LVK_CHECK(upload_run(g, r));
    }
    for (int i = 0; i < g->nops; i++) {
        struct lvk_objective_op *op = &g->ops[i];
        if (op->kind == LVK_TERM_DIVERSITY) {
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
    lvk_arena_destroy(g->ctx, &g->values_buf, 1, &g->values_arena);
    for (int i = 0; i < g->nops; i++)
        free(g->ops[i].coef);
    free(g->ops);
    free(g->runs);
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

/* A run of channel, neuron, class, group, direction and layer terms. */
static lvk_status record_run(struct lvk_cmd *cmd, const struct lvk_objective_gpu *g,
                             const struct lvk_objective_run *r, float sign)
{
    const struct lvk_objective_op *op = &g->ops[r->op0];
    const struct lvk_value *t = &g->m->values[op->value];
    const struct lvk_pipeline *p;
    uint32_t spec[6] = {op->c, op->s, op->p0, op->npos, op->power, lanes_for(op->npos)};

    LVK_CHECK(pipeline(cmd, LVK_SHADER_OBJECTIVE_REDUCE, spec, 6, &p));
    LVK_CHECK(lvk_cmd_dispatch(cmd, p,
                               LVK_BINDS(LVK_B(&g->values_buf), LVK_B(t->buf), LVK_B(r->coef),
                                         LVK_B(r->table)),
                               4, NULL, 0, r->nentries, 1, 1, "objective_reduce"));

    struct grad_pc gpc = {.k = sign};
    LVK_CHECK(pipeline(cmd, LVK_SHADER_OBJECTIVE_SEED, spec, 5, &p));
    return lvk_cmd_dispatch(cmd, p,
                            LVK_BINDS(LVK_B(t->grad), LVK_B(t->buf), LVK_B(r->coef),
                                      LVK_B(r->table)),
                            4, &gpc, sizeof gpc, LVK_CEIL_DIV(op->npos, p->local[0]), r->max_nc,
                            r->nentries, "objective_seed");
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
    LVK_CHECK(lvk_cmd_dispatch_n(cmd, p, LVK_BINDS(LVK_B(op->mix), LVK_B(&g->values_buf)), 2, &wpc,
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
    lvk_cmd_fill(cmd, &g->values_buf, 0, VK_WHOLE_SIZE, 0);
    for (int i = 0, run = 0; i < g->nops; i++) {
        const struct lvk_objective_op *op = &g->ops[i];
        if (op->kind == LVK_TERM_DIVERSITY) {
            LVK_CHECK(record_diversity(cmd, g, op, sign));
        } else if (run < g->nruns && g->runs[run].op0 == i) {
            LVK_CHECK(record_run(cmd, g, &g->runs[run], sign));
            i += g->runs[run++].nops - 1;
        }
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
        LVK_CHECK(lvk_cmd_dispatch(cmd, p, LVK_BINDS(LVK_B(&g->values_buf), LVK_B(img_grad), LVK_B(img)),
                                   3, &pc, sizeof pc, op->nb, 1, 1, lvk_term_name(op->kind)));
    }
    return LVK_OK;
}

lvk_status lvk_objective_read_values(struct lvk_objective_gpu *g, float *values)
{
    return lvk_buf_download(g->ctx, &g->values_buf, 0, values, (VkDeviceSize)g->batch * 4);
}
