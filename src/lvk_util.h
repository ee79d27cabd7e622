/* Internal helpers shared by every module: error reporting, checked
 * allocation and small arithmetic. Not part of the public API. */
#ifndef LVK_UTIL_H
#define LVK_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "lucidvk/status.h"

/* Records a printf-style failure message for lvk_last_error() and returns
 * `s`, so that a failure path reads `return lvk_fail(LVK_ERR_IO, "...")`. */
lvk_status lvk_fail(lvk_status s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prefixes the current error message with context ("model.onnx: " + msg). */
void lvk_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Propagates a failure status unchanged. */
#define LVK_CHECK(expr)                          \
    do {                                         \
        lvk_status lvk_check_s_ = (expr);        \
        if (lvk_check_s_ != LVK_OK)              \
            return lvk_check_s_;                 \
    } while (0)

/* Same, but jumps to a cleanup label with the status stored in `st`. */
#define LVK_TRY(st, expr)                        \
    do {                                         \
        (st) = (expr);                           \
        if ((st) != LVK_OK)                      \
            goto fail;                           \
    } while (0)

/* Invariant violations are bugs, not errors: report and abort. */
#define LVK_ASSERT(x)                                                         \
    do {                                                                      \
        if (!(x)) {                                                           \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__,        \
                    __LINE__, #x);                                            \
            abort();                                                          \
        }                                                                     \
    } while (0)

#define LVK_CEIL_DIV(a, b) (((a) + (b)-1) / (b))
#define LVK_MIN(a, b)      ((a) < (b) ? (a) : (b))
#define LVK_MAX(a, b)      ((a) > (b) ? (a) : (b))
#define LVK_ARRAY_LEN(a)   (sizeof(a) / sizeof((a)[0]))

/* calloc that reports failure through lvk_fail; NULL on failure. */
void *lvk_calloc(size_t n, size_t size);

/* Whether environment variable `name` is set to something other than "" or
 * "0": the switches meant for tests and comparisons (LVK_NO_FUSE, ...). */
bool lvk_env_on(const char *name);

#endif
