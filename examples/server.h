/*
 * server.h — the epoll host shared by sluice-proxy and sluice-sink
 * (header-only, part of the examples, not of the library).
 *
 * The library never picks an event loop; this is one host's choice. Each
 * connection is a state machine the program drives with drive(): it polls its
 * streams, sinks and pumps until they say PENDING, and reports what it waits
 * for as sluice_interest values (fd, events, deadline). The loop turns those
 * into epoll registrations (level-triggered: PENDING only ever follows
 * EAGAIN, so no wake-up is spurious) and a timeout for the nearest deadline.
 *
 * Shutdown: SIGINT/SIGTERM (via signalfd) close the listening socket at once,
 * the program closes idle connections, in-flight ones get up to 10 s.
 * Workers: with --workers N the listening socket is bound N times with
 * SO_REUSEPORT and N-1 children are forked, each running its own loop.
 */
#ifndef SLUICE_EXAMPLES_SERVER_H
#define SLUICE_EXAMPLES_SERVER_H

#include "net.h"

#include <sluice.h>

#include <signal.h>
#include <stdint.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

#define SRV_MAX_WATCH 2      /* fds one connection may wait on */
#define SRV_DRAIN_MS 10000   /* in-flight grace period on shutdown */

typedef struct srv srv;
typedef struct srv_conn srv_conn;

/* What a program plugs in. */
typedef struct srv_ops {
    /* A new client connection (fd is non-blocking; the callee owns it).
     * Returns the connection or NULL (then the fd must have been closed). */
    srv_conn *(*accept)(srv *s, int fd);
    /* Makes all progress possible, then fills the connection's watches via
     * srv_watch(). Returns 0 to keep it, -1 when it is finished (the loop
     * then calls destroy). */
    int (*drive)(srv_conn *c);
    /* Closes and frees everything the connection owns. */
    void (*destroy)(srv_conn *c);
    /* 1 if the connection is between requests and may be closed at once on
     * shutdown. */
    int (*idle)(srv_conn *c);
} srv_ops;

/* Every connection embeds this first. */
struct srv_conn {
    srv *srv;
    srv_conn *prev, *next;
    struct {
        int fd;
        uint32_t events; /* as registered with epoll */
    } reg[SRV_MAX_WATCH];
    sluice_interest want[SRV_MAX_WATCH]; /* filled by drive() */
    int nwant;
    int64_t deadline;                    /* nearest deadline, -1 none */
    int immediate;                       /* drive again without waiting */
};

struct srv {
    const srv_ops *ops;
    int epfd, lfd, sigfd;
    srv_conn *conns;
    size_t nconns;
    int draining;
    int64_t drain_deadline;
    sluice_pool *pool;
    void *ud;
};

static inline void srv_conn_init(srv *s, srv_conn *c)
{
    memset(c, 0, sizeof *c);
    c->srv = s;
    for (int i = 0; i < SRV_MAX_WATCH; i++)
        c->reg[i].fd = -1;
    c->deadline = -1;
}

/* Called from drive(): wait for `w` (ignored when it asks for nothing). */
static inline void srv_watch(srv_conn *c, const sluice_interest *w)
{
    if (w->fd < 0 && w->deadline_ms < 0) {
        c->immediate = 1;
        return;
    }
    if (w->deadline_ms >= 0 && (c->deadline < 0 || w->deadline_ms < c->deadline))
        c->deadline = w->deadline_ms;
    if (w->fd < 0)
        return;
    for (int i = 0; i < c->nwant; i++)
        if (c->want[i].fd == w->fd) {
            c->want[i].events |= w->events;
            return;
        }
    if (c->nwant < SRV_MAX_WATCH)
        c->want[c->nwant++] = *w;
}

/* A deadline of the program's own (e.g. the request-head deadline). */
static inline void srv_deadline(srv_conn *c, int64_t at)
{
    if (at >= 0 && (c->deadline < 0 || at < c->deadline))
        c->deadline = at;
}

