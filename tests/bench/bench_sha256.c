/*
 * bench_sha256.c — SHA-256 throughput over 64 KiB updates (the size of a
 * pool block, what a tap sees), with the block function the CPU allows and
 * with the portable one, next to memcpy on the same sizes.
 */
#include "bench.h"
#include "sluice/sha256.h"

static double sha_gbps(const unsigned char *buf, size_t size, size_t total, int accel)
{
    size_t iters = total / size ? total / size : 1;
    double best = 0;
    for (int r = 0; r < 3; r++) {
        sluice_sha256_ctx c;
        unsigned char d[SLUICE_SHA256_SIZE];
        sluice_sha256_init(&c);
        c._accel &= accel;
        double t0 = bench_now();
        for (size_t i = 0; i < iters; i++)
            sluice_sha256_update(&c, buf, size);
        sluice_sha256_final(&c, d);
        bench_sink_ptr(d);
        double gbps = (double)iters * (double)size / (bench_now() - t0) / 1e9;
        if (gbps > best)
            best = gbps;
    }
    return best;
}

int main(void)
{
    const size_t size = 64 * 1024;
    unsigned char *buf = malloc(size);
    for (size_t i = 0; i < size; i++)
        buf[i] = (unsigned char)(i * 131 + 7);
    double scale = bench_scale();
    sluice_sha256_ctx probe;
    sluice_sha256_init(&probe);

    bench_line("sha256", sha_gbps(buf, size, (size_t)(256e6 * scale), 1), "GB/s");
    if (probe._accel) /* the line above used the SHA instructions */
        bench_line("sha256_portable", sha_gbps(buf, size, (size_t)(64e6 * scale), 0), "GB/s");
    bench_line("sha256_memcpy_baseline", bench_memcpy_gbps(size, (size_t)(1e9 * scale)), "GB/s");
    free(buf);
    return 0;
}
