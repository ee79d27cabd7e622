/* Adam (src/optvis/adam.c, shaders/adam.comp) against closed forms and a
 * double-precision CPU Adam:
 *   - a constant gradient g: m_t / (1 - b1^t) = g and v_t / (1 - b2^t) = g^2
 *     exactly, so every step moves a parameter by lr * g / (|g| + eps), and
 *     after T steps param = p0 +- T lr g / (|g| + eps);
 *   - random gradients over several steps (one recording replayed, the
 *     per-step buffer rewritten, the learning rate changed halfway) against
 *     the recursion in double, for sizes with and without a partial vec4;
 *   - reset restarts from zero moments.
 * Each runs with both ways of reading (main). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "optvis/adam.h"
#include "support/devbuf.h"
#include "support/op_harness.h"

/* Device param and grad buffers plus an optimiser for n values, and the
 * recording of one update. */
struct rig {
    struct lvk_buf b[2]; /* param, grad */
    struct lvk_arena arena;
    struct lvk_adam *adam;
    struct lvk_cmd *cmd;
    uint32_t n;
};

static void rig_create(struct rig *r, uint32_t n, const struct lvk_adam_opts *o)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    memset(r, 0, sizeof *r);
    r->n = n;
    const VkDeviceSize sizes[2] = {n * 4, n * 4};
    assert_int_equal(lvk_arena_create(ctx, sizes, 2, r->b, &r->arena), LVK_OK);
    assert_int_equal(lvk_adam_create(ctx, n, o, &r->adam), LVK_OK);
    /* The step values live in mapped memory on every device (written
     * before every step without a staged copy, lvk_arena_create_mapped). */
    assert_non_null(r->adam->bufs[2].map);
    assert_int_equal(lvk_cmd_create(ctx, false, &r->cmd), LVK_OK);
    assert_int_equal(lvk_cmd_begin(r->cmd), LVK_OK);
    assert_int_equal(lvk_adam_record(r->cmd, r->adam, &r->b[0], &r->b[1]), LVK_OK);
    assert_int_equal(lvk_cmd_end(r->cmd), LVK_OK);
}

static void rig_destroy(struct rig *r)
{
    lvk_cmd_destroy(r->cmd);
    lvk_adam_destroy(r->adam);
    lvk_arena_destroy(lvk_test_ctx(), r->b, 2, &r->arena);
}

static void rig_step(struct rig *r, int t, const float *grad)
{
    assert_int_equal(lvk_buf_upload(lvk_test_ctx(), &r->b[1], 0, grad, r->n * 4), LVK_OK);
    assert_int_equal(lvk_adam_set_step(r->adam, t), LVK_OK);
    assert_int_equal(lvk_cmd_submit(r->cmd), LVK_OK);
}

static void check_constant_gradient(uint32_t n, bool minimise)
{
    struct lvk_adam_opts o;
    lvk_adam_opts_default(&o);
    o.minimise = minimise;
    struct rig r;
    rig_create(&r, n, &o);
    float *p0 = malloc(n * 4), *g = malloc(n * 4), *p = malloc(n * 4);
    unsigned seed = 3 + n;
    for (uint32_t i = 0; i < n; ++i) {
        p0[i] = (float)uniform(&seed, -1, 1);
        /* magnitudes from 1e-3 to 1e2: the step does not depend on them */
        g[i] = (float)(uniform(&seed, 0, 1) < 0.5 ? -1 : 1) * powf(10.0f, (float)uniform(&seed, -3, 2));
    }
    assert_int_equal(lvk_buf_upload(lvk_test_ctx(), &r.b[0], 0, p0, n * 4), LVK_OK);
    const int T = 8;
    for (int t = 1; t <= T; ++t)
        rig_step(&r, t, g);
    assert_int_equal(lvk_buf_download(lvk_test_ctx(), &r.b[0], 0, p, n * 4), LVK_OK);
    const double sign = minimise ? -1 : 1;
    for (uint32_t i = 0; i < n; ++i) {
        double want = p0[i] + sign * T * 0.05 * g[i] / (fabs(g[i]) + 1e-8);
        if (!(fabs(p[i] - want) <= 1e-5))
            fail_msg("constant gradient, element %u: device %.8g, closed form %.8g (g %.3g)", i, p[i],
                     want, g[i]);
    }
    free(p0); free(g); free(p);
    rig_destroy(&r);
    lvk_test_assert_no_validation();
}

