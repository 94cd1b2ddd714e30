/*
 * sys_int.h - the syscalls on hotpath's I/O path, behind one overridable table.
 *
 * Every read, writev, sendfile, accept4 and epoll_ctl the engine makes goes
 * through hp_sys_*: the wrappers retry EINTR and return -errno, so callers
 * never look at errno. Tests swap the table (hp_sys_set_ops) to make calls
 * come back short, EAGAIN or failing, and check the engine copes.
 */
#ifndef HOTPATH_SYS_INT_H
#define HOTPATH_SYS_INT_H

#include <stddef.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>


typedef struct hp_sys_ops {
    ssize_t (*read)(int fd, void *buf, size_t len);
    ssize_t (*writev)(int fd, const struct iovec *iov, int iovcnt);
    ssize_t (*sendfile)(int out_fd, int in_fd, off_t *offset, size_t count);
    int (*accept4)(int fd, struct sockaddr *addr, socklen_t *len, int flags);
    int (*epoll_ctl)(int epfd, int op, int fd, struct epoll_event *ev);
} hp_sys_ops_t;

/* Replaces the syscall table (NULL restores the real one). For tests; call
 * it before any worker thread starts. Returns the previous table. */
const hp_sys_ops_t *hp_sys_set_ops(const hp_sys_ops_t *ops);

/* The real syscalls, for a test table that wants to pass some calls on. */
extern const hp_sys_ops_t hp_sys_real;

/* Each returns what the syscall returns on success, or -errno. */
ssize_t hp_sys_read(int fd, void *buf, size_t len);
ssize_t hp_sys_writev(int fd, const struct iovec *iov, int iovcnt);
ssize_t hp_sys_sendfile(int out_fd, int in_fd, off_t *offset, size_t count);
int hp_sys_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
int hp_sys_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);

#endif
