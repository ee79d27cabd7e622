/* Tests of the Conv op (src/nn/ops/conv.c): forward against a direct
 * double-precision convolution, input gradient against finite differences
 * of it (tests/support/op_harness.h). Every case runs with each kernel
 * family (LVK_CONV_KERNEL, see conv.c), whichever the device would pick.
 *
 * The reference does not parse attributes: each case states the padding
 * before the first row/column and the output size it expects, worked out by
 * hand from the ONNX spec (auto_pad included), so shape inference is checked
 * as well. Sizes are awkward on purpose (13 channels, odd maps, channel
 * counts that are not multiples of the kernels' block sizes). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nn/graph.h"
#include "support/op_harness.h"

#define CONV_ATOL 1e-4 /* float32 sums of up to ~300 products of O(1) terms */

#define A_INTS(nm, ...)                                                                  \
    {.name = nm, .type = LVK_ATTR_INTS, .ints = (int64_t[]){__VA_ARGS__},                \
     .n = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t))}
#define A_INT(nm, v) {.name = nm, .type = LVK_ATTR_INT, .i = (v)}
#define A_STR(nm, v) {.name = nm, .type = LVK_ATTR_STRING, .s = (v)}

/* What the reference needs; a 1-D case uses only the W fields (H = 1). */
struct conv_ref {
    int64_t group;
    int64_t sh, sw, dh, dw;
    int64_t pt, pl;     /* padding before the first row / column */
    int64_t oh, ow;     /* expected output size */
};

static void conv_ref_fwd(const struct lvk_op_case *c, const double *const *in,
                         double *const *out, const struct lvk_shape *os)
{
    const struct conv_ref *r = c->user;
    const struct lvk_shape *xs = &c->in_shape[0], *ws = &c->in_shape[1];
    int nd = xs->ndim;
    int64_t n = xs->d[0], ch = xs->d[1], h = nd == 4 ? xs->d[2] : 1, w = xs->d[nd - 1];
    int64_t m = ws->d[0], cg = ws->d[1], kh = nd == 4 ? ws->d[2] : 1, kw = ws->d[nd - 1];
    int64_t mg = m / r->group, oh = nd == 4 ? r->oh : 1;
    const double *x = in[0], *wt = in[1], *b = c->ninputs > 2 ? in[2] : NULL;

    assert_int_equal(os->ndim, nd);
    assert_int_equal(os->d[0], n);
    assert_int_equal(os->d[1], m);
    if (nd == 4)
        assert_int_equal(os->d[2], r->oh);
    assert_int_equal(os->d[nd - 1], r->ow);

    for (int64_t in_ = 0; in_ < n; in_++)
        for (int64_t im = 0; im < m; im++)
            for (int64_t y = 0; y < oh; y++)
                for (int64_t xo = 0; xo < r->ow; xo++) {
                    int64_t g = im / mg;
                    double acc = b ? b[im] : 0.0;
                    for (int64_t ic = 0; ic < cg; ic++)
                        for (int64_t ky = 0; ky < kh; ky++)
                            for (int64_t kx = 0; kx < kw; kx++) {
                                int64_t iy = y * r->sh - r->pt + ky * r->dh;
                                int64_t ix = xo * r->sw - r->pl + kx * r->dw;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                                    continue;
                                acc += x[((in_ * ch + g * cg + ic) * h + iy) * w + ix] *
                                       wt[((im * cg + ic) * kh + ky) * kw + kx];
                            }
                    out[0][((in_ * m + im) * oh + y) * r->ow + xo] = acc;
                }
}

static struct lvk_shape shp(int nd, const int64_t *d)
{
    struct lvk_shape s = {.ndim = nd};
    memcpy(s.d, d, (size_t)nd * sizeof *d);
    return s;
}

/* The texel kernel twice: weights shared by subgroup shuffles (what
 * lavapipe runs), and fetched by every lane (LVK_NO_SHUFFLE). */
static const char *const kernels[] = {"classic", "texel", "texel", "winograd"};
static const bool kernel_no_shuffle[] = {false, false, true, false};
static const enum lvk_shader_id kernel_fwd_shader[] = {
    LVK_SHADER_CONV2D_FWD, LVK_SHADER_CONV2D_TEXEL, LVK_SHADER_CONV2D_TEXEL,
    LVK_SHADER_CONV2D_WINO_OUT};

/* Cases whose no-shuffle run built a pipeline of its own: on lavapipe some
 * must have (test_conv_no_shuffle_ran), or that path went untested. */
static int no_shuffle_built;

/* Pipelines the context has built for a shader. */
static int pipelines_of(enum lvk_shader_id id)
{
    const struct lvk_ctx *ctx = lvk_test_ctx();
    int count = 0;
    for (int i = 0; i < ctx->npipelines; i++)
        count += ctx->pipelines[i]->shader == id;
    return count;
}

/* Under test_conv_fill (CMakeLists.txt), a target of 2^32 invocations, more
 * than any case's grid can have: the classic pipelines built since `first`
 * must have blocks of one channel and one pixel (constants BC and BP of
 * shaders/common/conv2d.glsl), or that run tested the usual blocks again. */
static void check_fill_blocks(int first)
{
    const char *fill = getenv("LVK_CONV_MIN_INVOCATIONS");
    if (!fill || strtoull(fill, NULL, 10) < (1ull << 32))
        return;
    const struct lvk_ctx *ctx = lvk_test_ctx();
    int classic = 0;
    for (int i = first; i < ctx->npipelines; i++) {
        const struct lvk_pipeline *p = ctx->pipelines[i];
        if (p->shader != LVK_SHADER_CONV2D_FWD && p->shader != LVK_SHADER_CONV2D_BWD_DATA)
            continue;
        assert_int_equal(p->spec[16], 1);
        assert_int_equal(p->spec[17], 1);
        classic++;
    }
    assert_true(classic > 0);
}

