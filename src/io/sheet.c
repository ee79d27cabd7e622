/* Contact sheets: many images of one size on one grid. */
#include <math.h>
#include <string.h>

#include "io/lvk_io.h"
#include "lvk_util.h"

lvk_status lvk_image_sheet(const float *images, int n, int c, int h, int w, int cols, int gutter,
                           float bg, struct lvk_image *out)
{
    if (n < 1 || c < 1 || h < 1 || w < 1 || gutter < 0)
        return lvk_fail(LVK_ERR_INVALID_ARG, "contact sheet of %d images of %dx%dx%d", n, c, h, w);
    if (cols <= 0)
        cols = (int)ceil(sqrt((double)n));
    cols = LVK_MIN(cols, n);
    int rows = (n + cols - 1) / cols;
    int sw = cols * w + (cols + 1) * gutter, sh = rows * h + (rows + 1) * gutter;
    LVK_CHECK(lvk_image_alloc(out, sw, sh, c));
    size_t plane = (size_t)sw * (size_t)sh;
    for (size_t i = 0; i < plane * (size_t)c; i++)
        out->data[i] = bg;
    for (int k = 0; k < n; k++) {
        int x0 = gutter + (k % cols) * (w + gutter), y0 = gutter + (k / cols) * (h + gutter);
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < h; y++)
                memcpy(out->data + ch * plane + (size_t)(y0 + y) * sw + x0,
                       images + (((size_t)k * c + ch) * h + y) * w, (size_t)w * sizeof(float));
    }
    return LVK_OK;
}
