/* Colour, bilinear upsample and preprocessing ops (src/optvis/image_ops.c)
 * against double-precision CPU references written here from their
 * definitions (Lucid's colour matrix, PyTorch's half-pixel bilinear rule,
 * lvk_preproc's formula), and PyTorch's own F.interpolate output
 * (tests/ref/make_upsample_golden.py).
 *
 * For every op and size (awkward ones, with and without the shaders' vec4
 * path, which needs H*W % 4 == 0):
 *   forward   device vs reference, every element;
 *   backward  device gradient, accumulated onto a random existing gradient,
 *             vs central differences of <g, ref(x)>, every element;
 *   adjoint   <v, bwd(g)> vs the directional difference of <g, ref(x)>
 *             along a random v, and for the linear ops
 *             <fwd(x), g> = <x, bwd(g)> on the device alone. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "optvis/image_ops.h"
#include "support/devbuf.h"
#include "support/op_harness.h"


static double dotf(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; ++i)
        s += (double)a[i] * b[i];
    return s;
}

/* ---- op descriptions ------------------------------------------------------------------ */

struct op {
    const char *name;
    size_t nin, nout;
    double lo, hi;       /* input range */
    bool linear;
    /* sizes and options */
    int B, C, H, W;      /* colour, prep: image; upsample: n = B, output H x W */
    int h, w;            /* upsample input */
    bool decorrelate;
    struct lvk_preproc pp;
    void (*ref)(const struct op *o, const double *x, double *y);
    lvk_status (*fwd)(struct lvk_cmd *cmd, const struct op *o, const struct lvk_buf *y,
                      const struct lvk_buf *x);
    /* xg += adjoint(yg); x and y are the forward's input and output. */
    lvk_status (*bwd)(struct lvk_cmd *cmd, const struct op *o, const struct lvk_buf *xg,
                      const struct lvk_buf *yg, const struct lvk_buf *x, const struct lvk_buf *y);
};

/* Lucid's lucid/optvis/param/color.py, from its definition. */
static void colour_matrix_ref(double m[3][3])
{
    static const double svd_sqrt[3][3] = {{0.26, 0.09, 0.02}, {0.27, 0.00, -0.05}, {0.27, -0.09, 0.03}};
    double max_norm = 0;
    for (int j = 0; j < 3; ++j)
        max_norm = fmax(max_norm, sqrt(svd_sqrt[0][j] * svd_sqrt[0][j] + svd_sqrt[1][j] * svd_sqrt[1][j] +
                                       svd_sqrt[2][j] * svd_sqrt[2][j]));
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
            m[i][j] = svd_sqrt[i][j] / max_norm;
}

static void colour_ref(const struct op *o, const double *x, double *y)
{
    double m[3][3];
    colour_matrix_ref(m);
    const int hw = o->H * o->W, C = o->C;
    for (int b = 0; b < o->B; ++b)
        for (int p = 0; p < hw; ++p) {
            const double *r = x + (size_t)b * C * hw + p;
            double *img = y + (size_t)b * C * hw + p;
            for (int c = 0; c < C; ++c) {
                double z = r[c * hw];
                if (o->decorrelate && C == 3)
                    z = m[c][0] * r[0] + m[c][1] * r[hw] + m[c][2] * r[2 * hw];
                img[c * hw] = 1 / (1 + exp(-z));
            }
        }
}

static lvk_status colour_fwd(struct lvk_cmd *cmd, const struct op *o, const struct lvk_buf *y,
                             const struct lvk_buf *x)
{
    return lvk_colour_fwd(cmd, y, x, o->B, o->C, o->H, o->W, o->decorrelate);
}

static lvk_status colour_bwd(struct lvk_cmd *cmd, const struct op *o, const struct lvk_buf *xg,
                             const struct lvk_buf *yg, const struct lvk_buf *x, const struct lvk_buf *y)
{
    return lvk_colour_bwd(cmd, xg, yg, y, o->B, o->C, o->H, o->W, o->decorrelate);
}

/* PyTorch's upsample_bilinear2d with align_corners=False along one axis. */
static void taps_ref(int o, int n_in, int n_out, int *i0, int *i1, double *l1)
{
    double s = ((double)o + 0.5) * ((double)n_in / n_out) - 0.5;
    if (s < 0)
        s = 0;
    *i0 = (int)s;
    *i1 = *i0 < n_in - 1 ? *i0 + 1 : *i0;
    *l1 = s - *i0;
}

