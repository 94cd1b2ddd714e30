/*
 * client_int.h - inside the AMQP client: a connection, its channels and
 * what each is waiting for. Shared by client.c (the connection: handshake,
 * frames in, heartbeats, close), channel.c (channels: calls and their
 * replies), publish.c (publishing, confirms) and message.c (deliveries,
 * acknowledgements).
 *
 * recover.c (what was declared, and the way back after a lost
 * connection) and address.c (the broker addresses, amqp:// URIs) share
 * it too.
 *
 * Ownership: the hp_amqp_conn_t owns its channels; each channel owns its
 * queue of pending calls, its consumers and its confirm ring. The engine
 * connection (hp_conn_t) is the worker's; its udata is the hp_amqp_conn_t.
 * Freeing is deferred while the client is inside its own code (depth > 0):
 * a user callback may close the connection under the frame loop, which
 * then finds `dead` set and stops touching anything but the struct.
 */
#ifndef HOTPATH_AMQP_CLIENT_INT_H
#define HOTPATH_AMQP_CLIENT_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "amqp_spec.h"
#include "frame_int.h"
#include "hotpath/amqp.h"
#include "net/conn_int.h"
#include "wire_int.h"

/* The most channels a connection opens, whatever the broker allows
 * (RabbitMQ's default channel_max). */
#define HP_AMQP_MAX_CHANNELS 2047
/* Confirm window when confirm_select is given 0. */
#define HP_AMQP_CONFIRM_WINDOW 1024
/* Bodies assembled from several frames: the most accepted (RabbitMQ's
 * own max_message_size default). */
#define HP_AMQP_MAX_BODY (128u << 20)

/* Connection states, in order. */
enum {
    AMQP_DIALING = 0,  /* lookup and TCP connect */
    AMQP_START,        /* header sent: waiting for connection.start */
    AMQP_TUNE,         /* start-ok sent: waiting for connection.tune */
    AMQP_OPENING,      /* open sent: waiting for connection.open-ok */
    AMQP_READY,
    AMQP_CLOSING,      /* connection.close sent: waiting for close-ok */
    AMQP_CLOSED,
};

/* Channel states. CH_RECOVERING: the connection was lost; the channel
 * waits to be opened again on the next one. */
enum { CH_OPENING = 0, CH_OPEN, CH_CLOSING, CH_CLOSED, CH_RECOVERING };

/* What a pending call does with its reply. */
enum {
    OP_PLAIN = 0,     /* the reply only says "done" */
    OP_QOS,           /* basic.qos-ok: the channel keeps the setting */
    OP_CHANNEL_OPEN,
    OP_CHANNEL_CLOSE,
    OP_QUEUE_DECLARE,
    OP_QUEUE_COUNT,   /* purge-ok, delete-ok: message_count */
    OP_CONSUME,
    OP_CANCEL,
    OP_GET,
    OP_CONFIRM,
    OP_RECOVER,       /* a step of a recovery (recover.c) */
};

/* What was declared through the connection, to declare again after a
 * recovery (recover.c). */
enum { TOPO_EXCHANGE = 1, TOPO_QUEUE, TOPO_BINDING };

typedef struct amqp_topo amqp_topo_t;
struct amqp_topo {
    amqp_topo_t *next;
    uint8_t kind;                 /* TOPO_* */
    unsigned flags;               /* HP_AMQP_* of the declare */
    /* exchange: name, type; queue: name (the broker's, for a server-named
     * one), the name asked for ("" when server-named); binding: queue,
     * exchange, routing key. Owned, NUL-terminated. */
    char *s[3];
    hp_amqp_bytes_t args;         /* owned copy */
};

/* One broker address of the connection's list (cfg.addresses, or host
 * and port alone). */
typedef struct amqp_addr {
    const char *host;             /* NUL-terminated, no brackets */
    const char *text;             /* "host:port", "[v6]:port": for logs */
    uint16_t port;
} amqp_addr_t;

typedef struct amqp_consumer amqp_consumer_t;
typedef struct amqp_op amqp_op_t;

/* A call sent to the broker, waiting for its reply (replies come in the
 * order the calls went out, per channel). */
