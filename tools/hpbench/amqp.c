/*
 * amqp.c - hpbench's amqp:// load: producers and consumers on hotpath's
 * AMQP client, PerfTest-like, on the same worker threads as the HTTP load.
 *
 * Central structures, per thread (hb_athread_t, an hp_worker): its AMQP
 * connections (hb_aconn_t), the producers (channels) on its producer
 * connections, its consumers (one connection each), and a run queue of
 * the producers that may publish now. A producer leaves the run queue
 * when it must wait: for confirms (its window of --confirm W unconfirmed
 * messages is full: its confirm callback puts it back), for room in its
 * connection's output (hp_amqp_publish said -EAGAIN: it waits on the
 * connection's list until hp_amqp_on_writable), or for its next due time
 * (-R: the rate deadline puts it back). The run queue is served by a 0 ms
 * timer, outside every AMQP callback, a burst per producer and a budget
 * per turn, so that hundreds of producers share one loop fairly and the
 * loop still reads its sockets between turns.
 *
 * Each body starts with a header (run, producer, sequence, intended and
 * actual send time); consumers decode it for end-to-end latency. Confirm
 * latency comes from a ring per producer of the send times of its
 * unconfirmed messages, indexed by publish sequence number.
 *
 * Counting: a message counts when it was due (-R; else sent) at or after
 * the end of the warm-up (plan->record_from_ns), and its confirm, return
 * or delivery counts whenever it comes (during the drain after the run
 * too), so that published, confirmed and consumed can be compared
 * exactly, and -R never counts more than the schedule's share of the
 * measured part.
 *
 * Invariants: a producer is in at most one list (run queue or one
 * connection's wait list) and its `state` says which; inflight <= W; the
 * ring slots of sequence numbers first .. first + inflight - 1 are live.
 */
#include "bench.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "hotpath/alloc.h"
#include "hotpath/clock.h"
#include "hotpath/engine.h"
#include "net/worker_int.h"

/* Messages a producer publishes in a row before the next one's turn: a
 * few output chunks of small messages, short enough that hundreds of
 * producers on a thread all publish within a turn of the loop. */
#define HB_AMQP_BURST 64
/* Messages published per turn of the run queue, over all producers,
 * before the loop reads its sockets again (acks and deliveries waiting
 * there free windows and bound latency). */
#define HB_AMQP_TURN 2048
/* A safety net for a producer whose wake-up was lost (it waits for
 * confirms that the library already counted as settled): every tick,
 * producers that are idle with room in their window go back to work. */
#define HB_AMQP_TICK_MS 10
/* -R: the schedule's granularity. The loop wakes at the next due time,
 * but never sooner than this after the last wake-up, and then publishes
 * every message that is due: at 10,000 msg/s one wake-up sends ten
 * instead of ten wake-ups sending one each (a wake-up, with its
 * epoll_wait and its own writev, cost ~25 us a message). A message waits
 * at most this long after its due time; the corrected latency, measured
 * from the due time, counts that wait. wrk2's timers are as coarse. */
#define HB_AMQP_RATE_TICK_NS 1000000ull
/* -R: the loop wakes at least this often all the same (a safety net: a
 * producer back from a full window or output is woken by its confirm or
 * by on_writable, not by this). */
#define HB_AMQP_RATE_CAP_NS 10000000ull
/* Queues outlive a killed hpbench by this much at most (x-expires, on top
 * of the run's length): the broker removes them then. */
#define HB_AMQP_EXPIRES_MARGIN_MS 300000ull

/* Where a producer is. */
enum { P_IDLE = 0, P_QUEUED, P_WAITING };

typedef struct hb_athread hb_athread_t;
typedef struct hb_producer hb_producer_t;

typedef struct hb_aconn {
    hb_athread_t *t;
    hp_amqp_conn_t *c;           /* NULL before connect and after CLOSED */
    hb_producer_t *wait_head, *wait_tail; /* waiting for room in its output */
    uint32_t index;              /* producer connections first, then consumers' */
    bool consumer;
    bool closing;                /* hp_amqp_close was called on it */
} hb_aconn_t;

struct hb_producer {
    hb_athread_t *t;
    hb_aconn_t *conn;
    hp_amqp_channel_t *ch;       /* NULL until opened and once closed */
    hb_producer_t *next;         /* in the run queue or the wait list */
    uint32_t index;              /* in the run: its place in the -R schedule */
    uint32_t queue;
    uint8_t state;               /* P_* */
    bool ready;                  /* its channel is open (and in confirm mode) */
    uint32_t inflight;           /* published, not yet confirmed */
    uint64_t seq;                /* messages published */
    uint64_t k;                  /* -R: the next message's number in the schedule */
    uint64_t *ring;              /* owned: (intended, sent) per sequence number */
};

typedef struct hb_consumer {
    hb_athread_t *t;
    hb_aconn_t *conn;
    hp_amqp_channel_t *ch;
    uint32_t index;
    uint32_t queue;
    uint32_t unacked;            /* deliveries since the last ack */
    uint64_t last_tag;
    bool counting;               /* false once the run is being closed */
} hb_consumer_t;

struct hb_athread {
    hp_worker_t w;               /* first: it wants cache-line alignment */
    const hb_aplan_t *plan;      /* borrowed */
    hp_worker_config_t cfg;
    uint32_t id;
    hb_aconn_t *conns;           /* owned */
    uint32_t nconns;
    hb_producer_t *prods;        /* owned */
    uint32_t nprods;
    hb_consumer_t *cons;         /* owned */
    uint32_t ncons;
    hb_producer_t *runq_head, *runq_tail;
    hp_timer_t pump_timer, tick_timer;
    bool pump_armed;
    bool going;                  /* the run started: errors are the broker's, not setup's */
    bool finishing;              /* the run is being closed */
    uint32_t ring_n;             /* ring slots per producer (the library's window) */
    uint8_t *bodies;             /* owned: batch bodies of --size bytes */
    hp_amqp_msg_t *msgs;         /* owned: batch messages */
    uint64_t *intended;          /* owned: batch due times */
    /* Thread 0: the connection that declares and deletes the queues. */
    hp_amqp_conn_t *admin;
    hp_amqp_channel_t *admin_ch;
    bool admin_closing;
    uint32_t declared, deleted;
    uint64_t queued;
    bool queued_known;
    /* Written by this thread only (relaxed stores), read live by main. */
    uint64_t published, confirmed, nacked, failed, returned;
    uint64_t consumed, redelivered, foreign;
    uint32_t ready, open, topology, admin_done;
    uint32_t error;              /* release-stored after err is written */
    char err[256];
    uint32_t broker_errors;
    char broker_error[256];      /* the first, read by main after the join */
    hp_hist_t confirm, confirm_unc, consumer, consumer_unc;
};

