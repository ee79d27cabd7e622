/* Composite parameterizations: the mixing forward against a CPU sum, and
 * the backward against the transpose of the same map with the stopped
 * terms removed (the map is linear, so this is its exact gradient). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "optvis/param_mix.h"
#include "support/op_harness.h"

static float frand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void test_mix(void **state)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    enum { B = 7, NF = 3, NL = 2, NP = 2, S = NF + NL + NP, PLANE = 3 * 5 * 9 };
    const int T = LVK_LAYOUT_MAX_TERMS;
    int nterms[B];
    struct lvk_layout_term terms[B * LVK_LAYOUT_MAX_TERMS];
    unsigned seed = 7;
    for (int b = 0; b < B; b++) {
        nterms[b] = 1 + b % 4;
        for (int k = 0; k < nterms[b]; k++)
            terms[b * T + k] = (struct lvk_layout_term){
                .src = (b * 3 + k * 5) % S, .w = frand(&seed), .grad = (b + k) % 3 != 0};
    }
    struct lvk_param_layout L = {.nfft = NF, .nlowres = NL, .npixel = NP, .raw_scale = 0.5f,
                                 .nterms = nterms, .terms = terms};
    struct lvk_param_mix *mx;
    assert_int_equal(lvk_param_mix_create(ctx, &L, B, PLANE, &mx), LVK_OK);

    /* fft, low, pix, raw, and their gradients. */
    int counts[4] = {NF, NL, NP, B};
    struct lvk_buf bufs[8];
    struct lvk_arena arena;
    VkDeviceSize sizes[8];
    for (int i = 0; i < 8; i++)
        sizes[i] = (VkDeviceSize)counts[i % 4] * PLANE * 4;
    assert_int_equal(lvk_arena_create(ctx, sizes, 8, bufs, &arena), LVK_OK);
    float *host[8];
    for (int i = 0; i < 8; i++) {
        host[i] = malloc(sizes[i]);
        for (size_t k = 0; k < sizes[i] / 4; k++)
            host[i][k] = frand(&seed);
        assert_int_equal(lvk_buf_upload(ctx, &bufs[i], 0, host[i], sizes[i]), LVK_OK);
    }
    struct lvk_cmd *cmd;
    assert_int_equal(lvk_cmd_create(ctx, false, &cmd), LVK_OK);
    assert_int_equal(lvk_cmd_begin(cmd), LVK_OK);
    assert_int_equal(lvk_param_mix_fwd(cmd, mx, &bufs[3], &bufs[0], &bufs[1], &bufs[2]), LVK_OK);
    assert_int_equal(lvk_param_mix_bwd(cmd, mx, &bufs[4], &bufs[5], &bufs[6], &bufs[7]), LVK_OK);
    assert_int_equal(lvk_cmd_end(cmd), LVK_OK);
    assert_int_equal(lvk_cmd_submit(cmd), LVK_OK);

    /* Source s as (buffer kind, index). */
    const float *src[S];
    float *want_grad[S];
    for (int s = 0; s < S; s++) {
        int kind = s < NF ? 0 : s < NF + NL ? 1 : 2, idx = s - (kind == 0 ? 0 : kind == 1 ? NF : NF + NL);
        src[s] = host[kind] + (size_t)idx * PLANE;
        want_grad[s] = host[4 + kind] + (size_t)idx * PLANE; /* accumulates onto the initial values */
    }
    float got[B * PLANE];
    assert_int_equal(lvk_buf_download(ctx, &bufs[3], 0, got, sizeof got), LVK_OK);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < PLANE; i++) {
            double acc = 0;
            for (int k = 0; k < nterms[b]; k++)
                acc += terms[b * T + k].w * src[terms[b * T + k].src][i];
            assert_true(fabs(got[b * PLANE + i] - 0.5 * acc) < 1e-5);
        }
    for (int b = 0; b < B; b++)
        for (int k = 0; k < nterms[b]; k++)
            if (terms[b * T + k].grad)
                for (int i = 0; i < PLANE; i++)
                    want_grad[terms[b * T + k].src][i] += 0.5f * terms[b * T + k].w * host[7][b * PLANE + i];
    for (int kind = 0; kind < 3; kind++) {
        float *g = malloc(sizes[4 + kind]);
        assert_int_equal(lvk_buf_download(ctx, &bufs[4 + kind], 0, g, sizes[4 + kind]), LVK_OK);
        for (size_t k = 0; k < sizes[4 + kind] / 4; k++)
            if (fabs(g[k] - host[4 + kind][k]) > 1e-5)
                fail_msg("source kind %d element %zu: got %g, want %g", kind, k, g[k], host[4 + kind][k]);
        free(g);
    }
    for (int i = 0; i < 8; i++)
        free(host[i]);
    lvk_cmd_destroy(cmd);
    lvk_arena_destroy(ctx, bufs, 8, &arena);
    lvk_param_mix_destroy(mx);
    lvk_test_assert_no_validation();
}

static void test_bad_layout(void **state)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    int nterms[1] = {1};
    struct lvk_layout_term terms[LVK_LAYOUT_MAX_TERMS] = {{.src = 5, .w = 1, .grad = 1}};
    struct lvk_param_layout L = {.nfft = 1, .nterms = nterms, .terms = terms};
    struct lvk_param_mix *mx;
    assert_int_equal(lvk_param_mix_create(ctx, &L, 1, 16, &mx), LVK_ERR_INVALID_ARG);
    assert_non_null(strstr(lvk_last_error(), "source 5"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_mix), cmocka_unit_test(test_bad_layout)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
