/*
 * amqp.h - an AMQP 0-9-1 client (RabbitMQ) on a worker's loop: no thread
 * per connection, no blocking call.
 *
 * A connection (hp_amqp_conn_t) is an outbound connection of the worker
 * that opened it, and everything about it happens on that worker's
 * thread: every call below is made there (from a handler, a timer, an
 * hp_worker_call, or another AMQP callback), and every completion runs
 * there, never before the call that asked for it returns.
 *
 *     hp_amqp_config_t cfg = HP_AMQP_CONFIG_DEFAULT;     (host, port, vhost, user ...)
 *     hp_amqp_connect(worker, &cfg, on_event, arg, &conn);
 *     -> on_event(conn, HP_AMQP_EV_READY ...):
 *        hp_amqp_channel_open(conn, on_open, arg, &ch);
 *        hp_amqp_queue_declare(ch, "jobs", HP_AMQP_DURABLE, no_args, on_declared, arg);
 *        hp_amqp_publish(ch, &msg, on_confirm, arg, &seq);
 *        hp_amqp_consume(ch, "jobs", NULL, 0, no_args, on_delivery, arg, on_consuming, arg);
 *
 * Calls on a channel may be made at once, without waiting for the one
 * before to complete: they go to the broker in order and complete in
 * order. A call the broker refuses completes with err -EPROTO and the
 * reply code and text of the channel.close (or connection.close) it sent;
 * the channel (or the connection) is then closed, and what was pending on
 * it completes with the same error. Errors without a broker reply are
 * -errno: -ECONNRESET, -ETIMEDOUT (connect, handshake, heartbeats), -ENXIO
 * (no such host), -ECANCELED (closed by this side before completing).
 *
 * Ownership: strings and tables passed in are copied before the call
 * returns (into the connection's output), so the caller's buffers are free
 * again. What a callback is handed (a delivery's body, a reply text, a
 * queue name) is borrowed for the callback's duration only; copy what you
 * keep. Connections and channels belong to the library: they stay valid
 * until their CLOSED event (connection) or close completion (channel) has
 * run, and are freed after it.
 */
#ifndef HOTPATH_AMQP_H
#define HOTPATH_AMQP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hotpath/amqp_table.h"
#include "hotpath/common.h"
#include "hotpath/worker.h"

typedef struct hp_amqp_conn hp_amqp_conn_t;       /* opaque */
typedef struct hp_amqp_channel hp_amqp_channel_t; /* opaque */

/* Reply codes (spec: constants) a completion may carry. */
enum {
    HP_AMQP_REPLY_SUCCESS = 200,
    HP_AMQP_CONTENT_TOO_LARGE = 311,
    HP_AMQP_NO_ROUTE = 312,
    HP_AMQP_NO_CONSUMERS = 313,
    HP_AMQP_CONNECTION_FORCED = 320,
    HP_AMQP_INVALID_PATH = 402,
    HP_AMQP_ACCESS_REFUSED = 403,
    HP_AMQP_NOT_FOUND = 404,
    HP_AMQP_RESOURCE_LOCKED = 405,
    HP_AMQP_PRECONDITION_FAILED = 406,
    HP_AMQP_FRAME_ERROR = 501,
    HP_AMQP_SYNTAX_ERROR = 502,
    HP_AMQP_COMMAND_INVALID = 503,
    HP_AMQP_CHANNEL_ERROR = 504,
    HP_AMQP_UNEXPECTED_FRAME = 505,
    HP_AMQP_RESOURCE_ERROR = 506,
    HP_AMQP_NOT_ALLOWED = 530,
    HP_AMQP_NOT_IMPLEMENTED = 540,
    HP_AMQP_INTERNAL_ERROR = 541,
};

