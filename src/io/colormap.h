/* Colormaps: exact 256-entry tables of matplotlib's perceptually uniform maps
 * (viridis, magma, inferno, plasma) and gray, for feature maps, attribution
 * heat maps and response maps. */
#ifndef LVK_COLORMAP_H
#define LVK_COLORMAP_H

#include "io/lvk_io.h"

enum lvk_cmap { LVK_CMAP_GRAY, LVK_CMAP_VIRIDIS, LVK_CMAP_MAGMA, LVK_CMAP_INFERNO, LVK_CMAP_PLASMA };

/* Parses "gray", "viridis", ...; LVK_ERR_INVALID_ARG naming the choices. */
lvk_status lvk_cmap_parse(const char *name, enum lvk_cmap *out);
const char *lvk_cmap_name(enum lvk_cmap c);

/* t in [0,1] (clamped; NaN gives the low end) to RGB in [0,1], as
 * matplotlib's ListedColormap with 256 entries: index floor(t * 256),
 * clamped to 255. */
void lvk_cmap_rgb(enum lvk_cmap c, float t, float rgb[3]);

/* A vertical colour bar image (low at the bottom), w x h RGB. */
lvk_status lvk_cmap_bar(enum lvk_cmap c, int w, int h, struct lvk_image *out);

#endif
