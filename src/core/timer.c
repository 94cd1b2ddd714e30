/*
 * timer.c - hashed timer wheel with a two-level occupancy bitmap.
 *
 * Data structure: HP_TIMER_WHEEL_SLOTS slots of 1 ms; a timer with deadline
 * E lives in slot E mod SLOTS whatever its distance, in a circular doubly
 * linked list of timers (no sentinel: the slot holds a pointer to any
 * member, or NULL). Timers more than one rotation out are skipped by
 * comparing expire_ms when their slot is visited. bits[] has one bit per
 * non-empty slot and `summary` one bit per non-zero word of bits[], so the
 * next occupied slot is found with two ctz.
 *
 * Invariants: every armed timer is in slot expire_ms mod SLOTS (or, during
 * advance, in one of the two circles it has detached: `walk`, the slot
 * being expired, and `last`, now's slot, taken out first);
 * bit s set <=> slots[s] != NULL; summary bit i <=> bits[i] != 0; count ==
 * number of armed timers; every armed timer has expire_ms >= the now_ms of
 * the previous advance, so a walk from that time to the new one (one
 * rotation at most) passes every slot that can hold a due timer.
 */
#include "timer_int.h"

#include <assert.h>
#include <errno.h>

#include "hotpath/common.h"

#define SLOTS HP_TIMER_WHEEL_SLOTS
#define MASK ((uint64_t)SLOTS - 1)
#define WORDS (SLOTS / 64)

_Static_assert((SLOTS & (SLOTS - 1)) == 0 && SLOTS >= 64 && SLOTS <= 4096,
               "slot count must be a power of two in 64..4096");
_Static_assert(sizeof(hp_timer_t) == 32, "hp_timer_t must stay 32 bytes");

static inline size_t slot_of(uint64_t expire_ms)
{
    return (size_t)(expire_ms & MASK);
}

static inline void bit_set(hp_timer_wheel_t *w, size_t s)
{
    w->bits[s >> 6] |= 1ULL << (s & 63);
    w->summary |= 1ULL << (s >> 6);
}

static inline void bit_clear(hp_timer_wheel_t *w, size_t s)
{
    w->bits[s >> 6] &= ~(1ULL << (s & 63));
    if (w->bits[s >> 6] == 0)
        w->summary &= ~(1ULL << (s >> 6));
}

/* The first occupied slot at or after `from`, circularly; -1 if none. */
static long next_occupied(const hp_timer_wheel_t *w, size_t from)
{
    size_t wi = from >> 6;
    uint64_t m = w->bits[wi] & (~0ULL << (from & 63));
    if (m)
        return (long)((wi << 6) | (size_t)__builtin_ctzll(m));
    /* Words after wi, then (wrapping) words 0..wi: the bits of word wi
     * at or above `from` are zero here, so a hit in word wi is below it. */
    uint64_t later = wi + 1 < 64 ? w->summary & (~0ULL << (wi + 1)) : 0;
    uint64_t s = later ? later : w->summary;
    if (!s)
        return -1;
    size_t wj = (size_t)__builtin_ctzll(s);
    return (long)((wj << 6) | (size_t)__builtin_ctzll(w->bits[wj]));
}

void hp_timer_wheel_init(hp_timer_wheel_t *w, uint64_t now_ms)
{
    *w = (hp_timer_wheel_t){.now_ms = now_ms};
}

void hp_timer_init(hp_timer_t *t, hp_timer_cb cb)
{
    *t = (hp_timer_t){.cb = cb};
}

/* Appends t to the circle *head (which may be empty). */
static inline void circle_add(hp_timer_t **head, hp_timer_t *t)
{
    hp_timer_t *h = *head;
    if (!h) {
        t->next = t->prev = t;
        *head = t;
    } else {
        t->next = h;
        t->prev = h->prev;
        h->prev->next = t;
        h->prev = t;
    }
}

/* Takes an armed t out of its circle, wherever that is: its slot, or the
 * list advance has detached. Only the head pointer that names t needs
 * fixing, and the two lists are disjoint, so at most one of them does. */
static inline void unlink_timer(hp_timer_wheel_t *w, hp_timer_t *t)
{
    hp_timer_t *nx = t->next;
    bool alone = nx == t;
    if (!alone) {
        nx->prev = t->prev;
        t->prev->next = nx;
    }
    size_t s = slot_of(t->expire_ms);
    if (w->slots[s] == t) {
        w->slots[s] = alone ? NULL : nx;
        if (alone)
            bit_clear(w, s);
    } else if (w->walk == t) {
        w->walk = alone ? NULL : nx;
    } else if (w->last == t) {
        w->last = alone ? NULL : nx;
    }
    t->next = t->prev = NULL;
}

void hp_timer_arm(hp_timer_wheel_t *w, hp_timer_t *t, uint64_t timeout_ms)
{
    if (hp_timer_armed(t))
        unlink_timer(w, t);
    else
        w->count++;
    uint64_t e = w->now_ms + timeout_ms;
    if (e < w->now_ms)
        e = UINT64_MAX; /* saturate: "never" */
    t->expire_ms = e;
    size_t s = slot_of(e);
    if (!w->slots[s])
        bit_set(w, s);
    circle_add(&w->slots[s], t);
    /* Its slot has already been passed by the last advance: next_ms must
     * say 0 until the next advance picks it up. */
    if (e <= w->now_ms)
        w->due_now = true;
}

void hp_timer_cancel(hp_timer_wheel_t *w, hp_timer_t *t)
{
    if (!hp_timer_armed(t))
        return;
    unlink_timer(w, t);
    w->count--;
}

