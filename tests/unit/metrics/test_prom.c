/*
 * test_prom.c - unit tests for src/metrics/prom.c: exact text of families,
 * counters and gauges; floating-point formatting; HELP and label-value
 * escaping; histograms against brute-force bucket counts of the recorded
 * values (cumulative, +Inf == _count, _sum within 0.1 %, values exactly at
 * a bound in that bucket); odd bound lists and absent histograms; the
 * overflow contract at every buffer size from 0 to the full length (each
 * buffer allocated at its exact size so ASan sees any write past it); and
 * no allocation while writing.
 *
 * With HP_PROM_SAMPLE_OUT=<path> in the environment, the test also writes
 * a representative exposition to <path>, for tests/integration/
 * prom_check.py to parse with the reference Python parser.
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
#include "metrics/prom_int.h"

/* The writer's output as a NUL-terminated string (the writer does not
 * terminate it). */
static const char *text(hp_prom_t *p)
{
    assert_true(p->len < p->cap);
    p->buf[p->len] = '\0';
    return p->buf;
}

/* The value on the line of text[0..len) that starts with `prefix` (the
 * whole series, up to and including the space); fails if there is none or
 * more than one. */
static const char *find_line(const char *t, size_t len, const char *prefix)
{
    const char *found = NULL;
    size_t n = strlen(prefix);
    for (const char *s = t; s < t + len;) {
        const char *e = memchr(s, '\n', (size_t)(t + len - s));
        assert_non_null(e);
        if ((size_t)(e - s) >= n && memcmp(s, prefix, n) == 0) {
            assert_null(found);
            found = s + n;
        }
        s = e + 1;
    }
    if (!found)
        fail_msg("no line starting with %s", prefix);
    return found;
}

static uint64_t line_u64(const char *t, size_t len, const char *prefix)
{
    char *end;
    uint64_t v = strtoull(find_line(t, len, prefix), &end, 10);
    assert_int_equal(*end, '\n');
    return v;
}

static double line_double(const char *t, size_t len, const char *prefix)
{
    char *end;
    double v = strtod(find_line(t, len, prefix), &end);
    assert_int_equal(*end, '\n');
    return v;
}

static size_t count_lines(const char *t, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += t[i] == '\n';
    return n;
}

/* splitmix64. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) * 0x1p-53;
}

static void test_counters_gauges_exact(void **state)
{
    (void)state;
    char buf[1024];
    hp_prom_t p;
    hp_prom_init(&p, buf, sizeof buf);
    assert_int_equal(p.len, 0);
    assert_false(p.overflow);

    hp_prom_family(&p, "hotpath_requests_total", "counter", "Requests parsed.");
    hp_prom_sample(&p, "hotpath_requests_total", NULL, 0);
    hp_prom_family(&p, "hotpath_responses_total", "counter", "Responses by class.");
    hp_prom_sample(&p, "hotpath_responses_total", "class=\"2xx\"", 12345);
    hp_prom_sample(&p, "hotpath_responses_total", "", UINT64_MAX);
    hp_prom_family(&p, "hotpath_connections_open", "gauge", NULL);
    hp_prom_sample(&p, "hotpath_connections_open", "worker=\"0\",kind=\"tcp\"", 7);
    hp_prom_family(&p, "hotpath_load", "gauge", "Load average.");
    hp_prom_sample_double(&p, "hotpath_load", NULL, 0.25);
    assert_false(p.overflow);
    assert_string_equal(text(&p),
                        "# HELP hotpath_requests_total Requests parsed.\n"
                        "# TYPE hotpath_requests_total counter\n"
                        "hotpath_requests_total 0\n"
                        "# HELP hotpath_responses_total Responses by class.\n"
                        "# TYPE hotpath_responses_total counter\n"
                        "hotpath_responses_total{class=\"2xx\"} 12345\n"
                        "hotpath_responses_total 18446744073709551615\n"
                        "# TYPE hotpath_connections_open gauge\n"
                        "hotpath_connections_open{worker=\"0\",kind=\"tcp\"} 7\n"
                        "# HELP hotpath_load Load average.\n"
                        "# TYPE hotpath_load gauge\n"
                        "hotpath_load 0.25\n");
    assert_int_equal(p.len, strlen(buf));
}

static void test_help_escaping(void **state)
{
    (void)state;
    char buf[256];
    hp_prom_t p;
    hp_prom_init(&p, buf, sizeof buf);
    /* Backslash and line feed are escaped in HELP; quotes are not. */
    hp_prom_family(&p, "x", "untyped", "a \\ b\nc \"q\"");
    hp_prom_family(&p, "y", "counter", "");
    assert_string_equal(text(&p), "# HELP x a \\\\ b\\nc \"q\"\n"
                                  "# TYPE x untyped\n"
                                  "# HELP y \n"
                                  "# TYPE y counter\n");
}

