/*
 * app_amqp.c - the app's AMQP side: amqp.connections connections per
 * worker, each with amqp.channels channels in confirm mode, and the route
 * that publishes a request's body through them and answers once the
 * broker has confirmed. Its settings are checked and kept by
 * app_amqp_settings.c; the hotpath_amqp_* metrics are app_amqp_metrics.c's
 * (the worker writes its shard through app_amqp_shard_refresh); the
 * types the three share are in app_amqp_worker_int.h.
 *
 * Central structures: per worker, an amqp_worker_t (the protocol data of
 * app_amqp_proto, which no engine connection runs: it exists for its
 * worker_init and worker_fini) holding the links to the broker (each an
 * amqp_link_t: a connection, its state, its retry timer, and its
 * channels, amqp_chan_t, with their state and unconfirmed counts), a
 * table of publish slots, one per request waiting to publish or message
 * the broker has not confirmed yet, as many as the channels' confirm
 * windows (and publish queues) allow, and the worker's circuit breaker
 * (amqp_breaker.h) when amqp.breaker_failures is set. A slot outlives its
 * request when the request times out (504) or its client goes: the
 * broker's answer still comes, and finds the slot with no request in it.
 *
 * A request that cannot be published yet for a reason that passes (the
 * channel is being opened again, the connection recovers, the output or
 * the broker's window is full) waits in its slot and tries again after a
 * delay that doubles (publish_wait), until its timeout; nothing that may
 * have reached the broker is ever sent again by the app.
 *
 * Invariants:
 *  - a channel's unconfirmed count is the number of slots in use whose
 *    chan is that channel: set with the count raised at the publish,
 *    cleared with it lowered by slot_put;
 *  - a slot is taken from its request's arrival; it is in use (seq != 0)
 *    from its publish until the broker's answer for it (ack, nack, or the
 *    channel or connection going) has been handled; before its publish it
 *    is only waiting (ctx set, seq 0), and goes back when the request is
 *    answered or aborted. It holds a request (ctx) only while that
 *    request waits;
 *  - each publish is judged once by the breaker (`judged`): by its
 *    confirm, its timeout or its channel's loss, whichever comes first;
 *  - a request is answered exactly once: by its confirm, its timeout, or
 *    the settle pass after its channel went; each clears slot->ctx before
 *    answering, and an aborted request clears it before it vanishes;
 *  - hp_ctx_finish runs last in every path, with the slot already in its
 *    next state: it may start the next pipelined request, which may
 *    publish again from inside the confirm callback.
 *
 * publish_try() is the one gate a request passes (the breaker, then
 * link_pick(), which chooses the ready channel with the fewest
 * unconfirmed messages), and the links' functions are the only ones that
 * touch connections and channels. They are the app's own rather than an
 * hp_amqp_pool_t: the answers need each channel's close reason and the
 * pick its unconfirmed count. A connection is re-opened by the app when
 * the client's automatic recovery gave up or never started (retry_cb).
 */
#include "app_amqp_worker_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hotpath/alloc.h"
#include "hotpath/amqp.h"
#include "hotpath/log.h"
#include "hotpath/loop.h"
#include "net/worker_int.h"

/* Names in the URL that mean the default exchange (""), which a path
 * segment cannot spell. */
#define DEFAULT_EXCHANGE_DASH "-"
#define DEFAULT_EXCHANGE_NAME "amq.default"

/* ---- per worker ------------------------------------------------------------ */

/* Latency histograms: 1 us to 60 s at 2 digits, as the routes' are. */
#define LAT_LOWEST 1000ull
#define LAT_HIGHEST (60ull * 1000000000ull)
#define LAT_DIGITS 2

/* What the client's own recovery does not cover (a first connection that
 * never came up, a login or vhost refused, a channel the broker closed)
 * the app tries again: the first attempt waits RETRY_MIN_MS, each further
 * one twice as long, up to RETRY_MAX_MS, so a broker that is down is
 * asked a few times a second at first and once every five seconds after
 * that. */
#define RETRY_MIN_MS 100u
#define RETRY_MAX_MS 5000u


/* A request that cannot publish yet tries again after PUB_RETRY_MIN_MS,
 * then twice as long each time up to PUB_RETRY_MAX_MS, within its
 * timeout: a channel reopened after a 404 is back within a round trip or
 * two, a recovering connection within the client's recover_min_ms
 * (100 ms) and a few round trips, and a quarter of a second between
 * tries keeps a long wait from spinning. */
#define PUB_RETRY_MIN_MS 5u
#define PUB_RETRY_MAX_MS 250u

static const uint32_t SLOT_NONE = UINT32_MAX;

static inline void shard_add(uint64_t *counter, uint64_t n)
{
    __atomic_store_n(counter, *counter + n, __ATOMIC_RELAXED);
}

/* ---- slots ---- */

static pub_slot_t *slot_get(amqp_worker_t *aw)
{
    if (aw->free_head == SLOT_NONE)
        return NULL;
    uint32_t i = aw->free_head;
    pub_slot_t *s = &aw->slots[i];
    aw->free_head = s->next_free;
    /* The id grows by nslots each time the slot is used, and its
     * remainder is the slot: unique on this worker (never 0), and it
     * leads back here (on_return). In use from the publish on: seq. */
    s->id += aw->nslots;
    aw->in_use++;
    return s;
}

