/*
 * test_range.c - unit tests for the Range header parser (src/http/range.c).
 *
 * The RFC 9110 §14.1.2 examples against a 10000-byte representation, every
 * boundary of satisfiability and clamping, uint64 overflow, the list
 * syntax (OWS, empty elements), malformed values, and the abuse limits
 * (HP_RANGE_MAX, max, overlapping or unordered ranges adding up to more
 * than the representation). Inputs are exact-size heap copies so ASan
 * catches any read past the end; a randomised sweep checks the output
 * invariants on many generated values.
 */
#include "hotpath/alloc.h"
#include "http/range_int.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static char *dup_exact(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    memcpy(p, s, n);
    return p;
}

static hp_range_t out[HP_RANGE_MAX + 4];

static int parse_max(const char *v, uint64_t size, int max)
{
    size_t n = strlen(v);
    char *c = dup_exact(v, n);
    memset(out, 0xa5, sizeof(out));
    int rc = hp_range_parse(c, n, size, out, max);
    free(c);
    for (int i = 0; i < rc; i++) {
        assert_true(out[i].first <= out[i].last);
        assert_true(out[i].last < size);
    }
    assert_true(rc <= (max > 0 ? max : 0));
    return rc;
}

static int parse(const char *v, uint64_t size)
{
    return parse_max(v, size, HP_RANGE_MAX);
}

/* Expects exactly one range [first, last]. */
static void one(const char *v, uint64_t size, uint64_t first, uint64_t last)
{
    int rc = parse(v, size);
    if (rc != 1)
        fail_msg("\"%s\" (size %llu): got %d, want 1 range", v, (unsigned long long)size, rc);
    assert_int_equal(out[0].first, first);
    assert_int_equal(out[0].last, last);
}

static void ignored(const char *v, uint64_t size)
{
    int rc = parse(v, size);
    if (rc != 0)
        fail_msg("\"%s\" (size %llu): got %d, want 0 (ignore)", v, (unsigned long long)size, rc);
}

static void unsatisfiable(const char *v, uint64_t size)
{
    int rc = parse(v, size);
    if (rc != -416)
        fail_msg("\"%s\" (size %llu): got %d, want -416", v, (unsigned long long)size, rc);
}

static void test_rfc_examples(void **state)
{
    (void)state;
    /* RFC 9110 §14.1.2, representation of 10000 bytes. */
    one("bytes=0-499", 10000, 0, 499);
    one("bytes=500-999", 10000, 500, 999);
    one("bytes=-500", 10000, 9500, 9999);
    one("bytes=9500-", 10000, 9500, 9999);
    assert_int_equal(parse("bytes=0-0,-1", 10000), 2);
    assert_int_equal(out[0].first, 0);
    assert_int_equal(out[0].last, 0);
    assert_int_equal(out[1].first, 9999);
    assert_int_equal(out[1].last, 9999);
    assert_int_equal(parse("bytes=500-600,601-999", 10000), 2);
    assert_int_equal(out[0].first, 500);
    assert_int_equal(out[0].last, 600);
    assert_int_equal(out[1].first, 601);
    assert_int_equal(out[1].last, 999);
    /* Overlapping, but far less than the whole: kept as requested. */
    assert_int_equal(parse("bytes=500-700,601-999", 10000), 2);
    assert_int_equal(out[0].first, 500);
    assert_int_equal(out[0].last, 700);
    assert_int_equal(out[1].first, 601);
    assert_int_equal(out[1].last, 999);
}

