/*
 * worker.c - a worker thread: its protocols and listeners, accept loop,
 * connection table, ready queue, deferred frees, inbox, graceful drain.
 *
 * Central structures: the connection table (pages of slots; a slot's
 * generation moves on when its connection closes, so a handle taken
 * earlier never reaches the slot's next tenant), the ready queue
 * (connections that spent their read budget with bytes left: served again
 * after the rest of the batch, so one pipelining client cannot starve the
 * others) and the dead list (closed this iteration, freed in the loop hook
 * when no callback can still hold them).
 *
 * Each listener names the protocol of what it accepts; each connection
 * carries its own protocol from then on (c->proto), so one worker serves
 * several protocols, and outbound connections of any of them.
 */
#include "worker_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "hotpath/alloc.h"
#include "hotpath/log.h"
#include "core/sys_int.h"

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
static bool accept_on(hp_worker_t *w, hp_worker_listener_t *l);

/* ---- the connection table ---- */

/* A free slot for `c`, adding a page when none is left. Returns false
 * when no page could be had. */
static bool slot_take(hp_worker_t *w, hp_conn_t *c)
{
    if (w->slot_free == UINT32_MAX) {
        hp_conn_slot_t **pages = hp_realloc(w->slot_pages, (w->npages + 1) * sizeof *pages);
        if (!pages)
            return false;
        w->slot_pages = pages;
        hp_conn_slot_t *page = hp_calloc(HP_WORKER_SLOT_PAGE, sizeof *page);
        if (!page)
            return false;
        pages[w->npages] = page;
        uint32_t base = w->npages * HP_WORKER_SLOT_PAGE;
        for (uint32_t i = 0; i < HP_WORKER_SLOT_PAGE; i++)
            page[i].next_free = i + 1 < HP_WORKER_SLOT_PAGE ? base + i + 1 : UINT32_MAX;
        w->slot_free = base;
        w->npages++;
    }
    uint32_t i = w->slot_free;
    hp_conn_slot_t *s = hp_worker_slot(w, i);
    w->slot_free = s->next_free;
    s->conn = c;
    c->slot = i;
    w->nconns++;
    return true;
}

/* Frees c's slot: the generation moves on, so handles to c go stale. */
static void slot_release(hp_worker_t *w, hp_conn_t *c)
{
    hp_conn_slot_t *s = hp_worker_slot(w, c->slot);
    s->conn = NULL;
    s->gen++;
    s->next_free = w->slot_free;
    w->slot_free = c->slot;
    w->nconns--;
}

/* Calls fn for every open connection; fn may close it. */
static void each_conn(hp_worker_t *w, void (*fn)(hp_worker_t *w, hp_conn_t *c))
{
    for (uint32_t i = 0; i < w->npages * HP_WORKER_SLOT_PAGE && w->nconns; i++) {
        hp_conn_t *c = hp_worker_slot(w, i)->conn;
        if (c)
            fn(w, c);
    }
}

/* ---- persistent protocol state ---- */

void *hp_worker_cstate_get(hp_worker_t *w, uint32_t size)
{
    uint32_t chunk = (size + HP_POOL_ALIGN - 1) & ~(uint32_t)(HP_POOL_ALIGN - 1);
    hp_worker_cstate_t *free_one = NULL;
    for (uint32_t i = 0; i < HP_WORKER_MAX_CSTATE; i++) {
        hp_worker_cstate_t *cs = &w->cstate[i];
        if (cs->size == chunk) {
            void *p = hp_pool_get(&cs->pool);
            if (p)
                memset(p, 0, size);
            return p;
        }
        if (!cs->size && !free_one)
            free_one = cs;
    }
    /* The first connection with state of this size: its pool starts. */
    if (!free_one || hp_pool_init(&free_one->pool, chunk, 64, 0) < 0)
        return NULL;
    free_one->size = chunk;
    return hp_worker_cstate_get(w, size);
}

void hp_worker_cstate_put(hp_worker_t *w, void *state, uint32_t size)
{
    uint32_t chunk = (size + HP_POOL_ALIGN - 1) & ~(uint32_t)(HP_POOL_ALIGN - 1);
    for (uint32_t i = 0; i < HP_WORKER_MAX_CSTATE; i++) {
        if (w->cstate[i].size == chunk) {
            hp_pool_put(&w->cstate[i].pool, state);
            return;
        }
    }
}



