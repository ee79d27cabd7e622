/* Attribution (src/analysis/attribution.c), each method against an
 * independent answer:
 *   - saliency: the pixel gradient of the target logit of a small
 *     conv -> tanh -> pool -> dense network, through a preprocessing with
 *     range, mean, std and BGR, equals central finite differences of a
 *     double-precision CPU forward pass; the default target is the CPU's
 *     top-1 class and the default scores tensor is the Softmax's input;
 *   - integrated gradients: the Gauss-Legendre nodes integrate polynomials
 *     of degree < 2n exactly, the refinement puts new nodes where the
 *     gradients mispredict the change of f (worked examples), the weights
 *     cut the path halfway between nodes; on the small network, with the
 *     batch smaller than the steps and not dividing them, the nodes
 *     include the Gauss-Legendre ones and the attributions equal the
 *     weighted finite-difference gradients of the CPU network at the
 *     reported nodes, f(x) and f(x0) equal the CPU's;
 *   - guided backpropagation: a hand-built two-layer ReLU network whose
 *     answer is worked out by hand below, next to plain saliency on it;
 *   - SmoothGrad: on that network noise small enough to keep every ReLU on
 *     its side gives back the exact gradient, averaged over several batches;
 *   - Grad-CAM: the activations and gradients the model saved at the layer
 *     (the gradients also against their closed form W2[k, c] / (h w)) give
 *     the class activation map and its bilinear upsampling on the CPU;
 *   - completeness of integrated gradients at 64 steps under 1% on the
 *     shared MobileNets (V2 on coffee, V1 on parrot; skipped when ../shared
 *     is absent);
 *   - baselines, heat-map pictures and error messages. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "analysis/attribution.h"
#include "io/lvk_io.h"
#include "support/devbuf.h"
#include "support/op_harness.h"

#define GRAD_TOL 2e-3  /* float32 device gradients against double FD, relative to max |grad| */
#define VALUE_TOL 1e-4 /* float32 logits of O(1) */

static float *random_floats(size_t n, unsigned *seed, double lo, double hi)
{
    float *p = malloc(n * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (float)uniform(seed, lo, hi);
    return p;
}

/* cmocka compares floats in single precision. */
#define assert_double_near(a, b, tol) assert_true(fabs((double)(a) - (double)(b)) <= (tol))

static double max_abs(const float *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(a[i]));
    return m;
}

/* ---- the small conv network and its CPU twin -------------------------------------------- */

/* in [B, 3, H, W] -> Conv 3x3 (stride S, pad 1) -> act -> feat [B, M, h, w]
 * -> GlobalAveragePool -> Flatten -> Gemm (W2 [K, M], transB) -> logits
 * [B, K] -> Softmax -> prob (the graph output). */
#define NC 3
#define NH 9
#define NW 11
#define NM 4
#define NK 5

struct net {
    int stride, tanh_act, h, w;
    float w1[NM * NC * 9], b1[NM], w2[NK * NM], b2[NK];
    struct lvk_preproc pre;
};

static void net_init(struct net *n, int stride, int tanh_act, unsigned seed)
{
    memset(n, 0, sizeof *n);
    n->stride = stride;
    n->tanh_act = tanh_act;
    n->h = (NH + 2 - 3) / stride + 1;
    n->w = (NW + 2 - 3) / stride + 1;
    for (int i = 0; i < NM * NC * 9; i++)
        n->w1[i] = (float)uniform(&seed, -0.6, 0.6);
    for (int i = 0; i < NM; i++)
        n->b1[i] = (float)uniform(&seed, -0.2, 0.4);
    for (int i = 0; i < NK * NM; i++)
        n->w2[i] = (float)uniform(&seed, -1, 1);
    for (int i = 0; i < NK; i++)
        n->b2[i] = (float)uniform(&seed, -0.1, 0.1);
    lvk_preproc_default(&n->pre);
}

