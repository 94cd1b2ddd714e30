/*
 * client.c - an AMQP 0-9-1 client connection on the engine: the dial, the
 * handshake (spec §2.2.4: start, start-ok, tune, tune-ok, open, open-ok),
 * the frame loop, heartbeats, connection.blocked and its timeout, the
 * close handshake, and the round over the broker addresses: an attempt
 * that fails before its handshake ends moves on to the next address at
 * once.
 *
 * Central structure: hp_amqp_conn_t, the udata of an outbound engine
 * connection running amqp_proto. Frames are parsed where they lie in the
 * read buffer. A message (a content method, its header, its body frames)
 * that is whole in the buffer is delivered from there, body borrowed; one
 * that cannot be whole in the buffer (larger than it) is copied out frame
 * by frame (message.c). Frames are never larger than the read buffer: the
 * frame_max we ask for is capped by it.
 *
 * Invariants:
 *  - a->c is the engine connection until it closes; after that a->dead is
 *    set and the struct is freed by the outermost amqp_leave (depth 0);
 *  - CLOSED is reported exactly once, after every channel's pending calls
 *    and unconfirmed publishes have completed;
 *  - a round dials each address at most once (tried <= naddrs), and a
 *    connection lost after its handshake (up) never moves on in the
 *    round: recover.c starts the next one;
 *  - output written outside the connection's own callbacks is flushed at
 *    the end of the loop iteration (hp_conn_flush_soon), so a burst of
 *    publishes from a handler leaves in one writev.
 */
#include "hotpath/amqp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "client_int.h"
#include "hotpath/alloc.h"
#include "hotpath/log.h"
#include "net/worker_int.h"

#ifndef HP_VERSION
#define HP_VERSION "dev"
#endif


/* ---- lifetime ---- */

static void conn_free(hp_amqp_conn_t *a)
{
    hp_loop_timer_cancel(&a->worker->loop, &a->retry);
    hp_loop_timer_cancel(&a->worker->loop, &a->blocked_timer);
    hp_loop_timer_cancel(&a->worker->loop, &a->coalesce_timer);
    hp_free(a->addrs);
    amqp_topo_free_all(a);
    amqp_channel_bury(a);
    amqp_deliver_latency_free(a);
    hp_free(a->chans);
    hp_free(a->strs);
    hp_free(a);
}

void amqp_enter(hp_amqp_conn_t *a)
{
    a->depth++;
}

void amqp_leave(hp_amqp_conn_t *a)
{
    if (--a->depth > 0)
        return;
    if (a->dead)
        conn_free(a);
    else if (a->graveyard)
        amqp_channel_bury(a);
}

/* The result CLOSED reports, from what was recorded when it closed. */
hp_amqp_result_t amqp_close_result(const hp_amqp_conn_t *a)
{
    return (hp_amqp_result_t){.err = a->err,
                              .reply_code = a->reply_code,
                              .class_id = a->class_id,
                              .method_id = a->method_id,
                              .reply_text = hp_amqp_str(a->reply_text)};
}

static void set_reason(hp_amqp_conn_t *a, int err, uint16_t code, hp_amqp_bytes_t text)
{
    if (a->err || a->reply_code)
        return; /* the first reason stands */
    a->err = err;
    a->reply_code = code;
    uint32_t n = text.len < sizeof a->reply_text - 1 ? text.len : sizeof a->reply_text - 1;
    if (n)
        memcpy(a->reply_text, text.ptr, n);
    a->reply_text[n] = '\0';
}

void amqp_report_closed(hp_amqp_conn_t *a)
{
    a->dead = true;
    if (a->reported)
        return;
    a->reported = true;
    a->state = AMQP_CLOSED;
    hp_amqp_result_t r = amqp_close_result(a);
    if (r.err == 0 && r.reply_code == 0 && !a->closing_by_user)
        r.err = -ECONNRESET;
    hp_amqp_result_t ch_r = r;
    if (ch_r.err == 0)
        ch_r.err = -ECANCELED;
    for (uint32_t i = 1; a->chans && i <= a->channel_max; i++) {
        if (a->chans[i])
            amqp_channel_drop(a->chans[i], &ch_r, false);
    }
    a->cb(a, HP_AMQP_EV_CLOSED, &r, a->arg);
}

/* ---- output ---- */

uint8_t *amqp_out_reserve(hp_amqp_conn_t *a, size_t n)
{
    if (!a->c || a->state == AMQP_CLOSED || n > UINT32_MAX)
        return NULL;
    return (uint8_t *)hp_conn_reserve(a->c, (uint32_t)n);
}

void amqp_out_commit(hp_amqp_conn_t *a, size_t n)
{
    hp_conn_commit(a->c, (uint32_t)n);
    a->stats.bytes_out += n;
    amqp_note_sent(a);
    hp_conn_flush_soon(a->c);
}

/* Writes `len` bytes of whole frames, copying them: into the output
 * chunk, or, when it is full, into a buffer of their own queued behind it
 * (control methods are few and small: they are not refused for the lack
 * of room that bounds publishing). */
