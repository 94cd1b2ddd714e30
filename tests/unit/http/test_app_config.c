/*
 * test_app_config.c - unit tests for src/http/app_config.c: the
 * configuration file's defaults come from the owners' initialisers and
 * are the documented ones, the shipped config/hotpath.yaml spells them
 * out, and the mapping back onto an hp_app_config_t is their inverse. And
 * the one list of settings a reload cannot change (app.c): hp_app_reload
 * names them by their keys and keeps their running values. And
 * hp_app_config_check: each refusal, placed where the value was written.
 * The checks open files beneath a scratch directory (removed after).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "hotpath/app.h"
#include "hotpath/config.h"

#define DEFAULT_FILE "config/hotpath.yaml"

static void same_str(const char *a, const char *b)
{
    if (!a || !b)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

/* Field by field (struct padding is unspecified): every setting a key of
 * the file drives. */
static void same_settings(const hp_app_config_t *got, const hp_app_config_t *want)
{
    assert_string_equal(got->listen, want->listen);
    assert_int_equal(got->workers, want->workers);
    assert_int_equal(got->backlog, want->backlog);
    const hp_http_limits_t *gl = &got->http.limits, *wl = &want->http.limits;
    assert_int_equal(gl->max_request_line, wl->max_request_line);
    assert_int_equal(gl->max_header_bytes, wl->max_header_bytes);
    assert_int_equal(gl->max_fields, wl->max_fields);
    assert_int_equal(gl->max_body, wl->max_body);
    assert_int_equal(got->http.header_timeout_ms, want->http.header_timeout_ms);
    assert_int_equal(got->http.body_timeout_ms, want->http.body_timeout_ms);
    assert_int_equal(got->http.keepalive_timeout_ms, want->http.keepalive_timeout_ms);
    assert_int_equal(got->http.keepalive, want->http.keepalive);
    assert_int_equal(got->http.max_requests, want->http.max_requests);
    assert_int_equal(got->http.compress_level, want->http.compress_level);
    assert_int_equal(got->http.compress_min, want->http.compress_min);
    assert_int_equal(got->http.cache.enabled, want->http.cache.enabled);
    assert_int_equal(got->http.cache.max_entries, want->http.cache.max_entries);
    assert_int_equal(got->http.cache.max_bytes, want->http.cache.max_bytes);
    assert_int_equal(got->http.cache.ttl_ms, want->http.cache.ttl_ms);
    assert_int_equal(got->engine.rbuf_size, want->engine.rbuf_size);
    assert_int_equal(got->engine.wbuf_size, want->engine.wbuf_size);
    assert_int_equal(got->engine.max_chunks, want->engine.max_chunks);
    assert_int_equal(got->engine.write_timeout_ms, want->engine.write_timeout_ms);
    assert_int_equal(got->engine.drain_timeout_ms, want->engine.drain_timeout_ms);
    assert_int_equal(got->engine.nodelay, want->engine.nodelay);
    assert_int_equal(got->engine.reuseport, want->engine.reuseport);
    assert_int_equal(got->nlocations, want->nlocations);
    same_str(got->access_log, want->access_log);
    assert_int_equal(got->amqp.enabled, want->amqp.enabled);
    same_str(got->amqp.url, want->amqp.url);
    assert_int_equal(got->amqp.conn.heartbeat_s, want->amqp.conn.heartbeat_s);
    assert_int_equal(got->amqp.conn.blocked_timeout_ms, want->amqp.conn.blocked_timeout_ms);
    assert_int_equal(got->amqp.conn.read_coalesce_ms, want->amqp.conn.read_coalesce_ms);
    assert_int_equal(got->amqp.confirm_window, want->amqp.confirm_window);
    assert_int_equal(got->amqp.connections, want->amqp.connections);
    assert_int_equal(got->amqp.channels, want->amqp.channels);
    assert_int_equal(got->amqp.conn.publish_queue_bytes, want->amqp.conn.publish_queue_bytes);
    same_str(got->amqp.publish_route, want->amqp.publish_route);
    assert_int_equal(got->amqp.timeout_ms, want->amqp.timeout_ms);
    same_str(got->amqp.content_type, want->amqp.content_type);
    assert_int_equal(got->amqp.breaker.failures, want->amqp.breaker.failures);
    assert_int_equal(got->amqp.breaker.window_ms, want->amqp.breaker.window_ms);
    assert_int_equal(got->amqp.breaker.open_ms, want->amqp.breaker.open_ms);
    assert_int_equal(got->amqp.breaker.open_max_ms, want->amqp.breaker.open_max_ms);
    assert_int_equal(got->amqp.stamp, want->amqp.stamp);
}

