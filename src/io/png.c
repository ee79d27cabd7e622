/* PNG reading and writing through libpng, planar float images, and the
 * bilinear resize used to feed images to networks.
 *
 * Pixel values are taken as stored: no gamma or colour-profile correction,
 * which is what image-loading pipelines used for training (PIL, torchvision)
 * do as well. Only 8-bit gray/RGB is written; alpha is never kept. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <png.h>
#include <string.h>
#include <sys/stat.h>

#include "io/lvk_io.h"
#include "lvk_util.h"

lvk_status lvk_image_alloc(struct lvk_image *img, int w, int h, int c)
{
    memset(img, 0, sizeof *img);
    if (w <= 0 || h <= 0 || (c != 1 && c != 3))
        return lvk_fail(LVK_ERR_INVALID_ARG, "invalid image size %dx%dx%d", w, h, c);
    size_t n = (size_t)w * (size_t)h;
    if (n > SIZE_MAX / sizeof(float) / (size_t)c)
        return lvk_fail(LVK_ERR_HOST_OOM, "image %dx%dx%d too large", w, h, c);
    img->data = lvk_calloc(n * (size_t)c, sizeof(float));
    if (!img->data)
        return LVK_ERR_HOST_OOM;
    img->w = w;
    img->h = h;
    img->c = c;
    return LVK_OK;
}

void lvk_image_free(struct lvk_image *img)
{
    if (!img)
        return;
    free(img->data);
    memset(img, 0, sizeof *img);
}

/* State shared with libpng's callbacks. Everything that changes between
 * setjmp and a possible longjmp lives here rather than in locals of the
 * function calling setjmp, where its value would be indeterminate after the
 * jump. */
struct png_state {
    const char *path;
    char msg[256];
    uint8_t *pixels; /* decoded image, interleaved rows */
    png_bytep *rows;
    png_uint_32 w, h;
    int channels, depth;
    long long file_size; /* -1 when not a regular file */
};

