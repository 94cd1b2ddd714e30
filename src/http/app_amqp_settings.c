/*
 * app_amqp_settings.c - the app's amqp: settings: app_amqp_check, which
 * validates them as the YAML configuration (or an embedder) gives them,
 * and app_amqp_new, which keeps a checked copy for the workers.
 *
 * Central structure: app_amqp_t (app_amqp_worker_int.h), the settings in
 * force with every string they name (the URL and its decoded parts, the
 * route and its router pattern, the content type) copied into one block,
 * strs, and the nonce that starts every message id of this run.
 *
 * Invariant: an app_amqp_t exists only for settings app_amqp_check
 * accepts, so that nothing later (worker_init, the route, a reload's
 * comparison) checks them again: the URL names a host and credentials
 * hp_amqp_connect takes, the slot table a worker allocates stays within
 * SLOTS_MAX, and the route is one the router takes.
 */
#include "app_amqp_worker_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hotpath/alloc.h"
#include "hotpath/router.h"

#define ROUTE_TAIL "/{" P_EXCHANGE "}/{" P_KEY ":*}"

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
uint32_t app_amqp_worker_slots(const hp_app_amqp_t *cfg)
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
