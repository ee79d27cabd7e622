/* Whole networks against independent references (skipped without
 * ../shared): two ImageNet MobileNets with onnxruntime outputs for five
 * photos, and a GoogLeNet with PyTorch activations and an input gradient.
 * Agreement is measured relative to the largest reference magnitude of each
 * tensor, as float32 engines differ by summation order only. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "io/lvk_io.h"
#include "lucidvk/preproc.h"
#include "nn/graph.h"
#include "nn/onnx.h"
#include "support/cli.h"
#include "support/op_harness.h"

#define SHARED LVK_SOURCE_DIR "/../shared"
static const double k_rel_tol = 1e-4;

static double max_abs(const float *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(x[i]));
    return m;
}

/* max |got - want| / max |want| */
static double rel_err(const float *got, const float *want, size_t n)
{
    double e = 0;
    for (size_t i = 0; i < n; i++)
        e = fmax(e, fabs((double)got[i] - want[i]));
    return e / fmax(max_abs(want, n), 1e-12);
}

static size_t count_of(lvk_model_t *m, const char *name, struct lvk_tensor_info *t)
{
    assert_int_equal(lvk_model_tensor_find(m, name, t), LVK_OK);
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= (size_t)t->shape[d];
    return n;
}

/* The test context, for a test that reads the shared files a and b (b may
 * be NULL); skips the test where either or the device is missing. */
static struct lvk_ctx *shared_ctx(const char *a, const char *b)
{
    if (!lvk_test_exists(a) || (b && !lvk_test_exists(b))) {
        printf("skipped: %s not found (the shared reference data is absent)\n",
               lvk_test_exists(a) ? b : a);
        skip();
    }
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    return ctx;
}

