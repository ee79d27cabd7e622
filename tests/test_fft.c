/* Batched real FFTs on VkFFT (src/optvis/fft.c) and Lucid's spectral image
 * parameterisation on top of them (src/optvis/spectral.c).
 *
 *   - R2C and C2R against numpy's rfft2 and irfft2 (tests/ref/
 *     make_fft_golden.py) for batch 3 at 28x28, 32x32, 128x128, 224x224 and
 *     27x33, inputs drawn on both sides from the same splitmix64 stream;
 *     numpy's C2R input is a random half spectrum, and the device's is its
 *     projection onto the spectra of real images (numpy does it implicitly).
 *     Recordings are replayed with new inputs to check they hold no stale
 *     state.
 *   - The spectral initialisation and forward pass against numpy's
 *     transcription of Lucid's fft_image.
 *   - The backward pass: <F p, g> = <p, F^T g> for random p, g, and every
 *     parameter's gradient against central differences of a double-precision
 *     transcription of numpy's irfft2 (its own Hermitian extension, not the
 *     adjoint formula of spectral.c), kx = 0 and Nyquist columns included.
 *   - The compiled shaders kept in the cache folder: saved, loaded (and
 *     still right), and a damaged file compiled anew and replaced.
 *   - No validation messages anywhere. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/lvk_io.h"
#include "optvis/fft.h"
#include "optvis/spectral.h"
#include "support/op_harness.h"

/* Error bounds, as max |device - ref| / max |ref| over an array: VkFFT is
 * within a few 1e-7 of a double DFT (about 3e-7 measured). */
#define FFT_TOL      5e-6
#define SPECTRAL_TOL 5e-6
#define PARAM_TOL    1e-6  /* generator: float rounding of the same doubles */
#define ADJOINT_TOL  1e-4  /* <F p, g> vs <p, F^T g>, relative */
#define GRAD_TOL     1e-5  /* vs central differences, relative to max |grad| */

/* ---- data ------------------------------------------------------------------------ */

/* The generator of tests/ref/make_fft_golden.py (splitmix64). */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* n floats in [-1, 1): the top 24 bits of each draw (exact in float). */
static float *uniform_stream(uint64_t seed, size_t n)
{
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((double)(splitmix64(&seed) >> 40) / 8388608.0 - 1.0);
    return x;
}

static uint64_t seed_r2c(uint32_t h, uint32_t w) { return 1000003ull * h + w; }
static uint64_t seed_c2r(uint32_t h, uint32_t w) { return 1000003ull * h + w + 7; }

static void load_golden(const char *name, size_t count, struct lvk_npy *a)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tests/data/fft/%s", LVK_SOURCE_DIR, name);
    if (lvk_npy_read(path, a) != LVK_OK)
        fail_msg("%s (run tests/ref/make_fft_golden.py)", lvk_last_error());
    assert_int_equal(a->count, count);
}

/* max |a - ref| / max |ref|, printed with a label. */
static double rel_err(const char *label, const float *a, const float *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - ref[i]));
        den = fmax(den, fabs((double)ref[i]));
    }
    double e = den > 0 ? num / den : num;
    printf("  %-36s max rel err %.2e\n", label, e);
    return e;
}

/* Device buffers in their own arena. */
struct bufs {
    struct lvk_buf b[4];
    struct lvk_arena arena;
    int n;
};

static void bufs_create(struct bufs *B, const VkDeviceSize *sizes, int n)
{
    B->n = n;
    assert_int_equal(lvk_arena_create(lvk_test_ctx(), sizes, n, B->b, &B->arena), LVK_OK);
}

static void bufs_destroy(struct bufs *B) { lvk_arena_destroy(lvk_test_ctx(), B->b, B->n, &B->arena); }

static void upload(const struct lvk_buf *b, const float *x, size_t n)
{
    assert_int_equal(lvk_buf_upload(lvk_test_ctx(), b, 0, x, n * sizeof *x), LVK_OK);
}

