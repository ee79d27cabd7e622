/* Response maps (src/analysis/response_map.c):
 *   - Spearman correlation on the device against a CPU double-precision
 *     Spearman (average ranks for ties) on random rows with many ties: the
 *     full matrix, and nearest neighbours on a matrix large enough to be
 *     computed in several row blocks;
 *   - responses: the spatial means of two layers of a small graph over 10
 *     images in batches of 4 (a short last batch) against the CPU;
 *   - default layers skip pre-activations;
 *   - the circle projection: every radius in [0, 1], the largest of each
 *     angle bin 1; scaling puts each axis on [-1, 1];
 *   - a whole fit on three groups of neurons with correlated responses
 *     (plus constant ones, which are dropped) separates the groups, exact
 *     and Barnes-Hut, and the map survives a JSON round trip;
 *   - SHA-256 against the FIPS 180-2 test vectors. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "analysis/response_map.h"
#include "io/lvk_io.h"
#include "nn/graph.h"
#include "support/op_harness.h"
#include "support/devbuf.h"

/* ---- Spearman ------------------------------------------------------------------------------ */

/* Random rows; every third row takes only 4 distinct values (many ties),
 * every fifth is a noisy copy of row 0 (strong correlations). */
static float *random_rows(int n, int m, unsigned seed)
{
    float *x = calloc((size_t)n * m, sizeof *x);
    for (int i = 0; i < n; i++)
        for (int t = 0; t < m; t++) {
            double u = uniform_open(&seed);
            if (i % 3 == 1)
                u = floor(u * 4);
            else if (i % 5 == 2 && i > 0)
                u = x[t] + 0.3 * u;
            x[(size_t)i * m + t] = (float)u;
        }
    return x;
}

/* Average ranks (1-based) of one row, in double. */
static void ranks(const float *x, int m, double *r)
{
    for (int t = 0; t < m; t++) {
        int less = 0, same = 0;
        for (int s = 0; s < m; s++) {
            less += x[s] < x[t];
            same += x[s] == x[t];
        }
        r[t] = less + (same + 1) / 2.0;
    }
}

/* Pearson correlation of the ranks, in double: corr [n, n]. */
static double *spearman_ref(const float *x, int n, int m)
{
    double *z = calloc((size_t)n * m, sizeof *z), *c = calloc((size_t)n * n, sizeof *c);
    for (int i = 0; i < n; i++) {
        double *r = z + (size_t)i * m, mean = 0, ss = 0;
        ranks(x + (size_t)i * m, m, r);
        for (int t = 0; t < m; t++)
            mean += r[t] / m;
        for (int t = 0; t < m; t++)
            ss += (r[t] - mean) * (r[t] - mean);
        for (int t = 0; t < m; t++)
            r[t] = (r[t] - mean) / sqrt(ss);
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int t = 0; t < m; t++)
                s += z[(size_t)i * m + t] * z[(size_t)j * m + t];
            c[(size_t)i * n + j] = s;
        }
    free(z);
    return c;
}

static void check_knn(const double *ref, int n, int k, const int32_t *nbr, const float *dist)
{
    for (int i = 0; i < n; i++) {
        /* The k-th best reference distance of the row. */
        double *d = calloc((size_t)n, sizeof *d);
        int m = 0;
        for (int j = 0; j < n; j++)
            if (j != i)
                d[m++] = 1 - ref[(size_t)i * n + j];
        for (int a = 0; a < k; a++) /* partial selection sort: the k smallest first */
            for (int b = a + 1; b < m; b++)
                if (d[b] < d[a]) {
                    double t = d[a];
                    d[a] = d[b];
                    d[b] = t;
                }
        for (int a = 0; a < k; a++) {
            int j = nbr[(size_t)i * k + a];
            assert_true(j >= 0 && j < n && j != i);
            for (int b = 0; b < a; b++)
                assert_int_not_equal(nbr[(size_t)i * k + b], j);
            double want = fmax(0, 1 - ref[(size_t)i * n + j]);
            assert_float_equal(dist[(size_t)i * k + a], want, 2e-6);
            /* Ascending, and as good as the reference's a-th neighbour. */
            if (a)
                assert_true(dist[(size_t)i * k + a] >= dist[(size_t)i * k + a - 1]);
            assert_float_equal(dist[(size_t)i * k + a], fmax(0, d[a]), 2e-6);
        }
        free(d);
    }
}

