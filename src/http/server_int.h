/*
 * server_int.h - what the HTTP layer's own files share: the app's routes
 * and middleware, the per-worker state and statistics, the per-request
 * state kept in a connection's read chunk and the handler context inside
 * it. Private to src/http (server.c, files.c, ctx.c, builtin.c, app.c).
 */
#ifndef HOTPATH_SERVER_INT_H
#define HOTPATH_SERVER_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "hotpath/accesslog.h"
#include "hotpath/app.h"
#include "hotpath/clock.h"
#include "hotpath/ctx.h"
#include "hotpath/hist.h"
#include "hotpath/http_cond.h"
#include "hotpath/http_method.h"
#include "hotpath/http_parser.h"
#include "hotpath/http_server.h"
#include "hotpath/router.h"
#include "net/conn_int.h"

/* Middleware, run in order: `before` may answer early (HP_DONE); `after`
 * runs in reverse order once the response is complete. */
typedef struct hp_http_mw {
    hp_middleware_fn before, after;
    void *udata;
} hp_http_mw_t;

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

enum { PH_HEAD = 0, PH_BODY, PH_PENDING };
enum { SINK_DISCARD = 0, SINK_HANDLER };
enum { BODY_NONE = 0, BODY_INLINE, BODY_CHUNK, BODY_HEAP, BODY_REF, BODY_FILE };
/* CACHE_MISS: a cacheable request the cache could not answer: its response
 * is offered to the cache. CACHE_UNSAFE: a method that invalidates what is
 * cached for its path. */
enum { CACHE_NONE = 0, CACHE_MISS, CACHE_HIT, CACHE_UNSAFE };

/* ctx->path_off for the path "/" of an absolute-form target without one. */
#define HTTP_PATH_ROOT 0xffffu

/* Response bodies up to this size are copied into the context itself. */
#define HTTP_CTX_INLINE 512

typedef struct http_state http_state_t;

struct hp_ctx {
    hp_conn_t *conn;          /* borrowed: the connection, for life */
    http_state_t *st;         /* the request state this context is part of */
    uint32_t match_method;    /* HP_ROUTER_* bit the route was matched with */
    uint64_t start_ns;        /* the dispatching iteration's time, for latency */
    uint16_t path_off, path_len;   /* relative to the request's first byte */
    uint16_t query_off, query_len;
    int status;
    const char *ctype;        /* borrowed */
    uint8_t body_kind;        /* BODY_* */
    uint8_t mw_passed;        /* middleware whose `before` let the request through */
    uint8_t cache;            /* CACHE_*: the response cache's part in this request */
    bool compressed;          /* on-the-fly compression was considered already */
    uint16_t hdr_len;
    int fd;                   /* BODY_FILE: owned */
    const void *body;         /* what to send */
    uint64_t body_len;
    uint64_t file_off;
    void (*done)(void *arg);  /* BODY_REF: called once sent or dropped */
    void *done_arg;           /* BODY_REF: its argument; BODY_CHUNK/HEAP: the allocation */
    void (*abort_fn)(hp_ctx_t *ctx, void *arg);
    void *abort_arg;
    const hp_proto_t *upgrade; /* hp_ctx_upgrade: run this after the 101; NULL: none */
    void *upgrade_udata;
    hp_route_match_t match;
    char hdrs[HP_CTX_HEADER_BYTES + 1]; /* "Name: value\r\n"..., NUL-terminated */
    char inline_body[HTTP_CTX_INLINE];
};

struct http_state {
    hp_http_req_t req;
    hp_http_chunked_t chunked;
    uint8_t phase;            /* PH_* */
    uint8_t sink;             /* SINK_*: where body bytes go */
    bool head_only;           /* HEAD request: no body in the response */
    bool body_pooled;         /* body is a pool chunk, not heap memory */
    uint32_t resp_flags;      /* HP_HTTP_R_* for this request's response */
    uint32_t head_len;        /* request head bytes kept at the front of the data */
    uint64_t body_left;       /* Content-Length bytes still to read */
    uint64_t head_deadline;   /* loop ms by which the head must be complete; 0: not started */
    char *body;               /* owned: the request body being gathered */
    uint64_t body_len, body_cap;
    hp_ctx_t ctx;
    hp_http_field_t fields[]; /* cfg->limits.max_fields */
};

/* An HTTP connection's udata is its worker's hp_http_worker_t (what the
 * listener hands over from worker_init). */
static inline hp_http_worker_t *http_worker(hp_conn_t *c)
{
    return c->udata;
}

/* server_worker.c: the protocol's per-worker state. */
int http_worker_init(hp_worker_t *w, void *arg, void **data);
void http_worker_fini(hp_worker_t *w, void *data);

/* server_log.c: the access log's start (its buffer and flush timer, when
 * the configuration names a file) and stop (flushes). */
int http_log_start(hp_http_worker_t *hw);
void http_log_stop(hp_worker_t *w, hp_http_worker_t *hw);

/* server.c, server_log.c and server_worker.c */
const hp_clock_date_t *http_date(hp_conn_t *c);
/* Counts a response by class and writes its access-log line (status >= 200,
 * `bytes` of body sent). */
void http_count_response(hp_conn_t *c, int status, uint64_t bytes);
/* The request is answered: drops its head (and body), readies the
 * connection for the next one and closes it when asked to. */
void http_request_done(hp_conn_t *c, http_state_t *st);
/* After a handler's hp_ctx_upgrade, once the 101 is queued and the request
 * consumed: hands the connection to the other protocol. Returns true when
 * it switched (the connection is no longer HTTP's: touch nothing). */
bool http_upgrade(hp_conn_t *c, http_state_t *st);
/* Goes on with the buffered requests after an asynchronous answer. */
void http_resume(hp_conn_t *c);
/* Publishes the caches' counters to the worker's statistics shard. */
void http_cache_publish(hp_http_worker_t *hw);
/* A complete response with a short text body for `status`, keeping the
 * connection as the request asked (404, 405, 416 ...). */
void http_respond_status(hp_conn_t *c, http_state_t *st, int status, const char *extra);

/* files.c: answers a GET or HEAD for a static file (or its 301, 304, 404,
 * 406, 412 or 416). */
void http_serve_file(hp_conn_t *c, http_state_t *st, const char *target, uint32_t len);

/* ctx.c */
void http_ctx_start(hp_ctx_t *ctx, hp_conn_t *c, http_state_t *st);
/* Runs the middleware and the handler; returns HP_DONE or HP_PENDING. */
int http_ctx_run(hp_ctx_t *ctx);
/* Runs the `after` middleware and writes the response. */
void http_ctx_complete(hp_ctx_t *ctx);
/* Drops what the response holds (connection closing). */
void http_ctx_release(hp_ctx_t *ctx);

#endif
