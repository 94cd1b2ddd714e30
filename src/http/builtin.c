/*
 * builtin.c - the hotpath binary's own endpoints, as ordinary routes:
 * /plaintext, /json and /health (TechEmpower-style), /metrics (Prometheus
 * text summed over every worker's shard, the AMQP connections' included)
 * and POST /echo.
 *
 * Each is a handler like any an embedder writes; the router resolves the
 * fixed paths with one hash lookup before any tree walk.
 */
#include <stdio.h>
#include <string.h>

#include "app_amqp_int.h"
#include "hotpath/alloc.h"
#include "hotpath/app.h"
#include "net/engine_int.h"
#include "hotpath/http_method.h"
#include "metrics/prom_int.h"
#include "net/worker_int.h"
#include "server_int.h"

static const char PLAINTEXT[] = "Hello, World!";

static int plaintext(hp_ctx_t *ctx, void *udata)
{
    (void)udata;
    hp_ctx_send(ctx, "text/plain", PLAINTEXT, sizeof PLAINTEXT - 1);
    return HP_DONE;
}

/* Appends `s` as a JSON string (quotes, escapes per RFC 8259 §7). `out`
 * needs room for 6 * n + 2 bytes. Returns the bytes written. */
static size_t json_string(char *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char *p = out;
    *p++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            *p++ = '\\';
            *p++ = (char)ch;
        } else if (ch < 0x20) {
            memcpy(p, "\\u00", 4);
            p[4] = hex[ch >> 4];
            p[5] = hex[ch & 15];
            p += 6;
        } else {
            *p++ = (char)ch;
        }
    }
    *p++ = '"';
    return (size_t)(p - out);
}

static int json(hp_ctx_t *ctx, void *udata)
{
    (void)udata;
    /* A fresh object serialized per request, as the TechEmpower rules
     * ask, rather than a canned body. */
    static const char key[] = "message";
    char body[6 * (sizeof key + sizeof PLAINTEXT) + 8];
    char *p = body;
    *p++ = '{';
    p += json_string(p, key, sizeof key - 1);
    *p++ = ':';
    p += json_string(p, PLAINTEXT, sizeof PLAINTEXT - 1);
    *p++ = '}';
    hp_ctx_send(ctx, "application/json", body, (size_t)(p - body));
    return HP_DONE;
}

static int health(hp_ctx_t *ctx, void *udata)
{
    (void)udata;
    static const char ok[] = "{\"status\":\"ok\"}";
    hp_ctx_send(ctx, "application/json", ok, sizeof ok - 1);
    return HP_DONE;
}

static int echo(hp_ctx_t *ctx, void *udata)
{
    (void)udata;
    size_t len;
    const char *body = hp_ctx_body(ctx, &len);
    if (hp_ctx_send(ctx, "application/octet-stream", body, len) < 0)
        hp_ctx_send_status(ctx, 503);
    return HP_DONE;
}

/* Responses by route, method and status class, and each route's latency
 * histogram, summed over the workers (their shards are merged into this
 * worker's scratch histogram, read with relaxed loads). */
static void route_metrics(hp_prom_t *p, const hp_proto_t *proto, hp_http_worker_t *me,
                          hp_worker_t *ws, uint32_t nw)
{
    const hp_http_routes_t *routes = me->cfg->routes;
    if (!routes || !me->nroutes)
        return;
    hp_prom_family(p, "hotpath_route_responses_total", "counter",
                   "Responses by route, method and status class.");
    for (uint32_t r = 0; r < me->nroutes; r++) {
        char route[256];
        if (hp_prom_label_value(routes->patterns[r], strlen(routes->patterns[r]), route,
                                sizeof route) < 0)
            continue;
        for (int m = 0; m < HP_METHOD_ROUTED; m++) {
            for (int k = 1; k <= 5; k++) {
                uint64_t v = 0;
                for (uint32_t i = 0; i < nw; i++) {
                    hp_http_worker_t *hw = hp_worker_proto_data(&ws[i], proto);
                    v += hp_worker_stat(&hw->routes[r].responses[m][k]);
                }
                if (!v)
                    continue; /* only series that happened: the rest is zero */
                /* Row 0 holds every method without a row of its own. */
                const char *method = m ? hp_method_table[m].name : "OTHER";
                char labels[400];
                snprintf(labels, sizeof labels, "route=\"%s\",method=\"%s\",class=\"%dxx\"",
                         route, method, k);
                hp_prom_sample(p, "hotpath_route_responses_total", labels, v);
            }
        }
    }
    hp_prom_family(p, "hotpath_route_request_duration_seconds", "histogram",
                   "Time from the dispatching loop iteration to the complete response, by route.");
    for (uint32_t r = 0; r < me->nroutes; r++) {
        char route[256], labels[280];
        if (hp_prom_label_value(routes->patterns[r], strlen(routes->patterns[r]), route,
                                sizeof route) < 0)
            continue;
        hp_hist_reset(&me->merged);
        for (uint32_t i = 0; i < nw; i++) {
            hp_http_worker_t *hw = hp_worker_proto_data(&ws[i], proto);
            hp_hist_merge(&me->merged, &hw->routes[r].latency);
        }
        snprintf(labels, sizeof labels, "route=\"%s\"", route);
        hp_prom_histogram(p, "hotpath_route_request_duration_seconds", labels, &me->merged,
                          hp_prom_latency_bounds, hp_prom_latency_nbounds);
    }
}

