/*
 * pool.c - connection and channel pools to one AMQP endpoint, per worker
 * (include/hotpath/amqp_pool.h), built on the client's public API alone.
 *
 * Central structures: a pool has two sides (publish, consume; only the
 * first when shared). A side keeps its connections (pconn_t, one per
 * hp_amqp_conn_t it opened, in opening order), a ring of waiting
 * acquirers (FIFO, max_waiters slots, allocated once), and the list of
 * the channels it lent. A pconn keeps its idle channels. A channel record
 * (pchan_t) follows one channel from its open to its end; a consumer
 * record (pcons_t) follows one hp_amqp_pool_consume for the pool's life,
 * across the channels and connections it is placed on.
 *
 * Invariants (hp_amqp_pool_validate):
 *  - a pconn's nchans counts its records being set up, idle, lent and
 *    consuming; `lent` and `ncons` count the last two;
 *  - a record is in one place only: its pconn's idle list, its side's
 *    lent list, or a consumer's `chan`, or nowhere while a set-up call
 *    is pending (its callback holds it);
 *  - a dead record (its channel closed and freed by the client) is on
 *    the lent list only, until its borrower gives it back: it is never
 *    dereferenced, only compared;
 *  - waiters are served from the head of the ring only, so in the order
 *    they came; their deadlines are in the same order (one timeout);
 *  - user callbacks run with depth > 0, and the pool is freed only when
 *    it is closing, has no connection left and depth is back to 0.
 */
#include "hotpath/amqp_pool.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "hotpath/alloc.h"
#include "hotpath/log.h"
#include "hotpath/loop.h"
#include "hotpath/timer.h"

/* A connection as the pool sees it, from its events. */
enum { PC_CONNECTING = 0, PC_READY, PC_RECOVERING, PC_CLOSING };

/* A channel record's state. */
enum { PCH_SETUP = 0, PCH_IDLE, PCH_LENT, PCH_CONSUMING, PCH_DEAD };

/* A consumer's state. */
enum { PCONS_WAITING = 0, PCONS_PLACED, PCONS_ENDED };

typedef struct pconn pconn_t;
typedef struct pchan pchan_t;
typedef struct pcons pcons_t;
typedef struct pside pside_t;

struct pchan {
    pchan_t *next, *prev;         /* in pc->idle or side->lent */
    pconn_t *pc;                  /* NULL once dead */
    hp_amqp_channel_t *ch;        /* the client's; only compared once dead */
    pcons_t *cons;                /* being set up for, or consuming for */
    uint8_t state;                /* PCH_* */
};

struct pconn {
    pconn_t *next;                /* in its side's list */
    pside_t *side;
    hp_amqp_conn_t *conn;         /* the client's, until CLOSED */
    pchan_t *idle;                /* idle channels, most recently used first */
    uint32_t nchans, lent, ncons;
    uint8_t state;                /* PC_* */
    bool blocked;
    uint64_t last_used_ms;        /* last lend, release or consumer placed */
};

typedef struct pwaiter {
    hp_amqp_pool_acquire_cb cb;
    void *arg;
    uint64_t deadline_ms;
} pwaiter_t;

struct pside {
    hp_amqp_pool_t *pool;
    hp_amqp_pool_side_config_t cfg;
    uint8_t id;                   /* HP_AMQP_POOL_*; PUBLISH when shared */
    pconn_t *conns;
    uint32_t nconns, connecting;
    uint32_t number;              /* of the last connection opened, for its name */
    pchan_t *lent, *lent_tail;
    uint32_t nlent, opening;      /* lent records (dead ones too); lend channels in set-up */
    pwaiter_t *ring;              /* owned: cfg.max_waiters slots */
    uint32_t head, nwait;
    uint64_t retry_at_ms;         /* no new connection before this */
    bool pumping, again;
    hp_amqp_pool_stats_t stats;   /* the counters; states are counted when asked */
};

struct pcons {
    pcons_t *next;
    pchan_t *chan;                /* PCONS_PLACED: its channel */
    uint8_t state;                /* PCONS_* */
    uint16_t prefetch;
    unsigned flags;
    hp_amqp_bytes_t args;         /* owned copy */
    hp_amqp_delivery_cb on_msg;
    void *msg_arg;
    hp_amqp_done_cb cb;           /* NULL once it has run */
    void *arg;
    char queue[256];
};

struct hp_amqp_pool {
    hp_worker_t *w;
    hp_amqp_pool_config_t cfg;    /* strings point into `strs` */
    char *strs;                   /* owned */
    pside_t side[2];
    pcons_t *consumers;           /* owned, in the order made */
    hp_timer_t timer;             /* waiter deadlines, retries, idle closes */
    uint32_t depth;
    bool closing;
    void (*done)(void *arg);
    void *done_arg;
    void (*on_writable)(hp_amqp_conn_t *c, void *arg);
    void *writable_arg;
    hp_amqp_pool_event_cb on_event;
    void *event_arg;
};

static void side_pump(pside_t *s);
static void pool_arm(hp_amqp_pool_t *p);

