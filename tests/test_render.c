/* End to end feature visualization on the demo model that ships in
 * assets/demo: class renders are classified as their class, channel renders
 * drive their channel far above its value on the initial noise, negative
 * renders push it down, and the same seed gives the same bytes. The judge
 * is the model itself, run independently on the rendered images. A render
 * that computes only its objective's channels equals the one that computes
 * them all. A profiled render totals its step's device time by node. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "io/lvk_io.h"

#include "lucidvk/render.h"
#include "nn/graph.h"
#include "nn/onnx.h"
#include "support/cli.h"
#include "support/demo.h"
#include "support/op_harness.h"

#define DEMO LVK_DEMO_MODEL

static void test_class_renders(void **state)
{
    char text[512] = "";
    for (int k = 0; k < 10; k++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "%sclass(%d)@%d", k ? " + " : "", k, k);
    struct lvk_render_opts o = {.objective = text, .steps = 256, .seed = 3, .redirect_steps = -1};
    struct lvk_render_result r;
    lvk_test_demo_render(&o, &r);
    assert_int_equal(r.batch, 10);
    assert_int_equal(r.channels, 1);
    struct lvk_tensor_info t;
    float *logits = lvk_test_demo_run(r.images, 10, r.height, r.width, "logits", &t);
    assert_int_equal(t.shape[1], 10);
    int good = 0;
    for (int k = 0; k < 10; k++) {
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < 10; j++)
            mx = fmax(mx, logits[k * 10 + j]);
        for (int j = 0; j < 10; j++)
            sum += exp(logits[k * 10 + j] - mx);
        double p = exp(logits[k * 10 + k] - mx) / sum;
        printf("class %d: probability %.4f\n", k, p);
        good += p > 0.9;
    }
    assert_true(good >= 9);
    free(logits);
    lvk_render_result_free(&r);
}

/* Mean of channel c of conv3_relu on one image. */
static double channel_mean(const float *image, int h, int w, int c)
{
    struct lvk_tensor_info t;
    float *a = lvk_test_demo_run(image, 1, h, w, "conv3_relu", &t);
    double m;
    lvk_test_channel_means(a, &t, c, &m);
    free(a);
    return m;
}

static void test_channel_and_negative(void **state)
{
    const int c = 7;
    char text[128];
    snprintf(text, sizeof text, "channel(conv3_relu, %d)", c);
    struct lvk_render_opts o = {.objective = text, .steps = 128, .seed = 1, .redirect_steps = -1};
    struct lvk_render_result pos, neg;
    lvk_test_demo_render(&o, &pos);
    o.negative = 1;
    lvk_test_demo_render(&o, &neg);
    double before = channel_mean(pos.initial, pos.height, pos.width, c);
    double after = channel_mean(pos.images, pos.height, pos.width, c);
    double after_neg = channel_mean(neg.images, neg.height, neg.width, c);
    printf("conv3_relu channel %d: noise %.4f, rendered %.4f, negative %.4f\n", c, before, after, after_neg);
    assert_true(after > 4 * before);
    assert_true(after_neg < before);
    lvk_render_result_free(&pos);
    lvk_render_result_free(&neg);
}

/* device_bytes: at least the network's arena (loaded separately as the
 * render loads it), at most that plus a generous allowance for the
 * render's own buffers (parameters, gradients, Adam's moments, images:
 * 64 floats per pixel), and every byte is given back afterwards. */
static void test_device_bytes(void **state)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    const VkDeviceSize before = ctx->device_bytes;
    struct lvk_render_opts o = {.objective = "channel(conv3_relu, 7)", .steps = 2, .seed = 1,
                                .redirect_steps = -1};
    struct lvk_render_result r;
    lvk_test_demo_render(&o, &r);
    assert_int_equal(ctx->device_bytes, before);

    /* As the render loads it: conv3 cut to its channel 7. */
    const char *outputs[] = {"conv3_relu"};
    struct lvk_model_opts mo = {.batch = r.batch, .height = r.net_height, .width = r.net_width,
                                .outputs = outputs, .noutputs = 1, .gradients = 1, .fast_conv = 1};
    lvk_model_t *m = NULL;
    if (lvk_onnx_load_graph(ctx, DEMO, &mo, NULL, 0, &m) != LVK_OK)
        fail_msg("%s", lvk_last_error());
    int v = lvk_graph_find(m, "conv3_relu");
    assert_true(lvk_graph_narrow_channels(m, v, 7, 8, &v, 1));
    if (lvk_graph_finalize(m, &mo) != LVK_OK)
        fail_msg("%s", lvk_last_error());
    const uint64_t arena = m->arena.bytes, pixels = (uint64_t)r.batch * r.channels * r.height * r.width;
    lvk_model_destroy(m);
    printf("render device memory %llu bytes, network arena %llu\n", (unsigned long long)r.device_bytes,
           (unsigned long long)arena);
    assert_true(r.device_bytes >= arena);
    assert_true(r.device_bytes <= arena + 64 * 4 * pixels + 65536);
    lvk_render_result_free(&r);
}

