/* Small device-buffer and random-number utilities for tests that record
 * kernels directly (not through a model): a few float buffers in one arena,
 * upload/download, one-shot recordings, and a seeded uniform generator. */
#ifndef LVK_TEST_DEVBUF_H
#define LVK_TEST_DEVBUF_H

#include <stddef.h>

#include "vk/lvk_vk.h"

#define LVK_TEST_MAX_BUFS 6

struct dev {
    struct lvk_buf b[LVK_TEST_MAX_BUFS];
    struct lvk_arena arena;
    int n;
};

/* Allocates n buffers of counts[i] floats on the shared test device. */
void dev_alloc(struct dev *d, const size_t *counts, int n);
void dev_free(struct dev *d);
void put(const struct lvk_buf *b, const float *x, size_t n);
void get(const struct lvk_buf *b, float *x, size_t n);
/* A recording on the shared device; finish() ends, submits and frees it. */
struct lvk_cmd *begin(void);
void finish(struct lvk_cmd *cmd);
/* xorshift32, uniform in [lo, hi). */
double uniform(unsigned *s, double lo, double hi);
/* The same stream, in (0, 1): never 0, so safe under log(). */
double uniform_open(unsigned *s);
void fill(float *x, size_t n, unsigned *seed, double lo, double hi);

#endif
