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
 * (or "no responses"), a mean and stdev line (with the count above the
 * histogram's range when there is one), and the HdrHistogram percentile
 * distribution in ms under a heading. */
void hb_text_latency(FILE *out, const char *label, const hp_hist_t *h);
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

#endif