/* x runtime (differentiated), w and b constants; once per kernel family. */
static void conv_run(int nd, const int64_t *xs, const int64_t *ws, bool bias,
                     const struct lvk_attr *attrs, int nattrs, const struct conv_ref *r)
{
    if (!lvk_test_ctx())
        skip();
    for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++) {
        print_message("kernel %s%s\n", kernels[k], kernel_no_shuffle[k] ? ", no shuffle" : "");
        setenv("LVK_CONV_KERNEL", kernels[k], 1);
        setenv("LVK_NO_SHUFFLE", kernel_no_shuffle[k] ? "1" : "0", 1);
        struct lvk_op_case c = {
            .op_type = "Conv",
            .ninputs = bias ? 3 : 2,
            .in_shape = {shp(nd, xs), shp(nd, ws), {.ndim = 1, .d = {ws[0]}}},
            .in_kind = {LVK_IN_RUNTIME, LVK_IN_CONST, LVK_IN_CONST},
            .attrs = attrs,
            .nattrs = nattrs,
            .ref = conv_ref_fwd,
            .atol = CONV_ATOL,
            .seed = 1234,
            .user = (void *)r,
        };
        /* Each case has its own maps or kernel (channel counts are pushed,
         * not specialised), so the kernel it ran on built a new pipeline
         * (the second texel run may share the first's: layers whose
         * lanes take channel blocks have no weights to share); winograd only
         * for 3x3 stride-1 layers, on devices where the texel kernel can run
         * (forced, it runs on GPUs too; where it cannot, classic runs, whose
         * pipeline the first run built). */
        const bool wino_case = nd == 4 && ws[2] == 3 && ws[3] == 3 && r->group == 1 &&
                               r->sh == 1 && r->sw == 1 && r->dh == 1 && r->dw == 1 &&
                               r->pt <= 2 && r->pl <= 2 && lvk_test_ctx()->texel_conv;
        int before = pipelines_of(kernel_fwd_shader[k]);
        const int first = lvk_test_ctx()->npipelines;
        lvk_test_op(&c);
        if (!strcmp(kernels[k], "classic"))
            check_fill_blocks(first);
        bool built = pipelines_of(kernel_fwd_shader[k]) > before;
        if (!strcmp(kernels[k], "winograd"))
            assert_int_equal(built, wino_case);
        else if (!kernel_no_shuffle[k])
            assert_int_equal(built, !strcmp(kernels[k], "classic") || lvk_test_ctx()->texel_conv);
        no_shuffle_built += kernel_no_shuffle[k] && built;
    }
    unsetenv("LVK_CONV_KERNEL");
    unsetenv("LVK_NO_SHUFFLE");
}

/* ---- cases ------------------------------------------------------------------ */

static void test_conv_3x3_pad1(void **state)
{
    const struct lvk_attr a[] = {A_INTS("pads", 1, 1, 1, 1), A_INTS("kernel_shape", 3, 3)};
    const struct conv_ref r = {.group = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1,
                               .pt = 1, .pl = 1, .oh = 8, .ow = 7};
    conv_run(4, (int64_t[]){1, 3, 8, 7}, (int64_t[]){4, 3, 3, 3}, true, a, 2, &r);
}

static void test_conv_1x1(void **state)
{
    const struct conv_ref r = {.group = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1, .oh = 7, .ow = 6};
    conv_run(4, (int64_t[]){1, 5, 7, 6}, (int64_t[]){6, 5, 1, 1}, false, NULL, 0, &r);
}

/* TensorFlow's SAME for an even input and stride 2: one pad row/column at
 * the end only. */
static void test_conv_stride2_asymmetric_pads(void **state)
{
    const struct lvk_attr a[] = {A_INTS("pads", 0, 0, 1, 1), A_INTS("strides", 2, 2)};
    const struct conv_ref r = {.group = 1, .sh = 2, .sw = 2, .dh = 1, .dw = 1, .oh = 4, .ow = 4};
    conv_run(4, (int64_t[]){1, 3, 8, 8}, (int64_t[]){5, 3, 3, 3}, true, a, 2, &r);
}

static void test_conv_dilation2(void **state)
{
    const struct lvk_attr a[] = {A_INTS("pads", 2, 2, 2, 2), A_INTS("dilations", 2, 2)};
    const struct conv_ref r = {.group = 1, .sh = 1, .sw = 1, .dh = 2, .dw = 2,
                               .pt = 2, .pl = 2, .oh = 9, .ow = 10};
    conv_run(4, (int64_t[]){1, 2, 9, 10}, (int64_t[]){3, 2, 3, 3}, true, a, 2, &r);
}

/* Dilation with stride: the backward's divisibility test on both. */
static void test_conv_dilation2_stride2(void **state)
{
    const struct lvk_attr a[] = {A_INTS("pads", 1, 2, 0, 1), A_INTS("dilations", 2, 3),
                                 A_INTS("strides", 2, 2)};
    /* H: (11 + 1 - 5) / 2 + 1 = 4; W: (10 + 3 - 7) / 2 + 1 = 4 */
    const struct conv_ref r = {.group = 1, .sh = 2, .sw = 2, .dh = 2, .dw = 3,
                               .pt = 1, .pl = 2, .oh = 4, .ow = 4};
    conv_run(4, (int64_t[]){1, 3, 11, 10}, (int64_t[]){2, 3, 3, 3}, false, a, 3, &r);
}

static void test_conv_groups2(void **state)
{
    const struct lvk_attr a[] = {A_INTS("pads", 1, 1, 1, 1), A_INT("group", 2)};
    const struct conv_ref r = {.group = 2, .sh = 1, .sw = 1, .dh = 1, .dw = 1,
                               .pt = 1, .pl = 1, .oh = 7, .ow = 5};
    conv_run(4, (int64_t[]){1, 4, 7, 5}, (int64_t[]){6, 2, 3, 3}, true, a, 2, &r);
}

/* More output channels per group than one block (8), with a tail. */
static void test_conv_groups3_wide(void **state)
{
    const struct lvk_attr a[] = {A_INT("group", 3)};
    const struct conv_ref r = {.group = 3, .sh = 1, .sw = 1, .dh = 1, .dw = 1, .oh = 4, .ow = 3};
    conv_run(4, (int64_t[]){1, 6, 6, 5}, (int64_t[]){33, 2, 3, 3}, true, a, 1, &r);
}

static void test_conv_depthwise13(void **state)
{
    const struct lvk_attr a[] = {A_INTS("pads", 1, 1, 1, 1), A_INT("group", 13)};
    const struct conv_ref r = {.group = 13, .sh = 1, .sw = 1, .dh = 1, .dw = 1,
                               .pt = 1, .pl = 1, .oh = 9, .ow = 7};
    conv_run(4, (int64_t[]){1, 13, 9, 7}, (int64_t[]){13, 1, 3, 3}, true, a, 2, &r);
}

