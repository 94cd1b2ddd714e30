/*
 * report.c - hpbench's output: the text summary, the JSON figures and the
 * self-contained HTML report with its two inline SVG charts.
 *
 * Central data: the merged hb_results_t of a finished run, read only. Every
 * figure is derived from it on the spot; nothing here allocates on the heap
 * (the percentile iteration points live in a fixed array on the stack).
 *
 * Invariant: nothing written is ever NaN or infinite, whatever the results
 * hold (0 requests, a zero duration, an empty histogram): every division goes
 * through hb_div0(), every double through hb_fin(). JSON and HTML strings are
 * escaped from bytes that are first checked as UTF-8, so a hostile URL or
 * header cannot break the document.
 *
 * The pieces every mode's report is made of (JSON values, latency lines
 * and rows, the page's head, the two kinds of chart) are hb_* functions
 * (hpbench.h) that amqp_report.c uses too; the HTTP writers below are
 * their first user.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hpbench.h"

const char *const hb_err_names[HB_ERR_COUNT] = {
    "connect", "read", "write", "timeout", "status", "parse",
};

/* A finite double or 0: the one place NaN/inf are cut off. */
double hb_fin(double x)
{
    return isfinite(x) ? x : 0.0;
}

double hb_div0(double a, double b)
{
    return b > 0.0 ? hb_fin(a / b) : 0.0;
}

double hb_rps(const hb_results_t *r)
{
    return hb_div0((double)r->requests, r->duration_s);
}

/* ---------------------------------------------------------------------- */
/* Figures of one latency histogram                                         */

/* The fixed percentiles every report shows; the JSON keys and the text
 * labels are spelled from the same table so they cannot drift apart. */
static const struct {
    double p;
    const char *json; /* key in the JSON "latency" object */
    const char *text; /* label in the summary, NULL = not in the one-liner */
} k_pcts[] = {
    {50.0, "p50", "p50"},          {75.0, "p75", NULL},
    {90.0, "p90", "p90"},          {99.0, "p99", "p99"},
    {99.9, "p99_9", "p99.9"},      {99.99, "p99_99", "p99.99"},
    {99.999, "p99_999", NULL},
};
#define N_PCTS (sizeof(k_pcts) / sizeof(k_pcts[0]))

typedef struct lat_sum {
    uint64_t count, overflow;
    double min, mean, stdev, max; /* ns */
    double pct[N_PCTS];           /* ns, same order as k_pcts */
} lat_sum_t;

/* Reads the figures of `h`, all 0 when it is empty: an empty HdrHistogram
 * may report its min as the largest trackable value, which must not leak
 * into a report of a run that had no responses. */
static void lat_summarize(const hp_hist_t *h, lat_sum_t *s)
{
    memset(s, 0, sizeof(*s));
    s->overflow = h->overflow;
    s->count = hp_hist_count(h);
    if (s->count == 0)
        return;
    s->min = hb_fin((double)hp_hist_min(h));
    s->max = hb_fin((double)hp_hist_max(h));
    s->mean = hb_fin(hp_hist_mean(h));
    s->stdev = hb_fin(hp_hist_stddev(h));
    for (size_t i = 0; i < N_PCTS; i++)
        s->pct[i] = hb_fin((double)hp_hist_percentile(h, k_pcts[i].p));
}

/* The HdrHistogram percentile iteration, as in its "percentile
 * distribution" output: from 0%, steps of 100 / (ticks * 2^(halvings + 1))
 * where `halvings` is how many times the remaining distance to 100% has
 * halved, so every halving gets `ticks` points. The iteration stops once
 * less than one recorded value lies beyond the level (further levels would
 * all read the max) and ends with 100% = the max. 64 halvings of 5 points
 * cover any 64-bit count, hence the bound. */
#define MAX_LEVELS 360
#define TICKS_PER_HALF 5

typedef struct pct_point {
    double p;  /* 0..100 */
    double ns; /* latency at that percentile */
} pct_point_t;

static int pct_iterate(const hp_hist_t *h, pct_point_t *pts)
{
    uint64_t count = hp_hist_count(h);
    if (count == 0)
        return 0;
    int n = 0;
    double p = 0.0;
    while (n < MAX_LEVELS - 1) {
        pts[n].p = p;
        pts[n].ns = hb_fin((double)hp_hist_percentile(h, p));
        n++;
        double halvings = floor(log2(100.0 / (100.0 - p)));
        p += 100.0 / (TICKS_PER_HALF * exp2(halvings + 1.0));
        if ((100.0 - p) / 100.0 * (double)count < 1.0 || p >= 100.0)
            break;
    }
    pts[n].p = 100.0;
    pts[n].ns = hb_fin((double)hp_hist_max(h));
    return n + 1;
}

/* ---------------------------------------------------------------------- */
/* Number formats                                                           */

/* Latency with the unit scaled like wrk: us below 1 ms, ms below 1 s. */
const char *hb_fmt_time(char *buf, size_t len, double ns)
{
    ns = hb_fin(ns);
    if (ns < 1e6)
        snprintf(buf, len, "%.2fus", ns / 1e3);
    else if (ns < 1e9)
        snprintf(buf, len, "%.2fms", ns / 1e6);
    else
        snprintf(buf, len, "%.2fs", ns / 1e9);
    return buf;
}

