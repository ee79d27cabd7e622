/* Feature maps and activation-maximization panels (src/analysis/features.c):
 *   - channel lists parse into the indices written by hand, bad ones fail;
 *   - a map's colours are the colormap at (v - lo) / (hi - lo), zoomed by
 *     repetition, and a constant map sits at the low end;
 *   - the grid holds every requested map, in order, under shared or
 *     per-map normalisation (found by searching the picture for each
 *     expected tile);
 *   - an AM panel on a hand-built 1x1-conv + ReLU model: the two images,
 *     then the mean channel map of each computed on the CPU in double from
 *     the resized images, upsampled by nearest neighbour, one shared range;
 *     and the panel sheet places those cells where the labelled-grid
 *     geometry says. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "analysis/features.h"
#include "io/labelled_grid.h"
#include "nn/graph.h"
#include "support/devbuf.h"
#include "support/op_harness.h"

static void test_channels_parse(void **state)
{
    int *v, n;
    assert_int_equal(lvk_channels_parse("0-3,7", 8, &v, &n), LVK_OK);
    assert_int_equal(n, 5);
    assert_memory_equal(v, ((int[]){0, 1, 2, 3, 7}), 5 * sizeof(int));
    free(v);
    assert_int_equal(lvk_channels_parse("[2, 5-6 ]", 8, &v, &n), LVK_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(v, ((int[]){2, 5, 6}), 3 * sizeof(int));
    free(v);
    const char *bad[] = {"3-1", "8", "a", "", "1,,2", "1 2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (lvk_channels_parse(bad[i], 8, &v, &n) != LVK_ERR_INVALID_ARG)
            fail_msg("\"%s\" parsed", bad[i]);
        assert_null(v);
    }
    assert_int_equal(lvk_channels_parse("8", 8, &v, &n), LVK_ERR_INVALID_ARG);
    assert_non_null(strstr(lvk_last_error(), "out of range (0-7)"));
}

static void test_colour_map(void **state)
{
    const float map[6] = {-1, 0, 1, 2, 3, 5}; /* 2 x 3 */
    float rgb[3 * 4 * 6], want[3];
    lvk_fmap_colour(map, 2, 3, 2, -1, 3, LVK_CMAP_VIRIDIS, rgb);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 6; x++) {
            lvk_cmap_rgb(LVK_CMAP_VIRIDIS, (map[(y / 2) * 3 + x / 2] + 1) / 4.0f, want);
            for (int c = 0; c < 3; c++)
                assert_float_equal(rgb[c * 24 + y * 6 + x], want[c], 1e-7);
        }
    /* Gray: black low, white high (5 is above the range: clamped). */
    lvk_fmap_colour(map, 2, 3, 1, -1, 3, LVK_CMAP_GRAY, rgb);
    assert_float_equal(rgb[0], 0, 1e-7);
    assert_float_equal(rgb[4], 1, 1e-7);
    assert_float_equal(rgb[5], 1, 1e-7);
    /* No range: everything at the low end. */
    lvk_fmap_colour(map, 2, 3, 1, 2, 2, LVK_CMAP_GRAY, rgb);
    for (int i = 0; i < 18; i++)
        assert_float_equal(rgb[i], 0, 0);
}

/* Top-left position (y * w + x) of tile t [3, th, tw] in img, or -1. */
static long find_tile(const struct lvk_image *img, const float *t, int th, int tw)
{
    const size_t plane = (size_t)img->w * img->h, tp = (size_t)th * tw;
    for (int y0 = 0; y0 + th <= img->h; y0++)
        for (int x0 = 0; x0 + tw <= img->w; x0++) {
            int ok = 1;
            for (int c = 0; c < 3 && ok; c++)
                for (int y = 0; y < th && ok; y++)
                    for (int x = 0; x < tw && ok; x++)
                        ok = fabsf(img->data[c * plane + (size_t)(y0 + y) * img->w + x0 + x] -
                                   t[c * tp + (size_t)y * tw + x]) < 1e-6f;
            if (ok)
                return (long)y0 * img->w + x0;
        }
    return -1;
}