/* MobileNet's downsampling depthwise layer, channel multiplier 2. */
static void test_conv_depthwise_stride2_multiplier2(void **state)
{
    const struct lvk_attr a[] = {A_INTS("pads", 0, 0, 1, 1), A_INT("group", 5),
                                 A_INTS("strides", 2, 2)};
    const struct conv_ref r = {.group = 5, .sh = 2, .sw = 2, .dh = 1, .dw = 1, .oh = 5, .ow = 4};
    conv_run(4, (int64_t[]){1, 5, 10, 8}, (int64_t[]){10, 1, 3, 3}, false, a, 3, &r);
}

/* 7x8 input, 3x3 kernel, stride 2: output 4x4; total padding 2 rows (1 + 1)
 * and 1 column, which SAME_UPPER puts at the end and SAME_LOWER at the
 * beginning. */
static void test_conv_auto_pad_same_upper(void **state)
{
    const struct lvk_attr a[] = {A_STR("auto_pad", "SAME_UPPER"), A_INTS("strides", 2, 2)};
    const struct conv_ref r = {.group = 1, .sh = 2, .sw = 2, .dh = 1, .dw = 1,
                               .pt = 1, .pl = 0, .oh = 4, .ow = 4};
    conv_run(4, (int64_t[]){1, 2, 7, 8}, (int64_t[]){3, 2, 3, 3}, true, a, 2, &r);
}

static void test_conv_auto_pad_same_lower(void **state)
{
    const struct lvk_attr a[] = {A_STR("auto_pad", "SAME_LOWER"), A_INTS("strides", 2, 2)};
    const struct conv_ref r = {.group = 1, .sh = 2, .sw = 2, .dh = 1, .dw = 1,
                               .pt = 1, .pl = 1, .oh = 4, .ow = 4};
    conv_run(4, (int64_t[]){1, 2, 7, 8}, (int64_t[]){3, 2, 3, 3}, true, a, 2, &r);
}

static void test_conv_auto_pad_valid(void **state)
{
    const struct lvk_attr a[] = {A_STR("auto_pad", "VALID")};
    const struct conv_ref r = {.group = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1, .oh = 5, .ow = 7};
    conv_run(4, (int64_t[]){1, 2, 7, 8}, (int64_t[]){3, 2, 3, 2}, false, a, 1, &r);
}

static void test_conv_5x5_stride3(void **state)
{
    const struct lvk_attr a[] = {A_INTS("pads", 2, 2, 2, 2), A_INTS("strides", 3, 3),
                                 A_INTS("kernel_shape", 5, 5)};
    /* (17 + 4 - 5) / 3 + 1 = 6, (16 + 4 - 5) / 3 + 1 = 6 */
    const struct conv_ref r = {.group = 1, .sh = 3, .sw = 3, .dh = 1, .dw = 1,
                               .pt = 2, .pl = 2, .oh = 6, .ow = 6};
    conv_run(4, (int64_t[]){1, 3, 17, 16}, (int64_t[]){4, 3, 5, 5}, true, a, 3, &r);
}

/* Batch 2, 13 input channels (a full block of 8 and a tail of 5 in the
 * backward), odd map. */
static void test_conv_batch2_odd(void **state)
{
    const struct lvk_attr a[] = {A_INTS("pads", 1, 1, 1, 1)};
    const struct conv_ref r = {.group = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1,
                               .pt = 1, .pl = 1, .oh = 11, .ow = 9};
    conv_run(4, (int64_t[]){2, 13, 11, 9}, (int64_t[]){7, 13, 3, 3}, true, a, 1, &r);
}

/* Enough pixels for several workgroups along x. */
static void test_conv_large_map(void **state)
{
    const struct lvk_attr a[] = {A_INTS("pads", 1, 0, 1, 2), A_INTS("strides", 1, 2)};
    /* H: 40 + 2 - 3 + 1 = 40; W: (37 + 2 - 3) / 2 + 1 = 19 */
    const struct conv_ref r = {.group = 1, .sh = 1, .sw = 2, .dh = 1, .dw = 1,
                               .pt = 1, .pl = 0, .oh = 40, .ow = 19};
    conv_run(4, (int64_t[]){1, 2, 40, 37}, (int64_t[]){3, 2, 3, 3}, true, a, 2, &r);
}

static void test_conv_1d(void **state)
{
    const struct lvk_attr a[] = {A_INTS("pads", 1, 2), A_INTS("strides", 2)};
    /* (11 + 3 - 3) / 2 + 1 = 6 */
    const struct conv_ref r = {.group = 1, .sh = 1, .sw = 2, .dh = 1, .dw = 1, .pl = 1, .ow = 6};
    conv_run(3, (int64_t[]){2, 3, 11}, (int64_t[]){4, 3, 3}, true, a, 2, &r);
}

/* Shapes that take the texel kernel's other paths: rows a multiple of 4 long
 * (4-column texels), strided input gradients on them, a 1x1 layer on a
 * flattened map, channel blocks with tails, groups across lanes. */
static void test_conv_pointwise_wide(void **state)
{
    /* 6 x 10 map: 60 pixels once flattened; 20 channels: blocks of 10. */
    const struct conv_ref r = {.group = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1, .oh = 6, .ow = 10};
    conv_run(4, (int64_t[]){2, 24, 6, 10}, (int64_t[]){20, 24, 1, 1}, true, NULL, 0, &r);
}

static void test_conv_3x3_rows_of_16(void **state)
{
    const struct lvk_attr a[] = {A_INTS("pads", 1, 1, 1, 1)};
    const struct conv_ref r = {.group = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1,
                               .pt = 1, .pl = 1, .oh = 12, .ow = 16};
    conv_run(4, (int64_t[]){1, 5, 12, 16}, (int64_t[]){37, 5, 3, 3}, true, a, 1, &r);
}

/* Pads of 2 before, none after: the winograd kernel's input patches start 2
 * columns into a 4-column texel (the backward's, 0 into one), and 3 tiles
 * per row leave columns past the batch's tiles. */
static void test_conv_3x3_leading_pads2(void **state)
{
    const struct lvk_attr a[] = {A_INTS("pads", 2, 2, 0, 0)};
    const struct conv_ref r = {.group = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1,
                               .pt = 2, .pl = 2, .oh = 5, .ow = 12};
    conv_run(4, (int64_t[]){1, 4, 5, 12}, (int64_t[]){6, 4, 3, 3}, true, a, 1, &r);
}

