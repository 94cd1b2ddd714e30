/*
 * range.c - Range header parsing (RFC 9110 §14.1) for byte ranges.
 *
 * Central data structure: the caller's hp_range_t array, filled left to
 * right while one pass walks the value; nothing else is kept.
 * Invariant: every range written satisfies first <= last < size, at most
 * `max` of them, and a nonzero count is returned only when the whole value
 * parsed; a syntax error anywhere means "ignore the header" (return 0),
 * never a partial answer.
 */
#include "range_int.h"

#include <stdbool.h>

static size_t skip_ows(const char *v, size_t len, size_t i)
{
    while (i < len && (v[i] == ' ' || v[i] == '\t'))
        i++;
    return i;
}

/* 1*DIGIT at v[*i..len) into *out. False when there is no digit or the
 * value does not fit in 64 bits. */
static bool scan_num(const char *v, size_t len, size_t *i, uint64_t *out)
{
    size_t p = *i;
    uint64_t n = 0;
    while (p < len && v[p] >= '0' && v[p] <= '9') {
        unsigned d = (unsigned)(v[p] - '0');
        if (n > (UINT64_MAX - d) / 10)
            return false;
        n = n * 10 + d;
        p++;
    }
    if (p == *i)
        return false;
    *i = p;
    *out = n;
    return true;
}

static bool unit_is_bytes(const char *v, size_t len)
{
    static const char bytes[] = "bytes=";
    if (len < 6)
        return false;
    for (int i = 0; i < 5; i++)
        if ((v[i] | 0x20) != bytes[i])
            return false;
    return v[5] == '=';
}

int hp_range_parse(const char *v, size_t len, uint64_t size, hp_range_t *out, int max)
{
    if (!v || !out || max < 1 || !unit_is_bytes(v, len))
        return 0;
    size_t i = 6;
    size_t end = len;
    while (end > i && (v[end - 1] == ' ' || v[end - 1] == '\t'))
        end--;
    i = skip_ows(v, end, i);

    int specs = 0, n = 0;
    uint64_t total = 0;
    bool disorder = false, total_over = false;
    while (i < end) {
        if (v[i] == ',') { /* empty list element */
            i = skip_ows(v, end, i + 1);
            continue;
        }
        if (++specs > HP_RANGE_MAX)
            return 0;
        uint64_t first, last;
        bool ok = true;
        if (v[i] == '-') {
            /* suffix-range: the last `len` bytes; 0 is valid syntax but
             * selects nothing. */
            uint64_t suffix;
            i++;
            if (!scan_num(v, end, &i, &suffix))
                return 0;
            if (suffix == 0 || size == 0) {
                ok = false;
                first = last = 0;
            } else {
                first = suffix >= size ? 0 : size - suffix;
                last = size - 1;
            }
        } else {
            if (!scan_num(v, end, &i, &first) || i >= end || v[i] != '-')
                return 0;
            i++;
            last = UINT64_MAX; /* "first-": to the end */
            if (i < end && v[i] >= '0' && v[i] <= '9') {
                if (!scan_num(v, end, &i, &last))
                    return 0;
                if (last < first)
                    return 0; /* invalid range-spec: ignore the header */
            }
            ok = first < size;
            if (ok && last >= size)
                last = size - 1;
        }
        /* The element must end here: OWS then a comma, or the end. */
        i = skip_ows(v, end, i);
        if (i < end) {
            if (v[i] != ',')
                return 0;
            i = skip_ows(v, end, i + 1);
        }
        if (!ok)
            continue;
        if (n >= max)
            return 0; /* more parts than the caller can serve: send it all */
        if (n > 0 && first <= out[n - 1].last)
            disorder = true; /* overlaps or goes backwards */
        uint64_t bytes = last - first + 1;
        if (total_over || bytes > size - total)
            total_over = true;
        else
            total += bytes;
        out[n].first = first;
        out[n].last = last;
        n++;
    }
    if (specs == 0)
        return 0; /* "bytes=" with no range-spec: 1#range-spec is violated */
    if (n == 0)
        return -416;
    if (disorder && total_over)
        return 0;
    return n;
}