static void check_mobilenet(const char *model_name)
{
    char path[512], ref_path[512];
    snprintf(path, sizeof path, SHARED "/models/%s.onnx", model_name);
    snprintf(ref_path, sizeof ref_path, SHARED "/models/%s.reference.json", model_name);
    struct lvk_ctx *ctx = shared_ctx(path, ref_path);
    struct lvk_json *ref;
    assert_int_equal(lvk_json_read(ref_path, &ref), LVK_OK);
    const struct lvk_json *images = lvk_json_get(ref, "images");
    assert_non_null(images);
    const struct lvk_json *first = images->child;
    const struct lvk_json *inter = lvk_json_get(first, "intermediate");

    /* Request the logits and every listed intermediate. */
    const char *outs[32];
    int nouts = 0;
    outs[nouts++] = "logits";
    for (const struct lvk_json *t = inter->child; t && nouts < 32; t = t->next)
        outs[nouts++] = t->key;
    struct lvk_model_opts mo = {.outputs = outs, .noutputs = nouts};
    lvk_model_t *m;
    if (lvk_model_load(ctx, path, &mo, &m) != LVK_OK)
        fail_msg("%s", lvk_last_error());
    struct lvk_preproc pp;
    lvk_preproc_default(&pp);
    pp.lo = -1;
    pp.hi = 1;

    double worst_logit = 0, worst_inter = 0;
    for (const struct lvk_json *im = images->child; im; im = im->next) {
        char png[512];
        snprintf(png, sizeof png, SHARED "/images/%s", im->key);
        struct lvk_image img;
        assert_int_equal(lvk_png_read(png, 3, &img), LVK_OK);
        lvk_preproc_apply(&pp, img.data, 3, img.h, img.w);
        assert_int_equal(lvk_model_set_input(m, lvk_model_input_name(m), img.data, (size_t)3 * img.h * img.w), LVK_OK);
        lvk_image_free(&img);
        if (lvk_model_forward(m) != LVK_OK)
            fail_msg("%s", lvk_last_error());

        struct lvk_tensor_info t;
        const struct lvk_json *jl = lvk_json_get(im, "logits");
        size_t n = count_of(m, "logits", &t);
        assert_int_equal(n, jl->count);
        float *got = malloc(n * sizeof *got), *want = malloc(n * sizeof *want);
        assert_int_equal(lvk_model_read(m, "logits", got, n), LVK_OK);
        for (size_t i = 0; i < n; i++)
            want[i] = (float)lvk_json_at(jl, i)->number;
        double e = rel_err(got, want, n);
        worst_logit = fmax(worst_logit, e);
        if (e > k_rel_tol)
            fail_msg("%s %s: logits differ by %.3g relative", model_name, im->key, e);
        /* Top-1 must match the reference's. */
        size_t top = 0, rtop = 0;
        for (size_t i = 1; i < n; i++) {
            if (got[i] > got[top]) top = i;
            if (want[i] > want[rtop]) rtop = i;
        }
        assert_int_equal(top, rtop);
        free(got);
        free(want);

        for (const struct lvk_json *ti = lvk_json_get(im, "intermediate")->child; ti; ti = ti->next) {
            size_t k = count_of(m, ti->key, &t);
            float *a = malloc(k * sizeof *a);
            assert_int_equal(lvk_model_read(m, ti->key, a, k), LVK_OK);
            const struct lvk_json *full = lvk_json_get(ti, "data");
            if (full) {
                /* Small tensors come whole. */
                assert_int_equal(full->count, k);
                float *want = malloc(k * sizeof *want);
                for (size_t i = 0; i < k; i++)
                    want[i] = (float)lvk_json_at(full, i)->number;
                double e = rel_err(a, want, k);
                worst_inter = fmax(worst_inter, e);
                if (e > k_rel_tol)
                    fail_msg("%s %s: tensor %s differs by %.3g relative", model_name, im->key, ti->key, e);
                free(want);
                free(a);
                continue;
            }
            double mean = 0, sq = 0, mn = INFINITY, mx = -INFINITY;
            for (size_t i = 0; i < k; i++) {
                mean += a[i];
                mn = fmin(mn, a[i]);
                mx = fmax(mx, a[i]);
            }
            mean /= (double)k;
            for (size_t i = 0; i < k; i++)
                sq += (a[i] - mean) * (a[i] - mean);
            double stdv = sqrt(sq / (double)k);
            double rmin = lvk_json_get(ti, "min")->number, rmax = lvk_json_get(ti, "max")->number;
            double scale = fmax(fabs(rmin), fabs(rmax));
            double errs[4] = {fabs(mean - lvk_json_get(ti, "mean")->number),
                              fabs(stdv - lvk_json_get(ti, "std")->number),
                              fabs(mn - rmin), fabs(mx - rmax)};
            const struct lvk_json *f16 = lvk_json_get(ti, "first16");
            double e16 = 0;
            for (size_t i = 0; i < f16->count && i < k; i++)
                e16 = fmax(e16, fabs(a[i] - lvk_json_at(f16, i)->number));
            double worst = e16;
            for (int q = 0; q < 4; q++)
                worst = fmax(worst, errs[q]);
            worst /= scale;
            worst_inter = fmax(worst_inter, worst);
            if (worst > k_rel_tol)
                fail_msg("%s %s: tensor %s differs by %.3g relative (mean %.6g std %.6g min %.6g max %.6g)",
                         model_name, im->key, ti->key, worst, mean, stdv, mn, mx);
            free(a);
        }
    }
    printf("%s: worst relative difference: logits %.2e, intermediates %.2e\n", model_name,
           worst_logit, worst_inter);
    lvk_model_destroy(m);
    lvk_json_free(ref);
    lvk_test_assert_no_validation();
}

static void test_mobilenet_v2(void **state) { check_mobilenet("mobilenet_v2_1.0_224"); }
static void test_mobilenet_v1(void **state) { check_mobilenet("mobilenet_v1_0.25_224"); }

static void read_npy(const char *name, struct lvk_npy *a)
{
    char path[512];
    snprintf(path, sizeof path, SHARED "/torch/%s", name);
    if (lvk_npy_read(path, a) != LVK_OK)
        fail_msg("%s", lvk_last_error());
}

/* ||got - want|| / ||want||. */
static double rel_l2(const float *got, const float *want, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
        den += (double)want[i] * want[i];
    }
    return sqrt(num / fmax(den, 1e-300));
}

