/* Conv: grouped, strided, dilated, padded 2-D convolution on NCHW tensors
 * (and 1-D convolution on NCL tensors, run as 2-D with H = 1), forward with
 * optional bias, and the gradient w.r.t. the input.
 *
 * Non-goals: 3-D convolution (rejected at load with a message), gradients
 * w.r.t. weights and bias (feature visualisation freezes them; a model whose
 * weights are run-time inputs on the gradient path fails at recording).
 *
 * Each direction runs one of three kernel families chosen by conv_pick(),
 * by the rule every op with a texel-buffer variant follows
 * (lvk_prefer_texel), with no im2col buffer:
 *   classic  shaders/conv2d_fwd.comp, conv2d_bwd_data.comp: direct, one
 *            dispatch, weights read as they are from storage buffers, a
 *            block of channels x pixels per invocation. Any device, any
 *            weights (also run-time inputs).
 *   texel    shaders/conv2d_texel.comp: direct, one dispatch, everything
 *            read through texel buffers, large unrolled blocks, weights
 *            re-laid out at load (so they must be constants). Built for
 *            lavapipe, Mesa's CPU driver, where it is 10-40x faster than
 *            classic; correct anywhere.
 *   winograd shaders/conv2d_wino_in.comp, conv2d_texel.comp,
 *            conv2d_wino_out.comp: Winograd F(4x4, 3x3), three dispatches
 *            through two scratch buffers the model shares
 *            (lvk_node_scratch), for 3x3 stride-1 layers where it beats
 *            texel on lavapipe (wino_pays), in models that allow it
 *            (lvk_model_opts.fast_conv: renders).
 * LVK_CONV_KERNEL=classic|texel|winograd forces a family where it applies
 * (winograd falls back to texel elsewhere), and LVK_NO_SHUFFLE=1 makes the
 * texel kernel fetch weights lane by lane; both are meant for tests and
 * bench/conv_layers.c. */
#include <stdlib.h>
#include <string.h>

#include "nn/graph.h"
#include "nn/ops_common.h"

/* Geometry in the order of shaders/common/conv2d.glsl's constants 1..15. */
struct conv_geom {
    uint32_t cg, mg, g;     /* channels per group in and out, groups */
    uint32_t h, w, oh, ow;  /* input and output spatial size */
    uint32_t kh, kw;        /* kernel size */
    int32_t sh, sw, dh, dw; /* strides, dilations */
    int32_t pt, pl;         /* padding before the first row / column */
};

enum conv_kind { CONV_CLASSIC, CONV_TEXEL, CONV_WINOGRAD, CONV_NKIND };
static const char *const conv_kind_name[CONV_NKIND] = {"classic", "texel", "winograd"};

/* One direction: its kernel, constants and grid. */
struct conv_pass {
    enum conv_kind kind;
    enum lvk_shader_id shader;
    uint32_t spec[LVK_MAX_SPEC], nspec;
    uint32_t groups[3];
    int wslot;              /* texel: extra holding the re-laid-out weights */
    uint32_t dims[2];       /* texel: in and out channels per group, pushed */
    VkFormat in_format;     /* texel: view of the input, r32f or rgba32f */
    /* winograd: the fields above plan the product (a texel pass); the
     * transforms tile the out map th x tw, nt tiles in the batch, padded
     * to nc columns; pads of the direction's convolution; bias extra. */
    struct {
        uint32_t h, w, oh, ow;  /* in and out maps of this direction */
        uint32_t th, tw, nt, nc;
        int32_t pt, pl;
        int bslot;
    } wino;
};

struct conv_priv {
    struct conv_geom geom;
    uint32_t n;
    bool bias;
    bool x_texels;          /* x fits a texel view (for a fused gradient mask) */
    bool y_texels;          /* so does y (for a fused Add's operand) */
    struct conv_pass fwd, bwd;
};

/* The first dimension of a pass's grid beyond the device's limits, or -1. */
static int grid_excess(const struct lvk_ctx *ctx, const struct conv_pass *pass)
{
    for (int d = 0; d < 3; d++)
        if (pass->groups[d] > lvk_max_groups(ctx, d))
            return d;
    return -1;
}

static lvk_status conv_grid(const struct lvk_model *m, const struct lvk_node *n, bool bwd,
                            const struct conv_pass *pass)
{
    const int d = grid_excess(m->ctx, pass);
    if (d >= 0)
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED,
                             "%s grid needs %u workgroups along dimension %d; the device "
                             "allows %u", bwd ? "backward" : "forward", pass->groups[d], d,
                             lvk_max_groups(m->ctx, d));
    return LVK_OK;
}

/* ---- classic kernel: conv2d_fwd.comp / conv2d_bwd_data.comp ------------------------ */

/* Constants of conv2d_fwd.comp after the geometry and HAS_BIAS. */
enum { CL_HAS_ACT = 19, CL_ACT_LO, CL_ACT_HI, CL_HAS_RESID, CL_FWD_NSPEC };
enum { CL_BWD_STORE = 18, CL_BWD_PHASED, CL_BWD_MASK, CL_BWD_ACT_LO, CL_BWD_ACT_HI, CL_BWD_NSPEC };

/* Invocations a classic grid should have: a quarter of what the device
 * holds in flight, where its driver tells (lvk_device_info), else 65536.
 * Measured on an H100 (NVIDIA 580, 270336 resident; 64-lane workgroups), a
 * Lucid render step at 128 px, GoogLeNet to inception4d at batch 1 / 8 and
 * MobileNet V2 at batch 8: 7.7 / 8.6 / 3.0 ms with no minimum, 2.5 / 5.7 /
 * 2.0 at 16384, 2.3 / 3.9 / 1.5 at 65536, 2.3 / 5.0 / 1.6 at 262144.
 * lavapipe runs an invocation per SIMD lane of a few cores, where bigger
 * blocks always pay: none. LVK_CONV_MIN_INVOCATIONS overrides it (tests;
 * tuning). */
static uint64_t conv_fill(const struct lvk_ctx *ctx)
{
    const char *env = getenv("LVK_CONV_MIN_INVOCATIONS");
    if (env && *env)
        return strtoull(env, NULL, 10);
    if (ctx->is_lavapipe)
        return 0;
    return ctx->info.resident_invocations ? ctx->info.resident_invocations / 4 : 65536;
}

