/* Kernel measurements, rankings and pictures (definitions in kernels.h).
 *
 * Everything but the gratings reads constant weights on the host: no
 * device, and the model need not be finalized. The spectrum is a direct
 * separable DFT of the zero-padded kernel (a few thousand multiply-adds per
 * tap), which for kernels of at most a few dozen taps is cheaper than
 * planning an FFT. The gratings run the model forward on the device, in
 * batches, and reduce the responses on the host. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/kernels.h"
#include "analysis/features.h"
#include "analysis/response_map.h"
#include "nn/graph.h"

#define PI 3.14159265358979323846

/* Orientation and selectivity from the weighted sums of e^{2 i phi}
 * (zr + i zi) and of the weights (total): the one definition both the
 * spectrum and the gratings use. */
static void doubled_angle_mean(double zr, double zi, double total, float *orientation, float *selectivity)
{
    double deg = 0.5 * atan2(zi, zr) * 180 / PI;
    float o = (float)(deg < 0 ? deg + 180 : deg);
    /* -1e-9 degrees wraps to 180 - 1e-9, which rounds to 180.0f: that is 0. */
    *orientation = o >= 180.0f ? 0.0f : o;
    *selectivity = (float)(sqrt(zr * zr + zi * zi) / total);
}

lvk_status lvk_kernel_stats(const float *w, int c, int kh, int kw, struct lvk_kernel_stats *out)
{
    enum { N = LVK_KERNEL_FFT };
    memset(out, 0, sizeof *out);
    if (c < 1 || kh < 1 || kw < 1 || kh > N || kw > N)
        return lvk_fail(LVK_ERR_INVALID_ARG, "kernel %d x %d x %d: sizes must be 1..%d", c, kh, kw, N);
    const int taps = kh * kw;

    double e = 0;
    for (int i = 0; i < c * taps; i++)
        e += (double)w[i] * w[i];
    out->norm = (float)sqrt(e);

    /* P(u, v) summed over channels; rows of A hold the DFT along x. */
    double cosv[N], sinv[N]; /* twiddles: e^{-2 pi i k / N} = cosv[k] - i sinv[k] */
    for (int k = 0; k < N; k++) {
        cosv[k] = cos(2 * PI * k / N);
        sinv[k] = sin(2 * PI * k / N);
    }
    double *P = calloc((size_t)N * N, sizeof *P);
    double *are = malloc((size_t)kh * N * sizeof *are), *aim = malloc((size_t)kh * N * sizeof *aim);
    double *ch = malloc((size_t)taps * sizeof *ch);
    if (!P || !are || !aim || !ch) {
        free(P); free(are); free(aim); free(ch);
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    }
    for (int k = 0; k < c; k++) {
        double mean = 0;
        for (int i = 0; i < taps; i++)
            mean += w[k * taps + i];
        mean /= taps;
        for (int i = 0; i < taps; i++)
            ch[i] = w[k * taps + i] - mean;
        for (int r = 0; r < kh; r++)
            for (int u = 0; u < N; u++) {
                double re = 0, im = 0;
                for (int s = 0; s < kw; s++) {
                    int t = (u * s) % N;
                    re += ch[r * kw + s] * cosv[t];
                    im -= ch[r * kw + s] * sinv[t];
                }
                are[r * N + u] = re;
                aim[r * N + u] = im;
            }
        for (int v = 0; v < N; v++)
            for (int u = 0; u < N; u++) {
                double re = 0, im = 0;
                for (int r = 0; r < kh; r++) {
                    int t = (v * r) % N;
                    /* (a + ib)(cos - i sin) */
                    re += are[r * N + u] * cosv[t] + aim[r * N + u] * sinv[t];
                    im += aim[r * N + u] * cosv[t] - are[r * N + u] * sinv[t];
                }
                P[v * N + u] += re * re + im * im;
            }
    }

    double total = 0, zr = 0, zi = 0, fsum = 0;
    for (int v = 0; v < N; v++)
        for (int u = 0; u < N; u++) {
            double p = P[v * N + u];
            if ((u == 0 && v == 0) || p == 0)
                continue;
            double fx = (double)(u < N / 2 ? u : u - N) / N;
            /* Row frequency v runs down the kernel; y points up. */
            double fy = -(double)(v < N / 2 ? v : v - N) / N;
            double r2 = fx * fx + fy * fy;
            /* e^{2 i phi} = (fx + i fy)^2 / |f|^2 */
            zr += p * (fx * fx - fy * fy) / r2;
            zi += p * (2 * fx * fy) / r2;
            fsum += p * sqrt(r2);
            total += p;
        }
    if (total > 0) {
        doubled_angle_mean(zr, zi, total, &out->orientation, &out->selectivity);
        out->frequency = (float)(fsum / total);
    }

    if (c == 3 && e > 0) {
        double ach = 0, dot[3] = {0}, nn[3] = {0};
        for (int i = 0; i < taps; i++) {
            double a = (w[i] + w[taps + i] + w[2 * taps + i]) / 3.0;
            ach += 3 * a * a;
        }
        out->colour = (float)fmax(0.0, 1 - ach / e);
        for (int k = 0; k < 3; k++)
            for (int i = 0; i < taps; i++) {
                nn[k] += (double)w[k * taps + i] * w[k * taps + i];
                dot[k] += (double)w[k * taps + i] * w[((k + 1) % 3) * taps + i];
            }
        double worst = 0;
        for (int k = 0; k < 3; k++) {
            double den = sqrt(nn[k] * nn[(k + 1) % 3]);
            if (den > 0)
                worst = fmin(worst, dot[k] / den);
        }
        out->opponency = worst < 0 ? (float)-worst : 0.0f;
    }
    free(P); free(are); free(aim); free(ch);
    return LVK_OK;
}

