/* The render loop: Lucid's render_vis on the device.
 *
 * One optimisation step is recorded once and replayed:
 *
 *   param --spectral or pixel--> raw --colour--> img --transform--> t_img
 *         --preprocessing--> model input --network--> objective
 *   and back: model input grad --prep^T--> t_img grad (+ regularisers)
 *         --transform^T--> img grad --colour^T--> raw grad --> param grad --Adam
 *
 * What changes from step to step (the random transforms, Adam's bias
 * corrections, the ReLU gradient mode) lives in small device buffers the
 * host rewrites before each submit, so the recording never changes. The
 * only per-step read-back is the objective value, from mapped memory. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lucidvk/render.h"
#include "nn/onnx.h"
#include "optvis/adam.h"
#include "optvis/image_ops.h"
#include "optvis/objective.h"
#include "optvis/param_mix.h"
#include "optvis/spectral.h"
#include "optvis/transforms.h"

#define MAX_TENSORS 64

struct render {
    struct lvk_ctx *ctx;
    struct lvk_render_opts o;
    int B, C, H, W;         /* images */
    int Hn, Wn;             /* network input */
    struct lvk_model *m;
    struct lvk_objective *obj;
    struct lvk_objective_gpu *og;
    struct lvk_transform *tf;

    /* Sources of the images (see struct lvk_param_layout): spectral images,
     * low-resolution images upsampled, pixel images, each kind with its
     * parameters, gradient and optimiser. Without a layout, image b is
     * source b and raw aliases that source's buffer. */
    struct lvk_param_layout identity;
    const struct lvk_param_layout *layout;
    struct lvk_param_mix *mix;       /* NULL for the identity layout */
    struct lvk_spectral *spec;
    int lowres_h, lowres_w;
    struct lvk_adam *adam[3];        /* spectral, low-res, pixel parameters */

    /* fft_raw, fft_raw_grad, low, low_grad, low_up, low_up_grad, pix,
     * pix_grad, raw, raw_grad, img, img_grad, t_img, t_img_grad */
    struct lvk_buf bufs[14];
    struct lvk_arena arena;
    struct lvk_buf *fft_raw, *fft_raw_grad, *low, *low_grad, *low_up, *low_up_grad, *pix, *pix_grad;
    struct lvk_buf *raw, *raw_grad, *img, *img_grad, *t_img, *t_img_grad;
    struct lvk_value *input;
    struct lvk_cmd *step;   /* one optimisation step */
    struct lvk_cmd *show;   /* params -> img only, for snapshots and the result */
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void render_free(struct render *r)
{
    lvk_cmd_destroy(r->step);
    lvk_cmd_destroy(r->show);
    for (int i = 0; i < 3; i++)
        lvk_adam_destroy(r->adam[i]);
    lvk_param_mix_destroy(r->mix);
    lvk_transform_destroy(r->tf);
    lvk_spectral_destroy(r->spec);
    lvk_objective_gpu_destroy(r->og);
    lvk_objective_destroy(r->obj);
    if (r->arena.nmem)
        lvk_arena_destroy(r->ctx, r->bufs, (int)LVK_ARRAY_LEN(r->bufs), &r->arena);
    lvk_model_destroy(r->m);
}

/* Loads the model at the image size; where a fixed-size part refuses that
 * size, at the model's own. */
