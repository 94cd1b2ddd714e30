/*
 * config.h - hotpath's YAML configuration file: a loader that checks every
 * key and says exactly what is wrong, into a struct of plain values.
 *
 * Usage:
 *     hp_config_t defaults, cfg;
 *     char err[512];
 *     hp_app_config_defaults(&defaults);  // the owners' defaults (app.h)
 *     hp_config_init(&cfg, &defaults);
 *     if (hp_config_load(&cfg, "config/hotpath.yaml", err, sizeof err) < 0)
 *         die("%s", err);         // one line: FILE:LINE:COL: KEY: ...
 *     ...
 *     hp_config_free(&cfg);
 *
 * The configuration only parses and validates: it knows each key's type
 * and range, never which protocol uses it nor what its default is. The
 * defaults are supplied by the modules that own them, as an hp_config_t
 * handed to hp_config_init; every key is optional and a missing key keeps
 * that default. Checks that need the rest of the system (does the root
 * open? does the address parse?) are made by their owners after the load
 * and reported where the key was written, through hp_config_fail. The
 * reference, with each key's type, default and range, is
 * docs/configuration.md.
 *
 * Strings and arrays in a loaded configuration live in memory the
 * configuration owns (c->mem) and stay valid until hp_config_free or the
 * next successful load into the same struct. The defaults' strings are
 * borrowed (usually literals), which is why the string fields are const.
 */
#ifndef HOTPATH_CONFIG_H
#define HOTPATH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hotpath/common.h"

/* Upper bounds the loader enforces, so a file cannot make us build huge
 * tables. */
#define HP_CONFIG_MAX_LISTEN 64      /* addresses in `listen` */
#define HP_CONFIG_MAX_LOCATIONS 256  /* entries in `locations` */
#define HP_CONFIG_MAX_FILE (16u << 20) /* bytes hp_config_load reads */

/* One entry of `locations`: how URLs under a prefix are served. */
typedef struct hp_config_location {
    const char *path;          /* URL prefix, starts with '/' (required) */
    const char *root;          /* static root for the prefix; NULL: the top-level root */
    const char *cache_control; /* Cache-Control value for its responses; NULL: none */
    bool compression;          /* compress responses to clients that accept it */
} hp_config_location_t;

typedef struct hp_config {
    const char *const *listen; /* ADDR:PORT strings, nlisten >= 1 */
    size_t nlisten;
    uint32_t workers;          /* 1..1024; 0: one per CPU the process may run on ("auto") */
    const char *root;          /* document root for paths no location claims */

    struct {
        uint32_t max_request_line; /* bytes; longer request line -> 414 */
        uint32_t max_header_bytes; /* bytes of header fields -> 431 */
        uint32_t max_headers;      /* header field count -> 431 */
        uint64_t max_body;         /* request body bytes -> 413 */
    } limits;

    struct {                   /* all in milliseconds */
        uint64_t header_ms;    /* whole request head must arrive within this -> 408 */
        uint64_t body_ms;      /* a request body may stall this long between reads */
        uint64_t keepalive_ms; /* idle keep-alive connections close after this */
        uint64_t write_ms;     /* a client reading none of our output this long is closed */
        uint64_t drain_ms;     /* graceful shutdown gives up after this */
    } timeouts;

    struct {
        bool enabled;          /* false: every response closes the connection */
        uint32_t max_requests; /* per connection; 0: unlimited */
    } keepalive;

    struct {
        bool nodelay;          /* TCP_NODELAY on accepted connections */
        bool reuseport;        /* one SO_REUSEPORT listener per worker */
        uint32_t backlog;      /* listen backlog per socket */
    } tcp;

    struct {
        uint32_t read_chunk;   /* bytes per read buffer (raised to fit the limits) */
        uint32_t write_chunk;  /* bytes per output chunk */
        uint32_t max_chunks;   /* per pool and worker; 0: unlimited */
    } buffers;

    const hp_config_location_t *locations; /* in file order; none: all from `root` */
    size_t nlocations;

    struct {
        bool plaintext, json, health, echo; /* built-in endpoints on or off */
    } endpoints;

    struct {
        bool enabled;          /* on-the-fly gzip/brotli */
        uint32_t level;        /* 1..9 */
        uint64_t min_size;     /* bytes: smaller bodies go as they are */
    } compression;

    struct {
        bool enabled;          /* response cache */
        uint32_t max_entries;
        uint64_t max_bytes;
        uint64_t ttl_ms;
    } cache;

    struct {
        bool enabled;
        const char *path;      /* file the access log is appended to */
    } access_log;

    struct {
        bool enabled;
        const char *path;      /* URL path of the Prometheus endpoint */
    } metrics;

    struct {                   /* an AMQP connection per worker (docs/amqp.md) */
        const char *url;       /* amqp://user:password@host:port/vhost (several hosts:
                                  host1:port,host2:port); NULL: no AMQP */
        uint64_t heartbeat_ms; /* asked-for heartbeat, whole seconds; 0: none */
        uint64_t blocked_timeout_ms; /* blocked by the broker longer: closed; 0: none */
        uint64_t read_coalesce_ms; /* while confirms stream in, read at most this often
                                      (hp_amqp_config_t.read_coalesce_ms); 0: off */
        uint32_t confirm_window; /* unconfirmed publishes per channel */
        uint32_t connections;  /* publishing connections per worker, 1..64 */
        uint32_t channels;     /* publishing channels per connection, 1..64 */
        uint64_t publish_queue; /* bytes a channel queues beyond its window; 0: none */
        const char *publish_route; /* POST <route>/{exchange}/{routing key}; NULL: none */
        uint64_t timeout_ms;   /* a request waits this long for its confirm */
        const char *content_type; /* for requests that name none */
        uint32_t breaker_failures; /* failures in breaker_window that open the circuit;
                                      0: no breaker */
        uint64_t breaker_window_ms, breaker_open_ms, breaker_open_max_ms;
        bool stamp;            /* publish with a timestamp_in_ms header */
    } amqp;

    const char *source;        /* file (or name) it was loaded from; NULL for defaults */
    const struct hp_config *defaults; /* borrowed: what a load starts from */
    struct hp_config_mark *marks; /* in mem: where each key was set (hp_config_fail) */
    void *mem;                 /* owned: everything a load allocated; NULL for defaults */
} hp_config_t;