struct amqp_op {
    amqp_op_t *next;
    uint32_t reply;               /* method id that completes it */
    uint32_t reply2;              /* another that does (basic.get-empty); 0: none */
    uint8_t kind;                 /* OP_* */
    hp_amqp_done_cb cb;
    void *arg;
    hp_amqp_delivery_cb on_msg;   /* OP_CONSUME, OP_GET */
    void *msg_arg;
    uint32_t window;              /* OP_CONFIRM */
    amqp_topo_t *topo;            /* owned until the reply: recorded on success */
    amqp_topo_t *recover_topo;    /* OP_RECOVER: borrowed, the record it repeats */
    uint8_t forget;               /* TOPO_* a successful delete/unbind forgets */
    char *forget_s[3];            /* owned: what it names */
    uint16_t prefetch;            /* basic.qos: kept for recoveries */
    bool global;
    amqp_consumer_t *consumer;    /* OP_CONSUME: owned until consume-ok */
};

struct amqp_consumer {
    amqp_consumer_t *next;
    hp_amqp_delivery_cb on_msg;
    void *arg;
    unsigned flags;               /* HP_AMQP_NO_ACK ..., to consume again */
    hp_amqp_bytes_t args;         /* owned copy */
    uint8_t tag_len;
    char tag[255];
    char queue[256];              /* NUL-terminated */
};

/* One message in the confirm window. */
typedef struct amqp_confirm {
    hp_amqp_confirm_cb cb;        /* NULL: nobody waits for it */
    void *arg;
    uint64_t seq;                 /* the number the caller was given */
    uint8_t *frames;              /* owned: the message framed, kept to publish
                                     again after a recovery (HP_AMQP_REPUBLISH) */
    uint32_t len;
    uint8_t status;               /* 0 until the broker answered */
} amqp_confirm_t;

/* A message arriving in frames: the method that announced it, then its
 * header and its body, possibly in several frames. */
typedef struct amqp_incoming {
    uint32_t method;              /* basic.deliver, get-ok or return; 0: none */
    uint64_t body_size, body_got;
    /* Whole in the read buffer (the fast path): the frames start at
     * `offset` bytes after the unconsumed data's start. Assembled: the
     * method and header payloads and the body are copied here. */
    bool assembling;
    uint8_t *copy;                /* owned: method payload, header payload, body */
    uint32_t method_len, header_len;
} amqp_incoming_t;

struct hp_amqp_channel {
    hp_amqp_conn_t *conn;
    hp_amqp_channel_t *next_dead; /* in the connection's graveyard */
    uint16_t id;
    uint8_t state;                /* CH_* */
    bool confirm;                 /* confirm.select sent */
    amqp_op_t *ops, *ops_tail;    /* owned: calls waiting for replies */
    amqp_consumer_t *consumers;   /* owned */
    amqp_incoming_t in;
    /* Confirm mode: sequence numbers base .. next_seq - 1 are unconfirmed;
     * entry seq lives at ring[(seq - 1) % window]. */
    uint64_t next_seq, base;
    uint32_t window;
    amqp_confirm_t *ring;         /* owned */
    uint64_t user_seq;            /* the next number a publish is given: never
                                     reused, across recoveries too */
    /* Publishes waiting for room (cfg.publish_queue_bytes, publish.c): a
     * FIFO ring of q_cap entries, q_len of them from q_head, each framed
     * and numbered when it was published; q_bytes counts them against the
     * bound. The array is freed whenever the queue empties. */
    amqp_confirm_t *queue;        /* owned, with each entry's frames */
    uint32_t q_head, q_len, q_cap;
    uint64_t q_bytes;
    /* Recoveries: the qos to ask for again, and delivery tags: the broker
     * numbers deliveries from 1 on each new channel, the caller sees them
     * shifted by tag_offset (the highest before), so that an ack for a
     * delivery of a lost connection is recognised and dropped. */
    uint16_t prefetch;
    bool qos_global, qos_set;
    uint64_t tag_offset, max_tag;
    hp_amqp_done_cb on_close;
    void *on_close_arg;
    hp_amqp_delivery_cb on_return;
    void *on_return_arg;
};

