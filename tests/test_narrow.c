/* How much of a graph a load takes on.
 *
 * Named outputs: only the nodes they need are prepared, so a layer past
 * them whose shapes do not fit (a Conv whose weights want 8 channels of a
 * 4-channel input) neither fails the load nor costs its planning, and
 * reading its output says it is not computed; loading the whole graph
 * still reports it.
 *
 * lvk_graph_narrow_channels: a Conv whose output, through channelwise
 * activations, feeds only a requested value computes only the channels
 * [lo, hi) of it.
 *
 *   x [2, 4, 5, 6] -> Conv(W [8, 4, 3, 3], b [8], pads 1) -> c -> Clip(0, 1) -> y
 *
 * Narrowed to channels 2-4, y holds those three channels (channel_base 2):
 * its values and the input gradient of a seed on them are checked against
 * a direct double-precision convolution on the host (and its transpose),
 * with a layer past y whose shapes no longer fit (its 8-channel weights on
 * 3 channels). The same through a Concat whose second branch ends in that
 * Clip: y = Concat(Relu(Conv 1x1 (x), 5 channels), Clip(c)), channels 7-9
 * read, becomes 5 + 3 channels, the first branch idle. Refused, with the
 * graph left as it was: weights another node reads, an activation's input
 * read by a second requested value, a grouped Conv, channels past the
 * Conv's, a requested value between, an op between that is not
 * channelwise, channels of both branches of the Concat. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/op_harness.h"

static struct lvk_model *build_unfit(void)
{
    struct lvk_model *m = NULL;
    assert_int_equal(lvk_graph_create(lvk_test_ctx(), "unfit", &m), LVK_OK);
    float w[4 * 8] = {0};
    const struct lvk_shape xs = {4, {1, 4, 3, 3}}, ws = {4, {4, 8, 1, 1}};
    assert_true(lvk_graph_add_input(m, "x", LVK_DTYPE_F32, &xs) >= 0);
    assert_true(lvk_graph_add_const(m, "w", LVK_DTYPE_F32, &ws, w) >= 0);
    assert_int_equal(lvk_graph_add_node(m, "Relu", "relu", (const char *const[]){"x"}, 1,
                                        (const char *const[]){"y"}, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Conv", "after", (const char *const[]){"y", "w"}, 2,
                                        (const char *const[]){"z"}, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_mark_output(m, "z"), LVK_OK);
    return m;
}

static void test_unneeded_not_prepared(void **state)
{
    if (!lvk_test_ctx())
        skip();
    struct lvk_model *m = build_unfit();
    const char *outputs[] = {"y"};
    const struct lvk_model_opts opts = {.outputs = outputs, .noutputs = 1, .gradients = 1};
    if (lvk_graph_finalize(m, &opts) != LVK_OK)
        fail_msg("finalize for y: %s", lvk_last_error());
    assert_false(m->nodes[1].needed);
    assert_null(m->nodes[1].priv);
    float x[36], y[36];
    for (int i = 0; i < 36; i++)
        x[i] = (float)(i % 7) - 3.0f;
    assert_int_equal(lvk_model_set_input(m, "x", x, 36), LVK_OK);
    assert_int_equal(lvk_model_forward(m), LVK_OK);
    assert_int_equal(lvk_model_read(m, "y", y, 36), LVK_OK);
    for (int i = 0; i < 36; i++)
        assert_true(y[i] == (x[i] > 0 ? x[i] : 0.0f));
    float z[32];
    assert_int_equal(lvk_model_read(m, "z", z, 32), LVK_ERR_INVALID_ARG);
    assert_non_null(strstr(lvk_last_error(), "'z' is not computed"));
    lvk_model_destroy(m);

    m = build_unfit();
    assert_int_equal(lvk_graph_finalize(m, NULL), LVK_ERR_FORMAT);
    assert_non_null(strstr(lvk_last_error(), "node 'after'"));
    lvk_model_destroy(m);
    lvk_test_assert_no_validation();
}

enum { B = 2, C = 4, H = 5, W = 6, M = 8, K = 3, LO = 2, HI = 5, A = 5 };
#define TOL 1e-5

static float wval(int i) { return (float)((i * 37) % 23 - 11) / 40.0f; }
static float bval(int i) { return (float)(i % 5 - 2) / 10.0f; }
static float xval(int i) { return (float)((i * 53) % 31 - 15) / 15.0f; }

enum variant {
    PLAIN,          /* narrowed; a layer past y that does not fit the cut */
    SHARED_WEIGHTS, /* W also feeds a second Conv */
    SECOND_READER,  /* c also read by a requested Relu */
    GROUPED,        /* group 2 */
    TOO_MANY,       /* channels 2-8 of 8 */
    REQUESTED_MID,  /* c requested too */
    NOT_CHANNELWISE,/* y = MaxPool(c) */
    CONCAT,         /* y = Concat(Relu(Conv 1x1 (x), A channels), Clip(c)); narrowed */
    CONCAT_SPAN     /* the same, channels of both branches read */
};

