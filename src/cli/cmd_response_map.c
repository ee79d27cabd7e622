/* lucidvk response-map: fit a neural response map of a model on a set of
 * images, and plot how the map lights up for given images. The pipeline
 * lives in src/analysis/response_map.c; this file handles the image
 * sources (PNG folders, list files, IDX datasets), batching and the
 * figure (map, colour bar, optional neuron dots). */
#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analysis/interp.h"
#include "analysis/response_map.h"
#include "cli/cli.h"
#include "io/colormap.h"
#include "io/lvk_io.h"
#include "lvk_util.h"

/* "s" unless n is 1, for counts in messages. */
static const char *plural(int n)
{
    return n == 1 ? "" : "s";
}

/* ---- image sources -------------------------------------------------------------------- */

/* Images from PNG files or from an IDX dataset, resized to the model's
 * input, replicated or reduced to its channels, and preprocessed. */
struct images {
    char **paths;           /* PNG files, or NULL */
    struct lvk_npy idx;     /* IDX images [count, h, w] (values 0..255), if no paths */
    int *index;             /* which images, in order */
    int count, cap;         /* images; capacity of paths */
    int c, h, w;            /* model input */
    struct lvk_preproc pp;
    bool progress;          /* count loaded images on a terminal */
};

static void images_free(struct images *s)
{
    for (int i = 0; s->paths && i < s->count; i++)
        free(s->paths[i]);
    free(s->paths);
    free(s->index);
    lvk_npy_free(&s->idx);
    memset(s, 0, sizeof *s);
}

static lvk_status images_load(void *user, int i, float *img)
{
    struct images *s = user;
    if (s->progress && (i % 50 == 0 || i == s->count - 1))
        fprintf(stderr, "\r  responses: image %d of %d%s", i + 1, s->count,
                i == s->count - 1 ? "\n" : "");
    if (s->paths) {
        float *data;
        LVK_CHECK(cli_load_image(s->paths[i], s->c, s->h, s->w, &s->pp, &data));
        memcpy(img, data, (size_t)s->c * s->h * s->w * sizeof *img);
        free(data);
        return LVK_OK;
    }
    int ih = (int)s->idx.shape[1], iw = (int)s->idx.shape[2];
    struct lvk_image src = {0}, sized = {0};
    LVK_CHECK(lvk_image_alloc(&src, iw, ih, 1));
    const float *px = s->idx.data + (size_t)s->index[i] * ih * iw;
    for (int k = 0; k < ih * iw; k++)
        src.data[k] = px[k] / 255.0f;
    lvk_status st = LVK_OK;
    if (ih != s->h || iw != s->w) {
        st = lvk_image_resize(&src, s->w, s->h, &sized);
        lvk_image_free(&src);
        src = sized;
    }
    if (st == LVK_OK) {
        size_t plane = (size_t)s->h * s->w;
        for (int c = 0; c < s->c; c++) /* gray to as many channels as the model takes */
            memcpy(img + c * plane, src.data, plane * sizeof *img);
        lvk_preproc_apply(&s->pp, img, s->c, s->h, s->w);
    }
    lvk_image_free(&src);
    return st;
}

static bool has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcasecmp(s + a - b, suf);
}

