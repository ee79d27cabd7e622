/* What the benchmark programs (bench_forward.c, bench_render.c) share: a
 * millisecond clock, JSON string output and the peak-RSS reply of their
 * one-line protocols. */
#ifndef LVK_BENCH_UTIL_H
#define LVK_BENCH_UTIL_H

#include <stdio.h>
#include <sys/resource.h>
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

/* The reply to the "rss" command: this process's peak resident set size,
 * which on lavapipe includes the device memory. */
static inline void bench_print_rss(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"peak_rss_bytes\": %lld}\n", (long long)ru.ru_maxrss * 1024);
}

#endif
