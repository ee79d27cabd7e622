/* lucidvk kernels: a conv layer's kernels as pictures, ranked by preferred
 * orientation, spatial frequency, colour or norm (analysis/kernels.h).
 * A first layer is measured from its weights alone, with no device; a later
 * one from the model's responses to gratings. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/kernels.h"
#include "cli/cli.h"
#include "nn/onnx.h"
#include "lvk_util.h"

static void help(void)
{
    printf("usage: lucidvk kernels MODEL.onnx [-l LAYER] [--rank R] [--json FILE] -o kernels.png\n\n"
           "Draws every kernel of a conv layer (weights upscaled, 0 at mid-gray; RGB when the\n"
           "layer sees 3 channels, else the input channel with the most energy) in rank order.\n"
           "  -l, --layer NAME   a Conv node, its output, or a tensor computed from it through\n"
           "                     elementwise ops (e.g. its Relu); default: the first Conv.\n"
           "                     Gratings measure this tensor (a Conv node: its output)\n"
           "  --rank R           orientation (default): preferred orientation, ascending, with\n"
           "                       kernels of selectivity < %.2f last;\n"
           "                     frequency: spatial frequency, ascending;\n"
           "                     colour: share of non-achromatic energy, descending;\n"
           "                     norm: L2 norm, descending\n"
           "  --json FILE        each kernel's measures (below)\n"
           "  --zoom N           upscaling (default: to about 48 pixels)\n"
           "  --shared-scale     one weight scale for the whole layer (default: per kernel)\n"
           "  -o, --out FILE     the PNG to write\n"
           "  --method M         where orientation, selectivity and frequency come from:\n"
           "                     spectrum: each kernel's 2-D power spectrum, the power-weighted\n"
           "                       mean of the doubled angle of the frequency vector;\n"
           "                     gratings: the model's responses to full-contrast sinusoidal\n"
           "                       gratings (directions every 180/A degrees, half-octave\n"
           "                       frequencies from 0.354 cycles/pixel down to two cycles across\n"
           "                       the image, P phases), through the model's preprocessing. A\n"
           "                       channel's response r is the mean over phases and the central\n"
           "                       half of its map of each unit rectified at 0 (the border sees\n"
           "                       padding; the average covers where the stripes fall). At the\n"
           "                       frequency with the strongest response, orientation is half\n"
           "                       the angle of sum r(theta) e^{2 i theta} and selectivity its\n"
           "                       length over sum r, as for the spectrum. Colour, opponency\n"
           "                       and norm stay those of the weights;\n"
           "                     auto (default): spectrum when the conv's input is the image,\n"
           "                       gratings past the first layer, where weights do not live\n"
           "                       in image space\n"
           "  --angles A         grating directions over 180 degrees (default 36)\n"
           "  --phases P         grating phases (default 8)\n"
           "  --batch N          gratings per forward pass (default: as many as keep the\n"
           "                     activations within 256 MiB, at most 32)\n"
           "  --device N|NAME    Vulkan device (gratings)\n"
           CLI_PREPROC_HELP
           "Measures (x to the right, y up; angles counterclockwise from +x):\n"
           "  orientation        0-180 degrees: the direction across the kernel's stripes (its\n"
           "                     dominant spatial-frequency vector); the stripes run at +90\n"
           "  selectivity        0 for a kernel with no preferred orientation (a blob, a\n"
           "                     centre-surround) up to 1 for a long grating\n"
           "  frequency          power-weighted mean spatial frequency in cycles/pixel (stripes\n"
           "                     L pixels apart give about 1/L)\n"
           "  colour             share of the kernel's energy that is not gray: 0 when the\n"
           "                     colour channels are equal, 1 when they sum to 0 at every tap\n"
           "  opponency          minus the cosine between the two most opposed colour\n"
           "                     channels, at least 0: 1 for an exact red-green kernel\n"
           "  norm               the L2 norm of the weights\n"
           "  Colour and opponency are 0 unless the layer sees 3 channels.\n",
           (double)LVK_KERNEL_MIN_SELECTIVITY);
}

int cmd_kernels(int argc, char **argv)
{
    static const struct option opts[] = {
        {"layer", required_argument, 0, 'l'}, {"rank", required_argument, 0, 'r'},
        {"json", required_argument, 0, 'j'}, {"zoom", required_argument, 0, 'z'},
        {"shared-scale", no_argument, 0, 's'}, {"out", required_argument, 0, 'o'},
        {"method", required_argument, 0, 'm'}, {"angles", required_argument, 0, 'A'},
        {"phases", required_argument, 0, 'P'}, {"batch", required_argument, 0, 'b'},
        {"device", required_argument, 0, 'd'}, {"help", no_argument, 0, 'h'},
        CLI_PREPROC_OPTIONS, {0, 0, 0, 0}};
    const char *layer = NULL, *out = NULL, *json = NULL, *rank = "orientation", *method = "auto";
    const char *device = NULL;
    struct cli_preproc pre = {0};
    lvk_preproc_default(&pre.p);
    struct lvk_grating_opts go = {0};
    int zoom = 0, shared = 0, c, r;
    optind = 1;
    while ((c = getopt_long(argc, argv, "l:o:h", opts, NULL)) != -1) {
        if ((r = cli_preproc_parse(&pre, c, optarg)) != 0) {
            if (r < 0)
                return 2;
            continue;
        }
        switch (c) {
        case 'l': layer = optarg; break;
        case 'r': rank = optarg; break;
        case 'j': json = optarg; break;
        case 'z': if ((r = cli_int("kernels", "--zoom", optarg, 1, CLI_MAX_ZOOM, &zoom))) return r; break;
        case 's': shared = 1; break;
        case 'o': out = optarg; break;
        case 'm': method = optarg; break;
        case 'A': if ((r = cli_int("kernels", "--angles", optarg, 4, INT_MAX, &go.angles))) return r; break;
        case 'P': if ((r = cli_int("kernels", "--phases", optarg, 1, INT_MAX, &go.phases))) return r; break;
        case 'b': if ((r = cli_int("kernels", "--batch", optarg, 1, INT_MAX, &go.batch))) return r; break;
        case 'd': device = optarg; break;
        case 'h': help(); return 0;
        default: return 2;
        }
    }
    if (optind != argc - 1 || (!out && !json))
        return cli_usage_error("kernels", "expected MODEL.onnx and -o FILE.png and/or --json FILE");
    if (strcmp(method, "auto") && strcmp(method, "spectrum") && strcmp(method, "gratings"))
        return cli_usage_error("kernels", "--method is auto, spectrum or gratings, not '%s'", method);
    enum lvk_kernel_rank by;
    lvk_status st = lvk_kernel_rank_parse(rank, &by);
    if (st != LVK_OK)
        return cli_error(st, NULL);

    const char *path = argv[optind];
    struct lvk_model *m = NULL;
    lvk_ctx_t *ctx = NULL;
    struct lvk_conv_weights cw = {0};
    struct lvk_kernel_stats *stats = NULL;
    int *order = NULL, status = 1;
    struct lvk_image img = {0};
    /* The graph as parsed, unplanned: weights are initializers. */
    struct lvk_model_opts mo = {0};
    if ((st = lvk_onnx_load_graph(NULL, path, &mo, NULL, 0, &m)) != LVK_OK)
        goto done;
    if ((st = lvk_conv_weights_find(m, layer, &cw)) != LVK_OK)
        goto done;
    stats = lvk_calloc((size_t)cw.cout, sizeof *stats);
    order = lvk_calloc((size_t)cw.cout, sizeof *order);
    if (!stats || !order) {
        st = LVK_ERR_HOST_OOM;
        goto done;
    }
    const size_t per = (size_t)cw.cin * cw.kh * cw.kw;
    for (int k = 0; k < cw.cout; k++)
        if ((st = lvk_kernel_stats(cw.w + k * per, cw.cin, cw.kh, cw.kw, &stats[k])) != LVK_OK)
            goto done;
    enum lvk_orient_method how = !strcmp(method, "gratings") || (!strcmp(method, "auto") && !cw.sees_image)
                                     ? LVK_ORIENT_GRATINGS : LVK_ORIENT_SPECTRUM;
    /* The tensor the user named, else what the Conv produces. */
    const char *measured = layer && lvk_graph_find(m, layer) >= 0 ? layer : cw.output;
    struct lvk_preproc pp;
    if (how == LVK_ORIENT_GRATINGS &&
        ((st = cli_preproc_resolve(&pre, path, &pp)) != LVK_OK || (st = cli_open(device, &ctx)) != LVK_OK ||
         (st = lvk_grating_stats(ctx, path, measured, &pp, &go, stats, cw.cout)) != LVK_OK))
        goto done;
    const int dead = lvk_kernels_mark_dead(stats, cw.cout);
    lvk_kernels_rank(stats, cw.cout, by, order);
    printf("%s: Conv '%s', weights '%s' [%d, %d, %d, %d], ranked by %s\n", path, cw.node, cw.tensor,
           cw.cout, cw.cin, cw.kh, cw.kw, lvk_kernel_rank_name(by));
    if (dead)
        printf("  %d dead kernel%s (norm below %g of the largest): measures 0\n", dead,
               dead == 1 ? "" : "s", (double)LVK_KERNEL_DEAD);
    if (how == LVK_ORIENT_GRATINGS)
        printf("  orientation from gratings: responses of '%s' on %s\n", measured, lvk_ctx_device(ctx)->name);
    else
        printf("  orientation from the kernels' power spectra\n");
    printf("  rank kernel orientation selectivity frequency colour opponency   norm\n");
    for (int r = 0; r < cw.cout; r++) {
        const struct lvk_kernel_stats *s = &stats[order[r]];
        printf("  %4d %6d %9.1f   %9.3f %9.3f %6.3f %9.3f %6.3g\n", r, order[r], s->orientation,
               s->selectivity, s->frequency, s->colour, s->opponency, s->norm);
    }
    if (out) {
        if ((st = lvk_kernels_render(&cw, order, cw.cout, stats, by, zoom, shared, &img)) != LVK_OK ||
            (st = lvk_png_write(out, &img)) != LVK_OK)
            goto done;
        printf("  -> %s\n", out);
    }
    if (json) {
        if ((st = lvk_kernels_write_json(json, &cw, stats, order, by, how, measured)) != LVK_OK)
            goto done;
        printf("  -> %s\n", json);
    }
    status = 0;
done:
    if (st != LVK_OK)
        cli_error(st, NULL);
    lvk_image_free(&img);
    free(stats);
    free(order);
    lvk_conv_weights_free(&cw);
    lvk_model_destroy(m);
    lvk_ctx_destroy(ctx);
    return status;
}