static void upsample_ref(const struct op *o, const double *x, double *y)
{
    for (int n = 0; n < o->B; ++n)
        for (int oy = 0; oy < o->H; ++oy)
            for (int ox = 0; ox < o->W; ++ox) {
                int y0, y1, x0, x1;
                double ly, lx;
                taps_ref(oy, o->h, o->H, &y0, &y1, &ly);
                taps_ref(ox, o->w, o->W, &x0, &x1, &lx);
                const double *p = x + (size_t)n * o->h * o->w;
                y[((size_t)n * o->H + oy) * o->W + ox] =
                    (1 - ly) * ((1 - lx) * p[y0 * o->w + x0] + lx * p[y0 * o->w + x1]) +
                    ly * ((1 - lx) * p[y1 * o->w + x0] + lx * p[y1 * o->w + x1]);
            }
}

static lvk_status upsample_fwd(struct lvk_cmd *cmd, const struct op *o, const struct lvk_buf *y,
                               const struct lvk_buf *x)
{
    return lvk_upsample_fwd(cmd, y, x, o->B, o->h, o->w, o->H, o->W);
}

static lvk_status upsample_bwd(struct lvk_cmd *cmd, const struct op *o, const struct lvk_buf *xg,
                               const struct lvk_buf *yg, const struct lvk_buf *x, const struct lvk_buf *y)
{
    return lvk_upsample_bwd(cmd, xg, yg, o->B, o->h, o->w, o->H, o->W);
}

/* include/lucidvk/preproc.h: scale and normalise per source channel, then
 * reverse the channels of an RGB image when bgr. */
static void prep_ref(const struct op *o, const double *x, double *y)
{
    const struct lvk_preproc *p = &o->pp;
    const int hw = o->H * o->W, C = o->C;
    for (int b = 0; b < o->B; ++b)
        for (int c = 0; c < C; ++c) {
            int d = p->bgr && C == 3 ? 2 - c : c;
            for (int i = 0; i < hw; ++i)
                y[((size_t)b * C + d) * hw + i] =
                    (p->lo + x[((size_t)b * C + c) * hw + i] * ((double)p->hi - p->lo) - p->mean[c]) /
                    p->std[c];
        }
}

static lvk_status prep_fwd(struct lvk_cmd *cmd, const struct op *o, const struct lvk_buf *y,
                           const struct lvk_buf *x)
{
    return lvk_prep_fwd(cmd, y, x, &o->pp, o->B, o->C, o->H, o->W);
}

static lvk_status prep_bwd(struct lvk_cmd *cmd, const struct op *o, const struct lvk_buf *xg,
                           const struct lvk_buf *yg, const struct lvk_buf *x, const struct lvk_buf *y)
{
    return lvk_prep_bwd(cmd, xg, yg, &o->pp, o->B, o->C, o->H, o->W);
}

/* ---- the checks ------------------------------------------------------------------------ */

/* <g, ref(x)> in double. */
static double objective(const struct op *o, const double *x, const double *g, double *ybuf)
{
    o->ref(o, x, ybuf);
    double s = 0;
    for (size_t i = 0; i < o->nout; ++i)
        s += g[i] * ybuf[i];
    return s;
}

