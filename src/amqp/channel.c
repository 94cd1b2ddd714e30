/*
 * channel.c - AMQP channels: opening and closing them, the calls (declare,
 * bind, qos, consume, get...) and their replies, and a channel's life
 * through a lost connection. Publishing is in publish.c, the messages the
 * broker sends in message.c.
 *
 * Central structures: per channel, a FIFO of calls waiting for their reply
 * (the broker answers a channel's synchronous methods in the order they
 * were sent, so the head is always the one a reply completes) and a list
 * of consumers by tag.
 *
 * Invariants:
 *  - ops are sent before they are queued: a call that could not be sent
 *    fails at once and is never waited for;
 *  - after a user callback returns, the channel may have been dropped
 *    (state CH_CLOSED) or the connection closed (a->dead): the code
 *    checks before touching either again; memory stays valid until the
 *    client leaves its own code (the graveyard).
 */
#include "hotpath/amqp.h"

#include <errno.h>
#include <string.h>

#include "client_int.h"
#include "hotpath/alloc.h"
#include "hotpath/log.h"

/* ---- pending calls ---- */

static amqp_op_t *op_new(uint32_t reply, uint8_t kind, hp_amqp_done_cb cb, void *arg)
{
    amqp_op_t *op = hp_calloc(1, sizeof *op);
    if (op) {
        op->reply = reply;
        op->kind = kind;
        op->cb = cb;
        op->arg = arg;
    }
    return op;
}

static void consumer_free(amqp_consumer_t *k)
{
    if (k) {
        hp_free((void *)k->args.ptr);
        hp_free(k);
    }
}

void amqp_op_free(amqp_op_t *op)
{
    amqp_topo_free(op->topo);
    for (int i = 0; i < 3; i++)
        hp_free(op->forget_s[i]);
    consumer_free(op->consumer);
    hp_free(op);
}

static void op_link(hp_amqp_channel_t *ch, amqp_op_t *op)
{
    if (ch->ops_tail)
        ch->ops_tail->next = op;
    else
        ch->ops = op;
    ch->ops_tail = op;
}

amqp_op_t *amqp_op_pop(hp_amqp_channel_t *ch)
{
    amqp_op_t *op = ch->ops;
    if (op) {
        ch->ops = op->next;
        if (!ch->ops)
            ch->ops_tail = NULL;
    }
    return op;
}

/* Sends `m` and queues the call waiting for `reply` (*out: the call, for
 * the caller to complete its fields). Returns 0 or -errno: then nothing
 * was sent or queued. */
static int call(hp_amqp_channel_t *ch, const hp_amqp_method_t *m, uint32_t reply, uint8_t kind,
                hp_amqp_done_cb cb, void *arg, amqp_op_t **out)
{
    if (ch->state == CH_RECOVERING)
        return -EAGAIN;
    if (ch->state != CH_OPENING && ch->state != CH_OPEN)
        return -ENOTCONN;
    /* Allocated first: once the method is out, its reply must find it. */
    amqp_op_t *op = op_new(reply, kind, cb, arg);
    if (!op)
        return -ENOMEM;
    int r = amqp_send_method(ch->conn, ch->id, m);
    if (r < 0) {
        amqp_op_free(op);
        return r;
    }
    op_link(ch, op);
    if (out)
        *out = op;
    return 0;
}

/* call() for a declare, bind, delete or unbind: `topo` (owned from here,
 * on every path) is what a success records, `forget` and s0..s2 what a
 * success takes out. */
static int call_topo(hp_amqp_channel_t *ch, const hp_amqp_method_t *m, uint32_t reply,
                     uint8_t kind, hp_amqp_done_cb cb, void *arg, amqp_topo_t *topo,
                     uint8_t forget, const char *s0, const char *s1, const char *s2)
{
    amqp_op_t *op;
    int r = call(ch, m, reply, kind, cb, arg, &op);
    if (r < 0) {
        amqp_topo_free(topo);
        return r;
    }
    op->topo = topo;
    if (forget) {
        const char *src[3] = {s0, s1, s2};
        for (int i = 0; i < 3; i++) {
            size_t n = src[i] ? strlen(src[i]) : 0;
            if ((op->forget_s[i] = hp_malloc(n + 1)) != NULL) {
                memcpy(op->forget_s[i], src[i] ? src[i] : "", n);
                op->forget_s[i][n] = '\0';
            }
        }
        op->forget = op->forget_s[0] && op->forget_s[1] && op->forget_s[2] ? forget : 0;
    }
    return 0;
}

