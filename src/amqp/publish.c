/*
 * publish.c - AMQP publishing: messages framed straight into the
 * connection's output (one at a time or a batch in one writev), and in
 * confirm mode the window of unconfirmed publishes, their completion by
 * the broker's acks and nacks, and what a recovery publishes again.
 *
 * Central structure: per channel in confirm mode, a ring of `window`
 * slots indexed by the broker's sequence number; each slot holds the
 * caller's callback and its own sequence number (which survives a
 * recovery), and with HP_AMQP_REPUBLISH a copy of the message's frames.
 *
 * Invariants:
 *  - sequence numbers base .. next_seq - 1 are the unconfirmed ones,
 *    next_seq - base <= window, and each publish's callback runs exactly
 *    once (acked, nacked, or failed when the channel goes);
 *  - a publish is whole or not at all: refused (-EAGAIN, -ENOTCONN...)
 *    before a byte is queued, never half framed;
 *  - after a user callback returns, the channel may have been dropped or
 *    the connection closed: the code checks (amqp_channel_gone) before
 *    touching either again.
 */
#include "hotpath/amqp.h"

#include <errno.h>
#include <string.h>

#include "client_int.h"
#include "hotpath/alloc.h"
#include "net/worker_int.h"

/* ---- confirms ---- */

void amqp_confirm_resolve(hp_amqp_channel_t *ch, uint64_t seq, int status)
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
void amqp_confirm_advance(hp_amqp_channel_t *ch)
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
int amqp_confirm_in(hp_amqp_channel_t *ch, uint64_t tag, bool multiple, int status)
{
    hp_amqp_conn_t *a = ch->conn;
    if (!ch->confirm || tag >= ch->next_seq || (tag == 0 && !multiple)) {
        amqp_fail(a, HP_AMQP_COMMAND_INVALID, "a confirm for a message never published");
        return -1;
    }
    uint64_t base = ch->base;
    uint64_t from = multiple ? ch->base : tag;
    for (uint64_t s = from; s <= tag && s >= ch->base; s++) {
        amqp_confirm_resolve(ch, s, status);
        if (amqp_channel_gone(ch))
            return 0;
    }
    amqp_confirm_advance(ch);
    /* Room freed: a publish refused for the lack of it may go now. Not
     * only when the window was full: a batch is refused by one that has
     * less room than it needs. (amqp_channel_writable does nothing unless
     * a publish was refused.) */
    if (ch->base != base)
        amqp_channel_writable(a);
    return 0;
}

/* ---- after a recovery ---- */

/* The channel is open again after a recovery: the new channel numbers
 * confirms from 1 again. */
void amqp_confirm_republish(hp_amqp_channel_t *ch)
{
    hp_amqp_conn_t *a = ch->conn;
    if (!ch->ring)
        return;
    /* What is still unconfirmed moves to the front of the ring, in order, and goes out
     * again (HP_AMQP_REPUBLISH), keeping the numbers the caller knows. */
    uint64_t n = ch->next_seq - ch->base;
    amqp_confirm_t *keep = n ? hp_malloc(n * sizeof *keep) : NULL;
    if (n && !keep) {
        for (uint64_t s = ch->base; s < ch->next_seq && !amqp_channel_gone(ch); s++)
            amqp_confirm_resolve(ch, s, -ENOMEM);
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
    for (uint32_t i = 0; i < k && a->c && !amqp_channel_gone(ch); i++) {
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
                amqp_confirm_resolve(ch, i + 1u, -ENOBUFS);
                continue;
            }
            hp_conn_flush_soon(a->c);
        }
        a->stats.republished++;
    }
    amqp_confirm_advance(ch);
}

/* ---- writable again ---- */

void amqp_channel_writable(hp_amqp_conn_t *a)
{
    if (!a->want_writable || !a->on_writable || a->blocked || a->dead)
        return;
    a->want_writable = false;
    a->on_writable(a, a->writable_arg);
}

/* ---- publishing ---- */

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
    b->exchange = amqp_name(msg->exchange);
    b->routing_key = amqp_name(msg->routing_key);
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
