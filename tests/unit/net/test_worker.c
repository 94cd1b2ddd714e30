/*
 * test_worker.c - unit tests for src/net/worker.c, driving a real worker
 * on this thread (hp_loop_run_once interleaved with client sockets) and,
 * once, on its own thread (the harness shared with test_conn.c is in
 * net_harness.h).
 *
 * Covered: argument checks of hp_worker_init, hp_worker_add_proto and
 * hp_worker_listen and an out-of-memory sweep through all three (the
 * listening socket is closed on every failure); accepting many
 * connections; EMFILE from an injected accept4 pauses accepting without
 * spinning and resumes on the retry timer or when a descriptor frees up;
 * a failed epoll registration drops just that connection; the read budget
 * and the ready queue (one client cannot starve another); graceful
 * shutdown (idle connections closed at once, a busy one finishes, the loop
 * stops; the drain timeout); STOP_NOW and SHUTDOWN through the inbox; a
 * full inbox; hp_worker_run's exit report; a threaded worker. Leaks: every
 * test ends with the pools empty before hp_worker_destroy, and the ASan
 * build (LeakSanitizer) proves destroy gave everything back.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "hotpath/alloc.h"
#include "net/conn_int.h"
#include "hotpath/log.h"
#include "core/mpsc_int.h"
#include "core/sys_int.h"
#include "net/worker_int.h"

#include "net_harness.h"

/* ---- protocol: "R:<line>\n" per line; bytes starting with '#' are
 * swallowed whole (a sink, for the read budget) ---- */
static struct {
    unsigned data_by_fd[1024];
    uint64_t sunk;
} P;

static void p_on_data(hp_conn_t *c)
{
    if (c->io.fd < 1024)
        P.data_by_fd[c->io.fd]++;
    if (hp_conn_data(c)[0] == '#') {
        P.sunk += hp_conn_data_len(c);
        hp_conn_consume(c, hp_conn_data_len(c));
        return;
    }
    while (!(c->flags & (HP_CONN_F_CLOSED | HP_CONN_F_PAUSED))) {
        char *d = hp_conn_data(c);
        char *nl = memchr(d, '\n', hp_conn_data_len(c));
        if (!nl)
            break;
        uint32_t n = (uint32_t)(nl - d);
        char *p = hp_conn_reserve(c, n + 3);
        if (!p) {
            hp_conn_pause(c);
            break;
        }
        memcpy(p, "R:", 2);
        memcpy(p + 2, d, n);
        p[n + 2] = '\n';
        hp_conn_commit(c, n + 3);
        hp_conn_consume(c, n + 1);
    }
}

static void p_on_drain(hp_conn_t *c)
{
    if (c->rbuf && hp_conn_data_len(c))
        p_on_data(c);
}

static const hp_proto_t proto = {
    .on_data = p_on_data,
    .on_drain = p_on_drain,
    .state_size = 16,
};

static int w_init_none(hp_worker_t *w, void *arg, void **data)
{
    (void)w;
    (void)arg;
    *data = NULL;
    return 0;
}

/* ---- syscall faults ---- */
static struct {
    int accept_err;  /* accept4 fails with this while non-zero... */
    int accept_fail_n; /* ...or only this many more times, when positive */
    unsigned accept_calls;
    int epoll_add_err; /* EPOLL_CTL_ADD fails with this while non-zero */
} F;

static int f_accept4(int fd, struct sockaddr *a, socklen_t *l, int flags)
{
    F.accept_calls++;
    if (F.accept_err && F.accept_fail_n >= 0) {
        if (F.accept_fail_n > 0 && --F.accept_fail_n == 0)
            F.accept_fail_n = -1;
        errno = F.accept_err;
        return -1;
    }
    return accept4(fd, a, l, flags);
}

static int f_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    if (op == EPOLL_CTL_ADD && F.epoll_add_err) {
        errno = F.epoll_add_err;
        return -1;
    }
    return epoll_ctl(epfd, op, fd, ev);
}

static const hp_sys_ops_t fault_ops = {
    .read = read,
    .writev = writev,
    .sendfile = NULL, /* set in main: sendfile's prototype is in another header */
    .accept4 = f_accept4,
    .epoll_ctl = f_epoll_ctl,
};
static hp_sys_ops_t ops;

