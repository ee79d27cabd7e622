/* Neuron interaction grids (src/optvis/grid.c), their labelled layout
 * (src/io/labelled_grid.c) and the bitmap font (src/io/font.c):
 *   - the layout against the recipe written out cell by cell: every cell's
 *     terms, blends shared by (r, c) and (c, r) and by no other pair;
 *   - the gradient stop on the device, through the composite
 *     parameterization's mixer: raw images against the recipe summed on the
 *     CPU, and each pure image's gradient equal to its diagonal cell's alone
 *     (zero when only the off-diagonal cells have gradient);
 *   - the objective text: the terms it parses into, per cell;
 *   - the crop, the font's glyphs drawn pixel for pixel, label wrapping;
 *   - the grid rendered on the demo model with 3 neurons: every
 *     off-diagonal cell raises both of its neurons above their value on the
 *     initial noise (the model run on the images, without transforms),
 *     cells (r, c) and (c, r) come out as the same image, and
 *     the written grid is N cropped cells plus gutters and labels, with
 *     every cell's pixels where the geometry puts them. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "io/font.h"
#include "io/labelled_grid.h"
#include "optvis/grid.h"
#include "optvis/objective.h"
#include "optvis/param_mix.h"
#include "support/demo.h"
#include "support/op_harness.h"

/* Three neurons of the demo model's 14 x 14 layers. */
#define GRID_NEURONS {"conv3_relu", 5}, {"conv4_relu", 2}, {"conv4_relu", 11}
#define GRID_LABELS "conv3_relu:5", "conv4_relu:2", "conv4_relu:11"
#define GRID_STEPS 64

static const struct lvk_layout_term *term(const struct lvk_grid_plan *p, int b, int k)
{
    return &p->terms[(size_t)b * LVK_LAYOUT_MAX_TERMS + k];
}

/* Weight and gradient flag with which cell b uses source s (summed over
 * its terms; grad is -1 when the terms disagree). */
static float uses(const struct lvk_grid_plan *p, int b, int s, int *grad)
{
    float w = 0;
    *grad = 0;
    int seen = 0;
    for (int k = 0; k < p->nterms[b]; k++)
        if (term(p, b, k)->src == s) {
            w += term(p, b, k)->w;
            *grad = seen && *grad != term(p, b, k)->grad ? -1 : term(p, b, k)->grad;
            seen = 1;
        }
    return w;
}

static void test_layout(void **state)
{
    for (int n = 1; n <= 5; n++) {
        struct lvk_grid_neuron nr[5] = {{"a", 0}, {"b/c:0", 1}, {"d", 2}, {"e", 3}, {"f", 4}};
        struct lvk_grid_plan p;
        assert_int_equal(lvk_grid_plan_create(nr, n, 10, &p), LVK_OK);
        assert_int_equal(p.batch, n * n);
        assert_int_equal(p.layout.nfft, 1 + n + n * (n + 1) / 2);
        assert_int_equal(p.layout.nlowres, 1);
        assert_int_equal(p.layout.npixel, 0);
        assert_int_equal(p.layout.lowres_div, 4);
        assert_true(p.layout.raw_scale == 0.5f);
        int S = p.layout.nfft + 1;
        int *blend_of = calloc((size_t)n * n, sizeof *blend_of);
        for (int r = 0; r < n; r++)
            for (int c = 0; c < n; c++) {
                int b = r * n + c, g;
                /* Every source this cell uses, against the recipe. */
                for (int s = 0; s < S; s++) {
                    float w = uses(&p, b, s, &g);
                    if (s == lvk_grid_src_shared() || s == lvk_grid_src_lowres(n)) {
                        assert_true(w == 2.0f && g == 1);
                    } else if (s == lvk_grid_src_pure(r) && r == c) {
                        assert_true(w == 1.0f && g == 1);
                    } else if (s == lvk_grid_src_pure(r) || s == lvk_grid_src_pure(c)) {
                        assert_true(w == 0.5f && g == 0); /* stopped mean */
                    } else if (s == lvk_grid_src_blend(n, r, c)) {
                        assert_true(w == 1.0f && g == 1);
                    } else {
                        assert_true(w == 0.0f);
                    }
                }
                assert_int_equal(p.nterms[b], r == c ? 4 : 5);
                blend_of[b] = lvk_grid_src_blend(n, r, c);
                assert_true(blend_of[b] > n && blend_of[b] < p.layout.nfft);
            }
        /* Blends: the same for (r, c) and (c, r), different for other pairs. */
        for (int b1 = 0; b1 < n * n; b1++)
            for (int b2 = 0; b2 < n * n; b2++) {
                int r1 = b1 / n, c1 = b1 % n, r2 = b2 / n, c2 = b2 % n;
                int same_pair = (r1 == r2 && c1 == c2) || (r1 == c2 && c1 == r2);
                assert_int_equal(blend_of[b1] == blend_of[b2], same_pair);
            }
        /* A pure image gets gradient from exactly one cell: its diagonal. */
        for (int k = 0; k < n; k++)
            for (int b = 0; b < n * n; b++) {
                int g;
                uses(&p, b, lvk_grid_src_pure(k), &g);
                assert_int_equal(g, b == k * n + k);
            }
        free(blend_of);
        lvk_grid_plan_free(&p);
    }
    struct lvk_grid_plan p;
    struct lvk_grid_neuron bad[2] = {{"a'b\"", 0}, {"x", 1}};
    assert_int_equal(lvk_grid_plan_create(bad, 2, 10, &p), LVK_ERR_INVALID_ARG);
    assert_int_equal(lvk_grid_plan_create(bad + 1, 0, 10, &p), LVK_ERR_INVALID_ARG);
}

