/*
 * test_hist.c - unit tests for src/metrics/hist.c: argument checks, the
 * latency layout and its memory bound, slot arithmetic (every slot visited
 * once, in order), percentiles against exact nearest-rank percentiles of
 * sorted arrays (uniform, log-uniform, Pareto), mean/stddev, merge,
 * out-of-range values, reset, record_n, foreach, the HdrHistogram text
 * output parsed back, an out-of-memory sweep on init and zero allocations
 * while recording. Every histogram is destroyed; the ASan build proves the
 * counts went back to the allocator.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hotpath/alloc.h"
#include "hotpath/hist.h"

static void check(const hp_hist_t *h)
{
    assert_int_equal(hp_hist_validate(h), 0);
}

/* splitmix64: a small, good, seedable generator. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). The modulo bias is negligible for these ranges. */
static uint64_t rng_below(uint64_t *s, uint64_t n)
{
    return rng_next(s) % n;
}

/* Uniform in (0, 1]. */
static double rng_unit(uint64_t *s)
{
    return (double)((rng_next(s) >> 11) + 1) * 0x1p-53;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static const uint64_t LOWEST = HP_HIST_LATENCY_LOWEST;
static const uint64_t HIGHEST = HP_HIST_LATENCY_HIGHEST;

static void test_init_args(void **state)
{
    (void)state;
    hp_hist_t h;
    uint64_t a0 = hp_alloc_count();
    assert_int_equal(hp_hist_init(&h, 0, 1000, 3), -EINVAL);
    assert_int_equal(hp_hist_init(&h, 1000, 1999, 3), -EINVAL);
    assert_int_equal(hp_hist_init(&h, 1000, 10000, 0), -EINVAL);
    assert_int_equal(hp_hist_init(&h, 1000, 10000, 6), -EINVAL);
    assert_int_equal(hp_hist_init(&h, 1000, 10000, -1), -EINVAL);
    /* A unit so large that bucket 0's top does not fit in 64 bits. */
    assert_int_equal(hp_hist_init(&h, 1ull << 60, UINT64_MAX, 3), -EINVAL);
    assert_null(h.counts);
    assert_int_equal(hp_alloc_count(), a0);

    assert_int_equal(hp_hist_init(&h, 1000, 2000, 3), 0); /* minimal range */
    check(&h);
    assert_int_equal(h.bucket_count, 1);
    hp_hist_record(&h, 1500);
    hp_hist_record(&h, 5000);
    check(&h);
    assert_int_equal(h.overflow, 1);
    hp_hist_destroy(&h);
    hp_hist_destroy(&h); /* twice is fine */

    /* The whole uint64 range. */
    assert_int_equal(hp_hist_init(&h, 1, UINT64_MAX, 2), 0);
    check(&h);
    hp_hist_record(&h, UINT64_MAX);
    hp_hist_record(&h, 0);
    hp_hist_record(&h, 1);
    check(&h);
    assert_int_equal(h.overflow, 0);
    assert_int_equal(h.underflow, 1);
    assert_true(hp_hist_percentile(&h, 100) == UINT64_MAX);
    assert_true(hp_hist_highest_equivalent(&h, UINT64_MAX) == UINT64_MAX);
    hp_hist_destroy(&h);

    for (int d = 1; d <= 5; d++) {
        assert_int_equal(hp_hist_init(&h, 1, 1000000000, d), 0);
        check(&h);
        hp_hist_destroy(&h);
    }
}

static void test_latency_layout(void **state)
{
    (void)state;
    hp_hist_t h;
    assert_int_equal(hp_hist_init_latency(&h), 0);
    check(&h);
    assert_int_equal(h.unit_shift, 9);      /* 512 <= 1000 */
    assert_int_equal(h.sub_count, 2048);    /* >= 2 * 10^3 */
    assert_int_equal(h.bucket_count, 23);   /* 2048 * 512 * 2^22 > 1 h */
    assert_int_equal(h.counts_len, 24 * 1024);
    assert_int_equal(hp_hist_bytes(&h), 196608);
    assert_true(hp_hist_bytes(&h) <= HP_HIST_LATENCY_MAX_BYTES);
    assert_true(hp_hist_bytes(&h) <= 256 * 1024);
    hp_hist_destroy(&h);
    assert_int_equal(HP_HIST_LATENCY_INIT(&h), 0);
    assert_int_equal(hp_hist_bytes(&h), 196608);
    hp_hist_destroy(&h);
}

/* Walking from 0 by "top of my slot + 1" must visit slots 0, 1, 2, ... in
 * order, each exactly once, up to highest's slot: no gap, no overlap, and
 * each slot's width keeps the promised precision. */
static void walk_slots(uint64_t lowest, uint64_t highest, int digits)
{
    hp_hist_t h;
    assert_int_equal(hp_hist_init(&h, lowest, highest, digits), 0);
    uint64_t unit = 1ull << h.unit_shift;
    uint64_t v = 0;
    uint32_t expect = 0;
    uint32_t last = hp_hist_index(&h, highest);
    for (;;) {
        assert_int_equal(hp_hist_index(&h, v), expect);
        uint64_t top = hp_hist_highest_equivalent(&h, v);
        assert_true(top >= v);
        assert_int_equal(hp_hist_index(&h, top), expect);
        uint64_t width = top - v + 1;
        /* The width is one unit below sub_count units, else within
         * 1/(sub_count/2) of the slot's start. */
        if (v >= (uint64_t)h.sub_count * unit)
            assert_true(width * (h.sub_count / 2) <= v);
        else
            assert_true(width == unit);
        if (top >= highest)
            break;
        v = top + 1;
        expect++;
    }
    assert_int_equal(expect, last);
    assert_true(last < h.counts_len);
    hp_hist_destroy(&h);
}

static void test_slots(void **state)
{
    (void)state;
    walk_slots(LOWEST, HIGHEST, 3);
    walk_slots(1, HIGHEST, 3);
    walk_slots(1, 1ull << 40, 1);
    walk_slots(7, 1ull << 50, 2);
    walk_slots(1000, 3000, 5);
}

/* Exact nearest-rank percentile from a sorted array, with p given in
 * thousandths of a percent so the rank is computed exactly in integers. */
static uint64_t exact_at(const uint64_t *sorted, uint64_t n, uint64_t p_milli)
{
    uint64_t rank = (p_milli * n + 99999) / 100000;
    if (rank == 0)
        rank = 1;
    return sorted[rank - 1];
}

static const uint64_t PCTS_MILLI[] = {0,     1000,  10000, 25000,
                                      50000, 75000, 90000, 99000,
                                      99900, 99990, 99999, 100000};

/* Records vals[0..n) (into h, which must be empty), sorts them (clamped to
 * highest, as the histogram sees them) and compares every percentile.
 * Promise: never below the exact value, above it by at most exact/1000 or
 * by less than one unit (the slot width in bucket 0). */
static void compare_percentiles(hp_hist_t *h, uint64_t *vals, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        hp_hist_record(h, vals[i]);
    check(h);
    assert_int_equal(hp_hist_count(h), n);
    for (uint64_t i = 0; i < n; i++)
        if (vals[i] > h->highest)
            vals[i] = h->highest;
    qsort(vals, n, sizeof(vals[0]), cmp_u64);
    uint64_t unit = 1ull << h->unit_shift;
    for (size_t k = 0; k < HP_ARRAY_LEN(PCTS_MILLI); k++) {
        double p = (double)PCTS_MILLI[k] / 1000.0;
        uint64_t exact = exact_at(vals, n, PCTS_MILLI[k]);
        uint64_t got = hp_hist_percentile(h, p);
        if (got < exact || (got - exact > exact / 1000 && got - exact >= unit))
            fail_msg("p%g: got %" PRIu64 ", exact %" PRIu64, p, got, exact);
    }
    assert_true(hp_hist_percentile(h, 100) == vals[n - 1]);
    assert_true(hp_hist_percentile(h, 0) >= vals[0]);
    assert_true(hp_hist_percentile(h, 0) - vals[0] < unit ||
                hp_hist_percentile(h, 0) - vals[0] <= vals[0] / 1000);

    /* Mean and stddev within the precision as well (values are mostly far
     * above the unit in these data sets). */
    double mean = 0;
    for (uint64_t i = 0; i < n; i++)
        mean += (double)vals[i];
    mean /= (double)n;
    double var = 0;
    for (uint64_t i = 0; i < n; i++)
        var += ((double)vals[i] - mean) * ((double)vals[i] - mean);
    var /= (double)n;
    double hm = hp_hist_mean(h), hs = hp_hist_stddev(h);
    assert_true(hm > mean * 0.999 - (double)unit && hm < mean * 1.001 + (double)unit);
    assert_true(hs * hs > var * 0.998 - (double)unit * (double)unit * 4 &&
                hs * hs < var * 1.002 + (double)unit * (double)unit * 4);
}

enum { N = 500000 };

static void test_pct_uniform(void **state)
{
    (void)state;
    uint64_t *vals = malloc(N * sizeof(*vals));
    assert_non_null(vals);
    uint64_t s = 1;
    hp_hist_t h;
    /* Over the whole range, and over 1 us .. 10 ms where request latencies
     * live. */
    assert_int_equal(hp_hist_init_latency(&h), 0);
    for (uint64_t i = 0; i < N; i++)
        vals[i] = LOWEST + rng_below(&s, HIGHEST - LOWEST + 1);
    compare_percentiles(&h, vals, N);
    hp_hist_reset(&h);
    check(&h);
    for (uint64_t i = 0; i < N; i++)
        vals[i] = LOWEST + rng_below(&s, 10000000);
    compare_percentiles(&h, vals, N);
    hp_hist_destroy(&h);
    free(vals);
}

/* Log-uniform over [1 us, 1 h]: a uniform octave, then uniform within it
 * (piecewise log-uniform; no libm). */
static void fill_log_uniform(uint64_t *vals, uint64_t n, uint64_t *s)
{
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v;
        do {
            uint64_t oct = rng_below(s, 32);
            uint64_t base = LOWEST << oct;
            v = base + rng_below(s, base);
        } while (v > HIGHEST);
        vals[i] = v;
    }
}

