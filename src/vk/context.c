/* Vulkan instance and device: discovery, selection, validation, and the
 * context that owns everything else on the device.
 *
 * Headless by design: no surface or swapchain extensions. The validation
 * layer is enabled on request (tests always ask), and every message it sends
 * is printed and counted, so a test can fail on any. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vk/lvk_vk.h"

static const char *const k_validation_layer = "VK_LAYER_KHRONOS_validation";

/* A GPU whose driver the loader finds but cannot load reads the same: on
 * an NVIDIA machine without the GLVND libraries, the loader skips
 * libGLX_nvidia with a reason only VK_LOADER_DEBUG shows. */
static const char k_no_device_help[] =
    "no Vulkan device found. On a machine without a GPU install Mesa's CPU driver "
    "(lavapipe): apt-get install mesa-vulkan-drivers. Where a GPU driver is installed, "
    "VK_LOADER_DEBUG=error shows why the Vulkan loader skipped it (NVIDIA's needs the "
    "GLVND libraries: apt-get install libglvnd0)";

const char *lvk_device_type_str(enum lvk_device_type t)
{
    switch (t) {
    case LVK_DEVICE_INTEGRATED: return "integrated";
    case LVK_DEVICE_DISCRETE: return "discrete";
    case LVK_DEVICE_VIRTUAL: return "virtual";
    case LVK_DEVICE_CPU: return "cpu";
    default: return "other";
    }
}

const char *lvk_vk_result_str(VkResult r)
{
    switch (r) {
#define R(x) case x: return #x;
    R(VK_SUCCESS) R(VK_NOT_READY) R(VK_TIMEOUT) R(VK_INCOMPLETE)
    R(VK_ERROR_OUT_OF_HOST_MEMORY) R(VK_ERROR_OUT_OF_DEVICE_MEMORY)
    R(VK_ERROR_INITIALIZATION_FAILED) R(VK_ERROR_DEVICE_LOST)
    R(VK_ERROR_MEMORY_MAP_FAILED) R(VK_ERROR_LAYER_NOT_PRESENT)
    R(VK_ERROR_EXTENSION_NOT_PRESENT) R(VK_ERROR_FEATURE_NOT_PRESENT)
    R(VK_ERROR_INCOMPATIBLE_DRIVER) R(VK_ERROR_TOO_MANY_OBJECTS)
    R(VK_ERROR_FORMAT_NOT_SUPPORTED) R(VK_ERROR_FRAGMENTED_POOL)
    R(VK_ERROR_OUT_OF_POOL_MEMORY) R(VK_ERROR_INVALID_SHADER_NV)
#undef R
    default: return "VK_ERROR_UNKNOWN";
    }
}

lvk_status lvk_vk_fail(VkResult r, const char *call, const char *file, int line)
{
    lvk_status s = LVK_ERR_VULKAN;
    if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY)
        s = LVK_ERR_DEVICE_OOM;
    else if (r == VK_ERROR_OUT_OF_HOST_MEMORY)
        s = LVK_ERR_HOST_OOM;
    if (s == LVK_ERR_DEVICE_OOM)
        return lvk_fail(s, "out of device memory (%s at %s:%d)", call, file, line);
    return lvk_fail(s, "%s failed: %s (%s:%d)", call, lvk_vk_result_str(r), file, line);
}

/* ---- discovery --------------------------------------------------------------- */

static lvk_status load_loader(void)
{
    static int loaded = 0;
    if (loaded)
        return LVK_OK;
    if (volkInitialize() != VK_SUCCESS)
        return lvk_fail(LVK_ERR_NO_DEVICE, "no Vulkan loader (libvulkan.so.1) found; "
                        "install libvulkan1 and a driver, e.g. apt-get install "
                        "libvulkan1 mesa-vulkan-drivers");
    loaded = 1;
    return LVK_OK;
}