static bool is_idx(const char *path)
{
    const char *base = strrchr(path, '/');
    return strstr(base ? base + 1 : path, "idx") || has_suffix(path, ".gz");
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static lvk_status add_path(struct images *s, const char *dir, const char *name)
{
    if (s->count == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        char **np = realloc(s->paths, (size_t)cap * sizeof *np);
        if (!np)
            return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
        s->paths = np;
        s->cap = cap;
    }
    size_t len = (dir ? strlen(dir) + 1 : 0) + strlen(name) + 1;
    char *p = malloc(len);
    if (!p)
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    if (dir && name[0] != '/')
        snprintf(p, len, "%s/%s", dir, name);
    else
        snprintf(p, len, "%s", name);
    s->paths[s->count++] = p;
    return LVK_OK;
}

/* PNG files of a folder, by name. */
static lvk_status images_from_dir(struct images *s, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return lvk_fail(LVK_ERR_IO, "%s: cannot open folder", dir);
    lvk_status st = LVK_OK;
    struct dirent *e;
    while (st == LVK_OK && (e = readdir(d)))
        if (e->d_name[0] != '.' && has_suffix(e->d_name, ".png"))
            st = add_path(s, dir, e->d_name);
    closedir(d);
    if (st == LVK_OK && !s->count)
        st = lvk_fail(LVK_ERR_INVALID_ARG, "%s: no .png files", dir);
    if (st == LVK_OK)
        qsort(s->paths, (size_t)s->count, sizeof *s->paths, by_name);
    return st;
}

/* A text file listing PNG paths, one a line ('#' starts a comment);
 * relative paths are taken from the list's folder. */
static lvk_status images_from_list(struct images *s, const char *list)
{
    uint8_t *text;
    size_t len;
    LVK_CHECK(lvk_read_file(list, &text, &len));
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", list);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    lvk_status st = LVK_OK;
    for (char *line = strtok((char *)text, "\r\n"); line && st == LVK_OK; line = strtok(NULL, "\r\n")) {
        while (isspace((unsigned char)*line))
            line++;
        char *end = line + strlen(line);
        while (end > line && isspace((unsigned char)end[-1]))
            *--end = 0;
        if (*line && *line != '#')
            st = add_path(s, dir, line);
    }
    free(text);
    if (st == LVK_OK && !s->count)
        st = lvk_fail(LVK_ERR_INVALID_ARG, "%s: lists no images", list);
    return st;
}

/* The labels file beside an IDX images file: "...images-idx3..." becomes
 * "...labels-idx1...". */
static bool labels_path(const char *images, char *out, size_t len)
{
    const char *p = strstr(images, "images-idx3");
    if (!p)
        return false;
    snprintf(out, len, "%.*slabels-idx1%s", (int)(p - images), images, p + strlen("images-idx3"));
    return true;
}

/* Opens --inputs: a folder of PNGs, an IDX images file (optionally only
 * the images of class `cls` >= 0, by the labels file beside it), or a list
 * file; keeps the first `limit` (0: all). */
static lvk_status images_open(struct images *s, const char *path, int cls, int limit)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return lvk_fail(LVK_ERR_IO, "%s: no such file or folder", path);
    if (S_ISDIR(sb.st_mode)) {
        LVK_CHECK(images_from_dir(s, path));
    } else if (is_idx(path)) {
        LVK_CHECK(lvk_idx_read(path, &s->idx));
        if (s->idx.ndim != 3)
            return lvk_fail(LVK_ERR_FORMAT, "%s: IDX images must be [count, rows, columns] "
                            "(this one has %d dimensions)", path, s->idx.ndim);
        int n = (int)s->idx.shape[0];
        if (!(s->index = lvk_calloc((size_t)LVK_MAX(n, 1), sizeof *s->index)))
            return LVK_ERR_HOST_OOM;
        struct lvk_npy labels = {0};
        if (cls >= 0) {
            char lp[4096];
            if (!labels_path(path, lp, sizeof lp))
                return lvk_fail(LVK_ERR_INVALID_ARG, "%s: --class needs the labels file, and its "
                                "name does not contain 'images-idx3'", path);
            LVK_CHECK(lvk_idx_read(lp, &labels));
            if (labels.ndim != 1 || labels.shape[0] != n) {
                lvk_npy_free(&labels);
                return lvk_fail(LVK_ERR_FORMAT, "%s: %lld labels for %d images", lp,
                                (long long)labels.shape[0], n);
            }
        }
        for (int i = 0; i < n; i++)
            if (cls < 0 || (int)labels.data[i] == cls)
                s->index[s->count++] = i;
        lvk_npy_free(&labels);
        if (!s->count)
            return lvk_fail(LVK_ERR_INVALID_ARG, "%s: no images of class %d", path, cls);
    } else {
        LVK_CHECK(images_from_list(s, path));
    }
    if (cls >= 0 && s->paths)
        return lvk_fail(LVK_ERR_INVALID_ARG, "--class works with IDX datasets only");
    if (limit > 0 && limit < s->count) {
        for (int i = limit; s->paths && i < s->count; i++)
            free(s->paths[i]);
        s->count = limit;
    }
    return LVK_OK;
}

/* ---- shared option handling ----------------------------------------------------------------- */

/* Splits "a,b,c" into a NULL-terminated array of pointers into a copy. */
static char **split_list(const char *s, int *n)
{
    *n = 0;
    char *copy = malloc(strlen(s) + 1);
    char **out = calloc(strlen(s) + 2, sizeof *out);
    if (!copy || !out) {
        free(copy);
        free(out);
        return NULL;
    }
    strcpy(copy, s);
    out[0] = copy; /* freed through out[0] by free_list */
    for (char *t = strtok(copy, ","); t; t = strtok(NULL, ","))
        out[(*n)++] = t;
    if (*n == 0) {
        free(copy);
        out[0] = NULL;
    }
    return out;
}

static void free_list(char **l)
{
    if (l)
        free(l[0]);
    free(l);
}

/* Loads the model once at batch 1 to resolve layers and the input, then
 * at the batch that fits (explicit, or from the per-image memory), with
 * only the layers as outputs. */