static pside_t *side_of(hp_amqp_pool_t *p, int side)
{
    return &p->side[p->cfg.shared ? HP_AMQP_POOL_PUBLISH : side];
}

static uint64_t pool_now(const hp_amqp_pool_t *p)
{
    return hp_loop_now(hp_worker_loop(p->w));
}

/* ---- entering and leaving: the pool is freed at depth 0 only ---- */

static void pool_free(hp_amqp_pool_t *p)
{
    hp_loop_timer_cancel(hp_worker_loop(p->w), &p->timer);
    while (p->consumers) {
        pcons_t *k = p->consumers;
        p->consumers = k->next;
        hp_free((void *)k->args.ptr);
        hp_free(k);
    }
    for (int i = 0; i < 2; i++) {
        pside_t *s = &p->side[i];
        while (s->lent) { /* dead records nobody gave back */
            pchan_t *c = s->lent;
            s->lent = c->next;
            hp_free(c);
        }
        hp_free(s->ring);
    }
    void (*done)(void *) = p->done;
    void *arg = p->done_arg;
    hp_free(p->strs);
    hp_free(p);
    if (done)
        done(arg);
}

static void pool_enter(hp_amqp_pool_t *p)
{
    p->depth++;
}

static void pool_leave(hp_amqp_pool_t *p)
{
    if (--p->depth == 0 && p->closing && p->side[0].nconns == 0 && p->side[1].nconns == 0)
        pool_free(p);
}

/* ---- lists ---- */

static void idle_push(pconn_t *pc, pchan_t *c)
{
    c->state = PCH_IDLE;
    c->prev = NULL;
    c->next = pc->idle;
    if (pc->idle)
        pc->idle->prev = c;
    pc->idle = c;
}

