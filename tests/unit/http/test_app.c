/*
 * test_app.c - unit tests for the embedding API (src/http/app.c): building
 * an app and its errors, routes and middleware, and a real run.
 *
 * The served tests start the app on a thread of their own (hp_app_run with
 * one worker, no signal handling, a free loopback port) and talk to it over
 * blocking loopback sockets from the test thread; each teardown stops it
 * with hp_app_stop and checks that hp_app_run returned 0. The worker runs
 * on a manual clock (A.clock, hp_app_set_clock) that moves only when a
 * test advances it: a handler's timer or a cache entry's max-age expires
 * exactly then, and a stop cannot have been ended by the drain timer.
 * Waits for the other thread or the kernel have real-time bounds only to
 * end a broken test, PATIENCE_MS long.
 * Handlers and middleware run on the worker and record what they did in
 * R (events in call order, counters), which the test thread reads once the
 * response that follows them has arrived.
 */
#include "hotpath/alloc.h"
#include "hotpath/app.h"
#include "hotpath/log.h"
#include "hotpath/router.h"
#include "net/worker_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../manual_clock.h"

/* How long a wait for the worker thread or the kernel may take before the
 * test is taken to be broken: far beyond what a loaded machine needs. */
#define PATIENCE_MS 20000

/* ---- what the worker records ---- */

/* Worker-side checks record EV_WRONG (cmocka's asserts belong to the test
 * thread), which no expected sequence contains. */
enum { EV_WRONG = -1, EV_BEFORE = 10, EV_AFTER = 20, EV_HANDLER = 50, EV_SLOW = 60,
       EV_SLOW_FIRE, EV_FAST };

static struct {
    int ev[64];
    unsigned nev;
    unsigned ref_done;
    unsigned aborts;
    hp_ctx_t *hang;      /* the pending /hang request, NULL once aborted */
    struct {
        hp_timer_t t;
        hp_ctx_t *ctx;
    } slow;
    unsigned calls;      /* h_counted */
} R;

static void record(int ev)
{
    unsigned i = __atomic_fetch_add(&R.nev, 1, __ATOMIC_RELAXED);
    if (i < 64)
        __atomic_store_n(&R.ev[i], ev, __ATOMIC_RELEASE);
}

static bool path_is(const hp_ctx_t *ctx, const char *prefix)
{
    size_t len;
    const char *p = hp_ctx_path(ctx, &len);
    return len >= strlen(prefix) && memcmp(p, prefix, strlen(prefix)) == 0;
}

/* Answers its udata as text; /fast also records that it ran. */
static int h_text(hp_ctx_t *ctx, void *udata)
{
    if (path_is(ctx, "/fast"))
        record(EV_FAST);
    hp_ctx_send(ctx, "text/plain", udata, strlen(udata));
    return HP_DONE;
}

static int h_item(hp_ctx_t *ctx, void *udata)
{
    (void)udata;
    char body[64];
    int n = snprintf(body, sizeof body, "item %lld", (long long)hp_ctx_param_int(ctx, "id", -1));
    hp_ctx_send(ctx, "text/plain", body, (size_t)n);
    return HP_DONE;
}

static int h_echo(hp_ctx_t *ctx, void *udata)
{
    (void)udata;
    size_t len;
    const char *b = hp_ctx_body(ctx, &len);
    hp_ctx_send(ctx, "application/octet-stream", b, len);
    return HP_DONE;
}

static int h_mw(hp_ctx_t *ctx, void *udata)
{
    (void)udata;
    record(EV_HANDLER);
    hp_ctx_send(ctx, NULL, "mw", 2);
    return HP_DONE;
}

static void ref_done(void *arg)
{
    if (arg != &R)
        record(EV_WRONG);
    __atomic_fetch_add(&R.ref_done, 1, __ATOMIC_RELAXED);
}

static int h_ref(hp_ctx_t *ctx, void *udata)
{
    (void)udata;
    static const char text[] = "by reference";
    hp_ctx_send_ref(ctx, "text/plain", text, sizeof text - 1, ref_done, &R);
    return HP_DONE;
}

static void slow_fire(hp_timer_t *t)
{
    hp_ctx_t *ctx = HP_CONTAINER_OF(t, typeof(R.slow), t)->ctx;
    record(EV_SLOW_FIRE);
    hp_ctx_send(ctx, "text/plain", "slow", 4);
    hp_ctx_finish(ctx);
}

