/* Lucid's random transforms as one affine resampling per image (see
 * transforms.h for the map convention).
 *
 * Composition. Lucid applies, to an H x W image I0 (positions are
 * continuous, pixel i covering [i, i + 1), origin at the top-left corner):
 *   I1 = pad(P) I0                 size S1 = H + 2P,        q0 = q1 - P
 *   I2 = crop(S1 - d1, offset o1)  size S2 = S1 - d1,       q1 = q2 + o1
 *   I3 = resize(scale s)           size S3 = s S2,          q2 = q3 / s
 *   I4 = rotate(theta) about the centre c3 = S3 / 2,        q3 = c3 + R (q4 - c3)
 *   I5 = crop(S3 - d2, offset o2)  size S5 = S3 - d2,       q4 = q5 + o2
 * (each right-hand column gives a position in the earlier image from one in
 * the later; R = [cos -sin; sin cos] in x-right, y-down pixel axes samples
 * the content turned counterclockwise on screen, as
 * tf.contrib.image.rotate). Lucid feeds I5, whose size varies with s, to
 * the network. Ours takes a fixed out_h x out_w, so the output grid is
 * stretched over I5's extent at s = 1, L = S1 - d1 - d2, centred on I5's
 * centre: output position p maps to q5 = S5/2 + D (p - n/2), where
 * n = (out_w, out_h) and D = diag(Lw / out_w, Lh / out_h). At s = 1 the
 * network sees what Lucid's does, resized; other scales zoom the content
 * within the same window instead of resizing the window.
 *
 * Substituting back (with u = D (p - n/2), j1 = o1 - d1/2, j2 = o2 - d2/2),
 * every centre cancels:
 *   q4 - c3 = u + j2,   q2 = S2/2 + R (u + j2) / s,
 *   q0 = H/2 + j1 + R (D (p - n/2) + j2) / s    (per axis, W/2 for x).
 * So q0 = A p + t with
 *   A = R D / s,   t = c0 + j1 + R j2 / s - A n/2,   c0 = (W/2, H/2),
 * and the sampled index is q0 - 0.5 (pixel centres), the shader's
 * s = A (x + 0.5, y + 0.5) + t - 0.5. The padding enters only through L:
 * it sets how much grey border the fixed window shows around the image.
 *
 * Differences from Lucid, by design: each image of the batch draws its own
 * transform (Lucid crops a whole batch at one offset); rotation and scale
 * are exact affine maps without Lucid's integer rounding of the scaled size
 * and its 3.14 for pi; one bilinear resampling replaces Lucid's two
 * (resize, then rotate), so the image is blurred once, not twice. */
#include <math.h>
#include <string.h>

#include "nn/ops_common.h"
#include "optvis/transforms.h"

/* Output pixels per invocation of affine_fwd.comp (PER there). */
#define AFFINE_FWD_PER 2

/* ---- affine resampling ------------------------------------------------------------- */

static lvk_status check_affine(const struct lvk_affine_dims *d)
{
    if (d->B < 1 || d->C < 1 || d->in_h < 1 || d->in_w < 1 || d->out_h < 1 || d->out_w < 1)
        return lvk_fail(LVK_ERR_INVALID_ARG, "affine: bad sizes B=%d C=%d in %dx%d out %dx%d",
                        d->B, d->C, d->in_h, d->in_w, d->out_h, d->out_w);
    /* The shaders index with uint32, and a few pixels beyond. */
    uint64_t in = (uint64_t)d->B * d->C * d->in_h * d->in_w;
    uint64_t out = (uint64_t)d->B * d->C * d->out_h * d->out_w;
    if (in > UINT32_MAX / 4 || out > UINT32_MAX / 4)
        return lvk_fail(LVK_ERR_INVALID_ARG, "affine: too many elements");
    return LVK_OK;
}