/* Makes *c a copy of `defaults` that owns nothing and remembers
 * `defaults`, which every later load starts from and hp_config_free
 * returns to: it and its strings must outlive *c. Allocates nothing;
 * whatever *c held before is overwritten, not freed. */
HP_EXPORT void hp_config_init(hp_config_t *c, const hp_config_t *defaults);

/* Reads and validates the YAML file `path`, starting from c->defaults
 * (nothing of what *c held is kept). *c must have been through
 * hp_config_init. On success returns 0, frees what *c owned and replaces it. On
 * failure *c is left unchanged and `err` (when errlen > 0) receives one
 * NUL-terminated line without '\n':
 *   -EINVAL  "FILE:LINE:COL: KEY: expected WHAT, got 'X'" and the like
 *            (unknown keys suggest a known key within edit distance 2);
 *   -ENOENT, -EACCES, -EISDIR, -EFBIG ... "FILE: <strerror>";
 *   -ENOMEM  "FILE: out of memory".
 * Lines and columns count from 1. Keeps no state between calls. */
HP_EXPORT int hp_config_load(hp_config_t *c, const char *path, char *err, size_t errlen);

/* Same as hp_config_load, from `len` bytes of `yaml` (need not be
 * NUL-terminated); `name` stands for the file in messages and in
 * c->source. */
HP_EXPORT int hp_config_load_string(hp_config_t *c, const char *yaml, size_t len, const char *name,
                                    char *err, size_t errlen);

/* Frees what a load allocated and resets *c to its defaults. Safe on
 * defaults and on an already freed configuration. */
HP_EXPORT void hp_config_free(hp_config_t *c);

/* For the checks the owners make after a load (can the root be opened?):
 * writes the failure into err as one line, placed where the user set
 * `key` (a key path such as "locations[0].root"), and returns -EINVAL:
 *   "FILE:LINE:COL: KEY: message"  the file set it (or the nearest key
 *                                  above it, whose path is then shown);
 *   "ORIGIN: message"              hp_config_override named its origin;
 *   "FILE: KEY: message"           it kept its default ("KEY: message"
 *                                  without a file).
 * errlen 0 writes nothing. */
HP_EXPORT int hp_config_fail(const hp_config_t *c, const char *key, char *err, size_t errlen,
                             const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Records that `key` (and every key beneath it) now holds a value from
 * `origin`, such as the command-line flag "--root" that replaced the
 * file's; hp_config_fail then names the origin. `origin` is borrowed and
 * must outlive *c; the record lives until the next load or
 * hp_config_free. Returns 0 or -ENOMEM. */
HP_EXPORT int hp_config_override(hp_config_t *c, const char *key, const char *origin);

#endif
