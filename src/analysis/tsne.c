/* t-SNE on the CPU: joint probabilities from distances, the KL gradient
 * (exact or Barnes-Hut) and sklearn-style gradient descent. See tsne.h for
 * the conventions.
 *
 * Sums run in double; every per-point quantity is computed by one thread
 * and reduced in index order, so the result is the same for any thread
 * count. Non-goals: more than two output dimensions, PCA initialisation,
 * early stopping on a small gradient. */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analysis/tsne.h"
#include "lvk_util.h"

#define MAX_THREADS 16
#define MAX_DEPTH   48  /* quadtree: deeper cells hold coincident points */
#define LEAF_POINTS 8   /* quadtree: cells of up to this many points are leaves */

void lvk_tsne_default(struct lvk_tsne_opts *o)
{
    *o = (struct lvk_tsne_opts){
        .perplexity = 30, .iterations = 1000, .learning_rate = 0,
        .early_exaggeration = 12, .exaggeration_iters = 250, .theta = 0.5, .seed = 0,
    };
}

/* ---- threads -------------------------------------------------------------------------- */

typedef void (*rows_fn)(void *ctx, int begin, int end);

struct rows_job {
    rows_fn fn;
    void *ctx;
    int begin, end;
};

static void *rows_thread(void *arg)
{
    struct rows_job *j = arg;
    j->fn(j->ctx, j->begin, j->end);
    return NULL;
}

static int thread_count(int threads)
{
    if (threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        threads = c > 0 ? (int)c : 1;
    }
    return LVK_MIN(threads, MAX_THREADS);
}

/* Runs fn over rows [0, n) in contiguous chunks, one per thread; the
 * calling thread takes the first chunk. A thread that cannot be started
 * leaves its chunk to the caller. */