static lvk_status open_model(lvk_ctx_t *ctx, const char *path, char **names, int nnames, int count,
                             int batch, struct lvk_rmap_layer **layers, int *nlayers,
                             lvk_model_t **out, struct images *img)
{
    lvk_model_t *m;
    struct lvk_model_opts one = {.batch = 1};
    LVK_CHECK(lvk_model_load(ctx, path, &one, &m));
    struct lvk_tensor_info ti;
    lvk_status st = cli_image_input(m, path, &ti);
    if (st == LVK_OK) {
        img->c = (int)ti.shape[1];
        img->h = (int)ti.shape[2];
        img->w = (int)ti.shape[3];
    }
    if (st == LVK_OK)
        st = lvk_rmap_layers(m, (const char *const *)names, nnames, layers, nlayers);
    if (batch <= 0)
        batch = lvk_rmap_auto_batch(m, 256ull << 20);
    lvk_model_destroy(m);
    if (st != LVK_OK)
        return st;
    batch = LVK_MAX(1, LVK_MIN(batch, count));
    const char **outs = lvk_calloc((size_t)*nlayers, sizeof *outs);
    if (!outs)
        return LVK_ERR_HOST_OOM;
    for (int l = 0; l < *nlayers; l++)
        outs[l] = (*layers)[l].name;
    struct lvk_model_opts mo = {.batch = batch, .outputs = outs, .noutputs = *nlayers};
    st = lvk_model_load(ctx, path, &mo, out);
    free(outs);
    return st;
}

/* ---- fit ---------------------------------------------------------------------------------------- */

static void fit_help(void)
{
    printf("usage: lucidvk response-map fit MODEL.onnx --inputs PATH -o MAP.json [options]\n\n"
           "Fits a response map: every channel of the chosen layers is a neuron, its response\n"
           "to an image the channel's spatial mean; neurons are placed by t-SNE on\n"
           "1 - Spearman correlation of their responses over the images.\n"
           "  --inputs PATH      a folder of PNGs, an IDX images file (.gz read directly, e.g.\n"
           "                     /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz),\n"
           "                     or a text file listing PNGs; resized to the model's input,\n"
           "                     gray replicated to RGB when the model takes RGB\n"
           "  --limit N          use the first N images\n"
           "  --class K          IDX only: only images of class K (labels file beside it)\n"
           "  --layers A,B,...   layers (default: every conv/activation/add/concat output that\n"
           "                     is not a pre-activation; see 'lucidvk info')\n"
           "  --perplexity P     t-SNE perplexity (default 30)\n"
           "  --iterations N     t-SNE iterations (default 1000)\n"
           "  --learning-rate L  (default: max(neurons / 12 / 4, 50))\n"
           "  --exaggeration E   early exaggeration for the first 250 iterations (default 12)\n"
           "  --seed S           t-SNE initialisation (default 0)\n"
           "  --exact-max N      exact t-SNE up to N neurons, Barnes-Hut above (default 2500)\n"
           "  --theta T          Barnes-Hut accuracy (default 0.5)\n"
           "  --circle           circle projection: a round map\n"
           "  --circle-bins N    angle bins of the circle projection (default 100)\n"
           "  --batch B          images per forward pass (default: from the model's memory)\n"
           "  -o, --out FILE     the map (JSON)\n"
           "  --device N|NAME    Vulkan device\n"
           CLI_PREPROC_HELP);
}

#define FIT "response-map fit"