/* GoogLeNet's stem shape: 7x7, stride 2, pads 3. */
static void test_conv_7x7_stride2(void **state)
{
    const struct lvk_attr a[] = {A_INTS("pads", 3, 3, 3, 3), A_INTS("strides", 2, 2)};
    /* (20 + 6 - 7) / 2 + 1 = 10, (16 + 6 - 7) / 2 + 1 = 8 */
    const struct conv_ref r = {.group = 1, .sh = 2, .sw = 2, .dh = 1, .dw = 1,
                               .pt = 3, .pl = 3, .oh = 10, .ow = 8};
    /* 13 out channels: blocks of 7 under the wide-kernel plan, one partial. */
    conv_run(4, (int64_t[]){1, 3, 20, 16}, (int64_t[]){13, 3, 7, 7}, true, a, 2, &r);
}

/* 10 groups (enough to spread across lanes), multiplier 2, stride 2. */
static void test_conv_depthwise10_stride2(void **state)
{
    const struct lvk_attr a[] = {A_INTS("pads", 1, 1, 1, 1), A_INT("group", 10),
                                 A_INTS("strides", 2, 2)};
    /* (12 + 2 - 3) / 2 + 1 = 6, (16 + 2 - 3) / 2 + 1 = 8 */
    const struct conv_ref r = {.group = 10, .sh = 2, .sw = 2, .dh = 1, .dw = 1,
                               .pt = 1, .pl = 1, .oh = 6, .ow = 8};
    conv_run(4, (int64_t[]){2, 10, 12, 16}, (int64_t[]){20, 1, 3, 3}, true, a, 3, &r);
}

/* Groups across lanes with 3 in channels per group; stride 3 along W only. */
static void test_conv_groups9_stride_w3(void **state)
{
    const struct lvk_attr a[] = {A_INTS("pads", 1, 0, 1, 2), A_INT("group", 9),
                                 A_INTS("strides", 1, 3)};
    /* H: 7 + 2 - 3 + 1 = 7; W: (13 + 2 - 3) / 3 + 1 = 5 */
    const struct conv_ref r = {.group = 9, .sh = 1, .sw = 3, .dh = 1, .dw = 1,
                               .pt = 1, .pl = 0, .oh = 7, .ow = 5};
    conv_run(4, (int64_t[]){1, 27, 7, 13}, (int64_t[]){9, 3, 3, 3}, false, a, 3, &r);
}

/* Maps with fewer tiles than SIMD lanes: channel blocks across lanes. */
static void test_conv_small_map_many_channels(void **state)
{
    const struct lvk_attr a[] = {A_INTS("pads", 1, 1, 1, 1)};
    const struct conv_ref r = {.group = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1,
                               .pt = 1, .pl = 1, .oh = 3, .ow = 5};
    conv_run(4, (int64_t[]){1, 6, 3, 5}, (int64_t[]){70, 6, 3, 3}, true, a, 1, &r);
}

static void test_conv_small_map_groups2_pointwise(void **state)
{
    const struct lvk_attr a[] = {A_INT("group", 2)};
    const struct conv_ref r = {.group = 2, .sh = 1, .sw = 1, .dh = 1, .dw = 1, .oh = 4, .ow = 4};
    conv_run(4, (int64_t[]){2, 4, 4, 4}, (int64_t[]){80, 2, 1, 1}, true, a, 1, &r);
}

/* ---- rejected attributes ---------------------------------------------------------- */

/* Builds x -> Conv -> y by hand; finalize must fail with `want`. */
static void conv_expect_fail(int nd, const int64_t *xs, const int64_t *ws,
                             const struct lvk_attr *attrs, int nattrs, lvk_status want)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    struct lvk_shape xsh = shp(nd, xs), wsh = shp(nd, ws);
    float *wdata = calloc((size_t)lvk_shape_count(&wsh), sizeof *wdata);
    assert_non_null(wdata);
    struct lvk_model *m = NULL;
    assert_int_equal(lvk_graph_create(ctx, "conv_bad", &m), LVK_OK);
    assert_true(lvk_graph_add_input(m, "x", LVK_DTYPE_F32, &xsh) >= 0);
    assert_true(lvk_graph_add_const(m, "w", LVK_DTYPE_F32, &wsh, wdata) >= 0);
    free(wdata);
    assert_int_equal(lvk_graph_add_node(m, "Conv", "conv", (const char *const[]){"x", "w"}, 2,
                                        (const char *const[]){"y"}, 1, attrs, nattrs),
                     LVK_OK);
    assert_int_equal(lvk_graph_mark_output(m, "y"), LVK_OK);
    struct lvk_model_opts opts = {.gradients = 1};
    assert_int_equal(lvk_graph_finalize(m, &opts), want);
    print_message("expected failure: %s\n", lvk_last_error());
    assert_non_null(strstr(lvk_last_error(), "Conv"));
    lvk_model_destroy(m);
}

static void test_conv_3d_unsupported(void **state)
{
    conv_expect_fail(5, (int64_t[]){1, 2, 4, 4, 4}, (int64_t[]){3, 2, 3, 3, 3}, NULL, 0,
                     LVK_ERR_UNSUPPORTED);
}

static void test_conv_bad_auto_pad(void **state)
{
    const struct lvk_attr a[] = {A_STR("auto_pad", "SAME_MIDDLE")};
    conv_expect_fail(4, (int64_t[]){1, 2, 5, 5}, (int64_t[]){3, 2, 3, 3}, a, 1,
                     LVK_ERR_UNSUPPORTED);
}

static void test_conv_kernel_shape_mismatch(void **state)
{
    const struct lvk_attr a[] = {A_INTS("kernel_shape", 5, 5)};
    conv_expect_fail(4, (int64_t[]){1, 2, 5, 5}, (int64_t[]){3, 2, 3, 3}, a, 1, LVK_ERR_FORMAT);
}

/* Weights and bias that only the texel kernels read (from their own
 * re-laid-out copies) get no device buffer of their own; the classic
 * kernel reads them as given, so there they keep one. Either way the
 * output is the convolution. */
