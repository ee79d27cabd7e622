/* Composite parameterizations (see param_mix.h): the weighted sums that
 * build aligned and shared images, with gradient stops, as two small
 * tables on the device and two gather shaders. */
#include <string.h>

#include "nn/ops_common.h"
#include "optvis/param_mix.h"

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

lvk_status lvk_param_mix_create(struct lvk_ctx *ctx, const struct lvk_param_layout *L, int batch,
                                uint32_t plane, struct lvk_param_mix **out)
{
    *out = NULL;
    int S = L->nfft + L->nlowres + L->npixel;
    if (batch < 1 || S < 1 || L->nfft < 0 || L->nlowres < 0 || L->npixel < 0 || !L->nterms || !L->terms)
        return lvk_fail(LVK_ERR_INVALID_ARG, "parameter layout: %d images from %d sources", batch, S);
    const int T = LVK_LAYOUT_MAX_TERMS;
    size_t fwd_words = (size_t)batch * (1 + 2 * T);
    int npass = 0;
    for (int b = 0; b < batch; b++) {
        if (L->nterms[b] < 1 || L->nterms[b] > T)
            return lvk_fail(LVK_ERR_INVALID_ARG, "parameter layout: image %d has %d terms (1 to %d)", b,
                            L->nterms[b], T);
        for (int k = 0; k < L->nterms[b]; k++) {
            const struct lvk_layout_term *t = &L->terms[b * T + k];
            if (t->src < 0 || t->src >= S)
                return lvk_fail(LVK_ERR_INVALID_ARG, "parameter layout: image %d uses source %d of %d",
                                b, t->src, S);
            npass += t->grad != 0;
        }
    }
    size_t bwd_words = (size_t)S + 1 + 2 * (size_t)npass;
    uint32_t *fwd = lvk_calloc(fwd_words, 4), *bwd = lvk_calloc(bwd_words, 4);
    struct lvk_param_mix *mx = lvk_calloc(1, sizeof *mx);
    lvk_status st = fwd && bwd && mx ? LVK_OK : LVK_ERR_HOST_OOM;
    if (st == LVK_OK) {
        for (int b = 0; b < batch; b++) {
            uint32_t *row = fwd + (size_t)b * (1 + 2 * T);
            row[0] = (uint32_t)L->nterms[b];
            for (int k = 0; k < L->nterms[b]; k++) {
                row[1 + 2 * k] = (uint32_t)L->terms[b * T + k].src;
                row[2 + 2 * k] = fbits(L->terms[b * T + k].w);
            }
        }
        /* Counting sort of the passing terms by source. */
        for (int b = 0; b < batch; b++)
            for (int k = 0; k < L->nterms[b]; k++)
                if (L->terms[b * T + k].grad)
                    bwd[L->terms[b * T + k].src + 1]++;
        for (int s = 0; s < S; s++)
            bwd[s + 1] += bwd[s];
        uint32_t *fill = lvk_calloc((size_t)S, 4);
        if (!fill) {
            st = LVK_ERR_HOST_OOM;
        } else {
            for (int b = 0; b < batch; b++)
                for (int k = 0; k < L->nterms[b]; k++) {
                    const struct lvk_layout_term *t = &L->terms[b * T + k];
                    if (!t->grad)
                        continue;
                    uint32_t e = (uint32_t)S + 1 + 2 * (bwd[t->src] + fill[t->src]++);
                    bwd[e] = (uint32_t)b;
                    bwd[e + 1] = fbits(t->w);
                }
            free(fill);
        }
    }
    if (st == LVK_OK) {
        mx->ctx = ctx;
        mx->batch = batch;
        mx->nfft = L->nfft;
        mx->nlowres = L->nlowres;
        mx->npixel = L->npixel;
        mx->plane = plane;
        mx->scale = L->raw_scale > 0 ? L->raw_scale : 1.0f;
        VkDeviceSize sizes[2] = {fwd_words * 4, bwd_words * 4};
        st = lvk_arena_create(ctx, sizes, 2, mx->bufs, &mx->arena);
        if (st == LVK_OK)
            st = lvk_buf_upload(ctx, &mx->bufs[0], 0, fwd, sizes[0]);
        if (st == LVK_OK)
            st = lvk_buf_upload(ctx, &mx->bufs[1], 0, bwd, sizes[1]);
    }
    free(fwd);
    free(bwd);
    if (st != LVK_OK) {
        lvk_param_mix_destroy(mx);
        return st;
    }
    *out = mx;
    return LVK_OK;
}

void lvk_param_mix_destroy(struct lvk_param_mix *mx)
{
    if (!mx)
        return;
    lvk_arena_destroy(mx->ctx, mx->bufs, 2, &mx->arena);
    free(mx);
}

lvk_status lvk_param_mix_fwd(struct lvk_cmd *cmd, const struct lvk_param_mix *mx,
                             const struct lvk_buf *raw, const struct lvk_buf *fft,
                             const struct lvk_buf *low, const struct lvk_buf *pix)
{
    uint32_t spec[6] = {(uint32_t)mx->batch, mx->plane, (uint32_t)mx->nfft, (uint32_t)mx->nlowres,
                        lvk_spec_f32(mx->scale), LVK_LAYOUT_MAX_TERMS};
    const struct lvk_pipeline *p = lvk_pipeline_get(cmd->ctx, LVK_SHADER_PARAM_MIX_FWD, spec, 6);
    if (!p)
        return LVK_ERR_VULKAN;
    return lvk_dispatch_1d(cmd, p, LVK_BINDS(LVK_B(raw), LVK_B(fft), LVK_B(low), LVK_B(pix), LVK_B(&mx->bufs[0])),
                           5, NULL, 0, (uint64_t)mx->batch * mx->plane, "param_mix_fwd");
}

lvk_status lvk_param_mix_bwd(struct lvk_cmd *cmd, const struct lvk_param_mix *mx,
                             const struct lvk_buf *fft_grad, const struct lvk_buf *low_grad,
                             const struct lvk_buf *pix_grad, const struct lvk_buf *raw_grad)
{
    uint32_t S = (uint32_t)(mx->nfft + mx->nlowres + mx->npixel);
    uint32_t spec[5] = {S, mx->plane, (uint32_t)mx->nfft, (uint32_t)mx->nlowres, lvk_spec_f32(mx->scale)};
    const struct lvk_pipeline *p = lvk_pipeline_get(cmd->ctx, LVK_SHADER_PARAM_MIX_BWD, spec, 5);
    if (!p)
        return LVK_ERR_VULKAN;
    return lvk_dispatch_1d(cmd, p,
                           LVK_BINDS(LVK_B(fft_grad), LVK_B(low_grad), LVK_B(pix_grad), LVK_B(raw_grad),
                                     LVK_B(&mx->bufs[1])),
                           5, NULL, 0, (uint64_t)S * mx->plane, "param_mix_bwd");
}