/* The values docs/configuration.md gives. */
static void test_defaults_documented(void **state)
{
    (void)state;
    hp_config_t d;
    hp_app_config_defaults(&d);
    assert_int_equal(d.nlisten, 1);
    assert_string_equal(d.listen[0], "127.0.0.1:8080");
    assert_int_equal(d.workers, 0);
    assert_string_equal(d.root, "www");
    assert_int_equal(d.limits.max_request_line, 8192);
    assert_int_equal(d.limits.max_header_bytes, 16384);
    assert_int_equal(d.limits.max_headers, 100);
    assert_int_equal(d.limits.max_body, 1048576);
    assert_int_equal(d.timeouts.header_ms, 10000);
    assert_int_equal(d.timeouts.body_ms, 10000);
    assert_int_equal(d.timeouts.keepalive_ms, 5000);
    assert_int_equal(d.timeouts.write_ms, 10000);
    assert_int_equal(d.timeouts.drain_ms, 10000);
    assert_true(d.keepalive.enabled);
    assert_int_equal(d.keepalive.max_requests, 0);
    assert_true(d.tcp.nodelay && d.tcp.reuseport);
    assert_int_equal(d.tcp.backlog, 2048);
    assert_int_equal(d.buffers.read_chunk, 32768);
    assert_int_equal(d.buffers.write_chunk, 16384);
    assert_int_equal(d.buffers.max_chunks, 0);
    assert_int_equal(d.nlocations, 0);
    assert_true(d.endpoints.plaintext && d.endpoints.json && d.endpoints.health &&
                d.endpoints.echo);
    assert_true(d.compression.enabled);
    assert_int_equal(d.compression.level, 6);
    assert_int_equal(d.compression.min_size, 1024);
    assert_false(d.cache.enabled);
    assert_int_equal(d.cache.max_entries, 1000);
    assert_int_equal(d.cache.max_bytes, 64u << 20);
    assert_int_equal(d.cache.ttl_ms, 300000);
    assert_false(d.access_log.enabled);
    assert_string_equal(d.access_log.path, "access.log");
    assert_true(d.metrics.enabled);
    assert_string_equal(d.metrics.path, "/metrics");
    /* AMQP: off without a URL; the heartbeat is the client's default. */
    assert_null(d.amqp.url);
    assert_int_equal(d.amqp.heartbeat_ms, 60000);
    assert_int_equal(d.amqp.heartbeat_ms, HP_AMQP_CONFIG_DEFAULT.heartbeat_s * 1000u);
    assert_int_equal(d.amqp.confirm_window, 1000);
    assert_int_equal(d.amqp.connections, 1);
    assert_int_equal(d.amqp.channels, 1);
    assert_int_equal(d.amqp.publish_queue, 0);
    assert_int_equal(d.amqp.read_coalesce_ms, 0);
    assert_null(d.amqp.publish_route);
    assert_int_equal(d.amqp.timeout_ms, 5000);
    assert_string_equal(d.amqp.content_type, "application/octet-stream");
    assert_null(d.source);
    assert_null(d.mem);
}

/* The shipped file writes every default out: loading it changes nothing. */
static void test_shipped_file_is_the_defaults(void **state)
{
    (void)state;
    hp_config_t d, c;
    char err[256] = "";
    hp_app_config_defaults(&d);
    hp_config_init(&c, &d);
    int rc = hp_config_load(&c, DEFAULT_FILE, err, sizeof err);
    if (rc)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);
    hp_app_config_t a = HP_APP_CONFIG_DEFAULT, b = HP_APP_CONFIG_DEFAULT;
    uint32_t ba, bb;
    hp_app_config_apply(&d, &a, &ba);
    hp_app_config_apply(&c, &b, &bb);
    same_settings(&b, &a);
    assert_string_equal(b.root, a.root);
    assert_int_equal(bb, ba);
    assert_string_equal(c.metrics.path, d.metrics.path);
    assert_string_equal(c.access_log.path, d.access_log.path);
    hp_config_free(&c);
}