/* The objective parses into, for cell (r, c), 0.2*channel + neuron of each
 * of its two neurons bound to the cell, and -10*blur on every image. */
static void test_objective_text(void **state)
{
    struct lvk_grid_neuron nr[3] = {{"conv2_relu", 4}, {"a/b:0", 7}, {"x\"y", 2}};
    struct lvk_grid_plan p;
    assert_int_equal(lvk_grid_plan_create(nr, 3, 10, &p), LVK_OK);
    struct lvk_objective *o;
    if (lvk_objective_parse(p.objective, &o) != LVK_OK)
        fail_msg("%s", lvk_last_error());
    /* want[b][neuron][0: channel weight, 1: neuron weight] */
    double want[9][3][2] = {{{0}}}, got[9][3][2] = {{{0}}};
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            for (int k = 0; k < 2; k++) {
                int u = k ? c : r;
                want[r * 3 + c][u][0] += 0.2;
                want[r * 3 + c][u][1] += 1.0;
            }
    int blur = 0;
    for (int i = 0; i < o->nterms; i++) {
        const struct lvk_term *t = &o->terms[i];
        if (t->kind == LVK_TERM_BLUR) {
            assert_int_equal(t->batch, -1);
            assert_true(fabs(t->weight + 10) < 1e-12);
            blur++;
            continue;
        }
        assert_true(t->kind == LVK_TERM_CHANNEL || t->kind == LVK_TERM_NEURON);
        assert_true(t->batch >= 0 && t->batch < 9);
        int u = -1;
        for (int k = 0; k < 3; k++)
            if (!strcmp(t->tensor, nr[k].layer) && t->channel == nr[k].channel)
                u = k;
        assert_true(u >= 0);
        if (t->kind == LVK_TERM_NEURON)
            assert_true(t->x == -1 && t->y == -1); /* the centre */
        got[t->batch][u][t->kind == LVK_TERM_NEURON] += t->weight;
    }
    assert_int_equal(blur, 1);
    for (int b = 0; b < 9; b++)
        for (int u = 0; u < 3; u++)
            for (int k = 0; k < 2; k++)
                assert_true(fabs(got[b][u][k] - want[b][u][k]) < 1e-12);
    lvk_objective_destroy(o);
    lvk_grid_plan_free(&p);
    /* The blur weight is a parameter: 2.5 gives -2.5*blur, 0 none. */
    for (int v = 0; v < 2; v++) {
        assert_int_equal(lvk_grid_plan_create(nr, 3, v ? 0.0 : 2.5, &p), LVK_OK);
        assert_int_equal(lvk_objective_parse(p.objective, &o), LVK_OK);
        int nblur = 0;
        for (int i = 0; i < o->nterms; i++)
            if (o->terms[i].kind == LVK_TERM_BLUR) {
                nblur++;
                assert_true(fabs(o->terms[i].weight + 2.5) < 1e-12);
            }
        assert_int_equal(nblur, v ? 0 : 1);
        lvk_objective_destroy(o);
        lvk_grid_plan_free(&p);
    }
    assert_int_equal(lvk_grid_plan_create(nr, 3, -1.0, &p), LVK_ERR_INVALID_ARG);
}