static inline uint32_t srv_epoll_events(int events)
{
    return ((events & SLUICE_WANT_READ) ? EPOLLIN : 0u) |
           ((events & SLUICE_WANT_WRITE) ? EPOLLOUT : 0u);
}

/* Brings the epoll registrations in line with c->want. */
static inline void srv_sync(srv_conn *c)
{
    srv *s = c->srv;
    /* drop registrations no longer wanted */
    for (int i = 0; i < SRV_MAX_WATCH; i++) {
        if (c->reg[i].fd < 0)
            continue;
        int still = 0;
        for (int j = 0; j < c->nwant; j++)
            still |= c->want[j].fd == c->reg[i].fd;
        if (!still) {
            epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->reg[i].fd, NULL);
            c->reg[i].fd = -1;
        }
    }
    for (int j = 0; j < c->nwant; j++) {
        uint32_t ev = srv_epoll_events(c->want[j].events);
        int slot = -1, free_slot = -1;
        for (int i = 0; i < SRV_MAX_WATCH; i++) {
            if (c->reg[i].fd == c->want[j].fd)
                slot = i;
            else if (c->reg[i].fd < 0 && free_slot < 0)
                free_slot = i;
        }
        struct epoll_event e = {.events = ev, .data.ptr = c};
        if (slot >= 0) {
            if (c->reg[slot].events != ev) {
                epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->want[j].fd, &e);
                c->reg[slot].events = ev;
            }
        } else if (free_slot >= 0) {
            epoll_ctl(s->epfd, EPOLL_CTL_ADD, c->want[j].fd, &e);
            c->reg[free_slot].fd = c->want[j].fd;
            c->reg[free_slot].events = ev;
        }
    }
}

/* Forgets an fd the connection is about to close (epoll drops closed fds by
 * itself, but our bookkeeping must not keep a number the kernel may reuse). */
static inline void srv_forget(srv_conn *c, int fd)
{
    for (int i = 0; i < SRV_MAX_WATCH; i++)
        if (c->reg[i].fd == fd && fd >= 0) {
            epoll_ctl(c->srv->epfd, EPOLL_CTL_DEL, fd, NULL);
            c->reg[i].fd = -1;
        }
}

static inline void srv_remove(srv_conn *c)
{
    srv *s = c->srv;
    for (int i = 0; i < SRV_MAX_WATCH; i++)
        srv_forget(c, c->reg[i].fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    s->ops->destroy(c);
}

/* Drives c once and re-registers, or removes it when it is finished. */
static inline void srv_run_conn(srv_conn *c)
{
    for (int round = 0; round < 64; round++) {
        c->nwant = 0;
        c->deadline = -1;
        c->immediate = 0;
        if (c->srv->ops->drive(c) < 0) {
            srv_remove(c);
            return;
        }
        if (!c->immediate)
            break;
    }
    if (c->immediate) /* still wants to run: come back on the next turn */
        c->deadline = sluice_now_ms();
    srv_sync(c);
}

static inline void srv_add(srv *s, srv_conn *c)
{
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    srv_run_conn(c);
}

static inline void srv_begin_drain(srv *s)
{
    if (s->draining)
        return;
    s->draining = 1;
    s->drain_deadline = sluice_now_ms() + SRV_DRAIN_MS;
    if (s->lfd >= 0) {
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->lfd, NULL);
        close(s->lfd);
        s->lfd = -1;
    }
    for (srv_conn *c = s->conns, *n; c; c = n) {
        n = c->next;
        if (s->ops->idle(c))
            srv_remove(c);
    }
}

static inline void srv_accept_all(srv *s)
{
    for (;;) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or EMFILE and friends: try again later */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        srv_conn *c = s->ops->accept(s, fd);
        if (c)
            srv_add(s, c);
    }
}

