/* Command recording: dispatches into a command buffer that is recorded once
 * and submitted many times (one optimisation step = one submit).
 *
 * Each dispatch gets its own descriptor set, allocated from pools owned by
 * the recording, so sets stay valid for every replay. After every dispatch,
 * and after every run of fills and copies, comes one global memory barrier:
 * lucid-vk's passes are chains of dependent kernels, and on lavapipe as on
 * GPUs a barrier between compute dispatches costs next to nothing compared
 * with tracking buffers. */
#include <string.h>

#include "vk/lvk_vk.h"

#define SETS_PER_POOL 256

static lvk_status add_pool(struct lvk_cmd *cmd)
{
    struct lvk_ctx *ctx = cmd->ctx;
    VkDescriptorPoolSize sizes[] = {
        {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, SETS_PER_POOL * LVK_MAX_BINDINGS},
        /* Up to 4 texel buffers a set (adam.comp); a pool runs out when
         * all its sets use them, rather than the sets. */
        {VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, SETS_PER_POOL * 4},
        {VK_DESCRIPTOR_TYPE_STORAGE_TEXEL_BUFFER, SETS_PER_POOL * 2},
    };
    VkDescriptorPoolCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
        .maxSets = SETS_PER_POOL,
        .poolSizeCount = LVK_ARRAY_LEN(sizes),
        .pPoolSizes = sizes,
    };
    VkDescriptorPool *np = realloc(cmd->pools, (size_t)(cmd->npools + 1) * sizeof *np);
    if (!np)
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    cmd->pools = np;
    LVK_VK_CHECK(vkCreateDescriptorPool(ctx->device, &ci, NULL, &cmd->pools[cmd->npools]));
    cmd->npools++;
    cmd->sets_left = SETS_PER_POOL;
    return LVK_OK;
}

lvk_status lvk_cmd_create(struct lvk_ctx *ctx, bool timestamps, struct lvk_cmd **out)
{
    *out = NULL;
    struct lvk_cmd *cmd = lvk_calloc(1, sizeof *cmd);
    if (!cmd)
        return LVK_ERR_HOST_OOM;
    cmd->ctx = ctx;
    lvk_status st;
    VkCommandBufferAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
        .commandPool = ctx->cmd_pool,
        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
        .commandBufferCount = 1,
    };
    VkResult r = vkAllocateCommandBuffers(ctx->device, &ai, &cmd->cb);
    if (r != VK_SUCCESS) {
        st = lvk_vk_fail(r, "vkAllocateCommandBuffers", __FILE__, __LINE__);
        goto fail;
    }
    if (timestamps && ctx->timestamps) {
        cmd->max_queries = 4096;
        VkQueryPoolCreateInfo qi = {
            .sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
            .queryType = VK_QUERY_TYPE_TIMESTAMP,
            .queryCount = cmd->max_queries,
        };
        r = vkCreateQueryPool(ctx->device, &qi, NULL, &cmd->query_pool);
        cmd->labels = lvk_calloc(cmd->max_queries, sizeof *cmd->labels);
        cmd->scopes = lvk_calloc(cmd->max_queries, sizeof *cmd->scopes);
        if (r != VK_SUCCESS || !cmd->labels || !cmd->scopes) {
            st = r != VK_SUCCESS ? lvk_vk_fail(r, "vkCreateQueryPool", __FILE__, __LINE__)
                                 : LVK_ERR_HOST_OOM;
            goto fail;
        }
    }
    *out = cmd;
    return LVK_OK;
fail:
    lvk_cmd_destroy(cmd);
    return st;
}

static void release_views(struct lvk_cmd *cmd)
{
    for (int i = 0; i < cmd->nviews; i++)
        vkDestroyBufferView(cmd->ctx->device, cmd->views[i], NULL);
    cmd->nviews = 0;
}

void lvk_cmd_destroy(struct lvk_cmd *cmd)
{
    if (!cmd)
        return;
    struct lvk_ctx *ctx = cmd->ctx;
    release_views(cmd);
    free(cmd->views);
    for (int i = 0; i < cmd->npools; i++)
        vkDestroyDescriptorPool(ctx->device, cmd->pools[i], NULL);
    free(cmd->pools);
    if (cmd->query_pool)
        vkDestroyQueryPool(ctx->device, cmd->query_pool, NULL);
    free(cmd->labels);
    free(cmd->scopes);
    if (cmd->cb)
        vkFreeCommandBuffers(ctx->device, ctx->cmd_pool, 1, &cmd->cb);
    free(cmd);
}