static float *download(const struct lvk_buf *b, size_t n)
{
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    assert_int_equal(lvk_buf_download(lvk_test_ctx(), b, 0, x, n * sizeof *x), LVK_OK);
    return x;
}

/* Replaces the kx = 0 column, and for even w the kx = w/2 column, of each
 * half spectrum [batch, h, w/2+1, 2] by its Hermitian part along ky,
 * (z[ky] + conj(z[-ky])) / 2: the part numpy's irfft2 uses (optvis/fft.h). */
static void hermitian_columns(float *z, uint32_t batch, uint32_t h, uint32_t w)
{
    const uint32_t wh = w / 2 + 1;
    for (uint32_t b = 0; b < batch; b++)
        for (uint32_t kx = 0; kx < wh; kx += (w % 2 == 0 && wh > 1) ? wh - 1 : wh)
            for (uint32_t ky = 0; ky <= h / 2; ky++) {
                float *a = z + (((size_t)b * h + ky) * wh + kx) * 2;
                float *m = z + (((size_t)b * h + (h - ky) % h) * wh + kx) * 2;
                float re = 0.5f * (a[0] + m[0]), im = 0.5f * (a[1] - m[1]);
                a[0] = m[0] = re;
                a[1] = im;
                m[1] = -im;
            }
}

static void scale_floats(float *x, size_t n, float a)
{
    for (size_t i = 0; i < n; i++)
        x[i] *= a;
}

/* ---- R2C / C2R against numpy ----------------------------------------------------- */

/* One direction of check_fft, numpy's `ref` [nref] for the input `x` [nx]:
 * records the transform from `in` to `out` once and submits it twice, on x,
 * then on x and ref both scaled by `scale`, so a replayed recording is seen
 * to hold no stale state. The input is uploaded before each submit (C2R
 * clobbers it); R2C must leave it as it was (out of place). Returns the
 * recording, with x and ref left scaled. */
static struct lvk_cmd *check_direction(bool c2r, struct lvk_fft *f, const struct lvk_buf *in,
                                       const struct lvk_buf *out, float *x, size_t nx, float *ref,
                                       size_t nref, float scale)
{
    const char *dir = c2r ? "c2r" : "r2c";
    struct lvk_cmd *cmd;
    assert_int_equal(lvk_cmd_create(lvk_test_ctx(), false, &cmd), LVK_OK);
    assert_int_equal(lvk_cmd_begin(cmd), LVK_OK);
    if ((c2r ? lvk_fft_record_c2r : lvk_fft_record_r2c)(cmd, f, in, out) != LVK_OK)
        fail_msg("%s: %s", dir, lvk_last_error());
    assert_int_equal(lvk_cmd_end(cmd), LVK_OK);
    for (int rep = 0; rep < 2; rep++) {
        char label[64];
        if (rep == 0) {
            snprintf(label, sizeof label, "%s vs numpy %s", dir, c2r ? "irfft2 * h*w" : "rfft2");
        } else {
            scale_floats(x, nx, scale);
            scale_floats(ref, nref, scale);
            snprintf(label, sizeof label, "%s (replayed, %gx input)", dir, scale);
        }
        upload(in, x, nx);
        assert_int_equal(lvk_cmd_submit(cmd), LVK_OK);
        float *got = download(out, nref);
        assert_true(rel_err(label, got, ref, nref) < FFT_TOL);
        free(got);
        if (!c2r) {
            float *again = download(in, nx);
            assert_memory_equal(again, x, nx * sizeof *x);
            free(again);
        }
    }
    return cmd;
}

/* With `two_pairs`, the C2R runs on a second pair of buffers, which makes
 * lvk_fft load a second plan from the first one's binaries. */
