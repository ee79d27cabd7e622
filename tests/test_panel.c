/* 'lucidvk render --panel' and '--zoom' (src/cli/cmd_render.c) end to end
 * on the demo model: the command is run as a user runs it. --zoom: the
 * enlarged image must be the --out-dir image with every pixel a block.
 * --panel: its panel PNG is read
 * back and checked cell by cell against an independent computation:
 *   - the same render through the library (same objective, seed and
 *     settings; renders are deterministic) gives the initial and final
 *     images, which must be the "initial" and "optimized" cells (and the
 *     --out-dir images, which ties the library run to the command's);
 *   - a separate model forward of each of those images (tests/support/demo.c)
 *     gives the layer's activations; the mean over the row's channels,
 *     upsampled by nearest neighbour, scaled to the range shared by both
 *     maps of the row and drawn in gray (level floor(256 t)), must be the
 *     "map(initial)" and "map(optimized)" cells, within one gray level;
 *   - which layer and channels a row shows follows the objective: -l/-c,
 *     a group() term, terms bound to different images, and --panel-layer;
 *   - a panel that cannot be drawn fails with one message and no files. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/labelled_grid.h"
#include "io/lvk_io.h"
#include "lucidvk/render.h"
#include "lvk_util.h"
#include "support/cli.h"
#include "support/demo.h"
#include "support/op_harness.h"

#define OUT LVK_BINARY_DIR "/test_output/panel"
#define STEPS 16
#define SEED 2

/* Runs the command line; returns its exit status. */
static int run(const char *args)
{
    char cmd[4096], log[1100];
    snprintf(cmd, sizeof cmd, "render '%s' %s", LVK_DEMO_MODEL, args);
    snprintf(log, sizeof log, "%s/log.txt", OUT);
    return lvk_test_cli("", cmd, log, log);
}

/* 8-bit level a PNG stores for v (lvk_png_write: clamp, round). */
static int level(double v)
{
    return (int)lround(fmin(fmax(v, 0.0), 1.0) * 255.0);
}

struct row {
    const char *layer;
    int channels[4];
    int nchannels;        /* 0: every channel of the layer */
    const char *label;    /* as the command labels the row */
};

struct panel_case {
    const char *args;      /* what the command is given besides model, steps, seed, -o */
    const char *objective; /* the same render as the library is asked for it */
    int batch;
    struct row rows[2];
};

/* The mean map over r's channels of image [1, H, W] (H = W = 28): a
 * malloc'd [mh, mw] in double. */
static double *mean_map(const float *image, int H, int W, const struct row *r, int *mh, int *mw)
{
    struct lvk_tensor_info t;
    float *act = lvk_test_demo_run(image, 1, H, W, r->layer, &t);
    assert_int_equal(t.ndim, 4);
    const int K = (int)t.shape[1], n = r->nchannels ? r->nchannels : K;
    *mh = (int)t.shape[2];
    *mw = (int)t.shape[3];
    const size_t plane = (size_t)*mh * *mw;
    double *map = calloc(plane, sizeof *map);
    for (int j = 0; j < n; j++) {
        const float *a = act + (size_t)(r->nchannels ? r->channels[j] : j) * plane;
        for (size_t i = 0; i < plane; i++)
            map[i] += a[i] / (double)n;
    }
    free(act);
    return map;
}