static void check_op(struct op op, unsigned seed)
{
    const struct op *o = &op;
    if (!lvk_test_ctx())
        skip();
    const size_t nin = o->nin, nout = o->nout;
    float *x = malloc(nin * sizeof *x), *g = malloc(nout * sizeof *g);
    float *y = malloc(nout * sizeof *y), *xg = malloc(nin * sizeof *xg);
    float *r0 = malloc(nin * sizeof *r0), *v = malloc(nin * sizeof *v);
    double *xd = malloc(nin * sizeof *xd), *gd = malloc(nout * sizeof *gd);
    double *yd = malloc(nout * sizeof *yd);
    fill(x, nin, &seed, o->lo, o->hi);
    fill(g, nout, &seed, -1, 1);
    fill(r0, nin, &seed, -1, 1);
    fill(v, nin, &seed, -1, 1);
    for (size_t i = 0; i < nin; ++i)
        xd[i] = x[i];
    for (size_t i = 0; i < nout; ++i)
        gd[i] = g[i];

    /* buffers: x, y, x_grad, y_grad */
    struct dev d;
    dev_alloc(&d, (const size_t[]){nin, nout, nin, nout}, 4);
    put(&d.b[0], x, nin);
    put(&d.b[2], r0, nin);
    put(&d.b[3], g, nout);
    struct lvk_cmd *cmd = begin();
    assert_int_equal(o->fwd(cmd, o, &d.b[1], &d.b[0]), LVK_OK);
    assert_int_equal(o->bwd(cmd, o, &d.b[2], &d.b[3], &d.b[0], &d.b[1]), LVK_OK);
    finish(cmd);
    get(&d.b[1], y, nout);
    get(&d.b[2], xg, nin);
    for (size_t i = 0; i < nin; ++i)
        xg[i] -= r0[i]; /* what bwd added */

    /* forward */
    o->ref(o, xd, yd);
    for (size_t i = 0; i < nout; ++i)
        if (!(fabs(y[i] - yd[i]) <= 1e-5 + 1e-5 * fabs(yd[i])))
            fail_msg("%s forward: element %zu: device %.8g, reference %.8g", o->name, i, y[i], yd[i]);

    /* backward: every element against central differences */
    double scale = 1e-6;
    for (size_t i = 0; i < nin; ++i)
        scale = fmax(scale, fabs(xg[i]));
    for (size_t i = 0; i < nin; ++i) {
        const double x0 = xd[i], h = 1e-4;
        xd[i] = x0 + h;
        double fp = objective(o, xd, gd, yd);
        xd[i] = x0 - h;
        double fm = objective(o, xd, gd, yd);
        xd[i] = x0;
        double fd = (fp - fm) / (2 * h);
        if (!(fabs(xg[i] - fd) <= 1e-4 * scale + 1e-6))
            fail_msg("%s backward: element %zu: device %.8g, finite difference %.8g (max %.3g)",
                     o->name, i, xg[i], fd, scale);
    }

    /* adjoint identity along a random direction v: <v, J^T g> = d/de <g, ref(x + e v)> */
    {
        const double h = 1e-4;
        double *xp = malloc(nin * sizeof *xp);
        for (size_t i = 0; i < nin; ++i)
            xp[i] = xd[i] + h * v[i];
        double fp = objective(o, xp, gd, yd);
        for (size_t i = 0; i < nin; ++i)
            xp[i] = xd[i] - h * v[i];
        double fm = objective(o, xp, gd, yd);
        free(xp);
        double dir = (fp - fm) / (2 * h), lhs = dotf(v, xg, nin);
        double mag = 0;
        for (size_t i = 0; i < nin; ++i)
            mag += fabs(v[i] * xg[i]);
        if (!(fabs(lhs - dir) <= 1e-5 * mag + 1e-7))
            fail_msg("%s adjoint: <v, bwd(g)> = %.9g, directional difference %.9g", o->name, lhs, dir);
    }
    /* device alone, linear ops: <fwd(x), g> = <x, bwd(g)> */
    if (o->linear) {
        double a = dotf(y, g, nout), b = dotf(x, xg, nin), mag = 0;
        for (size_t i = 0; i < nout; ++i)
            mag += fabs((double)y[i] * g[i]);
        if (!(fabs(a - b) <= 1e-5 * mag + 1e-7))
            fail_msg("%s adjoint: <fwd(x), g> = %.9g, <x, bwd(g)> = %.9g", o->name, a, b);
    }

    dev_free(&d);
    free(x); free(g); free(y); free(xg); free(r0); free(v);
    free(xd); free(gd); free(yd);
    lvk_test_assert_no_validation();
}

/* ---- colour ----------------------------------------------------------------------------- */

static void test_colour_matrix(void **state)
{
    float m[9];
    double ref[3][3];
    lvk_colour_matrix(m);
    colour_matrix_ref(ref);
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
            assert_true(fabs(m[3 * i + j] - ref[i][j]) < 1e-7);
    /* The first column has the largest norm: sqrt(0.26^2 + 2 * 0.27^2). */
    assert_true(fabs(m[0] - 0.26 / sqrt(0.26 * 0.26 + 2 * 0.27 * 0.27)) < 1e-7);
}

static struct op colour_op(int B, int C, int H, int W, bool decorrelate)
{
    size_t n = (size_t)B * C * H * W;
    return (struct op){.name = "colour", .nin = n, .nout = n, .lo = -3, .hi = 3,
                       .B = B, .C = C, .H = H, .W = W, .decorrelate = decorrelate,
                       .ref = colour_ref, .fwd = colour_fwd, .bwd = colour_bwd};
}

/* The vec4 paths read through texel views where the device prefers them
 * (lavapipe), else through storage buffers (LVK_NO_TEXEL): both run. */
