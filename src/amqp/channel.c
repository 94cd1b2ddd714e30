/*
 * channel.c - AMQP channels: calls and their replies, publishing with
 * confirms, consumers and the messages the broker sends.
 *
 * Central structures: per channel, a FIFO of calls waiting for their reply
 * (the broker answers a channel's synchronous methods in the order they
 * were sent, so the head is always the one a reply completes), a list of
 * consumers by tag, and in confirm mode a ring of the unconfirmed
 * publishes indexed by sequence number.
 *
 * Invariants:
 *  - ops are sent before they are queued: a call that could not be sent
 *    fails at once and is never waited for;
 *  - in confirm mode, sequence numbers base .. next_seq - 1 are the
 *    unconfirmed ones, next_seq - base <= window, and each publish's
 *    callback runs exactly once (acked, nacked, or failed when the
 *    channel goes);
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
#include "net/worker_int.h"

/* ---- pending calls ---- */

static bool gone(const hp_amqp_channel_t *ch)
{
    return ch->state == CH_CLOSED || ch->conn->dead;
}

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

static void op_free(amqp_op_t *op)
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

static amqp_op_t *op_pop(hp_amqp_channel_t *ch)
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
        op_free(op);
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
        op_free(op);
        return r;
    }
    op->recover_topo = topo;
    op_link(ch, op);
    return 0;
}

/* ---- confirms ---- */

static void confirm_resolve(hp_amqp_channel_t *ch, uint64_t seq, int status)
{
    amqp_confirm_t *slot = &ch->ring[(seq - 1) % ch->window];
    if (slot->status)
        return;
    slot->status = status > 0 ? (uint8_t)status : 3;
    hp_free(slot->frames);
    slot->frames = NULL;
    hp_amqp_stats_t *st = &ch->conn->stats;
    if (status == HP_AMQP_ACKED)
        st->confirmed++;
    else if (status == HP_AMQP_NACKED)
        st->nacked++;
    else
        st->unconfirmed_failed++;
    if (slot->cb)
        slot->cb(ch, slot->seq, status, slot->arg);
}

/* Moves base past the confirmed head of the window. */
static void confirm_advance(hp_amqp_channel_t *ch)
{
    while (ch->base < ch->next_seq) {
        amqp_confirm_t *slot = &ch->ring[(ch->base - 1) % ch->window];
        if (!slot->status)
            break;
        *slot = (amqp_confirm_t){0};
        ch->base++;
    }
}

/* basic.ack or basic.nack from the broker. */
static int confirm_in(hp_amqp_channel_t *ch, uint64_t tag, bool multiple, int status)
{
    hp_amqp_conn_t *a = ch->conn;
    if (!ch->confirm || tag >= ch->next_seq || (tag == 0 && !multiple)) {
        amqp_fail(a, HP_AMQP_COMMAND_INVALID, "a confirm for a message never published");
        return -1;
    }
    uint64_t base = ch->base;
    uint64_t from = multiple ? ch->base : tag;
    for (uint64_t s = from; s <= tag && s >= ch->base; s++) {
        confirm_resolve(ch, s, status);
        if (gone(ch))
            return 0;
    }
    confirm_advance(ch);
    /* Room freed: a publish refused for the lack of it may go now. Not
     * only when the window was full: a batch is refused by one that has
     * less room than it needs. (amqp_channel_writable does nothing unless
     * a publish was refused.) */
    if (ch->base != base)
        amqp_channel_writable(a);
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
    while ((op = op_pop(ch)) != NULL) {
        if (op->kind == OP_RECOVER)
            amqp_recover_step(ch, op->recover_topo, NULL, r);
        else if (op->cb)
            op->cb(op->kind == OP_CHANNEL_OPEN ? NULL : ch, r, op->arg);
        op_free(op);
    }
    for (uint64_t s = ch->base; ch->ring && s < ch->next_seq; s++)
        confirm_resolve(ch, s, r->err ? r->err : -ECANCELED);
    ch->base = ch->next_seq;
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

void amqp_channel_lost_input(hp_amqp_channel_t *ch)
{
    hp_free(ch->in.copy);
    ch->in = (amqp_incoming_t){0};
}

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
    while ((op = op_pop(ch)) != NULL) {
        if (op->kind != OP_RECOVER && op->cb)
            op->cb(ch, r, op->arg);
        op_free(op);
        if (gone(ch))
            break;
    }
    if (!gone(ch) && ch->ring && a->cfg.unconfirmed != HP_AMQP_REPUBLISH) {
        for (uint64_t s = ch->base; s < ch->next_seq && !gone(ch); s++)
            confirm_resolve(ch, s, r->err);
        if (!gone(ch))
            confirm_advance(ch);
    }
    amqp_leave(a);
}

