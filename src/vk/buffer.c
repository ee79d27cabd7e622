/* Device memory: arenas of buffers planned once per model, and host
 * transfers.
 *
 * An arena creates all of a model's buffers, sums their requirements and
 * backs them with as few allocations as maxMemoryAllocationSize allows.
 * Transfers map the memory directly on unified-memory devices (lavapipe,
 * integrated GPUs) and go through a context-owned staging buffer otherwise. */
#include <string.h>

#include "vk/lvk_vk.h"

static int find_type(const struct lvk_ctx *ctx, uint32_t bits, VkMemoryPropertyFlags want)
{
    for (uint32_t i = 0; i < ctx->mem.memoryTypeCount; i++)
        if ((bits & (1u << i)) && (ctx->mem.memoryTypes[i].propertyFlags & want) == want)
            return (int)i;
    return -1;
}

static const VkBufferUsageFlags k_usage =
    VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
    VK_BUFFER_USAGE_TRANSFER_DST_BIT | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT |
    VK_BUFFER_USAGE_STORAGE_TEXEL_BUFFER_BIT;

static VkDeviceSize align_up(VkDeviceSize x, VkDeviceSize a) { return (x + a - 1) / a * a; }

static lvk_status arena_create(struct lvk_ctx *ctx, const VkDeviceSize *sizes, int n,
                               struct lvk_buf *bufs, struct lvk_arena *arena, bool mapped)
{
    memset(arena, 0, sizeof *arena);
    memset(bufs, 0, (size_t)n * sizeof *bufs);
    if (n == 0)
        return LVK_OK;
    lvk_status st = LVK_OK;
    VkMemoryRequirements *req = lvk_calloc((size_t)n, sizeof *req);
    VkDeviceSize *offset = lvk_calloc((size_t)n, sizeof *offset);
    int *which = lvk_calloc((size_t)n, sizeof *which);
    if (!req || !offset || !which) {
        st = LVK_ERR_HOST_OOM;
        goto fail;
    }
    uint32_t type_bits = ~0u;
    for (int i = 0; i < n; i++) {
        VkDeviceSize sz = align_up(sizes[i] ? sizes[i] : 1, 16);
        if (sz > ctx->limits.maxStorageBufferRange) {
            st = lvk_fail(LVK_ERR_DEVICE_OOM,
                          "a tensor of %llu bytes exceeds the device's largest storage "
                          "buffer (%u bytes); use a smaller batch or image size",
                          (unsigned long long)sz, ctx->limits.maxStorageBufferRange);
            goto fail;
        }
        VkBufferCreateInfo ci = {
            .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
            .size = sz,
            .usage = k_usage,
            .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
        };
        VkResult r = vkCreateBuffer(ctx->device, &ci, NULL, &bufs[i].buf);
        if (r != VK_SUCCESS) {
            st = lvk_vk_fail(r, "vkCreateBuffer", __FILE__, __LINE__);
            goto fail;
        }
        bufs[i].size = sz;
        vkGetBufferMemoryRequirements(ctx->device, bufs[i].buf, &req[i]);
        type_bits &= req[i].memoryTypeBits;
    }

    const VkMemoryPropertyFlags host =
        VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    VkMemoryPropertyFlags want = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
    if (ctx->unified_memory || mapped)
        want |= host;
    int type = find_type(ctx, type_bits, want);
    /* Mapped memory that is not device-local where the device offers no
     * device-local memory the host can map: host memory it reads over the
     * bus (every device has a host-visible, coherent type for buffers). */
    if (type < 0)
        type = find_type(ctx, type_bits, mapped ? host : 0);
    if (type < 0) {
        st = lvk_fail(LVK_ERR_VULKAN, "no memory type fits the model's buffers");
        goto fail;
    }
    bool mappable = (ctx->mem.memoryTypes[type].propertyFlags &
                     (VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT)) ==
                    (VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);

