/* Feature-map grids and activation-maximization panels (see features.h).
 * Host-side drawing of activations the model computed; the only device work
 * is the forward pass behind lvk_am_panel_cells. */
#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/features.h"
#include "io/font.h"
#include "io/labelled_grid.h"
#include "lvk_util.h"

/* ---- labelled tiles --------------------------------------------------------------------- */

lvk_status lvk_tiles_render(const float *tiles, int n, int th, int tw, int cols,
                            const char *const *labels1, const char *const *labels2,
                            const char *title, struct lvk_image *out)
{
    if (n < 1 || th < 1 || tw < 1)
        return lvk_fail(LVK_ERR_INVALID_ARG, "no tiles to draw (%d tiles of %d x %d)", n, th, tw);
    const int gut = 4, lines = (labels1 != NULL) + (labels2 != NULL);
    const int label_h = lines ? lines * LVK_FONT_LINE + 2 : 0;
    /* Wide enough for 7 characters of label. */
    const int cell_w = LVK_MAX(tw, lines ? lvk_font_width(7, 1) : 0), cell_h = label_h + th;
    if (cols <= 0)
        cols = LVK_MAX(1, (int)ceil(sqrt((double)n * cell_h / cell_w)));
    cols = LVK_MIN(cols, n);
    const int rows = (n + cols - 1) / cols;
    const int title_h = title ? LVK_FONT_LINE + gut : 0;
    const int width = LVK_MAX(gut + cols * (cell_w + gut),
                              title ? 2 * gut + lvk_font_width((int)strlen(title), 1) : 0);
    LVK_CHECK(lvk_image_alloc(out, width, gut + title_h + rows * (cell_h + gut), 3));
    const size_t plane = (size_t)out->w * out->h, tplane = (size_t)th * tw;
    for (size_t i = 0; i < 3 * plane; i++)
        out->data[i] = 1.0f;
    const float ink[3] = {0, 0, 0};
    if (title)
        lvk_font_draw(out, gut, gut, title, (int)strlen(title), 1, ink);
    for (int j = 0; j < n; j++) {
        const int x0 = gut + (j % cols) * (cell_w + gut);
        const int y0 = gut + title_h + (j / cols) * (cell_h + gut);
        int line = 0;
        if (labels1 && labels1[j])
            lvk_font_draw(out, x0, y0, labels1[j], (int)strlen(labels1[j]), 1, ink);
        line += labels1 != NULL;
        if (labels2 && labels2[j])
            lvk_font_draw(out, x0, y0 + line * LVK_FONT_LINE, labels2[j], (int)strlen(labels2[j]), 1, ink);
        const float *t = tiles + (size_t)j * 3 * tplane;
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < th; y++)
                memcpy(out->data + c * plane + (size_t)(y0 + label_h + y) * out->w + x0,
                       t + c * tplane + (size_t)y * tw, (size_t)tw * sizeof(float));
    }
    return LVK_OK;
}

/* ---- feature-map grids ---------------------------------------------------------------------- */

void lvk_fmap_colour(const float *map, int H, int W, int zoom, float lo, float hi,
                     enum lvk_cmap cmap, float *rgb)
{
    const int h = H * zoom, w = W * zoom;
    const size_t plane = (size_t)h * w;
    const float inv = hi > lo ? 1.0f / (hi - lo) : 0.0f;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float t = (map[(y / zoom) * W + x / zoom] - lo) * inv, c[3];
            lvk_cmap_rgb(cmap, t, c);
            for (int k = 0; k < 3; k++)
                rgb[k * plane + (size_t)y * w + x] = c[k];
        }
}

static void range_of(const float *a, size_t n, float *lo, float *hi)
{
    for (size_t i = 0; i < n; i++) {
        *lo = fminf(*lo, a[i]);
        *hi = fmaxf(*hi, a[i]);
    }
}