void hp_worker_conn_closed(hp_worker_t *w, hp_conn_t *c)
{
    slot_release(w, c);
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

/* Takes a connection struct for `fd`, running `proto`, and watches it
 * (fd -1: a connection whose socket comes later, see
 * hp_worker_connect_host).
 * Takes ownership of fd on every path. Returns 0, -ENOBUFS when no struct,
 * slot or protocol state could be had, or the error epoll_ctl gave. */
static int add_conn(hp_worker_t *w, int fd, uint32_t flags, const hp_proto_t *proto,
                    void *udata, hp_conn_t **out)
{
    hp_conn_t *c = hp_pool_get(&w->conn_pool);
    if (HP_UNLIKELY(!c)) {
        close(fd);
        return -ENOBUFS;
    }
    memset(c, 0, sizeof *c);
    c->worker = w;
    c->flags = flags;
    c->io.fd = fd;
    int r = hp_conn_start(c, proto, udata);
    if (r == 0 && !slot_take(w, c))
        r = -ENOBUFS;
    else if (r == 0 && fd >= 0 &&
             (r = hp_loop_add(&w->loop, &c->io, fd,
                              EPOLLIN | EPOLLRDHUP | (flags & HP_CONN_F_CONNECTING ? EPOLLOUT : 0),
                              c->io.cb)) < 0)
        slot_release(w, c);
    /* Edge-triggered reads are registered once; EPOLLOUT only while a
     * connect or an output wait needs it (watch_writable in conn.c). */
    if (HP_UNLIKELY(r < 0)) {
        if (fd >= 0)
            close(fd);
        if (c->cstate)
            hp_worker_cstate_put(w, c->cstate, proto->cstate_size);
        hp_pool_put(&w->conn_pool, c);
        return r;
    }
    *out = c;
    return 0;
}

/* Closes a connection nobody has seen yet: it goes without the
 * protocol's callbacks. */
static void close_unseen(hp_worker_t *w, hp_conn_t *c)
{
    static const hp_proto_t unseen = {.name = "unseen"};
    if (c->cstate)
        hp_worker_cstate_put(w, c->cstate, c->proto->cstate_size);
    c->cstate = NULL;
    c->proto = &unseen;
    hp_conn_close(c);
}

int hp_worker_connect(hp_worker_t *w, const struct sockaddr *addr, socklen_t len,
                      const hp_proto_t *proto, void *udata, const hp_connect_opts_t *opts,
                      hp_conn_t **out)
{
    if (hp_proto_state_bytes(proto) + HP_CONN_MIN_RBUF > w->cfg->rbuf_size)
        return -EINVAL;
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    hp_conn_t *c;
    int r = add_conn(w, fd, HP_CONN_F_CONNECTING, proto, udata, &c);
    if (r < 0)
        return r;
    /* Options go on before connect: buffer sizes set later would not be
     * reflected in the window the handshake announces. */
    hp_sockopts_t defaults = {.nodelay = w->cfg->nodelay};
    r = hp_conn_set_sockopts(c, opts ? &opts->sock : &defaults);
    if (r == 0 && connect(fd, addr, len) < 0 && errno != EINPROGRESS)
        r = -errno;
    if (r < 0) {
        close_unseen(w, c);
        return r;
    }
    if (opts && opts->timeout_ms)
        hp_loop_timer_arm(&w->loop, &c->timer, opts->timeout_ms);
    /* The first EPOLLOUT (or EPOLLERR) tells the outcome; see io_cb. */
    *out = c;
    return 0;
}

/* ---- outbound connections by host name ----
 *
 * While its name is looked up and its addresses are tried, a connection
 * runs the internal protocol `dialing`, whose udata is a dial_t holding
 * the caller's protocol and udata. The connection struct has no room for
 * more (it fills its 128-byte chunk), and this way conn.c's connect paths
 * (the connect timer, connected()) serve both kinds of connect unchanged:
 * they call on_connect_error, on_open or on_close, and `dialing` answers
 * them. Whichever way the dialing ends, the caller's protocol and udata
 * are back in place before its first callback runs, and a lookup still
 * in progress is cancelled, so its answer can never reach a closed
 * connection. */

typedef struct dial {
    const hp_proto_t *proto;     /* borrowed: the caller's */
    void *udata;                 /* the caller's */
    hp_resolve_req_t *req;       /* the lookup in progress; NULL once answered */
    uint64_t deadline_ms;        /* loop time the whole connect must end by; 0: none */
    hp_sockopts_t sock;
    uint16_t port;
    uint32_t next, n;            /* addrs[next, n) are still to be tried */
    hp_resolve_addr_t addrs[HP_RESOLVE_MAX_ADDRS];
} dial_t;

/* Gives the connection back to the caller's protocol and frees the dial
 * state. Returns the caller's protocol. */
static const hp_proto_t *dial_end(hp_conn_t *c)
{
    dial_t *d = c->udata;
    if (d->req)
        hp_resolve_cancel(d->req);
    c->proto = d->proto;
    c->udata = d->udata;
    hp_free(d);
    return c->proto;
}

/* Starts a connect to the next address that takes one, on a new socket
 * (the previous attempt's is closed, which also takes it out of epoll).
 * Returns 0 with the connection CONNECTING again, or the last -errno. */
static int dial_next(hp_conn_t *c)
{
    dial_t *d = c->udata;
    hp_worker_t *w = c->worker;
    int err = -ENXIO;
    while (d->next < d->n) {
        hp_resolve_addr_t *a = &d->addrs[d->next++];
        if (c->io.fd >= 0)
            close(c->io.fd);
        c->io.fd = -1;
        int fd = socket(a->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = -errno;
            continue;
        }
        err = hp_loop_add(&w->loop, &c->io, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP, c->io.cb);
        if (err < 0) {
            close(fd);
            c->io.fd = -1;
            continue;
        }
        if (a->sa.sa_family == AF_INET)
            a->in.sin_port = htons(d->port);
        else
            a->in6.sin6_port = htons(d->port);
        err = hp_conn_set_sockopts(c, &d->sock);
        if (err == 0 && connect(fd, &a->sa, a->len) < 0 && errno != EINPROGRESS)
            err = -errno;
        if (err < 0)
            continue; /* unreachable from here (no IPv6 route ...): the next */
        c->flags |= HP_CONN_F_CONNECTING;
        /* connected() disarmed the timer when the previous attempt
         * failed; the remaining time goes on. */
        if (d->deadline_ms) {
            uint64_t now = hp_loop_now(&w->loop);
            hp_loop_timer_arm(&w->loop, &c->timer,
                              d->deadline_ms > now ? d->deadline_ms - now : 0);
        }
        return 0;
    }
    return err;
}

/* The lookup's answer, on this worker's thread. The connection is open:
 * closing it would have cancelled the lookup. */
static void dial_resolved(void *arg, int err, const hp_resolve_addr_t *addrs, uint32_t n)
{
    hp_conn_t *c = arg;
    dial_t *d = c->udata;
    d->req = NULL;
    if (err == 0) {
        memcpy(d->addrs, addrs, n * sizeof *addrs);
        d->n = n;
        if ((err = dial_next(c)) == 0)
            return;
    }
    c->flags &= ~(uint32_t)HP_CONN_F_CONNECTING;
    const hp_proto_t *p = dial_end(c);
    if (p->on_connect_error)
        p->on_connect_error(c, err);
    hp_conn_close(c);
}

static void dial_on_open(hp_conn_t *c)
{
    const hp_proto_t *p = dial_end(c);
    if (p->on_open)
        p->on_open(c);
}

/* A connect failed (conn.c closes the connection after this unless it is
 * CONNECTING again) or the timeout passed (during the lookup too). */
static void dial_on_connect_error(hp_conn_t *c, int err)
{
    dial_t *d = c->udata;
    if (err != -ETIMEDOUT && d->next < d->n) {
        /* Refused or unreachable: the next address, within the same
         * timeout, as curl does without happy eyeballs. */
        int r = dial_next(c);
        if (r == 0)
            return;
        err = r;
    }
    const hp_proto_t *p = dial_end(c);
    if (p->on_connect_error)
        p->on_connect_error(c, err);
}

static void dial_on_close(hp_conn_t *c)
{
    const hp_proto_t *p = dial_end(c);
    if (p->on_close)
        p->on_close(c);
}

static const hp_proto_t dialing = {
    .name = "dialing",
    .on_open = dial_on_open,
    .on_connect_error = dial_on_connect_error,
    .on_close = dial_on_close,
};

/* A numeric host (IPv6 also in brackets, as in URLs) as an address. */
static bool numeric_host(const char *host, uint16_t port, hp_resolve_addr_t *a)
{
    char buf[INET6_ADDRSTRLEN];
    size_t len = strlen(host);
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']' && len - 2 < sizeof buf) {
        memcpy(buf, host + 1, len - 2);
        buf[len - 2] = '\0';
        host = buf;
    }
    memset(a, 0, sizeof *a);
    if (inet_pton(AF_INET, host, &a->in.sin_addr) == 1) {
        a->in.sin_family = AF_INET;
        a->in.sin_port = htons(port);
        a->len = sizeof a->in;
        return true;
    }
    if (inet_pton(AF_INET6, host, &a->in6.sin6_addr) == 1) {
        a->in6.sin6_family = AF_INET6;
        a->in6.sin6_port = htons(port);
        a->len = sizeof a->in6;
        return true;
    }
    return false;
}