int amqp_channel_recover_call(hp_amqp_channel_t *ch, const hp_amqp_method_t *m, uint32_t reply,
                              amqp_topo_t *topo)
{
    amqp_op_t *op = op_new(reply, OP_RECOVER, NULL, NULL);
    if (!op)
        return -ENOMEM;
    int r = amqp_send_method(ch->conn, ch->id, m);
    if (r < 0) {
        amqp_op_free(op);
        return r;
    }
    op->recover_topo = topo;
    op_link(ch, op);
    return 0;
}

/* ---- dropping ---- */

void amqp_channel_drop(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, bool notify)
{
    if (ch->state == CH_CLOSED)
        return;
    hp_amqp_conn_t *a = ch->conn;
    amqp_enter(a);
    ch->state = CH_CLOSED;
    a->chans[ch->id] = NULL;
    a->nchans--;
    ch->next_dead = a->graveyard;
    a->graveyard = ch;
    /* Calls first, in order, then the publishes nobody will confirm. */
    amqp_op_t *op;
    while ((op = amqp_op_pop(ch)) != NULL) {
        if (op->kind == OP_RECOVER)
            amqp_recover_step(ch, op->recover_topo, NULL, r);
        else if (op->cb)
            op->cb(op->kind == OP_CHANNEL_OPEN ? NULL : ch, r, op->arg);
        amqp_op_free(op);
    }
    for (uint64_t s = ch->base; ch->ring && s < ch->next_seq; s++)
        amqp_confirm_resolve(ch, s, r->err ? r->err : -ECANCELED);
    ch->base = ch->next_seq;
    amqp_publish_queue_fail(ch, r->err ? r->err : -ECANCELED);
    if (notify && ch->on_close)
        ch->on_close(ch, r, ch->on_close_arg);
    amqp_leave(a);
}

void amqp_channel_bury(hp_amqp_conn_t *a)
{
    while (a->graveyard) {
        hp_amqp_channel_t *ch = a->graveyard;
        a->graveyard = ch->next_dead;
        amqp_consumer_t *k = ch->consumers;
        while (k) {
            amqp_consumer_t *next = k->next;
            consumer_free(k);
            k = next;
        }
        hp_free(ch->in.copy);
        for (uint32_t i = 0; ch->ring && i < ch->window; i++)
            hp_free(ch->ring[i].frames);
        hp_free(ch->ring);
        hp_free(ch);
    }
}

/* ---- losing the connection and coming back ---- */

void amqp_channel_lost(hp_amqp_channel_t *ch, const hp_amqp_result_t *r)
{
    hp_amqp_conn_t *a = ch->conn;
    if (ch->state != CH_OPEN && ch->state != CH_RECOVERING) {
        /* Never opened, or closing: it ends here. */
        amqp_channel_drop(ch, r, false);
        return;
    }
    amqp_enter(a);
    ch->state = CH_RECOVERING;
    amqp_channel_lost_input(ch);
    /* Deliveries of the lost connection can no longer be acknowledged:
     * the broker has put them back. Later tags are shifted past them. */
    ch->tag_offset = ch->max_tag;
    amqp_op_t *op;
    while ((op = amqp_op_pop(ch)) != NULL) {
        if (op->kind != OP_RECOVER && op->cb)
            op->cb(ch, r, op->arg);
        amqp_op_free(op);
        if (amqp_channel_gone(ch))
            break;
    }
    if (!amqp_channel_gone(ch) && ch->ring && a->cfg.unconfirmed != HP_AMQP_REPUBLISH) {
        for (uint64_t s = ch->base; s < ch->next_seq && !amqp_channel_gone(ch); s++)
            amqp_confirm_resolve(ch, s, r->err);
        if (!amqp_channel_gone(ch))
            amqp_confirm_advance(ch);
        amqp_publish_queue_fail(ch, r->err); /* never sent: they fail as the window's do */
    }
    amqp_leave(a);
}

void amqp_channel_recovered(hp_amqp_channel_t *ch)
{
    ch->state = CH_OPEN;
    amqp_confirm_republish(ch);
}

/* ---- replies ---- */

