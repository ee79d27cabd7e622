/* Spatial pooling of NCHW tensors: MaxPool, AveragePool, GlobalMaxPool,
 * GlobalAveragePool.
 *
 * Every form runs as one 2-D pooling of [planes, h, w] (planes = N * C):
 * 1-D pools are 2-D pools with h = 1, and global pools are one window over
 * the spatial dims flattened into h (w = 1), so two shader pairs serve all
 * four ops at any spatial rank they accept.
 *
 * MaxPool's forward saves each window's arg-max (an extra buffer, one int per
 * output); backward is a gather over that, so ties go wherever forward sent
 * them (the first maximum in window order). AveragePool's window divisors
 * are computed here once, as per-row and per-column counts (the divisor of a
 * window is separable), following onnxruntime and PyTorch: count_include_pad
 * counts padding up to the far explicit pad, never the extra area ceil_mode
 * adds past it.
 *
 * Not supported: 3-D pools, MaxPool's Indices output when something reads it,
 * AveragePool dilations (opset 19). */
#include <string.h>

#include "nn/graph.h"
#include "nn/ops_common.h"

enum pool_kind { POOL_MAX, POOL_AVG, POOL_GLOBAL_MAX, POOL_GLOBAL_AVG };

struct pool {
    int64_t planes, h, w, oh, ow;
    int64_t kh, kw, sh, sw;
    int64_t ph, pw, ph1, pw1;   /* begin and end padding */
    int64_t dh, dw;
    int slot;                   /* extra buffer: arg-max (max) or divisors (avg) */
};

/* Output size and padding along one dim, by auto_pad, with ceil_mode's
 * extra window dropped when it would start in the far padding (PyTorch,
 * onnxruntime). Returns the output size, or 0 if the window does not fit. */
static int64_t pool_dim(const char *auto_pad, int64_t in, int64_t k, int64_t s, int64_t d,
                        bool ceil_mode, int64_t *p0, int64_t *p1)
{
    int64_t ext = (k - 1) * d + 1;
    if (!strcmp(auto_pad, "SAME_UPPER") || !strcmp(auto_pad, "SAME_LOWER")) {
        int64_t out = LVK_CEIL_DIV(in, s);
        int64_t total = LVK_MAX((out - 1) * s + ext - in, 0);
        /* SAME_UPPER puts the odd pad at the end, SAME_LOWER at the start. */
        *p0 = !strcmp(auto_pad, "SAME_UPPER") ? total / 2 : total - total / 2;
        *p1 = total - *p0;
        return out;
    }
    if (!strcmp(auto_pad, "VALID"))
        *p0 = *p1 = 0;
    int64_t span = in + *p0 + *p1 - ext;
    if (span < 0)
        return 0;
    if (!ceil_mode)
        return span / s + 1;
    int64_t out = LVK_CEIL_DIV(span, s) + 1;
    if ((out - 1) * s >= in + *p0)
        out--;
    return out;
}

/* Reads kernel_shape, strides, pads and dilations of a MaxPool/AveragePool
 * on a 3-D or 4-D input into p (h-dims are 1 for a 1-D pool). */