static lvk_status load_model(struct render *r, const char *path)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        struct lvk_model_opts mo = {.batch = r->B, .gradients = 1, .fast_conv = 1};
        if (attempt == 0) {
            mo.height = r->H;
            mo.width = r->W;
        }
        LVK_CHECK(lvk_onnx_load_graph(r->ctx, path, &mo, NULL, 0, &r->m));
        const char *names[MAX_TENSORS];
        int n;
        LVK_CHECK(lvk_objective_tensors(r->obj, r->m, names, MAX_TENSORS, &n));
        mo.outputs = names;
        mo.noutputs = n;
        /* A channel objective on a convolution's output computes only those
         * channels (lvk_graph_narrow_channels; LVK_NO_NARROW=1 turns that
         * off, for tests and benchmarks); on an inception block's output it
         * needs only the branches that compute them (GoogLeNet's
         * inception4d, channels 0-7: one branch of four). */
        int req[MAX_TENSORS];
        for (int k = 0; k < n; k++)
            req[k] = lvk_graph_find(r->m, names[k]);
        for (int k = 0; k < n; k++) {
            int64_t lo, hi;
            lvk_objective_channels(r->obj, r->m, names[k], &lo, &hi);
            if (lvk_env_on("LVK_NO_NARROW") ||
                !lvk_graph_narrow_channels(r->m, req[k], lo, hi, req, n))
                lvk_graph_need_channels(r->m, req[k], lo, hi);
        }
        lvk_status st = lvk_graph_finalize(r->m, &mo);
        if (st == LVK_OK)
            return LVK_OK;
        lvk_model_destroy(r->m);
        r->m = NULL;
        if (attempt == 1 || st == LVK_ERR_NOT_FOUND || st == LVK_ERR_DEVICE_OOM ||
            st == LVK_ERR_HOST_OOM)
            return st;
    }
    return LVK_OK;
}

static lvk_status setup_sources(struct render *r);

static lvk_status setup(struct render *r, const char *path)
{
    struct lvk_render_opts *o = &r->o;
    LVK_CHECK(lvk_objective_parse(o->objective, &r->obj));
    int bound = 0;
    for (int i = 0; i < r->obj->nterms; i++)
        bound = LVK_MAX(bound, r->obj->terms[i].batch + 1);
    r->B = o->batch > 0 ? o->batch : LVK_MAX(bound, 1);
    if (o->layout && o->batch <= 0)
        return lvk_fail(LVK_ERR_INVALID_ARG, "a parameter layout needs the batch size");
    if (bound > r->B)
        return lvk_fail(LVK_ERR_INVALID_ARG, "objective binds image %d, but the batch has %d images",
                        bound - 1, r->B);
    r->H = r->W = o->size > 0 ? o->size : 128;
    if (o->size <= 0) {
        /* Small models (28 px) render at their own size by default. */
        struct lvk_model *probe;
        LVK_CHECK(lvk_onnx_load_graph(r->ctx, path, NULL, NULL, 0, &probe));
        const char *in = lvk_model_input_name(probe);
        const struct lvk_value *v = in ? &probe->values[lvk_graph_find(probe, in)] : NULL;
        if (v && v->shape.ndim == 4 && v->shape.d[2] < r->H) {
            r->H = (int)v->shape.d[2];
            r->W = (int)v->shape.d[3];
        }
        lvk_model_destroy(probe);
    }
    LVK_CHECK(load_model(r, path));
    int iv = lvk_graph_find(r->m, lvk_model_input_name(r->m));
    r->input = &r->m->values[iv];
    if (r->input->shape.ndim != 4 || (r->input->shape.d[1] != 1 && r->input->shape.d[1] != 3))
        return lvk_fail(LVK_ERR_UNSUPPORTED, "%s: input '%s' is not an image (N, 1 or 3, H, W)", path,
                        r->input->name);
    r->C = (int)r->input->shape.d[1];
    r->Hn = (int)r->input->shape.d[2];
    r->Wn = (int)r->input->shape.d[3];
    LVK_CHECK(lvk_objective_bind(r->obj, r->m, r->B, r->C, r->Hn, r->Wn, &r->og));

    LVK_CHECK(setup_sources(r));

    struct lvk_transform_cfg cfg;
    if (o->no_transforms)
        lvk_transform_cfg_none(&cfg);
    else
        lvk_transform_cfg_standard(&cfg);
    lvk_transform_cfg_scale_pixels(&cfg, LVK_MIN(r->H, r->W));
    struct lvk_affine_dims dims = {r->B, r->C, r->H, r->W, r->Hn, r->Wn};
    return lvk_transform_create(r->ctx, &cfg, &dims, o->seed ^ 0x5eed, &r->tf);
}

