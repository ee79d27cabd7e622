/* lucidvk attribute: which pixels of an image matter for a class or an
 * objective (saliency, guided backprop, integrated gradients, SmoothGrad,
 * Grad-CAM; see analysis/attribution.h). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/attribution.h"
#include "cli/cli.h"
#include "io/lvk_io.h"
#include "lvk_util.h"

static void help(void)
{
    printf("usage: lucidvk attribute MODEL.onnx IMAGE.png --method M [--target K | --objective EXPR]\n"
           "                        [options] -o attr.png\n\n"
           "Heat map of the pixels that matter for a class score (default: the image's top-1\n"
           "class, on the logits when the model ends in Softmax) or an objective.\n"
           "  --method M         saliency   |d score / d pixel|, largest over colour channels\n"
           "                     guided     guided backpropagation (ReLUs pass only positive\n"
           "                                gradients through active units)\n"
           "                     ig         integrated gradients from a baseline; prints the\n"
           "                                completeness error |sum - (f(x) - f(x0))| / |f(x) - f(x0)|\n"
           "                     smoothgrad gradient averaged over noisy copies of the image\n"
           "                     gradcam    Grad-CAM at a layer, upsampled to the image\n"
           "  --target K         class index (default: top-1)\n"
           "  --objective EXPR   attribute an objective instead ('lucidvk render --help' lists\n"
           "                     the terms; terms on the image and '@i' are not allowed)\n"
           "  --scores NAME      tensor holding class scores (default: the first output, or\n"
           "                     the input of its Softmax)\n"
           "  --layer NAME       gradcam layer (default: the last feature map with more than\n"
           "                     one position)\n"
           "  --steps N          ig gradient evaluations along the path (default %d): half at\n"
           "                     Gauss-Legendre nodes, the rest where those miss the change of\n"
           "                     the score between nodes\n"
           "  --baseline B       ig baseline: black (default), blur, noise or a PNG file\n"
           "  --samples N        smoothgrad samples (default %d)\n"
           "  --noise F          smoothgrad noise std, a fraction of the pixel range (default %.2f)\n"
           "  --seed N           random seed for noise (default 0)\n"
           "  --batch N          largest batch of images per pass (default 16; halved while the\n"
           "                     device runs out of memory)\n"
           "  --overlay          draw the heat map over the image\n"
           "  --cmap NAME        gray, viridis, magma, inferno (default), plasma\n"
           "  --clip P           heat 1 at the P-th percentile (default 99, gradcam 100)\n"
           "  --zoom N           enlarge the picture N times, pixels as blocks (default 1; for\n"
           "                     small models, e.g. 28 px)\n"
           "  --npy FILE         also write the raw attribution [C, H, W] (gradcam: the map [H, W])\n"
           "  -o, --out FILE     the PNG to write\n"
           "  --device N|NAME    Vulkan device\n"
           CLI_PREPROC_HELP,
           LVK_ATTR_DEFAULT_STEPS, LVK_ATTR_DEFAULT_SAMPLES, (double)LVK_ATTR_DEFAULT_NOISE);
}

int cmd_attribute(int argc, char **argv)
{
    static const struct option opts[] = {
        {"method", required_argument, 0, 'm'}, {"target", required_argument, 0, 'k'},
        {"objective", required_argument, 0, 'j'}, {"scores", required_argument, 0, 'S'},
        {"layer", required_argument, 0, 'l'}, {"steps", required_argument, 0, 's'},
        {"baseline", required_argument, 0, 'b'}, {"samples", required_argument, 0, 'n'},
        {"noise", required_argument, 0, 'N'}, {"seed", required_argument, 0, 'r'},
        {"batch", required_argument, 0, 'B'}, {"overlay", no_argument, 0, 'v'},
        {"cmap", required_argument, 0, 'c'}, {"clip", required_argument, 0, 'p'},
        {"npy", required_argument, 0, 'y'}, {"out", required_argument, 0, 'o'},
        {"zoom", required_argument, 0, 'Z'},
        {"device", required_argument, 0, 'd'}, {"help", no_argument, 0, 'h'},
        CLI_PREPROC_OPTIONS, {0, 0, 0, 0}};
    struct cli_preproc pre = {0};
    lvk_preproc_default(&pre.p);
    struct lvk_attr_opts ao = {.target = -1};
    const char *device = NULL, *out = NULL, *npy = NULL, *method = NULL, *baseline = "black";
    const char *cmap_name = "inferno";
    int overlay = 0, batch = 16, zoom = 1, c, r;
    double clip = -1, noise;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:o:d:h", opts, NULL)) != -1) {
        if ((r = cli_preproc_parse(&pre, c, optarg)) != 0) {
            if (r < 0)
                return 2;
            continue;
        }
        switch (c) {
        case 'm': method = optarg; break;
        case 'k': if ((r = cli_int("attribute", "--target", optarg, 0, INT_MAX, &ao.target))) return r; break;
        case 'j': ao.objective = optarg; break;
        case 'S': ao.scores = optarg; break;
        case 'l': ao.layer = optarg; break;
        case 's': if ((r = cli_int("attribute", "--steps", optarg, 1, INT_MAX, &ao.steps))) return r; break;
        case 'b': baseline = optarg; break;
        case 'n': if ((r = cli_int("attribute", "--samples", optarg, 1, INT_MAX, &ao.samples))) return r; break;
        case 'N':
            if ((r = cli_float("attribute", "--noise", optarg, 0, INFINITY, true, &noise)))
                return r;
            ao.noise = (float)noise;
            break;
        case 'r': if ((r = cli_seed("attribute", "--seed", optarg, &ao.seed))) return r; break;
        case 'B': if ((r = cli_int("attribute", "--batch", optarg, 1, INT_MAX, &batch))) return r; break;
        case 'v': overlay = 1; break;
        case 'c': cmap_name = optarg; break;
        case 'p': if ((r = cli_float("attribute", "--clip", optarg, 0, 100, true, &clip))) return r; break;
        case 'Z': if ((r = cli_int("attribute", "--zoom", optarg, 1, CLI_MAX_ZOOM, &zoom))) return r; break;
        case 'y': npy = optarg; break;
        case 'o': out = optarg; break;
        case 'd': device = optarg; break;
        case 'h': help(); return 0;
        default: return 2;
        }
    }
    if (optind != argc - 2 || !out || !method)
        return cli_usage_error("attribute", "expected MODEL.onnx IMAGE.png --method M -o FILE");
    if (ao.objective && ao.target >= 0)
        return cli_usage_error("attribute", "give --target or --objective, not both");
    const char *path = argv[optind], *image_path = argv[optind + 1];
    lvk_status st = lvk_attr_method_parse(method, &ao.method);
    enum lvk_cmap cmap;
    if (st == LVK_OK)
        st = lvk_cmap_parse(cmap_name, &cmap);
    if (st == LVK_OK)
        st = cli_preproc_resolve(&pre, path, &ao.pre);
    if (st != LVK_OK)
        return cli_error(st, NULL);
    if (clip < 0)
        clip = ao.method == LVK_ATTR_GRADCAM ? 100 : 99;

    char **labels = NULL;
    int nlabels = 0;
    lvk_ctx_t *ctx = NULL;
    lvk_model_t *m = NULL;
    float *img = NULL, *base = NULL;
    struct lvk_attr_result res = {0};
    struct lvk_image pic = {0};
    int status = 1;
    if (ao.pre.labels[0] && (st = lvk_labels_read(ao.pre.labels, &labels, &nlabels)) != LVK_OK)
        goto done;
    if ((st = cli_open(device, &ctx)) != LVK_OK)
        goto done;
    double t0 = cli_now();
    if ((st = lvk_attr_load(ctx, path, &ao, batch, &m)) != LVK_OK)
        goto done;
    /* Pixels in [0, 1]: lvk_attr_compute applies ao.pre itself. */
    struct lvk_preproc pixels;
    lvk_preproc_default(&pixels);
    struct lvk_tensor_info ti;
    if ((st = cli_load_input(m, path, image_path, &pixels, &ti, &img)) != LVK_OK)
        goto done;
    const int C = (int)ti.shape[1], H = (int)ti.shape[2], W = (int)ti.shape[3];
    if (ao.method == LVK_ATTR_IG) {
        base = malloc((size_t)C * H * W * sizeof *base);
        if (!base) {
            st = lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
            goto done;
        }
        if (!strcmp(baseline, "black"))
            st = lvk_attr_baseline(LVK_BASELINE_BLACK, img, C, H, W, ao.seed, base);
        else if (!strcmp(baseline, "blur"))
            st = lvk_attr_baseline(LVK_BASELINE_BLUR, img, C, H, W, ao.seed, base);
        else if (!strcmp(baseline, "noise"))
            st = lvk_attr_baseline(LVK_BASELINE_NOISE, img, C, H, W, ao.seed, base);
        else {
            float *file;
            st = cli_load_image(baseline, C, H, W, &pixels, &file);
            if (st == LVK_OK) {
                memcpy(base, file, (size_t)C * H * W * sizeof *base);
                free(file);
            }
        }
        if (st != LVK_OK)
            goto done;
        ao.baseline = base;
    }
    if ((st = lvk_attr_compute(m, &ao, img, &res)) != LVK_OK)
        goto done;
    double secs = cli_now() - t0;

    if (res.target >= 0)
        printf("%s: %s of class %d%s%s%s, score %.4f\n", image_path, lvk_attr_method_name(ao.method),
               res.target, res.target < nlabels ? " (" : "",
               res.target < nlabels ? labels[res.target] : "", res.target < nlabels ? ")" : "", res.value);
    else
        printf("%s: %s of \"%s\", value %.4f\n", image_path, lvk_attr_method_name(ao.method),
               ao.objective, res.value);
    if (ao.method == LVK_ATTR_IG)
        printf("  integrated gradients, %d steps from a %s baseline: f(baseline) %.4f, change %.4f, "
               "sum of attributions %.4f, completeness error %.2f%%\n", res.steps, baseline,
               res.baseline_value, res.value - res.baseline_value, res.attr_sum,
               100 * res.completeness);
    if (ao.method == LVK_ATTR_GRADCAM)
        printf("  Grad-CAM at '%s' (%d x %d)\n", res.layer, res.cam_h, res.cam_w);
    /* Passes fill up to res.batch images; the last of a run is often short. */
    printf("  %d forward+backward pass%s, %d image%s", res.passes, res.passes == 1 ? "" : "es",
           res.images, res.images == 1 ? "" : "s");
    if (res.passes > 1)
        printf(" (up to %d a pass)", res.batch);
    printf(", %.1f s\n", secs);

    if ((st = lvk_attr_render(res.map, H, W, overlay ? img : NULL, C, cmap, (float)clip, &pic)) != LVK_OK)
        goto done;
    if ((st = lvk_image_zoom_in_place(&pic, zoom)) != LVK_OK)
        goto done;
    if ((st = lvk_png_write(out, &pic)) != LVK_OK)
        goto done;
    printf("  -> %s\n", out);
    if (npy) {
        if (res.attr)
            st = lvk_npy_write(npy, res.attr, 3, (const int64_t[]){C, H, W});
        else
            st = lvk_npy_write(npy, res.map, 2, (const int64_t[]){H, W});
        if (st != LVK_OK)
            goto done;
        printf("  -> %s\n", npy);
    }
    status = 0;
done:
    if (st != LVK_OK)
        cli_error(st, NULL);
    lvk_image_free(&pic);
    lvk_attr_result_free(&res);
    free(img);
    free(base);
    lvk_labels_free(labels, nlabels);
    lvk_model_destroy(m);
    lvk_ctx_destroy(ctx);
    return status;
}