static int fit(int argc, char **argv)
{
    enum { O_LIMIT = 0x200, O_CLASS, O_LAYERS, O_PERP, O_ITERS, O_LR, O_EXAG, O_SEED, O_EXACT,
           O_THETA, O_CIRCLE, O_BINS, O_BATCH, O_INPUTS };
    static const struct option opts[] = {
        {"inputs", required_argument, 0, O_INPUTS}, {"limit", required_argument, 0, O_LIMIT},
        {"class", required_argument, 0, O_CLASS}, {"layers", required_argument, 0, O_LAYERS},
        {"perplexity", required_argument, 0, O_PERP}, {"iterations", required_argument, 0, O_ITERS},
        {"learning-rate", required_argument, 0, O_LR}, {"exaggeration", required_argument, 0, O_EXAG},
        {"seed", required_argument, 0, O_SEED}, {"exact-max", required_argument, 0, O_EXACT},
        {"theta", required_argument, 0, O_THETA}, {"circle", no_argument, 0, O_CIRCLE},
        {"circle-bins", required_argument, 0, O_BINS}, {"batch", required_argument, 0, O_BATCH},
        {"out", required_argument, 0, 'o'}, {"device", required_argument, 0, 'd'},
        {"help", no_argument, 0, 'h'}, CLI_PREPROC_OPTIONS, {0, 0, 0, 0}};
    struct cli_preproc pre = {0};
    lvk_preproc_default(&pre.p);
    struct lvk_rmap_fit_opts fo;
    lvk_rmap_fit_default(&fo);
    const char *device = NULL, *inputs = NULL, *out = NULL, *layer_arg = NULL;
    int limit = 0, cls = -1, batch = 0, c, r;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:d:h", opts, NULL)) != -1) {
        if ((r = cli_preproc_parse(&pre, c, optarg)) != 0) {
            if (r < 0)
                return 2;
            continue;
        }
        switch (c) {
        case O_INPUTS: inputs = optarg; break;
        case O_LIMIT: r = cli_int(FIT, "--limit", optarg, 1, INT_MAX, &limit); break;
        case O_CLASS: r = cli_int(FIT, "--class", optarg, 0, INT_MAX, &cls); break;
        case O_LAYERS: layer_arg = optarg; break;
        case O_PERP: r = cli_float(FIT, "--perplexity", optarg, 0, INFINITY, true, &fo.tsne.perplexity); break;
        case O_ITERS: r = cli_int(FIT, "--iterations", optarg, 1, INT_MAX, &fo.tsne.iterations); break;
        case O_LR: r = cli_float(FIT, "--learning-rate", optarg, 0, INFINITY, true, &fo.tsne.learning_rate); break;
        case O_EXAG:
            r = cli_float(FIT, "--exaggeration", optarg, 0, INFINITY, true, &fo.tsne.early_exaggeration);
            break;
        case O_SEED: r = cli_seed(FIT, "--seed", optarg, &fo.tsne.seed); break;
        case O_EXACT: r = cli_int(FIT, "--exact-max", optarg, 0, INT_MAX, &fo.exact_max); break;
        case O_THETA: r = cli_float(FIT, "--theta", optarg, 0, INFINITY, true, &fo.tsne.theta); break;
        case O_CIRCLE: fo.circle = true; break;
        case O_BINS: r = cli_int(FIT, "--circle-bins", optarg, 1, INT_MAX, &fo.circle_bins); break;
        case O_BATCH: r = cli_int(FIT, "--batch", optarg, 1, INT_MAX, &batch); break;
        case 'o': out = optarg; break;
        case 'd': device = optarg; break;
        case 'h': fit_help(); return 0;
        default: return 2;
        }
        if (r)
            return r;
    }
    if (argc - optind != 1)
        return cli_usage_error(FIT, "expected one MODEL.onnx");
    if (!inputs || !out)
        return cli_usage_error(FIT, "--inputs and -o are required");
    const char *path = argv[optind];
    double t0 = cli_now();

    struct images img = {0};
    struct lvk_rmap_layer *layers = NULL;
    int nlayers = 0, nnames = 0;
    char **names = layer_arg ? split_list(layer_arg, &nnames) : NULL;
    lvk_ctx_t *ctx = NULL;
    lvk_model_t *m = NULL;
    struct lvk_rmap *map = NULL;
    float *resp = NULL;
    lvk_status st = cli_preproc_resolve(&pre, path, &img.pp);
    if (st == LVK_OK)
        st = images_open(&img, inputs, cls, limit);
    if (st == LVK_OK)
        st = cli_open(device, &ctx);
    if (st == LVK_OK)
        st = open_model(ctx, path, names, nnames, img.count, batch, &layers, &nlayers, &m, &img);
    int total = 0;
    for (int l = 0; l < nlayers; l++)
        total += layers[l].channels;
    if (st == LVK_OK) {
        struct lvk_tensor_info ti;
        lvk_model_tensor_find(m, lvk_model_input_name(m), &ti);
        printf("%s: %d layer%s, %d neuron%s; %d image%s from %s, batch %lld\n", path, nlayers,
               plural(nlayers), total, plural(total), img.count, plural(img.count), inputs,
               (long long)ti.shape[0]);
        fflush(stdout);
        if (!(resp = lvk_calloc((size_t)total * img.count, sizeof *resp)))
            st = LVK_ERR_HOST_OOM;
    }
    struct lvk_rmap_source src = {.count = img.count, .load = images_load, .user = &img};
    img.progress = isatty(STDERR_FILENO);
    if (st == LVK_OK)
        st = lvk_rmap_responses(m, layers, nlayers, &src, resp);
    double t_resp = cli_now() - t0;
    lvk_model_destroy(m);
    m = NULL;
    if (st == LVK_OK)
        st = lvk_rmap_fit(ctx, resp, img.count, layers, nlayers, &fo, &map);
    if (st == LVK_OK) {
        map->t_responses = t_resp;
        map->t_total = cli_now() - t0;
        map->model = strdup(path);
        map->inputs = strdup(inputs);
        if (!map->model || !map->inputs)
            st = lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    }
    if (st == LVK_OK)
        st = lvk_sha256_file(path, map->sha256);
    if (st == LVK_OK)
        st = lvk_rmap_write(map, out);
    int status = st == LVK_OK ? 0 : cli_error(st, NULL);
    if (st == LVK_OK)
        printf("%d neuron%s mapped, %d dropped (constant response); t-SNE %s%s\n"
               "time: responses %.1f s, correlation %.1f s, t-SNE %.1f s, total %.1f s -> %s\n",
               map->n, plural(map->n), map->ndropped, map->exact ? "exact" : "Barnes-Hut",
               map->circle ? ", circle projection" : "", map->t_responses, map->t_correlation,
               map->t_tsne, map->t_total, out);
    lvk_rmap_destroy(map);
    free(resp);
    lvk_rmap_layers_free(layers, nlayers);
    free_list(names);
    images_free(&img);
    lvk_ctx_destroy(ctx);
    return status;
}