static lvk_status init_normal(struct render *r, const struct lvk_buf *b, uint32_t n, uint64_t seed)
{
    float *init = malloc((size_t)n * sizeof *init);
    if (!init)
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    lvk_spectral_init_params(init, n, seed, 0.01);
    lvk_status st = lvk_buf_upload(r->ctx, b, 0, init, (VkDeviceSize)n * 4);
    free(init);
    return st;
}

/* Creates the sources, their optimisers and the image buffers. */
static lvk_status setup_sources(struct render *r)
{
    const struct lvk_render_opts *o = &r->o;
    r->layout = o->layout;
    if (!r->layout) {
        r->identity = (struct lvk_param_layout){
            .nfft = o->param == LVK_PARAM_FFT ? r->B : 0,
            .npixel = o->param == LVK_PARAM_PIXEL ? r->B : 0,
        };
        r->layout = &r->identity;
    }
    const struct lvk_param_layout *L = r->layout;
    int div = L->lowres_div > 0 ? L->lowres_div : 4;
    r->lowres_h = LVK_MAX(1, r->H / div);
    r->lowres_w = LVK_MAX(1, r->W / div);
    uint32_t plane = (uint32_t)(r->C * r->H * r->W);
    struct lvk_adam_opts ao;
    lvk_adam_opts_default(&ao);
    ao.lr = o->lr;

    VkDeviceSize img_bytes = (VkDeviceSize)r->B * plane * 4;
    VkDeviceSize t_bytes = (VkDeviceSize)r->B * r->C * r->Hn * r->Wn * 4;
    VkDeviceSize fft_bytes = 4, low_bytes = (VkDeviceSize)L->nlowres * r->C * r->lowres_h * r->lowres_w * 4;
    VkDeviceSize low_up_bytes = (VkDeviceSize)L->nlowres * plane * 4, pix_bytes = (VkDeviceSize)L->npixel * plane * 4;
    if (L->nfft) {
        LVK_CHECK(lvk_spectral_create(r->ctx, (uint32_t)L->nfft, (uint32_t)r->C, (uint32_t)r->H,
                                      (uint32_t)r->W, o->decay_power, o->seed, &r->spec));
        fft_bytes = r->spec->raw_bytes;
        LVK_CHECK(lvk_adam_create(r->ctx, r->spec->nparams, &ao, &r->adam[0]));
    }
    if (o->layout)
        LVK_CHECK(lvk_param_mix_create(r->ctx, o->layout, r->B, plane, &r->mix));
    VkDeviceSize sizes[14] = {fft_bytes, fft_bytes, low_bytes, low_bytes, low_up_bytes, low_up_bytes,
                              pix_bytes, pix_bytes, r->mix ? img_bytes : 4, r->mix ? img_bytes : 4,
                              img_bytes, img_bytes, t_bytes, t_bytes};
    LVK_CHECK(lvk_arena_create(r->ctx, sizes, 14, r->bufs, &r->arena));
    struct lvk_buf **named[14] = {&r->fft_raw, &r->fft_raw_grad, &r->low, &r->low_grad, &r->low_up,
                                  &r->low_up_grad, &r->pix, &r->pix_grad, &r->raw, &r->raw_grad,
                                  &r->img, &r->img_grad, &r->t_img, &r->t_img_grad};
    for (int i = 0; i < 14; i++)
        *named[i] = &r->bufs[i];
    if (!r->mix) {
        r->raw = L->nfft ? r->fft_raw : r->pix;
        r->raw_grad = L->nfft ? r->fft_raw_grad : r->pix_grad;
    }
    /* Low-res and pixel sources start as N(0, 0.01^2), as Lucid's do; their
     * seeds differ from the spectral one so the kinds are independent. */
    if (L->nlowres) {
        uint32_t n = (uint32_t)(low_bytes / 4);
        LVK_CHECK(init_normal(r, r->low, n, o->seed + 1));
        LVK_CHECK(lvk_adam_create(r->ctx, n, &ao, &r->adam[1]));
    }
    if (L->npixel) {
        uint32_t n = (uint32_t)(pix_bytes / 4);
        LVK_CHECK(init_normal(r, r->pix, n, o->seed + (L->nfft || L->nlowres ? 2 : 0)));
        LVK_CHECK(lvk_adam_create(r->ctx, n, &ao, &r->adam[2]));
    }
    return LVK_OK;
}