typedef struct hp_amqp_config {
    const char *host;            /* a name or an address: "127.0.0.1" */
    uint16_t port;               /* 5672 */
    /* Several brokers (the nodes of a cluster): "host1:5672,host2:5673,
     * [::1]:5674", at most HP_AMQP_MAX_ADDRESSES; a host without a port
     * takes `port`. NULL: host and port alone. Connecting tries them in
     * order until one completes the handshake (each within
     * connect_timeout_ms; one that refuses, is unreachable or times out
     * moves on to the next at once); a recovery starts with the address
     * after the one lost, cycling (see "Recovery" below). */
    const char *addresses;
    const char *vhost;           /* "/" */
    const char *user;            /* PLAIN authentication: "guest" */
    const char *password;        /* "guest" */
    uint16_t channel_max;        /* channels at most; 0: as many as the broker allows */
    uint32_t frame_max;          /* largest frame asked for (at least 4096); 0: the
                                    broker's. Also capped by the worker's buffers. */
    uint16_t heartbeat_s;        /* asked-for heartbeat interval; 0: none */
    /* A connection the broker blocks (connection.blocked: a memory or
     * disk alarm) longer than this is closed with -ETIMEDOUT, "blocked by
     * the broker for longer than N ms", and recovered when cfg.recover is
     * set (on the next address). 0: blocked for as long as the broker
     * says, as other clients wait. While blocked, this timeout, not the
     * worker's write_timeout_ms, governs output the broker does not read. */
    uint64_t blocked_timeout_ms;
    uint64_t connect_timeout_ms; /* name lookup, TCP connect and handshake together */
    const char *name;            /* shown by the broker (connection_name, at most 255
                                    bytes); NULL: none */
    /* Automatic recovery (see "Recovery" below): on a lost connection,
     * reconnect after a delay growing from recover_min_ms to
     * recover_max_ms (doubling, with full jitter), at most recover_tries
     * times in a row (0: for ever). false: a lost connection is CLOSED. */
    bool recover;
    uint64_t recover_min_ms, recover_max_ms;
    uint32_t recover_tries;
    /* What becomes of publishes unconfirmed when the connection was lost:
     * HP_AMQP_REPUBLISH sends them again once recovered (the client keeps
     * a copy of each until it is confirmed: window x message size of
     * memory per channel), HP_AMQP_FAIL_UNCONFIRMED completes each with
     * -ECONNRESET. Either way each publish's callback runs exactly once. */
    uint8_t unconfirmed;
    /* Publishing that waits (see "Back-pressure" below): a publish that
     * cannot go at once (confirm window full, output full, the broker
     * blocked, a recovery under way) waits in its channel's queue of at
     * most this many bytes (each message counts its frames, i.e. body,
     * properties, names and frame headers, plus 40 bytes) and goes, in
     * order, as soon as room comes; past the bound it answers -EAGAIN.
     * 0: no queue, -EAGAIN at once (the default). */
    uint64_t publish_queue_bytes;
    /* Read coalescing, for a connection that receives a steady stream
     * (deliveries, confirms): once bytes arrive more often than every N
     * ms, the worker is woken only when 64 KiB wait or N ms have passed
     * since the last read (hp_conn_set_read_lowat), so one wake-up
     * carries many messages, which cuts the client's CPU per message 2-3
     * times under load (docs/amqp.md). It adds at most N ms (plus the
     * timer's 1 ms grain) to what arrives while busy; a whole period
     * without bytes returns to waking on each one. With a prefetch of P
     * messages, throughput is at most P per N ms. 0: off (the default). */
    uint32_t read_coalesce_ms;
} hp_amqp_config_t;

enum { HP_AMQP_FAIL_UNCONFIRMED = 0, HP_AMQP_REPUBLISH = 1 };

/* The most addresses cfg.addresses may list. */
#define HP_AMQP_MAX_ADDRESSES 64

#define HP_AMQP_CONFIG_DEFAULT                                                 \
    ((hp_amqp_config_t){.host = "127.0.0.1",                                   \
                        .port = 5672,                                          \
                        .addresses = NULL,                                     \
                        .vhost = "/",                                          \
                        .user = "guest",                                       \
                        .password = "guest",                                   \
                        .channel_max = 0,                                      \
                        .frame_max = 0,                                        \
                        .heartbeat_s = 60,                                     \
                        .blocked_timeout_ms = 0,                               \
                        .connect_timeout_ms = 10000,                           \
                        .name = NULL,                                          \
                        .recover = true,                                       \
                        .recover_min_ms = 100,                                 \
                        .recover_max_ms = 10000,                               \
                        .recover_tries = 0,                                    \
                        .unconfirmed = HP_AMQP_FAIL_UNCONFIRMED,               \
                        .publish_queue_bytes = 0,                              \
                        .read_coalesce_ms = 0})