static void test_pct_log_uniform(void **state)
{
    (void)state;
    uint64_t *vals = malloc(N * sizeof(*vals));
    assert_non_null(vals);
    uint64_t s = 2;
    hp_hist_t h;
    assert_int_equal(hp_hist_init_latency(&h), 0);
    fill_log_uniform(vals, N, &s);
    compare_percentiles(&h, vals, N);
    hp_hist_destroy(&h);

    /* With a 1 ns unit the 0.1 % bound holds everywhere, down to 1 us. */
    assert_int_equal(hp_hist_init(&h, 1, HIGHEST, 3), 0);
    fill_log_uniform(vals, N, &s);
    compare_percentiles(&h, vals, N);
    for (uint64_t i = 0; i < N; i += 97) {
        uint64_t top = hp_hist_highest_equivalent(&h, vals[i]);
        assert_true(top - vals[i] <= vals[i] / 1000);
    }
    hp_hist_destroy(&h);
    free(vals);
}

/* Pareto with x_m = 1 us: x_m / U^(1/alpha). alpha = 1 and alpha = 0.5
 * (heavier: about 17 per million above 1 h, which exercises the clamp in
 * the top percentiles). */
static void test_pct_pareto(void **state)
{
    (void)state;
    uint64_t *vals = malloc(N * sizeof(*vals));
    assert_non_null(vals);
    uint64_t s = 3;
    hp_hist_t h;
    assert_int_equal(hp_hist_init_latency(&h), 0);
    for (uint64_t i = 0; i < N; i++) {
        double x = 1000.0 / rng_unit(&s);
        vals[i] = x >= 0x1p64 ? UINT64_MAX : (uint64_t)x;
    }
    compare_percentiles(&h, vals, N);
    hp_hist_reset(&h);
    uint64_t over = 0;
    for (uint64_t i = 0; i < N; i++) {
        double u = rng_unit(&s);
        double x = 1000.0 / (u * u);
        vals[i] = x >= 0x1p64 ? UINT64_MAX : (uint64_t)x;
        over += vals[i] > HIGHEST;
    }
    compare_percentiles(&h, vals, N);
    assert_int_equal(h.overflow, over);
    hp_hist_destroy(&h);
    free(vals);
}