/* The forward blocks over output channels and pixels, the backward over input
 * channels and pixels; both aim for about 32 accumulators per invocation
 * (on an H100, 16 to 64 made no difference). */
static lvk_status classic_plan(const struct lvk_model *m, const struct lvk_node *n,
                               const struct conv_priv *p, bool bwd, struct conv_pass *pass)
{
    const struct lvk_ctx *ctx = m->ctx;
    const struct conv_geom *g = &p->geom;
    uint32_t chans = bwd ? g->cg : g->mg;
    uint32_t npix = bwd ? g->h * g->w : g->oh * g->ow;

    pass->kind = CONV_CLASSIC;
    pass->shader = bwd ? LVK_SHADER_CONV2D_BWD_DATA : LVK_SHADER_CONV2D_FWD;
    pass->wslot = -1;
    /* A strided backward takes its pixels phase by phase, each phase a run
     * of workgroups (conv2d_bwd_data.comp): a phase's pixels number
     * ceil((H + PT) / SH) x ceil((W + PL) / SW). */
    const bool phased = bwd && (g->sh > 1 || g->sw > 1) && g->dh == 1 && g->dw == 1;
    const uint32_t nphase = phased ? (uint32_t)(g->sh * g->sw) : 1;
    if (phased)
        npix = LVK_CEIL_DIV(g->h + (uint32_t)g->pt, (uint32_t)g->sh) *
               LVK_CEIL_DIV(g->w + (uint32_t)g->pl, (uint32_t)g->sw);
    uint32_t bc = LVK_MIN(chans, 8u);
    uint32_t bp = LVK_MIN(LVK_MIN(32u / bc, 8u), npix);
    /* A GPU hides memory latency with many invocations in flight, and the
     * small maps of late layers give few at this block size (GoogLeNet's
     * 8x8 maps in a 128 px render: a few thousand, where an H100 holds
     * 270 thousand); blocks shrink, pixels first (weights are broadcast
     * loads), until the grid has conv_fill() invocations. */
    const uint64_t blocks = (uint64_t)g->g * p->n, want = conv_fill(ctx);
    while ((bp > 1 || bc > 1) &&
           blocks * nphase * LVK_CEIL_DIV(chans, bc) * LVK_CEIL_DIV(npix, bp) < want) {
        if (bp > 1)
            bp /= 2;
        else
            bc /= 2;
    }

    /* Workgroups of 64 lanes on lavapipe; of one subgroup on a GPU, where
     * the render steps of conv_fill took 12-18% less than with 64 or 128
     * lanes (H100, 65536 invocations: 1.9 / 3.4 / 1.3 ms against 2.3 /
     * 3.9 / 1.5). Small maps shrink them, down to a subgroup. */
    uint32_t max_lanes = LVK_MIN(LVK_MIN(ctx->limits.maxComputeWorkGroupSize[0],
                                         ctx->limits.maxComputeWorkGroupInvocations), 64u);
    uint32_t min_lanes = LVK_MIN(LVK_MAX(ctx->info.subgroup_size, 8u), max_lanes);
    uint32_t lanes = ctx->is_lavapipe ? max_lanes : min_lanes;
    while (lanes / 2 >= min_lanes && (lanes / 2) * bp >= npix)
        lanes /= 2;

    const uint32_t spec[] = {
        lanes, g->cg, g->mg, g->g, g->h, g->w, g->oh, g->ow, g->kh, g->kw,
        (uint32_t)g->sh, (uint32_t)g->sw, (uint32_t)g->dh, (uint32_t)g->dw,
        (uint32_t)g->pt, (uint32_t)g->pl, bc, bp,
        bwd ? 0 : p->bias,  /* forward: HAS_BIAS; backward: STORE */
        phased,             /* forward: HAS_ACT; backward: PHASED */
        0, 0, 0,            /* forward: ACT_LO, ACT_HI, HAS_RESID; backward: MASK, ACT_LO,
                               ACT_HI */
    };
    _Static_assert(LVK_ARRAY_LEN(spec) == CL_FWD_NSPEC, "conv2d_fwd.comp's constants");
    _Static_assert((int)CL_BWD_NSPEC == (int)CL_FWD_NSPEC, "conv2d_bwd_data.comp's constants");
    /* The activation, mask and residual constants and STORE are set at recording. */
    pass->nspec = bwd ? CL_BWD_NSPEC : CL_FWD_NSPEC;
    memcpy(pass->spec, spec, pass->nspec * sizeof spec[0]);
    pass->groups[0] = nphase * LVK_CEIL_DIV(npix, bp * lanes);
    pass->groups[1] = g->g * LVK_CEIL_DIV(chans, bc);
    pass->groups[2] = p->n;
    return conv_grid(m, n, bwd, pass);
}

/* ---- texel kernel: conv2d_texel.comp ---------------------------------------------------- */

/* Constants of conv2d_texel.comp, in constant_id order; its channel
 * counts are push constants (conv_pass.dims) where TX_CI, TX_CO are 0. */
enum {
    TX_LANES, TX_CI, TX_CO, TX_G, TX_H, TX_W, TX_OH, TX_OW, TX_KH, TX_KW, TX_SH, TX_SW,
    TX_DH, TX_DW, TX_PT, TX_PL, TX_BC, TX_PW, TX_PH, TX_FLAGS, TX_CU, TX_ACT_LO, TX_ACT_HI,
    TX_SG, TX_NSPEC
};
_Static_assert(TX_NSPEC <= LVK_MAX_SPEC, "conv2d_texel.comp has too many constants");
enum { TX_BIAS = 1, TX_BWD = 2, TX_XV4 = 4, TX_LANE_BLOCKS = 8, TX_ACT = 16, TX_SHUF = 32,
       TX_MASK = 64, TX_STORE = 128, TX_RESID = 256, TX_CO_WHOLE = 512 };

/* Kernels of more taps than this along both axes (7x7 stems) fit few pixels
 * of a 16-channel block in the unrolled body (one row of 4), and their in
 * rows serve many taps: under shared weights they take 8-channel blocks of
 * at most 4 columns, which lets tiles grow in rows instead (GoogLeNet's
 * 7x7/2 stem forward at 128 px, batch 8, old and new plan alternating 12
 * rounds, min / median: 20.1 / 26.3 -> 18.7 / 23.4 ms; 5x5 layers gained
 * less, within the noise, and 3x3 layers are best at 16 channels x 8
 * columns). */
