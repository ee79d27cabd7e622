/* MaxPool, AveragePool, GlobalMaxPool, GlobalAveragePool
 * (src/nn/ops/pool.c) against double-precision references, forward and
 * backward, on awkward shapes (batch 2, 13 channels, odd sizes) and each
 * attribute that changes the geometry: ceil_mode, asymmetric pads,
 * dilations, auto_pad, count_include_pad, 1-D pools; and the forms that must
 * fail cleanly (3-D pools, a consumed Indices output).
 *
 * Max-pool inputs are, per plane, a random permutation of well-spaced
 * values, so no window has a tie and finite differences never cross an
 * arg-max switch; overlapping windows make one pixel the arg-max of several
 * outputs. */
#include <math.h>
#include <setjmp.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "support/op_harness.h"

#define SHAPE(...) {sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t), {__VA_ARGS__}}

/* ---- attributes, as the reference reads them -------------------------------------------- */

static const struct lvk_attr *find(const struct lvk_op_case *c, const char *name)
{
    for (int i = 0; i < c->nattrs; ++i)
        if (!strcmp(c->attrs[i].name, name))
            return &c->attrs[i];
    return NULL;
}

static int64_t attr_i(const struct lvk_op_case *c, const char *name, int64_t def)
{
    const struct lvk_attr *a = find(c, name);
    return a ? a->i : def;
}

/* Element j of an ints attribute, or def when absent. */
static int64_t attr_at(const struct lvk_op_case *c, const char *name, int j, int64_t def)
{
    const struct lvk_attr *a = find(c, name);
    return a ? a->ints[j] : def;
}

#define INTS(nm, ...)                                                                     \
    {.name = nm, .type = LVK_ATTR_INTS, .ints = (int64_t[]){__VA_ARGS__},                \
     .n = sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)}
#define INT(nm, v) {.name = nm, .type = LVK_ATTR_INT, .i = (v)}
#define STR(nm, v) {.name = nm, .type = LVK_ATTR_STRING, .s = (char *)(v)}

/* ---- reference ---------------------------------------------------------------------------- */

/* One spatial dim of a pool: output size and begin padding, per the ONNX
 * spec's formulas, with PyTorch's rule that a ceil_mode window may not start
 * in the end padding. */
struct dim {
    int64_t in, k, s, d, p0, p1, out;
};

static struct dim pool_dim(const struct lvk_op_case *c, int64_t in, int j, int nk)
{
    struct dim g = {.in = in, .k = attr_at(c, "kernel_shape", j, 1),
                    .s = attr_at(c, "strides", j, 1), .d = attr_at(c, "dilations", j, 1),
                    .p0 = attr_at(c, "pads", j, 0), .p1 = attr_at(c, "pads", j + nk, 0)};
    const struct lvk_attr *ap = find(c, "auto_pad");
    const char *auto_pad = ap ? ap->s : "NOTSET";
    int64_t ext = (g.k - 1) * g.d + 1;
    if (!strncmp(auto_pad, "SAME", 4)) {
        g.out = (in + g.s - 1) / g.s;
        int64_t total = (g.out - 1) * g.s + ext - in;
        total = total > 0 ? total : 0;
        g.p0 = !strcmp(auto_pad, "SAME_LOWER") ? (total + 1) / 2 : total / 2;
        g.p1 = total - g.p0;
        return g;
    }
    double span = (double)(in + g.p0 + g.p1 - ext) / (double)g.s;
    g.out = (int64_t)(attr_i(c, "ceil_mode", 0) ? ceil(span) : floor(span)) + 1;
    if ((g.out - 1) * g.s >= in + g.p0)
        g.out--;
    return g;
}

/* The geometry of c on its input; 1-D pools are H = 1 pools, global pools
 * one window over the whole plane. */
static void geometry(const struct lvk_op_case *c, struct dim *h, struct dim *w)
{
    const struct lvk_shape *s = &c->in_shape[0];
    int64_t H = s->ndim == 4 ? s->d[2] : 1, W = s->d[s->ndim - 1];
    if (strstr(c->op_type, "Global")) {
        *h = (struct dim){.in = H, .k = H, .s = 1, .d = 1, .out = 1};
        *w = (struct dim){.in = W, .k = W, .s = 1, .d = 1, .out = 1};
        return;
    }
    int nk = s->ndim - 2;
    *h = nk == 2 ? pool_dim(c, H, 0, nk) : (struct dim){.in = 1, .k = 1, .s = 1, .d = 1, .out = 1};
    *w = pool_dim(c, W, nk - 1, nk);
}

