/* File formats lucid-vk reads and writes: PNG images, numpy .npy arrays,
 * JSON, IDX (MNIST-style datasets), plus atomic whole-file writes.
 *
 * Every writer goes through a temporary file in the destination directory
 * that is renamed into place, so a crash never leaves a half-written file.
 * Every reader validates what it parses and fails with a message naming the
 * file and the problem (lvk_last_error()). */
#ifndef LVK_IO_H
#define LVK_IO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lucidvk/status.h"

/* ---- atomic files --------------------------------------------------------- */

/* Opens "<path>.tmp.<pid>" for writing. Write to *out, then call
 * lvk_atomic_commit() (fclose + fsync + rename) or lvk_atomic_abort()
 * (fclose + unlink). tmp must hold at least strlen(path) + 32 bytes. */
lvk_status lvk_atomic_open(const char *path, char *tmp, size_t tmplen, FILE **out);
lvk_status lvk_atomic_commit(FILE *f, const char *tmp, const char *path);
void lvk_atomic_abort(FILE *f, const char *tmp);

/* Writes `len` bytes to `path` atomically. */
lvk_status lvk_write_file_atomic(const char *path, const void *data, size_t len);

/* Reads a whole file into a malloc'd buffer (NUL-terminated, not counted in *len). */
lvk_status lvk_read_file(const char *path, uint8_t **data, size_t *len);

/* 64-bit FNV-1a of `len` bytes, continuing from h (LVK_FNV1A64_BASIS to
 * start): the names and checksums of cached files, a model file's hash. */
#define LVK_FNV1A64_BASIS 0xcbf29ce484222325ull
uint64_t lvk_fnv1a64(uint64_t h, const void *data, size_t len);

/* ---- images ----------------------------------------------------------------- */

/* A planar float image: data[c*h*w + y*w + x], values in [0,1]. */
struct lvk_image {
    int w, h, c; /* c is 1 (gray) or 3 (RGB) */
    float *data;
};

/* Reads any PNG (gray, gray+alpha, palette, RGB, RGBA, 8 or 16 bit). Alpha is
 * dropped; gray stays 1 channel unless want_c == 3 (replicated), RGB becomes
 * luminance (0.299, 0.587, 0.114) when want_c == 1. want_c == 0 keeps the
 * file's own channel count. */
lvk_status lvk_png_read(const char *path, int want_c, struct lvk_image *out);

/* Writes 8-bit gray (c == 1) or RGB (c == 3), values clamped to [0,1] and
 * rounded. Atomic. */
lvk_status lvk_png_write(const char *path, const struct lvk_image *img);

/* Bilinear resize (align_corners = false, half-pixel centres, edge clamp, the
 * convention of PyTorch's F.interpolate(mode="bilinear", antialias=False)). */
lvk_status lvk_image_resize(const struct lvk_image *src, int w, int h, struct lvk_image *out);

/* Nearest-neighbour enlargement by an integer factor z >= 1 (every pixel
 * becomes a z x z block): for looking at small images, e.g. 28-px renders. */
lvk_status lvk_image_zoom(const struct lvk_image *src, int z, struct lvk_image *out);
/* The same, replacing img (which the caller owns) by its enlargement; z = 1
 * leaves it as it is. On failure img is unchanged. */
lvk_status lvk_image_zoom_in_place(struct lvk_image *img, int z);

lvk_status lvk_image_alloc(struct lvk_image *img, int w, int h, int c);
void lvk_image_free(struct lvk_image *img);

/* Lays out `n` planar images (each c x h x w, consecutive in `images`) on a
 * grid of `cols` columns (0: a near-square grid) with `gutter` pixels of
 * value `bg` between and around them: a contact sheet. */
lvk_status lvk_image_sheet(const float *images, int n, int c, int h, int w, int cols, int gutter,
                           float bg, struct lvk_image *out);

/* ---- numpy .npy ------------------------------------------------------------- */

#define LVK_NPY_MAX_DIMS 8

/* An array read from .npy: always converted to float32 C order. */
struct lvk_npy {
    int ndim;
    int64_t shape[LVK_NPY_MAX_DIMS];
    size_t count; /* product of shape */
    float *data;
};

/* Reads '<f4', '<f8', '<i8', '<i4', '|u1' arrays in C order (format 1.0-3.0);
 * Fortran order and other dtypes fail with LVK_ERR_UNSUPPORTED. */
lvk_status lvk_npy_read(const char *path, struct lvk_npy *out);

/* Writes a float32 C-order array (format 1.0), atomically. */
lvk_status lvk_npy_write(const char *path, const float *data, int ndim, const int64_t *shape);

void lvk_npy_free(struct lvk_npy *a);

/* ---- JSON ------------------------------------------------------------------- */

enum lvk_json_type {
    LVK_JSON_NULL, LVK_JSON_BOOL, LVK_JSON_NUMBER, LVK_JSON_STRING,
    LVK_JSON_ARRAY, LVK_JSON_OBJECT
};

/* Parsed JSON tree. Arrays and objects keep their children in order; object
 * children have a key. */
struct lvk_json {
    enum lvk_json_type type;
    char *key;       /* member name inside an object, else NULL */
    double number;   /* NUMBER, and BOOL as 0/1 */
    char *string;    /* STRING (UTF-8, escapes decoded) */
    struct lvk_json *child; /* first child (ARRAY, OBJECT) */
    struct lvk_json *next;  /* next sibling */
    size_t count;    /* number of children */
};

lvk_status lvk_json_parse(const char *text, size_t len, struct lvk_json **out);
lvk_status lvk_json_read(const char *path, struct lvk_json **out);
void lvk_json_free(struct lvk_json *j);
/* Member lookup / index; NULL when absent or not of that container type. */
const struct lvk_json *lvk_json_get(const struct lvk_json *obj, const char *key);
const struct lvk_json *lvk_json_at(const struct lvk_json *arr, size_t i);

/* Streaming writer into a growable buffer: commas, indentation and string
 * escaping are handled; numbers are written with enough digits to round-trip
 * (%.9g for floats, %.17g for doubles). */
struct lvk_jw {
    char *buf;
    size_t len, cap;
    int depth;
    int need_comma;
    int after_key;
    int failed; /* set on out-of-memory; lvk_jw_finish() then fails */
};
void lvk_jw_begin_object(struct lvk_jw *w);
void lvk_jw_end_object(struct lvk_jw *w);
void lvk_jw_begin_array(struct lvk_jw *w);
void lvk_jw_end_array(struct lvk_jw *w);
void lvk_jw_key(struct lvk_jw *w, const char *key);
void lvk_jw_string(struct lvk_jw *w, const char *s);
void lvk_jw_number(struct lvk_jw *w, double v);
void lvk_jw_int(struct lvk_jw *w, int64_t v);
void lvk_jw_bool(struct lvk_jw *w, int v);
void lvk_jw_null(struct lvk_jw *w);
/* Writes the document atomically to path and frees the buffer. */
lvk_status lvk_jw_write(struct lvk_jw *w, const char *path);
void lvk_jw_free(struct lvk_jw *w);

/* ---- IDX (MNIST / Fashion-MNIST), optionally gzip-compressed ---------------- */

/* Reads an IDX file (".gz" is decompressed with zlib). Only unsigned-byte
 * data (type 0x08) is supported; dims in out->shape, values as raw 0..255
 * floats in out->data. Wrong magic, truncation and size mismatch fail with
 * LVK_ERR_FORMAT naming the file. */
lvk_status lvk_idx_read(const char *path, struct lvk_npy *out);

#endif