static void idle_unlink(pconn_t *pc, pchan_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        pc->idle = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

static void lent_push(pside_t *s, pchan_t *c)
{
    c->next = NULL;
    c->prev = s->lent_tail;
    if (s->lent_tail)
        s->lent_tail->next = c;
    else
        s->lent = c;
    s->lent_tail = c;
    s->nlent++;
}

static void lent_unlink(pside_t *s, pchan_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        s->lent = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        s->lent_tail = c->prev;
    c->next = c->prev = NULL;
    s->nlent--;
}

/* ---- connections: health and choice ---- */

/* The health check: READY (handshake done, not recovering, not being
 * closed by the pool) and not blocked by the broker. Dead peers are the
 * heartbeats' business: they turn a silent connection into RECOVERING. */
static bool pc_healthy(const pconn_t *pc)
{
    return pc->state == PC_READY && !pc->blocked;
}

/* Channels this connection may carry: the side's limit, or the broker's
 * channel_max when lower. */
static uint32_t pc_limit(const pconn_t *pc)
{
    uint32_t lim = pc->side->cfg.channels;
    uint16_t cm = hp_amqp_channel_max(pc->conn);
    return cm && cm < lim ? cm : lim;
}

/* The healthy connection with an idle channel and the fewest lent. */
static pconn_t *best_idle(pside_t *s)
{
    pconn_t *best = NULL;
    for (pconn_t *pc = s->conns; pc; pc = pc->next) {
        if (pc->idle && pc_healthy(pc) && (!best || pc->lent < best->lent))
            best = pc;
    }
    return best;
}

/* The healthy connection with room for another channel (or an idle one,
 * when `idle_ok`) and the fewest channels (consumers first when placing
 * one: `by_cons`). */
static pconn_t *best_room(pside_t *s, bool idle_ok, bool by_cons)
{
    pconn_t *best = NULL;
    for (pconn_t *pc = s->conns; pc; pc = pc->next) {
        if (!pc_healthy(pc) || (pc->nchans >= pc_limit(pc) && !(idle_ok && pc->idle)))
            continue;
        uint32_t load = by_cons ? pc->ncons : pc->nchans;
        uint32_t best_load = best ? (by_cons ? best->ncons : best->nchans) : 0;
        if (!best || load < best_load)
            best = pc;
    }
    return best;
}

static void pool_on_conn(hp_amqp_conn_t *c, int ev, const hp_amqp_result_t *r, void *arg);

static void pool_on_writable(hp_amqp_conn_t *c, void *arg)
{
    hp_amqp_pool_t *p = ((pconn_t *)arg)->side->pool;
    if (!p->on_writable)
        return;
    pool_enter(p);
    p->on_writable(c, p->writable_arg);
    pool_leave(p);
}

static const char *side_name(const pside_t *s)
{
    if (s->pool->cfg.shared)
        return "shared";
    return s->id == HP_AMQP_POOL_PUBLISH ? "publish" : "consume";
}

/* Opens one more connection on side `s`, named after the side, the worker
 * and its number. Returns 0 or hp_amqp_connect's -errno. */
static int conn_open(pside_t *s)
{
    hp_amqp_pool_t *p = s->pool;
    pconn_t *pc = hp_calloc(1, sizeof *pc);
    if (!pc)
        return -ENOMEM;
    pc->side = s;
    char name[256];
    snprintf(name, sizeof name, "%s %s w%u #%u", p->cfg.amqp.name ? p->cfg.amqp.name : "hotpath",
             side_name(s), hp_worker_id(p->w), s->number + 1);
    hp_amqp_config_t cfg = p->cfg.amqp;
    cfg.name = name;
    int r = hp_amqp_connect(p->w, &cfg, pool_on_conn, pc, &pc->conn);
    if (r < 0) {
        hp_free(pc);
        return r;
    }
    s->number++;
    if (s->id == HP_AMQP_POOL_PUBLISH)
        hp_amqp_on_writable(pc->conn, pool_on_writable, pc);
    pconn_t **at = &s->conns;
    while (*at)
        at = &(*at)->next;
    *at = pc;
    s->nconns++;
    s->connecting++;
    s->stats.opened++;
    pc->last_used_ms = pool_now(p);
    return 0;
}

/* ---- waiters ---- */

static pwaiter_t waiter_pop(pside_t *s)
{
    pwaiter_t w = s->ring[s->head];
    s->head = (s->head + 1) % s->pool->cfg.max_waiters;
    s->nwait--;
    return w;
}

/* Ends the head waiter with `err` (its callback runs). */
static void waiter_fail(pside_t *s, int err)
{
    hp_amqp_pool_t *p = s->pool;
    pwaiter_t w = waiter_pop(s);
    if (err == -ETIMEDOUT)
        s->stats.timeouts++;
    pool_enter(p);
    w.cb(p, NULL, err, w.arg);
    pool_leave(p);
}

/* ---- channels ---- */

static void pool_on_chan_close(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg);
static void pool_on_chan_open(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg);
static void pool_on_setup(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg);
static void pool_on_cons_msg(hp_amqp_channel_t *ch, const hp_amqp_delivery_t *d, void *arg);

/* Forgets record `c` of connection `pc` (not on any list): its channel is
 * gone or going, and the pool will not touch it again. `alive`: the
 * channel is still the client's to touch (inside one of its callbacks),
 * so its on_close, which names the record, is taken back first; a
 * connection's CLOSED comes after its channels were freed. */
static void chan_forget(pconn_t *pc, pchan_t *c, bool alive)
{
    pc->nchans--;
    if (alive && c->ch)
        hp_amqp_channel_on_close(c->ch, NULL, NULL);
    hp_free(c);
}

/* Issues the calls that make an open channel what its record needs: for
 * a consumer, qos then consume (their answer completes the set-up); for a
 * publisher channel in confirm mode, confirm.select. Returns 1 when the
 * set-up is complete already, 0 when a reply will complete it, -errno. */
static int chan_setup(pchan_t *c, bool fresh)
{
    hp_amqp_pool_t *p = c->pc->side->pool;
    pcons_t *k = c->cons;
    if (k) {
        int r = hp_amqp_qos(c->ch, k->prefetch, false, NULL, NULL);
        if (r == 0)
            r = hp_amqp_consume(c->ch, k->queue, NULL, k->flags, k->args, pool_on_cons_msg, k,
                                pool_on_setup, c);
        return r;
    }
    if (fresh && c->pc->side->id == HP_AMQP_POOL_PUBLISH && p->cfg.confirm_window) {
        int r = hp_amqp_confirm_select(c->ch, p->cfg.confirm_window, pool_on_setup, c);
        return r;
    }
    return 1;
}

/* Opens a channel on `pc`, for consumer `k` or (NULL) to lend. */
static int chan_open(pconn_t *pc, pcons_t *k)
{
    pchan_t *c = hp_calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    int r = hp_amqp_channel_open(pc->conn, pool_on_chan_open, c, &c->ch);
    if (r < 0) {
        hp_free(c);
        return r;
    }
    c->pc = pc;
    c->cons = k;
    c->state = PCH_SETUP;
    pc->nchans++;
    if (k) {
        k->state = PCONS_PLACED;
        k->chan = c;
        pc->ncons++;
    } else {
        pc->side->opening++;
    }
    return 0;
}

/* Consumer `k` leaves its channel record (which `pc` keeps or forgets)
 * for `state`: waiting to be placed again, or ended. */
static void cons_detach(pconn_t *pc, pcons_t *k, uint8_t state)
{
    pc->ncons--;
    k->chan->cons = NULL;
    k->chan = NULL;
    k->state = state;
}

/* The consumer's first answer, once: cb(ch, r) of hp_amqp_pool_consume. */
static void cons_report(hp_amqp_pool_t *p, pcons_t *k, hp_amqp_channel_t *ch,
                        const hp_amqp_result_t *r)
{
    hp_amqp_done_cb cb = k->cb;
    if (!cb)
        return;
    k->cb = NULL;
    pool_enter(p);
    cb(ch, r, k->arg);
    pool_leave(p);
}

/* The set-up of `c` ended: `err` 0 (ready), or why not. `ch` is NULL
 * when the channel is gone already (a failed open). */
static void chan_setup_done(pchan_t *c, hp_amqp_channel_t *ch, int err, const hp_amqp_result_t *r)
{
    pconn_t *pc = c->pc;
    pside_t *s = pc->side;
    hp_amqp_pool_t *p = s->pool;
    pcons_t *k = c->cons;
    if (!k)
        s->opening--;
    if (err == 0 && k) {
        c->state = PCH_CONSUMING;
        cons_report(p, k, ch, r);
        return;
    }
    if (err == 0 || (err == -ECONNRESET && ch)) {
        /* Ready; or its connection is being recovered, which opens the
         * channel again (in confirm mode if it was asked): idle, it waits
         * with its connection. A consumer goes elsewhere meanwhile. */
        if (k)
            cons_detach(pc, k, PCONS_WAITING);
        idle_push(pc, c);
        if (err == 0)
            side_pump(s);
        return;
    }
    c->ch = ch;
    if (k)
        cons_detach(pc, k, err == -EPROTO ? PCONS_ENDED : PCONS_WAITING);
    chan_forget(pc, c, true);
    if (k && k->state == PCONS_ENDED) {
        cons_report(p, k, ch, r);
    } else if (err == -EPROTO && s->nwait) {
        /* The broker refused a channel's set-up: it would refuse the
         * next one too. The first waiter hears it rather than wait. */
        waiter_fail(s, err);
    }
    if (!p->closing)
        side_pump(s);
}

static void pool_on_chan_open(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg)
{
    pchan_t *c = arg;
    hp_amqp_pool_t *p = c->pc->side->pool;
    pool_enter(p);
    if (r->err) {
        chan_setup_done(c, NULL, r->err, r);
    } else {
        hp_amqp_channel_on_close(ch, pool_on_chan_close, c);
        int n = chan_setup(c, true);
        if (n < 0) {
            hp_amqp_channel_close(ch, NULL, NULL);
            chan_setup_done(c, ch, n, &(hp_amqp_result_t){.err = n});
        } else if (n == 1) {
            chan_setup_done(c, ch, 0, r);
        }
    }
    pool_leave(p);
}

static void pool_on_setup(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg)
{
    pchan_t *c = arg;
    hp_amqp_pool_t *p = c->pc->side->pool;
    pool_enter(p);
    chan_setup_done(c, ch, r->err, r);
    pool_leave(p);
}

/* The broker closed a channel of the pool (or its consumer's). */
static void pool_on_chan_close(hp_amqp_channel_t *ch, const hp_amqp_result_t *r, void *arg)
{
    (void)ch;
    (void)r;
    pchan_t *c = arg;
    pconn_t *pc = c->pc;
    pside_t *s = pc->side;
    hp_amqp_pool_t *p = s->pool;
    pool_enter(p);
    switch (c->state) {
    case PCH_IDLE:
        idle_unlink(pc, c);
        chan_forget(pc, c, true);
        break;
    case PCH_LENT:
        /* Its borrower gives it back later: the record stays, dead. */
        c->state = PCH_DEAD;
        c->pc = NULL;
        pc->lent--;
        pc->nchans--;
        break;
    case PCH_CONSUMING:
        /* e.g. 406 for an ack of an unknown tag: consume again elsewhere. */
        cons_detach(pc, c->cons, PCONS_WAITING);
        chan_forget(pc, c, true);
        break;
    default: /* PCH_SETUP: the set-up call's failure has handled it */
        break;
    }
    if (!p->closing)
        side_pump(s);
    pool_leave(p);
}

/* ---- consumers ---- */

static void pool_on_cons_msg(hp_amqp_channel_t *ch, const hp_amqp_delivery_t *d, void *arg)
{
    pcons_t *k = arg;
    pchan_t *c = k->chan;
    hp_amqp_pool_t *p = c ? c->pc->side->pool : NULL;
    if (p)
        pool_enter(p);
    k->on_msg(ch, d, k->msg_arg);
    if (!d && c && k->chan == c) {
        /* Cancelled by the broker: the consumer ends, its channel stays
         * open and becomes an idle one of the side. */
        cons_detach(c->pc, k, PCONS_ENDED);
        idle_push(c->pc, c);
        side_pump(c->pc->side);
    }
    if (p)
        pool_leave(p);
}

/* Places waiting consumers on healthy connections of `s`, reusing an idle
 * channel when the chosen connection has one. */
static void place_consumers(pside_t *s)
{
    hp_amqp_pool_t *p = s->pool;
    for (pcons_t *k = p->consumers; k && !p->closing; k = k->next) {
        if (k->state != PCONS_WAITING)
            continue;
        pconn_t *pc = best_room(s, true, true);
        if (!pc)
            return;
        pc->last_used_ms = pool_now(p);
        if (!pc->idle) {
            if (chan_open(pc, k) < 0)
                return;
            continue;
        }
        pchan_t *c = pc->idle;
        idle_unlink(pc, c);
        c->state = PCH_SETUP;
        c->cons = k;
        k->chan = c;
        k->state = PCONS_PLACED;
        pc->ncons++;
        int r = chan_setup(c, false);
        if (r < 0) {
            hp_amqp_channel_close(c->ch, NULL, NULL);
            chan_setup_done(c, c->ch, r, &(hp_amqp_result_t){.err = r});
        }
    }
}

static uint32_t consumers_waiting(const hp_amqp_pool_t *p)
{
    uint32_t n = 0;
    for (const pcons_t *k = p->consumers; k; k = k->next)
        n += k->state == PCONS_WAITING;
    return n;
}

/* ---- the pump: waiters served, consumers placed, connections opened ---- */

static void lend(pside_t *s, pconn_t *pc, pchan_t *c)
{
    idle_unlink(pc, c);
    c->state = PCH_LENT;
    lent_push(s, c);
    pc->lent++;
    pc->last_used_ms = pool_now(s->pool);
    s->stats.acquired++;
}

static void side_pump_once(pside_t *s)
{
    hp_amqp_pool_t *p = s->pool;
    /* Waiters, first come first served, take idle channels. */
    pconn_t *pc;
    while (s->nwait && !p->closing && (pc = best_idle(s)) != NULL) {
        pchan_t *c = pc->idle;
        lend(s, pc, c);
        pwaiter_t w = waiter_pop(s);
        pool_enter(p);
        w.cb(p, c->ch, 0, w.arg);
        pool_leave(p);
    }
    if (p->closing)
        return;
    if (s == side_of(p, HP_AMQP_POOL_CONSUME))
        place_consumers(s);
    /* Channels for the waiters left, on connections with room. */
    uint32_t need = s->nwait > s->opening ? s->nwait - s->opening : 0;
    while (need && !p->closing && (pc = best_room(s, false, false)) != NULL) {
        if (chan_open(pc, NULL) < 0)
            break;
        need--;
    }
    if (p->closing)
        return;
    /* A connection more for what no connection could take, or up to
     * min_conns; one at a time, and not before a retry delay after a
     * connection closed for good (a broker that is down is not hammered). */
    if (s == side_of(p, HP_AMQP_POOL_CONSUME))
        need += consumers_waiting(p);
    uint64_t now = pool_now(p);
    int r = 0;
    while (r == 0 && s->nconns < s->cfg.min_conns && now >= s->retry_at_ms)
        r = conn_open(s);
    if (r == 0 && need && s->connecting == 0 && s->nconns < s->cfg.max_conns &&
        now >= s->retry_at_ms)
        r = conn_open(s);
    if (r < 0)
        s->retry_at_ms = now + p->cfg.retry_ms;
}

/* Runs the pump; a pump asked for from inside one (a callback) runs again
 * at its end rather than nested. */
static void side_pump(pside_t *s)
{
    if (s->pumping) {
        s->again = true;
        return;
    }
    hp_amqp_pool_t *p = s->pool;
    pool_enter(p);
    s->pumping = true;
    do {
        s->again = false;
        side_pump_once(s);
    } while (s->again && !p->closing);
    s->pumping = false;
    pool_arm(p);
    pool_leave(p);
}

/* ---- the timer: waiter deadlines, retries, idle connections ---- */

static uint64_t side_deadline(const pside_t *s)
{
    const hp_amqp_pool_t *p = s->pool;
    uint64_t when = UINT64_MAX;
    if (s->nwait)
        when = s->ring[s->head].deadline_ms;
    if (s->nconns < s->cfg.min_conns && s->retry_at_ms < when)
        when = s->retry_at_ms;
    if (p->cfg.idle_timeout_ms && s->nconns > s->cfg.min_conns) {
        for (const pconn_t *pc = s->conns; pc; pc = pc->next) {
            uint64_t t = pc->last_used_ms + p->cfg.idle_timeout_ms;
            if (pc->state == PC_READY && pc->lent == 0 && pc->ncons == 0 && t < when)
                when = t;
        }
    }
    return when;
}

static void pool_arm(hp_amqp_pool_t *p)
{
    hp_loop_t *loop = hp_worker_loop(p->w);
    hp_loop_timer_cancel(loop, &p->timer);
    if (p->closing)
        return;
    uint64_t when = side_deadline(&p->side[0]);
    if (!p->cfg.shared) {
        uint64_t w1 = side_deadline(&p->side[1]);
        when = w1 < when ? w1 : when;
    }
    if (when == UINT64_MAX)
        return;
    uint64_t now = pool_now(p);
    hp_loop_timer_arm(loop, &p->timer, when > now ? when - now : 0);
}

/* Closes at most one idle connection above min_conns per turn (the next
 * turn comes from its CLOSED event). */
static void side_shrink(pside_t *s, uint64_t now)
{
    hp_amqp_pool_t *p = s->pool;
    if (!p->cfg.idle_timeout_ms)
        return;
    uint32_t open = 0;
    for (pconn_t *pc = s->conns; pc; pc = pc->next)
        open += pc->state != PC_CLOSING;
    if (open <= s->cfg.min_conns)
        return;
    for (pconn_t *pc = s->conns; pc; pc = pc->next) {
        if (pc->state == PC_READY && pc->lent == 0 && pc->ncons == 0 &&
            now >= pc->last_used_ms + p->cfg.idle_timeout_ms) {
            pc->state = PC_CLOSING;
            hp_amqp_close(pc->conn);
            return;
        }
    }
}

static void pool_on_timer(hp_timer_t *t)
{
    hp_amqp_pool_t *p = HP_CONTAINER_OF(t, hp_amqp_pool_t, timer);
    pool_enter(p);
    uint64_t now = pool_now(p);
    for (int i = 0; i < (p->cfg.shared ? 1 : 2) && !p->closing; i++) {
        pside_t *s = &p->side[i];
        while (s->nwait && s->ring[s->head].deadline_ms <= now && !p->closing)
            waiter_fail(s, -ETIMEDOUT);
        if (!p->closing)
            side_shrink(s, now);
        if (!p->closing)
            side_pump(s);
    }
    pool_leave(p);
}

/* ---- connection events ---- */

/* Connection `pc` closed for good: its idle channels are forgotten, its
 * lent ones die (their borrowers give them back), its consumers wait for
 * another connection; then it goes. */
static void conn_gone(pconn_t *pc)
{
    pside_t *s = pc->side;
    hp_amqp_pool_t *p = s->pool;
    while (pc->idle) {
        pchan_t *c = pc->idle;
        idle_unlink(pc, c);
        chan_forget(pc, c, false);
    }
    for (pchan_t *c = s->lent; c; c = c->next) {
        if (c->pc == pc) {
            c->state = PCH_DEAD;
            c->pc = NULL;
            pc->lent--;
            pc->nchans--;
        }
    }
    for (pcons_t *k = p->consumers; k; k = k->next) {
        if (k->chan && k->chan->pc == pc) {
            pchan_t *c = k->chan;
            cons_detach(pc, k, PCONS_WAITING);
            chan_forget(pc, c, false);
        }
    }
    if (pc->state == PC_CONNECTING)
        s->connecting--;
    if (pc->state != PC_CLOSING && !p->closing)
        s->retry_at_ms = pool_now(p) + p->cfg.retry_ms;
    pconn_t **at = &s->conns;
    while (*at != pc)
        at = &(*at)->next;
    *at = pc->next;
    s->nconns--;
    s->stats.closed++;
    hp_free(pc);
}

static void pool_on_conn(hp_amqp_conn_t *c, int ev, const hp_amqp_result_t *r, void *arg)
{
    pconn_t *pc = arg;
    pside_t *s = pc->side;
    hp_amqp_pool_t *p = s->pool;
    pool_enter(p);
    switch (ev) {
    case HP_AMQP_EV_READY:
        if (pc->state == PC_CONNECTING) {
            s->connecting--;
            pc->state = PC_READY;
        }
        pc->last_used_ms = pool_now(p);
        break;
    case HP_AMQP_EV_RECOVERED:
        if (pc->state == PC_RECOVERING)
            pc->state = PC_READY;
        break;
    case HP_AMQP_EV_RECOVERING:
        if (pc->state == PC_READY)
            pc->state = PC_RECOVERING;
        break;
    case HP_AMQP_EV_BLOCKED:
        pc->blocked = true;
        break;
    case HP_AMQP_EV_UNBLOCKED:
        pc->blocked = false;
        break;
    case HP_AMQP_EV_CLOSED:
        if (r->err && pc->state != PC_CLOSING && !p->closing)
            hp_log(WARN, "amqp pool: a %s connection closed: %s", side_name(s),
                   r->reply_code ? "refused by the broker" : strerror(-r->err));
        conn_gone(pc);
        break;
    default:
        break;
    }
    if (p->on_event)
        p->on_event(p, s->id, c, ev, r, p->event_arg);
    if (!p->closing)
        side_pump(s);
    pool_leave(p);
}

/* ---- the API ---- */

static int side_check(const hp_amqp_pool_side_config_t *c, uint32_t max_waiters)
{
    if (c->max_conns == 0 || c->min_conns > c->max_conns || c->channels == 0 || max_waiters == 0)
        return -EINVAL;
    return 0;
}

/* Copies the configuration's strings into one block: *out owns them. */
static int copy_strings(hp_amqp_config_t *a, char **out)
{
    const char **fields[] = {&a->host, &a->vhost, &a->user, &a->password, &a->name};
    size_t n = 0;
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        n += *fields[i] ? strlen(*fields[i]) + 1 : 0;
    char *buf = hp_malloc(n ? n : 1);
    if (!buf)
        return -ENOMEM;
    char *at = buf;
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        if (!*fields[i])
            continue;
        size_t len = strlen(*fields[i]) + 1;
        memcpy(at, *fields[i], len);
        *fields[i] = at;
        at += len;
    }
    *out = buf;
    return 0;
}