static void test_spearman_small(void **state)
{
    lvk_ctx_t *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    const int n = 37, m = 53, k = 7;
    float *x = random_rows(n, m, 3);
    double *ref = spearman_ref(x, n, m);
    float *corr = calloc((size_t)n * n, sizeof *corr), *dist = calloc((size_t)n * k, sizeof *dist);
    int32_t *nbr = calloc((size_t)n * k, sizeof *nbr);
    assert_int_equal(lvk_rmap_spearman(ctx, x, n, m, corr, 0, NULL, NULL), LVK_OK);
    for (int e = 0; e < n * n; e++)
        if (!(fabs(corr[e] - ref[e]) <= 2e-6))
            fail_msg("corr[%d][%d] = %.8f, reference %.8f", e / n, e % n, corr[e], ref[e]);
    assert_int_equal(lvk_rmap_spearman(ctx, x, n, m, NULL, k, nbr, dist), LVK_OK);
    check_knn(ref, n, k, nbr, dist);
    /* Too many neighbours, or too few values, fail clearly. */
    assert_int_equal(lvk_rmap_spearman(ctx, x, n, m, NULL, n, nbr, dist), LVK_ERR_INVALID_ARG);
    assert_int_equal(lvk_rmap_spearman(ctx, x, n, 1, corr, 0, NULL, NULL), LVK_ERR_INVALID_ARG);
    lvk_test_assert_no_validation();
    free(x);
    free(ref);
    free(corr);
    free(dist);
    free(nbr);
}

static void test_spearman_blocks(void **state)
{
    lvk_ctx_t *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    /* 4200 rows: more than one 64 MiB block of correlation rows. */
    const int n = 4200, m = 11, k = 5;
    float *x = random_rows(n, m, 9);
    double *ref = spearman_ref(x, n, m);
    float *dist = calloc((size_t)n * k, sizeof *dist);
    int32_t *nbr = calloc((size_t)n * k, sizeof *nbr);
    assert_int_equal(lvk_rmap_spearman(ctx, x, n, m, NULL, k, nbr, dist), LVK_OK);
    check_knn(ref, n, k, nbr, dist);
    lvk_test_assert_no_validation();
    free(x);
    free(ref);
    free(dist);
    free(nbr);
}

/* ---- responses and layers ------------------------------------------------------------------ */

struct imgs {
    const float *data;
    size_t per;
};

static lvk_status load_img(void *user, int i, float *img)
{
    struct imgs *s = user;
    memcpy(img, s->data + (size_t)i * s->per, s->per * sizeof *img);
    return LVK_OK;
}

