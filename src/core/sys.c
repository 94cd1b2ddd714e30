/*
 * sys.c - EINTR-retrying, -errno-returning wrappers over a syscall table.
 *
 * The table pointer is set before threads start and only read afterwards,
 * so workers read it without synchronisation.
 */
#include "sys_int.h"

#include <errno.h>
#include <sys/sendfile.h>
#include <unistd.h>

const hp_sys_ops_t hp_sys_real = {
    .read = read,
    .writev = writev,
    .sendfile = sendfile,
    .accept4 = accept4,
    .epoll_ctl = epoll_ctl,
};

static const hp_sys_ops_t *sys_ops = &hp_sys_real;

const hp_sys_ops_t *hp_sys_set_ops(const hp_sys_ops_t *ops)
{
    const hp_sys_ops_t *old = sys_ops;
    sys_ops = ops ? ops : &hp_sys_real;
    return old;
}

ssize_t hp_sys_read(int fd, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = sys_ops->read(fd, buf, len);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

ssize_t hp_sys_writev(int fd, const struct iovec *iov, int iovcnt)
{
    for (;;) {
        ssize_t n = sys_ops->writev(fd, iov, iovcnt);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

ssize_t hp_sys_sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
    for (;;) {
        ssize_t n = sys_ops->sendfile(out_fd, in_fd, offset, count);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

int hp_sys_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    for (;;) {
        int c = sys_ops->accept4(fd, addr, len, flags);
        if (c >= 0)
            return c;
        if (errno != EINTR)
            return -errno;
    }
}

int hp_sys_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    for (;;) {
        if (sys_ops->epoll_ctl(epfd, op, fd, ev) == 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}
