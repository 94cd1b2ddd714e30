/*
 * net_harness.h - the in-process harness shared by the net unit tests
 * (test_conn.c, test_worker.c): one real worker on the test's own thread,
 * stepped with hp_loop_run_once, and non-blocking loopback clients that are
 * read between the steps, so a test is a plain sequence of "client does X,
 * pump until Y, assert Z" with no second thread to race against.
 *
 * State: H holds the worker, its configuration, the listener's address and
 * up to NET_HARNESS_MAXCLI clients (cli_t). A client with `reading` set has
 * everything the server sends drained into its growing `rx` buffer by each
 * step(); `eof` is set when the peer closes or the socket fails (then `err`
 * holds the errno). Clearing `reading` leaves bytes in the socket, which is
 * how a test makes a client that does not read.
 *
 * How a test uses it:
 *   - include it after <cmocka.h> (it asserts with cmocka);
 *   - in its setup: reset its own state, then h_reset() and
 *     hp_sys_set_ops(...) as it needs; adjust H.cfg in the test itself;
 *   - start the worker with h_start_with(proto, id) (usually through a
 *     one-line h_start() of its own), or h_init(id) for a bare one;
 *   - clients: cli_open(rcvbuf) (connected and accepted), cli_connect()
 *     (not waiting for the accept), cli_send/cli_sends, cli_close, has(),
 *     conn_of() for the server side of a client;
 *   - time: the worker runs on a manual clock (H.clock) that stands still
 *     unless the test calls tick(ms), so its timers (write, drain, accept
 *     retry, the protocol's) fire exactly when the test says and never
 *     because the machine was slow. step(), PUMP_UNTIL(cond, ms) and
 *     pump_for(ms) wait real time, for the kernel (socket data, FINs); the
 *     ms of PUMP_UNTIL is only how long a broken test takes to fail, and
 *     is stretched by NH_PATIENCE so that a loaded machine never reaches
 *     it; mono_ms() is the real clock for such bounds;
 *   - in its teardown: h_teardown(), which closes the clients, waits for the
 *     worker to close their connections, checks that the pools are empty and
 *     consistent, and destroys the worker.
 * Everything is static and per test binary (each test is one translation
 * unit); helpers a test does not call are marked unused.
 */
#ifndef HP_TEST_NET_HARNESS_H
#define HP_TEST_NET_HARNESS_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hotpath/common.h"
#include "net/conn_int.h"
#include "hotpath/listener.h"
#include "core/loop_int.h"
#include "core/pool_int.h"
#include "core/timer_int.h"
#include "net/worker_int.h"

#include "../manual_clock.h"

#define NH_UNUSED __attribute__((unused))

/* Real-time bounds on waits for the kernel are multiplied by this: they
 * exist to end a test that is broken, not to time one that works. */
#define NH_PATIENCE 10

typedef struct cli {
    int fd;
    bool reading; /* step() drains the socket into rx */
    bool eof;
    int err;      /* errno of a failed read, 0 on a clean EOF */
    size_t rxlen, rxcap;
    char *rx;     /* plain malloc: not counted by hp_alloc_count() */
} cli_t;

enum { NET_HARNESS_MAXCLI = 80 };

static struct {
    hp_worker_config_t cfg;
    hp_worker_t w;
    bool started; /* h_teardown() destroys the worker */
    mclock_t clock; /* the worker loop's clock */
    struct sockaddr_in addr;
    cli_t cli[NET_HARNESS_MAXCLI];
    int ncli;
} H;

static NH_UNUSED uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Setup: no clients, no worker, and the small default pools (4 KiB chunks,
 * 8 KiB high water) so that every boundary is crossed with little data. */
static NH_UNUSED void h_reset(void)
{
    H.ncli = 0;
    H.started = false;
    H.cfg = (hp_worker_config_t){.rbuf_size = 4096, .wbuf_size = 4096, .max_chunks = 0,
                                 .write_timeout_ms = 3000, .drain_timeout_ms = 3000,
                                 .high_water = 8192, .low_water = 2048};
}

/* A listening socket on a free loopback port (found by binding port 0 and
 * letting it go), its address kept in H.addr for the clients. */