/* Bytes in powers of 1024, as wrk prints them ("77.00MB"). */
static const char *fmt_bytes(char *buf, size_t len, double b)
{
    static const char *const units[] = {"B", "KB", "MB", "GB", "TB", "PB"};
    size_t u = 0;
    b = hb_fin(b);
    while (b >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
        b /= 1024.0;
        u++;
    }
    snprintf(buf, len, "%.2f%s", b, units[u]);
    return buf;
}

/* ---------------------------------------------------------------------- */
/* Output files and string escaping                                         */

/* Opens `path` for writing, "-" meaning stdout. */
int hb_out_open(const char *path, FILE **f)
{
    if (path == NULL)
        return -EINVAL;
    if (strcmp(path, "-") == 0) {
        *f = stdout;
        return 0;
    }
    *f = fopen(path, "w");
    return *f ? 0 : -errno;
}

/* Flushes and closes, reporting a failed write (a full disk shows up only
 * here, as stdio buffers the whole report). stdout is flushed, not closed. */
int hb_out_close(FILE *f)
{
    int err = ferror(f) ? (errno ? errno : EIO) : 0;
    if (f == stdout) {
        if (fflush(f) != 0 && err == 0)
            err = errno ? errno : EIO;
    } else if (fclose(f) != 0 && err == 0) {
        err = errno ? errno : EIO;
    }
    return -err;
}

/* Decodes one UTF-8 code point at s[0..len). Returns its length and stores
 * it in *cp, or returns 1 with *cp = U+FFFD for a byte that does not start
 * a valid, shortest-form sequence (so invalid input still makes valid
 * JSON and XML). */
static size_t utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t v, lo;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        n = 2, v = c & 0x1f, lo = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, v = c & 0x0f, lo = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, v = c & 0x07, lo = 0x10000;
    } else {
        *cp = 0xfffd;
        return 1;
    }
    if (n > len)
        goto bad;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            goto bad;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < lo || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        goto bad;
    *cp = v;
    return n;
bad:
    *cp = 0xfffd;
    return 1;
}

/* Writes a JSON string literal (quotes included); NULL writes null. */
void hb_json_str(FILE *f, const char *s)
{
    if (s == NULL) {
        fputs("null", f);
        return;
    }
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);
    fputc('"', f);
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = utf8_next(p + i, len - i, &cp);
        if (cp == '"' || cp == '\\')
            fprintf(f, "\\%c", (int)cp);
        else if (cp == '\n')
            fputs("\\n", f);
        else if (cp == '\r')
            fputs("\\r", f);
        else if (cp == '\t')
            fputs("\\t", f);
        else if (cp < 0x20 || cp == 0x7f || cp == 0xfffd)
            fprintf(f, "\\u%04" PRIx32, cp);
        else
            fwrite(p + i, 1, n, f); /* valid UTF-8, copied as is */
        i += n;
    }
    fputc('"', f);
}

/* Writes text escaped for HTML and XML alike (only the five predefined
 * entities and numeric references, which SVG parsed as XML accepts).
 * Control characters XML forbids become U+FFFD. */
void hb_html_str(FILE *f, const char *s)
{
    if (s == NULL)
        return;
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = utf8_next(p + i, len - i, &cp);
        switch (cp) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default:
            if ((cp < 0x20 && cp != '\t' && cp != '\n') || cp == 0x7f ||
                cp == 0xfffd)
                fputs("&#xFFFD;", f);
            else
                fwrite(p + i, 1, n, f);
        }
        i += n;
    }
}

/* A JSON number: finite, 0 otherwise; %.15g is exact for anything hpbench
 * measures and never prints a form JSON rejects. */
void hb_json_num(FILE *f, double x)
{
    fprintf(f, "%.15g", hb_fin(x));
}

/* A latency in microseconds, rounded to the nanosecond it was measured in
 * (the mean would otherwise print a dozen meaningless digits). */
void hb_json_us(FILE *f, double ns)
{
    hb_json_num(f, round(hb_fin(ns)) / 1e3);
}

/* ---------------------------------------------------------------------- */
/* Text summary                                                             */

/* A results struct without options (a caller bug, but cheap to survive). */
static const hb_options_t k_no_opt = {.url = "", .method = "GET"};

static const hb_options_t *opt_of(const hb_results_t *r)
{
    return r->opt ? r->opt : &k_no_opt;
}

static uint64_t errors_total(const hb_results_t *r)
{
    uint64_t t = 0;
    for (int i = 0; i < HB_ERR_COUNT; i++)
        t += r->errors[i];
    return t;
}