static lvk_status pool_attrs(struct lvk_model *m, struct lvk_node *n, enum pool_kind kind,
                             const struct lvk_shape *xs, struct pool *p)
{
    int64_t k[3], s[3] = {1, 1, 1}, pads[6] = {0}, d[3] = {1, 1, 1};
    int nk = lvk_attr_ints(n, "kernel_shape", k, 3);
    if (nk < 0)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "%s", lvk_last_error());
    if (nk == 0)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "kernel_shape is required");
    if (nk == 3)
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED, "3-D pooling is not supported");
    if (nk != xs->ndim - 2)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "kernel_shape has %d dims for a %d-D input",
                             nk, xs->ndim);
    int ns = lvk_attr_ints(n, "strides", s, 3);
    int np = lvk_attr_ints(n, "pads", pads, 6);
    int nd = lvk_attr_ints(n, "dilations", d, 3);
    if (ns < 0 || np < 0 || nd < 0)
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "%s", lvk_last_error());
    if ((ns && ns != nk) || (np && np != 2 * nk) || (nd && nd != nk))
        return lvk_node_fail(m, n, LVK_ERR_FORMAT,
                             "strides/pads/dilations do not match a %d-D kernel", nk);
    if (kind == POOL_AVG && nd && (d[0] != 1 || (nk == 2 && d[1] != 1)))
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED, "AveragePool dilations are not supported");

    const char *auto_pad = lvk_attr_str(n, "auto_pad", "NOTSET");
    if (strcmp(auto_pad, "NOTSET") && strcmp(auto_pad, "VALID") &&
        strcmp(auto_pad, "SAME_UPPER") && strcmp(auto_pad, "SAME_LOWER"))
        return lvk_node_fail(m, n, LVK_ERR_FORMAT, "unknown auto_pad '%s'", auto_pad);
    bool ceil_mode = lvk_attr_int(n, "ceil_mode", 0) != 0;

    /* Dim j of the attributes is spatial dim j; a 1-D pool fills only w. */
    int64_t *kk[2] = {&p->kh, &p->kw}, *ss[2] = {&p->sh, &p->sw}, *dd[2] = {&p->dh, &p->dw};
    int64_t *p0[2] = {&p->ph, &p->pw}, *p1[2] = {&p->ph1, &p->pw1};
    int64_t *in[2] = {&p->h, &p->w}, *out[2] = {&p->oh, &p->ow};
    p->h = nk == 2 ? xs->d[2] : 1;
    p->w = xs->d[xs->ndim - 1];
    p->kh = p->sh = p->dh = p->oh = 1;
    p->ph = p->ph1 = 0;
    for (int j = 0; j < nk; j++) {
        int a = j + 2 - nk;
        *kk[a] = k[j];
        *ss[a] = s[j];
        *dd[a] = d[j];
        *p0[a] = pads[j];
        *p1[a] = pads[j + nk];
        if (k[j] < 1 || s[j] < 1 || d[j] < 1 || pads[j] < 0 || pads[j + nk] < 0)
            return lvk_node_fail(m, n, LVK_ERR_FORMAT, "bad kernel, stride, dilation or pad");
        /* onnxruntime's rule; it also guarantees every window overlaps the input. */
        if (strcmp(auto_pad, "NOTSET") == 0 && (pads[j] >= k[j] || pads[j + nk] >= k[j]))
            return lvk_node_fail(m, n, LVK_ERR_FORMAT, "pads must be smaller than the kernel");
        *out[a] = pool_dim(auto_pad, *in[a], k[j], s[j], d[j], ceil_mode, p0[a], p1[a]);
        if (*out[a] < 1)
            return lvk_node_fail(m, n, LVK_ERR_FORMAT, "kernel larger than the padded input");
    }
    return LVK_OK;
}

/* Per-row then per-column window sizes for AveragePool's divisor. */
static float *avg_divisors(const struct pool *p, bool count_pad)
{
    float *div = lvk_calloc((size_t)(p->oh + p->ow), sizeof *div);
    if (!div)
        return NULL;
    const int64_t nout[2] = {p->oh, p->ow}, in[2] = {p->h, p->w}, k[2] = {p->kh, p->kw};
    const int64_t s[2] = {p->sh, p->sw}, p0[2] = {p->ph, p->pw}, p1[2] = {p->ph1, p->pw1};
    float *out = div;
    for (int a = 0; a < 2; a++) {
        for (int64_t o = 0; o < nout[a]; o++) {
            int64_t lo = o * s[a] - p0[a], hi = LVK_MIN(lo + k[a], in[a] + p1[a]);
            if (!count_pad) {
                lo = LVK_MAX(lo, 0);
                hi = LVK_MIN(hi, in[a]);
            }
            *out++ = (float)(hi - lo);
        }
    }
    return div;
}