/* A channel objective on a convolution's output computes only the channels
 * it reads (lvk_graph_narrow_channels): the render is the one made with
 * every channel computed (LVK_NO_NARROW=1), in less memory. */
static void test_narrowed_render(void **state)
{
    struct lvk_render_opts o = {.objective = "channel(conv3_relu, 5)@0 + channel(conv3_relu, 9)@1",
                                .steps = 16, .seed = 4, .redirect_steps = -1};
    struct lvk_render_result cut, whole;
    lvk_test_demo_render(&o, &cut);
    setenv("LVK_NO_NARROW", "1", 1);
    lvk_test_demo_render(&o, &whole);
    unsetenv("LVK_NO_NARROW");
    assert_int_equal(cut.batch, 2);
    const size_t n = (size_t)cut.batch * cut.channels * cut.height * cut.width;
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs(cut.images[i] - whole.images[i]));
    printf("narrowed render: device memory %llu against %llu bytes, images within %.2g, "
           "objective %.7g against %.7g\n", (unsigned long long)cut.device_bytes,
           (unsigned long long)whole.device_bytes, worst, cut.curve[o.steps - 1],
           whole.curve[o.steps - 1]);
    assert_true(worst < 1e-5);
    /* Every step's value is read, on every device (the objective's values
     * live in mapped memory). */
    for (int s = 0; s < o.steps; s++) {
        assert_false(isnan(cut.curve[s]) || isnan(whole.curve[s]));
        assert_true(fabs(cut.curve[s] - whole.curve[s]) <= 1e-5 * fmax(1.0, fabs(whole.curve[s])));
    }
    assert_true(cut.device_bytes < whole.device_bytes);
    lvk_render_result_free(&cut);
    lvk_render_result_free(&whole);
}

static void test_same_seed_same_bytes(void **state)
{
    struct lvk_render_opts o = {.objective = "channel(conv2_relu, 3) - 0.05*tv", .steps = 24,
                                .seed = 9, .batch = 2, .redirect_steps = -1};
    struct lvk_render_result a, b, c;
    lvk_test_demo_render(&o, &a);
    lvk_test_demo_render(&o, &b);
    o.seed = 10;
    lvk_test_demo_render(&o, &c);
    size_t n = (size_t)a.batch * a.channels * a.height * a.width * sizeof(float);
    assert_memory_equal(a.images, b.images, n);
    assert_memory_not_equal(a.images, c.images, n);
    lvk_render_result_free(&a);
    lvk_render_result_free(&b);
    lvk_render_result_free(&c);
}

static void test_bad_objectives(void **state)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    struct {
        const char *text;
        lvk_status st;
        const char *needle;
    } cases[] = {
        {"channel(conv9_relu, 0)", LVK_ERR_NOT_FOUND, "conv9_relu"},
        {"channel(conv1_relu, 32)", LVK_ERR_INVALID_ARG, "32"},
        {"channel(conv1_relu 3)", LVK_ERR_INVALID_ARG, "column"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct lvk_render_opts o = {.objective = cases[i].text, .steps = 2, .pre = lvk_test_demo_preproc()};
        struct lvk_render_result r;
        lvk_status st = lvk_render(ctx, DEMO, &o, &r);
        if (st != cases[i].st || !strstr(lvk_last_error(), cases[i].needle))
            fail_msg("%s: %s: %s", cases[i].text, lvk_status_str(st), lvk_last_error());
    }
    lvk_test_assert_no_validation();
}

/* The test context, for tests of device timings (skipped without). */
static struct lvk_ctx *timed_ctx(void)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    if (!ctx->timestamps) {
        printf("skipped: the device has no timestamps\n");
        skip();
    }
    return ctx;
}

/* Is a kernel label one of the network's ops (as opposed to the image
 * parameterization's, the objective's or the optimizer's)? */
static bool network_kernel(const char *label)
{
    return !strncmp(label, "conv2d_", 7) || !strncmp(label, "maxpool_", 8);
}

/* By node (LVK_RENDER_PROFILE_NODES) a step's device time is totalled by
 * node and kernel: the same dispatches as by kernel alone, each network
 * dispatch under a node of the model (a convolution's forward and input
 * gradient among them), the parameterization's outside any. */
