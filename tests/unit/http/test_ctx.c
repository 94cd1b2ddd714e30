/*
 * test_ctx.c - unit tests for the handler context (src/http/ctx.c): the
 * request accessors, query decoding, response headers and the body paths.
 *
 * Everything runs in-process on the test's thread: one real worker with the
 * HTTP protocol and a router (tests/unit/net/net_harness.h), and loopback
 * clients that send real requests. The routes' handler returns HP_PENDING
 * and leaves its context in T.ctx, so each test calls the accessors and
 * response setters directly on a context that the server really built,
 * then hp_ctx_finish()es it and checks the bytes the client received.
 * The harness' teardown checks that every pool chunk came back; ASan's leak
 * check covers heap bodies.
 */
#include "hotpath/alloc.h"
#include "hotpath/ctx.h"
#include "hotpath/http_server.h"
#include "hotpath/router.h"
#include "http/server_int.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../net/net_harness.h"

static struct {
    hp_http_config_t hcfg;
    hp_http_routes_t routes;
    hp_proto_t proto;
    hp_ctx_t *ctx;   /* the context of the pending request, NULL when none */
    int handled;     /* handler calls */
    int done_calls;  /* ref_done calls */
    int abort_calls;
    hp_ctx_t *aborted; /* what on_abort was called with */
} T;

static int stash(hp_ctx_t *ctx, void *udata)
{
    (void)udata;
    T.ctx = ctx;
    T.handled++;
    return HP_PENDING;
}

static void ref_done(void *arg)
{
    assert_ptr_equal(arg, &T);
    T.done_calls++;
}

static void on_abort(hp_ctx_t *ctx, void *arg)
{
    assert_ptr_equal(arg, &T);
    T.aborted = ctx;
    T.abort_calls++;
}

static int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof T);
    h_reset();
    T.hcfg = HP_HTTP_CONFIG_DEFAULT;
    T.routes.router = hp_router_new();
    assert_non_null(T.routes.router);
    static const char *get_routes[] = {"/", "/q", "/users/{id:int}/files/{name}",
                                       "/u/{uid:uuid}", "/r/{rest:*}"};
    /* As hp_app_route registers them: the router's udata is the index of
     * the registration, which names the handler and the pattern. */
    static hp_http_reg_t regs[5];
    for (uint32_t i = 0; i < 5; i++) {
        regs[i] = (hp_http_reg_t){stash, NULL, i, false, 0};
        assert_int_equal(hp_router_add(T.routes.router, HP_ROUTER_GET | HP_ROUTER_POST,
                                       get_routes[i], (void *)stash, (void *)(uintptr_t)i,
                                       NULL, 0), 0);
    }
    T.routes.regs = regs;
    T.routes.nregs = 5;
    T.routes.patterns = get_routes;
    T.routes.npatterns = 5;
    T.hcfg.routes = &T.routes;
    H.cfg.rbuf_size = hp_http_rbuf_size(&T.hcfg);
    H.cfg.wbuf_size = 16384;
    H.cfg.max_chunks = 8;
    H.cfg.high_water = 256 * 1024;
    H.cfg.low_water = 64 * 1024;
    assert_int_equal(hp_http_proto_init(&T.proto, &T.hcfg, H.cfg.rbuf_size), 0);
    h_start_proto(&T.proto, &T.hcfg, 0);
    assert_non_null(hp_worker_proto_data(&H.w, &T.proto));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hp_alloc_fail_after(0, 0);
    h_teardown(); /* worker_fini runs in hp_worker_destroy */
    hp_router_free(T.routes.router);
    return 0;
}

/* Sends a request and pumps until the handler has it. */
static hp_ctx_t *pending(cli_t *k, const char *req)
{
    T.ctx = NULL;
    cli_sends(k, req);
    PUMP_UNTIL(T.ctx != NULL, 1000);
    if (!T.ctx)
        fail_msg("no handler call for '%.40s'; client got %zu bytes: '%.*s'", req, k->rxlen,
                 (int)(k->rxlen < 200 ? k->rxlen : 200), k->rx ? k->rx : "");
    assert_int_equal(T.ctx->st->phase, PH_PENDING);
    return T.ctx;
}

