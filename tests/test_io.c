/* test_io.c — the fd transport (non-blocking, EAGAIN, EPIPE without SIGPIPE,
 * shutdown, fd ownership) and the in-memory transport. */
#include "harness.h"
#include "../lib/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

TEST(io_fd_sets_nonblocking_and_maps_eagain)
{
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    EXPECT_EQ(fcntl(sv[1], F_GETFL) & O_NONBLOCK, 0);
    sluice_io *io;
    REQUIRE(sluice_io_fd_new(T_POOL, sv[1], 0, &io) == 0);
    EXPECT(fcntl(sv[1], F_GETFL) & O_NONBLOCK);
    EXPECT_EQ(io->fd, sv[1]);
    char buf[8];
    struct iovec iov = {buf, sizeof buf};
    EXPECT_EQ(sluice_io_readv(io, &iov, 1), -EAGAIN);
    struct iovec out[2] = {{"ab", 2}, {"cde", 3}};
    EXPECT_EQ(sluice_io_writev(io, out, 2), 5);
    EXPECT_EQ(read(sv[0], buf, sizeof buf), 5);
    EXPECT_MEM(buf, 5, "abcde", 5);
    sluice_interest w;
    sluice__io_ready(io, SLUICE_WANT_WRITE, &w);
    EXPECT_EQ(w.fd, sv[1]);
    EXPECT_EQ(w.events, SLUICE_WANT_WRITE);
    EXPECT_EQ(w.deadline_ms, -1);
    EXPECT_EQ(sluice_io_shutdown(io), 0); /* SHUT_WR: the peer reads EOF */
    EXPECT_EQ(read(sv[0], buf, sizeof buf), 0);
    sluice_io_close(io);
    EXPECT(fcntl(sv[1], F_GETFD) >= 0); /* not ours to close */
    close(sv[0]);
    close(sv[1]);
}

TEST(io_fd_closed_peer_is_epipe_not_sigpipe)
{
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    sluice_io *io;
    REQUIRE(sluice_io_fd_new(T_POOL, sv[1], SLUICE_IO_CLOSE_FD, &io) == 0);
    close(sv[0]);
    struct iovec iov = {"x", 1};
    EXPECT_EQ(sluice_io_writev(io, &iov, 1), -EPIPE); /* the process is still here */
    char buf[4];
    struct iovec in = {buf, 4};
    EXPECT_EQ(sluice_io_readv(io, &in, 1), 0);
    int fd = sv[1];
    sluice_io_close(io);
    EXPECT(fcntl(fd, F_GETFD) < 0 && errno == EBADF); /* SLUICE_IO_CLOSE_FD */
}

TEST(io_fd_pipe_uses_writev_and_shutdown_closes)
{
    int pp[2];
    REQUIRE(pipe(pp) == 0);
    sluice_io *w;
    REQUIRE(sluice_io_fd_new(T_POOL, pp[1], 0, &w) == 0);
    struct iovec iov = {"pipe", 4};
    EXPECT_EQ(sluice_io_writev(w, &iov, 1), 4);
    EXPECT_EQ(sluice_io_shutdown(w), -ENOTSOCK); /* the fd is not ours */
    sluice_io_close(w);
    REQUIRE(sluice_io_fd_new(T_POOL, pp[1], SLUICE_IO_CLOSE_FD, &w) == 0);
    EXPECT_EQ(sluice_io_shutdown(w), 0); /* closes: the reader sees EOF */
    EXPECT_EQ(w->fd, -1);
    char buf[8];
    EXPECT_EQ(read(pp[0], buf, sizeof buf), 4);
    EXPECT_EQ(read(pp[0], buf, sizeof buf), 0);
    EXPECT_EQ(sluice_io_shutdown(w), 0);
    sluice_io_close(w);
    close(pp[0]);
}