/* How a call ended. The byte strings are borrowed for the callback. */
typedef struct hp_amqp_result {
    int err;                     /* 0, or -EPROTO (the broker refused: reply_*),
                                    or -errno */
    uint16_t reply_code;         /* HP_AMQP_* when the broker refused; else 0 */
    uint16_t class_id, method_id; /* the method the broker refused, if it said */
    hp_amqp_bytes_t reply_text;
    /* Filled by the calls that have them: */
    hp_amqp_bytes_t queue;       /* queue_declare: the queue's name (server-named too) */
    uint32_t message_count;      /* queue_declare, queue_purge, queue_delete */
    uint32_t consumer_count;     /* queue_declare */
    hp_amqp_bytes_t consumer_tag; /* consume: the tag (the broker's when NULL was given) */
} hp_amqp_result_t;

/* A call on `ch` completed (ch is NULL for a failed channel_open). */
typedef void (*hp_amqp_done_cb)(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg);

/* Connection events. */
enum {
    HP_AMQP_EV_READY = 1,        /* handshake done: open channels */
    HP_AMQP_EV_BLOCKED,          /* the broker stopped reading (connection.blocked;
                                    reply_text: its reason) */
    HP_AMQP_EV_UNBLOCKED,
    HP_AMQP_EV_CLOSED,           /* closed (r->err says why; 0 after hp_amqp_close);
                                    the last event: the connection is freed after it */
    HP_AMQP_EV_RECOVERING,       /* the connection was lost (r says why) and is being
                                    recovered: calls answer -EAGAIN until RECOVERED */
    HP_AMQP_EV_RECOVERED,        /* reconnected, channels reopened, topology declared
                                    again, consumers back: calls go on */
};
typedef void (*hp_amqp_conn_cb)(hp_amqp_conn_t *c, int event, const hp_amqp_result_t *r,
                                void *arg);

/* Fills cfg's host, port, addresses, vhost, user and password from an
 * AMQP URI (RabbitMQ's form: amqp://user:password@host:port/vhost, each
 * part optional and percent-encoded; "amqp://" alone is the defaults; an
 * IPv6 host in brackets). Several hosts, separated by commas, are a
 * cluster (the form other clients take):
 * amqp://user:pass@host1:5672,host2:5673/vhost sets cfg->addresses to
 * "host1:5672,host2:5673" (each host decoded, each with its port, the
 * URI's or cfg's port when it has none) and host and port to the first;
 * a single host sets addresses to NULL. The decoded strings are written
 * to buf[0, len) (HP_AMQP_URL_BUFSIZE(strlen(url)) bytes are always
 * enough), which must outlive cfg's use (hp_amqp_connect copies them);
 * cfg is left alone on failure. Other fields are
 * left alone. Returns 0, -EINVAL with a one-line reason in err (when not
 * NULL) for a malformed URI, an empty host, a bad port, more than
 * HP_AMQP_MAX_ADDRESSES hosts or another scheme (amqps is not supported
 * yet), -ENOSPC when buf is too small. */
#define HP_AMQP_URL_BUFSIZE(url_len) (2 * (size_t)(url_len) + 16 + 8 * HP_AMQP_MAX_ADDRESSES)
HP_EXPORT int hp_amqp_url_parse(const char *url, hp_amqp_config_t *cfg, char *buf, size_t len,
                                const char **err);

/* Opens a connection from worker `w` (its thread, or before it starts):
 * name lookup, TCP, the AMQP handshake (PLAIN, vhost, channel_max,
 * frame_max and heartbeat negotiated: the smaller of the two sides', 0
 * meaning "no limit" as the spec says). cb(READY) follows, or cb(CLOSED)
 * with the reason. `cfg` and its strings are copied. Returns 0 with *out
 * set, or -errno (-EINVAL for a bad configuration) and nothing happens. */
HP_EXPORT int hp_amqp_connect(hp_worker_t *w, const hp_amqp_config_t *cfg, hp_amqp_conn_cb cb,
                              void *arg, hp_amqp_conn_t **out);

/* Closes the connection gracefully (connection.close, then the broker's
 * close-ok): what is pending fails with -ECANCELED, then cb(CLOSED) runs
 * with err 0 (at the worker's next wake-up when the connection was not
 * ready; at once when its worker is stopping, e.g. from a protocol's
 * worker_fini). Called while the connection is being lost (from a
 * callback failing what was pending, after the broker closed it), no
 * recovery follows: CLOSED comes next, with err 0. A second call, or one
 * after CLOSED, does nothing. */