lvk_status lvk_affine_fwd(struct lvk_cmd *cmd, const struct lvk_buf *out, const struct lvk_buf *in,
                          const struct lvk_buf *params, const struct lvk_affine_dims *d, float fill)
{
    LVK_CHECK(check_affine(d));
    /* affine_fwd.comp: B, C, IH, IW, OH, OW, PAD, TEXEL. */
    const bool texel = lvk_prefer_texel(cmd->ctx, (uint64_t)d->B * d->C * d->in_h * d->in_w);
    const uint32_t spec[] = {(uint32_t)d->B, (uint32_t)d->C, (uint32_t)d->in_h,
                             (uint32_t)d->in_w, (uint32_t)d->out_h, (uint32_t)d->out_w,
                             lvk_spec_f32(fill), texel};
    const struct lvk_pipeline *p =
        lvk_pipeline_get(cmd->ctx, LVK_SHADER_AFFINE_FWD, spec, LVK_ARRAY_LEN(spec));
    if (!p)
        return LVK_ERR_VULKAN;
    uint64_t pixels = (uint64_t)d->B * d->out_h * d->out_w;
    return lvk_dispatch_1d(cmd, p,
                           LVK_BINDS(LVK_B(out), LVK_B(in), LVK_B(params),
                                     lvk_texel_bind(in, VK_FORMAT_R32_SFLOAT, texel)),
                           4, NULL, 0, LVK_CEIL_DIV(pixels, AFFINE_FWD_PER), "affine_fwd");
}

lvk_status lvk_affine_bwd(struct lvk_cmd *cmd, const struct lvk_buf *in_grad,
                          const struct lvk_buf *out_grad, const struct lvk_buf *params,
                          const struct lvk_affine_dims *d)
{
    LVK_CHECK(check_affine(d));
    /* affine_bwd.comp: B, C, IH, IW, OH, OW, TEXEL. */
    const uint64_t count = (uint64_t)d->B * d->C * d->out_h * d->out_w;
    const bool texel = lvk_prefer_texel(cmd->ctx, count);
    const uint32_t spec[] = {(uint32_t)d->B, (uint32_t)d->C, (uint32_t)d->in_h,
                             (uint32_t)d->in_w, (uint32_t)d->out_h, (uint32_t)d->out_w, texel};
    const struct lvk_pipeline *p =
        lvk_pipeline_get(cmd->ctx, LVK_SHADER_AFFINE_BWD, spec, LVK_ARRAY_LEN(spec));
    if (!p)
        return LVK_ERR_VULKAN;
    /* One invocation per input pixel, all channels. */
    uint64_t pixels = (uint64_t)d->B * d->in_h * d->in_w;
    return lvk_dispatch_1d(cmd, p,
                           LVK_BINDS(LVK_B(in_grad), LVK_B(out_grad), LVK_B(params),
                                     lvk_texel_bind(out_grad, VK_FORMAT_R32_SFLOAT, texel)),
                           4, NULL, 0, pixels, "affine_bwd");
}

/* ---- configuration -------------------------------------------------------------------- */

void lvk_transform_cfg_standard(struct lvk_transform_cfg *cfg)
{
    *cfg = (struct lvk_transform_cfg){
        .pad = 12, .fill = 0.5f, .jitter1 = 8,
        .angle_min = -10, .angle_max = 10, .angle_extra_zeros = 5,
        .jitter2 = 4,
    };
    /* [1 + (i - 5) / 50 for i in range(11)] */
    cfg->nscales = 11;
    for (int i = 0; i < 11; ++i)
        cfg->scales[i] = (float)(1.0 + (i - 5) / 50.0);
}

void lvk_transform_cfg_none(struct lvk_transform_cfg *cfg)
{
    *cfg = (struct lvk_transform_cfg){.fill = 0.5f};
}

static int scale_amount(int amount, double f)
{
    if (amount <= 0)
        return 0;
    return LVK_MAX(1, (int)lround(amount * f));
}

void lvk_transform_cfg_scale_pixels(struct lvk_transform_cfg *cfg, int size)
{
    double f = fmin(1.0, size / 128.0);
    cfg->pad = scale_amount(cfg->pad, f);
    cfg->jitter1 = scale_amount(cfg->jitter1, f);
    cfg->jitter2 = scale_amount(cfg->jitter2, f);
}