amqp_consumer_t *amqp_consumer_find(hp_amqp_channel_t *ch, hp_amqp_bytes_t tag,
                                   amqp_consumer_t ***link)
{
    amqp_consumer_t **at = &ch->consumers;
    for (; *at; at = &(*at)->next) {
        if ((*at)->tag_len == tag.len && memcmp((*at)->tag, tag.ptr, tag.len) == 0) {
            if (link)
                *link = at;
            return *at;
        }
    }
    return NULL;
}

/* Completes the call at the head with the reply `m`. */
static int reply_in(hp_amqp_channel_t *ch, const hp_amqp_method_t *m)
{
    hp_amqp_conn_t *a = ch->conn;
    amqp_op_t *op = ch->ops;
    if (!op || (op->reply != m->id && op->reply2 != m->id)) {
        amqp_fail(a, HP_AMQP_COMMAND_INVALID, "a reply to no call");
        return -1;
    }
    amqp_op_pop(ch);
    hp_amqp_result_t r = {0};
    if (op->topo) {
        amqp_topo_commit(a, op->topo, m->id == HP_AMQP_QUEUE_DECLARE_OK
                                          ? m->queue_declare_ok.queue
                                          : (hp_amqp_bytes_t){NULL, 0});
        op->topo = NULL;
    }
    if (op->forget)
        amqp_topo_forget(a, op->forget, op->forget_s);
    switch (op->kind) {
    case OP_RECOVER:
        amqp_recover_step(ch, op->recover_topo, m, NULL);
        amqp_op_free(op);
        return 0;
    case OP_QOS:
        ch->prefetch = op->prefetch;
        ch->qos_global = op->global;
        ch->qos_set = true;
        break;
    case OP_CHANNEL_OPEN:
        ch->state = CH_OPEN;
        break;
    case OP_QUEUE_DECLARE:
        r.queue = m->queue_declare_ok.queue;
        r.message_count = m->queue_declare_ok.message_count;
        r.consumer_count = m->queue_declare_ok.consumer_count;
        break;
    case OP_QUEUE_COUNT:
        r.message_count = m->id == HP_AMQP_QUEUE_PURGE_OK ? m->queue_purge_ok.message_count
                                                          : m->queue_delete_ok.message_count;
        break;
    case OP_CONSUME: {
        /* The consumer was made with the call: it gets its tag now. */
        hp_amqp_bytes_t tag = m->basic_consume_ok.consumer_tag;
        amqp_consumer_t *k = op->consumer;
        op->consumer = NULL;
        if (tag.len > sizeof k->tag) {
            consumer_free(k);
            amqp_op_free(op);
            amqp_fail(a, HP_AMQP_SYNTAX_ERROR, "a consumer tag longer than 255 bytes");
            return -1;
        }
        k->tag_len = (uint8_t)tag.len;
        memcpy(k->tag, tag.ptr, tag.len);
        k->next = ch->consumers;
        ch->consumers = k;
        r.consumer_tag = tag;
        break;
    }
    case OP_CANCEL: {
        amqp_consumer_t **link;
        amqp_consumer_t *k = amqp_consumer_find(ch, m->basic_cancel_ok.consumer_tag, &link);
        if (k) {
            *link = k->next;
            consumer_free(k);
        }
        r.consumer_tag = m->basic_cancel_ok.consumer_tag;
        break;
    }
    case OP_GET: /* basic.get-empty; get-ok comes as a message */
        if (op->on_msg)
            op->on_msg(ch, NULL, op->msg_arg);
        amqp_op_free(op);
        return 0;
    case OP_CHANNEL_CLOSE: {
        hp_amqp_done_cb cb = op->cb;
        void *arg = op->arg;
        amqp_op_free(op);
        hp_amqp_result_t gone_r = {.err = -ECANCELED};
        amqp_channel_drop(ch, &gone_r, false);
        if (cb)
            cb(ch, &r, arg);
        return 0;
    }
    default:
        break;
    }
    if (op->cb)
        op->cb(ch, &r, op->arg);
    amqp_op_free(op);
    return 0;
}