int hp_amqp_pool_new(hp_worker_t *w, const hp_amqp_pool_config_t *cfg, hp_amqp_pool_t **out)
{
    if (!w || !cfg || side_check(&cfg->publish, cfg->max_waiters) < 0 ||
        (!cfg->shared && side_check(&cfg->consume, cfg->max_waiters) < 0))
        return -EINVAL;
    hp_amqp_pool_t *p = hp_calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->w = w;
    p->cfg = *cfg;
    hp_timer_init(&p->timer, pool_on_timer);
    int r = copy_strings(&p->cfg.amqp, &p->strs);
    for (int i = 0; i < 2 && r == 0; i++) {
        pside_t *s = &p->side[i];
        s->pool = p;
        s->id = (uint8_t)i;
        s->cfg = i == HP_AMQP_POOL_PUBLISH ? cfg->publish : cfg->consume;
        s->ring = hp_calloc(cfg->max_waiters, sizeof *s->ring);
        if (!s->ring)
            r = -ENOMEM;
    }
    /* The first connection opened here says whether the configuration is
     * one the client takes; the others follow from the pump. */
    pside_t *first = &p->side[cfg->publish.min_conns || cfg->shared ? 0 : 1];
    if (r == 0 && first->cfg.min_conns)
        r = conn_open(first);
    if (r < 0) {
        for (int i = 0; i < 2; i++)
            hp_free(p->side[i].ring);
        hp_free(p->strs);
        hp_free(p);
        return r;
    }
    side_pump(&p->side[0]);
    if (!cfg->shared)
        side_pump(&p->side[1]);
    *out = p;
    return 0;
}

