/* Neural response maps: responses on the device, Spearman correlation on
 * the device, t-SNE on the CPU, layout, JSON. See response_map.h for the
 * pipeline.
 *
 * Device work: shaders/rmap_mean.comp (spatial means straight from the
 * activation buffers, recorded after the forward pass in one command
 * buffer per batch), shaders/rank_rows.comp and shaders/corr_gram.comp
 * (ranks, then the correlation matrix in row blocks that fit one storage
 * buffer; only the block is downloaded, so the full matrix of a large
 * network never exists anywhere when Barnes-Hut needs only neighbours).
 *
 * Non-goals: neurons other than whole channels (single units at a
 * position); responses other than the spatial mean. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "analysis/response_map.h"
#include "io/lvk_io.h"
#include "nn/graph.h"
#include "nn/ops_common.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static char *dup_str(const char *s)
{
    char *d = s ? malloc(strlen(s) + 1) : NULL;
    if (d)
        strcpy(d, s);
    return d;
}

void lvk_rmap_destroy(struct lvk_rmap *r)
{
    if (!r)
        return;
    free(r->model);
    free(r->inputs);
    lvk_rmap_layers_free(r->layers, r->nlayers);
    free(r->neurons);
    free(r->dropped);
    free(r);
}

/* ---- layers ------------------------------------------------------------------------------- */

/* Ops whose 4-D outputs are layers by default. */
static const char *const k_layer_ops[] = {
    "Conv", "ConvTranspose", "BatchNormalization", "Add", "Mul", "Concat",
    "Relu", "Clip", "LeakyRelu", "PRelu", "Elu", "Selu", "Sigmoid", "Tanh",
    "HardSwish", "HardSigmoid", "Softplus",
};
/* Ops that only transform each value of their input: an input read by
 * these alone is a pre-activation, and the activation stands for it. */
static const char *const k_activation_ops[] = {
    "BatchNormalization", "Relu", "Clip", "LeakyRelu", "PRelu", "Elu", "Selu", "Sigmoid",
    "Tanh", "HardSwish", "HardSigmoid", "Softplus",
};

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(s, list[i]))
            return true;
    return false;
}

static bool is_layer_value(const struct lvk_model *m, int v)
{
    const struct lvk_value *val = &m->values[v];
    return val->producer >= 0 && !val->is_const && val->dtype == LVK_DTYPE_F32 &&
           val->shape.ndim == 4 && val->shape.d[1] > 0;
}

static bool is_pre_activation(const struct lvk_model *m, int v)
{
    int readers = 0;
    for (int i = 0; i < m->nnodes; i++) {
        const struct lvk_node *n = &m->nodes[i];
        if (n->folded)
            continue;
        for (int k = 0; k < n->ninputs; k++)
            if (n->inputs[k] == v) {
                if (!in_list(n->op_type, k_activation_ops, LVK_ARRAY_LEN(k_activation_ops)))
                    return false;
                readers++;
                break;
            }
    }
    return readers > 0;
}

void lvk_rmap_layers_free(struct lvk_rmap_layer *layers, int n)
{
    for (int i = 0; layers && i < n; i++)
        free(layers[i].name);
    free(layers);
}

lvk_status lvk_rmap_layers(const lvk_model_t *m, const char *const *names, int nnames,
                           struct lvk_rmap_layer **layers, int *n)
{
    *layers = NULL;
    *n = 0;
    int cap = nnames > 0 ? nnames : m->nvalues;
    struct lvk_rmap_layer *l = lvk_calloc((size_t)LVK_MAX(cap, 1), sizeof *l);
    if (!l)
        return LVK_ERR_HOST_OOM;
    int k = 0;
    if (nnames > 0) {
        for (int i = 0; i < nnames; i++) {
            int v = lvk_graph_find(m, names[i]);
            if (v < 0) {
                lvk_rmap_layers_free(l, k);
                return lvk_fail(LVK_ERR_NOT_FOUND, "%s: no tensor named '%s' (see 'lucidvk info')",
                                m->path, names[i]);
            }
            if (!is_layer_value(m, v)) {
                lvk_rmap_layers_free(l, k);
                return lvk_fail(LVK_ERR_INVALID_ARG, "%s: '%s' is not a computed 4-D activation "
                                "[N, C, H, W] (see 'lucidvk info')", m->path, names[i]);
            }
            for (int j = 0; j < k; j++)
                if (!strcmp(l[j].name, names[i])) {
                    lvk_rmap_layers_free(l, k);
                    return lvk_fail(LVK_ERR_INVALID_ARG, "layer '%s' is listed twice", names[i]);
                }
            l[k].name = dup_str(names[i]);
            l[k].channels = (int)m->values[v].shape.d[1];
            if (!l[k++].name) {
                lvk_rmap_layers_free(l, k);
                return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
            }
        }
    } else {
        for (int v = 0; v < m->nvalues; v++) {
            if (!is_layer_value(m, v))
                continue;
            const char *op = m->nodes[m->values[v].producer].op_type;
            if (!in_list(op, k_layer_ops, LVK_ARRAY_LEN(k_layer_ops)) || is_pre_activation(m, v))
                continue;
            l[k].name = dup_str(m->values[v].name);
            l[k].channels = (int)m->values[v].shape.d[1];
            if (!l[k++].name) {
                lvk_rmap_layers_free(l, k);
                return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
            }
        }
        if (!k) {
            free(l);
            return lvk_fail(LVK_ERR_UNSUPPORTED, "%s: no convolution or activation layers with "
                            "4-D outputs; name layers with --layers", m->path);
        }
    }
    *layers = l;
    *n = k;
    return LVK_OK;
}

