/* Compute pipelines from the SPIR-V embedded at build time.
 *
 * The descriptor layout and workgroup size are read from the SPIR-V itself
 * (a few dozen lines of reflection), so no table maintained by hand can
 * drift from the shaders. Pipelines are cached per (shader, specialization
 * constants) for the life of the context, and compiled through the
 * context's on-disk pipeline cache. */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "vk/lvk_vk.h"

enum {
    OP_EXECUTION_MODE = 16, OP_TYPE_IMAGE = 25, OP_TYPE_SAMPLED_IMAGE = 27,
    OP_TYPE_POINTER = 32, OP_CONSTANT = 43, OP_SPEC_CONSTANT = 50,
    OP_VARIABLE = 59, OP_DECORATE = 71,
    EXEC_LOCAL_SIZE = 17,
    DEC_SPEC_ID = 1, DEC_BUILTIN = 11, DEC_BINDING = 33,
    BUILTIN_WORKGROUP_SIZE = 25,
    SC_UNIFORM_CONSTANT = 0, SC_UNIFORM = 2, SC_STORAGE_BUFFER = 12,
    DIM_BUFFER = 5,
};

struct reflection {
    uint32_t nbindings;
    VkDescriptorType types[LVK_MAX_BINDINGS];
    uint32_t local[3];
    int local_spec_id[3]; /* spec id that overrides local[i], or -1 */
};

/* Walks the instruction stream twice: first collecting types, decorations
 * and spec ids by result id, then resolving each bound variable's type. */