/* Keeps the id (the next use goes on from it); seq 0 marks it free. */
static void slot_put(amqp_worker_t *aw, pub_slot_t *s)
{
    if (s->chan) {
        s->chan->unconfirmed--;
        s->chan = NULL;
    }
    s->ctx = NULL;
    s->returned = 0;
    s->failed = 0;
    s->seq = 0;
    s->retry_ms = 0;
    s->judged = false;
    s->next_free = aw->free_head;
    aw->free_head = (uint32_t)(s - aw->slots);
    aw->in_use--;
}

static bool slot_in_use(const pub_slot_t *s)
{
    return s->seq != 0;
}

/* The slot a message id names, if it is ours and still waiting. */
static pub_slot_t *slot_by_message_id(amqp_worker_t *aw, hp_amqp_bytes_t mid)
{
    char text[64];
    if (mid.len == 0 || mid.len >= sizeof text)
        return NULL;
    memcpy(text, mid.ptr, mid.len);
    text[mid.len] = '\0';
    uint64_t nonce, id;
    unsigned worker;
    char end;
    if (sscanf(text, "%16" SCNx64 "-%u-%" SCNu64 "%c", &nonce, &worker, &id, &end) != 3 ||
        nonce != aw->a->nonce || worker != hp_worker_id(aw->w) || id == 0)
        return NULL;
    pub_slot_t *s = &aw->slots[id % aw->nslots];
    return slot_in_use(s) && s->id == id ? s : NULL;
}

static int message_id(const amqp_worker_t *aw, const pub_slot_t *s, char *out, size_t len)
{
    return snprintf(out, len, "%016" PRIx64 "-%u-%" PRIu64, aw->a->nonce, hp_worker_id(aw->w),
                    s->id);
}

/* ---- the breaker ---- */

static uint64_t clock_ms(const amqp_worker_t *aw)
{
    return hp_loop_clock_ns(aw->loop) / 1000000u;
}

/* Whether the breaker refuses a request now: open, or half-open with its
 * probe out. Takes no probe (hp_amqp_breaker_allow does, at the publish). */
static bool breaker_refuses(const amqp_worker_t *aw)
{
    return aw->has_breaker && hp_amqp_breaker_retry_after_ms(&aw->breaker, clock_ms(aw)) > 0;
}

/* Gives the breaker the outcome of s's publish, once: ok for a confirm
 * (an ack, a returned message included: the broker answered), not ok for
 * a nack, no confirm in time, its channel or connection lost, or a
 * request that found no way to the broker until its timeout. */
static void breaker_judge(amqp_worker_t *aw, pub_slot_t *s, bool ok)
{
    if (!aw->has_breaker || s->judged)
        return;
    s->judged = true;
    int was = hp_amqp_breaker_state(&aw->breaker);
    hp_amqp_breaker_record(&aw->breaker, clock_ms(aw), ok);
    int now = hp_amqp_breaker_state(&aw->breaker);
    if (now == HP_AMQP_BREAKER_OPEN && was != HP_AMQP_BREAKER_OPEN)
        hp_log(WARN, "amqp: worker %u: circuit open for %" PRIu64 " ms: the broker %s",
               hp_worker_id(aw->w), hp_amqp_breaker_retry_after_ms(&aw->breaker, clock_ms(aw)),
               was == HP_AMQP_BREAKER_CLOSED ? "failed too often" : "still fails");
    else if (now == HP_AMQP_BREAKER_CLOSED && was != HP_AMQP_BREAKER_CLOSED)
        hp_log(INFO, "amqp: worker %u: circuit closed: the broker answered",
               hp_worker_id(aw->w));
    app_amqp_shard_breaker(aw);
}

/* s's publish says nothing of the broker's health (it was never sent, or
 * the broker refused that one message): a probe goes back. */
static void breaker_release(amqp_worker_t *aw, const pub_slot_t *s)
{
    if (aw->has_breaker && !s->judged)
        hp_amqp_breaker_release(&aw->breaker);
}

/* ---- answers ---- */

/* Appends s[0, n) as a JSON string (RFC 8259 §7) at *p, within end.
 * Returns false when it does not fit (the caller's buffer is sized for the
 * longest names, so only a broker's long reply text can be cut). */
static bool json_str(char **p, char *end, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char *o = *p;
    if (o == end)
        return false;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (end - o < 7)
            return false;
        if (ch == '"' || ch == '\\') {
            *o++ = '\\';
            *o++ = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            memcpy(o, "\\u00", 4);
            o[4] = hex[ch >> 4];
            o[5] = hex[ch & 15];
            o += 6;
        } else {
            *o++ = (char)ch;
        }
    }
    if (o == end)
        return false;
    *o++ = '"';
    *p = o;
    return true;
}

static void json_raw(char **p, char *end, const char *s)
{
    size_t n = strlen(s);
    if ((size_t)(end - *p) >= n) {
        memcpy(*p, s, n);
        *p += n;
    }
}

/* A hex digit's value, or -1. */
static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes a name from the path into out (NUL-terminated, at most
 * SHORTSTR_MAX bytes). '+' is itself (only a query means space by it);
 * %2F is a '/', which names may hold. Returns the length, -EINVAL for a
 * malformed escape or an encoded NUL (names are C strings here), or
 * -ENAMETOOLONG. */
static int decode_name(const char *s, size_t n, char out[SHORTSTR_MAX + 1])
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '%') {
            int hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi | lo) == 0)
                return -EINVAL;
            ch = hi << 4 | lo;
            i += 2;
        }
        if (o == SHORTSTR_MAX)
            return -ENAMETOOLONG;
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return (int)o;
}

