/* Batched 2-D real FFTs on VkFFT (see fft.h for the contract).
 *
 * This is the only translation unit that includes vkFFT.h: the header is a
 * whole FFT code generator (30k lines, about 10 s to compile), and for
 * VkFFT 1.2.x it is the patched copy cmake/vkfft_header.cmake writes.
 *
 * VkFFT layout for our data: FFTdim 2, size {w, h}, numberBatches = batch,
 * performR2C. Out of place: the real array is VkFFT's "input buffer"
 * (isInputFormatted, unpadded strides {w, w*h}), the half spectrum its main
 * "buffer"; inverseReturnToInputBuffer makes C2R read the spectrum and write
 * the real array, after transforming the spectrum in place along h.
 *
 * VkFFT compares the VkBuffer *pointers* of a launch with those it holds and
 * rewrites its descriptor sets when they differ. Rewriting a set that an
 * earlier recording bound invalidates that recording, so each plan here owns
 * the storage of the two handles it is launched with and is only ever used
 * with that pair of buffers.
 *
 * Non-goals: in-place transforms, odd batch layouts, normalisation (the
 * callers fold 1/(h*w) into their own scale kernels). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glslang/Include/glslang_c_interface.h>

/* volk.h (through lvk_vk.h) before vkFFT.h: the library builds with
 * VK_NO_PROTOTYPES, and VkFFT calls the global vk* pointers that
 * volkLoadDevice filled when the context was created. */
#include "io/lvk_io.h"
#include "optvis/fft.h"

#include <vkFFT.h>

/* One VkFFT application, bound to one (spectrum, real) pair of buffers. */
struct fft_plan {
    VkFFTApplication app;
    VkBuffer spectrum, real;      /* launch handles: VkFFT keeps these pointers */
    uint64_t spectrum_size, real_size;
    bool bound;                   /* launched at least once: buffers fixed */
    bool initialized;             /* initializeVkFFT succeeded */
};

struct lvk_fft {
    struct lvk_ctx *ctx;
    uint32_t batch, h, w;
    VkDeviceSize spectrum_bytes, real_bytes;
    void *spirv;                  /* the plans' compiled shaders (VkFFT's application string) */
    size_t spirv_size;
    bool cached;                  /* spirv came from the cache folder */
    struct fft_plan *plans[LVK_FFT_MAX_PLANS];
    int nplans;
};

static lvk_status vkfft_fail(VkFFTResult r, const char *what, const struct lvk_fft *f)
{
    /* 4000-range codes are shader generation/compilation failures, which for
     * a valid size mean the device or VkFFT cannot handle it. */
    lvk_status s = r == VKFFT_ERROR_MALLOC_FAILED ? LVK_ERR_HOST_OOM
                   : r >= 4000 && r < 5000     ? LVK_ERR_VULKAN
                                               : LVK_ERR_UNSUPPORTED;
    return lvk_fail(s, "VkFFT %s (%u x %u x %u real FFT): error %d", what, f->batch, f->h, f->w,
                    (int)r);
}

static void plan_destroy(struct fft_plan *p)
{
    if (!p)
        return;
    if (p->initialized)
        deleteVkFFT(&p->app);
    free(p);
}

/* Creates a plan. With `spirv` NULL it compiles its shaders with glslang
 * and keeps the binaries (app.saveApplicationString); else it loads them.
 * What is set here decides the shaders: a change here must change
 * SPIRV_CONFIG below, or runs would load binaries of the old setting. */
