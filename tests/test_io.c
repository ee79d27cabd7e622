/* Tests of src/io: atomic files, PNG, bilinear resize, npy, JSON and IDX.
 *
 * References are independent of the code under test: PNG and npy fixtures
 * are written by tests/ref/make_io_fixtures.py (hand-encoded PNGs, numpy's
 * own np.save, torch's F.interpolate), IDX files and broken inputs are built
 * byte by byte here. Every test works in a fresh directory under the build
 * tree that is removed afterwards. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkdtemp, nftw */
#endif
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ftw.h>
#include <zlib.h>

#include <cmocka.h>

#include "io/lvk_io.h"
#include "support/cli.h"

#define FIXTURES LVK_SOURCE_DIR "/tests/data/io/"

static char g_dir[1024];

/* ---- helpers ---------------------------------------------------------------- */

static const char *tpath(char *buf, const char *name)
{
    snprintf(buf, PATH_MAX, "%s/%s", g_dir, name);
    return buf;
}

static const char *fixture(char *buf, const char *name)
{
    snprintf(buf, PATH_MAX, "%s%s", FIXTURES, name);
    return buf;
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void write_gz(const char *path, const void *data, size_t len)
{
    gzFile gz = gzopen(path, "wb");
    assert_non_null(gz);
    assert_int_equal(gzwrite(gz, data, (unsigned)len), (int)len);
    assert_int_equal(gzclose(gz), Z_OK);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    uint8_t *data;
    assert_int_equal(lvk_read_file(path, &data, len), LVK_OK);
    return data;
}

/* Number of entries in the test directory whose name contains ".tmp.". */
static int temp_files(void)
{
    DIR *d = opendir(g_dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

/* Checks a failure: status and a message containing every given fragment. */
static void expect_fail(lvk_status st, lvk_status want, ...)
{
    if (st != want)
        fail_msg("status %s, expected %s (message: %s)", lvk_status_str(st),
                 lvk_status_str(want), lvk_last_error());
    va_list ap;
    va_start(ap, want);
    for (const char *frag; (frag = va_arg(ap, const char *));) {
        if (!strstr(lvk_last_error(), frag))
            fail_msg("message \"%s\" lacks \"%s\"", lvk_last_error(), frag);
    }
    va_end(ap);
}

static void load_npy(const char *name, struct lvk_npy *a)
{
    char p[PATH_MAX];
    lvk_status st = lvk_npy_read(fixture(p, name), a);
    if (st != LVK_OK)
        fail_msg("%s: %s", name, lvk_last_error());
}

static void expect_close(const float *got, const float *want, size_t n, float tol)
{
    for (size_t i = 0; i < n; i++)
        if (!(fabsf(got[i] - want[i]) <= tol))
            fail_msg("element %zu: got %.9g, expected %.9g", i, got[i], want[i]);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int setup_dir(void **state)
{
    mkdir(LVK_BINARY_DIR, 0777);
    snprintf(g_dir, sizeof g_dir, "%s/test_io.XXXXXX", LVK_BINARY_DIR);
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    return nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- atomic files ----------------------------------------------------------- */

static void test_atomic_write_and_read(void **state)
{
    char p[PATH_MAX];
    tpath(p, "a.txt");
    assert_int_equal(lvk_write_file_atomic(p, "hello", 5), LVK_OK);
    size_t len;
    uint8_t *d = slurp(p, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(d, "hello", 6); /* includes the terminating NUL */
    free(d);

    /* Bigger than the reader's first buffer, and replacing the old file. */
    size_t n = 300000;
    uint8_t *big = malloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (uint8_t)(i * 2654435761u >> 13);
    assert_int_equal(lvk_write_file_atomic(p, big, n), LVK_OK);
    d = slurp(p, &len);
    assert_int_equal(len, n);
    assert_memory_equal(d, big, n);
    assert_int_equal(d[n], 0);
    free(d);
    free(big);

    assert_int_equal(lvk_write_file_atomic(p, NULL, 0), LVK_OK);
    d = slurp(p, &len);
    assert_int_equal(len, 0);
    assert_int_equal(d[0], 0);
    free(d);
    assert_int_equal(temp_files(), 0);
}

static void test_atomic_abort_keeps_old_file(void **state)
{
    char p[PATH_MAX], tmp[PATH_MAX + 32];
    tpath(p, "keep.txt");
    assert_int_equal(lvk_write_file_atomic(p, "old", 3), LVK_OK);

    FILE *f;
    assert_int_equal(lvk_atomic_open(p, tmp, sizeof tmp, &f), LVK_OK);
    assert_true(strncmp(tmp, p, strlen(p)) == 0 && strstr(tmp + strlen(p), ".tmp."));
    fputs("new, but never finished", f);
    fflush(f);
    assert_true(lvk_test_exists(tmp));
    assert_int_equal(temp_files(), 1);
    lvk_atomic_abort(f, tmp);
    assert_int_equal(temp_files(), 0);
    size_t len;
    uint8_t *d = slurp(p, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(d, "old", 3);
    free(d);

    /* The old content stays visible until commit. */
    assert_int_equal(lvk_atomic_open(p, tmp, sizeof tmp, &f), LVK_OK);
    fputs("new", f);
    fputs("er", f);
    d = slurp(p, &len);
    assert_memory_equal(d, "old", 4);
    free(d);
    assert_int_equal(lvk_atomic_commit(f, tmp, p), LVK_OK);
    d = slurp(p, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(d, "newer", 6);
    free(d);
    assert_int_equal(temp_files(), 0);
}

static void test_atomic_errors(void **state)
{
    char p[PATH_MAX], tmp[PATH_MAX + 32];
    FILE *f = (FILE *)1;
    tpath(p, "no-such-dir/x.bin");
    expect_fail(lvk_atomic_open(p, tmp, sizeof tmp, &f), LVK_ERR_IO, "no-such-dir/x.bin", NULL);
    assert_null(f);
    expect_fail(lvk_write_file_atomic(p, "x", 1), LVK_ERR_IO, "x.bin", NULL);

    tpath(p, "short.bin");
    char small[8];
    expect_fail(lvk_atomic_open(p, small, sizeof small, &f), LVK_ERR_INVALID_ARG, "short.bin",
                NULL);
    assert_false(lvk_test_exists(p));

    /* rename() onto a non-empty directory fails after the data was written:
     * the temp file must not stay behind. */
    tpath(p, "dir");
    assert_int_equal(mkdir(p, 0777), 0);
    tpath(tmp, "dir/inside");
    write_bytes(tmp, "x", 1);
    expect_fail(lvk_write_file_atomic(p, "data", 4), LVK_ERR_IO, "dir", NULL);
    assert_int_equal(temp_files(), 0);

    uint8_t *d = (uint8_t *)1;
    size_t len = 7;
    tpath(p, "missing.txt");
    expect_fail(lvk_read_file(p, &d, &len), LVK_ERR_IO, "missing.txt", NULL);
    assert_null(d);
    assert_int_equal(len, 0);
    assert_int_equal(temp_files(), 0);
}

/* ---- PNG -------------------------------------------------------------------- */

/* A pattern whose values are exact multiples of 1/255, so an 8-bit round
 * trip must reproduce them exactly. */
static void fill_pattern(struct lvk_image *img)
{
    size_t plane = (size_t)img->w * img->h;
    for (int c = 0; c < img->c; c++)
        for (int y = 0; y < img->h; y++)
            for (int x = 0; x < img->w; x++)
                img->data[c * plane + (size_t)y * img->w + x] =
                    (float)((x * 37 + y * 11 + c * 101) % 256) / 255.0f;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void png_roundtrip(int c)
{
    char p[PATH_MAX];
    tpath(p, c == 1 ? "gray.png" : "rgb.png");
    struct lvk_image img, back;
    assert_int_equal(lvk_image_alloc(&img, 19, 7, c), LVK_OK);
    fill_pattern(&img);
    assert_int_equal(lvk_png_write(p, &img), LVK_OK);
    assert_int_equal(temp_files(), 0);

    /* IHDR checked by hand: signature, size, 8 bits, gray (0) or RGB (2). */
    size_t len;
    uint8_t *d = slurp(p, &len);
    assert_true(len > 33);
    assert_memory_equal(d, "\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", 16);
    assert_int_equal(be32(d + 16), 19);
    assert_int_equal(be32(d + 20), 7);
    assert_int_equal(d[24], 8);
    assert_int_equal(d[25], c == 1 ? 0 : 2);
    free(d);

    assert_int_equal(lvk_png_read(p, 0, &back), LVK_OK);
    assert_int_equal(back.w, 19);
    assert_int_equal(back.h, 7);
    assert_int_equal(back.c, c);
    expect_close(back.data, img.data, (size_t)19 * 7 * c, 0.0f);
    lvk_image_free(&back);
    lvk_image_free(&img);
}

static void test_png_roundtrip_gray(void **state)
{
    png_roundtrip(1);
}

static void test_png_roundtrip_rgb(void **state)
{
    png_roundtrip(3);
}

static void test_png_write_clamps_and_rounds(void **state)
{
    char p[PATH_MAX];
    tpath(p, "clamp.png");
    struct lvk_image img, back;
    assert_int_equal(lvk_image_alloc(&img, 6, 1, 1), LVK_OK);
    const float in[6] = {-0.5f, 1.7f, NAN, 0.5f, 1.49f / 255.0f, 1.51f / 255.0f};
    const float want[6] = {0, 1, 0, 128 / 255.0f, 1 / 255.0f, 2 / 255.0f};
    memcpy(img.data, in, sizeof in);
    assert_int_equal(lvk_png_write(p, &img), LVK_OK);
    assert_int_equal(lvk_png_read(p, 0, &back), LVK_OK);
    expect_close(back.data, want, 6, 0.0f);
    lvk_image_free(&back);
    lvk_image_free(&img);
}

static void test_png_fixtures(void **state)
{
    static const char *names[] = {"gray16", "gray2", "palette4", "palette8",
                                  "rgba8", "graya16", "rgb16_adam7"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char p[PATH_MAX], n[64];
        struct lvk_npy ref;
        struct lvk_image img;
        snprintf(n, sizeof n, "%s.npy", names[i]);
        load_npy(n, &ref);
        snprintf(n, sizeof n, "%s.png", names[i]);
        lvk_status st = lvk_png_read(fixture(p, n), 0, &img);
        if (st != LVK_OK)
            fail_msg("%s: %s", n, lvk_last_error());
        assert_int_equal(ref.ndim, 3);
        assert_int_equal(img.c, ref.shape[0]);
        assert_int_equal(img.h, ref.shape[1]);
        assert_int_equal(img.w, ref.shape[2]);
        expect_close(img.data, ref.data, ref.count, 1e-6f);
        lvk_image_free(&img);
        lvk_npy_free(&ref);
    }
}

static void test_png_channel_conversion(void **state)
{
    char p[PATH_MAX];
    struct lvk_npy ref;
    struct lvk_image img;

    load_npy("gray16.npy", &ref);
    assert_int_equal(lvk_png_read(fixture(p, "gray16.png"), 3, &img), LVK_OK);
    assert_int_equal(img.c, 3);
    for (int c = 0; c < 3; c++)
        expect_close(img.data + c * ref.count, ref.data, ref.count, 1e-6f);
    lvk_image_free(&img);
    lvk_npy_free(&ref);

    load_npy("rgba8.npy", &ref);
    assert_int_equal(lvk_png_read(fixture(p, "rgba8.png"), 1, &img), LVK_OK);
    assert_int_equal(img.c, 1);
    size_t plane = ref.count / 3;
    for (size_t i = 0; i < plane; i++) {
        double y = 0.299 * ref.data[i] + 0.587 * ref.data[plane + i] +
                   0.114 * ref.data[2 * plane + i];
        assert_float_equal(img.data[i], y, 1e-6);
    }
    lvk_image_free(&img);
    lvk_npy_free(&ref);

    expect_fail(lvk_png_read(fixture(p, "rgba8.png"), 2, &img), LVK_ERR_INVALID_ARG,
                "rgba8.png", NULL);
}

static void test_png_corrupt(void **state)
{
    char src[PATH_MAX], p[PATH_MAX];
    struct lvk_image img = {1, 1, 1, (float *)1};
    size_t len;
    uint8_t *d = slurp(fixture(src, "rgb16_adam7.png"), &len);

    tpath(p, "text.png");
    write_bytes(p, "just some text, definitely not an image\n", 40);
    expect_fail(lvk_png_read(p, 0, &img), LVK_ERR_FORMAT, "text.png", "not a PNG file", NULL);
    assert_null(img.data);

    tpath(p, "empty.png");
    write_bytes(p, "", 0);
    expect_fail(lvk_png_read(p, 0, &img), LVK_ERR_FORMAT, "empty.png", "not a PNG", NULL);

    /* Cut inside the image data, and cut just before IEND. */
    tpath(p, "cut_idat.png");
    write_bytes(p, d, len / 2);
    expect_fail(lvk_png_read(p, 0, &img), LVK_ERR_FORMAT, "cut_idat.png", NULL);
    assert_null(img.data);
    tpath(p, "cut_iend.png");
    write_bytes(p, d, len - 12);
    expect_fail(lvk_png_read(p, 0, &img), LVK_ERR_FORMAT, "cut_iend.png", NULL);

    /* A flipped bit in the compressed data breaks the IDAT CRC. */
    tpath(p, "bad_crc.png");
    d[len - 30] ^= 0x10;
    write_bytes(p, d, len);
    expect_fail(lvk_png_read(p, 0, &img), LVK_ERR_FORMAT, "bad_crc.png", NULL);
    free(d);

    /* A valid IHDR announcing 100000 x 100000 pixels in a 74-byte file. */
    d = slurp(fixture(src, "gray2.png"), &len);
    for (int i = 0; i < 2; i++) {
        d[16 + 4 * i] = 0, d[17 + 4 * i] = 1, d[18 + 4 * i] = 0x86, d[19 + 4 * i] = 0xa0;
    }
    uint32_t crc = (uint32_t)crc32(0, d + 12, 17);
    d[29] = (uint8_t)(crc >> 24), d[30] = (uint8_t)(crc >> 16);
    d[31] = (uint8_t)(crc >> 8), d[32] = (uint8_t)crc;
    tpath(p, "huge.png");
    write_bytes(p, d, len);
    free(d);
    expect_fail(lvk_png_read(p, 0, &img), LVK_ERR_FORMAT, "huge.png", "100000x100000", NULL);

    tpath(p, "absent.png");
    expect_fail(lvk_png_read(p, 0, &img), LVK_ERR_IO, "absent.png", NULL);
}

static void test_png_write_errors(void **state)
{
    char p[PATH_MAX];
    struct lvk_image img;
    assert_int_equal(lvk_image_alloc(&img, 4, 4, 3), LVK_OK);
    tpath(p, "nodir/out.png");
    expect_fail(lvk_png_write(p, &img), LVK_ERR_IO, "nodir/out.png", NULL);
    tpath(p, "two.png");
    img.c = 2;
    expect_fail(lvk_png_write(p, &img), LVK_ERR_INVALID_ARG, "two.png", NULL);
    assert_false(lvk_test_exists(p));
    img.c = 3;
    lvk_image_free(&img);
    assert_null(img.data);
    expect_fail(lvk_image_alloc(&img, 0, 4, 1), LVK_ERR_INVALID_ARG, NULL);
    expect_fail(lvk_image_alloc(&img, 4, 4, 4), LVK_ERR_INVALID_ARG, NULL);
    assert_int_equal(temp_files(), 0);
}

/* ---- resize ----------------------------------------------------------------- */

static void test_resize_matches_torch(void **state)
{
    static const int sizes[][2] = {{13, 11}, {3, 2}, {7, 5}, {1, 1}, {16, 3}, {2, 9}, {21, 15}};
    struct lvk_npy src;
    load_npy("resize_src.npy", &src);
    struct lvk_image in = {(int)src.shape[2], (int)src.shape[1], (int)src.shape[0], src.data};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        int h = sizes[i][0], w = sizes[i][1];
        char n[64];
        struct lvk_npy ref;
        struct lvk_image out;
        snprintf(n, sizeof n, "resize_%dx%d.npy", h, w);
        load_npy(n, &ref);
        assert_int_equal(lvk_image_resize(&in, w, h, &out), LVK_OK);
        assert_int_equal(out.w, w);
        assert_int_equal(out.h, h);
        assert_int_equal(out.c, 3);
        assert_int_equal(ref.count, (size_t)3 * w * h);
        expect_close(out.data, ref.data, ref.count, 1e-6f);
        lvk_image_free(&out);
        lvk_npy_free(&ref);
    }
    lvk_npy_free(&src);
}

static void test_resize_by_hand(void **state)
{
    /* Width 2 -> 4: source positions -0.25 (clamped to 0), 0.25, 0.75,
     * 1.25 (second tap clamped to the last pixel). */
    float row[2] = {0.0f, 1.0f};
    struct lvk_image in = {2, 1, 1, row}, out;
    assert_int_equal(lvk_image_resize(&in, 4, 3, &out), LVK_OK);
    const float want[4] = {0.0f, 0.25f, 0.75f, 1.0f};
    for (int y = 0; y < 3; y++)
        expect_close(out.data + 4 * y, want, 4, 0.0f);
    lvk_image_free(&out);

    /* Same size is an exact copy. */
    float px[6] = {0.1f, 0.9f, 0.3f, 0.7f, 0.5f, 0.2f};
    struct lvk_image sq = {3, 2, 1, px};
    assert_int_equal(lvk_image_resize(&sq, 3, 2, &out), LVK_OK);
    assert_memory_equal(out.data, px, sizeof px);
    lvk_image_free(&out);

    expect_fail(lvk_image_resize(&sq, 0, 2, &out), LVK_ERR_INVALID_ARG, NULL);
    assert_null(out.data);
}

/* img is the 3-channel 2 x 2 image px with every pixel a z x z block. */
static void expect_zoomed(const struct lvk_image *img, const float *px, int z)
{
    assert_int_equal(img->w, 2 * z);
    assert_int_equal(img->h, 2 * z);
    assert_int_equal(img->c, 3);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 2 * z; y++)
            for (int x = 0; x < 2 * z; x++)
                assert_float_equal(img->data[(c * 2 * z + y) * 2 * z + x],
                                   px[(c * 2 + y / z) * 2 + x / z], 0);
}

static void test_zoom(void **state)
{
    /* 3 channels of 2 x 2: every pixel becomes a 2 x 2 block. */
    float px[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    struct lvk_image in = {2, 2, 3, px}, out;
    assert_int_equal(lvk_image_zoom(&in, 2, &out), LVK_OK);
    expect_zoomed(&out, px, 2);
    lvk_image_free(&out);
    assert_int_equal(lvk_image_zoom(&in, 1, &out), LVK_OK);
    assert_memory_equal(out.data, px, sizeof px);
    lvk_image_free(&out);
    expect_fail(lvk_image_zoom(&in, 0, &out), LVK_ERR_INVALID_ARG, NULL);
    expect_fail(lvk_image_zoom(&in, INT_MAX / 2 + 1, &out), LVK_ERR_INVALID_ARG, "too large", NULL);

    /* In place: the image becomes its enlargement, the same pixels. */
    struct lvk_image img;
    assert_int_equal(lvk_image_alloc(&img, 2, 2, 3), LVK_OK);
    memcpy(img.data, px, sizeof px);
    assert_int_equal(lvk_image_zoom_in_place(&img, 3), LVK_OK);
    expect_zoomed(&img, px, 3);
    assert_int_equal(lvk_image_zoom_in_place(&img, 1), LVK_OK);
    expect_zoomed(&img, px, 3);
    lvk_image_free(&img);
}

/* ---- npy -------------------------------------------------------------------- */

static void expect_shape(const struct lvk_npy *a, int ndim, ...)
{
    assert_int_equal(a->ndim, ndim);
    va_list ap;
    va_start(ap, ndim);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        int d = va_arg(ap, int);
        assert_int_equal(a->shape[i], d);
        count *= (size_t)d;
    }
    va_end(ap);
    assert_int_equal(a->count, count);
}

static void test_npy_read_dtypes(void **state)
{
    struct lvk_npy a;
    load_npy("f4_2x3x4.npy", &a);
    expect_shape(&a, 3, 2, 3, 4);
    for (int i = 0; i < 24; i++)
        assert_true(a.data[i] == i * 0.25f - 3.0f);
    lvk_npy_free(&a);

    load_npy("f4_7.npy", &a);
    expect_shape(&a, 1, 7);
    const float f4[7] = {0.5f, -1.25f, 3e-8f, 1e20f, -0.0f, 7.0f, 1.0f / 3.0f};
    assert_memory_equal(a.data, f4, sizeof f4); /* bit exact, -0.0 included */
    lvk_npy_free(&a);

    load_npy("f8_5.npy", &a);
    expect_shape(&a, 1, 5);
    const float f8[5] = {(float)(1.0 / 3.0), -1e10f, 1e-3f, 0.0f, 2.5f};
    assert_memory_equal(a.data, f8, sizeof f8);
    lvk_npy_free(&a);

    load_npy("i8_3x2.npy", &a);
    expect_shape(&a, 2, 3, 2);
    const float i8[6] = {-5, 1099511627776.0f, 7, 0, 1, -1};
    assert_memory_equal(a.data, i8, sizeof i8);
    lvk_npy_free(&a);

    load_npy("i4_4.npy", &a);
    expect_shape(&a, 1, 4);
    const float i4[4] = {-2147483648.0f, 2147483647.0f, 0, 42};
    assert_memory_equal(a.data, i4, sizeof i4);
    lvk_npy_free(&a);

    load_npy("u1_2x2.npy", &a);
    expect_shape(&a, 2, 2, 2);
    const float u1[4] = {0, 255, 128, 1};
    assert_memory_equal(a.data, u1, sizeof u1);
    lvk_npy_free(&a);

    load_npy("f4_scalar.npy", &a);
    expect_shape(&a, 0);
    assert_true(a.data[0] == 2.75f);
    lvk_npy_free(&a);

    load_npy("f4_0x3.npy", &a);
    expect_shape(&a, 2, 0, 3);
    lvk_npy_free(&a);
}

static void test_npy_versions(void **state)
{
    static const char *names[] = {"f4_v2.npy", "f4_v3.npy"};
    for (int v = 0; v < 2; v++) {
        char p[PATH_MAX];
        size_t len;
        uint8_t *d = slurp(fixture(p, names[v]), &len);
        assert_int_equal(d[6], v + 2); /* the fixture really is version 2 / 3 */
        free(d);
        struct lvk_npy a;
        load_npy(names[v], &a);
        expect_shape(&a, 2, 2, 3);
        for (int i = 0; i < 6; i++)
            assert_true(a.data[i] == (float)i);
        lvk_npy_free(&a);
    }
}

static void test_npy_unsupported(void **state)
{
    char p[PATH_MAX];
    struct lvk_npy a;
    expect_fail(lvk_npy_read(fixture(p, "f4_fortran.npy"), &a), LVK_ERR_UNSUPPORTED,
                "f4_fortran.npy", "Fortran", NULL);
    assert_null(a.data);
    expect_fail(lvk_npy_read(fixture(p, "f4_bigendian.npy"), &a), LVK_ERR_UNSUPPORTED,
                "f4_bigendian.npy", ">f4", NULL);
    expect_fail(lvk_npy_read(fixture(p, "f2.npy"), &a), LVK_ERR_UNSUPPORTED, "f2.npy", "<f2",
                NULL);
}

/* Writes an npy file with the given header text (padding added). */
static void write_npy_header(const char *path, const char *dict, size_t data_bytes)
{
    uint8_t buf[256] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
    size_t n = strlen(dict);
    size_t hlen = (10 + n + 1 + 63) / 64 * 64 - 10;
    memset(buf + 10, ' ', hlen);
    memcpy(buf + 10, dict, n);
    buf[10 + hlen - 1] = '\n';
    buf[8] = (uint8_t)hlen;
    buf[9] = (uint8_t)(hlen >> 8);
    assert_true(10 + hlen + data_bytes <= sizeof buf);
    write_bytes(path, buf, 10 + hlen + data_bytes);
}

static void test_npy_corrupt(void **state)
{
    char src[PATH_MAX], p[PATH_MAX];
    struct lvk_npy a;
    size_t len;
    uint8_t *d = slurp(fixture(src, "f4_2x3x4.npy"), &len);
    assert_int_equal(len, 128 + 96);

    tpath(p, "cut.npy");
    write_bytes(p, d, 128 + 10);
    expect_fail(lvk_npy_read(p, &a), LVK_ERR_FORMAT, "cut.npy",
                "truncated data (expected 96 bytes, got 10)", NULL);
    assert_null(a.data);

    tpath(p, "long.npy");
    uint8_t *longer = calloc(1, len + 4);
    memcpy(longer, d, len);
    write_bytes(p, longer, len + 4);
    free(longer);
    expect_fail(lvk_npy_read(p, &a), LVK_ERR_FORMAT, "long.npy", "expected 96 bytes, got 100",
                NULL);

    tpath(p, "cut_header.npy");
    write_bytes(p, d, 40);
    expect_fail(lvk_npy_read(p, &a), LVK_ERR_FORMAT, "cut_header.npy", "truncated npy header",
                NULL);

    tpath(p, "magic.npy");
    d[1] = 'X';
    write_bytes(p, d, len);
    expect_fail(lvk_npy_read(p, &a), LVK_ERR_FORMAT, "magic.npy", "not a .npy file", NULL);
    d[1] = 'N';
    d[6] = 4;
    write_bytes(p, d, len);
    expect_fail(lvk_npy_read(p, &a), LVK_ERR_UNSUPPORTED, "magic.npy", "version 4.0", NULL);
    free(d);

    static const char *bad[] = {
        "{'descr': '<f4', 'fortran_order': False, }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1, }",
        "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -1), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,) ",
        "{'descr': '<f4, 'fortran_order': False, 'shape': (2,), }",
        "['descr', '<f4']",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } junk",
        "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
    };
    tpath(p, "header.npy");
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        write_npy_header(p, bad[i], 8);
        lvk_status st = lvk_npy_read(p, &a);
        if (st != LVK_ERR_FORMAT || !strstr(lvk_last_error(), "header.npy"))
            fail_msg("header %s: %s (%s)", bad[i], lvk_status_str(st), lvk_last_error());
    }
    /* The same writer with a good header works (so the cases above fail for
     * the reason they were built for). */
    write_npy_header(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (2L,), }", 8);
    assert_int_equal(lvk_npy_read(p, &a), LVK_OK);
    expect_shape(&a, 1, 2);
    lvk_npy_free(&a);

    write_npy_header(p, "{'descr': '<f4', 'fortran_order': False, "
                        "'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1), }", 4);
    expect_fail(lvk_npy_read(p, &a), LVK_ERR_UNSUPPORTED, "header.npy", NULL);
}

static void expect_npy_bytes(const char *fixture_name, const float *data, int ndim,
                             const int64_t *shape)
{
    char p[PATH_MAX], f[PATH_MAX];
    tpath(p, fixture_name);
    assert_int_equal(lvk_npy_write(p, data, ndim, shape), LVK_OK);
    size_t n1, n2;
    uint8_t *got = slurp(p, &n1), *want = slurp(fixture(f, fixture_name), &n2);
    if (n1 != n2 || memcmp(got, want, n1))
        fail_msg("%s differs from numpy's file (%zu vs %zu bytes): %.*s", fixture_name, n1, n2,
                 (int)(n1 > 10 ? n1 - 10 : 0), (const char *)got + 10);
    free(got);
    free(want);

    struct lvk_npy a;
    assert_int_equal(lvk_npy_read(p, &a), LVK_OK);
    assert_int_equal(a.ndim, ndim);
    for (int i = 0; i < ndim; i++)
        assert_int_equal(a.shape[i], shape[i]);
    if (a.count)
        assert_memory_equal(a.data, data, a.count * sizeof(float));
    lvk_npy_free(&a);
}

static void test_npy_write_matches_numpy(void **state)
{
    float x[24];
    for (int i = 0; i < 24; i++)
        x[i] = i * 0.25f - 3.0f;
    expect_npy_bytes("f4_2x3x4.npy", x, 3, (const int64_t[]){2, 3, 4});
    const float f4[7] = {0.5f, -1.25f, 3e-8f, 1e20f, -0.0f, 7.0f, 1.0f / 3.0f};
    expect_npy_bytes("f4_7.npy", f4, 1, (const int64_t[]){7});
    expect_npy_bytes("f4_scalar.npy", (const float[]){2.75f}, 0, NULL);
    expect_npy_bytes("f4_0x3.npy", NULL, 2, (const int64_t[]){0, 3});

    char p[PATH_MAX];
    tpath(p, "bad.npy");
    int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    expect_fail(lvk_npy_write(p, x, 9, nine), LVK_ERR_INVALID_ARG, "bad.npy", NULL);
    expect_fail(lvk_npy_write(p, x, 1, (const int64_t[]){-2}), LVK_ERR_INVALID_ARG, "bad.npy",
                NULL);
    assert_false(lvk_test_exists(p));
    assert_int_equal(temp_files(), 0);
}

/* ---- JSON ------------------------------------------------------------------- */

static struct lvk_json *parse(const char *text)
{
    struct lvk_json *j = NULL;
    lvk_status st = lvk_json_parse(text, strlen(text), &j);
    if (st != LVK_OK)
        fail_msg("parse of %s failed: %s", text, lvk_last_error());
    return j;
}

static void test_json_parse_tricky(void **state)
{
    const char *text =
        " {\n"
        "  \"nested\": [1, [2, [3, {\"deep\": [[]]}]], {}],\n"
        "  \"esc\": \"q\\\"b\\\\s\\/n\\nt\\tu\\u00e9\\u20AC\\ud83d\\ude00\\b\\f\\r\",\n"
        "  \"raw\": \"h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\",\n"
        "  \"nums\": [-1.5e-7, 0, -0, 1E+2, 12345678901234567890, 0.1, -7, 2.5e-308],\n"
        "  \"t\": true, \"f\": false, \"n\": null,\n"
        "  \"\": \"empty key\", \"dup\": 1, \"dup\": 2\n"
        "}\r\n\t ";
    struct lvk_json *j = parse(text);
    assert_int_equal(j->type, LVK_JSON_OBJECT);
    assert_int_equal(j->count, 10);
    assert_null(j->key);

    const struct lvk_json *nested = lvk_json_get(j, "nested");
    assert_non_null(nested);
    assert_int_equal(nested->type, LVK_JSON_ARRAY);
    assert_int_equal(nested->count, 3);
    assert_true(lvk_json_at(nested, 0)->number == 1.0);
    const struct lvk_json *deep = lvk_json_at(lvk_json_at(lvk_json_at(nested, 1), 1), 1);
    assert_int_equal(deep->type, LVK_JSON_OBJECT);
    const struct lvk_json *dd = lvk_json_get(deep, "deep");
    assert_int_equal(dd->count, 1);
    assert_int_equal(lvk_json_at(dd, 0)->type, LVK_JSON_ARRAY);
    assert_int_equal(lvk_json_at(dd, 0)->count, 0);
    assert_null(lvk_json_at(dd, 0)->child);
    assert_int_equal(lvk_json_at(nested, 2)->type, LVK_JSON_OBJECT);
    assert_int_equal(lvk_json_at(nested, 2)->count, 0);
    assert_null(lvk_json_at(nested, 3));

    assert_string_equal(lvk_json_get(j, "esc")->string,
                        "q\"b\\s/n\nt\tu\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\b\f\r");
    assert_string_equal(lvk_json_get(j, "raw")->string, "h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");

    const struct lvk_json *nums = lvk_json_get(j, "nums");
    const double want[] = {-1.5e-7, 0, -0.0, 100, 12345678901234567890.0, 0.1, -7, 2.5e-308};
    assert_int_equal(nums->count, 8);
    for (size_t i = 0; i < 8; i++) {
        const struct lvk_json *v = lvk_json_at(nums, i);
        assert_int_equal(v->type, LVK_JSON_NUMBER);
        assert_memory_equal(&v->number, &want[i], sizeof(double));
    }

    assert_int_equal(lvk_json_get(j, "t")->type, LVK_JSON_BOOL);
    assert_true(lvk_json_get(j, "t")->number == 1.0);
    assert_true(lvk_json_get(j, "f")->number == 0.0);
    assert_int_equal(lvk_json_get(j, "n")->type, LVK_JSON_NULL);
    assert_string_equal(lvk_json_get(j, "")->string, "empty key");
    assert_true(lvk_json_get(j, "dup")->number == 1.0); /* first one wins */
    assert_null(lvk_json_get(j, "absent"));
    assert_null(lvk_json_get(nested, "nested")); /* not an object */
    assert_null(lvk_json_at(j, 0));              /* not an array */
    lvk_json_free(j);

    j = parse("\"\\uD834\\uDD1E\"");
    assert_string_equal(j->string, "\xf0\x9d\x84\x9e");
    lvk_json_free(j);
    j = parse("  3.25 ");
    assert_true(j->number == 3.25);
    lvk_json_free(j);

    /* The length is honoured: text after it is not looked at. */
    struct lvk_json *k;
    assert_int_equal(lvk_json_parse("[1,2]garbage", 5, &k), LVK_OK);
    assert_int_equal(k->count, 2);
    lvk_json_free(k);
}

static void test_json_parse_errors(void **state)
{
    static const char *bad[] = {
        "", "   ", "[1,]", "{\"a\":1,}", "[1 2]", "{\"a\" 1}", "{a: 1}", "{'a': 1}",
        "01", "1.", ".5", "+1", "-", "1e", "1e+", "0x10", "NaN", "Infinity", "1e400",
        "tru", "nul", "[", "{", "[1", "{\"a\":", "\"abc", "\"a\\x\"", "\"\\u12\"",
        "\"\\u12G4\"", "\"\\ud800\"", "\"\\ud800x\"", "\"\\ud800\\u0041\"", "\"\\udc00\"",
        "\"tab\there\"", "\"\xc3\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"",
        "\"\xff\"", "[1] [2]", "{} x", "/* c */ 1", "[1,,2]", "{\"a\":1 \"b\":2}", "[true false]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct lvk_json *j = (struct lvk_json *)1;
        lvk_status st = lvk_json_parse(bad[i], strlen(bad[i]), &j);
        if (st != LVK_ERR_FORMAT || j != NULL || !strstr(lvk_last_error(), "line "))
            fail_msg("'%s' gave %s (%s)", bad[i], lvk_status_str(st), lvk_last_error());
    }

    struct lvk_json *j;
    expect_fail(lvk_json_parse("[1,\n  2,\n  x]", 13, &j), LVK_ERR_FORMAT, "line 3, column 3",
                NULL);
    expect_fail(lvk_json_parse("\"a\\u0000b\"", 10, &j), LVK_ERR_UNSUPPORTED, "\\u0000", NULL);

    /* Hostile nesting fails cleanly; 256 levels are still accepted. */
    size_t n = 100000;
    char *deep = malloc(2 * n + 1);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    expect_fail(lvk_json_parse(deep, 2 * n, &j), LVK_ERR_FORMAT, "nesting", NULL);
    memset(deep + 256, ']', 256);
    assert_int_equal(lvk_json_parse(deep, 512, &j), LVK_OK);
    lvk_json_free(j);
    memset(deep, '[', 257);
    memset(deep + 257, ']', 257);
    expect_fail(lvk_json_parse(deep, 514, &j), LVK_ERR_FORMAT, "nesting", NULL);
    for (size_t i = 0; i + 5 <= n; i += 5)
        memcpy(deep + i, "{\"a\":", 5);
    expect_fail(lvk_json_parse(deep, n, &j), LVK_ERR_FORMAT, "nesting", NULL);
    free(deep);
}

static void test_json_read_file(void **state)
{
    char p[PATH_MAX];
    tpath(p, "bom.json");
    const char text[] = "\xEF\xBB\xBF{\"model\": \"lucid\", \"layers\": [\"a\", \"b\"]}\n";
    write_bytes(p, text, sizeof text - 1);
    struct lvk_json *j;
    assert_int_equal(lvk_json_read(p, &j), LVK_OK);
    assert_string_equal(lvk_json_get(j, "model")->string, "lucid");
    assert_string_equal(lvk_json_at(lvk_json_get(j, "layers"), 1)->string, "b");
    lvk_json_free(j);

    tpath(p, "broken.json");
    write_bytes(p, "{\"a\": [1, 2}", 12);
    expect_fail(lvk_json_read(p, &j), LVK_ERR_FORMAT, "broken.json: JSON", "line 1, column 12",
                NULL);
    assert_null(j);
    tpath(p, "none.json");
    expect_fail(lvk_json_read(p, &j), LVK_ERR_IO, "none.json", NULL);
}

static void test_json_writer_format(void **state)
{
    char p[PATH_MAX];
    tpath(p, "small.json");
    struct lvk_jw w = {0};
    lvk_jw_begin_object(&w);
    lvk_jw_key(&w, "name");
    lvk_jw_string(&w, "conv1");
    lvk_jw_key(&w, "shape");
    lvk_jw_begin_array(&w);
    lvk_jw_int(&w, 1);
    lvk_jw_int(&w, 64);
    lvk_jw_end_array(&w);
    lvk_jw_key(&w, "empty");
    lvk_jw_begin_object(&w);
    lvk_jw_end_object(&w);
    lvk_jw_key(&w, "none");
    lvk_jw_begin_array(&w);
    lvk_jw_end_array(&w);
    lvk_jw_key(&w, "ok");
    lvk_jw_bool(&w, 1);
    lvk_jw_end_object(&w);
    assert_int_equal(lvk_jw_write(&w, p), LVK_OK);
    assert_null(w.buf);
    size_t len;
    uint8_t *d = slurp(p, &len);
    assert_string_equal((const char *)d, "{\n"
                                         "  \"name\": \"conv1\",\n"
                                         "  \"shape\": [\n"
                                         "    1,\n"
                                         "    64\n"
                                         "  ],\n"
                                         "  \"empty\": {},\n"
                                         "  \"none\": [],\n"
                                         "  \"ok\": true\n"
                                         "}\n");
    free(d);
    assert_int_equal(temp_files(), 0);
}

static void test_json_writer_roundtrip(void **state)
{
    char p[PATH_MAX];
    tpath(p, "round.json");
    const double doubles[] = {0.1, -1.5e-7, 1e-300, 1.7976931348623157e308, 4.9e-324,
                              9007199254740993.0, 123456789.123456789, -0.0, 3.0};
    /* 0.000114374816f needs all 9 significant digits to come back. */
    const float floats[] = {0.1f, 1.0f / 3.0f, -2.5e-38f, 3.4028235e38f, 16777217.0f, 1e-45f,
                            0.000114374816f};
    const char *strings[] = {"", "plain", "quote\" backslash\\ slash/",
                             "ctl \b\f\n\r\t\x01\x1f\x7f", "utf8 \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"};
    struct lvk_jw w = {0};
    lvk_jw_begin_object(&w);
    lvk_jw_key(&w, "doubles");
    lvk_jw_begin_array(&w);
    for (size_t i = 0; i < sizeof doubles / sizeof *doubles; i++)
        lvk_jw_number(&w, doubles[i]);
    lvk_jw_end_array(&w);
    lvk_jw_key(&w, "floats");
    lvk_jw_begin_array(&w);
    for (size_t i = 0; i < sizeof floats / sizeof *floats; i++)
        lvk_jw_number(&w, floats[i]);
    lvk_jw_end_array(&w);
    lvk_jw_key(&w, "ints");
    lvk_jw_begin_array(&w);
    lvk_jw_int(&w, INT64_MIN);
    lvk_jw_int(&w, INT64_MAX);
    lvk_jw_int(&w, -1);
    lvk_jw_end_array(&w);
    lvk_jw_key(&w, "strings");
    lvk_jw_begin_array(&w);
    for (size_t i = 0; i < sizeof strings / sizeof *strings; i++)
        lvk_jw_string(&w, strings[i]);
    lvk_jw_end_array(&w);
    lvk_jw_key(&w, "weird \"key\"\n");
    lvk_jw_begin_array(&w);
    lvk_jw_number(&w, NAN);
    lvk_jw_number(&w, -INFINITY);
    lvk_jw_string(&w, NULL);
    lvk_jw_null(&w);
    lvk_jw_bool(&w, 0);
    lvk_jw_string(&w, "bad \xff\xc3 utf8");
    lvk_jw_end_array(&w);
    lvk_jw_end_object(&w);
    assert_int_equal(lvk_jw_write(&w, p), LVK_OK);

    struct lvk_json *j;
    lvk_status st = lvk_json_read(p, &j);
    if (st != LVK_OK)
        fail_msg("%s", lvk_last_error());
    const struct lvk_json *a = lvk_json_get(j, "doubles");
    assert_int_equal(a->count, sizeof doubles / sizeof *doubles);
    for (size_t i = 0; i < a->count; i++)
        assert_memory_equal(&lvk_json_at(a, i)->number, &doubles[i], sizeof(double));
    a = lvk_json_get(j, "floats");
    for (size_t i = 0; i < a->count; i++) {
        float f = (float)lvk_json_at(a, i)->number;
        assert_memory_equal(&f, &floats[i], sizeof f);
    }
    a = lvk_json_get(j, "ints");
    assert_true(lvk_json_at(a, 0)->number == (double)INT64_MIN);
    assert_true(lvk_json_at(a, 1)->number == (double)INT64_MAX);
    assert_true(lvk_json_at(a, 2)->number == -1.0);
    a = lvk_json_get(j, "strings");
    for (size_t i = 0; i < a->count; i++)
        assert_string_equal(lvk_json_at(a, i)->string, strings[i]);
    a = lvk_json_get(j, "weird \"key\"\n");
    assert_non_null(a);
    assert_int_equal(a->count, 6);
    for (int i = 0; i < 4; i++)
        assert_int_equal(lvk_json_at(a, (size_t)i)->type, LVK_JSON_NULL);
    assert_int_equal(lvk_json_at(a, 4)->type, LVK_JSON_BOOL);
    assert_string_equal(lvk_json_at(a, 5)->string, "bad \xef\xbf\xbd\xef\xbf\xbd utf8");
    lvk_json_free(j);

    /* INT64 extremes are written as exact decimal text. */
    size_t len;
    uint8_t *d = slurp(p, &len);
    assert_non_null(strstr((const char *)d, "-9223372036854775808,"));
    assert_non_null(strstr((const char *)d, "9007199254740992,")); /* 2^53 + 1 as a double */
    free(d);
}

static void test_json_writer_incomplete(void **state)
{
    char p[PATH_MAX];
    tpath(p, "partial.json");
    struct lvk_jw w = {0};
    lvk_jw_begin_object(&w);
    lvk_jw_key(&w, "a");
    lvk_jw_begin_array(&w);
    expect_fail(lvk_jw_write(&w, p), LVK_ERR_INVALID_ARG, "partial.json", NULL);
    assert_null(w.buf);
    assert_false(lvk_test_exists(p));
    struct lvk_jw empty = {0};
    expect_fail(lvk_jw_write(&empty, p), LVK_ERR_INVALID_ARG, "partial.json", NULL);
    lvk_jw_free(&empty);
    assert_int_equal(temp_files(), 0);
}

/* ---- IDX -------------------------------------------------------------------- */

/* Builds an IDX image in memory: magic, dims, then `payload` data bytes of a
 * counting pattern. Returns its length. */
static size_t make_idx(uint8_t *buf, uint32_t magic, int ndim, const uint32_t *dims,
                       size_t payload)
{
    size_t n = 0;
    for (int s = 24; s >= 0; s -= 8)
        buf[n++] = (uint8_t)(magic >> s);
    for (int i = 0; i < ndim; i++)
        for (int s = 24; s >= 0; s -= 8)
            buf[n++] = (uint8_t)(dims[i] >> s);
    for (size_t i = 0; i < payload; i++)
        buf[n++] = (uint8_t)(i * 7 + 3);
    return n;
}

static void test_idx_valid(void **state)
{
    uint8_t buf[256];
    char p[PATH_MAX];
    struct lvk_npy a;

    size_t n = make_idx(buf, 0x801, 1, (const uint32_t[]){5}, 5);
    tpath(p, "labels-idx1-ubyte");
    write_bytes(p, buf, n);
    assert_int_equal(lvk_idx_read(p, &a), LVK_OK);
    expect_shape(&a, 1, 5);
    for (int i = 0; i < 5; i++)
        assert_true(a.data[i] == (float)(uint8_t)(i * 7 + 3));
    lvk_npy_free(&a);

    n = make_idx(buf, 0x803, 3, (const uint32_t[]){2, 3, 4}, 24);
    tpath(p, "images-idx3-ubyte.gz");
    write_gz(p, buf, n);
    assert_int_equal(lvk_idx_read(p, &a), LVK_OK);
    expect_shape(&a, 3, 2, 3, 4);
    for (int i = 0; i < 24; i++)
        assert_true(a.data[i] == (float)(uint8_t)(i * 7 + 3));
    lvk_npy_free(&a);

    /* Generic: four dimensions, a name that does not announce any. */
    n = make_idx(buf, 0x804, 4, (const uint32_t[]){1, 2, 1, 3}, 6);
    tpath(p, "cube.bin");
    write_bytes(p, buf, n);
    assert_int_equal(lvk_idx_read(p, &a), LVK_OK);
    expect_shape(&a, 4, 1, 2, 1, 3);
    assert_true(a.data[5] == 38.0f);
    lvk_npy_free(&a);
}

static void test_idx_errors(void **state)
{
    uint8_t buf[256];
    char p[PATH_MAX];
    struct lvk_npy a;
    const uint32_t dims[] = {2, 3, 4};

    size_t n = make_idx(buf, 0x803, 3, dims, 20);
    tpath(p, "short-idx3-ubyte.gz");
    write_gz(p, buf, n);
    expect_fail(lvk_idx_read(p, &a), LVK_ERR_FORMAT, "short-idx3-ubyte.gz",
                "truncated data (expected 24 bytes, got 20)", NULL);
    assert_null(a.data);

    tpath(p, "head-idx3-ubyte");
    write_bytes(p, buf, 10);
    expect_fail(lvk_idx_read(p, &a), LVK_ERR_FORMAT, "head-idx3-ubyte", "truncated header",
                NULL);
    write_bytes(p, buf, 2);
    expect_fail(lvk_idx_read(p, &a), LVK_ERR_FORMAT, "truncated header", NULL);

    n = make_idx(buf, 0x803, 3, dims, 25);
    tpath(p, "long-idx3-ubyte");
    write_bytes(p, buf, n);
    expect_fail(lvk_idx_read(p, &a), LVK_ERR_FORMAT, "long-idx3-ubyte", "size mismatch", NULL);

    n = make_idx(buf, 0, 3, dims, 24);
    tpath(p, "train-images-idx3-ubyte.gz");
    write_gz(p, buf, n);
    expect_fail(lvk_idx_read(p, &a), LVK_ERR_FORMAT,
                "train-images-idx3-ubyte.gz: wrong magic 0x00000000 (expected 0x00000803)",
                NULL);

    /* A labels file where the name promises images. */
    n = make_idx(buf, 0x801, 1, dims, 2);
    write_gz(p, buf, n);
    expect_fail(lvk_idx_read(p, &a), LVK_ERR_FORMAT, "wrong magic 0x00000801 (expected 0x00000803)",
                NULL);

    tpath(p, "five.idx");
    n = make_idx(buf, 0x805, 0, NULL, 0);
    write_bytes(p, buf, n);
    expect_fail(lvk_idx_read(p, &a), LVK_ERR_FORMAT, "five.idx", "wrong magic 0x00000805", NULL);
    n = make_idx(buf, 0x0D03, 3, dims, 96);
    write_bytes(p, buf, n);
    expect_fail(lvk_idx_read(p, &a), LVK_ERR_UNSUPPORTED, "five.idx", "0x0d", NULL);
    n = make_idx(buf, 0x10803, 3, dims, 24);
    write_bytes(p, buf, n);
    expect_fail(lvk_idx_read(p, &a), LVK_ERR_FORMAT, "wrong magic 0x00010803", NULL);

    /* A gzip stream cut in half. */
    uint8_t big[4096 + 16];
    uint32_t d2[2] = {64, 64};
    n = make_idx(big, 0x802, 2, d2, 4096);
    for (size_t i = 12; i < n; i++)
        big[i] = (uint8_t)((i * 2654435761u) >> 24); /* incompressible */
    tpath(p, "cut.idx2.gz");
    write_gz(p, big, n);
    size_t len;
    uint8_t *gz = slurp(p, &len);
    write_bytes(p, gz, len / 2);
    free(gz);
    expect_fail(lvk_idx_read(p, &a), LVK_ERR_FORMAT, "cut.idx2.gz", NULL);
    assert_null(a.data);

    /* Dimensions announcing 4.6e18 bytes: fails on the missing data, without
     * trying to allocate that much first. */
    uint32_t huge[2] = {0x7fffffff, 0x7fffffff};
    n = make_idx(buf, 0x802, 2, huge, 6);
    tpath(p, "huge-idx2-ubyte");
    write_bytes(p, buf, n);
    expect_fail(lvk_idx_read(p, &a), LVK_ERR_FORMAT,
                "truncated data (expected 4611686014132420609 bytes, got 6)", NULL);

    tpath(p, "missing-idx1-ubyte.gz");
    expect_fail(lvk_idx_read(p, &a), LVK_ERR_IO, "missing-idx1-ubyte.gz", NULL);
}

static void test_fashion_mnist(void **state)
{
    const char *img = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
    const char *lab = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
    if (!lvk_test_exists(img) || !lvk_test_exists(lab)) {
        print_message("Fashion-MNIST not installed (package dataset-fashion-mnist): skipped\n");
        skip();
    }
    struct lvk_npy a;
    assert_int_equal(lvk_idx_read(img, &a), LVK_OK);
    expect_shape(&a, 3, 10000, 28, 28);
    /* Sums taken with Python's gzip + numpy on the same files. */
    double first = 0, last = 0, all = 0;
    for (size_t i = 0; i < 784; i++) {
        first += a.data[i];
        last += a.data[a.count - 784 + i];
    }
    for (size_t i = 0; i < a.count; i++)
        all += a.data[i];
    assert_true(first == 33456.0);
    assert_true(last == 24390.0);
    assert_true(all == 573469082.0);
    assert_true(a.data[14 * 28 + 14] == 110.0f);
    lvk_npy_free(&a);

    assert_int_equal(lvk_idx_read(lab, &a), LVK_OK);
    expect_shape(&a, 1, 10000);
    assert_true(a.data[0] == 9.0f);
    int hist[10] = {0};
    for (size_t i = 0; i < a.count; i++) {
        assert_true(a.data[i] >= 0 && a.data[i] <= 9);
        hist[(int)a.data[i]]++;
    }
    for (int c = 0; c < 10; c++)
        assert_int_equal(hist[c], 1000);
    lvk_npy_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_atomic_write_and_read, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_atomic_abort_keeps_old_file, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_atomic_errors, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_png_roundtrip_gray, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_png_roundtrip_rgb, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_png_write_clamps_and_rounds, setup_dir, teardown_dir),
        cmocka_unit_test(test_png_fixtures),
        cmocka_unit_test(test_png_channel_conversion),
        cmocka_unit_test_setup_teardown(test_png_corrupt, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_png_write_errors, setup_dir, teardown_dir),
        cmocka_unit_test(test_resize_matches_torch),
        cmocka_unit_test(test_zoom),
        cmocka_unit_test(test_resize_by_hand),
        cmocka_unit_test(test_npy_read_dtypes),
        cmocka_unit_test(test_npy_versions),
        cmocka_unit_test(test_npy_unsupported),
        cmocka_unit_test_setup_teardown(test_npy_corrupt, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_npy_write_matches_numpy, setup_dir, teardown_dir),
        cmocka_unit_test(test_json_parse_tricky),
        cmocka_unit_test(test_json_parse_errors),
        cmocka_unit_test_setup_teardown(test_json_read_file, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_json_writer_format, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_json_writer_roundtrip, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_json_writer_incomplete, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_idx_valid, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_idx_errors, setup_dir, teardown_dir),
        cmocka_unit_test(test_fashion_mnist),
    };
    return cmocka_run_group_tests_name("io", tests, NULL, NULL);
}
