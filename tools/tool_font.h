/* tools/tool_font.h: a tiny built-in bitmap font for labels on images (apd-export --sheet).
 *
 * Glyphs are 5 x 7 pixels in a 6 x 8 cell (one column and one row of spacing): digits,
 * A-Z, space and - _ . , / ( ) : ' + & # ? !. Lower-case letters are drawn as capitals; any
 * other character, and each UTF-8 sequence, as '?'. Every pixel can be scaled up by an
 * integer factor.
 */
#ifndef APD_TOOL_FONT_H
#define APD_TOOL_FONT_H

#include <stdint.h>

#define TOOL_FONT_CELL_W 6u
#define TOOL_FONT_CELL_H 8u

/* Characters tool_font_draw draws for text (UTF-8 sequences count once). */
uint32_t tool_font_chars(const char *text);
/* Width in pixels of text at scale (chars * 6 * scale). */
uint32_t tool_font_width(const char *text, uint32_t scale);
/* Draw text with its top-left cell corner at (x, y) into a CHW image of c planes of h x w,
 * every channel set to value; pixels outside the image are skipped. At most max_chars
 * characters (0 = all). */
void tool_font_draw(uint8_t *img, uint32_t c, uint32_t h, uint32_t w, int64_t x, int64_t y,
                    const char *text, uint32_t max_chars, uint32_t scale, uint8_t value);

#endif