static lvk_status plan_create(struct lvk_fft *f, const void *spirv, struct fft_plan **out)
{
    struct lvk_ctx *ctx = f->ctx;
    *out = NULL;
    struct fft_plan *p = lvk_calloc(1, sizeof *p);
    if (!p)
        return LVK_ERR_HOST_OOM;
    p->spectrum_size = f->spectrum_bytes;
    p->real_size = f->real_bytes;

    VkFFTConfiguration c = {0};
    c.FFTdim = 2;
    c.size[0] = f->w;
    c.size[1] = f->h;
    c.numberBatches = f->batch;
    c.performR2C = 1;
    c.isInputFormatted = 1;
    c.inverseReturnToInputBuffer = 1;
    c.inputBufferStride[0] = f->w;
    c.inputBufferStride[1] = (uint64_t)f->w * f->h;
    c.inputBufferStride[2] = (uint64_t)f->w * f->h;
    c.bufferSize = &p->spectrum_size;
    c.inputBufferSize = &p->real_size;
    c.physicalDevice = &ctx->phys;
    c.device = &ctx->device;
    c.queue = &ctx->queue;
    c.commandPool = &ctx->cmd_pool;
    c.fence = &ctx->fence;
    /* glslang is initialised by lvk_fft_create around the first plan; the
     * flag also stops deleteVkFFT from finalising it behind our back. */
    c.isCompilerInitialized = 1;
    if (spirv) {
        c.loadApplicationFromString = 1;
        c.loadApplicationString = (void *)spirv;
    } else {
        c.saveApplicationToString = 1;
    }
    /* No buffers yet: VkFFT allocates the descriptor sets and writes them at
     * the first launch, with the buffers of that launch. */
    VkFFTResult r = initializeVkFFT(&p->app, c);
    if (r != VKFFT_SUCCESS) {
        free(p); /* initializeVkFFT cleans up after itself on failure */
        return vkfft_fail(r, "plan creation", f);
    }
    p->initialized = true;
    *out = p;
    return LVK_OK;
}

/* ---- compiled shaders on disk ------------------------------------------------------------ */

/* VkFFT compiles its generated shaders with glslang for every plan: most of
 * the 0.15-0.3 s that creating a 24 x 128 x 128 plan took on lavapipe, paid
 * again by every run. The binaries are kept in lucid-vk's cache folder
 * (lvk_ctx.cache_dir), under a key naming all they depend on: VkFFT's
 * headers (their digest, LVK_VKFFT_DIGEST, from cmake/vkfft_header.cmake),
 * plan_create's settings (SPIRV_CONFIG), the transform, the device and its
 * driver. The file holds the key itself (its name is only the key's hash),
 * the binaries' size and checksum; VkFFT reads what it loads unchecked, so a
 * file is used only where all of these match and its binaries are the chain
 * of SPIR-V modules VkFFT writes ([size in bytes][module] ...). Any other
 * file is compiled anew and replaced. */
#define SPIRV_MAGIC "lvkfft2"   /* 8 bytes with its NUL */
#define SPIRV_CONFIG 1u

struct spirv_header {
    char magic[8];
    char key[256];
    uint64_t size, sum;   /* of the binaries that follow */
};

/* The key of f's binaries (zero-padded) and the file that holds them. */
static bool spirv_key(const struct lvk_fft *f, char key[256], char *path, size_t n)
{
    const struct lvk_ctx *ctx = f->ctx;
    if (!ctx->cache_dir[0])
        return false;
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(ctx->phys, &p);
    char uuid[2 * VK_UUID_SIZE + 1];
    for (uint32_t i = 0; i < VK_UUID_SIZE; i++)
        snprintf(uuid + 2 * i, 3, "%02x", p.pipelineCacheUUID[i]);
    memset(key, 0, 256);
    int len = snprintf(key, 256, "vkfft %d %s config %u fft %ux%ux%u device %04x:%04x driver %u %s",
                       (int)VkFFTGetVersion(), LVK_VKFFT_DIGEST, SPIRV_CONFIG, f->batch, f->h,
                       f->w, p.vendorID, p.deviceID, p.driverVersion, uuid);
    if (len <= 0 || len >= 256)
        return false;
    len = snprintf(path, n, "%s/vkfft-%016llx.bin", ctx->cache_dir,
                   (unsigned long long)lvk_fnv1a64(LVK_FNV1A64_BASIS, key, 256));
    return len > 0 && (size_t)len < n;
}

/* Whether data is a chain of SPIR-V modules, each after its size in bytes,
 * that ends exactly where data does. */
static bool spirv_chain(const uint32_t *words, size_t nwords)
{
    size_t at = 0;
    while (at < nwords) {
        size_t len = words[at];
        if (len == 0 || len % 4 || len / 4 > nwords - at - 1 || words[at + 1] != 0x07230203u)
            return false;
        at += 1 + len / 4;
    }
    return at == nwords && nwords > 0;
}