static float frand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 65536.0f - 0.5f;
}

/* The gradient stop, on the device: the mixer with the grid's layout. */
static void test_gradient_stop(void **state)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    const int N = 3, B = 9, plane = 3 * 5 * 7;
    struct lvk_grid_neuron nr[3] = {{"a", 0}, {"b", 1}, {"c", 2}};
    struct lvk_grid_plan p;
    assert_int_equal(lvk_grid_plan_create(nr, N, 10, &p), LVK_OK);
    int F = p.layout.nfft;
    struct lvk_param_mix *mx;
    if (lvk_param_mix_create(ctx, &p.layout, B, plane, &mx) != LVK_OK)
        fail_msg("%s", lvk_last_error());
    /* raw, raw_grad, fft, fft_grad, low, low_grad, pix (unused) */
    VkDeviceSize sizes[7] = {B * plane * 4, B * plane * 4, F * plane * 4, F * plane * 4, plane * 4,
                             plane * 4, 4};
    struct lvk_buf bufs[7];
    struct lvk_arena arena;
    assert_int_equal(lvk_arena_create(ctx, sizes, 7, bufs, &arena), LVK_OK);
    float *fft = malloc(sizes[2]), *low = malloc(sizes[4]), *g = malloc(sizes[1]);
    float *raw = malloc(sizes[0]), *fft_grad = malloc(sizes[3]), *low_grad = malloc(sizes[5]);
    unsigned seed = 7;
    for (size_t i = 0; i < (size_t)F * plane; i++)
        fft[i] = frand(&seed);
    for (int i = 0; i < plane; i++)
        low[i] = frand(&seed);
    assert_int_equal(lvk_buf_upload(ctx, &bufs[2], 0, fft, sizes[2]), LVK_OK);
    assert_int_equal(lvk_buf_upload(ctx, &bufs[4], 0, low, sizes[4]), LVK_OK);

    for (int pass = 0; pass < 2; pass++) {
        /* Pass 0: random gradient on every cell. Pass 1: on the
         * off-diagonal cells only, so no pure image may receive any. */
        for (int b = 0; b < B; b++)
            for (int i = 0; i < plane; i++)
                g[b * plane + i] = pass == 1 && b / N == b % N ? 0.0f : frand(&seed);
        assert_int_equal(lvk_buf_upload(ctx, &bufs[1], 0, g, sizes[1]), LVK_OK);
        struct lvk_cmd *cmd;
        assert_int_equal(lvk_cmd_create(ctx, false, &cmd), LVK_OK);
        assert_int_equal(lvk_cmd_begin(cmd), LVK_OK);
        lvk_cmd_fill(cmd, &bufs[3], 0, VK_WHOLE_SIZE, 0);
        lvk_cmd_fill(cmd, &bufs[5], 0, VK_WHOLE_SIZE, 0);
        assert_int_equal(lvk_param_mix_fwd(cmd, mx, &bufs[0], &bufs[2], &bufs[4], &bufs[6]), LVK_OK);
        assert_int_equal(lvk_param_mix_bwd(cmd, mx, &bufs[3], &bufs[5], &bufs[6], &bufs[1]), LVK_OK);
        assert_int_equal(lvk_cmd_end(cmd), LVK_OK);
        assert_int_equal(lvk_cmd_submit(cmd), LVK_OK);
        lvk_cmd_destroy(cmd);
        assert_int_equal(lvk_buf_download(ctx, &bufs[0], 0, raw, sizes[0]), LVK_OK);
        assert_int_equal(lvk_buf_download(ctx, &bufs[3], 0, fft_grad, sizes[3]), LVK_OK);
        assert_int_equal(lvk_buf_download(ctx, &bufs[5], 0, low_grad, sizes[5]), LVK_OK);

        /* The recipe in double: cell (r, c) = 0.5 * (mix + blend + 2*shared + 2*low). */
        for (int r = 0; r < N; r++)
            for (int c = 0; c < N; c++) {
                const float *pr = fft + (1 + r) * plane, *pc = fft + (1 + c) * plane;
                const float *bl = fft + lvk_grid_src_blend(N, r, c) * plane;
                for (int i = 0; i < plane; i++) {
                    double mix = r == c ? pr[i] : 0.5 * ((double)pr[i] + pc[i]);
                    double want = 0.5 * (mix + bl[i] + 2.0 * fft[i] + 2.0 * low[i]);
                    assert_true(fabs(raw[(r * N + c) * plane + i] - want) < 1e-5);
                }
            }
        for (int i = 0; i < plane; i++) {
            double all = 0;
            for (int b = 0; b < B; b++)
                all += g[b * plane + i];
            /* shared and low-res: 0.5 * 2 * every cell's gradient */
            assert_true(fabs(fft_grad[i] - all) < 1e-4);
            assert_true(fabs(low_grad[i] - all) < 1e-4);
            for (int k = 0; k < N; k++) {
                /* pure k: 0.5 * its diagonal cell, nothing else */
                float got = fft_grad[(1 + k) * plane + i];
                double want = 0.5 * g[(k * N + k) * plane + i];
                if (pass == 1)
                    assert_true(got == 0.0f);
                else
                    assert_true(fabs(got - want) < 1e-6);
            }
            for (int r = 0; r < N; r++)
                for (int c = r; c < N; c++) {
                    double want = 0.5 * g[(r * N + c) * plane + i] +
                                  (r != c ? 0.5 * g[(c * N + r) * plane + i] : 0.0);
                    assert_true(fabs(fft_grad[lvk_grid_src_blend(N, r, c) * plane + i] - want) < 1e-6);
                }
        }
    }
    free(fft); free(low); free(g); free(raw); free(fft_grad); free(low_grad);
    lvk_arena_destroy(ctx, bufs, 7, &arena);
    lvk_param_mix_destroy(mx);
    lvk_grid_plan_free(&p);
    lvk_test_assert_no_validation();
}

