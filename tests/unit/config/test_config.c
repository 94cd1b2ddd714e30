/*
 * test_config.c - unit tests for src/config/config.c and config_schema.c:
 * starting from the defaults it is given (DEFAULTS below: the documented
 * values, which the owners supply in the real binary; test_app checks
 * those), the shipped config/hotpath.yaml, every key round-tripping,
 * every error kind with its exact one-line message (line and column
 * checked), "did you mean", sizes and durations, the owners' failures
 * placed where a key was set or overridden (hp_config_fail), loading
 * from files, an out-of-memory sweep and independence between loads.
 * Leaks: every test frees what it loaded; test_no_leak reruns the loads
 * and compares the heap in use (mallinfo2) before and after, with glibc's
 * thread cache off (main re-executes itself for that); the ASan build
 * checks the same through LeakSanitizer.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "hotpath/alloc.h"
#include "hotpath/config.h"

#define DEFAULT_FILE "config/hotpath.yaml"

#define TUNABLES "glibc.malloc.tcache_count=0"

/* Bytes the program holds. Exact only without glibc's tcache, whose
 * cached chunks mallinfo2 counts as in use. */
static size_t heap_in_use(void)
{
    return mallinfo2().uordblks;
}

static bool heap_is_exact(void)
{
    const char *t = getenv("GLIBC_TUNABLES");
    return t && strcmp(t, TUNABLES) == 0;
}

/* The documented defaults, as the owners supply them (test_app checks
 * that hp_app_config_defaults gives these). config has none of its own. */
static const char *const default_listen[] = {"127.0.0.1:8080"};
static const hp_config_t DEFAULTS = {
    .listen = default_listen,
    .nlisten = 1,
    .workers = 0,
    .root = "www",
    .limits = {8192, 16384, 100, 1048576},
    .timeouts = {10000, 10000, 5000, 10000, 10000},
    .keepalive = {.enabled = true, .max_requests = 0},
    .tcp = {.nodelay = true, .reuseport = true, .backlog = 2048},
    .buffers = {32768, 16384, 0},
    .endpoints = {true, true, true, true},
    .compression = {.enabled = true, .level = 6, .min_size = 1024},
    .cache = {.enabled = false, .max_entries = 1000, .max_bytes = 64u << 20, .ttl_ms = 300000},
    .access_log = {.enabled = false, .path = "access.log"},
    .metrics = {.enabled = true, .path = "/metrics"},
    .amqp = {.url = NULL, .heartbeat_ms = 60000, .confirm_window = 1000, .connections = 1,
             .channels = 1, .publish_queue = 0, .publish_route = NULL,
             .timeout_ms = 5000, .content_type = "application/octet-stream",
             .breaker_failures = 0, .breaker_window_ms = 10000, .breaker_open_ms = 5000,
             .breaker_open_max_ms = 60000, .stamp = false},
};

