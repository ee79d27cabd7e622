/* Conv: grouped, strided, dilated, padded 2-D convolution on NCHW tensors
 * (and 1-D convolution on NCL tensors, run as 2-D with H = 1), forward with
 * optional bias, and the gradient w.r.t. the input.
 *
 * Non-goals: 3-D convolution (rejected at load with a message), gradients
 * w.r.t. weights and bias (feature visualisation freezes them; a model whose
 * weights are run-time inputs on the gradient path fails at recording).
 *
 * Both directions are direct (no im2col buffer): an invocation computes a
 * block of channels x pixels, channels taken from the workgroup id so that
 * weight reads are lane-uniform. conv_pick() is the one place that chooses a
 * kernel and its block shape for a device. */
#include <stdlib.h>
#include <string.h>

#include "nn/graph.h"

/* Geometry in the order of shaders/common/conv2d.glsl's constants 1..15. */
struct conv_geom {
    uint32_t cg, mg, g;     /* channels per group in and out, groups */
    uint32_t h, w, oh, ow;  /* input and output spatial size */
    uint32_t kh, kw;        /* kernel size */
    int32_t sh, sw, dh, dw; /* strides, dilations */
    int32_t pt, pl;         /* padding before the first row / column */
};

/* A kernel and how it is launched. */
struct conv_kernel {
    enum lvk_shader_id shader;
    uint32_t lanes;         /* workgroup size (constant 0) */
    uint32_t bc, bp;        /* channels x pixels per invocation (constants 16, 17) */
    uint32_t groups[3];     /* pixel blocks, channel blocks x groups, batch */
};

struct conv_priv {
    struct conv_geom geom;
    uint32_t n;
    bool bias;
    struct conv_kernel fwd, bwd;
};

#define CONV_NSPEC_BWD 18
#define CONV_NSPEC_FWD 19  /* + HAS_BIAS */

/* Chooses the kernel for one direction. The forward blocks over output
 * channels and pixels, the backward over input channels and pixels; both aim
 * for about 32 accumulators per invocation (ample reuse on CPUs and GPUs
 * alike) and shrink the workgroup for small maps, down to a subgroup. Faster
 * variants (e.g. for lavapipe, ctx->is_lavapipe) plug in here. */
static lvk_status conv_pick(const struct lvk_model *m, const struct lvk_node *n,
                            const struct conv_priv *p, bool bwd, struct conv_kernel *k)
{
    const struct lvk_ctx *ctx = m->ctx;
    const struct conv_geom *g = &p->geom;
    uint32_t chans = bwd ? g->cg : g->mg;
    uint32_t npix = bwd ? g->h * g->w : g->oh * g->ow;

    k->shader = bwd ? LVK_SHADER_CONV2D_BWD_DATA : LVK_SHADER_CONV2D_FWD;
    k->bc = LVK_MIN(chans, 8u);
    k->bp = LVK_MIN(32u / k->bc, 8u);
    k->bp = LVK_MIN(k->bp, npix);

    uint32_t max_lanes = LVK_MIN(ctx->limits.maxComputeWorkGroupSize[0],
                                 ctx->limits.maxComputeWorkGroupInvocations);
    k->lanes = LVK_MIN(64u, max_lanes);
    uint32_t min_lanes = LVK_MIN(LVK_MAX(ctx->info.subgroup_size, 8u), k->lanes);
    while (k->lanes / 2 >= min_lanes && (k->lanes / 2) * k->bp >= npix)
        k->lanes /= 2;

    k->groups[0] = LVK_CEIL_DIV(npix, k->bp * k->lanes);
    k->groups[1] = g->g * LVK_CEIL_DIV(chans, k->bc);
    k->groups[2] = p->n;
    for (int d = 0; d < 3; d++)
        if (k->groups[d] > lvk_max_groups(ctx, d))
            return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED,
                                 "%s grid needs %u workgroups along dimension %d; the device "
                                 "allows %u", bwd ? "backward" : "forward", k->groups[d], d,
                                 lvk_max_groups(ctx, d));
    return LVK_OK;
}

/* Specialization constants of conv2d_fwd.comp / conv2d_bwd_data.comp. */
static void conv_spec(const struct conv_priv *p, const struct conv_kernel *k,
                      uint32_t spec[CONV_NSPEC_FWD])
{
    const struct conv_geom *g = &p->geom;
    uint32_t s[CONV_NSPEC_FWD] = {
        k->lanes, g->cg, g->mg, g->g, g->h, g->w, g->oh, g->ow, g->kh, g->kw,
        (uint32_t)g->sh, (uint32_t)g->sw, (uint32_t)g->dh, (uint32_t)g->dw,
        (uint32_t)g->pt, (uint32_t)g->pl, k->bc, k->bp, p->bias,
    };
    memcpy(spec, s, sizeof s);
}

