/* Affine resampling (shaders/affine_*.comp) and Lucid's standard transforms
 * (src/optvis/transforms.c).
 *   - identity and integer-shift maps copy pixels exactly;
 *   - forward vs a double-precision CPU bilinear sampler, for rotations,
 *     scales, translations and unequal, non-square sizes;
 *   - backward vs the CPU sampler's transpose (scatter) elementwise, and
 *     <T x, y> = <x, T^T y> to 1e-4 relative on the device alone;
 *   - the composed map of a draw vs Lucid's five steps applied one after
 *     another to positions (in Lucid's top-left frame, sizes changing);
 *   - rotation direction, determinism and ranges of the draws, pixel
 *     scaling, and the lvk_transform state end to end. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "optvis/transforms.h"
#include "support/devbuf.h"
#include "support/op_harness.h"


static size_t in_count(const struct lvk_affine_dims *d)
{
    return (size_t)d->B * d->C * d->in_h * d->in_w;
}

static size_t out_count(const struct lvk_affine_dims *d)
{
    return (size_t)d->B * d->C * d->out_h * d->out_w;
}

/* ---- CPU reference sampler ----------------------------------------------------------- */

/* Source position of output pixel (x, y) under map m, in double. */
static void source_ref(const float *m, int x, int y, double *sx, double *sy)
{
    double px = x + 0.5, py = y + 0.5;
    *sx = (double)m[0] * px + (double)m[1] * py + m[4] - 0.5;
    *sy = (double)m[2] * px + (double)m[3] * py + m[5] - 0.5;
}

/* The four taps of s: indices and bilinear weights. */
static void taps_ref(double sx, double sy, int tx[4], int ty[4], double w[4])
{
    double fx = floor(sx), fy = floor(sy), lx = sx - fx, ly = sy - fy;
    for (int k = 0; k < 4; ++k) {
        tx[k] = (int)fx + (k & 1);
        ty[k] = (int)fy + (k >> 1);
        w[k] = ((k & 1) ? lx : 1 - lx) * ((k >> 1) ? ly : 1 - ly);
    }
}

/* y = T x (+ fill where taps are outside). */
static void affine_fwd_ref(const struct lvk_affine_dims *d, const float *params, double fillv,
                           const float *x, double *y)
{
    for (int b = 0; b < d->B; ++b)
        for (int oy = 0; oy < d->out_h; ++oy)
            for (int ox = 0; ox < d->out_w; ++ox) {
                double sx, sy, w[4];
                int tx[4], ty[4];
                source_ref(params + 8 * b, ox, oy, &sx, &sy);
                taps_ref(sx, sy, tx, ty, w);
                for (int c = 0; c < d->C; ++c) {
                    const float *p = x + ((size_t)b * d->C + c) * d->in_h * d->in_w;
                    double v = 0;
                    for (int k = 0; k < 4; ++k) {
                        bool inside = tx[k] >= 0 && tx[k] < d->in_w && ty[k] >= 0 && ty[k] < d->in_h;
                        v += w[k] * (inside ? p[ty[k] * d->in_w + tx[k]] : fillv);
                    }
                    y[(((size_t)b * d->C + c) * d->out_h + oy) * d->out_w + ox] = v;
                }
            }
}

/* xg = T^T g, by scattering each output's weights onto its taps. */
static void affine_bwd_ref(const struct lvk_affine_dims *d, const float *params, const float *g,
                           double *xg)
{
    memset(xg, 0, in_count(d) * sizeof *xg);
    for (int b = 0; b < d->B; ++b)
        for (int oy = 0; oy < d->out_h; ++oy)
            for (int ox = 0; ox < d->out_w; ++ox) {
                double sx, sy, w[4];
                int tx[4], ty[4];
                source_ref(params + 8 * b, ox, oy, &sx, &sy);
                taps_ref(sx, sy, tx, ty, w);
                for (int k = 0; k < 4; ++k) {
                    if (tx[k] < 0 || tx[k] >= d->in_w || ty[k] < 0 || ty[k] >= d->in_h)
                        continue;
                    for (int c = 0; c < d->C; ++c)
                        xg[(((size_t)b * d->C + c) * d->in_h + ty[k]) * d->in_w + tx[k]] +=
                            w[k] * g[(((size_t)b * d->C + c) * d->out_h + oy) * d->out_w + ox];
                }
            }
}