struct hb_athreads {
    hb_athread_t **t;
    uint32_t n;
    hb_aplan_t *plan;
};

static inline void bump(uint64_t *p, uint64_t n)
{
    __atomic_store_n(p, *p + n, __ATOMIC_RELAXED);
}

static inline void bump32(uint32_t *p, int n)
{
    __atomic_store_n(p, *p + (uint32_t)n, __ATOMIC_RELAXED);
}

static inline uint64_t record_from(const hb_aplan_t *plan)
{
    return __atomic_load_n(&plan->record_from_ns, __ATOMIC_RELAXED);
}

static inline uint64_t stop_at(const hb_aplan_t *plan)
{
    return __atomic_load_n(&plan->stop_ns, __ATOMIC_RELAXED);
}

/* ---- the body header ---- */

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

void hb_amqp_header_encode(void *p, const hb_amqp_header_t *h)
{
    uint8_t *b = p;
    put32(b, h->run);
    put32(b + 4, h->producer);
    put64(b + 8, h->seq);
    put64(b + 16, h->intended_ns);
    put64(b + 24, h->sent_ns);
}

int hb_amqp_header_decode(const void *p, size_t len, hb_amqp_header_t *h)
{
    const uint8_t *b = p;
    if (!b || len < HB_AMQP_HEADER_LEN)
        return -EINVAL;
    h->run = get32(b);
    h->producer = get32(b + 4);
    h->seq = get64(b + 8);
    h->intended_ns = get64(b + 16);
    h->sent_ns = get64(b + 24);
    return 0;
}

/* ---- options and the URL ---- */

int hb_amqp_options(hb_options_t *o, char *err, size_t len)
{
    if (o->http_flag) {
        snprintf(err, len, "%s is for http:// URLs; an amqp:// run does not take it", o->http_flag);
        return -EINVAL;
    }
    if (o->producers < 1 || o->consumers < 0 || o->queues < 1) {
        snprintf(err, len, "--producers and --queues must be at least 1, --consumers at least 0");
        return -EINVAL;
    }
    if (o->queues > o->producers) {
        snprintf(err, len,
                 "--queues %d is more than --producers %d: some queues would get no message",
                 o->queues, o->producers);
        return -EINVAL;
    }
    if (o->consumers > 0 && o->queues > o->consumers) {
        snprintf(err, len,
                 "--queues %d is more than --consumers %d: some queues would have no consumer "
                 "(--consumers 0 publishes only)",
                 o->queues, o->consumers);
        return -EINVAL;
    }
    if (o->size < HB_AMQP_HEADER_LEN) {
        snprintf(err, len,
                 "--size %d: at least %d bytes (the header with the send time and sequence "
                 "number)",
                 o->size, HB_AMQP_HEADER_LEN);
        return -EINVAL;
    }
    if (o->confirm > 0 && o->batch > o->confirm) {
        snprintf(err, len, "--batch %d is more than the confirm window --confirm %d", o->batch,
                 o->confirm);
        return -EINVAL;
    }
    if (o->prefetch > 0 && o->multi_ack > o->prefetch) {
        snprintf(err, len,
                 "--multi-ack %d is more than --prefetch %d: the consumers would wait for ever",
                 o->multi_ack, o->prefetch);
        return -EINVAL;
    }
    if (!o->connections_set)
        o->connections = o->producers;
    if (o->connections > o->producers) {
        snprintf(err, len, "-c %d is more than --producers %d: every connection needs a producer",
                 o->connections, o->producers);
        return -EINVAL;
    }
    /* RabbitMQ's default channel_max is 2047 (a broker may lower it). */
    int per_conn = (o->producers + o->connections - 1) / o->connections;
    if (per_conn > 2047) {
        snprintf(err, len,
                 "%d producers on %d connections make %d channels on one, more than a broker "
                 "allows (2047): raise -c",
                 o->producers, o->connections, per_conn);
        return -EINVAL;
    }
    if (o->threads > o->connections + o->consumers) {
        snprintf(err, len,
                 "-t %d is more than the %d connections (-c %d, one per consumer): every thread "
                 "needs a connection",
                 o->threads, o->connections + o->consumers, o->connections);
        return -EINVAL;
    }
    return 0;
}

void hb_amqp_url_display(const char *url, char *out, size_t len)
{
    if (len == 0)
        return;
    /* amqp://user:password@host...: the password is between the first
     * ':' after the scheme and the '@' that ends the credentials. */
    const char *auth = strstr(url, "://");
    auth = auth ? auth + 3 : url;
    size_t auth_end = strcspn(auth, "@/?#");
    const char *colon = memchr(auth, ':', auth_end);
    if (auth[auth_end] != '@' || !colon) {
        snprintf(out, len, "%s", url);
        return;
    }
    snprintf(out, len, "%.*s***%s", (int)(colon + 1 - url), url, auth + auth_end);
}

/* ---- errors ---- */

/* "what: 403 ACCESS_REFUSED - ..." or "what: Connection refused", one line. */
static void describe(char *out, size_t len, const char *what, const hp_amqp_result_t *r)
{
    if (r && r->reply_code)
        snprintf(out, len, "%s: %u %.*s", what, r->reply_code, (int)r->reply_text.len,
                 (const char *)r->reply_text.ptr);
    else
        snprintf(out, len, "%s: %s", what, strerror(r && r->err ? -r->err : EIO));
    for (char *c = out; *c; c++)
        *c = (unsigned char)*c < 0x20 ? ' ' : *c;
}

/* Something failed: before the run, it fails the set-up (main reports it
 * and exits); during it, it is the broker's doing and fails the run. */
static void failed(hb_athread_t *t, const char *what, const hp_amqp_result_t *r)
{
    if (t->finishing)
        return;
    if (!t->going) {
        if (__atomic_load_n(&t->error, __ATOMIC_RELAXED))
            return;
        describe(t->err, sizeof t->err, what, r);
        __atomic_store_n(&t->error, 1, __ATOMIC_RELEASE);
        return;
    }
    if (t->broker_errors == 0)
        describe(t->broker_error, sizeof t->broker_error, what, r);
    bump32(&t->broker_errors, 1);
}

/* ---- the run queue ---- */