static bool layer_available(const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0)
        return false;
    VkLayerProperties *props = calloc(n, sizeof *props);
    if (!props)
        return false;
    bool found = false;
    if (vkEnumerateInstanceLayerProperties(&n, props) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++)
            if (strcmp(props[i].layerName, name) == 0)
                found = true;
    free(props);
    return found;
}

static VKAPI_ATTR VkBool32 VKAPI_CALL on_validation(
    VkDebugUtilsMessageSeverityFlagBitsEXT severity, VkDebugUtilsMessageTypeFlagsEXT types,
    const VkDebugUtilsMessengerCallbackDataEXT *data, void *user)
{
    struct lvk_ctx *ctx = user;
    ctx->validation_messages++;
    fprintf(stderr, "lucidvk: validation %s: %s\n",
            (severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) ? "error" : "warning",
            data->pMessage);
    return VK_FALSE;
}

static lvk_status create_instance(struct lvk_ctx *ctx, bool validation)
{
    VkApplicationInfo app = {
        .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
        .pApplicationName = "lucid-vk",
        .pEngineName = "lucid-vk",
        .apiVersion = VK_API_VERSION_1_1,
    };
    const char *layers[1] = {k_validation_layer};
    const char *exts[1] = {VK_EXT_DEBUG_UTILS_EXTENSION_NAME};
    VkDebugUtilsMessengerCreateInfoEXT dbg = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = on_validation,
        .pUserData = ctx,
    };
    VkInstanceCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
        .pNext = validation ? &dbg : NULL,
        .pApplicationInfo = &app,
        .enabledLayerCount = validation ? 1 : 0,
        .ppEnabledLayerNames = layers,
        .enabledExtensionCount = validation ? 1 : 0,
        .ppEnabledExtensionNames = exts,
    };
    VkResult r = vkCreateInstance(&ci, NULL, &ctx->instance);
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER)
        return lvk_fail(LVK_ERR_NO_DEVICE, "%s", k_no_device_help);
    LVK_VK_CHECK(r);
    volkLoadInstanceOnly(ctx->instance);
    if (validation) {
        dbg.pNext = NULL;
        LVK_VK_CHECK(vkCreateDebugUtilsMessengerEXT(ctx->instance, &dbg, NULL, &ctx->messenger));
        ctx->validation_enabled = 1;
    }
    return LVK_OK;
}

static enum lvk_device_type map_type(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return LVK_DEVICE_INTEGRATED;
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return LVK_DEVICE_DISCRETE;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return LVK_DEVICE_VIRTUAL;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return LVK_DEVICE_CPU;
    default: return LVK_DEVICE_OTHER;
    }
}

static bool has_extension(VkPhysicalDevice pd, const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS || n == 0)
        return false;
    VkExtensionProperties *e = lvk_calloc(n, sizeof *e);
    bool found = false;
    if (e && vkEnumerateDeviceExtensionProperties(pd, NULL, &n, e) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++)
            found = !strcmp(e[i].extensionName, name);
    free(e);
    return found;
}

/* Fills the public description of a device, its driver id and, where
 * shuffle is not NULL, whether its compute shaders have subgroupShuffle. */
