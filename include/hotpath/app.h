/*
 * app.h - embedding hotpath: an HTTP server with your own handlers.
 *
 *     hp_app_config_t cfg = HP_APP_CONFIG_DEFAULT;
 *     cfg.listen = "127.0.0.1:8080";
 *     hp_app_t *app = hp_app_new(&cfg, err, sizeof err);
 *     hp_app_route(app, HP_ROUTER_GET, "/users/{id:int}", get_user, NULL, err, sizeof err);
 *     hp_app_run(app);              // until hp_app_stop() or SIGINT/SIGTERM
 *     hp_app_free(app);
 *
 * Routes, middleware and configuration are fixed once hp_app_run starts;
 * every worker thread then shares them read-only. A handler runs on the
 * worker that owns the connection, gets an hp_ctx_t (ctx.h) for the
 * request and its response, and either answers before returning or
 * returns HP_PENDING and answers later on the same worker.
 */
#ifndef HOTPATH_APP_H
#define HOTPATH_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hotpath/amqp.h"
#include "hotpath/amqp_breaker.h"
#include "hotpath/clock.h"
#include "hotpath/common.h"
#include "hotpath/config.h"
#include "hotpath/ctx.h"
#include "hotpath/http_server.h"
#include "hotpath/router.h"
#include "hotpath/worker.h"

typedef struct hp_app hp_app_t;

typedef struct hp_app_config hp_app_config_t;

/* AMQP on every worker (docs/amqp.md, "Publishing over HTTP"): when
 * `enabled`, each worker opens `connections` connections of its own when
 * the app runs, each with `channels` channels in confirm mode, and keeps
 * them open (reconnecting when one is lost); conn.publish_queue_bytes
 * gives each channel a publish queue beyond its window. With
 * `publish_route`, POST <publish_route>/{exchange}/{routing
 * key} publishes the request body there and answers once the broker has
 * confirmed it (202), or why not, through a circuit breaker per worker
 * when breaker.failures is not 0 (503 while it is open). /metrics
 * (hp_app_builtin_routes) shows the connections' counters. Every string
 * is copied by hp_app_new. */
typedef struct hp_app_amqp {
    bool enabled;
    const char *url;             /* amqp://user:password@host:port/vhost, parsed over
                                    conn (hp_amqp_url_parse); NULL: conn as it is */
    hp_amqp_config_t conn;       /* the connection each worker opens (its name and
                                    automatic recovery are the app's) */
    uint32_t confirm_window;     /* unconfirmed publishes per channel, 1..65535 */
    uint32_t connections;        /* publishing connections per worker, 1..64 */
    uint32_t channels;           /* publishing channels per connection, 1..64 */
    const char *publish_route;   /* URL path of the route; NULL: no route */
    uint64_t timeout_ms;         /* a request waits this long for its confirm, then 504 */
    const char *content_type;    /* for requests without Content-Type (1..255 bytes) */
    hp_amqp_breaker_config_t breaker; /* the route's, per worker; failures 0: none
                                         (probes: 1) */
    bool stamp;                  /* publish with HP_AMQP_STAMP_HEADER (and the
                                    timestamp property) */
} hp_app_amqp_t;

#define HP_APP_AMQP_DEFAULT                                                    \
    ((hp_app_amqp_t){.enabled = false,                                         \
                     .url = NULL,                                              \
                     .conn = HP_AMQP_CONFIG_DEFAULT,                           \
                     .confirm_window = 1000,                                   \
                     .connections = 1,                                         \
                     .channels = 1,                                            \
                     .publish_route = NULL,                                    \
                     .timeout_ms = 5000,                                       \
                     .content_type = "application/octet-stream",           \
                     .breaker = {.failures = 0,                                \
                                 .window_ms = 10000,                           \
                                 .open_ms = 5000,                              \
                                 .open_max_ms = 60000,                         \
                                 .probes = 1},                                 \
                     .stamp = false})

