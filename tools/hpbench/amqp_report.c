/*
 * amqp_report.c - what an amqp:// run prints: PerfTest's per-second lines,
 * the summary, the JSON figures, the HTML report and the verdict.
 *
 * Central data: the merged hb_amqp_results_t of a finished run (and, for
 * the per-second lines, one hb_amqp_sample_t), read only. Built from the
 * same blocks as the HTTP reports (report.c): the latency objects, lines,
 * rows and charts are the HTTP mode's, so the two read alike.
 *
 * Invariant, as in report.c: nothing written is NaN or infinite (every
 * division is hb_div0, every double hb_fin), and every string in JSON or
 * HTML is escaped (the URL's password is masked before it gets here).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "hpbench.h"

/* ---- interval figures ---- */

typedef struct diff_ctx {
    hp_hist_t *out;
    const hp_hist_t *before;
} diff_ctx_t;

/* One slot of `now`: what it gained since `before` goes to out. The slot's
 * top value maps back to the same slot index in a histogram of the same
 * layout. */
static void diff_slot(uint64_t value, uint64_t count, void *arg)
{
    diff_ctx_t *d = arg;
    uint64_t v = value < d->before->highest ? value : d->before->highest;
    uint64_t had = __atomic_load_n(&d->before->counts[hp_hist_index(d->before, v)],
                                   __ATOMIC_RELAXED);
    /* Counts only grow, and `before` was read first: count >= had. */
    if (count > had)
        hp_hist_record_n(d->out, v, count - had);
}

void hb_hist_diff(hp_hist_t *out, const hp_hist_t *now, const hp_hist_t *before)
{
    hp_hist_reset(out);
    diff_ctx_t d = {out, before};
    hp_hist_foreach(now, diff_slot, &d);
}

void hb_amqp_ipcts(const hp_hist_t *h, uint64_t out[HB_AMQP_IPCTS])
{
    static const double ps[HB_AMQP_IPCTS] = {0.0, 50.0, 75.0, 95.0, 99.0};
    bool empty = hp_hist_count(h) == 0;
    for (int i = 0; i < HB_AMQP_IPCTS; i++)
        out[i] = empty ? 0 : i == 0 ? hp_hist_min(h) : hp_hist_percentile(h, ps[i]);
}

/* ---- accounting ---- */

void hb_amqp_account(hb_amqp_results_t *r)
{
    uint64_t gone = r->nacked + r->returned + r->unconfirmed + r->consumed + r->queued;
    r->lost = r->published > gone ? r->published - gone : 0;
}

static uint64_t failures(const hb_amqp_results_t *r)
{
    return r->nacked + r->returned + r->unconfirmed + r->lost;
}

/* ---- text ---- */

static double us(uint64_t ns)
{
    return (double)ns / 1e3;
}

void hb_amqp_interval_line(FILE *out, const hb_amqp_results_t *r, const hb_amqp_sample_t *s,
                           double len)
{
    const hb_options_t *o = r->opt;
    fprintf(out, "id: test, time: %.3fs, sent: %.0f msg/s", hb_fin(s->t),
            hb_div0((double)s->published, len));
    if (o->confirm)
        fprintf(out, ", confirmed: %.0f msg/s, nacked: %.0f msg/s",
                hb_div0((double)s->confirmed, len), hb_div0((double)s->nacked, len));
    if (o->consumers)
        fprintf(out, ", received: %.0f msg/s", hb_div0((double)s->consumed, len));
    const char *sep = ", min/median/75th/95th/99th";
    if (o->consumers) {
        const uint64_t *c = s->consumer_ns;
        fprintf(out, "%s consumer latency: %.0f/%.0f/%.0f/%.0f/%.0f \xc2\xb5s", sep, us(c[0]),
                us(c[1]), us(c[2]), us(c[3]), us(c[4]));
        sep = ",";
    }
    if (o->confirm) {
        const uint64_t *c = s->confirm_ns;
        fprintf(out, "%s confirm latency: %.0f/%.0f/%.0f/%.0f/%.0f \xc2\xb5s", sep, us(c[0]),
                us(c[1]), us(c[2]), us(c[3]), us(c[4]));
    }
    fputc('\n', out);
}