/* What /metrics sums over the workers. */
typedef struct {
    uint64_t req, upgrades, resp[6], rej[HP_HTTP_REJ_COUNT];
    uint64_t acc, closed, chunks, bin, bout, tmo, stale, oom;
    uint64_t cache[5]; /* hits, misses, evictions, entries, bytes */
    uint64_t files[4]; /* hits, misses, evictions, entries */
} totals_t;

/* Adds up the workers' shards. Each is written only by its worker and
 * read here with relaxed loads. */
static void sum_workers(totals_t *t, const hp_proto_t *proto, hp_worker_t *ws, uint32_t nw)
{
    memset(t, 0, sizeof *t);
    for (uint32_t i = 0; i < nw; i++) {
        hp_worker_t *w = &ws[i];
        const hp_http_stats_t *st = &((hp_http_worker_t *)hp_worker_proto_data(w, proto))->stats;
        const uint64_t *cs[5] = {&st->cache_hits, &st->cache_misses, &st->cache_evictions,
                                 &st->cache_entries, &st->cache_bytes};
        const uint64_t *fs[4] = {&st->file_hits, &st->file_misses, &st->file_evictions,
                                 &st->file_entries};
        for (int k = 0; k < 5; k++)
            t->cache[k] += hp_worker_stat(cs[k]);
        for (int k = 0; k < 4; k++)
            t->files[k] += hp_worker_stat(fs[k]);
        t->req += hp_worker_stat(&st->requests);
        t->upgrades += hp_worker_stat(&st->upgrades);
        for (int k = 1; k <= 5; k++)
            t->resp[k] += hp_worker_stat(&st->responses[k]);
        for (int k = 0; k < HP_HTTP_REJ_COUNT; k++)
            t->rej[k] += hp_worker_stat(&st->rejected[k]);
        t->acc += hp_worker_stat(&w->stats.accepted);
        t->closed += hp_worker_stat(&w->stats.closed);
        t->bin += hp_worker_stat(&w->stats.bytes_in);
        t->bout += hp_worker_stat(&w->stats.bytes_out);
        t->tmo += hp_worker_stat(&w->stats.timeouts);
        t->stale += hp_worker_stat(&w->stats.stale_msgs);
        t->oom += hp_worker_stat(&w->stats.oom_closed);
        /* Pool counters are the owner's plain fields: approximate when
         * read from another worker, exact for our own. */
        t->chunks += hp_pool_in_use(&w->rpool) + hp_pool_in_use(&w->wpool);
    }
}

static void one(hp_prom_t *p, const char *name, const char *type, const char *help,
                uint64_t value)
{
    hp_prom_family(p, name, type, help);
    hp_prom_sample(p, name, NULL, value);
}

/* Requests, responses and rejections by class and reason. */
static void http_metrics(hp_prom_t *p, const totals_t *t)
{
    static const char *const reasons[HP_HTTP_REJ_COUNT] = {
        "bad_request", "timeout", "body_too_large", "uri_too_long",
        "expectation_failed", "headers_too_large", "not_implemented", "version_not_supported",
        "no_memory"};
    static const char *const classes[6] = {"", "class=\"1xx\"", "class=\"2xx\"",
                                           "class=\"3xx\"", "class=\"4xx\"", "class=\"5xx\""};
    one(p, "hotpath_requests_total", "counter", "Requests parsed.", t->req);
    one(p, "hotpath_upgrades_total", "counter",
        "Connections handed from HTTP to another protocol (101 Switching Protocols).",
        t->upgrades);
    hp_prom_family(p, "hotpath_responses_total", "counter", "Responses by status class.");
    for (int k = 1; k <= 5; k++)
        hp_prom_sample(p, "hotpath_responses_total", classes[k], t->resp[k]);
    hp_prom_family(p, "hotpath_rejected_total", "counter", "Requests rejected, by reason.");
    for (int k = 0; k < HP_HTTP_REJ_COUNT; k++) {
        char label[48];
        snprintf(label, sizeof label, "reason=\"%s\"", reasons[k]);
        hp_prom_sample(p, "hotpath_rejected_total", label, t->rej[k]);
    }
}