/* ---- plot ---------------------------------------------------------------------------------------- */

static void plot_help(void)
{
    printf("usage: lucidvk response-map plot MAP.json MODEL.onnx [IMAGE.png...] -o MAP.png [options]\n\n"
           "Draws how the map lights up: each neuron's response (min-max scaled as in the fit,\n"
           "averaged over the images) at its place, interpolated onto a grid, with a colour bar.\n"
           "  --inputs PATH      images as for 'fit' (folder, IDX file, list), besides or instead\n"
           "                     of IMAGE arguments; with --limit N and --class K\n"
           "  --method M         nearest (default) or linear (Delaunay, needs qhull)\n"
           "  --cmap NAME        viridis (default), magma, inferno, plasma, gray\n"
           "  --size WxH         figure size in inches (default 5x5)\n"
           "  --dpi D            pixels per inch (default 100)\n"
           "  --resolution N     interpolation grid N x N (default 1000)\n"
           "  --layers A,B,...   only these layers' neurons\n"
           "  --dots             draw the neurons\n"
           "  --clim LO,HI       colour range (default: the map's own range)\n"
           "  --batch B          images per forward pass\n"
           "  -o, --out FILE     the figure (PNG)\n"
           "  --device N|NAME    Vulkan device\n"
           CLI_PREPROC_HELP);
}

/* Averages the grid's valid (non-NaN) cells under each of s x s figure
 * pixels; a pixel with fewer than half valid stays NaN. */
static void resample(const float *grid, int res, int s, float *out)
{
    for (int y = 0; y < s; y++) {
        int r0 = (int)((int64_t)y * res / s), r1 = LVK_MAX(r0 + 1, (int)((int64_t)(y + 1) * res / s));
        for (int x = 0; x < s; x++) {
            int c0 = (int)((int64_t)x * res / s), c1 = LVK_MAX(c0 + 1, (int)((int64_t)(x + 1) * res / s));
            double sum = 0;
            int valid = 0, cells = 0;
            for (int r = r0; r < r1; r++)
                for (int c = c0; c < c1; c++, cells++) {
                    float v = grid[(size_t)r * res + c];
                    if (!isnan(v)) {
                        sum += v;
                        valid++;
                    }
                }
            out[(size_t)y * s + x] = 2 * valid >= cells && valid ? (float)(sum / valid) : NAN;
        }
    }
}

static void put_px(struct lvk_image *im, int x, int y, const float rgb[3])
{
    if (x < 0 || y < 0 || x >= im->w || y >= im->h)
        return;
    size_t plane = (size_t)im->w * im->h;
    for (int k = 0; k < 3; k++)
        im->data[k * plane + (size_t)y * im->w + x] = rgb[k];
}

static void frame(struct lvk_image *im, int x0, int y0, int w, int h, const float rgb[3])
{
    for (int x = x0 - 1; x <= x0 + w; x++) {
        put_px(im, x, y0 - 1, rgb);
        put_px(im, x, y0 + h, rgb);
    }
    for (int y = y0 - 1; y <= y0 + h; y++) {
        put_px(im, x0 - 1, y, rgb);
        put_px(im, x0 + w, y, rgb);
    }
}

struct figure_opts {
    enum lvk_cmap cmap;
    int width, height;      /* pixels */
    bool dots;
    bool clim;
    float lo, hi;
};

/* The figure: white background, the map as a square on the left, the
 * colour bar on its right (the layout of matplotlib's imshow + colorbar). */