lvk_status lvk_cmd_begin(struct lvk_cmd *cmd)
{
    struct lvk_ctx *ctx = cmd->ctx;
    LVK_VK_CHECK(vkResetCommandBuffer(cmd->cb, 0));
    release_views(cmd);
    for (int i = 0; i < cmd->npools; i++)
        LVK_VK_CHECK(vkResetDescriptorPool(ctx->device, cmd->pools[i], 0));
    /* Keep one pool for reuse, release the rest. */
    for (int i = 1; i < cmd->npools; i++)
        vkDestroyDescriptorPool(ctx->device, cmd->pools[i], NULL);
    cmd->npools = cmd->npools > 0 ? 1 : 0;
    cmd->sets_left = cmd->npools ? SETS_PER_POOL : 0;
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    LVK_VK_CHECK(vkBeginCommandBuffer(cmd->cb, &bi));
    cmd->recording = true;
    cmd->fills_pending = cmd->copies_pending = false;
    cmd->nqueries = 0;
    if (cmd->query_pool) {
        vkCmdResetQueryPool(cmd->cb, cmd->query_pool, 0, cmd->max_queries);
        vkCmdWriteTimestamp(cmd->cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, cmd->query_pool, 0);
        cmd->nqueries = 1;
    }
    return LVK_OK;
}

void lvk_host_barrier(VkCommandBuffer cb)
{
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_HOST_READ_BIT,
    };
    vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
}

lvk_status lvk_cmd_end(struct lvk_cmd *cmd)
{
    LVK_ASSERT(cmd->recording);
    lvk_cmd_flush(cmd);
    lvk_host_barrier(cmd->cb);
    cmd->recording = false;
    LVK_VK_CHECK(vkEndCommandBuffer(cmd->cb));
    return LVK_OK;
}

lvk_status lvk_cmd_submit(struct lvk_cmd *cmd)
{
    struct lvk_ctx *ctx = cmd->ctx;
    LVK_ASSERT(!cmd->recording);
    VkSubmitInfo si = {
        .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
        .commandBufferCount = 1,
        .pCommandBuffers = &cmd->cb,
    };
    LVK_VK_CHECK(vkQueueSubmit(ctx->queue, 1, &si, ctx->fence));
    VkResult r = vkWaitForFences(ctx->device, 1, &ctx->fence, VK_TRUE, UINT64_MAX);
    vkResetFences(ctx->device, 1, &ctx->fence);
    LVK_VK_CHECK(r);
    return LVK_OK;
}

void lvk_device_barrier(VkCommandBuffer cb)
{
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                         VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
    };
    VkPipelineStageFlags stages = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    vkCmdPipelineBarrier(cb, stages, stages, 0, 1, &mb, 0, NULL, 0, NULL);
}

static void timestamp(struct lvk_cmd *cmd, const char *label)
{
    if (!cmd->query_pool || cmd->nqueries >= cmd->max_queries)
        return;
    cmd->labels[cmd->nqueries] = label;
    cmd->scopes[cmd->nqueries] = cmd->scope;
    vkCmdWriteTimestamp(cmd->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, cmd->query_pool, cmd->nqueries);
    cmd->nqueries++;
}

static lvk_status texel_view(struct lvk_cmd *cmd, const struct lvk_bind *b, VkBufferView *out)
{
    struct lvk_ctx *ctx = cmd->ctx;
    VkFormat format = b->format ? b->format : VK_FORMAT_R32G32B32A32_SFLOAT;
    VkDeviceSize range = b->range ? b->range : b->buf->size - b->offset;
    VkDeviceSize texel = format == VK_FORMAT_R32G32B32A32_SFLOAT ? 16 : 4;
    range -= range % texel;
    if (range / texel > ctx->limits.maxTexelBufferElements)
        return lvk_fail(LVK_ERR_UNSUPPORTED, "a texel view of %llu texels exceeds the device's %u",
                        (unsigned long long)(range / texel), ctx->limits.maxTexelBufferElements);
    if (cmd->nviews == cmd->cap_views) {
        int cap = cmd->cap_views ? 2 * cmd->cap_views : 64;
        VkBufferView *nv = realloc(cmd->views, (size_t)cap * sizeof *nv);
        if (!nv)
            return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
        cmd->views = nv;
        cmd->cap_views = cap;
    }
    VkBufferViewCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO,
        .buffer = b->buf->buf,
        .format = format,
        .offset = b->offset,
        .range = range,
    };
    LVK_VK_CHECK(vkCreateBufferView(ctx->device, &ci, NULL, out));
    cmd->views[cmd->nviews++] = *out;
    return LVK_OK;
}