/* The binaries in `path` for `key`, or NULL where the file is missing or
 * fails a check. */
static void *spirv_load(const char *path, const char key[256], size_t *size)
{
    uint8_t *file;
    size_t len;
    if (lvk_read_file(path, &file, &len) != LVK_OK)
        return NULL;
    struct spirv_header hd;
    if (len > sizeof hd) {
        memcpy(&hd, file, sizeof hd);
        /* The binaries move to the buffer's start, word-aligned there. */
        if (memcmp(hd.magic, SPIRV_MAGIC, 8) == 0 && memcmp(hd.key, key, 256) == 0 &&
            hd.size == len - sizeof hd && hd.size % 4 == 0 &&
            lvk_fnv1a64(LVK_FNV1A64_BASIS, file + sizeof hd, hd.size) == hd.sum &&
            spirv_chain(memmove(file, file + sizeof hd, hd.size), hd.size / 4)) {
            *size = hd.size;
            return file;
        }
    }
    free(file);
    return NULL;
}

/* Written as a whole (io/atomic.c), so that a reader never sees half a
 * file; failures only cost the next run the compile. */
static void spirv_save(const char *path, const char key[256], const void *data, size_t size)
{
    char tmp[600];
    FILE *fp;
    if (lvk_atomic_open(path, tmp, sizeof tmp, &fp) != LVK_OK)
        return;
    struct spirv_header hd = {.size = size, .sum = lvk_fnv1a64(LVK_FNV1A64_BASIS, data, size)};
    memcpy(hd.magic, SPIRV_MAGIC, 8);
    memcpy(hd.key, key, 256);
    if (fwrite(&hd, sizeof hd, 1, fp) == 1 && fwrite(data, 1, size, fp) == size)
        lvk_atomic_commit(fp, tmp, path);
    else
        lvk_atomic_abort(fp, tmp);
}

/* The first plan: from the cached binaries where they load, else compiled
 * (and cached). */
static lvk_status first_plan(struct lvk_fft *f)
{
    char key[256], path[512];
    const bool cache = spirv_key(f, key, path, sizeof path);
    if (cache && (f->spirv = spirv_load(path, key, &f->spirv_size)) != NULL) {
        if (plan_create(f, f->spirv, &f->plans[0]) == LVK_OK) {
            f->cached = true;
            return LVK_OK;
        }
        free(f->spirv);
        f->spirv = NULL;
    }
    if (!glslang_initialize_process())
        return lvk_fail(LVK_ERR_UNSUPPORTED, "fft: glslang failed to initialise");
    lvk_status st = plan_create(f, NULL, &f->plans[0]);
    /* glslang counts its clients: this releases only our reference. */
    glslang_finalize_process();
    if (st != LVK_OK)
        return st;
    const VkFFTApplication *app = &f->plans[0]->app;
    f->spirv_size = (size_t)app->applicationStringSize;
    f->spirv = malloc(f->spirv_size);
    if (!f->spirv)
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    memcpy(f->spirv, app->saveApplicationString, f->spirv_size);
    if (cache)
        spirv_save(path, key, f->spirv, f->spirv_size);
    return LVK_OK;
}

lvk_status lvk_fft_create(struct lvk_ctx *ctx, uint32_t batch, uint32_t h, uint32_t w,
                          struct lvk_fft **out)
{
    *out = NULL;
    if (batch == 0 || h == 0 || w == 0)
        return lvk_fail(LVK_ERR_INVALID_ARG, "fft: empty transform (%u x %u x %u)", batch, h, w);
    struct lvk_fft *f = lvk_calloc(1, sizeof *f);
    if (!f)
        return LVK_ERR_HOST_OOM;
    f->ctx = ctx;
    f->batch = batch;
    f->h = h;
    f->w = w;
    f->spectrum_bytes = (VkDeviceSize)batch * h * (w / 2 + 1) * 2 * sizeof(float);
    /* VkFFT 1.2.26 binds the real side of the transform with the spectrum's
     * size whatever inputBufferSize says (a dense [batch,h,w] buffer draws
     * VUID-VkDescriptorBufferInfo-range-00342): require that size. */
    f->real_bytes = f->spectrum_bytes;