int hp_worker_connect_host(hp_worker_t *w, const char *host, uint16_t port,
                           const hp_proto_t *proto, void *udata, const hp_connect_opts_t *opts,
                           hp_conn_t **out)
{
    hp_resolve_addr_t a;
    if (numeric_host(host, port, &a))
        return hp_worker_connect(w, &a.sa, a.len, proto, udata, opts, out);
    size_t len = strlen(host);
    if (len == 0 || len > HP_RESOLVE_MAX_HOST ||
        hp_proto_state_bytes(proto) + HP_CONN_MIN_RBUF > w->cfg->rbuf_size)
        return -EINVAL;
    if (!w->resolver)
        return -EOPNOTSUPP;
    dial_t *d = hp_calloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    *d = (dial_t){.proto = proto, .udata = udata, .port = port,
                  .sock = opts ? opts->sock : (hp_sockopts_t){.nodelay = w->cfg->nodelay}};
    /* No socket yet: its family depends on the answer. The persistent
     * state is the caller's protocol's, taken now. */
    hp_conn_t *c;
    int r = add_conn(w, -1, HP_CONN_F_CONNECTING, proto, udata, &c);
    if (r == 0 && (r = hp_resolve_start(w->resolver, w, host, AF_UNSPEC, dial_resolved, c,
                                        &d->req)) < 0)
        close_unseen(w, c);
    if (r < 0) {
        hp_free(d);
        return r;
    }
    c->proto = &dialing;
    c->udata = d;
    if (opts && opts->timeout_ms) {
        d->deadline_ms = hp_loop_now(&w->loop) + opts->timeout_ms;
        hp_loop_timer_arm(&w->loop, &c->timer, opts->timeout_ms);
    }
    *out = c;
    return 0;
}

