/*
 * test_loop.c - unit tests for src/core/loop.c: watching and unwatching
 * descriptors, edge-triggered delivery (one callback per edge, not per
 * poll), the cached clock, timers fired by run_once and bounding its wait,
 * the per-iteration hook (order, and its "work pending" answer making the
 * next wait a poll), hp_loop_run and hp_loop_stop, error returns.
 *
 * Descriptors are pipes and eventfds; everything runs on this thread.
 * Timers and deadlines run on a manual clock (manual_clock.h): a test
 * advances it and runs an iteration that does not wait, so a timer fires
 * exactly when the test says and no assertion depends on how fast the
 * machine is. How long a wait would be is read from hp_loop_timeout,
 * not measured.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hotpath/clock.h"
#include "hotpath/common.h"
#include "core/loop_int.h"
#include "core/sys_int.h"

#include "../manual_clock.h"

/* A loop on a fresh manual clock. */
static void init_manual(hp_loop_t *loop, mclock_t *mc)
{
    assert_int_equal(hp_loop_init(loop), 0);
    mclock_init(mc);
    assert_int_equal(hp_loop_set_clock(loop, &mc->src), 0);
}

/* A watched pipe that counts its callbacks. */
typedef struct watch {
    hp_io_t io;
    int rfd, wfd;
    int calls;
    uint32_t last_events;
    bool drain; /* read everything in the callback */
} watch_t;

static char g_order[64];

static void order_add(char c)
{
    size_t n = strlen(g_order);
    if (n + 1 < sizeof g_order) {
        g_order[n] = c;
        g_order[n + 1] = '\0';
    }
}

static void watch_cb(hp_io_t *io, uint32_t events)
{
    watch_t *w = HP_CONTAINER_OF(io, watch_t, io);
    w->calls++;
    w->last_events = events;
    order_add('e');
    if (w->drain) {
        char buf[256];
        while (read(w->rfd, buf, sizeof buf) > 0) {
        }
    }
}

static void watch_open(watch_t *w)
{
    memset(w, 0, sizeof *w);
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    w->rfd = p[0];
    w->wfd = p[1];
}

static void watch_close(watch_t *w)
{
    close(w->rfd);
    close(w->wfd);
}

static void poke(watch_t *w)
{
    assert_int_equal(write(w->wfd, "x", 1), 1);
}

static void test_init_destroy(void **state)
{
    (void)state;
    hp_loop_t loop;
    uint64_t t0 = hp_clock_mono_ms();
    assert_int_equal(hp_loop_init(&loop), 0);
    assert_true(loop.epfd >= 0);
    assert_true(fcntl(loop.epfd, F_GETFD) & FD_CLOEXEC);
    assert_false(loop.stopping);
    assert_null(loop.hook);
    assert_int_equal(loop.iterations, 0);
    uint64_t t = hp_clock_mono_ms();
    /* the monotonic clock, read during init */
    assert_true(hp_loop_now(&loop) >= t0 && hp_loop_now(&loop) <= t);
    int epfd = loop.epfd;
    hp_loop_destroy(&loop);
    assert_int_equal(loop.epfd, -1);
    assert_int_equal(fcntl(epfd, F_GETFD), -1); /* really closed */
    hp_loop_destroy(&loop);                     /* idempotent */
}