static void parallel_rows(int n, int threads, rows_fn fn, void *ctx)
{
    int t = LVK_MAX(1, LVK_MIN(thread_count(threads), n / 64));
    struct rows_job jobs[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    bool started[MAX_THREADS] = {0};
    for (int k = 0; k < t; k++)
        jobs[k] = (struct rows_job){fn, ctx, (int)((int64_t)n * k / t), (int)((int64_t)n * (k + 1) / t)};
    for (int k = 1; k < t; k++)
        started[k] = pthread_create(&tid[k], NULL, rows_thread, &jobs[k]) == 0;
    fn(ctx, jobs[0].begin, jobs[0].end);
    for (int k = 1; k < t; k++) {
        if (started[k])
            pthread_join(tid[k], NULL);
        else
            fn(ctx, jobs[k].begin, jobs[k].end);
    }
}

/* ---- joint probabilities --------------------------------------------------------------- */

double lvk_tsne_row_probs(const float *d, int cnt, double perplexity, double *p)
{
    /* Shifting every distance by the smallest leaves the normalised p and
     * the entropy unchanged and keeps exp() from underflowing. */
    double dmin = INFINITY;
    for (int j = 0; j < cnt; j++)
        dmin = fmin(dmin, d[j]);
    const double target = log(perplexity);
    double beta = 1, lo = -INFINITY, hi = INFINITY;
    for (int step = 0; step < 200; step++) {
        double sum = 0, dsum = 0;
        for (int j = 0; j < cnt; j++) {
            double dj = d[j] - dmin;
            p[j] = exp(-dj * beta);
            sum += p[j];
            dsum += dj * p[j];
        }
        double h = log(sum) + beta * dsum / sum;
        for (int j = 0; j < cnt; j++)
            p[j] /= sum;
        if (fabs(h - target) <= 1e-5)
            break;
        /* Entropy falls as beta rises: bracket, then bisect. */
        if (h > target) {
            lo = beta;
            beta = isinf(hi) ? beta * 2 : (beta + hi) / 2;
        } else {
            hi = beta;
            beta = isinf(lo) ? beta / 2 : (beta + lo) / 2;
        }
    }
    return beta;
}

struct triplet {
    int32_t i, j;
    float v;
};

static int by_row_col(const void *a, const void *b)
{
    const struct triplet *x = a, *y = b;
    if (x->i != y->i)
        return x->i < y->i ? -1 : 1;
    return (x->j > y->j) - (x->j < y->j);
}

/* Conditional probabilities of every row over `k` candidates each, rows
 * in parallel. cand (NULL: all other points) and dist are [n, k]. */
struct cond_job {
    const float *dist;
    const int32_t *cand;
    int n, k;
    double perplexity;
    float *cond;        /* [n, k] */
    bool dense;         /* dist is [n, n] with the diagonal to skip */
};

static void cond_rows(void *ctx, int begin, int end)
{
    struct cond_job *c = ctx;
    float *d = malloc((size_t)c->k * sizeof *d);
    double *p = malloc((size_t)c->k * sizeof *p);
    if (!d || !p) {
        /* Leaves the rows NaN, which the caller detects. */
        for (int i = begin; i < end; i++)
            for (int j = 0; j < c->k; j++)
                c->cond[(size_t)i * c->k + j] = NAN;
        free(d);
        free(p);
        return;
    }
    for (int i = begin; i < end; i++) {
        if (c->dense) {
            const float *row = c->dist + (size_t)i * c->n;
            for (int j = 0, m = 0; j < c->n; j++)
                if (j != i)
                    d[m++] = row[j];
        } else {
            memcpy(d, c->dist + (size_t)i * c->k, (size_t)c->k * sizeof *d);
        }
        lvk_tsne_row_probs(d, c->k, c->perplexity, p);
        for (int j = 0; j < c->k; j++)
            c->cond[(size_t)i * c->k + j] = (float)p[j];
    }
    free(d);
    free(p);
}

/* P = (C + C^T) / sum, from conditional rows C given as triplets. */
static lvk_status symmetrise(int n, struct triplet *t, size_t nt, struct lvk_tsne_p *out)
{
    qsort(t, nt, sizeof *t, by_row_col);
    size_t m = 0;
    double total = 0;
    for (size_t a = 0; a < nt; a++) {
        total += t[a].v;
        if (m && t[m - 1].i == t[a].i && t[m - 1].j == t[a].j)
            t[m - 1].v += t[a].v;
        else
            t[m++] = t[a];
    }
    out->n = n;
    out->row = lvk_calloc((size_t)n + 1, sizeof *out->row);
    out->col = lvk_calloc(m, sizeof *out->col);
    out->val = lvk_calloc(m, sizeof *out->val);
    if (!out->row || !out->col || !out->val) {
        lvk_tsne_p_free(out);
        return LVK_ERR_HOST_OOM;
    }
    for (size_t a = 0; a < m; a++) {
        out->row[t[a].i + 1]++;
        out->col[a] = t[a].j;
        out->val[a] = (float)(t[a].v / total);
    }
    for (int i = 0; i < n; i++)
        out->row[i + 1] += out->row[i];
    return LVK_OK;
}

static lvk_status build_p(struct cond_job *c, int threads, struct lvk_tsne_p *out)
{
    memset(out, 0, sizeof *out);
    if (c->n < 2 || c->k < 1)
        return lvk_fail(LVK_ERR_INVALID_ARG, "t-SNE needs at least 2 points (got %d)", c->n);
    if (!(c->perplexity > 0) || c->perplexity >= c->k)
        return lvk_fail(LVK_ERR_INVALID_ARG, "t-SNE perplexity %g must be above 0 and below the "
                        "number of neighbours per point (%d); lower the perplexity",
                        c->perplexity, c->k);
    size_t nk = (size_t)c->n * c->k;
    c->cond = lvk_calloc(nk, sizeof *c->cond);
    struct triplet *t = lvk_calloc(2 * nk, sizeof *t);
    if (!c->cond || !t) {
        free(c->cond);
        free(t);
        return LVK_ERR_HOST_OOM;
    }
    parallel_rows(c->n, threads, cond_rows, c);
    lvk_status st = LVK_OK;
    for (int i = 0; i < c->n && st == LVK_OK; i++)
        for (int a = 0; a < c->k; a++) {
            size_t e = (size_t)i * c->k + a;
            int j = c->cand ? c->cand[e] : (a < i ? a : a + 1);
            if (isnan(c->cond[e])) {
                st = lvk_fail(LVK_ERR_HOST_OOM, "t-SNE: out of host memory");
                break;
            }
            if (j < 0 || j >= c->n || j == i) {
                st = lvk_fail(LVK_ERR_INVALID_ARG, "t-SNE: neighbour %d of point %d is out of range",
                              j, i);
                break;
            }
            t[2 * e] = (struct triplet){i, j, c->cond[e]};
            t[2 * e + 1] = (struct triplet){j, i, c->cond[e]};
        }
    if (st == LVK_OK)
        st = symmetrise(c->n, t, 2 * nk, out);
    free(c->cond);
    free(t);
    return st;
}

lvk_status lvk_tsne_p_dense(const float *dist, int n, double perplexity, int threads,
                            struct lvk_tsne_p *out)
{
    struct cond_job c = {.dist = dist, .n = n, .k = n - 1, .perplexity = perplexity, .dense = true};
    return build_p(&c, threads, out);
}

lvk_status lvk_tsne_p_knn(const int32_t *nbr, const float *nd, int n, int k, double perplexity,
                          int threads, struct lvk_tsne_p *out)
{
    struct cond_job c = {.dist = nd, .cand = nbr, .n = n, .k = k, .perplexity = perplexity};
    return build_p(&c, threads, out);
}

void lvk_tsne_p_free(struct lvk_tsne_p *p)
{
    if (!p)
        return;
    free(p->row);
    free(p->col);
    free(p->val);
    memset(p, 0, sizeof *p);
}

/* ---- quadtree ------------------------------------------------------------------------ */

struct qnode {
    float cx, cy;   /* centre of mass */
    float open2;    /* side^2 / theta^2: the cell is opened when closer than this squared */
    int count;
    int child;      /* first of 4 consecutive children, -1 for a leaf */
    int start;      /* its points are perm[start, start + count) */
};

struct qtree {
    struct qnode *nodes;
    int nnodes, cap;
    int *perm, *pos, *tmp;  /* points in cell order; pos[i]: where i is in perm */
    float *py;              /* coordinates in cell order [n, 2], for leaf scans */
    const float *y;
    double theta2;
};

static int qt_alloc(struct qtree *t, int k)
{
    if (t->nnodes + k > t->cap) {
        int cap = LVK_MAX(t->cap * 2, t->nnodes + k);
        struct qnode *nn = realloc(t->nodes, (size_t)cap * sizeof *nn);
        if (!nn)
            return -1;
        t->nodes = nn;
        t->cap = cap;
    }
    t->nnodes += k;
    return t->nnodes - k;
}

/* Builds node `id` over perm[start, end) inside the square at (x0, y0). */
static lvk_status qt_build(struct qtree *t, int id, int start, int end, double x0, double y0,
                           double side, int depth)
{
    double sx = 0, sy = 0;
    for (int a = start; a < end; a++) {
        sx += t->y[2 * t->perm[a]];
        sy += t->y[2 * t->perm[a] + 1];
    }
    int count = end - start;
    t->nodes[id] = (struct qnode){.cx = count ? (float)(sx / count) : 0,
                                  .cy = count ? (float)(sy / count) : 0,
                                  .open2 = (float)(side * side / t->theta2), .count = count,
                                  .child = -1, .start = start};
    if (count <= LEAF_POINTS || depth >= MAX_DEPTH)
        return LVK_OK;
    /* Counting sort of the points into the four quadrants. */
    double mx = x0 + side / 2, my = y0 + side / 2;
    int cnt[4] = {0}, off[4];
    for (int a = start; a < end; a++) {
        const float *p = t->y + 2 * t->perm[a];
        cnt[(p[0] >= mx) + 2 * (p[1] >= my)]++;
    }
    off[0] = start;
    for (int q = 1; q < 4; q++)
        off[q] = off[q - 1] + cnt[q - 1];
    int fill[4] = {off[0], off[1], off[2], off[3]};
    for (int a = start; a < end; a++) {
        const float *p = t->y + 2 * t->perm[a];
        t->tmp[fill[(p[0] >= mx) + 2 * (p[1] >= my)]++] = t->perm[a];
    }
    memcpy(t->perm + start, t->tmp + start, (size_t)count * sizeof *t->perm);
    int c = qt_alloc(t, 4);
    if (c < 0)
        return lvk_fail(LVK_ERR_HOST_OOM, "t-SNE: out of host memory (quadtree)");
    t->nodes[id].child = c;
    for (int q = 0; q < 4; q++)
        LVK_CHECK(qt_build(t, c + q, off[q], off[q] + cnt[q], (q & 1) ? mx : x0,
                           (q & 2) ? my : y0, side / 2, depth + 1));
    return LVK_OK;
}

static lvk_status qt_create(struct qtree *t, const float *y, int n, double theta)
{
    t->y = y;
    t->nnodes = 0;
    t->theta2 = theta * theta;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < n; i++) {
        t->perm[i] = i;
        x0 = fmin(x0, y[2 * i]);
        x1 = fmax(x1, y[2 * i]);
        y0 = fmin(y0, y[2 * i + 1]);
        y1 = fmax(y1, y[2 * i + 1]);
    }
    /* A square a little larger than the bounding box, so the points on its
     * upper edges still fall inside. */
    double side = fmax(x1 - x0, y1 - y0);
    side = side * (1 + 1e-6) + 1e-12;
    if (qt_alloc(t, 1) < 0)
        return lvk_fail(LVK_ERR_HOST_OOM, "t-SNE: out of host memory (quadtree)");
    LVK_CHECK(qt_build(t, 0, 0, n, x0, y0, side, 0));
    for (int a = 0; a < n; a++) {
        t->pos[t->perm[a]] = a;
        t->py[2 * a] = y[2 * t->perm[a]];
        t->py[2 * a + 1] = y[2 * t->perm[a] + 1];
    }
    return LVK_OK;
}

