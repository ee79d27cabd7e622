/* t-SNE (src/analysis/tsne.c):
 *   - a row's conditional probabilities reach the requested perplexity
 *     (exp of their entropy, computed here in double) and fall with distance;
 *   - P from a full matrix and from nearest neighbours is symmetric, sums
 *     to 1 and has the expected support;
 *   - the exact gradient equals central finite differences, in double, of
 *     the objective -e sum p_ij log w_ij + log sum w_kl that it descends
 *     (KL(P || Q) up to a constant when e = 1);
 *   - the Barnes-Hut gradient approaches the exact one as theta shrinks;
 *   - three well-separated Gaussian clusters end up separated in the
 *     layout (leave-one-out 1-nearest-neighbour accuracy above 95%), exact
 *     and Barnes-Hut;
 *   - the layout does not depend on the number of threads. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "analysis/tsne.h"
#include "support/devbuf.h"

/* Box-Muller; the two draws in a fixed order (C leaves the order of two
 * calls in one expression open). */
static double gauss(unsigned *s)
{
    double u1 = uniform_open(s), u2 = uniform_open(s);
    return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

/* n points in `dim` dimensions around `k` centres 10 apart; labels[i] is
 * the cluster. Returns the Euclidean distance matrix [n, n]. */
static float *clusters(int n, int dim, int k, unsigned seed, int *labels)
{
    double *x = calloc((size_t)n * dim, sizeof *x);
    float *d = calloc((size_t)n * n, sizeof *d);
    for (int i = 0; i < n; i++) {
        labels[i] = i % k;
        for (int c = 0; c < dim; c++)
            x[i * dim + c] = gauss(&seed) + (c == labels[i] ? 10.0 : 0.0);
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int c = 0; c < dim; c++)
                s += (x[i * dim + c] - x[j * dim + c]) * (x[i * dim + c] - x[j * dim + c]);
            d[(size_t)i * n + j] = (float)sqrt(s);
        }
    free(x);
    return d;
}

/* The k nearest other points of each row of a distance matrix, by sorting
 * the row. */
static const float *g_row;

static int by_dist(const void *a, const void *b)
{
    float x = g_row[*(const int *)a], y = g_row[*(const int *)b];
    return (x > y) - (x < y);
}

static void knn(const float *d, int n, int k, int32_t *nbr, float *nd)
{
    int *idx = calloc(n, sizeof *idx);
    for (int i = 0; i < n; i++) {
        int m = 0;
        for (int j = 0; j < n; j++)
            if (j != i)
                idx[m++] = j;
        g_row = d + (size_t)i * n;
        qsort(idx, m, sizeof *idx, by_dist);
        for (int a = 0; a < k; a++) {
            nbr[i * k + a] = idx[a];
            nd[i * k + a] = g_row[idx[a]];
        }
    }
    free(idx);
}

static double one_nn_accuracy(const float *y, const int *labels, int n)
{
    int right = 0;
    for (int i = 0; i < n; i++) {
        int best = -1;
        double bd = INFINITY;
        for (int j = 0; j < n; j++) {
            double dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1];
            if (j != i && dx * dx + dy * dy < bd) {
                bd = dx * dx + dy * dy;
                best = j;
            }
        }
        right += labels[best] == labels[i];
    }
    return (double)right / n;
}

static void test_row_perplexity(void **state)
{
    unsigned s = 11;
    const int cnt = 200;
    float d[200];
    double p[200];
    for (int j = 0; j < cnt; j++)
        d[j] = (float)(0.3 + 1.7 * uniform_open(&s));
    const double perps[] = {5, 30, 90};
    for (int t = 0; t < 3; t++) {
        double beta = lvk_tsne_row_probs(d, cnt, perps[t], p);
        assert_true(beta > 0);
        double sum = 0, h = 0;
        for (int j = 0; j < cnt; j++) {
            sum += p[j];
            if (p[j] > 0)
                h -= p[j] * log(p[j]);
        }
        assert_float_equal(sum, 1.0, 1e-12);
        assert_float_equal(exp(h), perps[t], 1e-3 * perps[t]);
        for (int j = 0; j < cnt; j++)
            for (int i = 0; i < cnt; i++)
                if (d[i] < d[j])
                    assert_true(p[i] >= p[j]);
    }
}

