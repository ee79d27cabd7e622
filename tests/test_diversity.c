/* Diversity renders on the demo model (assets/demo): K images of one
 * channel, rendered with the same seed once with "+ 0.3*diversity(L)"
 * (what 'lucidvk render --diversity K' adds by default) and once without.
 * Judged on the final images by the model itself, run without transforms:
 * with the term the images' Gram matrices at L (each scaled to unit
 * length, as the objective does) are farther apart on average than without
 * it, and the channel still rises above its value on the initial noise in
 * every image, so the weight does not swamp the channel objective.
 * (Lucid's 1e2, made for InceptionV1's much larger activations, does here:
 * with it, and already with 1, some images end with the channel at its
 * noise level.) */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "support/demo.h"
#include "support/op_harness.h"

#define LAYER "conv4_relu"
#define CHANNEL 0
#define K 4

/* Mean pairwise Euclidean distance between the images' unit-length Gram
 * matrices at LAYER, in double, from the activations the model computes
 * on the images. */
static double gram_spread(const float *images, int h, int w)
{
    struct lvk_tensor_info t;
    float *a = lvk_test_demo_run(images, K, h, w, LAYER, &t);
    assert_int_equal(t.ndim, 4);
    int C = (int)t.shape[1], S = (int)(t.shape[2] * t.shape[3]);
    double *g = calloc((size_t)K * C * C, sizeof *g);
    for (int b = 0; b < K; b++) {
        double *gb = g + (size_t)b * C * C, norm = 0;
        const float *ab = a + (size_t)b * C * S;
        for (int i = 0; i < C; i++)
            for (int j = 0; j < C; j++) {
                double s = 0;
                for (int q = 0; q < S; q++)
                    s += (double)ab[i * S + q] * ab[j * S + q];
                gb[i * C + j] = s;
                norm += s * s;
            }
        norm = sqrt(norm);
        for (int i = 0; i < C * C; i++)
            gb[i] /= norm > 1e-5 ? norm : 1e-5;
    }
    double sum = 0;
    for (int b1 = 0; b1 < K; b1++)
        for (int b2 = b1 + 1; b2 < K; b2++) {
            double d = 0;
            for (int i = 0; i < C * C; i++) {
                double e = g[(size_t)b1 * C * C + i] - g[(size_t)b2 * C * C + i];
                d += e * e;
            }
            sum += sqrt(d);
        }
    free(g);
    free(a);
    return sum / (K * (K - 1) / 2);
}

/* CHANNEL's mean activation at LAYER on each of the K images, from a plain
 * forward pass of the model (not the render's own measurement). */
static void channel_means(const float *images, int h, int w, double *out)
{
    struct lvk_tensor_info t;
    float *a = lvk_test_demo_run(images, K, h, w, LAYER, &t);
    lvk_test_channel_means(a, &t, CHANNEL, out);
    free(a);
}

static void test_diversity_spreads(void **state)
{
    const char *text[2] = {"channel(" LAYER ", 0)", "channel(" LAYER ", 0) + 0.3*diversity(" LAYER ")"};
    struct lvk_render_result r[2];
    double spread[2];
    for (int v = 0; v < 2; v++) {
        struct lvk_render_opts o = {.objective = text[v], .batch = K, .steps = 128, .seed = 11,
                                    .redirect_steps = -1};
        lvk_test_demo_render(&o, &r[v]);
        spread[v] = gram_spread(r[v].images, r[v].height, r[v].width);
    }
    /* Same seed: the same starting images. */
    size_t n = (size_t)K * r[0].height * r[0].width;
    assert_memory_equal(r[0].initial, r[1].initial, n * sizeof(float));
    double noise = gram_spread(r[0].initial, r[0].height, r[0].width);
    print_message("Gram spread at " LAYER ": noise %.4f, channel only %.4f, with diversity %.4f\n", noise,
                  spread[0], spread[1]);
    assert_true(spread[1] > 1.5 * spread[0]);
    double c0[K], c1[K], c2[K];
    channel_means(r[1].initial, r[1].height, r[1].width, c0);
    channel_means(r[1].images, r[1].height, r[1].width, c1);
    channel_means(r[0].images, r[0].height, r[0].width, c2);
    for (int b = 0; b < K; b++) {
        print_message("image %d: channel %d mean %.4f on noise, %.4f without diversity, %.4f with\n", b,
                      CHANNEL, c0[b], c2[b], c1[b]);
        assert_true(c1[b] > c0[b] + 0.02);
    }
    for (int v = 0; v < 2; v++)
        lvk_render_result_free(&r[v]);
    lvk_test_assert_no_validation();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diversity_spreads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
