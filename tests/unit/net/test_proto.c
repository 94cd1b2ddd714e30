/*
 * test_proto.c - unit tests for protocols chosen per connection
 * (src/net/conn.c, worker.c, engine.c): several listeners with different
 * protocols on one worker, protocol registration and per-worker data,
 * persistent per-connection state, switching a live connection to another
 * protocol with the bytes it already read, handles and messages to a
 * connection (stale handles dropped and counted, never delivered to a
 * reused slot), calls posted to a worker, outbound connections of any
 * protocol with a connect timeout and TCP options, and an engine carrying
 * two protocols on two addresses.
 *
 * Everything runs on the test's thread with the net harness
 * (net_harness.h), except where a second thread is the point.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "hotpath/alloc.h"
#include "net/conn_int.h"
#include "core/sys_int.h"
#include "net/engine_int.h"
#include "hotpath/log.h"
#include "net/worker_int.h"

#include "net_harness.h"

static struct {
    int inits, finis;
    void *fini_data;
    int marker_w, marker_b;
    int conn_errors, conn_err, opened_out;
    int msgs, stale_cbs;
    char last_msg[32];
    int calls;
    hp_worker_t *call_w;
    uint64_t call_arg;
    void *call_ptr;
} T;

/* ---- protocol A: "A:<line>\n" per line; "SWITCH" answers "OK" and hands
 * the connection to B; "HOLD" holds it with the rest unread. ---- */
static const hp_proto_t proto_b;

/* Answers each complete line with prefix + line; `special` sees each line
 * first and returns true when it took the line (and must then not be
 * answered). Returns once the connection switched away. */
static void lines(hp_conn_t *c, const char *prefix, bool (*special)(hp_conn_t *c, const char *l,
                                                                     uint32_t n))
{
    while (!(c->flags & (HP_CONN_F_CLOSED | HP_CONN_F_SWITCHED | HP_CONN_F_HOLD))) {
        char *d = hp_conn_data(c);
        char *nl = memchr(d, '\n', hp_conn_data_len(c));
        if (!nl)
            break;
        uint32_t n = (uint32_t)(nl - d);
        hp_conn_consume(c, n + 1);
        if (special && special(c, d, n))
            continue;
        char out[128];
        int len = snprintf(out, sizeof out, "%s%.*s\n", prefix, (int)n, d);
        assert_int_equal(hp_conn_write(c, out, (uint32_t)len), 0);
    }
}

static bool a_special(hp_conn_t *c, const char *l, uint32_t n)
{
    if (n == 6 && memcmp(l, "SWITCH", 6) == 0) {
        assert_int_equal(hp_conn_write(c, "OK\n", 3), 0);
        assert_int_equal(hp_conn_switch(c, &proto_b, &T.marker_b), 0);
        return true;
    }
    if (n == 4 && memcmp(l, "HOLD", 4) == 0) {
        hp_conn_hold(c, true);
        return true;
    }
    return false;
}

static void a_on_data(hp_conn_t *c)
{
    lines(c, "A:", a_special);
}

static const hp_proto_t proto_a = {
    .name = "a",
    .on_data = a_on_data,
    .state_size = 16,
};

/* ---- protocol B: "B<n>:<line>\n", n counting lines in its persistent
 * state, and a larger per-request state than A's ---- */
typedef struct {
    uint32_t lines;
    uint8_t rest[60];
} b_state_t;

static void b_on_data(hp_conn_t *c)
{
    b_state_t *bs = hp_conn_cstate(c);
    assert_non_null(bs);
    while (!(c->flags & HP_CONN_F_CLOSED)) {
        char *d = hp_conn_data(c);
        char *nl = memchr(d, '\n', hp_conn_data_len(c));
        if (!nl)
            break;
        uint32_t n = (uint32_t)(nl - d);
        char out[128];
        int len = snprintf(out, sizeof out, "B%u:%.*s\n", ++bs->lines, (int)n, d);
        hp_conn_consume(c, n + 1);
        assert_int_equal(hp_conn_write(c, out, (uint32_t)len), 0);
    }
}

static void b_on_open(hp_conn_t *c)
{
    b_state_t *bs = hp_conn_cstate(c);
    assert_non_null(bs);
    for (size_t i = 0; i < sizeof *bs; i++)
        assert_int_equal(((const uint8_t *)bs)[i], 0); /* zeroed */
    if (c->flags & HP_CONN_F_CONNECTING)
        return;
    T.opened_out++;
}