static int h_slow(hp_ctx_t *ctx, void *udata)
{
    (void)udata;
    record(EV_SLOW);
    R.slow.ctx = ctx;
    hp_timer_init(&R.slow.t, slow_fire);
    hp_loop_timer_arm(&hp_ctx_worker(ctx)->loop, &R.slow.t, 50);
    return HP_PENDING;
}

static void hang_abort(hp_ctx_t *ctx, void *arg)
{
    if (arg != &R || ctx != R.hang)
        record(EV_WRONG);
    R.hang = NULL; /* invalid from now on: never finished */
    __atomic_fetch_add(&R.aborts, 1, __ATOMIC_RELEASE);
}

static int h_hang(hp_ctx_t *ctx, void *udata)
{
    (void)udata;
    R.hang = ctx;
    hp_ctx_on_abort(ctx, hang_abort, &R);
    record(EV_HANDLER);
    return HP_PENDING;
}

/* Middleware i (1..3): records its calls on /mw paths; the second answers
 * early when the request has X-Early; the first's `after` stamps every
 * response with X-After. */
static int mw_before(hp_ctx_t *ctx, void *udata)
{
    int i = (int)(intptr_t)udata;
    if (!path_is(ctx, "/mw"))
        return HP_NEXT;
    record(EV_BEFORE + i);
    size_t len;
    if (i == 2 && hp_ctx_header(ctx, "X-Early", &len)) {
        hp_ctx_send_status(ctx, 403);
        return HP_DONE;
    }
    return HP_NEXT;
}

static int mw_after(hp_ctx_t *ctx, void *udata)
{
    int i = (int)(intptr_t)udata;
    if (path_is(ctx, "/mw"))
        record(EV_AFTER + i);
    if (i == 1 && hp_ctx_set_header(ctx, "X-After", "1") != 0)
        record(EV_WRONG);
    return HP_NEXT;
}

/* Cache tests: counts its calls; udata picks what the answer says about
 * caching. */
static int h_counted(hp_ctx_t *ctx, void *udata)
{
    const char *kind = udata;
    unsigned n = __atomic_add_fetch(&R.calls, 1, __ATOMIC_RELAXED);
    if (!strcmp(kind, "max-age"))
        hp_ctx_set_header(ctx, "Cache-Control", "public, max-age=1");
    else if (!strcmp(kind, "no-store"))
        hp_ctx_set_header(ctx, "Cache-Control", "max-age=60, no-store");
    else if (!strcmp(kind, "cookie"))
        hp_ctx_set_header(ctx, "Set-Cookie", "a=b");
    if (!strcmp(kind, "big")) {
        static char text[4000];
        for (size_t i = 0; i < sizeof text; i++)
            text[i] = "cacheable text "[i % 15];
        hp_ctx_send(ctx, "text/plain", text, sizeof text);
        return HP_DONE;
    }
    char body[64];
    int len = snprintf(body, sizeof body, "%s %u", kind, n);
    hp_ctx_send(ctx, "text/plain", body, (size_t)len);
    return HP_DONE;
}

/* ---- the app on its thread ---- */

static struct {
    hp_app_t *app;
    pthread_t thread;
    int rc;
    uint16_t port;
    char listen[32];
    mclock_t clock; /* the worker's */
} A;

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static hp_app_config_t config(const char *listen)
{
    hp_app_config_t cfg = HP_APP_CONFIG_DEFAULT;
    cfg.listen = listen;
    cfg.workers = 1;
    cfg.handle_signals = false;
    cfg.quiet = true;
    cfg.engine.drain_timeout_ms = 300;
    return cfg;
}