/* Rebuilds the configuration for a reload (SIGHUP): fills *out (which
 * holds the running configuration) and returns 0, or returns -1 with a
 * one-line reason in err. Strings in *out need only live until the call
 * that used it returns: the app copies what it keeps. */
typedef int (*hp_app_reload_fn)(void *arg, hp_app_config_t *out, char *err, size_t errlen);

struct hp_app_config {
    const char *listen;          /* "ADDR:PORT"; default 127.0.0.1:8080 */
    uint32_t workers;            /* 0: one per CPU the process may use */
    int backlog;                 /* default 2048 */
    const char *root;            /* static files for paths no route matches; NULL: none */
    bool handle_signals;         /* hp_app_run drains on SIGINT/SIGTERM (default true) */
    bool quiet;                  /* no start-up line */
    hp_http_config_t http;       /* limits and timeouts (root_fd and engine are set by the app) */
    hp_worker_config_t engine;   /* buffers, write and drain timeouts */
    const hp_config_location_t *locations; /* URL prefixes with their own root and headers */
    size_t nlocations;
    const char *access_log;      /* file the access log is appended to; NULL: none */
    hp_app_reload_fn reload;     /* SIGHUP rebuilds the configuration with it; NULL: ignored */
    void *reload_arg;
    hp_app_amqp_t amqp;          /* AMQP connections and the publishing route */
};

#define HP_APP_LISTEN_DEFAULT "127.0.0.1:8080"

#define HP_APP_CONFIG_DEFAULT                                                  \
    ((hp_app_config_t){.listen = HP_APP_LISTEN_DEFAULT,                        \
                       .workers = 0,                                           \
                       .backlog = 2048,                                        \
                       .root = NULL,                                           \
                       .handle_signals = true,                                 \
                       .quiet = false,                                         \
                       .http = HP_HTTP_CONFIG_DEFAULT,                         \
                       .engine = HP_WORKER_CONFIG_DEFAULT,                     \
                       .locations = NULL,                                      \
                       .nlocations = 0,                                        \
                       .access_log = NULL,                                     \
                       .reload = NULL,                                         \
                       .reload_arg = NULL,                                     \
                       .amqp = HP_APP_AMQP_DEFAULT})

/* Creates an app: checks the configuration and opens the document root,
 * but binds nothing yet and connects nowhere. With cfg->amqp.enabled it
 * parses the AMQP URL and, with amqp.publish_route, registers the route
 * POST <publish_route>/{exchange}/{routing_key:*} (a trailing '/' of the
 * route is dropped; see docs/amqp.md); the connections open when the app
 * runs. Returns NULL with a one-line reason in err ("amqp.url: ..." for
 * the AMQP settings, by the key of the configuration file). */
HP_EXPORT hp_app_t *hp_app_new(const hp_app_config_t *cfg, char *err, size_t errlen);

/* Registers `fn` for `methods` (HP_ROUTER_* bits) on `pattern` (see
 * router.h: /users/{id:int}, /files/{rest:*} ...). HEAD is answered by the
 * GET handler unless one is registered for HEAD. Returns 0, or -EEXIST /
 * -EINVAL with a one-line message for a conflicting or malformed pattern,
 * -EBUSY once the app runs. */
HP_EXPORT int hp_app_route(hp_app_t *app, uint32_t methods, const char *pattern, hp_handler_fn fn,
                           void *udata, char *err, size_t errlen);

/* Lets the response cache (hp_http_config_t.cache, `cache` in the YAML)
 * keep the GET and HEAD 200 responses of `pattern`'s handlers for up to
 * `ttl_ms` (0: the configured TTL, which also caps any other value).
 * Responses a handler sends with "Cache-Control: max-age=N" are cached
 * without this; "no-store", "private", "no-cache" and Set-Cookie keep a
 * response out either way. A hit skips the handler but not the
 * middleware; a successful POST, PUT, PATCH or DELETE to a path drops what
 * is cached for it. Returns 0, -ENOENT (no route has that pattern) or
 * -EBUSY once the app runs. */