void amqp_channel_recovered(hp_amqp_channel_t *ch)
{
    hp_amqp_conn_t *a = ch->conn;
    ch->state = CH_OPEN;
    if (!ch->ring)
        return;
    /* The new channel numbers confirms from 1 again: what is still
     * unconfirmed moves to the front of the ring, in order, and goes out
     * again (HP_AMQP_REPUBLISH), keeping the numbers the caller knows. */
    uint64_t n = ch->next_seq - ch->base;
    amqp_confirm_t *keep = n ? hp_malloc(n * sizeof *keep) : NULL;
    if (n && !keep) {
        for (uint64_t s = ch->base; s < ch->next_seq && !gone(ch); s++)
            confirm_resolve(ch, s, -ENOMEM);
        n = 0;
    }
    uint32_t k = 0;
    for (uint64_t s = ch->base; n && s < ch->next_seq; s++) {
        amqp_confirm_t *slot = &ch->ring[(s - 1) % ch->window];
        if (!slot->status)
            keep[k++] = *slot;
    }
    memset(ch->ring, 0, ch->window * sizeof *ch->ring); /* the frames live on in keep */
    for (uint32_t i = 0; i < k; i++)
        ch->ring[i] = keep[i];
    hp_free(keep);
    ch->base = 1;
    ch->next_seq = 1u + k;
    for (uint32_t i = 0; i < k && a->c && !gone(ch); i++) {
        amqp_confirm_t *slot = &ch->ring[i];
        uint8_t *at = amqp_out_reserve(a, slot->len);
        if (at) {
            memcpy(at, slot->frames, slot->len);
            amqp_out_commit(a, slot->len);
        } else {
            void *copy = hp_malloc(slot->len);
            if (copy)
                memcpy(copy, slot->frames, slot->len);
            if (!copy || hp_conn_write_ref(a->c, copy, slot->len, true) < 0) { /* frees copy */
                confirm_resolve(ch, i + 1u, -ENOBUFS);
                continue;
            }
            hp_conn_flush_soon(a->c);
        }
        a->stats.republished++;
    }
    confirm_advance(ch);
}

/* ---- replies ---- */