static void b_on_connect_error(hp_conn_t *c, int err)
{
    (void)c;
    T.conn_errors++;
    T.conn_err = err;
}

static const hp_proto_t proto_b = {
    .name = "b",
    .on_open = b_on_open,
    .on_connect_error = b_on_connect_error,
    .on_data = b_on_data,
    .state_size = 1000,
    .cstate_size = sizeof(b_state_t),
};

/* ---- protocol W: per-worker data; "W:<line>\n" ---- */
static int w_init(hp_worker_t *w, void *arg, void **data)
{
    (void)w;
    T.inits++;
    *data = arg;
    return 0;
}

static void w_fini(hp_worker_t *w, void *data)
{
    (void)w;
    T.finis++;
    T.fini_data = data;
}

static void w_on_data(hp_conn_t *c)
{
    assert_ptr_equal(c->udata, &T.marker_w);
    lines(c, "W:", NULL);
}

static const hp_proto_t proto_w = {
    .name = "w",
    .on_data = w_on_data,
    .worker_init = w_init,
    .worker_fini = w_fini,
};

/* ---- syscall faults: writev says EAGAIN while `eagain` counts down ---- */
static unsigned g_eagain;

static ssize_t f_writev(int fd, const struct iovec *iov, int cnt)
{
    if (g_eagain) {
        g_eagain--;
        errno = EAGAIN;
        return -1;
    }
    return hp_sys_real.writev(fd, iov, cnt);
}

static const hp_sys_ops_t fault_ops = {
    .read = read,
    .writev = f_writev,
    .sendfile = sendfile,
    .accept4 = accept4,
    .epoll_ctl = epoll_ctl,
};

/* ---- harness ---- */
static int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof T);
    g_eagain = 0;
    h_reset();
    hp_sys_set_ops(&fault_ops);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    h_teardown();
    return 0;
}

static struct sockaddr_in listen_on(const hp_proto_t *p)
{
    int fd = open_listener();
    assert_int_equal(hp_worker_listen(&H.w, fd, p), 0);
    return H.addr;
}

static cli_t *client_of(struct sockaddr_in a)
{
    H.addr = a;
    return cli_open(0);
}

static void wait_for(cli_t *k, const char *want)
{
    PUMP_UNTIL(k->rxlen >= strlen(want), 1000);
    if (!has(k, want))
        fail_msg("want '%s', got %zu bytes '%.*s'", want, k->rxlen, (int)k->rxlen,
                 k->rx ? k->rx : "");
}

/* ---- tests ---- */

/* One worker, two listeners, two protocols: each connection runs the
 * protocol of the listener that accepted it; the registered protocol's
 * per-worker data arrives as udata, and worker_fini gets it back. */
static void test_two_listeners(void **state)
{
    (void)state;
    h_init(0);
    assert_int_equal(hp_worker_add_proto(&H.w, &proto_w, &T.marker_w), 0);
    assert_int_equal(T.inits, 1);
    assert_ptr_equal(hp_worker_proto_data(&H.w, &proto_w), &T.marker_w);
    assert_null(hp_worker_proto_data(&H.w, &proto_b));
    struct sockaddr_in aw = listen_on(&proto_w);
    struct sockaddr_in ab = listen_on(&proto_b);
    cli_t *kw = client_of(aw);
    cli_t *kb = client_of(ab);
    cli_sends(kw, "one\n");
    cli_sends(kb, "two\n");
    wait_for(kw, "W:one\n");
    wait_for(kb, "B1:two\n");
    assert_ptr_equal(conn_of(kb)->proto, &proto_b);
    assert_ptr_equal(conn_of(kw)->proto, &proto_w);
    h_teardown();
    assert_int_equal(T.finis, 1);
    assert_ptr_equal(T.fini_data, &T.marker_w);
}

/* Persistent state lives while the connection is idle (no read chunk)
 * and goes back to its pool when the connection closes. */