static void check_fft_pairs(uint32_t batch, uint32_t h, uint32_t w, bool two_pairs)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    printf("fft %u x %u x %u\n", batch, h, w);
    const size_t nreal = (size_t)batch * h * w, nspec = (size_t)batch * h * (w / 2 + 1) * 2;
    struct lvk_fft *f;
    if (lvk_fft_create(ctx, batch, h, w, &f) != LVK_OK)
        fail_msg("lvk_fft_create: %s", lvk_last_error());
    assert_int_equal(lvk_fft_spectrum_bytes(f), nspec * sizeof(float));
    assert_true(lvk_fft_real_bytes(f) >= nreal * sizeof(float));

    struct bufs B, B2;
    bufs_create(&B, (VkDeviceSize[]){lvk_fft_real_bytes(f), lvk_fft_spectrum_bytes(f)}, 2);
    if (two_pairs)
        bufs_create(&B2, (VkDeviceSize[]){lvk_fft_real_bytes(f), lvk_fft_spectrum_bytes(f)}, 2);
    const struct lvk_buf *real = &B.b[0], *spec = &B.b[1];
    char name[64];

    /* R2C of x, then 3x. */
    float *x = uniform_stream(seed_r2c(h, w), nreal);
    struct lvk_npy X;
    snprintf(name, sizeof name, "r2c_%ux%ux%u.npy", batch, h, w);
    load_golden(name, nspec, &X);
    struct lvk_cmd *cmd = check_direction(false, f, real, spec, x, nreal, X.data, nspec, 3.0f);

    /* C2R of a random half spectrum, then of -1/2 of it, in a second
     * recording. The expected output is numpy's irfft2 of the raw random
     * spectrum; the device gets its Hermitian-column projection, which numpy
     * applies implicitly. */
    float *z = uniform_stream(seed_c2r(h, w), nspec);
    hermitian_columns(z, batch, h, w);
    struct lvk_npy Y;
    snprintf(name, sizeof name, "c2r_%ux%ux%u.npy", batch, h, w);
    load_golden(name, nreal, &Y);
    struct lvk_cmd *cmd2 = check_direction(true, f, two_pairs ? &B2.b[1] : spec,
                                           two_pairs ? &B2.b[0] : real, z, nspec, Y.data, nreal,
                                           -0.5f);

    /* The first recording still works after the second was made. */
    upload(real, x, nreal);
    assert_int_equal(lvk_cmd_submit(cmd), LVK_OK);
    float *got = download(spec, nspec);
    assert_true(rel_err("r2c (first recording again)", got, X.data, nspec) < FFT_TOL);
    free(got);

    lvk_cmd_destroy(cmd2);
    lvk_cmd_destroy(cmd);
    lvk_npy_free(&X);
    lvk_npy_free(&Y);
    free(x);
    free(z);
    if (two_pairs)
        bufs_destroy(&B2);
    bufs_destroy(&B);
    lvk_fft_destroy(f);
    lvk_test_assert_no_validation();
}

static void check_fft(uint32_t batch, uint32_t h, uint32_t w) { check_fft_pairs(batch, h, w, false); }

static void test_fft_28(void **state) { check_fft(3, 28, 28); }
static void test_fft_32(void **state) { check_fft(3, 32, 32); }
static void test_fft_128(void **state) { check_fft(3, 128, 128); }
static void test_fft_224(void **state) { check_fft(3, 224, 224); }
static void test_fft_27x33(void **state) { check_fft(3, 27, 33); }

static void test_fft_small_real_buffer(void **state)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    struct lvk_fft *f;
    assert_int_equal(lvk_fft_create(ctx, 2, 8, 8, &f), LVK_OK);
    struct bufs B;
    bufs_create(&B, (VkDeviceSize[]){2 * 8 * 8 * sizeof(float), lvk_fft_spectrum_bytes(f)}, 2);
    struct lvk_cmd *cmd;
    assert_int_equal(lvk_cmd_create(ctx, false, &cmd), LVK_OK);
    assert_int_equal(lvk_cmd_begin(cmd), LVK_OK);
    /* A dense [2,8,8] buffer is smaller than VkFFT binds: refused, not recorded. */
    assert_int_equal(lvk_fft_record_r2c(cmd, f, &B.b[0], &B.b[1]), LVK_ERR_INVALID_ARG);
    assert_int_equal(lvk_cmd_end(cmd), LVK_OK);
    lvk_cmd_destroy(cmd);
    bufs_destroy(&B);
    lvk_fft_destroy(f);
    lvk_test_assert_no_validation();
}