#define TX_WIDE_TAPS 32

/* Block shape of one invocation of conv2d_texel.comp: BC out channels (of co
 * per group, at most max_bc), PH x PW pixels of an oh x ow map in multiples
 * of uh x uw (the tile origins must be multiples of the backward strides,
 * and of 4 in-map columns for 4-column texels); kh x kw taps; lane_blocks:
 * the lanes take channel blocks of one tile. Measured on lavapipe
 * (bench/conv_layers.c): up to 128 accumulators per invocation pay off
 * (LLVM spills more; 64 for depthwise layers, with little to reuse); with
 * weights fetched by each lane, 8 channels x 2 rows x 8 columns is best for
 * 3x3 (rows share in rows across taps), 8 x 16 for 1x1; with weights shared
 * by shuffles, 16 channels (each input fetch serves more of them: 1x1
 * layers 1.1-1.5x faster); lanes of a SIMD group (simd: lavapipe's
 * subgroups are its SIMD width, 8 or 16) without a tile do no useful work
 * (with shuffled weights they only fetch their share). */
static void texel_block(uint32_t co, uint32_t oh, uint32_t ow, uint32_t uh, uint32_t uw,
                        uint32_t kh, uint32_t kw, bool lane_blocks, bool wide, uint32_t max_bc,
                        uint32_t simd, uint32_t *bc, uint32_t *pw, uint32_t *ph)
{
    /* Channels: all when few; else 5/8 of max_bc to max_bc, the block
     * wasting least of co. */
    *bc = co;
    if (co > max_bc) {
        *bc = max_bc;
        for (uint32_t b = max_bc; b >= max_bc * 5 / 8; b--)
            if (LVK_CEIL_DIV(co, b) * b < LVK_CEIL_DIV(co, *bc) * *bc)
                *bc = b;
    }
    /* Pixels: the tile that minimises the work done, idle lanes and
     * padding included, over the efficiency of its block size a (fixed
     * costs per channel step make small blocks slow: about a / (a + 32)),
     * columns up to 16 (8 with taps along H, 4 for wide kernels), and an
     * unrolled body of at most about 4096 multiply-adds per in channel (JIT
     * time). */
    uint32_t budget = co <= 4 ? 64 : 128, kk = kh * kw;
    uint32_t max_pw = LVK_MAX(wide ? 4u : kh > 1 ? 8u : 16u, uw);
    uint32_t max_px = LVK_MAX(LVK_MIN(budget, 4096 / kk) / *bc, 1u);
    double best = 0;
    *pw = uw;
    *ph = uh;
    for (uint32_t w = uw; w <= max_pw; w += uw) {
        for (uint32_t h = uh; h <= LVK_CEIL_DIV(oh, uh) * uh; h += uh) {
            if (w * h > max_px && (w > uw || h > uh))
                break;
            uint32_t tiles = LVK_CEIL_DIV(oh, h) * LVK_CEIL_DIV(ow, w);
            uint32_t lanes = lane_blocks ? tiles : LVK_CEIL_DIV(tiles, simd) * simd;
            double a = (double)*bc * w * h;
            double cost = (double)lanes * w * h * (a + 32) / a;
            if (best == 0 || cost <= best) {
                best = cost;
                *pw = w;
                *ph = h;
            }
        }
    }
}

/* A 1x1, stride-1, unpadded convolution is the same over the map flattened
 * to one row, which is longer (fewer partial tiles) and more often a
 * multiple of 4 (4-column texels). */
static void flatten_pointwise(struct conv_geom *g)
{
    if (g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->pt == 0 && g->pl == 0 &&
        g->oh == g->h && g->ow == g->w) {
        g->w = g->ow = g->h * g->w;
        g->h = g->oh = 1;
    }
}

/* Index of the weight of (out channel mo, in channel c, tap k) in the texel
 * layout [G, CO/BC, CI, NWT * 4] of a pass; group gi. The bias follows, at
 * texel_widx(pass, G, 0, 0, 0), as [G, CO/BC, NBT * 4]. */
static size_t texel_widx(const struct conv_pass *pass, uint32_t gi, uint32_t mo, uint32_t c,
                         uint32_t k)
{
    const uint32_t *s = pass->spec;
    uint32_t bc = s[TX_BC], nblk = LVK_CEIL_DIV(pass->dims[1], bc);
    size_t nwt4 = LVK_CEIL_DIV(s[TX_KH] * s[TX_KW] * bc, 4u) * 4;
    return ((size_t)(gi * nblk + mo / bc) * pass->dims[0] + c) * nwt4 + k * bc + mo % bc;
}

/* Plans one direction: forward computes y from x (in channels cg, out mg),
 * backward dx from dy (in mg, out cg) with the same geometry, gathering,
 * for each dx pixel, the dy pixels and taps that read it; the weights are
 * transposed for it (not flipped: the kernel walks the taps backwards). */