HP_EXPORT void hp_amqp_close(hp_amqp_conn_t *c);

/* Back-pressure. With cfg.publish_queue_bytes, a publish (or a batch)
 * that cannot go at once is framed, numbered (*seq) and kept in a FIFO
 * per channel, bounded by that many bytes, and sent in order as room
 * comes: confirms, drained output, UNBLOCKED, RECOVERED. While the queue
 * is not empty, publishes go behind it. Its confirm callback runs once as
 * always: a queued publish that will never be sent (the channel closed;
 * the connection lost under HP_AMQP_FAIL_UNCONFIRMED) fails with the same
 * error as the window's unconfirmed ones. See docs/amqp.md. */

/* Recovery. A connection that was READY once and is lost (the socket
 * failed, heartbeats stopped, the broker closed it with 320 ...) is
 * recovered when cfg.recover is set (the default): RECOVERING is reported
 * with the reason, calls pending on its channels fail with -ECONNRESET,
 * and new calls answer -EAGAIN. After a delay (recover_min_ms doubling up
 * to recover_max_ms, with full jitter) it connects again, and on the new
 * connection, in this order: opens every channel again under its number;
 * declares again, on the lowest channel, the exchanges and queues declared
 * through the client (in the order they were declared; a server-named
 * queue gets a new name, which its bindings and consumers then use);
 * then the bindings, and on each channel its qos, confirm mode and
 * consumers (same tags). RECOVERED follows once all of that is answered:
 * a channel is usable again only with its consumers back, and
 * hp_amqp_on_writable's callback runs. Unconfirmed publishes are failed
 * with -ECONNRESET at the loss, or with HP_AMQP_REPUBLISH published again
 * after confirm mode is back, under the sequence numbers the caller was
 * given. Deliveries of the lost connection cannot be acknowledged any
 * more (the broker has put them back): hp_amqp_ack and the others drop
 * their tags, and later deliveries get tags above them. The recovery has
 * connect_timeout_ms as its deadline (then the next attempt); a step the
 * broker refuses ends it: CLOSED with that reply, never swallowed. Not
 * recovered: a connection never READY, a refused login (403) or vhost
 * (530), and hp_amqp_close (which stops a recovery under way).
 *
 * With several addresses (cfg.addresses), each attempt is a round: it
 * starts with the address after the one last dialed (after a loss, the
 * one after the node lost, which is probably down) and, like the first
 * connect, tries the next at once whenever one fails before its
 * handshake ends, until one answers or each was tried once; the backoff
 * runs between rounds, and recover_tries counts rounds. A refused login
 * or vhost ends a round at once (a cluster shares its users and vhosts).
 * CLOSED after a failed round carries the last address's error, its
 * reply_text naming that address (hp_amqp_address says it too). */

/* Counters of one connection, since it was opened (recoveries included). */
typedef struct hp_amqp_stats {
    uint64_t published;          /* messages handed to the broker */
    uint64_t confirmed, nacked;  /* publisher confirms received */
    uint64_t unconfirmed_failed; /* publishes failed unconfirmed (-errno) */
    uint64_t republished;        /* sent again after a recovery */
    uint64_t returned;           /* mandatory messages the broker returned */
    uint64_t delivered;          /* deliveries to consumers and gets */
    uint64_t redelivered;        /* of which the broker had delivered before */
    uint64_t acked, nacked_out, rejected; /* acknowledgements sent */
    uint64_t recoveries;         /* connection recoveries that succeeded */
    uint64_t bytes_in, bytes_out;
    uint8_t state;               /* HP_AMQP_STATE_* */
    /* Publishes waiting in the channels' queues now (cfg.publish_queue_bytes),
     * and the bytes they count against the bound. */
    uint64_t queued, queued_bytes;
} hp_amqp_stats_t;

enum {
    HP_AMQP_STATE_CONNECTING = 0, /* dialing or in the handshake */
    HP_AMQP_STATE_READY,
    HP_AMQP_STATE_BLOCKED,        /* ready, but the broker blocked publishing */
    HP_AMQP_STATE_RECOVERING,
    HP_AMQP_STATE_CLOSED,
};

