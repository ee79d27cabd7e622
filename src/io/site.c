/* HTML generation for the atlas site (see site.h): escaping, the page
 * skeleton, and the index, layer and channel pages.
 *
 * Every string that comes from outside (tensor names, file names, device
 * names, paths) goes through lvk_html_text. URLs need no escaping beyond
 * that: every file the site links to has a name built from a slug
 * ([A-Za-z0-9._-]) and numbers. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/lvk_io.h"
#include "io/site.h"
#include "lvk_util.h"
#include "optvis/atlas.h"

/* ---- buffer ------------------------------------------------------------------------ */

static void reserve(struct lvk_html *h, size_t more)
{
    if (h->failed || h->len + more + 1 <= h->cap)
        return;
    size_t cap = h->cap ? h->cap : 4096;
    while (cap < h->len + more + 1)
        cap *= 2;
    char *b = realloc(h->buf, cap);
    if (!b) {
        h->failed = 1;
        return;
    }
    h->buf = b;
    h->cap = cap;
}

void lvk_html_raw(struct lvk_html *h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        h->failed = 1;
        return;
    }
    reserve(h, (size_t)n);
    if (h->failed)
        return;
    va_start(ap, fmt);
    vsnprintf(h->buf + h->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    h->len += (size_t)n;
}

void lvk_html_text(struct lvk_html *h, const char *s)
{
    for (; s && *s; s++) {
        const char *e = NULL;
        switch (*s) {
        case '&': e = "&amp;"; break;
        case '<': e = "&lt;"; break;
        case '>': e = "&gt;"; break;
        case '"': e = "&quot;"; break;
        case '\'': e = "&#39;"; break;
        }
        if (e) {
            lvk_html_raw(h, "%s", e);
        } else {
            reserve(h, 1);
            if (h->failed)
                return;
            h->buf[h->len++] = *s;
            h->buf[h->len] = 0;
        }
    }
}

lvk_status lvk_html_write(struct lvk_html *h, const char *path)
{
    lvk_status st = h->failed ? lvk_fail(LVK_ERR_HOST_OOM, "%s: out of memory building the page", path)
                              : lvk_write_file_atomic(path, h->buf ? h->buf : "", h->len);
    lvk_html_free(h);
    return st;
}

void lvk_html_free(struct lvk_html *h)
{
    free(h->buf);
    memset(h, 0, sizeof *h);
}

lvk_status lvk_mkdir_p(const char *dir)
{
    char p[4096];
    int n = snprintf(p, sizeof p, "%s", dir);
    if (n < 0 || (size_t)n >= sizeof p)
        return lvk_fail(LVK_ERR_INVALID_ARG, "directory name too long: %s", dir);
    for (char *s = p + 1; ; s++) {
        if (*s != '/' && *s)
            continue;
        char c = *s;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return lvk_fail(LVK_ERR_IO, "cannot create directory %s: %s", p, strerror(errno));
        *s = c;
        if (!c)
            break;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return lvk_fail(LVK_ERR_IO, "%s is not a directory", dir);
    return LVK_OK;
}

/* ---- pieces ------------------------------------------------------------------------- */

static const char k_css[] =
    ":root{--bg:#f6f6f4;--fg:#1d1d1b;--dim:#6b6b66;--line:#d9d9d4;--tile:#fff;--accent:#2050a0}\n"
    "*{box-sizing:border-box}\n"
    "body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,\"Segoe UI\","
    "sans-serif}\n"
    "header,main,footer{max-width:1200px;margin:0 auto;padding:0 20px}\n"
    "header{padding-top:18px}\n"
    "h1{font-size:1.5em;margin:.2em 0 .6em}h2{font-size:1.15em;margin:1.6em 0 .6em}\n"
    "a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}\n"
    "code{font:13px ui-monospace,Menlo,Consolas,monospace}\n"
    "nav{font-size:.9em;color:var(--dim)}nav a{margin-right:.3em}\n"
    "table{border-collapse:collapse;margin:.4em 0}\n"
    "td,th{border-bottom:1px solid var(--line);padding:4px 12px 4px 0;text-align:left;vertical-align:middle}\n"
    "th{font-weight:600;color:var(--dim)}\n"
    ".num{text-align:right;font-variant-numeric:tabular-nums}\n"
    ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(118px,1fr));gap:10px}\n"
    ".grid.big{grid-template-columns:repeat(auto-fill,minmax(180px,1fr))}\n"
    "figure{margin:0;background:var(--tile);border:1px solid var(--line);border-radius:4px;padding:4px}\n"
    "figure img,.missing{display:block;width:100%;height:auto;aspect-ratio:1}\n"
    "figcaption{font-size:.85em;color:var(--dim);padding-top:2px;text-align:center;overflow-wrap:anywhere}\n"
    ".missing{background:repeating-linear-gradient(45deg,#eee,#eee 6px,#e4e4e0 6px,#e4e4e0 12px)}\n"
    "img.px{image-rendering:pixelated}\n"
    ".strip img,.strip .missing{display:inline-block;width:44px;height:44px;margin-right:3px;"
    "vertical-align:middle}\n"
    ".hero{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}\n"
    ".hero figure{width:340px}\n"
    "footer{color:var(--dim);font-size:.85em;padding:30px 20px}\n";