/* ---- harness (net_harness.h) ---- */
static void h_start(void)
{
    h_start_with(&proto, 3);
}

static int setup(void **state)
{
    (void)state;
    memset(&F, 0, sizeof F);
    memset(&P, 0, sizeof P);
    h_reset();
    hp_sys_set_ops(&ops);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    memset(&F, 0, sizeof F); /* the rest runs without injected faults */
    h_teardown();
    hp_sys_set_ops(NULL);
    return 0;
}

/* ---- tests ---- */

static void test_init_rejects_bad_config(void **state)
{
    (void)state;
    uint64_t a0 = hp_alloc_count();
    H.cfg.rbuf_size = 1024; /* less than two minimal read areas */
    assert_int_equal(hp_worker_init(&H.w, 0, -1, &H.cfg), -EINVAL);
    H.cfg.rbuf_size = 4096;
    H.cfg.wbuf_size = 2048;
    assert_int_equal(hp_worker_init(&H.w, 0, -1, &H.cfg), -EINVAL);
    assert_int_equal(hp_alloc_count(), a0);
    H.cfg.wbuf_size = 4096;
    assert_int_equal(hp_worker_init(&H.w, 0, -1, &H.cfg), 0);
    H.started = true;
    /* a protocol whose state leaves too little room for bytes */
    hp_proto_t fat = proto;
    fat.state_size = 4096 - 1000;
    assert_int_equal(hp_worker_add_proto(&H.w, &fat, NULL), -EINVAL);
    int lfd = open_listener();
    assert_int_equal(hp_worker_listen(&H.w, lfd, &fat), -EINVAL);
    assert_int_equal(fcntl(lfd, F_GETFD), -1); /* owned on every path */
    /* registering twice */
    assert_int_equal(hp_worker_add_proto(&H.w, &proto, NULL), 0);
    assert_int_equal(hp_worker_add_proto(&H.w, &proto, NULL), -EEXIST);
    /* a protocol with per-worker state must be registered to listen */
    hp_proto_t needs = proto;
    needs.worker_init = w_init_none;
    lfd = open_listener();
    assert_int_equal(hp_worker_listen(&H.w, lfd, &needs), -ENOENT);
    assert_int_equal(fcntl(lfd, F_GETFD), -1);
    /* a failing epoll registration */
    F.epoll_add_err = ENOSPC;
    lfd = open_listener();
    assert_int_equal(hp_worker_listen(&H.w, lfd, &proto), -ENOSPC);
    assert_int_equal(fcntl(lfd, F_GETFD), -1);
    assert_int_equal(H.w.nlisteners, 0);
}

static void test_init_oom_sweep(void **state)
{
    (void)state;
    int r = -ENOMEM;
    uint64_t n;
    for (n = 1; n < 100; n++) {
        int lfd = open_listener();
        hp_alloc_fail_after(n, 0);
        r = hp_worker_init(&H.w, 0, -1, &H.cfg);
        bool inited = r == 0;
        if (r == 0)
            r = hp_worker_add_proto(&H.w, &proto, NULL);
        if (r == 0)
            r = hp_worker_listen(&H.w, lfd, &proto);
        else
            close(lfd);
        hp_alloc_fail_after(0, 0);
        if (r == 0)
            break;
        assert_int_equal(r, -ENOMEM);
        assert_int_equal(fcntl(lfd, F_GETFD), -1);
        if (inited)
            hp_worker_destroy(&H.w);
    }
    assert_int_equal(r, 0);
    assert_true(n > 1); /* at least one allocation was swept */
    H.started = true;
    /* the worker that finally came up works */
    cli_t *k = cli_open(0);
    cli_sends(k, "ok\n");
    PUMP_UNTIL(k->rxlen >= 5, 1000);
    assert_true(has(k, "R:ok\n"));
}

static void test_init_fields(void **state)
{
    (void)state;
    h_start();
    assert_int_equal(H.w.id, 3);
    assert_int_equal(H.w.cpu, -1);
    assert_ptr_equal(H.w.cfg, &H.cfg);
    assert_true(H.w.wake_fd >= 0);
    assert_int_equal(H.w.nconns, 0);
    assert_int_equal(H.w.nprotos, 1);
    assert_int_equal(H.w.nlisteners, 1);
    assert_ptr_equal(H.w.listeners[0].proto, &proto);
    assert_int_equal(H.w.npages, 0); /* the slot table grows with the first connection */
    assert_false(H.w.draining);
    assert_false(H.w.accept_paused);
    /* nothing is taken from the pools before a client shows up */
    assert_int_equal(hp_pool_capacity(&H.w.rpool), 0);
    assert_int_equal(hp_pool_capacity(&H.w.wpool), 0);
}

