/* lucidvk features: the activation maps of a layer (or of every layer) for
 * one image, as labelled grids (analysis/features.h). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "analysis/features.h"
#include "cli/cli.h"
#include "io/lvk_io.h"
#include "lvk_util.h"
#include "nn/graph.h"

static void help(void)
{
    printf("usage: lucidvk features MODEL.onnx IMAGE.png -l LAYER [options] -o maps.png\n"
           "       lucidvk features MODEL.onnx IMAGE.png --all-layers --out-dir DIR [options]\n\n"
           "Draws a layer's activation maps for the image (resized to the model's input), each\n"
           "labelled with its channel, black for low and white for high (or a colormap).\n"
           "  -l, --layer NAME   a tensor [N, K, h, w] ('lucidvk info MODEL' lists them)\n"
           "  --channels LIST    channels to draw, e.g. 0-15,32 (default: all)\n"
           "  --cmap NAME        gray (default), viridis, magma, inferno, plasma\n"
           "  --norm shared|map  one range for all maps (default), or each map its own\n"
           "  --zoom N           upscaling of each map (default: to at least 48 pixels)\n"
           "  --cols N           maps per row (default: a near-square grid)\n"
           "  --all-layers       one grid per 4-D tensor with more than one position, written to\n"
           "                     DIR/<tensor>.png (characters other than letters, digits, '.',\n"
           "                     '-', '_' become '_')\n"
           "  -o, --out FILE     the PNG to write (one layer)\n"
           "  --out-dir DIR      the folder for --all-layers (created)\n"
           "  --device N|NAME    Vulkan device\n"
           CLI_PREPROC_HELP);
}

static lvk_status draw_layer(lvk_model_t *m, const struct lvk_tensor_info *t, const char *channels,
                             struct lvk_fmap_opts *fo, const char *image, const char *path)
{
    const int K = (int)t->shape[1], h = (int)t->shape[2], w = (int)t->shape[3];
    const size_t one = (size_t)K * h * w;
    float *act = malloc(one * (size_t)t->shape[0] * sizeof *act);
    if (!act)
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    int *chs = NULL, nch = 0;
    struct lvk_image img = {0};
    char title[768];
    snprintf(title, sizeof title, "%s  %s  [%d, %d, %d]", t->name, image, K, h, w);
    fo->title = title;
    lvk_status st = lvk_model_read(m, t->name, act, one * (size_t)t->shape[0]);
    if (st == LVK_OK && channels)
        st = lvk_channels_parse(channels, K, &chs, &nch);
    fo->channels = chs;
    fo->nchannels = nch;
    if (st == LVK_OK) st = lvk_fmap_grid(act, K, h, w, fo, &img);
    if (st == LVK_OK) st = lvk_png_write(path, &img);
    if (st == LVK_OK)
        printf("%s [%d, %d, %d] -> %s\n", t->name, K, h, w, path);
    lvk_image_free(&img);
    free(chs);
    free(act);
    return st;
}

int cmd_features(int argc, char **argv)
{
    static const struct option opts[] = {
        {"layer", required_argument, 0, 'l'}, {"channels", required_argument, 0, 'c'},
        {"cmap", required_argument, 0, 'm'}, {"norm", required_argument, 0, 'n'},
        {"zoom", required_argument, 0, 'z'}, {"cols", required_argument, 0, 'C'},
        {"all-layers", no_argument, 0, 'a'}, {"out", required_argument, 0, 'o'},
        {"out-dir", required_argument, 0, 'O'}, {"device", required_argument, 0, 'd'},
        {"help", no_argument, 0, 'h'}, CLI_PREPROC_OPTIONS, {0, 0, 0, 0}};
    struct cli_preproc pre = {0};
    lvk_preproc_default(&pre.p);
    const char *device = NULL, *layer = NULL, *channels = NULL, *out = NULL, *dir = NULL;
    const char *cmap = "gray", *norm = "shared";
    int all = 0, c, r;
    struct lvk_fmap_opts fo = {0};
    optind = 1;
    while ((c = getopt_long(argc, argv, "l:o:d:h", opts, NULL)) != -1) {
        if ((r = cli_preproc_parse(&pre, c, optarg)) != 0) {
            if (r < 0)
                return 2;
            continue;
        }
        switch (c) {
        case 'l': layer = optarg; break;
        case 'c': channels = optarg; break;
        case 'm': cmap = optarg; break;
        case 'n': norm = optarg; break;
        case 'z': if ((r = cli_int("features", "--zoom", optarg, 1, CLI_MAX_ZOOM, &fo.zoom))) return r; break;
        case 'C': if ((r = cli_int("features", "--cols", optarg, 1, INT_MAX, &fo.cols))) return r; break;
        case 'a': all = 1; break;
        case 'o': out = optarg; break;
        case 'O': dir = optarg; break;
        case 'd': device = optarg; break;
        case 'h': help(); return 0;
        default: return 2;
        }
    }
    if (optind != argc - 2)
        return cli_usage_error("features", "expected MODEL.onnx and IMAGE.png");
    if (all ? (!dir || layer || out) : (!layer || !out))
        return cli_usage_error("features", "give -l LAYER -o FILE, or --all-layers --out-dir DIR");
    if (all && channels)
        return cli_usage_error("features", "--channels applies to one layer, not --all-layers");
    if (!strcmp(norm, "shared"))
        fo.norm = LVK_FMAP_SHARED;
    else if (!strcmp(norm, "map"))
        fo.norm = LVK_FMAP_PER_MAP;
    else
        return cli_usage_error("features", "--norm is shared or map, not '%s'", norm);
    const char *path = argv[optind], *image = argv[optind + 1];
    struct lvk_preproc pp;
    lvk_status st = lvk_cmap_parse(cmap, &fo.cmap);
    if (st == LVK_OK)
        st = cli_preproc_resolve(&pre, path, &pp);
    if (st != LVK_OK)
        return cli_error(st, NULL);

    lvk_ctx_t *ctx = NULL;
    lvk_model_t *m = NULL;
    float *x = NULL;
    int status = 1;
    if ((st = cli_open(device, &ctx)) != LVK_OK)
        goto done;
    /* One layer: only what it needs runs. All layers: everything upstream
     * of the outputs keeps its activations anyway. */
    const char *outs[1] = {layer};
    struct lvk_model_opts mo = {.batch = 1, .outputs = layer ? outs : NULL, .noutputs = layer ? 1 : 0};
    if ((st = lvk_model_load(ctx, path, &mo, &m)) != LVK_OK)
        goto done;
    struct lvk_tensor_info ti;
    if ((st = cli_load_input(m, path, image, &pp, &ti, &x)) != LVK_OK)
        goto done;
    const size_t nx = (size_t)ti.shape[1] * ti.shape[2] * ti.shape[3];
    if ((st = lvk_model_set_input(m, ti.name, x, nx)) != LVK_OK || (st = lvk_model_forward(m)) != LVK_OK)
        goto done;
    if (!all) {
        struct lvk_tensor_info t;
        if ((st = lvk_model_tensor_find(m, layer, &t)) != LVK_OK)
            goto done;
        if (t.ndim != 4) {
            st = lvk_fail(LVK_ERR_INVALID_ARG, "'%s' has %d dimensions; feature maps need [N, K, h, w]",
                          layer, t.ndim);
            goto done;
        }
        if ((st = draw_layer(m, &t, channels, &fo, image, out)) != LVK_OK)
            goto done;
    } else {
        if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
            st = lvk_fail(LVK_ERR_IO, "cannot create %s", dir);
            goto done;
        }
        int drawn = 0;
        for (int i = 0; i < lvk_model_tensor_count(m); i++) {
            struct lvk_tensor_info t;
            if ((st = lvk_model_tensor_at(m, i, &t)) != LVK_OK)
                goto done;
            /* Computed feature maps only: skip inputs, constants, tensors
             * no output needs, and pooled vectors. */
            if (t.is_const || !t.op_type[0] || !m->values[i].buf || t.ndim != 4 ||
                t.shape[2] * t.shape[3] < 2)
                continue;
            char file[2048];
            cli_tensor_path(dir, t.name, ".png", file, sizeof file);
            if ((st = draw_layer(m, &t, NULL, &fo, image, file)) != LVK_OK)
                goto done;
            drawn++;
        }
        printf("%d layer%s -> %s\n", drawn, drawn == 1 ? "" : "s", dir);
    }
    status = 0;
done:
    if (st != LVK_OK)
        cli_error(st, NULL);
    free(x);
    lvk_model_destroy(m);
    lvk_ctx_destroy(ctx);
    return status;
}