static lvk_status draw(const float *grid, int res, const float *xy, int n,
                       const struct figure_opts *fo, float *lo, float *hi, struct lvk_image *out)
{
    int W = fo->width, H = fo->height;
    int s = LVK_MAX(8, LVK_MIN((int)(0.78 * W), (int)(0.88 * H)));
    int bw = LVK_MAX(4, s / 20), gap = LVK_MAX(4, s / 25);
    int x0 = LVK_MAX(1, (W - s - gap - bw) / 2), y0 = LVK_MAX(1, (H - s) / 2);
    LVK_CHECK(lvk_image_alloc(out, W, H, 3));
    size_t plane = (size_t)W * H;
    for (size_t i = 0; i < 3 * plane; i++)
        out->data[i] = 1.0f;
    float *px = lvk_calloc((size_t)s * s, sizeof *px);
    if (!px)
        return LVK_ERR_HOST_OOM;
    resample(grid, res, s, px);
    *lo = fo->lo;
    *hi = fo->hi;
    if (!fo->clim) {
        *lo = INFINITY;
        *hi = -INFINITY;
        for (size_t i = 0; i < (size_t)res * res; i++)
            if (!isnan(grid[i])) {
                *lo = fminf(*lo, grid[i]);
                *hi = fmaxf(*hi, grid[i]);
            }
    }
    float span = *hi > *lo ? *hi - *lo : 1.0f;
    for (int y = 0; y < s; y++)
        for (int x = 0; x < s; x++) {
            float v = px[(size_t)y * s + x], rgb[3];
            if (isnan(v))
                continue;
            lvk_cmap_rgb(fo->cmap, (v - *lo) / span, rgb);
            put_px(out, x0 + x, y0 + y, rgb);
        }
    free(px);
    const float black[3] = {0, 0, 0}, grey[3] = {0.15f, 0.15f, 0.15f};
    if (fo->dots) {
        int rad = LVK_MAX(1, s / 300); /* 3 x 3 pixels at the default 500 x 500 */
        for (int i = 0; i < n; i++) {
            int cx = x0 + (int)floor((xy[2 * i] + 1) / 2 * s), cy = y0 + (int)floor((1 - xy[2 * i + 1]) / 2 * s);
            for (int dy = -rad; dy <= rad; dy++)
                for (int dx = -rad; dx <= rad; dx++)
                    put_px(out, cx + dx, cy + dy, grey);
        }
    }
    frame(out, x0, y0, s, s, black);
    struct lvk_image bar;
    LVK_CHECK(lvk_cmap_bar(fo->cmap, bw, s, &bar));
    int bx = x0 + s + gap;
    for (int y = 0; y < s; y++)
        for (int x = 0; x < bw; x++) {
            float rgb[3];
            for (int k = 0; k < 3; k++)
                rgb[k] = bar.data[k * (size_t)bw * s + (size_t)y * bw + x];
            put_px(out, bx + x, y0 + y, rgb);
        }
    lvk_image_free(&bar);
    frame(out, bx, y0, bw, s, black);
    return LVK_OK;
}

#define PLOT "response-map plot"

/* Two numbers with `sep` between them ("5x5", "0,1"), each as cli_float
 * takes it: at least lo, or above it when lo_open. */
static int number_pair(const char *opt, const char *arg, char sep, double lo, bool lo_open, double *a,
                       double *b)
{
    const char *mid = strchr(arg, sep);
    if (!mid)
        return cli_usage_error(PLOT, "%s takes two numbers separated by '%c', not '%s'", opt, sep, arg);
    char *first = strndup(arg, (size_t)(mid - arg));
    if (!first)
        return cli_error(LVK_ERR_HOST_OOM, NULL);
    int r = cli_float(PLOT, opt, first, lo, INFINITY, lo_open, a);
    free(first);
    return r ? r : cli_float(PLOT, opt, mid + 1, lo, INFINITY, lo_open, b);
}

