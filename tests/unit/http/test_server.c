/*
 * test_server.c - unit tests for the HTTP request loop (src/http/server.c)
 * and the built-in endpoints (src/http/builtin.c): each built-in's status,
 * headers and body, HEAD without a body, keep-alive and pipelined
 * requests answered in order with one write, /metrics counting what was
 * served, framing errors answered and closed, Connection: close and
 * HTTP/1.0, the keep-alive and header timeouts, no allocation per request
 * once warm, no buffer held by an idle connection, and out-of-memory on
 * the request path (a 503, the server going on).
 *
 * One real worker runs HTTP on the test's thread (http_harness.h over the
 * net harness) and loopback clients send raw requests. The built-ins are
 * registered by hp_app_builtin_routes itself: this file defines
 * hp_app_route, which builds the routes here as app.c would (the router's
 * udata is the registration's index), so the archive's app.o is never
 * linked in. Should anything else ever need app.o, the link fails with a
 * duplicate symbol rather than testing something else.
 */
#include "hotpath/alloc.h"
#include "hotpath/app.h"
#include "hotpath/http_server.h"
#include "hotpath/log.h"
#include "metrics/prom_int.h"
#include "hotpath/router.h"
#include "core/sys_int.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http_harness.h"

enum { MAX_REGS = 8 };

static struct {
    hp_http_routes_t routes;
    hp_http_reg_t regs[MAX_REGS];
    const char *patterns[MAX_REGS];
    int writevs; /* writev calls while counting */
} T;

/* The link seam: hp_app_builtin_routes registers through this. */
int hp_app_route(hp_app_t *app, uint32_t methods, const char *pattern, hp_handler_fn fn,
                 void *udata, char *err, size_t errlen)
{
    (void)app;
    hp_http_routes_t *rt = &T.routes;
    assert_true(rt->nregs < MAX_REGS);
    uint32_t pid = 0;
    while (pid < rt->npatterns && strcmp(rt->patterns[pid], pattern) != 0)
        pid++;
    int r = hp_router_add(rt->router, methods, pattern, (void *)fn, (void *)(uintptr_t)rt->nregs,
                          err, errlen);
    if (r < 0)
        return r;
    if (pid == rt->npatterns)
        T.patterns[rt->npatterns++] = pattern; /* builtin.c's literals */
    T.regs[rt->nregs++] = (hp_http_reg_t){fn, udata, pid, false, 0};
    return 0;
}

static ssize_t counting_writev(int fd, const struct iovec *iov, int iovcnt)
{
    T.writevs++;
    return hp_sys_real.writev(fd, iov, iovcnt);
}

/* The real table with writev counted (filled in by main). */
static hp_sys_ops_t ops;

static int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof T);
    hh_reset();
    T.routes.router = hp_router_new();
    assert_non_null(T.routes.router);
    T.routes.regs = T.regs;
    T.routes.patterns = T.patterns;
    char err[128];
    assert_int_equal(hp_app_builtin_routes(NULL, HP_APP_BUILTIN_ALL, NULL, err, sizeof err), 0);
    assert_int_equal(T.routes.nregs, 5);
    HH.hcfg.routes = &T.routes;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hp_sys_set_ops(NULL);
    hh_teardown();
    hp_router_free(T.routes.router);
    return 0;
}

static void assert_body(const resp_t *r, const char *want)
{
    if (r->body_len != strlen(want) || memcmp(r->body, want, r->body_len) != 0)
        fail_msg("body '%s', want '%s'", r->body, want);
}

/* ---- the built-ins ---- */