static void test_responses(void **state)
{
    lvk_ctx_t *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    /* x [4, 3, 5, 7] -> Relu "r" -> Add(r, x) "s". */
    struct lvk_model *m;
    const struct lvk_shape xs = {4, {4, 3, 5, 7}};
    assert_int_equal(lvk_graph_create(ctx, "responses", &m), LVK_OK);
    assert_true(lvk_graph_add_input(m, "x", LVK_DTYPE_F32, &xs) >= 0);
    const char *in1[] = {"x"}, *out1[] = {"r"}, *in2[] = {"r", "x"}, *out2[] = {"s"};
    assert_int_equal(lvk_graph_add_node(m, "Relu", "relu", in1, 1, out1, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Add", "add", in2, 2, out2, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_mark_output(m, "r"), LVK_OK);
    assert_int_equal(lvk_graph_mark_output(m, "s"), LVK_OK);
    assert_int_equal(lvk_graph_finalize(m, NULL), LVK_OK);

    struct lvk_rmap_layer *layers;
    int nl;
    const char *names[] = {"s", "r"};
    assert_int_equal(lvk_rmap_layers(m, names, 2, &layers, &nl), LVK_OK);
    assert_int_equal(nl, 2);
    assert_int_equal(layers[0].channels, 3);

    const int count = 10;
    const size_t per = 3 * 5 * 7;
    float *data = calloc(count * per, sizeof *data), *resp = calloc(6 * count, sizeof *resp);
    unsigned seed = 5;
    for (size_t i = 0; i < count * per; i++)
        data[i] = (float)(2 * uniform_open(&seed) - 1);
    struct imgs s = {data, per};
    struct lvk_rmap_source src = {.count = count, .load = load_img, .user = &s};
    assert_int_equal(lvk_rmap_responses(m, layers, nl, &src, resp), LVK_OK);
    for (int l = 0; l < 2; l++)
        for (int c = 0; c < 3; c++)
            for (int t = 0; t < count; t++) {
                double sum = 0;
                for (int p = 0; p < 35; p++) {
                    double v = data[t * per + c * 35 + p], r = v > 0 ? v : 0;
                    sum += l == 0 ? r + v : r;
                }
                assert_float_equal(resp[(l * 3 + c) * count + t], sum / 35, 1e-6);
            }
    lvk_test_assert_no_validation();
    lvk_rmap_layers_free(layers, nl);

    /* Unknown and non-activation names fail naming them. */
    const char *bad[] = {"nope"};
    assert_int_equal(lvk_rmap_layers(m, bad, 1, &layers, &nl), LVK_ERR_NOT_FOUND);
    assert_non_null(strstr(lvk_last_error(), "'nope'"));
    const char *input[] = {"x"};
    assert_int_equal(lvk_rmap_layers(m, input, 1, &layers, &nl), LVK_ERR_INVALID_ARG);
    lvk_model_destroy(m);
    free(data);
    free(resp);
}

static void test_default_layers(void **state)
{
    lvk_ctx_t *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    /* x -> Conv "c1" -> Relu "r1" -> Conv "c2" -> Add(c2, r1) "sum": c1 is
     * only read by an activation, so r1 stands for it. */
    struct lvk_model *m;
    const struct lvk_shape xs = {4, {1, 2, 4, 4}}, w1s = {4, {3, 2, 1, 1}}, w2s = {4, {3, 3, 1, 1}};
    float w1[6] = {1, -1, 0.5f, 2, -0.25f, 1}, w2[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    assert_int_equal(lvk_graph_create(ctx, "layers", &m), LVK_OK);
    assert_true(lvk_graph_add_input(m, "x", LVK_DTYPE_F32, &xs) >= 0);
    assert_true(lvk_graph_add_const(m, "w1", LVK_DTYPE_F32, &w1s, w1) >= 0);
    assert_true(lvk_graph_add_const(m, "w2", LVK_DTYPE_F32, &w2s, w2) >= 0);
    const char *i1[] = {"x", "w1"}, *o1[] = {"c1"}, *i2[] = {"c1"}, *o2[] = {"r1"};
    const char *i3[] = {"r1", "w2"}, *o3[] = {"c2"}, *i4[] = {"c2", "r1"}, *o4[] = {"sum"};
    assert_int_equal(lvk_graph_add_node(m, "Conv", "conv1", i1, 2, o1, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Relu", "relu1", i2, 1, o2, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Conv", "conv2", i3, 2, o3, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_add_node(m, "Add", "add", i4, 2, o4, 1, NULL, 0), LVK_OK);
    assert_int_equal(lvk_graph_mark_output(m, "sum"), LVK_OK);
    assert_int_equal(lvk_graph_finalize(m, NULL), LVK_OK);
    struct lvk_rmap_layer *layers;
    int nl;
    assert_int_equal(lvk_rmap_layers(m, NULL, 0, &layers, &nl), LVK_OK);
    assert_int_equal(nl, 3);
    assert_string_equal(layers[0].name, "r1");
    assert_string_equal(layers[1].name, "c2");
    assert_string_equal(layers[2].name, "sum");
    for (int l = 0; l < 3; l++)
        assert_int_equal(layers[l].channels, 3);
    lvk_rmap_layers_free(layers, nl);
    lvk_model_destroy(m);
}

/* ---- layout ------------------------------------------------------------------------------------- */

static void test_scale_and_circle(void **state)
{
    const int n = 2000, bins = 100;
    float *xy = calloc(2 * n, sizeof *xy);
    int *bin = calloc(n, sizeof *bin);
    unsigned s = 17;
    for (int i = 0; i < n; i++) {
        /* An off-centre, stretched blob. */
        xy[2 * i] = (float)(3 + 5 * (uniform_open(&s) - 0.3));
        xy[2 * i + 1] = (float)(-2 + (uniform_open(&s) + uniform_open(&s)));
    }
    lvk_rmap_scale(xy, n);
    for (int a = 0; a < 2; a++) {
        float lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < n; i++) {
            lo = fminf(lo, xy[2 * i + a]);
            hi = fmaxf(hi, xy[2 * i + a]);
        }
        assert_float_equal(lo, -1, 1e-6);
        assert_float_equal(hi, 1, 1e-6);
    }
    for (int i = 0; i < n; i++) {
        double a = atan2(xy[2 * i + 1], xy[2 * i]);
        bin[i] = LVK_MIN(bins - 1, (int)floor((a + M_PI) / (2 * M_PI) * bins));
    }
    lvk_rmap_circle(xy, n, bins);
    double top[100];
    for (int b = 0; b < bins; b++)
        top[b] = 0;
    for (int i = 0; i < n; i++) {
        double r = hypot(xy[2 * i], xy[2 * i + 1]);
        assert_true(r <= 1 + 1e-6);
        top[bin[i]] = fmax(top[bin[i]], r);
    }
    for (int b = 0; b < bins; b++)
        assert_float_equal(top[b], 1, 1e-6); /* 2000 points: every bin has some */
    free(xy);
    free(bin);
}

/* ---- fit -------------------------------------------------------------------------------------- */

/* Responses of 3 groups of 50 neurons each (a shared signal per group plus
 * noise) and 6 constant neurons, over 80 images, in 2 layers. */
static float *group_responses(int *label, int nimages)
{
    const int n = 156;
    float *r = calloc((size_t)n * nimages, sizeof *r);
    float sig[3][80];
    unsigned s = 23;
    for (int g = 0; g < 3; g++)
        for (int t = 0; t < nimages; t++)
            sig[g][t] = (float)uniform_open(&s);
    for (int i = 0; i < n; i++) {
        label[i] = i % 26 == 25 ? -1 : i % 3;
        for (int t = 0; t < nimages; t++)
            r[(size_t)i * nimages + t] = label[i] < 0 ? 0.5f
                                         : (float)(sig[label[i]][t] * (1 + i % 7) + 0.15 * uniform_open(&s));
    }
    return r;
}

static double layout_accuracy(const struct lvk_rmap *map, const int *label, int per_layer)
{
    int right = 0;
    for (int i = 0; i < map->n; i++) {
        int best = -1;
        double bd = INFINITY;
        for (int j = 0; j < map->n; j++) {
            double dx = map->neurons[i].x - map->neurons[j].x, dy = map->neurons[i].y - map->neurons[j].y;
            if (j != i && dx * dx + dy * dy < bd) {
                bd = dx * dx + dy * dy;
                best = j;
            }
        }
        const struct lvk_rmap_neuron *a = &map->neurons[i], *b = &map->neurons[best];
        right += label[a->layer * per_layer + a->channel] == label[b->layer * per_layer + b->channel];
    }
    return (double)right / map->n;
}

static void test_fit(void **state)
{
    lvk_ctx_t *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    const int nimages = 80;
    int label[156];
    float *resp = group_responses(label, nimages);
    struct lvk_rmap_layer layers[2] = {{"first", 78}, {"second", 78}};
    for (int exact = 1; exact >= 0; exact--) {
        struct lvk_rmap_fit_opts o;
        lvk_rmap_fit_default(&o);
        o.exact_max = exact ? 2500 : 100;
        o.tsne.seed = 3;
        o.circle = !exact;
        struct lvk_rmap *map;
        assert_int_equal(lvk_rmap_fit(ctx, resp, nimages, layers, 2, &o, &map), LVK_OK);
        assert_int_equal(map->exact, exact);
        assert_int_equal(map->n, 150);
        assert_int_equal(map->ndropped, 6);
        for (int d = 0; d < map->ndropped; d++) {
            const struct lvk_rmap_neuron *nu = &map->dropped[d];
            assert_int_equal(label[nu->layer * 78 + nu->channel], -1);
            assert_true(nu->lo == 0.5f && nu->hi == 0.5f);
        }
        for (int i = 0; i < map->n; i++) {
            const struct lvk_rmap_neuron *nu = &map->neurons[i];
            assert_true(fabsf(nu->x) <= 1 && fabsf(nu->y) <= 1);
            assert_true(nu->hi > nu->lo);
        }
        double acc = layout_accuracy(map, label, 78);
        print_message("%s: 1-NN accuracy of the groups %.3f\n", exact ? "exact" : "Barnes-Hut", acc);
        assert_true(acc > 0.95);

        /* JSON round trip. */
        char path[] = "/tmp/lvk_rmap_XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        close(fd);
        map->model = strdup("model.onnx");
        map->inputs = strdup("images/");
        snprintf(map->sha256, sizeof map->sha256, "%064d", 7);
        assert_int_equal(lvk_rmap_write(map, path), LVK_OK);
        struct lvk_rmap *back;
        assert_int_equal(lvk_rmap_read(path, &back), LVK_OK);
        assert_string_equal(back->model, "model.onnx");
        assert_string_equal(back->inputs, "images/");
        assert_string_equal(back->sha256, map->sha256);
        assert_int_equal(back->nimages, nimages);
        assert_int_equal(back->nlayers, 2);
        assert_string_equal(back->layers[1].name, "second");
        assert_int_equal(back->n, map->n);
        assert_int_equal(back->ndropped, map->ndropped);
        assert_memory_equal(back->neurons, map->neurons, map->n * sizeof *map->neurons);
        assert_memory_equal(back->dropped, map->dropped, map->ndropped * sizeof *map->dropped);
        assert_int_equal(back->exact, map->exact);
        assert_int_equal(back->circle, map->circle);
        assert_int_equal(back->neighbours, map->neighbours);
        assert_true(back->tsne.perplexity == map->tsne.perplexity);
        assert_true(back->tsne.learning_rate == map->tsne.learning_rate);
        assert_int_equal(back->tsne.seed, 3);
        lvk_rmap_destroy(back);

        /* A broken file fails naming the problem. */
        FILE *f = fopen(path, "w");
        fputs("{\"format\": \"lucidvk-response-map\", \"version\": 1, \"model\": {}, "
              "\"inputs\": {}}", f);
        fclose(f);
        assert_int_equal(lvk_rmap_read(path, &back), LVK_ERR_FORMAT);
        assert_non_null(strstr(lvk_last_error(), "'path'"));
        unlink(path);
        lvk_rmap_destroy(map);
    }
    /* All but three neurons constant: nothing to map. */
    float flat[5 * 4] = {1, 2, 3, 4, 1, 1, 1, 1, 2, 2, 2, 2, 3, 2, 1, 0, 0, 1, 0, 1};
    struct lvk_rmap_layer one = {"l", 5};
    struct lvk_rmap_fit_opts o;
    lvk_rmap_fit_default(&o);
    struct lvk_rmap *map;
    assert_int_equal(lvk_rmap_fit(ctx, flat, 4, &one, 1, &o, &map), LVK_ERR_INVALID_ARG);
    assert_non_null(strstr(lvk_last_error(), "only 3 of 5 neurons"));
    lvk_test_assert_no_validation();
    free(resp);
}

/* ---- SHA-256 ---------------------------------------------------------------------------------- */

static void sha_of(const char *data, size_t len, size_t repeat, char hex[65])
{
    char path[] = "/tmp/lvk_sha_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    for (size_t i = 0; i < repeat; i++)
        fwrite(data, 1, len, f);
    fclose(f);
    assert_int_equal(lvk_sha256_file(path, hex), LVK_OK);
    unlink(path);
}

static void test_sha256(void **state)
{
    char hex[65];
    sha_of("", 0, 1, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha_of("abc", 3, 1, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha_of(two, strlen(two), 1, hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    sha_of("a", 1, 1000000, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    assert_int_equal(lvk_sha256_file("/nonexistent/model.onnx", hex), LVK_ERR_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spearman_small),
        cmocka_unit_test(test_spearman_blocks),
        cmocka_unit_test(test_responses),
        cmocka_unit_test(test_default_layers),
        cmocka_unit_test(test_scale_and_circle),
        cmocka_unit_test(test_fit),
        cmocka_unit_test(test_sha256),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