/* Deep comparison, field by field (struct padding is unspecified). */
static void same_str(const char *a, const char *b)
{
    if (!a || !b)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

static void assert_config_equal(const hp_config_t *a, const hp_config_t *b)
{
    assert_int_equal(a->nlisten, b->nlisten);
    for (size_t i = 0; i < a->nlisten; i++)
        assert_string_equal(a->listen[i], b->listen[i]);
    assert_int_equal(a->workers, b->workers);
    same_str(a->root, b->root);
    assert_int_equal(a->limits.max_request_line, b->limits.max_request_line);
    assert_int_equal(a->limits.max_header_bytes, b->limits.max_header_bytes);
    assert_int_equal(a->limits.max_headers, b->limits.max_headers);
    assert_int_equal(a->limits.max_body, b->limits.max_body);
    assert_memory_equal(&a->timeouts, &b->timeouts, sizeof a->timeouts);
    assert_int_equal(a->keepalive.enabled, b->keepalive.enabled);
    assert_int_equal(a->keepalive.max_requests, b->keepalive.max_requests);
    assert_int_equal(a->tcp.nodelay, b->tcp.nodelay);
    assert_int_equal(a->tcp.reuseport, b->tcp.reuseport);
    assert_int_equal(a->tcp.backlog, b->tcp.backlog);
    assert_memory_equal(&a->buffers, &b->buffers, sizeof a->buffers);
    assert_int_equal(a->nlocations, b->nlocations);
    for (size_t i = 0; i < a->nlocations; i++) {
        same_str(a->locations[i].path, b->locations[i].path);
        same_str(a->locations[i].root, b->locations[i].root);
        same_str(a->locations[i].cache_control, b->locations[i].cache_control);
        assert_int_equal(a->locations[i].compression, b->locations[i].compression);
    }
    assert_memory_equal(&a->endpoints, &b->endpoints, sizeof a->endpoints);
    assert_int_equal(a->compression.enabled, b->compression.enabled);
    assert_int_equal(a->compression.level, b->compression.level);
    assert_int_equal(a->compression.min_size, b->compression.min_size);
    assert_int_equal(a->cache.enabled, b->cache.enabled);
    assert_int_equal(a->cache.max_entries, b->cache.max_entries);
    assert_int_equal(a->cache.max_bytes, b->cache.max_bytes);
    assert_int_equal(a->cache.ttl_ms, b->cache.ttl_ms);
    assert_int_equal(a->access_log.enabled, b->access_log.enabled);
    same_str(a->access_log.path, b->access_log.path);
    assert_int_equal(a->metrics.enabled, b->metrics.enabled);
    same_str(a->metrics.path, b->metrics.path);
    same_str(a->amqp.url, b->amqp.url);
    assert_int_equal(a->amqp.heartbeat_ms, b->amqp.heartbeat_ms);
    assert_int_equal(a->amqp.blocked_timeout_ms, b->amqp.blocked_timeout_ms);
    assert_int_equal(a->amqp.read_coalesce_ms, b->amqp.read_coalesce_ms);
    assert_int_equal(a->amqp.confirm_window, b->amqp.confirm_window);
    assert_int_equal(a->amqp.connections, b->amqp.connections);
    assert_int_equal(a->amqp.channels, b->amqp.channels);
    assert_int_equal(a->amqp.publish_queue, b->amqp.publish_queue);
    same_str(a->amqp.publish_route, b->amqp.publish_route);
    assert_int_equal(a->amqp.timeout_ms, b->amqp.timeout_ms);
    same_str(a->amqp.content_type, b->amqp.content_type);
    assert_int_equal(a->amqp.breaker_failures, b->amqp.breaker_failures);
    assert_int_equal(a->amqp.breaker_window_ms, b->amqp.breaker_window_ms);
    assert_int_equal(a->amqp.breaker_open_ms, b->amqp.breaker_open_ms);
    assert_int_equal(a->amqp.breaker_open_max_ms, b->amqp.breaker_open_max_ms);
    assert_int_equal(a->amqp.stamp, b->amqp.stamp);
    same_str(a->source, b->source);
    assert_ptr_equal(a->defaults, b->defaults);
    assert_ptr_equal(a->mem, b->mem);
}

/* Loads `yaml` as "t.yaml" into a fresh configuration. */
static int load(hp_config_t *c, const char *yaml, char *err, size_t errlen)
{
    hp_config_init(c, &DEFAULTS);
    return hp_config_load_string(c, yaml, strlen(yaml), "t.yaml", err, errlen);
}

/* Loads `yaml` as "t.yaml" over what *c holds (a reload). */
static int load_string(hp_config_t *c, const char *yaml)
{
    return hp_config_load_string(c, yaml, strlen(yaml), "t.yaml", NULL, 0);
}

/* Asserts that `yaml` fails with exactly `msg`, leaving defaults alone. */
static void expect_error(const char *yaml, const char *msg)
{
    hp_config_t c, d;
    char err[512];
    hp_config_init(&d, &DEFAULTS);
    memset(err, 'x', sizeof err);
    int rc = load(&c, yaml, err, sizeof err);
    if (rc != -EINVAL || strcmp(err, msg) != 0)
        print_error("input:\n%s\nrc %d\n got: %s\nwant: %s\n", yaml, rc, err, msg);
    assert_int_equal(rc, -EINVAL);
    assert_string_equal(err, msg);
    assert_config_equal(&c, &d);
    assert_null(strchr(err, '\n'));
}

static void expect_ok(hp_config_t *c, const char *yaml)
{
    char err[512] = "";
    int rc = load(c, yaml, err, sizeof err);
    if (rc != 0)
        print_error("input:\n%s\nerror: %s\n", yaml, err);
    assert_int_equal(rc, 0);
    assert_string_equal(err, "");
}

static void check_defaults(const hp_config_t *c)
{
    assert_int_equal(c->nlisten, 1);
    assert_string_equal(c->listen[0], "127.0.0.1:8080");
    assert_int_equal(c->workers, 0);
    assert_string_equal(c->root, "www");
    assert_int_equal(c->limits.max_request_line, 8192);
    assert_int_equal(c->limits.max_header_bytes, 16384);
    assert_int_equal(c->limits.max_headers, 100);
    assert_int_equal(c->limits.max_body, 1048576);
    assert_int_equal(c->timeouts.header_ms, 10000);
    assert_int_equal(c->timeouts.body_ms, 10000);
    assert_int_equal(c->timeouts.keepalive_ms, 5000);
    assert_int_equal(c->timeouts.write_ms, 10000);
    assert_int_equal(c->timeouts.drain_ms, 10000);
    assert_true(c->keepalive.enabled);
    assert_int_equal(c->keepalive.max_requests, 0);
    assert_true(c->tcp.nodelay);
    assert_true(c->tcp.reuseport);
    assert_int_equal(c->tcp.backlog, 2048);
    assert_int_equal(c->buffers.read_chunk, 32768);
    assert_int_equal(c->buffers.write_chunk, 16384);
    assert_int_equal(c->buffers.max_chunks, 0);
    assert_null(c->locations);
    assert_int_equal(c->nlocations, 0);
    assert_true(c->endpoints.plaintext && c->endpoints.json && c->endpoints.health &&
                c->endpoints.echo);
    assert_true(c->compression.enabled);
    assert_int_equal(c->compression.level, 6);
    assert_int_equal(c->compression.min_size, 1024);
    assert_false(c->cache.enabled);
    assert_int_equal(c->cache.max_entries, 1000);
    assert_int_equal(c->cache.max_bytes, 64u << 20);
    assert_int_equal(c->cache.ttl_ms, 300000);
    assert_false(c->access_log.enabled);
    assert_string_equal(c->access_log.path, "access.log");
    assert_true(c->metrics.enabled);
    assert_string_equal(c->metrics.path, "/metrics");
    assert_null(c->amqp.url);
    assert_int_equal(c->amqp.heartbeat_ms, 60000);
    assert_int_equal(c->amqp.confirm_window, 1000);
    assert_null(c->amqp.publish_route);
    assert_int_equal(c->amqp.timeout_ms, 5000);
    assert_string_equal(c->amqp.content_type, "application/octet-stream");
}

static void test_defaults(void **state)
{
    (void)state;
    uint64_t a0 = hp_alloc_count();
    hp_config_t c;
    memset(&c, 0xa5, sizeof c);
    hp_config_init(&c, &DEFAULTS);
    assert_int_equal(hp_alloc_count(), a0); /* allocates nothing */
    check_defaults(&c);
    assert_null(c.source);
    assert_ptr_equal(c.defaults, &DEFAULTS);
    assert_null(c.mem);
    hp_config_free(&c); /* fine on defaults, twice too */
    hp_config_free(&c);
    check_defaults(&c);
    assert_ptr_equal(c.defaults, &DEFAULTS);
}

/* Loads start from the defaults they are given, whatever they are: the
 * loader holds none of its own. */
static void test_given_defaults(void **state)
{
    (void)state;
    static const char *const listen[] = {"[::1]:9"};
    hp_config_t mine = DEFAULTS;
    mine.listen = listen;
    mine.workers = 7;
    mine.root = "elsewhere";
    mine.compression.level = 2;
    hp_config_t c;
    char err[256];
    hp_config_init(&c, &mine);
    assert_int_equal(hp_config_load_string(&c, "tcp: {backlog: 5}\n", 18, "g.yaml", err,
                                           sizeof err), 0);
    assert_string_equal(c.listen[0], "[::1]:9");
    assert_int_equal(c.workers, 7);
    assert_string_equal(c.root, "elsewhere");
    assert_int_equal(c.compression.level, 2);
    assert_int_equal(c.tcp.backlog, 5);
    assert_ptr_equal(c.defaults, &mine);
    hp_config_free(&c);
    assert_int_equal(c.tcp.backlog, 2048);
    assert_string_equal(c.root, "elsewhere");
}

static void test_empty_inputs(void **state)
{
    (void)state;
    static const char *const empty[] = {"", "# only a comment\n", "---\n", "~\n", "---\n...\n",
                                        "limits:\n", "limits: ~\nlocations:\n"};
    for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
        hp_config_t c;
        expect_ok(&c, empty[i]);
        check_defaults(&c);
        assert_string_equal(c.source, "t.yaml");
        hp_config_free(&c);
    }
}

