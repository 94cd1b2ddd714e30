/*
 * rate_int.h - a constant-rate schedule spread evenly over connections.
 *
 * Request number j of the whole run is due at start + j / rate seconds,
 * and belongs to connection j mod nconns. So connection i sends its k-th
 * request at start + (k * nconns + i) / rate: every connection runs at
 * rate / nconns, their sends interleave evenly, and the intended times do
 * not depend on when anything actually happened — which is what lets a
 * load generator measure latency from the intended time (correcting for
 * coordinated omission).
 */
#ifndef HOTPATH_RATE_INT_H
#define HOTPATH_RATE_INT_H

#include <stdint.h>


typedef struct hp_rate {
    uint64_t start_ns;   /* time of request 0 */
    double period_ns;    /* 1e9 / rate: time between two requests of the run */
    uint32_t nconns;
} hp_rate_t;

/* Sets up a schedule of `rate` requests per second in total (> 0) over
 * `nconns` connections (>= 1), starting at start_ns. Returns 0 or -EINVAL. */
int hp_rate_init(hp_rate_t *r, double rate, uint32_t nconns, uint64_t start_ns);

/* When connection `conn`'s request number `k` (0-based) is due. */
uint64_t hp_rate_due(const hp_rate_t *r, uint32_t conn, uint64_t k);

/* How many of connection `conn`'s requests are due at `now_ns` (those
 * numbered 0 .. n-1). */
uint64_t hp_rate_due_count(const hp_rate_t *r, uint32_t conn, uint64_t now_ns);

#endif