static void page_begin(struct lvk_html *h, const char *root, const char *title)
{
    lvk_html_raw(h, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>");
    lvk_html_text(h, title);
    lvk_html_raw(h, "</title>\n<link rel=\"stylesheet\" href=\"%sstyle.css\">\n</head>\n<body>\n", root);
}

static void page_end(struct lvk_html *h)
{
    lvk_html_raw(h, "<footer>Rendered with lucid-vk: feature visualization on Vulkan compute.</footer>\n"
                    "</body>\n</html>\n");
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* An image of `file` (relative to the site root) shown from a page at
 * `root`, or an empty tile when the item is not done. */
static void image(struct lvk_html *h, const char *root, const char *file, int done, int w, const char *alt)
{
    if (!done) {
        lvk_html_raw(h, "<div class=\"missing\" title=\"not rendered\"></div>");
        return;
    }
    /* Small renders (a 28 px MNIST model) are scaled up; smoothing would
     * blur exactly the pixels the optimisation chose. */
    lvk_html_raw(h, "<img src=\"%s", root);
    lvk_html_text(h, file);
    lvk_html_raw(h, "\" alt=\"");
    lvk_html_text(h, alt);
    lvk_html_raw(h, "\"%s>", w > 0 && w < 96 ? " class=\"px\"" : "");
}

static void item_image(struct lvk_html *h, const struct lvk_atlas *a, const char *root, int item)
{
    char file[600], alt[400];
    const struct lvk_atlas_item *I = &a->items[item];
    lvk_atlas_item_file(a, item, file, sizeof file);
    snprintf(alt, sizeof alt, "%s channel %d, %s", a->layers[I->layer].name, I->channel,
             lvk_atlas_kind_str(I->kind));
    image(h, root, file, a->results[item].done, a->results[item].width, alt);
}

static void num(struct lvk_html *h, double v)
{
    if (isnan(v))
        lvk_html_raw(h, "&ndash;");
    else
        lvk_html_raw(h, "%.4g", v);
}

static void row_text(struct lvk_html *h, const char *key, const char *value)
{
    lvk_html_raw(h, "<tr><th>%s</th><td>", key);
    lvk_html_text(h, value);
    lvk_html_raw(h, "</td></tr>\n");
}

/* ---- index -------------------------------------------------------------------------- */

struct totals {
    int done, images;
    double seconds;      /* render units' wall time */
    const char *devices[4];
    int ndevices, more_devices;
};

static void count(const struct lvk_atlas *a, struct totals *t)
{
    memset(t, 0, sizeof *t);
    for (int u = 0; u < a->nunits; u++) {
        const struct lvk_atlas_unit *U = &a->units[u];
        if (!lvk_atlas_unit_done(a, u))
            continue;
        const struct lvk_atlas_result *r = &a->results[U->item0];
        t->images += U->nimages;
        t->seconds += r->seconds;
        int seen = 0;
        for (int d = 0; d < t->ndevices; d++)
            seen |= !strcmp(t->devices[d], r->device ? r->device : "");
        if (!seen && t->ndevices < 4)
            t->devices[t->ndevices++] = r->device ? r->device : "";
        else if (!seen)
            t->more_devices = 1;
    }
    t->done = lvk_atlas_done_items(a);
}

static lvk_status write_index(const struct lvk_atlas *a, const char *dir)
{
    struct lvk_html h = {0};
    struct totals t;
    char title[600], buf[600];
    const char *model = base_name(a->model_path);
    snprintf(title, sizeof title, "Atlas of %s", model);
    count(a, &t);
    page_begin(&h, "", title);
    lvk_html_raw(&h, "<header><h1>Atlas of <code>");
    lvk_html_text(&h, model);
    lvk_html_raw(&h, "</code></h1></header>\n<main>\n<h2>Model</h2>\n<table>\n");
    row_text(&h, "file", a->model_path);
    snprintf(buf, sizeof buf, "%.2f MB (%lld bytes), FNV-1a %s", (double)a->model_bytes / 1e6,
             (long long)a->model_bytes, a->model_hash);
    row_text(&h, "size", buf);
    snprintf(buf, sizeof buf, "[%d, %d, %d, %d]", a->input[0], a->input[1], a->input[2], a->input[3]);
    row_text(&h, "input", buf);
    snprintf(buf, sizeof buf, "%d", a->ntensors);
    row_text(&h, "tensors", buf);
    snprintf(buf, sizeof buf, "%d of %d", t.done, a->nitems);
    row_text(&h, "items", buf);
    if (t.seconds > 0) {
        snprintf(buf, sizeof buf, "%d images in %.1f device-hours (%.0f images per hour)", t.images,
                 t.seconds / 3600, t.images * 3600 / t.seconds);
        row_text(&h, "rendering", buf);
    }
    buf[0] = 0;
    for (int d = 0; d < t.ndevices; d++)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", d ? "; " : "", t.devices[d]);
    if (t.more_devices)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "; ...");
    if (t.ndevices)
        row_text(&h, "devices", buf);
    lvk_html_raw(&h, "</table>\n<h2>Settings</h2>\n<table>\n");
    const struct lvk_atlas_settings *s = &a->s;
    snprintf(buf, sizeof buf, "%d steps, Adam lr %g, %s parameterization%s, %s, %s", s->steps, (double)s->lr,
             s->pixel ? "pixel" : "spectral", s->pixel ? "" : (s->decay != 1 ? " (decay changed)" : ""),
             s->decorrelate ? "decorrelated colour" : "plain RGB",
             s->transforms ? "standard transforms" : "no transforms");
    row_text(&h, "optimisation", buf);
    if (s->size)
        snprintf(buf, sizeof buf, "%d px, %d per batch, seed %llu", s->size, s->batch, (unsigned long long)s->seed);
    else
        snprintf(buf, sizeof buf, "default size, %d per batch, seed %llu", s->batch, (unsigned long long)s->seed);
    row_text(&h, "images", buf);
    snprintf(buf, sizeof buf, "positive%s%s", s->negative ? ", negative" : "", s->diversity ? ", diverse" : "");
    if (s->diversity)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), " (%d images, weight %g)", s->diversity,
                 (double)s->diversity_weight);
    row_text(&h, "variants", buf);
    snprintf(buf, sizeof buf, "range [%g, %g], mean %g %g %g, std %g %g %g%s", (double)s->pre.lo,
             (double)s->pre.hi, (double)s->pre.mean[0], (double)s->pre.mean[1], (double)s->pre.mean[2],
             (double)s->pre.std[0], (double)s->pre.std[1], (double)s->pre.std[2], s->pre.bgr ? ", BGR" : "");
    row_text(&h, "preprocessing", buf);
    if (a->images_dir) {
        snprintf(buf, sizeof buf, "%d images in %s, top %d per channel", a->ndataset, a->images_dir, s->top);
        row_text(&h, "dataset", buf);
    }
    lvk_html_raw(&h, "</table>\n<h2>Layers</h2>\n<table>\n<tr><th>layer</th><th>shape</th>"
                     "<th class=\"num\">channels</th><th class=\"num\">done</th><th>first channels</th></tr>\n");
    for (int l = 0; l < a->nlayers; l++) {
        const struct lvk_atlas_layer *L = &a->layers[l];
        int done = 0, total = 0;
        for (int i = 0; i < a->nitems; i++)
            if (a->items[i].layer == l) {
                total++;
                done += a->results[i].done != 0;
            }
        lvk_html_raw(&h, "<tr><td><a href=\"layer/%s.html\"><code>", L->slug);
        lvk_html_text(&h, L->name);
        lvk_html_raw(&h, "</code></a></td><td>%d &times; %d &times; %d</td><td class=\"num\">%d</td>"
                         "<td class=\"num\">%d / %d</td><td class=\"strip\">",
                     L->c, L->h, L->w, L->nch, done, total);
        for (int c = 0; c < L->nch && c < 8; c++) {
            int it = lvk_atlas_find_item(a, l, L->channels[c], LVK_ATLAS_POSITIVE, 0);
            if (it >= 0)
                item_image(&h, a, "", it);
        }
        lvk_html_raw(&h, "</td></tr>\n");
    }
    lvk_html_raw(&h, "</table>\n<p>The full record of every item (settings, seed, device, time) is in "
                     "<a href=\"manifest.json\">manifest.json</a>.</p>\n</main>\n");
    page_end(&h);
    char path[4200];
    snprintf(path, sizeof path, "%s/index.html", dir);
    return lvk_html_write(&h, path);
}