static void test_cstate_survives_idle(void **state)
{
    (void)state;
    h_init(0);
    listen_on(&proto_b);
    cli_t *k = cli_open(0);
    cli_sends(k, "a\n");
    wait_for(k, "B1:a\n");
    hp_conn_t *c = conn_of(k);
    assert_null(c->rbuf); /* idle: no read chunk... */
    assert_non_null(c->cstate); /* ...but its state */
    k->rxlen = 0;
    cli_sends(k, "b\nc\n");
    wait_for(k, "B2:b\nB3:c\n");
    assert_int_equal(hp_pool_in_use(&H.w.cstate[0].pool), 1);
    cli_close(k);
    PUMP_UNTIL(H.w.nconns == 0, 1000);
    assert_int_equal(hp_pool_in_use(&H.w.cstate[0].pool), 0);
}

/* An upgrade: bytes that came in the same packet behind the switching
 * line go to the new protocol, in order, after the old one's answers. */
static void test_switch_keeps_pipelined_bytes(void **state)
{
    (void)state;
    h_init(0);
    listen_on(&proto_a);
    cli_t *k = cli_open(0);
    cli_sends(k, "hello\nSWITCH\nafter\nmore\n");
    wait_for(k, "A:hello\nOK\nB1:after\nB2:more\n");
    hp_conn_t *c = conn_of(k);
    assert_ptr_equal(c->proto, &proto_b);
    assert_ptr_equal(c->udata, &T.marker_b);
    assert_false(c->flags & HP_CONN_F_SWITCHED);
    k->rxlen = 0;
    cli_sends(k, "later\n");
    wait_for(k, "B3:later\n");
}

/* A switch outside any callback (an asynchronous answer) with bytes
 * already waiting: the ready pass hands them to the new protocol. */
static void test_switch_outside_callback(void **state)
{
    (void)state;
    h_init(0);
    listen_on(&proto_a);
    cli_t *k = cli_open(0);
    cli_sends(k, "x\nHOLD\nwaiting\n");
    wait_for(k, "A:x\n");
    hp_conn_t *c = conn_of(k);
    assert_true(c->flags & HP_CONN_F_HOLD);
    pump_for(20);
    assert_true(has(k, "A:x\n")); /* held: nothing more was answered */
    assert_int_equal(hp_conn_switch(c, &proto_b, NULL), 0);
    assert_false(c->flags & HP_CONN_F_HOLD);
    wait_for(k, "A:x\nB1:waiting\n");
}

/* A protocol whose state cannot fit: the switch fails and the
 * connection closes. */
static void test_switch_refused_closes(void **state)
{
    (void)state;
    h_init(0);
    listen_on(&proto_a);
    cli_t *k = cli_open(0);
    hp_conn_t *c = conn_of(k);
    hp_proto_t huge = proto_b;
    huge.state_size = H.cfg.rbuf_size;
    assert_int_equal(hp_conn_switch(c, &huge, NULL), -EINVAL);
    assert_true(c->flags & HP_CONN_F_CLOSED);
    PUMP_UNTIL(k->eof, 1000);
    assert_true(k->eof);
}

/* ---- messages by handle ---- */
static void msg_cb(hp_conn_t *c, void *ptr)
{
    if (!c) {
        T.stale_cbs++;
        return;
    }
    T.msgs++;
    snprintf(T.last_msg, sizeof T.last_msg, "%s", (const char *)ptr);
    char out[64];
    int n = snprintf(out, sizeof out, "M:%s\n", (const char *)ptr);
    hp_conn_write(c, out, (uint32_t)n);
    hp_conn_flush(c);
}

static void test_handle_delivers_then_goes_stale(void **state)
{
    (void)state;
    h_init(0);
    listen_on(&proto_a);
    cli_t *k = cli_open(0);
    hp_conn_t *c = conn_of(k);
    hp_conn_handle_t h = hp_conn_handle(c);
    assert_int_equal(h.worker, 0);
    assert_int_equal(h.slot, c->slot);
    assert_int_equal(hp_conn_post(&H.w, h, msg_cb, "hi"), 0);
    wait_for(k, "M:hi\n");
    assert_int_equal(T.msgs, 1);

    /* The connection closes; a new one takes the same slot. */
    uint32_t slot = c->slot;
    cli_close(k);
    PUMP_UNTIL(H.w.nconns == 0, 1000);
    cli_t *k2 = cli_open(0);
    hp_conn_t *c2 = conn_of(k2);
    assert_int_equal(c2->slot, slot);
    assert_int_not_equal(hp_conn_handle(c2).gen, h.gen);
    /* The old handle reaches nobody: dropped, counted, handed back. */
    assert_int_equal(hp_conn_post(&H.w, h, msg_cb, "late"), 0);
    PUMP_UNTIL(T.stale_cbs == 1, 1000);
    assert_int_equal(T.stale_cbs, 1);
    assert_int_equal(T.msgs, 1);
    assert_int_equal(H.w.stats.stale_msgs, 1);
    pump_for(10);
    assert_int_equal(k2->rxlen, 0);
    /* ...while the new handle works. */
    assert_int_equal(hp_conn_post(&H.w, hp_conn_handle(c2), msg_cb, "new"), 0);
    wait_for(k2, "M:new\n");

    /* A handle naming a worker outside the group. */
    hp_conn_handle_t bad = h;
    bad.worker = 1;
    assert_int_equal(hp_conn_post(&H.w, bad, msg_cb, "x"), -EINVAL);
}