static void test_add_del_edge_triggered(void **state)
{
    (void)state;
    hp_loop_t loop;
    assert_int_equal(hp_loop_init(&loop), 0);
    watch_t w;
    watch_open(&w);
    assert_int_equal(hp_loop_add(&loop, &w.io, w.rfd, EPOLLIN, watch_cb), 0);
    assert_int_equal(w.io.fd, w.rfd);
    assert_true(w.io.events & EPOLLET);
    assert_true(w.io.events & EPOLLIN);
    /* nothing readable yet */
    assert_int_equal(hp_loop_run_once(&loop, 0), 0);
    assert_int_equal(w.calls, 0);

    poke(&w);
    assert_int_equal(hp_loop_run_once(&loop, 1000), 1);
    assert_int_equal(w.calls, 1);
    assert_true(w.last_events & EPOLLIN);
    /* the byte is still unread, but edge-triggered: no second callback */
    assert_int_equal(hp_loop_run_once(&loop, 20), 0);
    assert_int_equal(w.calls, 1);
    /* a new byte is a new edge */
    poke(&w);
    assert_int_equal(hp_loop_run_once(&loop, 1000), 1);
    assert_int_equal(w.calls, 2);
    /* several writes before the wait: one callback */
    poke(&w);
    poke(&w);
    poke(&w);
    assert_int_equal(hp_loop_run_once(&loop, 1000), 1);
    assert_int_equal(w.calls, 3);

    /* adding twice fails with -EEXIST */
    watch_t dup = w;
    assert_int_equal(hp_loop_add(&loop, &dup.io, w.rfd, EPOLLIN, watch_cb), -EEXIST);

    assert_int_equal(hp_loop_del(&loop, &w.io), 0);
    poke(&w);
    assert_int_equal(hp_loop_run_once(&loop, 20), 0);
    assert_int_equal(w.calls, 3);
    assert_int_equal(hp_loop_del(&loop, &w.io), -ENOENT);
    /* re-adding with bytes already buffered reports them at once */
    assert_int_equal(hp_loop_add(&loop, &w.io, w.rfd, EPOLLIN, watch_cb), 0);
    assert_int_equal(hp_loop_run_once(&loop, 1000), 1);
    assert_int_equal(w.calls, 4);
    /* a bad descriptor */
    watch_t bad;
    memset(&bad, 0, sizeof bad);
    assert_int_equal(hp_loop_add(&loop, &bad.io, -1, EPOLLIN, watch_cb), -EBADF);
    watch_close(&w);
    hp_loop_destroy(&loop);
}

static void test_many_watchers_in_one_batch(void **state)
{
    (void)state;
    hp_loop_t loop;
    assert_int_equal(hp_loop_init(&loop), 0);
    enum { N = 20 };
    watch_t w[N];
    for (int i = 0; i < N; i++) {
        watch_open(&w[i]);
        w[i].drain = true;
        assert_int_equal(hp_loop_add(&loop, &w[i].io, w[i].rfd, EPOLLIN, watch_cb), 0);
    }
    for (int i = 0; i < N; i += 2)
        poke(&w[i]);
    assert_int_equal(hp_loop_run_once(&loop, 1000), N / 2);
    for (int i = 0; i < N; i++)
        assert_int_equal(w[i].calls, i % 2 == 0 ? 1 : 0);
    /* closing a descriptor removes it without hp_loop_del */
    close(w[1].rfd);
    w[1].rfd = -1;
    assert_int_equal(write(w[1].wfd, "x", 1), -1); /* EPIPE: no reader */
    assert_int_equal(hp_loop_run_once(&loop, 10), 0);
    for (int i = 0; i < N; i++)
        watch_close(&w[i]);
    hp_loop_destroy(&loop);
}

static void test_closing_fd_removes_it(void **state)
{
    (void)state;
    hp_loop_t loop;
    assert_int_equal(hp_loop_init(&loop), 0);
    int efd = eventfd(0, EFD_NONBLOCK);
    assert_true(efd >= 0);
    watch_t w;
    memset(&w, 0, sizeof w);
    assert_int_equal(hp_loop_add(&loop, &w.io, efd, EPOLLIN, watch_cb), 0);
    close(efd);
    /* a fresh eventfd may reuse the number; it is not watched */
    int efd2 = eventfd(1, EFD_NONBLOCK);
    assert_int_equal(hp_loop_run_once(&loop, 10), 0);
    assert_int_equal(w.calls, 0);
    close(efd2);
    hp_loop_destroy(&loop);
}

static int g_fired;
static hp_loop_t *g_loop;

static void timer_cb(hp_timer_t *t)
{
    (void)t;
    g_fired++;
    order_add('t');
}

/* A timer fires on the first iteration at or after its deadline, never
 * before; the next timer bounds a wait that would otherwise last until an
 * event, and a shorter max_wait_ms bounds it further. */