static void test_constant_gradient(void **state)
{
    if (!lvk_test_ctx())
        skip();
    check_constant_gradient(1024, false);
    check_constant_gradient(1027, true); /* a partial vec4 at the end */
    check_constant_gradient(3, false);   /* only the partial vec4 */
}

/* The recursion in double, as Kingma & Ba's Algorithm 1. */
static void check_random_gradients(uint32_t n)
{
    struct rig r;
    rig_create(&r, n, NULL);
    float *pf = malloc(n * 4), *g = malloc(n * 4), *got = malloc(n * 4);
    double *p = malloc(n * 8), *m = calloc(n, 8), *v = calloc(n, 8);
    unsigned seed = 77 + n;
    for (uint32_t i = 0; i < n; ++i) {
        pf[i] = (float)uniform(&seed, -2, 2);
        p[i] = pf[i];
    }
    assert_int_equal(lvk_buf_upload(lvk_test_ctx(), &r.b[0], 0, pf, n * 4), LVK_OK);
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    for (int t = 1; t <= 12; ++t) {
        double lr = t <= 6 ? 0.05 : 0.01;
        r.adam->lr = (float)lr;
        for (uint32_t i = 0; i < n; ++i) {
            /* mean and sign drift per element, some near-zero gradients */
            g[i] = (float)(uniform(&seed, -1, 1) * (i % 7 == 0 ? 1e-4 : 1.0) + 0.3 * sin(i + t));
            m[i] = b1 * m[i] + (1 - b1) * g[i];
            v[i] = b2 * v[i] + (1 - b2) * (double)g[i] * g[i];
            p[i] += lr * (m[i] / (1 - pow(b1, t))) / (sqrt(v[i] / (1 - pow(b2, t))) + eps);
        }
        rig_step(&r, t, g);
    }
    assert_int_equal(lvk_buf_download(lvk_test_ctx(), &r.b[0], 0, got, n * 4), LVK_OK);
    for (uint32_t i = 0; i < n; ++i)
        if (!(fabs(got[i] - p[i]) <= 2e-5 + 1e-6 * fabs(p[i])))
            fail_msg("random gradients, element %u: device %.8g, reference %.8g", i, got[i], p[i]);
    free(pf); free(g); free(got); free(p); free(m); free(v);
    rig_destroy(&r);
    lvk_test_assert_no_validation();
}

static void test_random_gradients(void **state)
{
    if (!lvk_test_ctx())
        skip();
    check_random_gradients(4096);
    check_random_gradients(1001);
}

/* After a reset the first step is again lr * sign(g), whatever came before. */
static void test_reset(void **state)
{
    if (!lvk_test_ctx())
        skip();
    const uint32_t n = 37;
    struct rig r;
    rig_create(&r, n, NULL);
    float g[37], p[37], zero[37] = {0};
    for (uint32_t i = 0; i < n; ++i)
        g[i] = (i % 2 ? 1.0f : -1.0f) * (0.1f + i);
    for (int t = 1; t <= 3; ++t)
        rig_step(&r, t, g);
    assert_int_equal(lvk_adam_reset(r.adam), LVK_OK);
    for (uint32_t i = 0; i < n; ++i)
        g[i] = -g[i];
    assert_int_equal(lvk_buf_upload(lvk_test_ctx(), &r.b[0], 0, zero, sizeof zero), LVK_OK);
    rig_step(&r, 1, g);
    assert_int_equal(lvk_buf_download(lvk_test_ctx(), &r.b[0], 0, p, sizeof p), LVK_OK);
    for (uint32_t i = 0; i < n; ++i)
        assert_true(fabs(p[i] - 0.05 * (g[i] > 0 ? 1 : -1)) < 1e-6);
    assert_int_equal(lvk_adam_set_step(r.adam, 0), LVK_ERR_INVALID_ARG);
    rig_destroy(&r);
    lvk_test_assert_no_validation();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constant_gradient),
        cmocka_unit_test(test_random_gradients),
        cmocka_unit_test(test_reset),
    };
    /* Both ways adam.comp reads: texel views where the device prefers
     * them (lavapipe), then storage buffers (LVK_NO_TEXEL). */
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    setenv("LVK_NO_TEXEL", "1", 1);
    return failed + cmocka_run_group_tests_name("storage-buffer kernels", tests, NULL, NULL);
}
