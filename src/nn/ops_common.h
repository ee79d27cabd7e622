/* Helpers shared by op implementations (src/nn/ops/). */
#ifndef LVK_OPS_COMMON_H
#define LVK_OPS_COMMON_H

#include "nn/graph.h"

/* Dispatches `count` invocations of a 1-D shader (one that indexes with
 * lvk_flat_index() from shaders/common/index.glsl), folding the workgroups
 * into a 2-D grid when they exceed the device's per-dimension limit. */
lvk_status lvk_dispatch_1d(struct lvk_cmd *cmd, const struct lvk_pipeline *p,
                           const struct lvk_bind *binds, uint32_t nbinds,
                           const void *push, uint32_t push_size, uint64_t count,
                           const char *label);

/* Number of elements of a value, as the uint32 shaders index with; fails
 * (error naming the node) when it does not fit. */
lvk_status lvk_value_count32(const struct lvk_model *m, const struct lvk_node *n,
                             const struct lvk_value *v, uint32_t *count);

/* Whether an op with a texel-buffer variant (shaders/NAME_texel.comp) should
 * use it for tensors of up to `count` elements: on lavapipe, which
 * vectorises texel loads but loops over the SIMD lanes for lane-varying
 * storage-buffer loads, when the views fit maxTexelBufferElements.
 * LVK_NO_TEXEL=1 forces the storage-buffer variants (tests run both), Conv's
 * classic kernel included. */
bool lvk_prefer_texel(const struct lvk_ctx *ctx, uint64_t count);

/* A texel view of buf in `format` (r32f or rgba32f) for a shader that reads
 * it only where `on` (its TEXEL constant, from lvk_prefer_texel); otherwise
 * the view covers one texel, as the whole buffer may exceed
 * maxTexelBufferElements. */
static inline struct lvk_bind lvk_texel_bind(const struct lvk_buf *buf, VkFormat format, bool on)
{
    const VkDeviceSize texel = format == VK_FORMAT_R32G32B32A32_SFLOAT ? 16 : 4;
    return (struct lvk_bind){.buf = buf, .range = on ? 0 : texel, .format = format};
}

#endif