static void test_accept_many(void **state)
{
    (void)state;
    h_start();
    enum { N = 60 };
    for (int i = 0; i < N; i++)
        cli_connect(0);
    PUMP_UNTIL(H.w.nconns == N, 2000);
    assert_int_equal(H.w.nconns, N);
    assert_int_equal(H.w.stats.accepted, N);
    int listed = 0;
    for (uint32_t i = 0; i < H.w.npages * HP_WORKER_SLOT_PAGE; i++) {
        hp_conn_t *c = hp_worker_slot(&H.w, i)->conn;
        if (!c)
            continue;
        assert_ptr_equal(c->worker, &H.w);
        assert_ptr_equal(c->proto, &proto);
        assert_int_equal(c->slot, i);
        listed++;
    }
    assert_int_equal(listed, N);
    for (int i = 0; i < N; i++)
        cli_sends(&H.cli[i], "hi\n");
    int done = 0;
    uint64_t dl = mono_ms() + NH_PATIENCE * 2000;
    while (done < N && mono_ms() < dl) {
        step(1);
        done = 0;
        for (int i = 0; i < N; i++)
            done += H.cli[i].rxlen == 5;
    }
    assert_int_equal(done, N);
    for (int i = 0; i < N; i++)
        assert_true(has(&H.cli[i], "R:hi\n"));
    assert_int_equal(hp_pool_in_use(&H.w.rpool), 0);
    assert_int_equal(hp_pool_in_use(&H.w.wpool), 0);
    for (int i = 0; i < N; i += 2)
        cli_close(&H.cli[i]);
    PUMP_UNTIL(H.w.nconns == N / 2, 1000);
    assert_int_equal(H.w.nconns, N / 2);
    assert_int_equal(H.w.stats.closed, N / 2);
    assert_int_equal(hp_pool_in_use(&H.w.conn_pool), N / 2);
}

/* Out of descriptors: the listener rests (one accept4 call and then
 * none while the clock stands still, not a spin on the level of the
 * pending connection; one per retry period as it moves) and comes back on
 * the retry timer once descriptors are available. */
static void test_emfile_pauses_accept(void **state)
{
    (void)state;
    h_start();
    F.accept_err = EMFILE;
    cli_t *k = cli_connect(0);
    PUMP_UNTIL(F.accept_calls >= 1, 1000);
    pump_for(100);
    if (F.accept_calls != 1)
        fail_msg("%u accept4 calls without the clock moving", F.accept_calls);
    assert_int_equal(H.w.nconns, 0);
    assert_true(H.w.accept_paused);
    assert_int_equal(H.w.stats.accept_errors, 1);
    assert_true(hp_timer_armed(&H.w.accept_timer));
    uint64_t retry = H.w.accept_timer.expire_ms - hp_loop_now(&H.w.loop);
    assert_true(retry > 1);
    tick(retry - 1);
    assert_int_equal(F.accept_calls, 1);
    tick(1); /* the retry: still out of descriptors */
    assert_int_equal(F.accept_calls, 2);
    assert_true(H.w.accept_paused);
    assert_int_equal(H.w.stats.accept_errors, F.accept_calls);
    /* the fault ends: accepted at the next retry, not before */
    F.accept_err = 0;
    pump_for(20);
    assert_int_equal(H.w.nconns, 0);
    tick(retry);
    assert_int_equal(H.w.nconns, 1);
    assert_false(H.w.accept_paused);
    cli_sends(k, "back\n");
    PUMP_UNTIL(k->rxlen >= 7, 1000);
    assert_true(has(k, "R:back\n"));
}

/* While paused, a connection that closes frees a descriptor: the waiting
 * client is accepted at once rather than at the next retry tick, which
 * never comes here since the clock stands still. */