/* channel.close from the broker: it refused something on this channel. */
static void closed_by_broker(hp_amqp_channel_t *ch, const hp_amqp_channel_close_t *cl)
{
    hp_amqp_conn_t *a = ch->conn;
    hp_log_write(HP_LOG_WARN, "amqp: channel %u closed by the broker: %u %.*s", ch->id,
                 cl->reply_code, (int)cl->reply_text.len, (const char *)cl->reply_text.ptr);
    hp_amqp_method_t ok = {.id = HP_AMQP_CHANNEL_CLOSE_OK};
    amqp_send_method(a, ch->id, &ok);
    hp_amqp_result_t r = {.err = -EPROTO,
                          .reply_code = cl->reply_code,
                          .class_id = cl->class_id,
                          .method_id = cl->method_id,
                          .reply_text = cl->reply_text};
    amqp_channel_drop(ch, &r, true);
}

int amqp_channel_method(hp_amqp_channel_t *ch, const hp_amqp_method_t *m)
{
    hp_amqp_conn_t *a = ch->conn;
    if (ch->in.method) {
        amqp_fail(a, HP_AMQP_UNEXPECTED_FRAME, "a method in the middle of a message");
        return -1;
    }
    if (ch->state == CH_CLOSING && m->id != HP_AMQP_CHANNEL_CLOSE &&
        m->id != HP_AMQP_CHANNEL_CLOSE_OK)
        return 0; /* spec: discarded once we sent channel.close */
    switch (m->id) {
    case HP_AMQP_CHANNEL_CLOSE:
        closed_by_broker(ch, &m->channel_close);
        return 0;
    case HP_AMQP_CHANNEL_FLOW: {
        hp_amqp_method_t ok = {.id = HP_AMQP_CHANNEL_FLOW_OK};
        ok.channel_flow_ok.active = m->channel_flow.active;
        amqp_send_method(a, ch->id, &ok);
        return 0;
    }
    case HP_AMQP_BASIC_ACK:
        return amqp_confirm_in(ch, m->basic_ack.delivery_tag, m->basic_ack.multiple, HP_AMQP_ACKED);
    case HP_AMQP_BASIC_NACK:
        return amqp_confirm_in(ch, m->basic_nack.delivery_tag, m->basic_nack.multiple, HP_AMQP_NACKED);
    case HP_AMQP_BASIC_CANCEL: {
        /* The broker cancelled a consumer (its queue went away). */
        amqp_consumer_t **link;
        amqp_consumer_t *k = amqp_consumer_find(ch, m->basic_cancel.consumer_tag, &link);
        if (!m->basic_cancel.no_wait) {
            hp_amqp_method_t ok = {.id = HP_AMQP_BASIC_CANCEL_OK};
            ok.basic_cancel_ok.consumer_tag = m->basic_cancel.consumer_tag;
            amqp_send_method(a, ch->id, &ok);
        }
        if (k) {
            *link = k->next;
            if (k->on_msg)
                k->on_msg(ch, NULL, k->arg);
            consumer_free(k);
        }
        return 0;
    }
    default:
        return reply_in(ch, m);
    }
}

/* ---- the public calls ---- */

int hp_amqp_channel_open(hp_amqp_conn_t *a, hp_amqp_done_cb cb, void *arg,
                         hp_amqp_channel_t **out)
{
    if (a->recovering)
        return -EAGAIN;
    if (a->state != AMQP_READY)
        return -ENOTCONN;
    if (a->nchans >= a->channel_max)
        return -EMFILE;
    uint16_t id = a->next_id;
    while (a->chans[id]) {
        id = id >= a->channel_max ? 1 : (uint16_t)(id + 1);
    }
    a->next_id = id >= a->channel_max ? 1 : (uint16_t)(id + 1);
    hp_amqp_channel_t *ch = hp_calloc(1, sizeof *ch);
    if (!ch)
        return -ENOMEM;
    ch->conn = a;
    ch->id = id;
    ch->state = CH_OPENING;
    a->chans[id] = ch;
    a->nchans++;
    hp_amqp_method_t m = {.id = HP_AMQP_CHANNEL_OPEN};
    int r = call(ch, &m, HP_AMQP_CHANNEL_OPEN_OK, OP_CHANNEL_OPEN, cb, arg, NULL);
    if (r < 0) {
        a->chans[id] = NULL;
        a->nchans--;
        hp_free(ch);
        return r;
    }
    *out = ch;
    return 0;
}