static void test_default_file(void **state)
{
    (void)state;
    hp_config_t c, d;
    char err[256] = "";
    hp_config_init(&c, &DEFAULTS);
    int rc = hp_config_load(&c, DEFAULT_FILE, err, sizeof err);
    if (rc)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_string_equal(c.source, DEFAULT_FILE);
    /* The shipped file spells out the defaults, so it equals them in
     * every field but the bookkeeping ones. */
    check_defaults(&c);
    hp_config_init(&d, &DEFAULTS);
    d.source = c.source;
    d.mem = c.mem;
    assert_config_equal(&c, &d);
    hp_config_free(&c);
}

static const char every_key[] =
    "listen: ['127.0.0.1:9000', '[::1]:9001', ':9002', 'localhost:9003']\n"
    "workers: 3\n"
    "root: /srv/site\n"
    "limits:\n"
    "  max_request_line: 4k\n"
    "  max_header_bytes: 20000\n"
    "  max_headers: 50\n"
    "  max_body: 2g\n"
    "timeouts: {header: 1500ms, body: 2s, keepalive: 1m, write: 0.25s, drain: 1h}\n"
    "keepalive: {enabled: false, max_requests: 1000}\n"
    "tcp: {nodelay: no, backlog: 128, reuseport: off}\n"
    "buffers: {read_chunk: 64k, write_chunk: 4096, max_chunks: 5000}\n"
    "locations:\n"
    "  - path: /\n"
    "    root: www\n"
    "    cache_control: \"public, max-age=60\"\n"
    "    compression: true\n"
    "  - path: /api/\n"
    "  - {path: /img, root: ~, cache_control: '', compression: false}\n"
    "endpoints: {plaintext: false, json: False, health: NO, echo: false}\n"
    "compression: {enabled: false, level: 9, min_size: 2k}\n"
    "cache: {enabled: true, max_entries: 77, max_bytes: 3m, ttl: 2m}\n"
    "access_log: {enabled: yes, path: /var/log/hotpath.log}\n"
    "metrics: {enabled: false, path: /_stats}\n"
    "amqp:\n"
    "  url: amqp://u:p%40ss@broker.example:5673/%2Fprod\n"
    "  heartbeat: 2m\n"
    "  read_coalesce: 2ms\n"
    "  confirm_window: 65535\n"
    "  connections: 3\n"
    "  channels: 4\n"
    "  publish_queue: 2m\n"
    "  publish_route: /api/publish/\n"
    "  timeout: 250ms\n"
    "  content_type: 'application/json; charset=utf-8'\n"
    "  breaker_failures: 7\n"
    "  breaker_window: 30s\n"
    "  breaker_open: 1500ms\n"
    "  breaker_open_max: 2m\n"
    "  stamp: true\n";

static void test_every_key(void **state)
{
    (void)state;
    hp_config_t c;
    expect_ok(&c, every_key);
    assert_int_equal(c.nlisten, 4);
    assert_string_equal(c.listen[0], "127.0.0.1:9000");
    assert_string_equal(c.listen[1], "[::1]:9001");
    assert_string_equal(c.listen[2], ":9002");
    assert_string_equal(c.listen[3], "localhost:9003");
    assert_int_equal(c.workers, 3);
    assert_string_equal(c.root, "/srv/site");
    assert_int_equal(c.limits.max_request_line, 4096);
    assert_int_equal(c.limits.max_header_bytes, 20000);
    assert_int_equal(c.limits.max_headers, 50);
    assert_int_equal(c.limits.max_body, 2ull << 30);
    assert_int_equal(c.timeouts.header_ms, 1500);
    assert_int_equal(c.timeouts.body_ms, 2000);
    assert_int_equal(c.timeouts.keepalive_ms, 60000);
    assert_int_equal(c.timeouts.write_ms, 250);
    assert_int_equal(c.timeouts.drain_ms, 3600000);
    assert_false(c.keepalive.enabled);
    assert_int_equal(c.keepalive.max_requests, 1000);
    assert_false(c.tcp.nodelay);
    assert_int_equal(c.tcp.backlog, 128);
    assert_false(c.tcp.reuseport);
    assert_int_equal(c.buffers.read_chunk, 65536);
    assert_int_equal(c.buffers.write_chunk, 4096);
    assert_int_equal(c.buffers.max_chunks, 5000);
    assert_int_equal(c.nlocations, 3);
    assert_string_equal(c.locations[0].path, "/");
    assert_string_equal(c.locations[0].root, "www");
    assert_string_equal(c.locations[0].cache_control, "public, max-age=60");
    assert_true(c.locations[0].compression);
    assert_string_equal(c.locations[1].path, "/api/");
    assert_null(c.locations[1].root);
    assert_null(c.locations[1].cache_control);
    assert_false(c.locations[1].compression);
    assert_string_equal(c.locations[2].path, "/img");
    assert_null(c.locations[2].root);
    assert_string_equal(c.locations[2].cache_control, ""); /* quoted: a value, not null */
    assert_false(c.compression.enabled);
    assert_int_equal(c.compression.level, 9);
    assert_int_equal(c.compression.min_size, 2048);
    assert_false(c.endpoints.plaintext || c.endpoints.json || c.endpoints.health ||
                 c.endpoints.echo);
    assert_true(c.cache.enabled);
    assert_int_equal(c.cache.max_entries, 77);
    assert_int_equal(c.cache.max_bytes, 3u << 20);
    assert_int_equal(c.cache.ttl_ms, 120000);
    assert_true(c.access_log.enabled);
    assert_string_equal(c.access_log.path, "/var/log/hotpath.log");
    assert_false(c.metrics.enabled);
    assert_string_equal(c.metrics.path, "/_stats");
    /* The URL is text here: its syntax is the AMQP client's (test_app_config). */
    assert_string_equal(c.amqp.url, "amqp://u:p%40ss@broker.example:5673/%2Fprod");
    assert_int_equal(c.amqp.heartbeat_ms, 120000);
    assert_int_equal(c.amqp.read_coalesce_ms, 2);
    assert_int_equal(c.amqp.confirm_window, 65535);
    assert_int_equal(c.amqp.connections, 3);
    assert_int_equal(c.amqp.channels, 4);
    assert_int_equal(c.amqp.publish_queue, 2u << 20);
    assert_string_equal(c.amqp.publish_route, "/api/publish/");
    assert_int_equal(c.amqp.timeout_ms, 250);
    assert_string_equal(c.amqp.content_type, "application/json; charset=utf-8");
    assert_int_equal(c.amqp.breaker_failures, 7);
    assert_int_equal(c.amqp.breaker_window_ms, 30000);
    assert_int_equal(c.amqp.breaker_open_ms, 1500);
    assert_int_equal(c.amqp.breaker_open_max_ms, 120000);
    assert_true(c.amqp.stamp);
    hp_config_free(&c);
    check_defaults(&c);
}

