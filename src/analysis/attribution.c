/* Attribution maps (see attribution.h for the methods and conventions).
 *
 * One recording serves every method: forward, zero the gradients, seed
 * d(objective)/d(tensor) for every image of the batch, backward to the
 * input. It is submitted once per batch of images; the host fills the
 * batch (noisy copies, points on the integration path), converts the input
 * gradient to pixel space and accumulates. Guided backpropagation is the
 * same recording under the model's run-time ReLU gradient mode.
 *
 * Non-goals: attributions with respect to hidden layers (other than
 * Grad-CAM's weights), objectives on the image itself (regularisers are not
 * functions of the network), per-image objectives ("@i", diversity): every
 * image of a batch is an independent copy of the question. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/attribution.h"
#include "nn/graph.h"
#include "nn/onnx.h"
#include "optvis/objective.h"

static const char *const k_methods[] = {
    [LVK_ATTR_SALIENCY] = "saliency", [LVK_ATTR_GUIDED] = "guided", [LVK_ATTR_IG] = "ig",
    [LVK_ATTR_SMOOTHGRAD] = "smoothgrad", [LVK_ATTR_GRADCAM] = "gradcam",
};

lvk_status lvk_attr_method_parse(const char *s, enum lvk_attr_method *out)
{
    for (size_t i = 0; i < LVK_ARRAY_LEN(k_methods); i++)
        if (!strcmp(s, k_methods[i])) {
            *out = (enum lvk_attr_method)i;
            return LVK_OK;
        }
    return lvk_fail(LVK_ERR_INVALID_ARG,
                    "unknown attribution method '%s' (saliency, guided, ig, smoothgrad, gradcam)", s);
}

const char *lvk_attr_method_name(enum lvk_attr_method m)
{
    return (size_t)m < LVK_ARRAY_LEN(k_methods) ? k_methods[m] : "?";
}

void lvk_attr_result_free(struct lvk_attr_result *r)
{
    if (!r)
        return;
    free(r->attr);
    free(r->map);
    free(r->cam);
    free(r->nodes);
    free(r->weights);
    memset(r, 0, sizeof *r);
}

/* ---- which tensors ------------------------------------------------------------------ */

const char *lvk_attr_default_scores(const lvk_model_t *m)
{
    if (m->ngraph_outputs < 1)
        return NULL;
    const struct lvk_value *out = &m->values[m->graph_outputs[0]];
    if (out->producer >= 0) {
        const struct lvk_node *n = &m->nodes[out->producer];
        /* Probabilities saturate: the gradient of a confident softmax output
         * is nearly zero everywhere, so attribute the logits instead. */
        if ((!strcmp(n->op_type, "Softmax") || !strcmp(n->op_type, "LogSoftmax")) &&
            n->ninputs > 0 && n->inputs[0] >= 0)
            return m->values[n->inputs[0]].name;
    }
    return out->name;
}

const char *lvk_attr_default_layer(const lvk_model_t *m)
{
    const char *best = NULL;
    for (int v = 0; v < m->nvalues; v++) {
        const struct lvk_value *val = &m->values[v];
        if (val->producer >= 0 && val->grad && val->shape.ndim == 4 &&
            val->shape.d[2] * val->shape.d[3] > 1)
            best = val->name;
    }
    return best;
}

/* The tensors o needs computed, appended to names[*n]. The model may be an
 * unfinalized graph. */
static lvk_status needed_tensors(const struct lvk_model *m, const struct lvk_attr_opts *o,
                                 struct lvk_objective *obj, const char **names, int max, int *n)
{
    *n = 0;
    if (obj) {
        LVK_CHECK(lvk_objective_tensors(obj, m, names, max - 1, n));
    } else {
        const char *s = o->scores ? o->scores : lvk_attr_default_scores(m);
        if (!s)
            return lvk_fail(LVK_ERR_INVALID_ARG, "%s: the model has no output to attribute", m->path);
        names[(*n)++] = s;
    }
    if (o->method == LVK_ATTR_GRADCAM && o->layer)
        names[(*n)++] = o->layer;
    return LVK_OK;
}