static void test_timers_fire_and_bound_the_wait(void **state)
{
    (void)state;
    hp_loop_t loop;
    mclock_t mc;
    init_manual(&loop, &mc);
    uint64_t start = hp_loop_now(&loop);
    hp_timer_t t1, t2;
    hp_timer_init(&t1, timer_cb);
    hp_timer_init(&t2, timer_cb);
    g_fired = 0;
    assert_int_equal(hp_loop_timeout(&loop, -1), -1); /* no timer: until an event */
    assert_int_equal(hp_loop_timeout(&loop, 20), 20);
    hp_loop_timer_arm(&loop, &t1, 30);
    hp_loop_timer_arm(&loop, &t2, 5000);
    /* -1 would wait for ever without timers: the 30 ms timer bounds it,
     * and max_wait_ms shorter than the next timer wins */
    assert_int_equal(hp_loop_timeout(&loop, -1), 30);
    assert_int_equal(hp_loop_timeout(&loop, 1000), 30);
    assert_int_equal(hp_loop_timeout(&loop, 20), 20);

    /* 1 ms early: nothing fires, and the next wait is that 1 ms */
    mclock_advance_ms(&mc, 29);
    assert_int_equal(hp_loop_run_once(&loop, 0), 0);
    assert_int_equal(g_fired, 0);
    assert_int_equal(hp_loop_now(&loop), start + 29);
    assert_int_equal(hp_loop_timeout(&loop, -1), 1);
    /* A real blocking wait bounded by the timer: it returns (after 1 ms)
     * although no event comes; the clock did not move, so nothing fires. */
    assert_int_equal(hp_loop_run_once(&loop, -1), 0);
    assert_int_equal(g_fired, 0);

    mclock_advance_ms(&mc, 1);
    assert_int_equal(hp_loop_run_once(&loop, 0), 0);
    assert_int_equal(g_fired, 1);
    assert_false(hp_timer_armed(&t1));
    assert_true(hp_timer_armed(&t2));
    assert_int_equal(hp_loop_now(&loop), t1.expire_ms);
    /* t2 is 4970 ms away, more than one rotation of the wheel: the wait
     * may end early (at the slot it shares with a later rotation) but
     * never late */
    int64_t next = hp_loop_timeout(&loop, -1);
    assert_true(next > 0 && next <= 4970);
    assert_int_equal(hp_loop_timeout(&loop, 20), 20);

    /* cancel: it never fires */
    hp_loop_timer_cancel(&loop, &t2);
    assert_int_equal(hp_loop_timeout(&loop, -1), -1);
    hp_loop_timer_arm(&loop, &t1, 0); /* due now: the wait must not block */
    assert_int_equal(hp_loop_timeout(&loop, 5000), 0);
    assert_int_equal(hp_loop_run_once(&loop, 5000), 0);
    assert_int_equal(g_fired, 2);
    mclock_advance_ms(&mc, 10000);
    assert_int_equal(hp_loop_run_once(&loop, 0), 0);
    assert_int_equal(g_fired, 2);
    assert_int_equal(hp_timer_wheel_count(&loop.timers), 0);
    assert_int_equal(hp_timer_wheel_validate(&loop.timers), 0);
    hp_loop_destroy(&loop);
}

/* The real clock still drives a loop nobody gave a clock: a blocking
 * wait bounded by max_wait_ms lasts at least that long (a lower bound, so
 * a slow machine cannot fail it), and a timer armed before it has moved
 * with the time that passed. */
static void test_monotonic_clock_moves(void **state)
{
    (void)state;
    hp_loop_t loop;
    assert_int_equal(hp_loop_init(&loop), 0);
    hp_timer_t t;
    hp_timer_init(&t, timer_cb);
    g_fired = 0;
    hp_loop_timer_arm(&loop, &t, 10);
    uint64_t t0 = hp_clock_mono_ms();
    uint64_t before = hp_loop_now(&loop);
    while (g_fired == 0)
        assert_true(hp_loop_run_once(&loop, -1) >= 0); /* bounded by the timer */
    assert_true(hp_clock_mono_ms() - t0 >= 9);
    assert_true(hp_loop_now(&loop) >= before + 10);
    assert_true(hp_loop_now(&loop) <= hp_clock_mono_ms());
    t0 = hp_clock_mono_ms();
    assert_int_equal(hp_loop_run_once(&loop, 20), 0);
    assert_true(hp_clock_mono_ms() - t0 >= 15);
    hp_loop_destroy(&loop);
}

