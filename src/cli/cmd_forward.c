/* lucidvk forward: tensors and input gradients as numpy files, the way
 * users (and lucid-vk's own tests) compare with PyTorch or onnxruntime. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "io/lvk_io.h"
#include "lvk_util.h"

static void help(void)
{
    printf("usage: lucidvk forward MODEL.onnx --input IMAGE.png|X.npy [--tensor NAME]...\n"
           "                      [--grad-of NAME:CH] -o DIR [options]\n\n"
           "Runs the model and writes each --tensor NAME to DIR/<file>.npy, where <file> is\n"
           "NAME with every character other than letters, digits, '.', '-' and '_' replaced\n"
           "by '_' (\"MobilenetV2/Conv/Relu6\" -> MobilenetV2_Conv_Relu6.npy). Without\n"
           "--tensor it writes the graph outputs (with --grad-of: that tensor).\n"
           "  --input FILE       a PNG (resized to the model's input and preprocessed) or a\n"
           "                     float .npy holding the input tensor as is (its shape sets the\n"
           "                     batch and size)\n"
           "  --grad-of NAME:CH  also write grad_input.npy: the gradient of the mean of\n"
           "                     channel CH of tensor NAME (over batch and positions) with\n"
           "                     respect to the input\n"
           "  -o, --out DIR      output folder (created)\n"
           "  --device N|NAME    Vulkan device\n"
           CLI_PREPROC_HELP);
}

static lvk_status write_tensor(lvk_model_t *m, const char *name, const char *dir)
{
    struct lvk_tensor_info t;
    LVK_CHECK(lvk_model_tensor_find(m, name, &t));
    size_t n = 1;
    for (int d = 0; d < t.ndim; d++)
        n *= (size_t)t.shape[d];
    float *data = malloc(n * sizeof *data);
    if (!data)
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    lvk_status st = lvk_model_read(m, name, data, n);
    char path[2048];
    cli_tensor_path(dir, name, ".npy", path, sizeof path);
    if (st == LVK_OK)
        st = lvk_npy_write(path, data, t.ndim, t.shape);
    if (st == LVK_OK)
        printf("%s -> %s\n", name, path);
    free(data);
    return st;
}

int cmd_forward(int argc, char **argv)
{
    static const struct option opts[] = {
        {"input", required_argument, 0, 'i'}, {"tensor", required_argument, 0, 't'},
        {"grad-of", required_argument, 0, 'g'}, {"out", required_argument, 0, 'o'},
        {"device", required_argument, 0, 'd'}, {"help", no_argument, 0, 'h'},
        CLI_PREPROC_OPTIONS, {0, 0, 0, 0}};
    struct cli_preproc pre = {0};
    lvk_preproc_default(&pre.p);
    const char *device = NULL, *input = NULL, *dir = NULL, *grad_of = NULL;
    const char **tensors = calloc((size_t)argc + 2, sizeof *tensors);
    int ntensors = 0, c, r;
    if (!tensors)
        return 1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "i:t:g:o:d:h", opts, NULL)) != -1) {
        if ((r = cli_preproc_parse(&pre, c, optarg)) != 0) {
            if (r < 0)
                return 2;
            continue;
        }
        switch (c) {
        case 'i': input = optarg; break;
        case 't': tensors[ntensors++] = optarg; break;
        case 'g': grad_of = optarg; break;
        case 'o': dir = optarg; break;
        case 'd': device = optarg; break;
        case 'h': help(); free(tensors); return 0;
        default: free(tensors); return 2;
        }
    }
    if (optind != argc - 1 || !input || !dir) {
        free(tensors);
        return cli_usage_error("forward", "expected MODEL.onnx, --input FILE and -o DIR");
    }
    const char *path = argv[optind];
    char grad_name[1024] = "";
    int grad_ch = -1;
    if (grad_of) {
        const char *colon = strrchr(grad_of, ':');
        if (!colon || colon == grad_of) {
            free(tensors);
            return cli_usage_error("forward", "--grad-of expects NAME:CHANNEL, got '%s'", grad_of);
        }
        if ((r = cli_int("forward", "the channel of --grad-of NAME:CHANNEL", colon + 1, 0, INT_MAX, &grad_ch))) {
            free(tensors);
            return r;
        }
        snprintf(grad_name, sizeof grad_name, "%.*s", (int)(colon - grad_of), grad_of);
    }

    lvk_ctx_t *ctx = NULL;
    lvk_model_t *m = NULL;
    struct lvk_npy npy = {0};
    float *x = NULL, *seed = NULL, *grad = NULL;
    struct lvk_preproc pp;
    lvk_status st = cli_preproc_resolve(&pre, path, &pp);
    int status = 1;
    if (st != LVK_OK)
        goto done;
    size_t n = strlen(input);
    bool is_npy = n > 4 && !strcmp(input + n - 4, ".npy");
    struct lvk_model_opts mo = {.gradients = grad_of != NULL};
    if (is_npy) {
        if ((st = lvk_npy_read(input, &npy)) != LVK_OK)
            goto done;
        if (npy.ndim == 4) {
            mo.batch = (int)npy.shape[0];
            mo.height = (int)npy.shape[2];
            mo.width = (int)npy.shape[3];
        }
    }
    /* Requested tensors plus the gradient's target decide what runs. */
    const char **outs = calloc((size_t)ntensors + 2, sizeof *outs);
    if (!outs) {
        st = lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
        goto done;
    }
    int nouts = 0;
    for (int i = 0; i < ntensors; i++)
        outs[nouts++] = tensors[i];
    if (grad_of)
        outs[nouts++] = grad_name;
    mo.outputs = nouts ? outs : NULL;
    mo.noutputs = nouts;
    if ((st = cli_open(device, &ctx)) != LVK_OK || (st = lvk_model_load(ctx, path, &mo, &m)) != LVK_OK) {
        free(outs);
        goto done;
    }
    free(outs);
    const char *in = lvk_model_input_name(m);
    struct lvk_tensor_info ti;
    if ((st = lvk_model_tensor_find(m, in, &ti)) != LVK_OK)
        goto done;
    size_t nin = 1;
    for (int d = 0; d < ti.ndim; d++)
        nin *= (size_t)ti.shape[d];
    if (is_npy) {
        if (npy.count != nin) {
            st = lvk_fail(LVK_ERR_INVALID_ARG, "%s: %zu values, the model's input '%s' needs %zu",
                          input, npy.count, in, nin);
            goto done;
        }
        st = lvk_model_set_input(m, in, npy.data, nin);
    } else {
        if ((st = cli_load_input(m, path, input, &pp, &ti, &x)) != LVK_OK)
            goto done;
        /* A PNG fills every batch entry. */
        size_t one = nin / (size_t)ti.shape[0];
        float *all = malloc(nin * sizeof *all);
        if (!all) {
            st = lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
            goto done;
        }
        for (int64_t b = 0; b < ti.shape[0]; b++)
            memcpy(all + (size_t)b * one, x, one * sizeof *all);
        st = lvk_model_set_input(m, in, all, nin);
        free(all);
    }
    if (st == LVK_OK)
        st = lvk_model_forward(m);
    if (st != LVK_OK)
        goto done;
    mkdir(dir, 0755);
    /* Without --tensor: the graph outputs, or with --grad-of its tensor
     * (only what was asked for is computed). */
    if (ntensors == 0 && grad_of)
        st = write_tensor(m, grad_name, dir);
    else if (ntensors == 0)
        for (int i = 0; i < lvk_model_output_count(m) && st == LVK_OK; i++)
            st = write_tensor(m, lvk_model_output_name(m, i), dir);
    for (int i = 0; i < ntensors && st == LVK_OK; i++)
        st = write_tensor(m, tensors[i], dir);
    if (st != LVK_OK || !grad_of)
        goto finish;
    struct lvk_tensor_info tg;
    if ((st = lvk_model_tensor_find(m, grad_name, &tg)) != LVK_OK)
        goto done;
    if (tg.ndim < 2 || grad_ch >= tg.shape[1]) {
        st = lvk_fail(LVK_ERR_INVALID_ARG, "--grad-of: channel %d out of range: '%s' has %lld channels",
                      grad_ch, grad_name, tg.ndim >= 2 ? (long long)tg.shape[1] : 0LL);
        goto done;
    }
    size_t nt = 1, inner = 1;
    for (int d = 0; d < tg.ndim; d++)
        nt *= (size_t)tg.shape[d];
    for (int d = 2; d < tg.ndim; d++)
        inner *= (size_t)tg.shape[d];
    seed = calloc(nt, sizeof *seed);
    grad = malloc(nin * sizeof *grad);
    if (!seed || !grad) {
        st = lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
        goto done;
    }
    float w = 1.0f / (float)(inner * (size_t)tg.shape[0]);
    for (int64_t b = 0; b < tg.shape[0]; b++)
        for (size_t k = 0; k < inner; k++)
            seed[((size_t)b * (size_t)tg.shape[1] + (size_t)grad_ch) * inner + k] = w;
    if ((st = lvk_model_backward(m, grad_name, seed, nt, grad, nin)) != LVK_OK)
        goto done;
    char gpath[2048];
    snprintf(gpath, sizeof gpath, "%s/grad_input.npy", dir);
    if ((st = lvk_npy_write(gpath, grad, ti.ndim, ti.shape)) != LVK_OK)
        goto done;
    printf("d mean(%s[:, %d]) / d %s -> %s\n", grad_name, grad_ch, in, gpath);
finish:
    if (st == LVK_OK)
        status = 0;
done:
    if (st != LVK_OK)
        cli_error(st, NULL);
    free(tensors);
    free(x);
    free(seed);
    free(grad);
    lvk_npy_free(&npy);
    lvk_model_destroy(m);
    lvk_ctx_destroy(ctx);
    return status;
}
