/*
 * http_server.h - the HTTP/1.1 protocol on the engine, with the built-in
 * endpoints (/plaintext, /json, /health, /echo, /metrics) and static files.
 *
 * Usage: fill an hp_http_config_t, call hp_http_proto_init to get the
 * hp_proto_t for it, register it with hp_engine_add_proto (the config is
 * the arg) and listen with hp_engine_listen. Each worker gets its own
 * hp_http_worker_t: statistics shard, cached Date, scratch space.
 */
#ifndef HOTPATH_HTTP_SERVER_H
#define HOTPATH_HTTP_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "hotpath/accesslog.h"
#include "hotpath/clock.h"
#include "hotpath/common.h"
#include "hotpath/conn.h"
#include "hotpath/ctx.h"
#include "hotpath/hist.h"
#include "hotpath/http_cond.h"
#include "hotpath/http_method.h"
#include "hotpath/http_parser.h"
#include "hotpath/router.h"
#include "hotpath/timer.h"

struct hp_engine;

/* Middleware, run in order: `before` may answer early (HP_DONE); `after`
 * runs in reverse order once the response is complete. */
typedef struct hp_http_mw {
    hp_middleware_fn before, after;
    void *udata;
} hp_http_mw_t;

/* The most middleware an app takes (hp_app_use answers -ENOSPC beyond it). */
#define HP_HTTP_MAX_MIDDLEWARE 16

/* One registration: a handler for some methods of a pattern. The router's
 * udata for it is its index in hp_http_routes_t.regs. */
typedef struct hp_http_reg {
    hp_handler_fn fn;
    void *udata;
    uint32_t pattern_id;       /* index in patterns: metrics are per pattern */
    bool cache;                /* its GET/HEAD 200s may be cached (hp_app_cache_route) */
    uint64_t cache_ttl_ms;     /* for how long; 0: the configured cache.ttl */
} hp_http_reg_t;

/* The application: routes and middleware, read-only while workers run. */
typedef struct hp_http_routes {
    hp_router_t *router;       /* owned by whoever built it; NULL: no routes */
    uint32_t nmw;
    hp_http_mw_t mw[HP_HTTP_MAX_MIDDLEWARE];
    hp_http_reg_t *regs;       /* owned by the app */
    uint32_t nregs;
    const char **patterns;     /* owned by the app: distinct patterns, for labels */
    uint32_t npatterns;
} hp_http_routes_t;

/* Per worker and route pattern: responses by method and status class, and
 * the latency from the start of the iteration that dispatched the request
 * to its complete response. */
typedef struct hp_http_route_stats {
    uint64_t responses[HP_METHOD_ROUTED][6];
    bool max_age_seen;         /* a response of it was cached for its max-age:
                                  look its requests up in the response cache */
    hp_hist_t latency;
} hp_http_route_stats_t;

/* One URL prefix whose static files come from their own root, with their
 * own headers. The longest matching prefix wins. */
typedef struct hp_http_location {
    const char *prefix;            /* borrowed: starts with '/' */
    uint32_t prefix_len;
    int root_fd;                   /* borrowed: hp_static_open_root; -1: 404 for all */
    const char *cache_control;     /* borrowed: Cache-Control value; NULL: none */
    bool compress;                 /* compress files on the fly for clients that accept it */
} hp_http_location_t;

typedef struct hp_http_config {
    hp_http_limits_t limits;
    uint64_t header_timeout_ms;    /* whole request head must arrive within this -> 408 */
    uint64_t body_timeout_ms;      /* body bytes stall longer than this -> 408 */
    uint64_t keepalive_timeout_ms; /* idle keep-alive connections close after this */
    int root_fd;                   /* borrowed: document root (hp_static_open_root), -1 for none */
    struct hp_engine *engine;      /* borrowed: for /metrics across workers; may be NULL */
    const hp_http_routes_t *routes; /* borrowed: handlers; NULL: static files only */
    const struct hp_mime *mime;    /* borrowed: types from /etc/mime.types; NULL: built-ins */
    int compress_level;            /* on-the-fly gzip/brotli level 1-9; 0: off */
    uint32_t compress_min;         /* bytes: smaller bodies go as they are */
    const hp_http_location_t *locations; /* borrowed: prefixes with their own root */
    uint32_t nlocations;
    bool keepalive;                /* false: every response closes its connection */
    uint32_t max_requests;         /* per connection, then close; 0: unlimited */
    struct {
        bool enabled;              /* cache GET/HEAD 200s of routes that allow it */
        uint32_t max_entries;      /* per worker */
        uint64_t max_bytes;        /* per worker */
        uint64_t ttl_ms;           /* the longest an entry is served */
    } cache;
    uint32_t file_cache_entries;   /* open-file cache per worker (at least 1 is kept) */
    uint64_t file_cache_bytes;     /* its bound for compressed copies of files */
    hp_accesslog_file_t *access_log; /* borrowed: shared file; NULL: no access log */
    /* After a reload (hp_http_post_config), each worker calls
     * this once for the configuration it stopped using. May be NULL. */
    void (*retire)(const struct hp_http_config *cfg);
} hp_http_config_t;