static NH_UNUSED int open_listener(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    char text[32];
    snprintf(text, sizeof text, "127.0.0.1:%u", ntohs(a.sin_port));
    hp_listener_addr_t la;
    assert_int_equal(hp_listener_addr_parse(text, &la), 0);
    int lfd = hp_listener_open(&la, 128);
    assert_true(lfd >= 0);
    H.addr = a;
    return lfd;
}

/* The worker (id `id`, no CPU pinning) with H.cfg, on the manual clock,
 * with no protocol and no listener yet. */
static NH_UNUSED void h_init(uint32_t id)
{
    assert_int_equal(hp_worker_init(&H.w, id, -1, &H.cfg), 0);
    H.started = true;
    /* before anything (a protocol's worker_init) can arm a timer */
    mclock_init(&H.clock);
    assert_int_equal(hp_loop_set_clock(&H.w.loop, &H.clock.src), 0);
}

/* The worker (id `id`, no CPU pinning) on a fresh listener with H.cfg,
 * `proto` registered with `arg` (its worker_init, if any, runs). */
static NH_UNUSED void h_start_proto(const hp_proto_t *proto, void *arg, uint32_t id)
{
    h_init(id);
    assert_int_equal(hp_worker_add_proto(&H.w, proto, arg), 0);
    assert_int_equal(hp_worker_listen(&H.w, open_listener(), proto), 0);
}

static NH_UNUSED void h_start_with(const hp_proto_t *proto, uint32_t id)
{
    h_start_proto(proto, NULL, id);
}

static NH_UNUSED void cli_read(cli_t *k)
{
    for (;;) {
        if (k->rxcap - k->rxlen < 65536) {
            k->rxcap = k->rxcap * 2 + 65536;
            k->rx = realloc(k->rx, k->rxcap);
            assert_non_null(k->rx);
        }
        ssize_t n = read(k->fd, k->rx + k->rxlen, k->rxcap - k->rxlen);
        if (n > 0) {
            k->rxlen += (size_t)n;
            continue;
        }
        if (n == 0)
            k->eof = true;
        else if (errno != EAGAIN)
            k->err = errno, k->eof = true;
        return;
    }
}

/* One loop iteration plus the reading clients' reads. */
static NH_UNUSED void step(int wait_ms)
{
    assert_true(hp_loop_run_once(&H.w.loop, wait_ms) >= 0);
    for (int i = 0; i < H.ncli; i++)
        if (H.cli[i].reading && H.cli[i].fd >= 0 && !H.cli[i].eof)
            cli_read(&H.cli[i]);
}

/* Steps until cond holds or NH_PATIENCE * ms of real time have passed;
 * the caller asserts cond after, so that a timeout fails with the
 * condition's own message. The worker's clock does not move. */
#define PUMP_UNTIL(cond, ms)                                                   \
    do {                                                                       \
        uint64_t dl_ = mono_ms() + NH_PATIENCE * (uint64_t)(ms);               \
        while (!(cond) && mono_ms() < dl_)                                     \
            step(1);                                                           \
    } while (0)

/* A listening socket on 127.0.0.1 and a free port (its address in *a),
 * for tests of outbound connections; the test accepts and closes it. */
static NH_UNUSED int listen_loopback(struct sockaddr_in *a)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    *a = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof *a;
    assert_true(lfd >= 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)a, sizeof *a), 0);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)a, &alen), 0);
    return lfd;
}

/* Steps for ms of real time: for the kernel to deliver what it will,
 * before a test checks that something did not happen. The worker's clock
 * does not move. */
static NH_UNUSED void pump_for(int ms)
{
    uint64_t dl = mono_ms() + (uint64_t)ms;
    while (mono_ms() < dl)
        step(1);
}

/* Moves the worker's clock on by ms and runs one iteration that does not
 * wait: every timer due by then fires, in that iteration. */
static NH_UNUSED void tick(uint64_t ms)
{
    mclock_advance_ms(&H.clock, ms);
    step(0);
}

/* A non-blocking, reading client, connected without waiting for the accept;
 * rcvbuf > 0 shrinks its receive buffer (before connect, so the window is
 * small from the start). */