int hp_amqp_channel_close(hp_amqp_channel_t *ch, hp_amqp_done_cb cb, void *arg)
{
    hp_amqp_method_t m = {.id = HP_AMQP_CHANNEL_CLOSE};
    m.channel_close.reply_code = HP_AMQP_REPLY_SUCCESS;
    m.channel_close.reply_text = hp_amqp_str("closed by the client");
    if (ch->state == CH_RECOVERING)
        return -EAGAIN;
    if (ch->state != CH_OPENING && ch->state != CH_OPEN)
        return -ENOTCONN;
    hp_amqp_conn_t *a = ch->conn;
    amqp_enter(a);
    int r = amqp_send_method(a, ch->id, &m);
    if (r == 0) {
        ch->state = CH_CLOSING;
        /* Nothing sent before will be answered now (spec: the broker's
         * replies are discarded until close-ok): fail it at once, and
         * wait for close-ok alone. */
        amqp_op_t *op;
        hp_amqp_result_t cancelled = {.err = -ECANCELED};
        while ((op = amqp_op_pop(ch)) != NULL) {
            if (op->cb)
                op->cb(op->kind == OP_CHANNEL_OPEN ? NULL : ch, &cancelled, op->arg);
            amqp_op_free(op);
            if (amqp_channel_gone(ch))
                break;
        }
        if (!amqp_channel_gone(ch)) {
            amqp_op_t *done = op_new(HP_AMQP_CHANNEL_CLOSE_OK, OP_CHANNEL_CLOSE, cb, arg);
            if (done) {
                op_link(ch, done);
            } else {
                hp_amqp_result_t nomem = {.err = -ENOMEM};
                amqp_channel_drop(ch, &nomem, false);
            }
        }
    }
    amqp_leave(a);
    return r;
}

void hp_amqp_channel_on_close(hp_amqp_channel_t *ch, hp_amqp_done_cb cb, void *arg)
{
    ch->on_close = cb;
    ch->on_close_arg = arg;
}

void hp_amqp_channel_on_return(hp_amqp_channel_t *ch, hp_amqp_delivery_cb cb, void *arg)
{
    ch->on_return = cb;
    ch->on_return_arg = arg;
}

hp_amqp_conn_t *hp_amqp_channel_conn(const hp_amqp_channel_t *ch)
{
    return ch->conn;
}

uint16_t hp_amqp_channel_id(const hp_amqp_channel_t *ch)
{
    return ch->id;
}

int hp_amqp_exchange_declare(hp_amqp_channel_t *ch, const char *ex, const char *type,
                             unsigned flags, hp_amqp_bytes_t args, hp_amqp_done_cb cb, void *arg)
{
    hp_amqp_method_t m = {.id = HP_AMQP_EXCHANGE_DECLARE};
    hp_amqp_exchange_declare_t *d = &m.exchange_declare;
    d->exchange = amqp_name(ex);
    d->type = amqp_name(type);
    d->passive = flags & HP_AMQP_PASSIVE;
    d->durable = flags & HP_AMQP_DURABLE;
    d->auto_delete = flags & HP_AMQP_AUTO_DELETE;
    d->internal = flags & HP_AMQP_INTERNAL;
    d->arguments = args;
    if (d->passive) /* only a check: nothing to declare again */
        return call(ch, &m, HP_AMQP_EXCHANGE_DECLARE_OK, OP_PLAIN, cb, arg, NULL);
    amqp_topo_t *t = amqp_topo_new(TOPO_EXCHANGE, flags, ex, type, NULL, args);
    if (!t)
        return -ENOMEM;
    return call_topo(ch, &m, HP_AMQP_EXCHANGE_DECLARE_OK, OP_PLAIN, cb, arg, t, 0, NULL, NULL,
                     NULL);
}

int hp_amqp_exchange_delete(hp_amqp_channel_t *ch, const char *ex, unsigned flags,
                            hp_amqp_done_cb cb, void *arg)
{
    hp_amqp_method_t m = {.id = HP_AMQP_EXCHANGE_DELETE};
    m.exchange_delete.exchange = amqp_name(ex);
    m.exchange_delete.if_unused = flags & HP_AMQP_IF_UNUSED;
    return call_topo(ch, &m, HP_AMQP_EXCHANGE_DELETE_OK, OP_PLAIN, cb, arg, NULL, TOPO_EXCHANGE,
                     ex, NULL, NULL);
}