static lvk_status texel_plan(struct lvk_model *m, struct lvk_node *n, const struct conv_geom *geom,
                             uint32_t batch, bool bwd, const float *w, const float *b,
                             struct conv_pass *pass, bool *fits)
{
    struct conv_geom g = *geom;
    flatten_pointwise(&g);
    uint32_t ci = bwd ? g.mg : g.cg, co = bwd ? g.cg : g.mg;
    uint32_t ih = bwd ? g.oh : g.h, iw = bwd ? g.ow : g.w;
    uint32_t oh = bwd ? g.h : g.oh, ow = bwd ? g.w : g.ow;
    uint32_t kk = g.kh * g.kw;
    /* Tile origins: multiples of the strides backward; 4-column texels need
     * rows of a multiple of 4 and tiles 4 in-map columns apart. */
    uint32_t uh = bwd ? (uint32_t)g.sh : 1, uw = bwd ? (uint32_t)g.sw : 1;
    bool xv4 = iw % 4 == 0;
    if (xv4)
        uw = bwd ? 4 * uw : 4;
    /* The lanes of a tile-per-lane workgroup share one weight block: on
     * lavapipe, whose subgroups are fixed-size runs of the workgroup, each
     * fetches part and shuffles hand it round (GoogLeNet's forward and
     * backward at 128 px, batch 8: 9% and 17% faster), which makes wider
     * channel blocks pay. */
    const struct lvk_ctx *ctx = m->ctx;
    const bool shuffle = ctx->is_lavapipe && !lvk_env_on("LVK_NO_SHUFFLE");
    /* Channel blocks across lanes: depthwise-like layers (a block would be a
     * few channels) and maps too small to give each lane of a SIMD group a
     * tile, when there are enough
     * blocks for the lanes. */
    uint32_t *s = pass->spec;
    memset(s, 0, sizeof pass->spec);
    const uint32_t simd = LVK_MAX(ctx->info.subgroup_size, 8u);
    texel_block(co, oh, ow, uh, uw, g.kh, g.kw, false, false, 8, simd, &s[TX_BC], &s[TX_PW],
                &s[TX_PH]);
    uint32_t tiles = LVK_CEIL_DIV(oh, s[TX_PH]) * LVK_CEIL_DIV(ow, s[TX_PW]);
    bool lane_blocks = g.g * LVK_CEIL_DIV(co, s[TX_BC]) >= simd && (co <= 4 || tiles < simd);
    if (lane_blocks || shuffle) {
        const bool wide = !lane_blocks && kk > TX_WIDE_TAPS && g.kh > 1 && g.kw > 1;
        texel_block(co, oh, ow, uh, uw, g.kh, g.kw, lane_blocks, wide,
                    lane_blocks || wide ? 8 : 16, simd, &s[TX_BC], &s[TX_PW], &s[TX_PH]);
        tiles = LVK_CEIL_DIV(oh, s[TX_PH]) * LVK_CEIL_DIV(ow, s[TX_PW]);
    }
    uint32_t blocks = g.g * LVK_CEIL_DIV(co, s[TX_BC]);
    /* In channels per loop iteration: some taps between two stores of the
     * accumulators (see the shader), within the unrolled-body budget. */
    s[TX_CU] = 1;
    while (ci % (2 * s[TX_CU]) == 0 && s[TX_CU] * kk < 8 &&
           2 * s[TX_CU] * kk * s[TX_BC] * s[TX_PH] * s[TX_PW] <= 4096)
        s[TX_CU] *= 2;
    pass->dims[0] = ci; pass->dims[1] = co;
    /* Pushed channel counts let layers share pipelines (lavapipe JITs each
     * in every process: GoogLeNet's texel pipelines 57 -> 19). Where the
     * lanes take channel blocks (depthwise layers, with one in channel
     * each), the counts stay fixed, which the lanes' block arithmetic
     * needs: pushed, MobileNet V2's depthwise layers ran up to 1.5x slower.
     * So does a loop over in channels of one iteration. */
    s[TX_CI] = lane_blocks || ci <= s[TX_CU] ? ci : 0;
    s[TX_CO] = lane_blocks ? co : 0;
    s[TX_G] = g.g;
    s[TX_H] = ih; s[TX_W] = iw; s[TX_OH] = oh; s[TX_OW] = ow; s[TX_KH] = g.kh; s[TX_KW] = g.kw;
    s[TX_SH] = (uint32_t)g.sh; s[TX_SW] = (uint32_t)g.sw;
    s[TX_DH] = (uint32_t)g.dh; s[TX_DW] = (uint32_t)g.dw;
    s[TX_PT] = (uint32_t)g.pt; s[TX_PL] = (uint32_t)g.pl;
    s[TX_FLAGS] = (b ? TX_BIAS : 0) | (bwd ? TX_BWD : 0) | (xv4 ? TX_XV4 : 0) |
                  (lane_blocks ? TX_LANE_BLOCKS : 0) | (co % s[TX_BC] == 0 ? TX_CO_WHOLE : 0);

    uint32_t across = lane_blocks ? blocks : tiles;    /* what a workgroup's lanes span */
    s[TX_LANES] = simd;
    while (s[TX_LANES] < 32 && s[TX_LANES] < across)
        s[TX_LANES] *= 2;
    s[TX_SG] = 1;
    if (!lane_blocks && shuffle) {
        s[TX_FLAGS] |= TX_SHUF;
        s[TX_SG] = LVK_MIN(ctx->info.subgroup_size, s[TX_LANES]);
    }
    pass->kind = CONV_TEXEL;
    pass->shader = LVK_SHADER_CONV2D_TEXEL;
    pass->nspec = TX_NSPEC;
    pass->in_format = xv4 ? VK_FORMAT_R32G32B32A32_SFLOAT : VK_FORMAT_R32_SFLOAT;
    pass->groups[0] = lane_blocks ? tiles : LVK_CEIL_DIV(tiles, s[TX_LANES]);
    pass->groups[1] = lane_blocks ? LVK_CEIL_DIV(blocks, s[TX_LANES]) : blocks;
    pass->groups[2] = batch;

    /* Where the grid or the weights' texel view exceed the device's limits,
     * another family may still fit. */
    uint32_t bc = s[TX_BC], nblk = LVK_CEIL_DIV(co, bc);
    size_t count = texel_widx(pass, g.g, 0, 0, 0) + (size_t)g.g * nblk * LVK_CEIL_DIV(bc, 4u) * 4;
    *fits = grid_excess(m->ctx, pass) < 0 && count / 4 <= m->ctx->limits.maxTexelBufferElements;
    if (!*fits)
        return LVK_OK;
    float *t = calloc(count, sizeof *t);
    if (!t)
        return lvk_node_fail(m, n, LVK_ERR_HOST_OOM, "out of host memory");
    /* In the order of the layout (texel_widx), so the writes run on: the
     * largest layouts are Winograd's 36 x co x ci products (see wino_plan). */
    const size_t nwt4 = LVK_CEIL_DIV(kk * bc, 4u) * 4;
    float *d = t;
    for (uint32_t gi = 0; gi < g.g; gi++)
        for (uint32_t blk = 0; blk < nblk; blk++)
            for (uint32_t cp = 0; cp < ci; cp++, d += nwt4)
                for (uint32_t k = 0; k < kk; k++)
                    for (uint32_t i = 0; i < bc && blk * bc + i < co; i++) {
                        /* Backward: the pass's in channels are w's out channels. */
                        uint32_t mo = bwd ? cp : blk * bc + i, c = bwd ? blk * bc + i : cp;
                        d[k * bc + i] = w[((size_t)(gi * g.mg + mo) * g.cg + c) * kk + k];
                    }
    if (b) {
        float *tb = t + texel_widx(pass, g.g, 0, 0, 0);
        for (uint32_t gi = 0; gi < g.g; gi++)
            for (uint32_t mo = 0; mo < co; mo++)
                tb[(gi * nblk + mo / bc) * LVK_CEIL_DIV(bc, 4u) * 4 + mo % bc] = b[gi * co + mo];
    }
    pass->wslot = lvk_node_extra(n, count * sizeof *t, t);
    return LVK_OK;
}