/* A copy of the connection's counters (its worker's thread). */
HP_EXPORT void hp_amqp_stats(const hp_amqp_conn_t *c, hp_amqp_stats_t *out);

/* What was negotiated (valid from READY). */
HP_EXPORT uint32_t hp_amqp_frame_max(const hp_amqp_conn_t *c);
HP_EXPORT uint16_t hp_amqp_channel_max(const hp_amqp_conn_t *c);
HP_EXPORT uint16_t hp_amqp_heartbeat(const hp_amqp_conn_t *c);
/* Whether the broker has blocked the connection (connection.blocked). */
HP_EXPORT bool hp_amqp_blocked(const hp_amqp_conn_t *c);
/* The address the connection is on now, or is dialing ("host:port",
 * "[v6]:port"; after a failed attempt, the last one tried), for logs and
 * metrics; *index (when not NULL) is its place in cfg.addresses (0 for a
 * single host). Borrowed: valid until CLOSED has run. */
HP_EXPORT const char *hp_amqp_address(const hp_amqp_conn_t *c, uint32_t *index);

/* ---- channels ---- */

/* Opens a channel: *out is usable at once (calls on it are queued behind
 * the open); cb runs once it is open (r->err 0) or failed. Returns 0,
 * -ENOTCONN before READY or after CLOSED, -EMFILE when channel_max are
 * open. */
HP_EXPORT int hp_amqp_channel_open(hp_amqp_conn_t *c, hp_amqp_done_cb cb, void *arg,
                                   hp_amqp_channel_t **out);

/* Closes a channel (channel.close, close-ok): pending calls fail with
 * -ECANCELED, unconfirmed publishes with -ECANCELED; cb runs last, then
 * the channel is freed. */
HP_EXPORT int hp_amqp_channel_close(hp_amqp_channel_t *ch, hp_amqp_done_cb cb, void *arg);

/* Called when the broker closes the channel on its own (an error on a
 * call that does not wait for a reply, such as a publish to an exchange
 * that does not exist: r->reply_code 404), after the pending calls have
 * failed; the channel is freed after it. */
HP_EXPORT void hp_amqp_channel_on_close(hp_amqp_channel_t *ch, hp_amqp_done_cb cb, void *arg);

/* The connection a channel belongs to, and its number. */
HP_EXPORT hp_amqp_conn_t *hp_amqp_channel_conn(const hp_amqp_channel_t *ch);
HP_EXPORT uint16_t hp_amqp_channel_id(const hp_amqp_channel_t *ch);

/* ---- topology ---- */

/* Flags of the calls below (each takes the ones the spec gives it). */
enum {
    HP_AMQP_PASSIVE = 1u << 0,     /* declare: only check that it exists */
    HP_AMQP_DURABLE = 1u << 1,     /* declare: survives a broker restart */
    HP_AMQP_AUTO_DELETE = 1u << 2, /* declare: deleted once unused */
    HP_AMQP_INTERNAL = 1u << 3,    /* exchange_declare: no direct publishing */
    HP_AMQP_EXCLUSIVE = 1u << 4,   /* queue_declare, consume: this connection only */
    HP_AMQP_IF_UNUSED = 1u << 5,   /* delete: only without consumers / bindings */
    HP_AMQP_IF_EMPTY = 1u << 6,    /* queue_delete: only when empty */
    HP_AMQP_NO_ACK = 1u << 7,      /* consume, get: the broker forgets on sending */
    HP_AMQP_NO_LOCAL = 1u << 8,    /* consume */
};

/* An empty argument table. */
#define HP_AMQP_NO_ARGS ((hp_amqp_bytes_t){NULL, 0})

/* exchange.declare: `type` is "direct", "fanout", "topic", "headers" or a
 * plugin's. `args` is an encoded table body (amqp_table.h). */
HP_EXPORT int hp_amqp_exchange_declare(hp_amqp_channel_t *ch, const char *name, const char *type,
                                       unsigned flags, hp_amqp_bytes_t args, hp_amqp_done_cb cb,
                                       void *arg);
HP_EXPORT int hp_amqp_exchange_delete(hp_amqp_channel_t *ch, const char *name, unsigned flags,
                                      hp_amqp_done_cb cb, void *arg);

