/* Scattered-point interpolation onto a grid: convex hull and its pixel
 * mask, nearest neighbour through a bucket grid, and linear interpolation
 * on a Delaunay triangulation computed by qhull (Debian's libqhull-dev,
 * reentrant libqhull_r).
 *
 * Geometry runs in double on the float coordinates, so the results do not
 * depend on evaluation order. Non-goals: cubic interpolation,
 * extrapolation outside the hull. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* open_memstream */
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/interp.h"
#include "lvk_util.h"

#include <libqhull_r/qhull_ra.h>

/* ---- convex hull ------------------------------------------------------------------------ */

static const float *g_sort_xy; /* qsort has no context argument */

static int by_xy(const void *a, const void *b)
{
    const float *p = g_sort_xy + 2 * *(const int *)a, *q = g_sort_xy + 2 * *(const int *)b;
    if (p[0] != q[0])
        return p[0] < q[0] ? -1 : 1;
    return (p[1] > q[1]) - (p[1] < q[1]);
}

/* > 0 when o -> a -> b turns left. */
static double cross(const float *o, const float *a, const float *b)
{
    return ((double)a[0] - o[0]) * ((double)b[1] - o[1]) - ((double)a[1] - o[1]) * ((double)b[0] - o[0]);
}

lvk_status lvk_convex_hull(const float *xy, int n, int *hull, int *nhull)
{
    *nhull = 0;
    int *idx = lvk_calloc((size_t)LVK_MAX(n, 1), sizeof *idx);
    if (!idx)
        return LVK_ERR_HOST_OOM;
    for (int i = 0; i < n; i++)
        idx[i] = i;
    g_sort_xy = xy;
    qsort(idx, (size_t)n, sizeof *idx, by_xy);
    /* Lower hull left to right, then upper hull right to left; popping on
     * non-left turns drops collinear points and duplicates. */
    int *h = lvk_calloc(2 * (size_t)n + 2, sizeof *h);
    if (!h) {
        free(idx);
        return LVK_ERR_HOST_OOM;
    }
    int k = 0;
    for (int a = 0; a < n; a++) {
        while (k >= 2 && cross(xy + 2 * h[k - 2], xy + 2 * h[k - 1], xy + 2 * idx[a]) <= 0)
            k--;
        h[k++] = idx[a];
    }
    for (int a = n - 2, lower = k + 1; a >= 0; a--) {
        while (k >= lower && cross(xy + 2 * h[k - 2], xy + 2 * h[k - 1], xy + 2 * idx[a]) <= 0)
            k--;
        h[k++] = idx[a];
    }
    k = LVK_MAX(k - 1, 0); /* the last point repeats the first */
    free(idx);
    if (k < 3) {
        free(h);
        return lvk_fail(LVK_ERR_INVALID_ARG, "the %d points do not span an area (collinear or "
                        "too few): nothing to interpolate", n);
    }
    memcpy(hull, h, (size_t)k * sizeof *hull);
    free(h);
    *nhull = k;
    return LVK_OK;
}

/* Columns [*c0, *c1) of row r whose centres lie inside or on the hull. */
static void hull_span(const float *xy, const int *hull, int nh, int r, int res, int *c0, int *c1)
{
    double py = lvk_grid_y(r, res), lo = -INFINITY, hi = INFINITY;
    for (int e = 0; e < nh; e++) {
        const float *a = xy + 2 * hull[e], *b = xy + 2 * hull[(e + 1) % nh];
        /* Inside means left of a -> b: (bx-ax)(py-ay) - (by-ay)(px-ax) >= 0,
         * a bound on px unless the edge is horizontal. */
        double ex = (double)b[0] - a[0], ey = (double)b[1] - a[1];
        double k = ex * (py - a[1]);
        if (ey > 0)
            hi = fmin(hi, a[0] + k / ey);
        else if (ey < 0)
            lo = fmax(lo, a[0] + k / ey);
        else if (k < 0)
            hi = -INFINITY;
    }
    /* Column c is inside when lo <= x_c <= hi, x_c = -1 + (2c + 1) / res. */
    *c0 = 0;
    *c1 = 0;
    if (!(lo <= hi))
        return;
    double f0 = ceil(((lo + 1) * res - 1) / 2), f1 = floor(((hi + 1) * res - 1) / 2);
    int a = (int)fmax(0, fmin(res, f0)), b = (int)fmax(-1, fmin(res - 1, f1)) + 1;
    /* The rounding above can be off by one at the edges: settle with the
     * exact comparison. */
    while (a > 0 && lvk_grid_x(a - 1, res) >= lo)
        a--;
    while (a < res && lvk_grid_x(a, res) < lo)
        a++;
    while (b < res && lvk_grid_x(b, res) <= hi)
        b++;
    while (b > a && lvk_grid_x(b - 1, res) > hi)
        b--;
    *c0 = a;
    *c1 = LVK_MAX(a, b);
}

