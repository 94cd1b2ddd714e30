/*
 * conn.h - a connection: its socket, its buffers and its output queue.
 *
 * The net layer does the I/O; a protocol (HTTP now, WebSocket and AMQP
 * later) implements hp_proto_t and sees only bytes in and responses out.
 * Each connection carries its own protocol: the listener that accepted it
 * or the call that opened it chose it, and hp_conn_switch hands a live
 * connection to another (an HTTP upgrade), keeping the bytes not yet read.
 *
 * Buffers belong to the connection only while it is busy. The read chunk
 * holds the protocol's per-request state (its first proto->state_size
 * bytes) followed by the received bytes; the output chunk holds the queue
 * of segments still to send followed by inline response bytes. Both come
 * from per-worker pools and go back as soon as the connection is idle, so
 * an idle keep-alive connection is just this struct.
 *
 * Output produced while handling one read batch is sent with one writev
 * (sendfile for file segments) when the batch ends.
 */
#ifndef HOTPATH_CONN_H
#define HOTPATH_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hotpath/common.h"
#include "hotpath/loop.h"

typedef struct hp_conn hp_conn_t;
typedef struct hp_worker hp_worker_t;

typedef struct hp_proto {
    const char *name;    /* for logs and errors: "http", "lineecho" ... */
    /* A connection was accepted, an outbound connection is established
     * (no bytes yet), or the connection was switched to this protocol
     * (hp_conn_switch; bytes may be waiting: on_data follows). Optional. */
    void (*on_open)(hp_conn_t *c);
    /* An outbound connection failed to connect (-errno, -ETIMEDOUT for the
     * connect timeout); the connection is closed right after this returns.
     * Optional. */
    void (*on_connect_error)(hp_conn_t *c, int err);
    /* New bytes: hp_conn_data()/hp_conn_data_len(). The protocol consumes
     * what it handled with hp_conn_consume and may queue output, pause, or
     * close. It is called again when more bytes arrive or after a pause
     * ends, with the unconsumed bytes still in place. */
    void (*on_data)(hp_conn_t *c);
    /* The output queue drained after the protocol paused or the write
     * timer was armed: resume parsing and re-arm the protocol's timer. */
    void (*on_drain)(hp_conn_t *c);
    /* The connection's timer fired while the protocol owned it. */
    void (*on_timeout)(hp_conn_t *c);
    /* The connection is closing (every connection, once, whichever
     * protocol it runs then): release whatever the protocol holds outside
     * the read chunk. The read chunk, if any, and the persistent state are
     * still readable. */
    void (*on_close)(hp_conn_t *c);
    /* Sets up the protocol's per-worker state (*data, then found with
     * hp_worker_proto_data and given to accepted connections as c->udata)
     * when the protocol is registered on a worker, and tears it down when
     * the worker is destroyed. Optional. */
    int (*worker_init)(hp_worker_t *w, void *arg, void **data);
    void (*worker_fini)(hp_worker_t *w, void *data);
    /* Per-request state: bytes at the head of the read chunk, which the
     * connection holds only while bytes are buffered or the protocol is
     * busy (so an idle connection holds none). */
    uint32_t state_size;
    /* Persistent state: bytes kept for the whole life of the connection
     * (zeroed when it starts running this protocol), from a per-worker
     * pool; hp_conn_cstate. 0: none. */
    uint32_t cstate_size;
} hp_proto_t;

/* The least room for received bytes a protocol's state must leave in a
 * read chunk. */
#define HP_CONN_MIN_RBUF 1024