static void test_emfile_resumes_when_fd_frees(void **state)
{
    (void)state;
    h_start();
    cli_t *a = cli_open(0);
    F.accept_err = EMFILE;
    cli_t *b = cli_connect(0);
    PUMP_UNTIL(H.w.accept_paused, 1000);
    assert_true(H.w.accept_paused);
    F.accept_err = 0;
    cli_close(a);
    PUMP_UNTIL(H.w.stats.accepted >= 2, 1000);
    assert_int_equal(H.w.stats.accepted, 2);
    assert_int_equal(H.w.nconns, 1);
    cli_sends(b, "b\n");
    PUMP_UNTIL(b->rxlen >= 4, 1000);
    assert_true(has(b, "R:b\n"));
}

/* Errors that concern only the client being accepted do not pause. */
static void test_accept_transient_errors(void **state)
{
    (void)state;
    h_start();
    F.accept_err = ECONNABORTED;
    F.accept_fail_n = 2;
    cli_t *k = cli_connect(0);
    /* accept4 is retried at once: the client is taken in the same call */
    PUMP_UNTIL(H.w.nconns == 1, 1000);
    assert_int_equal(H.w.nconns, 1);
    assert_int_equal(F.accept_fail_n, -1);
    assert_false(H.w.accept_paused);
    assert_true(F.accept_calls >= 3);
    cli_sends(k, "x\n");
    PUMP_UNTIL(k->rxlen >= 4, 1000);
    assert_true(has(k, "R:x\n"));
}

static void test_accept_epoll_failure_drops_one(void **state)
{
    (void)state;
    h_start();
    F.epoll_add_err = ENOMEM;
    cli_t *a = cli_connect(0);
    PUMP_UNTIL(a->eof, 1000);
    assert_true(a->eof); /* its socket was closed */
    assert_int_equal(H.w.nconns, 0);
    assert_int_equal(H.w.stats.accept_errors, 1);
    assert_int_equal(hp_pool_in_use(&H.w.conn_pool), 0);
    assert_false(H.w.accept_paused);
    F.epoll_add_err = 0;
    cli_t *b = cli_open(0);
    cli_sends(b, "y\n");
    PUMP_UNTIL(b->rxlen >= 4, 1000);
    assert_true(has(b, "R:y\n"));
}

/* A client that keeps its socket full spends its read budget and goes on
 * the ready queue, served again in the hook; a second client in the same
 * batch is served in the same iteration, and keeps being served promptly. */
static void test_read_budget_and_ready_queue(void **state)
{
    (void)state;
    h_start();
    cli_t *a = cli_open(0);
    cli_t *b = cli_open(0);
    hp_conn_t *ca = conn_of(a), *cb = conn_of(b);
    static char junk[8192];
    memset(junk, '#', sizeof junk);
    size_t sent = 0;
    for (ssize_t n; (n = write(a->fd, junk, sizeof junk)) > 0;)
        sent += (size_t)n;
    assert_true(sent > 100 * 1024);
    cli_sends(b, "x\n");
    assert_true(hp_loop_run_once(&H.w.loop, 1000) >= 1);
    unsigned na = P.data_by_fd[ca->io.fd];
    assert_int_equal(P.data_by_fd[cb->io.fd], 1);
    assert_true(na > 8);   /* served again by the ready pass of the hook */
    assert_true(na <= 16); /* but one read budget (8) per pass */
    assert_true(ca->flags & HP_CONN_F_QUEUED);
    assert_ptr_equal(H.w.ready_head, ca);
    assert_true(H.w.loop.pending); /* so the next wait polls */
    assert_true(P.sunk < sent);
    step(0);
    assert_true(has(b, "R:x\n"));
    for (int i = 0; i < 20; i++) {
        while (write(a->fd, junk, sizeof junk) > 0) {
        }
        b->rxlen = 0;
        cli_sends(b, "y\n");
        step(0);
        step(0);
        assert_true(has(b, "R:y\n"));
    }
    /* everything is eventually swallowed */
    PUMP_UNTIL(!(ca->flags & (HP_CONN_F_QUEUED | HP_CONN_F_READABLE)), 3000);
    assert_int_equal(ca->flags & (HP_CONN_F_QUEUED | HP_CONN_F_READABLE), 0);
    assert_int_equal(H.w.stats.bytes_in, P.sunk + 2 + 20 * 2);
    assert_null(ca->rbuf);
    assert_null(H.w.ready_head);
}