void hp_amqp_pool_close(hp_amqp_pool_t *p, void (*done)(void *arg), void *arg)
{
    if (!p || p->closing)
        return;
    pool_enter(p);
    p->closing = true;
    p->done = done;
    p->done_arg = arg;
    hp_loop_timer_cancel(hp_worker_loop(p->w), &p->timer);
    for (int i = 0; i < 2; i++) {
        pside_t *s = &p->side[i];
        while (s->nwait)
            waiter_fail(s, -ECANCELED);
    }
    for (int i = 0; i < 2; i++) {
        /* hp_amqp_close may report CLOSED at once (a stopping worker),
         * which unlinks the connection: take the next one first. */
        pconn_t *pc = p->side[i].conns;
        while (pc) {
            pconn_t *next = pc->next;
            if (pc->state != PC_CLOSING) {
                p->side[i].connecting -= pc->state == PC_CONNECTING;
                pc->state = PC_CLOSING;
                hp_amqp_close(pc->conn);
            }
            pc = next;
        }
    }
    pool_leave(p);
}

int hp_amqp_pool_channel_acquire(hp_amqp_pool_t *p, int side, hp_amqp_pool_acquire_cb cb,
                                 void *arg, hp_amqp_channel_t **out)
{
    if (side != HP_AMQP_POOL_PUBLISH && side != HP_AMQP_POOL_CONSUME)
        return -EINVAL;
    if (p->closing)
        return -ESHUTDOWN;
    pside_t *s = side_of(p, side);
    pconn_t *pc;
    if (s->nwait == 0 && (pc = best_idle(s)) != NULL) {
        pchan_t *c = pc->idle;
        lend(s, pc, c);
        *out = c->ch;
        return 1;
    }
    if (!cb)
        return -EINVAL;
    if (s->nwait == p->cfg.max_waiters) {
        s->stats.refused++;
        return -EAGAIN;
    }
    pwaiter_t *w = &s->ring[(s->head + s->nwait) % p->cfg.max_waiters];
    *w = (pwaiter_t){.cb = cb, .arg = arg, .deadline_ms = pool_now(p) + p->cfg.wait_timeout_ms};
    s->nwait++;
    s->stats.waited++;
    side_pump(s);
    return 0;
}

