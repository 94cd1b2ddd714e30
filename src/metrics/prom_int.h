/*
 * prom_int.h - a writer for the Prometheus text exposition format 0.0.4 into a
 * caller's buffer, including hp_hist_t latency histograms exposed as
 * Prometheus histogram buckets.
 *
 * The writer never allocates and never writes past `cap`. Output is built
 * line by line: a line (or the HELP/TYPE pair of a family) is committed only
 * when all of it fits, so `len` always ends at a line boundary. The first
 * line that does not fit sets `overflow` and every later call does nothing:
 * the caller gets a well-formed prefix of the exposition and a flag, and
 * decides whether to retry with a bigger buffer. Bytes of buf past `len` are
 * unspecified (a line that did not fit may have been partly written there);
 * the output is not NUL-terminated.
 *
 * Names are written as given: metric names must match
 * [a-zA-Z_:][a-zA-Z0-9_:]* and label names [a-zA-Z_][a-zA-Z0-9_]*, which the
 * caller guarantees (they are normally literals). Label values are
 * arbitrary and must be escaped with hp_prom_label_value.
 *
 * Floating-point values are written with the fewest significant digits that
 * read back to the same double ("0.1", "2.5", "1e-05", "3"), and as "NaN",
 * "+Inf" and "-Inf". Formatting uses snprintf and so assumes the "C" numeric
 * locale (decimal point '.'), which a process has unless it calls
 * setlocale(LC_NUMERIC, ...).
 *
 * A typical /metrics handler:
 *
 *     hp_prom_t p;
 *     hp_prom_init(&p, scratch, sizeof scratch);
 *     hp_prom_family(&p, "hotpath_requests_total", "counter", "Requests.");
 *     hp_prom_sample(&p, "hotpath_requests_total", NULL, req);
 *     hp_prom_family(&p, "hotpath_request_duration_seconds", "histogram",
 *                    "Request latency.");
 *     hp_prom_histogram(&p, "hotpath_request_duration_seconds", NULL, &merged,
 *                       hp_prom_latency_bounds, hp_prom_latency_nbounds);
 *     if (p.overflow) ... the output was cut at a line boundary ...
 */
#ifndef HOTPATH_PROM_INT_H
#define HOTPATH_PROM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hotpath/common.h"
#include "hotpath/hist.h"

/* Content-Type of the format the writer produces. */
#define HP_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct hp_prom {
    char *buf;     /* borrowed: the caller's output buffer */
    size_t cap;    /* bytes available at buf */
    size_t len;    /* bytes of complete lines written so far */
    bool overflow; /* a line did not fit; nothing more is written */
} hp_prom_t;

/* Starts an empty exposition in buf[0..cap) (borrowed; buf may be NULL
 * when cap is 0). Never fails. */
void hp_prom_init(hp_prom_t *p, char *buf, size_t cap);

/* Writes a family's "# HELP name help" and "# TYPE name type" lines, both
 * or neither. Call once per family, before its samples (the format requires
 * all samples of a family to follow its TYPE line without interleaving).
 * type is "counter", "gauge", "histogram", "summary" or "untyped". help is
 * escaped as the format asks (backslash and newline); with help NULL only
 * the TYPE line is written. All strings are borrowed. */
void hp_prom_family(hp_prom_t *p, const char *name, const char *type,
                    const char *help);

/* Writes one sample line "name{labels} value" ("name value" when labels is
 * NULL or empty). labels is a preformatted label set without braces, such
 * as `route="/x",class="2xx"`; nothing in it is escaped here, so build its
 * values with hp_prom_label_value. Borrowed. */
void hp_prom_sample(hp_prom_t *p, const char *name, const char *labels,
                    uint64_t value);

/* hp_prom_sample with a floating-point value (shortest round-trip digits;
 * NaN, +Inf, -Inf). */
void hp_prom_sample_double(hp_prom_t *p, const char *name, const char *labels,
                           double value);

/* Escapes the label value v[0..len) for use between the double quotes of a
 * label: backslash, double quote and line feed become \\, \" and \n; all
 * other bytes (UTF-8 included) are copied. Writes a NUL after the escaped
 * text, which must fit too. Returns the escaped length (without the NUL),
 * or -ENOSPC when cap is too small (out's contents are then unspecified).
 * v may contain NUL bytes; it is read for exactly len bytes. */
int hp_prom_label_value(const char *v, size_t len, char *out, size_t cap);

/* Writes the samples of one histogram series from h (borrowed, values in
 * nanoseconds): "name_bucket{labels,le="<bound>"} <cumulative count>" for
 * each bound in seconds, then le="+Inf", "name_sum{labels} <seconds>" and
 * "name_count{labels} <count>". It does not write HELP/TYPE: call
 * hp_prom_family(p, name, "histogram", help) once before the first series
 * of the family. bounds (borrowed) must ascend; a bound that is not above
 * the one before it, or is not finite, is skipped (+Inf is always written
 * last). Each line is committed separately, as everywhere.
 *
 * Counts come from one walk over h (hp_hist_foreach), so +Inf and _count
 * agree with each other and with the buckets even while h's owner records
 * into it. A value counts in the first bucket whose bound is >= the value,
 * judged at the histogram's precision: each bound is rounded to the nearest
 * nanosecond and then up to the top of the histogram slot that holds it,
 * so a value exactly at a bound counts in that bucket, and a value above a
 * bound by less than one slot width (under 1/1024 of the value above
 * 0.5 ms, under 512 ns below that, with the latency setting) also counts in
 * it. Values above the histogram's highest are recorded as highest and so
 * count in a bucket whose bound reaches highest, if there is one. _sum is
 * the sum of slot midpoints (as hp_hist_mean), within half a slot per value
 * of the true sum. */
void hp_prom_histogram(hp_prom_t *p, const char *name, const char *labels,
                       const hp_hist_t *h, const double *bounds,
                       size_t nbounds);

/* Default latency bucket bounds in seconds, 100 us to 10 s:
 * 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
 * 0.25, 0.5, 1, 2.5, 5, 10. */
extern const double hp_prom_latency_bounds[];
extern const size_t hp_prom_latency_nbounds;

#endif
