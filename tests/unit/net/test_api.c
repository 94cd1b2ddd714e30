/*
 * test_api.c - the engine as an embedder sees it: only installed headers,
 * opaque types reached through functions.
 *
 * A protocol written against the public API (data, consume, persistent
 * and per-request state, udata, fd, closed) runs on a standalone worker
 * (hp_worker_new, run on a thread of its own, stopped from another thread)
 * and on an engine (hp_engine_new and its accessors); a standalone loop
 * (hp_loop_new) fires a timer. Nothing here includes a private header:
 * if an accessor an embedder needs were missing, this would not compile.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "hotpath/conn.h"
#include "hotpath/engine.h"
#include "hotpath/listener.h"
#include "hotpath/log.h"
#include "hotpath/loop.h"
#include "hotpath/timer.h"
#include "hotpath/worker.h"

/* ---- a standalone loop ---- */

typedef struct {
    hp_timer_t timer;
    int fired;
} tick_t;

static void on_tick(hp_timer_t *t)
{
    HP_CONTAINER_OF(t, tick_t, timer)->fired++;
}

static void test_loop_new_and_timer(void **state)
{
    (void)state;
    hp_loop_t *loop = NULL;
    assert_int_equal(hp_loop_new(&loop), 0);
    assert_non_null(loop);
    tick_t t = {0};
    hp_timer_init(&t.timer, on_tick);
    uint64_t start = hp_loop_now(loop);
    hp_loop_timer_arm(loop, &t.timer, 5);
    assert_true(hp_timer_armed(&t.timer));
    for (int i = 0; i < 100 && !t.fired; i++)
        assert_true(hp_loop_run_once(loop, 50) >= 0);
    assert_int_equal(t.fired, 1);
    assert_true(hp_loop_now(loop) >= start + 5);
    hp_loop_timer_arm(loop, &t.timer, 60000);
    hp_loop_timer_cancel(loop, &t.timer);
    assert_false(hp_timer_armed(&t.timer));
    hp_loop_free(loop);
    hp_loop_free(NULL);
}

/* ---- a protocol written against the public API ----
 *
 * "sum": each line of decimal digits is answered with the running total of
 * the connection (persistent state) and the length of the line (per-request
 * state, set up once per read chunk). "quit" closes the connection. */

typedef struct {
    unsigned long total;
} sum_cstate_t;

typedef struct {
    uint32_t magic;
    uint32_t lines; /* lines seen since this read chunk was set up */
} sum_state_t;

typedef struct {
    int opened, closed, fd_ok, udata_ok, proto_ok, worker_ok;
} sum_seen_t;

static const hp_proto_t sum_proto;

static int sum_worker_init(hp_worker_t *w, void *arg, void **data)
{
    (void)w;
    *data = arg;
    return 0;
}

static void sum_open(hp_conn_t *c)
{
    sum_seen_t *seen = hp_conn_udata(c);
    seen->opened++;
    seen->fd_ok += hp_conn_fd(c) >= 0;
    seen->proto_ok += hp_conn_proto(c) == &sum_proto;
    seen->worker_ok += hp_conn_worker(c) != NULL &&
                       hp_worker_proto_data(hp_conn_worker(c), &sum_proto) == seen;
}

static void sum_data(hp_conn_t *c)
{
    sum_cstate_t *cs = hp_conn_cstate(c);
    sum_state_t *st = hp_conn_state(c);
    assert_non_null(cs);
    assert_non_null(st);
    if (!hp_conn_state_valid(c)) {
        *st = (sum_state_t){.magic = 0x5e7, .lines = 0};
        hp_conn_state_set_valid(c);
    }
    assert_int_equal(st->magic, 0x5e7);
    while (!hp_conn_is_closed(c) && hp_conn_data_len(c) > 0) {
        char *d = hp_conn_data(c);
        char *nl = memchr(d, '\n', hp_conn_data_len(c));
        if (!nl) {
            hp_conn_set_busy(c, true); /* keep the state while the line is partial */
            return;
        }
        uint32_t n = (uint32_t)(nl - d);
        if (n == 4 && memcmp(d, "quit", 4) == 0) {
            hp_conn_consume(c, n + 1);
            hp_conn_close_after_write(c); /* what is queued goes first */
            break;
        }
        unsigned long v = 0;
        for (uint32_t i = 0; i < n; i++)
            v = v * 10 + (unsigned long)(d[i] - '0');
        cs->total += v;
        st->lines++;
        char line[64];
        int len = snprintf(line, sizeof line, "%lu %u\n", cs->total, st->lines);
        assert_int_equal(hp_conn_write(c, line, (uint32_t)len), 0);
        hp_conn_consume(c, n + 1);
    }
    hp_conn_set_busy(c, false);
}

static void sum_close(hp_conn_t *c)
{
    sum_seen_t *seen = hp_conn_udata(c);
    seen->closed++;
    assert_true(hp_conn_is_closed(c));
}

static const hp_proto_t sum_proto = {
    .name = "sum",
    .on_open = sum_open,
    .on_data = sum_data,
    .on_close = sum_close,
    .worker_init = sum_worker_init,
    .state_size = sizeof(sum_state_t),
    .cstate_size = sizeof(sum_cstate_t),
};