static lvk_status reflect(const struct lvk_shader_blob *sh, struct reflection *out)
{
    const uint32_t *w = sh->words;
    uint32_t n = (uint32_t)(sh->size / 4);
    if (n < 5 || w[0] != 0x07230203)
        return lvk_fail(LVK_ERR_FORMAT, "shader %s: not SPIR-V", sh->name);
    uint32_t bound = w[3];
    int32_t *binding = malloc(bound * sizeof *binding);
    int32_t *spec_id = malloc(bound * sizeof *spec_id);
    uint32_t *opcode = calloc(bound, sizeof *opcode);
    const uint32_t **inst = calloc(bound, sizeof *inst);
    if (!binding || !spec_id || !opcode || !inst) {
        free(binding); free(spec_id); free(opcode); free(inst);
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory reflecting %s", sh->name);
    }
    for (uint32_t i = 0; i < bound; i++)
        binding[i] = spec_id[i] = -1;
    memset(out, 0, sizeof *out);
    out->local_spec_id[0] = out->local_spec_id[1] = out->local_spec_id[2] = -1;
    uint32_t wgsize_id = 0;

    for (uint32_t i = 5; i < n;) {
        uint32_t len = w[i] >> 16, op = w[i] & 0xffff;
        if (len == 0 || i + len > n)
            break;
        const uint32_t *a = &w[i + 1];
        if (op == OP_EXECUTION_MODE && len >= 6 && a[1] == EXEC_LOCAL_SIZE) {
            out->local[0] = a[2]; out->local[1] = a[3]; out->local[2] = a[4];
        } else if (op == OP_DECORATE && len >= 4 && a[0] < bound) {
            if (a[1] == DEC_BINDING) binding[a[0]] = (int32_t)a[2];
            if (a[1] == DEC_SPEC_ID) spec_id[a[0]] = (int32_t)a[2];
            if (a[1] == DEC_BUILTIN && a[2] == BUILTIN_WORKGROUP_SIZE) wgsize_id = a[0];
        } else if ((op == OP_TYPE_IMAGE || op == OP_TYPE_SAMPLED_IMAGE || op == OP_TYPE_POINTER ||
                    op == OP_VARIABLE || op == OP_SPEC_CONSTANT || op == OP_CONSTANT ||
                    op == 51 /* OpSpecConstantComposite */ || op == 44 /* OpConstantComposite */) &&
                   len >= 3) {
            uint32_t id = (op == OP_TYPE_IMAGE || op == OP_TYPE_SAMPLED_IMAGE || op == OP_TYPE_POINTER)
                              ? a[0] : a[1];
            if (id < bound) {
                opcode[id] = op;
                inst[id] = a;
            }
        }
        i += len;
    }
    /* local_size_{x,y,z}_id: the WorkgroupSize builtin is a composite of spec constants. */
    if (wgsize_id && wgsize_id < bound && inst[wgsize_id]) {
        const uint32_t *c = inst[wgsize_id];
        for (int k = 0; k < 3; k++) {
            uint32_t cid = c[2 + k];
            if (cid < bound && inst[cid] && opcode[cid] == OP_SPEC_CONSTANT) {
                out->local[k] = inst[cid][2];
                out->local_spec_id[k] = spec_id[cid];
            } else if (cid < bound && inst[cid] && opcode[cid] == OP_CONSTANT) {
                out->local[k] = inst[cid][2];
            }
        }
    }
    lvk_status st = LVK_OK;
    for (uint32_t id = 0; id < bound && st == LVK_OK; id++) {
        if (binding[id] < 0 || opcode[id] != OP_VARIABLE)
            continue;
        uint32_t b = (uint32_t)binding[id];
        if (b >= LVK_MAX_BINDINGS) {
            st = lvk_fail(LVK_ERR_UNSUPPORTED, "shader %s: binding %u >= %d", sh->name, b, LVK_MAX_BINDINGS);
            break;
        }
        uint32_t storage = inst[id][2], ptr = inst[id][0];
        uint32_t pointee = (ptr < bound && inst[ptr]) ? inst[ptr][2] : 0;
        VkDescriptorType t = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
        if (pointee < bound && opcode[pointee] == OP_TYPE_SAMPLED_IMAGE) {
            t = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
        } else if (pointee < bound && opcode[pointee] == OP_TYPE_IMAGE) {
            const uint32_t *img = inst[pointee];
            if (img[2] != DIM_BUFFER) {
                st = lvk_fail(LVK_ERR_UNSUPPORTED, "shader %s: only buffer images are supported", sh->name);
                break;
            }
            t = img[6] == 2 ? VK_DESCRIPTOR_TYPE_STORAGE_TEXEL_BUFFER : VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
        } else if (storage == SC_UNIFORM || storage == SC_STORAGE_BUFFER) {
            /* GLSL `buffer` blocks compile to Uniform+BufferBlock (SPIR-V 1.0-1.2)
             * or StorageBuffer; lucid-vk shaders use no uniform blocks. */
            t = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
        } else if (storage == SC_UNIFORM_CONSTANT) {
            st = lvk_fail(LVK_ERR_UNSUPPORTED, "shader %s: unsupported descriptor at binding %u", sh->name, b);
            break;
        }
        out->types[b] = t;
        if (b + 1 > out->nbindings)
            out->nbindings = b + 1;
    }
    free(binding); free(spec_id); free(opcode); free(inst);
    return st;
}

static void pipeline_free(struct lvk_ctx *ctx, struct lvk_pipeline *p)
{
    if (!p)
        return;
    if (p->pipe) vkDestroyPipeline(ctx->device, p->pipe, NULL);
    if (p->layout) vkDestroyPipelineLayout(ctx->device, p->layout, NULL);
    if (p->dsl) vkDestroyDescriptorSetLayout(ctx->device, p->dsl, NULL);
    free(p);
}

void lvk_pipelines_destroy(struct lvk_ctx *ctx)
{
    for (int i = 0; i < ctx->npipelines; i++)
        pipeline_free(ctx, ctx->pipelines[i]);
    free(ctx->pipelines);
    ctx->pipelines = NULL;
    ctx->npipelines = ctx->cap_pipelines = 0;
}