int lvk_rmap_auto_batch(const lvk_model_t *m, uint64_t budget)
{
    uint64_t total = 0, largest = 0;
    const char *in = lvk_model_input_name(m);
    int iv = in ? lvk_graph_find(m, in) : -1;
    int64_t batch = iv >= 0 && m->values[iv].shape.ndim > 0 ? LVK_MAX(m->values[iv].shape.d[0], 1) : 1;
    for (int v = 0; v < m->nvalues; v++) {
        const struct lvk_value *val = &m->values[v];
        if (!val->buf || val->is_const || val->alias_of >= 0)
            continue;
        uint64_t bytes = (uint64_t)lvk_shape_count(&val->shape) * 4 / (uint64_t)batch;
        total += bytes;
        largest = LVK_MAX(largest, bytes);
    }
    uint64_t by_total = budget / LVK_MAX(total, 1);
    uint64_t by_largest = m->ctx->limits.maxStorageBufferRange / LVK_MAX(largest, 1);
    return (int)LVK_MAX(1, LVK_MIN(LVK_MIN(by_total, by_largest), 32));
}

/* ---- responses ---------------------------------------------------------------------------- */

/* Push constants of shaders/rmap_mean.comp. */
struct rmap_mean_pc {
    uint32_t channels, hw, batch, first;
};
_Static_assert(sizeof(struct rmap_mean_pc) == 16, "rmap_mean.comp push block");

lvk_status lvk_rmap_responses(lvk_model_t *m, const struct lvk_rmap_layer *layers, int nlayers,
                              const struct lvk_rmap_source *src, float *resp)
{
    struct lvk_ctx *ctx = m->ctx;
    const char *in = lvk_model_input_name(m);
    int iv = in ? lvk_graph_find(m, in) : -1;
    if (iv < 0 || m->values[iv].shape.ndim != 4)
        return lvk_fail(LVK_ERR_UNSUPPORTED, "%s: the input is not an image [N, C, H, W]", m->path);
    const struct lvk_shape *ish = &m->values[iv].shape;
    int batch = (int)ish->d[0];
    size_t per = (size_t)(ish->d[1] * ish->d[2] * ish->d[3]);
    int total = 0;
    int *vals = lvk_calloc((size_t)nlayers, sizeof *vals);
    if (!vals)
        return LVK_ERR_HOST_OOM;
    for (int l = 0; l < nlayers; l++) {
        vals[l] = lvk_graph_find(m, layers[l].name);
        const struct lvk_value *val = vals[l] >= 0 ? &m->values[vals[l]] : NULL;
        if (!val || !val->buf || val->shape.ndim != 4 || val->shape.d[0] != batch ||
            val->shape.d[1] != layers[l].channels) {
            free(vals);
            return lvk_fail(LVK_ERR_INVALID_ARG, "%s: layer '%s' is not computed with %d channels "
                            "at batch %d (load the model with it among the outputs)", m->path,
                            layers[l].name, layers[l].channels, batch);
        }
        total += layers[l].channels;
    }

    struct lvk_buf dev = {0};
    struct lvk_arena arena = {0};
    struct lvk_cmd *cmd = NULL;
    float *host = lvk_calloc((size_t)total * batch, sizeof *host);
    float *images = lvk_calloc(per * batch, sizeof *images);
    lvk_status st = host && images ? LVK_OK : LVK_ERR_HOST_OOM;
    const VkDeviceSize bytes = (VkDeviceSize)total * batch * 4;
    if (st == LVK_OK)
        st = lvk_arena_create(ctx, &bytes, 1, &dev, &arena);
    const struct lvk_pipeline *p = NULL;
    if (st == LVK_OK && !(p = lvk_pipeline_get(ctx, LVK_SHADER_RMAP_MEAN, NULL, 0)))
        st = LVK_ERR_VULKAN;
    if (st == LVK_OK)
        st = lvk_cmd_create(ctx, false, &cmd);
    if (st == LVK_OK)
        st = lvk_cmd_begin(cmd);
    /* One recording for every batch: the forward pass, then the means of
     * each layer (every dispatch ends with a barrier, so the means read the
     * finished activations). */
    if (st == LVK_OK)
        st = lvk_graph_record_forward(m, cmd);
    for (int l = 0, first = 0; l < nlayers && st == LVK_OK; l++) {
        const struct lvk_value *val = &m->values[vals[l]];
        struct rmap_mean_pc pc = {.channels = (uint32_t)layers[l].channels,
                                  .hw = (uint32_t)(val->shape.d[2] * val->shape.d[3]),
                                  .batch = (uint32_t)batch, .first = (uint32_t)first};
        if (pc.channels > lvk_max_groups(ctx, 0) || pc.batch > lvk_max_groups(ctx, 1)) {
            st = lvk_fail(LVK_ERR_UNSUPPORTED, "layer '%s': %u channels x batch %u exceed the "
                          "device's workgroup grid", layers[l].name, pc.channels, pc.batch);
            break;
        }
        st = lvk_cmd_dispatch(cmd, p, LVK_BINDS(LVK_B(&dev), LVK_B(val->buf)), 2, &pc, sizeof pc,
                              pc.channels, pc.batch, 1, "rmap_mean");
        first += layers[l].channels;
    }
    if (st == LVK_OK)
        st = lvk_cmd_end(cmd);
    for (int s = 0; s < src->count && st == LVK_OK; s += batch) {
        int nb = LVK_MIN(batch, src->count - s);
        /* A short last batch runs with the rest of the images zeroed and
         * their responses ignored. */
        memset(images, 0, per * batch * sizeof *images);
        for (int b = 0; b < nb && st == LVK_OK; b++)
            st = src->load(src->user, s + b, images + b * per);
        if (st == LVK_OK)
            st = lvk_model_set_input(m, in, images, per * batch);
        if (st == LVK_OK)
            st = lvk_cmd_submit(cmd);
        if (st == LVK_OK)
            st = lvk_buf_download(ctx, &dev, 0, host, bytes);
        for (int n = 0; n < total && st == LVK_OK; n++)
            for (int b = 0; b < nb; b++)
                resp[(size_t)n * src->count + s + b] = host[(size_t)n * batch + b];
    }
    lvk_cmd_destroy(cmd);
    lvk_arena_destroy(ctx, &dev, 1, &arena);
    free(host);
    free(images);
    free(vals);
    return st;
}