static void check_weight_buffers(const char *kernel)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    setenv("LVK_CONV_KERNEL", kernel, 1);
    struct lvk_model *m = NULL;
    assert_int_equal(lvk_graph_create(ctx, "weights", &m), LVK_OK);
    const struct lvk_shape xs = {4, {1, 1, 4, 4}}, ws = {4, {1, 1, 1, 1}}, bs = {1, {1}};
    const float two = 2.0f, one = 1.0f;
    assert_true(lvk_graph_add_input(m, "x", LVK_DTYPE_F32, &xs) >= 0);
    assert_true(lvk_graph_add_const(m, "w", LVK_DTYPE_F32, &ws, &two) >= 0);
    assert_true(lvk_graph_add_const(m, "b", LVK_DTYPE_F32, &bs, &one) >= 0);
    const char *const in[] = {"x", "w", "b"}, *const out[] = {"y"};
    assert_int_equal(lvk_graph_add_node(m, "Conv", "conv", in, 3, out, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_mark_output(m, "y"), LVK_OK);
    const struct lvk_model_opts opts = {.gradients = 1};
    assert_int_equal(lvk_graph_finalize(m, &opts), LVK_OK);
    unsetenv("LVK_CONV_KERNEL");
    const bool texel = !strcmp(kernel, "texel") && ctx->texel_conv;
    assert_int_equal(m->values[lvk_graph_find(m, "w")].buf == NULL, texel);
    assert_int_equal(m->values[lvk_graph_find(m, "b")].buf == NULL, texel);
    float x[16], y[16];
    for (int i = 0; i < 16; i++)
        x[i] = (float)i - 7.5f;
    assert_int_equal(lvk_model_set_input(m, "x", x, 16), LVK_OK);
    assert_int_equal(lvk_model_forward(m), LVK_OK);
    assert_int_equal(lvk_model_read(m, "y", y, 16), LVK_OK);
    for (int i = 0; i < 16; i++)
        assert_float_equal(y[i], 2.0f * x[i] + 1.0f, 0.0f);
    lvk_model_destroy(m);
    lvk_test_assert_no_validation();
}

/* ---- an Add fused into the Conv ----------------------------------------------------- */

/* A residual block's end: z = Add(Conv(x), s) or Add(s, Conv(x)), then
 * optionally out = Relu(z). Planning fuses the Add, and the Relu with it,
 * into the Conv (graph.h, lvk_node.sum), as s exists before the Conv runs.
 * With `late`, s first passes through a 1x1 Conv recorded after the first
 * (a projection shortcut): that later Conv writes the sum, reading the
 * first Conv's output, which keeps its buffer. Against the reference
 * convolution, with s' = W2 s (or s): the output is clamp(conv(x) + s');
 * for a seed g, dz = g relu'(z), ds = W2^T dz (or dz), and dx is the
 * convolution's adjoint applied to dz, <dz, conv(x + e_i) - conv(x)>. */
struct resid_case {
    int64_t xs[4], ws[4];   /* pads 1 for 3x3, 0 for 1x1; stride 1 */
    bool swap, relu, late;
};

static float resid_val(int i, int k)
{
    return (float)((i * k + 3) % 17) / 8.0f - 1.0f;
}

/* Channel o of element i of v [B, m, hw] mixed by 1x1 weights w2 [m, m]:
 * sum_k w2[o, k] v[k], or with `transposed` sum_k w2[k, o] v[k]. */
static double mix_channels(const float *w2, const double *v, int64_t m, int64_t hw, size_t i,
                           bool transposed)
{
    const int64_t b = (int64_t)i / (m * hw), o = (int64_t)i / hw % m, px = (int64_t)i % hw;
    double acc = 0;
    for (int64_t k = 0; k < m; k++)
        acc += (double)w2[transposed ? k * m + o : o * m + k] * v[(b * m + k) * hw + px];
    return acc;
}