static int cli_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(A.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {.tv_sec = PATIENCE_MS / 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void *run_thread(void *arg)
{
    (void)arg;
    A.rc = hp_app_run(A.app);
    return NULL;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Polls cond (set by the worker thread) every millisecond until it holds
 * or PATIENCE_MS have passed; the caller asserts it after. */
#define WAIT_UNTIL(cond)                                                       \
    do {                                                                       \
        uint64_t dl_ = now_ms() + PATIENCE_MS;                                 \
        while (!(cond) && now_ms() < dl_)                                      \
            usleep(1000);                                                      \
    } while (0)

/* Starts A.app on its thread, on A.clock, and waits until it accepts
 * connections. */
static void start(void)
{
    A.rc = 1;
    assert_int_equal(hp_app_set_clock(A.app, &A.clock.src), 0);
    assert_int_equal(pthread_create(&A.thread, NULL, run_thread, NULL), 0);
    uint64_t dl = now_ms() + PATIENCE_MS;
    int fd;
    while ((fd = cli_connect()) < 0 && now_ms() < dl)
        usleep(2000);
    assert_true(fd >= 0);
    close(fd);
}

/* Stops it: hp_app_run must return 0. The worker's clock stands still, so
 * its drain timer cannot end the run: it ends because the stop closed
 * the idle connections at once. */
static void stop(void)
{
    hp_app_stop(A.app);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += PATIENCE_MS / 1000;
    assert_int_equal(pthread_timedjoin_np(A.thread, NULL, &dl), 0);
    assert_int_equal(A.rc, 0);
    assert_string_equal(hp_app_error(A.app), "");
}

static int setup(void **state)
{
    (void)state;
    memset(&R, 0, sizeof R);
    memset(&A, 0, sizeof A);
    mclock_init(&A.clock);
    A.port = free_port();
    snprintf(A.listen, sizeof A.listen, "127.0.0.1:%u", A.port);
    hp_app_config_t cfg = config(A.listen);
    char err[256];
    A.app = hp_app_new(&cfg, err, sizeof err);
    assert_non_null(A.app);
    static const struct {
        uint32_t m;
        const char *pattern;
        hp_handler_fn fn;
        const char *udata;
    } routes[] = {
        {HP_ROUTER_GET, "/hello", h_text, "hello"}, {HP_ROUTER_GET, "/items/{id:int}", h_item, 0},
        {HP_ROUTER_POST, "/echo", h_echo, 0},       {HP_ROUTER_GET, "/mw/x", h_mw, 0},
        {HP_ROUTER_GET, "/ref", h_ref, 0},          {HP_ROUTER_GET, "/slow", h_slow, 0},
        {HP_ROUTER_GET, "/fast", h_text, "fast"},   {HP_ROUTER_GET, "/hang", h_hang, 0},
    };
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
        assert_int_equal(hp_app_route(A.app, routes[i].m, routes[i].pattern, routes[i].fn,
                                      (void *)routes[i].udata, err, sizeof err), 0);
    for (intptr_t i = 1; i <= 3; i++)
        assert_int_equal(hp_app_use(A.app, mw_before, mw_after, (void *)i), 0);
    start();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    stop();
    hp_app_free(A.app);
    return 0;
}

/* ---- a small blocking HTTP client ---- */

typedef struct {
    int fd;
    size_t len;
    char buf[65536];
} conn_t;

typedef struct {
    int status;
    char head[4096];
    size_t body_len;
    char body[16384];
} resp_t;

static conn_t *conn_open(void)
{
    conn_t *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->fd = cli_connect();
    assert_true(c->fd >= 0);
    return c;
}

static void conn_close(conn_t *c)
{
    close(c->fd);
    free(c);
}

static void conn_send(conn_t *c, const char *s)
{
    size_t n = strlen(s);
    assert_int_equal(write(c->fd, s, n), (ssize_t)n);
}

/* Reads bytes until `want` are buffered; false on EOF or timeout. */
static bool fill(conn_t *c, size_t want)
{
    while (c->len < want) {
        ssize_t n = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
        if (n <= 0)
            return false;
        c->len += (size_t)n;
    }
    return true;
}

/* Reads one response (no body for a HEAD request). */
static void resp_read(conn_t *c, resp_t *r, bool head_only)
{
    const char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        assert_true(fill(c, c->len + 1));
    size_t hl = (size_t)(end + 4 - c->buf);
    assert_true(hl < sizeof r->head);
    memcpy(r->head, c->buf, hl);
    r->head[hl] = '\0';
    assert_int_equal(sscanf(r->head, "HTTP/1.1 %d ", &r->status), 1);
    const char *cl = strstr(r->head, "\r\nContent-Length: ");
    r->body_len = cl && !head_only ? strtoul(cl + 18, NULL, 10) : 0;
    assert_true(r->body_len < sizeof r->body);
    assert_true(fill(c, hl + r->body_len));
    memcpy(r->body, c->buf + hl, r->body_len);
    r->body[r->body_len] = '\0';
    memmove(c->buf, c->buf + hl + r->body_len, c->len - hl - r->body_len);
    c->len -= hl + r->body_len;
}

/* One request on a fresh connection. */
static void request(const char *req, resp_t *r)
{
    conn_t *c = conn_open();
    conn_send(c, req);
    resp_read(c, r, strncmp(req, "HEAD ", 5) == 0);
    conn_close(c);
}

/* The value of a response header, "" when absent. */
static const char *header(const resp_t *r, const char *name)
{
    static char v[256];
    char key[64];
    snprintf(key, sizeof key, "\r\n%s: ", name);
    const char *p = strstr(r->head, key);
    v[0] = '\0';
    if (p) {
        p += strlen(key);
        size_t n = strcspn(p, "\r");
        snprintf(v, sizeof v, "%.*s", (int)n, p);
    }
    return v;
}

static unsigned nev(void)
{
    return __atomic_load_n(&R.nev, __ATOMIC_ACQUIRE);
}

static void assert_events(const int *want, unsigned n)
{
    if (nev() != n)
        fail_msg("%u events, want %u", nev(), n);
    for (unsigned i = 0; i < n; i++)
        if (R.ev[i] != want[i])
            fail_msg("event %u is %d, want %d", i, R.ev[i], want[i]);
}

/* ---- building an app ---- */

static void test_new_errors(void **state)
{
    (void)state;
    char err[256];
    static const char *const bad[] = {"nope", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000",
                                      "1.2.3.4.5:80", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        hp_app_config_t cfg = config(bad[i]);
        err[0] = '\0';
        assert_null(hp_app_new(&cfg, err, sizeof err));
        char want[64];
        snprintf(want, sizeof want, "got '%s'", bad[i]);
        if (!strstr(err, "listen") || !strstr(err, want))
            fail_msg("'%s': %s", bad[i], err);
    }
    hp_app_config_t cfg = config("127.0.0.1:8080");
    cfg.root = "/nonexistent/hotpath-root";
    assert_null(hp_app_new(&cfg, err, sizeof err));
    assert_string_equal(err, "cannot open root '/nonexistent/hotpath-root': "
                             "No such file or directory");
    /* Truncated to the room given, or no message at all. */
    assert_null(hp_app_new(&cfg, err, 8));
    assert_string_equal(err, "cannot ");
    assert_null(hp_app_new(&cfg, NULL, 0));

    cfg.root = "/tmp";
    hp_app_t *app = hp_app_new(&cfg, err, sizeof err);
    assert_non_null(app);
    assert_string_equal(hp_app_error(app), "");
    hp_app_free(app);
    hp_app_free(NULL);
}

static void test_new_oom(void **state)
{
    (void)state;
    hp_app_config_t cfg = config("[::1]:8080");
    cfg.root = "/tmp";
    char err[256];
    hp_app_t *app = NULL;
    uint64_t n;
    for (n = 1; n < 100 && !app; n++) {
        hp_alloc_fail_after(n, 0);
        err[0] = '\0';
        app = hp_app_new(&cfg, err, sizeof err);
        hp_alloc_fail_after(0, 0);
        if (!app)
            assert_string_equal(err, "out of memory");
    }
    assert_non_null(app);
    assert_true(n > 2); /* at least the app and its router failed */
    hp_app_free(app);
}

static void test_route_errors(void **state)
{
    (void)state;
    hp_app_config_t cfg = config("127.0.0.1:8080");
    char err[256], rerr[256];
    hp_app_t *app = hp_app_new(&cfg, err, sizeof err);
    assert_non_null(app);
    hp_router_t *r = hp_router_new();
    assert_non_null(r);
    static const char *const bad[] = {"no-slash", "/a/{x:bogus}", "/a/{x", "/a/{p:*}/b"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(hp_app_route(app, HP_ROUTER_GET, bad[i], h_text, "hello", err, sizeof err),
                         -EINVAL);
        assert_int_equal(hp_router_add(r, HP_ROUTER_GET, bad[i], NULL, NULL, rerr, sizeof rerr),
                         -EINVAL);
        assert_true(err[0] != '\0');
        assert_string_equal(err, rerr);
    }
    assert_int_equal(hp_app_route(app, HP_ROUTER_GET, "/a/{id:int}", h_item, NULL, err, sizeof err),
                     0);
    assert_string_equal(err, "");
    assert_int_equal(hp_app_route(app, HP_ROUTER_GET, "/a/{id:int}", h_item, NULL, err, sizeof err),
                     -EEXIST);
    assert_true(err[0] != '\0');
    assert_int_equal(hp_app_route(app, HP_ROUTER_GET, "/a/{n:int}", h_item, NULL, err, sizeof err),
                     -EEXIST);
    assert_int_equal(hp_app_route(app, 0, "/b", h_item, NULL, err, sizeof err), -EINVAL);
    assert_int_equal(hp_app_route(app, HP_ROUTER_POST, "/a/{id:int}", h_item, NULL, NULL, 0), 0);

    for (int i = 0; i < HP_HTTP_MAX_MIDDLEWARE; i++)
        assert_int_equal(hp_app_use(app, mw_before, NULL, NULL), 0);
    assert_int_equal(hp_app_use(app, NULL, mw_after, NULL), -ENOSPC);
    hp_router_free(r);
    hp_app_free(app);
}

/* ---- a running app ---- */

static void test_routes_served(void **state)
{
    (void)state;
    resp_t r;
    request("GET /hello HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello");
    assert_string_equal(header(&r, "Content-Type"), "text/plain");
    assert_string_equal(header(&r, "X-After"), "1"); /* an `after` added it */

    request("GET /items/-17 HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "item -17");
    request("GET /items/abc HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    assert_int_equal(r.status, 404);
    request("GET /nope HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "404 Not Found\n");
    request("POST /hello HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(header(&r, "Allow"), "GET, HEAD");
    request("DELETE /echo HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(header(&r, "Allow"), "POST");

    /* HEAD through the GET handler: the length, no body; the next response
     * on the connection starts right after the head. */
    conn_t *c = conn_open();
    conn_send(c, "HEAD /hello HTTP/1.1\r\nHost: h\r\n\r\nGET /items/5 HTTP/1.1\r\nHost: h\r\n\r\n");
    resp_read(c, &r, true);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "Content-Length"), "5");
    resp_read(c, &r, false);
    assert_string_equal(r.body, "item 5");
    conn_close(c);
}

static void test_post_body(void **state)
{
    (void)state;
    resp_t r;
    request("POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello world");
    assert_string_equal(header(&r, "Content-Type"), "application/octet-stream");
    request("POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            "5\r\nhello\r\n6\r\n chunk\r\n0\r\n\r\n", &r);
    assert_string_equal(r.body, "hello chunk");
}

/* An empty body echoed: hp_ctx_body gives (NULL, 0) and hp_ctx_send must
 * take it. (Last in the list: under UBSan a failure aborts the binary.) */
static void test_echo_empty_body(void **state)
{
    (void)state;
    resp_t r;
    request("POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
}

static void test_middleware_order(void **state)
{
    (void)state;
    resp_t r;
    request("GET /mw/x HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "mw");
    static const int order[] = {EV_BEFORE + 1, EV_BEFORE + 2, EV_BEFORE + 3, EV_HANDLER,
                                EV_AFTER + 3,  EV_AFTER + 2,  EV_AFTER + 1};
    assert_events(order, 7);

    /* The second `before` answers: the third and the handler never run;
     * onion order: only the `after` of the first, whose `before` let the
     * request through, runs (and stamps its header). */
    R.nev = 0;
    request("GET /mw/x HTTP/1.1\r\nHost: h\r\nX-Early: 1\r\n\r\n", &r);
    assert_int_equal(r.status, 403);
    assert_string_equal(r.body, "403 Forbidden\n");
    assert_string_equal(header(&r, "X-After"), "1");
    static const int early[] = {EV_BEFORE + 1, EV_BEFORE + 2, EV_AFTER + 1};
    assert_events(early, 3);
}

static void test_send_ref_once_per_response(void **state)
{
    (void)state;
    conn_t *c = conn_open();
    resp_t r;
    for (unsigned i = 1; i <= 5; i++) {
        conn_send(c, "GET /ref HTTP/1.1\r\nHost: h\r\n\r\n");
        resp_read(c, &r, false);
        assert_string_equal(r.body, "by reference");
    }
    conn_send(c, "HEAD /ref HTTP/1.1\r\nHost: h\r\n\r\n");
    resp_read(c, &r, true);
    assert_string_equal(header(&r, "Content-Length"), "12");
    conn_close(c);
    WAIT_UNTIL(__atomic_load_n(&R.ref_done, __ATOMIC_RELAXED) >= 6);
    usleep(20000); /* time for a seventh call, which must not come */
    assert_int_equal(__atomic_load_n(&R.ref_done, __ATOMIC_RELAXED), 6);
}

/* A pending handler finished from a timer on the worker; the request
 * pipelined behind it runs only after, and the answers keep their order. */
static void test_pending_timer_pipelined(void **state)
{
    (void)state;
    conn_t *c = conn_open();
    conn_send(c, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\nGET /fast HTTP/1.1\r\nHost: h\r\n\r\n");
    WAIT_UNTIL(nev() >= 1);
    assert_int_equal(nev(), 1); /* pending on its 50 ms timer */
    /* Nothing can be answered while the clock stands still. */
    usleep(20000);
    char b;
    assert_int_equal(recv(c->fd, &b, 1, MSG_DONTWAIT), -1);
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(nev(), 1);
    mclock_advance_ms(&A.clock, 50);
    resp_t r;
    resp_read(c, &r, false);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "slow");
    resp_read(c, &r, false);
    assert_string_equal(r.body, "fast");
    static const int order[] = {EV_SLOW, EV_SLOW_FIRE, EV_FAST};
    assert_events(order, 3);
    /* The connection is still good. */
    conn_send(c, "GET /hello HTTP/1.1\r\nHost: h\r\n\r\n");
    resp_read(c, &r, false);
    assert_string_equal(r.body, "hello");
    conn_close(c);
}

/* The client resets the connection while the handler is pending: the
 * connection is dead, so on_abort must run, once, and the handler must not
 * finish the context afterwards (the callback forgets it). */
static void test_abort_on_client_reset(void **state)
{
    (void)state;
    conn_t *c = conn_open();
    conn_send(c, "GET /hang HTTP/1.1\r\nHost: h\r\n\r\n");
    WAIT_UNTIL(nev() >= 1);
    assert_int_equal(nev(), 1);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    conn_close(c); /* RST */
    WAIT_UNTIL(__atomic_load_n(&R.aborts, __ATOMIC_ACQUIRE) != 0);
    if (__atomic_load_n(&R.aborts, __ATOMIC_ACQUIRE) != 1)
        fail_msg("on_abort not called after the client's reset");
    usleep(20000); /* time for a second call, which must not come */
    assert_int_equal(__atomic_load_n(&R.aborts, __ATOMIC_ACQUIRE), 1);
    assert_int_equal(nev(), 1); /* no EV_WRONG */
}

/* A client that half-closes (FIN) after its request still gets the answer
 * of a pending handler, as it does from a synchronous one: a FIN alone is
 * no abort. */
static void test_half_close_pending_answered(void **state)
{
    (void)state;
    conn_t *c = conn_open();
    conn_send(c, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(shutdown(c->fd, SHUT_WR), 0);
    WAIT_UNTIL(nev() >= 1);
    mclock_advance_ms(&A.clock, 50); /* the handler's timer */
    resp_t r;
    resp_read(c, &r, false);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "slow");
    char b;
    assert_int_equal(read(c->fd, &b, 1), 0); /* then the server closes */
    conn_close(c);
    static const int order[] = {EV_SLOW, EV_SLOW_FIRE};
    assert_events(order, 2);
}

/* Routes, middleware and the clock are fixed while it runs; a second app on the same
 * port fails to run and says where. */
static void test_busy(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(hp_app_route(A.app, HP_ROUTER_GET, "/late", h_text, "hello", err, sizeof err),
                     -EBUSY);
    assert_true(err[0] != '\0');
    assert_int_equal(hp_app_use(A.app, mw_before, NULL, NULL), -EBUSY);
    assert_int_equal(hp_app_set_clock(A.app, NULL), -EBUSY);

    hp_app_config_t cfg = config(A.listen);
    hp_app_t *second = hp_app_new(&cfg, err, sizeof err);
    assert_non_null(second);
    int r = hp_app_run(second);
    assert_int_equal(r, -EADDRINUSE);
    if (!strstr(hp_app_error(second), A.listen))
        fail_msg("error does not name %s: %s", A.listen, hp_app_error(second));
    /* It never ran: still open to routes. */
    assert_int_equal(hp_app_route(second, HP_ROUTER_GET, "/late", h_item, NULL, err, sizeof err),
                     0);
    hp_app_free(second);

    /* The first still serves. */
    resp_t resp;
    request("GET /hello HTTP/1.1\r\nHost: h\r\n\r\n", &resp);
    assert_string_equal(resp.body, "hello");
}

/* Stopped, the same app runs again (and the teardown stops it again). */
static void test_run_again(void **state)
{
    (void)state;
    stop();
    char err[256];
    assert_int_equal(hp_app_route(A.app, HP_ROUTER_GET, "/late", h_text, "fast", err, sizeof err),
                     0);
    start();
    resp_t r;
    request("GET /late HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    assert_string_equal(r.body, "fast");
}

/* hp_app_reload between runs: a location with its own root and headers
 * appears, restart-only settings keep their values and are named, and a
 * bad root leaves the running configuration in place. */
static void test_reload(void **state)
{
    (void)state;
    stop();
    char dir[] = "/tmp/hotpath-app-XXXXXX", path[128], err[256], restart[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/static", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/static/f.txt", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("file", f);
    fclose(f);

    hp_config_location_t loc = {.path = "/static/", .root = dir, .cache_control = "max-age=7",
                                .compression = false};
    hp_app_config_t cfg = config(A.listen);
    cfg.locations = &loc;
    cfg.nlocations = 1;
    cfg.workers = 3;                    /* needs a restart */
    cfg.http.limits.max_fields = 7;     /* sizes the request state: needs a restart */
    cfg.http.limits.max_body = 3;       /* applies */
    assert_int_equal(hp_app_reload(A.app, &cfg, restart, sizeof restart, err, sizeof err), 0);
    assert_string_equal(restart, "workers, limits.max_headers");

    loc.root = "/nonexistent/hotpath-root";
    assert_int_equal(hp_app_reload(A.app, &cfg, restart, sizeof restart, err, sizeof err),
                     -EINVAL);
    assert_string_equal(err, "cannot open root '/nonexistent/hotpath-root': "
                             "No such file or directory");

    start();
    resp_t r;
    request("GET /static/f.txt HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "file");
    assert_string_equal(header(&r, "Cache-Control"), "max-age=7");
    /* Routes still come first; the new body limit is in force. */
    request("GET /hello HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    assert_string_equal(r.body, "hello");
    request("POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nabcd", &r);
    assert_int_equal(r.status, 413);
    unlink(path);
    snprintf(path, sizeof path, "%s/static", dir);
    rmdir(path);
    rmdir(dir);
}

/* The response cache between middleware and handler: opted-in routes and
 * answers with max-age are replayed, no-store and Set-Cookie are not,
 * entries expire, the key holds the method, query and coding, a POST drops
 * the path's entries, and `after` middleware decorates hits once. */
static void test_response_cache(void **state)
{
    (void)state;
    stop();
    hp_app_free(A.app);
    hp_app_config_t cfg = config(A.listen);
    cfg.http.cache.enabled = true;
    cfg.http.cache.ttl_ms = 60000;
    char err[256];
    A.app = hp_app_new(&cfg, err, sizeof err);
    assert_non_null(A.app);
    static const struct {
        const char *pattern, *kind;
        uint32_t methods;
    } routes[] = {{"/optin", "optin", HP_ROUTER_GET | HP_ROUTER_POST},
                  {"/max-age", "max-age", HP_ROUTER_GET}, {"/no-store", "no-store", HP_ROUTER_GET},
                  {"/cookie", "cookie", HP_ROUTER_GET},   {"/plain", "plain", HP_ROUTER_GET},
                  {"/big", "big", HP_ROUTER_GET}};
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
        assert_int_equal(hp_app_route(A.app, routes[i].methods, routes[i].pattern, h_counted,
                                      (void *)routes[i].kind, err, sizeof err), 0);
    assert_int_equal(hp_app_cache_route(A.app, "/optin", 0), 0);
    assert_int_equal(hp_app_cache_route(A.app, "/big", 0), 0);
    assert_int_equal(hp_app_cache_route(A.app, "/nope", 0), -ENOENT);
    assert_int_equal(hp_app_use(A.app, NULL, mw_after, (void *)1), 0);
    start();

    resp_t r;
    unsigned calls = R.calls;
#define GET(path) request("GET " path " HTTP/1.1\r\nHost: h\r\n\r\n", &r)
    GET("/optin");
    assert_string_equal(r.body, "optin 1");
    GET("/optin");
    assert_string_equal(r.body, "optin 1"); /* replayed */
    assert_string_equal(header(&r, "X-After"), "1");
    assert_int_equal(strstr(strstr(r.head, "X-After") + 1, "X-After"), NULL); /* once */
    GET("/optin?q=2");
    assert_string_equal(r.body, "optin 2"); /* the query is part of the key */
    request("HEAD /optin HTTP/1.1\r\nHost: h\r\n\r\n", &r);
    assert_int_equal(R.calls - calls, 3);  /* so is the method */
    request("POST /optin HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", &r);
    assert_string_equal(r.body, "optin 4");
    GET("/optin");
    assert_string_equal(r.body, "optin 5"); /* the POST dropped it */

    GET("/max-age");
    GET("/max-age");
    assert_string_equal(r.body, "max-age 6");
    assert_string_equal(header(&r, "Cache-Control"), "public, max-age=1");
    /* max-age=1: fresh for 999 ms more, stale at 1000 */
    mclock_advance_ms(&A.clock, 999);
    GET("/max-age");
    assert_string_equal(r.body, "max-age 6");
    mclock_advance_ms(&A.clock, 1);
    GET("/max-age");
    assert_string_equal(r.body, "max-age 7");

    GET("/no-store");
    GET("/no-store");
    assert_string_equal(r.body, "no-store 9");
    GET("/cookie");
    GET("/cookie");
    assert_string_equal(r.body, "cookie 11");
    GET("/plain");
    GET("/plain");
    assert_string_equal(r.body, "plain 13");

    /* Each coding is its own entry, stored compressed. */
    request("GET /big HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\n\r\n", &r);
    assert_string_equal(header(&r, "Content-Encoding"), "gzip");
    size_t gz_len = r.body_len;
    request("GET /big HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\n\r\n", &r);
    assert_string_equal(header(&r, "Content-Encoding"), "gzip");
    assert_int_equal(r.body_len, gz_len);
    assert_int_equal(strstr(strstr(r.head, "Vary") + 1, "Vary"), NULL);
    GET("/big");
    assert_string_equal(header(&r, "Content-Encoding"), "");
    assert_int_equal(r.body_len, 4000);
    assert_int_equal(R.calls - calls, 15);
#undef GET
}

/* A cache of one entry: two routes taking turns evict each other, and
 * /metrics counts it. */
static void test_response_cache_evictions(void **state)
{
    (void)state;
    stop();
    hp_app_free(A.app);
    hp_app_config_t cfg = config(A.listen);
    cfg.http.cache.enabled = true;
    cfg.http.cache.max_entries = 1;
    char err[256];
    A.app = hp_app_new(&cfg, err, sizeof err);
    assert_non_null(A.app);
    assert_int_equal(hp_app_route(A.app, HP_ROUTER_GET, "/a", h_counted, "a", err, sizeof err), 0);
    assert_int_equal(hp_app_route(A.app, HP_ROUTER_GET, "/b", h_counted, "b", err, sizeof err), 0);
    assert_int_equal(hp_app_cache_route(A.app, "/a", 0), 0);
    assert_int_equal(hp_app_cache_route(A.app, "/b", 0), 0);
    assert_int_equal(hp_app_builtin_routes(A.app, HP_APP_BUILTIN_METRICS, NULL, err, sizeof err), 0);
    start();
    resp_t r;
    for (int i = 0; i < 3; i++) {
        request("GET /a HTTP/1.1\r\nHost: h\r\n\r\n", &r);
        request("GET /a HTTP/1.1\r\nHost: h\r\n\r\n", &r); /* a hit */
        request("GET /b HTTP/1.1\r\nHost: h\r\n\r\n", &r); /* evicts /a */
    }
    conn_t *c = conn_open();
    conn_send(c, "GET /metrics HTTP/1.1\r\nHost: h\r\nAccept-Encoding: identity\r\n\r\n");
    resp_read(c, &r, false);
    conn_close(c);
    assert_int_equal(r.status, 200);
    const char *want[] = {"\nhotpath_cache_hits_total 3\n", "\nhotpath_cache_misses_total 6\n",
                          "\nhotpath_cache_evictions_total 5\n", "\nhotpath_cache_entries 1\n"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (!strstr(r.body, want[i]))
            fail_msg("no '%s' in /metrics", want[i] + 1);
}

int main(void)
{
    hp_log_set_level(HP_LOG_WARN); /* no "stopped: ..." line per test */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_errors),
        cmocka_unit_test(test_new_oom),
        cmocka_unit_test(test_route_errors),
        cmocka_unit_test_setup_teardown(test_routes_served, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_middleware_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_ref_once_per_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_timer_pipelined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_half_close_pending_answered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_on_client_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_echo_empty_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_cache_evictions, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
