/*
 * server.c — the epoll host of the example programs.
 *
 * Cost per wake-up. A server with 10,000 idle keep-alive connections must
 * not pay for them on every request, so nothing here walks the connection
 * list in the steady state:
 *   - timers: each connection's nearest deadline sits in a binary min-heap
 *     (the connection stores its index, so moving or removing it is
 *     O(log n)); the loop runs the expired ones off the top and sleeps until
 *     the new top. A deadline that moves later, the common case (every read
 *     pushes an idle timeout on), is not re-filed until its old key comes up
 *     (see the heap below), so a busy connection costs the heap O(1) per
 *     request. A timer wheel would do as well, but deadlines here are
 *     arbitrary (30 s idle, 2 s linger, 5 ms pool retry) and a heap is
 *     exact;
 *   - liveness: a finished connection is marked closed, taken out of epoll
 *     and the heap at once, and destroyed after the batch of events; epoll
 *     events carry the fd, and a table by fd names its connection, so an
 *     event for a connection closed earlier in the batch finds no owner;
 *   - registrations: a connection's wishes are diffed against what epoll
 *     has (sync_watches), and an upstream socket going back to a pool stays
 *     registered (srv_park) for the next connection to take over, so a
 *     keep-alive exchange costs no epoll_ctl at all.
 * The only walks left are the one-off ones: shutdown and the idle sweep it
 * starts.
 *
 * At the descriptor limit accept(2) fails with EMFILE while the listening
 * socket stays readable, so a level-triggered loop would spin. The loop
 * takes the listening socket out of epoll instead (one log line), keeps
 * serving what it has, and puts it back when a connection closes (or after
 * SRV_ACCEPT_RETRY_MS). It pauses before the hard limit, too: connections
 * that cannot open their upstream socket are no use, so accepting stops at
 * RLIMIT_NOFILE minus the descriptors open at start minus a reserve for what
 * requests open themselves: 1/8 of the rest (nginx disables accepting at the
 * same fraction), at least fd_headroom.
 *
 * Memory after a burst: freed connections, requests and blocks go back to
 * malloc, and glibc keeps them in its heap (only the top is trimmed on
 * free), also in the holes between the small structs of connections that
 * stay. When SRV_TRIM_CHURN connections were opened or closed,
 * malloc_trim(0) runs SRV_TRIM_DELAY_MS later, which returns every free
 * page inside the heap too; at most once per SRV_TRIM_DELAY_MS, and only
 * while connections come and go.
 */
#define _GNU_SOURCE /* accept4 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

static void heap_update(srv *s, srv_conn *c);
static void heap_remove(srv *s, srv_conn *c);

void srv_conn_init(srv *s, srv_conn *c)
{
    memset(c, 0, sizeof *c);
    c->srv = s;
    for (int i = 0; i < SRV_MAX_WATCH; i++)
        c->reg[i].fd = -1;
    c->deadline = -1;
    c->fired = -1;
}

int srv_fired_read(const srv_conn *c, int fd)
{
    return fd >= 0 && c->fired == fd &&
           (c->fired_events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP));
}

