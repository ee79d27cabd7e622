/* Vulkan layer of lucid-vk: context (instance, device, queue), buffers and
 * arenas, compute pipelines built from the embedded SPIR-V, and command
 * recording. This is the only part of lucid-vk that calls vk* functions
 * directly; ops and the render loop go through it.
 *
 * Ownership: struct lvk_ctx owns the device and everything cached on it
 * (pipelines, staging memory). Buffers and recordings are owned by whoever
 * created them and must be destroyed before the context. */
#ifndef LVK_VK_H
#define LVK_VK_H

#include <stdbool.h>
#include <stdint.h>

#include <volk.h>

#include "lucidvk/lucidvk.h"
#include "lvk_shaders.h"
#include "lvk_util.h"

/* Logs the VkResult, the failing call and where, then returns an
 * lvk_status (LVK_ERR_DEVICE_OOM for out-of-memory results). */
#define LVK_VK_CHECK(expr)                                                     \
    do {                                                                       \
        VkResult lvk_vk_r_ = (expr);                                           \
        if (lvk_vk_r_ != VK_SUCCESS)                                           \
            return lvk_vk_fail(lvk_vk_r_, #expr, __FILE__, __LINE__);          \
    } while (0)

lvk_status lvk_vk_fail(VkResult r, const char *call, const char *file, int line);
const char *lvk_vk_result_str(VkResult r);

/* ---- context ----------------------------------------------------------------- */

struct lvk_pipeline;

struct lvk_ctx {
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    VkPhysicalDevice phys;
    VkDevice device;
    VkQueue queue;
    uint32_t queue_family;
    VkCommandPool cmd_pool;
    VkPipelineCache pipeline_cache;
    VkFence fence;

    struct lvk_device_info info;
    VkPhysicalDeviceMemoryProperties mem;
    VkPhysicalDeviceLimits limits;
    bool is_lavapipe;       /* VK_DRIVER_ID_MESA_LLVMPIPE: select CPU-shaped kernels */
    bool texel_conv;        /* conv2d_texel.comp runs, and computes right, here (context.c) */
    bool unified_memory;    /* a device-local, host-visible, coherent type exists */
    bool timestamps;        /* queue supports timestamps */

    /* Pipelines built so far, keyed by (shader, specialization constants). */
    struct lvk_pipeline **pipelines;
    int npipelines, cap_pipelines;
    /* While set (lvk_cmd_record's first pass), new pipelines get their
     * layouts but not their VkPipeline (pipe stays VK_NULL_HANDLE until
     * lvk_pipelines_build_deferred), and dispatches record nothing. */
    bool deferring;

    /* Device memory held in arenas now, and the most since device_peak was
     * last set (lvk_render sets it to device_bytes when it starts). */
    VkDeviceSize device_bytes, device_peak;

    /* Staging buffer for uploads/downloads to memory the host cannot map. */
    VkBuffer staging;
    VkDeviceMemory staging_mem;
    void *staging_map;
    VkDeviceSize staging_size;

    /* Validation messages seen (errors and warnings); tests fail on any. */
    int validation_enabled;
    int validation_messages;
    /* lucid-vk's cache folder ("" where there is none) and, in it, this
     * device's pipeline cache. */
    char cache_dir[400];
    char pipeline_cache_path[512];
};

/* ---- buffers ----------------------------------------------------------------- */

/* A range of device memory bound to its own VkBuffer. `map` is non-NULL when
 * the host can write it directly (unified memory). */
struct lvk_buf {
    VkBuffer buf;
    VkDeviceSize size;
    void *map;
    VkDeviceMemory mem;     /* where it lives (lvk_arena_span) */
    VkDeviceSize offset;
};

/* One device allocation shared by many buffers: planned once per model and
 * resolution, so ops never allocate. */
struct lvk_arena {
    VkDeviceMemory *mem;  /* one or more allocations (split at maxMemoryAllocationSize) */
    int nmem;
    VkDeviceSize bytes;
    void **maps;
};

/* Creates `n` buffers of the given sizes backed by as few allocations as the
 * device permits. bufs[i] receives each. Sizes are rounded up to whole vec4s
 * (16 bytes), so elementwise shaders may read and write a tensor as vec4s
 * and let the last one run into the padding. */
lvk_status lvk_arena_create(struct lvk_ctx *ctx, const VkDeviceSize *sizes, int n,
                            struct lvk_buf *bufs, struct lvk_arena *arena);
/* The same in memory the host maps (bufs[i].map always set), device-local where
 * the device offers such: for the few bytes written or read around every
 * step (transform draws, Adam's step, the objective's values), which
 * lvk_buf_upload and lvk_buf_download then copy in place instead of
 * submitting a staged copy and waiting for it. */
lvk_status lvk_arena_create_mapped(struct lvk_ctx *ctx, const VkDeviceSize *sizes, int n,
                                   struct lvk_buf *bufs, struct lvk_arena *arena);
/* One more buffer over the memory of first..last, buffers of one
 * lvk_arena_create that follow each other in its list, so that one command
 * covers them all (zeroing many gradients with one fill instead of one
 * fill and barrier each). The caller destroys it (vkDestroyBuffer) before
 * the arena. LVK_ERR_UNSUPPORTED when they lie in different allocations. */
lvk_status lvk_arena_span(struct lvk_ctx *ctx, const struct lvk_buf *first,
                          const struct lvk_buf *last, struct lvk_buf *out);
/* Destroys the n buffers and the memory. NULL-safe, safe on a failed create. */
void lvk_arena_destroy(struct lvk_ctx *ctx, struct lvk_buf *bufs, int n,
                       struct lvk_arena *arena);

/* Records a barrier that makes the compute and transfer writes before it
 * visible to the host, which reads mapped memory once a submit's fence has
 * signalled (the fence alone does not). lvk_cmd_end records one. */
void lvk_host_barrier(VkCommandBuffer cb);

/* Records a barrier that orders every compute-shader and transfer write
 * before it before every later compute-shader and transfer access, later
 * submits' included: between dispatches, and after a staged upload. */
void lvk_device_barrier(VkCommandBuffer cb);

/* Host <-> device copies; each waits for completion. */
lvk_status lvk_buf_upload(struct lvk_ctx *ctx, const struct lvk_buf *b,
                          VkDeviceSize offset, const void *src, VkDeviceSize size);
lvk_status lvk_buf_download(struct lvk_ctx *ctx, const struct lvk_buf *b,
                            VkDeviceSize offset, void *dst, VkDeviceSize size);

/* ---- pipelines ----------------------------------------------------------------- */

#define LVK_MAX_BINDINGS 12
#define LVK_MAX_SPEC 32
#define LVK_PUSH_MAX 128 /* bytes: the Vulkan minimum maxPushConstantsSize */

/* A compute pipeline for one shader and one set of specialization constants.
 * Binding count and workgroup size are read from the SPIR-V. */
struct lvk_pipeline {
    enum lvk_shader_id shader;
    uint32_t spec[LVK_MAX_SPEC];
    uint32_t nspec;
    uint32_t nbindings;
    VkDescriptorType types[LVK_MAX_BINDINGS];
    uint32_t local[3];     /* workgroup size (after specialization of id 0..2
                              when the shader uses local_size_{x,y,z}_id) */
    VkDescriptorSetLayout dsl;
    VkPipelineLayout layout;
    VkPipeline pipe;
};

/* Builds the VkPipelines of the pipelines requested while ctx->deferring,
 * on as many threads as there are cores: lavapipe JIT-compiles each
 * pipeline on the calling thread, in every process, so this is most of a
 * render's start-up. */
lvk_status lvk_pipelines_build_deferred(struct lvk_ctx *ctx);

/* Returns the cached pipeline for (shader, spec), building it on first use.
 * spec[i] is the value of constant_id i, as raw 32-bit words (use
 * lvk_spec_f32() for floats). Returns NULL with lvk_last_error() set on failure. */
const struct lvk_pipeline *lvk_pipeline_get(struct lvk_ctx *ctx, enum lvk_shader_id id,
                                            const uint32_t *spec, uint32_t nspec);

static inline uint32_t lvk_spec_f32(float f)
{
    union { float f; uint32_t u; } v = {.f = f};
    return v.u;
}

/* ---- command recording ---------------------------------------------------------- */

/* A recorded sequence of dispatches that can be submitted any number of
 * times. Owns its command buffer, the descriptor sets its dispatches use and,
 * optionally, a timestamp query pool. */
struct lvk_cmd {
    struct lvk_ctx *ctx;
    VkCommandBuffer cb;
    VkDescriptorPool *pools;
    int npools;
    int sets_left;           /* in the newest pool */
    bool recording;
    bool fills_pending;      /* fills since the last barrier (lvk_cmd_fill) */
    bool copies_pending;     /* copies since the last barrier */
    /* Timestamps: one query before the first and after every dispatch. */
    VkQueryPool query_pool;
    uint32_t nqueries, max_queries;
    const char **labels;     /* label of dispatch i (static strings) */
    const char **scopes;     /* the scope it was recorded in, or NULL */
    /* Set around a stretch of recording (lvk_graph_record_node: the node's
     * name) for the timestamps to carry; it must outlive their reading. */
    const char *scope;
    const char *pending_scope; /* the scope of the pending fills or copies */
    /* Texel-buffer views the recorded dispatches bind; they live as long as
     * the recording. */
    VkBufferView *views;
    int nviews, cap_views;
};

lvk_status lvk_cmd_create(struct lvk_ctx *ctx, bool timestamps, struct lvk_cmd **out);
void lvk_cmd_destroy(struct lvk_cmd *cmd);
/* Discards what was recorded and starts a new recording. */
lvk_status lvk_cmd_begin(struct lvk_cmd *cmd);
lvk_status lvk_cmd_end(struct lvk_cmd *cmd);
/* Submits the recording and waits for it to finish. */
lvk_status lvk_cmd_submit(struct lvk_cmd *cmd);

/* A descriptor: the whole buffer, or [offset, offset+range) of it. Shaders
 * that declare a texel buffer (imageBuffer / textureBuffer) at a binding get
 * a view of that range in `format` (0 = VK_FORMAT_R32G32B32A32_SFLOAT);
 * lavapipe vectorises texel loads where it does not vectorise SSBO loads.
 * A texel view holds at most maxTexelBufferElements texels. */
struct lvk_bind {
    const struct lvk_buf *buf;
    VkDeviceSize offset, range; /* range 0 = to the end */
    VkFormat format;
};

/* Records one dispatch of `groups` workgroups, then a barrier that makes its
 * writes visible to every later dispatch and transfer. The number of
 * bindings and the push-constant size are checked against the pipeline. */
lvk_status lvk_cmd_dispatch(struct lvk_cmd *cmd, const struct lvk_pipeline *p,
                            const struct lvk_bind *binds, uint32_t nbinds,
                            const void *push, uint32_t push_size,
                            uint32_t gx, uint32_t gy, uint32_t gz, const char *label);

/* Same, with the grid given in invocations (rounded up to whole workgroups). */
lvk_status lvk_cmd_dispatch_n(struct lvk_cmd *cmd, const struct lvk_pipeline *p,
                              const struct lvk_bind *binds, uint32_t nbinds,
                              const void *push, uint32_t push_size,
                              uint32_t nx, uint32_t ny, uint32_t nz, const char *label);

/* Records cmd (begin, record(cmd, user), end) twice: first with pipeline
 * building deferred, to learn which pipelines the recording needs and build
 * them all at once in parallel, then for real. record() must record the
 * same work both times. */
lvk_status lvk_cmd_record(struct lvk_cmd *cmd, lvk_status (*record)(struct lvk_cmd *cmd, void *user),
                          void *user);

/* Convenience: binds whole buffers. */
#define LVK_BINDS(...) ((const struct lvk_bind[]){__VA_ARGS__})
#define LVK_B(bufptr) {.buf = (bufptr)}

/* Records the barrier every dispatch ends with, for work recorded directly
 * on cmd->cb (VkFFT), and a timestamp labelled `label`. */
void lvk_cmd_barrier(struct lvk_cmd *cmd, const char *label);

/* Fills [offset, offset+size) with a 32-bit pattern (0 for zeroing
 * gradients). size VK_WHOLE_SIZE = to the end.
 * Fills write disjoint ranges in lucid-vk's recordings (gradients zeroed
 * together), and so do copies (a Concat's rows): the barrier after a run of
 * fills, or of copies, waits until the next dispatch, FFT, explicit
 * barrier, transfer of the other kind or the end of the recording, so the
 * run shares one (timestamp "fill" where no explicit barrier names it). */
void lvk_cmd_fill(struct lvk_cmd *cmd, const struct lvk_buf *b, VkDeviceSize offset,
                  VkDeviceSize size, uint32_t value);
/* Copies regions between two buffers. */
void lvk_cmd_copy_regions(struct lvk_cmd *cmd, const struct lvk_buf *dst, const struct lvk_buf *src,
                          const VkBufferCopy *regions, uint32_t n);
/* Records the barrier pending after fills and copies, if any: before work
 * recorded directly on cmd->cb, or to close a timed span. */
void lvk_cmd_flush(struct lvk_cmd *cmd);

/* After a submit of a recording made with timestamps: time of dispatch i in
 * milliseconds, or -1 if unavailable. */
lvk_status lvk_cmd_timings(struct lvk_cmd *cmd, double *ms, uint32_t *count);

/* Max workgroups per dimension the device accepts. */
static inline uint32_t lvk_max_groups(const struct lvk_ctx *ctx, int dim)
{
    return ctx->limits.maxComputeWorkGroupCount[dim];
}

#endif