/* ---- layer pages ----------------------------------------------------------------------- */

static lvk_status write_layer(const struct lvk_atlas *a, int l, const char *dir)
{
    const struct lvk_atlas_layer *L = &a->layers[l];
    struct lvk_html h = {0};
    char title[600];
    snprintf(title, sizeof title, "%s: %s", L->name, base_name(a->model_path));
    page_begin(&h, "../", title);
    lvk_html_raw(&h, "<header><nav><a href=\"../index.html\">");
    lvk_html_text(&h, base_name(a->model_path));
    lvk_html_raw(&h, "</a> &rsaquo;</nav><h1>Layer <code>");
    lvk_html_text(&h, L->name);
    lvk_html_raw(&h, "</code></h1><p>%d &times; %d &times; %d; %d channel%s shown, each rendered to maximise "
                     "its mean activation.</p></header>\n<main>\n<div class=\"grid\">\n",
                 L->c, L->h, L->w, L->nch, L->nch == 1 ? "" : "s");
    for (int c = 0; c < L->nch; c++) {
        int ch = L->channels[c];
        int it = lvk_atlas_find_item(a, l, ch, LVK_ATLAS_POSITIVE, 0);
        lvk_html_raw(&h, "<figure><a href=\"../channel/%s/%d.html\">", L->slug, ch);
        item_image(&h, a, "../", it);
        lvk_html_raw(&h, "</a><figcaption>%d</figcaption></figure>\n", ch);
    }
    lvk_html_raw(&h, "</div>\n</main>\n");
    page_end(&h);
    char path[4200];
    snprintf(path, sizeof path, "%s/layer/%s.html", dir, L->slug);
    return lvk_html_write(&h, path);
}

