/*
 * app_amqp_worker_int.h - what the files of the app's AMQP side share:
 * the settings' layout (app_amqp_settings.c), the per-worker state the
 * route keeps (app_amqp.c) and the shard /metrics reads
 * (app_amqp_metrics.c). Private to those three files; app.c, app_config.c
 * and builtin.c see only app_amqp_int.h.
 */
#ifndef HOTPATH_APP_AMQP_WORKER_INT_H
#define HOTPATH_APP_AMQP_WORKER_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "app_amqp_int.h"
#include "hotpath/amqp.h"
#include "hotpath/amqp_breaker.h"
#include "hotpath/hist.h"
#include "hotpath/loop.h"

/* The route's parameters. */
#define P_EXCHANGE "exchange"
#define P_KEY "routing_key"

/* AMQP short strings (names, content types) are at most 255 bytes. */
#define SHORTSTR_MAX 255

struct app_amqp {
    hp_app_amqp_t cfg;           /* its strings point into strs */
    char *pattern;               /* in strs; NULL: no route */
    char *strs;                  /* owned */
    uint64_t nonce;              /* starts every message id: tells runs apart */
};

/* The slots of a worker (app_amqp_settings.c): every channel's confirm
 * window, and with a publish queue what the queues may hold. */
uint32_t app_amqp_worker_slots(const hp_app_amqp_t *cfg);

/* How each publishing request ended, for /metrics. */
enum {
    OUT_ACCEPTED,    /* 202: acked */
    OUT_NACKED,      /* 502 */
    OUT_UNROUTABLE,  /* 502: returned */
    OUT_NO_EXCHANGE, /* 404: the broker closed the channel: no such exchange */
    OUT_UNCONFIRMED, /* 503: the channel or connection went before the answer */
    OUT_UNAVAILABLE, /* 503: not connected, blocked, window or output full */
    OUT_TIMEOUT,     /* 504 */
    OUT_TOO_LARGE,   /* 413 */
    OUT_BAD_REQUEST, /* 400: a name that cannot be published to */
    OUT_ABORTED,     /* the client went before the answer */
    OUT_CIRCUIT_OPEN, /* 503: the breaker refused it */
    OUT_COUNT
};

/* The connection's counters (hp_amqp_stats_t), as /metrics sums them. */
enum {
    S_PUBLISHED, S_CONFIRMED, S_NACKED, S_UNCONFIRMED, S_RETURNED, S_DELIVERED,
    S_REDELIVERED, S_ACKED, S_RECOVERIES, S_BYTES_IN, S_BYTES_OUT, S_COUNT
};

/* What other workers read for /metrics: written by this worker only,
 * with relaxed stores, read with relaxed loads (hp_worker_stat). */
typedef struct amqp_shard {
    uint64_t conn[S_COUNT];      /* every connection of this worker, the current one
                                    as of its last refresh (at most a second old) */
    uint64_t outcomes[OUT_COUNT];
    uint64_t states[HP_AMQP_STATE_CLOSED + 1]; /* the links, by HP_AMQP_STATE_* */
    uint64_t breaker_state;      /* HP_AMQP_BREAKER_* */
    uint64_t breaker_opened;     /* times it opened */
} HP_ALIGNED_CACHELINE amqp_shard_t;

typedef struct amqp_worker amqp_worker_t;
typedef struct amqp_link amqp_link_t;

/* One publishing channel of a link. */
typedef struct amqp_chan {
    amqp_link_t *link;
    hp_amqp_channel_t *ch;       /* NULL while there is none */
    uint32_t unconfirmed;        /* slots published on it and not answered yet */
    bool ready;                  /* ch is open and in confirm mode */
} amqp_chan_t;

/* One connection to the broker and its channels. */
struct amqp_link {
    amqp_worker_t *aw;
    hp_amqp_conn_t *conn;        /* NULL while there is none */
    amqp_chan_t *chans;          /* borrowed: aw->nchans of aw->chans */
    uint8_t state;               /* HP_AMQP_STATE_* of conn (CLOSED without one) */
    bool ever_ready;             /* a connection was READY once: later ones are
                                    reconnections */
    /* Why its last channel or connection closed, for the settle pass. */
    uint16_t close_code, close_class, close_method;
    char close_text[256];
    hp_timer_t retry_timer;      /* reconnection (retry_cb) */
    uint64_t retry_ms;           /* the delay before the next attempt; 0: none yet */
    uint32_t failures;           /* attempts failed in a row, for the log */
    char tag[40];                /* "worker N", or "worker N connection I": for logs */
    char name[64];               /* the connection's name, shown by the broker */
};