static void accept_all(hp_worker_t *w)
{
    for (uint32_t i = 0; i < w->nlisteners; i++) {
        if (!accept_on(w, &w->listeners[i]))
            return;
    }
    w->accept_paused = false;
}

/* Accepts what `l` has waiting. Returns false when accepting must pause
 * (out of descriptors or memory). */
static bool accept_on(hp_worker_t *w, hp_worker_listener_t *l)
{
    while (l->io.fd >= 0) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int fd = hp_sys_accept4(l->io.fd, (struct sockaddr *)&peer, &plen,
                                SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (fd == -EAGAIN)
                return true;
            if (fd == -ECONNABORTED || fd == -EPROTO || fd == -EPERM)
                continue; /* that client is gone; the next may not be */
            accept_failed(w, fd);
            return !w->accept_paused;
        }
        if (w->cfg->nodelay) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        hp_conn_t *c;
        int r = add_conn(w, fd, 0, l->proto, l->udata, &c);
        if (HP_UNLIKELY(r == -ENOBUFS)) {
            accept_failed(w, r);
            return false;
        }
        if (HP_UNLIKELY(r < 0)) {
            hp_worker_stat_add(&w->stats.accept_errors, 1);
            continue; /* epoll refused this one; the next may do */
        }
        if (peer.ss_family == AF_INET)
            c->peer_v4 = ((const struct sockaddr_in *)&peer)->sin_addr.s_addr;
        hp_worker_stat_add(&w->stats.accepted, 1);
        if (l->proto->on_open)
            l->proto->on_open(c);
    }
    return true;
}

static void listen_cb(hp_io_t *io, uint32_t events)
{
    (void)events;
    hp_worker_listener_t *l = HP_CONTAINER_OF(io, hp_worker_listener_t, io);
    if (!l->worker->accept_paused)
        accept_on(l->worker, l);
}