static int out_write(hp_amqp_conn_t *a, const void *buf, size_t len)
{
    if (!a->c || hp_conn_is_closed(a->c))
        return -ENOTCONN;
    uint8_t *at = amqp_out_reserve(a, len);
    if (at) {
        memcpy(at, buf, len);
        amqp_out_commit(a, len);
        return 0;
    }
    void *copy = hp_malloc(len);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, buf, len);
    if (hp_conn_write_ref(a->c, copy, len, true) < 0) /* frees copy on failure too */
        return -EAGAIN;
    a->stats.bytes_out += len;
    amqp_note_sent(a);
    hp_conn_flush_soon(a->c);
    return 0;
}

int amqp_send_method(hp_amqp_conn_t *a, uint16_t channel, const hp_amqp_method_t *m)
{
    if (!a->c || a->state == AMQP_CLOSED)
        return -ENOTCONN;
    /* Most methods are a few dozen bytes; a declare with a large argument
     * table takes the heap. Before tune, the spec allows frames of up to
     * frame-min-size (4096 bytes): a start-ok with long credentials is
     * one. */
    uint32_t limit = a->frame_max ? a->frame_max : HP_AMQP_FRAME_MIN_SIZE;
    uint8_t stack[1024];
    uint8_t *buf = stack;
    size_t cap = sizeof stack;
    for (;;) {
        hp_amqp_wr_t w = hp_amqp_wr(buf, cap);
        size_t start = hp_amqp_frame_begin(&w, HP_AMQP_FRAME_METHOD, channel);
        int r = hp_amqp_method_encode(&w, m);
        hp_amqp_frame_end(&w, start);
        if (r == 0 && !w.overflow) {
            if (w.len > limit) {
                r = -EMSGSIZE;
            } else {
                r = out_write(a, buf, w.len);
            }
        } else if (r == 0 || r == -ENOBUFS) {
            if (buf == stack && limit > sizeof stack) {
                cap = limit;
                buf = hp_malloc(cap);
                if (!buf)
                    return -ENOMEM;
                continue;
            }
            r = -EMSGSIZE;
        }
        if (buf != stack)
            hp_free(buf);
        return r;
    }
}

/* ---- closing ---- */

/* Closes the engine connection; on_close reports. */
void amqp_close_now(hp_amqp_conn_t *a)
{
    if (a->c && !hp_conn_is_closed(a->c))
        hp_conn_close(a->c);
}

static void send_close(hp_amqp_conn_t *a, uint16_t code, const char *text, uint32_t failed)
{
    hp_amqp_method_t m = {.id = HP_AMQP_CONNECTION_CLOSE};
    m.connection_close.reply_code = code;
    m.connection_close.reply_text = hp_amqp_str(text);
    m.connection_close.class_id = (uint16_t)(failed >> 16);
    m.connection_close.method_id = (uint16_t)failed;
    if (amqp_send_method(a, 0, &m) < 0) {
        amqp_close_now(a);
        return;
    }
    a->state = AMQP_CLOSING;
    /* The broker has this long to answer close-ok. */
    uint64_t wait = a->cfg.connect_timeout_ms ? a->cfg.connect_timeout_ms : 10000;
    hp_conn_set_timer(a->c, wait);
}

void amqp_fail(hp_amqp_conn_t *a, uint16_t code, const char *text)
{
    hp_log_write(HP_LOG_WARN, "amqp: %s: closing: %u %s", amqp_where(a), code, text);
    set_reason(a, -EPROTO, code, hp_amqp_str(text));
    if (a->state >= AMQP_START && a->state <= AMQP_READY)
        send_close(a, code, text, 0);
    else
        amqp_close_now(a);
}

/* At the worker's next wake-up: CLOSED must not run inside the call that
 * asked for it. The struct is held (depth) until then. */
static void close_later(hp_worker_t *w, uint64_t arg, void *ptr)
{
    (void)w;
    (void)arg;
    hp_amqp_conn_t *a = ptr;
    if (a->c)
        amqp_close_now(a); /* on_close reports */
    else
        amqp_report_closed(a);
    amqp_leave(a);
}

void amqp_close_soon(hp_amqp_conn_t *a)
{
    amqp_enter(a); /* close_later leaves */
    /* Now rather than never: when the inbox is full, or when the worker is
     * stopping (its inbox may not be read again: a protocol's worker_fini
     * closing what is left). */
    if (a->worker->draining || a->worker->loop.stopping ||
        hp_worker_call(a->worker, close_later, 0, a) < 0)
        close_later(a->worker, 0, a);
}

void amqp_forget_reason(hp_amqp_conn_t *a)
{
    a->err = 0;
    a->reply_code = a->class_id = a->method_id = 0;
    a->reply_text[0] = '\0';
}

void hp_amqp_close(hp_amqp_conn_t *a)
{
    if (a->closing_by_user || a->state == AMQP_CLOSED)
        return;
    a->closing_by_user = true;
    amqp_enter(a);
    if (a->recovering) {
        amqp_recover_stop(a);
    } else if (a->state == AMQP_CLOSING) {
        /* Closing already: the broker's close (a kill, a shutdown), or an
         * error of ours. The flag says that no recovery follows: CLOSED
         * comes when the socket goes, with 0 as after any close of the
         * caller's. */
        amqp_forget_reason(a);
    } else if (a->state == AMQP_READY) {
        /* Channels' pending calls will get no answer now: fail them at once. */
        hp_amqp_result_t r = {.err = -ECANCELED};
        for (uint32_t i = 1; a->chans && i <= a->channel_max; i++) {
            if (a->chans[i])
                amqp_channel_drop(a->chans[i], &r, false);
        }
        send_close(a, HP_AMQP_REPLY_SUCCESS, "closed by the client", 0);
    } else {
        amqp_close_soon(a);
    }
    amqp_leave(a);
}

