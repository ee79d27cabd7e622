/* lucidvk render: feature visualization of neurons, channels, layers,
 * directions and classes. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "analysis/features.h"
#include "io/lvk_io.h"
#include "lucidvk/render.h"
#include "io/labelled_grid.h"
#include "lvk_util.h"
#include "nn/graph.h"
#include "nn/onnx.h"
#include "optvis/grid.h"
#include "optvis/objective.h"

static void help(void)
{
    printf(
        "usage: lucidvk render MODEL.onnx (-l LAYER -c CHANNELS | --objective EXPR) [options]\n\n"
        "Optimises images from noise so that the objective fires, as Lucid's render_vis does.\n\n"
        "What to visualize:\n"
        "  -l, --layer NAME       tensor to visualize ('lucidvk info MODEL' lists them)\n"
        "  -c, --channels LIST    channels, e.g. 7, 0-15 or 3,5,9: one image each, one batch\n"
        "      --neuron           the centre neuron of each channel instead of its mean\n"
        "      --objective EXPR   any objective, e.g. \"channel(L,52) - 0.05*tv\"; terms:\n"
        "                         channel neuron layer direction class group diversity\n"
        "                         tv l1 l2 blur; + - * / ( ); @i or batch(i, ...) binds a\n"
        "                         term to image i\n"
        "      --class K          shorthand for --objective \"class(K)\"\n"
        "      --negative         minimise instead (what the unit responds against); a ReLU\n"
        "                         output cannot go below 0: render its input (a warning names it)\n"
        "      --both             positive and negative of each unit in one batch, written\n"
        "                         as a labelled panel (negative left, positive right)\n"
        "      --diversity K      K images of one unit pushed apart: adds\n"
        "                         W*diversity(L), which penalises similar Gram matrices\n"
        "      --diversity-weight W   (default %g, as in 'lucidvk atlas'; the term does not\n"
        "                         grow with the unit's activation, so W follows the model's\n"
        "                         activation scale: Lucid's 1e2 suits InceptionV1; on the\n"
        "                         demo model 1 or more leaves some images without the unit\n"
        "                         at all, 0.3 spreads them and keeps the unit on; raise it if\n"
        "                         images look alike)\n"
        "      --diversity-layer L    layer whose Gram matrices are compared (default -l)\n"
        "Optimisation:\n"
        "      --steps N          optimisation steps (default 512)\n"
        "      --lr X             Adam learning rate (default 0.05)\n"
        "      --seed N           random seed (default 0); same seed, device and settings\n"
        "                         give the same bytes\n"
        "      --size PX          image size (default 128, or the model's input if smaller)\n"
        "      --batch N          images (default: one per channel, or from the objective)\n"
        "      --param fft|pixel  parameterization (default fft: Lucid's spectral image)\n"
        "      --decay X          spectral decay power (default 1)\n"
        "      --no-decorrelate   plain RGB instead of decorrelated colour\n"
        "      --transforms none|standard   random jitter, scale and rotation each step\n"
        "                         (default standard; pixel amounts scale with the image\n"
        "                         below 128 px)\n"
        "      --no-redirect      no ReLU gradient redirection: by default, for the first\n"
        "                         16 steps ReLUs pass gradients that would switch a dead\n"
        "                         unit on, as Lucid does, so dead units still learn\n"
        "Output:\n"
        "  -o, --out FILE.png     the image, or a contact sheet of the batch (default render.png)\n"
        "      --zoom N           enlarge the image or sheet N times, pixels as blocks\n"
        "                         (default 1; for small models, e.g. 28 px)\n"
        "      --out-dir DIR      also each image as DIR/<i>.png (never enlarged)\n"
        "      --save-every N     also FILE_stepN.png every N steps\n"
        "      --json FILE        settings, seed, device, objective curve and timings\n"
        "      --profile          time the last step on the device, dispatch by dispatch,\n"
        "                         and print where it goes: the costliest layers (ONNX\n"
        "                         node and kernel, forward and backward); also in --json\n"
        "      --panel            also FILE_panel.png beside -o FILE.png: one row per image\n"
        "                         with the initial image, the optimized image, and the\n"
        "                         target layer's map for each (the NeuroVis AM matrix),\n"
        "                         computed on the images as they are. The map is the mean\n"
        "                         over the unit's channels (channel, neuron, class(k, L):\n"
        "                         that channel; group: its channels; layer, direction:\n"
        "                         all) of the first term of the objective that reads a\n"
        "                         layer and applies to that image; both maps of a row\n"
        "                         share one range, black lowest, white highest. Cells are\n"
        "                         enlarged to at least 64 px.\n"
        "      --panel-layer L    the panel shows the mean over all channels of L instead\n"
        "                         (needed for class(k), whose logits are no feature map)\n"
        "      --device N|NAME    Vulkan device\n"
        CLI_PREPROC_HELP,
        (double)LVK_DIVERSITY_WEIGHT_DEFAULT);
}

/* How the batch is written: a contact sheet, or with --both a panel of
 * rows (one per unit, labelled) and two columns, negative then positive,
 * with small images shown enlarged to at least 64 px so labels fit. */