static void test_double_format(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *s;
    } cases[] = {
        {0, "0"},
        {1, "1"},
        {3, "3"},
        {0.1, "0.1"},
        {2.5, "2.5"},
        {0.0001, "0.0001"},
        {0.00025, "0.00025"},
        {1e-5, "1e-05"},
        {1.0 / 3.0, "0.3333333333333333"},
        {123456789012.0, "123456789012"},
        {1e300, "1e+300"},
        {-1.5, "-1.5"},
        {0x1p-1074, "5e-324"},
        {1.0 / 0.0, "+Inf"},
        {-1.0 / 0.0, "-Inf"},
        {0.0 / 0.0, "NaN"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[128], want[128];
        hp_prom_t p;
        hp_prom_init(&p, buf, sizeof buf);
        hp_prom_sample_double(&p, "g", "a=\"b\"", cases[i].v);
        snprintf(want, sizeof want, "g{a=\"b\"} %s\n", cases[i].s);
        assert_string_equal(text(&p), want);
    }
    /* Shortest digits still read back exactly, over many values. */
    uint64_t seed = 7;
    for (int i = 0; i < 20000; i++) {
        double v;
        uint64_t bits = rng_next(&seed);
        memcpy(&v, &bits, sizeof v);
        if (v != v || v - v != 0)
            continue; /* NaN, Inf */
        char buf[128];
        hp_prom_t p;
        hp_prom_init(&p, buf, sizeof buf);
        hp_prom_sample_double(&p, "g", NULL, v);
        assert_true(line_double(text(&p), p.len, "g ") == v);
    }
}

static void test_label_value(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(hp_prom_label_value("plain/x", 7, out, sizeof out), 7);
    assert_string_equal(out, "plain/x");
    static const char in[] = "a\\b\"c\nd";
    static const char want[] = "a\\\\b\\\"c\\nd";
    int n = hp_prom_label_value(in, sizeof in - 1, out, sizeof out);
    assert_int_equal(n, (int)sizeof want - 1);
    assert_string_equal(out, want);
    /* Empty value. */
    assert_int_equal(hp_prom_label_value("", 0, out, 1), 0);
    assert_string_equal(out, "");
    assert_int_equal(hp_prom_label_value("", 0, out, 0), -ENOSPC);
    /* Reads exactly len bytes: an embedded NUL is copied, the rest of the
     * string after len is ignored. */
    assert_int_equal(hp_prom_label_value("ab\0cd", 4, out, sizeof out), 4);
    assert_memory_equal(out, "ab\0c", 5);
    /* UTF-8 passes through. */
    assert_int_equal(hp_prom_label_value("\xc3\xa9", 2, out, sizeof out), 2);
    assert_string_equal(out, "\xc3\xa9");

    /* Every capacity below the escaped length + 1 fails, in an exactly
     * sized heap buffer (ASan catches a write past cap); the first one
     * that fits succeeds. */
    for (size_t cap = 0; cap <= sizeof want; cap++) {
        char *b = malloc(cap ? cap : 1);
        assert_non_null(b);
        int r = hp_prom_label_value(in, sizeof in - 1, b, cap);
        if (cap < sizeof want) {
            assert_int_equal(r, -ENOSPC);
        } else {
            assert_int_equal(r, (int)sizeof want - 1);
            assert_string_equal(b, want);
        }
        free(b);
    }

    /* Escaped values make a label set the writer can carry. */
    char labels[128];
    n = hp_prom_label_value("/a\"b", 4, out, sizeof out);
    assert_true(n > 0);
    snprintf(labels, sizeof labels, "route=\"%s\"", out);
    char buf[128];
    hp_prom_t p;
    hp_prom_init(&p, buf, sizeof buf);
    hp_prom_sample(&p, "hits_total", labels, 3);
    assert_string_equal(text(&p), "hits_total{route=\"/a\\\"b\"} 3\n");
}

