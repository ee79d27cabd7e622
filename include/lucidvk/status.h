/* lucid-vk: status codes and error messages.
 *
 * Every fallible function returns an lvk_status. On failure it also records a
 * human-readable message (what failed and where: file, node, layer) that
 * lvk_last_error() returns until the next failure on the same thread. */
#ifndef LUCIDVK_STATUS_H
#define LUCIDVK_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lvk_status {
    LVK_OK                 = 0,
    LVK_ERR_INVALID_ARG    = -1,  /* caller passed something out of range */
    LVK_ERR_IO             = -2,  /* file could not be opened, read or written */
    LVK_ERR_FORMAT         = -3,  /* file is corrupt, truncated or not what it claims */
    LVK_ERR_UNSUPPORTED    = -4,  /* valid input that lucid-vk cannot handle (op, dtype) */
    LVK_ERR_NOT_FOUND      = -5,  /* unknown tensor, layer or device name */
    LVK_ERR_NO_DEVICE      = -6,  /* no usable Vulkan device */
    LVK_ERR_HOST_OOM       = -7,  /* malloc failed */
    LVK_ERR_DEVICE_OOM     = -8,  /* device memory exhausted */
    LVK_ERR_VULKAN         = -9,  /* any other Vulkan failure */
} lvk_status;

/* Short constant name of a status ("LVK_ERR_FORMAT"). Never NULL. */
const char *lvk_status_str(lvk_status s);

/* Message of the last failure on this thread, or "" if none. Never NULL. */
const char *lvk_last_error(void);

#ifdef __cplusplus
}
#endif
#endif