/* Flag bits of hp_conn_t.flags. */
enum {
    HP_CONN_F_CLOSED = 1u << 0,      /* closed; freed at the end of the iteration */
    HP_CONN_F_READABLE = 1u << 1,    /* the socket may hold unread bytes */
    HP_CONN_F_PEER_EOF = 1u << 2,    /* read returned 0 */
    HP_CONN_F_PAUSED = 1u << 3,      /* the protocol stopped parsing until drain */
    HP_CONN_F_CLOSE_AFTER = 1u << 4, /* close once the output queue is empty */
    HP_CONN_F_BUSY = 1u << 5,        /* the protocol holds state in the read chunk */
    HP_CONN_F_QUEUED = 1u << 6,      /* on the worker's ready queue */
    HP_CONN_F_WRITE_WAIT = 1u << 7,  /* output blocked; the write timer is armed */
    HP_CONN_F_STATE_INIT = 1u << 8,  /* protocol state in the read chunk is valid */
    HP_CONN_F_IN_DATA = 1u << 9,     /* inside on_data: do not re-enter */
    HP_CONN_F_RDHUP = 1u << 10,      /* the peer's FIN was reported: read until 0 */
    HP_CONN_F_CONNECTING = 1u << 11, /* outbound connect() in progress */
    HP_CONN_F_HOLD = 1u << 12,       /* the protocol holds the connection: read nothing */
    HP_CONN_F_CORK = 1u << 13,       /* a large file is queued: send it corked */
    HP_CONN_F_CORKED = 1u << 14,     /* TCP_CORK is on until the queue drains */
    HP_CONN_F_SWITCHED = 1u << 15,   /* the protocol changed inside a callback */
};

typedef struct hp_conn_out hp_conn_out_t;

/* Hot fields first; the struct is allocated from a 128-byte-chunk pool. */
struct hp_conn {
    hp_io_t io;           /* fd and event callback */
    uint32_t flags;       /* HP_CONN_F_* */
    uint32_t rpos, rlen;  /* unconsumed bytes are data[rpos, rlen) */
    uint32_t slot;        /* index in the worker's connection table */
    char *rbuf;           /* received bytes: inside an owned pool chunk, after
                             the protocol state; NULL when idle */
    hp_conn_out_t *out;   /* owned pool chunk, NULL when nothing is queued */
    hp_worker_t *worker;  /* borrowed: the owner, for life */
    const hp_proto_t *proto; /* borrowed: the protocol it runs now */
    hp_conn_t *qnext;     /* ready queue or deferred-free list */
    hp_timer_t timer;
    void *udata;          /* the protocol's: its per-worker data for an accepted
                             connection, the caller's for an outbound one or
                             after a switch */
    void *cstate;         /* owned: proto->cstate_size bytes, or NULL */
    uint32_t peer_v4;     /* accepted from IPv4: the peer's address (network
                             order); 0 otherwise (ask getpeername) */
    uint32_t nreq;        /* the protocol's count of requests on it */
};

/* Names a connection from any thread: it stays safe to use after the
 * connection closes (a message to it is then dropped, never delivered to
 * whatever reuses the slot). */
typedef struct hp_conn_handle {
    uint32_t worker;      /* index in the worker's group (hp_worker_t.id) */
    uint32_t slot;
    uint32_t gen;
} hp_conn_handle_t;

/* TCP options of one connection. Zero fields keep the kernel's defaults. */
typedef struct hp_sockopts {
    bool nodelay;         /* TCP_NODELAY */
    bool keepalive;       /* SO_KEEPALIVE, with: */
    uint32_t keepidle_s;  /*   idle seconds before the first probe (0: kernel's) */
    uint32_t keepintvl_s; /*   seconds between probes (0: kernel's) */
    uint32_t keepcnt;     /*   probes before the connection is dropped (0: kernel's) */
    uint32_t sndbuf, rcvbuf; /* SO_SNDBUF / SO_RCVBUF bytes (0: kernel's) */
} hp_sockopts_t;

/* The unconsumed received bytes. Valid until the next consume or return
 * from on_data. */
static inline char *hp_conn_data(hp_conn_t *c)
{
    return c->rbuf + c->rpos;
}

static inline uint32_t hp_conn_data_len(const hp_conn_t *c)
{
    return c->rlen - c->rpos;
}

/* Bytes of protocol state at the head of a read chunk for `p`. */
static inline uint32_t hp_proto_state_bytes(const hp_proto_t *p)
{
    return (p->state_size + 63u) & ~63u;
}

/* The persistent protocol state (proto->cstate_size bytes), NULL when the
 * protocol has none. */
static inline void *hp_conn_cstate(const hp_conn_t *c)
{
    return c->cstate;
}

/* The protocol state area at the head of the read chunk (state_size bytes,
 * not initialised: HP_CONN_F_STATE_INIT is clear when the chunk is new, and
 * the protocol sets up what it uses). NULL when the connection holds no read
 * chunk. */
