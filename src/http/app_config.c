/*
 * app_config.c - the configuration file (config.h) seen from the app: its
 * defaults, taken from the modules that own them, and the mapping of its
 * keys onto an hp_app_config_t.
 *
 * config parses and validates but owns no protocol's defaults, so the
 * link between a key of the file and the setting it drives lives here,
 * in both directions, side by side: hp_app_config_defaults reads each
 * default from its owner's initialiser (HP_APP_CONFIG_DEFAULT,
 * HP_HTTP_CONFIG_DEFAULT, HP_WORKER_CONFIG_DEFAULT) and
 * hp_app_config_apply writes each value back into the same field. A key
 * added to the file is one line in each.
 *
 * hp_app_config_check is the one list of what the app would refuse in a
 * configuration that config's schema accepts (the root opens, the address
 * parses ...). The binary runs it at start-up, for --check-config and on
 * SIGHUP alike, so the three agree and each refusal is reported where the
 * value was written; hp_app_new and hp_app_reload keep their own checks
 * for embedders, which only a file changed in between can reach here.
 */
#include "hotpath/app.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "app_amqp_int.h"
#include "hotpath/accesslog.h"
#include "static_int.h"
#include "hotpath/listener.h"

/* The file's own defaults: settings of the hotpath binary that an
 * embedder's hp_app_config_t leaves unset (no root, no access log). */
#define FILE_ROOT "www"
#define FILE_ACCESS_LOG "access.log"

void hp_app_config_defaults(hp_config_t *out)
{
    /* The array needs static storage; the address is the app's. */
    static const char *const listen[] = {HP_APP_LISTEN_DEFAULT};
    const hp_app_config_t a = HP_APP_CONFIG_DEFAULT;
    const hp_http_config_t *h = &a.http;
    const hp_worker_config_t *w = &a.engine;
    const hp_app_amqp_t *q = &a.amqp;
    *out = (hp_config_t){
        .listen = listen,
        .nlisten = 1,
        .workers = a.workers,
        .root = FILE_ROOT,
        .limits = {h->limits.max_request_line, h->limits.max_header_bytes, h->limits.max_fields,
                   h->limits.max_body},
        .timeouts = {h->header_timeout_ms, h->body_timeout_ms, h->keepalive_timeout_ms,
                     w->write_timeout_ms, w->drain_timeout_ms},
        .keepalive = {.enabled = h->keepalive, .max_requests = h->max_requests},
        .tcp = {.nodelay = w->nodelay, .reuseport = w->reuseport, .backlog = (uint32_t)a.backlog},
        .buffers = {w->rbuf_size, w->wbuf_size, w->max_chunks},
        .locations = NULL,
        .nlocations = 0,
        .endpoints = {true, true, true, true},
        /* The HTTP layer says "off" with level 0, the file with a flag. */
        .compression = {.enabled = h->compress_level > 0,
                        .level = h->compress_level > 0 ? (uint32_t)h->compress_level : 1,
                        .min_size = h->compress_min},
        .cache = {.enabled = h->cache.enabled, .max_entries = h->cache.max_entries,
                  .max_bytes = h->cache.max_bytes, .ttl_ms = h->cache.ttl_ms},
        .access_log = {.enabled = false, .path = FILE_ACCESS_LOG},
        .metrics = {.enabled = true, .path = HP_APP_METRICS_PATH},
        /* AMQP is off until a URL is given; the heartbeat is the client's
         * (HP_AMQP_CONFIG_DEFAULT), the rest the app's. */
        .amqp = {.url = NULL,
                 .heartbeat_ms = (uint64_t)q->conn.heartbeat_s * 1000,
                 .blocked_timeout_ms = q->conn.blocked_timeout_ms,
                 .read_coalesce_ms = q->conn.read_coalesce_ms,
                 .confirm_window = q->confirm_window,
                 .connections = q->connections,
                 .channels = q->channels,
                 .publish_queue = q->conn.publish_queue_bytes,
                 .publish_route = q->publish_route,
                 .timeout_ms = q->timeout_ms,
                 .content_type = q->content_type,
                 .breaker_failures = q->breaker.failures,
                 .breaker_window_ms = q->breaker.window_ms,
                 .breaker_open_ms = q->breaker.open_ms,
                 .breaker_open_max_ms = q->breaker.open_max_ms,
                 .stamp = q->stamp},
        .source = NULL,
        .defaults = NULL,
        .mem = NULL,
    };
}