#define HP_HTTP_CONFIG_DEFAULT                                                 \
    ((hp_http_config_t){.limits = HP_HTTP_LIMITS_DEFAULT,                      \
                        .header_timeout_ms = 10000,                            \
                        .body_timeout_ms = 10000,                              \
                        .keepalive_timeout_ms = 5000,                          \
                        .root_fd = -1,                                         \
                        .engine = NULL,                                 \
                        .routes = NULL,                                 \
                        .mime = NULL,                                   \
                        .compress_level = 6,                            \
                        .compress_min = 1024,                           \
                        .locations = NULL,                              \
                        .nlocations = 0,                                \
                        .keepalive = true,                              \
                        .max_requests = 0,                              \
                        .cache = {false, 1000, 64u << 20, 300000},      \
                        .file_cache_entries = 1024,                     \
                        .file_cache_bytes = 32u << 20,                  \
                        .access_log = NULL,                             \
                        .retire = NULL})

/* Rejection reasons counted in /metrics, by the status they answer. */
enum {
    HP_HTTP_REJ_400, HP_HTTP_REJ_408, HP_HTTP_REJ_413, HP_HTTP_REJ_414,
    HP_HTTP_REJ_417, HP_HTTP_REJ_431, HP_HTTP_REJ_501, HP_HTTP_REJ_505,
    HP_HTTP_REJ_503, /* no memory for the request (its body) */
    HP_HTTP_REJ_COUNT
};

typedef struct hp_http_stats {
    uint64_t requests;
    uint64_t upgrades;                  /* connections handed to another protocol */
    uint64_t responses[6];              /* by class: [1] 1xx ... [5] 5xx */
    uint64_t rejected[HP_HTTP_REJ_COUNT];
    /* The caches' own counters, published here for /metrics (the caches
     * are the worker's alone): response cache and open-file cache. */
    uint64_t cache_hits, cache_misses, cache_evictions, cache_entries, cache_bytes;
    uint64_t file_hits, file_misses, file_evictions, file_entries;
} HP_ALIGNED_CACHELINE hp_http_stats_t;

/* Bytes of per-worker scratch for rendering /metrics, plus this much per
 * route pattern. */
#define HP_HTTP_SCRATCH 12288
#define HP_HTTP_SCRATCH_PER_ROUTE 4096

/* Room for a decoded path: Linux's PATH_MAX, which strict C does not
 * define. */
#define HP_HTTP_PATH_MAX 4096

typedef struct hp_http_worker {
    hp_http_stats_t stats;             /* written by this worker only */
    const hp_http_config_t *cfg;       /* borrowed */
    hp_clock_date_t date;                    /* this second's Date header */
    uint64_t date_next_ms;             /* monotonic time of the next second */
    uint64_t batch_ns;                 /* clock read for this batch of responses; 0: none yet */
    hp_http_route_stats_t *routes;     /* owned: one per route pattern */
    uint32_t nroutes;
    hp_hist_t merged;                  /* owned: /metrics merges routes' latencies here */
    struct hp_rcache *rcache;          /* owned: response cache; NULL when off */
    uint64_t cache_base[3];            /* hits, misses, evictions of response caches
                                          replaced by reloads */
    struct hp_fcache *fcache;          /* owned: open-file cache */
    char etag[HP_ETAG_MAX];            /* scratch: ETag of a body compressed on the fly */
    char *scratch;                     /* owned: /metrics text */
    size_t scratch_len;
    char path[HP_HTTP_PATH_MAX];       /* scratch for decoded paths */
    int64_t date_sec;                  /* Unix second `date` shows */
    bool alog_on;                      /* cfg->access_log is set: alog is live */
    hp_accesslog_t alog;                    /* owned: this worker's access-log buffer */
    hp_timer_t alog_timer;             /* flushes alog within a second of a line */
    int64_t alog_sec;                  /* second alog_time shows */
    char alog_time[32];                /* hp_accesslog_time of alog_sec */
} hp_http_worker_t;

/* Fills `proto` for `cfg` (its state size depends on the field limit).
 * Returns 0 or -EINVAL when the limits do not fit a read chunk of
 * `rbuf_size` bytes. */
HP_EXPORT int hp_http_proto_init(hp_proto_t *proto, const hp_http_config_t *cfg,
                                 uint32_t rbuf_size);

/* Hands a reloaded configuration to worker `w` running `proto` (from any
 * thread): from its next wake-up, its requests use `cfg`, and the one it
 * stopped using goes to cfg->retire. Returns 0 or -EAGAIN (inbox full:
 * try again). */
HP_EXPORT int hp_http_post_config(hp_worker_t *w, const hp_proto_t *proto,
                                  const hp_http_config_t *cfg);

/* The read chunk size that fits these limits (head + state + slack). */
HP_EXPORT uint32_t hp_http_rbuf_size(const hp_http_config_t *cfg);

#endif
