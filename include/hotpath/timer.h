/*
 * timer.h - a timer: an intrusive struct its owner embeds, armed on a
 * loop (hp_loop_timer_arm) or, inside the library, on a worker's wheel.
 *
 * The owner embeds an hp_timer_t (32 bytes) in its own struct (a
 * connection, say) and gets back to it in the callback with
 * HP_CONTAINER_OF. Timers are not thread-safe: a timer belongs to the loop
 * it is armed on and is armed, cancelled and fired on that loop's thread.
 */
#ifndef HOTPATH_TIMER_H
#define HOTPATH_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hotpath/common.h"

typedef struct hp_timer hp_timer_t;

/* Called once when the timer expires, after it has been unarmed, so it may
 * re-arm itself. It may arm or cancel any timer of the same loop. */
typedef void (*hp_timer_cb)(hp_timer_t *t);

/* Intrusive timer. While armed, next/prev link it into a circular list of
 * the timers sharing its slot; next == NULL when not armed. Fields are
 * private except expire_ms, which may be read while armed. */
struct hp_timer {
    hp_timer_t *next, *prev;
    uint64_t expire_ms; /* absolute deadline, same clock as now_ms */
    hp_timer_cb cb;
};

/* Prepares an unarmed timer that will call cb (borrowed function). */
HP_EXPORT void hp_timer_init(hp_timer_t *t, hp_timer_cb cb);

/* Whether t is armed. */
static inline bool hp_timer_armed(const hp_timer_t *t)
{
    return t->next != NULL;
}

#endif