static void test_merge(void **state)
{
    (void)state;
    hp_hist_t a, b, all;
    assert_int_equal(hp_hist_init_latency(&a), 0);
    assert_int_equal(hp_hist_init_latency(&b), 0);
    assert_int_equal(hp_hist_init_latency(&all), 0);
    uint64_t s = 4;
    for (int i = 0; i < 100000; i++) {
        uint64_t v = rng_next(&s) >> rng_below(&s, 64);
        hp_hist_t *dst = (i % 3) ? &a : &b;
        hp_hist_record(dst, v);
        hp_hist_record(&all, v);
    }
    check(&a);
    check(&b);
    assert_int_equal(hp_hist_merge(&a, &b), 0);
    check(&a);
    check(&b);
    assert_memory_equal(a.counts, all.counts, hp_hist_bytes(&all));
    assert_int_equal(a.total, all.total);
    assert_int_equal(a.min, all.min);
    assert_int_equal(a.max, all.max);
    assert_int_equal(a.overflow, all.overflow);
    assert_int_equal(a.underflow, all.underflow);
    assert_true(a.overflow > 0 && a.underflow > 0);
    for (size_t k = 0; k < HP_ARRAY_LEN(PCTS_MILLI); k++) {
        double p = (double)PCTS_MILLI[k] / 1000.0;
        assert_int_equal(hp_hist_percentile(&a, p), hp_hist_percentile(&all, p));
    }
    assert_true(hp_hist_mean(&a) == hp_hist_mean(&all));

    /* Merging an empty histogram changes nothing, min/max included. */
    hp_hist_reset(&b);
    assert_int_equal(hp_hist_merge(&a, &b), 0);
    assert_memory_equal(a.counts, all.counts, hp_hist_bytes(&all));
    assert_int_equal(a.min, all.min);
    assert_int_equal(a.max, all.max);
    /* Into an empty one: a copy. */
    assert_int_equal(hp_hist_merge(&b, &all), 0);
    check(&b);
    assert_memory_equal(b.counts, all.counts, hp_hist_bytes(&all));
    assert_int_equal(b.min, all.min);
    assert_int_equal(b.max, all.max);

    /* Different layouts are refused and leave dst alone. */
    hp_hist_t other;
    assert_int_equal(hp_hist_init(&other, 1000, HIGHEST, 2), 0);
    hp_hist_record(&other, 5000);
    assert_int_equal(hp_hist_merge(&a, &other), -EINVAL);
    assert_int_equal(hp_hist_merge(&other, &a), -EINVAL);
    hp_hist_destroy(&other);
    assert_int_equal(hp_hist_init(&other, 1000, HIGHEST / 2, 3), 0);
    assert_int_equal(hp_hist_merge(&a, &other), -EINVAL);
    hp_hist_destroy(&other);
    assert_int_equal(hp_hist_init(&other, 1, HIGHEST, 3), 0);
    assert_int_equal(hp_hist_merge(&a, &other), -EINVAL);
    hp_hist_destroy(&other);
    assert_int_equal(hp_hist_merge(&a, &other), -EINVAL); /* destroyed */
    assert_int_equal(a.total, all.total);
    check(&a);

    hp_hist_destroy(&a);
    hp_hist_destroy(&b);
    hp_hist_destroy(&all);
}