/* GoogLeNet: logits, inception4d, and d mean(inception4d[:, 0]) / d input,
 * all against PyTorch, element by element. With fast_conv (what renders
 * load), the 3x3 layers run Winograd on lavapipe: the forward still
 * matches element by element, but its rounding moves some MaxPool arg-maxes
 * between near-equal values (MaxPools read the 3x3 layers' outputs), which
 * routes those windows' gradients to a neighbouring pixel: about 5%
 * of the input gradient's elements then differ by more than 1e-3 of its
 * largest, 0.7% in L2. There the gradient is held to 2e-2 in L2, which a
 * wrong transform or epilogue exceeds many times over. So it is on GPUs:
 * their kernels sum in another order (and fuse multiplies and adds), which
 * moves arg-maxes just the same (an H100: logits 1.6e-5, input gradient
 * 2.7e-2 of its largest, 6.4e-3 in L2).
 * With `part`, as a channel-0 render loads it: inception4d alone,
 * of which only channel 0 is read (lvk_graph_need_channels), so its three
 * other branches do not run; channel 0 and the input gradient still match. */
enum gnet_mode { GNET_EXACT, GNET_FAST, GNET_PART };

static void googlenet_check(enum gnet_mode mode)
{
    const char *path = SHARED "/torch/googlenet_random.onnx";
    struct lvk_ctx *ctx = shared_ctx(path, NULL);
    const bool fast = mode == GNET_FAST, part = mode == GNET_PART;
    const bool exact_grad = !fast && ctx->is_lavapipe;
    struct lvk_npy x, logits, i4d, grad;
    read_npy("ref_input_1x3x224x224.npy", &x);
    read_npy("ref_googlenet_logits.npy", &logits);
    read_npy("ref_googlenet_inception4d.npy", &i4d);
    read_npy("ref_googlenet_inception4d_ch0_grad_input.npy", &grad);
    const char *outs[] = {"inception4d", "logits"};
    struct lvk_model_opts mo = {.outputs = outs, .noutputs = part ? 1 : 2, .gradients = 1,
                                .fast_conv = fast};
    lvk_model_t *m;
    lvk_status st = lvk_onnx_load_graph(ctx, path, &mo, NULL, 0, &m);
    if (st == LVK_OK && part)
        lvk_graph_need_channels(m, lvk_graph_find(m, "inception4d"), 0, 1);
    if (st == LVK_OK && (st = lvk_graph_finalize(m, &mo)) != LVK_OK)
        lvk_model_destroy(m);
    if (st != LVK_OK)
        fail_msg("%s", lvk_last_error());
    /* Branch 1 (1x1) holds channel 0; branches 2 (1x1, 3x3), 3 (1x1, 3x3)
     * and 4 (pool, 1x1) are idle. */
    int nconv = 0;
    for (int i = 0; part && i < m->nnodes; i++)
        if (strstr(m->nodes[i].name, "inception4d/branch") &&
            !strcmp(m->nodes[i].op_type, "Conv")) {
            assert_int_equal(lvk_graph_node_runs(m, &m->nodes[i], false),
                             strstr(m->nodes[i].name, "inception4d/branch1/") != NULL);
            nconv++;
        }
    assert_int_equal(nconv, part ? 6 : 0);
    assert_int_equal(lvk_model_set_input(m, lvk_model_input_name(m), x.data, x.count), LVK_OK);
    if (lvk_model_forward(m) != LVK_OK)
        fail_msg("%s", lvk_last_error());
    float *got = malloc(i4d.count * sizeof *got);
    double el = 0;
    if (!part) {
        assert_int_equal(lvk_model_read(m, "logits", got, logits.count), LVK_OK);
        el = rel_err(got, logits.data, logits.count);
    }
    assert_int_equal(lvk_model_read(m, "inception4d", got, i4d.count), LVK_OK);
    /* Channel 0 (batch 1) leads the tensor. */
    size_t hw = (size_t)(i4d.shape[2] * i4d.shape[3]);
    double ea = rel_err(got, i4d.data, part ? hw : i4d.count);

    /* Seed: the mean over batch and positions of channel 0. */
    float *seed = calloc(i4d.count, sizeof *seed), *g = malloc(x.count * sizeof *g);
    for (size_t k = 0; k < hw; k++)
        seed[k] = 1.0f / (float)hw;
    if (lvk_model_backward(m, "inception4d", seed, i4d.count, g, x.count) != LVK_OK)
        fail_msg("%s", lvk_last_error());
    double eg = rel_err(g, grad.data, grad.count), eg2 = rel_l2(g, grad.data, grad.count);
    printf("googlenet%s: relative difference: ", fast ? " (fast_conv)" : "");
    if (!part)
        printf("logits %.2e, ", el);
    printf("inception4d%s %.2e, input gradient %.2e (L2 %.2e)\n", part ? " channel 0" : "", ea,
           eg, eg2);
    if (el > k_rel_tol || ea > k_rel_tol || (exact_grad ? eg > k_rel_tol : eg2 > 2e-2))
        fail_msg("googlenet differs from PyTorch beyond %.0e", k_rel_tol);
    free(got);
    free(seed);
    free(g);
    lvk_npy_free(&x);
    lvk_npy_free(&logits);
    lvk_npy_free(&i4d);
    lvk_npy_free(&grad);
    lvk_model_destroy(m);
    lvk_test_assert_no_validation();
}