/* A map turning by deg degrees and scaling the content by s about the
 * centres, stretching in onto out, then shifting by (dx, dy) input pixels. */
static void make_map(const struct lvk_affine_dims *d, double deg, double s, double dx, double dy,
                     float m[8])
{
    double th = deg * M_PI / 180, cs = cos(th), sn = sin(th);
    double kx = (double)d->in_w / d->out_w, ky = (double)d->in_h / d->out_h;
    double a = cs * kx / s, b = -sn * ky / s, c = sn * kx / s, e = cs * ky / s;
    double tx = d->in_w / 2.0 + dx - (a * d->out_w / 2.0 + b * d->out_h / 2.0);
    double ty = d->in_h / 2.0 + dy - (c * d->out_w / 2.0 + e * d->out_h / 2.0);
    const float v[8] = {(float)a, (float)b, (float)c, (float)e, (float)tx, (float)ty, 0, 0};
    memcpy(m, v, sizeof v);
}

/* Runs forward (with fillv) and backward (onto a zeroed gradient) on the
 * device: y = T x, xg = T^T g. */
static void run_affine(const struct lvk_affine_dims *d, const float *params, float fillv,
                       const float *x, const float *g, float *y, float *xg)
{
    const size_t ni = in_count(d), no = out_count(d);
    struct dev dv;
    dev_alloc(&dv, (const size_t[]){ni, no, ni, (size_t)d->B * 8}, 4);
    put(&dv.b[0], x, ni);
    put(&dv.b[3], params, (size_t)d->B * 8);
    struct lvk_cmd *cmd = begin();
    lvk_cmd_fill(cmd, &dv.b[2], 0, VK_WHOLE_SIZE, 0);
    assert_int_equal(lvk_affine_fwd(cmd, &dv.b[1], &dv.b[0], &dv.b[3], d, fillv), LVK_OK);
    finish(cmd);
    get(&dv.b[1], y, no);
    /* The gradient goes through the forward's output buffer. */
    put(&dv.b[1], g, no);
    cmd = begin();
    assert_int_equal(lvk_affine_bwd(cmd, &dv.b[2], &dv.b[1], &dv.b[3], d), LVK_OK);
    finish(cmd);
    get(&dv.b[2], xg, ni);
    dev_free(&dv);
}

/* ---- affine resampling ----------------------------------------------------------------- */

static void test_affine_identity(void **state)
{
    if (!lvk_test_ctx())
        skip();
    const struct lvk_affine_dims d = {.B = 2, .C = 3, .in_h = 13, .in_w = 19, .out_h = 13, .out_w = 19};
    const size_t n = in_count(&d);
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *g = malloc(n * sizeof *g);
    float *xg = malloc(n * sizeof *xg);
    unsigned seed = 7;
    fill(x, n, &seed, 0, 1);
    fill(g, n, &seed, -1, 1);
    /* image 0: identity; image 1: shift by (+3, -2) input pixels */
    const float params[16] = {1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1, 3, -2, 0, 0};
    run_affine(&d, params, 0.5f, x, g, y, xg);
    const size_t plane = (size_t)d.in_h * d.in_w;
    for (int c = 0; c < 3; ++c)
        for (size_t i = 0; i < plane; ++i) {
            assert_true(y[c * plane + i] == x[c * plane + i]);
            assert_true(xg[c * plane + i] == g[c * plane + i]);
        }
    for (int c = 0; c < 3; ++c)
        for (int oy = 0; oy < d.out_h; ++oy)
            for (int ox = 0; ox < d.out_w; ++ox) {
                int sx = ox + 3, sy = oy - 2;
                size_t o = ((size_t)(3 + c) * d.out_h + oy) * d.out_w + ox;
                bool inside = sx < d.in_w && sy >= 0;
                float want = inside ? x[((size_t)(3 + c) * d.in_h + sy) * d.in_w + sx] : 0.5f;
                assert_true(y[o] == want);
            }
    free(x); free(y); free(g); free(xg);
    lvk_test_assert_no_validation();
}