/* ---- the handshake ---- */

static int send_start_ok(hp_amqp_conn_t *a, const hp_amqp_connection_start_t *s)
{
    /* PLAIN must be on offer (a space-separated list). */
    const char *mech = s->mechanisms.ptr;
    bool plain = false;
    for (uint32_t i = 0; i < s->mechanisms.len;) {
        uint32_t j = i;
        while (j < s->mechanisms.len && mech[j] != ' ')
            j++;
        if (j - i == 5 && memcmp(mech + i, "PLAIN", 5) == 0)
            plain = true;
        i = j + 1;
    }
    if (!plain) {
        set_reason(a, -EPROTONOSUPPORT, 0, hp_amqp_str("the broker does not offer PLAIN"));
        amqp_close_now(a);
        return -EPROTONOSUPPORT;
    }
    /* 506 bytes with a 255-byte name and a 5-byte version: room to spare. */
    uint8_t props[768];
    hp_amqp_table_builder_t b;
    hp_amqp_table_init(&b, props, sizeof props);
    hp_amqp_table_add_str(&b, "product", "hotpath");
    hp_amqp_table_add_str(&b, "version", HP_VERSION);
    hp_amqp_table_add_str(&b, "platform", "C");
    if (a->cfg.name)
        hp_amqp_table_add_str(&b, "connection_name", a->cfg.name);
    hp_amqp_table_open_table(&b, "capabilities");
    hp_amqp_table_add_bool(&b, "publisher_confirms", true);
    hp_amqp_table_add_bool(&b, "basic.nack", true);
    hp_amqp_table_add_bool(&b, "consumer_cancel_notify", true);
    hp_amqp_table_add_bool(&b, "connection.blocked", true);
    hp_amqp_table_add_bool(&b, "authentication_failure_close", true);
    hp_amqp_table_add_bool(&b, "exchange_exchange_bindings", true);
    hp_amqp_table_add_bool(&b, "per_consumer_qos", true);
    hp_amqp_table_close(&b);
    hp_amqp_bytes_t table;
    if (hp_amqp_table_finish(&b, &table) < 0)
        return -EINVAL;

    /* PLAIN's response: "\0user\0password" (RFC 4616). */
    size_t ul = strlen(a->cfg.user), pl = strlen(a->cfg.password);
    char resp[2 + 255 + 255];
    if (ul > 255 || pl > 255)
        return -EINVAL;
    resp[0] = '\0';
    memcpy(resp + 1, a->cfg.user, ul);
    resp[1 + ul] = '\0';
    memcpy(resp + 2 + ul, a->cfg.password, pl);

    hp_amqp_method_t m = {.id = HP_AMQP_CONNECTION_START_OK};
    m.connection_start_ok.client_properties = table;
    m.connection_start_ok.mechanism = hp_amqp_str("PLAIN");
    m.connection_start_ok.response = (hp_amqp_bytes_t){resp, (uint32_t)(2 + ul + pl)};
    m.connection_start_ok.locale = hp_amqp_str("en_US");
    return amqp_send_method(a, 0, &m);
}

/* The smaller of two limits where 0 means "none" (spec §4.2.3.1 / tune). */
static uint32_t limit_min(uint32_t ours, uint32_t theirs)
{
    if (ours == 0)
        return theirs;
    if (theirs == 0)
        return ours;
    return ours < theirs ? ours : theirs;
}

static int on_tune(hp_amqp_conn_t *a, const hp_amqp_connection_tune_t *t)
{
    /* Frames must fit the read buffer whole. */
    uint32_t cap = hp_conn_rbuf_capacity(a->c);
    uint32_t fmax = limit_min(limit_min(a->cfg.frame_max, t->frame_max), cap);
    if (fmax < HP_AMQP_FRAME_MIN_SIZE) {
        set_reason(a, -EINVAL, 0, hp_amqp_str("frame_max below 4096"));
        return -EINVAL;
    }
    uint32_t cmax = limit_min(limit_min(a->cfg.channel_max, t->channel_max), HP_AMQP_MAX_CHANNELS);
    a->frame_max = fmax;
    /* Heartbeats: none if we asked for none; else the smaller nonzero. */
    a->heartbeat_s = a->cfg.heartbeat_s == 0 ? 0 : (uint16_t)limit_min(a->cfg.heartbeat_s,
                                                                       t->heartbeat);
    if (a->chans) {
        /* A recovery: channels keep their numbers; those beyond what this
         * broker allows cannot come back. */
        hp_amqp_result_t gone = {.err = -ECONNRESET};
        for (uint32_t i = cmax + 1; i <= a->channel_max; i++) {
            if (a->chans[i])
                amqp_channel_drop(a->chans[i], &gone, true);
        }
        hp_amqp_channel_t **grown = hp_realloc(a->chans, (cmax + 1u) * sizeof *a->chans);
        if (!grown)
            return -ENOMEM;
        for (uint32_t i = a->channel_max + 1u; i <= cmax; i++)
            grown[i] = NULL;
        a->chans = grown;
    } else {
        a->chans = hp_calloc(cmax + 1u, sizeof *a->chans);
        if (!a->chans)
            return -ENOMEM;
    }
    a->channel_max = (uint16_t)cmax;
    hp_amqp_method_t m = {.id = HP_AMQP_CONNECTION_TUNE_OK};
    m.connection_tune_ok.channel_max = a->channel_max;
    m.connection_tune_ok.frame_max = a->frame_max;
    m.connection_tune_ok.heartbeat = a->heartbeat_s;
    int r = amqp_send_method(a, 0, &m);
    if (r < 0)
        return r;
    hp_amqp_method_t o = {.id = HP_AMQP_CONNECTION_OPEN};
    o.connection_open.virtual_host = hp_amqp_str(a->cfg.vhost);
    return amqp_send_method(a, 0, &o);
}

