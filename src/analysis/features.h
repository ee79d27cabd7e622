/* Feature maps: what one layer computes for one image, drawn as a labelled
 * grid of activation maps, and the activation-maximization panels that put
 * a rendered image next to the feature maps it produces (the NeuroVis "AM
 * matrix": initial image, optimized image, and the target layer's map for
 * each).
 *
 * Maps are shown black (low) to white (high), or through a colormap.
 * Normalisation is shared (one range, the lowest and highest value over
 * every map drawn, so maps compare) or per map (each its own range, so weak
 * maps show their shape). A map with no range (constant) is drawn at the
 * low end. */
#ifndef LVK_ANALYSIS_FEATURES_H
#define LVK_ANALYSIS_FEATURES_H

#include "io/colormap.h"
#include "io/lvk_io.h"
#include "lucidvk/lucidvk.h"
#include "lucidvk/preproc.h"

/* ---- labelled tiles ------------------------------------------------------------------ */

/* Lays out n RGB tiles [n, 3, th, tw] (values in [0, 1]) row by row on a
 * near-square grid (cols 0) with a white background, up to two lines of
 * dark label text above each tile (labels1/labels2, each [n] or NULL), and
 * an optional title line on top (the image widens to fit it). */
lvk_status lvk_tiles_render(const float *tiles, int n, int th, int tw, int cols,
                            const char *const *labels1, const char *const *labels2,
                            const char *title, struct lvk_image *out);

/* ---- feature-map grids ---------------------------------------------------------------- */

enum lvk_fmap_norm { LVK_FMAP_SHARED, LVK_FMAP_PER_MAP };

struct lvk_fmap_opts {
    const int *channels;      /* channels to draw, in this order; NULL: all */
    int nchannels;
    enum lvk_cmap cmap;       /* LVK_CMAP_GRAY: black low, white high */
    enum lvk_fmap_norm norm;
    int zoom;                 /* nearest-neighbour upscale; 0: to at least 48 px */
    int cols;                 /* 0: near-square */
    const char *title;        /* NULL: none */
};

/* Draws the maps of act [C, H, W] (one image), each labelled with its
 * channel index. Fails with LVK_ERR_INVALID_ARG for channels out of range. */
lvk_status lvk_fmap_grid(const float *act, int C, int H, int W, const struct lvk_fmap_opts *o,
                         struct lvk_image *out);

/* Colours one map [H, W] into rgb [3, H*zoom, W*zoom] (nearest-neighbour
 * zoom) with values lo..hi mapped to the colormap's ends. */
void lvk_fmap_colour(const float *map, int H, int W, int zoom, float lo, float hi,
                     enum lvk_cmap cmap, float *rgb);

/* Parses a channel list "0-7,12,20-23" (inclusive ranges, optionally in
 * brackets) into a malloc'd array; every index must be < max. */
lvk_status lvk_channels_parse(const char *s, int max, int **out, int *n);

/* ---- activation-maximization panels ---------------------------------------------------- */

struct lvk_am_panel {
    lvk_model_t *m;                 /* finalized, `layer` computed; any batch (image 0 is used) */
    const struct lvk_preproc *pre;  /* the model's preprocessing */
    const char *layer;              /* [N, K, h, w] */
    const int *channels;            /* the map is the mean of these channels; NULL: all K */
    int nchannels;
    enum lvk_cmap cmap;
};

/* One panel row: cells [4, 3, H, W] = initial image, optimized image, the
 * layer's map for the initial image, the map for the optimized image. The
 * images are [C, H, W] in [0, 1] (C 1 or 3) at any size: they are resized
 * to the model's input to compute the maps, which are upsampled
 * (nearest-neighbour) to H x W. Both maps share one range, so brighter
 * means more activation. The model's input buffer is overwritten. */
lvk_status lvk_am_panel_cells(const struct lvk_am_panel *p, const float *initial, const float *result,
                              int C, int H, int W, float *cells);

/* n panel rows as one labelled image: columns "initial", "optimized",
 * "map(initial)", "map(optimized)"; row_labels [n] or NULL. initials and
 * results hold n images [n, C, H, W] each. */
lvk_status lvk_am_panels(const struct lvk_am_panel *p, int n, const float *initials,
                         const float *results, int C, int H, int W,
                         const char *const *row_labels, struct lvk_image *out);

#endif
