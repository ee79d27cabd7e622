/* numpy .npy arrays: reading a few numeric dtypes into float32, writing
 * float32.
 *
 * The header is a Python dict literal; only what numpy itself writes is
 * accepted (the keys 'descr', 'fortran_order' and 'shape', string, bool and
 * integer-tuple values). Not handled: object arrays (pickles), structured
 * dtypes, big-endian data, Fortran order for more than one dimension. Bytes
 * are decoded explicitly as little-endian so the host's byte order does not
 * matter. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "io/lvk_io.h"
#include "lvk_util.h"

/* numpy caps headers far below this; a bigger one is hostile or corrupt. */
#define MAX_HEADER (1u << 20)
#define CHUNK      (1u << 16)

enum dtype { DT_F4, DT_F8, DT_I8, DT_I4, DT_U1 };

static const struct {
    const char *descr;
    enum dtype type;
    size_t size;
} dtypes[] = {
    {"<f4", DT_F4, 4}, {"<f8", DT_F8, 8}, {"<i8", DT_I8, 8},
    {"<i4", DT_I4, 4}, {"|u1", DT_U1, 1}, {"<u1", DT_U1, 1},
};

/* Cursor over the header text, used by the small dict parser below. */
struct hdr {
    const char *p, *end;
    const char *path;
};

static void skip_ws(struct hdr *h)
{
    while (h->p < h->end && (*h->p == ' ' || *h->p == '\t' || *h->p == '\n' || *h->p == '\r'))
        h->p++;
}

static int accept(struct hdr *h, char c)
{
    skip_ws(h);
    if (h->p < h->end && *h->p == c) {
        h->p++;
        return 1;
    }
    return 0;
}

static lvk_status bad_header(const struct hdr *h, const char *what)
{
    return lvk_fail(LVK_ERR_FORMAT, "%s: malformed npy header (%s)", h->path, what);
}

/* A quoted Python string without escapes (numpy never writes any). */
static lvk_status parse_str(struct hdr *h, char *buf, size_t cap)
{
    skip_ws(h);
    if (h->p >= h->end || (*h->p != '\'' && *h->p != '"'))
        return bad_header(h, "expected a string");
    char q = *h->p++;
    size_t n = 0;
    while (h->p < h->end && *h->p != q) {
        if (*h->p == '\\' || n + 1 >= cap)
            return bad_header(h, "unexpected string");
        buf[n++] = *h->p++;
    }
    if (h->p >= h->end)
        return bad_header(h, "unterminated string");
    h->p++;
    buf[n] = 0;
    return LVK_OK;
}

static lvk_status parse_bool(struct hdr *h, int *v)
{
    skip_ws(h);
    size_t left = (size_t)(h->end - h->p);
    if (left >= 4 && !memcmp(h->p, "True", 4)) {
        h->p += 4;
        *v = 1;
    } else if (left >= 5 && !memcmp(h->p, "False", 5)) {
        h->p += 5;
        *v = 0;
    } else {
        return bad_header(h, "fortran_order is not True or False");
    }
    return LVK_OK;
}

static lvk_status parse_shape(struct hdr *h, int *ndim, int64_t *shape)
{
    if (!accept(h, '('))
        return bad_header(h, "shape is not a tuple");
    *ndim = 0;
    for (;;) {
        if (accept(h, ')'))
            return LVK_OK;
        skip_ws(h);
        int64_t v = 0;
        const char *start = h->p;
        while (h->p < h->end && *h->p >= '0' && *h->p <= '9') {
            if (v > (INT64_MAX - 9) / 10)
                return bad_header(h, "dimension too large");
            v = v * 10 + (*h->p++ - '0');
        }
        if (h->p == start)
            return bad_header(h, "shape entry is not a non-negative integer");
        /* Files written by Python 2 spell dimensions as longs ("3L"). */
        if (h->p < h->end && *h->p == 'L')
            h->p++;
        if (*ndim == LVK_NPY_MAX_DIMS)
            return lvk_fail(LVK_ERR_UNSUPPORTED, "%s: more than %d dimensions", h->path,
                            LVK_NPY_MAX_DIMS);
        shape[(*ndim)++] = v;
        if (!accept(h, ',')) {
            if (!accept(h, ')'))
                return bad_header(h, "expected ',' or ')' in shape");
            return LVK_OK;
        }
    }
}