static void pump_cb(hp_timer_t *tm);

static void arm_pump(hb_athread_t *t)
{
    if (!t->pump_armed) {
        t->pump_armed = true;
        hp_loop_timer_arm(&t->w.loop, &t->pump_timer, 0);
    }
}

static void enqueue(hb_producer_t *p)
{
    hb_athread_t *t = p->t;
    if (p->state != P_IDLE || !p->ready || !p->ch || t->finishing)
        return;
    p->state = P_QUEUED;
    p->next = NULL;
    if (t->runq_tail)
        t->runq_tail->next = p;
    else
        t->runq_head = p;
    t->runq_tail = p;
    arm_pump(t);
}

static hb_producer_t *runq_pop(hb_athread_t *t)
{
    hb_producer_t *p = t->runq_head;
    if (p) {
        t->runq_head = p->next;
        if (!t->runq_head)
            t->runq_tail = NULL;
        p->next = NULL;
        p->state = P_IDLE;
    }
    return p;
}

/* -EAGAIN: no room in the connection's output; on_writable wakes it. */
static void wait_room(hb_producer_t *p)
{
    hb_aconn_t *ac = p->conn;
    p->state = P_WAITING;
    p->next = NULL;
    if (ac->wait_tail)
        ac->wait_tail->next = p;
    else
        ac->wait_head = p;
    ac->wait_tail = p;
}

static void on_writable(hp_amqp_conn_t *c, void *arg)
{
    (void)c;
    hb_aconn_t *ac = arg;
    hb_producer_t *p = ac->wait_head;
    ac->wait_head = ac->wait_tail = NULL;
    while (p) {
        hb_producer_t *next = p->next;
        p->state = P_IDLE;
        enqueue(p);
        p = next;
    }
}

/* ---- publishing ---- */

static void on_confirm(hp_amqp_channel_t *ch, uint64_t seq, int status, void *arg);
static void on_batch(hp_amqp_channel_t *ch, const hp_amqp_batch_result_t *r, void *arg);

/* Publishes up to `max` of p's messages (a batch may go past it), as
 * many as its window, the schedule and the connection allow. Returns how
 * many. Puts p back at the end of the run queue when it could go on. */
static uint32_t produce(hb_producer_t *p, uint32_t max)
{
    hb_athread_t *t = p->t;
    const hb_aplan_t *plan = t->plan;
    const hb_options_t *o = plan->opt;
    uint32_t size = (uint32_t)o->size;
    uint64_t from = record_from(plan), stop = stop_at(plan);
    uint32_t done = 0;
    while (p->ch) {
        if (done >= max) {
            enqueue(p);
            break;
        }
        uint64_t now = hp_clock_mono_ns();
        if (now >= stop)
            break; /* the run is over: nothing more leaves */
        uint32_t n = (uint32_t)o->batch;
        if (o->confirm) {
            uint32_t room = (uint32_t)o->confirm - p->inflight;
            if (room == 0)
                break; /* its confirms put it back */
            n = room < n ? room : n;
        }
        if (plan->rate_mode) {
            uint64_t due = hp_rate_due_count(&plan->rate, p->index, now) - p->k;
            if (due == 0)
                break; /* the rate deadline puts it back */
            n = due < n ? (uint32_t)due : n;
        }
        uint64_t *intended = t->intended;
        for (uint32_t i = 0; i < n; i++) {
            intended[i] = plan->rate_mode ? hp_rate_due(&plan->rate, p->index, p->k + i) : now;
            /* A batch is counted whole or not at all: one that would
             * straddle the end of the warm-up stops short of it. */
            if (i > 0 && intended[i] >= from && intended[0] < from) {
                n = i;
                break;
            }
        }
        for (uint32_t i = 0; i < n; i++) {
            hb_amqp_header_t h = {.run = plan->run,
                                  .producer = p->index,
                                  .seq = p->seq + i,
                                  .intended_ns = intended[i],
                                  .sent_ns = now};
            uint8_t *body = t->bodies + (size_t)i * size;
            hb_amqp_header_encode(body, &h);
            t->msgs[i] = (hp_amqp_msg_t){.exchange = "",
                                         .routing_key = plan->qnames[p->queue],
                                         .props = &plan->props,
                                         .body = body,
                                         .len = size,
                                         .mandatory = true};
        }
        uint64_t first = 0;
        int r = o->batch > 1
                    ? hp_amqp_publish_batch(p->ch, t->msgs, n, o->confirm ? on_batch : NULL, p,
                                            &first)
                    : hp_amqp_publish(p->ch, t->msgs, o->confirm ? on_confirm : NULL, p, &first);
        if (r == -EAGAIN) {
            wait_room(p);
            break;
        }
        if (r < 0) {
            /* -ENOTCONN: the channel or the connection went, and its close
             * was counted (it may have run inside this call); anything
             * else is an error of its own. The producer stops either way. */
            if (r != -ENOTCONN)
                failed(t, "publish", &(hp_amqp_result_t){.err = r});
            p->ch = NULL;
            break;
        }
        if (o->confirm) {
            for (uint32_t i = 0; i < n; i++) {
                uint64_t *slot = &p->ring[2 * ((first - 1 + i) % t->ring_n)];
                slot[0] = intended[i];
                slot[1] = now;
            }
            p->inflight += n;
        }
        p->seq += n;
        p->k += n;
        if (intended[0] >= from)
            bump(&t->published, n);
        done += n;
    }
    return done;
}

static void pump(hb_athread_t *t)
{
    uint32_t budget = HB_AMQP_TURN;
    hb_producer_t *p;
    while (budget > 0 && (p = runq_pop(t)) != NULL) {
        uint32_t n = produce(p, budget < HB_AMQP_BURST ? budget : HB_AMQP_BURST);
        budget = n >= budget ? 0 : budget - n;
    }
    if (t->runq_head)
        arm_pump(t);
}

static void pump_cb(hp_timer_t *tm)
{
    hb_athread_t *t = HP_CONTAINER_OF(tm, hb_athread_t, pump_timer);
    t->pump_armed = false;
    if (!t->finishing)
        pump(t);
}

/* -R: puts the producers with messages due in the run queue, serves it
 * (each publishes all it has due), and wakes at the next due time, but
 * not within HB_AMQP_RATE_TICK_NS of now (and at least every
 * HB_AMQP_RATE_CAP_NS). */