int lvk_kernels_mark_dead(struct lvk_kernel_stats *s, int n)
{
    float top = 0;
    for (int i = 0; i < n; i++)
        top = fmaxf(top, s[i].norm);
    int dead = 0;
    for (int i = 0; i < n; i++)
        if (s[i].norm < LVK_KERNEL_DEAD * top) {
            s[i] = (struct lvk_kernel_stats){.norm = s[i].norm};
            dead++;
        }
    return dead;
}

/* ---- ranking ---------------------------------------------------------------------- */

static const char *const k_rank_names[] = {
    [LVK_RANK_ORIENTATION] = "orientation", [LVK_RANK_FREQUENCY] = "frequency",
    [LVK_RANK_COLOUR] = "colour", [LVK_RANK_NORM] = "norm",
};

lvk_status lvk_kernel_rank_parse(const char *s, enum lvk_kernel_rank *out)
{
    if (!strcmp(s, "color")) {
        *out = LVK_RANK_COLOUR;
        return LVK_OK;
    }
    for (size_t i = 0; i < LVK_ARRAY_LEN(k_rank_names); i++)
        if (!strcmp(s, k_rank_names[i])) {
            *out = (enum lvk_kernel_rank)i;
            return LVK_OK;
        }
    return lvk_fail(LVK_ERR_INVALID_ARG,
                    "unknown ranking '%s' (orientation, frequency, colour, norm)", s);
}

const char *lvk_kernel_rank_name(enum lvk_kernel_rank r)
{
    return (size_t)r < LVK_ARRAY_LEN(k_rank_names) ? k_rank_names[r] : "?";
}

/* Sort key: ascending; ties by index (qsort is not stable). */
struct keyed {
    double key[2];
    int index;
};

