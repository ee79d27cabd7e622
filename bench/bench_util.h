/* What the benchmark programs (bench_forward.c, bench_render.c) share: a
 * millisecond clock and JSON string output for their one-line replies. */
#ifndef LVK_BENCH_UTIL_H
#define LVK_BENCH_UTIL_H

#include <stdio.h>
#include <time.h>

/* Milliseconds on clock `id` (CLOCK_MONOTONIC for wall time,
 * CLOCK_PROCESS_CPUTIME_ID for the CPU time of every thread). */
static inline double bench_clock_ms(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

/* s as a JSON string on standard output. */
static inline void bench_json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

#endif