/* The request's exchange and routing key, decoded ("-" and
 * "amq.default" are the default exchange, ""). Returns 0 or -errno as
 * decode_name. */
static int request_names(const hp_ctx_t *ctx, char ex[SHORTSTR_MAX + 1],
                         char key[SHORTSTR_MAX + 1])
{
    size_t xl = 0, kl = 0;
    const char *x = hp_ctx_param(ctx, P_EXCHANGE, &xl);
    const char *k = hp_ctx_param(ctx, P_KEY, &kl);
    int r = decode_name(x ? x : "", x ? xl : 0, ex);
    if (r < 0)
        return r;
    if (!strcmp(ex, DEFAULT_EXCHANGE_DASH) || !strcmp(ex, DEFAULT_EXCHANGE_NAME))
        ex[0] = '\0';
    r = decode_name(k ? k : "", k ? kl : 0, key);
    return r < 0 ? r : 0;
}

/* Retry-After for a 503, in whole seconds: what is left of the breaker's
 * open time, rounded up, or 1. */
static uint64_t retry_after_s(const amqp_worker_t *aw)
{
    uint64_t ms = aw->has_breaker ? hp_amqp_breaker_retry_after_ms(&aw->breaker, clock_ms(aw))
                                  : 0;
    return ms > 1000 ? (ms + 999) / 1000 : 1;
}

/* Answers a request with `status` and a JSON body: {"error": what, the
 * exchange and routing key when they decode, `detail` (a reply text) when
 * given}; 503 adds Retry-After. Counts the outcome. */
static void answer_error(amqp_worker_t *aw, hp_ctx_t *ctx, int status, int outcome,
                         const char *what, const char *detail, size_t dlen)
{
    /* The longest names, escaped, and a reply text of 255 bytes. */
    char body[6 * (2 * SHORTSTR_MAX + 256) + 128];
    char *p = body, *end = body + sizeof body;
    char ex[SHORTSTR_MAX + 1], key[SHORTSTR_MAX + 1];
    shard_add(&aw->shard.outcomes[outcome], 1);
    json_raw(&p, end, "{\"error\":");
    json_str(&p, end, what, strlen(what));
    if (request_names(ctx, ex, key) == 0) {
        json_raw(&p, end, ",\"exchange\":");
        json_str(&p, end, ex, strlen(ex));
        json_raw(&p, end, ",\"routing_key\":");
        json_str(&p, end, key, strlen(key));
    }
    if (detail && dlen) {
        char *mark = p;
        json_raw(&p, end, ",\"reason\":");
        if (!json_str(&p, end, detail, dlen))
            p = mark;
    }
    json_raw(&p, end, "}");
    hp_ctx_status(ctx, status);
    if (status == 503) {
        char secs[24];
        snprintf(secs, sizeof secs, "%" PRIu64, retry_after_s(aw));
        hp_ctx_set_header(ctx, "Retry-After", secs);
    }
    if (hp_ctx_send(ctx, "application/json", body, (size_t)(p - body)) < 0)
        hp_ctx_send_status(ctx, status);
}

static void answer_accepted(amqp_worker_t *aw, hp_ctx_t *ctx, const pub_slot_t *s)
{
    char mid[64], body[160];
    message_id(aw, s, mid, sizeof mid);
    int n = snprintf(body, sizeof body, "{\"seq\":%" PRIu64 ",\"message_id\":\"%s\"}", s->seq,
                     mid);
    shard_add(&aw->shard.outcomes[OUT_ACCEPTED], 1);
    hp_ctx_status(ctx, 202);
    if (hp_ctx_send(ctx, "application/json", body, (size_t)n) < 0)
        hp_ctx_send_status(ctx, 202);
}

/* Detaches the request from its slot: no timeout, no abort callback. */
static hp_ctx_t *slot_take_ctx(amqp_worker_t *aw, pub_slot_t *s)
{
    hp_ctx_t *ctx = s->ctx;
    if (ctx) {
        hp_loop_timer_cancel(aw->loop, &s->timer);
        hp_ctx_on_abort(ctx, NULL, NULL);
        s->ctx = NULL;
    }
    return ctx;
}

/* Whether the channel closed because `ex` does not exist: RabbitMQ's
 * 404 to basic.publish names it: "NOT_FOUND - no exchange 'x' in vhost
 * '/'". */
static bool no_such_exchange(const amqp_link_t *l, const char *ex)
{
    if (l->close_code != HP_AMQP_NOT_FOUND)
        return false;
    char want[SHORTSTR_MAX + 16];
    snprintf(want, sizeof want, "exchange '%s'", ex);
    return strstr(l->close_text, want) != NULL;
}

/* The confirms that failed because their channel or connection went are
 * answered one loop iteration later, once the reason is known: the
 * channel's on_close (or the connection's CLOSED) runs after them. The
 * request that named a missing exchange gets 404; the others 503, since
 * nobody knows whether the broker took their message (retrying may
 * publish it twice). */
