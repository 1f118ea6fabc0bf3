/*
 * server.h — the epoll host shared by sluice-proxy and sluice-sink (part of
 * the examples, not of the library).
 *
 * The library never picks an event loop; this is one host's choice. Each
 * connection is a state machine the program drives with drive(): it polls its
 * streams, sinks and pumps until they say PENDING, and reports what it waits
 * for as sluice_interest values (fd, events, deadline). The loop turns those
 * into epoll registrations (level-triggered: PENDING only ever follows
 * EAGAIN, so no wake-up is spurious) and keeps each connection's nearest
 * deadline in a binary min-heap, so a wake-up costs O(log n) in the number of
 * connections, however many sit idle (server.c says more).
 *
 * Shutdown: SIGINT/SIGTERM (via signalfd) close the listening socket at once,
 * the program closes idle connections, in-flight ones get SRV_DRAIN_MS.
 * Workers: with --workers N the listening socket is bound N times with
 * SO_REUSEPORT and N-1 children are forked, each running its own loop.
 */
#ifndef SLUICE_EXAMPLES_SERVER_H
#define SLUICE_EXAMPLES_SERVER_H

#include "net.h"

#include <sluice.h>

#include <stddef.h>
#include <stdint.h>

#define SRV_MAX_WATCH 2          /* fds one connection may wait on */
#define SRV_DRAIN_MS 10000       /* in-flight grace period on shutdown */
#define SRV_EPOLL_BATCH 64       /* events taken per epoll_wait */
#define SRV_MAX_WORKERS 64       /* --workers bound */
#define SRV_DRIVE_ROUNDS 1       /* drive() calls per wake-up: a pump that spent its
                                    step budget waits for the others' turn */
#define SRV_ACCEPT_RETRY_MS 1000 /* paused accepting: retry at the latest after this */
#define SRV_LOG_EVERY_MS 60000   /* the "descriptor limit" line at most this often */
#define SRV_TRIM_CHURN 64        /* connections opened or closed that make a malloc_trim worth it */
#define SRV_TRIM_DELAY_MS 1000   /* ... done this long after the first of them */
#define SRV_LOG_BUFFER 8192      /* access log lines batched into one write(2) */

typedef struct srv srv;
typedef struct srv_conn srv_conn;

/* What a program plugs in. */
typedef struct srv_ops {
    /* A new client connection (fd is non-blocking; the callee owns it).
     * Returns the connection or NULL (then the fd must have been closed). */
    srv_conn *(*accept)(srv *s, int fd);
    /* Makes all progress possible, then fills the connection's watches via
     * srv_watch(). Returns 0 to keep it, -1 when it is finished (the loop
     * then calls destroy, after the current batch of events). */
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
    srv_conn *prev, *next;               /* s->conns, or s->closed once closed */
    srv_conn *due;                       /* the list of expired timers being run */
    struct {
        int fd;
        uint32_t events;                 /* as registered with epoll */
        int wanted;                      /* 0: left registered in case it is
                                            wanted again (see sync_watches) */
    } reg[SRV_MAX_WATCH];
    sluice_interest want[SRV_MAX_WATCH]; /* filled by drive() */
    int nwant;
    int immediate;                       /* drive again without waiting */
    int fired;                           /* the fd whose epoll event runs this
                                            drive(), -1 for a timer or a wake */
    uint32_t fired_events;               /* and its events (EPOLLIN, ...) */
    int woken;                           /* on s->woken: the pool kept it a block */
    srv_conn *woken_next;
    int closed;                          /* finished; destroyed after the batch */
    int64_t deadline;                    /* nearest deadline, -1 none */
    size_t heap_at;                      /* 1 + index in the timer heap, 0: none */
};

/* What epoll knows of one descriptor (indexed by fd): events as
 * registered (0: not registered) and the connection its events go to
 * (NULL with events: parked, see srv_park). */
typedef struct srv_fd {
    srv_conn *owner;
    uint32_t events;
} srv_fd;

/* An entry of the timer heap: a deadline c had when it was filed. */
typedef struct srv_timer {
    int64_t key;
    srv_conn *c;
} srv_timer;