static void describe(VkPhysicalDevice pd, int index, struct lvk_device_info *info,
                     VkDriverId *driver_id, bool *shuffle)
{
    VkPhysicalDeviceSubgroupProperties sub = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceDriverProperties drv = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    VkPhysicalDeviceProperties2 p2 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &sub};
    VkPhysicalDeviceProperties base;
    vkGetPhysicalDeviceProperties(pd, &base);
    /* Driver properties are core in 1.2; ask only where the device has them. */
    if (base.apiVersion >= VK_API_VERSION_1_2)
        sub.pNext = &drv;
    /* Core counts, where the vendor's extension gives them. */
    VkPhysicalDeviceShaderSMBuiltinsPropertiesNV nv = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_SM_BUILTINS_PROPERTIES_NV};
    VkPhysicalDeviceShaderCorePropertiesAMD amd = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_CORE_PROPERTIES_AMD};
    void **tail = base.apiVersion >= VK_API_VERSION_1_2 ? &drv.pNext : &sub.pNext;
    if (has_extension(pd, VK_NV_SHADER_SM_BUILTINS_EXTENSION_NAME)) {
        *tail = &nv;
        tail = &nv.pNext;
    }
    if (has_extension(pd, VK_AMD_SHADER_CORE_PROPERTIES_EXTENSION_NAME))
        *tail = &amd;
    vkGetPhysicalDeviceProperties2(pd, &p2);
    const VkPhysicalDeviceProperties *p = &p2.properties;

    memset(info, 0, sizeof *info);
    info->index = index;
    snprintf(info->name, sizeof info->name, "%s", p->deviceName);
    info->type = map_type(p->deviceType);
    if (base.apiVersion >= VK_API_VERSION_1_2)
        snprintf(info->driver, sizeof info->driver, "%.120s %.120s", drv.driverName, drv.driverInfo);
    else
        snprintf(info->driver, sizeof info->driver, "driver version 0x%x", p->driverVersion);
    *driver_id = base.apiVersion >= VK_API_VERSION_1_2 ? drv.driverID : 0;
    info->api_version = p->apiVersion;
    info->subgroup_size = sub.subgroupSize;
    if (shuffle)
        *shuffle = (sub.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                   (sub.supportedOperations & VK_SUBGROUP_FEATURE_SHUFFLE_BIT);
    info->max_shared_bytes = p->limits.maxComputeSharedMemorySize;
    info->max_workgroup_invocations = p->limits.maxComputeWorkGroupInvocations;
    for (int i = 0; i < 3; i++)
        info->max_workgroup_size[i] = p->limits.maxComputeWorkGroupSize[i];
    if (nv.shaderSMCount)
        info->resident_invocations =
            (uint64_t)nv.shaderSMCount * nv.shaderWarpsPerSM * sub.subgroupSize;
    else if (amd.shaderEngineCount)
        info->resident_invocations = (uint64_t)amd.shaderEngineCount *
                                     amd.shaderArraysPerEngineCount *
                                     amd.computeUnitsPerShaderArray * amd.simdPerComputeUnit *
                                     amd.wavefrontsPerSimd * amd.wavefrontSize;

    VkPhysicalDeviceMemoryProperties mem;
    vkGetPhysicalDeviceMemoryProperties(pd, &mem);
    for (uint32_t h = 0; h < mem.memoryHeapCount; h++)
        if ((mem.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) &&
            mem.memoryHeaps[h].size > info->device_local_bytes)
            info->device_local_bytes = mem.memoryHeaps[h].size;
}

static lvk_status enumerate(VkInstance inst, VkPhysicalDevice **pds, uint32_t *n)
{
    *n = 0;
    *pds = NULL;
    LVK_VK_CHECK(vkEnumeratePhysicalDevices(inst, n, NULL));
    if (*n == 0)
        return lvk_fail(LVK_ERR_NO_DEVICE, "%s", k_no_device_help);
    *pds = lvk_calloc(*n, sizeof **pds);
    if (!*pds)
        return LVK_ERR_HOST_OOM;
    VkResult r = vkEnumeratePhysicalDevices(inst, n, *pds);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) {
        free(*pds);
        *pds = NULL;
        LVK_VK_CHECK(r);
    }
    return LVK_OK;
}

lvk_status lvk_devices_list(struct lvk_device_info **infos, int *count)
{
    *infos = NULL;
    *count = 0;
    LVK_CHECK(load_loader());
    struct lvk_ctx tmp = {0};
    LVK_CHECK(create_instance(&tmp, false));
    VkPhysicalDevice *pds = NULL;
    uint32_t n = 0;
    lvk_status st = enumerate(tmp.instance, &pds, &n);
    if (st == LVK_OK) {
        *infos = lvk_calloc(n, sizeof **infos);
        if (!*infos) {
            st = LVK_ERR_HOST_OOM;
        } else {
            for (uint32_t i = 0; i < n; i++) {
                VkDriverId id;
                describe(pds[i], (int)i, &(*infos)[i], &id, NULL);
            }
            *count = (int)n;
        }
    }
    free(pds);
    vkDestroyInstance(tmp.instance, NULL);
    return st;
}

