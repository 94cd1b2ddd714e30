/*
 * recover.c - what was declared through a connection, and the way back
 * after the connection was lost: reconnect with backoff, open the channels
 * again, declare the topology again, restore qos, confirm mode and
 * consumers, then publish again (or fail) what was unconfirmed.
 *
 * Central structures: the connection's topology list (amqp_topo_t, in the
 * order of the declares that succeeded; deletes and unbinds take records
 * out) and the recovery state on hp_amqp_conn_t (attempt, phase, steps
 * pending). An attempt is a round over the broker addresses that starts
 * with the one after the address lost (client.c moves on within it); the
 * backoff runs between rounds, and recover_tries counts rounds. A
 * recovery runs in two phases, each a batch of calls sent at
 * once (replies come in order per channel):
 *   1. channel.open for every channel, then, on the lowest channel, the
 *      exchanges and the queues (a server-named queue gets a new name: its
 *      bindings and consumers follow it);
 *   2. the bindings (on the lowest channel), then on each channel its qos,
 *      confirm.select and consumers.
 * RECOVERED is reported once phase 2 is answered, so a channel is usable
 * again only with its consumers back. The whole recovery has the connect
 * timeout as its deadline (the connection's timer); a step the broker
 * refuses ends it for good: CLOSED with that step's reply, never
 * swallowed. Losses before the first READY, refused logins (403), unknown
 * vhosts (530) and hp_amqp_close are not recovered.
 */
#include "hotpath/amqp.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "client_int.h"
#include "hotpath/alloc.h"
#include "hotpath/log.h"
#include "net/worker_int.h"

/* ---- the topology list ---- */

