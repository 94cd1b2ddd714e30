/*
 * http_server.h - the HTTP/1.1 protocol on the engine, with the built-in
 * endpoints (/plaintext, /json, /health, /echo, /metrics) and static files.
 *
 * Usage: fill an hp_http_config_t, call hp_http_proto_init to get the
 * hp_proto_t for it, and hand both to hp_engine_init (the config is the
 * proto_arg). Each worker gets its own hp_http_worker_t: statistics shard,
 * cached Date, scratch space.
 */
#ifndef HOTPATH_HTTP_SERVER_H
#define HOTPATH_HTTP_SERVER_H

#include <limits.h>
#include <stdint.h>

#include "hotpath/clock.h"
#include "hotpath/common.h"
#include "hotpath/conn.h"
#include "hotpath/ctx.h"
#include "hotpath/http_parser.h"
#include "hotpath/router.h"

struct hp_engine;

/* Middleware, run in order: `before` may answer early (HP_DONE); `after`
 * runs in reverse order once the response is complete. */
typedef struct hp_http_mw {
    hp_middleware_fn before, after;
    void *udata;
} hp_http_mw_t;

#define HP_HTTP_MAX_MIDDLEWARE 16

/* The application: routes and middleware, read-only while workers run. */
typedef struct hp_http_routes {
    hp_router_t *router;       /* owned by whoever built it; NULL: no routes */
    uint32_t nmw;
    hp_http_mw_t mw[HP_HTTP_MAX_MIDDLEWARE];
} hp_http_routes_t;

typedef struct hp_http_config {
    hp_http_limits_t limits;
    uint64_t header_timeout_ms;    /* whole request head must arrive within this -> 408 */
    uint64_t body_timeout_ms;      /* body bytes stall longer than this -> 408 */
    uint64_t keepalive_timeout_ms; /* idle keep-alive connections close after this */
    int root_fd;                   /* borrowed: document root (hp_static_open_root), -1 for none */
    struct hp_engine *engine;      /* borrowed: for /metrics across workers; may be NULL */
    const hp_http_routes_t *routes; /* borrowed: handlers; NULL: static files only */
    const struct hp_mime *mime;    /* borrowed: types from /etc/mime.types; NULL: built-ins */
} hp_http_config_t;

#define HP_HTTP_CONFIG_DEFAULT                                                 \
    ((hp_http_config_t){.limits = HP_HTTP_LIMITS_DEFAULT,                      \
                        .header_timeout_ms = 10000,                            \
                        .body_timeout_ms = 10000,                              \
                        .keepalive_timeout_ms = 5000,                          \
                        .root_fd = -1,                                         \
                        .engine = NULL,                                 \
                        .routes = NULL,                                 \
                        .mime = NULL})

/* Rejection reasons counted in /metrics, by the status they answer. */
enum {
    HP_HTTP_REJ_400, HP_HTTP_REJ_408, HP_HTTP_REJ_413, HP_HTTP_REJ_414,
    HP_HTTP_REJ_417, HP_HTTP_REJ_431, HP_HTTP_REJ_501, HP_HTTP_REJ_505,
    HP_HTTP_REJ_COUNT
};

typedef struct hp_http_stats {
    uint64_t requests;
    uint64_t responses[6];              /* by class: [1] 1xx ... [5] 5xx */
    uint64_t rejected[HP_HTTP_REJ_COUNT];
} HP_ALIGNED_CACHELINE hp_http_stats_t;

/* Bytes of per-worker scratch for rendering /metrics: fits in one output
 * chunk with room for the head. */
#define HP_HTTP_SCRATCH 12288

typedef struct hp_http_worker {
    hp_http_stats_t stats;             /* written by this worker only */
    const hp_http_config_t *cfg;       /* borrowed */
    hp_date_t date;                    /* this second's Date header */
    uint64_t date_next_ms;             /* monotonic time of the next second */
    char path[PATH_MAX];               /* scratch for decoded paths */
    char scratch[HP_HTTP_SCRATCH];     /* scratch for /metrics */
} hp_http_worker_t;

/* Fills `proto` for `cfg` (its state size depends on the field limit).
 * Returns 0 or -EINVAL when the limits do not fit a read chunk of
 * `rbuf_size` bytes. */
int hp_http_proto_init(hp_proto_t *proto, const hp_http_config_t *cfg, uint32_t rbuf_size);

/* The read chunk size that fits these limits (head + state + slack). */
uint32_t hp_http_rbuf_size(const hp_http_config_t *cfg);

#endif