static void test_crop(void **state)
{
    int a, b;
    lvk_grid_crop(128, &a, &b);
    assert_int_equal(a, 15);
    assert_int_equal(b, 25);
    lvk_grid_crop(256, &a, &b);
    assert_true(a == 30 && b == 50);
    lvk_grid_crop(28, &a, &b); /* 3.28 and 5.47 */
    assert_true(a == 3 && b == 5);
    lvk_grid_crop(2, &a, &b);
    assert_true(a + b <= 1);
    float img[2 * 3 * 4 * 5];
    for (int i = 0; i < 120; i++)
        img[i] = (float)i;
    float *out;
    assert_int_equal(lvk_images_crop(img, 2, 3, 4, 5, 1, 2, 0, 1, &out), LVK_OK);
    for (int p = 0; p < 6; p++) /* [2*3, 3, 2] from rows 1..3, columns 2..3 */
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 2; x++)
                assert_true(out[(p * 3 + y) * 2 + x] == (float)(p * 20 + (y + 1) * 5 + x + 2));
    free(out);
    assert_int_equal(lvk_images_crop(img, 2, 3, 4, 5, 2, 0, 2, 0, &out), LVK_ERR_INVALID_ARG);
}

/* Glyphs drawn pixel for pixel, against the designs written as art. */
static void test_font(void **state)
{
    static const char *const want_A[7] = {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"};
    static const char *const want_7[7] = {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."};
    assert_int_equal(lvk_font_width(0, 1), 0);
    assert_int_equal(lvk_font_width(1, 1), 5);
    assert_int_equal(lvk_font_width(3, 2), 34);
    struct lvk_image img;
    assert_int_equal(lvk_image_alloc(&img, 13, 9, 3), LVK_OK);
    for (int i = 0; i < 13 * 9 * 3; i++)
        img.data[i] = 0.5f;
    const float ink[3] = {1.0f, 0.0f, 0.25f};
    lvk_font_draw(&img, 1, 1, "A7x", 2, 1, ink); /* only "A7" */
    for (int ch = 0; ch < 3; ch++)
        for (int y = 0; y < 9; y++)
            for (int x = 0; x < 13; x++) {
                char want = '.';
                if (y >= 1 && y < 8 && x >= 1 && x < 6)
                    want = want_A[y - 1][x - 1];
                else if (y >= 1 && y < 8 && x >= 7 && x < 12)
                    want = want_7[y - 1][x - 7];
                float v = img.data[(ch * 9 + y) * 13 + x];
                assert_true(v == (want == '#' ? ink[ch] : 0.5f));
            }
    /* Scale 2 doubles every pixel; drawing off the image is clipped. */
    struct lvk_image big;
    assert_int_equal(lvk_image_alloc(&big, 10, 14, 1), LVK_OK);
    memset(big.data, 0, 140 * sizeof(float));
    lvk_font_draw(&big, 0, 0, "A", 1, 2, ink);
    for (int y = 0; y < 14; y++)
        for (int x = 0; x < 10; x++)
            assert_true(big.data[y * 10 + x] == (want_A[y / 2][x / 2] == '#' ? 1.0f : 0.0f));
    lvk_font_draw(&big, -3, 12, "AAAA", 4, 1, ink);
    lvk_font_draw(&big, 8, -5, "\x01", 1, 1, ink); /* not printable: drawn as '?' */
    lvk_image_free(&big);
    lvk_image_free(&img);
    const unsigned char *q = lvk_font_glyph('?'), *bad = lvk_font_glyph('\x7f');
    assert_memory_equal(q, bad, LVK_FONT_GLYPH_H);
    /* Every printable glyph but the space has ink; all are distinct. */
    for (int a = 33; a < 127; a++) {
        const unsigned char *ga = lvk_font_glyph((char)a);
        int ink_rows = 0;
        for (int r = 0; r < 7; r++)
            ink_rows += ga[r] != 0 && ga[r] < 32;
        assert_true(ink_rows > 0);
        for (int b = a + 1; b < 127; b++)
            assert_true(memcmp(ga, lvk_font_glyph((char)b), 7) != 0);
    }
}

/* Pixel at (x, y) of channel ch. */
static float px(const struct lvk_image *im, int ch, int x, int y)
{
    return im->data[((size_t)ch * im->h + y) * im->w + x];
}

static int has_ink(const struct lvk_image *im, int x0, int y0, int x1, int y1, float bg)
{
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            if (px(im, 0, x, y) != bg)
                return 1;
    return 0;
}

/* Checks that `im` is the grid of `cells` laid out by the geometry the
 * header documents: cells at their place (zoomed), gutters of bg, ink only
 * in the label strips. */
static void check_grid(const struct lvk_image *im, const float *cells, int rows, int cols, int c, int h,
                       int w, int zoom, int gut, int label_w, int label_h, float bg)
{
    int x0 = gut + (label_w ? label_w + gut : 0), y0 = gut + (label_h ? label_h + gut : 0);
    assert_int_equal(im->w, x0 + cols * (w * zoom + gut));
    assert_int_equal(im->h, y0 + rows * (h * zoom + gut));
    assert_int_equal(im->c, c);
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++) {
            int cx = x - x0, cy = y - y0;
            int col = cx >= 0 ? cx / (w * zoom + gut) : -1, row = cy >= 0 ? cy / (h * zoom + gut) : -1;
            int in_cell = col >= 0 && row >= 0 && cx % (w * zoom + gut) < w * zoom &&
                          cy % (h * zoom + gut) < h * zoom;
            for (int ch = 0; ch < c; ch++) {
                float v = px(im, ch, x, y);
                if (in_cell) {
                    int ix = (cx % (w * zoom + gut)) / zoom, iy = (cy % (h * zoom + gut)) / zoom;
                    assert_true(v == cells[(((size_t)(row * cols + col) * c + ch) * h + iy) * w + ix]);
                } else if (!((x >= gut && x < gut + label_w && y >= y0) ||
                             (y >= gut && y < gut + label_h && x >= x0))) {
                    assert_true(v == bg); /* gutters and corners */
                }
            }
        }
}

static void test_labelled_grid(void **state)
{
    enum { R = 2, C = 3, CH = 3, H = 10, W = 13 };
    float cells[R * C * CH * H * W];
    unsigned seed = 1;
    for (size_t i = 0; i < sizeof cells / sizeof cells[0]; i++)
        cells[i] = frand(&seed) + 0.5f;
    const char *rows[R] = {"conv3_relu", "MobilenetV2/expanded_conv_13/expand/Relu6"};
    const char *cols[C] = {"0", "mixed4a:12", "x"};
    struct lvk_labelled_grid g = {.rows = R, .cols = C, .c = CH, .h = H, .w = W, .cells = cells,
                                  .gutter = 3, .zoom = 2, .bg = 1.0f};
    struct lvk_image im;
    /* No labels: a plain grid with gutters. */
    assert_int_equal(lvk_labelled_grid_render(&g, &im), LVK_OK);
    check_grid(&im, cells, R, C, CH, H, W, 2, 3, 0, 0, 1.0f);
    lvk_image_free(&im);
    /* Labels. Columns are 26 px: 4 characters a line, so "mixed4a:12" is
     * "mixe" (no break character in it), "d4a:" (ends at the break
     * character), "12": 3 lines = 23 px. Rows wrap at 12
     * characters: the long name becomes "MobilenetV2/" "expanded_" "conv_13/"
     * "expand/" "Relu6", 12 characters at most = 71 px. */
    g.row_labels = rows;
    g.col_labels = cols;
    struct lvk_grid_geometry geo;
    assert_int_equal(lvk_labelled_grid_geometry(&g, &geo), LVK_OK);
    assert_int_equal(geo.label_h, 23);
    assert_int_equal(geo.label_w, 71);
    assert_int_equal(lvk_labelled_grid_render(&g, &im), LVK_OK);
    check_grid(&im, cells, R, C, CH, H, W, 2, 3, 71, 23, 1.0f);
    /* Each label strip has ink beside / above each cell. */
    for (int r = 0; r < R; r++)
        assert_true(has_ink(&im, 3, geo.y0 + r * geo.pitch_y, 3 + 71, geo.y0 + r * geo.pitch_y + 20, 1.0f));
    for (int c = 0; c < C; c++)
        assert_true(has_ink(&im, geo.x0 + c * geo.pitch_x, 3, geo.x0 + c * geo.pitch_x + 26, 3 + 23, 1.0f));
    lvk_image_free(&im);
    g.c = 2;
    assert_int_equal(lvk_labelled_grid_render(&g, &im), LVK_ERR_INVALID_ARG);
}

/* The whole grid on the demo model, 3 neurons. */
static void test_grid_demo(void **state)
{
    enum { N = 3 };
    const struct lvk_grid_neuron nr[N] = {GRID_NEURONS};
    const char *labels[N] = {GRID_LABELS};
    struct lvk_grid_plan p;
    assert_int_equal(lvk_grid_plan_create(nr, N, 10, &p), LVK_OK);
    struct lvk_render_opts o = {.objective = p.objective, .batch = p.batch, .layout = &p.layout,
                                .steps = GRID_STEPS, .seed = 2, .redirect_steps = -1};
    struct lvk_render_result r;
    lvk_test_demo_render(&o, &r);
    assert_int_equal(r.batch, N * N);
    assert_true(r.height == 28 && r.width == 28 && r.channels == 1);
    double a0[N * N * N], a1[N * N * N];
    lvk_test_demo_units(&r, r.initial, nr, N, a0, NULL);
    lvk_test_demo_units(&r, r.images, nr, N, a1, NULL);
    /* Cells (r, c) and (c, r) share every source and weight: the same image. */
    for (int row = 0; row < N; row++)
        for (int col = 0; col < row; col++)
            for (int i = 0; i < 28 * 28; i++)
                assert_true(fabsf(r.images[(row * N + col) * 28 * 28 + i] -
                                  r.images[(col * N + row) * 28 * 28 + i]) < 1e-6f);
    for (int row = 0; row < N; row++)
        for (int col = 0; col < N; col++) {
            int b = row * N + col;
            print_message("cell (%d,%d): %s %.3f -> %.3f, %s %.3f -> %.3f\n", row, col, labels[row],
                          a0[b * N + row], a1[b * N + row], labels[col], a0[b * N + col], a1[b * N + col]);
            assert_true(a1[b * N + row] > a0[b * N + row]);
            assert_true(a1[b * N + col] > a0[b * N + col]);
        }
    /* The picture: 28 px cells cropped by 3 and 5 to 20 px; labels in
     * 3-character lines above the columns ("conv4_relu:11" takes 5 lines,
     * 39 px) and in lines of 12 beside the rows ("conv3_relu:5" is the
     * longest line, 71 px); 2 px gutters. */
    struct lvk_image im;
    assert_int_equal(lvk_grid_compose(r.images, N, 1, 28, 28, labels, 1, &im), LVK_OK);
    assert_int_equal(im.w, 2 + 71 + 2 + N * (20 + 2));
    assert_int_equal(im.h, 2 + 39 + 2 + N * (20 + 2));
    for (int b = 0; b < N * N; b++)
        for (int y = 0; y < 20; y++)
            for (int x = 0; x < 20; x++)
                assert_true(im.data[(size_t)(43 + (b / N) * 22 + y) * im.w + 75 + (b % N) * 22 + x] ==
                            r.images[((size_t)b * 28 + 3 + y) * 28 + 3 + x]);
    lvk_image_free(&im);
    /* Zoomed by default to cells of at least 64 px: 4 x 20. Row labels
     * then wrap at 13 characters, the cell width, and "conv4_relu:11"
     * fits on one line (77 px). */
    assert_int_equal(lvk_grid_compose(r.images, N, 1, 28, 28, labels, 0, &im), LVK_OK);
    assert_int_equal(im.w, 2 + 77 + 2 + N * (80 + 2));
    lvk_image_free(&im);
    lvk_render_result_free(&r);
    lvk_grid_plan_free(&p);
    lvk_test_assert_no_validation();
}

static void test_channel_list(void **state)
{
    int ch[8];
    assert_int_equal(lvk_channel_list_parse("2,10-12", ch, 8), 4);
    assert_true(ch[0] == 2 && ch[1] == 10 && ch[2] == 11 && ch[3] == 12);
    assert_int_equal(lvk_channel_list_parse("0-7", ch, 8), 8);
    assert_int_equal(lvk_channel_list_parse("0-8", ch, 8), -1);
    assert_int_equal(lvk_channel_list_parse("5-3", ch, 8), -1);
    assert_int_equal(lvk_channel_list_parse("1,", ch, 8), -1);
    assert_int_equal(lvk_channel_list_parse("-1", ch, 8), -1);
    assert_int_equal(lvk_channel_list_parse("", ch, 8), -1);
    assert_int_equal(lvk_channel_list_parse("3x", ch, 8), -1);
    /* Blanks and signs are refused, and numbers that would wrap an int. */
    assert_int_equal(lvk_channel_list_parse("3, 5", ch, 8), -1);
    assert_int_equal(lvk_channel_list_parse(" 3", ch, 8), -1);
    assert_int_equal(lvk_channel_list_parse("+3", ch, 8), -1);
    assert_int_equal(lvk_channel_list_parse("3- 5", ch, 8), -1);
    assert_int_equal(lvk_channel_list_parse("1-", ch, 8), -1);
    assert_int_equal(lvk_channel_list_parse("1,,2", ch, 8), -1);
    assert_int_equal(lvk_channel_list_parse("4294967297", ch, 8), -1);
    assert_int_equal(lvk_channel_list_parse("2147483648", ch, 8), -1);
    assert_int_equal(lvk_channel_list_parse("2147483647", ch, 8), 1);
    assert_int_equal(ch[0], 2147483647);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_objective_text),
        cmocka_unit_test(test_gradient_stop),
        cmocka_unit_test(test_crop),
        cmocka_unit_test(test_font),
        cmocka_unit_test(test_labelled_grid),
        cmocka_unit_test(test_channel_list),
        cmocka_unit_test(test_grid_demo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
