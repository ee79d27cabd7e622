/* lucidvk sweep: a layer sweep, one row of channel visualizations per
 * layer from random noise, all chosen channels of a layer in one batch:
 * the figure that shows edge and colour detectors early and richer
 * features later. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "io/labelled_grid.h"
#include "io/lvk_io.h"
#include "lucidvk/render.h"
#include "lvk_util.h"
#include "optvis/grid.h"

#define MAX_LAYERS 32
#define MAX_CHANNELS 256

static void help(void)
{
    printf(
        "usage: lucidvk sweep MODEL.onnx --layers A,B,C [options]\n\n"
        "Visualizes the same channels of several layers, one render (one batch) per\n"
        "layer, and lays them out one row per layer, labelled.\n\n"
        "      --layers A,B,...   tensors, early to late ('lucidvk info MODEL' lists them)\n"
        "      --channels LIST    channels of every layer, e.g. 0-7 (default) or 3,5,9\n"
        "      --group-size G     one image per G consecutive channels of the list, which\n"
        "                         maximises their summed means (group objective)\n"
        "      --steps N          optimisation steps (default 512)\n"
        "      --size PX          image size (default 128, or the model's input if smaller)\n"
        "      --lr X             Adam learning rate (default 0.05)\n"
        "      --seed N           random seed (default 0)\n"
        "      --zoom Z           show images Z times larger (default: at least 64 px)\n"
        "  -o, --out FILE.png     the labelled sheet (default sweep.png)\n"
        "      --out-dir DIR      also each image as DIR/<layer>/<channel>.png (characters of\n"
        "                         the layer name other than letters, digits, '.', '-', '_'\n"
        "                         become '_')\n"
        "      --json FILE        settings, objectives and activations per image, timings\n"
        "      --device N|NAME    Vulkan device\n"
        CLI_PREPROC_HELP);
}

/* The column label of image i: its channel, or its group's channels as
 * "a-b" when consecutive, else "a,b,c". */
static void group_label(const int *ch, int n, int group, int i, char *buf, size_t len)
{
    int g = group > 1 ? group : 1, lo = i * g, hi = LVK_MIN(lo + g, n);
    bool run = true;
    for (int k = lo + 1; k < hi; k++)
        run &= ch[k] == ch[k - 1] + 1;
    if (hi - lo == 1) {
        snprintf(buf, len, "%d", ch[lo]);
    } else if (run) {
        snprintf(buf, len, "%d-%d", ch[lo], ch[hi - 1]);
    } else {
        size_t k = 0;
        for (int j = lo; j < hi && k < len; j++)
            k += (size_t)snprintf(buf + k, len - k, "%s%d", j > lo ? "," : "", ch[j]);
    }
}

