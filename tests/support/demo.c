/* Demo-model helpers shared by the render tests (see demo.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/demo.h"
#include "support/op_harness.h"

struct lvk_preproc lvk_test_demo_preproc(void)
{
    struct lvk_preproc p;
    int found;
    lvk_preproc_default(&p);
    assert_int_equal(lvk_preproc_load_sidecar(LVK_DEMO_MODEL, &p, &found), LVK_OK);
    assert_true(found);
    return p;
}

void lvk_test_demo_render(struct lvk_render_opts *o, struct lvk_render_result *r)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    o->pre = lvk_test_demo_preproc();
    if (lvk_render(ctx, LVK_DEMO_MODEL, o, r) != LVK_OK)
        fail_msg("%s", lvk_last_error());
    lvk_test_assert_no_validation();
}

void lvk_test_demo_units(const struct lvk_render_result *r, const float *images,
                         const struct lvk_grid_neuron *units, int nunits, double *neuron, double *channel)
{
    struct lvk_preproc p = lvk_test_demo_preproc();
    if (lvk_units_measure(lvk_test_ctx(), LVK_DEMO_MODEL, &p, images, r->batch, r->channels, r->height,
                          r->width, r->net_height, r->net_width, units, nunits, neuron, channel) != LVK_OK)
        fail_msg("%s", lvk_last_error());
}

float *lvk_test_demo_run(const float *images, int n, int h, int w, const char *tensor,
                         struct lvk_tensor_info *info)
{
    const char *outs[] = {tensor};
    struct lvk_model_opts mo = {.batch = n, .height = h, .width = w, .outputs = outs, .noutputs = 1};
    lvk_model_t *m;
    if (lvk_model_load(lvk_test_ctx(), LVK_DEMO_MODEL, &mo, &m) != LVK_OK)
        fail_msg("%s", lvk_last_error());
    struct lvk_preproc p = lvk_test_demo_preproc();
    size_t count = (size_t)n * h * w;
    float *x = malloc(count * sizeof *x);
    memcpy(x, images, count * sizeof *x);
    for (int b = 0; b < n; b++)
        lvk_preproc_apply(&p, x + (size_t)b * h * w, 1, h, w);
    assert_int_equal(lvk_model_set_input(m, lvk_model_input_name(m), x, count), LVK_OK);
    assert_int_equal(lvk_model_forward(m), LVK_OK);
    assert_int_equal(lvk_model_tensor_find(m, tensor, info), LVK_OK);
    size_t total = 1;
    for (int d = 0; d < info->ndim; d++)
        total *= (size_t)info->shape[d];
    float *out = malloc(total * sizeof *out);
    assert_int_equal(lvk_model_read(m, tensor, out, total), LVK_OK);
    info->name = tensor; /* the model's own string dies with it */
    info->op_type = "";
    free(x);
    lvk_model_destroy(m);
    return out;
}

void lvk_test_channel_means(const float *act, const struct lvk_tensor_info *info, int c, double *out)
{
    size_t hw = 1;
    for (int d = 2; d < info->ndim; d++)
        hw *= (size_t)info->shape[d];
    size_t per = (size_t)info->shape[1] * hw;
    for (int64_t b = 0; b < info->shape[0]; b++) {
        double s = 0;
        for (size_t i = 0; i < hw; i++)
            s += act[(size_t)b * per + (size_t)c * hw + i];
        out[b] = s / (double)hw;
    }
}
