/* Whole-file reads and crash-safe whole-file writes.
 *
 * Writers create "<path>.tmp.<pid>" next to the destination and rename it
 * into place only after the data reached the disk, so readers see either the
 * old file or the complete new one. The temp file must live in the same
 * directory because rename() is only atomic within one file system. Not a
 * general file API: no appends, no partial reads. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "io/lvk_io.h"
#include "lvk_util.h"

lvk_status lvk_atomic_open(const char *path, char *tmp, size_t tmplen, FILE **out)
{
    *out = NULL;
    int n = snprintf(tmp, tmplen, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= tmplen)
        return lvk_fail(LVK_ERR_INVALID_ARG, "%s: temp file name does not fit in %zu bytes",
                        path, tmplen);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return lvk_fail(LVK_ERR_IO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
    *out = f;
    return LVK_OK;
}

lvk_status lvk_atomic_commit(FILE *f, const char *tmp, const char *path)
{
    /* fflush/ferror catch buffered write errors (ENOSPC) that fwrite's
     * callers may not have seen; fsync makes sure the rename cannot reach
     * the disk before the data does. */
    int err = 0;
    errno = 0;
    if (fflush(f) != 0 || ferror(f))
        err = errno ? errno : EIO;
    else if (fsync(fileno(f)) != 0)
        err = errno;
    if (fclose(f) != 0 && !err)
        err = errno;
    if (!err && rename(tmp, path) != 0)
        err = errno;
    if (err) {
        unlink(tmp);
        return lvk_fail(LVK_ERR_IO, "%s: write failed: %s", path, strerror(err));
    }
    return LVK_OK;
}

void lvk_atomic_abort(FILE *f, const char *tmp)
{
    if (f)
        fclose(f);
    unlink(tmp);
}

lvk_status lvk_write_file_atomic(const char *path, const void *data, size_t len)
{
    size_t tmplen = strlen(path) + 32;
    char *tmp = lvk_calloc(tmplen, 1);
    if (!tmp)
        return LVK_ERR_HOST_OOM;
    FILE *f;
    lvk_status st = lvk_atomic_open(path, tmp, tmplen, &f);
    if (st == LVK_OK) {
        if (len && fwrite(data, 1, len, f) != len) {
            int err = errno;
            lvk_atomic_abort(f, tmp);
            st = lvk_fail(LVK_ERR_IO, "%s: write failed: %s", path, strerror(err));
        } else {
            st = lvk_atomic_commit(f, tmp, path);
        }
    }
    free(tmp);
    return st;
}

uint64_t lvk_fnv1a64(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

lvk_status lvk_read_file(const char *path, uint8_t **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return lvk_fail(LVK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    /* Grow geometrically instead of trusting the file size, so pipes and
     * files that change while being read are handled the same way. */
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    lvk_status st = LVK_OK;
    if (!buf) {
        st = lvk_fail(LVK_ERR_HOST_OOM, "%s: out of host memory", path);
        goto done;
    }
    for (;;) {
        if (cap - n < 2) {
            if (cap > SIZE_MAX / 2) {
                st = lvk_fail(LVK_ERR_HOST_OOM, "%s: file too large", path);
                goto done;
            }
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) {
                st = lvk_fail(LVK_ERR_HOST_OOM, "%s: out of host memory (%zu bytes)", path,
                              cap * 2);
                goto done;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        st = lvk_fail(LVK_ERR_IO, "%s: read failed: %s", path, strerror(errno));
        goto done;
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    buf = NULL;
done:
    free(buf);
    fclose(f);
    return st;
}