static void on_error(png_structp png, png_const_charp msg)
{
    struct png_state *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* libpng warns on stderr about harmless oddities (unknown sRGB profiles,
 * extra chunks); a library must not print, and the image is still valid. */
static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static lvk_status decode(png_structp png, png_infop info, FILE *f, struct png_state *s)
{
    if (setjmp(png_jmpbuf(png)))
        return lvk_fail(LVK_ERR_FORMAT, "%s: corrupt PNG: %s", s->path, s->msg);
    png_init_io(png, f);
    png_set_sig_bytes(png, 8);
    png_read_info(png, info);
    /* deflate compresses at most 1032:1, so a header announcing more pixel
     * data than the file could hold is corrupt; checking here avoids
     * allocating for an image that cannot be there. */
    uint64_t raw = (uint64_t)png_get_image_height(png, info) *
                   (((uint64_t)png_get_image_width(png, info) * png_get_channels(png, info) *
                     png_get_bit_depth(png, info) + 7) / 8);
    if (s->file_size >= 0 && raw > (uint64_t)s->file_size * 1100)
        return lvk_fail(LVK_ERR_FORMAT, "%s: truncated PNG (%lux%lu pixels cannot fit in %lld "
                        "bytes)", s->path, (unsigned long)png_get_image_width(png, info),
                        (unsigned long)png_get_image_height(png, info), (long long)s->file_size);
    /* expand: palette -> RGB, 1/2/4-bit gray -> 8-bit, tRNS -> alpha. 16-bit
     * samples are kept (big-endian) so no precision is lost before float. */
    png_set_expand(png);
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    s->w = png_get_image_width(png, info);
    s->h = png_get_image_height(png, info);
    s->channels = png_get_channels(png, info);
    s->depth = png_get_bit_depth(png, info);
    if ((s->channels != 1 && s->channels != 3) || (s->depth != 8 && s->depth != 16))
        return lvk_fail(LVK_ERR_UNSUPPORTED, "%s: unexpected PNG layout after conversion "
                        "(%d channels, %d bits)", s->path, s->channels, s->depth);
    if (s->w > INT32_MAX || s->h > INT32_MAX)
        return lvk_fail(LVK_ERR_UNSUPPORTED, "%s: PNG too large (%lux%lu)", s->path,
                        (unsigned long)s->w, (unsigned long)s->h);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (rowbytes != (size_t)s->w * (size_t)s->channels * (size_t)(s->depth / 8) ||
        (size_t)s->h > SIZE_MAX / rowbytes)
        return lvk_fail(LVK_ERR_UNSUPPORTED, "%s: PNG too large (%lux%lu)", s->path,
                        (unsigned long)s->w, (unsigned long)s->h);
    s->pixels = malloc(rowbytes * s->h);
    s->rows = malloc(sizeof *s->rows * s->h);
    if (!s->pixels || !s->rows)
        return lvk_fail(LVK_ERR_HOST_OOM, "%s: out of host memory for %lux%lu PNG", s->path,
                        (unsigned long)s->w, (unsigned long)s->h);
    for (png_uint_32 y = 0; y < s->h; y++)
        s->rows[y] = s->pixels + (size_t)y * rowbytes;
    png_read_image(png, s->rows);
    /* Reading to IEND verifies the CRCs of the chunks after the image data
     * and catches files cut off after the last IDAT. */
    png_read_end(png, NULL);
    return LVK_OK;
}

static float sample(const uint8_t *p, int depth)
{
    if (depth == 16)
        return (float)((p[0] << 8) | p[1]) / 65535.0f;
    return (float)p[0] / 255.0f;
}

lvk_status lvk_png_read(const char *path, int want_c, struct lvk_image *out)
{
    memset(out, 0, sizeof *out);
    if (want_c != 0 && want_c != 1 && want_c != 3)
        return lvk_fail(LVK_ERR_INVALID_ARG, "%s: channel count must be 0, 1 or 3 (got %d)",
                        path, want_c);
    FILE *f = fopen(path, "rb");
    if (!f)
        return lvk_fail(LVK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    uint8_t sig[8];
    if (fread(sig, 1, sizeof sig, f) != sizeof sig || png_sig_cmp(sig, 0, sizeof sig)) {
        fclose(f);
        return lvk_fail(LVK_ERR_FORMAT, "%s: not a PNG file", path);
    }
    struct stat sb;
    struct png_state s = {.path = path, .file_size = -1};
    if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode))
        s.file_size = (long long)sb.st_size;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    lvk_status st;
    if (!info) {
        st = lvk_fail(LVK_ERR_HOST_OOM, "%s: out of host memory for the PNG decoder", path);
        goto done;
    }
    LVK_TRY(st, decode(png, info, f, &s));
    int fc = s.channels, oc = want_c ? want_c : fc;
    LVK_TRY(st, lvk_image_alloc(out, (int)s.w, (int)s.h, oc));
    size_t plane = (size_t)s.w * s.h, step = (size_t)fc * (size_t)(s.depth / 8);
    for (size_t i = 0; i < plane; i++) {
        const uint8_t *p = s.pixels + i * step;
        if (fc == oc) {
            for (int c = 0; c < fc; c++)
                out->data[c * plane + i] = sample(p + c * (s.depth / 8), s.depth);
        } else if (fc == 1) {
            float v = sample(p, s.depth);
            out->data[i] = out->data[plane + i] = out->data[2 * plane + i] = v;
        } else {
            int b = s.depth / 8;
            out->data[i] = 0.299f * sample(p, s.depth) + 0.587f * sample(p + b, s.depth) +
                           0.114f * sample(p + 2 * b, s.depth);
        }
    }
    goto done;
fail:
    lvk_image_free(out);
done:
    png_destroy_read_struct(&png, &info, NULL);
    free(s.rows);
    free(s.pixels);
    fclose(f);
    return st;
}

static uint8_t to_byte(float v)
{
    /* Written so that NaN ends up as 0 instead of undefined behaviour in the
     * conversion. */
    if (!(v > 0.0f))
        return 0;
    if (v >= 1.0f)
        return 255;
    return (uint8_t)(v * 255.0f + 0.5f);
}

static lvk_status encode(png_structp png, png_infop info, FILE *f, const struct lvk_image *img,
                         uint8_t *row, struct png_state *s)
{
    if (setjmp(png_jmpbuf(png)))
        return lvk_fail(LVK_ERR_IO, "%s: PNG write failed: %s", s->path, s->msg);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)img->w, (png_uint_32)img->h, 8,
                 img->c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    size_t plane = (size_t)img->w * (size_t)img->h;
    for (int y = 0; y < img->h; y++) {
        const float *src = img->data + (size_t)y * img->w;
        for (int x = 0; x < img->w; x++)
            for (int c = 0; c < img->c; c++)
                row[(size_t)x * img->c + c] = to_byte(src[c * plane + x]);
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    return LVK_OK;
}

lvk_status lvk_png_write(const char *path, const struct lvk_image *img)
{
    if (!img || !img->data || img->w <= 0 || img->h <= 0 || (img->c != 1 && img->c != 3))
        return lvk_fail(LVK_ERR_INVALID_ARG, "%s: cannot write image %dx%dx%d as PNG", path,
                        img ? img->w : 0, img ? img->h : 0, img ? img->c : 0);
    size_t tmplen = strlen(path) + 32;
    char *tmp = lvk_calloc(tmplen, 1);
    uint8_t *row = lvk_calloc((size_t)img->w, (size_t)img->c);
    struct png_state s = {.path = path};
    png_structp png = NULL;
    png_infop info = NULL;
    FILE *f = NULL;
    lvk_status st;
    if (!tmp || !row) {
        st = LVK_ERR_HOST_OOM;
        goto done;
    }
    LVK_TRY(st, lvk_atomic_open(path, tmp, tmplen, &f));
    png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &s, on_error, on_warning);
    info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        st = lvk_fail(LVK_ERR_HOST_OOM, "%s: out of host memory for the PNG encoder", path);
        goto fail;
    }
    LVK_TRY(st, encode(png, info, f, img, row, &s));
    st = lvk_atomic_commit(f, tmp, path);
    goto done;
