/* Interaction-grid layouts and objective texts, and sweep objectives (see
 * grid.h). Host code only: everything here ends up as a struct
 * lvk_param_layout and a line of objective text for lvk_render. */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/labelled_grid.h"
#include "io/lvk_io.h"
#include "lvk_util.h"
#include "optvis/grid.h"

/* ---- text building ---------------------------------------------------------------- */

struct text {
    char *s;
    size_t len, cap;
    int failed;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (t->len + (size_t)n + 1 > t->cap) {
        size_t cap = LVK_MAX(t->cap * 2, t->len + (size_t)n + 256);
        char *s = realloc(t->s, cap);
        if (!s) {
            t->failed = 1;
            return;
        }
        t->s = s;
        t->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

/* The quote character that can enclose `name` in objective text (the
 * syntax has no escapes), or 0 when it holds both. */
static char quote_for(const char *name)
{
    if (!strchr(name, '\''))
        return '\'';
    if (!strchr(name, '"'))
        return '"';
    return 0;
}

static lvk_status finish(struct text *t, char **out)
{
    if (t->failed) {
        free(t->s);
        *out = NULL;
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory writing an objective");
    }
    *out = t->s;
    return LVK_OK;
}

/* ---- interaction grid ---------------------------------------------------------------- */

/* Index of the unordered pair {r, c} among the n(n+1)/2 pairs with r <= c,
 * row by row: (0,0) (0,1) .. (0,n-1) (1,1) .. */
static int pair_index(int n, int r, int c)
{
    if (r > c) {
        int t = r;
        r = c;
        c = t;
    }
    return r * n - r * (r - 1) / 2 + (c - r);
}

int lvk_grid_src_blend(int n, int r, int c) { return 1 + n + pair_index(n, r, c); }

int lvk_grid_src_lowres(int n) { return 1 + n + n * (n + 1) / 2; }

void lvk_grid_crop(int size, int *top_left, int *bottom_right)
{
    int a = (int)lround(15.0 * size / 128.0), b = (int)lround(25.0 * size / 128.0);
    /* Keep at least one pixel: at sizes below 3 the crop gives way. */
    while (a + b >= size && (a > 0 || b > 0)) {
        if (b > 0)
            b--;
        else
            a--;
    }
    *top_left = a;
    *bottom_right = b;
}

static void add_term(struct lvk_grid_plan *p, int b, int src, float w, int grad)
{
    LVK_ASSERT(p->nterms[b] < LVK_LAYOUT_MAX_TERMS);
    p->terms[(size_t)b * LVK_LAYOUT_MAX_TERMS + p->nterms[b]++] =
        (struct lvk_layout_term){.src = src, .w = w, .grad = grad};
}

void lvk_grid_plan_free(struct lvk_grid_plan *p)
{
    if (!p)
        return;
    free(p->nterms);
    free(p->terms);
    free(p->objective);
    memset(p, 0, sizeof *p);
}

lvk_status lvk_grid_plan_create(const struct lvk_grid_neuron *neurons, int n, double blur,
                                struct lvk_grid_plan *out)
{
    memset(out, 0, sizeof *out);
    if (n < 1)
        return lvk_fail(LVK_ERR_INVALID_ARG, "an interaction grid needs at least one neuron");
    if (!(blur >= 0))
        return lvk_fail(LVK_ERR_INVALID_ARG, "interaction grid: blur weight %g is not >= 0", blur);
    for (int k = 0; k < n; k++) {
        if (!neurons[k].layer || !*neurons[k].layer || neurons[k].channel < 0)
            return lvk_fail(LVK_ERR_INVALID_ARG, "grid neuron %d: needs a layer and a channel >= 0", k);
        if (!quote_for(neurons[k].layer))
            return lvk_fail(LVK_ERR_INVALID_ARG, "grid neuron %d: layer name %s holds both ' and \"", k,
                            neurons[k].layer);
    }
    int B = n * n;
    out->n = n;
    out->batch = B;
    out->nterms = calloc((size_t)B, sizeof *out->nterms);
    out->terms = calloc((size_t)B * LVK_LAYOUT_MAX_TERMS, sizeof *out->terms);
    if (!out->nterms || !out->terms) {
        lvk_grid_plan_free(out);
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory for a %dx%d grid", n, n);
    }
    for (int r = 0; r < n; r++)
        for (int c = 0; c < n; c++) {
            int b = r * n + c;
            if (r == c) {
                add_term(out, b, lvk_grid_src_pure(r), 1.0f, 1);
            } else {
                /* The mean of the two pure images, gradient stopped. */
                add_term(out, b, lvk_grid_src_pure(r), 0.5f, 0);
                add_term(out, b, lvk_grid_src_pure(c), 0.5f, 0);
            }
            add_term(out, b, lvk_grid_src_blend(n, r, c), 1.0f, 1);
            add_term(out, b, lvk_grid_src_shared(), 2.0f, 1);
            add_term(out, b, lvk_grid_src_lowres(n), 2.0f, 1);
        }
    out->layout = (struct lvk_param_layout){
        .nfft = 1 + n + n * (n + 1) / 2,
        .nlowres = 1,
        .npixel = 0,
        .lowres_div = 4,
        .raw_scale = 0.5f,
        .nterms = out->nterms,
        .terms = out->terms,
    };

    struct text t = {0};
    for (int r = 0; r < n; r++)
        for (int c = 0; c < n; c++) {
            int b = r * n + c;
            const struct lvk_grid_neuron *a = &neurons[r], *z = &neurons[c];
            char qa = quote_for(a->layer), qz = quote_for(z->layer);
            if (r == c) /* the same neuron twice */
                put(&t, "%s0.4*channel(%c%s%c, %d)@%d + 2*neuron(%c%s%c, %d)@%d", b ? " + " : "", qa,
                    a->layer, qa, a->channel, b, qa, a->layer, qa, a->channel, b);
            else
                put(&t,
                    " + 0.2*channel(%c%s%c, %d)@%d + neuron(%c%s%c, %d)@%d"
                    " + 0.2*channel(%c%s%c, %d)@%d + neuron(%c%s%c, %d)@%d",
                    qa, a->layer, qa, a->channel, b, qa, a->layer, qa, a->channel, b, qz, z->layer, qz,
                    z->channel, b, qz, z->layer, qz, z->channel, b);
        }
    if (blur > 0)
        put(&t, " - %.9g*blur", blur);
    lvk_status st = finish(&t, &out->objective);
    if (st != LVK_OK)
        lvk_grid_plan_free(out);
    return st;
}

lvk_status lvk_grid_compose(const float *images, int n, int c, int h, int w, const char *const *labels,
                            int zoom, struct lvk_image *out)
{
    int a, b;
    float *cells;
    lvk_grid_crop(LVK_MIN(h, w), &a, &b);
    LVK_CHECK(lvk_images_crop(images, n * n, c, h, w, a, a, b, b, &cells));
    int cw = w - a - b;
    struct lvk_labelled_grid g = {.rows = n, .cols = n, .c = c, .h = h - a - b, .w = cw, .cells = cells,
                                  .row_labels = labels, .col_labels = labels, .gutter = 2,
                                  .zoom = zoom > 0 ? zoom : LVK_MAX(1, (64 + cw - 1) / cw), .bg = 1.0f};
    lvk_status st = lvk_labelled_grid_render(&g, out);
    free(cells);
    return st;
}

/* ---- layer sweep -------------------------------------------------------------------- */

lvk_status lvk_sweep_objective(const char *layer, const int *channels, int nchannels, int group,
                               char **text, int *batch)
{
    *text = NULL;
    *batch = 0;
    char q = layer ? quote_for(layer) : 0;
    if (!layer || !*layer || !q)
        return lvk_fail(LVK_ERR_INVALID_ARG, "sweep: layer name '%s' cannot be written in an objective",
                        layer ? layer : "");
    if (nchannels < 1)
        return lvk_fail(LVK_ERR_INVALID_ARG, "sweep of layer %s: no channels", layer);
    for (int i = 0; i < nchannels; i++)
        if (channels[i] < 0)
            return lvk_fail(LVK_ERR_INVALID_ARG, "sweep of layer %s: channel %d", layer, channels[i]);
    int g = group > 1 ? group : 1, nb = (nchannels + g - 1) / g;
    struct text t = {0};
    for (int i = 0; i < nb; i++) {
        if (g == 1) {
            put(&t, "%schannel(%c%s%c, %d)@%d", i ? " + " : "", q, layer, q, channels[i], i);
            continue;
        }
        put(&t, "%sgroup(%c%s%c, [", i ? " + " : "", q, layer, q);
        for (int k = i * g; k < LVK_MIN((i + 1) * g, nchannels); k++)
            put(&t, "%s%d", k > i * g ? ", " : "", channels[k]);
        put(&t, "])@%d", i);
    }
    LVK_CHECK(finish(&t, text));
    *batch = nb;
    return LVK_OK;
}

/* ---- channel lists and measurements ---------------------------------------------------- */

/* A channel number: digits only (no sign, no blanks), at most INT_MAX.
 * Returns the character after it, or NULL. */
static const char *channel_number(const char *s, long *v)
{
    if (*s < '0' || *s > '9')
        return NULL;
    long x = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        x = 10 * x + (*s - '0');
        if (x > INT_MAX)
            return NULL;
    }
    *v = x;
    return s;
}

int lvk_channel_list_parse(const char *s, int *out, int max)
{
    int n = 0;
    if (!s || !*s)
        return -1;
    while (*s) {
        long a, b;
        if (!(s = channel_number(s, &a)))
            return -1;
        b = a;
        if (*s == '-' && (!(s = channel_number(s + 1, &b)) || b < a))
            return -1;
        for (long c = a; c <= b; c++) {
            if (n == max)
                return -1;
            out[n++] = (int)c;
        }
        if (*s == ',' && s[1])
            s++;
        else if (*s)
            return -1;
    }
    return n;
}

lvk_status lvk_units_measure(lvk_ctx_t *ctx, const char *model_path, const struct lvk_preproc *pre,
                             const float *images, int batch, int c, int h, int w, int net_h, int net_w,
                             const struct lvk_grid_neuron *units, int nunits, double *neuron,
                             double *channel)
{
    if (batch < 1 || nunits < 1 || nunits > 64)
        return lvk_fail(LVK_ERR_INVALID_ARG, "measuring %d units on %d images", nunits, batch);
    const char *names[64];
    int nnames = 0;
    for (int k = 0; k < nunits; k++) {
        int seen = 0;
        for (int j = 0; j < nnames; j++)
            seen |= !strcmp(names[j], units[k].layer);
        if (!seen)
            names[nnames++] = units[k].layer;
    }
    struct lvk_model_opts mo = {.batch = batch, .height = net_h, .width = net_w, .outputs = names,
                                .noutputs = nnames};
    lvk_model_t *m = NULL;
    size_t plane = (size_t)c * net_h * net_w;
    float *in = malloc((size_t)batch * plane * sizeof *in), *t = NULL;
    lvk_status st = in ? LVK_OK : lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    for (int b = 0; st == LVK_OK && b < batch; b++) {
        struct lvk_image src = {.w = w, .h = h, .c = c, .data = (float *)images + (size_t)b * c * h * w};
        if (h == net_h && w == net_w) {
            memcpy(in + b * plane, src.data, plane * sizeof *in);
        } else {
            struct lvk_image dst = {0};
            st = lvk_image_resize(&src, net_w, net_h, &dst);
            if (st == LVK_OK)
                memcpy(in + b * plane, dst.data, plane * sizeof *in);
            lvk_image_free(&dst);
        }
        lvk_preproc_apply(pre, in + b * plane, c, net_h, net_w);
    }
    if (st == LVK_OK)
        st = lvk_model_load(ctx, model_path, &mo, &m);
    if (st == LVK_OK)
        st = lvk_model_set_input(m, lvk_model_input_name(m), in, (size_t)batch * plane);
    if (st == LVK_OK)
        st = lvk_model_forward(m);
    for (int k = 0; st == LVK_OK && k < nunits; k++) {
        struct lvk_tensor_info ti;
        st = lvk_model_tensor_find(m, units[k].layer, &ti);
        if (st != LVK_OK)
            break;
        /* [B, C] dense tensors have one position; [B, C, L] one row. */
        int64_t C = ti.ndim >= 2 ? ti.shape[1] : 0;
        int64_t TH = ti.ndim == 4 ? ti.shape[2] : 1, TW = ti.ndim >= 3 ? ti.shape[ti.ndim - 1] : 1;
        if (ti.ndim < 2 || ti.ndim > 4 || ti.shape[0] != batch || units[k].channel >= C) {
            st = lvk_fail(LVK_ERR_INVALID_ARG, "%s: cannot read channel %d of a tensor of rank %d",
                          units[k].layer, units[k].channel, ti.ndim);
            break;
        }
        size_t count = (size_t)batch * C * TH * TW;
        free(t);
        t = malloc(count * sizeof *t);
        if (!t) {
            st = lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
            break;
        }
        st = lvk_model_read(m, units[k].layer, t, count);
        for (int b = 0; st == LVK_OK && b < batch; b++) {
            const float *p = t + ((size_t)b * C + units[k].channel) * TH * TW;
            double sum = 0;
            for (int64_t i = 0; i < TH * TW; i++)
                sum += p[i];
            if (neuron)
                neuron[b * nunits + k] = p[(TH / 2) * TW + TW / 2];
            if (channel)
                channel[b * nunits + k] = sum / (double)(TH * TW);
        }
    }
    free(t);
    free(in);
    lvk_model_destroy(m);
    return st;
}