TEST(io_fd_invalid_arguments)
{
    sluice_io *io = (sluice_io *)1;
    EXPECT_ERR(sluice_io_fd_new(T_POOL, -1, 0, &io), SLUICE_EINVAL);
    EXPECT(io == NULL);
    EXPECT_ERR(sluice_io_fd_new(T_POOL, 0, 8, &io), SLUICE_EINVAL);
    int pp[2];
    REQUIRE(pipe(pp) == 0);
    close(pp[1]);
    EXPECT_ERR(sluice_io_fd_new(T_POOL, pp[1], 0, &io), -EBADF);
    close(pp[0]);
    sluice_io_close(NULL);
}

TEST(io_fd_alloc_failure_leaves_fd_alone)
{
    t_failalloc fa = {.fail_at = 2};
    sluice_allocator a = t_failalloc_hook(&fa);
    sluice_pool_config pc = {.allocator = &a};
    sluice_pool *p;
    REQUIRE(sluice_pool_new(&pc, &p) == 0);
    int pp[2];
    REQUIRE(pipe(pp) == 0);
    sluice_io *io;
    EXPECT_ERR(sluice_io_fd_new(p, pp[0], SLUICE_IO_CLOSE_FD, &io), SLUICE_ENOMEM);
    EXPECT_EQ(fcntl(pp[0], F_GETFL) & O_NONBLOCK, 0);
    EXPECT(fcntl(pp[0], F_GETFD) >= 0);
    sluice_pool_close(p);
    EXPECT_EQ(fa.live, 0);
    close(pp[0]);
    close(pp[1]);
}

TEST(io_mem_reads_in_pieces_with_eagain)
{
    sluice_io *io;
    REQUIRE(sluice__io_mem_new(T_POOL, "abcdefg", 7, 3, SLUICE__IO_MEM_EAGAIN, &io) == 0);
    EXPECT_EQ(io->fd, -1);
    char a[2], b[8];
    struct iovec iov[2] = {{a, 2}, {b, 8}};
    EXPECT_EQ(sluice_io_readv(io, iov, 2), -EAGAIN);
    EXPECT_EQ(sluice_io_readv(io, iov, 2), 3);
    EXPECT_MEM(a, 2, "ab", 2);
    EXPECT_MEM(b, 1, "c", 1);
    EXPECT_EQ(sluice_io_readv(io, iov, 2), -EAGAIN);
    EXPECT_EQ(sluice_io_readv(io, iov, 2), 3);
    EXPECT_EQ(sluice_io_readv(io, iov, 2), -EAGAIN);
    EXPECT_EQ(sluice_io_readv(io, iov, 2), 1);
    EXPECT_EQ(sluice_io_readv(io, iov, 2), 0);
    EXPECT_EQ(sluice_io_readv(io, iov, 2), 0);
    struct iovec out[2] = {{"xy", 2}, {"z", 1}};
    EXPECT_EQ(sluice_io_writev(io, out, 2), 3);
    EXPECT_EQ(sluice__io_mem_written(io), 3);
    EXPECT_EQ(sluice_io_shutdown(io), 0);
    sluice_io_close(io);
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    REQUIRE(sluice_io_fd_new(T_POOL, sv[0], 0, &io) == 0);
    EXPECT_ERR(sluice__io_mem_written(io), SLUICE_EINVAL);
    sluice_io_close(io);
    close(sv[0]);
    close(sv[1]);
}

TEST(io_sigpipe_default_is_not_needed)
{
    /* with SIGPIPE at its default action a write to a reset socket must
     * still return -EPIPE: MSG_NOSIGNAL, not a signal mask */
    struct sigaction old, dfl = {.sa_handler = SIG_DFL};
    sigaction(SIGPIPE, &dfl, &old);
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    sluice_io *io;
    REQUIRE(sluice_io_fd_new(T_POOL, sv[0], SLUICE_IO_CLOSE_FD, &io) == 0);
    close(sv[1]);
    struct iovec iov = {"x", 1};
    EXPECT_EQ(sluice_io_writev(io, &iov, 1), -EPIPE);
    sluice_io_close(io);
    sigaction(SIGPIPE, &old, NULL);
}
