/* Colour, bilinear upsample and preprocessing ops of the render loop
 * (see image_ops.h): host-side argument checks, specialization constants and
 * dispatch sizes. The arithmetic lives in shaders/{colour,upsample,prep}_*.comp.
 *
 * Non-goals: colour spaces other than Lucid's ImageNet decorrelation; the
 * non-sigmoid (L-inf clipping) variant of Lucid's to_valid_rgb; more than 3
 * channels in preprocessing (no model in scope has them). */
#include <math.h>

#include "nn/ops_common.h"
#include "optvis/image_ops.h"

/* Units (a vec4 or a float) each invocation handles: PER in the shaders. */
#define ELEMWISE_PER 4
#define UPSAMPLE_PER 4

/* Every shader indexes with uint32: the element count must fit, and so must
 * the unit count times the per-invocation factor. */
static lvk_status check_dims(const char *what, int B, int C, int H, int W)
{
    if (B < 1 || C < 1 || H < 1 || W < 1)
        return lvk_fail(LVK_ERR_INVALID_ARG, "%s: bad size %dx%dx%dx%d", what, B, C, H, W);
    uint64_t n = (uint64_t)B * (uint64_t)C * (uint64_t)H * (uint64_t)W;
    if (n > (uint64_t)UINT32_MAX / 8)
        return lvk_fail(LVK_ERR_INVALID_ARG, "%s: %llu elements is too many", what,
                        (unsigned long long)n);
    return LVK_OK;
}

/* Units of work of a plane-wise elementwise shader: vec4s when a plane holds
 * a whole number of them (the shaders' V4), else floats. */
static uint64_t elemwise_units(int planes, int H, int W)
{
    uint64_t hw = (uint64_t)H * (uint64_t)W;
    return (uint64_t)planes * (hw % 4 == 0 ? hw / 4 : hw);
}

/* ---- colour ---------------------------------------------------------------------- */

void lvk_colour_matrix(float m[9])
{
    /* lucid/optvis/param/color.py: color_correlation_svd_sqrt, normalised
     * by max over columns of the column's L2 norm. */
    static const double svd_sqrt[9] = {0.26, 0.09, 0.02, 0.27, 0.00, -0.05, 0.27, -0.09, 0.03};
    double max_norm = 0;
    for (int j = 0; j < 3; ++j) {
        double s = 0;
        for (int i = 0; i < 3; ++i)
            s += svd_sqrt[3 * i + j] * svd_sqrt[3 * i + j];
        max_norm = fmax(max_norm, sqrt(s));
    }
    for (int k = 0; k < 9; ++k)
        m[k] = (float)(svd_sqrt[k] / max_norm);
}

/* Whether the elementwise shaders below read planes of H x W through
 * rgba32f texel views (their TEXEL): planes of whole vec4s (their V4), on a
 * device that prefers texel reads (lvk_prefer_texel). */
static bool planes_texel(const struct lvk_ctx *ctx, int planes, int H, int W)
{
    return (H * W) % 4 == 0 && lvk_prefer_texel(ctx, (uint64_t)planes * H * W / 4);
}

static const VkFormat RGBA = VK_FORMAT_R32G32B32A32_SFLOAT;

/* Specialization constants of colour_{fwd,bwd}.comp: C, HW, B, DECOR, M, TEXEL. */
static const struct lvk_pipeline *colour_pipeline(struct lvk_ctx *ctx, enum lvk_shader_id id,
                                                  int B, int C, int H, int W, bool decorrelate,
                                                  bool texel)
{
    float m[9];
    lvk_colour_matrix(m);
    uint32_t spec[14] = {(uint32_t)C, (uint32_t)H * (uint32_t)W, (uint32_t)B,
                         decorrelate && C == 3};
    for (int k = 0; k < 9; ++k)
        spec[4 + k] = lvk_spec_f32(m[k]);
    spec[13] = texel;
    return lvk_pipeline_get(ctx, id, spec, LVK_ARRAY_LEN(spec));
}

static lvk_status colour_check(int B, int C, int H, int W, bool decorrelate)
{
    LVK_CHECK(check_dims("colour", B, C, H, W));
    if (decorrelate && C != 1 && C != 3)
        return lvk_fail(LVK_ERR_INVALID_ARG,
                        "colour: decorrelation needs 3 channels (or 1, where it is skipped), not %d", C);
    return LVK_OK;
}

