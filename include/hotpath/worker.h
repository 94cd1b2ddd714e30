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
 *
 * The worker is opaque: an engine makes its own (hp_engine_worker), and a
 * program that runs one loop of its own makes one with hp_worker_new.
 */
#ifndef HOTPATH_WORKER_H
#define HOTPATH_WORKER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "hotpath/common.h"
#include "hotpath/conn.h"
#include "hotpath/loop.h"
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

/* The worker's counters (hp_worker_stats takes a copy). */
typedef struct hp_worker_stats {
    uint64_t accepted;
    uint64_t closed;
    uint64_t accept_errors;   /* EMFILE/ENFILE/ENOMEM and others */
    uint64_t oom_closed;      /* connections closed for want of a buffer */
    uint64_t timeouts;
    uint64_t bytes_in, bytes_out;
    uint64_t stale_msgs;      /* messages for connections closed before delivery */
} HP_ALIGNED_CACHELINE hp_worker_stats_t;

/* Protocols one worker may carry at once (HTTP, WebSocket, AMQP client,
 * a test protocol ...) and listening sockets it may watch. */
#define HP_WORKER_MAX_PROTOS 8
#define HP_WORKER_MAX_LISTENERS 8
/* Makes a worker: its loop, pools and inbox, with no protocol and no
 * listener yet (hp_worker_add_proto, hp_worker_listen). `id` names it in
 * logs; `cpu` is the CPU hp_worker_start pins its thread to (-1: none);
 * `cfg` is copied. Run it on the calling thread (hp_worker_run) or on a
 * thread of its own (hp_worker_start). Returns 0 with *out set, or -errno
 * (-EINVAL for buffer sizes too small to work with); on failure nothing
 * is left allocated. */
HP_EXPORT int hp_worker_new(hp_worker_t **out, uint32_t id, int cpu,
                            const hp_worker_config_t *cfg);

/* Joins the worker's thread (if started; ask it to stop first), closes
 * what is left open, runs each protocol's worker_fini and frees the
 * worker. Call from any thread but the worker's. NULL is ignored. */
HP_EXPORT void hp_worker_free(hp_worker_t *w);

/* Its id (index in the engine's workers), and its loop, for timers
 * (hp_loop_timer_arm) and descriptors of one's own (hp_loop_add); the
 * loop is the worker's, used on the worker's thread only. */
HP_EXPORT uint32_t hp_worker_id(const hp_worker_t *w);
HP_EXPORT hp_loop_t *hp_worker_loop(hp_worker_t *w);

/* A copy of the worker's counters, from any thread (each counter is read
 * whole; the set is not one instant). */
HP_EXPORT void hp_worker_stats(const hp_worker_t *w, hp_worker_stats_t *out);

/* Lets hp_worker_connect_host look names up with `r` (borrowed: it must
 * outlive the worker). Call before the worker starts. An engine's workers
 * share the engine's resolver already. */
HP_EXPORT void hp_worker_set_resolver(hp_worker_t *w, hp_resolve_t *r);

/* Asks the worker to stop, from any thread: gracefully (stop accepting,
 * finish what is in flight, within cfg.drain_timeout_ms) or, with `now`,
 * at once, closing everything. Never fails: the request is a flag beside
 * the inbox, seen before any message. hp_worker_run returns, or the
 * thread ends, once the loop has stopped. */
HP_EXPORT void hp_worker_ask_stop(hp_worker_t *w, bool now);

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
 * this worker (hp_worker_proto_data) as their hp_conn_udata. A protocol that has a
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
 * `udata` as its hp_conn_udata. The connect is non-blocking: proto->on_open runs
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
 * hp_conn_udata, as hp_worker_connect does once the name is resolved. The
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
 * hp_conn_proto and hp_conn_udata are the engine's (they hold the dial state; every
 * callback sees the caller's): keep your own pointer to udata. Call from the worker's thread
 * (or before it starts). No callback runs before this returns. Returns 0
 * with *out set, or (nothing left open): -EINVAL (empty or too long host,
 * state too big), -EOPNOTSUPP for a name on a worker without a resolver,
 * -EBUSY when the resolver's queue is full, -ENOMEM/-ENOBUFS, or what
 * hp_worker_connect returns for a numeric host. */
HP_EXPORT int hp_worker_connect_host(hp_worker_t *w, const char *host, uint16_t port,
                                     const hp_proto_t *proto, void *udata,
                                     const hp_connect_opts_t *opts, hp_conn_t **out);

/* Starts the worker's thread (pinned to its cpu). Returns 0 or -errno. */
HP_EXPORT int hp_worker_start(hp_worker_t *w);

/* Runs the worker's loop on the calling thread until it stops. */
HP_EXPORT int hp_worker_run(hp_worker_t *w);

/* Runs fn(w, arg, ptr) on `w`'s thread at its next wake-up (any thread
 * may call; ownership of ptr passes with the message). Returns 0 or
 * -EAGAIN when its inbox is full (fn is then not called). */
typedef void (*hp_worker_call_cb)(hp_worker_t *w, uint64_t arg, void *ptr);
HP_EXPORT int hp_worker_call(hp_worker_t *w, hp_worker_call_cb fn, uint64_t arg, void *ptr);

/* Starts a graceful shutdown from the worker's own thread (a handler, a
 * timer). */
HP_EXPORT void hp_worker_shutdown(hp_worker_t *w);

#endif