/* ---- compiled shaders kept on disk ----------------------------------------------------- */

/* The one vkfft-*.bin file in dir (its path in out); fails on none or more. */
static void cached_file(const char *dir, char *out, size_t n)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int found = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (!strncmp(e->d_name, "vkfft-", 6) && strstr(e->d_name, ".bin") &&
            !strstr(e->d_name, ".tmp")) {
            snprintf(out, n, "%s/%s", dir, e->d_name);
            found++;
        }
    closedir(d);
    assert_int_equal(found, 1);
}

static bool create_cached(struct lvk_ctx *ctx, uint32_t batch, uint32_t h, uint32_t w)
{
    struct lvk_fft *f;
    if (lvk_fft_create(ctx, batch, h, w, &f) != LVK_OK)
        fail_msg("lvk_fft_create: %s", lvk_last_error());
    bool cached = lvk_fft_cached(f);
    lvk_fft_destroy(f);
    return cached;
}

enum { CUT = -1, APPEND = -2 };

/* Rewrites byte `at` of the file; or cuts it to half (CUT), or adds a byte
 * at its end (APPEND). */
static void damage(const char *path, long at)
{
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long size = ftell(fp);
    if (at == CUT) {
        assert_int_equal(ftruncate(fileno(fp), size / 2), 0);
    } else if (at == APPEND) {
        fputc(0, fp);
    } else {
        assert_true(at < size);
        assert_int_equal(fseek(fp, at, SEEK_SET), 0);
        int c = fgetc(fp);
        assert_int_equal(fseek(fp, at, SEEK_SET), 0);
        fputc(c ^ 0x5a, fp);
    }
    assert_int_equal(fclose(fp), 0);
}

/* A create compiles and saves; the next loads, and its transforms still
 * match numpy, a second plan made from the loaded binaries included; a file
 * with another key, a wrong checksum, cut short or with bytes after its
 * end is compiled anew and replaced; another size has its own file.
 * Runs in a folder of its own, then gives the context its folder back. */
static void test_fft_cached_binaries(void **state)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    char saved[sizeof ctx->cache_dir], dir[] = "/tmp/lvk_test_fft_XXXXXX", path[600];
    snprintf(saved, sizeof saved, "%s", ctx->cache_dir);
    assert_non_null(mkdtemp(dir));
    snprintf(ctx->cache_dir, sizeof ctx->cache_dir, "%s", dir);

    assert_false(create_cached(ctx, 3, 32, 32));
    cached_file(dir, path, sizeof path);
    assert_true(create_cached(ctx, 3, 32, 32));
    check_fft_pairs(3, 32, 32, true);   /* from the file */

    /* The key's first byte, the checksum's (the binaries themselves would
     * still load), a cut file, a byte too many. */
    const long damages[] = {8, 8 + 256 + 8, CUT, APPEND};
    for (size_t i = 0; i < sizeof damages / sizeof damages[0]; i++) {
        damage(path, damages[i]);
        assert_false(create_cached(ctx, 3, 32, 32));
        assert_true(create_cached(ctx, 3, 32, 32));
    }
    check_fft(3, 32, 32);

    assert_false(create_cached(ctx, 3, 28, 28));
    assert_true(create_cached(ctx, 3, 28, 28));

    snprintf(ctx->cache_dir, sizeof ctx->cache_dir, "%s", saved);
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.') {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            remove(path);
        }
    closedir(d);
    assert_int_equal(rmdir(dir), 0);
}

/* ---- spectral parameterisation: double-precision reference --------------------------- */

/* Lucid's per-frequency scale, in double, straight from the formula. */
static double lucid_scale(uint32_t h, uint32_t w, uint32_t ky, uint32_t kx, double decay)
{
    double fy = (ky < (h + 1) / 2 ? (double)ky : (double)ky - h) / h; /* np.fft.fftfreq(h) */
    double fx = (double)kx / w;                                       /* np.fft.rfftfreq(w) */
    double f = fmax(sqrt(fy * fy + fx * fx), 1.0 / (h > w ? h : w));
    return sqrt((double)h * w) / pow(f, decay);
}