static void test_single_listen_and_aliases(void **state)
{
    (void)state;
    hp_config_t c;
    expect_ok(&c, "listen: 0.0.0.0:80\n"
                  "timeouts: {header: &t 3s, body: *t}\n");
    assert_int_equal(c.nlisten, 1);
    assert_string_equal(c.listen[0], "0.0.0.0:80");
    assert_int_equal(c.timeouts.header_ms, 3000);
    assert_int_equal(c.timeouts.body_ms, 3000);
    hp_config_free(&c);
}

static void test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *yaml, *msg;
    } cases[] = {
        /* wrong types */
        {"limits: 5\n", "t.yaml:1:9: limits: expected a mapping of keys (indented KEY: VALUE "
                        "lines), got '5'"},
        {"limits:\n  max_body: {a: 1}\n",
         "t.yaml:2:13: limits.max_body: expected a size in bytes (a number, optionally with k, m "
         "or g) from 0 to 1024g, got a mapping"},
        {"limits:\n  max_headers: ten\n",
         "t.yaml:2:16: limits.max_headers: expected a whole number from 1 to 1000, got 'ten'"},
        {"tcp:\n  nodelay: maybe\n", "t.yaml:2:12: tcp.nodelay: expected true or false, got 'maybe'"},
        {"root: [a, b]\n", "t.yaml:1:7: root: expected a path of 1 to 4096 bytes without control "
                           "characters, got a list"},
        {"- 1\n", "t.yaml:1:1: (top level): expected a mapping of keys (KEY: VALUE), got a list"},
        {"hello\n", "t.yaml:1:1: (top level): expected a mapping of keys (KEY: VALUE), got 'hello'"},
        {"? [a]\n: 1\n", "t.yaml:1:3: (top level): expected a key name, got a list"},
        {"locations: /x\n", "t.yaml:1:12: locations: expected a list of locations (mappings with "
                            "path, root, ...), got '/x'"},
        {"locations: [/x]\n", "t.yaml:1:13: locations[0]: expected a mapping with path, root, "
                              "cache_control, compression, got '/x'"},
        {"listen: {a: 1}\n", "t.yaml:1:9: listen: expected an address or a list of addresses, "
                             "got a mapping"},
        /* out of range */
        {"workers: 0\n", "t.yaml:1:10: workers: expected 'auto' or a whole number from 1 to 1024, "
                         "got '0'"},
        {"workers: 1025\n", "t.yaml:1:10: workers: expected 'auto' or a whole number from 1 to "
                            "1024, got '1025'"},
        {"tcp: {backlog: 65536}\n", "t.yaml:1:16: tcp.backlog: expected a whole number from 1 to "
                                    "65535, got '65536'"},
        {"limits: {max_request_line: 63}\n",
         "t.yaml:1:28: limits.max_request_line: expected a size in bytes (a number, optionally "
         "with k, m or g) from 64 to 32k, got '63'"},
        {"buffers: {read_chunk: 4100}\n",
         "t.yaml:1:23: buffers.read_chunk: expected a size in bytes (a number, optionally with k, "
         "m or g) from 4k to 16m and a multiple of 64, got '4100'"},
        {"timeouts:\n  drain: 25h\n",
         "t.yaml:2:10: timeouts.drain: expected a duration such as 500ms, 10s, 2m or 1h (a plain "
         "number is seconds) from 1ms to 24h, got '25h'"},
        {"compression: {level: 10}\n", "t.yaml:1:22: compression.level: expected a whole number from 1 to 9, got '10'"},
        {"cache: {max_entries: -1}\n", "t.yaml:1:22: cache.max_entries: expected a whole number "
                                       "from 1 to 10000000, got '-1'"},
        /* unknown keys at every level, with and without a suggestion */
        {"keepalve: {}\n", "t.yaml:1:1: keepalve: unknown key, did you mean 'keepalive'?"},
        {"limits:\n  max_bdy: 1k\n",
         "t.yaml:2:3: limits.max_bdy: unknown key, did you mean 'max_body'?"},
        {"locations:\n  - path: /\n    rot: x\n",
         "t.yaml:3:5: locations[0].rot: unknown key, did you mean 'root'?"},
        {"tcp: {nodelya: true}\n", "t.yaml:1:7: tcp.nodelya: unknown key, did you mean 'nodelay'?"},
        {"timeouts: {headerxyz: 1}\n",
         "t.yaml:1:12: timeouts.headerxyz: unknown key (known keys here: header, body, keepalive, "
         "write, drain)"},
        {"frobnicate: 1\n",
         "t.yaml:1:1: frobnicate: unknown key (known keys here: listen, workers, root, limits, "
         "timeouts, keepalive, tcp, buffers, locations, endpoints, compression, cache, access_log, "
         "metrics, amqp)"},
        /* duplicates */
        {"workers: 2\nroot: a\nworkers: 3\n",
         "t.yaml:3:1: workers: duplicate key (first at line 1, column 1)"},
        {"tcp:\n  backlog: 1\n  backlog: 2\n",
         "t.yaml:3:3: tcp.backlog: duplicate key (first at line 2, column 3)"},
        {"locations:\n  - path: /a\n  - path: /a\n",
         "t.yaml:3:5: locations[1].path: duplicate location '/a', already locations[0]"},
        {"listen: [':80', ':80']\n",
         "t.yaml:1:17: listen[1]: duplicate address ':80', already listen[0]"},
        /* bad sizes, durations, addresses, strings */
        {"limits: {max_body: 1.5k}\n", "t.yaml:1:20: limits.max_body: expected a size in bytes (a "
                                       "number, optionally with k, m or g) from 0 to 1024g, got "
                                       "'1.5k'"},
        /* (whether an address parses is the listener's to say: test_app_config) */
        {"listen: 'a b'\n", "t.yaml:1:9: listen: expected an address such as 127.0.0.1:8080, "
                             "[::1]:8080 or :8080, got 'a b'"},
        {"listen:\n  - :80\n  - ''\n",
         "t.yaml:3:5: listen[1]: expected an address such as 127.0.0.1:8080, [::1]:8080 or :8080, "
         "got ''"},
        {"listen: []\n", "t.yaml:1:9: listen: expected at least one address, got an empty list"},
        {"metrics: {path: metrics}\n",
         "t.yaml:1:17: metrics.path: expected a URL path starting with '/' of at most 1024 bytes "
         "(printable ASCII without spaces, '?' or '#'), got 'metrics'"},
        {"root: \"a\\nb\"\n", "t.yaml:1:7: root: expected a path of 1 to 4096 bytes without "
                              "control characters, got 'a\\nb'"},
        {"root:\n", "t.yaml:1:6: root: expected a path of 1 to 4096 bytes without control "
                    "characters, got ''"},
        {"locations:\n  - {path: /, cache_control: \"a\\u00e9\"}\n",
         "t.yaml:2:30: locations[0].cache_control: expected a header value of at most 1024 "
         "printable ASCII characters, got 'a\xc3\xa9'"},
        /* the amqp section: ranges, whole seconds, strings */
        {"amqp:\n  read_coalesce: 2s\n",
         "t.yaml:2:18: amqp.read_coalesce: expected a duration such as 500ms, 10s, 2m or 1h (a "
         "plain number is seconds) from 0s to 1s, got '2s'"},
        {"amqp:\n  confirm_window: 0\n",
         "t.yaml:2:19: amqp.confirm_window: expected a whole number from 1 to 65535, got '0'"},
        {"amqp: {confirm_window: 65536}\n",
         "t.yaml:1:24: amqp.confirm_window: expected a whole number from 1 to 65535, got "
         "'65536'"},
        {"amqp:\n  connections: 0\n",
         "t.yaml:2:16: amqp.connections: expected a whole number from 1 to 64, got '0'"},
        {"amqp: {channels: 65}\n",
         "t.yaml:1:18: amqp.channels: expected a whole number from 1 to 64, got '65'"},
        {"amqp: {publish_queue: 2g}\n",
         "t.yaml:1:23: amqp.publish_queue: expected a size in bytes (a number, optionally with "
         "k, m or g) from 0 to 1g, got '2g'"},
        {"amqp: {heartbeat: 1.5s}\n",
         "t.yaml:1:19: amqp.heartbeat: expected a duration in whole seconds such as 30s, 2m or "
         "1h (a plain number is seconds) from 0s to 65535s, got '1.5s'"},
        {"amqp: {heartbeat: 500ms}\n",
         "t.yaml:1:19: amqp.heartbeat: expected a duration in whole seconds such as 30s, 2m or "
         "1h (a plain number is seconds) from 0s to 65535s, got '500ms'"},
        {"amqp: {heartbeat: 65536s}\n",
         "t.yaml:1:19: amqp.heartbeat: expected a duration in whole seconds such as 30s, 2m or "
         "1h (a plain number is seconds) from 0s to 65535s, got '65536s'"},
        {"amqp: {timeout: 0s}\n",
         "t.yaml:1:17: amqp.timeout: expected a duration such as 500ms, 10s, 2m or 1h (a plain "
         "number is seconds) from 1ms to 24h, got '0s'"},
        {"amqp: {url: 'amqp://a b/'}\n",
         "t.yaml:1:13: amqp.url: expected a URL of at most 1024 printable ASCII characters "
         "without spaces, got 'amqp://a b/'"},
        {"amqp: {url: ''}\n",
         "t.yaml:1:13: amqp.url: expected a URL of at most 1024 printable ASCII characters "
         "without spaces, got ''"},
        {"amqp: {publish_route: publish}\n",
         "t.yaml:1:23: amqp.publish_route: expected a URL path starting with '/' of at most 1024 "
         "bytes (printable ASCII without spaces, '?' or '#'), got 'publish'"},
        {"amqp: {content_type: ''}\n",
         "t.yaml:1:22: amqp.content_type: expected a header value of 1 to 255 printable ASCII "
         "characters, got ''"},
        {"amqp: [url]\n", "t.yaml:1:7: amqp: expected a mapping of keys (indented KEY: VALUE "
                           "lines), got a list"},
        {"amqp:\n  confirm-window: 5\n",
         "t.yaml:2:3: amqp.confirm-window: unknown key, did you mean 'confirm_window'?"},
        /* a location without path */
        {"locations:\n  - root: x\n    compression: true\n",
         "t.yaml:2:5: locations[0]: missing required key 'path'"},
        /* YAML syntax errors carry libyaml's problem and mark */
        {"a: [\n", "t.yaml:2:1: YAML syntax error: did not find expected node content (while "
                   "parsing a flow node at line 2, column 1)"},
        {"root: www\n  workers: 2\n",
         "t.yaml:2:10: YAML syntax error: mapping values are not allowed in this context"},
        {"root: \"www\n", "t.yaml:2:1: YAML syntax error: found unexpected end of stream (while "
                          "scanning a quoted scalar at line 1, column 7)"},
        {"root: *nowhere\n", "t.yaml:1:7: YAML syntax error: found undefined alias"},
        {"root: w\n\xff\n", "t.yaml:2:1: YAML syntax error: invalid leading UTF-8 octet (byte 0xff)"},
        {"workers: 2\n---\nworkers: 3\n",
         "t.yaml:2:1: (top level): expected one YAML document, got a second one"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_error(cases[i].yaml, cases[i].msg);
}

static void test_suggestions(void **state)
{
    (void)state;
    /* Distance 1 and 2 (a transposition counts once); 3 gets none. */
    expect_error("keepaliev: {}\n", "t.yaml:1:1: keepaliev: unknown key, did you mean 'keepalive'?");
    expect_error("wrkrs: 1\n", "t.yaml:1:1: wrkrs: unknown key, did you mean 'workers'?");
    expect_error("limits: {max_bodyyy: 1}\n",
                 "t.yaml:1:10: limits.max_bodyyy: unknown key, did you mean 'max_body'?");
    expect_error("limits: {max_bodyyyy: 1}\n",
                 "t.yaml:1:10: limits.max_bodyyyy: unknown key (known keys here: "
                 "max_request_line, max_header_bytes, max_headers, max_body)");
    expect_error("endpoints: {pj: true}\n", "t.yaml:1:13: endpoints.pj: unknown key (known keys "
                                            "here: plaintext, json, health, echo)");
    /* Keys are case-sensitive; a case slip is still suggested. */
    expect_error("Workers: 1\n", "t.yaml:1:1: Workers: unknown key, did you mean 'workers'?");
}

static uint64_t size_of(const char *v, int *rc)
{
    char yaml[128], err[512];
    hp_config_t c;
    snprintf(yaml, sizeof yaml, "limits: {max_body: '%s'}\n", v);
    *rc = load(&c, yaml, err, sizeof err);
    uint64_t r = c.limits.max_body;
    hp_config_free(&c);
    return r;
}

static void test_sizes(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t bytes;
    } good[] = {
        {"0", 0}, {"512", 512}, {"1k", 1024}, {"1K", 1024}, {"32k", 32768}, {"1m", 1048576},
        {"1M", 1048576}, {"1g", 1073741824}, {"3g", 3221225472ull}, {"1024g", 1ull << 40},
        {"1099511627776", 1ull << 40},
    };
    static const char *const bad[] = {
        "", "k", "1.5k", "-1", "+1", "1kb", "1 k", " 1", "1t", "0x10", "1025g", "1099511627777",
        "18446744073709551615", "18446744073709551616", "17179869184g", "99999999999999999999k",
    };
    int rc;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_int_equal(size_of(good[i].text, &rc), good[i].bytes);
        assert_int_equal(rc, 0);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_of(bad[i], &rc);
        if (rc != -EINVAL)
            print_error("accepted size '%s'\n", bad[i]);
        assert_int_equal(rc, -EINVAL);
    }
}

