/*
 * hpbench.h - what the parts of the hpbench load generator share: the
 * options, the results of a run, and the report writers.
 *
 * main.c parses the command line and runs the threads (bench.c); when the
 * run ends, the per-thread results are merged into one hb_results_t that
 * report.c prints as text, JSON and HTML. All latencies are nanoseconds.
 */
#ifndef HPBENCH_H
#define HPBENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "hotpath/hist.h"

/* Error kinds, counted separately and shown in the summary. */
enum {
    HB_ERR_CONNECT = 0, /* connect failed or was refused */
    HB_ERR_READ,        /* read failed, or the peer closed mid-response */
    HB_ERR_WRITE,       /* write failed */
    HB_ERR_TIMEOUT,     /* no complete response within --timeout */
    HB_ERR_STATUS,      /* a complete response with a status other than 2xx/3xx */
    HB_ERR_PARSE,       /* a malformed response (status line, headers, framing) */
    HB_ERR_COUNT
};

/* Names used in the summary and as JSON keys, indexed by HB_ERR_*. */
extern const char *const hb_err_names[HB_ERR_COUNT];

typedef struct hb_options {
    const char *url;
    char host[256];          /* as given in the URL */
    char port[8];
    char path[2048];         /* path and query, "/" at least */
    int connections;         /* -c, default 10 */
    int threads;             /* -t, default 1 */
    double duration_s;       /* -d, default 10 */
    double warmup_s;         /* --warmup, default 0 */
    double timeout_s;        /* --timeout, default 2 */
    double rate;             /* -R requests per second in total; 0 = closed loop */
    int pipeline;            /* --pipeline, default 1 */
    const char *method;      /* -m, default GET */
    const char *headers[64]; /* -H, repeatable */
    int nheaders;
    const char *body_file;   /* --body */
    bool latency;            /* --latency: print the full distribution */
    const char *json_path;   /* --json */
    const char *html_path;   /* --html */
    double max_errors_pct;   /* --max-errors, default 1; 100 = never fail on errors */
} hb_options_t;

/* One second of the run, for the progress line and the HTML plot. */
typedef struct hb_sample {
    double t;                /* seconds since the measured part began */
    uint64_t requests;       /* completed in this second */
    uint64_t errors;
    uint64_t ok;             /* of `requests`, those with a 2xx/3xx status (not in the JSON) */
    uint64_t p99_ns;         /* of everything so far (corrected in -R mode) */
} hb_sample_t;

typedef struct hb_results {
    const hb_options_t *opt;
    double duration_s;       /* measured wall time (warm-up excluded) */
    uint64_t requests;       /* complete responses (any status) */
    uint64_t bytes_read;
    uint64_t errors[HB_ERR_COUNT];
    uint64_t status_classes[6]; /* [1]..[5]: 1xx..5xx */
    hp_hist_t latency;       /* corrected in -R mode (from intended send time), else as measured */
    hp_hist_t uncorrected;   /* from the actual send time (only meaningful in -R mode) */
    bool rate_mode;
    double client_cpu_s;     /* user + system CPU of the whole process during the measured part */
    double client_user_s, client_sys_s;
    hb_sample_t *samples;    /* one per second */
    int nsamples;
} hb_results_t;

/* Requests per second and bytes per second over the measured part. */
double hb_rps(const hb_results_t *r);

/* The human summary (stdout): like wrk's, plus the error kinds and client
 * CPU per 1,000 requests; with --latency the HdrHistogram percentile
 * distribution (corrected and uncorrected in -R mode). */
void hb_report_text(const hb_results_t *r, FILE *out);

/* Writes every figure of the summary as one JSON object (see docs/hpbench.md).
 * Returns 0 or -errno. */
int hb_report_json(const hb_results_t *r, const char *path);

/* Writes one self-contained HTML file: inline SVG latency-by-percentile plot
 * on a log "nines" axis (corrected and uncorrected in -R mode) and a
 * requests/s-over-time plot. No external assets. Returns 0 or -errno. */
int hb_report_html(const hb_results_t *r, const char *path);

/* Judges a finished run against opt->max_errors_pct. Returns 0 when it
 * passes, else 1 with the reason in `why` (one line, no newline): more
 * than that share of the requests failed (every error kind counts, and a
 * request is a complete response or an error that is not a status); or,
 * in the last second of the run, errors were counted and no response had
 * a 2xx/3xx status (the server died or stopped answering: a small share
 * of a long run, but the end of the service); or no response came at all.
 * A threshold of 100 never fails. */
int hb_verdict(const hb_results_t *r, char *why, size_t len);

#endif
