/* Kernel measurements (src/analysis/kernels.c) on synthetic kernels whose
 * answers are known by construction:
 *   - Gabor kernels at 12 orientations (every 15 degrees), two sizes and
 *     wavelengths: the orientation comes out within 3 degrees of theta,
 *     the spatial frequency within 10% of 1 / lambda, selectivity high;
 *   - an isotropic difference of Gaussians: selectivity near 0;
 *   - colour: a Gabor copied to R, G and B has colour 0 and opponency 0,
 *     +Gabor in R and -Gabor in G has colour 1 and opponency 1;
 *   - rankings, finding the Conv behind a tensor name, the JSON listing
 *     and the picture;
 *   - orientation from gratings: on the demo model's first conv, the
 *     measurement equals the definition recomputed on the CPU in double
 *     from the weights, and agrees with the spectrum (tolerance argued at
 *     test_gratings_first_layer); on a hand-built model whose second conv
 *     has units of known orientation (tests/ref/make_gabor_model.py), the
 *     command recovers every angle within 3 degrees. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "analysis/kernels.h"
#include "io/lvk_io.h"
#include "nn/graph.h"
#include "nn/onnx.h"
#include "support/cli.h"
#include "support/demo.h"
#include "support/op_harness.h"

#define PI 3.14159265358979323846
#define ANGLE_TOL 3.0 /* degrees, the requirement */

/* skimage-style Gabor: exp(-(x^2 + y^2) / 2 sigma^2) cos(2 pi x' / lambda),
 * x' = x cos theta + y sin theta, with x to the right and y UP from the
 * kernel's centre. */
static void gabor(float *w, int size, double theta_deg, double lambda, double sigma, double phase)
{
    double th = theta_deg * PI / 180, c = (size - 1) / 2.0;
    for (int r = 0; r < size; r++)
        for (int s = 0; s < size; s++) {
            double x = s - c, y = c - r, xp = x * cos(th) + y * sin(th);
            w[r * size + s] = (float)(exp(-(x * x + y * y) / (2 * sigma * sigma)) *
                                      cos(2 * PI * xp / lambda + phase));
        }
}

static double angle_diff(double a, double b)
{
    double d = fmod(fabs(a - b), 180.0);
    return d > 90 ? 180 - d : d;
}

static void test_gabor_orientation(void **state)
{
    const struct { int size; double lambda, sigma, phase; } cfg[] = {
        {11, 4.0, 2.0, 0.0}, {7, 3.0, 1.5, 0.5}, {11, 6.0, 2.5, PI / 2}};
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++)
        for (int a = 0; a < 12; a++) {
            double theta = 15.0 * a;
            float w[11 * 11];
            gabor(w, cfg[c].size, theta, cfg[c].lambda, cfg[c].sigma, cfg[c].phase);
            struct lvk_kernel_stats s;
            assert_int_equal(lvk_kernel_stats(w, 1, cfg[c].size, cfg[c].size, &s), LVK_OK);
            if (angle_diff(s.orientation, theta) > ANGLE_TOL)
                fail_msg("Gabor %dx%d lambda %.1f at %.0f deg: orientation %.2f", cfg[c].size,
                         cfg[c].size, cfg[c].lambda, theta, s.orientation);
            assert_true(s.orientation >= 0 && s.orientation < 180);
            if (fabs(s.frequency * cfg[c].lambda - 1) > 0.1)
                fail_msg("Gabor lambda %.1f: frequency %.4f, want about %.4f", cfg[c].lambda,
                         s.frequency, 1 / cfg[c].lambda);
            assert_true(s.selectivity > 0.5);
            if (c == 0 && a == 2) /* the example: 30 degrees */
                print_message("Gabor at 30 deg: orientation %.2f, selectivity %.3f, frequency %.4f\n",
                              s.orientation, s.selectivity, s.frequency);
        }
}

/* A kernel at 1e-12 of its layer's largest (MobileNet V1's first layer has
 * one at 4.7e-12) has a spectrum of rounding noise: its measures are 0,
 * while the live kernels' stay as measured. */
