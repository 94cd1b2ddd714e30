/*
 * loop.h - the event loop: watch file descriptors, run timers, stop.
 *
 * One loop per worker thread, never shared. The backend is edge-triggered
 * epoll; interest is registered once per descriptor (reads and writes
 * together), so steady-state request handling makes no epoll_ctl calls.
 * Time is read once per iteration (hp_loop_now) and timers live in the
 * loop's hashed wheel. The time comes from CLOCK_MONOTONIC unless a test
 * installs a clock of its own (hp_loop_set_clock); everything that runs
 * on the loop takes its time from the loop, never from the system.
 */
#ifndef HOTPATH_LOOP_H
#define HOTPATH_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "hotpath/clock.h"
#include "hotpath/common.h"
#include "hotpath/timer.h"

typedef struct hp_loop hp_loop_t; /* opaque */
typedef struct hp_io hp_io_t;

/* Called with the epoll event bits (EPOLLIN, EPOLLOUT, EPOLLERR ...). */
typedef void (*hp_io_cb)(hp_io_t *io, uint32_t events);

/* Runs once per iteration after due timers and the batch of events. Returns true when it left work pending, so that the next
 * wait polls instead of blocking. */
typedef bool (*hp_loop_hook_cb)(hp_loop_t *loop, void *arg);

/* Runs once the loop's clock has passed the loop's deadline. */
typedef void (*hp_loop_deadline_cb)(hp_loop_t *loop, void *arg);

/* A watched descriptor; embed it in the object that owns the fd. */
struct hp_io {
    int fd;
    uint32_t events;
    hp_io_cb cb;
};

/* Makes a loop (its epoll instance and timers) for the calling thread to
 * run. Returns 0 with *out set, or -errno. */
HP_EXPORT int hp_loop_new(hp_loop_t **out);

/* Frees a loop made by hp_loop_new (NULL is ignored). Watched descriptors
 * are not closed; armed timers are forgotten. */
HP_EXPORT void hp_loop_free(hp_loop_t *loop);

/* Watches io->fd for `events` (EPOLLET is added). `io` is borrowed and must
 * stay valid until hp_loop_del or until its fd is closed. Returns 0 or
 * -errno. */
HP_EXPORT int hp_loop_add(hp_loop_t *loop, hp_io_t *io, int fd, uint32_t events, hp_io_cb cb);

/* Watches a watched io->fd for `events` instead (EPOLLET is added); a
 * readiness that holds already is reported at the next wait. Returns 0 or
 * -errno. */
HP_EXPORT int hp_loop_mod(hp_loop_t *loop, hp_io_t *io, uint32_t events);

/* Stops watching io->fd at once. Returns 0 or -errno. Closing the fd also
 * removes it, without this call. */
HP_EXPORT int hp_loop_del(hp_loop_t *loop, hp_io_t *io);

/* Sets the per-iteration hook (one per loop). */
HP_EXPORT void hp_loop_set_hook(hp_loop_t *loop, hp_loop_hook_cb cb, void *arg);

/* Makes the loop read its time from `src` (copied; NULL: CLOCK_MONOTONIC
 * again) and reads it at once: hp_loop_now and the timer wheel restart at
 * the new clock's time. For tests, which advance a manual clock and then
 * run an iteration with max_wait_ms 0; waits still sleep in real time, so
 * a blocking wait on a clock that nobody advances never ends.
 * Returns 0, or -EBUSY (nothing changed) when a timer is armed or a
 * deadline set: their times belong to the old clock. */
HP_EXPORT int hp_loop_set_clock(hp_loop_t *loop, const hp_clock_src_t *src);

/* A fresh read of the loop's clock in ns (not the cached iteration time),
 * for the rare measurement that needs the time since the iteration
 * started. */
HP_EXPORT uint64_t hp_loop_clock_ns(const hp_loop_t *loop);

/* Asks for `cb` to run as soon as the loop's clock reaches
 * `deadline_ns`, with nanosecond precision (the wait uses epoll_pwait2),
 * for work on a schedule finer than the 1 ms timer wheel, such as a load
 * generator's constant rate. One deadline per loop; it is cleared before
 * `cb` runs, which may set the next. 0 clears it. */
HP_EXPORT void hp_loop_set_deadline(hp_loop_t *loop, uint64_t deadline_ns, hp_loop_deadline_cb cb,
                                    void *arg);

/* How long hp_loop_run_once(loop, max_wait_ms) would wait if no event
 * came, in ms on the loop's clock: 0 when the loop is stopping, the hook
 * left work pending or a timer is due; else the time to the next timer
 * (capped at 60 s) or max_wait_ms, whichever is sooner; -1 for "until an
 * event" when there is no timer and max_wait_ms is -1. A deadline
 * (hp_loop_set_deadline) can end the wait sooner, in ns, and is not
 * counted here. Like libuv's uv_backend_timeout: for embedding the loop
 * in another one, and for tests that check a wait without timing it. */
HP_EXPORT int hp_loop_timeout(const hp_loop_t *loop, int max_wait_ms);

/* Runs one iteration: waits at most `max_wait_ms` (-1: until an event or
 * the next timer), fires due timers, dispatches events, runs the hook.
 * Returns the number of events dispatched or -errno. */
HP_EXPORT int hp_loop_run_once(hp_loop_t *loop, int max_wait_ms);

/* Runs iterations until hp_loop_stop. Returns 0 or -errno. */
HP_EXPORT int hp_loop_run(hp_loop_t *loop);

/* Makes hp_loop_run return after the current iteration. */
HP_EXPORT void hp_loop_stop(hp_loop_t *loop);

/* The cached monotonic time of this iteration, in ms. */
HP_EXPORT uint64_t hp_loop_now(const hp_loop_t *loop);

/* Arms (or re-arms) `t` to fire `timeout_ms` from this iteration's time;
 * `t` is borrowed and must stay in place until it fires or is cancelled.
 * A timeout of 0 fires at the next iteration. */
HP_EXPORT void hp_loop_timer_arm(hp_loop_t *loop, hp_timer_t *t, uint64_t timeout_ms);

/* Disarms `t`; no-op when it is not armed. */
HP_EXPORT void hp_loop_timer_cancel(hp_loop_t *loop, hp_timer_t *t);

#endif