/* Connections, bytes, buffers and heap: the engine's side. */
static void engine_metrics(hp_prom_t *p, const totals_t *t, hp_worker_t *ws, uint32_t nw)
{
    one(p, "hotpath_connections_open", "gauge", "Connections open now.", t->acc - t->closed);
    one(p, "hotpath_connections_accepted_total", "counter", "Connections accepted.", t->acc);
    one(p, "hotpath_connections_closed_total", "counter", "Connections closed.", t->closed);
    hp_prom_family(p, "hotpath_worker_connections_accepted_total", "counter",
                   "Connections accepted, by worker.");
    for (uint32_t i = 0; i < nw; i++) {
        char label[32];
        snprintf(label, sizeof label, "worker=\"%u\"", i);
        hp_prom_sample(p, "hotpath_worker_connections_accepted_total", label,
                       hp_worker_stat(&ws[i].stats.accepted));
    }
    one(p, "hotpath_heap_allocations_total", "counter",
        "Heap allocations by the process (steady-state requests make none).", hp_alloc_count());
    one(p, "hotpath_pool_chunks_in_use", "gauge", "Buffer chunks held by connections.",
        t->chunks);
    one(p, "hotpath_bytes_received_total", "counter", "Bytes read from clients.", t->bin);
    one(p, "hotpath_bytes_sent_total", "counter", "Bytes written to clients.", t->bout);
    one(p, "hotpath_connection_timeouts_total", "counter", "Connections closed by a timeout.",
        t->tmo);
    one(p, "hotpath_oom_closed_total", "counter",
        "Connections closed (or answered 503) for want of a buffer or memory.", t->oom);
    one(p, "hotpath_stale_messages_total", "counter",
        "Messages for connections that closed before delivery (dropped).", t->stale);
}

static void cache_metrics(hp_prom_t *p, const totals_t *t)
{
    one(p, "hotpath_cache_hits_total", "counter", "Responses served from the response cache.",
        t->cache[0]);
    one(p, "hotpath_cache_misses_total", "counter",
        "Cacheable requests the response cache could not answer.", t->cache[1]);
    one(p, "hotpath_cache_evictions_total", "counter",
        "Response cache entries evicted to respect its bounds.", t->cache[2]);
    one(p, "hotpath_cache_entries", "gauge", "Responses in the response cache.", t->cache[3]);
    one(p, "hotpath_cache_bytes", "gauge", "Bytes held by the response cache.", t->cache[4]);
    one(p, "hotpath_open_file_cache_hits_total", "counter",
        "Static requests served from an open descriptor.", t->files[0]);
    one(p, "hotpath_open_file_cache_misses_total", "counter",
        "Static requests that had to open the file.", t->files[1]);
    one(p, "hotpath_open_file_cache_evictions_total", "counter",
        "Open files closed to respect the cache's bound.", t->files[2]);
    one(p, "hotpath_open_file_cache_entries", "gauge", "Files held open.", t->files[3]);
}

/* Prometheus text, summed over every worker's shard. */
static int metrics(hp_ctx_t *ctx, void *udata)
{
    (void)udata;
    const hp_proto_t *proto = ctx->conn->proto;
    hp_http_worker_t *me = http_worker(ctx->conn);
    hp_engine_t *e = me->cfg->engine;
    hp_worker_t *ws = e ? e->workers : hp_ctx_worker(ctx);
    uint32_t nw = e ? e->nworkers : 1;
    totals_t t;
    sum_workers(&t, proto, ws, nw);
    hp_prom_t p;
    hp_prom_init(&p, me->scratch, me->scratch_len);
    http_metrics(&p, &t);
    engine_metrics(&p, &t, ws, nw);
    cache_metrics(&p, &t);
    route_metrics(&p, proto, me, ws, nw);
    app_amqp_metrics(&p, hp_ctx_worker(ctx), ws, nw);
    /* A cut exposition would mislead a scraper: refuse it instead. */
    if (p.overflow || hp_ctx_send(ctx, HP_PROM_CONTENT_TYPE, p.buf, p.len) < 0)
        hp_ctx_send_status(ctx, 503);
    return HP_DONE;
}

int hp_app_builtin_routes(hp_app_t *app, uint32_t which, const char *metrics_path, char *err,
                          size_t errlen)
{
    const struct {
        uint32_t bit, methods;
        const char *pattern;
        hp_handler_fn fn;
    } routes[] = {
        {HP_APP_BUILTIN_PLAINTEXT, HP_ROUTER_GET, "/plaintext", plaintext},
        {HP_APP_BUILTIN_JSON, HP_ROUTER_GET, "/json", json},
        {HP_APP_BUILTIN_HEALTH, HP_ROUTER_GET, "/health", health},
        {HP_APP_BUILTIN_METRICS, HP_ROUTER_GET, metrics_path ? metrics_path : HP_APP_METRICS_PATH, metrics},
        {HP_APP_BUILTIN_ECHO, HP_ROUTER_POST, "/echo", echo},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (!(which & routes[i].bit))
            continue;
        int r = hp_app_route(app, routes[i].methods, routes[i].pattern, routes[i].fn, NULL, err,
                             errlen);
        if (r < 0)
            return r;
    }
    return 0;
}
