/* Random transformations for transformation robustness (Lucid's
 * lucid/optvis/transform.py), done as ONE bilinear affine resampling per
 * image and step.
 *
 * Two layers:
 *   - lvk_affine_fwd/bwd record the resampling (shaders/affine_*.comp) with
 *     per-image maps read from a device buffer, so one recording serves
 *     every step;
 *   - lvk_transform_* draw Lucid's standard_transforms from a seeded
 *     generator, compose them into those maps and upload them.
 *
 * Convention of a map (a, b, c, d, tx, ty): output pixel (x, y) of image b
 * samples the input at
 *     s = A . (x + 0.5, y + 0.5) + t - 0.5,   A = [a b; c d], t = (tx, ty),
 * in input pixel-index coordinates (pixel (i, j) has its centre at s = (i, j)):
 * A and t act on continuous positions, where pixel i covers [i, i + 1).
 * The identity map on equal sizes copies the image exactly. Taps outside
 * the input read a constant fill value (Lucid pads with 0.5).
 *
 * lucid-vk runs a fixed-size network graph, so the output is always the
 * network's Hn x Wn whatever the random scale: where Lucid's random_scale
 * changes the size of the image the network sees, here it changes the scale
 * of the content inside a fixed window (see lvk_transform_compose). */
#ifndef LVK_OPTVIS_TRANSFORMS_H
#define LVK_OPTVIS_TRANSFORMS_H

#include <stdint.h>

#include "vk/lvk_vk.h"

/* ---- affine resampling ------------------------------------------------------------- */

/* Floats per image in the parameter buffer: a, b, c, d, tx, ty, 0, 0. */
#define LVK_AFFINE_FLOATS 8

struct lvk_affine_dims {
    int B, C;            /* images, channels */
    int in_h, in_w;      /* input image */
    int out_h, out_w;    /* output (network input) */
};

/* out[b] = the input resampled through map b (params[b]), bilinear, taps
 * outside the input reading `fill`. params holds B * LVK_AFFINE_FLOATS
 * floats and may be rewritten between submits of the recording. */
lvk_status lvk_affine_fwd(struct lvk_cmd *cmd,
                          const struct lvk_buf *out,    /* (B,C,out_h,out_w) */
                          const struct lvk_buf *in,     /* (B,C,in_h,in_w) */
                          const struct lvk_buf *params, /* (B,8) */
                          const struct lvk_affine_dims *d, float fill);

/* in_grad += the adjoint of the linear part of lvk_affine_fwd (the fill
 * value does not depend on the input) applied to out_grad. Exact for any
 * map; fast when A is invertible and not strongly shrinking (the gather
 * window of an input pixel covers about (2 / scale + 3)^2 output pixels). */
lvk_status lvk_affine_bwd(struct lvk_cmd *cmd,
                          const struct lvk_buf *in_grad,  /* (B,C,in_h,in_w) accumulated */
                          const struct lvk_buf *out_grad, /* (B,C,out_h,out_w) */
                          const struct lvk_buf *params,   /* (B,8) */
                          const struct lvk_affine_dims *d);

/* ---- Lucid's standard transforms ----------------------------------------------------- */

#define LVK_TRANSFORM_MAX_SCALES 32

/* Lucid's standard_transforms, each amount settable:
 *   pad(pad, fill) -> jitter(jitter1) -> random_scale(scales)
 *   -> random_rotate(angles) -> jitter(jitter2).
 * Pixel amounts are in pixels of the image being optimised. */
struct lvk_transform_cfg {
    int pad;          /* constant border added first (Lucid 12) */
    float fill;       /* its value, also used wherever a map leaves the image (0.5) */
    int jitter1;      /* random crop removing jitter1 pixels per axis (Lucid 8) */
    int nscales;      /* scales[0..nscales): drawn uniformly (Lucid 0.90, 0.92 .. 1.10) */
    float scales[LVK_TRANSFORM_MAX_SCALES];
    /* Rotation in degrees, drawn uniformly from the integers in
     * [angle_min, angle_max] plus angle_extra_zeros more zeros, Lucid's
     * list(range(-10, 11)) + 5 * [0]. Positive turns the content
     * counterclockwise as displayed (tf.contrib.image.rotate). */
    int angle_min, angle_max, angle_extra_zeros;
    int jitter2;      /* second random crop (Lucid 4) */
};