static NH_UNUSED cli_t *cli_connect(int rcvbuf)
{
    assert_true(H.ncli < NET_HARNESS_MAXCLI);
    cli_t *k = &H.cli[H.ncli++];
    memset(k, 0, sizeof *k);
    k->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(k->fd >= 0);
    if (rcvbuf)
        setsockopt(k->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    int r = connect(k->fd, (struct sockaddr *)&H.addr, sizeof H.addr);
    assert_true(r == 0 || errno == EINPROGRESS);
    k->reading = true;
    return k;
}

/* Same, and pumped until the worker has accepted it. */
static NH_UNUSED cli_t *cli_open(int rcvbuf)
{
    uint32_t want = H.w.nconns + 1;
    cli_t *k = cli_connect(rcvbuf);
    PUMP_UNTIL(H.w.nconns >= want, 1000);
    assert_int_equal(H.w.nconns, want);
    return k;
}

/* The server's connection for a client (matched by port), or NULL. */
static NH_UNUSED hp_conn_t *conn_of(const cli_t *k)
{
    struct sockaddr_in me, peer;
    socklen_t l = sizeof me;
    getsockname(k->fd, (struct sockaddr *)&me, &l);
    for (uint32_t i = 0; i < H.w.npages * HP_WORKER_SLOT_PAGE; i++) {
        hp_conn_t *c = hp_worker_slot(&H.w, i)->conn;
        if (!c)
            continue;
        l = sizeof peer;
        if (getpeername(c->io.fd, (struct sockaddr *)&peer, &l) == 0 && peer.sin_port == me.sin_port)
            return c;
    }
    return NULL;
}

/* Writes all of buf, stepping the worker while the socket is full. */
static NH_UNUSED void cli_send(cli_t *k, const void *buf, size_t len)
{
    const char *p = buf;
    uint64_t dl = mono_ms() + NH_PATIENCE * 2000;
    while (len > 0) {
        ssize_t n = write(k->fd, p, len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else {
            assert_true(n < 0 && errno == EAGAIN);
            assert_true(mono_ms() < dl);
            step(1);
        }
    }
}

static NH_UNUSED void cli_sends(cli_t *k, const char *s)
{
    cli_send(k, s, strlen(s));
}

/* True when the client received exactly s, nothing more. */
static NH_UNUSED bool has(const cli_t *k, const char *s)
{
    return k->rxlen == strlen(s) && memcmp(k->rx, s, k->rxlen) == 0;
}

/* Closes the socket and drops what was received; safe to call twice. */
static NH_UNUSED void cli_close(cli_t *k)
{
    if (k->fd >= 0)
        close(k->fd);
    k->fd = -1;
    free(k->rx);
    k->rx = NULL;
    k->rxlen = k->rxcap = 0;
    k->reading = false;
}

static NH_UNUSED void assert_pools_empty(void)
{
    assert_int_equal(hp_pool_in_use(&H.w.rpool), 0);
    assert_int_equal(hp_pool_in_use(&H.w.wpool), 0);
    assert_int_equal(hp_pool_in_use(&H.w.conn_pool), 0);
    assert_int_equal(hp_pool_validate(&H.w.conn_pool), 0);
    assert_int_equal(hp_pool_validate(&H.w.rpool), 0);
    assert_int_equal(hp_pool_validate(&H.w.wpool), 0);
}

/* Teardown: the clients go, so their connections close and give their
 * chunks back (the EOF tests check that they must; destroy closes the
 * rest). A loop that has stopped (the shutdown tests) is not pumped any
 * more; those tests check its connections and pools themselves. The pools
 * and the timer wheel must be consistent in every case; then the worker is
 * destroyed and must have closed its descriptors, and LeakSanitizer checks
 * that it gave all its memory back. */
static NH_UNUSED void h_teardown(void)
{
    for (int i = 0; i < H.ncli; i++)
        cli_close(&H.cli[i]);
    if (!H.started)
        return;
    if (!H.w.loop.stopping) {
        PUMP_UNTIL(H.w.nconns == 0, 500);
        if (H.w.nconns == 0) {
            step(0);
            assert_pools_empty();
        }
    }
    assert_int_equal(hp_pool_validate(&H.w.rpool), 0);
    assert_int_equal(hp_pool_validate(&H.w.wpool), 0);
    assert_int_equal(hp_timer_wheel_validate(&H.w.loop.timers), 0);
    hp_worker_destroy(&H.w);
    H.started = false;
    for (uint32_t i = 0; i < H.w.nlisteners; i++)
        assert_int_equal(H.w.listeners[i].io.fd, -1);
    assert_int_equal(H.w.wake_fd, -1);
}

#endif