/* Messages still queued when the worker is destroyed go back as stale,
 * so whatever they carry can be freed. */
static void test_destroy_hands_back_messages(void **state)
{
    (void)state;
    h_init(0);
    listen_on(&proto_a);
    cli_t *k = cli_open(0);
    hp_conn_handle_t h = hp_conn_handle(conn_of(k));
    assert_int_equal(hp_conn_post(&H.w, h, msg_cb, "a"), 0);
    assert_int_equal(hp_conn_post(&H.w, h, msg_cb, "b"), 0);
    hp_worker_destroy(&H.w);
    H.started = false;
    assert_int_equal(T.msgs, 0);
    assert_int_equal(T.stale_cbs, 2);
}

typedef struct {
    hp_worker_t *w;
    hp_conn_handle_t h;
    int n;
} poster_t;

static void *poster(void *arg)
{
    poster_t *p = arg;
    static const char *const words[] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
    for (int i = 0; i < p->n; i++) {
        while (hp_conn_post(p->w, p->h, msg_cb, (void *)words[i % 10]) == -EAGAIN)
            sched_yield();
    }
    return NULL;
}

/* Another thread posts; every message arrives, in order. */
static void test_post_from_another_thread(void **state)
{
    (void)state;
    h_init(0);
    listen_on(&proto_a);
    cli_t *k = cli_open(0);
    poster_t p = {.w = &H.w, .h = hp_conn_handle(conn_of(k)), .n = 200};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, poster, &p), 0);
    PUMP_UNTIL(T.msgs == p.n, 3000);
    pthread_join(th, NULL);
    assert_int_equal(T.msgs, p.n);
    PUMP_UNTIL(k->rxlen >= (size_t)p.n * 4, 1000);
    assert_int_equal(k->rxlen, (size_t)p.n * 4);
    for (int i = 0; i < p.n; i++)
        assert_int_equal(k->rx[i * 4 + 2], '0' + i % 10);
}

static void call_cb(hp_worker_t *w, uint64_t arg, void *ptr)
{
    T.calls++;
    T.call_w = w;
    T.call_arg = arg;
    T.call_ptr = ptr;
}

static void test_worker_call(void **state)
{
    (void)state;
    h_init(0);
    assert_int_equal(hp_worker_call(&H.w, call_cb, 42, &T), 0);
    assert_int_equal(T.calls, 0); /* not before the worker wakes */
    PUMP_UNTIL(T.calls == 1, 1000);
    assert_int_equal(T.calls, 1);
    assert_ptr_equal(T.call_w, &H.w);
    assert_int_equal(T.call_arg, 42);
    assert_ptr_equal(T.call_ptr, &T);
}

/* ---- outbound connections ---- */

/* A loopback listener that completes no more handshakes: its accept
 * queue (backlog 0) is full, so further SYNs are dropped and a connect
 * to it hangs. Returns its fd; *a is its address; *filler the queued
 * connection. */
static int full_listener(struct sockaddr_in *a, int *filler)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    *a = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof *a;
    assert_int_equal(bind(lfd, (struct sockaddr *)a, sizeof *a), 0);
    assert_int_equal(listen(lfd, 0), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)a, &len), 0);
    *filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(*filler, (struct sockaddr *)a, sizeof *a), 0);
    return lfd;
}