static uint64_t ms_of(const char *v, int *rc)
{
    char yaml[128], err[512];
    hp_config_t c;
    snprintf(yaml, sizeof yaml, "timeouts:\n  header: \"%s\"\n", v);
    *rc = load(&c, yaml, err, sizeof err);
    uint64_t r = c.timeouts.header_ms;
    hp_config_free(&c);
    return r;
}

static void test_durations(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t ms;
    } good[] = {
        {"500ms", 500}, {"1ms", 1}, {"10s", 10000}, {"2m", 120000}, {"1h", 3600000},
        {"10", 10000}, {"0.5s", 500}, {"0.5", 500}, {"1.5m", 90000}, {"0.25h", 900000},
        {"0.001", 1}, {"0.0015s", 2}, /* rounds to nearest */ {"2.5ms", 3}, {"24h", 86400000},
        {"86400", 86400000}, {"1.000000001s", 1000}, {"007s", 7000},
    };
    static const char *const bad[] = {
        "", "s", "0", "0s", "0.0004s", "10x", "10 s", "1d", ".5s", "5.", "5.s", "-1s", "1e3",
        "1.0000000001s", "24.001h", "25h", "1m30s", "99999999999999999999h", "18446744073709551s",
        "10S", "1MS",
    };
    int rc;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t ms = ms_of(good[i].text, &rc);
        if (rc || ms != good[i].ms)
            print_error("'%s' -> rc %d, %llu ms\n", good[i].text, rc, (unsigned long long)ms);
        assert_int_equal(rc, 0);
        assert_int_equal(ms, good[i].ms);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ms_of(bad[i], &rc);
        if (rc != -EINVAL)
            print_error("accepted duration '%s'\n", bad[i]);
        assert_int_equal(rc, -EINVAL);
    }
}