struct snap {
    const char *out;
    const char *const *rows; /* --both: row labels, else NULL */
    int nrows;
    int zoom;                /* --zoom: the image or sheet enlarged (not the --both panel) */
};

static lvk_status write_sheet(const struct snap *s, const char *path, const float *images, int b, int c,
                              int h, int w)
{
    struct lvk_image sheet = {0};
    lvk_status st;
    if (s->rows) {
        static const char *const cols[2] = {"negative", "positive"};
        struct lvk_labelled_grid g = {.rows = s->nrows, .cols = 2, .c = c, .h = h, .w = w,
                                      .cells = images, .row_labels = s->rows, .col_labels = cols,
                                      .gutter = 2, .zoom = LVK_MAX(1, (64 + w - 1) / w), .bg = 1.0f};
        st = lvk_labelled_grid_render(&g, &sheet);
    } else if (b == 1) {
        struct lvk_image one = {.w = w, .h = h, .c = c, .data = (float *)images};
        if (s->zoom <= 1)
            return lvk_png_write(path, &one);
        st = lvk_image_zoom(&one, s->zoom, &sheet);
    } else {
        /* Gutters grow with the images, so the zoomed sheet is the sheet zoomed. */
        st = lvk_image_sheet(images, b, c, h, w, 0, 2, 1.0f, &sheet);
        if (st == LVK_OK)
            st = lvk_image_zoom_in_place(&sheet, s->zoom);
    }
    if (st == LVK_OK)
        st = lvk_png_write(path, &sheet);
    lvk_image_free(&sheet);
    return st;
}

/* out with `suffix` before its ".png": render.png -> render_step8.png. */
static void sibling_path(const char *out, const char *suffix, char *buf, size_t len)
{
    size_t n = strlen(out);
    if (n > 4 && !strcmp(out + n - 4, ".png"))
        n -= 4;
    snprintf(buf, len, "%.*s%s.png", (int)n, out, suffix);
}

static void on_snapshot(void *user, int step, const float *images, int b, int c, int h, int w)
{
    const struct snap *s = user;
    char path[1100], suffix[32];
    snprintf(suffix, sizeof suffix, "_step%d", step);
    sibling_path(s->out, suffix, path, sizeof path);
    if (write_sheet(s, path, images, b, c, h, w) != LVK_OK)
        fprintf(stderr, "lucidvk: %s\n", lvk_last_error());
}

struct user {
    struct cli_progress p;
    struct snap s;
};

static void cb_progress(void *u, int step, int steps, double v) { cli_progress_step(&((struct user *)u)->p, step, steps, v); }
static void cb_snapshot(void *u, int step, const float *im, int b, int c, int h, int w)
{
    on_snapshot(&((struct user *)u)->s, step, im, b, c, h, w);
}

/* What to visualize, as the options give it. */
struct unit_opts {
    const char *layer, *channels, *objective, *div_layer;
    int klass; /* --class K; -1: none */
    bool neuron, both;
    int diversity;
    float div_weight;
};

