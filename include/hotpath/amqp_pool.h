/*
 * amqp_pool.h - connections and channels to one AMQP endpoint, pooled per
 * worker: publishers and consumers on connections of their own, channels
 * lent and taken back.
 *
 * A pool belongs to the worker that made it, like the connections it
 * opens (amqp.h): every call below is made on that worker's thread, and
 * every callback runs there. Nothing in it is shared with another worker:
 * a program that publishes or consumes from every worker makes one pool
 * per worker (in a protocol's worker_init, or by hp_worker_call), and each
 * worker then has its own publisher and consumer connections, so that
 * both scale with cores. RabbitMQ spreads a queue's deliveries over its
 * consumers, one per worker here (see docs/amqp.md, "Pools").
 *
 *     hp_amqp_pool_config_t cfg = HP_AMQP_POOL_CONFIG_DEFAULT;
 *     cfg.amqp.name = "orders";         (connections: "orders publish w0 #1" ...)
 *     hp_amqp_pool_new(worker, &cfg, &pool);
 *     n = hp_amqp_pool_channel_acquire(pool, HP_AMQP_POOL_PUBLISH, on_channel, arg, &ch);
 *         1: ch is ready now; 0: on_channel(pool, ch, 0, arg) follows
 *     hp_amqp_publish(ch, &msg, on_confirm, arg, &seq);
 *     hp_amqp_pool_channel_release(pool, ch);
 *     hp_amqp_pool_consume(pool, "jobs", 50, 0, HP_AMQP_NO_ARGS, on_msg, arg, on_consuming, arg);
 *
 * Sides. The publisher side (HP_AMQP_POOL_PUBLISH) and the consumer side
 * (HP_AMQP_POOL_CONSUME) have connections of their own unless
 * cfg.shared is set: a consumer that reads slowly, or a broker that
 * blocks publishing (connection.blocked), then never holds up the other
 * side. Each side opens cfg.<side>.min_conns connections at once, more on
 * demand up to max_conns, and puts at most cfg.<side>.channels channels
 * on each (fewer when the broker's channel_max is lower).
 *
 * Health. A connection takes new work (a channel lent, a consumer placed)
 * only while it is READY and not blocked by the broker: one CONNECTING,
 * RECOVERING (amqp.h, "Recovery") or BLOCKED is skipped, and its idle
 * channels wait with it. Dead peers are found by the connections'
 * heartbeats (cfg.amqp.heartbeat_s), not by probes of the pool's own. A
 * connection closed for good (recovery off, or given up, or refused) is
 * forgotten and, when its side falls below min_conns, replaced after
 * cfg.retry_ms; one above min_conns with nothing lent and no consumer
 * for cfg.idle_timeout_ms is closed.
 *
 * Channels. A lent channel is the borrower's until it gives it back
 * (hp_amqp_pool_channel_release): the pool set it up (confirm mode with
 * cfg.confirm_window on the publisher side) and keeps its
 * hp_amqp_channel_on_close for itself, so the borrower does not set that
 * nor close the channel. A channel the broker closed (an error on it) or
 * whose connection closed for good is not lent again; its borrower still
 * gives it back, which only forgets it.
 *
 * Ownership: the configuration and its strings are copied. The pool owns
 * its connections; hp_amqp_pool_close closes them and frees the pool once
 * the last has closed.
 */
#ifndef HOTPATH_AMQP_POOL_H
#define HOTPATH_AMQP_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "hotpath/amqp.h"
#include "hotpath/common.h"
#include "hotpath/worker.h"

typedef struct hp_amqp_pool hp_amqp_pool_t; /* opaque */

/* The two sides of a pool. */
enum { HP_AMQP_POOL_PUBLISH = 0, HP_AMQP_POOL_CONSUME = 1 };

/* The connections of one side. */
typedef struct hp_amqp_pool_side_config {
    uint16_t min_conns;          /* opened at once, and kept (0: none until needed) */
    uint16_t max_conns;          /* at most (at least 1, and at least min_conns) */
    uint16_t channels;           /* channels per connection at most, lent and
                                    consuming together (at least 1) */
} hp_amqp_pool_side_config_t;