static void test_out_of_range(void **state)
{
    (void)state;
    hp_hist_t h;
    assert_int_equal(hp_hist_init_latency(&h), 0);
    assert_int_equal(hp_hist_count(&h), 0);
    assert_int_equal(hp_hist_min(&h), 0);
    assert_int_equal(hp_hist_max(&h), 0);
    assert_int_equal(hp_hist_percentile(&h, 50), 0);
    assert_true(hp_hist_mean(&h) == 0 && hp_hist_stddev(&h) == 0);

    hp_hist_record(&h, LOWEST - 1);
    check(&h);
    assert_int_equal(h.underflow, 1);
    assert_int_equal(hp_hist_min(&h), LOWEST - 1);
    assert_int_equal(hp_hist_max(&h), LOWEST - 1);
    /* 999 sits in the 512 .. 1023 slot. */
    assert_int_equal(hp_hist_percentile(&h, 50), LOWEST - 1);
    hp_hist_record(&h, HIGHEST);
    check(&h);
    assert_int_equal(h.overflow, 0);
    assert_int_equal(hp_hist_percentile(&h, 100), HIGHEST);
    hp_hist_record(&h, 1);
    hp_hist_record(&h, 0);
    check(&h);
    assert_int_equal(h.underflow, 3);
    assert_int_equal(hp_hist_min(&h), 0);
    assert_int_equal(hp_hist_percentile(&h, 0), 511); /* top of slot 0 */
    hp_hist_record(&h, HIGHEST + 1);
    check(&h);
    assert_int_equal(h.overflow, 1);
    assert_int_equal(hp_hist_max(&h), HIGHEST + 1);
    /* Clamped for percentiles. */
    assert_int_equal(hp_hist_percentile(&h, 100), HIGHEST);
    hp_hist_record(&h, UINT64_MAX);
    check(&h);
    assert_int_equal(h.overflow, 2);
    assert_true(hp_hist_max(&h) == UINT64_MAX);
    assert_int_equal(hp_hist_percentile(&h, 100), HIGHEST);
    assert_int_equal(hp_hist_count(&h), 6);
    assert_int_equal(h.counts[hp_hist_index(&h, HIGHEST)], 3);
    assert_int_equal(h.counts[0], 2);
    /* Out-of-range percentile arguments clamp. */
    assert_int_equal(hp_hist_percentile(&h, 250), HIGHEST);
    assert_int_equal(hp_hist_percentile(&h, -5), 511);
    assert_true(hp_hist_mean(&h) > 0);

    /* Only values above the range: everything at highest. */
    hp_hist_reset(&h);
    hp_hist_record(&h, UINT64_MAX);
    hp_hist_record(&h, HIGHEST + 5);
    check(&h);
    assert_int_equal(hp_hist_min(&h), HIGHEST + 5);
    assert_int_equal(hp_hist_percentile(&h, 0), HIGHEST);
    assert_int_equal(hp_hist_percentile(&h, 100), HIGHEST);
    hp_hist_destroy(&h);
}

