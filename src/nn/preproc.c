/* Input preprocessing settings and the sidecar file that keeps them beside a
 * model (see include/lucidvk/preproc.h). */
#include <string.h>

#include "io/lvk_io.h"
#include "lucidvk/preproc.h"
#include "lvk_util.h"

void lvk_preproc_default(struct lvk_preproc *p)
{
    memset(p, 0, sizeof *p);
    p->lo = 0.0f;
    p->hi = 1.0f;
    for (int c = 0; c < 3; c++)
        p->std[c] = 1.0f;
}

static int parse_floats(const char *s, float *out, int max)
{
    int n = 0;
    char *end;
    while (*s && n < max) {
        out[n++] = strtof(s, &end);
        if (end == s)
            return -1;
        s = end;
        if (*s == ',')
            s++;
        else if (*s)
            return -1;
    }
    return *s ? -1 : n;
}

lvk_status lvk_preproc_parse_range(struct lvk_preproc *p, const char *s)
{
    float v[2];
    if (parse_floats(s, v, 2) != 2 || !(v[1] > v[0]))
        return lvk_fail(LVK_ERR_INVALID_ARG, "range '%s': expected LO,HI with LO < HI (e.g. -1,1)", s);
    p->lo = v[0];
    p->hi = v[1];
    return LVK_OK;
}

lvk_status lvk_preproc_parse_triple(float out[3], const char *s, const char *what)
{
    float v[3];
    int n = parse_floats(s, v, 3);
    if (n != 1 && n != 3)
        return lvk_fail(LVK_ERR_INVALID_ARG, "%s '%s': expected one value or three (R,G,B)", what, s);
    for (int c = 0; c < 3; c++)
        out[c] = v[n == 1 ? 0 : c];
    return LVK_OK;
}

static void sidecar_path(const char *model, char *out, size_t len)
{
    size_t n = strlen(model);
    if (n > 5 && strcmp(model + n - 5, ".onnx") == 0)
        n -= 5;
    snprintf(out, len, "%.*s.lucidvk.json", (int)n, model);
}

static lvk_status json_floats(const struct lvk_json *a, float *out, int want_min, int want_max,
                              const char *path, const char *key)
{
    if (!a)
        return LVK_OK;
    if (a->type == LVK_JSON_NUMBER && want_min <= 1) {
        for (int i = 0; i < want_max; i++)
            out[i] = (float)a->number;
        return LVK_OK;
    }
    if (a->type != LVK_JSON_ARRAY || (int)a->count < want_min || (int)a->count > want_max)
        return lvk_fail(LVK_ERR_FORMAT, "%s: '%s' must be an array of %d to %d numbers", path, key,
                        want_min, want_max);
    for (size_t i = 0; i < a->count; i++) {
        const struct lvk_json *x = lvk_json_at(a, i);
        if (x->type != LVK_JSON_NUMBER)
            return lvk_fail(LVK_ERR_FORMAT, "%s: '%s' must hold numbers", path, key);
        out[i] = (float)x->number;
    }
    /* One value stands for every channel. */
    for (int i = (int)a->count; i < want_max; i++)
        out[i] = out[0];
    return LVK_OK;
}

lvk_status lvk_preproc_load_sidecar(const char *model_path, struct lvk_preproc *p, int *found)
{
    char path[1100];
    sidecar_path(model_path, path, sizeof path);
    *found = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return LVK_OK;
    fclose(f);
    struct lvk_json *j;
    LVK_CHECK(lvk_json_read(path, &j));
    lvk_status st = LVK_OK;
    if (j->type != LVK_JSON_OBJECT)
        st = lvk_fail(LVK_ERR_FORMAT, "%s: expected a JSON object", path);
    float range[2] = {p->lo, p->hi};
    if (st == LVK_OK)
        st = json_floats(lvk_json_get(j, "range"), range, 2, 2, path, "range");
    if (st == LVK_OK && !(range[1] > range[0]))
        st = lvk_fail(LVK_ERR_FORMAT, "%s: 'range' needs lo < hi", path);
    if (st == LVK_OK)
        st = json_floats(lvk_json_get(j, "mean"), p->mean, 1, 3, path, "mean");
    if (st == LVK_OK)
        st = json_floats(lvk_json_get(j, "std"), p->std, 1, 3, path, "std");
    if (st == LVK_OK) {
        p->lo = range[0];
        p->hi = range[1];
        for (int c = 0; c < 3; c++)
            if (p->std[c] == 0.0f)
                st = lvk_fail(LVK_ERR_FORMAT, "%s: 'std' must not be 0", path);
    }
    const struct lvk_json *bgr = lvk_json_get(j, "bgr");
    if (st == LVK_OK && bgr)
        p->bgr = bgr->number != 0;
    const struct lvk_json *labels = lvk_json_get(j, "labels");
    if (st == LVK_OK && labels && labels->type == LVK_JSON_STRING) {
        const char *slash = strrchr(model_path, '/');
        if (labels->string[0] == '/' || !slash)
            snprintf(p->labels, sizeof p->labels, "%s", labels->string);
        else
            snprintf(p->labels, sizeof p->labels, "%.*s/%s", (int)(slash - model_path), model_path,
                     labels->string);
    }
    lvk_json_free(j);
    if (st == LVK_OK)
        *found = 1;
    return st;
}

void lvk_preproc_apply(const struct lvk_preproc *p, float *img, int c, int h, int w)
{
    size_t plane = (size_t)h * (size_t)w;
    for (int ch = 0; ch < c; ch++) {
        float *x = img + (size_t)ch * plane;
        for (size_t i = 0; i < plane; i++)
            x[i] = (p->lo + x[i] * (p->hi - p->lo) - p->mean[ch]) / p->std[ch];
    }
    if (p->bgr && c == 3) {
        float *r = img, *b = img + 2 * plane;
        for (size_t i = 0; i < plane; i++) {
            float t = r[i];
            r[i] = b[i];
            b[i] = t;
        }
    }
}

lvk_status lvk_labels_read(const char *path, char ***labels, int *n)
{
    uint8_t *data;
    size_t len;
    *labels = NULL;
    *n = 0;
    LVK_CHECK(lvk_read_file(path, &data, &len));
    int lines = 0;
    for (size_t i = 0; i < len; i++)
        if (data[i] == '\n')
            lines++;
    char **out = lvk_calloc((size_t)lines + 1, sizeof *out);
    if (!out) {
        free(data);
        return LVK_ERR_HOST_OOM;
    }
    int k = 0;
    char *s = (char *)data;
    while (*s && k <= lines) {
        char *e = strchr(s, '\n');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        while (l && (s[l - 1] == '\r' || s[l - 1] == ' '))
            l--;
        out[k] = malloc(l + 1);
        if (!out[k]) {
            lvk_labels_free(out, k);
            free(data);
            return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
        }
        memcpy(out[k], s, l);
        out[k][l] = 0;
        k++;
        if (!e)
            break;
        s = e + 1;
    }
    free(data);
    *labels = out;
    *n = k;
    return LVK_OK;
}

void lvk_labels_free(char **labels, int n)
{
    for (int i = 0; labels && i < n; i++)
        free(labels[i]);
    free(labels);
}