static const char *plural(uint64_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

void hb_amqp_report_text(const hb_amqp_results_t *r, FILE *out)
{
    const hb_options_t *o = r->opt;
    fprintf(out, "  %d %s, %d %s on %d %s, %d %s, %d %s %s (%s%s), %d-byte messages",
            o->threads, plural((uint64_t)o->threads, "thread", "threads"), o->producers,
            plural((uint64_t)o->producers, "producer", "producers"), o->connections,
            plural((uint64_t)o->connections, "connection", "connections"), o->consumers,
            plural((uint64_t)o->consumers, "consumer", "consumers"), o->queues,
            o->quorum ? "quorum" : "classic", plural((uint64_t)o->queues, "queue", "queues"),
            o->persistent || o->quorum ? "durable" : "transient",
            o->persistent ? ", persistent messages" : "", o->size);
    if (o->batch > 1)
        fprintf(out, ", batches of %d", o->batch);
    if (o->confirm)
        fprintf(out, ", confirm window %d", o->confirm);
    else
        fputs(", no confirms", out);
    if (o->consumers)
        fprintf(out, ", prefetch %d, multi-ack %d", o->prefetch, o->multi_ack);
    if (o->read_coalesce_ms)
        fprintf(out, ", reads coalesced over %d ms", o->read_coalesce_ms);
    if (r->rate_mode)
        fprintf(out, ", constant rate %.0f msg/s\n", hb_fin(o->rate));
    else
        fputs(", closed loop\n", out);

    if (o->confirm) {
        hb_text_latency(out, r->rate_mode ? "Confirm (corrected)" : "Confirm latency", 24, &r->confirm);
        if (r->rate_mode)
            hb_text_latency(out, "Confirm (uncorrected)", 24, &r->confirm_unc);
    }
    if (o->consumers) {
        hb_text_latency(out, r->rate_mode ? "End-to-end (corrected)" : "End-to-end latency", 24, &r->consumer);
        if (r->rate_mode)
            hb_text_latency(out, "End-to-end (uncorrected)", 24, &r->consumer_unc);
    }
    if (o->confirm)
        hb_text_mean(out, "Confirm mean", &r->confirm);
    if (o->consumers)
        hb_text_mean(out, "End-to-end mean", &r->consumer);

    fprintf(out, "  %" PRIu64 " messages published in %.2fs", r->published, hb_fin(r->duration_s));
    if (o->confirm)
        fprintf(out, ", %" PRIu64 " confirmed, %" PRIu64 " nacked, %" PRIu64 " unconfirmed",
                r->confirmed, r->nacked, r->unconfirmed);
    fprintf(out, ", %" PRIu64 " returned\n", r->returned);
    fprintf(out, "  %" PRIu64 " consumed, %" PRIu64 " left in the queues%s, %" PRIu64
                 " lost (drained in %.2fs)\n",
            r->consumed, r->queued, r->queued_known ? "" : " (unknown)", r->lost,
            hb_fin(r->drain_s));
    if (r->redelivered || r->foreign)
        fprintf(out, "  %" PRIu64 " redelivered, %" PRIu64 " foreign messages (not counted)\n",
                r->redelivered, r->foreign);
    if (r->broker_errors)
        fprintf(out, "  Broker errors: %" PRIu32 " (first: %s)\n", r->broker_errors,
                r->broker_error);

    if (o->latency) {
        fputs("  Latency distribution (HdrHistogram)\n", out);
        if (o->confirm) {
            hb_text_distribution(out, r->rate_mode ? "Confirm, from the intended send time:"
                                                   : "Confirm, from publish to ack:",
                                 &r->confirm);
            if (r->rate_mode)
                hb_text_distribution(out, "Confirm, from the actual send time:", &r->confirm_unc);
        }
        if (o->consumers) {
            hb_text_distribution(out, r->rate_mode ? "End-to-end, from the intended send time:"
                                                   : "End-to-end, from publish to delivery:",
                                 &r->consumer);
            if (r->rate_mode)
                hb_text_distribution(out, "End-to-end, from the actual send time:",
                                     &r->consumer_unc);
        }
    }

    fprintf(out, "Published/sec: %.2f\n", hb_div0((double)r->published, r->duration_s));
    if (o->confirm)
        fprintf(out, "Confirmed/sec: %.2f\n", hb_div0((double)r->confirmed, r->duration_s));
    if (o->consumers)
        fprintf(out, "Consumed/sec: %.2f\n", hb_div0((double)r->consumed, r->duration_s));
    fprintf(out, "Client CPU: %.2f s (user %.2f, sys %.2f)", hb_fin(r->client_cpu_s),
            hb_fin(r->client_user_s), hb_fin(r->client_sys_s));
    if (r->published)
        fprintf(out, " = %.2f us per message published\n",
                hb_div0(r->client_cpu_s * 1e6, (double)r->published));
    else
        fputc('\n', out);
}

/* ---- verdict ---- */

int hb_amqp_verdict(const hb_amqp_results_t *r, char *why, size_t len)
{
    const hb_options_t *o = r->opt;
    double max = o->max_errors_pct;
    if (max >= 100.0)
        return 0;
    if (r->broker_errors) {
        snprintf(why, len, "the broker closed %" PRIu32 " %s: %s", r->broker_errors,
                 plural(r->broker_errors, "connection or channel", "connections or channels"),
                 r->broker_error);
        return 1;
    }
    if (r->published == 0) {
        snprintf(why, len, "no message published in the %.2f s measured", hb_fin(r->duration_s));
        return 1;
    }
    uint64_t bad = failures(r);
    double pct = 100.0 * (double)bad / (double)r->published;
    if (pct > max) {
        snprintf(why, len,
                 "%.2f%% of messages failed (%" PRIu64 " of %" PRIu64 ": nacked %" PRIu64
                 ", returned %" PRIu64 ", unconfirmed %" PRIu64 ", lost %" PRIu64
                 "), more than --max-errors %g%%",
                 pct, bad, r->published, r->nacked, r->returned, r->unconfirmed, r->lost, max);
        return 1;
    }
    if (o->consumers && r->consumed == 0) {
        snprintf(why, len, "the consumers received none of the %" PRIu64 " messages published",
                 r->published);
        return 1;
    }
    return 0;
}

/* ---- JSON ---- */

static void json_lat_or_null(FILE *f, bool on, const hp_hist_t *h)
{
    if (on)
        hb_json_latency(f, h);
    else
        fputs("null", f);
}

static void json_pcts_or_null(FILE *f, bool on, const hp_hist_t *h)
{
    if (on)
        hb_json_percentiles(f, h);
    else
        fputs("null", f);
}

static void json_ipcts(FILE *f, const uint64_t *ns)
{
    fputc('[', f);
    for (int i = 0; i < HB_AMQP_IPCTS; i++) {
        if (i)
            fputs(", ", f);
        hb_json_us(f, (double)ns[i]);
    }
    fputc(']', f);
}

int hb_amqp_report_json(const hb_amqp_results_t *r, const char *path)
{
    const hb_options_t *o = r->opt;
    FILE *f;
    int rc = hb_out_open(path, &f);
    if (rc < 0)
        return rc;
    bool conf = o->confirm > 0, cons = o->consumers > 0;
    double d = r->duration_s;

    fputs("{\n  \"tool\": \"hpbench\",\n  \"url\": ", f);
    hb_json_str(f, r->url);
    fprintf(f, ",\n  \"mode\": \"amqp\",\n  \"schedule\": \"%s\",\n  \"target_rate\": ",
            r->rate_mode ? "rate" : "closed");
    hb_json_num(f, r->rate_mode ? o->rate : 0.0);
    fprintf(f,
            ",\n  \"producers\": %d,\n  \"consumers\": %d,\n  \"queues\": %d,\n"
            "  \"queue_type\": \"%s\",\n  \"connections\": %d,\n  \"threads\": %d,\n"
            "  \"size\": %d,\n  \"confirm\": %d,\n  \"prefetch\": %d,\n  \"multi_ack\": %d,\n"
            "  \"batch\": %d,\n  \"read_coalesce_ms\": %d,\n  \"persistent\": %s,\n"
            "  \"duration_s\": ",
            o->producers, o->consumers, o->queues, o->quorum ? "quorum" : "classic",
            o->connections, o->threads, o->size, o->confirm, o->prefetch, o->multi_ack, o->batch,
            o->read_coalesce_ms, o->persistent ? "true" : "false");
    hb_json_num(f, d);
    fputs(",\n  \"warmup_s\": ", f);
    hb_json_num(f, o->warmup_s);
    fputs(",\n  \"timeout_s\": ", f);
    hb_json_num(f, o->timeout_s);
    fputs(",\n  \"drain_s\": ", f);
    hb_json_num(f, r->drain_s);
    fprintf(f,
            ",\n  \"published\": %" PRIu64 ",\n  \"confirmed\": %" PRIu64
            ",\n  \"nacked\": %" PRIu64 ",\n  \"returned\": %" PRIu64
            ",\n  \"unconfirmed\": %" PRIu64 ",\n  \"consumed\": %" PRIu64
            ",\n  \"redelivered\": %" PRIu64 ",\n  \"foreign\": %" PRIu64 ",\n  \"queued\": ",
            r->published, r->confirmed, r->nacked, r->returned, r->unconfirmed, r->consumed,
            r->redelivered, r->foreign);
    if (r->queued_known)
        fprintf(f, "%" PRIu64, r->queued);
    else
        fputs("null", f);
    fprintf(f, ",\n  \"lost\": %" PRIu64 ",\n  \"errors_total\": %" PRIu64
               ",\n  \"broker_errors\": %" PRIu32 ",\n  \"broker_error\": ",
            r->lost, failures(r), r->broker_errors);
    hb_json_str(f, r->broker_errors ? r->broker_error : NULL);
    fputs(",\n  \"rates\": {\"published\": ", f);
    hb_json_num(f, hb_div0((double)r->published, d));
    fputs(", \"confirmed\": ", f);
    hb_json_num(f, hb_div0((double)r->confirmed, d));
    fputs(", \"nacked\": ", f);
    hb_json_num(f, hb_div0((double)r->nacked, d));
    fputs(", \"consumed\": ", f);
    hb_json_num(f, hb_div0((double)r->consumed, d));
    fputs("},\n  \"confirm_latency\": ", f);
    json_lat_or_null(f, conf, &r->confirm);
    fputs(",\n  \"confirm_latency_uncorrected\": ", f);
    json_lat_or_null(f, conf && r->rate_mode, &r->confirm_unc);
    fputs(",\n  \"consumer_latency\": ", f);
    json_lat_or_null(f, cons, &r->consumer);
    fputs(",\n  \"consumer_latency_uncorrected\": ", f);
    json_lat_or_null(f, cons && r->rate_mode, &r->consumer_unc);

    fputs(",\n  \"client_cpu\": {\"user_s\": ", f);
    hb_json_num(f, r->client_user_s);
    fputs(", \"sys_s\": ", f);
    hb_json_num(f, r->client_sys_s);
    fputs(", \"total_s\": ", f);
    hb_json_num(f, r->client_cpu_s);
    fputs(", \"per_message_us\": ", f);
    if (r->published)
        hb_json_num(f, hb_div0(r->client_cpu_s * 1e6, (double)r->published));
    else
        fputs("null", f);

    fputs("},\n  \"samples\": [", f);
    for (int i = 0; r->samples && i < r->nsamples; i++) {
        const hb_amqp_sample_t *s = &r->samples[i];
        fputs(i ? ",\n    {\"t\": " : "\n    {\"t\": ", f);
        hb_json_num(f, s->t);
        fprintf(f,
                ", \"published\": %" PRIu64 ", \"confirmed\": %" PRIu64 ", \"nacked\": %" PRIu64
                ", \"returned\": %" PRIu64 ", \"consumed\": %" PRIu64 ", \"confirm_us\": ",
                s->published, s->confirmed, s->nacked, s->returned, s->consumed);
        json_ipcts(f, s->confirm_ns);
        fputs(", \"consumer_us\": ", f);
        json_ipcts(f, s->consumer_ns);
        fputc('}', f);
    }
    fputs(r->samples && r->nsamples > 0 ? "\n  ],\n" : "],\n", f);
    fputs("  \"confirm_percentiles\": ", f);
    json_pcts_or_null(f, conf, &r->confirm);
    fputs(",\n  \"consumer_percentiles\": ", f);
    json_pcts_or_null(f, cons, &r->consumer);
    fputs("\n}\n", f);
    return hb_out_close(f);
}

/* ---- HTML ---- */

static double sample_t(const void *ctx, int i)
{
    const hb_amqp_results_t *r = ctx;
    return r->samples[i].t;
}

static double sample_value(const void *ctx, int line, int i)
{
    const hb_amqp_results_t *r = ctx;
    const hb_amqp_sample_t *s = &r->samples[i];
    double len = i > 0 ? s->t - r->samples[i - 1].t : s->t;
    len = hb_fin(len) > 0.05 ? len : 1.0;
    /* The lines, in the order hb_amqp_report_html adds them: published,
     * confirmed (with confirms), consumed (with consumers), nacked. */
    const hb_options_t *o = r->opt;
    const uint64_t *kinds[4];
    int n = 0;
    kinds[n++] = &s->published;
    if (o->confirm)
        kinds[n++] = &s->confirmed;
    if (o->consumers)
        kinds[n++] = &s->consumed;
    kinds[n++] = &s->nacked;
    uint64_t v = line < n ? *kinds[line] : 0;
    return hb_div0((double)v, len);
}

static void row_u64(FILE *f, const char *name, uint64_t v)
{
    char b[32];
    snprintf(b, sizeof b, "%" PRIu64, v);
    hb_html_row(f, name, b);
}

static void row_int(FILE *f, const char *name, int v)
{
    row_u64(f, name, (uint64_t)v);
}

/* A rate row: n per second over d seconds, two decimals. */
static void row_per_sec(FILE *f, const char *name, uint64_t n, double d)
{
    char b[32];
    snprintf(b, sizeof b, "%.2f", hb_div0((double)n, d));
    hb_html_row(f, name, b);
}

/* The "Run parameters" table: the options the run had. */
static void html_parameters(FILE *f, const hb_amqp_results_t *r)
{
    const hb_options_t *o = r->opt;
    char v[320];
    fputs("<h2>Run parameters</h2>\n<table>\n", f);
    row_int(f, "Producers", o->producers);
    row_int(f, "Producer connections", o->connections);
    row_int(f, "Consumers", o->consumers);
    snprintf(v, sizeof v, "%d (%s, %s)", o->queues, o->quorum ? "quorum" : "classic",
             o->quorum || o->persistent ? "durable" : "transient");
    hb_html_row(f, "Queues", v);
    row_int(f, "Threads", o->threads);
    snprintf(v, sizeof v, "%d bytes%s", o->size, o->persistent ? ", persistent" : "");
    hb_html_row(f, "Message size", v);
    if (o->confirm)
        snprintf(v, sizeof v, "%d unconfirmed per producer", o->confirm);
    else
        snprintf(v, sizeof v, "off");
    hb_html_row(f, "Publisher confirms", v);
    row_int(f, "Batch", o->batch);
    row_int(f, "Prefetch", o->prefetch);
    row_int(f, "Multi-ack", o->multi_ack);
    row_int(f, "Read coalescing (ms)", o->read_coalesce_ms);
    if (r->rate_mode)
        snprintf(v, sizeof v, "constant rate, %.0f msg/s", hb_fin(o->rate));
    else
        snprintf(v, sizeof v, "closed loop");
    hb_html_row(f, "Mode", v);
    snprintf(v, sizeof v, "%.2f s (warm-up %.2f s, drained in %.2f s)", hb_fin(r->duration_s),
             hb_fin(o->warmup_s), hb_fin(r->drain_s));
    hb_html_row(f, "Measured duration", v);
    fputs("</table>\n", f);
}

/* The "Summary" table: what became of the messages, the rates, the
 * latency rows, the broker's errors and the client's CPU. */
static void html_summary(FILE *f, const hb_amqp_results_t *r)
{
    const hb_options_t *o = r->opt;
    char v[320];
    double d = r->duration_s;
    fputs("<h2>Summary</h2>\n<table>\n", f);
    row_u64(f, "Published", r->published);
    if (o->confirm) {
        row_u64(f, "Confirmed", r->confirmed);
        row_u64(f, "Nacked", r->nacked);
        row_u64(f, "Unconfirmed", r->unconfirmed);
    }
    row_u64(f, "Returned", r->returned);
    row_u64(f, "Consumed", r->consumed);
    if (r->queued_known)
        row_u64(f, "Left in the queues", r->queued);
    else
        hb_html_row(f, "Left in the queues", "unknown");
    row_u64(f, "Lost", r->lost);
    row_per_sec(f, "Published/sec", r->published, d);
    if (o->confirm)
        row_per_sec(f, "Confirmed/sec", r->confirmed, d);
    if (o->consumers)
        row_per_sec(f, "Consumed/sec", r->consumed, d);
    if (o->confirm) {
        hb_html_lat_rows(f, r->rate_mode ? "Confirm (corrected) " : "Confirm ", &r->confirm);
        if (r->rate_mode)
            hb_html_lat_rows(f, "Confirm (uncorrected) ", &r->confirm_unc);
    }
    if (o->consumers) {
        hb_html_lat_rows(f, r->rate_mode ? "End-to-end (corrected) " : "End-to-end ",
                         &r->consumer);
        if (r->rate_mode)
            hb_html_lat_rows(f, "End-to-end (uncorrected) ", &r->consumer_unc);
    }
    if (r->broker_errors) {
        snprintf(v, sizeof v, "%" PRIu32 " (first: %s)", r->broker_errors, r->broker_error);
        hb_html_row(f, "Broker errors", v);
    }
    snprintf(v, sizeof v, "%.2f s (user %.2f, sys %.2f)", hb_fin(r->client_cpu_s),
             hb_fin(r->client_user_s), hb_fin(r->client_sys_s));
    hb_html_row(f, "Client CPU", v);
    if (r->published)
        snprintf(v, sizeof v, "%.2f us", hb_div0(r->client_cpu_s * 1e6, (double)r->published));
    else
        snprintf(v, sizeof v, "-");
    hb_html_row(f, "Client CPU per message published", v);
    fputs("</table>\n", f);
}

/* The latency chart: end to end and confirm, corrected and not. */
static void html_latency(FILE *f, const hb_amqp_results_t *r)
{
    const hb_options_t *o = r->opt;
    fputs("<h2>Latency by percentile</h2>\n", f);
    hb_svg_hist_t lat[4];
    int n = 0;
    if (o->consumers)
        lat[n++] = (hb_svg_hist_t){r->rate_mode ? "end to end (intended send time)"
                                                : "end to end (publish to delivery)",
                                   "s1", &r->consumer};
    if (o->confirm)
        lat[n++] = (hb_svg_hist_t){r->rate_mode ? "confirm (intended send time)"
                                                : "confirm (publish to ack)",
                                   "s4", &r->confirm};
    if (o->consumers && r->rate_mode)
        lat[n++] = (hb_svg_hist_t){"end to end (actual send time)", "s2", &r->consumer_unc};
    if (o->confirm && r->rate_mode)
        lat[n++] = (hb_svg_hist_t){"confirm (actual send time)", "s5", &r->confirm_unc};
    hb_svg_latency(f, lat, n, "no latency measured");
}

/* The messages-per-second chart, its lines in sample_value's order
 * (nacked only when some sample has nacks). */
static void html_timeline(FILE *f, const hb_amqp_results_t *r)
{
    const hb_options_t *o = r->opt;
    fputs("<h2>Messages per second over time</h2>\n", f);
    bool nacks = false;
    for (int i = 0; r->samples && i < r->nsamples; i++)
        nacks |= r->samples[i].nacked != 0;
    hb_timeline_t tl = {.label = "Messages per second over time",
                        .ytitle = "Messages/s",
                        .npoints = r->samples ? r->nsamples : 0,
                        .tmax = r->duration_s,
                        .t = sample_t,
                        .value = sample_value,
                        .ctx = r};
    tl.names[tl.nlines] = "published/s";
    tl.classes[tl.nlines++] = "s1";
    if (o->confirm) {
        tl.names[tl.nlines] = "confirmed/s";
        tl.classes[tl.nlines++] = "s4";
    }
    if (o->consumers) {
        tl.names[tl.nlines] = "consumed/s";
        tl.classes[tl.nlines++] = "s2";
    }
    if (nacks) {
        tl.names[tl.nlines] = "nacked/s";
        tl.classes[tl.nlines++] = "s3";
    }
    hb_svg_timeline(f, &tl);
}

int hb_amqp_report_html(const hb_amqp_results_t *r, const char *path)
{
    FILE *f;
    int rc = hb_out_open(path, &f);
    if (rc < 0)
        return rc;
    hb_html_begin(f, "AMQP", r->url);
    html_parameters(f, r);
    html_summary(f, r);
    html_latency(f, r);
    html_timeline(f, r);
    fputs("<p>Generated by hpbench. Confirm latency runs from publishing a message to the "
          "broker's ack; end-to-end latency from publishing it to its delivery to a consumer",
          f);
    fputs(r->rate_mode ? ", both from each message's intended send time on the schedule "
                         "(corrected for coordinated omission) and from its actual send time "
                         "(uncorrected).</p>\n"
                       : ".</p>\n",
          f);
    fputs("</body>\n</html>\n", f);
    return hb_out_close(f);
}