/* ---- prepare ------------------------------------------------------------------------ */

/* Reads an ints attribute that must have `want` values when present (default
 * otherwise). */
static lvk_status spatial_attr(const struct lvk_model *m, const struct lvk_node *n,
                               const char *name, int want, int64_t def, int64_t *out)
{
    int64_t v[2 * LVK_MAX_DIMS];
    int got = lvk_attr_ints(n, name, v, 2 * LVK_MAX_DIMS);
    if (got < 0)
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED, "attribute '%s' is too long", name);
    if (got != 0 && got != want)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "attribute '%s' has %d values, expected %d",
                             name, got, want);
    for (int i = 0; i < want; i++)
        out[i] = got ? v[i] : def;
    return LVK_OK;
}

static lvk_status conv_prepare(struct lvk_model *m, struct lvk_node *n)
{
    const struct lvk_value *x = lvk_in(m, n, 0), *w = lvk_in(m, n, 1), *b = lvk_in(m, n, 2);
    char sx[96], sw[96];
    if (!x || !w)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "needs inputs X and W");
    if (x->dtype != LVK_DTYPE_F32 || w->dtype != LVK_DTYPE_F32 || (b && b->dtype != LVK_DTYPE_F32))
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED, "only float32 tensors are supported");
    int nd = x->shape.ndim;
    if (nd == 5)
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED,
                             "3-D convolution (5-D input %s) is not supported; only 1-D and 2-D",
                             lvk_shape_str(&x->shape, sx, sizeof sx));
    if (nd != 3 && nd != 4)
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED, "input %s must be 3-D or 4-D",
                             lvk_shape_str(&x->shape, sx, sizeof sx));
    if (w->shape.ndim != nd)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "weight %s does not match input %s",
                             lvk_shape_str(&w->shape, sw, sizeof sw),
                             lvk_shape_str(&x->shape, sx, sizeof sx));

    /* Spatial attributes; a 1-D convolution fills only the W slot (index 1). */
    int ns = nd - 2, o = 2 - ns;
    int64_t ks[2] = {1, 1}, st[2] = {1, 1}, dl[2] = {1, 1}, pb[2] = {0, 0}, pe[2] = {0, 0};
    int64_t kattr[2], pads[4];
    LVK_CHECK(spatial_attr(m, n, "kernel_shape", ns, 0, kattr));
    LVK_CHECK(spatial_attr(m, n, "strides", ns, 1, st + o));
    LVK_CHECK(spatial_attr(m, n, "dilations", ns, 1, dl + o));
    LVK_CHECK(spatial_attr(m, n, "pads", 2 * ns, 0, pads));
    int64_t group = lvk_attr_int(n, "group", 1);
    const char *auto_pad = lvk_attr_str(n, "auto_pad", "NOTSET");

    int64_t batch = x->shape.d[0], c = x->shape.d[1], mo = w->shape.d[0];
    for (int i = 0; i < ns; i++) {
        ks[o + i] = w->shape.d[2 + i];
        if (kattr[i] != 0 && kattr[i] != ks[o + i])
            return lvk_node_fail(m, n, LVK_ERR_FORMAT,
                                 "kernel_shape does not match weight %s",
                                 lvk_shape_str(&w->shape, sw, sizeof sw));
        pb[o + i] = pads[i];
        pe[o + i] = pads[ns + i];
    }
    if (group < 1 || c % group || mo % group || w->shape.d[1] != c / group)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT,
                             "group %lld does not fit input %s and weight %s", (long long)group,
                             lvk_shape_str(&x->shape, sx, sizeof sx),
                             lvk_shape_str(&w->shape, sw, sizeof sw));
    if (b && (b->shape.ndim != 1 || b->shape.d[0] != mo))
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "bias %s must be [%lld]",
                             lvk_shape_str(&b->shape, sx, sizeof sx), (long long)mo);

    int64_t in[2] = {1, 1}, out[2];
    for (int i = 0; i < ns; i++)
        in[o + i] = x->shape.d[2 + i];
    for (int i = 0; i < 2; i++) {
        if (ks[i] < 1 || st[i] < 1 || dl[i] < 1 || pb[i] < 0 || pe[i] < 0)
            return lvk_node_fail(m, n, LVK_ERR_FORMAT,
                                 "kernel, strides and dilations must be positive, pads >= 0");
        int64_t span = (ks[i] - 1) * dl[i] + 1;
        if (strcmp(auto_pad, "SAME_UPPER") == 0 || strcmp(auto_pad, "SAME_LOWER") == 0) {
            /* Output ceil(in / stride); the odd pad goes to the end (UPPER)
             * or the beginning (LOWER). */
            out[i] = (in[i] + st[i] - 1) / st[i];
            int64_t total = LVK_MAX((out[i] - 1) * st[i] + span - in[i], 0);
            pb[i] = auto_pad[5] == 'U' ? total / 2 : total - total / 2;
            pe[i] = total - pb[i];
        } else if (strcmp(auto_pad, "VALID") == 0 || strcmp(auto_pad, "NOTSET") == 0) {
            if (auto_pad[0] == 'V')
                pb[i] = pe[i] = 0;
            int64_t padded = in[i] + pb[i] + pe[i];
            if (padded < span)
                return lvk_node_fail(m, n, LVK_ERR_FORMAT,
                                     "kernel extent %lld exceeds padded input %lld",
                                     (long long)span, (long long)padded);
            out[i] = (padded - span) / st[i] + 1;
        } else {
            return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED, "auto_pad '%s' is not supported",
                                 auto_pad);
        }
    }
    if (lvk_shape_count(&x->shape) > UINT32_MAX || lvk_shape_count(&w->shape) > UINT32_MAX ||
        batch * mo * out[0] * out[1] > UINT32_MAX)
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED, "tensors beyond 2^32 elements");

    struct conv_priv *p = calloc(1, sizeof *p);
    if (!p)
        return lvk_node_fail(m, n, LVK_ERR_HOST_OOM, "out of host memory");
    n->priv = p;
    p->n = (uint32_t)batch;
    p->bias = b != NULL;
    p->geom = (struct conv_geom){
        .cg = (uint32_t)(c / group), .mg = (uint32_t)(mo / group), .g = (uint32_t)group,
        .h = (uint32_t)in[0], .w = (uint32_t)in[1],
        .oh = (uint32_t)out[0], .ow = (uint32_t)out[1],
        .kh = (uint32_t)ks[0], .kw = (uint32_t)ks[1],
        .sh = (int32_t)st[0], .sw = (int32_t)st[1], .dh = (int32_t)dl[0], .dw = (int32_t)dl[1],
        .pt = (int32_t)pb[0], .pl = (int32_t)pb[1],
    };
    LVK_CHECK(conv_pick(m, n, p, false, &p->fwd));
    LVK_CHECK(conv_pick(m, n, p, true, &p->bwd));

    struct lvk_value *y = lvk_out(m, n, 0);
    y->dtype = LVK_DTYPE_F32;
    y->shape = x->shape;
    y->shape.d[1] = mo;
    for (int i = 0; i < ns; i++)
        y->shape.d[2 + i] = out[o + i];
    return LVK_OK;
}

