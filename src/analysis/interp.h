/* Interpolation of values at scattered 2-D points onto a square grid, for
 * response maps: the points live in [-1, 1]^2 and the grid of res x res
 * pixels covers that square, row 0 at the top (y = +1). Pixel (row r,
 * column c) is sampled at its centre, x = lvk_grid_x(c, res),
 * y = lvk_grid_y(r, res). Pixels outside the convex hull of the points are
 * NaN ("blank") for both methods. */
#ifndef LVK_INTERP_H
#define LVK_INTERP_H

#include <stdint.h>

#include "lucidvk/status.h"

static inline double lvk_grid_x(int c, int res) { return -1.0 + (2.0 * c + 1.0) / res; }
static inline double lvk_grid_y(int r, int res) { return 1.0 - (2.0 * r + 1.0) / res; }

/* Convex hull of xy [n, 2] (Andrew's monotone chain): indices of its
 * corners, counter-clockwise, collinear points and duplicates left out.
 * hull must hold n ints. Fails (LVK_ERR_INVALID_ARG) when the points do not
 * span an area (fewer than 3 corners). */
lvk_status lvk_convex_hull(const float *xy, int n, int *hull, int *nhull);

/* mask [res, res]: 1 where the pixel centre lies inside or on the hull. */
lvk_status lvk_hull_mask(const float *xy, int n, int res, uint8_t *mask);

/* grid [res, res]: each pixel inside the hull takes the value of the
 * nearest point (the lowest index among equally near ones). */
lvk_status lvk_interp_nearest(const float *xy, const float *v, int n, int res, float *grid);

/* grid [res, res]: barycentric interpolation on the Delaunay triangulation
 * of the points (qhull, options "d Qbb Qc Qz Q12 Qt" as scipy's griddata
 * uses), so a linear function of the coordinates is reproduced exactly. */
lvk_status lvk_interp_linear(const float *xy, const float *v, int n, int res, float *grid);

#endif