void srv_watch(srv_conn *c, const sluice_interest *w)
{
    if (w->events & SLUICE_WANT_WAKE) {
        /* waits for memory: srv_wake names it when a block is kept; a
         * deadline (a head's) still holds meanwhile */
        srv_deadline(c, w->deadline_ms);
        return;
    }
    if (w->fd < 0 && w->deadline_ms < 0) {
        c->immediate = 1;
        return;
    }
    srv_deadline(c, w->deadline_ms);
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

void srv_deadline(srv_conn *c, int64_t at)
{
    if (at >= 0 && (c->deadline < 0 || at < c->deadline))
        c->deadline = at;
}

void srv_log_flush(srv *s)
{
    size_t off = 0;
    while (off < s->log_len) {
        ssize_t n = write(STDERR_FILENO, s->log + off, s->log_len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* stderr is gone or full: the log is best effort */
        off += (size_t)n;
    }
    s->log_len = 0;
}

void srv_log_line(srv *s, const char *line, size_t len)
{
    if (len > SRV_LOG_BUFFER / 8 - 1) /* a line stays a line: cut, not split */
        len = SRV_LOG_BUFFER / 8 - 1;
    if (s->log_len + len + 1 > sizeof s->log)
        srv_log_flush(s);
    memcpy(s->log + s->log_len, line, len);
    s->log[s->log_len + len] = '\n';
    s->log_len += len + 1;
}

void srv_log(srv *s, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n >= 0)
        srv_log_line(s, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

#define TOKEN_LISTEN UINT64_MAX       /* epoll data of the listening socket */
#define TOKEN_SIGNAL (UINT64_MAX - 1) /* ... and of the signalfd */

/* The table entry of fd, grown to hold it; NULL if out of memory. */
static srv_fd *fd_entry(srv *s, int fd)
{
    if ((size_t)fd >= s->nfds) {
        size_t n = s->nfds ? s->nfds : 256;
        while (n <= (size_t)fd)
            n *= 2;
        srv_fd *t = realloc(s->fds, n * sizeof *t);
        if (!t)
            return NULL;
        memset(t + s->nfds, 0, (n - s->nfds) * sizeof *t);
        s->fds = t;
        s->nfds = n;
    }
    return &s->fds[fd];
}

/* epoll_ctl for fd with its table entry kept in step (no call when epoll
 * has it so already); ADD and MOD fall back on each other, so a table that
 * went wrong heals instead of losing events. */
static void fd_register(srv *s, int fd, uint32_t events, srv_conn *owner)
{
    srv_fd *e = fd_entry(s, fd);
    if (!e || e->events != events) {
        struct epoll_event ev = {.events = events, .data.u64 = (uint64_t)fd};
        int op = e && e->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
        if (epoll_ctl(s->epfd, op, fd, &ev) < 0 && (errno == ENOENT || errno == EEXIST))
            epoll_ctl(s->epfd, op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
    }
    if (e)
        *e = (srv_fd){owner, events};
}

static void fd_unregister(srv *s, int fd)
{
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
    if ((size_t)fd < s->nfds)
        s->fds[fd] = (srv_fd){0};
}

void srv_forget(srv_conn *c, int fd)
{
    if (fd < 0)
        return;
    for (int i = 0; i < SRV_MAX_WATCH; i++)
        if (c->reg[i].fd == fd) {
            fd_unregister(c->srv, fd);
            c->reg[i].fd = -1;
            return;
        }
    srv_unpark(c->srv, fd); /* taken from a pool, closed before it was watched */
}

void srv_park(srv_conn *c, int fd)
{
    srv *s = c->srv;
    for (int i = 0; i < SRV_MAX_WATCH; i++) {
        if (c->reg[i].fd != fd || fd < 0)
            continue;
        c->reg[i].fd = -1;
        /* only a read interest may stay: a writable socket would fire at once */
        if (c->reg[i].events == EPOLLIN && (size_t)fd < s->nfds)
            s->fds[fd].owner = NULL;
        else
            fd_unregister(s, fd);
    }
}

void srv_unpark(srv *s, int fd)
{
    /* close(2) takes it out of epoll; only the table must not keep it */
    if (fd >= 0 && (size_t)fd < s->nfds && !s->fds[fd].owner)
        s->fds[fd] = (srv_fd){0};
}

static uint32_t epoll_events(int events)
{
    return ((events & SLUICE_WANT_READ) ? EPOLLIN : 0u) |
           ((events & SLUICE_WANT_WRITE) ? EPOLLOUT : 0u);
}

/*
 * Brings the epoll registrations in line with c->want, lazily: an fd no
 * longer wanted stays registered (a request's client socket while the
 * upstream answers, then wanted again for the next request), and is taken
 * out only if an event comes for it meanwhile (fd_event) or its slot is
 * needed. A keep-alive exchange then costs no epoll_ctl.
 */
static void sync_watches(srv_conn *c)
{
    srv *s = c->srv;
    for (int i = 0; i < SRV_MAX_WATCH; i++) {
        c->reg[i].wanted = 0;
        for (int j = 0; j < c->nwant && c->reg[i].fd >= 0; j++)
            c->reg[i].wanted |= c->want[j].fd == c->reg[i].fd;
    }
    for (int j = 0; j < c->nwant; j++) {
        int slot = -1, free_slot = -1;
        for (int i = 0; i < SRV_MAX_WATCH; i++) {
            if (c->reg[i].fd == c->want[j].fd)
                slot = i;
            else if (!c->reg[i].wanted && (free_slot < 0 || c->reg[free_slot].fd >= 0))
                free_slot = i; /* an empty slot, else one left registered */
        }
        if (slot < 0 && free_slot < 0)
            continue;
        if (slot < 0) { /* new to c; perhaps parked, then epoll has it already */
            slot = free_slot;
            if (c->reg[slot].fd >= 0)
                fd_unregister(s, c->reg[slot].fd);
            c->reg[slot].fd = c->want[j].fd;
        }
        uint32_t ev = epoll_events(c->want[j].events);
        fd_register(s, c->want[j].fd, ev, c);
        c->reg[slot].events = ev;
        c->reg[slot].wanted = 1;
    }
}

/* ---- accepting ------------------------------------------------------------ */

static void pause_accept(srv *s)
{
    if (s->accept_paused || s->lfd < 0)
        return;
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->lfd, NULL);
    s->accept_paused = 1;
    int64_t now = sluice_now_ms();
    s->accept_retry = now + SRV_ACCEPT_RETRY_MS;
    if (s->limit_logged == 0 || now - s->limit_logged >= SRV_LOG_EVERY_MS) {
        s->limit_logged = now;
        fprintf(stderr, "%s: at the file descriptor limit (%zu connections, RLIMIT_NOFILE %ld): "
                "not accepting until one closes\n", s->name ? s->name : "server", s->nconns,
                s->fd_limit);
    }
}

static void resume_accept(srv *s)
{
    if (!s->accept_paused || s->lfd < 0 || s->draining ||
        (s->max_conns && s->nconns >= s->max_conns))
        return;
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = TOKEN_LISTEN};
    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &e);
    s->accept_paused = 0;
}

static void run_conn(srv_conn *c);

/* n connections came or went: after enough of them, trim the heap soon. */
static void note_churn(srv *s, size_t n)
{
    s->churn_since_trim += n;
    if (s->churn_since_trim >= SRV_TRIM_CHURN && s->trim_at < 0)
        s->trim_at = sluice_now_ms() + SRV_TRIM_DELAY_MS;
}

static void add_conn(srv *s, srv_conn *c)
{
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    note_churn(s, 1);
    run_conn(c);
}

static void accept_all(srv *s)
{
    while (!s->accept_paused) {
        if (s->max_conns && s->nconns >= s->max_conns) {
            pause_accept(s);
            return;
        }
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                pause_accept(s);
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN: all taken */
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        srv_unpark(s, fd); /* a new fd: whatever the table said of its number is stale */
        srv_conn *c = s->ops->accept(s, fd);
        if (c)
            add_conn(s, c);
    }
}

/* ---- connection lifetime -------------------------------------------------- */

/* Marks c finished: out of epoll, the heap and the list now; destroyed by
 * reap() once no event of the current batch can point at it any more. */
void srv_wake(void *ud, void *token)
{
    srv *s = ud;
    srv_conn *c = token;
    if (c->closed || c->woken)
        return;
    c->woken = 1;
    c->woken_next = s->woken;
    s->woken = c;
}

/* Runs the connections the pool woke (each once; a run may wake others:
 * they go on the list for the next turn). */
static void run_woken(srv *s)
{
    srv_conn *list = s->woken;
    s->woken = NULL;
    while (list) {
        srv_conn *c = list;
        list = c->woken_next;
        c->woken = 0;
        run_conn(c);
    }
}

static void close_conn(srv_conn *c)
{
    srv *s = c->srv;
    if (c->closed)
        return;
    if (c->woken) { /* rare: woken, then finished before its turn */
        srv_conn **pp = &s->woken;
        while (*pp && *pp != c)
            pp = &(*pp)->woken_next;
        if (*pp)
            *pp = c->woken_next;
        c->woken = 0;
    }
    for (int i = 0; i < SRV_MAX_WATCH; i++)
        srv_forget(c, c->reg[i].fd);
    heap_remove(s, c);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    c->closed = 1;
    c->prev = NULL;
    c->next = s->closed;
    s->closed = c;
}

static void reap(srv *s)
{
    size_t n = 0;
    while (s->closed) {
        srv_conn *c = s->closed;
        s->closed = c->next;
        s->ops->destroy(c);
        n++;
    }
    if (!n)
        return;
    resume_accept(s);
    note_churn(s, n);
}

/* An event on a connection's fd runs it; one on an fd left registered but
 * not wanted now, or on a parked fd (its peer closed or wrote), takes it
 * out of epoll; one for an fd nobody has any more (closed earlier in this
 * batch) is dropped. */
static void fd_event(srv *s, int fd, uint32_t events)
{
    srv_fd *e = (size_t)fd < s->nfds ? &s->fds[fd] : NULL;
    if (!e || !e->events)
        return;
    srv_conn *c = e->owner;
    for (int i = 0; c && i < SRV_MAX_WATCH; i++)
        if (c->reg[i].fd == fd && !c->reg[i].wanted) {
            c->reg[i].fd = -1; /* left registered, not wanted now: out */
            c = NULL;
        }
    if (c) {
        c->fired = fd;
        c->fired_events = events;
        run_conn(c);
        c->fired = -1;
    } else {
        fd_unregister(s, fd);
    }
}

/* Drives c until it waits, re-registers it and files its deadline. */
static void run_conn(srv_conn *c)
{
    srv *s = c->srv;
    if (c->closed)
        return;
    for (int round = 0; round < SRV_DRIVE_ROUNDS; round++) {
        c->nwant = 0;
        c->deadline = -1;
        c->immediate = 0;
        if (s->ops->drive(c) < 0) {
            close_conn(c);
            return;
        }
        if (!c->immediate)
            break;
    }
    if (s->draining && s->ops->idle(c)) {
        close_conn(c);
        return;
    }
    if (c->immediate) /* still wants to run: come back on the next turn */
        c->deadline = sluice_now_ms();
    sync_watches(c);
    heap_update(s, c);
}

static void begin_drain(srv *s)
{
    if (s->draining)
        return;
    s->draining = 1;
    s->drain_deadline = sluice_now_ms() + SRV_DRAIN_MS;
    if (s->lfd >= 0) {
        if (!s->accept_paused)
            epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->lfd, NULL);
        close(s->lfd);
        s->lfd = -1;
    }
    for (srv_conn *c = s->conns, *n; c; c = n) { /* once: idle ones go now */
        n = c->next;
        if (s->ops->idle(c))
            close_conn(c); /* freed after the batch, like every other */
    }
}