void amqp_arm_heartbeat(hp_amqp_conn_t *a)
{
    if (a->heartbeat_s)
        hp_conn_set_timer(a->c, (uint64_t)a->heartbeat_s * 1000 / 2);
    else
        hp_conn_set_timer(a->c, 0);
}

/* A handshake step failed on our side (-errno): close with its reason. */
static void handshake_failed(hp_amqp_conn_t *a, int err)
{
    if (a->dead || !a->c || hp_conn_is_closed(a->c))
        return;
    set_reason(a, err, 0, hp_amqp_str("the handshake failed"));
    amqp_close_now(a);
}

/* A broker that stopped reading because it said so (connection.blocked)
 * is not a stalled peer: while blocked, the engine's write timer is
 * suspended and cfg.blocked_timeout_ms (if any) alone limits the wait;
 * heartbeats go on on the connection's own timer. Unblocked, output
 * still waiting gets the whole write timeout afresh. */
static void blocked_changed(hp_amqp_conn_t *a)
{
    hp_conn_suspend_write_timer(a->c, a->blocked);
    if (!a->blocked) {
        hp_loop_timer_cancel(&a->worker->loop, &a->blocked_timer);
        return;
    }
    amqp_arm_heartbeat(a);
    if (a->cfg.blocked_timeout_ms)
        hp_loop_timer_arm(&a->worker->loop, &a->blocked_timer, a->cfg.blocked_timeout_ms);
}

static void blocked_too_long(hp_timer_t *t)
{
    hp_amqp_conn_t *a = HP_CONTAINER_OF(t, hp_amqp_conn_t, blocked_timer);
    if (!a->blocked || !a->c || hp_conn_is_closed(a->c))
        return;
    amqp_enter(a);
    char text[80];
    snprintf(text, sizeof text, "blocked by the broker for longer than %llu ms",
             (unsigned long long)a->cfg.blocked_timeout_ms);
    hp_log_write(HP_LOG_WARN, "amqp: %s: %s: closing", amqp_where(a), text);
    set_reason(a, -ETIMEDOUT, 0, hp_amqp_str(text));
    /* Closed at once: the broker reads nothing, a connection.close
     * included. */
    amqp_close_now(a);
    amqp_leave(a);
}