/* ---- channel pages --------------------------------------------------------------------- */

static void render_row(struct lvk_html *h, const struct lvk_atlas *a, int item, const char *label)
{
    const struct lvk_atlas_result *r = &a->results[item];
    const struct lvk_atlas_unit *U = &a->units[a->items[item].unit];
    lvk_html_raw(h, "<tr><td>%s</td>", label);
    if (!r->done) {
        lvk_html_raw(h, "<td colspan=\"5\">not rendered</td></tr>\n");
        return;
    }
    lvk_html_raw(h, "<td class=\"num\">");
    num(h, r->value_start);
    lvk_html_raw(h, "</td><td class=\"num\">");
    num(h, r->value_end);
    lvk_html_raw(h, "</td><td class=\"num\">%llu</td><td class=\"num\">%.1f s</td><td>",
                 (unsigned long long)U->seed, r->seconds);
    lvk_html_text(h, r->device);
    lvk_html_raw(h, ", ");
    lvk_html_text(h, r->time);
    lvk_html_raw(h, "</td></tr>\n");
}

static void figure(struct lvk_html *h, const struct lvk_atlas *a, int item, const char *caption)
{
    lvk_html_raw(h, "<figure>");
    item_image(h, a, "../../", item);
    lvk_html_raw(h, "<figcaption>%s</figcaption></figure>\n", caption);
}