void hb_text_latency(FILE *out, const char *label, int width, const hp_hist_t *h)
{
    lat_sum_t s;
    char b[32];
    lat_summarize(h, &s);
    fprintf(out, "  %-*s", width, label);
    if (s.count == 0) {
        fputs(" no responses\n", out);
        return;
    }
    for (size_t i = 0; i < N_PCTS; i++) {
        if (k_pcts[i].text != NULL)
            fprintf(out, " %s %s ", k_pcts[i].text,
                    hb_fmt_time(b, sizeof(b), s.pct[i]));
    }
    fprintf(out, " max %s\n", hb_fmt_time(b, sizeof(b), s.max));
}

void hb_text_mean(FILE *out, const char *label, const hp_hist_t *h)
{
    lat_sum_t s;
    char b1[32], b2[32];
    lat_summarize(h, &s);
    if (s.count == 0)
        return;
    fprintf(out, "  %s %s, stdev %s\n", label,
            hb_fmt_time(b1, sizeof(b1), s.mean), hb_fmt_time(b2, sizeof(b2), s.stdev));
    /* Values above the histogram's range were clamped to its top: the
     * percentiles above understate them, so say how many there were. */
    if (s.overflow != 0)
        fprintf(out, "  %" PRIu64 " latencies above the histogram's range "
                "(counted at its maximum)\n", s.overflow);
}

void hb_text_distribution(FILE *out, const char *heading,
                              const hp_hist_t *h)
{
    fprintf(out, "  %s\n", heading);
    if (hp_hist_count(h) == 0) {
        fputs("  (no responses)\n", out);
        return;
    }
    /* Values in milliseconds: the histogram holds nanoseconds. */
    hp_hist_print_percentiles(h, out, 1e6, TICKS_PER_HALF);
}

void hb_report_text(const hb_results_t *r, FILE *out)
{
    const hb_options_t *o = opt_of(r);
    char b1[32], b2[32];

    fprintf(out, "  %d threads and %d connections, pipeline %d, ", o->threads,
            o->connections, o->pipeline);
    if (r->rate_mode)
        fprintf(out, "constant rate %.0f req/s\n", hb_fin(o->rate));
    else
        fputs("closed loop\n", out);

    hb_text_latency(out, r->rate_mode ? "Latency (corrected)" : "Latency", 22, &r->latency);
    if (r->rate_mode)
        hb_text_latency(out, "Latency (uncorrected)", 22, &r->uncorrected);
    hb_text_mean(out, "Mean", &r->latency);
    if (r->rate_mode)
        hb_text_mean(out, "Mean (uncorrected)", &r->uncorrected);

    fprintf(out, "  %" PRIu64 " requests in %.2fs, %s read\n", r->requests,
            hb_fin(r->duration_s), fmt_bytes(b1, sizeof(b1), (double)r->bytes_read));
    fputs("  Errors:", out);
    for (int i = 0; i < HB_ERR_COUNT; i++)
        fprintf(out, "%s %s %" PRIu64, i ? "," : "", hb_err_names[i],
                r->errors[i]);
    fputc('\n', out);
    uint64_t non2xx = r->status_classes[1] + r->status_classes[4] +
                      r->status_classes[5];
    if (non2xx != 0)
        fprintf(out, "  Non-2xx/3xx responses: %" PRIu64 "\n", non2xx);

    if (o->latency) {
        fputs("  Latency distribution (HdrHistogram)\n", out);
        if (r->rate_mode) {
            hb_text_distribution(out, "Corrected (from the intended send time):",
                              &r->latency);
            hb_text_distribution(out, "Uncorrected (from the actual send time):",
                              &r->uncorrected);
        } else {
            hb_text_distribution(out, "From send to complete response:",
                              &r->latency);
        }
    }

    fprintf(out, "Requests/sec: %.2f\n", hb_rps(r));
    fprintf(out, "Transfer/sec: %s\n",
            fmt_bytes(b2, sizeof(b2), hb_div0((double)r->bytes_read, r->duration_s)));
    fprintf(out, "Client CPU: %.2f s (user %.2f, sys %.2f)", hb_fin(r->client_cpu_s),
            hb_fin(r->client_user_s), hb_fin(r->client_sys_s));
    if (r->requests != 0)
        fprintf(out, " = %.3f s per 1,000 requests\n",
                hb_div0(r->client_cpu_s * 1000.0, (double)r->requests));
    else
        fputs("\n", out);
}

/* ---------------------------------------------------------------------- */
/* Verdict                                                                  */

