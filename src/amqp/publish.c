/*
 * publish.c - AMQP publishing: messages framed straight into the
 * connection's output (one at a time or a batch in one writev), and in
 * confirm mode the window of unconfirmed publishes, their completion by
 * the broker's acks and nacks, and what a recovery publishes again.
 *
 * Central structures: per channel in confirm mode, a ring of `window`
 * slots indexed by the broker's sequence number; each slot holds the
 * caller's callback and its own sequence number (which survives a
 * recovery), and with HP_AMQP_REPUBLISH a copy of the message's frames.
 * With cfg.publish_queue_bytes, per channel a second ring of the same
 * entries, growable: the publishes that found no room, framed and
 * numbered, waiting in order (the queue).
 *
 * Invariants:
 *  - sequence numbers base .. next_seq - 1 are the unconfirmed ones,
 *    next_seq - base <= window, and each publish's callback runs exactly
 *    once (acked, nacked, or failed when the channel goes, queued or not);
 *  - a publish is whole or not at all: refused (-EAGAIN, -ENOTCONN...)
 *    before a byte is queued, never half framed; a batch is queued whole;
 *  - while a channel's queue is not empty, nothing is sent around it: a
 *    publish goes behind it, and the queue goes out from its head only;
 *    q_bytes <= publish_queue_bytes;
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

/* ---- framing ---- */

