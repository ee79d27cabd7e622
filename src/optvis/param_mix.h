/* Composite parameterizations: each image of a batch as a weighted sum of
 * source images (struct lvk_param_layout in include/lucidvk/render.h), with
 * a per-term gradient stop. Sources come in three buffers: spectral images,
 * upsampled low-resolution images, pixel images. */
#ifndef LVK_OPTVIS_PARAM_MIX_H
#define LVK_OPTVIS_PARAM_MIX_H

#include "lucidvk/render.h"
#include "vk/lvk_vk.h"

struct lvk_param_mix {
    struct lvk_ctx *ctx;
    int batch, nfft, nlowres, npixel;
    uint32_t plane;          /* C*H*W floats per image */
    float scale;
    /* fwd table: per image b, [count, (src, w bits) x LVK_LAYOUT_MAX_TERMS];
     * bwd table: offsets[S + 1], then (b, w bits) pairs of the terms that
     * pass gradient, grouped by source. */
    struct lvk_buf bufs[2];
    struct lvk_arena arena;
};

/* Checks the layout (source indices, term counts) and uploads its tables. */
lvk_status lvk_param_mix_create(struct lvk_ctx *ctx, const struct lvk_param_layout *layout,
                                int batch, uint32_t plane, struct lvk_param_mix **out);
void lvk_param_mix_destroy(struct lvk_param_mix *mx);

/* raw[b] = scale * sum w * source. Buffers of an absent kind may be any
 * buffer (not read). */
lvk_status lvk_param_mix_fwd(struct lvk_cmd *cmd, const struct lvk_param_mix *mx,
                             const struct lvk_buf *raw,   /* (B, plane) out */
                             const struct lvk_buf *fft,   /* (nfft, plane) */
                             const struct lvk_buf *low,   /* (nlowres, plane) */
                             const struct lvk_buf *pix);  /* (npixel, plane) */

/* source_grad += scale * sum over the terms with grad set: w * raw_grad[b]. */
lvk_status lvk_param_mix_bwd(struct lvk_cmd *cmd, const struct lvk_param_mix *mx,
                             const struct lvk_buf *fft_grad, const struct lvk_buf *low_grad,
                             const struct lvk_buf *pix_grad, const struct lvk_buf *raw_grad);

#endif
