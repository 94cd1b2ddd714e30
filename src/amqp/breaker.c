/*
 * breaker.c - the publishing circuit breaker (amqp_breaker.h): closed,
 * open after `failures` failures within a window, half-open after the
 * open time, closed again by a successful probe.
 *
 * Central structure: hp_amqp_breaker_t, its state and the failure window,
 * a ring of HP_AMQP_BREAKER_BUCKETS counts, each of bucket_ms of time;
 * `head` is the number (time / bucket_ms) of the newest bucket.
 *
 * Invariants (hp_amqp_breaker_validate):
 *  - in_window is the sum of the counts, and a count is of a failure in
 *    one of the buckets head - BUCKETS + 1 .. head;
 *  - only HALF_OPEN has probes out, never more than cfg.probes;
 *  - open_for_ms lies in [open_ms, open_max_ms];
 *  - now_ms never goes back: every call takes the later of its time and
 *    the latest seen.
 */
#include "hotpath/amqp_breaker.h"

#include <errno.h>
#include <string.h>

/* The later of `now_ms` and the latest time seen. */
static uint64_t breaker_clock(hp_amqp_breaker_t *b, uint64_t now_ms)
{
    if (now_ms > b->now_ms)
        b->now_ms = now_ms;
    return b->now_ms;
}

static void window_clear(hp_amqp_breaker_t *b)
{
    memset(b->counts, 0, sizeof b->counts);
    b->in_window = 0;
}

/* Moves the window so that its newest bucket holds `now`: the buckets
 * passed over are emptied (all of them after a long quiet). */
static void window_slide(hp_amqp_breaker_t *b, uint64_t now)
{
    uint64_t i = now / b->bucket_ms;
    if (i <= b->head)
        return;
    if (i - b->head >= HP_AMQP_BREAKER_BUCKETS) {
        window_clear(b);
    } else {
        for (uint64_t k = b->head + 1; k <= i; k++) {
            uint32_t *c = &b->counts[k % HP_AMQP_BREAKER_BUCKETS];
            b->in_window -= *c;
            *c = 0;
        }
    }
    b->head = i;
}

static void breaker_open(hp_amqp_breaker_t *b, uint64_t now, uint64_t open_for)
{
    b->state = HP_AMQP_BREAKER_OPEN;
    b->probes_out = 0;
    b->opened_ms = now;
    b->open_for_ms = open_for;
    b->opened++;
}

int hp_amqp_breaker_init(hp_amqp_breaker_t *b, const hp_amqp_breaker_config_t *cfg)
{
    memset(b, 0, sizeof *b);
    uint64_t open_max = cfg->open_max_ms ? cfg->open_max_ms : cfg->open_ms;
    if (!cfg->failures || !cfg->window_ms || !cfg->open_ms || open_max < cfg->open_ms)
        return -EINVAL;
    b->cfg = *cfg;
    b->cfg.open_max_ms = open_max;
    if (!b->cfg.probes)
        b->cfg.probes = 1;
    b->state = HP_AMQP_BREAKER_CLOSED;
    b->open_for_ms = cfg->open_ms;
    /* Rounded up: the buckets cover at least the window. */
    b->bucket_ms = (cfg->window_ms + HP_AMQP_BREAKER_BUCKETS - 1) / HP_AMQP_BREAKER_BUCKETS;
    return 0;
}

bool hp_amqp_breaker_allow(hp_amqp_breaker_t *b, uint64_t now_ms)
{
    uint64_t now = breaker_clock(b, now_ms);
    switch (b->state) {
    case HP_AMQP_BREAKER_CLOSED:
        return true;
    case HP_AMQP_BREAKER_OPEN:
        /* A difference, not a sum: no overflow near the clock's end. */
        if (now - b->opened_ms < b->open_for_ms)
            return false;
        b->state = HP_AMQP_BREAKER_HALF_OPEN;
        b->probes_out = 0;
        break;
    default:
        break;
    }
    if (b->probes_out >= b->cfg.probes)
        return false;
    b->probes_out++;
    return true;
}

void hp_amqp_breaker_record(hp_amqp_breaker_t *b, uint64_t now_ms, bool ok)
{
    uint64_t now = breaker_clock(b, now_ms);
    switch (b->state) {
    case HP_AMQP_BREAKER_CLOSED:
        if (ok)
            return;
        window_slide(b, now);
        b->counts[b->head % HP_AMQP_BREAKER_BUCKETS]++;
        if (++b->in_window >= b->cfg.failures) {
            /* It opens with an empty window: the failures that opened it
             * are spent, and a closed circuit starts afresh. */
            window_clear(b);
            breaker_open(b, now, b->cfg.open_ms);
        }
        return;
    case HP_AMQP_BREAKER_HALF_OPEN:
        if (ok) {
            b->state = HP_AMQP_BREAKER_CLOSED;
            b->probes_out = 0;
            b->open_for_ms = b->cfg.open_ms;
            window_clear(b);
            return;
        }
        /* The broker still fails: longer this time. */
        breaker_open(b, now,
                     b->open_for_ms > b->cfg.open_max_ms / 2 ? b->cfg.open_max_ms
                                                             : b->open_for_ms * 2);
        return;
    default:
        return; /* OPEN: a result of a publish from before it opened */
    }
}

void hp_amqp_breaker_release(hp_amqp_breaker_t *b)
{
    if (b->state == HP_AMQP_BREAKER_HALF_OPEN && b->probes_out)
        b->probes_out--;
}

int hp_amqp_breaker_state(const hp_amqp_breaker_t *b)
{
    return b->state;
}

uint64_t hp_amqp_breaker_retry_after_ms(const hp_amqp_breaker_t *b, uint64_t now_ms)
{
    uint64_t now = now_ms > b->now_ms ? now_ms : b->now_ms;
    switch (b->state) {
    case HP_AMQP_BREAKER_OPEN: {
        uint64_t gone = now - b->opened_ms;
        return gone < b->open_for_ms ? b->open_for_ms - gone : 0;
    }
    case HP_AMQP_BREAKER_HALF_OPEN:
        return b->probes_out < b->cfg.probes ? 0 : b->open_for_ms;
    default:
        return 0;
    }
}

uint64_t hp_amqp_breaker_opened(const hp_amqp_breaker_t *b)
{
    return b->opened;
}

int hp_amqp_breaker_validate(const hp_amqp_breaker_t *b)
{
    uint64_t sum = 0;
    for (int i = 0; i < HP_AMQP_BREAKER_BUCKETS; i++)
        sum += b->counts[i];
    if (sum != b->in_window || b->in_window >= b->cfg.failures)
        return -EINVAL;
    if (b->state > HP_AMQP_BREAKER_HALF_OPEN || b->probes_out > b->cfg.probes ||
        (b->state != HP_AMQP_BREAKER_HALF_OPEN && b->probes_out))
        return -EINVAL;
    if (b->open_for_ms < b->cfg.open_ms || b->open_for_ms > b->cfg.open_max_ms ||
        b->bucket_ms * HP_AMQP_BREAKER_BUCKETS < b->cfg.window_ms)
        return -EINVAL;
    if (b->state != HP_AMQP_BREAKER_CLOSED && b->opened_ms > b->now_ms)
        return -EINVAL;
    return 0;
}