HP_EXPORT void *hp_conn_state(hp_conn_t *c);

/* Marks `n` received bytes as handled. */
static inline void hp_conn_consume(hp_conn_t *c, uint32_t n)
{
    c->rpos += n;
}

/* Says whether protocol state in the read chunk must survive when no bytes
 * are buffered (a request whose body is still arriving). */
static inline void hp_conn_set_busy(hp_conn_t *c, bool busy)
{
    if (busy)
        c->flags |= HP_CONN_F_BUSY;
    else
        c->flags &= ~(uint32_t)HP_CONN_F_BUSY;
}

/* Removes `n` received bytes at offset `off` of the unconsumed ones,
 * keeping the `off` bytes before them where they are (used to consume a
 * body while its request head stays in place). */
HP_EXPORT void hp_conn_cut(hp_conn_t *c, uint32_t off, uint32_t n);

/* Stops (or resumes) reading from the socket while the protocol holds the
 * connection, e.g. while a handler answers asynchronously: the received
 * bytes stay where they are, so pointers into them stay valid. */
HP_EXPORT void hp_conn_hold(hp_conn_t *c, bool hold);

/* Capacity of the received-bytes area: the most one request head can
 * occupy. */
HP_EXPORT uint32_t hp_conn_rbuf_capacity(const hp_conn_t *c);

/* Moves the unconsumed bytes to the front of the read area so more fit.
 * Protocols that keep offsets relative to the start of the unconsumed
 * bytes are unaffected. */
HP_EXPORT void hp_conn_compact(hp_conn_t *c);

/* ---- output ---- */

/* Room for `n` inline bytes at the end of the output queue, or NULL when
 * the queue is full even after trying to send what it holds (the protocol
 * then stops and waits for on_drain) or no chunk could be had. The bytes
 * are committed with hp_conn_commit. */
HP_EXPORT char *hp_conn_reserve(hp_conn_t *c, uint32_t n);
HP_EXPORT void hp_conn_commit(hp_conn_t *c, uint32_t n);

/* Copies `len` bytes into the queue. Returns 0 or -ENOBUFS (full). */
HP_EXPORT int hp_conn_write(hp_conn_t *c, const void *buf, uint32_t len);

/* Queues `len` bytes at `buf` without copying. `buf` must stay valid until
 * sent; with `owned` it is released with hp_free once sent or dropped, on
 * every path (including failure). Returns 0 or -ENOBUFS. */
HP_EXPORT int hp_conn_write_ref(hp_conn_t *c, const void *buf, uint64_t len, bool owned);

/* A spare chunk from the worker's read pool (hp_conn_chunk_size bytes) for
 * the protocol's own use, such as a request body; NULL when none is left.
 * Give it back with hp_conn_chunk_put or hand it to hp_conn_write_chunk. */
HP_EXPORT void *hp_conn_chunk_get(hp_conn_t *c);
HP_EXPORT void hp_conn_chunk_put(hp_conn_t *c, void *chunk);
HP_EXPORT uint32_t hp_conn_chunk_size(const hp_conn_t *c);

/* Queues `len` bytes at `buf`, which lies inside `chunk` (from
 * hp_conn_chunk_get). Takes ownership of the chunk on every path: it goes
 * back to the pool once sent or dropped. Returns 0 or -ENOBUFS. */
HP_EXPORT int hp_conn_write_chunk(hp_conn_t *c, void *chunk, const void *buf, uint64_t len);

/* Queues `len` bytes at `buf` without copying; `done(arg)` (if not NULL)
 * runs once they are sent or dropped, on every path (including failure:
 * then before this returns). Returns 0 or -ENOBUFS. */
HP_EXPORT int hp_conn_write_ref_cb(hp_conn_t *c, const void *buf, uint64_t len,
                                   void (*done)(void *arg), void *arg);

/* Queues `len` bytes of file `fd` from `offset` for sendfile. Takes
 * ownership of `fd` on every path: it is closed once sent or dropped.
 * Returns 0 or -ENOBUFS. */
HP_EXPORT int hp_conn_write_file(hp_conn_t *c, int fd, uint64_t offset, uint64_t len);

