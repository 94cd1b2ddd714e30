/*
 * test_upgrade.c - unit tests for HTTP upgrades (hp_ctx_upgrade in
 * src/http/ctx.c, http_upgrade in src/http/server.c) on one in-process
 * worker (http_harness.h): the 101 and its headers, the bytes behind the
 * upgrade request handed to the new protocol in order and in the same
 * turn, an upgrade answered later (HP_PENDING, then hp_ctx_finish from
 * outside any callback), the requests hp_ctx_upgrade refuses (-EPERM) and
 * the bad arguments (-EINVAL), middleware that answers something else
 * (no switch), and the upgrade counter.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "net/conn_int.h"
#include "hotpath/ctx.h"
#include "hotpath/log.h"
#include "hotpath/router.h"

#include "http_harness.h"

/* ---- the protocol upgraded to: "E:<line>\n" per line ---- */
static struct {
    int opened;
    int last_r;         /* what hp_ctx_upgrade returned last */
    hp_ctx_t *pending;  /* a held request (/later) */
    bool refuse_after;  /* the `after` middleware turns the 101 into a 500 */
    hp_http_routes_t routes;
} T;

static void e_open(hp_conn_t *c)
{
    (void)c;
    T.opened++;
}

static void e_data(hp_conn_t *c)
{
    while (!(c->flags & HP_CONN_F_CLOSED)) {
        char *d = hp_conn_data(c);
        char *nl = memchr(d, '\n', hp_conn_data_len(c));
        if (!nl)
            break;
        uint32_t n = (uint32_t)(nl - d);
        char out[128];
        int len = snprintf(out, sizeof out, "E:%.*s\n", (int)n, d);
        hp_conn_consume(c, n + 1);
        assert_int_equal(hp_conn_write(c, out, (uint32_t)len), 0);
    }
}

static const hp_proto_t echo = {.name = "echo", .on_open = e_open, .on_data = e_data};

static int up_now(hp_ctx_t *ctx, void *udata)
{
    (void)udata;
    T.last_r = hp_ctx_upgrade(ctx, "echo", &echo, NULL);
    if (T.last_r < 0) {
        hp_ctx_status(ctx, 426);
        hp_ctx_set_header(ctx, "Upgrade", "echo");
    }
    return HP_DONE;
}

static int up_later(hp_ctx_t *ctx, void *udata)
{
    (void)udata;
    T.last_r = hp_ctx_upgrade(ctx, "echo", &echo, NULL);
    T.pending = ctx;
    return HP_PENDING;
}

static int bad_args(hp_ctx_t *ctx, void *udata)
{
    (void)udata;
    hp_proto_t no_data = echo;
    no_data.on_data = NULL;
    assert_int_equal(hp_ctx_upgrade(ctx, "echo", NULL, NULL), -EINVAL);
    assert_int_equal(hp_ctx_upgrade(ctx, "ec ho", &echo, NULL), -EINVAL);
    assert_int_equal(hp_ctx_upgrade(ctx, "", &echo, NULL), -EINVAL);
    assert_int_equal(hp_ctx_upgrade(ctx, "echo", &no_data, NULL), -EINVAL);
    hp_ctx_send_status(ctx, 400);
    return HP_DONE;
}

static int after_refuses(hp_ctx_t *ctx, void *udata)
{
    (void)udata;
    if (T.refuse_after)
        hp_ctx_send_status(ctx, 500);
    return HP_NEXT;
}

static int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof T);
    hh_reset();
    T.routes.router = hp_router_new();
    assert_non_null(T.routes.router);
    static const char *patterns[] = {"/up", "/later", "/bad"};
    static hp_http_reg_t regs[3];
    hp_handler_fn fns[3] = {up_now, up_later, bad_args};
    for (uint32_t i = 0; i < 3; i++) {
        regs[i] = (hp_http_reg_t){fns[i], NULL, i, false, 0};
        assert_int_equal(hp_router_add(T.routes.router, HP_ROUTER_GET | HP_ROUTER_HEAD,
                                       patterns[i], (void *)fns[i], (void *)(uintptr_t)i,
                                       NULL, 0), 0);
    }
    T.routes.regs = regs;
    T.routes.nregs = 3;
    T.routes.patterns = patterns;
    T.routes.npatterns = 3;
    T.routes.nmw = 1;
    T.routes.mw[0] = (hp_http_mw_t){NULL, after_refuses, NULL};
    HH.hcfg.routes = &T.routes;
    hh_start();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hh_teardown();
    hp_router_free(T.routes.router);
    return 0;
}

#define UP "GET /up HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n"

/* Lines behind the request, in the same packet, go to the new protocol
 * after the 101; the connection keeps it. */
