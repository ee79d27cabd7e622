/* Colormaps: lookups into matplotlib's 256-entry tables (generated into
 * colormap_tables.h by tests/ref/make_colormaps.py) with matplotlib's
 * float-to-index rule, and a colour bar image.
 *
 * Non-goals: interpolation between entries (matplotlib does none for
 * N = 256 either), alpha, "bad"/"over"/"under" colours other than the ends. */
#include <math.h>
#include <string.h>

#include "io/colormap.h"
#include "io/colormap_tables.h"
#include "lvk_util.h"

static const char *const k_names[] = {
    [LVK_CMAP_GRAY] = "gray", [LVK_CMAP_VIRIDIS] = "viridis", [LVK_CMAP_MAGMA] = "magma",
    [LVK_CMAP_INFERNO] = "inferno", [LVK_CMAP_PLASMA] = "plasma",
};
_Static_assert(LVK_ARRAY_LEN(k_names) == LVK_ARRAY_LEN(k_cmap_tables), "one table per name");

lvk_status lvk_cmap_parse(const char *name, enum lvk_cmap *out)
{
    for (size_t i = 0; i < LVK_ARRAY_LEN(k_names); i++)
        if (name && !strcmp(name, k_names[i])) {
            *out = (enum lvk_cmap)i;
            return LVK_OK;
        }
    return lvk_fail(LVK_ERR_INVALID_ARG, "unknown colormap '%s' (choose viridis, magma, "
                    "inferno, plasma or gray)", name ? name : "(null)");
}

const char *lvk_cmap_name(enum lvk_cmap c)
{
    return (unsigned)c < LVK_ARRAY_LEN(k_names) ? k_names[c] : "?";
}

void lvk_cmap_rgb(enum lvk_cmap c, float t, float rgb[3])
{
    if ((unsigned)c >= LVK_ARRAY_LEN(k_names))
        c = LVK_CMAP_GRAY;
    /* matplotlib: index = int(t * N) with t == 1 mapped to N - 1, values
     * below 0 to the first entry and above 1 to the last. The product is
     * taken in double, as numpy does, so boundaries (t = k/256) agree. */
    int i = 0;
    if (t > 0) {
        double x = floor((double)t * 256.0);
        i = x >= 255.0 ? 255 : (int)x;
    }
    memcpy(rgb, k_cmap_tables[c][i], 3 * sizeof(float));
}

lvk_status lvk_cmap_bar(enum lvk_cmap c, int w, int h, struct lvk_image *out)
{
    LVK_CHECK(lvk_image_alloc(out, w, h, 3));
    size_t plane = (size_t)w * (size_t)h;
    for (int y = 0; y < h; y++) {
        /* Row centres sampled evenly from 1 at the top to 0 at the bottom,
         * so each of the 256 colours gets an equal band. */
        float rgb[3];
        lvk_cmap_rgb(c, (float)((h - 1 - y + 0.5) / h), rgb);
        for (int x = 0; x < w; x++)
            for (int k = 0; k < 3; k++)
                out->data[k * plane + (size_t)y * w + x] = rgb[k];
    }
    return LVK_OK;
}