static lvk_status write_json(const char *path, const char *model, const char *objective,
                             const struct lvk_render_opts *o, const struct unit_opts *u,
                             const struct lvk_render_result *r, const lvk_ctx_t *ctx)
{
    struct lvk_jw w = {0};
    lvk_jw_begin_object(&w);
    lvk_jw_key(&w, "model"); lvk_jw_string(&w, model);
    lvk_jw_key(&w, "objective"); lvk_jw_string(&w, objective);
    lvk_jw_key(&w, "negative"); lvk_jw_bool(&w, o->negative);
    lvk_jw_key(&w, "both"); lvk_jw_bool(&w, u->both);
    lvk_jw_key(&w, "diversity"); lvk_jw_int(&w, u->diversity);
    if (u->diversity) {
        lvk_jw_key(&w, "diversity_weight"); lvk_jw_number(&w, u->div_weight);
    }
    lvk_jw_key(&w, "seed"); lvk_jw_int(&w, (int64_t)o->seed);
    lvk_jw_key(&w, "steps"); lvk_jw_int(&w, r->steps);
    lvk_jw_key(&w, "lr"); lvk_jw_number(&w, o->lr > 0 ? o->lr : 0.05);
    lvk_jw_key(&w, "param"); lvk_jw_string(&w, o->param == LVK_PARAM_FFT ? "fft" : "pixel");
    lvk_jw_key(&w, "decorrelate"); lvk_jw_bool(&w, !o->no_decorrelate);
    lvk_jw_key(&w, "transforms"); lvk_jw_string(&w, o->no_transforms ? "none" : "standard");
    lvk_jw_key(&w, "batch"); lvk_jw_int(&w, r->batch);
    lvk_jw_key(&w, "size"); lvk_jw_begin_array(&w); lvk_jw_int(&w, r->height); lvk_jw_int(&w, r->width); lvk_jw_end_array(&w);
    lvk_jw_key(&w, "network_size"); lvk_jw_begin_array(&w); lvk_jw_int(&w, r->net_height); lvk_jw_int(&w, r->net_width); lvk_jw_end_array(&w);
    lvk_jw_key(&w, "device"); lvk_jw_string(&w, lvk_ctx_device(ctx)->name);
    lvk_jw_key(&w, "driver"); lvk_jw_string(&w, lvk_ctx_device(ctx)->driver);
    lvk_jw_key(&w, "value_start"); lvk_jw_begin_array(&w);
    for (int b = 0; b < r->batch; b++) lvk_jw_number(&w, r->value_start[b]);
    lvk_jw_end_array(&w);
    lvk_jw_key(&w, "value_end"); lvk_jw_begin_array(&w);
    for (int b = 0; b < r->batch; b++) lvk_jw_number(&w, r->value_end[b]);
    lvk_jw_end_array(&w);
    lvk_jw_key(&w, "curve"); lvk_jw_begin_array(&w);
    for (int s = 0; s < r->steps; s++) {
        if (isnan(r->curve[s])) lvk_jw_null(&w);
        else lvk_jw_number(&w, r->curve[s]);
    }
    lvk_jw_end_array(&w);
    lvk_jw_key(&w, "setup_seconds"); lvk_jw_number(&w, r->setup_seconds);
    lvk_jw_key(&w, "seconds"); lvk_jw_number(&w, r->seconds);
    lvk_jw_key(&w, "steps_per_second"); lvk_jw_number(&w, r->steps / (r->seconds > 0 ? r->seconds : 1e-9));
    if (o->profile && r->nphases) {
        lvk_jw_key(&w, "profile_step_ms"); lvk_jw_number(&w, r->step_ms);
        lvk_jw_key(&w, "profile"); lvk_jw_begin_array(&w);
        for (int i = 0; i < r->nphases; i++) {
            const struct lvk_render_phase *ph = &r->phases[i];
            lvk_jw_begin_object(&w);
            lvk_jw_key(&w, "node"); lvk_jw_string(&w, ph->node);
            lvk_jw_key(&w, "kernel"); lvk_jw_string(&w, ph->label);
            lvk_jw_key(&w, "dispatches"); lvk_jw_int(&w, ph->dispatches);
            lvk_jw_key(&w, "ms"); lvk_jw_number(&w, ph->ms);
            lvk_jw_end_object(&w);
        }
        lvk_jw_end_array(&w);
    }
    lvk_jw_end_object(&w);
    return lvk_jw_write(&w, path);
}

/* --profile: the last step's device time, the costliest (node, kernel)
 * pairs first (LVK_RENDER_PROFILE_NODES). */
static void print_profile(const struct lvk_render_result *r)
{
    enum { SHOWN = 15 };
    if (r->nphases == 0) {
        printf("  --profile: the device reports no timestamps\n");
        return;
    }
    printf("  device time of the last step: %.2f ms%s\n         ms  share  kernel              "
           "  node (dispatches)\n", r->step_ms,
           r->nphases > SHOWN ? "; the costliest of its (node, kernel) pairs:" : "");
    for (int i = 0; i < r->nphases && i < SHOWN; i++) {
        const struct lvk_render_phase *ph = &r->phases[i];
        printf("  %9.3f %5.1f%%  %-20s  %s", ph->ms, r->step_ms > 0 ? 100 * ph->ms / r->step_ms : 0.0,
               ph->label, ph->node[0] ? ph->node : "(image, objective, optimizer)");
        if (ph->dispatches > 1)
            printf(" (%d)", ph->dispatches);
        printf("\n");
    }
}