static void test_reset_record_n(void **state)
{
    (void)state;
    hp_hist_t h, ref;
    assert_int_equal(hp_hist_init_latency(&h), 0);
    assert_int_equal(hp_hist_init_latency(&ref), 0);
    uint64_t s = 5;
    for (int i = 0; i < 1000; i++) {
        uint64_t v = rng_next(&s) >> 20;
        uint64_t n = rng_below(&s, 5);
        hp_hist_record_n(&h, v, n);
        for (uint64_t k = 0; k < n; k++)
            hp_hist_record(&ref, v);
    }
    hp_hist_record_n(&h, 123456, 0); /* nothing, not even min */
    hp_hist_record_n(&h, 5, 7);
    hp_hist_record_n(&h, UINT64_MAX, 1000000000000ull);
    for (int k = 0; k < 7; k++)
        hp_hist_record(&ref, 5);
    check(&h);
    assert_int_equal(hp_hist_count(&h), hp_hist_count(&ref) + 1000000000000ull);
    assert_int_equal(h.underflow, ref.underflow);
    assert_int_equal(h.overflow, ref.overflow + 1000000000000ull);
    assert_int_equal(h.min, 5);
    assert_true(h.max == UINT64_MAX);
    /* Apart from the overflow slot the counts are the same. */
    uint32_t hs = hp_hist_index(&h, HIGHEST);
    h.counts[hs] -= 1000000000000ull;
    assert_memory_equal(h.counts, ref.counts, hp_hist_bytes(&h));
    h.counts[hs] += 1000000000000ull;
    /* 10^12 of 1 h dominate. */
    assert_int_equal(hp_hist_percentile(&h, 50), HIGHEST);

    hp_hist_reset(&h);
    check(&h);
    assert_int_equal(hp_hist_count(&h), 0);
    assert_int_equal(hp_hist_min(&h), 0);
    assert_int_equal(hp_hist_max(&h), 0);
    assert_int_equal(h.overflow, 0);
    assert_int_equal(h.underflow, 0);
    for (uint32_t i = 0; i < h.counts_len; i++)
        assert_int_equal(h.counts[i], 0);
    assert_int_equal(hp_hist_bytes(&h), 196608); /* memory kept */
    hp_hist_record(&h, 2000000);
    check(&h);
    assert_int_equal(hp_hist_min(&h), 2000000);
    assert_int_equal(hp_hist_max(&h), 2000000);
    assert_int_equal(hp_hist_percentile(&h, 0), 2000000); /* capped at max */
    hp_hist_destroy(&h);
    hp_hist_destroy(&ref);
}