typedef struct hp_amqp_pool_config {
    hp_amqp_config_t amqp;       /* the endpoint and every connection's settings;
                                    amqp.name prefixes the connections' names
                                    ("<name> <side> w<worker> #<n>"; NULL: "hotpath") */
    hp_amqp_pool_side_config_t publish, consume;
    bool shared;                 /* consumers on the publisher connections (the
                                    consume settings are then unused) */
    uint32_t confirm_window;     /* publisher channels in confirm mode with this
                                    window (hp_amqp_confirm_select); 0: not */
    uint32_t max_waiters;        /* acquirers waiting at once, per side (at least 1):
                                    the next one is refused with -EAGAIN */
    uint64_t wait_timeout_ms;    /* a waiting acquirer gets -ETIMEDOUT after this */
    uint64_t idle_timeout_ms;    /* close connections above min_conns idle this
                                    long; 0: never */
    uint64_t retry_ms;           /* after a connection closed for good, its side
                                    opens no other before this has passed */
} hp_amqp_pool_config_t;

#define HP_AMQP_POOL_CONFIG_DEFAULT                                            \
    ((hp_amqp_pool_config_t){.amqp = HP_AMQP_CONFIG_DEFAULT,                  \
                             .publish = {.min_conns = 1, .max_conns = 2, .channels = 32}, \
                             .consume = {.min_conns = 1, .max_conns = 2, .channels = 32}, \
                             .shared = false,                                  \
                             .confirm_window = 1024,                           \
                             .max_waiters = 256,                               \
                             .wait_timeout_ms = 5000,                          \
                             .idle_timeout_ms = 60000,                         \
                             .retry_ms = 1000})

/* Makes a pool on worker `w` (its thread, or before it starts) and opens
 * each side's min_conns connections. `cfg` and its strings are copied.
 * Returns 0 with *out set, -EINVAL for a bad configuration (sizes above,
 * or what hp_amqp_connect refuses), -ENOMEM; on failure nothing is left
 * open or allocated. No callback runs before it returns. */
HP_EXPORT int hp_amqp_pool_new(hp_worker_t *w, const hp_amqp_pool_config_t *cfg,
                               hp_amqp_pool_t **out);

/* Closes the pool: waiting acquirers get -ECANCELED (before this
 * returns), every connection is closed (hp_amqp_close: what is pending on
 * it fails with -ECANCELED), then done(arg) runs, if not NULL, and the
 * pool is freed: once the last connection has closed, or at once when
 * none was open. Give lent channels back before; nothing of the pool may
 * be used after this call. A second call does nothing. */
HP_EXPORT void hp_amqp_pool_close(hp_amqp_pool_t *p, void (*done)(void *arg), void *arg);

/* What an acquirer waited for: a channel (err 0), or NULL and -ETIMEDOUT
 * (cfg.wait_timeout_ms passed), -ECANCELED (the pool is closing), or the
 * broker's refusal of the channel's set-up (-EPROTO). */
typedef void (*hp_amqp_pool_acquire_cb)(hp_amqp_pool_t *p, hp_amqp_channel_t *ch, int err,
                                        void *arg);

/* Borrows an open channel of `side` (HP_AMQP_POOL_PUBLISH: in confirm
 * mode when cfg.confirm_window), on the least loaded healthy connection
 * that has one idle. Returns:
 *   1         *out is the channel, now (cb is not called);
 *   0         none is idle: the request waits, first come first served,
 *             for one given back, one opened on a connection with room, or
 *             one on a new connection (up to max_conns); cb runs exactly
 *             once, never before this returns;
 *   -EAGAIN   cfg.max_waiters wait already (nothing will run);
 *   -ESHUTDOWN the pool is closing; -EINVAL a bad side. */
HP_EXPORT int hp_amqp_pool_channel_acquire(hp_amqp_pool_t *p, int side,
                                           hp_amqp_pool_acquire_cb cb, void *arg,
                                           hp_amqp_channel_t **out);