/* Objective text for what the options ask, per mode:
 *   plain:      unit i on image i ("channel(L, c)@i + ...")
 *   --both:     image 2i minimises unit i, image 2i+1 maximises it
 *   --diversity K: every image maximises the one unit, plus
 *               W * diversity(DL) over the batch (already negated, see
 *               src/optvis/objective.h: Lucid's "obj - 1e2*diversity").
 *               The cosines diversity() sums do not scale with the
 *               activations but the unit does, so W follows the model's
 *               activation scale: Lucid's 1e2 suits InceptionV1, 0.3 the
 *               demo model (tests/test_diversity.c).
 * *batch is set when the mode fixes it. Returns NULL after printing a
 * usage error (*status = 2) or on out-of-memory (*status = 1). */
static char *build_objective(const struct unit_opts *u, int *batch, char ***row_labels, int *nrows,
                             int *status)
{
    struct { char *s; size_t len, cap; } t = {0};
    int list[1024], n = 1;
    *status = 2;
    if (u->layer) {
        n = lvk_channel_list_parse(u->channels, list, 1024);
        if (n < 1) {
            cli_usage_error("render", "bad channel list '%s' (e.g. 7, 0-15, 3,5,9)", u->channels);
            return NULL;
        }
        if (strchr(u->layer, '\'')) {
            cli_usage_error("render", "a layer name with ' cannot be written in an objective");
            return NULL;
        }
    }
    if (u->diversity && n != 1) {
        cli_usage_error("render", "--diversity renders one unit: give one channel");
        return NULL;
    }
    if (u->both && u->objective && strchr(u->objective, '@')) {
        cli_usage_error("render", "--both binds the objective to images itself: drop @i from it");
        return NULL;
    }
    size_t cap = (size_t)n * (2 * (u->layer ? strlen(u->layer) : 0) + 96) +
                 (u->objective ? 2 * strlen(u->objective) : 0) + (u->div_layer ? strlen(u->div_layer) : 0) + 256;
    /* 64 holds the rest of a term, "class(K)" included. */
    size_t ulen = (u->layer ? strlen(u->layer) : 0) + (u->objective ? strlen(u->objective) : 0) + 64;
    t.s = malloc(cap);
    char *unit = malloc(ulen), *label = malloc(ulen);
    if (u->both)
        *row_labels = calloc((size_t)n, sizeof **row_labels);
    if (!t.s || !unit || !label || (u->both && !*row_labels)) {
        free(t.s);
        free(unit);
        free(label);
        *status = 1;
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        /* This unit's term, unbound. */
        if (u->layer)
            snprintf(unit, ulen, "%s('%s', %d)", u->neuron ? "neuron" : "channel", u->layer, list[i]);
        else if (u->klass >= 0)
            snprintf(unit, ulen, "class(%d)", u->klass);
        else
            snprintf(unit, ulen, "(%s)", u->objective);
        if (u->both) {
            t.len += (size_t)snprintf(t.s + t.len, cap - t.len, "%s-%s@%d + %s@%d", i ? " + " : "", unit,
                                      2 * i, unit, 2 * i + 1);
            if (u->layer)
                snprintf(label, ulen, "%s:%d", u->layer, list[i]);
            else
                snprintf(label, ulen, "%s", u->klass >= 0 ? unit : u->objective);
            (*row_labels)[i] = strdup(label);
            if (!(*row_labels)[i]) {
                *status = 1;
                free(t.s);
                free(unit);
                free(label);
                return NULL;
            }
            *nrows = i + 1;
        } else if (u->diversity || n == 1) {
            t.len += (size_t)snprintf(t.s + t.len, cap - t.len, "%s", unit);
        } else {
            t.len += (size_t)snprintf(t.s + t.len, cap - t.len, "%s%s@%d", i ? " + " : "", unit, i);
        }
    }
    if (u->diversity) {
        const char *dl = u->div_layer ? u->div_layer : u->layer;
        char q = strchr(dl, '\'') ? '"' : '\'';
        t.len += (size_t)snprintf(t.s + t.len, cap - t.len, " + %g*diversity(%c%s%c)", u->div_weight, q, dl, q);
        *batch = u->diversity;
    } else if (u->both) {
        *batch = 2 * n;
    } else if (u->layer && !*batch) {
        *batch = n;
    }
    free(unit);
    free(label);
    *status = 0;
    return t.s;
}

/* ---- --panel ----------------------------------------------------------------------- */

/* What one panel row shows: the mean map over `channels` (NULL: all) of
 * `layer`, and its label. Strings point into the parsed objective or the
 * options. */
struct panel_row {
    const char *layer;
    const int *channels;
    int nchannels;
    char label[160];
};

/* The first term of `obj` that reads a model tensor and applies to image b:
 * the unit that image was optimised for. Diversity compares images rather
 * than driving a unit, so it is passed over. */