struct hp_amqp_conn {
    hp_conn_t *c;                 /* the worker's; NULL once closed */
    hp_worker_t *worker;
    uint8_t state;                /* AMQP_* */
    bool blocked;
    bool recovering;              /* lost, reconnecting (cfg.recover) */
    bool dead;                    /* closed: free once depth is 0 */
    bool reported;                /* CLOSED has been reported */
    bool closing_by_user;         /* hp_amqp_close was called */
    uint32_t depth;               /* nesting of the client's own code */
    hp_amqp_conn_cb cb;
    void *arg;
    void (*on_writable)(hp_amqp_conn_t *c, void *arg);
    void *writable_arg;
    bool want_writable;
    /* negotiated */
    uint32_t frame_max;
    uint16_t channel_max;
    uint16_t heartbeat_s;
    /* heartbeats and the handshake deadline, on the loop's clock */
    uint64_t last_recv_ms, last_send_ms, deadline_ms;
    /* why it closed: what CLOSED reports */
    int err;
    uint16_t reply_code, class_id, method_id;
    char reply_text[256];
    /* channels by number (1 .. channel_max); owned */
    hp_amqp_channel_t **chans;
    uint32_t nchans;              /* open ones */
    uint16_t next_id;             /* where the search for a free number starts */
    hp_amqp_channel_t *graveyard; /* owned: dropped channels, freed at depth 0 */
    hp_amqp_stats_t stats;        /* state is filled in by hp_amqp_stats */
    struct hp_hist *deliver_lat;  /* owned: publish-to-deliver latency (message.c);
                                     NULL until the first stamped delivery */
    /* recovery (recover.c) */
    bool ever_ready;              /* reached READY once: a loss is recovered */
    amqp_topo_t *topo, *topo_tail; /* owned: declared, in order */
    hp_timer_t retry;             /* the delay before the next attempt */
    uint32_t attempt;             /* attempts since the loss */
    uint32_t recover_phase;       /* 1: channels, exchanges, queues; 2: the rest */
    uint32_t recover_pending;     /* steps of this phase still unanswered */
    uint64_t rng;                 /* jitter */
    bool recover_failed;          /* a step was refused: this loss is final */
    /* addresses: each dial takes addrs[addr] (and sets cfg.host and
     * cfg.port to it); `tried` counts the round's dials, the current one
     * included. `up`: this engine connection finished its handshake. */
    amqp_addr_t *addrs;           /* owned: the array, then its strings */
    uint32_t naddrs, addr, tried;
    bool up;
    hp_timer_t blocked_timer;     /* cfg.blocked_timeout_ms from connection.blocked */
    /* read coalescing (cfg.read_coalesce_ms): the timer is armed while the
     * mark is raised; `coalesce_data`: bytes came in the timer's period */
    hp_timer_t coalesce_timer;
    uint64_t last_data_ms;
    bool coalesce_data;
    /* configuration, copied: the strings live in `strs` */
    hp_amqp_config_t cfg;
    char *strs;                   /* owned */
};

/* ---- client.c, for the channel files ---- */

/* Room for `n` bytes of frames in the connection's output, or NULL when it
 * is full (-EAGAIN for the caller) or closed. */
uint8_t *amqp_out_reserve(hp_amqp_conn_t *a, size_t n);
/* Commits `n` bytes of frames and makes sure they leave this iteration. */
void amqp_out_commit(hp_amqp_conn_t *a, size_t n);
/* Sends one method frame on `channel`. Returns 0, -EAGAIN (output full),
 * -EINVAL (a string too long), -ENOTCONN (closed). */
int amqp_send_method(hp_amqp_conn_t *a, uint16_t channel, const hp_amqp_method_t *m);
/* Closes the connection with an error of ours: connection.close with
 * `code` and `text` to the broker, CLOSED with -EPROTO to the user. */
void amqp_fail(hp_amqp_conn_t *a, uint16_t code, const char *text);
/* Enters and leaves the client's own code (see the top of this file). */
void amqp_enter(hp_amqp_conn_t *a);
void amqp_leave(hp_amqp_conn_t *a);
/* What CLOSED (or RECOVERING) reports, from what was recorded. */
hp_amqp_result_t amqp_close_result(const hp_amqp_conn_t *a);
/* Fails every channel, reports CLOSED once, and marks the struct dead. */
void amqp_report_closed(hp_amqp_conn_t *a);
/* Closes the engine connection now (its on_close decides what follows). */
void amqp_close_now(hp_amqp_conn_t *a);
/* Closes at the worker's next wake-up, so that CLOSED never runs inside
 * the call that asked for it. */