static lvk_status parse_header(struct hdr *h, char *descr, size_t dcap, int *fortran,
                               struct lvk_npy *out)
{
    int seen_descr = 0, seen_fortran = 0, seen_shape = 0;
    if (!accept(h, '{'))
        return bad_header(h, "not a dict");
    while (!accept(h, '}')) {
        char key[32];
        LVK_CHECK(parse_str(h, key, sizeof key));
        if (!accept(h, ':'))
            return bad_header(h, "expected ':'");
        if (!strcmp(key, "descr") && !seen_descr) {
            LVK_CHECK(parse_str(h, descr, dcap));
            seen_descr = 1;
        } else if (!strcmp(key, "fortran_order") && !seen_fortran) {
            LVK_CHECK(parse_bool(h, fortran));
            seen_fortran = 1;
        } else if (!strcmp(key, "shape") && !seen_shape) {
            LVK_CHECK(parse_shape(h, &out->ndim, out->shape));
            seen_shape = 1;
        } else {
            return lvk_fail(LVK_ERR_FORMAT, "%s: malformed npy header (unexpected or repeated key '%s')",
                            h->path, key);
        }
        if (!accept(h, ',')) {
            if (!accept(h, '}'))
                return bad_header(h, "expected ',' or '}'");
            break;
        }
    }
    if (!seen_descr || !seen_fortran || !seen_shape)
        return bad_header(h, "'descr', 'fortran_order' or 'shape' missing");
    return LVK_OK;
}