/* "connect 3, read 12": the error kinds that occurred, for a reason line. */
static void err_kinds(char *buf, size_t len, const uint64_t *errors)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < HB_ERR_COUNT && used + 1 < len; i++) {
        if (errors[i] == 0)
            continue;
        int n = snprintf(buf + used, len - used, "%s%s %" PRIu64, used ? ", " : "",
                         hb_err_names[i], errors[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* The samples of the run's last second (the last sample may be short:
 * whole samples are added from the end until they cover a second). */
static void last_second(const hb_results_t *r, uint64_t *ok, uint64_t *errors, double *secs)
{
    *ok = *errors = 0;
    *secs = 0.0;
    if (!r->samples || r->nsamples == 0)
        return;
    double end = r->samples[r->nsamples - 1].t;
    for (int i = r->nsamples - 1; i >= 0; i--) {
        *ok += r->samples[i].ok;
        *errors += r->samples[i].errors;
        double start = i > 0 ? r->samples[i - 1].t : 0.0;
        *secs = hb_fin(end - start);
        if (*secs >= 1.0 - 1e-9)
            break;
    }
}

int hb_verdict(const hb_results_t *r, char *why, size_t len)
{
    double max = opt_of(r)->max_errors_pct;
    if (max >= 100.0)
        return 0;
    uint64_t failed = errors_total(r);
    /* Status errors are complete responses, already in `requests`. */
    uint64_t attempts = r->requests + failed - r->errors[HB_ERR_STATUS];
    char kinds[160];
    err_kinds(kinds, sizeof(kinds), r->errors);
    if (attempts == 0) {
        snprintf(why, len, "no response in the %.2f s measured", hb_fin(r->duration_s));
        return 1;
    }
    double pct = 100.0 * (double)failed / (double)attempts;
    if (pct > max) {
        snprintf(why, len,
                 "%.2f%% of requests failed (%" PRIu64 " of %" PRIu64 ": %s), more than "
                 "--max-errors %g%%",
                 pct, failed, attempts, kinds, max);
        return 1;
    }
    uint64_t ok, errs;
    double secs;
    last_second(r, &ok, &errs, &secs);
    if (errs > 0 && ok == 0) {
        snprintf(why, len,
                 "no successful response in the last %.2f s of the run, only %" PRIu64
                 " errors: the server stopped answering (whole run: %s)",
                 secs, errs, kinds);
        return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* JSON                                                                     */

void hb_json_latency(FILE *f, const hp_hist_t *h)
{
    lat_sum_t s;
    lat_summarize(h, &s);
    fputs("{\"min\": ", f);
    hb_json_us(f, s.min);
    fputs(", \"mean\": ", f);
    hb_json_us(f, s.mean);
    fputs(", \"stdev\": ", f);
    hb_json_us(f, s.stdev);
    fputs(", \"max\": ", f);
    hb_json_us(f, s.max);
    for (size_t i = 0; i < N_PCTS; i++) {
        fprintf(f, ", \"%s\": ", k_pcts[i].json);
        hb_json_us(f, s.pct[i]);
    }
    fprintf(f, ", \"count\": %" PRIu64 ", \"overflow\": %" PRIu64 "}",
            s.count, s.overflow);
}

void hb_json_percentiles(FILE *f, const hp_hist_t *h)
{
    pct_point_t pts[MAX_LEVELS];
    int n = pct_iterate(h, pts);
    fputc('[', f);
    for (int i = 0; i < n; i++) {
        fputs(i ? ",\n    [" : "\n    [", f);
        hb_json_num(f, pts[i].p);
        fputs(", ", f);
        hb_json_us(f, pts[i].ns);
        fputc(']', f);
    }
    fputs(n ? "\n  ]" : "]", f);
}

int hb_report_json(const hb_results_t *r, const char *path)
{
    const hb_options_t *o = opt_of(r);
    FILE *f;
    int rc = hb_out_open(path, &f);
    if (rc < 0)
        return rc;

    fputs("{\n  \"tool\": \"hpbench\",\n  \"url\": ", f);
    hb_json_str(f, o->url);
    fputs(",\n  \"method\": ", f);
    hb_json_str(f, o->method ? o->method : "GET");
    fputs(",\n  \"headers\": [", f);
    for (int i = 0; i < o->nheaders && i < 64; i++) {
        if (i)
            fputs(", ", f);
        hb_json_str(f, o->headers[i]);
    }
    fputs("],\n  \"body_file\": ", f);
    hb_json_str(f, o->body_file);
    fprintf(f, ",\n  \"connections\": %d,\n  \"threads\": %d,\n"
               "  \"pipeline\": %d,\n  \"mode\": \"%s\",\n  \"target_rate\": ",
            o->connections, o->threads, o->pipeline,
            r->rate_mode ? "rate" : "closed");
    hb_json_num(f, r->rate_mode ? o->rate : 0.0);
    fputs(",\n  \"duration_s\": ", f);
    hb_json_num(f, r->duration_s);
    fputs(",\n  \"warmup_s\": ", f);
    hb_json_num(f, o->warmup_s);
    fputs(",\n  \"timeout_s\": ", f);
    hb_json_num(f, o->timeout_s);
    fprintf(f, ",\n  \"requests\": %" PRIu64 ",\n  \"requests_per_s\": ",
            r->requests);
    hb_json_num(f, hb_rps(r));
    fprintf(f, ",\n  \"bytes_read\": %" PRIu64 ",\n  \"bytes_per_s\": ",
            r->bytes_read);
    hb_json_num(f, hb_div0((double)r->bytes_read, r->duration_s));

    fputs(",\n  \"errors\": {", f);
    for (int i = 0; i < HB_ERR_COUNT; i++)
        fprintf(f, "%s\"%s\": %" PRIu64, i ? ", " : "", hb_err_names[i],
                r->errors[i]);
    fprintf(f, "},\n  \"errors_total\": %" PRIu64 ",\n  \"status\": {",
            errors_total(r));
    for (int c = 1; c <= 5; c++)
        fprintf(f, "%s\"%dxx\": %" PRIu64, c > 1 ? ", " : "", c,
                r->status_classes[c]);

    fputs("},\n  \"latency\": ", f);
    hb_json_latency(f, &r->latency);
    fputs(",\n  \"latency_uncorrected\": ", f);
    if (r->rate_mode)
        hb_json_latency(f, &r->uncorrected);
    else
        fputs("null", f);

    fputs(",\n  \"client_cpu\": {\"user_s\": ", f);
    hb_json_num(f, r->client_user_s);
    fputs(", \"sys_s\": ", f);
    hb_json_num(f, r->client_sys_s);
    fputs(", \"total_s\": ", f);
    hb_json_num(f, r->client_cpu_s);
    fputs(", \"per_1000_requests_s\": ", f);
    if (r->requests != 0)
        hb_json_num(f, hb_div0(r->client_cpu_s * 1000.0, (double)r->requests));
    else
        fputs("null", f);

    fputs("},\n  \"samples\": [", f);
    for (int i = 0; i < r->nsamples && r->samples != NULL; i++) {
        const hb_sample_t *s = &r->samples[i];
        fputs(i ? ",\n    {\"t\": " : "\n    {\"t\": ", f);
        hb_json_num(f, s->t);
        fprintf(f, ", \"requests\": %" PRIu64 ", \"errors\": %" PRIu64
                   ", \"p99_us\": ", s->requests, s->errors);
        hb_json_us(f, (double)s->p99_ns);
        fputc('}', f);
    }
    fputs(r->nsamples > 0 && r->samples ? "\n  ],\n" : "],\n", f);

    fputs("  \"percentiles\": ", f);
    hb_json_percentiles(f, &r->latency);
    fputs(",\n  \"percentiles_uncorrected\": ", f);
    if (r->rate_mode)
        hb_json_percentiles(f, &r->uncorrected);
    else
        fputs("null", f);
    fputs("\n}\n", f);
    return hb_out_close(f);
}

/* ---------------------------------------------------------------------- */
/* SVG charts                                                               */

/* Chart geometry, in SVG user units. */
#define SVG_W 760.0
#define SVG_H 380.0
#define PLOT_L 72.0
#define PLOT_R 48.0
#define PLOT_T 36.0
#define PLOT_B 56.0
#define PLOT_W (SVG_W - PLOT_L - PLOT_R)
#define PLOT_H (SVG_H - PLOT_T - PLOT_B)

typedef struct axis {
    double max;  /* the top of the axis, > 0 */
    double step; /* between grid lines */
    int decimals;
} axis_t;

/* A linear axis from 0 with about five grid lines at 1, 2 or 5 times a
 * power of ten. An all-zero series still gets the range 0..1 so that
 * nothing is divided by zero. */
static axis_t axis_nice(double vmax)
{
    axis_t a;
    vmax = hb_fin(vmax);
    if (vmax <= 0.0)
        vmax = 1.0;
    double raw = vmax / 5.0;
    double mag = pow(10.0, floor(log10(raw)));
    double norm = raw / mag;
    a.step = (norm <= 1.0 ? 1.0 : norm <= 2.0 ? 2.0 : norm <= 5.0 ? 5.0 : 10.0) * mag;
    a.max = ceil(vmax / a.step - 1e-9) * a.step;
    if (a.max <= 0.0)
        a.max = a.step;
    int d = (int)-floor(log10(a.step) + 1e-9);
    a.decimals = d < 0 ? 0 : d > 6 ? 6 : d;
    return a;
}

static double sx(double x, double xmax)
{
    return PLOT_L + PLOT_W * hb_div0(hb_fin(x), xmax);
}

static double sy(double y, double ymax)
{
    return PLOT_T + PLOT_H - PLOT_H * hb_div0(hb_fin(y), ymax);
}

static void svg_open(FILE *f, const char *label)
{
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
               "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" "
               "aria-label=\"", SVG_W, SVG_H, SVG_W, SVG_H);
    hb_html_str(f, label);
    /* The style travels inside each chart so that an SVG copied out of
     * the page still draws the same. */
    fputs("\">\n<style>\n"
          "text{font:12px sans-serif;fill:#222}\n"
          ".grid{stroke:#e3e3e3;stroke-width:1}\n"
          ".frame{fill:none;stroke:#888}\n"
          ".nodata{fill:#888;font-size:16px}\n"
          "polyline{fill:none}\n"
          ".s1{stroke:#1f5fbf;stroke-width:2}\n"
          ".s2{stroke:#d9822b;stroke-width:2;stroke-dasharray:6 3}\n"
          ".s3{stroke:#c0392b;stroke-width:2}\n"
          ".s4{stroke:#2e8b57;stroke-width:2}\n"
          ".s5{stroke:#7d3c98;stroke-width:2;stroke-dasharray:6 3}\n"
          "</style>\n<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" "
          "fill=\"#ffffff\"/>\n", f);
}

/* The y grid with its labels, the frame and the axis titles. */
static void svg_frame(FILE *f, axis_t ya, const char *xtitle,
                      const char *ytitle)
{
    for (double v = 0.0; v <= ya.max + ya.step / 2; v += ya.step) {
        double y = sy(v, ya.max);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                   "class=\"grid\"/>\n", PLOT_L, y, PLOT_L + PLOT_W, y);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.*f"
                   "</text>\n", PLOT_L - 6, y + 4, ya.decimals, v);
    }
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
               "class=\"frame\"/>\n", PLOT_L, PLOT_T, PLOT_W, PLOT_H);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
            PLOT_L + PLOT_W / 2, SVG_H - 12);
    hb_html_str(f, xtitle);
    fprintf(f, "</text>\n<text x=\"16\" y=\"%.1f\" text-anchor=\"middle\" "
               "transform=\"rotate(-90 16 %.1f)\">",
            PLOT_T + PLOT_H / 2, PLOT_T + PLOT_H / 2);
    hb_html_str(f, ytitle);
    fputs("</text>\n", f);
}