static struct lvk_model *net_build(const struct net *n, int batch)
{
    struct lvk_model *m;
    assert_int_equal(lvk_graph_create(lvk_test_ctx(), "small.onnx", &m), LVK_OK);
    struct lvk_shape xs = {4, {batch, NC, NH, NW}}, ws = {4, {NM, NC, 3, 3}}, bs = {1, {NM}},
                     w2s = {2, {NK, NM}}, b2s = {1, {NK}};
    assert_true(lvk_graph_add_input(m, "in", LVK_DTYPE_F32, &xs) >= 0);
    assert_true(lvk_graph_add_const(m, "w1", LVK_DTYPE_F32, &ws, n->w1) >= 0);
    assert_true(lvk_graph_add_const(m, "b1", LVK_DTYPE_F32, &bs, n->b1) >= 0);
    assert_true(lvk_graph_add_const(m, "w2", LVK_DTYPE_F32, &w2s, n->w2) >= 0);
    assert_true(lvk_graph_add_const(m, "b2", LVK_DTYPE_F32, &b2s, n->b2) >= 0);
    int64_t st[2] = {n->stride, n->stride};
    struct lvk_attr conv[3] = {
        {.name = "kernel_shape", .type = LVK_ATTR_INTS, .ints = (int64_t[]){3, 3}, .n = 2},
        {.name = "pads", .type = LVK_ATTR_INTS, .ints = (int64_t[]){1, 1, 1, 1}, .n = 4},
        {.name = "strides", .type = LVK_ATTR_INTS, .ints = st, .n = 2}};
    assert_int_equal(lvk_graph_add_node(m, "Conv", "conv", (const char *[]){"in", "w1", "b1"}, 3,
                                        (const char *[]){"conv"}, 1, conv, 3), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, n->tanh_act ? "Tanh" : "Relu", "act",
                                        (const char *[]){"conv"}, 1, (const char *[]){"feat"}, 1,
                                        NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "GlobalAveragePool", "gap", (const char *[]){"feat"}, 1,
                                        (const char *[]){"pool"}, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Flatten", "flat", (const char *[]){"pool"}, 1,
                                        (const char *[]){"flat"}, 1, NULL, 0), LVK_OK);
    struct lvk_attr tb = {.name = "transB", .type = LVK_ATTR_INT, .i = 1};
    assert_int_equal(lvk_graph_add_node(m, "Gemm", "fc", (const char *[]){"flat", "w2", "b2"}, 3,
                                        (const char *[]){"logits"}, 1, &tb, 1), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Softmax", "sm", (const char *[]){"logits"}, 1,
                                        (const char *[]){"prob"}, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_mark_output(m, "prob"), LVK_OK);
    struct lvk_model_opts mo = {.gradients = 1, .outputs = (const char *[]){"prob", "logits"},
                                .noutputs = 2};
    if (lvk_graph_finalize(m, &mo) != LVK_OK)
        fail_msg("finalize: %s", lvk_last_error());
    return m;
}

/* Pixels [C, H, W] -> model input, as lucidvk/preproc.h defines it. */
static void cpu_preproc(const struct lvk_preproc *p, const double *px, double *x)
{
    const int plane = NH * NW;
    for (int c = 0; c < NC; c++) {
        int d = p->bgr ? NC - 1 - c : c;
        for (int i = 0; i < plane; i++)
            x[d * plane + i] = (p->lo + px[c * plane + i] * (p->hi - p->lo) - p->mean[c]) / p->std[c];
    }
}

/* feat [M, h, w] (may be NULL) and logits [K] of pixels px. */
static void cpu_forward(const struct net *n, const double *px, double *feat, double *logits)
{
    double x[NC * NH * NW], pool[NM];
    cpu_preproc(&n->pre, px, x);
    for (int m = 0; m < NM; m++) {
        pool[m] = 0;
        for (int oy = 0; oy < n->h; oy++)
            for (int ox = 0; ox < n->w; ox++) {
                double acc = n->b1[m];
                for (int c = 0; c < NC; c++)
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                            int iy = oy * n->stride - 1 + ky, ix = ox * n->stride - 1 + kx;
                            if (iy < 0 || iy >= NH || ix < 0 || ix >= NW)
                                continue;
                            acc += n->w1[((m * NC + c) * 3 + ky) * 3 + kx] * x[(c * NH + iy) * NW + ix];
                        }
                double a = n->tanh_act ? tanh(acc) : fmax(acc, 0.0);
                if (feat)
                    feat[(m * n->h + oy) * n->w + ox] = a;
                pool[m] += a / (n->h * n->w);
            }
    }
    for (int k = 0; k < NK; k++) {
        logits[k] = n->b2[k];
        for (int m = 0; m < NM; m++)
            logits[k] += n->w2[k * NM + m] * pool[m];
    }
}

static double cpu_logit(const struct net *n, const double *px, int k)
{
    double l[NK];
    cpu_forward(n, px, NULL, l);
    return l[k];
}

/* d logit_k / d px by central differences in double (tanh is smooth). */
static void cpu_grad(const struct net *n, double *px, int k, double *g)
{
    const double h = 1e-5;
    for (int i = 0; i < NC * NH * NW; i++) {
        double x0 = px[i];
        px[i] = x0 + h;
        double fp = cpu_logit(n, px, k);
        px[i] = x0 - h;
        double fm = cpu_logit(n, px, k);
        px[i] = x0;
        g[i] = (fp - fm) / (2 * h);
    }
}

static void expect_close(const float *got, const double *want, size_t count, double tol, const char *what)
{
    double scale = 1e-12;
    for (size_t i = 0; i < count; i++)
        scale = fmax(scale, fabs(want[i]));
    for (size_t i = 0; i < count; i++)
        if (fabs(got[i] - want[i]) > tol * scale)
            fail_msg("%s[%zu]: got %.7g, want %.7g (scale %.3g)", what, i, got[i], want[i], scale);
}

