/*
 * relay.c — the floor a proxy is measured against: a TCP relay that knows
 * nothing about HTTP and only moves bytes.
 *
 *   -m copy    read() into a buffer of -b bytes (default 1 MiB), write() it
 *              out: one copy in and one out per byte, the fewest syscalls a
 *              user-space relay can make. Its CPU per GiB is what "parsing
 *              costs next to nothing" is compared with.
 *   -m splice  socket -> pipe (-b bytes) -> socket with splice(2): the bytes
 *              never reach user space; the reference for plain passthrough.
 *
 * One epoll thread, edge-triggered: each event pumps both directions of its
 * connection until they block, so no readiness is ever lost. End of input on
 * one side is passed on as shutdown(SHUT_WR); the pair is closed once both
 * directions ended or either failed. The upstream connect is blocking, which
 * is instant on loopback, the only place this program is meant to run.
 *
 * usage: relay [-l HOST:PORT] -u HOST:PORT [-m copy|splice] [-b BYTES]
 * Prints "listening on HOST:PORT" once ready (port 0 picks a free port).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

struct dir {
    int from, to;
    bool eof, done;
    char *buf;     /* copy mode: mmap'd, so a closed pair gives its pages back */
    int pipe[2];   /* splice mode */
    size_t off, len; /* copy: buf[off, len) pending; splice: len bytes in the pipe */
};

struct pair {
    struct dir d[2]; /* 0: client -> upstream, 1: upstream -> client */
    size_t bufsize;
    bool dead;
    struct pair *next_dead;
};

struct relay {
    int ep;
    bool splice_mode;
    size_t bufsize;
    struct sockaddr_in upstream;
};

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static bool would_block(void)
{
    return errno == EAGAIN || errno == EWOULDBLOCK;
}

/* Moves bytes one way until a side blocks. Returns false on an error that
 * ends the pair. */
static bool pump(struct relay *r, struct dir *d)
{
    while (!d->done) {
        if (d->len > d->off) {
            ssize_t n;
            if (r->splice_mode)
                n = splice(d->pipe[0], NULL, d->to, NULL, d->len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            else
                n = send(d->to, d->buf + d->off, d->len - d->off, MSG_NOSIGNAL);
            if (n < 0)
                return errno == EINTR || would_block();
            if (r->splice_mode)
                d->len -= (size_t)n;
            else
                d->off += (size_t)n;
            continue;
        }
        d->off = d->len = 0;
        if (d->eof) {
            shutdown(d->to, SHUT_WR);
            d->done = true;
            break;
        }
        ssize_t n;
        if (r->splice_mode)
            n = splice(d->from, NULL, d->pipe[1], NULL, r->bufsize, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        else
            n = read(d->from, d->buf, r->bufsize);
        if (n < 0)
            return errno == EINTR || would_block();
        if (n == 0)
            d->eof = true;
        d->len = (size_t)n;
    }
    return true;
}

static void pair_free(struct pair *p)
{
    close(p->d[0].from);
    close(p->d[0].to);
    for (int i = 0; i < 2; i++) {
        if (p->d[i].buf)
            munmap(p->d[i].buf, p->bufsize);
        if (p->d[i].pipe[0] >= 0) {
            close(p->d[i].pipe[0]);
            close(p->d[i].pipe[1]);
        }
    }
    free(p);
}

static bool dir_init(struct relay *r, struct dir *d, int from, int to)
{
    d->from = from;
    d->to = to;
    d->pipe[0] = d->pipe[1] = -1;
    if (!r->splice_mode) {
        /* malloc would keep freed buffers resident and make the measured
         * RSS depend on earlier runs; untouched pages cost nothing. */
        d->buf = mmap(NULL, r->bufsize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (d->buf == MAP_FAILED) {
            d->buf = NULL;
            return false;
        }
        return true;
    }
    if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC) < 0)
        return false;
    fcntl(d->pipe[1], F_SETPIPE_SZ, (int)r->bufsize);
    return true;
}

static void on_accept(struct relay *r, int lfd)
{
    for (;;) {
        int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
            return;
        int ufd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
        struct pair *p = calloc(1, sizeof *p);
        if (ufd < 0 || !p ||
            connect(ufd, (struct sockaddr *)&r->upstream, sizeof r->upstream) < 0) {
            close(cfd);
            if (ufd >= 0)
                close(ufd);
            free(p);
            continue;
        }
        fcntl(ufd, F_SETFL, O_NONBLOCK);
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        p->d[0].pipe[0] = p->d[1].pipe[0] = -1;
        p->bufsize = r->bufsize;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = p};
        if (!dir_init(r, &p->d[0], cfd, ufd) || !dir_init(r, &p->d[1], ufd, cfd) ||
            epoll_ctl(r->ep, EPOLL_CTL_ADD, cfd, &ev) < 0 ||
            epoll_ctl(r->ep, EPOLL_CTL_ADD, ufd, &ev) < 0) {
            pair_free(p);
            continue;
        }
        /* Edge-triggered: the first edges may already be gone, so pump
         * once now; afterwards every edge comes through epoll. */
        if (!pump(r, &p->d[0]) || !pump(r, &p->d[1]))
            pair_free(p);
    }
}