static void svg_nodata(FILE *f, const char *what)
{
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
               "class=\"nodata\">", PLOT_L + PLOT_W / 2, PLOT_T + PLOT_H / 2);
    hb_html_str(f, what);
    fputs("</text>\n", f);
}

/* Legends sit above the plot, three to a row (a fourth starts a row
 * above the first). */
static void svg_legend(FILE *f, int slot, const char *cls, const char *name)
{
    double x = PLOT_L + 12 + 220.0 * (slot % 3), y = PLOT_T - 14 - 14.0 * (slot / 3);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
               "class=\"%s\"/>\n<text x=\"%.1f\" y=\"%.1f\">",
            x, y, x + 24, y, cls, x + 30, y + 4);
    hb_html_str(f, name);
    fputs("</text>\n", f);
}

/* The "nines" position of a percentile: 90% -> 1, 99% -> 2, ... The 100%
 * point (the max) has no finite position; it is drawn where one value in
 * `count` would be, the resolution the run actually has. */
static double nines(double p, uint64_t count, double xmax)
{
    double x;
    if (p >= 100.0)
        x = count > 1 ? log10((double)count) : 0.0;
    else
        x = -log10(1.0 - p / 100.0);
    x = hb_fin(x);
    return x < 0.0 ? 0.0 : x > xmax ? xmax : x;
}