/* Runs every connection whose deadline passed. They are taken off the heap
 * first, so one that asks to run again at once waits for the next turn. */
static void run_timers(srv *s, int64_t now)
{
    srv_conn *due = NULL;
    while (s->heap_len && s->heap[0].key <= now) {
        srv_conn *c = s->heap[0].c;
        heap_remove(s, c);
        if (c->deadline > now) {
            heap_update(s, c); /* it moved on since it was filed */
        } else if (c->deadline >= 0) {
            c->due = due;
            due = c;
        } /* else: it waits for no deadline any more */
    }
    while (due) {
        srv_conn *c = due;
        due = c->due;
        run_conn(c);
    }
    reap(s);
}

static int64_t earliest(int64_t a, int64_t b)
{
    return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

/* The connections the descriptor limit leaves room for (0: no limit). */
static void set_max_conns(srv *s)
{
    if (s->fd_limit <= 0)
        return;
    int lowest = fcntl(0, F_DUPFD, 0); /* the first free fd: those below are taken */
    if (lowest < 0)
        return;
    close(lowest);
    long room = s->fd_limit - lowest;
    long reserve = room / 8 > s->fd_headroom ? room / 8 : s->fd_headroom;
    s->max_conns = room > reserve ? (size_t)(room - reserve) : 1;
}

static int loop(srv *s)
{
    struct epoll_event ev[SRV_EPOLL_BATCH];
    for (;;) {
        int64_t now = sluice_now_ms();
        if (s->draining && (s->nconns == 0 || now >= s->drain_deadline))
            return 0;
        if (s->accept_paused && now >= s->accept_retry) {
            s->accept_retry = now + SRV_ACCEPT_RETRY_MS;
            resume_accept(s);
        }
        if (s->trim_at >= 0 && now >= s->trim_at) {
#ifdef __GLIBC__
            malloc_trim(0);
#endif
            s->trim_at = -1;
            s->churn_since_trim = 0;
        }
        run_timers(s, now);
        if (s->draining && s->nconns == 0)
            return 0; /* the last one ended in a timer: no waiting for the deadline */

        int64_t next = s->heap_len ? s->heap[0].key : -1;
        if (s->draining)
            next = earliest(next, s->drain_deadline);
        if (s->accept_paused)
            next = earliest(next, s->accept_retry);
        next = earliest(next, s->trim_at);
        now = sluice_now_ms();
        int timeout = next < 0 ? -1 : (int)(next > now ? next - now : 0);
        if (s->woken)
            timeout = 0;
        srv_log_flush(s);
        int n = epoll_wait(s->epfd, ev, SRV_EPOLL_BATCH, timeout);
        if (n < 0 && errno != EINTR)
            return 1;
        for (int i = 0; i < n; i++) {
            uint64_t t = ev[i].data.u64;
            if (t == TOKEN_LISTEN) {
                if (s->lfd >= 0)
                    accept_all(s);
            } else if (t == TOKEN_SIGNAL) {
                struct signalfd_siginfo si;
                while (read(s->sigfd, &si, sizeof si) == sizeof si)
                    ;
                begin_drain(s);
            } else {
                fd_event(s, (int)t, ev[i].events);
            }
        }
        run_woken(s);
        reap(s);
    }
}

int srv_main(srv *s, const srv_ops *ops, net_addr *addr, int workers)
{
    s->ops = ops;
    s->trim_at = -1;
    if (workers < 1)
        workers = 1;
    if (workers > SRV_MAX_WORKERS)
        workers = SRV_MAX_WORKERS;
    int fds[SRV_MAX_WORKERS];
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
    struct rlimit rl;
    s->fd_limit = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                      ? (long)rl.rlim_cur
                      : 0;

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);

    printf("listening on %s\n", text);
    fflush(stdout);

    pid_t kids[SRV_MAX_WORKERS];
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
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = TOKEN_LISTEN};
    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &e);
    e.data.u64 = TOKEN_SIGNAL;
    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->sigfd, &e);
    set_max_conns(s);

    int rc = loop(s);

    while (s->conns) /* past the grace period */
        close_conn(s->conns);
    reap(s);
    srv_log_flush(s);
    free(s->heap);
    free(s->fds); /* what the program closes after this needs no table */
    s->fds = NULL;
    s->nfds = 0;
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

