/*
 * loop.c - the epoll backend of hp_loop.
 *
 * Each iteration: one epoll_wait, one clock read, due timers, the batch
 * dispatched in order, then the hook (deferred work: fairness queue,
 * deferred frees). Invariant: loop->now_ms never goes backwards and is the same for
 * everything that runs in one iteration.
 *
 * The clock is CLOCK_MONOTONIC unless a test installed its own
 * (hp_loop_set_clock); read_clock() keeps the monotonic read a direct
 * call, so production pays a predictable branch, not an indirect call.
 */
#include "loop_int.h"

#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "hotpath/alloc.h"
#include "hotpath/clock.h"
#include "hotpath/common.h"
#include "sys_int.h"

static inline uint64_t read_clock(const hp_loop_t *loop)
{
    if (HP_UNLIKELY(loop->clock.now_ns != NULL))
        return loop->clock.now_ns(loop->clock.arg);
    return hp_clock_mono_ns();
}

uint64_t hp_loop_clock_ns(const hp_loop_t *loop)
{
    return read_clock(loop);
}

int hp_loop_init(hp_loop_t *loop)
{
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0)
        return -errno;
    loop->stopping = false;
    loop->pending = false;
    loop->clock = HP_CLOCK_MONO;
    loop->now_ns = hp_clock_mono_ns();
    loop->now_ms = loop->now_ns / 1000000;
    loop->deadline_ns = 0;
    loop->deadline_cb = NULL;
    loop->iterations = 0;
    loop->hook = NULL;
    loop->hook_arg = NULL;
    hp_timer_wheel_init(&loop->timers, loop->now_ms);
    return 0;
}

void hp_loop_destroy(hp_loop_t *loop)
{
    if (loop->epfd >= 0)
        close(loop->epfd);
    loop->epfd = -1;
}

int hp_loop_new(hp_loop_t **out)
{
    hp_loop_t *loop = hp_malloc(sizeof(*loop));
    if (!loop)
        return -ENOMEM;
    int r = hp_loop_init(loop);
    if (r < 0) {
        hp_free(loop);
        return r;
    }
    *out = loop;
    return 0;
}

void hp_loop_free(hp_loop_t *loop)
{
    if (!loop)
        return;
    hp_loop_destroy(loop);
    hp_free(loop);
}

/* The exported accessors: the names in parentheses are not the macros of
 * loop_int.h, whose inline bodies they reuse. */
uint64_t(hp_loop_now)(const hp_loop_t *loop)
{
    return hp_loop_now(loop);
}

void(hp_loop_timer_arm)(hp_loop_t *loop, hp_timer_t *t, uint64_t timeout_ms)
{
    hp_loop_timer_arm(loop, t, timeout_ms);
}

void(hp_loop_timer_cancel)(hp_loop_t *loop, hp_timer_t *t)
{
    hp_loop_timer_cancel(loop, t);
}

int hp_loop_add(hp_loop_t *loop, hp_io_t *io, int fd, uint32_t events, hp_io_cb cb)
{
    io->fd = fd;
    io->events = events | EPOLLET;
    io->cb = cb;
    struct epoll_event ev = {.events = io->events, .data.ptr = io};
    return hp_sys_epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev);
}

int hp_loop_mod(hp_loop_t *loop, hp_io_t *io, uint32_t events)
{
    struct epoll_event ev = {.events = events | EPOLLET, .data.ptr = io};
    int r = hp_sys_epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev);
    if (r == 0)
        io->events = ev.events;
    return r;
}

int hp_loop_del(hp_loop_t *loop, hp_io_t *io)
{
    struct epoll_event ev = {0};
    return hp_sys_epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, &ev);
}

int hp_loop_set_clock(hp_loop_t *loop, const hp_clock_src_t *src)
{
    if (hp_timer_wheel_count(&loop->timers) != 0 || loop->deadline_ns != 0)
        return -EBUSY;
    loop->clock = src ? *src : HP_CLOCK_MONO;
    /* The new clock may be behind the old one (a manual clock starting at
     * a round number): with nothing armed the wheel can simply restart
     * there, and "never backwards" holds from here on. */
    loop->now_ns = read_clock(loop);
    loop->now_ms = loop->now_ns / 1000000;
    hp_timer_wheel_init(&loop->timers, loop->now_ms);
    return 0;
}

