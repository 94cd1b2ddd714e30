/*
 * bench.h - the load itself: client threads on the hotpath engine.
 *
 * Each thread is an hp_worker without a listener, pinned to its CPU, that
 * opens its share of the connections and keeps requests flowing on them
 * (closed loop or on a constant-rate schedule), validating every response
 * with the library's response parser and recording per-request latency
 * in its own histograms. The main thread starts, watches and stops them.
 *
 * The amqp:// load (amqp.c, second half of this file) runs on the same
 * kind of threads: producers and consumers are channels of the AMQP
 * client, and the main thread walks the run through its phases.
 */
#ifndef HPBENCH_BENCH_H
#define HPBENCH_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "hotpath/amqp.h"
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

/* ---------------------------------------------------------------------- */
/* The amqp:// load (amqp.c)                                                */

/* The header every body starts with: HB_AMQP_HEADER_LEN bytes, big endian,
 * in this order. Consumers read the send times back to measure end-to-end
 * latency (producers and consumers share the process, hence the clock). */
typedef struct hb_amqp_header {
    uint32_t run;            /* this run's id: a body without it is "foreign" */
    uint32_t producer;       /* the producer's number in the run */
    uint64_t seq;            /* the producer's message number, from 0 */
    uint64_t intended_ns;    /* due time on the -R schedule, else = sent_ns */
    uint64_t sent_ns;        /* handed to hp_amqp_publish (CLOCK_MONOTONIC) */
} hb_amqp_header_t;

/* Writes h into p[0, HB_AMQP_HEADER_LEN). */
void hb_amqp_header_encode(void *p, const hb_amqp_header_t *h);
/* Reads it back from a body of `len` bytes: 0, or -EINVAL when shorter. */
int hb_amqp_header_decode(const void *p, size_t len, hb_amqp_header_t *h);

/* What the AMQP threads share. Read-only once the threads start, but for
 * the two times the main thread moves (atomically). */
typedef struct hb_aplan {
    const hb_options_t *opt;
    hp_amqp_config_t cfg;    /* from the URL; host numeric (resolved here) */
    char cfgbuf[1024];       /* cfg's strings */
    char host[64];
    char url[1024];          /* the URL to show: password masked */
    uint32_t run;            /* random: marks this run's bodies */
    char (*qnames)[64];      /* owned: the queues, "hpbench-PID-RUN-I" */
    unsigned qflags;         /* declare flags */
    hp_amqp_bytes_t qargs;   /* declare arguments (x-queue-type, x-expires) */
    uint8_t qargs_buf[256];
    hp_amqp_props_t props;   /* delivery_mode 2 with --persistent */
    bool rate_mode;
    hp_rate_t rate;          /* -R: producer i's k-th message is due at rate(i, k) */
    uint64_t record_from_ns; /* atomic: messages due (sent) before it do not count */
    uint64_t stop_ns;        /* atomic: nothing is published from then on */
} hb_aplan_t;

/* Parses the URL into cfg, resolves its host, names the queues. Returns
 * 0, or -errno with one line in err. */
int hb_aplan_init(hb_aplan_t *plan, const hb_options_t *opt, char *err, size_t errlen);
void hb_aplan_destroy(hb_aplan_t *plan);

typedef struct hb_athreads hb_athreads_t;

/* What the main thread sees of the threads (summed; racy until they stop,
 * exact after). */
typedef struct hb_amqp_live {
    uint64_t published, confirmed, nacked, failed, returned;
    uint64_t consumed, redelivered, foreign;
    uint32_t ready;          /* producers and consumers set up */
    uint32_t open;           /* load connections not yet closed */
    bool topology;           /* the queues are declared */
    bool admin_done;         /* the queues are deleted, the admin connection closed */
    bool setup_failed;       /* a setup step failed: the reason is in err */
} hb_amqp_live_t;

/* The run's phases, each started by the main thread and watched with
 * hb_amqp_peek:
 *   hb_amqp_start    the threads; thread 0's admin connection declares
 *                    the queues (live.topology);
 *   hb_amqp_connect  every thread opens its connections, channels
 *                    (confirm.select), consumers (live.ready);
 *   hb_amqp_go       publishing starts (the plan's times are set first);
 *   hb_amqp_finish   consumers acknowledge what they counted, every load
 *                    connection closes gracefully (live.open);
 *   hb_amqp_delete   the admin connection deletes the queues, collecting
 *                    the messages left in them, and closes (admin_done);
 *   hb_amqp_stop     the threads stop; their figures are merged into r.
 * Publishing stops at plan->stop_ns, which the main thread sets.
 * hb_amqp_start returns NULL with errno set when it cannot start them. */
hb_athreads_t *hb_amqp_start(hb_aplan_t *plan);
int hb_amqp_connect(hb_athreads_t *ts);
int hb_amqp_go(hb_athreads_t *ts);
void hb_amqp_finish(hb_athreads_t *ts);
void hb_amqp_delete(hb_athreads_t *ts);
void hb_amqp_stop(hb_athreads_t *ts, hb_amqp_results_t *r);
void hb_amqp_destroy(hb_athreads_t *ts);

/* The live figures; err gets the first setup failure when live->setup_failed. */
void hb_amqp_peek(hb_athreads_t *ts, hb_amqp_live_t *live, char *err, size_t errlen);

/* Merges the threads' latency histograms so far (corrected) into the two
 * given (reset first), for the per-second figures. */
void hb_amqp_peek_hists(hb_athreads_t *ts, hp_hist_t *confirm, hp_hist_t *consumer);

#endif