lvk_status lvk_attr_load(lvk_ctx_t *ctx, const char *path, const struct lvk_attr_opts *o,
                         int want, lvk_model_t **out)
{
    *out = NULL;
    int batch = 1;
    if (o->method == LVK_ATTR_IG)
        batch = o->steps > 0 ? o->steps : LVK_ATTR_DEFAULT_STEPS;
    else if (o->method == LVK_ATTR_SMOOTHGRAD)
        batch = o->samples > 0 ? o->samples : LVK_ATTR_DEFAULT_SAMPLES;
    if (want > 0 && batch > want)
        batch = want;

    struct lvk_objective *obj = NULL;
    if (o->objective)
        LVK_CHECK(lvk_objective_parse(o->objective, &obj));
    lvk_status st;
    for (;;) {
        struct lvk_model *m = NULL;
        struct lvk_model_opts mo = {.batch = batch, .gradients = 1};
        const char *names[64];
        int n = 0;
        st = lvk_onnx_load_graph(ctx, path, &mo, NULL, 0, &m);
        if (st == LVK_OK)
            st = needed_tensors(m, o, obj, names, (int)LVK_ARRAY_LEN(names), &n);
        if (st == LVK_OK) {
            mo.outputs = names;
            mo.noutputs = n;
            st = lvk_graph_finalize(m, &mo);
        }
        if (st == LVK_OK) {
            *out = m;
            break;
        }
        lvk_model_destroy(m);
        /* A smaller batch needs proportionally less memory; the passes
         * then run in more chunks. */
        if ((st != LVK_ERR_DEVICE_OOM && st != LVK_ERR_HOST_OOM) || batch == 1)
            break;
        batch /= 2;
    }
    lvk_objective_destroy(obj);
    return st;
}

/* ---- the session: model, bound objective, one recorded pass ---------------------------- */

struct session {
    struct lvk_model *m;
    const struct lvk_attr_opts *o;
    struct lvk_value *input;
    int B, C, H, W;
    size_t img;               /* C*H*W */
    struct lvk_objective *obj;
    struct lvk_objective_gpu *g;
    struct lvk_cmd *cmd;      /* forward, objective, backward */
    struct lvk_cmd *cmd_fwd;  /* forward and objective values only */
    float *x;                 /* [B, C, H, W] model input (host) */
    float *gx;                /* [B, C, H, W] input gradient, then pixel gradient */
    float *values;            /* [B] */
    float scale[3];           /* d model input / d pixel, per pixel channel */
    int swap;                 /* model channel of pixel channel c is C-1-c */
    int passes;               /* forward+backward passes */
};

static void session_free(struct session *s)
{
    if (s->m)
        lvk_graph_set_relu_mode(s->m, LVK_RELU_GRAD_NORMAL);
    lvk_cmd_destroy(s->cmd);
    lvk_cmd_destroy(s->cmd_fwd);
    lvk_objective_gpu_destroy(s->g);
    lvk_objective_destroy(s->obj);
    free(s->x);
    free(s->gx);
    free(s->values);
}

/* Preprocesses n <= B images (consecutive [C, H, W]) into the batch; the
 * spare slots repeat the last image so that every slot holds a valid
 * input, and their results are ignored. */
static lvk_status fill_batch(struct session *s, const float *images, int n)
{
    for (int b = 0; b < s->B; b++) {
        float *dst = s->x + (size_t)b * s->img;
        memcpy(dst, images + (size_t)LVK_MIN(b, n - 1) * s->img, s->img * sizeof *dst);
        lvk_preproc_apply(&s->o->pre, dst, s->C, s->H, s->W);
    }
    return lvk_model_set_input(s->m, s->input->name, s->x, (size_t)s->B * s->img);
}

/* Runs n images forward (want_grad 0) or forward and backward (1);
 * values[0..n) and, with want_grad, the pixel gradients gx[0..n) are valid
 * afterwards, as are every tensor's activations and gradients. */
static lvk_status run_batch(struct session *s, const float *images, int n, int want_grad)
{
    LVK_CHECK(fill_batch(s, images, n));
    LVK_CHECK(lvk_cmd_submit(want_grad ? s->cmd : s->cmd_fwd));
    s->passes += want_grad;
    LVK_CHECK(lvk_objective_read_values(s->g, s->values));
    if (!want_grad)
        return LVK_OK;
    LVK_CHECK(lvk_buf_download(s->m->ctx, s->input->grad, 0, s->gx,
                               (VkDeviceSize)n * s->img * sizeof *s->gx));
    /* Chain rule through the preprocessing: model channel d(c) of pixel
     * channel c is (lo + p * (hi - lo) - mean[c]) / std[c]. */
    const size_t plane = (size_t)s->H * s->W;
    float tmp[3];
    for (int b = 0; b < n; b++) {
        float *g = s->gx + (size_t)b * s->img;
        for (size_t i = 0; i < plane; i++) {
            for (int c = 0; c < s->C; c++)
                tmp[c] = g[(size_t)(s->swap ? s->C - 1 - c : c) * plane + i];
            for (int c = 0; c < s->C; c++)
                g[(size_t)c * plane + i] = tmp[c] * s->scale[c];
        }
    }
    return LVK_OK;
}