static uint64_t load_le(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

static float to_float(const uint8_t *p, enum dtype t)
{
    switch (t) {
    case DT_F4: {
        uint32_t u = (uint32_t)load_le(p, 4);
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    case DT_F8: {
        uint64_t u = load_le(p, 8);
        double d;
        memcpy(&d, &u, 8);
        return (float)d;
    }
    case DT_I8:
        return (float)(int64_t)load_le(p, 8);
    case DT_I4:
        return (float)(int32_t)(uint32_t)load_le(p, 4);
    case DT_U1:
        return (float)p[0];
    }
    return 0.0f;
}

lvk_status lvk_npy_read(const char *path, struct lvk_npy *out)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return lvk_fail(LVK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *text = NULL;
    uint8_t *chunk = NULL;
    lvk_status st;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        st = lvk_fail(LVK_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    uint8_t pre[12];
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6)) {
        st = lvk_fail(LVK_ERR_FORMAT, "%s: not a .npy file", path);
        goto fail;
    }
    int major = pre[6];
    if (major < 1 || major > 3) {
        st = lvk_fail(LVK_ERR_UNSUPPORTED, "%s: npy format version %d.%d not supported", path,
                      major, pre[7]);
        goto fail;
    }
    /* Version 1 has a 16-bit header length, 2 and 3 a 32-bit one. */
    size_t pre_len = major == 1 ? 10 : 12;
    if (major > 1 && fread(pre + 10, 1, 2, f) != 2) {
        st = lvk_fail(LVK_ERR_FORMAT, "%s: truncated npy header", path);
        goto fail;
    }
    size_t hlen = (size_t)load_le(pre + 8, major == 1 ? 2 : 4);
    if (hlen > MAX_HEADER) {
        st = lvk_fail(LVK_ERR_FORMAT, "%s: npy header length %zu is implausible", path, hlen);
        goto fail;
    }
    text = lvk_calloc(hlen + 1, 1);
    if (!text) {
        st = LVK_ERR_HOST_OOM;
        goto fail;
    }
    if (fread(text, 1, hlen, f) != hlen) {
        st = lvk_fail(LVK_ERR_FORMAT, "%s: truncated npy header", path);
        goto fail;
    }
    char descr[16];
    int fortran = 0;
    struct hdr h = {text, text + hlen, path};
    LVK_TRY(st, parse_header(&h, descr, sizeof descr, &fortran, out));
    skip_ws(&h);
    if (h.p != h.end) {
        st = bad_header(&h, "trailing characters after the dict");
        goto fail;
    }

    size_t di = 0;
    while (di < LVK_ARRAY_LEN(dtypes) && strcmp(dtypes[di].descr, descr))
        di++;
    if (di == LVK_ARRAY_LEN(dtypes)) {
        st = lvk_fail(LVK_ERR_UNSUPPORTED, "%s: dtype '%s' not supported "
                      "(use <f4, <f8, <i8, <i4 or |u1)", path, descr);
        goto fail;
    }
    /* Fortran order only changes the layout when two dimensions exceed 1. */
    int long_dims = 0;
    for (int i = 0; i < out->ndim; i++)
        long_dims += out->shape[i] > 1;
    if (fortran && long_dims > 1) {
        st = lvk_fail(LVK_ERR_UNSUPPORTED, "%s: Fortran-order arrays not supported", path);
        goto fail;
    }
    size_t isz = dtypes[di].size, count = 1;
    for (int i = 0; i < out->ndim; i++) {
        uint64_t d = (uint64_t)out->shape[i];
        if (d && count > SIZE_MAX / sizeof(float) / isz / d) {
            st = lvk_fail(LVK_ERR_FORMAT, "%s: array shape too large", path);
            goto fail;
        }
        count *= (size_t)d;
    }
    size_t want = count * isz;
    uint64_t offset = pre_len + hlen;
    uint64_t have = (uint64_t)sb.st_size > offset ? (uint64_t)sb.st_size - offset : 0;
    if (S_ISREG(sb.st_mode) && have != want) {
        st = lvk_fail(LVK_ERR_FORMAT, "%s: %s data (expected %zu bytes, got %llu)", path,
                      have < want ? "truncated" : "oversized", want, (unsigned long long)have);
        goto fail;
    }
    out->data = lvk_calloc(count, sizeof(float));
    chunk = malloc(CHUNK);
    if (!out->data || !chunk) {
        st = lvk_fail(LVK_ERR_HOST_OOM, "%s: out of host memory (%zu values)", path, count);
        goto fail;
    }
    size_t done = 0, per = CHUNK / isz;
    while (done < count) {
        size_t n = LVK_MIN(per, count - done), got = fread(chunk, isz, n, f);
        for (size_t i = 0; i < got; i++)
            out->data[done + i] = to_float(chunk + i * isz, dtypes[di].type);
        done += got;
        if (got < n) {
            st = lvk_fail(LVK_ERR_FORMAT, "%s: truncated data (expected %zu bytes, got %zu)",
                          path, want, done * isz);
            goto fail;
        }
    }
    out->count = count;
    free(chunk);
    free(text);
    fclose(f);
    return LVK_OK;
fail:
    lvk_npy_free(out);
    free(chunk);
    free(text);
    fclose(f);
    return st;
}

static void store_le(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

lvk_status lvk_npy_write(const char *path, const float *data, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > LVK_NPY_MAX_DIMS)
        return lvk_fail(LVK_ERR_INVALID_ARG, "%s: %d dimensions (at most %d)", path, ndim,
                        LVK_NPY_MAX_DIMS);
    /* Byte-for-byte what numpy.save writes: the dict repr, a 1-tuple with a
     * trailing comma, and spaces up to a 64-byte boundary before '\n'. */
    char hdr[512];
    size_t n = (size_t)snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return lvk_fail(LVK_ERR_INVALID_ARG, "%s: negative dimension %lld", path,
                            (long long)shape[i]);
        if (shape[i] && count > SIZE_MAX / sizeof(float) / (uint64_t)shape[i])
            return lvk_fail(LVK_ERR_INVALID_ARG, "%s: array too large", path);
        count *= (size_t)shape[i];
        n += (size_t)snprintf(hdr + n, sizeof hdr - n, "%s%lld", i ? ", " : "",
                              (long long)shape[i]);
    }
    n += (size_t)snprintf(hdr + n, sizeof hdr - n, "%s), }", ndim == 1 ? "," : "");
    if (count && !data)
        return lvk_fail(LVK_ERR_INVALID_ARG, "%s: no data for %zu values", path, count);
    size_t total = 10 + n + 1, pad = (64 - total % 64) % 64;
    memset(hdr + n, ' ', pad);
    n += pad;
    hdr[n++] = '\n';

    size_t tmplen = strlen(path) + 32;
    char *tmp = lvk_calloc(tmplen, 1);
    uint8_t *chunk = lvk_calloc(CHUNK, 1);
    FILE *f = NULL;
    lvk_status st = LVK_ERR_HOST_OOM;
    if (!tmp || !chunk)
        goto done;
    LVK_TRY(st, lvk_atomic_open(path, tmp, tmplen, &f));
    uint8_t pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
    store_le(pre + 8, n, 2);
    int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(hdr, 1, n, f) == n;
    for (size_t done = 0; ok && done < count;) {
        size_t k = LVK_MIN(count - done, CHUNK / 4);
        for (size_t i = 0; i < k; i++) {
            uint32_t u;
            memcpy(&u, &data[done + i], 4);
            store_le(chunk + 4 * i, u, 4);
        }
        ok = fwrite(chunk, 4, k, f) == k;
        done += k;
    }
    if (!ok) {
        st = lvk_fail(LVK_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        goto fail;
    }
    st = lvk_atomic_commit(f, tmp, path);
    goto done;
fail:
    if (f)
        lvk_atomic_abort(f, tmp);
done:
    free(chunk);
    free(tmp);
    return st;
}

void lvk_npy_free(struct lvk_npy *a)
{
    if (!a)
        return;
    free(a->data);
    memset(a, 0, sizeof *a);
}