static lvk_status record_image(struct render *r, struct lvk_cmd *cmd)
{
    if (r->spec)
        LVK_CHECK(lvk_spectral_record_fwd(cmd, r->spec, r->fft_raw));
    if (r->layout->nlowres)
        LVK_CHECK(lvk_upsample_fwd(cmd, r->low_up, r->low, r->layout->nlowres * r->C, r->lowres_h,
                                   r->lowres_w, r->H, r->W));
    if (r->mix)
        LVK_CHECK(lvk_param_mix_fwd(cmd, r->mix, r->raw, r->fft_raw, r->low_up, r->pix));
    return lvk_colour_fwd(cmd, r->img, r->raw, r->B, r->C, r->H, r->W, !r->o.no_decorrelate);
}

static lvk_status record_step(struct render *r, struct lvk_cmd *cmd)
{
    float sign = r->o.negative ? -1.0f : 1.0f;
    LVK_CHECK(record_image(r, cmd));
    LVK_CHECK(lvk_transform_record_fwd(cmd, r->tf, r->t_img, r->img));
    LVK_CHECK(lvk_prep_fwd(cmd, r->input->buf, r->t_img, &r->o.pre, r->B, r->C, r->Hn, r->Wn));
    LVK_CHECK(lvk_graph_record_forward(r->m, cmd));

    /* Every gradient this step accumulates into starts at zero (the fills,
     * the objective's too, share one barrier). */
    lvk_graph_record_zero_grads(r->m, cmd);
    const struct lvk_buf *zero[] = {r->t_img_grad, r->img_grad, r->raw_grad, r->fft_raw_grad,
                                    r->low_grad, r->low_up_grad, r->pix_grad,
                                    r->spec ? r->spec->param_grad : NULL};
    for (size_t i = 0; i < LVK_ARRAY_LEN(zero); i++)
        if (zero[i])
            lvk_cmd_fill(cmd, zero[i], 0, VK_WHOLE_SIZE, 0);
    LVK_CHECK(lvk_objective_record_seed(cmd, r->og, sign));
    LVK_CHECK(lvk_graph_record_backward(r->m, cmd));

    LVK_CHECK(lvk_prep_bwd(cmd, r->t_img_grad, r->input->grad, &r->o.pre, r->B, r->C, r->Hn, r->Wn));
    LVK_CHECK(lvk_objective_record_image(cmd, r->og, r->t_img, r->t_img_grad, sign));
    LVK_CHECK(lvk_transform_record_bwd(cmd, r->tf, r->img_grad, r->t_img_grad));
    LVK_CHECK(lvk_colour_bwd(cmd, r->raw_grad, r->img_grad, r->img, r->B, r->C, r->H, r->W,
                             !r->o.no_decorrelate));
    if (r->mix)
        LVK_CHECK(lvk_param_mix_bwd(cmd, r->mix, r->fft_raw_grad, r->low_up_grad, r->pix_grad, r->raw_grad));
    if (r->layout->nlowres)
        LVK_CHECK(lvk_upsample_bwd(cmd, r->low_grad, r->low_up_grad, r->layout->nlowres * r->C,
                                   r->lowres_h, r->lowres_w, r->H, r->W));
    if (r->spec)
        LVK_CHECK(lvk_spectral_record_bwd(cmd, r->spec, r->fft_raw_grad));
    /* Adam ascends the gradient of sign * objective. */
    if (r->adam[0])
        LVK_CHECK(lvk_adam_record(cmd, r->adam[0], r->spec->param, r->spec->param_grad));
    if (r->adam[1])
        LVK_CHECK(lvk_adam_record(cmd, r->adam[1], r->low, r->low_grad));
    if (r->adam[2])
        LVK_CHECK(lvk_adam_record(cmd, r->adam[2], r->pix, r->pix_grad));
    return LVK_OK;
}