/* queue.declare: an empty name asks the broker to name it (r->queue). */
HP_EXPORT int hp_amqp_queue_declare(hp_amqp_channel_t *ch, const char *name, unsigned flags,
                                    hp_amqp_bytes_t args, hp_amqp_done_cb cb, void *arg);
HP_EXPORT int hp_amqp_queue_bind(hp_amqp_channel_t *ch, const char *queue, const char *exchange,
                                 const char *routing_key, hp_amqp_bytes_t args,
                                 hp_amqp_done_cb cb, void *arg);
HP_EXPORT int hp_amqp_queue_unbind(hp_amqp_channel_t *ch, const char *queue,
                                   const char *exchange, const char *routing_key,
                                   hp_amqp_bytes_t args, hp_amqp_done_cb cb, void *arg);
HP_EXPORT int hp_amqp_queue_purge(hp_amqp_channel_t *ch, const char *queue, hp_amqp_done_cb cb,
                                  void *arg);
HP_EXPORT int hp_amqp_queue_delete(hp_amqp_channel_t *ch, const char *queue, unsigned flags,
                                   hp_amqp_done_cb cb, void *arg);

/* basic.qos: at most `prefetch` unacknowledged deliveries on the channel
 * (per consumer unless `global`, RabbitMQ's reading); 0: no limit. */
HP_EXPORT int hp_amqp_qos(hp_amqp_channel_t *ch, uint16_t prefetch, bool global,
                          hp_amqp_done_cb cb, void *arg);

/* ---- publishing ---- */

/* Content properties (the basic class's): a field is sent when its bit is
 * in `flags`. */
enum {
    HP_AMQP_PROP_CONTENT_TYPE = 1u << 15,
    HP_AMQP_PROP_CONTENT_ENCODING = 1u << 14,
    HP_AMQP_PROP_HEADERS = 1u << 13,
    HP_AMQP_PROP_DELIVERY_MODE = 1u << 12,
    HP_AMQP_PROP_PRIORITY = 1u << 11,
    HP_AMQP_PROP_CORRELATION_ID = 1u << 10,
    HP_AMQP_PROP_REPLY_TO = 1u << 9,
    HP_AMQP_PROP_EXPIRATION = 1u << 8,
    HP_AMQP_PROP_MESSAGE_ID = 1u << 7,
    HP_AMQP_PROP_TIMESTAMP = 1u << 6,
    HP_AMQP_PROP_TYPE = 1u << 5,
    HP_AMQP_PROP_USER_ID = 1u << 4,
    HP_AMQP_PROP_APP_ID = 1u << 3,
    HP_AMQP_PROP_RESERVED = 1u << 2, /* was cluster-id */
};

typedef struct hp_amqp_props {
    uint16_t flags;                    /* HP_AMQP_PROP_*: the fields present */
    hp_amqp_bytes_t content_type;      /* "application/json" */
    hp_amqp_bytes_t content_encoding;  /* "gzip" */
    hp_amqp_bytes_t headers;           /* an encoded table body */
    uint8_t delivery_mode;             /* 2: persistent, 1: transient */
    uint8_t priority;
    hp_amqp_bytes_t correlation_id;
    hp_amqp_bytes_t reply_to;
    hp_amqp_bytes_t expiration;        /* milliseconds, as text */
    hp_amqp_bytes_t message_id;
    uint64_t timestamp;                /* seconds since the epoch */
    hp_amqp_bytes_t type;
    hp_amqp_bytes_t user_id;
    hp_amqp_bytes_t app_id;
    hp_amqp_bytes_t reserved;
} hp_amqp_props_t;

/* One message to publish. Everything is copied by the call. */
typedef struct hp_amqp_msg {
    const char *exchange;              /* "" or NULL: the default exchange */
    const char *routing_key;
    const hp_amqp_props_t *props;      /* NULL: none */
    const void *body;
    size_t len;
    bool mandatory;                    /* unroutable: returned (hp_amqp_channel_on_return) */
} hp_amqp_msg_t;

/* Confirm statuses. */
enum { HP_AMQP_ACKED = 1, HP_AMQP_NACKED = 2 };

/* A published message's fate in confirm mode: HP_AMQP_ACKED (the broker
 * took responsibility for it), HP_AMQP_NACKED (it did not), or -errno when
 * the channel closed first (-ECANCELED, -ECONNRESET ...): then nobody
 * knows, and the caller decides whether to publish again. Exactly once per
 * message published with a callback. */