/* Runs the loop until shutdown completes. Returns the exit status. */
static inline int srv_loop(srv *s)
{
    struct epoll_event ev[64];
    for (;;) {
        int64_t now = sluice_now_ms(), next = -1;
        if (s->draining) {
            if (s->nconns == 0 || now >= s->drain_deadline)
                return 0;
            next = s->drain_deadline;
        }
        for (srv_conn *c = s->conns, *n; c; c = n) {
            n = c->next;
            if (c->deadline >= 0 && c->deadline <= now)
                srv_run_conn(c); /* may remove c */
        }
        for (srv_conn *c = s->conns; c; c = c->next)
            if (c->deadline >= 0 && (next < 0 || c->deadline < next))
                next = c->deadline;
        int timeout = next < 0 ? -1 : (int)(next > now ? next - now : 0);
        int n = epoll_wait(s->epfd, ev, 64, timeout);
        if (n < 0 && errno != EINTR)
            return 1;
        for (int i = 0; i < n; i++) {
            void *p = ev[i].data.ptr;
            if (p == &s->lfd) {
                if (s->lfd >= 0)
                    srv_accept_all(s);
            } else if (p == &s->sigfd) {
                struct signalfd_siginfo si;
                while (read(s->sigfd, &si, sizeof si) == sizeof si)
                    ;
                srv_begin_drain(s);
            } else {
                srv_conn *c = p;
                /* skip connections removed earlier in this batch */
                int alive = 0;
                for (srv_conn *x = s->conns; x && !alive; x = x->next)
                    alive = x == c;
                if (alive)
                    srv_run_conn(c);
            }
        }
        if (s->draining)
            for (srv_conn *c = s->conns, *nx; c; c = nx) {
                nx = c->next;
                if (s->ops->idle(c))
                    srv_remove(c);
            }
    }
}

/*
 * Binds `workers` listening sockets on addr (SO_REUSEPORT when > 1; port 0
 * resolved once so all share the kernel's pick), prints `listening on
 * HOST:PORT`, forks workers-1 children and runs the loop in each process.
 * The parent forwards SIGINT/SIGTERM to its children and reaps them.
 */
static inline int srv_main(srv *s, const srv_ops *ops, net_addr *addr, int workers)
{
    s->ops = ops;
    if (workers < 1)
        workers = 1;
    int fds[64];
    if (workers > 64)
        workers = 64;
    for (int i = 0; i < workers; i++) {
        fds[i] = net_listen(addr, workers > 1);
        if (fds[i] < 0) {
            fprintf(stderr, "listen on %s: %s\n", addr->text, strerror(errno));
            return 1;
        }
        if (i == 0) { /* port 0: every worker binds the port the kernel chose */
            struct sockaddr_storage ss;
            socklen_t len = sizeof ss;
            getsockname(fds[0], (struct sockaddr *)&ss, &len);
            memcpy(&addr->ss, &ss, len);
            addr->len = len;
        }
    }
    char text[128];
    net_local_text(fds[0], text, sizeof text);

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);

    printf("listening on %s\n", text);
    fflush(stdout);

    pid_t kids[64];
    int nkids = 0, me = 0;
    for (int i = 1; i < workers; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            me = i;
            nkids = 0;
            break;
        }
        if (pid > 0)
            kids[nkids++] = pid;
    }
    for (int i = 0; i < workers; i++)
        if (i != me)
            close(fds[i]);

    s->lfd = fds[me];
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &s->lfd};
    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &e);
    e.data.ptr = &s->sigfd;
    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->sigfd, &e);

    int rc = srv_loop(s);

    for (srv_conn *c = s->conns, *n; c; c = n) { /* past the grace period */
        n = c->next;
        srv_remove(c);
    }
    for (int i = 0; i < nkids; i++)
        kill(kids[i], SIGTERM);
    for (int i = 0; i < nkids; i++)
        waitpid(kids[i], NULL, 0);
    if (s->lfd >= 0)
        close(s->lfd);
    close(s->sigfd);
    close(s->epfd);
    return rc;
}

#endif