/* ---- gradient ------------------------------------------------------------------------- */

struct grad_job {
    const struct lvk_tsne_p *p;
    const float *y;
    const struct qtree *tree;   /* NULL: exact repulsion */
    double *attr, *rep, *z;     /* [n, 2], [n, 2], [n] */
};

/* Repulsion on point i: z_i = sum_j w_ij and rep_i = sum_j w_ij^2 (y_i - y_j)
 * with w = 1 / (1 + d^2), over all j != i or over quadtree cells. */
static void repulse_exact(const struct grad_job *g, int i, double *z, double r[2])
{
    const float *y = g->y;
    double xi = y[2 * i], yi = y[2 * i + 1];
    for (int j = 0; j < g->p->n; j++) {
        if (j == i)
            continue;
        double dx = xi - y[2 * j], dy = yi - y[2 * j + 1];
        double w = 1 / (1 + dx * dx + dy * dy);
        *z += w;
        r[0] += w * w * dx;
        r[1] += w * w * dy;
    }
}

static void repulse_tree(const struct grad_job *g, int i, double *z, double r[2])
{
    const struct qtree *t = g->tree;
    const float xi = g->y[2 * i], yi = g->y[2 * i + 1];
    const int pi = t->pos[i];
    int stack[4 * MAX_DEPTH + 8], top = 0;
    stack[top++] = 0;
    while (top) {
        const struct qnode *q = &t->nodes[stack[--top]];
        if (!q->count)
            continue;
        float dx = xi - q->cx, dy = yi - q->cy, d2 = dx * dx + dy * dy;
        bool mine = pi >= q->start && pi < q->start + q->count;
        if (!mine && d2 > q->open2) {
            /* Far enough: the cell acts as one point at its centre of mass. */
            double w = 1 / (1 + (double)d2);
            *z += q->count * w;
            r[0] += q->count * w * w * dx;
            r[1] += q->count * w * w * dy;
        } else if (q->child >= 0) {
            for (int c = 0; c < 4; c++)
                stack[top++] = q->child + c;
        } else {
            /* A near leaf: its points one by one (i itself left out). */
            for (int a = q->start; a < q->start + q->count; a++) {
                if (a == pi)
                    continue;
                double ex = xi - t->py[2 * a], ey = yi - t->py[2 * a + 1];
                double w = 1 / (1 + ex * ex + ey * ey);
                *z += w;
                r[0] += w * w * ex;
                r[1] += w * w * ey;
            }
        }
    }
}