static void rate_cb(hp_loop_t *loop, void *arg)
{
    hb_athread_t *t = arg;
    const hb_aplan_t *plan = t->plan;
    if (t->finishing)
        return;
    uint64_t now = hp_clock_mono_ns();
    if (now >= stop_at(plan))
        return; /* over: no more wake-ups */
    for (uint32_t i = 0; i < t->nprods; i++) {
        hb_producer_t *p = &t->prods[i];
        if (p->state == P_IDLE && hp_rate_due_count(&plan->rate, p->index, now) > p->k)
            enqueue(p);
    }
    pump(t);
    now = hp_clock_mono_ns();
    uint64_t next = now + HB_AMQP_RATE_CAP_NS;
    uint32_t window = (uint32_t)plan->opt->confirm;
    for (uint32_t i = 0; i < t->nprods; i++) {
        hb_producer_t *p = &t->prods[i];
        /* Queued or waiting ones are served anyway; a full window waits
         * for its confirms (its due time, past, would spin the loop). */
        if (p->state != P_IDLE || !p->ch || (window && p->inflight >= window))
            continue;
        uint64_t due = hp_rate_due(&plan->rate, p->index, p->k);
        next = due < next ? due : next;
    }
    if (next < now + HB_AMQP_RATE_TICK_NS)
        next = now + HB_AMQP_RATE_TICK_NS;
    hp_loop_set_deadline(loop, next, rate_cb, t);
}

static void tick_cb(hp_timer_t *tm)
{
    hb_athread_t *t = HP_CONTAINER_OF(tm, hb_athread_t, tick_timer);
    if (t->finishing)
        return;
    uint32_t window = (uint32_t)t->plan->opt->confirm;
    for (uint32_t i = 0; i < t->nprods; i++) {
        hb_producer_t *p = &t->prods[i];
        if (p->state == P_IDLE && p->inflight < window)
            enqueue(p);
    }
    hp_loop_timer_arm(&t->w.loop, tm, HB_AMQP_TICK_MS);
}

/* ---- confirms and returns ---- */

/* n messages from sequence number `first` are settled. */
static void settle(hb_producer_t *p, uint64_t first, uint32_t n, uint32_t acked, uint32_t nacked,
                   uint32_t fails)
{
    hb_athread_t *t = p->t;
    const hb_aplan_t *plan = t->plan;
    uint64_t now = hp_clock_mono_ns();
    p->inflight -= n;
    /* A batch is counted whole or not at all (produce): its first says. */
    const uint64_t *slot = &p->ring[2 * ((first - 1) % t->ring_n)];
    if (slot[0] >= record_from(plan)) {
        bump(&t->confirmed, acked);
        bump(&t->nacked, nacked);
        bump(&t->failed, fails);
        for (uint32_t i = 0; i < n && fails == 0; i++) {
            slot = &p->ring[2 * ((first - 1 + i) % t->ring_n)];
            hp_hist_record(&t->confirm, now - slot[0]);
            if (plan->rate_mode)
                hp_hist_record(&t->confirm_unc, now - slot[1]);
        }
    }
    enqueue(p);
}

static void on_confirm(hp_amqp_channel_t *ch, uint64_t seq, int status, void *arg)
{
    (void)ch;
    settle(arg, seq, 1, status == HP_AMQP_ACKED, status == HP_AMQP_NACKED, status < 0);
}

static void on_batch(hp_amqp_channel_t *ch, const hp_amqp_batch_result_t *r, void *arg)
{
    (void)ch;
    settle(arg, r->first_seq, r->n, r->acked, r->nacked, r->failed);
}

static void on_return(hp_amqp_channel_t *ch, const hp_amqp_delivery_t *d, void *arg)
{
    (void)ch;
    hb_producer_t *p = arg;
    hb_amqp_header_t h;
    if (hb_amqp_header_decode(d->body.ptr, d->body.len, &h) == 0 &&
        h.intended_ns >= record_from(p->t->plan))
        bump(&p->t->returned, 1);
}

/* ---- consuming ---- */

static void on_delivery(hp_amqp_channel_t *ch, const hp_amqp_delivery_t *d, void *arg)
{
    hb_consumer_t *k = arg;
    hb_athread_t *t = k->t;
    const hb_aplan_t *plan = t->plan;
    if (!d) {
        char what[64];
        snprintf(what, sizeof what, "consumer %u cancelled by the broker", k->index);
        failed(t, what, &(hp_amqp_result_t){.err = -ECANCELED});
        return;
    }
    /* Once the run is being closed, deliveries are neither counted nor
     * acknowledged: the broker takes them back when the channel closes,
     * and they are among the messages left in the queues. */
    if (!k->counting)
        return;
    uint64_t now = hp_clock_mono_ns();
    hb_amqp_header_t h;
    if (hb_amqp_header_decode(d->body.ptr, d->body.len, &h) < 0 || h.run != plan->run) {
        bump(&t->foreign, 1);
    } else if (h.intended_ns >= record_from(plan)) {
        if (d->redelivered) {
            bump(&t->redelivered, 1);
        } else {
            bump(&t->consumed, 1);
            hp_hist_record(&t->consumer, now - h.intended_ns);
            if (plan->rate_mode)
                hp_hist_record(&t->consumer_unc, now - h.sent_ns);
        }
    }
    k->unacked++;
    k->last_tag = d->delivery_tag;
    /* An ack that could not be queued (the broker reads nothing and the
     * output is full) is covered by the next one, sent with `multiple`. */
    if (k->unacked >= (uint32_t)plan->opt->multi_ack &&
        hp_amqp_ack(ch, k->last_tag, k->unacked > 1) == 0)
        k->unacked = 0;
}

/* ---- setting up ---- */

static void on_prod_ready(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg)
{
    hb_producer_t *p = arg;
    if (r->err) {
        char what[64];
        snprintf(what, sizeof what, "producer %u: confirm.select", p->index);
        failed(p->t, what, r);
        return;
    }
    (void)ch;
    p->ready = true;
    bump32(&p->t->ready, 1);
}

static void on_prod_closed(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg)
{
    (void)ch;
    hb_producer_t *p = arg;
    char what[64];
    snprintf(what, sizeof what, "producer %u: channel closed by the broker", p->index);
    failed(p->t, what, r);
    p->ch = NULL;
}

static void on_prod_open(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg)
{
    hb_producer_t *p = arg;
    if (r->err) {
        char what[64];
        snprintf(what, sizeof what, "producer %u: cannot open a channel", p->index);
        failed(p->t, what, r);
        p->ch = NULL;
        return;
    }
    hp_amqp_channel_on_close(ch, on_prod_closed, p);
    hp_amqp_channel_on_return(ch, on_return, p);
    if (!p->t->plan->opt->confirm)
        on_prod_ready(ch, r, p);
}