/* ---- correlation -------------------------------------------------------------------------- */

/* Push constants of shaders/rank_rows.comp and shaders/corr_gram.comp. */
struct rank_pc {
    uint32_t n, m, np;
};
_Static_assert(sizeof(struct rank_pc) == 12, "rank_rows.comp push block");
struct gram_pc {
    uint32_t m, np, row0, rows;
};
_Static_assert(sizeof(struct gram_pc) == 16, "corr_gram.comp push block");

/* A neighbour candidate; "better" = higher correlation, then lower index. */
struct cand {
    float c;
    int32_t j;
};

static bool better(struct cand a, struct cand b)
{
    return a.c > b.c || (a.c == b.c && a.j < b.j);
}

/* Min-heap on "better": the root is the worst of the kept k. */
static void sift_down(struct cand *h, int k, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < k && better(h[w], h[l]))
            w = l;
        if (r < k && better(h[w], h[r]))
            w = r;
        if (w == i)
            return;
        struct cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static int by_better(const void *a, const void *b)
{
    struct cand x = *(const struct cand *)a, y = *(const struct cand *)b;
    return better(x, y) ? -1 : better(y, x) ? 1 : 0;
}

/* The k best other columns of correlation row i (n values). */
static void select_row(const float *row, int n, int i, int k, struct cand *heap, int32_t *nbr,
                       float *dist)
{
    int have = 0;
    for (int j = 0; j < n; j++) {
        if (j == i)
            continue;
        struct cand c = {row[j], j};
        if (have < k) {
            heap[have++] = c;
            if (have == k)
                for (int a = k / 2 - 1; a >= 0; a--)
                    sift_down(heap, k, a);
        } else if (better(c, heap[0])) {
            heap[0] = c;
            sift_down(heap, k, 0);
        }
    }
    qsort(heap, (size_t)k, sizeof *heap, by_better);
    for (int a = 0; a < k; a++) {
        nbr[a] = heap[a].j;
        dist[a] = fmaxf(0.0f, 1.0f - heap[a].c);
    }
}