static void test_shutdown_idle_now_busy_finishes(void **state)
{
    (void)state;
    h_start();
    cli_t *idle = cli_open(0);
    cli_sends(idle, "one\n");
    PUMP_UNTIL(idle->rxlen >= 6, 1000);
    cli_t *busy = cli_open(0);
    cli_sends(busy, "par");
    PUMP_UNTIL(hp_pool_in_use(&H.w.rpool) == 1, 1000);
    hp_worker_shutdown(&H.w);
    assert_true(H.w.draining);
    assert_int_equal(H.w.listeners[0].io.fd, -1);
    assert_int_equal(H.w.nconns, 1); /* the idle one went at once */
    assert_false(H.w.loop.stopping);
    hp_worker_shutdown(&H.w); /* idempotent */
    PUMP_UNTIL(idle->eof, 1000);
    assert_true(idle->eof);
    /* nobody listens any more */
    cli_t *late = cli_connect(0);
    step(1);
    assert_true(late->eof);
    /* the busy one completes its request, then is closed */
    cli_sends(busy, "tial\n");
    PUMP_UNTIL(busy->eof, 1000);
    assert_true(has(busy, "R:partial\n"));
    assert_true(busy->eof);
    assert_int_equal(H.w.nconns, 0);
    assert_true(H.w.loop.stopping);
    assert_pools_empty();
}

static void test_shutdown_drain_timeout(void **state)
{
    (void)state;
    H.cfg.drain_timeout_ms = 80;
    h_start();
    cli_t *busy = cli_open(0);
    cli_sends(busy, "never ends");
    PUMP_UNTIL(hp_pool_in_use(&H.w.rpool) == 1, 1000);
    hp_worker_shutdown(&H.w);
    pump_for(20);
    tick(79);
    assert_false(H.w.loop.stopping);
    assert_int_equal(H.w.nconns, 1);
    tick(1);
    assert_true(H.w.loop.stopping);
    assert_int_equal(H.w.nconns, 0);
    step(0);
    assert_true(busy->eof);
    assert_pools_empty();
}

static void test_shutdown_without_connections_stops(void **state)
{
    (void)state;
    h_start();
    hp_worker_shutdown(&H.w);
    assert_true(H.w.loop.stopping);
}

static void test_stop_now_via_post(void **state)
{
    (void)state;
    h_start();
    cli_t *a = cli_open(0);
    cli_t *b = cli_open(0);
    cli_sends(b, "half");
    PUMP_UNTIL(hp_pool_in_use(&H.w.rpool) == 1, 1000);
    assert_int_equal(hp_worker_post(&H.w, HP_MSG_STOP_NOW, 0, NULL), 0);
    step(1000);
    assert_true(H.w.loop.stopping);
    assert_int_equal(H.w.nconns, 0);
    assert_pools_empty();
    step(0);
    assert_true(a->eof);
    assert_true(b->eof);
}

static void test_post_shutdown_then_run(void **state)
{
    (void)state;
    h_start();
    hp_mpsc_t reports;
    assert_int_equal(hp_mpsc_init(&reports, 4), 0);
    int efd = eventfd(0, EFD_NONBLOCK);
    H.w.report_to = &reports;
    H.w.report_fd = efd;
    cli_t *k = cli_open(0);
    cli_sends(k, "last\n");
    PUMP_UNTIL(k->rxlen >= 7, 1000);
    /* unknown types are ignored */
    assert_int_equal(hp_worker_post(&H.w, 77, 1, NULL), 0);
    assert_int_equal(hp_worker_post(&H.w, HP_MSG_SHUTDOWN, 0, NULL), 0);
    /* The run must end because the idle connection is closed at once, not
     * by the drain timer. That runs on the real clock here, 30 s long,
     * so that a worker that failed to close would still end the run (and
     * fail below) rather than wait for ever on a clock nobody moves. */
    H.cfg.drain_timeout_ms = 30000;
    assert_int_equal(hp_loop_set_clock(&H.w.loop, NULL), 0);
    assert_int_equal(hp_worker_run(&H.w), 0);
    assert_true(hp_timer_armed(&H.w.drain_timer));
    assert_int_equal(H.w.nconns, 0);
    assert_pools_empty();
    hp_msg_t m;
    assert_true(hp_mpsc_pop(&reports, &m));
    assert_int_equal(m.type, HP_MSG_WORKER_EXIT);
    assert_int_equal(m.from, 3);
    assert_ptr_equal(m.ptr, &H.w);
    uint64_t v = 0;
    assert_int_equal(read(efd, &v, sizeof v), sizeof v);
    assert_int_equal(v, 1);
    close(efd);
    hp_mpsc_destroy(&reports);
}