struct affine_case {
    struct lvk_affine_dims d;
    double deg, scale, dx, dy; /* for image 0; later images vary from a seed */
};

static void check_affine(const struct affine_case *ac, unsigned seed)
{
    const struct lvk_affine_dims *d = &ac->d;
    const size_t ni = in_count(d), no = out_count(d);
    float *params = malloc((size_t)d->B * 8 * sizeof *params);
    for (int b = 0; b < d->B; ++b) {
        if (b == 0)
            make_map(d, ac->deg, ac->scale, ac->dx, ac->dy, params);
        else
            make_map(d, uniform(&seed, -10, 10), uniform(&seed, 0.95, 1.05),
                     uniform(&seed, -16, 16), uniform(&seed, -16, 16), params + 8 * b);
    }
    float *x = malloc(ni * sizeof *x), *g = malloc(no * sizeof *g);
    float *y = malloc(no * sizeof *y), *xg = malloc(ni * sizeof *xg);
    double *yr = malloc(no * sizeof *yr), *xgr = malloc(ni * sizeof *xgr);
    fill(x, ni, &seed, 0, 1);
    fill(g, no, &seed, 0, 1);

    /* forward, with the fill value, against the CPU sampler */
    run_affine(d, params, 0.5f, x, g, y, xg);
    affine_fwd_ref(d, params, 0.5, x, yr);
    for (size_t i = 0; i < no; ++i)
        if (!(fabs(y[i] - yr[i]) <= 1e-4))
            fail_msg("affine forward %dx%d -> %dx%d: element %zu: device %.7g, reference %.7g",
                     d->in_h, d->in_w, d->out_h, d->out_w, i, y[i], yr[i]);
    /* backward against the sampler's transpose */
    affine_bwd_ref(d, params, g, xgr);
    double scale = 1e-6;
    for (size_t i = 0; i < ni; ++i)
        scale = fmax(scale, fabs(xgr[i]));
    for (size_t i = 0; i < ni; ++i)
        if (!(fabs(xg[i] - xgr[i]) <= 1e-4 * scale))
            fail_msg("affine backward %dx%d -> %dx%d: element %zu: device %.7g, reference %.7g",
                     d->in_h, d->in_w, d->out_h, d->out_w, i, xg[i], xgr[i]);
    /* adjoint identity on the device alone, with fill 0 so T is linear */
    run_affine(d, params, 0.0f, x, g, y, xg);
    double lhs = 0, rhs = 0;
    for (size_t i = 0; i < no; ++i)
        lhs += (double)y[i] * g[i];
    for (size_t i = 0; i < ni; ++i)
        rhs += (double)x[i] * xg[i];
    if (!(fabs(lhs - rhs) <= 1e-4 * fabs(lhs)))
        fail_msg("affine adjoint %dx%d -> %dx%d: <T x, y> = %.9g, <x, T^T y> = %.9g", d->in_h,
                 d->in_w, d->out_h, d->out_w, lhs, rhs);
    free(params); free(x); free(g); free(y); free(xg); free(yr); free(xgr);
    lvk_test_assert_no_validation();
}