lvk_status lvk_colour_fwd(struct lvk_cmd *cmd, const struct lvk_buf *img, const struct lvk_buf *raw,
                          int B, int C, int H, int W, bool decorrelate)
{
    LVK_CHECK(colour_check(B, C, H, W, decorrelate));
    const bool texel = planes_texel(cmd->ctx, B * C, H, W);
    const struct lvk_pipeline *p =
        colour_pipeline(cmd->ctx, LVK_SHADER_COLOUR_FWD, B, C, H, W, decorrelate, texel);
    if (!p)
        return LVK_ERR_VULKAN;
    /* A unit covers all C channels of one pixel (or vec4 of pixels). */
    uint64_t units = elemwise_units(B, H, W);
    return lvk_dispatch_1d(cmd, p,
                           LVK_BINDS(LVK_B(img), LVK_B(raw), lvk_texel_bind(raw, RGBA, texel)), 3,
                           NULL, 0, LVK_CEIL_DIV(units, ELEMWISE_PER), "colour_fwd");
}

lvk_status lvk_colour_bwd(struct lvk_cmd *cmd, const struct lvk_buf *raw_grad,
                          const struct lvk_buf *img_grad, const struct lvk_buf *img,
                          int B, int C, int H, int W, bool decorrelate)
{
    LVK_CHECK(colour_check(B, C, H, W, decorrelate));
    const bool texel = planes_texel(cmd->ctx, B * C, H, W);
    const struct lvk_pipeline *p =
        colour_pipeline(cmd->ctx, LVK_SHADER_COLOUR_BWD, B, C, H, W, decorrelate, texel);
    if (!p)
        return LVK_ERR_VULKAN;
    uint64_t units = elemwise_units(B, H, W);
    return lvk_dispatch_1d(cmd, p,
                           LVK_BINDS(LVK_B(raw_grad), LVK_B(img_grad), LVK_B(img),
                                     lvk_texel_bind(raw_grad, RGBA, texel),
                                     lvk_texel_bind(img_grad, RGBA, texel),
                                     lvk_texel_bind(img, RGBA, texel)),
                           6, NULL, 0, LVK_CEIL_DIV(units, ELEMWISE_PER), "colour_bwd");
}

/* ---- bilinear upsample --------------------------------------------------------------- */

/* Specialization constants of upsample_{fwd,bwd}.comp: N, h, w, H, W. */
static const struct lvk_pipeline *upsample_pipeline(struct lvk_cmd *cmd, enum lvk_shader_id id,
                                                    int n, int h, int w, int H, int W)
{
    const uint32_t spec[] = {(uint32_t)n, (uint32_t)h, (uint32_t)w, (uint32_t)H, (uint32_t)W};
    return lvk_pipeline_get(cmd->ctx, id, spec, LVK_ARRAY_LEN(spec));
}

lvk_status lvk_upsample_fwd(struct lvk_cmd *cmd, const struct lvk_buf *out, const struct lvk_buf *in,
                            int n, int h, int w, int H, int W)
{
    LVK_CHECK(check_dims("upsample input", n, 1, h, w));
    LVK_CHECK(check_dims("upsample output", n, 1, H, W));
    const struct lvk_pipeline *p = upsample_pipeline(cmd, LVK_SHADER_UPSAMPLE_FWD, n, h, w, H, W);
    if (!p)
        return LVK_ERR_VULKAN;
    uint64_t count = (uint64_t)n * H * W;
    return lvk_dispatch_1d(cmd, p, LVK_BINDS(LVK_B(out), LVK_B(in)), 2, NULL, 0,
                           LVK_CEIL_DIV(count, UPSAMPLE_PER), "upsample_fwd");
}

lvk_status lvk_upsample_bwd(struct lvk_cmd *cmd, const struct lvk_buf *in_grad,
                            const struct lvk_buf *out_grad, int n, int h, int w, int H, int W)
{
    LVK_CHECK(check_dims("upsample input", n, 1, h, w));
    LVK_CHECK(check_dims("upsample output", n, 1, H, W));
    const struct lvk_pipeline *p = upsample_pipeline(cmd, LVK_SHADER_UPSAMPLE_BWD, n, h, w, H, W);
    if (!p)
        return LVK_ERR_VULKAN;
    /* One invocation gathers for PER input pixels. */
    uint64_t count = (uint64_t)n * h * w;
    return lvk_dispatch_1d(cmd, p, LVK_BINDS(LVK_B(in_grad), LVK_B(out_grad)), 2, NULL, 0,
                           LVK_CEIL_DIV(count, UPSAMPLE_PER), "upsample_bwd");
}