static struct lvk_model *build(enum variant var, bool *narrowed)
{
    struct lvk_model *m = NULL;
    assert_int_equal(lvk_graph_create(lvk_test_ctx(), "narrow", &m), LVK_OK);
    const int g = var == GROUPED ? 2 : 1, cg = C / g;
    const bool cat = var == CONCAT || var == CONCAT_SPAN;
    float w[M * C * K * K], b[M], lo = 0.0f, hi = 1.0f, w2[4 * M];
    for (int i = 0; i < M * cg * K * K; i++)
        w[i] = wval(i);
    for (int i = 0; i < M; i++)
        b[i] = bval(i);
    for (int i = 0; i < 4 * M; i++)
        w2[i] = wval(i + 7);
    const struct lvk_shape xs = {4, {B, C, H, W}}, ws = {4, {M, cg, K, K}}, bs = {1, {M}};
    const struct lvk_shape ss = {0, {0}}, w2s = {4, {4, M, 1, 1}};
    assert_true(lvk_graph_add_input(m, "x", LVK_DTYPE_F32, &xs) >= 0);
    assert_true(lvk_graph_add_const(m, "w", LVK_DTYPE_F32, &ws, w) >= 0);
    assert_true(lvk_graph_add_const(m, "b", LVK_DTYPE_F32, &bs, b) >= 0);
    assert_true(lvk_graph_add_const(m, "lo", LVK_DTYPE_F32, &ss, &lo) >= 0);
    assert_true(lvk_graph_add_const(m, "hi", LVK_DTYPE_F32, &ss, &hi) >= 0);
    assert_true(lvk_graph_add_const(m, "w2", LVK_DTYPE_F32, &w2s, w2) >= 0);
    const int64_t pads[] = {1, 1, 1, 1}, kern[] = {K, K};
    const struct lvk_attr conv_attrs[] = {
        {.name = "pads", .type = LVK_ATTR_INTS, .ints = (int64_t *)pads, .n = 4},
        {.name = "group", .type = LVK_ATTR_INT, .i = g},
    };
    const struct lvk_attr pool_attrs[] = {
        {.name = "kernel_shape", .type = LVK_ATTR_INTS, .ints = (int64_t *)kern, .n = 2},
        {.name = "pads", .type = LVK_ATTR_INTS, .ints = (int64_t *)pads, .n = 4},
    };
    assert_int_equal(lvk_graph_add_node(m, "Conv", "conv", (const char *const[]){"x", "w", "b"}, 3,
                                        (const char *const[]){"c"}, 1, conv_attrs, 2), LVK_OK);
    if (var == NOT_CHANNELWISE)
        assert_int_equal(lvk_graph_add_node(m, "MaxPool", "pool", (const char *const[]){"c"}, 1,
                                            (const char *const[]){"y"}, 1, pool_attrs, 2), LVK_OK);
    else
        assert_int_equal(lvk_graph_add_node(m, "Clip", "clip",
                                            (const char *const[]){"c", "lo", "hi"}, 3,
                                            (const char *const[]){cat ? "yc" : "y"}, 1, NULL, 0),
                         LVK_OK);
    if (cat) {
        float wa[A * C];
        for (int i = 0; i < A * C; i++)
            wa[i] = wval(i + 3);
        const struct lvk_shape was = {4, {A, C, 1, 1}};
        const struct lvk_attr axis1 = {.name = "axis", .type = LVK_ATTR_INT, .i = 1};
        assert_true(lvk_graph_add_const(m, "wa", LVK_DTYPE_F32, &was, wa) >= 0);
        assert_int_equal(lvk_graph_add_node(m, "Conv", "conv_a", (const char *const[]){"x", "wa"}, 2,
                                            (const char *const[]){"ca"}, 1, NULL, 0), LVK_OK);
        assert_int_equal(lvk_graph_add_node(m, "Relu", "relu_a", (const char *const[]){"ca"}, 1,
                                            (const char *const[]){"ra"}, 1, NULL, 0), LVK_OK);
        assert_int_equal(lvk_graph_add_node(m, "Concat", "cat", (const char *const[]){"ra", "yc"}, 2,
                                            (const char *const[]){"y"}, 1, &axis1, 1), LVK_OK);
    }
    /* Past y: a 1x1 Conv made for all 8 channels. */
    assert_int_equal(lvk_graph_add_node(m, "Conv", "after", (const char *const[]){"y", "w2"}, 2,
                                        (const char *const[]){"after"}, 1, NULL, 0), LVK_OK);
    if (var == SHARED_WEIGHTS)
        assert_int_equal(lvk_graph_add_node(m, "Conv", "twin", (const char *const[]){"x", "w"}, 2,
                                            (const char *const[]){"twin"}, 1, conv_attrs, 1), LVK_OK);
    if (var == SECOND_READER)
        assert_int_equal(lvk_graph_add_node(m, "Relu", "relu", (const char *const[]){"c"}, 1,
                                            (const char *const[]){"r"}, 1, NULL, 0), LVK_OK);