static void test_boundaries(void **state)
{
    (void)state;
    one("bytes=0-0", 10000, 0, 0);
    one("bytes=0-", 10000, 0, 9999);
    one("bytes=9999-", 10000, 9999, 9999);   /* first == size - 1 */
    one("bytes=9999-9999", 10000, 9999, 9999);
    one("bytes=9999-10000", 10000, 9999, 9999);
    one("bytes=9000-20000", 10000, 9000, 9999); /* last clamped */
    one("bytes=0-9999", 10000, 0, 9999);
    one("bytes=-10000", 10000, 0, 9999);
    one("bytes=-20000", 10000, 0, 9999);     /* suffix longer than size */
    one("bytes=-1", 10000, 9999, 9999);
    one("bytes=000-0009", 10000, 0, 9);      /* leading zeros */
    unsatisfiable("bytes=10000-", 10000);    /* first == size */
    unsatisfiable("bytes=10000-10000", 10000);
    unsatisfiable("bytes=20000-30000", 10000);
    unsatisfiable("bytes=-0", 10000);        /* empty suffix */
    unsatisfiable("bytes=-0,10000-", 10000);
    one("bytes=-0,5-5", 10000, 5, 5);        /* unsatisfiable elements dropped */
    one("bytes=20000-,5-5,-0", 10000, 5, 5);
    /* Tiny representations. */
    one("bytes=0-0", 1, 0, 0);
    one("bytes=0-", 1, 0, 0);
    one("bytes=-1", 1, 0, 0);
    one("bytes=-5", 1, 0, 0);
    unsatisfiable("bytes=1-", 1);
    unsatisfiable("bytes=0-", 0);            /* nothing in an empty file */
    unsatisfiable("bytes=0-0", 0);
    unsatisfiable("bytes=-5", 0);
    unsatisfiable("bytes=-0", 0);
    /* Syntax errors win over emptiness. */
    ignored("bytes=x", 0);
}

static void test_overflow(void **state)
{
    (void)state;
    /* The largest uint64 parses; one more overflows and voids the header. */
    unsatisfiable("bytes=18446744073709551615-", 10000);
    one("bytes=0-18446744073709551615", 10000, 0, 9999);
    one("bytes=-18446744073709551615", 10000, 0, 9999);
    ignored("bytes=18446744073709551616-", 10000);
    ignored("bytes=0-18446744073709551616", 10000);
    ignored("bytes=-18446744073709551616", 10000);
    ignored("bytes=99999999999999999999999999-", 10000);
    ignored("bytes=0-1,0-99999999999999999999999999", 10000);
    /* A representation of the largest size. */
    one("bytes=-1", UINT64_MAX, UINT64_MAX - 1, UINT64_MAX - 1);
    one("bytes=0-", UINT64_MAX, 0, UINT64_MAX - 1);
    one("bytes=18446744073709551614-", UINT64_MAX, UINT64_MAX - 1, UINT64_MAX - 1);
    unsatisfiable("bytes=18446744073709551615-", UINT64_MAX);
    one("bytes=-18446744073709551615", UINT64_MAX, 0, UINT64_MAX - 1);
    /* Two huge overlapping ranges: the total overflows 64 bits but is
     * caught as "more than size". */
    ignored("bytes=0-,0-", UINT64_MAX);
    assert_int_equal(parse("bytes=0-9,-10", UINT64_MAX), 2);
}