static void resid_check(const struct resid_case *rc, const char *kernel)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    setenv("LVK_CONV_KERNEL", kernel, 1);
    const int64_t n = rc->xs[0], m_out = rc->ws[0], h = rc->xs[2], w = rc->xs[3];
    const int64_t pad = rc->ws[2] / 2;
    const struct lvk_shape xsh = shp(4, rc->xs), wsh = shp(4, rc->ws), bsh = {1, {m_out}};
    const struct lvk_shape ysh = {4, {n, m_out, h, w}};
    const size_t nx = (size_t)lvk_shape_count(&xsh), nw = (size_t)lvk_shape_count(&wsh);
    const size_t ny = (size_t)lvk_shape_count(&ysh);
    float *x = malloc(nx * sizeof *x), *wt = malloc(nw * sizeof *wt), *b = malloc((size_t)m_out * sizeof *b);
    float *sv = malloc(ny * sizeof *sv), *g = malloc(ny * sizeof *g), *y = malloc(ny * sizeof *y);
    float *dx = malloc(nx * sizeof *dx), *ds = malloc(ny * sizeof *ds);
    double *xd = malloc(nx * sizeof *xd), *wd = malloc(nw * sizeof *wd), *bd = malloc((size_t)m_out * sizeof *bd);
    double *ref = malloc(ny * sizeof *ref), *bumped = malloc(ny * sizeof *bumped), *dz = malloc(ny * sizeof *dz);
    double *sd = malloc(ny * sizeof *sd);
    assert_true(x && wt && b && sv && g && y && dx && ds && xd && wd && bd && ref && bumped && dz && sd);
    for (size_t i = 0; i < nx; i++)
        xd[i] = x[i] = resid_val((int)i, 7);
    for (size_t i = 0; i < nw; i++)
        wd[i] = wt[i] = resid_val((int)i, 5) / 2.0f;
    for (int64_t i = 0; i < m_out; i++)
        bd[i] = b[i] = resid_val((int)i, 3) / 4.0f;
    for (size_t i = 0; i < ny; i++) {
        sd[i] = sv[i] = resid_val((int)i, 11);
        g[i] = resid_val((int)i, 13);
    }

    struct lvk_model *m = NULL;
    assert_int_equal(lvk_graph_create(ctx, "resid", &m), LVK_OK);
    assert_true(lvk_graph_add_input(m, "x", LVK_DTYPE_F32, &xsh) >= 0);
    assert_true(lvk_graph_add_input(m, "s", LVK_DTYPE_F32, &ysh) >= 0);
    assert_true(lvk_graph_add_const(m, "w", LVK_DTYPE_F32, &wsh, wt) >= 0);
    assert_true(lvk_graph_add_const(m, "b", LVK_DTYPE_F32, &bsh, b) >= 0);
    const struct lvk_attr pads[] = {A_INTS("pads", pad, pad, pad, pad)};
    assert_int_equal(lvk_graph_add_node(m, "Conv", "conv", (const char *const[]){"x", "w", "b"}, 3,
                                        (const char *const[]){"c"}, 1, pads, 1), LVK_OK);
    const char *skip_in = "s";
    const struct lvk_shape w2sh = {4, {m_out, m_out, 1, 1}};
    float w2[64];
    assert_true(m_out * m_out <= 64);
    for (int64_t i = 0; i < m_out * m_out; i++)
        w2[i] = resid_val((int)i, 9) / 2.0f;
    if (rc->late) {
        assert_true(lvk_graph_add_const(m, "w2", LVK_DTYPE_F32, &w2sh, w2) >= 0);
        assert_int_equal(lvk_graph_add_node(m, "Conv", "skip", (const char *const[]){"s", "w2"}, 2,
                                            (const char *const[]){"s2"}, 1, NULL, 0), LVK_OK);
        skip_in = "s2";
    }
    const char *const add_in[] = {rc->swap ? skip_in : "c", rc->swap ? "c" : skip_in};
    assert_int_equal(lvk_graph_add_node(m, "Add", "add", add_in, 2, (const char *const[]){"z"}, 1,
                                        NULL, 0), LVK_OK);
    if (rc->relu)
        assert_int_equal(lvk_graph_add_node(m, "Relu", "relu", (const char *const[]){"z"}, 1,
                                            (const char *const[]){"out"}, 1, NULL, 0), LVK_OK);
    const char *out = rc->relu ? "out" : "z";
    assert_int_equal(lvk_graph_mark_output(m, out), LVK_OK);
    const struct lvk_model_opts opts = {.gradients = 1};
    assert_int_equal(lvk_graph_finalize(m, &opts), LVK_OK);
    unsetenv("LVK_CONV_KERNEL");

    /* The Conv that writes the sum: the later of the two. */
    const int add = rc->late ? 2 : 1, writer = rc->late ? 1 : 0;
    assert_int_equal(m->nodes[writer].sum, add);
    assert_true(m->nodes[add].fused);
    assert_int_equal(m->nodes[writer].act, rc->relu ? add + 1 : -1);
    if (rc->relu)
        assert_true(m->nodes[add + 1].fused);
    assert_int_equal(m->nodes[0].sum, rc->late ? -1 : add);
    assert_int_equal(m->values[lvk_graph_find(m, "c")].buf == NULL, !rc->late);
    if (rc->late)
        assert_null(m->values[lvk_graph_find(m, "s2")].buf);

    assert_int_equal(lvk_model_set_input(m, "x", x, nx), LVK_OK);
    assert_int_equal(lvk_model_set_input(m, "s", sv, ny), LVK_OK);
    assert_int_equal(lvk_model_forward(m), LVK_OK);
    assert_int_equal(lvk_model_read(m, out, y, ny), LVK_OK);
    assert_int_equal(lvk_model_backward(m, out, g, ny, dx, nx), LVK_OK);
    assert_int_equal(lvk_buf_download(ctx, m->values[lvk_graph_find(m, "s")].grad, 0, ds,
                                      ny * sizeof *ds), LVK_OK);
    lvk_model_destroy(m);
    lvk_test_assert_no_validation();

    const struct conv_ref r = {.group = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1,
                               .pt = pad, .pl = pad, .oh = h, .ow = w};
    struct lvk_op_case c = {.ninputs = 3, .in_shape = {xsh, wsh, bsh}, .user = (void *)&r};
    conv_ref_fwd(&c, (const double *const[]){xd, wd, bd}, (double *const[]){ref}, &ysh);
    /* s' = W2 s per pixel (late), else s; then dz, then ds = W2^T dz. */
    for (size_t i = 0; i < ny; i++) {
        const double skip = rc->late ? mix_channels(w2, sd, m_out, h * w, i, false) : sd[i];
        const double z = ref[i] + skip;
        /* The inputs are multiples of 1/8, so z can be exactly 0, which
         * the winograd kernel's rounding makes tiny of either sign: there
         * the device's side of the kink decides the gradient. */
        const bool on = !rc->relu || (fabs(z) > CONV_ATOL ? z > 0 : y[i] > 0);
        const double want = on ? z : 0.0;
        if (fabs(y[i] - want) > CONV_ATOL)
            fail_msg("%s: out[%zu] = %g, want %g", kernel, i, y[i], want);
        dz[i] = on ? g[i] : 0.0;
    }
    for (size_t i = 0; i < ny; i++) {
        const double want = rc->late ? mix_channels(w2, dz, m_out, h * w, i, true) : dz[i];
        if (fabs(ds[i] - want) > 1e-5)
            fail_msg("%s: ds[%zu] = %g, want %g", kernel, i, ds[i], want);
    }
    for (size_t i = 0; i < nx; i++) {
        xd[i] += 1.0;
        conv_ref_fwd(&c, (const double *const[]){xd, wd, bd}, (double *const[]){bumped}, &ysh);
        xd[i] -= 1.0;
        double want = 0;
        for (size_t j = 0; j < ny; j++)
            want += dz[j] * (bumped[j] - ref[j]);
        if (fabs(dx[i] - want) > CONV_ATOL)
            fail_msg("%s: dx[%zu] = %g, want %g", kernel, i, dx[i], want);
    }
    free(x); free(wt); free(b); free(sv); free(g); free(y); free(dx); free(ds);
    free(xd); free(wd); free(bd); free(ref); free(bumped); free(dz); free(sd);
}

static void resid_run(const struct resid_case *rc)
{
    if (!lvk_test_ctx())
        skip();
    resid_check(rc, "classic");
    resid_check(rc, "texel");
    resid_check(rc, "winograd");
}

/* 4-column stores (rows of 8), the sum second, then first with a Relu. */
static void test_conv_residual_3x3(void **state)
{
    resid_run(&(struct resid_case){{2, 5, 6, 8}, {7, 5, 3, 3}});
    resid_run(&(struct resid_case){{2, 5, 6, 8}, {7, 5, 3, 3}, .swap = true, .relu = true});
}

/* Single-column stores (a 5x7 map flattened to 35 columns). */
static void test_conv_residual_pointwise(void **state)
{
    resid_run(&(struct resid_case){{1, 3, 5, 7}, {4, 3, 1, 1}, .relu = true});
}

/* A projection shortcut recorded after the first Conv writes the sum. */
static void test_conv_residual_late(void **state)
{
    resid_run(&(struct resid_case){{1, 3, 4, 8}, {6, 3, 3, 3}, .relu = true, .late = true});
}

/* ---- a gradient mask, and gradients added ------------------------------------------ */

