/* IDX files, the MNIST / Fashion-MNIST container, plain or gzip-compressed.
 *
 * Only unsigned-byte data is read (every published MNIST-style set uses it);
 * values stay raw 0..255, normalisation is the caller's business. zlib's
 * gzread passes uncompressed files through unchanged, so one code path
 * serves both. */
#include <errno.h>
#include <string.h>
#include <zlib.h>

#include "io/lvk_io.h"
#include "lvk_util.h"

#define CHUNK (1u << 16)

/* The conventional names ("train-images-idx3-ubyte.gz") state the number of
 * dimensions; returns it, or 0 when the name does not say. Used to catch a
 * labels file passed where images are expected, and to say what magic was
 * expected. */
static int ndim_from_name(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    for (const char *p = strstr(base, "idx"); p; p = strstr(p + 1, "idx"))
        if (p[3] >= '1' && p[3] <= '4' && (p[4] < '0' || p[4] > '9'))
            return p[3] - '0';
    return 0;
}

/* Reads exactly n bytes unless the stream ends; returns the count read, or
 * -1 on a decompression or read error. */
static long long read_full(gzFile gz, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        unsigned want = (unsigned)LVK_MIN(n - got, (size_t)CHUNK);
        int r = gzread(gz, buf + got, want);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (long long)got;
}

static lvk_status gz_failure(gzFile gz, const char *path)
{
    int code;
    const char *msg = gzerror(gz, &code);
    if (code == Z_ERRNO)
        return lvk_fail(LVK_ERR_IO, "%s: read failed: %s", path, strerror(errno));
    return lvk_fail(LVK_ERR_FORMAT, "%s: corrupt gzip data (%s)", path, msg);
}

lvk_status lvk_idx_read(const char *path, struct lvk_npy *out)
{
    memset(out, 0, sizeof *out);
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return lvk_fail(LVK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    gzbuffer(gz, CHUNK * 2);
    uint8_t *chunk = NULL;
    lvk_status st;
    uint8_t head[4 + 4 * 4];
    long long got = read_full(gz, head, 4);
    if (got < 0) {
        st = gz_failure(gz, path);
        goto fail;
    }
    if (got < 4) {
        st = lvk_fail(LVK_ERR_FORMAT, "%s: truncated header (%lld of 4 bytes)", path, got);
        goto fail;
    }
    uint32_t magic = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 |
                     (uint32_t)head[2] << 8 | head[3];
    int named = ndim_from_name(path), ndim = head[3];
    if (head[0] || head[1] || (head[2] == 0x08 && (ndim < 1 || ndim > 4)) ||
        (named && ndim != named)) {
        if (named)
            st = lvk_fail(LVK_ERR_FORMAT, "%s: wrong magic 0x%08x (expected 0x%08x)", path,
                          magic, 0x800u | (unsigned)named);
        else
            st = lvk_fail(LVK_ERR_FORMAT, "%s: wrong magic 0x%08x (expected 0x0000080N, "
                          "unsigned bytes in N = 1 to 4 dimensions)", path, magic);
        goto fail;
    }
    if (head[2] != 0x08) {
        st = lvk_fail(LVK_ERR_UNSUPPORTED, "%s: IDX data type 0x%02x not supported "
                      "(only unsigned bytes, 0x08)", path, head[2]);
        goto fail;
    }
    size_t hsize = 4 * (size_t)ndim;
    got = read_full(gz, head + 4, hsize);
    if (got < 0) {
        st = gz_failure(gz, path);
        goto fail;
    }
    if ((size_t)got < hsize) {
        st = lvk_fail(LVK_ERR_FORMAT, "%s: truncated header (%lld of %zu bytes)", path, 4 + got,
                      4 + hsize);
        goto fail;
    }
    size_t count = 1;
    out->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        const uint8_t *p = head + 4 + 4 * i;
        uint32_t d = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (d > INT32_MAX || (d && count > SIZE_MAX / sizeof(float) / d)) {
            st = lvk_fail(LVK_ERR_FORMAT, "%s: implausible dimension %u", path, d);
            goto fail;
        }
        out->shape[i] = d;
        count *= d;
    }
    size_t cap = LVK_MIN(count, (size_t)CHUNK), done = 0;
    out->data = lvk_calloc(cap, sizeof(float));
    chunk = malloc(CHUNK);
    if (!out->data || !chunk) {
        st = lvk_fail(LVK_ERR_HOST_OOM, "%s: out of host memory", path);
        goto fail;
    }
    while (done < count) {
        if (done == cap) {
            /* Grow with the data actually present instead of trusting the
             * header: a few corrupt bytes must not reserve gigabytes. */
            size_t ncap = LVK_MIN(count, cap * 2);
            float *nd = realloc(out->data, ncap * sizeof(float));
            if (!nd) {
                st = lvk_fail(LVK_ERR_HOST_OOM, "%s: out of host memory (%zu values)", path,
                              ncap);
                goto fail;
            }
            out->data = nd;
            cap = ncap;
        }
        size_t n = LVK_MIN(cap - done, (size_t)CHUNK);
        got = read_full(gz, chunk, n);
        if (got < 0) {
            st = gz_failure(gz, path);
            goto fail;
        }
        for (long long i = 0; i < got; i++)
            out->data[done + (size_t)i] = chunk[i];
        done += (size_t)got;
        if ((size_t)got < n) {
            st = lvk_fail(LVK_ERR_FORMAT, "%s: truncated data (expected %zu bytes, got %zu)",
                          path, count, done);
            goto fail;
        }
    }
    /* Extra bytes mean the header does not describe the file: refuse rather
     * than silently use a prefix. */
    got = read_full(gz, chunk, 1);
    if (got != 0) {
        st = got < 0 ? gz_failure(gz, path)
                     : lvk_fail(LVK_ERR_FORMAT, "%s: size mismatch (more than the %zu data "
                                "bytes the header announces)", path, count);
        goto fail;
    }
    out->count = count;
    free(chunk);
    gzclose_r(gz);
    return LVK_OK;
fail:
    lvk_npy_free(out);
    free(chunk);
    gzclose_r(gz);
    return st;
}