static void test_connect_timeout(void **state)
{
    (void)state;
    struct sockaddr_in a;
    int filler, lfd = full_listener(&a, &filler);
    h_init(0);
    hp_connect_opts_t o = {.timeout_ms = 50};
    hp_conn_t *c;
    assert_int_equal(hp_worker_connect(&H.w, (struct sockaddr *)&a, sizeof a, &proto_b, NULL, &o,
                                       &c), 0);
    /* the handshake hangs; the connect timer runs on the manual clock */
    pump_for(20);
    tick(49);
    assert_int_equal(T.conn_errors, 0);
    tick(1);
    assert_int_equal(T.conn_errors, 1);
    assert_int_equal(T.conn_err, -ETIMEDOUT);
    assert_int_equal(T.opened_out, 0);
    assert_int_equal(H.w.nconns, 0);
    close(filler);
    close(lfd);
}

/* An outbound connection runs the protocol it was opened with, with the
 * options asked for; a connect that succeeds in time is not timed out
 * later. */
static void test_connect_proto_and_options(void **state)
{
    (void)state;
    struct sockaddr_in a;
    int lfd = listen_loopback(&a);
    h_init(0);
    hp_connect_opts_t o = {.timeout_ms = 30,
                           .sock = {.nodelay = true, .keepalive = true, .keepidle_s = 30,
                                    .keepintvl_s = 5, .keepcnt = 3, .sndbuf = 65536,
                                    .rcvbuf = 32768}};
    hp_conn_t *c;
    assert_int_equal(hp_worker_connect(&H.w, (struct sockaddr *)&a, sizeof a, &proto_b,
                                       &T.marker_b, &o, &c), 0);
    int sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(sfd >= 0);
    assert_true(c->io.events & EPOLLOUT); /* tells the connect's outcome */
    PUMP_UNTIL(!(c->flags & HP_CONN_F_CONNECTING), 1000);
    /* Connected, with nothing waiting to go out: EPOLLOUT no longer
     * watched (no wake-up after each small write's ACK). */
    assert_int_equal(c->io.events & EPOLLOUT, 0);
    assert_ptr_equal(c->proto, &proto_b);
    assert_ptr_equal(c->udata, &T.marker_b);
    assert_non_null(c->cstate);
    int v;
    socklen_t vl = sizeof v;
    struct {
        int level, name, want;
    } checks[] = {{IPPROTO_TCP, TCP_NODELAY, 1},   {SOL_SOCKET, SO_KEEPALIVE, 1},
                  {IPPROTO_TCP, TCP_KEEPIDLE, 30}, {IPPROTO_TCP, TCP_KEEPINTVL, 5},
                  {IPPROTO_TCP, TCP_KEEPCNT, 3}};
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        vl = sizeof v;
        assert_int_equal(getsockopt(c->io.fd, checks[i].level, checks[i].name, &v, &vl), 0);
        assert_int_equal(v, checks[i].want);
    }
    vl = sizeof v;
    assert_int_equal(getsockopt(c->io.fd, SOL_SOCKET, SO_SNDBUF, &v, &vl), 0);
    assert_true(v >= 65536); /* the kernel doubles what it is asked for */
    /* Past the connect timeout, the connection still works. */
    tick(60);
    pump_for(20);
    assert_false(c->flags & HP_CONN_F_CLOSED);
    assert_int_equal(write(sfd, "x\n", 2), 2);
    char buf[16];
    ssize_t n = 0;
    uint64_t dl = mono_ms() + NH_PATIENCE * 1000;
    while (n <= 0 && mono_ms() < dl) {
        step(1);
        n = recv(sfd, buf, sizeof buf, MSG_DONTWAIT);
    }
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "B1:x\n", 5);
    assert_int_equal(T.conn_errors, 0);
    close(sfd);
    close(lfd);
}

/* Output queued while the connect is under way waits for it (a write
 * says EAGAIN until the socket is up): the connect's end must keep
 * EPOLLOUT watched for that wait, or the output would never leave when
 * the socket is full at that moment too (here: EAGAIN until the test
 * lifts it). */