static void test_builtins(void **state)
{
    (void)state;
    hh_start();
    cli_t *k = cli_open(0);
    resp_t r = {0};

    request(k, "GET /plaintext HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr(&r, "Content-Type"), "text/plain");
    assert_string_equal(hdr(&r, "Content-Length"), "13");
    assert_string_equal(hdr(&r, "Server"), "hotpath");
    assert_true(strlen(hdr(&r, "Date")) == 29 && strstr(hdr(&r, "Date"), " GMT"));
    assert_null(hdr(&r, "Connection")); /* HTTP/1.1 keeps alive by default */
    assert_body(&r, "Hello, World!");

    request(k, "GET /json HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr(&r, "Content-Type"), "application/json");
    assert_body(&r, "{\"message\":\"Hello, World!\"}");

    request(k, "GET /health HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr(&r, "Content-Type"), "application/json");
    assert_body(&r, "{\"status\":\"ok\"}");

    request(k, "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\nping\r\nxyz", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr(&r, "Content-Type"), "application/octet-stream");
    assert_body(&r, "ping\r\nxyz");
    request(k, "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
               "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", &r);
    assert_body(&r, "abcde");
    request(k, "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr(&r, "Content-Length"), "0");

    /* Wrong method: 405 naming the one allowed; unknown path: 404. */
    request(k, "GET /echo HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(hdr(&r, "Allow"), "POST");
    request(k, "POST /plaintext HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi", &r);
    assert_int_equal(r.status, 405);
    request(k, "GET /nowhere HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    assert_int_equal(r.status, 404);
    assert_body(&r, "404 Not Found\n");

    request(k, "GET /metrics HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(hdr(&r, "Content-Type"), HP_PROM_CONTENT_TYPE);
    assert_non_null(strstr(r.body, "# TYPE hotpath_requests_total counter\n"));

    /* Still the one connection. */
    assert_int_equal(hp_worker_stat(&H.w.stats.accepted), 1);
    resp_free(&r);
}

/* HEAD: the GET handler's headers, the length of its body, no body. */
static void test_head_has_no_body(void **state)
{
    (void)state;
    hh_start();
    cli_t *k = cli_open(0);
    resp_t r = {0};
    static const char *const paths[] = {"/plaintext", "/json", "/health", "/metrics"};
    for (int i = 0; i < 4; i++) {
        char req[128], get[128];
        snprintf(req, sizeof req, "HEAD %s HTTP/1.1\r\nHost: h\r\n\r\n", paths[i]);
        request(k, req, &r);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.body_len, 0);
        char len[32];
        snprintf(len, sizeof len, "%s", hdr(&r, "Content-Length"));
        if (i < 3) { /* /metrics changes from one request to the next */
            snprintf(get, sizeof get, "GET %s HTTP/1.1\r\nHost: h\r\n\r\n", paths[i]);
            request(k, get, &r);
            assert_string_equal(hdr(&r, "Content-Length"), len);
            assert_int_equal(r.body_len, strtoul(len, NULL, 10));
        }
    }
    /* A 404 to HEAD has no body either. */
    request(k, "HEAD /nowhere HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(hdr(&r, "Content-Length"), "14");
    pump_for(20);
    assert_int_equal(k->rxlen, 0); /* nothing after the heads */
    resp_free(&r);
}

/* ---- keep-alive and pipelining ---- */

/* Five requests in one packet: five responses in request order, all in
 * one writev. */
static void test_pipelined_in_order_one_write(void **state)
{
    (void)state;
    hh_start();
    cli_t *k = cli_open(0);
    hp_sys_set_ops(&ops);
    T.writevs = 0;
    cli_sends(k, "GET /plaintext HTTP/1.1\r\nHost: h\r\n\r\n"
                 "GET /json HTTP/1.1\r\nHost: h\r\n\r\n"
                 "HEAD /health HTTP/1.1\r\nHost: h\r\n\r\n"
                 "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
                 "GET /health HTTP/1.1\r\nHost: h\r\n\r\n");
    resp_t r = {0};
    resp_next(k, false, &r);
    assert_body(&r, "Hello, World!");
    resp_next(k, false, &r);
    assert_body(&r, "{\"message\":\"Hello, World!\"}");
    resp_next(k, true, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    resp_next(k, false, &r);
    assert_body(&r, "abc");
    resp_next(k, false, &r);
    assert_body(&r, "{\"status\":\"ok\"}");
    assert_int_equal(k->rxlen, 0);
    assert_int_equal(T.writevs, 1);
    resp_free(&r);
}

/* Many requests one after the other on one connection, then many
 * pipelined: every one answered, one connection accepted. */
static void test_keepalive_many(void **state)
{
    (void)state;
    hh_start();
    cli_t *k = cli_open(0);
    resp_t r = {0};
    for (int i = 0; i < 100; i++) {
        request(k, "GET /plaintext HTTP/1.1\r\nHost: h\r\n\r\n", &r);
        assert_int_equal(r.status, 200);
    }
    char batch[64 * 40];
    size_t len = 0;
    for (int i = 0; i < 64; i++)
        len += (size_t)snprintf(batch + len, sizeof batch - len,
                                "GET /health HTTP/1.1\r\nHost: %d\r\n\r\n", i);
    cli_send(k, batch, len);
    for (int i = 0; i < 64; i++) {
        resp_next(k, false, &r);
        assert_body(&r, "{\"status\":\"ok\"}");
    }
    assert_false(k->eof);
    assert_int_equal(hp_worker_stat(&H.w.stats.accepted), 1);
    assert_int_equal(hh_worker()->stats.requests, 164);
    assert_int_equal(hh_worker()->stats.responses[2], 164);
    resp_free(&r);
}

/* "Connection: close" and HTTP/1.0 without keep-alive close after the
 * response; HTTP/1.0 asking for keep-alive gets it. */
static void test_connection_close(void **state)
{
    (void)state;
    hh_start();
    resp_t r = {0};
    cli_t *k = cli_open(0);
    cli_sends(k, "GET /plaintext HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
                 "GET /json HTTP/1.1\r\nHost: h\r\n\r\n");
    resp_next(k, false, &r);
    assert_string_equal(hdr(&r, "Connection"), "close");
    assert_true(closed_by_server(k));
    assert_int_equal(k->rxlen, 0); /* the request behind it is not answered */

    k = cli_open(0);
    request(k, "GET /plaintext HTTP/1.0\r\n\r\n", &r);
    assert_string_equal(hdr(&r, "Connection"), "close");
    assert_true(closed_by_server(k));

    k = cli_open(0);
    request(k, "GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r);
    assert_string_equal(hdr(&r, "Connection"), "keep-alive");
    request(k, "GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_false(k->eof);
    resp_free(&r);
}

/* ---- /metrics ---- */

static void assert_metric(const char *text, const char *series, uint64_t want)
{
    char line[256];
    snprintf(line, sizeof line, "\n%s %llu\n", series, (unsigned long long)want);
    if (!strstr(text, line))
        fail_msg("no '%s %llu' in:\n%s", series, (unsigned long long)want, text);
}

static void test_metrics_counts(void **state)
{
    (void)state;
    hh_start();
    resp_t r = {0};
    cli_t *a = cli_open(0), *b = cli_open(0);
    for (int i = 0; i < 7; i++)
        request(i % 2 ? a : b, "GET /plaintext HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    request(a, "HEAD /json HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    request(a, "GET /nowhere HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    request(a, "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello", &r);
    cli_t *bad = cli_open(0);
    request(bad, "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            &r);
    assert_int_equal(r.status, 400);
    assert_true(closed_by_server(bad));
    PUMP_UNTIL(H.w.nconns == 2, 1000);

    request(b, "GET /metrics HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    const char *m = r.body;
    /* Requests parsed: 10 answered, the /metrics one; the rejected one
     * never got that far. */
    assert_metric(m, "hotpath_requests_total", 11);
    assert_metric(m, "hotpath_responses_total{class=\"2xx\"}", 9);
    assert_metric(m, "hotpath_responses_total{class=\"4xx\"}", 2);
    assert_metric(m, "hotpath_responses_total{class=\"5xx\"}", 0);
    assert_metric(m, "hotpath_rejected_total{reason=\"bad_request\"}", 1);
    assert_metric(m, "hotpath_rejected_total{reason=\"timeout\"}", 0);
    assert_metric(m, "hotpath_connections_accepted_total", 3);
    assert_metric(m, "hotpath_connections_closed_total", 1);
    assert_metric(m, "hotpath_connections_open", 2);
    assert_metric(m, "hotpath_worker_connections_accepted_total{worker=\"0\"}", 3);
    assert_metric(m, "hotpath_route_responses_total{route=\"/plaintext\",method=\"GET\","
                     "class=\"2xx\"}", 7);
    assert_metric(m, "hotpath_route_responses_total{route=\"/json\",method=\"HEAD\","
                     "class=\"2xx\"}", 1);
    assert_metric(m, "hotpath_route_responses_total{route=\"/echo\",method=\"POST\","
                     "class=\"2xx\"}", 1);
    assert_metric(m, "hotpath_route_request_duration_seconds_count{route=\"/plaintext\"}", 7);
    assert_non_null(strstr(m, "\n# TYPE hotpath_pool_chunks_in_use gauge\n"));
    assert_null(strstr(m, "route=\"/health\",method")); /* no series for what never ran */
    resp_free(&r);
}

/* ---- errors ---- */

static void test_framing_errors_close(void **state)
{
    (void)state;
    hh_start();
    static const struct {
        const char *req;
        int status;
        int rej;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400,
         HP_HTTP_REJ_400},
        {"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n"
         "\r\nabc", 400, HP_HTTP_REJ_400},
        {"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n  folded\r\n\r\n", 400, HP_HTTP_REJ_400},
        {"GET / HTTP/1.1\r\nHost: h\rX: 1\r\n\r\n", 400, HP_HTTP_REJ_400},
        {"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505, HP_HTTP_REJ_505},
        {"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
         HP_HTTP_REJ_501},
        {"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400,
         HP_HTTP_REJ_400},
        {"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999\r\n\r\n", 413,
         HP_HTTP_REJ_413},
    };
    resp_t r = {0};
    uint64_t rejected[HP_HTTP_REJ_COUNT] = {0};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cli_t *k = cli_open(0);
        /* A good request after the bad one is never answered. */
        char req[512];
        snprintf(req, sizeof req, "%sGET /plaintext HTTP/1.1\r\nHost: h\r\n\r\n", cases[i].req);
        cli_sends(k, req);
        resp_next(k, false, &r);
        if (r.status != cases[i].status)
            fail_msg("case %zu: status %d, want %d", i, r.status, cases[i].status);
        assert_string_equal(hdr(&r, "Connection"), "close");
        char body[64];
        snprintf(body, sizeof body, "%d ", cases[i].status);
        assert_memory_equal(r.body, body, strlen(body));
        assert_true(closed_by_server(k));
        assert_int_equal(k->rxlen, 0);
        rejected[cases[i].rej]++;
        for (int j = 0; j < HP_HTTP_REJ_COUNT; j++)
            assert_int_equal(hh_worker()->stats.rejected[j], rejected[j]);
    }
    /* A request line past its limit is 414, a head past its limit 431. */
    enum { BIG = 20000 };
    char *longreq = malloc(BIG + 64);
    assert_non_null(longreq);
    for (int i = 0; i < 2; i++) {
        cli_t *k = cli_open(0);
        int n = snprintf(longreq, 64, i ? "GET / HTTP/1.1\r\nX: " : "GET /");
        memset(longreq + n, 'a', BIG);
        snprintf(longreq + n + BIG, 64, i ? "\r\n\r\n" : " HTTP/1.1\r\n\r\n");
        request(k, longreq, &r);
        assert_int_equal(r.status, i ? 431 : 414);
        assert_true(closed_by_server(k));
    }
    free(longreq);
    assert_int_equal(hh_worker()->stats.rejected[HP_HTTP_REJ_414], 1);
    assert_int_equal(hh_worker()->stats.rejected[HP_HTTP_REJ_431], 1);
    assert_int_equal(hh_worker()->stats.responses[2], 0);
    resp_free(&r);
}

/* ---- timeouts ---- */

static void test_keepalive_timeout(void **state)
{
    (void)state;
    HH.hcfg.keepalive_timeout_ms = 200;
    hh_start();
    resp_t r = {0};
    cli_t *k = cli_open(0);
    request(k, "GET /plaintext HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    cli_t *silent = cli_open(0); /* never sends anything */
    /* The worker's clock stands still until the test moves it: one
     * millisecond short of the timeout, both stay. */
    tick(199);
    pump_for(5);
    assert_false(k->eof);
    assert_false(silent->eof);
    /* Idle after a response: closed quietly, no 408; the silent one goes
     * the same way. */
    tick(1);
    assert_true(closed_by_server(k));
    assert_int_equal(k->rxlen, 0);
    assert_true(closed_by_server(silent));
    assert_int_equal(silent->rxlen, 0);
    PUMP_UNTIL(H.w.nconns == 0, 1000);
    assert_int_equal(hp_worker_stat(&H.w.stats.timeouts), 2);
    assert_int_equal(hh_worker()->stats.rejected[HP_HTTP_REJ_408], 0);
    resp_free(&r);
}

/* A head that stops arriving is answered 408 and closed, even while
 * bytes keep trickling in: the timeout counts from its first byte. */
static void test_header_timeout(void **state)
{
    (void)state;
    HH.hcfg.header_timeout_ms = 100;
    hh_start();
    cli_t *k = cli_open(0);
    static const char part[] = "GET /plaintext HTTP/1.1\r\nHost: h\r\nX-Slow: ";
    cli_sends(k, part);
    PUMP_UNTIL(hp_pool_in_use(&H.w.rpool) == 1, 1000); /* the first bytes are in */
    for (int i = 0; i < 9; i++) {
        cli_sends(k, "a"); /* slowloris: a byte every 10 ms */
        PUMP_UNTIL(H.w.stats.bytes_in == sizeof part - 1 + (uint64_t)i + 1, 1000);
        tick(10);
        assert_int_equal(k->rxlen, 0);
    }
    tick(10); /* 100 ms since the first byte */
    resp_t r = {0};
    resp_next(k, false, &r);
    assert_int_equal(r.status, 408);
    assert_true(closed_by_server(k));
    assert_int_equal(hh_worker()->stats.rejected[HP_HTTP_REJ_408], 1);
    resp_free(&r);
}

/* ---- memory ---- */

/* One round of every kind of request the built-ins answer. */
static void round_trip(cli_t *k, resp_t *r)
{
    request(k, "GET /plaintext HTTP/1.1\r\nHost: h\r\n\r\n", r);
    request(k, "GET /json HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n", r);
    request(k, "HEAD /health HTTP/1.1\r\nHost: h\r\n\r\n", r);
    request(k, "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 600\r\n\r\n"
               "0123456789012345678901234567890123456789012345678901234567890123456789"
               "0123456789012345678901234567890123456789012345678901234567890123456789"
               "0123456789012345678901234567890123456789012345678901234567890123456789"
               "0123456789012345678901234567890123456789012345678901234567890123456789"
               "0123456789012345678901234567890123456789012345678901234567890123456789"
               "0123456789012345678901234567890123456789012345678901234567890123456789"
               "0123456789012345678901234567890123456789012345678901234567890123456789"
               "0123456789012345678901234567890123456789012345678901234567890123456789"
               "0123456789012345678901234567890123456789", r);
    assert_int_equal(r->body_len, 600);
    request(k, "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
               "4\r\nabcd\r\n0\r\n\r\n", r);
    request(k, "GET /nowhere HTTP/1.1\r\nHost: h\r\n\r\n", r);
    request(k, "GET /echo HTTP/1.1\r\nHost: h\r\n\r\n", r);
    request(k, "GET /metrics HTTP/1.1\r\nHost: h\r\n\r\n", r);
    cli_sends(k, "GET /plaintext HTTP/1.1\r\nHost: h\r\n\r\nGET /json HTTP/1.1\r\nHost: h\r\n\r\n");
    resp_next(k, false, r);
    resp_next(k, false, r);
}

static void test_no_allocation_per_request(void **state)
{
    (void)state;
    hh_start();
    resp_t r = {0};
    cli_t *k = cli_open(0);
    for (int i = 0; i < 5; i++) /* warm-up: pools, the file of chunks, the Date */
        round_trip(k, &r);
    uint64_t a0 = hp_alloc_count();
    for (int i = 0; i < 50; i++)
        round_trip(k, &r);
    assert_int_equal(hp_alloc_count(), a0);
    /* New connections to warm pools allocate nothing either. */
    for (int i = 0; i < 5; i++) {
        cli_t *c = cli_open(0);
        round_trip(c, &r);
        cli_close(c);
        PUMP_UNTIL(H.w.nconns == 1, 1000);
    }
    assert_int_equal(hp_alloc_count(), a0);
    resp_free(&r);
}

/* Idle keep-alive connections hold neither a read nor a write chunk,
 * whatever they did before. */
static void test_idle_holds_no_chunks(void **state)
{
    (void)state;
    hh_start();
    resp_t r = {0};
    enum { N = 10 };
    cli_t *k[N];
    for (int i = 0; i < N; i++) {
        k[i] = cli_open(0);
        round_trip(k[i], &r);
    }
    step(0);
    assert_int_equal(H.w.nconns, N);
    for (int i = 0; i < N; i++) {
        hp_conn_t *c = conn_of(k[i]);
        assert_non_null(c);
        assert_null(c->rbuf);
        assert_null(c->out);
    }
    assert_int_equal(hp_pool_in_use(&H.w.rpool), 0);
    assert_int_equal(hp_pool_in_use(&H.w.wpool), 0);
    resp_free(&r);
}

/* A body too large for a read chunk needs the heap: without it, 503 and
 * close; the response's copy failing is a 503 that keeps the
 * connection. Either way the next request is served. */
static void test_oom_on_request_path(void **state)
{
    (void)state;
    hh_start();
    resp_t r = {0};
    enum { BIG = 100000 };
    char *req = malloc(BIG + 128);
    assert_non_null(req);
    int hl = snprintf(req, 128, "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n",
                      BIG);
    memset(req + hl, 'q', BIG);

    /* Cold pools and no memory at all: not even the output chunk for a
     * 503 can be had, so the connection is closed. */
    cli_t *k = cli_open(0);
    hp_alloc_fail_after(1, 1); /* everything fails */
    cli_send(k, req, (size_t)hl + BIG);
    assert_true(closed_by_server(k));
    hp_alloc_fail_after(0, 0);
    assert_int_equal(k->rxlen, 0);
    assert_int_equal(hp_worker_stat(&H.w.stats.oom_closed), 1);

    /* Warm pools: the body's buffer fails, and the answer is a 503. */
    k = cli_open(0);
    request(k, "GET /plaintext HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    hp_alloc_fail_after(1, 1);
    cli_send(k, req, (size_t)hl + BIG);
    resp_next(k, false, &r);
    hp_alloc_fail_after(0, 0);
    assert_int_equal(r.status, 503);
    assert_string_equal(hdr(&r, "Connection"), "close");
    assert_true(closed_by_server(k));
    assert_int_equal(hp_worker_stat(&H.w.stats.oom_closed), 2);

    k = cli_open(0);
    hp_alloc_fail_after(2, 0); /* the request body is had, the response's copy not */
    cli_send(k, req, (size_t)hl + BIG);
    resp_next(k, false, &r);
    hp_alloc_fail_after(0, 0);
    assert_int_equal(r.status, 503);
    assert_null(hdr(&r, "Connection"));
    request(k, "GET /plaintext HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    cli_send(k, req, (size_t)hl + BIG);
    resp_next(k, false, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, BIG);
    assert_true(r.body[0] == 'q' && r.body[BIG - 1] == 'q');
    free(req);
    resp_free(&r);
}

/* The 503 for a request body that cannot get memory is counted as what
 * it is (reason="no_memory"), not as a bad request (it was, when every
 * status rejection_index() did not know fell back to 400). */
static void test_oom_503_is_not_a_bad_request(void **state)
{
    (void)state;
    hh_start();
    resp_t r = {0};
    enum { BIG = 100000 };
    char *req = malloc(BIG + 128);
    assert_non_null(req);
    int hl = snprintf(req, 128, "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n",
                      BIG);
    memset(req + hl, 'q', BIG);
    cli_t *k = cli_open(0);
    request(k, "GET /plaintext HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    hp_alloc_fail_after(1, 1);
    cli_send(k, req, (size_t)hl + BIG);
    resp_next(k, false, &r);
    hp_alloc_fail_after(0, 0);
    free(req);
    assert_int_equal(r.status, 503);
    resp_free(&r);
    assert_int_equal(hh_worker()->stats.rejected[HP_HTTP_REJ_400], 0);
    assert_int_equal(hh_worker()->stats.rejected[HP_HTTP_REJ_503], 1);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    hp_log_set_level(HP_LOG_ERROR);
    hp_http_parser_init();
    ops = hp_sys_real;
    ops.writev = counting_writev;
#define T_(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T_(test_builtins),
        T_(test_head_has_no_body),
        T_(test_pipelined_in_order_one_write),
        T_(test_keepalive_many),
        T_(test_connection_close),
        T_(test_metrics_counts),
        T_(test_framing_errors_close),
        T_(test_keepalive_timeout),
        T_(test_header_timeout),
        T_(test_no_allocation_per_request),
        T_(test_idle_holds_no_chunks),
        T_(test_oom_on_request_path),
        T_(test_oom_503_is_not_a_bad_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