/* hp_loop_set_clock: the loop's time jumps to the new clock's at once and
 * never goes backwards after that; it refuses while anything is armed on
 * the old clock; NULL goes back to CLOCK_MONOTONIC. */
static void test_set_clock(void **state)
{
    (void)state;
    hp_loop_t loop;
    mclock_t mc;
    init_manual(&loop, &mc);
    assert_int_equal(hp_loop_now(&loop), MCLOCK_START_NS / 1000000);
    assert_int_equal(loop.now_ns, MCLOCK_START_NS);
    assert_int_equal(hp_loop_clock_ns(&loop), MCLOCK_START_NS);
    mclock_advance_ns(&mc, 2500000); /* 2.5 ms */
    assert_int_equal(hp_loop_clock_ns(&loop), MCLOCK_START_NS + 2500000);
    assert_int_equal(hp_loop_now(&loop), MCLOCK_START_NS / 1000000); /* cached */
    assert_int_equal(hp_loop_run_once(&loop, 0), 0);
    assert_int_equal(hp_loop_now(&loop), MCLOCK_START_NS / 1000000 + 2);
    /* a clock that steps back: the loop's time stays */
    mc.ns -= 2000000;
    assert_int_equal(hp_loop_run_once(&loop, 0), 0);
    assert_int_equal(hp_loop_now(&loop), MCLOCK_START_NS / 1000000 + 2);

    /* busy: a timer or a deadline belongs to the clock in use */
    hp_timer_t t;
    hp_timer_init(&t, timer_cb);
    hp_loop_timer_arm(&loop, &t, 5);
    assert_int_equal(hp_loop_set_clock(&loop, NULL), -EBUSY);
    assert_ptr_equal(loop.clock.arg, &mc);
    hp_loop_timer_cancel(&loop, &t);
    hp_loop_set_deadline(&loop, mc.ns + 1000, NULL, NULL);
    assert_int_equal(hp_loop_set_clock(&loop, NULL), -EBUSY);
    hp_loop_set_deadline(&loop, 0, NULL, NULL);

    /* back to the monotonic clock, which is far behind this manual one */
    uint64_t t0 = hp_clock_mono_ms();
    assert_int_equal(hp_loop_set_clock(&loop, NULL), 0);
    assert_null(loop.clock.now_ns);
    assert_true(hp_loop_now(&loop) >= t0 && hp_loop_now(&loop) <= hp_clock_mono_ms());
    /* and the wheel restarted there: a new timer counts from now */
    hp_loop_timer_arm(&loop, &t, 5);
    assert_int_equal(t.expire_ms, hp_loop_now(&loop) + 5);
    assert_int_equal(hp_timer_wheel_validate(&loop.timers), 0);
    hp_loop_timer_cancel(&loop, &t);
    hp_loop_destroy(&loop);
}

/* ---- hook ---- */

static int g_hook_calls;
static int g_hook_pending; /* return true this many more times */
static int g_hook_stop_at;
static uint64_t g_hook_now;

static bool hook_cb(hp_loop_t *loop, void *arg)
{
    assert_ptr_equal(arg, &g_hook_calls);
    g_hook_calls++;
    g_hook_now = hp_loop_now(loop);
    order_add('h');
    if (g_hook_stop_at && g_hook_calls >= g_hook_stop_at)
        hp_loop_stop(loop);
    if (g_hook_pending > 0) {
        g_hook_pending--;
        return true;
    }
    return false;
}

static void test_hook_order(void **state)
{
    (void)state;
    hp_loop_t loop;
    assert_int_equal(hp_loop_init(&loop), 0);
    g_hook_calls = 0;
    g_hook_pending = 0;
    g_hook_stop_at = 0;
    hp_loop_set_hook(&loop, hook_cb, &g_hook_calls);
    watch_t w;
    watch_open(&w);
    assert_int_equal(hp_loop_add(&loop, &w.io, w.rfd, EPOLLIN, watch_cb), 0);
    hp_timer_t t;
    hp_timer_init(&t, timer_cb);
    g_fired = 0;
    hp_loop_timer_arm(&loop, &t, 0);
    poke(&w);
    g_order[0] = '\0';
    uint64_t it = loop.iterations;
    assert_int_equal(hp_loop_run_once(&loop, 1000), 1);
    /* due timers, then events, then the hook, all in one iteration */
    assert_string_equal(g_order, "teh");
    assert_int_equal(loop.iterations, it + 1);
    assert_int_equal(g_hook_now, hp_loop_now(&loop));
    /* the hook runs even when nothing happened */
    g_order[0] = '\0';
    assert_int_equal(hp_loop_run_once(&loop, 0), 0);
    assert_string_equal(g_order, "h");
    assert_int_equal(g_hook_calls, 2);
    hp_loop_set_hook(&loop, NULL, NULL);
    assert_int_equal(hp_loop_run_once(&loop, 0), 0);
    assert_int_equal(g_hook_calls, 2);
    watch_close(&w);
    hp_loop_destroy(&loop);
}