static void on_cons_closed(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg)
{
    (void)ch;
    hb_consumer_t *k = arg;
    char what[64];
    snprintf(what, sizeof what, "consumer %u: channel closed by the broker", k->index);
    failed(k->t, what, r);
    k->ch = NULL;
}

static void on_cons_step(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg)
{
    hb_consumer_t *k = arg;
    if (r->err) {
        char what[96];
        snprintf(what, sizeof what, "consumer %u: cannot consume from %s", k->index,
                 k->t->plan->qnames[k->queue]);
        failed(k->t, what, r);
        return;
    }
    if (ch)
        hp_amqp_channel_on_close(ch, on_cons_closed, k);
}

static void on_consuming(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg)
{
    hb_consumer_t *k = arg;
    on_cons_step(ch, r, k);
    if (!r->err)
        bump32(&k->t->ready, 1);
}

/* A connection of the load is up: its channels. */
static void conn_ready(hb_aconn_t *ac)
{
    hb_athread_t *t = ac->t;
    const hb_options_t *o = t->plan->opt;
    int r = 0;
    if (!ac->consumer) {
        hp_amqp_on_writable(ac->c, on_writable, ac);
        for (uint32_t i = 0; i < t->nprods && r == 0; i++) {
            hb_producer_t *p = &t->prods[i];
            if (p->conn != ac)
                continue;
            r = hp_amqp_channel_open(ac->c, on_prod_open, p, &p->ch);
            if (r == 0 && o->confirm)
                r = hp_amqp_confirm_select(p->ch, t->ring_n, on_prod_ready, p);
        }
    } else {
        for (uint32_t i = 0; i < t->ncons && r == 0; i++) {
            hb_consumer_t *k = &t->cons[i];
            if (k->conn != ac)
                continue;
            r = hp_amqp_channel_open(ac->c, on_cons_step, k, &k->ch);
            if (r == 0 && o->prefetch)
                r = hp_amqp_qos(k->ch, (uint16_t)o->prefetch, false, on_cons_step, k);
            if (r == 0)
                r = hp_amqp_consume(k->ch, t->plan->qnames[k->queue], NULL, 0, HP_AMQP_NO_ARGS,
                                    on_delivery, k, on_consuming, k);
        }
    }
    if (r < 0)
        failed(t, "cannot open a channel", &(hp_amqp_result_t){.err = r});
}

static void on_conn_event(hp_amqp_conn_t *c, int ev, const hp_amqp_result_t *r, void *arg)
{
    hb_aconn_t *ac = arg;
    hb_athread_t *t = ac->t;
    if (ev == HP_AMQP_EV_READY) {
        conn_ready(ac);
    } else if (ev == HP_AMQP_EV_CLOSED) {
        if (!ac->closing) {
            char what[128];
            if (r->reply_code)
                snprintf(what, sizeof what, "%s connection %u closed by the broker",
                         ac->consumer ? "consumer" : "producer", ac->index);
            else
                snprintf(what, sizeof what, "%s connection %u to %.80s",
                         ac->consumer ? "consumer" : "producer", ac->index, t->plan->url);
            failed(t, what, r);
        }
        /* Its channels are gone with it (their confirms failed first). */
        for (uint32_t i = 0; i < t->nprods; i++) {
            if (t->prods[i].conn == ac)
                t->prods[i].ch = NULL;
        }
        for (uint32_t i = 0; i < t->ncons; i++) {
            if (t->cons[i].conn == ac)
                t->cons[i].ch = NULL;
        }
        ac->c = NULL;
        ac->wait_head = ac->wait_tail = NULL;
        bump32(&t->open, -1);
    }
    (void)c;
}

/* ---- the admin connection (thread 0): queues ---- */

static void admin_done(hb_athread_t *t)
{
    __atomic_store_n(&t->admin_done, 1, __ATOMIC_RELEASE);
}

static void on_declared(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg)
{
    (void)ch;
    hb_athread_t *t = arg;
    if (r->err) {
        char what[128];
        snprintf(what, sizeof what, "cannot declare queue %s", t->plan->qnames[t->declared]);
        failed(t, what, r);
        return;
    }
    if (++t->declared == (uint32_t)t->plan->opt->queues)
        __atomic_store_n(&t->topology, 1, __ATOMIC_RELEASE);
}

static void on_admin_closed(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg)
{
    (void)ch;
    hb_athread_t *t = arg;
    t->admin_ch = NULL;
    if (!t->admin_closing)
        failed(t, "admin channel closed by the broker", r);
}

static void on_admin_open(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg)
{
    hb_athread_t *t = arg;
    if (r->err) {
        failed(t, "cannot open a channel", r);
        return;
    }
    hp_amqp_channel_on_close(ch, on_admin_closed, t);
    const hb_aplan_t *plan = t->plan;
    for (int i = 0; i < plan->opt->queues; i++) {
        int rc = hp_amqp_queue_declare(ch, plan->qnames[i], plan->qflags, plan->qargs, on_declared,
                                       t);
        if (rc < 0) {
            failed(t, "queue.declare", &(hp_amqp_result_t){.err = rc});
            return;
        }
    }
}

static void on_admin_event(hp_amqp_conn_t *c, int ev, const hp_amqp_result_t *r, void *arg)
{
    hb_athread_t *t = arg;
    if (ev == HP_AMQP_EV_READY) {
        int rc = hp_amqp_channel_open(c, on_admin_open, t, &t->admin_ch);
        if (rc < 0)
            failed(t, "cannot open a channel", &(hp_amqp_result_t){.err = rc});
    } else if (ev == HP_AMQP_EV_CLOSED) {
        t->admin = NULL;
        t->admin_ch = NULL;
        if (!t->admin_closing) {
            /* "URL: 403 ACCESS_REFUSED - ...", "URL: 530 NOT_ALLOWED - vhost x
             * not found", "cannot connect to URL: Connection refused". */
            char what[1100];
            snprintf(what, sizeof what, "%s%s", r->reply_code ? "" : "cannot connect to ",
                     t->plan->url);
            failed(t, what, r);
            t->queued_known = false;
        }
        admin_done(t);
    }
}

static void on_deleted(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg)
{
    (void)ch;
    hb_athread_t *t = arg;
    if (r->err)
        t->queued_known = false;
    else
        t->queued += r->message_count;
    if (++t->deleted == (uint32_t)t->plan->opt->queues && t->admin) {
        t->admin_closing = true;
        hp_amqp_close(t->admin);
    }
}

