/*
 * net.h — small socket helpers shared by the example programs (not part of
 * the library): address parsing, listening, non-blocking connect.
 */
#ifndef SLUICE_EXAMPLES_NET_H
#define SLUICE_EXAMPLES_NET_H

#include <stddef.h>
#include <sys/socket.h>

#define NET_LISTEN_BACKLOG 1024 /* listen(2) queue: connections waiting for accept */

typedef struct net_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[300]; /* HOST:PORT as given (for Host headers and logs) */
} net_addr;

/* Parses HOST:PORT ([v6]:PORT allowed; HOST may be a name). 0 or -1. */
int net_parse_addr(const char *s, net_addr *a);

/* "HOST:PORT" of a bound socket, into buf. */
void net_local_text(int fd, char *buf, size_t cap);

/* A non-blocking listening socket on a (SO_REUSEADDR, and SO_REUSEPORT when
 * reuseport). Returns the fd or -1 with errno set. */
int net_listen(const net_addr *a, int reuseport);

/* Starts a non-blocking connect. Returns the fd (connected or in progress)
 * or -1 with errno set. */
int net_connect(const net_addr *a);

/* 0 when a non-blocking connect succeeded, else -errno. */
int net_connect_result(int fd);

/* Parses a non-negative decimal size; -1 if not one. */
long long net_parse_size(const char *s);

#endif