static void check_case(const struct panel_case *pc)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    char args[2048], path[1200];
    snprintf(args, sizeof args, "%s --steps %d --seed %d -o '%s/r.png' --out-dir '%s/imgs' --panel", pc->args,
             STEPS, SEED, OUT, OUT);
    if (run(args) != 0)
        fail_msg("lucidvk render %s failed (see %s/log.txt)", args, OUT);

    struct lvk_render_opts o = {.objective = pc->objective, .steps = STEPS, .seed = SEED,
                                .redirect_steps = -1};
    struct lvk_render_result res;
    lvk_test_demo_render(&o, &res);
    assert_int_equal(res.batch, pc->batch);
    assert_int_equal(res.channels, 1);
    const int H = res.height, W = res.width;
    const size_t one = (size_t)H * W;

    /* The command rendered what the library did. */
    for (int b = 0; b < pc->batch; b++) {
        struct lvk_image im;
        snprintf(path, sizeof path, "%s/imgs/%d.png", OUT, b);
        assert_int_equal(lvk_png_read(path, 1, &im), LVK_OK);
        assert_int_equal(im.w, W);
        assert_int_equal(im.h, H);
        for (size_t i = 0; i < one; i++)
            if (abs(level(im.data[i]) - level(res.images[b * one + i])) > 1)
                fail_msg("image %d pixel %zu: the command wrote %d, the library rendered %d", b, i,
                         level(im.data[i]), level(res.images[b * one + i]));
        lvk_image_free(&im);
    }

    /* Where the cells are: the labelled grid the command draws. */
    static const char *const cols[4] = {"initial", "optimized", "map(initial)", "map(optimized)"};
    const char *labels[2] = {pc->rows[0].label, pc->rows[1].label};
    const int zoom = (64 + W - 1) / W;
    struct lvk_labelled_grid g = {.rows = pc->batch, .cols = 4, .c = 3, .h = H, .w = W,
                                  .row_labels = labels, .col_labels = cols, .gutter = 4, .zoom = zoom,
                                  .bg = 1.0f};
    struct lvk_grid_geometry geo;
    assert_int_equal(lvk_labelled_grid_geometry(&g, &geo), LVK_OK);
    struct lvk_image panel;
    snprintf(path, sizeof path, "%s/r_panel.png", OUT);
    assert_int_equal(lvk_png_read(path, 3, &panel), LVK_OK);
    assert_int_equal(panel.w, geo.width);
    assert_int_equal(panel.h, geo.height);
    const size_t pplane = (size_t)panel.w * panel.h;

    for (int b = 0; b < pc->batch; b++) {
        const struct row *r = &pc->rows[b];
        const float *img[2] = {res.initial + b * one, res.images + b * one};
        int mh, mw;
        double *maps[2];
        for (int k = 0; k < 2; k++)
            maps[k] = mean_map(img[k], H, W, r, &mh, &mw);
        double lo = INFINITY, hi = -INFINITY;
        for (int k = 0; k < 2; k++)
            for (int i = 0; i < mh * mw; i++) {
                lo = fmin(lo, maps[k][i]);
                hi = fmax(hi, maps[k][i]);
            }
        assert_true(hi > lo); /* a flat pair of maps would test nothing */
        int worst[4] = {0};
        for (int col = 0; col < 4; col++)
            for (int y = 0; y < H * zoom; y++)
                for (int x = 0; x < W * zoom; x++) {
                    const int sy = y / zoom, sx = x / zoom;
                    int want;
                    if (col < 2) {
                        want = level(img[col][sy * W + sx]);
                    } else {
                        double v = maps[col - 2][(sy * mh / H) * mw + sx * mw / W];
                        want = (int)fmin(255, floor((v - lo) / (hi - lo) * 256));
                    }
                    const size_t at = (size_t)(geo.y0 + b * geo.pitch_y + y) * panel.w + geo.x0 +
                                      col * geo.pitch_x + x;
                    for (int c = 0; c < 3; c++)
                        worst[col] = LVK_MAX(worst[col], abs(level(panel.data[c * pplane + at]) - want));
                }
        print_message("row %d (%s): largest differences in gray levels %d %d %d %d\n", b, r->label,
                      worst[0], worst[1], worst[2], worst[3]);
        for (int col = 0; col < 4; col++)
            if (worst[col] > 1)
                fail_msg("row %d, column %s: off by %d gray levels", b, cols[col], worst[col]);
        free(maps[0]);
        free(maps[1]);
    }
    lvk_image_free(&panel);
    lvk_render_result_free(&res);
}

static void test_channels(void **state)
{
    const struct panel_case pc = {
        "-l conv3_relu -c 7,12", "channel(conv3_relu, 7)@0 + channel(conv3_relu, 12)@1", 2,
        {{"conv3_relu", {7}, 1, "conv3_relu:7"}, {"conv3_relu", {12}, 1, "conv3_relu:12"}}};
    check_case(&pc);
}