struct walk {
    uint64_t last, sum, calls;
};

static void walk_cb(uint64_t value, uint64_t count, void *arg)
{
    struct walk *w = arg;
    assert_true(w->calls == 0 || value > w->last);
    assert_true(count > 0);
    w->last = value;
    w->sum += count;
    w->calls++;
}

/* foreach order and sums; mean and stddev on known slots. */
static void test_foreach(void **state)
{
    (void)state;
    hp_hist_t h;
    assert_int_equal(hp_hist_init_latency(&h), 0);
    struct walk w = {0};
    hp_hist_foreach(&h, walk_cb, &w);
    assert_int_equal(w.calls, 0);
    hp_hist_record(&h, 1100);
    hp_hist_record(&h, 1500); /* same 512 ns slot (1024 .. 1535) as 1100 */
    hp_hist_record(&h, 1000000000);
    hp_hist_record_n(&h, 50000, 4);
    hp_hist_foreach(&h, walk_cb, &w);
    assert_int_equal(w.calls, 3);
    assert_int_equal(w.sum, 7);
    assert_int_equal(w.last, hp_hist_highest_equivalent(&h, 1000000000));

    /* Mean and stddev stand each value for the middle of its slot: 1000 in
     * 512 .. 1023 (768), 3000 in 2560 .. 3071 (2816). */
    hp_hist_reset(&h);
    hp_hist_record(&h, 1000);
    hp_hist_record(&h, 3000);
    assert_true(hp_hist_mean(&h) == 1792.0);
    assert_true(hp_hist_stddev(&h) > 1023.999999 &&
                hp_hist_stddev(&h) < 1024.000001);
    hp_hist_destroy(&h);
}