/* ---- saliency ------------------------------------------------------------------------------ */

static void test_saliency_fd(void **state)
{
    if (!lvk_test_ctx())
        skip();
    struct net n;
    net_init(&n, 1, 1, 4242);
    /* Every part of the preprocessing, so the chain rule back to pixels
     * is exercised channel by channel. */
    n.pre.lo = -1;
    n.pre.hi = 1;
    n.pre.mean[0] = 0.1f, n.pre.mean[1] = -0.2f, n.pre.mean[2] = 0.3f;
    n.pre.std[0] = 0.5f, n.pre.std[1] = 0.8f, n.pre.std[2] = 1.3f;
    n.pre.bgr = true;
    struct lvk_model *m = net_build(&n, 1);
    assert_string_equal(lvk_attr_default_scores(m), "logits");

    unsigned seed = 99;
    const size_t npx = NC * NH * NW;
    float *img = random_floats(npx, &seed, 0, 1);
    double px[NC * NH * NW], g[NC * NH * NW], logits[NK];
    for (size_t i = 0; i < npx; i++)
        px[i] = img[i];
    cpu_forward(&n, px, NULL, logits);
    int top = 0;
    for (int k = 1; k < NK; k++)
        if (logits[k] > logits[top])
            top = k;

    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: the default (top-1) target; pass 1: another class. */
        int want = pass == 0 ? top : (top + 2) % NK;
        struct lvk_attr_opts o = {.method = LVK_ATTR_SALIENCY, .target = pass == 0 ? -1 : want,
                                  .pre = n.pre};
        struct lvk_attr_result r;
        if (lvk_attr_compute(m, &o, img, &r) != LVK_OK)
            fail_msg("saliency: %s", lvk_last_error());
        assert_int_equal(r.target, want);
        assert_true(fabs(r.value - logits[want]) <= VALUE_TOL * fmax(1, fabs(logits[want])));
        cpu_grad(&n, px, want, g);
        expect_close(r.attr, g, npx, GRAD_TOL, "saliency gradient");
        assert_true(max_abs(r.attr, npx) > 1e-3);
        for (int i = 0; i < NH * NW; i++) {
            double mx = 0;
            for (int c = 0; c < NC; c++)
                mx = fmax(mx, fabs(r.attr[c * NH * NW + i]));
            assert_float_equal(r.map[i], mx, 0);
        }
        lvk_attr_result_free(&r);
    }
    free(img);
    lvk_model_destroy(m);
    lvk_test_assert_no_validation();
}

/* ---- integrated gradients on the small network --------------------------------------------- */

static void test_ig_small(void **state)
{
    if (!lvk_test_ctx())
        skip();
    struct net n;
    net_init(&n, 1, 1, 777);
    n.pre.lo = -1;
    n.pre.hi = 1;
    /* Batch 4 with 10 steps: chunks of 4, 4 and 2 (spare slots filled). */
    struct lvk_model *m = net_build(&n, 4);
    unsigned seed = 5;
    const size_t npx = NC * NH * NW;
    float *img = random_floats(npx, &seed, 0, 1);
    float *base = random_floats(npx, &seed, 0, 0.3);
    const int steps = 10, k = 3;
    struct lvk_attr_opts o = {.method = LVK_ATTR_IG, .target = k, .steps = steps, .baseline = base,
                              .pre = n.pre};
    struct lvk_attr_result r;
    if (lvk_attr_compute(m, &o, img, &r) != LVK_OK)
        fail_msg("ig: %s", lvk_last_error());
    assert_int_equal(r.batch, 4);
    assert_int_equal(r.steps, steps);
    assert_int_equal(r.images, steps);
    /* Stages of 5 (Gauss-Legendre), 3 and 2 nodes in batches of 4. */
    assert_int_equal(r.passes, 2 + 1 + 1);

    /* The nodes: ascending inside (0, 1), the 5 Gauss-Legendre ones among
     * them; weights: the path cut halfway between neighbours. */
    double gl[5], glw[5], lo = 0;
    lvk_attr_ig_nodes(5, gl, glw);
    for (int k = 0; k < steps; k++) {
        assert_true(r.nodes[k] > 0 && r.nodes[k] < 1);
        if (k > 0)
            assert_true(r.nodes[k] > r.nodes[k - 1]);
        double hi = k + 1 < steps ? 0.5 * (r.nodes[k] + r.nodes[k + 1]) : 1;
        assert_double_near(r.weights[k], hi - lo, 1e-15);
        lo = hi;
    }
    for (int j = 0; j < 5; j++) {
        int found = 0;
        for (int k = 0; k < steps; k++)
            found |= r.nodes[k] == gl[j];
        assert_true(found);
    }

    /* The attributions are the weighted gradients at those nodes. */
    double px[NC * NH * NW], g[NC * NH * NW], want[NC * NH * NW] = {0}, x0[NC * NH * NW];
    for (size_t i = 0; i < npx; i++)
        x0[i] = base[i];
    for (int s = 0; s < steps; s++) {
        for (size_t i = 0; i < npx; i++)
            px[i] = base[i] + r.nodes[s] * ((double)img[i] - base[i]);
        cpu_grad(&n, px, k, g);
        for (size_t i = 0; i < npx; i++)
            want[i] += ((double)img[i] - base[i]) * g[i] * r.weights[s];
    }
    expect_close(r.attr, want, npx, GRAD_TOL, "ig attribution");
    for (size_t i = 0; i < npx; i++)
        px[i] = img[i];
    double fx = cpu_logit(&n, px, k), f0 = cpu_logit(&n, x0, k), sum = 0;
    assert_true(fabs(r.value - fx) <= VALUE_TOL);
    assert_true(fabs(r.baseline_value - f0) <= VALUE_TOL);
    for (size_t i = 0; i < npx; i++)
        sum += want[i];
    assert_true(fabs(r.attr_sum - sum) <= 1e-3 * fabs(sum) + 1e-6);
    assert_true(fabs(r.completeness - fabs(sum - (fx - f0)) / fabs(fx - f0)) < 1e-3);
    for (int i = 0; i < NH * NW; i++) {
        double v = 0;
        for (int c = 0; c < NC; c++)
            v += r.attr[c * NH * NW + i];
        assert_true(fabs(r.map[i] - fabs(v)) <= 1e-6 * (1 + fabs(v)));
    }
    lvk_attr_result_free(&r);
    free(img);
    free(base);
    lvk_model_destroy(m);
    lvk_test_assert_no_validation();
}