static void check_p(const struct lvk_tsne_p *p, int n)
{
    double total = 0;
    for (int i = 0; i < n; i++)
        for (int64_t e = p->row[i]; e < p->row[i + 1]; e++) {
            int j = p->col[e];
            assert_int_not_equal(i, j);
            if (e > p->row[i])
                assert_true(p->col[e - 1] < j);
            total += p->val[e];
            /* The mirror entry exists and is equal. */
            int64_t m = p->row[j];
            while (m < p->row[j + 1] && p->col[m] != i)
                m++;
            assert_true(m < p->row[j + 1]);
            assert_true(p->val[m] == p->val[e]);
        }
    assert_float_equal(total, 1.0, 1e-5);
}

static void test_joint_probabilities(void **state)
{
    const int n = 90, k = 20;
    int labels[90];
    float *d = clusters(n, 5, 3, 3, labels);
    struct lvk_tsne_p p;
    assert_int_equal(lvk_tsne_p_dense(d, n, 10, 0, &p), LVK_OK);
    check_p(&p, n);
    assert_int_equal(p.row[n], (int64_t)n * (n - 1));
    lvk_tsne_p_free(&p);

    int32_t nbr[90 * 20];
    float nd[90 * 20];
    knn(d, n, k, nbr, nd);
    assert_int_equal(lvk_tsne_p_knn(nbr, nd, n, k, 6, 0, &p), LVK_OK);
    check_p(&p, n);
    assert_true(p.row[n] >= (int64_t)n * k && p.row[n] <= 2 * (int64_t)n * k);
    lvk_tsne_p_free(&p);

    /* A perplexity the neighbours cannot reach fails clearly. */
    assert_int_equal(lvk_tsne_p_knn(nbr, nd, n, k, 20, 0, &p), LVK_ERR_INVALID_ARG);
    assert_non_null(strstr(lvk_last_error(), "perplexity"));
    free(d);
}

/* -e sum_ij p_ij log w_ij + log sum_{k != l} w_kl, in double. */
static double objective(const struct lvk_tsne_p *p, const double *y, double e)
{
    int n = p->n;
    double z = 0, a = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (i != j) {
                double dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1];
                z += 1 / (1 + dx * dx + dy * dy);
            }
    for (int i = 0; i < n; i++)
        for (int64_t q = p->row[i]; q < p->row[i + 1]; q++) {
            int j = p->col[q];
            double dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1];
            a += p->val[q] * log(1 + dx * dx + dy * dy);
        }
    return e * a + log(z);
}

static void test_gradient(void **state)
{
    const int n = 40;
    int labels[40];
    float *d = clusters(n, 4, 2, 5, labels);
    struct lvk_tsne_p p;
    assert_int_equal(lvk_tsne_p_dense(d, n, 8, 0, &p), LVK_OK);
    float y[80], g[80];
    double yd[80];
    unsigned s = 9;
    for (int i = 0; i < 2 * n; i++)
        yd[i] = y[i] = (float)(3 * gauss(&s));
    const double es[] = {1, 4};
    for (int t = 0; t < 2; t++) {
        assert_int_equal(lvk_tsne_gradient(&p, y, es[t], 0, 0, g), LVK_OK);
        double gmax = 0;
        for (int i = 0; i < 2 * n; i++)
            gmax = fmax(gmax, fabs(g[i]));
        for (int i = 0; i < 2 * n; i++) {
            const double h = 1e-5;
            double keep = yd[i];
            yd[i] = keep + h;
            double fp = objective(&p, yd, es[t]);
            yd[i] = keep - h;
            double fm = objective(&p, yd, es[t]);
            yd[i] = keep;
            assert_float_equal(g[i], (fp - fm) / (2 * h), 1e-4 * gmax);
        }
    }
    lvk_tsne_p_free(&p);
    free(d);
}

static double rel_err(const float *a, const float *b, int n)
{
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        num += (a[i] - b[i]) * (double)(a[i] - b[i]);
        den += b[i] * (double)b[i];
    }
    return sqrt(num / den);
}