lvk_status lvk_cmd_dispatch(struct lvk_cmd *cmd, const struct lvk_pipeline *p,
                            const struct lvk_bind *binds, uint32_t nbinds,
                            const void *push, uint32_t push_size,
                            uint32_t gx, uint32_t gy, uint32_t gz, const char *label)
{
    struct lvk_ctx *ctx = cmd->ctx;
    LVK_ASSERT(cmd->recording);
    LVK_ASSERT(p != NULL);
    lvk_cmd_flush(cmd);
    if (nbinds != p->nbindings)
        return lvk_fail(LVK_ERR_INVALID_ARG, "%s: shader %s expects %u buffers, got %u",
                        label ? label : "dispatch", lvk_shaders[p->shader].name, p->nbindings, nbinds);
    LVK_ASSERT(push_size <= LVK_PUSH_MAX && push_size % 4 == 0);
    for (int d = 0; d < 3; d++) {
        uint32_t g = d == 0 ? gx : d == 1 ? gy : gz;
        if (g > ctx->limits.maxComputeWorkGroupCount[d])
            return lvk_fail(LVK_ERR_UNSUPPORTED, "%s: %u workgroups in dimension %d exceed the device's %u",
                            label ? label : "dispatch", g, d, ctx->limits.maxComputeWorkGroupCount[d]);
    }
    /* The first pass of lvk_cmd_record only learns which pipelines it needs. */
    if (gx == 0 || gy == 0 || gz == 0 || ctx->deferring)
        return LVK_OK;
    LVK_ASSERT(p->pipe != VK_NULL_HANDLE);

    if (cmd->sets_left == 0)
        LVK_CHECK(add_pool(cmd));
    VkDescriptorSetAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
        .descriptorPool = cmd->pools[cmd->npools - 1],
        .descriptorSetCount = 1,
        .pSetLayouts = &p->dsl,
    };
    VkDescriptorSet set;
    LVK_VK_CHECK(vkAllocateDescriptorSets(ctx->device, &ai, &set));
    cmd->sets_left--;

    VkDescriptorBufferInfo infos[LVK_MAX_BINDINGS];
    VkBufferView views[LVK_MAX_BINDINGS];
    VkWriteDescriptorSet writes[LVK_MAX_BINDINGS];
    for (uint32_t i = 0; i < nbinds; i++) {
        LVK_ASSERT(binds[i].buf && binds[i].buf->buf);
        writes[i] = (VkWriteDescriptorSet){
            .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
            .dstSet = set,
            .dstBinding = i,
            .descriptorCount = 1,
            .descriptorType = p->types[i],
        };
        if (p->types[i] == VK_DESCRIPTOR_TYPE_STORAGE_BUFFER) {
            infos[i] = (VkDescriptorBufferInfo){
                .buffer = binds[i].buf->buf,
                .offset = binds[i].offset,
                .range = binds[i].range ? binds[i].range : VK_WHOLE_SIZE,
            };
            writes[i].pBufferInfo = &infos[i];
        } else {
            LVK_CHECK(texel_view(cmd, &binds[i], &views[i]));
            writes[i].pTexelBufferView = &views[i];
        }
    }
    vkUpdateDescriptorSets(ctx->device, nbinds, writes, 0, NULL);
    vkCmdBindPipeline(cmd->cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->pipe);
    vkCmdBindDescriptorSets(cmd->cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->layout, 0, 1, &set, 0, NULL);
    if (push_size)
        vkCmdPushConstants(cmd->cb, p->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, push_size, push);
    vkCmdDispatch(cmd->cb, gx, gy, gz);
    lvk_device_barrier(cmd->cb);
    timestamp(cmd, label ? label : lvk_shaders[p->shader].name);
    return LVK_OK;
}