lvk_status lvk_rmap_spearman(lvk_ctx_t *ctx, const float *x, int n, int m, float *corr, int k,
                             int32_t *nbr, float *dist)
{
    if (n < 1 || m < 2 || (!corr && (k < 1 || k > n - 1 || !nbr || !dist)))
        return lvk_fail(LVK_ERR_INVALID_ARG, "Spearman correlation of %d rows of %d values with %d "
                        "neighbours: need at least 2 values and 1 <= neighbours < rows", n, m, k);
    /* Kernel shape: many outputs per invocation where the driver runs
     * invocations as SIMD lanes of a CPU (lavapipe), a small block on GPUs. */
    uint32_t lanes = ctx->is_lavapipe ? 32 : 64, rb = ctx->is_lavapipe ? 16 : 4,
             cq = ctx->is_lavapipe ? 4 : 1;
    lanes = LVK_MIN(lanes, ctx->limits.maxComputeWorkGroupSize[0]);
    uint32_t np = (uint32_t)LVK_CEIL_DIV(n, 16) * 16; /* a multiple of 4 and of rb */
    uint64_t zbytes = (uint64_t)m * np * 4;
    uint64_t range = LVK_MIN((uint64_t)ctx->limits.maxStorageBufferRange, 64ull << 20);
    if (zbytes > ctx->limits.maxStorageBufferRange || (uint64_t)n * m * 4 > ctx->limits.maxStorageBufferRange ||
        zbytes / 16 > ctx->limits.maxTexelBufferElements)
        return lvk_fail(LVK_ERR_UNSUPPORTED, "%d neurons x %d images is too large for one device "
                        "buffer (%u bytes, %u texels); use fewer images (--limit)", n, m,
                        ctx->limits.maxStorageBufferRange, ctx->limits.maxTexelBufferElements);
    uint32_t block = (uint32_t)LVK_MAX((uint64_t)rb, range / ((uint64_t)np * 4) / rb * rb);
    block = LVK_MIN(block, np);

    struct lvk_buf b[3] = {{0}};
    struct lvk_arena arena = {0};
    struct lvk_cmd *cmd = NULL;
    float *host = NULL;
    struct cand *heap = NULL;
    const VkDeviceSize sizes[3] = {(VkDeviceSize)n * m * 4, zbytes, (VkDeviceSize)block * np * 4};
    lvk_status st = lvk_arena_create(ctx, sizes, 3, b, &arena);
    const struct lvk_pipeline *prank = NULL, *pgram = NULL;
    if (st == LVK_OK) {
        prank = lvk_pipeline_get(ctx, LVK_SHADER_RANK_ROWS, NULL, 0);
        const uint32_t spec[3] = {lanes, rb, cq};
        pgram = lvk_pipeline_get(ctx, LVK_SHADER_CORR_GRAM, spec, 3);
        if (!prank || !pgram)
            st = LVK_ERR_VULKAN;
    }
    host = lvk_calloc((size_t)block * np, sizeof *host);
    if (!corr)
        heap = lvk_calloc((size_t)k, sizeof *heap);
    if (st == LVK_OK && (!host || (!corr && !heap)))
        st = LVK_ERR_HOST_OOM;
    if (st == LVK_OK)
        st = lvk_buf_upload(ctx, &b[0], 0, x, sizes[0]);
    if (st == LVK_OK)
        st = lvk_cmd_create(ctx, false, &cmd);
    if (st == LVK_OK)
        st = lvk_cmd_begin(cmd);
    if (st == LVK_OK) {
        /* Padding columns of z stay 0: correlation 0, never stored. */
        lvk_cmd_fill(cmd, &b[1], 0, VK_WHOLE_SIZE, 0);
        uint32_t gx = LVK_MIN((uint32_t)n, lvk_max_groups(ctx, 0));
        struct rank_pc pc = {.n = (uint32_t)n, .m = (uint32_t)m, .np = np};
        st = lvk_cmd_dispatch(cmd, prank, LVK_BINDS(LVK_B(&b[1]), LVK_B(&b[0])), 2, &pc, sizeof pc,
                              gx, LVK_CEIL_DIV((uint32_t)n, gx), 1, "rank_rows");
    }
    if (st == LVK_OK)
        st = lvk_cmd_end(cmd);
    if (st == LVK_OK)
        st = lvk_cmd_submit(cmd);
    for (uint32_t r0 = 0; r0 < (uint32_t)n && st == LVK_OK; r0 += block) {
        uint32_t rows = LVK_MIN(block, (uint32_t)n - r0);
        struct gram_pc pc = {.m = (uint32_t)m, .np = np, .row0 = r0, .rows = rows};
        uint32_t gx = LVK_CEIL_DIV(np / 4, cq * lanes), gy = LVK_CEIL_DIV(rows, rb);
        st = lvk_cmd_begin(cmd);
        if (st == LVK_OK)
            st = lvk_cmd_dispatch(cmd, pgram,
                                  LVK_BINDS(LVK_B(&b[2]), LVK_B(&b[1]),
                                            {.buf = &b[1], .format = VK_FORMAT_R32G32B32A32_SFLOAT}),
                                  3, &pc, sizeof pc, gx, gy, 1, "corr_gram");
        if (st == LVK_OK)
            st = lvk_cmd_end(cmd);
        if (st == LVK_OK)
            st = lvk_cmd_submit(cmd);
        if (st == LVK_OK)
            st = lvk_buf_download(ctx, &b[2], 0, host, (VkDeviceSize)rows * np * 4);
        for (uint32_t r = 0; r < rows && st == LVK_OK; r++) {
            const float *row = host + (size_t)r * np;
            size_t i = r0 + r;
            if (corr)
                memcpy(corr + i * n, row, (size_t)n * sizeof *corr);
            else
                select_row(row, n, (int)i, k, heap, nbr + i * k, dist + i * k);
        }
    }
    lvk_cmd_destroy(cmd);
    lvk_arena_destroy(ctx, b, 3, &arena);
    free(host);
    free(heap);
    return st;
}

/* ---- layout ------------------------------------------------------------------------------- */

void lvk_rmap_scale(float *xy, int n)
{
    for (int a = 0; a < 2; a++) {
        float lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < n; i++) {
            lo = fminf(lo, xy[2 * i + a]);
            hi = fmaxf(hi, xy[2 * i + a]);
        }
        double span = (double)hi - lo;
        for (int i = 0; i < n; i++)
            xy[2 * i + a] = span > 0 ? (float)(2 * ((xy[2 * i + a] - (double)lo) / span) - 1) : 0.0f;
    }
}

void lvk_rmap_circle(float *xy, int n, int bins)
{
    bins = LVK_MAX(bins, 1);
    double *rmax = calloc((size_t)bins, sizeof *rmax);
    int *bin = calloc((size_t)LVK_MAX(n, 1), sizeof *bin);
    if (!rmax || !bin) {
        /* Without scratch memory, fall back to one bin: a uniform scale. */
        free(rmax);
        free(bin);
        double r = 0;
        for (int i = 0; i < n; i++)
            r = fmax(r, hypot(xy[2 * i], xy[2 * i + 1]));
        for (int i = 0; i < 2 * n && r > 0; i++)
            xy[i] = (float)(xy[i] / r);
        return;
    }
    for (int i = 0; i < n; i++) {
        double a = atan2(xy[2 * i + 1], xy[2 * i]); /* [-pi, pi] */
        int k = (int)floor((a + M_PI) / (2 * M_PI) * bins);
        bin[i] = LVK_MIN(LVK_MAX(k, 0), bins - 1);
        rmax[bin[i]] = fmax(rmax[bin[i]], hypot(xy[2 * i], xy[2 * i + 1]));
    }
    for (int i = 0; i < n; i++) {
        double r = rmax[bin[i]];
        if (r > 0) {
            xy[2 * i] = (float)(xy[2 * i] / r);
            xy[2 * i + 1] = (float)(xy[2 * i + 1] / r);
        }
    }
    free(rmax);
    free(bin);
}

/* ---- fit ------------------------------------------------------------------------------------ */

void lvk_rmap_fit_default(struct lvk_rmap_fit_opts *o)
{
    memset(o, 0, sizeof *o);
    lvk_tsne_default(&o->tsne);
    o->exact_max = 2500;
    o->circle_bins = 100;
}