static lvk_status mask_from_hull(const float *xy, const int *hull, int nh, int res, uint8_t *mask)
{
    memset(mask, 0, (size_t)res * res);
    for (int r = 0; r < res; r++) {
        int c0, c1;
        hull_span(xy, hull, nh, r, res, &c0, &c1);
        memset(mask + (size_t)r * res + c0, 1, (size_t)(c1 - c0));
    }
    return LVK_OK;
}

static lvk_status check_args(int n, int res)
{
    if (n < 3 || res < 1)
        return lvk_fail(LVK_ERR_INVALID_ARG, "interpolation needs at least 3 points and a grid of "
                        "at least 1 pixel (got %d points, %d pixels)", n, res);
    return LVK_OK;
}

lvk_status lvk_hull_mask(const float *xy, int n, int res, uint8_t *mask)
{
    LVK_CHECK(check_args(n, res));
    int *hull = lvk_calloc((size_t)n, sizeof *hull), nh;
    if (!hull)
        return LVK_ERR_HOST_OOM;
    lvk_status st = lvk_convex_hull(xy, n, hull, &nh);
    if (st == LVK_OK)
        st = mask_from_hull(xy, hull, nh, res, mask);
    free(hull);
    return st;
}

/* Mask as bytes, allocated. */
static lvk_status hull_mask_alloc(const float *xy, int n, int res, uint8_t **mask)
{
    *mask = lvk_calloc((size_t)res * res, 1);
    if (!*mask)
        return LVK_ERR_HOST_OOM;
    lvk_status st = lvk_hull_mask(xy, n, res, *mask);
    if (st != LVK_OK) {
        free(*mask);
        *mask = NULL;
    }
    return st;
}

/* ---- nearest ------------------------------------------------------------------------------ */

lvk_status lvk_interp_nearest(const float *xy, const float *v, int n, int res, float *grid)
{
    LVK_CHECK(check_args(n, res));
    uint8_t *mask;
    LVK_CHECK(hull_mask_alloc(xy, n, res, &mask));
    /* Bucket the points on a g x g grid over their bounding box (about two
     * per bucket), then search rings of buckets outwards from each pixel. */
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < n; i++) {
        x0 = fmin(x0, xy[2 * i]);
        x1 = fmax(x1, xy[2 * i]);
        y0 = fmin(y0, xy[2 * i + 1]);
        y1 = fmax(y1, xy[2 * i + 1]);
    }
    int g = LVK_MAX(1, (int)sqrt(n / 2.0));
    double cw = fmax(x1 - x0, 1e-30) / g, ch = fmax(y1 - y0, 1e-30) / g, cmin = fmin(cw, ch);
    int *start = lvk_calloc((size_t)g * g + 1, sizeof *start);
    int *pts = lvk_calloc((size_t)n, sizeof *pts), *cell = lvk_calloc((size_t)n, sizeof *cell);
    if (!start || !pts || !cell) {
        free(mask); free(start); free(pts); free(cell);
        return LVK_ERR_HOST_OOM;
    }
#define BUCKET(px, py)                                                                   \
    (LVK_MIN(g - 1, LVK_MAX(0, (int)(((py) - y0) / ch))) * g +                           \
     LVK_MIN(g - 1, LVK_MAX(0, (int)(((px) - x0) / cw))))
    for (int i = 0; i < n; i++) {
        cell[i] = BUCKET((double)xy[2 * i], (double)xy[2 * i + 1]);
        start[cell[i] + 1]++;
    }
    for (int b = 0; b < g * g; b++)
        start[b + 1] += start[b];
    /* Fill each bucket in index order, which moves start[b] to the end of
     * bucket b; shift back so bucket b is [start[b], start[b + 1]). */
    for (int i = 0; i < n; i++)
        pts[start[cell[i]]++] = i;
    for (int b = g * g; b > 0; b--)
        start[b] = start[b - 1];
    start[0] = 0;
    for (int r = 0; r < res; r++) {
        double py = lvk_grid_y(r, res);
        for (int c = 0; c < res; c++) {
            float *out = grid + (size_t)r * res + c;
            if (!mask[(size_t)r * res + c]) {
                *out = NAN;
                continue;
            }
            double px = lvk_grid_x(c, res);
            int b = BUCKET(px, py), bx = b % g, by = b / g, best = -1;
            double bd = INFINITY;
            for (int ring = 0; ring <= g; ring++) {
                for (int j = by - ring; j <= by + ring; j++) {
                    if (j < 0 || j >= g)
                        continue;
                    /* Only the ring's border: all columns on its top and
                     * bottom rows, the two ends elsewhere. */
                    int step = (j == by - ring || j == by + ring) ? 1 : LVK_MAX(2 * ring, 1);
                    for (int i = bx - ring; i <= bx + ring; i += step) {
                        if (i < 0 || i >= g)
                            continue;
                        for (int a = start[j * g + i]; a < start[j * g + i + 1]; a++) {
                            int p = pts[a];
                            double dx = px - xy[2 * p], dy = py - xy[2 * p + 1];
                            double d = dx * dx + dy * dy;
                            if (d < bd || (d == bd && p < best)) {
                                bd = d;
                                best = p;
                            }
                        }
                    }
                }
                /* Buckets beyond this ring are at least ring * cmin away. */
                if (best >= 0 && bd < (ring * cmin) * (ring * cmin))
                    break;
            }
            *out = v[best];
        }
    }