/* Through the file's struct and back, the owners' defaults are intact. */
static void test_apply_inverts_defaults(void **state)
{
    (void)state;
    hp_config_t d;
    hp_app_config_defaults(&d);
    const hp_app_config_t want = HP_APP_CONFIG_DEFAULT;
    hp_app_config_t got = HP_APP_CONFIG_DEFAULT;
    memset(&got.http.limits, 0xa5, sizeof got.http.limits);
    memset(&got.http.cache, 0xa5, sizeof got.http.cache);
    got.engine.rbuf_size = got.engine.wbuf_size = 1;
    got.listen = "elsewhere";
    got.amqp.conn.read_coalesce_ms = 77;
    got.amqp.conn.blocked_timeout_ms = 77;
    uint32_t builtins;
    hp_app_config_apply(&d, &got, &builtins);
    assert_int_equal(builtins, HP_APP_BUILTIN_ALL);
    same_settings(&got, &want);
    assert_string_equal(got.root, "www"); /* the binary's root; the app has none */
    assert_null(got.locations);
}

/* Every restart-only setting changed at once: all named, in the table's
 * order, and all kept (a second reload of the same names them again). */
static void test_restart_settings(void **state)
{
    (void)state;
    char err[256], restart[512];
    hp_app_config_t cfg = HP_APP_CONFIG_DEFAULT;
    hp_app_t *app = hp_app_new(&cfg, err, sizeof err);
    assert_non_null(app);
    hp_app_config_t next = cfg;
    assert_int_equal(hp_app_reload(app, &next, restart, sizeof restart, err, sizeof err), 0);
    assert_string_equal(restart, "");

    next.listen = "127.0.0.1:8081";
    next.workers = 2;
    next.backlog = 9;
    next.engine.reuseport = !next.engine.reuseport;
    next.engine.nodelay = !next.engine.nodelay;
    next.engine.rbuf_size *= 2;
    next.engine.wbuf_size *= 2;
    next.engine.max_chunks = 5;
    next.engine.write_timeout_ms = 1;
    next.engine.drain_timeout_ms = 1;
    next.http.limits.max_request_line = 100;
    next.http.limits.max_header_bytes = 100;
    next.http.limits.max_fields = 5;
    next.http.limits.max_body = 5; /* applies: not named */
    next.amqp.conn.heartbeat_s = 7;
    next.amqp.conn.read_coalesce_ms = 2;
    next.amqp.confirm_window = 9;
    next.amqp.connections = 2;
    next.amqp.channels = 3;
    next.amqp.conn.publish_queue_bytes = 4096;
    next.amqp.timeout_ms = 9;
    next.amqp.enabled = true;
    next.amqp.url = "amqp://elsewhere/";
    next.amqp.publish_route = "/p";
    static const char all[] = "listen, workers, tcp.backlog, tcp.reuseport, tcp.nodelay, "
                              "buffers.read_chunk, buffers.write_chunk, buffers.max_chunks, "
                              "timeouts.write, timeouts.drain, limits.max_request_line, "
                              "limits.max_header_bytes, limits.max_headers, amqp.heartbeat, "
                              "amqp.read_coalesce, amqp.confirm_window, amqp.connections, amqp.channels, "
                              "amqp.publish_queue, amqp.timeout, amqp.url, amqp.publish_route";
    assert_int_equal(hp_app_reload(app, &next, restart, sizeof restart, err, sizeof err), 0);
    assert_string_equal(restart, all);
    assert_int_equal(hp_app_reload(app, &next, restart, sizeof restart, err, sizeof err), 0);
    assert_string_equal(restart, all);
    /* Back to what runs: nothing to name. */
    next = cfg;
    next.http.limits.max_body = 5;
    assert_int_equal(hp_app_reload(app, &next, restart, sizeof restart, err, sizeof err), 0);
    assert_string_equal(restart, "");
    /* A short buffer is cut but terminated. */
    next.workers = 2;
    next.backlog = 9;
    assert_int_equal(hp_app_reload(app, &next, restart, 12, err, sizeof err), 0);
    assert_string_equal(restart, "workers, tc");
    hp_app_free(app);
}