static void svg_pct_series(FILE *f, const hp_hist_t *h, double xmax,
                           double ymax_ms, const char *cls)
{
    pct_point_t pts[MAX_LEVELS];
    int n = pct_iterate(h, pts);
    uint64_t count = hp_hist_count(h);
    if (n == 0)
        return;
    fprintf(f, "<polyline class=\"%s\" points=\"", cls);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%.1f,%.1f", i ? " " : "",
                sx(nines(pts[i].p, count, xmax), xmax),
                sy(pts[i].ns / 1e6, ymax_ms));
    fputs("\"/>\n", f);
}

void hb_svg_latency(FILE *f, const hb_svg_hist_t *series, int n, const char *empty)
{
    uint64_t most = 0;
    double top = 0.0;
    for (int i = 0; i < n; i++) {
        uint64_t count = hp_hist_count(series[i].hist);
        if (count && (double)hp_hist_max(series[i].hist) > top)
            top = (double)hp_hist_max(series[i].hist);
        most = count > most ? count : most;
    }
    axis_t ya = axis_nice(top / 1e6);
    /* At least 99.999% on the axis; more nines when the run has enough
     * values to resolve them (capped: nobody reads past 7). */
    double xmax = most > 1 ? ceil(log10((double)most)) : 5.0;
    xmax = xmax < 5.0 ? 5.0 : xmax > 7.0 ? 7.0 : xmax;

    svg_open(f, "Latency by percentile");
    svg_frame(f, ya, "Percentile", "Latency (ms)");
    for (int k = 0; k <= (int)xmax; k++) {
        double x = sx(k, xmax);
        char label[32];
        if (k == 0)
            snprintf(label, sizeof(label), "0%%");
        else
            snprintf(label, sizeof(label), "%.*f%%", k > 2 ? k - 2 : 0,
                     100.0 - pow(10.0, 2 - k));
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                   "class=\"grid\"/>\n<text x=\"%.1f\" y=\"%.1f\" "
                   "text-anchor=\"middle\">%s</text>\n",
                x, PLOT_T, x, PLOT_T + PLOT_H, x, PLOT_T + PLOT_H + 18, label);
    }
    if (most == 0) {
        svg_nodata(f, empty);
    } else {
        /* The first series is the headline: drawn last, on top. */
        for (int i = n; i-- > 0;)
            svg_pct_series(f, series[i].hist, xmax, ya.max, series[i].cls);
        for (int i = 0; i < n; i++)
            svg_legend(f, i, series[i].cls, series[i].name);
    }
    fputs("</svg>\n", f);
}