void amqp_close_soon(hp_amqp_conn_t *a);
/* Closed by the caller: CLOSED says 0, not why the connection went. */
void amqp_forget_reason(hp_amqp_conn_t *a);
/* Arms the connection's timer for heartbeats (or disarms it). */
void amqp_arm_heartbeat(hp_amqp_conn_t *a);
/* Bytes went into the output: last_send_ms only moves forward (a fresh
 * clock read in the middle of an iteration may have put it ahead of the
 * iteration's cached time). */
static inline void amqp_note_sent(hp_amqp_conn_t *a)
{
    uint64_t now = hp_conn_now(a->c);
    if (now > a->last_send_ms)
        a->last_send_ms = now;
}
/* Dials addrs[addr] (with `advance`, the next one, cycling) as the
 * round's next attempt: the reason recorded and the per-connection state
 * are reset, the deadline is connect_timeout_ms from now. A dial that
 * fails at once (a name the resolver refuses) moves on to the next
 * address while the round allows. Returns 0 with a dial under way
 * (on_open or on_close follow), or the last -errno, recorded as the
 * reason, when the round ended without one. */
int amqp_dial(hp_amqp_conn_t *a, bool advance);
/* The address dialed now, "host:port", for logs. */
static inline const char *amqp_where(const hp_amqp_conn_t *a)
{
    return a->addrs[a->addr].text;
}

/* ---- address.c ---- */

/* The addresses cfg names (cfg->addresses, or host and port alone), in
 * one allocation (*out, freed with hp_free). Returns 0, -EINVAL for a
 * malformed or empty address or more than HP_AMQP_MAX_ADDRESSES, or
 * -ENOMEM. */
int amqp_addrs_new(const hp_amqp_config_t *cfg, amqp_addr_t **out, uint32_t *count);

/* ---- channel.c ---- */

/* Whether `ch` was dropped or its connection closed (after a callback). */
static inline bool amqp_channel_gone(const hp_amqp_channel_t *ch)
{
    return ch->state == CH_CLOSED || ch->conn->dead;
}

/* A NULL name is the empty one (the default exchange, a server-named
 * queue). */
static inline hp_amqp_bytes_t amqp_name(const char *s)
{
    return s ? hp_amqp_str(s) : (hp_amqp_bytes_t){"", 0};
}

/* A method frame for channel `ch` (not 0). Returns 0 or -EPROTO when the
 * broker broke the protocol (the connection is then failed). */
int amqp_channel_method(hp_amqp_channel_t *ch, const hp_amqp_method_t *m);
/* The call at the head of `ch`'s FIFO, taken out (NULL: none). */
amqp_op_t *amqp_op_pop(hp_amqp_channel_t *ch);
void amqp_op_free(amqp_op_t *op);
/* The consumer with `tag` (*link: where it is linked, when not NULL). */
amqp_consumer_t *amqp_consumer_find(hp_amqp_channel_t *ch, hp_amqp_bytes_t tag,
                                   amqp_consumer_t ***link);
/* ---- message.c ---- */

/* A content method (basic.deliver, get-ok, return) `m` whose frame is the
 * first `flen` of the unconsumed bytes p[0, len): delivers the message
 * from the buffer when its header and body frames are all there (returns
 * the bytes they take, method frame included), returns 0 to wait for more
 * when the whole message will fit the read buffer (`capacity`), or else
 * starts a copy of it (returns flen). -1 on a protocol error (the
 * connection is failed). */
long amqp_channel_message(hp_amqp_channel_t *ch, const hp_amqp_method_t *m, const uint8_t *p,
                          size_t len, long flen, uint32_t capacity);
/* A header or body frame for `ch`'s message being copied. Returns 0 or -1
 * (the connection is failed). */
int amqp_channel_content(hp_amqp_channel_t *ch, const hp_amqp_frame_t *f);
/* The engine connection closed: a message half received on `ch` is gone. */
void amqp_channel_lost_input(hp_amqp_channel_t *ch);
/* Frees the publish-to-deliver histogram (the connection is freed). */
void amqp_deliver_latency_free(hp_amqp_conn_t *a);

/* ---- channel.c, again ---- */

