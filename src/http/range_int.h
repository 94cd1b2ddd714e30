/*
 * range_int.h - the Range request header (RFC 9110 §14.1-14.2) for byte
 * ranges of a representation of known size.
 *
 * A pure parser over a (pointer, length) value: no allocation, no NUL
 * needed. It only decides; the caller checks If-Range (http_cond.h) first
 * and then builds the 206 (single part or multipart/byteranges) or 416.
 */
#ifndef HOTPATH_RANGE_INT_H
#define HOTPATH_RANGE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "hotpath/common.h"

/* One satisfiable byte range, both ends inclusive: first <= last < size. */
typedef struct hp_range {
    uint64_t first, last;
} hp_range_t;

/* A header with more range-specs than this (satisfiable or not, empty list
 * elements not counted) is ignored: every part of a multipart answer costs
 * a boundary and a syscall, and many tiny ranges are a known amplification
 * attack. */
#define HP_RANGE_MAX 16

/* Parses the Range field value v[0..len) for a representation of `size`
 * bytes into out[0..max) (OUT, in the order requested; unsatisfiable
 * range-specs are dropped, the rest clamped to the representation).
 *
 * Grammar (RFC 9110 §14.1.1, §5.6.1.2): "bytes" (case-insensitive) "="
 * then a list of int-range "first-[last]" / suffix-range "-len", with OWS
 * around commas and at either end of the list, empty elements skipped,
 * at least one element. Digits only inside a range-spec.
 *
 * Returns
 *   n >= 1  the number of satisfiable ranges written to out;
 *   0       ignore the header and serve the whole representation (200):
 *           another unit, a syntax error, last < first, a number that
 *           overflows uint64_t, more than HP_RANGE_MAX range-specs, more
 *           satisfiable ranges than `max` (or max < 1), or ranges that
 *           overlap or go out of ascending order and add up to more than
 *           `size` bytes (the defence Apache and others apply against
 *           requests that multiply the bytes sent);
 *   -416    syntactically valid but nothing satisfiable: every first-pos
 *           >= size, every suffix-length 0, or size == 0.
 * A range "first-" or one whose last >= size ends at size - 1; a suffix
 * longer than the representation covers all of it. out[] may have been
 * written to even when the result is 0 or -416; only out[0..n) for a
 * result n >= 1 is meaningful. */
int hp_range_parse(const char *v, size_t len, uint64_t size, hp_range_t *out, int max);

#endif
