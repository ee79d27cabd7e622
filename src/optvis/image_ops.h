/* Image-space ops of the feature-visualisation loop, each a forward and an
 * exact adjoint recorded into a caller's command buffer:
 *
 *   colour    raw -> img: Lucid's decorrelated colour space, then sigmoid
 *   upsample  bilinear resize, for Lucid's lowres parameterization
 *   prep      img -> model input: a model's preprocessing (lvk_preproc)
 *
 * Tensors are float32 NCHW device buffers. Every _bwd ACCUMULATES (+=) into
 * its output gradient and is a gather (no atomics). Sizes become
 * specialization constants: recordings are replayed unchanged every step.
 * Functions return LVK_ERR_INVALID_ARG (message set) for sizes they cannot
 * handle, LVK_ERR_VULKAN when a pipeline cannot be built. */
#ifndef LVK_OPTVIS_IMAGE_OPS_H
#define LVK_OPTVIS_IMAGE_OPS_H

#include <stdbool.h>

#include "lucidvk/preproc.h"
#include "vk/lvk_vk.h"

/* ---- colour ---------------------------------------------------------------------- */

/* Lucid's colour correlation square root for ImageNet (rows = output
 * channel), divided by its largest column L2 norm: m[3*i + j] is
 * M[i][j], and rgb = M . raw per pixel. */
void lvk_colour_matrix(float m[9]);

/* img = sigmoid(M . raw) per pixel when decorrelate and C == 3, else
 * img = sigmoid(raw): grayscale (C == 1) is always a plain sigmoid, other
 * channel counts are refused with decorrelate. */
lvk_status lvk_colour_fwd(struct lvk_cmd *cmd,
                          const struct lvk_buf *img, /* (B,C,H,W) out, in (0,1) */
                          const struct lvk_buf *raw, /* (B,C,H,W) */
                          int B, int C, int H, int W, bool decorrelate);

/* raw_grad += M^T . (img_grad * img * (1 - img)); img is what
 * lvk_colour_fwd wrote. */
lvk_status lvk_colour_bwd(struct lvk_cmd *cmd,
                          const struct lvk_buf *raw_grad, /* (B,C,H,W) accumulated */
                          const struct lvk_buf *img_grad, /* (B,C,H,W) */
                          const struct lvk_buf *img,      /* (B,C,H,W) */
                          int B, int C, int H, int W, bool decorrelate);

/* ---- bilinear upsample (lowres parameterization) ------------------------------------ */

/* out = bilinear resize of each of the n planes of in from h x w to H x W,
 * half-pixel centres (align_corners = False, as PyTorch's
 * F.interpolate(mode="bilinear")); any sizes >= 1, downsizing included
 * (plain interpolation, no antialiasing). */
lvk_status lvk_upsample_fwd(struct lvk_cmd *cmd,
                            const struct lvk_buf *out, /* (n,H,W) */
                            const struct lvk_buf *in,  /* (n,h,w) */
                            int n, int h, int w, int H, int W);

/* in_grad += the adjoint of lvk_upsample_fwd applied to out_grad. */
lvk_status lvk_upsample_bwd(struct lvk_cmd *cmd,
                            const struct lvk_buf *in_grad,  /* (n,h,w) accumulated */
                            const struct lvk_buf *out_grad, /* (n,H,W) */
                            int n, int h, int w, int H, int W);

/* ---- model preprocessing -------------------------------------------------------------- */

/* x[b, d(c)] = (lo + t[b, c] * (hi - lo) - mean[c]) / std[c], d(c) = C-1-c
 * when p->bgr and C == 3, else c: lvk_preproc_apply() on the device.
 * C is 1..3; std must be nonzero. */
lvk_status lvk_prep_fwd(struct lvk_cmd *cmd,
                        const struct lvk_buf *x, /* (B,C,H,W) model input */
                        const struct lvk_buf *t, /* (B,C,H,W) image in [0,1] */
                        const struct lvk_preproc *p, int B, int C, int H, int W);

/* t_grad[b, c] += x_grad[b, d(c)] * (hi - lo) / std[c]. */
lvk_status lvk_prep_bwd(struct lvk_cmd *cmd,
                        const struct lvk_buf *t_grad, /* (B,C,H,W) accumulated */
                        const struct lvk_buf *x_grad, /* (B,C,H,W) */
                        const struct lvk_preproc *p, int B, int C, int H, int W);

#endif