static void ref_pool(const struct lvk_op_case *c, const double *const *in, double *const *out,
                     const struct lvk_shape *out_shape)
{
    struct dim h, w;
    geometry(c, &h, &w);
    const struct lvk_shape *s = &c->in_shape[0];
    int nd = s->ndim;
    assert_int_equal(out_shape->ndim, nd);
    assert_int_equal(out_shape->d[nd - 1], w.out);
    if (nd == 4)
        assert_int_equal(out_shape->d[2], h.out);
    bool is_max = strstr(c->op_type, "Max") != NULL;
    bool count_pad = attr_i(c, "count_include_pad", 0) != 0;
    int64_t planes = s->d[0] * s->d[1];
    for (int64_t p = 0; p < planes; ++p)
        for (int64_t oh = 0; oh < h.out; ++oh)
            for (int64_t ow = 0; ow < w.out; ++ow) {
                double acc = is_max ? -INFINITY : 0;
                int64_t n = 0;
                for (int64_t i = 0; i < h.k; ++i)
                    for (int64_t j = 0; j < w.k; ++j) {
                        int64_t y = oh * h.s - h.p0 + i * h.d, x = ow * w.s - w.p0 + j * w.d;
                        if (y < 0 || y >= h.in || x < 0 || x >= w.in)
                            continue;
                        double v = in[0][(p * h.in + y) * w.in + x];
                        acc = is_max ? fmax(acc, v) : acc + v;
                        n++;
                    }
                if (!is_max && count_pad) {
                    /* The window clipped to the explicitly padded input. */
                    int64_t y0 = oh * h.s - h.p0, x0 = ow * w.s - w.p0;
                    int64_t y1 = y0 + h.k < h.in + h.p1 ? y0 + h.k : h.in + h.p1;
                    int64_t x1 = x0 + w.k < w.in + w.p1 ? x0 + w.k : w.in + w.p1;
                    n = (y1 - y0) * (x1 - x0);
                }
                out[0][(p * h.out + oh) * w.out + ow] = is_max ? acc : acc / (double)n;
            }
}

/* ---- cases ---------------------------------------------------------------------------------- */

/* Per plane, a random permutation of -1 + 2k/count (count = the plane's
 * size): values in one window are distinct and at least 2/count apart,
 * well beyond the harness's finite-difference step (1e-3). */
static float *distinct_values(const struct lvk_shape *s)
{
    int64_t n = lvk_shape_count(s), plane = 1;
    for (int d = 2; d < s->ndim; ++d)
        plane *= s->d[d];
    float *v = malloc((size_t)n * sizeof *v);
    assert_non_null(v);
    uint32_t state = 12345u;
    for (int64_t p = 0; p < n; p += plane) {
        float *x = v + p;
        for (int64_t i = 0; i < plane; ++i)
            x[i] = -1.0f + 2.0f * (float)i / (float)plane;
        for (int64_t i = plane - 1; i > 0; --i) {
            state = state * 1664525u + 1013904223u;
            int64_t j = (int64_t)(state >> 8) % (i + 1);
            float t = x[i];
            x[i] = x[j];
            x[j] = t;
        }
    }
    return v;
}

static void run(const char *op, struct lvk_shape shape, const struct lvk_attr *attrs, int nattrs)
{
    if (!lvk_test_ctx())
        skip();
    struct lvk_op_case c = {.op_type = op, .ninputs = 1, .in_shape = {shape},
                            .attrs = attrs, .nattrs = nattrs, .ref = ref_pool};
    float *data = strstr(op, "Max") ? distinct_values(&shape) : NULL;
    c.in_data[0] = data;
    lvk_test_op(&c);
    free(data);
}

static const struct lvk_shape odd = SHAPE(2, 13, 11, 9);

static void test_maxpool_googlenet(void **state)
{
    /* 3x3/s2 with ceil_mode, as GoogLeNet pools: on 12x10 ceil adds a row
     * and a column that floor would drop; 11x9 needs none. */
    const struct lvk_attr a[] = {INTS("kernel_shape", 3, 3), INTS("strides", 2, 2),
                                 INT("ceil_mode", 1)};
    run("MaxPool", (struct lvk_shape)SHAPE(2, 13, 12, 10), a, 3);
    run("MaxPool", odd, a, 3);
    run("MaxPool", odd, a, 2); /* floor */
}

static void test_maxpool_overlap_pads(void **state)
{
    /* Stride 1 under a 3x3 kernel: most pixels are the arg-max of several
     * windows. Asymmetric pads: top 1, left 0, bottom 2, right 1. */
    const struct lvk_attr a[] = {INTS("kernel_shape", 3, 3), INTS("pads", 1, 0, 2, 1)};
    run("MaxPool", odd, a, 2);
    const struct lvk_attr b[] = {INTS("kernel_shape", 2, 3), INTS("strides", 1, 2),
                                 INTS("pads", 1, 1, 1, 2)};
    run("MaxPool", odd, b, 3);
}