/* Length of the complete response at the front of k->rx, 0 when it is not
 * all there yet. A HEAD response has no body whatever its Content-Length. */
static size_t resp_len(const cli_t *k, bool head_only)
{
    if (!k->rx)
        return 0;
    const char *end = memmem(k->rx, k->rxlen, "\r\n\r\n", 4);
    if (!end)
        return 0;
    size_t hl = (size_t)(end + 4 - k->rx);
    const char *p = memmem(k->rx, hl, "\r\nContent-Length: ", 18);
    size_t cl = p && !head_only ? strtoul(p + 18, NULL, 10) : 0;
    return k->rxlen >= hl + cl ? hl + cl : 0;
}

/* Finishes ctx and pumps until its response is complete; returns the
 * response's length (its head and body stay in k->rx). */
static size_t finish(cli_t *k, hp_ctx_t *ctx, bool head_only)
{
    hp_ctx_finish(ctx);
    T.ctx = NULL;
    PUMP_UNTIL(resp_len(k, head_only) > 0, 1000);
    size_t n = resp_len(k, head_only);
    assert_true(n > 0);
    return n;
}

/* The response's body (after its head) and its length. */
static const char *resp_body(const cli_t *k, size_t total, size_t *len)
{
    const char *end = memmem(k->rx, k->rxlen, "\r\n\r\n", 4);
    assert_non_null(end);
    *len = total - (size_t)(end + 4 - k->rx);
    return end + 4;
}

/* True when the response head at the front of k->rx holds "name: value". */
static bool resp_has(const cli_t *k, const char *line)
{
    const char *end = memmem(k->rx, k->rxlen, "\r\n\r\n", 4);
    char want[1200];
    int n = snprintf(want, sizeof want, "\r\n%s\r\n", line);
    return end && memmem(k->rx, (size_t)(end + 4 - k->rx), want, (size_t)n) != NULL;
}

static void rx_drop(cli_t *k, size_t n)
{
    memmove(k->rx, k->rx + n, k->rxlen - n);
    k->rxlen -= n;
}

/* Takes the length by address: it is read after `p`'s call has set it
 * (the order in which arguments are evaluated is unspecified). */
static void assert_span(const char *p, const size_t *len, const char *want)
{
    assert_non_null(p);
    if (*len != strlen(want) || memcmp(p, want, *len) != 0)
        fail_msg("got '%.*s', want '%s'", (int)*len, p, want);
}

/* ---- the request ---- */