/* Gauss-Legendre on [0, 1] integrates t^j exactly for j < 2n. */
static void test_ig_nodes(void **state)
{
    const int ns[] = {1, 2, 5, 10, 64, 200};
    for (size_t c = 0; c < sizeof ns / sizeof ns[0]; c++) {
        int n = ns[c];
        double *t = malloc(n * sizeof *t), *w = malloc(n * sizeof *w);
        lvk_attr_ig_nodes(n, t, w);
        for (int k = 0; k < n; k++) {
            assert_true(t[k] > 0 && t[k] < 1 && w[k] > 0);
            if (k > 0)
                assert_true(t[k] > t[k - 1]);
        }
        /* Moments up to 2n - 1 (at most 40: high powers of nodes in
         * [0, 1] vanish below double precision anyway). */
        for (int j = 0; j < 2 * n && j <= 40; j++) {
            double s = 0;
            for (int k = 0; k < n; k++)
                s += w[k] * pow(t[k], j);
            if (fabs(s - 1.0 / (j + 1)) > 1e-12)
                fail_msg("n = %d: moment %d is %.15g, not %.15g", n, j, s, 1.0 / (j + 1));
        }
        free(t);
        free(w);
    }
}

/* Voronoi weights, and where refinement puts new nodes. */
static void test_ig_refine(void **state)
{
    double w[3];
    lvk_attr_ig_weights((const double[]){0.1, 0.3, 0.9}, 3, w);
    assert_double_near(w[0], 0.2, 1e-15);
    assert_double_near(w[1], 0.4, 1e-15);
    assert_double_near(w[2], 0.4, 1e-15);

    /* f(t) = t, except that f jumps by 1 inside (0.5, 0.75): only that
     * interval's change disagrees with the gradients (all 1), so every new
     * node goes there, evenly. */
    const double t[3] = {0.25, 0.5, 0.75}, g[3] = {1, 1, 1};
    double out[4];
    assert_int_equal(lvk_attr_ig_refine(t, g, (const double[]){0.25, 0.5, 1.75}, 3, 0, 2, 4, out), LVK_OK);
    for (int i = 0; i < 4; i++)
        assert_double_near(out[i], 0.5 + 0.05 * (i + 1), 1e-15);
    /* Mismatches 3 (first interval, end rule g * t0) and 1 (last): 3 + 1 nodes. */
    assert_int_equal(lvk_attr_ig_refine(t, g, (const double[]){3.25, 3.5, 3.75}, 3, 0, 5, 4, out), LVK_OK);
    const double want[4] = {0.0625, 0.125, 0.1875, 0.875};
    for (int i = 0; i < 4; i++)
        assert_double_near(out[i], want[i], 1e-15);
    /* Everything exact: by length; halves tie, the earlier wins. */
    assert_int_equal(lvk_attr_ig_refine((const double[]){0.5}, g, (const double[]){0.5}, 1, 0, 1, 3, out),
                     LVK_OK);
    assert_double_near(out[0], 1.0 / 6, 1e-15);
    assert_double_near(out[1], 2.0 / 6, 1e-15);
    assert_double_near(out[2], 0.75, 1e-15);
}

/* ---- guided backpropagation and SmoothGrad on a two-layer ReLU network -------------------- */

