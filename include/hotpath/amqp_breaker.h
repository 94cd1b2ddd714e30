/*
 * amqp_breaker.h - a circuit breaker for publishing (amqp.h): stop
 * sending to a broker that keeps failing, answer at once instead of
 * waiting for timeouts, and try again now and then.
 *
 *   CLOSED     publishes go through. `failures` failures within
 *              `window_ms` open it.
 *   OPEN       nothing goes through (hp_amqp_breaker_allow says false,
 *              hp_amqp_breaker_retry_after_ms says for how long) until
 *              the open time has passed; then the next allow turns it
 *   HALF_OPEN  and lets `probes` publishes through. The first of their
 *              outcomes decides: a success closes it (the window starts
 *              empty), a failure opens it again for twice as long as the
 *              last time, at most `open_max_ms`.
 *
 *     hp_amqp_breaker_t b;
 *     hp_amqp_breaker_init(&b, &cfg);
 *     if (!hp_amqp_breaker_allow(&b, now_ms))
 *         -> refuse: retry after hp_amqp_breaker_retry_after_ms(&b, now_ms)
 *     hp_amqp_publish(ch, &msg, on_confirm, arg, &seq) ...
 *     -> on_confirm: hp_amqp_breaker_record(&b, now_ms, status == HP_AMQP_ACKED);
 *
 * What is a failure is the caller's call; what hotpath's publishing route
 * counts (docs/amqp.md, "Circuit breaker") is what tells about the
 * broker's health rather than about one message: a nack, no confirm
 * within the timeout, the channel or connection closing before the
 * broker answered. An ack is a success, a returned (unroutable) message
 * included: the broker answered. A refusal of one message (a 404 for an
 * exchange that does not exist) or a publish that never reached the
 * broker (-EMSGSIZE, -EINVAL) is neither: hp_amqp_breaker_release gives
 * back what allow let through, so that a half-open breaker is not left
 * waiting for a probe that will never be answered.
 *
 * The window is kept in HP_AMQP_BREAKER_BUCKETS buckets of window_ms /
 * HP_AMQP_BREAKER_BUCKETS (rounded up) each: a failure leaves the count
 * between window_ms minus one bucket and window_ms after it happened.
 * Successes do not reset it: N failures within the window open the
 * circuit whatever succeeded between them.
 *
 * Time is the caller's: milliseconds of a monotonic clock
 * (hp_loop_clock_ms). A time earlier than one seen before is taken as
 * that one: a clock that steps back never reopens or extends anything.
 * Results recorded while OPEN (of publishes let through before it
 * opened) change nothing.
 *
 * Threads: a breaker is plain memory, used by one thread at a time (in
 * hotpath, one per worker). Nothing here allocates, blocks or calls back.
 */
#ifndef HOTPATH_AMQP_BREAKER_H
#define HOTPATH_AMQP_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

#include "hotpath/common.h"

enum {
    HP_AMQP_BREAKER_CLOSED = 0,
    HP_AMQP_BREAKER_OPEN = 1,
    HP_AMQP_BREAKER_HALF_OPEN = 2,
};

/* Buckets of the failure window. */
#define HP_AMQP_BREAKER_BUCKETS 16

typedef struct hp_amqp_breaker_config {
    uint32_t failures;           /* failures within window_ms that open it (>= 1) */
    uint64_t window_ms;          /* >= 1 */
    uint64_t open_ms;            /* how long it stays open the first time (>= 1) */
    uint64_t open_max_ms;        /* each failed probe doubles the open time, up to
                                    this (>= open_ms; 0: open_ms, no growth) */
    uint32_t probes;             /* publishes let through half-open (0: 1) */
} hp_amqp_breaker_config_t;

#define HP_AMQP_BREAKER_CONFIG_DEFAULT                                         \
    ((hp_amqp_breaker_config_t){.failures = 5,                                 \
                                .window_ms = 10000,                            \
                                .open_ms = 5000,                               \
                                .open_max_ms = 60000,                          \
                                .probes = 1})

/* The fields are the breaker's: read them through the functions below. */
typedef struct hp_amqp_breaker {
    hp_amqp_breaker_config_t cfg;
    uint8_t state;               /* HP_AMQP_BREAKER_* */
    uint32_t probes_out;         /* HALF_OPEN: let through, not yet answered */
    uint64_t now_ms;             /* the latest time seen */
    uint64_t opened_ms;          /* when it last opened */
    uint64_t open_for_ms;        /* how long it stays open this time */
    uint64_t opened;             /* times it opened */
    /* The window: counts[i % BUCKETS] holds the failures of the bucket
     * that starts at i * bucket_ms, for i in (head - BUCKETS, head]. */
    uint64_t bucket_ms;
    uint64_t head;
    uint32_t in_window;          /* the sum of counts */
    uint32_t counts[HP_AMQP_BREAKER_BUCKETS];
} hp_amqp_breaker_t;

/* Prepares a CLOSED breaker with an empty window; cfg is copied. Returns
 * 0, or -EINVAL (and *b is left zeroed) when failures, window_ms or
 * open_ms is 0 or open_max_ms is below open_ms (and not 0). */
HP_EXPORT int hp_amqp_breaker_init(hp_amqp_breaker_t *b, const hp_amqp_breaker_config_t *cfg);

/* Whether a publish may go now. CLOSED: true. OPEN: false until its open
 * time has passed, then it turns HALF_OPEN and answers as that. HALF_OPEN:
 * true for as many calls as there are probes, each counted as one out
 * until its outcome is recorded or released; false after that. */
HP_EXPORT bool hp_amqp_breaker_allow(hp_amqp_breaker_t *b, uint64_t now_ms);

/* The outcome of a publish allow let through: ok true for a success.
 * CLOSED: a failure is counted in the window, and opens the circuit when
 * the window holds `failures`. HALF_OPEN: a success closes it, a failure
 * opens it again (for twice the last open time, at most open_max_ms).
 * OPEN: nothing. */
HP_EXPORT void hp_amqp_breaker_record(hp_amqp_breaker_t *b, uint64_t now_ms, bool ok);

/* A publish allow let through ended saying nothing of the broker's
 * health (it was never sent, or the broker refused that one message):
 * HALF_OPEN gets its probe back; otherwise nothing. */
HP_EXPORT void hp_amqp_breaker_release(hp_amqp_breaker_t *b);

/* HP_AMQP_BREAKER_*, as the last call left it (an OPEN breaker whose time
 * has passed says OPEN until the next allow). */
HP_EXPORT int hp_amqp_breaker_state(const hp_amqp_breaker_t *b);

/* How long until allow may say yes: 0 when it would now; OPEN: what is
 * left of its open time (at least 1); HALF_OPEN with every probe out: the
 * current open time, as a hint (the probes' outcomes decide, and no clock
 * says when they come). */
HP_EXPORT uint64_t hp_amqp_breaker_retry_after_ms(const hp_amqp_breaker_t *b, uint64_t now_ms);

/* How many times it opened since init (from CLOSED or HALF_OPEN). */
HP_EXPORT uint64_t hp_amqp_breaker_opened(const hp_amqp_breaker_t *b);

/* Checks the invariants (the window's sum, the state and its fields).
 * Returns 0 or -EINVAL. For tests. */
HP_EXPORT int hp_amqp_breaker_validate(const hp_amqp_breaker_t *b);

#endif