static void test_upgrade_now(void **state)
{
    (void)state;
    cli_t *k = cli_open(0);
    cli_sends(k, "GET /bad HTTP/1.1\r\nHost: h\r\n\r\n" UP "one\ntwo\n");
    resp_t r = {0};
    resp_next(k, false, &r);
    assert_int_equal(r.status, 400); /* the request before it, answered first */
    resp_next(k, false, &r);
    assert_int_equal(r.status, 101);
    assert_string_equal(hdr(&r, "Upgrade"), "echo");
    assert_string_equal(hdr(&r, "Connection"), "upgrade");
    assert_null(hdr(&r, "Content-Length"));
    PUMP_UNTIL(k->rxlen >= 12, 1000);
    assert_true(has(k, "E:one\nE:two\n"));
    assert_int_equal(T.opened, 1);
    hp_conn_t *c = conn_of(k);
    assert_ptr_equal(c->proto, &echo);
    k->rxlen = 0;
    cli_sends(k, "three\n");
    PUMP_UNTIL(k->rxlen >= 8, 1000);
    assert_true(has(k, "E:three\n"));
    assert_int_equal(hh_worker()->stats.upgrades, 1);
    resp_free(&r);
}

/* A handler that answers later: the switch happens in hp_ctx_finish,
 * called outside any callback, and the waiting bytes still get through. */
static void test_upgrade_later(void **state)
{
    (void)state;
    cli_t *k = cli_open(0);
    cli_sends(k, "GET /later HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n"
                 "early\n");
    PUMP_UNTIL(T.pending != NULL, 1000);
    assert_non_null(T.pending);
    assert_int_equal(T.last_r, 0);
    pump_for(5);
    assert_int_equal(k->rxlen, 0); /* nothing before the finish */
    hp_ctx_finish(T.pending);
    resp_t r = {0};
    resp_next(k, false, &r);
    assert_int_equal(r.status, 101);
    PUMP_UNTIL(k->rxlen >= 8, 1000);
    assert_true(has(k, "E:early\n"));
    resp_free(&r);
}

/* What cannot be upgraded gets -EPERM and an HTTP answer; the connection
 * stays HTTP. */
static void test_refused(void **state)
{
    (void)state;
    static const char *const reqs[] = {
        "GET /up HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /up HTTP/1.1\r\nHost: h\r\nUpgrade: echo\r\n\r\n",
        "GET /up HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: echoes\r\n\r\n",
        "GET /up HTTP/1.1\r\nHost: h\r\nConnection: upgradex\r\nUpgrade: echo\r\n\r\n",
        "HEAD /up HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n",
        "GET /up HTTP/1.0\r\nConnection: keep-alive, upgrade\r\nUpgrade: echo\r\n\r\n",
    };
    cli_t *k = cli_open(0);
    resp_t r = {0};
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        cli_sends(k, reqs[i]);
        resp_next(k, strncmp(reqs[i], "HEAD", 4) == 0, &r);
        assert_int_equal(r.status, 426);
        assert_int_equal(T.last_r, -EPERM);
        assert_ptr_equal(conn_of(k)->proto, &HH.proto);
    }
    /* Connection: close wins over upgrade. */
    cli_sends(k, "GET /up HTTP/1.1\r\nHost: h\r\nConnection: close, upgrade\r\nUpgrade: echo\r\n\r\n");
    resp_next(k, false, &r);
    assert_int_equal(r.status, 426);
    assert_true(closed_by_server(k));
    assert_int_equal(T.opened, 0);
    assert_int_equal(hh_worker()->stats.upgrades, 0);
    resp_free(&r);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    cli_t *k = cli_open(0);
    resp_t r = {0};
    request(k, "GET /bad HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n",
            &r);
    assert_int_equal(r.status, 400);
    resp_free(&r);
}

/* Middleware that answers something else after all: no 101, no switch,
 * and the bytes behind the request are parsed as HTTP. */
static void test_after_middleware_changes_its_mind(void **state)
{
    (void)state;
    T.refuse_after = true;
    cli_t *k = cli_open(0);
    resp_t r = {0};
    cli_sends(k, UP "GET /bad HTTP/1.1\r\nHost: h\r\n\r\n");
    resp_next(k, false, &r);
    assert_int_equal(r.status, 500);
    resp_next(k, false, &r);
    assert_int_equal(r.status, 500); /* /bad's 400, which `after` turns into 500 */
    assert_int_equal(T.opened, 0);
    assert_ptr_equal(conn_of(k)->proto, &HH.proto);
    resp_free(&r);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    hp_log_set_level(HP_LOG_ERROR);
    hp_http_parser_init();
#define T_(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T_(test_upgrade_now),
        T_(test_upgrade_later),
        T_(test_refused),
        T_(test_bad_arguments),
        T_(test_after_middleware_changes_its_mind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