/* in [B, 1, 2, 2] -> Flatten -> Gemm W1 [3, 4] -> Relu -> Gemm W2 [2, 3] -> logits. */
static const float k_w1[12] = {1, 0, 0, 1, /* h0 = x0 + x3 */
                               -1, -1, 0, 0, /* h1 = -x0 - x1 */
                               0, 1, 1, 0}; /* h2 = x1 + x2 */
static const float k_w2[6] = {1, 2, -3, 0.5f, 0.5f, 0.5f};
static const float k_x[4] = {0.5f, 0.25f, 1.0f, 0.75f};

static struct lvk_model *two_layer(int batch)
{
    struct lvk_model *m;
    assert_int_equal(lvk_graph_create(lvk_test_ctx(), "two.onnx", &m), LVK_OK);
    struct lvk_shape xs = {4, {batch, 1, 2, 2}}, w1s = {2, {3, 4}}, w2s = {2, {2, 3}};
    assert_true(lvk_graph_add_input(m, "in", LVK_DTYPE_F32, &xs) >= 0);
    assert_true(lvk_graph_add_const(m, "w1", LVK_DTYPE_F32, &w1s, k_w1) >= 0);
    assert_true(lvk_graph_add_const(m, "w2", LVK_DTYPE_F32, &w2s, k_w2) >= 0);
    struct lvk_attr tb = {.name = "transB", .type = LVK_ATTR_INT, .i = 1};
    assert_int_equal(lvk_graph_add_node(m, "Flatten", "flat", (const char *[]){"in"}, 1,
                                        (const char *[]){"flat"}, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Gemm", "fc1", (const char *[]){"flat", "w1"}, 2,
                                        (const char *[]){"h"}, 1, &tb, 1), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Relu", "relu", (const char *[]){"h"}, 1,
                                        (const char *[]){"a"}, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Gemm", "fc2", (const char *[]){"a", "w2"}, 2,
                                        (const char *[]){"logits"}, 1, &tb, 1), LVK_OK);
    assert_int_equal(lvk_graph_mark_output(m, "logits"), LVK_OK);
    struct lvk_model_opts mo = {.gradients = 1};
    if (lvk_graph_finalize(m, &mo) != LVK_OK)
        fail_msg("finalize: %s", lvk_last_error());
    return m;
}

static void attribute(struct lvk_model *m, enum lvk_attr_method method, int target,
                      struct lvk_attr_result *r)
{
    struct lvk_attr_opts o = {.method = method, .target = target, .samples = 10, .noise = 0.01f,
                              .seed = 3};
    lvk_preproc_default(&o.pre);
    if (lvk_attr_compute(m, &o, k_x, r) != LVK_OK)
        fail_msg("%s: %s", lvk_attr_method_name(method), lvk_last_error());
}

static void expect4(const struct lvk_attr_result *r, const float want[4], const char *what)
{
    for (int i = 0; i < 4; i++)
        if (fabsf(r->attr[i] - want[i]) > 1e-5f)
            fail_msg("%s: pixel %d: got %g, want %g", what, i, r->attr[i], want[i]);
}

static void test_guided_two_layer(void **state)
{
    if (!lvk_test_ctx())
        skip();
    struct lvk_model *m = two_layer(1);
    struct lvk_attr_result r;
    /* h = (1.25, -0.75, 1.25): units 0 and 2 on, unit 1 off. logits =
     * (1.25 - 3*1.25, 0.5*2.5) = (-2.5, 1.25): the top-1 class is 1.
     *
     * Class 0: d logit / d a = (1, 2, -3).
     *   plain: units 0 and 2 pass:   1*W1[0] - 3*W1[2] = (1, -3, -3, 1)
     *   guided: unit 2's gradient is negative, unit 1 is off:
     *           only 1*W1[0]          = (1, 0, 0, 1) */
    attribute(m, LVK_ATTR_SALIENCY, 0, &r);
    assert_int_equal(r.images, 1);
    assert_float_equal(r.value, -2.5, 1e-6);
    expect4(&r, (const float[]){1, -3, -3, 1}, "saliency, class 0");
    lvk_attr_result_free(&r);
    attribute(m, LVK_ATTR_GUIDED, 0, &r);
    expect4(&r, (const float[]){1, 0, 0, 1}, "guided, class 0");
    assert_float_equal(r.map[1], 0, 0);
    lvk_attr_result_free(&r);
    /* Class 1 (top-1): d logit / d a = (0.5, 0.5, 0.5), all positive, so
     * guided = plain = 0.5 (W1[0] + W1[2]) = (0.5, 0.5, 0.5, 0.5). */
    attribute(m, LVK_ATTR_GUIDED, -1, &r);
    assert_int_equal(r.target, 1);
    expect4(&r, (const float[]){0.5f, 0.5f, 0.5f, 0.5f}, "guided, class 1");
    lvk_attr_result_free(&r);
    /* The guided mode ends with the call: plain saliency again. */
    attribute(m, LVK_ATTR_SALIENCY, 0, &r);
    expect4(&r, (const float[]){1, -3, -3, 1}, "saliency after guided");
    lvk_attr_result_free(&r);
    lvk_model_destroy(m);
    lvk_test_assert_no_validation();
}