/* A method on channel 0. */
static void connection_method(hp_amqp_conn_t *a, const hp_amqp_method_t *m)
{
    int r;
    switch (m->id) {
    case HP_AMQP_CONNECTION_START:
        if (a->state != AMQP_START)
            break;
        if (m->connection_start.version_major != 0 || m->connection_start.version_minor != 9) {
            set_reason(a, -EPROTONOSUPPORT, 0, hp_amqp_str("the broker speaks another version"));
            amqp_close_now(a);
            return;
        }
        a->state = AMQP_TUNE;
        r = send_start_ok(a, &m->connection_start);
        if (r < 0)
            handshake_failed(a, r);
        return;
    case HP_AMQP_CONNECTION_SECURE:
        if (a->state != AMQP_TUNE)
            break;
        /* PLAIN has no challenge. */
        amqp_fail(a, HP_AMQP_NOT_IMPLEMENTED, "connection.secure: PLAIN takes no challenge");
        return;
    case HP_AMQP_CONNECTION_TUNE:
        if (a->state != AMQP_TUNE)
            break;
        a->state = AMQP_OPENING;
        r = on_tune(a, &m->connection_tune);
        if (r < 0)
            handshake_failed(a, r);
        return;
    case HP_AMQP_CONNECTION_OPEN_OK:
        if (a->state != AMQP_OPENING)
            break;
        a->state = AMQP_READY;
        a->ever_ready = true;
        a->up = true;
        amqp_arm_heartbeat(a);
        if (a->recovering)
            amqp_recover_ready(a);
        else
            a->cb(a, HP_AMQP_EV_READY, &(hp_amqp_result_t){0}, a->arg);
        return;
    case HP_AMQP_CONNECTION_CLOSE: {
        const hp_amqp_connection_close_t *cl = &m->connection_close;
        /* Crossing ours (hp_amqp_close): the close the user asked for is
         * done, and CLOSED says err 0 as promised. */
        if (!a->closing_by_user) {
            set_reason(a, -EPROTO, cl->reply_code, cl->reply_text);
            a->class_id = cl->class_id;
            a->method_id = cl->method_id;
        }
        hp_log_write(HP_LOG_WARN, "amqp: %s: the broker closed the connection: %u %.*s",
                     amqp_where(a), cl->reply_code, (int)cl->reply_text.len,
                     (const char *)cl->reply_text.ptr);
        hp_amqp_method_t ok = {.id = HP_AMQP_CONNECTION_CLOSE_OK};
        if (amqp_send_method(a, 0, &ok) == 0)
            hp_conn_close_after_write(a->c);
        else
            amqp_close_now(a);
        a->state = AMQP_CLOSING;
        return;
    }
    case HP_AMQP_CONNECTION_CLOSE_OK:
        if (a->state != AMQP_CLOSING)
            break;
        amqp_close_now(a);
        return;
    case HP_AMQP_CONNECTION_BLOCKED:
    case HP_AMQP_CONNECTION_UNBLOCKED: {
        bool blocked = m->id == HP_AMQP_CONNECTION_BLOCKED;
        if (a->state == AMQP_CLOSING)
            return;
        if (a->state != AMQP_READY)
            break;
        if (a->blocked == blocked)
            return;
        a->blocked = blocked;
        blocked_changed(a);
        hp_amqp_result_t res = {0};
        if (blocked)
            res.reply_text = m->connection_blocked.reason;
        a->cb(a, blocked ? HP_AMQP_EV_BLOCKED : HP_AMQP_EV_UNBLOCKED, &res, a->arg);
        if (!blocked && !a->dead)
            amqp_channel_writable(a);
        return;
    }
    default:
        break;
    }
    if (a->state == AMQP_CLOSING)
        return; /* after close, everything but close-ok is discarded */
    char text[96];
    const char *name = hp_amqp_method_name(m->id);
    snprintf(text, sizeof text, "unexpected %s on channel 0", name ? name : "method");
    amqp_fail(a, HP_AMQP_COMMAND_INVALID, text);
}

/* ---- the round over the addresses ---- */

/* Whether an attempt that failed before its handshake ended moves on to
 * the next address: not once each was tried, nor after a refused login
 * or vhost (a cluster's nodes share them), nor when the user closed or
 * the worker stops. */
static bool round_goes_on(const hp_amqp_conn_t *a)
{
    return a->tried < a->naddrs && !a->closing_by_user &&
           a->reply_code != HP_AMQP_ACCESS_REFUSED && a->reply_code != HP_AMQP_NOT_ALLOWED &&
           !a->worker->draining && !a->worker->loop.stopping;
}

static void log_next(const hp_amqp_conn_t *a)
{
    hp_log_write(HP_LOG_WARN, "amqp: %s: %s (%s): trying %s", amqp_where(a), a->reply_text,
                 a->reply_code ? "refused" : strerror(-a->err),
                 a->addrs[(a->addr + 1) % a->naddrs].text);
}

int amqp_dial(hp_amqp_conn_t *a, bool advance)
{
    for (;;) {
        if (advance)
            a->addr = (a->addr + 1) % a->naddrs;
        advance = true;
        a->tried++;
        /* The engine and the resolver take host and port (and the logs
         * of the other files show them): they name this address. */
        a->cfg.host = a->addrs[a->addr].host;
        a->cfg.port = a->addrs[a->addr].port;
        a->err = 0;
        a->reply_code = a->class_id = a->method_id = 0;
        a->reply_text[0] = '\0';
        a->state = AMQP_DIALING;
        a->up = false;
        a->blocked = false;
        a->frame_max = 0;
        uint64_t timeout = a->cfg.connect_timeout_ms;
        a->deadline_ms = timeout ? hp_loop_now(&a->worker->loop) + timeout : UINT64_MAX;
        hp_connect_opts_t opts = {.timeout_ms = timeout, .sock = {.nodelay = true}};
        int r = hp_worker_connect_host(a->worker, a->cfg.host, a->cfg.port, &amqp_client_proto,
                                       a, &opts, &a->c);
        if (r == 0)
            return 0;
        a->c = NULL;
        set_reason(a, r, 0, hp_amqp_str("connect failed"));
        if (!round_goes_on(a))
            return r;
        log_next(a);
    }
}

/* ---- the frame loop ---- */

/* One frame that is not part of a message being assembled. Returns the
 * bytes it used (the frame, or a whole message), 0 to wait for more
 * bytes. */