/* ---- the timer heap --------------------------------------------------------
 * heap[0] has the earliest key; c->heap_at is 1 + c's index, 0 when c is not
 * in the heap. An entry's key is a deadline c had when it was filed; c's
 * real deadline may since have moved later (a request made progress) or gone
 * (-1). Moving a deadline later costs nothing: the entry stays, and when its
 * key comes up, run_timers files c again under its real deadline or drops
 * it. So a busy connection whose idle timeout moves on every read touches
 * the heap about once per timeout period, not once per request. Moving a
 * deadline earlier sifts the entry up. Growing the array is the only
 * allocation (amortised). */

static void heap_set(srv *s, size_t i, srv_timer t)
{
    s->heap[i] = t;
    t.c->heap_at = i + 1;
}

static void sift_up(srv *s, size_t i)
{
    srv_timer t = s->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (s->heap[parent].key <= t.key)
            break;
        heap_set(s, i, s->heap[parent]);
        i = parent;
    }
    heap_set(s, i, t);
}

static void sift_down(srv *s, size_t i)
{
    srv_timer t = s->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        int64_t best = t.key;
        if (l < s->heap_len && s->heap[l].key < best)
            m = l, best = s->heap[l].key;
        if (l + 1 < s->heap_len && s->heap[l + 1].key < best)
            m = l + 1;
        if (m == i)
            break;
        heap_set(s, i, s->heap[m]);
        i = m;
    }
    heap_set(s, i, t);
}

