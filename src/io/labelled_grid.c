/* Labelled image grids (see labelled_grid.h for the geometry). Plain host
 * code: the images are small and drawn once. */
#include <stdlib.h>
#include <string.h>

#include "io/font.h"
#include "io/labelled_grid.h"
#include "lvk_util.h"

#define MAX_LINES 64
#define ROW_LABEL_MIN_CHARS 12

struct lines {
    int n;
    int start[MAX_LINES], len[MAX_LINES];
};

static int is_break(char ch)
{
    return ch == '/' || ch == '_' || ch == ':' || ch == '-' || ch == ',' || ch == ' ';
}

/* Greedy wrap of s into lines of at most k characters, breaking after the
 * last break character that fits, or hard at k when there is none. */
static void wrap(const char *s, int k, struct lines *l)
{
    int n = (int)strlen(s), at = 0;
    l->n = 0;
    while (at < n && l->n < MAX_LINES) {
        int take = n - at;
        if (take > k) {
            take = k;
            for (int j = k; j > 1; j--)
                if (is_break(s[at + j - 1])) {
                    take = j;
                    break;
                }
        }
        l->start[l->n] = at;
        l->len[l->n] = take;
        l->n++;
        at += take;
    }
}

/* Characters per line that fit in `px` pixels (at least 1). */
static int chars_in(int px, int scale)
{
    int k = (px + (LVK_FONT_ADVANCE - LVK_FONT_GLYPH_W) * scale) / (LVK_FONT_ADVANCE * scale);
    return LVK_MAX(k, 1);
}

static int max_len(const struct lines *l)
{
    int m = 0;
    for (int i = 0; i < l->n; i++)
        m = LVK_MAX(m, l->len[i]);
    return m;
}

/* Height in pixels of n lines: the last one without its spacing row. */
static int lines_height(int n, int scale)
{
    return n > 0 ? (n * LVK_FONT_LINE - (LVK_FONT_LINE - LVK_FONT_GLYPH_H)) * scale : 0;
}

lvk_status lvk_labelled_grid_geometry(const struct lvk_labelled_grid *g, struct lvk_grid_geometry *out)
{
    memset(out, 0, sizeof *out);
    if (g->rows < 1 || g->cols < 1 || g->h < 1 || g->w < 1 || g->gutter < 0 || g->zoom < 0 ||
        g->font_scale < 0 || (g->c != 1 && g->c != 3))
        return lvk_fail(LVK_ERR_INVALID_ARG, "labelled grid of %dx%d cells of %dx%dx%d (gutter %d)",
                        g->rows, g->cols, g->c, g->h, g->w, g->gutter);
    int z = g->zoom ? g->zoom : 1, sc = g->font_scale ? g->font_scale : 1, gut = g->gutter;
    out->cell_w = g->w * z;
    out->cell_h = g->h * z;
    out->pitch_x = out->cell_w + gut;
    out->pitch_y = out->cell_h + gut;
    struct lines l;
    if (g->col_labels) {
        int k = chars_in(out->cell_w, sc), most = 0;
        for (int i = 0; i < g->cols; i++) {
            wrap(g->col_labels[i] ? g->col_labels[i] : "", k, &l);
            most = LVK_MAX(most, l.n);
        }
        out->label_h = lines_height(most, sc);
    }
    if (g->row_labels) {
        int k = LVK_MAX(chars_in(out->cell_w, sc), ROW_LABEL_MIN_CHARS), widest = 0;
        for (int i = 0; i < g->rows; i++) {
            wrap(g->row_labels[i] ? g->row_labels[i] : "", k, &l);
            widest = LVK_MAX(widest, max_len(&l));
        }
        out->label_w = lvk_font_width(widest, sc);
    }
    out->x0 = gut + (g->row_labels ? out->label_w + gut : 0);
    out->y0 = gut + (g->col_labels ? out->label_h + gut : 0);
    out->width = out->x0 + g->cols * out->pitch_x;
    out->height = out->y0 + g->rows * out->pitch_y;
    return LVK_OK;
}