static lvk_status write_images(const char *dir, const char *layer, const float *images, int nb, int c,
                               int h, int w, char (*labels)[64])
{
    char sub[2048];
    int k = snprintf(sub, sizeof sub, "%s/", dir);
    for (const char *p = layer; *p && k < (int)sizeof sub - 1; p++)
        sub[k++] = (char)((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                                  *p == '.' || *p == '-' || *p == '_'
                              ? *p
                              : '_');
    sub[k] = 0;
    mkdir(dir, 0755);
    mkdir(sub, 0755);
    for (int i = 0; i < nb; i++) {
        char path[2200];
        snprintf(path, sizeof path, "%s/%s.png", sub, labels[i]);
        struct lvk_image im = {.w = w, .h = h, .c = c, .data = (float *)images + (size_t)i * c * h * w};
        LVK_CHECK(lvk_png_write(path, &im));
    }
    return LVK_OK;
}

/* Whether the model has every layer, each with channels up to the
 * highest of ch (the --channels list `spec`). */
static lvk_status check_layers(lvk_ctx_t *ctx, const char *path, int size, const char *const *layers, int nl,
                               const int *ch, int nch, const char *spec)
{
    int top = 0;
    for (int k = 0; k < nch; k++)
        top = LVK_MAX(top, ch[k]);
    lvk_model_t *m = NULL;
    lvk_status st = cli_model_probe(ctx, path, size, &m);
    for (int l = 0; st == LVK_OK && l < nl; l++) {
        struct lvk_tensor_info t;
        if ((st = lvk_model_tensor_find(m, layers[l], &t)) != LVK_OK)
            lvk_error_prefix("--layers: ");
        else if (t.ndim < 2 || t.ndim > 4)
            st = lvk_fail(LVK_ERR_INVALID_ARG, "--layers: '%s' has %d dimensions; a layer to visualize "
                          "is [N, C], [N, C, L] or [N, C, H, W]", layers[l], t.ndim);
        else if (top >= t.shape[1])
            st = lvk_fail(LVK_ERR_INVALID_ARG, "--channels %s: layer '%s' has %lld channels (0-%lld)", spec,
                          layers[l], (long long)t.shape[1], (long long)t.shape[1] - 1);
    }
    lvk_model_destroy(m);
    return st;
}

int cmd_sweep(int argc, char **argv)
{
    static const struct option opts[] = {
        {"layers", required_argument, 0, 'L'}, {"channels", required_argument, 0, 'c'},
        {"group-size", required_argument, 0, 'G'}, {"steps", required_argument, 0, 's'},
        {"size", required_argument, 0, 'z'}, {"lr", required_argument, 0, 'r'},
        {"seed", required_argument, 0, 'S'}, {"zoom", required_argument, 0, 'Z'},
        {"out", required_argument, 0, 'o'}, {"out-dir", required_argument, 0, 'O'},
        {"json", required_argument, 0, 'j'}, {"device", required_argument, 0, 'd'},
        {"help", no_argument, 0, 'h'}, CLI_PREPROC_OPTIONS, {0, 0, 0, 0}};
    struct cli_preproc pre = {0};
    lvk_preproc_default(&pre.p);
    struct lvk_render_opts o = {.redirect_steps = -1};
    const char *layers_arg = NULL, *channels_arg = "0-7", *device = NULL, *out = "sweep.png";
    const char *out_dir = NULL, *json = NULL;
    int group = 1, zoom = 0, c, r;
    double lr;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:o:d:h", opts, NULL)) != -1) {
        if ((r = cli_preproc_parse(&pre, c, optarg)) != 0) {
            if (r < 0)
                return 2;
            continue;
        }
        switch (c) {
        case 'L': layers_arg = optarg; break;
        case 'c': channels_arg = optarg; break;
        case 'G': if ((r = cli_int("sweep", "--group-size", optarg, 1, INT_MAX, &group))) return r; break;
        case 's': if ((r = cli_int("sweep", "--steps", optarg, 1, INT_MAX, &o.steps))) return r; break;
        case 'z': if ((r = cli_int("sweep", "--size", optarg, 8, CLI_MAX_SIZE, &o.size))) return r; break;
        case 'r':
            if ((r = cli_float("sweep", "--lr", optarg, 0, INFINITY, true, &lr)))
                return r;
            o.lr = (float)lr;
            break;
        case 'S': if ((r = cli_seed("sweep", "--seed", optarg, &o.seed))) return r; break;
        case 'Z': if ((r = cli_int("sweep", "--zoom", optarg, 1, CLI_MAX_ZOOM, &zoom))) return r; break;
        case 'o': out = optarg; break;
        case 'O': out_dir = optarg; break;
        case 'j': json = optarg; break;
        case 'd': device = optarg; break;
        case 'h': help(); return 0;
        default: return 2;
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("sweep", "expected one MODEL.onnx");
    if (!layers_arg)
        return cli_usage_error("sweep", "give the layers with --layers A,B,C");
    const char *path = argv[optind];
    int ch[MAX_CHANNELS];
    int nch = lvk_channel_list_parse(channels_arg, ch, MAX_CHANNELS);
    if (nch < 1)
        return cli_usage_error("sweep", "bad channel list '%s' (e.g. 0-7 or 3,5,9)", channels_arg);
    int nb = (nch + group - 1) / group;

    /* --layers splits at commas; empty names are refused. */
    char *layer_buf = strdup(layers_arg), *layers[MAX_LAYERS];
    int nl = 0;
    if (!layer_buf)
        return 1;
    for (char *save = NULL, *tok = strtok_r(layer_buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (nl == MAX_LAYERS) {
            free(layer_buf);
            return cli_usage_error("sweep", "at most %d layers", MAX_LAYERS);
        }
        layers[nl++] = tok;
    }
    if (nl == 0) {
        free(layer_buf);
        return cli_usage_error("sweep", "--layers lists no layer");
    }

    char(*col_labels)[64] = calloc((size_t)nb, sizeof *col_labels);
    char **texts = calloc((size_t)nl, sizeof *texts);
    int *batches = calloc((size_t)nl, sizeof *batches);
    const char **col_ptrs = calloc((size_t)nb, sizeof *col_ptrs);
    struct lvk_grid_neuron *units = calloc((size_t)nch, sizeof *units);
    struct lvk_render_result *res = calloc((size_t)nl, sizeof *res);
    double *act = calloc(2 * (size_t)nb * nch, sizeof *act); /* [2][batch][nch] */
    double *gain = calloc(4 * (size_t)nl * nb, sizeof *gain);  /* [layer][image]: obj0 obj1 act0 act1 */
    float *cells = NULL;
    lvk_ctx_t *ctx = NULL;
    int status = 1;
    lvk_status st = col_labels && texts && batches && col_ptrs && units && res && act && gain
                        ? LVK_OK
                        : lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    for (int i = 0; st == LVK_OK && i < nb; i++) {
        group_label(ch, nch, group, i, col_labels[i], sizeof col_labels[i]);
        col_ptrs[i] = col_labels[i];
    }
    if (st == LVK_OK)
        st = cli_preproc_resolve(&pre, path, &o.pre);
    if (st == LVK_OK)
        st = cli_open(device, &ctx);
    /* Every layer is checked before the first renders: a typo in the last
     * one would otherwise surface only after all the others. */
    if (st == LVK_OK)
        st = check_layers(ctx, path, o.size, (const char *const *)layers, nl, ch, nch, channels_arg);
    for (int l = 0; st == LVK_OK && l < nl; l++)
        if ((st = lvk_sweep_objective(layers[l], ch, nch, group, &texts[l], &batches[l])) != LVK_OK)
            lvk_error_prefix("layer %s: ", layers[l]);
    for (int l = 0; st == LVK_OK && l < nl; l++) {
        struct cli_progress pg;
        cli_progress_begin(&pg, layers[l]);
        o.objective = texts[l];
        o.batch = batches[l];
        o.progress = cli_progress_step;
        o.progress_every = cli_progress_every(o.steps);
        o.user = &pg;
        st = lvk_render(ctx, path, &o, &res[l]);
        cli_progress_end(&pg);
        if (st != LVK_OK) {
            lvk_error_prefix("layer %s: ", layers[l]);
            break;
        }
        const struct lvk_render_result *rl = &res[l];
        /* The image size depends on the model and --size, not on the layer. */
        LVK_ASSERT(rl->height == res[0].height && rl->width == res[0].width);
        /* Channel means on the noise and on the result, without transforms. */
        for (int k = 0; k < nch; k++)
            units[k] = (struct lvk_grid_neuron){.layer = layers[l], .channel = ch[k]};
        st = lvk_units_measure(ctx, path, &o.pre, rl->initial, nb, rl->channels, rl->height, rl->width,
                               rl->net_height, rl->net_width, units, nch, NULL, act);
        if (st == LVK_OK)
            st = lvk_units_measure(ctx, path, &o.pre, rl->images, nb, rl->channels, rl->height, rl->width,
                                   rl->net_height, rl->net_width, units, nch, NULL, act + (size_t)nb * nch);
        for (int i = 0; st == LVK_OK && i < nb; i++) {
            double *gi = gain + 4 * ((size_t)l * nb + i);
            gi[0] = rl->value_start[i];
            gi[1] = rl->value_end[i];
            for (int k = i * group; k < LVK_MIN((i + 1) * group, nch); k++) {
                gi[2] += act[(size_t)i * nch + k];
                gi[3] += act[(size_t)(nb + i) * nch + k];
            }
        }
        if (st == LVK_OK && out_dir)
            st = write_images(out_dir, layers[l], rl->images, nb, rl->channels, rl->height, rl->width,
                              col_labels);
        if (st == LVK_OK)
            printf("%s: %d image%s, %d steps in %.1f s\n", layers[l], nb, nb == 1 ? "" : "s", rl->steps,
                   rl->seconds);
        for (int i = 0; st == LVK_OK && i < nb; i++) {
            const double *gi = gain + 4 * ((size_t)l * nb + i);
            printf("  %-8s mean activation %.4g -> %.4g (objective during the run %.4g -> %.4g)\n",
                   col_labels[i], gi[2], gi[3], gi[0], gi[1]);
        }
    }

    /* The sheet: one row per layer. */
    if (st == LVK_OK) {
        const struct lvk_render_result *r0 = &res[0];
        size_t one = (size_t)nb * r0->channels * r0->height * r0->width;
        cells = malloc((size_t)nl * one * sizeof *cells);
        if (!cells)
            st = lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
        for (int l = 0; st == LVK_OK && l < nl; l++)
            memcpy(cells + (size_t)l * one, res[l].images, one * sizeof *cells);
        struct lvk_labelled_grid g = {.rows = nl, .cols = nb, .c = r0->channels, .h = r0->height,
                                      .w = r0->width, .cells = cells,
                                      .row_labels = (const char *const *)layers, .col_labels = col_ptrs,
                                      .gutter = 2, .zoom = zoom ? zoom : LVK_MAX(1, (64 + r0->width - 1) / r0->width),
                                      .bg = 1.0f};
        struct lvk_image sheet = {0};
        if (st == LVK_OK)
            st = lvk_labelled_grid_render(&g, &sheet);
        if (st == LVK_OK)
            st = lvk_png_write(out, &sheet);
        lvk_image_free(&sheet);
    }
    if (st == LVK_OK && json) {
        struct lvk_jw w = {0};
        lvk_jw_begin_object(&w);
        lvk_jw_key(&w, "model"); lvk_jw_string(&w, path);
        lvk_jw_key(&w, "seed"); lvk_jw_int(&w, (int64_t)o.seed);
        lvk_jw_key(&w, "steps"); lvk_jw_int(&w, res[0].steps);
        lvk_jw_key(&w, "group_size"); lvk_jw_int(&w, group);
        lvk_jw_key(&w, "size"); lvk_jw_begin_array(&w); lvk_jw_int(&w, res[0].height); lvk_jw_int(&w, res[0].width); lvk_jw_end_array(&w);
        lvk_jw_key(&w, "device"); lvk_jw_string(&w, lvk_ctx_device(ctx)->name);
        lvk_jw_key(&w, "layers"); lvk_jw_begin_array(&w);
        for (int l = 0; l < nl; l++) {
            lvk_jw_begin_object(&w);
            lvk_jw_key(&w, "layer"); lvk_jw_string(&w, layers[l]);
            lvk_jw_key(&w, "seconds"); lvk_jw_number(&w, res[l].seconds);
            lvk_jw_key(&w, "images"); lvk_jw_begin_array(&w);
            for (int i = 0; i < nb; i++) {
                const double *gi = gain + 4 * ((size_t)l * nb + i);
                lvk_jw_begin_object(&w);
                lvk_jw_key(&w, "channels"); lvk_jw_string(&w, col_labels[i]);
                lvk_jw_key(&w, "objective_start"); lvk_jw_number(&w, gi[0]);
                lvk_jw_key(&w, "objective_end"); lvk_jw_number(&w, gi[1]);
                lvk_jw_key(&w, "activation_start"); lvk_jw_number(&w, gi[2]);
                lvk_jw_key(&w, "activation_end"); lvk_jw_number(&w, gi[3]);
                lvk_jw_end_object(&w);
            }
            lvk_jw_end_array(&w);
            lvk_jw_end_object(&w);
        }
        lvk_jw_end_array(&w);
        lvk_jw_end_object(&w);
        st = lvk_jw_write(&w, json);
    }
    if (st == LVK_OK) {
        printf("%s: %d layer%s x %d image%s\n", out, nl, nl == 1 ? "" : "s", nb, nb == 1 ? "" : "s");
        status = 0;
    } else {
        cli_error(st, NULL);
    }
    for (int l = 0; res && l < nl; l++)
        lvk_render_result_free(&res[l]);
    lvk_ctx_destroy(ctx);
    free(cells);
    free(gain);
    free(act);
    free(res);
    free(units);
    free(col_ptrs);
    free(col_labels);
    for (int l = 0; texts && l < nl; l++)
        free(texts[l]);
    free(texts);
    free(batches);
    free(layer_buf);
    return status;
}