static void test_maxpool_ceil_pads(void **state)
{
    /* With pads and ceil_mode on H = 9: a 6th window would start in the end
     * padding and is dropped (5 rows); on W = 10 the last window covers the
     * last pixel and the end pad. */
    const struct lvk_attr a[] = {INTS("kernel_shape", 2, 3), INTS("strides", 2, 2),
                                 INTS("pads", 1, 1, 1, 1), INT("ceil_mode", 1)};
    run("MaxPool", (struct lvk_shape)SHAPE(2, 13, 9, 10), a, 4);
}

static void test_maxpool_dilations(void **state)
{
    const struct lvk_attr a[] = {INTS("kernel_shape", 2, 2), INTS("dilations", 2, 2)};
    run("MaxPool", odd, a, 2);
    const struct lvk_attr b[] = {INTS("kernel_shape", 3, 2), INTS("strides", 2, 1),
                                 INTS("dilations", 2, 3), INTS("pads", 1, 1, 2, 1),
                                 INT("ceil_mode", 1)};
    run("MaxPool", odd, b, 5);
}

static void test_maxpool_auto_pad(void **state)
{
    const struct lvk_attr up[] = {INTS("kernel_shape", 3, 2), INTS("strides", 2, 2),
                                  STR("auto_pad", "SAME_UPPER")};
    const struct lvk_attr lo[] = {INTS("kernel_shape", 2, 2), STR("auto_pad", "SAME_LOWER")};
    const struct lvk_attr valid[] = {INTS("kernel_shape", 3, 3), INTS("strides", 2, 3),
                                     STR("auto_pad", "VALID")};
    run("MaxPool", odd, up, 3);
    run("MaxPool", odd, lo, 2);
    run("MaxPool", odd, valid, 3);
}

static void test_maxpool_1d(void **state)
{
    const struct lvk_attr a[] = {INTS("kernel_shape", 3), INTS("strides", 2), INTS("pads", 1, 0),
                                 INT("ceil_mode", 1)};
    run("MaxPool", (struct lvk_shape)SHAPE(2, 13, 16), a, 4);
}

static void test_maxpool_rows(void **state)
{
    /* Where an invocation's 4 outputs lie in one row (forward: OW % 4 ==
     * 0) they share the window loads, read 4 columns at a time when W % 4
     * == 0 too, and on lavapipe 2 rows of them share the rows their windows
     * overlap in (OH 7: a block cut short); with W % 4 == 0 the backward
     * takes blocks of rows and columns that share the windows they read (common/maxpool.glsl), some
     * cut short by the map's edges: GoogLeNet's 3x3/s1 pad 1 and 3x3/s2
     * ceil pools, stride 3, dilations with pads, and each side without the
     * other. */
    const struct lvk_attr s1[] = {INTS("kernel_shape", 3, 3), INTS("pads", 1, 1, 1, 1)};
    run("MaxPool", (struct lvk_shape)SHAPE(2, 5, 8, 16), s1, 2);
    run("MaxPool", (struct lvk_shape)SHAPE(2, 5, 7, 12), s1, 2);    /* partial blocks */
    const struct lvk_attr s2[] = {INTS("kernel_shape", 3, 3), INTS("strides", 2, 2),
                                  INT("ceil_mode", 1)};
    run("MaxPool", (struct lvk_shape)SHAPE(2, 5, 9, 16), s2, 3);    /* OW 8 */
    run("MaxPool", (struct lvk_shape)SHAPE(2, 5, 7, 12), s2, 2);    /* OW 5: backward only */
    const struct lvk_attr s3[] = {INTS("kernel_shape", 3, 3), INTS("strides", 3, 3),
                                  INTS("pads", 0, 2, 0, 2)};
    run("MaxPool", (struct lvk_shape)SHAPE(2, 5, 7, 20), s3, 3);    /* OW 8 */
    const struct lvk_attr k4[] = {INTS("kernel_shape", 2, 4)};
    run("MaxPool", (struct lvk_shape)SHAPE(2, 5, 7, 11), k4, 1);    /* OW 8: forward only */
    const struct lvk_attr dil[] = {INTS("kernel_shape", 2, 3), INTS("dilations", 2, 2),
                                   INTS("pads", 1, 2, 0, 2)};
    run("MaxPool", (struct lvk_shape)SHAPE(2, 3, 8, 12), dil, 3);   /* OW 12 */
    /* Strides 4 x 5: a block would hold 80 pixels, so the backward takes
     * them 4 at a time. */
    const struct lvk_attr s45[] = {INTS("kernel_shape", 5, 6), INTS("strides", 4, 5)};
    run("MaxPool", (struct lvk_shape)SHAPE(2, 3, 13, 24), s45, 2);
}