/* Values compose() and draw() rely on, for an in_h x in_w image. */
static lvk_status check_cfg(const struct lvk_transform_cfg *c, int in_h, int in_w)
{
    if (c->pad < 0 || c->jitter1 < 0 || c->jitter2 < 0)
        return lvk_fail(LVK_ERR_INVALID_ARG, "transforms: negative pad or jitter");
    int extent = LVK_MIN(in_h, in_w) + 2 * c->pad - c->jitter1 - c->jitter2;
    if (extent < 1)
        return lvk_fail(LVK_ERR_INVALID_ARG,
                        "transforms: jitter %d + %d leaves nothing of a %dx%d image padded by %d",
                        c->jitter1, c->jitter2, in_h, in_w, c->pad);
    if (c->nscales < 0 || c->nscales > LVK_TRANSFORM_MAX_SCALES)
        return lvk_fail(LVK_ERR_INVALID_ARG, "transforms: %d scales (at most %d)", c->nscales,
                        LVK_TRANSFORM_MAX_SCALES);
    for (int i = 0; i < c->nscales; ++i)
        if (!(c->scales[i] > 0.0f))
            return lvk_fail(LVK_ERR_INVALID_ARG, "transforms: scale %g is not positive",
                            c->scales[i]);
    if (c->angle_min > c->angle_max || c->angle_extra_zeros < 0)
        return lvk_fail(LVK_ERR_INVALID_ARG, "transforms: bad angle range [%d, %d] + %d zeros",
                        c->angle_min, c->angle_max, c->angle_extra_zeros);
    return LVK_OK;
}

/* ---- random draws ---------------------------------------------------------------------- */

void lvk_rng_seed(struct lvk_rng *rng, uint64_t seed)
{
    rng->state = seed;
}