static char *dup_str(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    char *d = hp_malloc(n + 1);
    if (d) {
        if (n)
            memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

amqp_topo_t *amqp_topo_new(uint8_t kind, unsigned flags, const char *s0, const char *s1,
                           const char *s2, hp_amqp_bytes_t args)
{
    amqp_topo_t *t = hp_calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->kind = kind;
    t->flags = flags;
    const char *src[3] = {s0, s1, s2};
    for (int i = 0; i < 3; i++) {
        if (!(t->s[i] = dup_str(src[i]))) {
            amqp_topo_free(t);
            return NULL;
        }
    }
    if (args.len) {
        void *copy = hp_malloc(args.len);
        if (!copy) {
            amqp_topo_free(t);
            return NULL;
        }
        memcpy(copy, args.ptr, args.len);
        t->args = (hp_amqp_bytes_t){copy, args.len};
    }
    return t;
}

void amqp_topo_free(amqp_topo_t *t)
{
    if (!t)
        return;
    for (int i = 0; i < 3; i++)
        hp_free(t->s[i]);
    hp_free((void *)t->args.ptr);
    hp_free(t);
}

static bool same(const amqp_topo_t *a, const amqp_topo_t *b)
{
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case TOPO_EXCHANGE:
        return strcmp(a->s[0], b->s[0]) == 0;
    case TOPO_QUEUE: /* a server-named queue is its own */
        return *a->s[1] && strcmp(a->s[1], b->s[1]) == 0;
    default:
        return strcmp(a->s[0], b->s[0]) == 0 && strcmp(a->s[1], b->s[1]) == 0 &&
               strcmp(a->s[2], b->s[2]) == 0;
    }
}

void amqp_topo_commit(hp_amqp_conn_t *a, amqp_topo_t *t, hp_amqp_bytes_t queue_name)
{
    if (t->kind == TOPO_QUEUE && queue_name.len &&
        (strlen(t->s[0]) != queue_name.len || memcmp(t->s[0], queue_name.ptr, queue_name.len))) {
        char *n = hp_malloc(queue_name.len + 1u);
        if (n) {
            memcpy(n, queue_name.ptr, queue_name.len);
            n[queue_name.len] = '\0';
            hp_free(t->s[0]);
            t->s[0] = n;
        }
    }
    /* Declared again (same name): the latest declare is the one to repeat. */
    for (amqp_topo_t **at = &a->topo; *at; at = &(*at)->next) {
        if (same(*at, t)) {
            t->next = (*at)->next;
            if (a->topo_tail == *at)
                a->topo_tail = t;
            amqp_topo_free(*at);
            *at = t;
            return;
        }
    }
    t->next = NULL;
    if (a->topo_tail)
        a->topo_tail->next = t;
    else
        a->topo = t;
    a->topo_tail = t;
}

void amqp_topo_forget(hp_amqp_conn_t *a, uint8_t kind, char *const s[3])
{
    amqp_topo_t **at = &a->topo;
    a->topo_tail = NULL;
    while (*at) {
        amqp_topo_t *t = *at;
        bool drop = false;
        if (kind == TOPO_EXCHANGE)
            drop = (t->kind == TOPO_EXCHANGE && !strcmp(t->s[0], s[0])) ||
                   (t->kind == TOPO_BINDING && !strcmp(t->s[1], s[0]));
        else if (kind == TOPO_QUEUE)
            drop = (t->kind == TOPO_QUEUE && !strcmp(t->s[0], s[0])) ||
                   (t->kind == TOPO_BINDING && !strcmp(t->s[0], s[0]));
        else
            drop = t->kind == TOPO_BINDING && !strcmp(t->s[0], s[0]) &&
                   !strcmp(t->s[1], s[1]) && !strcmp(t->s[2], s[2]);
        if (drop) {
            *at = t->next;
            amqp_topo_free(t);
        } else {
            a->topo_tail = t;
            at = &t->next;
        }
    }
}

void amqp_topo_free_all(hp_amqp_conn_t *a)
{
    while (a->topo) {
        amqp_topo_t *t = a->topo;
        a->topo = t->next;
        amqp_topo_free(t);
    }
    a->topo_tail = NULL;
}

/* A server-named queue came back with another name: what names it
 * follows. */
static void topo_rename(hp_amqp_conn_t *a, amqp_topo_t *q, hp_amqp_bytes_t name)
{
    if (name.len > 255)
        return;
    char old[256];
    snprintf(old, sizeof old, "%s", q->s[0]);
    /* Renamed where it is: amqp_topo_commit would link it again at the
     * tail, cutting off what follows it (its bindings among them). */
    char *qn = hp_malloc(name.len + 1u);
    if (!qn)
        return;
    if (name.len)
        memcpy(qn, name.ptr, name.len);
    qn[name.len] = '\0';
    hp_free(q->s[0]);
    q->s[0] = qn;
    for (amqp_topo_t *t = a->topo; t; t = t->next) {
        if (t->kind == TOPO_BINDING && !strcmp(t->s[0], old)) {
            char *n = dup_str(q->s[0]);
            if (n) {
                hp_free(t->s[0]);
                t->s[0] = n;
            }
        }
    }
    for (uint32_t i = 1; a->chans && i <= a->channel_max; i++) {
        hp_amqp_channel_t *ch = a->chans[i];
        for (amqp_consumer_t *k = ch ? ch->consumers : NULL; k; k = k->next) {
            if (!strcmp(k->queue, old))
                snprintf(k->queue, sizeof k->queue, "%s", q->s[0]);
        }
    }
}

/* ---- losing the connection ---- */

/* Refusals a new attempt would meet again. */
static bool permanent(const hp_amqp_conn_t *a)
{
    return a->reply_code == HP_AMQP_ACCESS_REFUSED || a->reply_code == HP_AMQP_NOT_ALLOWED ||
           a->err == -EPROTONOSUPPORT || a->err == -EINVAL || a->recover_failed;
}

/* The delay before attempt `n` (from 0): doubling from recover_min_ms up
 * to recover_max_ms, with full jitter, at least 1 ms. */
static uint64_t backoff(hp_amqp_conn_t *a)
{
    uint64_t lo = a->cfg.recover_min_ms ? a->cfg.recover_min_ms : 1;
    uint64_t hi = a->cfg.recover_max_ms > lo ? a->cfg.recover_max_ms : lo;
    uint64_t cap = lo;
    for (uint32_t i = 0; i < a->attempt && cap < hi; i++)
        cap *= 2;
    if (cap > hi)
        cap = hi;
    /* xorshift64: a jitter, not a secret */
    a->rng ^= a->rng << 13;
    a->rng ^= a->rng >> 7;
    a->rng ^= a->rng << 17;
    uint64_t d = a->rng % (cap + 1);
    return d ? d : 1;
}

/* A round: the addresses in turn from the one after the last dialed
 * (the node lost, or the round before's last), each at once after the
 * one before failed (client.c), until one answers or each was tried. */
static void attempt(hp_timer_t *t)
{
    hp_amqp_conn_t *a = HP_CONTAINER_OF(t, hp_amqp_conn_t, retry);
    amqp_enter(a);
    a->attempt++;
    a->tried = 0;
    if (amqp_dial(a, true) < 0 && !amqp_recover_lost(a))
        amqp_report_closed(a);
    amqp_leave(a);
}

bool amqp_recover_lost(hp_amqp_conn_t *a)
{
    /* A worker that is stopping does not reconnect: its connections are
     * closing for good. */
    if (!a->cfg.recover || !a->ever_ready || a->closing_by_user || permanent(a) ||
        a->worker->draining || a->worker->loop.stopping)
        return false;
    /* On every loss, the first or one during a recovery: what waits for
     * a reply fails, and a half-done recovery's steps are forgotten (they
     * will get no reply, and must not take the next attempt's). */
    hp_amqp_result_t lost = {.err = -ECONNRESET};
    for (uint32_t i = 1; a->chans && i <= a->channel_max; i++) {
        if (a->chans[i])
            amqp_channel_lost(a->chans[i], &lost);
    }
    /* A callback just run (a publish failed by the loss) closed it. */
    if (a->closing_by_user)
        return false;
    if (!a->recovering) {
        a->recovering = true;
        a->attempt = 0;
        hp_amqp_result_t r = amqp_close_result(a);
        if (!r.err && !r.reply_code)
            r.err = -ECONNRESET;
        hp_log_write(HP_LOG_WARN, "amqp: %s: connection lost (%u %s): recovering",
                     amqp_where(a), r.reply_code,
                     r.reply_code ? a->reply_text : strerror(-r.err));
        if (!a->rng)
            a->rng = hp_loop_clock_ns(&a->worker->loop) | 1;
        a->cb(a, HP_AMQP_EV_RECOVERING, &r, a->arg);
        if (a->closing_by_user)
            return false; /* closed from the callback */
    } else if (a->cfg.recover_tries && a->attempt >= a->cfg.recover_tries) {
        hp_log_write(HP_LOG_ERROR, "amqp: %s: giving up after %u attempts", amqp_where(a),
                     a->attempt);
        return false;
    }
    a->state = AMQP_DIALING;
    hp_timer_init(&a->retry, attempt);
    hp_loop_timer_arm(&a->worker->loop, &a->retry, backoff(a));
    return true;
}

/* ---- the way back ---- */

/* The lowest open channel carries the topology. */
static hp_amqp_channel_t *first_channel(hp_amqp_conn_t *a)
{
    for (uint32_t i = 1; a->chans && i <= a->channel_max; i++) {
        if (a->chans[i] && a->chans[i]->state == CH_RECOVERING)
            return a->chans[i];
    }
    return NULL;
}

static void step(hp_amqp_conn_t *a, hp_amqp_channel_t *ch, const hp_amqp_method_t *m,
                 uint32_t reply, amqp_topo_t *topo)
{
    if (a->recover_failed)
        return;
    if (amqp_channel_recover_call(ch, m, reply, topo) < 0) {
        a->recover_failed = true;
        amqp_close_now(a);
        return;
    }
    a->recover_pending++;
}

static void phase1(hp_amqp_conn_t *a)
{
    a->recover_phase = 1;
    a->recover_pending = 0;
    for (uint32_t i = 1; a->chans && i <= a->channel_max; i++) {
        hp_amqp_channel_t *ch = a->chans[i];
        if (ch && ch->state == CH_RECOVERING) {
            hp_amqp_method_t m = {.id = HP_AMQP_CHANNEL_OPEN};
            step(a, ch, &m, HP_AMQP_CHANNEL_OPEN_OK, NULL);
        }
    }
    hp_amqp_channel_t *ch = first_channel(a);
    for (amqp_topo_t *t = a->topo; ch && t; t = t->next) {
        hp_amqp_method_t m = {0};
        if (t->kind == TOPO_EXCHANGE) {
            m.id = HP_AMQP_EXCHANGE_DECLARE;
            m.exchange_declare.exchange = hp_amqp_str(t->s[0]);
            m.exchange_declare.type = hp_amqp_str(t->s[1]);
            m.exchange_declare.durable = t->flags & HP_AMQP_DURABLE;
            m.exchange_declare.auto_delete = t->flags & HP_AMQP_AUTO_DELETE;
            m.exchange_declare.internal = t->flags & HP_AMQP_INTERNAL;
            m.exchange_declare.arguments = t->args;
            step(a, ch, &m, HP_AMQP_EXCHANGE_DECLARE_OK, NULL);
        } else if (t->kind == TOPO_QUEUE) {
            m.id = HP_AMQP_QUEUE_DECLARE;
            m.queue_declare.queue = hp_amqp_str(t->s[1]); /* "" again: a new name */
            m.queue_declare.durable = t->flags & HP_AMQP_DURABLE;
            m.queue_declare.exclusive = t->flags & HP_AMQP_EXCLUSIVE;
            m.queue_declare.auto_delete = t->flags & HP_AMQP_AUTO_DELETE;
            m.queue_declare.arguments = t->args;
            step(a, ch, &m, HP_AMQP_QUEUE_DECLARE_OK, t);
        }
    }
}

static void phase2(hp_amqp_conn_t *a)
{
    a->recover_phase = 2;
    a->recover_pending = 0;
    hp_amqp_channel_t *first = first_channel(a);
    for (amqp_topo_t *t = a->topo; first && t; t = t->next) {
        if (t->kind != TOPO_BINDING)
            continue;
        hp_amqp_method_t m = {.id = HP_AMQP_QUEUE_BIND};
        m.queue_bind.queue = hp_amqp_str(t->s[0]);
        m.queue_bind.exchange = hp_amqp_str(t->s[1]);
        m.queue_bind.routing_key = hp_amqp_str(t->s[2]);
        m.queue_bind.arguments = t->args;
        step(a, first, &m, HP_AMQP_QUEUE_BIND_OK, NULL);
    }
    for (uint32_t i = 1; a->chans && i <= a->channel_max; i++) {
        hp_amqp_channel_t *ch = a->chans[i];
        if (!ch || ch->state != CH_RECOVERING)
            continue;
        if (ch->qos_set) {
            hp_amqp_method_t m = {.id = HP_AMQP_BASIC_QOS};
            m.basic_qos.prefetch_count = ch->prefetch;
            m.basic_qos.global = ch->qos_global;
            step(a, ch, &m, HP_AMQP_BASIC_QOS_OK, NULL);
        }
        if (ch->confirm) {
            hp_amqp_method_t m = {.id = HP_AMQP_CONFIRM_SELECT};
            step(a, ch, &m, HP_AMQP_CONFIRM_SELECT_OK, NULL);
        }
        for (amqp_consumer_t *k = ch->consumers; k; k = k->next) {
            hp_amqp_method_t m = {.id = HP_AMQP_BASIC_CONSUME};
            m.basic_consume.queue = hp_amqp_str(k->queue);
            m.basic_consume.consumer_tag = (hp_amqp_bytes_t){k->tag, k->tag_len};
            m.basic_consume.no_local = k->flags & HP_AMQP_NO_LOCAL;
            m.basic_consume.no_ack = k->flags & HP_AMQP_NO_ACK;
            m.basic_consume.exclusive = k->flags & HP_AMQP_EXCLUSIVE;
            m.basic_consume.arguments = k->args;
            step(a, ch, &m, HP_AMQP_BASIC_CONSUME_OK, NULL);
        }
    }
}

static void finish(hp_amqp_conn_t *a)
{
    a->recover_phase = 0;
    a->recovering = false;
    a->attempt = 0;
    a->stats.recoveries++;
    for (uint32_t i = 1; a->chans && i <= a->channel_max && !a->dead; i++) {
        hp_amqp_channel_t *ch = a->chans[i];
        if (ch && ch->state == CH_RECOVERING)
            amqp_channel_recovered(ch);
    }
    if (a->dead || !a->c)
        return;
    hp_log_write(HP_LOG_INFO, "amqp: %s: recovered", amqp_where(a));
    a->cb(a, HP_AMQP_EV_RECOVERED, &(hp_amqp_result_t){0}, a->arg);
    if (!a->dead)
        amqp_channel_writable(a);
}

/* Goes on to the next phase once this one is answered. */
static void advance(hp_amqp_conn_t *a)
{
    while (!a->recover_failed && !a->dead && a->recover_pending == 0) {
        if (a->recover_phase == 1)
            phase2(a);
        else {
            finish(a);
            return;
        }
    }
}

void amqp_recover_ready(hp_amqp_conn_t *a)
{
    a->recover_failed = false;
    /* The whole recovery has the connect timeout as its deadline. */
    if (a->cfg.connect_timeout_ms)
        hp_conn_set_timer(a->c, a->cfg.connect_timeout_ms);
    phase1(a);
    advance(a);
}

void amqp_recover_step(hp_amqp_channel_t *ch, amqp_topo_t *topo, const hp_amqp_method_t *m,
                       const hp_amqp_result_t *r)
{
    hp_amqp_conn_t *a = ch->conn;
    if (a->recover_failed || !a->recovering)
        return;
    if (r) {
        /* A step the broker refused: the recovery ends, with its reason. */
        a->recover_failed = true;
        a->err = r->err;
        a->reply_code = r->reply_code;
        a->class_id = r->class_id;
        a->method_id = r->method_id;
        snprintf(a->reply_text, sizeof a->reply_text, "recovery failed: %.*s",
                 (int)r->reply_text.len, (const char *)r->reply_text.ptr);
        hp_log_write(HP_LOG_ERROR, "amqp: %s: %s (%u)", amqp_where(a),
                     a->reply_text, r->reply_code);
        amqp_close_now(a);
        return;
    }
    if (m && m->id == HP_AMQP_QUEUE_DECLARE_OK && topo && !*topo->s[1])
        topo_rename(a, topo, m->queue_declare_ok.queue);
    if (a->recover_pending)
        a->recover_pending--;
    if (a->recover_pending == 0) {
        if (a->c)
            hp_conn_set_timer(a->c, 0);
        advance(a);
        if (!a->recovering && a->c && !a->dead)
            amqp_arm_heartbeat(a);
    }
}

void amqp_recover_stop(hp_amqp_conn_t *a)
{
    hp_loop_timer_cancel(&a->worker->loop, &a->retry);
    a->recovering = false;
    amqp_forget_reason(a);
    amqp_close_soon(a);
}