static void test_dead_kernel(void **state)
{
    float w[3][7 * 7];
    struct lvk_kernel_stats s[3], live;
    for (int k = 0; k < 3; k++) {
        gabor(w[k], 7, 30.0 * k, 3.0, 1.5, 0.0);
        if (k == 1)
            for (int i = 0; i < 49; i++)
                w[k][i] *= 1e-12f;
        assert_int_equal(lvk_kernel_stats(w[k], 1, 7, 7, &s[k]), LVK_OK);
    }
    live = s[2];
    assert_true(s[1].selectivity > 0.5); /* only the norm tells it apart */
    assert_int_equal(lvk_kernels_mark_dead(s, 3), 1);
    assert_true(s[1].selectivity == 0 && s[1].orientation == 0 && s[1].frequency == 0);
    assert_true(s[1].norm > 0);
    assert_memory_equal(&s[2], &live, sizeof live);
}

static void test_isotropic(void **state)
{
    /* Centre-surround: a difference of Gaussians has no orientation. */
    enum { S = 9 };
    float w[S * S];
    for (int r = 0; r < S; r++)
        for (int s = 0; s < S; s++) {
            double d2 = (r - 4) * (r - 4) + (s - 4) * (s - 4);
            w[r * S + s] = (float)(exp(-d2 / 2.0) - 0.5 * exp(-d2 / 8.0));
        }
    struct lvk_kernel_stats st;
    assert_int_equal(lvk_kernel_stats(w, 1, S, S, &st), LVK_OK);
    assert_true(st.selectivity < 0.05);
    /* A constant kernel has no spectrum past DC at all. */
    for (int i = 0; i < S * S; i++)
        w[i] = 0.3f;
    assert_int_equal(lvk_kernel_stats(w, 1, S, S, &st), LVK_OK);
    assert_float_equal(st.selectivity, 0, 0);
    assert_float_equal(st.frequency, 0, 0);
    assert_float_equal(st.norm, 0.3 * S, 1e-5);
    assert_int_equal(lvk_kernel_stats(w, 1, 65, 1, &st), LVK_ERR_INVALID_ARG);
}

static void test_colour(void **state)
{
    enum { S = 7, T = S * S };
    float g[T], w[3 * T];
    gabor(g, S, 60, 3.5, 1.5, 0);
    for (int i = 0; i < T; i++)
        w[i] = w[T + i] = w[2 * T + i] = g[i];
    struct lvk_kernel_stats s;
    assert_int_equal(lvk_kernel_stats(w, 3, S, S, &s), LVK_OK);
    assert_float_equal(s.colour, 0, 1e-6);
    assert_float_equal(s.opponency, 0, 0);
    assert_true(angle_diff(s.orientation, 60) <= ANGLE_TOL);
    /* Red-green opponent edge, same orientation. */
    for (int i = 0; i < T; i++) {
        w[i] = g[i];
        w[T + i] = -g[i];
        w[2 * T + i] = 0;
    }
    assert_int_equal(lvk_kernel_stats(w, 3, S, S, &s), LVK_OK);
    assert_float_equal(s.colour, 1, 1e-6);
    assert_float_equal(s.opponency, 1, 1e-6);
    assert_true(angle_diff(s.orientation, 60) <= ANGLE_TOL);
    /* Red only: a third of its energy is achromatic, nothing opposes. */
    for (int i = 0; i < T; i++)
        w[T + i] = 0;
    assert_int_equal(lvk_kernel_stats(w, 3, S, S, &s), LVK_OK);
    assert_float_equal(s.colour, 2.0 / 3.0, 1e-6);
    assert_float_equal(s.opponency, 0, 0);
}

