/*
 * worker.c - a worker thread: accept loop, ready queue, deferred frees,
 * inbox, graceful drain.
 *
 * Central structures: the list of open connections (for shutdown), the
 * ready queue (connections that spent their read budget with bytes left:
 * served again after the rest of the batch, so one pipelining client
 * cannot starve the others) and the dead list (closed this iteration,
 * freed in the loop hook when no callback can still hold them).
 */
#include "hotpath/worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "hotpath/log.h"
#include "hotpath/sys.h"

/* After EMFILE/ENFILE, how long the listener rests before trying again.
 * Short enough that service resumes quickly once fds free up, long enough
 * that a full fd table costs next to no CPU. */
#define HP_WORKER_ACCEPT_RETRY_MS 100

/* Inbox slots: shutdown and statistics requests are rare; a full inbox
 * makes the sender retry. */
#define HP_WORKER_INBOX 64

/* Connection structs per slab allocation. */
#define HP_WORKER_CONN_SLAB 256

static void accept_all(hp_worker_t *w);

void hp_worker_conn_closed(hp_worker_t *w, hp_conn_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
    w->nconns--;
    hp_worker_stat_add(&w->stats.closed, 1);
    /* A queued connection reaches the dead list from the ready pass. */
    if (!(c->flags & HP_CONN_F_QUEUED)) {
        c->qnext = w->dead;
        w->dead = c;
    }
    if (w->accept_paused && !w->draining) {
        /* An fd came free: take the connections waiting in the backlog
         * now rather than at the next retry tick. */
        accept_all(w);
    }
}

void hp_worker_enqueue_ready(hp_worker_t *w, hp_conn_t *c)
{
    if (c->flags & HP_CONN_F_QUEUED)
        return;
    c->flags |= HP_CONN_F_QUEUED;
    c->qnext = NULL;
    if (w->ready_tail)
        w->ready_tail->qnext = c;
    else
        w->ready_head = c;
    w->ready_tail = c;
}

/* The loop hook: serve the connections left ready, one turn each, then
 * free what closed during the iteration. */
static bool after_events(hp_loop_t *loop, void *arg)
{
    (void)loop;
    hp_worker_t *w = arg;
    hp_conn_t *c = w->ready_head;
    w->ready_head = w->ready_tail = NULL;
    while (c) {
        hp_conn_t *next = c->qnext;
        c->flags &= ~(uint32_t)HP_CONN_F_QUEUED;
        if (c->flags & HP_CONN_F_CLOSED) {
            c->qnext = w->dead;
            w->dead = c;
        } else {
            hp_conn_serve(c);
        }
        c = next;
    }
    while (w->dead) {
        hp_conn_t *d = w->dead;
        w->dead = d->qnext;
        hp_conn_release(d);
    }
    if (w->draining && w->nconns == 0)
        hp_loop_stop(&w->loop);
    return w->ready_head != NULL;
}

static HP_COLD void accept_failed(hp_worker_t *w, int err)
{
    hp_worker_stat_add(&w->stats.accept_errors, 1);
    if (err == -EMFILE || err == -ENFILE || err == -ENOBUFS || err == -ENOMEM) {
        /* Out of descriptors or memory: keep serving the open connections
         * and let the listener rest; the backlog holds the newcomers. */
        w->accept_paused = true;
        hp_loop_timer_arm(&w->loop, &w->accept_timer, HP_WORKER_ACCEPT_RETRY_MS);
        if (hp_log_ratelimit(&w->accept_log_ms, hp_loop_now(&w->loop), 1000))
            hp_log(WARN, "accept: %s; %u connections open, retrying", strerror(-err),
                   w->nconns);
    }
}

/* Takes a connection struct for `fd` and watches it. Takes ownership of
 * fd on every path. Returns 0, -ENOBUFS when no struct could be had, or
 * the error epoll_ctl gave. */
static int add_conn(hp_worker_t *w, int fd, uint32_t flags, void *udata, hp_conn_t **out)
{
    hp_conn_t *c = hp_pool_get(&w->conn_pool);
    if (HP_UNLIKELY(!c)) {
        close(fd);
        return -ENOBUFS;
    }
    memset(c, 0, sizeof *c);
    c->worker = w;
    c->flags = flags;
    c->udata = udata;
    hp_conn_start(c);
    if (w->cfg->nodelay) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    /* Reads and writes are registered once, edge-triggered: no
     * epoll_ctl is ever needed again for this connection. */
    int r = hp_loop_add(&w->loop, &c->io, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP, c->io.cb);
    if (r < 0) {
        close(fd);
        hp_pool_put(&w->conn_pool, c);
        return r;
    }
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    *out = c;
    return 0;
}

