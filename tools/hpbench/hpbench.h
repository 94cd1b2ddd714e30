/*
 * hpbench.h - what the parts of the hpbench load generator share: the
 * options, the results of a run, and the report writers.
 *
 * main.c parses the command line and runs the threads (bench.c); when the
 * run ends, the per-thread results are merged into one hb_results_t that
 * report.c prints as text, JSON and HTML. All latencies are nanoseconds.
 *
 * An amqp:// URL selects the PerfTest-like AMQP mode instead (amqp.c runs
 * it, amqp_report.c reports it): its results are an hb_amqp_results_t,
 * written with the same building blocks (the second half of this file).
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
    /* amqp:// (see docs/hpbench.md, "AMQP mode") */
    bool amqp;               /* the URL is amqp:// */
    bool connections_set;    /* -c was given */
    const char *http_flag;   /* the first HTTP-only flag given (-H, -m ...), NULL: none */
    const char *amqp_flag;   /* the first AMQP-only flag given (--size ...), NULL: none */
    int producers;           /* --producers, default 1 */
    int consumers;           /* --consumers, default 1 (0: publish only) */
    int queues;              /* --queues, default 1 */
    int size;                /* --size: body bytes, default HB_AMQP_HEADER_LEN */
    int confirm;             /* --confirm W: unconfirmed per producer at most; 0 = off */
    int prefetch;            /* --prefetch, 0 = no limit */
    int multi_ack;           /* --multi-ack K: ack every K deliveries (multiple), default 1 */
    int read_coalesce_ms;    /* --read-coalesce: hp_amqp_config_t.read_coalesce_ms */
    int batch;               /* --batch N: messages per hp_amqp_publish_batch, default 1 */
    bool persistent;         /* --persistent: delivery_mode 2, durable queues */
    bool quorum;             /* --queue-type quorum */
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

/* ---------------------------------------------------------------------- */
/* Building blocks of the reports (report.c), shared by both modes          */

/* A finite double, or 0 for NaN and infinities; a / b, or 0 when b is not
 * positive. Every figure written goes through them. */
double hb_fin(double x);
double hb_div0(double a, double b);

/* A latency in ns, scaled like wrk's: "812.00us", "1.02ms", "2.50s". */
const char *hb_fmt_time(char *buf, size_t len, double ns);

/* Opens `path` for writing ("-": stdout), and flushes and closes it
 * (stdout is only flushed), reporting a write that failed on the way
 * (a full disk shows up only there). Both return 0 or -errno. */
int hb_out_open(const char *path, FILE **f);
int hb_out_close(FILE *f);

/* JSON values: an escaped string literal (NULL: null), a finite number,
 * a latency in ns written in microseconds, the latency object of a
 * histogram (min, mean, stdev, max, p50 ... p99_999, count, overflow, in
 * us), and its percentile distribution as [[percentile, us], ...]. */
void hb_json_str(FILE *f, const char *s);
void hb_json_num(FILE *f, double x);
void hb_json_us(FILE *f, double ns);
void hb_json_latency(FILE *f, const hp_hist_t *h);
void hb_json_percentiles(FILE *f, const hp_hist_t *h);

/* Text: one line "  LABEL  p50 .. p90 .. p99 .. p99.9 .. p99.99 .. max .."
 * (LABEL padded to `width`; or "no responses"), a mean and stdev line (with the count above the
 * histogram's range when there is one), and the HdrHistogram percentile
 * distribution in ms under a heading. */
void hb_text_latency(FILE *out, const char *label, int width, const hp_hist_t *h);
void hb_text_mean(FILE *out, const char *label, const hp_hist_t *h);
void hb_text_distribution(FILE *out, const char *heading, const hp_hist_t *h);

/* HTML: text escaped for HTML and XML, a <tr> of two cells, the rows of a
 * histogram's figures (each named PREFIX + "p50" ...), and the page's
 * start up to the first heading's paragraph ("hpbench: WHAT URL"). */
void hb_html_str(FILE *f, const char *s);
void hb_html_row(FILE *f, const char *name, const char *value);
void hb_html_lat_rows(FILE *f, const char *prefix, const hp_hist_t *h);
void hb_html_begin(FILE *f, const char *what, const char *url);

/* An inline SVG chart of latency by percentile on the log "nines" axis:
 * one polyline per series (the first drawn on top), a legend, or `empty`
 * when no series has a value. Styles: "s1" blue, "s2" orange dashed, "s3"
 * red, "s4" green, "s5" purple dashed. */
typedef struct hb_svg_hist {
    const char *name;        /* in the legend */
    const char *cls;         /* style class */
    const hp_hist_t *hist;
} hb_svg_hist_t;
void hb_svg_latency(FILE *f, const hb_svg_hist_t *series, int n, const char *empty);

/* An inline SVG chart of rates over time: `nlines` polylines of `npoints`
 * points each, read through t() and value() (per second), x from 0 to
 * the larger of tmax and the last t. */
typedef struct hb_timeline {
    const char *label;       /* the chart's accessible name */
    const char *ytitle;
    int npoints;
    double tmax;
    double (*t)(const void *ctx, int i);
    double (*value)(const void *ctx, int line, int i);
    const void *ctx;
    int nlines;              /* at most 5 */
    const char *names[5];
    const char *classes[5];
} hb_timeline_t;
void hb_svg_timeline(FILE *f, const hb_timeline_t *tl);