static const struct lvk_term *unit_term(const struct lvk_objective *obj, int b)
{
    for (int i = 0; i < obj->nterms; i++) {
        const struct lvk_term *t = &obj->terms[i];
        if (!lvk_term_on_image(t->kind) && t->kind != LVK_TERM_DIVERSITY && (t->batch < 0 || t->batch == b))
            return t;
    }
    return NULL;
}

/* Fills rows[0..batch) from the objective text, or from panel_layer when
 * given. Returns 0, or prints a usage error and returns 2. */
static int panel_rows(const struct lvk_objective *obj, const char *panel_layer, int batch, bool negative,
                      struct panel_row *rows)
{
    for (int b = 0; b < batch; b++) {
        const struct lvk_term *t = unit_term(obj, b);
        struct panel_row *r = &rows[b];
        *r = (struct panel_row){.layer = panel_layer};
        if (!t) {
            if (!panel_layer)
                return cli_usage_error("render", "--panel: no term of the objective reads a layer for "
                                       "image %d; name one with --panel-layer L", b);
            snprintf(r->label, sizeof r->label, "image %d", b);
            continue;
        }
        if (!t->tensor && !panel_layer)
            return cli_usage_error("render", "--panel: %s(%d) reads the model's output, which has no "
                                   "feature map; name a layer with --panel-layer L",
                                   lvk_term_name(t->kind), t->channel);
        const char *sign = (t->weight < 0) != negative ? "-" : "";
        const char *name = t->tensor ? t->tensor : "class";
        int n = 0;
        switch (t->kind) {
        case LVK_TERM_CHANNEL: case LVK_TERM_NEURON: case LVK_TERM_CLASS:
            n = snprintf(r->label, sizeof r->label, "%s%s:%d", sign, name, t->channel);
            if (!panel_layer) {
                r->channels = &t->channel;
                r->nchannels = 1;
            }
            break;
        case LVK_TERM_GROUP:
            n = snprintf(r->label, sizeof r->label, "%s%s:", sign, name);
            for (int k = 0; k < t->nchannels && n < (int)sizeof r->label; k++)
                n += snprintf(r->label + n, sizeof r->label - (size_t)n, "%s%d", k ? "," : "", t->channels[k]);
            if (!panel_layer) {
                r->channels = t->channels;
                r->nchannels = t->nchannels;
            }
            break;
        default:
            snprintf(r->label, sizeof r->label, "%s%s", sign, name);
            break;
        }
        if (!panel_layer)
            r->layer = t->tensor;
    }
    return 0;
}

/* The panel of a finished render: for every image, the cells of
 * lvk_am_panel_cells on a model of its own (batch 1, the size the network
 * ran at, so the maps are those the optimisation saw, less the random
 * transforms), under one set of column labels. */
static lvk_status render_panel(lvk_ctx_t *ctx, const char *path, const struct lvk_preproc *pre,
                               const struct lvk_render_result *r, const struct panel_row *rows,
                               struct lvk_image *out)
{
    const int B = r->batch, C = r->channels, H = r->height, W = r->width;
    const size_t one = (size_t)C * H * W, cell = 3 * (size_t)H * W;
    const char **layers = malloc((size_t)B * sizeof *layers);
    float *cells = malloc((size_t)B * 4 * cell * sizeof *cells);
    if (!layers || !cells) {
        free(layers);
        free(cells);
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    }
    int nlayers = 0;
    for (int b = 0; b < B; b++) {
        int k = 0;
        while (k < nlayers && strcmp(layers[k], rows[b].layer))
            k++;
        if (k == nlayers)
            layers[nlayers++] = rows[b].layer;
    }
    struct lvk_model_opts mo = {.batch = 1, .height = r->net_height, .width = r->net_width,
                                .outputs = layers, .noutputs = nlayers};
    lvk_model_t *m = NULL;
    lvk_status st = lvk_model_load(ctx, path, &mo, &m);
    for (int b = 0; b < B && st == LVK_OK; b++) {
        struct lvk_am_panel p = {.m = m, .pre = pre, .layer = rows[b].layer, .channels = rows[b].channels,
                                 .nchannels = rows[b].nchannels, .cmap = LVK_CMAP_GRAY};
        st = lvk_am_panel_cells(&p, r->initial + b * one, r->images + b * one, C, H, W,
                                cells + b * 4 * cell);
    }
    if (st == LVK_OK) {
        static const char *const cols[4] = {"initial", "optimized", "map(initial)", "map(optimized)"};
        const char **labels = malloc((size_t)B * sizeof *labels);
        if (!labels) {
            st = lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
        } else {
            for (int b = 0; b < B; b++)
                labels[b] = rows[b].label;
            struct lvk_labelled_grid g = {.rows = B, .cols = 4, .c = 3, .h = H, .w = W, .cells = cells,
                                          .row_labels = labels, .col_labels = cols, .gutter = 4,
                                          .zoom = LVK_MAX(1, (64 + W - 1) / W), .bg = 1.0f};
            st = lvk_labelled_grid_render(&g, out);
            free(labels);
        }
    }
    lvk_model_destroy(m);
    free(layers);
    free(cells);
    return st;
}