/* With AMQP running: its URL compares as written, its route without a
 * trailing '/', and every key of it needs a restart. */
static void test_restart_amqp(void **state)
{
    (void)state;
    char err[256], restart[512];
    hp_app_config_t cfg = HP_APP_CONFIG_DEFAULT;
    cfg.amqp.enabled = true;
    cfg.amqp.url = "amqp://u:p@broker:5673/v";
    cfg.amqp.publish_route = "/publish/";
    hp_app_t *app = hp_app_new(&cfg, err, sizeof err);
    if (!app)
        fail_msg("%s", err);
    hp_app_config_t next = cfg;
    char url[64];
    snprintf(url, sizeof url, "%s", cfg.amqp.url); /* equal, not the same pointer */
    next.amqp.url = url;
    next.amqp.publish_route = "/publish";
    assert_int_equal(hp_app_reload(app, &next, restart, sizeof restart, err, sizeof err), 0);
    assert_string_equal(restart, "");
    next.amqp.url = "amqp://u:p@broker:5674/v";
    next.amqp.content_type = "text/plain";
    assert_int_equal(hp_app_reload(app, &next, restart, sizeof restart, err, sizeof err), 0);
    assert_string_equal(restart, "amqp.url, amqp.content_type");
    next = cfg;
    next.amqp.enabled = false;
    next.amqp.url = NULL;
    next.amqp.publish_route = NULL;
    assert_int_equal(hp_app_reload(app, &next, restart, sizeof restart, err, sizeof err), 0);
    assert_string_equal(restart, "amqp.url, amqp.publish_route");
    hp_app_free(app);
}