/* Index of the largest score of image 0 in the scores tensor. */
static lvk_status top1(struct session *s, const char *scores, const float *image, int *cls, int *ncls)
{
    struct lvk_tensor_info ti;
    LVK_CHECK(lvk_model_tensor_find(s->m, scores, &ti));
    size_t count = 1;
    for (int d = 0; d < ti.ndim; d++)
        count *= (size_t)ti.shape[d];
    *ncls = ti.ndim >= 2 ? (int)ti.shape[1] : (int)count;
    if (!cls)
        return LVK_OK;
    float *buf = malloc(count * sizeof *buf);
    if (!buf)
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    lvk_status st = fill_batch(s, image, 1);
    if (st == LVK_OK) st = lvk_model_forward(s->m);
    if (st == LVK_OK) st = lvk_model_read(s->m, scores, buf, count);
    if (st == LVK_OK) {
        /* A [B, K, ...] tensor: class k of image 0 is the mean of channel k,
         * which for logits [B, K] or [B, K, 1, 1] is the element itself. */
        size_t per = count / (size_t)ti.shape[0], pos = per / (size_t)*ncls;
        int best = 0;
        double bv = -INFINITY;
        for (int k = 0; k < *ncls; k++) {
            double v = 0;
            for (size_t p = 0; p < pos; p++)
                v += buf[(size_t)k * pos + p];
            if (v > bv) {
                bv = v;
                best = k;
            }
        }
        *cls = best;
    }
    free(buf);
    return st;
}

static lvk_status record_pass(struct lvk_cmd *cmd, void *user)
{
    struct session *s = user;
    LVK_CHECK(lvk_graph_record_forward(s->m, cmd));
    lvk_graph_record_zero_grads(s->m, cmd);
    LVK_CHECK(lvk_objective_record_seed(cmd, s->g, 1.0f));
    return lvk_graph_record_backward(s->m, cmd);
}

static lvk_status session_open(struct session *s, struct lvk_model *m, const struct lvk_attr_opts *o,
                               const float *image, struct lvk_attr_result *r)
{
    memset(s, 0, sizeof *s);
    s->m = m;
    s->o = o;
    const char *in = lvk_model_input_name(m);
    if (!in)
        return lvk_fail(LVK_ERR_INVALID_ARG, "%s: the model has no input", m->path);
    s->input = &m->values[lvk_graph_find(m, in)];
    const struct lvk_shape *sh = &s->input->shape;
    if (sh->ndim != 4 || (sh->d[1] != 1 && sh->d[1] != 3))
        return lvk_fail(LVK_ERR_UNSUPPORTED, "%s: input '%s' is not an image (N, 1 or 3, H, W)",
                        m->path, in);
    if (!m->gradients || !s->input->grad)
        return lvk_fail(LVK_ERR_INVALID_ARG, "%s: attribution needs a model loaded with gradients",
                        m->path);
    s->B = (int)sh->d[0];
    s->C = (int)sh->d[1];
    s->H = (int)sh->d[2];
    s->W = (int)sh->d[3];
    s->img = (size_t)s->C * s->H * s->W;
    s->swap = o->pre.bgr && s->C == 3;
    for (int c = 0; c < s->C; c++) {
        if (o->pre.std[c] == 0)
            return lvk_fail(LVK_ERR_INVALID_ARG, "preprocessing: std must not be 0");
        s->scale[c] = (o->pre.hi - o->pre.lo) / o->pre.std[c];
    }
    s->x = malloc((size_t)s->B * s->img * sizeof *s->x);
    s->gx = malloc((size_t)s->B * s->img * sizeof *s->gx);
    s->values = malloc((size_t)s->B * sizeof *s->values);
    if (!s->x || !s->gx || !s->values)
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");

    /* The objective: the one given, or "class(k, scores)". */
    r->target = -1;
    if (o->objective) {
        LVK_CHECK(lvk_objective_parse(o->objective, &s->obj));
        for (int i = 0; i < s->obj->nterms; i++) {
            const struct lvk_term *t = &s->obj->terms[i];
            if (lvk_term_on_image(t->kind) || t->kind == LVK_TERM_DIVERSITY || t->batch >= 0)
                return lvk_fail(LVK_ERR_INVALID_ARG,
                                "objective \"%s\": column %d: attribution cannot use '%.*s' (terms "
                                "on the image, diversity and '@i' do not attribute to one image)",
                                o->objective, t->col, t->len, o->objective + t->col - 1);
        }
    } else {
        const char *scores = o->scores ? o->scores : lvk_attr_default_scores(m);
        if (!scores)
            return lvk_fail(LVK_ERR_INVALID_ARG, "%s: the model has no output to attribute", m->path);
        int ncls, cls = o->target;
        LVK_CHECK(top1(s, scores, image, cls < 0 ? &cls : NULL, &ncls));
        if (cls >= ncls)
            return lvk_fail(LVK_ERR_INVALID_ARG, "class %d out of range: '%s' has %d classes", cls,
                            scores, ncls);
        r->target = cls;
        char text[1200];
        char q = strchr(scores, '\'') ? '"' : '\'';
        snprintf(text, sizeof text, "class(%d, %c%s%c)", cls, q, scores, q);
        LVK_CHECK(lvk_objective_parse(text, &s->obj));
    }
    LVK_CHECK(lvk_objective_bind(s->obj, m, s->B, s->C, s->H, s->W, &s->g));

    /* One pass: forward, then d(objective)/d(input) for every image
     * (through lvk_cmd_record: its pipelines are built in parallel). */
    LVK_CHECK(lvk_cmd_create(m->ctx, false, &s->cmd));
    LVK_CHECK(lvk_cmd_record(s->cmd, record_pass, s));
    /* Values alone (f at the ends of the IG path, at the clean image): the
     * seeds it adds into gradients are zeroed by the next full pass. */
    LVK_CHECK(lvk_cmd_create(m->ctx, false, &s->cmd_fwd));
    LVK_CHECK(lvk_cmd_begin(s->cmd_fwd));
    LVK_CHECK(lvk_graph_record_forward(m, s->cmd_fwd));
    LVK_CHECK(lvk_objective_record_seed(s->cmd_fwd, s->g, 1.0f));
    LVK_CHECK(lvk_cmd_end(s->cmd_fwd));
    return lvk_graph_set_relu_mode(m, o->method == LVK_ATTR_GUIDED ? LVK_RELU_GRAD_GUIDED
                                                                   : LVK_RELU_GRAD_NORMAL);
}