/* The record lent for `ch`: a dead one first (a channel freed may share
 * its address with one lent since, and the pair ends the same whichever
 * release matches which: the live channel idle, the dead record gone). */
static pchan_t *lent_find(pside_t *s, hp_amqp_channel_t *ch)
{
    pchan_t *live = NULL;
    for (pchan_t *c = s->lent; c; c = c->next) {
        if (c->ch != ch)
            continue;
        if (c->state == PCH_DEAD)
            return c;
        live = c;
    }
    return live;
}

int hp_amqp_pool_channel_release(hp_amqp_pool_t *p, hp_amqp_channel_t *ch)
{
    pside_t *s = NULL;
    pchan_t *c = NULL;
    for (int i = 0; i < (p->cfg.shared ? 1 : 2) && !c; i++) {
        s = &p->side[i];
        c = lent_find(s, ch);
    }
    if (!c)
        return -ENOENT;
    lent_unlink(s, c);
    if (c->state == PCH_DEAD) {
        hp_free(c);
        return 0;
    }
    pconn_t *pc = c->pc;
    pc->lent--;
    pc->last_used_ms = pool_now(p);
    idle_push(pc, c);
    if (!p->closing && s->nwait)
        side_pump(s);
    else if (!p->closing && pc->lent == 0 && p->cfg.idle_timeout_ms &&
             !hp_timer_armed(&p->timer))
        pool_arm(p); /* its idle time starts */
    return 0;
}

