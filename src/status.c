/* Thread-local last-error message behind lvk_fail()/lvk_last_error(). */
#include <stdarg.h>
#include <string.h>

#include "lvk_util.h"

static _Thread_local char g_msg[1024];

const char *lvk_status_str(lvk_status s)
{
    switch (s) {
    case LVK_OK: return "LVK_OK";
    case LVK_ERR_INVALID_ARG: return "LVK_ERR_INVALID_ARG";
    case LVK_ERR_IO: return "LVK_ERR_IO";
    case LVK_ERR_FORMAT: return "LVK_ERR_FORMAT";
    case LVK_ERR_UNSUPPORTED: return "LVK_ERR_UNSUPPORTED";
    case LVK_ERR_NOT_FOUND: return "LVK_ERR_NOT_FOUND";
    case LVK_ERR_NO_DEVICE: return "LVK_ERR_NO_DEVICE";
    case LVK_ERR_HOST_OOM: return "LVK_ERR_HOST_OOM";
    case LVK_ERR_DEVICE_OOM: return "LVK_ERR_DEVICE_OOM";
    case LVK_ERR_VULKAN: return "LVK_ERR_VULKAN";
    }
    return "LVK_ERR_UNKNOWN";
}

const char *lvk_last_error(void) { return g_msg; }

lvk_status lvk_fail(lvk_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    return s;
}

void lvk_error_prefix(const char *fmt, ...)
{
    char prefix[512], joined[sizeof prefix + sizeof g_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    snprintf(joined, sizeof joined, "%s%s", prefix, g_msg);
    /* Truncation is intended: the start of a message says the most. */
    size_t n = strlen(joined);
    if (n >= sizeof g_msg)
        n = sizeof g_msg - 1;
    memcpy(g_msg, joined, n);
    g_msg[n] = 0;
}

void *lvk_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        lvk_fail(LVK_ERR_HOST_OOM, "out of host memory (%zu x %zu bytes)", n, size);
    return p;
}

bool lvk_env_on(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}