static lvk_status record_step_cb(struct lvk_cmd *cmd, void *r) { return record_step(r, cmd); }
static lvk_status record_image_cb(struct lvk_cmd *cmd, void *r) { return record_image(r, cmd); }

/* Through lvk_cmd_record: the step's pipelines are built in parallel. */
static lvk_status record_all(struct render *r)
{
    LVK_CHECK(lvk_cmd_create(r->ctx, r->o.profile != 0, &r->step));
    LVK_CHECK(lvk_cmd_record(r->step, record_step_cb, r));
    LVK_CHECK(lvk_cmd_create(r->ctx, false, &r->show));
    return lvk_cmd_record(r->show, record_image_cb, r);
}

static int by_ms(const void *a, const void *b)
{
    double x = ((const struct lvk_render_phase *)a)->ms, y = ((const struct lvk_render_phase *)b)->ms;
    return (x < y) - (x > y);
}

/* Totals by label (and node, with LVK_RENDER_PROFILE_NODES) of the last
 * submitted step; the node names are copied, as the model goes before the
 * result. Pairs past the table's last slot share that slot, "(others)". */
static lvk_status profile(struct render *r, struct lvk_render_result *out)
{
    double *ms = malloc(r->step->max_queries * sizeof *ms);
    if (!ms)
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    uint32_t n = 0;
    lvk_status st = lvk_cmd_timings(r->step, ms, &n);
    for (uint32_t i = 0; st == LVK_OK && i < n; i++) {
        const char *label = r->step->labels[i + 1];
        char node[LVK_RENDER_NODE_MAX] = "";
        if (r->o.profile == LVK_RENDER_PROFILE_NODES && r->step->scopes[i + 1])
            snprintf(node, sizeof node, "%s", r->step->scopes[i + 1]);
        int k = 0;
        while (k < out->nphases && (strcmp(out->phases[k].label, label) != 0 ||
                                    strcmp(out->phases[k].node, node) != 0))
            k++;
        if (k == out->nphases && k == LVK_RENDER_MAX_PHASES - 1) {
            label = "(others)";
            node[0] = '\0';
        }
        if (k == LVK_RENDER_MAX_PHASES) {
            k--;
        } else if (k == out->nphases) {
            out->phases[out->nphases] = (struct lvk_render_phase){.label = label};
            memcpy(out->phases[out->nphases++].node, node, sizeof node);
        }
        out->phases[k].dispatches++;
        out->phases[k].ms += ms[i];
        out->step_ms += ms[i];
    }
    free(ms);
    qsort(out->phases, (size_t)out->nphases, sizeof out->phases[0], by_ms);
    return st;
}

static lvk_status read_images(struct render *r, float *out)
{
    LVK_CHECK(lvk_cmd_submit(r->show));
    return lvk_buf_download(r->ctx, r->img, 0, out, (VkDeviceSize)r->B * r->C * r->H * r->W * 4);
}

static double batch_mean(const float *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    return s / n;
}