/* The amqp section: a heartbeat in whole seconds, 0 (none) included;
 * null URL and route keep AMQP and the route off; the section's own
 * defaults are the owners' (DEFAULTS here, test_app_config there). */
static void test_amqp_section(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t ms;
    } beats[] = {{"0", 0}, {"0s", 0}, {"30", 30000}, {"30s", 30000}, {"2m", 120000},
                 {"1.5m", 90000}, {"65535", 65535000}, {"18h", 64800000}};
    for (size_t i = 0; i < sizeof beats / sizeof beats[0]; i++) {
        char yaml[64];
        hp_config_t c;
        snprintf(yaml, sizeof yaml, "amqp: {heartbeat: '%s'}\n", beats[i].text);
        expect_ok(&c, yaml);
        assert_int_equal(c.amqp.heartbeat_ms, beats[i].ms);
        hp_config_free(&c);
    }
    hp_config_t c;
    expect_ok(&c, "amqp:\n  url: ~\n  publish_route:\n  confirm_window: 1\n");
    assert_null(c.amqp.url);
    assert_null(c.amqp.publish_route);
    assert_int_equal(c.amqp.confirm_window, 1);
    assert_int_equal(c.amqp.timeout_ms, 5000);
    hp_config_free(&c);
    /* The brief's example, as a user writes it. */
    expect_ok(&c, "amqp:\n"
                  "  url: amqp://guest:guest@127.0.0.1:5672/%2F     # the broker\n"
                  "  heartbeat: 30s\n"
                  "  confirm_window: 1000\n"
                  "  publish_route: /publish\n"
                  "  timeout: 5s\n"
                  "  content_type: application/octet-stream\n");
    assert_string_equal(c.amqp.url, "amqp://guest:guest@127.0.0.1:5672/%2F");
    assert_int_equal(c.amqp.heartbeat_ms, 30000);
    assert_string_equal(c.amqp.publish_route, "/publish");
    hp_config_free(&c);
}

