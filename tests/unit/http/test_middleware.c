/*
 * test_middleware.c - unit tests for the ready-made middleware
 * (src/http/middleware.c): request IDs, CORS and the OPTIONS handler.
 *
 * Each test runs a real app (app.h) on a thread, with handle_signals off,
 * two workers and a free loopback port, and talks raw HTTP/1.1 to it over
 * sockets, so the middleware sees contexts exactly as a server builds them
 * (routing, the 405 for OPTIONS on routes without it, middleware order,
 * `after` running for early answers). The app is stopped and freed at the
 * end of each test; ASan's leak check covers anything left allocated, and
 * a test checks that the middleware allocates nothing per request.
 */
#include "hotpath/alloc.h"
#include "hotpath/app.h"
#include "hotpath/middleware.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- the app under test ---- */

enum {
    USE_ID = 1,         /* hp_middleware_request_id */
    USE_CORS = 2,       /* hp_middleware_cors_before/after */
    USE_CORS_FIRST = 4, /* with both: CORS added before the request ID */
};

typedef struct srv {
    hp_app_t *app;
    pthread_t th;
    int port;
    int rc;
    char listen[32];
} srv_t;

static void *srv_main(void *arg)
{
    srv_t *s = arg;
    s->rc = hp_app_run(s->app);
    return NULL;
}

/* GET /id: the body is "id=<the ID the handler sees>" or "id=none". */
static int h_id(hp_ctx_t *ctx, void *udata)
{
    (void)udata;
    size_t len = 0;
    const char *id = hp_middleware_request_id_of(ctx, &len);
    char body[128];
    int n = id ? snprintf(body, sizeof body, "id=%.*s", (int)len, id)
               : snprintf(body, sizeof body, "id=none");
    hp_ctx_send(ctx, "text/plain", body, (size_t)n);
    return HP_DONE;
}

static int h_ok(hp_ctx_t *ctx, void *udata)
{
    (void)udata;
    hp_ctx_send(ctx, "text/plain", "ok", 2);
    return HP_DONE;
}

/* The pattern for a route registered as GET | OPTIONS with one handler:
 * plain OPTIONS goes on to hp_middleware_options_handler. */