/* ---- record ------------------------------------------------------------------------- */

static lvk_status conv_dispatch(struct lvk_model *m, const struct conv_priv *p,
                                const struct conv_kernel *k, const struct lvk_bind *binds,
                                uint32_t nbinds, uint32_t nspec, struct lvk_cmd *cmd,
                                const char *label)
{
    uint32_t spec[CONV_NSPEC_FWD];
    conv_spec(p, k, spec);
    const struct lvk_pipeline *pipe = lvk_pipeline_get(m->ctx, k->shader, spec, nspec);
    if (!pipe)
        return LVK_ERR_VULKAN;
    return lvk_cmd_dispatch(cmd, pipe, binds, nbinds, NULL, 0, k->groups[0], k->groups[1],
                            k->groups[2], label);
}

static lvk_status conv_fwd(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd)
{
    const struct conv_priv *p = n->priv;
    const struct lvk_value *x = lvk_in(m, n, 0), *w = lvk_in(m, n, 1), *b = lvk_in(m, n, 2);
    /* Without bias the shader reads no b; bind the weights in its place. */
    return conv_dispatch(m, p, &p->fwd,
                         LVK_BINDS(LVK_B(lvk_out(m, n, 0)->buf), LVK_B(x->buf), LVK_B(w->buf),
                                   LVK_B(b ? b->buf : w->buf)),
                         4, CONV_NSPEC_FWD, cmd, "conv2d_fwd");
}

static lvk_status conv_bwd(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd)
{
    const struct conv_priv *p = n->priv;
    const struct lvk_value *x = lvk_in(m, n, 0), *w = lvk_in(m, n, 1), *b = lvk_in(m, n, 2);
    const struct lvk_value *y = lvk_out(m, n, 0);
    if (w->grad || (b && b->grad))
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED,
                             "gradients w.r.t. convolution weights or bias are not supported "
                             "(they are frozen); make them initializers");
    if (!x->grad || !y->grad)
        return LVK_OK;
    return conv_dispatch(m, p, &p->bwd,
                         LVK_BINDS(LVK_B(x->grad), LVK_B(y->grad), LVK_B(w->buf)),
                         3, CONV_NSPEC_BWD, cmd, "conv2d_bwd_data");
}

static const struct lvk_op_def conv_def = {
    .op_type = "Conv",
    .prepare = conv_prepare,
    .fwd = conv_fwd,
    .bwd = conv_bwd,
};

const struct lvk_op_def *const lvk_ops_conv[] = {&conv_def, NULL};
