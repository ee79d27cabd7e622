/* A tiny built-in bitmap font for labels on image sheets: printable ASCII
 * (32..126) as 5x7 glyphs on a 6x8 cell (one column and one row of
 * spacing), scaled by whole pixels. Anything else is drawn as '?'. */
#ifndef LVK_FONT_H
#define LVK_FONT_H

#include "io/lvk_io.h"

#define LVK_FONT_GLYPH_W 5
#define LVK_FONT_GLYPH_H 7
#define LVK_FONT_ADVANCE 6 /* horizontal pitch per character, at scale 1 */
#define LVK_FONT_LINE    8 /* vertical pitch per line, at scale 1 */

/* The glyph of `ch`: 7 rows, top first; bit 4 of each row is the leftmost
 * column. */
const unsigned char *lvk_font_glyph(char ch);

/* Width in pixels of `n` characters at `scale`: the advance of each, less
 * the spacing column after the last (0 for n == 0). */
int lvk_font_width(int n, int scale);

/* Draws the first `n` characters of `text` (fewer if it ends sooner) with
 * the top-left corner of the first glyph at (x, y), ink value `ink[ch]` in
 * every channel ch of `img` (img->c values). Only glyph pixels are written;
 * pixels outside the image are clipped. */
void lvk_font_draw(struct lvk_image *img, int x, int y, const char *text, int n, int scale,
                   const float *ink);

#endif