static void test_request_line(void **state)
{
    (void)state;
    cli_t *k = cli_open(0);
    hp_ctx_t *ctx = pending(k, "GET /q?x=1&y=%20 HTTP/1.1\r\nHost: h\r\n\r\n");
    size_t len;
    assert_span(hp_ctx_method(ctx, &len), &len, "GET");
    assert_int_equal(hp_ctx_method_bit(ctx), HP_ROUTER_GET);
    assert_span(hp_ctx_path(ctx, &len), &len, "/q");
    assert_span(hp_ctx_query_string(ctx, &len), &len, "x=1&y=%20");
    assert_string_equal(hp_ctx_route(ctx), "/q");
    hp_ctx_body(ctx, &len);
    assert_int_equal(len, 0);
    assert_ptr_equal(hp_ctx_worker(ctx), &H.w);
    /* Nothing set: 200 with an empty body. */
    size_t n = finish(k, ctx, false);
    assert_true(k->rxlen == n && strncmp(k->rx, "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_true(resp_has(k, "Content-Length: 0"));
    rx_drop(k, n);

    /* Absolute form, a body, no query. */
    ctx = pending(k, "POST http://example.com/q HTTP/1.1\r\nHost: h\r\n"
                     "Content-Length: 5\r\n\r\nhello");
    assert_span(hp_ctx_method(ctx, &len), &len, "POST");
    assert_int_equal(hp_ctx_method_bit(ctx), HP_ROUTER_POST);
    assert_span(hp_ctx_path(ctx, &len), &len, "/q");
    hp_ctx_query_string(ctx, &len);
    assert_int_equal(len, 0);
    assert_span(hp_ctx_body(ctx, &len), &len, "hello");
    rx_drop(k, finish(k, ctx, false));

    /* HEAD reaches the GET handler, and says it is a HEAD; a bare '?'. */
    ctx = pending(k, "HEAD /q? HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(hp_ctx_method_bit(ctx), HP_ROUTER_HEAD);
    hp_ctx_query_string(ctx, &len);
    assert_int_equal(len, 0);
    size_t n2 = finish(k, ctx, true);
    pump_for(10);
    assert_int_equal(n2, k->rxlen); /* no body after the head */
}

static int q(const hp_ctx_t *ctx, const char *name, char *out, size_t cap)
{
    memset(out, 'Z', cap + 1);
    int r = hp_ctx_query(ctx, name, out, cap);
    assert_int_equal(out[cap], 'Z'); /* never past cap */
    return r;
}

static void assert_q(const hp_ctx_t *ctx, const char *name, const char *want)
{
    char out[64];
    int r = q(ctx, name, out, 63);
    if (r != (int)strlen(want) || memcmp(out, want, strlen(want)) != 0)
        fail_msg("%s: got %d '%.*s', want '%s'", name, r, r > 0 ? r : 0, out, want);
}

static void test_query(void **state)
{
    (void)state;
    cli_t *k = cli_open(0);
    /* No malformed pct-encoding ("%4", "%zz", a final "%"): the target
     * checker answers such a request 400 before any handler runs
     * (test_target.c), so the decoder's -EINVAL is defence only. */
    hp_ctx_t *ctx = pending(k, "GET /q?ab=x&a=1&plus=a+b+&pct=%41%2f%7e%2B"
                               "&empty=&flag&dup=first&dup=second;semi=two&nul=%00&six=abcdef"
                               "&+k=1 HTTP/1.1\r\nHost: h\r\n\r\n");
    char out[64];
    assert_q(ctx, "ab", "x");
    assert_q(ctx, "a", "1");     /* "ab" is not "a" */
    assert_q(ctx, "plus", "a b ");
    assert_q(ctx, "pct", "A/~+");
    assert_int_equal(q(ctx, "empty", out, 63), 0);
    assert_int_equal(q(ctx, "flag", out, 63), 0);
    assert_q(ctx, "dup", "first");
    assert_q(ctx, "semi", "two");
    assert_int_equal(q(ctx, "nul", out, 63), 1);
    assert_int_equal(out[0], '\0');
    assert_int_equal(q(ctx, "missing", out, 63), -1);
    assert_int_equal(q(ctx, "fla", out, 63), -1);
    assert_int_equal(q(ctx, "k", out, 63), -1);   /* names are not decoded */
    assert_q(ctx, "+k", "1");
    /* Exactly fits; one short; no room at all. */
    assert_int_equal(q(ctx, "six", out, 6), 6);
    assert_memory_equal(out, "abcdef", 6);
    assert_int_equal(q(ctx, "six", out, 5), -ENOSPC);
    assert_int_equal(q(ctx, "six", out, 0), -ENOSPC);
    assert_int_equal(q(ctx, "empty", out, 0), 0);
    rx_drop(k, finish(k, ctx, false));

    ctx = pending(k, "GET /q HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(q(ctx, "a", out, 63), -1);
    assert_int_equal(q(ctx, "", out, 63), -1);
    finish(k, ctx, false);
}

static void test_headers(void **state)
{
    (void)state;
    cli_t *k = cli_open(0);
    hp_ctx_t *ctx = pending(k, "GET /q HTTP/1.1\r\nHost: h\r\nX-Custom: abc\r\n"
                               "x-dup: 1\r\nX-Dup: 2\r\nX-Empty:\r\n\r\n");
    size_t len;
    assert_span(hp_ctx_header(ctx, "x-custom", &len), &len, "abc");
    assert_span(hp_ctx_header(ctx, "X-CUSTOM", &len), &len, "abc");
    assert_span(hp_ctx_header(ctx, "host", &len), &len, "h");
    assert_span(hp_ctx_header(ctx, "X-Dup", &len), &len, "1");
    assert_non_null(hp_ctx_header(ctx, "x-empty", &len));
    assert_int_equal(len, 0);
    assert_null(hp_ctx_header(ctx, "X-Cust", &len));
    assert_null(hp_ctx_header(ctx, "X-Customs", &len));
    assert_null(hp_ctx_header(ctx, "Cookie", &len));
    finish(k, ctx, false);
}

static void test_params(void **state)
{
    (void)state;
    cli_t *k = cli_open(0);
    hp_ctx_t *ctx = pending(k, "GET /users/-42/files/7?x HTTP/1.1\r\nHost: h\r\n\r\n");
    size_t len;
    assert_string_equal(hp_ctx_route(ctx), "/users/{id:int}/files/{name}");
    assert_span(hp_ctx_param(ctx, "id", &len), &len, "-42");
    assert_int_equal(hp_ctx_param_int(ctx, "id", 0), -42);
    /* Digits in an untyped segment are still not an int parameter. */
    assert_span(hp_ctx_param(ctx, "name", &len), &len, "7");
    assert_int_equal(hp_ctx_param_int(ctx, "name", 99), 99);
    assert_null(hp_ctx_param(ctx, "missing", &len));
    assert_null(hp_ctx_param(ctx, "i", &len));
    assert_int_equal(hp_ctx_param_int(ctx, "missing", 5), 5);
    rx_drop(k, finish(k, ctx, false));

    ctx = pending(k, "GET /u/0123abcd-ABCD-4def-8abc-0123456789ab HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_span(hp_ctx_param(ctx, "uid", &len), &len, "0123abcd-ABCD-4def-8abc-0123456789ab");
    assert_int_equal(hp_ctx_param_int(ctx, "uid", 3), 3);
    rx_drop(k, finish(k, ctx, false));

    ctx = pending(k, "GET /r/a/b/c?z=1 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_span(hp_ctx_param(ctx, "rest", &len), &len, "a/b/c");
    assert_span(hp_ctx_query_string(ctx, &len), &len, "z=1");
    rx_drop(k, finish(k, ctx, false));

    /* A body arrives after the head: the parameters still point at it. */
    char req[3000];
    int n = snprintf(req, sizeof req,
                     "POST /users/9223372036854775807/files/f HTTP/1.1\r\nHost: h\r\n"
                     "Content-Length: 2000\r\n\r\n");
    memset(req + n, 'b', 2000);
    req[n + 2000] = '\0';
    ctx = pending(k, req);
    assert_int_equal(hp_ctx_param_int(ctx, "id", 0), INT64_MAX);
    assert_span(hp_ctx_param(ctx, "name", &len), &len, "f");
    const char *body = hp_ctx_body(ctx, &len);
    assert_int_equal(len, 2000);
    assert_true(body[0] == 'b' && body[1999] == 'b');
    finish(k, ctx, false);
}

/* ---- response headers ---- */

static void test_set_header(void **state)
{
    (void)state;
    cli_t *k = cli_open(0);
    hp_ctx_t *ctx = pending(k, "GET /q HTTP/1.1\r\nHost: h\r\n\r\n");
    static const char *const bad[][2] = {
        {"Bad\r", "v"}, {"Bad\nName", "v"}, {"X", "a\r\nInjected: 1"}, {"X", "v\n"},
        {"X", "\r"},    {"", "v"},         {"A:B", "v"},               {":", "v"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(hp_ctx_set_header(ctx, bad[i][0], bad[i][1]), -EINVAL);
    /* (A NUL cannot be inside a C string: it ends the name or value.) */
    assert_int_equal(ctx->hdr_len, 0);
    assert_string_equal(ctx->hdrs, "");

    assert_int_equal(hp_ctx_set_header(ctx, "X-One", "1"), 0);
    assert_string_equal(ctx->hdrs, "X-One: 1\r\n");
    assert_int_equal(hp_ctx_set_header(ctx, "X-Two", ""), 0);
    assert_string_equal(ctx->hdrs, "X-One: 1\r\nX-Two: \r\n");
    size_t used = ctx->hdr_len;
    assert_int_equal(used, strlen(ctx->hdrs));

    /* "X-Fill: " + v + "\r\n" filling the rest exactly fits; one more
     * byte does not, and a failure changes nothing. */
    char v[HP_CTX_HEADER_BYTES];
    size_t vl = HP_CTX_HEADER_BYTES - used - strlen("X-Fill") - 4;
    memset(v, 'v', vl + 1);
    v[vl + 1] = '\0';
    assert_int_equal(hp_ctx_set_header(ctx, "X-Fill", v), -ENOSPC);
    assert_int_equal(ctx->hdr_len, used);
    assert_int_equal(strlen(ctx->hdrs), used);
    v[vl] = '\0';
    assert_int_equal(hp_ctx_set_header(ctx, "X-Fill", v), 0);
    assert_int_equal(ctx->hdr_len, HP_CTX_HEADER_BYTES);
    assert_int_equal(strlen(ctx->hdrs), HP_CTX_HEADER_BYTES);
    assert_int_equal(hp_ctx_set_header(ctx, "A", ""), -ENOSPC);
    assert_int_equal(hp_ctx_set_header(ctx, "", ""), -EINVAL);
    assert_int_equal(ctx->hdr_len, HP_CTX_HEADER_BYTES);

    hp_ctx_status(ctx, 201);
    assert_int_equal(hp_ctx_send(ctx, "application/json", "{}", 2), 0);
    size_t n = finish(k, ctx, false);
    assert_int_equal(n, k->rxlen);
    assert_true(strncmp(k->rx, "HTTP/1.1 201 Created\r\n", 22) == 0);
    assert_true(resp_has(k, "X-One: 1"));
    assert_true(resp_has(k, "X-Two: "));
    assert_true(resp_has(k, "Content-Type: application/json"));
    assert_true(resp_has(k, "Content-Length: 2"));
    char fill[HP_CTX_HEADER_BYTES + 16];
    snprintf(fill, sizeof fill, "X-Fill: %s", v);
    assert_true(resp_has(k, fill));
    size_t bl;
    assert_span(resp_body(k, n, &bl), &bl, "{}");
}

/* ---- response bodies ---- */

static void test_send_paths_replace(void **state)
{
    (void)state;
    cli_t *k = cli_open(0);
    hp_ctx_t *ctx = pending(k, "GET /q HTTP/1.1\r\nHost: h\r\n\r\n");
    uint32_t base = hp_pool_in_use(&H.w.rpool); /* the connection's read chunk */
    uint32_t csize = hp_conn_chunk_size(ctx->conn);
    char *big = malloc(csize + 1);
    assert_non_null(big);
    memset(big, 'x', csize + 1);

    assert_int_equal(hp_ctx_send(ctx, "text/plain", big, HTTP_CTX_INLINE), 0);
    assert_int_equal(ctx->body_kind, BODY_INLINE);
    assert_int_equal(ctx->body_len, HTTP_CTX_INLINE);
    assert_int_equal(hp_pool_in_use(&H.w.rpool), base);
    assert_int_equal(hp_ctx_send(ctx, "text/plain", big, HTTP_CTX_INLINE + 1), 0);
    assert_int_equal(ctx->body_kind, BODY_CHUNK);
    assert_int_equal(hp_pool_in_use(&H.w.rpool), base + 1);
    assert_int_equal(hp_ctx_send(ctx, "text/plain", big, csize), 0);
    assert_int_equal(ctx->body_kind, BODY_CHUNK);
    assert_int_equal(hp_pool_in_use(&H.w.rpool), base + 1); /* the first went back */
    uint64_t allocs = hp_alloc_count();
    assert_int_equal(hp_ctx_send(ctx, "text/plain", big, csize + 1), 0);
    assert_int_equal(ctx->body_kind, BODY_HEAP);
    assert_int_equal(hp_alloc_count(), allocs + 1);
    assert_int_equal(hp_pool_in_use(&H.w.rpool), base);
    assert_int_equal(ctx->body_len, csize + 1);
    assert_int_equal(hp_ctx_send_ref(ctx, NULL, "ref", 3, ref_done, &T), 0); /* heap freed */
    assert_int_equal(ctx->body_kind, BODY_REF);
    assert_int_equal(T.done_calls, 0);
    assert_int_equal(hp_ctx_send_ref(ctx, NULL, "ref2", 4, NULL, NULL), 0);
    assert_int_equal(T.done_calls, 1); /* replaced: done once */
    assert_int_equal(hp_ctx_send(ctx, "text/plain", "final", 5), 0);
    assert_int_equal(T.done_calls, 1);
    free(big);

    size_t n = finish(k, ctx, false), bl;
    assert_span(resp_body(k, n, &bl), &bl, "final");
    assert_true(resp_has(k, "Content-Type: text/plain"));
    assert_int_equal(T.done_calls, 1);
}

/* Each copying path, written: the client gets the exact bytes and the
 * chunk or heap block is given back (pools checked by the teardown). */
static void send_written(size_t len)
{
    cli_t *k = cli_open(0);
    hp_ctx_t *ctx = pending(k, "GET /q HTTP/1.1\r\nHost: h\r\n\r\n");
    if (len == 0)
        len = hp_conn_chunk_size(ctx->conn) + 1000;
    char *data = malloc(len);
    assert_non_null(data);
    for (size_t i = 0; i < len; i++)
        data[i] = (char)('a' + i % 26);
    assert_int_equal(hp_ctx_send(ctx, "application/octet-stream", data, len), 0);
    size_t n = finish(k, ctx, false), bl;
    const char *body = resp_body(k, n, &bl);
    assert_int_equal(bl, len);
    assert_memory_equal(body, data, len);
    assert_int_equal(n, k->rxlen);
    free(data);
    PUMP_UNTIL(hp_pool_in_use(&H.w.rpool) == 0, 500);
    assert_int_equal(hp_pool_in_use(&H.w.rpool), 0);
}

static void test_send_inline_written(void **state)
{
    (void)state;
    send_written(HTTP_CTX_INLINE);
}

static void test_send_chunk_written(void **state)
{
    (void)state;
    send_written(20000);
}

static void test_send_heap_written(void **state)
{
    (void)state;
    send_written(0);
}

static void test_send_ref_written_once(void **state)
{
    (void)state;
    static const char text[] = "a body by reference";
    cli_t *k = cli_open(0);
    for (int i = 1; i <= 3; i++) {
        hp_ctx_t *ctx = pending(k, "GET /q HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_int_equal(hp_ctx_send_ref(ctx, NULL, text, sizeof text - 1, ref_done, &T), 0);
        assert_int_equal(T.done_calls, i - 1);
        size_t n = finish(k, ctx, false), bl;
        assert_span(resp_body(k, n, &bl), &bl, text);
        rx_drop(k, n);
        PUMP_UNTIL(T.done_calls == i, 500);
        assert_int_equal(T.done_calls, i);
    }
    pump_for(20);
    assert_int_equal(T.done_calls, 3);
}

/* HEAD: the length of the body is announced, the body dropped. */
static void test_send_head_only(void **state)
{
    (void)state;
    cli_t *k = cli_open(0);
    hp_ctx_t *ctx = pending(k, "HEAD /q HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(hp_ctx_send_ref(ctx, "text/plain", "hello", 5, ref_done, &T), 0);
    size_t n = finish(k, ctx, true);
    assert_int_equal(T.done_calls, 1);
    assert_true(resp_has(k, "Content-Length: 5"));
    ctx = pending(k, "HEAD /q HTTP/1.1\r\nHost: h\r\n\r\n");
    static char blob[20000];
    assert_int_equal(hp_ctx_send(ctx, "text/plain", blob, sizeof blob), 0);
    assert_int_equal(ctx->body_kind, BODY_CHUNK);
    rx_drop(k, n);
    n = finish(k, ctx, true);
    assert_true(resp_has(k, "Content-Length: 20000"));
    pump_for(20);
    assert_int_equal(k->rxlen, n); /* and nothing after the head */
}

/* The connection closes under a pending handler: on_abort runs once with
 * the context, and the body it held is released (ref done, file closed). */
static void test_dropped_on_close(void **state)
{
    (void)state;
    cli_t *k = cli_open(0);
    hp_ctx_t *ctx = pending(k, "GET /q HTTP/1.1\r\nHost: h\r\n\r\n");
    hp_ctx_on_abort(ctx, on_abort, &T);
    assert_int_equal(hp_ctx_send_ref(ctx, "text/plain", "x", 1, ref_done, &T), 0);
    hp_conn_close(ctx->conn);
    assert_int_equal(T.abort_calls, 1);
    assert_ptr_equal(T.aborted, ctx);
    assert_int_equal(T.done_calls, 1);
    PUMP_UNTIL(k->eof, 500);
    assert_true(k->eof);
    assert_int_equal(T.abort_calls, 1);
    assert_int_equal(T.done_calls, 1);

    cli_t *k2 = cli_open(0);
    ctx = pending(k2, "GET /q HTTP/1.1\r\nHost: h\r\n\r\n");
    FILE *f = tmpfile();
    assert_non_null(f);
    int fd = dup(fileno(f));
    fclose(f);
    assert_int_equal(hp_ctx_send_file(ctx, NULL, fd, 0, 10), 0);
    hp_conn_close(ctx->conn); /* no on_abort set: nothing to call */
    assert_int_equal(T.abort_calls, 1);
    assert_int_equal(fcntl(fd, F_GETFD), -1); /* closed */
    PUMP_UNTIL(k2->eof, 500);
}

static void test_send_file(void **state)
{
    (void)state;
    char path[] = "/tmp/test_ctx_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, "0123456789", 10), 10);
    int fd2 = dup(fd);

    cli_t *k = cli_open(0);
    hp_ctx_t *ctx = pending(k, "GET /q HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(hp_ctx_send_file(ctx, "text/plain", fd, 2, 5), 0);
    assert_int_equal(hp_ctx_send(ctx, NULL, "y", 1), 0); /* replaced: fd closed */
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    assert_int_equal(hp_ctx_send_file(ctx, "text/plain", fd2, 2, 5), 0);
    size_t n = finish(k, ctx, false), bl;
    assert_span(resp_body(k, n, &bl), &bl, "23456");
    assert_true(resp_has(k, "Content-Type: text/plain"));
    PUMP_UNTIL(fcntl(fd2, F_GETFD) == -1, 500);
    assert_int_equal(fcntl(fd2, F_GETFD), -1);
}

static void test_send_oom_and_pool_empty(void **state)
{
    (void)state;
    cli_t *k = cli_open(0);
    hp_ctx_t *ctx = pending(k, "GET /q HTTP/1.1\r\nHost: h\r\n\r\n");
    uint32_t csize = hp_conn_chunk_size(ctx->conn);
    char *big = calloc(1, csize + 1);
    assert_non_null(big);
    /* The heap path fails: -ENOMEM, and the body set before is gone. */
    assert_int_equal(hp_ctx_send_ref(ctx, NULL, "old", 3, ref_done, &T), 0);
    hp_alloc_fail_after(1, 0);
    assert_int_equal(hp_ctx_send(ctx, "text/plain", big, csize + 1), -ENOMEM);
    hp_alloc_fail_after(0, 0);
    assert_int_equal(T.done_calls, 1);
    assert_int_equal(ctx->body_len, 0);
    assert_int_equal(ctx->body_kind, BODY_NONE);

    /* No pool chunk left: a mid-sized body goes to the heap instead. */
    void *held[16];
    int nheld = 0;
    while (nheld < 16 && (held[nheld] = hp_conn_chunk_get(ctx->conn)))
        nheld++;
    assert_true(nheld < 16);
    uint64_t allocs = hp_alloc_count();
    memset(big, 'm', 1000);
    assert_int_equal(hp_ctx_send(ctx, "text/plain", big, 1000), 0);
    assert_int_equal(ctx->body_kind, BODY_HEAP);
    assert_int_equal(hp_alloc_count(), allocs + 1);
    while (nheld > 0)
        hp_conn_chunk_put(ctx->conn, held[--nheld]);
    size_t n = finish(k, ctx, false), bl;
    const char *body = resp_body(k, n, &bl);
    assert_int_equal(bl, 1000);
    assert_true(body[0] == 'm' && body[999] == 'm');
    free(big);
}

static void test_send_status(void **state)
{
    (void)state;
    cli_t *k = cli_open(0);
    hp_ctx_t *ctx = pending(k, "GET /q HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(hp_ctx_send(ctx, "application/json", "{\"a\":1}", 7), 0);
    hp_ctx_send_status(ctx, 404);
    size_t n = finish(k, ctx, false), bl;
    assert_true(strncmp(k->rx, "HTTP/1.1 404 Not Found\r\n", 24) == 0);
    assert_true(resp_has(k, "Content-Type: text/plain"));
    assert_span(resp_body(k, n, &bl), &bl, "404 Not Found\n");
    rx_drop(k, n);

    ctx = pending(k, "GET /q HTTP/1.1\r\nHost: h\r\n\r\n");
    hp_ctx_send_status(ctx, 503);
    n = finish(k, ctx, false);
    assert_true(strncmp(k->rx, "HTTP/1.1 503 Service Unavailable\r\n", 34) == 0);
    assert_span(resp_body(k, n, &bl), &bl, "503 Service Unavailable\n");
}

/* Pipelined requests wait behind a pending one and are answered in order. */
static void test_pending_pipelined(void **state)
{
    (void)state;
    cli_t *k = cli_open(0);
    hp_ctx_t *ctx = pending(k, "GET /q?n=1 HTTP/1.1\r\nHost: h\r\n\r\n"
                               "GET /q?n=2 HTTP/1.1\r\nHost: h\r\n\r\n");
    pump_for(20);
    assert_int_equal(T.handled, 1);
    assert_int_equal(k->rxlen, 0);
    hp_ctx_send(ctx, NULL, "one", 3);
    hp_ctx_finish(ctx);
    assert_int_equal(T.handled, 2); /* the second ran as the first finished */
    ctx = T.ctx;
    char out[8];
    assert_int_equal(hp_ctx_query(ctx, "n", out, sizeof out), 1);
    assert_int_equal(out[0], '2');
    hp_ctx_send(ctx, NULL, "two", 3);
    size_t n = finish(k, ctx, false), bl;
    assert_span(resp_body(k, n, &bl), &bl, "one");
    rx_drop(k, n);
    PUMP_UNTIL(resp_len(k, false) > 0, 500);
    assert_span(resp_body(k, resp_len(k, false), &bl), &bl, "two");
}

/* An absolute-form target without a path is the path "/" (RFC 9112
 * §3.2.2), and its query is still the query. */
static void test_absolute_form_no_path(void **state)
{
    (void)state;
    cli_t *k = cli_open(0);
    hp_ctx_t *ctx = pending(k, "GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
    size_t len;
    assert_span(hp_ctx_path(ctx, &len), &len, "/");
    assert_string_equal(hp_ctx_route(ctx), "/");
    hp_ctx_query_string(ctx, &len);
    assert_int_equal(len, 0);
    rx_drop(k, finish(k, ctx, false));

    ctx = pending(k, "GET http://example.com?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_span(hp_ctx_path(ctx, &len), &len, "/");
    assert_span(hp_ctx_query_string(ctx, &len), &len, "x=1");
    finish(k, ctx, false);
}

/* An empty body from a NULL pointer, as hp_ctx_body() hands out for a
 * request without one: a valid empty response. (Last in the list: under
 * UBSan a failure here aborts the binary.) */
static void test_send_empty_null(void **state)
{
    (void)state;
    cli_t *k = cli_open(0);
    hp_ctx_t *ctx = pending(k, "GET /q HTTP/1.1\r\nHost: h\r\n\r\n");
    size_t len = 1;
    const char *body = hp_ctx_body(ctx, &len);
    assert_int_equal(len, 0);
    assert_int_equal(hp_ctx_send(ctx, "text/plain", "x", 1), 0);
    assert_int_equal(hp_ctx_send(ctx, "text/plain", body, len), 0);
    assert_int_equal(ctx->body_len, 0);
    finish(k, ctx, false);
    assert_true(resp_has(k, "Content-Length: 0"));
}

int main(void)
{
    hp_http_parser_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_request_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_paths_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_inline_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_chunk_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_heap_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_ref_written_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_head_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dropped_on_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_oom_and_pool_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_pipelined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_absolute_form_no_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_empty_null, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