/* ---- model preprocessing --------------------------------------------------------------- */

static lvk_status prep_check(const struct lvk_preproc *pp, int B, int C, int H, int W)
{
    LVK_CHECK(check_dims("preprocessing", B, C, H, W));
    if (C > 3)
        return lvk_fail(LVK_ERR_INVALID_ARG, "preprocessing: %d channels (at most 3)", C);
    for (int c = 0; c < C; ++c)
        if (pp->std[c] == 0.0f)
            return lvk_fail(LVK_ERR_INVALID_ARG, "preprocessing: std[%d] is 0", c);
    return LVK_OK;
}

lvk_status lvk_prep_fwd(struct lvk_cmd *cmd, const struct lvk_buf *x, const struct lvk_buf *t,
                        const struct lvk_preproc *pp, int B, int C, int H, int W)
{
    LVK_CHECK(prep_check(pp, B, C, H, W));
    /* prep_fwd.comp: C, HW, B, BGR, LO, HI, MEAN0..2, STD0..2, TEXEL. The
     * channel swap applies to RGB only, as in lvk_preproc_apply(). */
    const bool texel = planes_texel(cmd->ctx, B * C, H, W);
    const uint32_t spec[] = {
        (uint32_t)C, (uint32_t)H * (uint32_t)W, (uint32_t)B, pp->bgr && C == 3,
        lvk_spec_f32(pp->lo), lvk_spec_f32(pp->hi),
        lvk_spec_f32(pp->mean[0]), lvk_spec_f32(pp->mean[1]), lvk_spec_f32(pp->mean[2]),
        lvk_spec_f32(pp->std[0]), lvk_spec_f32(pp->std[1]), lvk_spec_f32(pp->std[2]), texel,
    };
    const struct lvk_pipeline *p =
        lvk_pipeline_get(cmd->ctx, LVK_SHADER_PREP_FWD, spec, LVK_ARRAY_LEN(spec));
    if (!p)
        return LVK_ERR_VULKAN;
    uint64_t units = elemwise_units(B * C, H, W);
    return lvk_dispatch_1d(cmd, p, LVK_BINDS(LVK_B(x), LVK_B(t), lvk_texel_bind(t, RGBA, texel)),
                           3, NULL, 0, LVK_CEIL_DIV(units, ELEMWISE_PER), "prep_fwd");
}

lvk_status lvk_prep_bwd(struct lvk_cmd *cmd, const struct lvk_buf *t_grad,
                        const struct lvk_buf *x_grad, const struct lvk_preproc *pp,
                        int B, int C, int H, int W)
{
    LVK_CHECK(prep_check(pp, B, C, H, W));
    /* prep_bwd.comp: C, HW, B, BGR, LO, HI, STD0..2, TEXEL. */
    const bool texel = planes_texel(cmd->ctx, B * C, H, W);
    const uint32_t spec[] = {
        (uint32_t)C, (uint32_t)H * (uint32_t)W, (uint32_t)B, pp->bgr && C == 3,
        lvk_spec_f32(pp->lo), lvk_spec_f32(pp->hi),
        lvk_spec_f32(pp->std[0]), lvk_spec_f32(pp->std[1]), lvk_spec_f32(pp->std[2]), texel,
    };
    const struct lvk_pipeline *p =
        lvk_pipeline_get(cmd->ctx, LVK_SHADER_PREP_BWD, spec, LVK_ARRAY_LEN(spec));
    if (!p)
        return LVK_ERR_VULKAN;
    uint64_t units = elemwise_units(B * C, H, W);
    return lvk_dispatch_1d(cmd, p,
                           LVK_BINDS(LVK_B(t_grad), LVK_B(x_grad),
                                     lvk_texel_bind(t_grad, RGBA, texel),
                                     lvk_texel_bind(x_grad, RGBA, texel)),
                           4, NULL, 0, LVK_CEIL_DIV(units, ELEMWISE_PER), "prep_bwd");
}