/* One request waiting to publish, or one unconfirmed publish. */
typedef struct pub_slot {
    hp_ctx_t *ctx;               /* borrowed: the request waiting for it; NULL: none */
    amqp_worker_t *aw;
    amqp_chan_t *chan;           /* borrowed: the channel it was published on;
                                    NULL before its publish */
    hp_timer_t timer;            /* while ctx is set: the request's next try before
                                    its publish, its timeout after */
    uint64_t id;                 /* its message id's number (gen * nslots + index) */
    uint64_t seq;                /* its sequence number on the channel; 0: not
                                    published (free, or waiting to publish) */
    uint64_t t0_ns;              /* when it was published */
    uint64_t deadline_ms;        /* the request's arrival + amqp.timeout */
    uint32_t retry_ms;           /* the last delay before a try; 0: none yet */
    uint32_t next_free;
    uint16_t returned;           /* the reply code of a basic.return for it; 0: none */
    bool judged;                 /* the breaker has had its outcome */
    int failed;                  /* -errno: its channel went; answered by settle_cb */
} pub_slot_t;

struct amqp_worker {
    amqp_shard_t shard;
    const app_amqp_t *a;         /* borrowed: the app's settings */
    hp_worker_t *w;
    hp_loop_t *loop;
    /* The links: amqp.connections of them, each with amqp.channels. */
    amqp_link_t *links;          /* owned: nlinks */
    amqp_chan_t *chans;          /* owned: nlinks * nchans, link by link */
    uint32_t nlinks, nchans;     /* nchans: per link */
    uint32_t next_chan;          /* where link_pick starts: ties go round */
    hp_amqp_stats_t base;        /* the counters of this worker's closed connections */
    /* The shard's refresh (tick_cb) and the settle pass (settle_cb). */
    hp_timer_t tick_timer, settle_timer;
    /* Slots: every channel's confirm window, and the requests its publish
     * queue may hold (worker_slots). */
    pub_slot_t *slots;           /* owned */
    uint32_t nslots, free_head, in_use;
    hp_hist_t latency;           /* publish -> ack or nack, ns */
    hp_hist_t merged;            /* scratch: /metrics on this worker merges into it */
    /* Publish-to-deliver latency of this worker's connections' deliveries
     * (hp_amqp_deliver_latency, taken at each refresh), and its scratch. */
    hp_hist_t deliver, deliver_merged;
    hp_amqp_breaker_t breaker;   /* the route's; used when has_breaker */
    bool has_breaker;
};

/* The shard's refresh: a second keeps /metrics close enough without
 * waking an idle worker more often. */
#define TICK_MS 1000u

/* Ready means ready to publish: connected, and a channel in confirm
 * mode. */
static inline uint8_t link_state(const amqp_link_t *l)
{
    if (l->state != HP_AMQP_STATE_READY)
        return l->state;
    for (uint32_t j = 0; j < l->aw->nchans; j++)
        if (l->chans[j].ready)
            return HP_AMQP_STATE_READY;
    return HP_AMQP_STATE_CONNECTING;
}

/* app_amqp_metrics.c: the shard's writers, all on the worker's own
 * thread. */

/* Copies this worker's connection counters, its links' states and its
 * breaker into the shard. */
void app_amqp_shard_refresh(amqp_worker_t *aw);

/* Copies the breaker's state into the shard. */
void app_amqp_shard_breaker(amqp_worker_t *aw);

/* Adds a closing connection's counters (and its publish-to-deliver
 * samples) to the worker's base. */
void app_amqp_base_add(amqp_worker_t *aw, hp_amqp_conn_t *c);

/* tick_timer's callback: refreshes the shard every TICK_MS while the
 * worker has a connection. */
void app_amqp_tick_cb(hp_timer_t *t);

#endif