void hp_loop_set_hook(hp_loop_t *loop, hp_loop_hook_cb cb, void *arg)
{
    loop->hook = cb;
    loop->hook_arg = arg;
}

/* How long the next wait may block: not past the next timer, and not at
 * all when the hook left work pending. Static so that run_once keeps it
 * inline; hp_loop_timeout is the same for callers outside. */
static inline int wait_budget(const hp_loop_t *loop, int max_wait_ms)
{
    if (loop->pending || loop->stopping)
        return 0;
    int64_t next = hp_timer_wheel_next_ms(&loop->timers);
    if (next < 0)
        return max_wait_ms;
    if (max_wait_ms >= 0 && next > max_wait_ms)
        return max_wait_ms;
    return next > 60000 ? 60000 : (int)next;
}

int hp_loop_timeout(const hp_loop_t *loop, int max_wait_ms)
{
    return wait_budget(loop, max_wait_ms);
}

void hp_loop_set_deadline(hp_loop_t *loop, uint64_t deadline_ns, hp_loop_deadline_cb cb,
                          void *arg)
{
    loop->deadline_ns = deadline_ns;
    loop->deadline_cb = cb;
    loop->deadline_arg = arg;
}

/* Waits for events: epoll_wait normally, epoll_pwait2 when a deadline
 * needs a finer timeout than milliseconds. */
static int wait_events(hp_loop_t *loop, int timeout_ms)
{
    if (!loop->deadline_ns || timeout_ms == 0)
        return epoll_wait(loop->epfd, loop->events, HP_LOOP_BATCH, timeout_ms);
    uint64_t now = read_clock(loop);
    uint64_t wait = loop->deadline_ns > now ? loop->deadline_ns - now : 0;
    if (timeout_ms > 0 && wait > (uint64_t)timeout_ms * 1000000)
        wait = (uint64_t)timeout_ms * 1000000;
    struct timespec ts = {.tv_sec = (time_t)(wait / 1000000000),
                          .tv_nsec = (long)(wait % 1000000000)};
    return epoll_pwait2(loop->epfd, loop->events, HP_LOOP_BATCH, &ts, NULL);
}

static int run_iteration(hp_loop_t *loop, int timeout_ms)
{
    int n = wait_events(loop, timeout_ms);
    if (n < 0) {
        if (errno != EINTR)
            return -errno;
        n = 0;
    }
    uint64_t now = read_clock(loop);
    if (now > loop->now_ns) {
        loop->now_ns = now;
        loop->now_ms = now / 1000000;
    }
    loop->iterations++;
    if (loop->deadline_ns && loop->now_ns >= loop->deadline_ns) {
        hp_loop_deadline_cb cb = loop->deadline_cb;
        loop->deadline_ns = 0;
        cb(loop, loop->deadline_arg);
    }
    /* Timers first: this moves the wheel to the iteration's time, so that
     * timers armed by the callbacks below count from now, not from the
     * last wake-up. */
    hp_timer_wheel_advance(&loop->timers, loop->now_ms);
    for (int i = 0; i < n; i++) {
        hp_io_t *io = loop->events[i].data.ptr;
        io->cb(io, loop->events[i].events);
    }
    return n;
}

int hp_loop_run_once(hp_loop_t *loop, int max_wait_ms)
{
    int n = run_iteration(loop, wait_budget(loop, max_wait_ms));
    if (n < 0)
        return n;
    loop->pending = loop->hook ? loop->hook(loop, loop->hook_arg) : false;
    return n;
}

int hp_loop_run(hp_loop_t *loop)
{
    while (!loop->stopping) {
        int n = hp_loop_run_once(loop, -1);
        if (n < 0)
            return n;
    }
    return 0;
}

void hp_loop_stop(hp_loop_t *loop)
{
    loop->stopping = true;
}