static void settle_cb(hp_timer_t *t)
{
    amqp_worker_t *aw = HP_CONTAINER_OF(t, amqp_worker_t, settle_timer);
    for (uint32_t i = 0; i < aw->nslots; i++) {
        pub_slot_t *s = &aw->slots[i];
        if (!slot_in_use(s) || !s->failed)
            continue;
        hp_ctx_t *ctx = slot_take_ctx(aw, s);
        const amqp_link_t *l = s->chan->link; /* set by its publish */
        char ex[SHORTSTR_MAX + 1], key[SHORTSTR_MAX + 1];
        /* A missing exchange is the request's fault, not the broker's. */
        bool missing = ctx && request_names(ctx, ex, key) == 0 && no_such_exchange(l, ex);
        if (missing)
            breaker_release(aw, s);
        else
            breaker_judge(aw, s, false);
        slot_put(aw, s);
        if (!ctx)
            continue;
        if (missing)
            answer_error(aw, ctx, 404, OUT_NO_EXCHANGE, "no such exchange", l->close_text,
                         strlen(l->close_text));
        else
            answer_error(aw, ctx, 503, OUT_UNCONFIRMED,
                         "unconfirmed: the broker connection or channel closed before it "
                         "answered; the message may or may not have been taken",
                         l->close_text, strlen(l->close_text));
        hp_ctx_finish(ctx);
    }
}

static void on_confirm(hp_amqp_channel_t *ch, uint64_t seq, int status, void *arg)
{
    (void)ch;
    (void)seq;
    pub_slot_t *s = arg;
    amqp_worker_t *aw = s->aw;
    if (status < 0) {
        s->failed = status;
        if (!hp_timer_armed(&aw->settle_timer))
            hp_loop_timer_arm(aw->loop, &aw->settle_timer, 0);
        return;
    }
    hp_hist_record(&aw->latency, hp_loop_clock_ns(aw->loop) - s->t0_ns);
    breaker_judge(aw, s, status == HP_AMQP_ACKED);
    hp_ctx_t *ctx = slot_take_ctx(aw, s);
    pub_slot_t done = *s;
    slot_put(aw, s);
    if (!ctx)
        return;
    if (status == HP_AMQP_ACKED && !done.returned)
        answer_accepted(aw, ctx, &done);
    else if (status == HP_AMQP_ACKED)
        answer_error(aw, ctx, 502, OUT_UNROUTABLE,
                     "unroutable: no queue is bound for this routing key (returned by the broker)",
                     NULL, 0);
    else
        answer_error(aw, ctx, 502, OUT_NACKED,
                     "nacked: the broker did not take responsibility for the message", NULL, 0);
    hp_ctx_finish(ctx);
}

/* A mandatory message no queue took comes back before its ack. */
static void on_return(hp_amqp_channel_t *ch, const hp_amqp_delivery_t *d, void *arg)
{
    (void)ch;
    amqp_chan_t *c = arg;
    pub_slot_t *s = slot_by_message_id(c->link->aw, d->props.message_id);
    if (s)
        s->returned = d->reply_code ? d->reply_code : HP_AMQP_NO_ROUTE;
}

static int publish_try(amqp_worker_t *aw, pub_slot_t *s);

/* A slot's timer: the next try of a request waiting to publish, or the
 * timeout of one waiting for its confirm. */
static void slot_timer_cb(hp_timer_t *t)
{
    pub_slot_t *s = HP_CONTAINER_OF(t, pub_slot_t, timer);
    amqp_worker_t *aw = s->aw;
    if (!slot_in_use(s)) {
        hp_ctx_t *ctx = s->ctx;
        if (publish_try(aw, s) == HP_DONE)
            hp_ctx_finish(ctx);
        return;
    }
    breaker_judge(aw, s, false);
    hp_ctx_t *ctx = slot_take_ctx(aw, s);
    if (!ctx)
        return;
    /* The slot stays in use until the broker answers. */
    answer_error(aw, ctx, 504, OUT_TIMEOUT,
                 "timeout: the broker did not confirm in time; it may still take the message",
                 NULL, 0);
    hp_ctx_finish(ctx);
}

static void on_abort(hp_ctx_t *ctx, void *arg)
{
    (void)ctx;
    pub_slot_t *s = arg;
    amqp_worker_t *aw = s->aw;
    hp_loop_timer_cancel(aw->loop, &s->timer);
    s->ctx = NULL;
    if (!slot_in_use(s))
        slot_put(aw, s); /* never published: no answer will come for it */
    shard_add(&aw->shard.outcomes[OUT_ABORTED], 1);
}

/* ---- the links ---- */

static void link_connect(amqp_link_t *l);
static void link_open_channels(amqp_link_t *l);

/* Tries again what is missing, the connection or its channels, after a
 * delay that doubles up to RETRY_MAX_MS. A connection lost once it was
 * ready is the client's to recover (RECOVERING / RECOVERED); it comes
 * here only when the client gave up (CLOSED). */
static void retry_cb(hp_timer_t *t)
{
    amqp_link_t *l = HP_CONTAINER_OF(t, amqp_link_t, retry_timer);
    if (l->aw->w->draining)
        return;
    if (!l->conn)
        link_connect(l);
    else if (l->state == HP_AMQP_STATE_READY || l->state == HP_AMQP_STATE_BLOCKED)
        link_open_channels(l);
}

static void retry_later(amqp_link_t *l)
{
    amqp_worker_t *aw = l->aw;
    if (aw->w->draining || hp_timer_armed(&l->retry_timer))
        return;
    l->retry_ms = l->retry_ms ? l->retry_ms * 2 : RETRY_MIN_MS;
    if (l->retry_ms > RETRY_MAX_MS)
        l->retry_ms = RETRY_MAX_MS;
    hp_loop_timer_arm(aw->loop, &l->retry_timer, l->retry_ms);
}