static void test_rank(void **state)
{
    const struct lvk_kernel_stats st[5] = {
        {.orientation = 120, .selectivity = 0.8f, .frequency = 0.3f, .colour = 0.1f, .norm = 1},
        {.orientation = 10, .selectivity = 0.1f, .frequency = 0.1f, .colour = 0.9f, .norm = 3},
        {.orientation = 45, .selectivity = 0.6f, .frequency = 0.2f, .colour = 0.5f, .norm = 2},
        {.orientation = 170, .selectivity = 0.15f, .frequency = 0.4f, .colour = 0.0f, .norm = 5},
        {.orientation = 0, .selectivity = 0.9f, .frequency = 0.05f, .colour = 0.2f, .norm = 4}};
    int order[5];
    lvk_kernels_rank(st, 5, LVK_RANK_ORIENTATION, order);
    const int by_ori[5] = {4, 2, 0, 3, 1}; /* oriented by angle, then 0.15 before 0.1 */
    assert_memory_equal(order, by_ori, sizeof order);
    lvk_kernels_rank(st, 5, LVK_RANK_FREQUENCY, order);
    assert_memory_equal(order, ((int[]){4, 1, 2, 0, 3}), sizeof order);
    lvk_kernels_rank(st, 5, LVK_RANK_COLOUR, order);
    assert_memory_equal(order, ((int[]){1, 2, 4, 0, 3}), sizeof order);
    lvk_kernels_rank(st, 5, LVK_RANK_NORM, order);
    assert_memory_equal(order, ((int[]){3, 4, 1, 2, 0}), sizeof order);
    enum lvk_kernel_rank r;
    assert_int_equal(lvk_kernel_rank_parse("color", &r), LVK_OK);
    assert_int_equal(r, LVK_RANK_COLOUR);
    assert_int_equal(lvk_kernel_rank_parse("size", &r), LVK_ERR_INVALID_ARG);
    assert_non_null(strstr(lvk_last_error(), "orientation, frequency"));
}

/* in -> Conv c1 (2 x 3 x 3 x 3) -> Relu -> Conv c2 (depthwise 2 x 1 x 5 x 5)
 * -> Add constant -> out; out2 = Add(c1 relu, out) is a residual. */
static struct lvk_model *graph(float *w1, float *w2)
{
    struct lvk_model *m;
    assert_int_equal(lvk_graph_create(NULL, "k.onnx", &m), LVK_OK);
    struct lvk_shape xs = {4, {1, 3, 16, 16}}, w1s = {4, {2, 3, 3, 3}}, w2s = {4, {2, 1, 5, 5}},
                     bs = {4, {1, 2, 1, 1}};
    float bias[2] = {0.5f, -0.5f};
    assert_true(lvk_graph_add_input(m, "in", LVK_DTYPE_F32, &xs) >= 0);
    assert_true(lvk_graph_add_const(m, "w1", LVK_DTYPE_F32, &w1s, w1) >= 0);
    assert_true(lvk_graph_add_const(m, "w2", LVK_DTYPE_F32, &w2s, w2) >= 0);
    assert_true(lvk_graph_add_const(m, "b", LVK_DTYPE_F32, &bs, bias) >= 0);
    struct lvk_attr grp = {.name = "group", .type = LVK_ATTR_INT, .i = 2};
    assert_int_equal(lvk_graph_add_node(m, "Conv", "c1", (const char *[]){"in", "w1"}, 2,
                                        (const char *[]){"c1/out"}, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Relu", "r1", (const char *[]){"c1/out"}, 1,
                                        (const char *[]){"c1/relu"}, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Conv", "c2", (const char *[]){"c1/relu", "w2"}, 2,
                                        (const char *[]){"c2/out"}, 1, &grp, 1), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Add", "add", (const char *[]){"b", "c2/out"}, 2,
                                        (const char *[]){"out"}, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Add", "res", (const char *[]){"c1/relu", "c1/relu"}, 2,
                                        (const char *[]){"out2"}, 1, NULL, 0), LVK_OK);
    return m;
}

