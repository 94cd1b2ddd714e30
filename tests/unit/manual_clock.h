/*
 * manual_clock.h - a clock that moves only when the test moves it, for
 * hp_loop_set_clock. With it, a test of a timeout arms the timer, advances
 * the clock past the deadline and runs one iteration without waiting: the
 * timer fires on that iteration or the test fails, however slow the
 * machine. Nothing waits on the wall clock and nothing can be "too late".
 *
 * Usage:
 *     mclock_t mc;
 *     mclock_init(&mc);
 *     hp_loop_set_clock(&loop, &mc.src);
 *     ...
 *     mclock_advance_ms(&mc, 30);
 *     hp_loop_run_once(&loop, 0);
 *
 * It starts well above zero so that no deadline computed from it is 0,
 * which the loop reads as "no deadline". Reads and advances are atomic,
 * so a worker on another thread (hp_app_set_clock) may read it while the
 * test advances it; that worker sees the new time when it next wakes,
 * which is at the latest when its next timer was due in real time.
 */
#ifndef HP_TEST_MANUAL_CLOCK_H
#define HP_TEST_MANUAL_CLOCK_H

#include <stdint.h>

#include "hotpath/clock.h"

#define MCLOCK_START_NS (1000ull * 1000000000ull) /* 1000 s */

typedef struct mclock {
    hp_clock_src_t src; /* what hp_loop_set_clock takes */
    uint64_t ns;        /* the time it reads */
} mclock_t;

static inline uint64_t mclock_read(void *arg)
{
    return __atomic_load_n(&((const mclock_t *)arg)->ns, __ATOMIC_ACQUIRE);
}

static inline __attribute__((unused)) void mclock_init(mclock_t *m)
{
    m->ns = MCLOCK_START_NS;
    m->src = (hp_clock_src_t){.now_ns = mclock_read, .arg = m};
}

static inline __attribute__((unused)) void mclock_advance_ns(mclock_t *m, uint64_t ns)
{
    __atomic_fetch_add(&m->ns, ns, __ATOMIC_RELEASE);
}

static inline __attribute__((unused)) void mclock_advance_ms(mclock_t *m, uint64_t ms)
{
    mclock_advance_ns(m, ms * 1000000u);
}

#endif