/* Expires the circle in w->walk, all of whose timers belong to slot s:
 * fires the due ones and puts the rest (later rotations) back into s.
 * Timers that callbacks arm into slot s go to w->slots[s], not to the
 * detached circle, so they are not seen again in this pass. */
static size_t expire_walk(hp_timer_wheel_t *w, size_t s, uint64_t now)
{
    size_t fired = 0;
    while (w->walk) {
        hp_timer_t *t = w->walk;
        unlink_timer(w, t); /* advances w->walk */
        if (t->expire_ms <= now) {
            w->count--;
            fired++;
            t->cb(t); /* may arm/cancel anything, t included */
        } else {
            if (!w->slots[s])
                bit_set(w, s);
            circle_add(&w->slots[s], t);
        }
    }
    return fired;
}

/* Moves slot s's circle to *list, leaving the slot empty. */
static void detach(hp_timer_wheel_t *w, size_t s, hp_timer_t **list)
{
    *list = w->slots[s];
    if (*list) {
        w->slots[s] = NULL;
        bit_clear(w, s);
    }
}

size_t hp_timer_wheel_advance(hp_timer_wheel_t *w, uint64_t now_ms)
{
    assert(!w->advancing);
    uint64_t from = w->now_ms;
    if (now_ms < from)
        now_ms = from; /* a clock step backwards: no time passes */
    w->now_ms = now_ms;
    w->due_now = false;
    if (w->count == 0)
        return 0;
    w->advancing = true;
    /* Visit the ticks from..now inclusive. `from` is visited again because
     * timers armed with timeout 0 after the last advance sit in its slot.
     * After a gap of a rotation or more every slot is visited once, which
     * is enough since each visit checks every timer in the slot. */
    uint64_t span = now_ms - from >= SLOTS ? SLOTS : now_ms - from + 1;
    uint64_t start = now_ms - (span - 1);
    /* Callbacks that arm with timeout 0 put timers into now's slot. Taking
     * that slot's timers out before any callback runs means this advance
     * fires exactly the timers due when it was called: a timer re-armed
     * with timeout 0 waits for the next advance instead of looping. */
    size_t last = slot_of(now_ms);
    detach(w, last, &w->last);
    size_t fired = 0;
    uint64_t off = 0;
    while (off < span - 1) {
        size_t pos = slot_of(start + off);
        long s = next_occupied(w, pos);
        if (s < 0)
            break;
        uint64_t d = ((uint64_t)s - pos) & MASK;
        if (d >= span - 1 - off)
            break;
        off += d;
        detach(w, (size_t)s, &w->walk);
        fired += expire_walk(w, (size_t)s, now_ms);
        off++;
    }
    w->walk = w->last;
    w->last = NULL;
    fired += expire_walk(w, last, now_ms);
    w->advancing = false;
    return fired;
}

int64_t hp_timer_wheel_next_ms(const hp_timer_wheel_t *w)
{
    if (w->count == 0)
        return -1;
    /* A timer due now can only be in the current slot (arm never sets a
     * deadline before now_ms). The flag is not cleared by cancel, so
     * confirm it by looking at that slot: it is rare and the slot short. */
    size_t cur = slot_of(w->now_ms);
    if (w->due_now && w->slots[cur]) {
        const hp_timer_t *t = w->slots[cur];
        do {
            if (t->expire_ms <= w->now_ms)
                return 0;
            t = t->next;
        } while (t != w->slots[cur]);
    }
    /* Anything else in the current slot is a rotation away, so start
     * looking at the next slot. */
    long s = next_occupied(w, (cur + 1) & MASK);
    assert(s >= 0);
    uint64_t d = ((uint64_t)s - cur) & MASK;
    return d ? (int64_t)d : SLOTS;
}

size_t hp_timer_wheel_count(const hp_timer_wheel_t *w)
{
    return w->count;
}

/* Checks one circle whose members must all map to slot s; adds its length
 * to *n. */
static int check_circle(const hp_timer_t *head, size_t s, size_t limit,
                        size_t *n)
{
    const hp_timer_t *t = head;
    do {
        if (++*n > limit || !t->next || !t->prev || t->next->prev != t ||
            t->prev->next != t || slot_of(t->expire_ms) != s || !t->cb)
            return -EINVAL;
        t = t->next;
    } while (t != head);
    return 0;
}

int hp_timer_wheel_validate(const hp_timer_wheel_t *w)
{
    size_t n = 0;
    for (size_t s = 0; s < SLOTS; s++) {
        bool bit = (w->bits[s >> 6] >> (s & 63)) & 1;
        if (bit != (w->slots[s] != NULL))
            return -EINVAL;
        if (w->slots[s] && check_circle(w->slots[s], s, w->count, &n))
            return -EINVAL;
    }
    for (size_t i = 0; i < WORDS; i++)
        if (((w->summary >> i) & 1) != (w->bits[i] != 0))
            return -EINVAL;
    if (WORDS < 64 && (w->summary >> (WORDS % 64)) != 0)
        return -EINVAL;
    /* The circles advance has detached: one slot each. */
    const hp_timer_t *held[2] = {w->walk, w->last};
    for (int i = 0; i < 2; i++) {
        if (held[i] && (!w->advancing ||
                        check_circle(held[i], slot_of(held[i]->expire_ms),
                                     w->count, &n)))
            return -EINVAL;
    }
    if (n != w->count)
        return -EINVAL;
    return 0;
}