static void test_profile_by_node(void **state)
{
    struct lvk_ctx *ctx = timed_ctx();
    struct lvk_render_opts o = {.objective = "channel(conv3_relu, 7)", .steps = 2, .seed = 1,
                                .redirect_steps = -1, .profile = LVK_RENDER_PROFILE_KERNELS};
    struct lvk_render_result by_kernel, by_node;
    lvk_test_demo_render(&o, &by_kernel);
    o.profile = LVK_RENDER_PROFILE_NODES;
    lvk_test_demo_render(&o, &by_node);

    lvk_model_t *m = NULL;
    const char *outputs[] = {"conv3_relu"};
    struct lvk_model_opts mo = {.batch = 1, .outputs = outputs, .noutputs = 1};
    if (lvk_onnx_load_graph(ctx, DEMO, &mo, NULL, 0, &m) != LVK_OK)
        fail_msg("%s", lvk_last_error());

    assert_true(by_kernel.nphases > 0);
    int total = 0;
    for (int i = 0; i < by_kernel.nphases; i++) {
        const struct lvk_render_phase *k = &by_kernel.phases[i];
        assert_string_equal(k->node, "");
        int dispatches = 0;
        for (int j = 0; j < by_node.nphases; j++)
            if (!strcmp(by_node.phases[j].label, k->label))
                dispatches += by_node.phases[j].dispatches;
        assert_int_equal(dispatches, k->dispatches);
        total += k->dispatches;
    }
    bool conv_fwd = false, conv_bwd = false, fft_outside = false;
    for (int j = 0; j < by_node.nphases; j++) {
        const struct lvk_render_phase *p = &by_node.phases[j];
        total -= p->dispatches;
        if (!p->node[0]) {
            if (network_kernel(p->label))
                fail_msg("network kernel '%s' outside any node", p->label);
            fft_outside |= !strncmp(p->label, "fft_", 4);
            continue;
        }
        const struct lvk_node *n = NULL;
        for (int i = 0; i < m->nnodes && !n; i++)
            if (!strcmp(m->nodes[i].name, p->node))
                n = &m->nodes[i];
        if (!n)
            fail_msg("phase '%s' names node '%s', which the model lacks", p->label, p->node);
        if (!strcmp(n->op_type, "Conv")) {
            conv_fwd |= !strcmp(p->label, "conv2d_fwd");
            conv_bwd |= !strcmp(p->label, "conv2d_bwd_data");
        }
    }
    assert_true(conv_fwd && conv_bwd && fft_outside);
    assert_int_equal(total, 0);
    lvk_model_destroy(m);
    lvk_render_result_free(&by_kernel);
    lvk_render_result_free(&by_node);
}

/* `lucidvk render --profile` prints the step's costliest (node, kernel)
 * pairs and writes them all to --json, largest first, the network's under
 * its nodes. */
static void test_cli_profile(void **state)
{
    timed_ctx();
#define OUT LVK_BINARY_DIR "/test_output/render_profile"
    mkdir(LVK_BINARY_DIR "/test_output", 0755);
    mkdir(OUT, 0755);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "render '%s' -l conv3_relu -c 7 --steps 2 --profile --json %s -o %s",
             DEMO, OUT "/r.json", OUT "/r.png");
    assert_int_equal(lvk_test_cli("", cmd, OUT "/out.txt", OUT "/err.txt"), 0);
    uint8_t *text = NULL;
    size_t len = 0;
    assert_int_equal(lvk_read_file(OUT "/out.txt", &text, &len), LVK_OK);
    assert_non_null(memmem(text, len, "device time of the last step", 28));
    free(text);

    struct lvk_json *j = NULL;
    assert_int_equal(lvk_json_read(OUT "/r.json", &j), LVK_OK);
    const struct lvk_json *total = lvk_json_get(j, "profile_step_ms"), *prof = lvk_json_get(j, "profile");
    assert_non_null(total);
    assert_non_null(prof);
    assert_true(prof->count > 0);
    double last = INFINITY;
    bool conv3_fwd = false;
    for (const struct lvk_json *e = prof->child; e; e = e->next) {
        const struct lvk_json *ms = lvk_json_get(e, "ms"), *node = lvk_json_get(e, "node"),
                              *kernel = lvk_json_get(e, "kernel"),
                              *dispatches = lvk_json_get(e, "dispatches");
        assert_true(ms && node && kernel && dispatches);
        assert_true(ms->number <= last && ms->number <= total->number);
        last = ms->number;
        assert_true(dispatches->number >= 1);
        assert_true(node->string[0] || !network_kernel(kernel->string));
        conv3_fwd |= !strcmp(node->string, "conv3") && !strcmp(kernel->string, "conv2d_fwd");
    }
    assert_true(conv3_fwd);
    lvk_json_free(j);
#undef OUT
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_seed_same_bytes),
        cmocka_unit_test(test_device_bytes),
        cmocka_unit_test(test_narrowed_render),
        cmocka_unit_test(test_bad_objectives),
        cmocka_unit_test(test_profile_by_node),
        cmocka_unit_test(test_cli_profile),
        cmocka_unit_test(test_channel_and_negative),
        cmocka_unit_test(test_class_renders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
