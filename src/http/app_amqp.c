/*
 * app_amqp.c - the app's AMQP side: amqp.connections connections per
 * worker, each with amqp.channels channels in confirm mode, the route
 * that publishes a request's body through them and answers once the
 * broker has confirmed, and the hotpath_amqp_* metrics.
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
#include "app_amqp_int.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hotpath/alloc.h"
#include "hotpath/amqp.h"
#include "hotpath/log.h"
#include "hotpath/loop.h"
#include "hotpath/router.h"
#include "net/worker_int.h"

/* ---- settings ------------------------------------------------------------- */

/* The route's parameters. */
#define P_EXCHANGE "exchange"
#define P_KEY "routing_key"
#define ROUTE_TAIL "/{" P_EXCHANGE "}/{" P_KEY ":*}"

/* Names in the URL that mean the default exchange (""), which a path
 * segment cannot spell. */
#define DEFAULT_EXCHANGE_DASH "-"
#define DEFAULT_EXCHANGE_NAME "amq.default"

/* AMQP short strings (names, content types) are at most 255 bytes. */
#define SHORTSTR_MAX 255

/* The confirm window's bound, which docs/configuration.md states. */
#define WINDOW_MAX 65535u

/* A worker's publishing connections (amqp.connections) and each one's
 * channels (amqp.channels): 64 of each is past what one worker's
 * publishing needs. */
#define LINKS_MAX 64u
#define CHANS_MAX 64u

/* Each channel's confirm window sizes a worker's slot table, allocated
 * at start-up (about 100 bytes a slot): connections x channels x window
 * is bounded by SLOTS_MAX, about 26 MB per worker. */
#define SLOTS_MAX (1u << 18)

/* With amqp.publish_queue, requests beyond the windows wait in the
 * channels' queues, and each holds a slot there too. A queued message
 * of the route counts its frames (a method frame with two names, a
 * header frame with a 38-byte message id and the content type) and the
 * queue's entry, well over QUEUED_MIN_BYTES: a queue of N bytes holds
 * fewer than N / QUEUED_MIN_BYTES of them, and that many more slots per
 * channel, up to QUEUE_SLOTS_MAX per worker, let them wait there rather
 * than get 503. */
#define QUEUED_MIN_BYTES 128u
#define QUEUE_SLOTS_MAX 65536u

struct app_amqp {
    hp_app_amqp_t cfg;           /* its strings point into strs */
    char *pattern;               /* in strs; NULL: no route */
    char *strs;                  /* owned */
    uint64_t nonce;              /* starts every message id: tells runs apart */
};

const hp_app_amqp_t *app_amqp_settings(const app_amqp_t *a)
{
    return &a->cfg;
}

const char *app_amqp_pattern(const app_amqp_t *a)
{
    return a->pattern;
}

static int bad(const char **key, const char *k, char *err, size_t errlen, const char *fmt,
               const char *arg)
{
    *key = k;
    if (errlen)
        snprintf(err, errlen, fmt, arg);
    return -EINVAL;
}

/* The pattern for `route`: a trailing '/' is dropped, so that "/publish/"
 * and "/publish" name the same route. out needs strlen(route) +
 * sizeof ROUTE_TAIL bytes. */
static void route_pattern(const char *route, char *out)
{
    size_t n = strlen(route);
    if (n && route[n - 1] == '/')
        n--;
    memcpy(out, route, n);
    memcpy(out + n, ROUTE_TAIL, sizeof ROUTE_TAIL);
}

/* A header value's bytes: printable ASCII and tab. */
static bool header_value(const char *s, size_t min, size_t max)
{
    size_t n = strlen(s);
    if (n < min || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch < 0x20 && ch != '\t') || ch >= 0x7f)
            return false;
    }
    return true;
}

/* The slots of a worker: every channel's confirm window, and with a
 * publish queue what the queues may hold (QUEUED_MIN_BYTES). */
