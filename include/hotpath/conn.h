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
 * an idle keep-alive connection is just its struct (128 bytes).
 *
 * Output produced while handling one read batch is sent with one writev
 * (sendfile for file segments) when the batch ends.
 *
 * Threads: every function here runs on the connection's worker thread
 * (inside the protocol's callbacks, a timer or an hp_worker_call), except
 * hp_conn_post, which any thread may call.
 */
#ifndef HOTPATH_CONN_H
#define HOTPATH_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hotpath/common.h"
#include "hotpath/loop.h"

typedef struct hp_conn hp_conn_t;     /* opaque */
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
     * hp_worker_proto_data and given to accepted connections as their
     * hp_conn_udata) when the protocol is registered on a worker, and
     * tears it down when the worker is destroyed. Optional. */
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

/* The unconsumed received bytes, hp_conn_data_len of them (with none, the
 * pointer may be NULL). Valid until the next consume or return from
 * on_data. */
HP_EXPORT char *hp_conn_data(hp_conn_t *c);
HP_EXPORT uint32_t hp_conn_data_len(const hp_conn_t *c);

/* The persistent protocol state (proto->cstate_size bytes), NULL when the
 * protocol has none. */
HP_EXPORT void *hp_conn_cstate(const hp_conn_t *c);

/* The protocol state area at the head of the read chunk (state_size
 * bytes), NULL when the connection holds no read chunk. A new chunk's
 * state is not initialised: hp_conn_state_valid says false until the
 * protocol has set up what it uses and called hp_conn_state_set_valid;
 * it is false again whenever the chunk was released (the connection went
 * idle and was not busy). */
HP_EXPORT void *hp_conn_state(hp_conn_t *c);
HP_EXPORT bool hp_conn_state_valid(const hp_conn_t *c);
HP_EXPORT void hp_conn_state_set_valid(hp_conn_t *c);

/* Marks `n` received bytes as handled. */
HP_EXPORT void hp_conn_consume(hp_conn_t *c, uint32_t n);

/* Says whether protocol state in the read chunk must survive when no bytes
 * are buffered (a request whose body is still arriving). */
HP_EXPORT void hp_conn_set_busy(hp_conn_t *c, bool busy);

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

/* ---- what the connection is ---- */

/* The protocol's pointer: its per-worker data for an accepted connection
 * (hp_worker_proto_data), the caller's for an outbound one or after a
 * switch; hp_conn_set_udata replaces it. */
HP_EXPORT void *hp_conn_udata(const hp_conn_t *c);
HP_EXPORT void hp_conn_set_udata(hp_conn_t *c, void *udata);

/* The protocol it runs now, and the worker that owns it (for life). */
HP_EXPORT const hp_proto_t *hp_conn_proto(const hp_conn_t *c);
HP_EXPORT hp_worker_t *hp_conn_worker(const hp_conn_t *c);

/* The socket (for getpeername, getsockopt ...; -1 once closed). Reading,
 * writing or closing it behind the connection's back is not allowed. */
HP_EXPORT int hp_conn_fd(const hp_conn_t *c);

/* Whether the connection was closed (hp_conn_close, a fatal error): it
 * stays readable until the callback that saw it returns, and nothing more
 * may be queued on it. */
HP_EXPORT bool hp_conn_is_closed(const hp_conn_t *c);

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

/* Sends what was queued on `c` from outside its own callbacks (a timer,
 * an hp_worker_call, another connection's handler) at the end of this
 * loop iteration, together with whatever else is queued on it by then:
 * one writev for a whole burst. Inside c's own callbacks the end of the
 * callback does this already. */
HP_EXPORT void hp_conn_flush_soon(hp_conn_t *c);

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

/* Suspends (true) or restores the write timer: while suspended, output
 * the peer does not read never closes the connection after the worker's
 * write_timeout_ms, and hp_conn_set_timer stays the protocol's while
 * output waits; for a protocol whose peer said it stopped reading (AMQP's
 * connection.blocked), which keeps its own limit. Restored with output
 * still waiting, the write timer starts afresh. */
HP_EXPORT void hp_conn_suspend_write_timer(hp_conn_t *c, bool suspend);

/* Read coalescing, for a connection that receives a steady stream (an
 * AMQP consumer): with `bytes` > 1 the kernel signals the socket readable
 * only once that many bytes wait (SO_RCVLOWAT), so one wake-up reads many
 * messages instead of one. Fewer bytes never wake the worker: the protocol
 * reads them on its own schedule with hp_conn_read_soon (from a timer).
 * Lowering the mark (1: every byte wakes, the kernel's default) reads at
 * once what the higher one held back. Returns 0 or -errno. */
HP_EXPORT int hp_conn_set_read_lowat(hp_conn_t *c, uint32_t bytes);

/* Reads the socket in this loop iteration, whether or not it signalled. */
HP_EXPORT void hp_conn_read_soon(hp_conn_t *c);

/* The loop's cached time. */
HP_EXPORT uint64_t hp_conn_now(const hp_conn_t *c);

/* ---- protocols, options, handles ---- */

/* Hands the connection to `proto` (with `udata` as hp_conn_udata), keeping the
 * bytes received and not yet consumed: they are the new protocol's first
 * input (a client may send frames right behind its upgrade request). What
 * the old protocol queued is still sent first. The old protocol must have
 * released what it holds (its on_close is not called) and must not touch
 * the connection after this returns: inside one of its callbacks it
 * returns at once. The new protocol's on_open runs
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

#endif