static void test_affine(void **state)
{
    if (!lvk_test_ctx())
        skip();
    static const struct affine_case cases[] = {
        /* the extremes of Lucid's standard ranges, equal sizes */
        {{.B = 2, .C = 3, .in_h = 24, .in_w = 32, .out_h = 24, .out_w = 32}, 10, 0.95, 16, -16},
        {{.B = 2, .C = 3, .in_h = 24, .in_w = 32, .out_h = 24, .out_w = 32}, -10, 1.05, -16, 16},
        /* non-square, unequal sizes */
        {{.B = 3, .C = 1, .in_h = 19, .in_w = 23, .out_h = 17, .out_w = 29}, 7, 1.0, 2.5, -3.25},
        {{.B = 2, .C = 3, .in_h = 31, .in_w = 26, .out_h = 28, .out_w = 28}, -4, 0.97, -9, 11},
        /* strong shrink and strong enlargement */
        {{.B = 1, .C = 3, .in_h = 40, .in_w = 30, .out_h = 16, .out_w = 20}, 10, 1.0, 0, 0},
        {{.B = 1, .C = 2, .in_h = 10, .in_w = 12, .out_h = 37, .out_w = 33}, -10, 1.05, 1.5, 0},
        /* a quarter turn: one coordinate constant along rows */
        {{.B = 1, .C = 3, .in_h = 12, .in_w = 20, .out_h = 20, .out_w = 12}, 90, 1.0, 0.5, 0},
        /* a 27x enlargement: the backward's wide-scan fallback */
        {{.B = 1, .C = 1, .in_h = 3, .in_w = 3, .out_h = 80, .out_w = 80}, 3, 1.0, 0, 0},
        /* pure translation by a fraction, no rotation */
        {{.B = 1, .C = 3, .in_h = 9, .in_w = 9, .out_h = 9, .out_w = 9}, 0, 1.0, 0.3, -0.7},
    };
    /* Both shaders' two ways of reading: a texel view where the device
     * prefers them (lavapipe), and the SSBO (LVK_NO_TEXEL). */
    for (int ssbo = 0; ssbo < 2; ++ssbo) {
        setenv("LVK_NO_TEXEL", ssbo ? "1" : "0", 1);
        for (size_t k = 0; k < LVK_ARRAY_LEN(cases); ++k)
            check_affine(&cases[k], 100 + (unsigned)k);
    }
    unsetenv("LVK_NO_TEXEL");
}

/* ---- Lucid's transforms ------------------------------------------------------------------ */

/* Lucid's steps one after another, from output position (px, py) back to
 * the image (continuous positions, top-left origin; see transforms.c). */
static void lucid_steps(const struct lvk_transform_cfg *cfg, const struct lvk_transform_draw *dr,
                        int in_h, int in_w, int out_h, int out_w, double px, double py,
                        double *qx, double *qy)
{
    const double P = cfg->pad, d1 = cfg->jitter1, d2 = cfg->jitter2, s = dr->scale;
    /* sizes along the chain: pad, crop 1, resize, (rotate keeps), crop 2 */
    const double s1x = in_w + 2 * P, s1y = in_h + 2 * P;
    const double s2x = s1x - d1, s2y = s1y - d1;
    const double s3x = s * s2x, s3y = s * s2y;
    const double s5x = s3x - d2, s5y = s3y - d2;
    const double lx = s1x - d1 - d2, ly = s1y - d1 - d2; /* Lucid's output at scale 1 */
    /* our output window onto Lucid's output I5 */
    double x = s5x / 2 + (px - out_w / 2.0) * lx / out_w;
    double y = s5y / 2 + (py - out_h / 2.0) * ly / out_h;
    /* crop 2 */
    x += dr->o2x;
    y += dr->o2y;
    /* rotate about I3's centre: the output samples the content at R (q - c) */
    const double th = dr->angle * M_PI / 180, cs = cos(th), sn = sin(th);
    double rx = x - s3x / 2, ry = y - s3y / 2;
    x = s3x / 2 + cs * rx - sn * ry;
    y = s3y / 2 + sn * rx + cs * ry;
    /* resize by s */
    x /= s;
    y /= s;
    /* crop 1, pad */
    *qx = x + dr->o1x - P;
    *qy = y + dr->o1y - P;
}