/* raw = np.fft.irfft2(p * scale, s=(h, w)) / 4, transcribed from numpy's
 * definition: inverse DFT along h, then along w over the Hermitian extension
 * of each row (X[w-k] = conj(X[k]); the imaginary parts of X[0] and, for
 * even w, X[w/2] are discarded). p: [nc, h, w/2+1, 2], raw: [nc, h, w]. */
static void ref_spectral_fwd(double *raw, const double *p, uint32_t nc, uint32_t h, uint32_t w,
                             double decay)
{
    const uint32_t wh = w / 2 + 1;
    double *yr = malloc(sizeof(double) * h * wh), *yi = malloc(sizeof(double) * h * wh);
    double *xr = malloc(sizeof(double) * w), *xi = malloc(sizeof(double) * w);
    for (uint32_t c = 0; c < nc; c++) {
        const double *pc = p + (size_t)c * h * wh * 2;
        for (uint32_t y = 0; y < h; y++)
            for (uint32_t kx = 0; kx < wh; kx++) {
                double sr = 0, si = 0;
                for (uint32_t ky = 0; ky < h; ky++) {
                    double s = lucid_scale(h, w, ky, kx, decay);
                    double zr = pc[(ky * wh + kx) * 2] * s, zi = pc[(ky * wh + kx) * 2 + 1] * s;
                    double a = 2 * M_PI * (double)ky * y / h;
                    sr += zr * cos(a) - zi * sin(a);
                    si += zr * sin(a) + zi * cos(a);
                }
                yr[y * wh + kx] = sr / h;
                yi[y * wh + kx] = si / h;
            }
        for (uint32_t y = 0; y < h; y++) {
            for (uint32_t k = 0; k < w; k++) {
                uint32_t src = k < wh ? k : w - k;
                xr[k] = yr[y * wh + src];
                xi[k] = k < wh ? yi[y * wh + src] : -yi[y * wh + src];
            }
            xi[0] = 0;
            if (w % 2 == 0)
                xi[w / 2] = 0;
            for (uint32_t x = 0; x < w; x++) {
                double sr = 0;
                for (uint32_t k = 0; k < w; k++) {
                    double a = 2 * M_PI * (double)k * x / w;
                    sr += xr[k] * cos(a) - xi[k] * sin(a);
                }
                raw[((size_t)c * h + y) * w + x] = sr / w / 4.0;
            }
        }
    }
    free(yr);
    free(yi);
    free(xr);
    free(xi);
}

/* ---- spectral: initialisation and forward against numpy ------------------------------ */