static uint32_t worker_slots(const hp_app_amqp_t *cfg)
{
    uint64_t chans = (uint64_t)cfg->connections * cfg->channels;
    uint64_t queued = chans * (cfg->conn.publish_queue_bytes / QUEUED_MIN_BYTES);
    if (queued > QUEUE_SLOTS_MAX)
        queued = QUEUE_SLOTS_MAX;
    return (uint32_t)(chans * cfg->confirm_window + queued);
}

int app_amqp_check(const hp_app_amqp_t *cfg, const char **key, char *err, size_t errlen)
{
    if (errlen)
        err[0] = '\0';
    if (cfg->enabled) {
        /* The URL's syntax is the client's; what it names must also be
         * what hp_amqp_connect takes, or each worker would retry in vain.
         * The URL is not repeated: it may hold a password. */
        hp_amqp_config_t conn = cfg->conn;
        size_t len = cfg->url ? HP_AMQP_URL_BUFSIZE(strlen(cfg->url)) : 1;
        char *buf = hp_malloc(len);
        const char *why = NULL;
        int r = -ENOMEM;
        if (buf)
            r = cfg->url ? hp_amqp_url_parse(cfg->url, &conn, buf, len, &why) : 0;
        if (r == 0 && (!conn.host || !*conn.host))
            why = "no host", r = -EINVAL;
        else if (r == 0 && (!conn.vhost || !conn.user || !conn.password ||
                            strlen(conn.vhost) > SHORTSTR_MAX || strlen(conn.user) > SHORTSTR_MAX ||
                            strlen(conn.password) > SHORTSTR_MAX))
            why = "a user, password or vhost missing or longer than 255 bytes", r = -EINVAL;
        hp_free(buf);
        if (r == -ENOMEM)
            return bad(key, "amqp.url", err, errlen, "%s", "out of memory");
        if (r < 0) {
            *key = "amqp.url";
            if (errlen)
                snprintf(err, errlen, "%s (expected amqp://user:password@host:port/vhost, "
                         "several hosts as host1:port,host2:port, the vhost "
                         "percent-encoded: %%2F for /)",
                         why ? why : "not an AMQP URL");
            return -EINVAL;
        }
    }
    if (cfg->confirm_window < 1 || cfg->confirm_window > WINDOW_MAX)
        return bad(key, "amqp.confirm_window", err, errlen, "%s",
                   "expected a whole number from 1 to 65535");
    if (cfg->connections < 1 || cfg->connections > LINKS_MAX)
        return bad(key, "amqp.connections", err, errlen, "%s",
                   "expected a whole number from 1 to 64");
    if (cfg->channels < 1 || cfg->channels > CHANS_MAX)
        return bad(key, "amqp.channels", err, errlen, "%s",
                   "expected a whole number from 1 to 64");
    uint64_t window_slots = (uint64_t)cfg->connections * cfg->channels * cfg->confirm_window;
    if (window_slots > SLOTS_MAX) {
        /* Blamed on the key that multiplied the window last. */
        *key = cfg->channels > 1 ? "amqp.channels" : "amqp.connections";
        if (errlen)
            snprintf(err, errlen, "amqp.connections x amqp.channels x amqp.confirm_window is "
                     "%" PRIu64 ", more than the %u messages a worker may have waiting "
                     "for confirms", window_slots, SLOTS_MAX);
        return -EINVAL;
    }
    if (cfg->timeout_ms < 1)
        return bad(key, "amqp.timeout", err, errlen, "%s", "expected at least 1ms");
    if (!cfg->content_type || !header_value(cfg->content_type, 1, SHORTSTR_MAX))
        return bad(key, "amqp.content_type", err, errlen, "%s",
                   "expected a header value of 1 to 255 printable ASCII characters");
    const hp_amqp_breaker_config_t *bk = &cfg->breaker;
    if (bk->failures) {
        if (bk->window_ms < 1)
            return bad(key, "amqp.breaker_window", err, errlen, "%s", "expected at least 1ms");
        if (bk->open_ms < 1)
            return bad(key, "amqp.breaker_open", err, errlen, "%s", "expected at least 1ms");
        if (bk->open_max_ms && bk->open_max_ms < bk->open_ms)
            return bad(key, "amqp.breaker_open_max", err, errlen, "%s",
                       "expected at least amqp.breaker_open (the first open time)");
    }
    if (!cfg->publish_route)
        return 0;
    const char *route = cfg->publish_route;
    if (!cfg->enabled)
        return bad(key, "amqp.publish_route", err, errlen,
                   "a route, but no AMQP connection to publish on: set amqp.url too%s", "");
    if (route[0] != '/' || strpbrk(route, "{}?# ") || strlen(route) > 1024)
        return bad(key, "amqp.publish_route", err, errlen,
                   "expected a URL path starting with '/' without '{', '}', '?', '#' or "
                   "spaces, got '%s'", route);
    /* What the router makes of it, on a router of its own. */
    char *pattern = hp_malloc(strlen(route) + sizeof ROUTE_TAIL);
    hp_router_t *rt = hp_router_new();
    char why[256] = "";
    int r = -ENOMEM;
    if (pattern && rt) {
        route_pattern(route, pattern);
        r = hp_router_add(rt, HP_ROUTER_POST, pattern, (void *)app_amqp_publish, NULL, why,
                          sizeof why);
    }
    hp_router_free(rt);
    hp_free(pattern);
    if (r == -ENOMEM)
        return bad(key, "amqp.publish_route", err, errlen, "%s", "out of memory");
    if (r < 0)
        return bad(key, "amqp.publish_route", err, errlen, "%s", why);
    return 0;
}