static void check_compose(const struct lvk_transform_cfg *cfg, const struct lvk_transform_draw *dr,
                          int in_h, int in_w, int out_h, int out_w)
{
    float m[8];
    lvk_transform_compose(cfg, dr, in_h, in_w, out_h, out_w, m);
    const double pts[][2] = {{0, 0}, {out_w, 0}, {0, out_h}, {out_w, out_h},
                             {out_w / 2.0, out_h / 2.0}, {3.5, 17.25}};
    for (size_t k = 0; k < LVK_ARRAY_LEN(pts); ++k) {
        double px = pts[k][0], py = pts[k][1], qx, qy;
        lucid_steps(cfg, dr, in_h, in_w, out_h, out_w, px, py, &qx, &qy);
        double ax = (double)m[0] * px + (double)m[1] * py + m[4];
        double ay = (double)m[2] * px + (double)m[3] * py + m[5];
        if (!(fabs(ax - qx) < 1e-3 && fabs(ay - qy) < 1e-3))
            fail_msg("compose: output (%g, %g): map gives (%.5f, %.5f), Lucid's steps (%.5f, %.5f)",
                     px, py, ax, ay, qx, qy);
    }
}

static void test_compose(void **state)
{
    struct lvk_transform_cfg std, small, custom;
    lvk_transform_cfg_standard(&std);
    small = std;
    lvk_transform_cfg_scale_pixels(&small, 28);
    custom = (struct lvk_transform_cfg){.pad = 5, .fill = 0.5f, .jitter1 = 3, .nscales = 2,
                                        .scales = {0.8f, 1.3f}, .angle_min = -30, .angle_max = 45,
                                        .jitter2 = 7};
    struct lvk_rng rng;
    lvk_rng_seed(&rng, 99);
    for (int k = 0; k < 200; ++k) {
        struct lvk_transform_draw dr;
        lvk_transform_draw(&std, &rng, &dr);
        check_compose(&std, &dr, 224, 224, 224, 224);
        check_compose(&std, &dr, 128, 160, 224, 224); /* image size != network size */
        lvk_transform_draw(&small, &rng, &dr);
        check_compose(&small, &dr, 28, 28, 28, 28);
        lvk_transform_draw(&custom, &rng, &dr);
        check_compose(&custom, &dr, 50, 70, 61, 33);
    }
}

/* With no transformation the map is the identity on equal sizes and a
 * stretch otherwise. */
static void test_compose_none(void **state)
{
    struct lvk_transform_cfg none;
    lvk_transform_cfg_none(&none);
    struct lvk_rng rng;
    lvk_rng_seed(&rng, 1);
    struct lvk_transform_draw dr;
    uint64_t before = rng.state;
    lvk_transform_draw(&none, &rng, &dr);
    assert_true(rng.state == before); /* nothing to choose, nothing drawn */
    float m[8];
    lvk_transform_compose(&none, &dr, 32, 48, 32, 48, m);
    const float id[8] = {1, 0, 0, 1, 0, 0, 0, 0};
    for (int k = 0; k < 8; ++k)
        assert_true(m[k] == id[k]);
    lvk_transform_compose(&none, &dr, 16, 24, 32, 48, m);
    assert_true(m[0] == 0.5f && m[3] == 0.5f && m[1] == 0 && m[2] == 0);
    assert_true(m[4] == 0 && m[5] == 0);
}

/* Positive angles turn the content counterclockwise on screen: a point right
 * of the image centre shows up above the output centre. */
static void test_rotation_direction(void **state)
{
    struct lvk_transform_cfg cfg;
    lvk_transform_cfg_none(&cfg);
    cfg.angle_min = cfg.angle_max = 90;
    struct lvk_rng rng;
    lvk_rng_seed(&rng, 1);
    struct lvk_transform_draw dr;
    lvk_transform_draw(&cfg, &rng, &dr);
    assert_true(dr.angle == 90.0f);
    float m[8];
    lvk_transform_compose(&cfg, &dr, 64, 64, 64, 64, m);
    /* output position 10 px above the centre samples 10 px right of it */
    double px = 32, py = 22;
    double qx = m[0] * px + m[1] * py + m[4], qy = m[2] * px + m[3] * py + m[5];
    assert_true(fabs(qx - 42) < 1e-4 && fabs(qy - 32) < 1e-4);
}

