/*
 * message.c - the messages the broker sends (basic.deliver, get-ok,
 * return) and the acknowledgements that answer them.
 *
 * A message is a method frame, a header frame and body frames. When all of
 * them are in the read buffer it is delivered from there: the body is
 * borrowed, no copy (joined only when it spans several body frames). When
 * it cannot all fit, it is copied frame by frame into the channel's
 * `in` and delivered from the copy once whole.
 *
 * Invariants:
 *  - a channel has at most one message being copied, and no method may
 *    come between its frames (the spec's rule; a protocol error here);
 *  - delivery tags given to the user are offset past those of any lost
 *    connection (tag_offset), so that a tag from before a recovery is
 *    never taken for a new delivery: its ack is dropped, not sent;
 *  - a delivery stamped with its send time (HP_AMQP_STAMP_HEADER) adds
 *    one sample to the connection's publish-to-deliver histogram, made
 *    on the first such delivery (a connection that never sees one holds
 *    none).
 */
#include "hotpath/amqp.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "client_int.h"
#include "hotpath/alloc.h"
#include "hotpath/hist.h"

/* ---- messages from the broker ---- */

/* The engine connection closed: a message half received is gone. */
void amqp_channel_lost_input(hp_amqp_channel_t *ch)
{
    hp_free(ch->in.copy);
    ch->in = (amqp_incoming_t){0};
}

/* ---- publish-to-deliver latency ---- */

/* The send time a delivery's headers carry, in wall-clock ms: an integer
 * of any width, not negative; anything else is no stamp (false). */
static bool delivery_stamp(const hp_amqp_props_t *props, uint64_t *ms)
{
    hp_amqp_value_t v;
    if (!(props->flags & HP_AMQP_PROP_HEADERS) ||
        hp_amqp_table_get(props->headers, HP_AMQP_STAMP_HEADER, &v) < 0)
        return false;
    switch (v.type) {
    case HP_AMQP_T_I8:
    case HP_AMQP_T_I16:
    case HP_AMQP_T_I32:
    case HP_AMQP_T_I64:
        if (v.i < 0)
            return false;
        *ms = (uint64_t)v.i;
        return true;
    case HP_AMQP_T_U8:
    case HP_AMQP_T_U16:
    case HP_AMQP_T_U32:
        *ms = v.u;
        return true;
    default:
        return false;
    }
}

/* Records how long ago a stamped delivery was sent, by this host's wall
 * clock (the sender's is another host's, maybe: a stamp ahead of ours
 * counts as 0). No memory for the histogram: no sample, nothing else. */
static void deliver_latency_record(hp_amqp_conn_t *a, const hp_amqp_props_t *props)
{
    uint64_t sent_ms;
    if (!delivery_stamp(props, &sent_ms))
        return;
    if (!a->deliver_lat) {
        a->deliver_lat = hp_malloc(sizeof *a->deliver_lat);
        if (!a->deliver_lat)
            return;
        if (hp_hist_init(a->deliver_lat, HP_AMQP_DELIVER_LAT_LOWEST,
                         HP_AMQP_DELIVER_LAT_HIGHEST, HP_AMQP_DELIVER_LAT_DIGITS) < 0) {
            hp_free(a->deliver_lat);
            a->deliver_lat = NULL;
            return;
        }
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    uint64_t ms = now_ms > sent_ms ? now_ms - sent_ms : 0;
    /* Past the histogram's top (an hour) it is recorded as the top: no
     * product overflows for any stamp. */
    uint64_t top_ms = HP_AMQP_DELIVER_LAT_HIGHEST / 1000000u + 1;
    hp_hist_record(a->deliver_lat, (ms < top_ms ? ms : top_ms) * 1000000u);
}

void amqp_deliver_latency_free(hp_amqp_conn_t *a)
{
    if (!a->deliver_lat)
        return;
    hp_hist_destroy(a->deliver_lat);
    hp_free(a->deliver_lat);
    a->deliver_lat = NULL;
}

const struct hp_hist *hp_amqp_deliver_latency(const hp_amqp_conn_t *c)
{
    return c->deliver_lat;
}

void hp_amqp_deliver_latency_reset(hp_amqp_conn_t *c)
{
    if (c->deliver_lat)
        hp_hist_reset(c->deliver_lat);
}

/* ---- messages from the broker, whole ---- */

/* Fills in what a delivery (basic.deliver or get-ok) says: its tag moved
 * past those of lost connections, and counts it. */
static void delivered(hp_amqp_channel_t *ch, hp_amqp_delivery_t *d, uint64_t tag,
                      bool redelivered, hp_amqp_bytes_t exchange, hp_amqp_bytes_t routing_key)
{
    hp_amqp_conn_t *a = ch->conn;
    d->delivery_tag = tag + ch->tag_offset;
    if (d->delivery_tag > ch->max_tag)
        ch->max_tag = d->delivery_tag;
    d->redelivered = redelivered;
    d->exchange = exchange;
    d->routing_key = routing_key;
    a->stats.delivered++;
    a->stats.redelivered += redelivered;
    deliver_latency_record(a, &d->props);
}

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
        delivered(ch, &d, m.basic_deliver.delivery_tag, m.basic_deliver.redelivered,
                  m.basic_deliver.exchange, m.basic_deliver.routing_key);
        amqp_consumer_t *k = amqp_consumer_find(ch, d.consumer_tag, NULL);
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
        amqp_op_pop(ch);
        d.message_count = m.basic_get_ok.message_count;
        delivered(ch, &d, m.basic_get_ok.delivery_tag, m.basic_get_ok.redelivered,
                  m.basic_get_ok.exchange, m.basic_get_ok.routing_key);
        if (op->on_msg)
            op->on_msg(ch, &d, op->msg_arg);
        amqp_op_free(op);
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

/* ---- acknowledgements ---- */

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