static long frame_in(hp_amqp_conn_t *a, const uint8_t *p, size_t len, const hp_amqp_frame_t *f,
                     long flen)
{
    /* Once connection.close is out (ours, or our close-ok to the
     * broker's), only close and close-ok matter (spec: connection.close):
     * a delivery or a confirm already in flight is dropped, not handed to
     * channels that are failing or gone. */
    if (a->state == AMQP_CLOSING && !(f->type == HP_AMQP_FRAME_METHOD && f->channel == 0))
        return flen;
    switch (f->type) {
    case HP_AMQP_FRAME_HEARTBEAT:
        return flen;
    case HP_AMQP_FRAME_METHOD: {
        hp_amqp_method_t m;
        int r = hp_amqp_method_decode(f->payload.ptr, f->payload.len, &m);
        if (r < 0) {
            amqp_fail(a, r == -ENOTSUP ? HP_AMQP_NOT_IMPLEMENTED : HP_AMQP_SYNTAX_ERROR,
                      r == -ENOTSUP ? "unknown method" : "malformed method arguments");
            return -1;
        }
        if (f->channel == 0) {
            connection_method(a, &m);
            return flen;
        }
        if (a->state != AMQP_READY && a->state != AMQP_CLOSING) {
            amqp_fail(a, HP_AMQP_UNEXPECTED_FRAME, "a channel frame before the handshake ended");
            return -1;
        }
        hp_amqp_channel_t *ch = f->channel <= a->channel_max ? a->chans[f->channel] : NULL;
        if (!ch) {
            /* A late close-ok for a channel already dropped: nothing to do. */
            if (m.id == HP_AMQP_CHANNEL_CLOSE_OK || a->state == AMQP_CLOSING)
                return flen;
            amqp_fail(a, HP_AMQP_CHANNEL_ERROR, "a frame for a channel that is not open");
            return -1;
        }
        if (hp_amqp_method_has_content(m.id))
            return amqp_channel_message(ch, &m, p, len, flen, hp_conn_rbuf_capacity(a->c));
        if (amqp_channel_method(ch, &m) < 0)
            return -1;
        return flen;
    }
    default: {
        hp_amqp_channel_t *ch = f->channel && f->channel <= a->channel_max && a->chans
                                    ? a->chans[f->channel]
                                    : NULL;
        if (!ch) {
            amqp_fail(a, HP_AMQP_UNEXPECTED_FRAME, "content without a message");
            return -1;
        }
        if (amqp_channel_content(ch, f) < 0)
            return -1;
        return flen;
    }
    }
}

/* The frame_max frames are parsed with: negotiated, or before tune the
 * read buffer's size (the broker's start can be a few kilobytes). */
static uint32_t frame_limit(const hp_amqp_conn_t *a)
{
    return a->frame_max ? a->frame_max : hp_conn_rbuf_capacity(a->c);
}

/* Time from `then` to `now`, 0 when `then` is later: a time read fresh
 * in the middle of an iteration (keep_talking) is ahead of the
 * iteration's cached one. */
static inline uint64_t since(uint64_t now, uint64_t then)
{
    return now > then ? now - then : 0;
}

static void send_heartbeat(hp_amqp_conn_t *a)
{
    uint8_t frame[HP_AMQP_FRAME_OVERHEAD];
    hp_amqp_wr_t w = hp_amqp_wr(frame, sizeof frame);
    hp_amqp_frame_heartbeat(&w);
    out_write(a, frame, w.len);
}

/* Between two frames of one read. The callbacks of the frames before may
 * have held the loop (a slow delivery handler), and with it the timer
 * that sends heartbeats and the flush that sends their acks: once half an
 * interval has passed since anything went out, a heartbeat and all that
 * was written leave now, so that the broker, which gives up on a client
 * silent for two intervals, hears from this one however long the batch
 * takes (pika #93, #1104; test_amqp_lessons.py). One clock read a frame,
 * only with heartbeats. */
static void keep_talking(hp_amqp_conn_t *a)
{
    if (!a->heartbeat_s || a->state != AMQP_READY)
        return;
    uint64_t now = hp_loop_clock_ns(&a->worker->loop) / 1000000;
    if (since(now, a->last_send_ms) < (uint64_t)a->heartbeat_s * 1000 / 2)
        return;
    send_heartbeat(a);
    a->last_send_ms = now;
    hp_conn_flush(a->c); /* a broken connection closes here: the caller checks */
}

/* ---- read coalescing (cfg.read_coalesce_ms) ---- */

/* The low-water mark while coalescing: two 32 KiB read chunks. */
#define AMQP_COALESCE_LOWAT (64u << 10)

/* Bytes came in: two reads within the period raise the mark. */
static void coalesce_on_read(hp_amqp_conn_t *a, uint64_t now)
{
    uint32_t ms = a->cfg.read_coalesce_ms;
    if (!ms || a->state != AMQP_READY)
        return;
    a->coalesce_data = true;
    if (!hp_timer_armed(&a->coalesce_timer) && since(now, a->last_data_ms) <= ms &&
        hp_conn_set_read_lowat(a->c, AMQP_COALESCE_LOWAT) == 0)
        hp_loop_timer_arm(&a->worker->loop, &a->coalesce_timer, ms);
    a->last_data_ms = now;
}

/* Each period while coalescing: read what waits below the mark. A tick
 * that finds the period without bytes (not even from the read the tick
 * before asked for) wakes on every byte again. */
