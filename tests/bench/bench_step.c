/*
 * bench_step.c — how long one sluice_pump_step holds a host loop.
 *
 * A host loop (poll(2), as examples/relay.c) moves 256 MiB from one socket
 * pair to another while a thread keeps the source full and another drains
 * the destination, so the source never runs dry: the worst case for a loop
 * that has other connections to serve. Each step is timed. Before steps
 * were bounded, a step moved whatever the socket kept supplying (hundreds
 * of MB, hundreds of ms); with step_bytes it returns after about that many
 * bytes. Printed for the copy pump (body stream -> writer) and the splice
 * pump, with step_bytes = SIZE_MAX (unbounded, as before) and the default:
 * the longest step, the 99th percentile, and MiB/s, in the same run.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#define TOTAL (256u << 20)
#define MAX_STEPS (1u << 20)

static void *feed(void *arg)
{
    int fd = *(int *)arg;
    static char buf[1 << 20];
    memset(buf, 'x', sizeof buf);
    for (size_t sent = 0; sent < TOTAL;) {
        size_t n = TOTAL - sent < sizeof buf ? TOTAL - sent : sizeof buf;
        ssize_t k = send(fd, buf, n, MSG_NOSIGNAL);
        if (k <= 0)
            break;
        sent += (size_t)k;
    }
    return NULL;
}

static void *drain(void *arg)
{
    int fd = *(int *)arg;
    static char buf[1 << 20];
    while (recv(fd, buf, sizeof buf, 0) > 0)
        ;
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void run(sluice_pool *pool, const char *name, int splice, size_t step_bytes)
{
    int src[2], dst[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, src) < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, dst) < 0)
        abort();
    /* deep buffers, so the feeder stays ahead and the source does not run
     * dry between reads (root may force past wmem_max; else what it gives) */
    int big = 16 << 20;
    if (setsockopt(src[1], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big) < 0)
        setsockopt(src[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    if (setsockopt(dst[0], SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big) < 0)
        setsockopt(dst[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    sluice_io *sio, *dio;
    sluice_reader *r;
    if (sluice_io_fd_new(pool, src[0], 0, &sio) < 0 || sluice_io_fd_new(pool, dst[0], 0, &dio) < 0 ||
        sluice_reader_new(pool, sio, NULL, &r) < 0)
        abort();
    sluice_pump p;
    sluice_stream *body = NULL;
    sluice_sink *w = NULL;
    if (splice) {
        sluice_splice_config cfg = {.step_bytes = step_bytes};
        if (sluice_pump_splice_init(&p, pool, r, dio, SLUICE_FRAMING_LENGTH(TOTAL), NULL, &cfg) < 0)
            abort();
    } else {
        if (sluice_body_new(pool, r, SLUICE_FRAMING_LENGTH(TOTAL), NULL, &body) < 0 ||
            sluice_writer_new(pool, dio, SLUICE_FRAMING_CLOSE, NULL, NULL, &w) < 0)
            abort();
        sluice_pump_init(&p, body, w, &(sluice_pump_config){.step_bytes = step_bytes});
    }
    pthread_t tf, td;
    pthread_create(&tf, NULL, feed, &src[1]);
    pthread_create(&td, NULL, drain, &dst[1]);
    static double ms[MAX_STEPS];
    size_t n = 0;
    double t0 = bench_now();
    for (;;) {
        sluice_interest want;
        double a = bench_now();
        sluice_pump_status st = sluice_pump_step(&p, &want);
        if (n < MAX_STEPS)
            ms[n++] = (bench_now() - a) * 1e3;
        if (st != SLUICE_PUMP_PENDING) {
            if (st != SLUICE_PUMP_DONE)
                abort();
            break;
        }
        if (want.fd >= 0) {
            struct pollfd pfd = {want.fd, (short)(want.events & SLUICE_WANT_READ ? POLLIN : POLLOUT), 0};
            poll(&pfd, 1, 1000);
        }
    }
    double secs = bench_now() - t0;
    sluice_pump_close(&p);
    sluice_sink_close(w);
    sluice_stream_close(body);
    sluice_reader_close(r);
    sluice_io_close(dio);
    sluice_io_close(sio);
    shutdown(dst[0], SHUT_WR);
    pthread_join(tf, NULL);
    pthread_join(td, NULL);
    for (int i = 0; i < 2; i++)
        close(src[i]), close(dst[i]);
    qsort(ms, n, sizeof ms[0], cmp_double);
    char line[96];
    snprintf(line, sizeof line, "step_%s_longest", name);
    bench_line(line, ms[n - 1], "ms");
    snprintf(line, sizeof line, "step_%s_p99", name);
    bench_line(line, ms[n * 99 / 100], "ms");
    snprintf(line, sizeof line, "step_%s_mib_s", name);
    bench_line(line, TOTAL / 1048576.0 / secs, "MiB/s");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* the splice pump splices only then */
    sluice_pool *pool;
    if (sluice_pool_new(NULL, &pool) < 0)
        return 1;
    run(pool, "copy_unbounded", 0, SIZE_MAX);
    run(pool, "copy_default", 0, 0);
    run(pool, "splice_unbounded", 1, SIZE_MAX);
    run(pool, "splice_default", 1, 0);
    sluice_pool_close(pool);
    return 0;
}