/* What the backward applies as it stores: with `masked`, y =
 * Conv(Relu(x)), whose backward applies the Relu's gradient mask
 * (lvk_node.bwd_fused) and stores dx; else z = Concat(Conv(x),
 * Conv2(x)), whose second Conv's backward (the first to run) stores dx
 * and the first adds to it. Against the reference convolution: for a seed
 * g, dx_i = relu'(x_i) <g, conv(r + e_i) - conv(r)> with r = Relu(x), or
 * the sum over both convolutions. Both 3x3 with pads 1 and the given
 * stride, 5 -> 7 channels (stride 2: the classic kernel's phases). */
static void adjoint_check(const char *kernel, bool masked, int stride)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    setenv("LVK_CONV_KERNEL", kernel, 1);
    const int64_t n = 2, c = 5, mo = 7, h = 6, w = 8;
    const int64_t oh = (h - 1) / stride + 1, ow = (w - 1) / stride + 1;
    const struct lvk_shape xsh = {4, {n, c, h, w}}, wsh = {4, {mo, c, 3, 3}};
    const struct lvk_shape ysh = {4, {n, mo, oh, ow}};
    const int nconv = masked ? 1 : 2;
    const size_t nx = (size_t)lvk_shape_count(&xsh), nw = (size_t)lvk_shape_count(&wsh);
    const size_t ny = (size_t)lvk_shape_count(&ysh), nz = nconv * ny;
    float *x = malloc(nx * sizeof *x), *wt = malloc(2 * nw * sizeof *wt);
    float *g = malloc(nz * sizeof *g), *dx = malloc(nx * sizeof *dx);
    double *rd = malloc(nx * sizeof *rd), *wd = malloc(2 * nw * sizeof *wd);
    double *ref = malloc(ny * sizeof *ref), *bumped = malloc(ny * sizeof *bumped);
    assert_true(x && wt && g && dx && rd && wd && ref && bumped);
    for (size_t i = 0; i < nx; i++) {
        x[i] = resid_val((int)i, 7);
        rd[i] = masked ? fmax(x[i], 0.0) : x[i];
    }
    for (size_t i = 0; i < 2 * nw; i++)
        wd[i] = wt[i] = resid_val((int)i, 5) / 2.0f;
    for (size_t i = 0; i < nz; i++)
        g[i] = resid_val((int)i, 13);

    struct lvk_model *m = NULL;
    assert_int_equal(lvk_graph_create(ctx, "adjoint", &m), LVK_OK);
    assert_true(lvk_graph_add_input(m, "x", LVK_DTYPE_F32, &xsh) >= 0);
    assert_true(lvk_graph_add_const(m, "w", LVK_DTYPE_F32, &wsh, wt) >= 0);
    assert_true(lvk_graph_add_const(m, "w2", LVK_DTYPE_F32, &wsh, wt + nw) >= 0);
    const struct lvk_attr pads[] = {A_INTS("pads", 1, 1, 1, 1), A_INTS("strides", stride, stride)};
    if (masked)
        assert_int_equal(lvk_graph_add_node(m, "Relu", "relu", (const char *const[]){"x"}, 1,
                                            (const char *const[]){"r"}, 1, NULL, 0), LVK_OK);
    const char *in = masked ? "r" : "x";
    assert_int_equal(lvk_graph_add_node(m, "Conv", "conv", (const char *const[]){in, "w"}, 2,
                                        (const char *const[]){"y"}, 1, pads, 2), LVK_OK);
    if (!masked) {
        const struct lvk_attr axis = A_INT("axis", 1);
        assert_int_equal(lvk_graph_add_node(m, "Conv", "conv2", (const char *const[]){"x", "w2"},
                                            2, (const char *const[]){"y2"}, 1, pads, 2), LVK_OK);
        assert_int_equal(lvk_graph_add_node(m, "Concat", "cat", (const char *const[]){"y", "y2"},
                                            2, (const char *const[]){"z"}, 1, &axis, 1), LVK_OK);
    }
    const char *out = masked ? "y" : "z";
    assert_int_equal(lvk_graph_mark_output(m, out), LVK_OK);
    const struct lvk_model_opts opts = {.gradients = 1};
    assert_int_equal(lvk_graph_finalize(m, &opts), LVK_OK);
    unsetenv("LVK_CONV_KERNEL");
    if (masked)
        assert_true(m->nodes[0].bwd_fused);
    else
        assert_true(lvk_graph_grad_stores(&m->nodes[1], 0) && !lvk_graph_grad_stores(&m->nodes[0], 0));
    assert_int_equal(lvk_model_set_input(m, "x", x, nx), LVK_OK);
    assert_int_equal(lvk_model_forward(m), LVK_OK);
    assert_int_equal(lvk_model_backward(m, out, g, nz, dx, nx), LVK_OK);
    lvk_model_destroy(m);
    lvk_test_assert_no_validation();

    const struct conv_ref r = {.group = 1, .sh = stride, .sw = stride, .dh = 1, .dw = 1,
                               .pt = 1, .pl = 1, .oh = (int)oh, .ow = (int)ow};
    struct lvk_op_case oc = {.ninputs = 2, .in_shape = {xsh, wsh}, .user = (void *)&r};
    for (int k = 0; k < nconv; k++) {
        /* z is [n, 2 * mo, oh, ow]: image b's part of y (k = 0) or y2 (k = 1). */
        const double *wk = wd + k * nw;
        conv_ref_fwd(&oc, (const double *const[]){rd, wk}, (double *const[]){ref}, &ysh);
        for (size_t i = 0; i < nx; i++) {
            rd[i] += 1.0;
            conv_ref_fwd(&oc, (const double *const[]){rd, wk}, (double *const[]){bumped}, &ysh);
            rd[i] -= 1.0;
            double dot = 0;
            for (size_t j = 0; j < ny; j++) {
                const size_t b = j / (size_t)(mo * oh * ow), e = j % (size_t)(mo * oh * ow);
                dot += g[(b * nconv + k) * (size_t)(mo * oh * ow) + e] * (bumped[j] - ref[j]);
            }
            /* What is left of dx once every convolution's part is off. */
            dx[i] -= (float)(masked && x[i] <= 0 ? 0.0 : dot);
        }
    }
    for (size_t i = 0; i < nx; i++)
        if (fabs(dx[i]) > CONV_ATOL)
            fail_msg("%s, %s, stride %d: dx[%zu] off by %g", kernel, masked ? "masked" : "added",
                     stride, i, dx[i]);
    free(x); free(wt); free(g); free(dx); free(rd); free(wd); free(ref); free(bumped);
}