static void grad_rows(void *ctx, int begin, int end)
{
    const struct grad_job *g = ctx;
    const struct lvk_tsne_p *p = g->p;
    const float *y = g->y;
    for (int i = begin; i < end; i++) {
        double a[2] = {0, 0}, r[2] = {0, 0}, z = 0;
        double xi = y[2 * i], yi = y[2 * i + 1];
        for (int64_t e = p->row[i]; e < p->row[i + 1]; e++) {
            int j = p->col[e];
            double dx = xi - y[2 * j], dy = yi - y[2 * j + 1];
            double pw = p->val[e] / (1 + dx * dx + dy * dy);
            a[0] += pw * dx;
            a[1] += pw * dy;
        }
        if (g->tree)
            repulse_tree(g, i, &z, r);
        else
            repulse_exact(g, i, &z, r);
        g->attr[2 * i] = a[0];
        g->attr[2 * i + 1] = a[1];
        g->rep[2 * i] = r[0];
        g->rep[2 * i + 1] = r[1];
        g->z[i] = z;
    }
}

/* Scratch for repeated gradients of n points. */
struct grad_ws {
    double *attr, *rep, *z;
    struct qtree tree;
};

static void ws_free(struct grad_ws *w)
{
    free(w->attr);
    free(w->rep);
    free(w->z);
    free(w->tree.nodes);
    free(w->tree.perm);
    free(w->tree.pos);
    free(w->tree.tmp);
    free(w->tree.py);
    memset(w, 0, sizeof *w);
}