#undef BUCKET
    free(mask); free(start); free(pts); free(cell);
    return LVK_OK;
}

/* ---- linear --------------------------------------------------------------------------------- */

/* Fills the pixels of triangle (a, b, c) that the mask allows. A pixel on a
 * shared edge is written by both triangles with the same value up to
 * rounding; the small tolerance keeps edge pixels from falling between
 * triangles. */
static void raster_triangle(const float *xy, const float *v, int a, int b, int c, int res,
                            const uint8_t *mask, float *grid)
{
    double ax = xy[2 * a], ay = xy[2 * a + 1], bx = xy[2 * b], by = xy[2 * b + 1];
    double cx = xy[2 * c], cy = xy[2 * c + 1];
    double area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax);
    double scale = fmax(fmax(fabs(bx - ax), fabs(cx - ax)), fmax(fabs(by - ay), fabs(cy - ay)));
    if (fabs(area) <= 1e-12 * scale * scale)
        return; /* degenerate: its neighbours cover the same pixels */
    const double tol = -1e-9;
    double xmin = fmin(ax, fmin(bx, cx)), xmax = fmax(ax, fmax(bx, cx));
    double ymin = fmin(ay, fmin(by, cy)), ymax = fmax(ay, fmax(by, cy));
    /* Rows and columns whose centres may fall inside the bounding box. */
    int c0 = LVK_MAX(0, (int)floor(((xmin + 1) * res - 1) / 2) - 1);
    int c1 = LVK_MIN(res - 1, (int)ceil(((xmax + 1) * res - 1) / 2) + 1);
    int r0 = LVK_MAX(0, (int)floor(((1 - ymax) * res - 1) / 2) - 1);
    int r1 = LVK_MIN(res - 1, (int)ceil(((1 - ymin) * res - 1) / 2) + 1);
    for (int r = r0; r <= r1; r++) {
        double py = lvk_grid_y(r, res);
        for (int col = c0; col <= c1; col++) {
            size_t o = (size_t)r * res + col;
            if (!mask[o])
                continue;
            double px = lvk_grid_x(col, res);
            double la = ((bx - px) * (cy - py) - (by - py) * (cx - px)) / area;
            double lb = ((cx - px) * (ay - py) - (cy - py) * (ax - px)) / area;
            double lc = 1 - la - lb;
            if (la >= tol && lb >= tol && lc >= tol)
                grid[o] = (float)(la * v[a] + lb * v[b] + lc * v[c]);
        }
    }
}

lvk_status lvk_interp_linear(const float *xy, const float *v, int n, int res, float *grid)
{
    LVK_CHECK(check_args(n, res));
    uint8_t *mask;
    LVK_CHECK(hull_mask_alloc(xy, n, res, &mask));
    for (size_t i = 0; i < (size_t)res * res; i++)
        grid[i] = NAN;
    coordT *pts = lvk_calloc(2 * (size_t)n, sizeof *pts);
    char *err = NULL;
    size_t errlen = 0;
    FILE *errf = open_memstream(&err, &errlen);
    if (!pts || !errf) {
        free(mask);
        free(pts);
        if (errf)
            fclose(errf);
        free(err);
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory (triangulation)");
    }
    for (int i = 0; i < 2 * n; i++)
        pts[i] = xy[i];
    qhT qh_storage, *qh = &qh_storage;
    qh_zero(qh, errf);
    char cmd[] = "qhull d Qbb Qc Qz Q12 Qt";
    int code = qh_new_qhull(qh, 2, n, pts, False, cmd, NULL, errf);
    lvk_status st = LVK_OK;
    if (code == 0) {
        facetT *facet;
        vertexT *vertex, **vertexp;
        FORALLfacets {
            if (facet->upperdelaunay)
                continue;
            int id[3], k = 0;
            FOREACHvertex_(facet->vertices) {
                if (k < 3)
                    id[k] = qh_pointid(qh, vertex->point);
                k++;
            }
            if (k == 3)
                raster_triangle(xy, v, id[0], id[1], id[2], res, mask, grid);
        }
    }
    qh_freeqhull(qh, !qh_ALL);
    int curlong, totlong;
    qh_memfreeshort(qh, &curlong, &totlong);
    fclose(errf);
    if (code != 0) {
        /* qhull's message, first line only. */
        char *nl = err ? strchr(err, '\n') : NULL;
        if (nl)
            *nl = 0;
        st = lvk_fail(LVK_ERR_INVALID_ARG, "Delaunay triangulation of %d points failed: %s", n,
                      err && *err ? err : "qhull error");
    }
    free(err);
    free(pts);
    free(mask);
    return st;
}
