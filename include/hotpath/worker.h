/*
 * worker.h - one thread, one core, one loop: a worker and its connections.
 *
 * A worker owns an event loop, its listening sockets (each with the
 * protocol of what it accepts), the connections it accepted or opened
 * (for life), its buffer pools, timers and a statistics shard. Its
 * connections sit in a table of slots, so that another thread can name
 * one by a handle (worker, slot, generation) that stays safe after it
 * closes. Other threads talk to it only through its inbox, a bounded MPSC
 * ring, and an eventfd that wakes it.
 */
#ifndef HOTPATH_WORKER_H
#define HOTPATH_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "hotpath/common.h"
#include "hotpath/conn.h"
#include "hotpath/loop.h"
#include "hotpath/mpsc.h"
#include "hotpath/pool.h"
#include "hotpath/resolve.h"

typedef struct hp_worker_config {
    uint32_t rbuf_size;         /* read chunk bytes, protocol state included */
    uint32_t wbuf_size;         /* output chunk bytes */
    uint32_t max_chunks;        /* per pool; 0 = unlimited */
    uint64_t write_timeout_ms;  /* a peer that reads none of our output this long is closed */
    uint64_t drain_timeout_ms;  /* graceful shutdown gives up after this */
    uint64_t high_water;        /* queued output above this pauses parsing... */
    uint64_t low_water;         /* ...until it drains below this */
    bool nodelay;               /* TCP_NODELAY on accepted and (without
                                   options) outbound connections */
    bool reuseport;             /* (engine) a SO_REUSEPORT socket per worker; false:
                                   one socket, shared */
} hp_worker_config_t;

#define HP_WORKER_CONFIG_DEFAULT                                               \
    ((hp_worker_config_t){.rbuf_size = 32768,                                  \
                          .wbuf_size = 16384,                                  \
                          .max_chunks = 0,                                     \
                          .write_timeout_ms = 10000,                           \
                          .drain_timeout_ms = 10000,                           \
                          .high_water = 256 * 1024,                            \
                          .low_water = 64 * 1024,                              \
                          .nodelay = true,                                     \
                          .reuseport = true})

/* Counters written only by the owning worker and read by anyone (relaxed),
 * on their own cache lines. */
typedef struct hp_worker_stats {
    uint64_t accepted;
    uint64_t closed;
    uint64_t accept_errors;   /* EMFILE/ENFILE/ENOMEM and others */
    uint64_t oom_closed;      /* connections closed for want of a buffer */
    uint64_t timeouts;
    uint64_t bytes_in, bytes_out;
    uint64_t stale_msgs;      /* messages for connections closed before delivery */
} HP_ALIGNED_CACHELINE hp_worker_stats_t;

/* Inbox message types. */
enum {
    HP_MSG_SHUTDOWN = 1, /* stop accepting, finish in-flight work, exit the loop */
    HP_MSG_STOP_NOW,     /* exit the loop at once, closing everything */
    HP_MSG_WORKER_EXIT,  /* (to the engine) a worker's loop ended; ptr: the worker */
    HP_MSG_CALL,         /* run fn(worker, arg, ptr) on the worker's thread (hp_worker_call) */
    HP_MSG_CONN,         /* deliver to one connection by handle (hp_conn_post) */
};

/* Bits of hp_worker_t.asked. */
enum { HP_WORKER_ASK_SHUTDOWN = 1u << 0, HP_WORKER_ASK_STOP_NOW = 1u << 1 };

/* Protocols one worker may carry at once (HTTP, WebSocket, AMQP client,
 * a test protocol ...) and listening sockets it may watch. */
#define HP_WORKER_MAX_PROTOS 8
#define HP_WORKER_MAX_LISTENERS 8
/* Distinct sizes of persistent per-connection protocol state (each has
 * its own pool). */
#define HP_WORKER_MAX_CSTATE 8

/* A protocol registered on the worker and what its worker_init made. */
typedef struct hp_worker_proto {
    const hp_proto_t *proto;     /* borrowed */
    void *data;                  /* owned by the protocol */
} hp_worker_proto_t;

/* A listening socket and the protocol of what it accepts. */
typedef struct hp_worker_listener {
    hp_io_t io;
    hp_worker_t *worker;         /* borrowed: the owner */
    const hp_proto_t *proto;     /* borrowed */
    void *udata;                 /* given to accepted connections (c->udata) */
} hp_worker_listener_t;

/* A slot of the connection table: the open connection in it, or the next
 * free slot. `gen` changes each time the slot is freed, so a handle taken
 * before is recognised as stale. */
typedef struct hp_conn_slot {
    hp_conn_t *conn;             /* NULL when free */
    uint32_t gen;
    uint32_t next_free;
} hp_conn_slot_t;

/* Slots come in pages so that the table grows without moving them. */
#define HP_WORKER_SLOT_PAGE 256

/* Pool of persistent protocol state of one size. */
typedef struct hp_worker_cstate {
    uint32_t size;               /* 0: unused */
    hp_pool_t pool;
} hp_worker_cstate_t;

