/*
 * test_sys.c - unit tests for src/core/sys.c: the syscall table can be
 * swapped and restored, every wrapper passes its arguments through,
 * returns what the call returns on success, converts failures to -errno
 * and retries EINTR (and only EINTR).
 *
 * The fake table below scripts each call: a queue of errnos to fail with
 * before passing the call on to the real syscall.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/sys_int.h"

/* Per-call script: fail with errs[0..nerr) in turn, then pass on. */
typedef struct script {
    int errs[8];
    int nerr;
    int calls;
    int flags_seen; /* accept4 */
} script_t;

static script_t s_read, s_writev, s_sendfile, s_accept, s_epoll;

static bool scripted_fail(script_t *s)
{
    s->calls++;
    if (s->nerr > 0) {
        errno = s->errs[0];
        memmove(s->errs, s->errs + 1, sizeof s->errs - sizeof s->errs[0]);
        s->nerr--;
        return true;
    }
    return false;
}

static ssize_t fake_read(int fd, void *buf, size_t len)
{
    if (scripted_fail(&s_read))
        return -1;
    return hp_sys_real.read(fd, buf, len);
}

static ssize_t fake_writev(int fd, const struct iovec *iov, int iovcnt)
{
    if (scripted_fail(&s_writev))
        return -1;
    return hp_sys_real.writev(fd, iov, iovcnt);
}

static ssize_t fake_sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
    if (scripted_fail(&s_sendfile))
        return -1;
    return hp_sys_real.sendfile(out_fd, in_fd, offset, count);
}

static int fake_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    s_accept.flags_seen = flags;
    if (scripted_fail(&s_accept))
        return -1;
    return hp_sys_real.accept4(fd, addr, len, flags);
}

static int fake_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    if (scripted_fail(&s_epoll))
        return -1;
    return hp_sys_real.epoll_ctl(epfd, op, fd, ev);
}

static const hp_sys_ops_t fake_ops = {
    .read = fake_read,
    .writev = fake_writev,
    .sendfile = fake_sendfile,
    .accept4 = fake_accept4,
    .epoll_ctl = fake_epoll_ctl,
};

static void script(script_t *s, int n, ...)
{
    memset(s, 0, sizeof *s);
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        s->errs[i] = va_arg(ap, int);
    va_end(ap);
    s->nerr = n;
}

static int setup(void **state)
{
    (void)state;
    memset(&s_read, 0, sizeof s_read);
    memset(&s_writev, 0, sizeof s_writev);
    memset(&s_sendfile, 0, sizeof s_sendfile);
    memset(&s_accept, 0, sizeof s_accept);
    memset(&s_epoll, 0, sizeof s_epoll);
    hp_sys_set_ops(&fake_ops);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hp_sys_set_ops(NULL);
    return 0;
}

static void test_set_ops_returns_previous(void **state)
{
    (void)state;
    /* setup installed fake_ops */
    const hp_sys_ops_t *prev = hp_sys_set_ops(NULL);
    assert_ptr_equal(prev, &fake_ops);
    prev = hp_sys_set_ops(&fake_ops);
    assert_ptr_equal(prev, &hp_sys_real);
    /* with the real table back, calls bypass the fakes */
    hp_sys_set_ops(NULL);
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    char c;
    assert_int_equal(hp_sys_read(p[0], &c, 1), 1);
    assert_int_equal(s_read.calls, 0);
    close(p[0]);
    close(p[1]);
}

static void test_read_retries_eintr(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], "hello", 5), 5);
    script(&s_read, 2, EINTR, EINTR);
    char buf[16];
    assert_int_equal(hp_sys_read(p[0], buf, sizeof buf), 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(s_read.calls, 3);
    /* EOF is 0, not an error */
    close(p[1]);
    script(&s_read, 0);
    assert_int_equal(hp_sys_read(p[0], buf, sizeof buf), 0);
    close(p[0]);
}

static void test_read_errors(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK), 0);
    char buf[4];
    /* a real EAGAIN from an empty non-blocking pipe */
    assert_int_equal(hp_sys_read(p[0], buf, sizeof buf), -EAGAIN);
    /* injected errors are returned once, not retried */
    script(&s_read, 1, ECONNRESET);
    assert_int_equal(hp_sys_read(p[0], buf, sizeof buf), -ECONNRESET);
    assert_int_equal(s_read.calls, 1);
    /* EINTR then a real error */
    script(&s_read, 1, EINTR);
    assert_int_equal(hp_sys_read(p[0], buf, sizeof buf), -EAGAIN);
    assert_int_equal(s_read.calls, 2);
    close(p[0]);
    close(p[1]);
    /* a closed descriptor: EBADF */
    script(&s_read, 0);
    assert_int_equal(hp_sys_read(p[0], buf, sizeof buf), -EBADF);
}