static void test_smoothgrad_two_layer(void **state)
{
    if (!lvk_test_ctx())
        skip();
    /* Noise of 0.01 moves h by at most a few hundredths, so no unit
     * changes side and every noisy gradient is the exact one; 10 samples
     * in batches of 4 (4, 4, 2). */
    struct lvk_model *m = two_layer(4);
    struct lvk_attr_result r;
    attribute(m, LVK_ATTR_SMOOTHGRAD, 0, &r);
    assert_int_equal(r.batch, 4);
    assert_int_equal(r.passes, 3);
    assert_int_equal(r.images, 10);
    assert_float_equal(r.value, -2.5, 1e-6);
    expect4(&r, (const float[]){1, -3, -3, 1}, "smoothgrad, class 0");
    assert_float_equal(r.map[1], 3, 1e-5);
    lvk_attr_result_free(&r);
    lvk_model_destroy(m);
    lvk_test_assert_no_validation();
}

/* ---- Grad-CAM --------------------------------------------------------------------------------- */

/* Bilinear, half-pixel centres, clamped (PyTorch align_corners=False). */
static double bilinear(const double *src, int sh, int sw, int H, int W, int y, int x)
{
    double fy = (y + 0.5) * sh / H - 0.5, fx = (x + 0.5) * sw / W - 0.5;
    fy = fy < 0 ? 0 : fy;
    fx = fx < 0 ? 0 : fx;
    int y0 = (int)floor(fy), x0 = (int)floor(fx);
    double ay = fy - y0, ax = fx - x0;
    int y1 = y0 + 1 < sh ? y0 + 1 : sh - 1, x1 = x0 + 1 < sw ? x0 + 1 : sw - 1;
    if (y0 > sh - 1) y0 = sh - 1;
    if (x0 > sw - 1) x0 = sw - 1;
    return (1 - ay) * ((1 - ax) * src[y0 * sw + x0] + ax * src[y0 * sw + x1]) +
           ay * ((1 - ax) * src[y1 * sw + x0] + ax * src[y1 * sw + x1]);
}

static void test_gradcam(void **state)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    struct net n;
    net_init(&n, 2, 0, 1234); /* stride 2, ReLU: feat is [4, 5, 6] */
    struct lvk_model *m = net_build(&n, 1);
    assert_string_equal(lvk_attr_default_layer(m), "feat");
    unsigned seed = 8;
    const size_t npx = NC * NH * NW;
    float *img = random_floats(npx, &seed, 0, 1);
    const int k = 2, h = n.h, w = n.w, plane = h * w;
    struct lvk_attr_opts o = {.method = LVK_ATTR_GRADCAM, .target = k, .pre = n.pre};
    struct lvk_attr_result r;
    if (lvk_attr_compute(m, &o, img, &r) != LVK_OK)
        fail_msg("gradcam: %s", lvk_last_error());
    assert_string_equal(r.layer, "feat");
    assert_int_equal(r.cam_h, h);
    assert_int_equal(r.cam_w, w);
    assert_null(r.attr);

    /* What the model saved at the layer during that pass. */
    struct lvk_value *v = &m->values[lvk_graph_find(m, "feat")];
    float act[NM * 64], grad[NM * 64];
    assert_int_equal(lvk_buf_download(ctx, v->buf, 0, act, sizeof(float) * NM * plane), LVK_OK);
    assert_int_equal(lvk_buf_download(ctx, v->grad, 0, grad, sizeof(float) * NM * plane), LVK_OK);
    /* The activations are the CPU's; the gradients are d logit_k / d feat
     * = W2[k, c] / (h w) through the average pool and the dense layer. */
    double px[NC * NH * NW], feat[NM * 64], logits[NK];
    for (size_t i = 0; i < npx; i++)
        px[i] = img[i];
    cpu_forward(&n, px, feat, logits);
    expect_close(act, feat, (size_t)NM * plane, 1e-5, "saved activation");
    for (int c = 0; c < NM; c++)
        for (int i = 0; i < plane; i++)
            assert_float_equal(grad[c * plane + i], n.w2[k * NM + c] / plane, 1e-7);

    /* CPU Grad-CAM from the saved tensors. */
    double cam[64], up;
    int positive = 0;
    for (int i = 0; i < plane; i++) {
        double s = 0;
        for (int c = 0; c < NM; c++) {
            double alpha = 0;
            for (int j = 0; j < plane; j++)
                alpha += grad[c * plane + j];
            s += alpha / plane * act[c * plane + i];
        }
        cam[i] = s > 0 ? s : 0;
        positive += s > 0;
        assert_true(fabs(r.cam[i] - cam[i]) <= 1e-5 * (1 + fabs(cam[i])));
    }
    assert_true(positive > 0 && positive < plane); /* the ReLU of the map matters */
    for (int y = 0; y < NH; y++)
        for (int x = 0; x < NW; x++) {
            up = bilinear(cam, h, w, NH, NW, y, x);
            if (fabs(r.map[y * NW + x] - up) > 1e-5 * (1 + fabs(up)))
                fail_msg("map (%d, %d): got %g, want %g", y, x, r.map[y * NW + x], up);
        }
    lvk_attr_result_free(&r);
    free(img);
    lvk_model_destroy(m);
    lvk_test_assert_no_validation();
}