/* ---- the phases, on each thread (hp_worker_call) ---- */

static hp_amqp_config_t conn_config(const hb_aplan_t *plan, char *name, size_t len,
                                    const char *what, uint32_t index)
{
    hp_amqp_config_t cfg = plan->cfg;
    snprintf(name, len, "hpbench %s %u", what, index);
    cfg.name = name;
    return cfg;
}

static void do_connect(hp_worker_t *w, uint64_t arg, void *ptr)
{
    (void)w;
    (void)arg;
    hb_athread_t *t = ptr;
    for (uint32_t i = 0; i < t->nconns; i++) {
        hb_aconn_t *ac = &t->conns[i];
        char name[64];
        hp_amqp_config_t cfg =
            conn_config(t->plan, name, sizeof name, ac->consumer ? "consumer" : "producers",
                        ac->index);
        int r = hp_amqp_connect(&t->w, &cfg, on_conn_event, ac, &ac->c);
        if (r < 0) {
            failed(t, "connect", &(hp_amqp_result_t){.err = r});
            ac->c = NULL;
            continue;
        }
        bump32(&t->open, 1);
    }
}

static void do_go(hp_worker_t *w, uint64_t arg, void *ptr)
{
    (void)w;
    (void)arg;
    hb_athread_t *t = ptr;
    t->going = true;
    /* Only a confirm can be missed: the tick is for confirm mode. */
    if (t->plan->opt->confirm && !t->plan->rate_mode)
        hp_loop_timer_arm(&t->w.loop, &t->tick_timer, HB_AMQP_TICK_MS);
    if (t->plan->rate_mode) {
        hp_loop_set_deadline(&t->w.loop, t->plan->rate.start_ns, rate_cb, t);
        return;
    }
    for (uint32_t i = 0; i < t->nprods; i++)
        enqueue(&t->prods[i]);
}

static void do_finish(hp_worker_t *w, uint64_t arg, void *ptr)
{
    (void)w;
    (void)arg;
    hb_athread_t *t = ptr;
    t->finishing = true;
    hp_loop_set_deadline(&t->w.loop, 0, NULL, NULL);
    hp_loop_timer_cancel(&t->w.loop, &t->tick_timer);
    hp_loop_timer_cancel(&t->w.loop, &t->pump_timer);
    t->pump_armed = false;
    /* What was counted is acknowledged before the connection closes (the
     * broker handles both in order): only what came after is requeued. */
    for (uint32_t i = 0; i < t->ncons; i++) {
        hb_consumer_t *k = &t->cons[i];
        if (k->ch && k->counting && k->unacked)
            hp_amqp_ack(k->ch, k->last_tag, true);
        k->counting = false;
    }
    for (uint32_t i = 0; i < t->nconns; i++) {
        hb_aconn_t *ac = &t->conns[i];
        if (ac->c && !ac->closing) {
            ac->closing = true;
            hp_amqp_close(ac->c);
        }
    }
    /* The close dropped the channels: nothing may use them again. */
    for (uint32_t i = 0; i < t->nprods; i++)
        t->prods[i].ch = NULL;
    for (uint32_t i = 0; i < t->ncons; i++)
        t->cons[i].ch = NULL;
}

static void do_delete(hp_worker_t *w, uint64_t arg, void *ptr)
{
    (void)w;
    (void)arg;
    hb_athread_t *t = ptr;
    const hb_aplan_t *plan = t->plan;
    if (!t->admin || !t->admin_ch) {
        t->queued_known = false;
        if (t->admin) {
            t->admin_closing = true;
            hp_amqp_close(t->admin);
        } else {
            admin_done(t);
        }
        return;
    }
    for (int i = 0; i < plan->opt->queues; i++) {
        int rc = hp_amqp_queue_delete(t->admin_ch, plan->qnames[i], 0, on_deleted, t);
        if (rc < 0) {
            t->queued_known = false;
            t->admin_closing = true;
            hp_amqp_close(t->admin);
            return;
        }
    }
}

/* ---- threads ---- */

static void thread_free(hb_athread_t *t)
{
    for (uint32_t i = 0; t->prods && i < t->nprods; i++)
        hp_free(t->prods[i].ring);
    hp_free(t->prods);
    hp_free(t->cons);
    hp_free(t->conns);
    hp_free(t->bodies);
    hp_free(t->msgs);
    hp_free(t->intended);
    hp_hist_destroy(&t->confirm);
    hp_hist_destroy(&t->confirm_unc);
    hp_hist_destroy(&t->consumer);
    hp_hist_destroy(&t->consumer_unc);
    hp_free(t);
}

/* Which thread carries producer connection j and consumer k: round robin,
 * the consumers starting where the producer connections left off, so that
 * with -t 2 one producer and one consumer get a thread each. */
static uint32_t thread_of_conn(const hb_options_t *o, uint32_t conn)
{
    return conn % (uint32_t)o->threads;
}