static void accept_retry_cb(hp_timer_t *t)
{
    hp_worker_t *w = HP_CONTAINER_OF(t, hp_worker_t, accept_timer);
    w->accept_paused = false;
    accept_all(w);
}

static void close_one(hp_worker_t *w, hp_conn_t *c)
{
    (void)w;
    hp_conn_close(c);
}

/* Closes every connection; used by the drain timeout and STOP_NOW. */
static void close_all(hp_worker_t *w)
{
    each_conn(w, close_one);
}

static void close_listeners(hp_worker_t *w)
{
    for (uint32_t i = 0; i < w->nlisteners; i++) {
        hp_worker_listener_t *l = &w->listeners[i];
        if (l->io.fd < 0)
            continue;
        /* Closing one of several descriptors of a shared socket (no
         * reuseport: every worker has a dup) would leave its epoll entry
         * in place while the others stay open: remove it first. */
        hp_loop_del(&w->loop, &l->io);
        close(l->io.fd);
        l->io.fd = -1;
    }
}

static void close_if_idle(hp_worker_t *w, hp_conn_t *c)
{
    (void)w;
    if (!c->rbuf && !c->out)
        hp_conn_close(c);
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
    close_listeners(w);
    hp_loop_timer_cancel(&w->loop, &w->accept_timer);
    /* Idle connections go now; busy ones when their response is out. */
    each_conn(w, close_if_idle);
    hp_loop_timer_arm(&w->loop, &w->drain_timer, w->cfg->drain_timeout_ms);
    if (w->nconns == 0)
        hp_loop_stop(&w->loop);
}

/* A message for one connection: delivered if the slot still holds the
 * connection the handle named, else handed back as stale. */
static void deliver(hp_worker_t *w, const hp_msg_t *m)
{
    hp_conn_msg_cb cb = (hp_conn_msg_cb)m->fn;
    hp_conn_t *c = NULL;
    if (m->from < w->npages * HP_WORKER_SLOT_PAGE) {
        const hp_conn_slot_t *s = hp_worker_slot(w, m->from);
        if (s->gen == (uint32_t)m->arg)
            c = s->conn;
    }
    if (c && !(c->flags & HP_CONN_F_CLOSED)) {
        cb(c, m->ptr);
        return;
    }
    hp_worker_stat_add(&w->stats.stale_msgs, 1);
    cb(NULL, m->ptr);
}

static void handle_msg(hp_worker_t *w, const hp_msg_t *m)
{
    switch (m->type) {
    case HP_MSG_SHUTDOWN:
        hp_worker_shutdown(w);
        break;
    case HP_MSG_STOP_NOW:
        w->draining = true;
        close_all(w);
        hp_loop_stop(&w->loop);
        break;
    case HP_MSG_CALL:
        ((hp_worker_call_cb)m->fn)(w, m->arg, m->ptr);
        break;
    case HP_MSG_CONN:
        deliver(w, m);
        break;
    default:
        break; /* unknown: ignored */
    }
}

static void wake(hp_worker_t *w)
{
    uint64_t one = 1;
    ssize_t n = write(w->wake_fd, &one, sizeof one);
    (void)n;
}

static void wake_cb(hp_io_t *io, uint32_t events)
{
    (void)events;
    hp_worker_t *w = HP_CONTAINER_OF(io, hp_worker_t, wake_io);
    uint64_t v;
    ssize_t r = read(w->wake_fd, &v, sizeof v);
    (void)r;
    /* Stopping comes first and never waits behind messages. */
    uint32_t asked = atomic_exchange_explicit(&w->asked, 0, memory_order_acq_rel);
    if (asked & HP_WORKER_ASK_STOP_NOW)
        handle_msg(w, &(hp_msg_t){.type = HP_MSG_STOP_NOW});
    else if (asked & HP_WORKER_ASK_SHUTDOWN)
        handle_msg(w, &(hp_msg_t){.type = HP_MSG_SHUTDOWN});
    /* At most one ring's worth per wake-up: producers that keep it full
     * cannot hold the loop here. What is left wakes us again at once. */
    hp_msg_t m;
    for (uint32_t n = 0; n < HP_WORKER_INBOX; n++) {
        if (!hp_mpsc_pop(&w->inbox, &m))
            return;
        handle_msg(w, &m);
    }
    wake(w);
}