static void coalesce_tick(hp_timer_t *t)
{
    hp_amqp_conn_t *a = HP_CONTAINER_OF(t, hp_amqp_conn_t, coalesce_timer);
    if (!a->c || hp_conn_is_closed(a->c))
        return;
    if (!a->coalesce_data) {
        hp_conn_set_read_lowat(a->c, 1); /* reads what the mark held back */
        return;
    }
    a->coalesce_data = false;
    hp_conn_read_soon(a->c);
    hp_loop_timer_arm(&a->worker->loop, &a->coalesce_timer, a->cfg.read_coalesce_ms);
}

static void amqp_on_data(hp_conn_t *c)
{
    hp_amqp_conn_t *a = hp_conn_udata(c);
    amqp_enter(a);
    a->last_recv_ms = hp_conn_now(c);
    coalesce_on_read(a, a->last_recv_ms);
    while (!a->dead && !hp_conn_is_closed(c)) {
        const uint8_t *p = (const uint8_t *)hp_conn_data(c);
        uint32_t len = hp_conn_data_len(c);
        if (len == 0)
            break;
        hp_amqp_frame_t f;
        long n = hp_amqp_frame_parse(p, len, frame_limit(a), &f);
        if (n == 0)
            break;
        if (n < 0) {
            if (n == -EPROTONOSUPPORT) {
                set_reason(a, -EPROTONOSUPPORT, 0,
                           hp_amqp_str("the broker does not speak AMQP 0-9-1"));
                amqp_close_now(a);
            } else {
                amqp_fail(a, HP_AMQP_FRAME_ERROR,
                          n == -EMSGSIZE ? "frame larger than frame_max" : "malformed frame");
            }
            break;
        }
        long used = frame_in(a, p, len, &f, n);
        if (used > 0)
            a->stats.bytes_in += (uint64_t)used;
        if (used <= 0 || a->dead || hp_conn_is_closed(c))
            break;
        hp_conn_consume(c, (uint32_t)used);
        keep_talking(a);
    }
    amqp_leave(a);
}

static void amqp_on_open(hp_conn_t *c)
{
    hp_amqp_conn_t *a = hp_conn_udata(c);
    amqp_enter(a);
    a->state = AMQP_START;
    a->last_recv_ms = hp_conn_now(c);
    if (out_write(a, HP_AMQP_PROTOCOL_HEADER, HP_AMQP_PROTOCOL_HEADER_LEN) < 0) {
        amqp_close_now(a);
    } else {
        uint64_t now = hp_conn_now(c);
        hp_conn_set_timer(c, a->deadline_ms > now ? a->deadline_ms - now : 1);
    }
    amqp_leave(a);
}

static void amqp_on_connect_error(hp_conn_t *c, int err)
{
    hp_amqp_conn_t *a = hp_conn_udata(c);
    set_reason(a, err, 0, hp_amqp_str("connect failed"));
}

/* Whether the broker sent bytes not yet handled: in the read buffer or
 * still in the socket. */
static bool unread_bytes(const hp_amqp_conn_t *a)
{
    int n = 0;
    return hp_conn_data_len(a->c) > 0 || (ioctl(hp_conn_fd(a->c), FIONREAD, &n) == 0 && n > 0);
}

static void amqp_on_timeout(hp_conn_t *c)
{
    hp_amqp_conn_t *a = hp_conn_udata(c);
    amqp_enter(a);
    uint64_t now = hp_conn_now(c);
    if (a->state < AMQP_READY) {
        set_reason(a, -ETIMEDOUT, 0, hp_amqp_str("the handshake timed out"));
        amqp_close_now(a);
    } else if (a->state == AMQP_CLOSING) {
        amqp_close_now(a); /* no close-ok in time */
    } else if (a->heartbeat_s) {
        uint64_t hb = (uint64_t)a->heartbeat_s * 1000;
        /* Timers run before reads: after an iteration that held the loop,
         * what the broker sent meanwhile is still unread. Bytes waiting
         * say it is alive. */
        if (since(now, a->last_recv_ms) >= 2 * hb && unread_bytes(a))
            a->last_recv_ms = now;
        if (since(now, a->last_recv_ms) >= 2 * hb) {
            set_reason(a, -ETIMEDOUT, 0, hp_amqp_str("missed heartbeats: the broker is gone"));
            amqp_close_now(a);
        } else {
            if (since(now, a->last_send_ms) >= hb / 2)
                send_heartbeat(a);
            amqp_arm_heartbeat(a);
        }
    }
    amqp_leave(a);
}

static void amqp_on_drain(hp_conn_t *c)
{
    hp_amqp_conn_t *a = hp_conn_udata(c);
    amqp_enter(a);
    if (a->state == AMQP_READY) {
        amqp_arm_heartbeat(a); /* the write wait had taken the timer */
        amqp_channel_writable(a);
    }
    if (!a->dead && !hp_conn_is_closed(c) && hp_conn_data_len(c) > 0)
        amqp_on_data(c);
    amqp_leave(a);
}