static void test_colour(void **state)
{
    for (int ssbo = 0; ssbo < 2; ++ssbo) {
        setenv("LVK_NO_TEXEL", ssbo ? "1" : "0", 1);
        check_op(colour_op(2, 3, 5, 7, true), 1);   /* scalar path */
        check_op(colour_op(2, 3, 4, 6, true), 2);   /* vec4 path */
        check_op(colour_op(1, 3, 13, 9, false), 3); /* plain sigmoid, RGB */
        check_op(colour_op(3, 1, 8, 8, false), 4);  /* grayscale */
        check_op(colour_op(2, 1, 5, 5, true), 6);   /* grayscale ignores decorrelate */
        check_op(colour_op(3, 3, 16, 16, true), 5); /* several workgroups */
    }
    unsetenv("LVK_NO_TEXEL");
}

static void test_colour_rejects(void **state)
{
    if (!lvk_test_ctx())
        skip();
    struct dev d;
    dev_alloc(&d, (const size_t[]){32, 32}, 2);
    struct lvk_cmd *cmd = begin();
    assert_int_equal(lvk_colour_fwd(cmd, &d.b[1], &d.b[0], 1, 2, 4, 4, true), LVK_ERR_INVALID_ARG);
    finish(cmd);
    dev_free(&d);
}

/* ---- upsample ----------------------------------------------------------------------------- */

static struct op upsample_op(int n, int h, int w, int H, int W)
{
    return (struct op){.name = "upsample", .nin = (size_t)n * h * w, .nout = (size_t)n * H * W,
                       .lo = -1, .hi = 1, .linear = true, .B = n, .H = H, .W = W, .h = h, .w = w,
                       .ref = upsample_ref, .fwd = upsample_fwd, .bwd = upsample_bwd};
}

static void test_upsample(void **state)
{
    check_op(upsample_op(3, 5, 7, 13, 17), 11);  /* non-integer factors */
    check_op(upsample_op(2, 4, 4, 16, 16), 12);  /* x4 */
    check_op(upsample_op(2, 7, 7, 56, 56), 13);  /* x8, a lowres setting */
    check_op(upsample_op(1, 7, 5, 3, 4), 14);    /* downsize */
    check_op(upsample_op(2, 1, 1, 3, 5), 15);    /* single pixel */
    check_op(upsample_op(1, 6, 9, 6, 9), 16);    /* same size: a copy */
}