/* Each image takes its own bound term: a group is the mean of its
 * channels, and the second image's layer differs from the first's. */
static void test_objective_terms(void **state)
{
    const char *obj = "group(conv3_relu, 2-4)@0 + channel(conv2_relu, 3)@1 - 0.01*tv";
    char args[256];
    snprintf(args, sizeof args, "--objective '%s'", obj);
    const struct panel_case pc = {
        args, obj, 2,
        {{"conv3_relu", {2, 3, 4}, 3, "conv3_relu:2,3,4"}, {"conv2_relu", {3}, 1, "conv2_relu:3"}}};
    check_case(&pc);
}

/* A class has no map of its own: --panel-layer shows every channel of a
 * layer instead. */
static void test_panel_layer(void **state)
{
    const struct panel_case pc = {"--class 3 --panel-layer conv4_relu", "class(3)", 1,
                                  {{"conv4_relu", {0}, 0, "class:3"}}};
    check_case(&pc);
}

static void test_errors(void **state)
{
    if (!lvk_test_ctx())
        skip();
    char args[1024], r[1100], p[1100];
    snprintf(r, sizeof r, "%s/bad.png", OUT);
    snprintf(p, sizeof p, "%s/bad_panel.png", OUT);
    const struct { const char *args; int rc; const char *msg; } cases[] = {
        {"--class 3 --panel", 2, "name a layer with --panel-layer L"},
        {"--class 3 --panel --panel-layer nope", 1, "no tensor 'nope'"},
        {"--class 3 --panel --panel-layer logits", 1, "'logits' is 2-D, not a feature map"},
        {"-l conv2_relu -c 1 --panel-layer conv2_relu", 2, "--panel-layer needs --panel"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unlink(r);
        unlink(p);
        snprintf(args, sizeof args, "%s --steps 2 -o '%s'", cases[i].args, r);
        assert_int_equal(run(args), cases[i].rc);
        char log[1200];
        snprintf(log, sizeof log, "%s/log.txt", OUT);
        uint8_t *text;
        size_t len;
        assert_int_equal(lvk_read_file(log, &text, &len), LVK_OK);
        if (!strstr((const char *)text, cases[i].msg))
            fail_msg("%s: expected \"%s\" in:\n%s", cases[i].args, cases[i].msg, text);
        free(text);
        if (lvk_test_exists(r) || lvk_test_exists(p))
            fail_msg("%s: a failed panel left files behind", cases[i].args);
    }
}

static void test_zoom(void **state)
{
    if (!lvk_test_ctx())
        skip();
    char args[1200], path[1200];
    snprintf(args, sizeof args, "-l conv3_relu -c 5 --steps 4 --zoom 3 -o '%s/z.png' --out-dir '%s/z'", OUT,
             OUT);
    if (run(args) != 0)
        fail_msg("lucidvk render %s failed (see %s/log.txt)", args, OUT);
    struct lvk_image big, one;
    snprintf(path, sizeof path, "%s/z.png", OUT);
    assert_int_equal(lvk_png_read(path, 1, &big), LVK_OK);
    snprintf(path, sizeof path, "%s/z/0.png", OUT);
    assert_int_equal(lvk_png_read(path, 1, &one), LVK_OK);
    assert_int_equal(big.w, 3 * one.w);
    assert_int_equal(big.h, 3 * one.h);
    for (int y = 0; y < big.h; y++)
        for (int x = 0; x < big.w; x++)
            if (big.data[y * big.w + x] != one.data[(y / 3) * one.w + x / 3])
                fail_msg("pixel (%d, %d) of the zoomed image is not pixel (%d, %d) of the image", x, y,
                         x / 3, y / 3);
    lvk_image_free(&big);
    lvk_image_free(&one);
}

int main(void)
{
    mkdir(LVK_BINARY_DIR "/test_output", 0755);
    mkdir(OUT, 0755);
    mkdir(OUT "/imgs", 0755);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_channels),
        cmocka_unit_test(test_objective_terms),
        cmocka_unit_test(test_panel_layer),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_zoom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
