/*
 * conn_int.h - inside a connection: its struct, its flags, the net
 * layer's set-up and ready-queue pass, and the inline forms of the hot
 * accessors.
 *
 * hp_conn_data, hp_conn_data_len, hp_conn_cstate, hp_conn_consume,
 * hp_conn_set_busy, hp_conn_udata, hp_conn_worker and hp_conn_is_closed
 * are exported functions for embedders; inside the library the macros
 * below stand for them (same name, same meaning), so the request path pays
 * no call. conn.c defines the functions with their names in parentheses,
 * which the macros do not expand.
 */
#ifndef HOTPATH_CONN_INT_H
#define HOTPATH_CONN_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/loop_int.h"
#include "hotpath/conn.h"

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
    HP_CONN_F_NO_WRITE_TIMER = 1u << 16, /* hp_conn_suspend_write_timer: a stall
                                            does not close; the timer is the protocol's */
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

/* Bytes of protocol state at the head of a read chunk for `p`. */
static inline uint32_t hp_proto_state_bytes(const hp_proto_t *p)
{
    return (p->state_size + 63u) & ~63u;
}

static inline char *hp_conn_data_inl(hp_conn_t *c)
{
    return c->rbuf + c->rpos;
}

static inline uint32_t hp_conn_data_len_inl(const hp_conn_t *c)
{
    return c->rlen - c->rpos;
}

static inline void *hp_conn_cstate_inl(const hp_conn_t *c)
{
    return c->cstate;
}

static inline void hp_conn_consume_inl(hp_conn_t *c, uint32_t n)
{
    c->rpos += n;
}

static inline void hp_conn_set_busy_inl(hp_conn_t *c, bool busy)
{
    if (busy)
        c->flags |= HP_CONN_F_BUSY;
    else
        c->flags &= ~(uint32_t)HP_CONN_F_BUSY;
}

static inline void *hp_conn_udata_inl(const hp_conn_t *c)
{
    return c->udata;
}

static inline hp_worker_t *hp_conn_worker_inl(const hp_conn_t *c)
{
    return c->worker;
}

static inline bool hp_conn_is_closed_inl(const hp_conn_t *c)
{
    return (c->flags & HP_CONN_F_CLOSED) != 0;
}

#define hp_conn_data(c) hp_conn_data_inl(c)
#define hp_conn_data_len(c) hp_conn_data_len_inl(c)
#define hp_conn_cstate(c) hp_conn_cstate_inl(c)
#define hp_conn_consume(c, n) hp_conn_consume_inl(c, n)
#define hp_conn_set_busy(c, busy) hp_conn_set_busy_inl(c, busy)
#define hp_conn_udata(c) hp_conn_udata_inl(c)
#define hp_conn_worker(c) hp_conn_worker_inl(c)
#define hp_conn_is_closed(c) hp_conn_is_closed_inl(c)

/* Set-up of a new connection (its protocol, udata and persistent state),
 * the ready-queue pass, and the free at the end of the iteration. */
int hp_conn_start(hp_conn_t *c, const hp_proto_t *proto, void *udata);
void hp_conn_serve(hp_conn_t *c);
void hp_conn_release(hp_conn_t *c);

#endif