/* splitmix64 (Steele, Lea, Flood 2014): a fixed-increment counter hashed. */
static uint64_t rng_next(struct lvk_rng *rng)
{
    uint64_t z = (rng->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint32_t lvk_rng_below(struct lvk_rng *rng, uint32_t n)
{
    /* Multiply-shift of the high 32 bits: bias below n / 2^32. */
    return (uint32_t)(((rng_next(rng) >> 32) * (uint64_t)n) >> 32);
}

/* Uniform in [0, n), consuming a draw only when there is a choice. */
static uint32_t choose(struct lvk_rng *rng, uint32_t n)
{
    return n > 1 ? lvk_rng_below(rng, n) : 0;
}

void lvk_transform_draw(const struct lvk_transform_cfg *cfg, struct lvk_rng *rng,
                        struct lvk_transform_draw *d)
{
    d->o1x = (int)choose(rng, (uint32_t)cfg->jitter1 + 1);
    d->o1y = (int)choose(rng, (uint32_t)cfg->jitter1 + 1);
    d->scale = cfg->nscales > 0 ? cfg->scales[choose(rng, (uint32_t)cfg->nscales)] : 1.0f;
    /* The list range(angle_min, angle_max + 1) followed by the extra zeros. */
    uint32_t nrange = (uint32_t)(cfg->angle_max - cfg->angle_min + 1);
    uint32_t k = choose(rng, nrange + (uint32_t)cfg->angle_extra_zeros);
    d->angle = k < nrange ? (float)(cfg->angle_min + (int)k) : 0.0f;
    d->o2x = (int)choose(rng, (uint32_t)cfg->jitter2 + 1);
    d->o2y = (int)choose(rng, (uint32_t)cfg->jitter2 + 1);
}

/* ---- composition ------------------------------------------------------------------------ */

void lvk_transform_compose(const struct lvk_transform_cfg *cfg, const struct lvk_transform_draw *d,
                           int in_h, int in_w, int out_h, int out_w,
                           float params[LVK_AFFINE_FLOATS])
{
    /* Derivation at the top of this file; double until the final store. */
    const double lw = in_w + 2.0 * cfg->pad - cfg->jitter1 - cfg->jitter2;
    const double lh = in_h + 2.0 * cfg->pad - cfg->jitter1 - cfg->jitter2;
    const double dx = lw / out_w, dy = lh / out_h;
    const double th = d->angle * (M_PI / 180.0), cs = cos(th), sn = sin(th);
    const double inv_s = 1.0 / d->scale;
    /* A = R D / s */
    const double a = cs * dx * inv_s, b = -sn * dy * inv_s;
    const double c = sn * dx * inv_s, e = cs * dy * inv_s;
    const double j1x = d->o1x - cfg->jitter1 / 2.0, j1y = d->o1y - cfg->jitter1 / 2.0;
    const double j2x = d->o2x - cfg->jitter2 / 2.0, j2y = d->o2y - cfg->jitter2 / 2.0;
    /* t = c0 + j1 + R j2 / s - A n/2 */
    const double tx = in_w / 2.0 + j1x + (cs * j2x - sn * j2y) * inv_s
                      - (a * out_w / 2.0 + b * out_h / 2.0);
    const double ty = in_h / 2.0 + j1y + (sn * j2x + cs * j2y) * inv_s
                      - (c * out_w / 2.0 + e * out_h / 2.0);
    const float m[LVK_AFFINE_FLOATS] = {(float)a, (float)b, (float)c, (float)e,
                                        (float)tx, (float)ty, 0.0f, 0.0f};
    memcpy(params, m, sizeof m);
}

/* ---- transform state ----------------------------------------------------------------------- */

lvk_status lvk_transform_create(struct lvk_ctx *ctx, const struct lvk_transform_cfg *cfg,
                                const struct lvk_affine_dims *dims, uint64_t seed,
                                struct lvk_transform **out)
{
    *out = NULL;
    LVK_CHECK(check_affine(dims));
    LVK_CHECK(check_cfg(cfg, dims->in_h, dims->in_w));
    struct lvk_transform *t = lvk_calloc(1, sizeof *t);
    if (!t)
        return LVK_ERR_HOST_OOM;
    t->ctx = ctx;
    t->cfg = *cfg;
    t->dims = *dims;
    lvk_rng_seed(&t->rng, seed);
    lvk_status st;
    t->host = lvk_calloc((size_t)dims->B * LVK_AFFINE_FLOATS, sizeof *t->host);
    if (!t->host) {
        st = LVK_ERR_HOST_OOM;
        goto fail;
    }
    const VkDeviceSize size = (VkDeviceSize)dims->B * LVK_AFFINE_FLOATS * sizeof(float);
    LVK_TRY(st, lvk_arena_create_mapped(ctx, &size, 1, &t->params, &t->arena));
    LVK_TRY(st, lvk_transform_next(t));
    *out = t;
    return LVK_OK;
fail:
    lvk_transform_destroy(t);
    return st;
}

void lvk_transform_destroy(struct lvk_transform *t)
{
    if (!t)
        return;
    lvk_arena_destroy(t->ctx, &t->params, 1, &t->arena);
    free(t->host);
    free(t);
}

lvk_status lvk_transform_next(struct lvk_transform *t)
{
    const struct lvk_affine_dims *d = &t->dims;
    for (int b = 0; b < d->B; ++b) {
        struct lvk_transform_draw draw;
        lvk_transform_draw(&t->cfg, &t->rng, &draw);
        lvk_transform_compose(&t->cfg, &draw, d->in_h, d->in_w, d->out_h, d->out_w,
                              t->host + (size_t)b * LVK_AFFINE_FLOATS);
    }
    return lvk_buf_upload(t->ctx, &t->params, 0, t->host,
                          (VkDeviceSize)d->B * LVK_AFFINE_FLOATS * sizeof(float));
}

lvk_status lvk_transform_record_fwd(struct lvk_cmd *cmd, const struct lvk_transform *t,
                                    const struct lvk_buf *out, const struct lvk_buf *in)
{
    return lvk_affine_fwd(cmd, out, in, &t->params, &t->dims, t->cfg.fill);
}

lvk_status lvk_transform_record_bwd(struct lvk_cmd *cmd, const struct lvk_transform *t,
                                    const struct lvk_buf *in_grad, const struct lvk_buf *out_grad)
{
    return lvk_affine_bwd(cmd, in_grad, out_grad, &t->params, &t->dims);
}