static void test_find_conv(void **state)
{
    float w1[2 * 3 * 9], w2[2 * 25];
    for (int i = 0; i < 54; i++)
        w1[i] = (float)i;
    for (int i = 0; i < 50; i++)
        w2[i] = (float)-i;
    struct lvk_model *m = graph(w1, w2);
    struct lvk_conv_weights cw;
    const char *to_c1[] = {NULL, "c1", "c1/out", "c1/relu"};
    for (size_t i = 0; i < 4; i++) {
        if (lvk_conv_weights_find(m, to_c1[i], &cw) != LVK_OK)
            fail_msg("%s: %s", to_c1[i] ? to_c1[i] : "(default)", lvk_last_error());
        assert_string_equal(cw.node, "c1");
        assert_string_equal(cw.tensor, "w1");
        assert_int_equal(cw.cout, 2);
        assert_int_equal(cw.cin, 3);
        assert_int_equal(cw.kh, 3);
        assert_int_equal(cw.group, 1);
        assert_string_equal(cw.output, "c1/out");
        assert_true(cw.sees_image);
        assert_memory_equal(cw.w, w1, sizeof w1);
        lvk_conv_weights_free(&cw);
    }
    assert_int_equal(lvk_conv_weights_find(m, "out", &cw), LVK_OK);
    assert_string_equal(cw.node, "c2");
    assert_int_equal(cw.cin, 1);
    assert_int_equal(cw.kw, 5);
    assert_int_equal(cw.group, 2);
    assert_string_equal(cw.output, "c2/out");
    assert_false(cw.sees_image); /* its input is c1's */
    assert_memory_equal(cw.w, w2, sizeof w2);
    lvk_conv_weights_free(&cw);
    assert_int_equal(lvk_conv_weights_find(m, "out2", &cw), LVK_ERR_NOT_FOUND);
    assert_int_equal(lvk_conv_weights_find(m, "nope", &cw), LVK_ERR_NOT_FOUND);
    assert_non_null(strstr(lvk_last_error(), "'nope'"));
    lvk_model_destroy(m);
}

/* Position (y * w + x) of the top-left corner of kernel k (3 x S x S) drawn
 * at zoom z with its own scale, or -1. */
static long find_tile(const struct lvk_image *img, const float *k, int S, int z)
{
    float mx = 0;
    for (int i = 0; i < 3 * S * S; i++)
        mx = fmaxf(mx, fabsf(k[i]));
    const size_t plane = (size_t)img->w * img->h;
    for (int y0 = 0; y0 + S * z <= img->h; y0++)
        for (int x0 = 0; x0 + S * z <= img->w; x0++) {
            int ok = 1;
            for (int c = 0; c < 3 && ok; c++)
                for (int y = 0; y < S * z && ok; y++)
                    for (int x = 0; x < S * z && ok; x++) {
                        float want = 0.5f + 0.5f * k[(c * S + y / z) * S + x / z] / mx;
                        ok = fabsf(img->data[c * plane + (size_t)(y0 + y) * img->w + x0 + x] - want) < 1e-6f;
                    }
            if (ok)
                return (long)y0 * img->w + x0;
        }
    return -1;
}