/* ---- winograd: conv2d_wino_in.comp, conv2d_texel.comp, conv2d_wino_out.comp ------------- */

/* F(4x4, 3x3) for 3x3 stride-1 layers on lavapipe: 36 multiplies per 16
 * outputs and in channel where the direct kernel does 144, for two passes
 * that transform tiles in and out (conv2d_wino_in.comp explains the
 * layout); the multiplies are a 36-group 1x1 convolution on the texel
 * kernel. The backward of a 3x3 stride-1 convolution is one too: over dy,
 * with the weights transposed and flipped and the pads 2 - pad, so it runs
 * the same three passes. */
static bool wino_fits(const struct conv_geom *g)
{
    return g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->dh == 1 && g->dw == 1 &&
           g->g == 1 && g->pt <= 2 && g->pl <= 2;
}

/* G of the weight transform G g G^T, for the points 0, 1, -1, 2, -2 and
 * infinity (B^T and A^T are in the shaders). */
static const double wino_gm[6][3] = {
    {1.0 / 4, 0, 0}, {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
    {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1},
};

/* Where winograd beats the texel kernel on lavapipe. Its transforms cost
 * in proportion to the channels in plus out, what it saves to their
 * product: it pays where their harmonic mean is at least 48 and the batch
 * has 4 tiles or more, on maps whose rows are a multiple of 4 long (else
 * the transforms load and store one column at a time). Measured
 * (bench/conv_layers.c, both kernels alternating, forward / backward):
 * 144 -> 288 channels on 8 x 8 maps 1.0 / 1.2 -> 0.8 / 0.7 ms at batch 1
 * (4 tiles), 2.4 / 2.7 -> 1.5 / 1.3 ms at batch 8; 32 -> 96 on 16 x 16,
 * batch 8, 3.4 / 2.4 -> 1.9 / 1.5 ms; GoogLeNet's render step at 128 px,
 * batch 8, profiled: its eight 3x3 layers so chosen 233 -> 153-163 ms.
 * 32 -> 64 on 8 x 8 at batch 8 about even; 16 -> 48 1.3x slower; one
 * tile (a 4 x 4 map at batch 1) 2.5x slower. */
static bool wino_pays(const struct conv_geom *g, uint32_t batch)
{
    const uint64_t tiles = (uint64_t)batch * LVK_CEIL_DIV(g->oh, 4u) * LVK_CEIL_DIV(g->ow, 4u);
    return 2 * (uint64_t)g->cg * g->mg >= 48 * (uint64_t)(g->cg + g->mg) && tiles >= 4 &&
           g->w % 4 == 0 && g->ow % 4 == 0;
}

/* Plans one direction; *fits false (and nothing planned) where a scratch
 * buffer would exceed the device's limits. */
static lvk_status wino_plan(struct lvk_model *m, struct lvk_node *n, const struct conv_priv *p,
                            bool bwd, const float *w, const float *b, struct conv_pass *pass,
                            bool *fits)
{
    const struct conv_geom *g = &p->geom;
    const uint32_t ci = bwd ? g->mg : g->cg, co = bwd ? g->cg : g->mg;
    pass->wino.h = bwd ? g->oh : g->h;
    pass->wino.w = bwd ? g->ow : g->w;
    pass->wino.oh = bwd ? g->h : g->oh;
    pass->wino.ow = bwd ? g->w : g->ow;
    pass->wino.th = LVK_CEIL_DIV(pass->wino.oh, 4u);
    pass->wino.tw = LVK_CEIL_DIV(pass->wino.ow, 4u);
    pass->wino.nt = p->n * pass->wino.th * pass->wino.tw;
    pass->wino.nc = LVK_CEIL_DIV(pass->wino.nt, 4u) * 4;
    pass->wino.pt = bwd ? 2 - g->pt : g->pt;
    pass->wino.pl = bwd ? 2 - g->pl : g->pl;
    const uint64_t cols = pass->wino.nc;
    /* The scratch buffers, as storage buffers and as texel views (the
     * transforms' flat indices are smaller still): where they would not fit
     * (2.25x the input or output), the direct kernel still may. */
    const uint64_t scratch = 36 * (uint64_t)LVK_MAX(ci, co) * cols;
    *fits = scratch / 4 <= m->ctx->limits.maxTexelBufferElements &&
            scratch * 4 <= m->ctx->limits.maxStorageBufferRange;
    if (!*fits)
        return LVK_OK;

    /* U[p, out, in] = G g G^T at point p, laid out as the weights of the
     * 36-group 1x1 convolution over one row of columns that multiplies.
     * One out channel at a time, so that the 36 points are written as runs
     * of ci floats: written point by point, co x ci floats apart, this and
     * the texel layout it feeds took 0.15 s of CPU in GoogLeNet's setup
     * (0.06 s since, nearly all the first touch of the arrays). */
    float *u = malloc((size_t)36 * co * ci * sizeof *u);
    float *row = malloc((size_t)36 * ci * sizeof *row);
    if (!u || !row) {
        free(u);
        free(row);
        return lvk_node_fail(m, n, LVK_ERR_HOST_OOM, "out of host memory");
    }
    for (uint32_t o = 0; o < co; o++) {
        for (uint32_t c = 0; c < ci; c++) {
            /* Backward: out channel o of dx is in channel o of w, taps flipped. */
            const float *k = bwd ? w + ((size_t)c * g->cg + o) * 9 : w + ((size_t)o * g->cg + c) * 9;
            double kt[3][3], gk[6][3];
            for (int a = 0; a < 3; a++)
                for (int b2 = 0; b2 < 3; b2++)
                    kt[a][b2] = bwd ? k[(2 - a) * 3 + 2 - b2] : k[a * 3 + b2];
            for (int i = 0; i < 6; i++)
                for (int b2 = 0; b2 < 3; b2++)
                    gk[i][b2] = wino_gm[i][0] * kt[0][b2] + wino_gm[i][1] * kt[1][b2] +
                                wino_gm[i][2] * kt[2][b2];
            for (int i = 0; i < 6; i++)
                for (int j = 0; j < 6; j++)
                    row[(size_t)(6 * i + j) * ci + c] =
                        (float)(gk[i][0] * wino_gm[j][0] + gk[i][1] * wino_gm[j][1] +
                                gk[i][2] * wino_gm[j][2]);
        }
        for (int p36 = 0; p36 < 36; p36++)
            memcpy(u + ((size_t)p36 * co + o) * ci, row + (size_t)p36 * ci, ci * sizeof *u);
    }
    free(row);
    const struct conv_geom pg = {.cg = ci, .mg = co, .g = 36, .h = 1, .w = pass->wino.nc, .oh = 1,
                                 .ow = pass->wino.nc, .kh = 1, .kw = 1, .sh = 1, .sw = 1,
                                 .dh = 1, .dw = 1};
    lvk_status st = texel_plan(m, n, &pg, 1, false, u, NULL, pass, fits);
    free(u);
    if (st != LVK_OK || !*fits)
        return st;
    /* The product's own flags stay; bias and direction are the output
     * transform's (conv2d_wino_out.comp reads them from the same bits). */
    pass->kind = CONV_WINOGRAD;
    pass->spec[TX_FLAGS] |= (b ? TX_BIAS : 0) | (bwd ? TX_BWD : 0);
    pass->wino.bslot = -1;
    if (b) {
        float *bc = malloc(co * sizeof *bc);
        if (!bc)
            return lvk_node_fail(m, n, LVK_ERR_HOST_OOM, "out of host memory");
        memcpy(bc, b, co * sizeof *bc);
        pass->wino.bslot = lvk_node_extra(n, co * sizeof *bc, bc);
    }
    /* A backward that will not run needs none (renders' models have one). */
    if (!bwd || m->gradients) {
        lvk_node_scratch(n, 0, 36 * (VkDeviceSize)ci * cols * 4);
        lvk_node_scratch(n, 1, 36 * (VkDeviceSize)co * cols * 4);
    }
    return LVK_OK;
}

/* ---- choice ---------------------------------------------------------------------------- */

/* Chooses the kernel family of one direction: texel where texel variants
 * pay (lvk_prefer_texel: lavapipe) and it can run (constant weights, texel
 * views of the input and of the weights within maxTexelBufferElements,
 * which can be as low as 65536, and lvk_ctx.texel_conv: subgroupShuffle,
 * which its SPIR-V declares, and a driver that runs it right), classic
 * elsewhere; winograd instead of texel where it pays in models that allow
 * it (wino_pays, lvk_model_opts.fast_conv);
 * LVK_CONV_KERNEL=classic|texel|winograd overrides the preference (tests,
 * bench/conv_layers.c). */
static lvk_status conv_pick(struct lvk_model *m, struct lvk_node *n, struct conv_priv *p,
                            bool bwd)
{
    const struct lvk_ctx *ctx = m->ctx;
    const struct conv_geom *g = &p->geom;
    const struct lvk_value *w = lvk_in(m, n, 1), *b = lvk_in(m, n, 2);
    struct conv_pass *pass = bwd ? &p->bwd : &p->fwd;

    const uint64_t in_count =
        (uint64_t)p->n * g->g * (bwd ? g->mg * g->oh * g->ow : g->cg * g->h * g->w);
    enum conv_kind kind = !lvk_prefer_texel(ctx, in_count) ? CONV_CLASSIC
                          : m->fast_conv && wino_fits(g) && wino_pays(g, p->n) ? CONV_WINOGRAD
                                                                                : CONV_TEXEL;
    const char *force = getenv("LVK_CONV_KERNEL");
    for (int k = 0; force && k < CONV_NKIND; k++)
        if (!strcmp(force, conv_kind_name[k]))
            kind = (enum conv_kind)k;

    if (kind != CONV_CLASSIC && w->host && (!b || b->host) && ctx->texel_conv &&
        in_count <= ctx->limits.maxTexelBufferElements) {
        const float *bias = !bwd && b ? b->host : NULL;
        bool fits = false;
        if (kind == CONV_WINOGRAD && wino_fits(g))
            LVK_CHECK(wino_plan(m, n, p, bwd, w->host, bias, pass, &fits));
        if (!fits)
            LVK_CHECK(texel_plan(m, n, g, p->n, bwd, w->host, bias, pass, &fits));
        if (fits)
            return LVK_OK;
    }
    return classic_plan(m, n, p, bwd, pass);
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
    p->x_texels = lvk_shape_count(&x->shape) <= m->ctx->limits.maxTexelBufferElements;
    p->y_texels = batch * mo * out[0] * out[1] <= m->ctx->limits.maxTexelBufferElements;
    LVK_CHECK(conv_pick(m, n, p, false));
    LVK_CHECK(conv_pick(m, n, p, true));

    struct lvk_value *y = lvk_out(m, n, 0);
    y->dtype = LVK_DTYPE_F32;
    y->shape = x->shape;
    y->shape.d[1] = mo;
    for (int i = 0; i < ns; i++)
        y->shape.d[2 + i] = out[o + i];
    return LVK_OK;
}

/* ---- record ------------------------------------------------------------------------- */

/* aux, laid out like a kernel's output, viewed as the kernel reads it where
 * it stores: 4 columns per texel where it stores 4 at a time. */
static struct lvk_bind store_view(const struct lvk_buf *aux, bool v4)
{
    return lvk_texel_bind(aux, v4 ? VK_FORMAT_R32G32B32A32_SFLOAT : VK_FORMAT_R32_SFLOAT, true);
}

/* A classic or texel pass. binds: out, in, weights, bias and the residual
 * (classic forward only); for the texel kernel, aux: what it reads where
 * it stores (laid out like out), the activation output whose gradient mask
 * the backward applies (TX_MASK) or the Add operand the forward adds
 * (TX_RESID), else NULL. */
static lvk_status direct_record(struct lvk_model *m, const struct lvk_node *n,
                                const struct conv_pass *pass, struct lvk_bind *binds,
                                uint32_t nbinds, const struct lvk_buf *aux, struct lvk_cmd *cmd,
                                const char *label)
{
    if (pass->kind == CONV_TEXEL) {
        binds[1].format = pass->in_format;
        binds[2] = (struct lvk_bind)LVK_B(n->extra[pass->wslot]);
        /* Without aux, the binding is there but unread. */
        const uint32_t *s = pass->spec;
        binds[3] = aux ? store_view(aux, s[TX_PW] % 4 + s[TX_OW] % 4 == 0) : binds[1];
        binds[4] = (struct lvk_bind)LVK_B(m->ctrl);
        nbinds = 5;
    }
    const struct lvk_pipeline *pipe = lvk_pipeline_get(m->ctx, pass->shader, pass->spec,
                                                       pass->nspec);
    if (!pipe)
        return LVK_ERR_VULKAN;
    const bool texel = pass->kind == CONV_TEXEL;
    return lvk_cmd_dispatch(cmd, pipe, binds, nbinds, texel ? pass->dims : NULL,
                            texel ? sizeof pass->dims : 0, pass->groups[0], pass->groups[1],
                            pass->groups[2], label);
}

/* What conv2d_texel.comp does on storing (bias, activation, mask, add):
 * the output transform's part of a winograd pass's flags. */
#define WINO_EPILOGUE (TX_BIAS | TX_BWD | TX_ACT | TX_MASK | TX_STORE | TX_RESID)

/* A winograd pass's three dispatches, from in into out; aux as for the
 * texel kernel. */
static lvk_status wino_record(struct lvk_model *m, const struct lvk_node *n,
                              const struct conv_pass *pass, const struct lvk_buf *out,
                              const struct lvk_buf *in, const struct lvk_buf *aux,
                              struct lvk_cmd *cmd, const char *label)
{
    struct lvk_ctx *ctx = m->ctx;
    const uint32_t *s = pass->spec;
    const uint32_t ci = pass->dims[0], co = pass->dims[1], nc = pass->wino.nc;
    const uint32_t t = pass->wino.th * pass->wino.tw;
    /* conv2d_wino_in.comp's XV4. */
    const struct lvk_bind inv = {
        .buf = in,
        .format = pass->wino.w % 4 == 0 ? VK_FORMAT_R32G32B32A32_SFLOAT : VK_FORMAT_R32_SFLOAT};
    const uint32_t in_spec[] = {pass->wino.h, pass->wino.w, pass->wino.tw, t, pass->wino.nt, nc,
                                (uint32_t)pass->wino.pt, (uint32_t)pass->wino.pl};
    const struct lvk_pipeline *pipe =
        lvk_pipeline_get(ctx, LVK_SHADER_CONV2D_WINO_IN, in_spec, LVK_ARRAY_LEN(in_spec));
    if (!pipe)
        return LVK_ERR_VULKAN;
    LVK_CHECK(lvk_dispatch_1d(cmd, pipe, LVK_BINDS(LVK_B(m->scratch[0]), inv), 2, &ci, sizeof ci,
                              (uint64_t)ci * nc / 4, "conv2d_wino_in"));

    /* The products: the texel pass the plan holds, without the epilogue
     * (nor its activation bounds: one pipeline for layers differing in them). */
    struct conv_pass prod = *pass;
    prod.kind = CONV_TEXEL;
    prod.spec[TX_FLAGS] &= ~(uint32_t)WINO_EPILOGUE;
    prod.spec[TX_ACT_LO] = prod.spec[TX_ACT_HI] = 0;
    struct lvk_bind pb[5] = {LVK_B(m->scratch[1]), LVK_B(m->scratch[0])};
    LVK_CHECK(direct_record(m, n, &prod, pb, 2, NULL, cmd, label));

    const uint32_t out_spec[] = {pass->wino.oh, pass->wino.ow, pass->wino.tw, t, pass->wino.nt,
                                 nc, s[TX_FLAGS] & WINO_EPILOGUE, s[TX_ACT_LO], s[TX_ACT_HI]};
    pipe = lvk_pipeline_get(ctx, LVK_SHADER_CONV2D_WINO_OUT, out_spec, LVK_ARRAY_LEN(out_spec));
    if (!pipe)
        return LVK_ERR_VULKAN;
    const struct lvk_bind mv = {.buf = m->scratch[1], .format = VK_FORMAT_R32G32B32A32_SFLOAT};
    struct lvk_bind bias = mv;   /* bound, read only with a bias */
    if (pass->wino.bslot >= 0)
        bias = (struct lvk_bind){.buf = n->extra[pass->wino.bslot], .format = VK_FORMAT_R32_SFLOAT};
    return lvk_dispatch_1d(cmd, pipe,
                           LVK_BINDS(LVK_B(out), mv, bias,
                                     aux ? store_view(aux, pass->wino.ow % 4 == 0) : mv,
                                     LVK_B(m->ctrl)),
                           5, &co, sizeof co, (uint64_t)co * nc / 4, "conv2d_wino_out");
}

/* Records a pass of either direction: binds and aux as direct_record's. */
static lvk_status conv_record(struct lvk_model *m, const struct lvk_node *n,
                              const struct conv_pass *pass, struct lvk_bind *binds,
                              uint32_t nbinds, const struct lvk_buf *aux, struct lvk_cmd *cmd,
                              const char *label)
{
    if (pass->kind == CONV_WINOGRAD)
        return wino_record(m, n, pass, binds[0].buf, binds[1].buf, aux, cmd, label);
    return direct_record(m, n, pass, binds, nbinds, aux, cmd, label);
}

static lvk_status conv_fwd(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd)
{
    const struct conv_priv *p = n->priv;
    const struct lvk_value *x = lvk_in(m, n, 0), *w = lvk_in(m, n, 1), *b = lvk_in(m, n, 2);
    /* With a fused Add (graph.h), the convolution adds the Add's other
     * operand and writes the sum; with a fused activation, it then clamps
     * and writes the activation's output. Its own output is never stored.
     * Fusion is decided after prepare() planned the pass, so the constants
     * go in here. */
    struct conv_pass pass = p->fwd;
    const bool texel = pass.kind != CONV_CLASSIC;   /* both take TX_* flags */
    const struct lvk_value *y = lvk_out(m, n, 0), *resid = NULL;
    if (n->sum >= 0) {
        const struct lvk_node *a = &m->nodes[n->sum];
        resid = lvk_in(m, a, a->inputs[0] == n->outputs[0] ? 1 : 0);
        y = lvk_out(m, a, 0);
        if (texel)
            pass.spec[TX_FLAGS] |= TX_RESID;
        else
            pass.spec[CL_HAS_RESID] = 1;
    }
    if (n->act >= 0) {
        const struct lvk_node *a = &m->nodes[n->act];
        float lo, hi;
        LVK_ASSERT(a->def->clamp_bounds(a, &lo, &hi));
        y = lvk_out(m, a, 0);
        if (texel)
            pass.spec[TX_FLAGS] |= TX_ACT;
        else
            pass.spec[CL_HAS_ACT] = 1;
        pass.spec[texel ? TX_ACT_LO : CL_ACT_LO] = lvk_spec_f32(lo);
        pass.spec[texel ? TX_ACT_HI : CL_ACT_HI] = lvk_spec_f32(hi);
    }
    /* Unread bindings get a bound buffer in their place: the weights for
     * no bias, the input for no residual. */
    struct lvk_bind binds[5] = {LVK_B(y->buf), LVK_B(x->buf), LVK_B(w->buf),
                                LVK_B(b ? b->buf : w->buf), LVK_B(resid ? resid->buf : x->buf)};
    return conv_record(m, n, &pass, binds, 5, resid ? resid->buf : NULL, cmd, "conv2d_fwd");
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
    /* With the backward of the activation before it (graph.h: bwd_fused),
     * the kernel masks what it stores, into the activation input's gradient
     * (what lvk_graph_input_grad names); x, the activation's output, has none. */
    struct conv_pass pass = p->bwd;
    const struct lvk_buf *dx = lvk_graph_input_grad(m, n, 0);
    struct lvk_buf *mask = NULL;
    float lo, hi;
    if (lvk_graph_grad_mask(m, n->inputs[0], &lo, &hi)) {
        mask = x->buf;
        const bool classic = pass.kind == CONV_CLASSIC;
        if (classic)
            pass.spec[CL_BWD_MASK] = 1;
        else
            pass.spec[TX_FLAGS] |= TX_MASK;
        pass.spec[classic ? CL_BWD_ACT_LO : TX_ACT_LO] = lvk_spec_f32(lo);
        pass.spec[classic ? CL_BWD_ACT_HI : TX_ACT_HI] = lvk_spec_f32(hi);
    }
    if (!dx || !y->grad)
        return LVK_OK;
    /* A residual Add's gradient folded in (graph.h: bwd_sum): added to dx
     * as it is stored, read like the mask (which it never meets). */
    const struct lvk_buf *aux = mask;
    if (n->bwd_sum >= 0) {
        LVK_ASSERT(!mask && pass.kind != CONV_CLASSIC);
        aux = lvk_out(m, &m->nodes[n->bwd_sum], 0)->grad;
        pass.spec[TX_FLAGS] |= TX_RESID;
    }
    if (lvk_graph_grad_stores(n, 0)) {
        if (pass.kind != CONV_CLASSIC)
            pass.spec[TX_FLAGS] |= TX_STORE;
        else
            pass.spec[CL_BWD_STORE] = 1;
    }
    /* The classic kernel reads the mask's x and the ReLU gradient mode
     * where it masks; else x is bound but unread. */
    struct lvk_bind binds[5] = {LVK_B(dx), LVK_B(y->grad), LVK_B(w->buf), LVK_B(x->buf),
                                LVK_B(m->ctrl)};
    return conv_record(m, n, &pass, binds, pass.kind == CONV_CLASSIC ? 5 : 3, aux, cmd,
                       "conv2d_bwd_data");
}

/* The texel kernels read weights and bias from the node's re-laid-out
 * copies; only the classic kernel reads them as given. */
static bool conv_reads_input(const struct lvk_node *n, int k)
{
    const struct conv_priv *p = n->priv;
    if (k == 0 || !p)
        return true;
    return p->fwd.kind == CONV_CLASSIC || (k == 1 && p->bwd.kind == CONV_CLASSIC);
}

/* Every kernel's backward can apply an activation's gradient mask to the
 * gradient of x; the texel kernel reads x through a texel view. */
static bool conv_fuses_clamp_bwd(const struct lvk_node *n, int k)
{
    const struct conv_priv *p = n->priv;
    return k == 0 && p && (p->bwd.kind == CONV_CLASSIC || p->x_texels);
}

/* Both kernels can add a fused Add's other operand as they store; the
 * texel kernel reads it through a texel view. */
static bool conv_fuses_sum(const struct lvk_node *n)
{
    const struct conv_priv *p = n->priv;
    return p && (p->fwd.kind == CONV_CLASSIC || p->y_texels);
}

/* The texel and Winograd kernels' backward can add a residual's gradient
 * as they store x's (TX_RESID), reading it through a texel view laid out
 * like x. */
static bool conv_fuses_sum_bwd(const struct lvk_node *n)
{
    const struct conv_priv *p = n->priv;
    return p && p->bwd.kind != CONV_CLASSIC && p->x_texels;
}

/* Both kernels write each element of x's gradient once. */
static bool conv_stores_grad(const struct lvk_node *n, int k)
{
    (void)n;
    return k == 0;
}

static const struct lvk_op_def conv_def = {
    .op_type = "Conv",
    .prepare = conv_prepare,
    .fwd = conv_fwd,
    .bwd = conv_bwd,
    .fuses_clamp = true,
    .fuses_clamp_bwd = conv_fuses_clamp_bwd,
    .fuses_sum = conv_fuses_sum,
    .fuses_sum_bwd = conv_fuses_sum_bwd,
    .reads_input = conv_reads_input,
    .stores_grad = conv_stores_grad,
};

const struct lvk_op_def *const lvk_ops_conv[] = {&conv_def, NULL};
