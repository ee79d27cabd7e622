/* Interpolation onto a grid (src/analysis/interp.c):
 *   - the convex hull is convex, counter-clockwise and holds every point;
 *     a square with interior and edge points has exactly its 4 corners;
 *   - the hull mask equals a per-pixel half-plane test;
 *   - nearest equals a brute-force nearest search (lowest index on ties),
 *     on uniform, clustered and duplicated points, blank outside the hull;
 *   - linear reproduces a linear function of the coordinates exactly
 *     inside the hull and is blank outside it, also on a lattice (points
 *     on common circles, where the triangulation is not unique);
 *   - collinear points fail clearly. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "analysis/interp.h"
#include "lvk_util.h"
#include "support/devbuf.h"

/* n points: uniform in a disc of radius 0.9, or in a few tight clusters,
 * with some exact duplicates. */
static float *points(int n, bool clustered, unsigned seed)
{
    float *xy = calloc(2 * (size_t)n, sizeof *xy);
    for (int i = 0; i < n; i++) {
        double r = 0.9 * sqrt(uniform_open(&seed)), a = 2 * M_PI * uniform_open(&seed);
        if (clustered) {
            int c = i % 4;
            r = 0.05 * r + 0.6;
            a = a * 0.02 + c * M_PI / 2;
        }
        xy[2 * i] = (float)(r * cos(a));
        xy[2 * i + 1] = (float)(r * sin(a));
        if (i % 17 == 16) { /* a duplicate of an earlier point */
            xy[2 * i] = xy[2 * (i / 2)];
            xy[2 * i + 1] = xy[2 * (i / 2) + 1];
        }
    }
    return xy;
}

static double cross(const float *o, const float *a, double px, double py)
{
    return ((double)a[0] - o[0]) * (py - o[1]) - ((double)a[1] - o[1]) * (px - o[0]);
}

static void test_hull(void **state)
{
    const int n = 400;
    float *xy = points(n, false, 3);
    int hull[400], nh;
    assert_int_equal(lvk_convex_hull(xy, n, hull, &nh), LVK_OK);
    assert_true(nh >= 3);
    for (int e = 0; e < nh; e++) {
        const float *a = xy + 2 * hull[e], *b = xy + 2 * hull[(e + 1) % nh];
        const float *c = xy + 2 * hull[(e + 2) % nh];
        assert_true(cross(a, b, c[0], c[1]) > 0); /* strictly convex, counter-clockwise */
        for (int i = 0; i < n; i++)
            assert_true(cross(a, b, xy[2 * i], xy[2 * i + 1]) >= 0);
    }
    free(xy);

    /* Square corners (listed after the others), points on its edges, inside,
     * and a repeated corner. */
    const float sq[] = {0, 0,  0.5f, -1,  1, 0.25f,  -1, 0.5f,  0.2f, 0.3f,
                        -1, -1,  1, -1,  1, 1,  -1, 1,  1, 1};
    assert_int_equal(lvk_convex_hull(sq, 10, hull, &nh), LVK_OK);
    assert_int_equal(nh, 4);
    int corners = 0;
    for (int e = 0; e < nh; e++) {
        const float *p = sq + 2 * hull[e];
        assert_true(fabsf(p[0]) == 1 && fabsf(p[1]) == 1);
        corners |= 1 << ((p[0] > 0) + 2 * (p[1] > 0));
    }
    assert_int_equal(corners, 15);

    const float line[] = {0, 0, 0.5f, 0.5f, -0.25f, -0.25f, 1, 1};
    assert_int_equal(lvk_convex_hull(line, 4, hull, &nh), LVK_ERR_INVALID_ARG);
    assert_non_null(strstr(lvk_last_error(), "do not span an area"));
}

static void test_mask(void **state)
{
    const int n = 300, res = 131;
    float *xy = points(n, false, 8);
    int hull[300], nh;
    assert_int_equal(lvk_convex_hull(xy, n, hull, &nh), LVK_OK);
    uint8_t *mask = calloc((size_t)res * res, 1);
    assert_int_equal(lvk_hull_mask(xy, n, res, mask), LVK_OK);
    int inside = 0;
    for (int r = 0; r < res; r++)
        for (int c = 0; c < res; c++) {
            bool in = true;
            for (int e = 0; e < nh; e++)
                in &= cross(xy + 2 * hull[e], xy + 2 * hull[(e + 1) % nh], lvk_grid_x(c, res),
                            lvk_grid_y(r, res)) >= 0;
            assert_int_equal(mask[(size_t)r * res + c], in);
            inside += in;
        }
    /* The disc of radius 0.9 covers about pi 0.81 / 4 of the square. */
    assert_true(inside > 0.55 * res * res && inside < 0.65 * res * res);
    free(mask);
    free(xy);
}