static void test_failure_keeps_config_and_no_state(void **state)
{
    (void)state;
    hp_config_t c;
    char err[256];
    expect_ok(&c, every_key);
    hp_config_t before = c;
    /* A bad reload leaves everything in place, pointers included. */
    assert_int_equal(hp_config_load_string(&c, "workers: 2\ntcp: {backlog: 0}\n",
                                           strlen("workers: 2\ntcp: {backlog: 0}\n"), "r.yaml",
                                           err, sizeof err),
                     -EINVAL);
    assert_config_equal(&c, &before);
    assert_ptr_equal(c.listen, before.listen);
    assert_ptr_equal(c.locations, before.locations);
    assert_string_equal(c.locations[0].cache_control, "public, max-age=60");
    /* A good reload starts from the defaults, not from what was loaded. */
    assert_int_equal(hp_config_load_string(&c, "workers: 2\n", 11, "r.yaml", err, sizeof err), 0);
    assert_int_equal(c.workers, 2);
    hp_config_t rest = c;
    rest.workers = 0;
    check_defaults(&rest);
    hp_config_free(&c);
    /* Same input twice gives the same result. */
    hp_config_t x, y;
    expect_ok(&x, every_key);
    expect_ok(&y, every_key);
    void *ymem = y.mem; /* each load has its own memory */
    y.mem = x.mem;
    assert_config_equal(&x, &y);
    y.mem = ymem;
    hp_config_free(&x);
    hp_config_free(&y);
}

static void test_files(void **state)
{
    (void)state;
    char err[256];
    hp_config_t c;
    hp_config_init(&c, &DEFAULTS);
    assert_int_equal(hp_config_load(&c, "/nonexistent/hotpath.yaml", err, sizeof err), -ENOENT);
    assert_string_equal(err, "/nonexistent/hotpath.yaml: No such file or directory");
    assert_int_equal(hp_config_load(&c, "/tmp", err, sizeof err), -EISDIR);
    assert_string_equal(err, "/tmp: Is a directory");
    check_defaults(&c);

    char path[] = "/tmp/test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char body[] = "workers: 4\ntimeouts:\n  write: 7s\n";
    assert_int_equal(write(fd, body, sizeof body - 1), (ssize_t)(sizeof body - 1));
    assert_int_equal(hp_config_load(&c, path, err, sizeof err), 0);
    assert_int_equal(c.workers, 4);
    assert_int_equal(c.timeouts.write_ms, 7000);
    assert_string_equal(c.source, path);

    /* A bad file names itself. */
    assert_int_equal(write(fd, "bogus: 1\n", 9), 9);
    assert_int_equal(hp_config_load(&c, path, err, sizeof err), -EINVAL);
    char want[128];
    snprintf(want, sizeof want, "%s:4:1: bogus: unknown key (known keys here: listen, ", path);
    assert_memory_equal(err, want, strlen(want));
    assert_int_equal(c.workers, 4);

    /* Over the size cap. */
    assert_int_equal(ftruncate(fd, HP_CONFIG_MAX_FILE + 1), 0);
    assert_int_equal(hp_config_load(&c, path, err, sizeof err), -EFBIG);
    snprintf(want, sizeof want, "%s: larger than 16 MiB", path);
    assert_string_equal(err, want);
    close(fd);
    unlink(path);
    hp_config_free(&c);
}

static void test_messages_are_one_line(void **state)
{
    (void)state;
    hp_config_t c;
    char err[64];
    /* A name with a newline, a long value, a tiny buffer. */
    hp_config_init(&c, &DEFAULTS);
    const char *y = "root: \"\\t\\x01aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n";
    assert_int_equal(hp_config_load_string(&c, y, strlen(y), "a\nb", err, sizeof err), -EINVAL);
    assert_null(strchr(err, '\n'));
    assert_int_equal(strlen(err), sizeof err - 1);
    assert_memory_equal(err, "a?b:1:7: root: expected", 23);
    char big[512];
    assert_int_equal(hp_config_load_string(&c, y, strlen(y), "n", big, sizeof big), -EINVAL);
    assert_string_equal(big, "n:1:7: root: expected a path of 1 to 4096 bytes without control "
                             "characters, got '\\t\\x01aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'");
    /* errlen 0: nothing written, error still returned. */
    assert_int_equal(hp_config_load_string(&c, y, strlen(y), "n", NULL, 0), -EINVAL);
    /* Input need not be NUL-terminated: only len bytes are read. */
    assert_int_equal(hp_config_load_string(&c, "workers: 12345", 11, "n", big, sizeof big), 0);
    assert_int_equal(c.workers, 12);
    hp_config_free(&c);
}

static void test_oom_sweep(void **state)
{
    (void)state;
    int done = 0;
    for (uint64_t n = 1; n < 1000 && !done; n++) {
        hp_config_t c;
        char err[256];
        hp_config_init(&c, &DEFAULTS);
        hp_alloc_fail_after(n, 0);
        int rc = hp_config_load_string(&c, every_key, strlen(every_key), "t.yaml", err, sizeof err);
        hp_alloc_fail_after(0, 0);
        if (rc == 0) {
            done = 1;
            assert_int_equal(c.nlocations, 3);
        } else {
            assert_int_equal(rc, -ENOMEM);
            assert_string_equal(err, "t.yaml: out of memory");
            check_defaults(&c);
            assert_null(c.mem);
        }
        hp_config_free(&c);
    }
    assert_true(done);
    /* The file reader too. */
    for (uint64_t n = 1; n < 100; n++) {
        hp_config_t c;
        char err[256];
        hp_config_init(&c, &DEFAULTS);
        hp_alloc_fail_after(n, 0);
        int rc = hp_config_load(&c, DEFAULT_FILE, err, sizeof err);
        hp_alloc_fail_after(0, 0);
        hp_config_free(&c);
        if (rc == 0)
            break;
        assert_int_equal(rc, -ENOMEM);
        assert_string_equal(err, DEFAULT_FILE ": out of memory");
    }
}