/* Whether the model has a tensor named `layer`, read from the file alone
 * (no device), so a misspelt --panel-layer fails before the render. */
static lvk_status check_layer(const char *path, const char *layer)
{
    struct lvk_model_opts mo = {0};
    lvk_model_t *m = NULL;
    lvk_status st = lvk_onnx_load_graph(NULL, path, &mo, NULL, 0, &m);
    if (st == LVK_OK && lvk_graph_find(m, layer) < 0)
        st = lvk_fail(LVK_ERR_NOT_FOUND, "--panel-layer: %s has no tensor '%s' (list them with "
                      "'lucidvk info %s')", path, layer, path);
    lvk_model_destroy(m);
    return st;
}

/* Whether the render minimises the model tensor term t reads: its sign,
 * flipped by --negative. Diversity compares images and drives no unit. */
static bool minimised(const struct lvk_term *t, bool negative)
{
    return t->tensor && t->kind != LVK_TERM_DIVERSITY && (t->weight < 0) != negative;
}

/* --negative and the negative half of --both minimise units: warns about
 * each layer so minimised that cannot go below 0 (cli_warn_negative_relu),
 * once per layer. */
static lvk_status warn_flat_negatives(lvk_ctx_t *ctx, const char *path, const char *text, bool negative,
                                      int size)
{
    struct lvk_objective *obj = NULL;
    lvk_model_t *m = NULL;
    lvk_status st = lvk_objective_parse(text, &obj);
    if (st == LVK_OK)
        st = cli_model_probe(ctx, path, size, &m);
    for (int i = 0; st == LVK_OK && i < obj->nterms; i++) {
        const struct lvk_term *t = &obj->terms[i];
        bool warn = minimised(t, negative);
        for (int k = 0; k < i && warn; k++)
            warn = !minimised(&obj->terms[k], negative) || strcmp(obj->terms[k].tensor, t->tensor);
        if (warn)
            cli_warn_negative_relu("render", m, t->tensor);
    }
    lvk_model_destroy(m);
    lvk_objective_destroy(obj);
    return st;
}