static const char *const LE[] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05",   "0.1",     "0.25",   "0.5",   "1",     "2.5",   "5",     "10",
};

static void test_default_bounds(void **state)
{
    (void)state;
    assert_int_equal(hp_prom_latency_nbounds, 16);
    assert_int_equal(sizeof LE / sizeof LE[0], hp_prom_latency_nbounds);
    for (size_t i = 0; i < hp_prom_latency_nbounds; i++) {
        assert_true(hp_prom_latency_bounds[i] == strtod(LE[i], NULL));
        if (i)
            assert_true(hp_prom_latency_bounds[i] > hp_prom_latency_bounds[i - 1]);
    }
}

/* An empty histogram: every bucket 0, exact text, labels merged with le. */
static void test_histogram_empty_exact(void **state)
{
    (void)state;
    hp_hist_t h;
    assert_int_equal(hp_hist_init_latency(&h), 0);
    static const double b[] = {0.001, 0.5, 2};
    char buf[1024];
    hp_prom_t p;
    hp_prom_init(&p, buf, sizeof buf);
    hp_prom_family(&p, "lat_seconds", "histogram", "Latency.");
    hp_prom_histogram(&p, "lat_seconds", "route=\"/x\"", &h, b, 3);
    hp_prom_histogram(&p, "lat_seconds", NULL, &h, b, 0);
    assert_string_equal(text(&p), "# HELP lat_seconds Latency.\n"
                                  "# TYPE lat_seconds histogram\n"
                                  "lat_seconds_bucket{route=\"/x\",le=\"0.001\"} 0\n"
                                  "lat_seconds_bucket{route=\"/x\",le=\"0.5\"} 0\n"
                                  "lat_seconds_bucket{route=\"/x\",le=\"2\"} 0\n"
                                  "lat_seconds_bucket{route=\"/x\",le=\"+Inf\"} 0\n"
                                  "lat_seconds_sum{route=\"/x\"} 0\n"
                                  "lat_seconds_count{route=\"/x\"} 0\n"
                                  "lat_seconds_bucket{le=\"+Inf\"} 0\n"
                                  "lat_seconds_sum 0\n"
                                  "lat_seconds_count 0\n");
    hp_hist_destroy(&h);
}

/* A few values with known buckets, exact text apart from _sum. */
static void test_histogram_small(void **state)
{
    (void)state;
    hp_hist_t h;
    assert_int_equal(hp_hist_init_latency(&h), 0);
    hp_hist_record(&h, 50000);        /* 50 us  -> 0.0001 */
    hp_hist_record(&h, 300000);       /* 300 us -> 0.0005 */
    hp_hist_record(&h, 2000000);      /* 2 ms   -> 0.0025 */
    hp_hist_record(&h, 2000000);
    hp_hist_record(&h, 20000000000ull); /* 20 s -> +Inf only */
    char buf[4096];
    hp_prom_t p;
    hp_prom_init(&p, buf, sizeof buf);
    hp_prom_histogram(&p, "l", NULL, &h, hp_prom_latency_bounds,
                      hp_prom_latency_nbounds);
    const char *t = text(&p);
    static const uint64_t want[] = {1, 1, 2, 2, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4};
    char prefix[64];
    for (size_t i = 0; i < hp_prom_latency_nbounds; i++) {
        snprintf(prefix, sizeof prefix, "l_bucket{le=\"%s\"} ", LE[i]);
        assert_int_equal(line_u64(t, p.len, prefix), want[i]);
    }
    assert_int_equal(line_u64(t, p.len, "l_bucket{le=\"+Inf\"} "), 5);
    assert_int_equal(line_u64(t, p.len, "l_count "), 5);
    double sum = line_double(t, p.len, "l_sum ");
    double truth = 20.00435;
    assert_true(sum > truth * 0.999 && sum < truth * 1.001);
    /* 16 buckets, +Inf, _sum, _count; buckets in order. */
    assert_int_equal(count_lines(t, p.len), 19);
    assert_true(strstr(t, "le=\"0.0001\"") < strstr(t, "le=\"10\""));
    assert_true(strstr(t, "le=\"10\"") < strstr(t, "le=\"+Inf\""));
    hp_hist_destroy(&h);
}

