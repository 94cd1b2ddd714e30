/*
 * bench.h - the load itself: client threads on the hotpath engine.
 *
 * Each thread is an hp_worker without a listener, pinned to its CPU, that
 * opens its share of the connections and keeps requests flowing on them
 * (closed loop or on a constant-rate schedule), validating every response
 * with the library's response parser and recording per-request latency
 * in its own histograms. The main thread starts, watches and stops them.
 */
#ifndef HPBENCH_BENCH_H
#define HPBENCH_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "hpbench.h"
#include "metrics/rate_int.h"

/* What every thread shares, read-only once the run starts. */
typedef struct hb_plan {
    const hb_options_t *opt;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char *reqs;            /* owned: `depth` copies of the request, back to back */
    uint32_t req_len;      /* bytes of one request */
    uint32_t depth;        /* requests kept in flight per connection */
    bool head_request;     /* the method is HEAD: responses carry no body */
    bool rate_mode;
    hp_rate_t rate;        /* -R: the schedule, shared by all threads */
    uint64_t record_from_ns; /* end of warm-up: responses before it are not
                                counted; 0 without a warm-up (count all) */
    uint64_t record_until_ns; /* end of the run: responses after it, on their
                                 way in before the threads stop, do not count */
    uint64_t timeout_ns;
} hb_plan_t;

typedef struct hb_threads hb_threads_t;

/* Builds the request bytes for `opt` (method, path, Host, -H headers,
 * --body). Returns 0 or a one-line error in err (-errno). */
int hb_plan_init(hb_plan_t *plan, const hb_options_t *opt, char *err, size_t errlen);
void hb_plan_destroy(hb_plan_t *plan);

/* Creates and starts opt->threads threads sharing opt->connections.
 * Returns NULL with errno set on failure. */
hb_threads_t *hb_threads_start(const hb_plan_t *plan);

/* Live figures summed over the threads, for the progress line and the
 * samples: complete responses, errors, responses with a 2xx/3xx status.
 * Racy by design (relaxed reads of counters another thread writes); exact
 * once the threads stopped. */
void hb_threads_peek(hb_threads_t *ts, uint64_t *requests, uint64_t *errors, uint64_t *ok,
                     uint64_t *p99_ns);

/* Stops the threads, waits for them and merges their figures into r
 * (whose histograms must be initialised). */
void hb_threads_stop(hb_threads_t *ts, hb_results_t *r);

/* Frees everything. */
void hb_threads_destroy(hb_threads_t *ts);

#endif