static void test_json_and_picture(void **state)
{
    /* Four Gabors at 0, 45, 90, 135 degrees, stored in a scrambled order. */
    enum { S = 7, T = 3 * S * S };
    const double angles[4] = {90, 0, 135, 45};
    struct lvk_conv_weights cw = {.cout = 4, .cin = 3, .kh = S, .kw = S, .group = 1};
    snprintf(cw.node, sizeof cw.node, "conv1");
    snprintf(cw.tensor, sizeof cw.tensor, "conv1/w");
    float w[4 * T];
    cw.w = w;
    struct lvk_kernel_stats st[4];
    for (int k = 0; k < 4; k++) {
        gabor(w + k * T, S, angles[k], 3.5, 1.5, 0);
        memcpy(w + k * T + S * S, w + k * T, sizeof(float) * S * S);
        memcpy(w + k * T + 2 * S * S, w + k * T, sizeof(float) * S * S);
        assert_int_equal(lvk_kernel_stats(w + k * T, 3, S, S, &st[k]), LVK_OK);
    }
    int order[4];
    lvk_kernels_rank(st, 4, LVK_RANK_ORIENTATION, order);
    assert_memory_equal(order, ((int[]){1, 3, 0, 2}), sizeof order);

    char path[] = "/tmp/lvk_kernels_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(lvk_kernels_write_json(path, &cw, st, order, LVK_RANK_ORIENTATION, LVK_ORIENT_SPECTRUM,
                                            NULL), LVK_OK);
    struct lvk_json *j;
    assert_int_equal(lvk_json_read(path, &j), LVK_OK);
    unlink(path);
    assert_string_equal(lvk_json_get(j, "layer")->string, "conv1");
    assert_string_equal(lvk_json_get(j, "rank")->string, "orientation");
    assert_string_equal(lvk_json_get(j, "method")->string, "spectrum");
    assert_null(lvk_json_get(j, "response_of"));
    const struct lvk_json *ks = lvk_json_get(j, "kernels");
    assert_int_equal(ks->count, 4);
    for (int r = 0; r < 4; r++) {
        const struct lvk_json *e = lvk_json_at(ks, (size_t)r);
        assert_int_equal((int)lvk_json_get(e, "index")->number, order[r]);
        assert_true(angle_diff(lvk_json_get(e, "orientation")->number, 45.0 * r) <= ANGLE_TOL);
    }
    lvk_json_free(j);

    /* The picture: each kernel, upscaled 7 times (to 49 px), scaled so its
     * largest |w| reaches 0 or 1 with 0 at mid-gray, appears in rank order
     * (left to right, top to bottom). */
    struct lvk_image img;
    assert_int_equal(lvk_kernels_render(&cw, order, 4, st, LVK_RANK_ORIENTATION, 0, 0, &img), LVK_OK);
    assert_int_equal(img.c, 3);
    long last = -1;
    for (int r = 0; r < 4; r++) {
        long at = find_tile(&img, w + order[r] * T, S, 7);
        if (at < 0)
            fail_msg("kernel %d (rank %d) is not in the picture", order[r], r);
        long row = at / img.w, col = at % img.w, lrow = last / img.w, lcol = last % img.w;
        if (last >= 0)
            assert_true(row > lrow || (row == lrow && col > lcol));
        last = at;
    }
    lvk_image_free(&img);
}

/* ---- gratings ---------------------------------------------------------------------- */

#define GRATING_ANGLES 36
#define GRATING_PHASES 8

/* The Conv node behind `layer` in a parsed (unfinalized) graph. */
static const struct lvk_node *conv_node(const struct lvk_model *m, const struct lvk_conv_weights *cw)
{
    for (int i = 0; i < m->nnodes; i++)
        if (m->nodes[i].name && !strcmp(m->nodes[i].name, cw->node))
            return &m->nodes[i];
    fail_msg("no node '%s'", cw->node);
    return NULL;
}

/* kernels.h's grating definition for a single-channel 3x3 conv with
 * padding 1 (the demo's conv1), written out in double from its weights w
 * [K, 1, 3, 3] and bias [K]: responses of every unit of the central half
 * of an H x W map to each grating, rectified and averaged, then the
 * preferred frequency and the doubled-angle mean there. */