/* Parses hp_hist_print_percentiles output and checks its shape. */
static void check_text(const hp_hist_t *h, const char *text, double unit)
{
    char *copy = strdup(text);
    assert_non_null(copy);
    char *save = NULL;
    char *line = strtok_r(copy, "\n", &save);
    assert_non_null(line);
    char c1[32], c2[32], c3[32], c4[32];
    assert_int_equal(sscanf(line, "%31s %31s %31s %31s", c1, c2, c3, c4), 4);
    assert_string_equal(c1, "Value");
    assert_string_equal(c2, "Percentile");
    assert_string_equal(c3, "TotalCount");
    assert_string_equal(c4, "1/(1-Percentile)");
    assert_non_null(strstr(text, "1/(1-Percentile)\n\n")); /* blank line */

    double prev_v = -1, prev_p = -1;
    uint64_t prev_c = 0;
    int lines = 0;
    bool final = false;
    uint64_t n = hp_hist_count(h);
    while ((line = strtok_r(NULL, "\n", &save)) && line[0] != '#') {
        assert_false(final); /* the 100% line is the last one */
        double v, p;
        uint64_t c;
        char inv[32];
        assert_int_equal(sscanf(line, "%lf %lf %" SCNu64 " %31s", &v, &p, &c, inv),
                         4);
        assert_true(v >= prev_v);
        assert_true(c >= prev_c && c >= 1 && c <= n);
        if (strcmp(inv, "inf") == 0) {
            final = true;
            assert_true(p == 1.0);
            assert_int_equal(c, n);
            assert_true(v >= prev_v);
            double want = (double)hp_hist_percentile(h, 100) / unit;
            assert_true(v > want - 0.001 && v < want + 0.001);
        } else {
            assert_true(p > prev_p && p < 1.0);
            /* The column comes from the unrounded tick; p is printed
             * rounded to 6 decimals. */
            double lo = 1.0 / (1.0 - (p - 5e-7)), hi = 1.0 / (1.0 - (p + 5e-7));
            assert_true(strtod(inv, NULL) > lo - 0.01 &&
                        strtod(inv, NULL) < hi + 0.01);
            /* Values are the percentiles the API reports; ticks like
             * 0.5 and 0.9 are exact in binary, so compare those. */
            if (p == 0.0 || p == 0.5 || p == 0.9) {
                double want = (double)hp_hist_percentile(h, p * 100) / unit;
                assert_true(v > want - 0.001 && v < want + 0.001);
            }
            if (lines == 0)
                assert_true(p == 0.0);
        }
        prev_v = v;
        prev_p = p;
        prev_c = c;
        lines++;
    }
    assert_true(final);
    assert_non_null(line);
    double mean, sd, max;
    assert_int_equal(sscanf(line, "#[Mean    = %lf, StdDeviation   = %lf]", &mean,
                            &sd),
                     2);
    assert_true(mean > hp_hist_mean(h) / unit - 0.001 &&
                mean < hp_hist_mean(h) / unit + 0.001);
    assert_true(sd > hp_hist_stddev(h) / unit - 0.001 &&
                sd < hp_hist_stddev(h) / unit + 0.001);
    line = strtok_r(NULL, "\n", &save);
    assert_non_null(line);
    uint64_t total;
    assert_int_equal(sscanf(line, "#[Max     = %lf, Total count    = %" SCNu64 "]",
                            &max, &total),
                     2);
    assert_int_equal(total, n);
    assert_true(max > (double)hp_hist_percentile(h, 100) / unit - 0.001 &&
                max < (double)hp_hist_percentile(h, 100) / unit + 0.001);
    line = strtok_r(NULL, "\n", &save);
    assert_non_null(line);
    unsigned buckets, subs;
    assert_int_equal(sscanf(line, "#[Buckets = %u, SubBuckets     = %u]", &buckets,
                            &subs),
                     2);
    assert_int_equal(buckets, h->bucket_count);
    assert_int_equal(subs, h->sub_count);
    line = strtok_r(NULL, "\n", &save);
    if (h->overflow || h->underflow) {
        uint64_t o, u;
        assert_non_null(line);
        assert_int_equal(sscanf(line, "#[Overflow = %" SCNu64
                                      ", Underflow      = %" SCNu64 "]",
                                &o, &u),
                         2);
        assert_int_equal(o, h->overflow);
        assert_int_equal(u, h->underflow);
        line = strtok_r(NULL, "\n", &save);
    }
    assert_null(line);
    /* Five ticks per halving: about 5 lines per factor of 2 in 1/(1-p), up
     * to log2(n) halvings. */
    assert_true(lines > 10);
    free(copy);
}

static char *print_to_string(const hp_hist_t *h, double unit, int ticks, int *rc)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    *rc = hp_hist_print_percentiles(h, f, unit, ticks);
    assert_int_equal(fclose(f), 0);
    return buf;
}

static void test_print(void **state)
{
    (void)state;
    hp_hist_t h;
    assert_int_equal(hp_hist_init_latency(&h), 0);
    int rc;

    /* Empty: header and footer only. */
    char *text = print_to_string(&h, 1e6, 5, &rc);
    assert_int_equal(rc, 0);
    assert_null(strstr(text, "inf"));
    assert_non_null(strstr(text, "#[Max     =        0.000, Total count    =            0]"));
    assert_non_null(strstr(text, "#[Buckets =           23, SubBuckets     =         2048]"));
    free(text);

    uint64_t s = 6;
    for (int i = 0; i < 100000; i++)
        hp_hist_record(&h, 20000 + rng_below(&s, 2000000));
    text = print_to_string(&h, 1e6, 5, &rc);
    assert_int_equal(rc, 0);
    check_text(&h, text, 1e6);
    /* wrk2's tick sequence. */
    assert_non_null(strstr(text, "     0.100000 "));
    assert_non_null(strstr(text, "     0.550000 "));
    assert_non_null(strstr(text, "     0.775000 "));
    assert_non_null(strstr(text, "     0.887500 "));
    free(text);

    /* Microseconds, one tick per halving, with out-of-range values. */
    hp_hist_record(&h, 3);
    hp_hist_record(&h, UINT64_MAX);
    text = print_to_string(&h, 1e3, 1, &rc);
    assert_int_equal(rc, 0);
    check_text(&h, text, 1e3);
    free(text);

    /* A single value: its line and the 100% line. */
    hp_hist_reset(&h);
    hp_hist_record(&h, 1234567);
    text = print_to_string(&h, 1e6, 5, &rc);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(text, "       1.235     0.000000            1         1.00\n"
                                 "       1.235     1.000000            1          inf\n"));
    free(text);

    /* Bad arguments. */
    text = print_to_string(&h, 0, 5, &rc);
    assert_int_equal(rc, -EINVAL);
    free(text);
    text = print_to_string(&h, 1e6, 0, &rc);
    assert_int_equal(rc, -EINVAL);
    free(text);

    /* A write error comes back as an error. */
    FILE *ro = fopen("/dev/null", "r");
    assert_non_null(ro);
    assert_true(hp_hist_print_percentiles(&h, ro, 1e6, 5) < 0);
    fclose(ro);
    hp_hist_destroy(&h);
}