static lvk_status pool_prepare(struct lvk_model *m, struct lvk_node *n, enum pool_kind kind)
{
    const struct lvk_value *x = lvk_in(m, n, 0);
    if (!x || x->dtype != LVK_DTYPE_F32 || x->shape.ndim < 3)
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED,
                             "input must be float with shape [N, C, ...]");
    struct pool *p = lvk_calloc(1, sizeof *p);
    if (!p)
        return LVK_ERR_HOST_OOM;
    n->priv = p;
    p->planes = x->shape.d[0] * x->shape.d[1];
    p->dh = p->dw = p->sh = p->sw = 1;

    struct lvk_value *y = lvk_out(m, n, 0);
    y->dtype = LVK_DTYPE_F32;
    y->shape = x->shape;
    if (kind == POOL_GLOBAL_MAX || kind == POOL_GLOBAL_AVG) {
        p->h = p->kh = lvk_shape_count(&x->shape) / LVK_MAX(p->planes, 1);
        p->w = p->kw = p->oh = p->ow = 1;
        for (int i = 2; i < y->shape.ndim; i++)
            y->shape.d[i] = 1;
    } else {
        LVK_CHECK(pool_attrs(m, n, kind, &x->shape, p));
        if (x->shape.ndim == 4)
            y->shape.d[2] = p->oh;
        y->shape.d[y->shape.ndim - 1] = p->ow;
    }
    if (p->planes * p->h * p->w > INT32_MAX || p->planes * p->oh * p->ow > INT32_MAX)
        return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED, "tensor too large for 32-bit indexing");

    if (kind == POOL_MAX || kind == POOL_GLOBAL_MAX) {
        /* The optional Indices output would need int64 device tensors. */
        if (n->noutputs > 1 && n->outputs[1] >= 0) {
            if (lvk_graph_value_read(m, n->outputs[1]))
                return lvk_node_fail(m, n, LVK_ERR_UNSUPPORTED,
                                     "MaxPool's Indices output is not supported");
            struct lvk_value *ind = lvk_out(m, n, 1);
            ind->dtype = LVK_DTYPE_I64;
            ind->shape = y->shape;
        }
        p->slot = lvk_node_extra(n, (VkDeviceSize)(p->planes * p->oh * p->ow) * 4, NULL);
    } else {
        bool count_pad = kind == POOL_AVG && lvk_attr_int(n, "count_include_pad", 0) != 0;
        float *div = avg_divisors(p, count_pad);
        if (!div)
            return LVK_ERR_HOST_OOM;
        p->slot = lvk_node_extra(n, (VkDeviceSize)(p->oh + p->ow) * sizeof *div, div);
    }
    return LVK_OK;
}

static lvk_status maxpool_prepare(struct lvk_model *m, struct lvk_node *n)
{
    return pool_prepare(m, n, POOL_MAX);
}
static lvk_status avgpool_prepare(struct lvk_model *m, struct lvk_node *n)
{
    return pool_prepare(m, n, POOL_AVG);
}
static lvk_status global_maxpool_prepare(struct lvk_model *m, struct lvk_node *n)
{
    return pool_prepare(m, n, POOL_GLOBAL_MAX);
}
static lvk_status global_avgpool_prepare(struct lvk_model *m, struct lvk_node *n)
{
    return pool_prepare(m, n, POOL_GLOBAL_AVG);
}

/* Specialization constants of shaders/{max,avg}pool_{fwd,bwd}.comp, in
 * constant_id order; avgpool takes the first 11 (no dilation), maxpool
 * adds its FLAGS, the bounds of a fused gradient mask (MP_*), and its
 * block of windows (common/maxpool.glsl: MR, MC). */
enum { MP_ROWS = 1, MP_XV4 = 2, MP_MASK = 4, MP_STORE = 8 };

static const struct lvk_pipeline *pool_pipeline(struct lvk_model *m, const struct pool *p,
                                                enum lvk_shader_id id, uint32_t nspec,
                                                uint32_t flags, float lo, float hi,
                                                const uint32_t block[2])
{
    const uint32_t spec[18] = {
        (uint32_t)p->planes, (uint32_t)p->h, (uint32_t)p->w, (uint32_t)p->oh, (uint32_t)p->ow,
        (uint32_t)p->kh, (uint32_t)p->kw, (uint32_t)p->sh, (uint32_t)p->sw,
        (uint32_t)p->ph, (uint32_t)p->pw, (uint32_t)p->dh, (uint32_t)p->dw,
        flags, lvk_spec_f32(lo), lvk_spec_f32(hi), block ? block[0] : 1, block ? block[1] : 1,
    };
    return lvk_pipeline_get(m->ctx, id, spec, nspec);
}

/* The texel variants read through texel buffers, see lvk_prefer_texel. */
static bool maxpool_texel(const struct lvk_model *m, const struct pool *p)
{
    uint64_t in = (uint64_t)p->planes * p->h * p->w, out = (uint64_t)p->planes * p->oh * p->ow;
    return lvk_prefer_texel(m->ctx, LVK_MAX(in, out));
}