static void test_grid(void **state)
{
    enum { C = 5, H = 6, W = 7 };
    float act[C * H * W];
    unsigned seed = 11;
    for (int c = 0; c < C; c++)
        for (int i = 0; i < H * W; i++)
            act[c * H * W + i] = (float)uniform(&seed, 0, c + 1); /* channel c spans [0, c+1) */
    const int chosen[3] = {4, 0, 2};
    for (int norm = 0; norm < 2; norm++) {
        struct lvk_fmap_opts o = {.channels = chosen, .nchannels = 3, .cmap = LVK_CMAP_MAGMA,
                                  .norm = norm ? LVK_FMAP_PER_MAP : LVK_FMAP_SHARED, .zoom = 3,
                                  .title = "layer"};
        struct lvk_image img;
        assert_int_equal(lvk_fmap_grid(act, C, H, W, &o, &img), LVK_OK);
        float slo = FLT_MAX, shi = -FLT_MAX;
        for (int j = 0; j < 3; j++)
            for (int i = 0; i < H * W; i++) {
                slo = fminf(slo, act[chosen[j] * H * W + i]);
                shi = fmaxf(shi, act[chosen[j] * H * W + i]);
            }
        long last = -1;
        for (int j = 0; j < 3; j++) {
            const float *m = act + chosen[j] * H * W;
            float lo = slo, hi = shi, tile[3 * 18 * 21];
            if (norm) {
                lo = FLT_MAX;
                hi = -FLT_MAX;
                for (int i = 0; i < H * W; i++) {
                    lo = fminf(lo, m[i]);
                    hi = fmaxf(hi, m[i]);
                }
            }
            lvk_fmap_colour(m, H, W, 3, lo, hi, LVK_CMAP_MAGMA, tile);
            long at = find_tile(&img, tile, 18, 21);
            if (at < 0)
                fail_msg("norm %d: map of channel %d not found", norm, chosen[j]);
            if (last >= 0) /* in the order asked for */
                assert_true(at / img.w > last / img.w || (at / img.w == last / img.w && at > last));
            last = at;
        }
        lvk_image_free(&img);
    }
    struct lvk_fmap_opts bad = {.channels = (const int[]){5}, .nchannels = 1};
    struct lvk_image img;
    assert_int_equal(lvk_fmap_grid(act, C, H, W, &bad, &img), LVK_ERR_INVALID_ARG);
    assert_non_null(strstr(lvk_last_error(), "channel 5 out of range"));
}

/* ---- AM panel --------------------------------------------------------------------------- */

#define MH 6
#define MW 8
#define MK 3

static const float k_w[MK * 3] = {1, -0.5f, 0.25f, -1, 1, 0.5f, 0.3f, 0.3f, -0.9f};
static const float k_b[MK] = {0.1f, -0.2f, 0.05f};