static void grating_reference(const float *w, const float *bias, int K, int H, int W,
                              const struct lvk_preproc *pre, struct lvk_kernel_stats *out)
{
    enum { A = GRATING_ANGLES, P = GRATING_PHASES, MAXF = 16 };
    double freq[MAXF];
    int F = 0;
    for (int j = 0; F < MAXF; j++) {
        double f = pow(2.0, -(j + 3) / 2.0);
        if (f * (H < W ? H : W) < 2)
            break;
        freq[F++] = f;
    }
    double *r = calloc((size_t)F * A * K, sizeof *r), *img = malloc((size_t)H * W * sizeof *img);
    const int y0 = H / 4, y1 = H - H / 4, x0 = W / 4, x1 = W - W / 4;
    const double n = (double)P * (y1 - y0) * (x1 - x0);
    for (int fi = 0; fi < F; fi++)
        for (int ai = 0; ai < A; ai++)
            for (int pi = 0; pi < P; pi++) {
                const double th = PI * ai / A, phi = 2 * PI * pi / P;
                for (int y = 0; y < H; y++)
                    for (int x = 0; x < W; x++) {
                        double g = 0.5 + 0.5 * cos(2 * PI * freq[fi] * ((x - (W - 1) / 2.0) * cos(th) +
                                                                       ((H - 1) / 2.0 - y) * sin(th)) + phi);
                        img[y * W + x] = (pre->lo + g * (pre->hi - pre->lo) - pre->mean[0]) / pre->std[0];
                    }
                for (int k = 0; k < K; k++)
                    for (int y = y0; y < y1; y++)
                        for (int x = x0; x < x1; x++) {
                            double a = bias[k];
                            for (int dr = 0; dr < 3; dr++)
                                for (int ds = 0; ds < 3; ds++) {
                                    int yy = y + dr - 1, xx = x + ds - 1;
                                    if (yy >= 0 && yy < H && xx >= 0 && xx < W)
                                        a += w[k * 9 + dr * 3 + ds] * img[yy * W + xx];
                                }
                            r[((size_t)fi * A + ai) * K + k] += fmax(a, 0) / n;
                        }
            }
    for (int k = 0; k < K; k++) {
        int best = 0;
        double best_peak = 0;
        for (int fi = 0; fi < F; fi++) {
            double peak = 0;
            for (int ai = 0; ai < A; ai++)
                peak = fmax(peak, r[((size_t)fi * A + ai) * K + k]);
            if (peak > best_peak) {
                best_peak = peak;
                best = fi;
            }
        }
        if (best_peak == 0) {
            out[k] = (struct lvk_kernel_stats){0};
            continue;
        }
        double zr = 0, zi = 0, sum = 0;
        for (int ai = 0; ai < A; ai++) {
            double v = r[((size_t)best * A + ai) * K + k];
            zr += v * cos(2 * PI * ai / A);
            zi += v * sin(2 * PI * ai / A);
            sum += v;
        }
        double deg = fmod(atan2(zi, zr) * 90 / PI + 180, 180);
        out[k] = (struct lvk_kernel_stats){.orientation = (float)deg, .selectivity = (float)(hypot(zr, zi) / sum),
                                           .frequency = (float)freq[best]};
    }
    free(r);
    free(img);
}

/* Orientation of a kernel's power spectrum on the ring |f| = f alone
 * (1x3x3 kernel, mean removed as lvk_kernel_stats does). */
static double ring_orientation(const float *w, double f)
{
    double mean = 0, zr = 0, zi = 0;
    for (int i = 0; i < 9; i++)
        mean += w[i] / 9.0;
    for (int ai = 0; ai < 360; ai++) {
        const double th = PI * ai / 360, fx = f * cos(th), fy = f * sin(th);
        double re = 0, im = 0;
        for (int r = 0; r < 3; r++)
            for (int s = 0; s < 3; s++) {
                double ph = -2 * PI * (fx * (s - 1) + fy * (1 - r));
                re += (w[r * 3 + s] - mean) * cos(ph);
                im += (w[r * 3 + s] - mean) * sin(ph);
            }
        zr += (re * re + im * im) * cos(2 * th);
        zi += (re * re + im * im) * sin(2 * th);
    }
    return fmod(atan2(zi, zr) * 90 / PI + 180, 180);
}

/* The demo's first conv: the device measurement is the definition, and it
 * agrees with the spectrum on the strongly oriented channels.
 *
 * Tolerance against the spectrum: the spectrum averages the doubled angle
 * over every frequency of the band, out to its corners (|f| up to 0.71
 * cycles/pixel), weighted by power; gratings read it at the one frequency
 * (at most 0.354; higher ones alias) where the channel responds most,
 * weighted by rectified response. A 3x3 kernel's orientation drifts with
 * frequency, so the two differ by that drift, not by noise. The test
 * measures it: on the ring of the frequency the gratings chose, the
 * spectrum (from the weights, in double) must point within 3 degrees of
 * the gratings (same frequency, power against rectified amplitude), and
 * the whole spectrum within 10 degrees, which covers the largest drift
 * between that ring and the whole band on these channels (channel 1: 17.4
 * degrees at 0.354 cycles/pixel, 10.7 overall) with a margin. */