void hb_svg_timeline(FILE *f, const hb_timeline_t *tl)
{
    int n = tl->npoints;
    double vmax = 0.0, tmax = hb_fin(tl->tmax);
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < tl->nlines; k++) {
            double v = hb_fin(tl->value(tl->ctx, k, i));
            vmax = v > vmax ? v : vmax;
        }
        double t = hb_fin(tl->t(tl->ctx, i));
        tmax = t > tmax ? t : tmax;
    }
    /* 5% headroom: a steady rate would otherwise run along the frame. */
    axis_t ya = axis_nice(vmax * 1.05);
    axis_t xa = axis_nice(tmax);

    svg_open(f, tl->label);
    svg_frame(f, ya, "Time (s)", tl->ytitle);
    for (double t = 0.0; t <= xa.max + xa.step / 2; t += xa.step) {
        double x = sx(t, xa.max);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                   "class=\"grid\"/>\n<text x=\"%.1f\" y=\"%.1f\" "
                   "text-anchor=\"middle\">%.*f</text>\n",
                x, PLOT_T, x, PLOT_T + PLOT_H, x, PLOT_T + PLOT_H + 18,
                xa.decimals, t);
    }
    if (n == 0) {
        svg_nodata(f, "no samples");
        fputs("</svg>\n", f);
        return;
    }
    for (int k = 0; k < tl->nlines; k++) {
        fprintf(f, "<polyline class=\"%s\" points=\"", tl->classes[k]);
        for (int i = 0; i < n; i++)
            fprintf(f, "%s%.1f,%.1f", i ? " " : "", sx(tl->t(tl->ctx, i), xa.max),
                    sy(tl->value(tl->ctx, k, i), ya.max));
        fputs("\"/>\n", f);
    }
    for (int k = 0; k < tl->nlines; k++)
        svg_legend(f, k, tl->classes[k], tl->names[k]);
    fputs("</svg>\n", f);
}

/* The HTTP timeline: responses (and errors, when there were any) per
 * second of each sample. */
static double http_t(const void *ctx, int i)
{
    const hb_results_t *r = ctx;
    return r->samples[i].t;
}

static double http_len(const hb_results_t *r, int i)
{
    double d = i > 0 ? r->samples[i].t - r->samples[i - 1].t : r->samples[0].t;
    d = hb_fin(d);
    return d > 0.05 ? d : 1.0;
}

static double http_value(const void *ctx, int line, int i)
{
    const hb_results_t *r = ctx;
    const hb_sample_t *s = &r->samples[i];
    return hb_div0((double)(line ? s->errors : s->requests), http_len(r, i));
}

static void svg_timeline(FILE *f, const hb_results_t *r)
{
    int n = r->samples ? r->nsamples : 0;
    bool errs = false;
    for (int i = 0; i < n; i++)
        errs |= r->samples[i].errors != 0;
    hb_timeline_t tl = {.label = "Requests per second over time",
                        .ytitle = "Requests/s",
                        .npoints = n,
                        .tmax = r->duration_s,
                        .t = http_t,
                        .value = http_value,
                        .ctx = r,
                        .nlines = errs ? 2 : 1,
                        .names = {"responses/s", "errors/s"},
                        .classes = {"s1", "s3"}};
    hb_svg_timeline(f, &tl);
}

/* ---------------------------------------------------------------------- */
/* HTML                                                                     */

void hb_html_row(FILE *f, const char *name, const char *value)
{
    fputs("<tr><th>", f);
    hb_html_str(f, name);
    fputs("</th><td>", f);
    hb_html_str(f, value);
    fputs("</td></tr>\n", f);
}

void hb_html_lat_rows(FILE *f, const char *which, const hp_hist_t *h)
{
    lat_sum_t s;
    char name[96], b[32];
    lat_summarize(h, &s);
    for (size_t i = 0; i < N_PCTS; i++) {
        snprintf(name, sizeof(name), "%s%s", which,
                 k_pcts[i].text ? k_pcts[i].text : k_pcts[i].json);
        /* "p99_999" reads better as "p99.999" in a table. */
        for (char *c = name; *c; c++)
            *c = *c == '_' ? '.' : *c;
        hb_html_row(f, name, s.count ? hb_fmt_time(b, sizeof(b), s.pct[i]) : "-");
    }
    snprintf(name, sizeof(name), "%smin / mean / stdev / max", which);
    char v[160], b1[32], b2[32], b3[32], b4[32];
    if (s.count)
        snprintf(v, sizeof(v), "%s / %s / %s / %s",
                 hb_fmt_time(b1, sizeof(b1), s.min), hb_fmt_time(b2, sizeof(b2), s.mean),
                 hb_fmt_time(b3, sizeof(b3), s.stdev), hb_fmt_time(b4, sizeof(b4), s.max));
    else
        snprintf(v, sizeof(v), "-");
    hb_html_row(f, name, v);
    if (s.overflow) {
        snprintf(name, sizeof(name), "%sabove the histogram's range", which);
        snprintf(v, sizeof(v), "%" PRIu64, s.overflow);
        hb_html_row(f, name, v);
    }
}

