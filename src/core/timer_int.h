/*
 * timer_int.h - the loop's hashed timer wheel: O(1) arm and cancel.
 *
 * Timers are intrusive: the owner embeds an hp_timer_t (32 bytes) in its own
 * struct (a connection, say) and gets back to it in the callback with
 * HP_CONTAINER_OF. The wheel allocates nothing and is not thread-safe; it
 * belongs to one loop.
 *
 * Sizing: 4096 slots of 1 ms, one rotation = 4.096 s, 32 KiB of slot heads
 * plus a 512-byte bitmap per worker.
 *   - 1 ms ticks match the loop's cached millisecond clock, so a timer
 *     fires in the first advance at or after its deadline, never later.
 *   - 4 s per rotation covers the short timeouts (header, body, write) in
 *     one pass, and a 60 s keep-alive timer is looked at only ~15 times
 *     before it fires; 1024 slots would quadruple those visits and the
 *     wake-ups they cause, 16384 would quadruple the memory for little.
 *   - 4096 slots = 64 bitmap words = exactly one 64-bit summary word, so
 *     finding the next non-empty slot is two ctz instructions.
 */
#ifndef HOTPATH_TIMER_INT_H
#define HOTPATH_TIMER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hotpath/timer.h"

#define HP_TIMER_WHEEL_SLOTS 4096 /* power of two, 64 * 64 at most */

typedef struct hp_timer_wheel {
    uint64_t now_ms;     /* time of the last advance (or of init) */
    size_t count;        /* armed timers */
    uint64_t summary;    /* bit i: bits[i] != 0 */
    bool due_now;        /* armed with expiry <= now_ms since the last
                            advance (may be stale after a cancel) */
    bool advancing;      /* inside hp_timer_wheel_advance */
    hp_timer_t *walk;    /* advance: circle of the slot being expired */
    hp_timer_t *last;    /* advance: circle of now's slot, expired last */
    uint64_t bits[HP_TIMER_WHEEL_SLOTS / 64]; /* bit s: slots[s] != NULL */
    hp_timer_t *slots[HP_TIMER_WHEEL_SLOTS];  /* any timer of each circle */
} hp_timer_wheel_t;

/* Empties the wheel and sets its clock to now_ms. */
void hp_timer_wheel_init(hp_timer_wheel_t *w, uint64_t now_ms);

/* Arms t to fire at w->now_ms + timeout_ms (saturating). An armed timer is
 * moved. t is borrowed: it must stay in place until it fires or is
 * cancelled. A timeout of 0 fires at the next advance. O(1). */
void hp_timer_arm(hp_timer_wheel_t *w, hp_timer_t *t, uint64_t timeout_ms);

/* Disarms t; no-op when it is not armed. O(1). */
void hp_timer_cancel(hp_timer_wheel_t *w, hp_timer_t *t);

/* Sets the wheel's clock to now_ms (a smaller value than the current one
 * is treated as no time passing) and fires, in no particular order, every
 * armed timer whose expire_ms <= now_ms. Each is unarmed before its
 * callback runs. Exactly the timers due when it is called fire: one that a
 * callback arms with timeout 0 fires at the next advance, so a timer that
 * re-arms itself with 0 cannot loop.
 * Returns the number of callbacks run. Cost: the non-empty slots between
 * the previous and the new time (at most one rotation) plus the timers
 * they hold. A callback must not call it. */
size_t hp_timer_wheel_advance(hp_timer_wheel_t *w, uint64_t now_ms);

/* Milliseconds from now_ms to the earliest slot holding a timer: 0 when a
 * timer is due, -1 when the wheel is empty. Never later than the earliest
 * deadline; earlier when the nearest occupied slot holds only timers of a
 * later rotation (then at most one rotation away). O(1). */
int64_t hp_timer_wheel_next_ms(const hp_timer_wheel_t *w);

/* Armed timers. */
size_t hp_timer_wheel_count(const hp_timer_wheel_t *w);

/* Checks every invariant: circular links consistent, each timer in the
 * slot its expiry maps to, bitmap and summary match the slots, count
 * matches. Returns 0 or -EINVAL. O(slots + timers): tests only. */
int hp_timer_wheel_validate(const hp_timer_wheel_t *w);

#endif