int hp_worker_connect(hp_worker_t *w, const struct sockaddr *addr, socklen_t len, void *udata,
                      hp_conn_t **out)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, addr, len) < 0 && errno != EINPROGRESS) {
        int err = -errno;
        close(fd);
        return err;
    }
    /* The first EPOLLOUT (or EPOLLERR) tells the outcome; see io_cb. */
    return add_conn(w, fd, HP_CONN_F_CONNECTING, udata, out);
}

static void accept_all(hp_worker_t *w)
{
    while (w->listen_fd >= 0) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int fd = hp_sys_accept4(w->listen_fd, (struct sockaddr *)&peer, &plen,
                                SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (fd == -EAGAIN) {
                w->accept_paused = false;
                return;
            }
            if (fd == -ECONNABORTED || fd == -EPROTO || fd == -EPERM)
                continue; /* that client is gone; the next may not be */
            accept_failed(w, fd);
            return;
        }
        hp_conn_t *c;
        int r = add_conn(w, fd, 0, NULL, &c);
        if (HP_UNLIKELY(r == -ENOBUFS)) {
            accept_failed(w, r);
            return;
        }
        if (HP_UNLIKELY(r < 0)) {
            hp_worker_stat_add(&w->stats.accept_errors, 1);
            continue; /* epoll refused this one; the next may do */
        }
        if (peer.ss_family == AF_INET)
            c->peer_v4 = ((const struct sockaddr_in *)&peer)->sin_addr.s_addr;
        hp_worker_stat_add(&w->stats.accepted, 1);
        if (w->proto->on_open)
            w->proto->on_open(c);
    }
}

static void listen_cb(hp_io_t *io, uint32_t events)
{
    (void)events;
    hp_worker_t *w = HP_CONTAINER_OF(io, hp_worker_t, listen_io);
    if (!w->accept_paused)
        accept_all(w);
}

static void accept_retry_cb(hp_timer_t *t)
{
    hp_worker_t *w = HP_CONTAINER_OF(t, hp_worker_t, accept_timer);
    w->accept_paused = false;
    accept_all(w);
}

/* Closes every connection; used by the drain timeout and STOP_NOW. */
static void close_all(hp_worker_t *w)
{
    while (w->conns)
        hp_conn_close(w->conns);
}

static void drain_timeout_cb(hp_timer_t *t)
{
    hp_worker_t *w = HP_CONTAINER_OF(t, hp_worker_t, drain_timer);
    if (w->nconns)
        hp_log(WARN, "drain timeout: closing %u connections", w->nconns);
    close_all(w);
    hp_loop_stop(&w->loop);
}

void hp_worker_shutdown(hp_worker_t *w)
{
    if (w->draining)
        return;
    w->draining = true;
    if (w->listen_fd >= 0) {
        close(w->listen_fd);
        w->listen_fd = -1;
    }
    hp_loop_timer_cancel(&w->loop, &w->accept_timer);
    /* Idle connections go now; busy ones when their response is out. */
    hp_conn_t *c = w->conns;
    while (c) {
        hp_conn_t *next = c->next;
        if (!c->rbuf && !c->out)
            hp_conn_close(c);
        c = next;
    }
    hp_loop_timer_arm(&w->loop, &w->drain_timer, w->cfg->drain_timeout_ms);
    if (w->nconns == 0)
        hp_loop_stop(&w->loop);
}

static void wake_cb(hp_io_t *io, uint32_t events)
{
    (void)events;
    hp_worker_t *w = HP_CONTAINER_OF(io, hp_worker_t, wake_io);
    uint64_t v;
    ssize_t r = read(w->wake_fd, &v, sizeof v);
    (void)r;
    hp_msg_t m;
    while (hp_mpsc_pop(&w->inbox, &m)) {
        if (m.type == HP_MSG_SHUTDOWN) {
            hp_worker_shutdown(w);
        } else if (m.type == HP_MSG_STOP_NOW) {
            w->draining = true;
            close_all(w);
            hp_loop_stop(&w->loop);
        } else if (m.type == HP_MSG_PROTO && w->proto->on_msg) {
            w->proto->on_msg(w, m.arg, m.ptr);
        }
    }
}