static void check_spectral_fwd(uint32_t b, uint32_t c, uint32_t h, uint32_t w, float decay,
                               uint64_t seed)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    printf("spectral %u x %u x %u x %u, decay %g\n", b, c, h, w, decay);
    struct lvk_spectral *s;
    if (lvk_spectral_create(ctx, b, c, h, w, decay, seed, &s) != LVK_OK)
        fail_msg("lvk_spectral_create: %s", lvk_last_error());
    const size_t npix = (size_t)b * c * h * w;
    assert_int_equal(s->nparams, (size_t)b * c * h * (w / 2 + 1) * 2);

    char name[96];
    struct lvk_npy P, R;
    snprintf(name, sizeof name, "spectral_%ux%ux%ux%u_d%g_params.npy", b, c, h, w, decay);
    load_golden(name, s->nparams, &P);
    snprintf(name, sizeof name, "spectral_%ux%ux%ux%u_d%g.npy", b, c, h, w, decay);
    load_golden(name, npix, &R);

    float *p = download(s->param, s->nparams);
    assert_true(rel_err("initial params vs numpy generator", p, P.data, s->nparams) < PARAM_TOL);
    /* N(0, 0.01^2): a loose sanity check of the moments. */
    double m2 = 0;
    for (uint32_t i = 0; i < s->nparams; i++)
        m2 += (double)p[i] * p[i];
    assert_true(fabs(sqrt(m2 / s->nparams) - 0.01) < 0.001);

    struct bufs B;
    bufs_create(&B, (VkDeviceSize[]){s->raw_bytes}, 1);
    struct lvk_cmd *cmd;
    assert_int_equal(lvk_cmd_create(ctx, false, &cmd), LVK_OK);
    assert_int_equal(lvk_cmd_begin(cmd), LVK_OK);
    assert_int_equal(lvk_spectral_record_fwd(cmd, s, &B.b[0]), LVK_OK);
    assert_int_equal(lvk_cmd_end(cmd), LVK_OK);
    /* Twice: the forward must not consume its parameters. */
    for (int rep = 0; rep < 2; rep++) {
        assert_int_equal(lvk_cmd_submit(cmd), LVK_OK);
        float *raw = download(&B.b[0], npix);
        assert_true(rel_err("pixels vs numpy fft_image", raw, R.data, npix) < SPECTRAL_TOL);
        free(raw);
    }
    lvk_cmd_destroy(cmd);
    bufs_destroy(&B);
    free(p);
    lvk_npy_free(&P);
    lvk_npy_free(&R);
    lvk_spectral_destroy(s);
    lvk_test_assert_no_validation();
}

static void test_spectral_fwd_28(void **state) { check_spectral_fwd(2, 3, 28, 28, 1.0f, 42); }
static void test_spectral_fwd_27x33(void **state) { check_spectral_fwd(1, 3, 27, 33, 1.5f, 7); }

/* ---- spectral: adjoint ------------------------------------------------------------------ */

/* Runs forward on p and backward on g (param_grad zeroed first) on the
 * device; returns raw [npix] and grad [nparams]. */
static void device_fwd_bwd(struct lvk_spectral *s, const float *p, const float *g, float **raw,
                           float **grad)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    const size_t npix = (size_t)s->b * s->c * s->h * s->w;
    struct bufs B;
    bufs_create(&B, (VkDeviceSize[]){s->raw_bytes, s->raw_bytes}, 2);
    upload(s->param, p, s->nparams);
    upload(&B.b[1], g, npix);
    struct lvk_cmd *cmd;
    assert_int_equal(lvk_cmd_create(ctx, false, &cmd), LVK_OK);
    assert_int_equal(lvk_cmd_begin(cmd), LVK_OK);
    lvk_cmd_fill(cmd, s->param_grad, 0, VK_WHOLE_SIZE, 0);
    assert_int_equal(lvk_spectral_record_fwd(cmd, s, &B.b[0]), LVK_OK);
    assert_int_equal(lvk_spectral_record_bwd(cmd, s, &B.b[1]), LVK_OK);
    assert_int_equal(lvk_cmd_end(cmd), LVK_OK);
    assert_int_equal(lvk_cmd_submit(cmd), LVK_OK);
    *raw = download(&B.b[0], npix);
    *grad = download(s->param_grad, s->nparams);
    /* The backward accumulates: a second submit of only the backward half
     * would double it; here, re-running the whole step (which zeroes first)
     * must give the same gradient. */
    assert_int_equal(lvk_cmd_submit(cmd), LVK_OK);
    float *again = download(s->param_grad, s->nparams);
    assert_memory_equal(again, *grad, s->nparams * sizeof(float));
    free(again);
    lvk_cmd_destroy(cmd);
    bufs_destroy(&B);
}