lvk_status lvk_labelled_grid_render(const struct lvk_labelled_grid *g, struct lvk_image *out)
{
    struct lvk_grid_geometry geo;
    memset(out, 0, sizeof *out);
    LVK_CHECK(lvk_labelled_grid_geometry(g, &geo));
    LVK_CHECK(lvk_image_alloc(out, geo.width, geo.height, g->c));
    size_t plane = (size_t)geo.width * (size_t)geo.height;
    for (size_t i = 0; i < plane * (size_t)g->c; i++)
        out->data[i] = g->bg;
    int z = g->zoom ? g->zoom : 1, sc = g->font_scale ? g->font_scale : 1;
    size_t cell = (size_t)g->c * g->h * g->w;
    for (int r = 0; r < g->rows; r++)
        for (int col = 0; col < g->cols; col++) {
            const float *src = g->cells + (size_t)(r * g->cols + col) * cell;
            int x0 = geo.x0 + col * geo.pitch_x, y0 = geo.y0 + r * geo.pitch_y;
            for (int ch = 0; ch < g->c; ch++)
                for (int y = 0; y < geo.cell_h; y++) {
                    float *dst = out->data + ch * plane + (size_t)(y0 + y) * geo.width + x0;
                    const float *row = src + ((size_t)ch * g->h + y / z) * g->w;
                    for (int x = 0; x < geo.cell_w; x++)
                        dst[x] = row[x / z];
                }
        }

    float ink[3] = {1.0f - g->bg, 1.0f - g->bg, 1.0f - g->bg};
    struct lines l;
    if (g->col_labels) {
        /* Centred over the column, the last line just above the cells. */
        int k = chars_in(geo.cell_w, sc);
        for (int col = 0; col < g->cols; col++) {
            wrap(g->col_labels[col] ? g->col_labels[col] : "", k, &l);
            int y = geo.y0 - g->gutter - lines_height(l.n, sc);
            for (int i = 0; i < l.n; i++) {
                int x = geo.x0 + col * geo.pitch_x + (geo.cell_w - lvk_font_width(l.len[i], sc)) / 2;
                lvk_font_draw(out, x, y + i * LVK_FONT_LINE * sc, g->col_labels[col] + l.start[i],
                              l.len[i], sc, ink);
            }
        }
    }
    if (g->row_labels) {
        /* Left-aligned in the strip, centred on the row's height. */
        int k = LVK_MAX(chars_in(geo.cell_w, sc), ROW_LABEL_MIN_CHARS);
        int fit = LVK_MAX(1, (geo.cell_h + (LVK_FONT_LINE - LVK_FONT_GLYPH_H) * sc) / (LVK_FONT_LINE * sc));
        for (int r = 0; r < g->rows; r++) {
            wrap(g->row_labels[r] ? g->row_labels[r] : "", k, &l);
            int first = LVK_MAX(0, l.n - fit), n = l.n - first;
            int y = geo.y0 + r * geo.pitch_y + (geo.cell_h - lines_height(n, sc)) / 2;
            for (int i = 0; i < n; i++)
                lvk_font_draw(out, g->gutter, y + i * LVK_FONT_LINE * sc,
                              g->row_labels[r] + l.start[first + i], l.len[first + i], sc, ink);
        }
    }
    return LVK_OK;
}

lvk_status lvk_images_crop(const float *images, int n, int c, int h, int w, int top, int left,
                           int bottom, int right, float **out)
{
    int ch_ = h - top - bottom, cw = w - left - right;
    *out = NULL;
    if (n < 1 || c < 1 || top < 0 || left < 0 || bottom < 0 || right < 0 || ch_ < 1 || cw < 1)
        return lvk_fail(LVK_ERR_INVALID_ARG, "cannot crop %dx%d images by %d,%d (top, left) and %d,%d",
                        h, w, top, left, bottom, right);
    float *o = malloc((size_t)n * c * ch_ * cw * sizeof *o);
    if (!o)
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory cropping %d images", n);
    for (int p = 0; p < n * c; p++)
        for (int y = 0; y < ch_; y++)
            memcpy(o + ((size_t)p * ch_ + y) * cw, images + ((size_t)p * h + top + y) * w + left,
                   (size_t)cw * sizeof *o);
    *out = o;
    return LVK_OK;
}