static void test_gratings_first_layer(void **state)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    struct lvk_model_opts mo = {0};
    struct lvk_model *m;
    assert_int_equal(lvk_onnx_load_graph(NULL, LVK_DEMO_MODEL, &mo, NULL, 0, &m), LVK_OK);
    struct lvk_conv_weights cw;
    assert_int_equal(lvk_conv_weights_find(m, "conv1", &cw), LVK_OK);
    assert_true(cw.sees_image);
    assert_string_equal(cw.output, "conv1");
    assert_int_equal(cw.cin, 1);
    assert_int_equal(cw.kh, 3);
    assert_int_equal(cw.kw, 3);
    const struct lvk_node *n = conv_node(m, &cw);
    int64_t pads[4];
    assert_int_equal(lvk_attr_ints(n, "pads", pads, 4), 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pads[i], 1);
    assert_int_equal(lvk_attr_int(n, "group", 1), 1);
    const struct lvk_value *bv = &m->values[n->inputs[2]];
    assert_non_null(bv->host);
    const int K = cw.cout, H = 28, W = 28;

    const struct lvk_preproc pre = lvk_test_demo_preproc();
    const struct lvk_grating_opts go = {0};
    struct lvk_kernel_stats *spec = calloc((size_t)K, sizeof *spec), *gr = calloc((size_t)K, sizeof *gr),
                            *gr_relu = calloc((size_t)K, sizeof *gr_relu), *ref = calloc((size_t)K, sizeof *ref);
    for (int k = 0; k < K; k++)
        assert_int_equal(lvk_kernel_stats(cw.w + k * 9, 1, 3, 3, &spec[k]), LVK_OK);
    if (lvk_grating_stats(ctx, LVK_DEMO_MODEL, "conv1", &pre, &go, gr, K) != LVK_OK)
        fail_msg("%s", lvk_last_error());
    assert_int_equal(lvk_grating_stats(ctx, LVK_DEMO_MODEL, "conv1_relu", &pre, &go, gr_relu, K), LVK_OK);
    lvk_test_assert_no_validation();
    grating_reference(cw.w, bv->host, K, H, W, &pre, ref);

    int strong = 0;
    for (int k = 0; k < K; k++) {
        /* Rectifying each unit makes the Conv and its Relu one measurement. */
        assert_float_equal(gr[k].orientation, gr_relu[k].orientation, 1e-6);
        assert_float_equal(gr[k].selectivity, gr_relu[k].selectivity, 1e-6);
        assert_float_equal(gr[k].frequency, gr_relu[k].frequency, 0);
        /* The definition, recomputed. */
        if (gr[k].frequency != ref[k].frequency || angle_diff(gr[k].orientation, ref[k].orientation) > 0.05 ||
            fabs(gr[k].selectivity - ref[k].selectivity) > 1e-3)
            fail_msg("channel %d: gratings give %.3f deg, selectivity %.4f, %.3f cycles/px; the reference "
                     "%.3f deg, %.4f, %.3f", k, gr[k].orientation, gr[k].selectivity, gr[k].frequency,
                     ref[k].orientation, ref[k].selectivity, ref[k].frequency);
        if (spec[k].selectivity <= 0.5)
            continue;
        strong++;
        const double ring = ring_orientation(cw.w + k * 9, gr[k].frequency);
        print_message("channel %2d: spectrum %6.1f deg (selectivity %.3f), ring |f| = %.3f %6.1f, gratings "
                      "%6.1f (selectivity %.3f)\n", k, spec[k].orientation, spec[k].selectivity,
                      gr[k].frequency, ring, gr[k].orientation, gr[k].selectivity);
        if (angle_diff(gr[k].orientation, ring) > 3)
            fail_msg("channel %d: gratings %.1f deg, the spectrum on their frequency's ring %.1f", k,
                     gr[k].orientation, ring);
        if (angle_diff(gr[k].orientation, spec[k].orientation) > 10)
            fail_msg("channel %d: gratings %.1f deg, the spectrum %.1f", k, gr[k].orientation,
                     spec[k].orientation);
    }
    assert_true(strong >= 3); /* the comparison must have something to compare */
    free(spec);
    free(gr);
    free(gr_relu);
    free(ref);
    lvk_conv_weights_free(&cw);
    lvk_model_destroy(m);
}