/* Queues `len` bytes of file `fd` from `offset` for sendfile without
 * taking the descriptor (an open-file cache keeps it for later requests):
 * `fd` must stay open until `done(arg)` runs, which happens exactly once,
 * when the bytes are sent or dropped (connection closed, write error), on
 * every path: on failure and for len 0 it runs before this returns. The
 * connection never closes `fd`. `done` may not free the connection; NULL
 * `done` behaves as hp_conn_write_file (fd owned and closed).
 * Returns 0 or -ENOBUFS. */
HP_EXPORT int hp_conn_write_file_cb(hp_conn_t *c, int fd, uint64_t offset, uint64_t len,
                                    void (*done)(void *arg), void *arg);

/* Bytes queued and not yet sent. */
HP_EXPORT uint64_t hp_conn_pending(const hp_conn_t *c);

/* Sends what is queued now instead of at the end of the batch (used for
 * "100 Continue"). Returns 0 or -errno; on a fatal error the connection is
 * closed. */
HP_EXPORT int hp_conn_flush(hp_conn_t *c);

/* Stops parsing: on_data is not called again until the output drains. */
HP_EXPORT void hp_conn_pause(hp_conn_t *c);

/* ---- lifecycle ---- */

/* Closes once everything queued is sent (or the write timer fires). */
HP_EXPORT void hp_conn_close_after_write(hp_conn_t *c);

/* Closes now: the fd is closed and removed from the poller at once, queued
 * output is dropped, and the struct is freed at the end of the loop
 * iteration, so callers up the stack may still look at it. Idempotent. */
HP_EXPORT void hp_conn_close(hp_conn_t *c);

/* Arms the connection's single timer for the protocol (cancels the write
 * timer role). 0 cancels. */
HP_EXPORT void hp_conn_set_timer(hp_conn_t *c, uint64_t timeout_ms);

/* The loop's cached time. */
HP_EXPORT uint64_t hp_conn_now(const hp_conn_t *c);

/* ---- protocols, options, handles ---- */

/* Hands the connection to `proto` (with `udata` in c->udata), keeping the
 * bytes received and not yet consumed: they are the new protocol's first
 * input (a client may send frames right behind its upgrade request). What
 * the old protocol queued is still sent first. The old protocol must have
 * released what it holds (its on_close is not called) and must not touch
 * the connection after this returns: inside one of its callbacks it sees
 * HP_CONN_F_SWITCHED and returns at once. The new protocol's on_open runs
 * before this returns; its on_data follows for the waiting bytes (at once
 * from the engine when called inside a callback, else at the next turn).
 * Returns 0, or -EINVAL when its state does not fit the read chunk,
 * -ENOBUFS when the waiting bytes do not fit behind it or no persistent
 * state could be had (the connection is then closed). */
HP_EXPORT int hp_conn_switch(hp_conn_t *c, const hp_proto_t *proto, void *udata);

/* Applies TCP options. Returns 0 or the first -errno (the rest are still
 * tried). */
HP_EXPORT int hp_conn_set_sockopts(hp_conn_t *c, const hp_sockopts_t *o);

/* The connection's handle, for other threads. */
HP_EXPORT hp_conn_handle_t hp_conn_handle(const hp_conn_t *c);

/* Delivery of a message to a connection: c is NULL when it closed before
 * the message arrived (the callback then frees what ptr holds). Runs on
 * the connection's worker thread. */
typedef void (*hp_conn_msg_cb)(hp_conn_t *c, void *ptr);

/* Sends `ptr` to the connection `h` names, from any thread, through its
 * worker's inbox: cb(c, ptr) runs there, or cb(NULL, ptr) when the
 * connection is gone (counted in the worker's stale_msgs). `via` is any
 * worker of the same group (the engine's workers). Returns 0, -EINVAL for
 * a worker outside the group, -EAGAIN when its inbox is full (cb is then
 * not called: ptr stays the caller's). */
HP_EXPORT int hp_conn_post(hp_worker_t *via, hp_conn_handle_t h, hp_conn_msg_cb cb, void *ptr);

/* Internal to the net layer: set-up and the ready-queue pass. */
HP_EXPORT int hp_conn_start(hp_conn_t *c, const hp_proto_t *proto, void *udata);
HP_EXPORT void hp_conn_serve(hp_conn_t *c);
HP_EXPORT void hp_conn_release(hp_conn_t *c);

#endif