static void check_adjoint(uint32_t b, uint32_t c, uint32_t h, uint32_t w, float decay)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    printf("adjoint %u x %u x %u x %u, decay %g\n", b, c, h, w, decay);
    struct lvk_spectral *s;
    if (lvk_spectral_create(ctx, b, c, h, w, decay, 1, &s) != LVK_OK)
        fail_msg("lvk_spectral_create: %s", lvk_last_error());
    const size_t npix = (size_t)b * c * h * w;
    float *p = uniform_stream(0xADu + h * 131u + w, s->nparams);
    float *g = uniform_stream(0x6Du + h * 131u + w, npix);
    float *raw, *grad;
    device_fwd_bwd(s, p, g, &raw, &grad);
    double lhs = 0, rhs = 0, lmag = 0, rmag = 0;
    for (size_t i = 0; i < npix; i++) {
        lhs += (double)raw[i] * g[i];
        lmag += fabs((double)raw[i] * g[i]);
    }
    for (uint32_t i = 0; i < s->nparams; i++) {
        rhs += (double)p[i] * grad[i];
        rmag += fabs((double)p[i] * grad[i]);
    }
    double rel = fabs(lhs - rhs) / fmax(fabs(lhs), 1e-30);
    printf("  <F p, g> = %.9g, <p, F^T g> = %.9g, rel diff %.2e (sum |terms| %.3g)\n", lhs, rhs,
           rel, fmax(lmag, rmag));
    assert_true(rel < ADJOINT_TOL);
    free(p);
    free(g);
    free(raw);
    free(grad);
    lvk_spectral_destroy(s);
    lvk_test_assert_no_validation();
}

static void test_adjoint_28(void **state) { check_adjoint(2, 3, 28, 28, 1.0f); }
static void test_adjoint_27x33(void **state) { check_adjoint(2, 3, 27, 33, 1.0f); }
static void test_adjoint_224(void **state) { check_adjoint(1, 3, 224, 224, 1.0f); }

/* Gradient entries against central differences of <g, ref_fwd(p)> in double.
 * `all` checks every parameter (small sizes); otherwise the listed (ky, kx)
 * positions, both parts, of every image and channel. */
static void check_fd(uint32_t b, uint32_t c, uint32_t h, uint32_t w, float decay, bool all,
                     const uint32_t (*pos)[2], int npos)
{
    struct lvk_ctx *ctx = lvk_test_ctx();
    if (!ctx)
        skip();
    printf("finite differences %u x %u x %u x %u, decay %g\n", b, c, h, w, decay);
    struct lvk_spectral *s;
    if (lvk_spectral_create(ctx, b, c, h, w, decay, 3, &s) != LVK_OK)
        fail_msg("lvk_spectral_create: %s", lvk_last_error());
    const uint32_t nc = b * c, wh = w / 2 + 1;
    const size_t npix = (size_t)nc * h * w;
    float *p = uniform_stream(0xF0u + h * 131u + w, s->nparams);
    float *g = uniform_stream(0x0Fu + h * 131u + w, npix);
    float *raw, *grad;
    device_fwd_bwd(s, p, g, &raw, &grad);

    /* The reference forward is the function being differentiated: it must
     * match the device forward first. */
    double *pd = malloc(sizeof(double) * s->nparams), *rd = malloc(sizeof(double) * npix);
    float *rf = malloc(sizeof(float) * npix);
    for (uint32_t i = 0; i < s->nparams; i++)
        pd[i] = p[i];
    ref_spectral_fwd(rd, pd, nc, h, w, decay);
    for (size_t i = 0; i < npix; i++)
        rf[i] = (float)rd[i];
    assert_true(rel_err("device forward vs double reference", raw, rf, npix) < SPECTRAL_TOL);

    double gmax = 0;
    for (uint32_t i = 0; i < s->nparams; i++)
        gmax = fmax(gmax, fabs(grad[i]));
    /* The objective is linear in p, so a unit step has no truncation error;
     * only one image-channel plane changes, so evaluate that plane alone. */
    const size_t plane_p = (size_t)h * wh * 2, plane_x = (size_t)h * w;
    double *rp = malloc(sizeof(double) * plane_x), *rm = malloc(sizeof(double) * plane_x);
    double worst = 0;
    int checked = 0, zero_im = 0;
    for (uint32_t pl = 0; pl < nc; pl++)
        for (uint32_t ky = 0; ky < h; ky++)
            for (uint32_t kx = 0; kx < wh; kx++) {
                bool want = all;
                for (int k = 0; k < npos && !want; k++)
                    want = pos[k][0] == ky && pos[k][1] == kx;
                if (!want)
                    continue;
                for (int part = 0; part < 2; part++) {
                    size_t i = pl * plane_p + (ky * wh + kx) * 2 + part;
                    double *pp = pd + pl * plane_p;
                    double keep = pd[i];
                    pd[i] = keep + 1;
                    ref_spectral_fwd(rp, pp, 1, h, w, decay);
                    pd[i] = keep - 1;
                    ref_spectral_fwd(rm, pp, 1, h, w, decay);
                    pd[i] = keep;
                    double fd = 0;
                    for (size_t k = 0; k < plane_x; k++)
                        fd += g[pl * plane_x + k] * (rp[k] - rm[k]) / 2;
                    double e = fabs(fd - grad[i]) / gmax;
                    if (e > worst)
                        worst = e;
                    if (e >= GRAD_TOL)
                        printf("  (plane %u, ky %u, kx %u, %s): device %.8g, fd %.8g\n", pl, ky,
                               kx, part ? "im" : "re", grad[i], fd);
                    /* Imaginary parts C2R cannot see: zero on both sides. */
                    if (part == 1 && (kx == 0 || 2 * kx == w) && (ky == 0 || 2 * ky == h)) {
                        assert_true(fabs(fd) < 1e-9 * gmax);
                        assert_true(fabs(grad[i]) < 1e-6 * gmax);
                        zero_im++;
                    }
                    checked++;
                }
            }
    printf("  %d entries (%d invisible imaginary parts), worst error %.2e of max |grad| %.3g\n",
           checked, zero_im, worst, gmax);
    assert_true(checked > 0);
    assert_true(worst < GRAD_TOL);
    free(rp);
    free(rm);
    free(pd);
    free(rd);
    free(rf);
    free(p);
    free(g);
    free(raw);
    free(grad);
    lvk_spectral_destroy(s);
    lvk_test_assert_no_validation();
}