static void test_inbox_full(void **state)
{
    (void)state;
    h_start();
    int ok = 0;
    while (hp_worker_post(&H.w, 99, 0, NULL) == 0 && ok < 10000)
        ok++;
    assert_true(ok >= 8 && ok < 10000);
    assert_int_equal(hp_worker_post(&H.w, 99, 0, NULL), -EAGAIN);
    step(100); /* the worker empties its inbox */
    assert_int_equal(hp_worker_post(&H.w, HP_MSG_STOP_NOW, 0, NULL), 0);
    step(100);
    assert_true(H.w.loop.stopping);
}

/* A stop request is never lost to a full inbox: it is a flag beside it,
 * seen before the messages. */
static void test_stop_requests_pass_a_full_inbox(void **state)
{
    (void)state;
    h_start();
    cli_t *idle = cli_open(0);
    while (hp_worker_post(&H.w, 99, 0, NULL) == 0)
        ;
    assert_int_equal(hp_worker_post(&H.w, 99, 0, NULL), -EAGAIN);
    assert_int_equal(hp_worker_post(&H.w, HP_MSG_SHUTDOWN, 0, NULL), 0);
    assert_int_equal(hp_worker_post(&H.w, HP_MSG_SHUTDOWN, 0, NULL), 0); /* twice is once */
    step(100);
    assert_true(H.w.draining);
    PUMP_UNTIL(idle->eof, 1000);
    assert_true(idle->eof);
    assert_true(H.w.loop.stopping);
    /* the flood was consumed too */
    assert_int_equal(hp_worker_post(&H.w, 99, 0, NULL), 0);
}

static void test_destroy_closes_everything(void **state)
{
    (void)state;
    h_start();
    cli_t *a = cli_open(0);
    cli_t *b = cli_open(0);
    cli_sends(a, "pending");
    PUMP_UNTIL(hp_pool_in_use(&H.w.rpool) == 1, 1000);
    (void)b;
    hp_worker_destroy(&H.w);
    H.started = false;
    char c;
    /* the FINs are on their way: wait for them, however long it takes */
    struct pollfd pf[2] = {{.fd = a->fd, .events = POLLIN}, {.fd = b->fd, .events = POLLIN}};
    for (int i = 0; i < 2; i++)
        assert_int_equal(poll(&pf[i], 1, NH_PATIENCE * 1000), 1);
    assert_int_equal(read(a->fd, &c, 1), 0);
    assert_int_equal(read(b->fd, &c, 1), 0);
}

/* The real thing: the worker on its own thread, a blocking client. */
static void test_threaded_worker(void **state)
{
    (void)state;
    hp_sys_set_ops(NULL); /* threads share the table: the real one */
    h_start();
    assert_int_equal(hp_worker_start(&H.w), 0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&H.addr, sizeof H.addr), 0);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(write(fd, "ping\n", 5), 5);
        char buf[16];
        size_t got = 0;
        while (got < 7) {
            ssize_t n = read(fd, buf + got, sizeof buf - got);
            assert_true(n > 0);
            got += (size_t)n;
        }
        assert_memory_equal(buf, "R:ping\n", 7);
    }
    assert_int_equal(hp_worker_post(&H.w, HP_MSG_STOP_NOW, 0, NULL), 0);
    char c;
    assert_int_equal(read(fd, &c, 1), 0); /* closed by STOP_NOW */
    close(fd);
    hp_worker_destroy(&H.w); /* joins */
    H.started = false;
    assert_false(H.w.started);
}

/* ---- outbound connections (hp_worker_connect) ---- */
static struct {
    int opened, errors, closed, err;
    char got[64];
    size_t gotlen;
} O;

static void o_on_open(hp_conn_t *c)
{
    O.opened++;
    hp_conn_write(c, "hi\n", 3);
}

static void o_on_connect_error(hp_conn_t *c, int err)
{
    (void)c;
    O.errors++;
    O.err = err;
}