struct hp_worker {
    hp_loop_t loop;
    uint32_t id;
    int cpu;                     /* pinned to this CPU, -1 for none */
    const hp_worker_config_t *cfg; /* borrowed, read-only */
    hp_worker_t *group;          /* borrowed: the workers handles may name
                                    (the engine's array; this one alone otherwise) */
    uint32_t ngroup;

    hp_worker_proto_t protos[HP_WORKER_MAX_PROTOS];
    uint32_t nprotos;
    hp_worker_listener_t listeners[HP_WORKER_MAX_LISTENERS];
    uint32_t nlisteners;         /* their fds are -1 once closed */
    int wake_fd;                 /* owned eventfd */
    hp_io_t wake_io;
    _Atomic uint32_t asked;      /* HP_WORKER_ASK_*: stop requests, apart from
                                    the inbox so that they cannot be lost */
    hp_mpsc_t inbox;
    hp_mpsc_t *report_to;        /* borrowed: where WORKER_EXIT goes */
    int report_fd;               /* borrowed eventfd to wake the receiver */

    hp_pool_t conn_pool, rpool, wpool;
    hp_worker_cstate_t cstate[HP_WORKER_MAX_CSTATE];
    hp_conn_slot_t **slot_pages; /* owned: npages pages of HP_WORKER_SLOT_PAGE */
    uint32_t npages;
    uint32_t slot_free;          /* head of the free slots, UINT32_MAX: none */
    uint32_t nconns;             /* open connections */
    hp_conn_t *ready_head, *ready_tail; /* spent their budget, bytes left */
    hp_conn_t *dead;             /* closed this iteration, freed in the hook */

    hp_timer_t accept_timer;     /* retries accept after EMFILE/ENFILE */
    hp_timer_t drain_timer;
    uint64_t accept_log_ms;
    bool accept_paused;
    bool draining;

    pthread_t thread;
    bool started;
    /* borrowed: looks up host names for hp_worker_connect_host (the
     * engine's, shared by its workers); NULL: numeric hosts only */
    hp_resolve_t *resolver;
    hp_worker_stats_t stats;
};

/* Prepares a worker: its loop, pools and inbox, with no protocol and no
 * listener yet (hp_worker_add_proto, hp_worker_listen); the thread is
 * started by hp_worker_start. Returns 0 or -errno (-EINVAL for buffer
 * sizes too small to work with); on failure nothing is left allocated. */
HP_EXPORT int hp_worker_init(hp_worker_t *w, uint32_t id, int cpu, const hp_worker_config_t *cfg);

/* Registers `proto` on the worker and runs its worker_init(w, arg, &data)
 * (if any). Call before the worker starts. Returns 0, -EEXIST when it is
 * registered already, -ENOSPC past HP_WORKER_MAX_PROTOS, -EINVAL when its
 * state does not fit the read chunk, or worker_init's error. */
HP_EXPORT int hp_worker_add_proto(hp_worker_t *w, const hp_proto_t *proto, void *arg);

/* What `proto`'s worker_init made on this worker, NULL when it is not
 * registered (or made nothing). Any thread may ask; the pointer is the
 * protocol's. */
HP_EXPORT void *hp_worker_proto_data(const hp_worker_t *w, const hp_proto_t *proto);

/* Watches the listening, non-blocking socket `fd` (owned from now on, on
 * every path): what it accepts runs `proto`, with the protocol's data on
 * this worker (hp_worker_proto_data) in c->udata. A protocol that has a
 * worker_init must have been registered. Call before the worker starts.
 * Returns 0, -ENOSPC past HP_WORKER_MAX_LISTENERS, -ENOENT for an
 * unregistered protocol that needs registering, or -errno. */
HP_EXPORT int hp_worker_listen(hp_worker_t *w, int fd, const hp_proto_t *proto);

/* How an outbound connection is opened. */
typedef struct hp_connect_opts {
    uint64_t timeout_ms;         /* connect must finish within this; 0: the kernel's */
    hp_sockopts_t sock;
} hp_connect_opts_t;

/* Opens an outbound TCP connection to `addr` that runs `proto`, with
 * `udata` in c->udata. The connect is non-blocking: proto->on_open runs
 * once it is established; proto->on_connect_error(c, -errno) if it fails
 * or times out (-ETIMEDOUT), after which the connection closes. `opts` may
 * be NULL (no timeout, TCP_NODELAY as the worker's config says). Call from
 * the worker's thread (or before it starts), e.g. from a handler or a
 * timer. Returns 0 with *out set, or -errno (nothing is left open). */
HP_EXPORT int hp_worker_connect(hp_worker_t *w, const struct sockaddr *addr, socklen_t len,
                                const hp_proto_t *proto, void *udata, const hp_connect_opts_t *opts,
                                hp_conn_t **out);