HP_EXPORT int hp_app_cache_route(hp_app_t *app, const char *pattern, uint64_t ttl_ms);

/* Registers another protocol on every worker (its worker_init(w, arg, ..)
 * runs when the app starts), for connections that reach it by an upgrade
 * (hp_ctx_upgrade) or an outbound connect, or through hp_app_listen. A
 * protocol without per-worker state needs no registering for an upgrade.
 * `proto` is borrowed and must outlive the app. Returns 0, -EEXIST,
 * -ENOSPC (more than HP_WORKER_MAX_PROTOS - 1) or -EBUSY once the app
 * runs. */
HP_EXPORT int hp_app_add_proto(hp_app_t *app, const hp_proto_t *proto, void *arg);

/* Listens on `addr` ("ADDR:PORT") besides the HTTP address, with `proto`
 * for what it accepts (registered first with hp_app_add_proto if it has
 * per-worker state). Every worker listens. Returns 0, -EINVAL (bad
 * address), -ENOSPC (more than HP_WORKER_MAX_LISTENERS - 1) or -EBUSY once
 * the app runs, with a one-line reason in err; binding errors come from
 * hp_app_run. */
HP_EXPORT int hp_app_listen(hp_app_t *app, const char *addr, const hp_proto_t *proto, char *err,
                            size_t errlen);

/* Adds middleware, run in the order added: `before` (may be NULL) runs
 * before the handler and may answer early by returning HP_DONE; `after`
 * (may be NULL) runs, in reverse order, once the response is complete and
 * before it is written, so it can add headers; it runs only when its own
 * `before` let the request through (onion order). Returns 0, -ENOSPC (more
 * than HP_HTTP_MAX_MIDDLEWARE, http_server.h) or -EBUSY once the app runs. */
HP_EXPORT int hp_app_use(hp_app_t *app, hp_middleware_fn before, hp_middleware_fn after,
                         void *udata);

/* Makes every worker's loop read its time from `src` (copied; NULL:
 * CLOCK_MONOTONIC, the default) from the next hp_app_run on; see
 * hp_loop_set_clock. For tests that drive the app's timers (response
 * cache TTLs, timeouts, a handler's own timers) with a clock they advance
 * themselves. src->now_ns is called on the worker threads while other
 * threads may advance it: it must be safe for that. Call it from the
 * thread that calls hp_app_run, while the app is not running. Returns 0,
 * or -EBUSY while it runs. */
HP_EXPORT int hp_app_set_clock(hp_app_t *app, const hp_clock_src_t *src);

/* Binds, starts the workers and blocks until hp_app_stop (or a signal
 * when handle_signals) has drained them. With cfg.amqp.enabled, each
 * worker dials its AMQP connection as it starts (a broker that cannot be
 * reached does not stop the app: its workers keep trying, and the
 * publishing route answers 503 meanwhile). With handle_signals, SIGHUP
 * reloads through cfg.reload (see hp_app_reload) and SIGUSR1 reopens the
 * access log (log rotation). Returns 0, or -errno when it
 * cannot listen (with the reason in hp_app_error). */
HP_EXPORT int hp_app_run(hp_app_t *app);

/* Applies a new configuration to the running app (from hp_app_run's
 * thread, which is where SIGHUP lands): locations, roots, limits that do
 * not size buffers, timeouts, keep-alive, compression, response cache and
 * access log. Settings that need a restart (listen, workers, backlog,
 * buffers, TCP options, the write and drain timeouts, the request
 * line/header limits, every AMQP setting) keep their running values; the
 * keys that name them in the configuration file ("workers, tcp.backlog")
 * are written to `restart` (may be NULL). Returns 0,
 * or -errno with a one-line reason in err and the running configuration
 * untouched (a root or log that cannot be opened, no memory). */