lvk_status lvk_render(lvk_ctx_t *ctx, const char *model_path, const struct lvk_render_opts *opts,
                      struct lvk_render_result *out)
{
    memset(out, 0, sizeof *out);
    struct render r = {.ctx = ctx, .o = *opts};
    const VkDeviceSize base = ctx->device_bytes;
    ctx->device_peak = base;
    if (!r.o.objective || !*r.o.objective)
        return lvk_fail(LVK_ERR_INVALID_ARG, "no objective given");
    if (r.o.steps <= 0)
        r.o.steps = LVK_RENDER_DEFAULT_STEPS;
    if (r.o.lr <= 0)
        r.o.lr = 0.05f;
    if (r.o.decay_power <= 0)
        r.o.decay_power = 1.0f;
    if (r.o.redirect_steps < 0)
        r.o.redirect_steps = 16;
    double t0 = now();
    lvk_status st = setup(&r, model_path);
    if (st == LVK_OK)
        st = record_all(&r);
    size_t nimg = (size_t)r.B * r.C * r.H * r.W;
    float *values = NULL;
    if (st == LVK_OK) {
        out->images = malloc(nimg * sizeof *out->images);
        out->initial = malloc(nimg * sizeof *out->initial);
        out->curve = calloc((size_t)r.o.steps, sizeof *out->curve);
        out->value_start = calloc((size_t)r.B, sizeof *out->value_start);
        out->value_end = calloc((size_t)r.B, sizeof *out->value_end);
        values = calloc((size_t)r.B, sizeof *values);
        if (!out->images || !out->initial || !out->curve || !out->value_start || !out->value_end || !values)
            st = lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    }
    if (st == LVK_OK)
        st = read_images(&r, out->initial);
    double t1 = now();
    for (int step = 1; st == LVK_OK && step <= r.o.steps; step++) {
        if (step == 1 && r.o.redirect_steps > 0)
            st = lvk_graph_set_relu_mode(r.m, LVK_RELU_GRAD_REDIRECT);
        else if (step == r.o.redirect_steps + 1)
            st = lvk_graph_set_relu_mode(r.m, LVK_RELU_GRAD_NORMAL);
        if (st == LVK_OK) st = lvk_transform_next(r.tf);
        for (int i = 0; i < 3 && st == LVK_OK; i++)
            if (r.adam[i])
                st = lvk_adam_set_step(r.adam[i], step);
        if (st == LVK_OK) st = lvk_cmd_submit(r.step);
        if (st != LVK_OK)
            break;
        if (r.o.snapshot && r.o.snapshot_every > 0 && step % r.o.snapshot_every == 0 &&
            step != r.o.steps) {
            st = read_images(&r, out->images);
            if (st != LVK_OK)
                break;
            r.o.snapshot(r.o.user, step, out->images, r.B, r.C, r.H, r.W);
        }
        /* The value of the images before this step's update: a copy out
         * of mapped memory (lvk_objective_gpu.values). */
        st = lvk_objective_read_values(r.og, values);
        if (st != LVK_OK)
            break;
        out->curve[step - 1] = batch_mean(values, r.B);
        if (step == 1)
            for (int b = 0; b < r.B; b++)
                out->value_start[b] = values[b];
        if (step == r.o.steps)
            for (int b = 0; b < r.B; b++)
                out->value_end[b] = values[b];
        if (r.o.progress && r.o.progress_every > 0 &&
            (step % r.o.progress_every == 0 || step == r.o.steps))
            r.o.progress(r.o.user, step, r.o.steps, out->curve[step - 1]);
    }
    if (st == LVK_OK && r.o.profile)
        st = profile(&r, out);
    if (st == LVK_OK)
        st = read_images(&r, out->images);
    free(values);
    out->batch = r.B;
    out->channels = r.C;
    out->height = r.H;
    out->width = r.W;
    out->net_height = r.Hn;
    out->net_width = r.Wn;
    out->steps = r.o.steps;
    out->setup_seconds = t1 - t0;
    out->seconds = now() - t1;
    out->device_bytes = ctx->device_peak - base;
    render_free(&r);
    if (st != LVK_OK)
        lvk_render_result_free(out);
    return st;
}

void lvk_render_result_free(struct lvk_render_result *r)
{
    free(r->images);
    free(r->initial);
    free(r->curve);
    free(r->value_start);
    free(r->value_end);
    memset(r, 0, sizeof *r);
}