static int by_key(const void *a, const void *b)
{
    const struct keyed *x = a, *y = b;
    for (int k = 0; k < 2; k++)
        if (x->key[k] != y->key[k])
            return x->key[k] < y->key[k] ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

void lvk_kernels_rank(const struct lvk_kernel_stats *stats, int n, enum lvk_kernel_rank by, int *order)
{
    struct keyed *k = malloc((size_t)n * sizeof *k);
    if (!k) { /* identity order: still a valid ranking output */
        for (int i = 0; i < n; i++)
            order[i] = i;
        return;
    }
    for (int i = 0; i < n; i++) {
        const struct lvk_kernel_stats *s = &stats[i];
        k[i].index = i;
        k[i].key[1] = 0;
        switch (by) {
        case LVK_RANK_ORIENTATION:
            /* Oriented kernels by angle, then the rest by falling selectivity. */
            k[i].key[0] = s->selectivity >= LVK_KERNEL_MIN_SELECTIVITY ? 0 : 1;
            k[i].key[1] = k[i].key[0] == 0 ? s->orientation : -s->selectivity;
            break;
        case LVK_RANK_FREQUENCY: k[i].key[0] = s->frequency; break;
        case LVK_RANK_COLOUR: k[i].key[0] = -s->colour; break;
        case LVK_RANK_NORM: k[i].key[0] = -s->norm; break;
        }
    }
    qsort(k, (size_t)n, sizeof *k, by_key);
    for (int i = 0; i < n; i++)
        order[i] = k[i].index;
    free(k);
}

/* ---- finding a Conv ------------------------------------------------------------------- */

/* Ops that map a conv's output elementwise (or per channel), so a tensor
 * downstream of them still names that conv. */
static int passes_through(const char *op)
{
    static const char *const ops[] = {"Relu", "Clip", "LeakyRelu", "PRelu", "Sigmoid", "Tanh",
                                      "HardSigmoid", "HardSwish", "BatchNormalization",
                                      "Identity", "Dropout", "Add", "Sub", "Mul", "Div"};
    for (size_t i = 0; i < LVK_ARRAY_LEN(ops); i++)
        if (!strcmp(op, ops[i]))
            return 1;
    return 0;
}

/* The host data of a constant value, or of the Constant node producing it. */
static const float *const_data(const struct lvk_model *m, int v)
{
    const struct lvk_value *val = &m->values[v];
    if (val->dtype != LVK_DTYPE_F32)
        return NULL;
    if (val->host)
        return val->host;
    if (val->producer >= 0 && !strcmp(m->nodes[val->producer].op_type, "Constant")) {
        const struct lvk_attr *a = lvk_attr_find(&m->nodes[val->producer], "value");
        if (a && a->type == LVK_ATTR_TENSOR && m->values[a->tensor].dtype == LVK_DTYPE_F32)
            return m->values[a->tensor].host;
    }
    return NULL;
}

static int is_const_value(const struct lvk_model *m, int v)
{
    return m->values[v].is_const || const_data(m, v) != NULL;
}

/* The one runtime input of node n (binary ops: the other is constant), or
 * -1 when it has none or several (a residual Add is not one conv's). */
static int runtime_input(const struct lvk_model *m, const struct lvk_node *n)
{
    int next = -1;
    for (int k = 0; k < n->ninputs; k++)
        if (n->inputs[k] >= 0 && !is_const_value(m, n->inputs[k])) {
            if (next >= 0)
                return -1;
            next = n->inputs[k];
        }
    return next;
}

static int find_conv(const struct lvk_model *m, const char *layer)
{
    if (!layer) {
        for (int i = 0; i < m->nnodes; i++)
            if (!strcmp(m->nodes[i].op_type, "Conv"))
                return i;
        return -1;
    }
    for (int i = 0; i < m->nnodes; i++)
        if (m->nodes[i].name && !strcmp(m->nodes[i].name, layer) && !strcmp(m->nodes[i].op_type, "Conv"))
            return i;
    int v = lvk_graph_find(m, layer);
    for (int hops = 0; v >= 0 && hops < 16; hops++) {
        int p = m->values[v].producer;
        if (p < 0)
            return -1;
        const struct lvk_node *n = &m->nodes[p];
        if (!strcmp(n->op_type, "Conv"))
            return p;
        if (!passes_through(n->op_type))
            return -1;
        v = runtime_input(m, n);
    }
    return -1;
}

/* Whether value v is the graph's image input, or computed from it through
 * elementwise ops only (in-graph normalisation, Pad). */
static int from_image(const struct lvk_model *m, int v)
{
    for (int hops = 0; v >= 0 && hops < 16; hops++) {
        int p = m->values[v].producer;
        if (p < 0)
            return !is_const_value(m, v);
        const struct lvk_node *n = &m->nodes[p];
        if (!passes_through(n->op_type) && strcmp(n->op_type, "Pad"))
            return 0;
        v = runtime_input(m, n);
    }
    return 0;
}

lvk_status lvk_conv_weights_find(const lvk_model_t *m, const char *layer, struct lvk_conv_weights *out)
{
    memset(out, 0, sizeof *out);
    int ni = find_conv(m, layer);
    if (ni < 0) {
        if (layer && lvk_graph_find(m, layer) < 0)
            return lvk_fail(LVK_ERR_NOT_FOUND, "%s: no tensor or Conv node named '%s' (list them with "
                            "'lucidvk info %s')", m->path, layer, m->path);
        if (layer)
            return lvk_fail(LVK_ERR_NOT_FOUND,
                            "%s: '%s' is neither a Conv node nor a tensor computed from one through "
                            "elementwise ops (list them with 'lucidvk info %s')", m->path, layer, m->path);
        return lvk_fail(LVK_ERR_NOT_FOUND, "%s: the model has no Conv", m->path);
    }
    const struct lvk_node *n = &m->nodes[ni];
    snprintf(out->node, sizeof out->node, "%s", n->name ? n->name : "");
    if (n->ninputs < 2 || n->inputs[1] < 0)
        return lvk_fail(LVK_ERR_FORMAT, "%s: Conv '%s' has no weights", m->path, out->node);
    const struct lvk_value *wv = &m->values[n->inputs[1]];
    snprintf(out->tensor, sizeof out->tensor, "%s", wv->name);
    snprintf(out->output, sizeof out->output, "%s", m->values[n->outputs[0]].name);
    out->sees_image = from_image(m, n->inputs[0]);
    const float *data = const_data(m, n->inputs[1]);
    if (!data)
        return lvk_fail(LVK_ERR_UNSUPPORTED, "%s: the weights '%s' of Conv '%s' are computed at run time, "
                        "not a float constant", m->path, wv->name, out->node);
    if (wv->shape.ndim != 4) {
        char sh[128];
        return lvk_fail(LVK_ERR_UNSUPPORTED, "%s: Conv '%s' has weights %s; only 2-D kernels "
                        "[out, in, kh, kw] can be shown", m->path, out->node,
                        lvk_shape_str(&wv->shape, sh, sizeof sh));
    }
    out->cout = (int)wv->shape.d[0];
    out->cin = (int)wv->shape.d[1];
    out->kh = (int)wv->shape.d[2];
    out->kw = (int)wv->shape.d[3];
    out->group = (int)lvk_attr_int(n, "group", 1);
    size_t count = (size_t)lvk_shape_count(&wv->shape);
    out->w = malloc(count * sizeof *out->w);
    if (!out->w)
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    memcpy(out->w, data, count * sizeof *out->w);
    return LVK_OK;
}

void lvk_conv_weights_free(struct lvk_conv_weights *cw)
{
    if (cw) {
        free(cw->w);
        cw->w = NULL;
    }
}

/* ---- gratings ------------------------------------------------------------------------ */

int lvk_grating_frequencies(int h, int w, float *f, int max)
{
    int n = 0;
    for (int j = 0;; j++) {
        double fj = pow(2.0, -(j + 3) / 2.0);
        if (fj * LVK_MIN(h, w) < 2)
            return n;
        if (n < max)
            f[n] = (float)fj;
        n++;
    }
}

/* The grating of frequency f, direction theta and phase phi (kernels.h) as
 * a preprocessed image [C, H, W]. */
static void grating(const struct lvk_preproc *pre, double f, double theta, double phi, int C, int H, int W,
                    float *img)
{
    const double kx = 2 * PI * f * cos(theta), ky = 2 * PI * f * sin(theta);
    const double cx = (W - 1) / 2.0, cy = (H - 1) / 2.0;
    for (int r = 0; r < H; r++)
        for (int s = 0; s < W; s++)
            img[r * W + s] = (float)(0.5 + 0.5 * cos(kx * (s - cx) + ky * (cy - r) + phi));
    for (int c = 1; c < C; c++)
        memcpy(img + (size_t)c * H * W, img, (size_t)H * W * sizeof *img);
    lvk_preproc_apply(pre, img, C, H, W);
}

/* Loads the model with `tensor` as output at a batch that keeps the
 * activations within budget (or o->batch), and checks the shapes. */
static lvk_status grating_model(lvk_ctx_t *ctx, const char *path, const char *tensor, int want_batch,
                                int nchannels, lvk_model_t **out)
{
    const char *outs[1] = {tensor};
    struct lvk_model_opts mo = {.batch = 1, .outputs = outs, .noutputs = 1};
    lvk_model_t *m = NULL;
    *out = NULL;
    LVK_CHECK(lvk_model_load(ctx, path, &mo, &m));
    struct lvk_tensor_info in, t;
    lvk_status st = lvk_model_tensor_find(m, lvk_model_input_name(m), &in);
    if (st == LVK_OK && in.ndim != 4)
        st = lvk_fail(LVK_ERR_INVALID_ARG, "%s: gratings need an image input [N, C, H, W]; '%s' is %d-D",
                      path, in.name, in.ndim);
    if (st == LVK_OK)
        st = lvk_model_tensor_find(m, tensor, &t);
    if (st == LVK_OK && (t.ndim != 4 || t.shape[1] != nchannels))
        st = lvk_fail(LVK_ERR_INVALID_ARG, "%s: gratings measure a feature map [N, %d, h, w]; '%s' is %d-D "
                      "with %lld channels", path, nchannels, tensor, t.ndim,
                      (long long)(t.ndim > 1 ? t.shape[1] : 0));
    int batch = want_batch > 0 ? want_batch : lvk_rmap_auto_batch(m, 256ull << 20);
    lvk_model_destroy(m);
    if (st != LVK_OK)
        return st;
    mo.batch = LVK_MAX(1, batch);
    return lvk_model_load(ctx, path, &mo, out);
}

lvk_status lvk_grating_stats(lvk_ctx_t *ctx, const char *model_path, const char *tensor,
                             const struct lvk_preproc *pre, const struct lvk_grating_opts *o,
                             struct lvk_kernel_stats *stats, int nchannels)
{
    enum { MAXF = 32 };
    const int A = o->angles > 0 ? o->angles : 36, P = o->phases > 0 ? o->phases : 8;
    lvk_model_t *m = NULL;
    struct lvk_tensor_info in, t;
    LVK_CHECK(grating_model(ctx, model_path, tensor, o->batch, nchannels, &m));
    lvk_status st = lvk_model_tensor_find(m, lvk_model_input_name(m), &in);
    if (st == LVK_OK)
        st = lvk_model_tensor_find(m, tensor, &t);
    if (st != LVK_OK) {
        lvk_model_destroy(m);
        return st;
    }
    const int B = (int)in.shape[0], C = (int)in.shape[1], H = (int)in.shape[2], W = (int)in.shape[3];
    const int K = nchannels, h = (int)t.shape[2], w = (int)t.shape[3];
    float freq[MAXF];
    const int F = LVK_MIN(lvk_grating_frequencies(H, W, freq, MAXF), MAXF);
    if (F < 1) {
        lvk_model_destroy(m);
        return lvk_fail(LVK_ERR_INVALID_ARG, "%s: a %d x %d input is too small for gratings of two cycles",
                        model_path, W, H);
    }
    /* The central half of the map, or all of it when that is empty. */
    const int y0 = h / 4, y1 = h - h / 4, x0 = w / 4, x1 = w - w / 4;
    const int ry0 = y1 > y0 ? y0 : 0, ry1 = y1 > y0 ? y1 : h, rx0 = x1 > x0 ? x0 : 0, rx1 = x1 > x0 ? x1 : w;
    const double per_unit = 1.0 / ((double)P * (ry1 - ry0) * (rx1 - rx0));
    const size_t one = (size_t)C * H * W, plane = (size_t)h * w;
    const int total = F * A * P;
    float *x = malloc((size_t)B * one * sizeof *x), *act = malloc((size_t)B * K * plane * sizeof *act);
    double *r = calloc((size_t)F * A * K, sizeof *r); /* r[(fi * A + ai) * K + k] */
    if (!x || !act || !r)
        st = lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    for (int g0 = 0; g0 < total && st == LVK_OK; g0 += B) {
        const int n = LVK_MIN(B, total - g0);
        for (int b = 0; b < B; b++) {
            /* The last batch repeats its first grating in the unused slots. */
            const int g = g0 + (b < n ? b : 0), fi = g / (A * P), ai = g / P % A, pi = g % P;
            grating(pre, freq[fi], PI * ai / A, 2 * PI * pi / P, C, H, W, x + b * one);
        }
        st = lvk_model_set_input(m, in.name, x, (size_t)B * one);
        if (st == LVK_OK) st = lvk_model_forward(m);
        if (st == LVK_OK) st = lvk_model_read(m, tensor, act, (size_t)B * K * plane);
        for (int b = 0; b < n && st == LVK_OK; b++) {
            const int g = g0 + b, fa = g / P;
            for (int k = 0; k < K; k++) {
                const float *a = act + ((size_t)b * K + k) * plane;
                double sum = 0;
                for (int yy = ry0; yy < ry1; yy++)
                    for (int xx = rx0; xx < rx1; xx++)
                        sum += fmax(0.0, a[yy * w + xx]);
                r[(size_t)fa * K + k] += sum * per_unit;
            }
        }
    }
    for (int k = 0; k < K && st == LVK_OK; k++) {
        int best = -1;
        double peak = 0;
        for (int fi = 0; fi < F; fi++)
            for (int ai = 0; ai < A; ai++)
                if (r[((size_t)fi * A + ai) * K + k] > peak) {
                    peak = r[((size_t)fi * A + ai) * K + k];
                    best = fi;
                }
        struct lvk_kernel_stats *s = &stats[k];
        s->orientation = s->selectivity = s->frequency = 0;
        if (best < 0)
            continue; /* silent for every grating */
        double zr = 0, zi = 0, sum = 0;
        for (int ai = 0; ai < A; ai++) {
            const double v = r[((size_t)best * A + ai) * K + k], th = PI * ai / A;
            zr += v * cos(2 * th);
            zi += v * sin(2 * th);
            sum += v;
        }
        doubled_angle_mean(zr, zi, sum, &s->orientation, &s->selectivity);
        s->frequency = freq[best];
    }
    free(x);
    free(act);
    free(r);
    lvk_model_destroy(m);
    return st;
}

/* ---- pictures ----------------------------------------------------------------------- */

static void value_label(const struct lvk_kernel_stats *s, enum lvk_kernel_rank by, char *buf, size_t len)
{
    switch (by) {
    case LVK_RANK_ORIENTATION:
        if (s->selectivity >= LVK_KERNEL_MIN_SELECTIVITY)
            snprintf(buf, len, "%.0fdeg", s->orientation);
        else
            snprintf(buf, len, "-");
        break;
    case LVK_RANK_FREQUENCY: snprintf(buf, len, "%.2f", s->frequency); break;
    case LVK_RANK_COLOUR: snprintf(buf, len, "%.2f", s->colour); break;
    case LVK_RANK_NORM: snprintf(buf, len, "%.3g", s->norm); break;
    }
}

lvk_status lvk_kernels_render(const struct lvk_conv_weights *cw, const int *order, int n,
                              const struct lvk_kernel_stats *stats, enum lvk_kernel_rank by,
                              int zoom, int shared_scale, struct lvk_image *out)
{
    if (n < 1)
        return lvk_fail(LVK_ERR_INVALID_ARG, "no kernels to draw");
    const int kh = cw->kh, kw = cw->kw, taps = kh * kw, per = cw->cin * taps;
    if (zoom <= 0)
        zoom = LVK_MAX(1, (48 + LVK_MAX(kh, kw) - 1) / LVK_MAX(kh, kw));
    const int tw = kw * zoom, th = kh * zoom;
    const size_t tplane = (size_t)th * tw;
    float *tiles = malloc((size_t)n * 3 * tplane * sizeof *tiles);
    char (*text)[2][16] = malloc((size_t)n * sizeof *text);
    const char **l1 = malloc((size_t)n * sizeof *l1), **l2 = malloc((size_t)n * sizeof *l2);
    if (!tiles || !text || !l1 || !l2) {
        free(tiles); free(text); free(l1); free(l2);
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    }
    float layer_max = 0;
    for (size_t i = 0; i < (size_t)cw->cout * per; i++)
        layer_max = fmaxf(layer_max, fabsf(cw->w[i]));
    for (int j = 0; j < n; j++) {
        const int k = order[j];
        const float *w = cw->w + (size_t)k * per;
        float mx = 0;
        for (int i = 0; i < per; i++)
            mx = fmaxf(mx, fabsf(w[i]));
        if (shared_scale)
            mx = layer_max;
        const float inv = mx > 0 ? 0.5f / mx : 0;
        /* Gray kernels show the input channel with the most energy. */
        int shown = 0;
        if (cw->cin != 3) {
            double best = -1;
            for (int c = 0; c < cw->cin; c++) {
                double e = 0;
                for (int i = 0; i < taps; i++)
                    e += (double)w[c * taps + i] * w[c * taps + i];
                if (e > best) {
                    best = e;
                    shown = c;
                }
            }
        }
        float *t = tiles + (size_t)j * 3 * tplane;
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < th; y++)
                for (int x = 0; x < tw; x++) {
                    const int tap = (y / zoom) * kw + x / zoom;
                    float v = cw->cin == 3 ? w[c * taps + tap] : w[shown * taps + tap];
                    t[c * tplane + (size_t)y * tw + x] = 0.5f + v * inv;
                }
        snprintf(text[j][0], sizeof text[j][0], "%d", k);
        l1[j] = text[j][0];
        if (stats) {
            value_label(&stats[k], by, text[j][1], sizeof text[j][1]);
            l2[j] = text[j][1];
        }
    }
    lvk_status st = lvk_tiles_render(tiles, n, th, tw, 0, l1, stats ? l2 : NULL, NULL, out);
    free(tiles); free(text); free(l1); free(l2);
    return st;
}