fail:
    if (f)
        lvk_atomic_abort(f, tmp);
done:
    png_destroy_write_struct(&png, &info);
    free(row);
    free(tmp);
    return st;
}

/* Source index and weight of the second tap for every output position along
 * one axis, computed exactly as PyTorch does (float arithmetic, source
 * position clamped at 0, second tap clamped to the last pixel). */
static void axis_taps(int in, int out, int *i0, int *i1, float *l1)
{
    float scale = (float)in / (float)out;
    for (int d = 0; d < out; d++) {
        float src = scale * ((float)d + 0.5f) - 0.5f;
        if (src < 0.0f)
            src = 0.0f;
        int i = (int)floorf(src);
        if (i > in - 1)
            i = in - 1;
        float l = src - (float)i;
        i0[d] = i;
        i1[d] = i < in - 1 ? i + 1 : i;
        l1[d] = l < 0.0f ? 0.0f : l > 1.0f ? 1.0f : l;
    }
}

lvk_status lvk_image_zoom(const struct lvk_image *src, int z, struct lvk_image *out)
{
    memset(out, 0, sizeof *out);
    if (!src || !src->data || src->w <= 0 || src->h <= 0 || z < 1)
        return lvk_fail(LVK_ERR_INVALID_ARG, "zoom: empty source image or factor %d", z);
    if (src->w > INT_MAX / z || src->h > INT_MAX / z)
        return lvk_fail(LVK_ERR_INVALID_ARG, "zoom: %dx%d times %d is too large", src->w, src->h, z);
    LVK_CHECK(lvk_image_alloc(out, src->w * z, src->h * z, src->c));
    for (int c = 0; c < src->c; c++)
        for (int y = 0; y < out->h; y++)
            for (int x = 0; x < out->w; x++)
                out->data[((size_t)c * out->h + y) * out->w + x] =
                    src->data[((size_t)c * src->h + y / z) * src->w + x / z];
    return LVK_OK;
}

lvk_status lvk_image_zoom_in_place(struct lvk_image *img, int z)
{
    if (z == 1)
        return LVK_OK;
    struct lvk_image big;
    LVK_CHECK(lvk_image_zoom(img, z, &big));
    lvk_image_free(img);
    *img = big;
    return LVK_OK;
}

lvk_status lvk_image_resize(const struct lvk_image *src, int w, int h, struct lvk_image *out)
{
    memset(out, 0, sizeof *out);
    if (!src || !src->data || src->w <= 0 || src->h <= 0)
        return lvk_fail(LVK_ERR_INVALID_ARG, "resize: empty source image");
    int *xi = lvk_calloc((size_t)LVK_MAX(w, 1) * 2, sizeof(int));
    int *yi = lvk_calloc((size_t)LVK_MAX(h, 1) * 2, sizeof(int));
    float *xl = lvk_calloc((size_t)LVK_MAX(w, 1), sizeof(float));
    float *yl = lvk_calloc((size_t)LVK_MAX(h, 1), sizeof(float));
    lvk_status st = LVK_ERR_HOST_OOM;
    if (!xi || !yi || !xl || !yl)
        goto done;
    LVK_TRY(st, lvk_image_alloc(out, w, h, src->c));
    axis_taps(src->w, w, xi, xi + w, xl);
    axis_taps(src->h, h, yi, yi + h, yl);
    size_t sp = (size_t)src->w * src->h, dp = (size_t)w * h;
    for (int c = 0; c < src->c; c++) {
        const float *s = src->data + c * sp;
        float *d = out->data + c * dp;
        for (int y = 0; y < h; y++) {
            const float *r0 = s + (size_t)yi[y] * src->w, *r1 = s + (size_t)yi[h + y] * src->w;
            float h1 = yl[y], h0 = 1.0f - h1;
            for (int x = 0; x < w; x++) {
                float w1 = xl[x], w0 = 1.0f - w1;
                int a = xi[x], b = xi[w + x];
                /* Horizontal then vertical, as PyTorch's CPU kernel; results
                 * agree with it to within a few float ulps. */
                d[(size_t)y * w + x] = (r0[a] * w0 + r0[b] * w1) * h0 + (r1[a] * w0 + r1[b] * w1) * h1;
            }
        }
    }
    goto done;
fail:
    lvk_image_free(out);
done:
    free(xi);
    free(yi);
    free(xl);
    free(yl);
    return st;
}
