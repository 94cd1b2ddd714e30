/*
 * http_cond.h - validators and conditional requests for static files
 * (RFC 9110 §8.8 and §13): ETag generation, HTTP-date parsing, evaluation
 * of If-Match / If-None-Match / If-Modified-Since / If-Unmodified-Since for
 * GET and HEAD, and the If-Range check that guards a Range request.
 *
 * Everything here is a pure function over (pointer, length) slices: no
 * allocation, no I/O, no clock reads (the caller passes `now` where a
 * decision needs it), no NUL termination required. Header values are the
 * OWS-trimmed field values the request parser hands out (http_parser.h).
 */
#ifndef HOTPATH_HTTP_COND_H
#define HOTPATH_HTTP_COND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hotpath/common.h"

/* Room hp_cond_etag_make() needs, including the NUL it writes: two quotes, up to
 * 16 + 16 hex digits, a '-' and the NUL make 36; 40 leaves slack. */
#define HP_ETAG_MAX 40

/* Writes the strong validator "\"<hex size>-<hex mtime_ns>\"" for a file of
 * `size` bytes modified at mtime_sec + mtime_nsec into out (OUT, capacity
 * cap) and NUL-terminates it. mtime_ns = mtime_sec * 10^9 + mtime_nsec,
 * computed modulo 2^64 (so times before 1970 or after 2262 still give a
 * stable, distinct-enough tag). Never weak ("W/"): size and nanosecond
 * mtime together change whenever sendfile would send different bytes, bar
 * a rewrite of the same size within one clock tick.
 * Returns the length without the NUL (at most 35), or 0 when cap is too
 * small (then out is left untouched). Lowercase hex, no leading zeros. */
HP_EXPORT size_t hp_cond_etag_make(char *out, size_t cap, uint64_t size, int64_t mtime_sec,
                                   long mtime_nsec);

/* Parses an HTTP-date s[0..len) in any of the three RFC 9110 §5.6.7 forms:
 *   IMF-fixdate  "Sun, 06 Nov 1994 08:49:37 GMT"
 *   RFC 850      "Sunday, 06-Nov-94 08:49:37 GMT"
 *   asctime      "Sun Nov  6 08:49:37 1994"
 * Case-sensitive, as the RFC says; no leading or trailing bytes allowed.
 * Strict about ranges: the day must exist in that month (29 Feb only in
 * Gregorian leap years), hour 0-23, minute 0-59, second 0-60 (a leap
 * second 60 counts as the first second of the next minute). The weekday
 * must be a valid name but is not checked against the date (recipients
 * should not reject a date over a wrong weekday; nginx does not either).
 * The two-digit RFC 850 year is read as 20yy when yy < 70 and 19yy
 * otherwise: the RFC's "more than 50 years in the future" rule needs the
 * current time, which this pure function does not have, and the pivot
 * keeps every such date at or after the Unix epoch.
 * Returns 0 with *t (OUT) set to Unix seconds, or -EINVAL (*t untouched). */
HP_EXPORT int hp_cond_date_parse(const char *s, size_t len, int64_t *t);

/* Evaluates the preconditions of a GET or HEAD (RFC 9110 §13.2.2) against
 * the selected representation, whose validator is etag[0..etag_len) (may be
 * weak "W/\"...\"", or NULL/0 when it has none) and whose Last-Modified is
 * mtime (Unix seconds). Each header is (ptr, len), ptr NULL when absent.
 * In order:
 *   1. If-Match present: strong comparison, "*" matches (the representation
 *      exists); no match -> 412.
 *   2. else If-Unmodified-Since with a valid date older than mtime -> 412.
 *   3. If-None-Match present: weak comparison, "*" matches; a match -> 304.
 *   4. else If-Modified-Since with a valid date >= mtime -> 304.
 *   5. otherwise 200 (go on and serve, perhaps a range).
 * Invalid dates are ignored (the step is skipped). An entity-tag list with
 * a syntax error matches nothing: a bad If-Match gives 412, a bad
 * If-None-Match gives 200, both the safe direction. Returns 200, 304 or
 * 412. Borrowed pointers only. */
HP_EXPORT int hp_cond_evaluate(const char *if_match, size_t im_len, const char *if_none_match,
                               size_t inm_len, const char *if_modified_since, size_t ims_len,
                               const char *if_unmodified_since, size_t ius_len, const char *etag,
                               size_t etag_len, int64_t mtime);

/* If-Range (RFC 9110 §13.1.5): true when a Range header may be honoured.
 * if_range NULL (absent) -> true. An entity-tag must be a strong match for
 * etag (a weak tag on either side -> false). An HTTP-date must equal mtime
 * exactly, and counts only when mtime is a strong validator, i.e. at least
 * one second before `now` (§8.8.2.2): a file modified within the current
 * second could change again within it. Anything else (bad syntax, a list,
 * a mismatch) -> false, and the caller serves the whole representation. */
HP_EXPORT bool hp_cond_if_range(const char *if_range, size_t len, const char *etag, size_t etag_len,
                                int64_t mtime, int64_t now);

#endif