static void stop_timer_cb(hp_timer_t *t)
{
    (void)t;
    g_fired++;
    hp_loop_stop(g_loop);
}

/* hp_loop_run: a hook that says "pending" makes the next wait a poll.
 * After the one edge that starts it, the only thing that could end a
 * blocking wait is a safety timer 30 s away on the real clock: if any wait
 * blocked, the timer would fire and stop the loop before the hook's 50th
 * call. The 30 s is not a speed bound, only how long a broken loop takes
 * to fail; 50 polls take microseconds however loaded the machine. */
static void test_run_hook_pending_polls(void **state)
{
    (void)state;
    hp_loop_t loop;
    assert_int_equal(hp_loop_init(&loop), 0);
    g_loop = &loop;
    g_hook_calls = 0;
    g_hook_pending = 1000;
    g_hook_stop_at = 50;
    g_fired = 0;
    hp_loop_set_hook(&loop, hook_cb, &g_hook_calls);
    hp_timer_t safety;
    hp_timer_init(&safety, stop_timer_cb);
    hp_loop_timer_arm(&loop, &safety, 30000);
    /* one edge so that the very first wait returns at once */
    watch_t w;
    watch_open(&w);
    assert_int_equal(hp_loop_add(&loop, &w.io, w.rfd, EPOLLIN, watch_cb), 0);
    poke(&w);
    assert_int_equal(hp_loop_run(&loop), 0);
    assert_int_equal(w.calls, 1);
    watch_close(&w);
    assert_int_equal(g_fired, 0);
    assert_int_equal(g_hook_calls, 50);
    assert_true(loop.stopping);
    hp_loop_timer_cancel(&loop, &safety);
    hp_loop_destroy(&loop);
}

/* The same contract through hp_loop_run_once: after a hook that left work
 * pending, the next run_once must not block for max_wait_ms; after one
 * that did not, it may. */
static void test_run_once_hook_pending_polls(void **state)
{
    (void)state;
    hp_loop_t loop;
    mclock_t mc;
    init_manual(&loop, &mc);
    g_hook_calls = 0;
    g_hook_pending = 1;
    g_hook_stop_at = 0;
    hp_loop_set_hook(&loop, hook_cb, &g_hook_calls);
    assert_int_equal(hp_loop_timeout(&loop, 500), 500);
    assert_int_equal(hp_loop_run_once(&loop, 0), 0); /* hook says: pending */
    assert_int_equal(g_hook_calls, 1);
    assert_int_equal(hp_loop_timeout(&loop, 500), 0);
    assert_int_equal(hp_loop_timeout(&loop, -1), 0);
    /* run_once waits hp_loop_timeout(loop, max_wait_ms): here a poll */
    assert_int_equal(hp_loop_run_once(&loop, 500), 0);
    assert_int_equal(g_hook_calls, 2);
    assert_int_equal(hp_loop_timeout(&loop, 500), 500); /* no longer pending */
    hp_loop_destroy(&loop);
}

/* Advances the manual clock 5 ms per iteration and polls. */
static mclock_t *g_mc;
static uint64_t g_fired_at;

static bool tick_hook_cb(hp_loop_t *loop, void *arg)
{
    (void)loop;
    (void)arg;
    g_hook_calls++;
    mclock_advance_ms(g_mc, 5);
    return true;
}

static void stop_timer_at_cb(hp_timer_t *t)
{
    stop_timer_cb(t);
    g_fired_at = hp_loop_now(g_loop);
}