static void test_barnes_hut_gradient(void **state)
{
    const int n = 600;
    int *labels = calloc(n, sizeof *labels);
    float *d = clusters(n, 6, 3, 7, labels);
    struct lvk_tsne_p p;
    assert_int_equal(lvk_tsne_p_dense(d, n, 30, 0, &p), LVK_OK);
    float *y = calloc(2 * n, sizeof *y), *ge = calloc(2 * n, sizeof *ge), *gb = calloc(2 * n, sizeof *gb);
    unsigned s = 4;
    for (int i = 0; i < 2 * n; i++)
        y[i] = (float)(5 * gauss(&s));
    /* Two coincident points exercise the leaves that hold several. */
    y[2] = y[0];
    y[3] = y[1];
    assert_int_equal(lvk_tsne_gradient(&p, y, 1, 0, 0, ge), LVK_OK);
    double prev = INFINITY;
    const double thetas[] = {0.8, 0.5, 0.2};
    for (int t = 0; t < 3; t++) {
        assert_int_equal(lvk_tsne_gradient(&p, y, 1, thetas[t], 0, gb), LVK_OK);
        double e = rel_err(gb, ge, 2 * n);
        assert_true(e < prev);
        prev = e;
    }
    assert_true(prev < 0.01);
    lvk_tsne_p_free(&p);
    free(d);
    free(labels);
    free(y);
    free(ge);
    free(gb);
}

static void test_clusters_exact(void **state)
{
    const int n = 180;
    int labels[180];
    float *d = clusters(n, 10, 3, 1, labels);
    struct lvk_tsne_p p;
    assert_int_equal(lvk_tsne_p_dense(d, n, 30, 0, &p), LVK_OK);
    struct lvk_tsne_opts o;
    lvk_tsne_default(&o);
    o.theta = 0;
    o.seed = 42;
    float y[360], y1[360];
    assert_int_equal(lvk_tsne_run(&p, &o, y), LVK_OK);
    double acc = one_nn_accuracy(y, labels, n);
    print_message("exact: 1-NN accuracy %.3f\n", acc);
    assert_true(acc > 0.95);
    /* Same seed, other thread counts: the same layout, bit for bit. */
    o.threads = 1;
    assert_int_equal(lvk_tsne_run(&p, &o, y1), LVK_OK);
    assert_memory_equal(y, y1, sizeof y);
    o.threads = 3;
    assert_int_equal(lvk_tsne_run(&p, &o, y1), LVK_OK);
    assert_memory_equal(y, y1, sizeof y);
    /* Another seed: another layout. */
    o.seed = 43;
    assert_int_equal(lvk_tsne_run(&p, &o, y1), LVK_OK);
    assert_true(memcmp(y, y1, sizeof y) != 0);
    lvk_tsne_p_free(&p);
    free(d);
}

static void test_clusters_barnes_hut(void **state)
{
    const int n = 900, k = 90;
    int *labels = calloc(n, sizeof *labels);
    float *d = clusters(n, 10, 3, 2, labels);
    int32_t *nbr = calloc((size_t)n * k, sizeof *nbr);
    float *nd = calloc((size_t)n * k, sizeof *nd), *y = calloc(2 * n, sizeof *y);
    knn(d, n, k, nbr, nd);
    struct lvk_tsne_p p;
    assert_int_equal(lvk_tsne_p_knn(nbr, nd, n, k, 30, 0, &p), LVK_OK);
    struct lvk_tsne_opts o;
    lvk_tsne_default(&o);
    o.seed = 5;
    assert_int_equal(lvk_tsne_run(&p, &o, y), LVK_OK);
    double acc = one_nn_accuracy(y, labels, n);
    print_message("Barnes-Hut: 1-NN accuracy %.3f\n", acc);
    assert_true(acc > 0.95);
    lvk_tsne_p_free(&p);
    free(d);
    free(labels);
    free(nbr);
    free(nd);
    free(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_row_perplexity),
        cmocka_unit_test(test_joint_probabilities),
        cmocka_unit_test(test_gradient),
        cmocka_unit_test(test_barnes_hut_gradient),
        cmocka_unit_test(test_clusters_exact),
        cmocka_unit_test(test_clusters_barnes_hut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