    /* Greedy packing into chunks no larger than the device allows per allocation. */
    VkDeviceSize chunk_max = 1ull << 30;
    VkPhysicalDeviceMaintenance3Properties m3 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &m3};
    vkGetPhysicalDeviceProperties2(ctx->phys, &p2);
    if (m3.maxMemoryAllocationSize && m3.maxMemoryAllocationSize < chunk_max)
        chunk_max = m3.maxMemoryAllocationSize;
    VkDeviceSize *chunk_size = lvk_calloc((size_t)n, sizeof *chunk_size);
    if (!chunk_size) {
        st = LVK_ERR_HOST_OOM;
        goto fail;
    }
    int nchunks = 0;
    VkDeviceSize cur = 0;
    for (int i = 0; i < n; i++) {
        VkDeviceSize off = align_up(cur, req[i].alignment);
        if (nchunks == 0 || off + req[i].size > chunk_max) {
            if (nchunks > 0)
                chunk_size[nchunks - 1] = cur;
            nchunks++;
            off = 0;
        }
        offset[i] = off;
        which[i] = nchunks - 1;
        cur = off + req[i].size;
    }
    chunk_size[nchunks - 1] = cur;

    arena->mem = lvk_calloc((size_t)nchunks, sizeof *arena->mem);
    arena->maps = lvk_calloc((size_t)nchunks, sizeof *arena->maps);
    if (!arena->mem || !arena->maps) {
        free(chunk_size);
        st = LVK_ERR_HOST_OOM;
        goto fail;
    }
    arena->nmem = nchunks;
    for (int c = 0; c < nchunks; c++) {
        VkMemoryAllocateInfo ai = {
            .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
            .allocationSize = chunk_size[c],
            .memoryTypeIndex = (uint32_t)type,
        };
        VkResult r = vkAllocateMemory(ctx->device, &ai, NULL, &arena->mem[c]);
        if (r != VK_SUCCESS) {
            free(chunk_size);
            st = lvk_vk_fail(r, "vkAllocateMemory", __FILE__, __LINE__);
            if (st == LVK_ERR_DEVICE_OOM)
                st = lvk_fail(LVK_ERR_DEVICE_OOM,
                              "out of device memory allocating %.1f MiB on '%s' "
                              "(try a smaller batch or image size)",
                              (double)chunk_size[c] / (1 << 20), ctx->info.name);
            goto fail;
        }
        arena->bytes += chunk_size[c];
        ctx->device_bytes += chunk_size[c];
        ctx->device_peak = LVK_MAX(ctx->device_peak, ctx->device_bytes);
        if (mappable) {
            r = vkMapMemory(ctx->device, arena->mem[c], 0, VK_WHOLE_SIZE, 0, &arena->maps[c]);
            if (r != VK_SUCCESS) {
                free(chunk_size);
                st = lvk_vk_fail(r, "vkMapMemory", __FILE__, __LINE__);
                goto fail;
            }
        }
    }
    free(chunk_size);
    for (int i = 0; i < n; i++) {
        VkResult r = vkBindBufferMemory(ctx->device, bufs[i].buf, arena->mem[which[i]], offset[i]);
        if (r != VK_SUCCESS) {
            st = lvk_vk_fail(r, "vkBindBufferMemory", __FILE__, __LINE__);
            goto fail;
        }
        bufs[i].mem = arena->mem[which[i]];
        bufs[i].offset = offset[i];
        if (arena->maps[which[i]])
            bufs[i].map = (char *)arena->maps[which[i]] + offset[i];
    }
    free(req);
    free(offset);
    free(which);
    return LVK_OK;
fail:
    free(req);
    free(offset);
    free(which);
    lvk_arena_destroy(ctx, bufs, n, arena);
    return st;
}

lvk_status lvk_arena_create(struct lvk_ctx *ctx, const VkDeviceSize *sizes, int n,
                            struct lvk_buf *bufs, struct lvk_arena *arena)
{
    return arena_create(ctx, sizes, n, bufs, arena, false);
}

lvk_status lvk_arena_create_mapped(struct lvk_ctx *ctx, const VkDeviceSize *sizes, int n,
                                   struct lvk_buf *bufs, struct lvk_arena *arena)
{
    return arena_create(ctx, sizes, n, bufs, arena, true);
}

lvk_status lvk_arena_span(struct lvk_ctx *ctx, const struct lvk_buf *first,
                          const struct lvk_buf *last, struct lvk_buf *out)
{
    memset(out, 0, sizeof *out);
    if (first->mem != last->mem || last->offset < first->offset)
        return lvk_fail(LVK_ERR_UNSUPPORTED, "buffers in different allocations cannot be spanned");
    VkBufferCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
        .size = last->offset + last->size - first->offset,
        .usage = k_usage,
        .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
    };
    VkResult r = vkCreateBuffer(ctx->device, &ci, NULL, &out->buf);
    if (r != VK_SUCCESS)
        return lvk_vk_fail(r, "vkCreateBuffer", __FILE__, __LINE__);
    /* The members' offsets met their own alignment; a buffer of another size
     * may want more alignment, or more bytes than the members cover (which
     * could reach past the allocation): then no span. */
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(ctx->device, out->buf, &req);
    if (first->offset % req.alignment || req.size > ci.size) {
        vkDestroyBuffer(ctx->device, out->buf, NULL);
        out->buf = VK_NULL_HANDLE;
        return lvk_fail(LVK_ERR_UNSUPPORTED, "the device cannot place a buffer over these buffers");
    }
    r = vkBindBufferMemory(ctx->device, out->buf, first->mem, first->offset);
    if (r != VK_SUCCESS) {
        vkDestroyBuffer(ctx->device, out->buf, NULL);
        out->buf = VK_NULL_HANDLE;
        return lvk_vk_fail(r, "vkBindBufferMemory", __FILE__, __LINE__);
    }
    out->size = ci.size;
    out->mem = first->mem;
    out->offset = first->offset;
    return LVK_OK;
}

void lvk_arena_destroy(struct lvk_ctx *ctx, struct lvk_buf *bufs, int n, struct lvk_arena *arena)
{
    if (!ctx || !ctx->device)
        return;
    for (int i = 0; bufs && i < n; i++) {
        if (bufs[i].buf)
            vkDestroyBuffer(ctx->device, bufs[i].buf, NULL);
        bufs[i].buf = VK_NULL_HANDLE;
        bufs[i].map = NULL;
    }
    if (arena) {
        ctx->device_bytes -= arena->bytes;
        for (int c = 0; c < arena->nmem; c++)
            if (arena->mem[c])
                vkFreeMemory(ctx->device, arena->mem[c], NULL);
        free(arena->mem);
        free(arena->maps);
        memset(arena, 0, sizeof *arena);
    }
}

