/* lucidvk: neural-network interpretability on Vulkan compute. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} k_commands[] = {
    {"devices", cmd_devices, "list Vulkan devices and their compute limits"},
    {"info", cmd_info, "list a model's tensors (names, ops, shapes) and what to visualize"},
    {"classify", cmd_classify, "classify PNG images"},
    {"forward", cmd_forward, "write tensors and input gradients as .npy files"},
    {"render", cmd_render, "feature visualization: optimise images so a unit fires"},
    {"grid", cmd_grid, "neuron interaction grid: every pair of neurons rendered together"},
    {"sweep", cmd_sweep, "layer sweep: the same channels of several layers, one row each"},
    {"atlas", cmd_atlas, "every channel of chosen layers as a static site; resumable, sharded"},
    {"atlas-merge", cmd_atlas_merge, "combine atlas shards into one site"},
    {"response-map", cmd_response_map, "neural response maps: fit a map of neurons, plot how images light it up"},
    {"attribute", cmd_attribute, "attribution heat maps: saliency, guided, ig, smoothgrad, gradcam"},
    {"features", cmd_features, "feature maps of a layer for an image, as a labelled grid"},
    {"kernels", cmd_kernels, "conv kernels as images, ranked by orientation, frequency, colour"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: lucidvk COMMAND [options]   (lucidvk COMMAND --help for details)\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++)
        fprintf(f, "  %-10s %s\n", k_commands[i].name, k_commands[i].help);
    fprintf(f, "\nThe device is chosen with --device N|NAME or $LVK_DEVICE (default: discrete GPU,\n"
               "then integrated, virtual, CPU). Without a GPU, Mesa's lavapipe runs everything on\n"
               "the CPU (apt-get install mesa-vulkan-drivers).\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++)
        if (!strcmp(argv[1], k_commands[i].name))
            return k_commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "lucidvk: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