/* Opens an outbound TCP connection to `host` (a name, or an IPv4 or IPv6
 * address in text) and `port` that runs `proto`, with `udata` in
 * c->udata, as hp_worker_connect does once the name is resolved. The
 * connection exists at once: the caller may close it, and it runs the
 * protocol's on_close, from the start. A numeric host is connected to
 * directly. A name is looked up by w->resolver on a helper thread
 * (getaddrinfo: /etc/hosts, nsswitch.conf, DNS ...) while the worker goes
 * on; then its addresses are tried in getaddrinfo's order, one after the
 * other, the next when a connect fails (refused, unreachable), until one
 * connects: proto->on_open runs then. opts->timeout_ms covers the lookup
 * and every connect together. Otherwise proto->on_connect_error(c, err)
 * runs and the connection closes, with err:
 *   -ETIMEDOUT  the timeout passed (during the lookup or a connect);
 *   -ENXIO      no such host (EAI_NONAME), or no address it can use;
 *   -EAGAIN     no DNS server answered (EAI_AGAIN);
 *   other       see hp_resolve_error, or the last connect's -errno.
 * Closing the connection during the lookup cancels it: no callback but
 * on_close runs, and nothing is left behind. Until the first callback,
 * c->proto and c->udata are the engine's (they hold the dial state; every
 * callback sees the caller's): keep your own pointer to udata. Call from the worker's thread
 * (or before it starts). No callback runs before this returns. Returns 0
 * with *out set, or (nothing left open): -EINVAL (empty or too long host,
 * state too big), -EOPNOTSUPP for a name on a worker without a resolver,
 * -EBUSY when the resolver's queue is full, -ENOMEM/-ENOBUFS, or what
 * hp_worker_connect returns for a numeric host. */
HP_EXPORT int hp_worker_connect_host(hp_worker_t *w, const char *host, uint16_t port,
                                     const hp_proto_t *proto, void *udata,
                                     const hp_connect_opts_t *opts, hp_conn_t **out);

/* Starts the worker's thread (pinned to w->cpu). Returns 0 or -errno. */
HP_EXPORT int hp_worker_start(hp_worker_t *w);

/* Runs the worker's loop on the calling thread until it stops. */
HP_EXPORT int hp_worker_run(hp_worker_t *w);

/* Posts a message from any thread and wakes the worker. Returns 0 or
 * -EAGAIN when its inbox is full. HP_MSG_SHUTDOWN and HP_MSG_STOP_NOW
 * never fail: they are flags beside the inbox, seen before any message. */
HP_EXPORT int hp_worker_post(hp_worker_t *w, uint32_t type, uint64_t arg, void *ptr);

/* Runs fn(w, arg, ptr) on `w`'s thread at its next wake-up (any thread
 * may call; ownership of ptr passes with the message). Returns 0 or
 * -EAGAIN when its inbox is full (fn is then not called). */
typedef void (*hp_worker_call_cb)(hp_worker_t *w, uint64_t arg, void *ptr);
HP_EXPORT int hp_worker_call(hp_worker_t *w, hp_worker_call_cb fn, uint64_t arg, void *ptr);

/* Joins the thread (if started), closes what is left, runs each
 * protocol's worker_fini and frees everything the worker holds. Messages
 * still in the inbox for connections are handed back (cb(NULL, ptr)). */
HP_EXPORT void hp_worker_destroy(hp_worker_t *w);

/* Starts a graceful shutdown from the worker's own thread. */
HP_EXPORT void hp_worker_shutdown(hp_worker_t *w);

/* For the net layer: a connection closed (frees its slot and defers its
 * free), a connection that spent its budget with bytes left (served again
 * after the rest of the batch), persistent protocol state, and the
 * connection in a slot (NULL when free). */
HP_EXPORT void hp_worker_conn_closed(hp_worker_t *w, hp_conn_t *c);
HP_EXPORT void hp_worker_enqueue_ready(hp_worker_t *w, hp_conn_t *c);
HP_EXPORT void *hp_worker_cstate_get(hp_worker_t *w, uint32_t size);
HP_EXPORT void hp_worker_cstate_put(hp_worker_t *w, void *state, uint32_t size);

/* Slot `i` of the connection table (i below the pages' capacity). */
static inline hp_conn_slot_t *hp_worker_slot(const hp_worker_t *w, uint32_t i)
{
    return &w->slot_pages[i / HP_WORKER_SLOT_PAGE][i % HP_WORKER_SLOT_PAGE];
}

/* Pushes a whole message and wakes the worker. Returns 0 or -EAGAIN. */
HP_EXPORT int hp_worker_post_msg(hp_worker_t *w, const hp_msg_t *m);

/* Reads one counter of another worker's shard without tearing. */
static inline uint64_t hp_worker_stat(const uint64_t *counter)
{
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

/* Increments a counter of the calling worker's own shard. */
static inline void hp_worker_stat_add(uint64_t *counter, uint64_t n)
{
    __atomic_store_n(counter, *counter + n, __ATOMIC_RELAXED);
}

#endif