typedef void (*hp_amqp_confirm_cb)(hp_amqp_channel_t *ch, uint64_t seq, int status, void *arg);

/* Puts the channel in confirm mode (confirm.select) with at most `window`
 * messages unconfirmed (publish answers -EAGAIN beyond; 0: 1024). */
HP_EXPORT int hp_amqp_confirm_select(hp_amqp_channel_t *ch, uint32_t window, hp_amqp_done_cb cb,
                                     void *arg);

/* Publishes a message: it is framed into the connection's output at once
 * and leaves with everything else written in this turn of the loop, in
 * one writev. In confirm mode, *seq (if not NULL) is its sequence number
 * and cb(ch, seq, status, arg) follows once; outside it cb is not called.
 * Returns 0, or: -EAGAIN when the connection's output is full (the
 * worker's output chunk, wbuf_size, and the socket's send buffer hold
 * what the broker has not read yet: that is the bound, and memory never
 * grows past it), when the confirm window is full, or while the broker
 * has blocked the connection (nothing was sent: try again from
 * hp_amqp_on_writable; with cfg.publish_queue_bytes the message waits in
 * the channel's queue instead, numbered and copied, and -EAGAIN means the
 * queue is full), -ENOTCONN when the channel is not open (or is
 * closing), -EMSGSIZE for a body beyond the broker's limit, -EINVAL for a
 * name longer than 255 bytes. */
HP_EXPORT int hp_amqp_publish(hp_amqp_channel_t *ch, const hp_amqp_msg_t *m,
                              hp_amqp_confirm_cb cb, void *arg, uint64_t *seq);

/* How a batch fared: first_seq .. first_seq + n - 1 are its sequence
 * numbers; acked + nacked + failed == n; err is the first failure's
 * -errno (the channel or connection went before the broker answered). */
typedef struct hp_amqp_batch_result {
    uint64_t first_seq;
    uint32_t n, acked, nacked, failed;
    int err;
} hp_amqp_batch_result_t;

typedef void (*hp_amqp_batch_cb)(hp_amqp_channel_t *ch, const hp_amqp_batch_result_t *r,
                                 void *arg);

/* Publishes msgs[0, n) as one batch: all framed at once and written with
 * one writev, or none (the same errors as hp_amqp_publish, for the whole
 * batch; -EMSGSIZE when n exceeds the confirm window). In confirm mode,
 * cb(ch, r, arg) runs once, when the broker has answered for every one of
 * them (or the channel went), and *first (if not NULL) is the first's
 * sequence number; outside confirm mode cb is not called. */
HP_EXPORT int hp_amqp_publish_batch(hp_amqp_channel_t *ch, const hp_amqp_msg_t *msgs,
                                    uint32_t n, hp_amqp_batch_cb cb, void *arg,
                                    uint64_t *first);

/* Calls cb(c, arg) once, after a publish answered -EAGAIN, when the
 * connection's output has drained, a confirm window has room again or the
 * broker unblocked the connection (after the channels' publish queues
 * have taken what room there is). One callback per connection; NULL
 * removes it. */
HP_EXPORT void hp_amqp_on_writable(hp_amqp_conn_t *c, void (*cb)(hp_amqp_conn_t *c, void *arg),
                                   void *arg);

/* ---- consuming ---- */

/* A message the broker delivered (consume, get) or returned (an
 * unroutable mandatory publish). Borrowed for the callback: the body
 * points into the connection's read buffer when it came in one frame. */
typedef struct hp_amqp_delivery {
    hp_amqp_bytes_t consumer_tag;      /* consume */
    uint64_t delivery_tag;             /* for ack, nack, reject */
    bool redelivered;
    uint32_t message_count;            /* get: messages left in the queue */
    hp_amqp_bytes_t exchange, routing_key;
    uint16_t reply_code;               /* a returned message: why (312 no-route) */
    hp_amqp_bytes_t reply_text;
    hp_amqp_props_t props;
    hp_amqp_bytes_t body;
} hp_amqp_delivery_t;

typedef void (*hp_amqp_delivery_cb)(hp_amqp_channel_t *ch, const hp_amqp_delivery_t *d,
                                    void *arg);