static hb_athread_t *thread_new(const hb_aplan_t *plan, uint32_t id, int cpu)
{
    const hb_options_t *o = plan->opt;
    hb_athread_t *t = hp_calloc_aligned(sizeof *t);
    if (!t)
        return NULL;
    t->plan = plan;
    t->id = id;
    t->queued_known = true;
    t->cfg = HP_WORKER_CONFIG_DEFAULT;
    t->cfg.drain_timeout_ms = 100;
    t->ring_n = (uint32_t)(o->confirm + o->batch);
    uint32_t nconns_p = (uint32_t)o->connections, nconns = nconns_p + (uint32_t)o->consumers;
    for (uint32_t j = 0; j < nconns; j++)
        t->nconns += thread_of_conn(o, j) == id;
    for (uint32_t i = 0; i < (uint32_t)o->producers; i++)
        t->nprods += thread_of_conn(o, i % nconns_p) == id;
    for (uint32_t k = 0; k < (uint32_t)o->consumers; k++)
        t->ncons += thread_of_conn(o, nconns_p + k) == id;
    t->conns = hp_calloc(t->nconns ? t->nconns : 1, sizeof *t->conns);
    t->prods = hp_calloc(t->nprods ? t->nprods : 1, sizeof *t->prods);
    t->cons = hp_calloc(t->ncons ? t->ncons : 1, sizeof *t->cons);
    t->bodies = hp_calloc((size_t)o->batch, (size_t)o->size);
    t->msgs = hp_calloc((size_t)o->batch, sizeof *t->msgs);
    t->intended = hp_calloc((size_t)o->batch, sizeof *t->intended);
    if (!t->conns || !t->prods || !t->cons || !t->bodies || !t->msgs || !t->intended ||
        hp_hist_init_latency(&t->confirm) < 0 || hp_hist_init_latency(&t->confirm_unc) < 0 ||
        hp_hist_init_latency(&t->consumer) < 0 || hp_hist_init_latency(&t->consumer_unc) < 0)
        goto fail;
    /* Bodies: a recognisable filler after the header. */
    memset(t->bodies, 'x', (size_t)o->batch * (size_t)o->size);
    uint32_t n = 0;
    for (uint32_t j = 0; j < nconns; j++) {
        if (thread_of_conn(o, j) != id)
            continue;
        hb_aconn_t *ac = &t->conns[n++];
        ac->t = t;
        ac->consumer = j >= nconns_p;
        ac->index = ac->consumer ? j - nconns_p : j;
    }
    /* Producer i rides producer connection i % C and publishes to queue
     * i % Q; consumer k has a connection of its own and reads queue k % Q. */
    n = 0;
    for (uint32_t i = 0; i < (uint32_t)o->producers; i++) {
        uint32_t j = i % nconns_p;
        if (thread_of_conn(o, j) != id)
            continue;
        hb_producer_t *p = &t->prods[n++];
        p->t = t;
        p->index = i;
        p->queue = i % (uint32_t)o->queues;
        for (uint32_t c = 0; c < t->nconns; c++) {
            if (!t->conns[c].consumer && t->conns[c].index == j)
                p->conn = &t->conns[c];
        }
        if (o->confirm) {
            p->ring = hp_calloc(2 * (size_t)t->ring_n, sizeof(uint64_t));
            if (!p->ring)
                goto fail;
        }
    }
    n = 0;
    for (uint32_t k = 0; k < (uint32_t)o->consumers; k++) {
        if (thread_of_conn(o, nconns_p + k) != id)
            continue;
        hb_consumer_t *c = &t->cons[n++];
        c->t = t;
        c->index = k;
        c->queue = k % (uint32_t)o->queues;
        c->counting = true;
        for (uint32_t x = 0; x < t->nconns; x++) {
            if (t->conns[x].consumer && t->conns[x].index == k)
                c->conn = &t->conns[x];
        }
    }
    if (hp_worker_init(&t->w, id, cpu, &t->cfg) < 0)
        goto fail;
    hp_timer_init(&t->pump_timer, pump_cb);
    hp_timer_init(&t->tick_timer, tick_cb);
    if (id == 0) {
        char name[64];
        hp_amqp_config_t cfg = conn_config(plan, name, sizeof name, "admin", 0);
        int r = hp_amqp_connect(&t->w, &cfg, on_admin_event, t, &t->admin);
        if (r < 0) {
            hp_worker_destroy(&t->w);
            errno = -r;
            thread_free(t);
            return NULL;
        }
    }
    return t;
fail:
    thread_free(t);
    errno = ENOMEM;
    return NULL;
}

/* Runs fn on every thread (on thread 0 only with `one`), retrying while
 * an inbox is full (it empties at the thread's next wake-up). */
static int call_all(hb_athreads_t *ts, hp_worker_call_cb fn, bool one)
{
    for (uint32_t i = 0; i < (one ? 1 : ts->n); i++) {
        int r, tries = 0;
        while ((r = hp_worker_call(&ts->t[i]->w, fn, 0, ts->t[i])) == -EAGAIN && tries++ < 1000)
            usleep(1000);
        if (r < 0)
            return r;
    }
    return 0;
}

hb_athreads_t *hb_amqp_start(hb_aplan_t *plan)
{
    const hb_options_t *o = plan->opt;
    hb_athreads_t *ts = hp_calloc(1, sizeof *ts);
    if (!ts)
        return NULL;
    ts->plan = plan;
    ts->t = hp_calloc((size_t)o->threads, sizeof *ts->t);
    if (!ts->t) {
        hp_free(ts);
        errno = ENOMEM;
        return NULL;
    }
    int cpus[CPU_SETSIZE];
    uint32_t ncpu = hp_engine_cpus(cpus, CPU_SETSIZE);
    for (uint32_t i = 0; i < (uint32_t)o->threads; i++) {
        hb_athread_t *t = thread_new(plan, i, cpus[i % ncpu]);
        int r = t ? hp_worker_start(&t->w) : -errno;
        if (r < 0) {
            int err = -r;
            if (t) {
                hp_worker_destroy(&t->w);
                thread_free(t);
            }
            hb_amqp_stop(ts, NULL);
            hb_amqp_destroy(ts);
            errno = err;
            return NULL;
        }
        ts->t[ts->n++] = t;
    }
    return ts;
}

int hb_amqp_connect(hb_athreads_t *ts)
{
    return call_all(ts, do_connect, false);
}

int hb_amqp_go(hb_athreads_t *ts)
{
    return call_all(ts, do_go, false);
}

void hb_amqp_finish(hb_athreads_t *ts)
{
    call_all(ts, do_finish, false);
}

void hb_amqp_delete(hb_athreads_t *ts)
{
    call_all(ts, do_delete, true);
}

void hb_amqp_peek(hb_athreads_t *ts, hb_amqp_live_t *l, char *err, size_t errlen)
{
    memset(l, 0, sizeof *l);
    for (uint32_t i = 0; i < ts->n; i++) {
        hb_athread_t *t = ts->t[i];
        l->confirmed += __atomic_load_n(&t->confirmed, __ATOMIC_RELAXED);
        l->nacked += __atomic_load_n(&t->nacked, __ATOMIC_RELAXED);
        l->failed += __atomic_load_n(&t->failed, __ATOMIC_RELAXED);
        l->returned += __atomic_load_n(&t->returned, __ATOMIC_RELAXED);
        l->consumed += __atomic_load_n(&t->consumed, __ATOMIC_RELAXED);
        l->redelivered += __atomic_load_n(&t->redelivered, __ATOMIC_RELAXED);
        l->foreign += __atomic_load_n(&t->foreign, __ATOMIC_RELAXED);
        l->ready += __atomic_load_n(&t->ready, __ATOMIC_RELAXED);
        l->open += __atomic_load_n(&t->open, __ATOMIC_RELAXED);
        if (i == 0) {
            l->topology = __atomic_load_n(&t->topology, __ATOMIC_ACQUIRE);
            l->admin_done = __atomic_load_n(&t->admin_done, __ATOMIC_ACQUIRE);
        }
        if (!l->setup_failed && __atomic_load_n(&t->error, __ATOMIC_ACQUIRE)) {
            l->setup_failed = true;
            snprintf(err, errlen, "%s", t->err);
        }
    }
    /* Published last: a message is counted as published before it can be
     * confirmed or delivered, so the figures read above never run ahead
     * of this one (the drain compares them). */
    for (uint32_t i = 0; i < ts->n; i++)
        l->published += __atomic_load_n(&ts->t[i]->published, __ATOMIC_ACQUIRE);
}