    lvk_status st = first_plan(f);
    if (f->plans[0])
        f->nplans = 1;
    if (st != LVK_OK) {
        lvk_fft_destroy(f);
        return st;
    }
    *out = f;
    return LVK_OK;
}

void lvk_fft_destroy(struct lvk_fft *f)
{
    if (!f)
        return;
    /* Reverse order of creation. */
    for (int i = f->nplans - 1; i >= 0; i--)
        plan_destroy(f->plans[i]);
    free(f->spirv);
    free(f);
}

bool lvk_fft_cached(const struct lvk_fft *f) { return f->cached; }
VkDeviceSize lvk_fft_spectrum_bytes(const struct lvk_fft *f) { return f->spectrum_bytes; }
VkDeviceSize lvk_fft_real_bytes(const struct lvk_fft *f) { return f->real_bytes; }

/* The plan bound to (spectrum, real): an existing one, the first plan if it
 * is still unbound, or a new one loaded from the first plan's binaries. */
static lvk_status plan_for(struct lvk_fft *f, const struct lvk_buf *spectrum,
                           const struct lvk_buf *real, struct fft_plan **out)
{
    for (int i = 0; i < f->nplans; i++) {
        struct fft_plan *p = f->plans[i];
        if (!p->bound || (p->spectrum == spectrum->buf && p->real == real->buf)) {
            *out = p;
            return LVK_OK;
        }
    }
    if (f->nplans == LVK_FFT_MAX_PLANS)
        return lvk_fail(LVK_ERR_UNSUPPORTED,
                        "fft: more than %d distinct buffer pairs recorded with one plan set",
                        LVK_FFT_MAX_PLANS);
    LVK_CHECK(plan_create(f, f->spirv, &f->plans[f->nplans]));
    *out = f->plans[f->nplans++];
    return LVK_OK;
}

static lvk_status record(struct lvk_cmd *cmd, struct lvk_fft *f, const struct lvk_buf *spectrum,
                         const struct lvk_buf *real, int inverse)
{
    LVK_ASSERT(cmd->recording);
    LVK_ASSERT(spectrum && spectrum->buf && real && real->buf);
    if (spectrum->size < f->spectrum_bytes || real->size < f->real_bytes)
        return lvk_fail(LVK_ERR_INVALID_ARG,
                        "fft: buffers of %llu (spectrum) and %llu (real) bytes, need %llu and "
                        "%llu (the real side is sized like the spectrum, see optvis/fft.h)",
                        (unsigned long long)spectrum->size, (unsigned long long)real->size,
                        (unsigned long long)f->spectrum_bytes, (unsigned long long)f->real_bytes);
    struct fft_plan *p = NULL;
    LVK_CHECK(plan_for(f, spectrum, real, &p));
    p->spectrum = spectrum->buf;
    p->real = real->buf;
    p->bound = true;
    lvk_cmd_flush(cmd);
    VkFFTLaunchParams lp = {0};
    lp.commandBuffer = &cmd->cb;
    lp.buffer = &p->spectrum;
    lp.inputBuffer = &p->real;
    VkFFTResult r = VkFFTAppend(&p->app, inverse, &lp);
    if (r != VKFFT_SUCCESS)
        return vkfft_fail(r, inverse == 1 ? "C2R" : "R2C", f);
    lvk_cmd_barrier(cmd, inverse == 1 ? "fft_c2r" : "fft_r2c");
    return LVK_OK;
}

lvk_status lvk_fft_record_c2r(struct lvk_cmd *cmd, struct lvk_fft *f,
                              const struct lvk_buf *spectrum, const struct lvk_buf *real)
{
    return record(cmd, f, spectrum, real, 1);
}

lvk_status lvk_fft_record_r2c(struct lvk_cmd *cmd, struct lvk_fft *f,
                              const struct lvk_buf *real, const struct lvk_buf *spectrum)
{
    return record(cmd, f, spectrum, real, -1);
}