/* Fails everything pending on `ch` with `r`, tells its on_close when
 * `notify`, and moves it to the graveyard: the number is free at once, the
 * memory once the client is out of its own code. */
void amqp_channel_drop(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, bool notify);
/* Frees the graveyard's channels. */
void amqp_channel_bury(hp_amqp_conn_t *a);
/* Sends `m` on `ch` as a recovery step (whatever the channel's state):
 * its reply goes to amqp_recover_step with `topo` (borrowed: the record a
 * queue.declare repeats). Returns 0 or -errno. */
int amqp_channel_recover_call(hp_amqp_channel_t *ch, const hp_amqp_method_t *m, uint32_t reply,
                              amqp_topo_t *topo);
/* The connection was lost and will be recovered: fails the channel's
 * pending calls with `r` and, per the configuration, its unconfirmed
 * publishes; keeps the rest (consumers, qos, confirm mode, the publishes
 * to send again). */
void amqp_channel_lost(hp_amqp_channel_t *ch, const hp_amqp_result_t *r);
/* The last phase of a recovery is done on `ch`: it is open again; what it
 * keeps to publish again goes out. */
void amqp_channel_recovered(hp_amqp_channel_t *ch);

/* ---- publish.c ---- */

/* Completes publish `seq` (the broker's number) with `status`: an
 * HP_AMQP_ACKED/NACKED or -errno; once only. */
void amqp_confirm_resolve(hp_amqp_channel_t *ch, uint64_t seq, int status);
/* Moves the window's base past its completed head. */
void amqp_confirm_advance(hp_amqp_channel_t *ch);
/* basic.ack or basic.nack from the broker. Returns 0 or -1 (a confirm for
 * nothing published: the connection is failed). */
int amqp_confirm_in(hp_amqp_channel_t *ch, uint64_t tag, bool multiple, int status);
/* `ch` is open again after a recovery: what it kept to publish again goes
 * out, numbered from 1 by the broker, under the caller's numbers. */
void amqp_confirm_republish(hp_amqp_channel_t *ch);
/* Room may have come (output drained, confirms freed window slots, the
 * broker unblocked, a recovery ended): the publishes waiting in channels'
 * queues go, in order, as far as it allows; then hp_amqp_on_writable's
 * callback runs if a publish had been refused. */
void amqp_channel_writable(hp_amqp_conn_t *a);
/* Fails the publishes waiting in `ch`'s queue with `err` (a callback each,
 * in order) and empties it: the channel went, or the connection was lost
 * and its unconfirmed publishes fail. */
void amqp_publish_queue_fail(hp_amqp_channel_t *ch, int err);

/* ---- recover.c ---- */

/* A record of a declare, not yet in the list (amqp_topo_commit). NULL for
 * no memory. */
amqp_topo_t *amqp_topo_new(uint8_t kind, unsigned flags, const char *s0, const char *s1,
                           const char *s2, hp_amqp_bytes_t args);
void amqp_topo_free(amqp_topo_t *t);
/* The declare succeeded: the record joins the list (a server-named queue
 * with the name the broker gave it). */
void amqp_topo_commit(hp_amqp_conn_t *a, amqp_topo_t *t, hp_amqp_bytes_t queue_name);
/* A delete or unbind succeeded: the records it names leave the list
 * (an exchange's or a queue's bindings with it). */
void amqp_topo_forget(hp_amqp_conn_t *a, uint8_t kind, char *const s[3]);
void amqp_topo_free_all(hp_amqp_conn_t *a);
/* The engine connection closed: true when a recovery begins (or goes on)
 * instead of CLOSED. */
bool amqp_recover_lost(hp_amqp_conn_t *a);
/* The handshake of a recovery attempt is done. */
void amqp_recover_ready(hp_amqp_conn_t *a);
/* A recovery step on `ch` was answered with `m` (`r` NULL) or failed. */
void amqp_recover_step(hp_amqp_channel_t *ch, amqp_topo_t *topo, const hp_amqp_method_t *m,
                       const hp_amqp_result_t *r);
/* hp_amqp_close while recovering: stops it. */
void amqp_recover_stop(hp_amqp_conn_t *a);
/* The engine protocol, for each new attempt. */
extern const hp_proto_t amqp_client_proto;

#endif