static void test_writev(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK), 0);
    struct iovec iov[3] = {
        {.iov_base = "ab", .iov_len = 2},
        {.iov_base = "", .iov_len = 0},
        {.iov_base = "cde", .iov_len = 3},
    };
    script(&s_writev, 3, EINTR, EINTR, EINTR);
    assert_int_equal(hp_sys_writev(p[1], iov, 3), 5);
    assert_int_equal(s_writev.calls, 4);
    char buf[8];
    assert_int_equal(read(p[0], buf, sizeof buf), 5);
    assert_memory_equal(buf, "abcde", 5);
    script(&s_writev, 1, EPIPE);
    assert_int_equal(hp_sys_writev(p[1], iov, 3), -EPIPE);
    assert_int_equal(s_writev.calls, 1);
    /* a real error: the read end is gone (SIGPIPE ignored for the test) */
    script(&s_writev, 0);
    close(p[0]);
    assert_int_equal(hp_sys_writev(p[1], iov, 3), -EPIPE);
    close(p[1]);
}

static void test_sendfile(void **state)
{
    (void)state;
    char path[] = "/tmp/hp_test_sys_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, "0123456789", 10), 10);
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK), 0);
    off_t off = 3;
    script(&s_sendfile, 2, EINTR, EINTR);
    assert_int_equal(hp_sys_sendfile(p[1], fd, &off, 4), 4);
    assert_int_equal(off, 7);
    assert_int_equal(s_sendfile.calls, 3);
    char buf[8];
    assert_int_equal(read(p[0], buf, sizeof buf), 4);
    assert_memory_equal(buf, "3456", 4);
    script(&s_sendfile, 1, EAGAIN);
    assert_int_equal(hp_sys_sendfile(p[1], fd, &off, 4), -EAGAIN);
    assert_int_equal(off, 7); /* untouched by a failure */
    script(&s_sendfile, 0);
    assert_int_equal(hp_sys_sendfile(p[1], -1, &off, 4), -EBADF);
    close(fd);
    close(p[0]);
    close(p[1]);
}

static void test_accept4(void **state)
{
    (void)state;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(l >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l, 8), 0);
    socklen_t alen = sizeof a;
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &alen), 0);

    /* nothing pending: -EAGAIN */
    assert_int_equal(hp_sys_accept4(l, NULL, NULL, SOCK_NONBLOCK), -EAGAIN);
    assert_int_equal(s_accept.flags_seen, SOCK_NONBLOCK);

    int cl = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(cl, (struct sockaddr *)&a, sizeof a), 0);
    script(&s_accept, 2, EINTR, EINTR);
    int fd = hp_sys_accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(s_accept.calls, 3);
    assert_int_equal(s_accept.flags_seen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    close(fd);

    script(&s_accept, 1, EMFILE);
    assert_int_equal(hp_sys_accept4(l, NULL, NULL, 0), -EMFILE);
    assert_int_equal(s_accept.calls, 1);
    close(cl);
    close(l);
}

static void test_epoll_ctl(void **state)
{
    (void)state;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    assert_true(ep >= 0);
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = p[0]};
    script(&s_epoll, 2, EINTR, EINTR);
    assert_int_equal(hp_sys_epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev), 0);
    assert_int_equal(s_epoll.calls, 3);
    /* the registration really happened */
    assert_int_equal(write(p[1], "x", 1), 1);
    struct epoll_event out;
    assert_int_equal(epoll_wait(ep, &out, 1, 0), 1);
    assert_int_equal(out.data.fd, p[0]);
    /* a second ADD: a real EEXIST */
    script(&s_epoll, 0);
    assert_int_equal(hp_sys_epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev), -EEXIST);
    script(&s_epoll, 1, ENOMEM);
    assert_int_equal(hp_sys_epoll_ctl(ep, EPOLL_CTL_DEL, p[0], &ev), -ENOMEM);
    assert_int_equal(hp_sys_epoll_ctl(ep, EPOLL_CTL_DEL, p[0], &ev), 0);
    assert_int_equal(hp_sys_epoll_ctl(ep, EPOLL_CTL_DEL, p[0], &ev), -ENOENT);
    close(p[0]);
    close(p[1]);
    close(ep);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_set_ops_returns_previous, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_retries_eintr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writev, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sendfile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_accept4, setup, teardown),
        cmocka_unit_test_setup_teardown(test_epoll_ctl, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