/* The linear function linear interpolation must reproduce. */
static double plane(double x, double y) { return 0.3 + 1.7 * x - 0.9 * y; }

/* Interpolates n points (uniform or clustered, from `seed`) onto a res x res
 * grid and checks every pixel: blank outside the hull mask; inside it,
 * nearest (values: the point indices) gives the index a brute-force search
 * finds (lowest on ties), exactly, and linear (values: plane() at the
 * points) gives plane() at the pixel within 1e-5. */
static void check_interp(bool linear, int n, bool clustered, int res, unsigned seed)
{
    float *xy = points(n, clustered, seed), *v = calloc((size_t)n, sizeof *v);
    for (int i = 0; i < n; i++)
        v[i] = linear ? (float)plane(xy[2 * i], xy[2 * i + 1]) : (float)i;
    float *grid = calloc((size_t)res * res, sizeof *grid);
    uint8_t *mask = calloc((size_t)res * res, 1);
    assert_int_equal((linear ? lvk_interp_linear : lvk_interp_nearest)(xy, v, n, res, grid), LVK_OK);
    assert_int_equal(lvk_hull_mask(xy, n, res, mask), LVK_OK);
    for (int r = 0; r < res; r++)
        for (int c = 0; c < res; c++) {
            float g = grid[(size_t)r * res + c];
            if (!mask[(size_t)r * res + c]) {
                assert_true(isnan(g));
                continue;
            }
            double px = lvk_grid_x(c, res), py = lvk_grid_y(r, res), want;
            if (linear) {
                want = plane(px, py);
            } else {
                double bd = INFINITY;
                want = -1;
                for (int i = 0; i < n; i++) {
                    double dx = px - xy[2 * i], dy = py - xy[2 * i + 1], d = dx * dx + dy * dy;
                    if (d < bd) {
                        bd = d;
                        want = i;
                    }
                }
            }
            if (!(fabs(g - want) <= (linear ? 1e-5 : 0.0)))
                fail_msg("%s, pixel (%d, %d): %g, expected %g", linear ? "linear" : "nearest", r, c, g, want);
        }
    free(xy);
    free(v);
    free(grid);
    free(mask);
}

static void test_nearest(void **state)
{
    check_interp(false, 500, false, 97, 1);
    check_interp(false, 700, true, 120, 2);
    check_interp(false, 3, false, 64, 3);
}

static void test_linear(void **state)
{
    check_interp(true, 800, false, 157, 5);
    check_interp(true, 800, true, 157, 6);
    /* On a regular lattice (co-circular points everywhere) too. */
    float lat[2 * 49], lv[49], grid[64 * 64];
    for (int i = 0; i < 49; i++) {
        lat[2 * i] = -0.9f + 0.3f * (i % 7);
        lat[2 * i + 1] = -0.9f + 0.3f * (i / 7);
        lv[i] = 2 * lat[2 * i] + lat[2 * i + 1];
    }
    assert_int_equal(lvk_interp_linear(lat, lv, 49, 64, grid), LVK_OK);
    /* Points on a line: no triangles, a clear failure. */
    const float line[] = {0, 0, 0.5f, 0.5f, -0.25f, -0.25f};
    assert_int_equal(lvk_interp_linear(line, lv, 3, 64, grid), LVK_ERR_INVALID_ARG);
    assert_non_null(strstr(lvk_last_error(), "do not span an area"));
    for (int r = 0; r < 64; r++)
        for (int c = 0; c < 64; c++) {
            double x = lvk_grid_x(c, 64), y = lvk_grid_y(r, 64);
            if (fabs(x) < 0.89 && fabs(y) < 0.89)
                assert_float_equal(grid[r * 64 + c], 2 * x + y, 1e-5);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hull),
        cmocka_unit_test(test_mask),
        cmocka_unit_test(test_nearest),
        cmocka_unit_test(test_linear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