static void test_fd_even(void **state) { check_fd(1, 2, 6, 8, 1.0f, true, NULL, 0); }
static void test_fd_odd(void **state) { check_fd(2, 1, 5, 7, 1.5f, true, NULL, 0); }

static void test_fd_28(void **state)
{
    /* DC, the kx = 0 and kx = W/2 columns (ky = 0, Nyquist and generic),
     * an interior column, and a negative ky. */
    static const uint32_t pos[][2] = {{0, 0}, {14, 0}, {5, 0}, {0, 14}, {14, 14}, {9, 14},
                                      {3, 7}, {25, 1}};
    check_fd(1, 3, 28, 28, 1.0f, false, pos, (int)LVK_ARRAY_LEN(pos));
}

static void test_fd_27x33(void **state)
{
    /* Odd sizes: no Nyquist column or row; the last column kx = 16 is paired. */
    static const uint32_t pos[][2] = {{0, 0}, {13, 0}, {14, 0}, {0, 16}, {20, 16}, {4, 9}};
    check_fd(1, 2, 27, 33, 1.0f, false, pos, (int)LVK_ARRAY_LEN(pos));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fft_28),
        cmocka_unit_test(test_fft_32),
        cmocka_unit_test(test_fft_128),
        cmocka_unit_test(test_fft_224),
        cmocka_unit_test(test_fft_27x33),
        cmocka_unit_test(test_fft_small_real_buffer),
        cmocka_unit_test(test_fft_cached_binaries),
        cmocka_unit_test(test_spectral_fwd_28),
        cmocka_unit_test(test_spectral_fwd_27x33),
        cmocka_unit_test(test_adjoint_28),
        cmocka_unit_test(test_adjoint_27x33),
        cmocka_unit_test(test_adjoint_224),
        cmocka_unit_test(test_fd_even),
        cmocka_unit_test(test_fd_odd),
        cmocka_unit_test(test_fd_28),
        cmocka_unit_test(test_fd_27x33),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
