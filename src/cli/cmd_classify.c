/* lucidvk classify: top-K classes of PNG images. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "lvk_util.h"

static void help(void)
{
    printf("usage: lucidvk classify MODEL.onnx IMAGE.png... [options]\n\n"
           "Prints the top classes of each image (resized to the model's input size).\n"
           "  --top K            classes to print (default 5)\n"
           "  --output NAME      output tensor holding the scores (default: the first graph output)\n"
           "  --device N|NAME    Vulkan device (see 'lucidvk devices')\n"
           CLI_PREPROC_HELP);
}

struct ranked {
    int index;
    float score;
};

static int by_score(const void *a, const void *b)
{
    float x = ((const struct ranked *)a)->score, y = ((const struct ranked *)b)->score;
    return (x < y) - (x > y);
}

int cmd_classify(int argc, char **argv)
{
    static const struct option opts[] = {
        {"top", required_argument, 0, 'k'}, {"output", required_argument, 0, 'O'},
        {"device", required_argument, 0, 'd'}, {"help", no_argument, 0, 'h'},
        CLI_PREPROC_OPTIONS, {0, 0, 0, 0}};
    struct cli_preproc pre = {0};
    lvk_preproc_default(&pre.p);
    const char *device = NULL, *output = NULL;
    int top = 5, c, r;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:d:h", opts, NULL)) != -1) {
        if ((r = cli_preproc_parse(&pre, c, optarg)) != 0) {
            if (r < 0)
                return 2;
            continue;
        }
        switch (c) {
        case 'k': if ((r = cli_int("classify", "--top", optarg, 1, INT_MAX, &top))) return r; break;
        case 'O': output = optarg; break;
        case 'd': device = optarg; break;
        case 'h': help(); return 0;
        default: return 2;
        }
    }
    if (argc - optind < 2)
        return cli_usage_error("classify", "expected MODEL.onnx and at least one IMAGE.png");
    const char *path = argv[optind];
    struct lvk_preproc pp;
    lvk_status st = cli_preproc_resolve(&pre, path, &pp);
    if (st != LVK_OK)
        return cli_error(st, NULL);
    char **labels = NULL;
    int nlabels = 0;
    if (pp.labels[0] && (st = lvk_labels_read(pp.labels, &labels, &nlabels)) != LVK_OK)
        return cli_error(st, NULL);

    lvk_ctx_t *ctx = NULL;
    lvk_model_t *m = NULL;
    float *scores = NULL;
    struct ranked *rank = NULL;
    int status = 1;
    if ((st = cli_open(device, &ctx)) != LVK_OK)
        goto done;
    const char *outs[1] = {output};
    struct lvk_model_opts mo = {.outputs = output ? outs : NULL, .noutputs = output ? 1 : 0};
    if ((st = lvk_model_load(ctx, path, &mo, &m)) != LVK_OK)
        goto done;
    const char *in = lvk_model_input_name(m);
    struct lvk_tensor_info ti, to;
    if ((st = cli_image_input(m, path, &ti)) != LVK_OK)
        goto done;
    if (!output)
        output = lvk_model_output_name(m, 0);
    if ((st = lvk_model_tensor_find(m, output, &to)) != LVK_OK)
        goto done;
    size_t ncls = 1;
    for (int d = 0; d < to.ndim; d++)
        ncls *= (size_t)to.shape[d];
    bool softmaxed = !strcmp(to.op_type, "Softmax");
    scores = malloc(ncls * sizeof *scores);
    rank = malloc(ncls * sizeof *rank);
    if (!scores || !rank) {
        st = lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
        goto done;
    }
    int ch = (int)ti.shape[1], h = (int)ti.shape[2], w = (int)ti.shape[3];
    for (int i = optind + 1; i < argc; i++) {
        float *img;
        if ((st = cli_load_image(argv[i], ch, h, w, &pp, &img)) != LVK_OK)
            goto done;
        st = lvk_model_set_input(m, in, img, (size_t)ch * h * w);
        free(img);
        if (st == LVK_OK) st = lvk_model_forward(m);
        if (st == LVK_OK) st = lvk_model_read(m, output, scores, ncls);
        if (st != LVK_OK)
            goto done;
        double mx = -INFINITY, sum = 0;
        for (size_t k = 0; k < ncls; k++)
            mx = fmax(mx, scores[k]);
        for (size_t k = 0; k < ncls; k++)
            sum += exp(scores[k] - mx);
        for (size_t k = 0; k < ncls; k++) {
            rank[k].index = (int)k;
            rank[k].score = scores[k];
        }
        qsort(rank, ncls, sizeof *rank, by_score);
        printf("%s\n", argv[i]);
        for (int k = 0; k < top && k < (int)ncls; k++) {
            double p = softmaxed ? rank[k].score : exp(rank[k].score - mx) / sum;
            const char *label = rank[k].index < nlabels ? labels[rank[k].index] : "";
            printf("  %5d  %-32s %.4f  (%s %.4f)\n", rank[k].index, label, p,
                   softmaxed ? "prob" : "logit", rank[k].score);
        }
    }
    status = 0;
done:
    if (st != LVK_OK)
        cli_error(st, NULL);
    free(scores);
    free(rank);
    lvk_labels_free(labels, nlabels);
    lvk_model_destroy(m);
    lvk_ctx_destroy(ctx);
    return status;
}