int hp_worker_init(hp_worker_t *w, uint32_t id, int cpu, const hp_worker_config_t *cfg)
{
    memset(w, 0, sizeof *w);
    w->id = id;
    w->cpu = cpu;
    w->cfg = cfg;
    w->group = w;
    w->ngroup = 1;
    w->wake_fd = -1;
    w->report_fd = -1;
    w->slot_free = UINT32_MAX;
    w->loop.epfd = -1;
    int r;
    if (cfg->rbuf_size < 2 * HP_CONN_MIN_RBUF || cfg->wbuf_size < 4096)
        return -EINVAL;
    if ((r = hp_loop_init(&w->loop)) < 0)
        return r;
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
    if ((r = hp_loop_add(&w->loop, &w->wake_io, w->wake_fd, EPOLLIN, wake_cb)) < 0)
        goto fail_wake;
    hp_timer_init(&w->accept_timer, accept_retry_cb);
    hp_timer_init(&w->drain_timer, drain_timeout_cb);
    hp_loop_set_hook(&w->loop, after_events, w);
    return 0;

fail_wake:
    close(w->wake_fd);
    w->wake_fd = -1;
fail_inbox:
    hp_pool_destroy(&w->conn_pool);
    hp_pool_destroy(&w->rpool);
    hp_pool_destroy(&w->wpool);
    hp_mpsc_destroy(&w->inbox);
fail_loop:
    hp_loop_destroy(&w->loop);
    return r;
}

static hp_worker_proto_t *find_proto(const hp_worker_t *w, const hp_proto_t *proto)
{
    for (uint32_t i = 0; i < w->nprotos; i++)
        if (w->protos[i].proto == proto)
            return (hp_worker_proto_t *)&w->protos[i];
    return NULL;
}

/* A worker made by hp_worker_new keeps its own copy of the configuration
 * right behind it. */
typedef struct owned_worker {
    hp_worker_t w;
    hp_worker_config_t cfg;
} owned_worker_t;

int hp_worker_new(hp_worker_t **out, uint32_t id, int cpu, const hp_worker_config_t *cfg)
{
    owned_worker_t *ow = hp_calloc_aligned(sizeof(*ow));
    if (!ow)
        return -ENOMEM;
    ow->cfg = *cfg;
    int r = hp_worker_init(&ow->w, id, cpu, &ow->cfg);
    if (r < 0) {
        hp_free(ow);
        return r;
    }
    *out = &ow->w;
    return 0;
}

void hp_worker_free(hp_worker_t *w)
{
    if (!w)
        return;
    hp_worker_destroy(w);
    hp_free(HP_CONTAINER_OF(w, owned_worker_t, w));
}

uint32_t hp_worker_id(const hp_worker_t *w)
{
    return w->id;
}

hp_loop_t *hp_worker_loop(hp_worker_t *w)
{
    return &w->loop;
}

void hp_worker_stats(const hp_worker_t *w, hp_worker_stats_t *out)
{
    const hp_worker_stats_t *s = &w->stats;
    *out = (hp_worker_stats_t){
        .accepted = hp_worker_stat(&s->accepted),
        .closed = hp_worker_stat(&s->closed),
        .accept_errors = hp_worker_stat(&s->accept_errors),
        .oom_closed = hp_worker_stat(&s->oom_closed),
        .timeouts = hp_worker_stat(&s->timeouts),
        .bytes_in = hp_worker_stat(&s->bytes_in),
        .bytes_out = hp_worker_stat(&s->bytes_out),
        .stale_msgs = hp_worker_stat(&s->stale_msgs),
    };
}

void hp_worker_set_resolver(hp_worker_t *w, hp_resolve_t *r)
{
    w->resolver = r;
}

void hp_worker_ask_stop(hp_worker_t *w, bool now)
{
    hp_worker_post(w, now ? HP_MSG_STOP_NOW : HP_MSG_SHUTDOWN, 0, NULL);
}

int hp_worker_add_proto(hp_worker_t *w, const hp_proto_t *proto, void *arg)
{
    if (find_proto(w, proto))
        return -EEXIST;
    if (w->nprotos == HP_WORKER_MAX_PROTOS)
        return -ENOSPC;
    if (hp_proto_state_bytes(proto) + HP_CONN_MIN_RBUF > w->cfg->rbuf_size)
        return -EINVAL;
    void *data = NULL;
    if (proto->worker_init) {
        int r = proto->worker_init(w, arg, &data);
        if (r < 0)
            return r;
    }
    w->protos[w->nprotos++] = (hp_worker_proto_t){.proto = proto, .data = data};
    return 0;
}