/* Past the first layer: units of known orientation behind a ReLU and a 1x1
 * conv, measured through the command as a user runs it. */
static void test_gratings_later_layer(void **state)
{
    if (!lvk_test_ctx())
        skip();
    /* tests/ref/make_gabor_model.py: output j of 'mix' is the angle ANGLES[PERM[j]]. */
    static const double angles[8] = {0, 17, 41, 73, 90, 118, 152, 166};
    static const int perm[8] = {5, 2, 7, 0, 3, 6, 1, 4};
    const char *model = LVK_SOURCE_DIR "/tests/data/kernels/gabor_later.onnx";
    struct lvk_model_opts mo = {0};
    struct lvk_model *m;
    assert_int_equal(lvk_onnx_load_graph(NULL, model, &mo, NULL, 0, &m), LVK_OK);
    struct lvk_conv_weights cw;
    assert_int_equal(lvk_conv_weights_find(m, "mix", &cw), LVK_OK);
    assert_false(cw.sees_image);
    lvk_conv_weights_free(&cw);
    assert_int_equal(lvk_conv_weights_find(m, "gabor_relu", &cw), LVK_OK);
    assert_true(cw.sees_image);
    lvk_conv_weights_free(&cw);
    lvk_model_destroy(m);

    char json[] = "/tmp/lvk_gratings_XXXXXX", args[2048];
    int fd = mkstemp(json);
    assert_true(fd >= 0);
    close(fd);
    snprintf(args, sizeof args, "kernels '%s' -l mix --json '%s'", model, json);
    assert_int_equal(lvk_test_cli("", args, NULL, "/dev/stderr"), 0);
    struct lvk_json *j;
    assert_int_equal(lvk_json_read(json, &j), LVK_OK);
    unlink(json);
    assert_string_equal(lvk_json_get(j, "method")->string, "gratings");
    assert_string_equal(lvk_json_get(j, "response_of")->string, "mix");
    const struct lvk_json *ks = lvk_json_get(j, "kernels");
    assert_int_equal(ks->count, 8);
    double prev = -1;
    for (int r = 0; r < 8; r++) {
        const struct lvk_json *e = lvk_json_at(ks, (size_t)r);
        const int k = (int)lvk_json_get(e, "index")->number;
        const double o = lvk_json_get(e, "orientation")->number, sel = lvk_json_get(e, "selectivity")->number;
        print_message("mix:%d  want %5.1f deg, measured %6.2f (selectivity %.3f, %.3f cycles/px)\n", k,
                      angles[perm[k]], o, sel, lvk_json_get(e, "frequency")->number);
        if (angle_diff(o, angles[perm[k]]) > ANGLE_TOL)
            fail_msg("mix:%d: orientation %.2f, want %.0f +/- %.0f", k, o, angles[perm[k]], ANGLE_TOL);
        assert_true(sel > 0.5);
        assert_true(o >= prev); /* ranked by orientation: one output path with the spectrum's */
        prev = o;
    }
    lvk_json_free(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gabor_orientation),
        cmocka_unit_test(test_dead_kernel),
        cmocka_unit_test(test_isotropic),
        cmocka_unit_test(test_colour),
        cmocka_unit_test(test_rank),
        cmocka_unit_test(test_find_conv),
        cmocka_unit_test(test_json_and_picture),
        cmocka_unit_test(test_gratings_first_layer),
        cmocka_unit_test(test_gratings_later_layer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
