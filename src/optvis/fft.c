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
#include <glslang/Include/glslang_c_interface.h>

/* volk.h (through lvk_vk.h) before vkFFT.h: the library builds with
 * VK_NO_PROTOTYPES, and VkFFT calls the global vk* pointers that
 * volkLoadDevice filled when the context was created. */
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

/* Creates a plan. `spirv` is NULL for the first plan, which compiles its
 * shaders with glslang and keeps the binaries; later plans load them. */
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

    if (!glslang_initialize_process()) {
        free(f);
        return lvk_fail(LVK_ERR_UNSUPPORTED, "fft: glslang failed to initialise");
    }
    lvk_status st = plan_create(f, NULL, &f->plans[0]);
    /* glslang counts its clients: this releases only our reference. */
    glslang_finalize_process();
    if (st != LVK_OK) {
        free(f);
        return st;
    }
    f->nplans = 1;
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
    free(f);
}

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
    LVK_CHECK(plan_create(f, f->plans[0]->app.saveApplicationString, &f->plans[f->nplans]));
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