static void note_close(amqp_link_t *l, const hp_amqp_result_t *r)
{
    l->close_code = r->reply_code;
    l->close_class = r->class_id;
    l->close_method = r->method_id;
    if (r->reply_code) {
        uint32_t n = r->reply_text.len < sizeof l->close_text - 1 ? r->reply_text.len
                                                                  : sizeof l->close_text - 1;
        memcpy(l->close_text, r->reply_text.ptr, n);
        l->close_text[n] = '\0';
    } else {
        snprintf(l->close_text, sizeof l->close_text, "%s",
                 r->err ? strerror(-r->err) : "closed");
    }
}

static void chan_open(amqp_chan_t *c);

/* Channel ch of c is gone (refused, closed by the broker, or with its
 * connection). A channel that had worked is opened again at once (a
 * publish to a missing exchange closes it, and the next request must not
 * wait); one that failed before it worked waits for the retry timer. */
static void channel_lost(amqp_chan_t *c, hp_amqp_channel_t *ch, const hp_amqp_result_t *r)
{
    amqp_link_t *l = c->link;
    if (c->ch != ch || !ch)
        return; /* a channel replaced since */
    bool worked = c->ready;
    c->ch = NULL;
    c->ready = false;
    if (r)
        note_close(l, r);
    if (l->state != HP_AMQP_STATE_READY && l->state != HP_AMQP_STATE_BLOCKED)
        return; /* the connection's own events take it from here */
    if (worked)
        chan_open(c);
    else
        retry_later(l);
}

static void on_channel_close(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg)
{
    amqp_chan_t *c = arg;
    hp_log(WARN, "amqp: %s: channel closed: %u %.*s", c->link->tag, r->reply_code,
           (int)r->reply_text.len, (const char *)r->reply_text.ptr);
    channel_lost(c, ch, r);
}

static void on_confirm_mode(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg)
{
    amqp_chan_t *c = arg;
    if (c->ch != ch)
        return;
    if (r->err) {
        channel_lost(c, ch, r);
        return;
    }
    c->ready = true;
    c->link->retry_ms = 0;
    c->link->failures = 0;
    app_amqp_shard_refresh(c->link->aw);
}

static void on_channel_open(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg)
{
    (void)ch; /* NULL when it failed: c->ch says which */
    amqp_chan_t *c = arg;
    if (r->err)
        channel_lost(c, c->ch, r);
}

static void chan_open(amqp_chan_t *c)
{
    amqp_link_t *l = c->link;
    hp_amqp_channel_t *ch;
    int r = hp_amqp_channel_open(l->conn, on_channel_open, c, &ch);
    if (r < 0) {
        hp_log(WARN, "amqp: %s: cannot open a channel: %s", l->tag, strerror(-r));
        retry_later(l);
        return;
    }
    c->ch = ch;
    c->ready = false;
    hp_amqp_channel_on_close(ch, on_channel_close, c);
    hp_amqp_channel_on_return(ch, on_return, c);
    /* Queued behind the open; confirm mode is on once it completes. */
    r = hp_amqp_confirm_select(ch, l->aw->a->cfg.confirm_window, on_confirm_mode, c);
    if (r < 0) {
        hp_log(WARN, "amqp: %s: cannot select confirm mode: %s", l->tag, strerror(-r));
        hp_amqp_channel_close(ch, NULL, NULL);
        c->ch = NULL;
        retry_later(l);
    }
}

/* Opens the link's channels that are missing. */
static void link_open_channels(amqp_link_t *l)
{
    for (uint32_t j = 0; j < l->aw->nchans; j++)
        if (!l->chans[j].ch)
            chan_open(&l->chans[j]);
}

static void on_event(hp_amqp_conn_t *conn, int ev, const hp_amqp_result_t *r, void *arg)
{
    amqp_link_t *l = arg;
    amqp_worker_t *aw = l->aw;
    if (l->conn != conn)
        return;
    switch (ev) {
    case HP_AMQP_EV_READY:
        if (l->ever_ready)
            aw->base.recoveries++; /* reconnected by retry_cb */
        hp_log(INFO, "amqp: %s: connected to %s%s", l->tag, hp_amqp_address(conn, NULL),
               l->ever_ready ? " again" : "");
        l->ever_ready = true;
        l->state = HP_AMQP_STATE_READY;
        link_open_channels(l);
        break;
    case HP_AMQP_EV_BLOCKED:
        l->state = HP_AMQP_STATE_BLOCKED;
        break;
    case HP_AMQP_EV_UNBLOCKED:
        l->state = HP_AMQP_STATE_READY;
        break;
    case HP_AMQP_EV_RECOVERING:
        l->state = HP_AMQP_STATE_RECOVERING;
        note_close(l, r);
        break;
    case HP_AMQP_EV_RECOVERED:
        l->state = HP_AMQP_STATE_READY;
        hp_log(INFO, "amqp: %s: recovered on %s", l->tag, hp_amqp_address(conn, NULL));
        break;
    case HP_AMQP_EV_CLOSED:
        note_close(l, r);
        /* Said once when it goes, then about once a minute while the
         * broker stays away. */
        if (!aw->w->draining && (l->state == HP_AMQP_STATE_READY ||
                                 l->state == HP_AMQP_STATE_BLOCKED || l->failures++ % 12 == 0))
            hp_log(WARN, "amqp: %s: %s %s: %s; trying again", l->tag,
                   l->state == HP_AMQP_STATE_CONNECTING ? "cannot connect to"
                                                        : "lost the connection to",
                   hp_amqp_address(conn, NULL), l->close_text);
        app_amqp_base_add(aw, conn);
        l->conn = NULL;
        for (uint32_t j = 0; j < aw->nchans; j++)
            l->chans[j] = (amqp_chan_t){.link = l, .unconfirmed = l->chans[j].unconfirmed};
        l->state = HP_AMQP_STATE_CLOSED;
        retry_later(l);
        break;
    default:
        break;
    }
    app_amqp_shard_refresh(aw);
}