static void test_googlenet_torch(void **state)
{
    googlenet_check(GNET_EXACT);
}

static void test_googlenet_torch_fast_conv(void **state)
{
    googlenet_check(GNET_FAST);
}

static void test_googlenet_torch_channel_part(void **state)
{
    googlenet_check(GNET_PART);
}

/* A batch of two runs each image as a batch of one does. */
static void test_batch_override(void **state)
{
    const char *path = SHARED "/models/mobilenet_v1_0.25_224.onnx";
    struct lvk_ctx *ctx = shared_ctx(path, NULL);
    const char *names[2] = {"parrot.png", "coffee.png"};
    size_t per = 3 * 224 * 224;
    float *x = malloc(2 * per * sizeof *x);
    struct lvk_preproc pp;
    lvk_preproc_default(&pp);
    for (int i = 0; i < 2; i++) {
        char png[512];
        snprintf(png, sizeof png, SHARED "/images/%s", names[i]);
        struct lvk_image img;
        assert_int_equal(lvk_png_read(png, 3, &img), LVK_OK);
        memcpy(x + i * per, img.data, per * sizeof *x);
        lvk_image_free(&img);
    }
    const char *outs[] = {"logits"};
    float one[2][1000], two[2000];
    for (int b = 1; b <= 2; b++) {
        struct lvk_model_opts mo = {.batch = b, .outputs = outs, .noutputs = 1};
        lvk_model_t *m;
        if (lvk_model_load(ctx, path, &mo, &m) != LVK_OK)
            fail_msg("%s", lvk_last_error());
        for (int i = 0; i < 3 - b; i++) {
            assert_int_equal(lvk_model_set_input(m, "input", x + (b == 1 ? i * per : 0), b * per), LVK_OK);
            assert_int_equal(lvk_model_forward(m), LVK_OK);
            assert_int_equal(lvk_model_read(m, "logits", b == 1 ? one[i] : two, (size_t)b * 1000), LVK_OK);
        }
        lvk_model_destroy(m);
    }
    assert_true(rel_err(two, one[0], 1000) < 1e-5);
    assert_true(rel_err(two + 1000, one[1], 1000) < 1e-5);
    free(x);
    lvk_test_assert_no_validation();
}

/* A float uniform in [-1, 1) from a linear congruential generator. */
static float uniform(uint32_t *r)
{
    *r = *r * 1664525u + 1013904223u;
    return (float)(*r >> 8) / 8388608.0f - 1.0f;
}

static double mnv2_objective(lvk_model_t *m, const char *t, const float *x, size_t nx,
                             const float *w, size_t nt)
{
    float *y = malloc(nt * sizeof *y);
    assert_non_null(y);
    assert_int_equal(lvk_model_set_input(m, "input", x, nx), LVK_OK);
    assert_int_equal(lvk_model_forward(m), LVK_OK);
    assert_int_equal(lvk_model_read(m, t, y, nt), LVK_OK);
    double f = 0;
    for (size_t i = 0; i < nt; i++)
        f += (double)w[i] * y[i];
    free(y);
    return f;
}

