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
 * only per-step read-back is the objective value, and only when progress
 * is reported. */
#include <math.h>
#include <string.h>
#include <time.h>

#include "lucidvk/render.h"
#include "nn/onnx.h"
#include "optvis/adam.h"
#include "optvis/image_ops.h"
#include "optvis/objective.h"
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
    struct lvk_spectral *spec;
    struct lvk_transform *tf;
    struct lvk_adam *adam;
    /* raw, raw_grad, img, img_grad, t_img, t_img_grad, and for the pixel
     * parameterisation param and param_grad. */
    struct lvk_buf bufs[8];
    struct lvk_arena arena;
    struct lvk_buf *raw, *raw_grad, *img, *img_grad, *t_img, *t_img_grad, *param, *param_grad;
    uint32_t nparams;
    struct lvk_value *input;
    struct lvk_cmd *step;   /* one optimisation step */
    struct lvk_cmd *show;   /* param -> img only, for snapshots and the result */
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
    lvk_adam_destroy(r->adam);
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
        struct lvk_model_opts mo = {.batch = r->B, .gradients = 1};
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

static lvk_status setup(struct render *r, const char *path)
{
    struct lvk_render_opts *o = &r->o;
    LVK_CHECK(lvk_objective_parse(o->objective, &r->obj));
    int bound = 0;
    for (int i = 0; i < r->obj->nterms; i++)
        bound = LVK_MAX(bound, r->obj->terms[i].batch + 1);
    r->B = o->batch > 0 ? o->batch : LVK_MAX(bound, 1);
    if (bound > r->B)
        return lvk_fail(LVK_ERR_INVALID_ARG, "objective binds image %d, but the batch has %d images",
                        bound - 1, r->B);
    r->H = r->W = o->size > 0 ? o->size : 128;
    LVK_CHECK(load_model(r, path));
    int iv = lvk_graph_find(r->m, lvk_model_input_name(r->m));
    r->input = &r->m->values[iv];
    if (r->input->shape.ndim != 4 || (r->input->shape.d[1] != 1 && r->input->shape.d[1] != 3))
        return lvk_fail(LVK_ERR_UNSUPPORTED, "%s: input '%s' is not an image (N, 1 or 3, H, W)", path,
                        r->input->name);
    r->C = (int)r->input->shape.d[1];
    r->Hn = (int)r->input->shape.d[2];
    r->Wn = (int)r->input->shape.d[3];
    if (o->size <= 0 && r->Hn < r->H) {
        /* Small models (28 px) render at their own size by default. */
        r->H = r->Hn;
        r->W = r->Wn;
    }
    LVK_CHECK(lvk_objective_bind(r->obj, r->m, r->B, r->C, r->Hn, r->Wn, &r->og));

    /* Parameterisation and image buffers. */
    VkDeviceSize img_bytes = (VkDeviceSize)r->B * r->C * r->H * r->W * 4;
    VkDeviceSize t_bytes = (VkDeviceSize)r->B * r->C * r->Hn * r->Wn * 4;
    VkDeviceSize raw_bytes = img_bytes;
    if (o->param == LVK_PARAM_FFT) {
        LVK_CHECK(lvk_spectral_create(r->ctx, (uint32_t)r->B, (uint32_t)r->C, (uint32_t)r->H,
                                      (uint32_t)r->W, o->decay_power, o->seed, &r->spec));
        raw_bytes = r->spec->raw_bytes;
        r->nparams = r->spec->nparams;
    } else {
        r->nparams = (uint32_t)(img_bytes / 4);
    }
    VkDeviceSize sizes[8] = {raw_bytes, raw_bytes, img_bytes, img_bytes, t_bytes, t_bytes,
                             o->param == LVK_PARAM_PIXEL ? img_bytes : 4,
                             o->param == LVK_PARAM_PIXEL ? img_bytes : 4};
    LVK_CHECK(lvk_arena_create(r->ctx, sizes, 8, r->bufs, &r->arena));
    r->raw = &r->bufs[0];
    r->raw_grad = &r->bufs[1];
    r->img = &r->bufs[2];
    r->img_grad = &r->bufs[3];
    r->t_img = &r->bufs[4];
    r->t_img_grad = &r->bufs[5];
    if (o->param == LVK_PARAM_FFT) {
        r->param = r->spec->param;
        r->param_grad = r->spec->param_grad;
    } else {
        /* Pixels are the raw image itself: N(0, 0.01^2) before the sigmoid. */
        r->param = r->raw = &r->bufs[6];
        r->param_grad = r->raw_grad = &r->bufs[7];
        float *init = malloc((size_t)r->nparams * sizeof *init);
        if (!init)
            return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
        lvk_spectral_init_params(init, r->nparams, o->seed, 0.01);
        lvk_status st = lvk_buf_upload(r->ctx, r->param, 0, init, img_bytes);
        free(init);
        LVK_CHECK(st);
    }

    struct lvk_transform_cfg cfg;
    if (o->no_transforms)
        lvk_transform_cfg_none(&cfg);
    else
        lvk_transform_cfg_standard(&cfg);
    lvk_transform_cfg_scale_pixels(&cfg, LVK_MIN(r->H, r->W));
    struct lvk_affine_dims dims = {r->B, r->C, r->H, r->W, r->Hn, r->Wn};
    LVK_CHECK(lvk_transform_create(r->ctx, &cfg, &dims, o->seed ^ 0x5eed, &r->tf));
    struct lvk_adam_opts ao;
    lvk_adam_opts_default(&ao);
    ao.lr = o->lr;
    LVK_CHECK(lvk_adam_create(r->ctx, r->nparams, &ao, &r->adam));
    return LVK_OK;
}