lvk_status lvk_rmap_fit(lvk_ctx_t *ctx, const float *resp, int nimages,
                        const struct lvk_rmap_layer *layers, int nlayers,
                        const struct lvk_rmap_fit_opts *o, struct lvk_rmap **out)
{
    *out = NULL;
    double t0 = now_s();
    int total = 0;
    for (int l = 0; l < nlayers; l++)
        total += layers[l].channels;
    struct lvk_rmap *r = lvk_calloc(1, sizeof *r);
    if (!r)
        return LVK_ERR_HOST_OOM;
    r->nimages = nimages;
    r->tsne = o->tsne;
    r->circle = o->circle;
    r->circle_bins = o->circle_bins;
    r->layers = lvk_calloc((size_t)LVK_MAX(nlayers, 1), sizeof *r->layers);
    r->neurons = lvk_calloc((size_t)LVK_MAX(total, 1), sizeof *r->neurons);
    r->dropped = lvk_calloc((size_t)LVK_MAX(total, 1), sizeof *r->dropped);
    float *x = NULL, *corr = NULL, *dist = NULL, *xy = NULL;
    int32_t *nbr = NULL;
    struct lvk_tsne_p p = {0};
    lvk_status st = r->layers && r->neurons && r->dropped ? LVK_OK : LVK_ERR_HOST_OOM;
    for (int l = 0; l < nlayers && st == LVK_OK; l++) {
        r->layers[l].channels = layers[l].channels;
        if (!(r->layers[l].name = dup_str(layers[l].name)))
            st = LVK_ERR_HOST_OOM;
        r->nlayers = l + 1;
    }
    if (st == LVK_OK && !(x = lvk_calloc((size_t)total * nimages, sizeof *x)))
        st = LVK_ERR_HOST_OOM;

    /* Scaling and dropping. Ranks are taken of the raw responses: the
     * min-max scaling is monotone, so Spearman correlation is the same, and
     * no two distinct responses can round to one scaled value. */
    for (int l = 0, nr = 0; l < nlayers && st == LVK_OK; l++)
        for (int c = 0; c < layers[l].channels && st == LVK_OK; c++, nr++) {
            const float *row = resp + (size_t)nr * nimages;
            float lo = INFINITY, hi = -INFINITY;
            for (int t = 0; t < nimages; t++) {
                if (!isfinite(row[t])) {
                    st = lvk_fail(LVK_ERR_INVALID_ARG, "layer '%s' channel %d: response %g to "
                                  "image %d is not finite", layers[l].name, c, row[t], t);
                    break;
                }
                lo = fminf(lo, row[t]);
                hi = fmaxf(hi, row[t]);
            }
            struct lvk_rmap_neuron nu = {.layer = l, .channel = c, .lo = lo, .hi = hi};
            if (st != LVK_OK)
                break;
            if (lo == hi) {
                r->dropped[r->ndropped++] = nu;
            } else {
                memcpy(x + (size_t)r->n * nimages, row, (size_t)nimages * sizeof *x);
                r->neurons[r->n++] = nu;
            }
        }
    int n = r->n;
    if (st == LVK_OK && n < 4)
        st = lvk_fail(LVK_ERR_INVALID_ARG, "only %d of %d neurons respond differently to the %d "
                      "images: nothing to map", n, total, nimages);
    if (st == LVK_OK && !(o->tsne.perplexity > 0 && o->tsne.perplexity < n - 1))
        st = lvk_fail(LVK_ERR_INVALID_ARG, "perplexity %g must be above 0 and below the number of "
                      "neurons less one (%d); lower --perplexity", o->tsne.perplexity, n - 1);
    double t1 = now_s();

    /* Correlation, then t-SNE's joint probabilities from 1 - correlation. */
    r->exact = n <= o->exact_max;
    r->tsne.theta = r->exact ? 0 : (o->tsne.theta > 0 ? o->tsne.theta : 0.5);
    r->neighbours = r->exact ? n - 1 : LVK_MIN(n - 1, (int)(3 * o->tsne.perplexity + 1));
    int k = r->neighbours;
    if (st == LVK_OK) {
        if (r->exact) {
            corr = lvk_calloc((size_t)n * n, sizeof *corr);
            st = corr ? lvk_rmap_spearman(ctx, x, n, nimages, corr, 0, NULL, NULL) : LVK_ERR_HOST_OOM;
        } else {
            nbr = lvk_calloc((size_t)n * k, sizeof *nbr);
            dist = lvk_calloc((size_t)n * k, sizeof *dist);
            st = nbr && dist ? lvk_rmap_spearman(ctx, x, n, nimages, NULL, k, nbr, dist)
                             : LVK_ERR_HOST_OOM;
        }
    }
    free(x);
    x = NULL;
    double t2 = now_s();
    if (st == LVK_OK) {
        if (r->exact) {
            for (size_t e = 0; e < (size_t)n * n; e++)
                corr[e] = fmaxf(0.0f, 1.0f - corr[e]);
            st = lvk_tsne_p_dense(corr, n, o->tsne.perplexity, o->tsne.threads, &p);
        } else {
            st = lvk_tsne_p_knn(nbr, dist, n, k, o->tsne.perplexity, o->tsne.threads, &p);
        }
    }
    free(corr);
    free(nbr);
    free(dist);
    if (st == LVK_OK && !(xy = lvk_calloc(2 * (size_t)n, sizeof *xy)))
        st = LVK_ERR_HOST_OOM;
    if (r->tsne.learning_rate <= 0)
        r->tsne.learning_rate = fmax(n / r->tsne.early_exaggeration / 4, 50);
    if (st == LVK_OK)
        st = lvk_tsne_run(&p, &r->tsne, xy);
    lvk_tsne_p_free(&p);
    if (st == LVK_OK) {
        lvk_rmap_scale(xy, n);
        if (o->circle)
            lvk_rmap_circle(xy, n, o->circle_bins);
        for (int i = 0; i < n; i++) {
            r->neurons[i].x = xy[2 * i];
            r->neurons[i].y = xy[2 * i + 1];
        }
    }
    free(xy);
    double t3 = now_s();
    r->t_correlation = t2 - t1;
    r->t_tsne = t3 - t2;
    r->t_total = t3 - t0;
    if (st != LVK_OK) {
        lvk_rmap_destroy(r);
        return st;
    }
    *out = r;
    return LVK_OK;
}