/* Each invocation handles 4 elements; where they lie in one row they share
 * the loads of the windows they overlap (common/maxpool.glsl): GoogLeNet's
 * nine MaxPools in a 128-px batch-8 render step, forward 12.2 -> 7.8 ms
 * (profiled, best of 6 alternating runs). On lavapipe, where fetches set
 * the pace, an invocation takes 2 rows of them, which share the rows their
 * windows overlap in: 8.7 -> 7.4 ms (the least of 6 profiled renders each,
 * alternating; 4 rows 7.3). */
static lvk_status maxpool_fwd(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd)
{
    const struct pool *p = n->priv;
    const bool texel = maxpool_texel(m, p);
    uint32_t flags = p->ow % 4 == 0 ? MP_ROWS : 0;
    if (flags && p->w % 4 == 0)
        flags |= MP_XV4;
    const uint32_t block[2] = {flags && texel ? 2 : 1, 1};
    const struct lvk_pipeline *pipe =
        pool_pipeline(m, p, texel ? LVK_SHADER_MAXPOOL_FWD_TEXEL : LVK_SHADER_MAXPOOL_FWD, 18,
                      flags, 0, 0, block);
    if (!pipe)
        return LVK_ERR_VULKAN;
    struct lvk_bind x = LVK_B(lvk_in(m, n, 0)->buf);
    x.format = flags & MP_XV4 ? VK_FORMAT_R32G32B32A32_SFLOAT : VK_FORMAT_R32_SFLOAT;
    const uint64_t count = flags ? (uint64_t)p->planes * LVK_CEIL_DIV(p->oh, block[0]) * (p->ow / 4)
                                 : LVK_CEIL_DIV((uint64_t)(p->planes * p->oh * p->ow), 4);
    return lvk_dispatch_1d(cmd, pipe,
                           LVK_BINDS(LVK_B(lvk_out(m, n, 0)->buf), LVK_B(n->extra[p->slot]), x),
                           3, NULL, 0, count, "maxpool_fwd");
}

/* With the backward of the activation before it (graph.h: bwd_fused), the
 * gather masks each element of dx, which it computes whole, and writes the
 * gradient of the activation's input; x, the activation's output, has no
 * gradient of its own. Same step: backward and the stem's two Relu
 * gradients 20.5 + 5.7 -> 15.6 ms. Reading dy and the arg-maxes 4 windows
 * per texel (rgba views) was measured slower than one per fetch, 17.5
 * against 16.5 ms. */
static lvk_status maxpool_bwd(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd)
{
    const struct pool *p = n->priv;
    const struct lvk_value *x = lvk_in(m, n, 0);
    float lo = 0, hi = 0;
    const struct lvk_node *a = lvk_graph_grad_mask(m, n->inputs[0], &lo, &hi);
    const struct lvk_buf *dx = lvk_graph_input_grad(m, n, 0);
    if (!dx)
        return LVK_OK;
    const bool texel = maxpool_texel(m, p);
    /* With W % 4 == 0 an invocation takes a block of MR x MC windows'
     * strides (times 4 columns; common/maxpool.glsl), which share the
     * windows they read: 2 x 8 pixels at least on lavapipe, where fetches
     * set the pace (GoogLeNet's eight MaxPool gradients in a 128-px batch-8
     * render step, alternating 4 rounds: 17.0-27.3 -> 9.0-10.6 ms; 1 x 1
     * blocks of stride-1 pools, 4 pixels as before, took 0.6-0.7 ms each
     * where 2 x 2 take 0.4-0.5); a window's stride high and 4 wide on GPUs,
     * which want many invocations. Strides whose block would pass 64
     * pixels (registers; an unrolled body) take 4 pixels at a time. */
    const uint32_t block[2] = {texel ? (uint32_t)LVK_MAX(1, 2 / p->sh) : 1,
                               texel ? (uint32_t)LVK_MAX(1, 2 / p->sw) : 1};
    const int64_t br = block[0] * p->sh, bw = 4 * block[1] * p->sw;   /* block's pixels */
    const bool rows = p->w % 4 == 0 && br * bw <= 64;
    const uint32_t flags = (rows ? MP_ROWS : 0) | (a ? MP_MASK : 0) |
                           (lvk_graph_grad_stores(n, 0) ? MP_STORE : 0);
    const struct lvk_pipeline *pipe =
        pool_pipeline(m, p, texel ? LVK_SHADER_MAXPOOL_BWD_TEXEL : LVK_SHADER_MAXPOOL_BWD, 18,
                      flags, lo, hi, block);
    if (!pipe)
        return LVK_ERR_VULKAN;
    struct lvk_bind dy = LVK_B(lvk_out(m, n, 0)->grad), arg = LVK_B(n->extra[p->slot]);
    struct lvk_bind act = LVK_B(x->buf);   /* bound, read only with the mask */
    dy.format = VK_FORMAT_R32_SFLOAT;
    arg.format = VK_FORMAT_R32_SINT;
    act.format = VK_FORMAT_R32G32B32A32_SFLOAT;
    const uint64_t count = rows ? (uint64_t)(p->planes * LVK_CEIL_DIV(p->h, br) *
                                             LVK_CEIL_DIV(p->w, bw))
                                : LVK_CEIL_DIV((uint64_t)(p->planes * p->h * p->w), 4);
    return lvk_dispatch_1d(cmd, pipe, LVK_BINDS(LVK_B(dx), dy, arg, act, LVK_B(m->ctrl)), 5,
                           NULL, 0, count, "maxpool_bwd");
}