/* ---- completeness on the shared MobileNets ------------------------------------------------ */

static void ig_completeness(const char *model, const char *image)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    char mp[1024], ip[1024];
    snprintf(mp, sizeof mp, "%s/../shared/models/%s", LVK_SOURCE_DIR, model);
    snprintf(ip, sizeof ip, "%s/../shared/images/%s", LVK_SOURCE_DIR, image);
    if (access(mp, R_OK) != 0 || access(ip, R_OK) != 0) {
        print_message("%s or %s not found: skipped\n", mp, ip);
        skip();
    }
    struct lvk_attr_opts o = {.method = LVK_ATTR_IG, .target = -1, .steps = 64};
    lvk_preproc_default(&o.pre);
    o.pre.lo = -1; /* the MobileNets take pixels in [-1, 1] */
    lvk_model_t *m;
    if (lvk_attr_load(ctx, mp, &o, 16, &m) != LVK_OK)
        fail_msg("load %s: %s", mp, lvk_last_error());
    struct lvk_image img;
    assert_int_equal(lvk_png_read(ip, 3, &img), LVK_OK);
    assert_int_equal(img.w, 224);
    struct lvk_attr_result r;
    if (lvk_attr_compute(m, &o, img.data, &r) != LVK_OK)
        fail_msg("ig: %s", lvk_last_error());
    print_message("%s %s: class %d, f(x) %.4f, f(black) %.4f, sum of attributions %.4f, "
                  "completeness error %.3f%% (batch %d)\n", model, image, r.target, r.value,
                  r.baseline_value, r.attr_sum, 100 * r.completeness, r.batch);
    assert_true(r.completeness < 0.01);
    assert_true(fabs(r.value - r.baseline_value) > 1); /* a real change to explain */
    lvk_attr_result_free(&r);
    lvk_image_free(&img);
    lvk_model_destroy(m);
    lvk_test_assert_no_validation();
}

/* Measured at 64 steps from black (class: top-1), V2 / V1 0.25:
 *   parrot 1.74% / 0.37%, coffee 0.40% / 0.23%, chelsea_cat 1.51% / 0.57%,
 *   hot_dog 0.33% / 0.73%, grace_hopper 1.46% / 0.90%
 * (64 plain Gauss-Legendre nodes: V2 coffee 23%, grace_hopper 4.0%). The
 * error is that of sampling a piecewise-constant df/dt at 64 points, about
 * 1% and varying from image to image; V2 coffee is the case fixed nodes
 * got worst. */
static void test_ig_mobilenet_v2(void **state) { ig_completeness("mobilenet_v2_1.0_224.onnx", "coffee.png"); }
static void test_ig_mobilenet_v1(void **state) { ig_completeness("mobilenet_v1_0.25_224.onnx", "parrot.png"); }

/* ---- baselines, pictures, errors --------------------------------------------------------- */

static void test_baselines(void **state)
{
    enum { C = 3, H = 20, W = 24 };
    float img[C * H * W], out[C * H * W];
    for (int c = 0; c < C; c++)
        for (int i = 0; i < H * W; i++)
            img[c * H * W + i] = 0.2f * (float)(c + 1);
    /* A normalised blur keeps a constant image. */
    assert_int_equal(lvk_attr_baseline(LVK_BASELINE_BLUR, img, C, H, W, 0, out), LVK_OK);
    for (int i = 0; i < C * H * W; i++)
        assert_float_equal(out[i], img[i], 1e-5);
    /* A step edge blurs into a monotone ramp that stays within its ends. */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            img[y * W + x] = x < W / 2 ? 0.0f : 1.0f;
    assert_int_equal(lvk_attr_baseline(LVK_BASELINE_BLUR, img, 1, H, W, 0, out), LVK_OK);
    for (int x = 1; x < W; x++)
        assert_true(out[5 * W + x] >= out[5 * W + x - 1]);
    assert_true(out[5 * W + W / 2 - 1] > 0.2f && out[5 * W + W / 2] < 0.8f);
    assert_int_equal(lvk_attr_baseline(LVK_BASELINE_NOISE, img, C, H, W, 7, out), LVK_OK);
    double mean = 0;
    for (int i = 0; i < C * H * W; i++) {
        assert_true(out[i] >= 0 && out[i] <= 1);
        mean += out[i] / (C * H * W);
    }
    assert_true(fabs(mean - 0.5) < 0.05);
    assert_int_equal(lvk_attr_baseline(LVK_BASELINE_BLACK, img, C, H, W, 0, out), LVK_OK);
    assert_float_equal(max_abs(out, C * H * W), 0, 0);
}