/* Reflection, descriptor-set and pipeline layouts: cheap. */
static lvk_status build_layout(struct lvk_ctx *ctx, struct lvk_pipeline *p)
{
    const struct lvk_shader_blob *sh = &lvk_shaders[p->shader];
    struct reflection r;
    LVK_CHECK(reflect(sh, &r));
    p->nbindings = r.nbindings;
    memcpy(p->types, r.types, sizeof p->types);
    for (int k = 0; k < 3; k++) {
        p->local[k] = r.local[k] ? r.local[k] : 1;
        if (r.local_spec_id[k] >= 0 && (uint32_t)r.local_spec_id[k] < p->nspec)
            p->local[k] = p->spec[r.local_spec_id[k]];
    }
    if (p->local[0] * p->local[1] * p->local[2] > ctx->limits.maxComputeWorkGroupInvocations)
        return lvk_fail(LVK_ERR_UNSUPPORTED, "shader %s: workgroup %ux%ux%u exceeds the device's %u invocations",
                        sh->name, p->local[0], p->local[1], p->local[2],
                        ctx->limits.maxComputeWorkGroupInvocations);

    VkDescriptorSetLayoutBinding b[LVK_MAX_BINDINGS];
    for (uint32_t i = 0; i < p->nbindings; i++)
        b[i] = (VkDescriptorSetLayoutBinding){
            .binding = i,
            .descriptorType = p->types[i],
            .descriptorCount = 1,
            .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
        };
    VkDescriptorSetLayoutCreateInfo dci = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
        .bindingCount = p->nbindings,
        .pBindings = b,
    };
    LVK_VK_CHECK(vkCreateDescriptorSetLayout(ctx->device, &dci, NULL, &p->dsl));
    VkPushConstantRange pcr = {
        .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = LVK_PUSH_MAX};
    VkPipelineLayoutCreateInfo lci = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
        .setLayoutCount = 1,
        .pSetLayouts = &p->dsl,
        .pushConstantRangeCount = 1,
        .pPushConstantRanges = &pcr,
    };
    LVK_VK_CHECK(vkCreatePipelineLayout(ctx->device, &lci, NULL, &p->layout));
    return LVK_OK;
}

/* The VkPipeline: lavapipe's JIT compilation, the dear part. Touches only
 * p and thread-safe Vulkan calls (the pipeline cache synchronizes itself),
 * so several run at once; errors are reported by the caller. */
static VkResult build_pipeline(struct lvk_ctx *ctx, struct lvk_pipeline *p)
{
    const struct lvk_shader_blob *sh = &lvk_shaders[p->shader];
    VkShaderModuleCreateInfo mci = {
        .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
        .codeSize = sh->size,
        .pCode = sh->words,
    };
    VkShaderModule mod;
    VkResult res = vkCreateShaderModule(ctx->device, &mci, NULL, &mod);
    if (res != VK_SUCCESS)
        return res;
    VkSpecializationMapEntry map[LVK_MAX_SPEC];
    for (uint32_t i = 0; i < p->nspec; i++)
        map[i] = (VkSpecializationMapEntry){.constantID = i, .offset = 4 * i, .size = 4};
    VkSpecializationInfo si = {
        .mapEntryCount = p->nspec, .pMapEntries = map, .dataSize = 4 * p->nspec, .pData = p->spec};
    VkComputePipelineCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {
            .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
            .stage = VK_SHADER_STAGE_COMPUTE_BIT,
            .module = mod,
            .pName = "main",
            .pSpecializationInfo = p->nspec ? &si : NULL,
        },
        .layout = p->layout,
    };
    res = vkCreateComputePipelines(ctx->device, ctx->pipeline_cache, 1, &ci, NULL, &p->pipe);
    vkDestroyShaderModule(ctx->device, mod, NULL);
    return res;
}

static lvk_status pipeline_fail(struct lvk_pipeline *p, VkResult res)
{
    lvk_vk_fail(res, "vkCreateComputePipelines", __FILE__, __LINE__);
    lvk_error_prefix("shader %s: ", lvk_shaders[p->shader].name);
    return res == VK_ERROR_OUT_OF_DEVICE_MEMORY ? LVK_ERR_DEVICE_OOM : LVK_ERR_VULKAN;
}

/* Workers of lvk_pipelines_build_deferred take pipelines from a shared
 * counter until none is left. */
struct build_job {
    struct lvk_ctx *ctx;
    struct lvk_pipeline **todo;
    VkResult *res;
    int next, n;
    pthread_mutex_t lock;
};

