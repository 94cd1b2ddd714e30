/*
 * worker_int.h - inside a worker: its struct, its connection table, its
 * inbox messages and what the net layer asks of it.
 */
#ifndef HOTPATH_WORKER_INT_H
#define HOTPATH_WORKER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conn_int.h"
#include "core/loop_int.h"
#include "core/mpsc_int.h"
#include "core/pool_int.h"
#include "hotpath/resolve.h"
#include "hotpath/worker.h"

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

/* Sets a worker up in place, as hp_worker_new does (the engine keeps its
 * workers in one array), except that `cfg` is borrowed and must outlive
 * it. Returns 0 or -errno; on failure nothing is left allocated. */
int hp_worker_init(hp_worker_t *w, uint32_t id, int cpu, const hp_worker_config_t *cfg);

/* Posts a message from any thread and wakes the worker. Returns 0 or
 * -EAGAIN when its inbox is full. HP_MSG_SHUTDOWN and HP_MSG_STOP_NOW
 * never fail: they are flags beside the inbox, seen before any message. */
int hp_worker_post(hp_worker_t *w, uint32_t type, uint64_t arg, void *ptr);

/* As hp_worker_free, for a worker set up with hp_worker_init: frees
 * everything the worker holds, not the struct. Messages
 * still in the inbox for connections are handed back (cb(NULL, ptr)). */
void hp_worker_destroy(hp_worker_t *w);

/* For the net layer: a connection closed (frees its slot and defers its
 * free), a connection that spent its budget with bytes left (served again
 * after the rest of the batch), persistent protocol state, and the
 * connection in a slot (NULL when free). */
void hp_worker_conn_closed(hp_worker_t *w, hp_conn_t *c);
void hp_worker_enqueue_ready(hp_worker_t *w, hp_conn_t *c);
void *hp_worker_cstate_get(hp_worker_t *w, uint32_t size);
void hp_worker_cstate_put(hp_worker_t *w, void *state, uint32_t size);

/* Slot `i` of the connection table (i below the pages' capacity). */
static inline hp_conn_slot_t *hp_worker_slot(const hp_worker_t *w, uint32_t i)
{
    return &w->slot_pages[i / HP_WORKER_SLOT_PAGE][i % HP_WORKER_SLOT_PAGE];
}

/* Pushes a whole message and wakes the worker. Returns 0 or -EAGAIN. */
int hp_worker_post_msg(hp_worker_t *w, const hp_msg_t *m);

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