/* ---------------------------------------------------------------------- */
/* AMQP mode (amqp.c, amqp_report.c)                                        */

/* Every message body starts with this header (hb_amqp_header_t, big
 * endian), so that consumers in the same process can measure end-to-end
 * latency; --size is at least this. */
#define HB_AMQP_HEADER_LEN 32

/* Fills in the AMQP mode's defaults (-c: one connection per producer) and
 * checks the options against each other: the values, the HTTP-only flags
 * (which an amqp:// URL refuses, as an http:// URL refuses the AMQP-only
 * ones), a --multi-ack above --prefetch (the consumers would wait for
 * ever), queues without a consumer or a producer, more channels on a
 * connection than a broker allows. Returns 0, or -EINVAL with one line
 * in err. */
int hb_amqp_options(hb_options_t *o, char *err, size_t len);

/* Copies `url` to out[0, len) with the password replaced by "***", for
 * reports and errors (an URL without a password is copied as is). */
void hb_amqp_url_display(const char *url, char *out, size_t len);

/* The latency percentiles of one interval, for the per-second lines:
 * min, median, 75th, 95th, 99th (ns). */
#define HB_AMQP_IPCTS 5

/* One second of an AMQP run: the events counted in it, and the
 * percentiles of the latencies recorded in it (zeros when none). */
typedef struct hb_amqp_sample {
    double t;                /* seconds since the measured part began (its end) */
    uint64_t published, confirmed, nacked, returned, consumed;
    uint64_t confirm_ns[HB_AMQP_IPCTS];
    uint64_t consumer_ns[HB_AMQP_IPCTS];
} hb_amqp_sample_t;

typedef struct hb_amqp_results {
    const hb_options_t *opt;
    const char *url;         /* to show: the password masked */
    double duration_s;       /* measured wall time (warm-up and drain excluded) */
    double drain_s;          /* from the end to the last confirm and delivery */
    bool rate_mode;
    /* Messages published in the measured part, and what became of them
     * (their confirms and deliveries count when they come, drain included). */
    uint64_t published;
    uint64_t confirmed, nacked;   /* broker's confirms (confirm mode) */
    uint64_t returned;            /* came back unroutable (mandatory) */
    uint64_t unconfirmed;         /* no confirm by the end (confirm mode) */
    uint64_t consumed;            /* first deliveries to the consumers */
    uint64_t redelivered;         /* deliveries flagged redelivered (not in consumed) */
    uint64_t foreign;             /* bodies without this run's header */
    uint64_t queued;              /* left in the queues when they were deleted */
    bool queued_known;            /* the queues were deleted: `queued` is exact */
    uint64_t lost;                /* hb_amqp_account */
    uint32_t broker_errors;       /* connections and channels the broker closed */
    char broker_error[256];       /* the first of them, one line */
    hp_hist_t confirm, confirm_unc;   /* publish -> confirm (corrected in -R mode) */
    hp_hist_t consumer, consumer_unc; /* publish -> delivery, end to end */
    double client_cpu_s, client_user_s, client_sys_s;
    hb_amqp_sample_t *samples;
    int nsamples;
} hb_amqp_results_t;

/* Derives `lost` from the counts: published messages that were neither
 * nacked, returned, left unconfirmed, consumed nor left in a queue
 * (never below 0: with a warm-up the queues may hold older messages). */
void hb_amqp_account(hb_amqp_results_t *r);

/* The interval histogram now - before (both merged from the same threads,
 * `before` earlier), into `out` (initialised like them; reset first). */
void hb_hist_diff(hp_hist_t *out, const hp_hist_t *now, const hp_hist_t *before);

/* The figures of an interval histogram: min, p50, p75, p95, p99 (ns). */
void hb_amqp_ipcts(const hp_hist_t *h, uint64_t out[HB_AMQP_IPCTS]);

/* PerfTest's per-second line for sample s (`len` seconds long):
 * "id: test, time: 1.000s, sent: N msg/s, confirmed: ..., nacked: ...,
 * received: ..., min/median/75th/95th/99th consumer latency: a/b/c/d/e µs,
 * confirm latency: ... µs" (confirm figures in confirm mode, consumer ones
 * with consumers). */
void hb_amqp_interval_line(FILE *out, const hb_amqp_results_t *r, const hb_amqp_sample_t *s,
                           double len);

/* The summary, the JSON figures and the HTML report of an AMQP run (see
 * docs/hpbench.md); the files return 0 or -errno. */
void hb_amqp_report_text(const hb_amqp_results_t *r, FILE *out);
int hb_amqp_report_json(const hb_amqp_results_t *r, const char *path);
int hb_amqp_report_html(const hb_amqp_results_t *r, const char *path);

/* Judges an AMQP run as hb_verdict judges an HTTP one: 0, or 1 with one
 * line in `why` when the broker closed a connection or a channel, nothing
 * was published, consumers consumed nothing, or more than --max-errors
 * percent of the messages were nacked, returned, left unconfirmed or
 * lost. --max-errors 100 never fails. */
int hb_amqp_verdict(const hb_amqp_results_t *r, char *why, size_t len);

#endif