static void test_draws(void **state)
{
    struct lvk_transform_cfg cfg;
    lvk_transform_cfg_standard(&cfg);
    struct lvk_rng a, b, c;
    lvk_rng_seed(&a, 1234);
    lvk_rng_seed(&b, 1234);
    lvk_rng_seed(&c, 1235);
    int scale_seen[11] = {0}, angle_seen[21] = {0}, zeros = 0, differ = 0;
    const int n = 5200;
    for (int k = 0; k < n; ++k) {
        struct lvk_transform_draw da, db, dc;
        lvk_transform_draw(&cfg, &a, &da);
        lvk_transform_draw(&cfg, &b, &db);
        lvk_transform_draw(&cfg, &c, &dc);
        assert_memory_equal(&da, &db, sizeof da); /* same seed, same draws */
        differ += memcmp(&da, &dc, sizeof da) != 0;
        assert_in_range(da.o1x, 0, 8);
        assert_in_range(da.o1y, 0, 8);
        assert_in_range(da.o2x, 0, 4);
        assert_in_range(da.o2y, 0, 4);
        int si = (int)lround((da.scale - 0.9) * 50);
        assert_in_range(si, 0, 10);
        assert_true(fabs(da.scale - (1 + (si - 5) / 50.0)) < 1e-6);
        scale_seen[si]++;
        assert_true(da.angle == floorf(da.angle));
        assert_in_range((int)da.angle + 10, 0, 20);
        angle_seen[(int)da.angle + 10]++;
        zeros += da.angle == 0;
    }
    assert_true(differ > n * 9 / 10);
    for (int i = 0; i < 11; ++i)
        assert_in_range(scale_seen[i], n / 11 * 7 / 10, n / 11 * 13 / 10);
    for (int i = 0; i < 21; ++i)
        if (i != 10)
            assert_in_range(angle_seen[i], n / 26 * 7 / 10, n / 26 * 13 / 10);
    /* 0 is one of the 21 integers plus 5 extra entries: 6 of 26. */
    assert_in_range(zeros, n * 6 / 26 * 8 / 10, n * 6 / 26 * 12 / 10);
}

static void test_scale_pixels(void **state)
{
    struct lvk_transform_cfg cfg;
    lvk_transform_cfg_standard(&cfg);
    lvk_transform_cfg_scale_pixels(&cfg, 224); /* Lucid's sizes: unchanged */
    assert_int_equal(cfg.pad, 12);
    assert_int_equal(cfg.jitter1, 8);
    assert_int_equal(cfg.jitter2, 4);
    lvk_transform_cfg_standard(&cfg);
    lvk_transform_cfg_scale_pixels(&cfg, 28); /* factor 0.21875 */
    assert_int_equal(cfg.pad, 3);             /* 2.625 */
    assert_int_equal(cfg.jitter1, 2);         /* 1.75 */
    assert_int_equal(cfg.jitter2, 1);         /* 0.875 */
    assert_int_equal(cfg.nscales, 11);
    lvk_transform_cfg_standard(&cfg);
    lvk_transform_cfg_scale_pixels(&cfg, 4); /* at least a pixel each */
    assert_int_equal(cfg.pad, 1);
    assert_int_equal(cfg.jitter1, 1);
    assert_int_equal(cfg.jitter2, 1);
    lvk_transform_cfg_none(&cfg);
    lvk_transform_cfg_scale_pixels(&cfg, 4); /* zero stays zero */
    assert_int_equal(cfg.pad + cfg.jitter1 + cfg.jitter2, 0);
}