/* ---- SHA-256 (FIPS 180-4) ----------------------------------------------------------------- */

struct sha256 {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t fill;
};

static const uint32_t k_sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t ror(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha_block(struct sha256 *s, const uint8_t *p)
{
    uint32_t w[64], v[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(v, s->h, sizeof v);
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = v[7] + (ror(v[4], 6) ^ ror(v[4], 11) ^ ror(v[4], 25)) +
                      ((v[4] & v[5]) ^ (~v[4] & v[6])) + k_sha_k[i] + w[i];
        uint32_t t2 = (ror(v[0], 2) ^ ror(v[0], 13) ^ ror(v[0], 22)) +
                      ((v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]));
        memmove(v + 1, v, 7 * sizeof *v);
        v[4] += t1;
        v[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++)
        s->h[i] += v[i];
}

static void sha_update(struct sha256 *s, const uint8_t *p, size_t n)
{
    s->len += n;
    while (n) {
        size_t take = LVK_MIN(n, 64 - s->fill);
        memcpy(s->buf + s->fill, p, take);
        s->fill += take;
        p += take;
        n -= take;
        if (s->fill == 64) {
            sha_block(s, s->buf);
            s->fill = 0;
        }
    }
}

static void sha_final(struct sha256 *s, char hex[65])
{
    uint64_t bits = s->len * 8;
    uint8_t pad[72] = {0x80};
    size_t padlen = (s->fill < 56 ? 56 : 120) - s->fill;
    for (int i = 0; i < 8; i++)
        pad[padlen + i] = (uint8_t)(bits >> (56 - 8 * i));
    sha_update(s, pad, padlen + 8);
    for (int i = 0; i < 8; i++)
        snprintf(hex + 8 * i, 9, "%08x", s->h[i]);
}

lvk_status lvk_sha256_file(const char *path, char hex[65])
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return lvk_fail(LVK_ERR_IO, "%s: cannot open", path);
    struct sha256 s = {.h = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f,
                             0x9b05688c, 0x1f83d9ab, 0x5be0cd19}};
    uint8_t buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        sha_update(&s, buf, got);
    bool bad = ferror(f);
    fclose(f);
    if (bad)
        return lvk_fail(LVK_ERR_IO, "%s: read failed", path);
    sha_final(&s, hex);
    return LVK_OK;
}

/* ---- JSON ------------------------------------------------------------------------------------ */

#define RMAP_FORMAT "lucidvk-response-map"
#define RMAP_VERSION 1

static void write_neurons(struct lvk_jw *w, const struct lvk_rmap_neuron *nu, int n, bool dropped)
{
    lvk_jw_begin_object(w);
    lvk_jw_key(w, "count");
    lvk_jw_int(w, n);
    const char *keys[] = {"layer", "channel", "x", "y", "lo", "hi"};
    for (int k = 0; k < 6; k++) {
        /* A dropped neuron has one value and no place. */
        if (dropped && (k == 2 || k == 3 || k == 5))
            continue;
        lvk_jw_key(w, dropped && k == 4 ? "value" : keys[k]);
        lvk_jw_begin_array(w);
        for (int i = 0; i < n; i++) {
            switch (k) {
            case 0: lvk_jw_int(w, nu[i].layer); break;
            case 1: lvk_jw_int(w, nu[i].channel); break;
            case 2: lvk_jw_number(w, nu[i].x); break;
            case 3: lvk_jw_number(w, nu[i].y); break;
            case 4: lvk_jw_number(w, nu[i].lo); break;
            default: lvk_jw_number(w, nu[i].hi); break;
            }
        }
        lvk_jw_end_array(w);
    }
    lvk_jw_end_object(w);
}