/* True when v is within 0.5 % of any default bound: the histogram cannot
 * place such a value exactly relative to the bound. */
static bool near_bound(uint64_t v)
{
    for (size_t i = 0; i < hp_prom_latency_nbounds; i++) {
        double b = hp_prom_latency_bounds[i] * 1e9;
        if ((double)v > b * 0.995 && (double)v < b * 1.005)
            return true;
    }
    return false;
}

/* Log-uniform values from 20 us to 30 s, against brute-force counts. */
static void test_histogram_bruteforce(void **state)
{
    (void)state;
    enum { N = 200000 };
    uint64_t *vals = malloc(N * sizeof *vals);
    assert_non_null(vals);
    hp_hist_t h;
    assert_int_equal(hp_hist_init_latency(&h), 0);
    uint64_t seed = 42;
    double truth = 0;
    size_t n = 0;
    while (n < N) {
        /* Log-uniform by octave: 20 us * 2^k * (1 + u) for k in 0..20
         * reaches 42 s, past the last bound. */
        double v = 20e3 * (double)(1u << (rng_next(&seed) % 21)) * (1 + rng_unit(&seed));
        uint64_t x = (uint64_t)v;
        if (near_bound(x))
            continue;
        vals[n++] = x;
        truth += (double)x;
        hp_hist_record(&h, x);
    }
    assert_int_equal(hp_hist_validate(&h), 0);

    static char buf[8192];
    hp_prom_t p;
    hp_prom_init(&p, buf, sizeof buf);
    hp_prom_histogram(&p, "lat_seconds", "w=\"1\"", &h, hp_prom_latency_bounds,
                      hp_prom_latency_nbounds);
    assert_false(p.overflow);
    const char *t = text(&p);
    uint64_t prev = 0;
    char prefix[96];
    for (size_t i = 0; i < hp_prom_latency_nbounds; i++) {
        uint64_t bns = (uint64_t)(hp_prom_latency_bounds[i] * 1e9 + 0.5);
        uint64_t brute = 0;
        for (size_t j = 0; j < n; j++)
            brute += vals[j] <= bns;
        snprintf(prefix, sizeof prefix, "lat_seconds_bucket{w=\"1\",le=\"%s\"} ", LE[i]);
        uint64_t got = line_u64(t, p.len, prefix);
        assert_int_equal(got, brute);
        assert_true(got >= prev); /* cumulative */
        prev = got;
    }
    assert_true(prev > N / 2 && prev < N); /* the bounds split the data */
    assert_int_equal(line_u64(t, p.len, "lat_seconds_bucket{w=\"1\",le=\"+Inf\"} "), N);
    assert_int_equal(line_u64(t, p.len, "lat_seconds_count{w=\"1\"} "), N);
    assert_int_equal(hp_hist_count(&h), N);
    double sum = line_double(t, p.len, "lat_seconds_sum{w=\"1\"} ");
    truth /= 1e9;
    assert_true(sum > truth * 0.999 && sum < truth * 1.001);
    hp_hist_destroy(&h);
    free(vals);
}

/* _sum from slot midpoints stays within 0.1 % even where slots are
 * coarse relative to the values (512 ns slots for 1..100 us), where using
 * either end of the slot would be off by about half a percent. */