/* Discrete, then integrated, then virtual, then CPU. */
static int type_rank(enum lvk_device_type t)
{
    switch (t) {
    case LVK_DEVICE_DISCRETE: return 4;
    case LVK_DEVICE_INTEGRATED: return 3;
    case LVK_DEVICE_VIRTUAL: return 2;
    case LVK_DEVICE_CPU: return 1;
    default: return 0;
    }
}

static bool is_number(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

static lvk_status pick_device(struct lvk_ctx *ctx, const char *want)
{
    VkPhysicalDevice *pds;
    uint32_t n;
    LVK_CHECK(enumerate(ctx->instance, &pds, &n));
    int best = -1, best_rank = -1;
    for (uint32_t i = 0; i < n; i++) {
        struct lvk_device_info info;
        VkDriverId id;
        describe(pds[i], (int)i, &info, &id, NULL);
        bool match;
        if (want && is_number(want))
            match = (uint32_t)atoi(want) == i;
        else if (want)
            match = strcasestr(info.name, want) != NULL;
        else
            match = true;
        if (match && type_rank(info.type) > best_rank) {
            best = (int)i;
            best_rank = type_rank(info.type);
        }
    }
    if (best < 0) {
        free(pds);
        return lvk_fail(LVK_ERR_NOT_FOUND,
                        "no Vulkan device matches '%s' (%u device%s; see 'lucidvk devices')",
                        want, n, n == 1 ? "" : "s");
    }
    ctx->phys = pds[best];
    free(pds);
    VkDriverId id;
    bool shuffle;
    describe(ctx->phys, best, &ctx->info, &id, &shuffle);
    ctx->is_lavapipe = id == VK_DRIVER_ID_MESA_LLVMPIPE || strstr(ctx->info.name, "llvmpipe");
    /* The texel convolution declares subgroupShuffle. Mesa 25.0's lavapipe
     * at 16 lanes (LP_NATIVE_VECTOR_WIDTH=512) JITs it wrongly, worse as its
     * unrolled body grows; Mesa 22 at 16 lanes and Mesa 25 at 8 run the same
     * SPIR-V right. Where it cannot run, the classic kernel does. */
    const char *mesa = strstr(ctx->info.driver, "Mesa ");
    const bool wide_mesa25 = ctx->is_lavapipe && mesa && atoi(mesa + 5) >= 25 &&
                             ctx->info.subgroup_size > 8;
    ctx->texel_conv = shuffle && !wide_mesa25;
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(ctx->phys, &p);
    ctx->limits = p.limits;
    ctx->timestamps = p.limits.timestampComputeAndGraphics != 0;
    vkGetPhysicalDeviceMemoryProperties(ctx->phys, &ctx->mem);
    VkMemoryPropertyFlags uni = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT |
                                VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    /* Unified memory only counts on integrated/CPU devices: a discrete GPU's
     * small host-visible BAR window is no place for the model's arena. */
    if (ctx->info.type == LVK_DEVICE_CPU || ctx->info.type == LVK_DEVICE_INTEGRATED)
        for (uint32_t i = 0; i < ctx->mem.memoryTypeCount; i++)
            if ((ctx->mem.memoryTypes[i].propertyFlags & uni) == uni)
                ctx->unified_memory = true;
    return LVK_OK;
}

static lvk_status create_device(struct lvk_ctx *ctx)
{
    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(ctx->phys, &nq, NULL);
    VkQueueFamilyProperties *qf = lvk_calloc(nq, sizeof *qf);
    if (!qf)
        return LVK_ERR_HOST_OOM;
    vkGetPhysicalDeviceQueueFamilyProperties(ctx->phys, &nq, qf);
    int fam = -1;
    /* Prefer a compute queue without graphics (async compute on GPUs), else any. */
    for (uint32_t i = 0; i < nq && fam < 0; i++)
        if ((qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && !(qf[i].queueFlags & VK_QUEUE_GRAPHICS_BIT))
            fam = (int)i;
    for (uint32_t i = 0; i < nq && fam < 0; i++)
        if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT)
            fam = (int)i;
    if (fam >= 0 && qf[fam].timestampValidBits == 0)
        ctx->timestamps = false;
    free(qf);
    if (fam < 0)
        return lvk_fail(LVK_ERR_NO_DEVICE, "device '%s' has no compute queue", ctx->info.name);
    ctx->queue_family = (uint32_t)fam;

    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
        .queueFamilyIndex = ctx->queue_family,
        .queueCount = 1,
        .pQueuePriorities = &prio,
    };
    VkDeviceCreateInfo dci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
        .queueCreateInfoCount = 1,
        .pQueueCreateInfos = &qci,
    };
    LVK_VK_CHECK(vkCreateDevice(ctx->phys, &dci, NULL, &ctx->device));
    volkLoadDevice(ctx->device);
    vkGetDeviceQueue(ctx->device, ctx->queue_family, 0, &ctx->queue);

    VkCommandPoolCreateInfo pci = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
        .queueFamilyIndex = ctx->queue_family,
    };
    LVK_VK_CHECK(vkCreateCommandPool(ctx->device, &pci, NULL, &ctx->cmd_pool));
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    LVK_VK_CHECK(vkCreateFence(ctx->device, &fci, NULL, &ctx->fence));
    return LVK_OK;
}