lvk_status lvk_cmd_record(struct lvk_cmd *cmd, lvk_status (*record)(struct lvk_cmd *cmd, void *user),
                          void *user)
{
    struct lvk_ctx *ctx = cmd->ctx;
    LVK_ASSERT(!ctx->deferring);
    ctx->deferring = true;
    lvk_status st = lvk_cmd_begin(cmd);
    if (st == LVK_OK) {
        st = record(cmd, user);
        lvk_status end = lvk_cmd_end(cmd);
        st = st != LVK_OK ? st : end;
    }
    ctx->deferring = false;
    /* Built even after a failure: a pipeline left unbuilt is built on its
     * next use instead (lvk_pipeline_get). */
    lvk_status built = lvk_pipelines_build_deferred(ctx);
    LVK_CHECK(st);
    LVK_CHECK(built);
    LVK_CHECK(lvk_cmd_begin(cmd));
    st = record(cmd, user);
    lvk_status end = lvk_cmd_end(cmd);
    return st != LVK_OK ? st : end;
}

lvk_status lvk_cmd_dispatch_n(struct lvk_cmd *cmd, const struct lvk_pipeline *p,
                              const struct lvk_bind *binds, uint32_t nbinds,
                              const void *push, uint32_t push_size,
                              uint32_t nx, uint32_t ny, uint32_t nz, const char *label)
{
    return lvk_cmd_dispatch(cmd, p, binds, nbinds, push, push_size,
                            LVK_CEIL_DIV(nx, p->local[0]), LVK_CEIL_DIV(ny, p->local[1]),
                            LVK_CEIL_DIV(nz, p->local[2]), label);
}

void lvk_cmd_barrier(struct lvk_cmd *cmd, const char *label)
{
    LVK_ASSERT(cmd->recording);
    lvk_device_barrier(cmd->cb);
    timestamp(cmd, label);
    cmd->fills_pending = cmd->copies_pending = false;
}

/* The barrier after pending fills or copies is timestamped in the scope
 * they were recorded in, not the next dispatch's. */
void lvk_cmd_flush(struct lvk_cmd *cmd)
{
    if (!cmd->fills_pending && !cmd->copies_pending)
        return;
    const char *scope = cmd->scope;
    cmd->scope = cmd->pending_scope;
    lvk_cmd_barrier(cmd, "fill");
    cmd->scope = scope;
}

void lvk_cmd_fill(struct lvk_cmd *cmd, const struct lvk_buf *b, VkDeviceSize offset,
                  VkDeviceSize size, uint32_t value)
{
    LVK_ASSERT(cmd->recording);
    if (cmd->copies_pending)
        lvk_cmd_flush(cmd);
    if (!cmd->fills_pending)
        cmd->pending_scope = cmd->scope;
    vkCmdFillBuffer(cmd->cb, b->buf, offset, size, value);
    cmd->fills_pending = true;
}

void lvk_cmd_copy_regions(struct lvk_cmd *cmd, const struct lvk_buf *dst, const struct lvk_buf *src,
                          const VkBufferCopy *regions, uint32_t n)
{
    LVK_ASSERT(cmd->recording);
    if (n == 0)
        return;
    if (cmd->fills_pending)
        lvk_cmd_flush(cmd);
    if (!cmd->copies_pending)
        cmd->pending_scope = cmd->scope;
    vkCmdCopyBuffer(cmd->cb, src->buf, dst->buf, n, regions);
    cmd->copies_pending = true;
}

lvk_status lvk_cmd_timings(struct lvk_cmd *cmd, double *ms, uint32_t *count)
{
    struct lvk_ctx *ctx = cmd->ctx;
    *count = 0;
    if (!cmd->query_pool || cmd->nqueries < 2)
        return LVK_OK;
    uint64_t *ts = lvk_calloc(cmd->nqueries, sizeof *ts);
    if (!ts)
        return LVK_ERR_HOST_OOM;
    VkResult r = vkGetQueryPoolResults(ctx->device, cmd->query_pool, 0, cmd->nqueries,
                                       cmd->nqueries * sizeof *ts, ts, sizeof *ts,
                                       VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT);
    if (r != VK_SUCCESS) {
        free(ts);
        LVK_VK_CHECK(r);
    }
    double period_ms = ctx->limits.timestampPeriod * 1e-6;
    for (uint32_t i = 1; i < cmd->nqueries; i++)
        ms[i - 1] = (double)(ts[i] - ts[i - 1]) * period_ms;
    *count = cmd->nqueries - 1;
    free(ts);
    return LVK_OK;
}