static void test_run_stops_from_callback_and_timer(void **state)
{
    (void)state;
    hp_loop_t loop;
    mclock_t mc;
    init_manual(&loop, &mc);
    g_loop = &loop;
    g_mc = &mc;
    g_fired = 0;
    g_hook_calls = 0;
    hp_loop_set_hook(&loop, tick_hook_cb, NULL);
    uint64_t start = hp_loop_now(&loop);
    hp_timer_t t;
    hp_timer_init(&t, stop_timer_at_cb);
    hp_loop_timer_arm(&loop, &t, 20);
    uint64_t it = loop.iterations;
    assert_int_equal(hp_loop_run(&loop), 0);
    assert_int_equal(g_fired, 1);
    /* iterations at +0, +5, +10, +15 ms: not yet; +20: fired and stopped */
    assert_int_equal(g_fired_at, start + 20);
    assert_int_equal(loop.iterations, it + 5);
    assert_int_equal(g_hook_calls, 5); /* the stopping iteration ran its hook */
    /* stopped before it runs: returns without an iteration */
    it = loop.iterations;
    assert_int_equal(hp_loop_run(&loop), 0);
    assert_int_equal(loop.iterations, it);
    /* a stopped loop still runs single iterations, without blocking */
    hp_loop_set_hook(&loop, NULL, NULL);
    loop.pending = false;
    assert_int_equal(hp_loop_timeout(&loop, 1000), 0);
    assert_int_equal(hp_loop_run_once(&loop, 1000), 0);
    assert_int_equal(loop.iterations, it + 1);
    hp_loop_destroy(&loop);
}

/* ---- high-resolution deadline ---- */
static uint64_t g_deadline_at, g_deadline_ran_at;
static int g_deadline_runs;

static void deadline_cb(hp_loop_t *loop, void *arg)
{
    (void)arg;
    g_deadline_ran_at = hp_loop_clock_ns(loop);
    g_deadline_runs++;
    /* cleared before the callback: it may set the next */
    assert_int_equal(loop->deadline_ns, 0);
}

/* On a manual clock, to the nanosecond: a deadline runs on the first
 * iteration at or after it, never before, and once; 0 clears one. */
static void test_deadline_exact_and_once(void **state)
{
    (void)state;
    hp_loop_t loop;
    mclock_t mc;
    init_manual(&loop, &mc);
    g_deadline_runs = 0;
    g_deadline_at = mc.ns + 300000; /* 300 us */
    hp_loop_set_deadline(&loop, g_deadline_at, deadline_cb, NULL);
    assert_int_equal(hp_loop_run_once(&loop, 0), 0);
    mclock_advance_ns(&mc, 299999);
    assert_int_equal(hp_loop_run_once(&loop, 0), 0);
    assert_int_equal(g_deadline_runs, 0);
    /* A real wait with a deadline ahead ends at the deadline (1 ns of
     * real time from here): the clock did not move, so it does not run. */
    assert_int_equal(hp_loop_run_once(&loop, -1), 0);
    assert_int_equal(g_deadline_runs, 0);
    mclock_advance_ns(&mc, 1);
    assert_int_equal(hp_loop_run_once(&loop, 0), 0);
    assert_int_equal(g_deadline_runs, 1);
    assert_int_equal(g_deadline_ran_at, g_deadline_at);
    /* cleared: another iteration does not run it again */
    mclock_advance_ms(&mc, 10);
    assert_int_equal(hp_loop_run_once(&loop, 0), 0);
    assert_int_equal(g_deadline_runs, 1);
    /* 0 clears a deadline that was set */
    hp_loop_set_deadline(&loop, mc.ns + 100000, deadline_cb, NULL);
    hp_loop_set_deadline(&loop, 0, NULL, NULL);
    mclock_advance_ms(&mc, 10);
    assert_int_equal(hp_loop_run_once(&loop, 0), 0);
    assert_int_equal(g_deadline_runs, 1);
    hp_loop_destroy(&loop);
}

/* On the real clock, the deadline ends a wait that nothing else would
 * end soon: the only other wake-up is a safety timer 30 s away, which
 * would fire (and fail the test) if the wait ignored the deadline. The
 * deadline never runs early. How late it runs depends on the machine's
 * load, so it is printed, not asserted. */