static void test_list_syntax(void **state)
{
    (void)state;
    one("Bytes=1-2", 100, 1, 2); /* the unit is case-insensitive */
    one("BYTES=1-2", 100, 1, 2);
    one("bytes=,1-2", 100, 1, 2);
    one("bytes=1-2,", 100, 1, 2);
    one("bytes=, ,1-2, ,", 100, 1, 2);
    one("bytes= 1-2", 100, 1, 2);  /* OWS at either end of the list */
    one("bytes=1-2 \t", 100, 1, 2);
    assert_int_equal(parse("bytes=0-1 , \t2-3,,  ,4-5", 100), 3);
    assert_int_equal(out[1].first, 2);
    assert_int_equal(out[1].last, 3);
    assert_int_equal(out[2].first, 4);
    assert_int_equal(out[2].last, 5);
    assert_int_equal(parse("bytes=0-1,2-3", 100), 2);
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",          "bytes",       "bytes=",       "bytes=,",      "bytes= , ,",
        "bytes =0-1", "bytes:0-1",  "byte=0-1",     "bytesx=0-1",   "items=0-1",
        "bytes=0 -1", "bytes=0- 1", "bytes=- 1",    "bytes=1-0",    "bytes=10-9",
        "bytes=a-b",  "bytes=0-1;", "bytes=--1",    "bytes=-",      "bytes=-1-2",
        "bytes=0-1-2", "bytes=0-1 2-3", "bytes=0x10-0x20", "bytes=+1-2", "bytes=1-+2",
        "bytes=0-1,1-0", "bytes=20000-,0-1x", "bytes=0-1,,x", "bytes=\"0-1\"",
        "bytes=0-1\r", "bytes=0-1\n", "bytes=1", "bytes==0-1", "bytes=0-1;q=1",
        "bytes=0.5-1", "bytes=\x80", "bytes=0-\x7f", "=0-1", " bytes=0-1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ignored(bad[i], 10000);
    /* A NUL inside the value is just a bad byte, not the end. */
    char nul[] = "bytes=0-1\0,2-3";
    hp_range_t r[4];
    assert_int_equal(hp_range_parse(nul, sizeof(nul) - 1, 10000, r, 4), 0);
    assert_int_equal(hp_range_parse(NULL, 0, 10000, r, 4), 0);
    assert_int_equal(hp_range_parse("bytes=0-1", 9, 10000, NULL, 4), 0);
}

/* Every prefix of a valid value is parsed within its bounds and gives a
 * consistent answer. */
static void test_truncated(void **state)
{
    (void)state;
    const char *v = "bytes=0-499, -500 ,9500-,100-199";
    for (size_t k = 0; k <= strlen(v); k++) {
        char *c = dup_exact(v, k);
        hp_range_t r[HP_RANGE_MAX];
        int rc = hp_range_parse(c, k, 10000, r, HP_RANGE_MAX);
        free(c);
        assert_true(rc >= 0 && rc <= 4);
        for (int i = 0; i < rc; i++)
            assert_true(r[i].first <= r[i].last && r[i].last < 10000);
    }
    assert_int_equal(parse(v, 10000), 4);
}

static void append(char *b, size_t cap, const char *s)
{
    size_t n = strlen(b);
    snprintf(b + n, cap - n, "%s", s);
}

static void test_limits(void **state)
{
    (void)state;
    char b[512];
    /* Exactly HP_RANGE_MAX disjoint ascending ranges: fine. */
    snprintf(b, sizeof(b), "bytes=");
    for (int i = 0; i < HP_RANGE_MAX; i++) {
        char e[32];
        snprintf(e, sizeof(e), "%s%d-%d", i ? "," : "", i * 10, i * 10 + 4);
        append(b, sizeof(b), e);
    }
    assert_int_equal(parse(b, 10000), HP_RANGE_MAX);
    assert_int_equal(out[HP_RANGE_MAX - 1].first, (HP_RANGE_MAX - 1) * 10);
    /* One more: ignored. */
    append(b, sizeof(b), ",500-501");
    ignored(b, 10000);
    /* Unsatisfiable specs count too: a long list is refused before it
     * is known to select nothing. */
    snprintf(b, sizeof(b), "bytes=");
    for (int i = 0; i < HP_RANGE_MAX; i++)
        append(b, sizeof(b), "20000-,");
    unsatisfiable(b, 10000);
    append(b, sizeof(b), "20000-");
    ignored(b, 10000);
    /* Empty elements do not count. */
    snprintf(b, sizeof(b), "bytes=");
    for (int i = 0; i < 40; i++)
        append(b, sizeof(b), ",");
    append(b, sizeof(b), "1-2");
    one(b, 100, 1, 2);
    /* More satisfiable ranges than the caller's max: ignored; max < 1 too. */
    assert_int_equal(parse_max("bytes=0-1,3-4,6-7", 100, 3), 3);
    assert_int_equal(parse_max("bytes=0-1,3-4,6-7", 100, 2), 0);
    assert_int_equal(parse_max("bytes=0-1,3-4,200-", 100, 2), 2); /* unsatisfiable dropped */
    assert_int_equal(parse_max("bytes=0-1", 100, 0), 0);
    assert_int_equal(parse_max("bytes=0-1", 100, -1), 0);
    assert_int_equal(parse_max("bytes=0-1", 100, 1), 1);
}