static lvk_status avgpool_fwd(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd)
{
    const struct pool *p = n->priv;
    const struct lvk_pipeline *pipe =
        pool_pipeline(m, p, LVK_SHADER_AVGPOOL_FWD, 11, 0, 0, 0, NULL);
    if (!pipe)
        return LVK_ERR_VULKAN;
    return lvk_dispatch_1d(cmd, pipe,
                           LVK_BINDS(LVK_B(lvk_out(m, n, 0)->buf), LVK_B(lvk_in(m, n, 0)->buf),
                                     LVK_B(n->extra[p->slot])),
                           3, NULL, 0, (uint64_t)(p->planes * p->oh * p->ow), "avgpool_fwd");
}

static lvk_status avgpool_bwd(struct lvk_model *m, struct lvk_node *n, struct lvk_cmd *cmd)
{
    const struct pool *p = n->priv;
    const struct lvk_value *x = lvk_in(m, n, 0);
    if (!x->grad)
        return LVK_OK;
    const struct lvk_pipeline *pipe =
        pool_pipeline(m, p, LVK_SHADER_AVGPOOL_BWD, 11, 0, 0, 0, NULL);
    if (!pipe)
        return LVK_ERR_VULKAN;
    return lvk_dispatch_1d(cmd, pipe,
                           LVK_BINDS(LVK_B(x->grad), LVK_B(lvk_out(m, n, 0)->grad),
                                     LVK_B(n->extra[p->slot])),
                           3, NULL, 0, (uint64_t)(p->planes * p->h * p->w), "avgpool_bwd");
}

/* The backward computes each element of x's gradient whole, once: it can
 * apply an activation's gradient mask, and store. */
static bool maxpool_grad_whole(const struct lvk_node *n, int k)
{
    (void)n;
    return k == 0;
}

static const struct lvk_op_def maxpool = {
    .op_type = "MaxPool", .prepare = maxpool_prepare, .fwd = maxpool_fwd, .bwd = maxpool_bwd,
    .fuses_clamp_bwd = maxpool_grad_whole, .stores_grad = maxpool_grad_whole,
};
static const struct lvk_op_def avgpool = {
    .op_type = "AveragePool", .prepare = avgpool_prepare, .fwd = avgpool_fwd, .bwd = avgpool_bwd,
};
static const struct lvk_op_def global_maxpool = {
    .op_type = "GlobalMaxPool", .prepare = global_maxpool_prepare,
    .fwd = maxpool_fwd, .bwd = maxpool_bwd, .fuses_clamp_bwd = maxpool_grad_whole, .stores_grad = maxpool_grad_whole,
};
static const struct lvk_op_def global_avgpool = {
    .op_type = "GlobalAveragePool", .prepare = global_avgpool_prepare,
    .fwd = avgpool_fwd, .bwd = avgpool_bwd,
};

const struct lvk_op_def *const lvk_ops_pool[] = {
    &maxpool, &avgpool, &global_maxpool, &global_avgpool, NULL,
};