int cmd_render(int argc, char **argv)
{
    static const struct option opts[] = {
        {"layer", required_argument, 0, 'l'}, {"channels", required_argument, 0, 'c'},
        {"neuron", no_argument, 0, 'N'}, {"objective", required_argument, 0, 'x'},
        {"class", required_argument, 0, 'K'}, {"negative", no_argument, 0, 'g'},
        {"both", no_argument, 0, 'B'}, {"diversity", required_argument, 0, 'V'},
        {"diversity-weight", required_argument, 0, 'W'}, {"diversity-layer", required_argument, 0, 'Y'},
        {"steps", required_argument, 0, 's'}, {"lr", required_argument, 0, 'r'},
        {"seed", required_argument, 0, 'S'}, {"size", required_argument, 0, 'z'},
        {"batch", required_argument, 0, 'b'}, {"param", required_argument, 0, 'p'},
        {"decay", required_argument, 0, 'D'}, {"no-decorrelate", no_argument, 0, 'R'},
        {"transforms", required_argument, 0, 'T'}, {"no-redirect", no_argument, 0, 'n'},
        {"out", required_argument, 0, 'o'}, {"out-dir", required_argument, 0, 'O'},
        {"zoom", required_argument, 0, 'Z'},
        {"save-every", required_argument, 0, 'e'}, {"json", required_argument, 0, 'j'},
        {"profile", no_argument, 0, 'F'},
        {"panel", no_argument, 0, 'P'}, {"panel-layer", required_argument, 0, 'L'},
        {"device", required_argument, 0, 'd'}, {"help", no_argument, 0, 'h'},
        CLI_PREPROC_OPTIONS, {0, 0, 0, 0}};
    struct cli_preproc pre = {0};
    lvk_preproc_default(&pre.p);
    struct lvk_render_opts o = {.redirect_steps = -1};
    struct unit_opts u = {.klass = -1, .div_weight = LVK_DIVERSITY_WEIGHT_DEFAULT};
    bool div_weight_set = false;
    double x;
    const char *device = NULL, *out = "render.png", *out_dir = NULL, *json = NULL, *panel_layer = NULL;
    bool panel = false;
    int c, r, batch = 0, zoom = 1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "l:c:o:d:h", opts, NULL)) != -1) {
        if ((r = cli_preproc_parse(&pre, c, optarg)) != 0) {
            if (r < 0)
                return 2;
            continue;
        }
        switch (c) {
        case 'l': u.layer = optarg; break;
        case 'c': u.channels = optarg; break;
        case 'N': u.neuron = true; break;
        case 'x': u.objective = optarg; break;
        case 'K': if ((r = cli_int("render", "--class", optarg, 0, INT_MAX, &u.klass))) return r; break;
        case 'g': o.negative = 1; break;
        case 'B': u.both = true; break;
        case 'V': if ((r = cli_int("render", "--diversity", optarg, 2, INT_MAX, &u.diversity))) return r; break;
        case 'W':
            if ((r = cli_float("render", "--diversity-weight", optarg, 0, INFINITY, false, &x)))
                return r;
            u.div_weight = (float)x;
            div_weight_set = true;
            break;
        case 'Y': u.div_layer = optarg; break;
        case 's': if ((r = cli_int("render", "--steps", optarg, 1, INT_MAX, &o.steps))) return r; break;
        case 'r':
            if ((r = cli_float("render", "--lr", optarg, 0, INFINITY, true, &x)))
                return r;
            o.lr = (float)x;
            break;
        case 'S': if ((r = cli_seed("render", "--seed", optarg, &o.seed))) return r; break;
        case 'z': if ((r = cli_int("render", "--size", optarg, 8, CLI_MAX_SIZE, &o.size))) return r; break;
        case 'Z': if ((r = cli_int("render", "--zoom", optarg, 1, CLI_MAX_ZOOM, &zoom))) return r; break;
        case 'b': if ((r = cli_int("render", "--batch", optarg, 1, INT_MAX, &batch))) return r; break;
        case 'p':
            if (!strcmp(optarg, "fft")) o.param = LVK_PARAM_FFT;
            else if (!strcmp(optarg, "pixel")) o.param = LVK_PARAM_PIXEL;
            else return cli_usage_error("render", "--param is fft or pixel, not '%s'", optarg);
            break;
        case 'D':
            if ((r = cli_float("render", "--decay", optarg, 0, INFINITY, true, &x)))
                return r;
            o.decay_power = (float)x;
            break;
        case 'R': o.no_decorrelate = 1; break;
        case 'T':
            if (!strcmp(optarg, "none")) o.no_transforms = 1;
            else if (strcmp(optarg, "standard")) return cli_usage_error("render", "--transforms is none or standard");
            break;
        case 'n': o.redirect_steps = 0; break;
        case 'o': out = optarg; break;
        case 'O': out_dir = optarg; break;
        case 'e': if ((r = cli_int("render", "--save-every", optarg, 1, INT_MAX, &o.snapshot_every))) return r; break;
        case 'j': json = optarg; break;
        case 'F': o.profile = LVK_RENDER_PROFILE_NODES; break;
        case 'P': panel = true; break;
        case 'L': panel_layer = optarg; break;
        case 'd': device = optarg; break;
        case 'h': help(); return 0;
        default: return 2;
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("render", "expected one MODEL.onnx");
    const char *path = argv[optind];
    int nset = (u.layer != NULL) + (u.objective != NULL) + (u.klass >= 0);
    if (nset != 1)
        return cli_usage_error("render", "give exactly one of -l LAYER, --objective EXPR, --class K");
    if (u.layer && !u.channels)
        return cli_usage_error("render", "-l needs -c CHANNELS (e.g. -c 0-7)");
    if (u.both && (o.negative || u.diversity))
        return cli_usage_error("render", "--both renders the negative itself; it does not combine with "
                                         "--negative or --diversity");
    if (u.diversity && !u.layer && !u.div_layer)
        return cli_usage_error("render", "--diversity with --objective or --class needs --diversity-layer L");
    if ((u.div_layer || div_weight_set) && !u.diversity)
        return cli_usage_error("render", "--diversity-weight and --diversity-layer need --diversity K");
    if (batch && (u.both || u.diversity))
        return cli_usage_error("render", "--batch is set by --both and --diversity");
    if (panel_layer && !panel)
        return cli_usage_error("render", "--panel-layer needs --panel");

    char **rows = NULL;
    int nrows = 0, status = 1;
    char *text = build_objective(&u, &batch, &rows, &nrows, &status);
    if (!text) {
        for (int i = 0; i < nrows; i++)
            free(rows[i]);
        free(rows);
        return status;
    }
    o.objective = text;
    o.batch = batch;

    /* The panel's rows are settled before rendering, so a panel that cannot
     * be drawn fails at once. The batch is the render's: as given, else one
     * past the highest image an objective term is bound to. */
    struct lvk_objective *obj = NULL;
    struct panel_row *prows = NULL;
    lvk_status st = LVK_OK;
    if (panel) {
        st = lvk_objective_parse(text, &obj);
        int nb = batch;
        for (int i = 0; st == LVK_OK && !batch && i < obj->nterms; i++)
            nb = LVK_MAX(nb, obj->terms[i].batch + 1);
        nb = LVK_MAX(nb, 1);
        if (st == LVK_OK && !(prows = calloc((size_t)nb, sizeof *prows)))
            st = lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
        if (st == LVK_OK && panel_rows(obj, panel_layer, nb, o.negative, prows)) {
            status = 2;
            goto done;
        }
        if (st == LVK_OK && panel_layer)
            st = check_layer(path, panel_layer);
    }

    if (st == LVK_OK)
        st = cli_preproc_resolve(&pre, path, &o.pre);
    lvk_ctx_t *ctx = NULL;
    struct lvk_render_result res = {0};
    struct lvk_image panel_img = {0};
    struct user us = {.s = {.out = out, .rows = (const char *const *)rows, .nrows = nrows, .zoom = zoom}};
    o.progress = cb_progress;
    o.progress_every = cli_progress_every(o.steps);
    o.snapshot = cb_snapshot;
    o.user = &us;
    status = 1;
    if (st == LVK_OK)
        st = cli_open(device, &ctx);
    if (st == LVK_OK && (o.negative || u.both))
        st = warn_flat_negatives(ctx, path, text, o.negative, o.size);
    if (st == LVK_OK) {
        cli_progress_begin(&us.p, NULL);
        if (us.p.tty)
            fprintf(stderr, "rendering %s on %s\n", text, lvk_ctx_device(ctx)->name);
        st = lvk_render(ctx, path, &o, &res);
    }
    /* Drawn before anything is written: a panel that fails leaves no files. */
    if (st == LVK_OK && panel)
        st = render_panel(ctx, path, &o.pre, &res, prows, &panel_img);
    if (st == LVK_OK)
        st = write_sheet(&us.s, out, res.images, res.batch, res.channels, res.height, res.width);
    if (st == LVK_OK && out_dir) {
        mkdir(out_dir, 0755);
        size_t one = (size_t)res.channels * res.height * res.width;
        for (int b = 0; b < res.batch && st == LVK_OK; b++) {
            char p[2048];
            if (u.both)
                snprintf(p, sizeof p, "%s/%d_%s.png", out_dir, b / 2, b % 2 ? "positive" : "negative");
            else
                snprintf(p, sizeof p, "%s/%d.png", out_dir, b);
            struct lvk_image im = {.w = res.width, .h = res.height, .c = res.channels,
                                   .data = res.images + (size_t)b * one};
            st = lvk_png_write(p, &im);
        }
    }
    char panel_path[1100];
    if (st == LVK_OK && panel) {
        sibling_path(out, "_panel", panel_path, sizeof panel_path);
        st = lvk_png_write(panel_path, &panel_img);
    }
    if (st == LVK_OK && json)
        st = write_json(json, path, text, &o, &u, &res, ctx);
    if (st == LVK_OK) {
        double mean0 = 0, mean1 = 0;
        for (int b = 0; b < res.batch; b++) {
            mean0 += res.value_start[b] / res.batch;
            mean1 += res.value_end[b] / res.batch;
        }
        printf("%s: %d image%s %dx%d, %d steps in %.1f s (%.2f steps/s); objective %.4g -> %.4g\n",
               out, res.batch, res.batch == 1 ? "" : "s", res.width, res.height, res.steps, res.seconds,
               res.steps / (res.seconds > 0 ? res.seconds : 1e-9), mean0, mean1);
        if (panel)
            printf("  panel -> %s\n", panel_path);
        if (o.profile)
            print_profile(&res);
        status = 0;
    } else {
        cli_progress_end(&us.p);
        cli_error(st, NULL);
    }
    lvk_image_free(&panel_img);
    lvk_render_result_free(&res);
    lvk_ctx_destroy(ctx);
done:
    lvk_objective_destroy(obj);
    free(prows);
    for (int i = 0; i < nrows; i++)
        free(rows[i]);
    free(rows);
    free(text);
    return status;
}