static int parse_addr(const char *spec, struct sockaddr_in *a)
{
    char host[64];
    const char *colon = strrchr(spec, ':');
    if (!colon || (size_t)(colon - spec) >= sizeof host)
        return -1;
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    *a = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *listen_spec = "127.0.0.1:0", *up_spec = NULL;
    struct relay r = {.bufsize = 1u << 20};
    int opt;
    while ((opt = getopt(argc, argv, "l:u:m:b:")) != -1) {
        switch (opt) {
        case 'l': listen_spec = optarg; break;
        case 'u': up_spec = optarg; break;
        case 'm': r.splice_mode = strcmp(optarg, "splice") == 0; break;
        case 'b': r.bufsize = (size_t)atol(optarg); break;
        default: up_spec = NULL; optind = argc; break;
        }
    }
    struct sockaddr_in la;
    if (!up_spec || parse_addr(up_spec, &r.upstream) < 0 || parse_addr(listen_spec, &la) < 0 ||
        r.bufsize < 4096) {
        fprintf(stderr, "usage: relay [-l HOST:PORT] -u HOST:PORT [-m copy|splice] [-b BYTES]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    socklen_t len = sizeof la;
    r.ep = epoll_create1(EPOLL_CLOEXEC);
    if (lfd < 0 || r.ep < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(lfd, (struct sockaddr *)&la, sizeof la) < 0 || listen(lfd, 1024) < 0 ||
        getsockname(lfd, (struct sockaddr *)&la, &len) < 0) {
        perror("relay");
        return 1;
    }
    char host[INET_ADDRSTRLEN];
    printf("listening on %s:%u\n", inet_ntop(AF_INET, &la.sin_addr, host, sizeof host),
           ntohs(la.sin_port));
    fflush(stdout);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(r.ep, EPOLL_CTL_ADD, lfd, &lev);

    struct epoll_event evs[64];
    while (!stopping) {
        int n = epoll_wait(r.ep, evs, 64, -1);
        if (n < 0 && errno != EINTR)
            break;
        /* Both fds of a pair may be in one batch: pairs that end are freed
         * after the batch, not while another event may still point at them. */
        struct pair *dead = NULL;
        for (int i = 0; i < n; i++) {
            struct pair *p = evs[i].data.ptr;
            if (!p) {
                on_accept(&r, lfd);
                continue;
            }
            if (p->dead)
                continue;
            bool ok = pump(&r, &p->d[0]) && pump(&r, &p->d[1]);
            if (!ok || (p->d[0].done && p->d[1].done)) {
                p->dead = true;
                p->next_dead = dead;
                dead = p;
            }
        }
        while (dead) {
            struct pair *next = dead->next_dead;
            pair_free(dead);
            dead = next;
        }
    }
    close(lfd);
    return 0;
}