lvk_status lvk_rmap_write(const struct lvk_rmap *r, const char *path)
{
    struct lvk_jw w = {0};
    lvk_jw_begin_object(&w);
    lvk_jw_key(&w, "format");
    lvk_jw_string(&w, RMAP_FORMAT);
    lvk_jw_key(&w, "version");
    lvk_jw_int(&w, RMAP_VERSION);
    lvk_jw_key(&w, "model");
    lvk_jw_begin_object(&w);
    lvk_jw_key(&w, "path");
    lvk_jw_string(&w, r->model ? r->model : "");
    lvk_jw_key(&w, "sha256");
    lvk_jw_string(&w, r->sha256);
    lvk_jw_end_object(&w);
    lvk_jw_key(&w, "inputs");
    lvk_jw_begin_object(&w);
    lvk_jw_key(&w, "path");
    lvk_jw_string(&w, r->inputs ? r->inputs : "");
    lvk_jw_key(&w, "images");
    lvk_jw_int(&w, r->nimages);
    lvk_jw_end_object(&w);
    lvk_jw_key(&w, "layers");
    lvk_jw_begin_array(&w);
    for (int l = 0; l < r->nlayers; l++) {
        lvk_jw_begin_object(&w);
        lvk_jw_key(&w, "name");
        lvk_jw_string(&w, r->layers[l].name);
        lvk_jw_key(&w, "channels");
        lvk_jw_int(&w, r->layers[l].channels);
        lvk_jw_end_object(&w);
    }
    lvk_jw_end_array(&w);
    lvk_jw_key(&w, "neurons");
    write_neurons(&w, r->neurons, r->n, false);
    lvk_jw_key(&w, "dropped");
    write_neurons(&w, r->dropped, r->ndropped, true);
    lvk_jw_key(&w, "settings");
    lvk_jw_begin_object(&w);
    lvk_jw_key(&w, "tsne");
    lvk_jw_string(&w, r->exact ? "exact" : "barnes-hut");
    lvk_jw_key(&w, "perplexity");
    lvk_jw_number(&w, r->tsne.perplexity);
    lvk_jw_key(&w, "iterations");
    lvk_jw_int(&w, r->tsne.iterations);
    lvk_jw_key(&w, "learning_rate");
    lvk_jw_number(&w, r->tsne.learning_rate);
    lvk_jw_key(&w, "early_exaggeration");
    lvk_jw_number(&w, r->tsne.early_exaggeration);
    lvk_jw_key(&w, "exaggeration_iterations");
    lvk_jw_int(&w, r->tsne.exaggeration_iters);
    lvk_jw_key(&w, "theta");
    lvk_jw_number(&w, r->tsne.theta);
    lvk_jw_key(&w, "neighbours");
    lvk_jw_int(&w, r->neighbours);
    lvk_jw_key(&w, "seed");
    lvk_jw_int(&w, (int64_t)r->tsne.seed);
    lvk_jw_key(&w, "circle");
    lvk_jw_bool(&w, r->circle);
    lvk_jw_key(&w, "circle_bins");
    lvk_jw_int(&w, r->circle_bins);
    lvk_jw_end_object(&w);
    lvk_jw_key(&w, "timings");
    lvk_jw_begin_object(&w);
    lvk_jw_key(&w, "responses_s");
    lvk_jw_number(&w, r->t_responses);
    lvk_jw_key(&w, "correlation_s");
    lvk_jw_number(&w, r->t_correlation);
    lvk_jw_key(&w, "tsne_s");
    lvk_jw_number(&w, r->t_tsne);
    lvk_jw_key(&w, "total_s");
    lvk_jw_number(&w, r->t_total);
    lvk_jw_end_object(&w);
    lvk_jw_end_object(&w);
    return lvk_jw_write(&w, path);
}

/* Reads member `key` of obj as a number; fails naming the file and key. */
static lvk_status get_num(const char *path, const struct lvk_json *obj, const char *key, double *v)
{
    const struct lvk_json *j = lvk_json_get(obj, key);
    if (!j || (j->type != LVK_JSON_NUMBER && j->type != LVK_JSON_BOOL))
        return lvk_fail(LVK_ERR_FORMAT, "%s: '%s' missing or not a number", path, key);
    *v = j->number;
    return LVK_OK;
}

static lvk_status get_str(const char *path, const struct lvk_json *obj, const char *key, char **out)
{
    const struct lvk_json *j = lvk_json_get(obj, key);
    if (!j || j->type != LVK_JSON_STRING)
        return lvk_fail(LVK_ERR_FORMAT, "%s: '%s' missing or not a string", path, key);
    if (!(*out = dup_str(j->string)))
        return LVK_ERR_HOST_OOM;
    return LVK_OK;
}

/* Reads a neuron table (as write_neurons writes it) into *out. */
static lvk_status read_neurons(const char *path, const struct lvk_json *obj, const char *what,
                               const struct lvk_rmap *r, bool dropped, struct lvk_rmap_neuron **out,
                               int *n)
{
    double cnt = 0;
    const struct lvk_json *o = lvk_json_get(obj, what);
    if (!o || o->type != LVK_JSON_OBJECT)
        return lvk_fail(LVK_ERR_FORMAT, "%s: '%s' missing", path, what);
    LVK_CHECK(get_num(path, o, "count", &cnt));
    if (cnt < 0 || cnt > 1e8 || cnt != floor(cnt))
        return lvk_fail(LVK_ERR_FORMAT, "%s: %s.count %g is invalid", path, what, cnt);
    *n = (int)cnt;
    *out = lvk_calloc((size_t)LVK_MAX(*n, 1), sizeof **out);
    if (!*out)
        return LVK_ERR_HOST_OOM;
    const char *keys[] = {"layer", "channel", "x", "y", "lo", "hi"};
    for (int k = 0; k < 6; k++) {
        if (dropped && (k == 2 || k == 3 || k == 5))
            continue;
        const char *key = dropped && k == 4 ? "value" : keys[k];
        const struct lvk_json *a = lvk_json_get(o, key);
        if (!a || a->type != LVK_JSON_ARRAY || a->count != (size_t)*n)
            return lvk_fail(LVK_ERR_FORMAT, "%s: %s.%s is not an array of %d numbers", path, what,
                            key, *n);
        int i = 0;
        for (const struct lvk_json *e = a->child; e; e = e->next, i++) {
            if (e->type != LVK_JSON_NUMBER)
                return lvk_fail(LVK_ERR_FORMAT, "%s: %s.%s[%d] is not a number", path, what, key, i);
            struct lvk_rmap_neuron *nu = &(*out)[i];
            double v = e->number;
            switch (k) {
            case 0:
                if (v < 0 || v >= r->nlayers || v != floor(v))
                    return lvk_fail(LVK_ERR_FORMAT, "%s: %s.layer[%d] = %g is not a layer index",
                                    path, what, i, v);
                nu->layer = (int)v;
                break;
            case 1:
                if (v < 0 || v >= r->layers[nu->layer].channels || v != floor(v))
                    return lvk_fail(LVK_ERR_FORMAT, "%s: %s.channel[%d] = %g is not a channel of "
                                    "'%s'", path, what, i, v, r->layers[nu->layer].name);
                nu->channel = (int)v;
                break;
            case 2: nu->x = (float)v; break;
            case 3: nu->y = (float)v; break;
            case 4: nu->lo = (float)v; if (dropped) nu->hi = nu->lo; break;
            default: nu->hi = (float)v; break;
            }
        }
    }
    return LVK_OK;
}

