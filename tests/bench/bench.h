/*
 * bench.h — shared helpers for micro-benchmarks (header-only).
 *
 * Every benchmark prints lines "bench: <name> <value> <unit>" on stdout so
 * scripts can read them, and measures a baseline (memcpy on the same sizes)
 * in the same run, because absolute numbers drift on shared machines.
 */
#ifndef SLUICE_BENCH_H
#define SLUICE_BENCH_H

#include "sluice.h"
#include "testing.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Keeps the optimiser from deleting work whose result is otherwise unused. */
static inline void bench_sink_ptr(const void *p)
{
    __asm__ volatile("" : : "r"(p) : "memory");
}

static inline void bench_line(const char *name, double value, const char *unit)
{
    printf("bench: %s %.3f %s\n", name, value, unit);
    fflush(stdout);
}

/* memcpy throughput in GB/s (1e9 bytes/s) copying `size`-byte buffers,
 * `total` bytes in all, best of 3. */
static inline double bench_memcpy_gbps(size_t size, size_t total)
{
    unsigned char *a = malloc(size), *b = malloc(size);
    memset(a, 0x5a, size);
    memset(b, 0, size);
    size_t iters = total / size ? total / size : 1;
    double best = 0;
    for (int r = 0; r < 3; r++) {
        double t0 = bench_now();
        for (size_t i = 0; i < iters; i++) {
            memcpy(b, a, size);
            bench_sink_ptr(b);
            a[i % size] ^= 1; /* defeat hoisting */
        }
        double t = bench_now() - t0;
        double gbps = (double)iters * (double)size / t / 1e9;
        if (gbps > best)
            best = gbps;
    }
    free(a);
    free(b);
    return best;
}

/* Environment knob for quick runs: BENCH_SCALE=0.1 shrinks the work. */
static inline double bench_scale(void)
{
    const char *s = getenv("BENCH_SCALE");
    double v = s ? atof(s) : 1.0;
    return v > 0 ? v : 1.0;
}

#endif