/* Runs every test body once more and checks the heap is back where it
 * was (a leak check for builds without LeakSanitizer). */
/* hp_config_fail places a failure where the key was written, or where
 * its nearest enclosing key was, or names the flag that replaced it. */
static void test_fail_positions(void **state)
{
    (void)state;
    hp_config_t c;
    char err[256];
    expect_ok(&c, "root: www\n"
                  "locations:\n"
                  "  - path: /a\n"
                  "    root: r\n"
                  "listen: [':1', ':2']\n");
    static const struct {
        const char *key, *want;
    } cases[] = {
        {"root", "t.yaml:1:7: root: no 1"},
        {"locations[0].root", "t.yaml:4:11: locations[0].root: no 1"},
        {"locations[0].cache_control", "t.yaml:3:5: locations[0]: no 1"}, /* not set: its item */
        {"locations", "t.yaml:3:3: locations: no 1"},
        {"listen[1]", "t.yaml:5:16: listen[1]: no 1"},
        {"listen", "t.yaml:5:9: listen: no 1"},
        {"access_log.path", "t.yaml: access_log.path: no 1"}, /* a default */
        {"", "t.yaml: : no 1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(err, 'x', sizeof err);
        assert_int_equal(hp_config_fail(&c, cases[i].key, err, sizeof err, "no %d", 1), -EINVAL);
        assert_string_equal(err, cases[i].want);
    }
    /* A flag takes the key and everything beneath it. */
    uint64_t a0 = hp_alloc_count();
    assert_int_equal(hp_config_override(&c, "listen", "--listen"), 0);
    assert_int_equal(hp_config_override(&c, "root", "--root"), 0);
    assert_int_equal(hp_alloc_count(), a0); /* both were marked: nothing new */
    assert_int_equal(hp_config_override(&c, "workers", "--workers"), 0);
    assert_int_equal(hp_config_fail(&c, "listen[1]", err, sizeof err, "x"), -EINVAL);
    assert_string_equal(err, "--listen: x");
    assert_int_equal(hp_config_fail(&c, "listen", err, sizeof err, "x"), -EINVAL);
    assert_string_equal(err, "--listen: x");
    assert_int_equal(hp_config_fail(&c, "root", err, sizeof err, "x"), -EINVAL);
    assert_string_equal(err, "--root: x");
    assert_int_equal(hp_config_fail(&c, "workers", err, sizeof err, "x"), -EINVAL);
    assert_string_equal(err, "--workers: x");
    /* "locations[0].root" is not beneath "root". */
    assert_int_equal(hp_config_fail(&c, "locations[0].root", err, sizeof err, "x"), -EINVAL);
    assert_string_equal(err, "t.yaml:4:11: locations[0].root: x");
    /* One line, cut to fit, or nothing at all. */
    assert_int_equal(hp_config_fail(&c, "root", err, sizeof err, "a\nb\x7f"), -EINVAL);
    assert_string_equal(err, "--root: a?b?");
    assert_int_equal(hp_config_fail(&c, "locations[0].root", err, 8, "long"), -EINVAL);
    assert_string_equal(err, "t.yaml:");
    assert_int_equal(hp_config_fail(&c, "root", NULL, 0, "x"), -EINVAL);
    /* A failed load keeps the marks; a good one replaces them. */
    assert_int_equal(load_string(&c, "root: [\n"), -EINVAL);
    assert_int_equal(hp_config_fail(&c, "root", err, sizeof err, "x"), -EINVAL);
    assert_string_equal(err, "--root: x");
    assert_int_equal(load_string(&c, "\n\nroot: w\n"), 0);
    assert_int_equal(hp_config_fail(&c, "root", err, sizeof err, "x"), -EINVAL);
    assert_string_equal(err, "t.yaml:3:7: root: x");
    hp_config_free(&c);

    /* Defaults only: no file to name; an override allocates, free releases. */
    hp_config_init(&c, &DEFAULTS);
    assert_int_equal(hp_config_fail(&c, "root", err, sizeof err, "x"), -EINVAL);
    assert_string_equal(err, "root: x");
    assert_int_equal(hp_config_override(&c, "root", "--root"), 0);
    assert_non_null(c.mem);
    assert_int_equal(hp_config_fail(&c, "root", err, sizeof err, "x"), -EINVAL);
    assert_string_equal(err, "--root: x");
    hp_alloc_fail_after(1, 0);
    assert_int_equal(hp_config_override(&c, "workers", "--workers"), -ENOMEM);
    hp_alloc_fail_after(0, 0);
    hp_config_free(&c);
    assert_null(c.mem);
    assert_null(c.marks);
}

static void test_no_leak(void **state)
{
    hp_config_t c;
    char err[256];
    expect_ok(&c, every_key); /* warm up libc and libyaml */
    hp_config_free(&c);
    size_t before = heap_in_use();
    test_every_key(state);
    test_errors(state);
    test_failure_keeps_config_and_no_state(state);
    test_oom_sweep(state);
    test_fail_positions(state);
    hp_config_init(&c, &DEFAULTS);
    assert_int_equal(hp_config_load(&c, DEFAULT_FILE, err, sizeof err), 0);
    hp_config_free(&c);
    if (heap_is_exact())
        assert_int_equal(heap_in_use(), before);
    else
        print_message("heap figure inexact (GLIBC_TUNABLES not applied): compared nothing\n");
}

int main(int argc, char **argv)
{
    (void)argc;
    if (!heap_is_exact() && !getenv("HP_TEST_REEXEC")) {
        setenv("HP_TEST_REEXEC", "1", 1);
        setenv("GLIBC_TUNABLES", TUNABLES, 1);
        execv("/proc/self/exe", argv);
        /* Carry on without an exact heap figure. */
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_given_defaults),
        cmocka_unit_test(test_empty_inputs),
        cmocka_unit_test(test_default_file),
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_single_listen_and_aliases),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_suggestions),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_amqp_section),
        cmocka_unit_test(test_failure_keeps_config_and_no_state),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_messages_are_one_line),
        cmocka_unit_test(test_oom_sweep),
        cmocka_unit_test(test_fail_positions),
        cmocka_unit_test(test_no_leak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