/* The render-loop state: maps drawn from the seed, uploaded, replayed. */
static void test_transform_state(void **state)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    struct lvk_transform_cfg cfg;
    lvk_transform_cfg_standard(&cfg);
    const struct lvk_affine_dims d = {.B = 3, .C = 3, .in_h = 40, .in_w = 36, .out_h = 32, .out_w = 32};
    struct lvk_transform *t, *u;
    assert_int_equal(lvk_transform_create(ctx, &cfg, &d, 42, &t), LVK_OK);
    assert_int_equal(lvk_transform_create(ctx, &cfg, &d, 42, &u), LVK_OK);
    assert_non_null(t->params.map);   /* each step's draws: no staged copy */
    const size_t ni = in_count(&d), no = out_count(&d);
    float *x = malloc(ni * sizeof *x), *g = malloc(no * sizeof *g), *y = malloc(no * sizeof *y);
    float *xg = malloc(ni * sizeof *xg), *prev = malloc(no * sizeof *prev);
    double *yr = malloc(no * sizeof *yr), *xgr = malloc(ni * sizeof *xgr);
    unsigned seed = 5;
    fill(x, ni, &seed, 0, 1);
    fill(g, no, &seed, -1, 1);
    struct dev dv;
    dev_alloc(&dv, (const size_t[]){ni, no, ni, no}, 4);
    put(&dv.b[0], x, ni);
    put(&dv.b[3], g, no);
    /* recorded once, replayed with new maps */
    struct lvk_cmd *cmd = begin();
    lvk_cmd_fill(cmd, &dv.b[2], 0, VK_WHOLE_SIZE, 0);
    assert_int_equal(lvk_transform_record_fwd(cmd, t, &dv.b[1], &dv.b[0]), LVK_OK);
    assert_int_equal(lvk_transform_record_bwd(cmd, t, &dv.b[2], &dv.b[3]), LVK_OK);
    assert_int_equal(lvk_cmd_end(cmd), LVK_OK);
    for (int step = 0; step < 3; ++step) {
        if (step > 0) {
            assert_int_equal(lvk_transform_next(t), LVK_OK);
            assert_int_equal(lvk_transform_next(u), LVK_OK);
        }
        assert_memory_equal(t->host, u->host, (size_t)d.B * 8 * sizeof(float));
        assert_int_equal(lvk_cmd_submit(cmd), LVK_OK);
        get(&dv.b[1], y, no);
        get(&dv.b[2], xg, ni);
        affine_fwd_ref(&d, t->host, cfg.fill, x, yr);
        affine_bwd_ref(&d, t->host, g, xgr);
        for (size_t i = 0; i < no; ++i)
            assert_true(fabs(y[i] - yr[i]) <= 1e-4);
        for (size_t i = 0; i < ni; ++i)
            assert_true(fabs(xg[i] - xgr[i]) <= 1e-4);
        if (step > 0) /* a new draw moves the image */
            assert_memory_not_equal(y, prev, no * sizeof *y);
        memcpy(prev, y, no * sizeof *y);
    }
    lvk_cmd_destroy(cmd);
    dev_free(&dv);
    lvk_transform_destroy(t);
    lvk_transform_destroy(u);
    free(x); free(g); free(y); free(xg); free(prev); free(yr); free(xgr);
    lvk_test_assert_no_validation();
}

static void test_transform_rejects(void **state)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    struct lvk_transform_cfg cfg;
    lvk_transform_cfg_standard(&cfg);
    cfg.pad = 0;
    cfg.jitter1 = 20; /* more than an 8 px image holds */
    const struct lvk_affine_dims d = {.B = 1, .C = 1, .in_h = 8, .in_w = 8, .out_h = 8, .out_w = 8};
    struct lvk_transform *t = NULL;
    assert_int_equal(lvk_transform_create(ctx, &cfg, &d, 1, &t), LVK_ERR_INVALID_ARG);
    assert_null(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_affine_identity),
        cmocka_unit_test(test_affine),
        cmocka_unit_test(test_compose),
        cmocka_unit_test(test_compose_none),
        cmocka_unit_test(test_rotation_direction),
        cmocka_unit_test(test_draws),
        cmocka_unit_test(test_scale_pixels),
        cmocka_unit_test(test_transform_state),
        cmocka_unit_test(test_transform_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