static void test_histogram_sum_small_values(void **state)
{
    (void)state;
    hp_hist_t h;
    assert_int_equal(hp_hist_init_latency(&h), 0);
    uint64_t seed = 9;
    double truth = 0;
    enum { N = 100000 };
    for (int i = 0; i < N; i++) {
        uint64_t v = 1000 + rng_next(&seed) % 99000;
        truth += (double)v;
        hp_hist_record(&h, v);
    }
    static char buf[4096];
    hp_prom_t p;
    hp_prom_init(&p, buf, sizeof buf);
    hp_prom_histogram(&p, "l", NULL, &h, hp_prom_latency_bounds,
                      hp_prom_latency_nbounds);
    const char *t = text(&p);
    double sum = line_double(t, p.len, "l_sum ");
    truth /= 1e9;
    assert_true(sum > truth * 0.999 && sum < truth * 1.001);
    assert_int_equal(line_u64(t, p.len, "l_bucket{le=\"0.0001\"} "), N);
    assert_int_equal(line_u64(t, p.len, "l_count "), N);
    hp_hist_destroy(&h);
}

/* A value exactly at each bound counts in that bound's bucket; one a few
 * slots above counts in the next. */
static void test_histogram_at_bounds(void **state)
{
    (void)state;
    hp_hist_t h;
    assert_int_equal(hp_hist_init_latency(&h), 0);
    char buf[4096];
    for (size_t i = 0; i < hp_prom_latency_nbounds; i++) {
        uint64_t bns = (uint64_t)(hp_prom_latency_bounds[i] * 1e9 + 0.5);
        hp_hist_reset(&h);
        hp_hist_record(&h, bns);
        /* Past the end of the bound's slot, by one more slot width. */
        uint64_t above = hp_hist_highest_equivalent(&h, bns) + 1;
        above = hp_hist_highest_equivalent(&h, above) + 1;
        hp_hist_record(&h, above);
        hp_prom_t p;
        hp_prom_init(&p, buf, sizeof buf);
        hp_prom_histogram(&p, "l", NULL, &h, hp_prom_latency_bounds,
                          hp_prom_latency_nbounds);
        const char *t = text(&p);
        char prefix[64];
        for (size_t k = 0; k < hp_prom_latency_nbounds; k++) {
            snprintf(prefix, sizeof prefix, "l_bucket{le=\"%s\"} ", LE[k]);
            uint64_t want = k < i ? 0 : k == i ? 1 : 2;
            assert_int_equal(line_u64(t, p.len, prefix), want);
        }
        assert_int_equal(line_u64(t, p.len, "l_count "), 2);
    }
    hp_hist_destroy(&h);
}

/* Bounds that are not ascending, not finite or negative; an absent or
 * destroyed histogram; values past the histogram's highest. */
static void test_histogram_odd_bounds(void **state)
{
    (void)state;
    hp_hist_t h;
    assert_int_equal(hp_hist_init_latency(&h), 0);
    hp_hist_record(&h, 1500000);                   /* 1.5 ms */
    hp_hist_record(&h, HP_HIST_LATENCY_HIGHEST * 2); /* 2 h: overflow */
    static const double b[] = {-1, 0.0 / 0.0, 0.001, 0.001, 0.0005, 0.002,
                               1.0 / 0.0, 7200, 1e30};
    char buf[2048];
    hp_prom_t p;
    hp_prom_init(&p, buf, sizeof buf);
    hp_prom_histogram(&p, "l", NULL, &h, b, sizeof b / sizeof b[0]);
    /* The overflowed value was recorded as 1 h, so the 7200 s bucket holds
     * it: the documented cost of a bounded histogram. */
    static const char head[] = "l_bucket{le=\"-1\"} 0\n"
                               "l_bucket{le=\"0.001\"} 0\n"
                               "l_bucket{le=\"0.002\"} 1\n"
                               "l_bucket{le=\"7200\"} 2\n"
                               "l_bucket{le=\"1e+30\"} 2\n"
                               "l_bucket{le=\"+Inf\"} 2\n"
                               "l_sum ";
    const char *t = text(&p);
    assert_memory_equal(t, head, sizeof head - 1);
    double sum = line_double(t, p.len, "l_sum ");
    assert_true(sum > 3600.0015 * 0.999 && sum < 3600.0015 * 1.001);
    assert_true(strcmp(t + p.len - 10, "l_count 2\n") == 0);
    hp_hist_destroy(&h);

    /* Destroyed (zeroed) and NULL histograms are empty series. */
    hp_prom_init(&p, buf, sizeof buf);
    hp_prom_histogram(&p, "l", NULL, &h, b, 3);
    hp_prom_histogram(&p, "m", NULL, NULL, NULL, 5);
    assert_string_equal(text(&p), "l_bucket{le=\"-1\"} 0\n"
                                  "l_bucket{le=\"0.001\"} 0\n"
                                  "l_bucket{le=\"+Inf\"} 0\n"
                                  "l_sum 0\n"
                                  "l_count 0\n"
                                  "m_bucket{le=\"+Inf\"} 0\n"
                                  "m_sum 0\n"
                                  "m_count 0\n");
}