static int h_both(hp_ctx_t *ctx, void *udata)
{
    if (hp_ctx_method_bit(ctx) == HP_ROUTER_OPTIONS)
        return hp_middleware_options_handler(ctx, udata);
    return h_ok(ctx, udata);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void srv_start(srv_t *s, int use, const hp_cors_config_t *cors)
{
    memset(s, 0, sizeof *s);
    char err[256];
    s->port = free_port();
    snprintf(s->listen, sizeof s->listen, "127.0.0.1:%d", s->port);
    hp_app_config_t cfg = HP_APP_CONFIG_DEFAULT;
    cfg.listen = s->listen;
    cfg.workers = 2;
    cfg.handle_signals = false;
    cfg.quiet = true;
    s->app = hp_app_new(&cfg, err, sizeof err);
    assert_non_null(s->app);
    hp_app_t *app = s->app;
    if ((use & USE_CORS) && (use & USE_CORS_FIRST))
        assert_int_equal(hp_app_use(app, hp_middleware_cors_before, hp_middleware_cors_after, (void *)cors), 0);
    if (use & USE_ID)
        assert_int_equal(hp_app_use(app, hp_middleware_request_id, NULL, NULL), 0);
    if ((use & USE_CORS) && !(use & USE_CORS_FIRST))
        assert_int_equal(hp_app_use(app, hp_middleware_cors_before, hp_middleware_cors_after, (void *)cors), 0);
    assert_int_equal(hp_app_route(app, HP_ROUTER_GET, "/id", h_id, NULL, err, sizeof err), 0);
    assert_int_equal(hp_app_route(app, HP_ROUTER_GET | HP_ROUTER_POST, "/api", h_ok, NULL, err,
                                  sizeof err), 0);
    assert_int_equal(hp_app_route(app, HP_ROUTER_OPTIONS, "/api", hp_middleware_options_handler, NULL,
                                  err, sizeof err), 0);
    assert_int_equal(hp_app_route(app, HP_ROUTER_GET | HP_ROUTER_OPTIONS, "/both", h_both, NULL,
                                  err, sizeof err), 0);
    assert_int_equal(hp_app_route(app, HP_ROUTER_GET, "/plain", h_ok, NULL, err, sizeof err), 0);
    assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
    for (int i = 0; i < 2000; i++) { /* up to 20 s: only a broken app takes that */
        int fd = dial(s->port);
        if (fd >= 0) {
            close(fd);
            return;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fail_msg("app did not listen on %s", s->listen);
}

static void srv_stop(srv_t *s)
{
    hp_app_stop(s->app);
    pthread_join(s->th, NULL);
    assert_int_equal(s->rc, 0);
    hp_app_free(s->app);
    s->app = NULL;
}

/* ---- a small HTTP/1.1 client ---- */

typedef struct cli {
    int fd;
    size_t len;
    char buf[1 << 16];
} cli_t;

typedef struct resp {
    int status;
    char head[4096]; /* status line and headers, NUL-terminated */
    char body[512];
    size_t body_len;
} resp_t;

static cli_t *cli_open(int port)
{
    cli_t *k = calloc(1, sizeof *k);
    assert_non_null(k);
    k->fd = dial(port);
    assert_true(k->fd >= 0);
    return k;
}

static void cli_close(cli_t *k)
{
    close(k->fd);
    free(k);
}

static void cli_send(cli_t *k, const char *data, size_t len)
{
    while (len) {
        ssize_t n = send(k->fd, data, len, MSG_NOSIGNAL);
        assert_true(n > 0);
        data += n;
        len -= (size_t)n;
    }
}

static void cli_fill(cli_t *k)
{
    assert_true(k->len < sizeof k->buf);
    ssize_t n = recv(k->fd, k->buf + k->len, sizeof k->buf - k->len, 0);
    if (n <= 0)
        fail_msg("connection closed or timed out (%zd, %s)", n, strerror(errno));
    k->len += (size_t)n;
}

/* Reads one response (without a body after HEAD). */
static void cli_read(cli_t *k, resp_t *r, bool head_only)
{
    char *end;
    while (!(end = memmem(k->buf, k->len, "\r\n\r\n", 4)))
        cli_fill(k);
    size_t hlen = (size_t)(end - k->buf) + 4;
    assert_true(hlen < sizeof r->head);
    memcpy(r->head, k->buf, hlen);
    r->head[hlen] = '\0';
    assert_int_equal(sscanf(r->head, "HTTP/1.1 %d", &r->status), 1);
    size_t clen = 0;
    const char *cl = strcasestr(r->head, "\r\nContent-Length: ");
    if (cl && !head_only)
        clen = strtoul(cl + 18, NULL, 10);
    assert_true(clen < sizeof r->body);
    while (k->len < hlen + clen)
        cli_fill(k);
    memcpy(r->body, k->buf + hlen, clen);
    r->body[clen] = '\0';
    r->body_len = clen;
    memmove(k->buf, k->buf + hlen + clen, k->len - hlen - clen);
    k->len -= hlen + clen;
}

/* One request on a fresh connection. `extra` holds header lines, each
 * ending in CRLF (or is ""). */
static void req(int port, const char *method, const char *path, const char *extra, resp_t *r)
{
    cli_t *k = cli_open(port);
    char msg[2048];
    int n = snprintf(msg, sizeof msg, "%s %s HTTP/1.1\r\nHost: t\r\n%s\r\n", method, path, extra);
    cli_send(k, msg, (size_t)n);
    cli_read(k, r, strcmp(method, "HEAD") == 0);
    cli_close(k);
}

/* The value of response header `name` (copied into a static buffer), or
 * NULL when absent. */
static const char *hdr(const resp_t *r, const char *name)
{
    static char val[512];
    char pat[128];
    snprintf(pat, sizeof pat, "\r\n%s: ", name);
    const char *p = strcasestr(r->head, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    size_t n = strcspn(p, "\r");
    assert_true(n < sizeof val);
    memcpy(val, p, n);
    val[n] = '\0';
    return val;
}

static int hdr_count(const resp_t *r, const char *name)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\r\n%s: ", name);
    int n = 0;
    for (const char *p = r->head; (p = strcasestr(p, pat)); p += strlen(pat))
        n++;
    return n;
}

static void assert_hdr(const resp_t *r, const char *name, const char *want)
{
    const char *v = hdr(r, name);
    if (!want) {
        if (v)
            fail_msg("unexpected %s: %s in\n%s", name, v, r->head);
        return;
    }
    if (!v || strcmp(v, want) != 0)
        fail_msg("%s: want '%s', got '%s' in\n%s", name, want, v ? v : "(none)", r->head);
    assert_int_equal(hdr_count(r, name), 1);
}

/* A generated ID: 8 hex, "-w", a decimal worker id, "-", 12 to 16 hex. */
static bool id_generated_form(const char *id)
{
    size_t i = 0;
    for (; i < 8; i++)
        if (!strchr("0123456789abcdef", id[i]) || !id[i])
            return false;
    if (strncmp(id + 8, "-w", 2) != 0)
        return false;
    i = 10;
    size_t d = i;
    while (id[i] >= '0' && id[i] <= '9')
        i++;
    if (i == d || id[i++] != '-')
        return false;
    size_t h = i;
    while (id[i] && strchr("0123456789abcdef", id[i]))
        i++;
    return id[i] == '\0' && i - h >= 12 && i - h <= 16;
}

/* ---- request ID ---- */

static void test_request_id_echo(void **state)
{
    (void)state;
    srv_t s;
    srv_start(&s, USE_ID, NULL);
    static const char *const sane[] = {"abc", "A-b_c.9", "x",
                                       "0123456789012345678901234567890123456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof sane / sizeof *sane; i++) {
        char extra[256], want[128];
        snprintf(extra, sizeof extra, "X-Request-Id: %s\r\n", sane[i]);
        resp_t r;
        req(s.port, "GET", "/id", extra, &r);
        assert_int_equal(r.status, 200);
        assert_hdr(&r, "X-Request-Id", sane[i]);
        snprintf(want, sizeof want, "id=%s", sane[i]);
        assert_string_equal(r.body, want);
    }
    /* The header name is matched case-insensitively. */
    resp_t r;
    req(s.port, "GET", "/id", "x-request-ID: lower-case\r\n", &r);
    assert_hdr(&r, "X-Request-Id", "lower-case");
    /* Routes without a handler reading it still get the header. */
    req(s.port, "GET", "/plain", "X-Request-Id: on-plain\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_hdr(&r, "X-Request-Id", "on-plain");
    srv_stop(&s);
}

static void test_request_id_replaced(void **state)
{
    (void)state;
    srv_t s;
    srv_start(&s, USE_ID, NULL);
    char too_long[100];
    memset(too_long, 'a', 65);
    too_long[65] = '\0';
    char extra_long[128];
    snprintf(extra_long, sizeof extra_long, "X-Request-Id: %s\r\n", too_long);
    const char *const insane[] = {
        extra_long,
        "X-Request-Id: \r\n",                  /* empty */
        "X-Request-Id: a b\r\n",               /* space */
        "X-Request-Id: abc;drop\r\n",          /* ';' */
        "X-Request-Id: <script>\r\n",
        "X-Request-Id: caf\xc3\xa9\r\n",       /* non-ASCII */
        "X-Request-Id: a/b\r\n",
        "", /* absent */
    };
    for (size_t i = 0; i < sizeof insane / sizeof *insane; i++) {
        resp_t r;
        req(s.port, "GET", "/id", insane[i], &r);
        assert_int_equal(r.status, 200);
        const char *id = hdr(&r, "X-Request-Id");
        assert_non_null(id);
        if (!id_generated_form(id))
            fail_msg("case %zu: not a generated ID: '%s'", i, id);
        assert_int_equal(hdr_count(&r, "X-Request-Id"), 1);
        /* The handler saw the same one. */
        char want[128];
        snprintf(want, sizeof want, "id=%s", id);
        assert_string_equal(r.body, want);
    }
    srv_stop(&s);
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

#define NIDS 10000
#define NCONN 4
#define BATCH 100
typedef char id_t_[40];

/* Fetches n IDs over NCONN pipelined keep-alive connections into ids[]. */
static void collect_ids(int port, id_t_ *ids, int n)
{
    cli_t *k[NCONN];
    for (int c = 0; c < NCONN; c++)
        k[c] = cli_open(port);
    static const char one[] = "GET /id HTTP/1.1\r\nHost: t\r\n\r\n";
    char batch[BATCH * sizeof one];
    for (int b = 0; b < BATCH; b++)
        memcpy(batch + b * (sizeof one - 1), one, sizeof one - 1);
    int got = 0;
    while (got < n) {
        int per = n - got < BATCH ? n - got : BATCH;
        cli_t *c = k[(got / BATCH) % NCONN];
        cli_send(c, batch, (size_t)per * (sizeof one - 1));
        for (int i = 0; i < per; i++) {
            resp_t r;
            cli_read(c, &r, false);
            assert_int_equal(r.status, 200);
            const char *id = hdr(&r, "X-Request-Id");
            assert_non_null(id);
            assert_true(strlen(id) < sizeof ids[0]);
            strcpy(ids[got], id);
            assert_string_equal(r.body + 3, id);
            got++;
        }
    }
    for (int c = 0; c < NCONN; c++)
        cli_close(k[c]);
}

static void test_request_id_unique(void **state)
{
    (void)state;
    id_t_ *ids = calloc(NIDS + 200, sizeof *ids);
    assert_non_null(ids);
    srv_t s;
    srv_start(&s, USE_ID, NULL);
    collect_ids(s.port, ids, NIDS);
    srv_stop(&s);
    /* A second app in the same process: new worker threads, the same
     * worker ids, and still no ID seen before. */
    srv_start(&s, USE_ID, NULL);
    collect_ids(s.port, ids + NIDS, 200);
    srv_stop(&s);

    for (int i = 0; i < NIDS + 200; i++) {
        if (!id_generated_form(ids[i]))
            fail_msg("not a generated ID: '%s'", ids[i]);
        /* One random prefix for the whole process. */
        assert_memory_equal(ids[i], ids[0], 8);
    }
    qsort(ids, NIDS + 200, sizeof *ids, cmp_id);
    for (int i = 1; i < NIDS + 200; i++)
        if (strcmp(ids[i - 1], ids[i]) == 0)
            fail_msg("duplicate ID %s", ids[i]);
    free(ids);
}

/* Steady-state requests through both middlewares allocate nothing. */
static void test_no_allocation(void **state)
{
    (void)state;
    static const char *const origins[] = {"https://a.example", NULL};
    const hp_cors_config_t cors = {.origins = origins, .max_age = 60};
    srv_t s;
    srv_start(&s, USE_ID | USE_CORS, &cors);
    cli_t *k = cli_open(s.port);
    static const char get[] = "GET /id HTTP/1.1\r\nHost: t\r\nOrigin: https://a.example\r\n\r\n";
    static const char pre[] = "OPTIONS /api HTTP/1.1\r\nHost: t\r\nOrigin: https://a.example\r\n"
                              "Access-Control-Request-Method: POST\r\n\r\n";
    resp_t r;
    for (int round = 0; round < 2; round++) {
        uint64_t before = hp_alloc_count();
        for (int i = 0; i < 200; i++) {
            cli_send(k, i & 1 ? get : pre, i & 1 ? sizeof get - 1 : sizeof pre - 1);
            cli_read(k, &r, false);
            assert_int_equal(r.status, i & 1 ? 200 : 204);
        }
        /* The first round warms the connection up. */
        if (round == 1)
            assert_int_equal(hp_alloc_count(), before);
    }
    cli_close(k);
    srv_stop(&s);
}

static void test_request_id_absent_without_middleware(void **state)
{
    (void)state;
    srv_t s;
    srv_start(&s, 0, NULL);
    resp_t r;
    req(s.port, "GET", "/id", "X-Request-Id: abc\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_hdr(&r, "X-Request-Id", NULL);
    assert_string_equal(r.body, "id=none");
    srv_stop(&s);
}

/* ---- CORS ---- */

static const char *const list_origins[] = {"https://a.example", "http://b.example:8080", NULL};
static const char *const star_origins[] = {"*", NULL};

#define PREFLIGHT(origin) "Origin: " origin "\r\nAccess-Control-Request-Method: POST\r\n"

static void test_cors_preflight_list(void **state)
{
    (void)state;
    const hp_cors_config_t cors = {.origins = list_origins,
                                   .methods = "GET, POST",
                                   .headers = "Content-Type, X-Request-Id",
                                   .max_age = 600};
    srv_t s;
    srv_start(&s, USE_CORS, &cors);
    resp_t r;
    req(s.port, "OPTIONS", "/api", PREFLIGHT("https://a.example"), &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.body_len, 0);
    assert_hdr(&r, "Access-Control-Allow-Origin", "https://a.example");
    assert_hdr(&r, "Access-Control-Allow-Methods", "GET, POST");
    assert_hdr(&r, "Access-Control-Allow-Headers", "Content-Type, X-Request-Id");
    assert_hdr(&r, "Access-Control-Max-Age", "600");
    assert_hdr(&r, "Access-Control-Allow-Credentials", NULL);
    assert_hdr(&r, "Vary", "Origin");
    assert_hdr(&r, "Allow", NULL); /* the handler did not run */

    /* The second entry, and case differences in scheme and host. */
    req(s.port, "OPTIONS", "/api", PREFLIGHT("HTTP://B.example:8080"), &r);
    assert_int_equal(r.status, 204);
    assert_hdr(&r, "Access-Control-Allow-Origin", "http://b.example:8080");

    /* Denied: other origins, a prefix of an allowed one, another port. */
    static const char *const denied[] = {
        PREFLIGHT("https://evil.example"), PREFLIGHT("https://a.example.evil"),
        PREFLIGHT("https://a.exampl"), PREFLIGHT("http://b.example"), PREFLIGHT("null"),
        PREFLIGHT(""),
    };
    for (size_t i = 0; i < sizeof denied / sizeof *denied; i++) {
        req(s.port, "OPTIONS", "/api", denied[i], &r);
        assert_int_equal(r.status, 403);
        assert_hdr(&r, "Access-Control-Allow-Origin", NULL);
        assert_hdr(&r, "Access-Control-Allow-Methods", NULL);
        assert_hdr(&r, "Vary", "Origin");
    }

    /* Not preflights: a plain OPTIONS (no Origin, or no request method)
     * reaches the handler, which lists the route's methods. */
    req(s.port, "OPTIONS", "/api", "", &r);
    assert_int_equal(r.status, 204);
    assert_hdr(&r, "Allow", "GET, HEAD, POST, OPTIONS");
    assert_hdr(&r, "Access-Control-Allow-Origin", NULL);
    req(s.port, "OPTIONS", "/api", "Origin: https://a.example\r\n", &r);
    assert_int_equal(r.status, 204);
    assert_hdr(&r, "Allow", "GET, HEAD, POST, OPTIONS");
    assert_hdr(&r, "Access-Control-Allow-Origin", "https://a.example");
    req(s.port, "OPTIONS", "/both", "", &r);
    assert_int_equal(r.status, 204);
    assert_hdr(&r, "Allow", "GET, HEAD, OPTIONS");

    /* A route without OPTIONS: the router answers 405 before any
     * middleware, which is why routes must register OPTIONS. */
    req(s.port, "OPTIONS", "/plain", PREFLIGHT("https://a.example"), &r);
    assert_int_equal(r.status, 405);
    assert_hdr(&r, "Access-Control-Allow-Origin", NULL);
    srv_stop(&s);
}

static void test_cors_preflight_defaults(void **state)
{
    (void)state;
    /* No methods: the route's; no headers, no max-age: not sent. */
    const hp_cors_config_t cors = {.origins = list_origins};
    srv_t s;
    srv_start(&s, USE_CORS, &cors);
    resp_t r;
    req(s.port, "OPTIONS", "/api", PREFLIGHT("https://a.example"), &r);
    assert_int_equal(r.status, 204);
    assert_hdr(&r, "Access-Control-Allow-Methods", "GET, HEAD, POST, OPTIONS");
    assert_hdr(&r, "Access-Control-Allow-Headers", NULL);
    assert_hdr(&r, "Access-Control-Max-Age", NULL);
    req(s.port, "OPTIONS", "/both", PREFLIGHT("https://a.example"), &r);
    assert_int_equal(r.status, 204);
    assert_hdr(&r, "Access-Control-Allow-Methods", "GET, HEAD, OPTIONS");
    srv_stop(&s);
}

static void test_cors_star(void **state)
{
    (void)state;
    const hp_cors_config_t cors = {.origins = star_origins, .max_age = 5};
    srv_t s;
    srv_start(&s, USE_CORS, &cors);
    resp_t r;
    req(s.port, "OPTIONS", "/api", PREFLIGHT("https://anything.example"), &r);
    assert_int_equal(r.status, 204);
    assert_hdr(&r, "Access-Control-Allow-Origin", "*");
    assert_hdr(&r, "Access-Control-Max-Age", "5");
    assert_hdr(&r, "Vary", "Origin");
    /* Normal requests: "*", and no Vary since the answer is the same for
     * every origin. */
    req(s.port, "GET", "/api", "Origin: https://anything.example\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok");
    assert_hdr(&r, "Access-Control-Allow-Origin", "*");
    assert_hdr(&r, "Vary", NULL);
    assert_hdr(&r, "Access-Control-Allow-Credentials", NULL);
    req(s.port, "GET", "/api", "", &r);
    assert_hdr(&r, "Access-Control-Allow-Origin", NULL);
    assert_hdr(&r, "Vary", NULL);
    srv_stop(&s);
}

static void test_cors_credentials(void **state)
{
    (void)state;
    /* "*" with credentials: the origin is echoed, never "*". */
    const hp_cors_config_t star = {.origins = star_origins, .allow_credentials = true};
    srv_t s;
    srv_start(&s, USE_CORS, &star);
    resp_t r;
    req(s.port, "OPTIONS", "/api", PREFLIGHT("https://c.example"), &r);
    assert_int_equal(r.status, 204);
    assert_hdr(&r, "Access-Control-Allow-Origin", "https://c.example");
    assert_hdr(&r, "Access-Control-Allow-Credentials", "true");
    assert_hdr(&r, "Vary", "Origin");
    req(s.port, "GET", "/api", "Origin: https://d.example\r\n", &r);
    assert_hdr(&r, "Access-Control-Allow-Origin", "https://d.example");
    assert_hdr(&r, "Access-Control-Allow-Credentials", "true");
    assert_hdr(&r, "Vary", "Origin");
    /* An origin too long to echo is refused. */
    char extra[512] = "Origin: https://";
    memset(extra + 16, 'x', 300);
    strcpy(extra + 316, "\r\nAccess-Control-Request-Method: GET\r\n");
    req(s.port, "OPTIONS", "/api", extra, &r);
    assert_int_equal(r.status, 403);
    srv_stop(&s);

    const hp_cors_config_t list = {.origins = list_origins, .allow_credentials = true,
                                   .expose = "X-Request-Id"};
    srv_start(&s, USE_CORS, &list);
    req(s.port, "GET", "/api", "Origin: https://a.example\r\n", &r);
    assert_hdr(&r, "Access-Control-Allow-Origin", "https://a.example");
    assert_hdr(&r, "Access-Control-Allow-Credentials", "true");
    assert_hdr(&r, "Access-Control-Expose-Headers", "X-Request-Id");
    req(s.port, "GET", "/api", "Origin: https://other.example\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_hdr(&r, "Access-Control-Allow-Origin", NULL);
    assert_hdr(&r, "Access-Control-Allow-Credentials", NULL);
    assert_hdr(&r, "Access-Control-Expose-Headers", NULL);
    srv_stop(&s);
}

static void test_cors_normal_requests(void **state)
{
    (void)state;
    const hp_cors_config_t cors = {.origins = list_origins, .max_age = 600};
    srv_t s;
    srv_start(&s, USE_CORS, &cors);
    resp_t r;
    /* Allowed origin: the origin and Vary, nothing preflight-only. */
    req(s.port, "GET", "/api", "Origin: https://a.example\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok");
    assert_hdr(&r, "Access-Control-Allow-Origin", "https://a.example");
    assert_hdr(&r, "Vary", "Origin");
    assert_hdr(&r, "Access-Control-Max-Age", NULL);
    assert_hdr(&r, "Access-Control-Allow-Methods", NULL);
    assert_hdr(&r, "Access-Control-Allow-Credentials", NULL);
    req(s.port, "POST", "/api", "Origin: https://a.example\r\nContent-Length: 0\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_hdr(&r, "Access-Control-Allow-Origin", "https://a.example");
    req(s.port, "HEAD", "/api", "Origin: http://b.example:8080\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_hdr(&r, "Access-Control-Allow-Origin", "http://b.example:8080");
    /* Disallowed origin: answered (the browser enforces), without the
     * header, with Vary. */
    req(s.port, "GET", "/api", "Origin: https://evil.example\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok");
    assert_hdr(&r, "Access-Control-Allow-Origin", NULL);
    assert_hdr(&r, "Vary", "Origin");
    /* No Origin: same-origin or not a browser; Vary only. */
    req(s.port, "GET", "/api", "", &r);
    assert_int_equal(r.status, 200);
    assert_hdr(&r, "Access-Control-Allow-Origin", NULL);
    assert_hdr(&r, "Vary", "Origin");
    /* No route matched: no middleware runs at all. */
    req(s.port, "GET", "/nope", "Origin: https://a.example\r\n", &r);
    assert_int_equal(r.status, 404);
    assert_hdr(&r, "Access-Control-Allow-Origin", NULL);
    srv_stop(&s);
}

/* Request ID first: preflights carry an ID; CORS first: its early answer
 * skips the request ID's `before`, while normal requests get both. */
static void test_order(void **state)
{
    (void)state;
    const hp_cors_config_t cors = {.origins = list_origins};
    srv_t s;
    srv_start(&s, USE_ID | USE_CORS, &cors);
    resp_t r;
    req(s.port, "OPTIONS", "/api", "X-Request-Id: pre-1\r\n" PREFLIGHT("https://a.example"), &r);
    assert_int_equal(r.status, 204);
    assert_hdr(&r, "X-Request-Id", "pre-1");
    assert_hdr(&r, "Access-Control-Allow-Origin", "https://a.example");
    req(s.port, "OPTIONS", "/api", PREFLIGHT("https://evil.example"), &r);
    assert_int_equal(r.status, 403);
    assert_true(id_generated_form(hdr(&r, "X-Request-Id")));
    req(s.port, "GET", "/id", "Origin: https://a.example\r\nX-Request-Id: get-1\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "id=get-1");
    assert_hdr(&r, "X-Request-Id", "get-1");
    assert_hdr(&r, "Access-Control-Allow-Origin", "https://a.example");
    /* Headers appear in the order the middleware set them. */
    assert_true(strcasestr(r.head, "X-Request-Id:") < strcasestr(r.head, "Access-Control-Allow-Origin:"));
    srv_stop(&s);

    srv_start(&s, USE_ID | USE_CORS | USE_CORS_FIRST, &cors);
    req(s.port, "OPTIONS", "/api", "X-Request-Id: pre-2\r\n" PREFLIGHT("https://a.example"), &r);
    assert_int_equal(r.status, 204);
    assert_hdr(&r, "Access-Control-Allow-Origin", "https://a.example");
    assert_hdr(&r, "X-Request-Id", NULL);
    req(s.port, "GET", "/id", "Origin: https://a.example\r\nX-Request-Id: get-2\r\n", &r);
    assert_string_equal(r.body, "id=get-2");
    assert_hdr(&r, "X-Request-Id", "get-2");
    assert_hdr(&r, "Access-Control-Allow-Origin", "https://a.example");
    srv_stop(&s);
}

static void test_cors_check(void **state)
{
    (void)state;
    static const char *const empty[] = {NULL};
    static const char *const blank[] = {"", NULL};
    static const char *const crlf[] = {"https://a.example\r\nX: y", NULL};
    assert_int_equal(hp_middleware_cors_check(NULL), -EINVAL);
    assert_int_equal(hp_middleware_cors_check(&(hp_cors_config_t){0}), -EINVAL);
    assert_int_equal(hp_middleware_cors_check(&(hp_cors_config_t){.origins = empty}), -EINVAL);
    assert_int_equal(hp_middleware_cors_check(&(hp_cors_config_t){.origins = blank}), -EINVAL);
    assert_int_equal(hp_middleware_cors_check(&(hp_cors_config_t){.origins = crlf}), -EINVAL);
    assert_int_equal(hp_middleware_cors_check(&(hp_cors_config_t){.origins = list_origins,
                                                          .headers = "A\nB"}), -EINVAL);
    assert_int_equal(hp_middleware_cors_check(&(hp_cors_config_t){.origins = list_origins,
                                                          .methods = "GET\r"}), -EINVAL);
    assert_int_equal(hp_middleware_cors_check(&(hp_cors_config_t){.origins = list_origins,
                                                          .expose = "X\r\n"}), -EINVAL);
    assert_int_equal(hp_middleware_cors_check(&(hp_cors_config_t){.origins = list_origins,
                                                          .methods = "GET",
                                                          .headers = "Content-Type",
                                                          .expose = "X-Request-Id"}), 0);
    assert_int_equal(hp_middleware_cors_check(&(hp_cors_config_t){.origins = star_origins}), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_id_echo),
        cmocka_unit_test(test_request_id_replaced),
        cmocka_unit_test(test_request_id_unique),
        cmocka_unit_test(test_request_id_absent_without_middleware),
        cmocka_unit_test(test_no_allocation),
        cmocka_unit_test(test_cors_preflight_list),
        cmocka_unit_test(test_cors_preflight_defaults),
        cmocka_unit_test(test_cors_star),
        cmocka_unit_test(test_cors_credentials),
        cmocka_unit_test(test_cors_normal_requests),
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_cors_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