static lvk_status write_channel(const struct lvk_atlas *a, int l, int c, const char *dir)
{
    const struct lvk_atlas_layer *L = &a->layers[l];
    int ch = L->channels[c];
    struct lvk_html h = {0};
    char title[600], cap[64];
    snprintf(title, sizeof title, "%s channel %d: %s", L->name, ch, base_name(a->model_path));
    page_begin(&h, "../../", title);
    lvk_html_raw(&h, "<header><nav><a href=\"../../index.html\">");
    lvk_html_text(&h, base_name(a->model_path));
    lvk_html_raw(&h, "</a> &rsaquo; <a href=\"../../layer/%s.html\"><code>", L->slug);
    lvk_html_text(&h, L->name);
    lvk_html_raw(&h, "</code></a> &rsaquo;");
    if (c > 0)
        lvk_html_raw(&h, " <a href=\"%d.html\">&larr; %d</a>", L->channels[c - 1], L->channels[c - 1]);
    if (c + 1 < L->nch)
        lvk_html_raw(&h, " <a href=\"%d.html\">%d &rarr;</a>", L->channels[c + 1], L->channels[c + 1]);
    lvk_html_raw(&h, "</nav><h1>Channel %d of <code>", ch);
    lvk_html_text(&h, L->name);
    lvk_html_raw(&h, "</code></h1></header>\n<main>\n<div class=\"hero\">\n");

    int pos = lvk_atlas_find_item(a, l, ch, LVK_ATLAS_POSITIVE, 0);
    int neg = lvk_atlas_find_item(a, l, ch, LVK_ATLAS_NEGATIVE, 0);
    figure(&h, a, pos, "maximised");
    if (neg >= 0)
        figure(&h, a, neg, "minimised (negative)");
    lvk_html_raw(&h, "</div>\n");
    if (a->s.diversity) {
        lvk_html_raw(&h, "<h2>Diverse</h2>\n<div class=\"grid big\">\n");
        for (int k = 0; k < a->s.diversity; k++) {
            snprintf(cap, sizeof cap, "diverse %d", k);
            figure(&h, a, lvk_atlas_find_item(a, l, ch, LVK_ATLAS_DIVERSE, k), cap);
        }
        lvk_html_raw(&h, "</div>\n");
    }

    lvk_html_raw(&h, "<h2>Renders</h2>\n<p>Objective: the channel's mean activation over positions, "
                     "on the randomly transformed image, at the first and last step.</p>\n<table>\n"
                     "<tr><th>variant</th><th class=\"num\">first step</th><th class=\"num\">last step</th>"
                     "<th class=\"num\">seed</th><th class=\"num\">batch time</th><th>device, finished</th></tr>\n");
    render_row(&h, a, pos, "maximised");
    if (neg >= 0)
        render_row(&h, a, neg, "minimised");
    for (int k = 0; k < a->s.diversity; k++) {
        snprintf(cap, sizeof cap, "diverse %d", k);
        render_row(&h, a, lvk_atlas_find_item(a, l, ch, LVK_ATLAS_DIVERSE, k), cap);
    }
    lvk_html_raw(&h, "</table>\n");

    int ex = lvk_atlas_find_item(a, l, ch, LVK_ATLAS_EXAMPLES, 0);
    if (ex >= 0) {
        const struct lvk_atlas_result *r = &a->results[ex];
        lvk_html_raw(&h, "<h2>Dataset examples</h2>\n");
        if (!r->done) {
            lvk_html_raw(&h, "<p>Not measured yet.</p>\n");
        } else {
            lvk_html_raw(&h, "<p>The channel's mean activation over %d images: mean ", r->nimages);
            num(&h, r->mean);
            lvk_html_raw(&h, ", standard deviation ");
            num(&h, r->std);
            lvk_html_raw(&h, ", range ");
            num(&h, r->min);
            lvk_html_raw(&h, " to ");
            num(&h, r->max);
            lvk_html_raw(&h, ", above zero on %.0f%% of them.", 100 * r->positive);
            if (r->done && pos >= 0 && a->results[pos].done && r->max > 0)
                lvk_html_raw(&h, " The render reached %.3gx the dataset's highest.",
                             a->results[pos].value_end / r->max);
            lvk_html_raw(&h, "</p>\n<div class=\"grid big\">\n");
            for (int e = 0; e < r->nex; e++) {
                lvk_html_raw(&h, "<figure>");
                image(&h, "../../", r->ex[e].file, 1, a->input[3], r->ex[e].source);
                lvk_html_raw(&h, "<figcaption>");
                lvk_html_text(&h, r->ex[e].source);
                lvk_html_raw(&h, "<br>");
                num(&h, r->ex[e].value);
                lvk_html_raw(&h, "</figcaption></figure>\n");
            }
            lvk_html_raw(&h, "</div>\n");
        }
    }
    lvk_html_raw(&h, "</main>\n");
    page_end(&h);
    char path[4200];
    snprintf(path, sizeof path, "%s/channel/%s/%d.html", dir, L->slug, ch);
    return lvk_html_write(&h, path);
}

lvk_status lvk_site_write(const struct lvk_atlas *a, const char *dir)
{
    char path[4200];
    LVK_CHECK(lvk_mkdir_p(dir));
    snprintf(path, sizeof path, "%s/style.css", dir);
    LVK_CHECK(lvk_write_file_atomic(path, k_css, sizeof k_css - 1));
    snprintf(path, sizeof path, "%s/layer", dir);
    LVK_CHECK(lvk_mkdir_p(path));
    for (int l = 0; l < a->nlayers; l++) {
        LVK_CHECK(write_layer(a, l, dir));
        snprintf(path, sizeof path, "%s/channel/%s", dir, a->layers[l].slug);
        LVK_CHECK(lvk_mkdir_p(path));
        for (int c = 0; c < a->layers[l].nch; c++)
            LVK_CHECK(write_channel(a, l, c, dir));
    }
    /* The index last: while it is missing the site is not finished. */
    return write_index(a, dir);
}
