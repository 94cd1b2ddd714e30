/*
 * fuzz_range.c - libFuzzer target for the Range header parser
 * (src/http/range.c).
 *
 * The first 8 input bytes are the representation size (little-endian; a
 * short input is zero-padded), the rest is the Range value, copied to a
 * heap block of exactly its length so ASan catches any read past the end.
 * Checks: the result is 0, -416 or a count 1..max; every range written has
 * first <= last < size; overlapping or unordered ranges never add up to
 * more than size; a smaller `max` gives the same answer or 0; and writing
 * the ranges back out as "bytes=a-b,..." parses to the same ranges.
 */
#include "http/range_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const hp_range_t *r, int n, int max, uint64_t rep)
{
    if (!(n == 0 || n == -416 || (n >= 1 && n <= max && n <= HP_RANGE_MAX)))
        abort();
    if (n == -416 && max < 1)
        abort();
    uint64_t total = 0;
    int disorder = 0, over = 0;
    for (int i = 0; i < n; i++) {
        if (r[i].first > r[i].last || r[i].last >= rep)
            abort();
        uint64_t b = r[i].last - r[i].first + 1;
        if (b > rep - total)
            over = 1;
        else
            total += b;
        if (i && r[i].first <= r[i - 1].last)
            disorder = 1;
    }
    if (disorder && over)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t hdr[8] = {0};
    size_t h = size < 8 ? size : 8;
    memcpy(hdr, data, h);
    uint64_t rep = 0;
    for (int i = 7; i >= 0; i--)
        rep = rep << 8 | hdr[i];
    size_t len = size - h;
    char *v = malloc(len ? len : 1);
    if (!v)
        abort();
    memcpy(v, data + h, len);

    hp_range_t a[HP_RANGE_MAX], b[HP_RANGE_MAX];
    int n = hp_range_parse(v, len, rep, a, HP_RANGE_MAX);
    check(a, n, HP_RANGE_MAX, rep);

    /* A smaller caller limit: the same ranges when they fit, else 0. */
    int small = 1 + (int)(rep % 4);
    int m = hp_range_parse(v, len, rep, b, small);
    check(b, m, small, rep);
    if (n <= small ? (m != n || (n > 0 && memcmp(a, b, (size_t)n * sizeof(a[0])))) : m != 0)
        abort();
    free(v);

    /* Canonical round trip. */
    if (n > 0) {
        char txt[8 + HP_RANGE_MAX * 42];
        size_t t = (size_t)snprintf(txt, sizeof(txt), "bytes=");
        for (int i = 0; i < n; i++)
            t += (size_t)snprintf(txt + t, sizeof(txt) - t, "%s%llu-%llu", i ? "," : "",
                                  (unsigned long long)a[i].first, (unsigned long long)a[i].last);
        char *c = malloc(t);
        if (!c)
            abort();
        memcpy(c, txt, t);
        m = hp_range_parse(c, t, rep, b, HP_RANGE_MAX);
        free(c);
        if (m != n || memcmp(a, b, (size_t)n * sizeof(a[0])))
            abort();
    }
    return 0;
}