HP_EXPORT int hp_app_reload(hp_app_t *app, const hp_app_config_t *cfg, char *restart, size_t rlen,
                            char *err, size_t errlen);

/* Starts a graceful stop from any thread (a signal handler excepted). */
HP_EXPORT void hp_app_stop(hp_app_t *app);

/* The last error hp_app_run met, one line ("" when none). */
HP_EXPORT const char *hp_app_error(const hp_app_t *app);

/* Frees the app (after hp_app_run returned, or if it never ran). */
HP_EXPORT void hp_app_free(hp_app_t *app);

/* Where the metrics are when no other path is given. */
#define HP_APP_METRICS_PATH "/metrics"

/* The built-in endpoints of the hotpath binary, as routes: /plaintext,
 * /json, /health (GET), /echo (POST) and the Prometheus metrics (GET, at
 * `metrics_path`, default /metrics). `which` picks them (HP_APP_BUILTIN_*
 * bits). Returns 0 or what hp_app_route returned. */
enum {
    HP_APP_BUILTIN_PLAINTEXT = 1u << 0,
    HP_APP_BUILTIN_JSON = 1u << 1,
    HP_APP_BUILTIN_HEALTH = 1u << 2,
    HP_APP_BUILTIN_ECHO = 1u << 3,
    HP_APP_BUILTIN_METRICS = 1u << 4,
    HP_APP_BUILTIN_ALL = 0x1fu,
};
HP_EXPORT int hp_app_builtin_routes(hp_app_t *app, uint32_t which, const char *metrics_path,
                                    char *err, size_t errlen);

/* ---- the configuration file (app_config.c) ---- */

/* Fills *out with the defaults of the configuration file (config.h), each
 * taken from the module that owns it: listen, workers and tcp.backlog
 * from HP_APP_CONFIG_DEFAULT; limits, timeouts.header/body/keepalive,
 * keepalive, compression and cache from HP_HTTP_CONFIG_DEFAULT; buffers,
 * timeouts.write/drain, tcp.nodelay and tcp.reuseport from
 * HP_WORKER_CONFIG_DEFAULT; amqp.heartbeat from HP_AMQP_CONFIG_DEFAULT and
 * the other amqp keys from HP_APP_AMQP_DEFAULT. The file's own: root
 * "www", every endpoint on, metrics at HP_APP_METRICS_PATH, access log
 * "access.log" (off), no AMQP URL (AMQP off).
 * Strings are literals; *out owns nothing. Hand it to hp_config_init and
 * keep it for as long as the configuration. */
HP_EXPORT void hp_app_config_defaults(hp_config_t *out);

/* Sets every field of *o that a key of the file drives from `c` (the
 * rest of *o is left as it is); `c` must have one listen address. The
 * strings in *o are borrowed from `c`. *builtins gets the
 * HP_APP_BUILTIN_* bits of the endpoints turned on; the metrics route's
 * path is c->metrics.path. AMQP is enabled when amqp.url is set. */
HP_EXPORT void hp_app_config_apply(const hp_config_t *c, hp_app_config_t *o, uint32_t *builtins);

/* Makes every check hp_app_new, hp_app_builtin_routes and hp_app_reload
 * would make of what `c` drives, beyond the ranges the loader enforced:
 * one listen address that parses, roots that open as directories, an
 * access log that opens for appending (created if missing), a metrics
 * path the router takes beside the other endpoints, an AMQP URL that
 * parses (hp_amqp_url_parse) and a publishing route the router takes and
 * that has a URL to publish to. Binds nothing, connects nowhere and
 * keeps nothing open. Returns 0, or -EINVAL with one line in err placed
 * where the value was set (hp_config_fail: "FILE:LINE:COL: root: cannot
 * open 'x': No such file or directory"), or -ENOMEM. */
HP_EXPORT int hp_app_config_check(const hp_config_t *c, char *err, size_t errlen);

#endif
