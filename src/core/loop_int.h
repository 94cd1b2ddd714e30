/*
 * loop_int.h - inside the loop: its struct, set-up in place (the worker
 * embeds its loop) and the inline forms of the accessors.
 *
 * The accessors hp_loop_now, hp_loop_timer_arm and hp_loop_timer_cancel
 * are exported functions for embedders; inside the library the macros
 * below stand for them (same name, same meaning) so that the request path
 * pays no call. loop.c defines the functions with their names in
 * parentheses, which the macros do not expand.
 */
#ifndef HOTPATH_LOOP_INT_H
#define HOTPATH_LOOP_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "hotpath/clock.h"
#include "hotpath/loop.h"
#include "timer_int.h"

/* Events fetched per epoll_wait: enough to amortise the syscall over many
 * connections, small enough that the array stays in L1/L2. */
#define HP_LOOP_BATCH 256

struct hp_loop {
    int epfd;
    bool stopping;
    bool pending;          /* the hook left work: the next wait polls */
    uint64_t now_ns;       /* the loop's clock, read once per iteration */
    uint64_t now_ms;       /* the same in ms, for timers */
    uint64_t deadline_ns;  /* 0: none (see hp_loop_set_deadline) */
    hp_loop_deadline_cb deadline_cb;
    void *deadline_arg;
    hp_clock_src_t clock;  /* HP_CLOCK_MONO unless a test set one */
    uint64_t iterations;
    hp_loop_hook_cb hook;
    void *hook_arg;
    hp_timer_wheel_t timers;
    struct epoll_event events[HP_LOOP_BATCH];
};

/* Creates the epoll instance. Returns 0 or -errno. */
int hp_loop_init(hp_loop_t *loop);

/* Closes the epoll instance. Watched descriptors are not closed. */
void hp_loop_destroy(hp_loop_t *loop);

static inline uint64_t hp_loop_now_inl(const hp_loop_t *loop)
{
    return loop->now_ms;
}

static inline void hp_loop_timer_arm_inl(hp_loop_t *loop, hp_timer_t *t, uint64_t timeout_ms)
{
    hp_timer_arm(&loop->timers, t, timeout_ms);
}

static inline void hp_loop_timer_cancel_inl(hp_loop_t *loop, hp_timer_t *t)
{
    hp_timer_cancel(&loop->timers, t);
}

#define hp_loop_now(loop) hp_loop_now_inl(loop)
#define hp_loop_timer_arm(loop, t, ms) hp_loop_timer_arm_inl(loop, t, ms)
#define hp_loop_timer_cancel(loop, t) hp_loop_timer_cancel_inl(loop, t)

#endif