void hp_app_config_apply(const hp_config_t *c, hp_app_config_t *o, uint32_t *builtins)
{
    o->listen = c->listen[0];
    o->workers = c->workers;
    o->root = c->root;
    o->backlog = (int)c->tcp.backlog;
    o->http.limits.max_request_line = c->limits.max_request_line;
    o->http.limits.max_header_bytes = c->limits.max_header_bytes;
    o->http.limits.max_fields = c->limits.max_headers;
    o->http.limits.max_body = c->limits.max_body;
    o->http.header_timeout_ms = c->timeouts.header_ms;
    o->http.body_timeout_ms = c->timeouts.body_ms;
    o->http.keepalive_timeout_ms = c->timeouts.keepalive_ms;
    o->engine.write_timeout_ms = c->timeouts.write_ms;
    o->engine.drain_timeout_ms = c->timeouts.drain_ms;
    o->engine.rbuf_size = c->buffers.read_chunk;
    o->engine.wbuf_size = c->buffers.write_chunk;
    o->engine.max_chunks = c->buffers.max_chunks;
    o->engine.nodelay = c->tcp.nodelay;
    o->engine.reuseport = c->tcp.reuseport;
    o->http.keepalive = c->keepalive.enabled;
    o->http.max_requests = c->keepalive.max_requests;
    o->http.compress_level = c->compression.enabled ? (int)c->compression.level : 0;
    o->http.compress_min = (uint32_t)c->compression.min_size;
    o->http.cache.enabled = c->cache.enabled;
    o->http.cache.max_entries = c->cache.max_entries;
    o->http.cache.max_bytes = c->cache.max_bytes;
    o->http.cache.ttl_ms = c->cache.ttl_ms;
    o->locations = c->locations;
    o->nlocations = c->nlocations;
    o->access_log = c->access_log.enabled ? c->access_log.path : NULL;
    o->amqp.enabled = c->amqp.url != NULL;
    o->amqp.url = c->amqp.url;
    o->amqp.conn.heartbeat_s = (uint16_t)(c->amqp.heartbeat_ms / 1000);
    o->amqp.conn.blocked_timeout_ms = c->amqp.blocked_timeout_ms;
    o->amqp.conn.read_coalesce_ms = (uint32_t)c->amqp.read_coalesce_ms;
    o->amqp.confirm_window = c->amqp.confirm_window;
    o->amqp.connections = c->amqp.connections;
    o->amqp.channels = c->amqp.channels;
    o->amqp.conn.publish_queue_bytes = c->amqp.publish_queue;
    o->amqp.publish_route = c->amqp.publish_route;
    o->amqp.timeout_ms = c->amqp.timeout_ms;
    o->amqp.content_type = c->amqp.content_type;
    o->amqp.breaker.failures = c->amqp.breaker_failures;
    o->amqp.breaker.window_ms = c->amqp.breaker_window_ms;
    o->amqp.breaker.open_ms = c->amqp.breaker_open_ms;
    o->amqp.breaker.open_max_ms = c->amqp.breaker_open_max_ms;
    o->amqp.stamp = c->amqp.stamp;
    *builtins = (c->endpoints.plaintext ? HP_APP_BUILTIN_PLAINTEXT : 0) |
                (c->endpoints.json ? HP_APP_BUILTIN_JSON : 0) |
                (c->endpoints.health ? HP_APP_BUILTIN_HEALTH : 0) |
                (c->endpoints.echo ? HP_APP_BUILTIN_ECHO : 0) |
                (c->metrics.enabled ? HP_APP_BUILTIN_METRICS : 0);
}

/* Opens a root as the app will (hp_static_open_root) and closes it. */
static int check_root(const hp_config_t *c, const char *key, const char *path, char *err,
                      size_t errlen)
{
    int fd = hp_static_open_root(path);
    if (fd < 0)
        return hp_config_fail(c, key, err, errlen, "cannot open '%s': %s", path, strerror(-fd));
    close(fd);
    return 0;
}

int hp_app_config_check(const hp_config_t *c, char *err, size_t errlen)
{
    if (errlen)
        err[0] = '\0';
    /* The address syntax is the listener's alone: config took the text. */
    for (size_t i = 0; i < c->nlisten; i++) {
        hp_listener_addr_t addr;
        char key[32];
        snprintf(key, sizeof key, "listen[%zu]", i);
        if (hp_listener_addr_parse(c->listen[i], &addr) < 0)
            return hp_config_fail(c, key, err, errlen, "expected an address such as "
                                  "127.0.0.1:8080, [::1]:8080 or :8080, got '%s'", c->listen[i]);
    }
    if (c->nlisten > 1)
        return hp_config_fail(c, "listen", err, errlen, "one address per process for now, got %zu",
                              c->nlisten);
    if (check_root(c, "root", c->root, err, errlen) < 0)
        return -EINVAL;
    for (size_t i = 0; i < c->nlocations; i++) {
        char key[64];
        snprintf(key, sizeof key, "locations[%zu].root", i);
        if (c->locations[i].root && check_root(c, key, c->locations[i].root, err, errlen) < 0)
            return -EINVAL;
    }
    /* Opened as start-up opens it, so a missing file is created, as
     * nginx -t does: whether it can be is the question asked. */
    if (c->access_log.enabled) {
        hp_accesslog_file_t *f;
        int r = hp_accesslog_file_open(&f, c->access_log.path);
        if (r < 0)
            return hp_config_fail(c, "access_log.path", err, errlen, "cannot open '%s': %s",
                                  c->access_log.path, strerror(-r));
        hp_accesslog_file_close(f);
    }
    uint32_t builtins;
    hp_app_config_t scratch = HP_APP_CONFIG_DEFAULT;
    hp_app_config_apply(c, &scratch, &builtins);
    /* The AMQP URL's syntax is the client's, the route's the router's. */
    const char *key;
    char why[320];
    if (app_amqp_check(&scratch.amqp, &key, why, sizeof why) < 0)
        return hp_config_fail(c, key, err, errlen, "%s", why);
    /* The built-in routes on a scratch app (it opens nothing and connects
     * nowhere; the publishing route is its first): only the metrics path
     * can collide with the others or be a malformed pattern. */
    scratch.listen = HP_APP_LISTEN_DEFAULT;
    scratch.root = NULL;
    scratch.locations = NULL;
    scratch.nlocations = 0;
    scratch.access_log = NULL;
    hp_app_t *app = hp_app_new(&scratch, why, sizeof why);
    if (!app) {
        snprintf(err, errlen, "%s", why);
        return -ENOMEM; /* nothing of the file is left to fail */
    }
    int r = hp_app_builtin_routes(app, builtins, c->metrics.path, why, sizeof why);
    hp_app_free(app);
    if (r == -ENOMEM) {
        snprintf(err, errlen, "out of memory");
        return r;
    }
    if (r < 0)
        return hp_config_fail(c, "metrics.path", err, errlen, "%s", why);
    return 0;
}