    const char *outputs[3] = {"y"};
    int nout = 1;
    if (var == SECOND_READER)
        outputs[nout++] = "r";
    if (var == REQUESTED_MID)
        outputs[nout++] = "c";
    int req[3];
    for (int k = 0; k < nout; k++)
        req[k] = lvk_graph_find(m, outputs[k]);
    const int at = cat ? A : 0;   /* where the Clip's channels start in y */
    *narrowed = lvk_graph_narrow_channels(m, req[0], at + LO - (var == CONCAT_SPAN ? 3 : 0),
                                          at + (var == TOO_MANY ? M + 1 : HI), req, nout);
    const struct lvk_model_opts opts = {.outputs = outputs, .noutputs = nout, .gradients = 1};
    if (lvk_graph_finalize(m, &opts) != LVK_OK)
        fail_msg("finalize: %s", lvk_last_error());
    return m;
}

/* c[n, o, i, j] = b[o] + sum w[o, ci, u, v] x[n, ci, i + u - 1, j + v - 1], in double. */
static double conv_ref(const float *x, int n, int o, int i, int j)
{
    double s = bval(o);
    for (int ci = 0; ci < C; ci++)
        for (int u = 0; u < K; u++)
            for (int v = 0; v < K; v++) {
                int yy = i + u - 1, xx = j + v - 1;
                if (yy >= 0 && yy < H && xx >= 0 && xx < W)
                    s += (double)wval(((o * C + ci) * K + u) * K + v) *
                         x[((n * C + ci) * H + yy) * W + xx];
            }
    return s;
}

/* y holds the cut channels LO..HI-1 of the Conv at channel `at` (after
 * the other branch's A with the Concat), `yc` channels in all. */