static void test_deadline_wakes_a_blocking_wait(void **state)
{
    (void)state;
    hp_loop_t loop;
    assert_int_equal(hp_loop_init(&loop), 0);
    hp_timer_t safety;
    hp_timer_init(&safety, timer_cb);
    g_fired = 0;
    hp_loop_timer_arm(&loop, &safety, 30000);
    enum { ROUNDS = 11 };
    uint64_t late[ROUNDS];
    for (int round = 0; round < ROUNDS; round++) {
        g_deadline_runs = 0;
        g_deadline_at = hp_clock_mono_ns() + 300000;
        hp_loop_set_deadline(&loop, g_deadline_at, deadline_cb, NULL);
        while (g_deadline_runs == 0 && g_fired == 0)
            assert_true(hp_loop_run_once(&loop, -1) >= 0);
        assert_int_equal(g_fired, 0);
        assert_int_equal(g_deadline_runs, 1);
        assert_true(g_deadline_ran_at >= g_deadline_at);
        late[round] = g_deadline_ran_at - g_deadline_at;
    }
    for (int i = 1; i < ROUNDS; i++)
        for (int j = i; j > 0 && late[j - 1] > late[j]; j--) {
            uint64_t x = late[j];
            late[j] = late[j - 1];
            late[j - 1] = x;
        }
    print_message("deadline 300 us away: median lateness %llu us\n",
                  (unsigned long long)(late[ROUNDS / 2] / 1000));
    hp_loop_timer_cancel(&loop, &safety);
    hp_loop_destroy(&loop);
}

static int g_epoll_fail;

static int failing_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    if (g_epoll_fail) {
        errno = g_epoll_fail;
        return -1;
    }
    return hp_sys_real.epoll_ctl(epfd, op, fd, ev);
}

static void test_add_goes_through_sys(void **state)
{
    (void)state;
    hp_sys_ops_t ops = hp_sys_real;
    ops.epoll_ctl = failing_epoll_ctl;
    hp_sys_set_ops(&ops);
    hp_loop_t loop;
    assert_int_equal(hp_loop_init(&loop), 0);
    watch_t w;
    watch_open(&w);
    g_epoll_fail = ENOSPC;
    assert_int_equal(hp_loop_add(&loop, &w.io, w.rfd, EPOLLIN, watch_cb), -ENOSPC);
    g_epoll_fail = 0;
    assert_int_equal(hp_loop_add(&loop, &w.io, w.rfd, EPOLLIN, watch_cb), 0);
    g_epoll_fail = ENOMEM;
    assert_int_equal(hp_loop_del(&loop, &w.io), -ENOMEM);
    g_epoll_fail = 0;
    assert_int_equal(hp_loop_del(&loop, &w.io), 0);
    hp_sys_set_ops(NULL);
    watch_close(&w);
    hp_loop_destroy(&loop);
}

static void test_run_once_error(void **state)
{
    (void)state;
    hp_loop_t loop;
    assert_int_equal(hp_loop_init(&loop), 0);
    int epfd = loop.epfd;
    close(epfd);
    assert_int_equal(hp_loop_run_once(&loop, 0), -EBADF);
    assert_int_equal(hp_loop_run(&loop), -EBADF);
    loop.epfd = -1;
    hp_loop_destroy(&loop);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_destroy),
        cmocka_unit_test(test_add_del_edge_triggered),
        cmocka_unit_test(test_many_watchers_in_one_batch),
        cmocka_unit_test(test_closing_fd_removes_it),
        cmocka_unit_test(test_timers_fire_and_bound_the_wait),
        cmocka_unit_test(test_monotonic_clock_moves),
        cmocka_unit_test(test_set_clock),
        cmocka_unit_test(test_hook_order),
        cmocka_unit_test(test_run_hook_pending_polls),
        cmocka_unit_test(test_run_once_hook_pending_polls),
        cmocka_unit_test(test_run_stops_from_callback_and_timer),
        cmocka_unit_test(test_add_goes_through_sys),
        cmocka_unit_test(test_run_once_error),
        cmocka_unit_test(test_deadline_exact_and_once),
        cmocka_unit_test(test_deadline_wakes_a_blocking_wait),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