static void link_connect(amqp_link_t *l)
{
    amqp_worker_t *aw = l->aw;
    hp_amqp_config_t cfg = aw->a->cfg.conn;
    cfg.name = l->name;
    l->state = HP_AMQP_STATE_CONNECTING;
    int r = hp_amqp_connect(aw->w, &cfg, on_event, l, &l->conn);
    if (r < 0) {
        hp_log(WARN, "amqp: %s: cannot connect to %s:%u: %s", l->tag, cfg.host, cfg.port,
               strerror(-r));
        l->conn = NULL;
        l->state = HP_AMQP_STATE_CLOSED;
        retry_later(l);
    } else if (!hp_timer_armed(&aw->tick_timer)) {
        hp_loop_timer_arm(aw->loop, &aw->tick_timer, TICK_MS);
    }
    app_amqp_shard_refresh(aw);
}

/* Why link l cannot take a publish now, or NULL; *passes tells whether
 * the reason is one that goes by itself soon (a request may wait for it)
 * or one that lasts (a blocked broker: its alarm lifts when an operator
 * or a consumer frees memory or disk, so the request is answered at
 * once). */
static const char *link_unavailable(const amqp_link_t *l, bool *passes)
{
    *passes = true;
    switch (link_state(l)) {
    case HP_AMQP_STATE_READY:
        return NULL;
    case HP_AMQP_STATE_BLOCKED:
        *passes = false;
        return "the broker has blocked publishing (a resource alarm)";
    case HP_AMQP_STATE_RECOVERING:
        return "the connection to the broker is being recovered";
    case HP_AMQP_STATE_CONNECTING:
        return l->state == HP_AMQP_STATE_READY ? "the channel to the broker is being opened"
                                               : "connecting to the broker";
    default:
        return "not connected to the broker";
    }
}

/* The channel for the next publish: of the ready ones (their connection
 * ready, not blocked), the one with the fewest unconfirmed messages, ties
 * going round from next_chan so that a light load is spread too. One
 * pass over the worker's channels (at most 64 x 64; one by default).
 * NULL when none is ready: then *why says why, and *passes is false only
 * when every link lasts so (all blocked): a request waits while any link
 * may come back by itself. */
static amqp_chan_t *link_pick(amqp_worker_t *aw, const char **why, bool *passes)
{
    uint32_t n = aw->nlinks * aw->nchans;
    amqp_chan_t *best = NULL;
    for (uint32_t k = 0; k < n; k++) {
        amqp_chan_t *c = &aw->chans[(aw->next_chan + k) % n];
        if (c->ready && c->link->state == HP_AMQP_STATE_READY &&
            (!best || c->unconfirmed < best->unconfirmed))
            best = c;
    }
    if (best) {
        aw->next_chan = (uint32_t)(best - aw->chans + 1) % n;
        return best;
    }
    for (uint32_t i = 0; i < aw->nlinks; i++) {
        *why = link_unavailable(&aw->links[i], passes);
        if (*passes)
            break;
    }
    return NULL;
}

/* ---- the route ---- */

#define CIRCUIT_OPEN \
    "circuit open: the broker failed too often; publishing is suspended (see Retry-After)"

/* Answers s's request, which was never published, and frees the slot.
 * Returns HP_DONE (the caller finishes the request when it is not the
 * handler). */
static int publish_refuse(amqp_worker_t *aw, pub_slot_t *s, int status, int outcome,
                          const char *what)
{
    hp_ctx_t *ctx = slot_take_ctx(aw, s);
    slot_put(aw, s);
    answer_error(aw, ctx, status, outcome, what, NULL, 0);
    return HP_DONE;
}

/* s's request could not be published for a reason that passes (`why`):
 * it tries again after a delay that doubles up to PUB_RETRY_MAX_MS,
 * until its deadline; then (or at once while the worker stops) it gets
 * 503, and the breaker counts a failure: the broker was out of reach for
 * a whole timeout. Nothing of it was sent, so trying again cannot publish
 * it twice. */
static int publish_wait(amqp_worker_t *aw, pub_slot_t *s, const char *why)
{
    uint64_t now = clock_ms(aw);
    if (aw->w->draining || now >= s->deadline_ms) {
        breaker_judge(aw, s, false);
        return publish_refuse(aw, s, 503, OUT_UNAVAILABLE, why);
    }
    s->retry_ms = s->retry_ms ? 2 * s->retry_ms : PUB_RETRY_MIN_MS;
    if (s->retry_ms > PUB_RETRY_MAX_MS)
        s->retry_ms = PUB_RETRY_MAX_MS;
    uint64_t left = s->deadline_ms - now;
    hp_loop_timer_arm(aw->loop, &s->timer, s->retry_ms < left ? s->retry_ms : left);
    return HP_PENDING;
}

/* Publishes s's request on channel c (exchange, key, content type and
 * body from its ctx; its message id from the slot, the same on every
 * try). Returns hp_amqp_publish's result. */