/* Lucid's values, for 128-224 px images. */
void lvk_transform_cfg_standard(struct lvk_transform_cfg *cfg);
/* No transformation: the image stretched onto the output (identity when
 * the sizes agree). */
void lvk_transform_cfg_none(struct lvk_transform_cfg *cfg);
/* Scales pad and both jitters by min(1, size / 128) (rounded, at least 1
 * pixel where the amount was nonzero): Lucid's amounts were chosen for
 * 128-224 px images and would swamp a 28 px one. Pass the image's smaller
 * side. Scales and angles are relative and stay. */
void lvk_transform_cfg_scale_pixels(struct lvk_transform_cfg *cfg, int size);

/* Seeded generator (splitmix64): the same seed gives the same draws on
 * every platform. */
struct lvk_rng {
    uint64_t state;
};
void lvk_rng_seed(struct lvk_rng *rng, uint64_t seed);
/* Uniform integer in [0, n), n >= 1. */
uint32_t lvk_rng_below(struct lvk_rng *rng, uint32_t n);

/* One image's random choices. */
struct lvk_transform_draw {
    int o1x, o1y;     /* first crop's offset, each in [0, jitter1] */
    float scale;      /* from scales (1 when there are none) */
    float angle;      /* degrees */
    int o2x, o2y;     /* second crop's offset, each in [0, jitter2] */
};

/* Draws one image's choices in this order: o1x, o1y, scale, angle, o2x,
 * o2y (one generator call each; none for a step whose range is a single
 * value), as Lucid's tf.random_crop (offsets 0..d) and _rand_select do. */
void lvk_transform_draw(const struct lvk_transform_cfg *cfg, struct lvk_rng *rng,
                        struct lvk_transform_draw *d);

/* The map of one draw from an in_h x in_w image to an out_h x out_w
 * output, as LVK_AFFINE_FLOATS floats. See transforms.c for its
 * derivation; in short, with positions relative to each image's centre:
 *   input = j1 + R(angle) (D u + j2) / scale
 * for output position u, where j1 = o1 - jitter1/2, j2 = o2 - jitter2/2,
 * R(angle) = [cos -sin; sin cos] and D = diag(Lw / out_w, Lh / out_h)
 * stretches the output over Lucid's unscaled output extent
 * Lh = in_h + 2 pad - jitter1 - jitter2 (likewise Lw). */
void lvk_transform_compose(const struct lvk_transform_cfg *cfg,
                           const struct lvk_transform_draw *d, int in_h, int in_w,
                           int out_h, int out_w, float params[LVK_AFFINE_FLOATS]);

/* ---- transform state for a render ------------------------------------------------------- */

/* Owns the device parameter buffer of B maps and the generator. */
struct lvk_transform {
    struct lvk_ctx *ctx;
    struct lvk_transform_cfg cfg;
    struct lvk_affine_dims dims;
    struct lvk_rng rng;
    float *host;          /* [B][LVK_AFFINE_FLOATS]: the maps last uploaded */
    struct lvk_buf params; /* (B,8) on the device, mapped (lvk_arena_create_mapped) */
    struct lvk_arena arena;
};

/* Creates the state, seeds the generator and draws and uploads the first
 * maps (as lvk_transform_next), so the buffer is valid from the start. */
lvk_status lvk_transform_create(struct lvk_ctx *ctx, const struct lvk_transform_cfg *cfg,
                                const struct lvk_affine_dims *dims, uint64_t seed,
                                struct lvk_transform **out);
void lvk_transform_destroy(struct lvk_transform *t);

/* Draws B new maps (images in order) and uploads them; call before each
 * submit of a recording that uses t. */
lvk_status lvk_transform_next(struct lvk_transform *t);

/* lvk_affine_fwd/bwd with t's buffer, sizes and fill. */
lvk_status lvk_transform_record_fwd(struct lvk_cmd *cmd, const struct lvk_transform *t,
                                    const struct lvk_buf *out, /* (B,C,out_h,out_w) */
                                    const struct lvk_buf *in); /* (B,C,in_h,in_w) */
lvk_status lvk_transform_record_bwd(struct lvk_cmd *cmd, const struct lvk_transform *t,
                                    const struct lvk_buf *in_grad,   /* (B,C,in_h,in_w) += */
                                    const struct lvk_buf *out_grad); /* (B,C,out_h,out_w) */

#endif