int hp_worker_init(hp_worker_t *w, uint32_t id, int cpu, int listen_fd,
                   const hp_worker_config_t *cfg, const hp_proto_t *proto)
{
    memset(w, 0, sizeof *w);
    w->id = id;
    w->cpu = cpu;
    w->cfg = cfg;
    w->proto = proto;
    w->state_size = (proto->state_size + 63u) & ~63u;
    w->listen_fd = listen_fd;
    w->wake_fd = -1;
    w->report_fd = -1;
    w->loop.epfd = -1;
    int r;
    if (w->state_size + 1024 > cfg->rbuf_size ||
        cfg->wbuf_size < 4096) {
        r = -EINVAL;
        goto fail_fd;
    }
    if ((r = hp_loop_init(&w->loop)) < 0)
        goto fail_fd;
    if ((r = hp_mpsc_init(&w->inbox, HP_WORKER_INBOX)) < 0)
        goto fail_loop;
    if ((r = hp_pool_init(&w->conn_pool, 128, HP_WORKER_CONN_SLAB, 0)) < 0 ||
        (r = hp_pool_init(&w->rpool, cfg->rbuf_size, 16, cfg->max_chunks)) < 0 ||
        (r = hp_pool_init(&w->wpool, cfg->wbuf_size, 16, cfg->max_chunks)) < 0)
        goto fail_inbox;
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake_fd < 0) {
        r = -errno;
        goto fail_inbox;
    }
    if ((r = hp_loop_add(&w->loop, &w->wake_io, w->wake_fd, EPOLLIN, wake_cb)) < 0 ||
        (listen_fd >= 0 &&
         (r = hp_loop_add(&w->loop, &w->listen_io, listen_fd, EPOLLIN, listen_cb)) < 0))
        goto fail_wake;
    hp_timer_init(&w->accept_timer, accept_retry_cb);
    hp_timer_init(&w->drain_timer, drain_timeout_cb);
    hp_loop_set_hook(&w->loop, after_events, w);
    return 0;

fail_wake:
    close(w->wake_fd);
fail_inbox:
    hp_pool_destroy(&w->conn_pool);
    hp_pool_destroy(&w->rpool);
    hp_pool_destroy(&w->wpool);
    hp_mpsc_destroy(&w->inbox);
fail_loop:
    hp_loop_destroy(&w->loop);
fail_fd:
    if (listen_fd >= 0)
        close(listen_fd);
    w->listen_fd = -1;
    return r;
}

int hp_worker_run(hp_worker_t *w)
{
    int r = hp_loop_run(&w->loop);
    /* Whatever is left (loop error, STOP_NOW) is closed and freed here so
     * the pools can be destroyed empty. */
    close_all(w);
    after_events(&w->loop, w);
    if (w->report_to) {
        while (!hp_mpsc_push(w->report_to, &(hp_msg_t){.type = HP_MSG_WORKER_EXIT, .from = w->id, .ptr = w}))
            sched_yield();
        uint64_t one = 1;
        ssize_t n = write(w->report_fd, &one, sizeof one);
        (void)n;
    }
    return r;
}

static void *thread_main(void *arg)
{
    hp_worker_t *w = arg;
    char name[16];
    snprintf(name, sizeof name, "w%u", w->id);
    hp_log_set_thread(name);
    pthread_setname_np(pthread_self(), name);
    if (w->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(w->cpu, &set);
        if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0)
            hp_log(WARN, "cannot pin to CPU %d", w->cpu);
    }
    int r = hp_worker_run(w);
    if (r < 0)
        hp_log(ERROR, "event loop failed: %s", strerror(-r));
    return NULL;
}

int hp_worker_start(hp_worker_t *w)
{
    int r = pthread_create(&w->thread, NULL, thread_main, w);
    if (r != 0)
        return -r;
    w->started = true;
    return 0;
}

int hp_worker_post(hp_worker_t *w, uint32_t type, uint64_t arg, void *ptr)
{
    if (!hp_mpsc_push(&w->inbox, &(hp_msg_t){.type = type, .arg = arg, .ptr = ptr}))
        return -EAGAIN;
    uint64_t one = 1;
    ssize_t n = write(w->wake_fd, &one, sizeof one);
    (void)n;
    return 0;
}

void hp_worker_destroy(hp_worker_t *w)
{
    if (w->started) {
        pthread_join(w->thread, NULL);
        w->started = false;
    }
    close_all(w);
    after_events(&w->loop, w);
    if (w->listen_fd >= 0)
        close(w->listen_fd);
    if (w->wake_fd >= 0)
        close(w->wake_fd);
    hp_pool_destroy(&w->conn_pool);
    hp_pool_destroy(&w->rpool);
    hp_pool_destroy(&w->wpool);
    hp_mpsc_destroy(&w->inbox);
    hp_loop_destroy(&w->loop);
    w->listen_fd = w->wake_fd = -1;
}