static struct lvk_model *panel_model(int batch)
{
    struct lvk_model *m;
    assert_int_equal(lvk_graph_create(lvk_test_ctx(), "panel.onnx", &m), LVK_OK);
    struct lvk_shape xs = {4, {batch, 3, MH, MW}}, ws = {4, {MK, 3, 1, 1}}, bs = {1, {MK}};
    assert_true(lvk_graph_add_input(m, "in", LVK_DTYPE_F32, &xs) >= 0);
    assert_true(lvk_graph_add_const(m, "w", LVK_DTYPE_F32, &ws, k_w) >= 0);
    assert_true(lvk_graph_add_const(m, "b", LVK_DTYPE_F32, &bs, k_b) >= 0);
    assert_int_equal(lvk_graph_add_node(m, "Conv", "conv", (const char *[]){"in", "w", "b"}, 3,
                                        (const char *[]){"conv"}, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Relu", "relu", (const char *[]){"conv"}, 1,
                                        (const char *[]){"feat"}, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_mark_output(m, "feat"), LVK_OK);
    struct lvk_model_opts mo = {0};
    if (lvk_graph_finalize(m, &mo) != LVK_OK)
        fail_msg("finalize: %s", lvk_last_error());
    return m;
}

/* Mean over chans of relu(conv1x1(preproc(resize(img)))), on the CPU. */
static void cpu_map(const float *img, int H, int W, const struct lvk_preproc *pre, const int *chans,
                    int nch, double *map)
{
    struct lvk_image src = {.w = W, .h = H, .c = 3, .data = (float *)img}, r;
    assert_int_equal(lvk_image_resize(&src, MW, MH, &r), LVK_OK);
    for (int i = 0; i < MH * MW; i++) {
        double x[3], s = 0;
        for (int c = 0; c < 3; c++)
            x[c] = (pre->lo + r.data[c * MH * MW + i] * (pre->hi - pre->lo) - pre->mean[c]) / pre->std[c];
        for (int j = 0; j < nch; j++) {
            int k = chans[j];
            double a = k_b[k] + k_w[k * 3] * x[0] + k_w[k * 3 + 1] * x[1] + k_w[k * 3 + 2] * x[2];
            s += a > 0 ? a : 0;
        }
        map[i] = s / nch;
    }
    lvk_image_free(&r);
}

static void test_am_panel(void **state)
{
    if (!lvk_test_ctx())
        skip();
    enum { H = 12, W = 20, N = 2 };
    struct lvk_model *m = panel_model(2);
    struct lvk_preproc pre;
    lvk_preproc_default(&pre);
    pre.lo = -1;
    const int chans[2] = {0, 2};
    struct lvk_am_panel p = {.m = m, .pre = &pre, .layer = "feat", .channels = chans, .nchannels = 2,
                             .cmap = LVK_CMAP_VIRIDIS};
    unsigned seed = 3;
    static float init[N * 3 * H * W], res[N * 3 * H * W], cells[4 * 3 * H * W];
    for (int i = 0; i < N * 3 * H * W; i++) {
        init[i] = (float)uniform(&seed, 0.4, 0.6); /* near gray, as renders start */
        res[i] = (float)uniform(&seed, 0, 1);
    }
    assert_int_equal(lvk_am_panel_cells(&p, init, res, 3, H, W, cells), LVK_OK);
    const int plane = H * W;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < plane; i++) {
            assert_float_equal(cells[c * plane + i], init[c * plane + i], 0);
            assert_float_equal(cells[(3 + c) * plane + i], res[c * plane + i], 0);
        }
    double maps[2][MH * MW], lo = DBL_MAX, hi = -DBL_MAX;
    cpu_map(init, H, W, &pre, chans, 2, maps[0]);
    cpu_map(res, H, W, &pre, chans, 2, maps[1]);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < MH * MW; i++) {
            lo = fmin(lo, maps[k][i]);
            hi = fmax(hi, maps[k][i]);
        }
    assert_true(hi > lo);
    for (int k = 0; k < 2; k++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                double v = maps[k][(y * MH / H) * MW + x * MW / W];
                float want[3];
                lvk_cmap_rgb(LVK_CMAP_VIRIDIS, (float)((v - lo) / (hi - lo)), want);
                for (int c = 0; c < 3; c++) {
                    float got = cells[((2 + k) * 3 + c) * plane + y * W + x];
                    /* One colormap entry is 1/256 of the range wide: a
                     * float32 map may land one entry over. */
                    float alt[3];
                    lvk_cmap_rgb(LVK_CMAP_VIRIDIS, (float)((v - lo) / (hi - lo)) + 1.0f / 512, alt);
                    float alt2[3];
                    lvk_cmap_rgb(LVK_CMAP_VIRIDIS, (float)((v - lo) / (hi - lo)) - 1.0f / 512, alt2);
                    if (fabsf(got - want[c]) > 1e-6f && fabsf(got - alt[c]) > 1e-6f &&
                        fabsf(got - alt2[c]) > 1e-6f)
                        fail_msg("map %d (%d, %d) channel %d: got %g, want %g", k, y, x, c, got, want[c]);
                }
            }

    /* The sheet: N rows of 4 cells where the grid geometry puts them. */
    const char *rows[N] = {"unit 0", "unit 1"};
    struct lvk_image sheet;
    assert_int_equal(lvk_am_panels(&p, N, init, res, 3, H, W, rows, &sheet), LVK_OK);
    static const char *const cols[4] = {"initial", "optimized", "map(initial)", "map(optimized)"};
    struct lvk_labelled_grid g = {.rows = N, .cols = 4, .c = 3, .h = H, .w = W, .row_labels = rows,
                                  .col_labels = cols, .gutter = 4, .zoom = 1, .bg = 1.0f};
    struct lvk_grid_geometry geo;
    assert_int_equal(lvk_labelled_grid_geometry(&g, &geo), LVK_OK);
    assert_int_equal(sheet.w, geo.width);
    assert_int_equal(sheet.h, geo.height);
    const size_t sp = (size_t)sheet.w * sheet.h;
    for (int r = 0; r < N; r++) {
        assert_int_equal(lvk_am_panel_cells(&p, init + r * 3 * plane, res + r * 3 * plane, 3, H, W,
                                            cells), LVK_OK);
        for (int k = 0; k < 4; k++)
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < H; y++)
                    for (int x = 0; x < W; x++) {
                        size_t at = (size_t)(geo.y0 + r * geo.pitch_y + y) * sheet.w + geo.x0 +
                                    k * geo.pitch_x + x;
                        assert_float_equal(sheet.data[c * sp + at], cells[(k * 3 + c) * plane + y * W + x],
                                           1e-7);
                    }
    }
    lvk_image_free(&sheet);

    p.layer = "nope";
    assert_int_equal(lvk_am_panel_cells(&p, init, res, 3, H, W, cells), LVK_ERR_NOT_FOUND);
    p.layer = "feat";
    p.channels = (const int[]){3};
    p.nchannels = 1;
    assert_int_equal(lvk_am_panel_cells(&p, init, res, 3, H, W, cells), LVK_ERR_INVALID_ARG);
    lvk_model_destroy(m);
    lvk_test_assert_no_validation();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_channels_parse),
        cmocka_unit_test(test_colour_map),
        cmocka_unit_test(test_grid),
        cmocka_unit_test(test_am_panel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