/* ---- transfers ------------------------------------------------------------------ */

static lvk_status ensure_staging(struct lvk_ctx *ctx, VkDeviceSize size)
{
    if (ctx->staging_size >= size)
        return LVK_OK;
    if (ctx->staging) {
        vkDestroyBuffer(ctx->device, ctx->staging, NULL);
        vkFreeMemory(ctx->device, ctx->staging_mem, NULL);
        ctx->staging = VK_NULL_HANDLE;
        ctx->staging_mem = VK_NULL_HANDLE;
        ctx->staging_size = 0;
    }
    VkBufferCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
        .size = size,
        .usage = VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
    };
    LVK_VK_CHECK(vkCreateBuffer(ctx->device, &ci, NULL, &ctx->staging));
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(ctx->device, ctx->staging, &req);
    int type = find_type(ctx, req.memoryTypeBits,
                         VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT |
                             VK_MEMORY_PROPERTY_HOST_CACHED_BIT);
    if (type < 0)
        type = find_type(ctx, req.memoryTypeBits,
                         VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
    if (type < 0)
        return lvk_fail(LVK_ERR_VULKAN, "device has no host-visible memory for staging");
    VkMemoryAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
        .allocationSize = req.size,
        .memoryTypeIndex = (uint32_t)type,
    };
    LVK_VK_CHECK(vkAllocateMemory(ctx->device, &ai, NULL, &ctx->staging_mem));
    LVK_VK_CHECK(vkBindBufferMemory(ctx->device, ctx->staging, ctx->staging_mem, 0));
    LVK_VK_CHECK(vkMapMemory(ctx->device, ctx->staging_mem, 0, VK_WHOLE_SIZE, 0, &ctx->staging_map));
    ctx->staging_size = size;
    return LVK_OK;
}

/* One-off copy between the staging buffer and `b`, submitted and waited for. */
static lvk_status staged_copy(struct lvk_ctx *ctx, const struct lvk_buf *b, VkDeviceSize offset,
                              VkDeviceSize size, bool upload)
{
    VkCommandBufferAllocateInfo ai = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
        .commandPool = ctx->cmd_pool,
        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
        .commandBufferCount = 1,
    };
    VkCommandBuffer cb;
    LVK_VK_CHECK(vkAllocateCommandBuffers(ctx->device, &ai, &cb));
    VkCommandBufferBeginInfo bi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
        .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
    };
    vkBeginCommandBuffer(cb, &bi);
    VkBufferCopy region = {
        .srcOffset = upload ? 0 : offset, .dstOffset = upload ? offset : 0, .size = size};
    vkCmdCopyBuffer(cb, upload ? ctx->staging : b->buf, upload ? b->buf : ctx->staging, 1, &region);
    /* An upload is ordered before whatever later submits read or write b:
     * a barrier's second scope reaches commands of later submits, where
     * the fence waited on below does not. A download is made visible to
     * the host. */
    if (upload)
        lvk_device_barrier(cb);
    else
        lvk_host_barrier(cb);
    vkEndCommandBuffer(cb);
    VkSubmitInfo si = {
        .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &cb};
    VkResult r = vkQueueSubmit(ctx->queue, 1, &si, ctx->fence);
    if (r == VK_SUCCESS)
        r = vkWaitForFences(ctx->device, 1, &ctx->fence, VK_TRUE, UINT64_MAX);
    vkResetFences(ctx->device, 1, &ctx->fence);
    vkFreeCommandBuffers(ctx->device, ctx->cmd_pool, 1, &cb);
    LVK_VK_CHECK(r);
    return LVK_OK;
}

lvk_status lvk_buf_upload(struct lvk_ctx *ctx, const struct lvk_buf *b, VkDeviceSize offset,
                          const void *src, VkDeviceSize size)
{
    LVK_ASSERT(offset + size <= b->size);
    if (size == 0)
        return LVK_OK;
    if (b->map) {
        memcpy((char *)b->map + offset, src, size);
        return LVK_OK;
    }
    LVK_CHECK(ensure_staging(ctx, size));
    memcpy(ctx->staging_map, src, size);
    return staged_copy(ctx, b, offset, size, true);
}

lvk_status lvk_buf_download(struct lvk_ctx *ctx, const struct lvk_buf *b, VkDeviceSize offset,
                            void *dst, VkDeviceSize size)
{
    LVK_ASSERT(offset + size <= b->size);
    if (size == 0)
        return LVK_OK;
    if (b->map) {
        memcpy(dst, (const char *)b->map + offset, size);
        return LVK_OK;
    }
    LVK_CHECK(ensure_staging(ctx, size));
    LVK_CHECK(staged_copy(ctx, b, offset, size, false));
    memcpy(dst, ctx->staging_map, size);
    return LVK_OK;
}
