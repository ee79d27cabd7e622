/* lucidvk devices: what Vulkan sees, with the limits kernels are chosen by. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

int cmd_devices(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: lucidvk devices\n\nLists every Vulkan device: index, name, type, driver, "
               "Vulkan version,\ndevice-local memory, subgroup size, shared memory per workgroup "
               "and\nworkgroup limits, and how many invocations it holds in flight where the driver\n"
               "says. Pick one with --device N|NAME or $LVK_DEVICE.\n");
        return 0;
    }
    struct lvk_device_info *d;
    int n;
    lvk_status st = lvk_devices_list(&d, &n);
    if (st != LVK_OK)
        return cli_error(st, NULL);
    for (int i = 0; i < n; i++) {
        printf("%d: %s\n", d[i].index, d[i].name);
        printf("   type %s, driver %s, Vulkan %u.%u.%u\n", lvk_device_type_str(d[i].type), d[i].driver,
               (d[i].api_version >> 22) & 0x7f, (d[i].api_version >> 12) & 0x3ff,
               d[i].api_version & 0xfff);
        printf("   device-local memory %.1f GiB, subgroup %u, shared memory %u KiB, workgroup max "
               "%u invocations (%u x %u x %u)\n",
               (double)d[i].device_local_bytes / (1 << 30), d[i].subgroup_size,
               d[i].max_shared_bytes / 1024, d[i].max_workgroup_invocations,
               d[i].max_workgroup_size[0], d[i].max_workgroup_size[1], d[i].max_workgroup_size[2]);
        if (d[i].resident_invocations)
            printf("   %llu invocations in flight at most\n",
                   (unsigned long long)d[i].resident_invocations);
    }
    free(d);
    return 0;
}