void *hp_worker_proto_data(const hp_worker_t *w, const hp_proto_t *proto)
{
    const hp_worker_proto_t *p = find_proto(w, proto);
    return p ? p->data : NULL;
}

int hp_worker_listen(hp_worker_t *w, int fd, const hp_proto_t *proto)
{
    const hp_worker_proto_t *p = find_proto(w, proto);
    int r = 0;
    if (w->nlisteners == HP_WORKER_MAX_LISTENERS)
        r = -ENOSPC;
    else if (!p && proto->worker_init)
        r = -ENOENT;
    else if (!p && hp_proto_state_bytes(proto) + HP_CONN_MIN_RBUF > w->cfg->rbuf_size)
        r = -EINVAL;
    if (r < 0) {
        close(fd);
        return r;
    }
    hp_worker_listener_t *l = &w->listeners[w->nlisteners];
    *l = (hp_worker_listener_t){.worker = w, .proto = proto, .udata = p ? p->data : NULL};
    if ((r = hp_loop_add(&w->loop, &l->io, fd, EPOLLIN, listen_cb)) < 0) {
        close(fd);
        return r;
    }
    w->nlisteners++;
    return 0;
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

int hp_worker_post_msg(hp_worker_t *w, const hp_msg_t *m)
{
    if (!hp_mpsc_push(&w->inbox, m))
        return -EAGAIN;
    wake(w);
    return 0;
}

int hp_worker_post(hp_worker_t *w, uint32_t type, uint64_t arg, void *ptr)
{
    /* A stop request is a flag, not a message: a full inbox (a flood of
     * messages to connections, a wedged consumer) cannot lose it. */
    if (type == HP_MSG_SHUTDOWN || type == HP_MSG_STOP_NOW) {
        atomic_fetch_or_explicit(&w->asked,
                                 type == HP_MSG_SHUTDOWN ? HP_WORKER_ASK_SHUTDOWN
                                                         : HP_WORKER_ASK_STOP_NOW,
                                 memory_order_release);
        wake(w);
        return 0;
    }
    return hp_worker_post_msg(w, &(hp_msg_t){.type = type, .arg = arg, .ptr = ptr});
}

int hp_worker_call(hp_worker_t *w, hp_worker_call_cb fn, uint64_t arg, void *ptr)
{
    return hp_worker_post_msg(w, &(hp_msg_t){.type = HP_MSG_CALL, .arg = arg, .ptr = ptr,
                                             .fn = (void (*)(void))fn});
}

void hp_worker_destroy(hp_worker_t *w)
{
    if (w->started) {
        pthread_join(w->thread, NULL);
        w->started = false;
    }
    close_all(w);
    after_events(&w->loop, w);
    /* What is still in the inbox: calls run, connection messages go back
     * as stale (their connections are closed), so nothing leaks. */
    hp_msg_t m;
    while (w->inbox.slots && hp_mpsc_pop(&w->inbox, &m)) {
        if (m.type == HP_MSG_CALL || m.type == HP_MSG_CONN)
            handle_msg(w, &m);
    }
    close_all(w);
    after_events(&w->loop, w);
    close_listeners(w);
    for (uint32_t i = w->nprotos; i-- > 0;) {
        if (w->protos[i].proto->worker_fini)
            w->protos[i].proto->worker_fini(w, w->protos[i].data);
    }
    w->nprotos = 0;
    if (w->wake_fd >= 0)
        close(w->wake_fd);
    hp_pool_destroy(&w->conn_pool);
    hp_pool_destroy(&w->rpool);
    hp_pool_destroy(&w->wpool);
    for (uint32_t i = 0; i < HP_WORKER_MAX_CSTATE; i++) {
        if (w->cstate[i].size)
            hp_pool_destroy(&w->cstate[i].pool);
        w->cstate[i].size = 0;
    }
    for (uint32_t i = 0; i < w->npages; i++)
        hp_free(w->slot_pages[i]);
    hp_free(w->slot_pages);
    w->slot_pages = NULL;
    w->npages = 0;
    w->slot_free = UINT32_MAX;
    hp_mpsc_destroy(&w->inbox);
    hp_loop_destroy(&w->loop);
    w->wake_fd = -1;
}