static int plot(int argc, char **argv)
{
    enum { O_INPUTS = 0x200, O_LIMIT, O_CLASS, O_METHOD, O_CMAP, O_SIZE, O_DPI, O_RES, O_LAYERS,
           O_DOTS, O_CLIM, O_BATCH };
    static const struct option opts[] = {
        {"inputs", required_argument, 0, O_INPUTS}, {"limit", required_argument, 0, O_LIMIT},
        {"class", required_argument, 0, O_CLASS}, {"method", required_argument, 0, O_METHOD},
        {"cmap", required_argument, 0, O_CMAP}, {"size", required_argument, 0, O_SIZE},
        {"dpi", required_argument, 0, O_DPI}, {"resolution", required_argument, 0, O_RES},
        {"layers", required_argument, 0, O_LAYERS}, {"dots", no_argument, 0, O_DOTS},
        {"clim", required_argument, 0, O_CLIM}, {"batch", required_argument, 0, O_BATCH},
        {"out", required_argument, 0, 'o'}, {"device", required_argument, 0, 'd'},
        {"help", no_argument, 0, 'h'}, CLI_PREPROC_OPTIONS, {0, 0, 0, 0}};
    struct cli_preproc pre = {0};
    lvk_preproc_default(&pre.p);
    const char *device = NULL, *inputs = NULL, *out = NULL, *layer_arg = NULL, *method = "nearest";
    struct figure_opts fig = {.cmap = LVK_CMAP_VIRIDIS};
    double win = 5, hin = 5, dpi = 100;
    int limit = 0, cls = -1, res = 1000, batch = 0, c, r;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:d:h", opts, NULL)) != -1) {
        if ((r = cli_preproc_parse(&pre, c, optarg)) != 0) {
            if (r < 0)
                return 2;
            continue;
        }
        switch (c) {
        case O_INPUTS: inputs = optarg; break;
        case O_LIMIT: r = cli_int(PLOT, "--limit", optarg, 1, INT_MAX, &limit); break;
        case O_CLASS: r = cli_int(PLOT, "--class", optarg, 0, INT_MAX, &cls); break;
        case O_METHOD: method = optarg; break;
        case O_CMAP:
            if (lvk_cmap_parse(optarg, &fig.cmap) != LVK_OK) {
                cli_error(LVK_ERR_INVALID_ARG, NULL);
                return 2;
            }
            break;
        case O_SIZE: r = number_pair("--size", optarg, 'x', 0, true, &win, &hin); break;
        case O_DPI: r = cli_float(PLOT, "--dpi", optarg, 0, INFINITY, true, &dpi); break;
        case O_RES: r = cli_int(PLOT, "--resolution", optarg, 2, 8192, &res); break;
        case O_LAYERS: layer_arg = optarg; break;
        case O_DOTS: fig.dots = true; break;
        case O_CLIM: {
            double lo, hi;
            if (!(r = number_pair("--clim", optarg, ',', -INFINITY, false, &lo, &hi)) && !(hi > lo))
                r = cli_usage_error(PLOT, "--clim takes LO,HI with LO < HI, not '%s'", optarg);
            if (!r) {
                fig.lo = (float)lo;
                fig.hi = (float)hi;
                fig.clim = true;
            }
            break;
        }
        case O_BATCH: r = cli_int(PLOT, "--batch", optarg, 1, INT_MAX, &batch); break;
        case 'o': out = optarg; break;
        case 'd': device = optarg; break;
        case 'h': plot_help(); return 0;
        default: return 2;
        }
        if (r)
            return r;
    }
    bool linear = !strcmp(method, "linear");
    if (!linear && strcmp(method, "nearest"))
        return cli_usage_error(PLOT, "--method is nearest or linear");
    if (argc - optind < 2)
        return cli_usage_error(PLOT, "expected MAP.json and MODEL.onnx");
    if (argc - optind == 2 && !inputs)
        return cli_usage_error(PLOT, "no images: give IMAGE.png arguments or --inputs");
    if (!out)
        return cli_usage_error(PLOT, "-o is required");
    if (!(win * dpi >= 16 && hin * dpi >= 16 && win * dpi <= 16384 && hin * dpi <= 16384))
        return cli_usage_error(PLOT, "--size and --dpi give a figure of %.0fx%.0f pixels; it must be "
                               "16 to 16384 pixels a side", win * dpi, hin * dpi);
    fig.width = (int)lround(win * dpi);
    fig.height = (int)lround(hin * dpi);
    const char *map_path = argv[optind], *path = argv[optind + 1];

    struct lvk_rmap *map = NULL;
    struct images img = {0};
    struct lvk_rmap_layer *layers = NULL;
    int nlayers = 0, nnames = 0, npts = 0;
    char **names = NULL;
    lvk_ctx_t *ctx = NULL;
    lvk_model_t *m = NULL;
    float *resp = NULL, *xy = NULL, *val = NULL, *grid = NULL;
    int *base = NULL;
    struct lvk_image figure = {0};
    char hash[65];
    lvk_status st = lvk_rmap_read(map_path, &map);
    if (st == LVK_OK)
        st = lvk_sha256_file(path, hash);
    if (st == LVK_OK && strcmp(hash, map->sha256))
        st = lvk_fail(LVK_ERR_INVALID_ARG, "%s was fitted on another model (%s, sha256 %.12s...); "
                      "%s has sha256 %.12s...", map_path, map->model, map->sha256, path, hash);
    /* The layers drawn: all of the map's, or those named (in map order). */
    if (st == LVK_OK && layer_arg) {
        names = split_list(layer_arg, &nnames);
        if (!names)
            st = LVK_ERR_HOST_OOM;
        for (int i = 0; i < nnames && st == LVK_OK; i++) {
            bool found = false;
            for (int l = 0; l < map->nlayers; l++)
                found |= !strcmp(map->layers[l].name, names[i]);
            if (!found)
                st = lvk_fail(LVK_ERR_NOT_FOUND, "%s has no layer '%s'", map_path, names[i]);
        }
    }
    char **use = NULL;
    int nuse = 0;
    if (st == LVK_OK && !(use = lvk_calloc((size_t)map->nlayers, sizeof *use)))
        st = LVK_ERR_HOST_OOM;
    for (int l = 0; st == LVK_OK && l < map->nlayers; l++) {
        bool want = !names;
        for (int i = 0; i < nnames; i++)
            want |= !strcmp(map->layers[l].name, names[i]);
        if (want)
            use[nuse++] = map->layers[l].name;
    }
    if (st == LVK_OK)
        st = cli_preproc_resolve(&pre, path, &img.pp);
    if (st == LVK_OK && inputs)
        st = images_open(&img, inputs, cls, limit);
    for (int i = optind + 2; i < argc && st == LVK_OK; i++)
        st = img.index ? lvk_fail(LVK_ERR_INVALID_ARG, "PNG arguments mix with a folder or list "
                                  "of PNGs, not with an IDX dataset")
                       : add_path(&img, NULL, argv[i]);
    if (st == LVK_OK)
        st = cli_open(device, &ctx);
    if (st == LVK_OK)
        st = open_model(ctx, path, use, nuse, img.count, batch, &layers, &nlayers, &m, &img);
    /* Responses of the drawn layers' channels, averaged over the images. */
    int total = 0;
    for (int l = 0; l < nlayers; l++)
        total += layers[l].channels;
    if (st == LVK_OK && !(resp = lvk_calloc((size_t)total * img.count, sizeof *resp)))
        st = LVK_ERR_HOST_OOM;
    struct lvk_rmap_source src = {.count = img.count, .load = images_load, .user = &img};
    if (st == LVK_OK)
        st = lvk_rmap_responses(m, layers, nlayers, &src, resp);
    /* base[map layer]: first response row of that layer, or -1 if not drawn. */
    if (st == LVK_OK && !(base = lvk_calloc((size_t)map->nlayers, sizeof *base)))
        st = LVK_ERR_HOST_OOM;
    for (int l = 0, row = 0, k = 0; st == LVK_OK && l < map->nlayers; l++) {
        base[l] = -1;
        if (k < nlayers && !strcmp(layers[k].name, map->layers[l].name)) {
            if (layers[k].channels != map->layers[l].channels)
                st = lvk_fail(LVK_ERR_INVALID_ARG, "layer '%s' has %d channels in %s and %d in "
                              "the map", layers[k].name, layers[k].channels, path,
                              map->layers[l].channels);
            base[l] = row;
            row += layers[k++].channels;
        }
    }
    if (st == LVK_OK && (!(xy = lvk_calloc(2 * (size_t)map->n + 2, sizeof *xy)) ||
                         !(val = lvk_calloc((size_t)map->n + 1, sizeof *val))))
        st = LVK_ERR_HOST_OOM;
    for (int i = 0; st == LVK_OK && i < map->n; i++) {
        const struct lvk_rmap_neuron *nu = &map->neurons[i];
        if (base[nu->layer] < 0)
            continue;
        const float *row = resp + (size_t)(base[nu->layer] + nu->channel) * img.count;
        double mean = 0;
        for (int t = 0; t < img.count; t++)
            mean += row[t];
        mean /= img.count;
        xy[2 * npts] = nu->x;
        xy[2 * npts + 1] = nu->y;
        val[npts++] = (float)((mean - nu->lo) / ((double)nu->hi - nu->lo));
    }
    if (st == LVK_OK && !(grid = lvk_calloc((size_t)res * res, sizeof *grid)))
        st = LVK_ERR_HOST_OOM;
    if (st == LVK_OK)
        st = linear ? lvk_interp_linear(xy, val, npts, res, grid)
                    : lvk_interp_nearest(xy, val, npts, res, grid);
    float lo = 0, hi = 0;
    if (st == LVK_OK)
        st = draw(grid, res, xy, npts, &fig, &lo, &hi, &figure);
    if (st == LVK_OK)
        st = lvk_png_write(out, &figure);
    int status = st == LVK_OK ? 0 : cli_error(st, NULL);
    if (st == LVK_OK)
        printf("%d neuron%s of %d layer%s, %d image%s, %s, colour range %.4g to %.4g (scaled "
               "responses) -> %s (%dx%d)\n", npts, plural(npts), nlayers, plural(nlayers), img.count,
               plural(img.count), method, lo, hi, out, figure.w, figure.h);
    lvk_image_free(&figure);
    free(grid);
    free(xy);
    free(val);
    free(base);
    free(resp);
    free(use);
    lvk_model_destroy(m);
    lvk_rmap_layers_free(layers, nlayers);
    free_list(names);
    images_free(&img);
    lvk_rmap_destroy(map);
    lvk_ctx_destroy(ctx);
    return status;
}

int cmd_response_map(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "fit"))
        return fit(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "plot"))
        return plot(argc - 1, argv + 1);
    bool help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    printf("usage: lucidvk response-map fit MODEL.onnx --inputs PATH -o MAP.json [options]\n"
           "       lucidvk response-map plot MAP.json MODEL.onnx IMAGE.png... -o MAP.png [options]\n\n"
           "A map of the network's neurons (channels) on which neurons that respond alike sit\n"
           "together, lit up by the responses to given images. 'lucidvk response-map fit --help'\n"
           "and 'plot --help' list the options.\n");
    return help ? 0 : 2;
}
