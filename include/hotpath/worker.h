/*
 * worker.h - one thread, one core, one loop: a worker and its connections.
 *
 * A worker owns an event loop, its own SO_REUSEPORT listening socket, the
 * connections it accepted (for life), its buffer pools, timers and a
 * statistics shard. Other threads talk to it only through its inbox, a
 * bounded MPSC ring, and an eventfd that wakes it.
 */
#ifndef HOTPATH_WORKER_H
#define HOTPATH_WORKER_H

#include <pthread.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <stdint.h>

#include "hotpath/common.h"
#include "hotpath/conn.h"
#include "hotpath/loop.h"
#include "hotpath/mpsc.h"
#include "hotpath/pool.h"

typedef struct hp_worker_config {
    uint32_t rbuf_size;         /* read chunk bytes, protocol state included */
    uint32_t wbuf_size;         /* output chunk bytes */
    uint32_t max_chunks;        /* per pool; 0 = unlimited */
    uint64_t write_timeout_ms;  /* a peer that reads none of our output this long is closed */
    uint64_t drain_timeout_ms;  /* graceful shutdown gives up after this */
    uint64_t high_water;        /* queued output above this pauses parsing... */
    uint64_t low_water;         /* ...until it drains below this */
    bool nodelay;               /* TCP_NODELAY on accepted connections */
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
} HP_ALIGNED_CACHELINE hp_worker_stats_t;

/* Inbox message types. */
enum {
    HP_MSG_SHUTDOWN = 1, /* stop accepting, finish in-flight work, exit the loop */
    HP_MSG_STOP_NOW,     /* exit the loop at once, closing everything */
    HP_MSG_WORKER_EXIT,  /* (to the engine) a worker's loop ended; ptr: the worker */
    HP_MSG_PROTO,        /* for the protocol: passed to proto->on_msg */
};

struct hp_worker {
    hp_loop_t loop;
    uint32_t id;
    int cpu;                     /* pinned to this CPU, -1 for none */
    const hp_worker_config_t *cfg; /* borrowed, read-only */
    const hp_proto_t *proto;     /* borrowed */
    void *proto_data;            /* the protocol's per-worker state, owned by it */
    uint32_t state_size;         /* proto->state_size rounded up to 64 */

    int listen_fd;               /* owned; -1 once closed */
    hp_io_t listen_io;
    int wake_fd;                 /* owned eventfd */
    hp_io_t wake_io;
    hp_mpsc_t inbox;
    hp_mpsc_t *report_to;        /* borrowed: where WORKER_EXIT goes */
    int report_fd;               /* borrowed eventfd to wake the receiver */

    hp_pool_t conn_pool, rpool, wpool;
    hp_conn_t *conns;            /* every open connection */
    uint32_t nconns;
    hp_conn_t *ready_head, *ready_tail; /* spent their budget, bytes left */
    hp_conn_t *dead;             /* closed this iteration, freed in the hook */

    hp_timer_t accept_timer;     /* retries accept after EMFILE/ENFILE */
    hp_timer_t drain_timer;
    uint64_t accept_log_ms;
    bool accept_paused;
    bool draining;

    pthread_t thread;
    bool started;
    hp_worker_stats_t stats;
};

/* Prepares a worker around an already listening, non-blocking socket
 * (`listen_fd` becomes owned on every path; -1 for a worker without a
 * listener, such as a load generator's). Creates its loop, pools and
 * inbox; the thread is started by hp_worker_start. Returns 0 or -errno;
 * on failure nothing is left allocated. */
int hp_worker_init(hp_worker_t *w, uint32_t id, int cpu, int listen_fd,
                   const hp_worker_config_t *cfg, const hp_proto_t *proto);

/* Opens an outbound TCP connection to `addr` run by the worker's protocol,
 * with `udata` in c->udata. The connect is non-blocking: proto->on_open
 * runs once it is established, proto->on_connect_error if it fails (then
 * the connection closes). Call from the worker's thread (or before it
 * starts). A worker made with listen_fd -1 has no listener and serves
 * only such connections. Returns 0 with *out set, or -errno. */
int hp_worker_connect(hp_worker_t *w, const struct sockaddr *addr, socklen_t len, void *udata,
                      hp_conn_t **out);

/* Starts the worker's thread (pinned to w->cpu). Returns 0 or -errno. */
int hp_worker_start(hp_worker_t *w);

/* Runs the worker's loop on the calling thread until it stops. */
int hp_worker_run(hp_worker_t *w);

/* Posts a message from any thread and wakes the worker. Returns 0 or
 * -EAGAIN when its inbox is full. */
int hp_worker_post(hp_worker_t *w, uint32_t type, uint64_t arg, void *ptr);

/* Joins the thread (if started) and frees everything the worker holds. */
void hp_worker_destroy(hp_worker_t *w);

/* Starts a graceful shutdown from the worker's own thread. */
void hp_worker_shutdown(hp_worker_t *w);

/* For the net layer: a connection closed (unlinks it and defers its free)
 * and a connection that spent its budget with bytes left (served again
 * after the rest of the batch). */
void hp_worker_conn_closed(hp_worker_t *w, hp_conn_t *c);
void hp_worker_enqueue_ready(hp_worker_t *w, hp_conn_t *c);

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