static lvk_status ws_init(struct grad_ws *w, int n)
{
    memset(w, 0, sizeof *w);
    w->attr = lvk_calloc(2 * (size_t)n, sizeof *w->attr);
    w->rep = lvk_calloc(2 * (size_t)n, sizeof *w->rep);
    w->z = lvk_calloc((size_t)n, sizeof *w->z);
    w->tree.perm = lvk_calloc((size_t)n, sizeof(int));
    w->tree.pos = lvk_calloc((size_t)n, sizeof(int));
    w->tree.tmp = lvk_calloc((size_t)n, sizeof(int));
    w->tree.py = lvk_calloc(2 * (size_t)n, sizeof(float));
    if (!w->attr || !w->rep || !w->z || !w->tree.perm || !w->tree.pos || !w->tree.tmp ||
        !w->tree.py) {
        ws_free(w);
        return LVK_ERR_HOST_OOM;
    }
    return LVK_OK;
}

static lvk_status gradient(struct grad_ws *w, const struct lvk_tsne_p *p, const float *y,
                           double exaggeration, double theta, int threads, float *grad)
{
    struct grad_job g = {.p = p, .y = y, .attr = w->attr, .rep = w->rep, .z = w->z};
    if (theta > 0) {
        LVK_CHECK(qt_create(&w->tree, y, p->n, theta));
        g.tree = &w->tree;
    }
    parallel_rows(p->n, threads, grad_rows, &g);
    double z = 0;
    for (int i = 0; i < p->n; i++)
        z += w->z[i];
    for (int i = 0; i < 2 * p->n; i++)
        grad[i] = (float)(4 * (exaggeration * w->attr[i] - w->rep[i] / z));
    return LVK_OK;
}

lvk_status lvk_tsne_gradient(const struct lvk_tsne_p *p, const float *y, double exaggeration,
                             double theta, int threads, float *grad)
{
    struct grad_ws w;
    LVK_CHECK(ws_init(&w, p->n));
    lvk_status st = gradient(&w, p, y, exaggeration, theta, threads, grad);
    ws_free(&w);
    return st;
}

/* ---- optimisation --------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double unit(uint64_t *s)
{
    return ((splitmix64(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

lvk_status lvk_tsne_run(const struct lvk_tsne_p *p, const struct lvk_tsne_opts *o, float *y)
{
    int n = p->n;
    if (o->iterations < 0 || o->exaggeration_iters < 0 || !(o->early_exaggeration > 0) ||
        o->learning_rate < 0 || o->theta < 0)
        return lvk_fail(LVK_ERR_INVALID_ARG, "t-SNE: negative iterations, learning rate or theta, "
                        "or a non-positive exaggeration");
    /* Box-Muller pairs: the initial layout is N(0, 1e-4^2) per coordinate. */
    uint64_t s = o->seed;
    for (int i = 0; i < n; i++) {
        double r = sqrt(-2 * log(unit(&s))), a = 2 * M_PI * unit(&s);
        y[2 * i] = (float)(1e-4 * r * cos(a));
        y[2 * i + 1] = (float)(1e-4 * r * sin(a));
    }
    double lr = o->learning_rate > 0 ? o->learning_rate
                                     : fmax(n / o->early_exaggeration / 4, 50);
    float *grad = lvk_calloc(2 * (size_t)n, sizeof *grad);
    float *update = lvk_calloc(2 * (size_t)n, sizeof *update);
    float *gains = lvk_calloc(2 * (size_t)n, sizeof *gains);
    struct grad_ws w = {0};
    lvk_status st = grad && update && gains ? ws_init(&w, n) : LVK_ERR_HOST_OOM;
    for (int it = 0; it < o->iterations && st == LVK_OK; it++) {
        bool early = it < o->exaggeration_iters;
        if (it == 0 || it == o->exaggeration_iters) {
            /* Each phase starts afresh, as sklearn's two descent calls do. */
            for (int k = 0; k < 2 * n; k++) {
                update[k] = 0;
                gains[k] = 1;
            }
        }
        st = gradient(&w, p, y, early ? o->early_exaggeration : 1, o->theta, o->threads, grad);
        float momentum = early ? 0.5f : 0.8f;
        for (int k = 0; k < 2 * n && st == LVK_OK; k++) {
            /* Gains grow where the gradient changed sign against the last
             * step and shrink where it kept pushing the same way. */
            if ((update[k] * grad[k] < 0))
                gains[k] += 0.2f;
            else
                gains[k] = fmaxf(gains[k] * 0.8f, 0.01f);
            update[k] = momentum * update[k] - (float)lr * gains[k] * grad[k];
            y[k] += update[k];
        }
    }
    ws_free(&w);
    free(grad);
    free(update);
    free(gains);
    return st;
}