static void *build_worker(void *arg)
{
    struct build_job *job = arg;
    for (;;) {
        pthread_mutex_lock(&job->lock);
        int i = job->next < job->n ? job->next++ : -1;
        pthread_mutex_unlock(&job->lock);
        if (i < 0)
            return NULL;
        job->res[i] = build_pipeline(job->ctx, job->todo[i]);
    }
}

lvk_status lvk_pipelines_build_deferred(struct lvk_ctx *ctx)
{
    struct build_job job = {.ctx = ctx};
    job.todo = lvk_calloc((size_t)LVK_MAX(ctx->npipelines, 1), sizeof *job.todo);
    job.res = lvk_calloc((size_t)LVK_MAX(ctx->npipelines, 1), sizeof *job.res);
    if (!job.todo || !job.res || pthread_mutex_init(&job.lock, NULL) != 0) {
        free(job.todo);
        free(job.res);
        return lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
    }
    for (int i = 0; i < ctx->npipelines; i++)
        if (!ctx->pipelines[i]->pipe)
            job.todo[job.n++] = ctx->pipelines[i];
    enum { MAX_THREADS = 16 };
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int nthreads = (int)LVK_MIN(LVK_MIN(cores > 0 ? cores : 1, (long)MAX_THREADS), (long)job.n);
    pthread_t tid[MAX_THREADS];
    int started = 0;
    /* This thread works too; threads that fail to start leave their share to it. */
    for (int t = 1; t < nthreads; t++)
        if (pthread_create(&tid[started], NULL, build_worker, &job) == 0)
            started++;
    build_worker(&job);
    for (int t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    pthread_mutex_destroy(&job.lock);
    lvk_status st = LVK_OK;
    for (int i = 0; i < job.n && st == LVK_OK; i++)
        if (job.res[i] != VK_SUCCESS)
            st = pipeline_fail(job.todo[i], job.res[i]);
    free(job.todo);
    free(job.res);
    return st;
}

const struct lvk_pipeline *lvk_pipeline_get(struct lvk_ctx *ctx, enum lvk_shader_id id,
                                            const uint32_t *spec, uint32_t nspec)
{
    LVK_ASSERT((int)id >= 0 && id < LVK_SHADER_COUNT);
    LVK_ASSERT(nspec <= LVK_MAX_SPEC);
    for (int i = 0; i < ctx->npipelines; i++) {
        struct lvk_pipeline *p = ctx->pipelines[i];
        if (p->shader == id && p->nspec == nspec &&
            (nspec == 0 || memcmp(p->spec, spec, 4 * nspec) == 0)) {
            /* Deferred and not built since (a first pass that failed): now. */
            VkResult res = p->pipe || ctx->deferring ? VK_SUCCESS : build_pipeline(ctx, p);
            if (res != VK_SUCCESS) {
                pipeline_fail(p, res);
                return NULL;
            }
            return p;
        }
    }
    if (ctx->npipelines == ctx->cap_pipelines) {
        int cap = ctx->cap_pipelines ? 2 * ctx->cap_pipelines : 64;
        struct lvk_pipeline **np = realloc(ctx->pipelines, (size_t)cap * sizeof *np);
        if (!np) {
            lvk_fail(LVK_ERR_HOST_OOM, "out of host memory");
            return NULL;
        }
        ctx->pipelines = np;
        ctx->cap_pipelines = cap;
    }
    struct lvk_pipeline *p = lvk_calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->shader = id;
    p->nspec = nspec;
    if (nspec)
        memcpy(p->spec, spec, 4 * nspec);
    if (build_layout(ctx, p) != LVK_OK) {
        pipeline_free(ctx, p);
        return NULL;
    }
    if (!ctx->deferring) {
        VkResult res = build_pipeline(ctx, p);
        if (res != VK_SUCCESS) {
            pipeline_fail(p, res);
            pipeline_free(ctx, p);
            return NULL;
        }
    }
    ctx->pipelines[ctx->npipelines++] = p;
    return p;
}