static lvk_status record_image(struct render *r, struct lvk_cmd *cmd)
{
    if (r->spec)
        LVK_CHECK(lvk_spectral_record_fwd(cmd, r->spec, r->raw));
    return lvk_colour_fwd(cmd, r->img, r->raw, r->B, r->C, r->H, r->W, !r->o.no_decorrelate);
}

static lvk_status record_step(struct render *r, struct lvk_cmd *cmd)
{
    float sign = r->o.negative ? -1.0f : 1.0f;
    LVK_CHECK(record_image(r, cmd));
    LVK_CHECK(lvk_transform_record_fwd(cmd, r->tf, r->t_img, r->img));
    LVK_CHECK(lvk_prep_fwd(cmd, r->input->buf, r->t_img, &r->o.pre, r->B, r->C, r->Hn, r->Wn));
    LVK_CHECK(lvk_graph_record_forward(r->m, cmd));

    lvk_graph_record_zero_grads(r->m, cmd);
    const struct lvk_buf *zero[] = {r->t_img_grad, r->img_grad, r->raw_grad, r->param_grad};
    for (size_t i = 0; i < LVK_ARRAY_LEN(zero); i++)
        if (i < 3 || zero[i] != zero[2])
            lvk_cmd_fill(cmd, zero[i], 0, VK_WHOLE_SIZE, 0);
    LVK_CHECK(lvk_objective_record_seed(cmd, r->og, sign));
    LVK_CHECK(lvk_graph_record_backward(r->m, cmd));

    LVK_CHECK(lvk_prep_bwd(cmd, r->t_img_grad, r->input->grad, &r->o.pre, r->B, r->C, r->Hn, r->Wn));
    LVK_CHECK(lvk_objective_record_image(cmd, r->og, r->t_img, r->t_img_grad, sign));
    LVK_CHECK(lvk_transform_record_bwd(cmd, r->tf, r->img_grad, r->t_img_grad));
    LVK_CHECK(lvk_colour_bwd(cmd, r->raw_grad, r->img_grad, r->img, r->B, r->C, r->H, r->W,
                             !r->o.no_decorrelate));
    if (r->spec)
        LVK_CHECK(lvk_spectral_record_bwd(cmd, r->spec, r->raw_grad));
    /* Adam ascends the gradient of sign * objective. */
    return lvk_adam_record(cmd, r->adam, r->param, r->param_grad);
}

static lvk_status record_all(struct render *r)
{
    LVK_CHECK(lvk_cmd_create(r->ctx, false, &r->step));
    LVK_CHECK(lvk_cmd_begin(r->step));
    LVK_CHECK(record_step(r, r->step));
    LVK_CHECK(lvk_cmd_end(r->step));
    LVK_CHECK(lvk_cmd_create(r->ctx, false, &r->show));
    LVK_CHECK(lvk_cmd_begin(r->show));
    LVK_CHECK(record_image(r, r->show));
    return lvk_cmd_end(r->show);
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
    if (!r.o.objective || !*r.o.objective)
        return lvk_fail(LVK_ERR_INVALID_ARG, "no objective given");
    if (r.o.steps <= 0)
        r.o.steps = 512;
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
        if (st == LVK_OK) st = lvk_adam_set_step(r.adam, step);
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
        /* The value of the images before this step's update. Where reading
         * it is a copy from device memory rather than from mapped memory,
         * only every 16th step and what progress shows are read. */
        bool report = r.o.progress && r.o.progress_every > 0 &&
                      (step % r.o.progress_every == 0 || step == r.o.steps);
        out->curve[step - 1] = NAN;
        if (!(ctx->unified_memory || report || step == 1 || step == r.o.steps || step % 16 == 0))
            continue;
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
        if (report)
            r.o.progress(r.o.user, step, r.o.steps, out->curve[step - 1]);
    }
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