/* lucid-vk's cache folder is $XDG_CACHE_HOME/lucidvk (or ~/.cache/lucidvk):
 * the pipeline cache, one file per device, so the JIT work of one run serves
 * the next, and VkFFT's compiled shaders (optvis/fft.c). */
static void cache_path(struct lvk_ctx *ctx)
{
    const char *base = getenv("XDG_CACHE_HOME");
    char dir[400];
    int len;
    if (base && *base)
        len = snprintf(dir, sizeof dir, "%s/lucidvk", base);
    else if (getenv("HOME"))
        len = snprintf(dir, sizeof dir, "%s/.cache/lucidvk", getenv("HOME"));
    else
        return;
    if (len <= 0 || (size_t)len >= sizeof dir)
        return;   /* a cut path would name another folder: no cache */
    char parent[400];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash) {
        *slash = 0;
        mkdir(parent, 0755);
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return;
    snprintf(ctx->cache_dir, sizeof ctx->cache_dir, "%s", dir);
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(ctx->phys, &p);
    char uuid[33];
    for (int i = 0; i < 16; i++)
        sprintf(uuid + 2 * i, "%02x", p.pipelineCacheUUID[i]);
    snprintf(ctx->pipeline_cache_path, sizeof ctx->pipeline_cache_path,
             "%s/pipelines-%08x-%s.bin", dir, p.deviceID, uuid);
}

static lvk_status create_pipeline_cache(struct lvk_ctx *ctx)
{
    cache_path(ctx);
    void *data = NULL;
    size_t len = 0;
    FILE *f = ctx->pipeline_cache_path[0] ? fopen(ctx->pipeline_cache_path, "rb") : NULL;
    if (f) {
        if (fseek(f, 0, SEEK_END) == 0) {
            long sz = ftell(f);
            if (sz > 0 && fseek(f, 0, SEEK_SET) == 0 && (data = malloc((size_t)sz)) &&
                fread(data, 1, (size_t)sz, f) == (size_t)sz)
                len = (size_t)sz;
        }
        fclose(f);
    }
    VkPipelineCacheCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO,
        .initialDataSize = len,
        .pInitialData = len ? data : NULL,
    };
    VkResult r = vkCreatePipelineCache(ctx->device, &ci, NULL, &ctx->pipeline_cache);
    if (r != VK_SUCCESS && len) {
        /* A stale or foreign cache file is not an error: start empty. */
        ci.initialDataSize = 0;
        ci.pInitialData = NULL;
        r = vkCreatePipelineCache(ctx->device, &ci, NULL, &ctx->pipeline_cache);
    }
    free(data);
    LVK_VK_CHECK(r);
    return LVK_OK;
}