static void heap_remove(srv *s, srv_conn *c)
{
    if (!c->heap_at)
        return;
    size_t i = c->heap_at - 1;
    c->heap_at = 0;
    srv_timer last = s->heap[--s->heap_len];
    if (last.c == c)
        return;
    heap_set(s, i, last);
    sift_up(s, i);
    sift_down(s, last.c->heap_at - 1);
}

/* Makes sure c's entry comes up no later than its deadline. */
static void heap_update(srv *s, srv_conn *c)
{
    if (c->deadline < 0)
        return; /* dropped lazily when its entry comes up */
    if (c->heap_at) {
        srv_timer *t = &s->heap[c->heap_at - 1];
        if (c->deadline < t->key) {
            t->key = c->deadline;
            sift_up(s, c->heap_at - 1);
        }
        return;
    }
    if (s->heap_len == s->heap_cap) {
        size_t cap = s->heap_cap ? 2 * s->heap_cap : 64;
        srv_timer *h = realloc(s->heap, cap * sizeof *h);
        if (!h) { /* no memory for its timer: the connection cannot be kept */
            close_conn(c);
            return;
        }
        s->heap = h;
        s->heap_cap = cap;
    }
    s->heap_len++;
    heap_set(s, s->heap_len - 1, (srv_timer){c->deadline, c});
    sift_up(s, s->heap_len - 1);
}