static amqp_consumer_t *consumer_find(hp_amqp_channel_t *ch, hp_amqp_bytes_t tag,
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
    op_pop(ch);
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
        op_free(op);
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
            op_free(op);
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
        amqp_consumer_t *k = consumer_find(ch, m->basic_cancel_ok.consumer_tag, &link);
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
        op_free(op);
        return 0;
    case OP_CHANNEL_CLOSE: {
        hp_amqp_done_cb cb = op->cb;
        void *arg = op->arg;
        op_free(op);
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
    op_free(op);
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

int amqp_channel_method(hp_amqp_channel_t *ch, const hp_amqp_method_t *m, const uint8_t *payload,
                        uint32_t len)
{
    (void)payload;
    (void)len;
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
        return confirm_in(ch, m->basic_ack.delivery_tag, m->basic_ack.multiple, HP_AMQP_ACKED);
    case HP_AMQP_BASIC_NACK:
        return confirm_in(ch, m->basic_nack.delivery_tag, m->basic_nack.multiple, HP_AMQP_NACKED);
    case HP_AMQP_BASIC_CANCEL: {
        /* The broker cancelled a consumer (its queue went away). */
        amqp_consumer_t **link;
        amqp_consumer_t *k = consumer_find(ch, m->basic_cancel.consumer_tag, &link);
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

/* ---- messages from the broker ---- */

/* Hands a whole message to whoever waits for it. `mp`/`mlen` is the
 * method's payload (decoded again from here: the copy path keeps only
 * bytes), `hp`/`hlen` the header frame's payload. */
static int message_deliver(hp_amqp_channel_t *ch, const uint8_t *mp, uint32_t mlen,
                           const uint8_t *hp, uint32_t hlen, hp_amqp_bytes_t body)
{
    hp_amqp_conn_t *a = ch->conn;
    hp_amqp_method_t m;
    hp_amqp_delivery_t d = {.body = body};
    hp_amqp_rd_t r = hp_amqp_rd(hp, hlen);
    uint16_t class_id;
    uint64_t size;
    if (hp_amqp_method_decode(mp, mlen, &m) < 0 ||
        hp_amqp_frame_read_content_header(&r, &class_id, &size) < 0 ||
        hp_amqp_props_decode(&r, &d.props) < 0) {
        amqp_fail(a, HP_AMQP_SYNTAX_ERROR, "a malformed message header");
        return -1;
    }
    if (ch->state == CH_CLOSING)
        return 0;
    switch (m.id) {
    case HP_AMQP_BASIC_DELIVER: {
        d.consumer_tag = m.basic_deliver.consumer_tag;
        d.delivery_tag = m.basic_deliver.delivery_tag + ch->tag_offset;
        if (d.delivery_tag > ch->max_tag)
            ch->max_tag = d.delivery_tag;
        d.redelivered = m.basic_deliver.redelivered;
        d.exchange = m.basic_deliver.exchange;
        d.routing_key = m.basic_deliver.routing_key;
        a->stats.delivered++;
        a->stats.redelivered += d.redelivered;
        amqp_consumer_t *k = consumer_find(ch, d.consumer_tag, NULL);
        if (k && k->on_msg)
            k->on_msg(ch, &d, k->arg);
        return 0;
    }
    case HP_AMQP_BASIC_GET_OK: {
        amqp_op_t *op = ch->ops;
        if (!op || op->kind != OP_GET) {
            amqp_fail(a, HP_AMQP_COMMAND_INVALID, "basic.get-ok without a get");
            return -1;
        }
        op_pop(ch);
        d.delivery_tag = m.basic_get_ok.delivery_tag + ch->tag_offset;
        if (d.delivery_tag > ch->max_tag)
            ch->max_tag = d.delivery_tag;
        d.redelivered = m.basic_get_ok.redelivered;
        d.exchange = m.basic_get_ok.exchange;
        d.routing_key = m.basic_get_ok.routing_key;
        d.message_count = m.basic_get_ok.message_count;
        a->stats.delivered++;
        a->stats.redelivered += d.redelivered;
        if (op->on_msg)
            op->on_msg(ch, &d, op->msg_arg);
        op_free(op);
        return 0;
    }
    case HP_AMQP_BASIC_RETURN:
        d.reply_code = m.basic_return.reply_code;
        d.reply_text = m.basic_return.reply_text;
        d.exchange = m.basic_return.exchange;
        d.routing_key = m.basic_return.routing_key;
        a->stats.returned++;
        if (ch->on_return)
            ch->on_return(ch, &d, ch->on_return_arg);
        return 0;
    default:
        amqp_fail(a, HP_AMQP_COMMAND_INVALID, "content with an unexpected method");
        return -1;
    }
}

/* Starts copying a message whose frames cannot all wait in the buffer. */
static long assemble_start(hp_amqp_channel_t *ch, const hp_amqp_method_t *m, const uint8_t *p,
                           long flen)
{
    amqp_incoming_t *in = &ch->in;
    uint32_t mlen = (uint32_t)flen - HP_AMQP_FRAME_OVERHEAD;
    in->copy = hp_malloc(mlen ? mlen : 1);
    if (!in->copy) {
        amqp_fail(ch->conn, HP_AMQP_RESOURCE_ERROR, "no memory for a message");
        return -1;
    }
    memcpy(in->copy, p + 7, mlen);
    in->method = m->id;
    in->method_len = mlen;
    in->header_len = 0;
    in->body_size = in->body_got = 0;
    in->assembling = true;
    return flen;
}

static void assemble_end(amqp_incoming_t *in)
{
    hp_free(in->copy);
    *in = (amqp_incoming_t){0};
}

long amqp_channel_message(hp_amqp_channel_t *ch, const hp_amqp_method_t *m, const uint8_t *p,
                          size_t len, long flen, uint32_t capacity)
{
    hp_amqp_conn_t *a = ch->conn;
    if (ch->in.method) {
        amqp_fail(a, HP_AMQP_UNEXPECTED_FRAME, "a method in the middle of a message");
        return -1;
    }
    /* Look ahead for the header and every body frame. */
    size_t pos = (size_t)flen;
    hp_amqp_frame_t hf;
    long hlen = hp_amqp_frame_parse(p + pos, len - pos, a->frame_max, &hf);
    if (hlen == 0) {
        /* Wait for the header only if it can arrive behind the method in
         * the buffer: its size is known once its first 7 bytes are in. */
        size_t need = 7;
        if (len - pos >= 7) {
            const uint8_t *h = p + pos;
            need = HP_AMQP_FRAME_OVERHEAD +
                   ((size_t)h[3] << 24 | (size_t)h[4] << 16 | (size_t)h[5] << 8 | h[6]);
        }
        return pos + need <= capacity ? 0 : assemble_start(ch, m, p, flen);
    }
    if (hlen < 0 || hf.channel != ch->id)
        return assemble_start(ch, m, p, flen); /* the frame loop judges it */
    if (hf.type != HP_AMQP_FRAME_HEADER) {
        amqp_fail(a, HP_AMQP_UNEXPECTED_FRAME, "a message without its header");
        return -1;
    }
    hp_amqp_rd_t r = hp_amqp_rd(hf.payload.ptr, hf.payload.len);
    uint16_t class_id;
    uint64_t size;
    if (hp_amqp_frame_read_content_header(&r, &class_id, &size) < 0) {
        amqp_fail(a, HP_AMQP_SYNTAX_ERROR, "a malformed content header");
        return -1;
    }
    size_t body_at = pos + (size_t)hlen;
    /* Waiting for the rest is only right when it can all be in the buffer
     * at once: what is left of the body, in frames of at most frame_max
     * (fewer bytes per frame show up as `at` growing faster). */
    uint64_t chunk = a->frame_max - HP_AMQP_FRAME_OVERHEAD;
    size_t at = body_at;
    uint64_t got = 0;
    uint32_t nframes = 0;
    const uint8_t *one = NULL;
    while (got < size) {
        hp_amqp_frame_t bf;
        long blen = hp_amqp_frame_parse(p + at, len - at, a->frame_max, &bf);
        if (blen == 0) {
            uint64_t left = size - got;
            uint64_t room = at + left + HP_AMQP_FRAME_OVERHEAD * (left / chunk + 1);
            return room <= capacity ? 0 : assemble_start(ch, m, p, flen);
        }
        if (blen < 0 || bf.channel != ch->id)
            return assemble_start(ch, m, p, flen);
        if (bf.type != HP_AMQP_FRAME_BODY || got + bf.payload.len > size) {
            amqp_fail(a, HP_AMQP_UNEXPECTED_FRAME, "a body that does not match its header");
            return -1;
        }
        one = bf.payload.ptr;
        got += bf.payload.len;
        nframes++;
        at += (size_t)blen;
    }
    hp_amqp_bytes_t body = {size ? one : NULL, (uint32_t)size};
    uint8_t *joined = NULL;
    if (nframes > 1) {
        /* Rare here (frame_max is at least the buffer's half): join them. */
        joined = hp_malloc(size);
        if (!joined) {
            amqp_fail(a, HP_AMQP_RESOURCE_ERROR, "no memory for a message");
            return -1;
        }
        size_t off = 0;
        for (size_t q = body_at; q < at;) {
            hp_amqp_frame_t bf;
            long blen = hp_amqp_frame_parse(p + q, len - q, a->frame_max, &bf);
            memcpy(joined + off, bf.payload.ptr, bf.payload.len);
            off += bf.payload.len;
            q += (size_t)blen;
        }
        body.ptr = joined;
    }
    int rc = message_deliver(ch, p + 7, (uint32_t)flen - HP_AMQP_FRAME_OVERHEAD, hf.payload.ptr,
                             hf.payload.len, body);
    hp_free(joined);
    return rc < 0 ? -1 : (long)at;
}

int amqp_channel_content(hp_amqp_channel_t *ch, const hp_amqp_frame_t *f)
{
    hp_amqp_conn_t *a = ch->conn;
    amqp_incoming_t *in = &ch->in;
    if (!in->method) {
        amqp_fail(a, HP_AMQP_UNEXPECTED_FRAME, "content without a message");
        return -1;
    }
    if (f->type == HP_AMQP_FRAME_HEADER) {
        hp_amqp_rd_t r = hp_amqp_rd(f->payload.ptr, f->payload.len);
        uint16_t class_id;
        uint64_t size;
        if (in->header_len || hp_amqp_frame_read_content_header(&r, &class_id, &size) < 0) {
            amqp_fail(a, HP_AMQP_UNEXPECTED_FRAME, "a second or malformed content header");
            return -1;
        }
        if (size > HP_AMQP_MAX_BODY) {
            amqp_fail(a, HP_AMQP_RESOURCE_ERROR, "a message larger than 128 MiB");
            return -1;
        }
        uint8_t *grown = hp_realloc(in->copy, in->method_len + f->payload.len + size + 1);
        if (!grown) {
            amqp_fail(a, HP_AMQP_RESOURCE_ERROR, "no memory for a message");
            return -1;
        }
        in->copy = grown;
        memcpy(in->copy + in->method_len, f->payload.ptr, f->payload.len);
        in->header_len = f->payload.len;
        in->body_size = size;
    } else {
        if (!in->header_len || in->body_got + f->payload.len > in->body_size) {
            amqp_fail(a, HP_AMQP_UNEXPECTED_FRAME, "a body that does not match its header");
            return -1;
        }
        memcpy(in->copy + in->method_len + in->header_len + in->body_got, f->payload.ptr,
               f->payload.len);
        in->body_got += f->payload.len;
    }
    if (in->body_got < in->body_size)
        return 0;
    /* Whole: deliver from the copy. */
    amqp_incoming_t done = *in;
    *in = (amqp_incoming_t){0};
    hp_amqp_bytes_t body = {done.copy + done.method_len + done.header_len,
                            (uint32_t)done.body_size};
    int rc = message_deliver(ch, done.copy, done.method_len, done.copy + done.method_len,
                             done.header_len, body);
    assemble_end(&done);
    return rc;
}

/* ---- writable again ---- */

void amqp_channel_writable(hp_amqp_conn_t *a)
{
    if (!a->want_writable || !a->on_writable || a->blocked || a->dead)
        return;
    a->want_writable = false;
    a->on_writable(a, a->writable_arg);
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
        while ((op = op_pop(ch)) != NULL) {
            if (op->cb)
                op->cb(op->kind == OP_CHANNEL_OPEN ? NULL : ch, &cancelled, op->arg);
            op_free(op);
            if (gone(ch))
                break;
        }
        if (!gone(ch)) {
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

/* A NULL name is the empty one (the default exchange, a server-named
 * queue). */
static hp_amqp_bytes_t name(const char *s)
{
    return s ? hp_amqp_str(s) : (hp_amqp_bytes_t){"", 0};
}

int hp_amqp_exchange_declare(hp_amqp_channel_t *ch, const char *ex, const char *type,
                             unsigned flags, hp_amqp_bytes_t args, hp_amqp_done_cb cb, void *arg)
{
    hp_amqp_method_t m = {.id = HP_AMQP_EXCHANGE_DECLARE};
    hp_amqp_exchange_declare_t *d = &m.exchange_declare;
    d->exchange = name(ex);
    d->type = name(type);
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
    m.exchange_delete.exchange = name(ex);
    m.exchange_delete.if_unused = flags & HP_AMQP_IF_UNUSED;
    return call_topo(ch, &m, HP_AMQP_EXCHANGE_DELETE_OK, OP_PLAIN, cb, arg, NULL, TOPO_EXCHANGE,
                     ex, NULL, NULL);
}

int hp_amqp_queue_declare(hp_amqp_channel_t *ch, const char *queue, unsigned flags,
                          hp_amqp_bytes_t args, hp_amqp_done_cb cb, void *arg)
{
    hp_amqp_method_t m = {.id = HP_AMQP_QUEUE_DECLARE};
    hp_amqp_queue_declare_t *d = &m.queue_declare;
    d->queue = name(queue);
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
    m.queue_bind.queue = name(queue);
    m.queue_bind.exchange = name(ex);
    m.queue_bind.routing_key = name(key);
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
    m.queue_unbind.queue = name(queue);
    m.queue_unbind.exchange = name(ex);
    m.queue_unbind.routing_key = name(key);
    m.queue_unbind.arguments = args;
    return call_topo(ch, &m, HP_AMQP_QUEUE_UNBIND_OK, OP_PLAIN, cb, arg, NULL, TOPO_BINDING, queue,
                     ex, key);
}

int hp_amqp_queue_purge(hp_amqp_channel_t *ch, const char *queue, hp_amqp_done_cb cb, void *arg)
{
    hp_amqp_method_t m = {.id = HP_AMQP_QUEUE_PURGE};
    m.queue_purge.queue = name(queue);
    return call(ch, &m, HP_AMQP_QUEUE_PURGE_OK, OP_QUEUE_COUNT, cb, arg, NULL);
}

int hp_amqp_queue_delete(hp_amqp_channel_t *ch, const char *queue, unsigned flags,
                         hp_amqp_done_cb cb, void *arg)
{
    hp_amqp_method_t m = {.id = HP_AMQP_QUEUE_DELETE};
    m.queue_delete.queue = name(queue);
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

/* Bytes the properties take at most on the wire (flags included). */
static size_t props_size(const hp_amqp_props_t *p)
{
    if (!p)
        return 2;
    size_t n = 2;
    const hp_amqp_bytes_t *strs[] = {&p->content_type, &p->content_encoding, &p->correlation_id,
                                     &p->reply_to,     &p->expiration,       &p->message_id,
                                     &p->type,         &p->user_id,          &p->app_id,
                                     &p->reserved};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        n += 1 + (size_t)strs[i]->len;
    return n + 4 + (size_t)p->headers.len + 1 + 1 + 8;
}

/* Frames a whole message into `w`. */
static void frame_message(hp_amqp_wr_t *w, uint16_t channel, uint32_t frame_max,
                          const hp_amqp_method_t *pub, const hp_amqp_msg_t *msg,
                          const hp_amqp_props_t *props, int *err)
{
    size_t start = hp_amqp_frame_begin(w, HP_AMQP_FRAME_METHOD, channel);
    int r = hp_amqp_method_encode(w, pub);
    hp_amqp_frame_end(w, start);
    start = hp_amqp_frame_begin(w, HP_AMQP_FRAME_HEADER, channel);
    hp_amqp_frame_content_header(w, HP_AMQP_CLASS_BASIC, msg->len);
    if (r == 0)
        r = hp_amqp_props_encode(w, props);
    hp_amqp_frame_end(w, start);
    size_t chunk = frame_max - HP_AMQP_FRAME_OVERHEAD;
    const uint8_t *body = msg->body;
    for (size_t off = 0; off < msg->len; off += chunk) {
        size_t n = msg->len - off < chunk ? msg->len - off : chunk;
        start = hp_amqp_frame_begin(w, HP_AMQP_FRAME_BODY, channel);
        hp_amqp_wr_bytes(w, body + off, n);
        hp_amqp_frame_end(w, start);
    }
    *err = r;
}

/* A message ready to be framed: its method and the bytes it will take. */
typedef struct prepared {
    hp_amqp_method_t pub;
    const hp_amqp_props_t *props;
    size_t size;          /* at most: frames included */
    size_t at, len;       /* where its frames went */
    uint8_t *frames;      /* a copy kept for HP_AMQP_REPUBLISH */
} prepared_t;

static int prepare(const hp_amqp_conn_t *a, const hp_amqp_msg_t *msg, prepared_t *p)
{
    static const hp_amqp_props_t none = {0};
    p->props = msg->props ? msg->props : &none;
    p->pub = (hp_amqp_method_t){.id = HP_AMQP_BASIC_PUBLISH};
    hp_amqp_basic_publish_t *b = &p->pub.basic_publish;
    b->exchange = name(msg->exchange);
    b->routing_key = name(msg->routing_key);
    b->mandatory = msg->mandatory;
    if (b->exchange.len > 255 || b->routing_key.len > 255)
        return -EINVAL;
    if (msg->len > HP_AMQP_MAX_BODY)
        return -EMSGSIZE;
    size_t chunk = a->frame_max - HP_AMQP_FRAME_OVERHEAD;
    size_t nbody = (msg->len + chunk - 1) / chunk;
    p->size = HP_AMQP_FRAME_OVERHEAD + 4 + 2 + 1 + b->exchange.len + 1 + b->routing_key.len +
              1 +                                                    /* method */
              HP_AMQP_FRAME_OVERHEAD + 12 + props_size(p->props) +   /* header */
              nbody * HP_AMQP_FRAME_OVERHEAD + msg->len;             /* body */
    return 0;
}

/* Publishes msgs[0, n) whole or not at all: one reservation in the output
 * chunk, or one buffer of their own when they would take most of it, so
 * a batch leaves in one writev. Confirm slots get cb(i) and arg(i). */
static int publish_n(hp_amqp_channel_t *ch, const hp_amqp_msg_t *msgs, uint32_t n,
                     hp_amqp_confirm_cb cb, void *const *args, void *arg, uint64_t *first)
{
    hp_amqp_conn_t *a = ch->conn;
    if ((ch->state != CH_OPENING && ch->state != CH_OPEN && ch->state != CH_RECOVERING) ||
        (!a->c && !a->recovering))
        return -ENOTCONN;
    if (n == 0)
        return -EINVAL;
    bool keep = ch->confirm && a->cfg.unconfirmed == HP_AMQP_REPUBLISH;
    if (ch->confirm && n > ch->window)
        return -EMSGSIZE;
    if (a->recovering || ch->state == CH_RECOVERING || a->blocked ||
        (ch->confirm && ch->next_seq - ch->base + n > ch->window)) {
        a->want_writable = true;
        return -EAGAIN;
    }
    prepared_t one[1] = {0};
    prepared_t *p = n == 1 ? one : hp_calloc(n, sizeof *p);
    if (!p)
        return -ENOMEM;
    size_t total = 0;
    int err = 0;
    for (uint32_t i = 0; i < n && !err; i++) {
        err = prepare(a, &msgs[i], &p[i]);
        total += p[i].size;
    }
    if (err) {
        if (p != one)
            hp_free(p);
        return err;
    }
    amqp_enter(a);
    uint32_t wbuf = a->worker->cfg->wbuf_size;
    bool own = total > wbuf / 2;
    /* A buffer of their own is queued by reference, which the chunk's
     * room does not bound: it goes only behind nothing, what is queued
     * being sent first, so that while the broker does not read the client
     * holds at most one such buffer (and the chunk). A flush that finds
     * the connection broken has closed it (a->c is NULL). */
    uint8_t *at = NULL;
    if (own && hp_conn_pending(a->c) > 0 && hp_conn_flush(a->c) != 0)
        err = a->c ? -EAGAIN : -ENOTCONN;
    else
        at = own ? hp_malloc(total) : amqp_out_reserve(a, total);
    if (!at && !err && !own && a->c && hp_conn_pending(a->c) == 0) {
        /* Refused with nothing queued: there is no room to wait for. The
         * chunk's inline area is smaller than wbuf_size (its segment
         * table comes first); the messages take a buffer of their own. */
        own = true;
        at = hp_malloc(total);
    }
    if (!at) {
        /* No room, or the flush that looked for it found the connection
         * broken (then CLOSED has run: say so, not "try again"). */
        if (!err)
            err = a->dead || !a->c || hp_conn_is_closed(a->c) ? -ENOTCONN
                  : own                                     ? -ENOMEM
                                                            : -EAGAIN;
    } else {
        hp_amqp_wr_t w = hp_amqp_wr(at, total);
        for (uint32_t i = 0; i < n && !err; i++) {
            p[i].at = w.len;
            frame_message(&w, ch->id, a->frame_max, &p[i].pub, &msgs[i], p[i].props, &err);
            p[i].len = w.len - p[i].at;
        }
        /* To publish again after a recovery, each keeps its frames until
         * confirmed (copied before the chunk or buffer is handed over). */
        if (!err && !w.overflow && keep)
            for (uint32_t i = 0; i < n && !err; i++) {
                if (!(p[i].frames = hp_malloc(p[i].len)))
                    err = -ENOMEM;
                else
                    memcpy(p[i].frames, at + p[i].at, p[i].len);
            }
        if (err || w.overflow) {
            err = err == -ENOBUFS || !err ? -EINVAL : err;
            if (own)
                hp_free(at);
        } else if (!own) {
            amqp_out_commit(a, w.len);
        } else if (hp_conn_write_ref(a->c, at, w.len, true) < 0) { /* frees it */
            err = -EAGAIN;
        } else {
            a->stats.bytes_out += w.len;
            a->last_send_ms = hp_conn_now(a->c);
            hp_conn_flush_soon(a->c);
        }
    }
    if (err == -EAGAIN)
        a->want_writable = true;
    amqp_leave(a);
    if (err) {
        for (uint32_t i = 0; i < n; i++)
            hp_free(p[i].frames);
        if (p != one)
            hp_free(p);
        return err;
    }
    a->stats.published += n;
    if (first)
        *first = ch->confirm ? ch->user_seq : 0;
    for (uint32_t i = 0; ch->confirm && i < n; i++) {
        uint64_t s = ch->next_seq++;
        ch->ring[(s - 1) % ch->window] = (amqp_confirm_t){.cb = cb,
                                                          .arg = args ? args[i] : arg,
                                                          .seq = ch->user_seq++,
                                                          .frames = p[i].frames,
                                                          .len = (uint32_t)p[i].len};
    }
    if (p != one)
        hp_free(p);
    return 0;
}

int hp_amqp_publish(hp_amqp_channel_t *ch, const hp_amqp_msg_t *msg, hp_amqp_confirm_cb cb,
                    void *arg, uint64_t *seq)
{
    return publish_n(ch, msg, 1, cb, NULL, arg, seq);
}

/* A batch waiting for its confirms. */
typedef struct amqp_batch {
    hp_amqp_batch_cb cb;
    void *arg;
    hp_amqp_batch_result_t r;
    uint32_t left;
} amqp_batch_t;

static void batch_one(hp_amqp_channel_t *ch, uint64_t seq, int status, void *arg)
{
    (void)seq;
    amqp_batch_t *b = arg;
    if (status == HP_AMQP_ACKED)
        b->r.acked++;
    else if (status == HP_AMQP_NACKED)
        b->r.nacked++;
    else {
        b->r.failed++;
        if (!b->r.err)
            b->r.err = status;
    }
    if (--b->left == 0) {
        amqp_batch_t done = *b;
        hp_free(b);
        if (done.cb)
            done.cb(ch, &done.r, done.arg);
    }
}

int hp_amqp_publish_batch(hp_amqp_channel_t *ch, const hp_amqp_msg_t *msgs, uint32_t n,
                          hp_amqp_batch_cb cb, void *arg, uint64_t *first)
{
    if (!ch->confirm)
        return publish_n(ch, msgs, n, NULL, NULL, NULL, first);
    amqp_batch_t *b = hp_calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    uint64_t s;
    int r = publish_n(ch, msgs, n, batch_one, NULL, b, &s);
    if (r < 0) {
        hp_free(b);
        return r;
    }
    *b = (amqp_batch_t){.cb = cb, .arg = arg, .r = {.first_seq = s, .n = n}, .left = n};
    if (first)
        *first = s;
    return 0;
}

int hp_amqp_consume(hp_amqp_channel_t *ch, const char *queue, const char *tag, unsigned flags,
                    hp_amqp_bytes_t args, hp_amqp_delivery_cb on_msg, void *msg_arg,
                    hp_amqp_done_cb cb, void *arg)
{
    hp_amqp_method_t m = {.id = HP_AMQP_BASIC_CONSUME};
    hp_amqp_basic_consume_t *c = &m.basic_consume;
    c->queue = name(queue);
    c->consumer_tag = name(tag);
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
    m.basic_cancel.consumer_tag = name(tag);
    return call(ch, &m, HP_AMQP_BASIC_CANCEL_OK, OP_CANCEL, cb, arg, NULL);
}

int hp_amqp_get(hp_amqp_channel_t *ch, const char *queue, unsigned flags,
                hp_amqp_delivery_cb on_msg, void *msg_arg, hp_amqp_done_cb cb, void *arg)
{
    hp_amqp_method_t m = {.id = HP_AMQP_BASIC_GET};
    m.basic_get.queue = name(queue);
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

/* Acknowledgements wait for no reply: sent and done. A tag of a delivery
 * made before a recovery is dropped (0): the broker put the message back
 * when the connection was lost, and the number means another delivery on
 * the new channel. */
static int send_ack(hp_amqp_channel_t *ch, hp_amqp_method_t *m, uint64_t *tag)
{
    hp_amqp_conn_t *a = ch->conn;
    bool up = ch->state == CH_OPEN || (ch->state == CH_RECOVERING && a->c &&
                                       a->state == AMQP_READY);
    if (!up)
        return ch->state == CH_RECOVERING ? -EAGAIN : -ENOTCONN;
    if (*tag <= ch->tag_offset)
        return 0;
    *tag -= ch->tag_offset;
    amqp_enter(a);
    int r = amqp_send_method(a, ch->id, m);
    amqp_leave(a);
    return r;
}

int hp_amqp_ack(hp_amqp_channel_t *ch, uint64_t tag, bool multiple)
{
    hp_amqp_method_t m = {.id = HP_AMQP_BASIC_ACK};
    m.basic_ack.delivery_tag = tag;
    m.basic_ack.multiple = multiple;
    int r = send_ack(ch, &m, &m.basic_ack.delivery_tag);
    if (r == 0) /* sent (or stale): the connection is alive */
        ch->conn->stats.acked++;
    return r;
}

int hp_amqp_nack(hp_amqp_channel_t *ch, uint64_t tag, bool multiple, bool requeue)
{
    hp_amqp_method_t m = {.id = HP_AMQP_BASIC_NACK};
    m.basic_nack.delivery_tag = tag;
    m.basic_nack.multiple = multiple;
    m.basic_nack.requeue = requeue;
    int r = send_ack(ch, &m, &m.basic_nack.delivery_tag);
    if (r == 0)
        ch->conn->stats.nacked_out++;
    return r;
}

int hp_amqp_reject(hp_amqp_channel_t *ch, uint64_t tag, bool requeue)
{
    hp_amqp_method_t m = {.id = HP_AMQP_BASIC_REJECT};
    m.basic_reject.delivery_tag = tag;
    m.basic_reject.requeue = requeue;
    int r = send_ack(ch, &m, &m.basic_reject.delivery_tag);
    if (r == 0)
        ch->conn->stats.rejected++;
    return r;
}