lvk_status lvk_fmap_grid(const float *act, int C, int H, int W, const struct lvk_fmap_opts *o,
                         struct lvk_image *out)
{
    const int n = o->channels ? o->nchannels : C;
    if (n < 1 || H < 1 || W < 1)
        return lvk_fail(LVK_ERR_INVALID_ARG, "no feature maps to draw");
    for (int j = 0; o->channels && j < n; j++)
        if (o->channels[j] < 0 || o->channels[j] >= C)
            return lvk_fail(LVK_ERR_INVALID_ARG, "channel %d out of range: the layer has %d (0-%d)",
                            o->channels[j], C, C - 1);
    const int zoom = o->zoom > 0 ? o->zoom : LVK_MAX(1, (48 + LVK_MAX(H, W) - 1) / LVK_MAX(H, W));
    const int th = H * zoom, tw = W * zoom;
    const size_t plane = (size_t)H * W, tsize = 3 * (size_t)th * tw;
    float *tiles = malloc((size_t)n * tsize * sizeof *tiles);
    char (*names)[16] = malloc((size_t)n * sizeof *names);
    const char **labels = malloc((size_t)n * sizeof *labels);
    if (!tiles || !names || !labels) {
        free(tiles); free(names); free(labels);
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    }
    float slo = FLT_MAX, shi = -FLT_MAX;
    for (int j = 0; j < n; j++)
        range_of(act + (size_t)(o->channels ? o->channels[j] : j) * plane, plane, &slo, &shi);
    for (int j = 0; j < n; j++) {
        const int ch = o->channels ? o->channels[j] : j;
        const float *map = act + (size_t)ch * plane;
        float lo = slo, hi = shi;
        if (o->norm == LVK_FMAP_PER_MAP) {
            lo = FLT_MAX;
            hi = -FLT_MAX;
            range_of(map, plane, &lo, &hi);
        }
        lvk_fmap_colour(map, H, W, zoom, lo, hi, o->cmap, tiles + (size_t)j * tsize);
        snprintf(names[j], sizeof names[j], "%d", ch);
        labels[j] = names[j];
    }
    char title[512];
    if (o->title)
        snprintf(title, sizeof title, "%s  [%.3g, %.3g]%s", o->title, (double)slo, (double)shi,
                 o->norm == LVK_FMAP_PER_MAP ? ", each map scaled to its own range" : "");
    lvk_status st = lvk_tiles_render(tiles, n, th, tw, o->cols, labels, NULL, o->title ? title : NULL, out);
    free(tiles);
    free(names);
    free(labels);
    return st;
}

lvk_status lvk_channels_parse(const char *s, int max, int **out, int *n)
{
    *out = NULL;
    *n = 0;
    int cap = 16, cnt = 0;
    int *v = malloc((size_t)cap * sizeof *v);
    if (!v)
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    const char *p = s;
    while (*p == ' ' || *p == '[')
        p++;
    while (*p && *p != ']') {
        char *end;
        long a = strtol(p, &end, 10), b = a;
        if (end == p)
            goto bad;
        p = end;
        if (*p == '-') {
            b = strtol(p + 1, &end, 10);
            if (end == p + 1)
                goto bad;
            p = end;
        }
        if (a < 0 || b < a || b >= max) {
            free(v);
            return lvk_fail(LVK_ERR_INVALID_ARG, "channels \"%s\": %ld-%ld out of range (0-%d)", s, a, b,
                            max - 1);
        }
        for (long c = a; c <= b; c++) {
            if (cnt == cap) {
                int *nv = realloc(v, (size_t)(cap *= 2) * sizeof *v);
                if (!nv) {
                    free(v);
                    return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
                }
                v = nv;
            }
            v[cnt++] = (int)c;
        }
        while (*p == ' ')
            p++;
        if (*p == ',')
            p++;
        else if (*p && *p != ']')
            goto bad;
        while (*p == ' ')
            p++;
    }
    if (cnt == 0)
        goto bad;
    *out = v;
    *n = cnt;
    return LVK_OK;
bad:
    free(v);
    return lvk_fail(LVK_ERR_INVALID_ARG,
                    "channels \"%s\": expected indices and ranges such as 0-7,12 (at column %d)", s,
                    (int)(p - s) + 1);
}

/* ---- activation-maximization panels ------------------------------------------------------ */

/* The mean over p's channels of the layer's maps for image img [C, H, W]:
 * map [h, w]. */