/* Bytes the properties take at most on the wire (flags included). */
HP_INLINE size_t props_size(const hp_amqp_props_t *p)
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
HP_INLINE void frame_message(hp_amqp_wr_t *w, uint16_t channel, uint32_t frame_max,
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

HP_INLINE int prepare(const hp_amqp_conn_t *a, const hp_amqp_msg_t *msg, prepared_t *p)
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

/* ---- room ---- */

/* Whether `n` more publishes on `ch` must wait: the connection is lost
 * or blocked, or the confirm window has no room for them. */
HP_INLINE bool must_wait(const hp_amqp_channel_t *ch, uint32_t n)
{
    const hp_amqp_conn_t *a = ch->conn;
    return a->recovering || ch->state == CH_RECOVERING || a->blocked ||
           (ch->confirm && ch->next_seq - ch->base + n > ch->window);
}

/* Where `len` bytes of frames go now. Returns 0 with *at in the output
 * chunk (committed with amqp_out_commit), 1 when they are to take a
 * buffer of their own (out_own), -EAGAIN when there is no room (on_drain
 * will come), or -ENOTCONN when looking for room found the connection
 * broken (then CLOSED has run: say so, not "try again"). */
HP_INLINE int out_room(hp_amqp_conn_t *a, size_t len, uint8_t **at)
{
    /* A buffer of their own is queued by reference, which the chunk's
     * room does not bound: it goes only behind nothing, what is queued
     * being sent first, so that while the broker does not read the client
     * holds at most one such buffer (and the chunk). A flush that finds
     * the connection broken has closed it (a->c is NULL). */
    bool own = len > a->worker->cfg->wbuf_size / 2;
    if (own && hp_conn_pending(a->c) > 0 && hp_conn_flush(a->c) != 0)
        return a->c ? -EAGAIN : -ENOTCONN;
    if (!own && (*at = amqp_out_reserve(a, len)) != NULL)
        return 0;
    if (a->dead || !a->c || hp_conn_is_closed(a->c))
        return -ENOTCONN;
    /* Refused with nothing queued: there is no room to wait for. The
     * chunk's inline area is smaller than wbuf_size (its segment table
     * comes first); the frames take a buffer of their own. */
    return own || hp_conn_pending(a->c) == 0 ? 1 : -EAGAIN;
}

/* Hands `buf` (owned: freed on every path) of `len` bytes of frames to
 * the connection. Returns 0 or -EAGAIN. */
static int out_own(hp_amqp_conn_t *a, uint8_t *buf, size_t len)
{
    if (hp_conn_write_ref(a->c, buf, len, true) < 0) /* frees it */
        return -EAGAIN;
    a->stats.bytes_out += len;
    amqp_note_sent(a);
    hp_conn_flush_soon(a->c);
    return 0;
}

/* ---- the queue (cfg.publish_queue_bytes) ---- */

/* What an entry counts against the bound: its frames and itself. */
static uint64_t entry_bytes(const amqp_confirm_t *e)
{
    return e->len + sizeof *e;
}

/* Room in the ring for `more` entries. Returns 0 or -ENOMEM. */
static int queue_grow(hp_amqp_channel_t *ch, uint32_t more)
{
    if (ch->q_len + more <= ch->q_cap)
        return 0;
    uint32_t cap = ch->q_cap ? ch->q_cap : 16;
    while (cap < ch->q_len + more)
        cap *= 2;
    amqp_confirm_t *q = hp_malloc(cap * sizeof *q);
    if (!q)
        return -ENOMEM;
    for (uint32_t i = 0; i < ch->q_len; i++)
        q[i] = ch->queue[(ch->q_head + i) % ch->q_cap];
    hp_free(ch->queue);
    ch->queue = q;
    ch->q_cap = cap;
    ch->q_head = 0;
    return 0;
}

/* Takes the head entry out of the queue; its frames are the caller's. */
static amqp_confirm_t queue_pop(hp_amqp_channel_t *ch)
{
    hp_amqp_stats_t *st = &ch->conn->stats;
    amqp_confirm_t e = ch->queue[ch->q_head];
    ch->q_head = ch->q_head + 1 == ch->q_cap ? 0 : ch->q_head + 1;
    ch->q_bytes -= entry_bytes(&e);
    st->queued--;
    st->queued_bytes -= entry_bytes(&e);
    if (--ch->q_len == 0) { /* an idle channel holds nothing */
        hp_free(ch->queue);
        ch->queue = NULL;
        ch->q_cap = ch->q_head = 0;
    }
    return e;
}

/* A queued publish that will never be sent: its callback, once. Entries
 * numbered (published in confirm mode) count as failed unconfirmed. */
static void queued_failed(hp_amqp_channel_t *ch, amqp_confirm_t *e, int err)
{
    hp_free(e->frames);
    if (e->seq)
        ch->conn->stats.unconfirmed_failed++;
    if (e->cb)
        e->cb(ch, e->seq, err, e->arg);
}

void amqp_publish_queue_fail(hp_amqp_channel_t *ch, int err)
{
    hp_amqp_conn_t *a = ch->conn;
    amqp_enter(a);
    /* Taken out before its callback runs: a callback that drops the
     * channel fails the rest from here (the loop then finds none). */
    while (ch->q_len) {
        amqp_confirm_t e = queue_pop(ch);
        queued_failed(ch, &e, err);
    }
    amqp_leave(a);
}

/* Queues msgs[0, n) behind what waits on `ch`, whole or not at all:
 * framed now (the caller's buffers are free again) and numbered now, the
 * numbers their confirms will carry. Returns 0, -EAGAIN when they would
 * take the queue past its bound (nothing queued), or -EINVAL, -EMSGSIZE,
 * -ENOMEM. */
static HP_COLD int queue_add(hp_amqp_channel_t *ch, const hp_amqp_msg_t *msgs, uint32_t n,
                             hp_amqp_confirm_cb cb, void *const *args, void *arg,
                             uint64_t *first)
{
    hp_amqp_conn_t *a = ch->conn;
    /* What they will take at most, checked before anything is framed. */
    uint64_t need = 0;
    for (uint32_t i = 0; i < n; i++) {
        prepared_t p;
        int err = prepare(a, &msgs[i], &p);
        if (err)
            return err;
        need += p.size + sizeof(amqp_confirm_t);
    }
    if (ch->q_bytes + need > a->cfg.publish_queue_bytes) {
        a->want_writable = true;
        return -EAGAIN;
    }
    if (queue_grow(ch, n) < 0)
        return -ENOMEM;
    /* Framed into the free slots behind the tail; they join the queue
     * only once all are framed. */
    uint64_t seq = ch->confirm ? ch->user_seq : 0, bytes = 0;
    uint32_t i = 0;
    int err = 0;
    for (; i < n; i++) {
        prepared_t p;
        prepare(a, &msgs[i], &p);
        uint8_t *frames = hp_malloc(p.size);
        if (!frames) {
            err = -ENOMEM;
            break;
        }
        hp_amqp_wr_t w = hp_amqp_wr(frames, p.size);
        frame_message(&w, ch->id, a->frame_max, &p.pub, &msgs[i], p.props, &err);
        if (err || w.overflow) {
            err = err == -ENOBUFS || !err ? -EINVAL : err;
            hp_free(frames);
            break;
        }
        /* p.size counted every property as present: hold only what the
         * frames take, which is what the entry counts. */
        uint8_t *fit = w.len < p.size ? hp_realloc(frames, w.len) : NULL;
        if (fit)
            frames = fit;
        amqp_confirm_t *e = &ch->queue[(ch->q_head + ch->q_len + i) % ch->q_cap];
        *e = (amqp_confirm_t){.cb = cb,
                              .arg = args ? args[i] : arg,
                              .seq = seq ? seq + i : 0,
                              .frames = frames,
                              .len = (uint32_t)w.len};
        bytes += entry_bytes(e);
    }
    if (i < n) {
        while (i-- > 0)
            hp_free(ch->queue[(ch->q_head + ch->q_len + i) % ch->q_cap].frames);
        if (ch->q_len == 0) {
            hp_free(ch->queue);
            ch->queue = NULL;
            ch->q_cap = 0;
        }
        return err;
    }
    ch->q_len += n;
    ch->q_bytes += bytes;
    a->stats.queued += n;
    a->stats.queued_bytes += bytes;
    if (seq)
        ch->user_seq += n;
    if (first)
        *first = seq;
    return 0;
}

/* A publish found no room: it waits in the queue when there is one, else
 * the caller hears -EAGAIN and waits for on_writable. */
static HP_COLD int publish_later(hp_amqp_channel_t *ch, const hp_amqp_msg_t *msgs, uint32_t n,
                                 hp_amqp_confirm_cb cb, void *const *args, void *arg,
                                 uint64_t *first)
{
    if (ch->conn->cfg.publish_queue_bytes)
        return queue_add(ch, msgs, n, cb, args, arg, first);
    ch->conn->want_writable = true;
    return -EAGAIN;
}

/* Sends what waits in `ch`'s queue, from its head, while there is room:
 * each entry takes a confirm slot as if published now (one queued before
 * confirm.select takes one with no callback: the broker numbers it). */
static void queue_send(hp_amqp_channel_t *ch)
{
    hp_amqp_conn_t *a = ch->conn;
    bool keep = ch->confirm && a->cfg.unconfirmed == HP_AMQP_REPUBLISH;
    while (ch->q_len && a->c && (ch->state == CH_OPEN || ch->state == CH_OPENING) &&
           !must_wait(ch, 1)) {
        uint8_t *at = NULL;
        int room = out_room(a, ch->queue[ch->q_head].len, &at);
        if (room < 0)
            break; /* on_drain comes back, or the channel fails what is left */
        amqp_confirm_t e = queue_pop(ch);
        uint8_t *kept = keep ? e.frames : NULL;
        if (room == 0) {
            memcpy(at, e.frames, e.len);
            amqp_out_commit(a, e.len);
            if (!keep)
                hp_free(e.frames);
        } else {
            /* The frames go by reference; the slot keeps a copy. */
            uint8_t *copy = keep ? hp_malloc(e.len) : e.frames;
            if (copy && keep)
                memcpy(copy, e.frames, e.len);
            if (!copy || out_own(a, copy, e.len) < 0) {
                e.frames = kept;
                queued_failed(ch, &e, -ENOBUFS);
                if (amqp_channel_gone(ch))
                    return;
                continue;
            }
        }
        a->stats.published++;
        if (ch->confirm) {
            e.frames = kept;
            ch->ring[(ch->next_seq++ - 1) % ch->window] = e;
        }
    }
}

void amqp_channel_writable(hp_amqp_conn_t *a)
{
    if (a->blocked || a->dead)
        return;
    if (HP_UNLIKELY(a->stats.queued)) {
        amqp_enter(a);
        for (uint32_t i = 1; a->chans && i <= a->channel_max && !a->dead; i++) {
            if (a->chans[i] && a->chans[i]->q_len)
                queue_send(a->chans[i]);
        }
        bool dead = a->dead;
        amqp_leave(a); /* frees it when dead */
        if (dead)
            return;
    }
    if (!a->want_writable || !a->on_writable)
        return;
    a->want_writable = false;
    a->on_writable(a, a->writable_arg);
}

/* ---- publishing ---- */

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
    /* Behind a queue, never around it. */
    if (HP_UNLIKELY(ch->q_len) || must_wait(ch, n))
        return publish_later(ch, msgs, n, cb, args, arg, first);
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
    uint8_t *at = NULL;
    int room = out_room(a, total, &at);
    bool own = room == 1;
    if (room < 0) {
        err = room;
    } else if (own && !(at = hp_malloc(total))) {
        err = -ENOMEM;
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
        } else {
            err = out_own(a, at, w.len);
        }
    }
    amqp_leave(a);
    if (err) {
        for (uint32_t i = 0; i < n; i++)
            hp_free(p[i].frames);
        if (p != one)
            hp_free(p);
        /* No room in the output: wait in the queue, or for on_writable. */
        return err == -EAGAIN ? publish_later(ch, msgs, n, cb, args, arg, first) : err;
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