int hp_amqp_queue_declare(hp_amqp_channel_t *ch, const char *queue, unsigned flags,
                          hp_amqp_bytes_t args, hp_amqp_done_cb cb, void *arg)
{
    hp_amqp_method_t m = {.id = HP_AMQP_QUEUE_DECLARE};
    hp_amqp_queue_declare_t *d = &m.queue_declare;
    d->queue = amqp_name(queue);
    d->passive = flags & HP_AMQP_PASSIVE;
    d->durable = flags & HP_AMQP_DURABLE;
    d->exclusive = flags & HP_AMQP_EXCLUSIVE;
    d->auto_delete = flags & HP_AMQP_AUTO_DELETE;
    d->arguments = args;
    if (d->passive)
        return call(ch, &m, HP_AMQP_QUEUE_DECLARE_OK, OP_QUEUE_DECLARE, cb, arg, NULL);
    /* s[0]: the queue's name (the broker's, once it answers), s[1]: the
     * name asked for ("" asks the broker for one again on recovery). */
    amqp_topo_t *t = amqp_topo_new(TOPO_QUEUE, flags, queue, queue, NULL, args);
    if (!t)
        return -ENOMEM;
    return call_topo(ch, &m, HP_AMQP_QUEUE_DECLARE_OK, OP_QUEUE_DECLARE, cb, arg, t, 0, NULL,
                     NULL, NULL);
}

int hp_amqp_queue_bind(hp_amqp_channel_t *ch, const char *queue, const char *ex,
                       const char *key, hp_amqp_bytes_t args, hp_amqp_done_cb cb, void *arg)
{
    hp_amqp_method_t m = {.id = HP_AMQP_QUEUE_BIND};
    m.queue_bind.queue = amqp_name(queue);
    m.queue_bind.exchange = amqp_name(ex);
    m.queue_bind.routing_key = amqp_name(key);
    m.queue_bind.arguments = args;
    amqp_topo_t *t = amqp_topo_new(TOPO_BINDING, 0, queue, ex, key, args);
    if (!t)
        return -ENOMEM;
    return call_topo(ch, &m, HP_AMQP_QUEUE_BIND_OK, OP_PLAIN, cb, arg, t, 0, NULL, NULL, NULL);
}

int hp_amqp_queue_unbind(hp_amqp_channel_t *ch, const char *queue, const char *ex,
                         const char *key, hp_amqp_bytes_t args, hp_amqp_done_cb cb, void *arg)
{
    hp_amqp_method_t m = {.id = HP_AMQP_QUEUE_UNBIND};
    m.queue_unbind.queue = amqp_name(queue);
    m.queue_unbind.exchange = amqp_name(ex);
    m.queue_unbind.routing_key = amqp_name(key);
    m.queue_unbind.arguments = args;
    return call_topo(ch, &m, HP_AMQP_QUEUE_UNBIND_OK, OP_PLAIN, cb, arg, NULL, TOPO_BINDING, queue,
                     ex, key);
}

int hp_amqp_queue_purge(hp_amqp_channel_t *ch, const char *queue, hp_amqp_done_cb cb, void *arg)
{
    hp_amqp_method_t m = {.id = HP_AMQP_QUEUE_PURGE};
    m.queue_purge.queue = amqp_name(queue);
    return call(ch, &m, HP_AMQP_QUEUE_PURGE_OK, OP_QUEUE_COUNT, cb, arg, NULL);
}

int hp_amqp_queue_delete(hp_amqp_channel_t *ch, const char *queue, unsigned flags,
                         hp_amqp_done_cb cb, void *arg)
{
    hp_amqp_method_t m = {.id = HP_AMQP_QUEUE_DELETE};
    m.queue_delete.queue = amqp_name(queue);
    m.queue_delete.if_unused = flags & HP_AMQP_IF_UNUSED;
    m.queue_delete.if_empty = flags & HP_AMQP_IF_EMPTY;
    return call_topo(ch, &m, HP_AMQP_QUEUE_DELETE_OK, OP_QUEUE_COUNT, cb, arg, NULL, TOPO_QUEUE,
                     queue, NULL, NULL);
}

int hp_amqp_qos(hp_amqp_channel_t *ch, uint16_t prefetch, bool global, hp_amqp_done_cb cb,
                void *arg)
{
    hp_amqp_method_t m = {.id = HP_AMQP_BASIC_QOS};
    m.basic_qos.prefetch_count = prefetch;
    m.basic_qos.global = global;
    amqp_op_t *op;
    int r = call(ch, &m, HP_AMQP_BASIC_QOS_OK, OP_QOS, cb, arg, &op);
    if (r == 0) {
        op->prefetch = prefetch;
        op->global = global;
    }
    return r;
}