static void amqp_on_close(hp_conn_t *c)
{
    hp_amqp_conn_t *a = hp_conn_udata(c);
    amqp_enter(a);
    a->c = NULL;
    a->blocked = false; /* that connection's, gone with it */
    hp_loop_timer_cancel(&a->worker->loop, &a->blocked_timer);
    hp_loop_timer_cancel(&a->worker->loop, &a->coalesce_timer); /* that socket's mark */
    for (uint32_t i = 1; a->chans && i <= a->channel_max; i++) {
        if (a->chans[i]) /* a message half received is gone with it */
            amqp_channel_lost_input(a->chans[i]);
    }
    /* Failed before its handshake ended: the round goes on at once. */
    if (!a->up && round_goes_on(a)) {
        log_next(a);
        if (amqp_dial(a, true) == 0) {
            amqp_leave(a);
            return;
        }
    }
    if (!a->up && a->naddrs > 1 && a->reply_code == 0) {
        /* The round failed: CLOSED (or RECOVERING) says where, last. */
        size_t n = strlen(a->reply_text);
        snprintf(a->reply_text + n, sizeof a->reply_text - n, " (%s, the last of %u addresses)",
                 amqp_where(a), a->naddrs);
    }
    if (!amqp_recover_lost(a))
        amqp_report_closed(a);
    amqp_leave(a);
}

const hp_proto_t amqp_client_proto = {
    .name = "amqp",
    .on_open = amqp_on_open,
    .on_connect_error = amqp_on_connect_error,
    .on_data = amqp_on_data,
    .on_drain = amqp_on_drain,
    .on_timeout = amqp_on_timeout,
    .on_close = amqp_on_close,
};

/* ---- the public calls ---- */

/* Copies the configuration's strings into one allocation. */
static int copy_config(hp_amqp_conn_t *a, const hp_amqp_config_t *cfg)
{
    const char *src[] = {cfg->host, cfg->vhost, cfg->user, cfg->password, cfg->name};
    size_t total = 0;
    for (size_t i = 0; i < sizeof src / sizeof src[0]; i++)
        total += src[i] ? strlen(src[i]) + 1 : 0;
    a->strs = hp_malloc(total ? total : 1);
    if (!a->strs)
        return -ENOMEM;
    a->cfg = *cfg;
    const char **dst[] = {&a->cfg.host, &a->cfg.vhost, &a->cfg.user, &a->cfg.password,
                          &a->cfg.name};
    char *at = a->strs;
    for (size_t i = 0; i < sizeof src / sizeof src[0]; i++) {
        if (!src[i])
            continue;
        size_t n = strlen(src[i]) + 1;
        memcpy(at, src[i], n);
        *dst[i] = at;
        at += n;
    }
    return 0;
}

int hp_amqp_connect(hp_worker_t *w, const hp_amqp_config_t *cfg, hp_amqp_conn_cb cb, void *arg,
                    hp_amqp_conn_t **out)
{
    if (!cfg || !cb || (!cfg->addresses && (!cfg->host || !*cfg->host)) || !cfg->vhost || !cfg->user ||
        !cfg->password || strlen(cfg->vhost) > 255 || strlen(cfg->user) > 255 ||
        strlen(cfg->password) > 255 || (cfg->name && strlen(cfg->name) > 255) ||
        (cfg->frame_max && cfg->frame_max < HP_AMQP_FRAME_MIN_SIZE))
        return -EINVAL;
    hp_amqp_conn_t *a = hp_calloc(1, sizeof *a);
    if (!a)
        return -ENOMEM;
    a->worker = w;
    hp_timer_init(&a->blocked_timer, blocked_too_long);
    hp_timer_init(&a->coalesce_timer, coalesce_tick);
    int r = amqp_addrs_new(cfg, &a->addrs, &a->naddrs);
    if (r == 0)
        r = copy_config(a, cfg);
    if (r < 0) {
        conn_free(a);
        return r;
    }
    a->cfg.addresses = NULL; /* the caller's: addrs holds them now */
    a->cb = cb;
    a->arg = arg;
    a->next_id = 1;
    r = amqp_dial(a, false);
    if (r < 0) {
        conn_free(a);
        return r;
    }
    *out = a;
    return 0;
}

uint32_t hp_amqp_frame_max(const hp_amqp_conn_t *a)
{
    return a->frame_max;
}

uint16_t hp_amqp_channel_max(const hp_amqp_conn_t *a)
{
    return a->channel_max;
}

uint16_t hp_amqp_heartbeat(const hp_amqp_conn_t *a)
{
    return a->heartbeat_s;
}

bool hp_amqp_blocked(const hp_amqp_conn_t *a)
{
    return a->blocked;
}

void hp_amqp_stats(const hp_amqp_conn_t *a, hp_amqp_stats_t *out)
{
    *out = a->stats;
    /* A recovery is READY on the wire while its replay runs, but calls
     * still answer -EAGAIN until RECOVERED: it is RECOVERING till then. */
    if (a->state >= AMQP_CLOSING)
        out->state = HP_AMQP_STATE_CLOSED;
    else if (a->recovering)
        out->state = HP_AMQP_STATE_RECOVERING;
    else if (a->state == AMQP_READY)
        out->state = a->blocked ? HP_AMQP_STATE_BLOCKED : HP_AMQP_STATE_READY;
    else
        out->state = HP_AMQP_STATE_CONNECTING;
}

void hp_amqp_on_writable(hp_amqp_conn_t *a, void (*cb)(hp_amqp_conn_t *c, void *arg), void *arg)
{
    a->on_writable = cb;
    a->writable_arg = arg;
}