static void test_output_queued_while_connecting(void **state)
{
    (void)state;
    struct sockaddr_in a;
    int lfd = listen_loopback(&a);
    h_init(0);
    hp_conn_t *c;
    assert_int_equal(hp_worker_connect(&H.w, (struct sockaddr *)&a, sizeof a, &proto_b,
                                       &T.marker_b, NULL, &c), 0);
    g_eagain = 100; /* this flush, and every try until the test says */
    assert_int_equal(hp_conn_write(c, "early\n", 6), 0);
    assert_int_equal(hp_conn_flush(c), -EAGAIN);
    assert_true(c->flags & HP_CONN_F_WRITE_WAIT);
    int sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(sfd >= 0);
    PUMP_UNTIL(!(c->flags & HP_CONN_F_CONNECTING), 1000);
    pump_for(20);
    assert_true(g_eagain < 100); /* the connect's end tried again */
    assert_true(c->flags & HP_CONN_F_WRITE_WAIT);
    assert_true(c->io.events & EPOLLOUT);
    g_eagain = 0;
    /* The peer's bytes bring an edge with EPOLLOUT in it: the wait ends,
     * the early bytes go first, then the answer. */
    assert_int_equal(write(sfd, "x\n", 2), 2);
    char buf[32];
    size_t got = 0;
    uint64_t dl = mono_ms() + NH_PATIENCE * 1000;
    while (got < 11 && mono_ms() < dl) {
        step(1);
        ssize_t n = recv(sfd, buf + got, sizeof buf - got, MSG_DONTWAIT);
        if (n > 0)
            got += (size_t)n;
    }
    assert_int_equal(got, 11);
    assert_memory_equal(buf, "early\nB1:x\n", 11);
    assert_false(c->flags & HP_CONN_F_WRITE_WAIT);
    assert_int_equal(c->io.events & EPOLLOUT, 0);
    close(sfd);
    close(lfd);
}

/* ---- the engine: two protocols on two addresses ---- */
static void test_engine_two_protocols(void **state)
{
    (void)state;
    hp_engine_t e;
    assert_int_equal(hp_engine_init(&e, 2, &H.cfg), 0);
    assert_int_equal(hp_engine_add_proto(&e, &proto_w, &T.marker_w), 0);
    assert_int_equal(T.inits, 2);
    /* Free ports: bind 0, read it, let go (as open_listener does). */
    hp_listener_addr_t la[2];
    for (int i = 0; i < 2; i++) {
        close(open_listener());
        char text[32];
        snprintf(text, sizeof text, "127.0.0.1:%u", ntohs(H.addr.sin_port));
        assert_int_equal(hp_listener_addr_parse(text, &la[i]), 0);
    }
    assert_int_equal(hp_engine_listen(&e, &la[0], 16, &proto_w), 0);
    assert_int_equal(hp_engine_listen(&e, &la[1], 16, &proto_b), 0);
    /* The same address twice is refused. */
    assert_int_equal(hp_engine_listen(&e, &la[0], 16, &proto_b), -EADDRINUSE);
    for (uint32_t i = 0; i < 2; i++) {
        assert_ptr_equal(e.workers[i].group, e.workers);
        assert_int_equal(e.workers[i].ngroup, 2);
    }
    assert_int_equal(hp_engine_start(&e), 0);
    for (int i = 0; i < 2; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in *a = (struct sockaddr_in *)&la[i].ss;
        assert_int_equal(connect(fd, (struct sockaddr *)a, sizeof *a), 0);
        assert_int_equal(write(fd, "q\n", 2), 2);
        char buf[16] = {0};
        size_t got = 0;
        while (got < (i == 0 ? 4u : 5u)) {
            ssize_t n = read(fd, buf + got, sizeof buf - 1 - got);
            assert_true(n > 0);
            got += (size_t)n;
        }
        assert_string_equal(buf, i == 0 ? "W:q\n" : "B1:q\n");
        close(fd);
    }
    hp_engine_shutdown(&e);
    while (!hp_engine_reap(&e))
        usleep(1000);
    hp_engine_destroy(&e);
    assert_int_equal(T.finis, 2);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    hp_log_set_level(HP_LOG_ERROR);
#define T_(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T_(test_two_listeners),
        T_(test_cstate_survives_idle),
        T_(test_switch_keeps_pipelined_bytes),
        T_(test_switch_outside_callback),
        T_(test_switch_refused_closes),
        T_(test_handle_delivers_then_goes_stale),
        T_(test_destroy_hands_back_messages),
        T_(test_post_from_another_thread),
        T_(test_worker_call),
        T_(test_connect_timeout),
        T_(test_connect_proto_and_options),
        T_(test_output_queued_while_connecting),
        T_(test_engine_two_protocols),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