const char *lvk_orient_method_name(enum lvk_orient_method m)
{
    return m == LVK_ORIENT_GRATINGS ? "gratings" : "spectrum";
}

lvk_status lvk_kernels_write_json(const char *path, const struct lvk_conv_weights *cw,
                                  const struct lvk_kernel_stats *stats, const int *order,
                                  enum lvk_kernel_rank by, enum lvk_orient_method method,
                                  const char *response_of)
{
    const int gr = method == LVK_ORIENT_GRATINGS;
    struct lvk_jw j = {0};
    lvk_jw_begin_object(&j);
    lvk_jw_key(&j, "layer");
    lvk_jw_string(&j, cw->node);
    lvk_jw_key(&j, "tensor");
    lvk_jw_string(&j, cw->tensor);
    lvk_jw_key(&j, "shape");
    lvk_jw_begin_array(&j);
    lvk_jw_int(&j, cw->cout);
    lvk_jw_int(&j, cw->cin);
    lvk_jw_int(&j, cw->kh);
    lvk_jw_int(&j, cw->kw);
    lvk_jw_end_array(&j);
    lvk_jw_key(&j, "method");
    lvk_jw_string(&j, lvk_orient_method_name(method));
    if (gr) {
        lvk_jw_key(&j, "response_of");
        lvk_jw_string(&j, response_of);
    }
    lvk_jw_key(&j, "definitions");
    lvk_jw_begin_object(&j);
    lvk_jw_key(&j, "orientation");
    lvk_jw_string(&j, gr ? "degrees in [0, 180), counterclockwise on screen from +x: half the angle of "
                           "sum r(theta) e^{2 i theta}, r the channel's response to full-contrast "
                           "gratings across direction theta at its preferred frequency, averaged over "
                           "phases and the central half of its map after rectifying each unit"
                         : "degrees in [0, 180), counterclockwise on screen from +x: the direction of "
                           "the power-weighted mean doubled angle of the spatial-frequency vector "
                           "(normal to the stripes; a Gabor's theta)");
    lvk_jw_key(&j, "selectivity");
    lvk_jw_string(&j, gr ? "|sum r e^{2 i theta}| / sum r, 0 isotropic .. 1 one orientation"
                         : "length of that mean doubled-angle vector, 0 isotropic .. 1 one orientation");
    lvk_jw_key(&j, "frequency");
    lvk_jw_string(&j, gr ? "the grating frequency (half-octave steps), cycles per pixel, with the "
                           "strongest response at any orientation"
                         : "power-weighted mean spatial frequency, cycles per pixel");
    lvk_jw_key(&j, "colour");
    lvk_jw_string(&j, "share of the energy outside the achromatic (channel-mean) component");
    lvk_jw_key(&j, "opponency");
    lvk_jw_string(&j, "max(0, -min cosine between two channels' weights)");
    lvk_jw_end_object(&j);
    lvk_jw_key(&j, "rank");
    lvk_jw_string(&j, lvk_kernel_rank_name(by));
    lvk_jw_key(&j, "kernels");
    lvk_jw_begin_array(&j);
    for (int r = 0; r < cw->cout; r++) {
        const struct lvk_kernel_stats *s = &stats[order[r]];
        lvk_jw_begin_object(&j);
        lvk_jw_key(&j, "index");
        lvk_jw_int(&j, order[r]);
        lvk_jw_key(&j, "rank");
        lvk_jw_int(&j, r);
        lvk_jw_key(&j, "orientation");
        lvk_jw_number(&j, s->orientation);
        lvk_jw_key(&j, "selectivity");
        lvk_jw_number(&j, s->selectivity);
        lvk_jw_key(&j, "frequency");
        lvk_jw_number(&j, s->frequency);
        lvk_jw_key(&j, "colour");
        lvk_jw_number(&j, s->colour);
        lvk_jw_key(&j, "opponency");
        lvk_jw_number(&j, s->opponency);
        lvk_jw_key(&j, "norm");
        lvk_jw_number(&j, s->norm);
        lvk_jw_end_object(&j);
    }
    lvk_jw_end_array(&j);
    lvk_jw_end_object(&j);
    return lvk_jw_write(&j, path);
}
