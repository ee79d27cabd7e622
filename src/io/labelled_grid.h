/* Labelled image grids: equal-sized cells on rows and columns with thin
 * gutters, a label to the left of every row and above every column, drawn
 * with the built-in bitmap font (io/font.h). Used for neuron interaction
 * grids, layer sweeps and positive/negative panels.
 *
 * Geometry (g = gutter, cells shown at zoom z, so cw = z*w, ch = z*h):
 *
 *   +--g--+--label_w--+--g--+--cw--+--g--+--cw--+--g--+
 *   |     |           |     | col label  |  col label |   label_h rows (+g)
 *   | row label       |     | cell       |  cell      |
 *
 * x0 = g + (row labels ? label_w + g : 0), y0 = g + (column labels ?
 * label_h + g : 0); cell (r, c) has its top-left at (x0 + c*(cw+g),
 * y0 + r*(ch+g)); the image is (x0 + cols*(cw+g)) x (y0 + rows*(ch+g)).
 * Labels wrap onto several lines, preferably after '/', '_', ':', '-', ','
 * or ' ': a column label to the cell width, a row label to the wider of the
 * cell width and 12 characters; a row label with more lines than fit beside
 * its cell keeps its last lines (where a tensor name says most). */
#ifndef LVK_LABELLED_GRID_H
#define LVK_LABELLED_GRID_H

#include "io/lvk_io.h"

struct lvk_labelled_grid {
    int rows, cols;
    int c, h, w;                    /* every cell is c x h x w (c: 1 or 3) */
    const float *cells;             /* [rows*cols, c, h, w], values in [0,1], row by row */
    const char *const *row_labels;  /* [rows], or NULL for none */
    const char *const *col_labels;  /* [cols], or NULL for none */
    int gutter;                     /* pixels between and around cells */
    int zoom;                       /* nearest-neighbour upscale of the cells; 0: 1 */
    int font_scale;                 /* 0: 1 */
    float bg;                       /* background; labels are drawn in 1 - bg */
};

struct lvk_grid_geometry {
    int width, height;              /* the whole image */
    int x0, y0;                     /* top-left of cell (0, 0) */
    int cell_w, cell_h;             /* cells as shown (zoomed) */
    int pitch_x, pitch_y;           /* cell_w + gutter, cell_h + gutter */
    int label_w, label_h;           /* row-label strip width, column-label strip height */
};

/* Computes the layout without drawing. Fails with LVK_ERR_INVALID_ARG on
 * empty grids, a negative gutter, or a channel count other than 1 or 3. */
lvk_status lvk_labelled_grid_geometry(const struct lvk_labelled_grid *g, struct lvk_grid_geometry *out);

/* Draws the grid into a new image (free with lvk_image_free). */
lvk_status lvk_labelled_grid_render(const struct lvk_labelled_grid *g, struct lvk_image *out);

/* Crops every one of n planar images [n, c, h, w] by `top` rows and `left`
 * columns at the start and `bottom` rows and `right` columns at the end into
 * a malloc'd [n, c, h - top - bottom, w - left - right] array. */
lvk_status lvk_images_crop(const float *images, int n, int c, int h, int w, int top, int left,
                           int bottom, int right, float **out);

#endif