/* MobileNet V2's input gradient through its residual blocks, whose last
 * convolutions share the Adds' output gradient buffers (src/nn/graph.c:
 * share_grads), against central differences of f(x) = <w, T(x)>, T the
 * third residual block's output, at single input elements: at steps of
 * 4e-3, 2e-3 and 1e-3, where the three agree (no ReLU6 kink crossed within
 * them). The float32 forward passes leave about 0.5% of the largest
 * gradient of noise in the differences, and a kink just off an element
 * shifts all three alike (up to about 1.5% here): the bound is 3%; a
 * dropped or doubled skip path moves many elements by far more. */
static void test_mobilenet_v2_gradient(void **state)
{
    const char *path = SHARED "/models/mobilenet_v2_1.0_224.onnx";
    struct lvk_ctx *ctx = shared_ctx(path, NULL);
    const char *t = "MobilenetV2/expanded_conv_5/add";
    struct lvk_model_opts mo = {.outputs = &t, .noutputs = 1, .gradients = 1,
                                .height = 64, .width = 64};
    lvk_model_t *m;
    if (lvk_model_load(ctx, path, &mo, &m) != LVK_OK)
        fail_msg("%s", lvk_last_error());
    int shared = 0;   /* Adds with an operand that shares the output's gradient */
    for (int i = 0; i < m->nnodes; i++)
        shared += m->nodes[i].needed && m->nodes[i].grad_shared != 0;
    assert_true(shared >= 2);

    struct lvk_tensor_info ti;
    const size_t nt = count_of(m, t, &ti), nx = 3 * 64 * 64;
    float *x = malloc(nx * sizeof *x), *w = malloc(nt * sizeof *w), *g = malloc(nx * sizeof *g);
    assert_true(x && w && g);
    uint32_t r = 12345u;
    for (size_t i = 0; i < nx; i++)
        x[i] = uniform(&r);
    for (size_t i = 0; i < nt; i++)
        w[i] = uniform(&r);
    mnv2_objective(m, t, x, nx, w, nt);
    assert_int_equal(lvk_model_backward(m, t, w, nt, g, nx), LVK_OK);
    const double scale = max_abs(g, nx);
    int checked = 0;
    double worst = 0;
    for (int k = 0; k < 36; k++) {
        const size_t i = (size_t)((uniform(&r) + 1.0f) / 2 * (float)nx) % nx;
        const float x0 = x[i];
        double fd[3];
        for (int j = 0; j < 3; j++) {
            const float h = 4e-3f / (float)(1 << j);
            x[i] = x0 + h;
            const double fp = mnv2_objective(m, t, x, nx, w, nt);
            x[i] = x0 - h;
            fd[j] = (fp - mnv2_objective(m, t, x, nx, w, nt)) / (2.0 * h);
        }
        x[i] = x0;
        const double spread = fmax(fmax(fd[0], fd[1]), fd[2]) - fmin(fmin(fd[0], fd[1]), fd[2]);
        if (spread > 2e-3 * scale)
            continue;   /* a kink within the steps */
        checked++;
        worst = fmax(worst, fabs(g[i] - fd[2]) / scale);
    }
    printf("MobileNet V2 to expanded_conv_5/add: %d of 36 input elements off kinks, worst "
           "difference from central differences %.2e of the largest gradient\n", checked, worst);
    assert_true(checked >= 12);
    if (!(worst < 3e-2))
        fail_msg("MobileNet V2 input gradient differs from central differences by %.3g", worst);
    free(x); free(w); free(g);
    lvk_model_destroy(m);
    lvk_test_assert_no_validation();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mobilenet_v2),
        cmocka_unit_test(test_mobilenet_v1),
        cmocka_unit_test(test_mobilenet_v2_gradient),
        cmocka_unit_test(test_googlenet_torch),
        cmocka_unit_test(test_googlenet_torch_fast_conv),
        cmocka_unit_test(test_googlenet_torch_channel_part),
        cmocka_unit_test(test_batch_override),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