static void test_avgpool(void **state)
{
    const struct lvk_attr a[] = {INTS("kernel_shape", 2, 2), INTS("strides", 2, 2)};
    run("AveragePool", odd, a, 2);
    const struct lvk_attr b[] = {INTS("kernel_shape", 3, 2), INTS("strides", 1, 2),
                                 STR("auto_pad", "SAME_LOWER")};
    run("AveragePool", odd, b, 3);
    const struct lvk_attr c[] = {INTS("kernel_shape", 3), INTS("pads", 2, 1)};
    run("AveragePool", (struct lvk_shape)SHAPE(2, 13, 15), c, 2);
}

static void test_avgpool_pads_ceil(void **state)
{
    /* On H = 10 the last ceil_mode window (rows 9..11) runs past the end
     * padding (row 10): count_include_pad counts rows 9 and 10 only. */
    const struct lvk_shape s = SHAPE(2, 13, 10, 11);
    for (int cip = 0; cip <= 1; ++cip)
        for (int ceil_mode = 0; ceil_mode <= 1; ++ceil_mode) {
            const struct lvk_attr a[] = {INTS("kernel_shape", 3, 3), INTS("strides", 2, 2),
                                         INTS("pads", 1, 1, 1, 1), INT("ceil_mode", ceil_mode),
                                         INT("count_include_pad", cip)};
            run("AveragePool", s, a, 5);
        }
    /* Asymmetric pads, overlapping windows. */
    const struct lvk_attr b[] = {INTS("kernel_shape", 3, 3), INTS("pads", 2, 0, 1, 2),
                                 INT("count_include_pad", 1)};
    run("AveragePool", odd, b, 3);
}

static void test_global(void **state)
{
    run("GlobalAveragePool", odd, NULL, 0);
    run("GlobalMaxPool", odd, NULL, 0);
}

/* ---- unsupported forms ---------------------------------------------------------------------- */

/* Builds x -> op -> (y, indices) and expects finalize to fail with a message
 * holding `msg`, or to succeed when msg is NULL. */
static void expect(const char *op, struct lvk_shape shape, const struct lvk_attr *attrs,
                   int nattrs, int noutputs, bool read_indices, const char *msg)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    struct lvk_model *m = NULL;
    assert_int_equal(lvk_graph_create(ctx, "pool_fail", &m), LVK_OK);
    assert_true(lvk_graph_add_input(m, "x", LVK_DTYPE_F32, &shape) >= 0);
    const char *const in[] = {"x"}, *const out[] = {"y", "indices"};
    assert_int_equal(lvk_graph_add_node(m, op, "pool", in, 1, out, noutputs, attrs, nattrs),
                     LVK_OK);
    assert_int_equal(lvk_graph_mark_output(m, "y"), LVK_OK);
    if (read_indices)
        assert_int_equal(lvk_graph_mark_output(m, "indices"), LVK_OK);
    lvk_status st = lvk_graph_finalize(m, &(struct lvk_model_opts){.gradients = 1});
    if (msg) {
        assert_int_equal(st, LVK_ERR_UNSUPPORTED);
        if (!strstr(lvk_last_error(), msg))
            fail_msg("message '%s' lacks '%s'", lvk_last_error(), msg);
    } else {
        assert_int_equal(st, LVK_OK);
    }
    lvk_model_destroy(m);
}

static void test_unsupported(void **state)
{
    const struct lvk_attr k3d[] = {INTS("kernel_shape", 2, 2, 2)};
    expect("MaxPool", (struct lvk_shape)SHAPE(1, 2, 4, 4, 4), k3d, 1, 1, false, "3-D");
    expect("AveragePool", (struct lvk_shape)SHAPE(1, 2, 4, 4, 4), k3d, 1, 1, false, "3-D");
    const struct lvk_attr k2d[] = {INTS("kernel_shape", 2, 2)};
    expect("MaxPool", odd, k2d, 1, 2, true, "Indices");
    /* An Indices output nothing reads is fine. */
    expect("MaxPool", odd, k2d, 1, 2, false, NULL);
    lvk_test_assert_no_validation();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maxpool_googlenet),
        cmocka_unit_test(test_maxpool_overlap_pads),
        cmocka_unit_test(test_maxpool_ceil_pads),
        cmocka_unit_test(test_maxpool_dilations),
        cmocka_unit_test(test_maxpool_auto_pad),
        cmocka_unit_test(test_maxpool_1d),
        cmocka_unit_test(test_maxpool_rows),
        cmocka_unit_test(test_avgpool),
        cmocka_unit_test(test_avgpool_pads_ceil),
        cmocka_unit_test(test_global),
        cmocka_unit_test(test_unsupported),
    };
    /* Once with the kernels the device gets, once with the storage-buffer
     * variants (MaxPool has a texel-buffer one for lavapipe). */
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    setenv("LVK_NO_TEXEL", "1", 1);
    return failed + cmocka_run_group_tests_name("storage-buffer kernels", tests, NULL, NULL);
}