/* ---- methods -------------------------------------------------------------------------- */

/* map[i] = max_c |g[c, i]| */
static void max_abs_map(const float *g, int C, size_t plane, float *map)
{
    for (size_t i = 0; i < plane; i++) {
        float v = 0;
        for (int c = 0; c < C; c++)
            v = fmaxf(v, fabsf(g[(size_t)c * plane + i]));
        map[i] = v;
    }
}

/* Gaussian from a splitmix64 stream (Box-Muller), for SmoothGrad's noise. */
static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s) { return ((double)(splitmix(s) >> 11) + 0.5) * 0x1.0p-53; }

static double gaussian(uint64_t *s)
{
    double u = uniform01(s), v = uniform01(s);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static lvk_status gradients(struct session *s, const float *image, struct lvk_attr_result *r)
{
    LVK_CHECK(run_batch(s, image, 1, 1));
    r->value = s->values[0];
    memcpy(r->attr, s->gx, s->img * sizeof *r->attr);
    return LVK_OK;
}

static lvk_status smoothgrad(struct session *s, const float *image, struct lvk_attr_result *r)
{
    const int n = s->o->samples > 0 ? s->o->samples : LVK_ATTR_DEFAULT_SAMPLES;
    r->images = n;
    const double sigma = s->o->noise > 0 ? s->o->noise : LVK_ATTR_DEFAULT_NOISE;
    double *sum = calloc(s->img, sizeof *sum);
    float *noisy = malloc((size_t)s->B * s->img * sizeof *noisy);
    lvk_status st = (sum && noisy) ? LVK_OK : lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    uint64_t rng = s->o->seed ^ 0x5eed5eedull;
    /* The value at the clean image, for the report. */
    if (st == LVK_OK) st = run_batch(s, image, 1, 0);
    if (st == LVK_OK) r->value = s->values[0];
    for (int done = 0; st == LVK_OK && done < n;) {
        int k = LVK_MIN(s->B, n - done);
        /* Noise is not clipped to [0, 1]: SmoothGrad perturbs the input
         * the network sees, which need not be a displayable image. */
        for (size_t i = 0; i < (size_t)k * s->img; i++)
            noisy[i] = image[i % s->img] + (float)(sigma * gaussian(&rng));
        st = run_batch(s, noisy, k, 1);
        for (size_t i = 0; st == LVK_OK && i < (size_t)k * s->img; i++)
            sum[i % s->img] += s->gx[i];
        done += k;
    }
    for (size_t i = 0; st == LVK_OK && i < s->img; i++)
        r->attr[i] = (float)(sum[i] / n);
    free(sum);
    free(noisy);
    return st;
}

void lvk_attr_ig_nodes(int n, double *t, double *w)
{
    /* Roots of the Legendre polynomial P_n by Newton's method from
     * Tricomi's estimate cos(pi (k + 3/4) / (n + 1/2)); P_n and its
     * derivative by the three-term recurrence. Symmetric about 0, so only
     * half are solved for. */
    for (int k = 0; k < (n + 1) / 2; k++) {
        double x = cos(3.141592653589793 * (k + 0.75) / (n + 0.5)), dp = 1;
        for (int it = 0; it < 100; it++) {
            double p0 = 1, p1 = x;
            for (int j = 2; j <= n; j++) {
                double p2 = ((2 * j - 1) * x * p1 - (j - 1) * p0) / j;
                p0 = p1;
                p1 = p2;
            }
            dp = n * (x * p1 - p0) / (x * x - 1);
            double dx = p1 / dp;
            x -= dx;
            if (fabs(dx) < 1e-15)
                break;
        }
        /* Weight on [-1, 1]: 2 / ((1 - x^2) P_n'(x)^2); halved for [0, 1]. */
        double wk = 1.0 / ((1 - x * x) * dp * dp);
        t[k] = 0.5 * (1 - x);
        t[n - 1 - k] = 0.5 * (1 + x);
        w[k] = w[n - 1 - k] = wk;
    }
}

void lvk_attr_ig_weights(const double *t, int m, double *w)
{
    /* Node k stands for the stretch of path closer to it than to its
     * neighbours: [0, 1] cut halfway between consecutive nodes. */
    double lo = 0;
    for (int k = 0; k < m; k++) {
        double hi = k + 1 < m ? 0.5 * (t[k] + t[k + 1]) : 1.0;
        w[k] = hi - lo;
        lo = hi;
    }
}

lvk_status lvk_attr_ig_refine(const double *t, const double *g, const double *f, int m, double f0,
                              double f1, int add, double *out)
{
    /* Interval j is [t[j-1], t[j]] with t[-1] = 0 and t[m] = 1. Its exact
     * change of f is known from the values; the gradients predict it by
     * the trapezoid rule (by the one gradient at the ends of the path).
     * The mismatch is where the integral is least resolved. */
    double *mis = malloc((size_t)(m + 1) * 3 * sizeof *mis), *len = mis + m + 1, *rem = len + m + 1;
    int *cnt = malloc((size_t)(m + 1) * sizeof *cnt);
    if (!mis || !cnt) {
        free(mis);
        free(cnt);
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    }
    double total = 0;
    for (int j = 0; j <= m; j++) {
        double a = j ? t[j - 1] : 0, b = j < m ? t[j] : 1;
        double fa = j ? f[j - 1] : f0, fb = j < m ? f[j] : f1;
        double pred = j == 0 ? g[0] * b : j == m ? g[m - 1] * (1 - a) : 0.5 * (g[j - 1] + g[j]) * (b - a);
        mis[j] = fabs(pred - (fb - fa));
        len[j] = b - a;
        total += mis[j];
    }
    /* Shares by mismatch (by length when every interval is exact), then
     * the largest remainders, ties to the earlier interval. */
    const double *share = total > 0 ? mis : len;
    const double sum = total > 0 ? total : 1.0;
    int given = 0;
    for (int j = 0; j <= m; j++) {
        double q = share[j] / sum * add;
        cnt[j] = (int)floor(q);
        rem[j] = q - cnt[j];
        given += cnt[j];
    }
    for (; given < add; given++) {
        int best = 0;
        for (int j = 1; j <= m; j++)
            if (rem[j] > rem[best])
                best = j;
        cnt[best]++;
        rem[best] = -1;
    }
    /* Evenly inside each interval, its ends excluded. */
    int o = 0;
    for (int j = 0; j <= m; j++) {
        double a = j ? t[j - 1] : 0, b = j < m ? t[j] : 1;
        for (int i = 1; i <= cnt[j]; i++)
            out[o++] = a + i * (b - a) / (cnt[j] + 1);
    }
    free(mis);
    free(cnt);
    return LVK_OK;
}

/* One point of the integration path: t, df/dt = grad . (x - x0), f, and
 * the slot of its pixel gradient. */
struct ig_node {
    double t, g, f;
    int slot;
};

static int by_t(const void *a, const void *b)
{
    double x = ((const struct ig_node *)a)->t, y = ((const struct ig_node *)b)->t;
    return (x > y) - (x < y);
}

static lvk_status integrated_gradients(struct session *s, const float *image,
                                       struct lvk_attr_result *r)
{
    const int n = s->o->steps > 0 ? s->o->steps : LVK_ATTR_DEFAULT_STEPS;
    /* Half the nodes Gauss-Legendre, then two rounds placed where the
     * integral is least resolved (64: 32, 16, 16). */
    const int rest = n - (n + 1) / 2, stage[3] = {(n + 1) / 2, (rest + 1) / 2, rest / 2};
    float *base = calloc(s->img, sizeof *base); /* black unless given */
    float *path = malloc((size_t)LVK_MAX(s->B, 2) * s->img * sizeof *path);
    float *grads = malloc((size_t)n * s->img * sizeof *grads); /* [n, C, H, W], by slot */
    struct ig_node *nd = malloc((size_t)n * sizeof *nd);
    double *t = malloc((size_t)n * sizeof *t), *g = malloc((size_t)n * sizeof *g);
    double *f = malloc((size_t)n * sizeof *f), *wslot = malloc((size_t)n * sizeof *wslot);
    r->nodes = malloc((size_t)n * sizeof *r->nodes);
    r->weights = malloc((size_t)n * sizeof *r->weights);
    lvk_status st = (base && path && grads && nd && t && g && f && wslot && r->nodes && r->weights)
                        ? LVK_OK : lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    if (st == LVK_OK && s->o->baseline)
        memcpy(base, s->o->baseline, s->img * sizeof *base);
    r->steps = r->images = n;

    /* f(x0) and f(x), in one pass when the batch holds two images. */
    if (st == LVK_OK) {
        memcpy(path, base, s->img * sizeof *path);
        memcpy(path + s->img, image, s->img * sizeof *path);
        if (s->B >= 2) {
            st = run_batch(s, path, 2, 0);
            r->baseline_value = s->values[0];
            r->value = s->values[1];
        } else {
            st = run_batch(s, path, 1, 0);
            r->baseline_value = s->values[0];
            if (st == LVK_OK) st = run_batch(s, image, 1, 0);
            r->value = s->values[0];
        }
    }
    int m = 0; /* nodes evaluated */
    for (int k = 0; k < 3 && st == LVK_OK && stage[k] > 0; k++) {
        double *fresh = r->nodes; /* scratch until the end */
        if (k == 0) {
            lvk_attr_ig_nodes(stage[0], fresh, r->weights);
        } else {
            qsort(nd, (size_t)m, sizeof *nd, by_t);
            for (int j = 0; j < m; j++) {
                t[j] = nd[j].t;
                g[j] = nd[j].g;
                f[j] = nd[j].f;
            }
            st = lvk_attr_ig_refine(t, g, f, m, r->baseline_value, r->value, stage[k], fresh);
        }
        for (int done = 0; st == LVK_OK && done < stage[k];) {
            int cnt = LVK_MIN(s->B, stage[k] - done);
            for (int j = 0; j < cnt; j++) {
                float *p = path + (size_t)j * s->img;
                for (size_t i = 0; i < s->img; i++)
                    p[i] = base[i] + (float)fresh[done + j] * (image[i] - base[i]);
            }
            st = run_batch(s, path, cnt, 1);
            for (int j = 0; st == LVK_OK && j < cnt; j++, m++) {
                const float *gx = s->gx + (size_t)j * s->img;
                double dot = 0;
                for (size_t i = 0; i < s->img; i++)
                    dot += (double)(image[i] - base[i]) * gx[i];
                memcpy(grads + (size_t)m * s->img, gx, s->img * sizeof *grads);
                nd[m] = (struct ig_node){.t = fresh[done + j], .g = dot, .f = s->values[j], .slot = m};
            }
            done += cnt;
        }
    }
    if (st == LVK_OK) {
        qsort(nd, (size_t)n, sizeof *nd, by_t);
        for (int j = 0; j < n; j++)
            r->nodes[j] = nd[j].t;
        lvk_attr_ig_weights(r->nodes, n, r->weights);
        for (int j = 0; j < n; j++)
            wslot[nd[j].slot] = r->weights[j];
        double total = 0;
        for (size_t i = 0; i < s->img; i++) {
            double acc = 0;
            for (int j = 0; j < n; j++)
                acc += wslot[j] * grads[(size_t)j * s->img + i];
            double a = (double)(image[i] - base[i]) * acc;
            r->attr[i] = (float)a;
            total += a;
        }
        double delta = r->value - r->baseline_value;
        r->attr_sum = total;
        r->completeness = fabs(total - delta) / fmax(fabs(delta), 1e-12);
    }
    free(base);
    free(path);
    free(grads);
    free(nd);
    free(t);
    free(g);
    free(f);
    free(wslot);
    return st;
}

/* Bilinear upsampling, half-pixel centres and clamped edges (the
 * convention of lvk_image_resize and PyTorch's align_corners=False). */
static void upsample(const float *src, int sh, int sw, float *dst, int h, int w)
{
    for (int y = 0; y < h; y++) {
        float fy = fmaxf(((float)y + 0.5f) * (float)sh / (float)h - 0.5f, 0.0f);
        int y0 = LVK_MIN((int)fy, sh - 1), y1 = LVK_MIN(y0 + 1, sh - 1);
        float ay = fy - (float)y0;
        for (int x = 0; x < w; x++) {
            float fx = fmaxf(((float)x + 0.5f) * (float)sw / (float)w - 0.5f, 0.0f);
            int x0 = LVK_MIN((int)fx, sw - 1), x1 = LVK_MIN(x0 + 1, sw - 1);
            float ax = fx - (float)x0;
            float top = src[y0 * sw + x0] * (1 - ax) + src[y0 * sw + x1] * ax;
            float bot = src[y1 * sw + x0] * (1 - ax) + src[y1 * sw + x1] * ax;
            dst[y * w + x] = top * (1 - ay) + bot * ay;
        }
    }
}

static lvk_status gradcam(struct session *s, const float *image, struct lvk_attr_result *r)
{
    const char *layer = s->o->layer ? s->o->layer : lvk_attr_default_layer(s->m);
    if (!layer)
        return lvk_fail(LVK_ERR_NOT_FOUND, "%s: no convolutional feature map for Grad-CAM; name one",
                        s->m->path);
    int v = lvk_graph_find(s->m, layer);
    if (v < 0)
        return lvk_fail(LVK_ERR_NOT_FOUND, "%s: no tensor named '%s' (list them with 'lucidvk info %s')",
                        s->m->path, layer, s->m->path);
    const struct lvk_value *val = &s->m->values[v];
    if (val->shape.ndim != 4 || !val->buf || !val->grad) {
        char sh[128];
        return lvk_fail(LVK_ERR_INVALID_ARG,
                        "Grad-CAM needs a computed 4-D feature map [N, K, h, w] on the gradient path; "
                        "'%s' is %s", layer, lvk_shape_str(&val->shape, sh, sizeof sh));
    }
    snprintf(r->layer, sizeof r->layer, "%s", layer);
    const int K = (int)val->shape.d[1], h = (int)val->shape.d[2], w = (int)val->shape.d[3];
    const size_t plane = (size_t)h * w, n = (size_t)K * plane;
    /* The backward pass leaves the layer's gradient in place. */
    LVK_CHECK(run_batch(s, image, 1, 1));
    r->value = s->values[0];
    float *act = malloc(n * sizeof *act), *grad = malloc(n * sizeof *grad);
    r->cam = calloc(plane, sizeof *r->cam);
    lvk_status st = (act && grad && r->cam) ? LVK_OK : lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    /* Image 0 is the first K*h*w floats of both buffers. */
    if (st == LVK_OK) st = lvk_buf_download(s->m->ctx, val->buf, 0, act, n * sizeof *act);
    if (st == LVK_OK) st = lvk_buf_download(s->m->ctx, val->grad, 0, grad, n * sizeof *grad);
    if (st == LVK_OK) {
        double *acc = calloc(plane, sizeof *acc);
        if (!acc) {
            st = lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
        } else {
            for (int k = 0; k < K; k++) {
                double alpha = 0;
                for (size_t i = 0; i < plane; i++)
                    alpha += grad[(size_t)k * plane + i];
                alpha /= (double)plane;
                for (size_t i = 0; i < plane; i++)
                    acc[i] += alpha * act[(size_t)k * plane + i];
            }
            for (size_t i = 0; i < plane; i++)
                r->cam[i] = (float)fmax(acc[i], 0.0);
            free(acc);
            r->cam_h = h;
            r->cam_w = w;
            upsample(r->cam, h, w, r->map, s->H, s->W);
        }
    }
    free(act);
    free(grad);
    return st;
}

lvk_status lvk_attr_compute(lvk_model_t *m, const struct lvk_attr_opts *o, const float *image,
                            struct lvk_attr_result *r)
{
    memset(r, 0, sizeof *r);
    struct session s;
    lvk_status st = session_open(&s, m, o, image, r);
    if (st == LVK_OK) {
        r->c = s.C;
        r->h = s.H;
        r->w = s.W;
        r->batch = s.B;
        r->images = 1; /* the methods with more say so */
        r->map = calloc((size_t)s.H * s.W, sizeof *r->map);
        if (o->method != LVK_ATTR_GRADCAM)
            r->attr = calloc(s.img, sizeof *r->attr);
        if (!r->map || (o->method != LVK_ATTR_GRADCAM && !r->attr))
            st = lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    }
    if (st == LVK_OK) {
        switch (o->method) {
        case LVK_ATTR_SALIENCY:
        case LVK_ATTR_GUIDED: st = gradients(&s, image, r); break;
        case LVK_ATTR_SMOOTHGRAD: st = smoothgrad(&s, image, r); break;
        case LVK_ATTR_IG: st = integrated_gradients(&s, image, r); break;
        case LVK_ATTR_GRADCAM: st = gradcam(&s, image, r); break;
        default: st = lvk_fail(LVK_ERR_INVALID_ARG, "unknown attribution method %d", (int)o->method);
        }
    }
    if (st == LVK_OK && o->method != LVK_ATTR_GRADCAM) {
        const size_t plane = (size_t)s.H * s.W;
        if (o->method == LVK_ATTR_IG) {
            /* Per-pixel share of the completeness sum. */
            for (size_t i = 0; i < plane; i++) {
                double v = 0;
                for (int c = 0; c < s.C; c++)
                    v += r->attr[(size_t)c * plane + i];
                r->map[i] = (float)fabs(v);
            }
        } else {
            max_abs_map(r->attr, s.C, plane, r->map);
        }
    }
    r->passes = s.passes;
    session_free(&s);
    if (st != LVK_OK)
        lvk_attr_result_free(r);
    return st;
}

/* ---- baselines and pictures ------------------------------------------------------------ */

static void blur_1d(const float *src, float *dst, int n, int stride, const float *k, int rad)
{
    for (int i = 0; i < n; i++) {
        float acc = 0;
        for (int j = -rad; j <= rad; j++) {
            int t = LVK_MIN(LVK_MAX(i + j, 0), n - 1);
            acc += k[j + rad] * src[(size_t)t * stride];
        }
        dst[(size_t)i * stride] = acc;
    }
}

lvk_status lvk_attr_baseline(enum lvk_attr_baseline kind, const float *image, int c, int h, int w,
                             uint64_t seed, float *out)
{
    const size_t n = (size_t)c * h * w;
    switch (kind) {
    case LVK_BASELINE_BLACK:
        memset(out, 0, n * sizeof *out);
        return LVK_OK;
    case LVK_BASELINE_NOISE: {
        uint64_t rng = seed ^ 0xba5e11e5ull;
        for (size_t i = 0; i < n; i++)
            out[i] = (float)uniform01(&rng);
        return LVK_OK;
    }
    case LVK_BASELINE_BLUR: {
        const double sigma = LVK_MAX(h, w) / 16.0;
        const int rad = (int)ceil(3 * sigma);
        float *k = malloc((size_t)(2 * rad + 1) * sizeof *k);
        float *tmp = malloc((size_t)h * w * sizeof *tmp);
        if (!k || !tmp) {
            free(k);
            free(tmp);
            return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
        }
        double ks = 0;
        for (int j = -rad; j <= rad; j++)
            ks += exp(-0.5 * j * j / (sigma * sigma));
        for (int j = -rad; j <= rad; j++)
            k[j + rad] = (float)(exp(-0.5 * j * j / (sigma * sigma)) / ks);
        for (int ch = 0; ch < c; ch++) {
            const float *src = image + (size_t)ch * h * w;
            float *dst = out + (size_t)ch * h * w;
            for (int y = 0; y < h; y++)
                blur_1d(src + (size_t)y * w, tmp + (size_t)y * w, w, 1, k, rad);
            for (int x = 0; x < w; x++)
                blur_1d(tmp + x, dst + x, h, w, k, rad);
        }
        free(k);
        free(tmp);
        return LVK_OK;
    }
    }
    return lvk_fail(LVK_ERR_INVALID_ARG, "unknown baseline %d", (int)kind);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

lvk_status lvk_attr_render(const float *map, int h, int w, const float *image, int c,
                           enum lvk_cmap cmap, float clip_pct, struct lvk_image *out)
{
    const size_t plane = (size_t)h * w;
    float *sorted = malloc(plane * sizeof *sorted);
    if (!sorted)
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    memcpy(sorted, map, plane * sizeof *sorted);
    qsort(sorted, plane, sizeof *sorted, cmp_float);
    double pct = fmin(fmax(clip_pct, 0.0), 100.0);
    size_t at = (size_t)llround(pct / 100.0 * (double)(plane - 1));
    float top = sorted[at];
    free(sorted);
    /* Saturating the few strongest pixels keeps one outlier from making the
     * rest of a gradient map black. */
    float inv = top > 0 ? 1.0f / top : 0.0f;
    LVK_CHECK(lvk_image_alloc(out, w, h, 3));
    for (size_t i = 0; i < plane; i++) {
        float t = fminf(fmaxf(map[i] * inv, 0.0f), 1.0f), rgb[3];
        lvk_cmap_rgb(cmap, t, rgb);
        for (int ch = 0; ch < 3; ch++) {
            float v = rgb[ch];
            if (image) {
                /* The image at half brightness, so the heat stands out. */
                float p = 0.5f * image[(size_t)(c == 3 ? ch : 0) * plane + i];
                v = (1 - t) * p + t * v;
            }
            out->data[(size_t)ch * plane + i] = v;
        }
    }
    return LVK_OK;
}