static uint32_t read_u32(FILE *f)
{
    unsigned char b[4];
    assert_int_equal(fread(b, 1, 4, f), 4);
    return b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void read_f32(FILE *f, float *x, size_t n)
{
    /* The file is little-endian, as is every host lucid-vk runs on. */
    assert_int_equal(fread(x, sizeof *x, n, f), n);
}

/* Device forward against PyTorch's F.interpolate (the reference above is
 * checked against it too, so both follow PyTorch's convention). */
static void test_upsample_pytorch(void **state)
{
    if (!lvk_test_ctx())
        skip();
    FILE *f = fopen(LVK_SOURCE_DIR "/tests/data/optvis/upsample.bin", "rb");
    assert_non_null(f);
    assert_int_equal(read_u32(f), 0x5055564c);
    assert_int_equal(read_u32(f), 1);
    uint32_t ncases = read_u32(f);
    assert_true(ncases >= 1);
    for (uint32_t k = 0; k < ncases; ++k) {
        int n = (int)read_u32(f), h = (int)read_u32(f), w = (int)read_u32(f);
        int H = (int)read_u32(f), W = (int)read_u32(f);
        struct op o = upsample_op(n, h, w, H, W);
        float *x = malloc(o.nin * sizeof *x), *want = malloc(o.nout * sizeof *want);
        float *got = malloc(o.nout * sizeof *got);
        double *xd = malloc(o.nin * sizeof *xd), *yd = malloc(o.nout * sizeof *yd);
        read_f32(f, x, o.nin);
        read_f32(f, want, o.nout);
        struct dev d;
        dev_alloc(&d, (const size_t[]){o.nin, o.nout}, 2);
        put(&d.b[0], x, o.nin);
        struct lvk_cmd *cmd = begin();
        assert_int_equal(lvk_upsample_fwd(cmd, &d.b[1], &d.b[0], n, h, w, H, W), LVK_OK);
        finish(cmd);
        get(&d.b[1], got, o.nout);
        for (size_t i = 0; i < o.nin; ++i)
            xd[i] = x[i];
        upsample_ref(&o, xd, yd);
        for (size_t i = 0; i < o.nout; ++i) {
            if (!(fabs(got[i] - want[i]) <= 2e-6))
                fail_msg("upsample %dx%d -> %dx%d: element %zu: device %.8g, PyTorch %.8g", h, w, H,
                         W, i, got[i], want[i]);
            if (!(fabs(yd[i] - want[i]) <= 2e-6))
                fail_msg("upsample reference %dx%d -> %dx%d: element %zu: %.8g, PyTorch %.8g", h, w,
                         H, W, i, yd[i], want[i]);
        }
        dev_free(&d);
        free(x); free(want); free(got); free(xd); free(yd);
    }
    fclose(f);
    lvk_test_assert_no_validation();
}

/* ---- preprocessing ------------------------------------------------------------------------- */

static struct op prep_op(int B, int C, int H, int W, struct lvk_preproc pp)
{
    size_t n = (size_t)B * C * H * W;
    return (struct op){.name = "prep", .nin = n, .nout = n, .lo = 0, .hi = 1, .linear = false,
                       .B = B, .C = C, .H = H, .W = W, .pp = pp,
                       .ref = prep_ref, .fwd = prep_fwd, .bwd = prep_bwd};
}

static void test_prep(void **state)
{
    /* ImageNet mean/std on [0, 1]; Caffe-style BGR on [0, 255]; [-1, 1]
     * grayscale (MNIST-like); the identity. Affine, not linear (the offset),
     * so the device-only identity is skipped and the directional one kept. */
    struct lvk_preproc imagenet = {.lo = 0, .hi = 1, .mean = {0.485f, 0.456f, 0.406f},
                                   .std = {0.229f, 0.224f, 0.225f}};
    struct lvk_preproc caffe = {.lo = 0, .hi = 255, .mean = {123.68f, 116.78f, 103.94f},
                                .std = {1, 1, 1}, .bgr = true};
    struct lvk_preproc gray = {.lo = -1, .hi = 1, .mean = {0.5f}, .std = {0.5f}};
    struct lvk_preproc ident;
    lvk_preproc_default(&ident);
    for (int ssbo = 0; ssbo < 2; ++ssbo) { /* as in test_colour */
        setenv("LVK_NO_TEXEL", ssbo ? "1" : "0", 1);
        check_op(prep_op(2, 3, 5, 7, imagenet), 21);
        check_op(prep_op(2, 3, 4, 8, imagenet), 22);
        check_op(prep_op(2, 3, 5, 7, caffe), 23);
        check_op(prep_op(1, 3, 12, 12, caffe), 24);
        check_op(prep_op(3, 1, 28, 28, gray), 25);
        check_op(prep_op(1, 3, 3, 3, ident), 26);
    }
    unsetenv("LVK_NO_TEXEL");
}

/* The device op agrees with lvk_preproc_apply(), the CPU path the
 * classify command uses. */
static void test_prep_matches_host(void **state)
{
    if (!lvk_test_ctx())
        skip();
    struct lvk_preproc caffe = {.lo = 0, .hi = 255, .mean = {123.68f, 116.78f, 103.94f},
                                .std = {1, 2, 4}, .bgr = true};
    const int C = 3, H = 6, W = 10;
    const size_t n = (size_t)C * H * W;
    float x[3 * 6 * 10], want[3 * 6 * 10], got[3 * 6 * 10];
    unsigned seed = 31;
    fill(x, n, &seed, 0, 1);
    memcpy(want, x, sizeof x);
    lvk_preproc_apply(&caffe, want, C, H, W);
    struct dev d;
    dev_alloc(&d, (const size_t[]){n, n}, 2);
    put(&d.b[0], x, n);
    struct lvk_cmd *cmd = begin();
    assert_int_equal(lvk_prep_fwd(cmd, &d.b[1], &d.b[0], &caffe, 1, C, H, W), LVK_OK);
    finish(cmd);
    get(&d.b[1], got, n);
    for (size_t i = 0; i < n; ++i)
        assert_true(fabs(got[i] - want[i]) <= 1e-4 + 1e-6 * fabs(want[i]));
    dev_free(&d);
    lvk_test_assert_no_validation();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_colour_matrix),
        cmocka_unit_test(test_colour),
        cmocka_unit_test(test_colour_rejects),
        cmocka_unit_test(test_upsample),
        cmocka_unit_test(test_upsample_pytorch),
        cmocka_unit_test(test_prep),
        cmocka_unit_test(test_prep_matches_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
