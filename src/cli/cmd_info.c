/* lucidvk info: every tensor of a model, and which ones are worth
 * visualizing (4-D activations with their channel counts). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const char *const k_visual_ops[] = {
    "Conv", "Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSwish", "HardSigmoid",
    "Concat", "MaxPool", "AveragePool", "Add", "Mul", "BatchNormalization", "LRN",
};

static bool visual(const struct lvk_tensor_info *t)
{
    if (t->ndim != 4 || t->is_const)
        return false;
    for (size_t i = 0; i < sizeof k_visual_ops / sizeof k_visual_ops[0]; i++)
        if (!strcmp(t->op_type, k_visual_ops[i]))
            return true;
    return false;
}

int cmd_info(int argc, char **argv)
{
    static const struct option opts[] = {
        {"device", required_argument, 0, 'd'}, {"all", no_argument, 0, 'a'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *device = NULL;
    bool all = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:ah", opts, NULL)) != -1) {
        switch (c) {
        case 'd': device = optarg; break;
        case 'a': all = true; break;
        case 'h':
            printf("usage: lucidvk info MODEL.onnx [--all] [--device N|NAME]\n\n"
                   "Prints each tensor a model computes: name, op, shape. Tensors marked '*' are\n"
                   "activations useful for visualization (layer names for -l), with their\n"
                   "channel count. --all also lists weights and folded constants.\n");
            return 0;
        default: return 2;
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("info", "expected one MODEL.onnx");
    const char *path = argv[optind];
    lvk_ctx_t *ctx;
    lvk_status st = cli_open(device, &ctx);
    if (st != LVK_OK)
        return cli_error(st, NULL);
    lvk_model_t *m;
    st = lvk_model_load(ctx, path, NULL, &m);
    if (st != LVK_OK) {
        lvk_ctx_destroy(ctx);
        return cli_error(st, NULL);
    }
    printf("%s: input '%s'\n", path, lvk_model_input_name(m));
    printf("  %-48s %-20s %s\n", "tensor", "op", "shape");
    int nvis = 0;
    for (int i = 0; i < lvk_model_tensor_count(m); i++) {
        struct lvk_tensor_info t;
        lvk_model_tensor_at(m, i, &t);
        if (t.is_const && !all)
            continue;
        char shape[128];
        size_t k = (size_t)snprintf(shape, sizeof shape, "[");
        for (int d = 0; d < t.ndim; d++)
            k += (size_t)snprintf(shape + k, sizeof shape - k, d ? ", %lld" : "%lld", (long long)t.shape[d]);
        snprintf(shape + k, sizeof shape - k, "]");
        bool vis = visual(&t);
        nvis += vis;
        printf("%c %-48s %-20s %s", vis ? '*' : ' ', t.name, t.op_type[0] ? t.op_type : "(input)", shape);
        if (vis)
            printf("  %lld channels", (long long)t.shape[1]);
        printf("\n");
    }
    printf("%d tensors marked '*' can be visualized (pass the name to -l).\n", nvis);
    lvk_model_destroy(m);
    lvk_ctx_destroy(ctx);
    return 0;
}