static void test_render(void **state)
{
    enum { H = 4, W = 5 };
    float map[H * W], image[3 * H * W];
    for (int i = 0; i < H * W; i++)
        map[i] = (float)i; /* maximum 19 */
    for (int i = 0; i < 3 * H * W; i++)
        image[i] = 0.25f;
    struct lvk_image out;
    /* 100th percentile: t = map / 19. */
    assert_int_equal(lvk_attr_render(map, H, W, NULL, 3, LVK_CMAP_VIRIDIS, 100, &out), LVK_OK);
    assert_int_equal(out.c, 3);
    for (int i = 0; i < H * W; i++) {
        float rgb[3];
        lvk_cmap_rgb(LVK_CMAP_VIRIDIS, map[i] / 19.0f, rgb);
        for (int c = 0; c < 3; c++)
            assert_float_equal(out.data[c * H * W + i], rgb[c], 1e-6);
    }
    lvk_image_free(&out);
    /* Overlay: heat 0 shows the image at half brightness, heat 1 the colour; the 50th
     * percentile (value 10 of 0..19) saturates the upper half. */
    assert_int_equal(lvk_attr_render(map, H, W, image, 3, LVK_CMAP_MAGMA, 50, &out), LVK_OK);
    float top[3];
    lvk_cmap_rgb(LVK_CMAP_MAGMA, 1, top);
    for (int c = 0; c < 3; c++) {
        assert_float_equal(out.data[c * H * W + 0], 0.125f, 1e-6);
        assert_float_equal(out.data[c * H * W + 15], top[c], 1e-6);
    }
    lvk_image_free(&out);
}

static void test_errors(void **state)
{
    if (!lvk_test_ctx())
        skip();
    enum lvk_attr_method meth;
    assert_int_equal(lvk_attr_method_parse("ig", &meth), LVK_OK);
    assert_int_equal(meth, LVK_ATTR_IG);
    assert_int_equal(lvk_attr_method_parse("lime", &meth), LVK_ERR_INVALID_ARG);
    assert_non_null(strstr(lvk_last_error(), "smoothgrad"));

    struct lvk_model *m = two_layer(1);
    struct lvk_attr_opts o = {.method = LVK_ATTR_SALIENCY, .target = 7};
    lvk_preproc_default(&o.pre);
    struct lvk_attr_result r;
    assert_int_equal(lvk_attr_compute(m, &o, k_x, &r), LVK_ERR_INVALID_ARG);
    assert_non_null(strstr(lvk_last_error(), "class 7 out of range"));
    assert_null(r.map);

    o.target = -1;
    o.objective = "channel(h, 0) - 0.1*tv";
    assert_int_equal(lvk_attr_compute(m, &o, k_x, &r), LVK_ERR_INVALID_ARG);
    assert_non_null(strstr(lvk_last_error(), "column 21: attribution cannot use 'tv'"));

    /* An objective on a hidden tensor: d h0 / dx = W1[0]. */
    o.objective = "channel(h, 0)";
    if (lvk_attr_compute(m, &o, k_x, &r) != LVK_OK)
        fail_msg("objective: %s", lvk_last_error());
    assert_int_equal(r.target, -1);
    assert_float_equal(r.value, 1.25, 1e-6);
    expect4(&r, (const float[]){1, 0, 0, 1}, "objective channel(h, 0)");
    lvk_attr_result_free(&r);

    o.objective = NULL;
    o.method = LVK_ATTR_GRADCAM;
    o.layer = "logits";
    assert_int_equal(lvk_attr_compute(m, &o, k_x, &r), LVK_ERR_INVALID_ARG);
    assert_non_null(strstr(lvk_last_error(), "4-D"));
    lvk_model_destroy(m);
    lvk_test_assert_no_validation();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_saliency_fd),
        cmocka_unit_test(test_ig_nodes),
        cmocka_unit_test(test_ig_refine),
        cmocka_unit_test(test_ig_small),
        cmocka_unit_test(test_guided_two_layer),
        cmocka_unit_test(test_smoothgrad_two_layer),
        cmocka_unit_test(test_gradcam),
        cmocka_unit_test(test_baselines),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_ig_mobilenet_v2),
        cmocka_unit_test(test_ig_mobilenet_v1),
    };
    /* The MobileNet cases take minutes on a CPU device: LVK_TEST_FILTER
     * (a cmocka pattern such as "*two_layer*") runs a subset. */
    if (getenv("LVK_TEST_FILTER"))
        cmocka_set_test_filter(getenv("LVK_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
