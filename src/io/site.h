/* The atlas as a static site: plain HTML and one stylesheet, no scripts,
 * no external assets, every link relative, so it opens from disk (file://)
 * or from any static web server.
 *
 *   index.html                      model summary, settings, layer list
 *   layer/<slug>.html               a grid of every channel's render
 *   channel/<slug>/<c>.html         one channel: render, variants, top
 *                                   dataset examples, statistics
 *   style.css
 * Items not rendered yet (a partial merge) show as an empty tile rather
 * than a broken image. */
#ifndef LVK_SITE_H
#define LVK_SITE_H

#include <stddef.h>

#include "lucidvk/status.h"

struct lvk_atlas;

/* A growable HTML buffer. Out of memory is sticky: `failed` is set, later
 * appends do nothing and lvk_html_write fails. */
struct lvk_html {
    char *buf;
    size_t len, cap;
    int failed;
};

/* Appends raw markup (printf-style). */
void lvk_html_raw(struct lvk_html *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends text with & < > " ' escaped, so it is safe both between tags and
 * inside a quoted attribute value. */
void lvk_html_text(struct lvk_html *h, const char *s);
/* Writes the buffer atomically to `path` and frees it. */
lvk_status lvk_html_write(struct lvk_html *h, const char *path);
void lvk_html_free(struct lvk_html *h);

/* mkdir -p: creates `dir` and its missing parents (mode 0755). */
lvk_status lvk_mkdir_p(const char *dir);

/* Writes every page of the site and style.css into `dir` from the atlas
 * (its done results). Files are written atomically, one by one. */
lvk_status lvk_site_write(const struct lvk_atlas *a, const char *dir);

#endif
