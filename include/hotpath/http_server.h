/*
 * http_server.h - the HTTP/1.1 protocol on the engine, with the built-in
 * endpoints (/plaintext, /json, /health, /echo, /metrics) and static files.
 *
 * Usage: an app (app.h) does all of this for its routes. Without one:
 * fill an hp_http_config_t, call hp_http_proto_init to get the hp_proto_t
 * for it, register it with hp_engine_add_proto (the config is the arg)
 * and listen with hp_engine_listen. Each worker gets its own state
 * (statistics shard, cached Date, caches, scratch space), private to the
 * library.
 */
#ifndef HOTPATH_HTTP_SERVER_H
#define HOTPATH_HTTP_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "hotpath/accesslog.h"
#include "hotpath/common.h"
#include "hotpath/conn.h"
#include "hotpath/http_parser.h"

struct hp_engine;

/* The most middleware an app takes (hp_app_use answers -ENOSPC beyond it). */
#define HP_HTTP_MAX_MIDDLEWARE 16

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
    const struct hp_http_routes *routes; /* borrowed: the app's handlers; NULL: static
                                     files and the built-in endpoints only */
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