/* Gives a borrowed channel back: the first waiter gets it, or it waits
 * idle for the next acquire. What the borrower left on it (unconfirmed
 * publishes, their callbacks) goes on. A channel closed meanwhile (by the
 * broker, or with its connection) is forgotten. Returns 0, or -ENOENT for
 * a channel the pool did not lend. O(channels lent). */
HP_EXPORT int hp_amqp_pool_channel_release(hp_amqp_pool_t *p, hp_amqp_channel_t *ch);

/* Consumes `queue` on the consumer side: a channel of its own on the
 * healthy consumer connection with the fewest consumers (a new connection
 * when all are full, up to max_conns), basic.qos `prefetch` on it (0: no
 * limit), then basic.consume with `flags` and `args` (copied), as
 * hp_amqp_consume does; on_msg(ch, d, msg_arg) for each delivery (ack on
 * that ch). cb(ch, r, arg) runs once, when the broker first answered the
 * consume (r->err 0, r->consumer_tag) or refused a step (-EPROTO; the
 * consumer is then dropped). A connection recovered keeps its consumers
 * (amqp.h); one closed for good has them consumed again, by the pool, on
 * another consumer connection (or the next one opened), and on_msg sees
 * channels change. When the broker cancels the consumer (its queue went),
 * on_msg gets d == NULL once and the consumer ends. Returns 0, -EINVAL
 * (an empty or too long queue name), -ESHUTDOWN, -ENOMEM. The consumer
 * lasts as long as the pool. */
HP_EXPORT int hp_amqp_pool_consume(hp_amqp_pool_t *p, const char *queue, uint16_t prefetch,
                                   unsigned flags, hp_amqp_bytes_t args,
                                   hp_amqp_delivery_cb on_msg, void *msg_arg,
                                   hp_amqp_done_cb cb, void *arg);

/* Calls cb(c, arg) when a publisher connection of the pool can take
 * publishes again after one answered -EAGAIN (hp_amqp_on_writable, which
 * the pool keeps for itself on its connections). NULL removes it. */
HP_EXPORT void hp_amqp_pool_on_writable(hp_amqp_pool_t *p,
                                        void (*cb)(hp_amqp_conn_t *c, void *arg), void *arg);

/* Calls cb(p, side, c, event, r, arg) for every event of the pool's
 * connections (HP_AMQP_EV_*, amqp.h) after the pool has acted on it, to
 * log them. `c` is valid for the call only. NULL removes it. */
typedef void (*hp_amqp_pool_event_cb)(hp_amqp_pool_t *p, int side, hp_amqp_conn_t *c,
                                      int event, const hp_amqp_result_t *r, void *arg);
HP_EXPORT void hp_amqp_pool_on_event(hp_amqp_pool_t *p, hp_amqp_pool_event_cb cb, void *arg);

/* One side's state and counters (with cfg.shared both sides answer for
 * the same connections). */
typedef struct hp_amqp_pool_stats {
    uint32_t connecting, ready, blocked, recovering; /* connections by state */
    uint32_t channels_idle, channels_lent, channels_opening;
    uint32_t consumers;          /* consuming, or being set up */
    uint32_t consumers_waiting;  /* on no connection: waiting for one */
    uint32_t waiters;            /* acquirers waiting */
    uint64_t acquired;           /* channels lent (at once or after waiting) */
    uint64_t waited;             /* acquires that had to wait */
    uint64_t timeouts, refused;  /* acquires ended with -ETIMEDOUT, -EAGAIN */
    uint64_t opened, closed;     /* connections opened, and closed for good */
} hp_amqp_pool_stats_t;

/* A copy of `side`'s state (its worker's thread). */
HP_EXPORT void hp_amqp_pool_stats(const hp_amqp_pool_t *p, int side, hp_amqp_pool_stats_t *out);

/* Checks the pool's bookkeeping (counts against lists); 0 or -EINVAL. For
 * tests, after every step. */
HP_EXPORT int hp_amqp_pool_validate(const hp_amqp_pool_t *p);

#endif
