/* Device-buffer and random-number utilities for tests (see devbuf.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "support/devbuf.h"
#include "support/op_harness.h"

/* Allocates n buffers of counts[i] floats. */
void dev_alloc(struct dev *d, const size_t *counts, int n)
{
    VkDeviceSize sizes[LVK_TEST_MAX_BUFS];
    assert_true(n <= LVK_TEST_MAX_BUFS);
    for (int i = 0; i < n; ++i)
        sizes[i] = counts[i] * sizeof(float);
    memset(d, 0, sizeof *d);
    d->n = n;
    assert_int_equal(lvk_arena_create(lvk_test_ctx(), sizes, n, d->b, &d->arena), LVK_OK);
}

void dev_free(struct dev *d)
{
    lvk_arena_destroy(lvk_test_ctx(), d->b, d->n, &d->arena);
}

void put(const struct lvk_buf *b, const float *x, size_t n)
{
    assert_int_equal(lvk_buf_upload(lvk_test_ctx(), b, 0, x, n * sizeof *x), LVK_OK);
}

void get(const struct lvk_buf *b, float *x, size_t n)
{
    assert_int_equal(lvk_buf_download(lvk_test_ctx(), b, 0, x, n * sizeof *x), LVK_OK);
}

struct lvk_cmd *begin(void)
{
    struct lvk_cmd *cmd;
    assert_int_equal(lvk_cmd_create(lvk_test_ctx(), false, &cmd), LVK_OK);
    assert_int_equal(lvk_cmd_begin(cmd), LVK_OK);
    return cmd;
}

void finish(struct lvk_cmd *cmd)
{
    assert_int_equal(lvk_cmd_end(cmd), LVK_OK);
    assert_int_equal(lvk_cmd_submit(cmd), LVK_OK);
    lvk_cmd_destroy(cmd);
}

/* xorshift32, uniform in [lo, hi). */
static unsigned xorshift32(unsigned *s)
{
    unsigned x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

double uniform(unsigned *s, double lo, double hi)
{
    return lo + (hi - lo) * ((xorshift32(s) >> 8) / 16777216.0);
}

double uniform_open(unsigned *s)
{
    return ((xorshift32(s) >> 8) + 0.5) / 16777216.0;
}

void fill(float *x, size_t n, unsigned *seed, double lo, double hi)
{
    for (size_t i = 0; i < n; ++i)
        x[i] = (float)uniform(seed, lo, hi);
}