static int publish_send(amqp_worker_t *aw, pub_slot_t *s, amqp_chan_t *c)
{
    hp_ctx_t *ctx = s->ctx;
    char ex[SHORTSTR_MAX + 1], key[SHORTSTR_MAX + 1];
    request_names(ctx, ex, key); /* checked by the handler */
    size_t tlen = 0;
    const char *type = hp_ctx_header(ctx, "Content-Type", &tlen);
    if (!type || tlen == 0) {
        type = aw->a->cfg.content_type;
        tlen = strlen(type);
    }
    char mid[64];
    int mlen = message_id(aw, s, mid, sizeof mid);
    hp_amqp_props_t props = {
        .flags = HP_AMQP_PROP_CONTENT_TYPE | HP_AMQP_PROP_DELIVERY_MODE |
                 HP_AMQP_PROP_MESSAGE_ID,
        .content_type = {type, (uint32_t)tlen},
        .delivery_mode = 2,
        .message_id = {mid, (uint32_t)mlen},
    };
    uint8_t stamp[64];
    if (aw->a->cfg.stamp) {
        /* The wall clock, for a consumer elsewhere: the header in ms (what
         * RabbitMQ's message-timestamp plugin sets), the property in s. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        hp_amqp_table_builder_t b;
        hp_amqp_table_init(&b, stamp, sizeof stamp);
        hp_amqp_table_add(&b, HP_AMQP_STAMP_HEADER,
                          &(hp_amqp_value_t){.type = HP_AMQP_T_I64, .i = ms});
        if (hp_amqp_table_finish(&b, &props.headers) == 0)
            props.flags |= HP_AMQP_PROP_HEADERS;
        props.flags |= HP_AMQP_PROP_TIMESTAMP;
        props.timestamp = (uint64_t)ts.tv_sec;
    }
    size_t blen;
    const char *body = hp_ctx_body(ctx, &blen);
    hp_amqp_msg_t m = {.exchange = ex, .routing_key = key, .props = &props, .body = body,
                       .len = blen, .mandatory = true};
    s->t0_ns = hp_loop_clock_ns(aw->loop);
    int r = hp_amqp_publish(c->ch, &m, on_confirm, s, &s->seq);
    if (r < 0) {
        s->seq = 0;
        return r;
    }
    s->chan = c;
    c->unconfirmed++;
    return 0;
}

/* One try at s's request, which waits in its slot: refused at once while
 * the breaker is open or the broker blocked, made to wait while no link
 * is ready, else published on the channel link_pick chooses. Returns HP_PENDING (published: its
 * confirm or its timeout answers it; or waiting for its next try) or
 * HP_DONE (answered, the slot freed). */
static int publish_try(amqp_worker_t *aw, pub_slot_t *s)
{
    if (breaker_refuses(aw))
        return publish_refuse(aw, s, 503, OUT_CIRCUIT_OPEN,
                              CIRCUIT_OPEN);
    bool passes;
    const char *why = NULL;
    amqp_chan_t *c = link_pick(aw, &why, &passes);
    if (!c && !passes)
        return publish_refuse(aw, s, 503, OUT_UNAVAILABLE, why);
    if (!c)
        return publish_wait(aw, s, why);
    /* Half-open: this may be the probe, or find the probes out. */
    if (aw->has_breaker && !hp_amqp_breaker_allow(&aw->breaker, clock_ms(aw))) {
        app_amqp_shard_breaker(aw);
        return publish_refuse(aw, s, 503, OUT_CIRCUIT_OPEN,
                              "circuit open: a probe message is testing the broker; "
                              "publishing resumes once it is confirmed");
    }
    app_amqp_shard_breaker(aw);
    int r = publish_send(aw, s, c);
    if (r == 0) {
        uint64_t now = clock_ms(aw);
        hp_loop_timer_arm(aw->loop, &s->timer, s->deadline_ms > now ? s->deadline_ms - now : 0);
        return HP_PENDING;
    }
    breaker_release(aw, s);
    if (r == -EMSGSIZE)
        return publish_refuse(aw, s, 413, OUT_TOO_LARGE,
                              "message larger than the broker takes (128 MiB)");
    if (r == -EINVAL)
        return publish_refuse(aw, s, 400, OUT_BAD_REQUEST, "a name the broker cannot take");
    /* -EAGAIN (output or confirm window full, or blocked just now),
     * -ENOTCONN (the channel closed under it): nothing was sent. */
    return publish_wait(aw, s, r == -EAGAIN ? "the broker is not taking messages this fast"
                                            : "the channel to the broker is not open");
}

int app_amqp_publish(hp_ctx_t *ctx, void *udata)
{
    const app_amqp_t *a = udata;
    amqp_worker_t *aw = hp_worker_proto_data(hp_ctx_worker(ctx), &app_amqp_proto);
    if (!aw) { /* the route without the app's engine: nothing to publish on */
        hp_ctx_send_status(ctx, 503);
        return HP_DONE;
    }
    char ex[SHORTSTR_MAX + 1], key[SHORTSTR_MAX + 1];
    int r = request_names(ctx, ex, key);
    if (r < 0) {
        answer_error(aw, ctx, 400, OUT_BAD_REQUEST,
                     r == -ENAMETOOLONG ? "exchange or routing key longer than 255 bytes"
                                        : "malformed percent-encoding or %00 in a name",
                     NULL, 0);
        return HP_DONE;
    }
    size_t tlen = 0;
    if (hp_ctx_header(ctx, "Content-Type", &tlen) && tlen > SHORTSTR_MAX) {
        answer_error(aw, ctx, 400, OUT_BAD_REQUEST, "Content-Type longer than 255 bytes", NULL,
                     0);
        return HP_DONE;
    }
    /* Refused before it takes a slot: the breaker's answer comes at once,
     * whatever the window holds. */
    if (breaker_refuses(aw)) {
        answer_error(aw, ctx, 503, OUT_CIRCUIT_OPEN,
                     CIRCUIT_OPEN,
                     NULL, 0);
        return HP_DONE;
    }
    pub_slot_t *s = slot_get(aw);
    if (!s) {
        answer_error(aw, ctx, 503, OUT_UNAVAILABLE,
                     "too many messages wait for the broker's confirms", NULL, 0);
        return HP_DONE;
    }
    s->ctx = ctx;
    s->deadline_ms = clock_ms(aw) + a->cfg.timeout_ms;
    hp_ctx_on_abort(ctx, on_abort, s);
    return publish_try(aw, s);
}

/* ---- the protocol ---------------------------------------------------------- */

static void worker_fini(hp_worker_t *w, void *data)
{
    (void)w;
    amqp_worker_t *aw = data;
    if (!aw)
        return;
    /* The engine closed every connection before this: the CLOSED events
     * have run, and the requests are gone. */
    for (uint32_t i = 0; aw->links && i < aw->nlinks; i++) {
        if (aw->links[i].conn)
            hp_amqp_close(aw->links[i].conn);
        hp_loop_timer_cancel(aw->loop, &aw->links[i].retry_timer);
    }
    hp_free(aw->links);
    hp_free(aw->chans);
    hp_loop_timer_cancel(aw->loop, &aw->tick_timer);
    hp_loop_timer_cancel(aw->loop, &aw->settle_timer);
    for (uint32_t i = 0; aw->slots && i < aw->nslots; i++)
        hp_loop_timer_cancel(aw->loop, &aw->slots[i].timer);
    hp_free(aw->slots);
    hp_hist_destroy(&aw->latency);
    hp_hist_destroy(&aw->merged);
    hp_hist_destroy(&aw->deliver);
    hp_hist_destroy(&aw->deliver_merged);
    hp_free(aw);
}

static int worker_init(hp_worker_t *w, void *arg, void **data)
{
    const app_amqp_t *a = arg;
    amqp_worker_t *aw = hp_calloc_aligned(sizeof *aw);
    if (!aw)
        return -ENOMEM;
    aw->a = a;
    aw->w = w;
    aw->loop = hp_worker_loop(w);
    hp_timer_init(&aw->tick_timer, app_amqp_tick_cb);
    hp_timer_init(&aw->settle_timer, settle_cb);
    aw->nlinks = a->cfg.connections;
    aw->nchans = a->cfg.channels;
    aw->links = hp_calloc(aw->nlinks, sizeof *aw->links);
    aw->chans = hp_calloc((size_t)aw->nlinks * aw->nchans, sizeof *aw->chans);
    aw->nslots = app_amqp_worker_slots(&a->cfg);
    aw->slots = hp_calloc(aw->nslots, sizeof *aw->slots);
    if (!aw->links || !aw->chans || !aw->slots ||
        hp_hist_init(&aw->latency, LAT_LOWEST, LAT_HIGHEST, LAT_DIGITS) < 0 ||
        hp_hist_init(&aw->merged, LAT_LOWEST, LAT_HIGHEST, LAT_DIGITS) < 0 ||
        hp_hist_init(&aw->deliver, HP_AMQP_DELIVER_LAT_LOWEST, HP_AMQP_DELIVER_LAT_HIGHEST,
                     HP_AMQP_DELIVER_LAT_DIGITS) < 0 ||
        hp_hist_init(&aw->deliver_merged, HP_AMQP_DELIVER_LAT_LOWEST,
                     HP_AMQP_DELIVER_LAT_HIGHEST, HP_AMQP_DELIVER_LAT_DIGITS) < 0) {
        worker_fini(w, aw);
        return -ENOMEM;
    }
    /* Checked by app_amqp_check: init cannot refuse it. */
    aw->has_breaker = a->cfg.breaker.failures > 0 &&
                      hp_amqp_breaker_init(&aw->breaker, &a->cfg.breaker) == 0;
    /* Each slot's id starts at its index: its first use adds nslots. */
    aw->free_head = SLOT_NONE;
    for (uint32_t i = aw->nslots; i-- > 0;) {
        pub_slot_t *s = &aw->slots[i];
        s->aw = aw;
        s->id = i;
        hp_timer_init(&s->timer, slot_timer_cb);
        s->next_free = aw->free_head;
        aw->free_head = i;
    }
    for (uint32_t i = 0; i < aw->nlinks; i++) {
        amqp_link_t *l = &aw->links[i];
        l->aw = aw;
        l->chans = &aw->chans[i * aw->nchans];
        l->state = HP_AMQP_STATE_CLOSED;
        hp_timer_init(&l->retry_timer, retry_cb);
        for (uint32_t j = 0; j < aw->nchans; j++)
            l->chans[j].link = l;
        /* With one connection per worker, its name is the worker's. */
        if (aw->nlinks == 1)
            snprintf(l->tag, sizeof l->tag, "worker %u", hp_worker_id(w));
        else
            snprintf(l->tag, sizeof l->tag, "worker %u connection %u", hp_worker_id(w), i);
        snprintf(l->name, sizeof l->name, "hotpath[%d] %s", (int)getpid(), l->tag);
    }
    /* Before the worker's thread starts: the connections are dialled
     * from its loop once it runs. */
    for (uint32_t i = 0; i < aw->nlinks; i++)
        link_connect(&aw->links[i]);
    *data = aw;
    return 0;
}

const hp_proto_t app_amqp_proto = {
    .name = "amqp-app",
    .worker_init = worker_init,
    .worker_fini = worker_fini,
};