static void check_narrowed(enum variant var, int at, int yc)
{
    bool narrowed = false;
    struct lvk_model *m = build(var, &narrowed);
    assert_true(narrowed);
    const struct lvk_value *y = &m->values[lvk_graph_find(m, "y")];
    assert_int_equal(y->shape.d[1], yc);
    assert_int_equal(y->channel_base, LO);
    assert_int_equal(m->values[lvk_graph_find(m, "c")].channel_base, LO);
    for (int i = 0; i < m->nnodes; i++)
        if (!strcmp(m->nodes[i].name, "after") || !strcmp(m->nodes[i].name, "conv_a"))
            assert_false(m->nodes[i].needed);

    enum { NX = B * C * H * W, NY = B * (A + HI - LO) * H * W };
    float x[NX], got[NY], seed[NY] = {0}, dx[NX];
    double want_dx[NX] = {0};
    for (int i = 0; i < NX; i++)
        x[i] = xval(i);
    assert_int_equal(lvk_model_set_input(m, "x", x, NX), LVK_OK);
    assert_int_equal(lvk_model_forward(m), LVK_OK);
    const int ny = B * yc * H * W;
    assert_int_equal(lvk_model_read(m, "y", got, ny), LVK_OK);
    double worst = 0, scale = 0;
    int inside = 0;
    for (int n = 0; n < B; n++)
        for (int o = LO; o < HI; o++)
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++) {
                    const int e = ((n * yc + at + o - LO) * H + i) * W + j;
                    const double c = conv_ref(x, n, o, i, j), want = fmin(fmax(c, 0.0), 1.0);
                    worst = fmax(worst, fabs(got[e] - want));
                    scale = fmax(scale, fabs(want));
                    /* The gradient of <seed, y>: through the clip where it
                     * passes, then the convolution's transpose. */
                    seed[e] = (float)((e * 7) % 11 - 5);
                    if (c <= 0.0 || c >= 1.0)
                        continue;
                    inside++;
                    for (int ci = 0; ci < C; ci++)
                        for (int u = 0; u < K; u++)
                            for (int v = 0; v < K; v++) {
                                int yy = i + u - 1, xx = j + v - 1;
                                if (yy >= 0 && yy < H && xx >= 0 && xx < W)
                                    want_dx[((n * C + ci) * H + yy) * W + xx] +=
                                        seed[e] * (double)wval(((o * C + ci) * K + u) * K + v);
                            }
                }
    const int cut = B * (HI - LO) * H * W;
    printf("narrowed forward (variant %d): worst %.2g of max %.3g; %d of %d outputs inside the "
           "clip\n", (int)var, worst, scale, inside, cut);
    assert_true(worst <= TOL * fmax(scale, 1.0));
    assert_true(inside > cut / 4 && inside < cut);

    assert_int_equal(lvk_model_backward(m, "y", seed, ny, dx, NX), LVK_OK);
    worst = scale = 0;
    for (int i = 0; i < NX; i++) {
        worst = fmax(worst, fabs(dx[i] - want_dx[i]));
        scale = fmax(scale, fabs(want_dx[i]));
    }
    printf("narrowed input gradient: worst %.2g of max %.3g\n", worst, scale);
    assert_true(scale > 0 && worst <= TOL * scale);
    lvk_model_destroy(m);
    lvk_test_assert_no_validation();
}

static void test_narrowed(void **state)
{
    if (!lvk_test_ctx())
        skip();
    check_narrowed(PLAIN, 0, HI - LO);
}

/* Through a Concat: the branch holding the channels read is cut, the
 * other is not needed; y keeps the other branch's A channels first. */
static void test_narrowed_concat(void **state)
{
    if (!lvk_test_ctx())
        skip();
    check_narrowed(CONCAT, A, A + HI - LO);
}

static void test_refused(void **state)
{
    if (!lvk_test_ctx())
        skip();
    const enum variant vars[] = {SHARED_WEIGHTS, SECOND_READER, GROUPED, TOO_MANY, REQUESTED_MID,
                                 NOT_CHANNELWISE, CONCAT_SPAN};
    for (size_t k = 0; k < sizeof vars / sizeof vars[0]; k++) {
        bool narrowed = true;
        struct lvk_model *m = build(vars[k], &narrowed);
        const struct lvk_value *y = &m->values[lvk_graph_find(m, "y")];
        const int64_t yc = vars[k] == CONCAT_SPAN ? A + M : M;
        if (narrowed || y->shape.d[1] != yc || y->channel_base != 0 ||
            m->values[lvk_graph_find(m, "w")].shape.d[0] != M)
            fail_msg("variant %d: narrowed %d, y has %lld channels from %lld", (int)vars[k],
                     narrowed, (long long)y->shape.d[1], (long long)y->channel_base);
        lvk_model_destroy(m);
    }
    lvk_test_assert_no_validation();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unneeded_not_prepared),
        cmocka_unit_test(test_narrowed),
        cmocka_unit_test(test_narrowed_concat),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