static void save_pipeline_cache(struct lvk_ctx *ctx)
{
    if (!ctx->pipeline_cache || !ctx->pipeline_cache_path[0])
        return;
    size_t len = 0;
    if (vkGetPipelineCacheData(ctx->device, ctx->pipeline_cache, &len, NULL) != VK_SUCCESS || !len)
        return;
    void *data = malloc(len);
    if (!data)
        return;
    if (vkGetPipelineCacheData(ctx->device, ctx->pipeline_cache, &len, data) == VK_SUCCESS) {
        char tmp[sizeof ctx->pipeline_cache_path + 32];
        snprintf(tmp, sizeof tmp, "%s.tmp.%d", ctx->pipeline_cache_path, (int)getpid());
        FILE *f = fopen(tmp, "wb");
        if (f) {
            bool ok = fwrite(data, 1, len, f) == len;
            ok = (fclose(f) == 0) && ok;
            if (!ok || rename(tmp, ctx->pipeline_cache_path) != 0)
                remove(tmp);
        }
    }
    free(data);
}

lvk_status lvk_ctx_create(const struct lvk_ctx_opts *opts, lvk_ctx_t **out)
{
    *out = NULL;
    struct lvk_ctx_opts def = {.validation = -1};
    if (!opts)
        opts = &def;
    LVK_CHECK(load_loader());
    struct lvk_ctx *ctx = lvk_calloc(1, sizeof *ctx);
    if (!ctx)
        return LVK_ERR_HOST_OOM;
    lvk_status st;
    bool validation = opts->validation < 0 ? lvk_env_on("LVK_VALIDATION") : opts->validation != 0;
    if (validation && !layer_available(k_validation_layer)) {
        fprintf(stderr, "lucidvk: %s not installed (apt-get install vulkan-validationlayers); "
                        "running without validation\n", k_validation_layer);
        validation = false;
    }
    const char *want = opts->device;
    if (!want || !*want)
        want = getenv("LVK_DEVICE");
    if (want && !*want)
        want = NULL;
    LVK_TRY(st, create_instance(ctx, validation));
    LVK_TRY(st, pick_device(ctx, want));
    LVK_TRY(st, create_device(ctx));
    LVK_TRY(st, create_pipeline_cache(ctx));
    *out = ctx;
    return LVK_OK;
fail:
    lvk_ctx_destroy(ctx);
    return st;
}

void lvk_pipelines_destroy(struct lvk_ctx *ctx);

void lvk_ctx_destroy(lvk_ctx_t *ctx)
{
    if (!ctx)
        return;
    if (ctx->device) {
        vkDeviceWaitIdle(ctx->device);
        save_pipeline_cache(ctx);
        lvk_pipelines_destroy(ctx);
        if (ctx->staging) vkDestroyBuffer(ctx->device, ctx->staging, NULL);
        if (ctx->staging_mem) vkFreeMemory(ctx->device, ctx->staging_mem, NULL);
        if (ctx->pipeline_cache) vkDestroyPipelineCache(ctx->device, ctx->pipeline_cache, NULL);
        if (ctx->fence) vkDestroyFence(ctx->device, ctx->fence, NULL);
        if (ctx->cmd_pool) vkDestroyCommandPool(ctx->device, ctx->cmd_pool, NULL);
        vkDestroyDevice(ctx->device, NULL);
    }
    if (ctx->messenger)
        vkDestroyDebugUtilsMessengerEXT(ctx->instance, ctx->messenger, NULL);
    if (ctx->instance)
        vkDestroyInstance(ctx->instance, NULL);
    free(ctx);
}

const struct lvk_device_info *lvk_ctx_device(const lvk_ctx_t *ctx) { return &ctx->info; }

int lvk_ctx_validation_messages(const lvk_ctx_t *ctx) { return ctx->validation_messages; }