int hp_amqp_pool_consume(hp_amqp_pool_t *p, const char *queue, uint16_t prefetch,
                         unsigned flags, hp_amqp_bytes_t args, hp_amqp_delivery_cb on_msg,
                         void *msg_arg, hp_amqp_done_cb cb, void *arg)
{
    if (p->closing)
        return -ESHUTDOWN;
    size_t qlen = queue ? strlen(queue) : 0;
    if (qlen == 0 || qlen > 255 || !on_msg)
        return -EINVAL;
    pcons_t *k = hp_calloc(1, sizeof *k);
    if (!k)
        return -ENOMEM;
    if (args.len) {
        void *copy = hp_malloc(args.len);
        if (!copy) {
            hp_free(k);
            return -ENOMEM;
        }
        memcpy(copy, args.ptr, args.len);
        k->args = (hp_amqp_bytes_t){copy, args.len};
    }
    memcpy(k->queue, queue, qlen + 1);
    k->prefetch = prefetch;
    k->flags = flags;
    k->on_msg = on_msg;
    k->msg_arg = msg_arg;
    k->cb = cb;
    k->arg = arg;
    pcons_t **at = &p->consumers;
    while (*at)
        at = &(*at)->next;
    *at = k;
    side_pump(side_of(p, HP_AMQP_POOL_CONSUME));
    return 0;
}