static lvk_status read_map(const char *path, const struct lvk_json *j, struct lvk_rmap *r)
{
    const struct lvk_json *f = lvk_json_get(j, "format");
    double version = 0;
    if (!f || f->type != LVK_JSON_STRING || strcmp(f->string, RMAP_FORMAT))
        return lvk_fail(LVK_ERR_FORMAT, "%s: not a response map (no \"format\": \"" RMAP_FORMAT "\")",
                        path);
    LVK_CHECK(get_num(path, j, "version", &version));
    if (version != RMAP_VERSION)
        return lvk_fail(LVK_ERR_UNSUPPORTED, "%s: response map version %g (this build reads %d)",
                        path, version, RMAP_VERSION);
    const struct lvk_json *model = lvk_json_get(j, "model"), *inputs = lvk_json_get(j, "inputs");
    if (!model || !inputs)
        return lvk_fail(LVK_ERR_FORMAT, "%s: 'model' or 'inputs' missing", path);
    char *hash = NULL;
    LVK_CHECK(get_str(path, model, "path", &r->model));
    LVK_CHECK(get_str(path, model, "sha256", &hash));
    snprintf(r->sha256, sizeof r->sha256, "%s", hash);
    free(hash);
    LVK_CHECK(get_str(path, inputs, "path", &r->inputs));
    double v = 0;
    LVK_CHECK(get_num(path, inputs, "images", &v));
    r->nimages = (int)v;
    const struct lvk_json *layers = lvk_json_get(j, "layers");
    if (!layers || layers->type != LVK_JSON_ARRAY || !layers->count)
        return lvk_fail(LVK_ERR_FORMAT, "%s: 'layers' missing or empty", path);
    r->layers = lvk_calloc(layers->count, sizeof *r->layers);
    if (!r->layers)
        return LVK_ERR_HOST_OOM;
    for (const struct lvk_json *l = layers->child; l; l = l->next) {
        struct lvk_rmap_layer *dst = &r->layers[r->nlayers++];
        LVK_CHECK(get_str(path, l, "name", &dst->name));
        LVK_CHECK(get_num(path, l, "channels", &v));
        if (v < 1 || v != floor(v))
            return lvk_fail(LVK_ERR_FORMAT, "%s: layer '%s' has %g channels", path, dst->name, v);
        dst->channels = (int)v;
    }
    LVK_CHECK(read_neurons(path, j, "neurons", r, false, &r->neurons, &r->n));
    LVK_CHECK(read_neurons(path, j, "dropped", r, true, &r->dropped, &r->ndropped));
    const struct lvk_json *s = lvk_json_get(j, "settings"), *t = lvk_json_get(j, "timings");
    if (!s || !t)
        return lvk_fail(LVK_ERR_FORMAT, "%s: 'settings' or 'timings' missing", path);
    const struct lvk_json *method = lvk_json_get(s, "tsne");
    if (!method || method->type != LVK_JSON_STRING)
        return lvk_fail(LVK_ERR_FORMAT, "%s: settings.tsne missing", path);
    r->exact = !strcmp(method->string, "exact");
    struct { const char *key; double *d; int *i; uint64_t *u; bool *b; } fields[] = {
        {"perplexity", &r->tsne.perplexity}, {"learning_rate", &r->tsne.learning_rate},
        {"early_exaggeration", &r->tsne.early_exaggeration}, {"theta", &r->tsne.theta},
        {"iterations", NULL, &r->tsne.iterations}, {"exaggeration_iterations", NULL, &r->tsne.exaggeration_iters},
        {"neighbours", NULL, &r->neighbours}, {"circle_bins", NULL, &r->circle_bins},
        {"seed", NULL, NULL, &r->tsne.seed}, {"circle", NULL, NULL, NULL, &r->circle},
    };
    for (size_t a = 0; a < LVK_ARRAY_LEN(fields); a++) {
        LVK_CHECK(get_num(path, s, fields[a].key, &v));
        if (fields[a].d) *fields[a].d = v;
        if (fields[a].i) *fields[a].i = (int)v;
        if (fields[a].u) *fields[a].u = (uint64_t)v;
        if (fields[a].b) *fields[a].b = v != 0;
    }
    LVK_CHECK(get_num(path, t, "responses_s", &r->t_responses));
    LVK_CHECK(get_num(path, t, "correlation_s", &r->t_correlation));
    LVK_CHECK(get_num(path, t, "tsne_s", &r->t_tsne));
    LVK_CHECK(get_num(path, t, "total_s", &r->t_total));
    return LVK_OK;
}

lvk_status lvk_rmap_read(const char *path, struct lvk_rmap **out)
{
    *out = NULL;
    struct lvk_json *j;
    LVK_CHECK(lvk_json_read(path, &j));
    struct lvk_rmap *r = lvk_calloc(1, sizeof *r);
    lvk_status st = r ? read_map(path, j, r) : LVK_ERR_HOST_OOM;
    lvk_json_free(j);
    if (st != LVK_OK) {
        lvk_rmap_destroy(r);
        return st;
    }
    *out = r;
    return LVK_OK;
}