static const char k_css[] =
    "body{font-family:sans-serif;margin:2em;color:#222;max-width:60em}\n"
    "table{border-collapse:collapse;margin:1em 0}\n"
    "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}\n"
    "th{background:#f4f4f4;font-weight:normal}\n"
    "td{font-family:monospace}\n"
    "svg{display:block;margin:1em 0}\n";

void hb_html_begin(FILE *f, const char *what, const char *url)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
          "<meta charset=\"utf-8\">\n<title>hpbench: ", f);
    hb_html_str(f, what);
    fputc(' ', f);
    hb_html_str(f, url);
    fprintf(f, "</title>\n<style>\n%s</style>\n</head>\n<body>\n"
               "<h1>hpbench report</h1>\n<p><code>", k_css);
    hb_html_str(f, what);
    fputc(' ', f);
    hb_html_str(f, url);
    fputs("</code></p>\n", f);
}

int hb_report_html(const hb_results_t *r, const char *path)
{
    const hb_options_t *o = opt_of(r);
    const char *method = o->method ? o->method : "GET";
    FILE *f;
    int rc = hb_out_open(path, &f);
    if (rc < 0)
        return rc;
    char v[256], b1[32], b2[32];

    hb_html_begin(f, method, o->url);
    fputs("<h2>Run parameters</h2>\n<table>\n", f);
    snprintf(v, sizeof(v), "%d", o->connections);
    hb_html_row(f, "Connections", v);
    snprintf(v, sizeof(v), "%d", o->threads);
    hb_html_row(f, "Threads", v);
    snprintf(v, sizeof(v), "%d", o->pipeline);
    hb_html_row(f, "Pipeline depth", v);
    if (r->rate_mode)
        snprintf(v, sizeof(v), "constant rate, %.0f req/s", hb_fin(o->rate));
    else
        snprintf(v, sizeof(v), "closed loop");
    hb_html_row(f, "Mode", v);
    snprintf(v, sizeof(v), "%.2f s (warm-up %.2f s, timeout %.2f s)",
             hb_fin(r->duration_s), hb_fin(o->warmup_s), hb_fin(o->timeout_s));
    hb_html_row(f, "Measured duration", v);
    for (int i = 0; i < o->nheaders && i < 64; i++)
        hb_html_row(f, "Header", o->headers[i]);
    if (o->body_file)
        hb_html_row(f, "Body file", o->body_file);

    fputs("</table>\n<h2>Summary</h2>\n<table>\n", f);
    snprintf(v, sizeof(v), "%" PRIu64, r->requests);
    hb_html_row(f, "Requests", v);
    snprintf(v, sizeof(v), "%.2f", hb_rps(r));
    hb_html_row(f, "Requests/sec", v);
    snprintf(v, sizeof(v), "%s (%s/s)",
             fmt_bytes(b1, sizeof(b1), (double)r->bytes_read),
             fmt_bytes(b2, sizeof(b2), hb_div0((double)r->bytes_read, r->duration_s)));
    hb_html_row(f, "Read", v);
    hb_html_lat_rows(f, r->rate_mode ? "Latency (corrected) " : "Latency ", &r->latency);
    if (r->rate_mode)
        hb_html_lat_rows(f, "Latency (uncorrected) ", &r->uncorrected);
    for (int i = 0; i < HB_ERR_COUNT; i++) {
        char name[32];
        snprintf(name, sizeof(name), "Errors: %s", hb_err_names[i]);
        snprintf(v, sizeof(v), "%" PRIu64, r->errors[i]);
        hb_html_row(f, name, v);
    }
    for (int c = 1; c <= 5; c++) {
        char name[32];
        snprintf(name, sizeof(name), "Responses %dxx", c);
        snprintf(v, sizeof(v), "%" PRIu64, r->status_classes[c]);
        hb_html_row(f, name, v);
    }
    snprintf(v, sizeof(v), "%.2f s (user %.2f, sys %.2f)", hb_fin(r->client_cpu_s),
             hb_fin(r->client_user_s), hb_fin(r->client_sys_s));
    hb_html_row(f, "Client CPU", v);
    if (r->requests)
        snprintf(v, sizeof(v), "%.3f s",
                 hb_div0(r->client_cpu_s * 1000.0, (double)r->requests));
    else
        snprintf(v, sizeof(v), "-");
    hb_html_row(f, "Client CPU per 1,000 requests", v);

    fputs("</table>\n<h2>Latency by percentile</h2>\n", f);
    hb_svg_hist_t lat[2] = {
        {r->rate_mode ? "corrected (intended send time)" : "send to complete response", "s1",
         &r->latency},
        {"uncorrected (actual send time)", "s2", &r->uncorrected},
    };
    hb_svg_latency(f, lat, r->rate_mode ? 2 : 1, "no responses");
    fputs("<h2>Requests per second over time</h2>\n", f);
    svg_timeline(f, r);
    fputs("<p>Generated by hpbench. Latency is measured ", f);
    fputs(r->rate_mode
              ? "from each request's intended send time (corrected for "
                "coordinated omission) and from its actual send time "
                "(uncorrected)."
              : "from sending each request to receiving its complete "
                "response.", f);
    fputs("</p>\n</body>\n</html>\n", f);
    return hb_out_close(f);
}