int hp_amqp_confirm_select(hp_amqp_channel_t *ch, uint32_t window, hp_amqp_done_cb cb, void *arg)
{
    if (ch->confirm)
        return -EALREADY;
    if (window == 0)
        window = HP_AMQP_CONFIRM_WINDOW;
    amqp_confirm_t *ring = hp_calloc(window, sizeof *ring);
    if (!ring)
        return -ENOMEM;
    hp_amqp_method_t m = {.id = HP_AMQP_CONFIRM_SELECT};
    int r = call(ch, &m, HP_AMQP_CONFIRM_SELECT_OK, OP_CONFIRM, cb, arg, NULL);
    if (r < 0) {
        hp_free(ring);
        return r;
    }
    /* The broker numbers the messages published after the select from 1,
     * whether or not its select-ok has arrived. */
    ch->ring = ring;
    ch->window = window;
    ch->confirm = true;
    ch->base = ch->next_seq = 1;
    ch->user_seq = 1;
    return 0;
}

int hp_amqp_consume(hp_amqp_channel_t *ch, const char *queue, const char *tag, unsigned flags,
                    hp_amqp_bytes_t args, hp_amqp_delivery_cb on_msg, void *msg_arg,
                    hp_amqp_done_cb cb, void *arg)
{
    hp_amqp_method_t m = {.id = HP_AMQP_BASIC_CONSUME};
    hp_amqp_basic_consume_t *c = &m.basic_consume;
    c->queue = amqp_name(queue);
    c->consumer_tag = amqp_name(tag);
    c->no_local = flags & HP_AMQP_NO_LOCAL;
    c->no_ack = flags & HP_AMQP_NO_ACK;
    c->exclusive = flags & HP_AMQP_EXCLUSIVE;
    c->arguments = args;
    if (c->queue.len > 255)
        return -EINVAL;
    /* The consumer is made now (it gets its tag with consume-ok): what a
     * recovery needs to consume again is in it. */
    amqp_consumer_t *k = hp_calloc(1, sizeof *k);
    void *args_copy = args.len ? hp_malloc(args.len) : NULL;
    if (!k || (args.len && !args_copy)) {
        hp_free(k);
        hp_free(args_copy);
        return -ENOMEM;
    }
    if (args.len)
        memcpy(args_copy, args.ptr, args.len);
    k->on_msg = on_msg;
    k->arg = msg_arg;
    k->flags = flags;
    k->args = (hp_amqp_bytes_t){args_copy, args.len};
    memcpy(k->queue, c->queue.ptr, c->queue.len);
    k->queue[c->queue.len] = '\0';
    amqp_op_t *op;
    int r = call(ch, &m, HP_AMQP_BASIC_CONSUME_OK, OP_CONSUME, cb, arg, &op);
    if (r < 0) {
        consumer_free(k);
        return r;
    }
    op->consumer = k;
    return 0;
}

int hp_amqp_cancel(hp_amqp_channel_t *ch, const char *tag, hp_amqp_done_cb cb, void *arg)
{
    hp_amqp_method_t m = {.id = HP_AMQP_BASIC_CANCEL};
    m.basic_cancel.consumer_tag = amqp_name(tag);
    return call(ch, &m, HP_AMQP_BASIC_CANCEL_OK, OP_CANCEL, cb, arg, NULL);
}

int hp_amqp_get(hp_amqp_channel_t *ch, const char *queue, unsigned flags,
                hp_amqp_delivery_cb on_msg, void *msg_arg, hp_amqp_done_cb cb, void *arg)
{
    hp_amqp_method_t m = {.id = HP_AMQP_BASIC_GET};
    m.basic_get.queue = amqp_name(queue);
    m.basic_get.no_ack = flags & HP_AMQP_NO_ACK;
    amqp_op_t *op;
    int r = call(ch, &m, HP_AMQP_BASIC_GET_OK, OP_GET, cb, arg, &op);
    if (r == 0) {
        op->reply2 = HP_AMQP_BASIC_GET_EMPTY;
        op->on_msg = on_msg;
        op->msg_arg = msg_arg;
    }
    return r;
}

