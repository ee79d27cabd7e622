/* t-SNE (van der Maaten and Hinton 2008) of points given by their pairwise
 * distances, into 2-D, on the CPU.
 *
 * Two gradients over the same sparse joint probabilities P:
 *   exact       P from all pairs (lvk_tsne_p_dense), repulsion summed over
 *               all pairs: O(n^2) per iteration, for up to a few thousand
 *               points;
 *   Barnes-Hut  P from each point's k = 3 * perplexity nearest neighbours
 *               (lvk_tsne_p_knn), repulsion from a quadtree whose cells
 *               count as one point when width / distance < theta
 *               (van der Maaten 2014): O(n log n), for tens of thousands.
 * Conventions follow scikit-learn's TSNE(metric="precomputed"): the given
 * distances enter the Gaussian kernel as they are (exp(-d * beta), not
 * d^2), P is symmetrised and normalised to sum 1, early exaggeration
 * multiplies P for the first iterations, and gradient descent uses
 * momentum 0.5 then 0.8 with per-coordinate gains. Rows are spread over
 * threads; results do not depend on the thread count. */
#ifndef LVK_TSNE_H
#define LVK_TSNE_H

#include <stdint.h>

#include "lucidvk/status.h"

struct lvk_tsne_opts {
    double perplexity;          /* effective number of neighbours (default 30) */
    int iterations;             /* total, including the exaggerated ones (default 1000) */
    double learning_rate;       /* 0: max(n / early_exaggeration / 4, 50), sklearn's "auto" */
    double early_exaggeration;  /* default 12 */
    int exaggeration_iters;     /* default 250 */
    double theta;               /* 0: exact repulsion; else Barnes-Hut (default 0.5) */
    uint64_t seed;              /* initial layout: N(0, 1e-4^2) from this seed */
    int threads;                /* 0: the online cores, at most 16 */
};

void lvk_tsne_default(struct lvk_tsne_opts *o);

/* Joint probabilities: symmetric, summing to 1, rows in CSR form. */
struct lvk_tsne_p {
    int n;
    int64_t *row;   /* [n + 1] offsets into col/val */
    int32_t *col;   /* [nnz] column indices, ascending within a row */
    float *val;     /* [nnz] p_ij */
};

/* Conditional probabilities of one point over its `cnt` candidates at
 * distances d: p_j = exp(-d_j * beta) / sum, with beta found by bisection
 * so that exp(entropy) = perplexity (to 1e-5 in the entropy). p receives
 * cnt values; returns beta. */
double lvk_tsne_row_probs(const float *d, int cnt, double perplexity, double *p);

/* P from a full distance matrix dist [n, n] (the diagonal is ignored).
 * Fails (LVK_ERR_INVALID_ARG) when perplexity >= n - 1. */
lvk_status lvk_tsne_p_dense(const float *dist, int n, double perplexity, int threads,
                            struct lvk_tsne_p *out);
/* P from each point's k nearest neighbours: nbr [n, k] indices (not the
 * point itself), nd [n, k] their distances. */
lvk_status lvk_tsne_p_knn(const int32_t *nbr, const float *nd, int n, int k, double perplexity,
                          int threads, struct lvk_tsne_p *out);
void lvk_tsne_p_free(struct lvk_tsne_p *p);

/* Gradient of KL(exaggeration * P || Q(y)) with respect to y [n, 2] into
 * grad [n, 2]: 4 * sum_j (e p_ij - q_ij) (1 + |y_i - y_j|^2)^-1 (y_i - y_j),
 * the repulsive part exact (theta 0) or Barnes-Hut. */
lvk_status lvk_tsne_gradient(const struct lvk_tsne_p *p, const float *y, double exaggeration,
                             double theta, int threads, float *grad);

/* Runs the optimisation from a seeded random layout; y [n, 2] receives it. */
lvk_status lvk_tsne_run(const struct lvk_tsne_p *p, const struct lvk_tsne_opts *o, float *y);

#endif