static lvk_status layer_map(const struct lvk_am_panel *p, const float *img, int C, int H, int W,
                            float *map, int *mh, int *mw)
{
    struct lvk_tensor_info in, lt;
    LVK_CHECK(lvk_model_tensor_find(p->m, lvk_model_input_name(p->m), &in));
    LVK_CHECK(lvk_model_tensor_find(p->m, p->layer, &lt));
    if (lt.ndim != 4) {
        char sh[64];
        snprintf(sh, sizeof sh, "%d-D", lt.ndim);
        return lvk_fail(LVK_ERR_INVALID_ARG, "panel: layer '%s' is %s, not a feature map [N, K, h, w]",
                        p->layer, sh);
    }
    if (in.ndim != 4 || in.shape[1] != C)
        return lvk_fail(LVK_ERR_INVALID_ARG, "panel: images have %d channels, the model's input '%s' "
                        "has %lld", C, in.name, (long long)(in.ndim == 4 ? in.shape[1] : 0));
    const int B = (int)in.shape[0], mH = (int)in.shape[2], mW = (int)in.shape[3];
    const int K = (int)lt.shape[1];
    *mh = (int)lt.shape[2];
    *mw = (int)lt.shape[3];
    const size_t one = (size_t)C * mH * mW, lplane = (size_t)*mh * *mw;
    for (int j = 0; p->channels && j < p->nchannels; j++)
        if (p->channels[j] < 0 || p->channels[j] >= K)
            return lvk_fail(LVK_ERR_INVALID_ARG, "panel: channel %d out of range: '%s' has %d",
                            p->channels[j], p->layer, K);

    struct lvk_image src = {.w = W, .h = H, .c = C, .data = (float *)img}, sized = {0};
    float *x = malloc((size_t)B * one * sizeof *x);
    float *act = malloc((size_t)B * K * lplane * sizeof *act);
    lvk_status st = (x && act) ? LVK_OK : lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    if (st == LVK_OK && (W != mW || H != mH))
        st = lvk_image_resize(&src, mW, mH, &sized);
    if (st == LVK_OK) {
        /* Every image of the batch gets the same input; image 0 is read. */
        for (int b = 0; b < B; b++) {
            memcpy(x + b * one, sized.data ? sized.data : img, one * sizeof *x);
            lvk_preproc_apply(p->pre, x + b * one, C, mH, mW);
        }
        st = lvk_model_set_input(p->m, in.name, x, (size_t)B * one);
    }
    if (st == LVK_OK) st = lvk_model_forward(p->m);
    if (st == LVK_OK) st = lvk_model_read(p->m, p->layer, act, (size_t)B * K * lplane);
    if (st == LVK_OK) {
        const int n = p->channels ? p->nchannels : K;
        for (size_t i = 0; i < lplane; i++) {
            double s = 0;
            for (int j = 0; j < n; j++)
                s += act[(size_t)(p->channels ? p->channels[j] : j) * lplane + i];
            map[i] = (float)(s / n);
        }
    }
    lvk_image_free(&sized);
    free(x);
    free(act);
    return st;
}

/* Nearest-neighbour resampling of a map [h, w] to [H, W]. */
static void nearest(const float *src, int h, int w, float *dst, int H, int W)
{
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            dst[y * W + x] = src[(int)((long)y * h / H) * w + (int)((long)x * w / W)];
}

lvk_status lvk_am_panel_cells(const struct lvk_am_panel *p, const float *initial, const float *result,
                              int C, int H, int W, float *cells)
{
    if (C != 1 && C != 3)
        return lvk_fail(LVK_ERR_INVALID_ARG, "panel: images need 1 or 3 channels, not %d", C);
    struct lvk_tensor_info lt;
    LVK_CHECK(lvk_model_tensor_find(p->m, p->layer, &lt));
    const size_t lplane = lt.ndim == 4 ? (size_t)lt.shape[2] * lt.shape[3] : 1, plane = (size_t)H * W;
    float *maps = malloc(2 * lplane * sizeof *maps), *up = malloc(plane * sizeof *up);
    lvk_status st = (maps && up) ? LVK_OK : lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    int mh = 0, mw = 0;
    if (st == LVK_OK) st = layer_map(p, initial, C, H, W, maps, &mh, &mw);
    if (st == LVK_OK) st = layer_map(p, result, C, H, W, maps + lplane, &mh, &mw);
    if (st == LVK_OK) {
        for (int k = 0; k < 2; k++) {
            const float *img = k ? result : initial;
            for (int c = 0; c < 3; c++)
                memcpy(cells + ((size_t)k * 3 + c) * plane, img + (size_t)(C == 3 ? c : 0) * plane,
                       plane * sizeof *cells);
        }
        /* One range for both maps: the comparison is the point. */
        float lo = FLT_MAX, hi = -FLT_MAX;
        range_of(maps, 2 * lplane, &lo, &hi);
        for (int k = 0; k < 2; k++) {
            nearest(maps + k * lplane, mh, mw, up, H, W);
            lvk_fmap_colour(up, H, W, 1, lo, hi, p->cmap, cells + (size_t)(2 + k) * 3 * plane);
        }
    }
    free(maps);
    free(up);
    return st;
}

lvk_status lvk_am_panels(const struct lvk_am_panel *p, int n, const float *initials,
                         const float *results, int C, int H, int W,
                         const char *const *row_labels, struct lvk_image *out)
{
    if (n < 1)
        return lvk_fail(LVK_ERR_INVALID_ARG, "panel: no images");
    const size_t one = (size_t)C * H * W, cell = 3 * (size_t)H * W;
    float *cells = malloc((size_t)n * 4 * cell * sizeof *cells);
    if (!cells)
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    lvk_status st = LVK_OK;
    for (int i = 0; i < n && st == LVK_OK; i++)
        st = lvk_am_panel_cells(p, initials + i * one, results + i * one, C, H, W, cells + i * 4 * cell);
    static const char *const cols[4] = {"initial", "optimized", "map(initial)", "map(optimized)"};
    struct lvk_labelled_grid g = {
        .rows = n, .cols = 4, .c = 3, .h = H, .w = W, .cells = cells,
        .row_labels = row_labels, .col_labels = cols, .gutter = 4, .zoom = 1, .bg = 1.0f};
    if (st == LVK_OK)
        st = lvk_labelled_grid_render(&g, out);
    free(cells);
    return st;
}