void hb_amqp_peek_hists(hb_athreads_t *ts, hp_hist_t *confirm, hp_hist_t *consumer)
{
    hp_hist_reset(confirm);
    hp_hist_reset(consumer);
    for (uint32_t i = 0; i < ts->n; i++) {
        hp_hist_merge(confirm, &ts->t[i]->confirm);
        hp_hist_merge(consumer, &ts->t[i]->consumer);
    }
}

void hb_amqp_stop(hb_athreads_t *ts, hb_amqp_results_t *r)
{
    /* Whatever is still open goes now (the graceful close was
     * hb_amqp_finish's, which also made the callbacks of this close count
     * nothing). */
    for (uint32_t i = 0; i < ts->n; i++)
        hp_worker_post(&ts->t[i]->w, HP_MSG_STOP_NOW, 0, NULL);
    for (uint32_t i = 0; i < ts->n; i++) {
        hb_athread_t *t = ts->t[i];
        hp_worker_destroy(&t->w); /* joins the thread */
        if (!r)
            continue;
        r->published += t->published;
        r->confirmed += t->confirmed;
        r->nacked += t->nacked;
        r->returned += t->returned;
        r->consumed += t->consumed;
        r->redelivered += t->redelivered;
        r->foreign += t->foreign;
        if (t->broker_errors && !r->broker_errors)
            snprintf(r->broker_error, sizeof r->broker_error, "%s", t->broker_error);
        r->broker_errors += t->broker_errors;
        if (i == 0) {
            r->queued = t->queued;
            r->queued_known = t->queued_known && t->deleted == (uint32_t)ts->plan->opt->queues;
        }
        hp_hist_merge(&r->confirm, &t->confirm);
        hp_hist_merge(&r->confirm_unc, &t->confirm_unc);
        hp_hist_merge(&r->consumer, &t->consumer);
        hp_hist_merge(&r->consumer_unc, &t->consumer_unc);
    }
}

void hb_amqp_destroy(hb_athreads_t *ts)
{
    if (!ts)
        return;
    for (uint32_t i = 0; i < ts->n; i++)
        thread_free(ts->t[i]);
    hp_free(ts->t);
    hp_free(ts);
}

/* ---- the plan ---- */

int hb_aplan_init(hb_aplan_t *plan, const hb_options_t *opt, char *err, size_t errlen)
{
    memset(plan, 0, sizeof *plan);
    plan->opt = opt;
    plan->cfg = HP_AMQP_CONFIG_DEFAULT;
    /* A benchmark reports a broker error, it does not ride over it: a run
     * with a recovery in it would measure something else (docs/hpbench.md). */
    plan->cfg.recover = false;
    plan->cfg.read_coalesce_ms = (uint32_t)opt->read_coalesce_ms;
    hb_amqp_url_display(opt->url, plan->url, sizeof plan->url);
    const char *why = NULL;
    if (hp_amqp_url_parse(opt->url, &plan->cfg, plan->cfgbuf, sizeof plan->cfgbuf, &why) < 0) {
        snprintf(err, errlen, "%s: %s", plan->url, why ? why : "cannot parse");
        return -EINVAL;
    }
    /* Workers have no resolver: the host is looked up once, here. */
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    int r = getaddrinfo(plan->cfg.host, NULL, &hints, &res);
    if (r != 0) {
        snprintf(err, errlen, "cannot resolve '%s': %s", plan->cfg.host, gai_strerror(r));
        return -ENXIO;
    }
    r = getnameinfo(res->ai_addr, res->ai_addrlen, plan->host, sizeof plan->host, NULL, 0,
                    NI_NUMERICHOST);
    freeaddrinfo(res);
    if (r != 0) {
        snprintf(err, errlen, "cannot resolve '%s': %s", plan->cfg.host, gai_strerror(r));
        return -ENXIO;
    }
    plan->cfg.host = plan->host;

    if (getrandom(&plan->run, sizeof plan->run, 0) != sizeof plan->run)
        plan->run = (uint32_t)hp_clock_mono_ns() ^ (uint32_t)getpid();
    plan->qnames = hp_calloc((size_t)opt->queues, sizeof *plan->qnames);
    if (!plan->qnames) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (int i = 0; i < opt->queues; i++)
        snprintf(plan->qnames[i], sizeof plan->qnames[i], "hpbench-%d-%08x-%d", (int)getpid(),
                 plan->run, i);
    /* Quorum queues are durable by nature; classic ones are when the
     * messages are persistent (a persistent message in a transient queue
     * is not written for its own sake). The queues are deleted at the end;
     * x-expires removes them if hpbench is killed first. */
    plan->qflags = opt->quorum || opt->persistent ? HP_AMQP_DURABLE : 0;
    hp_amqp_table_builder_t b;
    hp_amqp_table_init(&b, plan->qargs_buf, sizeof plan->qargs_buf);
    if (opt->quorum)
        hp_amqp_table_add_str(&b, "x-queue-type", "quorum");
    uint64_t expires = (uint64_t)((opt->warmup_s + opt->duration_s) * 1000.0) +
                       HB_AMQP_EXPIRES_MARGIN_MS;
    hp_amqp_table_add_int(&b, "x-expires", (int64_t)expires);
    if (hp_amqp_table_finish(&b, &plan->qargs) < 0) {
        snprintf(err, errlen, "the queue arguments do not fit");
        return -EINVAL;
    }
    if (opt->persistent) {
        plan->props.flags = HP_AMQP_PROP_DELIVERY_MODE;
        plan->props.delivery_mode = 2;
    }
    plan->rate_mode = opt->rate > 0;
    plan->record_from_ns = 0;
    plan->stop_ns = UINT64_MAX;
    return 0;
}

void hb_aplan_destroy(hb_aplan_t *plan)
{
    hp_free(plan->qnames);
    plan->qnames = NULL;
}