static void o_on_data(hp_conn_t *c)
{
    uint32_t n = hp_conn_data_len(c);
    if (n > sizeof O.got - O.gotlen)
        n = (uint32_t)(sizeof O.got - O.gotlen);
    memcpy(O.got + O.gotlen, hp_conn_data(c), n);
    O.gotlen += n;
    hp_conn_consume(c, hp_conn_data_len(c));
}

static void o_on_close(hp_conn_t *c)
{
    (void)c;
    O.closed++;
}

static const hp_proto_t out_proto = {
    .on_open = o_on_open,
    .on_connect_error = o_on_connect_error,
    .on_data = o_on_data,
    .on_close = o_on_close,
};

/* A worker without a listener connects out: on_open once established,
 * bytes both ways, on_close when the peer closes; udata is carried. */
static void test_connect_out(void **state)
{
    (void)state;
    memset(&O, 0, sizeof O);
    struct sockaddr_in a;
    int lfd = listen_loopback(&a);

    h_init(5);
    hp_conn_t *c = NULL;
    int marker;
    assert_int_equal(hp_worker_connect(&H.w, (struct sockaddr *)&a, sizeof a, &out_proto, &marker,
                                       NULL, &c), 0);
    assert_ptr_equal(c->proto, &out_proto);
    assert_non_null(c);
    assert_ptr_equal(c->udata, &marker);
    assert_true(c->flags & HP_CONN_F_CONNECTING);
    int sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(sfd >= 0);
    PUMP_UNTIL(O.opened == 1, 1000);
    assert_int_equal(O.opened, 1);
    assert_false(c->flags & HP_CONN_F_CONNECTING);
    char buf[8];
    assert_int_equal(read(sfd, buf, sizeof buf), 3);
    assert_memory_equal(buf, "hi\n", 3);
    assert_int_equal(write(sfd, "pong", 4), 4);
    PUMP_UNTIL(O.gotlen == 4, 1000);
    assert_memory_equal(O.got, "pong", 4);
    close(sfd);
    PUMP_UNTIL(O.closed == 1, 1000);
    assert_int_equal(O.closed, 1);
    assert_int_equal(O.errors, 0);
    assert_int_equal(H.w.nconns, 0);
    close(lfd);
}

/* A refused connect reports -ECONNREFUSED once, then the connection is
 * closed and freed. */
static void test_connect_refused(void **state)
{
    (void)state;
    memset(&O, 0, sizeof O);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    close(lfd); /* nobody listens there now */

    h_init(6);
    hp_conn_t *c = NULL;
    int r = hp_worker_connect(&H.w, (struct sockaddr *)&a, sizeof a, &out_proto, NULL, NULL, &c);
    if (r == -ECONNREFUSED) {
        /* refused synchronously: nothing was created */
        assert_int_equal(H.w.nconns, 0);
        return;
    }
    assert_int_equal(r, 0);
    PUMP_UNTIL(O.errors == 1 && H.w.nconns == 0, 1000);
    assert_int_equal(O.errors, 1);
    assert_int_equal(O.err, -ECONNREFUSED);
    assert_int_equal(O.opened, 0);
    assert_int_equal(H.w.nconns, 0);
    step(0);
    assert_pools_empty();
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    hp_log_set_level(HP_LOG_ERROR);
    ops = fault_ops;
    ops.sendfile = hp_sys_real.sendfile;
#define T_(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T_(test_init_rejects_bad_config),
        T_(test_init_oom_sweep),
        T_(test_init_fields),
        T_(test_accept_many),
        T_(test_emfile_pauses_accept),
        T_(test_emfile_resumes_when_fd_frees),
        T_(test_accept_transient_errors),
        T_(test_accept_epoll_failure_drops_one),
        T_(test_read_budget_and_ready_queue),
        T_(test_shutdown_idle_now_busy_finishes),
        T_(test_shutdown_drain_timeout),
        T_(test_shutdown_without_connections_stops),
        T_(test_stop_now_via_post),
        T_(test_post_shutdown_then_run),
        T_(test_inbox_full),
        T_(test_stop_requests_pass_a_full_inbox),
        T_(test_destroy_closes_everything),
        T_(test_threaded_worker),
        T_(test_connect_out),
        T_(test_connect_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
