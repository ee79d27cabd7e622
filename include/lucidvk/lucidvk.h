/* lucid-vk public API: a Vulkan compute engine for CNN interpretability.
 *
 *   lvk_ctx_t   - a Vulkan device (GPU, or the CPU through Mesa's lavapipe)
 *   lvk_model_t - an ONNX CNN loaded onto a context at a fixed batch and
 *                 input size, able to run forward and input-gradient passes
 *
 * All functions return LVK_OK or a negative lvk_status with lvk_last_error()
 * describing the failure. Destructors accept NULL. */
#ifndef LUCIDVK_H
#define LUCIDVK_H

#include <stddef.h>
#include <stdint.h>

#include "lucidvk/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lvk_ctx lvk_ctx_t;
typedef struct lvk_model lvk_model_t;

/* ---- devices ------------------------------------------------------------------- */

enum lvk_device_type {
    LVK_DEVICE_OTHER, LVK_DEVICE_INTEGRATED, LVK_DEVICE_DISCRETE,
    LVK_DEVICE_VIRTUAL, LVK_DEVICE_CPU
};

struct lvk_device_info {
    int index;                     /* position in Vulkan's enumeration */
    char name[256];
    enum lvk_device_type type;
    char driver[256];              /* driver name and info, e.g. "llvmpipe Mesa 22.3.6" */
    uint32_t api_version;          /* VK_MAKE_API_VERSION encoded */
    uint64_t device_local_bytes;   /* largest device-local heap */
    uint32_t subgroup_size;
    uint32_t max_shared_bytes;     /* maxComputeSharedMemorySize */
    uint32_t max_workgroup_invocations;
    uint32_t max_workgroup_size[3];
    /* Invocations the device holds in flight at once, from its core counts
     * (VK_NV_shader_sm_builtins, VK_AMD_shader_core_properties); 0 where the
     * driver does not tell. */
    uint64_t resident_invocations;
};

const char *lvk_device_type_str(enum lvk_device_type t);

/* Lists every Vulkan device. *infos is malloc'd; free() it. Returns
 * LVK_ERR_NO_DEVICE (with a message naming mesa-vulkan-drivers) when there
 * is no Vulkan loader or no device at all. */
lvk_status lvk_devices_list(struct lvk_device_info **infos, int *count);

struct lvk_ctx_opts {
    /* Device index or a case-insensitive substring of its name; NULL picks
     * $LVK_DEVICE if set, else discrete > integrated > virtual > CPU. */
    const char *device;
    /* 1: enable VK_LAYER_KHRONOS_validation (when installed) and count its
     * messages; 0: off; -1: from $LVK_VALIDATION. */
    int validation;
};

lvk_status lvk_ctx_create(const struct lvk_ctx_opts *opts, lvk_ctx_t **out);
void lvk_ctx_destroy(lvk_ctx_t *ctx);
const struct lvk_device_info *lvk_ctx_device(const lvk_ctx_t *ctx);
/* Validation-layer errors and warnings reported since the context was made. */
int lvk_ctx_validation_messages(const lvk_ctx_t *ctx);

/* ---- models ---------------------------------------------------------------------- */

struct lvk_model_opts {
    int batch;          /* 0: as the model declares (1 if symbolic) */
    int height, width;  /* 0: as declared; else the spatial size of the image input */
    /* Tensors the caller will read or differentiate. NULL: the graph outputs.
     * Only nodes needed to reach these run; named here, only those are
     * loaded at all (a layer past them need not even fit its input). */
    const char *const *outputs;
    int noutputs;
    /* Allocate gradient buffers so lvk_model_backward() can run. */
    int gradients;
    /* Allow convolution algorithms that round differently for speed: on
     * lavapipe, Winograd for 3x3 layers (rounding errors about 1e-5 of the
     * output instead of 1e-7, enough to move a MaxPool's arg-max between
     * near-equal values, so gradients no longer match another framework's
     * element for element). Renders set it; analyses leave it off. */
    int fast_conv;
};

/* Loads an ONNX file. Unsupported ops, corrupt files, external data,
 * non-float inputs and unresolved shapes fail with a message naming the file
 * and node. */
lvk_status lvk_model_load(lvk_ctx_t *ctx, const char *path,
                          const struct lvk_model_opts *opts, lvk_model_t **out);
void lvk_model_destroy(lvk_model_t *m);

/* The first graph input that is not an initializer (the image). */
const char *lvk_model_input_name(const lvk_model_t *m);
/* The ONNX graph's outputs, in file order. */
int lvk_model_output_count(const lvk_model_t *m);
const char *lvk_model_output_name(const lvk_model_t *m, int i);

#define LVK_MAX_DIMS 6
struct lvk_tensor_info {
    const char *name;
    const char *op_type;  /* producing op ("" for graph inputs / initializers) */
    int ndim;
    int64_t shape[LVK_MAX_DIMS];
    int is_const;
};

/* Number of named tensors, and each one's description, in graph order. A
 * model loaded with named outputs gives shapes (ndim > 0) only for the
 * tensors those outputs need. */
int lvk_model_tensor_count(const lvk_model_t *m);
lvk_status lvk_model_tensor_at(const lvk_model_t *m, int i, struct lvk_tensor_info *info);
lvk_status lvk_model_tensor_find(const lvk_model_t *m, const char *name,
                                 struct lvk_tensor_info *info);

/* Uploads float32 data (C order, exactly the tensor's element count) into a
 * graph input. */
lvk_status lvk_model_set_input(lvk_model_t *m, const char *name, const float *data, size_t count);
/* Runs the forward pass. */
lvk_status lvk_model_forward(lvk_model_t *m);
/* Reads a tensor computed by the last forward pass (or a constant). */
lvk_status lvk_model_read(lvk_model_t *m, const char *name, float *data, size_t count);

/* Backward: seeds d(objective)/d(tensor) for the named tensor with
 * `seed` (same element count as the tensor), propagates to the graph input,
 * and reads the input gradient into grad (input element count). Needs
 * opts.gradients and a forward pass first. */
lvk_status lvk_model_backward(lvk_model_t *m, const char *tensor, const float *seed,
                              size_t seed_count, float *grad, size_t grad_count);

#ifdef __cplusplus
}
#endif
#endif