/* basic.consume on `queue`: on_msg(ch, d, msg_arg) for each delivery;
 * cb once the broker answered (r->consumer_tag). `tag` NULL: the broker
 * names it. Flags: HP_AMQP_NO_ACK, HP_AMQP_EXCLUSIVE, HP_AMQP_NO_LOCAL. If
 * the broker cancels the consumer (its queue was deleted), on_msg is
 * called once more with d == NULL. */
HP_EXPORT int hp_amqp_consume(hp_amqp_channel_t *ch, const char *queue, const char *tag,
                              unsigned flags, hp_amqp_bytes_t args, hp_amqp_delivery_cb on_msg,
                              void *msg_arg, hp_amqp_done_cb cb, void *arg);

/* basic.cancel of the consumer `tag`: no delivery follows cb. */
HP_EXPORT int hp_amqp_cancel(hp_amqp_channel_t *ch, const char *tag, hp_amqp_done_cb cb,
                             void *arg);

/* basic.get: on_msg(ch, d, arg) with the message, or with d == NULL when
 * the queue is empty; r reaches cb only on failure (cb may be NULL). */
HP_EXPORT int hp_amqp_get(hp_amqp_channel_t *ch, const char *queue, unsigned flags,
                          hp_amqp_delivery_cb on_msg, void *msg_arg, hp_amqp_done_cb cb,
                          void *arg);

/* Acknowledgements of deliveries (no reply from the broker): ack, nack
 * (requeue or not) and reject; `multiple` covers every delivery up to
 * `tag` on the channel. Returns 0 (also for the tag of a delivery made
 * before a recovery, which is dropped: the broker has put it back),
 * -ENOTCONN, or -EAGAIN while the connection recovers or when its output
 * is full (nothing sent: acknowledge again later; `multiple` then covers
 * what was missed). */
HP_EXPORT int hp_amqp_ack(hp_amqp_channel_t *ch, uint64_t tag, bool multiple);
HP_EXPORT int hp_amqp_nack(hp_amqp_channel_t *ch, uint64_t tag, bool multiple, bool requeue);
HP_EXPORT int hp_amqp_reject(hp_amqp_channel_t *ch, uint64_t tag, bool requeue);

/* Messages published with `mandatory` that no queue took come back here
 * (d->reply_code, d->reply_text, d->exchange, d->routing_key, props and
 * body; no delivery tag). Without it they are dropped. */
HP_EXPORT void hp_amqp_channel_on_return(hp_amqp_channel_t *ch, hp_amqp_delivery_cb cb,
                                         void *arg);

/* ---- publish-to-deliver latency ---- */

/* The header a message's send time travels in: wall-clock milliseconds
 * since the epoch, an integer (RabbitMQ's rabbitmq_message_timestamp
 * plugin sets it, as a long, when the message reaches the broker;
 * hotpath's publishing route with amqp.stamp when it publishes). */
#define HP_AMQP_STAMP_HEADER "timestamp_in_ms"

/* The histogram's layout (hp_hist_init): nanoseconds, 1 ms (the stamp's
 * resolution) to 1 h, 2 significant digits: about 17 KiB. */
#define HP_AMQP_DELIVER_LAT_LOWEST 1000000ull
#define HP_AMQP_DELIVER_LAT_HIGHEST (3600ull * 1000000000ull)
#define HP_AMQP_DELIVER_LAT_DIGITS 2

struct hp_hist; /* hotpath/hist.h */

/* Publish-to-deliver latency: every delivery (consume or get) whose
 * headers hold HP_AMQP_STAMP_HEADER as a non-negative integer adds one
 * sample, the time from that stamp to the delivery by this host's wall
 * clock (so it includes any offset between the two hosts' clocks; a stamp
 * ahead of this clock counts as 0, one over an hour old as an hour). The
 * histogram is the connection's, kept across recoveries, made on the
 * first stamped delivery: NULL until then. Borrowed: valid until CLOSED;
 * read it on the worker's thread, or from another with hp_hist_merge
 * (hist.h's rules). */
HP_EXPORT const struct hp_hist *hp_amqp_deliver_latency(const hp_amqp_conn_t *c);

/* Empties that histogram (nothing without one): a caller that merges it
 * into a histogram of its own (the same layout) resets it after each
 * merge, on the worker's thread, so that no sample is counted twice. */
HP_EXPORT void hp_amqp_deliver_latency_reset(hp_amqp_conn_t *c);

#endif