static void test_conv_masked_backward(void **state)
{
    if (!lvk_test_ctx())
        skip();
    adjoint_check("classic", true, 1);
    adjoint_check("classic", true, 2);
    if (lvk_test_ctx()->is_lavapipe && lvk_test_ctx()->texel_conv) {
        adjoint_check("texel", true, 1);
        adjoint_check("texel", true, 2);
        adjoint_check("winograd", true, 1);
    }
}

static void test_conv_added_backward(void **state)
{
    if (!lvk_test_ctx())
        skip();
    adjoint_check("classic", false, 1);
    adjoint_check("texel", false, 1);
    adjoint_check("winograd", false, 1);
}

/* ---- when renders' Winograd applies -------------------------------------------------- */

/* A 3x3 convolution of 256 channels on an h x h map, planned as renders
 * plan (fast_conv, no gradients, nothing run): the bytes of Winograd scratch
 * it asked for. */
static VkDeviceSize wino_scratch(int64_t h, lvk_status want)
{
    struct lvk_model *m = NULL;
    assert_int_equal(lvk_graph_create(lvk_test_ctx(), "wino", &m), LVK_OK);
    const struct lvk_shape xs = {4, {1, 256, h, h}}, ws = {4, {256, 256, 3, 3}};
    float *w = calloc((size_t)lvk_shape_count(&ws), sizeof *w);
    assert_non_null(w);
    assert_true(lvk_graph_add_input(m, "x", LVK_DTYPE_F32, &xs) >= 0);
    assert_true(lvk_graph_add_const(m, "w", LVK_DTYPE_F32, &ws, w) >= 0);
    free(w);
    const struct lvk_attr pads[] = {A_INTS("pads", 1, 1, 1, 1)};
    assert_int_equal(lvk_graph_add_node(m, "Conv", "conv", (const char *const[]){"x", "w"}, 2,
                                        (const char *const[]){"y"}, 1, pads, 1), LVK_OK);
    assert_int_equal(lvk_graph_mark_output(m, "y"), LVK_OK);
    assert_int_equal(lvk_graph_finalize(m, &(struct lvk_model_opts){.fast_conv = 1}), want);
    VkDeviceSize bytes = 0;
    for (int k = 0; k < LVK_MAX_SCRATCH; k++)
        bytes += m->scratch[k] ? m->scratch[k]->size : 0;
    lvk_model_destroy(m);
    lvk_test_assert_no_validation();
    return bytes;
}

/* Winograd's scratch holds 36 points per 16 pixels of the input and of the
 * output: where that exceeds a storage buffer, the direct kernel plans the
 * layer instead of the load failing. */
static void test_conv_winograd_scratch_limit(void **state)
{
    const struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx || !ctx->is_lavapipe || !ctx->texel_conv)
        skip(); /* Winograd is chosen on lavapipe only */
    assert_true(wino_scratch(16, LVK_OK) > 0);
    /* The smallest map whose scratch exceeds maxStorageBufferRange while x
     * and y fit (36 / 16 of them, so they fit by a wide margin). */
    const uint64_t range = ctx->limits.maxStorageBufferRange;
    int64_t h = 4;
    while (36 * 256 * (uint64_t)(h / 4) * (uint64_t)(h / 4) * 4 <= range)
        h += 4;
    if ((uint64_t)256 * h * h * 4 > range / 2) {
        print_message("skipped: maxStorageBufferRange %llu leaves no such map\n",
                      (unsigned long long)range);
        skip();
    }
    assert_int_equal(wino_scratch(h, LVK_OK), 0);
}

/* Runs after the cases above (cmocka keeps the order). */
static void test_conv_no_shuffle_ran(void **state)
{
    if (!lvk_test_ctx() || !lvk_test_ctx()->is_lavapipe || !lvk_test_ctx()->texel_conv)
        skip(); /* only lavapipe shuffles weights */
    assert_true(no_shuffle_built > 0);
}

static void test_conv_weight_buffers(void **state)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    check_weight_buffers("classic");
    if (ctx->is_lavapipe) /* texel kernels where they are chosen anyway */
        check_weight_buffers("texel");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_3x3_pad1),
        cmocka_unit_test(test_conv_1x1),
        cmocka_unit_test(test_conv_stride2_asymmetric_pads),
        cmocka_unit_test(test_conv_dilation2),
        cmocka_unit_test(test_conv_dilation2_stride2),
        cmocka_unit_test(test_conv_groups2),
        cmocka_unit_test(test_conv_groups3_wide),
        cmocka_unit_test(test_conv_depthwise13),
        cmocka_unit_test(test_conv_depthwise_stride2_multiplier2),
        cmocka_unit_test(test_conv_auto_pad_same_upper),
        cmocka_unit_test(test_conv_auto_pad_same_lower),
        cmocka_unit_test(test_conv_auto_pad_valid),
        cmocka_unit_test(test_conv_5x5_stride3),
        cmocka_unit_test(test_conv_batch2_odd),
        cmocka_unit_test(test_conv_large_map),
        cmocka_unit_test(test_conv_1d),
        cmocka_unit_test(test_conv_pointwise_wide),
        cmocka_unit_test(test_conv_3x3_rows_of_16),
        cmocka_unit_test(test_conv_3x3_leading_pads2),
        cmocka_unit_test(test_conv_7x7_stride2),
        cmocka_unit_test(test_conv_depthwise10_stride2),
        cmocka_unit_test(test_conv_groups9_stride_w3),
        cmocka_unit_test(test_conv_small_map_many_channels),
        cmocka_unit_test(test_conv_small_map_groups2_pointwise),
        cmocka_unit_test(test_conv_3d_unsupported),
        cmocka_unit_test(test_conv_bad_auto_pad),
        cmocka_unit_test(test_conv_kernel_shape_mismatch),
        cmocka_unit_test(test_conv_weight_buffers),
        cmocka_unit_test(test_conv_residual_3x3),
        cmocka_unit_test(test_conv_residual_pointwise),
        cmocka_unit_test(test_conv_residual_late),
        cmocka_unit_test(test_conv_masked_backward),
        cmocka_unit_test(test_conv_winograd_scratch_limit),
        cmocka_unit_test(test_conv_added_backward),
        cmocka_unit_test(test_conv_no_shuffle_ran),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
