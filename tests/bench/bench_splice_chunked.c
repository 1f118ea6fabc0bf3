/*
 * bench_splice_chunked.c — where splicing chunk data beats copying it: a
 * chunked body of N-byte chunks forwarded chunked over TCP loopback, once
 * with every chunk spliced (splice_min 1) and once through user space
 * (SLUICE_SPLICE_COPY), for several N. The forwarding thread's CPU time per
 * GiB is measured (the sending and receiving threads do the same work in
 * both runs); the ratio spliced/copied below 1 is where splicing pays.
 */
#include "bench.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#define BODY (256u << 20)

typedef struct side {
    int fd;
    size_t chunk;
} side;

static void tcp_pair(int sv[2])
{
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    bind(l, (struct sockaddr *)&a, sizeof a);
    listen(l, 1);
    getsockname(l, (struct sockaddr *)&a, &al);
    sv[1] = socket(AF_INET, SOCK_STREAM, 0);
    connect(sv[1], (struct sockaddr *)&a, sizeof a);
    sv[0] = accept(l, NULL, NULL);
    close(l);
    setsockopt(sv[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(sv[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Sends BODY bytes as chunks of s->chunk bytes, then the terminator. */
static void *sender(void *arg)
{
    side *s = arg;
    static unsigned char data[1u << 20];
    char line[32];
    for (size_t off = 0; off < BODY; off += s->chunk) {
        int n = snprintf(line, sizeof line, "%zx\r\n", s->chunk);
        if (send(s->fd, line, (size_t)n, 0) != n)
            return NULL;
        for (size_t k = 0; k < s->chunk;) {
            size_t want = s->chunk - k < sizeof data ? s->chunk - k : sizeof data;
            ssize_t got = send(s->fd, data, want, 0);
            if (got <= 0)
                return NULL;
            k += (size_t)got;
        }
        send(s->fd, "\r\n", 2, 0);
    }
    send(s->fd, "0\r\n\r\n", 5, 0);
    return NULL;
}

static void *receiver(void *arg)
{
    side *s = arg;
    static unsigned char buf[1u << 20];
    while (recv(s->fd, buf, sizeof buf, 0) > 0)
        ;
    return NULL;
}

static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU seconds per GiB the forwarding thread spent. */
static double forward(size_t chunk, unsigned flags)
{
    int src[2], dst[2];
    tcp_pair(src);
    tcp_pair(dst);
    sluice_pool *pool;
    sluice_io *sio, *dio;
    sluice_reader *r;
    sluice_pool_new(NULL, &pool);
    sluice_io_fd_new(pool, src[0], 0, &sio);
    sluice_io_fd_new(pool, dst[0], 0, &dio);
    sluice_reader_new(pool, sio, NULL, &r);
    side ss = {src[1], chunk}, rs = {dst[1], chunk};
    pthread_t ts, tr;
    pthread_create(&ts, NULL, sender, &ss);
    pthread_create(&tr, NULL, receiver, &rs);
    sluice_pump p;
    sluice_splice_config cfg = {.flags = flags, .splice_min = 1};
    sluice_pump_splice_init(&p, pool, r, dio, SLUICE_FRAMING_CHUNKED, NULL, &cfg);
    double t0 = thread_cpu();
    int rc = sluice_pump_run(&p, -1); /* waits in poll(2): only work is counted */
    double cpu = thread_cpu() - t0;
    sluice_pump_close(&p);
    shutdown(dst[0], SHUT_WR);
    pthread_join(ts, NULL);
    pthread_join(tr, NULL);
    sluice_reader_close(r);
    sluice_io_close(sio);
    sluice_io_close(dio);
    sluice_pool_close(pool);
    close(src[0]), close(src[1]), close(dst[0]), close(dst[1]);
    return rc == 0 ? cpu * (double)(1u << 30) / BODY : -1;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    static const size_t sizes[] = {4096, 8192, 16384, 32768, 65536, 262144};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        double copy = forward(sizes[i], SLUICE_SPLICE_COPY);
        double spl = forward(sizes[i], 0);
        char name[64];
        snprintf(name, sizeof name, "chunked_splice_%zuk_ratio", sizes[i] / 1024);
        bench_line(name, copy > 0 ? spl / copy : -1, "x");
    }
    return 0;
}