struct srv {
    const srv_ops *ops;
    const char *name;                    /* program name, for the log */
    int epfd, lfd, sigfd;
    srv_conn *conns;                     /* open connections */
    size_t nconns;
    srv_conn *closed;                    /* finished, destroyed after the batch */
    srv_timer *heap;                     /* connections with a deadline */
    size_t heap_len, heap_cap;
    int draining;
    int64_t drain_deadline;
    /* at the descriptor limit: accept paused until a connection closes */
    int fd_headroom;                     /* fds a connection may open besides
                                            its own (set by the program) */
    long fd_limit;                       /* RLIMIT_NOFILE */
    size_t max_conns;                    /* what fd_limit leaves room for */
    int accept_paused;
    int64_t accept_retry, limit_logged;
    size_t churn_since_trim;
    int64_t trim_at;
    sluice_pool *pool;
    srv_conn *woken;                     /* named by the pool's wake hook */
    srv_fd *fds;                         /* by descriptor number */
    size_t nfds;
    char log[SRV_LOG_BUFFER];            /* whole lines for stderr, see srv_log */
    size_t log_len;
};

/* Whether epoll reported fd readable, closed or failed (not only writable)
 * for this drive() of c. A level-triggered loop reports a readable fd on
 * every turn it is watched, so a connection may skip a read that would only
 * find EAGAIN (a system call per step) on an fd that did not fire, as long
 * as it keeps watching it. */
int srv_fired_read(const srv_conn *c, int fd);

/*
 * The pool's wake hook (sluice_pool_config.wake, wake_ud = the srv; each
 * reader's wake_token = its srv_conn): a block is kept for that reader, so
 * the connection runs on the next turn. Called with the pool's lock held,
 * on the thread that released the block (the loop's: one pool per worker
 * process), so it only links the connection into a list.
 */
void srv_wake(void *ud, void *token);

/* Called from drive(): wait for `w` (ignored when it asks for nothing). */
void srv_watch(srv_conn *c, const sluice_interest *w);

/* A deadline of the program's own (e.g. the request-head deadline). */
void srv_deadline(srv_conn *c, int64_t at);

/*
 * Appends one line (printf format, without the newline) to the access log.
 * Lines are written to stderr in one write(2) per turn of the loop, before
 * it waits, so a busy worker logs thousands of requests per syscall instead
 * of one each; always whole lines, so workers sharing stderr never split
 * each other's.
 */
void srv_log(srv *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* srv_log for a line already put together (len bytes, no newline). */
void srv_log_line(srv *s, const char *line, size_t len);

/* Writes out what srv_log buffered (the loop does it before waiting). */
void srv_log_flush(srv *s);

/*
 * Hands fd (watched by c, e.g. an upstream socket going back to a pool)
 * over to the loop, still registered with epoll: the next connection that
 * watches it takes it over, usually without any epoll_ctl (two per request
 * otherwise: a delete here, an add there). An event on a parked fd (its
 * peer closed it or sent something) only takes it out of epoll; whoever
 * holds the fd finds out on its own (upstream.c peeks before reuse).
 */
void srv_park(srv_conn *c, int fd);

/* Forgets a parked fd that is about to be closed. */
void srv_unpark(srv *s, int fd);

/* Forgets an fd the connection is about to close (epoll drops closed fds by
 * itself, but our bookkeeping must not keep a number the kernel may reuse). */
void srv_forget(srv_conn *c, int fd);

/* Zeroes a new connection and ties it to s (for the accept callback). */
void srv_conn_init(srv *s, srv_conn *c);

/*
 * Binds `workers` listening sockets on addr (SO_REUSEPORT when > 1; port 0
 * resolved once so all share the kernel's pick), prints `listening on
 * HOST:PORT`, forks workers-1 children and runs the loop in each process
 * until shutdown completes. The parent forwards SIGINT/SIGTERM to its
 * children and reaps them. Returns the exit status.
 */
int srv_main(srv *s, const srv_ops *ops, net_addr *addr, int workers);

#endif