void hp_amqp_pool_on_writable(hp_amqp_pool_t *p, void (*cb)(hp_amqp_conn_t *c, void *arg),
                              void *arg)
{
    p->on_writable = cb;
    p->writable_arg = arg;
}

void hp_amqp_pool_on_event(hp_amqp_pool_t *p, hp_amqp_pool_event_cb cb, void *arg)
{
    p->on_event = cb;
    p->event_arg = arg;
}

void hp_amqp_pool_stats(const hp_amqp_pool_t *p, int side, hp_amqp_pool_stats_t *out)
{
    const pside_t *s = &p->side[p->cfg.shared || side != HP_AMQP_POOL_CONSUME ? 0 : 1];
    *out = s->stats;
    out->connecting = out->ready = out->blocked = out->recovering = 0;
    out->channels_idle = out->channels_lent = 0;
    for (const pconn_t *pc = s->conns; pc; pc = pc->next) {
        if (pc->state == PC_CONNECTING)
            out->connecting++;
        else if (pc->state == PC_RECOVERING)
            out->recovering++;
        else if (pc->state == PC_READY && pc->blocked)
            out->blocked++;
        else if (pc->state == PC_READY)
            out->ready++;
        for (const pchan_t *c = pc->idle; c; c = c->next)
            out->channels_idle++;
        out->channels_lent += pc->lent;
    }
    out->channels_opening = s->opening;
    out->waiters = s->nwait;
    out->consumers = out->consumers_waiting = 0;
    if (s == side_of((hp_amqp_pool_t *)p, HP_AMQP_POOL_CONSUME)) {
        for (const pcons_t *k = p->consumers; k; k = k->next) {
            out->consumers += k->state == PCONS_PLACED;
            out->consumers_waiting += k->state == PCONS_WAITING;
        }
    }
}

int hp_amqp_pool_validate(const hp_amqp_pool_t *p)
{
    for (int i = 0; i < 2; i++) {
        const pside_t *s = &p->side[i];
        if (s->nwait > p->cfg.max_waiters || s->head >= p->cfg.max_waiters)
            return -EINVAL;
        uint32_t nlent = 0, connecting = 0, nconns = 0;
        for (const pchan_t *c = s->lent; c; c = c->next) {
            if ((c->state != PCH_LENT && c->state != PCH_DEAD) ||
                (c->state == PCH_DEAD) != (c->pc == NULL) || (c->next && c->next->prev != c))
                return -EINVAL;
            nlent++;
        }
        if (nlent != s->nlent)
            return -EINVAL;
        for (const pconn_t *pc = s->conns; pc; pc = pc->next) {
            nconns++;
            connecting += pc->state == PC_CONNECTING;
            uint32_t idle = 0, lent = 0, cons = 0;
            for (const pchan_t *c = pc->idle; c; c = c->next) {
                if (c->state != PCH_IDLE || c->pc != pc || (c->next && c->next->prev != c))
                    return -EINVAL;
                idle++;
            }
            for (const pchan_t *c = s->lent; c; c = c->next)
                lent += c->pc == pc;
            for (const pcons_t *k = p->consumers; k; k = k->next)
                cons += k->chan && k->chan->pc == pc;
            if (lent != pc->lent || cons != pc->ncons || idle + lent + cons > pc->nchans)
                return -EINVAL;
        }
        if (nconns != s->nconns || connecting != s->connecting ||
            nconns > s->cfg.max_conns + 0u)
            return -EINVAL;
    }
    for (const pcons_t *k = p->consumers; k; k = k->next) {
        if ((k->state == PCONS_PLACED) != (k->chan != NULL) || (k->chan && k->chan->cons != k))
            return -EINVAL;
    }
    return 0;
}
