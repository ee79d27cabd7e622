/* Colormaps (src/io/colormap.c) against matplotlib:
 *   - lvk_cmap_rgb(t) equals matplotlib's cmap(t) for float t at band
 *     edges, band centres, the ends, outside [0, 1] and random points
 *     (tests/data/colormap/samples.npy from tests/ref/make_colormaps.py,
 *     which uses matplotlib's own float-to-index rule);
 *   - the ends of the perceptually uniform maps equal the published values
 *     (typed in from the maps' authors' data, independent of the generator);
 *   - gray is i/255; NaN gives the low end;
 *   - names parse and round-trip, unknown names fail naming the choices;
 *   - the colour bar runs from the top colour at the top to the bottom
 *     colour at the bottom, constant along rows. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "io/colormap.h"

static void test_matches_matplotlib(void **state)
{
    struct lvk_npy a;
    assert_int_equal(lvk_npy_read(LVK_SOURCE_DIR "/tests/data/colormap/samples.npy", &a), LVK_OK);
    assert_int_equal(a.ndim, 3);
    assert_int_equal(a.shape[0], 5);
    assert_int_equal(a.shape[2], 4);
    /* The samples are stored in enum order (gray, viridis, magma, inferno, plasma). */
    for (int c = 0; c < 5; c++)
        for (int64_t i = 0; i < a.shape[1]; i++) {
            const float *s = a.data + (c * a.shape[1] + i) * 4;
            float rgb[3];
            lvk_cmap_rgb((enum lvk_cmap)c, s[0], rgb);
            for (int k = 0; k < 3; k++)
                if (rgb[k] != s[1 + k])
                    fail_msg("%s(%.9g)[%d] = %.9g, matplotlib %.9g", lvk_cmap_name((enum lvk_cmap)c),
                             s[0], k, rgb[k], s[1 + k]);
        }
    lvk_npy_free(&a);
}

static void expect_rgb(enum lvk_cmap c, float t, float r, float g, float b)
{
    float rgb[3];
    lvk_cmap_rgb(c, t, rgb);
    assert_float_equal(rgb[0], r, 1e-6);
    assert_float_equal(rgb[1], g, 1e-6);
    assert_float_equal(rgb[2], b, 1e-6);
}

static void test_published_ends(void **state)
{
    expect_rgb(LVK_CMAP_VIRIDIS, 0, 0.267004f, 0.004874f, 0.329415f);
    expect_rgb(LVK_CMAP_VIRIDIS, 1, 0.993248f, 0.906157f, 0.143936f);
    expect_rgb(LVK_CMAP_MAGMA, 0, 0.001462f, 0.000466f, 0.013866f);
    expect_rgb(LVK_CMAP_MAGMA, 1, 0.987053f, 0.991438f, 0.749504f);
    expect_rgb(LVK_CMAP_INFERNO, 0, 0.001462f, 0.000466f, 0.013866f);
    expect_rgb(LVK_CMAP_INFERNO, 1, 0.988362f, 0.998364f, 0.644924f);
    expect_rgb(LVK_CMAP_PLASMA, 0, 0.050383f, 0.029803f, 0.527975f);
    expect_rgb(LVK_CMAP_PLASMA, 1, 0.940015f, 0.975158f, 0.131326f);
}

static void test_gray_and_nan(void **state)
{
    for (int i = 0; i < 256; i++) {
        float v = i / 255.0f;
        expect_rgb(LVK_CMAP_GRAY, (i + 0.5f) / 256.0f, v, v, v);
    }
    expect_rgb(LVK_CMAP_VIRIDIS, NAN, 0.267004f, 0.004874f, 0.329415f);
    expect_rgb(LVK_CMAP_VIRIDIS, -INFINITY, 0.267004f, 0.004874f, 0.329415f);
    expect_rgb(LVK_CMAP_VIRIDIS, INFINITY, 0.993248f, 0.906157f, 0.143936f);
}

static void test_names(void **state)
{
    static const char *const names[] = {"gray", "viridis", "magma", "inferno", "plasma"};
    for (int i = 0; i < 5; i++) {
        enum lvk_cmap c;
        assert_int_equal(lvk_cmap_parse(names[i], &c), LVK_OK);
        assert_int_equal(c, i);
        assert_string_equal(lvk_cmap_name(c), names[i]);
    }
    enum lvk_cmap c;
    assert_int_equal(lvk_cmap_parse("jet", &c), LVK_ERR_INVALID_ARG);
    assert_non_null(strstr(lvk_last_error(), "'jet'"));
    assert_non_null(strstr(lvk_last_error(), "viridis"));
}

static void test_bar(void **state)
{
    struct lvk_image bar;
    const int w = 7, h = 300;
    assert_int_equal(lvk_cmap_bar(LVK_CMAP_MAGMA, w, h, &bar), LVK_OK);
    assert_int_equal(bar.w, w);
    assert_int_equal(bar.h, h);
    assert_int_equal(bar.c, 3);
    size_t plane = (size_t)w * h;
    float top[3], bottom[3];
    lvk_cmap_rgb(LVK_CMAP_MAGMA, 1, top);
    lvk_cmap_rgb(LVK_CMAP_MAGMA, 0, bottom);
    for (int k = 0; k < 3; k++) {
        assert_true(bar.data[k * plane] == top[k]);
        assert_true(bar.data[k * plane + (size_t)(h - 1) * w] == bottom[k]);
    }
    for (int y = 0; y < h; y++)
        for (int x = 1; x < w; x++)
            for (int k = 0; k < 3; k++)
                assert_true(bar.data[k * plane + (size_t)y * w + x] == bar.data[k * plane + (size_t)y * w]);
    lvk_image_free(&bar);

    /* Gray is monotone: darker downwards, and with more rows than colours
     * every one of the 256 levels appears. */
    assert_int_equal(lvk_cmap_bar(LVK_CMAP_GRAY, 1, h, &bar), LVK_OK);
    int levels = 1;
    for (int y = 1; y < h; y++) {
        assert_true(bar.data[y - 1] >= bar.data[y]);
        levels += bar.data[y - 1] != bar.data[y];
    }
    assert_int_equal(levels, 256);
    lvk_image_free(&bar);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_matplotlib),
        cmocka_unit_test(test_published_ends),
        cmocka_unit_test(test_gray_and_nan),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_bar),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