/* A representative exposition: families of every kind, labels, escapes,
 * two histogram series, appended to p. */
static void write_sample(hp_prom_t *p, const hp_hist_t *h1, const hp_hist_t *h2)
{
    hp_prom_family(p, "hotpath_requests_total", "counter", "Requests parsed.");
    hp_prom_sample(p, "hotpath_requests_total", NULL, 1234567);
    hp_prom_family(p, "hotpath_responses_total", "counter",
                   "Responses by status class.");
    static const char *const cls[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    for (int i = 0; i < 5; i++) {
        char l[32];
        snprintf(l, sizeof l, "class=\"%s\"", cls[i]);
        hp_prom_sample(p, "hotpath_responses_total", l, (uint64_t)i * 1000);
    }
    hp_prom_family(p, "hotpath_connections_open", "gauge",
                   "Open connections (help with \\ and\nnewline).");
    hp_prom_sample(p, "hotpath_connections_open", NULL, 42);
    hp_prom_family(p, "hotpath_cpu_ratio", "gauge", "A double gauge.");
    hp_prom_sample_double(p, "hotpath_cpu_ratio", "worker=\"0\"", 0.125);
    hp_prom_sample_double(p, "hotpath_cpu_ratio", "worker=\"1\"", 1.0 / 0.0);
    char v[64], l[96];
    int n = hp_prom_label_value("/odd \"path\"\\\n", 13, v, sizeof v);
    assert_true(n > 0);
    snprintf(l, sizeof l, "route=\"%s\"", v);
    hp_prom_family(p, "hotpath_route_hits_total", "counter", "Hits by route.");
    hp_prom_sample(p, "hotpath_route_hits_total", l, 9);
    hp_prom_family(p, "hotpath_request_duration_seconds", "histogram",
                   "Request latency.");
    hp_prom_histogram(p, "hotpath_request_duration_seconds", "worker=\"0\"", h1,
                      hp_prom_latency_bounds, hp_prom_latency_nbounds);
    hp_prom_histogram(p, "hotpath_request_duration_seconds", "worker=\"1\"", h2,
                      hp_prom_latency_bounds, hp_prom_latency_nbounds);
}

static void fill(hp_hist_t *h, uint64_t seed, int n)
{
    for (int i = 0; i < n; i++)
        hp_hist_record(h, 10000 + rng_next(&seed) % 50000000);
}

/* At every capacity from 0 to the full length the output is a prefix of
 * the full output ending at a line boundary, as long as it can be: the next
 * unit (a line, or a family's HELP+TYPE pair) would not have fit. */
static void test_overflow_every_size(void **state)
{
    (void)state;
    hp_hist_t h1, h2;
    assert_int_equal(hp_hist_init_latency(&h1), 0);
    assert_int_equal(hp_hist_init_latency(&h2), 0);
    fill(&h1, 1, 1000);
    fill(&h2, 2, 10);

    static char full[16384];
    hp_prom_t p;
    hp_prom_init(&p, full, sizeof full);
    write_sample(&p, &h1, &h2);
    assert_false(p.overflow);
    size_t total = p.len;
    assert_true(total > 1000 && total < sizeof full);

    for (size_t cap = 0; cap <= total; cap++) {
        char *b = cap ? malloc(cap) : NULL;
        assert_true(cap == 0 || b);
        hp_prom_init(&p, b, cap);
        write_sample(&p, &h1, &h2);
        assert_true(p.len <= cap);
        assert_int_equal(p.overflow, cap < total);
        assert_true(p.len == 0 || b[p.len - 1] == '\n');
        if (p.len)
            assert_memory_equal(b, full, p.len);
        if (cap < total) {
            /* The unit that did not fit starts at len. */
            const char *next = full + p.len;
            const char *e = memchr(next, '\n', total - p.len);
            assert_non_null(e);
            if (strncmp(next, "# HELP ", 7) == 0)
                e = memchr(e + 1, '\n', (size_t)(full + total - (e + 1)));
            assert_true((size_t)(e + 1 - next) > cap - p.len);
        }
        /* Once overflowed, further calls write nothing, even short lines. */
        /* (At cap == total the buffer is full, so this line overflows.) */
        size_t len = p.len;
        hp_prom_sample(&p, "x", NULL, 1);
        assert_int_equal(p.len, len);
        assert_true(p.overflow);
        free(b);
    }
    hp_hist_destroy(&h1);
    hp_hist_destroy(&h2);
}

/* Writing, histograms included, allocates nothing through hp_*alloc. */
static void test_no_alloc(void **state)
{
    (void)state;
    hp_hist_t h1, h2;
    assert_int_equal(hp_hist_init_latency(&h1), 0);
    assert_int_equal(hp_hist_init_latency(&h2), 0);
    fill(&h1, 3, 5000);
    static char buf[16384];
    uint64_t a0 = hp_alloc_count();
    /* Even with every allocation set to fail, writing succeeds. */
    hp_alloc_fail_after(1, 1);
    hp_prom_t p;
    hp_prom_init(&p, buf, sizeof buf);
    write_sample(&p, &h1, &h2);
    hp_alloc_fail_after(0, 0);
    assert_false(p.overflow);
    assert_int_equal(hp_alloc_count(), a0);
    hp_hist_destroy(&h1);
    hp_hist_destroy(&h2);
}

/* Writes the representative exposition to $HP_PROM_SAMPLE_OUT, if set,
 * for the Python parser check. */
static void test_write_sample_file(void **state)
{
    (void)state;
    const char *path = getenv("HP_PROM_SAMPLE_OUT");
    if (!path)
        skip();
    hp_hist_t h1, h2;
    assert_int_equal(hp_hist_init_latency(&h1), 0);
    assert_int_equal(hp_hist_init_latency(&h2), 0);
    fill(&h1, 4, 10000);
    static char buf[16384];
    hp_prom_t p;
    hp_prom_init(&p, buf, sizeof buf);
    write_sample(&p, &h1, &h2);
    assert_false(p.overflow);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, p.len, f), p.len);
    assert_int_equal(fclose(f), 0);
    hp_hist_destroy(&h1);
    hp_hist_destroy(&h2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters_gauges_exact),
        cmocka_unit_test(test_help_escaping),
        cmocka_unit_test(test_double_format),
        cmocka_unit_test(test_label_value),
        cmocka_unit_test(test_default_bounds),
        cmocka_unit_test(test_histogram_empty_exact),
        cmocka_unit_test(test_histogram_small),
        cmocka_unit_test(test_histogram_bruteforce),
        cmocka_unit_test(test_histogram_sum_small_values),
        cmocka_unit_test(test_histogram_at_bounds),
        cmocka_unit_test(test_histogram_odd_bounds),
        cmocka_unit_test(test_overflow_every_size),
        cmocka_unit_test(test_no_alloc),
        cmocka_unit_test(test_write_sample_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