static void test_oom_sweep(void **state)
{
    (void)state;
    for (uint64_t n = 1;; n++) {
        hp_hist_t h;
        uint64_t a0 = hp_alloc_count();
        hp_alloc_fail_after(n, 0);
        int rc = hp_hist_init_latency(&h);
        hp_alloc_fail_after(0, 0);
        if (rc == 0) {
            assert_true(n > 1); /* the first attempt did fail */
            check(&h);
            hp_hist_record(&h, 5000);
            check(&h);
            hp_hist_destroy(&h);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_null(h.counts);
        assert_int_equal(hp_alloc_count(), a0);
        hp_hist_destroy(&h); /* a failed init leaves a destroyable zero */
        assert_true(n < 10);
    }
}

static void test_no_alloc(void **state)
{
    (void)state;
    hp_hist_t a, b;
    assert_int_equal(hp_hist_init_latency(&a), 0);
    assert_int_equal(hp_hist_init_latency(&b), 0);
    uint64_t a0 = hp_alloc_count();
    /* Any allocation from here on would fail and show up. */
    hp_alloc_fail_after(1, 1);
    uint64_t s = 7;
    for (int i = 0; i < 100000; i++) {
        hp_hist_record(&a, rng_next(&s) >> rng_below(&s, 64));
        hp_hist_record_n(&b, rng_next(&s) >> 30, 3);
    }
    assert_int_equal(hp_hist_merge(&a, &b), 0);
    (void)hp_hist_percentile(&a, 99.9);
    (void)hp_hist_mean(&a);
    (void)hp_hist_stddev(&a);
    hp_hist_reset(&b);
    hp_alloc_fail_after(0, 0);
    assert_int_equal(hp_alloc_count(), a0);
    check(&a);
    check(&b);
    hp_hist_destroy(&a);
    hp_hist_destroy(&b);
}

static void test_validate_catches(void **state)
{
    (void)state;
    hp_hist_t h;
    assert_int_equal(hp_hist_init_latency(&h), 0);
    hp_hist_record(&h, 5000);
    check(&h);
    h.total++;
    assert_int_equal(hp_hist_validate(&h), -EINVAL);
    h.total--;
    h.overflow = 1;
    assert_int_equal(hp_hist_validate(&h), -EINVAL);
    h.overflow = 0;
    h.min = 6000000;
    assert_int_equal(hp_hist_validate(&h), -EINVAL);
    h.min = 5000;
    h.unit_shift++;
    assert_int_equal(hp_hist_validate(&h), -EINVAL);
    h.unit_shift--;
    h.counts[h.counts_len - 1] = 1; /* above highest's slot */
    h.total++;
    assert_int_equal(hp_hist_validate(&h), -EINVAL);
    h.counts[h.counts_len - 1] = 0;
    h.total--;
    check(&h);
    hp_hist_destroy(&h);
    assert_int_equal(hp_hist_validate(&h), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_args),
        cmocka_unit_test(test_latency_layout),
        cmocka_unit_test(test_slots),
        cmocka_unit_test(test_pct_uniform),
        cmocka_unit_test(test_pct_log_uniform),
        cmocka_unit_test(test_pct_pareto),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_reset_record_n),
        cmocka_unit_test(test_foreach),
        cmocka_unit_test(test_print),
        cmocka_unit_test(test_oom_sweep),
        cmocka_unit_test(test_no_alloc),
        cmocka_unit_test(test_validate_catches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