/* A number unlikely to repeat across runs, for message ids. */
static uint64_t make_nonce(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    x ^= (uint64_t)getpid() << 40;
    /* splitmix64's finaliser: nearby times give unrelated nonces. */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

int app_amqp_new(app_amqp_t **out, const hp_app_amqp_t *cfg, char *err, size_t errlen)
{
    const char *key = NULL;
    char why[320];
    if (app_amqp_check(cfg, &key, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s: %s", key, why);
        return -EINVAL;
    }
    app_amqp_t *a = hp_calloc(1, sizeof *a);
    const hp_amqp_config_t *c = &cfg->conn;
    /* One block: the URL and its decoded parts (or the connection's
     * strings), the route and its pattern, and the content type. */
    size_t url_len = cfg->url ? strlen(cfg->url) + 1 + HP_AMQP_URL_BUFSIZE(strlen(cfg->url)) : 0;
    size_t conn_len = cfg->url ? 0
                               : strlen(c->host) + strlen(c->vhost) + strlen(c->user) +
                                     strlen(c->password) + 4 +
                                     (c->addresses ? strlen(c->addresses) + 1 : 0);
    size_t route_len =
        cfg->publish_route ? 2 * strlen(cfg->publish_route) + sizeof ROUTE_TAIL + 1 : 0;
    size_t total = url_len + conn_len + route_len + strlen(cfg->content_type) + 1;
    if (!a || !(a->strs = hp_malloc(total))) {
        hp_free(a);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    a->cfg = *cfg;
    a->cfg.conn.name = NULL;
    char *p = a->strs;
    if (cfg->url) {
        /* The text, for a reload to compare with, then its parts. */
        size_t n = strlen(cfg->url) + 1;
        memcpy(p, cfg->url, n);
        a->cfg.url = p;
        int r = hp_amqp_url_parse(cfg->url, &a->cfg.conn, p + n, url_len - n, NULL);
        (void)r; /* checked above */
        p += url_len;
    } else {
        const char *src[] = {c->host, c->vhost, c->user, c->password};
        const char **dst[] = {&a->cfg.conn.host, &a->cfg.conn.vhost, &a->cfg.conn.user,
                              &a->cfg.conn.password};
        for (size_t i = 0; i < HP_ARRAY_LEN(src); i++) {
            size_t n = strlen(src[i]) + 1;
            memcpy(p, src[i], n);
            *dst[i] = p;
            p += n;
        }
        if (c->addresses) { /* an embedder's list of brokers */
            size_t n = strlen(c->addresses) + 1;
            memcpy(p, c->addresses, n);
            a->cfg.conn.addresses = p;
            p += n;
        }
    }
    if (cfg->publish_route) {
        /* The route as routed: without a trailing '/' (but "/" itself). */
        size_t n = strlen(cfg->publish_route);
        if (n > 1 && cfg->publish_route[n - 1] == '/')
            n--;
        memcpy(p, cfg->publish_route, n);
        p[n] = '\0';
        a->cfg.publish_route = p;
        a->pattern = p + n + 1;
        route_pattern(cfg->publish_route, a->pattern);
        p += route_len;
    }
    memcpy(p, cfg->content_type, strlen(cfg->content_type) + 1);
    a->cfg.content_type = p;
    a->nonce = make_nonce();
    *out = a;
    return 0;
}

void app_amqp_free(app_amqp_t *a)
{
    if (!a)
        return;
    hp_free(a->strs);
    hp_free(a);
}

/* ---- per worker ------------------------------------------------------------ */

/* How each publishing request ended, for /metrics. */
enum {
    OUT_ACCEPTED,    /* 202: acked */
    OUT_NACKED,      /* 502 */
    OUT_UNROUTABLE,  /* 502: returned */
    OUT_NO_EXCHANGE, /* 404: the broker closed the channel: no such exchange */
    OUT_UNCONFIRMED, /* 503: the channel or connection went before the answer */
    OUT_UNAVAILABLE, /* 503: not connected, blocked, window or output full */
    OUT_TIMEOUT,     /* 504 */
    OUT_TOO_LARGE,   /* 413 */
    OUT_BAD_REQUEST, /* 400: a name that cannot be published to */
    OUT_ABORTED,     /* the client went before the answer */
    OUT_CIRCUIT_OPEN, /* 503: the breaker refused it */
    OUT_COUNT
};

static const char *const outcome_names[OUT_COUNT] = {
    "accepted",  "nacked",    "unroutable", "no_exchange", "unconfirmed",  "unavailable",
    "timeout",   "too_large", "bad_request", "aborted",    "circuit_open",
};

/* The connection's counters (hp_amqp_stats_t), as /metrics sums them. */
enum {
    S_PUBLISHED, S_CONFIRMED, S_NACKED, S_UNCONFIRMED, S_RETURNED, S_DELIVERED,
    S_REDELIVERED, S_ACKED, S_RECOVERIES, S_BYTES_IN, S_BYTES_OUT, S_COUNT
};

/* What other workers read for /metrics: written by this worker only,
 * with relaxed stores, read with relaxed loads (hp_worker_stat). */
typedef struct amqp_shard {
    uint64_t conn[S_COUNT];      /* every connection of this worker, the current one
                                    as of its last refresh (at most a second old) */
    uint64_t outcomes[OUT_COUNT];
    uint64_t states[HP_AMQP_STATE_CLOSED + 1]; /* the links, by HP_AMQP_STATE_* */
    uint64_t breaker_state;      /* HP_AMQP_BREAKER_* */
    uint64_t breaker_opened;     /* times it opened */
} HP_ALIGNED_CACHELINE amqp_shard_t;

typedef struct amqp_worker amqp_worker_t;
typedef struct amqp_link amqp_link_t;

/* One publishing channel of a link. */
typedef struct amqp_chan {
    amqp_link_t *link;
    hp_amqp_channel_t *ch;       /* NULL while there is none */
    uint32_t unconfirmed;        /* slots published on it and not answered yet */
    bool ready;                  /* ch is open and in confirm mode */
} amqp_chan_t;

/* One connection to the broker and its channels. */
struct amqp_link {
    amqp_worker_t *aw;
    hp_amqp_conn_t *conn;        /* NULL while there is none */
    amqp_chan_t *chans;          /* borrowed: aw->nchans of aw->chans */
    uint8_t state;               /* HP_AMQP_STATE_* of conn (CLOSED without one) */
    bool ever_ready;             /* a connection was READY once: later ones are
                                    reconnections */
    /* Why its last channel or connection closed, for the settle pass. */
    uint16_t close_code, close_class, close_method;
    char close_text[256];
    hp_timer_t retry_timer;      /* reconnection (retry_cb) */
    uint64_t retry_ms;           /* the delay before the next attempt; 0: none yet */
    uint32_t failures;           /* attempts failed in a row, for the log */
    char tag[40];                /* "worker N", or "worker N connection I": for logs */
    char name[64];               /* the connection's name, shown by the broker */
};

/* One request waiting to publish, or one unconfirmed publish. */
typedef struct pub_slot {
    hp_ctx_t *ctx;               /* borrowed: the request waiting for it; NULL: none */
    amqp_worker_t *aw;
    amqp_chan_t *chan;           /* borrowed: the channel it was published on;
                                    NULL before its publish */
    hp_timer_t timer;            /* while ctx is set: the request's next try before
                                    its publish, its timeout after */
    uint64_t id;                 /* its message id's number (gen * nslots + index) */
    uint64_t seq;                /* its sequence number on the channel; 0: not
                                    published (free, or waiting to publish) */
    uint64_t t0_ns;              /* when it was published */
    uint64_t deadline_ms;        /* the request's arrival + amqp.timeout */
    uint32_t retry_ms;           /* the last delay before a try; 0: none yet */
    uint32_t next_free;
    uint16_t returned;           /* the reply code of a basic.return for it; 0: none */
    bool judged;                 /* the breaker has had its outcome */
    int failed;                  /* -errno: its channel went; answered by settle_cb */
} pub_slot_t;

struct amqp_worker {
    amqp_shard_t shard;
    const app_amqp_t *a;         /* borrowed: the app's settings */
    hp_worker_t *w;
    hp_loop_t *loop;
    /* The links: amqp.connections of them, each with amqp.channels. */
    amqp_link_t *links;          /* owned: nlinks */
    amqp_chan_t *chans;          /* owned: nlinks * nchans, link by link */
    uint32_t nlinks, nchans;     /* nchans: per link */
    uint32_t next_chan;          /* where link_pick starts: ties go round */
    hp_amqp_stats_t base;        /* the counters of this worker's closed connections */
    /* The shard's refresh (tick_cb) and the settle pass (settle_cb). */
    hp_timer_t tick_timer, settle_timer;
    /* Slots: every channel's confirm window, and the requests its publish
     * queue may hold (worker_slots). */
    pub_slot_t *slots;           /* owned */
    uint32_t nslots, free_head, in_use;
    hp_hist_t latency;           /* publish -> ack or nack, ns */
    hp_hist_t merged;            /* scratch: /metrics on this worker merges into it */
    /* Publish-to-deliver latency of this worker's connections' deliveries
     * (hp_amqp_deliver_latency, taken at each refresh), and its scratch. */
    hp_hist_t deliver, deliver_merged;
    hp_amqp_breaker_t breaker;   /* the route's; used when has_breaker */
    bool has_breaker;
};

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

/* The shard's refresh: a second keeps /metrics close enough without
 * waking an idle worker more often. */
#define TICK_MS 1000u

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

static inline void shard_set(uint64_t *counter, uint64_t v)
{
    __atomic_store_n(counter, v, __ATOMIC_RELAXED);
}

/* Moves the publish-to-deliver samples of connection c into the
 * worker's histogram, which only grows (other workers merge it). */
static void deliver_take(amqp_worker_t *aw, hp_amqp_conn_t *c)
{
    const hp_hist_t *h = hp_amqp_deliver_latency(c);
    if (!h || hp_hist_count(h) == 0)
        return;
    hp_hist_merge(&aw->deliver, h);
    hp_amqp_deliver_latency_reset(c);
}

/* Copies the breaker's state into the shard. */
static void shard_breaker(amqp_worker_t *aw)
{
    if (!aw->has_breaker)
        return;
    shard_set(&aw->shard.breaker_state, (uint64_t)hp_amqp_breaker_state(&aw->breaker));
    shard_set(&aw->shard.breaker_opened, hp_amqp_breaker_opened(&aw->breaker));
}

/* Adds connection c's counters to *sum (only those /metrics shows). */
static void stats_add(hp_amqp_stats_t *sum, hp_amqp_conn_t *c)
{
    hp_amqp_stats_t s;
    hp_amqp_stats(c, &s);
    sum->published += s.published;
    sum->confirmed += s.confirmed;
    sum->nacked += s.nacked;
    sum->unconfirmed_failed += s.unconfirmed_failed;
    sum->returned += s.returned;
    sum->delivered += s.delivered;
    sum->redelivered += s.redelivered;
    sum->acked += s.acked;
    sum->recoveries += s.recoveries;
    sum->bytes_in += s.bytes_in;
    sum->bytes_out += s.bytes_out;
}

/* Ready means ready to publish: connected, and a channel in confirm
 * mode. */
static uint8_t link_state(const amqp_link_t *l)
{
    if (l->state != HP_AMQP_STATE_READY)
        return l->state;
    for (uint32_t j = 0; j < l->aw->nchans; j++)
        if (l->chans[j].ready)
            return HP_AMQP_STATE_READY;
    return HP_AMQP_STATE_CONNECTING;
}

/* Copies this worker's connection counters and its links' states into
 * the shard. */
static void shard_refresh(amqp_worker_t *aw)
{
    hp_amqp_stats_t s = {0};
    uint64_t states[HP_ARRAY_LEN(aw->shard.states)] = {0};
    for (uint32_t i = 0; i < aw->nlinks; i++) {
        amqp_link_t *l = &aw->links[i];
        if (l->conn) {
            stats_add(&s, l->conn);
            deliver_take(aw, l->conn);
        }
        states[link_state(l)]++;
    }
    const hp_amqp_stats_t *b = &aw->base;
    uint64_t v[S_COUNT] = {
        [S_PUBLISHED] = b->published + s.published,
        [S_CONFIRMED] = b->confirmed + s.confirmed,
        [S_NACKED] = b->nacked + s.nacked,
        [S_UNCONFIRMED] = b->unconfirmed_failed + s.unconfirmed_failed,
        [S_RETURNED] = b->returned + s.returned,
        [S_DELIVERED] = b->delivered + s.delivered,
        [S_REDELIVERED] = b->redelivered + s.redelivered,
        [S_ACKED] = b->acked + s.acked,
        [S_RECOVERIES] = b->recoveries + s.recoveries,
        [S_BYTES_IN] = b->bytes_in + s.bytes_in,
        [S_BYTES_OUT] = b->bytes_out + s.bytes_out,
    };
    for (int i = 0; i < S_COUNT; i++)
        shard_set(&aw->shard.conn[i], v[i]);
    for (size_t k = 0; k < HP_ARRAY_LEN(states); k++)
        shard_set(&aw->shard.states[k], states[k]);
    shard_breaker(aw);
}

/* Adds a closing connection's counters to the base. */
static void base_add(amqp_worker_t *aw, hp_amqp_conn_t *c)
{
    deliver_take(aw, c);
    stats_add(&aw->base, c);
}

static void tick_cb(hp_timer_t *t)
{
    amqp_worker_t *aw = HP_CONTAINER_OF(t, amqp_worker_t, tick_timer);
    shard_refresh(aw);
    for (uint32_t i = 0; i < aw->nlinks; i++) {
        if (aw->links[i].conn) {
            hp_loop_timer_arm(aw->loop, &aw->tick_timer, TICK_MS);
            break;
        }
    }
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
    shard_breaker(aw);
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
    shard_refresh(c->link->aw);
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
        base_add(aw, conn);
        l->conn = NULL;
        for (uint32_t j = 0; j < aw->nchans; j++)
            l->chans[j] = (amqp_chan_t){.link = l, .unconfirmed = l->chans[j].unconfirmed};
        l->state = HP_AMQP_STATE_CLOSED;
        retry_later(l);
        break;
    default:
        break;
    }
    shard_refresh(aw);
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
    shard_refresh(aw);
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
        shard_breaker(aw);
        return publish_refuse(aw, s, 503, OUT_CIRCUIT_OPEN,
                              "circuit open: a probe message is testing the broker; "
                              "publishing resumes once it is confirmed");
    }
    shard_breaker(aw);
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
    hp_timer_init(&aw->tick_timer, tick_cb);
    hp_timer_init(&aw->settle_timer, settle_cb);
    aw->nlinks = a->cfg.connections;
    aw->nchans = a->cfg.channels;
    aw->links = hp_calloc(aw->nlinks, sizeof *aw->links);
    aw->chans = hp_calloc((size_t)aw->nlinks * aw->nchans, sizeof *aw->chans);
    aw->nslots = worker_slots(&a->cfg);
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

/* ---- /metrics --------------------------------------------------------------- */

static const char *const state_names[] = {
    [HP_AMQP_STATE_CONNECTING] = "connecting", [HP_AMQP_STATE_READY] = "ready",
    [HP_AMQP_STATE_BLOCKED] = "blocked",       [HP_AMQP_STATE_RECOVERING] = "recovering",
    [HP_AMQP_STATE_CLOSED] = "closed",
};

static const char *const breaker_names[] = {
    [HP_AMQP_BREAKER_CLOSED] = "closed",
    [HP_AMQP_BREAKER_OPEN] = "open",
    [HP_AMQP_BREAKER_HALF_OPEN] = "half_open",
};

/* A family with one sample per name: family{key="names[k]"} values[k]. */
static void prom_by_label(hp_prom_t *p, const char *family, const char *type, const char *help,
                          const char *key, const char *const *names, const uint64_t *values,
                          size_t n)
{
    hp_prom_family(p, family, type, help);
    for (size_t k = 0; k < n; k++) {
        char label[48];
        snprintf(label, sizeof label, "%s=\"%s\"", key, names[k]);
        hp_prom_sample(p, family, label, values[k]);
    }
}

void app_amqp_metrics(hp_prom_t *p, hp_worker_t *me, hp_worker_t *ws, uint32_t nw)
{
    amqp_worker_t *mine = hp_worker_proto_data(me, &app_amqp_proto);
    if (!mine)
        return;
    shard_refresh(mine);
    static const struct {
        int idx;
        const char *name, *help;
    } counters[] = {
        {S_PUBLISHED, "hotpath_amqp_published_total", "Messages published to the broker."},
        {S_CONFIRMED, "hotpath_amqp_confirmed_total",
         "Publisher confirms received: messages the broker acked."},
        {S_NACKED, "hotpath_amqp_nacked_total", "Messages the broker nacked."},
        {S_UNCONFIRMED, "hotpath_amqp_unconfirmed_total",
         "Messages whose channel or connection closed before the broker answered."},
        {S_RETURNED, "hotpath_amqp_returned_total",
         "Mandatory messages the broker returned as unroutable."},
        {S_DELIVERED, "hotpath_amqp_delivered_total", "Messages delivered to consumers."},
        {S_REDELIVERED, "hotpath_amqp_redelivered_total",
         "Deliveries the broker had delivered before."},
        {S_ACKED, "hotpath_amqp_acked_total", "Deliveries acknowledged to the broker."},
        {S_RECOVERIES, "hotpath_amqp_recoveries_total",
         "Connections to the broker re-established after a loss."},
        {S_BYTES_IN, "hotpath_amqp_bytes_received_total", "Bytes read from the broker."},
        {S_BYTES_OUT, "hotpath_amqp_bytes_sent_total", "Bytes written to the broker."},
    };
    for (size_t k = 0; k < HP_ARRAY_LEN(counters); k++) {
        uint64_t v = 0;
        for (uint32_t i = 0; i < nw; i++) {
            amqp_worker_t *aw = hp_worker_proto_data(&ws[i], &app_amqp_proto);
            if (aw)
                v += hp_worker_stat(&aw->shard.conn[counters[k].idx]);
        }
        hp_prom_family(p, counters[k].name, "counter", counters[k].help);
        hp_prom_sample(p, counters[k].name, NULL, v);
    }
    uint64_t states[HP_ARRAY_LEN(state_names)] = {0};
    static_assert(HP_ARRAY_LEN(state_names) == HP_AMQP_STATE_CLOSED + 1, "a name per state");
    uint64_t outcomes[OUT_COUNT] = {0};
    uint64_t breakers[HP_ARRAY_LEN(breaker_names)] = {0}, opened = 0;
    hp_hist_reset(&mine->merged);
    hp_hist_reset(&mine->deliver_merged);
    for (uint32_t i = 0; i < nw; i++) {
        amqp_worker_t *aw = hp_worker_proto_data(&ws[i], &app_amqp_proto);
        if (!aw)
            continue;
        for (size_t k = 0; k < HP_ARRAY_LEN(aw->shard.states); k++)
            states[k] += hp_worker_stat(&aw->shard.states[k]);
        for (int k = 0; k < OUT_COUNT; k++)
            outcomes[k] += hp_worker_stat(&aw->shard.outcomes[k]);
        hp_hist_merge(&mine->merged, &aw->latency);
        hp_hist_merge(&mine->deliver_merged, &aw->deliver);
        uint64_t bs = hp_worker_stat(&aw->shard.breaker_state);
        if (bs < HP_ARRAY_LEN(breakers))
            breakers[bs]++;
        opened += hp_worker_stat(&aw->shard.breaker_opened);
    }
    prom_by_label(p, "hotpath_amqp_connections", "gauge",
                  "The workers' broker connections, by state.", "state", state_names, states,
                  HP_ARRAY_LEN(states));
    prom_by_label(p, "hotpath_amqp_publish_requests_total", "counter",
                  "Requests to the publishing route, by how they ended.", "outcome",
                  outcome_names, outcomes, OUT_COUNT);
    hp_prom_family(p, "hotpath_amqp_confirm_duration_seconds", "histogram",
                   "Time from publishing a message to the broker's ack or nack.");
    hp_prom_histogram(p, "hotpath_amqp_confirm_duration_seconds", NULL, &mine->merged,
                      hp_prom_latency_bounds, hp_prom_latency_nbounds);
    /* Workers without a breaker count as closed: they refuse nothing. */
    prom_by_label(p, "hotpath_amqp_breaker_state", "gauge",
                  "The workers' publishing circuit breakers, by state.", "state", breaker_names,
                  breakers, HP_ARRAY_LEN(breakers));
    hp_prom_family(p, "hotpath_amqp_breaker_opened_total", "counter",
                   "Times a worker's circuit breaker opened.");
    hp_prom_sample(p, "hotpath_amqp_breaker_opened_total", NULL, opened);
    /* Only with samples: the server consumes nothing itself, so only a
     * connection that an embedder consumes on has any. */
    if (hp_hist_count(&mine->deliver_merged)) {
        hp_prom_family(p, "hotpath_amqp_publish_to_deliver_seconds", "histogram",
                       "Time from a message's timestamp_in_ms header to its delivery.");
        hp_prom_histogram(p, "hotpath_amqp_publish_to_deliver_seconds", NULL,
                          &mine->deliver_merged, hp_prom_latency_bounds,
                          hp_prom_latency_nbounds);
    }
}