static void test_overlap_abuse(void **state)
{
    (void)state;
    /* Overlapping or descending and adding up to more than the file. */
    ignored("bytes=0-99,0-99", 100);
    ignored("bytes=0-60,50-99", 100);
    ignored("bytes=50-99,0-60", 100);
    ignored("bytes=0-,-1", 100);
    ignored("bytes=-100,-100", 100);
    ignored("bytes=0-0,0-,0-0", 100);
    /* Overlapping or descending but not more than the file: honoured. */
    assert_int_equal(parse("bytes=0-49,49-98", 100), 2); /* total == size */
    assert_int_equal(parse("bytes=50-99,0-40", 100), 2);
    assert_int_equal(out[0].first, 50);
    assert_int_equal(out[1].first, 0);
    assert_int_equal(parse("bytes=0-9,0-9", 100), 2);
    /* Ascending and disjoint always passes the check. */
    assert_int_equal(parse("bytes=0-49,50-99", 100), 2);
    assert_int_equal(parse("bytes=0-0,2-2,4-4,6-6,8-8", 10), 5);
    /* Clamped sizes are what count: 0-1000 on a 100-byte file is 100. */
    assert_int_equal(parse("bytes=90-1000,0-0", 100), 2);
    ignored("bytes=0-1000,0-0", 100);
}

/* Random values over the grammar's alphabet: outputs always obey the
 * invariants, and the answer does not depend on bytes past len. */
static void test_random_sweep(void **state)
{
    (void)state;
    static const char alpha[] = "bytes=0123456789-, \t9-,-0";
    uint64_t x = 88172645463325252ull;
    for (int iter = 0; iter < 200000; iter++) {
        char b[40];
        size_t n;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        n = 6 + x % 30;
        memcpy(b, "bytes=", 6);
        for (size_t i = 6; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b[i] = alpha[x % (sizeof(alpha) - 1)];
        }
        uint64_t size = (x >> 8) % 3 == 0 ? 0 : (x >> 16) % 5000;
        char *c = dup_exact(b, n);
        hp_range_t r[4];
        int rc = hp_range_parse(c, n, size, r, 4);
        free(c);
        assert_true(rc == 0 || rc == -416 || (rc >= 1 && rc <= 4));
        uint64_t total = 0;
        bool disorder = false;
        for (int i = 0; i < rc; i++) {
            assert_true(r[i].first <= r[i].last && r[i].last < size);
            total += r[i].last - r[i].first + 1;
            if (i && r[i].first <= r[i - 1].last)
                disorder = true;
        }
        if (disorder)
            assert_true(total <= size);
    }
}

static void test_no_allocation(void **state)
{
    (void)state;
    uint64_t before = hp_alloc_count();
    hp_alloc_fail_after(1, 1);
    static const char v[] = "bytes=0-0,-1, 500-600";
    hp_range_t r[4];
    for (int i = 0; i < 1000; i++)
        assert_int_equal(hp_range_parse(v, sizeof(v) - 1, 10000, r, 4), 3);
    hp_alloc_fail_after(0, 0);
    assert_int_equal(hp_alloc_count(), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_examples), cmocka_unit_test(test_boundaries),
        cmocka_unit_test(test_overflow),     cmocka_unit_test(test_list_syntax),
        cmocka_unit_test(test_malformed),    cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_limits),       cmocka_unit_test(test_overlap_abuse),
        cmocka_unit_test(test_random_sweep), cmocka_unit_test(test_no_allocation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