/* hp_app_new refuses what app_config_check refuses, with the key. */
static void test_new_checks_amqp(void **state)
{
    (void)state;
    static const struct {
        const char *url, *route, *ctype;
        uint32_t window;
        const char *want;
    } cases[] = {
        {"http://x/", NULL, "a/b", 1, "amqp.url: "},
        {"amqp://x/", "/p", "a/b", 0, "amqp.confirm_window: expected a whole number from 1 to "
                                      "65535"},
        {"amqp://x/", "/p", "a/b", 65536, "amqp.confirm_window: "},
        {"amqp://x/", "p", "a/b", 1, "amqp.publish_route: expected a URL path starting with '/'"},
        {"amqp://x/", "/p/{x}", "a/b", 1, "amqp.publish_route: "},
        {"amqp://x/", "/p", "", 1, "amqp.content_type: "},
        {"amqp://x/", "/p", "a\nb", 1, "amqp.content_type: "},
        {NULL, "/p", "a/b", 1, "amqp.publish_route: a route, but no AMQP connection"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[512] = "";
        hp_app_config_t cfg = HP_APP_CONFIG_DEFAULT;
        cfg.amqp.enabled = cases[i].url != NULL;
        cfg.amqp.url = cases[i].url;
        cfg.amqp.publish_route = cases[i].route;
        cfg.amqp.content_type = cases[i].ctype;
        cfg.amqp.confirm_window = cases[i].window;
        hp_app_t *app = hp_app_new(&cfg, err, sizeof err);
        if (app || strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
            fail_msg("case %zu: got '%s', want '%s...'", i, err, cases[i].want);
        assert_null(strchr(err, '\n'));
    }
    /* Connections and channels per worker: each 1..64, and their windows
     * within what a worker's slot table may hold (2^18). */
    static const struct {
        uint32_t conns, chans, window;
        const char *want; /* NULL: taken */
    } links[] = {
        {0, 1, 1, "amqp.connections: expected a whole number from 1 to 64"},
        {65, 1, 1, "amqp.connections: expected a whole number from 1 to 64"},
        {1, 0, 1, "amqp.channels: expected a whole number from 1 to 64"},
        {1, 65, 1, "amqp.channels: expected a whole number from 1 to 64"},
        {64, 64, 64, NULL},
        {64, 64, 65, "amqp.channels: amqp.connections x amqp.channels x amqp.confirm_window "
                     "is 266240, more than the 262144 "},
        {64, 1, 4097, "amqp.connections: amqp.connections x amqp.channels x "},
    };
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        char err[512] = "";
        hp_app_config_t cfg = HP_APP_CONFIG_DEFAULT;
        cfg.amqp.enabled = true;
        cfg.amqp.url = "amqp://x/";
        cfg.amqp.connections = links[i].conns;
        cfg.amqp.channels = links[i].chans;
        cfg.amqp.confirm_window = links[i].window;
        hp_app_t *app = hp_app_new(&cfg, err, sizeof err);
        if (!links[i].want ? !app : app || strncmp(err, links[i].want, strlen(links[i].want)))
            fail_msg("links case %zu: got '%s', want '%s...'", i, err,
                     links[i].want ? links[i].want : "(taken)");
        hp_app_free(app);
    }
    /* The breaker's open times: the cap below the first is refused, with
     * a breaker only. */
    char err[512];
    hp_app_config_t cfg = HP_APP_CONFIG_DEFAULT;
    cfg.amqp.enabled = true;
    cfg.amqp.url = "amqp://x/";
    cfg.amqp.breaker.open_ms = 2000;
    cfg.amqp.breaker.open_max_ms = 1000;
    hp_app_t *app = hp_app_new(&cfg, err, sizeof err);
    assert_non_null(app);
    hp_app_free(app);
    cfg.amqp.breaker.failures = 3;
    assert_null(hp_app_new(&cfg, err, sizeof err));
    assert_string_equal(err, "amqp.breaker_open_max: expected at least amqp.breaker_open (the "
                             "first open time)");
    /* A good one registers the route: a second registration of it fails. */
    cfg = HP_APP_CONFIG_DEFAULT;
    cfg.amqp.enabled = true;
    cfg.amqp.url = "amqp://guest:guest@127.0.0.1:5672/%2F";
    cfg.amqp.publish_route = "/";
    app = hp_app_new(&cfg, err, sizeof err);
    if (!app)
        fail_msg("%s", err);
    assert_int_equal(hp_app_route(app, HP_ROUTER_POST, "/{exchange}/{routing_key:*}",
                                  NULL, NULL, err, sizeof err),
                     -EEXIST);
    /* The built-in endpoints sit beside it. */
    assert_int_equal(hp_app_builtin_routes(app, HP_APP_BUILTIN_ALL, NULL, err, sizeof err), 0);
    hp_app_free(app);
}

/* Loads `yaml` (as "c.yaml") over the app's defaults and checks it;
 * returns the check's result with its message in err. */
static int check(const char *yaml, char *err, size_t errlen)
{
    hp_config_t d, c;
    hp_app_config_defaults(&d);
    hp_config_init(&c, &d);
    char lerr[256];
    int rc = hp_config_load_string(&c, yaml, strlen(yaml), "c.yaml", lerr, sizeof lerr);
    if (rc < 0)
        fail_msg("load: %s", lerr);
    rc = hp_app_config_check(&c, err, errlen);
    hp_config_free(&c);
    return rc;
}

static void test_check(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_app_config_XXXXXX", path[128], yaml[512], want[512], err[512];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/file", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);

    snprintf(yaml, sizeof yaml, "root: %s\naccess_log: {enabled: true, path: %s/a.log}\n"
             "locations: [{path: /x, root: %s}]\nmetrics: {path: /stats}\n", dir, dir, dir);
    assert_int_equal(check(yaml, err, sizeof err), 0);
    assert_string_equal(err, "");
    snprintf(path, sizeof path, "%s/a.log", dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0); /* opened as start-up opens it */
    unlink(path);

    static const struct {
        const char *yaml, *want; /* %1$s: the directory */
    } cases[] = {
        {"root: %1$s/none\n", "c.yaml:1:7: root: cannot open '%1$s/none': No such file or directory"},
        {"root: %1$s/file\n", "c.yaml:1:7: root: cannot open '%1$s/file': Not a directory"},
        {"root: %1$s\nlocations:\n  - path: /a\n  - {path: /b, root: %1$s/none}\n",
         "c.yaml:4:22: locations[1].root: cannot open '%1$s/none': No such file or directory"},
        {"root: %1$s\naccess_log:\n  enabled: true\n  path: %1$s/none/a.log\n",
         "c.yaml:4:9: access_log.path: cannot open '%1$s/none/a.log': No such file or directory"},
        {"root: %1$s\naccess_log: {enabled: true}\nlisten: [':1', ':2']\n",
         "c.yaml:3:9: listen: one address per process for now, got 2"},
        {"root: %1$s\nlisten: 127.0.0.1\n", "c.yaml:2:9: listen: expected an address such as "
                                          "127.0.0.1:8080, [::1]:8080 or :8080, got '127.0.0.1'"},
        {"root: %1$s\nlisten:\n  - :80\n  - 1.2.3.4:0\n",
         "c.yaml:4:5: listen[1]: expected an address such as 127.0.0.1:8080, [::1]:8080 or "
         ":8080, got '1.2.3.4:0'"},
        {"root: %1$s\nlisten: ['[::1:80']\n", "c.yaml:2:10: listen[0]: expected an address "
                                               "such as 127.0.0.1:8080, [::1]:8080 or :8080, "
                                               "got '[::1:80'"},
        {"root: %1$s\nmetrics: {path: /json}\n",
         "c.yaml:2:17: metrics.path: /json: GET is already registered"},
        {"root: %1$s/none\nmetrics: {path: /json}\n", /* the first failure wins */
         "c.yaml:1:7: root: cannot open '%1$s/none': No such file or directory"},
        /* AMQP: the URL's syntax is the client's, the route's the router's. */
        {"root: %1$s\namqp:\n  url: http://broker/\n",
         "c.yaml:3:8: amqp.url: not an amqp:// URI (expected amqp://user:password@host:port/"
         "vhost, several hosts as host1:port,host2:port, the vhost percent-encoded: %%2F for /)"},
        {"root: %1$s\namqp:\n  url: amqp://broker:0/\n  publish_route: /p\n",
         "c.yaml:3:8: amqp.url: a bad port (expected "},
        {"root: %1$s\namqp:\n  url: amqp://broker/\n  publish_route: /p/{x}\n",
         "c.yaml:4:18: amqp.publish_route: expected a URL path starting with '/' without '{', "
         "'}', '?', '#' or spaces, got '/p/{x}'"},
        {"root: %1$s\namqp: {publish_route: /p}\n",
         "c.yaml:2:23: amqp.publish_route: a route, but no AMQP connection to publish on: set "
         "amqp.url too"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(yaml, sizeof yaml, cases[i].yaml, dir);
        snprintf(want, sizeof want, cases[i].want, dir);
        memset(err, 'x', sizeof err);
        assert_int_equal(check(yaml, err, sizeof err), -EINVAL);
        /* A message ending in a space is checked up to there (the rest
         * is another module's wording). */
        size_t wl = strlen(want);
        if (wl > 1 && want[wl - 1] == ' ')
            assert_memory_equal(err, want, wl);
        else
            assert_string_equal(err, want);
    }
    /* A good AMQP section passes (nothing is dialled). */
    snprintf(yaml, sizeof yaml, "root: %s\namqp:\n  url: amqp://guest:guest@127.0.0.1:5672/%%2F\n"
             "  publish_route: /publish\n  heartbeat: 30s\n", dir);
    assert_int_equal(check(yaml, err, sizeof err), 0);
    /* The metrics path only matters when the endpoint is on. */
    snprintf(yaml, sizeof yaml, "root: %s\nmetrics: {enabled: false, path: /json}\n", dir);
    assert_int_equal(check(yaml, err, sizeof err), 0);

    /* A value from a flag is named by the flag. */
    hp_config_t d, c;
    hp_app_config_defaults(&d);
    hp_config_init(&c, &d);
    const char *listen[] = {"127.0.0.1:0"};
    c.listen = listen;
    assert_int_equal(hp_config_override(&c, "listen", "--listen"), 0);
    assert_int_equal(hp_app_config_check(&c, err, sizeof err), -EINVAL);
    assert_string_equal(err, "--listen: expected an address such as 127.0.0.1:8080, "
                             "[::1]:8080 or :8080, got '127.0.0.1:0'");
    hp_config_free(&c);
    snprintf(path, sizeof path, "%s/file", dir);
    unlink(path);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_documented),
        cmocka_unit_test(test_shipped_file_is_the_defaults),
        cmocka_unit_test(test_apply_inverts_defaults),
        cmocka_unit_test(test_restart_settings),
        cmocka_unit_test(test_restart_amqp),
        cmocka_unit_test(test_new_checks_amqp),
        cmocka_unit_test(test_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