static int listen_any(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 16), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static int dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Reads until `want` bytes came or the peer closed; returns the count. */
static size_t read_all(int fd, char *buf, size_t want)
{
    size_t got = 0;
    while (got < want) {
        ssize_t n = read(fd, buf + got, want - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    return got;
}

/* Two lines in one packet, one split across two: totals add up on the
 * connection; "quit" closes it. */
static void talk(uint16_t port)
{
    int fd = dial(port);
    const char *first = "12\n30\n5";
    assert_int_equal(write(fd, first, strlen(first)), (ssize_t)strlen(first));
    char buf[128];
    const char *want1 = "12 1\n42 2\n";
    assert_int_equal(read_all(fd, buf, strlen(want1)), strlen(want1));
    assert_string_equal(buf, want1);
    assert_int_equal(write(fd, "8\nquit\n", 7), 7);
    const char *want2 = "100 3\n";
    assert_int_equal(read_all(fd, buf, sizeof buf - 1), strlen(want2));
    assert_string_equal(buf, want2); /* and then EOF: quit closed it */
    close(fd);
}

static void test_standalone_worker(void **state)
{
    (void)state;
    hp_worker_config_t cfg = HP_WORKER_CONFIG_DEFAULT;
    hp_worker_t *w = NULL;
    cfg.rbuf_size = 100; /* too small to work with */
    assert_int_equal(hp_worker_new(&w, 0, -1, &cfg), -EINVAL);
    cfg = HP_WORKER_CONFIG_DEFAULT;
    assert_int_equal(hp_worker_new(&w, 7, -1, &cfg), 0);
    cfg.rbuf_size = 1; /* copied: the worker no longer reads it */
    assert_int_equal(hp_worker_id(w), 7);
    assert_non_null(hp_worker_loop(w));

    sum_seen_t seen = {0};
    assert_int_equal(hp_worker_add_proto(w, &sum_proto, &seen), 0);
    uint16_t port;
    assert_int_equal(hp_worker_listen(w, listen_any(&port), &sum_proto), 0);
    assert_int_equal(hp_worker_start(w), 0);
    talk(port);
    /* The counters, read from this thread while the worker runs. */
    hp_worker_stats_t s = {0};
    for (int i = 0; i < 500 && s.closed < 1; i++) {
        hp_worker_stats(w, &s);
        if (s.closed < 1)
            usleep(2000);
    }
    assert_int_equal(s.accepted, 1);
    assert_int_equal(s.closed, 1);
    assert_true(s.bytes_in >= 14);
    assert_true(s.bytes_out >= 16);
    hp_worker_ask_stop(w, false);
    hp_worker_free(w); /* joins the thread */
    hp_worker_free(NULL);

    assert_int_equal(seen.opened, 1);
    assert_int_equal(seen.closed, 1);
    assert_int_equal(seen.fd_ok, 1);
    assert_int_equal(seen.proto_ok, 1);
    assert_int_equal(seen.worker_ok, 1);
}

static void test_engine_accessors(void **state)
{
    (void)state;
    hp_worker_config_t cfg = HP_WORKER_CONFIG_DEFAULT;
    hp_engine_t *e = NULL;
    assert_int_equal(hp_engine_new(&e, 0, &cfg), -EINVAL);
    assert_int_equal(hp_engine_new(&e, 2, &cfg), 0);
    assert_int_equal(hp_engine_nworkers(e), 2);
    assert_non_null(hp_engine_worker(e, 0));
    assert_non_null(hp_engine_worker(e, 1));
    assert_null(hp_engine_worker(e, 2));
    assert_int_equal(hp_worker_id(hp_engine_worker(e, 1)), 1);
    assert_true(hp_engine_wake_fd(e) >= 0);

    sum_seen_t seen = {0};
    assert_int_equal(hp_engine_add_proto(e, &sum_proto, &seen), 0);
    uint16_t port;
    close(listen_any(&port)); /* a free port for the engine's own sockets */
    char text[32];
    snprintf(text, sizeof text, "127.0.0.1:%u", port);
    hp_listener_addr_t la;
    assert_int_equal(hp_listener_addr_parse(text, &la), 0);
    assert_int_equal(hp_engine_listen(e, &la, 16, &sum_proto), 0);
    assert_int_equal(hp_engine_start(e), 0);
    for (int i = 0; i < 4; i++)
        talk(port);

    hp_engine_shutdown(e);
    struct pollfd p = {.fd = hp_engine_wake_fd(e), .events = POLLIN};
    bool done = false;
    for (int i = 0; i < 100 && !done; i++) {
        poll(&p, 1, 100);
        done = hp_engine_reap(e);
    }
    assert_true(done);
    uint64_t accepted = 0, closed = 0;
    for (uint32_t i = 0; i < hp_engine_nworkers(e); i++) {
        hp_worker_stats_t s;
        hp_worker_stats(hp_engine_worker(e, i), &s);
        accepted += s.accepted;
        closed += s.closed;
    }
    assert_int_equal(accepted, 4);
    assert_int_equal(closed, 4);
    hp_engine_free(e);
    hp_engine_free(NULL);
    assert_int_equal(seen.opened, 4);
    assert_int_equal(seen.closed, 4);
}

int main(void)
{
    hp_log_set_level(HP_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loop_new_and_timer),
        cmocka_unit_test(test_standalone_worker),
        cmocka_unit_test(test_engine_accessors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
